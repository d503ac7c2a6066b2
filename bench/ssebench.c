/* ssebench.c - load client for SSE brokers (ssebroker, Nchan) on libevent.
 *
 * Two modes, one binary:
 *   ssebench sub ...  a swarm of SSE subscribers: HTTP/1.1 GETs spread over
 *                     source addresses 127.0.0.2-254, ramped a bounded number
 *                     at a time; each stream is de-chunked and parsed as SSE
 *                     (multi-line data, CR/LF/CRLF); every event's payload
 *                     carries a sequence number and a CLOCK_MONOTONIC send
 *                     time, so the swarm counts deliveries, duplicates, gaps
 *                     and publish->receive latency.
 *   ssebench pub ...  a publisher: K keep-alive HTTP/1.1 connections POSTing
 *                     fixed-size payloads at a target rate or as fast as
 *                     possible, bounded in count and time.
 * Both fork --procs worker processes (one process holds at most ~20k fds),
 * merge their counters and latency histograms, and print one line of
 * key=value pairs on stdout. Every loop ends by itself: at --duration at the
 * latest. Only loopback addresses make sense (the swarm binds 127.0.0.x).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

/* Latency histogram in microseconds: exact below 128, then 64 sub-buckets per
 * power of two (under 1.6% error), up to 2^45 us. */
#define H_SUB 64
#define H_BUCKETS (H_SUB * 40)
#define MAX_DEPTH 64
#define MAX_SEQ (1u << 26)

/* Counters one worker process sends back to the parent through a pipe. */
typedef struct stats {
    uint64_t subs, connected, failed, closed; /* sub */
    uint64_t deliveries, unique, dups, gaps, unparsed;
    uint64_t complete, disorder;       /* sub: reached --expect; older after newer */
    uint64_t req_ns, done_ns;          /* sub: first request sent, last one complete */
    uint64_t open_ns;                  /* sub: the last subscriber's opening bytes */
    uint64_t sent, ok, non2xx, errors; /* pub */
    uint64_t first_ns, last_ns;        /* earliest send, latest receive */
    uint64_t max_us;
    uint64_t hist[H_BUCKETS];
} stats;

/* Options, shared by both modes. */
static struct {
    const char *host;
    int port;
    const char *path; /* with one %s for the channel name */
    const char *channel;
    unsigned nchannels;
    unsigned procs;
    double duration;
    /* sub */
    unsigned n, batch;
    uint64_t expect;
    unsigned quiet_ms;
    const char *ready;
    const char *header; /* one more request header line, e.g. Authorization */
    /* pub */
    unsigned conns, depth, size, lines;
    double rate;
    uint64_t count;
    int grip; /* Pushpin: a JSON publish with an http-stream item, no %s */
} opt = {
    .host = "127.0.0.1",
    .port = 8080,
    .path = "/channels/%s/events",
    .channel = "bench",
    .nchannels = 1,
    .procs = 1,
    .duration = 30,
    .n = 1,
    .batch = 200,
    .quiet_ms = 2000,
    .conns = 1,
    .depth = 1,
    .size = 100,
    .lines = 1,
};

static struct event_base *base;
static stats st;
static unsigned me; /* this worker's index, 0..procs-1 */
static char path_pre[256], path_post[256];
static struct sockaddr_in server;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned hist_index(uint64_t v)
{
    if (v < 2 * H_SUB)
        return (unsigned)v;
    unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - 6; /* v >> shift in [64,128) */
    unsigned i = (shift + 1) * H_SUB + (unsigned)((v >> shift) - H_SUB);
    return i < H_BUCKETS ? i : H_BUCKETS - 1;
}

/* The middle of bucket i, in microseconds. */
static double hist_value(unsigned i)
{
    if (i < 2 * H_SUB)
        return i;
    unsigned shift = i / H_SUB - 1;
    return (double)(((uint64_t)(i % H_SUB) + H_SUB) << shift) +
           (double)((uint64_t)1 << shift) / 2;
}

static void hist_add(stats *s, uint64_t us)
{
    s->hist[hist_index(us)]++;
    if (us > s->max_us)
        s->max_us = us;
}

/* The q-quantile (0..1) in milliseconds; 0 for an empty histogram. */
static double hist_quantile(const stats *s, double q)
{
    uint64_t total = 0, acc = 0;
    for (unsigned i = 0; i < H_BUCKETS; i++)
        total += s->hist[i];
    if (!total)
        return 0;
    uint64_t want = (uint64_t)(q * (double)total + 0.999999);
    if (want < 1)
        want = 1;
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        acc += s->hist[i];
        if (acc >= want) {
            double v = hist_value(i);
            return (v > (double)s->max_us ? (double)s->max_us : v) / 1000.0;
        }
    }
    return (double)s->max_us / 1000.0;
}

/* Channel i's name, as both modes derive it. */
static void channel_name(char *out, size_t len, unsigned i)
{
    if (opt.nchannels == 1)
        snprintf(out, len, "%s", opt.channel);
    else
        snprintf(out, len, "%s%u", opt.channel, i);
}

static void stop_loop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    event_base_loopbreak(base);
}

/* ---- chunked transfer decoding, a byte at a time, shared by both modes ---- */

enum {
    CH_SIZE,
    CH_EXT,
    CH_DATA,
    CH_DATA_END,
    CH_TRAILER,
    CH_TRAILER_LINE,
    CH_DONE,
    CH_BAD
};

typedef struct dechunk {
    int state;
    int digits;
    uint64_t left;
} dechunk;

typedef void (*sink_fn)(void *arg, const char *p, size_t n);

/* Feed n bytes of a chunked body; chunk payloads go to sink (may be NULL).
 * Returns the bytes consumed: fewer than n only once the body has ended
 * (state CH_DONE, the rest belongs to the next response) or is malformed
 * (CH_BAD). */
