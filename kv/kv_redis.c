/* kv_redis.c - the Redis key-value store: hiredis' async API on the libevent loop.
 *
 * Layout in Redis (P is the configured prefix, e.g. "ssebroker:"):
 *   a string key "table/name" is field 'name' of the hash P"table/", so a
 *   scan of a table is one HGETALL that costs what it returns (no KEYS, no
 *   SCAN over the keyspace); a list key "table/name" is the Redis list
 *   P"table/name". Lists are native Redis lists: RPUSH + LTRIM keep the bound
 *   in Redis itself, LRANGE reads a window, and both are O(items touched).
 *
 * Batching: every operation is formatted at once and appended to the pending
 * batch. A batch goes out as MULTI ... EXEC in one write (pipelined and atomic)
 * when it holds 'maxbuffer' operations, when 'buffertime_ms' has passed, or at
 * the end of the current loop turn when somebody waits on a result (reads,
 * counters, kv_flush). Redis answers batches in order, so callbacks run in
 * issue order, and a kv_flush callback runs after everything issued before it
 * has been applied by Redis.
 *
 * Failure: when the connection drops, every operation in flight fails with
 * KV_EIO; new ones wait (at most KV_REDIS_DOWN_WAIT_MS, or the reply timeout if
 * shorter, at most KV_REDIS_MAX_WAITING of them) for the reconnection, which is
 * retried with a doubling backoff.
 *
 * A Redis that stops answering without closing the socket (kill -STOP, a
 * frozen host) is found by the reply timeout (kv_redis_opts.timeout_ms, see
 * kv.h; hiredis 0.14 has no timeouts of its own): a batch not answered in time
 * drops the connection for real. redisAsyncDisconnect() would wait for the
 * replies still owed, which a frozen peer never sends, so the context is freed
 * and its socket closed at once; every operation in flight and waiting fails
 * with KV_EIO. An idle connection is probed (an empty MULTI/EXEC) every
 * KV_REDIS_PROBE_MS so that this is found without traffic too.
 *
 * Set-up: every connection sends AUTH, SELECT, SCRIPT LOAD and PING before
 * anything else and is up only once all of them succeeded. A refusal (a
 * restarted Redis still loading its data answers LOADING, a wrong password
 * NOAUTH) drops it and tries again with the backoff, so the store comes up by
 * itself once Redis can take it. An attempt not set up within twice the reply
 * timeout (a TCP handshake and four round trips) is dropped and retried too;
 * until then it waits, so that a Redis that froze and answers again is seen at
 * once, on the attempt already waiting.
 *
 * The subscription (kv_redis_sub.c) follows this connection: it is dropped
 * whenever this one is, and connects only while this one is up. So it is never
 * live on a Redis this connection cannot reach (a frozen one: its own socket
 * has no replies to time out), and when it comes back, the catch-up its caller
 * starts (topic NULL) can read.
 *
 * Append: one Lua script (kv_redis_script.c) does the whole of kv_append() inside
 * Redis, which runs a script atomically: check the types, take the id from the
 * counter's field (raised to the floor first), push the value built with the id
 * onto each list and the log, PUBLISH it (joined with the values of the appends
 * next to it on the same channel, see kv_redis_script.c). Every (re)connection sends
 * SCRIPT LOAD before anything else, so the batches that follow call it by its
 * SHA1 with EVALSHA, inside the MULTI like any write: one EVALSHA for every run
 * of appends that follow each other in a batch (send_group()), each append
 * keeping its own reply, its own failure and its place in the order. A script
 * call (mark, del_if, set_if) is formatted with a placeholder SHA that
 * send_batch() fills in. If Redis lost the script while connected (SCRIPT
 * FLUSH), the EVALSHA fails with NOSCRIPT having changed nothing: those appends
 * fail with KV_EIO and the script is loaded again ahead of the next batch.
 * (Retrying them would reorder them after operations issued later that already
 * ran.)
 *
 * Notifications: kv_notify() is a PUBLISH of P"topic" inside the batch, so it
 * follows the writes issued before it, its value framed as the append script
 * frames its values (kv_private.h); the subscription lives on a connection
 * of its own (kv_redis_sub.c) with PSUBSCRIBE P"prefix"* (glob characters of
 * the prefixes escaped), and splits each message back into its values.
 *
 * kv_free() from inside a callback: the store's guard (src/base/guard.h) is
 * held by every frame running callers' callbacks and, when hiredis was in a
 * callback of its own and so only marked the context, by hiredis until its
 * disconnect callback; the last one out frees the store, so nothing runs on
 * freed memory.
 *
 * The store never logs: what is worth knowing goes to kv_report().
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#include "kv/kv.h"
#include "kv/kv_private.h"
#include "kv/kv_redis_script.h"
#include "src/base/guard.h"

#define KV_REDIS_DOWN_WAIT_MS 2000  /* how long operations wait for a reconnection */
#define KV_REDIS_MAX_WAITING 100000 /* operations held while disconnected */
#define KV_REDIS_PROBE_MS 1000      /* an idle connection is probed this often */

enum {
    OP_GET,
    OP_SET,
    OP_DEL,
    OP_SCAN,
    OP_INCR,
    OP_PUSH,
    OP_RANGE,
    OP_TRIM,
    OP_LEN,
    OP_FLUSH,
    OP_APPEND,
    OP_NOTIFY,
    OP_XRANGE, /* log_range, oldest first */
    OP_XREV,   /* log_range, newest first: reversed for the caller */
    OP_LOGEND, /* log_end */
    OP_MARK,   /* log_mark (the script) */
    OP_DELIF,  /* del_if (the script) */
    OP_EMPTY   /* no command: an empty answer, in order */
};

/* One operation: its formatted commands and what to do with their replies. */
typedef struct rop {
    struct rop *next;
    int kind;
    int ncmds;  /* replies it takes from the EXEC array */
    char *cmds; /* formatted commands, RESP, back to back */
    size_t cmdslen;
    size_t split;  /* length of the first command when there are two */
    size_t max;    /* list_push bound */
    size_t sha_at; /* script calls: where its SHA goes in 'cmds' (0: none) */
    /* An append's 'cmds' holds its keys, then (from 'split') its record, as
     * RESP bulk strings, which send_group() joins with the appends next to it
     * into one EVALSHA. */
    int nkeys;
    int group;  /* sent: the first of a group answers for this many appends, the
                   others hold 0 */
    int status; /* sent: nonzero if the group could not be formatted (the
                   appends fail with it, in order, when the batch is answered) */
    unsigned long long fails_at; /* flush: r->fails when it was issued */
    char *table;                 /* scan: the table, to rebuild full keys */
    struct timeval t0;           /* when it was issued (store latency) */
    kv_cb cb;
    void *arg;
} rop;

typedef struct batch {
    struct batch *next;
    struct kv_redis *r;
    rop *ops, **ops_tail; /* a flush may join a batch in flight (redis_flush) */
    struct timeval sent;
    int oom; /* Redis refused to queue a command: at maxmemory */
} batch;

