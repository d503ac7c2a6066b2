/* trace.c - trace definitions and records (see trace.h). */
#include "src/domain/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/domain/names.h"
#include "src/domain/pattern.h"

int trace_id_valid(const char *s, size_t len)
{
    return len >= 1 && len <= TRACE_ID_MAX && strlen(s) == len &&
           valid_channel_name(s, len);
}

void trace_free(trace *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nmatch; i++)
        free(t->match[i]);
    free(t);
}

/* Add pattern 'p' to 't'. 0, -1 on OOM. */
static int add_match(trace *t, const char *p)
{
    if (!(t->match[t->nmatch] = strdup(p)))
        return -1;
    t->nmatch++;
    return 0;
}

static trace *fail(trace *t, const char **code, const char *what, char *err,
                   size_t errlen, const char *text)
{
    trace_free(t);
    *code = what;
    snprintf(err, errlen, "%s", text);
    return NULL;
}

/* An optional integer field in [1, max]: 0, -1 if it is there and is not. */
static int int_field(const json_t *body, const char *key, long long max, long long *out)
{
    const json_t *v = json_object_get(body, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > max)
        return -1;
    *out = json_integer_value(v);
    return 0;
}

trace *trace_from_request(const json_t *body, const trace_bounds *bd, int64_t now,
                          const char **code, char *err, size_t errlen)
{
    static const char inv[] = "invalid_trace";
    const char *key, *id;
    const json_t *v, *match;
    char why[160];
    long long limit = TRACE_LIMIT_DEF, duration = TRACE_DURATION_DEF;
    trace *t = calloc(1, sizeof(*t));

    if (!t)
        return fail(NULL, code, "out_of_memory", err, errlen, "out of memory");
    if (!json_is_object(body))
        return fail(t, code, inv, err, errlen, "the body must be a JSON object");
    json_object_foreach ((json_t *)body, key, v) {
        if (strcmp(key, "id") && strcmp(key, "match") && strcmp(key, "limit") &&
            strcmp(key, "duration_s")) {
            snprintf(why, sizeof(why),
                     "unknown key '%.40s' (a trace has id, match, limit, duration_s)",
                     key);
            return fail(t, code, inv, err, errlen, why);
        }
    }
    v = json_object_get(body, "id");
    id = json_string_value(v);
    if (!id || !trace_id_valid(id, json_string_length(v)))
        return fail(t, code, inv, err, errlen,
                    "'id' must be 1 to 64 characters of A-Z a-z 0-9 _ . : -");
    snprintf(t->id, sizeof(t->id), "%s", id);
    match = json_object_get(body, "match");
    if (!json_is_array(match) || json_array_size(match) < 1 ||
        json_array_size(match) > TRACE_MATCH_MAX) {
        snprintf(why, sizeof(why), "'match' must be an array of 1 to %d channel patterns",
                 TRACE_MATCH_MAX);
        return fail(t, code, inv, err, errlen, why);
    }
    for (size_t i = 0; i < json_array_size(match); i++) {
        const json_t *p = json_array_get(match, i);
        const char *s = json_string_value(p);
        if (!s || !pattern_topic_valid(s, json_string_length(p)))
            return fail(t, code, inv, err, errlen,
                        "'match' holds a bad pattern: channel names whose segments may "
                        "be '?' or, last, '*'");
        if (add_match(t, s) < 0)
            return fail(t, code, "out_of_memory", err, errlen, "out of memory");
    }
    if (limit > (long long)bd->limit_max)
        limit = (long long)bd->limit_max;
    if (duration > bd->duration_max_s)
        duration = bd->duration_max_s;
    if (int_field(body, "limit", (long long)bd->limit_max, &limit) < 0) {
        snprintf(why, sizeof(why), "'limit' must be an integer from 1 to %llu",
                 (unsigned long long)bd->limit_max);
        return fail(t, code, inv, err, errlen, why);
    }
    if (int_field(body, "duration_s", bd->duration_max_s, &duration) < 0) {
        snprintf(why, sizeof(why), "'duration_s' must be an integer from 1 to %lld",
                 (long long)bd->duration_max_s);
        return fail(t, code, inv, err, errlen, why);
    }
    t->limit = (uint64_t)limit;
    t->duration_s = duration;
    t->started_at = now;
    return t;
}

