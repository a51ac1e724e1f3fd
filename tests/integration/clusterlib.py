"""Shared by the cluster-level integration tests: a real cluster on private
ports under a temp dir (Redis, ZooKeeper, the gateway, N chat-nodes on one
SQLite file) and a small protocol client.

    cl = Cluster(build_dir, tmp, nodes=3); cl.start(); ...; cl.stop()
    c, d = await login(cl.ws_url(0), uname("a"), register=True)
"""

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SUITE = os.environ.get("CHAT_CONFORMANCE_DIR", os.path.join(REPO, "..", "shared", "conformance"))
sys.path.insert(0, SUITE)
from wsclient import connect, ConnectionClosed  # noqa: E402,F401
import zkprobe  # noqa: E402

ZK_TIMEOUT_MS = 2000
with open(os.path.join(REPO, "scripts", "redis-acl.txt")) as _f:
    REDIS_ACL = _f.read().strip()  # the rights docs/DEPLOY.md gives the chat ACL user
NODE_TTL_MS = 3000


_ports_given = set()


def free_port():
    """A port nobody listens on, never one this process was given before:
    the kernel may hand the same free port to two binds in a row, and a
    cluster takes ~10 of them before anything listens (seen: Redis and a
    node's client port on one number)."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _ports_given:
            _ports_given.add(port)
            return port


def resp_command(*words):
    """One Redis command in RESP."""
    out = b"*%d\r\n" % len(words)
    for w in words:
        w = w.encode() if isinstance(w, str) else w
        out += b"$%d\r\n%s\r\n" % (len(w), w)
    return out


def wait_for(cond, timeout, what, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception:  # noqa: BLE001 - a probe that fails is "not yet"
            pass
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def sanitizer_reports(tmp):
    """Logs under tmp holding an ASan/UBSan report (sanitizer builds: every
    process must stop report-free)."""
    bad = []
    for f in sorted(os.listdir(tmp)):
        if f.endswith(".log"):
            with open(f"{tmp}/{f}", errors="replace") as fh:
                text = fh.read()
            if "Sanitizer" in text or "runtime error:" in text:
                bad.append(f)
    return bad


def http_get(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def metrics(url):
    _, text = http_get(url)
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.partition(" ")
            out[k] = float(v)
    return out


# The ZooKeeper and MongoDB client libraries' own log lines: they drown a
# node's story (a stopping node's driver retries fill its last 40 lines).
LIBRARY_NOISE = re.compile(r":ZOO_[A-Z]+@|^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d+: \[\d+\]:")


def dump_logs(tmp):
    """Every process log under tmp: a sanitizer report whole, else the tail
    without the client libraries' lines."""
    for f in sorted(os.listdir(tmp)):
        if f.endswith(".log"):
            with open(f"{tmp}/{f}", errors="replace") as fh:
                lines = fh.readlines()
            at = next((k for k, l in enumerate(lines) if "ERROR: AddressSanitizer" in l
                       or "runtime error:" in l), None)
            # a sanitizer report whole (its first stack is the cause), else the tail
            if at is not None:
                lines, what = lines[at:at + 80], "a sanitizer report"
            else:
                own = [line for line in lines if not LIBRARY_NOISE.search(line)]
                what = f"last {min(40, len(own))} lines"
                if len(own) < len(lines):
                    what += f" of its own; {len(lines) - len(own)} library lines left out"
                lines = own[-40:]
            print(f"----- {f} ({what})")
            print("".join(lines), end="")


# Credential files a Cluster writes under tmp: never in a log.
SECRET_FILES = ("redis.password", "redis-admin.password", "zk.auth")


def secret_leaks(tmp):
    """Logs under tmp holding a generated Redis or ZooKeeper secret."""
    secrets = []
    for name in SECRET_FILES:
        if os.path.exists(f"{tmp}/{name}"):
            with open(f"{tmp}/{name}") as fh:
                value = fh.read().strip()
            secrets += [value, value.partition(":")[2]] if ":" in value else [value]
    bad = []
    for f in sorted(os.listdir(tmp)):
        if f.endswith(".log"):
            with open(f"{tmp}/{f}", errors="replace") as fh:
                text = fh.read()
            if any(sec and sec in text for sec in secrets):
                bad.append(f)
    return bad


