/* test_kv.c - both stores: the shared kv contract, scale checks, then each store's own.
 *
 * The memory store runs the contract alone (a cluster of one node); the Redis
 * store runs it as two nodes, two stores on one private redis-server, then goes
 * through losing its subscription, a Redis restart, a SCRIPT FLUSH and being
 * freed at awkward moments; and, on a redis-server of their own, a set-up
 * refused, a Redis frozen with SIGSTOP (and a store abandoned on it, as at a
 * forced exit) and one restarted slow to load. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <event2/event.h>

#include "kv/kv.h"
#include "tests/tap.h"
#include "tests/redis_server.h"
#include "tests/kv_contract.h"

#define NKEYS 10000
#define NLIST 5000

/* Checks a scan of "big/" over keys big/00000 .. big/09999 (pushed in a
 * scrambled order), with a deeper table big/00500/ mixed in. */
static void check_big_scan(const kv_result *res, void *arg)
{
    int *good = arg;
    char want[32];

    *good = res->status == KV_OK && res->n == NKEYS;
    for (size_t i = 0; *good && i < res->n; i++) {
        int len = snprintf(want, sizeof(want), "big/%05zu", i);

        *good = res->items[i].klen == (size_t)len &&
                memcmp(res->items[i].key, want, (size_t)len) == 0 &&
                res->items[i].vlen == 5 && memcmp(res->items[i].val, want + 4, 5) == 0;
    }
}

static void check_odd_scan(const kv_result *res, void *arg)
{
    int *good = arg;
    char want[32];

    *good = res->status == KV_OK && res->n == NKEYS / 2;
    for (size_t i = 0; *good && i < res->n; i++) {
        int len = snprintf(want, sizeof(want), "big/%05zu", 2 * i + 1);

        *good = res->items[i].klen == (size_t)len &&
                memcmp(res->items[i].key, want, (size_t)len) == 0;
    }
}

static void check_deeper_scan(const kv_result *res, void *arg)
{
    int *good = arg;

    *good = res->status == KV_OK && res->n == 1 &&
            strcmp(res->items[0].key, "big/00500/deeper") == 0;
}

static void check_big_list(const kv_result *res, void *arg)
{
    int *good = arg;
    char want[32];

    /* After pushing 0..NLIST-1 with max NLIST/2, the range from 10 holds
     * NLIST/2 + 10 onwards. */
    *good = res->status == KV_OK && res->n == 100;
    for (size_t i = 0; *good && i < res->n; i++) {
        int len = snprintf(want, sizeof(want), "%zu", NLIST / 2 + 10 + i);

        *good = res->items[i].key == NULL && res->items[i].vlen == (size_t)len &&
                memcmp(res->items[i].val, want, (size_t)len) == 0;
    }
}

static void count_cb(const kv_result *res, void *arg)
{
    long long *sum = arg;

    if (res->status == KV_OK)
        *sum += res->num;
}

static void settled(const kv_result *res, void *arg)
{
    *(int *)arg = 1;
}

/* Run the loop until everything issued so far has called back (kv_flush runs
 * last), bounded so a dead store cannot hang the test. */
static void settle(kv_store *kv, struct event_base *base)
{
    int done = 0;
    if (kv_flush(kv, settled, &done) < 0)
        return;
    for (int i = 0; !done && i < 100000; i++)
        event_base_loop(base, EVLOOP_ONCE);
}

static void big_scan(kv_store *kv, struct event_base *base)
{
    char key[32], val[8];
    int good = 0;

    /* 7919 is prime, so i * 7919 % NKEYS visits every index once, out of order. */
    for (size_t i = 0; i < NKEYS; i++) {
        size_t k = i * 7919 % NKEYS;

        snprintf(key, sizeof(key), "big/%05zu", k);
        snprintf(val, sizeof(val), "%05zu", k);
        kv_set(kv, key, val, 5, NULL, NULL);
        snprintf(key, sizeof(key), "big/%05zu/deeper", k);
        if (k % 100 == 0)
            kv_set(kv, key, "x", 1, NULL, NULL);
    }
    ok(kv_scan(kv, "big/", check_big_scan, &good) == 0, "scan of %d keys starts", NKEYS);
    settle(kv, base);
    ok(good, "scan gives all %d keys in byte order, without the deeper tables", NKEYS);

    for (size_t i = 0; i < NKEYS; i += 2) {
        snprintf(key, sizeof(key), "big/%05zu", i);
        kv_del(kv, key, NULL, NULL);
    }
    good = 0;
    ok(kv_scan(kv, "big/", check_odd_scan, &good) == 0, "scan after deleting half");
    settle(kv, base);
    ok(good, "scan gives the %d odd keys left, in order", NKEYS / 2);
    good = 0;
    ok(kv_scan(kv, "big/00500/", check_deeper_scan, &good) == 0,
       "scan of a deeper table");
    settle(kv, base);
    ok(good, "a deeper table holds only its own key");
}

static void big_list(kv_store *kv, struct event_base *base)
{
    char val[32];
    long long dropped = 0, len = 0;
    int good = 0;

    for (size_t i = 0; i < NLIST; i++) {
        snprintf(val, sizeof(val), "%zu", i);
        kv_list_push(kv, "big/list", val, strlen(val), NLIST / 2, count_cb, &dropped);
    }
    kv_list_len(kv, "big/list", count_cb, &len);
    kv_list_range(kv, "big/list", 10, 100, check_big_list, &good);
    settle(kv, base);
    ok(dropped == NLIST / 2, "pushing %d with max %d dropped %lld", NLIST, NLIST / 2,
       dropped);
    ok(len == NLIST / 2, "the list holds its max (%lld)", len);
    ok(good, "range over a ring buffer that wrapped and grew gives the right items");
}

static int freed_inside;

static void free_inside(const kv_result *res, void *arg)
{
    kv_store *kv = arg;

    freed_inside++;
    kv_free(kv); /* freed after this callback returns; the rest never run */
}

