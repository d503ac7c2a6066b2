/* kv.h - the key-value storage interface every store implements.
 *
 * Everything above kv/ persists through this interface and never learns which
 * store it runs on. Every operation is asynchronous: it returns at once and its
 * callback runs later on the event loop, exactly once, never before the call
 * returns, in the order the operations were issued. The in-memory store defers
 * its callbacks just as the Redis store waits for replies, so one test body
 * runs against both.
 *
 * Keys. A key is "table/name": its table is everything up to and including its
 * last '/'. kv_scan(table) returns every string key of that table (and only
 * that table, not deeper ones) in byte order of the key. Keys are NUL-free
 * C strings; values are byte strings of any content.
 *
 * Three kinds of value live under keys: strings (get/set/incr), lists
 * (list_*) and logs (log_*, and kv_append). An operation on a key holding
 * another kind fails with KV_ETYPE. kv_del removes any kind.
 *
 * A log is an ordered, bounded sequence of entries, each with the id kv_append
 * gave it (increasing along the log) and its position: 1 for the first entry
 * ever appended to the log, then one more for each. Trimming drops the oldest
 * entries but not the count: a log remembers its end (the id and position of
 * its newest entry) until it is deleted. Many readers can each keep their own
 * place in one log (a position), which is what makes a log cheaper than a list
 * per reader.
 *
 * Ownership: callers keep their input pointers (a store copies what it keeps).
 * Everything a kv_result points to is borrowed until the callback returns;
 * keys and values in results are NUL-terminated one byte past their length.
 *
 * Type checks (KV_ETYPE) are made by stores that can make them cheaply (the
 * memory store); callers must not rely on them and never mix kinds on a key.
 *
 * Several nodes. Processes sharing one Redis store share its data, and two more
 * primitives let them act as one: kv_append() allocates an id from a counter and
 * appends a value carrying it to lists, all in one atomic step, so the order of
 * ids is the order of every list and of every notification on every node; and
 * kv_subscribe()/kv_notify() carry notifications between nodes over topics. A
 * topic is a NUL-free, non-empty string, named like a key ("table/name"), and
 * lives under the store's key prefix, so stores with different prefixes do not
 * hear each other. The in-memory store is a cluster of one node.
 */
#ifndef KV_H
#define KV_H

#include <stddef.h>

#include "src/base/prom.h"

struct event_base;

typedef struct kv_store kv_store;

enum {
    KV_OK = 0,
    KV_ENOTFOUND = -1, /* get of a missing key */
    KV_EIO = -2,       /* the store is unreachable or failed the write */
    KV_ENOMEM = -3,
    KV_ETYPE = -4,  /* string op on a list or the reverse */
    KV_EINVAL = -5, /* bad argument (empty key, scan prefix not ending in '/') */
    KV_EFULL = -6   /* the store is out of memory (Redis at maxmemory): nothing
                       was written */
};

/* One entry of a scan (key and value), of a list range (key NULL), or of a
 * log range (key NULL; id and pos set). */
typedef struct kv_item {
    const char *key;
    size_t klen;
    const char *val;
    size_t vlen;
    long long id, pos; /* log entries: the entry's id and position */
} kv_item;

/* What an operation produced. Fields an operation does not set are zero. */
typedef struct kv_result {
    int status;           /* KV_OK or a negative KV_E* code */
    const char *val;      /* get: the value (not NUL-terminated) */
    size_t len;           /* get: its length */
    long long num;        /* incr: new value; list_push: items dropped by the
                             bound; list_len / list_trim: length after;
                             append: the id; log_end, log_mark: the end's
                             position (0: nothing was ever appended) */
    long long id;         /* append: the id; log_end, log_mark: the end's id */
    long long pos;        /* append: the position of the entry in a->log */
    const kv_item *items; /* scan, list_range */
    size_t n;             /* number of items */
} kv_result;

/* 'res' and everything it points to are borrowed until the callback returns. */
typedef void (*kv_cb)(const kv_result *res, void *arg);

