#!/usr/bin/env bash
# Many idle logged-in connections on this box (the scale issue's figures):
# a cluster of NODES chat-nodes under ecosystem/cluster (its own run dir,
# Redis and ZooKeeper), CLIENTS users seeded by chat-seed, then chat-bench
# holding CLIENTS logged-in WebSocket connections from PROCS worker
# processes (each bound to its own 127.0.0.x, each under the per-process
# fd limit, as every node is). While they are all held it reads:
#   - the RSS of every node and of Redis (before the first connect, and with
#     every client logged in): bytes per connection, gross;
#   - each node's open connections from its /metrics: the gateway's spread;
#   - how long the logins took (the bench's setup phase).
# STORM=follower|leader adds a reconnect storm once all are held: kill -9 of
# one node (the first follower, or the leader); its clients log in again
# with their tokens on the other nodes (chat-bench --reconnect RECONNECT,
# default 1: each after a random 0..1 s). It reports when the other nodes
# logged the node gone, when the last client was back, the drop-to-back
# times, and the gateway's and Redis's latency meanwhile (bench/probe.py).
# pm2 restarts the killed node 0.1 s later; the clients stay where they
# went. The other nodes must have room for the victim's clients (fd limit).
# STORM=all kills every node at once (a full down and up: pm2 brings each
# back 0.1 s later) and every client resumes with its token once a node
# answers (a random one that has not refused it lately; with ASK_GATEWAY=1
# as clients do, chat-bench --ask-gateway: each attempt tries the node it
# was on and, when that node does not take the handshake, asks the gateway
# and goes to its first node; ASK_ALWAYS=1 adds --ask-always: every attempt
# asks first, as clients did before); it reports the nodes' own count of logins over time
# (sampled from /metrics every 0.5 s), chat-bench's drop-to-back times, and
# the per-node spread SPREAD_AT seconds after the kill (default HOLD - 10).
# SCENARIO=push: once all are held, chat-bench POSTs /push {all} through the
# gateway PUSH_RATE times a second (default 0.2) for HOLD seconds; every
# client times each push from the POST to its arrival (the report's max is
# the time to the last delivery), with the CPU of the nodes, Redis and the
# gateway over that phase. SCENARIO=room: every client joins one room and
# one sender posts to it for HOLD seconds (BENCH_ARGS, e.g. "--rate 5", go
# to chat-bench), with the same CPU figures.
# Then `down`, unless KEEP=1.
#   bench/scale.sh CLIENTS NODES [PROCS]
# Environment: BUILD (default build), BASE (base port, default 30000),
# RUN (run dir, default a temp dir), RATE (connects/s in total, default
# 20000), HOLD (seconds to hold once all are in, default 60; from 12 s on
# the nodes' CPU over 10 s of it is reported: the cost of idling), GRACE (for
# the final pings of every client, default 10 + 1 s per 10k clients),
# NODE_ARGS (extra chat-node flags), GATEWAYS (gateway processes on the
# gateway port, default 1).
set -euo pipefail
CLIENTS=${1:?usage: scale.sh CLIENTS NODES [PROCS]}
NODES=${2:?usage: scale.sh CLIENTS NODES [PROCS]}
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${BUILD:-$REPO/build}" && pwd)
PROCS=${3:-$(((CLIENTS + 17999) / 18000))}
BASE=${BASE:-30000}
RATE=${RATE:-20000}
HOLD=${HOLD:-60}
# at the end every held client pings at once; 100k answers take ~2 s here
GRACE=${GRACE:-$((10 + CLIENTS / 10000))}
RUN=${RUN:-$(mktemp -d "${TMPDIR:-/tmp}/chat-scale.XXXXXX")/run}
CLUSTER="$REPO/ecosystem/cluster"
GW="http://127.0.0.1:$((BASE + 10))"
SCENARIO=${SCENARIO:-idle}
[ "$PROCS" -le 64 ] || { echo "scale.sh: $PROCS bench processes: at most 64" >&2; exit 1; }