def finish_run(name, tmp, rc, keep=False):
    """The common end of a cluster-level test, after its processes stopped:
    a sanitizer report or a generated secret in any log fails it; logs
    shown on failure; tmp removed (unless keep). Prints the closing line and
    returns the code."""
    if sanitizer_reports(tmp):
        print(f"FAILED: sanitizer reports in {sanitizer_reports(tmp)}")
        rc = 1
    if secret_leaks(tmp):
        print(f"FAILED: a Redis or ZooKeeper secret is in {secret_leaks(tmp)}")
        rc = 1
    if os.path.exists(f"{tmp}/redis-acl-denied.log"):
        print("FAILED: Redis refused commands of the chat ACL user (scripts/redis-acl.txt); "
              "see redis-acl-denied.log")
        rc = 1
    if rc != 0:
        dump_logs(tmp)
    if not keep:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    print(name, "passed" if rc == 0 else "FAILED")
    return rc


class Cluster:
    def __init__(self, build, tmp, nodes=3, store="sqlite"):
        """store: "sqlite" (one file under tmp) or "mongo" (a private
        CongoDB server started by scripts/congodb.sh)."""
        self.build, self.tmp, self.count = build, tmp, nodes
        self.mongo_port = free_port() if store == "mongo" else None
        self.procs = {}
        self.redis_port = free_port()
        self.zk_port = free_port()
        self.gw_port = free_port()
        self.node_ports = [free_port() for _ in range(nodes)]
        self.cluster_ports = [free_port() for _ in range(nodes)]
        self.token = os.urandom(16).hex()
        self.dirty = "conformancedirt"
        with open(f"{tmp}/secret", "w") as f:
            f.write(os.urandom(24).hex())
        with open(f"{tmp}/push.token", "w") as f:
            f.write(self.token)
        with open(f"{tmp}/dirty.txt", "w") as f:
            f.write(self.dirty + "\n")
        # Redis and ZooKeeper want credentials (files mode 600, never argv);
        # the chat processes use the ACL user "chat" with the rights
        # docs/DEPLOY.md gives it
        self.redis_password = os.urandom(18).hex()
        self.redis_admin_password = os.urandom(18).hex()
        self.zk_auth = f"chat:{os.urandom(18).hex()}"
        self.zk_root = "/chat"
        for name, value in (("redis.password", self.redis_password), ("zk.auth", self.zk_auth),
                            ("redis-admin.password", self.redis_admin_password)):
            fd = os.open(f"{tmp}/{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(value + "\n")
        self.gateway = f"http://127.0.0.1:{self.gw_port}"
        self.node_args = []     # extra chat-node flags for a test's own needs
        self.gateway_args = []  # extra chat-gateway flags

    def spawn(self, name, argv):
        log = open(f"{self.tmp}/{name}.log", "ab")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def start_redis(self):
        """requirepass in a mode-600 config file: the password stays off argv."""
        conf = f"{self.tmp}/redis.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"port {self.redis_port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\n"
                    f"dir {self.tmp}\nrequirepass {self.redis_admin_password}\n"
                    f"user chat on >{self.redis_password} {REDIS_ACL}\n")
        self.spawn("redis", ["redis-server", conf])
        wait_for(lambda: self.redis_noauth(), 10, "redis (refusing a client without AUTH)")

    def redis_acl_denials(self):
        """ACL LOG entries other than failed logins (a command, key or
        channel the ACL user was refused), as raw text; "" when none."""
        pw = self.redis_admin_password.encode()
        data = b""
        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), 1) as s:
                s.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*2\r\n$3\r\nACL\r\n$3\r\nLOG\r\n"
                          % (len(pw), pw))
                s.settimeout(0.5)
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except OSError:
            pass  # timed out after the whole answer, or Redis is gone
        text = data.decode(errors="replace")
        denied = any(f"reason\r\n${len(r)}\r\n{r}\r\n" in text for r in ("command", "key", "channel"))
        return text if denied else ""

    def redis_admin(self, *args):
        """One command as the admin user; the raw reply (bytes)."""
        pw = self.redis_admin_password.encode()
        with socket.create_connection(("127.0.0.1", self.redis_port), 2) as s:
            s.sendall(resp_command("AUTH", pw) + resp_command(*args))
            data = b""
            while data.count(b"\r\n") < 2:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        ok, _, reply = data.partition(b"\r\n")
        assert ok == b"+OK", f"redis admin AUTH: {ok}"
        return reply

    def redis_admin_bulk(self, *args):
        """A bulk-string reply of one command as the admin: str, or None for nil."""
        with socket.create_connection(("127.0.0.1", self.redis_port), 2) as s:
            s.sendall(resp_command("AUTH", self.redis_admin_password) + resp_command(*args))
            data = b""
            while True:
                ok, _, reply = data.partition(b"\r\n")
                head, sep, body = reply.partition(b"\r\n")
                if head.startswith(b"$-1") or (head.startswith(b"$") and sep and
                                               len(body) >= int(head[1:]) + 2):
                    break
                assert not head or head.startswith(b"$"), f"{args}: {reply!r}"
                chunk = s.recv(65536)
                assert chunk, f"{args}: Redis closed after {data!r}"
                data += chunk
        assert ok == b"+OK", f"redis admin AUTH: {ok!r}"
        return None if head.startswith(b"$-1") else body[:int(head[1:])].decode()

    def redis_noauth(self):
        """True when a raw client without AUTH gets NOAUTH for a PING."""
        with socket.create_connection(("127.0.0.1", self.redis_port), 0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"-NOAUTH")

    def zk_locked(self):
        """The cluster's znodes: closed (read and write) to a client without
        the credentials, and to one with wrong ones; open to the right ones.
        Returns the member count the right credentials see."""
        hp, nodes = f"127.0.0.1:{self.zk_port}", f"{self.zk_root}/nodes"
        for cred in (None, "chat:wrong-password"):
            lerr, _, cerr = zkprobe.probe(hp, nodes, cred, create=True)
            assert (lerr, cerr) == (zkprobe.NOAUTH, zkprobe.NOAUTH), (cred, lerr, cerr)
            lerr, _, cerr = zkprobe.probe(hp, self.zk_root, cred, create=True)
            assert (lerr, cerr) == (zkprobe.NOAUTH, zkprobe.NOAUTH), (cred, lerr, cerr)
        lerr, count, _ = zkprobe.probe(hp, nodes, self.zk_auth)
        assert lerr == zkprobe.OK, lerr
        return count

    def no_secret_in_argv(self):
        for name, p in self.procs.items():
            with open(f"/proc/{p.pid}/cmdline", "rb") as f:
                argv = f.read()
            for sec in (self.redis_password, self.redis_admin_password,
                        self.zk_auth.partition(":")[2]):
                assert sec.encode() not in argv, f"{name} has a secret on its command line"

    def start_zk(self):
        subprocess.run([f"{REPO}/scripts/zookeeper.sh", "start", f"{self.tmp}/zk", str(self.zk_port)],
                       check=True)

    def stop_zk(self):
        subprocess.run([f"{REPO}/scripts/zookeeper.sh", "stop", f"{self.tmp}/zk"], check=True)

    def start_mongo(self):
        subprocess.run([f"{REPO}/scripts/congodb.sh", "start", f"{self.tmp}/congodb",
                        str(self.mongo_port)], check=True)

    def store_uri(self):
        if self.mongo_port:
            return f"mongodb://127.0.0.1:{self.mongo_port}/chat"
        return f"sqlite:{self.tmp}/chat.db"

    def start_node(self, i):
        self.spawn(f"node{i}", [
            f"{self.build}/node/chat-node", "--id", f"n{i}", "--num", str(i + 1),
            "--listen", f"127.0.0.1:{self.node_ports[i]}",
            "--redis", f"127.0.0.1:{self.redis_port}", "--store", self.store_uri(),
            "--dirty-words", f"{self.tmp}/dirty.txt", "--pwhash-ops", "1", "--pwhash-mem", "8M",
            "--rate", "1000", "--burst", "2000",
            "--zk", f"127.0.0.1:{self.zk_port}", "--zk-timeout", str(ZK_TIMEOUT_MS),
            "--cluster-listen", f"127.0.0.1:{self.cluster_ports[i]}",
            "--cluster-secret-file", f"{self.tmp}/secret",
            "--redis-user", "chat", "--redis-password-file", f"{self.tmp}/redis.password",
            "--zk-auth-file", f"{self.tmp}/zk.auth"] + self.node_args)

    def start_gateway(self):
        self.spawn("gateway", [
            f"{self.build}/gateway/chat-gateway", "--listen", f"127.0.0.1:{self.gw_port}",
            "--redis", f"127.0.0.1:{self.redis_port}", "--push-token-file", f"{self.tmp}/push.token",
            "--node-ttl", str(NODE_TTL_MS),
            "--redis-user", "chat", "--redis-password-file", f"{self.tmp}/redis.password"]
            + self.gateway_args)

    def start(self):
        if self.mongo_port:
            self.start_mongo()
        self.start_redis()
        self.start_zk()
        for i in range(self.count):
            self.start_node(i)
        self.start_gateway()
        self.wait_servers(self.count)
        self.wait_linked(range(self.count))
        assert self.zk_locked() == self.count
        self.no_secret_in_argv()

    def node_url(self, i):
        return f"http://127.0.0.1:{self.node_ports[i]}"

    def ws_url(self, i):
        return f"ws://127.0.0.1:{self.node_ports[i]}/ws"

    def servers(self):
        try:
            _, body = http_get(f"{self.gateway}/servers")
            return json.loads(body)["servers"]
        except Exception:  # noqa: BLE001
            return []

    def wait_servers(self, n, timeout=30):
        wait_for(lambda: len(self.servers()) == n, timeout, f"/servers to list {n} nodes")

    def is_leader(self, i):
        return metrics(f"{self.node_url(i)}/metrics").get("chat_node_leader") == 1

    def linked(self, i):
        return metrics(f"{self.node_url(i)}/metrics").get("chat_node_leader_linked") == 1

    def wait_linked(self, nodes, timeout=30):
        wait_for(lambda: all(self.linked(i) for i in nodes), timeout, f"nodes {list(nodes)} linked")

    def leader(self):
        return wait_for(lambda: [i for i in range(self.count)
                                 if f"node{i}" in self.procs and self.procs[f"node{i}"].poll() is None
                                 and self.is_leader(i)], 30, "a leader")[0]

    def kill(self, name):
        p = self.procs.pop(name)
        p.send_signal(signal.SIGKILL)
        p.wait()

    def stop(self):
        # Redis last: what the others send while stopping is checked too
        names = sorted(self.procs, key=lambda n: n == "redis")
        for group in ([n for n in names if n != "redis"], [n for n in names if n == "redis"]):
            if group == ["redis"]:
                denied = self.redis_acl_denials()
                if denied:
                    with open(f"{self.tmp}/redis-acl-denied.log", "w") as f:
                        f.write(denied)
            for name in group:
                self.procs[name].terminate()
            for name in group:
                try:
                    self.procs[name].wait(10)
                except subprocess.TimeoutExpired:
                    self.procs[name].kill()
        subprocess.run([f"{REPO}/scripts/zookeeper.sh", "stop", f"{self.tmp}/zk"])
        if self.mongo_port:
            subprocess.run([f"{REPO}/scripts/congodb.sh", "stop", f"{self.tmp}/congodb"])

    def dump_logs(self):
        dump_logs(self.tmp)


