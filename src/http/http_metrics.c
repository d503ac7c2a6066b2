/* http_metrics.c - GET /metrics (see http_metrics.h). */
#include "src/http/http_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "src/base/log.h"
#include "src/base/prom.h"
#include "src/base/util.h"
#include "src/broker/node.h"

#define CTYPE "text/plain; version=0.0.4; charset=utf-8"

/* Every family, in the order they are written. */
enum {
    F_BUILD,
    F_START,
    F_UPTIME,
    F_SOCKETS,
    F_ACCEPTED,
    F_SOCK_REFUSED,
    F_STREAMS,
    F_OPENED,
    F_CLOSED,
    F_STREAM_REFUSED,
    F_SLOW,
    F_CONNS,
    F_ATTACHED,
    F_CHANNELS,
    F_EXPIRED,
    F_PUBLISHES,
    F_PUBLISHED,
    F_DELIVERED,
    F_BYTES,
    F_PUB_SECONDS,
    F_STORE_UP,
    F_STORE_SECONDS,
    F_STORE_BATCH,
    F_MEM_USED,
    F_MEM_MAX,
    F_EVICTED,
    F_MOD_EVENTS,
    F_MOD_ERRORS,
    F_MOD_PUBLISHED,
    F_MOD_CUT,
    F_MOD_DROPPED,
    F_FRONTS,
    F_FRONT_PUB,
    F_FRONT_REFUSED,
    F_FRONT_WAITING,
    F_FRONT_WAITING_MAX,
    F_N
};

