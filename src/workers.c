/* workers.c - the --workers supervisor: a parent that forks N brokers sharing one
 * listening port (SO_REUSEPORT), restarts the ones that die and forwards
 * SIGTERM/SIGINT to them for a clean shutdown, SIGHUP for a reload (each worker
 * reads the file again; one restarted later starts from what the parent read
 * at start). The parent runs no event loop
 * (a libevent base would be inherited by every fork): it waits in ppoll() on a
 * pipe the workers report readiness on, with its signals blocked everywhere else,
 * so a signal can never slip in between a check and the wait.
 *
 * Under a service manager ($NOTIFY_SOCKET) the parent is the service's main
 * process and the only one that speaks: READY=1 once every worker listens,
 * STOPPING=1 when it stops them, WATCHDOG=1 from its own wait loop (it proves
 * the supervisor runs; a worker that dies is the supervisor's to restart). The
 * workers forget the socket (notify_forget) right after the fork. */
#include "src/workers.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "src/base/log.h"
#include "src/base/notify.h"

#define WORKERS_STOP_S 10     /* a worker's time to exit after SIGTERM, then SIGKILL */
#define WORKERS_KILL_WAIT_S 5 /* after SIGKILL, before the parent gives up waiting */
#define WORKERS_BACKOFF_MIN_MS 200  /* first delay before a restart */
#define WORKERS_BACKOFF_MAX_MS 5000 /* the delay doubles up to this... */
#define WORKERS_QUICK_MS 1000       /* ...while a worker dies this soon after its start */

typedef struct worker {
    pid_t pid;          /* 0 while not running */
    bool ready;         /* it said it listens */
    int64_t started_ms; /* when it was forked (monotonic) */
    int64_t restart_ms; /* while not running: when to fork it again; 0 if never */
    int backoff_ms;     /* the delay before its last restart */
} worker;

/* What a worker writes to the ready pipe: one write, so atomic (< PIPE_BUF). */
typedef struct worker_hello {
    int32_t index; /* 1..N */
    int32_t pid;
} worker_hello;

/* The parent's state. Static: a worker forked in the middle of the supervision
 * loop returns out of it and never looks at it again. */
typedef struct supervisor {
    config *cfg;
    int n;
    int port;       /* the concrete port every worker listens on */
    int reserve_fd; /* bound with SO_REUSEPORT, never listening: holds the port */
    int pipe_rd, pipe_wr;
    pid_t self;
    sigset_t waitmask; /* the mask during ppoll(): our signals let through */
    bool all_up;       /* every worker was ready once: start-up is over */
    bool stopping;
    bool killed;              /* SIGKILL sent */
    int64_t deadline_ms;      /* while stopping: the next escalation */
    int64_t watchdog_ms;      /* WATCHDOG=1 every this (half the interval); 0: off */
    int64_t watchdog_next_ms; /* when the next one is due */
    int status;               /* the parent's exit code */
    worker w[WORKERS_MAX];
} supervisor;

static int workers_self;          /* 1..N in a worker */
static int workers_n;             /* N in a worker */
static int workers_ready_fd = -1; /* in a worker until ready: the pipe to the parent */
static sigset_t workers_oldmask;  /* the signal mask before workers_start() */
static volatile sig_atomic_t workers_stop_sig; /* SIGTERM/SIGINT received (parent) */
static volatile sig_atomic_t workers_hup;      /* SIGHUP received (parent) */
static supervisor workers_sup;                 /* the parent's state */

int workers_index(void)
{
    return workers_self;
}

int workers_count(void)
{
    return workers_n;
}

static int64_t workers_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void workers_on_signal(int sig)
{
    /* SIGCHLD only needs to interrupt ppoll(); the loop reaps every time. */
    if (sig == SIGHUP)
        workers_hup = 1;
    else if (sig != SIGCHLD)
        workers_stop_sig = sig;
}

/* Bind (not listen) a socket with SO_REUSEPORT on the configured address: port
 * 0 becomes a concrete port, and holding it keeps it ours while workers
 * restart. Returns 0, or -1 with the reason logged. */
