# Sourced by the scripts that run a private server in the background
# (zookeeper.sh, congodb.sh): start it, wait until it serves, stop it.

# daemon_start WHAT PIDFILE LOG CHECK CMD...: runs CMD in the background and
# waits up to 30 s until the function CHECK succeeds; fails, showing LOG,
# when CMD exits first.
daemon_start() {
    local what=$1 pidfile=$2 log=$3 check=$4
    shift 4
    nohup "$@" >"$log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 120); do
        "$check" && return 0
        kill -0 "$(cat "$pidfile")" 2>/dev/null || { cat "$log" >&2; return 1; }
        sleep 0.25
    done
    echo "$what did not start in 30 s" >&2
    return 1
}

# daemon_stop PIDFILE: TERM, up to 10 s, then KILL.
daemon_stop() {
    local pidfile=$1 pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}
