/* http_metrics.h - GET /metrics: this process's figures in the Prometheus text
 * format (0.0.4), and under --workers every worker's.
 *
 * Under --workers ('shared'), each worker writes its own series, labelled
 * worker="<index>" and node="<node id>", to the store every NODE_HEARTBEAT_S
 * (key "mx/<node id>"), and a scrape on any worker answers its own fresh
 * series and every other worker's last ones (at most NODE_HEARTBEAT_S old;
 * ones older than NODE_TTL_S are left out: that worker is gone). */
#ifndef HTTP_METRICS_H
#define HTTP_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "src/broker/broker.h"
#include "src/http/http_front.h"
#include "src/http/httpd.h"
#include "src/module/modhost.h"

struct event_base;

/* What the HTTP layer counts itself, read at each scrape. */
typedef struct http_figures {
    size_t sockets;                     /* client sockets open */
    unsigned long long accepted;        /* sockets accepted */
    unsigned long long refused;         /* sockets refused past max_connections */
    unsigned long long refused_streams; /* subscribers sent away by a limit */
    http_fronts_stats fronts;           /* the front loops' publishes */
} http_figures;
typedef void (*http_figures_fn)(void *arg, http_figures *f);

typedef struct http_metrics http_metrics;

/* Metrics for 'b' (borrowed). 'worker': this worker's index under --workers
 * (its series are shared through the store), 0 otherwise. NULL on OOM. */
http_metrics *http_metrics_new(struct event_base *base, broker *b, int worker,
                               http_figures_fn fig, void *fig_arg);
/* Show the counters of the modules of 'mh' (borrowed; NULL: none). */
void http_metrics_set_modules(http_metrics *hm, const modhost *mh);
/* Stop sharing (the store forgets this worker's series) and free. NULL ok. */
void http_metrics_free(http_metrics *hm);

/* Answer 'req' (GET or HEAD /metrics) now or, under --workers, once the
 * store gave the other workers' series; 'cors' as httpd replies carry it. */
void http_metrics_serve(http_metrics *hm, httpd_req *req);

#endif
