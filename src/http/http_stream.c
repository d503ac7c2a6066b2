/* http_stream.c - SSE responses on httpd, frames shared by reference. */
#include "src/http/http_stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "src/broker/broker.h"

typedef struct http_stream {
    sink base;
    httpd_req *req;
    const http_opts *o;
    bool chunked; /* HTTP/1.1: frames go out chunk-framed */
} http_stream;

/* httpd calls this when the client's connection goes away. */
static void hs_closed(httpd_req *req, void *arg)
{
    http_stream *hs = arg;
    broker_sink_closed(&hs->base);
    free(hs);
}

static void hs_open(sink *sk, int retry_ms)
{
    http_stream *hs = (http_stream *)sk;
    httpd_req *req = hs->req;
    char text[64];

    httpd_add_header(req, "Cache-Control", "no-cache");
    httpd_add_header(req, "X-Accel-Buffering", "no");
    struct evbuffer *out = httpd_stream_start(req, 200, "text/event-stream");
    httpd_on_close(req, hs_closed, hs);
    /* The opening comment makes browsers fire 'open' at once. */
    int n = snprintf(text, sizeof(text), "retry: %d\n: ok\n\n", retry_ms);
    if (hs->chunked)
        evbuffer_add_printf(out, "%x\r\n%s\r\n", n, text);
    else
        evbuffer_add(out, text, (size_t)n);
}

static void hs_frame_unref(const void *data, size_t len, void *arg)
{
    msg_unref(arg);
}

static int hs_send(sink *sk, msg *m)
{
    http_stream *hs = (http_stream *)sk;
    /* Over the bound: first hand the socket what it takes now (a burst may
     * simply not have been written yet), and give up only on a client that
     * still leaves too much unread. */
    if (httpd_pending(hs->req) > hs->o->stream_buffer &&
        httpd_push(hs->req) > hs->o->stream_buffer)
        return SINK_EFULL;
    /* Straight onto the socket's buffer, by reference: the frame (already
     * chunk-framed) is shared by every stream, so one message costs each
     * stream one small chain, not a copy nor a chunk header of its own. */
    const char *p = hs->chunked ? m->chunk : m->frame;
    size_t len = hs->chunked ? m->chunk_len : m->frame_len;
    if (evbuffer_add_reference(httpd_stream_output(hs->req), p, len, hs_frame_unref,
                               msg_ref(m)) < 0)
        msg_unref(m);
    httpd_stream_dirty(hs->req);
    return 0;
}

static void hs_comment(sink *sk, const char *text)
{
    http_stream *hs = (http_stream *)sk;
    struct evbuffer *out = httpd_stream_output(hs->req);
    size_t n = strlen(text) + 4; /* ": " text "\n\n" */
    if (hs->chunked)
        evbuffer_add_printf(out, "%zx\r\n: %s\n\n\r\n", n, text);
    else
        evbuffer_add_printf(out, ": %s\n\n", text);
    httpd_stream_dirty(hs->req);
}

static void hs_end(sink *sk)
{
    http_stream *hs = (http_stream *)sk;
    httpd_on_close(hs->req, NULL, NULL);
    httpd_stream_end(hs->req);
    free(hs);
}

static void hs_abort(sink *sk)
{
    http_stream *hs = (http_stream *)sk;
    /* Drop what the client never read instead of holding it until the write
     * timeout: close the connection now. */
    httpd_abort(hs->req);
    free(hs);
}

static const sink_ops http_stream_ops = {
    .open = hs_open,
    .send = hs_send,
    .comment = hs_comment,
    .end = hs_end,
    .abort = hs_abort,
};

sink *http_stream_new(httpd_req *req, const http_opts *o)
{
    http_stream *hs = calloc(1, sizeof(*hs));
    if (!hs)
        return NULL;
    hs->base.ops = &http_stream_ops;
    hs->req = req;
    hs->o = o;
    hs->chunked = httpd_is_http11(req);
    return &hs->base;
}

void http_stream_free(sink *sk)
{
    free(sk);
}
