/* broker.c - channels, connections and publishing: every state change the
 * broker makes, applied to the domain and written through the repositories. */
#include "src/broker/broker.h"

#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "src/http/http_reply.h"
#include "src/base/log.h"

static void tick_cb(evutil_socket_t fd, short what, void *arg);
static void on_notify(const char *topic, const char *data, size_t len, void *arg);
static void pubs_release(broker *b, bool all);
static void catchup_step(broker *b);
static void held_free(broker *b);

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
    struct timeval tick = {0, 250000};
    strmap_init(&b->chans);
    TAILQ_INIT(&b->all);
    TAILQ_INIT(&b->waiting);
    b->held_tail = &b->held;
    conn_id_generate(b->node_id);
    if (!(b->repo = repo_kv_stack_new(kv)) || !(b->scratch = evbuffer_new()) ||
        !(b->heartbeat = event_new(base, -1, EV_PERSIST, heartbeat_cb, b)) ||
        event_add(b->heartbeat, &hb) < 0 ||
        !(b->tick = event_new(base, -1, EV_PERSIST, tick_cb, b)) ||
        event_add(b->tick, &tick) < 0)
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
    int64_t deadline = now_us() + 5000000;
    /* Listen to the other nodes first, so that nothing published while the
     * state loads is missed (a message seen twice is dropped by its id). */
    if (kv_subscribe(b->kv, "", on_notify, b) < 0) {
        log_error("cannot subscribe to the %s store", b->kv->ops->name);
        return -1;
    }
    while (!kv_subscribed(b->kv) && now_us() < deadline)
        event_base_loop(b->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    b->catching_up++; /* what is published while loading waits for the load */
    if (!kv_subscribed(b->kv))
        log_warn("the %s store's notifications are not live yet: going on",
                 b->kv->ops->name);
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
    catchup_step(b);
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
    pubs_release(b, true);
    held_free(b);
    if (b->heartbeat)
        event_free(b->heartbeat);
    if (b->tick)
        event_free(b->tick);
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
    json_t *oj = chan_opts_to_json(&ch->opts);
    char *text = oj ? json_dumps(oj, JSON_COMPACT) : NULL;
    if (text)
        broker_announce(b, "c", ch->name, NULL, text);
    free(text);
    json_decref(oj);
    return ch;
}

/* Forget a channel here: its streams end. The store is not touched. */
static void broker_chan_drop(broker *b, chan *ch)
{
    stream *s;
    conn *cn;
    while ((s = TAILQ_FIRST(&ch->streams)))
        stream_close(s);
    TAILQ_FOREACH (cn, &ch->conns, link)
        if (cn->lis.stream)
            stream_close(cn->lis.stream);
    strmap_del(&b->chans, ch->name);
    ch->deleted = true;
    chan_unref(ch);
}

void broker_chan_delete(broker *b, chan *ch)
{
    log_info("channel '%s' deleted", ch->name);
    b->repo->ops->remove(b->repo, ch);
    broker_announce(b, "c", ch->name, NULL, "deleted");
    broker_chan_drop(b, ch);
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
    broker_announce(b, "n", ch->name, cn->id, "created");
    log_info("connection %s created on '%s'", cn->id, ch->name);
    return cn;
}

void broker_conn_delete(broker *b, conn *cn)
{
    if (cn->lis.stream)
        stream_close(cn->lis.stream);
    conn_repo(b)->ops->remove(conn_repo(b), cn);
    broker_announce(b, "n", cn->ch->name, cn->id, "deleted");
    conn_free(cn);
}

/* Move what waits in a running, attached listener's queue into its stream,
 * and take it off the stored queue. */
static void conn_drain(broker *b, conn *cn)
{
    repo_queue *rq = conn_repo(b)->ops->queues(conn_repo(b));
    size_t n = 0;
    msg *m;
    while (cn->lis.running && cn->lis.stream && !cn->loading &&
           (m = msgq_shift(&cn->queue))) {
        stream_send(cn->lis.stream, m);
        msg_unref(m);
        n++;
    }
    if (n) {
        rq->ops->pop(rq, cn, n);
        /* Now, not on the batch timer: a node the listener moves to reads the
         * stored queue, and must not find what was delivered here. */
        kv_flush(b->kv, NULL, NULL);
    }
}

