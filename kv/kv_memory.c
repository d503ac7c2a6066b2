/* kv_memory.c - the in-memory key-value store: a skip list of keys, deferred callbacks.
 *
 * Keys live in one skip list ordered by their bytes, so kv_scan() seeks to the
 * table's prefix and walks forward only while keys still match it. A value is
 * a string, a list or a log; a list is a ring buffer of owned byte strings that
 * doubles when full, and a log is the same ring whose entries carry their id
 * and position, with the log's end kept beside it.
 *
 * Every operation changes the data at once (a get issued after a set sees it),
 * but its callback is deferred: the result is copied into a completion that is
 * appended to a FIFO, and one libevent event, made active whenever that FIFO
 * stops being empty, runs the completions in issue order. A completion owns a
 * copy of everything its kv_result points to, so later writes to the same key
 * cannot change what a pending callback sees. Keys and values handed to a
 * callback are NUL-terminated one byte past their length, as hiredis replies
 * are, though kv.h only promises the length.
 *
 * The store is a cluster of one node: kv_append() does its whole step at once
 * in the data, and a notification for the one subscription is a completion like
 * any other, queued where it was published, so it reaches the subscriber in
 * order with every other callback. The subscription never breaks. No other
 * process ever reads it either: log entries an append keeps only for other
 * processes (kv_append_args.log_idle_remote) are not kept at all, so a
 * channel's history is held once, in the broker's mirror, not twice.
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <event2/event.h>

#include "kv/kv.h"
#include "kv/kv_private.h"
#include "src/base/guard.h"
#include "src/base/util.h"

#define KV_SKIP_MAXLEVEL 32
#define KV_LIST_MINCAP 4

enum { KV_KIND_STRING, KV_KIND_LIST, KV_KIND_LOG };

/* One owned byte string, NUL-terminated one past 'len'. */
typedef struct kv_buf {
    char *p;
    size_t len;
} kv_buf;

/* An item of a list or an entry of a log (with its id and position). */
typedef struct kv_ent {
    char *p; /* NUL-terminated one past 'len' */
    size_t len;
    long long id, pos;
} kv_ent;

/* A ring buffer of items: item i lives at v[(head + i) % cap]. A log keeps the
 * id and position of the newest entry ever appended, trimmed or not. */
typedef struct kv_deque {
    kv_ent *v;
    size_t cap, head, len;
    long long end_id, end_pos;
} kv_deque;

/* A skip list node, one allocation: the struct, its 'level' links, the key
 * (NUL-terminated), and for a list or a log its deque, aligned after the key.
 * Small, as the store may hold a few records for every live stream (24 bytes
 * and the links; the deque 48 more where there is one). */
typedef struct kv_node {
    uint32_t klen; /* insert() refuses longer keys */
    unsigned char kind;
    unsigned char level;
    union {
        kv_buf str;
        kv_deque *list; /* inside the node's allocation */
    } u;
    struct kv_node *next[];
} kv_node;

/* The key of 'x' (not of the head, which has none). */
static inline char *node_key(const kv_node *x)
{
    return (char *)&x->next[x->level];
}

/* A deferred callback with its own copy of the result. 'items' and the bytes
 * the result points to live in the same allocation, right after the struct. A
 * notification is a kv_done with 'ncb' set: its topic is in 'topic', its data
 * in res.val and res.len. */
typedef struct kv_done {
    struct kv_done *next;
    kv_cb cb;
    kv_notify_cb ncb;
    const char *topic;
    void *arg;
    struct timeval t0; /* when the operation was called (store latency) */
    kv_result res;
} kv_done;

typedef struct kv_memory {
    kv_store base;
    kv_node *head; /* sentinel with KV_SKIP_MAXLEVEL links, no key */
    int level;     /* levels in use, at least 1 */
    uint64_t rng;
    struct event *ev;    /* runs the FIFO; active while it is non-empty */
    kv_done *q, **qtail; /* completions not yet taken by a pass */
    kv_done *running;    /* the rest of the batch the current pass is running */
    int in_pass;
    guard guard;      /* held by a pass: kv_free() from a callback waits for it */
    size_t bytes;     /* what the data takes on the heap (kv_used) */
    char *sub_prefix; /* the subscription, if any: its prefix and callback */
    size_t sub_plen;
    kv_notify_cb sub_cb;
    void *sub_arg;
} kv_memory;

/* ---------------------------------------------------------------- skip list */

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* A level for a new node: each level up with probability 1/4, as in Redis. */
static int random_level(kv_memory *m)
{
    int level = 1;

    for (;;) {
        /* xorshift64: any cheap, deterministic generator will do here. */
        m->rng ^= m->rng << 13;
        m->rng ^= m->rng >> 7;
        m->rng ^= m->rng << 17;
        if ((m->rng & 3) != 0 || level == KV_SKIP_MAXLEVEL)
            return level;
        level++;
    }
}

/* The first node whose key is >= 'key', or NULL. If 'update' is not NULL it
 * receives, per level, the last node before that position. */
static kv_node *seek(kv_memory *m, const char *key, size_t klen, kv_node **update)
{
    kv_node *x = m->head;

    for (int i = m->level - 1; i >= 0; i--) {
        while (x->next[i] &&
               key_cmp(node_key(x->next[i]), x->next[i]->klen, key, klen) < 0)
            x = x->next[i];
        if (update)
            update[i] = x;
    }
    return x->next[0];
}

/* The node at 'key' (of 'klen' bytes), or NULL; 'update' as seek() fills
 * it, for an insert_at() of that key. */
static kv_node *lookup_at(kv_memory *m, const char *key, size_t klen, kv_node **update)
{
    kv_node *x = seek(m, key, klen, update);

    return x && key_cmp(node_key(x), x->klen, key, klen) == 0 ? x : NULL;
}

static kv_node *lookup(kv_memory *m, const char *key)
{
    return lookup_at(m, key, strlen(key), NULL);
}

