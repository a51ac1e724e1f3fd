#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan, every library
# instrumented for coverage) and fuzzes each one for SECONDS (default 30),
# starting from the committed corpus. New inputs go to a scratch corpus
# under the build dir; crashes are left as crash-* files there and make
# the script fail. Not run by CI.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
SECONDS_EACH=${1:-30}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(fuzz_http fuzz_ws fuzz_envelope fuzz_cluster fuzz_json)
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
case $BUILD in /*) ;; *) BUILD=$REPO/$BUILD ;; esac # the targets run from their work dirs

CC=clang cmake -S . -B "$BUILD" -DCHAT_FUZZ=ON -DCHAT_WERROR=ON -DCHAT_MONGO=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHAT_SANITIZE=address,undefined \
    -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" --target "${TARGETS[@]}"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
rc=0
for t in "${TARGETS[@]}"; do
    work="$BUILD/fuzz-work/$t"
    mkdir -p "$work/corpus"
    echo "=== $t for ${SECONDS_EACH}s"
    if ! (cd "$work" && "$BUILD/tests/$t" -max_total_time="$SECONDS_EACH" -max_len=8192 \
            -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
            corpus "$REPO/tests/fuzz/corpus/$t" 2>&1 | tail -n 25); then
        rc=1
    fi
    if ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* >/dev/null 2>&1; then
        echo "!!! $t: findings in $work"
        rc=1
    fi
done
exit $rc
