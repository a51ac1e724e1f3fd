#!/usr/bin/env bash
# ecosystem/cluster end to end, with the binaries of BUILD_DIR:
#   up --nodes 3 (--gateways 2 on one port) -> /servers lists 3 -> up again
#   says so -> status works (both gateways online) ->
#   kill -9 a node -> pm2 restarts it and it rejoins -> down leaves no
#   process behind -> the run dir (secrets, settings, logs) is kept.
#   Credentials: Redis refuses a client without the generated password,
#   ZooKeeper a client without the generated digest credentials (reading or
#   writing under the root); the secrets are mode 600, on no command line
#   and in no log.
# With --ha: a 3-server ZooKeeper ensemble (--zk-servers 3) and the MongoDB
#   store (a private CongoDB, scripts/congodb.sh); the shared conformance
#   suite passes through the gateway before and after the ZooKeeper server
#   that leads the ensemble is stopped.
# With --tls: `up --tls` (a local CA in the run dir); plain http to the
#   gateway and to a node is refused, the terminal client refuses the
#   certificate without --ca-file and logs in with it, and the whole shared
#   conformance suite passes through TLS (conformance_tls.py).
# usage: test_ecosystem.sh BUILD_DIR [--ha|--tls]
set -euo pipefail

BUILD=$(realpath "${1:?usage: $0 BUILD_DIR [--ha|--tls]}")
HA=0
TLS=0
[ "${2:-}" = --ha ] && HA=1
[ "${2:-}" = --tls ] && TLS=1
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLUSTER="$REPO/ecosystem/cluster"

if [ ! -x "$BUILD/gateway/chat-gateway" ]; then
    echo "FAIL: $BUILD/gateway/chat-gateway is not built"
    exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/chat-eco.XXXXXX")
RUN="$TMP/run"
export PM2_HOME="$RUN/pm2"   # the cluster's private pm2, for our own pm2 queries
STEP="start"

fail() { echo "FAIL ($STEP): $*" >&2; exit 1; }

