/* http_reply.c - JSON answers and errors. */
#include "src/http/http_reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

static void free_text(const void *data, size_t len, void *arg)
{
    free(arg);
}

void http_json(httpd_req *req, const http_opts *o, int status, json_t *body)
{
    struct evbuffer *out = NULL;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

    json_decref(body);
    if (body && (!text || !(out = evbuffer_new()))) {
        free(text);
        httpd_reply_error(req, 503, "out_of_memory", "out of memory", false);
        return;
    }
    if (out) {
        /* The text is handed over, not copied. */
        size_t len = strlen(text);
        text[len] = '\n'; /* json_dumps leaves the NUL: the newline takes its place */
        if (evbuffer_add_reference(out, text, len + 1, free_text, text) < 0)
            free(text);
    }
    httpd_reply(req, status, out ? "application/json" : NULL, out);
    if (out)
        evbuffer_free(out);
}

void http_error(httpd_req *req, const http_opts *o, int status, const char *code,
                const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    http_json(req, o, status,
              json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message));
}

void http_refuse_stream(httpd_req *req, const http_opts *o, const char *why)
{
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        httpd_reply_error(req, 503, "out_of_memory", "out of memory", false);
        return;
    }
    evbuffer_add_printf(out, "retry: %d\n: %s\n\n", o->backoff_ms, why);
    httpd_add_header(req, "Cache-Control", "no-cache");
    httpd_reply(req, 200, "text/event-stream", out);
    evbuffer_free(out);
}
