#!/usr/bin/env python3
"""The web client (client/web, served by chat-gateway --web-root) in Debian's
chromium, headless, against a real 3-node cluster: tests/browser/web_test.mjs
drives it with puppeteer-core (npm-installed privately by
tests/browser/run.sh). With --shots DIR it saves screenshots there.

usage: browser_test.py BUILD_DIR [--shots DIR]
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys

from clusterlib import REPO, run_cluster_test

BROWSER_HOME = os.environ.get("CHAT_BROWSER_HOME",
                              os.path.expanduser("~/.cache/chat-browser-test"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--shots")
    args = ap.parse_args()
    subprocess.run(["bash", "-c", f'. "{REPO}/scripts/npm-private.sh" && '
                    f'npm_private_install "{REPO}/tests/browser" "{BROWSER_HOME}"'], check=True)

    async def restarter(cl):
        """Restarts node i (kill -9, same port) when web_test.mjs asks."""
        while True:
            for i in range(cl.count):
                ask = f"{cl.tmp}/restart-n{i}"
                if os.path.exists(ask):
                    os.unlink(ask)
                    cl.kill(f"node{i}")
                    cl.start_node(i)
                    with open(f"{ask}.tmp", "w") as f:
                        f.write(str(cl.procs[f"node{i}"].pid))
                    os.rename(f"{ask}.tmp", f"{cl.tmp}/restarted-n{i}")
            await asyncio.sleep(0.1)

    async def body(cl):
        pids = {f"n{i}": cl.procs[f"node{i}"].pid for i in range(cl.count)}
        with open(f"{cl.tmp}/pids.json", "w") as f:
            json.dump(pids, f)
        cmd = ["node", f"{BROWSER_HOME}/web_test.mjs", "--gateway", cl.gateway,
               "--pids", f"{cl.tmp}/pids.json", "--ctl", cl.tmp, "--push-token", cl.token,
               "--dirty-word", cl.dirty]
        if args.shots:
            os.makedirs(args.shots, exist_ok=True)
            cmd += ["--shots", os.path.abspath(args.shots)]
        watcher = asyncio.create_task(restarter(cl))
        try:
            rc = await asyncio.get_running_loop().run_in_executor(
                None, lambda: subprocess.run(cmd, timeout=400).returncode)
        finally:
            watcher.cancel()
        assert rc == 0, "the browser test failed"

    def setup(cl):
        cl.gateway_args = ["--web-root", f"{REPO}/client/web"]

    return run_cluster_test(args.build, "browser test", body, "chat-browser.", setup=setup)


if __name__ == "__main__":
    sys.exit(main())
