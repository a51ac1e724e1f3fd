#!/usr/bin/env python3
"""A real 3-node cluster on private ports: Redis, ZooKeeper, the gateway and
three chat-nodes under a temp dir. Runs the full conformance suite through
the gateway (cross-node included), then the failover scenarios of issue 3:

  follower   kill -9 a follower: its client resumes through the gateway with
             its token and gets what was sent to it meanwhile
  leader     kill -9 the leader: a new leader within the ZooKeeper session
             timeout + a few seconds; cross-node chat and rooms work again;
             no acknowledged message lost; requests in between get 503 or
             succeed
  redis      Redis restarts: sessions and the node list come back
  one_writer / cache_dead / link_auth / push_parked / stalled /
  redis_kept / bcast_bound / sess_layout / room_slices: see each docstring

usage: cluster_test.py BUILD_DIR [--only NAME] [--no-conformance] [--store sqlite|mongo]
Fails when chat-gateway is not built. Prints measured failover times.
"""

import argparse
import asyncio
import ctypes
import ctypes.util
import hashlib
import hmac
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

from clusterlib import (SUITE, ZK_TIMEOUT_MS, Client, Cluster, login,  # noqa: F401
                        finish_run, metrics, uname, wait_for, whole_again)

# a long location cache here: the moved-user scenario must meet a stale entry
LOCATION_CACHE_MS = 30000


# ---------------------------------------------------------------- scenarios

async def scenario_follower(cl):
    leader = cl.leader()
    follower = next(i for i in range(cl.count) if i != leader)
    other = next(i for i in range(cl.count) if i not in (leader, follower))
    alice, bob = uname("fa"), uname("fb")
    a, ad = await login(cl.ws_url(follower), alice, register=True)
    b, _ = await login(cl.ws_url(other), bob, register=True)
    await b.ok("chat", {"to": alice, "message": "before"})
    await a.event(lambda e: e["event"] == "chat" and e["data"]["message"] == "before")
    t0 = time.monotonic()
    cl.kill(f"node{follower}")
    sent = []
    for k in range(5):   # acknowledged while alice's node is dead
        d = await b.ok("chat", {"to": alice, "message": f"meanwhile {k}"})
        sent.append(d["msgid"])
        await asyncio.sleep(0.2)
    # the gateway stops listing the dead node; alice resumes elsewhere
    await asyncio.get_running_loop().run_in_executor(None, cl.wait_servers, cl.count - 1, 20)
    url = cl.servers()[0]["url"]
    a2 = await Client.open(url)
    d = await a2.ok("login", {"user": alice, "token": ad["token"]})
    resumed = time.monotonic() - t0
    got = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not set(sent) <= got:
        got = {e["data"]["msgid"] for e in a2.events if e["event"] == "chat"}
        await asyncio.sleep(0.05)
    missing = set(sent) - got
    assert not missing, f"lost after follower death: {missing} (pending {d.get('pending')})"
    await a2.ok("ack", {"msgids": sorted(got)})
    # live cross-node traffic to the resumed session
    await b.ok("chat", {"to": alice, "message": "after"})
    await a2.event(lambda e: e["event"] == "chat" and e["data"]["message"] == "after")
    for c in (a, b, a2):
        await c.close()
    await whole_again(cl, follower)
    print(f"follower death: alice resumed with every message {resumed:.2f}s after kill -9")


async def scenario_one_writer(cl):
    """On SQLite a follower's chat, ack and login token writes are committed by the leader
    (one writer per file); on MongoDB by the follower itself. A user who moves
    to another node while the leader's location cache names the old one still
    gets messages live (the old node locates the user again)."""
    leader = cl.leader()
    f1, f2 = [i for i in range(cl.count) if i != leader]
    before = [metrics(f"{cl.node_url(i)}/metrics") for i in range(cl.count)]
    alice, bob = uname("wa"), uname("wb")
    a, _ = await login(cl.ws_url(f1), alice, register=True)
    b, _ = await login(cl.ws_url(f2), bob, register=True)
    for k in range(3):
        await b.ok("chat", {"to": alice, "message": f"warm {k}"})
        e = await a.event(lambda e, k=k: e["event"] == "chat" and e["data"]["message"] == f"warm {k}")
        await a.ok("ack", {"msgids": [e["data"]["msgid"]]})
        await b.event(lambda r, e=e: r["event"] == "receipt" and r["data"]["msgid"] == e["data"]["msgid"])
    await a.ok("logout")
    await a.close()
    # the router (the leader on SQLite, bob's node on MongoDB) caches f1; move
    # alice to the third node, which the router reaches only through f1's re-route
    router = f2 if cl.mongo_port else leader
    a2, _ = await login(cl.ws_url(next(i for i in range(cl.count) if i not in (f1, router))), alice)
    for k in range(3):
        await b.ok("chat", {"to": alice, "message": f"moved {k}"})
    for k in range(3):
        e = await a2.event(lambda e, k=k: e["event"] == "chat" and e["data"]["message"] == f"moved {k}",
                           timeout=5)
        assert not e["data"].get("offline"), f"not live after the move: {e}"
    after = [metrics(f"{cl.node_url(i)}/metrics") for i in range(cl.count)]
    delta = [{k: after[i].get(k, 0) - before[i].get(k, 0) for k in after[i]} for i in range(cl.count)]
    rerouted = delta[f1]["chat_node_reroutes_total"]
    assert rerouted >= 1, f"the stale location was never met (reroutes on the old node: {rerouted})"
    handed = delta[f2]["chat_node_store_handed_total"] + delta[f1]["chat_node_store_handed_total"]
    served = delta[leader]["chat_node_store_served_total"]
    if cl.mongo_port:
        assert handed == 0 and served == 0, f"MongoDB: followers write themselves ({handed} handed)"
    else:   # 6 chats from bob and 3 acks from alice, all on followers
        assert handed >= 9 and served >= 9, f"one writer: handed {handed}, served {served}"
    # the writer's store counters: each served write is an item of some commit
    writer = delta[router if cl.mongo_port else leader]
    items, commits = writer["chat_node_store_items_total"], writer["chat_node_store_commits_total"]
    assert items >= max(served, 6) and 1 <= commits <= items, \
        f"store counters on the writer: {items} items, {commits} commits"
    await b.ok("logout")
    await b.close()
    # a password login's new token: the leader writes it (SQLite), and it is
    # committed before the answer, so it resumes at once on another node
    f1_before, lead_before = metrics(f"{cl.node_url(f1)}/metrics"), metrics(f"{cl.node_url(leader)}/metrics")
    b, d = await login(cl.ws_url(f1), bob)
    token_handed = metrics(f"{cl.node_url(f1)}/metrics")["chat_node_store_handed_total"] - \
        f1_before["chat_node_store_handed_total"]
    token_served = metrics(f"{cl.node_url(leader)}/metrics")["chat_node_store_served_total"] - \
        lead_before["chat_node_store_served_total"]
    assert token_handed == (0 if cl.mongo_port else 1), f"login token writes handed: {token_handed}"
    assert token_served == (0 if cl.mongo_port else 1), f"login token writes served: {token_served}"
    await b.close()
    b = await Client.open(cl.ws_url(f2))
    await b.ok("login", {"user": bob, "token": d["token"]})
    for c in (a2, b):
        await c.close()
    print(f"one writer ({'mongo' if cl.mongo_port else 'sqlite'}): {handed:.0f} writes handed to the leader; "
          f"a moved user reached live after {rerouted:.0f} re-route(s); a new login token ({token_handed:.0f} handed) resumed on another node")