/* What an allocation really takes: its usable size and the allocator's
 * header. Every allocation that holds data is counted in m->bytes. */
static size_t heap_size(void *p)
{
    return p ? malloc_usable_size(p) + sizeof(size_t) : 0;
}

/* Free a counted allocation. */
static void counted_free(kv_memory *m, void *p)
{
    m->bytes -= heap_size(p);
    free(p);
}

static void deque_clear(kv_memory *m, kv_deque *d)
{
    for (size_t i = 0; i < d->len; i++)
        counted_free(m, d->v[(d->head + i) % d->cap].p);
    counted_free(m, d->v);
    *d = (kv_deque){0};
}

static void node_free(kv_memory *m, kv_node *x)
{
    if (x->kind == KV_KIND_STRING)
        counted_free(m, x->u.str.p);
    else
        deque_clear(m, x->u.list);
    counted_free(m, x);
}

/* Replace the string of 'x' with 'copy' (len bytes, counted here). */
static void set_string(kv_memory *m, kv_node *x, char *copy, size_t len)
{
    counted_free(m, x->u.str.p);
    m->bytes += heap_size(copy);
    x->u.str = (kv_buf){copy, len};
}

/* Insert a new, empty node of 'kind' at 'key', which must not exist yet,
 * after the nodes lookup_at() put in 'update' (nothing changed since).
 * Returns NULL on OOM. */
static kv_node *insert_at(kv_memory *m, kv_node **update, const char *key, size_t klen,
                          int kind)
{
    kv_node *x;
    int level = random_level(m);
    char *kcopy;

    size_t size = sizeof(*x) + (size_t)level * sizeof(kv_node *) + klen + 1, at = size;
    if (kind != KV_KIND_STRING) {
        at = (size + _Alignof(kv_deque) - 1) / _Alignof(kv_deque) * _Alignof(kv_deque);
        size = at + sizeof(kv_deque);
    }
    if (klen > UINT32_MAX)
        return NULL;
    x = calloc(1, size);
    if (!x)
        return NULL;
    m->bytes += heap_size(x);
    x->klen = (uint32_t)klen;
    x->kind = (unsigned char)kind;
    x->level = (unsigned char)level;
    kcopy = node_key(x);
    memcpy(kcopy, key, klen + 1);
    if (kind != KV_KIND_STRING)
        x->u.list = (kv_deque *)((char *)x + at);
    for (int i = m->level; i < level; i++)
        update[i] = m->head;
    if (level > m->level)
        m->level = level;
    for (int i = 0; i < level; i++) {
        x->next[i] = update[i]->next[i];
        update[i]->next[i] = x;
    }
    return x;
}

/* Insert a new, empty node of 'kind' at 'key', which must not exist yet.
 * Returns NULL on OOM. */
static kv_node *insert(kv_memory *m, const char *key, int kind)
{
    kv_node *update[KV_SKIP_MAXLEVEL];
    size_t klen = strlen(key);

    seek(m, key, klen, update);
    return insert_at(m, update, key, klen, kind);
}

/* Unlink and free the node at 'key', if any. */
static void remove_key(kv_memory *m, const char *key)
{
    kv_node *update[KV_SKIP_MAXLEVEL];
    size_t klen = strlen(key);
    kv_node *x = seek(m, key, klen, update);

    if (!x || key_cmp(node_key(x), x->klen, key, klen) != 0)
        return;
    for (int i = 0; i < x->level; i++)
        update[i]->next[i] = x->next[i];
    while (m->level > 1 && !m->head->next[m->level - 1])
        m->level--;
    node_free(m, x);
}

/* ------------------------------------------------------------------- lists */

static kv_ent *deque_at(kv_deque *d, size_t i)
{
    return &d->v[(d->head + i) % d->cap];
}

/* Make room for 'k' more items. Returns 0, or -1 on OOM (the deque unchanged). */
static int deque_reserve_n(kv_memory *m, kv_deque *d, size_t k)
{
    size_t cap = d->cap ? d->cap : KV_LIST_MINCAP;
    kv_ent *v;

    if (d->len + k <= d->cap)
        return 0;
    while (cap < d->len + k) {
        if (cap > SIZE_MAX / 2 / sizeof(kv_ent))
            return -1;
        cap *= 2;
    }
    if (!(v = malloc(cap * sizeof(kv_ent))))
        return -1;
    m->bytes += heap_size(v);
    /* Unroll the ring so the new buffer starts at index 0. */
    for (size_t i = 0; i < d->len; i++)
        v[i] = *deque_at(d, i);
    counted_free(m, d->v);
    d->v = v;
    d->cap = cap;
    d->head = 0;
    return 0;
}

/* Make room for one more item. Returns 0, or -1 on OOM (the deque unchanged). */
static int deque_reserve(kv_memory *m, kv_deque *d)
{
    return deque_reserve_n(m, d, 1);
}

/* Put 'e' (its bytes counted here) at the tail; room was reserved. */
static void deque_push(kv_memory *m, kv_deque *d, kv_ent e)
{
    m->bytes += heap_size(e.p);
    *deque_at(d, d->len++) = e;
}

/* Free the 'n' oldest items (n <= len). */
static void deque_drop(kv_memory *m, kv_deque *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        counted_free(m, deque_at(d, 0)->p);
        d->head = (d->head + 1) % d->cap;
        d->len--;
    }
}

/* ------------------------------------------------------------- completions */

static void run_pass(evutil_socket_t fd, short what, void *arg);
static void memory_destroy(kv_memory *m);

/* A completion with room for 'nitems' items and 'bytes' bytes of data. The data
 * area is returned in '*data'. Returns NULL on OOM. */
