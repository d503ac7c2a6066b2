/* pfor.h - a parallel for: run fn(0..n-1) on the calling thread and a few
 * helper threads, and return when every call has returned.
 *
 * The broker uses it for one thing: writing a flush's worth of streams to
 * their sockets on every core (src/http/httpd.c). The calls must be independent of
 * one another and of anything the event loop does meanwhile - the event loop
 * is the caller, and it waits.
 *
 * The caller takes work too, one index at a time, so a helper that is slow to
 * wake costs nothing: once every index is taken, the caller waits only for
 * calls already running, never for a helper still asleep. With no helpers,
 * pfor_run() is a plain loop. */
#ifndef PFOR_H
#define PFOR_H

#include <stddef.h>

typedef struct pfor pfor;
typedef void (*pfor_fn)(size_t i, void *arg);

#define PFOR_HELPERS_MAX 16

/* Start 'helpers' threads (0..PFOR_HELPERS_MAX). NULL on error (logged). */
pfor *pfor_new(int helpers);
/* Stop and join the helpers. NULL is fine. Not while pfor_run() runs. */
void pfor_free(pfor *p);
int pfor_helpers(const pfor *p);

/* fn(i, arg) for every i < n, each exactly once, on any of the threads. One
 * caller at a time. */
void pfor_run(pfor *p, size_t n, pfor_fn fn, void *arg);

#endif