static int workers_reserve(supervisor *s)
{
    struct addrinfo hints = {0}, *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    char port[16];
    int one = 1, rc, fd = -1;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof(port), "%d", s->cfg->http.port);
    /* The same lookup httpd does, so both pick the same address. */
    if ((rc = getaddrinfo(s->cfg->http.host, port, &hints, &ai)) != 0) {
        log_error("cannot listen on %s:%d: %s", s->cfg->http.host, s->cfg->http.port,
                  gai_strerror(rc));
        return -1;
    }
    if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
        log_error("cannot listen on %s:%d: %s", s->cfg->http.host, s->cfg->http.port,
                  strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    s->reserve_fd = fd;
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

/* In a new worker, right after fork(): die with the parent, drop the parent's
 * signal handling and descriptors, and aim the broker at the shared port. */
static void workers_child_init(supervisor *s, int i)
{
    sigset_t chld;

    /* Checked after prctl(): a parent that died before it went unnoticed. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != s->self)
        _exit(1);
    notify_forget();
    signal(SIGCHLD, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    /* SIGTERM, SIGINT and SIGHUP stay blocked until workers_ready(): one that
     * arrives during start-up waits for the broker's own handlers. */
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_UNBLOCK, &chld, NULL);
    close(s->reserve_fd);
    close(s->pipe_rd);
    workers_self = i + 1;
    workers_n = s->n;
    char name[16];
    snprintf(name, sizeof(name), "w%d", workers_self);
    log_set_worker(name); /* every line of this process names it */
    workers_ready_fd = s->pipe_wr;
    s->cfg->http.port = s->port;
    s->cfg->http.reuseport = true;
}

/* Fork worker 'i'. Returns 1 in the new worker, 0 in the parent, -1 if fork()
 * failed (logged). */
static int workers_spawn(supervisor *s, int i)
{
    worker *w = &s->w[i];
    pid_t pid = fork();

    if (pid < 0) {
        log_error("worker %d: fork: %s", i + 1, strerror(errno));
        return -1;
    }
    if (pid == 0) {
        workers_child_init(s, i);
        return 1;
    }
    w->pid = pid;
    w->ready = false;
    w->started_ms = workers_now_ms();
    w->restart_ms = 0;
    return 0;
}

static int workers_live(const supervisor *s)
{
    int live = 0;
    for (int i = 0; i < s->n; i++)
        live += s->w[i].pid != 0;
    return live;
}

/* Begin the shutdown: SIGTERM to every worker, restarts off, a deadline. */
static void workers_stop(supervisor *s)
{
    if (s->stopping)
        return;
    s->stopping = true;
    s->deadline_ms = workers_now_ms() + WORKERS_STOP_S * 1000;
    notify_send("STOPPING=1\nSTATUS=stopping the workers");
    for (int i = 0; i < s->n; i++)
        if (s->w[i].pid)
            kill(s->w[i].pid, SIGTERM);
}

static void workers_describe(int st, char *buf, size_t len)
{
    if (WIFSIGNALED(st))
        snprintf(buf, len, "was killed by signal %d (%s)%s", WTERMSIG(st),
                 strsignal(WTERMSIG(st)), WCOREDUMP(st) ? ", core dumped" : "");
    else
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
}

/* Collect every worker that exited; schedule its restart, or during start-up
 * give up on the whole start. */
static void workers_reap(supervisor *s)
{
    char why[128];
    pid_t pid;
    int st;

    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        int i;
        for (i = 0; i < s->n && s->w[i].pid != pid; i++)
            ;
        if (i == s->n)
            continue;
        worker *w = &s->w[i];
        int64_t now = workers_now_ms(), lived = now - w->started_ms;
        bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;

        w->pid = 0;
        w->ready = false;
        workers_describe(st, why, sizeof(why));
        if (s->stopping) {
            if (!clean) {
                log_warn("worker %d (pid %d) %s during the shutdown", i + 1, (int)pid,
                         why);
                s->status = 1;
            }
            continue;
        }
        if (!s->all_up) {
            log_error("worker %d (pid %d) %s during start-up: stopping the others", i + 1,
                      (int)pid, why);
            s->status = 1;
            workers_stop(s);
            continue;
        }
        /* A worker that keeps dying right after its start waits longer each
         * time; one that ran a while starts over from the shortest delay. */
        if (lived < WORKERS_QUICK_MS) {
            w->backoff_ms = w->backoff_ms * 2;
            if (w->backoff_ms < WORKERS_BACKOFF_MIN_MS)
                w->backoff_ms = WORKERS_BACKOFF_MIN_MS;
            if (w->backoff_ms > WORKERS_BACKOFF_MAX_MS)
                w->backoff_ms = WORKERS_BACKOFF_MAX_MS;
        } else {
            w->backoff_ms = WORKERS_BACKOFF_MIN_MS;
        }
        w->restart_ms = now + w->backoff_ms;
        log_warn("worker %d (pid %d) %s after %lld ms; restarting it in %d ms", i + 1,
                 (int)pid, why, (long long)lived, w->backoff_ms);
    }
}

