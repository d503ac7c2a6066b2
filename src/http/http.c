/* http.c - the HTTP API: routing, validation, handlers (on httpd). */
#include "src/http/http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h> /* only its query-string and URI-decoding helpers */
#include <event2/keyvalq_struct.h>

#include "src/base/log.h"
#include "src/base/util.h"
#include "src/broker/node.h"
#include "src/domain/pattern.h"
#include "src/domain/publish.h"
#include "src/http/http_auth.h"
#include "src/http/http_front.h"
#include "src/http/http_metrics.h"
#include "src/http/http_private.h"
#include "src/http/http_reply.h"
#include "src/http/http_sessions.h"
#include "src/http/http_traces.h"
#include "src/http/http_stream.h"

static const char page_html[] =
#include "src/http/page.inc"
    ;
static const char dashboard_html[] =
#include "src/http/dashboard.inc"
    ;

#define HISTORY_LIMIT_MAX 100000
#define LAST_ID_MAX 128 /* longer Last-Event-IDs cannot be ours: replay all */

enum {
    M_GET = HTTPD_GET,
    M_POST = HTTPD_POST,
    M_PUT = HTTPD_PUT,
    M_DELETE = HTTPD_DELETE,
};

/* What a route needs found before its handler runs. */
enum {
    NEED_NONE,
    NEED_CHAN, /* the channel: 404 without it */
    NEED_CONN, /* the channel and the connection: 404 without them */
    NEED_ID    /* the capture is an id of the handler's, not a channel name */
};

/* What a route asks of the caller's rights (with access control on). */
enum {
    ACC_OPEN,    /* anyone: the page, /health */
    ACC_BROKER,  /* manage on the broker itself ("*") */
    ACC_CHANNEL, /* GET: subscribe or manage; PUT, DELETE: manage */
    ACC_EVENTS,  /* POST: publish; a stream: subscribe (replay: and history);
                    JSON history: subscribe and history */
    ACC_CONNS,   /* POST: subscribe; GET (the list): manage */
    ACC_OWNER,   /* the connection's owner with subscribe, or manage */
    ACC_TOPICS   /* identified here; subscribe checked per channel (h_topics) */
};

struct route;

/* One request being answered. It lives until the answer is given: a handler
 * that waits (for the store, for a lookup) keeps it (ctx_wait), and if the
 * client leaves meanwhile 'req' becomes NULL and nothing is answered. */
typedef struct http_ctx {
    httpd_req *req;
    http_server *h;
    broker *b;
    const http_opts *o;
    const struct route *r;
    int method;
    bool sse;      /* Accept: text/event-stream */
    bool envelope; /* a stream's ?envelope=1 */
    char *arg[2];  /* decoded channel name and connection id, when the route has them */
    char *last_id; /* a subscriber's Last-Event-ID (copied: the head may go) */
    struct evkeyvalq query;
    chan *ch; /* the route's channel once found (a reference) */
    conn *cn; /* its connection once found (look it up again after a wait) */
    bool waiting;
    bool need_conn, optional;         /* what find() was asked for */
    void (*then)(struct http_ctx *c); /* what runs once the lookup is over */
    pub_batch batch;                  /* a publish, parsed */
    identity id;                      /* who asks (with access control on) */
} http_ctx;

typedef void (*route_fn)(http_ctx *c);

static int allows(const http_ctx *c, unsigned acts, const char *chan_name);

typedef struct route {
    const char *pattern; /* segments; '*' captures one */
    unsigned methods;
    route_fn fn;
    int need;   /* NEED_*: found before 'fn' runs */
    int access; /* ACC_* */
} route;

/* ---- the request's life ---- */

static void ctx_free(http_ctx *c)
{
    evhttp_clear_headers(&c->query);
    free(c->arg[0]);
    free(c->arg[1]);
    free(c->last_id);
    pub_batch_free(&c->batch);
    identity_clear(&c->id);
    chan_unref(c->ch);
    free(c);
}

static void ctx_gone(httpd_req *req, void *arg)
{
    ((http_ctx *)arg)->req = NULL;
}

/* The answer will come later: keep the context. */
static void ctx_wait(http_ctx *c)
{
    c->waiting = true;
    httpd_on_close(c->req, ctx_gone, c);
}

/* The wait is over. Returns false if the client went away meanwhile (then the
 * context is freed). */
static bool ctx_resume(http_ctx *c)
{
    c->waiting = false;
    if (!c->req) {
        ctx_free(c);
        return false;
    }
    httpd_on_close(c->req, NULL, NULL);
    return true;
}

/* A step of the handler is over: free the context unless it waits again. */
static void ctx_step_done(http_ctx *c)
{
    if (!c->waiting)
        ctx_free(c);
}

/* ---- helpers ---- */

/* Count a publish refused here (a BROKER_PUB_* result): on a front, in a
 * job to the main loop, which owns the broker's figures. */
static void pub_refused(http_ctx *c, int result)
{
    if (c->h->front)
        http_front_refused(c->h->front, result);
    else
        broker_publish_refused(c->b, result);
}

static void reply_error(http_ctx *c, int status, const char *code, const char *text)
{
    http_error(c->req, c->o, status, code, "%s", text);
}

static const char *header(http_ctx *c, const char *name)
{
    return httpd_header(c->req, name);
}

/* The request body as a contiguous buffer (borrowed). */
static const char *body(http_ctx *c, size_t *len)
{
    return httpd_body(c->req, len);
}

/* Send a subscriber away to retry later (an EventSource gives up for good
 * on any status but 200). */
static void refuse_stream(http_ctx *c, const char *why)
{
    atomic_fetch_add_explicit(&c->h->sh->refused_streams, 1, memory_order_relaxed);
    http_refuse_stream(c->req, c->o, why);
}

/* Answer a broker error. A subscriber refused by a limit is sent away with a
 * retry; anyone else gets a JSON error. */
static void broker_error(http_ctx *c, int why, const char *err)
{
    if (why == BROKER_ELIMIT && c->sse && c->method == M_GET) {
        refuse_stream(c, "busy: limit reached");
        return;
    }
    switch (why) {
    case BROKER_ELIMIT:
        httpd_add_header(c->req, "Retry-After", "5");
        reply_error(c, 503, "limit_reached", err ? err : "a limit is reached");
        break;
    case BROKER_ENOCHAN:
        http_error(c->req, c->o, 404, "channel_not_found", "channel '%s' does not exist",
                   c->arg[0]);
        break;
    case BROKER_ENOCONN:
        http_error(c->req, c->o, 404, "connection_not_found",
                   "connection '%s' does not exist in channel '%s'", c->arg[1],
                   c->arg[0]);
        break;
    case BROKER_ECLOSING:
        httpd_add_header(c->req, "Retry-After", "1");
        reply_error(c, 503, "shutting_down", "the broker is shutting down");
        break;
    case BROKER_ENOMEM:
        reply_error(c, 503, "out_of_memory", "out of memory");
        break;
    case BROKER_EFULL:
        httpd_add_header(c->req, "Retry-After", "5");
        reply_error(c, 503, "memory_full",
                    "retained messages take limits.max_memory: nothing was stored");
        break;
    case KV_EFULL:
        httpd_add_header(c->req, "Retry-After", "5");
        reply_error(c, 503, "store_full",
                    "the store is out of memory: nothing was stored");
        break;
    default:
        http_error(c->req, c->o, 503, "store_unavailable", "the store failed: %s",
                   broker_strerror(why));
    }
}

/* ---- finding the route's channel and connection ----
 *
 * In memory first; a channel or connection this node has not heard of may
 * have been created on another node a moment ago, so the broker asks the
 * store, and the handler runs once it answers. */

static void found_chan(int status, chan *ch, void *arg);
static void found_conn(int status, conn *cn, void *arg);

static void find_conn(http_ctx *c)
{
    int why;
    conn *cn = broker_conn_lookup(c->b, c->ch, c->arg[1], &why, found_conn, c);
    if (cn) {
        c->cn = cn;
        c->then(c);
    } else if (why == BROKER_EPENDING) {
        ctx_wait(c);
    } else {
        broker_error(c, why, NULL);
    }
}

static void found_conn(int status, conn *cn, void *arg)
{
    http_ctx *c = arg;
    if (!ctx_resume(c))
        return;
    if (cn) {
        c->cn = cn;
        c->then(c);
    } else {
        broker_error(c, status, NULL);
    }
    ctx_step_done(c);
}

/* Find the route's channel ('create': make it when there is none and
 * autocreate allows), and with 'need_conn' its connection, then run 'then'.
 * Answers 404 (or 503) itself when they cannot be had. 'optional': run 'then'
 * with c->ch NULL when there is no such channel. */
