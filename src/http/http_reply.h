/* http_reply.h - JSON answers and errors for the HTTP API. (Every response
 * gets Access-Control-Allow-Origin from httpd: see httpd_opts.) */
#ifndef HTTP_REPLY_H
#define HTTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "src/http/http.h"
#include "src/http/httpd.h"

/* Send 'body' (stolen; NULL sends no body) as JSON with 'status'. */
void http_json(httpd_req *req, const http_opts *o, int status, json_t *body);
/* Send {"error": {"code": code, "message": ...}} with 'status'. */
void http_error(httpd_req *req, const http_opts *o, int status, const char *code,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Send a subscriber away politely: 200, a retry: of o->backoff_ms, 'why' as a
 * comment, and the end of the stream (a browser gives up for good on any
 * status but 200). */
void http_refuse_stream(httpd_req *req, const http_opts *o, const char *why);

/* A request waiting for the store: 'req' becomes NULL if the client leaves
 * meanwhile. */
typedef struct http_held {
    httpd_req *req;
    const http_opts *o;
} http_held;
/* Hold 'req' (answered 503 and NULL on OOM). Free it with free(). */
http_held *http_held_new(httpd_req *req, const http_opts *o);
/* The store failed to start the read ('rc'): answer 503 now and free 'h'. */
void http_held_failed(http_held *h, int rc);
/* The store answered: true if the client is still there to hear it. */
bool http_held_resume(http_held *h);
/* The store answered a listing with 'status': once the client is still there
 * and status is 0, the answer {key: []} with '*arr' its array to fill (send
 * it with http_json); otherwise NULL, having answered what must be (503). The
 * caller frees 'h' either way. */
json_t *http_held_listing(http_held *h, int status, const char *key, json_t **arr);

#endif
