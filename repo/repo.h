/* repo.h - repositories: how channels, connections, listeners and queues are
 * persisted to and rebuilt from a key-value store.
 *
 * Composed as eric-sse composes them: the channel repository builds channels
 * (options and history) and asks the connection repository for their
 * connections; the connection repository builds each connection from the
 * listener repository (running/stopped) and the queue repository (queued
 * messages). Each repository is an interface (an ops table) with one kv-backed
 * implementation; none of them knows which kv store it runs on.
 *
 * Writes are fire-and-forget on the store's ordered pipeline: their errors are
 * reported by the store (kv_set_report), and a caller that must know they
 * landed issues kv_flush() afterwards. Loads are asynchronous and call back
 * exactly once. Callers go through the inline wrappers below, never ->ops.
 *
 * Key layout (the table is everything up to the last '/'; names never hold '/'):
 *   c/{chan}          string  channel options JSON
 *   h/{chan}          list    retained messages, oldest first, bound: history
 *   n/{chan}/{conn}   string  connection record JSON {"id"}
 *   l/{chan}/{conn}   string  listener JSON {"running": bool}
 *   q/{chan}/{conn}   list    queued messages, oldest first, bound: queue_limit
 *   d/{chan}/{conn}   string  messages the queue bound dropped (integer)
 *   meta/seq          string  the last message id allocated (integer)
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

/* Load completion: status 0 or a negative KV_E* code. */
typedef void (*repo_cb)(int status, void *arg);

/* ---- queues: the messages waiting for one connection ---- */
typedef struct repo_queue repo_queue;
typedef struct repo_queue_ops {
    void (*pop)(repo_queue *r, const conn *cn, size_t n);
    void (*dropped)(repo_queue *r, const conn *cn);
    void (*remove)(repo_queue *r, const conn *cn);
    int (*load_into)(repo_queue *r, const conn *cn, msgq *q, repo_cb cb, void *arg);
    int (*load)(repo_queue *r, conn *cn, repo_cb cb, void *arg);
    void (*free)(repo_queue *r);
} repo_queue_ops;
struct repo_queue {
    const repo_queue_ops *ops;
};

/* Take the 'n' oldest messages off the stored queue of 'cn' (delivered). */
static inline void repo_queue_pop(repo_queue *r, const conn *cn, size_t n)
{
    r->ops->pop(r, cn, n);
}

/* Store cn->queue.dropped, the messages its bound has dropped. */
static inline void repo_queue_dropped(repo_queue *r, const conn *cn)
{
    r->ops->dropped(r, cn);
}

/* Remove the stored queue of 'cn' and its dropped count. */
static inline void repo_queue_remove(repo_queue *r, const conn *cn)
{
    r->ops->remove(r, cn);
}

/* Append the stored queue of 'cn' to 'q' (which keeps its own bound), then
 * call 'cb'. Returns 0, or a KV_E* code and no callback. */
static inline int repo_queue_load_into(repo_queue *r, const conn *cn, msgq *q, repo_cb cb,
                                       void *arg)
{
    return r->ops->load_into(r, cn, q, cb, arg);
}

/* Fill cn->queue and its dropped count from the store, then call 'cb'. */
static inline int repo_queue_load(repo_queue *r, conn *cn, repo_cb cb, void *arg)
{
    return r->ops->load(r, cn, cb, arg);
}

static inline void repo_queue_free(repo_queue *r)
{
    if (r)
        r->ops->free(r);
}

/* ---- listeners: running or stopped ---- */
typedef struct repo_listener repo_listener;
typedef struct repo_listener_ops {
    void (*persist)(repo_listener *r, const conn *cn);
    void (*remove)(repo_listener *r, const conn *cn);
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

static inline void repo_listener_remove(repo_listener *r, const conn *cn)
{
    r->ops->remove(r, cn);
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
typedef struct repo_connection_ops {
    void (*persist)(repo_connection *r, const conn *cn);
    void (*remove)(repo_connection *r, const conn *cn);
    int (*load_all)(repo_connection *r, chan *ch, repo_cb cb, void *arg);
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

/* Remove the connection, its listener and its queue. */
static inline void repo_connection_remove(repo_connection *r, const conn *cn)
{
    r->ops->remove(r, cn);
}

/* Add every stored connection of 'ch' to it, with listener and queue. */
static inline int repo_connection_load_all(repo_connection *r, chan *ch, repo_cb cb,
                                           void *arg)
{
    return r->ops->load_all(r, ch, cb, arg);
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
typedef struct repo_channel_ops {
    void (*persist)(repo_channel *r, const chan *ch);
    void (*remove)(repo_channel *r, const chan *ch);
    int (*publish)(repo_channel *r, const chan *ch, const conn *target, const char *tail,
                   size_t tail_len, uint64_t floor, kv_cb cb, void *arg);
    int (*history_load)(repo_channel *r, const chan *ch, msgq *q, repo_cb cb, void *arg);
    void (*history_trim)(repo_channel *r, const chan *ch);
    int (*load_all)(repo_channel *r, const chan_opts *defaults, repo_chan_found_cb found,
                    repo_cb cb, void *arg);
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

/* Remove the channel, its history and every connection. */
static inline void repo_channel_remove(repo_channel *r, const chan *ch)
{
    r->ops->remove(r, ch);
}

/* Publish one message to the channel, or only to its connection 'target' (not
 * NULL): in one atomic step of the store, take the next id (at least floor + 1),
 * store {"id":"<id>"<tail> in the history (channel publish) and the queue of
 * every connection (or of 'target'), and notify REPO_TOPIC_MSG/{chan} (or
 * REPO_TOPIC_TARGETED/{chan}/{conn}) with it. 'tail' is msg_json_tail() text.
 * res->num is the id. Returns 0 and calls 'cb' once, later; or a KV_E* code. */
static inline int repo_channel_publish(repo_channel *r, const chan *ch,
                                       const conn *target, const char *tail,
                                       size_t tail_len, uint64_t floor, kv_cb cb,
                                       void *arg)
{
    return r->ops->publish(r, ch, target, tail, tail_len, floor, cb, arg);
}

/* Append the stored history of 'ch' to 'q' (which keeps its own bound). */
static inline int repo_channel_history_load(repo_channel *r, const chan *ch, msgq *q,
                                            repo_cb cb, void *arg)
{
    return r->ops->history_load(r, ch, q, cb, arg);
}

/* Bring the stored history down to the channel's current bound. */
static inline void repo_channel_history_trim(repo_channel *r, const chan *ch)
{
    r->ops->history_trim(r, ch);
}

/* Build every stored channel (options, history, connections) and hand each to
 * 'found'; then 'cb' once. 'defaults' fill options missing from a record. */
static inline int repo_channel_load_all(repo_channel *r, const chan_opts *defaults,
                                        repo_chan_found_cb found, repo_cb cb, void *arg)
{
    return r->ops->load_all(r, defaults, found, cb, arg);
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

/* The kv-backed implementations. Each borrows 'kv' and takes ownership of the
 * repositories it is composed of (freed with it). NULL on OOM (and then the
 * given repositories are freed too). */
repo_queue *repo_queue_kv_new(kv_store *kv);
repo_listener *repo_listener_kv_new(kv_store *kv);
repo_connection *repo_connection_kv_new(kv_store *kv, repo_listener *listeners,
                                        repo_queue *queues);
repo_channel *repo_channel_kv_new(kv_store *kv, repo_connection *connections);

/* The whole kv-backed stack in one call. NULL on OOM. */
repo_channel *repo_kv_stack_new(kv_store *kv);

#endif