async def scenario_cache_dead(cl):
    """A user whose cached node is killed and who logs in on another node
    before ZooKeeper drops the dead one is reached live: the leader, which
    has no link to the guessed node, locates the user again rather than
    holding the message for a node that will not come back."""
    leader = cl.leader()
    f1, f2 = [i for i in range(cl.count) if i != leader]
    alice, bob = uname("ca"), uname("cb")
    a, _ = await login(cl.ws_url(f1), alice, register=True)
    b, _ = await login(cl.ws_url(f2), bob, register=True)
    for k in range(3):   # the router (leader on SQLite, bob's node on MongoDB) caches f1
        await b.ok("chat", {"to": alice, "message": f"warm {k}"})
        await a.event(lambda e, k=k: e["event"] == "chat" and e["data"]["message"] == f"warm {k}")
    before = metrics(f"{cl.node_url(leader)}/metrics")
    t0 = time.monotonic()
    cl.kill(f"node{f1}")
    # alice comes back where the router does not find her locally
    a2, _ = await login(cl.ws_url(leader if cl.mongo_port else f2), alice)
    r = await b.ok("chat", {"to": alice, "message": "after the kill"})
    e = await a2.event(lambda e: e["event"] == "chat" and e["data"]["message"] == "after the kill", timeout=5)
    assert not e["data"].get("offline"), f"not live: {e}"
    took = time.monotonic() - t0
    assert took < ZK_TIMEOUT_MS / 1000, f"took {took:.2f}s: the dead node's membership expired first"
    rerouted = metrics(f"{cl.node_url(leader)}/metrics")["chat_node_reroutes_total"] - \
        before["chat_node_reroutes_total"]
    assert rerouted >= 1, f"the leader never located the user again ({rerouted})"
    for c in (a, a2, b):
        await c.close()
    await whole_again(cl, f1)
    print(f"cached dead node: the moved user reached live {took:.2f}s after kill -9 "
          f"({r['msgid']}, {rerouted:.0f} re-route(s) on the leader)")


async def scenario_leader(cl):
    leader = cl.leader()
    f1, f2 = [i for i in range(cl.count) if i != leader]
    alice, bob = uname("la"), uname("lb")
    a, _ = await login(cl.ws_url(f1), alice, register=True)
    b, _ = await login(cl.ws_url(f2), bob, register=True)
    room = uname("r")
    await a.ok("room_create", {"room": room})
    await a.ok("room_join", {"room": room})
    await b.ok("room_join", {"room": room})
    t0 = time.monotonic()
    cl.kill(f"node{leader}")
    acked, codes, live_at = [], {}, None
    k = 0
    while time.monotonic() - t0 < ZK_TIMEOUT_MS / 1000 + 15:
        k += 1
        r = await b.req("chat", {"to": alice, "message": f"m{k}", "cid": f"c{k}"})
        codes[r["code"]] = codes.get(r["code"], 0) + 1
        assert r["code"] in (0, 503), f"chat during failover: {r}"
        if r["code"] == 0:
            acked.append(r["data"]["msgid"])
            try:
                await a.event(lambda e, m=f"m{k}": e["event"] == "chat" and e["data"]["message"] == m,
                              timeout=0.3)
                if cl.linked(f1) and cl.linked(f2):
                    live_at = time.monotonic() - t0
                    break
            except AssertionError:
                pass
    assert live_at is not None, "cross-node chat never came back after the leader died"
    new_leader = cl.leader()
    assert new_leader != leader
    # rooms work again (followers re-announced their members)
    r = await b.req("room_chat", {"room": room, "message": "room again"})
    assert r["code"] == 0, r
    await a.event(lambda e: e["event"] == "room_chat" and e["data"]["message"] == "room again")
    d = await a.ok("room_members", {"room": room})
    assert sorted(d["members"]) == sorted([alice, bob]), d
    # every acknowledged message reached alice live or is pending for her
    live = {e["data"]["msgid"] for e in a.events if e["event"] == "chat"}
    await a.close()
    a2, ad = await login(cl.ws_url(f1), alice)
    await asyncio.sleep(0.5)
    offline = {e["data"]["msgid"] for e in a2.events if e["event"] == "chat"}
    lost = set(acked) - live - offline
    assert not lost, f"acknowledged and lost: {lost}"
    for c in (a2, b):
        await c.close()
    await whole_again(cl, leader)
    print(f"leader death: cross-node chat live again {live_at:.2f}s after kill -9 "
          f"(ZooKeeper session timeout {ZK_TIMEOUT_MS} ms); chat answers during failover {codes}; "
          f"{len(acked)} acknowledged, 0 lost")


