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
 * logged by the store, and a caller that must know they landed issues
 * kv_flush() afterwards. Loads are asynchronous and call back exactly once.
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

#include "kv/kv.h"
#include "src/domain/chan.h"
#include "src/domain/msg.h"

/* Load completion: status 0 or a negative KV_E* code. */
typedef void (*repo_cb)(int status, void *arg);

/* ---- queues: the messages waiting for one connection ---- */
typedef struct repo_queue repo_queue;
typedef struct repo_queue_ops {
    void (*push)(repo_queue *r, const conn *cn, const msg *m);
    void (*pop)(repo_queue *r, const conn *cn, size_t n);
    /* Store cn->queue.dropped. */
    void (*dropped)(repo_queue *r, const conn *cn);
    void (*remove)(repo_queue *r, const conn *cn);
    /* Append the stored queue of 'cn' to 'q' (which keeps its own bound). */
    int (*load_into)(repo_queue *r, const conn *cn, msgq *q, repo_cb cb, void *arg);
    /* Fill cn->queue (and its dropped count) from the store. */
    int (*load)(repo_queue *r, conn *cn, repo_cb cb, void *arg);
    void (*free)(repo_queue *r);
} repo_queue_ops;
struct repo_queue {
    const repo_queue_ops *ops;
};

/* ---- listeners: running or stopped ---- */
typedef struct repo_listener repo_listener;
typedef struct repo_listener_ops {
    void (*persist)(repo_listener *r, const conn *cn);
    void (*remove)(repo_listener *r, const conn *cn);
    /* Set cn->lis.running from the store (a missing record means running). */
    int (*load)(repo_listener *r, conn *cn, repo_cb cb, void *arg);
    void (*free)(repo_listener *r);
} repo_listener_ops;
struct repo_listener {
    const repo_listener_ops *ops;
};

/* ---- connections: a listener plus a queue ---- */
typedef struct repo_connection repo_connection;
typedef struct repo_connection_ops {
    /* Persist the connection record and its listener. */
    void (*persist)(repo_connection *r, const conn *cn);
    /* Remove the connection, its listener and its queue. */
    void (*remove)(repo_connection *r, const conn *cn);
    /* Add every stored connection of 'ch' to it, with listener and queue. */
    int (*load_all)(repo_connection *r, chan *ch, repo_cb cb, void *arg);
    repo_listener *(*listeners)(repo_connection *r);
    repo_queue *(*queues)(repo_connection *r);
    void (*free)(repo_connection *r);
} repo_connection_ops;
struct repo_connection {
    const repo_connection_ops *ops;
};

/* ---- channels: options, history, connections ---- */
typedef struct repo_channel repo_channel;
/* Called once per loaded channel; takes the reference it is given. */
typedef void (*repo_chan_found_cb)(chan *ch, void *arg);
typedef struct repo_channel_ops {
    void (*persist)(repo_channel *r, const chan *ch);
    /* Remove the channel, its history and every connection. */
    void (*remove)(repo_channel *r, const chan *ch);
    void (*history_push)(repo_channel *r, const chan *ch, const msg *m);
    /* Publish one message to the channel, or only to its connection 'target'
     * (not NULL): in one atomic step of the store, take the next id (at least
     * floor + 1), store {"id":"<id>"<tail> in the history (channel publish)
     * and the queue of every connection (or of 'target'), and notify
     * REPO_TOPIC_MSG/{chan} (or REPO_TOPIC_TARGETED/{chan}/{conn}) with it.
     * 'tail' is msg_json_tail() text. res->num is the id. */
    int (*publish)(repo_channel *r, const chan *ch, const conn *target, const char *tail,
                   size_t tail_len, uint64_t floor, kv_cb cb, void *arg);
    /* Append the stored history of 'ch' to 'q' (which keeps its own bound). */
    int (*history_load)(repo_channel *r, const chan *ch, msgq *q, repo_cb cb, void *arg);
    /* Bring the stored history down to the channel's current bound. */
    void (*history_trim)(repo_channel *r, const chan *ch);
    /* Build every stored channel (options, history, connections) and hand each
     * to 'found'; then 'cb' once. 'defaults' fill options missing from a record. */
    int (*load_all)(repo_channel *r, const chan_opts *defaults, repo_chan_found_cb found,
                    repo_cb cb, void *arg);
    repo_connection *(*connections)(repo_channel *r);
    void (*free)(repo_channel *r);
} repo_channel_ops;
struct repo_channel {
    const repo_channel_ops *ops;
};

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

/* Allocate 'n' consecutive message ids; 'cb' gets the last one (first is
 * last - n + 1) or a negative KV_E* status. Ids come from the store so they
 * keep increasing across restarts and nodes. */
typedef void (*repo_seq_cb)(int status, unsigned long long last, void *arg);
int repo_seq_alloc(kv_store *kv, size_t n, repo_seq_cb cb, void *arg);

#endif
