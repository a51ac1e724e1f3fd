# Sourced by test and bench scripts that start servers on free ports.

# free_port: a TCP port nobody listens on (the kernel picks it), never one
# given before in this run (two binds in a row may get the same free port).
# Called as $(free_port), a subshell: the ports given are kept in $TMP/.ports.
free_port() {
    local p
    while :; do
        p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
        grep -qx "$p" "$TMP/.ports" 2>/dev/null && continue
        echo "$p" >>"$TMP/.ports"
        echo "$p"
        return
    done
}