static void publish_now(http_ctx *c);

/* The channel (or connection) could not be found: answer, and count a
 * publish that ends here. */
static void lookup_failed(http_ctx *c, int why)
{
    if (c->then == publish_now)
        pub_refused(c, broker_pub_result(why));
    broker_error(c, why, NULL);
}

static void find(http_ctx *c, bool create, bool need_conn, bool optional,
                 void (*then)(http_ctx *c))
{
    int why;
    chan *ch;
    c->then = then;
    c->need_conn = need_conn;
    c->optional = optional;
    if ((ch = broker_chan_lookup(c->b, c->arg[0], create, &why, found_chan, c))) {
        c->ch = chan_ref(ch);
        if (need_conn)
            find_conn(c);
        else
            then(c);
    } else if (why == BROKER_EPENDING) {
        ctx_wait(c);
    } else if (why == BROKER_ENOCHAN && optional) {
        then(c);
    } else {
        lookup_failed(c, why);
    }
}

static void found_chan(int status, chan *ch, void *arg)
{
    http_ctx *c = arg;
    if (!ctx_resume(c))
        return;
    if (ch) {
        c->ch = chan_ref(ch);
        if (c->need_conn)
            find_conn(c);
        else
            c->then(c);
    } else if (status == BROKER_ENOCHAN && c->optional) {
        c->then(c);
    } else {
        lookup_failed(c, status);
    }
    ctx_step_done(c);
}

/* ---- publishing: the reply waits for the store ---- */

/* The answer to a publish, from the main loop's broker or from a front's
 * job coming back: the same bytes either way. */
void http_publish_answer(void *arg, int status, const uint64_t *ids_, size_t n,
                         int64_t ts_us)
{
    http_ctx *c = arg;
    json_t *ids;

    if (!ctx_resume(c))
        return;
    if (status < 0) {
        broker_error(c, status, NULL);
    } else if (c->batch.is_array) {
        ids = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(ids, json_sprintf("%llu", (unsigned long long)ids_[i]));
        http_json(c->req, c->o, 201, json_pack("{s:o}", "ids", ids));
    } else {
        /* The common answer, written without building a JSON object (and
         * sent without a buffer: httpd_reply_bytes). */
        char text[80], *e = text;
        e = fmt_u64(stpcpy(e, "{\"id\":\""), ids_[0]);
        e = stpcpy(fmt_i64(stpcpy(e, "\",\"timestamp\":"), ts_us), "}\n");
        httpd_reply_bytes(c->req, 201, "application/json", text, (size_t)(e - text));
    }
    ctx_free(c);
}

static void published(int status, const uint64_t *ids, size_t n, int64_t ts_us, void *arg)
{
    http_publish_answer(arg, status, ids, n, ts_us);
}

/* Backpressure: while the streams of this process hold output older than
 * limits.max_delivery_lag_ms that the loop has not written yet, delivery is
 * behind what is published, and a publish accepted now would only wait
 * longer. Refuse it (503, Retry-After) before reading its body, and count
 * it; returns true when refused. What was acknowledged is not touched. */
static bool overloaded(http_ctx *c)
{
    char after[24];
    int64_t lag;
    if (c->o->max_delivery_lag_ms <= 0 ||
        (lag = httpd_delivery_lag_ms(c->req)) < c->o->max_delivery_lag_ms)
        return false;
    pub_refused(c, BROKER_PUB_OVERLOADED);
    /* The backlog takes about as long again to write: come back after it. */
    snprintf(after, sizeof(after), "%lld", (long long)(lag / 1000 + 1));
    httpd_add_header(c->req, "Retry-After", after);
    http_error(c->req, c->o, 503, "overloaded",
               "delivery is %lld ms behind (limits.max_delivery_lag_ms %d): retry later",
               (long long)lag, c->o->max_delivery_lag_ms);
    return true;
}

/* Publish the parsed batch to c->ch, or to its connection c->cn. */
static void publish_now(http_ctx *c)
{
    bool is_array = c->batch.is_array;
    int rc =
        broker_publish(c->b, c->ch, c->cn ? c->cn->id : NULL, &c->batch, published, c);
    c->batch.is_array = is_array; /* the batch went to the broker: keep the shape */
    if (rc == 0)
        ctx_wait(c); /* the answer comes from published(), always later */
    else
        broker_error(c, rc, NULL);
}

/* On a front loop: hand the parsed batch to the main loop, which finds or
 * creates the channel and publishes it as publish_now() would; the answer
 * comes back to http_publish_answer(). */
static void publish_relay(http_ctx *c)
{
    bool is_array = c->batch.is_array;
    size_t len;
    body(c, &len);
    if (http_front_publish(c->h->front, c->arg[0], &c->batch, len, c) < 0) {
        pub_refused(c, BROKER_PUB_OVERLOADED);
        httpd_add_header(c->req, "Retry-After", "1");
        reply_error(c, 503, "overloaded",
                    "too many publishes are waiting for the store: retry later");
        return;
    }
    c->batch.is_array = is_array; /* the batch went to the main loop: keep the shape */
    ctx_wait(c);
}

/* The targeting lists of the query string (repeatable parameters named as
 * the lists: target.h) as an object of lists, for publish_parse_with; NULL
 * when there is none or on OOM ('*oom' set). A value that is not UTF-8 is
 * kept as null, so that the parser refuses it. */
static json_t *query_lists(http_ctx *c, bool *oom)
{
    struct evkeyval *kv;
    json_t *o = NULL, *a;
    *oom = false;
    TAILQ_FOREACH (kv, &c->query, next) {
        if (!target_is_list_name(kv->key))
            continue;
        if ((!o && !(o = json_object())) ||
            (!(a = json_object_get(o, kv->key)) &&
             json_object_set_new(o, kv->key, a = json_array()) < 0) ||
            json_array_append_new(a, valid_utf8(kv->value, strlen(kv->value))
                                         ? json_string(kv->value)
                                         : json_null()) < 0) {
            json_decref(o);
            *oom = true;
            return NULL;
        }
    }
    return o;
}

/* Validate the whole request before anything is found or created: bad input
 * changes nothing. Answers and returns -1 on bad input. */
static int publish_parse_body(http_ctx *c)
{
    const char *code;
    char err[256];
    size_t len;
    const char *data = body(c, &len);
    bool oom;
    json_t *lists;
    int rc;

    if (len > c->o->max_body) {
        reply_error(c, 413, "body_too_large", "the request body is over the limit");
        return -1;
    }
    lists = query_lists(c, &oom);
    rc = oom ? -1
             : publish_parse_with(header(c, "Content-Type"), data, len,
                                  evhttp_find_header(&c->query, "event"), lists,
                                  &c->batch, &code, err, sizeof(err));
    json_decref(lists);
    if (oom) {
        reply_error(c, 503, "out_of_memory", "out of memory");
        return -1;
    }
    if (rc < 0) {
        reply_error(c, 400, code, err);
        return -1;
    }
    const char *src = evhttp_find_header(&c->query, "source_timestamp");
    int64_t src_ts;
    if (src && pub_parse_source_ts(src, &src_ts) < 0) {
        pub_batch_free(&c->batch);
        reply_error(c, 400, "invalid_source_timestamp",
                    "'source_timestamp' must be an integer from 0 to 9007199254740991 "
                    "(microseconds since the epoch)");
        return -1;
    }
    if (src)
        pub_batch_default_source_ts(&c->batch, src_ts);
    /* The publisher is stored with each message (never sent to subscribers). */
    if (pub_batch_set_publisher(&c->batch, c->id.authid, c->id.authrole) < 0) {
        pub_batch_free(&c->batch);
        reply_error(c, 503, "out_of_memory", "out of memory");
        return -1;
    }
    /* A retry reaches every subscriber of the channel and holds their
     * browsers off that long: only up to the configured bound. */
    if (pub_batch_check_retry(&c->batch, c->o->max_retry_ms, &code, err, sizeof(err)) <
        0) {
        reply_error(c, 400, code, err);
        return -1;
    }
    return 0;
}

/* ---- handlers ---- */

/* A static body, by reference. */
static void reply_static(http_ctx *c, const char *ctype, const char *body, size_t len)
{
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        reply_error(c, 503, "out_of_memory", "out of memory");
        return;
    }
    evbuffer_add_reference(out, body, len, NULL, NULL);
    httpd_reply(c->req, 200, ctype, out);
    evbuffer_free(out);
}

static void h_page(http_ctx *c)
{
    reply_static(c, "text/html; charset=utf-8", page_html, sizeof(page_html) - 1);
}