cleanup() {
    [ -z "${SAMPLER:-}" ] || kill "$SAMPLER" 2>/dev/null || true
    [ "${KEEP:-0}" = 1 ] || "$CLUSTER" down --run-dir "$RUN" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# proc_sum FILE AWK PID...: AWK's number from /proc/PID/FILE, summed. Two
# processes for all PIDs: on a box at load 60 every fork waits its turn, and
# one awk per PID took minutes at 56 nodes.
proc_sum() {
    local file=$1 prog=$2 p files=()
    shift 2
    for p in "$@"; do
        [ -r "/proc/$p/$file" ] && files+=("/proc/$p/$file")
    done
    [ "${#files[@]}" -gt 0 ] || { echo 0; return; }
    awk "$prog" "${files[@]}" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'
}
rss_kb() { proc_sum status '/^VmRSS:/ { print $2 }' "$@"; }    # kB
cpu_ticks() { proc_sum stat '{ print $14 + $15 }' "$@"; }      # utime+stime

since() { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }'; }

app_pids() { # app_pids REGEX: pids of the cluster's apps whose name matches
    PM2_HOME="$RUN/pm2" pm2 jlist 2>/dev/null | node -e '
        let t = ""; process.stdin.on("data", (d) => t += d).on("end", () => {
            const re = new RegExp(process.argv[1]);
            for (const a of JSON.parse(t.slice(t.indexOf("[")))) if (re.test(a.name) && a.pid) console.log(a.pid);
        });' "$1"
}

# conns_per_node: one "open connections" number per node, from /metrics.
# All nodes at once, in one curl: read one after another (a process each,
# up to 5 s for a busy node) the last reads came minutes after set-up, when
# the bench had closed its clients.
conns_per_node() {
    all_metrics 5 | awk '/^chat_node_connections / { print $2 }'
}

# all_metrics SECONDS: every node's /metrics, fetched at once in one curl,
# each given at most SECONDS (a node that does not answer is left out, and
# is no error: the callers count the nodes that answered).
all_metrics() {
    local j urls=()
    for ((j = 1; j <= NODES; j++)); do
        urls+=("http://127.0.0.1:$((BASE + 20 + j))/metrics")
    done
    curl -sf --no-progress-meter --parallel --parallel-max 64 --max-time "$1" "${urls[@]}" 2>/dev/null ||
        true
}

# storm_victim follower|leader: the node number to kill.
storm_victim() {
    local j lead
    for ((j = 1; j <= NODES; j++)); do
        lead=$(curl -sf --max-time 5 "http://127.0.0.1:$((BASE + 20 + j))/metrics" |
            awk '/^chat_node_leader / { print $2 }')
        if { [ "$1" = leader ] && [ "$lead" = 1 ]; } || { [ "$1" != leader ] && [ "$lead" = 0 ]; }; then
            echo "$j"
            return
        fi
    done
}

storm() {
    local pid held
    if [ "$STORM" = all ]; then
        VICTIM=all
        pid=$(app_pids '^chat-node-' | tr '\n' ' ')
        held=$total
    else
        VICTIM=$(storm_victim "$STORM")
        [ -n "$VICTIM" ] || { echo "scale.sh: no $STORM node to kill" >&2; return 1; }
        pid=$(app_pids "^chat-node-$VICTIM\$")
        held=$(curl -sf --max-time 5 "http://127.0.0.1:$((BASE + 20 + VICTIM))/metrics" |
            awk '/^chat_node_connections / { print $2 }')
    fi
    PROBE_OUT=$(mktemp)
    python3 "$REPO/bench/probe.py" "$((BASE + 10))" "$BASE" "$RUN/redis.password" \
        "${PROBE_S:-20}" >"$PROBE_OUT" 2>&1 &
    PROBE=$!
    sleep 2 # the probe's calm before
    KILL_MS=$(date +%s%3N)
    # shellcheck disable=SC2086 # one pid, or every node's
    kill -9 $pid
    echo "== storm: kill -9 of node $VICTIM ($STORM, pid $pid) holding $held connections"
    [ "$STORM" != all ] || logins_sampler
}

# logins_sampler: every 0.5 s, "unix_ms logins nodes" summed over the nodes'
# /metrics (restarted nodes count from 0: every login is the storm's). The
# nodes' own count: the bench's workers share the cores and read answers late.
logins_sampler() {
    SAMPLES=$(mktemp)
    while :; do
        echo "$(date +%s%3N) $(all_metrics 0.4 |
            awk '/^chat_node_logins_total / { l += $2; n++ } END { print l + 0, n + 0 }')"
        sleep 0.5
    done >"$SAMPLES" &
    SAMPLER=$!
}