typedef struct kv_redis {
    kv_store base;
    char *prefix;
    char *host, *path, *password;
    int port, db;
    size_t maxbuffer;
    int buffertime_ms;
    int timeout_ms; /* the reply timeout */

    redisAsyncContext *ac;
    int connected; /* the connection is up: every set-up step succeeded */
    int backoff_ms;
    struct timeval dialed;          /* the current connection attempt started */
    char setup_err[200];            /* its first refused set-up step, or "" */
    struct timeval last_sent;       /* the last batch went out */
    struct timeval down_since;      /* operations started waiting for a connection */
    char sha[KV_REDIS_SHA_LEN + 1]; /* of the script, from SCRIPT LOAD */
    int need_load;                  /* NOSCRIPT seen: load it before the next batch */
    kv_redis_sub *sub;
    struct event *reconnect_ev;
    struct event *flush_ev; /* buffertime timer */
    struct event *now_ev;   /* end-of-turn flush */
    struct event *watchdog; /* down-wait and reply timeouts */

    rop *pend, **pend_tail; /* the batch being filled */
    size_t npend;
    batch *inflight, **inflight_tail, *inflight_last;
    rop *ready, **ready_tail; /* flushes with nothing to wait for (redis_flush) */
    struct event *ready_ev;   /* ... answered on the next loop turn */
    unsigned long long fails; /* operations failed so far (a flush compares) */
    int abandoned;            /* kv_abandon() was called: new operations are refused */
    int freeing;              /* kv_free() was called: no caller's callback runs */
    int hiredis_holds;        /* ... inside a hiredis callback: it holds the guard */
    guard guard;              /* frames running callers' callbacks, and hiredis */
} kv_redis;

static void redis_connect(kv_redis *r);
static int send_batch(kv_redis *r, int probe);
static void schedule_reconnect(kv_redis *r);
static void redis_destroy(kv_redis *r);

/* Callers' callbacks run between enter() and leave(). When one of them called
 * kv_free(), the last one out (a frame, or hiredis letting go of the
 * connection) destroys the store. leave() returns 1 if the store is gone. */
static void enter(kv_redis *r)
{
    guard_enter(&r->guard);
}

static int leave(kv_redis *r)
{
    if (guard_leave(&r->guard)) {
        redis_destroy(r);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------- replies */

static void rop_free(rop *o)
{
    free(o->cmds);
    free(o->table);
    free(o);
}

static void complete(kv_redis *r, rop *o, int status)
{
    kv_result res = {.status = status};
    if (status == KV_EIO && o->kind != OP_FLUSH)
        r->fails++;
    if (o->cb && !r->freeing)
        o->cb(&res, o->arg);
}

/* The status an append's error reply stands for. Nothing was changed by it:
 * the script checks before it writes, and NOSCRIPT runs nothing. */
static int append_error(kv_redis *r, const char *err)
{
    if (strncmp(err, "NOSCRIPT", 8) == 0) {
        if (!r->need_load)
            kv_report(
                &r->base, KV_EV_FAILED,
                "redis: the append script is gone (SCRIPT FLUSH?): loading it again");
        r->need_load = 1;
        return KV_EIO;
    }
    if (strncmp(err, "WRONGTYPE", 9) == 0)
        return KV_ETYPE;
    if (strncmp(err, "OOM", 3) == 0)
        return KV_EFULL; /* at maxmemory: Redis refused the script, which wrote nothing */
    if (strstr(err, "not an integer") || strstr(err, "overflow"))
        return KV_EINVAL;
    kv_report(&r->base, KV_EV_FAILED, "redis: append: %s", err);
    return KV_EIO;
}

static int item_cmp(const void *a, const void *b)
{
    const kv_item *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

/* The entries of an XRANGE/XREVRANGE reply, oldest first, into '*items'
 * (caller frees; values borrowed from the reply). Returns 0, KV_ENOMEM, or
 * KV_EIO for a reply that is not a log's. */
static int log_entries(redisReply *rep, int reversed, kv_item **items, size_t *n)
{
    size_t k = rep->type == REDIS_REPLY_ARRAY ? rep->elements : 0;
    kv_item *v;

    *items = NULL;
    *n = 0;
    if (rep->type != REDIS_REPLY_ARRAY)
        return KV_EIO;
    if (k && !(v = calloc(k, sizeof(*v))))
        return KV_ENOMEM;
    for (size_t i = 0; i < k; i++) {
        redisReply *e = rep->element[i], *f;
        kv_item *it = &v[reversed ? k - 1 - i : i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING ||
            (f = e->element[1])->type != REDIS_REPLY_ARRAY) {
            free(v);
            return KV_EIO;
        }
        it->id = strtoll(e->element[0]->str, NULL, 10); /* "<id>-0" */
        for (size_t j = 0; j + 1 < f->elements; j += 2) {
            const redisReply *name = f->element[j], *val = f->element[j + 1];
            if (name->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING)
                continue;
            if (name->len == 1 && name->str[0] == 'p')
                it->pos = strtoll(val->str, NULL, 10);
            else if (name->len == 1 && name->str[0] == 'v')
                it->val = val->str, it->vlen = val->len;
        }
        if (!it->val) {
            free(v);
            return KV_EIO;
        }
    }
    *items = k ? v : NULL;
    *n = k;
    return 0;
}

/* Hand 'o' its replies (rep[0..o->ncmds)). */
static void dispatch(kv_redis *r, rop *o, redisReply **rep)
{
    kv_result res = {0};
    kv_item *items = NULL;
    char *keys = NULL;

    for (int i = 0; i < o->ncmds; i++) {
        if (!rep[i] || rep[i]->type == REDIS_REPLY_ERROR) {
            /* A counter that is not an integer is the caller's error. */
            if (o->kind == OP_INCR && rep[i] &&
                (strstr(rep[i]->str, "not an integer") ||
                 strstr(rep[i]->str, "overflow"))) {
                complete(r, o, KV_EINVAL);
                return;
            }
            if (o->sha_at && rep[i]) {
                complete(r, o, append_error(r, rep[i]->str));
                return;
            }
            kv_report(&r->base, KV_EV_FAILED, "redis: %s",
                      rep[i] ? rep[i]->str : "no reply");
            complete(r, o, KV_EIO);
            return;
        }
    }
    switch (o->kind) {
    case OP_GET:
        if (rep[0]->type == REDIS_REPLY_NIL) {
            res.status = KV_ENOTFOUND;
        } else {
            res.val = rep[0]->str;
            res.len = rep[0]->len;
        }
        break;
    case OP_INCR:
    case OP_LEN:
        res.num = rep[0]->integer;
        break;
    case OP_PUSH:
        res.num = o->max && (size_t)rep[0]->integer > o->max
                      ? (long long)((size_t)rep[0]->integer - o->max)
                      : 0;
        break;
    case OP_TRIM:
        res.num = rep[1]->integer;
        break;
    case OP_RANGE:
        if (rep[0]->elements && !(items = calloc(rep[0]->elements, sizeof(*items)))) {
            res.status = KV_ENOMEM;
            break;
        }
        for (size_t i = 0; i < rep[0]->elements; i++) {
            items[i].val = rep[0]->element[i]->str;
            items[i].vlen = rep[0]->element[i]->len;
        }
        res.items = items;
        res.n = rep[0]->elements;
        break;
    case OP_SCAN: {
        size_t n = rep[0]->elements / 2, tlen = strlen(o->table), total = 0;
        for (size_t i = 0; i < n; i++)
            total += tlen + rep[0]->element[2 * i]->len + 1;
        if (n && (!(items = calloc(n, sizeof(*items))) || !(keys = malloc(total)))) {
            res.status = KV_ENOMEM;
            break;
        }
        char *k = keys;
        for (size_t i = 0; i < n; i++) {
            redisReply *f = rep[0]->element[2 * i], *v = rep[0]->element[2 * i + 1];
            memcpy(k, o->table, tlen);
            memcpy(k + tlen, f->str, f->len);
            k[tlen + f->len] = '\0';
            items[i] = (kv_item){k, tlen + f->len, v->str, v->len, 0, 0};
            k += tlen + f->len + 1;
        }
        if (n)
            qsort(items, n, sizeof(*items), item_cmp);
        res.items = items;
        res.n = n;
        break;
    }
    case OP_FLUSH:
        /* Only failures while this flush waited: those of the operations
         * issued before it (and, conservatively, of any others in between). */
        res.status = r->fails > o->fails_at ? KV_EIO : KV_OK;
        break;
    case OP_XRANGE:
    case OP_XREV:
        if ((res.status = log_entries(rep[0], o->kind == OP_XREV, &items, &res.n)) == 0)
            res.items = items;
        break;
    case OP_LOGEND:
    case OP_MARK:
        /* "id pos": a log's end (nil for a log never appended to: 0 0) */
        if (rep[0]->type == REDIS_REPLY_STRING)
            sscanf(rep[0]->str, "%lld %lld", &res.id, &res.num);
        break;
    case OP_DELIF:
        res.num = rep[0]->integer;
        break;
    default:
        break;
    }
    if (o->cb && !r->freeing)
        o->cb(&res, o->arg);
    free(items);
    free(keys);
}

/* Hand the appends of the group 'o' starts their replies: 'rep' is the
 * script's, one element per append ("id pos" or its error), or an error for
 * them all (NOSCRIPT); NULL with 'status' when the group was never sent. */
static void dispatch_group(kv_redis *r, rop *o, redisReply *rep, int status)
{
    for (int i = 0, n = o->group; i < n && o; i++, o = o->next) {
        const redisReply *e = rep;
        kv_result res = {0};
        char *sp;
        if (status || !rep) {
            complete(r, o, status ? status : KV_EIO);
            continue;
        }
        if (rep->type == REDIS_REPLY_ARRAY)
            e = (size_t)i < rep->elements ? rep->element[i] : NULL;
        if (e && e->type == REDIS_REPLY_ERROR) {
            complete(r, o, append_error(r, e->str));
            continue;
        }
        if (!e || e->type != REDIS_REPLY_STRING ||
            (res.id = strtoll(e->str, &sp, 10), *sp != ' ')) {
            complete(r, o, KV_EIO);
            continue;
        }
        res.num = res.id;
        res.pos = strtoll(sp + 1, NULL, 10);
        if (o->cb && !r->freeing)
            o->cb(&res, o->arg);
    }
}

static void batch_free(batch *b)
{
    rop *o, *next;
    for (o = b->ops; o; o = next) {
        next = o->next;
        rop_free(o);
    }
    free(b);
}

/* The answer to a batch's first command inside its MULTI. */
static void on_queued(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply *rep = reply;
    if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "OOM", 3) == 0)
        ((batch *)privdata)->oom = 1;
}

/* The EXEC reply of one batch (NULL when the connection went away). */
static void batch_done(redisAsyncContext *ac, void *reply, void *privdata)
{
    batch *b = privdata;
    kv_redis *r = b->r;
    redisReply *rep = reply;
    size_t at = 0;

    enter(r);
    /* Batches complete in order: this one is the head of the in-flight list. */
    r->inflight = b->next;
    if (!r->inflight) {
        r->inflight_tail = &r->inflight;
        r->inflight_last = NULL;
    }
    struct timeval now;
    gettimeofday(&now, NULL);
    for (rop *o = b->ops; o; o = o->next)
        prom_hist_observe(&r->base.metrics.op_seconds,
                          (double)(now.tv_sec - o->t0.tv_sec) +
                              (double)(now.tv_usec - o->t0.tv_usec) / 1e6);
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        if (rep && !r->freeing)
            kv_report(&r->base, KV_EV_FAILED, "redis: batch failed: %s",
                      b->oom                           ? "out of memory (maxmemory)"
                      : rep->type == REDIS_REPLY_ERROR ? rep->str
                                                       : "transaction aborted");
        for (rop *o = b->ops; o; o = o->next)
            if (!r->freeing)
                complete(r, o, b->oom ? KV_EFULL : KV_EIO);
    } else {
        for (rop *o = b->ops; o; o = o->next) {
            if (o->kind == OP_APPEND && !o->group)
                continue; /* answered with the first of its group */
            if (at + (size_t)o->ncmds > rep->elements) {
                if (o->kind == OP_APPEND)
                    dispatch_group(r, o, NULL, KV_EIO);
                else
                    complete(r, o, KV_EIO);
                continue;
            }
            if (o->kind == OP_APPEND)
                dispatch_group(r, o, o->ncmds ? rep->element[at] : NULL, o->status);
            else
                dispatch(r, o, o->ncmds ? rep->element + at : NULL);
            at += (size_t)o->ncmds;
        }
    }
    batch_free(b);
    leave(r);
}