static size_t dechunk_feed(dechunk *d, const char *p, size_t n, sink_fn sink, void *arg)
{
    const char *s = p, *end = p + n;
    while (p < end && d->state != CH_DONE && d->state != CH_BAD) {
        char c = *p;
        switch (d->state) {
        case CH_SIZE:
        case CH_EXT:
            p++;
            if (c == '\n') {
                if (!d->digits)
                    d->state = CH_BAD;
                else
                    d->state = d->left ? CH_DATA : CH_TRAILER;
                d->digits = 0;
            } else if (d->state == CH_EXT || c == '\r') {
                /* chunk extensions are skipped */
            } else if (c == ';') {
                d->state = CH_EXT;
            } else {
                int v = c >= '0' && c <= '9'   ? c - '0'
                        : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                               : -1;
                if (v < 0 || d->left >> 56)
                    d->state = CH_BAD;
                else
                    d->left = d->left * 16 + (uint64_t)v, d->digits = 1;
            }
            break;
        case CH_DATA: {
            size_t k = (size_t)(end - p) < d->left ? (size_t)(end - p) : (size_t)d->left;
            if (sink)
                sink(arg, p, k);
            p += k;
            d->left -= k;
            if (!d->left)
                d->state = CH_DATA_END;
            break;
        }
        case CH_DATA_END:
            p++;
            if (c == '\n')
                d->state = CH_SIZE;
            else if (c != '\r')
                d->state = CH_BAD;
            break;
        case CH_TRAILER:
            p++;
            if (c == '\n')
                d->state = CH_DONE;
            else if (c != '\r')
                d->state = CH_TRAILER_LINE;
            break;
        case CH_TRAILER_LINE:
            p++;
            if (c == '\n')
                d->state = CH_TRAILER;
            break;
        }
    }
    return (size_t)(p - s);
}

/* Parse a response head ending in CRLF CRLF: the status and the body framing
 * (chunked, else Content-Length, -1 when absent; close when the server will
 * close the connection after it). Returns the status, or -1 when malformed. */
static int parse_head(const char *h, size_t len, int *chunked, long long *clen,
                      int *close)
{
    char buf[8192];
    int status;
    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, h, len);
    buf[len] = '\0';
    if (sscanf(buf, "HTTP/1.%*1d %3d", &status) != 1)
        return -1;
    *chunked = 0, *clen = -1, *close = strncmp(buf, "HTTP/1.0", 8) == 0;
    char *l = strstr(buf, "\r\n") + 2;
    for (char *e; (e = strstr(l, "\r\n")) && e > l; l = e + 2) {
        *e = '\0';
        if (!strncasecmp(l, "transfer-encoding:", 18))
            *chunked = strcasestr(l + 18, "chunked") != NULL;
        else if (!strncasecmp(l, "content-length:", 15))
            *clen = atoll(l + 15);
        else if (!strncasecmp(l, "connection:", 11))
            *close = strcasestr(l + 11, "close") != NULL;
    }
    return status;
}

/* ---- subscriber swarm ---- */

enum { S_IDLE, S_HEAD, S_BODY, S_OVER };

typedef struct sub {
    struct bufferevent *bev;
    unsigned gidx; /* index over all processes */
    int state;
    int chunked, opened, cr, complete;
    int skip;       /* the event being read is the broker's "session" event */
    long long left; /* body bytes still to come with Content-Length, else -1 */
    dechunk dc;
    char *line; /* a partial SSE line carried over between reads */
    size_t line_len, line_cap;
    char *data; /* the data of the event being read */
    size_t data_len, data_cap;
    uint8_t *seen; /* bitmap of received sequence numbers */
    uint64_t seen_bits, unique, max_seq, last_seq;
} sub;

static sub *subs;
static unsigned nsubs, next_sub, connecting, settled, nfinished;
static int ready_fd = -1;
static uint64_t last_rx_ns;
static char *selftest_log; /* selftest: delivered data, each followed by '|' */
static size_t selftest_len, selftest_cap;
static char scratch[65536];

static void sub_start(sub *s);

static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 128;
    while (c < need)
        c *= 2;
    char *p = realloc(*buf, c);
    if (!p)
        return -1;
    *buf = p, *cap = c;
    return 0;
}

/* One subscriber is connected or gone: start the next, say when all are. */
static void sub_settle(void)
{
    connecting--;
    settled++;
    while (next_sub < nsubs && connecting < opt.batch)
        sub_start(&subs[next_sub++]);
    if (settled == nsubs && ready_fd >= 0) {
        if (write(ready_fd, "R", 1) != 1)
            perror("ssebench: ready pipe");
    }
}

/* With --expect, the swarm is done once every subscriber that connected has
 * had its messages or has gone. */
static void sub_check_done(void)
{
    if (opt.expect && settled == nsubs && nfinished == st.connected)
        event_base_loopbreak(base);
}

/* The stream ended or broke ('why'): free the socket, keep the counts, and
 * tell the first few reasons on stderr. */
static void sub_end(sub *s, const char *why)
{
    static unsigned told;
    if (s->state == S_OVER)
        return;
    if (told++ < 5)
        fprintf(stderr, "ssebench: subscriber %u %s: %s\n", s->gidx,
                s->opened ? "closed" : "failed", why);
    if (!s->opened) {
        st.failed++;
        sub_settle();
    } else {
        st.closed++;
        if (!s->complete)
            nfinished++;
    }
    s->state = S_OVER;
    bufferevent_free(s->bev);
    s->bev = NULL;
    if (settled == nsubs && st.failed + st.closed == nsubs)
        event_base_loopbreak(base);
    sub_check_done();
}

/* An event arrived: its data is "s=SEQ t=NS ...", or ssebroker's envelope
 * (GET /events) {"channel": ..., "data": "s=SEQ t=NS ...", ...}. */
