#!/usr/bin/env bash
# run.sh - the benchmarks of issues 6 and 18 in one command: installs what it needs
# (Debian), builds ssebroker (-O2, out of tree in build-bench/) and
# bench/ssebench, runs every workload against ssebroker (one process on the
# memory store; Redis store for publishing; and --workers 2 on the Redis store,
# every core) and against two peers, Nchan (nginx, 2 workers) and Pushpin
# (Debian's, its own runner, condure and zurl), and prints one table with the
# medians of --runs runs and the ratios to each peer; then the durable
# connection rows of issue 12 (ssebroker only, memory and Redis store).
#
#   bench/run.sh                 full run with Nchan and Pushpin, 3 runs per workload
#   bench/run.sh --quick         smaller counts, shorter runs, 1 run
#   bench/run.sh --smoke         tiny counts, ssebroker only, < 1 min; exits 1 on any failure
#   bench/run.sh --only conns --before REV   the connection rows, with a
#                                "before" column: the broker built at git REV
#   options: --runs N, --no-nchan, --no-pushpin, --no-workers (skip the
#            2-worker column), --only w1,w2 (idle,pub,fan1k,fan100,fan10k,
#            chan10k,open,jwt,pattern,pubconn; conns =
#            conns_pub,conns_rss,conns_drain), --before REV (built from
#            git archive in build-bench-before/),
#            --out FILE (also write the table there), --keep (keep the temp dir)
#   environment: SSEB_THREADS=N sets ssebroker's "threads" (default 0: a
#            writer per CPU); compare 1 and 2 to see what they bring;
#            SSEB_MAX_DELIVERY_LAG_MS=N sets limits.max_delivery_lag_ms
#            (0: no backpressure, as before it existed); SSEB_BROKER=PATH
#            runs that broker binary instead (an A/B of two builds)
#
# Loopback only; every process it starts is stopped by PID on exit; every
# client run is bounded in count and time (and by timeout(1) as well).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
runs=3 runs_set=0 mode=full nchan=1 pushpin=1 workers=1 only="" out="" keep=0 before=""
while [ $# -gt 0 ]; do
    case "$1" in
    --runs) runs=$2 runs_set=1; shift ;;
    --quick) mode=quick ;;
    --smoke) mode=smoke ;;
    --nchan) nchan=1 ;;
    --no-nchan) nchan=0 ;;
    --pushpin) pushpin=1 ;;
    --no-pushpin) pushpin=0 ;;
    --no-workers) workers=0 ;;
    --only) only=$2; shift ;;
    --out) out=$2; shift ;;
    --keep) keep=1 ;;
    --before) before=$2; shift ;;
    -h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$mode" in
quick) [ "$runs_set" = 1 ] || runs=1 ;; # --quick --runs 3 keeps its 3
smoke) runs=1 nchan=0 pushpin=0 ;;
esac

# ---- sizes per mode -------------------------------------------------------
if [ "$mode" = full ]; then
    IDLE_N=10000 PUB_S=10 FAN1K_N=1000 FAN1K_M=1000 FAN100_S=10 FAN10K_N=10000
    FAN10K_S=10 CHAN_N=10000 QUIET_MS=5000 SETTLE_S=1 IDLE_WAIT_S=2
    CONN_NS="0 100 1000" CPUB_S=10 CRSS_N=1000 CRSS_M=1000 CDRAIN_M=1000 CWAIT_S=1
    CDRAIN_TIMES=3 OPEN_N=10000 PAT_N=10000 PUBCONN_N=1000
elif [ "$mode" = quick ]; then
    IDLE_N=2000 PUB_S=3 FAN1K_N=1000 FAN1K_M=200 FAN100_S=3 FAN10K_N=2000
    FAN10K_S=3 CHAN_N=2000 QUIET_MS=3000 SETTLE_S=1 IDLE_WAIT_S=2
    CONN_NS="0 100 1000" CPUB_S=3 CRSS_N=1000 CRSS_M=1000 CDRAIN_M=1000 CWAIT_S=1
    CDRAIN_TIMES=3 OPEN_N=2000 PAT_N=2000 PUBCONN_N=1000
else
    # Smoke checks that everything works, not the figures: shorter waits
    # for a few hundred subscribers (the broker has registered a subscriber
    # once it has sent the opening comment, which is when ssebench counts it).
    IDLE_N=200 PUB_S=1 FAN1K_N=50 FAN1K_M=100 FAN100_S=1 FAN10K_N=200
    FAN10K_S=1 CHAN_N=200 QUIET_MS=1000 SETTLE_S=0.3 IDLE_WAIT_S=0.5
    # The connection rows only have to keep working here: one N, no RSS row.
    CONN_NS="100" CPUB_S=0.5 CRSS_N=100 CRSS_M=100 CDRAIN_M=100 CWAIT_S=0.2
    CDRAIN_TIMES=1 OPEN_N=200 PAT_N=200 PUBCONN_N=100
fi
# open: OPEN_N subscribers opened as fast as the client can (OPEN_BATCH
# connecting at once per client process), alone and with a JWT (jwt: HS256
# and ES256, ssebroker only); pattern: publish/s with PAT_N subscribers of
# one pattern each against PAT_N of one exact name each; pubconn: publish/s
# with PUBCONN_N durable connections on the channel.
OPEN_BATCH=1000
# Durable connections (issue 12): publish/s with each of CONN_NS connections
# on the channel (none attached; 64 publisher connections for CPUB_S s, as
# the pub row); broker RSS after CRSS_M x 1 KB published with 0 and CRSS_N
# connections (queue_limit 1000; CWAIT_S s to settle before reading it); the
# time to attach a connection with CDRAIN_M messages waiting and receive them
# (CDRAIN_TIMES attaches on one broker: the first, and the median of the rest).
CQUEUE_LIMIT=1000
FAN_CONNS=4      # publisher connections for the fan-out workloads
FAN10K_RATE=100  # messages per second asked of the 10k fan-out

# ---- dependencies ---------------------------------------------------------
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
pkgs="build-essential autoconf automake pkg-config libevent-dev libhiredis-dev
      libjansson-dev redis-server curl procps"
[ "$nchan" = 1 ] && pkgs="$pkgs nginx libnginx-mod-nchan"
# Pushpin's backend is a small nginx (pushpin-backend.conf); the JWT rows
# mint their tokens with Node (tests/lib/jwt.mjs).
[ "$pushpin" = 1 ] && pkgs="$pkgs nginx pushpin"
[ "$mode" = smoke ] || pkgs="$pkgs nodejs"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "run.sh: installing$missing" >&2
    # Installing nginx would start the system's nginx on port 80: a temporary
    # policy-rc.d keeps services from starting, unless one is already there.
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee $policy >/dev/null
        $SUDO chmod 755 $policy
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null || {
        [ -n "$policy" ] && $SUDO rm -f $policy
        echo "run.sh: apt-get install failed" >&2
        exit 1
    }
    [ -n "$policy" ] && $SUDO rm -f $policy
fi

