/* publish.c - turn the body of a publish request into the events to publish. */
#include "src/domain/publish.h"
#include "src/domain/sse.h"
#include "src/base/util.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PUB_RETRY_MAX 86400000

/* Set the machine code and the human message; returns -1. 'idx' >= 0 names the
 * array element at fault. */
static int pub_fail(const char **code, char *err, size_t errlen, const char *c, long idx,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int pub_fail(const char **code, char *err, size_t errlen, const char *c, long idx,
                    const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    if (code)
        *code = c;
    if (!err || !errlen)
        return -1;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (idx >= 0)
        snprintf(err, errlen, "events[%ld]: %s", idx, msg);
    else
        snprintf(err, errlen, "%s", msg);
    return -1;
}

/* 1 if the media type of 'ctype' (before any ';', blanks trimmed) is
 * application/json, in any case. */
static int is_json_type(const char *ctype)
{
    static const char json[] = "application/json";
    const char *end;

    if (!ctype)
        return 0;
    end = strchr(ctype, ';');
    if (!end)
        end = ctype + strlen(ctype);
    while (ctype < end && (*ctype == ' ' || *ctype == '\t'))
        ctype++;
    while (end > ctype && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return (size_t)(end - ctype) == sizeof(json) - 1 &&
           strncasecmp(ctype, json, sizeof(json) - 1) == 0;
}

static int valid_event(const char *s, size_t len)
{
    return len >= 1 && len <= PUB_EVENT_MAX && sse_valid_field(s, len);
}

#define EVENT_RULE "'event' must be a string of 1 to 200 bytes without CR, LF or NUL"

/* Event types starting with "sys." are the broker's own (sys.gap): no client
 * publishes one. */
static int reserved_event(const char *s, size_t len)
{
    return len >= 4 && memcmp(s, PUB_EVENT_RESERVED, 4) == 0;
}

#define RESERVED_RULE                                                                    \
    "event types starting with 'sys.' are reserved for the broker's own events"

/* The event's targeting lists from 'lists' (an object of lists, borrowed). */
static int set_target(pub_event *ev, const json_t *lists, long idx, const char **code,
                      char *err, size_t errlen)
{
    const char *c = NULL;
    char why[160] = "";
    ev->tg = target_new(lists, NULL, NULL, &c, why, sizeof(why));
    if (ev->tg || !c)
        return 0;
    if (strcmp(c, "out_of_memory") == 0)
        return pub_fail(code, err, errlen, "invalid_data", idx, "out of memory");
    return pub_fail(code, err, errlen, "invalid_target", idx, "%s", why);
}

/* Fill 'ev' from one publish object. 'idx' is its array index or -1. */
static int parse_one(json_t *obj, pub_event *ev, long idx, const char **code, char *err,
                     size_t errlen)
{
    const char *key;
    json_t *v, *data = NULL, *lists = NULL;
    int rc = -1;

    ev->retry = -1;
    if (!json_is_object(obj))
        return pub_fail(code, err, errlen, "invalid_json", idx,
                        "each event must be a JSON object");

    json_object_foreach (obj, key, v) {
        if (target_is_list_name(key)) {
            /* Gathered (borrowed), checked together below. */
            if ((!lists && !(lists = json_object())) ||
                json_object_set(lists, key, v) < 0)
                goto oom;
        } else if (strcmp(key, "data") == 0) {
            data = v;
        } else if (strcmp(key, "event") == 0) {
            if (json_is_null(v))
                continue;
            if (!json_is_string(v) ||
                !valid_event(json_string_value(v), json_string_length(v))) {
                pub_fail(code, err, errlen, "invalid_event", idx, EVENT_RULE);
                goto out;
            }
            if (reserved_event(json_string_value(v), json_string_length(v))) {
                pub_fail(code, err, errlen, "reserved_event_type", idx, RESERVED_RULE);
                goto out;
            }
            ev->event = memdup_nul(json_string_value(v), json_string_length(v));
            if (!ev->event)
                goto oom;
        } else if (strcmp(key, "retry") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > PUB_RETRY_MAX) {
                pub_fail(code, err, errlen, "invalid_retry", idx,
                         "'retry' must be an integer from 0 to %d", PUB_RETRY_MAX);
                goto out;
            }
            ev->retry = (int)json_integer_value(v);
        } else if (strcmp(key, "source_timestamp") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > PUB_SOURCE_TS_MAX) {
                pub_fail(code, err, errlen, "invalid_source_timestamp", idx,
                         "'source_timestamp' must be an integer from 0 to %lld "
                         "(microseconds since the epoch)",
                         PUB_SOURCE_TS_MAX);
                goto out;
            }
            ev->src_ts = (int64_t)json_integer_value(v);
            ev->has_src_ts = 1;
        } else {
            pub_fail(code, err, errlen, "unknown_field", idx,
                     "unknown field '%.64s' (allowed: data, event, retry, "
                     "source_timestamp and the targeting lists)",
                     key);
            goto out;
        }
    }

    if (!data) {
        pub_fail(code, err, errlen, "invalid_data", idx, "'data' is required");
        goto out;
    }
    if (lists && set_target(ev, lists, idx, code, err, errlen) < 0)
        goto out;
    if (json_is_string(data)) {
        const char *s = json_string_value(data);
        size_t len = json_string_length(data);
        if (memchr(s, '\0', len)) {
            pub_fail(code, err, errlen, "invalid_data", idx,
                     "'data' must not contain NUL");
            goto out;
        }
        ev->data = memdup_nul(s, len);
        ev->data_len = len;
    } else {
        /* Strings inside are escaped, so the text holds no NUL. */
        ev->data = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
        ev->data_len = ev->data ? strlen(ev->data) : 0;
        ev->is_json = 1;
    }
    if (!ev->data)
        goto oom;
    rc = 0;
    goto out;

oom:
    pub_fail(code, err, errlen, "invalid_data", idx, "out of memory");
out:
    json_decref(lists);
    return rc;
}