/* The dashboard (examples/dashboard.html): it reads sys.stats, /status and
 * /nodes with the caller's credentials. */
static void h_dashboard(http_ctx *c)
{
    reply_static(c, "text/html; charset=utf-8", dashboard_html,
                 sizeof(dashboard_html) - 1);
}

/* The tab icon browsers ask for: a small SVG (every current browser takes
 * one at /favicon.ico by its Content-Type). */
static void h_favicon(http_ctx *c)
{
    static const char icon[] =
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">"
        "<rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#17803d\"/>"
        "<path d=\"M3 11h2v2H3zM3 7a6 6 0 0 1 6 6H7a4 4 0 0 0-4-4zM3 3a10 10 0 0 1 10 "
        "10h-2"
        "A8 8 0 0 0 3 5z\" fill=\"#fff\"/></svg>";
    reply_static(c, "image/svg+xml", icon, sizeof(icon) - 1);
}

static void h_health(http_ctx *c)
{
    kv_store *kv = broker_store(c->b);
    int up = kv_health(kv) == 0;
    const broker_opts *bo = broker_options(c->b);
    broker_stats st;
    broker_stats_get(c->b, &st);
    http_json(
        c->req, c->o, up ? 200 : 503,
        json_pack("{s:s, s:{s:s, s:s}, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}, "
                  "s:{s:I, s:I, s:s, s:I, s:I}}",
                  "status", up ? "ok" : "degraded", "store", "type", kv_name(kv), "state",
                  up ? "up" : "unreachable", "stats", "channels", (json_int_t)st.channels,
                  "streams", (json_int_t)st.streams, "sockets",
                  (json_int_t)httpd_connections(c->h->d), "slow_disconnects",
                  (json_int_t)st.slow_closed, "refused_streams",
                  (json_int_t)(st.refused + atomic_load(&c->h->sh->refused_streams)),
                  "refused_connections",
                  (json_int_t)(atomic_load(&c->h->sh->refused) + httpd_rejected(c->h->d)),
                  "expired_channels", (json_int_t)st.expired, "memory", "used",
                  (json_int_t)st.memory, "max", (json_int_t)bo->max_memory, "policy",
                  broker_memory_policy_name(bo->memory_policy), "evicted",
                  (json_int_t)st.evicted, "rejected", (json_int_t)st.rejected));
}

static void h_metrics(http_ctx *c)
{
    if (!c->h->metrics)
        reply_error(c, 503, "shutting_down", "the broker is shutting down");
    else
        http_metrics_serve(c->h->metrics, c->req);
}

/* GET /nodes and /status: the list comes from the store. */
typedef struct held_nodes {
    httpd_req *req;
    http_server *h;
    bool status; /* /status: this node and a summary */
} held_nodes;

static void nodes_closed(httpd_req *req, void *arg)
{
    ((held_nodes *)arg)->req = NULL;
}

/* The front loops' publishes (http_fronts_stats), zeros without any. */
static json_t *fronts_status(http_fronts *fs)
{
    http_fronts_stats st;
    http_fronts_stats_get(fs, &st);
    return json_pack("{s:i, s:I, s:I, s:I, s:I, s:I}", "loops", st.loops, "limit",
                     (json_int_t)st.limit, "publishes", (json_int_t)st.posted, "refused",
                     (json_int_t)st.refused, "waiting", (json_int_t)st.waiting,
                     "waiting_max", (json_int_t)st.waiting_max);
}

static void nodes_listed(int status, json_t *nodes, void *arg)
{
    held_nodes *hn = arg;
    http_server *h = hn->h;
    json_t *n;
    size_t i, online = 0, streams = 0, conns = 0;

    if (!hn->req)
        goto out;
    httpd_on_close(hn->req, NULL, NULL);
    if (status < 0) {
        http_error(hn->req, &h->o, 503, "store_unavailable", "the store failed: %s",
                   broker_strerror(status));
        goto out;
    }
    if (!hn->status) {
        http_json(hn->req, &h->o, 200, json_pack("{s:O}", "nodes", nodes));
        goto out;
    }
    json_array_foreach (nodes, i, n) {
        if (strcmp(json_string_value(json_object_get(n, "status")), "online") != 0)
            continue;
        online++;
        streams += (size_t)json_integer_value(json_object_get(n, "streams"));
        conns += (size_t)json_integer_value(json_object_get(n, "sockets"));
    }
    json_t *self = h->node ? node_reg_self(h->node) : json_object();
    json_object_set_new(self, "status", json_string(h->node ? "online" : "stopping"));
    kv_store *kv = broker_store(h->b);
    json_object_set_new(self, "store", json_string(kv_name(kv)));
    json_object_set_new(self, "store_state",
                        json_string(kv_health(kv) == 0 ? "up" : "unreachable"));
    if (h->o.modules)
        json_object_set_new(self, "modules", modhost_status(h->o.modules));
    json_object_set_new(self, "fronts", fronts_status(h->fronts));
    http_json(hn->req, &h->o, 200,
              json_pack("{s:o, s:{s:I, s:I, s:I, s:I}}", "node", self, "cluster", "nodes",
                        (json_int_t)json_array_size(nodes), "online", (json_int_t)online,
                        "streams", (json_int_t)streams, "sockets", (json_int_t)conns));
out:
    free(hn);
}

static void h_nodes(http_ctx *c, bool status)
{
    held_nodes *hn = malloc(sizeof(*hn));
    if (!hn || !c->h->node) {
        free(hn);
        reply_error(c, 503, hn ? "shutting_down" : "out_of_memory",
                    hn ? "the broker is shutting down" : "out of memory");
        return;
    }
    *hn = (held_nodes){c->req, c->h, status};
    httpd_on_close(c->req, nodes_closed, hn);
    if (node_reg_list(c->h->node, nodes_listed, hn) < 0) {
        httpd_on_close(c->req, NULL, NULL);
        free(hn);
        reply_error(c, 503, "store_unavailable", "the store failed");
    }
}

static void h_node_list(http_ctx *c)
{
    h_nodes(c, false);
}

static void h_status(http_ctx *c)
{
    h_nodes(c, true);
}

/* The Link header to the next page: this request's path and query, with
 * 'after' set to 'next'. */
static void next_link(http_ctx *c, const char *next)
{
    struct evbuffer *b = evbuffer_new();
    struct evkeyval *kv;
    char *link;
    if (!b)
        return;
    evbuffer_add_printf(b, "<%s?", httpd_path(c->req));
    TAILQ_FOREACH (kv, &c->query, next) {
        if (strcmp(kv->key, "after") == 0)
            continue;
        char *k = evhttp_encode_uri(kv->key), *v = evhttp_encode_uri(kv->value);
        if (k && v)
            evbuffer_add_printf(b, "%s=%s&", k, v);
        free(k);
        free(v);
    }
    char *n = evhttp_encode_uri(next);
    evbuffer_add_printf(b, "after=%s>; rel=\"next\"", n ? n : "");
    free(n);
    evbuffer_add(b, "", 1);
    if ((link = (char *)evbuffer_pullup(b, -1)))
        httpd_add_header(c->req, "Link", link);
    evbuffer_free(b);
}

/* GET /channels: one page, sorted by name, of at most 'limit' channels
 * (CHANNELS_PAGE unless asked) after the name 'after'; "next" (the name to
 * pass as 'after', also in a Link header) when more follow. A page is bounded whatever
 * the number of channels, and so is the work to find it (a sorted index). */