# sampler_report HELD: when the nodes counted the first login and all HELD.
sampler_report() {
    kill "$SAMPLER" 2>/dev/null || true
    wait "$SAMPLER" 2>/dev/null || true
    python3 - "$SAMPLES" "$KILL_MS" "$1" <<'PY'
import sys
rows = [tuple(int(x) for x in l.split()) for l in open(sys.argv[1]) if len(l.split()) == 3]
kill, held = int(sys.argv[2]), int(sys.argv[3])
first = next((t for t, l, n in rows if l > 0), None)
done = next((t for t, l, n in rows if l >= held), None)
peak = 0
for i, (t, l, n) in enumerate(rows):  # the best second: samples ~1 s apart
    j = next((k for k in range(i + 1, len(rows)) if rows[k][0] - t >= 1000), None)
    if j is not None and rows[j][2] == n == max(r[2] for r in rows):
        peak = max(peak, (rows[j][1] - l) * 1000 / (rows[j][0] - t))
if first and done and done > first:
    print(f"   the nodes' count: first login {(first - kill) / 1000:.1f} s after the kill, all {held} "
          f"{(done - kill) / 1000:.1f} s after: {held * 1000 / (done - first):.0f} logins/s between; "
          f"best second {peak:.0f}/s")
else:
    last = rows[-1] if rows else (0, 0, 0)
    print(f"   the nodes' count: {last[1]} logins on {last[2]} nodes answering at the end")
PY
    rm -f "$SAMPLES"
}

# spread_of: "min M, median D, max X (N nodes answered)" of the numbers on stdin.
spread_of() {
    sort -n | awk '{ a[NR] = $1 } END {
        printf "min %d, median %d, max %d (%d nodes answered)", a[1], a[int((NR + 1) / 2)], a[NR], NR }'
}

# storm_report BENCH_JSON_LINE
storm_report() {
    wait "$PROBE" || true
    local left_ms=0 f t
    for f in "$RUN"/logs/chat-node-*.log; do # the first node that logged it gone
        t=$({ grep -h "cluster: node n$VICTIM left" "$f" 2>/dev/null || true; } | tail -n 1 | cut -d' ' -f1)
        [ -n "$t" ] || continue
        t=$(date -d "$t" +%s%3N)
        [ "$t" -ge "$KILL_MS" ] && { [ "$left_ms" = 0 ] || [ "$t" -lt "$left_ms" ]; } && left_ms=$t
    done
    python3 - "$1" "$KILL_MS" "$left_ms" "$VICTIM" <<'PY'
import json, sys
r, kill, left, victim = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
back = r.get("first_drop_unix_ms", 0) + r.get("storm_s", 0) * 1000
print(f"== storm: {r.get('dropped', 0)} dropped, {r.get('reconnected', 0)} back, "
      f"{r.get('lost', 0)} not back at the end; drop-to-back p50 {r['p50_ms']:.0f} ms, "
      f"p99 {r['p99_ms']:.0f} ms, max {r['max_ms']:.0f} ms")
first = r.get("first_drop_unix_ms", 0) + r.get("first_back_s", 0) * 1000
if back > kill:
    print(f"   logins from the kill to the last client back: "
          f"{r.get('reconnected', 0) / ((back - kill) / 1000):.0f}/s"
          + (f"; from the first client back ({(first - kill) / 1000:.1f} s after the kill): "
             f"{r.get('reconnected', 0) / ((back - first) / 1000):.0f}/s" if back > first > kill else ""))
seen = f"{(left - kill) / 1000:.1f} s after the kill" if left else "not logged"
if victim == "all":
    seen = "every node killed"
print(f"   node gone: {seen}; last client back {(back - kill) / 1000:.1f} s after the kill"
      + (f" ({(back - left) / 1000:+.1f} s from the node gone)" if left else ""))
PY
    sed 's/^/   /' "$PROBE_OUT"
    rm -f "$PROBE_OUT"
}