static int parse_json(const char *body, size_t len, pub_batch *out, const char **code,
                      char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root, *item;
    size_t n, i;
    int rc = -1;

    /* JSON_ALLOW_NUL lets "\u0000" through the parser so that it gets the
     * precise code below (invalid_data / invalid_event) rather than invalid_json. */
    root = json_loadb(body ? body : "", len,
                      JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!root)
        return pub_fail(code, err, errlen, "invalid_json", -1, "invalid JSON: %s",
                        jerr.text);

    if (json_is_object(root)) {
        n = 1;
    } else if (json_is_array(root)) {
        n = json_array_size(root);
        out->is_array = 1;
        if (n == 0) {
            pub_fail(code, err, errlen, "empty_batch", -1,
                     "the array must hold at least one event");
            goto out;
        }
        if (n > PUB_BATCH_MAX) {
            pub_fail(code, err, errlen, "batch_too_large", -1,
                     "a batch may hold at most %d events, this one holds %zu",
                     PUB_BATCH_MAX, n);
            goto out;
        }
    } else {
        pub_fail(code, err, errlen, "invalid_json", -1,
                 "body must be an object or an array of objects");
        goto out;
    }

    out->ev = calloc(n, sizeof(*out->ev));
    if (!out->ev) {
        pub_fail(code, err, errlen, "invalid_data", -1, "out of memory");
        goto out;
    }
    for (i = 0; i < n; i++) {
        item = out->is_array ? json_array_get(root, i) : root;
        out->n = i + 1; /* so pub_batch_free releases what this element got */
        if (parse_one(item, &out->ev[i], out->is_array ? (long)i : -1, code, err,
                      errlen) < 0)
            goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

static int parse_raw(const char *body, size_t len, const char *query_event,
                     const json_t *query_lists, pub_batch *out, const char **code,
                     char *err, size_t errlen)
{
    if (len && memchr(body, '\0', len))
        return pub_fail(code, err, errlen, "invalid_data", -1,
                        "the data must not contain NUL bytes");
    /* Event streams are UTF-8: other bytes could not reach a browser intact. */
    if (!valid_utf8(body, len))
        return pub_fail(code, err, errlen, "invalid_data", -1, "the data must be UTF-8");
    if (query_event && *query_event &&
        (!valid_event(query_event, strlen(query_event)) ||
         !valid_utf8(query_event, strlen(query_event))))
        return pub_fail(code, err, errlen, "invalid_event", -1,
                        "the event type must be 1 to 200 bytes without CR, LF or NUL");
    if (query_event && reserved_event(query_event, strlen(query_event)))
        return pub_fail(code, err, errlen, "reserved_event_type", -1, RESERVED_RULE);

    out->ev = calloc(1, sizeof(*out->ev));
    if (!out->ev)
        goto oom;
    out->n = 1;
    out->ev[0].retry = -1;
    out->ev[0].data = memdup_nul(body, len);
    out->ev[0].data_len = len;
    if (!out->ev[0].data)
        goto oom;
    if (query_event && *query_event) {
        out->ev[0].event = strdup(query_event);
        if (!out->ev[0].event)
            goto oom;
    }
    if (query_lists && set_target(&out->ev[0], query_lists, -1, code, err, errlen) < 0)
        return -1;
    return 0;

oom:
    return pub_fail(code, err, errlen, "invalid_data", -1, "out of memory");
}

int publish_parse(const char *ctype, const char *body, size_t len,
                  const char *query_event, pub_batch *out, const char **code, char *err,
                  size_t errlen)
{
    return publish_parse_with(ctype, body, len, query_event, NULL, out, code, err,
                              errlen);
}

int publish_parse_with(const char *ctype, const char *body, size_t len,
                       const char *query_event, const json_t *query_lists, pub_batch *out,
                       const char **code, char *err, size_t errlen)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if (code)
        *code = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (is_json_type(ctype) && query_lists && json_object_size(query_lists))
        /* Refused rather than ignored: a JSON body names its own receivers. */
        rc = pub_fail(code, err, errlen, "invalid_target", -1,
                      "with a JSON body the targeting lists go in the body, not the "
                      "query string");
    else if (is_json_type(ctype))
        rc = parse_json(body, len, out, code, err, errlen);
    else
        rc = parse_raw(body, len, query_event, query_lists, out, code, err, errlen);
    if (rc < 0)
        pub_batch_free(out);
    return rc;
}

int pub_batch_check_retry(const pub_batch *b, int max, const char **code, char *err,
                          size_t errlen)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->ev[i].retry > max)
            return pub_fail(code, err, errlen, "invalid_retry",
                            b->is_array ? (long)i : -1,
                            "'retry' must be an integer from 0 to %d", max);
    return 0;
}