static const struct family {
    const char *name, *type, *help;
} families[F_N] = {
    [F_BUILD] = {"ssebroker_build_info", "gauge", "Always 1; the version as a label."},
    [F_START] = {"ssebroker_start_time_seconds", "gauge",
                 "When the process started, in seconds since the epoch."},
    [F_UPTIME] = {"ssebroker_uptime_seconds", "gauge",
                  "Seconds since the process started."},
    [F_SOCKETS] = {"ssebroker_sockets_open", "gauge",
                   "Client sockets open, live streams included."},
    [F_ACCEPTED] = {"ssebroker_sockets_accepted_total", "counter",
                    "Client sockets accepted."},
    [F_SOCK_REFUSED] = {"ssebroker_sockets_refused_total", "counter",
                        "Requests and sockets refused past limits.max_connections."},
    [F_STREAMS] = {"ssebroker_streams_open", "gauge",
                   "Live SSE streams (plain subscribers and attached listeners)."},
    [F_OPENED] = {"ssebroker_streams_opened_total", "counter",
                  "Live SSE streams opened."},
    [F_CLOSED] = {"ssebroker_streams_closed_total", "counter",
                  "Live SSE streams ended, by reason."},
    [F_STREAM_REFUSED] = {"ssebroker_streams_refused_total", "counter",
                          "Subscribers sent away by a limit."},
    [F_SLOW] = {"ssebroker_slow_disconnects_total", "counter",
                "Streams cut for not reading (limits.stream_buffer)."},
    [F_CONNS] = {"ssebroker_connections", "gauge",
                 "Durable connections of the channels held here."},
    [F_ATTACHED] = {"ssebroker_connections_attached", "gauge",
                    "Durable connections with a stream attached on this node."},
    [F_CHANNELS] = {"ssebroker_channels", "gauge", "Channels held."},
    [F_EXPIRED] = {"ssebroker_channels_expired_total", "counter",
                   "Channels deleted by limits.channel_idle_ttl_s."},
    [F_PUBLISHES] = {"ssebroker_publishes_total", "counter",
                     "Publish requests, by result."},
    [F_PUBLISHED] = {"ssebroker_messages_published_total", "counter",
                     "Messages stored by publish requests made here."},
    [F_DELIVERED] = {"ssebroker_messages_delivered_total", "counter",
                     "Messages written to live streams."},
    [F_BYTES] = {"ssebroker_delivered_bytes_total", "counter",
                 "Bytes of SSE frames written to live streams."},
    [F_PUB_SECONDS] = {"ssebroker_publish_duration_seconds", "histogram",
                       "A publish, from the request to every message stored."},
    [F_STORE_UP] = {"ssebroker_store_up", "gauge",
                    "1 when the store answers, 0 while it is unreachable."},
    [F_STORE_SECONDS] = {"ssebroker_store_operation_duration_seconds", "histogram",
                         "A store operation, from the call to its reply."},
    [F_STORE_BATCH] = {"ssebroker_store_batch_operations", "histogram",
                       "Operations per pipelined batch sent to Redis."},
    [F_MEM_USED] = {"ssebroker_memory_used_bytes", "gauge",
                    "Bytes retained messages take in this process."},
    [F_MEM_MAX] = {"ssebroker_memory_max_bytes", "gauge", "limits.max_memory."},
    [F_EVICTED] = {"ssebroker_messages_evicted_total", "counter",
                   "Messages evicted by limits.max_memory (policy evict)."},
    [F_MOD_EVENTS] = {"ssebroker_module_events_total", "counter",
                      "Messages handed to a module, by module instance."},
    [F_MOD_ERRORS] = {"ssebroker_module_errors_total", "counter",
                      "Errors a module returned, and its publishes that failed."},
    [F_MOD_PUBLISHED] = {"ssebroker_module_published_total", "counter",
                         "Messages a module published (stored)."},
    [F_MOD_CUT] = {"ssebroker_module_chain_cut_total", "counter",
                   "Module publishes refused by modules_max_depth."},
    [F_MOD_DROPPED] = {"ssebroker_module_dropped_total", "counter",
                       "Module publishes refused: too many under way."},
    [F_FRONTS] =
        {"ssebroker_front_loops", "gauge",
         "Front loops handling publishes (threads - 1 from threads 3; 0: none)."},
    [F_FRONT_PUB] = {"ssebroker_front_publishes_total", "counter",
                     "Publishes the front loops handed to the main loop."},
    [F_FRONT_REFUSED] = {"ssebroker_front_refused_total", "counter",
                         "Publishes a front loop refused (503 overloaded): its "
                         "limit of them was waiting for the main loop."},
    [F_FRONT_WAITING] = {"ssebroker_front_waiting", "gauge",
                         "Publishes of the front loops waiting for the main loop."},
    [F_FRONT_WAITING_MAX] = {"ssebroker_front_waiting_max", "gauge",
                             "The most publishes one front loop had waiting at once."},
};

struct http_metrics {
    broker *b;
    const modhost *mods; /* borrowed, may be NULL */
    int worker;          /* index under --workers, else 0 */
    http_figures_fn fig;
    void *fig_arg;
    int64_t started_us;
    char labels[160]; /* this process's labels (worker, node), or "" */
    struct event *share_ev;
};

/* A scrape waiting for the store. */
typedef struct scrape {
    http_metrics *hm;
    httpd_req *req; /* NULL once the client left */
} scrape;

/* 'base' and one more label into 'buf'. */
static const char *with_label(char *buf, size_t len, const char *base, const char *key,
                              const char *val)
{
    snprintf(buf, len, "%s", base);
    prom_label(buf, len, key, val);
    return buf;
}