async def scenario_redis(cl):
    leader = cl.leader()
    f1 = next(i for i in range(cl.count) if i != leader)
    alice, bob = uname("ra"), uname("rb")
    a, _ = await login(cl.ws_url(f1), alice, register=True)
    b, _ = await login(cl.ws_url(leader), bob, register=True)
    t0 = time.monotonic()
    cl.kill("redis")
    # sent while Redis is away: stored, but alice's node cannot be found
    r = await b.req("chat", {"to": alice, "message": "during outage"})
    assert r["code"] == 0, f"chat during the Redis outage: {r}"
    outage_online = r["data"]["online"]
    await asyncio.sleep(1)
    cl.start_redis()
    # sessions are re-published: alice is online again, cross-node chat flows
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = await b.req("user_info", {"user": alice})
        if r["code"] == 0 and r["data"]["online"]:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("alice's session never came back after the Redis restart")
    await b.ok("chat", {"to": alice, "message": "after redis"})
    await a.event(lambda e: e["event"] == "chat" and e["data"]["message"] == "after redis")
    # what went pending during the outage reaches alice live, without a new login
    e = await a.event(lambda e: e["event"] == "chat" and e["data"]["message"] == "during outage")
    print(f"redis restart: the message sent during the outage (answered online={outage_online}) "
          f"arrived live (offline={e['data'].get('offline', False)}) without a new login")
    await asyncio.get_running_loop().run_in_executor(None, cl.wait_servers, cl.count, 20)
    print(f"redis restart: sessions, node list and cross-node chat back "
          f"{time.monotonic() - t0:.2f}s after kill -9 (1 s down)")
    for c in (a, b):
        await c.close()


async def scenario_redis_kept(cl):
    """The nodes' Redis connections drop while Redis keeps its data (as when
    a command times out on a starved node): each node reconnects, finds its
    entry kept and publishes nothing again; its users stay reachable live."""
    leader = cl.leader()
    f1 = next(i for i in range(cl.count) if i != leader)
    alice, bob = uname("ka"), uname("kb")
    a, _ = await login(cl.ws_url(f1), alice, register=True)
    b, _ = await login(cl.ws_url(leader), bob, register=True)
    kept = ("Redis connected again and kept them", )
    publish = ("] publishing", "(Redis connected again)")
    before = [log_count(cl, i, *kept) for i in range(cl.count)]
    published = [log_count(cl, i, *publish) for i in range(cl.count)]
    killed = cl.redis_admin("CLIENT", "KILL", "USER", "chat")
    assert killed.startswith(b":") and int(killed[1:]) >= cl.count, f"CLIENT KILL: {killed}"
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, wait_for, lambda: all(
        log_count(cl, i, *kept) > before[i] for i in range(cl.count)), 15,
        "every node to find its sessions kept")
    assert [log_count(cl, i, *publish) for i in range(cl.count)] == published, \
        "a node published its sessions again though Redis kept them"
    d = await b.ok("chat", {"to": alice, "message": "after the reconnect"})
    assert d["online"], f"alice offline after her node's reconnect: {d}"
    e = await a.event(lambda e: e["event"] == "chat" and e["data"]["message"] == "after the reconnect",
                      timeout=5)
    assert not e["data"].get("offline"), f"not live: {e}"
    for c in (a, b):
        await c.close()
    print(f"redis connections dropped: {int(killed[1:])} reconnected, no node published its "
          "sessions again, cross-node chat live")


def frame(t, payload):
    return struct.pack(">IB", len(payload) + 1, t) + payload


def read_frame(sock):
    head = b""
    while len(head) < 5:
        chunk = sock.recv(5 - len(head))
        if not chunk:
            return None
        head += chunk
    n, t = struct.unpack(">IB", head)
    body = b""
    while len(body) < n - 1:
        chunk = sock.recv(n - 1 - len(body))
        if not chunk:
            return None
        body += chunk
    return t, body


def closed_by_peer(sock, timeout=5):
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


SODIUM = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
SODIUM.sodium_init()
# libsodium's AES-256-GCM runs only on CPUs with AES-NI and PCLMUL
AES_HERE = SODIUM.crypto_aead_aes256gcm_is_available() == 1


class Sealed:
    """The follower's side of a link after WELCOME, written from the spec in
    proto/proto.h (keyed BLAKE2b, libsodium's KDF construction, ChaCha20-
    Poly1305 or AES-256-GCM through libsodium): a second implementation to
    check ours."""

    def __init__(self, secret, fnonce, lnonce, follower, leader, aead=None):
        name = "aes256gcm" if aead == "aes256gcm" else "chacha20poly1305_ietf"
        self.encrypt = getattr(SODIUM, f"crypto_aead_{name}_encrypt")
        self.decrypt = getattr(SODIUM, f"crypto_aead_{name}_decrypt")
        skey = hashlib.blake2b(secret, digest_size=32, key=b"chat-link-v1").digest()
        master = hashlib.blake2b(fnonce + lnonce + follower.encode() + b"\0" + leader.encode() + b"\0",
                                 digest_size=32, key=skey).digest()
        sub = lambda i: hashlib.blake2b(b"", digest_size=32, key=master,  # noqa: E731
                                        salt=struct.pack("<Q", i) + bytes(8),
                                        person=b"chatlink" + bytes(8)).digest()
        self.tx, self.rx, self.tx_seq, self.rx_seq = sub(1), sub(2), 0, 0

    def _aead(self, fn, key, seq, data, ad, extra):
        out = ctypes.create_string_buffer(len(data) + 16)
        n = ctypes.c_ulonglong(0)
        nonce = bytes(4) + struct.pack(">Q", seq)
        rc = fn(out, ctypes.byref(n), None, data, ctypes.c_ulonglong(len(data)), ad,
                ctypes.c_ulonglong(len(ad)), nonce, key) if extra else \
            fn(out, ctypes.byref(n), data, ctypes.c_ulonglong(len(data)), ad,
               ctypes.c_ulonglong(len(ad)), None, nonce, key)
        return out.raw[:n.value] if rc == 0 else None

    def seal(self, inner_type, payload, seq=None):
        seq = self.tx_seq if seq is None else seq
        self.tx_seq = max(self.tx_seq, seq + 1)
        head = struct.pack(">IB", 4 + 8 + 1 + len(payload) + 16 + 1 - 4, 17) + struct.pack(">Q", seq)
        c = self._aead(self.encrypt, self.tx, seq, bytes([inner_type]) + payload, head, False)
        return head + c

    def open(self, f):
        assert f and f[0] == 17, f"expected a sealed frame, got {f and f[0]}"
        seq = struct.unpack(">Q", f[1][:8])[0]
        assert seq == self.rx_seq, (seq, self.rx_seq)
        head = struct.pack(">IB", len(f[1]) + 1, 17) + f[1][:8]
        m = self._aead(self.decrypt, self.rx, seq, f[1][8:], head, True)
        assert m is not None, "a frame from the leader did not open"
        self.rx_seq += 1
        return m[0], m[1:]