static kv_done *done_new(kv_cb cb, void *arg, size_t nitems, size_t bytes, char **data)
{
    size_t isize = nitems * sizeof(kv_item);
    kv_done *d;

    if (nitems > SIZE_MAX / sizeof(kv_item) ||
        bytes > SIZE_MAX - sizeof(kv_done) - isize ||
        !(d = calloc(1, sizeof(kv_done) + isize + bytes)))
        return NULL;
    d->cb = cb;
    d->arg = arg;
    if (nitems)
        d->res.items = (kv_item *)(d + 1);
    if (data)
        *data = (char *)(d + 1) + isize;
    return d;
}

/* Copy 'len' bytes to '*data' followed by a NUL; advance '*data'. Returns the copy. */
static const char *put_bytes(char **data, const char *p, size_t len)
{
    char *dst = *data;

    if (len)
        memcpy(dst, p, len);
    dst[len] = '\0';
    *data += len + 1;
    return dst;
}

/* Queue 'd' (NULL for a callback-less operation). 'status' is the operation's
 * result; a callback-less failure is reported here, since no one else will see it. */
static void defer(kv_memory *m, kv_done *d, const char *op, const char *key, int status)
{
    if (!d) {
        if (status < 0)
            kv_report(&m->base, KV_EV_FAILED, "memory: %s '%s': %s", op, key ? key : "",
                      kv_strerror(status));
        return;
    }
    d->res.status = status;
    d->next = NULL;
    if (!d->ncb)
        gettimeofday(&d->t0, NULL);
    *m->qtail = d;
    m->qtail = &d->next;
    /* Between passes the event is made active when the FIFO fills; during a pass
     * the pass re-activates it itself if callbacks queued more work. */
    if (m->q == d && !m->in_pass)
        event_active(m->ev, 0, 0);
}

/* Run the completions queued before this pass started, in order. Ones queued by
 * these callbacks wait for the next pass, so a callback that keeps issuing
 * operations cannot starve the loop. */
static void run_pass(evutil_socket_t fd, short what, void *arg)
{
    kv_memory *m = arg;

    m->running = m->q;
    m->q = NULL;
    m->qtail = &m->q;
    m->in_pass = 1;
    guard_enter(&m->guard);
    struct timeval now;
    gettimeofday(&now, NULL);
    while (m->running && !guard_doomed(&m->guard)) {
        kv_done *d = m->running;

        m->running = d->next;
        if (d->ncb) {
            d->ncb(d->topic, d->res.val, d->res.len, d->arg);
        } else {
            prom_hist_observe(&m->base.metrics.op_seconds,
                              (double)(now.tv_sec - d->t0.tv_sec) +
                                  (double)(now.tv_usec - d->t0.tv_usec) / 1e6);
            d->cb(&d->res, d->arg);
        }
        free(d);
    }
    m->in_pass = 0;
    if (guard_leave(&m->guard)) {
        memory_destroy(m);
        return;
    }
    if (m->q)
        event_active(m->ev, 0, 0);
}

/* --------------------------------------------------------------- operations */

static int valid_key(const char *key)
{
    return key && key[0] != '\0';
}

static int memory_get(kv_store *kv, const char *key, kv_cb cb, void *arg)
{
    kv_memory *m = (kv_memory *)kv;
    kv_done *d = NULL;
    kv_node *x;
    char *data;
    int status = KV_OK;

    if (!valid_key(key))
        return KV_EINVAL;
    x = lookup(m, key);
    if (!x)
        status = KV_ENOTFOUND;
    else if (x->kind != KV_KIND_STRING)
        status = KV_ETYPE;
    if (cb) {
        size_t len = status == KV_OK ? x->u.str.len : 0;

        if (!(d = done_new(cb, arg, 0, status == KV_OK ? len + 1 : 0, &data)))
            return KV_ENOMEM;
        if (status == KV_OK) {
            d->res.val = put_bytes(&data, x->u.str.p, len);
            d->res.len = len;
        }
    }
    defer(m, d, "get", key, status);
    return 0;
}

static int memory_set(kv_store *kv, const char *key, const char *val, size_t len,
                      kv_cb cb, void *arg)
{
    kv_memory *m = (kv_memory *)kv;
    kv_done *d = NULL;
    kv_node *x, *update[KV_SKIP_MAXLEVEL];
    char *copy;

    if (!valid_key(key) || (!val && len) || len == SIZE_MAX)
        return KV_EINVAL;
    size_t klen = strlen(key);
    if (cb && !(d = done_new(cb, arg, 0, 0, NULL)))
        return KV_ENOMEM;
    /* One walk of the list: the session archive sets two new keys for
     * every stream that opens. */
    x = lookup_at(m, key, klen, update);
    if (x && x->kind != KV_KIND_STRING) {
        defer(m, d, "set", key, KV_ETYPE);
        return 0;
    }
    if (!(copy = memdup_nul(val, len)))
        goto oom;
    if (!x && !(x = insert_at(m, update, key, klen, KV_KIND_STRING))) {
        free(copy);
        goto oom;
    }
    set_string(m, x, copy, len);
    defer(m, d, "set", key, KV_OK);
    return 0;

oom:
    free(d);
    return KV_ENOMEM;
}

static int memory_del(kv_store *kv, const char *key, kv_cb cb, void *arg)
{
    kv_memory *m = (kv_memory *)kv;
    kv_done *d = NULL;

    if (!valid_key(key))
        return KV_EINVAL;
    if (cb && !(d = done_new(cb, arg, 0, 0, NULL)))
        return KV_ENOMEM;
    remove_key(m, key);
    defer(m, d, "del", key, KV_OK);
    return 0;
}

/* Whether 'x' is a string key directly in the table 'table' (tlen bytes, ending
 * in '/'). '*deeper' is set to the length of the deeper table's prefix when the
 * key lives below 'table' instead, 0 otherwise. */
static int scan_match(const kv_node *x, const char *table, size_t tlen, size_t *deeper)
{
    const char *slash;

    *deeper = 0;
    slash = memchr(node_key(x) + tlen, '/', x->klen - tlen);
    if (slash) {
        *deeper = (size_t)(slash - node_key(x)) + 1;
        return 0;
    }
    return x->kind == KV_KIND_STRING;
}