#define CHANNELS_PAGE 100
#define CHANNELS_PAGE_MAX 1000
static void h_channels(http_ctx *c)
{
    const char *after = evhttp_find_header(&c->query, "after");
    const char *limit_s = evhttp_find_header(&c->query, "limit");
    uint64_t limit = CHANNELS_PAGE;
    chan *v[CHANNELS_PAGE_MAX];
    json_t *arr, *o;
    bool more;

    if (limit_s &&
        (parse_u64(limit_s, &limit) < 0 || limit < 1 || limit > CHANNELS_PAGE_MAX)) {
        reply_error(c, 400, "invalid_query", "'limit' must be an integer from 1 to 1000");
        return;
    }
    size_t n = broker_chan_page(c->b, after, (size_t)limit, v, &more);
    if (!(arr = json_array()) || !(o = json_pack("{s:o}", "channels", arr))) {
        reply_error(c, 503, "out_of_memory", "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, chan_to_json(v[i]));
    if (more) {
        json_object_set_new(o, "next", json_string(v[n - 1]->name));
        next_link(c, v[n - 1]->name);
    }
    http_json(c->req, c->o, 200, o);
}

static void channel_put(http_ctx *c)
{
    size_t len;
    const char *data = body(c, &len);
    json_t *opts = NULL;
    json_error_t jerr;
    char err[256];
    bool created;
    int why;

    if (len && !(opts = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr))) {
        http_error(c->req, c->o, 400, "invalid_json", "invalid JSON: %s", jerr.text);
        return;
    }
    if (opts && !json_is_object(opts)) {
        json_decref(opts);
        reply_error(c, 400, "invalid_options", "the body must be a JSON object");
        return;
    }
    chan *ch = broker_chan_put(c->b, c->arg[0], opts, &created, &why, err, sizeof(err));
    json_decref(opts);
    if (!ch && why == BROKER_EINVAL)
        reply_error(c, 400, "invalid_options", err);
    else if (!ch)
        broker_error(c, why, err);
    else
        http_json(c->req, c->o, created ? 201 : 200, chan_to_json(ch));
}

static void channel_found(http_ctx *c)
{
    if (c->method == M_PUT) {
        channel_put(c);
    } else if (!c->ch) {
        broker_error(c, BROKER_ENOCHAN, NULL);
    } else if (c->method == M_DELETE) {
        broker_chan_delete(c->b, c->ch);
        http_json(c->req, c->o, 204, NULL);
    } else {
        http_json(c->req, c->o, 200, chan_to_json(c->ch));
    }
}

static void h_channel(http_ctx *c)
{
    /* PUT looks in the store first: a channel created elsewhere keeps the
     * options it was given there. */
    find(c, false, false, true, channel_found);
}

/* A live stream for the request: on the channel, or attached to the listener
 * of c->cn. The broker decides whether it may open; refused, the subscriber
 * is sent away to retry later. */
static void open_stream(http_ctx *c)
{
    sink *sk = http_stream_new(c->req, c->o);
    const char *why = NULL;
    /* A stream opened with a token ends when the token does. */
    int rc = !sk ? BROKER_ENOMEM
             : c->id.exp_s && http_stream_expire_at(sk, c->id.exp_s * 1000000) < 0
                 ? BROKER_ENOMEM
             : c->cn ? broker_attach(c->b, sk, c->cn, &c->id, &why)
                     : broker_subscribe(c->b, sk, c->ch, c->last_id, c->envelope, &c->id,
                                        &why);
    if (rc == 0)
        return;
    http_stream_free(sk);
    if (rc == BROKER_ELIMIT)
        http_refuse_stream(c->req, c->o, why);
    else
        reply_error(c, 503, "out_of_memory", "out of memory");
}

/* ---- GET .../events without text/event-stream: the history as JSON ----
 *
 * A read answers one page: {"events": [...]} with the messages after 'after'
 * (all retained ones without it), at most 'limit' of them and at most
 * limits.max_response bytes of text (always at least one message, however
 * large), and, when more are retained past the page, "next": the id to pass
 * as 'after' for the next page, also given as a Link: <...>; rel="next"
 * header that keeps every other query parameter. A small history is one page
 * without "next": the answer is what it always was.
 *
 * The page is sized first (msg_json_len), so that it goes out with a
 * Content-Length, and then written a piece at a time (msg_json_piece) as the
 * client reads: at most HIST_TARGET or stream_buffer, whichever is less, is
 * produced ahead of the socket, so that neither a large page nor a client
 * that does not read holds the loop or more memory than a stream may. The
 * page's messages are pinned (a reference each) until written, so that
 * history moving on meanwhile changes nothing in it.
 *
 * Targeted messages the reader is not eligible for are left out, as if they
 * were not retained (a history reader has no session: it is in no session
 * list); a reader whose role has disclose_publisher sees "publisher_authid". */

#define HIST_TARGET 262144 /* bytes produced ahead of the socket, at most */
#define HIST_PIECE 16320   /* bytes reserved per piece: a 16 KiB chain */
#define HIST_HEAD "{\"events\":["
#define HIST_NEXT_MAX 40 /* ',"next":"<20 digits>"' */

typedef struct hist_page {
    httpd_req *req;
    msg **v; /* the page, a reference each */
    size_t n, i;
    msg_json_cursor cur; /* in v[i] */
    int disclose;        /* the reader sees the publisher's authid */
    size_t target;       /* produce while fewer bytes than this are unsent */
    char close[64];      /* ']' [',"next":"ID"'] '}' '\n' */
} hist_page;

static void hist_free(hist_page *hp)
{
    for (size_t i = 0; i < hp->n; i++)
        msg_unref(hp->v[i]);
    free(hp->v);
    free(hp);
}

static void hist_closed(httpd_req *req, void *arg)
{
    hist_free(arg);
}

/* Write the page's next pieces until HIST target bytes wait for the socket,
 * or all of it; then end the response. */
static void hist_fill(httpd_req *req, void *arg)
{
    hist_page *hp = arg;
    struct evbuffer *out = httpd_stream_output(req);
    while (hp->i < hp->n && httpd_pending(req) < hp->target) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(out, HIST_PIECE, &v, 1) < 1)
            break; /* out of memory: try again on the next drain */
        char *p = v.iov_base,
             *end = p + (v.iov_len < HIST_PIECE ? v.iov_len : HIST_PIECE);
        while (hp->i < hp->n && end - p >= MSG_JSON_PIECE_MIN + 1) {
            if (hp->cur.part == 0 && hp->i > 0)
                *p++ = ',';
            p += msg_json_piece(hp->v[hp->i], &hp->cur, p, (size_t)(end - p));
            if (msg_json_done(&hp->cur)) {
                hp->cur = (msg_json_cursor){.disclose = hp->disclose};
                hp->i++;
            }
        }
        v.iov_len = (size_t)(p - (char *)v.iov_base);
        evbuffer_commit_space(out, &v, 1);
    }
    if (hp->i == hp->n) {
        evbuffer_add(out, hp->close, strlen(hp->close));
        httpd_on_close(req, NULL, NULL);
        httpd_on_drain(req, NULL, NULL);
        httpd_stream_end(req);
        hist_free(hp);
        return;
    }
    httpd_stream_dirty(req);
}

static void history_json(http_ctx *c)
{
    const char *after = evhttp_find_header(&c->query, "after");
    const char *limit_s = evhttp_find_header(&c->query, "limit");
    const char *order = evhttp_find_header(&c->query, "order");
    uint64_t seq = 0, limit = HISTORY_LIMIT_MAX;
    size_t from = 0, navail, n = 0, max = c->o->max_response;
    /* The head, the closing and room for "next", then the messages. */
    uint64_t bytes = sizeof(HIST_HEAD) - 1 + 3 + HIST_NEXT_MAX, total;
    hist_page *hp;
    chan *ch = c->ch;
    const target_rcv reader = {NULL, c->id.authid, c->id.authrole};
    const policy_role *role =
        c->o->auth && c->id.authrole
            ? policy_role_find(auth_policy(c->o->auth), c->id.authrole)
            : NULL;
    int disclose = role && role->disclose_publisher;

    if (after && parse_u64(after, &seq) < 0) {
        reply_error(c, 400, "invalid_id", "'after' must be a message id");
        return;
    }
    broker_history_retain(c->b, ch); /* nothing older than its age is read */
    if (limit_s &&
        (parse_u64(limit_s, &limit) < 0 || limit < 1 || limit > HISTORY_LIMIT_MAX)) {
        reply_error(c, 400, "invalid_id", "'limit' must be an integer from 1 to 100000");
        return;
    }
    if (order && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0) {
        reply_error(c, 400, "invalid_query", "'order' must be asc or desc");
        return;
    }
    bool desc = order && strcmp(order, "desc") == 0;
    if (desc) {
        /* Newest first: 'after' is the last id of the previous page, and this
         * one starts just below it. */
        from = after && seq ? msgq_after(&ch->history, seq - 1) : ch->history.len;
        navail = from;
    } else {
        if (after) {
            long at = msgq_find(&ch->history, seq);
            from = at >= 0 ? (size_t)at + 1 : 0; /* unknown id: everything */
        }
        navail = ch->history.len - from;
    }
    /* Size the page: up to 'limit' messages and 'max' bytes, at least one;
     * it spans the first 'stop' of the 'navail' messages in reading order. */
#define HIST_AT(k) msgq_at(&ch->history, desc ? from - 1 - (k) : from + (k))
    size_t stop = 0;
    for (size_t k = 0; k < navail && n < limit; k++) {
        msg *m = HIST_AT(k);
        if (!msg_allows(m, &reader)) {
            stop = k + 1;
            continue;
        }
        uint64_t len = msg_json_len_for(m, disclose) + (n > 0);
        if (n > 0 && bytes + len > max)
            break;
        bytes += len;
        n++;
        stop = k + 1;
    }
    if (!(hp = calloc(1, sizeof(*hp))) || (n && !(hp->v = malloc(n * sizeof(msg *))))) {
        free(hp);
        reply_error(c, 503, "out_of_memory", "out of memory");
        return;
    }
    hp->req = c->req;
    hp->disclose = disclose;
    hp->cur.disclose = disclose;
    for (size_t k = 0; k < stop; k++)
        if (msg_allows(HIST_AT(k), &reader))
            hp->v[hp->n++] = msg_ref(HIST_AT(k));
    hp->target = c->o->stream_buffer < HIST_TARGET ? c->o->stream_buffer : HIST_TARGET;
    bool more = false; /* is any the reader may see retained past the page? */
    for (size_t k = stop; k < navail && !more; k++)
        more = msg_allows(HIST_AT(k), &reader);
#undef HIST_AT
    if (more) {
        /* More is retained past the page: where the next one starts. */
        const char *next = hp->v[n - 1]->id;
        snprintf(hp->close, sizeof(hp->close), "],\"next\":\"%s\"}\n", next);
        next_link(c, next);
    } else {
        strcpy(hp->close, "]}\n");
    }
    total = bytes - 3 - HIST_NEXT_MAX + strlen(hp->close);
    if (!httpd_body_start(c->req, 200, "application/json", total)) {
        hist_free(hp); /* HEAD: the headers say it all */
        return;
    }
    evbuffer_add(httpd_stream_output(c->req), HIST_HEAD, sizeof(HIST_HEAD) - 1);
    httpd_on_close(c->req, hist_closed, hp);
    httpd_on_drain(c->req, hist_fill, hp);
    hist_fill(c->req, hp);
}

