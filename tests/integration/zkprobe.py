#!/usr/bin/env python3
"""What a ZooKeeper client may do under a path, over ZooKeeper's own wire
protocol (jute records on a TCP socket; no client library needed):
list its children, and (--create) create a child. With --auth-file (USER:PASSWORD in
a file, never on the command line) the session adds digest credentials
first, as chat-node does.

    zkprobe.py HOST:PORT PATH [--auth-file FILE] [--create]
prints "list OK N" or "list NOAUTH" (and "create OK|NOAUTH|..."), exit 0.
A child --create made stays: only for paths no one reads (or that refuse).
Used by the cluster tests to show that the cluster's znodes are closed to
anyone without its credentials.
"""

import argparse
import socket
import struct

OK, NOAUTH, NODEEXISTS, NONODE = 0, -102, -110, -101
NAMES = {OK: "OK", NOAUTH: "NOAUTH", NODEEXISTS: "NODEEXISTS", NONODE: "NONODE"}
OP_CREATE, OP_CHILDREN, OP_AUTH = 1, 8, 100
PERM_ALL = 0x1f


def _buf(b):
    return struct.pack(">i", len(b)) + b


def _str(s):
    return _buf(s.encode())


class Session:
    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout)
        self.xid = 0
        # ConnectRequest: protocol, last zxid, timeout ms, session id, password, read-only
        self._send(struct.pack(">iqiq", 0, 0, 10000, 0) + _buf(b"\0" * 16) + b"\0")
        self._recv()  # ConnectResponse: a session, or the socket closes

    def _send(self, body):
        self.sock.sendall(struct.pack(">i", len(body)) + body)

    def _recvn(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("ZooKeeper closed the connection")
            out += chunk
        return out

    def _recv(self):
        (n,) = struct.unpack(">i", self._recvn(4))
        return self._recvn(n)

    def _call(self, op, body, xid=None):
        if xid is None:
            self.xid += 1
            xid = self.xid
        self._send(struct.pack(">ii", xid, op) + body)
        while True:  # skip watch events (xid -1): we set none, but be safe
            reply = self._recv()
            rxid, _zxid, err = struct.unpack(">iqi", reply[:16])
            if rxid == xid:
                return err, reply[16:]

    def add_digest(self, user_password):
        err, _ = self._call(OP_AUTH, struct.pack(">i", 0) + _str("digest") +
                            _buf(user_password.encode()), xid=-4)
        return err

    def children(self, path):
        err, body = self._call(OP_CHILDREN, _str(path) + b"\0")
        if err != OK:
            return err, None
        (count,) = struct.unpack(">i", body[:4])
        return err, count

    def create(self, path, data=b"x"):
        acl = struct.pack(">ii", 1, PERM_ALL) + _str("world") + _str("anyone")
        err, _ = self._call(OP_CREATE, _str(path) + _buf(data) + acl + struct.pack(">i", 0))
        return err

    def close(self):
        try:
            self._call(-11, b"")  # closeSession
        except OSError:
            pass
        self.sock.close()


def probe(hostport, path, user_password=None, create=False):
    """(list error, child count or None, create error or None) under path."""
    host, _, port = hostport.rpartition(":")
    s = Session(host, int(port))
    try:
        if user_password:
            err = s.add_digest(user_password)
            if err != OK:
                raise RuntimeError(f"auth answered {err}")
        lerr, count = s.children(path)
        cerr = s.create(f"{path}/zkprobe-intruder") if create else None
        return lerr, count, cerr
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hostport")
    ap.add_argument("path")
    ap.add_argument("--auth-file")
    ap.add_argument("--create", action="store_true")
    args = ap.parse_args()
    cred = None
    if args.auth_file:
        with open(args.auth_file) as f:
            cred = f.read().strip()
    lerr, count, cerr = probe(args.hostport, args.path, cred, args.create)
    print(f"list {NAMES.get(lerr, lerr)}" + (f" {count}" if count is not None else ""))
    if args.create:
        print(f"create {NAMES.get(cerr, cerr)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
