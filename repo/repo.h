/* repo.h - repositories: how channels, connections, listeners and queues are
 * persisted to and rebuilt from a key-value store.
 *
 * Composed as eric-sse composes them: the channel repository builds channels
 * (options and history) and asks the connection repository for their
 * connections; the connection repository builds each connection from the
 * listener repository (running/stopped) and the queue repository (what waits
 * for it). Each repository is an interface (an ops table) with one kv-backed
 * implementation; none of them knows which kv store it runs on.
 *
 * A channel's messages are stored once, in its log; a connection's queue is
 * a cursor into that log plus a log of its own for messages published to it
 * alone, so a publish costs the same whatever the number of connections, and
 * a connection created (its cursor marked at the log's end) before a publish
 * is queued for on any node, whatever that node knows of it.
 *
 * Writes are fire-and-forget on the store's ordered pipeline: their errors are
 * reported by the store (kv_set_report), and a caller that must know they
 * landed issues kv_flush() afterwards. Loads are asynchronous and call back
 * exactly once. Callers go through the inline wrappers below, never ->ops.
 *
 * Key layout (the table is everything up to the last '/'; names never hold '/'):
 *   c/{chan}          string  channel options JSON
 *   g/{chan}          log     the channel's messages as JSON, at least
 *                             max(history, queue_limit) newest kept while
 *                             k/{chan}/ holds a cursor, else exactly history
 *                             for other nodes and restarts (none in a store
 *                             no other process reads: log_idle_remote)
 *   n/{chan}/{conn}   string  connection record JSON {"id", "owner"?, "owner_role"?}
 *   l/{chan}/{conn}   string  listener JSON {"running": bool}
 *   k/{chan}/{conn}   string  its cursor in g/{chan}: "<id> <pos>"
 *   o/{chan}/{conn}   log     messages published to it alone, queue_limit kept
 *   j/{chan}/{conn}   string  its cursor in o/{chan}/{conn} (none: "0 0")
 *   d/{chan}/{conn}   string  messages its bound dropped (integer)
 *   a/{chan}/{conn}   string  the node its stream is attached to, if any
 *   s/{chan}          string  when a node last had a live stream on it (unix s)
 *   meta/seq          string  the last message id allocated (integer)
 *   ss/{session}      string  a session record (session.h JSON)
 *   st/{session}      string  "<joined_at> <left_at> <node>" (µs; left 0:
 *                             active): what the archive's bound reads
 *   tr/{trace}        string  a trace's definition (trace.h JSON)
 *   tc/{trace}        string  the records it took, from every node (integer)
 *   td/{trace}        log     its records as JSON, the 'limit' newest kept
 *   tn/{trace}/       (none)  always empty: td/{trace} has no readers, so the
 *                             store trims it exactly (kv_append, log_readers)
 */
#ifndef REPO_H
#define REPO_H

/* Notification topics (kv_notify) between the nodes sharing a store. */
#define REPO_TOPIC_MSG "m"      /* m/{chan}: a message (its stored JSON) */
#define REPO_TOPIC_TARGETED "t" /* t/{chan}/{conn}: a message for one connection */

#include <stddef.h>
#include <stdint.h>

#include "kv/kv.h"
#include "src/domain/chan.h"
#include "src/domain/msg.h"
#include "src/domain/session.h"
#include "src/domain/trace.h"

/* Load completion: status 0 or a negative KV_E* code. */
typedef void (*repo_cb)(int status, void *arg);

/* ---- queues: what waits for one connection ---- */
typedef struct repo_queue repo_queue;

/* What the store holds for one connection's queue. */
typedef struct repo_backlog {
    cursor at, own;      /* its cursors in the channel's log and in its own */
    cursor end, own_end; /* the two logs' ends */
    uint64_t dropped;    /* the count stored */
    msgq chan_msgs;      /* the newest 'limit' entries after 'at', oldest first */
    msgq own_msgs;       /* the same after 'own' */
} repo_backlog;
/* 'bl' is borrowed until the callback returns (take msg references). */
typedef void (*repo_backlog_cb)(int status, repo_backlog *bl, void *arg);

