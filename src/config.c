/* config.c - defaults and the JSON config file. */
#include "src/config.h"
#include "src/config_private.h"
#include "src/base/log.h"
#include "kv/kv.h"
#include "src/domain/pattern.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#define CONFIG_FILE_MAX (1024 * 1024) /* bytes a config file may hold */
#define MAX_BODY_MAX 1073741824
#define MAX_HEADERS_MIN 1024
#define MAX_HEADERS_MAX 1048576
#define HEARTBEAT_MAX 3600

/* ---- listen address ---- */

/* Characters a host may hold: a name or IPv4 address, or inside brackets an
 * IPv6 address with an optional zone ("fe80::1%eth0"). */
static int listen_host_char(char ch, int bracketed)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return 1;
    if (ch == '.' || ch == '-' || ch == '_')
        return 1;
    return bracketed && (ch == ':' || ch == '%');
}

int config_parse_listen(const char *s, char *host, size_t hostlen, int *port)
{
    const char *h, *colon;
    size_t hlen;
    int bracketed = 0;

    if (!s || !host || !port)
        return -1;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
        bracketed = 1;
        if (hlen == 0)
            return -1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        h = s;
        hlen = (size_t)(colon - s);
    }
    for (size_t i = 0; i < hlen; i++)
        if (!listen_host_char(h[i], bracketed))
            return -1; /* also catches an unbracketed IPv6 address */

    const char *p = colon + 1;
    long n = 0;
    if (*p == '\0')
        return -1;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        n = n * 10 + (*p - '0');
        if (n > 65535)
            return -1;
    }

    if (hlen == 0) {
        h = "0.0.0.0";
        hlen = strlen(h);
    }
    if (hlen + 1 > hostlen)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)n;
    return 0;
}

/* ---- defaults ---- */

/* The open-file limit less what the broker needs for itself (listener, store,
 * logs) and the reserve httpd keeps to refuse politely past the limit. */
int config_default_max_connections(void)
{
    struct rlimit rl;
    long long n = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        n = (long long)rl.rlim_cur;
    else if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        n = 1000000;
    n -= 400;
    return n < 16 ? 16 : n > 10000000 ? 10000000 : (int)n;
}

int config_init(config *c)
{
    memset(c, 0, sizeof(*c));
    strcpy(c->http.host, "127.0.0.1");
    c->http.port = 8080;
    c->broker.autocreate = true;
    chan_opts_default(&c->broker.defaults);
    c->http.max_body = 1048576;
    c->http.max_headers = 16384;
    c->broker.max_channels = 100000;
    c->broker.idle_ttl_s = 600;
    c->broker.sessions_retention_s = 3600;
    c->broker.sessions_max = 10000;
    c->broker.trace_max = 16;
    c->broker.trace_bounds = (trace_bounds){100000, 86400};
    c->http.max_connections = config_default_max_connections();
    c->broker.max_streams = 15000;
    c->broker.max_streams_per_channel = 10000;
    c->broker.max_patterns_per_stream = 64;
    c->broker.max_query_results = 1000;
    c->broker.max_pattern_streams = 10000;
    c->broker.max_pattern_bytes = (size_t)64 << 20;
    c->broker.max_connections_per_channel = 10000;
    c->http.stream_buffer = 1048576;
    c->http.max_response = 1048576;
    c->http.idle_timeout_s = 30;
    c->http.backoff_ms = 5000;
    c->http.max_retry_ms = 60000;
    c->http.max_delivery_lag_ms = 1000;
    c->broker.heartbeat_s = 15;
    c->broker.node_ttl_s = 300;
    c->broker.max_memory = (size_t)1 << 30;
    c->broker.memory_policy = BROKER_MEM_REJECT;
    c->log_level = LOG_INFO;
    c->store_type = strdup("memory");
    c->store_prefix = strdup("ssebroker:");
    c->store_maxbuffer = 100;
    c->store_buffertime_ms = 5;
    c->store_timeout_ms = KV_REDIS_REPLY_TIMEOUT_MS;
    c->broker.sync = true;
    c->modules_max_depth = MODHOST_DEPTH_DEFAULT;
    c->http.cors_origin = strdup("*");
    if (!c->store_type || !c->store_prefix || !c->http.cors_origin) {
        config_free(c);
        return -1;
    }
    return 0;
}

static void modules_free(module_spec *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].path);
        free(v[i].config);
        for (size_t j = 0; j < v[i].nmatch; j++)
            free(v[i].match[j]);
        free(v[i].match);
    }
    free(v);
}

void config_free(config *c)
{
    if (!c)
        return;
    modules_free(c->modules, c->nmodules);
    c->modules = NULL;
    c->nmodules = 0;
    free(c->path);
    free(c->store_type);
    free(c->store_url);
    free(c->store_prefix);
    free(c->http.cors_origin);
    c->path = c->store_type = c->store_url = c->store_prefix = c->http.cors_origin = NULL;
    auth_cfg_free(&c->auth);
}

