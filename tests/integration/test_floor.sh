#!/usr/bin/env bash
# chat-floor smoke test: each mode briefly on loopback; every connection
# must be held (and pushed to), the ring must pass messages, the JSON line
# must say ok, a paced ring must keep its rate and report latencies, and
# bad flags exit 2 before anything starts.
#   test_floor.sh BUILD_DIR
set -u
FLOOR="$1/bench/chat-floor"
fail() { echo "FAIL: $*" >&2; exit 1; }

# check JSON_LINE PY_EXPR: the expression over the parsed line `r` must hold
check() {
    python3 -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(0 if eval(sys.argv[2]) else 1)' \
        "$1" "$2" || fail "$2 does not hold for: $1"
}

# expect PY_EXPR FLOOR_ARGS...: one run, which must exit 0 with a line that holds
expect() {
    local expr=$1 out
    shift
    out=$(timeout 60 "$FLOOR" "$@") || fail "'$*' exited $?: $out"
    check "$out" "$expr"
}

expect 'r["ok"] and r["held"] == 3000 and r["conns_per_s"] > 0 and r["cpu_us_per_conn"] >= 0' \
    --mode storm --clients 3000 --procs 3 --servers 2 --timeout 30
expect 'r["ok"] and r["held"] == 3000 and r["pushed"] == 3000 and r["push_last_s"] > 0' \
    --mode push --clients 3000 --procs 2 --servers 3 --timeout 30
expect 'r["ok"] and r["laps"] > 0 and r["hops_per_s"] > 0' \
    --mode ring --ring 3 --clients 20 --window 2 --duration 2
# ~500/s for the 1.5 s measured: the pacer neither stalls nor floods
expect 'r["ok"] and 300 <= r["measured"] <= 1200 and 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]' \
    --mode ring --ring 4 --clients 5 --rate 500 --duration 3

for bad in "--mode nope" "--mode storm --clients 0" "--mode storm --clients 50000 --procs 2" \
           "--mode ring --duration 1" "--mode ring --ring 1" \
           "--mode storm --rate 100" "--mode ring --rate -1" "--mode storm extra"; do
    timeout 10 "$FLOOR" $bad > /dev/null 2>&1
    rc=$?
    [ "$rc" = 2 ] || fail "'$bad' exited $rc, not 2"
done
echo "floor smoke: ok"
