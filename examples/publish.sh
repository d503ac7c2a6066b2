#!/usr/bin/env bash
# publish.sh - publish to an ssebroker channel with curl, and show how to subscribe.
# Usage: BROKER=http://127.0.0.1:8080 ./examples/publish.sh [CHANNEL]
set -euo pipefail
BROKER=${BROKER:-http://127.0.0.1:8080}
CH=${1:-demo}
EV="$BROKER/channels/$CH/events"

say() { printf '\n# %s\n' "$*"; }

say "create (or update) the channel with its options"
curl -sS -X PUT "$BROKER/channels/$CH" -H 'Content-Type: application/json' \
    -d '{"history": 100, "retry_ms": 3000}'

say "raw text: any non-JSON body is the data; each line becomes one data: line"
curl -sS -X POST "$EV" -H 'Content-Type: text/plain' --data-binary $'hello\nworld'

say "raw text with a named event type (?event=)"
curl -sS -X POST "$EV?event=greeting" -H 'Content-Type: text/plain' --data-binary 'hi there'

say "JSON: one event; non-string data arrives as compact JSON text"
curl -sS -X POST "$EV" -H 'Content-Type: application/json' \
    -d '{"event": "price", "data": {"symbol": "ACME", "price": 12.5}}'

say "JSON batch: applied in order, all or nothing"
curl -sS -X POST "$EV" -H 'Content-Type: application/json' \
    -d '[{"data": "first"}, {"event": "note", "data": "second"}, {"data": "third", "retry": 5000}]'

say "history as JSON (no text/event-stream in Accept): oldest first, at most 3"
curl -sS "$EV?limit=3"

say "subscribe (Ctrl-C to stop); add -H 'Last-Event-ID: 42' to resume after id 42:"
echo "curl -N -H 'Accept: text/event-stream' '$EV'"
if [ "${SUBSCRIBE:-0}" = 1 ]; then
    exec curl -N -H 'Accept: text/event-stream' "$EV"
fi