# ---- build ----------------------------------------------------------------
(
    cd "$top"
    if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]; then
        autoreconf -fi >/dev/null 2>&1
    fi
    mkdir -p build-bench && cd build-bench
    [ -f Makefile ] || ../configure -q CFLAGS="-O2 -g" >/dev/null
    make -s -j2 >/dev/null 2>&1 || make -j2 >&2
) || { echo "run.sh: building ssebroker failed" >&2; exit 1; }
make -s -C "$here" ssebench >/dev/null || { echo "run.sh: building ssebench failed" >&2; exit 1; }
BROKER=${SSEB_BROKER:-$top/build-bench/ssebroker}
SSEBENCH=$here/ssebench
# --before REV: that commit's broker, for a "before" column in the connection
# rows. Built from 'git archive' (no checkout, no change to the repository)
# in build-bench-before/<commit>/, once.
BROKER_OLD=""
if [ -n "$before" ]; then
    rev=$(git -C "$top" rev-parse --verify -q "$before^{commit}") ||
        { echo "run.sh: --before $before: no such commit" >&2; exit 2; }
    bdir=$top/build-bench-before/$rev
    if [ ! -x "$bdir/build/ssebroker" ]; then
        echo "run.sh: building the broker at ${rev:0:7} in $bdir" >&2
        rm -rf "$bdir" && mkdir -p "$bdir/src" "$bdir/build"
        (
            git -C "$top" archive "$rev" | tar -x -C "$bdir/src" &&
                cd "$bdir/src" && autoreconf -fi >/dev/null 2>&1 &&
                cd "$bdir/build" && ../src/configure -q CFLAGS="-O2 -g" >/dev/null &&
                make -s -j2 >/dev/null 2>&1
        ) || { echo "run.sh: building the broker at $before failed" >&2; exit 1; }
    fi
    BROKER_OLD=$bdir/build/ssebroker
fi
"$SSEBENCH" selftest >/dev/null || { echo "run.sh: ssebench selftest failed" >&2; exit 1; }

# ---- processes ------------------------------------------------------------
WORK=$(mktemp -d /tmp/ssebench-run.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    [ "$keep" = 1 ] && echo "run.sh: kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "run.sh: $*" >&2; }

# free_port, stop_pid, wait_http, kv
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

REDIS_PORT=""
REDIS_PID=""
start_redis() {
    [ -n "$REDIS_PID" ] && return 0
    REDIS_PORT=$(free_port)
    mkdir -p "$WORK/redis"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --dir "$WORK/redis" --logfile "$WORK/redis/redis.log" &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    for _ in $(seq 50); do
        [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.1
    done
    log "redis-server did not start"; return 1
}

# Start a server: sse-mem, sse-redis, sse-w2, old-mem, old-redis (the
# --before broker), nchan-mem or nchan-redis. Sets SRV_PID,
# SRV_PORT, SUB_PATH, PUB_PATH. Tries three ports; returns 1 if none works.
start_server() {
    local try
    for try in 1 2 3; do
        start_server_once "$1" && return 0
        stop_pid "$SRV_PID"
        [ -z "$BACKEND_PID" ] || stop_pid "$BACKEND_PID"
        log "$1 did not start on port $SRV_PORT (try $try)"
    done
    echo "$1: the server did not start (see the logs with --keep)" >>"$WORK/notes"
    return 1
}

start_server_once() {
    local target=$1
    SRV_PORT=$(free_port) PUB_PORT="" PUB_ARGS=() BACKEND_PID="" SUB_BATCH=""
    case "$target" in
    sse-* | old-*)
        local store='{"type": "memory"}' args=() bin=$BROKER
        [ "$target" = sse-w2 ] && args=(--workers 2)
        [[ "$target" = old-* ]] && bin=$BROKER_OLD
        local lagcf=""
        [ -z "${SSEB_MAX_DELIVERY_LAG_MS:-}" ] ||
            lagcf=" \"max_delivery_lag_ms\": $SSEB_MAX_DELIVERY_LAG_MS,"
        if [[ "$target" = *-redis || "$target" = sse-w2 ]]; then
            start_redis; redis-cli -p "$REDIS_PORT" flushall >/dev/null
            store="{\"type\": \"redis\", \"url\": \"redis://127.0.0.1:$REDIS_PORT/0\"}"
        fi
        cat >"$WORK/broker.json" <<EOF
{
  "listen": "127.0.0.1:$SRV_PORT",
  "store": $store,
  "log_level": "warn",
  "threads": ${SSEB_THREADS:-0},${BROKER_AUTH:+
  $BROKER_AUTH,}
  "limits": {"max_streams": 19500, "max_streams_per_channel": 19500,
            $lagcf
             "max_channels": 1000000, "stream_buffer": 4194304}
}
EOF
        "$bin" --config "$WORK/broker.json" "${args[@]}" 2>>"$WORK/broker.log" &
        SRV_PID=$!
        SUB_PATH='/channels/%s/events' PUB_PATH='/channels/%s/events'
        ;;
    pushpin)
        # The backend first (an nginx answering the GRIP headers), then
        # Pushpin's runner with a private runtime dir, on ports of its own.
        local prefix=$WORK/pushpin user="" bport cport
        rm -rf "$prefix"; mkdir -p "$prefix/run" "$prefix/log" "$prefix/backend"
        [ "$(id -u)" -eq 0 ] && user="user root;"
        bport=$(free_port) cport=$(free_port)
        sed -e "s|@PREFIX@|$prefix/backend|g" -e "s|@PORT@|$bport|g" -e "s|@USER@|$user|" \
            "$here/pushpin-backend.conf" >"$prefix/backend/nginx.conf"
        nginx -p "$prefix/backend" -c "$prefix/backend/nginx.conf" \
            -e "$prefix/backend/error.log" 2>>"$WORK/nginx.log" &
        BACKEND_PID=$!
        PIDS+=("$BACKEND_PID")
        sed -e "s|@PREFIX@|$prefix|g" -e "s|@PORT@|$SRV_PORT|g" -e "s|@CONTROL@|$cport|g" \
            -e "s|@PUSH@|$(free_port)|g" -e "s|@SUB@|$(free_port)|g" \
            -e "s|@COMMAND@|$(free_port)|g" "$here/pushpin.conf" >"$prefix/pushpin.conf"
        echo "* 127.0.0.1:$bport" >"$prefix/routes"
        wait_http "$bport" 10 || return 1
        pushpin --config "$prefix/pushpin.conf" >>"$WORK/pushpin.log" 2>&1 &
        SRV_PID=$!
        SUB_PATH='/sub/%s' PUB_PATH='/publish/' PUB_PORT=$cport PUB_ARGS=(--grip)
        # More than ~200 subscribers connecting at once get 500 and 502
        # answers from Pushpin (its private zurl's queues, the runner's
        # template): 100 at a time, in every row, its open row included.
        SUB_BATCH=100
        ;;
    nchan-*)
        local prefix=$WORK/nginx storecf="" user=""
        rm -rf "$prefix"; mkdir -p "$prefix"
        if [ "$target" = nchan-redis ]; then
            start_redis; redis-cli -p "$REDIS_PORT" flushall >/dev/null
            storecf="nchan_redis_url \"redis://127.0.0.1:$REDIS_PORT\"; nchan_use_redis on;"
        fi
        [ "$(id -u)" -eq 0 ] && user="user root;"
        sed -e "s|@PREFIX@|$prefix|g" -e "s|@PORT@|$SRV_PORT|g" -e "s|@USER@|$user|" \
            -e "s|@STORE@|$storecf|" "$here/nchan.conf" >"$prefix/nginx.conf"
        nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" 2>>"$WORK/nginx.log" &
        SRV_PID=$!
        SUB_PATH='/sub/%s' PUB_PATH='/pub?id=%s'
        ;;
    esac
    PIDS+=("$SRV_PID")
    wait_http "$SRV_PORT" 10 && kill -0 "$SRV_PID" 2>/dev/null || return 1
    [ "$target" = pushpin ] && { wait_http "$PUB_PORT" 10 || return 1; }
    # nginx's workers, ssebroker's --workers: the first to answer is not all
    # of them. One broker process is ready once it answers.
    [[ "$target" = nchan-* || "$target" = sse-w2 || "$target" = pushpin ]] && sleep 0.3
    return 0
}

