/* webhook.c - an example module: POSTs each matching event as JSON to a URL,
 * with libevent's HTTP client on the broker's loop (never blocking it).
 *
 * Config: {"url": "http://host:port/path" (required; http only),
 *          "queue_max": N (events waiting, 1..100000, default 1000: an event
 *                          past it is dropped and counted as an error),
 *          "timeout_ms": T (one attempt, 100..600000, default 5000),
 *          "retries": R (attempts after the first, 0..100, default 5),
 *          "backoff_ms": B (before the first retry, 10..60000, default 200;
 *                           doubled at each, at most "backoff_max_ms",
 *                           default 10000)}
 * The body: {"channel", "id", "event" (or null), "data", "timestamp" (us),
 * "source" (or null)}. One request at a time, in id order: an event is sent
 * when the one before it was answered with 2xx or given up after its
 * retries (counted as an error). Every failed attempt is reported
 * (host->error): logged and counted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <ssebroker/module.h>

#include "examples/modules/modconf.h"

typedef struct webhook {
    const ssebroker_host *h;
    struct evhttp_uri *uri;
    struct evhttp_connection *conn;
    struct evdns_base *dns; /* names resolved on the loop, never blocking it */
    char *path_query;       /* the path and query of the URL */
    long long queue_max, timeout_ms, retries, backoff_ms, backoff_max_ms;
    char **q; /* a ring of JSON bodies */
    size_t head, len;
    int attempts; /* of the body at the head */
    int sending;  /* a request is under way */
    ssebroker_timer *retry;
} webhook;

static void send_head(webhook *w);

static void pop(webhook *w)
{
    free(w->q[w->head]);
    w->q[w->head] = NULL;
    w->head = (w->head + 1) % (size_t)w->queue_max;
    w->len--;
    w->attempts = 0;
}

static void retry_fired(void *arg)
{
    webhook *w = arg;
    w->retry = NULL;
    send_head(w);
}

/* The attempt at the head failed: retry after a backoff, or give up. */
static void failed(webhook *w, const char *why)
{
    long long delay = w->backoff_ms;
    w->h->error(w->h, "POST %s: %s (attempt %d)", w->path_query, why, w->attempts);
    if (w->attempts > w->retries) {
        w->h->error(w->h, "an event dropped after %d attempts", w->attempts);
        pop(w);
        send_head(w);
        return;
    }
    for (int i = 1; i < w->attempts && delay < w->backoff_max_ms; i++)
        delay *= 2;
    if (delay > w->backoff_max_ms)
        delay = w->backoff_max_ms;
    if (!(w->retry = w->h->timer_add(w->h, (unsigned)delay, retry_fired, w))) {
        w->h->error(w->h, "cannot set the retry timer: the event is dropped");
        pop(w);
        send_head(w);
    }
}

static void answered(struct evhttp_request *req, void *arg)
{
    webhook *w = arg;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    char why[64];
    w->sending = 0;
    if (code >= 200 && code < 300) {
        pop(w);
        send_head(w);
        return;
    }
    if (code)
        snprintf(why, sizeof(why), "answered %d", code);
    else
        snprintf(why, sizeof(why), "no answer (refused, reset or timed out)");
    failed(w, why);
}

static void send_head(webhook *w)
{
    struct evhttp_request *req;
    const char *body;
    const char *host = evhttp_uri_get_host(w->uri);

    if (w->sending || w->retry || !w->len)
        return;
    body = w->q[w->head];
    w->attempts++;
    if (!(req = evhttp_request_new(answered, w))) {
        failed(w, "out of memory");
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", host);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json");
    evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
    /* The request is the connection's from here, even when this fails. */
    if (evhttp_make_request(w->conn, req, EVHTTP_REQ_POST, w->path_query) < 0) {
        failed(w, "cannot send the request");
        return;
    }
    w->sending = 1;
}