def link_probe(cl, port, secret, name, offer=None):
    """A follower's handshake by hand, offering the AEAD offer (None: none,
    as builds before the offer); returns the socket and its sealed side."""
    nonce = os.urandom(32)
    s = socket.create_connection(("127.0.0.1", port), 2)
    hello = {"node": name, "nonce": nonce.hex()}
    if offer:
        hello["aead"] = offer
    s.sendall(frame(1, json.dumps(hello).encode()))
    t, challenge = read_frame(s)
    s.sendall(frame(3, hmac.new(secret, challenge + f"auth:{name}".encode(), hashlib.sha256).digest()))
    t, body = read_frame(s)
    w = json.loads(body)
    assert t == 4, t
    aead = w.get("aead")
    assert aead == ("aes256gcm" if offer == "aes256gcm" and AES_HERE else None), (offer, w)
    proof = f"welcome:{w['leader']}:{w['epoch']}" + (f":{aead}" if aead else "")
    want = hmac.new(secret, nonce + proof.encode(), hashlib.sha256).hexdigest()
    assert w["mac"] == want, "leader proof does not verify"
    return s, Sealed(secret, nonce, challenge, name, w["leader"], aead)


def leader_log_says(cl, leader, *texts, timeout=5):
    """1 when a line of the leader's log holds every one of texts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"{cl.tmp}/node{leader}.log", errors="replace") as f:
            if any(all(t in line for t in texts) for line in f):
                return True
        time.sleep(0.05)
    return False


async def scenario_link_auth(cl):
    """The cluster port admits only peers that prove the secret, and after
    the handshake only sealed frames in sequence: a replayed, reordered,
    cut, altered or unsealed frame closes the link with a logged reason."""
    leader = cl.leader()
    port = cl.cluster_ports[leader]
    with open(f"{cl.tmp}/secret") as f:
        secret = f.read().strip().encode()
    # the client protocol is refused on the cluster port
    s = socket.create_connection(("127.0.0.1", port), 2)
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")
    assert closed_by_peer(s), "cluster port answered an HTTP request"
    s.close()
    # a wrong secret: HELLO, CHALLENGE, bad AUTH -> closed, no WELCOME
    nonce = os.urandom(32)
    s = socket.create_connection(("127.0.0.1", port), 2)
    s.sendall(frame(1, json.dumps({"node": "intruder", "nonce": nonce.hex()}).encode()))
    t, challenge = read_frame(s)
    assert t == 2 and len(challenge) == 32, (t, challenge)
    bad = hmac.new(b"not-the-secret-at-all", challenge + b"auth:intruder", hashlib.sha256).digest()
    s.sendall(frame(3, bad))
    assert closed_by_peer(s), "a wrong secret was accepted"
    s.close()
    # the right secret: WELCOME proves the leader knows it too; then store
    # calls a follower hands over (one writer), sealed: malformed ones answer
    # 400 at once, a chat to nobody 404; a ping gets a sealed pong
    s, box = link_probe(cl, port, secret, "probe")
    calls = [({"op": "s.chat", "from": "x"}, 400),
             ({"op": "s.chat", "from": "bad name!", "to": "y", "message": "m", "ts": 1}, 400),
             ({"op": "s.chat", "from": "probe1", "to": "y", "message": "m", "ts": -5}, 400),
             ({"op": "s.ack", "user": "probe1", "msgids": ["not-a-msgid"]}, 400),
             ({"op": "s.ack", "user": "probe1", "msgids": 7}, 400),
             ({"op": "s.token", "user": "probe1", "digest": "ab", "expires": 1}, 400),
             ({"op": "s.token", "user": "probe1", "digest": "a" * 64, "expires": "soon"}, 400),
             ({"op": "s.token", "user": "bad name!", "digest": "a" * 64, "expires": 1}, 400),
             ({"op": "s.chat", "from": "probe1", "to": uname("nobody"), "message": "m",
               "ts": int(time.time() * 1000)}, 404)]
    sent = [box.seal(16, json.dumps(dict(body, t="call", id=1000 + k)).encode())
            for k, (body, _) in enumerate(calls)]
    s.sendall(b"".join(sent) + box.seal(5, b""))
    got, pong = {}, False
    s.settimeout(10)
    while len(got) < len(calls) or not pong:
        f = read_frame(s)
        assert f, f"the leader closed the link after store calls (answers so far: {got})"
        t, body = box.open(f)
        pong = pong or t == 6
        m = cluster_msg(body) if t == 16 else {}
        if m.get("t") == "ret":
            got[m["id"]] = m["code"]
    assert got == {1000 + k: c for k, (_, c) in enumerate(calls)}, got
    # replayed: the first call again, byte for byte
    s.sendall(sent[0])
    assert closed_by_peer(s), "a replayed frame was accepted"
    assert leader_log_says(cl, leader, "link from probe: ", "replayed frame"), "no reason logged (replay)"
    s.close()
    # altered, reordered, cut, unsealed: each on a fresh link
    ping = json.dumps({"t": "call", "op": "room_counts", "rooms": [], "id": 1}).encode()
    cases = {
        "altered": lambda b: (lambda f: f[:-1] + bytes([f[-1] ^ 1]))(b.seal(16, ping)),
        "reordered": lambda b: b.seal(16, ping, seq=1) + b.seal(16, ping, seq=0),
        "cut": lambda b: (lambda f: struct.pack(">IB", len(f) - 4 - 3, 17) + f[5:-3])(b.seal(16, ping)),
        "short": lambda b: struct.pack(">IB", 11, 17) + bytes(10),
        "unsealed": lambda b: frame(16, ping),
    }
    reasons = {"altered": "fails authentication", "reordered": "out of sequence",
               "cut": "fails authentication", "short": "truncated sealed frame",
               "unsealed": "unsealed frame"}
    for k, (case, make) in enumerate(cases.items()):
        name = f"probe{k + 2}"
        s, box = link_probe(cl, port, secret, name)
        s.sendall(make(box))
        assert closed_by_peer(s), f"a {case} frame was accepted"
        s.close()
        assert leader_log_says(cl, leader, f"link from {name}: ", reasons[case]), f"no reason logged ({case})"
    assert cl.leader() == leader, "the leader changed after refused frames"
    # the AEAD: a follower that offers AES-256-GCM gets it where this CPU
    # runs it (the leader's proof covers the choice); an offer the leader
    # does not know, or none, seals with ChaCha20-Poly1305; the real
    # followers linked with AES here
    ups0 = metrics(f"{cl.node_url(leader)}/metrics")
    for offer in ("aes256gcm", "rot13", None):
        s, box = link_probe(cl, port, secret, f"probe-{offer}", offer)
        assert probe_until_pong(s, box) == [], f"unexpected messages on a probe ({offer})"
        s.close()
    ups = metrics(f"{cl.node_url(leader)}/metrics")
    aes_key, chacha_key = ('chat_node_link_ups_total{aead="aes256gcm"}',
                           'chat_node_link_ups_total{aead="chacha20poly1305"}')
    assert ups[aes_key] - ups0[aes_key] == (1 if AES_HERE else 0), (ups0, ups)
    assert ups[chacha_key] - ups0[chacha_key] == (2 if AES_HERE else 3), (ups0, ups)
    if AES_HERE:
        assert ups0[aes_key] >= cl.count - 1, f"the followers did not link with AES: {ups0}"
    # a follower refuses links: only the leader accepts
    other = next(i for i in range(cl.count) if i != leader)
    s = socket.create_connection(("127.0.0.1", cl.cluster_ports[other]), 2)
    s.sendall(frame(1, json.dumps({"node": "probe2", "nonce": nonce.hex()}).encode()))
    assert closed_by_peer(s), "a follower accepted a link"
    s.close()
    # oversized frames close the link: beyond the frame limit, and any big
    # frame before authentication (unauthenticated peers cannot pin memory)
    for n in (0x7FFFFFFF, 4096):
        s = socket.create_connection(("127.0.0.1", port), 2)
        s.sendall(struct.pack(">IB", n, 1))
        assert closed_by_peer(s), f"a {n}-byte handshake frame was not refused"
        s.close()
    print("link auth: HTTP, wrong secret, follower links and oversized frames refused; the leader's "
          "proof verifies; sealed calls answered (malformed 400); replayed, altered, reordered, cut, "
          "short and unsealed frames close the link with the reason logged; links seal with "
          f"{'AES-256-GCM when offered' if AES_HERE else 'ChaCha20-Poly1305 (no AES here)'}, "
          "else ChaCha20-Poly1305")


def cluster_msg(body):
    """A MSG payload: JSON, then (when it carries a client frame) NUL and the
    frame's bytes, which are the message's "f"."""
    head, nul, tail = body.partition(b"\0")
    m = json.loads(head)
    if nul:
        m["f"] = tail.split(b"\0", 1)[0].decode()
    return m


def probe_until_pong(s, box, timeout=5):
    """Pings the leader; returns the messages it sent the probe before the pong."""
    s.sendall(box.seal(5, b""))
    s.settimeout(timeout)
    got = []
    while True:
        f = read_frame(s)
        assert f, "the leader closed the probe's link"
        t, body = box.open(f)
        if t == 6:
            return got
        if t == 16:
            got.append(cluster_msg(body))


async def scenario_rsync_skip(cl):
    """A follower that re-links says its run and share version (rcheck); the
    leader asks for the whole share (rwant) only when it does not hold exactly
    that: first link, another run, a change it missed, a gap in the changes.
    Then a real follower's link is cut (a probe takes its name): it re-links
    without re-sending its share, and its room members are still known."""
    leader = cl.leader()
    port, url = cl.cluster_ports[leader], cl.node_url(leader)
    with open(f"{cl.tmp}/secret") as f:
        secret = f.read().strip().encode()
    name, room = uname("share"), uname("sr")
    users = [uname("su") for _ in range(3)]
    skipped0 = metrics(f"{url}/metrics").get("chat_node_rsync_skipped_total", 0)

    def send(s, box, *msgs):
        s.sendall(b"".join(box.seal(16, json.dumps(m).encode()) for m in msgs))

    def relink(sv, boot="7"):
        s, box = link_probe(cl, port, secret, name)
        send(s, box, {"t": "rcheck", "boot": boot, "sv": sv})
        return s, box, any(m.get("t") == "rwant" for m in probe_until_pong(s, box))

    s, box, want = relink(0)
    assert want, "a follower the leader never synced was not asked for its share"
    send(s, box, {"t": "rsync", "reset": True, "boot": "7", "rooms": {room: [users[0]]}},
         {"t": "rsync", "rooms": {}, "done": True, "sv": 0})
    probe_until_pong(s, box)
    s.close()
    s, box, want = relink(0)
    assert not want, "the leader asked again for a share it holds"
    send(s, box, {"t": "rjoin", "room": room, "user": users[1], "sv": 1})
    probe_until_pong(s, box)
    s.close()
    s, box, want = relink(1)
    assert not want, "the leader asked again after a change it applied"
    s.close()
    for sv, boot, why in ((1, "8", "another run"), (2, "7", "a change the leader missed")):
        s, box, want = relink(sv, boot)
        assert want, f"not asked for the share after {why}"
        s.close()
    s, box, want = relink(1)
    assert not want, "the leader asked again after refusing other runs and versions"
    send(s, box, {"t": "rjoin", "room": room, "user": users[2], "sv": 3})  # 2 never arrived
    send(s, box, {"t": "call", "op": "rmembers", "room": room, "id": 1})
    got = probe_until_pong(s, box)
    s.close()
    members = next(m["data"]["members"] for m in got if m.get("t") == "ret")
    assert sorted(members) == sorted(users), f"members held: {members}"
    s, box, want = relink(3)
    assert want, "not asked for the share after a gap in the changes"
    s.close()
    skipped = metrics(f"{url}/metrics").get("chat_node_rsync_skipped_total", 0) - skipped0
    assert skipped == 3, f"skipped re-syncs: {skipped}, not 3"
    # a real follower: a user of its is in "world"; its link is cut
    f = next(i for i in range(cl.count) if i != leader)
    other = next(i for i in range(cl.count) if i not in (leader, f))
    alice, bob = uname("ska"), uname("skb")
    a, _ = await login(cl.ws_url(f), alice, register=True)
    b, _ = await login(cl.ws_url(other), bob, register=True)
    s, box = link_probe(cl, port, secret, f"n{f}")  # replaces the follower's link
    s.close()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, wait_for, lambda: metrics(f"{url}/metrics").get(
        "chat_node_rsync_skipped_total", 0) - skipped0 == 4, 10,
        "the follower to re-link without re-sending its share")
    await loop.run_in_executor(None, cl.wait_linked, [f], 10)
    d = await b.ok("room_members", {"room": "world"})
    assert alice in d["members"], f"the re-linked follower's member is not known: {d}"
    for c in (a, b):
        await c.close()
    print("rsync skip: re-links with the share held send none (4 skipped); first link, another "
          "run, a missed change and a gap each ask for the whole share")


async def scenario_push_parked(cl):
    """A push to an offline user counts at the very next login, once; an ack ends it."""
    user = uname("pp")
    c, _ = await login(cl.ws_url(0), user, register=True)
    await c.ok("logout")
    await c.close()
    body = json.dumps({"message": "parked", "to": user}).encode()
    req = urllib.request.Request(f"{cl.gateway}/push", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {cl.token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        msgid = json.loads(r.read())["msgid"]
    c, d = await login(cl.ws_url(1), user)          # at once: maybe not stored yet
    assert d["pending"] == 1, d
    e = await c.event(lambda e: e["event"] == "system" and e["data"]["msgid"] == msgid)
    assert e["data"].get("offline") is True, e
    await c.ok("ack", {"msgids": [msgid]})
    await c.ok("logout")
    await c.close()
    await asyncio.sleep(0.5)                        # the storing node's commit, if it was late
    c, d = await login(cl.ws_url(2), user)
    assert d["pending"] == 0, f"an acked push came back: {d}"
    await c.close()
    print("push parked: counted at the next login, gone once acked")


def log_count(cl, i, *texts):
    with open(f"{cl.tmp}/node{i}.log", errors="replace") as f:
        return sum(1 for line in f if all(t in line for t in texts))


async def login_retry(url, user, timeout=10):
    """Logs in as soon as a (re)starting node serves."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await login(url, user)
        except Exception:  # noqa: BLE001 - not serving yet: refused, closed, 503
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def scenario_restart_fast(cl):
    """kill -9 a follower and start it again at once: the new run serves and
    logs clients in while ZooKeeper still holds the old run's session. When
    the leader hears the old run left, the new run's session and node entry
    stay: a client logged in before that is reached live afterwards."""
    leader = cl.leader()
    f, other = [i for i in range(cl.count) if i != leader]
    carol, dave = uname("rc"), uname("rd")
    c, _ = await login(cl.ws_url(other), carol, register=True)
    await c.ok("logout")
    await c.close()
    d, _ = await login(cl.ws_url(other), dave, register=True)
    gone = ("cluster: node n%d " % f, )
    before = log_count(cl, leader, *gone)
    cl.kill(f"node{f}")
    cl.start_node(f)
    c, _ = await login_retry(cl.ws_url(f), carol)
    assert log_count(cl, leader, *gone) == before, \
        "the leader heard the old run leave before the new run's login: the race was not met"
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, wait_for, lambda: log_count(cl, leader, *gone) > before,
                               ZK_TIMEOUT_MS / 1000 + 10, "the leader to hear the old run left")
    await whole_again(cl)
    assert len(cl.servers()) == cl.count, f"/servers after the old run left: {cl.servers()}"
    await d.ok("chat", {"to": carol, "message": "after the restart"})
    e = await c.event(lambda e: e["event"] == "chat" and e["data"]["message"] == "after the restart",
                      timeout=5)
    assert not e["data"].get("offline"), f"not live: the new run's session was lost: {e}"
    for x in (c, d):
        await x.close()
    print("fast restart: the old run's departure left the new run's session and entry alone")


