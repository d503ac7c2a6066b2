#!/usr/bin/env bash
# idle100k.sh - issue 6's "100,000 concurrent idle subscribers on one
# machine": ssebroker --workers W on a throwaway Redis, and ssebench with
# enough client processes that none holds more than ~17k sockets (the
# per-process limit here is 20,000 and cannot be raised). Prints how many
# subscribers were connected at once and the broker's memory per subscriber
# (the workers' RSS, summed). Loopback only, bounded in time, every process
# stopped by PID. Run bench/run.sh once first (it installs and builds).
#
#   bench/idle100k.sh [-n SUBSCRIBERS] [-w WORKERS]     (100000, 8)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
N=100000 W=8
while getopts "n:w:" o; do
    case $o in
    n) N=$OPTARG ;;
    w) W=$OPTARG ;;
    *) echo "usage: $0 [-n SUBSCRIBERS] [-w WORKERS]" >&2; exit 2 ;;
    esac
done
BROKER=$top/build-bench/ssebroker SSEBENCH=$here/ssebench
[ -x "$BROKER" ] && [ -x "$SSEBENCH" ] || { echo "run bench/run.sh --smoke first (it builds)" >&2; exit 1; }
PROCS=$(((N + 16999) / 17000))

WORK=$(mktemp -d /tmp/ssebench-100k.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 1
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(port)
redis-server --bind 127.0.0.1 --port "$RPORT" --save '' --appendonly no --dir "$WORK" \
    >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

PORT=$(port)
cat >"$WORK/broker.json" <<EOF
{"listen": "127.0.0.1:$PORT", "log_level": "info",
 "store": {"type": "redis", "url": "redis://127.0.0.1:$RPORT/0"},
 "limits": {"max_streams": 19500, "max_streams_per_channel": 19500}}
EOF
"$BROKER" --config "$WORK/broker.json" --workers "$W" 2>"$WORK/broker.log" &
SUP=$!
PIDS+=("$SUP")
for _ in $(seq 100); do grep -q "listening on" "$WORK/broker.log" && break; sleep 0.1; done
grep -q "listening on" "$WORK/broker.log" || { cat "$WORK/broker.log"; exit 1; }

rss() { # the workers' RSS in KiB, summed
    local sum=0 k
    for k in $(cat /proc/"$SUP"/task/*/children); do
        sum=$((sum + $(awk '/^VmRSS/ {print $2}' /proc/"$k"/status)))
    done
    echo "$sum"
}
before=$(rss)
t0=$(date +%s)
timeout -k 5 300 "$SSEBENCH" sub --port "$PORT" -n "$N" --procs "$PROCS" --channels 100 \
    --channel idle --duration 240 --quiet-ms 600000 --ready "$WORK/ready" \
    >"$WORK/sub.out" 2>"$WORK/sub.log" &
SUBS=$!
PIDS+=("$SUBS")
for _ in $(seq 2400); do [ -e "$WORK/ready" ] && break; sleep 0.1; done
sleep 3
after=$(rss)
held=$(curl -s "127.0.0.1:$PORT/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cluster"]["streams"])' 2>/dev/null || echo "?")
kill -TERM "$SUBS" 2>/dev/null || true
wait "$SUBS" 2>/dev/null || true
connected=$(grep -o 'connected=[0-9]*' "$WORK/sub.out" | head -1 | cut -d= -f2)
echo "subscribers asked:      $N ($PROCS client processes, $W broker workers)"
echo "connected at once:      ${connected:-?} (cluster /status streams: $held), in $(($(date +%s) - t0)) s"
echo "broker workers' RSS:    $((before / 1024)) MiB -> $((after / 1024)) MiB"
[ "${connected:-0}" -gt 0 ] &&
    awk -v a="$after" -v b="$before" -v c="$connected" \
        'BEGIN {printf "memory per subscriber:  %.2f KB\n", (a - b) * 1.024 / c}'
