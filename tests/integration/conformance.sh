#!/usr/bin/env bash
# Runs the black-box conformance suite (../shared/conformance) against a real
# local deployment: a private Redis, chat-node(s) on a temp SQLite file, and
# the gateway when it is built.
#   conformance.sh BUILD_DIR [extra run.py args...]
set -u
BUILD=$(cd "$1" && pwd)
shift
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SUITE=${CHAT_CONFORMANCE_DIR:-$REPO/../shared/conformance}
. "$HERE/lib.sh"

if [ ! -f "$SUITE/run.py" ]; then
    echo "conformance suite not found at $SUITE (set CHAT_CONFORMANCE_DIR)" >&2
    exit 1
fi

REDIS_PORT=$(free_port)
NODE_PORT=$(free_port)
GW_PORT=$(free_port)
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
DIRTY=conformancedirt
echo "$DIRTY" >"$TMP/dirty.txt"
echo "$TOKEN" >"$TMP/push.token"

start_redis "$REDIS_PORT"
# Test-only argon2id cost: the suite registers hundreds of users.
start_bg node1 "$BUILD/node/chat-node" --listen "127.0.0.1:$NODE_PORT" --redis "127.0.0.1:$REDIS_PORT" \
    --store "sqlite:$TMP/chat.db" --dirty-words "$TMP/dirty.txt" --pwhash-ops 1 --pwhash-mem 8M \
    --rate 1000 --burst 2000 --log-level info
wait_port "$NODE_PORT" 20

ARGS=(--dirty-word "$DIRTY" --timeout 10 -j 4)
if [ -x "$BUILD/gateway/chat-gateway" ]; then
    start_bg gateway "$BUILD/gateway/chat-gateway" --listen "127.0.0.1:$GW_PORT" \
        --redis "127.0.0.1:$REDIS_PORT" --push-token-file "$TMP/push.token"
    wait_port "$GW_PORT" 20
    # the node appears in /servers after its first heartbeat
    for _ in $(seq 50); do
        curl -sf "http://127.0.0.1:$GW_PORT/servers" >/dev/null 2>&1 && break
        sleep 0.1
    done
    ARGS+=(--gateway "http://127.0.0.1:$GW_PORT" --push-token "$TOKEN")
else
    ARGS+=(--node "ws://127.0.0.1:$NODE_PORT/ws")
fi

python3 "$SUITE/run.py" "${ARGS[@]}" "$@"
