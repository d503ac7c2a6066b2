/* pfor.c - a parallel for on a few helper threads: see pfor.h.
 *
 * A run is a generation: the caller publishes (gen, n, fn, arg) under the
 * mutex and wakes the helpers. Indices are claimed from one atomic word, the
 * generation in its high half and the next index in its low half, so a helper
 * that wakes late - even after its run has ended and another begun - can
 * never claim an index of a run it did not read. 'inflight' counts helpers
 * between "about to claim" and "done with the index claimed": once every
 * index is claimed, the caller waits for it to reach zero (spinning briefly,
 * then on a condition variable), and that is all it ever waits for. */
#include "src/base/pfor.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/base/log.h"

#define SPINS 2000 /* polls of 'inflight' before sleeping on it */

struct pfor {
    pthread_mutex_t mu;
    pthread_cond_t wake; /* a new run, or stop */
    pthread_cond_t idle; /* inflight reached zero while the caller sleeps */
    uint32_t gen;        /* under mu */
    size_t n;            /* this run's, under mu */
    pfor_fn fn;
    void *arg;
    bool stop;
    _Atomic uint64_t next; /* gen << 32 | next index */
    _Atomic int inflight;
    _Atomic bool waiting; /* the caller sleeps on 'idle' */
    int nhelpers;
    pthread_t tid[PFOR_HELPERS_MAX];
};

/* A helper is done with an index (or with claiming): wake the caller if it
 * sleeps and this was the last call running. */
static void helper_done(pfor *p)
{
    if (atomic_fetch_sub(&p->inflight, 1) == 1 && atomic_load(&p->waiting)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->idle);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Take and run indices of run 'gen' until there are none left. */
static void work(pfor *p, uint32_t gen, size_t n, pfor_fn fn, void *arg, bool helper)
{
    for (;;) {
        if (helper)
            atomic_fetch_add(&p->inflight, 1);
        uint64_t w = atomic_load(&p->next);
        do {
            if ((uint32_t)(w >> 32) != gen || (w & 0xffffffffu) >= n) {
                if (helper)
                    helper_done(p);
                return;
            }
        } while (!atomic_compare_exchange_weak(&p->next, &w, w + 1));
        fn((size_t)(w & 0xffffffffu), arg);
        if (helper)
            helper_done(p);
    }
}

static void *helper_main(void *arg)
{
    pfor *p = arg;
    uint32_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop)
            break;
        seen = p->gen;
        size_t n = p->n;
        pfor_fn fn = p->fn;
        void *fa = p->arg;
        pthread_mutex_unlock(&p->mu);
        work(p, seen, n, fn, fa, true);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

pfor *pfor_new(int helpers)
{
    if (helpers < 0 || helpers > PFOR_HELPERS_MAX)
        return NULL;
    pfor *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->idle, NULL);
    atomic_init(&p->next, 0);
    atomic_init(&p->inflight, 0);
    atomic_init(&p->waiting, false);
    for (; p->nhelpers < helpers; p->nhelpers++) {
        int rc = pthread_create(&p->tid[p->nhelpers], NULL, helper_main, p);
        if (rc) {
            log_error("pfor: cannot start a thread: %s", strerror(rc));
            pfor_free(p);
            return NULL;
        }
    }
    return p;
}

void pfor_free(pfor *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nhelpers; i++)
        pthread_join(p->tid[i], NULL);
    pthread_cond_destroy(&p->idle);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int pfor_helpers(const pfor *p)
{
    return p ? p->nhelpers : 0;
}

void pfor_run(pfor *p, size_t n, pfor_fn fn, void *arg)
{
    if (!n)
        return;
    if (!p->nhelpers || n == 1 || n > 0xffffffffu) {
        for (size_t i = 0; i < n; i++)
            fn(i, arg);
        return;
    }
    pthread_mutex_lock(&p->mu);
    uint32_t gen = ++p->gen;
    if (!gen) /* 0 is what a helper has "seen" at start */
        gen = p->gen = 1;
    p->n = n;
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->next, (uint64_t)gen << 32);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    work(p, gen, n, fn, arg, false);

    /* Every index is taken: wait for the calls still running. */
    for (int i = 0; i < SPINS; i++)
        if (!atomic_load(&p->inflight))
            return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->waiting, true);
    while (atomic_load(&p->inflight))
        pthread_cond_wait(&p->idle, &p->mu);
    atomic_store(&p->waiting, false);
    pthread_mutex_unlock(&p->mu);
}
