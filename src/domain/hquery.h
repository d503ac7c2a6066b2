/* hquery.h - history queries (GET /history, /history/latest): their
 * parameters, which messages they match, their order, and the paging cursor.
 *
 * A query names channels and event types by pattern (pattern.h), ranges of
 * server and source timestamps (us since the epoch, both bounds inclusive), an
 * order (asc or desc) by one of the two timestamps (ties broken by the
 * broker-wide id, so the order is total), and where the previous page ended:
 * a cursor. Ordered by source timestamp, a query only sees messages that
 * carry one.
 *
 * The cursor is an opaque token: the sort key and id of the last message of
 * a page, and a check over them and every parameter but 'limit' (hex,
 * HQUERY_CURSOR_LEN characters). A token that was not made by the same query,
 * or was changed, is refused. Paging is exactly-once in the query's order:
 * each page holds what sorts strictly after the cursor, so a message
 * published meanwhile is either after it (and on a later page) or before it
 * (never returned). Messages get server timestamps in publish order on one
 * node, so in timestamp order ascending what is published while a client
 * pages comes on its later pages.
 *
 * Plain data: the patterns are borrowed from the caller (the request's
 * query string) and must outlive the query. */
#ifndef HQUERY_H
#define HQUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/domain/msg.h"

#define HQUERY_PATTERNS_MAX 64 /* channel patterns, and event patterns, per query */
#define HQUERY_CURSOR_LEN 48   /* hex characters of a cursor */

typedef struct hquery {
    const char *chans[HQUERY_PATTERNS_MAX]; /* borrowed */
    size_t nchans;
    const char *events[HQUERY_PATTERNS_MAX]; /* borrowed; none: every type */
    size_t nevents;
    int64_t from, to;         /* server timestamp range, inclusive */
    int64_t src_from, src_to; /* source timestamp range, inclusive */
    bool src_range;           /* source_from or source_to given */
    bool desc;                /* order=desc */
    bool by_source;           /* order_by=source_timestamp */
    size_t limit;             /* 0: not given */
    const char *after;        /* the cursor as given (borrowed), NULL: none */
    unsigned seen;            /* the single-valued parameters given (hquery.c) */
    bool has_after;           /* set by hquery_finish from 'after' */
    int64_t after_key;
    uint64_t after_id;
} hquery;

/* An empty query: no channel yet, every time, asc by timestamp. */
void hquery_init(hquery *q);

/* Take one query parameter ('key' = 'val', both NUL-terminated). Returns 0;
 * 1 if 'key' is none of the query's (the caller decides); or -1 with a
 * machine code in '*code' ("invalid_pattern", "too_many_patterns",
 * "invalid_time", "invalid_order", "invalid_limit", "duplicate_parameter")
 * and a message in 'err'. With 'latest' only channel and event are taken. */
int hquery_param(hquery *q, bool latest, const char *key, const char *val,
                 const char **code, char *err, size_t errlen);

/* Check the whole query once every parameter is in: at least one channel, a
 * limit within 1..max_limit (absent: max_limit), the cursor valid for this
 * query. 0, or -1 with '*code' ("missing_channel", "invalid_limit",
 * "invalid_cursor", "invalid_time") and 'err'. */
int hquery_finish(hquery *q, size_t max_limit, const char **code, char *err,
                  size_t errlen);

/* Whether a query (any of its patterns) may return messages of channel
 * 'name': the broker's own channels (sys.*) only for a pattern naming them. */
bool hquery_chan_matches(const hquery *q, const char *name);

/* Whether 'm' passes the query's event types and time ranges (not the
 * cursor). A message without a type is of type "message", as for EventSource. */
bool hquery_msg_matches(const hquery *q, const msg *m);

/* The sort key of 'm' for the query (its timestamp or source timestamp). */
static inline int64_t hquery_key(const hquery *q, const msg *m)
{
    return q->by_source ? m->src_ts_us : m->ts_us;
}

/* Whether (key a, id ia) comes before (key b, id ib) in the query's order. */
static inline bool hquery_before(const hquery *q, int64_t a, uint64_t ia, int64_t b,
                                 uint64_t ib)
{
    bool less = a < b || (a == b && ia < ib);
    bool same = a == b && ia == ib;
    return q->desc ? !less && !same : less;
}

/* Whether 'm' lies after the query's cursor (every message does without one). */
static inline bool hquery_after_cursor(const hquery *q, const msg *m)
{
    return !q->has_after ||
           hquery_before(q, q->after_key, q->after_id, hquery_key(q, m), m->seq);
}

/* The cursor that resumes the query after (key, id), NUL-terminated into
 * 'out'. */
void hquery_cursor(const hquery *q, int64_t key, uint64_t id,
                   char out[HQUERY_CURSOR_LEN + 1]);

/* Decode 'text' (len bytes) as a cursor of the query: 0 with the key and
 * id, or -1 if it is none (wrong length, not lowercase hex, or its check
 * does not hold for this query). */
int hquery_cursor_parse(const hquery *q, const char *text, size_t len, int64_t *key,
                        uint64_t *id);

#endif