/* The subscriber's Last-Event-ID (header, or ?lastEventId=), cut to "" (not
 * ours: unknown) beyond LAST_ID_MAX. NULL: none. */
static const char *stream_last_id(http_ctx *c)
{
    const char *last = header(c, "Last-Event-ID");
    if (!last)
        last = evhttp_find_header(&c->query, "lastEventId");
    if (last && strlen(last) > LAST_ID_MAX)
        last = ""; /* not one of ours: replays everything retained */
    return last;
}

/* A stream's ?envelope= ("1": every event's data in its envelope, "0" or
 * absent: as published) into c->envelope. Answers and returns -1 on bad. */
static int stream_envelope(http_ctx *c)
{
    const char *v = evhttp_find_header(&c->query, "envelope");
    if (!v || strcmp(v, "0") == 0)
        return 0;
    if (strcmp(v, "1") == 0) {
        c->envelope = true;
        return 0;
    }
    reply_error(c, 400, "invalid_envelope", "'envelope' must be 0 or 1");
    return -1;
}

static void h_events(http_ctx *c)
{
    if (c->method == M_POST) {
        if (overloaded(c))
            return;
        if (publish_parse_body(c) < 0)
            pub_refused(c, BROKER_PUB_INVALID);
        else if (c->h->front)
            publish_relay(c);
        else
            find(c, true, false, false, publish_now);
        return;
    }
    if (!c->sse || c->method == HTTPD_HEAD) {
        find(c, false, false, false, history_json);
        return;
    }
    if (stream_envelope(c) < 0)
        return;
    const char *last = stream_last_id(c);
    if (last && c->o->auth && !allows(c, ACT_HISTORY, c->arg[0]))
        last = NULL; /* a replay reads history: without that right, live only */
    if (last && !(c->last_id = strdup(last))) {
        reply_error(c, 503, "out_of_memory", "out of memory");
        return;
    }
    find(c, true, false, false, open_stream);
}

/* ---- GET /history and /history/latest: queries across channels ----
 *
 * The parameters (hquery.h) are all checked before anything is read: a bad
 * one is a 400 that changes nothing. With access control a query returns
 * only channels where the caller may both subscribe and read history (an
 * exact name without those rights is a 403, as on /events; a pattern's
 * channels are filtered), and, of targeted messages, only those it is
 * eligible for. A page holds at most 'limit' events and about
 * limits.max_response bytes (at least one event); "next" resumes after its
 * last event. */

typedef struct hist_reader {
    http_ctx *c;
    target_rcv rcv;
} hist_reader;

static bool hist_may_read(const char *name, void *arg)
{
    http_ctx *c = ((hist_reader *)arg)->c;
    return !c->o->auth || allows(c, ACT_SUBSCRIBE | ACT_HISTORY, name);
}

static bool hist_may_see(const msg *m, void *arg)
{
    return msg_allows(m, &((hist_reader *)arg)->rcv);
}

/* Parse the query string into 'q'. Answers and returns -1 on bad input. */
static int hist_parse(http_ctx *c, hquery *q, bool latest)
{
    const broker_opts *bo = broker_options(c->b);
    struct evkeyval *kv;
    const char *code = NULL;
    char err[256];
    int rc;

    hquery_init(q);
    TAILQ_FOREACH (kv, &c->query, next) {
        if (strcmp(kv->key, "access_token") == 0)
            continue; /* a credential (http_auth.c) */
        rc = hquery_param(q, latest, kv->key, kv->value, &code, err, sizeof(err));
        if (rc == 1) {
            http_error(c->req, c->o, 400, "unknown_parameter",
                       "unknown query parameter '%.64s'", kv->key);
            return -1;
        }
        if (rc < 0) {
            reply_error(c, 400, code, err);
            return -1;
        }
    }
    if (hquery_finish(q, (size_t)bo->max_query_results, &code, err, sizeof(err)) < 0) {
        reply_error(c, 400, code, err);
        return -1;
    }
    for (size_t i = 0; c->o->auth && i < q->nchans; i++) {
        if (pattern_is_exact(q->chans[i]) &&
            !allows(c, ACT_SUBSCRIBE | ACT_HISTORY, q->chans[i])) {
            http_auth_refuse(c->req, c->o, c->id.authid ? AUTH_OK : AUTH_ANONYMOUS,
                             "no subscribe and history rights on one of the channels");
            return -1;
        }
    }
    return 0;
}

/* The answer's form of one event. */
static json_t *hist_event(const broker_hit *h)
{
    const msg *m = h->m;
    return json_pack("{s:s, s:s, s:s?, s:o, s:I, s:o}", "id", m->id, "channel",
                     h->ch->name, "event", m->event, "data", msg_data_json(m),
                     "timestamp", (json_int_t)m->ts_us, "source_timestamp",
                     m->src_ts_us == MSG_NO_SOURCE_TS ? json_null()
                                                      : json_integer(m->src_ts_us));
}

/* Answer the 'n' hits: {"events", "more_follows"[, "next"]}, cut at about
 * max_response bytes (then more follow). With 'q' (not latest), "next" is
 * the cursor after the last event (or the one given, when none is). */
static void hist_answer(http_ctx *c, const hquery *q, const broker_hit *v, size_t n,
                        bool more)
{
    json_t *arr = json_array(), *o = NULL, *e;
    size_t bytes = 64, i;
    char next[HQUERY_CURSOR_LEN + 1];

    for (i = 0; arr && i < n; i++) {
        size_t len = msg_json_len(v[i].m) + strlen(v[i].ch->name) + 64;
        if (i > 0 && bytes + len > c->o->max_response) {
            more = true;
            break;
        }
        bytes += len;
        if (!(e = hist_event(&v[i])) || json_array_append_new(arr, e) < 0)
            break;
    }
    if (arr && i == json_array_size(arr))
        o = json_pack("{s:o, s:b}", "events", arr, "more_follows", more);
    else
        json_decref(arr);
    if (o && q && i > 0) {
        hquery_cursor(q, hquery_key(q, v[i - 1].m), v[i - 1].m->seq, next);
        json_object_set_new(o, "next", json_string(next));
    } else if (o && q) {
        json_object_set_new(o, "next", q->after ? json_string(q->after) : json_null());
    }
    if (!o)
        reply_error(c, 503, "out_of_memory", "out of memory");
    else
        http_json(c->req, c->o, 200, o);
}

static void hist_failed(http_ctx *c, int rc)
{
    if (rc == BROKER_ELIMIT)
        http_error(c->req, c->o, 400, "query_too_broad",
                   "the query would visit more than %d channels or read more than %d "
                   "messages: narrow its channel patterns",
                   BROKER_QUERY_CHANNELS_MAX, BROKER_QUERY_SCAN_MAX);
    else
        reply_error(c, 503, "out_of_memory", "out of memory");
}

