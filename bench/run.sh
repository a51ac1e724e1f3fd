#!/usr/bin/env bash
# Scripted benchmark runs (the numbers in docs/BENCHMARKS.md come from here).
#
#   bench/run.sh [--build DIR] [--nodes N] [--gateway URL] [--small] [SCENARIO...]
#
# Without --gateway it starts, on free loopback ports under a temp dir: a
# private Redis, N chat-nodes (N > 1 adds a private ZooKeeper, the cluster
# link and a gateway when built), seeds users with chat-seed when it is built
# (else the first run registers them), runs each scenario (default: login idle
# direct direct-rate group room) and prints every report plus a summary table.
# SCENARIO@RATE (e.g. room@50, direct@20000) runs it at that --rate.
# With --gateway it only runs the scenarios against that (loopback) gateway;
# the users must exist (--register makes chat-bench register them).
# When chat-gateway is built it is started too and the bench asks it for
# the node list (--gateway), as a client would.
# Sizes come from the environment: PROCS, DURATION, LOGIN_CLIENTS,
# IDLE_CLIENTS, DIRECT_CLIENTS, DIRECT_RATE, GROUP_CLIENTS, GROUP_SIZE,
# ROOM_CLIENTS, ROOM_RATE, DIRECT_WINDOW, PWHASH_OPS, PWHASH_MEM. DB=PATH
# reuses a SQLite store seeded by chat-seed (users PREFIX1..; skips seeding).
# USER_OFFSET (default 1 with chat-seed's users, 0 when registering) and
# BENCH_ARGS (extra chat-bench flags) and NODE_ARGS (extra chat-node flags,
# e.g. "--durability process") pass through. MONGO=1 runs the nodes on the
# MongoDB store, a private CongoDB server (scripts/congodb.sh) whose CPU
# counts too. TLS=1 serves wss:// and https:// only (a local CA made by
# scripts/tls-ca.sh; chat-bench verifies with --ca-file). Every report carries the
# nodes' RSS and the CPU time of nodes, Redis and gateway
# (cpu_s; cpu_s_per_million_deliveries = CPU microseconds per delivery).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BUILD=$REPO/build
NODES=1
GATEWAY=
REGISTER=
NEED_REGISTER=0
SMALL=0
SCENARIOS=()
while [ $# -gt 0 ]; do
    case $1 in
    --build) BUILD=$(cd "$2" && pwd); shift 2 ;;
    --nodes) NODES=$2; shift 2 ;;
    --gateway) GATEWAY=$2; shift 2 ;;
    --register) REGISTER=--register; shift ;;
    --small) SMALL=1; shift ;;
    -h|--help) sed -n "2,/^set -u/p" "$0" | sed "$ d"; exit 0 ;;
    *) SCENARIOS+=("$1"); shift ;;
    esac
done
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(login idle direct direct-rate group room)

BENCH=$BUILD/bench/chat-bench
[ -x "$BENCH" ] || { echo "no $BENCH: build chat-bench first" >&2; exit 1; }

if [ "$SMALL" = 1 ]; then
    : "${DURATION:=3}" "${LOGIN_CLIENTS:=20}" "${IDLE_CLIENTS:=200}" "${DIRECT_CLIENTS:=20}"
    : "${GROUP_CLIENTS:=20}" "${GROUP_SIZE:=10}" "${ROOM_CLIENTS:=100}"
fi
: "${PROCS:=2}" "${DURATION:=10}" "${LOGIN_CLIENTS:=200}" "${IDLE_CLIENTS:=10000}"
: "${DIRECT_CLIENTS:=200}" "${DIRECT_RATE:=2000}" "${GROUP_CLIENTS:=200}" "${GROUP_SIZE:=50}"
: "${ROOM_CLIENTS:=2000}" "${ROOM_RATE:=20}" "${PWHASH_OPS:=1}" "${PWHASH_MEM:=8M}"
: "${PREFIX:=bench}" "${PWFMT:=bench-pw-%d}" "${DIRECT_WINDOW:=4}" "${BENCH_ARGS:=}"
: "${NODE_ARGS:=}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/chat-bench.XXXXXX")
TLS_ARGS=() BENCH_CA=() CURL_CA=() HTTP=http WS=ws
if [ "${TLS:-0}" = 1 ]; then
    "$REPO/scripts/tls-ca.sh" "$TMP/tls" >/dev/null || { echo "cannot make certificates" >&2; exit 1; }
    TLS_ARGS=(--tls-cert "$TMP/tls/server.pem" --tls-key "$TMP/tls/server.key")
    BENCH_CA=(--ca-file "$TMP/tls/ca.pem") CURL_CA=(--cacert "$TMP/tls/ca.pem") HTTP=https WS=wss
