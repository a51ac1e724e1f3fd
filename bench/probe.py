#!/usr/bin/env python3
"""Samples the latency of the gateway (GET /servers, a new connection each
time, as a client that lost its node does) and of Redis (PING on one
authenticated connection) every INTERVAL for SECONDS, then prints one line
per target: samples, p50, p99 and max in ms, and failures.

usage: probe.py GATEWAY_PORT REDIS_PORT REDIS_PASSWORD_FILE SECONDS [INTERVAL]
"""
import socket
import sys
import time


def http_get(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /servers HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data.startswith(b"HTTP/1.1 200"):
        raise OSError(data[:40])


class Redis:
    def __init__(self, port, password):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.cmd(b"AUTH", password.encode())

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        self.s.sendall(out)
        line = b""
        while not line.endswith(b"\r\n"):
            chunk = self.s.recv(1)
            if not chunk:
                raise OSError("redis closed")
            line += chunk
        if line.startswith(b"-"):
            raise OSError(line.decode().strip())


def summary(name, lat, fails):
    lat.sort()
    if not lat:
        print(f"{name}: no samples, {fails} failed")
        return
    pick = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] * 1000
    print(f"{name}: {len(lat)} samples, p50 {pick(0.5):.2f} ms, p99 {pick(0.99):.2f} ms, "
          f"max {lat[-1] * 1000:.2f} ms, {fails} failed")


def main():
    gw, rport, pwfile, seconds = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    interval = float(sys.argv[5]) if len(sys.argv) > 5 else 0.05
    with open(pwfile) as f:
        redis = Redis(rport, f.read().strip())
    gl, rl, gf, rf = [], [], 0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.monotonic()
        try:
            http_get(gw)
            gl.append(time.monotonic() - t)
        except OSError:
            gf += 1
        t = time.monotonic()
        try:
            redis.cmd(b"PING")
            rl.append(time.monotonic() - t)
        except OSError:
            rf += 1
        time.sleep(interval)
    summary("gateway GET /servers", gl, gf)
    summary("redis PING", rl, rf)


if __name__ == "__main__":
    main()
