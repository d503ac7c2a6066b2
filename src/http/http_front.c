/* http_front.c - front loops: threads, mailboxes, and the main loop's side
 * of a handed publish (see http_front.h). */
#include "src/http/http_front.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>

#include "src/auth/auth.h"
#include "src/base/log.h"
#include "src/base/mailbox.h"

/* Jobs the main loop's mailbox holds at most, per front: its publishes
 * (bounded by HTTP_FRONT_JOBS on their own), connections handed over and
 * refusals counted. Over it a hand-over is refused (503) and a count lost. */
#define MAIN_JOBS_PER_FRONT (2 * HTTP_FRONT_JOBS)
#define QUIT_WAIT_MS 10  /* the main loop's poll while the fronts close */
#define QUIT_MAX_MS 2000 /* then fronts still waiting for the broker are ended */

enum {
    JOB_PUBLISH, /* to the main loop, then back to the front */
    JOB_REFUSED, /* to the main loop: count a refused publish */
    JOB_ADOPT,   /* to the main loop: a connection handed over */
    JOB_RELOAD,  /* to a front: the new limits, CORS and access control */
    JOB_STOP,    /* to a front: stop accepting */
    JOB_QUIT     /* to a front: close everything, then end once its jobs are back */
};

typedef struct job {
    mail m; /* first */
    int kind;
    http_front *f;           /* NULL: orphaned (its front is gone: see below) */
    struct job *prev, *next; /* JOB_PUBLISH: in the broker's hands (main loop) */
    /* JOB_PUBLISH: there */
    char *chan;
    pub_batch batch;
    void *ctx; /* the front's: the main loop only carries it */
    /* JOB_PUBLISH: back; JOB_REFUSED: the result */
    int status;
    uint64_t *ids;
    size_t n;
    int64_t ts_us;
    /* JOB_ADOPT */
    int fd;
    bool over;
    char *bytes;
    size_t len;
    /* JOB_RELOAD: owned copies of what its strings and auth point to */
    http_opts o;
} job;

struct http_front {
    http_fronts *all;
    struct event_base *base;
    mailbox *mb; /* to this front */
    void *srv;   /* its server (http.c's), on its thread; NULL once quit */
    httpd *d;    /* that server's httpd: publishing connections are adopted there */
    pthread_t tid;
    bool started;
    size_t waiting; /* publishes at the main loop (this thread's count) */
    /* Its figures (http_fronts_stats): written by its thread only, read by
     * any (relaxed: each figure on its own). */
    _Atomic unsigned long long posted, refused;
    _Atomic size_t waiting_now, waiting_max;
    bool quitting;
    bool ended;           /* front_end() ran */
    bool quitting_posted; /* the main loop's: a JOB_QUIT went (the next forces) */
};

struct http_fronts {
    struct event_base *base; /* the main loop's */
    broker *b;
    httpd *main_d;
    mailbox *mb; /* to the main loop */
    const http_front_hooks *hk;
    bool quitting;     /* the main loop's: no more publishing */
    job *in_broker;    /* publishes the broker holds (their callbacks will come) */
    _Atomic int ended; /* fronts whose loop has ended */
    int n;
    unsigned next; /* the main loop's: the front the next publisher goes to */
    http_front f[];
};

static void job_free(job *j)
{
    if (!j)
        return;
    free(j->chan);
    pub_batch_free(&j->batch);
    free(j->ids);
    free(j->bytes);
    if (j->fd >= 0)
        close(j->fd);
    free(j->o.cors_origin);
    free((char *)j->o.auth_cookie);
    auth_free((auth *)j->o.auth);
    free(j);
}

static job *job_new(int kind, http_front *f)
{
    job *j = calloc(1, sizeof(*j));
    if (j) {
        j->kind = kind;
        j->f = f;
        j->fd = -1;
    }
    return j;
}

/* ---- the main loop's side ---- */

