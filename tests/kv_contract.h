/* kv_contract.h - the behaviour every kv store must show, as one TAP test body.
 *
 * kv_contract_run() drives a store only through the kv.h wrappers, so the same
 * tests run against the in-memory store and the Redis store. It uses the tables
 * "c/", "n/", "n/a/", "e/", "l/", "t/" and "o/" and deletes its keys when done.
 *
 * kv_contract_nodes(a, b) checks what several nodes sharing a store need:
 * kv_append(), kv_subscribe() and kv_notify(). 'a' and 'b' are two stores on the
 * same data (two Redis stores on one Redis: two nodes), or the same store twice
 * (the memory store, a cluster of one). It subscribes each to "x/", with
 * kvc_sub_a and kvc_sub_b recording what they get (both kvc_sub_a when a == b),
 * leaves the subscriptions in place for later tests and deletes its keys in the
 * table "x/". It also checks logs, appended to from both nodes. Include it
 * once, after tap.h, in a test program.
 */
#ifndef KV_CONTRACT_H
#define KV_CONTRACT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "kv/kv.h"

#define KVC_MAXITEMS 16
#define KVC_MAXVAL 64

/* What one callback saw, copied out of the borrowed kv_result. */
typedef struct kvc_rec {
    int calls;
    int early; /* it ran before the call that issued it returned */
    int order; /* position among all completions of this test body */
    int status;
    long long num, id, pos;
    char val[KVC_MAXVAL];
    size_t len;
    size_t n;
    char key[KVC_MAXITEMS][KVC_MAXVAL];
    char item[KVC_MAXITEMS][KVC_MAXVAL];
    size_t ilen[KVC_MAXITEMS];
    int key_null[KVC_MAXITEMS];
    long long iid[KVC_MAXITEMS], ipos[KVC_MAXITEMS]; /* log entries */
} kvc_rec;

static int kvc_issuing; /* set while a kv_* call is on the stack */
static int kvc_completed;
static int kvc_timed_out;

static void kvc_copy(char *dst, const char *src, size_t len)
{
    if (src && len)
        memcpy(dst, src, len < KVC_MAXVAL ? len : KVC_MAXVAL);
}

static void kvc_record(const kv_result *res, void *arg)
{
    kvc_rec *r = arg;

    r->calls++;
    r->early |= kvc_issuing;
    r->order = ++kvc_completed;
    r->status = res->status;
    r->num = res->num;
    r->id = res->id;
    r->pos = res->pos;
    r->len = res->len;
    kvc_copy(r->val, res->val, res->len);
    r->n = res->n;
    for (size_t i = 0; i < res->n && i < KVC_MAXITEMS; i++) {
        const kv_item *it = &res->items[i];

        r->key_null[i] = it->key == NULL;
        if (it->key && it->klen < KVC_MAXVAL) {
            memcpy(r->key[i], it->key, it->klen);
            r->key[i][it->klen] = '\0';
        }
        kvc_copy(r->item[i], it->val, it->vlen);
        r->ilen[i] = it->vlen;
        r->iid[i] = it->id;
        r->ipos[i] = it->pos;
    }
}

/* Issue one operation with 'kvc_issuing' set around it; gives its return code. */
#define KVC_CALL(expr)                                                                   \
    (kvc_issuing = 1, kvc_issuing_rc = (expr), kvc_issuing = 0, kvc_issuing_rc)
static int kvc_issuing_rc;

static void kvc_timeout(evutil_socket_t fd, short what, void *arg)
{
    kvc_timed_out = 1;
}

/* Run the loop until pred(arg) holds, for at most 5 seconds. */
static void kvc_until(struct event_base *base, int (*pred)(const void *), const void *arg)
{
    struct timeval tv = {5, 0};
    struct event *timer = evtimer_new(base, kvc_timeout, NULL);

    kvc_timed_out = 0;
    if (timer)
        evtimer_add(timer, &tv);
    for (int i = 0; i < 1000000 && !pred(arg) && !kvc_timed_out; i++)
        event_base_loop(base, EVLOOP_ONCE);
    if (timer)
        event_free(timer);
}

typedef struct kvc_count {
    const int *counter;
    int want;
} kvc_count;

static int kvc_reached(const void *arg)
{
    const kvc_count *c = arg;

    return *c->counter >= c->want;
}

/* Run the loop until '*counter' reaches 'want', for at most 5 seconds. */
static void kvc_wait_count(struct event_base *base, const int *counter, int want)
{
    kvc_count c = {counter, want};

    kvc_until(base, kvc_reached, &c);
}

static int kvc_live(const void *kv)
{
    return kv_subscribed((kv_store *)kv);
}

static int kvc_down(const void *kv)
{
    return !kv_subscribed((kv_store *)kv);
}

/* Run the loop until 'kvc_completed' reaches 'want', for at most 5 seconds. */
static void kvc_wait(struct event_base *base, int want)
{
    struct timeval tv = {5, 0};
    struct event *timer = evtimer_new(base, kvc_timeout, NULL);

    kvc_timed_out = 0;
    if (timer)
        evtimer_add(timer, &tv);
    for (int i = 0; i < 100000 && kvc_completed < want && !kvc_timed_out; i++)
        event_base_loop(base, EVLOOP_ONCE);
    if (timer)
        event_free(timer);
}