async def scenario_stalled(cl):
    """A follower stalled past its ZooKeeper session (SIGSTOP, as a starved
    process is) comes back: the leader took it for dead and ended its
    sessions in Redis, but its clients never left. Once it has joined again
    and re-linked, its sessions are published again: a message to one of
    them is delivered live, and what was sent meanwhile follows."""
    leader = cl.leader()
    f, other = [i for i in range(cl.count) if i != leader]
    alice, bob = uname("sa"), uname("sb")
    a, _ = await login(cl.ws_url(f), alice, register=True)
    b, _ = await login(cl.ws_url(other), bob, register=True)
    left = ("cluster: node n%d left" % f, )
    before = log_count(cl, leader, *left)
    loop = asyncio.get_running_loop()
    cl.procs[f"node{f}"].send_signal(signal.SIGSTOP)
    try:
        await loop.run_in_executor(None, wait_for, lambda: log_count(cl, leader, *left) > before,
                                   ZK_TIMEOUT_MS / 1000 + 10, "the leader to take the stalled node for dead")
        await asyncio.sleep(0.5)                 # the clean-up script has run in Redis
        d = await b.ok("chat", {"to": alice, "message": "while stalled"})
        assert not d["online"], f"alice online while her node is out of ZooKeeper: {d}"
    finally:
        cl.procs[f"node{f}"].send_signal(signal.SIGCONT)
    t0 = time.monotonic()
    await whole_again(cl)
    e = await a.event(lambda e: e["event"] == "chat" and e["data"]["message"] == "while stalled",
                      timeout=10)
    await a.ok("ack", {"msgids": [e["data"]["msgid"]]})
    d = await b.ok("chat", {"to": alice, "message": "after the stall"})
    assert d["online"], f"alice offline after her node came back: {d}"
    e = await a.event(lambda e: e["event"] == "chat" and e["data"]["message"] == "after the stall",
                      timeout=5)
    assert not e["data"].get("offline"), f"not live after the stall: {e}"
    back = time.monotonic() - t0
    for c in (a, b):
        await c.close()
    print(f"stalled follower: its sessions published again, live {back:.2f}s after SIGCONT")


