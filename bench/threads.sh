#!/usr/bin/env bash
# Where the chat-nodes' CPU goes, thread by thread, while a benchmark runs:
# every chat-node on this machine (or the PIDs given) is sampled twice,
# SECONDS apart (default 8): each thread's utime+stime from /proc, and each node's
# chat_node_messages_total from its /metrics (the node that stores a
# message counts it). Prints, busiest first, each thread's CPU over the
# window and per message stored, with the node's role (leader or follower)
# and the thread's name (the loop is "chat-node"; "store" runs the store's
# batches, "sqlite-ckpt" the SQLite checkpoints, "pool" password hashing;
# ZooKeeper's own threads are unnamed). docs/BENCHMARKS.md section 28:
#   IDLE_CLIENTS=200 ROOM_CLIENTS=200 DURATION=20 DIRECT_CLIENTS=200 \
#       bench/run.sh --build B --nodes 3 direct-rate@4000 &
#   sleep 10; bench/threads.sh 8
#   bench/threads.sh [SECONDS [PID...]]
set -euo pipefail

SECONDS_WIN=${1:-8}
shift || true
TICK=$(getconf CLK_TCK)

node_pids() {
    local d
    for d in /proc/[0-9]*; do
        [ "$(cat "$d/comm" 2>/dev/null)" = chat-node ] && echo "${d#/proc/}"
    done
    return 0
}

# The node's /metrics, from its --listen HOST:PORT (http, else https).
node_metrics() {
    local listen
    listen=$(tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null |
        awk 'p { print; exit } $0 == "--listen" { p = 1 }') || true
    [ -n "$listen" ] || listen=127.0.0.1:9001
    curl -sf --max-time 2 "http://$listen/metrics" 2>/dev/null ||
        curl -skf --max-time 2 "https://$listen/metrics" 2>/dev/null || true
}

# "pid tid name ticks" for every thread of every node, then "pid messages role".
sample() {
    local pid t m
    for pid in $PIDS; do
        for t in /proc/"$pid"/task/*; do
            echo "T $pid ${t##*/} $(cat "$t/comm") $(awk '{ print $14 + $15 }' "$t/stat")"
        done 2>/dev/null
        m=$(node_metrics "$pid")
        echo "M $pid $(awk '/^chat_node_messages_total / { n = $2 } /^chat_node_leader / { l = $2 }
            END { print n + 0, (l == 1 ? "leader" : "follower") }' <<<"$m")"
    done
}

PIDS=${*:-$(node_pids | tr '\n' ' ')}
[ -n "$PIDS" ] || { echo "bench/threads.sh: no chat-node is running" >&2; exit 1; }
A=$(sample)
sleep "$SECONDS_WIN"
B=$(sample)
awk -v tick="$TICK" -v win="$SECONDS_WIN" '
    FNR == 1 { f++ }
    f == 1 && $1 == "T" { t0[$2 " " $3] = $5 }
    f == 1 && $1 == "M" { m0[$2] = $3 }
    f == 2 && $1 == "T" { k = $2 " " $3; name[k] = $4; t1[k] = $5; pid[k] = $2 }
    f == 2 && $1 == "M" { m1[$2] = $3; role[$2] = $4 }
    END {
        for (p in m1) msgs += m1[p] - m0[p]
        printf "%d messages stored in %d s (%.0f/s)\n", msgs, win, msgs / win
        for (k in t1) {
            if (!(k in t0)) continue
            ms = (t1[k] - t0[k]) * 1000 / tick
            if (ms <= 0) continue
            printf "%8.0f ms  %7.1f us/msg  %-8s pid %-7s %s\n", ms,
                msgs ? ms * 1000 / msgs : 0, role[pid[k]], pid[k], name[k] | "sort -rn"
        }
    }' <(echo "$A") <(echo "$B")