/* ------------------------------------------------------------- batching */

/* Fail every waiting operation. Returns 1 if a callback freed the store. */
static int fail_pending(kv_redis *r)
{
    rop *o = r->pend, *next;
    r->pend = NULL;
    r->pend_tail = &r->pend;
    r->npend = 0;
    enter(r);
    for (; o; o = next) {
        next = o->next;
        complete(r, o, KV_EIO);
        rop_free(o);
    }
    return leave(r);
}

static void setup_refused(kv_redis *r, const char *step, const char *why);

static void on_script(redisAsyncContext *ac, void *reply, void *privdata)
{
    kv_redis *r = privdata;
    redisReply *rep = reply;
    const char *why;

    if (!rep || ac != r->ac)
        return;
    if (rep->type == REDIS_REPLY_STRING && rep->len == KV_REDIS_SHA_LEN) {
        memcpy(r->sha, rep->str, KV_REDIS_SHA_LEN);
        return;
    }
    why = rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply";
    if (!r->connected) {
        setup_refused(r, "SCRIPT LOAD", why); /* the connection is tried again */
        return;
    }
    /* Reloading after a NOSCRIPT: the appends of the batch behind it fail with
     * NOSCRIPT, changing nothing, and the next batch tries again. */
    r->need_load = 1;
    kv_report(&r->base, KV_EV_FAILED,
              "redis: SCRIPT LOAD failed (%s): appends fail until it succeeds", why);
}

static void load_script(kv_redis *r)
{
    redisAsyncCommand(r->ac, on_script, r, "SCRIPT LOAD %s", kv_redis_script);
    r->need_load = 0;
}

/* Send the appends that follow each other from 'o' on (at most
 * KV_REDIS_GROUP_MAX) as one EVALSHA of the script (kv_redis_script.c): the
 * first is marked with the group's size and the one reply it takes (ncmds 1),
 * the others with none. When the command cannot be built, ncmds stays 0 and
 * the caller fails the group when its batch is answered. Returns the group's
 * last append. 'b' (the batch) when the group is the batch's first command. */
static rop *send_group(kv_redis *r, rop *o, batch *b)
{
    kv_redis_rec recs[KV_REDIS_GROUP_MAX];
    size_t len;
    int m = 0;
    rop *last = o, *x;
    char *cmd;

    for (x = o; x && x->kind == OP_APPEND && m < KV_REDIS_GROUP_MAX; x = x->next) {
        recs[m++] = (kv_redis_rec){x->cmds, x->cmdslen, x->split, x->nkeys};
        x->group = 0;
        x->ncmds = 0;
        last = x;
    }
    o->group = m;
    if (!(cmd = kv_redis_script_call(r->sha, recs, m, &len)))
        return last;
    redisAsyncFormattedCommand(r->ac, b ? on_queued : NULL, b, cmd, len);
    free(cmd);
    o->ncmds = 1;
    return last;
}

/* Send the pending batch; with 'probe', an empty one when nothing is pending,
 * which only shows that Redis answers (its reply is timed like any batch's).
 * Returns 1 if a callback freed the store. */
