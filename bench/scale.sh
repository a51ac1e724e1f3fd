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
# Then `down`, unless KEEP=1.
#   bench/scale.sh CLIENTS NODES [PROCS]
# Environment: BUILD (default build), BASE (base port, default 30000),
# RUN (run dir, default a temp dir), RATE (connects/s in total, default
# 20000), HOLD (seconds to hold once all are in, default 60), NODE_ARGS (extra chat-node flags).
set -euo pipefail
CLIENTS=${1:?usage: scale.sh CLIENTS NODES [PROCS]}
NODES=${2:?usage: scale.sh CLIENTS NODES [PROCS]}
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${BUILD:-$REPO/build}" && pwd)
PROCS=${3:-$(((CLIENTS + 17999) / 18000))}
BASE=${BASE:-30000}
RATE=${RATE:-20000}
HOLD=${HOLD:-60}
RUN=${RUN:-$(mktemp -d "${TMPDIR:-/tmp}/chat-scale.XXXXXX")/run}
CLUSTER="$REPO/ecosystem/cluster"
GW="http://127.0.0.1:$((BASE + 10))"
[ "$PROCS" -le 64 ] || { echo "scale.sh: $PROCS bench processes: at most 64" >&2; exit 1; }

cleanup() { [ "${KEEP:-0}" = 1 ] || "$CLUSTER" down --run-dir "$RUN" >/dev/null 2>&1 || true; }
trap cleanup EXIT

# rss_kb PID...: summed VmRSS.
rss_kb() {
    local p sum=0 v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

since() { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }'; }

app_pids() { # app_pids REGEX: pids of the cluster's apps whose name matches
    PM2_HOME="$RUN/pm2" pm2 jlist 2>/dev/null | node -e '
        let t = ""; process.stdin.on("data", (d) => t += d).on("end", () => {
            const re = new RegExp(process.argv[1]);
            for (const a of JSON.parse(t.slice(t.indexOf("[")))) if (re.test(a.name) && a.pid) console.log(a.pid);
        });' "$1"
}

# conns_per_node: one "open connections" number per node, from /metrics.
conns_per_node() {
    local j
    for ((j = 1; j <= NODES; j++)); do
        curl -sf --max-time 5 "http://127.0.0.1:$((BASE + 20 + j))/metrics" |
            awk '/^chat_node_connections / { print $2 }'
    done
}

echo "== up: $NODES nodes, run dir $RUN"
"$CLUSTER" up --nodes "$NODES" --base-port "$BASE" --run-dir "$RUN" --build-dir "$BUILD" \
    --no-build --no-deps \
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
"$BUILD/bench/chat-bench" --gateway "$GW" --scenario idle --clients "$CLIENTS" --procs "$PROCS" \
    --connect-rate "$RATE" --duration "$HOLD" --setup-timeout 3600 \
    --user-prefix scale --user-offset 1 --password-format scale-pw-%d >"$BENCH_OUT" 2>&1 &
BENCH=$!
t0=$(date +%s.%N)
total=0
while kill -0 "$BENCH" 2>/dev/null; do
    total=$(conns_per_node | awk '{ s += $1 } END { print s + 0 }')
    [ "$total" -ge "$CLIENTS" ] && break
    sleep 2
done
setup_s=$(since "$t0")
sleep 1 # settle: the last logins' replies, Redis writes (HOLD must outlast this and the reads)
spread=$(conns_per_node | sort -n | awk '{ a[NR] = $1 } END { printf "min %d, median %d, max %d", a[1], a[int((NR + 1) / 2)], a[NR] }')
held_nodes=$(rss_kb "${NODE_PIDS[@]}")
held_redis=$(rss_kb "$REDIS_PID")
echo "== held: $total connections after ${setup_s} s; per node: $spread"
echo "   nodes $held_nodes kB, redis $held_redis kB"
wait "$BENCH" || true
tail -n 1 "$BENCH_OUT"
python3 - "$CLIENTS" "$total" "$before_nodes" "$held_nodes" "$before_redis" "$held_redis" "$setup_s" <<'PY'
import sys
n, held, bn, hn, br, hr, s = sys.argv[1:]
n, held, bn, hn, br, hr, s = int(n), int(held), int(bn), int(hn), int(br), int(hr), float(s)
if held:
    print(f"== per connection: nodes {(hn - bn) * 1024 / held:.0f} B + redis {(hr - br) * 1024 / held:.0f} B"
          f" = {(hn - bn + hr - br) * 1024 / held:.0f} B gross (RSS growth / connections held);"
          f" all node RSS / connections {hn * 1024 / held:.0f} B; logins {held / s:.0f}/s")
PY
rm -f "$BENCH_OUT"
