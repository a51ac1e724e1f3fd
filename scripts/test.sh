#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what is missing, build with
# warnings as errors, run unit + fuzz-replay + integration (conformance on a
# real local deployment), then rebuild under ASan+UBSan and run it all again.
#   scripts/test.sh            everything
#   scripts/test.sh --quick    one build (no sanitizers)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
JOBS=$(nproc 2>/dev/null || echo 2)

scripts/install-deps.sh

run_suite() { # run_suite BUILD_DIR CMAKE_ARGS...
    local dir=$1
    shift
    echo "=== configure $dir: $*"
    cmake -S . -B "$dir" -DCHAT_WERROR=ON "$@" >/dev/null
    echo "=== build $dir"
    cmake --build "$dir" -j "$JOBS"
    echo "=== ctest $dir"
    ctest --test-dir "$dir" --output-on-failure -j "$JOBS"
}

run_suite build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "$QUICK" = 0 ]; then
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    # a known leak inside the ZooKeeper C client (tests/lsan.supp says which)
    export LSAN_OPTIONS="suppressions=$REPO/tests/lsan.supp:print_suppressions=0"
    run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DCHAT_SANITIZE=address,undefined
fi
echo "=== all tests passed"
