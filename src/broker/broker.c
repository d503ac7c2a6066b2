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

/* The channel map and its sorted index hold the same channels. A channel
 * new here starts its idle time now. */
static int chans_put(broker *b, chan *ch)
{
    ch->active_s = b->clock_s;
    if (strmap_put(&b->chans, ch->name, ch) < 0)
        return -1;
    if (sortmap_put(&b->byname, ch->name, ch) < 0) {
        strmap_del(&b->chans, ch->name);
        return -1;
    }
    return 0;
}

static void chans_del(broker *b, chan *ch)
{
    strmap_del(&b->chans, ch->name);
    sortmap_del(&b->byname, ch->name);
}

static void save_cb(evutil_socket_t fd, short what, void *arg)
{
    broker *b = arg;
    b->save_pending = false;
    broker_cursors_save(b);
}

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
    sortmap_init(&b->byname);
    /* A publish is stored within a turn of the loop on the memory store, a
     * round trip and a batch's wait on Redis. */
    static const double pub_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                        0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                        1,      2.5,     5,      10};
    prom_hist_init(&b->m.publish_seconds, pub_bounds,
                   sizeof(pub_bounds) / sizeof(pub_bounds[0]));
    TAILQ_INIT(&b->all);
    TAILQ_INIT(&b->waiting);
    TAILQ_INIT(&b->inflight);
    TAILQ_INIT(&b->dirty);
    broker_topics_init(b);
    b->held_tail = &b->held;
    conn_id_generate(b->node_id);
    if (!(b->repo = repo_kv_stack_new(kv)) ||
        !(b->save_ev = event_new(base, -1, 0, save_cb, b)) ||
        !(b->heartbeat = event_new(base, -1, EV_PERSIST, heartbeat_cb, b)) ||
        event_add(b->heartbeat, &hb) < 0 || broker_publish_init(b) < 0 ||
        broker_idle_init(b) < 0 || broker_history_init(b) < 0 ||
        broker_sessions_init(b) < 0 || broker_traces_init(b) < 0 ||
        broker_stats_init(b) < 0)
        goto err;
    b->rconns = repo_channel_connections(b->repo);
    b->rlisteners = repo_connection_listeners(b->rconns);
    b->rqueues = repo_connection_queues(b->rconns);
    return b;
err:
    broker_free(b);
    return NULL;
}

/* A channel loaded from the store: what its history holds is what this node
 * knows of its log (for the memory bound). */
static void note_history(broker *b, chan *ch)
{
    for (size_t i = 0; i < ch->history.len; i++)
        chan_log_note(ch, msgq_at(&ch->history, i)->seq);
    broker_memory_note(b, ch, 0);
    broker_history_retain(b, ch); /* what aged while nobody ran, and so on */
}

typedef struct load_state {
    broker *b;
    int done;
    int status;
} load_state;

