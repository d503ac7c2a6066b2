#!/usr/bin/env bash
# deps.sh - install what ssebroker needs on Debian: 'build' (default) for the
# broker, 'test' for the test suite as well. Idempotent; uses sudo when not root.
set -euo pipefail
what=${1:-build}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

pkgs="build-essential autoconf automake pkg-config libevent-dev libhiredis-dev libjansson-dev libssl-dev"
if [ "$what" = test ]; then
    # clang + compiler-rt for the sanitizer build, node for the integration
    # tests, chromium for the browser test, redis-server for the store tests,
    # prometheus for promtool (it_metrics checks /metrics with it); systemd
    # (systemd-analyze), groff-base and man-db for the install check of the
    # unit and the manual pages.
    pkgs="$pkgs clang clang-format libclang-rt-14-dev valgrind chromium redis-server curl prometheus"
    pkgs="$pkgs systemd groff-base man-db"
    # Any Node >= 18 with npm will do (Debian's, or NodeSource's, which
    # bundles npm and conflicts with Debian's npm package).
    command -v node >/dev/null && command -v npm >/dev/null || pkgs="$pkgs nodejs npm"
fi
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "deps.sh: installing$missing" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
if [ "$what" = test ]; then
    here=$(cd "$(dirname "$0")/.." && pwd)
    (cd "$here/tests" && npm ci --no-audit --no-fund --silent)
fi