# A broadcast to everyone queues a small skb on every loopback pair at
# once: ~0.66 pages of TCP memory per client (659k pages at a million).
# Past net.ipv4.tcp_mem's hard limit the kernel refuses TCP memory to every
# socket, ZooKeeper's and Redis's too (docs/DEPLOY.md).
tcp_mem_max=$(awk '{ print $3 }' /proc/sys/net/ipv4/tcp_mem 2>/dev/null || echo 0)
if [ "$SCENARIO" = push ] && [ "$tcp_mem_max" -lt $((CLIENTS * 3 / 4)) ]; then
    echo "scale.sh: warning: net.ipv4.tcp_mem allows $tcp_mem_max pages; a push to $CLIENTS" \
        "clients may need ~$((CLIENTS * 2 / 3)) (sysctl -w net.ipv4.tcp_mem=...)" >&2
fi

echo "== up: $NODES nodes, run dir $RUN"
"$CLUSTER" up --nodes "$NODES" --gateways "${GATEWAYS:-1}" --base-port "$BASE" --run-dir "$RUN" \
    --build-dir "$BUILD" --no-build --no-deps \
    --node-args "--pwhash-ops 1 --pwhash-mem 8K --rate 100000 --burst 100000 ${NODE_ARGS:-}" |
    tail -n 3
echo "== seed: $CLIENTS users"
t0=$(date +%s.%N)
"$BUILD/seed/chat-seed" --store "sqlite:$RUN/chat.db" --users "$CLIENTS" --prefix scale \
    --password-format scale-pw-%d --pwhash-mem 8K 2>/dev/null | head -n 1
echo "seeded in $(since "$t0") s"

mapfile -t NODE_PIDS < <(app_pids '^chat-node-')
REDIS_PID=$(app_pids '^chat-redis$')
before_nodes=$(rss_kb "${NODE_PIDS[@]}")
before_redis=$(rss_kb "$REDIS_PID")
echo "== before: nodes $before_nodes kB (${#NODE_PIDS[@]} processes), redis $before_redis kB"

echo "== bench: $CLIENTS clients from $PROCS processes at $RATE connects/s, held $HOLD s"
BENCH_OUT=$(mktemp)
BENCH_EXTRA=()
[ -z "${STORM:-}" ] || BENCH_EXTRA=(--reconnect "${RECONNECT:-1}")
[ "${ASK_GATEWAY:-0}" != 1 ] || BENCH_EXTRA+=(--ask-gateway)
[ "${ASK_ALWAYS:-0}" != 1 ] || BENCH_EXTRA+=(--ask-always)
[ "$SCENARIO" != push ] || BENCH_EXTRA=(--push-token-file "$RUN/push.token" --rate "${PUSH_RATE:-0.2}")
if [ "$SCENARIO" != idle ]; then # the server CPU of the measured phase: nodes, Redis, gateway
    BENCH_EXTRA+=(--cpu-pid "$REDIS_PID")
    for p in $(app_pids '^chat-gateway'); do BENCH_EXTRA+=(--cpu-pid "$p"); done
    for p in "${NODE_PIDS[@]}"; do BENCH_EXTRA+=(--pid "$p"); done
fi
read -ra EXTRA <<<"${BENCH_ARGS:-}"
BENCH_EXTRA+=("${EXTRA[@]}")
"$BUILD/bench/chat-bench" --gateway "$GW" --scenario "$SCENARIO" --clients "$CLIENTS" --procs "$PROCS" \
    --connect-rate "$RATE" --duration "$HOLD" --grace "$GRACE" --setup-timeout 3600 "${BENCH_EXTRA[@]}" \
    --user-prefix scale --user-offset 1 --password-format scale-pw-%d >"$BENCH_OUT" 2>&1 &