cleanup() {
    local rc=$?
    if [ -f "$PM2_HOME/pm2.pid" ]; then
        "$CLUSTER" down --run-dir "$RUN" >/dev/null 2>&1 || true
    fi
    [ "$HA" = 0 ] || "$REPO/scripts/congodb.sh" stop "$TMP/congodb" || true
    if [ "$rc" -ne 0 ]; then
        for f in "$RUN"/logs/*.log "$RUN"/pm2-cli.log; do
            [ -f "$f" ] || continue
            echo "----- $f (last 30 lines)"
            tail -n 30 "$f"
        done
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT

# A base port whose ports of the scheme (P..P+59 for the services and 3
# nodes' client ports, P+220.. for their cluster ports) are free, below the
# ephemeral range (32768-) and away from 7000-7500 (where people run their own clusters).
pick_base() {
    local base p busy
    for _ in $(seq 1 50); do
        base=$((20000 + (RANDOM % 24) * 500))
        busy=0
        for p in $(seq "$base" $((base + 59))) $(seq $((base + 220)) $((base + 239))); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then busy=1; break; fi
        done
        [ "$busy" = 0 ] && { echo "$base"; return 0; }
    done
    return 1
}

# wait_for SECONDS WHAT CMD...: poll until CMD succeeds.
wait_for() {
    local secs=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + secs))
    until "$@"; do
        [ $SECONDS -lt $deadline ] || fail "timed out after $secs s waiting for $what"
        sleep 0.2
    done
}

apps_json() { pm2 jlist 2>/dev/null; }

# app NAME FIELD: pid | status | restarts of one app of the cluster's pm2.
app() {
    apps_json | node -e '
        let t = ""; process.stdin.on("data", (d) => t += d).on("end", () => {
            const a = JSON.parse(t.slice(t.indexOf("["))).find((x) => x.name === process.argv[1]);
            if (!a) return console.log("");
            const f = process.argv[2];
            console.log(f === "pid" ? a.pid : f === "status" ? a.pm2_env.status : a.pm2_env.restart_time);
        });' "$1" "$2"
}

all_pids() {
    printf '%s\n' "$(cat "$PM2_HOME/pm2.pid")" # the file has no newline: not glued to the next pid
    apps_json | node -e '
        let t = ""; process.stdin.on("data", (d) => t += d).on("end", () => {
            for (const a of JSON.parse(t.slice(t.indexOf("[")))) if (a.pid) console.log(a.pid);
        });'
}

servers_count() {
    curl -fsS --max-time 2 ${CA:+--cacert "$CA"} "$GATEWAY/servers" 2>/dev/null |
        node -e 'let t=""; process.stdin.on("data",(d)=>t+=d).on("end",()=>console.log(JSON.parse(t).servers.length))' 2>/dev/null
}

servers_are() { [ "$(servers_count)" = "$1" ]; }

restarted() { # restarted NAME OLD_PID: online under a new pid
    local pid
    pid=$(app "$1" pid)
    [ -n "$pid" ] && [ "$pid" != 0 ] && [ "$pid" != "$2" ] && [ "$(app "$1" status)" = online ]
}

rejoined() { # node 2 serves, is in the cluster, and /servers lists all 3
    "$CLUSTER" status --run-dir "$RUN" >"$TMP/status.txt" 2>&1 || return 1
    grep -Eq 'chat-node-2 +(leader|follower, linked)' "$TMP/status.txt"
}

BASE=$(pick_base) || fail "no 60 free ports found"
GATEWAY="http://127.0.0.1:$((BASE + 10))"
CA=""
if [ "$TLS" = 1 ]; then
    GATEWAY="https://127.0.0.1:$((BASE + 10))"
    CA="$RUN/tls/ca.pem"
fi
echo "run dir $RUN, base port $BASE"

# zk_mode PORT: "leader", "follower", "standalone" or "" from srvr.
zk_mode() {
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 0
    printf 'srvr' >&3
    timeout 2 cat <&3 | sed -n 's/^Mode: //p' || true
    exec 3<&- 3>&- || true
}

conformance() {
    local runner=("${CHAT_CONFORMANCE_DIR:-$REPO/../shared/conformance}/run.py")
    [ "$TLS" = 0 ] || runner=("$REPO/tests/integration/conformance_tls.py"
                              "${CHAT_CONFORMANCE_DIR:-$REPO/../shared/conformance}" "$CA")
    python3 "${runner[@]}" --gateway "$GATEWAY" \
        --push-token "$(cat "$RUN/push.token")" --timeout 10 -j 4 >"$TMP/conformance.txt" 2>&1 ||
        { tail -n 30 "$TMP/conformance.txt"; fail "the shared conformance suite failed"; }
    grep -E '^[0-9]+ passed' "$TMP/conformance.txt" | tail -n 1
}

UP_FLAGS=(--gateways 2) # two gateway processes on one port (plain run only)
GATEWAY_APPS="chat-gateway chat-gateway-2"
ZK_APPS="chat-zookeeper"
if [ "$HA" = 1 ]; then
    STEP="congodb"
    MONGO_PORT=$((BASE + 59))
    "$REPO/scripts/congodb.sh" start "$TMP/congodb" "$MONGO_PORT" || fail "congodb did not start"
    UP_FLAGS=(--zk-servers 3 --store "mongodb://127.0.0.1:$MONGO_PORT/chat"
              --node-args "--pwhash-ops 1 --pwhash-mem 8M")
    ZK_APPS="chat-zookeeper-1 chat-zookeeper-2 chat-zookeeper-3"
fi
[ "$TLS" = 0 ] || UP_FLAGS=(--tls)
[ "$HA" = 0 ] && [ "$TLS" = 0 ] || GATEWAY_APPS="chat-gateway"

STEP="up"
"$CLUSTER" up --nodes 3 --base-port "$BASE" --run-dir "$RUN" --build-dir "$BUILD" \
    --no-build --no-deps "${UP_FLAGS[@]}" >"$TMP/up.txt" 2>&1 || { cat "$TMP/up.txt"; fail "up exited $?"; }
cat "$TMP/up.txt"
TOKEN=$(cat "$RUN/push.token")
[ ${#TOKEN} -ge 32 ] || fail "push token too short: '$TOKEN'"
grep -qF "$TOKEN" "$TMP/up.txt" || fail "up did not print the push token"
grep -qF "$GATEWAY" "$TMP/up.txt" || fail "up did not print the gateway URL $GATEWAY"
for f in push.token cluster.secret redis.password zk.auth redis/redis.conf; do
    [ "$(stat -c %a "$RUN/$f")" = 600 ] || fail "$f is not mode 600"
done
[ "$(servers_count)" = 3 ] || fail "/servers lists $(servers_count) nodes, not 3"

STEP="credentials"
exec 3<>"/dev/tcp/127.0.0.1/$BASE"
printf 'PING\r\n' >&3
IFS= read -r -t 2 answer <&3 || true
exec 3<&- 3>&-
[[ "$answer" == -NOAUTH* ]] || fail "the cluster's Redis answered '$answer' to a PING without AUTH"
ZKPROBE="$REPO/tests/integration/zkprobe.py"
python3 "$ZKPROBE" "127.0.0.1:$((BASE + 1))" /chat/nodes --create >"$TMP/zk-anon.txt" ||
    fail "zkprobe failed"
grep -qx "list NOAUTH" "$TMP/zk-anon.txt" && grep -qx "create NOAUTH" "$TMP/zk-anon.txt" ||
    fail "ZooKeeper without credentials: $(tr '\n' ' ' <"$TMP/zk-anon.txt")"
python3 "$ZKPROBE" "127.0.0.1:$((BASE + 1))" /chat/nodes --auth-file "$RUN/zk.auth" >"$TMP/zk-auth.txt" ||
    fail "zkprobe failed"
grep -qx "list OK 3" "$TMP/zk-auth.txt" || fail "ZooKeeper with the credentials: $(cat "$TMP/zk-auth.txt")"
echo "Redis: NOAUTH without the password; ZooKeeper: $(head -n 1 "$TMP/zk-anon.txt") without credentials"
SECRETS=("$(cat "$RUN/redis.password")" "$(cut -d: -f2- "$RUN/zk.auth")")
for p in $(all_pids); do
    for s in "${SECRETS[@]}"; do
        ! tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$s" ||
            fail "pid $p has a secret on its command line"
    done
done
no_secret_logged() {
    local s
    for s in "${SECRETS[@]}"; do
        ! grep -lF -- "$s" "$RUN"/logs/*.log "$RUN"/pm2-cli.log "$TMP"/up*.txt "$TMP"/status.txt \
            2>/dev/null || fail "a secret is in the file(s) above"
    done
}
no_secret_logged

if [ "$TLS" = 1 ]; then
    STEP="tls"
    [ "$(stat -c %a "$RUN/tls/server.key")" = 600 ] || fail "tls/server.key is not mode 600"
    ! curl -fsS --max-time 2 "http://127.0.0.1:$((BASE + 10))/servers" >/dev/null 2>&1 ||
        fail "the gateway answers plain http"
    ! curl -fsS --max-time 2 "http://127.0.0.1:$((BASE + 21))/healthz" >/dev/null 2>&1 ||
        fail "node 1 answers plain http"
    ! curl -fsS --max-time 2 "$GATEWAY/servers" >/dev/null 2>&1 ||
        fail "curl trusted the gateway's certificate without the CA"
    curl -fsS --max-time 2 --cacert "$CA" "https://127.0.0.1:$((BASE + 21))/healthz" >/dev/null ||
        fail "node 1 does not answer https with the CA"
    curl -fsS --max-time 2 --cacert "$CA" "$GATEWAY/servers" | grep -q '"url":"wss://' ||
        fail "/servers does not list wss:// URLs"
    CLIENT="$BUILD/client/chat-client"
    timeout 3 "$CLIENT" --gateway "$GATEWAY" --user tlsuser --password tls-pass-1 \
        --register --batch --wait 0 </dev/null >"$TMP/client-noca.txt" 2>&1 && fail "the client logged in without the CA"
    grep -q "certificate verify failed" "$TMP/client-noca.txt" ||
        { cat "$TMP/client-noca.txt"; fail "the client did not say why it refused the certificate"; }
    timeout 10 "$CLIENT" --gateway "$GATEWAY" --ca-file "$CA" --user tlsuser \
        --password tls-pass-1 --register --batch --wait 0 </dev/null >"$TMP/client-ca.txt" 2>&1 ||
        { cat "$TMP/client-ca.txt"; fail "the client could not log in over TLS with --ca-file"; }
    grep -q '"client":"ready","detail":"tlsuser"' "$TMP/client-ca.txt" ||
        { cat "$TMP/client-ca.txt"; fail "the client is not ready over TLS"; }
    BENCH="$BUILD/bench/chat-bench"
    "$BENCH" --scenario direct --gateway "$GATEWAY" --ca-file "$CA" --clients 20 --register \
        --rate 200 --duration 2 --user-prefix tlsb >"$TMP/bench-tls.txt" 2>&1 ||
        { cat "$TMP/bench-tls.txt"; fail "chat-bench over TLS failed"; }
    grep -q '"clients":20,.*"lost":0,"dup":0,"errors":0' "$TMP/bench-tls.txt" ||
        { cat "$TMP/bench-tls.txt"; fail "chat-bench over TLS: not every message delivered"; }
    ! "$BENCH" --scenario idle --gateway "$GATEWAY" --clients 2 --duration 1 >"$TMP/bench-noca.txt" 2>&1 ||
        fail "chat-bench trusted the certificate without the CA"
    grep -q "certificate verify failed" "$TMP/bench-noca.txt" ||
        { cat "$TMP/bench-noca.txt"; fail "chat-bench did not say why it refused the certificate"; }
    echo "TLS: plain http refused, the client verifies (refused without the CA, ready with it; chat-bench the same)"
    STEP="conformance through TLS"
    conformance
fi

STEP="up again"
"$CLUSTER" up --run-dir "$RUN" --no-build --no-deps >"$TMP/up2.txt" 2>&1 || { cat "$TMP/up2.txt"; fail "second up failed"; }
grep -q "already up" "$TMP/up2.txt" || { cat "$TMP/up2.txt"; fail "second up did not say it is already up"; }

STEP="status"
"$CLUSTER" status --run-dir "$RUN" >"$TMP/status.txt" 2>&1 || { cat "$TMP/status.txt"; fail "status exited non-zero"; }
cat "$TMP/status.txt"
grep -q "/servers: 3 node(s)" "$TMP/status.txt" || fail "status does not show 3 nodes in /servers"
for a in chat-redis $ZK_APPS $GATEWAY_APPS chat-node-1 chat-node-2 chat-node-3; do
    grep -Eq "^ +$a +online " "$TMP/status.txt" || fail "status does not show $a online"
done
[ "$(grep -Ec '^ +chat-node-[0-9]+ +leader$' "$TMP/status.txt")" = 1 ] || fail "status does not show exactly one leader"
for a in $GATEWAY_APPS; do # each took the shared port at its first start
    ! grep -q "in use" "$RUN/logs/$a.log" || fail "$a could not listen: $(grep "in use" "$RUN/logs/$a.log")"
done

STEP="logs"
"$CLUSTER" logs --run-dir "$RUN" chat-node-1 --lines 5 >"$TMP/logs.txt" || fail "logs exited non-zero"
grep -q '\[n1\]' "$TMP/logs.txt" || fail "logs chat-node-1 shows no line of n1"

if [ "$HA" = 1 ]; then
    STEP="conformance, ensemble whole"
    conformance
    STEP="zookeeper leader stopped"
    LEAD=""
    for i in 1 2 3; do
        [ "$(zk_mode $((BASE + i)))" = leader ] && LEAD=$i
    done
    [ -n "$LEAD" ] || fail "no ZooKeeper server says it leads"
    pm2 stop "chat-zookeeper-$LEAD" >/dev/null 2>&1 || fail "pm2 stop chat-zookeeper-$LEAD failed"
    echo "stopped chat-zookeeper-$LEAD (the ensemble's leader)"
    new_zk_leader() {
        local i
        for i in 1 2 3; do [ "$i" != "$LEAD" ] && [ "$(zk_mode $((BASE + i)))" = leader ] && return 0; done
        return 1
    }
    wait_for 60 "a new ZooKeeper leader among the 2 left" new_zk_leader
    all_linked() { # status exits 1 while an app (the stopped server) is down
        "$CLUSTER" status --run-dir "$RUN" >"$TMP/status.txt" 2>&1 || true
        [ "$(grep -Ec 'chat-node-[0-9]+ +(leader|follower, linked)' "$TMP/status.txt")" = 3 ]
    }
    wait_for 60 "every chat node linked to a chat leader" all_linked
    conformance
    pm2 start "chat-zookeeper-$LEAD" >/dev/null 2>&1 || fail "pm2 start chat-zookeeper-$LEAD failed"
fi

STEP="kill -9 a node"
OLD=$(app chat-node-2 pid)
[ -n "$OLD" ] && [ "$OLD" != 0 ] || fail "no pid for chat-node-2"
kill -9 "$OLD"
wait_for 30 "pm2 to restart chat-node-2" restarted chat-node-2 "$OLD"
[ "$(app chat-node-2 restarts)" -ge 1 ] || fail "pm2 counts no restart of chat-node-2"
# restarted with pm2's growing pause (0.1 s first), not a fixed 1 s: pm2 says so
grep -Eq 'App \[chat-node-2:[0-9]+\] will restart in [0-9]+ms' "$PM2_HOME/pm2.log" ||
    fail "pm2 did not restart chat-node-2 with exp_backoff_restart_delay"
wait_for 60 "chat-node-2 to rejoin and /servers to list 3" rejoined
servers_are 3 || fail "/servers does not list 3 nodes after the restart"
echo "chat-node-2: pid $OLD killed, restarted as $(app chat-node-2 pid), rejoined"

STEP="down"
PIDS=$(all_pids | tr '\n' ' ')
"$CLUSTER" down --run-dir "$RUN" || fail "down exited $?"
for p in $PIDS $OLD; do
    ! kill -0 "$p" 2>/dev/null || fail "pid $p ($(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)) survived down"
done
! (exec 3<>"/dev/tcp/127.0.0.1/$((BASE + 10))") 2>/dev/null || fail "the gateway port still accepts"
"$CLUSTER" status --run-dir "$RUN" >/dev/null 2>&1 && fail "status says up after down"
[ "$(cat "$RUN/push.token")" = "$TOKEN" ] || fail "push token changed"
for f in cluster.secret cluster.env dirty-words.txt logs/chat-node-1.log; do
    [ -e "$RUN/$f" ] || fail "run dir lost $f"
done
# Sanitizer builds: every clean shutdown (SIGINT from pm2) must be report-free.
if grep -El 'Sanitizer|runtime error:' "$RUN"/logs/chat-*.log; then
    grep -h -B2 -A30 -E "Sanitizer|runtime error:" "$RUN"/logs/chat-*.log | head -80; fail "sanitizer reports in the logs above"
fi
"$CLUSTER" down --run-dir "$RUN" | grep -q "not running" || fail "second down is not a no-op"
STEP="secrets after the run"
no_secret_logged
echo "1 passed, 0 failed"
