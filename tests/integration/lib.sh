# Shared helpers for the integration scripts: free ports, a private Redis,
# process bookkeeping and log dumps. Source it; it sets TMP and traps EXIT.
set -u

TMP=$(mktemp -d "${TMPDIR:-/tmp}/chat-it.XXXXXX")
PIDS=()
KEEP_LOGS=${KEEP_LOGS:-0}

it_cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    # sanitizer builds: every process must stop report-free
    if grep -El 'Sanitizer|runtime error:' "$TMP"/*.log 2>/dev/null; then
        echo "FAIL: sanitizer reports in the logs above" >&2
        [ "$rc" -ne 0 ] || rc=1
    fi
    if [ "$rc" -ne 0 ] || [ "$KEEP_LOGS" = 1 ]; then
        for f in "$TMP"/*.log; do
            [ -f "$f" ] || continue
            echo "----- $f (last 60 lines)"
            tail -n 60 "$f"
        done
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap it_cleanup EXIT

. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/ports.sh"

# wait_port PORT SECONDS: until something accepts on 127.0.0.1:PORT.
wait_port() {
    local port=$1 deadline=$((SECONDS + $2))
    while [ $SECONDS -lt $deadline ]; do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $port after $2 s" >&2
    return 1
}

# start_redis PORT: a throw-away redis-server under $TMP that wants a
# password: a generated one (unless CHAT_REDIS_PASSWORD is set), written with
# the rest of its settings to a mode-600 config file (argv is public), and
# exported as CHAT_REDIS_PASSWORD for the chat processes started after it.
start_redis() {
    local port=$1
    if [ -z "${CHAT_REDIS_PASSWORD:-}" ]; then
        CHAT_REDIS_PASSWORD=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
        export CHAT_REDIS_PASSWORD
    fi
    (umask 077 && printf '%s\n' "port $port" "bind 127.0.0.1" 'save ""' "appendonly no" \
        "dir $TMP" "logfile $TMP/redis-$port.log" "requirepass $CHAT_REDIS_PASSWORD" \
        >"$TMP/redis-$port.conf")
    redis-server "$TMP/redis-$port.conf" &
    PIDS+=($!)
    wait_port "$port" 10
}

# start_bg NAME CMD...: runs a command in the background, logging to $TMP/NAME.log.
start_bg() {
    local name=$1
    shift
    "$@" >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
}
