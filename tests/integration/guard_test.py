#!/usr/bin/env python3
"""Abuse limits on a real 3-node cluster whose nodes exempt no address
(--limit-exempt none), so loopback clients count like any other:

  conns     connections over --max-conns-per-ip are closed 1008; one
            closed makes room again
  deadline  a connection that does not log in within --login-timeout is
            closed 1008; a logged-in one stays; a login the node is still
            hashing when the deadline passes is not cut off (a user
            seeded with a slow password hash)
  user      failed password logins for one user, on any node, make the
            next one 429 with retry_ms on every node (counters in Redis),
            even with the right password; a token login is not throttled;
            after the window the right password works again
  address   failed logins from one address over many users make a login
            of yet another user 429
  tokens    (--token-ttl 4) a token login with more than half the token's
            life left answers the same token; past half, a new one, and the
            old one keeps working until it expires, then 401
  full      a node restarted with --max-conns answers a WebSocket over it
            503 (the client tries another node), counts it, still answers
            its /metrics while full, and serves again once one has left
  secrets   no password used here appears in any process log

usage: guard_test.py BUILD_DIR
"""

import argparse
import asyncio
import glob
import subprocess
import sys
import time

from clusterlib import (Client, ConnectionClosed, login, metrics, run_cluster_test, uname,
                        whole_again)

CAP, TIMEOUT_S, FAILS_USER, FAILS_IP, WINDOW_S, TOKEN_TTL_S = 6, 1.5, 3, 8, 4, 4
PASSWORDS = []


def setup(cl):
    cl.node_args += ["--limit-exempt", "none", "--max-conns-per-ip", str(CAP),
                     "--login-timeout", str(TIMEOUT_S), "--login-fails-user", str(FAILS_USER),
                     "--login-fails-ip", str(FAILS_IP), "--login-fails-window", str(WINDOW_S),
                     "--token-ttl", str(TOKEN_TTL_S)]


