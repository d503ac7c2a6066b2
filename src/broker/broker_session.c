/* broker_session.c - every live stream is a session: its client is told its
 * id, it is archived (repo_session, so every node sharing the store sees it)
 * and its joins and leaves are published on SESSION_CHANNEL.
 *
 * Publishing goes through broker_publish() like any client's, so the events
 * are stored and delivered on every node. It happens while SESSION_CHANNEL
 * exists: the first subscriber (or durable connection) creates it, whatever
 * autocreate says, and every node hears of it; until then joins and leaves
 * cost no message (nor an id) at all. Streams on reserved channels
 * (sys.*, SESSION_CHANNEL itself included) are archived but their joins and
 * leaves are not published: a monitor reconnecting to sys.sessions does not
 * fill the feed it reads, and publishing never opens a stream, so nothing
 * feeds back. A storm of joins is bounded: events wait in one batch (at most
 * SESS_PENDING_MAX), one publish is in flight at a time and takes them all;
 * what does not fit, or what the store refuses, is skipped (a debug log, and
 * counted). The archive's writes are fire-and-forget on the store's pipeline:
 * a failing store never holds a stream (the store reports the failure). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "src/base/log.h"
#include "src/base/util.h"
#include "src/broker/broker_private.h"
#include "src/broker/node.h"

#define SESS_PENDING_MAX PUB_BATCH_MAX /* events waiting to be published */
#define SESS_SWEEP_MAX_S 10            /* the archive is looked at this often ... */
#define SESS_TICK_S 1                  /* ... or every tick when sessions changed */
#define SESS_RETENTION_DEFAULT_S 3600
#define SESS_MAX_DEFAULT 10000
/* An active session whose node is not online is ended, if it joined longer
 * ago than this. A node registers before it serves and the registry is read
 * before the archive, so a session that joined before the read has its node
 * in it: this only covers clocks that disagree by a few seconds. */
#define SESS_ORPHAN_GRACE_S (NODE_TTL_S + NODE_HEARTBEAT_S)

/* A sweep in flight; 'b' is NULL once the broker is gone. */
struct sess_sweep {
    broker *b;
};

static int64_t retention_s(const broker *b)
{
    return b->opts.sessions_retention_s >= 0 ? b->opts.sessions_retention_s
                                             : SESS_RETENTION_DEFAULT_S;
}

static size_t sessions_max(const broker *b)
{
    return b->opts.sessions_max > 0 ? (size_t)b->opts.sessions_max : SESS_MAX_DEFAULT;
}

void broker_session_peer(stream *s)
{
    char remote[SESSION_REMOTE_MAX], agent[SESSION_AGENT_MAX];
    sink_peer(s->sk, remote, sizeof(remote), agent, sizeof(agent));
    if (strpair_set(&s->peer, remote, agent) < 0)
        log_debug("session %s: out of memory keeping its address", s->session);
}

/* The record of 's', borrowing its strings (do not session_clear it). */
static session record_of(broker *b, const stream *s, int64_t left_at)
{
    session r = {
        .authid = (char *)stream_authid(s),
        .authrole = (char *)stream_authrole(s),
        .method = s->method,
        .channel = (char *)stream_channel(s),
        .agent = (char *)stream_agent(s),
        .joined_at = s->joined_at,
        .left_at = left_at,
    };
    memcpy(r.id, s->session, sizeof(r.id));
    if (s->cn)
        memcpy(r.conn, s->cn->id, sizeof(r.conn));
    memcpy(r.node, b->node_id, sizeof(r.node));
    snprintf(r.remote, sizeof(r.remote), "%s", stream_remote(s));
    return r;
}

/* ---- publishing on SESSION_CHANNEL ---- */

static void pending_flush(broker *b);

static void published(int status, const uint64_t *ids, size_t n, int64_t ts_us, void *arg)
{
    broker *b = arg;
    b->sess_publishing = false;
    if (status < 0)
        log_debug("sessions: publishing joins and leaves failed: %s",
                  broker_strerror(status));
    if (b->sess_pending.n && b->sess_pub_ev)
        event_active(b->sess_pub_ev, EV_TIMEOUT, 0);
}

