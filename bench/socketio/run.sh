#!/usr/bin/env bash
# The chat cluster beside socket.io, same load generator, one table.
#
#   bench/socketio/run.sh [--build DIR] [--runs N] [SCENARIO...]
#
# Installs socket.io 4.8, @socket.io/redis-adapter 8 and redis 4 from npm
# into a private folder (SIO_DIR, default ~/.cache/chat-bench-socketio),
# then for each scenario (default: idle direct@4000 direct room@20) runs
# chat-bench --socketio against bench/socketio/peer.mjs as 1 process, and
# as 2 processes joined by the Redis adapter, and bench/run.sh against the
# chat cluster (NODES, default 3; NODE_ARGS pass through; BENCH_ARGS reach
# chat-bench in both, e.g. "--pace tick"), RUNS times each
# (default 3), and prints one markdown table of the medians. CPU is that of
# every server process (peers or nodes, Redis, gateway) per delivery.
# Sizes: DIRECT_CLIENTS (200), SAT_CLIENTS (2000, closed loop, window 8),
# IDLE_CLIENTS (5000), ROOM_CLIENTS (1000), DURATION (10).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD=$REPO/build
RUNS=3
SCENARIOS=()
while [ $# -gt 0 ]; do
    case $1 in
    --build) BUILD=$(cd "$2" && pwd); shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    -h|--help) sed -n "2,/^set -u/p" "$0" | sed "$ d"; exit 0 ;;
    *) SCENARIOS+=("$1"); shift ;;
    esac
done
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(idle direct@4000 direct room@20)
: "${SIO_DIR:=$HOME/.cache/chat-bench-socketio}" "${NODES:=3}" "${DURATION:=10}"
: "${DIRECT_CLIENTS:=200}" "${SAT_CLIENTS:=2000}" "${IDLE_CLIENTS:=5000}" "${ROOM_CLIENTS:=1000}"
BENCH=$BUILD/bench/chat-bench
[ -x "$BENCH" ] || { echo "no $BENCH: build chat-bench first" >&2; exit 1; }
command -v node >/dev/null && command -v npm >/dev/null || { echo "needs node and npm (scripts/install-deps.sh)" >&2; exit 1; }

if [ ! -d "$SIO_DIR/node_modules/@socket.io/redis-adapter" ]; then
    mkdir -p "$SIO_DIR"
    echo '{"name":"chat-bench-socketio","private":true,"type":"module"}' >"$SIO_DIR/package.json"
    npm install --prefix "$SIO_DIR" --no-audit --no-fund --loglevel error \
        socket.io@4.8 @socket.io/redis-adapter@8 redis@4 || exit 1
fi
cp "$HERE/peer.mjs" "$SIO_DIR/peer.mjs" # ESM resolves packages next to the file

TMP=$(mktemp -d "${TMPDIR:-/tmp}/chat-sio.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_port() {
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
    echo "nothing listens on $1" >&2; return 1
}

scenario_args() { # scenario_args NAME[@RATE]
    local name=${1%@*} rate=
    [ "$name" = "$1" ] || rate=${1#*@}
    case $name in
    idle) echo "--scenario idle --clients $IDLE_CLIENTS --connect-rate 2000" ;;
    direct) if [ -n "$rate" ]; then echo "--scenario direct --clients $DIRECT_CLIENTS --rate $rate"
            else echo "--scenario direct --clients $SAT_CLIENTS --window 8"; fi ;;
    room) echo "--scenario room --clients $ROOM_CLIENTS --rate ${rate:-20}" ;;
    *) echo "unknown scenario $1" >&2; return 1 ;;
    esac
}

# One socket.io run: PROCS peers (2 = Redis adapter); prints chat-bench's JSON line.
sio_run() {
    local procs=$1 scen=$2 redis_port urls=() pids=() cpu=() i port
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" \
        >"$TMP/redis.log" 2>&1 &
    PIDS+=($!); cpu+=(--cpu-pid $!)
    wait_port "$redis_port" || return 1
    for ((i = 0; i < procs; i++)); do
        port=$(free_port)
        local radapter=()
        [ "$procs" -gt 1 ] && radapter=(--redis "redis://127.0.0.1:$redis_port")
        node "$SIO_DIR/peer.mjs" --port "$port" --index "$i" "${radapter[@]}" >"$TMP/peer$i.log" 2>&1 &
        PIDS+=($!); pids+=(--pid $!)
        wait_port "$port" || return 1
        urls+=(--node "ws://127.0.0.1:$port/socket.io/?EIO=4&transport=websocket")
    done
    # shellcheck disable=SC2046,SC2086
    "$BENCH" --socketio "${urls[@]}" $(scenario_args "$scen") ${BENCH_ARGS:-} --procs 2 \
        --duration "$DURATION" --register --user-prefix sio "${pids[@]}" "${cpu[@]}" | grep '^{' | tail -1
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    PIDS=()
}

cluster_run() {
    local scen=$1
    local name=${scen%@*} rate=
    [ "$name" = "$scen" ] || rate=${scen#*@}
    local run_name=$name extra=()
    case $name in
    direct) if [ -n "$rate" ]; then run_name="direct-rate@$rate"; else run_name=direct; fi ;;
    room) run_name="room@${rate:-20}" ;;
    esac
    DURATION=$DURATION DIRECT_CLIENTS=$([ -n "$rate" ] && echo "$DIRECT_CLIENTS" || echo "$SAT_CLIENTS") \
        DIRECT_WINDOW=8 IDLE_CLIENTS=$IDLE_CLIENTS ROOM_CLIENTS=$ROOM_CLIENTS LOGIN_CLIENTS=10 \
        "$REPO/bench/run.sh" --build "$BUILD" --nodes "$NODES" "$run_name" 2>/dev/null | grep '^{' | tail -1
}

median() { python3 -c 'import sys,json,statistics
rows=[json.loads(l) for l in sys.stdin if l.startswith("{")]
def med(k):
    v=[r[k] for r in rows if isinstance(r.get(k),(int,float))]
    return round(statistics.median(v),2) if v else "-"
print(" | ".join(str(med(k)) for k in ("rate","p50_ms","p99_ms","cpu_s_per_million_deliveries","rss_per_conn_bytes","lost","dup","errors")), "|", len(rows))'; }

echo "| scenario | server | rate/s | p50 ms | p99 ms | CPU us per delivery | B per idle conn | lost | dup | errors | runs |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for scen in "${SCENARIOS[@]}"; do
    for target in "socket.io, 1 process" "socket.io, 2 processes + Redis adapter" "chat cluster, $NODES nodes"; do
        : >"$TMP/runs"
        for ((r = 0; r < RUNS; r++)); do
            case $target in
            "socket.io, 1 process") sio_run 1 "$scen" >>"$TMP/runs" ;;
            socket.io,\ 2*) sio_run 2 "$scen" >>"$TMP/runs" ;;
            *) cluster_run "$scen" >>"$TMP/runs" ;;
            esac
        done
        echo "| $scen | $target | $(median <"$TMP/runs")"
    done
done
