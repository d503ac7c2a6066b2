/* test_pfor.c - unit tests for the parallel for (src/pfor.c): every index runs
 * exactly once, on more than one thread when there are helpers, over many
 * runs back to back (a helper that wakes late must not take an index of the
 * next run), and pfor_run() returns only when every call has returned. */
#include "src/base/pfor.h"
#include "tests/tap.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_MAX 5000

struct run {
    _Atomic int count[N_MAX];
    _Atomic int running;  /* calls in progress */
    _Atomic int on_other; /* calls not on the caller's thread */
    pthread_t caller;
    int spin; /* busy work per call, so that calls overlap */
    _Atomic unsigned sink;
    int wait_other; /* the caller's calls wait (5 s at most) for a helper's */
};

static void body(size_t i, void *arg)
{
    struct run *r = arg;
    atomic_fetch_add(&r->running, 1);
    if (!pthread_equal(pthread_self(), r->caller))
        atomic_fetch_add(&r->on_other, 1);
    unsigned x = 0;
    for (int k = 0; k < r->spin; k++)
        x = x * 31 + (unsigned)k;
    atomic_fetch_add_explicit(&r->sink, x, memory_order_relaxed);
    /* Bounded: under valgrind, which runs one thread at a time, helpers
     * may otherwise never get an index before the caller has taken all. */
    if (r->wait_other && pthread_equal(pthread_self(), r->caller)) {
        time_t until = time(NULL) + 5;
        while (!atomic_load(&r->on_other) && time(NULL) < until)
            sched_yield();
    }
    atomic_fetch_add(&r->count[i], 1);
    atomic_fetch_sub(&r->running, 1);
}

/* 'runs' runs of n indices each; 0 if every index ran once each time and
 * nothing was still running on return. */
static int check(pfor *p, size_t n, int runs, int spin, int *other)
{
    struct run *r = calloc(1, sizeof(*r));
    int bad = 0;
    r->caller = pthread_self();
    r->spin = spin;
    r->wait_other = other && pfor_helpers(p) > 0;
    for (int k = 0; k < runs && !bad; k++) {
        for (size_t i = 0; i < n; i++)
            atomic_store(&r->count[i], 0);
        pfor_run(p, n, body, r);
        if (atomic_load(&r->running))
            bad = 1;
        for (size_t i = 0; i < n; i++)
            if (atomic_load(&r->count[i]) != 1)
                bad = 1;
    }
    if (other)
        *other = atomic_load(&r->on_other);
    free(r);
    return bad;
}

int main(void)
{
    int other = 0;

    pfor *p0 = pfor_new(0);
    ok(p0 && pfor_helpers(p0) == 0, "no helpers");
    ok(check(p0, 100, 10, 0, &other) == 0 && other == 0,
       "no helpers: a plain loop on the caller");
    pfor_run(p0, 0, body, NULL);
    ok(1, "n = 0 calls nothing");
    pfor_free(p0);

    ok(pfor_new(-1) == NULL && pfor_new(PFOR_HELPERS_MAX + 1) == NULL,
       "helper count out of bounds refused");

    for (int h = 1; h <= 3; h++) {
        pfor *p = pfor_new(h);
        ok(p && pfor_helpers(p) == h, "%d helpers started", h);
        ok(check(p, 1, 200, 0, NULL) == 0, "%d helpers: n = 1, 200 runs", h);
        ok(check(p, 17, 2000, 0, NULL) == 0,
           "%d helpers: 2000 short runs back to back, each index once", h);
        ok(check(p, N_MAX, 20, 2000, &other) == 0, "%d helpers: 20 runs of %d", h, N_MAX);
        ok(other > 0, "%d helpers: some calls ran on a helper (%d)", h, other);
        pfor_free(p);
    }
    pfor_free(NULL);
    ok(1, "pfor_free(NULL)");
    return done_testing();
}
