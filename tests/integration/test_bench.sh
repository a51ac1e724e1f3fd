#!/usr/bin/env bash
# Smoke test of chat-bench against a real node: a private Redis and one
# chat-node on free ports under a temp dir, every scenario for a few seconds
# with small N and two worker processes, then the final JSON line must say
# lost=0, dup=0, errors=0 and delivered>0. Also: a target outside
# 127.0.0.0/8 is refused with exit 2 before any connection is made, and
# --reconnect: kill -9 of a second node during an idle run moves its
# clients to the first one with their tokens (dropped = reconnected = its
# share, every client answers at the end); the push scenario through a
# gateway.
#   test_bench.sh BUILD_DIR
set -u
BUILD=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

BENCH="$BUILD/bench/chat-bench"
REDIS_PORT=$(free_port)
NODE_PORT=$(free_port)
start_redis "$REDIS_PORT"
# start_node NAME PORT: a node on the shared Redis and store, with the
# test-only argon2id cost and a high rate limit (closed-loop senders are not 429'd);
# a broadcast to all goes out 3 sessions per loop turn (20 clients: 7 turns).
start_node() {
    start_bg "$1" "$BUILD/node/chat-node" --listen "127.0.0.1:$2" --redis "127.0.0.1:$REDIS_PORT" \
        --store "sqlite:$TMP/chat.db" --pwhash-ops 1 --pwhash-mem 8M --rate 100000 --burst 100000 \
        --fanout-slice 3 \
        --log-level warn
    wait_port "$2" 20
}
start_node node "$NODE_PORT"
NODE_PID=${PIDS[-1]}
URL="ws://127.0.0.1:$NODE_PORT/ws"
FAILS=0

# check_json NAME FILE: the last line is the report; judge it.
check_json() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
name, path = sys.argv[1], sys.argv[2]
lines = [l for l in open(path).read().splitlines() if l.startswith("{")]
if not lines:
    print(f"{name}: no JSON line"); sys.exit(1)
r = json.loads(lines[-1])
bad = [k for k in ("lost", "dup", "errors") if r.get(k) != 0]
if r.get("delivered", 0) <= 0: bad.append("delivered")
if r.get("clients", 0) <= 0: bad.append("clients")
for k in ("scenario", "sent", "rate", "p50_ms", "p99_ms", "max_ms"):
    if k not in r: bad.append("missing " + k)
if not (r.get("p50_ms", 0) <= r.get("p99_ms", 0) <= r.get("max_ms", 0)): bad.append("percentile order")
print(f"{name}: {'FAIL ' + ','.join(bad) if bad else 'ok'} {lines[-1]}")
sys.exit(1 if bad else 0)
EOF
}

# judge NAME RC PATTERN WANT: a run's exit code, its report and a pattern
# the report must hold (WANT says what it means).
judge() {
    local name=$1 rc=$2 pattern=$3 want=$4 out="$TMP/bench-$1.out"
    if [ "$rc" -ne 0 ]; then
        echo "$name: chat-bench exited non-zero"
        cat "$out" "$TMP/bench-$name.log"
        FAILS=$((FAILS + 1))
    elif ! check_json "$name" "$out" || ! grep -q "$pattern" "$out"; then
        echo "$name: want $want"
        FAILS=$((FAILS + 1))
    fi
}

# run_case NAME ARGS...: one scenario; the first run registers its users.
run_case() {
    local t0=$SECONDS
    local name=$1
    shift
    local out="$TMP/bench-$name.out"
    if ! timeout 120 "$BENCH" --node "$URL" --procs 2 --duration 2 --grace 3 --setup-timeout 30 \
        --user-prefix "bt$name" --register "$@" >"$out" 2>"$TMP/bench-$name.log"; then
        echo "$name: chat-bench exited non-zero"
        cat "$out" "$TMP/bench-$name.log"
        FAILS=$((FAILS + 1))
        return
    fi
    check_json "$name" "$out" || FAILS=$((FAILS + 1))
    echo "  ($name took $((SECONDS - t0)) s)"
}

run_case login --scenario login --clients 10
run_case idle --scenario idle --clients 40 --pid "$NODE_PID"
run_case direct --scenario direct --clients 10 --pid "$NODE_PID"
# bench/threads.sh beside a run: the node's loop and store threads, with the
# messages it stored meanwhile
"$HERE/../../bench/threads.sh" 3 "$NODE_PID" >"$TMP/threads.out" 2>&1 &
THREADS=$!
run_case direct_rate --scenario direct --clients 10 --rate 500
if ! wait "$THREADS" || ! grep -Eq '^[1-9][0-9]* messages stored' "$TMP/threads.out" ||
    ! grep -Eq 'us/msg .* chat-node$' "$TMP/threads.out" || ! grep -Eq 'us/msg .* store$' "$TMP/threads.out"; then
    echo "threads.sh: no per-thread figures"
    cat "$TMP/threads.out"
    FAILS=$((FAILS + 1))
