/* prom.c - the Prometheus text format (see prom.h). */
#include "src/base/prom.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <event2/buffer.h>

void prom_hist_init(prom_hist *h, const double *bounds, size_t nbounds)
{
    memset(h, 0, sizeof(*h));
    h->bounds = bounds;
    h->nbounds = nbounds > PROM_BUCKETS_MAX ? PROM_BUCKETS_MAX : nbounds;
}

void prom_hist_observe(prom_hist *h, double v)
{
    size_t i = 0;
    while (i < h->nbounds && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

void prom_head(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s ", name);
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            evbuffer_add(out, "\\\\", 2);
        else if (*p == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, p, 1);
    }
    evbuffer_add_printf(out, "\n# TYPE %s %s\n", name, type);
}

static void sample_name(struct evbuffer *out, const char *name, const char *labels)
{
    if (labels && *labels)
        evbuffer_add_printf(out, "%s{%s} ", name, labels);
    else
        evbuffer_add_printf(out, "%s ", name);
}

void prom_sample(struct evbuffer *out, const char *name, const char *labels, double value)
{
    sample_name(out, name, labels);
    if (isnan(value))
        evbuffer_add(out, "NaN\n", 4);
    else if (isinf(value))
        evbuffer_add_printf(out, "%cInf\n", value < 0 ? '-' : '+');
    else
        evbuffer_add_printf(out, "%.15g\n", value);
}

void prom_sample_u(struct evbuffer *out, const char *name, const char *labels,
                   unsigned long long value)
{
    sample_name(out, name, labels);
    evbuffer_add_printf(out, "%llu\n", value);
}

void prom_hist_write(struct evbuffer *out, const char *name, const char *labels,
                     const prom_hist *h)
{
    const char *sep = labels && *labels ? "," : "";
    const char *lb = labels ? labels : "";
    uint64_t cum = 0;
    for (size_t i = 0; i <= h->nbounds; i++) {
        cum += h->counts[i];
        if (i < h->nbounds)
            evbuffer_add_printf(out, "%s_bucket{%s%sle=\"%.15g\"} %llu\n", name, lb, sep,
                                h->bounds[i], (unsigned long long)cum);
        else
            evbuffer_add_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, lb, sep,
                                (unsigned long long)cum);
    }
    evbuffer_add_printf(out, "%s_sum", name);
    if (*lb)
        evbuffer_add_printf(out, "{%s}", lb);
    evbuffer_add_printf(out, " %.15g\n%s_count", h->sum, name);
    if (*lb)
        evbuffer_add_printf(out, "{%s}", lb);
    evbuffer_add_printf(out, " %llu\n", (unsigned long long)h->count);
}

int prom_label(char *buf, size_t len, const char *key, const char *value)
{
    size_t n = strlen(buf), start = n;
    int w = snprintf(buf + n, len - n, "%s%s=\"", n ? "," : "", key);
    if (w < 0 || (size_t)w >= len - n)
        goto full;
    n += (size_t)w;
    for (const char *p = value; *p; p++) {
        const char *esc = *p == '\\'   ? "\\\\"
                          : *p == '"'  ? "\\\""
                          : *p == '\n' ? "\\n"
                                       : NULL;
        size_t el = esc ? 2 : 1;
        if (n + el + 2 > len)
            goto full;
        memcpy(buf + n, esc ? esc : p, el);
        n += el;
    }
    if (n + 2 > len)
        goto full;
    buf[n++] = '"';
    buf[n] = '\0';
    return 0;
full:
    buf[start] = '\0';
    return -1;
}
