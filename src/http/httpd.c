/* httpd.c - a small HTTP/1.1 server on libevent bufferevents (see httpd.h).
 *
 * Why not evhttp: its parser answers its own errors with HTML, it cannot count
 * or refuse connections, and an idle stream keeps the whole request (headers,
 * URI, buffers) alive. Here one httpd_req is one client connection, reused by
 * each request on it; a stream keeps only the connection.
 *
 * A connection moves through these states:
 *   S_HEAD    reading a request head (a deadline runs)
 *   S_BODY    reading its body, Content-Length or chunked (the deadline runs on)
 *   S_BUSY    the handler has it; further input waits (pipelined requests)
 *   S_STREAM  a streamed response is open; input is discarded (a body of
 *             known length being written in pieces, 'sized': input waits)
 *   S_FLUSH   the response is complete and being written; then S_HEAD or close
 *   S_LINGER  after an error answered with unread input: our side is shut,
 *             input is discarded for LINGER_S so the client reads the answer
 *             instead of a reset
 * Streams are written by us, not by the bufferevent: what a turn of the
 * loop (under load, a millisecond) adds to a stream's output is written with
 * one writev at its end (httpd_stream_dirty), and only a socket that cannot
 * take it all gets a write event until it drains. One message to N idle subscribers then
 * costs N writes and no epoll changes, and messages published in one turn share them.
 *
 * Deadlines need no event each: every connection waiting in S_HEAD/S_BODY has
 * the same timeout, so appending to a list keeps it sorted by deadline, and
 * one timer closes what expired from its head. The same for S_LINGER. */
#include "src/http/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "src/base/guard.h"
#include "src/base/log.h"
#include "src/base/pfor.h"
#include "src/base/util.h"

#define LINGER_S 2
#define SWEEP_MS 250
#define CHUNK_LINE_MAX 1024    /* a chunk-size line with its extensions */
#define OVERFLOW_CONNS 256     /* accepted past max_connections to be refused politely */
#define ACCEPT_PAUSE_MS 100    /* out of descriptors: stop accepting this long */
#define BUSY_INPUT_MAX 65536   /* input held while busy before reading pauses */
#define FLUSH_INTERVAL_US 1000 /* streams are written at most this often */
#define FLUSH_SLICE 256        /* streams written per loop turn, at most */
#define FLUSH_PAR_MIN 16       /* streams in a flush worth waking the writers for */
#define FLUSH_IOV 128          /* buffers per writev of a stream, as libevent's */
#define REPLY_DIRECT_MAX 2048  /* an answer up to this long is sent without a buffer */
#define BODY_MIN 4096          /* a request body's first allocation, at most */

enum { S_HEAD, S_BODY, S_BUSY, S_STREAM, S_FLUSH, S_LINGER };
enum { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER };

TAILQ_HEAD(req_list, httpd_req);

struct httpd {
    struct event_base *base;
    httpd_opts o;
    httpd_handler handler;
    void *arg;
    struct evconnlistener *lev;
    struct event *sweep;       /* expires deadlines */
    struct event *resume;      /* re-enables accepting after EMFILE */
    struct req_list conns;     /* every connection */
    struct req_list waiting;   /* S_HEAD/S_BODY, by deadline */
    struct req_list lingering; /* S_LINGER, by deadline */
    struct req_list dirty;     /* streams with output to write this turn */
    struct event *flush;       /* writes them, at the end of the turn */
    int64_t last_flush_us;
    size_t marked, merged;    /* since the last flush: streams marked dirty, and
                                 outputs that joined a stream already marked */
    bool coalesce;            /* the next flush waits out FLUSH_INTERVAL_US */
    pfor *writers;            /* write a flush on every core; NULL: inline */
    struct flush_item *batch; /* a slice of a flush */
    size_t nconns;            /* this loop's */
    httpd_shared *sh;         /* the process's figures: o.shared or own_sh */
    httpd_shared own_sh;
    httpd_keep_fn keep; /* set: a front loop, handing over what it does not keep */
    httpd_give_fn give;
    void *handover_arg;
    int port;
    char *cors; /* the CORS headers of "*" or of one origin, or NULL */
    size_t cors_len;
    char *origins; /* else a list of origins, space-separated, or NULL */
    time_t date_t;
    char date[40]; /* the Date header value, rebuilt once a second */
};

/* A connection. It stays for as long as a stream is open, so it is kept at
 * 248 bytes, malloc's 256-byte class (flags in bits, no holes: a new flag
 * has room beside them, a new field costs 16 bytes a stream). */
struct httpd_req {
    httpd *srv;
    struct bufferevent *bev;
    TAILQ_ENTRY(httpd_req) link;  /* in srv->conns */
    TAILQ_ENTRY(httpd_req) timed; /* in srv->waiting or srv->lingering */
    TAILQ_ENTRY(httpd_req) dirt;  /* in srv->dirty */
    int64_t dirty_us;             /* when it was put in srv->dirty (mono_us) */
    struct req_list *timer;       /* which of those, or NULL */
    int64_t deadline_ms;
    guard guard; /* held while the handler or a close callback runs */
    unsigned char state, chunk_state;
    bool over : 1;        /* accepted over max_connections */
    bool close_after : 1; /* close once the response is written */
    bool unread_body : 1; /* answered before reading the body: linger */
    bool eof : 1;         /* the client half-closed: serve what it sent, then close */
    bool is_dirty : 1;    /* in srv->dirty */
    bool sized : 1;       /* S_STREAM: a body of known length (httpd_body_start) */
    bool handed : 1;      /* handed over: another server counts it now */
    union {
        size_t scanned;  /* S_HEAD: input scanned for the end of the head */
        size_t body_cap; /* S_BODY on: the bytes allocated at 'body' */
    };
    /* The current request: freed when it ends or its stream starts. */
    char *raw; /* the head, parsed in place, then its field array */
    httpd_head h;
    uint64_t body_left;
    char *body; /* 'body_len' bytes read, NUL-terminated once complete; or NULL */
    size_t body_len;
    char *out_headers; /* lines httpd_add_header() added (NUL-terminated), or NULL */
    httpd_close_cb on_close;
    void *on_close_arg;
    httpd_drain_cb on_drain; /* the output was all written (streams, bodies) */
    void *on_drain_arg;
    int64_t t0_us; /* the request's first bytes arrived (the access log) */
};

/* A monotonic clock for the delivery lag (now_us may step). */
static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_ms(void)
{
    return (int64_t)(now_us() / 1000);
}

/* The dirty list changed: publish the age of its head for the fronts
 * (httpd_delivery_lag_ms reads it on any loop). */