/* What kv_append() does, in one atomic step (see there). Every pointer is the
 * caller's and is only read during the call. */
typedef struct kv_append_args {
    const char *counter; /* string key holding a decimal counter (as kv_incr uses) */
    long long floor;     /* the id is at least floor+1: a counter below floor jumps
                            to floor first (floor < LLONG_MAX) */
    const char *head;    /* the stored value is head + decimal id + tail */
    size_t head_len;
    const char *tail;
    size_t tail_len;
    const char *mid; /* with a log, if not NULL: the value is head + id + mid +
                        the entry's position in decimal + tail */
    size_t mid_len;
    const char *const *lists; /* push the value onto each of these lists ... */
    size_t nlists;
    const size_t *max; /* ... each bounded to max[i] items (0: unbounded),
                          oldest dropped; NULL: all unbounded */
    const char *log;   /* if not NULL, append the value to this log too ... */
    size_t log_max;    /* ... keeping at least this many of its newest entries
                          (0: unbounded); a store may keep a few more ... */
    /* ... unless log_readers is not NULL and that table (as kv_scan names
     * one) holds no key, its readers being gone: then exactly its log_idle
     * newest (0: none; the end stays). */
    const char *log_readers;
    size_t log_idle;
    /* With log_idle_remote, those log_idle entries are kept only for other
     * processes (other nodes sharing the store, or a later process after a
     * restart): the caller keeps its own copy of what it reads itself. A
     * store no other process can read (the memory store: one node, gone
     * with its process) then keeps none of them, so what the caller mirrors
     * is held once, not twice; a shared store keeps log_idle as above. */
    int log_idle_remote;
    const char *topic; /* if not NULL, notify this topic with the same value */
} kv_append_args;

/* One notification: 'topic' (without the store's key prefix) and 'data', both
 * borrowed until the callback returns; 'data' is NUL-terminated one byte past
 * 'len'. topic == NULL (data NULL, len 0) means the subscription was lost and
 * is live again: notifications published meanwhile may have been missed. */
typedef void (*kv_notify_cb)(const char *topic, const char *data, size_t len, void *arg);

typedef struct kv_ops {
    const char *name;
    int (*get)(kv_store *kv, const char *key, kv_cb cb, void *arg);
    int (*set)(kv_store *kv, const char *key, const char *val, size_t len, kv_cb cb,
               void *arg);
    int (*del)(kv_store *kv, const char *key, kv_cb cb, void *arg);
    int (*scan)(kv_store *kv, const char *table, kv_cb cb, void *arg);
    int (*incr)(kv_store *kv, const char *key, long long by, kv_cb cb, void *arg);
    int (*list_push)(kv_store *kv, const char *key, const char *val, size_t len,
                     size_t max, kv_cb cb, void *arg);
    int (*list_range)(kv_store *kv, const char *key, size_t start, size_t count, kv_cb cb,
                      void *arg);
    int (*list_trim)(kv_store *kv, const char *key, size_t n, kv_cb cb, void *arg);
    int (*list_len)(kv_store *kv, const char *key, kv_cb cb, void *arg);
    /* Run 'cb' once every operation issued before it has completed (and, for a
     * buffering store, been written). status is KV_EIO if any of them failed. */
    int (*flush)(kv_store *kv, kv_cb cb, void *arg);
    int (*append)(kv_store *kv, const kv_append_args *a, kv_cb cb, void *arg);
    int (*log_range)(kv_store *kv, const char *key, long long after, size_t count,
                     int newest, kv_cb cb, void *arg);
    int (*log_end)(kv_store *kv, const char *key, kv_cb cb, void *arg);
    int (*log_trim)(kv_store *kv, const char *key, size_t keep, kv_cb cb, void *arg);
    int (*log_mark)(kv_store *kv, const char *log, const char *key, kv_cb cb, void *arg);
    int (*del_if)(kv_store *kv, const char *key, const char *val, size_t len, kv_cb cb,
                  void *arg);
    int (*set_if)(kv_store *kv, const char *key, const char *expect, const char *val,
                  kv_cb cb, void *arg);
    int (*subscribe)(kv_store *kv, const char *prefix, kv_notify_cb cb, void *arg);
    int (*notify)(kv_store *kv, const char *topic, const char *data, size_t len, kv_cb cb,
                  void *arg);
    /* 1 while the subscription receives notifications, 0 otherwise. */
    int (*subscribed)(kv_store *kv);
    /* 0 if the store is serving now, KV_EIO if it is unreachable. */
    int (*health)(kv_store *kv);
    /* Bytes its data takes in this process. */
    size_t (*used)(kv_store *kv);
    /* Fail what is still owed and refuse what comes (kv_abandon); NULL: a
     * store that owes nothing past the next loop turn. */
    void (*abandon)(kv_store *kv);
    void (*free)(kv_store *kv);
} kv_ops;

