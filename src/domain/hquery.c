/* hquery.c - history queries: parameters, matching, order, cursors. */
#include "src/domain/hquery.h"

#include <stdio.h>
#include <string.h>

#include "src/base/util.h"
#include "src/domain/pattern.h"
#include "src/domain/session.h"

void hquery_init(hquery *q)
{
    memset(q, 0, sizeof(*q));
    q->from = q->src_from = 0;
    q->to = q->src_to = INT64_MAX;
}

static int fail(const char **code, const char *c, char *err, size_t errlen,
                const char *text, const char *key)
{
    *code = c;
    if (err && errlen)
        snprintf(err, errlen, text, key);
    return -1;
}

/* A time parameter: decimal us since the epoch, 0..INT64_MAX. */
static int time_param(int64_t *out, const char *key, const char *val, const char **code,
                      char *err, size_t errlen)
{
    uint64_t v;
    if (parse_u64(val, &v) < 0 || v > (uint64_t)INT64_MAX)
        return fail(code, "invalid_time", err, errlen,
                    "'%s' must be a time in microseconds since the epoch (a "
                    "non-negative integer)",
                    key);
    *out = (int64_t)v;
    return 0;
}

/* The single-valued parameters, by their bit in hquery.seen. */
#define SEEN_FROM 0
#define SEEN_TO 1
#define SEEN_SFROM 2
#define SEEN_STO 3
#define SEEN_ORDER 4
#define SEEN_BY 5
#define SEEN_LIMIT 6
#define SEEN_AFTER 7

int hquery_param(hquery *q, bool latest, const char *key, const char *val,
                 const char **code, char *err, size_t errlen)
{
    bool chan = strcmp(key, "channel") == 0, event = strcmp(key, "event") == 0;
    if (chan || event) {
        size_t *n = chan ? &q->nchans : &q->nevents;
        const char **v = chan ? q->chans : q->events;
        if (!pattern_topic_valid(val, strlen(val)))
            return fail(code, "invalid_pattern", err, errlen,
                        "'%s' must be a name or pattern: '.'-separated non-empty "
                        "segments of A-Z a-z 0-9 _ : -, '?' for one segment, '*' last "
                        "for zero or more",
                        key);
        if (*n == HQUERY_PATTERNS_MAX)
            return fail(code, "too_many_patterns", err, errlen,
                        "at most 64 '%s' parameters", key);
        v[(*n)++] = val;
        return 0;
    }
    if (latest)
        return 1;
    static const char *const names[] = {"from",  "to",       "source_from", "source_to",
                                        "order", "order_by", "limit",       "after"};
    size_t k;
    for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
        if (strcmp(key, names[k]) == 0)
            break;
    if (k == sizeof(names) / sizeof(names[0]))
        return 1;
    if (q->seen & (1u << k))
        return fail(code, "duplicate_parameter", err, errlen, "'%s' is given twice", key);
    q->seen |= 1u << k;
    uint64_t lim;
    switch (k) {
    case SEEN_FROM:
        return time_param(&q->from, key, val, code, err, errlen);
    case SEEN_TO:
        return time_param(&q->to, key, val, code, err, errlen);
    case SEEN_SFROM:
        q->src_range = true;
        return time_param(&q->src_from, key, val, code, err, errlen);
    case SEEN_STO:
        q->src_range = true;
        return time_param(&q->src_to, key, val, code, err, errlen);
    case SEEN_ORDER:
        if (strcmp(val, "asc") != 0 && strcmp(val, "desc") != 0)
            return fail(code, "invalid_order", err, errlen, "'%s' must be asc or desc",
                        key);
        q->desc = val[0] == 'd';
        return 0;
    case SEEN_BY:
        if (strcmp(val, "timestamp") != 0 && strcmp(val, "source_timestamp") != 0)
            return fail(code, "invalid_order", err, errlen,
                        "'%s' must be timestamp or source_timestamp", key);
        q->by_source = val[0] == 's';
        return 0;
    case SEEN_LIMIT:
        if (parse_u64(val, &lim) < 0 || lim < 1 || lim > 1000000000)
            return fail(code, "invalid_limit", err, errlen,
                        "'%s' must be a positive integer", key);
        q->limit = (size_t)lim;
        return 0;
    default:
        q->after = val;
        return 0;
    }
}

