/* http_util.c - JSON responses and errors. */
#include "http_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/http.h>

static const char *http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

void http_cors(struct evhttp_request *req, const config *cfg)
{
    evhttp_add_header(evhttp_request_get_output_headers(req),
                      "Access-Control-Allow-Origin", cfg->cors_origin);
}

void http_json(struct evhttp_request *req, const config *cfg, int status, json_t *body)
{
    struct evbuffer *out = NULL;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

    http_cors(req, cfg);
    if (text && evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        /* HEAD: the headers GET would send, no body. */
        char len[24];
        snprintf(len, sizeof(len), "%zu", strlen(text) + 1);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", len);
    } else if (text) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
        out = evbuffer_new();
        if (out) {
            evbuffer_add(out, text, strlen(text));
            evbuffer_add(out, "\n", 1);
        }
    } else if (body) {
        status = 500;
    }
    evhttp_send_reply(req, status, http_reason(status), out);
    if (out)
        evbuffer_free(out);
    free(text);
    json_decref(body);
}

void http_error(struct evhttp_request *req, const config *cfg, int status,
                const char *code, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    http_json(req, cfg, status,
              json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message));
}

void http_release(struct evhttp_request *req)
{
    /* evhttp_send_reply_end() frees a request that has no connection. */
    if (req && !evhttp_request_get_connection(req))
        evhttp_send_reply_end(req);
}
