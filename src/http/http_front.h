/* http_front.h - front loops: request handling on every core (threads >= 3).
 *
 * With 'threads' N >= 3 the process runs N-1 front loops, each on its own
 * thread with its own event base and its own httpd, listening on nothing:
 * the main loop accepts every connection and, on the raw bytes of a request
 * head, gives a publishing connection (POST /channels/{name}/events) to the
 * fronts in turn, with the bytes it read (a publisher pays this once for
 * all its requests; a stream never). A front parses, authorizes and
 * validates the publish (the routes' own code, src/http/http.c), then hands
 * the append to the main loop in a job; the main loop, which owns the
 * broker and the store, publishes it as its own publishes and posts the
 * result back, and the front writes the answer. A front's connection whose
 * next request is anything else goes back to the main loop the same way.
 *
 * A job belongs to one thread at a time: the front never touches the broker,
 * the main loop never touches the front's request (the job carries an
 * opaque pointer to it, for the front). Each front has at most
 * HTTP_FRONT_JOBS publishes at the main loop; over that it answers 503.
 *
 * This file holds the threads, their mailboxes and the main loop's side of a
 * job; the HTTP side (routes, answers) stays in http.c, through the hooks. */
#ifndef HTTP_FRONT_H
#define HTTP_FRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/broker/broker.h"
#include "src/http/http.h"
#include "src/http/httpd.h"

#define HTTP_FRONT_JOBS 4096     /* publishes one front may have at the main loop */
#define HTTP_FRONT_MIN_THREADS 3 /* 'threads' from which front loops run */

typedef struct http_fronts http_fronts;
typedef struct http_front http_front;

/* What http.c does on a front's thread ('srv' is its server there). */
typedef struct http_front_hooks {
    /* A publish's result is back for 'ctx' (status < 0: a BROKER_E* or KV_E*
     * error; else 'n' ids, borrowed, and the timestamp). */
    void (*answer)(void *ctx, int status, const uint64_t *ids, size_t n, int64_t ts_us);
    /* Apply what a reload changes (http_server_reload's fields). */
    void (*reload)(void *srv, const http_opts *o);
    void (*stop_accepting)(void *srv);
    void (*free)(void *srv);
} http_front_hooks;

/* How many front loops 'threads' runs: threads - 1 from HTTP_FRONT_MIN_THREADS
 * on, else none. With two threads the second only writes streams: on two
 * cores a publish handed to a front cost more than it saved (the load
 * client shares them; README "Design", front loops). */
int http_front_loops(int threads);

/* Event bases and mailboxes for 'n' fronts of the main loop 'base' (whose
 * httpd 'main_d' adopts what they hand over); no thread yet. NULL on OOM. */
http_fronts *http_fronts_new(struct event_base *base, broker *b, httpd *main_d, int n,
                             const http_front_hooks *hk);
int http_fronts_count(const http_fronts *fs);
http_front *http_fronts_get(http_fronts *fs, int i);
/* The event base front 'i' runs (its server is made on it before the start). */
struct event_base *http_front_base(http_front *f);
/* Front 'f' serves with 'srv' on its httpd 'd' (whose hand-over it sets). */
void http_front_set(http_front *f, void *srv, httpd *d);
/* Start every front's thread. 0, or -1 (logged; none started then). */
int http_fronts_start(http_fronts *fs);

/* On a front's thread: hand a parsed publish of 'batch' to channel 'name'
 * to the main loop ('bytes': what it holds); the result comes back through
 * the answer hook with 'ctx'. 0 (the batch is taken), or -1 when the front
 * has HTTP_FRONT_JOBS publishes waiting already or on OOM (nothing taken). */
int http_front_publish(http_front *f, const char *name, pub_batch *batch, size_t bytes,
                       void *ctx);
/* On a front's thread: count a publish refused there (a BROKER_PUB_*
 * result) in the broker's figures. */
void http_front_refused(http_front *f, int result);

/* What the fronts did since the start, summed over them: publishes handed
 * to the main loop, refused there (503 overloaded: the front had
 * HTTP_FRONT_JOBS waiting, or the main loop's mailbox was full, or OOM),
 * waiting at the main loop now, and the most one front had waiting at once.
 * Each figure is read on its own (not one snapshot of all). */
typedef struct http_fronts_stats {
    int loops;    /* front loops: http_front_loops(threads), 0 without */
    size_t limit; /* HTTP_FRONT_JOBS */
    unsigned long long posted, refused;
    size_t waiting, waiting_max;
} http_fronts_stats;
/* From any thread; 'fs' NULL (no fronts): every figure 0 but the limit. */
void http_fronts_stats_get(http_fronts *fs, http_fronts_stats *st);

/* On the main loop: give every front the reloadable part of 'o' (copied). */
void http_fronts_reload(http_fronts *fs, const http_opts *o);
/* On the main loop: the fronts stop accepting (their open connections are
 * served on: what they publish from now on is refused "shutting down" by
 * the broker, as the main loop's own). */
void http_fronts_stop_accepting(http_fronts *fs);
/* On the main loop, its loop no longer running: the fronts close their
 * connections; publishes still coming are answered "shutting down"; then
 * the threads are joined and everything freed. NULL is fine. */
void http_fronts_free(http_fronts *fs);

#endif