/* Issue, wait for this one completion, return it in '*r' (zeroed first). */
#define KVC_RUN(base, r, expr)                                                           \
    do {                                                                                 \
        int want_ = kvc_completed + 1;                                                   \
        memset((r), 0, sizeof(*(r)));                                                    \
        ok(KVC_CALL(expr) == 0, "%s starts", #expr);                                     \
        kvc_wait((base), want_);                                                         \
    } while (0)

/* Wait until every operation issued so far has completed: a flush runs last. */
static void kvc_drain(kv_store *kv, struct event_base *base)
{
    kvc_rec fl;

    KVC_RUN(base, &fl, kv_flush(kv, kvc_record, &fl));
}

static int kvc_is(const kvc_rec *r, int status)
{
    return r->calls == 1 && !r->early && r->status == status;
}

/* ------------------------------------------------------------------ strings */

static void kvc_strings(kv_store *kv, struct event_base *base)
{
    kvc_rec r;
    static const char bin[] = {'a', '\0', 'b', '\xff', '\0'};

    KVC_RUN(base, &r, kv_get(kv, "c/missing", kvc_record, &r));
    ok(kvc_is(&r, KV_ENOTFOUND), "get of a missing key: KV_ENOTFOUND (%d)", r.status);
    ok(r.val == NULL || r.len == 0, "get of a missing key gives no value");

    KVC_RUN(base, &r, kv_set(kv, "c/bin", bin, sizeof(bin), kvc_record, &r));
    ok(kvc_is(&r, KV_OK), "set binary value");
    KVC_RUN(base, &r, kv_get(kv, "c/bin", kvc_record, &r));
    ok(kvc_is(&r, KV_OK), "get binary value");
    ok(r.len == sizeof(bin) && memcmp(r.val, bin, sizeof(bin)) == 0,
       "binary value with embedded NULs round-trips (len %zu)", r.len);

    KVC_RUN(base, &r, kv_set(kv, "c/bin", "xy", 2, kvc_record, &r));
    ok(kvc_is(&r, KV_OK), "set replaces");
    KVC_RUN(base, &r, kv_get(kv, "c/bin", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.len == 2 && memcmp(r.val, "xy", 2) == 0,
       "get sees the shorter replacement");

    KVC_RUN(base, &r, kv_set(kv, "c/empty", "", 0, kvc_record, &r));
    ok(kvc_is(&r, KV_OK), "set empty value");
    KVC_RUN(base, &r, kv_get(kv, "c/empty", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.len == 0, "empty value is found, length 0");

    KVC_RUN(base, &r, kv_del(kv, "c/bin", kvc_record, &r));
    ok(kvc_is(&r, KV_OK), "del of an existing key");
    KVC_RUN(base, &r, kv_get(kv, "c/bin", kvc_record, &r));
    ok(kvc_is(&r, KV_ENOTFOUND), "get after del: KV_ENOTFOUND");
    KVC_RUN(base, &r, kv_del(kv, "c/bin", kvc_record, &r));
    ok(kvc_is(&r, KV_OK), "del of a missing key succeeds");
    KVC_RUN(base, &r, kv_del(kv, "c/empty", kvc_record, &r));
    ok(kvc_is(&r, KV_OK), "del of the empty value");

    memset(&r, 0, sizeof(r));
    ok(kv_get(kv, "", kvc_record, &r) == KV_EINVAL, "get of an empty key: KV_EINVAL");
    ok(kv_set(kv, "", "v", 1, kvc_record, &r) == KV_EINVAL,
       "set of an empty key: KV_EINVAL");
    ok(kv_del(kv, "", kvc_record, &r) == KV_EINVAL, "del of an empty key: KV_EINVAL");
    ok(kv_incr(kv, "", 1, kvc_record, &r) == KV_EINVAL,
       "incr of an empty key: KV_EINVAL");
    kvc_drain(kv, base);
    ok(r.calls == 0, "a refused call runs no callback");

    /* NULL callback: the write still happens. */
    ok(kv_set(kv, "c/nocb", "v", 1, NULL, NULL) == 0, "set without a callback starts");
    KVC_RUN(base, &r, kv_get(kv, "c/nocb", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.len == 1 && r.val[0] == 'v',
       "a set without a callback is applied");
    ok(kv_del(kv, "c/nocb", NULL, NULL) == 0, "del without a callback starts");
    KVC_RUN(base, &r, kv_get(kv, "c/nocb", kvc_record, &r));
    ok(kvc_is(&r, KV_ENOTFOUND), "a del without a callback is applied");
}

static void kvc_incr(kv_store *kv, struct event_base *base)
{
    kvc_rec r;

    KVC_RUN(base, &r, kv_incr(kv, "c/ctr", 5, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 5, "incr of a missing key starts at 0 (%lld)",
       r.num);
    KVC_RUN(base, &r, kv_incr(kv, "c/ctr", -7, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == -2, "incr by a negative amount (%lld)", r.num);
    KVC_RUN(base, &r, kv_get(kv, "c/ctr", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.len == 2 && memcmp(r.val, "-2", 2) == 0,
       "the counter is stored as decimal text");
    KVC_RUN(base, &r, kv_set(kv, "c/ctr", "41", 2, kvc_record, &r));
    KVC_RUN(base, &r, kv_incr(kv, "c/ctr", 1, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 42, "incr of a set decimal string (%lld)", r.num);
    KVC_RUN(base, &r, kv_incr(kv, "c/ctr", 0, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 42, "incr by 0 reads the value");

    KVC_RUN(base, &r, kv_set(kv, "c/ctr", "abc", 3, kvc_record, &r));
    KVC_RUN(base, &r, kv_incr(kv, "c/ctr", 1, kvc_record, &r));
    ok(kvc_is(&r, KV_EINVAL), "incr of a non-integer: KV_EINVAL (%d)", r.status);
    KVC_RUN(base, &r, kv_get(kv, "c/ctr", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.len == 3 && memcmp(r.val, "abc", 3) == 0,
       "a failed incr leaves the value alone");
    KVC_RUN(base, &r, kv_del(kv, "c/ctr", kvc_record, &r));
}

/* -------------------------------------------------------------------- scan */

static void kvc_scan(kv_store *kv, struct event_base *base)
{
    static const char *const keys[] = {"c/b", "c/a/x", "n/a/1", "c/a", "c0", "cc/z"};
    kvc_rec r;

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        kv_set(kv, keys[i], keys[i], strlen(keys[i]), NULL, NULL);
    KVC_RUN(base, &r, kv_list_push(kv, "c/list", "x", 1, 0, kvc_record, &r));

    KVC_RUN(base, &r, kv_scan(kv, "c/", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.n == 2, "scan c/ finds its 2 string keys (n=%zu)", r.n);
    ok(r.n == 2 && strcmp(r.key[0], "c/a") == 0 && strcmp(r.key[1], "c/b") == 0,
       "scan c/ gives c/a, c/b in key order, no deeper table, no list");
    ok(r.n == 2 && r.ilen[0] == 3 && memcmp(r.item[0], "c/a", 3) == 0 && r.ilen[1] == 3 &&
           memcmp(r.item[1], "c/b", 3) == 0,
       "scan gives each key's value");

    KVC_RUN(base, &r, kv_scan(kv, "n/", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.n == 0, "scan n/ holds only a deeper table: n == 0");
    KVC_RUN(base, &r, kv_scan(kv, "n/a/", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.n == 1 && strcmp(r.key[0], "n/a/1") == 0,
       "scan n/a/ finds n/a/1");
    KVC_RUN(base, &r, kv_scan(kv, "c/a/", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.n == 1 && strcmp(r.key[0], "c/a/x") == 0,
       "scan c/a/ finds c/a/x");
    KVC_RUN(base, &r, kv_scan(kv, "e/", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.n == 0, "scan of an empty table: KV_OK, n == 0");

    memset(&r, 0, sizeof(r));
    ok(kv_scan(kv, "c", kvc_record, &r) == KV_EINVAL, "scan of a table without '/'");
    ok(kv_scan(kv, "", kvc_record, &r) == KV_EINVAL, "scan of an empty table name");
    kvc_drain(kv, base);
    ok(r.calls == 0, "a refused scan runs no callback");

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        kv_del(kv, keys[i], NULL, NULL);
    KVC_RUN(base, &r, kv_del(kv, "c/list", kvc_record, &r));
    KVC_RUN(base, &r, kv_scan(kv, "c/", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.n == 0, "scan after deleting every key: n == 0");
}

/* ------------------------------------------------------------------- lists */

static int kvc_items(const kvc_rec *r, const char *const *want, size_t n)
{
    if (r->n != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!r->key_null[i] || r->ilen[i] != strlen(want[i]) ||
            memcmp(r->item[i], want[i], r->ilen[i]) != 0)
            return 0;
    return 1;
}

static void kvc_lists(kv_store *kv, struct event_base *base)
{
    static const char *const abc[] = {"a", "b", "c"}, *const bc[] = {"b", "c"},
                             *const cd[] = {"c", "d"}, *const e[] = {"e"};
    static const char bin[] = {'\0', 'z', '\0'};
    kvc_rec r;

    KVC_RUN(base, &r, kv_list_len(kv, "l/x", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 0, "list_len of a missing key: 0");
    KVC_RUN(base, &r, kv_list_range(kv, "l/x", 0, 10, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.n == 0, "list_range of a missing key: KV_OK, n == 0");
    KVC_RUN(base, &r, kv_list_trim(kv, "l/x", 3, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 0, "list_trim of a missing key: 0 left");

    for (size_t i = 0; i < 3; i++) {
        KVC_RUN(base, &r, kv_list_push(kv, "l/x", abc[i], 1, 0, kvc_record, &r));
        ok(kvc_is(&r, KV_OK) && r.num == 0, "push '%s' unbounded drops nothing", abc[i]);
    }
    KVC_RUN(base, &r, kv_list_len(kv, "l/x", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 3, "list_len 3 (%lld)", r.num);
    KVC_RUN(base, &r, kv_list_range(kv, "l/x", 0, 10, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && kvc_items(&r, abc, 3), "range 0+10: a b c, oldest first");
    KVC_RUN(base, &r, kv_list_range(kv, "l/x", 1, 1, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && kvc_items(&r, abc + 1, 1), "range 1+1: b");
    KVC_RUN(base, &r, kv_list_range(kv, "l/x", 1, 5, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && kvc_items(&r, bc, 2), "range 1+5 stops at the end: b c");
    KVC_RUN(base, &r, kv_list_range(kv, "l/x", 5, 2, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.n == 0, "range past the end: n == 0");
    KVC_RUN(base, &r, kv_list_range(kv, "l/x", 0, 0, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.n == 0, "range of count 0: n == 0");

    KVC_RUN(base, &r, kv_list_trim(kv, "l/x", 1, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 2, "trim 1: 2 left (%lld)", r.num);
    KVC_RUN(base, &r, kv_list_range(kv, "l/x", 0, 10, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && kvc_items(&r, bc, 2), "trim dropped the oldest: b c");

    KVC_RUN(base, &r, kv_list_push(kv, "l/x", "d", 1, 2, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 1, "push with max 2 onto 2: drops 1 (%lld)", r.num);
    KVC_RUN(base, &r, kv_list_range(kv, "l/x", 0, 10, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && kvc_items(&r, cd, 2), "the oldest went: c d");
    KVC_RUN(base, &r, kv_list_push(kv, "l/x", "e", 1, 1, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 2, "push with max 1 onto 2: drops 2 (%lld)", r.num);
    KVC_RUN(base, &r, kv_list_range(kv, "l/x", 0, 10, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && kvc_items(&r, e, 1), "only the newest is left: e");
    KVC_RUN(base, &r, kv_list_push(kv, "l/x", "f", 1, 5, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 0, "push under its max drops nothing");

    KVC_RUN(base, &r, kv_list_trim(kv, "l/x", 10, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 0, "trim past the length: 0 left");
    KVC_RUN(base, &r, kv_list_len(kv, "l/x", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 0, "list_len after trimming all: 0");

    KVC_RUN(base, &r, kv_list_push(kv, "l/bin", bin, sizeof(bin), 0, kvc_record, &r));
    KVC_RUN(base, &r, kv_list_push(kv, "l/bin", "", 0, 0, kvc_record, &r));
    KVC_RUN(base, &r, kv_list_range(kv, "l/bin", 0, 10, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.n == 2 && r.ilen[0] == sizeof(bin) &&
           memcmp(r.item[0], bin, sizeof(bin)) == 0 && r.ilen[1] == 0,
       "list items keep embedded NULs and may be empty");
    KVC_RUN(base, &r, kv_del(kv, "l/bin", kvc_record, &r));
    ok(kvc_is(&r, KV_OK), "del of a list");
    KVC_RUN(base, &r, kv_list_len(kv, "l/bin", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 0, "a deleted list is gone");

    memset(&r, 0, sizeof(r));
    ok(kv_list_push(kv, "", "a", 1, 0, kvc_record, &r) == KV_EINVAL,
       "list_push of an empty key: KV_EINVAL");
    ok(kv_list_range(kv, "", 0, 1, kvc_record, &r) == KV_EINVAL,
       "list_range of an empty key: KV_EINVAL");
    ok(kv_list_trim(kv, "", 1, kvc_record, &r) == KV_EINVAL,
       "list_trim of an empty key: KV_EINVAL");
    ok(kv_list_len(kv, "", kvc_record, &r) == KV_EINVAL,
       "list_len of an empty key: KV_EINVAL");
    kvc_drain(kv, base);
    ok(r.calls == 0, "refused list calls run no callback");
}

/* Type checks: only stores that make them (kv.h) run these. */
static void kvc_types(kv_store *kv, struct event_base *base)
{
    kvc_rec r;

    KVC_RUN(base, &r, kv_set(kv, "t/s", "1", 1, kvc_record, &r));
    KVC_RUN(base, &r, kv_list_push(kv, "t/l", "1", 1, 0, kvc_record, &r));

    KVC_RUN(base, &r, kv_get(kv, "t/l", kvc_record, &r));
    ok(kvc_is(&r, KV_ETYPE), "get of a list: KV_ETYPE (%d)", r.status);
    KVC_RUN(base, &r, kv_set(kv, "t/l", "x", 1, kvc_record, &r));
    ok(kvc_is(&r, KV_ETYPE), "set of a list: KV_ETYPE (%d)", r.status);
    KVC_RUN(base, &r, kv_incr(kv, "t/l", 1, kvc_record, &r));
    ok(kvc_is(&r, KV_ETYPE), "incr of a list: KV_ETYPE (%d)", r.status);
    KVC_RUN(base, &r, kv_list_push(kv, "t/s", "x", 1, 0, kvc_record, &r));
    ok(kvc_is(&r, KV_ETYPE), "list_push onto a string: KV_ETYPE (%d)", r.status);
    KVC_RUN(base, &r, kv_list_range(kv, "t/s", 0, 1, kvc_record, &r));
    ok(kvc_is(&r, KV_ETYPE), "list_range of a string: KV_ETYPE (%d)", r.status);
    KVC_RUN(base, &r, kv_list_trim(kv, "t/s", 1, kvc_record, &r));
    ok(kvc_is(&r, KV_ETYPE), "list_trim of a string: KV_ETYPE (%d)", r.status);
    KVC_RUN(base, &r, kv_list_len(kv, "t/s", kvc_record, &r));
    ok(kvc_is(&r, KV_ETYPE), "list_len of a string: KV_ETYPE (%d)", r.status);

    {
        static const char *const onto_string[] = {"t/l", "t/s"}, *const onto_ctr[] = {
                                                                     "t/c"};
        kv_append_args ap = {.counter = "t/c", .lists = onto_string, .nlists = 2};

        KVC_RUN(base, &r, kv_append(kv, &ap, kvc_record, &r));
        ok(kvc_is(&r, KV_ETYPE), "append onto a string: KV_ETYPE (%d)", r.status);
        ap.counter = "t/l";
        ap.nlists = 1;
        KVC_RUN(base, &r, kv_append(kv, &ap, kvc_record, &r));
        ok(kvc_is(&r, KV_ETYPE), "append with a list as counter: KV_ETYPE (%d)",
           r.status);
        ap.counter = "t/c";
        ap.lists = onto_ctr;
        KVC_RUN(base, &r, kv_append(kv, &ap, kvc_record, &r));
        ok(kvc_is(&r, KV_ETYPE), "append onto its own counter: KV_ETYPE (%d)", r.status);
        KVC_RUN(base, &r, kv_get(kv, "t/c", kvc_record, &r));
        ok(kvc_is(&r, KV_ENOTFOUND), "a failed append creates no counter");
    }

    KVC_RUN(base, &r, kv_get(kv, "t/s", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.len == 1 && r.val[0] == '1', "the string is untouched");
    KVC_RUN(base, &r, kv_list_len(kv, "t/l", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 1, "the list is untouched");

    /* Logs are a kind of their own. */
    kv_append_args lap = {.counter = "t/lc", .log = "t/g"};
    KVC_RUN(base, &r, kv_append(kv, &lap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.pos == 1, "append to a new log");
    KVC_RUN(base, &r, kv_get(kv, "t/g", kvc_record, &r));
    ok(kvc_is(&r, KV_ETYPE), "get of a log: KV_ETYPE (%d)", r.status);
    KVC_RUN(base, &r, kv_list_len(kv, "t/g", kvc_record, &r));
    ok(kvc_is(&r, KV_ETYPE), "list_len of a log: KV_ETYPE (%d)", r.status);
    KVC_RUN(base, &r, kv_log_range(kv, "t/s", 0, 1, 0, kvc_record, &r));
    ok(kvc_is(&r, KV_ETYPE), "log_range of a string: KV_ETYPE (%d)", r.status);
    KVC_RUN(base, &r, kv_log_end(kv, "t/l", kvc_record, &r));
    ok(kvc_is(&r, KV_ETYPE), "log_end of a list: KV_ETYPE (%d)", r.status);
    KVC_RUN(base, &r, kv_log_mark(kv, "t/g", "t/l", kvc_record, &r));
    ok(kvc_is(&r, KV_ETYPE), "a mark onto a list: KV_ETYPE (%d)", r.status);
    lap.log = "t/l";
    KVC_RUN(base, &r, kv_append(kv, &lap, kvc_record, &r));
    ok(kvc_is(&r, KV_ETYPE), "append to a list as a log: KV_ETYPE (%d)", r.status);
    KVC_RUN(base, &r, kv_list_len(kv, "t/l", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 1, "the list is untouched");

    KVC_RUN(base, &r, kv_del(kv, "t/l", kvc_record, &r));
    KVC_RUN(base, &r, kv_set(kv, "t/l", "x", 1, kvc_record, &r));
    ok(kvc_is(&r, KV_OK), "a deleted list's key takes a string");
    KVC_RUN(base, &r, kv_del(kv, "t/l", kvc_record, &r));
    KVC_RUN(base, &r, kv_del(kv, "t/s", kvc_record, &r));
    KVC_RUN(base, &r, kv_del(kv, "t/g", kvc_record, &r));
    KVC_RUN(base, &r, kv_del(kv, "t/lc", kvc_record, &r));
}

/* ---------------------------------------------------------------- ordering */

typedef struct kvc_nest {
    kv_store *kv;
    kvc_rec inner;
    int depth;
    int outer_returned; /* the issuing callback has returned */
    int inner_early;
} kvc_nest;

static void kvc_nested_inner(const kv_result *res, void *arg)
{
    kvc_nest *t = arg;

    t->inner_early |= !t->outer_returned;
    kvc_record(res, &t->inner);
}

/* Issues a get from inside a callback; 'depth' more levels of nesting. */
static void kvc_nested_outer(const kv_result *res, void *arg)
{
    kvc_nest *t = arg;

    kvc_completed++;
    t->outer_returned = 0;
    if (t->depth-- > 0) {
        kv_get(t->kv, "o/k", kvc_nested_outer, t);
    } else if (kv_get(t->kv, "o/k", kvc_nested_inner, t) != 0) {
        t->inner.status = 99;
    }
    t->outer_returned = 1;
}

static void kvc_ordering(kv_store *kv, struct event_base *base)
{
    kvc_rec r[6], fl, old;
    kvc_nest t;
    int start, in_order = 1, all_ok = 1;

    memset(r, 0, sizeof(r));
    start = kvc_completed;
    ok(KVC_CALL(kv_set(kv, "o/k", "1", 1, kvc_record, &r[0])) == 0, "set o/k");
    ok(KVC_CALL(kv_incr(kv, "o/k", 1, kvc_record, &r[1])) == 0, "incr o/k");
    ok(KVC_CALL(kv_get(kv, "o/k", kvc_record, &r[2])) == 0, "get o/k");
    ok(KVC_CALL(kv_list_len(kv, "o/l", kvc_record, &r[3])) == 0, "list_len o/l");
    ok(KVC_CALL(kv_scan(kv, "o/", kvc_record, &r[4])) == 0, "scan o/");
    ok(KVC_CALL(kv_del(kv, "o/missing", kvc_record, &r[5])) == 0, "del o/missing");
    ok(kvc_completed == start, "no callback ran before the loop did");
    memset(&fl, 0, sizeof(fl));
    ok(KVC_CALL(kv_flush(kv, kvc_record, &fl)) == 0, "flush starts");
    kvc_wait(base, start + 7);
    for (int i = 0; i < 6; i++) {
        in_order &= r[i].order == start + 1 + i;
        all_ok &= kvc_is(&r[i], KV_OK);
    }
    ok(all_ok, "each callback ran once, after its call returned, with KV_OK");
    ok(in_order, "callbacks ran in issue order");
    ok(kvc_is(&fl, KV_OK) && fl.order == start + 7, "flush ran after every earlier op");
    ok(r[2].len == 1 && r[2].val[0] == '2', "a get sees the writes issued before it");
    ok(r[4].n == 1 && strcmp(r[4].key[0], "o/k") == 0, "scan sees them too");

    /* The result is taken when the op is issued, even if the key changes before
     * the callback runs. */
    memset(&old, 0, sizeof(old));
    kv_get(kv, "o/k", kvc_record, &old);
    kv_set(kv, "o/k", "changed", 7, NULL, NULL);
    start = kvc_completed;
    kvc_wait(base, start + 1);
    ok(kvc_is(&old, KV_OK) && old.len == 1 && old.val[0] == '2',
       "a pending get keeps the value it read");

    memset(&t, 0, sizeof(t));
    t.kv = kv;
    t.depth = 3;
    t.outer_returned = 1;
    start = kvc_completed;
    ok(kv_get(kv, "o/k", kvc_nested_outer, &t) == 0, "get that nests 4 more gets");
    kvc_wait(base, start + 5);
    ok(t.depth < 0 && t.inner.calls == 1 && t.inner.status == KV_OK,
       "ops issued from inside callbacks complete");
    ok(!t.inner_early, "a nested callback runs after its issuing callback returns");
    ok(t.inner.len == 7 && memcmp(t.inner.val, "changed", 7) == 0,
       "the nested get sees the latest value");

    KVC_RUN(base, &fl, kv_del(kv, "o/k", kvc_record, &fl));
}

/* ------------------------------------------------- nodes: append and notify */

#define KVC_MAXNOTES 1024 /* kept, the oldest overwritten */
#define KVC_NROUNDS 20    /* rounds of interleaved appends on two nodes */
#define KVC_PERROUND 3    /* appends per node per round */
#define KVC_NAPPEND (2 * KVC_NROUNDS * KVC_PERROUND)

typedef struct kvc_note {
    char topic[KVC_MAXVAL];
    char data[KVC_MAXVAL];
    size_t len;
    int seen; /* kvc_completed when it arrived */
} kvc_note;

/* What one store's subscription received. */
typedef struct kvc_sub {
    int n;      /* notifications (topic != NULL) */
    int resets; /* calls with topic == NULL */
    int early;  /* one ran while a kv_* call was on the stack */
    int bad;    /* a NULL topic with data, or data not NUL-terminated */
    kvc_note note[KVC_MAXNOTES];
    /* On a notification on 'probe_topic', get "x/k" from 'probe_kv'. */
    const char *probe_topic;
    kv_store *probe_kv;
    kvc_rec probe;
} kvc_sub;

static kvc_sub kvc_sub_a, kvc_sub_b;

/* The i-th notification 's' received (0 = first). */
static kvc_note *kvc_note_at(kvc_sub *s, int i)
{
    return &s->note[i % KVC_MAXNOTES];
}

static void kvc_notified(const char *topic, const char *data, size_t len, void *arg)
{
    kvc_sub *s = arg;
    kvc_note *nt;

    s->early |= kvc_issuing;
    if (!topic) {
        s->resets++;
        s->bad |= data != NULL || len != 0;
        return;
    }
    s->bad |= data == NULL || data[len] != '\0';
    nt = kvc_note_at(s, s->n++);
    memset(nt, 0, sizeof(*nt));
    snprintf(nt->topic, sizeof(nt->topic), "%s", topic);
    kvc_copy(nt->data, data, len);
    nt->len = len;
    nt->seen = kvc_completed;
    if (s->probe_topic && strcmp(topic, s->probe_topic) == 0)
        kv_get(s->probe_kv, "x/k", kvc_record, &s->probe);
}

/* Whether notification 'i' of 's' is 'data' on 'topic'. */
static int kvc_note_is(kvc_sub *s, int i, const char *topic, const char *data, size_t len)
{
    kvc_note *nt = kvc_note_at(s, i);

    return i < s->n && strcmp(nt->topic, topic) == 0 && nt->len == len &&
           memcmp(nt->data, data, len) == 0;
}

/* Publish a marker on 'kv' and wait until 's' has it: everything 'kv'
 * published before it has arrived by then. Returns how many notifications
 * other than markers 's' got from its 'from'-th on, or -1 on a timeout. */
static int kvc_mark(kv_store *kv, kvc_sub *s, int from, struct event_base *base)
{
    int seen = s->n, count = 0;

    kv_notify(kv, "x/mark", "mark", 4, NULL, NULL);
    for (;;) {
        kvc_wait_count(base, &s->n, seen + 1);
        if (s->n <= seen)
            return -1;
        for (; seen < s->n; seen++)
            if (strcmp(kvc_note_at(s, seen)->topic, "x/mark") == 0)
                goto found; /* the first one since the call: ours */
    }
found:
    for (int i = from; i < seen; i++)
        count += strcmp(kvc_note_at(s, i)->topic, "x/mark") != 0;
    return count;
}

static void kvc_subscribe(kv_store *kv, kvc_sub *s, struct event_base *base)
{
    ok(kv_subscribed(kv) == 0, "no subscription yet: kv_subscribed is 0");
    ok(kv_subscribe(kv, NULL, kvc_notified, s) == KV_EINVAL,
       "subscribe with a NULL prefix: KV_EINVAL");
    ok(kv_subscribe(kv, "x/", NULL, s) == KV_EINVAL,
       "subscribe with a NULL callback: KV_EINVAL");
    ok(KVC_CALL(kv_subscribe(kv, "x/", kvc_notified, s)) == 0, "subscribe to x/");
    ok(kv_subscribe(kv, "y/", kvc_notified, s) == KV_EINVAL,
       "a second subscription on one store: KV_EINVAL");
    kvc_until(base, kvc_live, kv);
    ok(kv_subscribed(kv) == 1, "the subscription goes live");
}

static void kvc_notify_basics(kv_store *a, kv_store *b, kvc_sub *sa, kvc_sub *sb,
                              struct event_base *base)
{
    static const char bin[] = {'b', '\0', 'n'};
    kvc_rec r[5];
    int start = kvc_completed, na = sa->n, nb = sb->n, in_order = 1, all_ok = 1;

    memset(r, 0, sizeof(r));
    ok(KVC_CALL(kv_notify(a, "y/t", "no", 2, kvc_record, &r[0])) == 0,
       "notify y/t (another prefix)");
    ok(KVC_CALL(kv_notify(a, "x/t", "hello", 5, kvc_record, &r[1])) == 0, "notify x/t");
    ok(KVC_CALL(kv_notify(a, "x", "no", 2, kvc_record, &r[2])) == 0,
       "notify x (shorter than the prefix)");
    ok(KVC_CALL(kv_notify(a, "xy/t", "no", 2, NULL, NULL)) == 0,
       "notify xy/t without a callback");
    ok(KVC_CALL(kv_notify(a, "x/u", bin, sizeof(bin), kvc_record, &r[3])) == 0,
       "notify x/u with binary data");
    ok(KVC_CALL(kv_notify(a, "x/e", NULL, 0, kvc_record, &r[4])) == 0,
       "notify x/e with no data");
    kvc_wait(base, start + 5);
    for (int i = 0; i < 5; i++) {
        in_order &= r[i].order == start + 1 + i;
        all_ok &= kvc_is(&r[i], KV_OK);
    }
    ok(all_ok && in_order, "each notify called back once, in order, with KV_OK");

    kvc_wait_count(base, &sa->n, na + 3);
    kvc_wait_count(base, &sb->n, nb + 3);
    for (int k = 0; k < (a == b ? 1 : 2); k++) {
        kvc_sub *s = k ? sb : sa;
        int from = k ? nb : na;
        const char *who = k ? "the other node" : "the publishing node";

        ok(kvc_note_is(s, from, "x/t", "hello", 5), "%s gets x/t", who);
        ok(kvc_note_is(s, from + 1, "x/u", bin, sizeof(bin)),
           "%s gets x/u next, binary data intact", who);
        ok(kvc_note_is(s, from + 2, "x/e", "", 0), "%s gets x/e next, empty", who);
        ok(kvc_mark(a, s, from + 3, base) == 0,
           "%s gets nothing outside its prefix (y/t, x, xy/t)", who);
    }

    memset(r, 0, sizeof(r));
    ok(kv_notify(a, "", "v", 1, kvc_record, &r[0]) == KV_EINVAL,
       "notify of an empty topic: KV_EINVAL");
    ok(kv_notify(a, NULL, "v", 1, kvc_record, &r[0]) == KV_EINVAL,
       "notify of a NULL topic: KV_EINVAL");
    ok(kv_notify(a, "x/t", NULL, 3, kvc_record, &r[0]) == KV_EINVAL,
       "notify of NULL data with a length: KV_EINVAL");
    na = sa->n;
    ok(kvc_mark(a, sa, na, base) == 0 && r[0].calls == 0,
       "refused notifies run no callback and publish nothing");

    /* The other way round: the second node publishes, both hear it. */
    na = sa->n;
    nb = sb->n;
    ok(kv_notify(b, "x/from-b", "hi", 2, NULL, NULL) == 0, "notify from the other node");
    kvc_wait_count(base, &sa->n, na + 1);
    kvc_wait_count(base, &sb->n, nb + 1);
    ok(kvc_note_is(sa, na, "x/from-b", "hi", 2) &&
           kvc_note_is(sb, nb, "x/from-b", "hi", 2),
       "every node hears it, the publisher included");
    ok(!sa->early && !sb->early, "no notification ran while a call was being issued");
    ok(!sa->bad && !sb->bad, "notifications are well formed (data NUL-terminated)");
    ok(sa->resets == 0 && sb->resets == 0,
       "going live the first time is not reported as a loss");
}

/* A notification issued after a set reaches the other node after the set is
 * visible there: its subscriber reads the key as soon as it is told. */
static void kvc_notify_after_set(kv_store *a, kv_store *b, kvc_sub *sb,
                                 struct event_base *base)
{
    for (int i = 0; i < 3; i++) {
        char v[16];
        int len = snprintf(v, sizeof(v), "value %d", i);

        memset(&sb->probe, 0, sizeof(sb->probe));
        sb->probe_topic = "x/go";
        sb->probe_kv = b;
        kv_set(a, "x/k", v, (size_t)len, NULL, NULL);
        kv_notify(a, "x/go", v, (size_t)len, NULL, NULL);
        kvc_wait_count(base, &sb->probe.calls, 1);
        ok(kvc_is(&sb->probe, KV_OK) && sb->probe.len == (size_t)len &&
               memcmp(sb->probe.val, v, (size_t)len) == 0,
           "told by a notify issued after a set, the other node reads '%s' (%.*s)", v,
           (int)sb->probe.len, sb->probe.val);
    }
    sb->probe_topic = NULL;
    kvc_drain(b, base);
    kv_del(a, "x/k", NULL, NULL);
}

static void kvc_append_basics(kv_store *kv, kvc_sub *s, struct event_base *base)
{
    static const char *const lists[] = {"x/l1", "x/l2"}, *const l3[] = {"x/l3"},
                             *const last3[] = {"m3;", "m4;", "m5;"},
                             *const all5[] = {"m1;", "m2;", "m3;", "m4;", "m5;"},
                             *const floors[] = {"m101;", "m102;", "m103;"},
                             *const empty[] = {""};
    static const size_t max[] = {3, 0};
    static const char bhead[] = {'\0', 'h'}, btail[] = {'t', '\0'};
    static const char bwant[] = {'\0', 'h', '1', '0', '4', 't', '\0'};
    static const char *const want_notes[] = {"m1;",   "m2;",   "m3;",   "m4;",   "m5;",
                                             "m101;", "m102;", "m103;", "m106;", "m107;"};
    kv_append_args ap = {.counter = "x/ctr",
                         .head = "m",
                         .head_len = 1,
                         .tail = ";",
                         .tail_len = 1,
                         .lists = lists,
                         .nlists = 2,
                         .max = max,
                         .topic = "x/app"};
    kv_append_args bad;
    kvc_rec r;
    int from = s->n, good = 1;

    for (long long i = 1; i <= 5; i++) {
        KVC_RUN(base, &r, kv_append(kv, &ap, kvc_record, &r));
        ok(kvc_is(&r, KV_OK) && r.num == i, "append %lld onto a new counter: id %lld", i,
           r.num);
    }
    KVC_RUN(base, &r, kv_list_range(kv, "x/l1", 0, 10, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && kvc_items(&r, last3, 3),
       "a list bounded to 3 holds the 3 newest, value = head + id + tail");
    KVC_RUN(base, &r, kv_list_range(kv, "x/l2", 0, 10, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && kvc_items(&r, all5, 5), "an unbounded list holds all 5");
    KVC_RUN(base, &r, kv_get(kv, "x/ctr", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.len == 1 && r.val[0] == '5',
       "the counter is a decimal string holding the last id");

    ap.floor = 100;
    KVC_RUN(base, &r, kv_append(kv, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 101, "floor 100 makes the counter jump: id %lld",
       r.num);
    ap.floor = 50;
    KVC_RUN(base, &r, kv_append(kv, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 102,
       "a floor below the counter changes nothing: %lld", r.num);
    ap.floor = -5;
    KVC_RUN(base, &r, kv_append(kv, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 103, "a negative floor changes nothing: %lld",
       r.num);
    KVC_RUN(base, &r, kv_list_range(kv, "x/l1", 0, 10, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && kvc_items(&r, floors, 3),
       "the bounded list: m101; m102; m103;");

    ap.floor = 0;
    ap.head = bhead;
    ap.head_len = sizeof(bhead);
    ap.tail = btail;
    ap.tail_len = sizeof(btail);
    ap.lists = l3;
    ap.nlists = 1;
    ap.max = NULL;
    ap.topic = NULL;
    KVC_RUN(base, &r, kv_append(kv, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 104, "append with binary head and tail, no topic");
    KVC_RUN(base, &r, kv_list_range(kv, "x/l3", 0, 10, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.n == 1 && r.ilen[0] == sizeof(bwant) &&
           memcmp(r.item[0], bwant, sizeof(bwant)) == 0,
       "the value keeps the NULs of head and tail");
    ap.head = ap.tail = NULL;
    ap.head_len = ap.tail_len = 0;
    ap.nlists = 0;
    ap.lists = NULL;
    KVC_RUN(base, &r, kv_append(kv, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 105, "append to no list, no topic: only an id");
    ap.head = "m";
    ap.head_len = 1;
    ap.tail = ";";
    ap.tail_len = 1;
    ap.topic = "x/app";
    ok(kv_append(kv, &ap, NULL, NULL) == 0, "append without a callback starts");
    ap.lists = empty; /* an empty list name */
    ap.nlists = 1;
    memset(&r, 0, sizeof(r));
    ok(kv_append(kv, &ap, kvc_record, &r) == KV_EINVAL, "append to an empty list name");
    ap.lists = l3;
    ap.topic = "";
    ok(kv_append(kv, &ap, kvc_record, &r) == KV_EINVAL, "append to an empty topic");
    ap.topic = "x/app";
    bad = ap;
    bad.counter = "";
    ok(kv_append(kv, &bad, kvc_record, &r) == KV_EINVAL, "append with an empty counter");
    bad.counter = NULL;
    ok(kv_append(kv, &bad, kvc_record, &r) == KV_EINVAL, "append with a NULL counter");
    bad = ap;
    bad.head = NULL;
    ok(kv_append(kv, &bad, kvc_record, &r) == KV_EINVAL,
       "append with a NULL head of length 1");
    bad = ap;
    bad.floor = 0x7fffffffffffffffLL;
    ok(kv_append(kv, &bad, kvc_record, &r) == KV_EINVAL, "append with floor LLONG_MAX");
    bad = ap;
    bad.lists = NULL;
    ok(kv_append(kv, &bad, kvc_record, &r) == KV_EINVAL,
       "append with 1 list and no array");
    ok(kv_append(kv, NULL, kvc_record, &r) == KV_EINVAL, "append of NULL");
    kvc_drain(kv, base);
    ok(r.calls == 0, "refused appends run no callback");
    KVC_RUN(base, &r, kv_get(kv, "x/ctr", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.len == 3 && memcmp(r.val, "106", 3) == 0,
       "the append without a callback was applied, the refused ones were not");

    KVC_RUN(base, &r, kv_set(kv, "x/bad", "abc", 3, kvc_record, &r));
    bad = ap;
    bad.counter = "x/bad";
    KVC_RUN(base, &r, kv_append(kv, &bad, kvc_record, &r));
    ok(kvc_is(&r, KV_EINVAL),
       "append with a counter that is not an integer: KV_EINVAL (%d)", r.status);
    KVC_RUN(base, &r, kv_list_len(kv, "x/l3", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 1, "... and it pushed nothing (%lld)", r.num);
    KVC_RUN(base, &r, kv_set(kv, "x/bad", "9223372036854775807", 19, kvc_record, &r));
    KVC_RUN(base, &r, kv_append(kv, &bad, kvc_record, &r));
    ok(kvc_is(&r, KV_EINVAL), "append with a counter at LLONG_MAX: KV_EINVAL (%d)",
       r.status);
    KVC_RUN(base, &r, kv_get(kv, "x/bad", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.len == 19, "... and the counter is left alone");

    KVC_RUN(base, &r, kv_append(kv, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 107, "a later append goes on: id %lld", r.num);
    ok(kvc_mark(kv, s, from, base) == 10,
       "the appends with a topic notified it, no other");
    for (int i = 0; i < 10; i++)
        good &= kvc_note_is(s, from + i, "x/app", want_notes[i], strlen(want_notes[i]));
    ok(good, "each notification carries the value pushed, in id order");

    static const char *const keys[] = {"x/l1", "x/l2", "x/l3", "x/ctr", "x/bad"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        kv_del(kv, keys[i], NULL, NULL);
    kvc_drain(kv, base);
}

/* The ids a node got, in the order its appends were issued. */
typedef struct kvc_ids {
    long long id[KVC_NAPPEND];
    int n, failed;
} kvc_ids;

static void kvc_got_id(const kv_result *res, void *arg)
{
    kvc_ids *ids = arg;

    kvc_completed++;
    if (res->status != KV_OK)
        ids->failed++;
    else if (ids->n < KVC_NAPPEND)
        ids->id[ids->n++] = res->num;
}

/* The id in a value "{\"id\":<id>}", or -1. */
static long long kvc_value_id(const char *v, size_t len)
{
    char buf[32];
    long long id;
    char end;

    if (len < 7 || len >= sizeof(buf) || memcmp(v, "{\"id\":", 6) != 0 ||
        v[len - 1] != '}')
        return -1;
    memcpy(buf, v + 6, len - 6);
    buf[len - 6] = '\0';
    return sscanf(buf, "%lld%c", &id, &end) == 2 && end == '}' ? id : -1;
}

/* A list range of values "{\"id\":<id>}": how many, and whether in id order. */
typedef struct kvc_order {
    size_t n;
    int sorted;
    long long first, last;
} kvc_order;

static void kvc_check_order(const kv_result *res, void *arg)
{
    kvc_order *o = arg;
    long long prev = -1;

    kvc_completed++;
    o->n = res->n;
    o->sorted = res->status == KV_OK;
    for (size_t i = 0; i < res->n; i++) {
        long long id = kvc_value_id(res->items[i].val, res->items[i].vlen);

        o->sorted &= id > prev;
        prev = id;
        if (i == 0)
            o->first = id;
    }
    o->last = prev;
}

static int kvc_cmp_ll(const void *x, const void *y)
{
    long long a = *(const long long *)x, b = *(const long long *)y;

    return (a > b) - (a < b);
}

/* Two nodes append, interleaved, to the same lists under one counter. */
static void kvc_append_nodes(kv_store *a, kv_store *b, kvc_sub *sa, kvc_sub *sb,
                             struct event_base *base)
{
    static const char *const lists[] = {"x/o1", "x/o2"};
    static const size_t max[] = {0, 1000};
    static kvc_ids ia, ib;
    static long long all[KVC_NAPPEND];
    kv_append_args ap = {.counter = "x/seq",
                         .head = "{\"id\":",
                         .head_len = 6,
                         .tail = "}",
                         .tail_len = 1,
                         .lists = lists,
                         .nlists = 2,
                         .max = max,
                         .topic = "x/seq"};
    int na = sa->n, nb = sb->n, start = kvc_completed, issued = 0, sorted = 1;
    int contiguous = 1;
    kvc_order lo[2];

    memset(&ia, 0, sizeof(ia));
    memset(&ib, 0, sizeof(ib));
    for (int round = 0; round < KVC_NROUNDS; round++) {
        for (int i = 0; i < KVC_PERROUND; i++, issued += 2) {
            kv_append(a, &ap, kvc_got_id, &ia);
            kv_append(b, &ap, kvc_got_id, &ib);
        }
        /* Let some batches go out while more are issued. */
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
    kvc_wait(base, start + issued);
    ok(ia.failed + ib.failed == 0 && ia.n + ib.n == issued,
       "%d interleaved appends on two nodes all succeed", issued);
    for (int i = 1; i < ia.n; i++)
        sorted &= ia.id[i] > ia.id[i - 1];
    for (int i = 1; i < ib.n; i++)
        sorted &= ib.id[i] > ib.id[i - 1];
    ok(sorted, "each node's ids increase in the order it issued its appends");
    memcpy(all, ia.id, sizeof(long long) * (size_t)ia.n);
    memcpy(all + ia.n, ib.id, sizeof(long long) * (size_t)ib.n);
    qsort(all, (size_t)issued, sizeof(all[0]), kvc_cmp_ll);
    for (int i = 1; i < issued; i++)
        contiguous &= all[i] == all[i - 1] + 1;
    ok(contiguous && all[0] == 1, "together the ids are 1..%d, each given once", issued);

    memset(lo, 0, sizeof(lo));
    for (int i = 0; i < 2; i++)
        kv_list_range(a, lists[i], 0, 10 * KVC_NAPPEND, kvc_check_order, &lo[i]);
    kvc_wait(base, kvc_completed + 2);
    for (int i = 0; i < 2; i++)
        ok(lo[i].n == (size_t)issued && lo[i].sorted && lo[i].first == 1 &&
               lo[i].last == issued,
           "list %s holds all %d values in id order (n=%zu)", lists[i], issued, lo[i].n);

    for (int k = 0; k < (a == b ? 1 : 2); k++) {
        kvc_sub *s = k ? sb : sa;
        int from = k ? nb : na, in_order = 1, got;
        long long prev = 0;

        got = kvc_mark(k ? b : a, s, from, base);
        for (int i = 0; i < got && i < issued; i++) {
            kvc_note *nt = kvc_note_at(s, from + i);
            long long id = kvc_value_id(nt->data, nt->len);

            in_order &= strcmp(nt->topic, "x/seq") == 0 && id == prev + 1;
            prev = id;
        }
        ok(got == issued && in_order,
           "node %c's subscriber got the %d notifications once each, in id order (%d)",
           k ? 'b' : 'a', issued, got);
    }
    kv_del(a, "x/o1", NULL, NULL);
    kv_del(a, "x/o2", NULL, NULL);
    kv_del(a, "x/seq", NULL, NULL);
    kvc_drain(a, base);
}

/* ------------------------------------------------------------------- logs */

/* The entries of 'r' are ids from..to (oldest first), their positions
 * id + shift, their values "e<id>". */
static int kvc_entries(const kvc_rec *r, long long from, long long to, long long shift)
{
    char want[32];

    if (r->n != (size_t)(to - from + 1))
        return 0;
    for (size_t i = 0; i < r->n; i++) {
        long long id = from + (long long)i;
        int len = snprintf(want, sizeof(want), "e%lld", id);
        if (r->iid[i] != id || r->ipos[i] != id + shift || r->ilen[i] != (size_t)len ||
            memcmp(r->item[i], want, (size_t)len) != 0)
            return 0;
    }
    return 1;
}

/* 'n' appends of 'ap' without callbacks, from either node in turn, all done. */
static void kvc_appends(kv_store *a, kv_store *b, const kv_append_args *ap, int n,
                        struct event_base *base)
{
    for (int i = 0; i < n; i++)
        kv_append(i % 2 ? a : b, ap, NULL, NULL);
    kvc_drain(a, base);
    kvc_drain(b, base);
}

/* Logs, appended to from both nodes: ids and positions, ranges by id from
 * either end, trimming that keeps the end, marks and conditional deletes. */
static void kvc_logs(kv_store *a, kv_store *b, struct event_base *base)
{
    kv_append_args ap = {.counter = "x/lctr",
                         .head = "e",
                         .head_len = 1,
                         .log = "x/lg",
                         .log_max = 3,
                         .topic = "x/lapp"};
    kvc_rec r;
    int good = 1;

    KVC_RUN(base, &r, kv_log_end(a, "x/lg", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.id == 0 && r.num == 0, "a missing log ends at 0, 0");
    KVC_RUN(base, &r, kv_log_range(a, "x/lg", 0, 10, 0, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.n == 0, "a missing log has no entries");
    for (long long i = 1; i <= 5; i++) {
        kv_store *kv = i % 2 ? a : b;
        KVC_RUN(base, &r, kv_append(kv, &ap, kvc_record, &r));
        good &= kvc_is(&r, KV_OK) && r.num == i && r.id == i && r.pos == i;
    }
    ok(good, "5 appends from both nodes: each gets its id and the next position");
    KVC_RUN(base, &r, kv_log_end(b, "x/lg", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.id == 5 && r.num == 5,
       "the end is the newest entry (%lld %lld)", r.id, r.num);
    KVC_RUN(base, &r, kv_log_range(a, "x/lg", 0, 10, 0, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.n >= 3 && kvc_entries(&r, 6 - (long long)r.n, 5, 0),
       "a log bounded to 3 keeps at least its 3 newest, in order, with id, pos and "
       "value (%zu)",
       r.n);
    KVC_RUN(base, &r, kv_log_range(b, "x/lg", 3, 10, 0, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && kvc_entries(&r, 4, 5, 0), "the entries after id 3: 4, 5");
    KVC_RUN(base, &r, kv_log_range(a, "x/lg", 3, 1, 0, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && kvc_entries(&r, 4, 4, 0), "... the oldest 1 of them: 4");
    KVC_RUN(base, &r, kv_log_range(a, "x/lg", 0, 2, 1, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && kvc_entries(&r, 4, 5, 0),
       "the newest 2 come oldest first: 4, 5");
    KVC_RUN(base, &r, kv_log_range(a, "x/lg", 5, 10, 1, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.n == 0, "nothing after the newest");
    KVC_RUN(base, &r, kv_log_range(a, "x/lg", 0, 0, 0, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.n == 0, "a range of 0 entries");

    KVC_RUN(base, &r, kv_log_trim(b, "x/lg", 1, kvc_record, &r));
    ok(kvc_is(&r, KV_OK), "trim to 1");
    KVC_RUN(base, &r, kv_log_range(a, "x/lg", 0, 10, 0, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && kvc_entries(&r, 5, 5, 0), "a trimmed log keeps its newest");
    KVC_RUN(base, &r, kv_log_end(a, "x/lg", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.id == 5 && r.num == 5, "and its end");

    KVC_RUN(base, &r, kv_log_mark(a, "x/lg", "x/mk", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.id == 5 && r.num == 5, "mark the end (%lld %lld)", r.id,
       r.num);
    KVC_RUN(base, &r, kv_get(b, "x/mk", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.len == 3 && memcmp(r.val, "5 5", 3) == 0,
       "the mark is the string \"5 5\"");
    KVC_RUN(base, &r, kv_log_mark(b, "x/nolog", "x/mk0", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.id == 0 && r.num == 0, "the mark of a missing log");
    KVC_RUN(base, &r, kv_get(a, "x/mk0", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.len == 3 && memcmp(r.val, "0 0", 3) == 0, "is \"0 0\"");
    KVC_RUN(base, &r, kv_del_if(a, "x/mk", "5 4", 3, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 0, "del_if with another value removes nothing");
    KVC_RUN(base, &r, kv_get(a, "x/mk", kvc_record, &r));
    ok(kvc_is(&r, KV_OK), "the string is still there");
    KVC_RUN(base, &r, kv_del_if(b, "x/mk", "5 5", 3, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 1, "del_if with its value removes it");
    KVC_RUN(base, &r, kv_get(a, "x/mk", kvc_record, &r));
    ok(kvc_is(&r, KV_ENOTFOUND), "it is gone");
    KVC_RUN(base, &r, kv_del_if(a, "x/mk", "5 5", 3, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 0, "del_if of a missing key removes nothing");

    /* set_if: a compare-and-set, the lease of the modules. */
    KVC_RUN(base, &r, kv_set_if(a, "x/ls", "", "n1 100", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 1, "set_if \"\" sets a missing key");
    KVC_RUN(base, &r, kv_set_if(b, "x/ls", "", "n2 100", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 0, "set_if \"\" leaves a key that exists");
    KVC_RUN(base, &r, kv_set_if(b, "x/ls", "n1 99", "n2 200", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 0, "set_if with another value sets nothing");
    KVC_RUN(base, &r, kv_set_if(b, "x/ls", "n1 100", "n2 200", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 1, "set_if with its value sets it");
    KVC_RUN(base, &r, kv_get(a, "x/ls", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.len == 6 && memcmp(r.val, "n2 200", 6) == 0,
       "and the other side reads the new value");
    ok(kv_set_if(a, "x/ls", NULL, "v", kvc_record, &r) == KV_EINVAL,
       "set_if without an expected value: KV_EINVAL");
    KVC_RUN(base, &r, kv_del(a, "x/ls", kvc_record, &r));

    KVC_RUN(base, &r, kv_append(b, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.id == 6 && r.pos == 6, "an append after the trim goes on");
    KVC_RUN(base, &r, kv_del(a, "x/lg", kvc_record, &r));
    KVC_RUN(base, &r, kv_log_end(b, "x/lg", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.id == 0 && r.num == 0, "a deleted log has no end");
    KVC_RUN(base, &r, kv_append(a, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.id == 7 && r.pos == 1,
       "a log deleted and appended to again starts at position 1 (ids go on)");
    ap.log_max = 0;
    kvc_appends(a, b, &ap, 4, base);
    KVC_RUN(base, &r, kv_log_range(b, "x/lg", 0, 10, 0, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && kvc_entries(&r, 7, 11, -6),
       "appends without a callback, unbounded: 5 entries, positions 1 to 5");

    ap.mid = "@";
    ap.mid_len = 1;
    KVC_RUN(base, &r, kv_append(b, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.id == 12 && r.pos == 6, "an append with mid (%lld %lld)",
       r.id, r.pos);
    KVC_RUN(base, &r, kv_log_range(a, "x/lg", 0, 1, 1, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.n == 1 && r.ilen[0] == 5 &&
           memcmp(r.item[0], "e12@6", 5) == 0,
       "its value is head + id + mid + position + tail (%.*s)", (int)r.ilen[0],
       r.item[0]);
    KVC_RUN(base, &r, kv_log_trim(a, "x/lg", 0, kvc_record, &r));
    KVC_RUN(base, &r, kv_log_range(b, "x/lg", 0, 10, 0, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.n == 0, "a trim to 0 empties the log");
    KVC_RUN(base, &r, kv_log_end(b, "x/lg", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.id == 12 && r.num == 6, "... and keeps its end");
    KVC_RUN(base, &r, kv_append(a, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.id == 13 && r.pos == 7, "an emptied log goes on counting");

    ok(kv_log_range(a, "", 0, 1, 0, kvc_record, &r) == KV_EINVAL &&
           kv_log_end(a, "", kvc_record, &r) == KV_EINVAL &&
           kv_log_mark(a, "x/lg", "x/lg", kvc_record, &r) == KV_EINVAL &&
           kv_del_if(a, "x/mk", NULL, 1, kvc_record, &r) == KV_EINVAL,
       "refused log calls: an empty key, a mark onto its own log, NULL data");
    kv_del(a, "x/lg", NULL, NULL);
    kv_del(a, "x/lctr", NULL, NULL);
    kv_del(a, "x/mk0", NULL, NULL);
    kvc_drain(a, base);
}

/* A log whose readers are gone keeps exactly log_idle entries; while its
 * readers' table holds a key, log_max. */
static void kvc_log_readers(kv_store *a, kv_store *b, struct event_base *base)
{
    kv_append_args ap = {.counter = "x/rctr",
                         .head = "e",
                         .head_len = 1,
                         .log = "x/rl",
                         .log_max = 0,
                         .log_readers = "x/rd/",
                         .log_idle = 2};
    kvc_rec r;
    int good = 1;

    for (long long i = 1; i <= 5; i++) {
        KVC_RUN(base, &r, kv_append(i % 2 ? a : b, &ap, kvc_record, &r));
        good &= kvc_is(&r, KV_OK) && r.id == i && r.pos == i;
    }
    KVC_RUN(base, &r, kv_log_range(b, "x/rl", 0, 10, 0, kvc_record, &r));
    ok(good && kvc_is(&r, KV_OK) && kvc_entries(&r, 4, 5, 0),
       "no reader: the log keeps exactly log_idle (2) entries");
    KVC_RUN(base, &r, kv_set(a, "x/rd/deeper/not", "1", 1, kvc_record, &r));
    KVC_RUN(base, &r, kv_set(a, "x/rd/one", "1", 1, kvc_record, &r));
    kvc_appends(a, b, &ap, 4, base);
    KVC_RUN(base, &r, kv_log_range(a, "x/rl", 0, 10, 0, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && kvc_entries(&r, 4, 9, 0),
       "a reader: the log keeps log_max (unbounded here)");
    KVC_RUN(base, &r, kv_del(b, "x/rd/one", kvc_record, &r));
    ap.log_idle = 0;
    KVC_RUN(base, &r, kv_append(b, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.id == 10 && r.pos == 10, "the reader gone, appends go on");
    KVC_RUN(base, &r, kv_log_range(a, "x/rl", 0, 10, 0, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.n == 0,
       "... and a log_idle of 0 keeps none (a deeper table is no reader)");
    KVC_RUN(base, &r, kv_log_end(a, "x/rl", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.id == 10 && r.num == 10, "its end stays");

    /* Entries kept only for other processes: a store no other process reads
     * (memory) keeps none; a shared one (Redis) keeps log_idle. A reader
     * still keeps log_max either way. */
    int shared = strcmp(kv_name(a), "memory") != 0;
    ap.log_idle = 2;
    ap.log_idle_remote = 1;
    kvc_appends(a, b, &ap, 3, base);
    KVC_RUN(base, &r, kv_log_range(a, "x/rl", 0, 10, 0, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && (shared ? kvc_entries(&r, 12, 13, 0) : r.n == 0),
       "log_idle_remote, no reader: %s (%zu)",
       shared ? "a shared store keeps log_idle" : "a private store keeps none", r.n);
    KVC_RUN(base, &r, kv_log_end(b, "x/rl", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.id == 13 && r.num == 13, "... and its end moves on");
    KVC_RUN(base, &r, kv_set(a, "x/rd/two", "1", 1, kvc_record, &r));
    kvc_appends(a, b, &ap, 3, base);
    KVC_RUN(base, &r, kv_log_range(b, "x/rl", 13, 10, 0, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && kvc_entries(&r, 14, 16, 0),
       "log_idle_remote with a reader: the log keeps log_max");
    KVC_RUN(base, &r, kv_del(b, "x/rd/two", kvc_record, &r));
    ap.log_idle_remote = 0;
    ap.log_readers = "x/rd";
    ok(kv_append(a, &ap, kvc_record, &r) == KV_EINVAL, "readers must name a table");
    ap.log_readers = "x/rd/";
    ap.log = NULL;
    ok(kv_append(a, &ap, kvc_record, &r) == KV_EINVAL, "readers need a log");
    kv_del(a, "x/rl", NULL, NULL);
    kv_del(a, "x/rctr", NULL, NULL);
    kv_del(a, "x/rd/deeper/not", NULL, NULL);
    kvc_drain(a, base);
}

/* Appends issued in one turn, which a Redis store sends as one script call:
 * each is still its own atomic step. One that fails leaves the others be and
 * takes no id (a list where a log should be, a counter that is no integer);
 * ids follow each other through a floor, each log's positions
 * and end count on, and a log without readers keeps exactly log_idle. */
static void kvc_append_group(kv_store *kv, struct event_base *base)
{
    enum { N = 8 };
    /* log, floor, status, id, pos (the log's count) */
    static const struct {
        const char *log;
        long long floor;
        int status;
        long long id, pos;
    } want[N] = {{"x/g1", 0, KV_OK, 1, 1},     {"x/g2", 0, KV_OK, 2, 1},
                 {"x/gs", 0, KV_ETYPE, 0, 0},  {"x/g1", 0, KV_OK, 3, 2},
                 {"x/g1", 10, KV_OK, 11, 3},   {"x/g1", 0, KV_OK, 12, 4},
                 {"x/g2", 0, KV_EINVAL, 0, 0}, {"x/g2", 0, KV_OK, 13, 2}};
    kvc_rec r[N], q;
    int good = 1, base_done;

    KVC_RUN(base, &q, kv_list_push(kv, "x/gs", "s", 1, 0, kvc_record, &q));
    KVC_RUN(base, &q, kv_set(kv, "x/gbad", "abc", 3, kvc_record, &q));
    memset(r, 0, sizeof(r));
    base_done = kvc_completed;
    for (int i = 0; i < N; i++) {
        kv_append_args ap = {.counter = i == 6 ? "x/gbad" : "x/gc",
                             .floor = want[i].floor,
                             .head = "e",
                             .head_len = 1,
                             .log = want[i].log,
                             .log_readers = "x/gr/",
                             .log_idle = 2};
        good &= KVC_CALL(kv_append(kv, &ap, kvc_record, &r[i])) == 0;
    }
    kvc_wait(base, base_done + N);
    for (int i = 0; i < N; i++)
        good &= kvc_is(&r[i], want[i].status) && r[i].order == base_done + 1 + i &&
                (want[i].status || (r[i].id == want[i].id && r[i].pos == want[i].pos));
    ok(good, "appends issued together: answered in order, each with its id and "
             "position, the failed ones alone");
    KVC_RUN(base, &q, kv_log_range(kv, "x/g1", 0, 10, 0, kvc_record, &q));
    ok(kvc_is(&q, KV_OK) && kvc_entries(&q, 11, 12, -8),
       "no reader: the log keeps exactly its 2 newest (%zu)", q.n);
    KVC_RUN(base, &q, kv_log_end(kv, "x/g1", kvc_record, &q));
    ok(kvc_is(&q, KV_OK) && q.id == 12 && q.num == 4, "its end is the last append's");
    KVC_RUN(base, &q, kv_log_end(kv, "x/g2", kvc_record, &q));
    ok(kvc_is(&q, KV_OK) && q.id == 13 && q.num == 2, "the other log's end too");
    KVC_RUN(base, &q, kv_get(kv, "x/gc", kvc_record, &q));
    ok(kvc_is(&q, KV_OK) && q.len == 2 && memcmp(q.val, "13", 2) == 0,
       "the counter holds the last id");
    KVC_RUN(base, &q, kv_get(kv, "x/gbad", kvc_record, &q));
    ok(kvc_is(&q, KV_OK) && q.len == 3 && memcmp(q.val, "abc", 3) == 0,
       "the counter that is no integer is untouched");
    KVC_RUN(base, &q, kv_list_len(kv, "x/gs", kvc_record, &q));
    ok(kvc_is(&q, KV_OK) && q.num == 1, "the list is untouched");
    kv_del(kv, "x/g1", NULL, NULL);
    kv_del(kv, "x/g2", NULL, NULL);
    kv_del(kv, "x/gs", NULL, NULL);
    kv_del(kv, "x/gc", NULL, NULL);
    kv_del(kv, "x/gbad", NULL, NULL);
    kvc_drain(kv, base);
}

/* ---------------------------------------------- notifications of a batch */

#define KVC_NFRAMES 48   /* appends issued in one turn */
#define KVC_BIGVAL 70000 /* longer than a Redis PUBLISH joins (64 KiB) */

/* What append 'i' of kvc_append_frames() publishes on, and its tail: runs of
 * x/f1 and x/f2, some tails long enough to split a run, one over the bound. */
static const char *kvc_frame_topic(int i)
{
    return i % 7 < 4 || (i >= 30 && i < 40) ? "x/f1" : "x/f2";
}

static size_t kvc_frame_tail(int i, const char **tail)
{
    static char big[KVC_BIGVAL];

    if (big[0] != ':') {
        memset(big, 'p', sizeof(big));
        memcpy(big, ":12:", 4); /* bytes that look like a frame's header */
    }
    *tail = big;
    return i == 35 ? KVC_BIGVAL : i >= 30 && i < 40 ? 20000 : 4 + (size_t)(i % 3);
}

/* Many appends in one turn, to one channel and to several, with a notify among
 * them, their values holding bytes a framing could mistake ('3:', NULs, a
 * length and a colon), some long: every subscriber (the other node's too) gets
 * each value once, whole, in the order of the ids, the notify in its place. A
 * Redis store joins those values into few PUBLISHes and splits them back. */
static void kvc_append_frames(kv_store *a, kv_store *b, kvc_sub *sa, kvc_sub *sb,
                              struct event_base *base)
{
    static const char head[] = {'3', ':', 'a', '\0'};
    static const char note[] = "7:notify:0:";
    static kvc_rec r[KVC_NFRAMES];
    int na = sa->n, nb = sb->n, start = kvc_completed, good = 1;

    memset(r, 0, sizeof(r));
    for (int i = 0; i < KVC_NFRAMES; i++) {
        kv_append_args ap = {.counter = "x/fc",
                             .head = head,
                             .head_len = sizeof(head),
                             .topic = kvc_frame_topic(i)};
        ap.tail_len = kvc_frame_tail(i, &ap.tail);
        good &= KVC_CALL(kv_append(a, &ap, kvc_record, &r[i])) == 0;
        if (i == 20)
            good &= kv_notify(a, "x/f1", note, sizeof(note) - 1, NULL, NULL) == 0;
    }
    kvc_wait(base, start + KVC_NFRAMES);
    for (int i = 0; i < KVC_NFRAMES; i++)
        good &= kvc_is(&r[i], KV_OK) && r[i].id == i + 1;
    ok(good, "%d appends and a notify issued in one turn: ids 1..%d", KVC_NFRAMES,
       KVC_NFRAMES);
    for (int k = 0; k < (a == b ? 1 : 2); k++) {
        kvc_sub *s = k ? sb : sa;
        int from = k ? nb : na, got = kvc_mark(a, s, from, base), in_order = 1;

        for (int i = 0, at = from; i < KVC_NFRAMES && got == KVC_NFRAMES + 1; i++, at++) {
            char want[KVC_MAXVAL];
            const char *tail;
            size_t tl = kvc_frame_tail(i, &tail);
            int idl = snprintf(want + sizeof(head), 24, "%d", i + 1);
            size_t len = sizeof(head) + (size_t)idl + tl, cmp = len;

            memcpy(want, head, sizeof(head));
            memcpy(want + sizeof(head) + idl, tail,
                   KVC_MAXVAL - sizeof(head) - (size_t)idl);
            if (cmp > KVC_MAXVAL)
                cmp = KVC_MAXVAL; /* what a note keeps */
            in_order &= strcmp(kvc_note_at(s, at)->topic, kvc_frame_topic(i)) == 0 &&
                        kvc_note_at(s, at)->len == len &&
                        memcmp(kvc_note_at(s, at)->data, want, cmp) == 0;
            if (i == 20)
                in_order &= kvc_note_is(s, ++at, "x/f1", note, sizeof(note) - 1);
        }
        ok(got == KVC_NFRAMES + 1 && in_order,
           "node %c's subscriber got every value once, whole, in id order, the notify "
           "in its place (%d)",
           k ? 'b' : 'a', got);
    }
    ok(!sa->bad && !sb->bad, "each value is NUL-terminated past its length");
    kv_del(a, "x/fc", NULL, NULL);
    kvc_drain(a, base);
}

static void kv_contract_nodes(kv_store *a, kv_store *b, struct event_base *base)
{
    kvc_sub *sa = &kvc_sub_a, *sb = a == b ? &kvc_sub_a : &kvc_sub_b;

    memset(&kvc_sub_a, 0, sizeof(kvc_sub_a));
    memset(&kvc_sub_b, 0, sizeof(kvc_sub_b));
    kvc_subscribe(a, sa, base);
    if (b != a)
        kvc_subscribe(b, sb, base);
    kvc_notify_basics(a, b, sa, sb, base);
    kvc_notify_after_set(a, b, sb, base);
    kvc_append_basics(a, sa, base);
    kvc_append_nodes(a, b, sa, sb, base);
    kvc_logs(a, b, base);
    kvc_log_readers(a, b, base);
    kvc_append_group(a, base);
    kvc_append_frames(a, b, sa, sb, base);
    ok(!kvc_timed_out, "no wait timed out");
}

static void kv_contract_run(kv_store *kv, struct event_base *base)
{
    kvc_completed = 0;
    kvc_strings(kv, base);
    kvc_incr(kv, base);
    kvc_scan(kv, base);
    kvc_lists(kv, base);
    kvc_ordering(kv, base);
    ok(!kvc_timed_out, "no wait timed out");
}

#endif