/* ---- locating a field in the text ----
 *
 * jansson reports positions only for syntax errors, so for a bad value we find
 * the line of its key ourselves with a small scanner that knows strings and
 * nesting. Keys are compared byte for byte, so a key written with escapes is not
 * found; the caller then falls back to the parent's line or to line 1. */

static size_t skip_ws(const char *t, size_t len, size_t i)
{
    while (i < len && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
        i++;
    return i;
}

/* 'i' is at an opening quote; returns the offset just past the closing one. */
static size_t skip_string(const char *t, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (t[i] == '\\')
            i++;
        else if (t[i] == '"')
            return i + 1;
    }
    return len;
}

/* Offset of the opening quote of 'key' among the direct members of the object
 * whose '{' is at 'open', or -1. */
static long find_key(const char *t, size_t len, size_t open, const char *key)
{
    size_t klen = strlen(key), i = open + 1;
    int depth = 0;

    while (i < len) {
        char ch = t[i];

        if (ch == '"') {
            size_t end = skip_string(t, len, i);
            size_t after = skip_ws(t, len, end);
            if (depth == 0 && after < len && t[after] == ':' && end - i >= 2 &&
                end - i - 2 == klen && memcmp(t + i + 1, key, klen) == 0)
                return (long)i;
            i = end;
            continue;
        }
        if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (depth == 0)
                return -1;
            depth--;
        }
        i++;
    }
    return -1;
}

static int line_of(const char *t, size_t pos)
{
    int line = 1;

    for (size_t i = 0; i < pos; i++)
        if (t[i] == '\n')
            line++;
    return line;
}

/* The offset of the value of 'key' ('klen' bytes) among the members of the
 * object at 'open', or -1. '*line' is set to the key's line when it is
 * found. */
static long value_of(const char *t, size_t len, size_t open, const char *key, size_t klen,
                     int *line)
{
    char k[128];
    if (klen >= sizeof(k))
        return -1;
    memcpy(k, key, klen);
    k[klen] = '\0';
    long p = find_key(t, len, open, k);
    if (p < 0)
        return -1;
    *line = line_of(t, (size_t)p);
    size_t v = skip_ws(t, len, skip_string(t, len, (size_t)p));
    if (v >= len || t[v] != ':')
        return -1;
    v = skip_ws(t, len, v + 1);
    return v < len ? (long)v : -1;
}

/* The offset of the i-th element of the array whose '[' is at 'open', or -1. */
static long array_elem(const char *t, size_t len, size_t open, size_t i)
{
    int depth = 0;
    for (size_t p = open + 1, n = 0; p < len; p++) {
        char ch = t[p];
        if (depth == 0 && n == i && !strchr(" \t\r\n,]", ch))
            return (long)p;
        if (ch == '"') {
            p = skip_string(t, len, p) - 1;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (depth-- == 0)
                return -1;
        } else if (ch == ',' && depth == 0) {
            n++;
        }
    }
    return -1;
}

/* The '{' of the object one part of a path names among the members of the
 * object at 'open': "key" (the value of 'key'), or "key[i]" (the i-th element
 * of the array 'key'); 'n' bytes. -1 when it is not there or is no object.
 * '*line' is set to the line of the deepest of the key and the element
 * found. */
static long path_part(const char *t, size_t len, size_t open, const char *part, size_t n,
                      int *line)
{
    const char *br = memchr(part, '[', n);
    long v = value_of(t, len, open, part, br ? (size_t)(br - part) : n, line);
    if (v < 0)
        return -1;
    if (br) {
        char *end;
        unsigned long i = strtoul(br + 1, &end, 10);
        if (t[v] != '[' || end != part + n - 1 || *end != ']' ||
            (v = array_elem(t, len, (size_t)v, i)) < 0)
            return -1; /* '*line': the key's */
        *line = line_of(t, (size_t)v);
    }
    return t[v] == '{' ? v : -1;
}

/* The line of 'key' inside 'parent' (a dotted path from the top of object
 * keys, each maybe with an index: "modules[2]", "retention[0]"; NULL for
 * the top), else of the deepest part of 'parent' found, else 1. */
static int cfg_line(const cfg_ctx *x, const char *parent, const char *key)
{
    const char *t = x->text;
    size_t len = x->len, top = skip_ws(t, len, 0);
    long obj = t && top < len && t[top] == '{' ? (long)top : -1;
    int line = 1;

    for (const char *p = parent; obj >= 0 && p && *p;) {
        size_t n = strcspn(p, ".");
        obj = path_part(t, len, (size_t)obj, p, n, &line);
        p += n + (p[n] == '.');
        if (obj < 0 && (p[0] || key))
            return line; /* a part is missing, or is no object */
    }
    if (obj >= 0 && key) {
        long k = find_key(t, len, (size_t)obj, key);
        if (k >= 0)
            line = line_of(t, (size_t)k);
    }
    return line;
}