static void h_history(http_ctx *c)
{
    hquery q;
    hist_reader hr = {c, {NULL, c->id.authid, c->id.authrole}};
    broker_reader rd = {hist_may_read, hist_may_see, &hr};
    broker_hit *v;
    size_t n;
    bool more;
    int rc;

    if (hist_parse(c, &q, false) < 0)
        return;
    if (!(v = malloc((q.limit + 1) * sizeof(*v)))) {
        reply_error(c, 503, "out_of_memory", "out of memory");
        return;
    }
    if ((rc = broker_history_query(c->b, &q, &rd, v, &n, &more)) < 0)
        hist_failed(c, rc);
    else
        hist_answer(c, &q, v, n, more);
    free(v);
}

static void h_history_latest(http_ctx *c)
{
    hquery q;
    hist_reader hr = {c, {NULL, c->id.authid, c->id.authrole}};
    broker_reader rd = {hist_may_read, hist_may_see, &hr};
    size_t n, max = (size_t)broker_options(c->b)->max_query_results;
    broker_hit *v;
    bool more;
    int rc;

    if (hist_parse(c, &q, true) < 0)
        return;
    if (!(v = malloc(max * sizeof(*v)))) {
        reply_error(c, 503, "out_of_memory", "out of memory");
        return;
    }
    if ((rc = broker_history_latest(c->b, &q, &rd, v, max, &n, &more)) < 0)
        hist_failed(c, rc);
    else
        hist_answer(c, NULL, v, n, more);
    free(v);
}

/* GET /events?channel=P&channel=P2...: one stream for many channels, by
 * exact name or topic pattern (pattern_topic_valid), every message in its
 * envelope. With access control, an exact name needs subscribe there (403
 * otherwise); a pattern's channels are filtered as they deliver, by the
 * broker; the replay reads only channels with history as well. */
static void h_topics(http_ctx *c)
{
    const broker_opts *bo = broker_options(c->b);
    const policy *pol = c->o->auth ? auth_policy(c->o->auth) : NULL;
    size_t n = 0, max = (size_t)bo->max_patterns_per_stream;
    const char **chans;
    struct evkeyval *kv;
    const char *why = NULL;

    TAILQ_FOREACH (kv, &c->query, next)
        n += strcmp(kv->key, "channel") == 0;
    if (n == 0) {
        reply_error(c, 400, "missing_channel",
                    "name at least one channel or pattern: /events?channel=P");
        return;
    }
    if (n > max) {
        http_error(c->req, c->o, 400, "too_many_patterns",
                   "a stream takes at most %zu channels and patterns "
                   "(limits.max_patterns_per_stream), this one names %zu",
                   max, n);
        return;
    }
    if (!(chans = calloc(n, sizeof(*chans)))) {
        reply_error(c, 503, "out_of_memory", "out of memory");
        return;
    }
    n = 0;
    TAILQ_FOREACH (kv, &c->query, next) {
        if (strcmp(kv->key, "channel") != 0)
            continue;
        if (!pattern_topic_valid(kv->value, strlen(kv->value))) {
            http_error(c->req, c->o, 400, "invalid_pattern",
                       "'%.200s' is not a channel name or pattern: '.'-separated "
                       "non-empty segments of A-Z a-z 0-9 _ : -, '?' for one segment, "
                       "'*' last for zero or more",
                       kv->value);
            goto out;
        }
        if (pol && pattern_is_exact(kv->value) && !allows(c, ACT_SUBSCRIBE, kv->value)) {
            http_auth_refuse(c->req, c->o, c->id.authid ? AUTH_OK : AUTH_ANONYMOUS,
                             "no subscribe right on one of the channels");
            goto out;
        }
        chans[n++] = kv->value;
    }
    if (!c->sse || c->method == HTTPD_HEAD) {
        reply_error(c, 406, "not_acceptable",
                    "/events is a stream: ask for it with Accept: text/event-stream");
        goto out;
    }
    sink *sk = http_stream_new(c->req, c->o);
    int rc = !sk ? BROKER_ENOMEM
             : c->id.exp_s && http_stream_expire_at(sk, c->id.exp_s * 1000000) < 0
                 ? BROKER_ENOMEM
                 : broker_subscribe_topics(c->b, sk, chans, n, stream_last_id(c), &c->id,
                                           pol, &why);
    identity_clear(&c->id); /* taken, or not: cleared either way */
    if (rc == 0)
        goto out;
    if (sk)
        http_stream_free(sk);
    if (rc == BROKER_ELIMIT)
        refuse_stream(c, why);
    else
        reply_error(c, 503, "out_of_memory", "out of memory");
out:
    free(chans);
}

/* A connection's API form needs what the store says of it. */
static void answer_conn(int status, const conn_info *ci, void *arg)
{
    http_ctx *c = arg;
    conn *cn;
    if (!ctx_resume(c))
        return;
    if (status < 0)
        broker_error(c, status, NULL);
    else if (!(cn = c->ch->deleted ? NULL : chan_conn(c->ch, c->arg[1])))
        broker_error(c, BROKER_ENOCONN, NULL); /* deleted meanwhile */
    else
        http_json(c->req, c->o, 200, conn_to_json(cn, ci));
    ctx_free(c);
}

/* Answer with the connection c->cn as the store has it. */
static void show_conn(http_ctx *c)
{
    int rc = broker_conn_info(c->b, c->cn, answer_conn, c);
    if (rc == 0)
        ctx_wait(c);
    else
        broker_error(c, rc, NULL);
}

static void conn_created(int status, conn *cn, void *arg)
{
    http_ctx *c = arg;
    /* A new connection: running, detached, nothing waiting yet. */
    conn_info ci = {.running = true};
    if (!ctx_resume(c))
        return;
    if (cn)
        http_json(c->req, c->o, 201, conn_to_json(cn, &ci));
    else
        broker_error(c, status, NULL);
    ctx_free(c);
}

static void conns_listed(int status, size_t n, const char (*ids)[CONN_ID_LEN + 1],
                         const conn_info *infos, void *arg)
{
    http_ctx *c = arg;
    json_t *arr;
    if (!ctx_resume(c))
        return;
    if (status < 0) {
        broker_error(c, status, NULL);
    } else if (!(arr = json_array())) {
        reply_error(c, 503, "out_of_memory", "out of memory");
    } else {
        /* One deleted while the list was read is left out. */
        for (size_t i = 0; i < n; i++) {
            const conn *cn = chan_conn(c->ch, ids[i]);
            if (cn)
                json_array_append_new(arr, conn_to_json(cn, &infos[i]));
        }
        http_json(c->req, c->o, 200, json_pack("{s:o}", "connections", arr));
    }
    ctx_free(c);
}

static void conns_found(http_ctx *c)
{
    int rc = c->method == M_POST ? broker_conn_create(c->b, c->ch, c->id.authid,
                                                      c->id.authrole, conn_created, c)
                                 : broker_conn_list(c->b, c->ch, conns_listed, c);
    if (rc == 0)
        ctx_wait(c);
    else if (rc == BROKER_ELIMIT)
        broker_error(c, rc, "the channel holds its limit of connections");
    else
        broker_error(c, rc, NULL);
}

static void h_conns(http_ctx *c)
{
    find(c, c->method == M_POST, false, false, conns_found);
}

static void h_conn(http_ctx *c)
{
    if (c->method == M_DELETE) {
        broker_conn_delete(c->b, c->cn);
        http_json(c->req, c->o, 204, NULL);
    } else {
        show_conn(c);
    }
}

static void h_conn_events(http_ctx *c)
{
    if (c->method == M_POST) {
        if (overloaded(c))
            return;
        if (publish_parse_body(c) == 0)
            publish_now(c);
        else
            pub_refused(c, BROKER_PUB_INVALID);
    } else if (c->method == HTTPD_HEAD) {
        show_conn(c);
    } else {
        open_stream(c);
    }
}

static void h_conn_stop(http_ctx *c)
{
    broker_conn_set_running(c->b, c->cn, false);
    show_conn(c);
}

static void h_conn_start(http_ctx *c)
{
    broker_conn_set_running(c->b, c->cn, true);
    show_conn(c);
}

static void h_sessions(http_ctx *c)
{
    http_sessions_list(c->req, c->o, c->b, &c->query);
}

static void h_session(http_ctx *c)
{
    http_session_get(c->req, c->o, c->b, c->arg[0]);
}

static void h_traces(http_ctx *c)
{
    size_t len = 0;
    const char *data;
    if (c->method == M_POST) {
        data = body(c, &len);
        http_trace_start(c->req, c->o, c->b, data, len);
    } else {
        http_traces_list(c->req, c->o, c->b);
    }
}

static void h_trace(http_ctx *c)
{
    http_trace_one(c->req, c->o, c->b, c->arg[0], false, c->method == M_DELETE);
}