/* What a store reports about itself. A store never logs: it tells whoever set
 * kv_set_report(), which logs once, at the boundary (as hiredis hands its
 * errors back instead of printing them). 'detail' is a short human text,
 * borrowed for the call. */
enum {
    KV_EV_CONNECTED,  /* the store is reachable (again); detail: where */
    KV_EV_LOST,       /* the connection dropped, or was dropped because Redis did
                         not answer in time: operations wait, then fail */
    KV_EV_SUBSCRIBED, /* the subscription is live (again) */
    KV_EV_SUB_LOST,   /* the subscription dropped: resubscribing */
    KV_EV_FAILED,     /* operations failed and no callback will say so, or a
                         batch or the store's wait for a connection failed */
    KV_EV_ERROR,      /* a set-up step was refused (AUTH, SELECT, SCRIPT LOAD):
                         the store will not work until that is fixed (it keeps
                         trying, with the backoff) */
    KV_EV_RETRY,      /* a connection attempt failed, was not answered in time, or
                         found Redis not ready (LOADING); it is retried (frequent) */
    KV_EV_BAD_RECORD  /* a stored value did not parse and was skipped (reported by
                         the layer that parses it, through kv_report) */
};
typedef void (*kv_report_cb)(int event, const char *detail, void *arg);

/* The base every store embeds as its first member. */
/* What a store counts of its own work, for metrics (read with kv_metrics_of).
 * Plain increments on the loop's thread. */
typedef struct kv_metrics {
    prom_hist op_seconds; /* an operation: from the call to its reply */
    prom_hist batch_ops;  /* operations per batch sent (Redis) */
} kv_metrics;

struct kv_store {
    const kv_ops *ops;
    struct event_base *base;
    kv_report_cb report; /* kv_set_report(), or NULL */
    void *report_arg;
    kv_metrics metrics; /* kv_metrics_init() in the constructor */
};

/* Set up the counters of a new store (its constructor calls it). */
void kv_metrics_init(kv_store *kv);
/* What the store counted so far (borrowed, valid while the store lives). */
static inline const kv_metrics *kv_metrics_of(const kv_store *kv)
{
    return &kv->metrics;
}

/* Tell 'cb' (NULL: nobody) what the store reports from now on. */
void kv_set_report(kv_store *kv, kv_report_cb cb, void *arg);

/* Report 'event' with a detail formatted like printf to the hook set with
 * kv_set_report(), if any. For the stores, and for the layers that build on a
 * store and find something wrong in what it holds. */