/* Read the workers' ready messages; log the listening line once all are up. */
static void workers_read_ready(supervisor *s)
{
    worker_hello h[WORKERS_MAX];
    ssize_t got;

    while ((got = read(s->pipe_rd, h, sizeof(h))) > 0) {
        /* Each message is one atomic write, so reads hold whole messages. */
        for (size_t k = 0; k < (size_t)got / sizeof(h[0]); k++) {
            int i = h[k].index - 1;
            /* A message from an earlier, dead incarnation does not count. */
            if (i < 0 || i >= s->n || s->w[i].pid != (pid_t)h[k].pid || s->stopping)
                continue;
            s->w[i].ready = true;
            if (s->all_up)
                log_info("worker %d (pid %d) is back", i + 1, (int)h[k].pid);
        }
    }
    if (s->all_up || s->stopping)
        return;
    for (int i = 0; i < s->n; i++)
        if (!s->w[i].ready)
            return;
    s->all_up = true;
    log_info(
        "ssebroker %s listening on %s:%d (store: %s, %d worker(s), supervisor pid %d)",
        PACKAGE_VERSION, s->cfg->http.host, s->port, s->cfg->store_type, s->n,
        (int)s->self);
    notify_sendf("READY=1\nMAINPID=%d\nSTATUS=listening on %s:%d (store: %s, %d "
                 "worker(s))",
                 (int)s->self, s->cfg->http.host, s->port, s->cfg->store_type, s->n);
}

/* The supervision loop. Returns 1 in the parent once every worker is gone, 0 in
 * a worker it forked (a restart). */
static int workers_supervise(supervisor *s)
{
    struct pollfd pfd = {.fd = s->pipe_rd, .events = POLLIN};

    for (;;) {
        int64_t now, wake = -1;
        struct timespec ts;

        workers_reap(s);
        if (workers_stop_sig && !s->stopping) {
            log_info("signal %d: stopping %d worker(s)", (int)workers_stop_sig,
                     workers_live(s));
            workers_stop(s);
        }
        if (workers_hup) {
            /* Each worker reads the file again itself (main.c). */
            workers_hup = 0;
            log_info("SIGHUP: passing it on to %d worker(s)", workers_live(s));
            for (int i = 0; !s->stopping && i < s->n; i++)
                if (s->w[i].pid)
                    kill(s->w[i].pid, SIGHUP);
        }
        workers_read_ready(s);
        now = workers_now_ms();
        if (s->watchdog_ms && now >= s->watchdog_next_ms) {
            notify_send("WATCHDOG=1");
            s->watchdog_next_ms = now + s->watchdog_ms;
        }
        if (s->stopping) {
            if (workers_live(s) == 0)
                return 1;
            if (now >= s->deadline_ms && !s->killed) {
                log_warn("%d worker(s) still running %d s after SIGTERM: SIGKILL",
                         workers_live(s), WORKERS_STOP_S);
                for (int i = 0; i < s->n; i++)
                    if (s->w[i].pid)
                        kill(s->w[i].pid, SIGKILL);
                s->killed = true;
                s->status = 1;
                s->deadline_ms = now + WORKERS_KILL_WAIT_S * 1000;
            } else if (now >= s->deadline_ms) {
                log_error("%d worker(s) did not exit after SIGKILL; giving up on them",
                          workers_live(s));
                s->status = 1;
                return 1;
            }
            wake = s->deadline_ms;
        } else {
            for (int i = 0; i < s->n; i++) {
                worker *w = &s->w[i];
                if (w->pid || !w->restart_ms)
                    continue;
                if (now >= w->restart_ms) {
                    int rc = workers_spawn(s, i);
                    if (rc > 0)
                        return 0;
                    if (rc < 0) {
                        w->backoff_ms = WORKERS_BACKOFF_MAX_MS;
                        w->restart_ms = now + w->backoff_ms;
                    }
                }
                if (!w->pid && (wake < 0 || w->restart_ms < wake))
                    wake = w->restart_ms;
            }
        }
        if (s->watchdog_ms && (wake < 0 || s->watchdog_next_ms < wake))
            wake = s->watchdog_next_ms;
        if (wake >= 0) {
            int64_t ms = wake > now ? wake - now : 0;
            ts.tv_sec = ms / 1000;
            ts.tv_nsec = (ms % 1000) * 1000000;
        }
        /* Our signals are delivered only in here: one that came since the
         * checks above is pending and interrupts the wait at once. */
        if (ppoll(&pfd, 1, wake >= 0 ? &ts : NULL, &s->waitmask) < 0 && errno != EINTR) {
            log_error("supervisor: ppoll: %s", strerror(errno));
            workers_stop(s);
        }
    }
}

