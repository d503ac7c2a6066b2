/* modhost.h - the module host: loads event-processing modules
 * (include/ssebroker/module.h), hands them the messages the broker delivers
 * here, and publishes for them through the broker.
 *
 * A layer above the broker (which knows nothing of it: the host registers
 * itself with broker_set_observer) and below HTTP (which shows its counters
 * in /status and /metrics).
 *
 * Semantics: a module gets every message of a channel matching one of its
 * patterns (pattern.h; the broker's own sys.* channels only for a pattern
 * starting with "sys."), after it is stored, in id order, one at a time,
 * except the messages it published itself. What a module publishes carries
 * its name as source and its depth: one more than the message it was
 * reacting to (1 from a timer). A publish deeper than max_depth is refused
 * and counted as cut. A module's publishes are numbered in the order it made
 * them: one whose channel is being looked up holds those behind it.
 *
 * Once per event in a cluster: every node runs the modules' code (init,
 * timers), but only the node holding the lease (a compare-and-set record
 * in the store, MODHOST_LEASE_KEY: "<node id> <until, ms>", renewed every
 * MODHOST_LEASE_TICK_MS for MODHOST_LEASE_MS) hands them events. It writes
 * the id of the last event it handed over (MODHOST_DONE_KEY) at most
 * MODHOST_SAVE_MS after it moved. A node that takes the lease (its holder
 * stopped renewing it, or gave it up at shutdown) first hands over every
 * event after that id its channels' histories retain, in id order, then the
 * live ones: nothing retained is skipped, and an event is handed over twice
 * only if the old holder died in the MODHOST_SAVE_MS after handing it over
 * (or stopped with a publish made in reaction to it still under way).
 * 'done' only moves past an event once every publish the modules made in
 * reaction to it (and to those before it) is answered.
 * A holder whose lease runs out unrenewed (the store away) pauses, and if it
 * keeps the lease catches up from its own last id. */
#ifndef MODHOST_H
#define MODHOST_H

#include <stddef.h>
#include <jansson.h>

#include "src/broker/broker.h"
#include "src/broker/node.h"

struct event_base;
typedef struct modhost modhost;

#define MODHOST_MAX 64            /* module instances */
#define MODHOST_MATCH_MAX 64      /* patterns of one instance */
#define MODHOST_NAME_MAX 64       /* bytes of an instance name */
#define MODHOST_INFLIGHT_MAX 1024 /* publishes of one instance under way */
#define MODHOST_DATA_MAX 1048576  /* bytes of data a module publishes at once */
#define MODHOST_DEPTH_DEFAULT 8   /* modules_max_depth */
#define MODHOST_LEASE_KEY "mod/lease"
#define MODHOST_DONE_KEY "mod/done"
#define MODHOST_LEASE_TICK_MS (NODE_HEARTBEAT_S * 1000) /* with the heartbeat */
#define MODHOST_LEASE_MS (NODE_TTL_S * 1000)            /* a lease not renewed runs out */
#define MODHOST_SAVE_MS 50                              /* 'done' written this soon */
#define MODHOST_STOP_MS 2000 /* modhost_stop's longest wait (< SHUTDOWN_FLUSH_S) */

/* One instance as the config file gives it. Everything owned by the config. */
typedef struct module_spec {
    char *name;   /* 1..MODHOST_NAME_MAX bytes of [A-Za-z0-9_.-] */
    char *path;   /* the shared object */
    char **match; /* patterns, pattern_topic_valid */
    size_t nmatch;
    char *config; /* its "config" value as JSON text ("{}" when none) */
    int line, line_path, line_config; /* where the entry, its "path" and its
                                         "config" are in the file (messages) */
} module_spec;

/* Per instance, for /status and /metrics. */
typedef struct modhost_stats {
    const char *name;             /* the instance (borrowed) */
    const char *module;           /* what the module says it is (borrowed) */
    unsigned long long events;    /* messages handed to on_event */
    unsigned long long errors;    /* on_event errors and publishes that failed */
    unsigned long long published; /* messages it published (stored) */
    unsigned long long cut;       /* publishes refused by modules_max_depth */
    unsigned long long dropped;   /* publishes refused for MODHOST_INFLIGHT_MAX */
} modhost_stats;

/* A host publishing through 'b' (borrowed, must outlive it). NULL on OOM. */
modhost *modhost_new(struct event_base *base, broker *b, int max_depth);
/* Load one instance: dlopen its path, find its descriptor, check the ABI,
 * run init with its config. Returns 0, or -1 with a message in 'err' and
 * '*field' the spec field at fault ("path": the file, its symbol or its ABI;
 * "config": init refused it; "name": taken already). */
int modhost_load(modhost *mh, const module_spec *spec, const char **field, char *err,
                 size_t errlen);
/* Start: take part in the lease, and hand events to the modules loaded while
 * this node holds it. 0, or -1 on OOM. */
int modhost_start(modhost *mh);
/* Shutting down: no more events are handed over. The node holding the
 * lease waits for the publishes its modules made in reaction to events (at
 * most MODHOST_STOP_MS), then writes the last id done with (an event whose
 * publishes were all answered, and all before it) and gives the lease up, so
 * that another node takes over at its next tick and hands over the rest.
 * Returns 0 when that is done already (no callback), 1 when 'cb' will run
 * once, later, on the loop. A publish still under way then may be lost, its
 * event not: the next holder hands it over again. */
typedef void (*modhost_stopped_cb)(void *arg);
int modhost_stop(modhost *mh, modhost_stopped_cb cb, void *arg);
/* Stop: every module's free, its timers cancelled, dlclose. NULL is fine. */
void modhost_free(modhost *mh);

/* The instances loaded, and the counters of the i-th. */
size_t modhost_count(const modhost *mh);
void modhost_stats_get(const modhost *mh, size_t i, modhost_stats *st);
/* The counters as JSON: [{"name", "module", "active" (events are handed to
 * it on this node), "events", "errors", "published", "cut", "dropped"}].
 * New reference, NULL on OOM. */
json_t *modhost_status(const modhost *mh);

#endif