/* The broker holds the job from now on (until one of its callbacks). */
static void held(job *j)
{
    http_fronts *fs = j->f->all;
    j->prev = NULL;
    j->next = fs->in_broker;
    if (j->next)
        j->next->prev = j;
    fs->in_broker = j;
}

/* The broker called back: the job is the main loop's again. Returns false
 * for an orphan (its fronts were freed while the broker held it: freed). */
static bool unheld(job *j)
{
    if (!j->f) {
        job_free(j);
        return false;
    }
    if (j->prev)
        j->prev->next = j->next;
    else
        j->f->all->in_broker = j->next;
    if (j->next)
        j->next->prev = j->prev;
    j->prev = j->next = NULL;
    return true;
}

/* The result goes back to its front (whose mailbox takes every answer: the
 * front bounds how many it waits for). */
static void pub_reply(job *j, int status)
{
    j->status = status;
    mailbox_post(j->f->mb, &j->m, sizeof(*j));
}

static void pub_done(int status, const uint64_t *ids, size_t n, int64_t ts_us, void *arg)
{
    job *j = arg;
    if (!unheld(j))
        return;
    if (status >= 0 && n && !(j->ids = malloc(n * sizeof(*ids))))
        status = BROKER_ENOMEM;
    if (j->ids) {
        memcpy(j->ids, ids, n * sizeof(*ids));
        j->n = n;
    }
    j->ts_us = ts_us;
    pub_reply(j, status);
}

/* As http.c's find() then publish_now() for the main loop's own requests. */
static void pub_found(int status, chan *ch, void *arg)
{
    job *j = arg;
    broker *b;
    int rc;
    if (!unheld(j))
        return;
    b = j->f->all->b;
    if (!ch) {
        broker_publish_refused(b, broker_pub_result(status));
        pub_reply(j, status);
    } else if ((rc = broker_publish(b, ch, NULL, &j->batch, pub_done, j)) < 0) {
        pub_reply(j, rc);
    } else {
        held(j);
    }
}

static void pub_start(job *j)
{
    int why;
    chan *ch;
    if (j->f->all->quitting) {
        pub_reply(j, BROKER_ECLOSING);
        return;
    }
    /* pub_found() runs now, or later from the broker: held either way. */
    held(j);
    ch = broker_chan_lookup(j->f->all->b, j->chan, true, &why, pub_found, j);
    if (ch)
        pub_found(0, ch, j);
    else if (why != BROKER_EPENDING)
        pub_found(why, NULL, j);
}

static void main_job(mail *m, void *arg)
{
    http_fronts *fs = arg;
    job *j = (job *)m;
    switch (j->kind) {
    case JOB_PUBLISH:
        pub_start(j);
        return;
    case JOB_REFUSED:
        broker_publish_refused(fs->b, j->status);
        break;
    case JOB_ADOPT:
        if (!fs->quitting) {
            httpd_adopt(fs->main_d, j->fd, j->over, j->bytes, j->len);
            j->fd = -1; /* httpd_adopt took both */
            j->bytes = NULL;
        }
        break;
    }
    job_free(j);
}

/* ---- a front's side ---- */

static void front_end(http_front *f)
{
    if (f->ended)
        return;
    f->ended = true;
    atomic_fetch_add_explicit(&f->all->ended, 1, memory_order_release);
    event_base_loopbreak(f->base);
}

/* Add one to a figure of f's (on f's thread, its only writer: a plain load
 * and store, no locked instruction on the publish path). */
