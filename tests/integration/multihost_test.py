#!/usr/bin/env python3
"""Four simulated hosts on one bridge (network namespaces, root only):

  h1, h2, h3   one chat-node and one server of a 3-server ZooKeeper ensemble
  h4           Redis, the MongoDB peer (CongoDB) and the gateway

Every process listens on, and every node advertises, its host's own address
(10.R.S.1..4 on a private /24 the test picks; the test itself talks from the
bridge's address .254). The shared conformance suite runs through the
gateway, then three faults, each under chat traffic across the hosts:

  leader-host    kill -9 every process of the leader's host
  follower-host  kill -9 every process of a follower's host
  partition      cut the leader's host off the bridge for 10 s, then restore

For each it reports the time until chat works again between every pair of
live hosts (and, for the partition, everywhere after the restore), and it
proves that no acknowledged message was lost: each one is in the history of
its conversation. After each fault the host is brought back and the cluster
must be whole (3 nodes listed and linked) before the next.

usage: multihost_test.py BUILD_DIR [--only NAME] [--keep]
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from clusterlib import (REPO, SUITE, ZK_TIMEOUT_MS, NODE_TTL_MS, Client, ConnectionClosed,
                        finish_run, http_get, metrics, uname, wait_for)

NODE_PORT, CLUSTER_PORT, ZK_PORT = 9001, 9101, 2181
REDIS_PORT, MONGO_PORT, GW_PORT = 6379, 27017, 8080


def sh(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True)


class Net:
    """A bridge in this namespace and one namespace per host on it."""

    def __init__(self, hosts):
        self.tag = os.urandom(2).hex()
        self.hosts = hosts
        self.bridge = f"chbr{self.tag}"
        used = sh("ip", "-4", "-o", "addr").stdout + sh("ip", "-4", "route").stdout
        for _ in range(200):
            r, s = 100 + os.urandom(1)[0] % 150, os.urandom(1)[0]
            self.prefix = f"10.{r}.{s}"
            if f"{self.prefix}." not in used:
                break
        else:
            raise RuntimeError("no free 10.x.y.0/24 for the test bridge")

    def ns(self, i):
        return f"chat{self.tag}h{i}"

    def veth(self, i):
        return f"ch{self.tag}v{i}"

    def addr(self, i):
        return f"{self.prefix}.{i}"

    def up(self):
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.prefix}.254/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for i in range(1, self.hosts + 1):
            ns = self.ns(i)
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", self.veth(i), "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", self.veth(i), "master", self.bridge, "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.addr(i)}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")

    def pids(self, i):
        return [int(p) for p in sh("ip", "netns", "pids", self.ns(i), check=False).stdout.split()]

    def kill_host(self, i):
        """kill -9 of every process of host i, as a power cut would."""
        for p in self.pids(i):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for(lambda: not self.pids(i), 10, f"host {i} to have no process")

    def cable(self, i, plugged):
        sh("ip", "link", "set", self.veth(i), "up" if plugged else "down")

    def down(self):
        for i in range(1, self.hosts + 1):
            if os.path.exists(f"/run/netns/{self.ns(i)}"):
                self.kill_host(i)
                sh("ip", "netns", "del", self.ns(i), check=False)
        sh("ip", "link", "del", self.bridge, check=False)


class Hosts:
    """The cluster's processes, each started inside its host's namespace."""

    def __init__(self, build, tmp, net):
        self.build, self.tmp, self.net = build, tmp, net
        self.procs = {}
        self.token = os.urandom(16).hex()
        self.dirty = "conformancedirt"
        for name, text in (("secret", os.urandom(24).hex()), ("push.token", self.token),
                           ("dirty.txt", self.dirty + "\n")):
            with open(f"{tmp}/{name}", "w") as f:
                f.write(text)
        # Redis and ZooKeeper credentials: mode-600 files (finish_run greps
        # the logs for them), never argv
        self.redis_password = os.urandom(18).hex()
        for name, text in (("redis.password", self.redis_password),
                           ("zk.auth", f"chat:{os.urandom(18).hex()}")):
            fd = os.open(f"{tmp}/{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text + "\n")
        self.gateway = f"http://{net.addr(4)}:{GW_PORT}"

    def spawn(self, host, name, argv):
        log = open(f"{self.tmp}/{name}.log", "ab")
        self.procs[name] = subprocess.Popen(["ip", "netns", "exec", self.net.ns(host)] + argv,
                                            stdout=log, stderr=subprocess.STDOUT)

    def start_services(self):
        a = self.net.addr(4)
        conf = f"{self.tmp}/redis.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"bind {a}\nport {REDIS_PORT}\nsave \"\"\nappendonly no\ndir {self.tmp}\n"
                    f"requirepass {self.redis_password}\n")
        self.spawn(4, "redis", ["redis-server", conf])
        self.spawn(4, "mongo", [f"{REPO}/scripts/congodb.sh", "run", f"{self.tmp}/congodb",
                                str(MONGO_PORT), a])
        for i in (1, 2, 3):
            self.start_zk(i)
        self.spawn(4, "gateway", [
            f"{self.build}/gateway/chat-gateway", "--listen", f"{a}:{GW_PORT}",
            "--redis", f"{a}:{REDIS_PORT}", "--push-token-file", f"{self.tmp}/push.token",
            "--node-ttl", str(NODE_TTL_MS), "--redis-password-file", f"{self.tmp}/redis.password"])

    def start_zk(self, i):
        servers = ",".join(f"{j}={self.net.addr(j)}:2888:3888" for j in (1, 2, 3))
        self.spawn(i, f"zk{i}", [f"{REPO}/scripts/zookeeper.sh", "run", f"{self.tmp}/zk{i}",
                                 str(ZK_PORT), "--bind", self.net.addr(i), "--id", str(i),
                                 "--servers", servers])

    def start_node(self, i):
        a, h4 = self.net.addr(i), self.net.addr(4)
        zk = ",".join(f"{self.net.addr(j)}:{ZK_PORT}" for j in (1, 2, 3))
        self.spawn(i, f"node{i}", [
            f"{self.build}/node/chat-node", "--id", f"n{i}", "--num", str(i),
            "--listen", f"{a}:{NODE_PORT}", "--public-url", f"ws://{a}:{NODE_PORT}/ws",
            "--redis", f"{h4}:{REDIS_PORT}", "--store", f"mongodb://{h4}:{MONGO_PORT}/chat",
            "--dirty-words", f"{self.tmp}/dirty.txt", "--pwhash-ops", "1", "--pwhash-mem", "8M",
            "--rate", "1000", "--burst", "2000", "--zk", zk, "--zk-timeout", str(ZK_TIMEOUT_MS),
            "--cluster-listen", f"{a}:{CLUSTER_PORT}", "--cluster-secret-file", f"{self.tmp}/secret",
            "--redis-password-file", f"{self.tmp}/redis.password",
            "--zk-auth-file", f"{self.tmp}/zk.auth"])

    def restart_host(self, i):
        self.start_zk(i)
        self.start_node(i)

    def node_url(self, i):
        return f"http://{self.net.addr(i)}:{NODE_PORT}"

    def ws_url(self, i):
        return f"ws://{self.net.addr(i)}:{NODE_PORT}/ws"

    def servers(self):
        try:
            return json.loads(http_get(f"{self.gateway}/servers")[1])["servers"]
        except Exception:  # noqa: BLE001 - not serving yet
            return []

    def role(self, i):
        """"leader", "linked" (a follower linked to a leader) or None."""
        try:
            m = metrics(f"{self.node_url(i)}/metrics")
        except Exception:  # noqa: BLE001 - down or cut off
            return None
        if m.get("chat_node_leader") == 1:
            return "leader"
        return "linked" if m.get("chat_node_leader_linked") == 1 else None

    def whole(self):
        roles = [self.role(i) for i in (1, 2, 3)]
        return (len(self.servers()) == 3 and roles.count("leader") == 1
                and roles.count("linked") == 2)

    def leader(self):
        return wait_for(lambda: next((i for i in (1, 2, 3) if self.role(i) == "leader"), None),
                        30, "a leader")

    def stop(self):
        for p in self.procs.values():
            p.terminate()
        for p in self.procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


async def blocking(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def open_login(url, user, register=False):
    c = await Client.open(url)
    try:
        if register:
            await c.ok("register", {"user": user, "password": "secret-pw"})
        await c.ok("login", {"user": user, "password": "secret-pw"})
    except BaseException:
        await c.close()
        raise
    return c


async def login_anywhere(hosts, user):
    """Logs in at the first node the gateway lists that answers (a dead
    node stays listed until its TTL runs out), as a client would."""
    for s in await blocking(hosts.servers):
        try:
            return await asyncio.wait_for(open_login(s["url"], user), 5)
        except Exception:  # noqa: BLE001 - dead or cut off: the next one
            pass
    return None


class Sender:
    """Sends chat to `to` without pause, one request at a time; when its
    node goes away it asks the gateway for another and logs in again.
    Keeps the msgid of every message the cluster acknowledged."""

    def __init__(self, hosts, home, user, to):
        self.hosts, self.home, self.user, self.to = hosts, home, user, to
        self.acked, self.failed, self.c = [], 0, None
        self.gen = 0  # connections made; the first is to its home host's node
        self.ack_times = []  # (monotonic time, connection) of each acknowledgement

    async def connect(self, first):
        self.gen += 1
        if first:
            self.c = await open_login(self.hosts.ws_url(self.home), self.user, register=True)
        else:
            self.c = await login_anywhere(self.hosts, self.user)

    async def run(self, stop):
        k = 0
        while not stop.is_set():
            if self.c is None:
                await self.connect(False)
                if self.c is None:
                    await asyncio.sleep(0.2)
                    continue
            k += 1
            try:
                r = await self.c.req("chat", {"to": self.to, "message": f"{self.user} {k}",
                                              "cid": f"k{k}"}, timeout=5)
            except (ConnectionClosed, asyncio.TimeoutError, OSError):
                await self.c.close()
                self.c, self.failed = None, self.failed + 1
                continue
            if r["code"] == 0:
                self.acked.append(r["data"]["msgid"])
                self.ack_times.append((time.monotonic(), self.gen))
            else:
                self.failed += 1
                await asyncio.sleep(0.05)


async def history_ids(hosts, user, peer):
    """Every msgid of the user's conversation with peer, through the gateway."""
    c = await login_anywhere(hosts, user)
    assert c is not None, "no node listed by the gateway answers"
    ids, before = set(), None
    try:
        while True:
            q = {"with": peer, "limit": 100}
            if before:
                q["before"] = before
            page = (await c.ok("history", q))["messages"]
            ids.update(m["msgid"] for m in page)
            if len(page) < 100:
                return ids
            before = page[0]["msgid"]
    finally:
        await c.close()