static int late_calls; /* callbacks of a store after it was freed */

static void late_cb(const kv_result *res, void *arg)
{
    late_calls++;
}

static void late_note(const char *topic, const char *data, size_t len, void *arg)
{
    late_calls++;
}

static int freed_in_note;

/* Frees the store *arg from inside its own notification callback. */
static void free_in_note(const char *topic, const char *data, size_t len, void *arg)
{
    kv_store **kv = arg;

    freed_in_note++;
    kv_free(*kv);
    *kv = NULL;
}

/* Run the loop for 'ms' milliseconds. */
static void spin(struct event_base *base, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

static int is_null(const void *p)
{
    return *(void *const *)p == NULL;
}

static void free_checks(struct event_base *base)
{
    kv_store *kv = kv_memory_new(base);
    long long n = 0;

    /* Pending callbacks are dropped, and nothing leaks. */
    kv_set(kv, "f/a", "1", 1, count_cb, &n);
    kv_list_push(kv, "f/l", "1", 1, 0, count_cb, &n);
    kv_scan(kv, "f/", count_cb, &n);
    kv_free(kv);
    event_base_loop(base, EVLOOP_NONBLOCK);
    ok(n == 0, "kv_free drops pending callbacks");

    kv = kv_memory_new(base);
    kv_set(kv, "f/a", "1", 1, free_inside, kv);
    kv_set(kv, "f/b", "1", 1, free_inside, kv);
    kv_get(kv, "f/a", free_inside, kv);
    settle(kv, base);
    ok(freed_inside == 1, "kv_free inside a callback: later callbacks do not run");

    /* A subscription with notifications on their way. */
    kv = kv_memory_new(base);
    late_calls = 0;
    ok(kv_subscribe(kv, "f/", late_note, NULL) == 0, "subscribe, then free at once");
    kv_notify(kv, "f/t", "1", 1, late_cb, NULL);
    kv_append(kv,
              &(kv_append_args){.counter = "f/c",
                                .lists = (const char *const[]){"f/l"},
                                .nlists = 1,
                                .topic = "f/t"},
              late_cb, NULL);
    kv_free(kv);
    event_base_loop(base, EVLOOP_NONBLOCK);
    ok(late_calls == 0, "kv_free drops pending notifications too");

    kv = kv_memory_new(base);
    freed_in_note = 0;
    kv_subscribe(kv, "f/", free_in_note, &kv);
    for (int i = 0; i < 3; i++)
        kv_notify(kv, "f/t", "x", 1, NULL, NULL);
    for (int i = 0; i < 10; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ok(freed_in_note == 1 && kv == NULL,
       "kv_free inside a notification: no later notification runs");
    kv_free(NULL);
    ok(1, "kv_free(NULL) is a no-op");
}

/* The memory store queues a notification where it was published, so its
 * subscriber hears it in order with the callbacks around it. */
static void memory_note_order(kv_store *kv, struct event_base *base)
{
    kvc_sub *s = &kvc_sub_a;
    kvc_rec r[3];
    int start = kvc_completed, n = s->n;

    memset(r, 0, sizeof(r));
    kv_get(kv, "x/none", kvc_record, &r[0]);
    kv_notify(kv, "x/t", "1", 1, kvc_record, &r[1]);
    kv_get(kv, "x/none", kvc_record, &r[2]);
    kvc_wait(base, start + 3);
    ok(s->n == n + 1 && kvc_note_at(s, n)->seen == start + 1 && r[1].order == start + 2 &&
           r[2].order == start + 3,
       "a notification runs between the callbacks of the operations around it");
}

/* ------------------------------------------------------------- Redis only */

/* Kill the subscribers' connections; publish while they are down; they come
 * back and say so once. */
static void redis_sub_loss(kv_store *a, kv_store *b, redis_server *rs,
                           struct event_base *base)
{
    kvc_sub *sa = &kvc_sub_a, *sb = &kvc_sub_b;
    int ra = sa->resets, rb = sb->resets, na, nb;
    kvc_rec r;

    ok(redis_server_cmd(rs, "CLIENT KILL TYPE pubsub") == 0,
       "CLIENT KILL TYPE pubsub: both nodes' subscriber connections are closed");
    kvc_until(base, kvc_down, a);
    kvc_until(base, kvc_down, b);
    ok(!kv_subscribed(a) && !kv_subscribed(b), "both nodes see their subscription drop");
    ok(kv_health(a) == 0 && kv_health(b) == 0, "their main connections are untouched");
    na = sa->n;
    nb = sb->n;
    KVC_RUN(base, &r, kv_notify(b, "x/missed", "m", 1, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && !kv_subscribed(a) && !kv_subscribed(b),
       "node b publishes while neither subscription is live");
    kvc_wait_count(base, &sa->resets, ra + 1);
    kvc_wait_count(base, &sb->resets, rb + 1);
    ok(kv_subscribed(a) && kv_subscribed(b), "both subscriptions are live again");
    spin(base, 50);
    ok(sa->resets == ra + 1 && sb->resets == rb + 1 && !sa->bad && !sb->bad,
       "each node was told once (topic NULL) that it may have missed notifications");
    ok(kv_notify(b, "x/after", "a", 1, NULL, NULL) == 0, "node b publishes again");
    kvc_wait_count(base, &sa->n, na + 1);
    kvc_wait_count(base, &sb->n, nb + 1);
    ok(kvc_note_is(sa, na, "x/after", "a", 1) && kvc_note_is(sb, nb, "x/after", "a", 1),
       "both nodes receive it (and not the one published while they were down)");
}

/* Redis restarts, empty: both connections of both nodes come back, the script
 * is loaded again, and 'floor' carries the ids on past the lost counter. */
static void redis_restart(kv_store *a, kv_store *b, redis_server *rs,
                          struct event_base *base)
{
    static const char *const lists[] = {"x/r"};
    kv_append_args ap = {.counter = "x/rseq",
                         .head = "r",
                         .head_len = 1,
                         .lists = lists,
                         .nlists = 1,
                         .topic = "x/r"};
    kvc_sub *sa = &kvc_sub_a, *sb = &kvc_sub_b;
    int ra = sa->resets, rb = sb->resets, na, nb;
    long long last;
    kvc_rec r;

    for (int i = 0; i < 3; i++)
        KVC_RUN(base, &r, kv_append(a, &ap, kvc_record, &r));
    last = r.num;
    ok(kvc_is(&r, KV_OK) && last == 3, "three appends before the restart (last id %lld)",
       last);
    ok(redis_server_restart(rs) == 0, "redis-server restarts on its port, empty");
    kvc_wait_count(base, &sa->resets, ra + 1);
    kvc_wait_count(base, &sb->resets, rb + 1);
    ok(sa->resets == ra + 1 && sb->resets == rb + 1,
       "both nodes resubscribe and are told once they may have missed notifications");
    na = sa->n;
    nb = sb->n;
    ap.floor = last;
    KVC_RUN(base, &r, kv_append(b, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == last + 1,
       "node b appends after the restart (script loaded again); floor gives id %lld",
       r.num);
    KVC_RUN(base, &r, kv_append(a, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == last + 2, "node a too: id %lld", r.num);
    kvc_wait_count(base, &sa->n, na + 2);
    kvc_wait_count(base, &sb->n, nb + 2);
    ok(kvc_note_is(sa, na, "x/r", "r4", 2) && kvc_note_is(sa, na + 1, "x/r", "r5", 2) &&
           kvc_note_is(sb, nb, "x/r", "r4", 2) && kvc_note_is(sb, nb + 1, "x/r", "r5", 2),
       "both nodes hear both appends, in id order");
    KVC_RUN(base, &r, kv_list_len(a, "x/r", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 2, "the list holds the two appended since");
    kv_del(a, "x/r", NULL, NULL);
    kv_del(a, "x/rseq", NULL, NULL);
    kvc_drain(a, base);
}

/* Redis forgets the script while connected: one append fails, changing
 * nothing, and the store loads the script again. */
static void redis_noscript(kv_store *kv, redis_server *rs, struct event_base *base)
{
    static const char *const lists[] = {"x/s"};
    kv_append_args ap = {.counter = "x/sseq", .lists = lists, .nlists = 1};
    kvc_rec r;

    KVC_RUN(base, &r, kv_append(kv, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 1, "append before SCRIPT FLUSH");
    ok(redis_server_cmd(rs, "SCRIPT FLUSH") == 0, "SCRIPT FLUSH");
    KVC_RUN(base, &r, kv_append(kv, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_EIO), "the next append fails with KV_EIO (NOSCRIPT) (%d)", r.status);
    KVC_RUN(base, &r, kv_list_len(kv, "x/s", kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 1, "... having pushed nothing");
    KVC_RUN(base, &r, kv_append(kv, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 2,
       "the script was loaded again: the one after succeeds with the next id (%lld)",
       r.num);
    kv_del(kv, "x/s", NULL, NULL);
    kv_del(kv, "x/sseq", NULL, NULL);
    kvc_drain(kv, base);
}

/* Free a Redis store at awkward moments: ASan/LSan and the counters check. */
static void redis_free_checks(redis_server *rs, struct event_base *base)
{
    static const char *const lists[] = {"x/f"};
    kv_append_args ap = {.counter = "x/fseq",
                         .head = "f",
                         .head_len = 1,
                         .lists = lists,
                         .nlists = 1,
                         .topic = "x/f"};
    kv_redis_opts ro = {.url = rs->url, .prefix = "test:", .buffertime_ms = 5};
    char err[256];
    kv_store *kv;

    late_calls = 0;
    kv = kv_redis_new(base, &ro, err, sizeof(err));
    ok(kv && kv_subscribe(kv, "x/", late_note, NULL) == 0,
       "a new store subscribes and issues operations");
    kv_append(kv, &ap, late_cb, NULL);
    kv_notify(kv, "x/f", "1", 1, late_cb, NULL);
    kv_free(kv);
    ok(1, "freed while still connecting");

    kv = kv_redis_new(base, &ro, err, sizeof(err));
    kv_subscribe(kv, "x/", late_note, NULL);
    kvc_until(base, kvc_live, kv);
    ok(kv_subscribed(kv), "another store's subscription is live");
    /* Redis holds every client's commands for a while: what is sent now stays
     * in flight. */
    ok(redis_server_cmd(rs, "CLIENT PAUSE 400 ALL") == 0, "CLIENT PAUSE 400 ALL");
    for (int i = 0; i < 10; i++) {
        kv_append(kv, &ap, late_cb, NULL);
        kv_notify(kv, "x/f", "2", 1, late_cb, NULL);
        kv_get(kv, "x/fseq", late_cb, NULL);
    }
    spin(base, 50);
    ok(late_calls == 0, "30 operations sent, unanswered");
    kv_append(kv, &ap, late_cb, NULL); /* and more not sent yet */
    kv_set(kv, "x/fk", "v", 1, late_cb, NULL);
    kv_free(kv);
    spin(base, 600);
    ok(late_calls == 0,
       "freed with a live subscription, operations in flight and pending: no callback "
       "after kv_free");

    kv = kv_redis_new(base, &ro, err, sizeof(err));
    freed_in_note = 0;
    kv_subscribe(kv, "x/", free_in_note, &kv);
    kvc_until(base, kvc_live, kv);
    for (int i = 0; i < 3; i++)
        kv_notify(kv, "x/f", "3", 1, NULL, NULL);
    kv_append(kv, &ap, NULL, NULL);
    kvc_until(base, is_null, &kv);
    spin(base, 200);
    ok(freed_in_note == 1 && kv == NULL,
       "kv_free inside a notification: none runs after it");

    /* Three appends in one call: one PUBLISH, freed at its first value. */
    kv = kv_redis_new(base, &ro, err, sizeof(err));
    freed_in_note = 0;
    kv_subscribe(kv, "x/", free_in_note, &kv);
    kvc_until(base, kvc_live, kv);
    for (int i = 0; i < 3; i++)
        kv_append(kv, &ap, NULL, NULL);
    kvc_until(base, is_null, &kv);
    spin(base, 200);
    ok(freed_in_note == 1 && kv == NULL,
       "kv_free at the first value of a joined PUBLISH: the others do not run");

    /* One operation per batch: several batches in flight when a callback frees. */
    ro.maxbuffer = 1;
    kv = kv_redis_new(base, &ro, err, sizeof(err));
    freed_inside = 0;
    kv_subscribe(kv, "z/", late_note, NULL); /* hears none of them */
    late_calls = 0;
    kvc_until(base, kvc_live, kv);
    kv_set(kv, "x/fi", "1", 1, free_inside, kv);
    kv_append(kv, &ap, free_inside, kv);
    kv_get(kv, "x/fi", free_inside, kv);
    kv_set(kv, "x/fi", "2", 1, free_inside, kv);
    kvc_wait_count(base, &freed_inside, 1);
    spin(base, 200);
    ok(freed_inside == 1 && late_calls == 0,
       "kv_free inside an operation's callback, batches in flight: no callback after it "
       "(%d, %d)",
       freed_inside, late_calls);

    /* Nothing listens there: the operations fail after waiting, from a timer. */
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", redis_free_port());
    ro.url = url;
    kv = kv_redis_new(base, &ro, err, sizeof(err));
    freed_inside = 0;
    late_calls = 0;
    kv_subscribe(kv, "x/", late_note, NULL);
    kv_set(kv, "x/fi", "1", 1, free_inside, kv);
    kv_append(kv, &ap, free_inside, kv);
    kv_notify(kv, "x/f", "1", 1, free_inside, kv);
    kvc_wait_count(base, &freed_inside, 1);
    spin(base, 300);
    ok(freed_inside == 1 && late_calls == 0,
       "kv_free inside the callback of an operation failed for want of Redis");
    ro.url = rs->url;

    kv = kv_redis_new(base, &ro, err, sizeof(err));
    kv_del(kv, "x/f", NULL, NULL);
    kv_del(kv, "x/fseq", NULL, NULL);
    kv_del(kv, "x/fi", NULL, NULL);
    kv_del(kv, "x/fk", NULL, NULL);
    settle(kv, base);
    kv_free(kv);
}

static void ignore_note(const char *topic, const char *data, size_t len, void *arg)
{
}

/* What a store reports through kv_set_report(), counted per event. */
typedef struct reports {
    int n[KV_EV_BAD_RECORD + 1];
    char last[KV_EV_BAD_RECORD + 1][160];
} reports;

static void on_report(int event, const char *detail, void *arg)
{
    reports *r = arg;
    if (event < 0 || event > KV_EV_BAD_RECORD)
        return;
    r->n[event]++;
    snprintf(r->last[event], sizeof(r->last[event]), "%s", detail);
}

/* kv_used(): the memory store counts what its data takes, and gives it back. */
static void memory_used_checks(kv_store *kv, struct event_base *base)
{
    char key[32], val[1000];
    size_t before = kv_used(kv);
    memset(val, 'v', sizeof(val));
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "u/%d", i);
        kv_set(kv, key, val, sizeof(val), NULL, NULL);
    }
    size_t strings = kv_used(kv) - before;
    ok(strings >= 100 * 1000 && strings <= 100 * 1200,
       "100 strings of 1000 bytes take what they take (%zu)", strings);
    kv_append_args ap = {.counter = "u/ctr",
                         .tail = val,
                         .tail_len = sizeof(val),
                         .log = "u/log",
                         .log_max = 10};
    for (int i = 0; i < 50; i++)
        kv_append(kv, &ap, NULL, NULL);
    size_t logged = kv_used(kv) - before - strings;
    ok(logged >= 10 * 1000 && logged <= 16 * 1000,
       "a log bounded to 10 holds 10 entries' worth (%zu)", logged);
    kv_log_trim(kv, "u/log", 1, NULL, NULL);
    ok(kv_used(kv) - before - strings < logged - 8 * 1000, "trimming gives it back");
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "u/%d", i);
        kv_del(kv, key, NULL, NULL);
    }
    kv_del(kv, "u/log", NULL, NULL);
    kv_del(kv, "u/ctr", NULL, NULL);
    kvc_drain(kv, base);
    ok(kv_used(kv) == before, "deleting everything gives every byte back (%zu, %zu)",
       kv_used(kv), before);
}

/* A store never logs: a write without a callback that fails is reported. */
static void memory_reports(kv_store *kv, struct event_base *base)
{
    reports r = {0};
    kv_set_report(kv, on_report, &r);
    kv_set(kv, "rp/s", "x", 1, NULL, NULL);
    kv_list_push(kv, "rp/s", "y", 1, 0, NULL, NULL); /* a list op on a string */
    kvc_drain(kv, base);
    ok(r.n[KV_EV_FAILED] == 1 && strstr(r.last[KV_EV_FAILED], "list_push 'rp/s'"),
       "a failed write without a callback is reported (%s)", r.last[KV_EV_FAILED]);
    kv_set_report(kv, NULL, NULL);
    kv_list_push(kv, "rp/s", "y", 1, 0, NULL, NULL);
    kvc_drain(kv, base);
    ok(r.n[KV_EV_FAILED] == 1, "with no hook set, nothing is reported");
    kv_del(kv, "rp/s", NULL, NULL);
    kvc_drain(kv, base);
    ok(strcmp(kv_event_name(KV_EV_CONNECTED), "connected") == 0 &&
           strcmp(kv_event_name(KV_EV_BAD_RECORD), "bad_record") == 0 &&
           strcmp(kv_event_name(-1), "unknown") == 0 &&
           strcmp(kv_event_name(KV_EV_BAD_RECORD + 1), "unknown") == 0,
       "every event has a name");
}

/* The Redis store reports its connection and subscription coming up, and
 * failed attempts where nothing listens. */
static void redis_reports(const char *url, struct event_base *base)
{
    char err[256], down[64];
    reports r = {0}, rd = {0};
    kv_redis_opts ro = {.url = url, .prefix = "rep:", .maxbuffer = 100};
    kv_store *kv = kv_redis_new(base, &ro, err, sizeof(err));

    ok(kv != NULL, "a store to watch (%s)", kv ? "" : err);
    if (!kv)
        return;
    kv_set_report(kv, on_report, &r);
    kv_subscribe(kv, "rp/", ignore_note, NULL);
    kvc_wait_count(base, &r.n[KV_EV_SUBSCRIBED], 1);
    kvc_wait_count(base, &r.n[KV_EV_CONNECTED], 1);
    ok(r.n[KV_EV_CONNECTED] == 1 && strstr(r.last[KV_EV_CONNECTED], "connected to"),
       "the connection is reported (%s)", r.last[KV_EV_CONNECTED]);
    ok(r.n[KV_EV_SUBSCRIBED] == 1, "the subscription is reported (%s)",
       r.last[KV_EV_SUBSCRIBED]);
    ok(r.n[KV_EV_LOST] == 0 && r.n[KV_EV_FAILED] == 0 && r.n[KV_EV_ERROR] == 0,
       "nothing went wrong");
    kv_free(kv);

    snprintf(down, sizeof(down), "redis://127.0.0.1:%d/0", redis_free_port());
    ro.url = down;
    kv = kv_redis_new(base, &ro, err, sizeof(err));
    kv_set_report(kv, on_report, &rd);
    kvc_wait_count(base, &rd.n[KV_EV_RETRY], 1);
    ok(rd.n[KV_EV_RETRY] >= 1 && rd.n[KV_EV_CONNECTED] == 0,
       "attempts where nothing listens are reported as retries (%s)",
       rd.last[KV_EV_RETRY]);
    kv_free(kv);
}

/* ------------------------------------------------------------- Redis faults */

#define FAULT_TIMEOUT_MS 300 /* the reply timeout of the stores below */

static kvc_sub fault_sub;

static int kv_up(const void *kv)
{
    return kv_health((kv_store *)kv) == 0;
}

static int kv_unreachable(const void *kv)
{
    return kv_health((kv_store *)kv) == KV_EIO;
}

static long ms_since(const struct timeval *t0)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_usec - t0->tv_usec) / 1000;
}

/* Like kvc_until, for up to 'seconds' (kvc_until gives up after 5). */
static void until_long(struct event_base *base, int (*pred)(const void *),
                       const void *arg, int seconds)
{
    for (int i = 0; i < (seconds + 4) / 5 && !pred(arg); i++)
        kvc_until(base, pred, arg);
}

/* A store with the short reply timeout, reporting into 'rp', subscribed to
 * "x/" into fault_sub (reset), live. */
static kv_store *fault_store(const redis_server *rs, const char *prefix, reports *rp,
                             struct event_base *base)
{
    kv_redis_opts ro = {.url = rs->url,
                        .prefix = prefix,
                        .buffertime_ms = 5,
                        .timeout_ms = FAULT_TIMEOUT_MS};
    char err[256];
    kv_store *kv = kv_redis_new(base, &ro, err, sizeof(err));

    memset(rp, 0, sizeof(*rp));
    memset(&fault_sub, 0, sizeof(fault_sub));
    if (!kv)
        return NULL;
    kv_set_report(kv, on_report, rp);
    kv_subscribe(kv, "x/", kvc_notified, &fault_sub);
    kvc_until(base, kvc_live, kv);
    return kv;
}

/* One command as an administrator: with AUTH first when 'pw' is not NULL. */
static int admin(const redis_server *rs, const char *pw, const char *fmt, const char *arg)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", rs->port, tv);
    redisReply *r = NULL;
    int rc = -1;

    if (c && !c->err && (!pw || (r = redisCommand(c, "AUTH %s", pw)))) {
        if (r)
            freeReplyObject(r);
        r = redisCommand(c, fmt, arg);
        rc = r && r->type != REDIS_REPLY_ERROR ? 0 : -1;
    }
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    return rc;
}

static int refused_twice(const void *rp)
{
    return ((const reports *)rp)->n[KV_EV_ERROR] >= 2;
}

/* A set-up step refused (here: Redis asks for a password the store does not
 * have): the connection is dropped, the refusal reported, and it is tried
 * again with the backoff, so fixing Redis is enough. */
static void redis_refused(redis_server *rs, struct event_base *base)
{
    static const char *const lists[] = {"x/p"};
    kv_append_args ap = {.counter = "x/pseq", .lists = lists, .nlists = 1};
    reports rp;
    kvc_rec r;
    kv_store *kv = fault_store(rs, "ref:", &rp, base);

    ok(kv && kv_subscribed(kv), "a store to refuse");
    if (!kv)
        return;
    ok(admin(rs, NULL, "CONFIG SET requirepass %s", "sekrit") == 0 &&
           admin(rs, "sekrit", "CLIENT KILL TYPE %s", "normal") == 0,
       "Redis now wants a password, and drops the store's connection");
    until_long(base, refused_twice, &rp, 10);
    ok(rp.n[KV_EV_ERROR] >= 2 && strstr(rp.last[KV_EV_ERROR], "NOAUTH") &&
           kv_health(kv) == KV_EIO && !kv_subscribed(kv),
       "the set-up is refused, reported and retried; the store is unreachable, the "
       "subscription down (%s)",
       rp.last[KV_EV_ERROR]);
    ok(admin(rs, "sekrit", "CONFIG SET requirepass %s", "") == 0, "the password goes");
    until_long(base, kvc_live, kv, 10);
    ok(kv_health(kv) == 0 && kv_subscribed(kv) && fault_sub.resets == 1,
       "the store comes up by itself, then the subscription, which says it was lost");
    KVC_RUN(base, &r, kv_append(kv, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 1, "an append works (the script was loaded)");
    kv_del(kv, "x/p", NULL, NULL);
    kv_del(kv, "x/pseq", NULL, NULL);
    kvc_drain(kv, base);
    kv_free(kv);
}

/* Redis frozen (SIGSTOP): an idle store finds out with its probe, a busy one
 * with the reply timeout; every operation fails with KV_EIO within the
 * timeout; the subscription goes with the connection; SIGCONT brings both
 * back by themselves. */
static void redis_frozen(redis_server *rs, struct event_base *base)
{
    static const char *const lists[] = {"x/z"};
    kv_append_args ap = {
        .counter = "x/zseq", .lists = lists, .nlists = 1, .topic = "x/z"};
    struct timeval t0;
    reports rp;
    kvc_rec set, app, get, fl, r;
    long ms;
    int want;
    kv_store *kv = fault_store(rs, "frz:", &rp, base);

    ok(kv && kv_subscribed(kv), "a store with a %d ms reply timeout", FAULT_TIMEOUT_MS);
    if (!kv)
        return;
    KVC_RUN(base, &r, kv_append(kv, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 1, "an append before the freeze");

    /* Idle: only the probe (every second) can find it. */
    ok(kill(rs->pid, SIGSTOP) == 0, "SIGSTOP, the store idle");
    gettimeofday(&t0, NULL);
    kvc_until(base, kv_unreachable, kv);
    ms = ms_since(&t0);
    ok(kv_health(kv) == KV_EIO && ms <= 1000 + FAULT_TIMEOUT_MS + 600,
       "idle, the store says unreachable after %ld ms", ms);
    ok(rp.n[KV_EV_LOST] == 1 && strstr(rp.last[KV_EV_LOST], "no reply"),
       "KV_EV_LOST is reported (%s)", rp.last[KV_EV_LOST]);
    ok(!kv_subscribed(kv) && rp.n[KV_EV_SUB_LOST] == 1,
       "the subscription is dropped with the connection (%s)", rp.last[KV_EV_SUB_LOST]);
    gettimeofday(&t0, NULL);
    KVC_RUN(base, &r, kv_get(kv, "x/zk", kvc_record, &r));
    ms = ms_since(&t0);
    ok(kvc_is(&r, KV_EIO) && ms <= FAULT_TIMEOUT_MS + 400,
       "an operation waiting for a connection fails with KV_EIO after %ld ms", ms);
    ok(kill(rs->pid, SIGCONT) == 0, "SIGCONT");
    until_long(base, kvc_live, kv, 15);
    ok(kv_health(kv) == 0 && kv_subscribed(kv) && fault_sub.resets == 1,
       "connected and subscribed again by itself, and told once that notifications "
       "may have been missed");

    /* Busy: frozen while the store still thinks it is up. */
    ok(kill(rs->pid, SIGSTOP) == 0, "SIGSTOP again, then operations");
    gettimeofday(&t0, NULL);
    want = kvc_completed + 4;
    memset(&set, 0, sizeof(set));
    memset(&app, 0, sizeof(app));
    memset(&get, 0, sizeof(get));
    memset(&fl, 0, sizeof(fl));
    ok(kv_set(kv, "x/zk", "v", 1, kvc_record, &set) == 0 &&
           kv_append(kv, &ap, kvc_record, &app) == 0 &&
           kv_get(kv, "x/zk", kvc_record, &get) == 0 &&
           kv_flush(kv, kvc_record, &fl) == 0,
       "set, append, get, flush start");
    kvc_wait(base, want);
    ms = ms_since(&t0);
    ok(kvc_is(&set, KV_EIO) && kvc_is(&app, KV_EIO) && kvc_is(&get, KV_EIO) &&
           kvc_is(&fl, KV_EIO),
       "all fail with KV_EIO (%d %d %d %d)", set.status, app.status, get.status,
       fl.status);
    ok(set.order < app.order && app.order < get.order && get.order < fl.order,
       "in issue order");
    ok(ms <= FAULT_TIMEOUT_MS + 400, "within the reply timeout: %ld ms", ms);
    ok(kv_health(kv) == KV_EIO && !kv_subscribed(kv) && rp.n[KV_EV_LOST] == 2,
       "unreachable at once, the subscription down, KV_EV_LOST reported (%s)",
       rp.last[KV_EV_LOST]);
    spin(base, 3 * FAULT_TIMEOUT_MS);
    ok(kill(rs->pid, SIGCONT) == 0, "SIGCONT after %d ms more", 3 * FAULT_TIMEOUT_MS);
    until_long(base, kvc_live, kv, 15);
    ok(kv_health(kv) == 0 && kv_subscribed(kv) && fault_sub.resets == 2,
       "back by itself, and told again");
    KVC_RUN(base, &r, kv_append(kv, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num >= 2, "an append works again: id %lld", r.num);
    /* What Redis had read before it froze it runs when it resumes, though the
     * store gave up on it: an operation that timed out has an unknown outcome. */
    diag("the append that timed out was %s when Redis resumed",
         r.num == 3 ? "applied" : "not applied");
    kv_del(kv, "x/z", NULL, NULL);
    kv_del(kv, "x/zseq", NULL, NULL);
    kv_del(kv, "x/zk", NULL, NULL);
    kvc_drain(kv, base);
    kv_free(kv);
}

static kv_store *abandoned_kv; /* redis_abandoned's store */

/* A callback that issues another operation, as a waiting caller's error path
 * may: what kv_get returned, from inside a callback of an abandoned store. */
static int reissued = 1;
static kvc_rec reissued_rec;
static void reissue(const kv_result *res, void *arg)
{
    kvc_record(res, arg);
    reissued = kv_get(abandoned_kv, "x/ak", kvc_record, &reissued_rec);
}

/* kv_abandon() on a frozen Redis (a forced exit): a batch in flight and the
 * operations waiting to be sent all call back at once, KV_EIO, in issue
 * order; what their callbacks issue, and anything after, is refused with no
 * callback; then kv_free(). The reply timeout is long: nothing fails by
 * itself meanwhile. */
static void redis_abandoned(redis_server *rs, struct event_base *base)
{
    kv_redis_opts ro = {
        .url = rs->url, .prefix = "ab:", .buffertime_ms = 5, .timeout_ms = 600000};
    char err[256];
    kvc_rec set, get, fl, after;
    kv_store *kv = kv_redis_new(base, &ro, err, sizeof(err));
    int want;

    ok(kv != NULL, "a store with a 600 s reply timeout (%s)", kv ? "" : err);
    if (!kv)
        return;
    abandoned_kv = kv;
    kvc_until(base, kvc_live, kv);
    ok(kill(rs->pid, SIGSTOP) == 0, "SIGSTOP");
    memset(&set, 0, sizeof(set));
    memset(&get, 0, sizeof(get));
    memset(&fl, 0, sizeof(fl));
    memset(&after, 0, sizeof(after));
    memset(&reissued_rec, 0, sizeof(reissued_rec));
    ok(kv_set(kv, "x/ak", "v", 1, kvc_record, &set) == 0, "a set starts");
    spin(base, 50); /* sent: in flight, never answered */
    ok(set.calls == 0, "the set waits for the frozen Redis");
    ok(kv_get(kv, "x/ak", kvc_record, &get) == 0 && kv_flush(kv, reissue, &fl) == 0,
       "a get and a flush wait to be sent behind it");
    want = kvc_completed + 3;
    kv_abandon(kv);
    ok(kvc_completed == want && set.calls == 1 && get.calls == 1 && fl.calls == 1,
       "kv_abandon: every callback ran, at once");
    ok(kvc_is(&set, KV_EIO) && kvc_is(&get, KV_EIO) && kvc_is(&fl, KV_EIO),
       "all with KV_EIO (%d %d %d)", set.status, get.status, fl.status);
    ok(set.order < get.order && get.order < fl.order, "in issue order");
    ok(reissued < 0, "an operation issued from a callback is refused (%d)", reissued);
    ok(kv_get(kv, "x/ak", kvc_record, &after) < 0, "and one issued after");
    spin(base, 50);
    ok(after.calls == 0 && reissued_rec.calls == 0, "neither calls back");
    kv_abandon(kv); /* twice: nothing more */
    kv_free(kv);
    abandoned_kv = NULL;
    ok(kill(rs->pid, SIGCONT) == 0, "SIGCONT");
}

static int saw_loading(const void *rp)
{
    return strstr(((const reports *)rp)->last[KV_EV_RETRY], "LOADING") != NULL;
}

/* Redis killed and started again on its data, slow to load them: while it
 * answers LOADING the store is unreachable and retries, and its subscription
 * waits for it (Redis would take a PSUBSCRIBE, but the catch-up that follows
 * could not read); once loaded, both come up by themselves, the script loaded. */
static void redis_loading(redis_server *rs, struct event_base *base)
{
    static const char *const slow[] = {"--key-load-delay", "100",
                                       "--loading-process-events-interval-bytes", "1024",
                                       NULL};
    static const char *const lists[] = {"x/d"};
    kv_append_args ap = {.counter = "x/dseq", .lists = lists, .nlists = 1};
    reports rp;
    kvc_rec r;
    kv_store *kv = fault_store(rs, "ld:", &rp, base);

    ok(kv && kv_subscribed(kv), "a store on a Redis about to be killed");
    if (!kv)
        return;
    KVC_RUN(base, &r, kv_append(kv, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 1, "an append before");
    ok(redis_server_cmd(rs, "EVAL %s 0",
                        "for i = 1, 5000 do redis.call('SET', 'ld:f' .. i, 'x') end") ==
               0 &&
           redis_server_cmd(rs, "SAVE") == 0,
       "5000 more keys, saved");
    kill(rs->pid, SIGKILL);
    waitpid(rs->pid, NULL, 0);
    rs->args = slow;
    ok(redis_server_exec(rs) == 0, "kill -9, and started again reading 100 us a key");
    rs->args = NULL;
    until_long(base, saw_loading, &rp, 10);
    ok(saw_loading(&rp) && kv_health(kv) == KV_EIO && !kv_subscribed(kv),
       "while Redis loads, the store is unreachable and retries (%s), no subscription",
       rp.last[KV_EV_RETRY]);
    ok(rp.n[KV_EV_ERROR] == 0, "loading is not reported as an error");
    until_long(base, kvc_live, kv, 20);
    ok(kv_up(kv) && kv_subscribed(kv) && fault_sub.resets == 1,
       "loaded: connected and subscribed by itself, told once");
    KVC_RUN(base, &r, kv_append(kv, &ap, kvc_record, &r));
    ok(kvc_is(&r, KV_OK) && r.num == 2,
       "the script was loaded once Redis could: an append continues the counter (%lld)",
       r.num);
    kv_del(kv, "x/d", NULL, NULL);
    kv_del(kv, "x/dseq", NULL, NULL);
    kvc_drain(kv, base);
    kv_free(kv);
}

/* How many times Redis ran 'cmd' since its last CONFIG RESETSTAT; -1 if it
 * could not be asked. */
static long long redis_calls(const redis_server *rs, const char *cmd)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", rs->port, tv);
    redisReply *r = c && !c->err ? redisCommand(c, "INFO commandstats") : NULL;
    long long n = -1;
    char key[64];

    snprintf(key, sizeof(key), "cmdstat_%s:calls=", cmd);
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *at = strstr(r->str, key);
        n = at ? strtoll(at + strlen(key), NULL, 10) : 0;
    }
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    return n;
}

/* The framing of notifications (kv_private.h): appends next to each other on
 * one channel are one PUBLISH; a message in frames splits into its values;
 * one that is not (a node of an older build) is reported and dropped whole. */
static void redis_frames(kv_store *kv, redis_server *rs, struct event_base *base)
{
    static const char raw[] = {'1', ':', 'a', '0', ':', '3', ':', 'b', '\0', 'c'};
    static const char *const bad[] = {"{\"id\":1}", "5:abc", "05:hello",
                                      "1:a2",       "",      "12345678901:x"};
    kv_append_args ap = {.counter = "x/pc", .head = "p", .head_len = 1, .topic = "x/p"};
    kvc_sub *s = &kvc_sub_a;
    reports rp;
    kvc_rec r[50];
    int start = kvc_completed, n = s->n, got, good = 1;
    long long pubs;

    ok(redis_server_cmd(rs, "CONFIG RESETSTAT") == 0, "CONFIG RESETSTAT");
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 50; i++)
        kv_append(kv, &ap, kvc_record, &r[i]);
    kvc_wait(base, start + 50);
    got = kvc_mark(kv, s, n, base);
    for (int i = 0; i < 50; i++) {
        char want[16];
        int len = snprintf(want, sizeof(want), "p%d", i + 1);
        good &= kvc_is(&r[i], KV_OK) && r[i].id == i + 1 &&
                kvc_note_is(s, n + i, "x/p", want, (size_t)len);
    }
    pubs = redis_calls(rs, "publish");
    ok(got == 50 && good, "50 appends in one turn: 50 notifications, in order (%d)", got);
    ok(pubs >= 1 && pubs <= 2, "... from one PUBLISH (%lld with the marker's)", pubs);

    memset(&rp, 0, sizeof(rp));
    kv_set_report(kv, on_report, &rp);
    n = s->n;
    ok(redis_server_cmd(rs, "PUBLISH test:x/raw %b", raw, sizeof(raw)) == 0,
       "a message of three frames, published by hand");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        redis_server_cmd(rs, "PUBLISH test:x/bad %s", bad[i]);
    got = kvc_mark(kv, s, n, base);
    ok(got == 3 && kvc_note_is(s, n, "x/raw", "a", 1) &&
           kvc_note_is(s, n + 1, "x/raw", "", 0) &&
           kvc_note_is(s, n + 2, "x/raw", "b\0c", 3),
       "it gives its three values, in order, the empty one too (%d)", got);
    ok(rp.n[KV_EV_BAD_RECORD] == (int)(sizeof(bad) / sizeof(bad[0])) &&
           strstr(rp.last[KV_EV_BAD_RECORD], "x/bad"),
       "each message not in frames is reported and gives nothing (%d: %s)",
       rp.n[KV_EV_BAD_RECORD], rp.last[KV_EV_BAD_RECORD]);
    kv_set_report(kv, NULL, NULL);
    kv_del(kv, "x/pc", NULL, NULL);
    kvc_drain(kv, base);
}

int main(void)
{
    struct event_base *base = event_base_new();
    kv_store *kv;

    if (!base || !(kv = kv_memory_new(base))) {
        printf("Bail out! no event base or store\n");
        return 1;
    }
    ok(strcmp(kv_name(kv), "memory") == 0, "the store is named memory");
    ok(strcmp(kv_strerror(KV_ENOTFOUND), "not found") == 0 && kv_strerror(12345),
       "kv_strerror");
    kv_contract_run(kv, base);
    kvc_types(kv, base);
    kv_contract_nodes(kv, kv, base);
    memory_note_order(kv, base);
    big_scan(kv, base);
    big_list(kv, base);
    memory_reports(kv, base);
    memory_used_checks(kv, base);
    kv_free(kv);
    free_checks(base);

    /* The same contract against a real Redis. */
    redis_server rs;
    char err[256];
    kv_store *kv2;
    kv_redis_opts ro = {.prefix = "test:", .maxbuffer = 100, .buffertime_ms = 5};
    /* The second node batches differently, so their batches interleave. */
    kv_redis_opts ro2 = {.prefix = "test:", .maxbuffer = 3, .buffertime_ms = 0};
    ok(redis_server_start(&rs) == 0, "a private redis-server starts");
    ro.url = ro2.url = rs.url;
    if ((kv = kv_redis_new(base, &ro, err, sizeof(err))) &&
        (kv2 = kv_redis_new(base, &ro2, err, sizeof(err)))) {
        diag("contract against %s", rs.url);
        ok(strcmp(kv_name(kv), "redis") == 0 && kv_used(kv) == 0,
           "the store is named redis; its data is not in this process");
        kv_contract_run(kv, base);
        big_scan(kv, base);
        big_list(kv, base);
        diag("two nodes on %s", rs.url);
        kv_contract_nodes(kv, kv2, base);
        redis_noscript(kv, &rs, base);
        redis_frames(kv, &rs, base);
        redis_sub_loss(kv, kv2, &rs, base);
        redis_restart(kv, kv2, &rs, base);
        redis_free_checks(&rs, base);
        redis_reports(rs.url, base);
        ok(!kvc_timed_out, "no wait timed out");
        redis_server fs; /* its own: these kill and freeze it */
        ok(redis_server_start(&fs) == 0, "a redis-server for the faults");
        diag("faults on %s", fs.url);
        redis_refused(&fs, base);
        redis_frozen(&fs, base);
        redis_abandoned(&fs, base);
        redis_loading(&fs, base);
        redis_server_stop(&fs);
        kv_free(kv2);
        kv_free(kv);
    } else {
        ok(0, "kv_redis_new: %s", err);
        kv_free(kv);
    }
    ok(kv_redis_new(base, &(kv_redis_opts){.url = "http://x"}, err, sizeof(err)) ==
               NULL &&
           strstr(err, "redis://"),
       "a bad URL is refused with a clear message (%s)", err);
    redis_server_stop(&rs);
    event_base_free(base);
    return done_testing();
}