static int send_batch(kv_redis *r, int probe)
{
    batch *b;
    /* A connection hiredis is closing (its callbacks are failing what was in
     * flight, and may issue more) takes no more commands: they wait for the
     * next one rather than join a batch nobody will answer. */
    if ((!r->pend && !probe) || !r->connected ||
        (r->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)))
        return 0;
    if (!(b = calloc(1, sizeof(*b))))
        return r->pend ? fail_pending(r) : 0;
    b->r = r;
    b->ops = r->pend;
    b->ops_tail = r->pend ? r->pend_tail : &b->ops;
    if (r->npend)
        prom_hist_observe(&r->base.metrics.batch_ops, (double)r->npend);
    gettimeofday(&b->sent, NULL);
    r->last_sent = b->sent;
    r->pend = NULL;
    r->pend_tail = &r->pend;
    r->npend = 0;
    evtimer_del(r->flush_ev);

    if (r->need_load)
        load_script(r); /* answered before the EXEC below */
    redisAsyncFormattedCommand(r->ac, NULL, NULL, "*1\r\n$5\r\nMULTI\r\n", 15);
    /* One call per command: hiredis pairs each reply with one call. The
     * first command's answer (+QUEUED, or -OOM at maxmemory, which then
     * aborts the whole EXEC) tells why a batch fails. */
    for (rop *o = b->ops; o; o = o->next) {
        if (o->kind == OP_APPEND) {
            rop *first = o;
            o = send_group(r, first, first == b->ops ? b : NULL);
            if (!first->ncmds)
                first->status = KV_ENOMEM;
            continue;
        }
        if (o->sha_at)
            memcpy(o->cmds + o->sha_at, r->sha, KV_REDIS_SHA_LEN);
        if (o->ncmds > 0)
            redisAsyncFormattedCommand(r->ac, o == b->ops ? on_queued : NULL,
                                       o == b->ops ? b : NULL, o->cmds, o->split);
        if (o->ncmds > 1)
            redisAsyncFormattedCommand(r->ac, NULL, NULL, o->cmds + o->split,
                                       o->cmdslen - o->split);
    }
    b->next = NULL;
    *r->inflight_tail = b;
    r->inflight_tail = &b->next;
    r->inflight_last = b;
    redisAsyncFormattedCommand(r->ac, batch_done, b, "*1\r\n$4\r\nEXEC\r\n", 14);
    return 0;
}

static void flush_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    send_batch(arg, 0);
}

/* Queue 'o' in the pending batch; 'urgent' sends it at the end of this turn. */
static int enqueue(kv_redis *r, rop *o, int urgent)
{
    if (r->abandoned || (!r->connected && r->npend >= KV_REDIS_MAX_WAITING)) {
        rop_free(o);
        return KV_EIO;
    }
    gettimeofday(&o->t0, NULL);
    *r->pend_tail = o;
    r->pend_tail = &o->next;
    r->npend++;
    if (!r->connected)
        return 0; /* sent on reconnection, or failed by the watchdog */
    if (r->npend >= r->maxbuffer) {
        send_batch(r, 0);
    } else if (urgent || r->buffertime_ms == 0) {
        event_active(r->now_ev, EV_TIMEOUT, 0);
    } else if (!evtimer_pending(r->flush_ev, NULL)) {
        struct timeval tv = {r->buffertime_ms / 1000, (r->buffertime_ms % 1000) * 1000};
        evtimer_add(r->flush_ev, &tv);
    }
    return 0;
}

/* Build an operation from up to two commands (argv arrays, NULL-terminated
 * counts in argc2 == 0 when there is only one). */
static int op(kv_redis *r, int kind, kv_cb cb, void *arg, int urgent, size_t max,
              const char *table, int argc1, const char **argv1, const size_t *len1,
              int argc2, const char **argv2, const size_t *len2)
{
    rop *o = calloc(1, sizeof(*o));
    char *c1 = NULL, *c2 = NULL;
    long long l1 = 0, l2 = 0;

    if (!o)
        return KV_ENOMEM;
    if (argc1 && (l1 = redisFormatCommandArgv(&c1, argc1, argv1, len1)) < 0)
        goto err;
    if (argc2 && (l2 = redisFormatCommandArgv(&c2, argc2, argv2, len2)) < 0)
        goto err;
    if (!(o->cmds = malloc((size_t)(l1 + l2) + 1)))
        goto err;
    if (l1)
        memcpy(o->cmds, c1, (size_t)l1);
    if (l2)
        memcpy(o->cmds + l1, c2, (size_t)l2);
    o->cmdslen = (size_t)(l1 + l2);
    o->split = (size_t)l1;
    if (kind == OP_MARK || kind == OP_DELIF)
        /* "*<argc>\r\n$7\r\nEVALSHA\r\n$40\r\n" then the SHA */
        o->sha_at = (size_t)((char *)memchr(c1, '\n', (size_t)l1) - c1) + 1 +
                    strlen("$7\r\nEVALSHA\r\n$40\r\n");
    o->ncmds = (argc1 > 0) + (argc2 > 0);
    o->nkeys = argc1;
    o->kind = kind;
    o->fails_at = r->fails;
    o->max = max;
    o->cb = cb;
    o->arg = arg;
    if (table && !(o->table = strdup(table)))
        goto err;
    redisFreeCommand(c1);
    redisFreeCommand(c2);
    return enqueue(r, o, urgent);
err:
    redisFreeCommand(c1);
    redisFreeCommand(c2);
    if (o)
        rop_free(o);
    return KV_ENOMEM;
}

/* Split "table/name" into the hash P"table/" and the field "name". */
static int split_key(kv_redis *r, const char *key, char **hash, const char **field)
{
    const char *slash = key ? strrchr(key, '/') : NULL;
    size_t plen = strlen(r->prefix);
    if (!key || !*key || !slash || !slash[1])
        return KV_EINVAL;
    if (!(*hash = malloc(plen + (size_t)(slash - key) + 2)))
        return KV_ENOMEM;
    memcpy(*hash, r->prefix, plen);
    memcpy(*hash + plen, key, (size_t)(slash - key) + 1);
    (*hash)[plen + (size_t)(slash - key) + 1] = '\0';
    *field = slash + 1;
    return 0;
}

static char *list_key(kv_redis *r, const char *key)
{
    char *k = NULL;
    if (key && *key && asprintf(&k, "%s%s", r->prefix, key) < 0)
        return NULL;
    return k;
}

/* Where a log's end lives: its stream's name with '~' after it. NULL on OOM
 * or an empty key. */
static char *end_key(kv_redis *r, const char *key)
{
    char *k = NULL;
    if (key && *key && asprintf(&k, "%s%s~", r->prefix, key) < 0)
        return NULL;
    return k;
}

#define ARGV(...) ((const char *[]){__VA_ARGS__})

static int hash_op(kv_store *kv, int kind, const char *cmd, const char *key,
                   const char *val, size_t vlen, kv_cb cb, void *arg, int urgent)
{
    kv_redis *r = (kv_redis *)kv;
    char *hash;
    const char *field;
    int rc = split_key(r, key, &hash, &field);
    if (rc < 0)
        return rc;
    const char *argv[] = {cmd, hash, field, val};
    size_t lens[] = {strlen(cmd), strlen(hash), strlen(field), vlen};
    rc = op(r, kind, cb, arg, urgent, 0, NULL, val ? 4 : 3, argv, lens, 0, NULL, NULL);
    free(hash);
    return rc;
}

static int redis_get(kv_store *kv, const char *key, kv_cb cb, void *arg)
{
    return hash_op(kv, OP_GET, "HGET", key, NULL, 0, cb, arg, 1);
}

static int redis_set(kv_store *kv, const char *key, const char *val, size_t len, kv_cb cb,
                     void *arg)
{
    return hash_op(kv, OP_SET, "HSET", key, val ? val : "", len, cb, arg, 0);
}

static int redis_incr(kv_store *kv, const char *key, long long by, kv_cb cb, void *arg)
{
    char num[24];
    snprintf(num, sizeof(num), "%lld", by);
    return hash_op(kv, OP_INCR, "HINCRBY", key, num, strlen(num), cb, arg, 1);
}

