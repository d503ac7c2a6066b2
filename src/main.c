/* main.c - ssebroker: command line, start-up, signals, shutdown. */
#include "src/config.h"
#include "src/auth/auth.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>

#include "src/broker/broker.h"
#include "src/http/http.h"
#include "src/module/modhost.h"
#include "kv/kv.h"
#include "src/base/log.h"
#include "src/base/notify.h"
#include "src/reload.h"
#include "src/workers.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: ssebroker [--config FILE] [--listen ADDR:PORT] [--store URL]\n"
        "                 [--workers N] [--help] [--version]\n"
        "\n"
        "  -c, --config FILE   JSON configuration file (see ssebroker.json(5))\n"
        "  -l, --listen ADDR   address to listen on, HOST:PORT (default "
        "127.0.0.1:8080)\n"
        "  -s, --store URL     keep state in Redis: redis://[:password@]host:port/db\n"
        "                      or unix:///path (default: in memory)\n"
        "  -w, --workers N     run N worker processes (1..64) sharing the listening\n"
        "                      port (SO_REUSEPORT), each a node of the cluster, under\n"
        "                      a parent that restarts a worker that dies and passes\n"
        "                      SIGTERM on to all; needs the Redis store\n"
        "  -h, --help          show this help\n"
        "  -v, --version       show the version\n");
}

#define SHUTDOWN_FLUSH_S 5 /* longest wait for the store at shutdown */

typedef struct app {
    struct event_base *base;
    kv_store *kv;
    broker *b;
    modhost *mods;
    http_server *http;
    int stopping;
    config_src src; /* where the configuration comes from, read again on SIGHUP */
    long nworkers;
    config *cfg;    /* the one running: main's, or the last reloaded (owned then) */
    config *loaded; /* that last reloaded one, or NULL */
    auth *au;       /* the running access control (owned), or NULL */
} app;

/* The store has everything written before the signal: stop after a grace
 * period for the final chunks to reach the clients. */
static void on_drained(int status, void *arg)
{
    app *a = arg;
    struct timeval grace = {0, 200000};
    if (status < 0)
        log_error("shutdown: the %s store did not take every pending write: %s",
                  kv_name(a->kv), kv_strerror(status));
    event_base_loopexit(a->base, &grace);
}

/* The store did not take everything within SHUTDOWN_FLUSH_S (frozen, cut
 * off): give up on it (kv_abandon). What waits for it is answered now, 503
 * store_unavailable (a lookup, a read, a publish, the requests behind them),
 * and frees what it holds on its error path while everything is alive; the
 * loop's next turns write those answers. The drain ends with it (its flush is
 * refused: on_drained), and the loop after the grace; 'last' bounds that. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    app *a = arg;
    struct timeval last = {1, 0};
    log_warn("shutdown: the %s store did not answer within %d s: giving up on it",
             kv_name(a->kv), SHUTDOWN_FLUSH_S);
    kv_abandon(a->kv);
    event_base_loopexit(a->base, &last);
}

/* The modules are done with (modhost_stop): drain the broker. */
static void on_modules_stopped(void *arg)
{
    app *a = arg;
    broker_drain(a->b, on_drained, a);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    app *a = arg;
    /* Bounded: a store that never answers cannot hold the process. */
    struct timeval deadline = {SHUTDOWN_FLUSH_S, 0};
    if (a->stopping++)
        return;
    broker_stats st;
    broker_stats_get(a->b, &st);
    log_info("signal %d: ending %zu stream(s), flushing the store, shutting down",
             (int)sig, st.streams);
    http_server_stop_accepting(a->http);
    notify_send("STOPPING=1\nSTATUS=shutting down");
    if (event_base_once(a->base, -1, EV_TIMEOUT, on_deadline, a, &deadline) < 0)
        event_base_loopexit(a->base, &deadline); /* out of memory: end there */
    /* The modules first: their publishes under way are answered before the
     * broker refuses more, and the drain flushes what the host writes. */
    if (modhost_stop(a->mods, on_modules_stopped, a) == 0)
        broker_drain(a->b, on_drained, a);
}

static int cpus_usable(int max);

/* SIGHUP: read the file again, apply what can change while running (log
 * level, CORS origins, limits, access control) and log what needs a restart.
 * A file that does not load, or keys that cannot be read, change nothing:
 * the error is logged with its file, line and field. Streams stay open. */