static void sub_deliver(sub *s, char *d)
{
    uint64_t now = mono_ns();
    char *e;
    if (d[0] == '{' && (e = strstr(d, "\"data\":\"")) != NULL)
        d = e + 8;
    if (d[0] != 's' || d[1] != '=')
        goto bad;
    uint64_t seq = strtoull(d + 2, &e, 10);
    if (e[0] != ' ' || e[1] != 't' || e[2] != '=')
        goto bad;
    uint64_t ts = strtoull(e + 3, &e, 10);
    if (!ts || seq >= MAX_SEQ)
        goto bad;

    st.deliveries++;
    last_rx_ns = now;
    if (selftest_log) {
        size_t n = strlen(d);
        if (grow(&selftest_log, &selftest_cap, selftest_len + n + 2) == 0) {
            memcpy(selftest_log + selftest_len, d, n);
            selftest_len += n;
            selftest_log[selftest_len++] = '|';
            selftest_log[selftest_len] = '\0';
        }
    }
    if (now > st.last_ns)
        st.last_ns = now;
    if (!st.first_ns || ts < st.first_ns)
        st.first_ns = ts;
    hist_add(&st, now > ts ? (now - ts) / 1000 : 0);

    if (seq >= s->seen_bits) {
        uint64_t bits = s->seen_bits ? s->seen_bits : 1024;
        while (bits <= seq)
            bits *= 2;
        uint8_t *p = realloc(s->seen, bits / 8);
        if (!p) {
            st.unparsed++;
            return;
        }
        memset(p + s->seen_bits / 8, 0, (bits - s->seen_bits) / 8);
        s->seen = p, s->seen_bits = bits;
    }
    if (s->seen[seq / 8] & (1u << (seq % 8))) {
        st.dups++;
        return;
    }
    s->seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
    if (s->unique && seq < s->last_seq)
        st.disorder++; /* one publisher connection: ids and seqs share an order */
    s->last_seq = seq;
    if (!s->unique || seq > s->max_seq)
        s->max_seq = seq;
    s->unique++;
    if (opt.expect && s->unique == opt.expect && !s->complete) {
        s->complete = 1;
        st.complete++;
        st.done_ns = now;
        nfinished++;
        sub_check_done();
    }
    return;
bad:
    st.unparsed++;
}

/* One SSE line without its terminator
 * (https://html.spec.whatwg.org/#event-stream-interpretation). */
static void sse_line(sub *s, const char *l, size_t n)
{
    if (n == 0) {
        if (s->data_len && !s->skip) {
            s->data[s->data_len - 1] = '\0'; /* the last LF goes */
            sub_deliver(s, s->data);
        }
        s->data_len = 0;
        s->skip = 0;
        return;
    }
    if (l[0] == ':')
        return;
    const char *colon = memchr(l, ':', n);
    size_t flen = colon ? (size_t)(colon - l) : n;
    /* The first event of every stream names its session: not a message. */
    if (flen == 5 && !memcmp(l, "event", 5) && n == 14 && !memcmp(l + 5, ": session", 9))
        s->skip = 1;
    if (flen != 4 || memcmp(l, "data", 4))
        return; /* id, event, retry: nothing to measure */
    const char *v = colon ? colon + 1 : l + n;
    if (v < l + n && *v == ' ')
        v++;
    size_t vlen = (size_t)(l + n - v);
    if (grow(&s->data, &s->data_cap, s->data_len + vlen + 1) < 0)
        return;
    memcpy(s->data + s->data_len, v, vlen);
    s->data_len += vlen;
    s->data[s->data_len++] = '\n';
}

/* Decoded body bytes: split into lines on CR, LF or CRLF. */
static void sse_feed(void *arg, const char *p, size_t n)
{
    sub *s = arg;
    const char *end = p + n;
    while (p < end) {
        if (s->cr) {
            s->cr = 0;
            if (*p == '\n') {
                p++;
                continue;
            }
        }
        const char *e = p;
        while (e < end && *e != '\n' && *e != '\r')
            e++;
        if (e == end || s->line_len) {
            if (grow(&s->line, &s->line_cap, s->line_len + (size_t)(e - p)) < 0)
                return;
            memcpy(s->line + s->line_len, p, (size_t)(e - p));
            s->line_len += (size_t)(e - p);
            if (e == end)
                return;
            sse_line(s, s->line, s->line_len);
            s->line_len = 0;
        } else {
            sse_line(s, p, (size_t)(e - p));
        }
        s->cr = *e == '\r';
        p = e + 1;
    }
}

static void sub_read(struct bufferevent *bev, void *arg)
{
    sub *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (s->state == S_HEAD) {
        struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (p.pos < 0) {
            if (evbuffer_get_length(in) > 8192)
                sub_end(s, "response head over 8 KiB");
            return;
        }
        size_t hl = (size_t)p.pos + 4;
        int close;
        int status = parse_head((char *)evbuffer_pullup(in, (ev_ssize_t)hl), hl,
                                &s->chunked, &s->left, &close);
        evbuffer_drain(in, hl);
        if (status != 200) {
            char why[32];
            snprintf(why, sizeof(why), "status %d", status);
            sub_end(s, why);
            return;
        }
        s->state = S_BODY;
    }
    size_t n;
    while ((n = evbuffer_remove(in, scratch, sizeof(scratch))) > 0) {
        if (!s->opened) {
            /* The opening comment is here: the server has the subscriber. */
            s->opened = 1;
            st.connected++;
            st.open_ns = mono_ns();
            bufferevent_set_timeouts(bev, NULL, NULL);
            sub_settle();
        }
        if (s->chunked) {
            dechunk_feed(&s->dc, scratch, n, sse_feed, s);
            if (s->dc.state == CH_DONE || s->dc.state == CH_BAD) {
                sub_end(s, s->dc.state == CH_DONE ? "the server ended the stream"
                                                  : "bad chunked encoding");
                return;
            }
        } else if (s->left >= 0) {
            /* A whole response, not a stream: a subscriber sent away. */
            size_t k = (long long)n < s->left ? n : (size_t)s->left;
            sse_feed(s, scratch, k);
            s->left -= (long long)k;
            if (!s->left) {
                sub_end(s, "the server ended the stream");
                return;
            }
        } else {
            sse_feed(s, scratch, n);
        }
        if (s->state == S_OVER)
            return;
    }
}