int hquery_finish(hquery *q, size_t max_limit, const char **code, char *err,
                  size_t errlen)
{
    if (!q->nchans)
        return fail(code, "missing_channel", err, errlen,
                    "name at least one channel or pattern: %s?channel=P", "/history");
    if (q->limit > max_limit) {
        *code = "invalid_limit";
        if (err && errlen)
            snprintf(err, errlen,
                     "'limit' must be an integer from 1 to %zu "
                     "(limits.max_query_results)",
                     max_limit);
        return -1;
    }
    if (!q->limit)
        q->limit = max_limit;
    if (q->from > q->to || q->src_from > q->src_to)
        return fail(code, "invalid_time", err, errlen,
                    "a time range ends before it starts%s", "");
    if (q->after) {
        if (hquery_cursor_parse(q, q->after, strlen(q->after), &q->after_key,
                                &q->after_id) < 0)
            return fail(code, "invalid_cursor", err, errlen,
                        "'after' must be the 'next' of an earlier page of the same "
                        "query%s",
                        "");
        q->has_after = true;
    }
    return 0;
}

bool hquery_chan_matches(const hquery *q, const char *name)
{
    bool reserved = channel_reserved(name);
    for (size_t i = 0; i < q->nchans; i++)
        if ((!reserved || strncmp(q->chans[i], "sys.", 4) == 0) &&
            pattern_match(q->chans[i], name, NULL))
            return true;
    return false;
}

bool hquery_msg_matches(const hquery *q, const msg *m)
{
    if (m->ts_us < q->from || m->ts_us > q->to)
        return false;
    if ((q->src_range || q->by_source) &&
        (m->src_ts_us == MSG_NO_SOURCE_TS || m->src_ts_us < q->src_from ||
         m->src_ts_us > q->src_to))
        return false;
    if (!q->nevents)
        return true;
    const char *type = m->event ? m->event : "message";
    for (size_t i = 0; i < q->nevents; i++)
        if (pattern_match(q->events[i], type, NULL))
            return true;
    return false;
}

/* ---- cursors ---- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* The check of a cursor: over its key and id and every parameter of the
 * query that decides what it matches and in which order (not the limit). */
static uint64_t cursor_check(const hquery *q, int64_t key, uint64_t id)
{
    uint64_t h = 14695981039346656037ULL;
    int64_t nums[] = {key,       (int64_t)id,  q->from, q->to,       q->src_from,
                      q->src_to, q->src_range, q->desc, q->by_source};
    h = fnv(h, "hq1", 3);
    h = fnv(h, nums, sizeof(nums));
    for (size_t i = 0; i < q->nchans; i++)
        h = fnv(h, q->chans[i], strlen(q->chans[i]) + 1);
    h = fnv(h, "|", 1);
    for (size_t i = 0; i < q->nevents; i++)
        h = fnv(h, q->events[i], strlen(q->events[i]) + 1);
    return h;
}

void hquery_cursor(const hquery *q, int64_t key, uint64_t id,
                   char out[HQUERY_CURSOR_LEN + 1])
{
    uint64_t v[3] = {(uint64_t)key, id, cursor_check(q, key, id)};
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    for (int k = 0; k < 3; k++)
        for (int shift = 60; shift >= 0; shift -= 4)
            *p++ = hex[(v[k] >> shift) & 15];
    *p = '\0';
}

int hquery_cursor_parse(const hquery *q, const char *text, size_t len, int64_t *key,
                        uint64_t *id)
{
    uint64_t v[3] = {0, 0, 0};
    if (len != HQUERY_CURSOR_LEN)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        v[i / 16] = v[i / 16] << 4 | (uint64_t)d;
    }
    if (v[2] != cursor_check(q, (int64_t)v[0], v[1]))
        return -1;
    *key = (int64_t)v[0];
    *id = v[1];
    return 0;
}