fi
: "${DB:=}"
STORE=sqlite:${DB:-$TMP/chat.db}
PIDS=()
NODE_PIDS=()
CPU_PIDS=() # Redis and the gateway: their CPU counts in cpu_s too

cleanup() {
    local pid
    # nodes first: a stopping node still writes what it has queued to the store
    for pid in "${NODE_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${NODE_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    [ -f "$TMP/zk/zoo.cfg" ] && "$REPO/scripts/zookeeper.sh" stop "$TMP/zk" >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT

. "$REPO/scripts/ports.sh"

wait_port() {
    local deadline=$((SECONDS + $2))
    while [ $SECONDS -lt $deadline ]; do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}

start_bg() {
    local name=$1
    shift
    "$@" >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
}

seed_users() {
    local max=$1
    if [ -x "$BUILD/seed/chat-seed" ]; then
        echo "seeding $max users with chat-seed"
        "$BUILD/seed/chat-seed" --store "$STORE" --users "$max" --prefix "$PREFIX" \
            --password-format "$PWFMT" >"$TMP/seed.log" 2>&1 && return 0
        echo "chat-seed failed (see below); chat-bench will register users" >&2
        tail -5 "$TMP/seed.log" >&2
    fi
    NEED_REGISTER=$max
}

# One untimed pass that registers every user (argon2 per user: slow), so the
# measured runs only log in.
register_users() {
    echo "registering $NEED_REGISTER users through the protocol (no chat-seed)"
    "$BENCH" "${TARGET[@]}" "${BENCH_CA[@]}" --scenario idle --clients "$NEED_REGISTER" --procs "$PROCS" \
        --duration 0.1 --grace 0 --connect-rate 2000 --setup-timeout 1800 --register \
        --user-offset 0 \
        --user-prefix "$PREFIX" --password-format "$PWFMT" | tail -1
}

start_node() {
    local i=$1 port=$2 args=()
    if [ "$NODES" -gt 1 ]; then
        args=(--id "b$i" --num "$((i + 1))" --zk "127.0.0.1:$ZK_PORT"
            --cluster-listen "127.0.0.1:$(free_port)" --cluster-secret-file "$TMP/secret")
    fi
    start_bg "node$i" "$BUILD/node/chat-node" --listen "127.0.0.1:$port" "${TLS_ARGS[@]}" \
        --redis "127.0.0.1:$REDIS_PORT" --store "$STORE" \
        --pwhash-ops "$PWHASH_OPS" --pwhash-mem "$PWHASH_MEM" --rate 100000 --burst 100000 \
        --log-level warn "${args[@]}" $NODE_ARGS
    NODE_PIDS+=($!)
    wait_port "$port" 30
}

start_servers() {
    local max=$((IDLE_CLIENTS > ROOM_CLIENTS ? IDLE_CLIENTS : ROOM_CLIENTS)) i port
    max=$((max > LOGIN_CLIENTS ? max : LOGIN_CLIENTS))
    max=$((max > DIRECT_CLIENTS ? max : DIRECT_CLIENTS))
    REDIS_PORT=$(free_port)
    start_bg redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$TMP"
    CPU_PIDS+=(--cpu-pid "${PIDS[-1]}")
    wait_port "$REDIS_PORT" 10
    if [ "${MONGO:-0}" = 1 ]; then
        local mport
        mport=$(free_port)
        start_bg congodb "$REPO/scripts/congodb.sh" run "$TMP/congodb" "$mport"
        CPU_PIDS+=(--cpu-pid "${PIDS[-1]}") # bash exec's node: the same pid
        wait_port "$mport" 60
        STORE="mongodb://127.0.0.1:$mport/chat"
    fi
    [ -n "$DB" ] || seed_users "$max"
    if [ "$NODES" -gt 1 ]; then
        ZK_PORT=$(free_port)
        head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TMP/secret"
        "$REPO/scripts/zookeeper.sh" start "$TMP/zk" "$ZK_PORT" >/dev/null
    fi
    TARGET=()
    for ((i = 0; i < NODES; i++)); do
        port=$(free_port)
        start_node "$i" "$port"
        TARGET+=(--node "$WS://127.0.0.1:$port/ws")
    done
    if [ "$NODES" -gt 1 ]; then
        sleep 2 # let the cluster elect its leader and link up
    fi
    [ -x "$BUILD/gateway/chat-gateway" ] && start_gateway
    [ "$NEED_REGISTER" = 0 ] || register_users
    # chat-seed names users PREFIX1..; registering starts at PREFIX0
    [ -n "${USER_OFFSET:-}" ] || USER_OFFSET=$([ "$NEED_REGISTER" = 0 ] && echo 1 || echo 0)
}

start_gateway() {
    local port i
    port=$(free_port)
    start_bg gateway "$BUILD/gateway/chat-gateway" --listen "127.0.0.1:$port" "${TLS_ARGS[@]}" \
        --redis "127.0.0.1:$REDIS_PORT" --log-level warn
    CPU_PIDS+=(--cpu-pid "${PIDS[-1]}")
    wait_port "$port" 10
    # nodes appear in /servers after their first heartbeat
    for i in $(seq 100); do
        [ "$(curl -sf "${CURL_CA[@]}" "$HTTP://127.0.0.1:$port/servers" | grep -o '"url"' | wc -l)" -ge "$NODES" ] && break
        sleep 0.1
    done
    TARGET=(--gateway "$HTTP://127.0.0.1:$port")
}

REPORTS=()
run_one() {
    local name=${1%@*} args=() rate=
    [ "$name" = "$1" ] || rate=${1#*@} # SCENARIO@RATE overrides the rate
    case $name in
    login) args=(--scenario login --clients "$LOGIN_CLIENTS") ;;
    idle) args=(--scenario idle --clients "$IDLE_CLIENTS" --connect-rate 2000) ;;
    direct) args=(--scenario direct --clients "$DIRECT_CLIENTS" --window "$DIRECT_WINDOW") ;;
    direct-rate) args=(--scenario direct --clients "$DIRECT_CLIENTS" --rate "$DIRECT_RATE") ;;
    group) args=(--scenario group --clients "$GROUP_CLIENTS" --group-size "$GROUP_SIZE" --senders 2) ;;
    room) args=(--scenario room --clients "$ROOM_CLIENTS" --rate "$ROOM_RATE") ;;
    *) echo "unknown scenario $name" >&2; return 1 ;;
    esac
    [ -z "$rate" ] || args+=(--rate "$rate")
    local pids=()
    for p in "${NODE_PIDS[@]}"; do pids+=(--pid "$p"); done
    local cmd=("$BENCH" "${TARGET[@]}" "${BENCH_CA[@]}" "${args[@]}" --procs "$PROCS" --duration "$DURATION"
        --user-prefix "$PREFIX" --user-offset "${USER_OFFSET:-0}" --password-format "$PWFMT"
        --setup-timeout 600 $REGISTER "${pids[@]}" "${CPU_PIDS[@]}" $BENCH_ARGS)
    echo "== $name: ${cmd[*]}"
    "${cmd[@]}" | tee "$TMP/$name.out"
    REPORTS+=("$(grep '^{' "$TMP/$name.out" | tail -1)")
}

if [ -n "$GATEWAY" ]; then
    TARGET=(--gateway "$GATEWAY")
else
    start_servers
fi
echo "machine: $(nproc) cores shared by the bench and the servers, $(uname -r); nodes: $NODES; procs: $PROCS; duration: ${DURATION}s"
for s in "${SCENARIOS[@]}"; do
    run_one "$s"
done

echo
echo "| scenario | clients | target rate | sent | delivered | rate/s | p50 ms | p99 ms | max ms | lost | dup | errors | node cpu s | cpu s/M deliv |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for r in "${REPORTS[@]}"; do
    [ -n "$r" ] || continue
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r.setdefault("cpu_s", "-"); r.setdefault("cpu_s_per_million_deliveries", "-"); print("| {scenario} | {clients} | {target_rate} | {sent} | {delivered} | {rate} | {p50_ms} | {p99_ms} | {max_ms} | {lost} | {dup} | {errors} | {cpu_s} | {cpu_s_per_million_deliveries} |".format(**r))' "$r"
done
