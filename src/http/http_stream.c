/* http_stream.c - SSE responses on httpd: small frames copied, large ones
 * shared by reference, and what a stream holds counted in what it costs.
 *
 * What is counted against limits.stream_buffer is what the stream's unsent
 * output really keeps in memory:
 *   - a frame of up to HS_COPY_MAX bytes is copied into the output: it costs
 *     its bytes (libevent packs them into chains of 1 to 4 KiB, whose 56-byte
 *     headers and unfilled tail are the only overhead: under 6% and 4 KiB);
 *   - a larger frame is added by reference: it costs the chain libevent
 *     allocates for the reference (1 KiB: its minimum chain, whatever it
 *     holds) and the whole message it keeps alive (msg_footprint), counted in
 *     full as if no one else held it, since the stream may be its last holder
 *     once history and every other stream let go;
 *   - comments (heartbeats) and framing are copied: their bytes.
 * Copying small frames is the cure for the per-subscriber allocation: a 30
 * byte frame by reference cost a 1 KiB chain, so 16 KiB of counted frames held
 * 550 KiB. Up to 1 KiB a copy never costs more memory than a reference, and it
 * is as fast (no allocation per stream, and fewer iovecs per writev); beyond,
 * a reference saves a copy per subscriber of a big message.
 *
 * The bound: before a message is added, the socket is first given what it
 * takes; if what the stream still holds is over stream_buffer, the client does
 * not keep up and is cut (SINK_EFULL). So a stream holds at most
 * stream_buffer plus one message's cost, and stream_buffer x streams (plus
 * that message each) bounds what all streams keep. */
#include "src/http/http_stream.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "src/base/util.h"
#include "src/broker/broker.h"

#define HS_COPY_MAX 1024 /* frames up to this are copied, larger ones referenced */
/* A reference's own cost: libevent's minimum chain (1024 bytes) with
 * malloc's header, and its entry in hs->refs. */
#define HS_REF_COST (1040 + sizeof(hs_ref))

/* A referenced frame still in the output: it leaves once the output has
 * drained past 'end', and then its 'extra' (what it costs beyond the bytes
 * the output length already counts) is no longer held. */
typedef struct hs_ref {
    uint64_t end; /* hs->added just after it */
    size_t extra;
} hs_ref;

/* The references of a stream, oldest first: entry i at v[(head + i) % cap].
 * Its length is bounded since each entry counts HS_REF_COST against
 * stream_buffer (and by UINT32_MAX: 4 TiB of references). */
typedef struct hs_ring {
    uint32_t cap, head, len;
    hs_ref v[];
} hs_ring;

/* A stream whose credentials expire: only those have one. */
struct hs_expiry {
    struct event *ev;
    int64_t at_us;
};

/* Every idle subscriber has one: 72 bytes (malloc's 80-byte class), the
 * ring's counters kept in the ring, which most streams never need. */
typedef struct http_stream {
    sink base;
    httpd_req *req;
    const http_opts *o;
    uint64_t added; /* bytes ever put in the output, the response head included */
    size_t extra;   /* the sum of 'extra' over refs */
    hs_ring *refs;  /* NULL until the first reference */
    struct hs_expiry *expiry; /* ends the stream when its credentials expire */
    bool chunked;             /* HTTP/1.1: frames go out chunk-framed */
    bool tail_ref;            /* the output ends in a reference chain */
} http_stream;

static void hs_free(http_stream *hs)
{
    if (hs->expiry) {
        if (hs->expiry->ev)
            event_free(hs->expiry->ev);
        free(hs->expiry);
    }
    free(hs->refs);
    free(hs);
}

/* Arm the timer for what is left until the expiry: 0, or -1. */
static int hs_expiry_arm(http_stream *hs)
{
    int64_t in = hs->expiry->at_us - now_us();
    struct timeval tv = {in > 0 ? in / 1000000 : 0, in > 0 ? in % 1000000 : 0};
    return evtimer_add(hs->expiry->ev, &tv);
}