static void count(_Atomic unsigned long long *n)
{
    atomic_store_explicit(n, atomic_load_explicit(n, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* f->waiting changed: the figures follow (on f's thread). */
static void waiting_changed(http_front *f)
{
    atomic_store_explicit(&f->waiting_now, f->waiting, memory_order_relaxed);
    if (f->waiting > atomic_load_explicit(&f->waiting_max, memory_order_relaxed))
        atomic_store_explicit(&f->waiting_max, f->waiting, memory_order_relaxed);
}

static void front_job(mail *m, void *arg)
{
    http_front *f = arg;
    const http_front_hooks *hk = f->all->hk;
    job *j = (job *)m;
    switch (j->kind) {
    case JOB_PUBLISH:
        f->waiting--;
        waiting_changed(f);
        hk->answer(j->ctx, j->status, j->ids, j->n, j->ts_us);
        if (f->quitting && !f->waiting)
            front_end(f);
        break;
    case JOB_ADOPT: /* a publishing connection, from the main loop */
        if (f->srv && !f->quitting) {
            httpd_adopt(f->d, j->fd, j->over, j->bytes, j->len);
            j->fd = -1; /* httpd_adopt took both */
            j->bytes = NULL;
        }
        break;
    case JOB_RELOAD:
        if (f->srv)
            hk->reload(f->srv, &j->o);
        break;
    case JOB_STOP:
        if (f->srv)
            hk->stop_accepting(f->srv);
        break;
    case JOB_QUIT:
        if (f->srv)
            hk->free(f->srv); /* requests waiting for the main loop lose their client */
        f->srv = NULL;
        /* Forced (j->status): the broker holds publishes of this front past
         * the bound (a store that does not answer): end without them; their
         * requests, whose clients are gone, are freed by the main loop once
         * this thread is joined (http_fronts_free). */
        if ((f->quitting && j->status) || (!f->quitting && !f->waiting))
            front_end(f);
        f->quitting = true;
        break;
    }
    job_free(j);
}

/* A publish refused on f's thread (counted; 503 overloaded): -1. */
static int pub_refuse(http_front *f)
{
    count(&f->refused);
    return -1;
}

int http_front_publish(http_front *f, const char *name, pub_batch *batch, size_t bytes,
                       void *ctx)
{
    job *j;
    if (f->waiting >= HTTP_FRONT_JOBS || !(j = job_new(JOB_PUBLISH, f)))
        return pub_refuse(f);
    if (!(j->chan = strdup(name))) {
        job_free(j);
        return pub_refuse(f);
    }
    j->batch = *batch;
    j->ctx = ctx;
    if (mailbox_post(f->all->mb, &j->m, sizeof(*j) + bytes) < 0) {
        j->batch = (pub_batch){0};
        job_free(j);
        return pub_refuse(f);
    }
    *batch = (pub_batch){0};
    f->waiting++;
    waiting_changed(f);
    count(&f->posted);
    return 0;
}

void http_front_refused(http_front *f, int result)
{
    job *j = job_new(JOB_REFUSED, f);
    if (!j)
        return;
    j->status = result;
    if (mailbox_post(f->all->mb, &j->m, sizeof(*j)) < 0)
        job_free(j); /* the mailbox is full: this count is lost */
}

/* httpd's hand-over test: only the plain publish route is served here. The
 * head is raw bytes: "POST /channels/" NAME "/events" then " " or "?". A
 * name is one segment; anything else (absolute-form targets included) goes
 * to the main loop, which answers as it always does. */
static bool front_keeps(const char *p, size_t len, void *arg)
{
    static const char pre[] = "POST /channels/", post[] = "/events";
    size_t i = sizeof(pre) - 1, start = i;
    if (len < i || memcmp(p, pre, i) != 0)
        return false;
    while (i < len && p[i] != '/' && p[i] != ' ' && p[i] != '?' && p[i] != '\r' &&
           p[i] != '\n')
        i++;
    if (i == start || len - i < sizeof(post) || memcmp(p + i, post, sizeof(post) - 1))
        return false;
    i += sizeof(post) - 1;
    return p[i] == ' ' || p[i] == '?';
}

/* The main loop's test: it serves everything but the publish route. */
static bool main_keeps(const char *p, size_t len, void *arg)
{
    return !front_keeps(p, len, arg);
}

/* Post a connection to 'to' (a front's mailbox, or the main loop's) in a
 * job of front 'f'. 0, or -1 with the fd and the bytes still the caller's. */
static int post_adopt(http_front *f, mailbox *to, int fd, bool over, char *bytes,
                      size_t len)
{
    job *j = job_new(JOB_ADOPT, f);
    if (!j)
        return -1;
    j->fd = fd;
    j->over = over;
    j->bytes = bytes;
    j->len = len;
    if (mailbox_post(to, &j->m, sizeof(*j) + len) < 0) {
        free(j); /* not job_free: fd and bytes stay the caller's */
        return -1;
    }
    return 0;
}

/* The main loop gives a publishing connection to the fronts in turn. A
 * publisher keeps its connection open for many requests, so the hand-over
 * (a dup and a copy of what it sent) is paid once for all of them. */
static int main_give(int fd, bool over, char *bytes, size_t len, void *arg)
{
    http_fronts *fs = arg;
    http_front *f;
    if (fs->quitting)
        return -1;
    f = &fs->f[fs->next++ % (unsigned)fs->n];
    return post_adopt(f, f->mb, fd, over, bytes, len);
}

/* A front gives back a connection whose next request is not a publish. */
static int front_give(int fd, bool over, char *bytes, size_t len, void *arg)
{
    http_front *f = arg;
    return post_adopt(f, f->all->mb, fd, over, bytes, len);
}

static void *front_main(void *arg)
{
    http_front *f = arg;
    event_base_dispatch(f->base);
    return NULL;
}

/* ---- life ---- */

http_fronts *http_fronts_new(struct event_base *base, broker *b, httpd *main_d, int n,
                             const http_front_hooks *hk)
{
    http_fronts *fs = calloc(1, sizeof(*fs) + (size_t)n * sizeof(http_front));
    if (!fs)
        return NULL;
    fs->base = base;
    fs->b = b;
    fs->main_d = main_d;
    fs->hk = hk;
    fs->n = n;
    if (!(fs->mb = mailbox_new(base, (size_t)n * MAIN_JOBS_PER_FRONT, main_job, fs)))
        goto fail;
    for (int i = 0; i < n; i++) {
        http_front *f = &fs->f[i];
        f->all = fs;
        if (!(f->base = event_base_new()) ||
            !(f->mb = mailbox_new(f->base, 0, front_job, f)))
            goto fail;
    }
    return fs;
fail:
    http_fronts_free(fs);
    return NULL;
}

int http_front_loops(int threads)
{
    return threads >= HTTP_FRONT_MIN_THREADS ? threads - 1 : 0;
}

int http_fronts_count(const http_fronts *fs)
{
    return fs ? fs->n : 0;
}

http_front *http_fronts_get(http_fronts *fs, int i)
{
    return &fs->f[i];
}

struct event_base *http_front_base(http_front *f)
{
    return f->base;
}

void http_front_set(http_front *f, void *srv, httpd *d)
{
    f->srv = srv;
    f->d = d;
    httpd_set_handover(d, front_keeps, front_give, f);
    httpd_set_handover(f->all->main_d, main_keeps, main_give, f->all);
}

int http_fronts_start(http_fronts *fs)
{
    for (int i = 0; i < fs->n; i++) {
        int rc = pthread_create(&fs->f[i].tid, NULL, front_main, &fs->f[i]);
        if (rc != 0) {
            log_error("cannot start front loop %d: %s", i + 1, strerror(rc));
            return -1; /* http_fronts_free() stops those started */
        }
        fs->f[i].started = true;
    }
    return 0;
}

void http_fronts_stats_get(http_fronts *fs, http_fronts_stats *st)
{
    *st = (http_fronts_stats){.limit = HTTP_FRONT_JOBS};
    for (int i = 0; fs && i < fs->n; i++) {
        http_front *f = &fs->f[i];
        size_t max = atomic_load_explicit(&f->waiting_max, memory_order_relaxed);
        st->loops++;
        st->posted += atomic_load_explicit(&f->posted, memory_order_relaxed);
        st->refused += atomic_load_explicit(&f->refused, memory_order_relaxed);
        st->waiting += atomic_load_explicit(&f->waiting_now, memory_order_relaxed);
        if (max > st->waiting_max)
            st->waiting_max = max;
    }
}

/* Post 'kind' to every front; a reload carries copies of 'o'. */
static void post_all(http_fronts *fs, int kind, const http_opts *o)
{
    for (int i = 0; i < fs->n; i++) {
        job *j = job_new(kind, &fs->f[i]);
        if (!j) {
            log_error("front loop %d: out of memory: a %s is not applied there", i + 1,
                      kind == JOB_RELOAD ? "reload" : "stop");
            continue;
        }
        j->status = fs->quitting && kind == JOB_QUIT && fs->f[i].quitting_posted;
        fs->f[i].quitting_posted |= kind == JOB_QUIT;
        if (o) {
            j->o = *o;
            j->o.cors_origin = o->cors_origin ? strdup(o->cors_origin) : NULL;
            j->o.auth_cookie = o->auth_cookie ? strdup(o->auth_cookie) : NULL;
            j->o.auth = auth_ref(o->auth);
            if ((o->cors_origin && !j->o.cors_origin) ||
                (o->auth_cookie && !j->o.auth_cookie)) {
                log_error("front loop %d: out of memory: a reload is not applied there",
                          i + 1);
                job_free(j);
                continue;
            }
        }
        mailbox_post(fs->f[i].mb, &j->m, sizeof(*j));
    }
}

void http_fronts_reload(http_fronts *fs, const http_opts *o)
{
    if (fs)
        post_all(fs, JOB_RELOAD, o);
}

void http_fronts_stop_accepting(http_fronts *fs)
{
    if (!fs)
        return;
    post_all(fs, JOB_STOP, NULL);
}

void http_fronts_free(http_fronts *fs)
{
    int started = 0, waited = 0;
    bool forced = false;
    if (!fs)
        return;
    fs->quitting = true;
    for (int i = 0; i < fs->n; i++)
        started += fs->f[i].started;
    if (started) {
        post_all(fs, JOB_QUIT, NULL);
        /* Each front closes its connections and ends once every publish it
         * handed here is back: answer those meanwhile ("shutting down").
         * Publishes the broker still holds (the loop has stopped: a store
         * that did not answer in time) end the wait after QUIT_MAX_MS. */
        while (atomic_load_explicit(&fs->ended, memory_order_acquire) < started) {
            mailbox_run(fs->mb);
            mailbox_wait(fs->mb, QUIT_WAIT_MS);
            if (!forced && (waited += QUIT_WAIT_MS) >= QUIT_MAX_MS) {
                forced = true;
                post_all(fs, JOB_QUIT, NULL); /* marked forced below */
            }
        }
    }
    /* What a front posted before it ended and this loop has not taken yet:
     * answered "shutting down" (into the fronts' mailboxes, run below). */
    mailbox_run(fs->mb);
    for (int i = 0; i < fs->n; i++) {
        http_front *f = &fs->f[i];
        if (f->started)
            pthread_join(f->tid, NULL);
        else if (f->srv)
            fs->hk->free(f->srv); /* made but never run: free it here */
        f->srv = NULL;
    }
    /* The broker still holds these (a forced end: a store that did not
     * answer): orphans now, freed by its callback (broker_free answers what
     * it still holds). Their requests are the fronts', whose threads are over
     * and whose clients are gone (their servers were freed): answering them
     * here frees them. */
    for (job *j = fs->in_broker, *next; j; j = next) {
        next = j->next;
        fs->hk->answer(j->ctx, BROKER_ECLOSING, NULL, 0, 0);
        j->ctx = NULL;
        j->f = NULL;
        j->prev = j->next = NULL;
    }
    for (int i = 0; i < fs->n; i++) {
        http_front *f = &fs->f[i];
        mailbox_free(f->mb); /* answers still queued there free their requests */
        if (f->base)
            event_base_free(f->base);
    }
    mailbox_free(fs->mb);
    free(fs);
}
