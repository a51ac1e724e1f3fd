#!/usr/bin/env python3
"""Room messages across a leader change, on a real 3-node cluster.

Members of one room, senders sending room_chat steadily, then a fault
mid-stream; every room message answered with code 0 must reach every member
that stayed connected, exactly once:
  leader  kill -9 the leader (members on the two followers; the leader's own
          go with it), restart it; --rounds times
  zk      ZooKeeper stopped for 6 s and started again (members and senders on
          all three nodes): every session expires, a new election follows

usage: failover_test.py BUILD_DIR [--rounds N] [--rate MSGS_PER_S]
"""

import argparse
import asyncio
import sys
import time

from clusterlib import login, run_cluster_test, uname, whole_again


async def sender(c, room, tag, rate, stop, acked):
    k = 0
    while not stop.is_set():
        k += 1
        r = await c.req("room_chat", {"room": room, "message": f"{tag}-{k}"})
        if r["code"] == 0:
            acked.append(r["data"]["msgid"])
        await asyncio.sleep(1 / rate)


async def round_trip(cl, rate, fault):
    leader = cl.leader()
    f1, f2 = [i for i in range(cl.count) if i != leader]
    room = uname("fr")
    members = []
    nodes = (f1, f1, f2, f2) if fault == "leader" else (f1, f1, f2, f2, leader, leader)
    for node in nodes:
        c, _ = await login(cl.ws_url(node), uname("fm"), register=True)
        members.append(c)
    await members[0].ok("room_create", {"room": room})
    for c in members:
        await c.ok("room_join", {"room": room})
    stop = asyncio.Event()
    acked = {i: [] for i in range(0, len(members), 2)}
    tasks = [asyncio.ensure_future(sender(members[i], room, f"s{i}", rate, stop, acked[i]))
             for i in acked]
    await asyncio.sleep(1.5)
    t0 = time.monotonic()
    t0_wall = time.time()
    if fault == "leader":
        cl.kill(f"node{leader}")
        await asyncio.sleep(5)
    else:
        cl.stop_zk()
        await asyncio.sleep(6)
        cl.start_zk()
        await asyncio.sleep(5)
    stop.set()
    await asyncio.gather(*tasks)
    await asyncio.sleep(2)                       # deliveries in flight land
    missed, dups, expected = 0, 0, 0
    where = {}
    for j, c in enumerate(members):
        got = [e["data"]["msgid"] for e in c.events
               if e["event"] == "room_chat" and e["data"]["room"] == room]
        dups += len(got) - len(set(got))
        for i, ids in acked.items():
            if i == j:
                continue                         # senders do not get their own
            expected += len(ids)
            lost = set(ids) - set(got)
            missed += len(lost)
            for mid in sorted(lost)[:5]:             # say which, to find the cause
                print(f"  missed {mid}: sent by member {i} on node{nodes[i]}, "
                      f"not at member {j} on node{nodes[j]} (fault at {t0_wall:.3f})")
    total = sum(len(v) for v in acked.values())
    for c in members:
        await c.close()
    await whole_again(cl, leader if fault == "leader" else None)
    print(f"{fault} fault: {total} room messages acknowledged, "
          f"{expected} deliveries expected, {missed} missed, {dups} duplicated", flush=True)
    return missed, dups


async def run(cl, rounds, rate):
    bad = []
    for fault in ["leader"] * rounds + ["zk"]:
        missed, dups = await round_trip(cl, rate, fault)
        if missed or dups:
            bad.append((missed, dups))
    assert not bad, f"acknowledged room messages missed or duplicated (missed, dups) per round: {bad}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rate", type=float, default=50)
    args = ap.parse_args()
    return run_cluster_test(args.build, "room failover test", lambda cl: run(cl, args.rounds, args.rate), "chat-failover.")

if __name__ == "__main__":
    sys.exit(main())