BCAST_BOUND = 16384   # bytes: about three broadcasts of a 4,000-byte push


def push_all(cl, message):
    body = json.dumps({"message": message, "all": True}).encode()
    req = urllib.request.Request(f"{cl.gateway}/push", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {cl.token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status in (200, 202), r.status


async def scenario_bcast_bound(cl):
    """Broadcasts to everyone pile up on a briefly stalled follower
    (--bcast-queue-max 16 KiB there, --fanout-slice 2): running again, it
    keeps what fits, drops the newest past the bound (counted on /metrics),
    gives every session the same kept ones in the same order, and serves on."""
    leader = cl.leader()
    f = next(i for i in range(cl.count) if i != leader)
    cl.kill(f"node{f}")
    cl.node_args += ["--bcast-queue-max", str(BCAST_BOUND)]
    try:
        await whole_again(cl, restart=f)
    finally:
        cl.node_args = cl.node_args[:-2]
    names = [uname(f"bq{k}") for k in range(20)]
    clients = [(await login(cl.ws_url(f), u, register=True))[0] for u in names]
    url = f"{cl.node_url(f)}/metrics"
    dropped0 = metrics(url).get("chat_node_bcast_dropped_total", 0)
    pushes = 40
    cl.procs[f"node{f}"].send_signal(signal.SIGSTOP)
    try:    # well under the ZooKeeper session: the frames wait in f's socket
        for k in range(pushes):
            push_all(cl, f"bq {k:02d} " + "x" * 4000)
        await asyncio.sleep(0.4)
    finally:
        cl.procs[f"node{f}"].send_signal(signal.SIGCONT)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, wait_for, lambda: metrics(url).get(
        "chat_node_bcast_dropped_total", 0) > dropped0, 10, "broadcasts dropped past the bound")
    got = []
    for c in clients:   # every session: the same kept broadcasts, in order
        n = -1
        while n != len(c.events):     # quiet for 0.5 s: the slices are done
            n = len(c.events)
            await asyncio.sleep(0.5)
        got.append([int(e["data"]["message"].split()[1]) for e in c.events
                    if e["event"] == "system" and e["data"]["message"].startswith("bq ")])
    dropped = metrics(url).get("chat_node_bcast_dropped_total", 0) - dropped0
    assert all(g == got[0] for g in got), f"sessions got different broadcasts: {got}"
    # (not in posting order: the nodes pop pushes from Redis side by side)
    assert len(set(got[0])) == len(got[0]) and 1 <= len(got[0]) < pushes, f"kept: {got[0]}"
    assert len(got[0]) + dropped == pushes, f"{len(got[0])} kept + {dropped} dropped != {pushes}"
    await clients[0].ok("chat", {"to": names[1], "message": "after the flood"})
    await clients[1].event(lambda e: e["event"] == "chat" and e["data"]["message"] == "after the flood")
    for c in clients:
        await c.close()
    cl.kill(f"node{f}")           # back to the default bound for what follows
    await whole_again(cl, restart=f)
    print(f"broadcast bound: {len(got[0])} of {pushes} kept, the same on every session, "
          f"{int(dropped)} dropped past {BCAST_BOUND} bytes")


def fnv1a64(text):
    h = 0xcbf29ce484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001b3) & 0xffffffffffffffff
    return h


