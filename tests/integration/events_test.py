#!/usr/bin/env python3
"""Events when nodes die, on a real 3-node cluster.

  presence    kill -9 the node of a user (a follower, then the leader): its
              friend on another node gets presence {user, online: false}
              once the cluster notices; a friend who logged in elsewhere
              meanwhile is not announced offline

usage: events_test.py BUILD_DIR
"""

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time

from clusterlib import Cluster, login, uname


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
    c, _ = await login(cl.ws_url(victim), carol, register=True)
    await befriend(a, alice, b, bob)
    await befriend(c, carol, b, bob)
    # carol moves to the watcher's node before the kill: she stays online
    c2, _ = await login(cl.ws_url(watcher), carol)
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
    cl.start_node(victim)
    await asyncio.get_running_loop().run_in_executor(None, cl.wait_servers, cl.count, 30)
    await asyncio.get_running_loop().run_in_executor(None, cl.wait_linked, range(cl.count), 30)
    what = "leader" if kill_leader else "follower"
    print(f"{what} kill -9: its user's friend heard 'offline' {took:.2f} s later", flush=True)


async def run(cl):
    await presence_on_death(cl, kill_leader=False)
    await presence_on_death(cl, kill_leader=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="chat-events.")
    cl = Cluster(os.path.abspath(args.build), tmp)
    rc = 1
    try:
        cl.start()
        asyncio.run(run(cl))
        rc = 0
    except Exception as e:  # noqa: BLE001
        print(f"FAILED: {type(e).__name__}: {e}")
    finally:
        cl.stop()
        if rc != 0:
            cl.dump_logs()
        shutil.rmtree(tmp, ignore_errors=True)
    print("events test", "passed" if rc == 0 else "FAILED")
    return rc


if __name__ == "__main__":
    sys.exit(main())