static void lag_mark(httpd *h)
{
    const httpd_req *head = TAILQ_FIRST(&h->dirty);
    atomic_store_explicit(&h->sh->dirty_since_us, head ? head->dirty_us : 0,
                          memory_order_relaxed);
}

/* ---- connections ---- */

static void timed_off(httpd_req *r)
{
    if (r->timer) {
        TAILQ_REMOVE(r->timer, r, timed);
        r->timer = NULL;
    }
}

static void timed_on(httpd_req *r, struct req_list *list, int seconds)
{
    timed_off(r);
    r->deadline_ms = mono_ms() + (int64_t)seconds * 1000;
    r->timer = list;
    TAILQ_INSERT_TAIL(list, r, timed);
}

/* Forget the current request (keep the connection). */
static void req_reset(httpd_req *r)
{
    free(r->raw);
    r->raw = NULL;
    memset(&r->h, 0, sizeof(r->h));
    free(r->body);
    r->body = NULL;
    free(r->out_headers);
    r->out_headers = NULL;
    r->on_close = NULL;
    r->on_close_arg = NULL;
    r->sized = false;
    r->on_drain = NULL;
    r->on_drain_arg = NULL;
    r->scanned = 0;
    r->body_len = 0;
    r->unread_body = false;
    r->t0_us = 0;
}

static void client_destroy(httpd_req *r)
{
    httpd *h = r->srv;
    timed_off(r);
    req_reset(r);
    if (r->is_dirty) {
        TAILQ_REMOVE(&h->dirty, r, dirt);
        lag_mark(h);
    }
    TAILQ_REMOVE(&h->conns, r, link);
    h->nconns--;
    if (!r->handed)
        atomic_fetch_sub_explicit(&h->sh->conns, 1, memory_order_relaxed);
    bufferevent_free(r->bev);
    free(r);
}

/* Close and free the connection; from inside the handler (or a close
 * callback), once it returns: the caller's stack still uses 'r'. */
static void client_free(httpd_req *r)
{
    if (guard_free(&r->guard))
        client_destroy(r);
    else
        bufferevent_disable(r->bev, EV_READ | EV_WRITE);
}

/* Leave a frame entered with guard_enter(). Returns 1 if 'r' is gone or
 * going: the caller must not touch it again. */
static int client_leave(httpd_req *r)
{
    if (guard_leave(&r->guard)) {
        client_destroy(r);
        return 1;
    }
    return guard_doomed(&r->guard);
}

/* The client is gone: tell whoever holds the response, then free. */
static void client_lost(httpd_req *r)
{
    httpd_close_cb cb = r->on_close;
    if (cb && (r->state == S_BUSY || r->state == S_STREAM)) {
        r->on_close = NULL;
        guard_enter(&r->guard);
        cb(r, r->on_close_arg);
        if (client_leave(r))
            return;
    }
    client_free(r);
}

static void client_process(httpd_req *r);
static void stream_compact(httpd_req *r);

static const char *reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
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
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 417:
        return "Expectation Failed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Status";
    }
}