async def scenario_sess_layout(cl):
    """The session layout of docs/CLUSTER.md, which every node (and any
    tool) must share: a user's session in its bucket hash (FNV-1a 64 of
    the name mod 16384), kept by Redis as a listpack, and listed under its
    node's bucket; a login on another node moves both (and the kicked
    session's clean-up takes the user off the old node's list); a logout
    removes both."""
    first, second = 0, 1
    user = uname("sl")
    b = fnv1a64(user) % 16384
    key = f"chat:sessions:{b}"

    def listed(i):
        return cl.redis_admin_bulk("HGET", f"chat:node:n{i}:users:{b % 1024}", user)

    c1, d = await login(cl.ws_url(first), user, register=True)
    where = cl.redis_admin_bulk("HGET", key, user)
    assert where and where.startswith(f"n{first} "), f"session after login: {where!r}"
    assert listed(first) == str(b), f"node list after login: {listed(first)!r}"
    enc = cl.redis_admin_bulk("OBJECT", "ENCODING", key)
    assert enc in ("listpack", "ziplist"), f"bucket encoding {enc!r}: not the compact one"
    c2 = await Client.open(cl.ws_url(second))
    await c2.ok("login", {"user": user, "token": d["token"]})
    wait_for(lambda: (cl.redis_admin_bulk("HGET", key, user) or "").startswith(f"n{second} "), 5,
             "the session to name the second node")
    wait_for(lambda: listed(second) == str(b) and listed(first) is None, 5,
             "the user listed under the second node only")
    await c2.ok("logout")
    wait_for(lambda: cl.redis_admin_bulk("HGET", key, user) is None and listed(second) is None, 5,
             "the session and its listing gone after the logout")
    for c in (c1, c2):
        await c.close()
    print(f"session layout: bucket {b} ({enc}), moved and removed with the node lists")