/* This process's samples, one buffer per family. */
static void write_own(http_metrics *hm, struct evbuffer *f[F_N])
{
    broker_stats st;
    broker_metrics m;
    http_figures hf = {0};
    char lb[256];
    const char *l = hm->labels;
    kv_store *kv = broker_store(hm->b);
    const kv_metrics *km = kv_metrics_of(kv);
    int64_t now = now_us();

    broker_stats_get(hm->b, &st);
    broker_metrics_get(hm->b, &m);
    if (hm->fig)
        hm->fig(hm->fig_arg, &hf);
    prom_sample_u(f[F_BUILD], families[F_BUILD].name,
                  with_label(lb, sizeof(lb), l, "version", PACKAGE_VERSION), 1);
    prom_sample(f[F_START], families[F_START].name, l, (double)hm->started_us / 1e6);
    prom_sample(f[F_UPTIME], families[F_UPTIME].name, l,
                (double)(now - hm->started_us) / 1e6);
    prom_sample_u(f[F_SOCKETS], families[F_SOCKETS].name, l, hf.sockets);
    prom_sample_u(f[F_ACCEPTED], families[F_ACCEPTED].name, l, hf.accepted);
    prom_sample_u(f[F_SOCK_REFUSED], families[F_SOCK_REFUSED].name, l, hf.refused);
    prom_sample_u(f[F_STREAMS], families[F_STREAMS].name, l, st.streams);
    prom_sample_u(f[F_OPENED], families[F_OPENED].name, l, m.streams_opened);
    for (int i = 0; i < BROKER_END_N; i++)
        prom_sample_u(f[F_CLOSED], families[F_CLOSED].name,
                      with_label(lb, sizeof(lb), l, "reason", broker_end_name(i)),
                      m.streams_closed[i]);
    prom_sample_u(f[F_STREAM_REFUSED], families[F_STREAM_REFUSED].name, l,
                  st.refused + hf.refused_streams);
    prom_sample_u(f[F_SLOW], families[F_SLOW].name, l, st.slow_closed);
    prom_sample_u(f[F_CONNS], families[F_CONNS].name, l, m.connections);
    prom_sample_u(f[F_ATTACHED], families[F_ATTACHED].name, l, m.attached);
    prom_sample_u(f[F_CHANNELS], families[F_CHANNELS].name, l, st.channels);
    prom_sample_u(f[F_EXPIRED], families[F_EXPIRED].name, l, st.expired);
    for (int i = 0; i < BROKER_PUB_N; i++)
        prom_sample_u(f[F_PUBLISHES], families[F_PUBLISHES].name,
                      with_label(lb, sizeof(lb), l, "result", broker_pub_name(i)),
                      m.publishes[i]);
    prom_sample_u(f[F_PUBLISHED], families[F_PUBLISHED].name, l, m.messages_published);
    prom_sample_u(f[F_DELIVERED], families[F_DELIVERED].name, l, m.messages_delivered);
    prom_sample_u(f[F_BYTES], families[F_BYTES].name, l, m.bytes_delivered);
    prom_hist_write(f[F_PUB_SECONDS], families[F_PUB_SECONDS].name, l,
                    &m.publish_seconds);
    prom_sample_u(f[F_STORE_UP], families[F_STORE_UP].name,
                  with_label(lb, sizeof(lb), l, "store", kv_name(kv)),
                  kv_health(kv) == 0 ? 1 : 0);
    prom_hist_write(f[F_STORE_SECONDS], families[F_STORE_SECONDS].name,
                    with_label(lb, sizeof(lb), l, "store", kv_name(kv)), &km->op_seconds);
    prom_hist_write(f[F_STORE_BATCH], families[F_STORE_BATCH].name,
                    with_label(lb, sizeof(lb), l, "store", kv_name(kv)), &km->batch_ops);
    prom_sample_u(f[F_MEM_USED], families[F_MEM_USED].name, l, st.memory);
    prom_sample_u(f[F_MEM_MAX], families[F_MEM_MAX].name, l,
                  broker_options(hm->b)->max_memory);
    prom_sample_u(f[F_EVICTED], families[F_EVICTED].name, l, st.evicted);
    prom_sample_u(f[F_FRONTS], families[F_FRONTS].name, l,
                  (unsigned long long)hf.fronts.loops);
    prom_sample_u(f[F_FRONT_PUB], families[F_FRONT_PUB].name, l, hf.fronts.posted);
    prom_sample_u(f[F_FRONT_REFUSED], families[F_FRONT_REFUSED].name, l,
                  hf.fronts.refused);
    prom_sample_u(f[F_FRONT_WAITING], families[F_FRONT_WAITING].name, l,
                  hf.fronts.waiting);
    prom_sample_u(f[F_FRONT_WAITING_MAX], families[F_FRONT_WAITING_MAX].name, l,
                  hf.fronts.waiting_max);
    for (size_t i = 0; i < modhost_count(hm->mods); i++) {
        modhost_stats ms;
        modhost_stats_get(hm->mods, i, &ms);
        with_label(lb, sizeof(lb), l, "module", ms.name);
        prom_sample_u(f[F_MOD_EVENTS], families[F_MOD_EVENTS].name, lb, ms.events);
        prom_sample_u(f[F_MOD_ERRORS], families[F_MOD_ERRORS].name, lb, ms.errors);
        prom_sample_u(f[F_MOD_PUBLISHED], families[F_MOD_PUBLISHED].name, lb,
                      ms.published);
        prom_sample_u(f[F_MOD_CUT], families[F_MOD_CUT].name, lb, ms.cut);
        prom_sample_u(f[F_MOD_DROPPED], families[F_MOD_DROPPED].name, lb, ms.dropped);
    }
}

