/* test_kv.c - the in-memory store: the shared kv contract, then its own scale checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "kv/kv.h"
#include "tap.h"
#include "redis_server.h"
#include "kv_contract.h"

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
    kv_free(NULL);
    ok(1, "kv_free(NULL) is a no-op");
}

int main(void)
{
    struct event_base *base = event_base_new();
    kv_store *kv;

    if (!base || !(kv = kv_memory_new(base))) {
        printf("Bail out! no event base or store\n");
        return 1;
    }
    ok(strcmp(kv->ops->name, "memory") == 0, "the store is named memory");
    ok(strcmp(kv_strerror(KV_ENOTFOUND), "not found") == 0 && kv_strerror(12345),
       "kv_strerror");
    kv_contract_run(kv, base);
    kvc_types(kv, base);
    big_scan(kv, base);
    big_list(kv, base);
    kv_free(kv);
    free_checks(base);

    /* The same contract against a real Redis. */
    redis_server rs;
    char err[256];
    kv_redis_opts ro = {.prefix = "test:", .maxbuffer = 100, .buffertime_ms = 5};
    ok(redis_server_start(&rs) == 0, "a private redis-server starts");
    ro.url = rs.url;
    if ((kv = kv_redis_new(base, &ro, err, sizeof(err)))) {
        diag("contract against %s", rs.url);
        ok(strcmp(kv->ops->name, "redis") == 0, "the store is named redis");
        kv_contract_run(kv, base);
        big_scan(kv, base);
        big_list(kv, base);
        kv_free(kv);
    } else {
        ok(0, "kv_redis_new: %s", err);
    }
    ok(kv_redis_new(base, &(kv_redis_opts){.url = "http://x"}, err, sizeof(err)) ==
               NULL &&
           strstr(err, "redis://"),
       "a bad URL is refused with a clear message (%s)", err);
    redis_server_stop(&rs);
    event_base_free(base);
    return done_testing();
}
