/* chan_opts.c - channel options: bounds, defaults, JSON. */
#include "src/domain/chan_opts.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    size_t off;
    int min, max;
} fields[] = {
    {"history", offsetof(chan_opts, history), 0, CHAN_HISTORY_MAX},
    {"queue_limit", offsetof(chan_opts, queue_limit), 1, CHAN_QUEUE_LIMIT_MAX},
    {"retry_ms", offsetof(chan_opts, retry_ms), 0, CHAN_RETRY_MS_MAX},
    {"history_age_s", offsetof(chan_opts, history_age_s), 0, CHAN_HISTORY_AGE_MAX},
    {"history_bytes", offsetof(chan_opts, history_bytes), 0, CHAN_HISTORY_BYTES_MAX},
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

void chan_opts_default(chan_opts *o)
{
    o->history = 100;
    o->queue_limit = 1000;
    o->retry_ms = 3000;
    o->history_age_s = 0;
    o->history_bytes = 0;
}

int chan_opts_apply(chan_opts *o, json_t *obj, chan_opts_error *e)
{
    chan_opts tmp = *o;
    chan_opts_error scratch;
    const char *key;
    json_t *v;

    if (!e)
        e = &scratch;
    json_object_foreach (obj, key, v) {
        size_t i;
        for (i = 0; i < NFIELDS; i++)
            if (strcmp(key, fields[i].name) == 0)
                break;
        *e = (chan_opts_error){.key = key, .unknown = i == NFIELDS};
        if (i == NFIELDS)
            return -1;
        e->min = fields[i].min;
        e->max = fields[i].max;
        if (!json_is_integer(v) || json_integer_value(v) < fields[i].min ||
            json_integer_value(v) > fields[i].max)
            return -1;
        *(int *)((char *)&tmp + fields[i].off) = (int)json_integer_value(v);
    }
    *o = tmp;
    return 0;
}

int chan_opts_apply_json(chan_opts *o, json_t *obj, char *err, size_t errlen)
{
    chan_opts_error e;

    if (!obj)
        return 0;
    if (!json_is_object(obj)) {
        if (err && errlen)
            snprintf(err, errlen, "options must be a JSON object");
        return -1;
    }
    if (chan_opts_apply(o, obj, &e) == 0)
        return 0;
    if (err && errlen) {
        if (e.unknown)
            snprintf(err, errlen, "unknown option '%s'", e.key);
        else
            snprintf(err, errlen, "'%s' must be an integer from %d to %d", e.key, e.min,
                     e.max);
    }
    return -1;
}

json_t *chan_opts_to_json_all(const chan_opts *o)
{
    return json_pack("{s:i, s:i, s:i, s:i, s:i}", "history", o->history, "queue_limit",
                     o->queue_limit, "retry_ms", o->retry_ms, "history_age_s",
                     o->history_age_s, "history_bytes", o->history_bytes);
}

json_t *chan_opts_to_json(const chan_opts *o)
{
    json_t *j = chan_opts_to_json_all(o);
    if (j && !o->history_age_s)
        json_object_del(j, "history_age_s");
    if (j && !o->history_bytes)
        json_object_del(j, "history_bytes");
    return j;
}