static int redis_del(kv_store *kv, const char *key, kv_cb cb, void *arg)
{
    kv_redis *r = (kv_redis *)kv;
    char *hash, *list;
    const char *field;
    int rc = split_key(r, key, &hash, &field);
    if (rc < 0)
        return rc;
    if (!(list = list_key(r, key))) {
        free(hash);
        return KV_ENOMEM;
    }
    char *end = end_key(r, key);
    if (!end) {
        free(hash);
        free(list);
        return KV_ENOMEM;
    }
    /* A key is a hash field, a list or a log (a stream and its end): remove
     * them all, whichever it was. */
    const char **a1 = ARGV("HDEL", hash, field), **a2 = ARGV("DEL", list, end);
    size_t l1[] = {4, strlen(hash), strlen(field)}, l2[] = {3, strlen(list), strlen(end)};
    rc = op(r, OP_DEL, cb, arg, 0, 0, NULL, 3, a1, l1, 3, a2, l2);
    free(hash);
    free(list);
    free(end);
    return rc;
}

static int redis_scan(kv_store *kv, const char *table, kv_cb cb, void *arg)
{
    kv_redis *r = (kv_redis *)kv;
    size_t tlen = table ? strlen(table) : 0;
    char *hash;
    int rc;
    if (!tlen || table[tlen - 1] != '/')
        return KV_EINVAL;
    if (asprintf(&hash, "%s%s", r->prefix, table) < 0)
        return KV_ENOMEM;
    const char **a = ARGV("HGETALL", hash);
    size_t l[] = {7, strlen(hash)};
    rc = op(r, OP_SCAN, cb, arg, 1, 0, table, 2, a, l, 0, NULL, NULL);
    free(hash);
    return rc;
}

static int redis_list_push(kv_store *kv, const char *key, const char *val, size_t len,
                           size_t max, kv_cb cb, void *arg)
{
    kv_redis *r = (kv_redis *)kv;
    char *list = list_key(r, key), start[24];
    int rc;
    if (!list)
        return key && *key ? KV_ENOMEM : KV_EINVAL;
    snprintf(start, sizeof(start), "-%zu", max);
    const char **a1 = ARGV("RPUSH", list, val), **a2 = ARGV("LTRIM", list, start, "-1");
    size_t l1[] = {5, strlen(list), len}, l2[] = {5, strlen(list), strlen(start), 2};
    rc = op(r, OP_PUSH, cb, arg, 0, max, NULL, 3, a1, l1, max ? 4 : 0, a2, l2);
    free(list);
    return rc;
}

static int redis_list_range(kv_store *kv, const char *key, size_t start, size_t count,
                            kv_cb cb, void *arg)
{
    kv_redis *r = (kv_redis *)kv;
    char *list = list_key(r, key), from[24], to[24];
    int rc;
    if (!list)
        return key && *key ? KV_ENOMEM : KV_EINVAL;
    snprintf(from, sizeof(from), "%zu", start);
    if (count == 0) /* an empty window, still answered in order */
        snprintf(to, sizeof(to), "%zu", start),
            snprintf(from, sizeof(from), "%zu", start + 1);
    else if (count > (size_t)INT64_MAX - start)
        snprintf(to, sizeof(to), "-1");
    else
        snprintf(to, sizeof(to), "%zu", start + count - 1);
    const char **a = ARGV("LRANGE", list, from, to);
    size_t l[] = {6, strlen(list), strlen(from), strlen(to)};
    rc = op(r, OP_RANGE, cb, arg, 1, 0, NULL, 4, a, l, 0, NULL, NULL);
    free(list);
    return rc;
}

static int redis_list_trim(kv_store *kv, const char *key, size_t n, kv_cb cb, void *arg)
{
    kv_redis *r = (kv_redis *)kv;
    char *list = list_key(r, key), from[24];
    int rc;
    if (!list)
        return key && *key ? KV_ENOMEM : KV_EINVAL;
    snprintf(from, sizeof(from), "%zu", n);
    const char **a1 = ARGV("LTRIM", list, from, "-1"), **a2 = ARGV("LLEN", list);
    size_t l1[] = {5, strlen(list), strlen(from), 2}, l2[] = {4, strlen(list)};
    rc = op(r, OP_TRIM, cb, arg, cb != NULL, 0, NULL, 4, a1, l1, 2, a2, l2);
    free(list);
    return rc;
}

static int redis_list_len(kv_store *kv, const char *key, kv_cb cb, void *arg)
{
    kv_redis *r = (kv_redis *)kv;
    char *list = list_key(r, key);
    int rc;
    if (!list)
        return key && *key ? KV_ENOMEM : KV_EINVAL;
    const char **a = ARGV("LLEN", list);
    size_t l[] = {4, strlen(list)};
    rc = op(r, OP_LEN, cb, arg, 1, 0, NULL, 2, a, l, 0, NULL, NULL);
    free(list);
    return rc;
}

/* The flushes that had nothing to wait for, answered KV_OK in issue order. */
static void ready_cb(evutil_socket_t fd, short what, void *arg)
{
    kv_redis *r = arg;
    rop *o = r->ready, *next;
    r->ready = NULL;
    r->ready_tail = &r->ready;
    enter(r);
    for (; o; o = next) {
        next = o->next;
        complete(r, o, KV_OK);
        rop_free(o);
    }
    leave(r);
}

/* A flush waits for what was issued before it. With nothing waiting to be
 * sent, that is only the batches in flight: it joins the last of them
 * (answered after its EXEC, after everything before it), or, with none in
 * flight, it is answered on the next loop turn. Either way it costs no round
 * trip of its own: a publish's "stored and delivered" answer (store.sync)
 * does not wait for one more batch. Otherwise (operations pending, or not
 * connected) it waits in the pending batch like any operation. */
static int redis_flush(kv_store *kv, kv_cb cb, void *arg)
{
    kv_redis *r = (kv_redis *)kv;
    rop *o;

    if (r->pend || !r->connected ||
        (r->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)))
        return op(r, OP_FLUSH, cb, arg, 1, 0, NULL, 0, NULL, NULL, 0, NULL, NULL);
    if (!(o = calloc(1, sizeof(*o))))
        return KV_ENOMEM;
    o->kind = OP_FLUSH;
    o->fails_at = r->fails;
    o->cb = cb;
    o->arg = arg;
    gettimeofday(&o->t0, NULL);
    if (r->inflight_last) {
        *r->inflight_last->ops_tail = o;
        r->inflight_last->ops_tail = &o->next;
    } else {
        *r->ready_tail = o;
        r->ready_tail = &o->next;
        event_active(r->ready_ev, EV_TIMEOUT, 0);
    }
    return 0;
}

static int redis_health(kv_store *kv)
{
    return ((kv_redis *)kv)->connected ? 0 : KV_EIO;
}

static int valid_name(const char *s)
{
    return s && *s;
}

/* 'sha' set to the placeholder that send_batch() replaces with the script's
 * SHA1: a script loaded after this call (a reconnection) is the one that runs. */
static void sha_placeholder(char sha[KV_REDIS_SHA_LEN + 1])
{
    memset(sha, '0', KV_REDIS_SHA_LEN);
    sha[KV_REDIS_SHA_LEN] = '\0';
}

static int redis_append(kv_store *kv, const kv_append_args *a, kv_cb cb, void *arg)
{
    kv_redis *r = (kv_redis *)kv;
    kv_redis_rec rec;
    rop *o;
    int rc = kv_redis_script_append(r->prefix, a, &rec);

    if (rc < 0)
        return rc;
    if (!(o = calloc(1, sizeof(*o)))) {
        free(rec.p);
        return KV_ENOMEM;
    }
    o->cmds = rec.p;
    o->cmdslen = rec.len;
    o->split = rec.split;
    o->nkeys = rec.nkeys; /* ncmds and group: when sent (send_group) */
    o->kind = OP_APPEND;
    o->fails_at = r->fails;
    o->cb = cb;
    o->arg = arg;
    return enqueue(r, o, cb != NULL);
}