typedef struct repo_queue_ops {
    int (*init)(repo_queue *r, const conn *cn, kv_cb cb, void *arg);
    int (*read)(repo_queue *r, const conn *cn, size_t limit, repo_backlog_cb cb,
                void *arg);
    void (*save)(repo_queue *r, const conn *cn, const cursor *at, const cursor *own,
                 uint64_t dropped_add);
    void (*remove)(repo_queue *r, const chan *ch, const char *conn_id);
    void (*free)(repo_queue *r);
} repo_queue_ops;
struct repo_queue {
    const repo_queue_ops *ops;
};

/* A new connection's queue: its cursor at the end of the channel's log, in one
 * step with respect to every publish (a message published after 'cb' reports
 * success, on any node, is queued for it), nothing of its own. */
static inline int repo_queue_init(repo_queue *r, const conn *cn, kv_cb cb, void *arg)
{
    return r->ops->init(r, cn, cb, arg);
}

/* Read what waits for 'cn': its cursors, the logs' ends, its dropped count
 * and, when 'limit' > 0, the newest 'limit' entries after each cursor. */
static inline int repo_queue_read(repo_queue *r, const conn *cn, size_t limit,
                                  repo_backlog_cb cb, void *arg)
{
    return r->ops->read(r, cn, limit, cb, arg);
}

/* Store the cursors of 'cn' ('own' only when it has moved off 0), and add
 * 'dropped_add' to its dropped count. */
static inline void repo_queue_save(repo_queue *r, const conn *cn, const cursor *at,
                                   const cursor *own, uint64_t dropped_add)
{
    r->ops->save(r, cn, at, own, dropped_add);
}

/* Remove the queue of the connection 'conn_id' of 'ch': cursors, its own log,
 * its dropped count. */
static inline void repo_queue_remove(repo_queue *r, const chan *ch, const char *conn_id)
{
    r->ops->remove(r, ch, conn_id);
}

static inline void repo_queue_free(repo_queue *r)
{
    if (r)
        r->ops->free(r);
}

/* A connection's record: {"id": ID, "owner": AUTHID, "owner_role": ROLE} (no
 * owner: anonymous; no role: none), as stored and as announced to the other
 * nodes. Caller frees; NULL on OOM. */
char *repo_conn_record(const conn *cn);
/* Set the owner of 'cn' and its role from a record. 0, -1 on OOM, -2 if it is
 * no record (or its owner or role is no string). */
int repo_conn_record_owner(conn *cn, const char *rec, size_t len);

/* ---- listeners: running or stopped ---- */
typedef struct repo_listener repo_listener;
typedef struct repo_listener_ops {
    void (*persist)(repo_listener *r, const conn *cn);
    void (*remove)(repo_listener *r, const chan *ch, const char *conn_id);
    int (*load)(repo_listener *r, conn *cn, repo_cb cb, void *arg);
    void (*free)(repo_listener *r);
} repo_listener_ops;
struct repo_listener {
    const repo_listener_ops *ops;
};

/* Store whether the listener of 'cn' runs. */
static inline void repo_listener_persist(repo_listener *r, const conn *cn)
{
    r->ops->persist(r, cn);
}

static inline void repo_listener_remove(repo_listener *r, const chan *ch,
                                        const char *conn_id)
{
    r->ops->remove(r, ch, conn_id);
}

/* Set cn->lis.running from the store (a missing record means running). */
static inline int repo_listener_load(repo_listener *r, conn *cn, repo_cb cb, void *arg)
{
    return r->ops->load(r, cn, cb, arg);
}

static inline void repo_listener_free(repo_listener *r)
{
    if (r)
        r->ops->free(r);
}

/* ---- connections: a listener plus a queue ---- */
typedef struct repo_connection repo_connection;

/* What the store says of one connection, for conn_info. */
typedef struct repo_conn_state {
    bool running;
    char node[CONN_ID_LEN + 1]; /* where its stream is attached, or "" */
    repo_backlog bl;            /* counts only: no entries */
} repo_conn_state;
typedef void (*repo_state_cb)(int status, const repo_conn_state *st, void *arg);