class Probes:
    """One probe user per host, logged in at that host's node directly:
    `round()` says whether chat works between every pair of `alive` hosts."""

    def __init__(self, hosts):
        self.hosts, self.users, self.conns, self.n = hosts, {}, {}, 0

    async def ensure(self, i):
        if i not in self.users:
            self.users[i] = uname(f"p{i}")
            self.conns[i] = await open_login(self.hosts.ws_url(i), self.users[i], register=True)
        elif i not in self.conns:
            self.conns[i] = await open_login(self.hosts.ws_url(i), self.users[i])

    async def drop(self, i):
        c = self.conns.pop(i, None)
        if c:
            await c.close()

    async def pair(self, i, j):
        self.n += 1
        text = f"probe {self.n}"
        r = await self.conns[i].req("chat", {"to": self.users[j], "message": text}, timeout=2)
        if r["code"] != 0:
            return False
        await self.conns[j].event(lambda e: e["event"] == "chat" and e["data"]["message"] == text,
                                  timeout=1.5)
        return True

    async def round(self, alive):
        try:
            for i in alive:
                await asyncio.wait_for(self.ensure(i), 3)
            for i in alive:
                for j in alive:
                    if i != j and not await self.pair(i, j):
                        return False
            return True
        except Exception:  # noqa: BLE001 - not yet
            for i in alive:
                await self.drop(i)
            return False

    async def until_works(self, alive, t0, limit=60):
        while time.monotonic() - t0 < limit:
            if await self.round(alive):
                return time.monotonic() - t0
            await asyncio.sleep(0.1)
        raise AssertionError(f"chat between hosts {alive} did not come back in {limit} s")


