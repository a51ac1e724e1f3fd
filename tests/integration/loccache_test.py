#!/usr/bin/env python3
"""The location cache is renewed while a conversation uses it.

The leader (the router on SQLite, one writer) caches where a remote user is
for --location-cache-ms. A steady conversation between two followers, for
several cache lifetimes: the leader renews alice's entry from Redis in its
second half-life while messages go on through it, so only the first message
waits for a Redis look-up; without the renewal each expiry sends the next
messages through Redis again (one look-up per lifetime at least). Every
message arrives live and in order. Then alice moves to bob's node
while the entry is in use: the messages follow her, live (re-routed by
the old node until the renewal names the new one).

usage: loccache_test.py BUILD_DIR
"""

import argparse
import asyncio
import sys
import time

from clusterlib import login, metrics, run_cluster_test, uname

CACHE_MS = 300
STEADY_S = 3.0


async def steady(a, b, alice, prefix, seconds, ordered=True):
    """bob -> alice every ~20 ms for seconds; each must arrive live (in order,
    unless alice just moved: docs/CLUSTER.md, a re-routed event may come late)."""
    sent, t_end, k = [], time.monotonic() + seconds, 0
    while time.monotonic() < t_end:
        d = await b.ok("chat", {"to": alice, "message": f"{prefix} {k}"})
        sent.append(d["msgid"])
        k += 1
        await asyncio.sleep(0.02)
    def got():
        return [e["data"] for e in a.events if e["event"] == "chat"
                and e["data"]["message"].startswith(prefix + " ")]
    deadline = time.monotonic() + 5
    while len(got()) < len(sent) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    ids = [g["msgid"] for g in got()]
    assert (ids if ordered else sorted(ids)) == sent, \
        f"{prefix}: {len(ids)} of {len(sent)} arrived, or out of order"
    assert not any(g.get("offline") for g in got()), f"{prefix}: a message arrived as offline"
    return len(sent)


async def run(cl):
    leader = cl.leader()
    f1, f2 = [i for i in range(cl.count) if i != leader]
    alice, bob = uname("la"), uname("lb")
    a, _ = await login(cl.ws_url(f1), alice, register=True)
    b, _ = await login(cl.ws_url(f2), bob, register=True)
    url = f"{cl.node_url(leader)}/metrics"
    before = metrics(url)
    count = await steady(a, b, alice, "steady", STEADY_S)
    after = metrics(url)
    locates = after["chat_node_locates_total"] - before["chat_node_locates_total"]
    renewed = after["chat_node_loc_refreshes_total"] - before["chat_node_loc_refreshes_total"]
    lifetimes = int(STEADY_S * 1000 / CACHE_MS)
    # the first message looks alice up; a stall of the box may cost one or two more
    assert locates <= 3, f"{locates} messages waited for Redis over {lifetimes} cache lifetimes"
    assert renewed >= lifetimes // 2, f"{renewed} renewals over {lifetimes} cache lifetimes"
    # alice moves to bob's node; the entry in use names f1 until renewed
    # (meanwhile f1 re-routes what it is sent)
    a2, _ = await login(cl.ws_url(f2), alice)
    await a.close()
    moved = await steady(a2, b, alice, "moved", 1.0, ordered=False)
    for c in (a2, b):
        await c.close()
    print(f"location cache ({CACHE_MS} ms): {count} messages over {lifetimes} lifetimes, "
          f"{renewed:.0f} renewals, {locates:.0f} waited for Redis; {moved} live after a move")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    args = ap.parse_args()

    def setup(cl):
        cl.node_args += ["--location-cache-ms", str(CACHE_MS)]
    return run_cluster_test(args.build, "location cache test", run, "chat-loccache.", setup)


if __name__ == "__main__":
    sys.exit(main())