static void pending_drop(broker *b, const char *why)
{
    if (!b->sess_pending.n)
        return;
    log_debug("sessions: %zu join(s) and leave(s) not published: %s", b->sess_pending.n,
              why);
    pub_batch_free(&b->sess_pending);
    b->sess_cap = 0;
}

/* Publish every pending event in one batch, unless a publish is in flight
 * (its end comes back here). */
static void pending_flush(broker *b)
{
    int rc;

    if (b->sess_publishing || !b->sess_pending.n)
        return;
    chan *ch = broker_chan(b, SESSION_CHANNEL);
    if (!ch) {
        pending_drop(b, "its channel was deleted");
        return;
    }
    pub_batch batch = b->sess_pending;
    size_t n = batch.n;
    memset(&b->sess_pending, 0, sizeof(b->sess_pending));
    b->sess_cap = 0;
    if ((rc = broker_publish(b, ch, NULL, &batch, published, b)) < 0) {
        log_debug("sessions: %zu join(s) and leave(s) not published: %s", n,
                  broker_strerror(rc));
        return;
    }
    b->sess_publishing = true;
}

static void pub_cb(evutil_socket_t fd, short what, void *arg)
{
    pending_flush(arg);
}

/* Queue the event 'type' with the record of 's' for SESSION_CHANNEL. */
static void announce(broker *b, const stream *s, const char *type, int64_t left_at)
{
    if (!b->sess_pub_ev || b->closing || channel_reserved(stream_channel(s)) ||
        !broker_chan(b, SESSION_CHANNEL))
        return;
    if (b->sess_pending.n >= SESS_PENDING_MAX) {
        log_debug("sessions: too many joins and leaves waiting: %s of %s not published",
                  type, s->session);
        return;
    }
    if (b->sess_pending.n == b->sess_cap) {
        size_t cap = b->sess_cap ? 2 * b->sess_cap : 16;
        pub_event *v = realloc(b->sess_pending.ev, cap * sizeof(*v));
        if (!v)
            return; /* out of memory: this one is not announced */
        b->sess_pending.ev = v;
        b->sess_cap = cap;
    }
    session r = record_of(b, s, left_at);
    pub_event ev = {
        .event = strdup(type), .data = session_to_text(&r), .retry = -1, .is_json = 1};
    if (!ev.event || !ev.data) {
        free(ev.event);
        free(ev.data);
        return;
    }
    ev.data_len = strlen(ev.data);
    b->sess_pending.ev[b->sess_pending.n++] = ev;
    if (!b->sess_publishing)
        event_active(b->sess_pub_ev, EV_TIMEOUT, 0);
}

/* ---- joins and leaves ---- */

void broker_session_joined(broker *b, stream *s)
{
    char data[32 + CONN_ID_LEN];
    s->joined_at = now_us();
    /* First on the stream, without an id: Last-Event-ID stays as it was. */
    snprintf(data, sizeof(data), "{\"id\":\"%s\"}", s->session);
    sink_event(s->sk, "session", data);
    if (!b->rsessions)
        return;
    session r = record_of(b, s, 0);
    repo_session_save(b->rsessions, &r);
    b->sess_dirty = true;
    announce(b, s, "joined", 0);
}

void broker_session_left(broker *b, stream *s)
{
    if (!b->rsessions || !s->joined_at)
        return;
    int64_t left = now_us();
    if (left <= s->joined_at)
        left = s->joined_at + 1; /* left_at 0 would read as active */
    session r = record_of(b, s, left);
    repo_session_save(b->rsessions, &r);
    b->sess_dirty = true;
    announce(b, s, "left", left);
}

/* ---- reading the archive ---- */

int broker_session_list(broker *b, const session_filter *f, const char *after,
                        size_t limit, broker_sessions_cb cb, void *arg)
{
    return repo_session_list(b->rsessions, f, after, limit, cb, arg);
}

