/* http_reply.h - JSON responses and errors for the HTTP API. */
#ifndef HTTP_REPLY_H
#define HTTP_REPLY_H

#include <stddef.h>
#include <jansson.h>

#include "src/config.h"
#include "src/http/httpd.h"

/* Add Access-Control-Allow-Origin per config. */
void http_cors(httpd_req *req, const config *cfg);
/* Send 'body' (stolen; NULL sends no body) as JSON with 'status'. */
void http_json(httpd_req *req, const config *cfg, int status, json_t *body);
/* Send {"error": {"code": code, "message": ...}} with 'status'. */
void http_error(httpd_req *req, const config *cfg, int status, const char *code,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