static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    app *a = arg;
    config *next = malloc(sizeof(*next));
    auth *au = NULL;
    char err[512];

    if (a->stopping)
        goto out;
    if (!next) {
        log_error("reload refused: out of memory; the running configuration stays");
        return;
    }
    if (config_assemble(&a->src, next, &au, err, sizeof(err)) < 0) {
        log_error("reload refused: %s; the running configuration stays", err);
        goto out;
    }
    if (!next->http.threads)
        next->http.threads = a->nworkers ? 1 : cpus_usable(THREADS_MAX);
    next->http.worker = a->cfg->http.worker;
    if (http_server_reload(a->http, &next->http) < 0) {
        log_error("reload refused: out of memory; the running configuration stays");
        auth_free(au);
        config_free(next);
        goto out;
    }
    reload_restart_needed(a->cfg, next);
    broker_set_limits(a->b, &next->broker);
    log_set_level(next->log_level);
    /* Nothing points into the old ones any more. */
    auth_free(a->au);
    a->au = au;
    if (a->loaded)
        config_free(a->loaded);
    free(a->loaded);
    a->cfg = a->loaded = next;
    next = NULL;
    log_info("reload: %s read again; log level, CORS origins, limits and access "
             "control applied",
             a->src.path ? a->src.path : "(no file)");
out:
    free(next);
}

/* What the store reports, logged once here: a store never logs. */
static void store_report(int event, const char *detail, void *arg)
{
    static const int level[] = {
        [KV_EV_CONNECTED] = LOG_INFO,  [KV_EV_LOST] = LOG_WARN,
        [KV_EV_SUBSCRIBED] = LOG_INFO, [KV_EV_SUB_LOST] = LOG_WARN,
        [KV_EV_FAILED] = LOG_WARN,     [KV_EV_ERROR] = LOG_ERROR,
        [KV_EV_RETRY] = LOG_DEBUG,     [KV_EV_BAD_RECORD] = LOG_WARN,
    };
    int n = (int)(sizeof(level) / sizeof(level[0]));
    log_msg(event >= 0 && event < n ? level[event] : LOG_WARN, "%s", detail);
}

/* The store the config names. NULL with the reason logged. */
static kv_store *store_new(struct event_base *base, const config *cfg)
{
    char err[256];
    kv_store *kv;
    if (strcmp(cfg->store_type, "redis") != 0) {
        kv = kv_memory_new(base);
    } else {
        kv_redis_opts ro = {cfg->store_url, cfg->store_prefix,
                            (size_t)cfg->store_maxbuffer, cfg->store_buffertime_ms,
                            cfg->store_timeout_ms};
        if (!(kv = kv_redis_new(base, &ro, err, sizeof(err))))
            log_error("redis store: %s", err);
    }
    if (kv)
        kv_set_report(kv, store_report, NULL);
    return kv;
}