int broker_session_get(broker *b, const char *id, broker_session_cb cb, void *arg)
{
    return repo_session_get(b->rsessions, id, cb, arg);
}

/* ---- the archive's bound ---- */

static void swept(int status, size_t dropped, size_t ended, void *arg)
{
    struct sess_sweep *sw = arg;
    broker *b = sw->b;
    free(sw);
    if (!b)
        return;
    b->sess_sweep = NULL;
    if (status < 0)
        log_debug("sessions: bounding the archive failed: %s", kv_strerror(status));
    if (dropped)
        log_debug("sessions: %zu ended session(s) dropped from the archive", dropped);
    if (ended)
        log_info("sessions: %zu session(s) of nodes gone offline marked ended", ended);
}

/* The registry read: bound the archive, ending the sessions of nodes that
 * are not online (they died without recording the end of their streams). */
static void nodes_listed(int status, json_t *nodes, void *arg)
{
    struct sess_sweep *sw = arg;
    broker *b = sw->b;
    size_t n = 0;
    json_t *node;
    const char **live = NULL;

    if (!b) {
        free(sw);
        return;
    }
    if (status == 0 && !(live = calloc(json_array_size(nodes) + 1, sizeof(*live))))
        status = KV_ENOMEM;
    for (size_t i = 0; live && i < json_array_size(nodes); i++) {
        node = json_array_get(nodes, i);
        const char *id = json_string_value(json_object_get(node, "id"));
        const char *st = json_string_value(json_object_get(node, "status"));
        if (id && st && strcmp(st, "online") == 0)
            live[n++] = id;
    }
    /* Without the registry, or one that does not list this node online (it
     * has none, or this node lost the store for a while), sessions are only
     * bounded: no node is judged. */
    bool self = false;
    for (size_t i = 0; i < n; i++)
        self |= strcmp(live[i], b->node_id) == 0;
    if (!self) {
        free(live);
        live = NULL;
    }
    repo_session_bound bd = {
        .now_us = now_us(),
        .retention_us = retention_s(b) * 1000000,
        .max = sessions_max(b),
        .live = live,
        .nlive = n,
        .grace_us = SESS_ORPHAN_GRACE_S * 1000000LL,
    };
    int rc = repo_session_sweep(b->rsessions, &bd, swept, sw);
    free(live);
    if (rc < 0) {
        b->sess_sweep = NULL;
        free(sw);
    }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    broker *b = arg;
    int64_t now = now_us();
    int64_t every = retention_s(b) < SESS_SWEEP_MAX_S ? retention_s(b) : SESS_SWEEP_MAX_S;
    struct sess_sweep *sw;

    if (b->sess_sweep || b->closing ||
        (!b->sess_dirty && now - b->sess_swept_at < every * 1000000))
        return;
    if (!(sw = malloc(sizeof(*sw))))
        return;
    sw->b = b;
    if (node_list(b, nodes_listed, sw) < 0) {
        free(sw);
        return;
    }
    b->sess_sweep = sw;
    b->sess_dirty = false;
    b->sess_swept_at = now;
}

int broker_sessions_init(broker *b)
{
    struct timeval tick = {SESS_TICK_S, 0};
    if (!(b->rsessions = repo_session_kv_new(b->kv)) ||
        !(b->sess_tick = event_new(b->base, -1, EV_PERSIST, tick_cb, b)) ||
        event_add(b->sess_tick, &tick) < 0 ||
        !(b->sess_pub_ev = event_new(b->base, -1, 0, pub_cb, b)))
        return -1;
    return 0;
}

void broker_sessions_free(broker *b)
{
    if (b->sess_sweep)
        b->sess_sweep->b = NULL;
    b->sess_sweep = NULL;
    if (b->sess_tick)
        event_free(b->sess_tick);
    if (b->sess_pub_ev)
        event_free(b->sess_pub_ev);
    b->sess_tick = b->sess_pub_ev = NULL;
    pub_batch_free(&b->sess_pending);
    b->sess_cap = 0;
    repo_session_free(b->rsessions);
    b->rsessions = NULL;
}
