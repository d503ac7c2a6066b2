#!/usr/bin/env bash
# membound.sh - the memory-bound target of issue 12: with limits.max_memory
# 64 MiB, 4 publishers send one 1 MiB message to each of 1,000 channels; the
# broker's peak RSS (VmHWM) must stay below 64 MiB plus its fixed overhead,
# and nothing accepted is lost: with policy reject every publish answered 201
# is still retained; with policy evict every one is retained or counted in
# /health memory.evicted. Once per store (memory, and a throwaway Redis) and
# policy; prints one table.
#
#   bench/membound.sh [--bin PATH] [--channels N]
#
# The fixed overhead is the broker's RSS before the first publish plus what
# messages in flight cost: each of the 4 concurrent publishes holds its body,
# the message built from it and its JSON for the store (about 3 MiB each), and
# the allocator keeps some freed pages. Loopback only; every process started
# here is stopped by PID; the run is bounded in count (N publishes) and time.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
bin=$top/build/ssebroker
nchan=1000
while [ $# -gt 0 ]; do
    case "$1" in
    --bin) bin=$2; shift ;;
    --channels) nchan=$2; shift ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "membound.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[ -x "$bin" ] || { echo "membound.sh: no broker at $bin (build it, or --bin)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "membound.sh: redis-server is needed" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
head -c 1048576 /dev/zero | tr '\0' 'm' >"$work/body"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

kb() { awk -v f="$2" '$1 == f":" {print $2}' "/proc/$1/status"; }

# run STORE POLICY: one broker, the publishes, the checks; prints a table row.
run() {
    local store=$1 policy=$2 port rport="" bpid rpid="" url base0 peak
    port=$(free_port)
    local storecfg='{"type": "memory"}'
    if [ "$store" = redis ]; then
        rport=$(free_port)
        redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no \
            >"$work/redis.log" 2>&1 &
        rpid=$!
        pids+=("$rpid")
        for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
        storecfg="{\"type\": \"redis\", \"url\": \"redis://127.0.0.1:$rport/0\"}"
    fi
    cat >"$work/cfg.json" <<EOF
{"listen": "127.0.0.1:$port", "store": $storecfg, "log_level": "warn",
 "limits": {"max_memory": 67108864, "memory_policy": "$policy", "max_body": 2097152}}
EOF
    "$bin" --config "$work/cfg.json" 2>"$work/broker.log" &
    bpid=$!
    pids+=("$bpid")
    url=http://127.0.0.1:$port
    for _ in $(seq 50); do curl -sf "$url/health" >/dev/null 2>&1 && break; sleep 0.1; done
    base0=$(kb "$bpid" VmRSS)

    # 4 publishers, one message per channel, each answer recorded.
    seq 1 "$nchan" | xargs -P 4 -I{} sh -c \
        'code=$(curl -s -o "$1/r{}" -w "%{http_code}" --max-time 30 -H "Content-Type: text/plain" \
            --data-binary @"$1/body" "$2/channels/mb{}/events"); echo "{} $code"' _ "$work" "$url" \
        >"$work/codes"
    peak=$(kb "$bpid" VmHWM)
    local accepted refused other lost=0 kept=0
    accepted=$(awk '$2 == 201' "$work/codes" | wc -l)
    refused=$(awk '$2 == 503' "$work/codes" | wc -l)
    other=$(awk '$2 != 201 && $2 != 503' "$work/codes" | wc -l)
    local health evicted used
    health=$(curl -s "$url/health")
    evicted=$(printf '%s' "$health" | sed -n 's/.*"evicted":\([0-9]*\).*/\1/p')
    used=$(printf '%s' "$health" | sed -n 's/.*"used":\([0-9]*\).*/\1/p')
    # Every accepted message: still in its channel's history, or evicted.
    while read -r i code; do
        [ "$code" = 201 ] || continue
        local id
        id=$(sed -n 's/.*"id":"\([0-9]*\)".*/\1/p' "$work/r$i")
        if curl -s "$url/channels/mb$i/events?after=$((id - 1))&limit=1" | grep -q "\"id\":\"$id\""; then
            kept=$((kept + 1))
        fi
    done <"$work/codes"
    lost=$((accepted - kept - evicted))
    [ "$lost" -lt 0 ] && lost=0
    printf '| %s | %s | %d | %d | %d | %d | %d | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB |\n' \
        "$store" "$policy" "$accepted" "$refused" "$other" "$evicted" "$lost" \
        "$(echo "$used / 1048576" | bc -l)" "$(echo "$base0 / 1024" | bc -l)" \
        "$(echo "$peak / 1024" | bc -l)" "$(echo "($peak - $base0) / 1024" | bc -l)"
    kill "$bpid"
    wait "$bpid" 2>/dev/null || true
    if [ -n "$rpid" ]; then
        kill "$rpid"
        wait "$rpid" 2>/dev/null || true
    fi
}

echo "membound.sh: max_memory 64 MiB, $nchan x 1 MiB publishes by 4 publishers, $(nproc) CPUs, $(uname -n)"
echo
echo "| store | policy | accepted | refused (503) | other | evicted | lost | memory.used | RSS at start | peak RSS | peak - start |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for store in memory redis; do
    for policy in reject evict; do
        run "$store" "$policy"
    done
done