typedef struct repo_connection_ops {
    void (*persist)(repo_connection *r, const conn *cn);
    void (*remove)(repo_connection *r, const chan *ch, const char *conn_id);
    int (*load_all)(repo_connection *r, chan *ch, repo_cb cb, void *arg);
    int (*find)(repo_connection *r, chan *ch, const char *conn_id, repo_cb cb, void *arg);
    int (*state)(repo_connection *r, const conn *cn, repo_state_cb cb, void *arg);
    void (*attach)(repo_connection *r, const conn *cn, const char *node);
    void (*detach)(repo_connection *r, const conn *cn, const char *node);
    repo_listener *(*listeners)(repo_connection *r);
    repo_queue *(*queues)(repo_connection *r);
    void (*free)(repo_connection *r);
} repo_connection_ops;
struct repo_connection {
    const repo_connection_ops *ops;
};

/* Persist the connection record and its listener. */
static inline void repo_connection_persist(repo_connection *r, const conn *cn)
{
    r->ops->persist(r, cn);
}

/* Remove the connection 'conn_id' of 'ch', its listener and its queue. */
static inline void repo_connection_remove(repo_connection *r, const chan *ch,
                                          const char *conn_id)
{
    r->ops->remove(r, ch, conn_id);
}

/* Add every stored connection of 'ch' to it, with its listener state. */
static inline int repo_connection_load_all(repo_connection *r, chan *ch, repo_cb cb,
                                           void *arg)
{
    return r->ops->load_all(r, ch, cb, arg);
}

/* Look for the connection 'conn_id' of 'ch' in the store (created on another
 * node, which this one may not have heard of yet): if it is there, add it to
 * 'ch' with its listener state, then call 'cb' with 0; KV_ENOTFOUND if not. */
static inline int repo_connection_find(repo_connection *r, chan *ch, const char *conn_id,
                                       repo_cb cb, void *arg)
{
    return r->ops->find(r, ch, conn_id, cb, arg);
}

/* Read what the store says of 'cn' now: listener, attachment, queue counts. */
static inline int repo_connection_state(repo_connection *r, const conn *cn,
                                        repo_state_cb cb, void *arg)
{
    return r->ops->state(r, cn, cb, arg);
}

/* Record that the stream of 'cn' is attached on 'node' (a node id); detach
 * clears it only if it still names 'node' (another node may have taken it). */
static inline void repo_connection_attach(repo_connection *r, const conn *cn,
                                          const char *node)
{
    r->ops->attach(r, cn, node);
}

static inline void repo_connection_detach(repo_connection *r, const conn *cn,
                                          const char *node)
{
    r->ops->detach(r, cn, node);
}

/* The repositories it is composed of (borrowed). */
static inline repo_listener *repo_connection_listeners(repo_connection *r)
{
    return r->ops->listeners(r);
}

static inline repo_queue *repo_connection_queues(repo_connection *r)
{
    return r->ops->queues(r);
}

static inline void repo_connection_free(repo_connection *r)
{
    if (r)
        r->ops->free(r);
}

/* ---- channels: options, history, connections ---- */
typedef struct repo_channel repo_channel;
/* Called once per loaded channel; takes the reference it is given. */
typedef void (*repo_chan_found_cb)(chan *ch, void *arg);
/* What the store says of a channel's use: when a node last marked it used
 * (unix seconds, 0: never) and how many connections it stores. */
typedef void (*repo_usage_cb)(int status, int64_t used_s, size_t nconns, void *arg);
/* The last message id the store allocated, on any node (0: none yet). */
typedef void (*repo_id_cb)(int status, uint64_t id, void *arg);
typedef struct repo_channel_ops {
    void (*persist)(repo_channel *r, const chan *ch);
    void (*remove)(repo_channel *r, const chan *ch);
    int (*publish)(repo_channel *r, const chan *ch, const conn *target, const char *tail,
                   size_t tail_len, uint64_t floor, kv_cb cb, void *arg);
    int (*history_load)(repo_channel *r, const chan *ch, msgq *q, repo_cb cb, void *arg);
    void (*trim)(repo_channel *r, const chan *ch, size_t keep);
    int (*load_all)(repo_channel *r, const chan_opts *defaults, repo_chan_found_cb found,
                    repo_cb cb, void *arg);
    int (*find)(repo_channel *r, const char *name, const chan_opts *defaults,
                repo_chan_found_cb found, repo_cb cb, void *arg);
    void (*mark_used)(repo_channel *r, const chan *ch, int64_t now_s);
    int (*usage)(repo_channel *r, const chan *ch, repo_usage_cb cb, void *arg);
    int (*last_id)(repo_channel *r, repo_id_cb cb, void *arg);
    repo_connection *(*connections)(repo_channel *r);
    void (*free)(repo_channel *r);
} repo_channel_ops;
struct repo_channel {
    const repo_channel_ops *ops;
};