async def with_traffic(hosts, fault, extra=None):
    """Runs `fault()` while a sender on each chat host writes to a user on the
    next host; then proves every acknowledged message is in history."""
    pairs = [(i, uname(f"s{i}"), uname(f"r{i}")) for i in (1, 2, 3)]
    for i, _, r in pairs:  # receivers exist on the next host, then log off
        c = await open_login(hosts.ws_url(i % 3 + 1), r, register=True)
        await c.close()
    senders = [Sender(hosts, i, s, r) for i, s, r in pairs]
    for s in senders:
        await s.connect(True)
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(s.run(stop)) for s in senders]
    await asyncio.sleep(1)
    try:
        report = await fault()
        await asyncio.sleep(1)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for s in senders:
            if s.c:
                await s.c.close()
    acked = lost = 0
    for s in senders:
        stored = await history_ids(hosts, s.to, s.user)
        missing = set(s.acked) - stored
        acked += len(s.acked)
        lost += len(missing)
        assert not missing, f"{s.user} -> {s.to}: acknowledged, not in history: {sorted(missing)[:5]}"
    assert acked > 0, "no message was acknowledged during the fault"
    if extra:
        report += "; " + extra(senders)
    return f"{report}; {acked} messages acknowledged across the fault, {lost} lost"


async def back_whole(hosts, probes):
    await blocking(wait_for, hosts.whole, 60, "3 nodes listed and linked")
    t0 = time.monotonic()
    await probes.until_works([1, 2, 3], t0)