static void h_trace_stop(http_ctx *c)
{
    http_trace_one(c->req, c->o, c->b, c->arg[0], true, false);
}

static void h_trace_data(http_ctx *c)
{
    http_trace_data(c->req, c->o, c->b, c->arg[0], &c->query);
}

static const route routes[] = {
    {"", M_GET, h_page, NEED_NONE, ACC_OPEN},
    {"favicon.ico", M_GET, h_favicon, NEED_NONE, ACC_OPEN},
    {"dashboard", M_GET, h_dashboard, NEED_NONE, ACC_BROKER},
    {"health", M_GET, h_health, NEED_NONE, ACC_OPEN},
    {"metrics", M_GET, h_metrics, NEED_NONE, ACC_BROKER},
    {"nodes", M_GET, h_node_list, NEED_NONE, ACC_BROKER},
    {"status", M_GET, h_status, NEED_NONE, ACC_BROKER},
    {"channels", M_GET, h_channels, NEED_NONE, ACC_BROKER},
    {"events", M_GET, h_topics, NEED_NONE, ACC_TOPICS},
    {"history", M_GET, h_history, NEED_NONE, ACC_TOPICS},
    {"history/latest", M_GET, h_history_latest, NEED_NONE, ACC_TOPICS},
    {"sessions", M_GET, h_sessions, NEED_NONE, ACC_BROKER},
    {"sessions/*", M_GET, h_session, NEED_ID, ACC_BROKER},
    {"traces", M_GET | M_POST, h_traces, NEED_NONE, ACC_BROKER},
    {"traces/*", M_GET | M_DELETE, h_trace, NEED_ID, ACC_BROKER},
    {"traces/*/stop", M_POST, h_trace_stop, NEED_ID, ACC_BROKER},
    {"traces/*/data", M_GET, h_trace_data, NEED_ID, ACC_BROKER},
    {"channels/*", M_GET | M_PUT | M_DELETE, h_channel, NEED_NONE, ACC_CHANNEL},
    {"channels/*/events", M_GET | M_POST, h_events, NEED_NONE, ACC_EVENTS},
    {"channels/*/connections", M_GET | M_POST, h_conns, NEED_NONE, ACC_CONNS},
    {"channels/*/connections/*", M_GET | M_DELETE, h_conn, NEED_CONN, ACC_OWNER},
    {"channels/*/connections/*/events", M_GET | M_POST, h_conn_events, NEED_CONN,
     ACC_OWNER},
    {"channels/*/connections/*/stop", M_POST, h_conn_stop, NEED_CONN, ACC_OWNER},
    {"channels/*/connections/*/start", M_POST, h_conn_start, NEED_CONN, ACC_OWNER},
};

/* ---- access control ---- */

static int allows(const http_ctx *c, unsigned acts, const char *chan_name)
{
    return policy_allows(auth_policy(c->o->auth), &c->id, acts, chan_name);
}

/* Identify the caller and check what the route asks (the connection's owner
 * is checked once it is found: owner_then). Answers and returns -1 when it
 * is refused, before anything is looked up or created. */
static int authorize(http_ctx *c)
{
    const char *why = NULL, *name = c->arg[0];
    int rc = http_auth_identify(c->req, c->o, &c->query, &c->id, &why), ok = 1;
    if (rc == AUTH_ENOMEM) {
        reply_error(c, 503, "out_of_memory", "out of memory");
        return -1;
    }
    if (rc == AUTH_EINVALID) {
        if (c->r->access == ACC_EVENTS && c->method == M_POST)
            pub_refused(c, BROKER_PUB_DENIED);
        http_auth_refuse(c->req, c->o, rc, why);
        return -1;
    }
    switch (c->r->access) {
    case ACC_OPEN:
        break;
    case ACC_BROKER:
        ok = allows(c, ACT_MANAGE, NULL);
        break;
    case ACC_CHANNEL:
        ok = c->method == M_GET || c->method == HTTPD_HEAD
                 ? allows(c, ACT_SUBSCRIBE, name) || allows(c, ACT_MANAGE, name)
                 : allows(c, ACT_MANAGE, name);
        break;
    case ACC_EVENTS:
        if (c->method == M_POST)
            ok = allows(c, ACT_PUBLISH, name);
        else if (c->sse && c->method == M_GET)
            ok = allows(c, ACT_SUBSCRIBE, name);
        else
            ok = allows(c, ACT_SUBSCRIBE | ACT_HISTORY, name);
        break;
    case ACC_CONNS:
        ok = allows(c, c->method == M_POST ? ACT_SUBSCRIBE : ACT_MANAGE, name);
        break;
    case ACC_OWNER:
        ok = allows(c, ACT_SUBSCRIBE, name) || allows(c, ACT_MANAGE, name);
        break;
    case ACC_TOPICS:
        /* Rights are per channel (h_topics); someone must be asking. */
        ok = rc == AUTH_OK || auth_policy(c->o->auth)->anonymous_role != NULL;
        break;
    }
    if (!ok) {
        if (c->r->access == ACC_EVENTS && c->method == M_POST)
            pub_refused(c, BROKER_PUB_DENIED);
        http_auth_refuse(c->req, c->o, rc, NULL);
        return -1;
    }
    return 0;
}

/* A connection's routes, once it is found: its owner (with subscribe) or
 * whoever may manage the channel. A connection made anonymously belongs to
 * whoever may subscribe to its channel and knows its id. */
static void owner_then(http_ctx *c)
{
    const char *owner = c->cn->owner;
    if (c->o->auth && !allows(c, ACT_MANAGE, c->ch->name) &&
        (owner && (!c->id.authid || strcmp(owner, c->id.authid) != 0))) {
        http_auth_refuse(c->req, c->o, c->id.authid ? AUTH_OK : AUTH_ANONYMOUS,
                         "this connection belongs to someone else");
        return;
    }
    c->r->fn(c);
}

/* The broker's own channels (sys.*, session.h): whoever may subscribe reads
 * them; no client publishes to, creates or deletes them. Answers and returns
 * true when the request would. */
static bool reserved_write(http_ctx *c)
{
    const route_fn fn = c->r->fn;
    if (!c->arg[0] || c->r->need == NEED_ID || !channel_reserved(c->arg[0]))
        return false;
    if (!(fn == h_channel && (c->method == M_PUT || c->method == M_DELETE)) &&
        !((fn == h_events || fn == h_conn_events) && c->method == M_POST))
        return false;
    http_error(c->req, c->o, 403, "reserved_channel",
               "channel '%s' is the broker's own ('sys.' names are reserved): it can "
               "be subscribed to, not published to, created or deleted",
               c->arg[0]);
    return true;
}

#define MAX_SEGS 6

/* Split the raw path into at most MAX_SEGS segments (in place, not decoded).
 * Returns the count, or -1 if there are more. */
static int split_path(char *p, char *seg[MAX_SEGS])
{
    int n = 0;
    if (*p == '/')
        p++;
    if (!*p)
        return 0;
    for (;;) {
        if (n == MAX_SEGS)
            return -1;
        seg[n++] = p;
        char *slash = strchr(p, '/');
        if (!slash)
            return n;
        *slash = '\0';
        p = slash + 1;
    }
}

/* Does 'pattern' (segments separated by '/', a '*' capturing one) match
 * 'seg'? Captures go to 'cap' (undecoded). Walks the pattern in place:
 * routing runs on every request. */
static int route_match(const char *pattern, char **seg, int nseg, char *cap[2])
{
    const char *p = pattern + (*pattern == '/');
    int i = 0, ncap = 0;
    while (*p) {
        size_t len = strcspn(p, "/");
        if (i == nseg)
            return 0;
        if (len == 1 && *p == '*') {
            if (ncap == 2)
                return 0;
            cap[ncap++] = seg[i];
        } else if (strncmp(p, seg[i], len) != 0 || seg[i][len] != '\0') {
            return 0;
        }
        i++;
        p += len + (p[len] == '/');
    }
    return i == nseg;
}

/* The Allow header for a route taking 'methods'; returns its value. */
static const char *allow_header(http_ctx *c, unsigned methods, char allow[64])
{
    allow[0] = '\0';
    static const struct {
        unsigned m;
        const char *name;
    } names[] = {
        {M_GET, "GET, HEAD"}, {M_POST, "POST"}, {M_PUT, "PUT"}, {M_DELETE, "DELETE"}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (methods & names[i].m) {
            strcat(allow, names[i].name);
            strcat(allow, ", ");
        }
    }
    strcat(allow, "OPTIONS");
    httpd_add_header(c->req, "Allow", allow);
    return allow;
}