static int redis_log_range(kv_store *kv, const char *key, long long after, size_t count,
                           int newest, kv_cb cb, void *arg)
{
    kv_redis *r = (kv_redis *)kv;
    char *stream = list_key(r, key), from[32], num[24];
    int rc;
    if (!stream)
        return key && *key ? KV_ENOMEM : KV_EINVAL;
    if (after < 0)
        after = 0;
    snprintf(from, sizeof(from), "(%lld-0", after);
    /* COUNT 0 means no limit to Redis: an empty window asks for nothing real. */
    snprintf(num, sizeof(num), "%zu", count ? count : 1);
    const char **a = newest ? ARGV("XREVRANGE", stream, "+", from, "COUNT", num)
                            : ARGV("XRANGE", stream, from, "+", "COUNT", num);
    size_t l[] = {newest ? 9u : 6u,
                  strlen(stream),
                  newest ? 1 : strlen(from),
                  newest ? strlen(from) : 1,
                  5,
                  strlen(num)};
    rc = op(r, count ? (newest ? OP_XREV : OP_XRANGE) : OP_EMPTY, cb, arg, 1, 0, NULL,
            count ? 6 : 0, a, l, 0, NULL, NULL);
    free(stream);
    return rc;
}

static int redis_log_end(kv_store *kv, const char *key, kv_cb cb, void *arg)
{
    kv_redis *r = (kv_redis *)kv;
    char *end = end_key(r, key);
    int rc;
    if (!end)
        return key && *key ? KV_ENOMEM : KV_EINVAL;
    const char **a = ARGV("GET", end);
    size_t l[] = {3, strlen(end)};
    rc = op(r, OP_LOGEND, cb, arg, 1, 0, NULL, 2, a, l, 0, NULL, NULL);
    free(end);
    return rc;
}

static int redis_log_trim(kv_store *kv, const char *key, size_t keep, kv_cb cb, void *arg)
{
    kv_redis *r = (kv_redis *)kv;
    char *stream = list_key(r, key), num[24];
    int rc;
    if (!stream)
        return key && *key ? KV_ENOMEM : KV_EINVAL;
    snprintf(num, sizeof(num), "%zu", keep); /* the end stays: it has a key of its own */
    const char **a = ARGV("XTRIM", stream, "MAXLEN", num);
    size_t l[] = {5, strlen(stream), 6, strlen(num)};
    rc = op(r, OP_DEL, cb, arg, 0, 0, NULL, 4, a, l, 0, NULL, NULL);
    free(stream);
    return rc;
}

static int redis_log_mark(kv_store *kv, const char *log, const char *key, kv_cb cb,
                          void *arg)
{
    kv_redis *r = (kv_redis *)kv;
    char *end = NULL, *hash = NULL, sha[KV_REDIS_SHA_LEN + 1];
    const char *field;
    int rc;

    if (!valid_name(log) || !key || strcmp(log, key) == 0)
        return KV_EINVAL;
    if ((rc = split_key(r, key, &hash, &field)) < 0)
        return rc;
    if (!(end = end_key(r, log))) {
        free(hash);
        return KV_ENOMEM;
    }
    sha_placeholder(sha);
    const char **a = ARGV("EVALSHA", sha, "2", end, hash, "mark", field);
    size_t l[] = {7, KV_REDIS_SHA_LEN, 1, strlen(end), strlen(hash), 4, strlen(field)};
    rc = op(r, OP_MARK, cb, arg, cb != NULL, 0, NULL, 7, a, l, 0, NULL, NULL);
    free(end);
    free(hash);
    return rc;
}

static int redis_del_if(kv_store *kv, const char *key, const char *val, size_t len,
                        kv_cb cb, void *arg)
{
    kv_redis *r = (kv_redis *)kv;
    char *hash, sha[KV_REDIS_SHA_LEN + 1];
    const char *field;
    int rc;

    if (!val && len)
        return KV_EINVAL;
    if ((rc = split_key(r, key, &hash, &field)) < 0)
        return rc;
    sha_placeholder(sha);
    const char **a = ARGV("EVALSHA", sha, "1", hash, "delif", field, val ? val : "");
    size_t l[] = {7, KV_REDIS_SHA_LEN, 1, strlen(hash), 5, strlen(field), len};
    rc = op(r, OP_DELIF, cb, arg, cb != NULL, 0, NULL, 7, a, l, 0, NULL, NULL);
    free(hash);
    return rc;
}

static int redis_set_if(kv_store *kv, const char *key, const char *expect,
                        const char *val, kv_cb cb, void *arg)
{
    kv_redis *r = (kv_redis *)kv;
    char *hash, sha[KV_REDIS_SHA_LEN + 1];
    const char *field;
    int rc;

    if (!expect || !val)
        return KV_EINVAL;
    if ((rc = split_key(r, key, &hash, &field)) < 0)
        return rc;
    sha_placeholder(sha);
    const char **a = ARGV("EVALSHA", sha, "1", hash, "setif", field, expect, val);
    size_t l[] = {
        7,          KV_REDIS_SHA_LEN, 1, strlen(hash), 5, strlen(field), strlen(expect),
        strlen(val)};
    /* Answered as del_if is: 1 if it was done. */
    rc = op(r, OP_DELIF, cb, arg, cb != NULL, 0, NULL, 8, a, l, 0, NULL, NULL);
    free(hash);
    return rc;
}

static int redis_notify(kv_store *kv, const char *topic, const char *data, size_t len,
                        kv_cb cb, void *arg)
{
    kv_redis *r = (kv_redis *)kv;
    char *channel, *framed = NULL;
    int rc, hl;

    if (!valid_name(topic) || (!data && len))
        return KV_EINVAL;
    if (len > KV_REDIS_FRAME_MAX)
        return KV_EINVAL;
    if (!(channel = list_key(r, topic)) || !(framed = malloc(len + 24))) {
        free(channel);
        return KV_ENOMEM;
    }
    /* One value, framed as the append script frames its (kv_private.h). */
    hl = snprintf(framed, 24, "%zu:", len);
    if (len)
        memcpy(framed + hl, data, len);
    const char **a = ARGV("PUBLISH", channel, framed);
    size_t l[] = {7, strlen(channel), (size_t)hl + len};
    rc = op(r, OP_NOTIFY, cb, arg, 0, 0, NULL, 3, a, l, 0, NULL, NULL);
    free(channel);
    free(framed);
    return rc;
}

/* 'p' with Redis' glob characters escaped, then "*". NULL on OOM. */
static char *glob_prefix(const char *p)
{
    char *g = malloc(2 * strlen(p) + 2), *q = g;

    if (!g)
        return NULL;
    for (; *p; p++) {
        if (strchr("*?[]\\", *p))
            *q++ = '\\';
        *q++ = *p;
    }
    *q++ = '*';
    *q = '\0';
    return g;
}

static int redis_subscribe(kv_store *kv, const char *prefix, kv_notify_cb cb, void *arg)
{
    kv_redis *r = (kv_redis *)kv;
    kv_redis_addr addr = {r->host, r->port, r->path, r->password};
    char *full, *pattern;

    if (!prefix || !cb || r->sub)
        return KV_EINVAL;
    if (asprintf(&full, "%s%s", r->prefix, prefix) < 0)
        return KV_ENOMEM;
    pattern = glob_prefix(full);
    free(full);
    if (pattern)
        r->sub = kv_redis_sub_new(&r->base, &addr, pattern, strlen(r->prefix), cb, arg);
    free(pattern);
    return r->sub ? 0 : KV_ENOMEM;
}

static int redis_subscribed(kv_store *kv)
{
    return kv_redis_sub_live(((kv_redis *)kv)->sub);
}

/* ------------------------------------------------------------- connection */