async def scenario_kill_host(hosts, net, probes, which):
    leader = await blocking(hosts.leader)
    victim = leader if which == "leader" else next(i for i in (1, 2, 3) if i != leader)
    alive = [i for i in (1, 2, 3) if i != victim]

    async def fault():
        for i in (1, 2, 3):
            await probes.ensure(i)
        t0 = t_kill[0] = time.monotonic()
        net.kill_host(victim)
        await probes.drop(victim)
        took = await probes.until_works(alive, t0)
        return (f"{which} host h{victim} killed: chat between every live host again "
                f"{took:.2f} s after the kill")

    def moved(senders):  # the victim's clients, back through the gateway
        s = next(s for s in senders if s.home == victim)
        after = [t for t, gen in s.ack_times if gen > 1]  # not an answer in flight at the kill
        return f"its clients chatting again via other nodes {after[0] - t_kill[0]:.2f} s after it" \
            if after else "its clients did not chat again"

    t_kill = [0.0]
    report = await with_traffic(hosts, fault, moved)
    hosts.restart_host(victim)
    await back_whole(hosts, probes)
    return report


async def scenario_partition(hosts, net, probes):
    victim = await blocking(hosts.leader)
    alive = [i for i in (1, 2, 3) if i != victim]

    async def fault():
        for i in (1, 2, 3):
            await probes.ensure(i)
        t0 = time.monotonic()
        net.cable(victim, False)
        await probes.drop(victim)
        took = await probes.until_works(alive, t0)
        await asyncio.sleep(max(0.0, 10 - (time.monotonic() - t0)))
        t1 = time.monotonic()
        net.cable(victim, True)
        everywhere = await probes.until_works([1, 2, 3], t1)
        await blocking(wait_for, hosts.whole, 60, "3 nodes listed and linked")
        return (f"leader host h{victim} cut off for 10 s: chat between the other hosts again "
                f"{took:.2f} s after the cut; everywhere {everywhere:.2f} s after the restore")

    return await with_traffic(hosts, fault)


def run_conformance(hosts):
    cmd = [sys.executable, f"{SUITE}/run.py", "--gateway", hosts.gateway, "--push-token",
           hosts.token, "--dirty-word", hosts.dirty, "--timeout", "10", "-j", "4"]
    print("conformance:", " ".join(cmd), flush=True)
    return subprocess.run(cmd).returncode


SCENARIOS = ["leader-host", "follower-host", "partition"]


async def run_scenarios(hosts, net, names):
    probes = Probes(hosts)
    for name in names:
        print(f"=== {name}", flush=True)
        if name == "partition":
            print(await scenario_partition(hosts, net, probes), flush=True)
        else:
            print(await scenario_kill_host(hosts, net, probes, name.split("-")[0]), flush=True)
    for i in list(probes.conns):
        await probes.drop(i)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--only", action="append", choices=SCENARIOS)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("FAILED: network namespaces need root")
        return 1
    build = os.path.abspath(args.build)
    tmp = tempfile.mkdtemp(prefix="chat-multihost.")
    os.chmod(tmp, 0o755)
    net = Net(4)
    hosts = Hosts(build, tmp, net)
    rc = 1
    try:
        subprocess.run([f"{REPO}/scripts/congodb.sh", "install"], check=True)
        net.up()
        print(f"hosts h1..h4 at {net.addr(1)}..{net.addr(4)} on bridge {net.bridge}", flush=True)
        hosts.start_services()
        wait_for(lambda: socket.create_connection((net.addr(4), MONGO_PORT), 0.2), 30, "MongoDB")
        for i in (1, 2, 3):
            hosts.start_node(i)
        wait_for(hosts.whole, 90, "3 nodes listed and linked")
        rc = run_conformance(hosts)
        if rc == 0:
            asyncio.run(run_scenarios(hosts, net, args.only or SCENARIOS))
    except Exception as e:  # noqa: BLE001
        print(f"FAILED: {type(e).__name__}: {e}")
        rc = 1
    finally:
        hosts.stop()
        net.down()
    return finish_run("multihost test", tmp, rc, args.keep)


if __name__ == "__main__":
    sys.exit(main())
