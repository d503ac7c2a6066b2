#!/usr/bin/env bash
# test.sh - install what the tests need, then check formatting and run the
# whole suite twice: a plain build (build/, also under valgrind and with a
# short run of every fuzz target, and `make distcheck`: the tarball builds and
# passes the suite too) and an AddressSanitizer + UndefinedBehavior-
# Sanitizer + LeakSanitizer build (build-asan/). Exits non-zero on any failure.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh" test
cd "$top"
autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
status=0
# Formatting is part of the suite (.clang-format, as jansson checks it).
if ! clang-format --dry-run --Werror $(git ls-files '*.c' '*.h' 2>/dev/null || ls src/*.[ch] kv/*.[ch] repo/*.[ch] tests/*.[ch]); then
    echo "test.sh: clang-format finds unformatted code (run clang-format -i on it)" >&2
    status=1
fi
run_suite() { # dir, configure args...
    local dir=$1; shift
    mkdir -p "$top/$dir"
    (cd "$top/$dir" && ../configure -q "$@" && make -j"$(nproc)" >/dev/null &&
        make -j2 check) || status=1
}
run_suite build
# The tarball: it builds out of tree, passes the whole suite from a read-only
# copy, installs and uninstalls cleanly (make distcheck, ~4 min on 2 cores).
(cd "$top/build" && make -s -j2 distcheck >distcheck.log 2>&1) ||
    { tail -n 40 "$top/build/distcheck.log"; echo "test.sh: make distcheck failed (build/distcheck.log)" >&2; status=1; }
# Memory checks the sanitizers do not make: valgrind on the plain build; then
# every fuzz target replays its regressions and fuzzes for FUZZ_SECONDS each.
(cd "$top/build" && make -s check-valgrind &&
    make -s check-fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-30}") || status=1
# The benchmark end to end, tiny and bounded (< 30 s): it keeps working.
"$top/bench/run.sh" --smoke || status=1
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan --enable-sanitizers CC=clang
exit $status
