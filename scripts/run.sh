#!/usr/bin/env bash
# run.sh - install the build dependencies, build ssebroker and run it on the
# in-memory store. Extra arguments go to ssebroker (e.g. --listen 127.0.0.1:9000).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh" build
cd "$top"
[ -x configure ] || autoreconf -fi
mkdir -p build && cd build
[ -f Makefile ] || ../configure
make -j"$(nproc)"
exec ./ssebroker "$@"
