/* stream.c - SSE responses over libevent's evhttp, frames shared by reference. */
#include "stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/http_struct.h>

#include "broker.h"
#include "http_util.h"
#include "log.h"

/* evhttp calls this when the client's connection goes away. */
static void stream_conn_closed(struct evhttp_connection *evcon, void *arg)
{
    stream *s = arg;
    http_release(s->req);
    s->req = NULL;
    stream_close(s);
}

stream *stream_open(struct broker *b, struct evhttp_request *req, chan *ch, conn *cn)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    stream *s = calloc(1, sizeof(*s));
    if (!s) {
        http_error(req, b->cfg, 503, "out_of_memory", "out of memory");
        return NULL;
    }
    s->b = b;
    s->req = req;
    s->ch = chan_ref(ch);
    s->cn = cn;
    /* evhttp answers HTTP/1.1 without a length in chunks, HTTP/1.0 raw. */
    s->chunked = req->major > 1 || (req->major == 1 && req->minor >= 1);

    http_cors(req, b->cfg);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_add_header(h, "X-Accel-Buffering", "no");
    evhttp_send_reply_start(req, 200, "OK");
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    evhttp_connection_set_closecb(evcon, stream_conn_closed, s);
    /* evhttp's request timeouts would end a quiet stream: a subscriber sends
     * nothing, so no read timeout; a write that cannot progress for
     * STREAM_WRITE_TIMEOUT_S means a client that stopped reading. */
    struct timeval wt = {STREAM_WRITE_TIMEOUT_S, 0};
    bufferevent_set_timeouts(evhttp_connection_get_bufferevent(evcon), NULL, &wt);

    /* The opening comment makes browsers fire 'open' at once. */
    evbuffer_add_printf(b->scratch, "retry: %d\n: ok\n\n", ch->opts.retry_ms);
    evhttp_send_reply_chunk(req, b->scratch);

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

/* Unsent bytes in the client's socket buffer on our side. */
static size_t stream_pending(stream *s)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(s->req);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    return evbuffer_get_length(bufferevent_get_output(bev));
}

int stream_send(stream *s, msg *m)
{
    if (!s->req || m->seq <= s->last_seq)
        return 0;
    if (stream_pending(s) > s->b->cfg->stream_buffer) {
        log_debug("stream on '%s' cut: client is not reading", s->ch->name);
        s->b->slow_closed++;
        stream_abort(s);
        return -1;
    }
    s->last_seq = m->seq;
    /* Straight onto the socket's buffer, by reference: the frame (already
     * chunk-framed) is shared by every stream, so one message costs each
     * stream one small chain, not a copy nor a chunk header of its own. */
    struct bufferevent *bev =
        evhttp_connection_get_bufferevent(evhttp_request_get_connection(s->req));
    const char *p = s->chunked ? m->chunk : m->frame;
    size_t len = s->chunked ? m->chunk_len : m->frame_len;
    if (evbuffer_add_reference(bufferevent_get_output(bev), p, len, frame_unref,
                               msg_ref(m)) < 0)
        msg_unref(m);
    return 0;
}

void stream_comment(stream *s, const char *text)
{
    if (!s->req)
        return;
    evbuffer_add_printf(s->b->scratch, ": %s\n\n", text);
    evhttp_send_reply_chunk(s->req, s->b->scratch);
}

void stream_abort(stream *s)
{
    if (s->req) {
        /* Drop what the client never read instead of holding it until the
         * write timeout: free the connection (and with it the request) now. */
        struct evhttp_connection *evcon = evhttp_request_get_connection(s->req);
        evhttp_connection_set_closecb(evcon, NULL, NULL);
        s->req = NULL;
        evhttp_connection_free(evcon);
    }
    stream_close(s);
}

void stream_close(stream *s)
{
    broker *b = s->b;
    if (s->req) {
        /* The connection may be kept alive for another request: it must not
         * call back into this stream any more. */
        evhttp_connection_set_closecb(evhttp_request_get_connection(s->req), NULL, NULL);
        evhttp_send_reply_end(s->req);
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
