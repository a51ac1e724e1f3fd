#!/usr/bin/env python3
"""Events when nodes die, on a real 3-node cluster.

  presence    kill -9 the node of a user (a follower, then the leader): its
              friend on another node gets presence {user, online: false}
              once the cluster notices; a friend who logged in elsewhere
              meanwhile is not announced offline
  friend      a friend_request handed to a node that dies before delivering
              it (SIGSTOP, then SIGKILL) is pending at the target's next
              login; one delivered live does not come again
  order       an offline user's pending items come in send order across
              kinds and senders on different nodes: chat, friend_request,
              chat, group_chat, friend_reply, then a gateway push

usage: events_test.py BUILD_DIR
"""

import argparse
import asyncio
import json
import signal
import urllib.request
import sys
import time

from clusterlib import Client, login, run_cluster_test, uname, whole_again


async def befriend(a, an, b, bn):
    await a.ok("friend_request", {"user": bn})
    await b.event(lambda e: e["event"] == "friend_request" and e["data"]["from"] == an)
    await b.ok("friend_reply", {"user": an, "accept": True})
    await a.event(lambda e: e["event"] == "friend_reply" and e["data"]["from"] == bn)


def offline_of(user):
    return lambda e: (e["event"] == "presence" and e["data"]["user"] == user
                      and e["data"]["online"] is False)


async def presence_on_death(cl, kill_leader):
    leader = cl.leader()
    others = [i for i in range(cl.count) if i != leader]
    victim = leader if kill_leader else others[0]
    watcher = others[1]
    alice, bob, carol = uname("da"), uname("db"), uname("dc")
    a, _ = await login(cl.ws_url(victim), alice, register=True)
    b, _ = await login(cl.ws_url(watcher), bob, register=True)
    c, cd = await login(cl.ws_url(victim), carol, register=True)
    await befriend(a, alice, b, bob)
    await befriend(c, carol, b, bob)
    # carol moves to the watcher's node before the kill: she stays online;
    # her resume by token (friends read in its one store trip) tells bob
    b.events.clear()
    c2 = await Client.open(cl.ws_url(watcher))
    await c2.ok("login", {"user": carol, "token": cd["token"]})
    await b.event(lambda e: (e["event"] == "presence" and e["data"]["user"] == carol
                             and e["data"]["online"] is True), timeout=5)
    await c.close()
    t0 = time.monotonic()
    cl.kill(f"node{victim}")
    await b.event(offline_of(alice), timeout=20)
    took = time.monotonic() - t0
    await asyncio.sleep(1)
    assert not any(offline_of(carol)(e) for e in b.events), "carol was announced offline"
    d = await b.ok("friends")
    online = {f["user"]: f["online"] for f in d["friends"]}
    assert online == {alice: False, carol: True}, online
    for x in (a, b, c2):
        await x.close()
    await whole_again(cl, victim)
    what = "leader" if kill_leader else "follower"
    print(f"{what} kill -9: its user's friend heard 'offline' {took:.2f} s later", flush=True)


async def friend_event_survives_node_death(cl):
    leader = cl.leader()
    x, y = [i for i in range(cl.count) if i != leader]
    alice, bob = uname("fa"), uname("fb")
    a, _ = await login(cl.ws_url(y), alice, register=True)
    b, _ = await login(cl.ws_url(x), bob, register=True)
    # live: delivered once, not again at the next login
    await a.ok("friend_request", {"user": bob, "note": "live"})
    await b.event(lambda e: e["event"] == "friend_request" and e["data"]["note"] == "live")
    await asyncio.sleep(0.5)                    # the settle commits on bob's node
    await b.close()
    b, d = await login(cl.ws_url(x), bob)
    assert d["pending"] == 0, f"a friend_request delivered live came again: {d}"
    await b.ok("friend_reply", {"user": alice, "accept": False})
    await a.event(lambda e: e["event"] == "friend_reply" and e["data"]["from"] == bob)
    # bob's node freezes: the request is routed to it (still a member) and lost with it
    cl.procs[f"node{x}"].send_signal(signal.SIGSTOP)
    await a.ok("friend_request", {"user": bob, "note": "frozen"})
    await asyncio.sleep(0.3)
    cl.kill(f"node{x}")
    await b.close()
    await asyncio.get_running_loop().run_in_executor(None, cl.wait_servers, cl.count - 1, 20)
    b2, d = await login(cl.ws_url(leader), bob)
    e = await b2.event(lambda e: e["event"] == "friend_request" and e["data"]["note"] == "frozen")
    assert e["data"].get("offline") is True and d["pending"] >= 1, (d, e)
    for c in (a, b2):
        await c.close()
    await whole_again(cl, x)
    print("friend_request routed to a node that died: pending at the next login; "
          "one delivered live: not again", flush=True)


def push(cl, user, message):
    body = json.dumps({"message": message, "to": user}).encode()
    req = urllib.request.Request(f"{cl.gateway}/push", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {cl.token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 202


async def pending_order(cl):
    u, s1n, s2n = uname("ou"), uname("o1"), uname("o2")
    uc, _ = await login(cl.ws_url(2), u, register=True)
    s1, _ = await login(cl.ws_url(0), s1n, register=True)
    s2, _ = await login(cl.ws_url(1), s2n, register=True)
    gid = (await uc.ok("group_create", {"name": "order"}))["group"]
    await s2.ok("group_join", {"group": gid})
    await uc.ok("friend_request", {"user": s1n})
    await s1.event(lambda e: e["event"] == "friend_request" and e["data"]["from"] == u)
    await uc.ok("logout")
    await uc.close()
    await asyncio.sleep(0.3)
    await s1.ok("chat", {"to": u, "message": "c1"})
    await s2.ok("friend_request", {"user": u, "note": "fr"})
    await s1.ok("chat", {"to": u, "message": "c2"})
    await s2.ok("group_chat", {"group": gid, "message": "g1"})
    await s1.ok("friend_reply", {"user": u, "accept": True})
    await asyncio.get_running_loop().run_in_executor(None, push, cl, u, "sys")
    want = [("chat", "c1"), ("friend_request", s2n), ("chat", "c2"), ("group_chat", "g1"),
            ("friend_reply", s1n), ("system", "sys")]
    uc, d = await login(cl.ws_url(0), u)
    await uc.event(lambda e: e["event"] == "system", timeout=10)
    got = []
    for e in uc.events:
        k, dd = e["event"], e["data"]
        if k in ("chat", "group_chat", "system"):
            got.append((k, dd["message"]))
        elif k in ("friend_request", "friend_reply"):
            got.append((k, dd["from"]))
    assert got == want, f"pending order: {got}"
    assert d["pending"] == len(want), d
    for c in (uc, s1, s2):
        await c.close()
    print("pending items in send order across kinds and nodes:", [k for k, _ in got], flush=True)


async def run(cl):
    await pending_order(cl)
    await friend_event_survives_node_death(cl)
    await presence_on_death(cl, kill_leader=False)
    await presence_on_death(cl, kill_leader=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    args = ap.parse_args()
    return run_cluster_test(args.build, "events test", run, "chat-events.")

if __name__ == "__main__":
    sys.exit(main())
