/* kv_contract.h - the behaviour every kv store must show, as one TAP test body.
 *
 * kv_contract_run() drives a store only through the kv.h wrappers, so the same
 * tests run against the in-memory store and, later, the Redis store. It uses
 * the tables "c/", "n/", "n/a/", "e/", "l/", "t/" and "o/" and deletes its keys
 * when done. Include it once, after tap.h, in a test program.
 */
#ifndef KV_CONTRACT_H
#define KV_CONTRACT_H

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
    long long num;
    char val[KVC_MAXVAL];
    size_t len;
    size_t n;
    char key[KVC_MAXITEMS][KVC_MAXVAL];
    char item[KVC_MAXITEMS][KVC_MAXVAL];
    size_t ilen[KVC_MAXITEMS];
    int key_null[KVC_MAXITEMS];
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

    KVC_RUN(base, &r, kv_get(kv, "t/s", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.len == 1 && r.val[0] == '1', "the string is untouched");
    KVC_RUN(base, &r, kv_list_len(kv, "t/l", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 1, "the list is untouched");

    KVC_RUN(base, &r, kv_del(kv, "t/l", kvc_record, &r));
    KVC_RUN(base, &r, kv_set(kv, "t/l", "x", 1, kvc_record, &r));
    ok(kvc_is(&r, KV_OK), "a deleted list's key takes a string");
    KVC_RUN(base, &r, kv_del(kv, "t/l", kvc_record, &r));
    KVC_RUN(base, &r, kv_del(kv, "t/s", kvc_record, &r));
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