# Resident memory (kB) of the server: the broker, nginx's master + workers, or
# Pushpin's runner + condure, zurl, proxy and handler (not its backend).
server_rss() {
    local total=0 p kb
    for p in $SRV_PID $(ps -o pid= --ppid "$SRV_PID" 2>/dev/null); do
        kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}

# Notes from the broker's /health after a run (slow disconnects, refusals).
broker_notes() {
    local h
    h=$(curl -s -m 2 "http://127.0.0.1:$SRV_PORT/health" || true)
    case "$h" in *'"slow_disconnects":0,'*'"refused_streams":0'*) ;;
    *) echo "$1: broker /health: $(echo "$h" | grep -o '"stats":{[^}]*}')" >>"$WORK/notes" ;;
    esac
}

stop_server() {
    # Why subscribers failed or were closed, as the client told it.
    grep -h '^ssebench: subscriber' "$WORK/client.log" 2>/dev/null |
        sed "s/^ssebench: subscriber [0-9]* /$2 [$1]: a subscriber /" >>"$WORK/notes"
    : >"$WORK/client.log"
    if ! kill -0 "$SRV_PID" 2>/dev/null; then
        wait "$SRV_PID"
        echo "$2 [$1]: the server exited before the end of the run (status $?)" >>"$WORK/notes"
        [ -z "$BACKEND_PID" ] || stop_pid "$BACKEND_PID"
        return
    fi
    [[ "$1" = sse-* || "$1" = old-* ]] && broker_notes "$2"
    stop_pid "$SRV_PID"
    [ -z "$BACKEND_PID" ] || stop_pid "$BACKEND_PID"
}

# Start the subscriber swarm in the background, wait (bounded) for every
# subscriber to be connected. Output in $WORK/sub.out.
SUB_PID=""
SUB_ARGS=() # more options for the next start_subs (e.g. --batch, --header)
start_subs() { # N CHANNELS CHANNEL EXPECT DURATION
    local n=$1 procs=1
    [ "$n" -ge 4000 ] && procs=2
    rm -f "$WORK/ready" "$WORK/sub.out"
    # timeout(1) itself is the child, so $! is its PID and TERM reaches ssebench.
    timeout -k 5 $(($5 + 30)) "$SSEBENCH" sub --port "$SRV_PORT" --path "$SUB_PATH" -n "$n" --procs $procs \
        --channels "$2" --channel "$3" --expect "$4" --quiet-ms "$QUIET_MS" --duration "$5" \
        --ready "$WORK/ready" "${SUB_ARGS[@]}" ${SUB_BATCH:+--batch "$SUB_BATCH"} \
        >"$WORK/sub.out" 2>>"$WORK/client.log" &
    SUB_PID=$!
    PIDS+=("$SUB_PID")
    for _ in $(seq 1200); do
        [ -e "$WORK/ready" ] && break
        kill -0 "$SUB_PID" 2>/dev/null || break
        sleep 0.1
    done
    [ -e "$WORK/ready" ] || { log "subscribers did not get ready"; return 1; }
    sleep "$SETTLE_S" # let the servers finish registering them
}

wait_subs() { wait "$SUB_PID" || true; }

publish() { # COUNT CHANNELS CHANNEL CONNS RATE DURATION [PROCS [SIZE]]
    timeout -k 5 $((${6%.*} + 30)) "$SSEBENCH" pub --port "${PUB_PORT:-$SRV_PORT}" --path "$PUB_PATH" \
        --count "$1" --channels "$2" --channel "$3" --conns "$4" --rate "$5" --duration "$6" \
        --procs "${7:-1}" --size "${8:-100}" "${PUB_ARGS[@]}" >"$WORK/pub.out" 2>>"$WORK/client.log" || true
}