BENCH=$!
t0=$(date +%s.%N)
# chat-bench says when every client is logged in (a node too busy to answer
# /metrics in time must not make the count look short)
while kill -0 "$BENCH" 2>/dev/null && ! grep -q "clients set up in" "$BENCH_OUT"; do
    sleep 1
done
setup_s=$(since "$t0")
sleep 1 # settle: the last logins' replies, Redis writes (HOLD must outlast this and the reads)
held_nodes=$(rss_kb "${NODE_PIDS[@]}")
held_redis=$(rss_kb "$REDIS_PID")
per_node=$(conns_per_node)
total=$(awk '{ s += $1 } END { print s + 0 }' <<<"$per_node")
spread=$(spread_of <<<"$per_node")
echo "== held: $total connections after ${setup_s} s; per node: $spread"
echo "   nodes $held_nodes kB, redis $held_redis kB"
if [ -z "${STORM:-}" ] && [ "$SCENARIO" = idle ] && [ "$HOLD" -ge 12 ]; then # what holding them costs: pings, sweeps
    c0=$(cpu_ticks "${NODE_PIDS[@]}")
    sleep 10
    c1=$(cpu_ticks "${NODE_PIDS[@]}")
    awk -v d="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" -v n="$total" 'BEGIN {
        printf "   nodes'"'"' CPU while they idle: %.1f %% of a core (%.2f us per connection per second)\n",
            d / hz / 10 * 100, d / hz / 10 / n * 1e6 }'
fi
[ -z "${STORM:-}" ] || storm
if [ "${STORM:-}" = all ]; then # where they went: read while they are still held
    sleep "${SPREAD_AT:-$((HOLD - 10))}"
    per_node=$(conns_per_node)
    echo "== $(awk -v t="$KILL_MS" -v n="$(date +%s%3N)" 'BEGIN { printf "%.1f", (n - t) / 1000 }') s" \
        "after the kill: $(awk '{ s += $1 } END { print s + 0 }' <<<"$per_node") in all:" \
        "$(spread_of <<<"$per_node")"
fi
bench_rc=0
wait "$BENCH" || bench_rc=$?
grep "clients set up in" "$BENCH_OUT" && total=$CLIENTS # all in, whatever /metrics said
grep "^chat-bench: worker" "$BENCH_OUT" || true # what its workers had to say (first error, gateway misses)
if [ "$SCENARIO" != idle ]; then # no report (the bench failed): its last lines, and the file is kept
    grep -A7 "^scenario $SCENARIO" "$BENCH_OUT" || { tail -n 20 "$BENCH_OUT"; [ "$bench_rc" != 0 ] || bench_rc=1; }
else
    tail -n 1 "$BENCH_OUT"
fi
[ -z "${STORM:-}" ] || storm_report "$(tail -n 1 "$BENCH_OUT")"
[ "${STORM:-}" != all ] || sampler_report "$CLIENTS"
python3 - "$CLIENTS" "$total" "$before_nodes" "$held_nodes" "$before_redis" "$held_redis" "$setup_s" <<'PY'
import sys
n, held, bn, hn, br, hr, s = sys.argv[1:]
n, held, bn, hn, br, hr, s = int(n), int(held), int(bn), int(hn), int(br), int(hr), float(s)
if held:
    print(f"== per connection: nodes {(hn - bn) * 1024 / held:.0f} B + redis {(hr - br) * 1024 / held:.0f} B"
          f" = {(hn - bn + hr - br) * 1024 / held:.0f} B gross (RSS growth / connections held);"
          f" all node RSS / connections {hn * 1024 / held:.0f} B; logins {held / s:.0f}/s")
PY
if [ "${KEEP:-0}" = 1 ] || [ "$bench_rc" != 0 ]; then echo "bench output: $BENCH_OUT"; else rm -f "$BENCH_OUT"; fi