static int has_prefix(const kv_node *x, const char *table, size_t tlen)
{
    return x->klen >= tlen && memcmp(node_key(x), table, tlen) == 0;
}

/* The first node after every key that starts with the deeper table
 * node_key(x)[0..plen) (whose last byte is '/'): seek to that prefix with its '/'
 * bumped to '0', the next byte value. Skips a whole subtree in O(log n). */
static kv_node *skip_deeper(kv_memory *m, const kv_node *x, size_t plen, char *buf)
{
    memcpy(buf, node_key(x), plen);
    buf[plen - 1] = '/' + 1;
    return seek(m, buf, plen, NULL);
}

/* Whether 'table' holds a key of its own (deeper tables aside). -1 on OOM. */
static int table_has_key(kv_memory *m, const char *table)
{
    size_t tlen = strlen(table), deeper;
    kv_node *x = seek(m, table, tlen, NULL);
    char *buf = NULL;
    int found = 0;
    while (x && has_prefix(x, table, tlen) && !found) {
        if ((found = scan_match(x, table, tlen, &deeper)))
            break;
        if (deeper) {
            char *nb = realloc(buf, deeper + 1);
            if (!nb) {
                free(buf);
                return -1;
            }
            x = skip_deeper(m, x, deeper, buf = nb);
        } else {
            x = x->next[0];
        }
    }
    free(buf);
    return found;
}

static int memory_scan(kv_store *kv, const char *table, kv_cb cb, void *arg)
{
    kv_memory *m = (kv_memory *)kv;
    size_t tlen, n = 0, bytes = 0, deeper, maxk = 0;
    kv_done *d;
    kv_node *x;
    char *data, *buf;

    if (!table || !(tlen = strlen(table)) || table[tlen - 1] != '/')
        return KV_EINVAL;
    if (!cb)
        return 0; /* nothing to change, nothing to report */
    for (x = seek(m, table, tlen, NULL); x && has_prefix(x, table, tlen); x = x->next[0])
        if (x->klen > maxk)
            maxk = x->klen;
    if (!(buf = malloc(maxk + 1)))
        return KV_ENOMEM;
    /* Two walks: size the completion, then fill it. */
    for (x = seek(m, table, tlen, NULL); x && has_prefix(x, table, tlen);) {
        if (scan_match(x, table, tlen, &deeper)) {
            n++;
            bytes += x->klen + 1 + x->u.str.len + 1;
        }
        x = deeper ? skip_deeper(m, x, deeper, buf) : x->next[0];
    }
    if (!(d = done_new(cb, arg, n, bytes, &data))) {
        free(buf);
        return KV_ENOMEM;
    }
    kv_item *items = (kv_item *)d->res.items;
    for (x = seek(m, table, tlen, NULL); x && has_prefix(x, table, tlen);) {
        if (scan_match(x, table, tlen, &deeper)) {
            kv_item *it = &items[d->res.n++];

            it->key = put_bytes(&data, node_key(x), x->klen);
            it->klen = x->klen;
            it->val = put_bytes(&data, x->u.str.p, x->u.str.len);
            it->vlen = x->u.str.len;
        }
        x = deeper ? skip_deeper(m, x, deeper, buf) : x->next[0];
    }
    free(buf);
    defer(m, d, "scan", table, KV_OK);
    return 0;
}

/* Parse all of p[0..len) as a decimal long long. Returns 0, or -1 if it is not
 * one (empty, stray bytes, out of range). */
static int parse_ll(const char *p, size_t len, long long *out)
{
    char tmp[32], *end;
    long long v;

    if (len == 0 || len >= sizeof(tmp))
        return -1;
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    /* strtoll() alone would accept leading blanks, '+' and a short read. */
    if (!(tmp[0] == '-' || (tmp[0] >= '0' && tmp[0] <= '9')) || strlen(tmp) != len)
        return -1;
    errno = 0;
    v = strtoll(tmp, &end, 10);
    if (errno || *end != '\0' || end == tmp)
        return -1;
    *out = v;
    return 0;
}

static int memory_incr(kv_store *kv, const char *key, long long by, kv_cb cb, void *arg)
{
    kv_memory *m = (kv_memory *)kv;
    kv_done *d = NULL;
    long long cur = 0, next;
    char text[32], *copy;
    kv_node *x;
    int tlen;

    if (!valid_key(key))
        return KV_EINVAL;
    if (cb && !(d = done_new(cb, arg, 0, 0, NULL)))
        return KV_ENOMEM;
    x = lookup(m, key);
    if (x && x->kind != KV_KIND_STRING) {
        defer(m, d, "incr", key, KV_ETYPE);
        return 0;
    }
    if ((x && parse_ll(x->u.str.p, x->u.str.len, &cur) < 0) ||
        __builtin_add_overflow(cur, by, &next)) {
        defer(m, d, "incr", key, KV_EINVAL);
        return 0;
    }
    tlen = (int)(fmt_i64(text, next) - text);
    text[tlen] = '\0';
    if (!(copy = strdup(text)))
        goto oom;
    if (!x && !(x = insert(m, key, KV_KIND_STRING))) {
        free(copy);
        goto oom;
    }
    set_string(m, x, copy, (size_t)tlen);
    if (d)
        d->res.num = next;
    defer(m, d, "incr", key, KV_OK);
    return 0;

oom:
    free(d);
    return KV_ENOMEM;
}

