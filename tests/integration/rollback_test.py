#!/usr/bin/env python3
"""A chat's answer says what its store transaction did, on a real 3-node
cluster (SQLite store).

The test holds the store file's write lock from outside, queues a primer
chat (it takes the first batch and waits on the lock) and then three chats
that the leader's store runs as one transaction; a trigger refuses the
middle one. Whatever the store does with that transaction, a chat answered
ok is in the history and delivered, one answered with an error is in
neither, the refused one is an error, and the next chat is stored.

usage: rollback_test.py BUILD_DIR
"""

import argparse
import asyncio
import sqlite3
import sys

from clusterlib import login, run_cluster_test, uname

REFUSED = "refuse-me"


def hold_lock(db_path):
    db = sqlite3.connect(db_path, isolation_level=None, timeout=10)
    db.execute("CREATE TRIGGER IF NOT EXISTS refuse_one BEFORE INSERT ON messages"
               f" WHEN NEW.message = '{REFUSED}' BEGIN SELECT RAISE(ABORT, 'refused'); END")
    db.execute("BEGIN IMMEDIATE")
    return db


async def run(cl):
    alice, bob, carol, dave = uname("ra"), uname("rb"), uname("rc"), uname("rd")
    b, _ = await login(cl.ws_url(1), bob, register=True)
    # one node's senders (their chats share its store queue), one request each
    a, _ = await login(cl.ws_url(0), alice, register=True)
    c, _ = await login(cl.ws_url(0), carol, register=True)
    d, _ = await login(cl.ws_url(0), dave, register=True)
    db = hold_lock(f"{cl.tmp}/chat.db")
    try:
        primer = asyncio.ensure_future(a.req("chat", {"to": bob, "message": "primer"}))
        await asyncio.sleep(0.3)  # its batch waits on the lock; the next ones queue behind it
        sent = [(c, "fine-1"), (a, REFUSED), (d, "fine-2")]
        answers = [asyncio.ensure_future(s.req("chat", {"to": bob, "message": m}))
                   for s, m in sent]
        await asyncio.sleep(0.5)
    finally:
        db.execute("ROLLBACK")
        db.close()
    got = [await primer] + [await f for f in answers]
    assert got[0]["code"] == 0, f"primer: {got[0]}"
    assert got[2]["code"] != 0, f"the refused chat was answered {got[2]}"
    after = await a.ok("chat", {"to": bob, "message": "after"})
    await b.event(lambda e: e.get("event") == "chat" and e["data"]["msgid"] == after["msgid"])
    stored = {m["message"] for m in (await b.ok("history", {"with": alice}))["messages"]}
    for other in (carol, dave):
        stored |= {m["message"] for m in (await b.ok("history", {"with": other}))["messages"]}
    delivered = {e["data"]["message"] for e in b.events if e.get("event") == "chat"}
    for (_, message), answer in zip([(a, "primer")] + sent, got):
        ok = answer["code"] == 0
        assert (message in stored) == ok, f"{message}: answered {answer}, stored {message in stored}"
        assert (message in delivered) == ok, f"{message}: answered {answer}, delivered {delivered}"
    print(f"answers: {[g['code'] for g in got]}; stored: {sorted(stored)}")
    for cli in (a, b, c, d):
        await cli.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    args = ap.parse_args()
    return run_cluster_test(args.build, "rollback test", run, "chat-rollback.")


if __name__ == "__main__":
    sys.exit(main())
