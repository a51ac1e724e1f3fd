#!/usr/bin/env bash
# Install every Debian package (and the npm tool pm2) the build, the cluster
# and the tests need. Idempotent: does nothing when all is present.
#   scripts/install-deps.sh          install what is missing
#   scripts/install-deps.sh --check  only report what is missing (exit 1 if any)
#   scripts/install-deps.sh --list   print what it installs, one per line:
#                                    Debian packages, "fallback:P" for packages
#                                    installed only when the tool is absent,
#                                    "npm:NAME" for npm tools (tests read this)
set -euo pipefail

PACKAGES=(
    build-essential cmake pkg-config git
    libev-dev libhiredis-dev libcjson-dev libwslay-dev libhttp-parser-dev
    libsqlite3-dev libssl-dev libsodium-dev libedit-dev libcmocka-dev
    libmongoc-dev libbson-dev libzookeeper-mt-dev uthash-dev libgoogle-perftools-dev
    redis-server zookeeper default-jre-headless
    python3 tmux clang curl iproute2 chromium openssl
)

# Installed only when their tool is missing (Node.js may come from elsewhere).
FALLBACK_PACKAGES=(nodejs npm)
NPM_TOOLS=(pm2)

if [ "${1:-}" = "--list" ]; then
    printf '%s\n' "${PACKAGES[@]}"
    printf 'fallback:%s\n' "${FALLBACK_PACKAGES[@]}"
    printf 'npm:%s\n' "${NPM_TOOLS[@]}"
    exit 0
fi

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

missing=$(missing_packages)
# Node.js may come from elsewhere (nodesource bundles npm); only ask Debian when absent.
command -v npm >/dev/null 2>&1 || missing="$missing ${FALLBACK_PACKAGES[*]}"
missing=$(echo $missing)
have_pm2=1
command -v pm2 >/dev/null 2>&1 || have_pm2=0

if [ "${1:-}" = "--check" ]; then
    [ -n "$missing" ] && echo "missing packages: $missing"
    [ "$have_pm2" = 0 ] && echo "missing: pm2 (npm)"
    [ -z "$missing" ] && [ "$have_pm2" = 1 ]
    exit $?
fi

if [ -n "$missing" ]; then
    echo "installing: $missing"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    # shellcheck disable=SC2086
    as_root apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# Debian's redis/zookeeper packages start system services; we run our own on
# private ports, so theirs are left alone (never stopped or reconfigured).
if [ "$have_pm2" = 0 ]; then
    echo "installing pm2 from the npm registry"
    as_root npm install -g --silent pm2@5 >/dev/null
fi
