#!/usr/bin/env bash
# chat-seed + chat-client against a real Redis, chat-node and chat-gateway on
# private ports: batch clients message each other, use a room and history,
# survive a node restart (resume token: back to the last node with the gateway
# down, through the gateway when the node moved); the interactive client runs under
# tmux and an event arriving mid-typing leaves the typed line intact.
# Usage: test_client.sh BUILD_DIR. Exit 77 (skip) without tmux.
set -u
BUILD=$(cd "${1:?usage: test_client.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
# never a skip: scripts/install-deps.sh installs both (deps_check verifies)
command -v tmux >/dev/null || { echo "FAIL: tmux not installed (scripts/install-deps.sh)"; exit 1; }
command -v redis-server >/dev/null || { echo "FAIL: redis-server not installed (scripts/install-deps.sh)"; exit 1; }
# shellcheck source=lib.sh
. "$HERE/lib.sh"

NODE=$BUILD/node/chat-node
GATEWAY=$BUILD/gateway/chat-gateway
CLIENT=$BUILD/client/chat-client
SEED=$BUILD/seed/chat-seed
for bin in "$NODE" "$GATEWAY" "$CLIENT" "$SEED"; do
    [ -x "$bin" ] || { echo "missing $bin (build it first)"; exit 1; }
done

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# wait_for FILE PATTERN SECONDS: until grep -q finds PATTERN in FILE.
wait_for() {
    local deadline=$((SECONDS + $3))
    while [ $SECONDS -lt $deadline ]; do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# wait_for_count FILE PATTERN N SECONDS: until PATTERN is on N lines of FILE.
wait_for_count() { # FILE PATTERN N SECONDS
    local deadline=$((SECONDS + $4))
    while [ "$(grep -c -- "$2" "$1" 2>/dev/null)" -lt "$3" ]; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}

# wait_exit PID SECONDS: until the process is gone; its status in $EXIT.
wait_exit() {
    local deadline=$((SECONDS + $2))
    while kill -0 "$1" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
    wait "$1"
    EXIT=$?
}

REDIS_PORT=$(free_port)
NODE_PORT=$(free_port)
GW_PORT=$(free_port)
DB=$TMP/chat.db
start_redis "$REDIS_PORT" || exit 1

start_node() {
    start_bg "node$1" "$NODE" --listen "127.0.0.1:$NODE_PORT" --redis "127.0.0.1:$REDIS_PORT" \
        --store "sqlite:$DB" --pwhash-ops 1 --pwhash-mem 8M
    NODE_PID=$!
    wait_port "$NODE_PORT" 10
}

echo "== seed (twice: the second run creates nothing)"
"$SEED" --store "sqlite:$DB" --users 4 --friends 1 --groups 1 --group-size 3 --rooms 1 \
    >"$TMP/seed1.out" || fail "chat-seed failed"
grep -q "users: created 4, existing 0" "$TMP/seed1.out" || fail "seed 1: $(cat "$TMP/seed1.out")"
"$SEED" --store "sqlite:$DB" --users 4 --friends 1 --groups 1 --group-size 3 --rooms 1 \
    >"$TMP/seed2.out" || fail "chat-seed (2nd) failed"
grep -q "users: created 0, existing 4" "$TMP/seed2.out" || fail "seed 2: $(cat "$TMP/seed2.out")"
grep -q "rooms: created 0, existing 1" "$TMP/seed2.out" || fail "seed 2: $(cat "$TMP/seed2.out")"

# silent_listener PORT: takes connections, never answers (60 s); pid in $SILENT.
silent_listener() {
    python3 -c 'import socket,sys,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8); time.sleep(60)' "$1" &
    SILENT=$!
    PIDS+=("$SILENT")
    wait_port "$1" 10 || exit 1
}

start_gateway() {
    start_bg gateway "$GATEWAY" --listen "127.0.0.1:$GW_PORT" --redis "127.0.0.1:$REDIS_PORT"
    GW_PID=$!
    wait_port "$GW_PORT" 10 || exit 1
}

start_node 1 || exit 1
start_gateway
GW=http://127.0.0.1:$GW_PORT
# the node registers itself in Redis; wait until the gateway lists it
deadline=$((SECONDS + 15))
servers() { python3 -c 'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' "$GW/servers" 2>/dev/null; }
until servers | grep -q "ws://"; do
    [ $SECONDS -lt $deadline ] || fail "gateway never listed the node"
    sleep 0.2
done

echo "== batch: bob waits, alice (user1) messages bob (user2) and talks in room1"
cat >"$TMP/bob.cmd" <<'EOF'
/join room1
/expect chat 20
/expect room_chat 20
/history user1
EOF
"$CLIENT" --gateway "$GW" --user user2 --password pass-2 --script "$TMP/bob.cmd" \
    >"$TMP/bob.out" 2>"$TMP/bob.log" &
BOB=$!
wait_for "$TMP/bob.out" '"action":"room_join","code":0' 15 || fail "bob did not join room1"

cat >"$TMP/alice.cmd" <<'EOF'
/msg user2 hello bob
/join room1
/say hi room
/expect receipt 20
/history user2
/history #room1
/popular
EOF
"$CLIENT" --gateway "$GW" --user user1 --password pass-1 --script "$TMP/alice.cmd" \
    >"$TMP/alice.out" 2>"$TMP/alice.log"
rc=$?
[ $rc -eq 0 ] || fail "alice exited $rc: $(cat "$TMP/alice.out")"
wait_exit $BOB 20 || fail "bob did not finish"
[ "$EXIT" -eq 0 ] || fail "bob exited $EXIT: $(cat "$TMP/bob.out")"
grep -q '"event":"chat".*"from":"user1".*"message":"hello bob"' "$TMP/bob.out" ||
    fail "bob missed the chat"
grep -q '"event":"room_chat".*"room":"room1".*"message":"hi room"' "$TMP/bob.out" ||
    fail "bob missed the room message"
grep -q '"action":"history","code":0.*"message":"hello bob"' "$TMP/bob.out" ||
    fail "bob's history lacks the message"
grep -q '"event":"receipt".*"by":"user2"' "$TMP/alice.out" || fail "alice got no receipt (ack)"
grep -q '"action":"history","code":0.*"message":"hi room"' "$TMP/alice.out" ||
    fail "room history lacks the message"

echo "== batch: bob acked, so nothing is pending at his next login"
printf '/expect chat 1\n' | "$CLIENT" --gateway "$GW" --user user2 --password pass-2 \
    >"$TMP/bob2.out" 2>&1
rc=$?
[ $rc -eq 3 ] || fail "expected /expect to time out (3), got $rc: $(cat "$TMP/bob2.out")"

echo "== batch: errors give exit status 1, bad credentials 2"
printf '/msg nobody hi\n' | "$CLIENT" --gateway "$GW" --user user1 --password pass-1 \
    >"$TMP/err.out" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "expected 1 for a 404, got $rc"
grep -q '"code":404' "$TMP/err.out" || fail "no 404 line: $(cat "$TMP/err.out")"
{ echo '/nope'; printf '/say %09000d\n' 0; echo '/ping'; } |
    "$CLIENT" --gateway "$GW" --user user1 --password pass-1 >"$TMP/lines.out" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "expected 1 for bad lines, got $rc"
grep -q '"error":"unknown command' "$TMP/lines.out" || fail "no error for /nope"
grep -q '"error":"line longer than' "$TMP/lines.out" || fail "no error for the long line"
grep -q '"action":"ping","code":0' "$TMP/lines.out" || fail "commands after bad lines did not run"
printf '/ping\n' | "$CLIENT" --gateway "$GW" --user user1 --password wrong-pw >"$TMP/bad.out" 2>&1
rc=$?
[ $rc -eq 2 ] || fail "expected 2 for bad credentials, got $rc: $(cat "$TMP/bad.out")"

echo "== reconnect: the node dies and comes back while the gateway is down; carol (user3)"
echo "   goes back to her last node without asking the gateway, and resumes by token"
printf '/expect chat 60\n/expect chat 60\n/expect chat 60\n' >"$TMP/carol.cmd"
"$CLIENT" --gateway "$GW" --user user3 --password pass-3 --script "$TMP/carol.cmd" \
    >"$TMP/carol.out" 2>"$TMP/carol.log" &
CAROL=$!
wait_for "$TMP/carol.out" '"client":"ready"' 15 || fail "carol never logged in"
kill "$GW_PID"
kill -9 "$NODE_PID"
wait_for "$TMP/carol.out" '"client":"retry"' 15 || fail "carol did not notice the node dying"
start_node 2 || exit 1
wait_for "$TMP/carol.out" 'resumed by token' 30 ||
    fail "carol did not go back to her node: $(cat "$TMP/carol.out")"
start_gateway
printf '/msg user3 after restart\n' | "$CLIENT" --gateway "$GW" --user user1 --password pass-1 \
    >/dev/null 2>&1 || fail "alice could not send after the restart"
wait_for "$TMP/carol.out" '"message":"after restart"' 15 || fail "carol missed the message"

echo "== the last node is gone for good: carol asks the gateway, which lists the new one"
kill -9 "$NODE_PID"
NODE_PORT=$(free_port)
start_node 3 || exit 1
wait_for_count "$TMP/carol.out" 'resumed by token' 2 40 ||
    fail "carol did not find the new node: $(cat "$TMP/carol.out")"
grep -q "\"detail\":\"ws://127.0.0.1:$NODE_PORT" "$TMP/carol.out" ||
    fail "carol's last connect was not to the new node: $(cat "$TMP/carol.out")"
printf '/msg user3 after move\n' | "$CLIENT" --gateway "$GW" --user user1 --password pass-1 \
    >/dev/null 2>&1 || fail "alice could not send after the move"
wait_for "$TMP/carol.out" '"message":"after move"' 15 || fail "carol missed the message after the move"

echo "== the last node takes connections but never answers (a host cut off): carol asks the gateway"
kill -9 "$NODE_PID"
SILENT_PORT=$NODE_PORT
silent_listener "$SILENT_PORT"
NODE_PORT=$(free_port)
start_node 4 || exit 1
wait_for_count "$TMP/carol.out" 'resumed by token' 3 60 ||
    fail "carol stayed with the silent node: $(cat "$TMP/carol.out")"
# an attempt that tried the silent node went on to the gateway itself (the
# gateway may still list it for a few seconds: those attempts wait 10 s)
python3 - "$TMP/carol.out" "ws://127.0.0.1:$SILENT_PORT" "$GW" <<'PY' || fail "no fallback to the gateway after the silent node: $(cat "$TMP/carol.out")"
import json, sys
st = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{"client"')]
ask = {"client": "connecting", "detail": sys.argv[3]}
sys.exit(0 if any(a.get("detail", "").startswith(sys.argv[2]) and b == ask
                  for a, b in zip(st, st[1:])) else 1)
PY
printf '/msg user3 after silence\n' | "$CLIENT" --gateway "$GW" --user user1 --password pass-1 \
    >/dev/null 2>&1 || fail "alice could not send after the silent node"
wait_exit $CAROL 45 || fail "carol did not finish"
[ "$EXIT" -eq 0 ] || fail "carol exited $EXIT: $(cat "$TMP/carol.out")"
grep -q '"message":"after silence"' "$TMP/carol.out" || fail "carol missed the message after the silent node"

echo "== a node that takes the connection but never answers the handshake: the attempt ends after 10 s"
SILENT_PORT=$(free_port)
silent_listener "$SILENT_PORT"
printf '/expect chat 30\n' | "$CLIENT" --node "ws://127.0.0.1:$SILENT_PORT/" --user user4 --password pass-4 \
    >"$TMP/silent.out" 2>&1 &
SILENT_CLIENT=$!
PIDS+=("$SILENT_CLIENT")
wait_for "$TMP/silent.out" '"client":"retry"' 15 || fail "the silent node held the attempt: $(cat "$TMP/silent.out")"
kill "$SILENT_CLIENT" "$SILENT" 2>/dev/null
wait "$SILENT" 2>/dev/null

echo "== interactive under tmux: an event mid-typing leaves the typed line intact"
SOCK=$TMP/tmux.sock
tmux_() { tmux -S "$SOCK" "$@"; }
pane() { tmux_ capture-pane -p -t cli 2>/dev/null; }
# wait_pane PATTERN SECONDS
wait_pane() {
    local deadline=$((SECONDS + $2))
    while [ $SECONDS -lt $deadline ]; do
        pane | grep -q -- "$1" && return 0
        sleep 0.1
    done
    echo "--- pane:" >&2
    pane >&2
    return 1
}
# the last non-blank line of the pane
last_line() { pane | sed '/^[[:space:]]*$/d' | tail -n 1; }
trap 'rc=$?; tmux -S "$SOCK" kill-server 2>/dev/null; (exit $rc); it_cleanup' EXIT
tmux_ new-session -d -s cli -x 120 -y 30 \
    "env HOME='$TMP' TERM=xterm '$CLIENT' --gateway '$GW' --user user2 --password pass-2 2>'$TMP/tty.log'; echo CLIENT-EXIT=\$?; sleep 60"
wait_pane "logged in as user2" 15 || fail "interactive client did not log in"
tmux_ send-keys -t cli -l "half typed"
wait_pane "user2> half typed" 5 || fail "typed text not shown"
printf '/msg user2 ping from alice\n' | "$CLIENT" --gateway "$GW" --user user1 --password pass-1 \
    >/dev/null 2>&1 || fail "alice could not send"
wait_pane "<user1> ping from alice" 10 || fail "the event was not shown"
[ "$(last_line)" = "user2> half typed" ] || fail "typed line garbled: '$(last_line)'"
pane | grep -q "<user1> ping from alice.*half typed" && fail "event printed into the typed line"
tmux_ send-keys -t cli -l " line"
tmux_ send-keys -t cli Enter
wait_pane "^sent " 10 || fail "the typed line was not sent"
[ "$(last_line)" = "user2>" ] || fail "prompt not fresh after a command: '$(last_line)'"
tmux_ send-keys -t cli -l "/history #world"
tmux_ send-keys -t cli Enter
wait_pane "<user2> half typed line" 10 || fail "history did not show the room message"
tmux_ send-keys -t cli -l "/quit"
tmux_ send-keys -t cli Enter
wait_pane "CLIENT-EXIT=0" 10 || fail "interactive client did not quit cleanly"
grep -q 'half\\040typed\\040line' "$TMP/.chat_history" || fail "history file lacks the line"

echo "PASS"