/* Decode the captured arguments and check them. Answers and returns -1 on bad. */
static int route_args(http_ctx *c, char *cap[2], int ncap)
{
    for (int i = 0; i < ncap; i++) {
        size_t len;
        c->arg[i] = evhttp_uridecode(cap[i], 0, &len);
        if (!c->arg[i]) {
            reply_error(c, 503, "out_of_memory", "out of memory");
            return -1;
        }
        /* strlen() differs from len when the name held %00. */
        if (i == 0 && c->r->need == NEED_ID) {
            if (strlen(c->arg[0]) != len)
                c->arg[0][0] = '\0'; /* held %00: no such id */
            continue;
        }
        if (i == 0 && (strlen(c->arg[0]) != len || !valid_channel_name(c->arg[0], len))) {
            reply_error(c, 400, "invalid_channel_name",
                        "channel names are 1 to 200 characters of A-Z a-z 0-9 _ . : -");
            return -1;
        }
        if (i == 1 && (strlen(c->arg[1]) != len || !valid_conn_id(c->arg[1]))) {
            http_error(c->req, c->o, 404, "connection_not_found",
                       "there is no connection with that id");
            return -1;
        }
    }
    return 0;
}

/* Over max_connections: a subscriber is sent away with a retry (an
 * EventSource gives up for good on any status but 200), anyone else gets 503.
 * /health still answers, so that operators see why. */
static int over_limit(http_ctx *c, const char *path)
{
    if (!httpd_over_limit(c->req) || strcmp(path, "/health") == 0)
        return 0;
    atomic_fetch_add_explicit(&c->h->sh->refused, 1, memory_order_relaxed);
    if (c->method == M_GET && c->sse) {
        refuse_stream(c, "busy: the broker holds its limit of connections");
        return 1;
    }
    httpd_add_header(c->req, "Retry-After", "5");
    httpd_reply_error(c->req, 503, "limit_reached",
                      "the broker holds its limit of connections", true);
    return 1;
}

void http_handle(httpd_req *req, void *arg)
{
    http_server *h = arg;
    http_ctx *c = calloc(1, sizeof(*c));
    const char *path = httpd_path(req);
    const char *query = httpd_query(req);
    char pathbuf[512], *seg[MAX_SEGS], *cap[2] = {NULL, NULL}, allow[64];
    int nseg;

    if (!c) {
        httpd_reply_error(req, 503, "out_of_memory", "out of memory", false);
        return;
    }
    *c = (http_ctx){.req = req, .h = h, .b = h->b, .o = &h->o};
    TAILQ_INIT(&c->query);
    c->method = httpd_method(req);
    const char *accept = httpd_header(req, "Accept");
    c->sse = accept && strstr(accept, "text/event-stream") != NULL;
    if (over_limit(c, path))
        goto out;
    if (strlen(path) >= sizeof(pathbuf)) {
        reply_error(c, 404, "not_found", "no such route");
        goto out;
    }
    if (query && evhttp_parse_query_str(query, &c->query) < 0) {
        reply_error(c, 400, "invalid_query", "the query string is malformed");
        goto out;
    }
    memcpy(pathbuf, path, strlen(path) + 1); /* fits: checked above */
    nseg = split_path(pathbuf, seg);
    for (size_t i = 0; nseg >= 0 && i < sizeof(routes) / sizeof(routes[0]); i++) {
        const route *r = &routes[i];
        if (!route_match(r->pattern, seg, nseg, cap))
            continue;
        c->r = r;
        if (c->method == HTTPD_OPTIONS) {
            httpd_add_header(req, "Access-Control-Allow-Methods",
                             allow_header(c, r->methods, allow));
            httpd_add_header(req, "Access-Control-Allow-Headers",
                             "Content-Type, Last-Event-ID, Authorization, X-API-Key");
            httpd_add_header(req, "Access-Control-Max-Age", "86400");
            http_json(req, &h->o, 204, NULL);
        } else if (!(c->method & r->methods) &&
                   !(c->method == HTTPD_HEAD && (r->methods & M_GET))) {
            allow_header(c, r->methods, allow);
            reply_error(c, 405, "method_not_allowed", "method not allowed on this route");
        } else if (route_args(c, cap,
                              (cap[1]   ? 2
                               : cap[0] ? 1
                                        : 0)) == 0 &&
                   (!h->o.auth || authorize(c) == 0) && !reserved_write(c)) {
            if (r->need == NEED_CONN)
                find(c, false, true, false, owner_then);
            else
                r->fn(c);
        }
        goto out;
    }
    reply_error(c, 404, "not_found", "no such route");
out:
    ctx_step_done(c);
}

static size_t http_conns(void *arg)
{
    return httpd_connections(((http_server *)arg)->d);
}

static void http_figures_get(void *arg, http_figures *f)
{
    http_server *h = arg;
    f->sockets = httpd_connections(h->d);
    f->accepted = httpd_accepted(h->d);
    f->refused = atomic_load(&h->sh->refused) + httpd_rejected(h->d);
    f->refused_streams = atomic_load(&h->sh->refused_streams);
    http_fronts_stats_get(h->fronts, &f->fronts);
}

/* What a reload changes, from 'o' into 'dst' (the strings and auth are
 * borrowed as 'o' has them). */
void http_opts_reload(http_opts *dst, const http_opts *o)
{
    dst->max_body = o->max_body;
    dst->max_headers = o->max_headers;
    dst->max_connections = o->max_connections;
    dst->idle_timeout_s = o->idle_timeout_s;
    dst->stream_buffer = o->stream_buffer;
    dst->max_response = o->max_response;
    dst->backoff_ms = o->backoff_ms;
    dst->max_retry_ms = o->max_retry_ms;
    dst->max_delivery_lag_ms = o->max_delivery_lag_ms;
    dst->cors_origin = o->cors_origin;
    dst->auth = o->auth;
    dst->auth_cookie = o->auth_cookie;
}

httpd_opts http_httpd_opts(const http_opts *o)
{
    return (httpd_opts){
        .host = o->host,
        .port = o->port,
        .max_headers = o->max_headers,
        .max_body = o->max_body,
        .idle_timeout_s = o->idle_timeout_s,
        .max_connections = (size_t)o->max_connections,
        .reuseport = o->reuseport,
        .threads = o->threads,
        .access_log = o->access_log,
        .cors_origin = o->cors_origin,
    };
}

http_server *http_server_new(struct event_base *base, broker *b, const http_opts *o,
                             char *err, size_t errlen)
{
    http_server *h = calloc(1, sizeof(*h));
    httpd_opts ho = http_httpd_opts(o);

    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->b = b;
    h->o = *o;
    h->sh = &h->own_sh;
    ho.shared = &h->sh->d;
    if (!(h->d = httpd_new(base, &ho, http_handle, h, err, errlen))) {
        free(h);
        return NULL;
    }
    char address[96];
    snprintf(address, sizeof(address), strchr(o->host, ':') ? "[%s]:%d" : "%s:%d",
             o->host, httpd_port(h->d));
    if (!(h->node = node_reg_new(base, b, address, http_conns, h)) ||
        !(h->metrics = http_metrics_new(base, b, o->worker, http_figures_get, h))) {
        snprintf(err, errlen, "out of memory");
        http_server_free(h);
        return NULL;
    }
    http_metrics_set_modules(h->metrics, o->modules);
    if (http_front_loops(o->threads) &&
        http_server_fronts_start(h, base, o, err, errlen) < 0) {
        http_server_free(h);
        return NULL;
    }
    return h;
}

int http_server_reload(http_server *h, const http_opts *o)
{
    httpd_opts ho = http_httpd_opts(o); /* httpd_reload takes what may change */
    if (httpd_reload(h->d, &ho) < 0)
        return -1;
    http_opts_reload(&h->o, o);
    http_fronts_reload(h->fronts, o);
    broker_set_policy(h->b, o->auth ? auth_policy(o->auth) : NULL);
    return 0;
}

void http_server_stop_accepting(http_server *h)
{
    /* The node says it stopped now, so that the shutdown flush carries it. */
    node_reg_free(h->node);
    h->node = NULL;
    http_metrics_free(h->metrics); /* the other workers stop showing this one */
    h->metrics = NULL;
    httpd_stop_accepting(h->d);
    http_fronts_stop_accepting(h->fronts);
}

int http_server_port(const http_server *h)
{
    return httpd_port(h->d);
}

void http_server_free(http_server *h)
{
    if (!h)
        return;
    node_reg_free(h->node);
    http_metrics_free(h->metrics);
    http_fronts_free(h->fronts); /* first: what they hand over goes to h->d */
    httpd_free(h->d);
    free(h);
}