class Client:
    """A protocol client: requests answered in order, events collected."""

    def __init__(self, ws):
        self.ws, self.next_id, self.events, self.waiting = ws, 0, [], {}
        self.pump = asyncio.ensure_future(self._pump())

    @classmethod
    async def open(cls, url):
        return cls(await connect(url, timeout=5))

    async def _pump(self):
        try:
            while True:
                m = json.loads(await self.ws.recv())
                if "event" in m:
                    self.events.append(m)
                elif m.get("id") in self.waiting:
                    self.waiting.pop(m["id"]).set_result(m)
        except Exception:  # noqa: BLE001 - connection ended
            for f in self.waiting.values():
                if not f.done():
                    f.set_exception(ConnectionClosed(1006))

    async def req(self, action, data=None, timeout=10):
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.waiting[self.next_id] = fut
        await self.ws.send_text(json.dumps({"id": self.next_id, "action": action, "data": data or {}}))
        return await asyncio.wait_for(fut, timeout)

    async def ok(self, action, data=None):
        r = await self.req(action, data)
        assert r["code"] == 0, f"{action} {data}: {r}"
        return r.get("data", {})

    async def event(self, pred, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events:
                if pred(e):
                    return e
            await asyncio.sleep(0.02)
        raise AssertionError(f"event not received; have {self.events[-5:]}")

    async def close(self):
        self.pump.cancel()
        self.ws.abort()


async def login(url, user, password="secret-pw", register=False):
    c = await Client.open(url)
    if register:
        await c.ok("register", {"user": user, "password": password})
    d = await c.ok("login", {"user": user, "password": password})
    return c, d


def uname(p):
    return f"{p}{os.urandom(4).hex()}"


async def whole_again(cl, restart=None):
    """Restarts node `restart` (if given) and waits until every node is
    listed by the gateway and linked to the leader."""
    if restart is not None:
        cl.start_node(restart)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, cl.wait_servers, cl.count, 30)
    await loop.run_in_executor(None, cl.wait_linked, range(cl.count), 30)


def run_cluster_test(build, name, body, prefix="chat-test.", setup=None):
    """Starts a 3-node cluster, runs `await body(cl)`, stops it (logs shown
    on failure); prints a closing line and returns the exit code. The store
    is SQLite, or MongoDB (CongoDB) when CHAT_TEST_STORE=mongo."""
    import shutil
    import tempfile
    tmp = tempfile.mkdtemp(prefix=prefix)
    cl = Cluster(os.path.abspath(build), tmp, store=os.environ.get("CHAT_TEST_STORE", "sqlite"))
    if setup:
        setup(cl)  # before start: flags of the test's own
    rc = 1
    try:
        cl.start()
        asyncio.run(body(cl))
        rc = 0
    except Exception as e:  # noqa: BLE001
        print(f"FAILED: {type(e).__name__}: {e}")
    finally:
        cl.stop()
    return finish_run(name, tmp, rc)
