# lib.sh - shell helpers the benchmark scripts share (sourced by run.sh and
# patterns.sh; bash). Loopback only; every wait is bounded.
# shellcheck shell=bash

# A free loopback port below the kernel's ephemeral range (so no client
# connection holds it): nothing answers a connect on it.
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
    local p
    while :; do
        p=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

# Stop one process we started, by PID: TERM, then KILL after 10 s.
stop_pid() {
    local p=$1
    kill -TERM "$p" 2>/dev/null || return 0
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

# Wait (at most $2 s) until http://127.0.0.1:$1/ answers anything.
wait_http() {
    for _ in $(seq $(($2 * 10))); do
        curl -s -o /dev/null -m 1 "http://127.0.0.1:$1/" && return 0
        sleep 0.1
    done
    return 1
}

# key=value from a client's output line: kv FILE KEY.
kv() { tr ' ' '\n' <"$1" | awk -F= -v k="$2" '$1 == k {print $2; exit}'; }
