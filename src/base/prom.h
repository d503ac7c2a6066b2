/* prom.h - the Prometheus text exposition format (0.0.4), written by hand:
 * HELP and TYPE lines, samples, escaped label values, and histograms with
 * fixed buckets whose observations are plain integer increments. */
#ifndef PROM_H
#define PROM_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define PROM_BUCKETS_MAX 16

/* A histogram: 'bounds' (ascending upper bounds, borrowed, usually a static
 * array) and a count per bucket (not cumulative: the writer sums them), the
 * sum of the observations and their count. Zeroed is empty. Owned by one
 * thread: observing is an increment, no lock. */
typedef struct prom_hist {
    const double *bounds;
    size_t nbounds;                        /* at most PROM_BUCKETS_MAX */
    uint64_t counts[PROM_BUCKETS_MAX + 1]; /* the last one: above every bound */
    double sum;
    uint64_t count;
} prom_hist;

/* Empty 'h' over 'bounds' (borrowed; at most PROM_BUCKETS_MAX of them). */
void prom_hist_init(prom_hist *h, const double *bounds, size_t nbounds);
/* Count one observation of 'v'. */
void prom_hist_observe(prom_hist *h, double v);

/* "# HELP name help" and "# TYPE name type" ('help' is escaped). */
void prom_head(struct evbuffer *out, const char *name, const char *type,
               const char *help);
/* One sample: name{labels} value. 'labels' is already formatted (see
 * prom_label) without braces, or NULL or "" for none. */
void prom_sample(struct evbuffer *out, const char *name, const char *labels,
                 double value);
/* The same for an integer value (exact beyond 2^53). */
void prom_sample_u(struct evbuffer *out, const char *name, const char *labels,
                   unsigned long long value);
/* The samples of a histogram: name_bucket{labels,le="..."} (cumulative, the
 * last le="+Inf"), name_sum and name_count. */
void prom_hist_write(struct evbuffer *out, const char *name, const char *labels,
                     const prom_hist *h);

/* Append 'key="value"' to 'buf' (of 'len' bytes, NUL-terminated, a ','
 * first when it is not empty), 'value' escaped (\\, \", \n). Returns 0, or -1
 * if it does not fit ('buf' unchanged). */
int prom_label(char *buf, size_t len, const char *key, const char *value);

#endif
