/* trace.h - a trace: what flows through chosen channels for a while, as
 * Crossbar's management API traces it. A definition (which channels, how many
 * records, how long) and the record each node writes for each message it
 * delivers on a matching channel. Plain objects, no I/O. */
#ifndef TRACE_H
#define TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "src/domain/msg.h"

#define TRACE_ID_MAX 64       /* bytes of a trace id (channel-name characters) */
#define TRACE_MATCH_MAX 16    /* patterns of one trace */
#define TRACE_LIMIT_DEF 1000  /* records kept when a trace does not say */
#define TRACE_DURATION_DEF 60 /* seconds it runs when it does not say */

/* What a new trace may ask for (the configuration's bounds). */
typedef struct trace_bounds {
    uint64_t limit_max;     /* records one trace keeps */
    int64_t duration_max_s; /* seconds one trace runs */
} trace_bounds;

typedef struct trace {
    char id[TRACE_ID_MAX + 1];
    char *match[TRACE_MATCH_MAX]; /* owned: topic patterns (pattern.h) */
    size_t nmatch;
    uint64_t limit;     /* records kept: the newest */
    int64_t duration_s; /* it runs this long from started_at */
    int64_t started_at; /* microseconds since the epoch */
    int64_t stopped_at; /* when stopped before its end, 0: not */
} trace;

/* 1 if the 'len' bytes at 's' are a trace id: 1 to TRACE_ID_MAX
 * channel-name characters. */
int trace_id_valid(const char *s, size_t len);

/* A new trace from a request body {"id", "match": [PATTERN...], "limit",
 * "duration_s"} ("limit" and "duration_s" optional: TRACE_LIMIT_DEF and
 * TRACE_DURATION_DEF, or the bound if lower), started at 'now'. NULL with
 * '*code' "invalid_trace" and a message in 'err' when the body is no such
 * object (unknown keys, a bad id, no pattern, a bad pattern, bounds passed),
 * or '*code' "out_of_memory". Caller frees with trace_free. */
trace *trace_from_request(const json_t *body, const trace_bounds *bd, int64_t now,
                          const char **code, char *err, size_t errlen);

/* The stored form, compact JSON text ({"id", "match", "limit", "duration_s",
 * "started_at", "stopped_at"}); caller frees. NULL on OOM. */
char *trace_to_text(const trace *t);
/* And back. NULL if the text is no trace (or on OOM). */
trace *trace_from_text(const char *text, size_t len);

/* The API form: the stored fields, "ends_at", "state" ("running" or
 * "stopped") at 'now' and "records" (taken so far, 'records'). New
 * reference; NULL on OOM. */
json_t *trace_to_json(const trace *t, int64_t now, uint64_t records);

/* True while 't' captures: not stopped, and its time not over at 'now'. */
bool trace_running(const trace *t, int64_t now);
/* True if the channel 'name' matches one of its patterns. */
bool trace_matches(const trace *t, const char *name);

/* A copy of 't'. NULL on OOM. */
trace *trace_dup(const trace *t);
void trace_free(trace *t);

/* What a node saw of one message on a traced channel. */
typedef struct trace_seen {
    const char *channel;
    const msg *m;
    const char *node;       /* the node that delivered it */
    int64_t at;             /* when (microseconds since the epoch) */
    uint64_t streams;       /* live streams it was written to there */
    uint64_t connections;   /* durable connections' streams it was written to */
    const char *connection; /* published to this connection alone; NULL: to all */
} trace_seen;

/* The record of 'sn' as JSON text without its sequence number: the stored
 * record is "{\"seq\":" + number + the result, {"seq", "time", "node",
 * "channel", "id", "event", "timestamp", "size", "authid", "authrole",
 * "streams", "connections", "connection"} (event, authid, authrole,
 * connection null when absent).
 * Caller frees; NULL on OOM. */
#define TRACE_RECORD_HEAD "{\"seq\":"
char *trace_record_tail(const trace_seen *sn, size_t *len);

#endif
