/* broker.c - the channel map and every change the broker makes to it, applied
 * to the domain and written through the repositories; delivery into live
 * streams and connection queues; loading at start-up. */
#include "src/broker/broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "src/base/log.h"
#include "src/base/util.h"
#include "src/broker/broker_private.h"

static void heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
    broker *b = arg;
    stream *s;
    TAILQ_FOREACH (s, &b->all, all)
        stream_comment(s, "hb");
}

broker *broker_new(struct event_base *base, const broker_opts *opts, kv_store *kv)
{
    broker *b = calloc(1, sizeof(*b));
    struct timeval hb = {opts->heartbeat_s, 0};
    if (!b)
        return NULL;
    b->base = base;
    b->opts = *opts;
    b->kv = kv;
    strmap_init(&b->chans);
    TAILQ_INIT(&b->all);
    TAILQ_INIT(&b->waiting);
    b->held_tail = &b->held;
    conn_id_generate(b->node_id);
    if (!(b->repo = repo_kv_stack_new(kv)) ||
        !(b->heartbeat = event_new(base, -1, EV_PERSIST, heartbeat_cb, b)) ||
        event_add(b->heartbeat, &hb) < 0 || broker_publish_init(b) < 0)
        goto err;
    b->rconns = repo_channel_connections(b->repo);
    b->rlisteners = repo_connection_listeners(b->rconns);
    b->rqueues = repo_connection_queues(b->rconns);
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

static void loaded_chan(chan *ch, void *arg)
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
    if (kv_subscribe(b->kv, "", broker_on_notify, b) < 0) {
        log_error("cannot subscribe to the %s store", kv_name(b->kv));
        return -1;
    }
    while (!kv_subscribed(b->kv) && now_us() < deadline)
        event_base_loop(b->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    b->catching_up++; /* what is published while loading waits for the load */
    if (!kv_subscribed(b->kv))
        log_warn("the %s store's notifications are not live yet: going on",
                 kv_name(b->kv));
    /* load_all hands each channel to loaded_chan and the final status to
     * load_done, both with the load state as arg. */
    if (repo_channel_load_all(b->repo, &b->opts.defaults, loaded_chan, load_done, &ls) <
        0) {
        log_error("cannot load state from the %s store", kv_name(b->kv));
        return -1;
    }
    while (!ls.done)
        event_base_loop(b->base, EVLOOP_ONCE);
    if (ls.status < 0) {
        log_error("loading state from the %s store failed: %s", kv_name(b->kv),
                  kv_strerror(ls.status));
        return -1;
    }
    log_info("loaded %zu channel(s) from the %s store", b->chans.len, kv_name(b->kv));
    broker_catchup_step(b);
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
    broker_publish_free(b);
    broker_held_free(b);
    if (b->heartbeat)
        event_free(b->heartbeat);
    repo_channel_free(b->repo);
    free(b);
}

kv_store *broker_store(broker *b)
{
    return b->kv;
}

const char *broker_node_id(const broker *b)
{
    return b->node_id;
}

void broker_stats_get(const broker *b, broker_stats *st)
{
    st->channels = b->chans.len;
    st->streams = b->nstreams;
    st->slow_closed = b->slow_closed;
    st->refused = b->refused;
}

const char *broker_strerror(int code)
{
    switch (code) {
    case BROKER_ENOCHAN:
        return "no such channel";
    case BROKER_ENOCONN:
        return "no such connection";
    case BROKER_ENOMEM:
        return "out of memory";
    case BROKER_EINVAL:
        return "invalid argument";
    case BROKER_ELIMIT:
        return "a limit is reached";
    case BROKER_ECLOSING:
        return "shutting down";
    default:
        return kv_strerror(code);
    }
}

/* ---- channels ---- */

chan *broker_chan(broker *b, const char *name)
{
    return strmap_get(&b->chans, name);
}

chan *broker_chan_add(broker *b, const char *name, const chan_opts *opts)
{
    chan *ch = chan_new(name, opts);
    if (ch && strmap_put(&b->chans, ch->name, ch) < 0) {
        chan_unref(ch);
        ch = NULL;
    }
    return ch;
}

chan *broker_chan_open(broker *b, const char *name, bool create, int *why, char *err,
                       size_t errlen)
{
    chan *ch = broker_chan(b, name);
    bool created;
    if (ch)
        return ch;
    if (!create || !b->opts.autocreate) {
        *why = BROKER_ENOCHAN;
        return NULL;
    }
    return broker_chan_put(b, name, NULL, &created, why, err, errlen);
}

chan *broker_chan_put(broker *b, const char *name, json_t *opts, bool *created, int *why,
                      char *err, size_t errlen)
{
    chan *ch = broker_chan(b, name);
    chan_opts o = ch ? ch->opts : b->opts.defaults;

    if (chan_opts_apply_json(&o, opts, err, errlen) < 0) {
        *why = BROKER_EINVAL;
        return NULL;
    }
    *created = !ch;
    if (!ch && b->chans.len >= (size_t)b->opts.max_channels) {
        *why = BROKER_ELIMIT;
        snprintf(err, errlen, "the broker holds its limit of %d channels",
                 b->opts.max_channels);
        return NULL;
    }
    if (!ch) {
        if (!(ch = broker_chan_add(b, name, &o))) {
            *why = BROKER_ENOMEM;
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        log_debug("channel '%s' created", name);
    } else {
        bool shrink = o.history < ch->opts.history;
        chan_set_opts(ch, &o);
        if (shrink)
            repo_channel_history_trim(b->repo, ch);
    }
    repo_channel_persist(b->repo, ch);
    json_t *oj = chan_opts_to_json(&ch->opts);
    char *text = oj ? json_dumps(oj, JSON_COMPACT) : NULL;
    if (text)
        broker_announce(b, "c", ch->name, NULL, text);
    free(text);
    json_decref(oj);
    return ch;
}

void broker_chan_drop(broker *b, chan *ch)
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
    log_debug("channel '%s' deleted", ch->name);
    repo_channel_remove(b->repo, ch);
    broker_announce(b, "c", ch->name, NULL, "deleted");
    broker_chan_drop(b, ch);
}

static int by_name(const void *a, const void *b)
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
    qsort(v, *n, sizeof(*v), by_name);
    return v;
}

