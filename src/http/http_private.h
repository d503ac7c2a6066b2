/* http_private.h - what http.c shares with http_front_server.c, which makes
 * the front loops' servers: the server and its process-wide figures, and the
 * routes' entry points the fronts serve with. Not for anything else.
 *
 * Ownership as in http.h: a server copies its options, not the strings and
 * the auth they point to (a front's server owns copies of those: see
 * http_front_server.c). */
#ifndef HTTP_PRIVATE_H
#define HTTP_PRIVATE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "src/broker/node.h"
#include "src/http/http.h"
#include "src/http/http_front.h"
#include "src/http/http_metrics.h"
#include "src/http/httpd.h"

/* The figures of every loop of the process (http_front.h), the main
 * server's, which the fronts' point to. */
typedef struct http_shared {
    httpd_shared d;
    _Atomic unsigned long long refused; /* requests refused for max_connections */
    _Atomic unsigned long long
        refused_streams; /* subscribers sent away here (not by the broker) */
} http_shared;

/* The main loop's server, or a front loop's (then 'front' is set, 'b' is
 * NULL: a front never touches the broker, and its strings and auth in 'o'
 * are its own copies). */
struct http_server {
    httpd *d;
    node_reg *node; /* NULL once stopping */
    http_metrics *metrics;
    broker *b;
    http_opts o;
    http_shared *sh;     /* own_sh, or the main server's */
    http_shared own_sh;  /* the main server's */
    http_fronts *fronts; /* the main server's front loops, or NULL */
    http_front *front;   /* a front's: where its publishes go */
};

/* httpd's request handler: route and answer 'req' for the server 'arg'. */
void http_handle(httpd_req *req, void *arg);
/* The answer to a publish of the request 'arg' (an http.c context), from the
 * main loop's broker or from a front's job coming back: status < 0, a
 * BROKER_E* or KV_E* error; else 'n' ids (borrowed) and the timestamp. Frees
 * the context (which only does that when its client is gone). */
void http_publish_answer(void *arg, int status, const uint64_t *ids, size_t n,
                         int64_t ts_us);
/* What a reload changes, from 'o' into 'dst' (the strings and auth are
 * borrowed as 'o' has them). */
void http_opts_reload(http_opts *dst, const http_opts *o);
/* The httpd options of 'o' (its strings borrowed). */
httpd_opts http_httpd_opts(const http_opts *o);

/* The front loops (http_front_loops) beside the main server 'h' (http_front_server.c),
 * started. 0, or -1 with 'err' (the caller frees what was made, with 'h'). */
int http_server_fronts_start(http_server *h, struct event_base *base, const http_opts *o,
                             char *err, size_t errlen);

#endif
