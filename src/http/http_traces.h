/* http_traces.h - traces over HTTP: POST/GET /traces, GET/DELETE
 * /traces/{id}, POST /traces/{id}/stop, GET /traces/{id}/data. Access is
 * checked by the router (manage on the broker); these validate the input and
 * answer. */
#ifndef HTTP_TRACES_H
#define HTTP_TRACES_H

#include <event2/keyvalq_struct.h>

#include "src/broker/broker.h"
#include "src/http/http.h"
#include "src/http/httpd.h"

#define TRACE_PAGE 100      /* records in a page of data when 'limit' is not given */
#define TRACE_PAGE_MAX 1000 /* ... at most */

/* POST /traces with the body 'body' ('len' bytes): 201 and the trace, 400
 * invalid_json or invalid_trace, 409 trace_exists or too_many_traces. */
void http_trace_start(httpd_req *req, const http_opts *o, broker *b, const char *body,
                      size_t len);
/* GET /traces: {"traces": [...]}. */
void http_traces_list(httpd_req *req, const http_opts *o, broker *b);
/* GET /traces/{id}, POST /traces/{id}/stop ('stop'), DELETE /traces/{id}
 * ('del': 204): the trace, or 404 trace_not_found. */
void http_trace_one(httpd_req *req, const http_opts *o, broker *b, const char *id,
                    bool stop, bool del);
/* GET /traces/{id}/data?limit=&after=: {"records": [...], "next": SEQ}
 * ("next" when the page is full: more may follow). */
void http_trace_data(httpd_req *req, const http_opts *o, broker *b, const char *id,
                     const struct evkeyvalq *query);

#endif