static int webhook_event(void *st, const ssebroker_event *ev)
{
    webhook *w = st;
    json_t *o;
    char *text;
    if (w->len >= (size_t)w->queue_max) {
        w->h->error(w->h, "the queue is full (%lld): event %s of '%s' dropped",
                    w->queue_max, ev->id, ev->channel);
        return 0; /* counted already */
    }
    o = json_pack("{s:s, s:s, s:s?, s:s%, s:I, s:s?}", "channel", ev->channel, "id",
                  ev->id, "event", ev->event, "data", ev->data, ev->data_len, "timestamp",
                  (json_int_t)ev->timestamp_us, "source", ev->source);
    text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return -1; /* data that is no UTF-8 text, or out of memory */
    w->q[(w->head + w->len) % (size_t)w->queue_max] = text;
    w->len++;
    send_head(w);
    return 0;
}

static void webhook_free(void *st)
{
    webhook *w = st;
    if (w->retry)
        w->h->timer_cancel(w->h, w->retry);
    /* Frees a request under way without calling it back. */
    if (w->conn)
        evhttp_connection_free(w->conn);
    if (w->dns)
        evdns_base_free(w->dns, 0);
    while (w->q && w->len)
        pop(w);
    free(w->q);
    if (w->uri)
        evhttp_uri_free(w->uri);
    free(w->path_query);
    free(w);
}

static void *webhook_init(const char *config, const ssebroker_host *h, char *err,
                          size_t errlen)
{
    static const char *const keys[] = {"url",     "queue_max",  "timeout_ms",
                                       "retries", "backoff_ms", "backoff_max_ms"};
    json_t *conf = json_loads(config, 0, NULL);
    webhook *w = calloc(1, sizeof(*w));
    const char *url, *path, *query, *scheme;
    struct timeval tv;
    size_t plen;

    if (!w || !conf) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    w->h = h;
    if (modconf_keys(conf, keys, sizeof(keys) / sizeof(keys[0]), err, errlen) < 0)
        goto fail;
    url = json_string_value(json_object_get(conf, "url"));
    if (!url || !(w->uri = evhttp_uri_parse(url)) ||
        !(scheme = evhttp_uri_get_scheme(w->uri)) || strcmp(scheme, "http") != 0 ||
        !evhttp_uri_get_host(w->uri)) {
        snprintf(err, errlen, "\"url\" must be an http:// URL");
        goto fail;
    }
    if (modconf_int(conf, "queue_max", 1000, 1, 100000, &w->queue_max, err, errlen) < 0 ||
        modconf_int(conf, "timeout_ms", 5000, 100, 600000, &w->timeout_ms, err, errlen) <
            0 ||
        modconf_int(conf, "retries", 5, 0, 100, &w->retries, err, errlen) < 0 ||
        modconf_int(conf, "backoff_ms", 200, 10, 60000, &w->backoff_ms, err, errlen) <
            0 ||
        modconf_int(conf, "backoff_max_ms", 10000, 10, 600000, &w->backoff_max_ms, err,
                    errlen) < 0)
        goto fail;
    path = evhttp_uri_get_path(w->uri);
    query = evhttp_uri_get_query(w->uri);
    if (!path || !*path)
        path = "/";
    plen = strlen(path) + (query ? strlen(query) + 1 : 0) + 1;
    if (!(w->path_query = malloc(plen)) ||
        !(w->q = calloc((size_t)w->queue_max, sizeof(char *))) ||
        !(w->dns = evdns_base_new(h->event_base, EVDNS_BASE_INITIALIZE_NAMESERVERS)) ||
        !(w->conn = evhttp_connection_base_new(
              h->event_base, w->dns, evhttp_uri_get_host(w->uri),
              (unsigned short)(evhttp_uri_get_port(w->uri) > 0
                                   ? evhttp_uri_get_port(w->uri)
                                   : 80)))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    snprintf(w->path_query, plen, "%s%s%s", path, query ? "?" : "", query ? query : "");
    tv = (struct timeval){w->timeout_ms / 1000, (w->timeout_ms % 1000) * 1000};
    evhttp_connection_set_timeout_tv(w->conn, &tv);
    json_decref(conf);
    return w;
fail:
    json_decref(conf);
    if (w)
        webhook_free(w);
    return NULL;
}

const ssebroker_module_desc ssebroker_module = {
    .abi = SSEBROKER_MODULE_ABI,
    .name = "webhook",
    .init = webhook_init,
    .on_event = webhook_event,
    .free = webhook_free,
};