/* Store the channel's options. */
static inline void repo_channel_persist(repo_channel *r, const chan *ch)
{
    r->ops->persist(r, ch);
}

/* Remove the channel, its log and every connection the store holds for it
 * (not only those this node knows). */
static inline void repo_channel_remove(repo_channel *r, const chan *ch)
{
    r->ops->remove(r, ch);
}

/* Publish one message to the channel, or only to its connection 'target' (not
 * NULL): in one atomic step of the store, take the next id (at least floor +
 * 1), append MSG_JSON_HEAD id MSG_JSON_MID pos 'tail' to the channel's log (or
 * the target's own), and notify REPO_TOPIC_MSG/{chan} (or
 * REPO_TOPIC_TARGETED/{chan}/{conn}) with it. 'tail' is msg_json_tail() text.
 * One step whatever the number of connections. res->id is the id, res->pos
 * the position. Returns 0 and calls 'cb' once, later; or a KV_E* code. */
static inline int repo_channel_publish(repo_channel *r, const chan *ch,
                                       const conn *target, const char *tail,
                                       size_t tail_len, uint64_t floor, kv_cb cb,
                                       void *arg)
{
    return r->ops->publish(r, ch, target, tail, tail_len, floor, cb, arg);
}

/* Append the newest ch->opts.history messages of its log to 'q' (which keeps
 * its own bound), oldest first. */
static inline int repo_channel_history_load(repo_channel *r, const chan *ch, msgq *q,
                                            repo_cb cb, void *arg)
{
    return r->ops->history_load(r, ch, q, cb, arg);
}

/* Keep only the 'keep' newest messages of the channel's stored log (0: none;
 * its end stays: positions go on). */
static inline void repo_channel_trim(repo_channel *r, const chan *ch, size_t keep)
{
    r->ops->trim(r, ch, keep);
}

/* Build every stored channel (options, history, connections) and hand each
 * to 'found'; then 'cb' once. 'defaults' fill options missing from a record. */
static inline int repo_channel_load_all(repo_channel *r, const chan_opts *defaults,
                                        repo_chan_found_cb found, repo_cb cb, void *arg)
{
    return r->ops->load_all(r, defaults, found, cb, arg);
}

/* Build the channel 'name' from the store, if it is there (created on another
 * node, which this one may not have heard of yet), and hand it to 'found';
 * then 'cb' once: 0, or KV_ENOTFOUND. */
static inline int repo_channel_find(repo_channel *r, const char *name,
                                    const chan_opts *defaults, repo_chan_found_cb found,
                                    repo_cb cb, void *arg)
{
    return r->ops->find(r, name, defaults, found, cb, arg);
}

/* Record that this node has live streams on 'ch' at 'now_s' (unix seconds):
 * the other nodes see it in use, though it holds nothing they can see. */
static inline void repo_channel_mark_used(repo_channel *r, const chan *ch, int64_t now_s)
{
    r->ops->mark_used(r, ch, now_s);
}

/* Read when 'ch' was last marked used and how many connections the store
 * holds for it (created on any node). Returns 0 and calls 'cb' once, later;
 * or a KV_E* code. */
static inline int repo_channel_usage(repo_channel *r, const chan *ch, repo_usage_cb cb,
                                     void *arg)
{
    return r->ops->usage(r, ch, cb, arg);
}

/* Read the last message id the store allocated (meta/seq), whichever node
 * published it: an id at most this has been given to a message, even if its
 * notification has not reached this node yet. Returns 0 and calls 'cb' once,
 * later; or a KV_E* code. */