static void hs_expired(evutil_socket_t fd, short what, void *arg)
{
    http_stream *hs = arg;
    /* libevent counts from the loop's cached time, which may be behind by
     * as long as the turn that armed it had run: early, wait out the rest,
     * so that a client reconnecting at once with the same token is refused
     * (its exp is past by then). */
    if (hs->expiry->at_us > now_us() && hs_expiry_arm(hs) == 0)
        return;
    /* The client reconnects (a 200 that ends), with fresh credentials. */
    broker_sink_finish(&hs->base, "the token expired: reconnect with a fresh one");
}

int http_stream_expire_at(sink *sk, int64_t at_us)
{
    http_stream *hs = (http_stream *)sk;
    if (!(hs->expiry = calloc(1, sizeof(*hs->expiry))))
        return -1;
    hs->expiry->at_us = at_us;
    if (!(hs->expiry->ev = evtimer_new(httpd_req_base(hs->req), hs_expired, hs)) ||
        hs_expiry_arm(hs) < 0)
        return -1;
    return 0;
}

/* httpd calls this when the client's connection goes away. */
static void hs_closed(httpd_req *req, void *arg)
{
    http_stream *hs = arg;
    broker_sink_closed(&hs->base);
    hs_free(hs);
}

/* What the unsent output costs now (see the top of the file). */
static size_t hs_cost(http_stream *hs)
{
    size_t len = httpd_pending(hs->req);
    uint64_t drained = hs->added - len;
    hs_ring *r = hs->refs;
    while (r && r->len && r->v[r->head].end <= drained) {
        hs->extra -= r->v[r->head].extra;
        r->head = (r->head + 1) % r->cap;
        r->len--;
    }
    return len + hs->extra;
}

static int hs_ref_push(http_stream *hs, hs_ref ref)
{
    hs_ring *r = hs->refs;
    if (!r || r->len == r->cap) {
        uint32_t cap = r ? 2 * r->cap : 16;
        hs_ring *n = !r || cap > r->cap
                         ? malloc(sizeof(*n) + (size_t)cap * sizeof(n->v[0]))
                         : NULL;
        if (!n)
            return -1;
        n->cap = cap;
        n->head = 0;
        n->len = r ? r->len : 0;
        for (uint32_t i = 0; i < n->len; i++)
            n->v[i] = r->v[(r->head + i) % r->cap];
        free(r);
        hs->refs = r = n;
    }
    r->v[(r->head + r->len++) % r->cap] = ref;
    hs->extra += ref.extra;
    return 0;
}

/* Copy 'len' bytes to the output. After a reference chain, evbuffer_add
 * would size its new chain after the reference (up to the referenced frame's
 * length, megabytes for a byte): reserve just what this needs instead. */
static void hs_copy(http_stream *hs, const void *p, size_t len)
{
    struct evbuffer *out = httpd_stream_output(hs->req);
    if (hs->tail_ref) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(out, (ev_ssize_t)len, &v, 1) < 1)
            return;
        memcpy(v.iov_base, p, len);
        v.iov_len = len;
        if (evbuffer_commit_space(out, &v, 1) < 0)
            return;
        hs->tail_ref = false;
    } else if (evbuffer_add(out, p, len) < 0) {
        return;
    }
    hs->added += len;
}

/* httpd calls this when the socket has taken all the stream's output. */
static void hs_drained(httpd_req *req, void *arg)
{
    broker_sink_drained(&((http_stream *)arg)->base);
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
    httpd_on_drain(req, hs_drained, hs);
    /* The opening comment makes browsers fire 'open' at once. */
    int n = snprintf(text, sizeof(text), "retry: %d\n: ok\n\n", retry_ms);
    if (hs->chunked)
        evbuffer_add_printf(out, "%x\r\n%s\r\n", n, text);
    else
        evbuffer_add(out, text, (size_t)n);
    hs->added = evbuffer_get_length(out);
}

static void hs_frame_unref(const void *data, size_t len, void *arg)
{
    msg_unref(arg);
}

