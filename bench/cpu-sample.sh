#!/usr/bin/env bash
# Who is busy: every INTERVAL seconds, the CPU share of every thread of the
# chat-node, chat-bench, chat-gateway and redis-server processes (utime+stime
# deltas from /proc/PID/task/TID/stat, like pidstat -t), busiest first.
#   bench/cpu-sample.sh [INTERVAL] [COUNT]     (default 2 s, forever)
exec python3 - "${1:-2}" "${2:-0}" <<'PY'
import os, sys, time
interval, count = float(sys.argv[1]), int(sys.argv[2])
hz = os.sysconf("SC_CLK_TCK")
names = ("chat-node", "chat-bench", "chat-gateway", "redis-server", "java")

def sample():
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            pcomm = open(f"/proc/{pid}/comm").read().strip()
            if pcomm not in names:
                continue
            for tid in os.listdir(f"/proc/{pid}/task"):
                s = open(f"/proc/{pid}/task/{tid}/stat").read()
                f = s[s.rindex(")") + 2:].split()
                tcomm = s[s.index("(") + 1:s.rindex(")")]
                out[(pid, tid)] = (pcomm, tcomm, int(f[11]) + int(f[12]))
        except (OSError, ValueError):
            pass
    return out

prev, n = sample(), 0
while count == 0 or n < count:
    time.sleep(interval)
    cur, n = sample(), n + 1
    rows = []
    for k, (pc, tc, t) in cur.items():
        d = t - prev.get(k, (pc, tc, t))[2]
        if d > 0:
            rows.append((d / hz / interval * 100, k[0], k[1], pc, tc))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    print(f"=== {time.strftime('%H:%M:%S')} total {total:.0f}% of one core")
    for pct, pid, tid, pc, tc in rows[:10]:
        print(f"  {pct:5.1f}%  {pc:<12} pid {pid:>6} tid {tid:>6} {tc}")
    sys.stdout.flush()
    prev = cur
PY
