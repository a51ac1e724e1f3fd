#!/usr/bin/env python3
"""Leader change time on a running `ecosystem/cluster up` (default ports 7021-7023):
kill -9 the leader N times (pm2 restarts it) and print the time until one
new leader is linked to by every surviving node. Run from the repository root:
    bench/leader-change.py N"""
import os, re, signal, subprocess, sys, time, urllib.request
ports = {1: 7021, 2: 7022, 3: 7023}
def m(p):
    try:
        t = urllib.request.urlopen(f"http://127.0.0.1:{p}/metrics", timeout=1).read().decode()
        return {l.split()[0]: float(l.split()[1]) for l in t.splitlines() if l and not l.startswith("#")}
    except Exception:
        return {}
def pid_of(i):
    out = subprocess.run(["ecosystem/cluster", "status"], capture_output=True, text=True).stdout
    return int(re.search(rf"chat-node-{i}\s+online\s+(\d+)", out).group(1))
res = []
for run in range(int(sys.argv[1])):
    while True:
        leader = [i for i, p in ports.items() if m(p).get("chat_node_leader") == 1]
        others = [i for i in ports if i not in leader]
        if len(leader) == 1 and all(m(ports[i]).get("chat_node_leader_linked") == 1 for i in others):
            break
        time.sleep(0.2)
    L = leader[0]
    pid = pid_of(L)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    rest = [i for i in ports if i != L]
    while True:
        ms = {i: m(ports[i]) for i in rest}
        if sum(ms[i].get("chat_node_leader") == 1 for i in rest) == 1 and all(
                ms[i].get("chat_node_leader") == 1 or ms[i].get("chat_node_leader_linked") == 1 for i in rest):
            break
        time.sleep(0.02)
    dt = time.monotonic() - t0
    res.append(dt)
    print(f"run {run}: leader n{L} killed; new leader linked by all after {dt:.2f} s", flush=True)
    time.sleep(8)   # pm2 restarts the killed node; it re-joins
res.sort()
print("median %.2f s, min %.2f, max %.2f" % (res[len(res)//2], res[0], res[-1]))