void broker_conn_set_running(broker *b, conn *cn, bool running)
{
    repo_listener *rl = conn_repo(b)->ops->listeners(conn_repo(b));
    if (cn->lis.running != running) {
        cn->lis.running = running;
        rl->ops->persist(rl, cn);
        broker_announce(b, "l", cn->ch->name, cn->id, running ? "running" : "stopped");
    }
    conn_drain(b, cn);
}

/* A message reached this node for one connection (already in its stored
 * queue): into the stream if it can take it now, else into the queue's
 * in-memory mirror. Only the node holding the stream takes it off the store. */
static void conn_deliver(broker *b, conn *cn, msg *m)
{
    msg *last = cn->queue.len ? msgq_at(&cn->queue, cn->queue.len - 1) : NULL;
    if (last && m->seq <= last->seq)
        return; /* already here (a reload raced the notification) */
    int dropped = msgq_push(&cn->queue, m);
    if (dropped < 0) {
        log_error("out of memory queueing message %s for connection %s", m->id, cn->id);
    } else if (dropped > 0) {
        /* The store's list dropped the same (same bound, same messages); its
         * count is this node's view (see README, multi-node). */
        repo_queue *rq = conn_repo(b)->ops->queues(conn_repo(b));
        rq->ops->dropped(rq, cn);
    }
    conn_drain(b, cn);
}

/* A message reached this node for a channel: history, live streams, and the
 * mirror of every connection queue. The store has it already. */
static void chan_deliver(broker *b, chan *ch, msg *m)
{
    stream *s, *next;
    conn *cn;

    if (m->seq <= ch->last_seq)
        return; /* seen: a catch-up and a notification overlapped */
    ch->last_seq = m->seq;
    if (msgq_push(&ch->history, m) < 0)
        log_error("out of memory keeping message %s in history", m->id);
    for (s = TAILQ_FIRST(&ch->streams); s; s = next) {
        next = TAILQ_NEXT(s, link); /* a slow stream may close here */
        stream_send(s, m);
    }
    TAILQ_FOREACH (cn, &ch->conns, link)
        conn_deliver(b, cn, m);
}

/* One publish in flight: its messages are appended one by one (the store
 * gives each its id); it is answered once every id is stored and this node
 * has delivered it, so that a client reads its own writes here. */
struct pub_ctx {
    broker *b;
    chan *ch; /* holds a reference */
    conn *target;
    pub_batch batch;
    uint64_t *ids;
    size_t nids, pending;
    int64_t ts;
    int64_t waiting_since; /* in b->waiting since (us), else 0 */
    int status;
    broker_pub_cb cb;
    void *arg;
    TAILQ_ENTRY(pub_ctx) link;
};

#define PUB_WAIT_US 1000000 /* longest wait for our own notification */

static void drain_check(broker *b);

static void pub_finish(pub_ctx *pc)
{
    broker *b = pc->b;
    if (pc->waiting_since)
        TAILQ_REMOVE(&b->waiting, pc, link);
    if (pc->status == 0 && pc->ch->deleted)
        pc->status = BROKER_ENOCHAN;
    pc->cb(pc->status, pc->ids, pc->nids, pc->ts, pc->arg);
    free(pc->ids);
    pub_batch_free(&pc->batch);
    chan_unref(pc->ch);
    free(pc);
    b->publishing--;
    drain_check(b);
}

static void pub_flushed(const kv_result *res, void *arg)
{
    pub_ctx *pc = arg;
    if (res->status < 0 && pc->status == 0)
        pc->status = res->status;
    pub_finish(pc);
}

/* Stored (and delivered here, or waited for long enough): with store.sync,
 * wait for what delivering wrote (queue counts) too, then answer. */
static void pub_settle(pub_ctx *pc)
{
    if (pc->waiting_since) {
        TAILQ_REMOVE(&pc->b->waiting, pc, link);
        pc->waiting_since = 0;
    }
    if (pc->status == 0 && pc->b->cfg->store_sync &&
        kv_flush(pc->b->kv, pub_flushed, pc) == 0)
        return;
    pub_finish(pc);
}

/* Answer the publishes this node has now delivered (or waited long enough
 * for: the subscription may be down, the catch-up will deliver). */
