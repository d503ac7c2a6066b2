/* publish.h - parse the body of POST .../events into the events to publish. */
#ifndef PUBLISH_H
#define PUBLISH_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "src/domain/target.h"

#define PUB_BATCH_MAX 1000        /* events one request may publish */
#define PUB_EVENT_MAX 200         /* bytes of an event type */
#define PUB_EVENT_RESERVED "sys." /* the prefix of the broker's own event types */
#define PUB_SOURCE_TS_MAX 9007199254740991LL /* as MSG_SOURCE_TS_MAX */

/* One event to publish. Strings are owned by the batch. */
typedef struct pub_event {
    char *event; /* NULL if none; never contains CR, LF or NUL */
    char *data;  /* NUL-terminated for convenience; 'data_len' bytes, no NUL inside */
    size_t data_len;
    int retry;      /* -1 if none, else 0..86400000 */
    int has_src_ts; /* 1: the publisher gave its time, 'src_ts' (us) */
    int64_t src_ts;
    int is_json;    /* 1: 'data' is the compact text of a non-string JSON value */
    target_rec *tg; /* its publication record (targeting lists, then the publisher
                   too: pub_batch_set_publisher), owned; NULL: none */
} pub_event;

typedef struct pub_batch {
    pub_event *ev;
    size_t n;
    int is_array; /* the body was a JSON array: answer {"ids": [...]} */
} pub_batch;

/* Parse a publish request. 'ctype' is the Content-Type header (may be NULL);
 * "application/json" (parameters such as "; charset=utf-8" allowed, case
 * insensitive) means the body is {"event": "type", "data": <string or any
 * JSON>, "retry": N, "source_timestamp": US} or a non-empty array of such
 * objects (at most PUB_BATCH_MAX); every key is optional except data; unknown
 * keys are errors; non-string data is stored as compact one-line JSON (and
 * is_json set). Any other content type:
 * the raw body is the data and 'query_event' (may be NULL) the type.
 * Data must not contain NUL; the event type must be 1..PUB_EVENT_MAX bytes with
 * no CR, LF or NUL, and not start with PUB_EVENT_RESERVED ("sys.": the
 * broker's own types, such as sys.gap).
 *
 * Targeted delivery (target.h): a JSON event object may also hold the lists
 * "exclude", "eligible", "exclude_authid", "eligible_authid",
 * "exclude_authrole", "eligible_authrole" (each a list of at most
 * TARGET_LIST_MAX strings of 1..TARGET_ITEM_MAX bytes); for a raw body,
 * publish_parse_with takes them from 'query_lists' (an object of such lists,
 * built from the query string; borrowed, may be NULL), which a JSON body
 * must not have.
 *
 * Returns 0 and fills 'out' (release with pub_batch_free), or -1 with 'out'
 * empty, a short machine code in '*code' (a static string: "invalid_json",
 * "invalid_event", "reserved_event_type", "invalid_data", "invalid_retry",
 * "invalid_target", "invalid_source_timestamp", "unknown_field",
 * "batch_too_large", "empty_batch") and a
 * human message in 'err'. Validation is all-or-nothing: one bad event rejects the whole
 * batch. */
int publish_parse(const char *ctype, const char *body, size_t len,
                  const char *query_event, pub_batch *out, const char **code, char *err,
                  size_t errlen);
int publish_parse_with(const char *ctype, const char *body, size_t len,
                       const char *query_event, const json_t *query_lists, pub_batch *out,
                       const char **code, char *err, size_t errlen);

/* Parse a source timestamp given as text (?source_timestamp=): decimal
 * microseconds since the epoch, 0..PUB_SOURCE_TS_MAX. 0, or -1. */
int pub_parse_source_ts(const char *s, int64_t *out);

/* Give every event of 'b' without a source timestamp 'src_ts'. */
void pub_batch_default_source_ts(pub_batch *b, int64_t src_ts);

/* Record the publisher (copied; NULL: anonymous, no role) in every event's
 * publication record. 0, or -1 on OOM (the batch is unchanged then). */
int pub_batch_set_publisher(pub_batch *b, const char *authid, const char *authrole);

/* Check every event's retry against the configured bound 'max' (<= the
 * absolute bound above). Returns 0, or -1 with '*code' "invalid_retry" and a
 * message naming the first event at fault in 'err' (as publish_parse). */
int pub_batch_check_retry(const pub_batch *b, int max, const char **code, char *err,
                          size_t errlen);

/* Release what 'b' holds and zero it. NULL is fine. */
void pub_batch_free(pub_batch *b);

#endif
