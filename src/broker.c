/* broker.c - channels, connections and publishing: every state change the
 * broker makes, applied to the domain and written through the repositories. */
#include "broker.h"

#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "http_util.h"
#include "log.h"

static void heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
    broker *b = arg;
    stream *s;
    TAILQ_FOREACH (s, &b->all, all)
        stream_comment(s, "hb");
}

broker *broker_new(struct event_base *base, const config *cfg, kv_store *kv)
{
    broker *b = calloc(1, sizeof(*b));
    struct timeval hb = {cfg->heartbeat_s, 0};
    if (!b)
        return NULL;
    b->base = base;
    b->cfg = cfg;
    b->kv = kv;
    strmap_init(&b->chans);
    TAILQ_INIT(&b->all);
    if (!(b->repo = repo_kv_stack_new(kv)) || !(b->scratch = evbuffer_new()) ||
        !(b->heartbeat = event_new(base, -1, EV_PERSIST, heartbeat_cb, b)) ||
        event_add(b->heartbeat, &hb) < 0)
        goto err;
    return b;
err:
    broker_free(b);
    return NULL;
}

typedef struct load_state {
    broker *b;
    int done;
    int status;
} load_state;

static void chan_found(chan *ch, void *arg)
{
    broker *b = ((load_state *)arg)->b;
    conn *cn;
    if (ch->last_seq > b->max_seq)
        b->max_seq = ch->last_seq;
    TAILQ_FOREACH (cn, &ch->conns, link) {
        msg *tail = msgq_at(&cn->queue, cn->queue.len ? cn->queue.len - 1 : 0);
        if (tail && tail->seq > b->max_seq)
            b->max_seq = tail->seq;
    }
    if (strmap_put(&b->chans, ch->name, ch) < 0) {
        log_error("out of memory loading channel '%s'", ch->name);
        chan_unref(ch);
    }
}

static void load_done(int status, void *arg)
{
    load_state *ls = arg;
    ls->done = 1;
    ls->status = status;
}

int broker_load(broker *b)
{
    load_state ls = {b, 0, 0};
    /* load_all hands each channel to chan_found and the final status to
     * load_done, both with the load state as arg. */
    if (b->repo->ops->load_all(b->repo, &b->cfg->defaults, chan_found, load_done, &ls) <
        0) {
        log_error("cannot load state from the %s store", b->kv->ops->name);
        return -1;
    }
    while (!ls.done)
        event_base_loop(b->base, EVLOOP_ONCE);
    if (ls.status < 0) {
        log_error("loading state from the %s store failed: %s", b->kv->ops->name,
                  kv_strerror(ls.status));
        return -1;
    }
    log_info("loaded %zu channel(s) from the %s store", b->chans.len, b->kv->ops->name);
    return 0;
}

void broker_close_streams(broker *b)
{
    stream *s;
    while ((s = TAILQ_FIRST(&b->all)))
        stream_close(s);
}

void broker_free(broker *b)
{
    strmap_entry *e;
    if (!b)
        return;
    broker_close_streams(b);
    for (size_t i = 0; strmap_next(&b->chans, &i, &e);)
        chan_unref(e->val);
    strmap_free(&b->chans);
    if (b->heartbeat)
        event_free(b->heartbeat);
    if (b->scratch)
        evbuffer_free(b->scratch);
    if (b->repo)
        b->repo->ops->free(b->repo);
    free(b);
}

chan *broker_chan(broker *b, const char *name)
{
    return strmap_get(&b->chans, name);
}