static void pubs_release(broker *b, bool all)
{
    pub_ctx *pc, *next;
    int64_t now = now_us();
    for (pc = TAILQ_FIRST(&b->waiting); pc; pc = next) {
        next = TAILQ_NEXT(pc, link);
        if (all || pc->ids[pc->nids - 1] <= b->seen_seq ||
            now - pc->waiting_since > PUB_WAIT_US)
            pub_settle(pc);
    }
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
    pubs_release(b, true);
    drain_check(b);
}

/* One append (or the hold the issuer keeps) is over: answer after the last. */
static void pub_step(pub_ctx *pc)
{
    broker *b = pc->b;
    if (--pc->pending)
        return;
    /* store.sync: also wait until this node delivered them (read your writes). */
    if (pc->status < 0 || !pc->nids || pc->ids[pc->nids - 1] <= b->seen_seq ||
        !kv_subscribed(b->kv) || !b->cfg->store_sync) {
        pub_settle(pc);
        return;
    }
    pc->waiting_since = now_us();
    TAILQ_INSERT_TAIL(&b->waiting, pc, link);
}

static void pub_appended(const kv_result *res, void *arg)
{
    pub_ctx *pc = arg;
    broker *b = pc->b;
    if (res->status < 0 && pc->status == 0)
        pc->status = res->status;
    if (res->status == 0) {
        pc->ids[pc->nids++] = (uint64_t)res->num;
        if ((uint64_t)res->num > b->max_seq)
            b->max_seq = (uint64_t)res->num;
    }
    pub_step(pc);
}

int broker_publish(broker *b, chan *ch, const char *conn_id, pub_batch *batch,
                   broker_pub_cb cb, void *arg)
{
    pub_ctx *pc;
    conn *target = NULL;
    if (b->closing) {
        pub_batch_free(batch);
        return BROKER_ECLOSING;
    }
    if (conn_id && !(target = chan_conn(ch, conn_id))) {
        pub_batch_free(batch);
        return BROKER_ENOCONN;
    }
    if (!(pc = calloc(1, sizeof(*pc))) ||
        !(pc->ids = calloc(batch->n, sizeof(uint64_t)))) {
        free(pc);
        pub_batch_free(batch);
        return -1;
    }
    pc->b = b;
    pc->ch = chan_ref(ch);
    pc->target = target;
    pc->batch = *batch;
    memset(batch, 0, sizeof(*batch));
    pc->cb = cb;
    pc->arg = arg;
    pc->ts = now_us();
    b->publishing++;
    pc->pending = 1; /* held while issuing */
    for (size_t i = 0; i < pc->batch.n; i++) {
        pub_event *ev = &pc->batch.ev[i];
        size_t len;
        char *tail =
            msg_json_tail(ev->event, ev->data, ev->data_len, pc->ts, ev->retry, &len);
        int rc = tail ? b->repo->ops->publish(b->repo, ch, target, tail, len, b->max_seq,
                                              pub_appended, pc)
                      : BROKER_ENOMEM;
        free(tail);
        if (rc < 0) {
            pc->status = rc == KV_ENOMEM ? BROKER_ENOMEM : rc;
            break;
        }
        pc->pending++;
    }
    pub_step(pc); /* drops the hold: finishes if nothing was issued */
    return 0;
}

/* ---- the cluster: what other nodes (and this one) announce ---- */

void broker_announce(broker *b, const char *kind, const char *chan_name,
                     const char *conn_id, const char *what)
{
    char topic[300], data[160];
    int n = snprintf(data, sizeof(data), "%s %s", b->node_id, what);
    if (conn_id)
        snprintf(topic, sizeof(topic), "%s/%s/%s", kind, chan_name, conn_id);
    else
        snprintf(topic, sizeof(topic), "%s/%s", kind, chan_name);
    kv_notify(b->kv, topic, data, (size_t)n, NULL, NULL);
}

/* Load what a connection's stored queue holds, then drain it into the stream
 * just attached here (the in-memory mirror may be stale: another node may
 * have drained it). Messages that arrive meanwhile wait in the mirror. */
typedef struct reload {
    broker *b;
    chan *ch; /* holds a reference */
    char conn_id[CONN_ID_LEN + 1];
    uint64_t seen; /* b->seen_seq when the read was issued */
    msgq q;
} reload;