async def closed_with(c, code, timeout):
    """Waits for the server to close c; returns how long it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if c.ws.close_code is not None:
            assert c.ws.close_code == code, f"closed with {c.ws.close_code}, not {code}"
            return time.monotonic() - t0
        try:
            await c.req("ping", timeout=0.3)
        except (ConnectionClosed, asyncio.TimeoutError, OSError):
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"not closed within {timeout}s")


async def check_conns(cl):
    url = cl.ws_url(0)
    held = []
    for _ in range(CAP):     # logged in: the login deadline must not close them
        user = uname("gc")
        PASSWORDS.append("conn-pw-" + user)
        c, _ = await login(url, user, PASSWORDS[-1], register=True)
        held.append(c)
    extra = await Client.open(url)
    await closed_with(extra, 1008, 5)
    await held.pop().close()
    await asyncio.sleep(0.3)                    # the node sees the close
    again = await Client.open(url)
    assert (await again.req("ping"))["code"] == 0
    for c in held + [again]:
        await c.close()
    print(f"conns: connection {CAP + 1} from one address closed 1008; room again after one left")


async def check_deadline(cl):
    await asyncio.sleep(0.3)
    user = uname("gd")
    PASSWORDS.append("deadline-pw-" + user)
    idle = await Client.open(cl.ws_url(1))
    busy, _ = await login(cl.ws_url(1), user, PASSWORDS[-1], register=True)
    took = await closed_with(idle, 1008, TIMEOUT_S + 3)
    assert (await busy.req("ping"))["code"] == 0, "a logged-in connection was closed"
    await busy.close()
    print(f"deadline: a connection never logged in closed after {took:.1f}s (limit {TIMEOUT_S}s)")
    await check_slow_login(cl)


SLOW_OPS = 150  # argon2id passes at 64 MiB: seconds of hashing, well past TIMEOUT_S


async def check_slow_login(cl):
    prefix = uname("gs")
    PASSWORDS.append("slow-pw-1")
    subprocess.run([f"{cl.build}/seed/chat-seed", "--store", cl.store_uri(), "--users", "1",
                    "--prefix", prefix, "--password-format", "slow-pw-%d",
                    "--pwhash-ops", str(SLOW_OPS), "--pwhash-mem", "64M"],
                   check=True, stdout=subprocess.DEVNULL)
    c = await Client.open(cl.ws_url(2))
    t0 = time.monotonic()
    r = await c.req("login", {"user": prefix + "1", "password": "slow-pw-1"}, timeout=60)
    took = time.monotonic() - t0
    assert r["code"] == 0, f"slow login: {r}"
    # the sweep runs every 0.5 s: past this, the deadline was checked during the login
    assert took > TIMEOUT_S + 0.6, f"the login took {took:.1f}s: too fast to test the deadline"
    assert (await c.req("ping"))["code"] == 0, "closed right after its login"
    await c.close()
    print(f"deadline: a login hashed for {took:.1f}s (limit {TIMEOUT_S}s) was not cut off")


async def login_once(url, data):
    """One login on a fresh connection; returns the answer."""
    c = await Client.open(url)
    r = await c.req("login", data)
    await c.close()
    return r


async def wrong(url, user):
    return await login_once(url, {"user": user, "password": "not-the-password"})


async def check_user(cl):
    user, pw = uname("gu"), "user-pw-" + uname("x")
    PASSWORDS.append(pw)
    c, d = await login(cl.ws_url(0), user, pw, register=True)
    token = d["token"]
    await c.close()
    for k in range(FAILS_USER):                 # spread over the nodes
        r = await wrong(cl.ws_url(k % cl.count), user)
        assert r["code"] == 401, r
    t_full = time.monotonic()
    for i in range(cl.count):                   # every node knows, even with the right password
        c = await Client.open(cl.ws_url(i))
        r = await c.req("login", {"user": user, "password": pw})
        await c.close()
        assert r["code"] == 429, f"node {i}: {r}"
        retry = r.get("data", {}).get("retry_ms", 0)
        assert 0 < retry <= WINDOW_S * 1000, r
    c = await Client.open(cl.ws_url(1))         # a token is not guessable: not throttled
    r = await c.req("login", {"user": user, "token": token})
    assert r["code"] == 0, f"token login throttled: {r}"
    await c.close()
    await asyncio.sleep(max(0, WINDOW_S + 0.3 - (time.monotonic() - t_full)))
    c, _ = await login(cl.ws_url(2), user, pw)
    await c.close()
    print(f"user: after {FAILS_USER} failures 429 on all {cl.count} nodes (retry_ms {retry}); "
          "token login not throttled; the window over, the password works")


async def check_address(cl):
    await asyncio.sleep(WINDOW_S + 0.3)          # a fresh window for the address
    seen = None
    for k in range(FAILS_IP + 2):
        r = await wrong(cl.ws_url(k % cl.count), uname("ga"))
        if r["code"] == 429:
            seen = k
            break
        assert r["code"] == 401, r
    assert seen == FAILS_IP, f"address throttle after {seen} failures, want {FAILS_IP}"
    user, pw = uname("gb"), "addr-pw-" + uname("x")
    PASSWORDS.append(pw)
    c = await Client.open(cl.ws_url(0))
    assert (await c.req("register", {"user": user, "password": pw}))["code"] == 0
    r = await c.req("login", {"user": user, "password": pw})
    await c.close()
    assert r["code"] == 429 and r["data"]["retry_ms"] > 0, r
    print(f"address: {FAILS_IP} failures over {FAILS_IP} users make the next login 429")


async def token_login(url, user, token):
    return await login_once(url, {"user": user, "token": token})


async def check_tokens(cl):
    user, pw = uname("gt"), "token-pw-" + uname("x")
    PASSWORDS.append(pw)
    c, d = await login(cl.ws_url(0), user, pw, register=True)
    await c.close()
    first, t0 = d["token"], time.monotonic()
    r = await token_login(cl.ws_url(1), user, first)
    assert r["code"] == 0 and r["data"]["token"] == first, f"a fresh token not answered again: {r}"
    await asyncio.sleep(max(0, TOKEN_TTL_S / 2 + 0.3 - (time.monotonic() - t0)))
    r = await token_login(cl.ws_url(2), user, first)
    assert r["code"] == 0, r
    second = r["data"]["token"]
    assert second != first, "a token past half its life was not replaced"
    r = await token_login(cl.ws_url(0), user, second)
    assert r["code"] == 0 and r["data"]["token"] == second, r
    await asyncio.sleep(max(0, TOKEN_TTL_S + 0.3 - (time.monotonic() - t0)))
    assert (await token_login(cl.ws_url(1), user, first))["code"] == 401, "an expired token worked"
    assert (await token_login(cl.ws_url(1), user, second))["code"] == 0
    print(f"tokens: a fresh token answered again; past {TOKEN_TTL_S / 2:g}s a new one; "
          f"the old one refused after {TOKEN_TTL_S}s")


FULL = 3


async def check_full(cl):
    cl.kill("node2")
    cl.node_args += ["--max-conns", str(FULL)]
    await whole_again(cl, restart=2)
    cl.node_args = cl.node_args[:-2]
    url, held = cl.ws_url(2), []
    for _ in range(FULL):
        held.append(await Client.open(url))
    try:
        extra = await Client.open(url)
    except Exception as e:  # noqa: BLE001 - any failure to open is the refusal
        why = f"{type(e).__name__}: {e}"
    else:
        await extra.close()
        raise AssertionError(f"connection {FULL + 1} was served past --max-conns {FULL}")
    m = metrics(f"{cl.node_url(2)}/metrics")  # full for WebSockets, still read by a monitor
    assert m["chat_node_conns_refused_at_accept_total"] >= 1, m
    assert "503" in why, f"the refusal was not a 503: {why}"
    for c in held:
        assert (await c.req("ping"))["code"] == 0
    await held.pop().close()
    await asyncio.sleep(0.3)                    # the node sees the close: room again
    again = await Client.open(url)
    assert (await again.req("ping"))["code"] == 0
    for c in held + [again]:
        await c.close()
    print(f"full: connection {FULL + 1} refused ({why}), counted, /metrics read while full; "
          f"room again after one left")


def check_secrets(cl):
    for path in glob.glob(f"{cl.tmp}/*.log"):
        with open(path, errors="replace") as f:
            text = f.read()
        for pw in PASSWORDS + ["not-the-password"]:
            assert pw not in text, f"a password is in {path}"
    print(f"secrets: none of {len(PASSWORDS) + 1} passwords in any log")


async def body(cl):
    await check_conns(cl)
    await check_deadline(cl)
    await check_user(cl)
    await check_tokens(cl)
    await check_address(cl)                     # leaves this address throttled a while
    await check_full(cl)
    check_secrets(cl)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    args = ap.parse_args()
    return run_cluster_test(args.build, "guard test", body, prefix="chat-guard.", setup=setup)


if __name__ == "__main__":
    sys.exit(main())