/* The CPUs this process may run on, at most 'max'. */
static int cpus_usable(int max)
{
    cpu_set_t set;
    int n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
    return n < 1 ? 1 : n > max ? max : n;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"store", required_argument, NULL, 's'},
                                         {"workers", required_argument, NULL, 'w'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'v'},
                                         {NULL, 0, NULL, 0}};
    const char *config_path = NULL, *listen = NULL, *store = NULL;
    long nworkers = 0;
    char *end;
    config cfg;
    app a = {0};
    kv_store *kv = NULL;
    auth *au = NULL;
    struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL, *watchdog = NULL;
    char err[512];
    int c, rc = 1;

    /* Large buffers (messages, request bodies) straight from mmap, returned
     * to the system when freed: glibc's default threshold rises with every
     * large free, after which they come from the heap and their pages stay
     * with the process, so RSS would not follow limits.max_memory. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);

    while ((c = getopt_long(argc, argv, "c:l:s:w:hv", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 's':
            store = optarg;
            break;
        case 'w':
            errno = 0;
            nworkers = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || nworkers < 1 ||
                nworkers > WORKERS_MAX) {
                fprintf(stderr,
                        "ssebroker: --workers '%s': expected a number from 1 to %d\n",
                        optarg, WORKERS_MAX);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'v':
            printf("ssebroker %s\n", PACKAGE_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ssebroker: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    a.src = (config_src){config_path, listen, store};
    a.nworkers = nworkers;
    if ((c = config_assemble(&a.src, &cfg, &au, err, sizeof(err))) < 0) {
        fprintf(stderr, "ssebroker: %s\n", err);
        return c == -2 ? 2 : 1;
    }
    a.cfg = &cfg;
    a.au = au;
    if (nworkers && strcmp(cfg.store_type, "redis") != 0) {
        fprintf(stderr,
                "ssebroker: --workers needs the Redis store (--store URL, or store.type "
                "\"redis\" in the config): with the %s store every worker would be a "
                "separate broker\n",
                cfg.store_type);
        rc = 2;
        goto out;
    }
    log_set_level(cfg.log_level);
    log_set_format(cfg.log_format);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN); /* until the reload handler is in place */
    if (!cfg.http.threads)
        cfg.http.threads = nworkers ? 1 : cpus_usable(THREADS_MAX);
    /* Before any event base or store connection: every worker continues below,
     * the parent returns here only when supervision is over. */
    if (nworkers && workers_start(&cfg, (int)nworkers, &rc) != 0)
        goto out;

    cfg.http.worker = workers_index();
    if (!(a.base = event_base_new()) || !(a.kv = kv = store_new(a.base, &cfg)) ||
        !(a.b = broker_new(a.base, &cfg.broker, kv))) {
        log_error("cannot start");
        goto out;
    }
    /* From before the load, which runs the loop: a slow store is no hang. */
    watchdog = notify_watchdog_start(a.base);
    if (!(a.mods = modhost_new(a.base, a.b, cfg.modules_max_depth))) {
        log_error("cannot start: out of memory");
        goto out;
    }
    for (size_t i = 0; i < cfg.nmodules; i++) {
        const char *field;
        char where[300];
        if (modhost_load(a.mods, &cfg.modules[i], &field, err, sizeof(err)) < 0) {
            config_module_where(&cfg, i, field, where, sizeof(where));
            fprintf(stderr, "ssebroker: %s: %s\n", where, err);
            goto out;
        }
    }
    if (broker_load(a.b) < 0)
        goto out;
    if (modhost_start(a.mods) < 0) {
        log_error("cannot start: out of memory");
        goto out;
    }
    cfg.http.modules = a.mods;
    if (!(a.http = http_server_new(a.base, a.b, &cfg.http, err, sizeof(err)))) {
        log_error("%s", err);
        goto out;
    }
    sigterm = evsignal_new(a.base, SIGTERM, on_signal, &a);
    sigint = evsignal_new(a.base, SIGINT, on_signal, &a);
    sighup = evsignal_new(a.base, SIGHUP, on_hup, &a);
    if (!sigterm || !sigint || !sighup || evsignal_add(sigterm, NULL) < 0 ||
        evsignal_add(sigint, NULL) < 0 || evsignal_add(sighup, NULL) < 0) {
        log_error("cannot install signal handlers");
        goto out;
    }
    /* A worker's line must not read "listening on": the parent logs that one,
     * once all workers are up (tests and scripts wait for it), so the worker's
     * own line comes first and the ready report after it. */
    if (workers_index())
        log_info("ssebroker %s worker %d of %d (pid %d) accepting on %s:%d (store: %s)",
                 PACKAGE_VERSION, workers_index(), workers_count(), (int)getpid(),
                 cfg.http.host, http_server_port(a.http), kv_name(kv));
    else
        log_info("ssebroker %s listening on %s:%d (store: %s)", PACKAGE_VERSION,
                 cfg.http.host, http_server_port(a.http), kv_name(kv));
    workers_ready();
    /* A worker says nothing (its supervisor speaks for the service). */
    notify_sendf("READY=1\nMAINPID=%d\nSTATUS=listening on %s:%d (store: %s)",
                 (int)getpid(), cfg.http.host, http_server_port(a.http), kv_name(kv));
    event_base_dispatch(a.base);
    if (workers_index())
        log_info("worker %d stopped", workers_index());
    else
        log_info("stopped");
    rc = 0;
out:
    notify_watchdog_free(watchdog);
    notify_close();
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (sighup)
        event_free(sighup);
    http_server_free(a.http);
    /* Before the broker: a module's free may still use the loop, not the
     * broker; publishes under way end without their module. */
    modhost_free(a.mods);
    broker_free(a.b);
    kv_free(kv);
    if (a.base)
        event_base_free(a.base);
    auth_free(a.au);
    if (a.loaded)
        config_free(a.loaded);
    free(a.loaded);
    config_free(&cfg);
    return rc;
}