static void sub_event(struct bufferevent *bev, short what, void *arg)
{
    sub *s = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED)
        return;
    sub_end(s, what & BEV_EVENT_EOF ? "connection closed by the server"
               : what & BEV_EVENT_TIMEOUT
                   ? "no response within 15 s"
                   : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/* Connect subscriber s from 127.0.0.(2 + gidx % 253) and send its GET. */
static void sub_start(sub *s)
{
    char ch[256];
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000002u + s->gidx % 253);
    connecting++;
    s->state = S_HEAD;
    if (!st.req_ns)
        st.req_ns = mono_ns();
    evutil_socket_t fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
#ifdef IP_BIND_ADDRESS_NO_PORT
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
        close(fd);
        goto fail;
    }
    s->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!s->bev) {
        close(fd);
        goto fail;
    }
    bufferevent_setcb(s->bev, sub_read, NULL, sub_event, s);
    struct timeval hdr_timeout = {15, 0};
    bufferevent_set_timeouts(s->bev, &hdr_timeout, &hdr_timeout);
    bufferevent_enable(s->bev, EV_READ);
    channel_name(ch, sizeof(ch), s->gidx % opt.nchannels);
    evbuffer_add_printf(bufferevent_get_output(s->bev),
                        "GET %s%s%s HTTP/1.1\r\nHost: %s:%d\r\n%s%s"
                        "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
                        path_pre, ch, path_post, opt.host, opt.port,
                        opt.header ? opt.header : "", opt.header ? "\r\n" : "");
    if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&server, sizeof(server)) <
        0)
        sub_end(s, "connect failed");
    return;
fail:
    s->state = S_OVER;
    st.failed++;
    sub_settle();
}

static void sub_quiet_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    if (last_rx_ns && mono_ns() - last_rx_ns > (uint64_t)opt.quiet_ms * 1000000u)
        event_base_loopbreak(base);
}

/* Worker: subscribers [first, first + n) of the swarm. */
static void sub_worker(unsigned first, unsigned n, int rfd)
{
    subs = calloc(n ? n : 1, sizeof(*subs));
    if (!subs)
        exit(1);
    nsubs = n;
    ready_fd = rfd;
    st.subs = n;
    for (unsigned i = 0; i < n; i++)
        subs[i].gidx = first + i;
    struct timeval tick = {0, 100000};
    struct event *quiet = event_new(base, -1, EV_PERSIST, sub_quiet_check, NULL);
    event_add(quiet, &tick);
    if (n == 0 && write(ready_fd, "R", 1) != 1)
        perror("ssebench: ready pipe");
    while (next_sub < nsubs && connecting < opt.batch)
        sub_start(&subs[next_sub++]);
    if (n)
        event_base_dispatch(base);
    for (unsigned i = 0; i < n; i++) {
        sub *s = &subs[i];
        if (s->unique)
            st.gaps += s->max_seq + 1 - s->unique;
        st.unique += s->unique;
        if (s->bev)
            bufferevent_free(s->bev);
        free(s->line);
        free(s->data);
        free(s->seen);
    }
    free(subs);
    event_free(quiet);
}

/* ---- publisher ---- */

typedef struct pconn {
    struct bufferevent *bev;
    unsigned inflight, head;
    uint64_t sent_at[MAX_DEPTH]; /* ring of send times of requests in flight */
    int in_body, chunked, close;
    long long body_left;
    int status;
    dechunk dc;
} pconn;

static pconn *pconns;
static uint64_t my_count; /* this worker's share of --count, or UINT64_MAX */
static uint64_t issued, t0_ns, reconnects;
static int stopping;
static char body[65536];

static void pconn_open(pconn *c);

static int may_send(void)
{
    if (stopping || issued >= my_count)
        return 0;
    if (opt.rate > 0) {
        double allowed = opt.rate * (double)(mono_ns() - t0_ns) / 1e9 + 1;
        return (double)issued < allowed;
    }
    return 1;
}

static int pub_done(void)
{
    if (!stopping && issued < my_count)
        return 0;
    for (unsigned i = 0; i < opt.conns; i++)
        if (pconns[i].inflight)
            return 0;
    return 1;
}

static void pconn_send(pconn *c)
{
    char ch[256];
    uint64_t i = issued++;
    uint64_t seq = (i / opt.nchannels) * opt.procs + me;
    uint64_t now = mono_ns();
    int k = opt.size
                ? snprintf(body, sizeof(body), "s=%" PRIu64 " t=%" PRIu64 " ", seq, now)
                : 0; /* --size 0: no body (e.g. creating connections) */
    if ((unsigned)k < opt.size) {
        memset(body + k, 'x', opt.size - (unsigned)k);
        for (unsigned l = 1; l < opt.lines; l++) /* multi-line payloads */
            body[k + (opt.size - (unsigned)k) * l / opt.lines] = '\n';
    }
    size_t blen = (unsigned)k > opt.size ? (size_t)k : opt.size;
    channel_name(ch, sizeof(ch), (unsigned)(i % opt.nchannels));
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (opt.grip) {
        /* Pushpin's control API: the channel in the body, the payload as one
         * SSE event (one line of plain characters: no JSON escaping). */
        static char grip[sizeof(body) + 512];
        int g = snprintf(grip, sizeof(grip),
                         "{\"items\":[{\"channel\":\"%s\",\"formats\":{\"http-stream\":"
                         "{\"content\":\"data: %.*s\\n\\n\"}}}]}",
                         ch, (int)blen, body);
        evbuffer_add_printf(
            out,
            "POST %s HTTP/1.1\r\nHost: %s:%d\r\n%s%s"
            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n",
            path_pre, opt.host, opt.port, opt.header ? opt.header : "",
            opt.header ? "\r\n" : "", g);
        evbuffer_add(out, grip, (size_t)g);
    } else {
        evbuffer_add_printf(out,
                            "POST %s%s%s HTTP/1.1\r\nHost: %s:%d\r\n%s%s"
                            "Content-Type: text/plain\r\nContent-Length: %zu\r\n\r\n",
                            path_pre, ch, path_post, opt.host, opt.port,
                            opt.header ? opt.header : "", opt.header ? "\r\n" : "", blen);
        evbuffer_add(out, body, blen);
    }
    c->sent_at[(c->head + c->inflight) % MAX_DEPTH] = now;
    c->inflight++;
    st.sent++;
}

static void pconn_pump(pconn *c)
{
    while (c->bev && !c->close && c->inflight < opt.depth && may_send())
        pconn_send(c);
}