chan *broker_chan_put(broker *b, const char *name, json_t *opts, bool *created, int *why,
                      char *err, size_t errlen)
{
    chan *ch = broker_chan(b, name);
    chan_opts o = ch ? ch->opts : b->cfg->defaults;

    if (chan_opts_apply_json(&o, opts, err, errlen) < 0) {
        *why = BROKER_EINVAL;
        return NULL;
    }
    *created = !ch;
    if (!ch && b->chans.len >= (size_t)b->cfg->max_channels) {
        *why = BROKER_ELIMIT;
        snprintf(err, errlen, "the broker holds its limit of %d channels",
                 b->cfg->max_channels);
        return NULL;
    }
    if (!ch) {
        if (!(ch = chan_new(name, &o)) || strmap_put(&b->chans, ch->name, ch) < 0) {
            chan_unref(ch);
            *why = BROKER_ENOMEM;
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        log_info("channel '%s' created", name);
    } else {
        bool shrink = o.history < ch->opts.history;
        chan_set_opts(ch, &o);
        if (shrink)
            b->repo->ops->history_trim(b->repo, ch);
    }
    b->repo->ops->persist(b->repo, ch);
    return ch;
}

void broker_chan_delete(broker *b, chan *ch)
{
    stream *s;
    conn *cn;
    log_info("channel '%s' deleted", ch->name);
    while ((s = TAILQ_FIRST(&ch->streams)))
        stream_close(s);
    TAILQ_FOREACH (cn, &ch->conns, link)
        if (cn->lis.stream)
            stream_close(cn->lis.stream);
    b->repo->ops->remove(b->repo, ch);
    strmap_del(&b->chans, ch->name);
    ch->deleted = true;
    chan_unref(ch);
}

static int chan_cmp(const void *a, const void *b)
{
    return strcmp((*(chan *const *)a)->name, (*(chan *const *)b)->name);
}

chan **broker_chan_list(broker *b, size_t *n)
{
    chan **v = malloc((b->chans.len ? b->chans.len : 1) * sizeof(*v));
    strmap_entry *e;
    *n = 0;
    if (!v)
        return NULL;
    for (size_t i = 0; strmap_next(&b->chans, &i, &e);)
        v[(*n)++] = e->val;
    qsort(v, *n, sizeof(*v), chan_cmp);
    return v;
}

static repo_connection *conn_repo(broker *b)
{
    return b->repo->ops->connections(b->repo);
}

conn *broker_conn_create(broker *b, chan *ch, int *why)
{
    conn *cn;
    if (ch->nconns >= (size_t)b->cfg->max_connections_per_channel) {
        *why = BROKER_ELIMIT;
        return NULL;
    }
    if (!(cn = conn_new(ch, NULL))) {
        *why = BROKER_ENOMEM;
        return NULL;
    }
    /* Ids are random; a collision within one channel is improbable but cheap
     * to rule out. */
    while (chan_conn(ch, cn->id) != cn)
        conn_id_generate(cn->id);
    conn_repo(b)->ops->persist(conn_repo(b), cn);
    log_info("connection %s created on '%s'", cn->id, ch->name);
    return cn;
}

void broker_conn_delete(broker *b, conn *cn)
{
    if (cn->lis.stream)
        stream_close(cn->lis.stream);
    conn_repo(b)->ops->remove(conn_repo(b), cn);
    conn_free(cn);
}

/* Move what waits in a running, attached listener's queue into its stream. */
static void conn_drain(broker *b, conn *cn)
{
    repo_queue *rq = conn_repo(b)->ops->queues(conn_repo(b));
    size_t n = 0;
    msg *m;
    while (cn->lis.running && cn->lis.stream && (m = msgq_shift(&cn->queue))) {
        stream_send(cn->lis.stream, m);
        msg_unref(m);
        n++;
    }
    if (n)
        rq->ops->pop(rq, cn, n);
}

void broker_conn_set_running(broker *b, conn *cn, bool running)
{
    repo_listener *rl = conn_repo(b)->ops->listeners(conn_repo(b));
    if (cn->lis.running != running) {
        cn->lis.running = running;
        rl->ops->persist(rl, cn);
    }
    conn_drain(b, cn);
}

/* Deliver to one connection: straight to its stream when it can take it now,
 * else into its bounded queue. */
static void conn_deliver(broker *b, conn *cn, msg *m)
{
    repo_queue *rq = conn_repo(b)->ops->queues(conn_repo(b));
    if (cn->lis.running && cn->lis.stream && cn->queue.len == 0) {
        stream_send(cn->lis.stream, m);
        return;
    }
    if (msgq_push(&cn->queue, m) < 0) {
        log_error("out of memory queueing message %s for connection %s", m->id, cn->id);
        return;
    }
    rq->ops->push(rq, cn, m);
}

static void chan_deliver(broker *b, chan *ch, msg *m)
{
    stream *s, *next;
    conn *cn;

    ch->last_seq = m->seq;
    if (msgq_push(&ch->history, m) < 0)
        log_error("out of memory keeping message %s in history", m->id);
    b->repo->ops->history_push(b->repo, ch, m);
    for (s = TAILQ_FIRST(&ch->streams); s; s = next) {
        next = TAILQ_NEXT(s, link); /* a slow stream may close here */
        stream_send(s, m);
    }
    TAILQ_FOREACH (cn, &ch->conns, link)
        conn_deliver(b, cn, m);
}

/* One publish in flight: waits for its ids, then for the store. */
typedef struct pub_ctx {
    broker *b;
    chan *ch; /* holds a reference */
    char conn_id[CONN_ID_LEN + 1];
    bool targeted;
    bool realloc; /* ids were asked for again past max_seq */
    pub_batch batch;
    msg **msgs;
    size_t nmsgs;
    int status;
    broker_pub_cb cb;
    void *arg;
} pub_ctx;

static void drain_check(broker *b);

static void pub_finish(pub_ctx *pc)
{
    broker *b = pc->b;
    pc->cb(pc->status, pc->msgs, pc->nmsgs, pc->arg);
    for (size_t i = 0; i < pc->nmsgs; i++)
        msg_unref(pc->msgs[i]);
    free(pc->msgs);
    pub_batch_free(&pc->batch);
    chan_unref(pc->ch);
    free(pc);
    b->publishing--;
    drain_check(b);
}

/* Shutting down and nothing in flight: one last flush, then report. */
static void drain_check(broker *b)
{
    kv_cb cb = b->drained_cb;
    if (!b->closing || b->publishing || !cb)
        return;
    b->drained_cb = NULL;
    if (kv_flush(b->kv, cb, b->drained_arg) < 0) {
        kv_result res = {.status = KV_EIO};
        cb(&res, b->drained_arg);
    }
}

void broker_drain(broker *b, kv_cb cb, void *arg)
{
    b->closing = true;
    b->drained_cb = cb;
    b->drained_arg = arg;
    broker_close_streams(b);
    drain_check(b);
}

static void pub_flushed(const kv_result *res, void *arg)
{
    pub_ctx *pc = arg;
    pc->status = res->status;
    pub_finish(pc);
}

static void pub_ids(int status, unsigned long long last, void *arg)
{
    pub_ctx *pc = arg;
    broker *b = pc->b;
    unsigned long long first = last - pc->batch.n + 1;
    conn *target = NULL;
    int64_t ts = now_us();

    /* A store that lost its counter (Redis restarted empty) would hand out
     * ids already used: move the counter past every id seen, atomically, and
     * take the ids that gives. */
    if (status == 0 && first <= b->max_seq && !pc->realloc) {
        pc->realloc = true;
        log_warn("the store's id counter (%llu) is behind the last id seen (%llu): "
                 "moving it forward",
                 first, (unsigned long long)b->max_seq);
        if (repo_seq_alloc(b->kv, (size_t)(b->max_seq - first + 1) + pc->batch.n, pub_ids,
                           pc) == 0)
            return;
        status = KV_EIO;
    }
    if (status == 0 && last > b->max_seq)
        b->max_seq = last;
    if (status < 0)
        pc->status = status;
    else if (pc->ch->deleted)
        pc->status = BROKER_ENOCHAN;
    else if (pc->targeted && !(target = chan_conn(pc->ch, pc->conn_id)))
        pc->status = BROKER_ENOCONN;
    else if (!(pc->msgs = calloc(pc->batch.n, sizeof(msg *))))
        pc->status = BROKER_ENOMEM;
    if (pc->status < 0) {
        pub_finish(pc);
        return;
    }
    for (size_t i = 0; i < pc->batch.n; i++) {
        pub_event *ev = &pc->batch.ev[i];
        msg *m = msg_new(first + i, ev->event, ev->data, ev->data_len, ts, ev->retry);
        if (!m) {
            pc->status = BROKER_ENOMEM;
            break;
        }
        pc->msgs[pc->nmsgs++] = m;
        if (target)
            conn_deliver(b, target, m);
        else
            chan_deliver(b, pc->ch, m);
    }
    if (pc->status == 0 && !b->cfg->store_sync && !b->closing) {
        /* Asynchronous durability: the writes are queued for the store. */
        pub_finish(pc);
        return;
    }
    if (pc->status < 0 || kv_flush(b->kv, pub_flushed, pc) < 0) {
        if (pc->status == 0)
            pc->status = KV_EIO;
        pub_finish(pc);
    }
}

int broker_publish(broker *b, chan *ch, const char *conn_id, pub_batch *batch,
                   broker_pub_cb cb, void *arg)
{
    pub_ctx *pc;
    if (b->closing) {
        pub_batch_free(batch);
        return BROKER_ECLOSING;
    }
    if (!(pc = calloc(1, sizeof(*pc)))) {
        pub_batch_free(batch);
        return -1;
    }
    pc->b = b;
    pc->ch = chan_ref(ch);
    if ((pc->targeted = conn_id != NULL))
        snprintf(pc->conn_id, sizeof(pc->conn_id), "%s", conn_id);
    pc->batch = *batch;
    memset(batch, 0, sizeof(*batch));
    pc->cb = cb;
    pc->arg = arg;
    if (repo_seq_alloc(b->kv, pc->batch.n, pub_ids, pc) < 0) {
        pub_batch_free(&pc->batch);
        chan_unref(pc->ch);
        free(pc);
        return -1;
    }
    b->publishing++;
    return 0;
}

void broker_refuse_stream(broker *b, httpd_req *req, const char *why)
{
    evbuffer_add_printf(b->scratch, "retry: %d\n: %s\n\n", b->cfg->backoff_ms, why);
    http_cors(req, b->cfg);
    httpd_add_header(req, "Cache-Control", "no-cache");
    httpd_reply(req, 200, "text/event-stream", b->scratch);
    b->refused++;
}

int broker_admit_stream(broker *b, httpd_req *req, chan *ch, int takeover)
{
    const char *why = NULL;
    if (takeover)
        return 1;
    if (b->nstreams >= (size_t)b->cfg->max_streams)
        why = "busy: the broker holds its limit of streams";
    else if (ch->nstreams + ch->nattached >= (size_t)b->cfg->max_streams_per_channel)
        why = "busy: the channel holds its limit of streams";
    if (!why)
        return 1;
    log_debug("subscriber to '%s' sent away: %s", ch->name, why);
    broker_refuse_stream(b, req, why);
    return 0;
}

stream *broker_subscribe(broker *b, httpd_req *req, chan *ch, const char *last_id)
{
    stream *s = stream_open(b, req, ch, NULL);
    uint64_t seq;
    size_t from = ch->history.len; /* no resume: live messages only */

    if (!s)
        return NULL;
    if (last_id) {
        long at = parse_u64(last_id, &seq) == 0 ? msgq_find(&ch->history, seq) : -1;
        /* An unknown or expired id replays everything retained. */
        from = at >= 0 ? (size_t)at + 1 : 0;
    }
    for (size_t i = from; i < ch->history.len && s->req; i++)
        if (stream_send(s, msgq_at(&ch->history, i)) < 0)
            return NULL;
    return s;
}

stream *broker_attach(broker *b, httpd_req *req, conn *cn)
{
    stream *s;
    if (cn->lis.stream) {
        log_info("connection %s: a new stream takes over", cn->id);
        stream_close(cn->lis.stream);
    }
    if (!(s = stream_open(b, req, cn->ch, cn)))
        return NULL;
    conn_drain(b, cn);
    return s;
}