static int hs_send(sink *sk, msg *m, bool envelope)
{
    http_stream *hs = (http_stream *)sk;
    size_t bound = hs->o->stream_buffer;
    /* Over the bound: first hand the socket what it takes now (a burst may
     * simply not have been written yet), and give up only on a client that
     * still leaves too much unread. */
    if (hs_cost(hs) > bound && (httpd_push(hs->req), hs_cost(hs) > bound))
        return SINK_EFULL;
    /* The frame comes already chunk-framed for HTTP/1.1: no chunk header of
     * our own either way. */
    const char *p = hs->chunked ? m->chunk : m->frame;
    size_t len = hs->chunked ? m->chunk_len : m->frame_len;
    if (envelope) {
        p = hs->chunked ? m->env->chunk : m->env->frame;
        len = hs->chunked ? m->env->chunk_len : m->env->frame_len;
    }
    if (len <= HS_COPY_MAX) {
        hs_copy(hs, p, len);
    } else if (evbuffer_add_reference(httpd_stream_output(hs->req), p, len,
                                      hs_frame_unref, msg_ref(m)) < 0) {
        msg_unref(m);
    } else {
        hs->added += len;
        hs->tail_ref = true;
        /* If the ring cannot grow, the reference is only counted by its
         * bytes until it leaves: out of memory, nothing better to do. */
        hs_ref_push(hs, (hs_ref){hs->added, HS_REF_COST + msg_footprint(m) - len});
    }
    httpd_stream_dirty(hs->req);
    return 0;
}

static void hs_comment(sink *sk, const char *text)
{
    http_stream *hs = (http_stream *)sk;
    char buf[160];
    size_t n = strlen(text) + 4; /* ": " text "\n\n" */
    int len = hs->chunked ? snprintf(buf, sizeof(buf), "%zx\r\n: %s\n\n\r\n", n, text)
                          : snprintf(buf, sizeof(buf), ": %s\n\n", text);
    if (len > 0 && (size_t)len < sizeof(buf))
        hs_copy(hs, buf, (size_t)len);
    httpd_stream_dirty(hs->req);
}

static void hs_event(sink *sk, const char *type, const char *data)
{
    http_stream *hs = (http_stream *)sk;
    char buf[1024]; /* sys.gap: a Last-Event-ID of 128 bytes, escaped */
    size_t n = strlen(type) + strlen(data) + 16; /* "event: " "\ndata: " "\n\n" */
    int len = hs->chunked
                  ? snprintf(buf, sizeof(buf), "%zx\r\nevent: %s\ndata: %s\n\n\r\n", n,
                             type, data)
                  : snprintf(buf, sizeof(buf), "event: %s\ndata: %s\n\n", type, data);
    if (len > 0 && (size_t)len < sizeof(buf))
        hs_copy(hs, buf, (size_t)len);
    httpd_stream_dirty(hs->req);
}

/* The request is still there: called before the stream opens. */
static void hs_peer(sink *sk, char *remote, size_t rlen, char *agent, size_t alen)
{
    http_stream *hs = (http_stream *)sk;
    const char *ua = httpd_header(hs->req, "User-Agent");
    httpd_remote(hs->req, remote, rlen);
    if (ua && alen) {
        size_t n = strnlen(ua, alen - 1);
        /* Cut on a character's first byte: the text stays UTF-8. */
        while (n && ua[n] && ((unsigned char)ua[n] & 0xC0) == 0x80)
            n--;
        memcpy(agent, ua, n);
        agent[n] = '\0';
    }
}

static size_t hs_pending(sink *sk)
{
    return httpd_pending(((http_stream *)sk)->req);
}

static void hs_end(sink *sk)
{
    http_stream *hs = (http_stream *)sk;
    httpd_on_close(hs->req, NULL, NULL);
    httpd_on_drain(hs->req, NULL, NULL);
    httpd_stream_end(hs->req);
    hs_free(hs);
}

static void hs_abort(sink *sk)
{
    http_stream *hs = (http_stream *)sk;
    /* Drop what the client never read instead of holding it until the write
     * timeout: close the connection now. */
    httpd_abort(hs->req);
    hs_free(hs);
}

static const sink_ops http_stream_ops = {
    .open = hs_open,
    .send = hs_send,
    .comment = hs_comment,
    .event = hs_event,
    .peer = hs_peer,
    .pending = hs_pending,
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
    hs_free((http_stream *)sk);
}
