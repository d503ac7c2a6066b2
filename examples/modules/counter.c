/* counter.c - an example module: counts the events of each matching channel
 * and publishes {"channel", "count"} (event type "count") on
 * "<prefix><channel>" every N events of that channel, or every T
 * milliseconds for each channel whose count moved.
 *
 * Config: {"every": N (1..1000000; 0: not by count; default 10),
 *          "interval_ms": T (0: not by time, the default; else 100..86400000),
 *          "prefix": "stats." (default),
 *          "max_channels": M (channels counted, 1..100000, default 1000: the
 *                             events of a channel past it are an error)}
 * One of every and interval_ms at least. Counts live in memory and start
 * at 0 with the process. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <ssebroker/module.h>

#include "examples/modules/modconf.h"

typedef struct count {
    char *channel;
    unsigned long long n, told; /* events counted, and the count last published */
} count;

typedef struct counter {
    const ssebroker_host *h;
    long long every, interval_ms, max_channels;
    char *prefix;
    count *v; /* sorted by channel: found by binary search */
    size_t n;
    ssebroker_timer *timer;
} counter;

static void counter_free(void *st)
{
    counter *c = st;
    if (c->timer)
        c->h->timer_cancel(c->h, c->timer);
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i].channel);
    free(c->v);
    free(c->prefix);
    free(c);
}

/* Publish {"channel", "count"} for 'k' on "<prefix><channel>". */
static int tell(counter *c, count *k)
{
    char name[512];
    json_t *o = json_pack("{s:s, s:I}", "channel", k->channel, "count", (json_int_t)k->n);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    int rc = -1;
    json_decref(o);
    if (text && (size_t)snprintf(name, sizeof(name), "%s%s", c->prefix, k->channel) <
                    sizeof(name))
        rc = c->h->publish(c->h, name, "count", text, strlen(text));
    free(text);
    k->told = k->n;
    return rc == SSEBROKER_EDEPTH ? 0 : rc;
}

static void tick(void *arg)
{
    counter *c = arg;
    c->timer = NULL;
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].n != c->v[i].told && tell(c, &c->v[i]) < 0)
            c->h->error(c->h, "cannot publish the count of '%s'", c->v[i].channel);
    c->timer = c->h->timer_add(c->h, (unsigned)c->interval_ms, tick, c);
    if (!c->timer)
        c->h->error(c->h, "cannot set the timer: counts are published by number only");
}

static void *counter_init(const char *config, const ssebroker_host *h, char *err,
                          size_t errlen)
{
    static const char *const keys[] = {"every", "interval_ms", "prefix", "max_channels"};
    json_error_t jerr;
    json_t *conf = json_loads(config, 0, &jerr), *prefix;
    counter *c = calloc(1, sizeof(*c));

    if (!c || !conf) {
        snprintf(err, errlen, "%s", c ? jerr.text : "out of memory");
        goto fail;
    }
    c->h = h;
    if (modconf_keys(conf, keys, sizeof(keys) / sizeof(keys[0]), err, errlen) < 0 ||
        modconf_int(conf, "every", 10, 0, 1000000, &c->every, err, errlen) < 0 ||
        modconf_int(conf, "interval_ms", 0, 0, 86400000, &c->interval_ms, err, errlen) <
            0 ||
        modconf_int(conf, "max_channels", 1000, 1, 100000, &c->max_channels, err,
                    errlen) < 0)
        goto fail;
    if (c->interval_ms && c->interval_ms < 100) {
        snprintf(err, errlen, "\"interval_ms\" must be 0 or from 100 to 86400000");
        goto fail;
    }
    if (!c->every && !c->interval_ms) {
        snprintf(err, errlen, "one of \"every\" and \"interval_ms\" must be set");
        goto fail;
    }
    prefix = json_object_get(conf, "prefix");
    if (prefix && (!json_is_string(prefix) || json_string_length(prefix) > 64)) {
        snprintf(err, errlen, "\"prefix\" must be a string of at most 64 bytes");
        goto fail;
    }
    if (!(c->prefix = strdup(prefix ? json_string_value(prefix) : "stats."))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (c->interval_ms &&
        !(c->timer = h->timer_add(h, (unsigned)c->interval_ms, tick, c))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    json_decref(conf);
    return c;
fail:
    json_decref(conf);
    if (c)
        counter_free(c);
    return NULL;
}

/* The count of 'channel', made if new; NULL past max_channels (or OOM). */
static count *find(counter *c, const char *channel)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int cmp = strcmp(channel, c->v[mid].channel);
        if (cmp == 0)
            return &c->v[mid];
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (c->n >= (size_t)c->max_channels)
        return NULL;
    count *v = realloc(c->v, (c->n + 1) * sizeof(*v));
    char *name = strdup(channel);
    if (v)
        c->v = v;
    if (!v || !name) {
        free(name);
        return NULL;
    }
    memmove(&v[lo + 1], &v[lo], (c->n - lo) * sizeof(*v));
    v[lo] = (count){name, 0, 0};
    c->n++;
    return &v[lo];
}

static int counter_event(void *st, const ssebroker_event *ev)
{
    counter *c = st;
    count *k = find(c, ev->channel);
    if (!k)
        return -1; /* past max_channels: counted as this module's error */
    k->n++;
    if (c->every && k->n % (unsigned long long)c->every == 0)
        return tell(c, k);
    return 0;
}

const ssebroker_module_desc ssebroker_module = {
    .abi = SSEBROKER_MODULE_ABI,
    .name = "counter",
    .init = counter_init,
    .on_event = counter_event,
    .free = counter_free,
};