int workers_start(config *cfg, int n, int *status)
{
    static const int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP};
    enum { NSIGS = sizeof(sigs) / sizeof(sigs[0]) };
    supervisor *s;
    struct sigaction sa;
    struct sigaction old[NSIGS];
    sigset_t block;
    uint64_t wd_us;
    int rc = -1, fds[2];

    *status = 1;
    if (n < 1 || n > WORKERS_MAX) {
        log_error("--workers: %d is not from 1 to %d", n, WORKERS_MAX);
        return -1;
    }
    s = &workers_sup;
    memset(s, 0, sizeof(*s));
    log_set_worker("supervisor");
    s->cfg = cfg;
    s->n = n;
    s->self = getpid();
    s->reserve_fd = s->pipe_rd = s->pipe_wr = -1;
    /* Half the watchdog interval, in ms (at least 1). */
    if ((wd_us = notify_watchdog_usec()))
        s->watchdog_ms = wd_us >= 2000 ? (int64_t)(wd_us / 2000) : 1;
    s->watchdog_next_ms = workers_now_ms() + s->watchdog_ms;
    if (workers_reserve(s) < 0)
        return -1;
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
        log_error("supervisor: pipe: %s", strerror(errno));
        close(s->reserve_fd);
        return -1;
    }
    s->pipe_rd = fds[0];
    s->pipe_wr = fds[1];

    /* Block our signals before the first fork: they are taken only in ppoll(). */
    sigemptyset(&block);
    for (int k = 0; k < NSIGS; k++)
        sigaddset(&block, sigs[k]);
    sigprocmask(SIG_BLOCK, &block, &workers_oldmask);
    s->waitmask = workers_oldmask;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = workers_on_signal;
    sigemptyset(&sa.sa_mask);
    for (int k = 0; k < NSIGS; k++) {
        sigdelset(&s->waitmask, sigs[k]);
        sigaction(sigs[k], &sa, &old[k]);
    }

    log_info("supervisor (pid %d): starting %d worker(s) on %s:%d", (int)s->self, n,
             cfg->http.host, s->port);
    for (int i = 0; i < n; i++) {
        int r = workers_spawn(s, i);
        if (r > 0)
            return 0;
        if (r < 0) {
            s->status = 1;
            workers_stop(s);
            break;
        }
    }
    if (workers_supervise(s) == 0)
        return 0; /* a restarted worker */
    rc = 1;
    *status = s->status;
    log_info("supervisor: all workers stopped (exit %d)", s->status);

    for (int k = 0; k < NSIGS; k++)
        sigaction(sigs[k], &old[k], NULL);
    sigprocmask(SIG_SETMASK, &workers_oldmask, NULL);
    close(s->pipe_rd);
    close(s->pipe_wr);
    close(s->reserve_fd);
    return rc;
}

void workers_ready(void)
{
    worker_hello h;

    if (!workers_self)
        return;
    if (workers_ready_fd >= 0) {
        h.index = workers_self;
        h.pid = (int32_t)getpid();
        if (write(workers_ready_fd, &h, sizeof(h)) != (ssize_t)sizeof(h))
            log_warn("worker %d: cannot tell the supervisor it is ready: %s",
                     workers_self, strerror(errno));
        close(workers_ready_fd);
        workers_ready_fd = -1;
    }
    sigprocmask(SIG_SETMASK, &workers_oldmask, NULL);
}