static inline int repo_channel_last_id(repo_channel *r, repo_id_cb cb, void *arg)
{
    return r->ops->last_id(r, cb, arg);
}

/* The connection repository it is composed of (borrowed). */
static inline repo_connection *repo_channel_connections(repo_channel *r)
{
    return r->ops->connections(r);
}

/* Free a repository and the ones it is composed of. NULL is fine. */
static inline void repo_channel_free(repo_channel *r)
{
    if (r)
        r->ops->free(r);
}

/* ---- sessions: the archive of live streams ----
 *
 * One record per session, cluster-wide on a shared store. The archive is
 * bounded by repo_session_sweep(): ended sessions older than the retention
 * go, then, while it holds more than 'max', the sessions that ended first.
 * Active sessions are never dropped (they are counted): the archive may hold
 * more than 'max' only while that many streams are live. */
typedef struct repo_session repo_session;
/* One page of a listing: 'v' (n of them, borrowed for the call), sorted by
 * id; 'more' tells whether other matching sessions follow the page. */
typedef void (*repo_sessions_cb)(int status, const session *v, size_t n, bool more,
                                 void *arg);
/* One session (status KV_ENOTFOUND and NULL when there is none). */
typedef void (*repo_session_cb)(int status, const session *s, void *arg);
/* A sweep is over: how many sessions it dropped, and how many it ended
 * because their node is gone. */
typedef void (*repo_swept_cb)(int status, size_t dropped, size_t ended, void *arg);
/* What a sweep bounds the archive by. */
typedef struct repo_session_bound {
    int64_t now_us;
    int64_t retention_us; /* ended longer ago than this: dropped */
    size_t max;           /* then, over this, the first to have ended go */
    /* When 'live' is not NULL: a session still active that joined more than
     * 'grace_us' ago on a node not among these 'nlive' node ids (it died
     * without recording the end of its streams) is ended as of now_us. */
    const char *const *live;
    size_t nlive;
    int64_t grace_us;
} repo_session_bound;
typedef struct repo_session_ops {
    void (*save)(repo_session *r, const session *s);
    int (*list)(repo_session *r, const session_filter *f, const char *after, size_t limit,
                repo_sessions_cb cb, void *arg);
    int (*get)(repo_session *r, const char *id, repo_session_cb cb, void *arg);
    int (*sweep)(repo_session *r, const repo_session_bound *bd, repo_swept_cb cb,
                 void *arg);
    void (*free)(repo_session *r);
} repo_session_ops;
struct repo_session {
    const repo_session_ops *ops;
};

/* Store 's' (a join, or the same session once it left: the record is
 * replaced). Fire-and-forget: failures are reported by the store. */
static inline void repo_session_save(repo_session *r, const session *s)
{
    r->ops->save(r, s);
}

/* The sessions matching 'f' whose id sorts after 'after' (NULL or "": from
 * the first), at most 'limit', sorted by id. Records that do not parse are
 * skipped and reported (KV_EV_BAD_RECORD). Returns 0 and calls 'cb' once,
 * later; or a KV_E* code. */
static inline int repo_session_list(repo_session *r, const session_filter *f,
                                    const char *after, size_t limit, repo_sessions_cb cb,
                                    void *arg)
{
    return r->ops->list(r, f, after, limit, cb, arg);
}

/* The session 'id'. Returns 0 and calls 'cb' once, later; or a KV_E* code. */
static inline int repo_session_get(repo_session *r, const char *id, repo_session_cb cb,
                                   void *arg)
{
    return r->ops->get(r, id, cb, arg);
}

/* Bound the archive (see above and repo_session_bound; 'bd' is only read
 * during the call). Returns 0 and calls 'cb' (may be NULL) once, later; or a
 * KV_E* code. */
static inline int repo_session_sweep(repo_session *r, const repo_session_bound *bd,
                                     repo_swept_cb cb, void *arg)
{
    return r->ops->sweep(r, bd, cb, arg);
}

static inline void repo_session_free(repo_session *r)
{
    if (r)
        r->ops->free(r);
}