async def scenario_room_slices(cl):
    """Rooms with more members on a node than --fanout-slice (2 here) go
    out in slices (counted on /metrics): messages to two such rooms, from a
    sender on that node and from one on another node, sent without waiting
    and interleaved, reach every member exactly once and, room by room, in
    the same order on every member, never their own sender; a member that
    left a room gets nothing of it after its leave was answered."""
    leader = cl.leader()
    f = next(i for i in range(cl.count) if i != leader)
    g = next(i for i in range(cl.count) if i not in (f,))
    rooms = [uname("sl"), uname("sm")]
    names = [uname(f"rs{k}") for k in range(6)]
    local = [(await login(cl.ws_url(f), u, register=True))[0] for u in names]
    far = (await login(cl.ws_url(g), uname("rsfar"), register=True))[0]
    for room in rooms:
        await local[0].ok("room_create", {"room": room})
        for c in local + [far]:
            await c.ok("room_join", {"room": room})
    url = f"{cl.node_url(f)}/metrics"
    sliced0 = metrics(url).get("chat_node_room_slices_total", 0)
    count = 12
    sends = [c.req("room_chat", {"room": room, "message": f"{who} {k:02d}"})
             for k in range(count) for room in rooms
             for c, who in ((local[0], "near"), (far, "far"))]
    answers = await asyncio.gather(*sends)
    assert all(a["code"] == 0 for a in answers), [a for a in answers if a["code"]][:3]
    for room in rooms:
        await local[5].ok("room_leave", {"room": room})
        await far.ok("room_chat", {"room": room, "message": "far after"})

    def got(c, room):
        return [e["data"]["message"] for e in c.events
                if e["event"] == "room_chat" and e["data"]["room"] == room]
    for c in local[1:5]:
        for room in rooms:
            await c.event(lambda e: e["event"] == "room_chat" and e["data"]["room"] == room
                          and e["data"]["message"] == "far after")
    for room in rooms:
        seqs = [got(c, room) for c in local[1:5]]
        assert all(q == seqs[0] for q in seqs), f"{room}: members got different orders: {seqs}"
        assert sorted(seqs[0]) == sorted([f"{w} {k:02d}" for k in range(count)
                                          for w in ("near", "far")] + ["far after"]), \
            f"{room}: not each once: {seqs[0]}"
        for who in ("near", "far"):  # each sender's own messages in the order it sent them
            mine = [m for m in seqs[0] if m.startswith(who + " ")]
            assert mine == sorted(mine), f"{room}, {who}: {mine}"
        assert not any(m.startswith("near") for m in got(local[0], room)), "the sender got its own"
    await asyncio.sleep(0.5)
    assert not any("far after" in got(local[5], room) for room in rooms), \
        "a member that left got a later message"
    sliced = metrics(url).get("chat_node_room_slices_total", 0) - sliced0
    assert sliced > 0, "no room fan-out went out in slices"
    for c in local + [far]:
        await c.close()
    print(f"room slices: {len(seqs[0])} messages to each of 2 rooms, the same order on 4 members, "
          f"{int(sliced)} sliced fan-outs")


ALLOCATORS = ("tcmalloc", "glibc", "sanitizer")
ALLOCATOR = {"expected": None}


async def scenario_allocator(cl):
    """Every node runs on the malloc its build names (CMake's CHAT_MALLOC: tcmalloc,
    glibc's, or a sanitizer's), and a tcmalloc node's allocations go through
    tcmalloc: its own count of live bytes holds the node's tables (~0 if glibc's
    malloc had stayed in charge)."""
    for i in range(cl.count):
        m = metrics(f"{cl.node_url(i)}/metrics")
        names = [k[len('chat_node_allocator_info{name="'):-2] for k in m
                 if k.startswith("chat_node_allocator_info{")]
        assert len(names) == 1 and names[0] in ALLOCATORS, f"node {i}: allocator {names}"
        want = ALLOCATOR["expected"]
        assert want is None or names[0] == want, f"node {i} runs on {names[0]}, the build says {want}"
        live = m.get("chat_node_heap_live_bytes")
        assert (live is None) == (names[0] == "sanitizer"), f"node {i}: live bytes {live}"
        assert names[0] != "tcmalloc" or live > 256 << 10, f"node {i}: tcmalloc holds {live:.0f} B"
        print(f"node {i}: {names[0]}, {(live or 0) / 1e6:.1f} MB live")


SCENARIOS = {"allocator": scenario_allocator,
             "link_auth": scenario_link_auth, "restart_fast": scenario_restart_fast,
             "rsync_skip": scenario_rsync_skip, "push_parked": scenario_push_parked,
             "one_writer": scenario_one_writer, "cache_dead": scenario_cache_dead,
             "follower": scenario_follower, "leader": scenario_leader, "redis": scenario_redis,
             "stalled": scenario_stalled, "redis_kept": scenario_redis_kept,
             "bcast_bound": scenario_bcast_bound, "sess_layout": scenario_sess_layout,
             "room_slices": scenario_room_slices}


def run_conformance(cl):
    cmd = [sys.executable, f"{SUITE}/run.py", "--gateway", cl.gateway, "--push-token", cl.token,
           "--dirty-word", cl.dirty, "--timeout", "10", "-j", "4"]
    print("conformance:", " ".join(cmd), flush=True)
    return subprocess.run(cmd).returncode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--only", action="append")
    ap.add_argument("--no-conformance", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--store", choices=["sqlite", "mongo"], default="sqlite")
    ap.add_argument("--allocator", choices=ALLOCATORS,
                    help="the malloc the build links (default: either)")
    args = ap.parse_args()
    ALLOCATOR["expected"] = args.allocator
    build = os.path.abspath(args.build)
    if not os.access(f"{build}/gateway/chat-gateway", os.X_OK):
        print("chat-gateway is not built: skipping")
        return 1
    if not os.path.exists(f"{SUITE}/run.py"):
        print(f"conformance suite not found at {SUITE}")
        return 1
    tmp = tempfile.mkdtemp(prefix="chat-cluster.")
    cl = Cluster(build, tmp, store=args.store)
    # a broadcast to all crosses the slice boundary with a few clients
    cl.node_args += ["--location-cache-ms", str(LOCATION_CACHE_MS), "--fanout-slice", "2"]
    rc = 1
    try:
        cl.start()
        rc = 0 if args.no_conformance else run_conformance(cl)
        for name in args.only or list(SCENARIOS):
            print(f"=== failover: {name}", flush=True)
            asyncio.run(SCENARIOS[name](cl))
    except Exception as e:  # noqa: BLE001
        print(f"FAILED: {type(e).__name__}: {e}")
        rc = 1
    finally:
        cl.stop()
    return finish_run("cluster test", tmp, rc, args.keep)


if __name__ == "__main__":
    sys.exit(main())