static void pub_pump_all(void)
{
    for (unsigned i = 0; i < opt.conns; i++)
        pconn_pump(&pconns[i]);
    if (pub_done())
        event_base_loopbreak(base);
}

/* The connection failed or closed: what was in flight is lost; reopen it. */
/* Close c and open it again. 'failed': it broke (at most 10,000 reopens,
 * so a server that refuses does not spin us); else the server said
 * Connection: close after an answer (Pushpin's control API does on each),
 * which is not counted. */
static void pconn_reopen(pconn *c, int failed)
{
    st.errors += c->inflight;
    c->inflight = 0;
    bufferevent_free(c->bev);
    c->bev = NULL;
    if (!stopping && (!failed || reconnects++ < 10000))
        pconn_open(c);
    if (pub_done())
        event_base_loopbreak(base);
}

static void pconn_lost(pconn *c)
{
    pconn_reopen(c, 1);
}

static void pconn_response(pconn *c)
{
    uint64_t now = mono_ns();
    if (c->status >= 200 && c->status < 300)
        st.ok++;
    else
        st.non2xx++;
    hist_add(&st, (now - c->sent_at[c->head]) / 1000);
    st.last_ns = now;
    c->head = (c->head + 1) % MAX_DEPTH;
    c->inflight--;
    c->in_body = 0;
}

static void pconn_read(struct bufferevent *bev, void *arg)
{
    pconn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        if (!c->in_body) {
            struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
            if (p.pos < 0) {
                if (evbuffer_get_length(in) > 8192)
                    goto broken;
                break;
            }
            size_t hl = (size_t)p.pos + 4;
            c->status = parse_head((char *)evbuffer_pullup(in, (ev_ssize_t)hl), hl,
                                   &c->chunked, &c->body_left, &c->close);
            evbuffer_drain(in, hl);
            if (c->status < 0 || !c->inflight || (!c->chunked && c->body_left < 0))
                goto broken;
            c->in_body = 1;
            memset(&c->dc, 0, sizeof(c->dc));
        }
        if (c->chunked) {
            char buf[4096];
            ev_ssize_t n = evbuffer_copyout(in, buf, sizeof(buf));
            if (n <= 0)
                break;
            evbuffer_drain(in, dechunk_feed(&c->dc, buf, (size_t)n, NULL, NULL));
            if (c->dc.state == CH_BAD)
                goto broken;
            if (c->dc.state != CH_DONE)
                continue;
        } else {
            size_t n = evbuffer_get_length(in);
            size_t k = n < (size_t)c->body_left ? n : (size_t)c->body_left;
            evbuffer_drain(in, k);
            c->body_left -= (long long)k;
            if (c->body_left > 0)
                break;
        }
        pconn_response(c);
        if (c->close) {
            if (!c->inflight) {
                c->close = 0;
                pconn_reopen(c, 0); /* nothing lost */
            }
            return;
        }
    }
    pub_pump_all();
    return;
broken:
    pconn_lost(c);
}

static void pconn_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (!(what & BEV_EVENT_CONNECTED))
        pconn_lost(arg);
}

static void pconn_open(pconn *c)
{
    c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    c->in_body = 0;
    c->head = 0;
    c->close = 0;
    if (!c->bev)
        return;
    bufferevent_setcb(c->bev, pconn_read, NULL, pconn_event, c);
    bufferevent_enable(c->bev, EV_READ);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&server, sizeof(server)) <
        0) {
        bufferevent_free(c->bev);
        c->bev = NULL;
        st.errors++;
        return;
    }
    int one = 1;
    setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    pconn_pump(c);
}

static void pub_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    pub_pump_all();
}

/* At the time limit: send nothing more, wait 2 s at most for what is in flight. */
static void pub_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    stopping = 1;
    if (pub_done())
        event_base_loopbreak(base);
    struct timeval grace = {2, 0};
    event_base_loopexit(base, &grace);
}

static void pub_worker(void)
{
    pconns = calloc(opt.conns, sizeof(*pconns));
    if (!pconns)
        exit(1);
    t0_ns = mono_ns();
    st.first_ns = t0_ns;
    struct event *tick = NULL;
    if (opt.rate > 0) {
        struct timeval ms = {0, 1000};
        tick = event_new(base, -1, EV_PERSIST, pub_tick, NULL);
        event_add(tick, &ms);
    }
    for (unsigned i = 0; i < opt.conns; i++)
        pconn_open(&pconns[i]);
    if (!pub_done())
        event_base_dispatch(base);
    for (unsigned i = 0; i < opt.conns; i++) {
        st.errors += pconns[i].inflight;
        if (pconns[i].bev)
            bufferevent_free(pconns[i].bev);
    }
    free(pconns);
    if (tick)
        event_free(tick);
}

/* ---- self-test of the parsers ---- */

/* Feed an SSE text to a fresh subscriber, chunked (in chunks of 1-7 bytes)
 * or raw, in pieces of 'piece' bytes; checks what it delivers. Returns 0 if
 * right. */
static int selftest_one(const char *sse, int chunked, size_t piece)
{
    static const char want[] =
        "s=0 t=5 a\nb|s=1 t=5 c\ng|s=2 t=5 d\n\ne|s=3 t=5 f|s=3 t=5 f|";
    char body[4096];
    size_t len = 0, n = strlen(sse);
    if (chunked) {
        for (size_t i = 0, k = 1; i < n; i += k, k = k % 7 + 1) {
            size_t m = n - i < k ? n - i : k;
            len += (size_t)snprintf(body + len, sizeof(body) - len,
                                    k == 3 ? "%zX;ext=1\r\n" : "%zx\r\n", m);
            memcpy(body + len, sse + i, m);
            len += m;
            memcpy(body + len, "\r\n", 2);
            len += 2;
        }
        len += (size_t)snprintf(body + len, sizeof(body) - len, "0\r\nX-T: 1\r\n\r\n");
    } else {
        memcpy(body, sse, n);
        len = n;
    }
    sub s = {.chunked = chunked};
    memset(&st, 0, sizeof(st));
    selftest_len = 0;
    selftest_log[0] = '\0';
    for (size_t i = 0; i < len; i += piece) {
        size_t m = len - i < piece ? len - i : piece;
        if (chunked)
            dechunk_feed(&s.dc, body + i, m, sse_feed, &s);
        else
            sse_feed(&s, body + i, m);
    }
    if (s.unique)
        st.gaps += s.max_seq + 1 - s.unique;
    int ok = strcmp(selftest_log, want) == 0 && st.deliveries == 5 && s.unique == 4 &&
             st.dups == 1 && st.gaps == 0 && st.unparsed == 0 &&
             (!chunked || s.dc.state == CH_DONE);
    if (!ok)
        fprintf(stderr,
                "ssebench: selftest failed (chunked %d, pieces of %zu): got '%s'\n",
                chunked, piece, selftest_log);
    free(s.line);
    free(s.data);
    free(s.seen);
    return ok ? 0 : -1;
}