/* ---- connections ---- */

conn *broker_conn_create(broker *b, chan *ch, int *why)
{
    conn *cn;
    if (ch->nconns >= (size_t)b->opts.max_connections_per_channel) {
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
    repo_connection_persist(b->rconns, cn);
    broker_announce(b, "n", ch->name, cn->id, "created");
    log_debug("connection %s created on '%s'", cn->id, ch->name);
    return cn;
}

void broker_conn_delete(broker *b, conn *cn)
{
    if (cn->lis.stream)
        stream_close(cn->lis.stream);
    repo_connection_remove(b->rconns, cn);
    broker_announce(b, "n", cn->ch->name, cn->id, "deleted");
    conn_free(cn);
}

void broker_conn_drain(broker *b, conn *cn)
{
    size_t n = 0;
    msg *m;
    while (cn->lis.running && cn->lis.stream && !cn->loading &&
           (m = msgq_shift(&cn->queue))) {
        stream_send(cn->lis.stream, m);
        msg_unref(m);
        n++;
    }
    if (n) {
        repo_queue_pop(b->rqueues, cn, n);
        /* Now, not on the batch timer: a node the listener moves to reads the
         * stored queue, and must not find what was delivered here. */
        kv_flush(b->kv, NULL, NULL);
    }
}

void broker_conn_set_running(broker *b, conn *cn, bool running)
{
    if (cn->lis.running != running) {
        cn->lis.running = running;
        repo_listener_persist(b->rlisteners, cn);
        broker_announce(b, "l", cn->ch->name, cn->id, running ? "running" : "stopped");
    }
    broker_conn_drain(b, cn);
}

/* ---- delivery ---- */

void broker_conn_deliver(broker *b, conn *cn, msg *m)
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
        repo_queue_dropped(b->rqueues, cn);
    }
    broker_conn_drain(b, cn);
}

void broker_chan_deliver(broker *b, chan *ch, msg *m)
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
        broker_conn_deliver(b, cn, m);
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
        broker_conn_drain(rl->b, cn);
    }
    msgq_free(&rl->q);
    chan_unref(rl->ch);
    free(rl);
}

void broker_conn_reload(broker *b, conn *cn)
{
    reload *rl = calloc(1, sizeof(*rl));
    if (!rl) {
        broker_conn_drain(b, cn);
        return;
    }
    rl->b = b;
    rl->ch = chan_ref(cn->ch);
    snprintf(rl->conn_id, sizeof(rl->conn_id), "%s", cn->id);
    rl->seen = b->seen_seq;
    msgq_init(&rl->q, (size_t)cn->ch->opts.queue_limit);
    cn->loading = true;
    if (repo_queue_load_into(b->rqueues, cn, &rl->q, queue_reloaded, rl) < 0)
        queue_reloaded(KV_ENOMEM, rl);
}

/* ---- live streams ---- */

/* Whether one more stream may open on 'ch' ('takeover' when it replaces a
 * stream of the same connection): NULL, or why not. */
static const char *admit(broker *b, chan *ch, bool takeover)
{
    const char *why = NULL;
    if (takeover)
        return NULL;
    if (b->nstreams >= (size_t)b->opts.max_streams)
        why = "busy: the broker holds its limit of streams";
    else if (ch->nstreams + ch->nattached >= (size_t)b->opts.max_streams_per_channel)
        why = "busy: the channel holds its limit of streams";
    if (why) {
        log_debug("subscriber to '%s' sent away: %s", ch->name, why);
        b->refused++;
    }
    return why;
}

int broker_subscribe(broker *b, sink *sk, chan *ch, const char *last_id, const char **why)
{
    stream *s;
    uint64_t seq;
    size_t from = ch->history.len; /* no resume: live messages only */

    if ((*why = admit(b, ch, false)))
        return BROKER_ELIMIT;
    if (!(s = stream_open(b, sk, ch, NULL)))
        return BROKER_ENOMEM;
    if (last_id) {
        long at = parse_u64(last_id, &seq) == 0 ? msgq_find(&ch->history, seq) : -1;
        /* An unknown or expired id replays everything retained. */
        from = at >= 0 ? (size_t)at + 1 : 0;
    }
    for (size_t i = from; i < ch->history.len; i++)
        if (stream_send(s, msgq_at(&ch->history, i)) < 0)
            break; /* too slow even for the replay: aborted */
    return 0;
}

int broker_attach(broker *b, sink *sk, conn *cn, const char **why)
{
    stream *s;
    if ((*why = admit(b, cn->ch, cn->lis.stream != NULL)))
        return BROKER_ELIMIT;
    if (cn->lis.stream) {
        log_debug("connection %s: a new stream takes over", cn->id);
        stream_close(cn->lis.stream);
    }
    if (!(s = stream_open(b, sk, cn->ch, cn)))
        return BROKER_ENOMEM;
    broker_announce(b, "a", cn->ch->name, cn->id, "attached");
    broker_conn_reload(b, cn);
    return 0;
}