static const char *http_date(httpd *h)
{
    time_t t = time(NULL);
    if (t != h->date_t) {
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(h->date, sizeof(h->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        h->date_t = t;
    }
    return h->date;
}

/* Access-Control for a list of origins: the request's Origin, if listed,
 * echoed with credentials allowed (never "*" with them), and Vary: Origin so
 * that caches keep the answers of each origin apart. */
static void cors_origin(httpd_req *r, struct evbuffer *out)
{
    const char *origin = r->raw ? httpd_header(r, "Origin") : NULL;
    size_t n = origin ? strlen(origin) : 0;
    for (const char *p = r->srv->origins; n && *p;) {
        size_t len = strcspn(p, " ");
        if (len == n && memcmp(p, origin, n) == 0) {
            evbuffer_add_printf(out,
                                "Access-Control-Allow-Origin: %s\r\n"
                                "Access-Control-Allow-Credentials: true\r\n",
                                origin);
            break;
        }
        p += len + (p[len] == ' ');
    }
    evbuffer_add(out, "Vary: Origin\r\n", 14);
}

/* The status line and headers. 'clen' < 0: no Content-Length. */
static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}
#define PUT(p, lit) put((p), (lit), sizeof(lit) - 1)

/* The status line and the fixed headers into 'head' (HEAD_FIXED_MAX bytes at
 * least); returns their length. Built by hand: this runs for every answer. */
#define HEAD_FIXED_MAX (320 + 128)
static size_t head_fixed(httpd_req *r, int status, const char *ctype, int64_t clen,
                         bool chunked, char *head)
{
    bool keep = r->h.keepalive && !r->close_after;
    const char *why = reason(status), *date = http_date(r->srv);
    size_t ctl = ctype ? strlen(ctype) : 0;
    char *p = head;
    if (ctl > 128)
        ctl = 0, ctype = NULL; /* ours are short; never overflow */
    p = PUT(p, "HTTP/1.1 ");
    p = fmt_u64(p, (uint64_t)status);
    *p++ = ' ';
    p = put(p, why, strlen(why));
    p = PUT(p, "\r\nDate: ");
    p = put(p, date, strlen(date));
    p = PUT(p, "\r\n");
    if (ctype) {
        p = PUT(p, "Content-Type: ");
        p = put(p, ctype, ctl);
        p = PUT(p, "\r\n");
    }
    if (clen >= 0) {
        p = PUT(p, "Content-Length: ");
        p = fmt_u64(p, (uint64_t)clen);
        p = PUT(p, "\r\n");
    }
    if (chunked)
        p = PUT(p, "Transfer-Encoding: chunked\r\n");
    if (!keep)
        p = PUT(p, "Connection: close\r\n");
    else if (r->h.minor == 0)
        p = PUT(p, "Connection: keep-alive\r\n");
    return (size_t)(p - head);
}

static void write_head(httpd_req *r, int status, const char *ctype, int64_t clen,
                       bool chunked)
{
    struct evbuffer *out = bufferevent_get_output(r->bev);
    char head[HEAD_FIXED_MAX];
    evbuffer_add(out, head, head_fixed(r, status, ctype, clen, chunked, head));
    /* Here, not in the routes: the errors httpd answers itself carry it too,
     * or a page could not read them. */
    if (r->srv->cors)
        evbuffer_add(out, r->srv->cors, r->srv->cors_len);
    else if (r->srv->origins)
        cors_origin(r, out);
    if (r->out_headers)
        evbuffer_add(out, r->out_headers, strlen(r->out_headers));
    evbuffer_add(out, "\r\n", 2);
}

/* Write what the output holds now, straight to the socket; only what it
 * does not take waits for a write event (and its timeout). Most answers go
 * out here without touching epoll. A socket error is left for the
 * bufferevent to find on that write. */
static void out_kick(httpd_req *r)
{
    struct evbuffer *out = bufferevent_get_output(r->bev);
    if (evbuffer_get_length(out)) {
        /* A socket bufferevent keeps its output's start frozen so that only it
         * drains it: thaw it for this write, as its own write callback does. */
        evbuffer_unfreeze(out, 1);
        evbuffer_write(out, bufferevent_getfd(r->bev));
        evbuffer_freeze(out, 1);
    }
    if (evbuffer_get_length(out))
        bufferevent_enable(r->bev, EV_WRITE);
}

static const char *method_name(int method)
{
    switch (method) {
    case HTTPD_GET:
        return "GET";
    case HTTPD_HEAD:
        return "HEAD";
    case HTTPD_POST:
        return "POST";
    case HTTPD_PUT:
        return "PUT";
    case HTTPD_DELETE:
        return "DELETE";
    case HTTPD_OPTIONS:
        return "OPTIONS";
    default:
        return method ? "OTHER" : "-";
    }
}

/* The access log's line for an answer ('bytes': its body, -1 for a stream,
 * whose end the broker logs). The path is the raw one, without the query
 * (it may hold an access_token), cut and escaped by the logger. */
static void access_line(httpd_req *r, int status, int64_t bytes)
{
    char remote[64];
    int64_t now = now_us(), t0 = r->t0_us ? r->t0_us : now;
    if (!r->srv->o.access_log)
        return;
    httpd_remote(r, remote, sizeof(remote));
    log_field f[] = {
        LOG_STR("method", method_name(r->h.method)),
        LOG_STR("path", r->h.path ? r->h.path : "-"),
        LOG_NUM("status", status),
        bytes < 0 ? LOG_STR("bytes", NULL) : LOG_NUM("bytes", bytes),
        LOG_NUM("duration_ms", (double)(now - t0) / 1000.0),
        LOG_STR("remote", remote[0] ? remote : NULL),
    };
    log_fields(LOG_INFO, f, sizeof(f) / sizeof(f[0]), bytes < 0 ? "stream" : "request");
}

/* The response is in the output buffer: once written, serve on or close. */
static void finish(httpd_req *r)
{
    if (!r->h.keepalive)
        r->close_after = true;
    r->state = S_FLUSH;
    r->on_close = NULL;
    r->on_drain = NULL;
    if (r->close_after)
        bufferevent_disable(r->bev, EV_READ);
    out_kick(r);
    /* All written: no write will call back, so ask for the callback (later,
     * from the loop: the handler's stack may still use 'r'). */
    if (!evbuffer_get_length(bufferevent_get_output(r->bev)))
        bufferevent_trigger(r->bev, EV_WRITE,
                            BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* An answer's head and body; 'ebody' (moved out) or 'body' (copied). */
static void reply(httpd_req *r, int status, const char *ctype, struct evbuffer *ebody,
                  const char *body, size_t len)
{
    struct evbuffer *out = bufferevent_get_output(r->bev);
    bool nobody = status == 204 || status == 304 || status < 200;
    bool send_body = !nobody && r->h.method != HTTPD_HEAD;
    char buf[REPLY_DIRECT_MAX];
    size_t n, extra;
    if (r->state != S_BUSY) {
        log_error("http: a reply to a request that is not waiting for one");
        return;
    }
    access_line(r, status, send_body ? (int64_t)len : 0);
    if (nobody)
        ctype = NULL;
    /* A short answer to a connection with nothing else to write (a publish's,
     * an error's): built here and sent in one write, without a buffer; only
     * what the socket does not take waits in the output. */
    extra = (r->srv->cors ? r->srv->cors_len : 0) +
            (r->out_headers ? strlen(r->out_headers) : 0) + 2 + (send_body ? len : 0);
    if (!ebody && !r->srv->origins && !evbuffer_get_length(out) &&
        extra <= sizeof(buf) - HEAD_FIXED_MAX) {
        char *p =
            buf + head_fixed(r, status, ctype, nobody ? -1 : (int64_t)len, false, buf);
        if (r->srv->cors)
            p = put(p, r->srv->cors, r->srv->cors_len);
        if (r->out_headers)
            p = put(p, r->out_headers, strlen(r->out_headers));
        p = PUT(p, "\r\n");
        if (send_body && len)
            p = put(p, body, len);
        n = (size_t)(p - buf);
        ssize_t w = send(bufferevent_getfd(r->bev), buf, n, MSG_NOSIGNAL);
        /* A socket error is left for the bufferevent to find on its write. */
        if (w < 0)
            w = 0;
        if ((size_t)w < n)
            evbuffer_add(out, buf + w, n - (size_t)w);
        finish(r);
        return;
    }
    write_head(r, status, ctype, nobody ? -1 : (int64_t)len, false);
    if (send_body && ebody)
        evbuffer_add_buffer(out, ebody);
    else if (send_body && len)
        evbuffer_add(out, body, len);
    finish(r);
}

void httpd_reply(httpd_req *r, int status, const char *ctype, struct evbuffer *body)
{
    reply(r, status, ctype, body, NULL, body ? evbuffer_get_length(body) : 0);
}

void httpd_reply_bytes(httpd_req *r, int status, const char *ctype, const char *body,
                       size_t len)
{
    reply(r, status, ctype, NULL, body, len);
}

void httpd_reply_error(httpd_req *r, int status, const char *code, const char *message,
                       bool close)
{
    /* The message is ours; code is an identifier: escape only '"' and '\'. */
    static const char pre[] = "{\"error\":{\"code\":\"", mid[] = "\",\"message\":\"",
                      post[] = "\"}}\n";
    size_t cl = strlen(code), ml = strlen(message);
    char *text = malloc(sizeof(pre) + cl + sizeof(mid) + 2 * ml + sizeof(post)),
         *p = text;
    if (close)
        r->close_after = true;
    if (text) {
        p = put(put(p, pre, sizeof(pre) - 1), code, cl);
        p = put(p, mid, sizeof(mid) - 1);
        for (size_t i = 0; i < ml; i++) {
            if (message[i] == '"' || message[i] == '\\')
                *p++ = '\\';
            *p++ = message[i];
        }
        p = put(p, post, sizeof(post) - 1);
    }
    httpd_reply_bytes(r, status, "application/json", text ? text : "",
                      (size_t)(p - text));
    free(text);
}

struct evbuffer *httpd_stream_start(httpd_req *r, int status, const char *ctype)
{
    bool chunked = r->h.minor >= 1;
    if (!chunked)
        r->close_after = true; /* HTTP/1.0: the end of the body is the close */
    write_head(r, status, ctype, -1, chunked);
    access_line(r, status, -1);
    r->state = S_STREAM;
    bufferevent_disable(r->bev, EV_WRITE); /* written by flush_streams */
    httpd_stream_dirty(r);
    /* Started after the handler returned (it waited for the store): nobody
     * uses the request's head any more, free it now. */
    if (!guard_held(&r->guard))
        stream_compact(r);
    return bufferevent_get_output(r->bev);
}

struct evbuffer *httpd_body_start(httpd_req *r, int status, const char *ctype,
                                  uint64_t clen)
{
    write_head(r, status, ctype, (int64_t)clen, false);
    access_line(r, status, r->h.method == HTTPD_HEAD ? 0 : (int64_t)clen);
    if (r->h.method == HTTPD_HEAD || clen == 0) {
        finish(r);
        return NULL;
    }
    r->state = S_STREAM;
    r->sized = true;
    bufferevent_disable(r->bev, EV_WRITE); /* written by flush_streams */
    httpd_stream_dirty(r);
    return bufferevent_get_output(r->bev);
}

void httpd_on_drain(httpd_req *r, httpd_drain_cb cb, void *arg)
{
    r->on_drain = cb;
    r->on_drain_arg = arg;
}

/* The output of a body in progress is all written: ask for more. */
static void drained(httpd_req *r)
{
    httpd_drain_cb cb = r->on_drain;
    if (!cb || r->state != S_STREAM)
        return;
    guard_enter(&r->guard);
    cb(r, r->on_drain_arg);
    client_leave(r);
}

struct evbuffer *httpd_stream_output(httpd_req *r)
{
    return bufferevent_get_output(r->bev);
}

size_t httpd_pending(const httpd_req *r)
{
    return evbuffer_get_length(bufferevent_get_output(r->bev));
}

int64_t httpd_delivery_lag_ms(const httpd_req *r)
{
    /* The list is in the order streams were marked: its head is the oldest
     * (the main loop's, kept in the shared figures for the front loops). */
    int64_t since =
        atomic_load_explicit(&r->srv->sh->dirty_since_us, memory_order_relaxed);
    int64_t lag = since ? mono_us() - since : 0;
    return lag > 0 ? lag / 1000 : 0;
}

void httpd_stream_dirty(httpd_req *r)
{
    httpd *h = r->srv;
    if (r->state != S_STREAM)
        return;
    if (r->is_dirty) {
        h->merged++; /* this output joins a write already due */
        return;
    }
    r->is_dirty = true;
    r->dirty_us = mono_us();
    h->marked++;
    TAILQ_INSERT_TAIL(&h->dirty, r, dirt);
    if (TAILQ_FIRST(&h->dirty) == r) {
        lag_mark(h);
        /* A timeout, not an activation: it runs after everything this turn
         * set off (a publish answers before its fan-out is written). At
         * once after a quiet spell, or while waiting gains nothing (the
         * last flush's streams had one output each: many channels of a
         * message each, where waiting cost every delivery ~2.5 ms); while
         * streams get several outputs per flush, at most once per
         * FLUSH_INTERVAL_US, so that the messages of that interval share
         * each subscriber's write (a 100-subscriber fan-out: 440k -> 1.5M+
         * deliveries/s, p99 +3 ms). */
        int64_t since = now_us() - h->last_flush_us;
        struct timeval at = {0, since >= FLUSH_INTERVAL_US || !h->coalesce
                                    ? 0
                                    : FLUSH_INTERVAL_US - since};
        evtimer_add(h->flush, &at);
    }
}

/* A stream to write in a flush. Writing only reads the output buffer
 * (evbuffer_peek) and writes to the socket, so writer threads may do it;
 * what was written is drained on the loop's thread afterwards: no evbuffer,
 * message or event is touched by two threads. */
struct flush_item {
    httpd_req *r;
    ssize_t wrote;
};

/* Write one stream's output as one writev: on any writer thread. */
static void flush_one(size_t i, void *arg)
{
    struct flush_item *it = &((struct flush_item *)arg)[i];
    struct bufferevent *bev = it->r->bev;
    struct evbuffer_iovec v[FLUSH_IOV];
    int n = evbuffer_peek(bufferevent_get_output(bev), -1, NULL, v, FLUSH_IOV);
    it->wrote = n <= 0 ? 0
                       : writev(bufferevent_getfd(bev), (struct iovec *)v,
                                n < FLUSH_IOV ? n : FLUSH_IOV);
}

/* The end of the turn: write every stream that got output. */
static void flush_streams(evutil_socket_t fd, short what, void *arg)
{
    httpd *h = arg;
    httpd_req *r;
    size_t n = 0;
    h->last_flush_us = now_us();
    /* Worth waiting next time: since the last flush, a stream got a second
     * output for every four marked or more, or a fan-out marked a slice's
     * worth (its writes are the work that waiting shares). */
    h->coalesce = (h->merged && h->merged * 4 >= h->marked) || h->marked >= FLUSH_SLICE;
    h->merged = h->marked = 0;
    for (size_t k = 0; k < FLUSH_SLICE && (r = TAILQ_FIRST(&h->dirty)); k++) {
        TAILQ_REMOVE(&h->dirty, r, dirt);
        r->is_dirty = false;
        if (r->state == S_STREAM)
            h->batch[n++].r = r;
    }
    lag_mark(h);
    /* More than a slice: the rest after the loop has had a turn, so that a
     * fan-out to many thousands of streams does not hold up requests (a
     * publish is answered within a slice), and what is published meanwhile
     * joins the writes of the streams not reached yet. */
    if (TAILQ_FIRST(&h->dirty)) {
        static const struct timeval now = {0, 0};
        evtimer_add(h->flush, &now);
    }
    if (h->writers && n >= FLUSH_PAR_MIN)
        pfor_run(h->writers, n, flush_one, h->batch);
    else
        for (size_t i = 0; i < n; i++)
            flush_one(i, h->batch);
    for (size_t i = 0; i < n; i++) {
        struct evbuffer *out = bufferevent_get_output(h->batch[i].r->bev);
        if (h->batch[i].wrote > 0) {
            evbuffer_unfreeze(out, 1);
            evbuffer_drain(out, (size_t)h->batch[i].wrote);
            evbuffer_freeze(out, 1);
        }
        /* Left over (a full socket, or an error): the bufferevent writes on,
         * or reports the error and the connection closes. */
        if (evbuffer_get_length(out))
            bufferevent_enable(h->batch[i].r->bev, EV_WRITE);
    }
    /* Streams whose output is all out: a stream saves where its client is,
     * a body written in pieces adds the next (written on the next flush,
     * after the loop has had a turn). */
    for (size_t i = 0; i < n; i++)
        if (h->batch[i].r->on_drain &&
            !evbuffer_get_length(bufferevent_get_output(h->batch[i].r->bev)))
            drained(h->batch[i].r);
}

size_t httpd_push(httpd_req *r)
{
    out_kick(r);
    return evbuffer_get_length(bufferevent_get_output(r->bev));
}

void httpd_stream_end(httpd_req *r)
{
    if (r->state != S_STREAM)
        return;
    if (r->h.minor >= 1 && !r->sized) {
        /* Not evbuffer_add: after a reference chain (a big frame) it would
         * allocate a chain as long as that frame for these five bytes. */
        struct evbuffer *out = bufferevent_get_output(r->bev);
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(out, 5, &v, 1) == 1) {
            memcpy(v.iov_base, "0\r\n\r\n", 5);
            v.iov_len = 5;
            evbuffer_commit_space(out, &v, 1);
        }
    }
    finish(r);
}

void httpd_abort(httpd_req *r)
{
    r->on_close = NULL;
    r->on_drain = NULL;
    client_free(r);
}

struct event_base *httpd_req_base(const httpd_req *r)
{
    return r->srv->base;
}

void httpd_on_close(httpd_req *r, httpd_close_cb cb, void *arg)
{
    r->on_close = cb;
    r->on_close_arg = arg;
}

void httpd_add_header(httpd_req *r, const char *name, const char *value)
{
    /* A string of their length, not an evbuffer: every stream adds two, and
     * an evbuffer cost two allocations (1.1 KiB) per answer. */
    size_t len = r->out_headers ? strlen(r->out_headers) : 0, nl = strlen(name),
           vl = strlen(value);
    char *p = realloc(r->out_headers, len + nl + vl + 5);
    if (!p)
        return; /* out of memory: the header is left out */
    r->out_headers = p;
    p += len;
    memcpy(p, name, nl);
    memcpy(p + nl, ": ", 2);
    memcpy(p + nl + 2, value, vl);
    memcpy(p + nl + 2 + vl, "\r\n", 3);
}

int httpd_method(const httpd_req *r)
{
    return r->h.method;
}

const char *httpd_path(const httpd_req *r)
{
    return r->h.path;
}

const char *httpd_query(const httpd_req *r)
{
    return r->h.query;
}

void httpd_remote(const httpd_req *r, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    char host[INET6_ADDRSTRLEN];
    const void *addr = NULL;
    int port = 0, n = -1;

    if (!len)
        return;
    buf[0] = '\0';
    if (!r->bev ||
        getpeername(bufferevent_getfd(r->bev), (struct sockaddr *)&ss, &sslen) < 0)
        return;
    if (ss.ss_family == AF_INET) {
        addr = &((struct sockaddr_in *)&ss)->sin_addr;
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        addr = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    if (addr && inet_ntop(ss.ss_family, addr, host, sizeof(host)))
        n = snprintf(buf, len, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host,
                     port);
    if (n < 0 || (size_t)n >= len)
        buf[0] = '\0';
}

bool httpd_is_http11(const httpd_req *r)
{
    return r->h.minor >= 1;
}

bool httpd_over_limit(const httpd_req *r)
{
    return r->over;
}

const char *httpd_header(const httpd_req *r, const char *name)
{
    for (size_t i = 0; i < r->h.nfields; i++)
        if (strcasecmp(r->h.fields[i].name, name) == 0)
            return r->h.fields[i].value;
    return NULL;
}

const char *httpd_body(httpd_req *r, size_t *len)
{
    *len = r->body_len;
    return r->body_len ? r->body : "";
}

/* Answer an error found before the handler, and close. */
static void early_error(httpd_req *r, int status, const char *code, const char *message)
{
    r->state = S_BUSY;
    timed_off(r);
    r->unread_body = true;
    httpd_reply_error(r, status, code, message, true);
}

/* A stream keeps only the connection: what the request held goes. */
static void stream_compact(httpd_req *r)
{
    httpd_close_cb cb = r->on_close;
    void *arg = r->on_close_arg;
    httpd_drain_cb dcb = r->on_drain;
    void *darg = r->on_drain_arg;
    int method = r->h.method, minor = r->h.minor;
    bool keep = r->h.keepalive, sized = r->sized;
    req_reset(r);
    r->on_close = cb;
    r->on_close_arg = arg;
    r->on_drain = dcb;
    r->on_drain_arg = darg;
    r->sized = sized;
    r->h.method = method;
    r->h.minor = minor;
    r->h.keepalive = keep;
}

/* The complete request goes to the handler. */
static void dispatch(httpd_req *r)
{
    timed_off(r);
    r->state = S_BUSY;
    if (r->body)
        r->body[r->body_len] = '\0'; /* one past the end: body_room keeps room */
    guard_enter(&r->guard);
    r->srv->handler(r, r->srv->arg);
    if (client_leave(r))
        return;
    if (r->state == S_STREAM)
        stream_compact(r);
}

/* Give the connection, with what it sent and was not used, to the server
 * that serves what this one does not keep. Its output is all written (a
 * request head is read only then). */
static void hand_over(httpd_req *r)
{
    struct evbuffer *in = bufferevent_get_input(r->bev);
    size_t len = evbuffer_get_length(in);
    char *bytes = malloc(len ? len : 1);
    int fd = bytes ? dup(bufferevent_getfd(r->bev)) : -1;
    if (fd >= 0)
        evbuffer_copyout(in, bytes, len);
    if (fd < 0 || r->srv->give(fd, r->over, bytes, len, r->srv->handover_arg) < 0) {
        if (fd >= 0)
            close(fd);
        free(bytes);
        httpd_add_header(r, "Retry-After", "1");
        early_error(r, 503, "overloaded", "the server is busy: retry later");
        return;
    }
    evbuffer_drain(in, len);
    r->handed = true;
    client_free(r);
}

/* The head is in 'in': copy it out, parse it, then read the body or dispatch.
 * Returns 1 to go on processing input, 0 to stop. */
static int read_head(httpd_req *r)
{
    struct evbuffer *in = bufferevent_get_input(r->bev);
    size_t len = evbuffer_get_length(in), max = r->srv->o.max_headers, n, end = 0;
    const char *code, *message;
    unsigned char *p;

    /* Empty lines before a request are ignored (RFC 9112 2.2). */
    while (len && (p = evbuffer_pullup(in, 1)) && (*p == '\r' || *p == '\n')) {
        evbuffer_drain(in, 1);
        len--;
    }
    if (!len)
        return 0;
    if (!r->t0_us)
        r->t0_us = now_us();
    n = len < max ? len : max;
    p = evbuffer_pullup(in, (ev_ssize_t)n);
    for (size_t i = r->scanned; i < n; i++) {
        if (p[i] != '\n')
            continue;
        if (i + 1 < n && p[i + 1] == '\n') {
            end = i + 2;
            break;
        }
        if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n') {
            end = i + 3;
            break;
        }
    }
    if (!end) {
        r->scanned = n > 2 ? n - 2 : 0; /* a newline there may end the head yet */
        if (len < max)
            return 0;
        if (!memchr(p, '\n', n))
            early_error(r, 414, "uri_too_long", "the request line is over the limit");
        else
            early_error(r, 431, "headers_too_large",
                        "the request headers are over the limit");
        return 0;
    }
    /* With a hand-over, the bytes decide which loop serves them, before
     * they are parsed in place. */
    if (r->srv->keep && !r->srv->keep((const char *)p, end, r->srv->handover_arg)) {
        hand_over(r);
        return 0;
    }
    /* One allocation: the text, then room for a field per line. */
    size_t lines = 0, text = (end + 1 + 15) & ~(size_t)15;
    for (size_t i = 0; i < end; i++)
        lines += p[i] == '\n';
    if (lines > HTTPD_MAX_HEADER_LINES)
        lines = HTTPD_MAX_HEADER_LINES;
    if (!(r->raw = malloc(text + lines * sizeof(httpd_field)))) {
        early_error(r, 503, "out_of_memory", "out of memory");
        return 0;
    }
    evbuffer_remove(in, r->raw, end);
    r->raw[end] = '\0';
    r->scanned = 0;
    r->h.fields = (httpd_field *)(void *)(r->raw + text);
    int status = httpd_parse_head(r->raw, end, &r->h, &code, &message);
    if (status) {
        early_error(r, status, code, message);
        return 0;
    }
    if (r->h.content_length > 0 && (uint64_t)r->h.content_length > r->srv->o.max_body) {
        early_error(r, 413, "body_too_large", "the request body is over the limit");
        return 0;
    }
    if (r->h.chunked || r->h.content_length > 0) {
        r->state = S_BODY; /* the body is allocated as it arrives (body_room) */
        r->chunk_state = CH_SIZE;
        r->body_left = r->h.chunked ? 0 : (uint64_t)r->h.content_length;
        if (r->h.expect_continue) {
            evbuffer_add(bufferevent_get_output(r->bev), "HTTP/1.1 100 Continue\r\n\r\n",
                         25);
            out_kick(r);
        }
        return 1;
    }
    dispatch(r);
    return 0;
}

/* One line of input ending in CRLF, NUL-terminated in 'line' without it.
 * Returns 1, 0 if incomplete, -1 if longer than 'max' (CRLF included), -2 if
 * it ends in a bare LF (refused as in the head: see httpd_parse.c). */
static int take_line(struct evbuffer *in, char *line, size_t max)
{
    size_t eol_len;
    struct evbuffer_ptr e = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
    if (e.pos < 0)
        return evbuffer_get_length(in) > max ? -1 : 0;
    if ((size_t)e.pos >= max)
        return -1;
    evbuffer_remove(in, line, (size_t)e.pos);
    evbuffer_drain(in, eol_len);
    if (!e.pos || line[e.pos - 1] != '\r')
        return -2;
    line[e.pos - 1] = '\0';
    return 1;
}

/* Room at r->body for 'n' more bytes and the NUL after them. It grows with
 * what arrives (doubling, from BODY_MIN), never past what the request
 * declares (its Content-Length, or max_body when chunked): a client that
 * only announces a big body holds no more than twice what it sent. One
 * allocation for a short body, read straight into it (no evbuffer, no
 * pullup). 0, or -1 on OOM. */
static int body_room(httpd_req *r, size_t n)
{
    size_t need = r->body_len + n + 1, cap, most;
    char *p;
    if (need <= r->body_cap)
        return 0;
    most = (r->h.chunked ? r->srv->o.max_body : (size_t)r->h.content_length) + 1;
    cap = r->body_cap > BODY_MIN / 2 ? 2 * r->body_cap : BODY_MIN;
    if (cap > most)
        cap = most;
    if (cap < need)
        cap = need;
    if (!(p = realloc(r->body, cap)))
        return -1;
    r->body = p;
    r->body_cap = cap;
    return 0;
}

/* Read the body. Returns 1 to go on processing input, 0 to stop. */
static int read_body(httpd_req *r)
{
    struct evbuffer *in = bufferevent_get_input(r->bev);
    char line[CHUNK_LINE_MAX + 1];
    int rc;

    for (;;) {
        size_t avail = evbuffer_get_length(in);
        if (!r->h.chunked || r->chunk_state == CH_DATA) {
            size_t n = avail < r->body_left ? avail : (size_t)r->body_left;
            if (n) {
                if (body_room(r, n) < 0) {
                    early_error(r, 503, "out_of_memory", "out of memory");
                    return 0;
                }
                evbuffer_remove(in, r->body + r->body_len, n);
                r->body_len += n;
            }
            r->body_left -= n;
            if (r->body_left)
                return 0;
            if (!r->h.chunked)
                break;
            r->chunk_state = CH_DATA_END;
            continue;
        }
        if (r->chunk_state == CH_DATA_END) {
            if ((rc = take_line(in, line, 2)) == 0)
                return 0;
            if (rc < 0 || line[0]) {
                early_error(r, 400, "invalid_request", "a chunk does not end in CRLF");
                return 0;
            }
            r->chunk_state = CH_SIZE;
            continue;
        }
        if ((rc = take_line(in, line, CHUNK_LINE_MAX)) == 0)
            return 0;
        if (rc < 0) {
            early_error(r, 400, "invalid_request",
                        rc == -2 ? "a chunk line ends in LF, not CRLF"
                                 : "a chunk-size line is too long");
            return 0;
        }
        if (r->chunk_state == CH_TRAILER) {
            if (!line[0])
                break; /* the end of the trailer: the body is complete */
            continue;  /* trailer fields are ignored */
        }
        /* chunk-size [ext]: hex digits, then optional whitespace and ;ext */
        uint64_t size = 0;
        int digits = 0;
        char *p = line;
        for (; *p && digits <= 15; p++, digits++) {
            int d = *p >= '0' && *p <= '9'   ? *p - '0'
                    : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
                    : *p >= 'A' && *p <= 'F' ? *p - 'A' + 10
                                             : -1;
            if (d < 0)
                break;
            size = size * 16 + (uint64_t)d;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (!digits || digits > 15 || (*p && *p != ';')) {
            early_error(r, 400, "invalid_request", "a chunk size is not a hex number");
            return 0;
        }
        if (r->body_len > r->srv->o.max_body || size > r->srv->o.max_body - r->body_len) {
            early_error(r, 413, "body_too_large", "the request body is over the limit");
            return 0;
        }
        r->body_left = size;
        r->chunk_state = size ? CH_DATA : CH_TRAILER;
    }
    dispatch(r);
    return 0;
}

/* Act on buffered input as the state allows. */
static void client_process(httpd_req *r)
{
    struct evbuffer *in = bufferevent_get_input(r->bev);
    for (;;) {
        switch (r->state) {
        case S_HEAD:
            if (!read_head(r))
                return;
            break;
        case S_BODY:
            if (!read_body(r))
                return;
            break;
        case S_LINGER:
            evbuffer_drain(in, evbuffer_get_length(in));
            return;
        case S_STREAM:
            if (!r->sized) {
                evbuffer_drain(in, evbuffer_get_length(in));
                return;
            }
            /* A pipelined request waits for the body's end. */
            __attribute__((fallthrough));
        default:
            /* S_BUSY, S_FLUSH: a pipelined request waits its turn; past a
             * bound, stop reading until then. */
            if (evbuffer_get_length(in) > BUSY_INPUT_MAX)
                bufferevent_disable(r->bev, EV_READ);
            return;
        }
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    client_process(arg);
}

/* Serve the next request on a kept-alive connection. */
static void next_request(httpd_req *r)
{
    req_reset(r);
    r->state = S_HEAD;
    timed_on(r, &r->srv->waiting, r->srv->o.idle_timeout_s);
    bufferevent_disable(r->bev, EV_WRITE); /* answers are written by out_kick */
    bufferevent_enable(r->bev, EV_READ);
    guard_enter(&r->guard); /* a handler may abort the connection: free on the way out */
    client_process(r);
    if (client_leave(r))
        return;
    /* Half-closed and no whole request left: nothing more will come. */
    if (r->eof && (r->state == S_HEAD || r->state == S_BODY))
        client_free(r);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    httpd_req *r = arg;
    if (r->state == S_STREAM && !evbuffer_get_length(bufferevent_get_output(bev))) {
        bufferevent_disable(bev, EV_WRITE); /* drained: back to out_kick */
        drained(r);
        return;
    }
    if (r->state != S_FLUSH || evbuffer_get_length(bufferevent_get_output(bev)))
        return;
    if (!r->close_after) {
        next_request(r);
    } else if (r->unread_body) {
        /* Shut our side and drain theirs for a while, so that the client reads
         * the answer rather than a reset caused by its unread bytes. */
        r->state = S_LINGER;
        shutdown(bufferevent_getfd(bev), SHUT_WR);
        bufferevent_enable(bev, EV_READ);
        timed_on(r, &r->srv->lingering, LINGER_S);
        client_process(r);
    } else {
        client_free(r);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    httpd_req *r = arg;
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
        (r->state == S_BUSY || r->state == S_FLUSH ||
         (r->state == S_STREAM && r->sized))) {
        /* Half-closed: the client sent all it will and waits for the answers. */
        r->eof = true;
        return;
    }
    if ((what & BEV_EVENT_EOF) && r->state == S_STREAM && httpd_pending(r)) {
        /* The subscriber half-closed: its stream ends, what it was sent goes. */
        httpd_close_cb cb = r->on_close;
        r->on_close = NULL;
        r->close_after = true;
        r->state = S_FLUSH;
        bufferevent_enable(bev, EV_WRITE);
        if (cb)
            cb(r, r->on_close_arg);
        return;
    }
    client_lost(r);
}

/* ---- deadlines and accepting ---- */

static void sweep_list(struct req_list *list, int64_t now, int timeout_answer)
{
    httpd_req *r;
    while ((r = TAILQ_FIRST(list)) && r->deadline_ms <= now) {
        timed_off(r);
        if (timeout_answer &&
            (r->state == S_BODY || evbuffer_get_length(bufferevent_get_input(r->bev)))) {
            r->state = S_BUSY;
            httpd_reply_error(r, 408, "request_timeout",
                              "the request was not received in time", true);
        } else {
            client_free(r);
        }
    }
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    httpd *h = arg;
    int64_t now = mono_ms();
    sweep_list(&h->waiting, now, 1);
    sweep_list(&h->lingering, now, 0);
}

/* A connection on socket 'fd', counted in the shared figures by the caller;
 * NULL on OOM (the socket is still the caller's). */
static httpd_req *client_new(httpd *h, int fd, bool over)
{
    struct timeval wt = {HTTPD_WRITE_TIMEOUT_S, 0};
    httpd_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    if (!(r->bev = bufferevent_socket_new(h->base, fd, BEV_OPT_CLOSE_ON_FREE))) {
        free(r);
        return NULL;
    }
    r->srv = h;
    r->over = over;
    r->state = S_HEAD;
    TAILQ_INSERT_TAIL(&h->conns, r, link);
    h->nconns++;
    timed_on(r, &h->waiting, h->o.idle_timeout_s);
    bufferevent_setcb(r->bev, on_read, on_write, on_event, r);
    bufferevent_set_timeouts(r->bev, NULL, &wt);
    bufferevent_disable(r->bev, EV_WRITE); /* answers are written by out_kick */
    bufferevent_enable(r->bev, EV_READ);
    return r;
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    httpd *h = arg;
    httpd_req *r;
    int one = 1;

    /* Counted across every loop of the process, before anything else. */
    size_t open = atomic_fetch_add_explicit(&h->sh->conns, 1, memory_order_relaxed);
    if (open >= h->o.max_connections + OVERFLOW_CONNS) {
        atomic_fetch_sub_explicit(&h->sh->conns, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&h->sh->rejected, 1, memory_order_relaxed);
        evutil_closesocket(fd);
        return;
    }
    if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!(r = client_new(h, fd, open >= h->o.max_connections))) {
        atomic_fetch_sub_explicit(&h->sh->conns, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&h->sh->rejected, 1, memory_order_relaxed);
        evutil_closesocket(fd);
        return;
    }
    atomic_fetch_add_explicit(&h->sh->accepted, 1, memory_order_relaxed);
}

int httpd_adopt(httpd *h, int fd, bool over, char *bytes, size_t len)
{
    httpd_req *r = client_new(h, fd, over);
    int rc = -1;
    if (r) {
        /* A socket bufferevent keeps its input's end frozen so that only it
         * adds to it: thaw it for these bytes, read before it existed. */
        struct evbuffer *in = bufferevent_get_input(r->bev);
        evbuffer_unfreeze(in, 0);
        rc = len ? evbuffer_add(in, bytes, len) : 0;
        evbuffer_freeze(in, 0);
    }
    if (rc < 0) {
        if (r)
            client_free(r); /* counted: it closes the socket and the count */
        else {
            atomic_fetch_sub_explicit(&h->sh->conns, 1, memory_order_relaxed);
            evutil_closesocket(fd);
        }
        free(bytes);
        return -1;
    }
    free(bytes);
    r->t0_us = now_us();
    client_process(r);
    return 0;
}

void httpd_set_handover(httpd *h, httpd_keep_fn keep, httpd_give_fn give, void *arg)
{
    h->keep = keep;
    h->give = give;
    h->handover_arg = arg;
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    httpd *h = arg;
    if (h->lev)
        evconnlistener_enable(h->lev);
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    httpd *h = arg;
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval pause = {0, ACCEPT_PAUSE_MS * 1000};
    /* Out of descriptors (or memory): pause instead of spinning on accept. */
    log_warn("accept: %s; pausing for %d ms (%zu connections open)", strerror(err),
             ACCEPT_PAUSE_MS, h->nconns);
    evconnlistener_disable(lev);
    evtimer_add(h->resume, &pause);
}

/* Set the CORS answer for 'origin' (see httpd_opts.cors_origin): the new
 * strings are made before the old ones go. 0, or -1 on OOM (nothing changed). */
static int cors_set(httpd *h, const char *origin)
{
    char *cors = NULL, *origins = NULL;
    int n = 0;
    if (origin && strchr(origin, ' ')) {
        if (!(origins = strdup(origin)))
            return -1;
    } else if (origin) {
        /* One origin, or "*": the same header on every answer, the server's
         * own errors included. Credentials only with an exact origin. */
        bool any = strcmp(origin, "*") == 0;
        n = asprintf(&cors, "Access-Control-Allow-Origin: %s\r\n%s", origin,
                     any ? "" : "Access-Control-Allow-Credentials: true\r\n");
        if (n < 0)
            return -1;
    }
    free(h->cors);
    free(h->origins);
    h->cors = cors;
    h->cors_len = (size_t)n;
    h->origins = origins;
    return 0;
}

int httpd_reload(httpd *h, const httpd_opts *o)
{
    if (cors_set(h, o->cors_origin) < 0)
        return -1;
    h->o.max_headers = o->max_headers;
    h->o.max_body = o->max_body;
    h->o.idle_timeout_s = o->idle_timeout_s;
    h->o.max_connections = o->max_connections;
    return 0;
}

/* The listening socket; SO_REUSEPORT (opts->reuseport) lets other
 * processes share the port (--workers). NULL with errno set. */
static struct evconnlistener *listen_on(struct event_base *base, httpd *h,
                                        const httpd_opts *opts, const struct addrinfo *ai)
{
    int one = 1, e;
    struct evconnlistener *lev;
    evutil_socket_t fd =
        socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        (opts->reuseport &&
         setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        !(lev = evconnlistener_new(base, on_accept, h,
                                   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 4096,
                                   fd))) {
        e = errno;
        evutil_closesocket(fd);
        errno = e;
        return NULL;
    }
    return lev;
}

httpd *httpd_new(struct event_base *base, const httpd_opts *opts, httpd_handler handler,
                 void *arg, char *err, size_t errlen)
{
    httpd *h = calloc(1, sizeof(*h));
    struct addrinfo hints = {0}, *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    struct timeval sweep = {0, SWEEP_MS * 1000};
    char port[16];
    int rc;

    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->base = base;
    h->o = *opts;
    h->sh = opts->shared ? opts->shared : &h->own_sh;
    h->o.cors_origin = NULL; /* borrowed by the caller: the copy is h->cors */
    h->handler = handler;
    h->arg = arg;
    TAILQ_INIT(&h->conns);
    TAILQ_INIT(&h->waiting);
    TAILQ_INIT(&h->lingering);
    TAILQ_INIT(&h->dirty);
    if (!(h->flush = evtimer_new(base, flush_streams, h)) ||
        !(h->sweep = event_new(base, -1, EV_PERSIST, on_sweep, h)) ||
        !(h->resume = evtimer_new(base, on_resume, h)) ||
        event_add(h->sweep, &sweep) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cors_set(h, opts->cors_origin) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!(h->batch = calloc(FLUSH_SLICE, sizeof(*h->batch)))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (opts->threads > 1 && !(h->writers = pfor_new(opts->threads - 1))) {
        snprintf(err, errlen, "cannot start %d writer threads", opts->threads - 1);
        goto fail;
    }
    if (opts->no_listen) {
        h->port = opts->port;
        return h;
    }
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof(port), "%d", opts->port);
    if ((rc = getaddrinfo(opts->host, port, &hints, &ai)) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", opts->host, opts->port,
                 gai_strerror(rc));
        goto fail;
    }
    h->lev = listen_on(base, h, opts, ai);
    freeaddrinfo(ai);
    if (!h->lev) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", opts->host, opts->port,
                 strerror(errno));
        goto fail;
    }
    evconnlistener_set_error_cb(h->lev, on_accept_error);
    if (getsockname(evconnlistener_get_fd(h->lev), (struct sockaddr *)&ss, &sslen) == 0)
        h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    return h;
fail:
    httpd_free(h);
    return NULL;
}

void httpd_stop_accepting(httpd *h)
{
    if (h && h->lev) {
        evconnlistener_free(h->lev);
        h->lev = NULL;
    }
}

void httpd_free(httpd *h)
{
    httpd_req *r;
    if (!h)
        return;
    httpd_stop_accepting(h);
    while ((r = TAILQ_FIRST(&h->conns)))
        client_lost(r);
    if (h->sweep)
        event_free(h->sweep);
    if (h->flush)
        event_free(h->flush);
    if (h->resume)
        event_free(h->resume);
    pfor_free(h->writers);
    free(h->batch);
    free(h->cors);
    free(h->origins);
    free(h);
}

int httpd_port(const httpd *h)
{
    return h->port;
}

size_t httpd_connections(const httpd *h)
{
    return atomic_load_explicit(&h->sh->conns, memory_order_relaxed);
}

unsigned long long httpd_rejected(const httpd *h)
{
    return atomic_load_explicit(&h->sh->rejected, memory_order_relaxed);
}

unsigned long long httpd_accepted(const httpd *h)
{
    return atomic_load_explicit(&h->sh->accepted, memory_order_relaxed);
}
