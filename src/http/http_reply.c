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

static void held_closed(httpd_req *req, void *arg)
{
    ((http_held *)arg)->req = NULL;
}

http_held *http_held_new(httpd_req *req, const http_opts *o)
{
    http_held *h = malloc(sizeof(*h));
    if (!h) {
        http_error(req, o, 503, "out_of_memory", "out of memory");
        return NULL;
    }
    *h = (http_held){req, o};
    httpd_on_close(req, held_closed, h);
    return h;
}

void http_held_failed(http_held *h, int rc)
{
    httpd_on_close(h->req, NULL, NULL);
    http_error(h->req, h->o, 503, "store_unavailable", "the store failed: %s",
               broker_strerror(rc));
    free(h);
}

bool http_held_resume(http_held *h)
{
    if (!h->req)
        return false;
    httpd_on_close(h->req, NULL, NULL);
    return true;
}

json_t *http_held_listing(http_held *h, int status, const char *key, json_t **arr)
{
    json_t *o;
    if (!http_held_resume(h))
        return NULL;
    if (status < 0) {
        http_error(h->req, h->o, 503, "store_unavailable", "the store failed: %s",
                   broker_strerror(status));
        return NULL;
    }
    if (!(*arr = json_array()) || !(o = json_pack("{s:o}", key, *arr))) {
        http_error(h->req, h->o, 503, "out_of_memory", "out of memory");
        return NULL;
    }
    return o;
}
