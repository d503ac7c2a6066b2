/* workers.h - `--workers N`: a supervising parent forks N broker processes that
 * share one listening port (SO_REUSEPORT), restarts a worker that dies and
 * forwards SIGTERM/SIGINT for a clean shutdown. */
#ifndef WORKERS_H
#define WORKERS_H

#include "src/config.h"

#define WORKERS_MAX 64

/* Fork 'n' (1..WORKERS_MAX) workers listening on cfg's address. Call it before
 * creating any event base or store connection: every worker continues from
 * here into the normal start-up.
 *
 * The parent reserves the port first (port 0 becomes one concrete port that
 * all workers share), then supervises: a worker that exits is restarted after
 * a backoff; SIGTERM or SIGINT is forwarded as SIGTERM to every worker, which
 * get WORKERS_STOP_S seconds to exit before SIGKILL. Once every worker is up
 * the parent logs "ssebroker VERSION listening on HOST:PORT ...", once.
 *
 * Returns 0 in a worker, with cfg->http.port set to the shared port and
 * cfg->http.reuseport on; the worker must call workers_ready() once it listens and
 * has its signal handlers in place. Returns 1 in the parent once supervision
 * is over, with '*status' set to the parent's exit code (0 if every worker
 * exited 0 at shutdown, 1 otherwise). Returns -1 in the parent if the workers
 * could not be started (the reason logged, '*status' set to 1). */
int workers_start(config *cfg, int n, int *status);

/* In a worker: tell the parent this worker listens, and let SIGTERM/SIGINT
 * (blocked since the fork, so that a signal arriving during start-up waits
 * for the broker's handlers) through. Does nothing outside a worker. */
void workers_ready(void);

/* 1..N in a worker, 0 in a process started without --workers. */
int workers_index(void);

/* N in a worker, 0 in a process started without --workers. */
int workers_count(void);

#endif
