/* http_util.h - JSON responses, errors and request helpers for the HTTP layer. */
#ifndef HTTP_UTIL_H
#define HTTP_UTIL_H

#include <stddef.h>
#include <jansson.h>

#include "config.h"

struct evhttp_request;

/* Add Access-Control-Allow-Origin per config. */
void http_cors(struct evhttp_request *req, const config *cfg);
/* Send 'body' (stolen; NULL sends no body) as JSON with 'status'. */
void http_json(struct evhttp_request *req, const config *cfg, int status, json_t *body);
/* Send {"error": {"code": code, "message": ...}} with 'status'. */
void http_error(struct evhttp_request *req, const config *cfg, int status,
                const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Called from a connection close callback for a request we have not answered:
 * libevent detaches such a request from its dying connection and leaves it to
 * us, so free it here; a request still attached is freed by libevent. */
void http_release(struct evhttp_request *req);

#endif
