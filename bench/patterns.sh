#!/usr/bin/env bash
# patterns.sh - issue 15's pattern target: publish/s with N open streams each
# subscribed to a distinct pattern (GET /events?channel=dev.I.*) against N
# plain streams on N exact channels (GET /channels/dev.I/events); both publish
# round robin to dev.0 .. dev.N-1 (the pattern dev.I.* matches dev.I: '*' is
# zero or more segments), so each message reaches exactly one stream. Target:
# pattern >= 0.5x exact.
#
#   bench/patterns.sh [--broker BIN] [--before BIN] [--n N] [--seconds S] [--runs R]
#                     [--kinds "exact pattern topic"]
#
#   --broker BIN   the broker to measure (default: build/ssebroker)
#   --before BIN   a second broker (e.g. built before the segment tree), measured
#                  the same way in the same rounds
#   --n N          streams (10000); --seconds S publishing time per figure (10);
#                  --runs R rounds (3), each measuring every (broker, kind) once
#   --kinds K      which figures (default "exact pattern"); "topic" adds N
#                  streams on /events?channel=dev.I (exact names, enveloped
#                  like the pattern streams: what the envelope alone costs)
#
# Prints one line per figure (broker kind req_s connected) and, per broker, the
# median publish/s of each kind and their ratio. Channels are created by a
# first round-robin publish before the timed one, in both kinds. Loopback
# only; each process it starts is stopped by PID; every client is bounded by
# --duration and timeout(1). bench/ssebench is built with make -C bench.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
broker=$top/build/ssebroker before="" n=10000 secs=10 runs=3 kinds="exact pattern"
while [ $# -gt 0 ]; do
    case "$1" in
    --broker) broker=$2; shift ;;
    --before) before=$2; shift ;;
    --n) n=$2; shift ;;
    --seconds) secs=$2; shift ;;
    --runs) runs=$2; shift ;;
    --kinds) kinds=$2; shift ;;
    -h | --help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "patterns.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
make -s -C "$here" ssebench >/dev/null
SSEBENCH=$here/ssebench
[ -x "$broker" ] || { echo "patterns.sh: no broker at $broker" >&2; exit 1; }

# free_port, stop_pid, wait_http, kv
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

WORK=$(mktemp -d /tmp/ssebench-patterns.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One figure: BIN KIND (exact|pattern|topic) LABEL; appends to $WORK/results.
figure() {
    local bin=$1 kind=$2 label=$3 port path srv sub procs=1 ok=0
    port=$(free_port)
    cat >"$WORK/broker.json" <<EOF
{
  "listen": "127.0.0.1:$port",
  "store": {"type": "memory"},
  "autocreate": true,
  "log_level": "warn",
  "limits": {"max_streams": 19500, "max_streams_per_channel": 19500,
             "max_channels": 1000000, "max_pattern_streams": $n,
             "stream_buffer": 4194304}
}
EOF
    "$bin" --config "$WORK/broker.json" 2>>"$WORK/broker.log" &
    srv=$!
    PIDS+=("$srv")
    wait_http "$port" 10 || true
    case "$kind" in
    exact) path='/channels/%s/events' ;;
    pattern) path='/events?channel=%s.*' ;;
    topic) path='/events?channel=%s' ;;
    *) echo "patterns.sh: unknown kind $kind" >&2; exit 2 ;;
    esac
    [ "$n" -ge 4000 ] && procs=2
    rm -f "$WORK/ready"
    timeout -k 5 $((secs + 150)) "$SSEBENCH" sub --port "$port" --path "$path" -n "$n" \
        --procs "$procs" --channels "$n" --channel dev. --expect 0 --quiet-ms 600000 \
        --duration $((secs + 120)) --ready "$WORK/ready" >"$WORK/sub.out" \
        2>>"$WORK/client.log" &
    sub=$!
    PIDS+=("$sub")
    for _ in $(seq 1200); do
        [ -e "$WORK/ready" ] && break
        kill -0 "$sub" 2>/dev/null || break
        sleep 0.1
    done
    if [ -e "$WORK/ready" ]; then
        sleep 1
        # Every channel once (created in the exact kind already; here in both).
        timeout -k 5 90 "$SSEBENCH" pub --port "$port" --path '/channels/%s/events' \
            --count "$n" --channels "$n" --channel dev. --conns 8 --duration 60 \
            >"$WORK/warm.out" 2>>"$WORK/client.log" || true
        timeout -k 5 $((secs + 30)) "$SSEBENCH" pub --port "$port" \
            --path '/channels/%s/events' --count 0 --channels "$n" --channel dev. \
            --conns 16 --duration "$secs" >"$WORK/pub.out" 2>>"$WORK/client.log" || true
        ok=1
    fi
    stop_pid "$sub"
    stop_pid "$srv"
    if [ "$ok" = 1 ]; then
        # An enveloped event (/events) has no payload ssebench can parse: it
        # counts as unparsed, so delivered is the sum.
        printf '%s %s req_s=%s non2xx=%s connected=%s delivered=%s\n' "$label" "$kind" \
            "$(kv "$WORK/pub.out" req_s)" "$(kv "$WORK/pub.out" non2xx)" \
            "$(kv "$WORK/sub.out" connected)" \
            $(($(kv "$WORK/sub.out" deliveries) + $(kv "$WORK/sub.out" unparsed))) |
            tee -a "$WORK/results"
    else
        echo "$label $kind: the subscribers did not get ready" | tee -a "$WORK/results"
    fi
}

for r in $(seq "$runs"); do
    for kind in $kinds; do
        figure "$broker" "$kind" after
        [ -z "$before" ] || figure "$before" "$kind" before
    done
done

# Medians and ratios, per broker.
for label in after before; do
    grep -q "^$label " "$WORK/results" || continue
    awk -v l="$label" '
        $1 == l { split($3, a, "="); v[$2, ++c[$2]] = a[2] + 0 }
        function med(k,   n, i, j, t, x) {
            n = c[k]; for (i = 1; i <= n; i++) x[i] = v[k, i]
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
                if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
            return n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
        }
        END {
            e = med("exact"); p = med("pattern"); t = c["topic"] ? med("topic") : 0
            printf "%s: median publish/s exact %.0f, pattern %.0f, ratio %.2f", l, e, p,
                e ? p / e : 0
            if (t) printf "; topic (exact names, enveloped) %.0f, pattern/topic %.2f", t, p / t
            printf "\n"
        }' "$WORK/results"
done
