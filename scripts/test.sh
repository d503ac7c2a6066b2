#!/usr/bin/env bash
# test.sh - install what the tests need, then build and run the whole suite
# twice: a plain build (build/) and an AddressSanitizer + UndefinedBehavior-
# Sanitizer + LeakSanitizer build (build-asan/). Exits non-zero on any failure.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh" test
cd "$top"
autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
status=0
run_suite() { # dir, configure args...
    local dir=$1; shift
    mkdir -p "$top/$dir"
    (cd "$top/$dir" && ../configure -q "$@" && make -j"$(nproc)" >/dev/null &&
        make -j2 check) || status=1
}
run_suite build
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan --enable-sanitizers CC=clang
exit $status