void http_metrics_set_modules(http_metrics *hm, const modhost *mh)
{
    hm->mods = mh;
}

static int bufs_new(struct evbuffer *f[F_N])
{
    int ok = 1;
    for (int i = 0; i < F_N; i++)
        ok &= (f[i] = evbuffer_new()) != NULL;
    return ok ? 0 : -1;
}

static void bufs_free(struct evbuffer *f[F_N])
{
    for (int i = 0; i < F_N; i++)
        if (f[i])
            evbuffer_free(f[i]);
}

/* ---- sharing under --workers ---- */

static void share_cb(evutil_socket_t fd, short what, void *arg)
{
    http_metrics *hm = arg;
    struct evbuffer *f[F_N] = {0};
    json_t *arr = NULL, *o = NULL;
    char *text = NULL, key[64];

    if (bufs_new(f) < 0 || !(arr = json_array()))
        goto out;
    write_own(hm, f);
    for (int i = 0; i < F_N; i++) {
        size_t len = evbuffer_get_length(f[i]);
        const char *p = (const char *)evbuffer_pullup(f[i], -1);
        if (json_array_append_new(arr, json_stringn(p ? p : "", p ? len : 0)) < 0)
            goto out;
    }
    if (!(o = json_pack("{s:I, s:O}", "t", (json_int_t)(now_us() / 1000), "f", arr)) ||
        !(text = json_dumps(o, JSON_COMPACT)))
        goto out;
    snprintf(key, sizeof(key), "mx/%s", broker_node_id(hm->b));
    kv_set(broker_store(hm->b), key, text, strlen(text), NULL, NULL);
out:
    free(text);
    json_decref(o);
    json_decref(arr);
    bufs_free(f);
}

http_metrics *http_metrics_new(struct event_base *base, broker *b, int worker,
                               http_figures_fn fig, void *fig_arg)
{
    http_metrics *hm = calloc(1, sizeof(*hm));
    struct timeval tv = {NODE_HEARTBEAT_S, 0};
    char idx[16];
    if (!hm)
        return NULL;
    hm->b = b;
    hm->worker = worker;
    hm->fig = fig;
    hm->fig_arg = fig_arg;
    hm->started_us = now_us();
    if (worker) {
        snprintf(idx, sizeof(idx), "%d", worker);
        prom_label(hm->labels, sizeof(hm->labels), "worker", idx);
        prom_label(hm->labels, sizeof(hm->labels), "node", broker_node_id(b));
        if (!(hm->share_ev = event_new(base, -1, EV_PERSIST, share_cb, hm)) ||
            event_add(hm->share_ev, &tv) < 0) {
            http_metrics_free(hm);
            return NULL;
        }
        share_cb(-1, 0, hm);
    }
    return hm;
}

void http_metrics_free(http_metrics *hm)
{
    char key[64];
    if (!hm)
        return;
    if (hm->share_ev) {
        event_free(hm->share_ev);
        snprintf(key, sizeof(key), "mx/%s", broker_node_id(hm->b));
        kv_del(broker_store(hm->b), key, NULL, NULL);
    }
    free(hm);
}