static void queue_reloaded(int status, void *arg)
{
    reload *rl = arg;
    conn *cn = rl->ch->deleted ? NULL : chan_conn(rl->ch, rl->conn_id);
    if (cn && status == 0) {
        /* The store's queue is right about every message this node had seen
         * when it asked (the read ran after them); then what arrived since,
         * unless the read already had it. */
        msg *last = rl->q.len ? msgq_at(&rl->q, rl->q.len - 1) : NULL;
        msg *m;
        while ((m = msgq_shift(&cn->queue))) {
            if (m->seq > rl->seen && (!last || m->seq > last->seq))
                msgq_push(&rl->q, m);
            msg_unref(m);
        }
        uint64_t dropped = cn->queue.dropped;
        msgq_free(&cn->queue);
        cn->queue = rl->q;
        cn->queue.dropped = dropped;
        msgq_init(&rl->q, 0);
    }
    if (cn) {
        cn->loading = false;
        conn_drain(rl->b, cn);
    }
    msgq_free(&rl->q);
    chan_unref(rl->ch);
    free(rl);
}

static void conn_reload(broker *b, conn *cn)
{
    repo_queue *rq = conn_repo(b)->ops->queues(conn_repo(b));
    reload *rl = calloc(1, sizeof(*rl));
    if (!rl) {
        conn_drain(b, cn);
        return;
    }
    rl->b = b;
    rl->ch = chan_ref(cn->ch);
    snprintf(rl->conn_id, sizeof(rl->conn_id), "%s", cn->id);
    rl->seen = b->seen_seq;
    msgq_init(&rl->q, (size_t)cn->ch->opts.queue_limit);
    cn->loading = true;
    if (rq->ops->load_into(rq, cn, &rl->q, queue_reloaded, rl) < 0)
        queue_reloaded(KV_ENOMEM, rl);
}

/* After the subscription was lost: deliver from the stored history what was
 * published meanwhile, and reload the queues of attached connections. */
typedef struct catchup {
    broker *b;
    chan *ch; /* holds a reference */
    msgq q;
} catchup;

/* Notifications that arrive while the state is read back wait here, so that
 * nothing is delivered ahead of older messages still being read (a stream
 * never goes back in ids). Bounded: past it, the newest are dropped and logged. */
#define HELD_NOTES_MAX 100000

typedef struct held_note {
    struct held_note *next;
    size_t len;
    char *topic; /* and the data after it, in the same allocation */
} held_note;

static void hold_note(broker *b, const char *topic, const char *data, size_t len)
{
    size_t tl = strlen(topic);
    held_note *h = malloc(sizeof(*h) + tl + 1 + len + 1);
    if (!h || b->nheld >= HELD_NOTES_MAX) {
        free(h);
        log_warn("cluster: a notification on '%s' dropped while catching up", topic);
        return;
    }
    h->next = NULL;
    h->len = len;
    h->topic = (char *)(h + 1);
    memcpy(h->topic, topic, tl + 1);
    memcpy(h->topic + tl + 1, data, len);
    h->topic[tl + 1 + len] = '\0';
    *b->held_tail = h;
    b->held_tail = &h->next;
    b->nheld++;
}

static void held_free(broker *b)
{
    held_note *h;
    while ((h = b->held)) {
        b->held = h->next;
        free(h);
    }
}

/* One read-back is over: after the last, deliver what waited. */
static void catchup_step(broker *b)
{
    held_note *h;
    if (--b->catching_up)
        return;
    while ((h = b->held)) {
        b->held = h->next;
        if (!b->held)
            b->held_tail = &b->held;
        b->nheld--;
        on_notify(h->topic, h->topic + strlen(h->topic) + 1, h->len, b);
        free(h);
    }
    pubs_release(b, false);
}

static void history_caught_up(int status, void *arg)
{
    catchup *cu = arg;
    for (size_t i = 0; status == 0 && !cu->ch->deleted && i < cu->q.len; i++)
        chan_deliver(cu->b, cu->ch, msgq_at(&cu->q, i));
    msgq_free(&cu->q);
    chan_unref(cu->ch);
    catchup_step(cu->b);
    free(cu);
}