static long ms_since(const struct timeval *then, const struct timeval *now)
{
    return (now->tv_sec - then->tv_sec) * 1000 + (now->tv_usec - then->tv_usec) / 1000;
}

/* Keep the first refused set-up step: on_ready, which gets the last reply of
 * the set-up, drops the connection if there was one. */
static void setup_refused(kv_redis *r, const char *step, const char *why)
{
    if (!r->setup_err[0])
        snprintf(r->setup_err, sizeof(r->setup_err), "%s: %s", step, why);
}

static void setup_step(redisAsyncContext *ac, void *reply, kv_redis *r, const char *step)
{
    redisReply *rep = reply;
    /* No reply: the connection went away, on_disconnect deals with it. */
    if (rep && rep->type == REDIS_REPLY_ERROR && ac == r->ac)
        setup_refused(r, step, rep->str);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
    setup_step(ac, reply, privdata, "AUTH");
}

static void on_select(redisAsyncContext *ac, void *reply, void *privdata)
{
    setup_step(ac, reply, privdata, "SELECT");
}

/* Redis answers in order: the PING's reply is the last of the set-up. */
static void on_ready(redisAsyncContext *ac, void *reply, void *privdata)
{
    kv_redis *r = privdata;
    redisReply *rep = reply;
    if (!rep || ac != r->ac)
        return;
    if (rep->type == REDIS_REPLY_ERROR)
        setup_refused(r, "PING", rep->str);
    if (r->setup_err[0]) {
        /* A Redis restarted on its data answers LOADING until it has read
         * them, one running a long script BUSY: not up yet. Anything else
         * (NOAUTH, a bad database) will not mend by itself, but is retried all
         * the same, so that fixing Redis is enough. Only the replies owed are
         * waited for, and there are none after this one. */
        int later = strstr(r->setup_err, ": LOADING") || strstr(r->setup_err, ": BUSY");
        kv_report(&r->base, later ? KV_EV_RETRY : KV_EV_ERROR,
                  "redis: connection set-up refused (%s); retrying", r->setup_err);
        redisAsyncDisconnect(ac);
        return;
    }
    r->connected = 1;
    r->backoff_ms = 0;
    r->need_load = 0; /* loaded just before this PING */
    gettimeofday(&r->last_sent, NULL);
    if (r->path)
        kv_report(&r->base, KV_EV_CONNECTED, "redis: connected to %s", r->path);
    else
        kv_report(&r->base, KV_EV_CONNECTED, "redis: connected to %s:%d", r->host,
                  r->port);
    kv_redis_sub_resume(r->sub);
    send_batch(r, 0);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    kv_redis *r = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback; on_disconnect is
         * not called for a connection that never came up. */
        r->ac = NULL;
        kv_report(&r->base, KV_EV_RETRY, "redis: connect failed: %s", ac->errstr);
        if (!r->freeing)
            schedule_reconnect(r);
    }
}

void kv_redis_backoff(int *ms, struct event *ev)
{
    struct timeval tv;
    *ms = *ms ? *ms * 2 : KV_REDIS_BACKOFF_MIN_MS;
    if (*ms > KV_REDIS_BACKOFF_MAX_MS)
        *ms = KV_REDIS_BACKOFF_MAX_MS;
    tv.tv_sec = *ms / 1000;
    tv.tv_usec = (*ms % 1000) * 1000;
    evtimer_add(ev, &tv);
}

static void schedule_reconnect(kv_redis *r)
{
    kv_redis_backoff(&r->backoff_ms, r->reconnect_ev);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    kv_redis *r = ac->data;
    int was = r->connected;
    if (r->freeing) {
        r->ac = NULL;
        r->connected = 0;
        /* The last word of a context kv_free() had to leave to hiredis. */
        if (r->hiredis_holds) {
            r->hiredis_holds = 0;
            leave(r);
        }
        return;
    }
    if (ac != r->ac)
        return; /* dropped by drop_connection(), which did what follows */
    r->ac = NULL;
    r->connected = 0;
    if (was)
        kv_report(&r->base, KV_EV_LOST, "redis: connection lost%s%s; reconnecting",
                  status == REDIS_OK ? "" : ": ", status == REDIS_OK ? "" : ac->errstr);
    kv_redis_sub_reset(r->sub);
    schedule_reconnect(r);
}

/* Drop the connection now, without waiting for the replies it still owes (a
 * Redis that stopped answering never sends them; redisAsyncDisconnect() would
 * wait for ever): its socket is closed, every batch in flight fails with
 * KV_EIO, oldest first, and with 'fail_waiting' so does every operation
 * waiting to be sent (those the callbacks issue meanwhile wait for the next
 * connection). The subscription goes too, and the reconnection follows with the
 * backoff. Called from the watchdog, so never inside a callback of the context.
 * Returns 1 if a callback freed the store. */
static int drop_connection(kv_redis *r, int fail_waiting)
{
    redisAsyncContext *ac = r->ac;
    rop *o = NULL, *next;

    r->ac = NULL;
    r->connected = 0;
    if (fail_waiting) {
        o = r->pend;
        r->pend = NULL;
        r->pend_tail = &r->pend;
        r->npend = 0;
        evtimer_del(r->flush_ev);
    }
    kv_redis_sub_reset(r->sub);
    schedule_reconnect(r);
    enter(r);
    if (ac)
        redisAsyncFree(ac); /* batch_done() with no reply for each batch in flight */
    for (; o; o = next) {
        next = o->next;
        complete(r, o, KV_EIO);
        rop_free(o);
    }
    return leave(r);
}

static void reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
    redis_connect(arg);
}