static int memory_list_push(kv_store *kv, const char *key, const char *val, size_t len,
                            size_t max, kv_cb cb, void *arg)
{
    kv_memory *m = (kv_memory *)kv;
    kv_done *d = NULL;
    size_t dropped = 0;
    kv_node *x;
    char *copy;

    if (!valid_key(key) || (!val && len) || len == SIZE_MAX)
        return KV_EINVAL;
    if (cb && !(d = done_new(cb, arg, 0, 0, NULL)))
        return KV_ENOMEM;
    x = lookup(m, key);
    if (x && x->kind != KV_KIND_LIST) {
        defer(m, d, "list_push", key, KV_ETYPE);
        return 0;
    }
    if (!(copy = memdup_nul(val, len)))
        goto oom;
    if (!x && !(x = insert(m, key, KV_KIND_LIST)))
        goto oom_copy;
    if (deque_reserve(m, x->u.list) < 0) {
        if (x->u.list->len == 0)
            remove_key(m, key); /* do not leave the empty list just created */
        goto oom_copy;
    }
    deque_push(m, x->u.list, (kv_ent){copy, len, 0, 0});
    if (max > 0 && x->u.list->len > max) {
        dropped = x->u.list->len - max;
        deque_drop(m, x->u.list, dropped);
    }
    if (d)
        d->res.num = (long long)dropped;
    defer(m, d, "list_push", key, KV_OK);
    return 0;

oom_copy:
    free(copy);
oom:
    free(d);
    return KV_ENOMEM;
}

static int memory_list_range(kv_store *kv, const char *key, size_t start, size_t count,
                             kv_cb cb, void *arg)
{
    kv_memory *m = (kv_memory *)kv;
    size_t n = 0, bytes = 0;
    kv_deque *l = NULL;
    kv_done *d;
    kv_node *x;
    char *data;

    if (!valid_key(key))
        return KV_EINVAL;
    if (!cb)
        return 0;
    x = lookup(m, key);
    if (x && x->kind != KV_KIND_LIST) {
        if (!(d = done_new(cb, arg, 0, 0, NULL)))
            return KV_ENOMEM;
        defer(m, d, "list_range", key, KV_ETYPE);
        return 0;
    }
    if (x && start < x->u.list->len) {
        l = x->u.list;
        n = l->len - start < count ? l->len - start : count;
        for (size_t i = 0; i < n; i++)
            bytes += deque_at(l, start + i)->len + 1;
    }
    if (!(d = done_new(cb, arg, n, bytes, &data)))
        return KV_ENOMEM;
    kv_item *items = (kv_item *)d->res.items;
    for (size_t i = 0; i < n; i++) {
        kv_ent *b = deque_at(l, start + i);

        items[i].val = put_bytes(&data, b->p, b->len);
        items[i].vlen = b->len;
    }
    d->res.n = n;
    defer(m, d, "list_range", key, KV_OK);
    return 0;
}

static int memory_list_trim(kv_store *kv, const char *key, size_t n, kv_cb cb, void *arg)
{
    kv_memory *m = (kv_memory *)kv;
    kv_done *d = NULL;
    size_t left = 0;
    kv_node *x;

    if (!valid_key(key))
        return KV_EINVAL;
    if (cb && !(d = done_new(cb, arg, 0, 0, NULL)))
        return KV_ENOMEM;
    x = lookup(m, key);
    if (x && x->kind != KV_KIND_LIST) {
        defer(m, d, "list_trim", key, KV_ETYPE);
        return 0;
    }
    if (x) {
        deque_drop(m, x->u.list, n < x->u.list->len ? n : x->u.list->len);
        left = x->u.list->len;
        if (left == 0)
            remove_key(m, key); /* as in Redis, an empty list is no key at all */
    }
    if (d)
        d->res.num = (long long)left;
    defer(m, d, "list_trim", key, KV_OK);
    return 0;
}

static int memory_list_len(kv_store *kv, const char *key, kv_cb cb, void *arg)
{
    kv_memory *m = (kv_memory *)kv;
    kv_done *d;
    kv_node *x;

    if (!valid_key(key))
        return KV_EINVAL;
    if (!cb)
        return 0;
    if (!(d = done_new(cb, arg, 0, 0, NULL)))
        return KV_ENOMEM;
    x = lookup(m, key);
    if (x && x->kind != KV_KIND_LIST) {
        defer(m, d, "list_len", key, KV_ETYPE);
        return 0;
    }
    d->res.num = x ? (long long)x->u.list->len : 0;
    defer(m, d, "list_len", key, KV_OK);
    return 0;
}

/* Nothing is buffered: a flush is an ordinary completion behind the others. */
static int memory_flush(kv_store *kv, kv_cb cb, void *arg)
{
    kv_memory *m = (kv_memory *)kv;
    kv_done *d;

    if (!cb)
        return 0;
    if (!(d = done_new(cb, arg, 0, 0, NULL)))
        return KV_ENOMEM;
    defer(m, d, "flush", NULL, KV_OK);
    return 0;
}

/* ----------------------------------------------------- notifications, append */

static int valid_topic(const char *topic)
{
    return topic && topic[0] != '\0';
}

/* A completion delivering 'data' on 'topic' to the subscription, or NULL when
 * there is none for this topic. '*oom' is set when it could not be allocated. */
static kv_done *note_new(kv_memory *m, const char *topic, const char *data, size_t len,
                         int *oom)
{
    size_t tlen = strlen(topic);
    kv_done *d;
    char *p;

    *oom = 0;
    if (!m->sub_cb || tlen < m->sub_plen || memcmp(topic, m->sub_prefix, m->sub_plen))
        return NULL;
    if (len > SIZE_MAX - tlen - 2 ||
        !(d = done_new(NULL, m->sub_arg, 0, tlen + len + 2, &p))) {
        *oom = 1;
        return NULL;
    }
    d->ncb = m->sub_cb;
    d->topic = put_bytes(&p, topic, tlen);
    d->res.val = put_bytes(&p, data, len);
    d->res.len = len;
    return d;
}

static int memory_subscribe(kv_store *kv, const char *prefix, kv_notify_cb cb, void *arg)
{
    kv_memory *m = (kv_memory *)kv;

    if (!prefix || !cb || m->sub_cb)
        return KV_EINVAL;
    if (!(m->sub_prefix = strdup(prefix)))
        return KV_ENOMEM;
    m->sub_plen = strlen(prefix);
    m->sub_cb = cb;
    m->sub_arg = arg;
    return 0;
}

