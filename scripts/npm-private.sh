# Sourced by scripts that need npm packages for tests (congodb.sh,
# tests/browser/run.sh): installs a package.json folder into a private cache
# dir once, again only when its files change; never touches the user's
# global npm state.

# npm_private_install SRC_DIR HOME_DIR [POST_CMD...]: copies SRC_DIR's files
# into HOME_DIR and runs `npm install` there (then POST_CMD, in HOME_DIR)
# unless HOME_DIR already holds an install of the same files. Serialised by
# a lock: tests may install at once.
npm_private_install() {
    local src=$1 home=$2 stamp
    shift 2
    stamp=$(cat "$src"/*.json "$src"/*.mjs 2>/dev/null | sha256sum | cut -c1-16)
    mkdir -p "$home"
    (
        flock 9
        if [ "$(cat "$home/.stamp" 2>/dev/null)" != "$stamp" ] || [ ! -d "$home/node_modules" ]; then
            rm -rf "$home/node_modules" "$home/package-lock.json"
            cp -r "$src/." "$home/"
            (cd "$home" && npm install --no-audit --no-fund --loglevel=error >"$home/npm.log" 2>&1 &&
                { [ $# -eq 0 ] || "$@" >>"$home/npm.log" 2>&1; }) ||
                { cat "$home/npm.log" >&2; exit 1; }
            echo "$stamp" >"$home/.stamp"
        fi
    ) 9>"$home/.lock"
}