void kv_report(kv_store *kv, int event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The store's name: "memory" or "redis". */
static inline const char *kv_name(const kv_store *kv)
{
    return kv->ops->name;
}

/* Each start function returns 0 when 'cb' will run exactly once, later; a
 * negative KV_E* code and no callback otherwise. 'cb' may be NULL: the
 * operation still happens, and a failure is reported (KV_EV_FAILED). */

/* Fetch the string at 'key'. KV_ENOTFOUND if there is none. */
static inline int kv_get(kv_store *kv, const char *key, kv_cb cb, void *arg)
{
    return kv->ops->get(kv, key, cb, arg);
}

/* Create or replace the string at 'key'. */
static inline int kv_set(kv_store *kv, const char *key, const char *val, size_t len,
                         kv_cb cb, void *arg)
{
    return kv->ops->set(kv, key, val, len, cb, arg);
}

/* Remove 'key', string or list. Removing a missing key succeeds. */
static inline int kv_del(kv_store *kv, const char *key, kv_cb cb, void *arg)
{
    return kv->ops->del(kv, key, cb, arg);
}

/* Every string key of 'table' (which must end in '/') with its value, in key
 * order: res->items[0..res->n). An empty table gives n == 0 and KV_OK. */
static inline int kv_scan(kv_store *kv, const char *table, kv_cb cb, void *arg)
{
    return kv->ops->scan(kv, table, cb, arg);
}

/* Add 'by' to the decimal integer at 'key' (missing counts as 0) and give the
 * new value in res->num. */
static inline int kv_incr(kv_store *kv, const char *key, long long by, kv_cb cb,
                          void *arg)
{
    return kv->ops->incr(kv, key, by, cb, arg);
}

/* Append 'val' at the tail of the list at 'key' (created if missing); if the
 * list then holds more than 'max' items (max > 0), drop the oldest from the
 * head until it holds 'max', and give how many were dropped in res->num. */
static inline int kv_list_push(kv_store *kv, const char *key, const char *val, size_t len,
                               size_t max, kv_cb cb, void *arg)
{
    return kv->ops->list_push(kv, key, val, len, max, cb, arg);
}

/* Up to 'count' items from index 'start' (0 = oldest) of the list at 'key'.
 * A missing key gives n == 0 and KV_OK. */
static inline int kv_list_range(kv_store *kv, const char *key, size_t start, size_t count,
                                kv_cb cb, void *arg)
{
    return kv->ops->list_range(kv, key, start, count, cb, arg);
}

/* Drop the 'n' oldest items of the list at 'key'; res->num is the length left. */
static inline int kv_list_trim(kv_store *kv, const char *key, size_t n, kv_cb cb,
                               void *arg)
{
    return kv->ops->list_trim(kv, key, n, cb, arg);
}

/* The length of the list at 'key' in res->num (0 if missing). */
static inline int kv_list_len(kv_store *kv, const char *key, kv_cb cb, void *arg)
{
    return kv->ops->list_len(kv, key, cb, arg);
}

/* See kv_ops.flush. */
static inline int kv_flush(kv_store *kv, kv_cb cb, void *arg)
{
    return kv->ops->flush(kv, cb, arg);
}

/* Allocate the next id from the counter at a->counter (raised to a->floor
 * first if it is below it, so the id is at least floor + 1), build the value
 * head + id in decimal + tail (head + id + mid + position + tail with a->mid),
 * push it at the tail of each of a->lists (dropping
 * the oldest items beyond a->max[i] when that is not 0; a list named twice gets
 * the value twice), append it to a->log as the entry (id, the log's end
 * position + 1), trimming the log to about a->log_max entries (exactly
 * a->log_idle when a->log_readers names a table without keys, or none at all
 * with a->log_idle_remote on a store no other process reads: the log's end
 * stays, even when that empties it),
 * and, if a->topic is not NULL, notify that topic with the value. res->num and
 * res->id are the id, res->pos the entry's position in the log.
 *
 * All of it is one atomic step of the store, and one order holds for every node
 * sharing it: if an append got a smaller id than another, its value precedes the
 * other's in every list both touched, and its notification reaches every
 * subscriber first. Nothing is changed when it fails: KV_EINVAL if the counter
 * is not an integer or would overflow, KV_ETYPE (stores that check, see above)
 * if a list key holds a string, KV_EIO if the store failed. Refused at once with
 * KV_EINVAL: an empty counter, list or topic name, a NULL head/tail with a
 * length, floor == LLONG_MAX. */
static inline int kv_append(kv_store *kv, const kv_append_args *a, kv_cb cb, void *arg)
{
    return kv->ops->append(kv, a, cb, arg);
}

/* Receive, through 'cb', every notification on a topic starting with 'prefix'
 * ("" for all) published by any node sharing the store, this one included, in
 * publish order; a node's notifications come after its writes issued before
 * them are visible. Only notifications published once the subscription is live
 * (kv_subscribed()) are received. When the store loses the subscription (its
 * connection) and restores it, 'cb' is called once with topic == NULL as soon as
 * it is live again (not when it first becomes live), so the caller can catch up
 * from lists. 'cb' runs until kv_free(). One subscription per store: a second
 * one, a NULL prefix or a NULL 'cb' is refused with KV_EINVAL. Returns 0 once
 * the subscription is set up (it becomes live later). */
static inline int kv_subscribe(kv_store *kv, const char *prefix, kv_notify_cb cb,
                               void *arg)
{
    return kv->ops->subscribe(kv, prefix, cb, arg);
}

/* The entries of the log at 'key' with an id above 'after' (0: all of them), at
 * most 'count': the oldest ones, or with 'newest' the newest ones; either way
 * in res->items oldest first, each with its id and pos. A missing key gives
 * n == 0 and KV_OK. */
static inline int kv_log_range(kv_store *kv, const char *key, long long after,
                               size_t count, int newest, kv_cb cb, void *arg)
{
    return kv->ops->log_range(kv, key, after, count, newest, cb, arg);
}

/* The end of the log at 'key': res->id and res->num (its position) of the
 * newest entry ever appended, kept when entries are trimmed; 0 and 0 for a
 * missing key. */
static inline int kv_log_end(kv_store *kv, const char *key, kv_cb cb, void *arg)
{
    return kv->ops->log_end(kv, key, cb, arg);
}

/* Keep only the 'keep' newest entries of the log at 'key' (0: none); its end
 * is kept. */
static inline int kv_log_trim(kv_store *kv, const char *key, size_t keep, kv_cb cb,
                              void *arg)
{
    return kv->ops->log_trim(kv, key, keep, cb, arg);
}

/* Write the end of the log 'log' into the string 'key' as "<id> <pos>" ("0 0"
 * for a missing log), in one step with respect to every kv_append(): an entry
 * appended after the mark has a position above the mark's. res->id and
 * res->num are the end written. */
static inline int kv_log_mark(kv_store *kv, const char *log, const char *key, kv_cb cb,
                              void *arg)
{
    return kv->ops->log_mark(kv, log, key, cb, arg);
}

/* Remove the string at 'key' if it holds exactly 'val' (len bytes), in one
 * step; res->num is 1 if it was removed, 0 if not. */
static inline int kv_del_if(kv_store *kv, const char *key, const char *val, size_t len,
                            kv_cb cb, void *arg)
{
    return kv->ops->del_if(kv, key, val, len, cb, arg);
}

/* Set the string at 'key' to the text 'val' if it holds exactly the text
 * 'expect' now ("": the key does not exist, or holds ""), in one step: a
 * compare-and-set, for leases. res->num is 1 if it was set, 0 if not. */
static inline int kv_set_if(kv_store *kv, const char *key, const char *expect,
                            const char *val, kv_cb cb, void *arg)
{
    return kv->ops->set_if(kv, key, expect, val, cb, arg);
}

/* Publish 'data' (len bytes, any content) on 'topic' to the subscriptions of
 * every node. It is ordered with this store's other operations: whoever
 * receives it can already see the writes issued before it. 'cb' reports that
 * the store took it (not who received it). KV_EINVAL for a NULL or empty topic. */
static inline int kv_notify(kv_store *kv, const char *topic, const char *data, size_t len,
                            kv_cb cb, void *arg)
{
    return kv->ops->notify(kv, topic, data, len, cb, arg);
}

/* 1 while this store's subscription is live (receives what is published now),
 * 0 before it first is, while it is being restored after a loss, or without a
 * subscription. */
static inline int kv_subscribed(kv_store *kv)
{
    return kv->ops->subscribed ? kv->ops->subscribed(kv) : 0;
}

/* 0 if the store is serving, KV_EIO if it is unreachable (operations then
 * wait a bounded time for it, then fail with KV_EIO). */
static inline int kv_health(kv_store *kv)
{
    return kv->ops->health ? kv->ops->health(kv) : 0;
}

/* The bytes the store's data takes in this process's memory, allocator
 * overhead included: everything for the memory store, 0 for a store whose
 * data lives elsewhere (Redis: see its maxmemory). */
static inline size_t kv_used(kv_store *kv)
{
    return kv->ops->used ? kv->ops->used(kv) : 0;
}

/* Give up on the store (a forced exit: the shutdown's deadline passed with
 * the store not answering). Every operation
 * still owed a callback gets it now, KV_EIO (a flush with nothing to wait for:
 * KV_OK), oldest first; every operation issued from then on, by those
 * callbacks too, is refused (a negative code, no callback), and the
 * subscription delivers nothing more. So whoever waited on the store (a
 * lookup, a read, a publish, their requests) is answered and frees what it
 * holds through its ordinary error path, while everything is still alive;
 * only kv_free() is left to call. Not from inside one of the store's
 * callbacks. A store that owes nothing past the next loop turn (the memory
 * store) does nothing. kv_abandon(NULL) is a no-op. */
static inline void kv_abandon(kv_store *kv)
{
    if (kv && kv->ops->abandon)
        kv->ops->abandon(kv);
}

/* Free the store and its subscription. Callbacks still pending are not run, nor
 * is the notify callback once this is called. It may be called from inside one
 * of the store's callbacks. kv_free(NULL) is a no-op. */
static inline void kv_free(kv_store *kv)
{
    if (kv)
        kv->ops->free(kv);
}

/* Human-readable text for a KV_E* code. Never NULL. */
const char *kv_strerror(int code);

/* The name of a KV_EV_* event ("connected", "lost", ...). Never NULL. */
const char *kv_event_name(int event);

/* The in-memory store (kv_memory.c): the embedded default. Returns NULL on OOM. */
kv_store *kv_memory_new(struct event_base *base);

/* The Redis store (kv_redis.c). */
typedef struct kv_redis_opts {
    const char *url;    /* redis://[:password@]host:port/db or unix:///path */
    const char *prefix; /* prepended to every Redis key, e.g. "ssebroker:", and to
                           every pub/sub channel: stores on one Redis hear each
                           other's notifications unless their prefixes differ,
                           whatever their database numbers */
    size_t maxbuffer;   /* operations per batch before it is sent (default 100) */
    int buffertime_ms;  /* longest a write waits for its batch (0: end of loop turn) */
    int timeout_ms;     /* the reply timeout (0: KV_REDIS_REPLY_TIMEOUT_MS): see below */
} kv_redis_opts;

/* A batch Redis has not answered within the reply timeout means a Redis that
 * stopped answering (frozen, or gone without closing the socket): the store
 * drops the connection at once, fails every operation in flight and waiting
 * with KV_EIO, reports KV_EV_LOST, says KV_EIO in kv_health() and reconnects
 * with the backoff. An idle connection is probed every second, so a frozen
 * Redis is noticed within a second and the timeout even when nothing is sent.
 * Operations issued while the connection is down wait for it at most 2 s (or
 * the reply timeout if shorter). A batch that timed out may still be applied if
 * Redis resumes and reads it: its outcome is unknown, not "not done". */
#define KV_REDIS_REPLY_TIMEOUT_MS 5000

/* Connect (asynchronously, with retries) to Redis. Returns NULL with a message
 * in 'err' on a bad URL or OOM. */
kv_store *kv_redis_new(struct event_base *base, const kv_redis_opts *opts, char *err,
                       size_t errlen);

#endif