static int memory_subscribed(kv_store *kv)
{
    return ((kv_memory *)kv)->sub_cb != NULL;
}

static int memory_notify(kv_store *kv, const char *topic, const char *data, size_t len,
                         kv_cb cb, void *arg)
{
    kv_memory *m = (kv_memory *)kv;
    kv_done *d = NULL, *note;
    int oom;

    if (!valid_topic(topic) || (!data && len))
        return KV_EINVAL;
    note = note_new(m, topic, data ? data : "", len, &oom);
    if (oom || (cb && !(d = done_new(cb, arg, 0, 0, NULL)))) {
        free(note);
        return KV_ENOMEM;
    }
    if (note)
        defer(m, note, "notify", topic, KV_OK);
    defer(m, d, "notify", topic, KV_OK);
    return 0;
}

/* How many times lists[i] is named in lists[0..n). */
static size_t times_named(const char *const *lists, size_t n, size_t i)
{
    size_t k = 0;

    for (size_t j = 0; j < n; j++)
        k += strcmp(lists[j], lists[i]) == 0;
    return k;
}

/* Validate everything, then allocate everything (undoing it on OOM), then
 * change the data, which can no longer fail: an append is all or nothing. */
static int memory_append(kv_store *kv, const kv_append_args *a, kv_cb cb, void *arg)
{
    kv_memory *m = (kv_memory *)kv;
    kv_done *d = NULL, *note = NULL;
    kv_node *ctr, **nodes = NULL, *lg = NULL;
    char **copies = NULL, *text = NULL, *val = NULL, *logcopy = NULL, idtext[32];
    unsigned char *created = NULL;
    long long cur = 0, id;
    size_t n, vlen, keep;
    int status = KV_OK, idlen, oom, log_created = 0, readers = 1;

    if (!a || !valid_key(a->counter) || (!a->head && a->head_len) ||
        (!a->tail && a->tail_len) || (!a->mid && a->mid_len) ||
        (a->nlists && !a->lists) || (a->topic && !valid_topic(a->topic)) ||
        (a->log && !valid_key(a->log)) || a->floor == LLONG_MAX ||
        (a->log_readers && (!a->log || !kv_valid_table(a->log_readers))))
        return KV_EINVAL;
    if (a->log_readers && (readers = table_has_key(m, a->log_readers)) < 0)
        return KV_ENOMEM;
    /* One node, gone with this process: entries kept only for other
     * processes (log_idle_remote) would never be read. */
    keep = readers ? a->log_max : a->log_idle_remote ? 0 : a->log_idle;
    n = a->nlists;
    for (size_t i = 0; i < n; i++)
        if (!valid_key(a->lists[i]))
            return KV_EINVAL;
    if (a->head_len > SIZE_MAX / 4 - 64 || a->tail_len > SIZE_MAX / 4 - 64 ||
        a->mid_len > SIZE_MAX / 4 - 64)
        return KV_EINVAL;
    if (cb && !(d = done_new(cb, arg, 0, 0, NULL)))
        return KV_ENOMEM;

    /* Validate: the counter and the lists. */
    ctr = lookup(m, a->counter);
    if (ctr && ctr->kind != KV_KIND_STRING)
        status = KV_ETYPE;
    else if (ctr && parse_ll(ctr->u.str.p, ctr->u.str.len, &cur) < 0)
        status = KV_EINVAL;
    else if (cur < a->floor)
        cur = a->floor;
    if (status == KV_OK && __builtin_add_overflow(cur, 1, &id))
        status = KV_EINVAL;
    for (size_t i = 0; status == KV_OK && i < n; i++) {
        kv_node *x = lookup(m, a->lists[i]);

        /* The counter is a string: naming it as a list too mixes kinds. */
        if ((x && x->kind != KV_KIND_LIST) || strcmp(a->lists[i], a->counter) == 0 ||
            (a->log && strcmp(a->lists[i], a->log) == 0))
            status = KV_ETYPE;
    }
    if (status == KV_OK && a->log) {
        lg = lookup(m, a->log);
        if ((lg && lg->kind != KV_KIND_LOG) || strcmp(a->log, a->counter) == 0)
            status = KV_ETYPE;
    }
    if (status != KV_OK) {
        defer(m, d, "append", a->counter, status);
        return 0;
    }

    /* Allocate: the value, one copy per list, the counter's text, the lists. */
    idlen = (int)(fmt_i64(idtext, id) - idtext);
    idtext[idlen] = '\0';
    char postext[32];
    size_t poslen = 0;
    if (a->log && a->mid)
        poslen = (size_t)(fmt_i64(postext, (lg ? lg->u.list->end_pos : 0) + 1) - postext);
    vlen = a->head_len + (size_t)idlen + (poslen ? a->mid_len + poslen : 0) + a->tail_len;
    if (!(val = malloc(vlen + 1)) || !(text = strdup(idtext)))
        goto oom;
    char *v = val;
    if (a->head_len)
        v = (char *)memcpy(v, a->head, a->head_len) + a->head_len;
    v = (char *)memcpy(v, idtext, (size_t)idlen) + idlen;
    if (poslen) {
        if (a->mid_len)
            v = (char *)memcpy(v, a->mid, a->mid_len) + a->mid_len;
        v = (char *)memcpy(v, postext, poslen) + poslen;
    }
    if (a->tail_len)
        memcpy(v, a->tail, a->tail_len);
    val[vlen] = '\0';
    if (n && (!(copies = calloc(n, sizeof(*copies))) ||
              !(nodes = calloc(n, sizeof(*nodes))) || !(created = calloc(n, 1))))
        goto oom;
    for (size_t i = 0; i < n; i++)
        if (!(copies[i] = memdup_nul(val, vlen)))
            goto oom;
    for (size_t i = 0; i < n; i++) {
        if (!(nodes[i] = lookup(m, a->lists[i]))) {
            if (!(nodes[i] = insert(m, a->lists[i], KV_KIND_LIST)))
                goto oom;
            created[i] = 1;
        }
        if (deque_reserve_n(m, nodes[i]->u.list, times_named(a->lists, n, i)) < 0)
            goto oom;
    }
    if (a->log) {
        /* An entry kept by no bound is never made (the end still moves). */
        if ((readers || keep > 0) && !(logcopy = memdup_nul(val, vlen)))
            goto oom;
        if (!lg) {
            if (!(lg = insert(m, a->log, KV_KIND_LOG)))
                goto oom;
            log_created = 1;
        }
        if (deque_reserve(m, lg->u.list) < 0)
            goto oom;
    }
    if (a->topic && (note = note_new(m, a->topic, val, vlen, &oom), oom))
        goto oom;

    /* Apply. */
    if (!ctr && !(ctr = insert(m, a->counter, KV_KIND_STRING)))
        goto oom;
    set_string(m, ctr, text, (size_t)idlen);
    for (size_t i = 0; i < n; i++) {
        kv_deque *l = nodes[i]->u.list;
        size_t max = a->max ? a->max[i] : 0;

        deque_push(m, l, (kv_ent){copies[i], vlen, 0, 0});
        if (max > 0 && l->len > max)
            deque_drop(m, l, l->len - max);
    }
    if (lg) {
        kv_deque *l = lg->u.list;

        l->end_id = id;
        l->end_pos++;
        if (logcopy)
            deque_push(m, l, (kv_ent){logcopy, vlen, id, l->end_pos});
        if ((keep > 0 || !readers) && l->len > keep)
            deque_drop(m, l, l->len - keep);
    }
    if (note)
        defer(m, note, "append", a->topic, KV_OK);
    if (d) {
        d->res.num = d->res.id = id;
        d->res.pos = lg ? lg->u.list->end_pos : 0;
    }
    defer(m, d, "append", a->counter, KV_OK);
    free(copies);
    free(nodes);
    free(created);
    free(val);
    return 0;

oom:
    for (size_t i = 0; nodes && i < n; i++)
        if (created[i] && nodes[i] && nodes[i]->u.list->len == 0)
            remove_key(m, a->lists[i]); /* do not leave the empty lists created */
    if (log_created)
        remove_key(m, a->log);
    free(logcopy);
    for (size_t i = 0; copies && i < n; i++)
        free(copies[i]);
    free(copies);
    free(nodes);
    free(created);
    free(val);
    free(text);
    free(note);
    free(d);
    return KV_ENOMEM;
}

