/* module.h - the interface of an ssebroker event-processing module.
 *
 * A module is a shared object the broker loads at start-up (dlopen) when the
 * config file names it:
 *
 *   "modules": [{"name": "stats", "path": "/usr/lib/ssebroker/modules/counter.so",
 *                "match": ["sensors.*"], "config": {"every": 10}}]
 *
 * It exports one symbol, SSEBROKER_MODULE_SYMBOL ("ssebroker_module"), a
 * const ssebroker_module_desc whose 'abi' is SSEBROKER_MODULE_ABI: the broker
 * refuses a module built against another version of this header.
 *
 * Calls, all on the broker's event loop thread, one at a time:
 *   init        once, at start-up, with the module's "config" (JSON text) and
 *               the host table; returns the module's state, or NULL with a
 *               message in 'err' (start-up stops, naming the config line)
 *   on_event    for every event stored on a channel matching one of the
 *               "match" patterns, after it is stored (it has its id), in id
 *               order, one at a time; never for an event this module
 *               published itself. Returns 0, or a negative number for an
 *               error, which the broker logs and counts (/status, /metrics)
 *   on_session_start / on_session_stop (optional, may be NULL): a live
 *               stream opened or ended (the session record as JSON text;
 *               the joins and leaves the broker publishes on sys.sessions,
 *               so not for streams on sys.* channels)
 *   free        once, at exit (not after a failed init)
 *
 * Rules:
 *   - A module must never block: everything runs on the event loop that
 *     serves every client. No sleeps, no synchronous network or disk I/O;
 *     use the host's timers, and for network I/O the loop itself
 *     (host->event_base, a libevent struct event_base *).
 *   - Modules are trusted code: they run inside the broker's process, with
 *     its privileges and memory. A module that crashes takes the broker down.
 *   - Pointers handed to a module (events, strings) are borrowed for the call;
 *     copy what you keep. Strings the module passes to the host are copied.
 *
 * The smallest module:
 *
 *   #include <ssebroker/module.h>
 *   static void *init(const char *config, const ssebroker_host *h, char *err,
 *                     size_t errlen) { return (void *)h; }
 *   static int on_event(void *st, const ssebroker_event *ev)
 *   {
 *       const ssebroker_host *h = st;
 *       h->log(h, SSEBROKER_LOG_INFO, "%s: event %s", ev->channel, ev->id);
 *       return 0;
 *   }
 *   static void fini(void *st) { }
 *   const ssebroker_module_desc ssebroker_module = {
 *       .abi = SSEBROKER_MODULE_ABI, .name = "hello",
 *       .init = init, .on_event = on_event, .free = fini};
 */
#ifndef SSEBROKER_MODULE_H
#define SSEBROKER_MODULE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this interface. A change to any struct or call below
 * raises it; the broker loads only modules built with its own. */
#define SSEBROKER_MODULE_ABI 1

/* The name of the one symbol a module exports. */
#define SSEBROKER_MODULE_SYMBOL "ssebroker_module"

/* One stored event, borrowed for the call. */
typedef struct ssebroker_event {
    const char *channel; /* the channel it was published on */
    const char *id;      /* its id (decimal digits), as clients see it */
    uint64_t seq;        /* the same id as a number: ids only grow */
    const char *event;   /* its event type, or NULL */
    const char *data;    /* its data, 'data_len' bytes (NUL-terminated too) */
    size_t data_len;
    int64_t timestamp_us; /* when it was published, microseconds since 1970 */
    const char *authid;   /* who published it (access control), or NULL */
    const char *authrole; /* the publisher's role, or NULL */
    const char *source;   /* the module instance that published it, or NULL */
} ssebroker_event;

enum {
    SSEBROKER_LOG_DEBUG = 0,
    SSEBROKER_LOG_INFO = 1,
    SSEBROKER_LOG_WARN = 2,
    SSEBROKER_LOG_ERROR = 3
};

/* What host->publish returns when it refuses at once. */
enum {
    SSEBROKER_EINVAL = -1, /* a bad channel name, event type or data */
    SSEBROKER_EDEPTH = -2, /* the chain of module publishes is modules_max_depth
                              long already: cut (counted, not an error) */
    SSEBROKER_EBUSY = -3,  /* too many of this module's publishes under way */
    SSEBROKER_ENOMEM = -4,
    SSEBROKER_EFAIL = -5 /* the broker refused it (shutting down, a limit) */
};

/* A timer set with timer_add. */
typedef struct ssebroker_timer ssebroker_timer;
typedef void (*ssebroker_timer_cb)(void *arg);

/* What the broker gives a module: valid from init until free returns. */
typedef struct ssebroker_host {
    /* The instance's name from the config ("name"). */
    const char *name;
    /* The broker's libevent loop (a struct event_base *), for modules that do
     * their own network I/O on it (e.g. with evhttp). Never run or free it. */
    struct event_base *event_base;

    /* Publish 'data' ('len' bytes, no NUL inside) with the event type 'event'
     * (NULL: none; 1..200 bytes, no CR/LF, not starting with "sys.") on
     * 'channel' (created if it does not exist), through the normal publish
     * path: stored, delivered to subscribers, kept in history, seen by the
     * other modules (never by this one), tagged with this instance as its
     * source. Asynchronous: returns 0 once it is under way, or a negative
     * SSEBROKER_E* code if it is refused at once. A publish made in
     * on_event is one step deeper than the event it reacts to (1 from a
     * timer); past modules_max_depth it is cut (SSEBROKER_EDEPTH): modules
     * publishing in reaction to each other cannot loop for ever. A publish
     * that fails (at once or later) is logged and counted as this module's
     * error. */
    int (*publish)(const struct ssebroker_host *h, const char *channel, const char *event,
                   const char *data, size_t len);
    /* Log a line under the module's name, at SSEBROKER_LOG_*. */
    void (*log)(const struct ssebroker_host *h, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    /* Report an error of the module's own (a webhook that failed, say),
     * outside on_event: logged as a warning and counted as its error, as a
     * negative return of on_event is. */
    void (*error)(const struct ssebroker_host *h, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
    /* Call 'cb(arg)' once, 'ms' milliseconds from now, on the loop. Returns
     * a timer (cancel it before it fires to stop it; it is gone once it
     * fired), or NULL on OOM. Timers still set at free are cancelled. */
    ssebroker_timer *(*timer_add)(const struct ssebroker_host *h, unsigned ms,
                                  ssebroker_timer_cb cb, void *arg);
    void (*timer_cancel)(const struct ssebroker_host *h, ssebroker_timer *t);
} ssebroker_host;

/* What a module exports (SSEBROKER_MODULE_SYMBOL). */
typedef struct ssebroker_module_desc {
    int abi;          /* SSEBROKER_MODULE_ABI */
    const char *name; /* what the module is ("counter") */
    /* 'config': the instance's "config" value as JSON text ("{}" when none).
     * Returns the state handed to every other call, or NULL with a reason
     * in 'err' (errlen bytes): the broker does not start. */
    void *(*init)(const char *config, const ssebroker_host *host, char *err,
                  size_t errlen);
    int (*on_event)(void *state, const ssebroker_event *ev);
    void (*on_session_start)(void *state, const char *session_json); /* optional */
    void (*on_session_stop)(void *state, const char *session_json);  /* optional */
    void (*free)(void *state);
} ssebroker_module_desc;

#ifdef __cplusplus
}
#endif

#endif
