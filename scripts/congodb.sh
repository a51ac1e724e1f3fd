#!/usr/bin/env bash
# A private CongoDB server (MongoDB wire protocol, in memory) for the MongoDB
# store's tests: mongod cannot be installed on our CI machines.
#   scripts/congodb.sh install              npm-installs it once (cached)
#   scripts/congodb.sh run   DIR PORT [HOST]  foreground, on HOST (127.0.0.1)
#   scripts/congodb.sh start DIR PORT       background; waits until it serves
#   scripts/congodb.sh stop  DIR            stops a server started with start
#   scripts/congodb.sh with  CMD ARGS...    runs CMD beside a fresh server on a
#                                           free port, CHAT_TEST_MONGO=mongodb://...
# It lives in ${CHAT_CONGODB_HOME:-~/.cache/chat-congodb}: @push.rocks/smartmongo
# 2.2.0 with three unused dependencies replaced by stubs (npm overrides), as
# its own dependency tree does not install (scripts/congodb/package.json), and
# one gap to MongoDB closed (string and compound _id: scripts/congodb/patch.mjs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/daemon.sh"
. "$here/npm-private.sh"
home=${CHAT_CONGODB_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/chat-congodb}
cmd=${1:-}
dir=${2:-}
port=${3:-}

install_peer() {
    npm_private_install "$here/congodb" "$home" node patch.mjs
}

serving() {
    { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 1
    exec 3<&- 3>&- || true
}

case $cmd in
install)
    install_peer
    ;;
run)
    [ -n "$dir" ] && [ -n "$port" ] || { echo "usage: $0 run DIR PORT [HOST]" >&2; exit 2; }
    install_peer
    mkdir -p "$dir"
    exec node "$home/server.mjs" "$port" "${4:-127.0.0.1}"
    ;;
start)
    [ -n "$dir" ] && [ -n "$port" ] || { echo "usage: $0 start DIR PORT" >&2; exit 2; }
    install_peer
    mkdir -p "$dir"
    daemon_start "congodb on port $port" "$dir/congodb.pid" "$dir/congodb.log" serving \
        node "$home/server.mjs" "$port"
    ;;
stop)
    [ -n "$dir" ] || { echo "usage: $0 stop DIR" >&2; exit 2; }
    daemon_stop "$dir/congodb.pid"
    ;;
with)
    shift
    [ $# -gt 0 ] || { echo "usage: $0 with CMD ARGS..." >&2; exit 2; }
    dir=$(mktemp -d "${TMPDIR:-/tmp}/chat-congodb.XXXXXX")
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    trap '"$0" stop "$dir"; rm -rf "$dir"' EXIT
    "$0" start "$dir" "$port"
    rc=0
    CHAT_TEST_MONGO="mongodb://127.0.0.1:$port" "$@" || rc=$?
    [ $rc -eq 0 ] || tail -n 40 "$dir/congodb.log" >&2
    exit $rc
    ;;
*)
    echo "usage: $0 install|run|start|stop|with ..." >&2
    exit 2
    ;;
esac
