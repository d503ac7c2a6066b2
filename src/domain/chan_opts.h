/* chan_opts.h - a channel's options: their bounds, defaults and JSON form.
 *
 * Shared by PUT /channels/{name}, the config file's channel_defaults and the
 * stored channel records, so every path checks them the same way. */
#ifndef CHAN_OPTS_H
#define CHAN_OPTS_H

#include <jansson.h>
#include <stddef.h>

/* Bounds on channel options, enforced wherever options are read. */
#define CHAN_HISTORY_MAX 100000
#define CHAN_QUEUE_LIMIT_MAX 100000
#define CHAN_RETRY_MS_MAX 86400000
#define CHAN_HISTORY_AGE_MAX 315360000    /* s: ten years */
#define CHAN_HISTORY_BYTES_MAX 1073741824 /* 1 GiB */

typedef struct chan_opts {
    int history;     /* messages retained for replay, 0..CHAN_HISTORY_MAX (default 100) */
    int queue_limit; /* messages a connection queue holds, 1..CHAN_QUEUE_LIMIT_MAX
                        (default 1000) */
    int retry_ms;    /* the retry: sent to subscribers, 0..CHAN_RETRY_MS_MAX
                        (default 3000) */
    int history_age_s; /* history older than this many seconds goes,
                          0..CHAN_HISTORY_AGE_MAX (default 0: no bound) */
    int history_bytes; /* history beyond this many bytes of data and event
                          types (msg_payload_bytes) goes, oldest first,
                          0..CHAN_HISTORY_BYTES_MAX (default 0: no bound) */
} chan_opts;

/* The defaults above. */
void chan_opts_default(chan_opts *o);

/* What was wrong with an options object: the offending key (borrowed from the
 * object), whether it is no option at all, else the bounds it must be within. */
typedef struct chan_opts_error {
    const char *key;
    int unknown;
    int min, max;
} chan_opts_error;

/* Apply the JSON object 'obj' (keys history, queue_limit, retry_ms,
 * history_age_s, history_bytes, each optional) over 'o', all or nothing. Returns 0, or -1
 * with 'o' unchanged and
 * '*e' (may be NULL) saying why. 'obj' must be an object. */
int chan_opts_apply(chan_opts *o, json_t *obj, chan_opts_error *e);

/* The same for any JSON value ('obj' NULL applies nothing), with the reason as
 * text in 'err' (e.g. "unknown option 'foo'", "'history' must be an integer from
 * 0 to 100000"). */
int chan_opts_apply_json(chan_opts *o, json_t *obj, char *err, size_t errlen);

/* The options as a new JSON object {"history":..,"queue_limit":..,"retry_ms":..,
 * "history_age_s":..,"history_bytes":..}: chan_opts_to_json_all every one (for
 * records: a rule's defaults must not fill in a 0 that was chosen),
 * chan_opts_to_json the last two only when they bound something (the API
 * form, the same as before they existed when they do not). */
json_t *chan_opts_to_json(const chan_opts *o);
json_t *chan_opts_to_json_all(const chan_opts *o);

#endif
