/* stream.c - SSE responses on httpd, frames shared by reference. */
#include "src/broker/stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "src/broker/broker.h"
#include "src/http/http_reply.h"
#include "src/base/log.h"

/* httpd calls this when the client's connection goes away. */
static void stream_conn_closed(httpd_req *req, void *arg)
{
    stream *s = arg;
    s->req = NULL;
    stream_close(s);
}

stream *stream_open(struct broker *b, httpd_req *req, chan *ch, conn *cn)
{
    stream *s = calloc(1, sizeof(*s));
    if (!s) {
        http_error(req, b->cfg, 503, "out_of_memory", "out of memory");
        return NULL;
    }
    s->b = b;
    s->req = req;
    s->ch = chan_ref(ch);
    s->cn = cn;
    s->chunked = httpd_is_http11(req);

    http_cors(req, b->cfg);
    httpd_add_header(req, "Cache-Control", "no-cache");
    httpd_add_header(req, "X-Accel-Buffering", "no");
    struct evbuffer *out = httpd_stream_start(req, 200, "text/event-stream");
    httpd_on_close(req, stream_conn_closed, s);
    /* The opening comment makes browsers fire 'open' at once. */
    char text[64];
    int n = snprintf(text, sizeof(text), "retry: %d\n: ok\n\n", ch->opts.retry_ms);
    if (s->chunked)
        evbuffer_add_printf(out, "%x\r\n%s\r\n", n, text);
    else
        evbuffer_add(out, text, (size_t)n);

    TAILQ_INSERT_TAIL(&b->all, s, all);
    b->nstreams++;
    if (cn) {
        cn->lis.stream = s;
        ch->nattached++;
    } else {
        TAILQ_INSERT_TAIL(&ch->streams, s, link);
        ch->nstreams++;
    }
    return s;
}

static void frame_unref(const void *data, size_t len, void *arg)
{
    msg_unref(arg);
}

int stream_send(stream *s, msg *m)
{
    if (!s->req || m->seq <= s->last_seq)
        return 0;
    /* Over the bound: first hand the socket what it takes now (a burst may
     * simply not have been written yet), and cut only a client that still
     * leaves too much unread. */
    if (httpd_pending(s->req) > s->b->cfg->stream_buffer &&
        httpd_push(s->req) > s->b->cfg->stream_buffer) {
        log_debug("stream on '%s' cut: client is not reading", s->ch->name);
        s->b->slow_closed++;
        stream_abort(s);
        return -1;
    }
    s->last_seq = m->seq;
    /* Straight onto the socket's buffer, by reference: the frame (already
     * chunk-framed) is shared by every stream, so one message costs each
     * stream one small chain, not a copy nor a chunk header of its own. */
    const char *p = s->chunked ? m->chunk : m->frame;
    size_t len = s->chunked ? m->chunk_len : m->frame_len;
    if (evbuffer_add_reference(httpd_stream_output(s->req), p, len, frame_unref,
                               msg_ref(m)) < 0)
        msg_unref(m);
    httpd_stream_dirty(s->req);
    return 0;
}

void stream_comment(stream *s, const char *text)
{
    if (!s->req)
        return;
    struct evbuffer *out = httpd_stream_output(s->req);
    size_t n = strlen(text) + 4; /* ": " text "\n\n" */
    if (s->chunked)
        evbuffer_add_printf(out, "%zx\r\n: %s\n\n\r\n", n, text);
    else
        evbuffer_add_printf(out, ": %s\n\n", text);
    httpd_stream_dirty(s->req);
}

void stream_abort(stream *s)
{
    if (s->req) {
        /* Drop what the client never read instead of holding it until the
         * write timeout: close the connection now. */
        httpd_abort(s->req);
        s->req = NULL;
    }
    stream_close(s);
}

void stream_close(stream *s)
{
    broker *b = s->b;
    if (s->req) {
        httpd_on_close(s->req, NULL, NULL);
        httpd_stream_end(s->req);
        s->req = NULL;
    }
    TAILQ_REMOVE(&b->all, s, all);
    b->nstreams--;
    if (s->cn) {
        s->cn->lis.stream = NULL;
        s->ch->nattached--;
    } else {
        TAILQ_REMOVE(&s->ch->streams, s, link);
        s->ch->nstreams--;
    }
    chan_unref(s->ch);
    free(s);
}