fi
# both pacings send what --rate asks: 500/s for 2 s (Poisson: sd ~32)
run_case direct_tick --scenario direct --clients 10 --rate 500 --pace tick
for name in direct_rate direct_tick; do
    if ! grep '^{' "$TMP/bench-$name.out" | tail -n 1 |
        python3 -c 'import json, sys; s = json.load(sys.stdin)["sent"]; sys.exit(not 800 <= s <= 1200)'; then
        echo "$name: want 800..1200 sent (--rate 500 for 2 s)"
        FAILS=$((FAILS + 1))
    fi
done
# --warmup: its sends count as sent, their latencies do not (1,000 a phase)
run_case direct_warm --scenario direct --clients 10 --rate 500 --warmup 2
if ! grep '^{' "$TMP/bench-direct_warm.out" | tail -n 1 | python3 -c 'import json, sys
r = json.load(sys.stdin)
sys.exit(not (1600 <= r["sent"] <= 2400 and 800 <= r["measured"] <= 1200 and r["warmup_s"] == 2))'; then
    echo "direct_warm: want 1600..2400 sent, 800..1200 measured (--rate 500, --warmup 2, 2 s)"
    FAILS=$((FAILS + 1))
fi
if "$BENCH" --node "$URL" --scenario idle --warmup 1 >/dev/null 2>&1; then
    echo "--warmup with --scenario idle: want a usage error"
    FAILS=$((FAILS + 1))
fi
run_case group --scenario group --clients 12 --group-size 6 --senders 2
run_case room --scenario room --clients 30 --rate 50

# push: a gateway with an admin token; every client of both workers must
# get every POST /push {all} once (lost 0 also means the workers heard of
# each accepted push), and a wrong token makes the run fail
GW_PORT=$(free_port)
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TMP/push.token"
echo wrong-token >"$TMP/wrong.token"
chmod 600 "$TMP/push.token" "$TMP/wrong.token" # credentials: others may not read them
start_bg gateway "$BUILD/gateway/chat-gateway" --listen "127.0.0.1:$GW_PORT" \
    --redis "127.0.0.1:$REDIS_PORT" --push-token-file "$TMP/push.token" --log-level warn
wait_port "$GW_PORT" 20
for _ in $(seq 50); do # the node is listed after its first heartbeat
    curl -sf "http://127.0.0.1:$GW_PORT/servers" | grep -q ws: && break
    sleep 0.1
done
rc=0
timeout 120 "$BENCH" --gateway "http://127.0.0.1:$GW_PORT" --procs 2 --duration 2 --rate 3 \
    --grace 3 --setup-timeout 30 --user-prefix btidle --scenario push --clients 20 \
    --push-token-file "$TMP/push.token" >"$TMP/bench-push.out" 2>"$TMP/bench-push.log" || rc=$?
judge push "$rc" '"sent":6,"delivered":120,' "6 pushes delivered to 20 clients each"
if timeout 60 "$BENCH" --gateway "http://127.0.0.1:$GW_PORT" --duration 1 --scenario push \
    --clients 2 --user-prefix btidle --push-token-file "$TMP/wrong.token" >/dev/null 2>&1; then
    echo "push: a refused token must fail the run"
    FAILS=$((FAILS + 1))
fi

# the idle run reads the node's VmRSS
grep -q '"rss_ready_kb":[1-9]' "$TMP/bench-idle.out" || { echo "idle: no RSS sample"; FAILS=$((FAILS + 1)); }

# the direct run reads the node's CPU time and relates it to deliveries
grep -q '"cpu_s_per_million_deliveries":[0-9]' "$TMP/bench-direct.out" ||
    { echo "direct: no CPU sample"; FAILS=$((FAILS + 1)); }

# --reconnect: a second node on the same Redis and store; its clients come
# back on the first one after it is killed
NODE2_PORT=$(free_port)
start_node node2 "$NODE2_PORT"
NODE2_PID=${PIDS[-1]}
out="$TMP/bench-reconnect.out"
timeout 120 "$BENCH" --node "$URL" --node "ws://127.0.0.1:$NODE2_PORT/ws" --procs 2 --duration 8 \
    --grace 3 --setup-timeout 30 --user-prefix btidle --scenario idle --clients 20 \
    --reconnect 0.3 >"$out" 2>"$TMP/bench-reconnect.log" &