static int selftest(void)
{
    /* Every line ending, data with and without a space after the colon, a
     * field without a colon, comments, fields that are not data, a duplicate. */
    static const char sse[] = "retry: 3000\n: ok\n\n"
                              "event: session\ndata: {\"id\":\"0123456789abcdef\"}\n\n"
                              "id: 1\ndata: s=0 t=5 a\ndata: b\n\n"
                              "id: 2\r\nevent: x\r\ndata:s=1 t=5 c\r\ndata: g\r\n\r\n"
                              "data: s=2 t=5 d\rdata\rdata: e\r\r"
                              ": hb\n"
                              "data: s=3 t=5 f\n\n"
                              "id: 9\ndata: s=3 t=5 f\n\n";
    int chunked, close, failed = 0;
    long long clen;
    selftest_cap = 256;
    selftest_log = malloc(selftest_cap);
    if (!selftest_log)
        return 1;
    for (size_t piece = 1; piece <= 2 * sizeof(sse); piece++)
        for (int c = 0; c <= 1; c++)
            failed |= selftest_one(sse, c, piece) < 0;
    static const char h1[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n";
    static const char h2[] = "HTTP/1.1 201 Created\r\ncontent-length: 40\r\n"
                             "Connection: close\r\n\r\n";
    if (parse_head(h1, strlen(h1), &chunked, &clen, &close) != 200 || !chunked ||
        clen != -1 || close)
        failed = 1, fprintf(stderr, "ssebench: selftest failed: response head 1\n");
    if (parse_head(h2, strlen(h2), &chunked, &clen, &close) != 201 || chunked ||
        clen != 40 || !close)
        failed = 1, fprintf(stderr, "ssebench: selftest failed: response head 2\n");
    uint64_t vals[] = {0, 1, 127, 128, 1000, 65535, 1000000, 123456789};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        double v = hist_value(hist_index(vals[i]));
        if (v < (double)vals[i] * 0.98 - 1 || v > (double)vals[i] * 1.02 + 1)
            failed = 1,
            fprintf(stderr, "ssebench: selftest failed: histogram %" PRIu64 " -> %.0f\n",
                    vals[i], v);
    }
    free(selftest_log);
    selftest_log = NULL;
    printf("selftest: %s\n", failed ? "FAILED" : "ok");
    return failed;
}

/* ---- processes ---- */

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

static void merge(stats *into, const stats *s)
{
    uint64_t *a = (uint64_t *)into;
    const uint64_t *b = (const uint64_t *)s;
    uint64_t first = into->first_ns, last = into->last_ns, max = into->max_us;
    uint64_t req = into->req_ns, done = into->done_ns, open = into->open_ns;
    for (size_t i = 0; i < sizeof(*s) / sizeof(uint64_t); i++)
        a[i] += b[i];
    into->first_ns = !first || (s->first_ns && s->first_ns < first) ? s->first_ns : first;
    into->last_ns = s->last_ns > last ? s->last_ns : last;
    into->max_us = s->max_us > max ? s->max_us : max;
    into->req_ns = !req || (s->req_ns && s->req_ns < req) ? s->req_ns : req;
    into->done_ns = s->done_ns > done ? s->done_ns : done;
    into->open_ns = s->open_ns > open ? s->open_ns : open;
}

/* Worker process 'idx': runs its share, writes 'R' when its subscribers are
 * settled (sub) and then its stats to fd. */