# Record one figure: row, target (sse|nchan), value (none when empty).
rec() { [ -z "$3" ] || printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$WORK/results.tsv"; }
# Note a failed expectation: check TEXT TARGET ROW (a file, as callers may be
# subshells).
check() { echo "$3 [$2]: $1" >>"$WORK/notes"; }

# Check the swarm's output: all connected, none closed, no loss or duplicate.
check_subs() { # ROW TARGET N EXPECTED_UNIQUE
    local f=$WORK/sub.out c u d cl
    c=$(kv "$f" connected) u=$(kv "$f" unique) d=$(kv "$f" dups) cl=$(kv "$f" closed)
    [ "${c:-0}" = "$3" ] || check "connected ${c:-?} of $3" "$2" "$1"
    [ "${cl:-0}" = 0 ] || check "$cl streams closed by the server" "$2" "$1"
    [ "${d:-0}" = 0 ] || check "$d duplicate deliveries" "$2" "$1"
    if [ -n "$4" ] && [ "${u:-0}" != "$4" ]; then
        check "lost $(($4 - ${u:-0})) of $4 deliveries" "$2" "$1"
    fi
    echo $(( ${4:-${u:-0}} - ${u:-0} ))
}

tag() { echo "b$(date +%s%N)"; } # a fresh channel name per run

# ---- workloads ------------------------------------------------------------
# Each takes a target (sse-mem, sse-redis, nchan-mem, nchan-redis), the table
# column (sse|nchan), and records its figures.

w_idle() {
    start_server "$1" || return
    local before after c ch
    ch=$(tag)
    before=$(server_rss)
    start_subs "$IDLE_N" 1 "$ch" 0 300 || { stop_server "$1" idle; return; }
    sleep "$IDLE_WAIT_S"
    after=$(server_rss)
    kill -TERM "$SUB_PID" 2>/dev/null || true
    wait_subs
    c=$(kv "$WORK/sub.out" connected)
    check_subs idle "$2" "$IDLE_N" "" >/dev/null
    if [ "${c:-0}" -gt 0 ]; then
        rec idle.kb "$2" "$(awk -v a="$after" -v b="$before" -v c="$c" \
            'BEGIN {printf "%.2f", (a - b) / c}')"
    fi
    stop_server "$1" idle
}

w_pub() { # publishing, 64 connections, no subscribers
    local row=pub_mem
    [[ "$1" = *redis || "$1" = sse-w2 ]] && row=pub_redis
    start_server "$1" || return
    publish 100000000 1 "$(tag)" 64 0 "$PUB_S" 2
    local ok bad err
    ok=$(kv "$WORK/pub.out" ok) bad=$(kv "$WORK/pub.out" non2xx) err=$(kv "$WORK/pub.out" errors)
    [ "${bad:-1}" = 0 ] && [ "${err:-1}" = 0 ] && [ "${ok:-0}" -gt 0 ] ||
        check "ok=${ok:-?} non2xx=${bad:-?} errors=${err:-?}" "$2" "$row"
    rec "$row.rps" "$2" "$(kv "$WORK/pub.out" req_s)"
    stop_server "$1" "$row"
}

w_fan1k() { # 1,000 subscribers, 1,000 messages as fast as possible
    local ch lost
    ch=$(tag)
    start_server "$1" || return
    if start_subs "$FAN1K_N" 1 "$ch" "$FAN1K_M" 120; then
        publish "$FAN1K_M" 1 "$ch" "$FAN_CONNS" 0 60
        wait_subs
        lost=$(check_subs fan1k "$2" "$FAN1K_N" $((FAN1K_N * $(kv "$WORK/pub.out" ok))))
        rec fan1k.dps "$2" "$(kv "$WORK/sub.out" deliveries_s)"
        rec fan1k.p99 "$2" "$(kv "$WORK/sub.out" p99_ms)"
        rec fan1k.lost "$2" "$lost"
    fi
    stop_server "$1" fan1k
}

w_fan100() { # 100 subscribers, publishing as fast as possible for FAN100_S s
    local ch lost
    ch=$(tag)
    start_server "$1" || return
    if start_subs 100 1 "$ch" 0 $((FAN100_S + 120)); then
        publish 100000000 1 "$ch" "$FAN_CONNS" 0 "$FAN100_S"
        wait_subs
        lost=$(check_subs fan100 "$2" 100 $((100 * $(kv "$WORK/pub.out" ok))))
        rec fan100.dps "$2" "$(kv "$WORK/sub.out" deliveries_s)"
        rec fan100.p99 "$2" "$(kv "$WORK/sub.out" p99_ms)"
        rec fan100.lost "$2" "$lost"
    fi
    stop_server "$1" fan100
}

w_fan10k() { # 10,000 subscribers, 100 messages/s asked, one publisher connection
    local ch lost
    ch=$(tag)
    start_server "$1" || return
    if start_subs "$FAN10K_N" 1 "$ch" 0 $((FAN10K_S + 120)); then
        publish $((FAN10K_RATE * FAN10K_S)) 1 "$ch" 1 "$FAN10K_RATE" "$FAN10K_S"
        wait_subs
        lost=$(check_subs fan10k "$2" "$FAN10K_N" $((FAN10K_N * $(kv "$WORK/pub.out" ok))))
        rec fan10k.rate "$2" "$(awk -v ok="$(kv "$WORK/pub.out" ok)" -v s="$FAN10K_S" \
            'BEGIN {printf "%.1f", ok / s}')"
        rec fan10k.dps "$2" "$(kv "$WORK/sub.out" deliveries_s)"
        rec fan10k.p50 "$2" "$(kv "$WORK/sub.out" p50_ms)"
        rec fan10k.p99 "$2" "$(kv "$WORK/sub.out" p99_ms)"
        rec fan10k.lost "$2" "$lost"
    fi
    stop_server "$1" fan10k
}

w_chan10k() { # 10,000 channels with one subscriber each, one message each
    local ch lost
    ch=$(tag)
    start_server "$1" || return
    if start_subs "$CHAN_N" "$CHAN_N" "$ch" 1 120; then
        publish "$CHAN_N" "$CHAN_N" "$ch" "$FAN_CONNS" 0 60
        wait_subs
        lost=$(check_subs chan10k "$2" "$CHAN_N" "$(kv "$WORK/pub.out" ok)")
        rec chan10k.dps "$2" "$(kv "$WORK/sub.out" deliveries_s)"
        rec chan10k.p99 "$2" "$(kv "$WORK/sub.out" p99_ms)"
        rec chan10k.lost "$2" "$lost"
    fi
    stop_server "$1" chan10k
}

# Open OPEN_N subscribers as fast as the client can; record ROW.sps (subscribers
# per second: OPEN_N / the time from the first request until all are open).
open_subs() { # ROW TARGET COLUMN [extra sub options...]
    local row=$1 target=$2 col=$3 ms c
    shift 3
    SUB_ARGS=(--batch "$OPEN_BATCH" "$@")
    if start_subs "$OPEN_N" 1 "$(tag)" 0 120; then
        kill -TERM "$SUB_PID" 2>/dev/null || true
    fi
    wait_subs
    SUB_ARGS=()
    check_subs "$row" "$col" "$OPEN_N" "" >/dev/null
    ms=$(kv "$WORK/sub.out" open_ms) c=$(kv "$WORK/sub.out" connected)
    if [ -n "$ms" ] && [ "$ms" != -1.000 ]; then
        rec "$row.sps" "$col" "$(awk -v n="$c" -v ms="$ms" 'BEGIN {printf "%.0f", n * 1000 / ms}')"
    fi
    log "  $target: ${c:-?} open in ${ms:-?} ms"
}

w_open() { # new subscribers per second, no credentials
    start_server "$1" || return
    open_subs open "$1" "$2"
    stop_server "$1" open
}

# The same with a JWT in Authorization (ssebroker only: Nchan and Pushpin
# have no JWT check of their own; they are n/a in the table). One token for
# every subscriber, minted once with tests/lib/jwt.mjs: HS256 and ES256.
w_jwt() {
    local alg tok
    command -v node >/dev/null || { check "node is missing: no JWT rows" "$2" jwt; return; }
    [ -s "$WORK/jwt/HS256.tok" ] || mint_tokens || { check "minting tokens failed" "$2" jwt; return; }
    for alg in HS256 ES256; do
        tok=$(cat "$WORK/jwt/$alg.tok")
        BROKER_AUTH=$(cat "$WORK/jwt/auth.json")
        start_server "$1" || { BROKER_AUTH=""; continue; }
        BROKER_AUTH=""
        open_subs "jwt_$alg" "$1" "$2" --header "Authorization: Bearer $tok"
        stop_server "$1" "jwt_$alg"
    done
}

# Keys, tokens and the broker's auth section for w_jwt, in $WORK/jwt.
mint_tokens() {
    mkdir -p "$WORK/jwt"
    (cd "$WORK/jwt" && node --input-type=module -e "
        import fs from 'node:fs';
        import { makeKeys, mint } from '$top/tests/lib/jwt.mjs';
        const k = makeKeys();
        fs.writeFileSync('hs.key', k.hs.secret);
        fs.writeFileSync('es.pem', k.es.pem);
        const exp = Math.floor(Date.now() / 1000) + 3600;
        fs.writeFileSync('HS256.tok', mint(k.hs, { sub: 'bench', role: 'reader', exp }, { kid: 'hs' }));
        fs.writeFileSync('ES256.tok', mint(k.es, { sub: 'bench', role: 'reader', exp }, { kid: 'es' }));
        fs.writeFileSync('auth.json', JSON.stringify({ auth: {
            roles: { reader: [{ match: '*', allow: ['subscribe', 'publish'] }] },
            jwt: { keys: [{ kid: 'hs', alg: 'HS256', secret_file: process.cwd() + '/hs.key' },
                          { kid: 'es', alg: 'ES256', public_key_file: process.cwd() + '/es.pem' }] } } }).slice(1, -1));
    ") 2>>"$WORK/client.log"
}

# Publish/s while PAT_N subscribers each hold one pattern (dev.N.*, one
# stream each) or one exact name (dev.N.t); the messages go to dev.N.t, N
# in turn, so each is delivered once either way (ssebroker only: the peers
# have no patterns).
w_pattern() {
    local kind ch ok bad err
    for kind in pattern exact; do
        ch=$(tag).
        start_server "$1" || continue
        if [ "$kind" = pattern ]; then SUB_PATH='/events?channel=%s.*'; else SUB_PATH='/events?channel=%s.t'; fi
        PUB_PATH='/channels/%s.t/events'
        if start_subs "$PAT_N" "$PAT_N" "$ch" 0 $((PUB_S + 120)); then
            publish 100000000 "$PAT_N" "$ch" 64 0 "$PUB_S" 2
            ok=$(kv "$WORK/pub.out" ok) bad=$(kv "$WORK/pub.out" non2xx) err=$(kv "$WORK/pub.out" errors)
            [ "${bad:-1}" = 0 ] && [ "${err:-1}" = 0 ] && [ "${ok:-0}" -gt 0 ] ||
                check "ok=${ok:-?} non2xx=${bad:-?} errors=${err:-?}" "$2" "pattern_$kind"
            rec "pat_$kind.rps" "$2" "$(kv "$WORK/pub.out" req_s)"
            wait_subs
            check_subs "pattern_$kind" "$2" "$PAT_N" "${ok:-0}" >/dev/null
        fi
        stop_server "$1" "pattern_$kind"
    done
}

# Publish/s with PUBCONN_N durable connections on the channel, none attached
# (the conns_pub rows below, in the main table; ssebroker only).
w_pubconn() {
    local ch ok bad err
    ch=$(tag)
    start_server "$1" || return
    if make_conns "$ch" "$PUBCONN_N" pubconn "$2"; then
        publish 100000000 1 "$ch" 64 0 "$PUB_S" 2
        ok=$(kv "$WORK/pub.out" ok) bad=$(kv "$WORK/pub.out" non2xx) err=$(kv "$WORK/pub.out" errors)
        [ "${bad:-1}" = 0 ] && [ "${err:-1}" = 0 ] && [ "${ok:-0}" -gt 0 ] ||
            check "ok=${ok:-?} non2xx=${bad:-?} errors=${err:-?}" "$2" pubconn
        rec pubconn.rps "$2" "$(kv "$WORK/pub.out" req_s)"
    fi
    stop_server "$1" pubconn
}

# ---- durable connections (issue 12) ---------------------------------------
# A channel with N persistent connections, none attached: what a publish
# costs, what the broker's memory holds, how fast an attach drains. Targets
# sse-mem, sse-redis and, with --before, old-mem, old-redis; the column is the
# target. No Nchan column: Nchan has no durable connections.

api() { # METHOD PATH [BODY]: one request to the server under test; the body on stdout
    if [ $# -ge 3 ]; then
        curl -s -m 10 -X "$1" -d "$3" "http://127.0.0.1:$SRV_PORT$2"
    else
        curl -s -m 10 -X "$1" "http://127.0.0.1:$SRV_PORT$2"
    fi
}

# Channel CH (queue_limit CQUEUE_LIMIT) with N connections, none attached,
# created over 4 keep-alive connections; 1 (noted) unless the channel then
# reports N.
make_conns() { # CH N ROW TARGET
    local got
    api PUT "/channels/$1" "{\"queue_limit\": $CQUEUE_LIMIT}" >/dev/null
    if [ "$2" -gt 0 ]; then
        timeout -k 5 90 "$SSEBENCH" pub --port "$SRV_PORT" --path '/channels/%s/connections' \
            --channel "$1" --size 0 --count "$2" --conns 4 --duration 60 \
            >"$WORK/mk.out" 2>>"$WORK/client.log" || true
    fi
    got=$(api GET "/channels/$1" | grep -o '"connections": *[0-9]*' | grep -o '[0-9]*$')
    [ "${got:-x}" = "$2" ] && return 0
    check "the channel has ${got:-?} connections, not $2 ($(cat "$WORK/mk.out" 2>/dev/null))" "$4" "$3"
    return 1
}

# Redis' command counters (INFO commandstats), "command calls" a line; the
# INFO that reads them is left out.
cmdstats() {
    redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' |
        sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),.*/\1 \2/p' | grep -v '^info ' || true
}

# Record the calls between two cmdstats per publish: ROW (all) and
# ROW.command (each command that moved).
rec_calls() { # BEFORE AFTER PUBLISHES ROW TARGET
    awk -v n="$3" -v row="$4" -v t="$5" '
        FILENAME == ARGV[1] { b[$1] = $2; next }
        { d = $2 - b[$1]; if (d > 0) { all += d; printf "%s.%s\t%s\t%.4f\n", row, $1, t, d / n } }
        END { printf "%s\t%s\t%.4f\n", row, t, all / n }' "$1" "$2" >>"$WORK/results.tsv"
}

redis_used_kb() {
    redis-cli -p "$REDIS_PORT" info memory | tr -d '\r' |
        awk -F: '$1 == "used_memory" {printf "%d", $2 / 1024}'
}

w_conns_pub() { # publish/s with N connections on the channel, each N of CONN_NS
    local n ch ok bad err row
    for n in $CONN_NS; do
        row=conns.pub.$n ch=$(tag)
        start_server "$1" || continue
        if make_conns "$ch" "$n" "$row" "$1"; then
            [[ "$1" = *-redis ]] && cmdstats >"$WORK/calls.before"
            publish 100000000 1 "$ch" 64 0 "$CPUB_S" 2
            ok=$(kv "$WORK/pub.out" ok) bad=$(kv "$WORK/pub.out" non2xx) err=$(kv "$WORK/pub.out" errors)
            [ "${bad:-1}" = 0 ] && [ "${err:-1}" = 0 ] && [ "${ok:-0}" -gt 0 ] ||
                check "ok=${ok:-?} non2xx=${bad:-?} errors=${err:-?}" "$1" "$row"
            rec "$row" "$1" "$(kv "$WORK/pub.out" req_s)"
            if [[ "$1" = *-redis ]] && [ "${ok:-0}" -gt 0 ]; then
                cmdstats >"$WORK/calls.after"
                rec_calls "$WORK/calls.before" "$WORK/calls.after" "$ok" "conns.calls.$n" "$1"
            fi
            log "  $n connections: $(cut -d' ' -f2-6 "$WORK/pub.out")"
        fi
        stop_server "$1" "$row"
    done
}

w_conns_rss() { # broker RSS after CRSS_M x 1 KB, with 0 and with CRSS_N connections
    local n ch b a ok ql row
    for n in 0 "$CRSS_N"; do
        row=conns.rss.$n ch=$(tag)
        start_server "$1" || continue
        if make_conns "$ch" "$n" "$row" "$1"; then
            sleep "$CWAIT_S"
            b=$(server_rss)
            publish "$CRSS_M" 1 "$ch" 4 0 60 1 1024
            ok=$(kv "$WORK/pub.out" ok)
            [ "${ok:-0}" = "$CRSS_M" ] || check "published ${ok:-?} of $CRSS_M" "$1" "$row"
            sleep "$CWAIT_S"
            a=$(server_rss)
            rec conns.rssb.$n "$1" "$b"
            rec conns.rss.$n "$1" "$a"
            [[ "$1" = *-redis ]] && rec conns.redis_kb.$n "$1" "$(redis_used_kb)"
            # Every connection has them all waiting (read after the RSS).
            if [ "$n" -gt 0 ]; then
                ql=$(api GET "/channels/$ch/connections" | grep -o "\"queue_length\": *$CRSS_M[,}]" | wc -l)
                [ "$ql" = "$n" ] || check "$ql of $n connections show queue_length $CRSS_M" "$1" "$row"
            fi
            log "  $n connections: RSS $b kB before, $a kB after"
        fi
        stop_server "$1" "$row"
    done
}

w_conns_drain() { # attach a connection with CDRAIN_M waiting: time to the last one
    local ch id q ms dis k row
    ch=$(tag)
    start_server "$1" || return
    api PUT "/channels/$ch" "{\"queue_limit\": $CQUEUE_LIMIT}" >/dev/null
    id=$(api POST "/channels/$ch/connections" | sed -n 's/.*"id": *"\([0-9a-f]*\)".*/\1/p')
    [ -n "$id" ] || check "creating the connection failed" "$1" conns.drain
    # The first attach on a fresh broker, then again (the same connection,
    # refilled): the first pays for warming up, in both designs.
    for k in $(seq "$CDRAIN_TIMES"); do
        [ -n "$id" ] || break
        row=conns.drain_again
        [ "$k" = 1 ] && row=conns.drain
        # One publisher connection, one request at a time: the ids come in
        # the order of the sequence numbers, which the client checks.
        publish "$CDRAIN_M" 1 "$ch" 1 0 60
        # All of them wait, and nothing was dropped (the last drain moved
        # the cursor past what it gave).
        q=$(api GET "/channels/$ch/connections/$id" | grep -o '"\(queue_length\|dropped\)": *[0-9]*' |
            tr -d '" ' | tr '\n' ' ')
        [ "$q" = "queue_length:$CDRAIN_M dropped:0 " ] ||
            check "before the attach: ${q:-no answer}" "$1" $row
        timeout -k 5 90 "$SSEBENCH" sub --port "$SRV_PORT" --path "/channels/%s/connections/$id/events" \
            --channel "$ch" --expect "$CDRAIN_M" --duration 60 >"$WORK/sub.out" 2>>"$WORK/client.log"
        check_subs $row "$1" 1 "$CDRAIN_M" >/dev/null
        dis=$(kv "$WORK/sub.out" disorder)
        [ "${dis:-1}" = 0 ] || check "${dis:-?} events out of order" "$1" $row
        ms=$(kv "$WORK/sub.out" complete_ms)
        [ -n "$ms" ] && [ "$ms" != -1.000 ] && rec $row "$1" "$ms"
        log "  attach $k: $(grep -o 'unique=[0-9]*\|disorder=[0-9]*\|complete_ms=[0-9.-]*' "$WORK/sub.out" | tr '\n' ' ')"
        # The stream's end reaches the broker: the next attach is no takeover.
        [ "$k" = "$CDRAIN_TIMES" ] || sleep 0.2
    done
    stop_server "$1" conns.drain
}

# ---- run ------------------------------------------------------------------
wanted() { [ -z "$only" ] || [[ ",$only," = *",$1,"* || ($1 = conns_* && ",$only," = *,conns,*) ]]; }
: >"$WORK/results.tsv"
: >"$WORK/notes"
started=$(date +%s)
case "$mode" in full) budget=5400 ;; quick) budget=900 ;; *) budget=60 ;; esac
set +e # from here on a failure is noted, not fatal
# Interleave the servers run by run so drift on a shared machine hits both.
for r in $(seq "$runs"); do
    for w in idle pub fan1k fan100 fan10k chan10k open jwt pattern pubconn \
        conns_pub conns_rss conns_drain; do
        wanted "$w" || continue
        [ "$mode" = smoke ] && [ "$w" = conns_rss ] && continue
        targets="sse-mem"
        [ "$w" = pub ] && targets="$targets sse-redis"
        # Every core: two worker processes on the Redis store (not for the
        # idle row, which the single process answers, nor the rows only
        # ssebroker has).
        [ "$workers" = 1 ] && [[ ! "$w" =~ ^(idle|jwt|pattern|pubconn)$ ]] && targets="$targets sse-w2"
        if [[ ! "$w" =~ ^(jwt|pattern|pubconn)$ ]]; then
            if [ "$nchan" = 1 ]; then
                targets="$targets nchan-mem"
                [ "$w" = pub ] && targets="$targets nchan-redis"
            fi
            # Pushpin has no store to choose: its row is the memory one.
            [ "$pushpin" = 1 ] && targets="$targets pushpin"
        fi
        if [[ "$w" = conns_* ]]; then
            # Each broker before the same one at --before, so drift hits both.
            # No RSS row for the old broker on Redis: it would put 1,000
            # copies of every message into Redis (1 GB).
            targets="sse-mem"
            [ -n "$BROKER_OLD" ] && targets="$targets old-mem"
            targets="$targets sse-redis"
            [ -n "$BROKER_OLD" ] && [ "$w" != conns_rss ] && targets="$targets old-redis"
        fi
        for t in $targets; do
            if [ $(($(date +%s) - started)) -gt "$budget" ]; then
                echo "time budget of $budget s spent: $w $t run $r skipped" >>"$WORK/notes"
                continue
            fi
            log "run $r/$runs: $w on $t"
            col=sse
            [[ "$t" = nchan-* ]] && col=nchan
            [ "$t" = pushpin ] && col=pushpin
            [ "$t" = sse-w2 ] && col=w2
            [[ "$w" = conns_* ]] && col=$t
            "w_$w" "$t" "$col"
            [ "$mode" = smoke ] || sed "s/^/  /" "$WORK/sub.out" "$WORK/pub.out" 2>/dev/null |
                grep -v '^  $' >&2 || true
            rm -f "$WORK/sub.out" "$WORK/pub.out"
        done
    done