int pub_parse_source_ts(const char *s, int64_t *out)
{
    uint64_t v;
    if (!s || parse_u64(s, &v) < 0 || v > (uint64_t)PUB_SOURCE_TS_MAX)
        return -1;
    *out = (int64_t)v;
    return 0;
}

void pub_batch_default_source_ts(pub_batch *b, int64_t src_ts)
{
    for (size_t i = 0; i < b->n; i++)
        if (!b->ev[i].has_src_ts) {
            b->ev[i].src_ts = src_ts;
            b->ev[i].has_src_ts = 1;
        }
}

void pub_batch_free(pub_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        free(b->ev[i].event);
        free(b->ev[i].data);
        target_free(b->ev[i].tg);
    }
    free(b->ev);
    memset(b, 0, sizeof(*b));
}

int pub_batch_set_publisher(pub_batch *b, const char *authid, const char *authrole)
{
    target_rec **made;
    const char *code;

    if (!authid && !authrole)
        return 0; /* nothing to add */
    if (!(made = calloc(b->n ? b->n : 1, sizeof(*made))))
        return -1;
    /* All made before any is replaced: on failure the batch is unchanged. */
    for (size_t i = 0; i < b->n; i++) {
        if (!(made[i] = target_with_publisher(b->ev[i].tg, authid, authrole, &code))) {
            for (size_t k = 0; k < i; k++)
                target_free(made[k]);
            free(made);
            return -1;
        }
    }
    for (size_t i = 0; i < b->n; i++) {
        target_free(b->ev[i].tg);
        b->ev[i].tg = made[i];
    }
    free(made);
    return 0;
}
