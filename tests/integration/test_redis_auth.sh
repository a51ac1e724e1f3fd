#!/usr/bin/env bash
# chat-node and chat-gateway against a Redis that wants a password
# (requirepass for the default user, and the ACL user "chat" with only the
# rights of scripts/redis-acl.txt; lib.sh's start_redis):
#   - a raw connection without AUTH gets NOAUTH;
#   - no password, or a wrong one: a clear error in the log, and nothing
#     works (/servers 503, the node never listed);
#   - the right one works: the ACL user by flag and file (a node) and by
#     environment (a gateway), the default user by file (a gateway);
#   - no password on any command line (ps) nor in any log;
#   - bad credential flags stop the program at start with a clear message.
# usage: test_redis_auth.sh BUILD_DIR
set -u
BUILD=$(cd "${1:?usage: test_redis_auth.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

NODE=$BUILD/node/chat-node
GATEWAY=$BUILD/gateway/chat-gateway
fail() { echo "FAIL: $*" >&2; exit 1; }

# wait_log NAME PATTERN SECONDS: until PATTERN shows in $TMP/NAME.log.
wait_log() {
    local deadline=$((SECONDS + $3))
    until grep -q -- "$2" "$TMP/$1.log" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || fail "$1: no '$2' in its log after $3 s"
        sleep 0.1
    done
}

# status_of URL: the HTTP status (000 when nothing answers).
status_of() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1"; }

# resp_cmd PORT WORDS...: one command as RESP over a raw socket (bash
# builtins only: the words never reach a command line); the first reply line.
resp_cmd() {
    local port=$1 w line
    shift
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    {
        printf '*%d\r\n' $#
        for w in "$@"; do printf '$%d\r\n%s\r\n' "${#w}" "$w"; done
    } >&3
    IFS= read -r -t 2 line <&3 || true
    exec 3<&- 3>&-
    echo "${line%$'\r'}"
}

REDIS_PORT=$(free_port)
start_redis "$REDIS_PORT" || fail "redis did not start"
CHAT_PW=$CHAT_REDIS_PASSWORD       # the ACL user "chat"
ADMIN_PW=$REDIS_ADMIN_PASSWORD     # the default user
# each process below gets exactly what its case gives it
unset CHAT_REDIS_PASSWORD CHAT_REDIS_USER
WRONG=wrong-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
(umask 077 && echo "$CHAT_PW" >"$TMP/chat.pw" && echo "$ADMIN_PW" >"$TMP/admin.pw" &&
    echo "$WRONG" >"$TMP/wrong.pw")

echo "== a raw connection without AUTH is refused"
answer=$(resp_cmd "$REDIS_PORT" PING)
[[ "$answer" == -NOAUTH* ]] || fail "PING without AUTH answered '$answer', not NOAUTH"

echo "== no password: the gateway says so and answers 503"
GW1=$(free_port)
start_bg gw-nopw "$GATEWAY" --listen "127.0.0.1:$GW1" --redis "127.0.0.1:$REDIS_PORT"
wait_log gw-nopw "access refused" 10
grep -q "NOAUTH" "$TMP/gw-nopw.log" || fail "gw-nopw: the log does not name NOAUTH"
grep -q "needs a password and none was given" "$TMP/gw-nopw.log" || fail "gw-nopw: no hint"
[ "$(status_of "http://127.0.0.1:$GW1/servers")" = 503 ] || fail "gw-nopw: /servers not 503"

echo "== a wrong password in a file: the gateway says so and answers 503"
GW2=$(free_port)
start_bg gw-wrong "$GATEWAY" --listen "127.0.0.1:$GW2" --redis "127.0.0.1:$REDIS_PORT" \
    --redis-password-file "$TMP/wrong.pw"
wait_log gw-wrong "AUTH refused" 10
grep -q "WRONGPASS" "$TMP/gw-wrong.log" || fail "gw-wrong: the log does not name WRONGPASS"
[ "$(status_of "http://127.0.0.1:$GW2/servers")" = 503 ] || fail "gw-wrong: /servers not 503"

echo "== a wrong password in the environment: the node says so and is never listed"
N1=$(free_port)
CHAT_REDIS_PASSWORD=$WRONG start_bg node-wrong "$NODE" --id nwrong --listen "127.0.0.1:$N1" \
    --redis "127.0.0.1:$REDIS_PORT" --store "sqlite:$TMP/wrong.db"
wait_log node-wrong "AUTH refused" 10

echo "== the right password: the ACL user by flag and file, by environment; the default user"
N2=$(free_port)
start_bg node-ok "$NODE" --id nok --listen "127.0.0.1:$N2" --redis "127.0.0.1:$REDIS_PORT" \
    --store "sqlite:$TMP/ok.db" --redis-user chat --redis-password-file "$TMP/chat.pw"
GW3=$(free_port)
CHAT_REDIS_USER=chat CHAT_REDIS_PASSWORD=$CHAT_PW start_bg gw-ok "$GATEWAY" \
    --listen "127.0.0.1:$GW3" --redis "127.0.0.1:$REDIS_PORT"
GW4=$(free_port)
start_bg gw-admin "$GATEWAY" --listen "127.0.0.1:$GW4" --redis "127.0.0.1:$REDIS_PORT" \
    --redis-password-file "$TMP/admin.pw"
listed() { curl -sf --max-time 2 "http://127.0.0.1:$1/servers" | grep -q "\"nok\""; }
deadline=$((SECONDS + 15))
until listed "$GW3" && listed "$GW4"; do
    [ $SECONDS -lt $deadline ] || fail "the gateways with the right password never listed node nok"
    sleep 0.2
done
grep -q "connected (authenticated)" "$TMP/node-ok.log" || fail "node-ok: no authenticated connect"
curl -sf --max-time 2 "http://127.0.0.1:$GW3/servers" | grep -q '"nwrong"' &&
    fail "the node with the wrong password is listed"
[ "$(status_of "http://127.0.0.1:$GW2/servers")" = 503 ] || fail "gw-wrong: /servers not 503 later"
# one error, not one per retry (retries go every 2 s)
sleep 2.5
[ "$(grep -c "AUTH refused" "$TMP/gw-wrong.log")" = 1 ] || fail "gw-wrong: the refusal is logged per retry"

echo "== no secret on a command line or in a log"
for pid in "${PIDS[@]}"; do
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
    for s in "$CHAT_PW" "$ADMIN_PW" "$WRONG"; do
        [[ "$cmd" == *"$s"* ]] && fail "pid $pid shows a password on its command line: $cmd"
    done
done
for s in "$CHAT_PW" "$ADMIN_PW" "$WRONG"; do
    if grep -lF -- "$s" "$TMP"/*.log; then fail "a password is in the log(s) above"; fi
done

echo "== docs/DEPLOY.md gives the ACL user the rights tested here"
REPO=$(cd "$HERE/../.." && pwd)
grep -qF "user chat on >CHAT_PASSWORD $(<"$REPO/scripts/redis-acl.txt")" "$REPO/docs/DEPLOY.md" ||
    fail "docs/DEPLOY.md's ACL line is not scripts/redis-acl.txt"

echo "== bad credential flags stop the program at start"
"$GATEWAY" --listen 127.0.0.1:0 --redis-password-file "$TMP/nothere" >"$TMP/bad1.out" 2>&1
[ $? = 2 ] && grep -q "Redis password $TMP/nothere: No such file" "$TMP/bad1.out" ||
    fail "missing password file: $(cat "$TMP/bad1.out")"
"$NODE" --listen 127.0.0.1:0 --redis-user someone >"$TMP/bad2.out" 2>&1
[ $? = 2 ] && grep -q "redis-user needs a password" "$TMP/bad2.out" ||
    fail "--redis-user without a password: $(cat "$TMP/bad2.out")"
: >"$TMP/empty.pw"
"$NODE" --listen 127.0.0.1:0 --redis-password-file "$TMP/empty.pw" >"$TMP/bad3.out" 2>&1
[ $? = 2 ] && grep -q "must be one line of text, not empty" "$TMP/bad3.out" ||
    fail "empty password file: $(cat "$TMP/bad3.out")"
CHAT_ZK_AUTH=nocolon "$NODE" --listen 127.0.0.1:0 >"$TMP/bad4.out" 2>&1
[ $? = 2 ] && grep -q "must be USER:PASSWORD" "$TMP/bad4.out" ||
    fail "ZooKeeper credentials without a colon: $(cat "$TMP/bad4.out")"
echo "1 passed, 0 failed"