RB=$!
sleep 4 # set up (users from the idle case) and running
kill -9 "$NODE2_PID"
rc=0
wait "$RB" || rc=$?
judge reconnect "$rc" '"dropped":10,"reconnected":10,' "10 dropped and 10 back"
grep -q '"first_back_s":[0-9]' "$out" || { echo "reconnect: no first_back_s"; FAILS=$((FAILS + 1)); }

# --ask-gateway: the same with a third node, each attempt trying the dead node
# and then asking the gateway where to go (it lists the dead node until its
# entry ages out: those attempts are refused and asked again); no answer may
# miss the bench's list
NODE3_PORT=$(free_port)
start_node node3 "$NODE3_PORT"
NODE3_PID=${PIDS[-1]}
for _ in $(seq 100); do # node3 listed, node2's entry aged out
    n=$(curl -sf "http://127.0.0.1:$GW_PORT/servers" | grep -o '"url"' | wc -l)
    [ "$n" = 2 ] && curl -sf "http://127.0.0.1:$GW_PORT/servers" | grep -q ":$NODE3_PORT/" && break
    sleep 0.1
done
# ask_run NAME RECONNECT DURATION [restart]: an idle run through the gateway
# with --ask-gateway; node3 is killed 4 s in (and restarted on its port at
# once with "restart"); the report's last-node counts land in tries/misses.
ask_run() {
    local out="$TMP/bench-$1.out" rb
    timeout 120 "$BENCH" --gateway "http://127.0.0.1:$GW_PORT" --procs 2 --duration "$3" \
        --grace 3 --setup-timeout 30 --user-prefix btidle --scenario idle --clients 20 \
        --reconnect "$2" --ask-gateway >"$out" 2>"$TMP/bench-$1.log" &
    rb=$!
    sleep 4
    kill -9 "$NODE3_PID"
    if [ "${4:-}" = restart ]; then
        wait "$NODE3_PID" 2>/dev/null
        start_node node3 "$NODE3_PORT"
        NODE3_PID=${PIDS[-1]}
    fi
    rc=0
    wait "$rb" || rc=$?
    tries=$(grep -o '"last_node_tries":[0-9]*' "$out" | cut -d: -f2)
    misses=$(grep -o '"last_node_misses":[0-9]*' "$out" | cut -d: -f2)
    tries=${tries:-0} misses=${misses:-0}
}

ask_run askgw 0.3 12
judge askgw "$rc" '"dropped":10,"reconnected":10,' "10 dropped and 10 back through the gateway"
grep -q '"asked_gateway":[1-9][0-9]*,"gateway_misses":0' "$TMP/bench-askgw.out" ||
    { echo "askgw: no asks, or answers outside the list"; FAILS=$((FAILS + 1)); }
# each attempt tried the dead node first and then asked the gateway
if [ "$tries" -lt 10 ] || [ "$tries" != "$misses" ]; then
    echo "askgw: want >= 10 tries of the last node, all missed: $tries / $misses"
    FAILS=$((FAILS + 1))
fi

# --ask-gateway when the node comes back on its port: its clients go back
# to it (a try within the restart, ~0.1 s of a 0..3 s spread, asks instead)
start_node node3 "$NODE3_PORT"
NODE3_PID=${PIDS[-1]}
for _ in $(seq 100); do # node3 listed again
    curl -sf "http://127.0.0.1:$GW_PORT/servers" | grep -q ":$NODE3_PORT/" && break
    sleep 0.1
done
ask_run sticky 3 14 restart
judge sticky "$rc" '"dropped":10,"reconnected":10,' "10 dropped and 10 back"
if [ "$tries" -lt 10 ] || [ "$misses" -ge "$tries" ]; then
    echo "sticky: want >= 10 tries of the last node, some back on it: $tries / $misses"
    FAILS=$((FAILS + 1))
else
    echo "sticky: $((tries - misses)) of $tries tries back on the restarted node"
fi

# the guard: refused before any traffic, exit 2 (192.0.2.0/24 is TEST-NET-1)
"$BENCH" --scenario direct --node ws://192.0.2.1:9/ws --clients 2 >/dev/null 2>"$TMP/guard.log"
rc=$?
if [ "$rc" -ne 2 ] || ! grep -q "127.0.0.0/8" "$TMP/guard.log"; then
    echo "guard: expected exit 2 for a non-loopback target, got $rc"
    FAILS=$((FAILS + 1))
else
    echo "guard: ok"
fi

if [ "$FAILS" -ne 0 ]; then
    echo "$FAILS bench case(s) failed"
    exit 1
fi
echo "all bench cases passed"