/* The stored fields. NULL on OOM. */
static json_t *stored_json(const trace *t)
{
    json_t *arr = json_array(), *o;
    for (size_t i = 0; arr && i < t->nmatch; i++)
        if (json_array_append_new(arr, json_string(t->match[i])) < 0) {
            json_decref(arr);
            return NULL;
        }
    if (!arr)
        return NULL;
    o = json_pack("{s:s, s:o, s:I, s:I, s:I}", "id", t->id, "match", arr, "limit",
                  (json_int_t)t->limit, "duration_s", (json_int_t)t->duration_s,
                  "started_at", (json_int_t)t->started_at);
    if (o && t->stopped_at)
        json_object_set_new(o, "stopped_at", json_integer(t->stopped_at));
    else if (o)
        json_object_set_new(o, "stopped_at", json_null());
    return o;
}

char *trace_to_text(const trace *t)
{
    json_t *o = stored_json(t);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return s;
}

trace *trace_from_text(const char *text, size_t len)
{
    json_t *o = json_loadb(text, len, 0, NULL), *match, *p;
    const char *id;
    trace *t = NULL;
    size_t i;

    if (!json_is_object(o))
        goto out;
    id = json_string_value(json_object_get(o, "id"));
    match = json_object_get(o, "match");
    if (!id || !trace_id_valid(id, strlen(id)) || !json_is_array(match) ||
        json_array_size(match) > TRACE_MATCH_MAX ||
        !json_is_integer(json_object_get(o, "limit")) ||
        !json_is_integer(json_object_get(o, "duration_s")) ||
        !json_is_integer(json_object_get(o, "started_at")) ||
        !(t = calloc(1, sizeof(*t))))
        goto out;
    snprintf(t->id, sizeof(t->id), "%s", id);
    json_array_foreach (match, i, p) {
        const char *s = json_string_value(p);
        if (!s || !pattern_topic_valid(s, strlen(s)) || add_match(t, s) < 0) {
            trace_free(t);
            t = NULL;
            goto out;
        }
    }
    t->limit = (uint64_t)json_integer_value(json_object_get(o, "limit"));
    t->duration_s = json_integer_value(json_object_get(o, "duration_s"));
    t->started_at = json_integer_value(json_object_get(o, "started_at"));
    t->stopped_at = json_integer_value(json_object_get(o, "stopped_at")); /* null: 0 */
out:
    json_decref(o);
    return t;
}

static int64_t ends_at(const trace *t)
{
    int64_t end = t->started_at + t->duration_s * 1000000;
    return t->stopped_at && t->stopped_at < end ? t->stopped_at : end;
}

bool trace_running(const trace *t, int64_t now)
{
    return !t->stopped_at && now < ends_at(t);
}

bool trace_matches(const trace *t, const char *name)
{
    for (size_t i = 0; i < t->nmatch; i++)
        if (pattern_match(t->match[i], name, NULL))
            return true;
    return false;
}

json_t *trace_to_json(const trace *t, int64_t now, uint64_t records)
{
    json_t *o = stored_json(t);
    if (!o)
        return NULL;
    json_object_set_new(o, "ends_at", json_integer(ends_at(t)));
    json_object_set_new(o, "state",
                        json_string(trace_running(t, now) ? "running" : "stopped"));
    json_object_set_new(o, "records", json_integer((json_int_t)records));
    return o;
}

trace *trace_dup(const trace *t)
{
    trace *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    *c = *t;
    c->nmatch = 0;
    for (size_t i = 0; i < t->nmatch; i++)
        if (add_match(c, t->match[i]) < 0) {
            trace_free(c);
            return NULL;
        }
    return c;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

char *trace_record_tail(const trace_seen *sn, size_t *len)
{
    const msg *m = sn->m;
    const target_rec *pub = m->pub;
    json_t *o = json_pack(
        "{s:I, s:s, s:s, s:s, s:o, s:I, s:I, s:o, s:o, s:I, s:I, s:o}", "time",
        (json_int_t)sn->at, "node", sn->node, "channel", sn->channel, "id", m->id,
        "event", str_or_null(m->event), "timestamp", (json_int_t)m->ts_us, "size",
        (json_int_t)m->data_len, "authid", str_or_null(pub ? pub->pub_authid : NULL),
        "authrole", str_or_null(pub ? pub->pub_authrole : NULL), "streams",
        (json_int_t)sn->streams, "connections", (json_int_t)sn->connections, "connection",
        str_or_null(sn->connection));
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!s)
        return NULL;
    s[0] = ','; /* "{...}" becomes ",...}": the seq goes before it */
    *len = strlen(s);
    return s;
}