static void worker(int mode_sub, unsigned idx, int fd)
{
    me = idx;
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    if (!base)
        exit(1);
    struct event *term = evsignal_new(base, SIGTERM, stop_loop, NULL);
    struct event *intr = evsignal_new(base, SIGINT, stop_loop, NULL);
    event_add(term, NULL);
    event_add(intr, NULL);
    struct timeval limit = {(time_t)opt.duration,
                            (suseconds_t)((opt.duration - (time_t)opt.duration) * 1e6)};
    struct event *deadline = evtimer_new(base, mode_sub ? stop_loop : pub_deadline, NULL);
    event_add(deadline, &limit);
    if (mode_sub) {
        unsigned first = (unsigned)((uint64_t)opt.n * idx / opt.procs);
        unsigned last = (unsigned)((uint64_t)opt.n * (idx + 1) / opt.procs);
        sub_worker(first, last - first, fd);
    } else {
        /* This worker's share of the connections, the count (the first
         * workers take the remainder, so sequence numbers stay gapless) and
         * the rate. */
        unsigned k = opt.conns;
        opt.conns = k * (idx + 1) / opt.procs - k * idx / opt.procs;
        my_count = opt.count ? opt.count / opt.procs + (idx < opt.count % opt.procs)
                             : UINT64_MAX;
        opt.rate /= opt.procs;
        pub_worker();
    }
    /* Done: a second TERM (timeout(1) signals the whole group, and the
     * parent passes its own on) must not kill us before we report, as it
     * would once freeing the events put back SIG_DFL: blocked, then ignored. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    event_free(deadline);
    event_free(term);
    event_free(intr);
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    event_base_free(base);
    const char *p = (const char *)&st;
    size_t left = sizeof(st);
    while (left) {
        ssize_t k = write(fd, p, left);
        if (k <= 0)
            exit(1);
        p += k, left -= (size_t)k;
    }
    exit(0);
}

static void report(int mode_sub, const stats *s, double wall)
{
    double window =
        s->last_ns > s->first_ns ? (double)(s->last_ns - s->first_ns) / 1e9 : 0;
    if (mode_sub) {
        printf("mode=sub subscribers=%" PRIu64 " connected=%" PRIu64 " failed=%" PRIu64
               " closed=%" PRIu64 " deliveries=%" PRIu64 " unique=%" PRIu64
               " dups=%" PRIu64 " gaps=%" PRIu64 " disorder=%" PRIu64
               " unparsed=%" PRIu64,
               s->subs, s->connected, s->failed, s->closed, s->deliveries, s->unique,
               s->dups, s->gaps, s->disorder, s->unparsed);
        if (opt.expect) {
            printf(" lost=%" PRIu64, s->connected * opt.expect > s->unique
                                         ? s->connected * opt.expect - s->unique
                                         : 0);
            /* From the first request to the last subscriber's --expect-th
             * message (e.g. attach-and-drain); -1 unless every one got there. */
            printf(" complete=%" PRIu64 " complete_ms=%.3f", s->complete,
                   s->complete == s->subs && s->done_ns > s->req_ns
                       ? (double)(s->done_ns - s->req_ns) / 1e6
                       : -1.0);
        }
        /* From the first request to the last subscriber's opening bytes;
         * -1 unless every one connected. */
        printf(" open_ms=%.3f", s->connected == s->subs && s->open_ns > s->req_ns
                                    ? (double)(s->open_ns - s->req_ns) / 1e6
                                    : -1.0);
        printf(" window_s=%.3f deliveries_s=%.0f", window,
               window > 0 ? (double)s->deliveries / window : 0);
    } else {
        printf("mode=pub sent=%" PRIu64 " ok=%" PRIu64 " non2xx=%" PRIu64
               " errors=%" PRIu64 " elapsed_s=%.3f req_s=%.0f",
               s->sent, s->ok, s->non2xx, s->errors, window,
               window > 0 ? (double)(s->ok + s->non2xx) / window : 0);
    }
    printf(" p50_ms=%.3f p99_ms=%.3f max_ms=%.3f wall_s=%.2f\n", hist_quantile(s, 0.5),
           hist_quantile(s, 0.99), (double)s->max_us / 1000.0, wall);
}

/* Fork the workers, pass on signals, say when every subscriber is settled,
 * merge and print what they report. Returns the exit status. */
