#!/usr/bin/env python3
"""Contract corners found by black-box testing, on a real 3-node cluster.

  ordered     requests on one connection take effect in order, not only
              answer in order: register then login sent back to back; a
              whole session's worth of requests pipelined without waiting;
              a logout behind other requests; a burst beyond the per-
              connection queue answers in order (0 or 429) and the
              connection keeps working
  nul         a request holding \\u0000 is answered 400 with its id
  acks        chats and acks pipelined answer in order and take effect

(ping timing is tested in tests/unit/test_core_ws.c: test_ping_timing)

usage: contract_test.py BUILD_DIR
"""

import argparse
import asyncio
import json
import sys

from clusterlib import Client, connect, login, run_cluster_test, uname

async def pipeline(c, reqs, timeout=20):
    """Sends every request before reading any answer; answers in order."""
    futs = []
    for action, data in reqs:
        c.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        c.waiting[c.next_id] = fut
        futs.append(fut)
        await c.ws.send_text(json.dumps({"id": c.next_id, "action": action, "data": data}))
    return [await asyncio.wait_for(f, timeout) for f in futs]


def codes(answers):
    return [a["code"] for a in answers]


async def case_register_login(cl):
    user = uname("po")
    c = await Client.open(cl.ws_url(0))
    got = await pipeline(c, [("register", {"user": user, "password": "secret-pw"}),
                             ("login", {"user": user, "password": "secret-pw"})])
    assert codes(got) == [0, 0], f"register+login back to back: {got}"
    await c.close()


async def case_session_pipelined(cl):
    a, b = uname("pa"), uname("pb")
    bc, _ = await login(cl.ws_url(1), b, register=True)
    c = await Client.open(cl.ws_url(0))
    room = uname("pr")
    reqs = [("register", {"user": a, "password": "secret-pw"}),
            ("login", {"user": a, "password": "secret-pw"}),
            ("friend_request", {"user": b, "note": "hi"}),
            ("room_create", {"room": room}),
            ("room_join", {"room": room}),
            ("room_chat", {"room": room, "message": "first"}),
            ("group_create", {"name": "pipelined"}),
            ("chat", {"to": b, "message": "one"}),
            ("chat", {"to": b, "message": "two"}),
            ("user_info", {"user": b}),
            ("friends", {}),
            ("rooms", {})]
    got = await pipeline(c, reqs)
    assert codes(got) == [0] * len(reqs), f"pipelined session: {codes(got)} {got}"
    assert [g["action"] for g in got] == [r[0] for r in reqs], "answers out of order"
    assert got[9]["data"]["online"] is True
    # history holds the chats in send order; the friend request reached b
    await bc.event(lambda e: e["event"] == "friend_request" and e["data"]["from"] == a)
    hist = await c.ok("history", {"with": b})
    assert [m["message"] for m in hist["messages"]] == ["one", "two"], hist
    # a logout behind other requests runs last; requests after it are refused
    got = await pipeline(c, [("ping", {}), ("user_info", {"user": b}), ("logout", {})])
    assert codes(got) == [0, 0, 0], got
    for x in (c, bc):
        await x.close()


async def case_burst(cl):
    user = uname("pq")
    c, _ = await login(cl.ws_url(2), user, register=True)
    n = 300                                 # more than the 128 a connection may queue
    got = await pipeline(c, [("user_info", {"user": user}) for _ in range(n)], timeout=60)
    cs = codes(got)
    assert set(cs) <= {0, 429}, f"burst answers: {sorted(set(cs))}"
    assert cs.count(0) >= 128, f"only {cs.count(0)} of the burst ran"
    assert [g["id"] for g in got] == list(range(c.next_id - n + 1, c.next_id + 1)), "ids out of order"
    await c.ok("ping")                      # still working
    await c.close()
    print(f"burst of {n}: {cs.count(0)} answered 0, {cs.count(429)} answered 429, in order")


async def case_nul(cl):
    ws = await connect(cl.ws_url(0), timeout=5)
    await ws.send_text('{"id":5,"action":"chat","data":{"to":"b\\u0000x","message":"hi"}}')
    a1 = json.loads(await asyncio.wait_for(ws.recv(), 10))
    await ws.send_text('{"id":"k","action":"log\\u0000in"}')
    a2 = json.loads(await asyncio.wait_for(ws.recv(), 10))
    await ws.send_text('{"id":"x\\u0000","action":"ping"}')   # the id itself is not readable
    a3 = json.loads(await asyncio.wait_for(ws.recv(), 10))
    ws.abort()
    assert a1.get("id") == 5 and a1.get("code") == 400 and "u0000" in a1.get("error", ""), a1
    assert a2.get("id") == "k" and a2.get("code") == 400, a2
    assert "id" not in a3 and a3.get("code") == 400, a3


async def case_acks_beside_chats(cl):
    """Chats and acks pipelined on one connection (acks run in the chats'
    lane) answer in request order, and a request behind them sees their
    effects: history has the chats in order; a resume finds nothing pending."""
    a, b = uname("qa"), uname("qb")
    ac, _ = await login(cl.ws_url(0), a, register=True)
    bc, bd = await login(cl.ws_url(1), b, register=True)
    sent = [(await ac.ok("chat", {"to": b, "message": f"m{i}"}))["msgid"] for i in range(6)]
    await bc.event(lambda e: e["event"] == "chat" and e["data"]["msgid"] == sent[-1])
    reqs = []
    for i, msgid in enumerate(sent):
        reqs += [("chat", {"to": a, "message": f"r{i}"}), ("ack", {"msgids": [msgid]})]
    reqs.append(("history", {"with": a}))
    got = await pipeline(bc, reqs)
    assert codes(got) == [0] * len(reqs), f"chats and acks pipelined: {codes(got)} {got}"
    assert [g["action"] for g in got] == [r[0] for r in reqs], "answers out of order"
    mine = [m["message"] for m in got[-1]["data"]["messages"] if m["message"].startswith("r")]
    assert mine == [f"r{i}" for i in range(6)], got[-1]
    await bc.close()
    c2 = await Client.open(cl.ws_url(2))
    d = await c2.ok("login", {"user": b, "token": bd["token"]})
    assert d["pending"] == 0, f"acked messages still pending: {d}"
    for x in (ac, c2):
        await x.close()


CASES = [case_register_login, case_session_pipelined, case_burst, case_nul, case_acks_beside_chats]


async def run(cl):
    for case in CASES:
        print(f"=== {case.__name__}", flush=True)
        await case(cl)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    args = ap.parse_args()
    return run_cluster_test(args.build, "contract corners", run, "chat-contract.")

if __name__ == "__main__":
    sys.exit(main())
