#!/usr/bin/env python3
"""The shared conformance suite (../shared/conformance/run.py) through TLS.

usage: conformance_tls.py SUITE_DIR CA_FILE run.py-ARGS...   (--gateway https://...)

The suite speaks https and wss itself when the URLs say so, trusting the
system's store: here it trusts CA_FILE instead (SSL_CERT_FILE). Its raw TCP
connections (asyncio.open_connection without ssl=) are made TLS connections
to the same endpoint, so frame- and byte-level cases run through TLS too.
A connection the suite makes in plain on purpose (ssl=None, a ws:// URL)
stays plain: a node that advertised ws:// under TLS fails the suite.
The suite's own files are never changed.
"""
import asyncio
import os
import runpy
import ssl
import sys


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    suite, ca = sys.argv[1], sys.argv[2]
    os.environ["SSL_CERT_FILE"] = ca  # read by ssl.create_default_context()
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    plain_open = asyncio.open_connection
    upgraded = [0]

    async def open_connection(host=None, port=None, **kw):
        if "ssl" not in kw:  # the harness's raw TCP: the endpoint is TLS only
            kw["ssl"] = ctx
            kw.setdefault("server_hostname", host)
            upgraded[0] += 1
        return await plain_open(host, port, **kw)

    asyncio.open_connection = open_connection
    sys.argv = [os.path.join(suite, "run.py")] + sys.argv[3:]
    sys.path.insert(0, suite)
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as e:
        print(f"conformance_tls: {upgraded[0]} raw connection(s) made TLS", file=sys.stderr)
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