static void catch_up(broker *b)
{
    strmap_entry *e;
    conn *cn;
    log_info("cluster: the subscription is back; catching up from the store");
    b->catching_up++; /* held while issuing */
    for (size_t i = 0; strmap_next(&b->chans, &i, &e);) {
        chan *ch = e->val;
        catchup *cu = calloc(1, sizeof(*cu));
        if (cu) {
            cu->b = b;
            cu->ch = chan_ref(ch);
            msgq_init(&cu->q, (size_t)ch->opts.history);
            b->catching_up++;
            if (b->repo->ops->history_load(b->repo, ch, &cu->q, history_caught_up, cu) <
                0)
                history_caught_up(KV_ENOMEM, cu);
        }
        TAILQ_FOREACH (cn, &ch->conns, link)
            if (cn->lis.stream && !cn->loading)
                conn_reload(b, cn);
    }
    catchup_step(b);
}

/* A channel, connection or listener changed on another node: apply it here
 * without writing (that node wrote it). */
static void apply_remote(broker *b, const char *kind, const char *chan_name,
                         const char *conn_id, const char *what)
{
    chan *ch = broker_chan(b, chan_name);
    conn *cn = ch && conn_id ? chan_conn(ch, conn_id) : NULL;
    chan_opts o = b->cfg->defaults;
    char err[128];

    if (strcmp(kind, "c") == 0 && strcmp(what, "deleted") == 0) {
        if (ch)
            broker_chan_drop(b, ch);
    } else if (strcmp(kind, "c") == 0) {
        json_t *opts = json_loads(what, 0, NULL);
        if (ch)
            o = ch->opts;
        if (chan_opts_apply_json(&o, opts, err, sizeof(err)) == 0) {
            if (ch)
                chan_set_opts(ch, &o);
            else if ((ch = chan_new(chan_name, &o)) &&
                     strmap_put(&b->chans, ch->name, ch) < 0)
                chan_unref(ch);
        }
        json_decref(opts);
    } else if (strcmp(kind, "n") == 0 && strcmp(what, "deleted") == 0) {
        if (cn) {
            if (cn->lis.stream)
                stream_close(cn->lis.stream);
            conn_free(cn);
        }
    } else if (strcmp(kind, "n") == 0) {
        if (ch && !cn && valid_conn_id(conn_id))
            conn_new(ch, conn_id);
    } else if (strcmp(kind, "l") == 0 && cn) {
        cn->lis.running = strcmp(what, "running") == 0;
        conn_drain(b, cn);
    } else if (strcmp(kind, "a") == 0 && cn && cn->lis.stream) {
        log_info("connection %s: a stream on another node takes over", cn->id);
        stream_close(cn->lis.stream);
    }
}

/* Every notification of the store, this node's own included. */
static void on_notify(const char *topic, const char *data, size_t len, void *arg)
{
    broker *b = arg;
    char name[CHAN_NAME_MAX + 1], *conn_id = NULL;
    const char *slash;
    if (!topic) {
        catch_up(b);
        return;
    }
    if (b->catching_up) {
        hold_note(b, topic, data, len);
        return;
    }
    if (!(slash = strchr(topic, '/')) || slash == topic || slash - topic > 1)
        return;
    snprintf(name, sizeof(name), "%s", slash + 1);
    if ((conn_id = strchr(name, '/')))
        *conn_id++ = '\0';
    if (topic[0] == REPO_TOPIC_MSG[0] || topic[0] == REPO_TOPIC_TARGETED[0]) {
        msg *m = msg_from_json(data, len);
        chan *ch = broker_chan(b, name);
        conn *cn;
        if (!m) {
            log_warn("cluster: a message on '%s' does not parse", topic);
            return;
        }
        if (m->seq > b->seen_seq)
            b->seen_seq = m->seq;
        if (m->seq > b->max_seq)
            b->max_seq = m->seq;
        if (ch && !conn_id)
            chan_deliver(b, ch, m);
        else if (ch && (cn = chan_conn(ch, conn_id)))
            conn_deliver(b, cn, m);
        msg_unref(m);
        pubs_release(b, false);
        return;
    }
    /* "<node> <what>": our own announcements are already applied. */
    const char *sp = memchr(data, ' ', len);
    if (!sp || (size_t)(sp - data) != strlen(b->node_id) ||
        memcmp(data, b->node_id, (size_t)(sp - data)) == 0)
        return;
    char kind[2] = {topic[0], '\0'};
    apply_remote(b, kind, name, conn_id, sp + 1);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    pubs_release(arg, false);
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
    broker_announce(b, "a", cn->ch->name, cn->id, "attached");
    conn_reload(b, cn);
    return s;
}
