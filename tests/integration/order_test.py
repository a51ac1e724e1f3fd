#!/usr/bin/env python3
"""msgids sort in send order within every conversation, across nodes.

PROTOCOL.md: msgids "sort in send order within one conversation". Send order
is real-time order: a message whose send starts after another message's
answer arrived must get the larger msgid, whichever nodes the two senders
are on. Nodes on one machine share a clock, so a chain of sends that hops
between nodes lands many links in the same millisecond: that is the race
(same ms, the later sender on the node with the smaller number).

For a 1:1 conversation, a group and a room, each with members on the three
nodes: a chain where every send starts the moment the previous answer
arrives, hopping between nodes; every answered msgid must be above the one
before, and history must list the chain in that order. Then concurrent
senders on every node at once: ids unique, history sorted and complete.

usage: order_test.py BUILD_DIR [--rounds N]
"""

import argparse
import asyncio
import sys

from clusterlib import login, run_cluster_test, uname


async def chain(senders, send, rounds):
    """Each send starts when the previous answer is in; returns the msgids."""
    ids = []
    for k in range(rounds):
        ids.append(await send(senders[k % len(senders)], k))
    return ids


def same_ms_links(ids):
    return sum(1 for a, b in zip(ids, ids[1:]) if a[:13] == b[:13])


def check_increasing(what, ids):
    bad = [(k, a, b) for k, (a, b) in enumerate(zip(ids, ids[1:])) if b <= a]
    assert not bad, f"{what}: {len(bad)} sends sorted before the send answered ahead of them, " \
                    f"first: link {bad[0][0]} {bad[0][1]} -> {bad[0][2]}"


async def history_ids(client, key, value, want):
    """The conversation's msgids, oldest first, paging back with `before`."""
    got, before = [], None
    while len(got) < want:
        data = {key: value, "limit": 100}
        if before:
            data["before"] = before
        page = (await client.ok("history", data))["messages"]
        if not page:
            break
        got = [m["msgid"] for m in page] + got
        before = page[0]["msgid"]
    return got


async def direct_case(cl, rounds):
    names = [uname("oa"), uname("ob"), uname("oc")]
    users = [(await login(cl.ws_url(i), names[i], register=True))[0] for i in range(3)]
    # a (node 0) and b (node 1) talk; replies hop between the nodes
    pair = [(users[0], names[1]), (users[1], names[0])]

    async def send(who, k):
        c, to = who
        return (await c.ok("chat", {"to": to, "message": f"d{k}"}))["msgid"]

    ids = await chain(pair, send, rounds)
    check_increasing("1:1 chain", ids)
    hist = await history_ids(users[0], "with", names[1], rounds)
    assert hist == ids, "1:1 history is not the send order"
    # both senders at once, as fast as they can: unique ids, history sorted
    burst = await asyncio.gather(*(send(pair[k % 2], 10000 + k) for k in range(2 * 50)))
    assert len(set(burst)) == len(burst), "a msgid was handed out twice"
    hist = await history_ids(users[0], "with", names[1], rounds + len(burst))
    assert hist == sorted(hist) and set(burst) <= set(hist), "1:1 history after the burst"
    for c in users:
        await c.close()
    return ids


async def group_case(cl, rounds):
    names = [uname("og"), uname("oh"), uname("oi")]
    users = [(await login(cl.ws_url(i), names[i], register=True))[0] for i in range(3)]
    gid = (await users[0].ok("group_create", {"name": "order"}))["group"]
    for c in users[1:]:
        await c.ok("group_join", {"group": gid})

    async def send(c, k):
        return (await c.ok("group_chat", {"group": gid, "message": f"g{k}"}))["msgid"]

    ids = await chain(users[::-1], send, rounds)   # node 2, 1, 0, 2, ...
    check_increasing("group chain", ids)
    hist = await history_ids(users[1], "group", gid, rounds)
    assert hist == ids, "group history is not the send order"
    burst = await asyncio.gather(*(send(users[k % 3], 10000 + k) for k in range(60)))
    assert len(set(burst)) == len(burst), "a group msgid was handed out twice"
    for c in users:
        await c.close()
    return ids


async def room_case(cl, rounds):
    names = [uname("or"), uname("os"), uname("ot")]
    users = [(await login(cl.ws_url(i), names[i], register=True))[0] for i in range(3)]
    room = uname("ro")
    await users[0].ok("room_create", {"room": room})
    for c in users:
        await c.ok("room_join", {"room": room})

    async def send(c, k):
        return (await c.ok("room_chat", {"room": room, "message": f"r{k}"}))["msgid"]

    ids = await chain(users[::-1], send, rounds)
    check_increasing("room chain", ids)
    # rooms keep their last 50 messages: those are the chain's tail, in order
    hist = await history_ids(users[0], "room", room, 50)
    assert hist == ids[-50:], "room history is not the send order"
    # every member got the others' messages under the msgids their senders got
    for i, c in enumerate(users):
        want = [m for k, m in enumerate(ids) if users[::-1][k % 3] is not c]
        await c.event(lambda e, last=want[-1]: e["event"] == "room_chat"
                      and e["data"]["msgid"] == last)
        seen = [e["data"]["msgid"] for e in c.events
                if e["event"] == "room_chat" and e["data"]["room"] == room]
        assert sorted(seen) == sorted(want), f"member {i} missed room messages"
    burst = await asyncio.gather(*(send(users[k % 3], 10000 + k) for k in range(60)))
    assert len(set(burst)) == len(burst), "a room msgid was handed out twice"
    hist = await history_ids(users[0], "room", room, 50)
    assert hist == sorted(hist), "room history after the burst is not in msgid order"
    for c in users:
        await c.close()
    return ids


async def run(cl, rounds):
    for name, case in (("1:1", direct_case), ("group", group_case), ("room", room_case)):
        ids = await case(cl, rounds)
        print(f"{name}: {len(ids)} chained sends across 3 nodes in order "
              f"({same_ms_links(ids)} links within one millisecond)", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args()
    return run_cluster_test(args.build, "msgid order test", lambda cl: run(cl, args.rounds), "chat-order.")

if __name__ == "__main__":
    sys.exit(main())