/* ---- traces: definitions and what every node recorded ---- */
typedef struct repo_trace repo_trace;
/* One trace ('t' borrowed for the call; NULL unless status is 0) and the
 * records taken for it so far; KV_ENOTFOUND when there is none. */
typedef void (*repo_trace_cb)(int status, const trace *t, uint64_t records, void *arg);
/* Every trace: 'v' and 'records', n of each, borrowed for the call, sorted by
 * id. */
typedef void (*repo_traces_cb)(int status, trace *const *v, const uint64_t *records,
                               size_t n, void *arg);
/* A page of records: their stored JSON text (items[i].val) and sequence
 * numbers (items[i].id), oldest first, borrowed for the call; KV_ENOTFOUND
 * when there is no such trace. */
typedef void (*repo_trace_data_cb)(int status, const kv_item *items, size_t n, void *arg);
typedef struct repo_trace_ops {
    void (*save)(repo_trace *r, const trace *t);
    int (*get)(repo_trace *r, const char *id, repo_trace_cb cb, void *arg);
    int (*list)(repo_trace *r, repo_traces_cb cb, void *arg);
    int (*record)(repo_trace *r, const trace *t, const char *tail, size_t len);
    int (*data)(repo_trace *r, const char *id, uint64_t after, size_t limit,
                repo_trace_data_cb cb, void *arg);
    void (*remove)(repo_trace *r, const char *id);
    void (*free)(repo_trace *r);
} repo_trace_ops;
struct repo_trace {
    const repo_trace_ops *ops;
};

/* Store the definition of 't' (new, or replaced once stopped).
 * Fire-and-forget: failures are reported by the store. */
static inline void repo_trace_save(repo_trace *r, const trace *t)
{
    r->ops->save(r, t);
}

/* The trace 'id' and its count of records. Returns 0 and calls 'cb' once,
 * later; or a KV_E* code. */
static inline int repo_trace_get(repo_trace *r, const char *id, repo_trace_cb cb,
                                 void *arg)
{
    return r->ops->get(r, id, cb, arg);
}

/* Every trace stored. Records that do not parse are skipped and reported
 * (KV_EV_BAD_RECORD). Returns 0 and calls 'cb' once, later; or a KV_E* code. */
static inline int repo_trace_list(repo_trace *r, repo_traces_cb cb, void *arg)
{
    return r->ops->list(r, cb, arg);
}

/* Append a record to 't': in one step of the store, number it from the
 * trace's counter and append TRACE_RECORD_HEAD + number + 'tail' to its log,
 * which keeps exactly its t->limit newest. Fire-and-forget. 0 or a KV_E*
 * code. */
static inline int repo_trace_record(repo_trace *r, const trace *t, const char *tail,
                                    size_t len)
{
    return r->ops->record(r, t, tail, len);
}

/* At most 'limit' records of the trace 'id' numbered above 'after', oldest
 * first. Returns 0 and calls 'cb' once, later; or a KV_E* code. */
static inline int repo_trace_data(repo_trace *r, const char *id, uint64_t after,
                                  size_t limit, repo_trace_data_cb cb, void *arg)
{
    return r->ops->data(r, id, after, limit, cb, arg);
}

/* Remove the trace 'id': its definition, count and records. */
static inline void repo_trace_remove(repo_trace *r, const char *id)
{
    r->ops->remove(r, id);
}

static inline void repo_trace_free(repo_trace *r)
{
    if (r)
        r->ops->free(r);
}

/* The kv-backed implementations. Each borrows 'kv' and takes ownership of the
 * repositories it is composed of (freed with it). NULL on OOM (and then the
 * given repositories are freed too). */
repo_queue *repo_queue_kv_new(kv_store *kv);
repo_listener *repo_listener_kv_new(kv_store *kv);
repo_connection *repo_connection_kv_new(kv_store *kv, repo_listener *listeners,
                                        repo_queue *queues);
repo_channel *repo_channel_kv_new(kv_store *kv, repo_connection *connections);
repo_session *repo_session_kv_new(kv_store *kv);
repo_trace *repo_trace_kv_new(kv_store *kv);

/* The whole kv-backed stack in one call. NULL on OOM. */
repo_channel *repo_kv_stack_new(kv_store *kv);

#endif