done

# ---- table ----------------------------------------------------------------
# Medians per row and column, then one line per row:
# workload | figure | ssebroker | Nchan | ssebroker/Nchan | target
table() {
    awk -F'\t' -v idle="$IDLE_N" -v f1n="$FAN1K_N" -v f1m="$FAN1K_M" -v f100s="$FAN100_S" \
        -v f10n="$FAN10K_N" -v f10r="$FAN10K_RATE" -v f10s="$FAN10K_S" -v chn="$CHAN_N" \
        -v on="$OPEN_N" -v pn="$PAT_N" -v pcn="$PUBCONN_N" -v ps="$PUB_S" '
    function median(key,    n, i, j, t, a) {
        n = split(vals[key], a, " ")
        for (i = 2; i <= n; i++)       # insertion sort, n is small
            for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        if (n == 0) return ""
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function fmt(v, unit) {
        if (v == "") return "-"
        if (unit == "n") return sprintf("%.0f", v)
        if (unit == "k") return v >= 10000 ? sprintf("%.1fk", v / 1000) : sprintf("%.0f", v)
        if (unit == "ms") return v >= 1000 ? sprintf("%.2f s", v / 1000) : sprintf("%.1f ms", v)
        if (unit == "kb") return sprintf("%.1f KB", v)
        return sprintf("%.1f", v)
    }
    {
        key = $1 SUBSEP $2
        vals[key] = (key in vals) ? vals[key] " " $3 : $3
    }
    function num(v) { # 10000 -> 10,000
        v = sprintf("%d", v)
        while (v ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", v)
        return v
    }
    function ratio(a, b) { return (a != "" && b != "" && b + 0 != 0) ? sprintf("%.2f", a / b) : "-" }
    END {
        w_idle = sprintf("%s idle subscribers", num(idle))
        w_f1 = sprintf("fan-out %s subs, %s msgs", num(f1n), num(f1m))
        w_f100 = sprintf("fan-out 100 subs, as fast as possible, %d s", f100s)
        w_f10 = sprintf("fan-out %s subs, %d msg/s asked, %d s", num(f10n), f10r, f10s)
        w_ch = sprintf("%s channels x 1 sub, 1 msg each", num(chn))
        nrows = split("idle.kb pub_mem.rps pub_redis.rps fan1k.dps fan1k.p99 fan1k.lost fan100.dps fan100.p99 fan100.lost fan10k.rate fan10k.dps fan10k.p50 fan10k.p99 fan10k.lost chan10k.dps chan10k.p99 chan10k.lost open.sps jwt_HS256.sps jwt_ES256.sps pat_pattern.rps pat_exact.rps pubconn.rps", rows, " ")
        w_open = sprintf("%s new subscribers, opened as fast as the client can", num(on))
        name["open.sps"] = w_open "|subscribers/s|k|>= 1.5x"
        name["jwt_HS256.sps"] = w_open ", JWT HS256|subscribers/s|k|"
        name["jwt_ES256.sps"] = w_open ", JWT ES256|subscribers/s|k|"
        name["pat_pattern.rps"] = sprintf("publish, 64 conns, %d s, %s subscribers of one pattern each (dev.N.*)", ps, num(pn)) "|req/s|k|"
        name["pat_exact.rps"] = sprintf("publish, 64 conns, %d s, %s subscribers of one exact name each (dev.N.t)", ps, num(pn)) "|req/s|k|"
        name["pubconn.rps"] = sprintf("publish, 64 conns, %d s, %s durable connections on the channel", ps, num(pcn)) "|req/s|k|"
        # Rows only ssebroker has: the peers are n/a, not missing.
        na["jwt_HS256.sps"] = na["jwt_ES256.sps"] = na["pat_pattern.rps"] = na["pat_exact.rps"] = na["pubconn.rps"] = 1
        na2["pub_redis.rps"] = 1 # Pushpin has no store to choose
        name["idle.kb"] = w_idle "|memory per subscriber|kb|<= 0.2x"
        name["pub_mem.rps"] = "publish, 64 conns, 100 B, memory store|req/s|k|>= 1.5x"
        name["pub_redis.rps"] = "publish, 64 conns, 100 B, Redis store|req/s|k|>= 2x"
        name["fan1k.dps"] = w_f1 "|deliveries/s|k|>= 1.5x"
        name["fan1k.p99"] = w_f1 "|p99 latency|ms|"
        name["fan1k.lost"] = w_f1 "|lost deliveries|n|0"
        name["fan100.dps"] = w_f100 "|deliveries/s|k|>= 1.5x"
        name["fan100.p99"] = w_f100 "|p99 latency|ms|"
        name["fan100.lost"] = w_f100 "|lost deliveries|n|0"
        name["fan10k.rate"] = w_f10 "|publish rate (msg/s)|x|" f10r
        name["fan10k.dps"] = w_f10 "|deliveries/s|k|"
        name["fan10k.p50"] = w_f10 "|p50 latency|ms|"
        name["fan10k.p99"] = w_f10 "|p99 latency|ms|<= 100 ms"
        name["fan10k.lost"] = w_f10 "|lost deliveries|n|0"
        name["chan10k.dps"] = w_ch "|deliveries/s|k|>= 1.5x"
        name["chan10k.p99"] = w_ch "|p99 latency|ms|"
        name["chan10k.lost"] = w_ch "|lost deliveries|n|0"
        # A column for two worker processes (Redis store), for Nchan and for
        # Pushpin when they ran.
        w2 = hn = hp = 0
        for (k in vals) {
            if (k ~ (SUBSEP "w2$")) w2 = 1
            if (k ~ (SUBSEP "nchan$")) hn = 1
            if (k ~ (SUBSEP "pushpin$")) hp = 1
        }
        head = "| workload | figure | ssebroker"; sep = "|---|---|---:"
        if (w2) { head = head " | ssebroker, 2 workers"; sep = sep "|---:" }
        if (hn) { head = head " | Nchan"; sep = sep "|---:" }
        if (hp) { head = head " | Pushpin"; sep = sep "|---:" }
        if (hn) { head = head " | ssebroker/Nchan"; sep = sep "|---:" }
        if (hp) { head = head " | ssebroker/Pushpin"; sep = sep "|---:" }
        if (w2 && hn) { head = head " | 2 workers/Nchan"; sep = sep "|---:" }
        print head " | target |"; print sep "|---|"
        for (i = 1; i <= nrows; i++) {
            r = rows[i]
            if (!((r SUBSEP "sse") in vals) && !((r SUBSEP "nchan") in vals) && !((r SUBSEP "pushpin") in vals)) continue
            split(name[r], f, "|")
            s = median(r SUBSEP "sse"); n = median(r SUBSEP "nchan"); t = median(r SUBSEP "w2")
            p = median(r SUBSEP "pushpin")
            out = "| " f[1] " | " f[2] " | " fmt(s, f[3])
            if (w2) out = out " | " fmt(t, f[3])
            if (hn) out = out " | " (na[r] ? "n/a" : fmt(n, f[3]))
            if (hp) out = out " | " (na[r] || na2[r] ? "n/a" : fmt(p, f[3]))
            if (hn) out = out " | " ratio(s, n)
            if (hp) out = out " | " ratio(s, p)
            if (w2 && hn) out = out " | " ratio(t, n)
            print out " | " f[4] " |"
        }
    }' "$WORK/results.tsv"
}

# The durable connection rows (conns.*), one column per broker and store:
# medians, the ratio 1,000 connections / none of the medians, the RSS growth
# as the difference of the medians; then Redis calls per publish by command.
conns_table() {
    awk -F'\t' -v ns="$CONN_NS" -v rn="$CRSS_N" -v rm="$CRSS_M" -v dm="$CDRAIN_M" -v ps="$CPUB_S" '
    function median(key,    n, i, j, t, a) {
        n = split(vals[key], a, " ")
        for (i = 2; i <= n; i++)
            for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        if (n == 0) return ""
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function num(v) { # 10000 -> 10,000
        v = sprintf("%d", v)
        while (v ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", v)
        return v
    }
    function fmt(v, unit) {
        if (v == "") return "-"
        if (unit == "k") return v >= 10000 ? sprintf("%.1fk", v / 1000) : sprintf("%.0f", v)
        if (unit == "ms") return v >= 1000 ? sprintf("%.2f s", v / 1000) : sprintf("%.1f ms", v)
        if (unit == "mib") return sprintf("%.1f MiB", v / 1024)
        if (unit == "kib") return sprintf("%s KiB", num(v))
        if (unit == "x") return sprintf("%.3f", v)
        return sprintf("%.2f", v)
    }
    function line(label, row, unit, target,    i, out, v, any) {
        out = "| " label
        for (i = 1; i <= ncols; i++) {
            v = median(row SUBSEP cols[i]); any = any || v != ""
            out = out " | " fmt(v, unit)
        }
        if (any) print out " | " target " |"
    }
    $1 ~ /^conns\./ {
        key = $1 SUBSEP $2
        vals[key] = (key in vals) ? vals[key] " " $3 : $3
        if ($1 ~ /^conns\.calls\.[0-9]+\./) { c = $1; sub(/^conns\.calls\.[0-9]+\./, "", c); cmds[c] = 1 }
        seen[$2] = 1
    }
    END {
        nall = split("sse-mem sse-redis old-mem old-redis", all, " ")
        head["sse-mem"] = "memory"; head["sse-redis"] = "Redis"
        head["old-mem"] = "memory, before"; head["old-redis"] = "Redis, before"
        for (i = 1; i <= nall; i++) if (all[i] in seen) cols[++ncols] = all[i]
        if (!ncols) exit
        nn = split(ns, n, " "); top = n[nn]
        print ""
        printf "Durable connections (issue 12): a channel with N connections, none attached\n\n"
        out = "| figure"; sep = "|---"
        for (i = 1; i <= ncols; i++) { out = out " | " head[cols[i]]; sep = sep "|---:" }
        print out " | target |"; print sep "|---|"
        for (i = 1; i <= nn; i++)
            line(sprintf("publish/s, 64 conns x 100 B for %s s, %s connections", ps, num(n[i])),
                "conns.pub." n[i], "k", "")
        # The ratio of the medians, per column.
        out = sprintf("| publish/s, %s connections / none", num(top)); any = 0
        for (i = 1; i <= ncols; i++) {
            a = median("conns.pub." top SUBSEP cols[i]); b = median("conns.pub.0" SUBSEP cols[i])
            any = any || (a != "" && b + 0 > 0)
            out = out " | " (a != "" && b + 0 > 0 ? sprintf("%.3f", a / b) : "-")
        }
        if (any && top != 0) print out " | >= 0.5 |"
        for (i = 1; i <= nn; i++)
            line(sprintf("Redis calls per publish (INFO commandstats), %s connections", num(n[i])),
                "conns.calls." n[i], "x", i == nn ? "the same as with none" : "")
        line(sprintf("broker RSS before publishing, no connections"), "conns.rssb.0", "mib", "")
        line(sprintf("broker RSS before publishing, %s connections", num(rn)), "conns.rssb." rn, "mib", "")
        line(sprintf("broker RSS after %s x 1 KB, no connections", num(rm)), "conns.rss.0", "mib", "")
        line(sprintf("broker RSS after %s x 1 KB, %s connections", num(rm), num(rn)), "conns.rss." rn, "mib", "")
        out = sprintf("| RSS growth: %s connections - none, after %s x 1 KB", num(rn), num(rm)); any = 0
        for (i = 1; i <= ncols; i++) {
            a = median("conns.rss." rn SUBSEP cols[i]); b = median("conns.rss.0" SUBSEP cols[i])
            any = any || (a != "" && b != "")
            out = out " | " (a != "" && b != "" ? fmt(a - b, "kib") : "-")
        }
        if (any) print out " | <= " num(2048 + rn) " KiB (2 MiB + 1 KiB x " num(rn) ") |"
        line(sprintf("Redis used_memory after %s x 1 KB, no connections", num(rm)), "conns.redis_kb.0", "mib", "")
        line(sprintf("Redis used_memory after %s x 1 KB, %s connections", num(rm), num(rn)), "conns.redis_kb." rn, "mib", "")
        line(sprintf("attach a connection with %s waiting: request to the %s-th event, first attach", num(dm), num(dm)),
            "conns.drain", "ms", "")
        line(sprintf("the same, attached again (refilled) on the same broker"), "conns.drain_again", "ms", "")
        # Redis calls per publish, by command: one column per Redis broker and N.
        nr = 0
        for (i = 1; i <= ncols; i++) if (cols[i] ~ /redis/) rcols[++nr] = cols[i]
        if (!nr || !length(cmds)) exit
        printf "\nRedis calls per publish by command (INFO commandstats after - before the publish/s rows, / 2xx answers)\n\n"
        out = "| command"; sep = "|---"
        for (i = 1; i <= nr; i++) for (j = 1; j <= nn; j++) {
            out = out " | " (rcols[i] ~ /^old/ ? "before, " : "") num(n[j]) " conns"; sep = sep "|---:"
        }
        print out " |"; print sep "|"
        nc = 0
        for (c in cmds) names[++nc] = c
        for (i = 2; i <= nc; i++) for (j = i; j > 1 && names[j - 1] > names[j]; j--) { t = names[j]; names[j] = names[j - 1]; names[j - 1] = t }
        for (k = 1; k <= nc; k++) {
            out = "| " names[k]
            for (i = 1; i <= nr; i++) for (j = 1; j <= nn; j++)
                out = out " | " fmt(median("conns.calls." n[j] "." names[k] SUBSEP rcols[i]), "x")
            print out " |"
        }
        out = "| all"
        for (i = 1; i <= nr; i++) for (j = 1; j <= nn; j++)
            out = out " | " fmt(median("conns.calls." n[j] SUBSEP rcols[i]), "x")
        print out " |"
    }' "$WORK/results.tsv"
}

{
    echo "ssebench $(date -u '+%Y-%m-%d %H:%M UTC'), mode $mode, medians of $runs run(s)"
    echo
    grep -qv '^conns\.' "$WORK/results.tsv" && table
    conns_table
    if [ -s "$WORK/notes" ]; then
        echo
        echo "Notes:"
        sort "$WORK/notes" | uniq -c | sed 's/^ *\([0-9]*\) /- (x\1) /'
    fi
} | tee "${out:-/dev/null}"

if [ "$mode" = smoke ] && [ -s "$WORK/notes" ]; then
    echo "run.sh: smoke run FAILED" >&2
    exit 1
fi
[ "$mode" = smoke ] && echo "run.sh: smoke run passed" >&2
exit 0
