/* http_reply.h - JSON answers and errors for the HTTP API. (Every response
 * gets Access-Control-Allow-Origin from httpd: see httpd_opts.) */
#ifndef HTTP_REPLY_H
#define HTTP_REPLY_H

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

#endif