static void loaded_chan(chan *ch, void *arg)
{
    broker *b = ((load_state *)arg)->b;
    if (ch->last_seq > b->max_seq)
        b->max_seq = ch->last_seq;
    note_history(b, ch);
    if (chans_put(b, ch) < 0) {
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
    broker_traces_reload(b);
    broker_catchup_step(b);
    return 0;
}

void broker_close_streams(broker *b)
{
    stream *s;
    while ((s = TAILQ_FIRST(&b->all)))
        stream_close(s, BROKER_END_SHUTDOWN);
}

void broker_free(broker *b)
{
    strmap_entry *e;
    if (!b)
        return;
    broker_close_streams(b);
    broker_topics_free(b);
    broker_cursors_save(b);
    for (size_t i = 0; strmap_next(&b->chans, &i, &e);)
        chan_unref(e->val);
    strmap_free(&b->chans);
    sortmap_free(&b->byname);
    broker_publish_free(b);
    broker_sessions_free(b);
    broker_traces_free(b);
    broker_stats_free(b);
    broker_idle_free(b);
    broker_history_free(b);
    broker_held_free(b);
    free(b->heap);
    if (b->heartbeat)
        event_free(b->heartbeat);
    if (b->save_ev)
        event_free(b->save_ev);
    repo_channel_free(b->repo);
    free(b);
}

void broker_set_limits(broker *b, const broker_opts *o)
{
    b->opts.max_channels = o->max_channels;
    b->opts.idle_ttl_s = o->idle_ttl_s;
    b->opts.max_streams = o->max_streams;
    b->opts.max_streams_per_channel = o->max_streams_per_channel;
    b->opts.max_patterns_per_stream = o->max_patterns_per_stream;
    b->opts.max_query_results = o->max_query_results;
    b->opts.max_pattern_streams = o->max_pattern_streams;
    b->opts.max_pattern_bytes = o->max_pattern_bytes;
    if (b->topic_tree)
        segtree_set_max(b->topic_tree, o->max_pattern_bytes);
    b->opts.max_connections_per_channel = o->max_connections_per_channel;
    b->opts.max_memory = o->max_memory;
    b->opts.memory_policy = o->memory_policy;
}

const broker_opts *broker_options(const broker *b)
{
    return &b->opts;
}

void broker_chan_defaults(const broker *b, const char *name, chan_opts *out)
{
    *out = b->opts.defaults;
    for (size_t i = 0; i < b->opts.nretention; i++) {
        const broker_retention *r = &b->opts.retention[i];
        if (!pattern_match(r->match, name, NULL))
            continue;
        if (r->history >= 0)
            out->history = r->history;
        if (r->history_age_s >= 0)
            out->history_age_s = r->history_age_s;
        if (r->history_bytes >= 0)
            out->history_bytes = r->history_bytes;
        return;
    }
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
    st->memory = broker_memory_used(b);
    st->evicted = b->evicted;
    st->rejected = b->rejected;
    st->expired = b->expired;
}

void broker_metrics_get(const broker *b, broker_metrics *m)
{
    strmap_entry *e;
    *m = b->m;
    m->connections = m->attached = 0;
    for (size_t i = 0; strmap_next(&b->chans, &i, &e);) {
        const chan *ch = e->val;
        m->connections += ch->nconns;
        m->attached += ch->nattached;
    }
}

const char *broker_end_name(int why)
{
    static const char *const names[BROKER_END_N] = {
        [BROKER_END_CLIENT] = "client",       [BROKER_END_SLOW] = "slow",
        [BROKER_END_TOKEN] = "token_expired", [BROKER_END_SHUTDOWN] = "shutdown",
        [BROKER_END_DELETED] = "deleted",     [BROKER_END_TAKEOVER] = "takeover",
        [BROKER_END_ERROR] = "error"};
    return why >= 0 && why < BROKER_END_N ? names[why] : "unknown";
}

const char *broker_pub_name(int result)
{
    static const char *const names[BROKER_PUB_N] = {
        [BROKER_PUB_OK] = "ok",
        [BROKER_PUB_INVALID] = "invalid",
        [BROKER_PUB_NOT_FOUND] = "not_found",
        [BROKER_PUB_DENIED] = "denied",
        [BROKER_PUB_LIMIT] = "limit",
        [BROKER_PUB_MEMORY_FULL] = "memory_full",
        [BROKER_PUB_STORE_FULL] = "store_full",
        [BROKER_PUB_STORE_ERROR] = "store_error",
        [BROKER_PUB_SHUTDOWN] = "shutdown",
        [BROKER_PUB_OVERLOADED] = "overloaded",
        [BROKER_PUB_ERROR] = "error"};
    return result >= 0 && result < BROKER_PUB_N ? names[result] : "unknown";
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
    case BROKER_EFULL:
        return "the memory bound is reached";
    case BROKER_EPENDING:
        return "being looked for in the store";
    case BROKER_EEXIST:
        return "it exists already";
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
    if (ch && chans_put(b, ch) < 0) {
        chan_unref(ch);
        ch = NULL;
    }
    return ch;
}

/* A channel looked for in the store. Notifications wait meanwhile (as during
 * a catch-up), so that its history mirror and what arrives live merge. */
typedef struct chan_lookup {
    broker *b;
    bool create;
    broker_chan_cb cb;
    void *arg;
    char name[]; /* NUL-terminated */
} chan_lookup;

static void lookup_found(chan *ch, void *arg)
{
    chan_lookup *lk = arg;
    broker *b = lk->b;
    /* A lookup or an announcement may have brought it meanwhile. */
    if (broker_chan(b, ch->name) || chans_put(b, ch) < 0) {
        chan_unref(ch);
        return;
    }
    if (ch->last_seq > b->max_seq)
        b->max_seq = ch->last_seq;
    note_history(b, ch);
}

static void lookup_done(int status, void *arg)
{
    chan_lookup *lk = arg;
    broker *b = lk->b;
    chan *ch = broker_chan(b, lk->name);
    char err[128];
    bool created;
    int why = 0;

    if (!ch && (status == 0 || status == KV_ENOTFOUND)) {
        /* SESSION_CHANNEL and BROKER_STATS_CHANNEL come when first asked
         * for, whatever autocreate says: they are the broker's own
         * (broker_session.c, broker_stats.c), as every sys.*
         * name is, which nothing else creates. */
        if (lk->create && (strcmp(lk->name, SESSION_CHANNEL) == 0 ||
                           strcmp(lk->name, BROKER_STATS_CHANNEL) == 0 ||
                           (b->opts.autocreate && !channel_reserved(lk->name))))
            ch = broker_chan_put(b, lk->name, NULL, &created, &why, err, sizeof(err));
        else
            why = BROKER_ENOCHAN;
    } else if (!ch) {
        why = status;
    }
    broker_catchup_step(b);
    lk->cb(ch ? 0 : why, ch, lk->arg);
    free(lk);
}

chan *broker_chan_lookup(broker *b, const char *name, bool create, int *why,
                         broker_chan_cb cb, void *arg)
{
    chan *ch = broker_chan(b, name);
    size_t n = strlen(name) + 1;
    chan_lookup *lk;
    if (ch)
        return ch;
    if (!(lk = malloc(sizeof(*lk) + n))) {
        *why = BROKER_ENOMEM;
        return NULL;
    }
    *lk = (chan_lookup){b, create, cb, arg};
    memcpy(lk->name, name, n);
    b->catching_up++;
    chan_opts defaults;
    broker_chan_defaults(b, name, &defaults);
    if ((*why = repo_channel_find(b->repo, name, &defaults, lookup_found, lookup_done,
                                  lk)) < 0) {
        b->catching_up--;
        free(lk);
        return NULL;
    }
    *why = BROKER_EPENDING;
    return NULL;
}

chan *broker_chan_put(broker *b, const char *name, json_t *opts, bool *created, int *why,
                      char *err, size_t errlen)
{
    chan *ch = broker_chan(b, name);
    chan_opts o;

    if (ch)
        o = ch->opts;
    else
        broker_chan_defaults(b, name, &o);
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
        bool shrink =
            o.history < ch->opts.history || o.queue_limit < ch->opts.queue_limit;
        chan_set_opts(ch, &o);
        broker_memory_note(b, ch, 0);
        if (shrink)
            repo_channel_trim(b->repo, ch, chan_log_bound(ch));
        broker_history_retain(b, ch);
    }
    repo_channel_persist(b->repo, ch);
    json_t *oj = chan_opts_to_json_all(&ch->opts);
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
        stream_close(s, BROKER_END_DELETED);
    while ((cn = TAILQ_FIRST(&ch->conns)))
        broker_conn_forget(b, cn);
    broker_memory_forget(b, ch);
    chans_del(b, ch);
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

size_t broker_chan_page(broker *b, const char *after, size_t limit, chan **v, bool *more)
{
    const sortmap_node *e = sortmap_after(&b->byname, after);
    size_t n = 0;
    for (; e && n < limit; e = sortmap_next(e))
        v[n++] = e->val;
    *more = e != NULL;
    return n;
}

/* ---- connections ---- */

static void conn_dirty(broker *b, conn *cn)
{
    if (!cn->dirty) {
        cn->dirty = true;
        TAILQ_INSERT_TAIL(&b->dirty, cn, dlink);
    }
    if (!b->save_pending) {
        b->save_pending = true;
        event_active(b->save_ev, 0, 0);
    }
}

static bool same(const cursor *a, const cursor *b)
{
    return a->id == b->id && a->pos == b->pos;
}

/* Save what the socket took (not what was merely queued for it: a node that
 * dies loses its buffers, and the next one must give those again). A stream
 * whose output is not all written yet stays in the list: a later save (the
 * next turn's, the tick's, a publisher's or a reader's) catches it up. */
static void cursor_save(broker *b, conn *cn)
{
    if (cn->lis.stream && cn->lis.stream->sk && sink_pending(cn->lis.stream->sk) == 0) {
        cn->at_w = cn->at;
        cn->own_w = cn->own;
    }
    repo_queue_save(b->rqueues, cn, &cn->at_w, &cn->own_w, cn->dropped_add);
    cn->dropped_add = 0;
}

void broker_sink_drained(sink *sk)
{
    stream *s = sk->stream;
    conn *cn = s ? s->cn : NULL;
    if (!cn || !cn->dirty)
        return;
    cursor_save(s->b, cn);
    TAILQ_REMOVE(&s->b->dirty, cn, dlink);
    cn->dirty = false;
    /* Now, not on the batch timer: another node reading this connection
     * (attaching it, showing it) must find where it stands. */
    kv_flush(s->b->kv, NULL, NULL);
}

void broker_cursors_save(broker *b)
{
    conn *cn, *next;
    for (cn = TAILQ_FIRST(&b->dirty); cn; cn = next) {
        next = TAILQ_NEXT(cn, dlink);
        cursor_save(b, cn);
        if (same(&cn->at_w, &cn->at) && same(&cn->own_w, &cn->own)) {
            TAILQ_REMOVE(&b->dirty, cn, dlink);
            cn->dirty = false;
        }
    }
}

void broker_conn_detached(broker *b, conn *cn, bool flushed)
{
    TAILQ_REMOVE(&cn->ch->attached, cn, alink);
    if (flushed) {
        /* Ended cleanly: its output goes out before the connection closes. */
        cn->at_w = cn->at;
        cn->own_w = cn->own;
    }
    if (cn->dirty) {
        TAILQ_REMOVE(&b->dirty, cn, dlink);
        cn->dirty = false;
        repo_queue_save(b->rqueues, cn, &cn->at_w, &cn->own_w, cn->dropped_add);
        cn->dropped_add = 0;
    }
    repo_connection_detach(b->rconns, cn, b->node_id);
    msgq_free(&cn->pending);
    msgq_init(&cn->pending, (size_t)cn->ch->opts.queue_limit);
}

void broker_conn_forget(broker *b, conn *cn)
{
    if (cn->lis.stream)
        stream_close(cn->lis.stream, BROKER_END_DELETED);
    if (cn->dirty)
        TAILQ_REMOVE(&b->dirty, cn, dlink);
    conn_free(cn);
}

/* A connection being created: answered once its cursor is in the store. */
typedef struct conn_creation {
    broker *b;
    chan *ch; /* holds a reference */
    char id[CONN_ID_LEN + 1];
    broker_conn_cb cb;
    void *arg;
} conn_creation;

static void conn_created(const kv_result *res, void *arg)
{
    conn_creation *cc = arg;
    conn *cn = cc->ch->deleted ? NULL : chan_conn(cc->ch, cc->id);
    int status = res->status;
    if (status == 0 && !cn)
        status =
            cc->ch->deleted ? BROKER_ENOCHAN : BROKER_ENOCONN; /* deleted meanwhile */
    if (status < 0 && cn) {
        /* Not placed: nothing was created. */
        repo_connection_remove(cc->b->rconns, cc->ch, cc->id);
        broker_announce(cc->b, "n", cc->ch->name, cc->id, "deleted");
        broker_conn_forget(cc->b, cn);
        cn = NULL;
    }
    if (cn)
        log_debug("connection %s created on '%s'", cn->id, cn->ch->name);
    cc->cb(status, cn, cc->arg);
    chan_unref(cc->ch);
    free(cc);
}

int broker_conn_create(broker *b, chan *ch, const char *owner, const char *owner_role,
                       broker_conn_cb cb, void *arg)
{
    conn_creation *cc;
    conn *cn;
    char *rec;
    int rc;
    if (ch->nconns >= (size_t)b->opts.max_connections_per_channel)
        return BROKER_ELIMIT;
    if (!(cc = malloc(sizeof(*cc))) || !(cn = conn_new(ch, NULL))) {
        free(cc);
        return BROKER_ENOMEM;
    }
    if (conn_set_owner(cn, owner, owner_role) < 0) {
        conn_free(cn);
        free(cc);
        return BROKER_ENOMEM;
    }
    /* Ids are random; a collision within one channel is improbable but cheap
     * to rule out. */
    while (chan_conn(ch, cn->id) != cn)
        conn_id_generate(cn->id);
    *cc = (conn_creation){b, chan_ref(ch), "", cb, arg};
    memcpy(cc->id, cn->id, sizeof(cc->id));
    repo_connection_persist(b->rconns, cn);
    if ((rc = repo_queue_init(b->rqueues, cn, conn_created, cc)) < 0) {
        repo_connection_remove(b->rconns, ch, cn->id);
        conn_free(cn);
        chan_unref(cc->ch);
        free(cc);
        return rc == KV_ENOMEM ? BROKER_ENOMEM : rc;
    }
    /* The others learn its owner from the announcement. */
    rec = repo_conn_record(cn);
    broker_announce(b, "n", ch->name, cn->id, rec ? rec : "created");
    free(rec);
    return 0;
}

/* A connection looked for in the store. */
typedef struct conn_lookup {
    chan *ch; /* holds a reference */
    char id[CONN_ID_LEN + 1];
    broker_conn_cb cb;
    void *arg;
} conn_lookup;

static void conn_lookup_done(int status, void *arg)
{
    conn_lookup *lk = arg;
    conn *cn = lk->ch->deleted ? NULL : chan_conn(lk->ch, lk->id);
    lk->cb(cn                                      ? 0
           : status == 0 || status == KV_ENOTFOUND ? BROKER_ENOCONN
                                                   : status,
           cn, lk->arg);
    chan_unref(lk->ch);
    free(lk);
}

conn *broker_conn_lookup(broker *b, chan *ch, const char *id, int *why, broker_conn_cb cb,
                         void *arg)
{
    conn *cn = chan_conn(ch, id);
    conn_lookup *lk;
    if (cn)
        return cn;
    if (!valid_conn_id(id)) {
        *why = BROKER_ENOCONN;
        return NULL;
    }
    if (!(lk = malloc(sizeof(*lk)))) {
        *why = BROKER_ENOMEM;
        return NULL;
    }
    *lk = (conn_lookup){chan_ref(ch), "", cb, arg};
    snprintf(lk->id, sizeof(lk->id), "%s", id);
    if ((*why = repo_connection_find(b->rconns, ch, id, conn_lookup_done, lk)) < 0) {
        chan_unref(lk->ch);
        free(lk);
        return NULL;
    }
    *why = BROKER_EPENDING;
    return NULL;
}

void broker_conn_delete(broker *b, conn *cn)
{
    log_debug("connection %s deleted from '%s'", cn->id, cn->ch->name);
    repo_connection_remove(b->rconns, cn->ch, cn->id);
    broker_announce(b, "n", cn->ch->name, cn->id, "deleted");
    broker_conn_forget(b, cn);
}

void broker_conn_set_running(broker *b, conn *cn, bool running)
{
    if (cn->lis.running != running) {
        cn->lis.running = running;
        repo_listener_persist(b->rlisteners, cn);
        broker_announce(b, "l", cn->ch->name, cn->id, running ? "running" : "stopped");
        if (running)
            broker_conn_reload(b, cn);
    }
}

/* What waits, from the store's counts: everything after each cursor (the
 * logs may have lost the oldest of it), at most queue_limit of it. */
static uint64_t backlog_total(const repo_backlog *bl)
{
    uint64_t c = bl->end.pos > bl->at.pos ? bl->end.pos - bl->at.pos : 0;
    uint64_t o = bl->own_end.pos > bl->own.pos ? bl->own_end.pos - bl->own.pos : 0;
    return c + o;
}

typedef struct info_read {
    uint64_t limit;
    broker_info_cb cb;
    void *arg;
} info_read;

static void info_state(int status, const repo_conn_state *st, void *arg)
{
    info_read *ir = arg;
    conn_info ci = {0};
    if (status == 0) {
        uint64_t total = backlog_total(&st->bl);
        ci.running = st->running;
        ci.attached = st->node[0] != '\0';
        ci.queue_length = total < ir->limit ? total : ir->limit;
        ci.dropped = st->bl.dropped + (total > ir->limit ? total - ir->limit : 0);
    }
    ir->cb(status, &ci, ir->arg);
    free(ir);
}

int broker_conn_info(broker *b, conn *cn, broker_info_cb cb, void *arg)
{
    info_read *ir = malloc(sizeof(*ir));
    int rc;
    if (!ir)
        return BROKER_ENOMEM;
    *ir = (info_read){(uint64_t)cn->ch->opts.queue_limit, cb, arg};
    /* What moved here is in the store first. */
    broker_cursors_save(b);
    if ((rc = repo_connection_state(b->rconns, cn, info_state, ir)) < 0)
        free(ir);
    return rc;
}

/* One list: an info read per connection, joined. */
typedef struct conn_listing {
    size_t n, pending;
    int status;
    char (*ids)[CONN_ID_LEN + 1];
    conn_info *infos;
    broker_list_cb cb;
    void *arg;
} conn_listing;

typedef struct listing_slot {
    conn_listing *cl;
    size_t i;
} listing_slot;

static void listing_step(conn_listing *cl)
{
    if (--cl->pending)
        return;
    cl->cb(cl->status, cl->status == 0 ? cl->n : 0,
           (const char(*)[CONN_ID_LEN + 1]) cl->ids, cl->infos, cl->arg);
    free(cl->ids);
    free(cl->infos);
    free(cl);
}

static void listing_info(int status, const conn_info *ci, void *arg)
{
    listing_slot *ls = arg;
    if (status < 0 && ls->cl->status == 0)
        ls->cl->status = status;
    if (status == 0)
        ls->cl->infos[ls->i] = *ci;
    listing_step(ls->cl);
    free(ls);
}

static void listing_later(evutil_socket_t fd, short what, void *arg)
{
    listing_step(arg);
}

static int id_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int broker_conn_list(broker *b, chan *ch, broker_list_cb cb, void *arg)
{
    conn_listing *cl = calloc(1, sizeof(*cl));
    const char **sorted = malloc((ch->nconns ? ch->nconns : 1) * sizeof(*sorted));
    size_t n = 0;
    conn *cn;

    if (!cl || !sorted ||
        (ch->nconns && (!(cl->ids = calloc(ch->nconns, sizeof(*cl->ids))) ||
                        !(cl->infos = calloc(ch->nconns, sizeof(*cl->infos)))))) {
        if (cl) {
            free(cl->ids);
            free(cl->infos);
        }
        free(cl);
        free(sorted);
        return BROKER_ENOMEM;
    }
    TAILQ_FOREACH (cn, &ch->conns, link)
        sorted[n++] = cn->id;
    qsort(sorted, n, sizeof(*sorted), id_cmp);
    cl->cb = cb;
    cl->arg = arg;
    cl->pending = 1; /* held while issuing */
    for (size_t i = 0; i < n; i++) {
        listing_slot *ls = malloc(sizeof(*ls));
        memcpy(cl->ids[cl->n], sorted[i], CONN_ID_LEN + 1);
        if (!ls || broker_conn_info(b, chan_conn(ch, sorted[i]), listing_info, ls) < 0) {
            free(ls);
            cl->status = BROKER_ENOMEM;
            break;
        }
        *ls = (listing_slot){cl, cl->n++};
        cl->pending++;
    }
    free(sorted);
    if (cl->pending == 1 && cl->status < 0) {
        /* Nothing issued: no callback. */
        free(cl->ids);
        free(cl->infos);
        free(cl);
        return BROKER_ENOMEM;
    }
    if (cl->pending == 1) {
        /* No connection: the (empty) answer still comes later. */
        static const struct timeval now = {0, 0};
        if (event_base_once(b->base, -1, EV_TIMEOUT, listing_later, cl, &now) == 0)
            return 0;
    }
    listing_step(cl); /* drops the hold */
    return 0;
}

/* ---- delivery ---- */

/* Give 'm' to the stream attached to 'cn' if it is the next message of its
 * log there; a gap means messages were missed: read the store. */
static void conn_give(broker *b, conn *cn, msg *m)
{
    cursor *c = m->own ? &cn->own : &cn->at;
    if (m->pos <= c->pos)
        return; /* given already */
    if (m->pos != c->pos + 1) {
        broker_conn_reload(b, cn);
        return;
    }
    if (stream_send(cn->lis.stream, m) < 0)
        return; /* too slow: the stream is gone, the cursor stays */
    *c = (cursor){m->seq, m->pos};
    conn_dirty(b, cn);
}

/* A message for 'cn' arrived live. */
static void conn_live(broker *b, conn *cn, msg *m)
{
    if (!cn->lis.stream || !cn->lis.running)
        return; /* it waits in the log */
    if (cn->loading) {
        /* Held until the read is over; past the bound, read again then. */
        if (msgq_push(&cn->pending, m) != 0)
            cn->reload = true;
        return;
    }
    conn_give(b, cn, m);
}

void broker_conn_deliver(broker *b, conn *cn, msg *m)
{
    unsigned long long d0 = b->m.messages_delivered;
    conn_live(b, cn, m);
    /* Traced like a channel's message: by every node holding the
     * connection, 'connections' 1 where its stream took it live. */
    if (b->ntraces)
        broker_trace_note(b, cn->ch, cn, m, 0, b->m.messages_delivered - d0);
}

void broker_chan_deliver(broker *b, chan *ch, msg *m)
{
    stream *s, *next;
    conn *cn, *cnext;

    if (m->seq <= ch->last_seq)
        return; /* seen: a catch-up and a notification overlapped */
    ch->last_seq = m->seq;
    ch->active_s = b->clock_s;
    broker_memory_note(b, ch, m->seq);
    if (msgq_push(&ch->history, m) < 0)
        log_error("out of memory keeping message %s in history", m->id);
    if (chan_history_over(ch))
        broker_history_retain(b, ch);
    /* What was written where, for traces: two reads of a counter. */
    unsigned long long d0 = b->m.messages_delivered, d1;
    for (s = TAILQ_FIRST(&ch->streams); s; s = next) {
        next = TAILQ_NEXT(s, link); /* a slow stream may close here */
        stream_send(s, m);
    }
    if (b->topic_exact.len || b->ntopic_pats)
        broker_topic_deliver(b, ch, m);
    d1 = b->m.messages_delivered;
    /* Only the connections attached here: the others keep their place in
     * the log, at no cost to this publish. */
    for (cn = TAILQ_FIRST(&ch->attached); cn; cn = cnext) {
        cnext = TAILQ_NEXT(cn, alink); /* a slow stream may detach here */
        conn_live(b, cn, m);
    }
    if (b->ntraces)
        broker_trace_note(b, ch, NULL, m, d1 - d0, b->m.messages_delivered - d1);
    if (b->observer)
        b->observer(b->observer_arg, ch, m);
}

void broker_set_observer(broker *b, broker_observer_fn fn, void *arg)
{
    b->observer = fn;
    b->observer_arg = arg;
}

/* A read of what waits for a connection, for the stream attached here. */
typedef struct reload {
    broker *b;
    chan *ch; /* holds a reference */
    char conn_id[CONN_ID_LEN + 1];
} reload;

/* The next message of the two lists by id (the older), or NULL. */
static msg *next_of(msgq *a, size_t *ia, msgq *o, size_t *io)
{
    msg *x = msgq_at(a, *ia), *y = msgq_at(o, *io);
    if (x && (!y || x->seq < y->seq))
        return (*ia)++, x;
    if (y)
        return (*io)++, y;
    return NULL;
}

/* Where a cursor goes for a read: just before the first message it keeps, or
 * at the top of its log when it keeps none (all was given or dropped). */
static cursor start_of(msg *first_kept, cursor top)
{
    if (first_kept)
        return (cursor){first_kept->seq - 1, first_kept->pos - 1};
    return top;
}

static void backlog_read(int status, repo_backlog *bl, void *arg)
{
    reload *rl = arg;
    broker *b = rl->b;
    conn *cn = rl->ch->deleted ? NULL : chan_conn(rl->ch, rl->conn_id);
    msgq *cq = &bl->chan_msgs, *oq = &bl->own_msgs;
    size_t limit, ia = 0, io = 0;
    msg *m;

    if (!cn)
        goto out;
    cn->loading = false;
    if (!cn->lis.stream || !cn->lis.running)
        goto done; /* detached or stopped meanwhile: it waits in the logs */
    if (status < 0) {
        /* Where it stands is unknown: end the stream; the client comes back
         * and is read again. */
        log_warn("connection %s: cannot read its queue: %s", cn->id,
                 broker_strerror(status));
        stream_close(cn->lis.stream, BROKER_END_ERROR);
        goto done;
    }
    for (size_t i = 0; i < cq->len; i++)
        msgq_at(cq, i)->own = 0;
    for (size_t i = 0; i < oq->len; i++)
        msgq_at(oq, i)->own = 1;
    /* The top of each log: its end, or further if an entry came after the
     * end was read. Everything up to the tops is given now or dropped. */
    msg *lc = cq->len ? msgq_at(cq, cq->len - 1) : NULL;
    msg *lo = oq->len ? msgq_at(oq, oq->len - 1) : NULL;
    cursor top = bl->end, otop = bl->own_end;
    if (lc && lc->pos > top.pos)
        top = (cursor){lc->seq, lc->pos};
    if (lo && lo->pos > otop.pos)
        otop = (cursor){lo->seq, lo->pos};
    repo_backlog span = *bl;
    span.end = top;
    span.own_end = otop;
    uint64_t total = backlog_total(&span);
    /* Keep the newest 'limit' of both, merged by id; the older are dropped. */
    limit = (size_t)cn->ch->opts.queue_limit;
    size_t have = cq->len + oq->len, skip = have > limit ? have - limit : 0;
    for (size_t k = 0; k < skip; k++)
        next_of(cq, &ia, oq, &io);
    size_t kept = have - skip;
    if (total > kept) {
        cn->dropped_add += total - kept;
        log_debug("connection %s: %llu message(s) beyond queue_limit dropped", cn->id,
                  (unsigned long long)(total - kept));
    }
    cn->at = cn->at_w = start_of(msgq_at(cq, ia), top);
    cn->own = cn->own_w = start_of(msgq_at(oq, io), otop);
    conn_dirty(b, cn);
    while (cn->lis.stream && (m = next_of(cq, &ia, oq, &io)))
        conn_give(b, cn, m);
    /* Then what arrived while reading (a gap starts another read). */
    while (cn->lis.stream && !cn->loading && (m = msgq_shift(&cn->pending))) {
        conn_give(b, cn, m);
        msg_unref(m);
    }
done:
    msgq_free(&cn->pending);
    msgq_init(&cn->pending, (size_t)cn->ch->opts.queue_limit);
    if (cn->reload && !cn->loading) {
        cn->reload = false;
        broker_conn_reload(b, cn);
    }
out:
    chan_unref(rl->ch);
    free(rl);
}

void broker_conn_reload(broker *b, conn *cn)
{
    reload *rl;
    if (cn->loading) {
        cn->reload = true; /* once this read is over */
        return;
    }
    if (!cn->lis.stream || !cn->lis.running)
        return;
    if (!(rl = calloc(1, sizeof(*rl)))) {
        log_error("connection %s: out of memory reading its queue", cn->id);
        stream_close(cn->lis.stream, BROKER_END_ERROR);
        return;
    }
    rl->b = b;
    rl->ch = chan_ref(cn->ch);
    snprintf(rl->conn_id, sizeof(rl->conn_id), "%s", cn->id);
    cn->loading = true;
    cn->reload = false;
    if (repo_queue_read(b->rqueues, cn, (size_t)cn->ch->opts.queue_limit, backlog_read,
                        rl) < 0) {
        cn->loading = false;
        chan_unref(rl->ch);
        free(rl);
        log_error("connection %s: cannot read its queue", cn->id);
        stream_close(cn->lis.stream, BROKER_END_ERROR);
    }
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

/* Where a subscriber resuming after 'last_id' starts in the history of 'ch'
 * (an index), and whether it may have missed messages the channel retains no
 * more: '*gap'. Ids are broker-wide and increase, so any id this node knows
 * places the subscriber, even one of another channel: the messages after it
 * replay, and there is a gap if a message after it has left the history
 * (msgq 'gone'). A history loaded full from the store may have lost older
 * ones: then anything before its oldest message counts as gone. An id that
 * is not a number, or newer than any id this node has seen (a store that was
 * emptied, another broker's id), is unknown: a gap, and everything retained
 * replays (broker_stream_resume asks the store about such an id first). */
size_t broker_resume_at(const broker *b, const chan *ch, const char *last_id, bool *gap)
{
    uint64_t seq, top = b->max_seq > b->seen_seq ? b->max_seq : b->seen_seq;
    uint64_t gone = ch->history.gone;
    const msg *oldest = msgq_at(&ch->history, 0);
    if (parse_u64(last_id, &seq) < 0 || seq > top) {
        *gap = true;
        return 0;
    }
    if (!gone && ch->last_seq && ch->history.len >= ch->history.limit)
        gone = oldest ? oldest->seq - 1 : ch->last_seq;
    *gap = seq < gone;
    return msgq_after(&ch->history, seq);
}

void broker_send_gap(stream *s, const char *last_id, const char *first_retained)
{
    json_t *o = json_pack("{s:s%, s:s?}", "last_event_id", last_id, strlen(last_id),
                          "first_retained", first_retained);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (text)
        stream_event(s, BROKER_GAP_EVENT, text);
    else
        log_error("out of memory telling a subscriber to '%s' of a gap",
                  stream_channel(s));
    free(text);
    json_decref(o);
}

/* Replay to 's' what follows 'last_id', after the gap event if it missed
 * messages: now, with what this node knows. */
static void resume_now(broker *b, stream *s, const char *last_id)
{
    chan *ch = s->ch;
    bool gap;
    if (s->tp) {
        broker_topic_replay(b, s, last_id);
        return;
    }
    size_t from = broker_resume_at(b, ch, last_id, &gap);
    if (gap)
        broker_send_gap(s, last_id,
                        ch->history.len ? msgq_at(&ch->history, 0)->id : NULL);
    for (size_t i = from; i < ch->history.len; i++)
        if (stream_send(s, msgq_at(&ch->history, i)) < 0)
            break; /* too slow even for the replay: aborted */
}

/* A resume waiting for the store's last id. */
struct resume_read {
    broker *b;
    stream *s;    /* NULL once the stream ended (broker_resume_forget) */
    uint64_t seq; /* the client's Last-Event-ID */
    char last_id[];
};

static void resume_got(int status, uint64_t last, void *arg)
{
    struct resume_read *rr = arg;
    stream *s = rr->s;
    if (s) {
        s->resume = NULL;
        if (status == 0 && last >= rr->seq) {
            /* The store gave out that id: its message and those before it
             * are on their way here, and s skips them (last_seq); what
             * follows is written live, as it arrives. No gap. */
        } else if (s->last_seq == rr->seq) { /* nothing written meanwhile */
            if (status < 0)
                log_warn("cannot read the last id from the store (%d): a stream on "
                         "'%s' resumes as from an unknown id",
                         status, stream_channel(s));
            s->last_seq = 0;
            resume_now(rr->b, s, rr->last_id);
        }
    }
    free(rr);
}

void broker_resume_forget(stream *s)
{
    if (s->resume)
        s->resume->s = NULL;
    s->resume = NULL;
}

/* An id newer than any this node has seen is not unknown yet: another node
 * may have published it and its notification not arrived, or this node
 * started after it. The store says:
 * if it gave out that id, the stream starts right after it (nothing at or
 * below it is written, what follows comes live); if not, the id is unknown
 * (the store was emptied, another broker's id): a gap, and everything
 * retained replays. Meanwhile the stream writes only ids above it. */
void broker_stream_resume(broker *b, stream *s, const char *last_id)
{
    uint64_t seq, top = b->max_seq > b->seen_seq ? b->max_seq : b->seen_seq;
    struct resume_read *rr;
    size_t len = strlen(last_id);
    if (parse_u64(last_id, &seq) == 0 && seq > top &&
        (rr = malloc(sizeof(*rr) + len + 1))) {
        *rr = (struct resume_read){.b = b, .s = s, .seq = seq};
        memcpy(rr->last_id, last_id, len + 1);
        if (repo_channel_last_id(b->repo, resume_got, rr) == 0) {
            s->resume = rr;
            s->last_seq = seq;
            return;
        }
        free(rr); /* the store cannot be asked: as before, an unknown id */
    }
    resume_now(b, s, last_id);
}

int broker_subscribe(broker *b, sink *sk, chan *ch, const char *last_id, bool envelope,
                     const identity *who, const char **why)
{
    stream *s;

    if ((*why = admit(b, ch, false)))
        return BROKER_ELIMIT;
    broker_history_retain(b, ch); /* nothing older than its age replays */
    if (!(s = stream_open(b, sk, ch, NULL, NULL, who)))
        return BROKER_ENOMEM;
    s->envelope = envelope;
    if (last_id) /* else live messages only */
        broker_stream_resume(b, s, last_id);
    return 0;
}

int broker_attach(broker *b, sink *sk, conn *cn, const identity *who, const char **why)
{
    stream *s;
    if ((*why = admit(b, cn->ch, cn->lis.stream != NULL)))
        return BROKER_ELIMIT;
    if (cn->lis.stream) {
        log_debug("connection %s: a new stream takes over", cn->id);
        stream_close(cn->lis.stream, BROKER_END_TAKEOVER);
    }
    if (!(s = stream_open(b, sk, cn->ch, cn, NULL, who)))
        return BROKER_ENOMEM;
    TAILQ_INSERT_TAIL(&cn->ch->attached, cn, alink);
    broker_announce(b, "a", cn->ch->name, cn->id, "attached");
    repo_connection_attach(b->rconns, cn, b->node_id);
    cn->at = cn->own = cn->at_w = cn->own_w = (cursor){0, 0};
    broker_conn_reload(b, cn);
    return 0;
}