/* ------------------------------------------------------------------- logs */

/* The log at 'key' in '*l' (NULL if missing). KV_ETYPE if 'key' holds another
 * kind. */
static int find_log(kv_memory *m, const char *key, kv_deque **l)
{
    kv_node *x = lookup(m, key);

    *l = NULL;
    if (x && x->kind != KV_KIND_LOG)
        return KV_ETYPE;
    if (x)
        *l = x->u.list;
    return KV_OK;
}

/* Index of the first entry with an id above 'after' (len if none): ids
 * increase along a log. */
static size_t log_after(kv_deque *l, long long after)
{
    size_t lo = 0, hi = l->len;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (deque_at(l, mid)->id <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int memory_log_range(kv_store *kv, const char *key, long long after, size_t count,
                            int newest, kv_cb cb, void *arg)
{
    kv_memory *m = (kv_memory *)kv;
    size_t from = 0, n = 0, bytes = 0;
    kv_deque *l;
    kv_done *d;
    char *data;
    int status;

    if (!valid_key(key))
        return KV_EINVAL;
    if (!cb)
        return 0;
    status = find_log(m, key, &l);
    if (l) {
        from = log_after(l, after);
        n = l->len - from < count ? l->len - from : count;
        if (newest)
            from = l->len - n;
        for (size_t i = 0; i < n; i++)
            bytes += deque_at(l, from + i)->len + 1;
    }
    if (!(d = done_new(cb, arg, n, bytes, &data)))
        return KV_ENOMEM;
    kv_item *items = (kv_item *)d->res.items;
    for (size_t i = 0; i < n; i++) {
        kv_ent *e = deque_at(l, from + i);

        items[i].val = put_bytes(&data, e->p, e->len);
        items[i].vlen = e->len;
        items[i].id = e->id;
        items[i].pos = e->pos;
    }
    d->res.n = n;
    defer(m, d, "log_range", key, status);
    return 0;
}

static int memory_log_end(kv_store *kv, const char *key, kv_cb cb, void *arg)
{
    kv_memory *m = (kv_memory *)kv;
    kv_deque *l;
    kv_done *d;
    int status;

    if (!valid_key(key))
        return KV_EINVAL;
    if (!cb)
        return 0;
    if (!(d = done_new(cb, arg, 0, 0, NULL)))
        return KV_ENOMEM;
    status = find_log(m, key, &l);
    if (l) {
        d->res.id = l->end_id;
        d->res.num = l->end_pos;
    }
    defer(m, d, "log_end", key, status);
    return 0;
}

static int memory_log_trim(kv_store *kv, const char *key, size_t keep, kv_cb cb,
                           void *arg)
{
    kv_memory *m = (kv_memory *)kv;
    kv_done *d = NULL;
    kv_deque *l;
    int status;

    if (!valid_key(key))
        return KV_EINVAL;
    if (cb && !(d = done_new(cb, arg, 0, 0, NULL)))
        return KV_ENOMEM;
    status = find_log(m, key, &l);
    if (l && l->len > keep) /* the end stays: the node stays */
        deque_drop(m, l, l->len - keep);
    defer(m, d, "log_trim", key, status);
    return 0;
}

static int memory_log_mark(kv_store *kv, const char *log, const char *key, kv_cb cb,
                           void *arg)
{
    kv_memory *m = (kv_memory *)kv;
    kv_done *d = NULL;
    kv_deque *l;
    kv_node *x;
    char text[48], *copy;
    int status, len;

    if (!valid_key(log) || !valid_key(key) || strcmp(log, key) == 0)
        return KV_EINVAL;
    if (cb && !(d = done_new(cb, arg, 0, 0, NULL)))
        return KV_ENOMEM;
    x = lookup(m, key);
    if ((status = find_log(m, log, &l)) < 0 || (x && x->kind != KV_KIND_STRING)) {
        defer(m, d, "log_mark", key, status < 0 ? status : KV_ETYPE);
        return 0;
    }
    char *p = fmt_i64(text, l ? l->end_id : 0);
    *p++ = ' ';
    p = fmt_i64(p, l ? l->end_pos : 0);
    len = (int)(p - text);
    if (!(copy = memdup_nul(text, (size_t)len)) ||
        (!x && !(x = insert(m, key, KV_KIND_STRING)))) {
        free(copy);
        free(d);
        return KV_ENOMEM;
    }
    set_string(m, x, copy, (size_t)len);
    if (d) {
        d->res.id = l ? l->end_id : 0;
        d->res.num = l ? l->end_pos : 0;
    }
    defer(m, d, "log_mark", key, KV_OK);
    return 0;
}

static int memory_del_if(kv_store *kv, const char *key, const char *val, size_t len,
                         kv_cb cb, void *arg)
{
    kv_memory *m = (kv_memory *)kv;
    kv_done *d = NULL;
    kv_node *x;
    int status = KV_OK;

    if (!valid_key(key) || (!val && len))
        return KV_EINVAL;
    if (cb && !(d = done_new(cb, arg, 0, 0, NULL)))
        return KV_ENOMEM;
    x = lookup(m, key);
    if (x && x->kind != KV_KIND_STRING) {
        status = KV_ETYPE;
    } else if (x && x->u.str.len == len && (!len || memcmp(x->u.str.p, val, len) == 0)) {
        remove_key(m, key);
        if (d)
            d->res.num = 1;
    }
    defer(m, d, "del_if", key, status);
    return 0;
}

static int memory_set_if(kv_store *kv, const char *key, const char *expect,
                         const char *val, kv_cb cb, void *arg)
{
    kv_memory *m = (kv_memory *)kv;
    kv_done *d = NULL;
    kv_node *x;
    size_t elen = expect ? strlen(expect) : 0;
    char *copy = NULL;

    if (!valid_key(key) || !expect || !val)
        return KV_EINVAL;
    if (cb && !(d = done_new(cb, arg, 0, 0, NULL)))
        return KV_ENOMEM;
    x = lookup(m, key);
    if (x && x->kind != KV_KIND_STRING) {
        defer(m, d, "set_if", key, KV_ETYPE);
        return 0;
    }
    if (x ? x->u.str.len == elen && memcmp(x->u.str.p, expect, elen) == 0 : elen == 0) {
        if (!(copy = memdup_nul(val, strlen(val))) ||
            (!x && !(x = insert(m, key, KV_KIND_STRING)))) {
            free(copy);
            free(d);
            return KV_ENOMEM;
        }
        set_string(m, x, copy, strlen(val));
        if (d)
            d->res.num = 1;
    }
    defer(m, d, "set_if", key, KV_OK);
    return 0;
}

static void free_done_list(kv_done *d)
{
    while (d) {
        kv_done *next = d->next;
        free(d);
        d = next;
    }
}

static void memory_destroy(kv_memory *m)
{
    kv_node *x, *next;

    if (m->ev)
        event_free(m->ev);
    free_done_list(m->running);
    free_done_list(m->q);
    if (m->head) {
        for (x = m->head->next[0]; x; x = next) {
            next = x->next[0];
            node_free(m, x);
        }
        free(m->head);
    }
    free(m->sub_prefix);
    free(m);
}

/* Pending callbacks are dropped. Called from inside one of this store's
 * callbacks, the store is only marked and is freed once that callback returns. */
static void memory_free(kv_store *kv)
{
    kv_memory *m = (kv_memory *)kv;

    if (guard_free(&m->guard))
        memory_destroy(m);
}

static size_t memory_used(kv_store *kv)
{
    return ((kv_memory *)kv)->bytes;
}

static const kv_ops kv_memory_ops = {
    .name = "memory",
    .get = memory_get,
    .set = memory_set,
    .del = memory_del,
    .scan = memory_scan,
    .incr = memory_incr,
    .list_push = memory_list_push,
    .list_range = memory_list_range,
    .list_trim = memory_list_trim,
    .list_len = memory_list_len,
    .flush = memory_flush,
    .append = memory_append,
    .log_range = memory_log_range,
    .log_end = memory_log_end,
    .log_trim = memory_log_trim,
    .log_mark = memory_log_mark,
    .del_if = memory_del_if,
    .set_if = memory_set_if,
    .subscribe = memory_subscribe,
    .notify = memory_notify,
    .subscribed = memory_subscribed,
    .used = memory_used,
    .free = memory_free,
};

kv_store *kv_memory_new(struct event_base *base)
{
    kv_memory *m = calloc(1, sizeof(*m));

    if (!m)
        return NULL;
    m->base.ops = &kv_memory_ops;
    m->base.base = base;
    kv_metrics_init(&m->base);
    m->level = 1;
    m->rng = 0x9e3779b97f4a7c15ULL;
    m->qtail = &m->q;
    if (!(m->head = calloc(1, sizeof(kv_node) + KV_SKIP_MAXLEVEL * sizeof(kv_node *))))
        goto err;
    m->head->level = KV_SKIP_MAXLEVEL;
    if (!(m->ev = event_new(base, -1, 0, run_pass, m)))
        goto err;
    return &m->base;

err:
    memory_destroy(m);
    return NULL;
}
