#!/usr/bin/env bash
# A private standalone ZooKeeper server under a directory of our own.
#   scripts/zookeeper.sh run   DIR PORT   foreground (for pm2)
#   scripts/zookeeper.sh start DIR PORT   background; waits until it serves
#   scripts/zookeeper.sh stop  DIR        stops a server started with start
# run and start take options after PORT:
#   --bind ADDR        client address (default 127.0.0.1)
#   --id N --servers LIST   one server of an ensemble: its number and every
#                      server as N=HOST:PEERPORT:ELECTIONPORT, comma separated
set -euo pipefail
. "$(dirname "$0")/daemon.sh"
cmd=${1:-}
dir=${2:-}
port=${3:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 run|start|stop DIR [PORT [OPTIONS]]" >&2; exit 2; }
shift $(( $# < 3 ? $# : 3 ))
bind=127.0.0.1
myid=
servers=
while [ $# -gt 0 ]; do
    case $1 in
        --bind) bind=$2; shift ;;
        --id) myid=$2; shift ;;
        --servers) servers=$2; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[ -z "$servers" ] || [ -n "$myid" ] || { echo "--servers needs --id" >&2; exit 2; }

write_config() {
    mkdir -p "$dir/data"
    cat >"$dir/zoo.cfg" <<CFG
tickTime=500
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$port
clientPortAddress=$bind
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr
maxSessionTimeout=60000
minSessionTimeout=1000
CFG
    if [ -n "$servers" ]; then
        local entry
        echo "$myid" >"$dir/data/myid"
        IFS=, read -ra entries <<<"$servers"
        for entry in "${entries[@]}"; do
            echo "server.${entry%%=*}=${entry#*=}" >>"$dir/zoo.cfg"
        done
    fi
    cat >"$dir/log4j.properties" <<'CFG'
log4j.rootLogger=WARN, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} [zk] %-5p %m%n
CFG
}

java_cmd() {
    local cp="$dir:/usr/share/java/zookeeper.jar"
    local j
    for j in /usr/share/java/*.jar; do cp="$cp:$j"; done
    echo java -Xmx256m -XX:+UseSerialGC -Dzookeeper.jmx.log4j.disable=true \
        -Dlog4j.configuration="file:$dir/log4j.properties" -cp "$cp" \
        org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg"
}

serving() { # ruok over a raw socket, no nc needed
    { exec 3<>"/dev/tcp/$bind/$port"; } 2>/dev/null || return 1
    printf 'ruok' >&3
    local answer
    answer=$(timeout 2 cat <&3 || true)
    exec 3<&- 3>&- || true
    [ "$answer" = imok ]
}

case $cmd in
run)
    [ -n "$port" ] || { echo "PORT missing" >&2; exit 2; }
    write_config
    # shellcheck disable=SC2046
    exec $(java_cmd)
    ;;
start)
    [ -n "$port" ] || { echo "PORT missing" >&2; exit 2; }
    write_config
    # shellcheck disable=SC2046
    daemon_start "zookeeper on port $port" "$dir/zk.pid" "$dir/zookeeper.log" serving $(java_cmd)
    ;;
stop)
    daemon_stop "$dir/zk.pid"
    ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