static int run(int mode_sub)
{
    static stats got[64];
    static size_t have[64];
    static char said_ready[64];
    pid_t pids[64];
    struct pollfd pfd[64];
    unsigned nready = 0;
    int alive = (int)opt.procs;
    uint64_t start = mono_ns();
    uint64_t stop = start + (uint64_t)((opt.duration + 15) * 1e9);
    fflush(stdout);
    for (unsigned i = 0; i < opt.procs; i++) {
        int p[2];
        if (pipe(p) < 0) {
            perror("ssebench: pipe");
            return 1;
        }
        pids[i] = fork();
        if (pids[i] < 0) {
            perror("ssebench: fork");
            return 1;
        }
        if (pids[i] == 0) {
            close(p[0]);
            worker(mode_sub, i, p[1]);
        }
        close(p[1]);
        pfd[i] = (struct pollfd){.fd = p[0], .events = POLLIN};
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    while (alive > 0) {
        if (got_signal) {
            for (unsigned i = 0; i < opt.procs; i++)
                kill(pids[i], SIGTERM);
            got_signal = 0;
        }
        uint64_t now = mono_ns();
        if (now > stop) {
            fprintf(stderr, "ssebench: workers overran the time limit, killing them\n");
            for (unsigned i = 0; i < opt.procs; i++)
                if (pfd[i].fd >= 0)
                    kill(pids[i], SIGKILL);
            break;
        }
        if (poll(pfd, opt.procs, 200) < 0 && errno != EINTR)
            break;
        for (unsigned i = 0; i < opt.procs; i++) {
            if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            /* A sub worker first writes 'R', then its stats. */
            char buf[sizeof(stats)];
            int want_r = mode_sub && !said_ready[i];
            ssize_t k = read(pfd[i].fd, buf, want_r ? 1 : sizeof(stats) - have[i]);
            if (k <= 0) {
                close(pfd[i].fd);
                pfd[i].fd = -1;
                alive--;
            } else if (want_r) {
                said_ready[i] = 1;
                if (++nready == opt.procs) {
                    fprintf(stderr, "ssebench: every subscriber settled after %.2f s\n",
                            (double)(mono_ns() - start) / 1e9);
                    FILE *f = opt.ready ? fopen(opt.ready, "w") : NULL;
                    if (f)
                        fclose(f);
                }
            } else {
                memcpy((char *)&got[i] + have[i], buf, (size_t)k);
                have[i] += (size_t)k;
            }
        }
    }
    stats total = {0};
    int status = 0;
    for (unsigned i = 0; i < opt.procs; i++) {
        int ws;
        waitpid(pids[i], &ws, 0);
        if (have[i] == sizeof(stats))
            merge(&total, &got[i]);
        else
            status = 1;
        if (!WIFEXITED(ws) || WEXITSTATUS(ws))
            status = 1;
    }
    report(mode_sub, &total, (double)(mono_ns() - start) / 1e9);
    return status;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: ssebench sub|pub [options]\n"
        "       ssebench selftest   (checks the stream parsers)\n"
        "  --host ADDR        server address (127.0.0.1)\n"
        "  --port N           server port (8080)\n"
        "  --path FMT         request path, %%s is the channel (/channels/%%s/events);\n"
        "                     Nchan: --path '/sub/%%s' and --path '/pub?id=%%s'\n"
        "  --channel NAME     channel name, or prefix with --channels (bench)\n"
        "  --channels N       channels NAME0..NAME<N-1> (1: just NAME)\n"
        "  --procs P          worker processes (1)\n"
        "  --duration S       hard time limit in seconds (30)\n"
        "  --header LINE      one more request header, e.g. 'Authorization: Bearer T'\n"
        "sub: subscriber i takes channel i %% N and source address 127.0.0.(2 + i %% "
        "253)\n"
        "  -n N               subscribers (1)\n"
        "  --batch B          connections in progress at once (200)\n"
        "  --expect M         stop when every subscriber has M distinct messages;\n"
        "                     complete_ms: from the first request until then\n"
        "  --quiet-ms Q       stop Q ms after the last message (2000)\n"
        "  --ready FILE       create FILE once every subscriber is connected or failed\n"
        "                     (open_ms: from the first request until all are open)\n"
        "pub: message i goes to channel i %% N\n"
        "  --conns K          keep-alive connections (1)\n"
        "  --depth D          requests in flight per connection, 1-%d (1)\n"
        "  --rate R           messages per second in all, 0 = as fast as possible (0)\n"
        "  --count M          messages in all, 0 = until --duration (0)\n"
        "  --size B           payload bytes (100); 0: an empty body, e.g. to create\n"
        "                     connections (--path '/channels/%%s/connections')\n"
        "  --lines L          split the payload into L lines (1)\n"
        "  --grip             Pushpin's control API: --path '/publish/' (no %%s), the\n"
        "                     channel and an http-stream item in a JSON body\n",
        MAX_DEPTH);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", 1, 0, 'H'},     {"port", 1, 0, 'p'},     {"path", 1, 0, 'P'},
        {"channel", 1, 0, 'c'},  {"channels", 1, 0, 'C'}, {"procs", 1, 0, 'j'},
        {"duration", 1, 0, 'd'}, {"batch", 1, 0, 'b'},    {"expect", 1, 0, 'e'},
        {"quiet-ms", 1, 0, 'q'}, {"ready", 1, 0, 'r'},    {"conns", 1, 0, 'k'},
        {"depth", 1, 0, 'D'},    {"rate", 1, 0, 'R'},     {"count", 1, 0, 'm'},
        {"size", 1, 0, 's'},     {"lines", 1, 0, 'l'},    {"header", 1, 0, 'A'},
        {"grip", 0, 0, 'G'},     {"help", 0, 0, 'h'},     {0, 0, 0, 0}};
    if (argc == 2 && !strcmp(argv[1], "selftest"))
        return selftest();
    if (argc < 2 || (strcmp(argv[1], "sub") && strcmp(argv[1], "pub"))) {
        usage(argc > 1 && !strcmp(argv[1], "--help") ? stdout : stderr);
        return argc > 1 && !strcmp(argv[1], "--help") ? 0 : 2;
    }
    int mode_sub = !strcmp(argv[1], "sub");
    int c;
    while ((c = getopt_long(argc - 1, argv + 1, "n:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'H':
            opt.host = optarg;
            break;
        case 'p':
            opt.port = atoi(optarg);
            break;
        case 'P':
            opt.path = optarg;
            break;
        case 'c':
            opt.channel = optarg;
            break;
        case 'C':
            opt.nchannels = (unsigned)atoi(optarg);
            break;
        case 'j':
            opt.procs = (unsigned)atoi(optarg);
            break;
        case 'd':
            opt.duration = atof(optarg);
            break;
        case 'n':
            opt.n = (unsigned)atoi(optarg);
            break;
        case 'b':
            opt.batch = (unsigned)atoi(optarg);
            break;
        case 'e':
            opt.expect = strtoull(optarg, NULL, 10);
            break;
        case 'q':
            opt.quiet_ms = (unsigned)atoi(optarg);
            break;
        case 'r':
            opt.ready = optarg;
            break;
        case 'k':
            opt.conns = (unsigned)atoi(optarg);
            break;
        case 'D':
            opt.depth = (unsigned)atoi(optarg);
            break;
        case 'R':
            opt.rate = atof(optarg);
            break;
        case 'm':
            opt.count = strtoull(optarg, NULL, 10);
            break;
        case 's':
            opt.size = (unsigned)atoi(optarg);
            break;
        case 'l':
            opt.lines = (unsigned)atoi(optarg);
            break;
        case 'A':
            opt.header = optarg;
            break;
        case 'G':
            opt.grip = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    const char *pct = strstr(opt.path, "%s");
    if (opt.grip && !pct) { /* the channel goes in the body */
        if (mode_sub || opt.lines != 1 || strlen(opt.path) >= sizeof(path_pre) ||
            strchr(opt.path, '%')) {
            fprintf(stderr, "ssebench: --grip is for pub, one line, a path without %%\n");
            return 2;
        }
        strcpy(path_pre, opt.path);
        pct = NULL;
    } else if (!pct || strstr(pct + 2, "%") ||
               (size_t)(pct - opt.path) >= sizeof(path_pre) ||
               strlen(pct + 2) >= sizeof(path_post)) {
        fprintf(stderr, "ssebench: --path needs exactly one %%s\n");
        return 2;
    }
    if (pct) {
        memcpy(path_pre, opt.path, (size_t)(pct - opt.path));
        strcpy(path_post, pct + 2);
    }
    if (opt.header && (strchr(opt.header, '\r') || strchr(opt.header, '\n') ||
                       !strchr(opt.header, ':'))) {
        fprintf(stderr, "ssebench: --header takes one 'Name: value' line\n");
        return 2;
    }
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &server.sin_addr) != 1 ||
        (ntohl(server.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "ssebench: --host must be a loopback IPv4 address (127.x.y.z)\n");
        return 2;
    }
    if (opt.procs < 1 || opt.procs > 64 || opt.nchannels < 1 || opt.batch < 1 ||
        opt.duration <= 0 || opt.duration > 3600 || opt.conns < 1 || opt.conns > 10000 ||
        opt.depth < 1 || opt.depth > MAX_DEPTH || opt.size > sizeof(body) - 64 ||
        opt.lines < 1 || (opt.lines > 1 && opt.lines > opt.size / 2)) {
        fprintf(stderr, "ssebench: an option is out of range (see --help)\n");
        return 2;
    }
    if (mode_sub && opt.n / opt.procs > 19000) {
        fprintf(stderr,
                "ssebench: at most 19000 subscribers per process: raise --procs\n");
        return 2;
    }
    if (!mode_sub && opt.conns < opt.procs) {
        fprintf(stderr, "ssebench: --conns must be at least --procs\n");
        return 2;
    }
    return run(mode_sub);
}
