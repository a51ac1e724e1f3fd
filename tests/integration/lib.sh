# Shared helpers for the integration scripts: free ports, a private Redis,
# process bookkeeping and log dumps. Source it; it sets TMP and traps EXIT.
set -u

TMP=$(mktemp -d "${TMPDIR:-/tmp}/chat-it.XXXXXX")
PIDS=()
REDIS_PORTS=()
KEEP_LOGS=${KEEP_LOGS:-0}

it_cleanup() {
    local rc=$?
    # a command the ACL user may not run is a gap in docs/DEPLOY.md's ACL
    local port
    for port in "${REDIS_PORTS[@]}"; do
        if ! acl_log_empty "$port"; then
            echo "FAIL: Redis refused commands of the chat ACL user (scripts/redis-acl.txt):" >&2
            cat "$TMP/acl-log.txt" >&2
            [ "$rc" -ne 0 ] || rc=1
        fi
    done
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
# password. The chat processes started after it log in as the ACL user
# "chat" with only the rights docs/DEPLOY.md gives it (scripts/redis-acl.txt)
# and a generated password: CHAT_REDIS_USER and CHAT_REDIS_PASSWORD are
# exported; the config file holding it is mode 600 (argv is public). The
# default user has another generated password (REDIS_ADMIN_PASSWORD).
start_redis() {
    local port=$1 acl
    acl=$(<"$(dirname "${BASH_SOURCE[0]}")/../../scripts/redis-acl.txt")
    if [ -z "${CHAT_REDIS_PASSWORD:-}" ]; then
        CHAT_REDIS_PASSWORD=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
        export CHAT_REDIS_PASSWORD CHAT_REDIS_USER=chat
    fi
    : "${REDIS_ADMIN_PASSWORD:=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
    (umask 077 && printf '%s\n' "port $port" "bind 127.0.0.1" 'save ""' "appendonly no" \
        "dir $TMP" "logfile $TMP/redis-$port.log" "requirepass $REDIS_ADMIN_PASSWORD" \
        "user chat on >$CHAT_REDIS_PASSWORD $acl" >"$TMP/redis-$port.conf")
    redis-server "$TMP/redis-$port.conf" &
    PIDS+=($!)
    REDIS_PORTS+=("$port")
    wait_port "$port" 10
}

# acl_log_empty PORT: Redis denied no command, key or channel (ACL LOG, read
# as the default user; failed logins, a test's own doing, do not count; the
# raw reply goes to $TMP/acl-log.txt). A Redis gone counts as empty.
acl_log_empty() {
    local line pw=$REDIS_ADMIN_PASSWORD
    { exec 5<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 0
    printf '*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*2\r\n$3\r\nACL\r\n$3\r\nLOG\r\n' "${#pw}" "$pw" >&5
    IFS= read -r -t 2 line <&5 || true
    IFS= read -r -t 2 line <&5 || true
    line=${line%$'\r'}
    { echo "$line"; [ "$line" = "*0" ] || timeout 1 cat <&5; } >"$TMP/acl-log.txt" 2>/dev/null
    exec 5<&- 5>&-
    [ "$line" = "*0" ] || ! tr -d '\r' <"$TMP/acl-log.txt" | grep -x -A2 reason | grep -qxE 'command|key|channel'
}

# start_bg NAME CMD...: runs a command in the background, logging to $TMP/NAME.log.
start_bg() {
    local name=$1
    shift
    "$@" >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
}