/* ---- the answer ---- */

/* Every family: its head, this process's samples, then each other
 * worker's ('others': arrays of F_N strings, or NULL). */
static void answer(http_metrics *hm, httpd_req *req, json_t *const *others,
                   size_t nothers)
{
    struct evbuffer *f[F_N] = {0}, *out = evbuffer_new();
    if (!out || bufs_new(f) < 0) {
        httpd_reply_error(req, 503, "out_of_memory", "out of memory", false);
        goto out;
    }
    write_own(hm, f);
    for (int i = 0; i < F_N; i++) {
        prom_head(out, families[i].name, families[i].type, families[i].help);
        evbuffer_add_buffer(out, f[i]);
        for (size_t j = 0; j < nothers; j++) {
            json_t *s = json_array_get(others[j], (size_t)i);
            if (json_is_string(s))
                evbuffer_add(out, json_string_value(s), json_string_length(s));
        }
    }
    httpd_reply(req, 200, CTYPE, out);
out:
    if (out)
        evbuffer_free(out);
    bufs_free(f);
}

static void scrape_gone(httpd_req *req, void *arg)
{
    ((scrape *)arg)->req = NULL;
}

static void scanned(const kv_result *res, void *arg)
{
    scrape *sc = arg;
    http_metrics *hm = sc->hm;
    json_t **others = NULL, *o;
    size_t n = 0;
    char self[64];
    int64_t now = now_us() / 1000;

    if (!sc->req)
        goto out;
    httpd_on_close(sc->req, NULL, NULL);
    if (res->status < 0) {
        /* The others are unknown: say so rather than answer a part as the
         * whole. */
        httpd_reply_error(sc->req, 503, "store_unavailable",
                          "the store failed: the other workers' metrics are unknown",
                          false);
        goto out;
    }
    snprintf(self, sizeof(self), "mx/%s", broker_node_id(hm->b));
    if (res->n && !(others = calloc(res->n, sizeof(*others)))) {
        httpd_reply_error(sc->req, 503, "out_of_memory", "out of memory", false);
        goto out;
    }
    for (size_t i = 0; i < res->n; i++) {
        json_int_t t = 0;
        json_t *f = NULL;
        if (strcmp(res->items[i].key, self) == 0)
            continue;
        o = json_loadb(res->items[i].val, res->items[i].vlen, 0, NULL);
        if (!o || json_unpack(o, "{s:I, s:o}", "t", &t, "f", &f) < 0 ||
            !json_is_array(f) || json_array_size(f) != F_N ||
            now - (int64_t)t > NODE_TTL_S * 1000) {
            /* Unreadable (another version), or that worker is gone. */
            if (o && now - (int64_t)t > (int64_t)broker_options(hm->b)->node_ttl_s * 1000)
                kv_del(broker_store(hm->b), res->items[i].key, NULL, NULL);
            json_decref(o);
            continue;
        }
        json_incref(f);
        json_decref(o);
        others[n++] = f;
    }
    answer(hm, sc->req, others, n);
    for (size_t i = 0; i < n; i++)
        json_decref(others[i]);
    free(others);
out:
    free(sc);
}

void http_metrics_serve(http_metrics *hm, httpd_req *req)
{
    scrape *sc;
    if (!hm->worker) {
        answer(hm, req, NULL, 0);
        return;
    }
    if (!(sc = malloc(sizeof(*sc)))) {
        httpd_reply_error(req, 503, "out_of_memory", "out of memory", false);
        return;
    }
    *sc = (scrape){hm, req};
    httpd_on_close(req, scrape_gone, sc);
    if (kv_scan(broker_store(hm->b), "mx/", scanned, sc) < 0) {
        httpd_on_close(req, NULL, NULL);
        free(sc);
        httpd_reply_error(req, 503, "store_unavailable", "the store failed", false);
    }
}