/* Write "NAME:LINE: field 'FIELD': <message>" to the error buffer; -1. */
static int fail_at(const cfg_ctx *x, int line, const char *field, const char *fmt,
                   va_list ap)
{
    char text[256];
    if (!x->err || !x->errlen)
        return -1;
    vsnprintf(text, sizeof(text), fmt, ap);
    snprintf(x->err, x->errlen, "%s:%d: field '%s': %s", x->name, line, field, text);
    return -1;
}

/* Write "NAME:LINE: field 'parent.key': <message>" to the error buffer and
 * return -1. 'key' may be NULL when the parent itself is at fault. */
int cfg_fail(const cfg_ctx *x, const char *parent, const char *key, const char *fmt, ...)
{
    char field[256];
    va_list ap;
    if (parent && key)
        snprintf(field, sizeof(field), "%s.%s", parent, key);
    else
        snprintf(field, sizeof(field), "%s", parent ? parent : key);
    va_start(ap, fmt);
    fail_at(x, cfg_line(x, parent, key), field, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- applying the parsed file ---- */

int cfg_int(const cfg_ctx *x, const char *parent, const char *key, json_t *v,
            long long lo, long long hi, long long *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return cfg_fail(x, parent, key, "must be an integer from %lld to %lld", lo, hi);
    *out = json_integer_value(v);
    return 0;
}

int cfg_set_str(const cfg_ctx *x, char **dst, const char *src)
{
    char *s = strdup(src);

    if (!s) {
        if (x->err && x->errlen)
            snprintf(x->err, x->errlen, "%s: out of memory", x->name);
        return -1;
    }
    free(*dst);
    *dst = s;
    return 0;
}

static int valid_store_url(const char *url)
{
    return (strncmp(url, "redis://", 8) == 0 && url[8]) ||
           (strncmp(url, "unix:///", 8) == 0 && url[8]);
}

int config_set_store_url(config *c, const char *url, char *err, size_t errlen)
{
    char *type, *u;
    if (!valid_store_url(url)) {
        snprintf(err, errlen,
                 "'%s': expected redis://[:password@]host:port/db or unix:///path", url);
        return -1;
    }
    if (!(type = strdup("redis")) || !(u = strdup(url))) {
        free(type);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(c->store_type);
    free(c->store_url);
    c->store_type = type;
    c->store_url = u;
    return 0;
}

static int cfg_store(const cfg_ctx *x, config *c, json_t *obj)
{
    const char *key;
    json_t *v;
    long long n;

    if (!json_is_object(obj))
        return cfg_fail(x, "store", NULL, "must be an object");
    json_object_foreach (obj, key, v) {
        if (strcmp(key, "type") == 0) {
            if (!json_is_string(v))
                return cfg_fail(x, "store", key, "must be a string");
            const char *type = json_string_value(v);
            if (strcmp(type, "memory") != 0 && strcmp(type, "redis") != 0)
                return cfg_fail(x, "store", key, "must be \"memory\" or \"redis\"");
            if (cfg_set_str(x, &c->store_type, type) < 0)
                return -1;
        } else if (strcmp(key, "url") == 0) {
            if (!json_is_string(v) || !valid_store_url(json_string_value(v)))
                return cfg_fail(
                    x, "store", key,
                    "must be redis://[:password@]host:port/db or unix:///path");
            if (cfg_set_str(x, &c->store_url, json_string_value(v)) < 0)
                return -1;
        } else if (strcmp(key, "prefix") == 0) {
            if (!json_is_string(v) || json_string_length(v) > 64 ||
                strchr(json_string_value(v), '/'))
                return cfg_fail(x, "store", key,
                                "must be a string of at most 64 bytes without '/'");
            if (cfg_set_str(x, &c->store_prefix, json_string_value(v)) < 0)
                return -1;
        } else if (strcmp(key, "maxbuffer") == 0) {
            if (cfg_int(x, "store", key, v, 1, 100000, &n) < 0)
                return -1;
            c->store_maxbuffer = (int)n;
        } else if (strcmp(key, "buffertime_ms") == 0) {
            if (cfg_int(x, "store", key, v, 0, 10000, &n) < 0)
                return -1;
            c->store_buffertime_ms = (int)n;
        } else if (strcmp(key, "timeout_ms") == 0) {
            if (cfg_int(x, "store", key, v, 100, 600000, &n) < 0)
                return -1;
            c->store_timeout_ms = (int)n;
        } else if (strcmp(key, "sync") == 0) {
            if (!json_is_boolean(v))
                return cfg_fail(x, "store", key, "must be true or false");
            c->broker.sync = json_is_true(v);
        } else {
            return cfg_fail(x, "store", key, "unknown key");
        }
    }
    if (strcmp(c->store_type, "redis") == 0 && !c->store_url &&
        cfg_set_str(x, &c->store_url, "redis://127.0.0.1:6379/0") < 0)
        return -1;
    return 0;
}

/* An integer field of the config set from a key of a section, in bounds. */
enum { FIELD_INT, FIELD_SIZE, FIELD_U64, FIELD_I64 }; /* its C type */
typedef struct cfg_field {
    const char *key;
    long long lo, hi;
    size_t off; /* offsetof the field in config */
    int type;   /* FIELD_* */
} cfg_field;

/* Set the field of 'fields' (n of them) that 'key' names to 'v'. 0; -1 with
 * the error set if 'v' is out of its bounds; 1 if 'key' names none. */
static int cfg_field_set(const cfg_ctx *x, config *c, const char *section,
                         const char *key, json_t *v, const cfg_field *fields, size_t n)
{
    const cfg_field *f = NULL;
    long long num;
    char *at;
    for (size_t i = 0; i < n; i++)
        if (strcmp(key, fields[i].key) == 0)
            f = &fields[i];
    if (!f)
        return 1;
    if (cfg_int(x, section, key, v, f->lo, f->hi, &num) < 0)
        return -1;
    at = (char *)c + f->off;
    if (f->type == FIELD_SIZE)
        *(size_t *)at = (size_t)num;
    else if (f->type == FIELD_U64)
        *(uint64_t *)at = (uint64_t)num;
    else if (f->type == FIELD_I64)
        *(int64_t *)at = num;
    else
        *(int *)at = (int)num;
    return 0;
}

/* A section whose keys are all integer fields. */
static int cfg_int_section(const cfg_ctx *x, config *c, const char *section, json_t *obj,
                           const cfg_field *fields, size_t n)
{
    const char *key;
    json_t *v;
    int rc;
    if (!json_is_object(obj))
        return cfg_fail(x, section, NULL, "must be an object");
    json_object_foreach (obj, key, v) {
        if ((rc = cfg_field_set(x, c, section, key, v, fields, n)) > 0)
            return cfg_fail(x, section, key, "unknown key");
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* The "limits" object: every key an integer field of the config, in bounds. */
static const cfg_field limit_fields[] = {
    {"max_body", 1, MAX_BODY_MAX, offsetof(config, http.max_body), FIELD_SIZE},
    {"max_headers", MAX_HEADERS_MIN, MAX_HEADERS_MAX, offsetof(config, http.max_headers),
     FIELD_SIZE},
    {"max_channels", 1, 10000000, offsetof(config, broker.max_channels), FIELD_INT},
    {"channel_idle_ttl_s", 0, 31536000, offsetof(config, broker.idle_ttl_s), FIELD_INT},
    {"max_connections", 1, 10000000, offsetof(config, http.max_connections), FIELD_INT},
    {"max_streams", 1, 10000000, offsetof(config, broker.max_streams), FIELD_INT},
    {"max_streams_per_channel", 1, 10000000,
     offsetof(config, broker.max_streams_per_channel), FIELD_INT},
    {"max_patterns_per_stream", 1, 1024, offsetof(config, broker.max_patterns_per_stream),
     FIELD_INT},
    {"max_pattern_streams", 0, 10000000, offsetof(config, broker.max_pattern_streams),
     FIELD_INT},
    {"max_pattern_bytes", 65536, 1099511627776LL,
     offsetof(config, broker.max_pattern_bytes), FIELD_SIZE},
    {"max_query_results", 1, 100000, offsetof(config, broker.max_query_results),
     FIELD_INT},
    {"max_connections_per_channel", 1, 10000000,
     offsetof(config, broker.max_connections_per_channel), FIELD_INT},
    {"stream_buffer", 4096, 1073741824, offsetof(config, http.stream_buffer), FIELD_SIZE},
    {"max_response", 4096, 1073741824, offsetof(config, http.max_response), FIELD_SIZE},
    {"idle_timeout_s", 1, 3600, offsetof(config, http.idle_timeout_s), FIELD_INT},
    {"backoff_ms", 0, 86400000, offsetof(config, http.backoff_ms), FIELD_INT},
    {"max_memory", 1048576, 1099511627776LL, offsetof(config, broker.max_memory),
     FIELD_SIZE},
    {"max_retry_ms", 0, 86400000, offsetof(config, http.max_retry_ms), FIELD_INT},
    {"max_delivery_lag_ms", 0, 3600000, offsetof(config, http.max_delivery_lag_ms),
     FIELD_INT},
};

static int cfg_limits(const cfg_ctx *x, config *c, json_t *obj)
{
    const char *key;
    json_t *v;
    int rc;

    if (!json_is_object(obj))
        return cfg_fail(x, "limits", NULL, "must be an object");
    json_object_foreach (obj, key, v) {
        if (strcmp(key, "memory_policy") == 0) {
            int p =
                json_is_string(v) ? broker_memory_policy_parse(json_string_value(v)) : -1;
            if (p < 0)
                return cfg_fail(x, "limits", key, "must be \"reject\" or \"evict\"");
            c->broker.memory_policy = p;
            continue;
        }
        if ((rc = cfg_field_set(x, c, "limits", key, v, limit_fields,
                                sizeof(limit_fields) / sizeof(limit_fields[0]))) > 0)
            return cfg_fail(x, "limits", key, "unknown key");
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* The "sessions" object: the archive's bounds. */
static const cfg_field session_fields[] = {
    {"retention_s", 0, 31536000, offsetof(config, broker.sessions_retention_s),
     FIELD_INT},
    {"max", 1, 10000000, offsetof(config, broker.sessions_max), FIELD_INT},
};

/* The "traces" object: how many, how large, how long. */
static const cfg_field trace_fields[] = {
    {"max", 1, 1000, offsetof(config, broker.trace_max), FIELD_INT},
    {"max_records", 1, 10000000, offsetof(config, broker.trace_bounds.limit_max),
     FIELD_U64},
    {"max_duration_s", 1, 31536000, offsetof(config, broker.trace_bounds.duration_max_s),
     FIELD_I64},
};

static int cfg_channel_defaults(const cfg_ctx *x, config *c, json_t *obj)
{
    chan_opts_error e;

    if (!json_is_object(obj))
        return cfg_fail(x, "channel_defaults", NULL, "must be an object");
    if (chan_opts_apply(&c->broker.defaults, obj, &e) == 0)
        return 0;
    if (e.unknown)
        return cfg_fail(x, "channel_defaults", e.key, "unknown key");
    return cfg_fail(x, "channel_defaults", e.key, "must be an integer from %d to %d",
                    e.min, e.max);
}

/* The "retention" list: [{"match": PATTERN, "history": N, "history_age_s": S,
 * "history_bytes": B}...], each key but match optional; the first rule whose
 * pattern matches a new channel's name overlays channel_defaults. */
static int cfg_retention(const cfg_ctx *x, config *c, json_t *list)
{
    static const struct {
        const char *key;
        size_t off;
        int max;
    } keys[] = {
        {"history", offsetof(broker_retention, history), CHAN_HISTORY_MAX},
        {"history_age_s", offsetof(broker_retention, history_age_s),
         CHAN_HISTORY_AGE_MAX},
        {"history_bytes", offsetof(broker_retention, history_bytes),
         CHAN_HISTORY_BYTES_MAX},
    };
    size_t i;
    json_t *rule;
    char parent[32];

    if (!json_is_array(list) || json_array_size(list) > BROKER_RETENTION_MAX)
        return cfg_fail(x, NULL, "retention", "must be a list of at most %d rules",
                        BROKER_RETENTION_MAX);
    json_array_foreach (list, i, rule) {
        broker_retention *r = &c->broker.retention[i];
        const char *key, *match;
        json_t *v;
        long long n;
        snprintf(parent, sizeof(parent), "retention[%zu]", i);
        if (!json_is_object(rule))
            return cfg_fail(x, parent, NULL, "must be an object");
        *r = (broker_retention){.history = -1, .history_age_s = -1, .history_bytes = -1};
        json_object_foreach (rule, key, v) {
            size_t k;
            if (strcmp(key, "match") == 0) {
                match = json_string_value(v);
                if (!match || !pattern_topic_valid(match, json_string_length(v)))
                    return cfg_fail(x, parent, key,
                                    "must be a channel name or pattern ('?' for one "
                                    "segment, '*' last for zero or more)");
                strcpy(r->match, match);
                continue;
            }
            for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
                if (strcmp(key, keys[k].key) == 0)
                    break;
            if (k == sizeof(keys) / sizeof(keys[0]))
                return cfg_fail(x, parent, key, "unknown key");
            if (cfg_int(x, parent, key, v, 0, keys[k].max, &n) < 0)
                return -1;
            *(int *)((char *)r + keys[k].off) = (int)n;
        }
        if (!r->match[0])
            return cfg_fail(x, parent, "match", "is required");
    }
    c->broker.nretention = json_array_size(list);
    return 0;
}

/* "*", one origin, or a list of origins (kept space-separated: an origin
 * holds no blank). */
static int cfg_cors(const cfg_ctx *x, config *c, json_t *v)
{
    static const char bad[] =
        "must be \"*\", an origin (\"https://app.example\") or a list "
        "of origins, without blanks, CR, LF or NUL";
    size_t n = json_is_array(v) ? json_array_size(v) : 1, total = 0;
    char *list, *p;
    if (n == 0 || n > 100)
        return cfg_fail(x, NULL, "cors_origin", "%s (1 to 100)", bad);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
        const char *s = json_string_value(e);
        size_t slen = json_string_length(e);
        if (!s || slen == 0 || slen > 1024 || strlen(s) != slen ||
            strpbrk(s, " \t\r\n") || (n > 1 && strcmp(s, "*") == 0))
            return cfg_fail(x, NULL, "cors_origin", "%s", bad);
        total += slen + 1;
    }
    if (!(list = malloc(total)))
        return cfg_fail(x, NULL, "cors_origin", "out of memory");
    p = list;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
        if (i)
            *p++ = ' ';
        p = stpcpy(p, json_string_value(e));
    }
    free(c->http.cors_origin);
    c->http.cors_origin = list;
    return 0;
}

/* ---- modules ---- */

/* The line of 'field' (NULL: the entry) of the i-th module, else of the
 * entry, else of "modules". */
static int module_line(const char *t, size_t len, size_t i, const char *field)
{
    char parent[32];
    snprintf(parent, sizeof(parent), "modules[%zu]", i);
    return cfg_line(&(cfg_ctx){.text = t, .len = len}, parent, field);
}

static int module_fail(const cfg_ctx *x, size_t i, const char *field, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));
static int module_fail(const cfg_ctx *x, size_t i, const char *field, const char *fmt,
                       ...)
{
    char name[128];
    va_list ap;
    snprintf(name, sizeof(name), "modules[%zu]%s%s", i, field ? "." : "",
             field ? field : "");
    va_start(ap, fmt);
    fail_at(x, module_line(x->text, x->len, i, field), name, fmt, ap);
    va_end(ap);
    return -1;
}

static bool module_name_ok(const char *s, size_t len)
{
    if (len < 1 || len > MODHOST_NAME_MAX || strlen(s) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-' || s[i] == '.'))
            return false;
    return true;
}

/* One entry of "modules" into 'm' (zeroed; freed by the caller either way). */
static int cfg_module(const cfg_ctx *x, size_t i, json_t *o, module_spec *m)
{
    json_t *name = json_object_get(o, "name"), *path = json_object_get(o, "path"),
           *match = json_object_get(o, "match"), *conf = json_object_get(o, "config");
    const char *key;
    json_t *v;

    if (!json_is_object(o))
        return module_fail(x, i, NULL,
                           "must be an object {\"name\", \"path\", "
                           "\"match\", \"config\"}");
    json_object_foreach (o, key, v)
        if (strcmp(key, "name") && strcmp(key, "path") && strcmp(key, "match") &&
            strcmp(key, "config"))
            return module_fail(x, i, key, "unknown key");
    if (!json_is_string(name) ||
        !module_name_ok(json_string_value(name), json_string_length(name)))
        return module_fail(x, i, "name",
                           "must be a string of 1 to %d letters, digits, '_', '-', '.'",
                           MODHOST_NAME_MAX);
    if (!json_is_string(path) || json_string_length(path) == 0 ||
        json_string_length(path) > 4096 ||
        strlen(json_string_value(path)) != json_string_length(path))
        return module_fail(x, i, "path",
                           "must be the path of the module's shared object");
    if (!json_is_array(match) || json_array_size(match) == 0 ||
        json_array_size(match) > MODHOST_MATCH_MAX)
        return module_fail(x, i, "match", "must be a list of 1 to %d channel patterns",
                           MODHOST_MATCH_MAX);
    if (conf && !json_is_object(conf))
        return module_fail(x, i, "config", "must be an object");
    m->line = module_line(x->text, x->len, i, NULL);
    m->line_path = module_line(x->text, x->len, i, "path");
    m->line_config = module_line(x->text, x->len, i, conf ? "config" : NULL);
    if (!(m->name = strdup(json_string_value(name))) ||
        !(m->path = strdup(json_string_value(path))) ||
        !(m->match = calloc(json_array_size(match), sizeof(char *))) ||
        !(m->config = conf ? json_dumps(conf, JSON_COMPACT) : strdup("{}")))
        return module_fail(x, i, NULL, "out of memory");
    json_array_foreach (match, m->nmatch, v) {
        const char *p = json_string_value(v);
        if (!p || !pattern_topic_valid(p, json_string_length(v)))
            return module_fail(x, i, "match",
                               "entry %zu must be a channel name or pattern ('?', a "
                               "last '*')",
                               m->nmatch);
        if (!(m->match[m->nmatch] = strdup(p)))
            return module_fail(x, i, NULL, "out of memory");
    }
    return 0;
}

static int cfg_modules(const cfg_ctx *x, config *c, json_t *arr)
{
    size_t n = json_array_size(arr);
    module_spec *v = NULL;

    if (!json_is_array(arr) || n > MODHOST_MAX)
        return cfg_fail(x, NULL, "modules", "must be a list of at most %d modules",
                        MODHOST_MAX);
    if (n && !(v = calloc(n, sizeof(*v))))
        return cfg_fail(x, NULL, "modules", "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (cfg_module(x, i, json_array_get(arr, i), &v[i]) < 0) {
            modules_free(v, n);
            return -1;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(v[j].name, v[i].name) == 0) {
                modules_free(v, n);
                return module_fail(
                    x, i, "name", "'%s' is the name of modules[%zu] too",
                    json_string_value(json_object_get(json_array_get(arr, i), "name")),
                    j);
            }
    }
    modules_free(c->modules, c->nmodules);
    c->modules = n ? v : NULL;
    c->nmodules = n;
    return 0;
}

void config_module_where(const config *c, size_t i, const char *field, char *buf,
                         size_t len)
{
    const module_spec *m = i < c->nmodules ? &c->modules[i] : NULL;
    int line = !m                             ? 1
               : strcmp(field, "path") == 0   ? m->line_path
               : strcmp(field, "config") == 0 ? m->line_config
                                              : m->line;
    snprintf(buf, len, "%s:%d: field 'modules[%zu].%s'", c->path ? c->path : "config",
             line, i, field);
}

static int cfg_apply(const cfg_ctx *x, config *c, json_t *root)
{
    const char *key;
    json_t *v;
    long long n;

    json_object_foreach (root, key, v) {
        if (strcmp(key, "listen") == 0) {
            if (!json_is_string(v) ||
                config_parse_listen(json_string_value(v), c->http.host,
                                    sizeof(c->http.host), &c->http.port) < 0)
                return cfg_fail(x, NULL, key,
                                "must be \"HOST:PORT\", \"[IPV6]:PORT\" or \":PORT\" "
                                "with a port from 0 to 65535");
        } else if (strcmp(key, "store") == 0) {
            if (cfg_store(x, c, v) < 0)
                return -1;
        } else if (strcmp(key, "autocreate") == 0) {
            if (!json_is_boolean(v))
                return cfg_fail(x, NULL, key, "must be true or false");
            c->broker.autocreate = json_is_true(v);
        } else if (strcmp(key, "channel_defaults") == 0) {
            if (cfg_channel_defaults(x, c, v) < 0)
                return -1;
        } else if (strcmp(key, "limits") == 0) {
            if (cfg_limits(x, c, v) < 0)
                return -1;
        } else if (strcmp(key, "retention") == 0) {
            if (cfg_retention(x, c, v) < 0)
                return -1;
        } else if (strcmp(key, "sessions") == 0) {
            if (cfg_int_section(x, c, key, v, session_fields,
                                sizeof(session_fields) / sizeof(session_fields[0])) < 0)
                return -1;
        } else if (strcmp(key, "traces") == 0) {
            if (cfg_int_section(x, c, key, v, trace_fields,
                                sizeof(trace_fields) / sizeof(trace_fields[0])) < 0)
                return -1;
        } else if (strcmp(key, "threads") == 0) {
            if (cfg_int(x, NULL, key, v, 0, THREADS_MAX, &n) < 0)
                return -1;
            c->http.threads = (int)n;
        } else if (strcmp(key, "heartbeat_s") == 0) {
            if (cfg_int(x, NULL, key, v, 1, HEARTBEAT_MAX, &n) < 0)
                return -1;
            c->broker.heartbeat_s = (int)n;
        } else if (strcmp(key, "node_ttl_s") == 0) {
            if (cfg_int(x, NULL, key, v, 10, 604800, &n) < 0)
                return -1;
            c->broker.node_ttl_s = (int)n;
        } else if (strcmp(key, "cors_origin") == 0) {
            if (cfg_cors(x, c, v) < 0)
                return -1;
        } else if (strcmp(key, "auth") == 0) {
            if (cfg_auth(x, c, v) < 0)
                return -1;
        } else if (strcmp(key, "log_format") == 0) {
            int format = json_is_string(v) ? log_format_parse(json_string_value(v)) : -1;
            if (format < 0)
                return cfg_fail(x, NULL, key, "must be \"text\" or \"json\"");
            c->log_format = format;
        } else if (strcmp(key, "access_log") == 0) {
            if (!json_is_boolean(v))
                return cfg_fail(x, NULL, key, "must be true or false");
            c->access_log = json_is_true(v);
            c->broker.access_log = c->http.access_log = c->access_log;
        } else if (strcmp(key, "modules") == 0) {
            if (cfg_modules(x, c, v) < 0)
                return -1;
        } else if (strcmp(key, "modules_max_depth") == 0) {
            if (cfg_int(x, NULL, key, v, 1, 64, &n) < 0)
                return -1;
            c->modules_max_depth = (int)n;
        } else if (strcmp(key, "log_level") == 0) {
            int level = json_is_string(v) ? log_level_parse(json_string_value(v)) : -1;
            if (level < 0)
                return cfg_fail(x, NULL, key, "must be one of debug, info, warn, error");
            c->log_level = level;
        } else {
            return cfg_fail(x, NULL, key, "unknown key");
        }
    }
    return 0;
}

/* '*dst' = a copy of 'src', or NULL if 'src' is NULL. Returns 0 or -1 (OOM). */
static int dup_or_null(char **dst, const char *src)
{
    *dst = src ? strdup(src) : NULL;
    return src && !*dst ? -1 : 0;
}

/* Parse 'len' bytes of 'text' over 'c'; 'path' (may be NULL) becomes c->path. */
static int config_load_buf(config *c, const char *text, size_t len, const char *name,
                           const char *path, char *err, size_t errlen)
{
    cfg_ctx x = {.name = name, .text = text, .len = len, .err = err, .errlen = errlen};
    json_error_t jerr;
    config tmp = *c;
    int rc = -1;

    /* Work on a deep copy so 'c' is untouched unless everything applies. */
    tmp.path = tmp.store_type = tmp.store_url = tmp.store_prefix = tmp.http.cors_origin =
        NULL;
    memset(&tmp.auth, 0, sizeof(tmp.auth)); /* a file's "auth" replaces what was */
    tmp.modules = NULL;                     /* ... and so do its "modules" */
    tmp.nmodules = 0;
    if (dup_or_null(&tmp.path, path ? path : c->path) < 0 ||
        dup_or_null(&tmp.store_type, c->store_type) < 0 ||
        dup_or_null(&tmp.store_url, c->store_url) < 0 ||
        dup_or_null(&tmp.store_prefix, c->store_prefix) < 0 ||
        dup_or_null(&tmp.http.cors_origin, c->http.cors_origin) < 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", name);
        config_free(&tmp);
        return -1;
    }

    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (err && errlen)
            snprintf(err, errlen, "%s:%d: invalid JSON: %s", name,
                     jerr.line > 0 ? jerr.line : 1, jerr.text);
        goto out;
    }
    if (!json_is_object(root)) {
        if (err && errlen)
            snprintf(err, errlen, "%s:%d: invalid JSON: the top level must be an object",
                     name, line_of(text, skip_ws(text, len, 0)));
        goto out;
    }
    if (cfg_apply(&x, &tmp, root) < 0)
        goto out;

    if (!tmp.auth.present) { /* none in this file: keep what 'c' had */
        tmp.auth = c->auth;
        memset(&c->auth, 0, sizeof(c->auth));
    }
    if (!json_object_get(root, "modules")) { /* the same */
        tmp.modules = c->modules;
        tmp.nmodules = c->nmodules;
        c->modules = NULL;
        c->nmodules = 0;
    }
    config_free(c);
    *c = tmp;
    rc = 0;
out:
    if (rc < 0)
        config_free(&tmp);
    json_decref(root);
    return rc;
}

int config_load_string(config *c, const char *text, const char *name, char *err,
                       size_t errlen)
{
    if (!name)
        name = "config";
    if (!text) {
        if (err && errlen)
            snprintf(err, errlen, "%s: no text", name);
        return -1;
    }
    return config_load_buf(c, text, strlen(text), name, NULL, err, errlen);
}

int config_load_file(config *c, const char *path, char *err, size_t errlen)
{
    FILE *f;
    char *buf = NULL;
    size_t len;
    int rc = -1;

    if (!path) {
        if (err && errlen)
            snprintf(err, errlen, "config: no file name");
        return -1;
    }
    f = fopen(path, "rb");
    if (!f) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    /* Read one byte more than allowed to tell "exactly 1 MiB" from "too big". */
    buf = malloc(CONFIG_FILE_MAX + 1);
    if (!buf) {
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    len = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
    if (ferror(f)) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    if (len > CONFIG_FILE_MAX) {
        if (err && errlen)
            snprintf(err, errlen, "%s: file is larger than %d bytes", path,
                     CONFIG_FILE_MAX);
        goto out;
    }
    rc = config_load_buf(c, buf, len, path, path, err, errlen);
out:
    free(buf);
    fclose(f);
    return rc;
}

/* ---- checks of the whole configuration ---- */

int config_host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) ||
               (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return 0; /* a name, or "" for every address */
}

int config_check(const config *c, char *err, size_t errlen)
{
    if (!c->auth.present && !config_host_is_loopback(c->http.host)) {
        const char *what = "everyone may publish, subscribe and delete channels: add an "
                           "\"auth\" section (an \"anonymous_role\" allowing everything "
                           "keeps the broker open, on purpose)";
        if (c->path)
            snprintf(err, errlen,
                     "%s:1: field 'auth': required to listen on '%s', not a loopback "
                     "address: without it %s",
                     c->path, c->http.host[0] ? c->http.host : "*", what);
        else
            snprintf(
                err, errlen,
                "--listen '%s': not a loopback address, and no config file gives the "
                "'auth' field: without it %s",
                c->http.host[0] ? c->http.host : "*", what);
        return -1;
    }
    return 0;
}