redisAsyncContext *kv_redis_dial(kv_store *kv, const kv_redis_addr *addr, void *data)
{
    redisAsyncContext *ac = addr->path ? redisAsyncConnectUnix(addr->path)
                                       : redisAsyncConnect(addr->host, addr->port);
    if (!ac || ac->err) {
        kv_report(kv, KV_EV_RETRY, "redis: cannot connect: %s",
                  ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        return NULL;
    }
    ac->data = data;
    if (redisLibeventAttach(ac, kv->base) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    return ac;
}

static void redis_connect(kv_redis *r)
{
    kv_redis_addr addr = {r->host, r->port, r->path, r->password};
    redisAsyncContext *ac = kv_redis_dial(&r->base, &addr, r);
    if (!ac) {
        schedule_reconnect(r);
        return;
    }
    r->ac = ac;
    gettimeofday(&r->dialed, NULL);
    r->setup_err[0] = '\0';
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* Queued now, sent as soon as the socket connects, answered before any batch:
     * a restarted Redis has lost its scripts, so the script goes first. */
    if (r->password)
        redisAsyncCommand(ac, on_auth, r, "AUTH %s", r->password);
    redisAsyncCommand(ac, on_select, r, "SELECT %d", r->db);
    load_script(r);
    redisAsyncCommand(ac, on_ready, r, "PING");
}

/* Every tick: drop a connection whose oldest batch is not answered within the
 * reply timeout, or one not set up within twice it; fail what waited too long
 * for a reconnection; probe a connection idle for a while. */
static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
    kv_redis *r = arg;
    long connect_ms = 2L * r->timeout_ms;
    int wait_ms =
        r->timeout_ms < KV_REDIS_DOWN_WAIT_MS ? r->timeout_ms : KV_REDIS_DOWN_WAIT_MS;
    struct timeval now;
    long ms;

    gettimeofday(&now, NULL);
    if (r->connected && r->inflight &&
        (ms = ms_since(&r->inflight->sent, &now)) >= r->timeout_ms) {
        size_t n = r->npend;
        for (batch *b = r->inflight; b; b = b->next)
            for (rop *o = b->ops; o; o = o->next)
                n++;
        kv_report(&r->base, KV_EV_LOST,
                  "redis: no reply for %ld ms: connection dropped, %zu operation(s) "
                  "failed; reconnecting",
                  ms, n);
        if (drop_connection(r, 1))
            return;
    } else if (r->ac && !r->connected &&
               (ms = ms_since(&r->dialed, &now)) >= connect_ms) {
        kv_report(&r->base, KV_EV_RETRY,
                  "redis: connection not set up after %ld ms; retrying", ms);
        if (drop_connection(r, 0))
            return;
    }
    if (!r->connected && r->pend) {
        if (!r->down_since.tv_sec)
            r->down_since = now;
        ms = ms_since(&r->down_since, &now);
        if (ms >= wait_ms) {
            kv_report(&r->base, KV_EV_FAILED,
                      "redis: unavailable for %ld ms: failing %zu waiting operation(s)",
                      ms, r->npend);
            r->down_since.tv_sec = 0;
            if (fail_pending(r))
                return;
        }
    } else {
        r->down_since.tv_sec = 0;
    }
    if (r->connected && !r->inflight && !r->pend &&
        ms_since(&r->last_sent, &now) >= KV_REDIS_PROBE_MS)
        send_batch(r, 1);
}

/* ------------------------------------------------------------- lifecycle */

static void redis_destroy(kv_redis *r)
{
    rop *o, *next;
    for (o = r->pend; o; o = next) {
        next = o->next;
        rop_free(o);
    }
    while (r->inflight) {
        batch *b = r->inflight;
        r->inflight = b->next;
        batch_free(b);
    }
    for (o = r->ready; o; o = next) {
        next = o->next;
        rop_free(o);
    }
    if (r->ready_ev)
        event_free(r->ready_ev);
    if (r->reconnect_ev)
        event_free(r->reconnect_ev);
    if (r->flush_ev)
        event_free(r->flush_ev);
    if (r->now_ev)
        event_free(r->now_ev);
    if (r->watchdog)
        event_free(r->watchdog);
    free(r->prefix);
    free(r->host);
    free(r->path);
    free(r->password);
    free(r);
}

static void redis_free(kv_store *kv)
{
    kv_redis *r = (kv_redis *)kv;
    if (r->freeing)
        return;
    r->freeing = 1; /* from now on no caller's callback runs */
    kv_redis_sub_free(r->sub);
    r->sub = NULL;
    if (r->ac && (r->ac->c.flags & REDIS_IN_CALLBACK)) {
        /* Inside one of its callbacks hiredis only marks the context; once the
         * callback returns it fails the rest (batch_done still needs 'r') and
         * calls on_disconnect, which lets go of the store. */
        r->hiredis_holds = 1;
        enter(r);
        redisAsyncFree(r->ac);
    } else if (r->ac) {
        /* Flush what is pending so a clean shutdown loses nothing, then let
         * hiredis fail in-flight callbacks (ignored: freeing). */
        redisAsyncFree(r->ac);
        r->ac = NULL;
    }
    if (guard_free(&r->guard))
        redis_destroy(r);
}

/* kv_abandon(): what is owed fails as when Redis stopped answering
 * (drop_connection: the batches in flight and the operations waiting, KV_EIO),
 * and the flushes that waited for nothing are answered; what the callbacks
 * issue meanwhile, and anything after, is refused by enqueue(). No
 * reconnection: the loop that would run it has ended. */
static void redis_abandon(kv_store *kv)
{
    kv_redis *r = (kv_redis *)kv;
    if (r->abandoned || r->freeing)
        return;
    r->abandoned = 1;
    enter(r);
    if (r->ac || r->pend)
        drop_connection(r, 1);
    evtimer_del(r->reconnect_ev);
    ready_cb(-1, 0, r);
    leave(r);
}

/* Parse "redis://[:password@]host[:port][/db]" or "unix:///path". */
static int parse_url(kv_redis *r, const char *url, char *err, size_t errlen)
{
    if (strncmp(url, "unix://", 7) == 0) {
        if (url[7] != '/') {
            snprintf(err, errlen, "'%s': a unix URL is unix:///absolute/path", url);
            return -1;
        }
        return (r->path = strdup(url + 7)) ? 0 : -1;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen,
                 "'%s': expected redis://[:password@]host:port/db or unix:///path", url);
        return -1;
    }
    const char *p = url + 8, *at = strrchr(p, '@'), *slash;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        if (!(r->password = strndup(pw, (size_t)(at - pw))))
            return -1;
        p = at + 1;
    }
    slash = strchr(p, '/');
    size_t hlen = slash ? (size_t)(slash - p) : strlen(p);
    const char *colon = memchr(p, ':', hlen);
    r->port = 6379;
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (end != p + hlen || port < 1 || port > 65535) {
            snprintf(err, errlen, "'%s': bad port", url);
            return -1;
        }
        r->port = (int)port;
        hlen = (size_t)(colon - p);
    }
    if (!hlen) {
        snprintf(err, errlen, "'%s': no host", url);
        return -1;
    }
    if (!(r->host = strndup(p, hlen)))
        return -1;
    if (slash && slash[1]) {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0 || db > 65535) {
            snprintf(err, errlen, "'%s': bad database number", url);
            return -1;
        }
        r->db = (int)db;
    }
    return 0;
}

static const kv_ops kv_redis_ops = {
    .name = "redis",
    .get = redis_get,
    .set = redis_set,
    .del = redis_del,
    .scan = redis_scan,
    .incr = redis_incr,
    .list_push = redis_list_push,
    .list_range = redis_list_range,
    .list_trim = redis_list_trim,
    .list_len = redis_list_len,
    .flush = redis_flush,
    .append = redis_append,
    .log_range = redis_log_range,
    .log_end = redis_log_end,
    .log_trim = redis_log_trim,
    .log_mark = redis_log_mark,
    .del_if = redis_del_if,
    .set_if = redis_set_if,
    .subscribe = redis_subscribe,
    .notify = redis_notify,
    .subscribed = redis_subscribed,
    .health = redis_health,
    .abandon = redis_abandon,
    .free = redis_free,
};

kv_store *kv_redis_new(struct event_base *base, const kv_redis_opts *opts, char *err,
                       size_t errlen)
{
    kv_redis *r = calloc(1, sizeof(*r));
    struct timeval tick = {0, 100000};
    int timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : KV_REDIS_REPLY_TIMEOUT_MS;

    snprintf(err, errlen, "out of memory");
    if (!r)
        return NULL;
    r->base.ops = &kv_redis_ops;
    r->base.base = base;
    kv_metrics_init(&r->base);
    r->pend_tail = &r->pend;
    r->inflight_tail = &r->inflight;
    r->ready_tail = &r->ready;
    r->maxbuffer = opts->maxbuffer ? opts->maxbuffer : 100;
    r->buffertime_ms = opts->buffertime_ms;
    r->timeout_ms = timeout_ms;
    /* The watchdog's tick: a tenth of the timeout, at most 100 ms. */
    if (timeout_ms < 1000)
        tick.tv_usec = (timeout_ms < 100 ? 10 : timeout_ms / 10) * 1000;
    if (!(r->prefix = strdup(opts->prefix ? opts->prefix : "")) ||
        parse_url(r, opts->url, err, errlen) < 0 ||
        !(r->reconnect_ev = evtimer_new(base, reconnect_cb, r)) ||
        !(r->flush_ev = evtimer_new(base, flush_timer_cb, r)) ||
        !(r->now_ev = event_new(base, -1, 0, flush_timer_cb, r)) ||
        !(r->ready_ev = event_new(base, -1, 0, ready_cb, r)) ||
        !(r->watchdog = event_new(base, -1, EV_PERSIST, watchdog_cb, r)) ||
        event_add(r->watchdog, &tick) < 0)
        goto err;
    redis_connect(r);
    return &r->base;
err:
    r->freeing = 1;
    redis_destroy(r);
    return NULL;
}
