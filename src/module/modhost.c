/* modhost.c - the module host: loading, delivery to modules, their publishes
 * and timers (see modhost.h). */
#include "src/module/modhost.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <event2/event.h>
#include <ssebroker/module.h>

#include "src/base/log.h"
#include "src/base/util.h"
#include "src/broker/node.h"
#include "src/domain/names.h"
#include "src/domain/pattern.h"
#include "src/domain/publish.h"
#include "src/domain/session.h"

/* Under AddressSanitizer a module stays mapped at exit: LeakSanitizer looks
 * for leaks after main returns, and a leak of a module closed by then is not
 * reported at all (tried with a module leaking in its free: nothing; left
 * mapped, the leak is reported with the module's functions). */
#if defined(__SANITIZE_ADDRESS__)
#define MODHOST_DLCLOSE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MODHOST_DLCLOSE 0
#endif
#endif
#ifndef MODHOST_DLCLOSE
#define MODHOST_DLCLOSE 1
#endif

struct ssebroker_timer {
    LIST_ENTRY(ssebroker_timer) link;
    struct event *ev;
    struct module *mod;
    ssebroker_timer_cb cb;
    void *arg;
};
LIST_HEAD(timer_list, ssebroker_timer);

typedef struct mod_pub mod_pub;
TAILQ_HEAD(pub_list, mod_pub);

/* One instance. 'host' comes first: the host table a module is handed is
 * the instance itself. */
typedef struct module {
    ssebroker_host host;
    modhost *mh;
    char *name;
    char **match;
    size_t nmatch;
    void *dl;
    const ssebroker_module_desc *desc;
    void *state;
    struct timer_list timers;
    size_t inflight;         /* its publishes under way (those waiting included) */
    struct pub_list waiting; /* ... not yet handed to the broker, in the order
                                made: the first one's channel is being looked up */
    modhost_stats st;
} module;

struct modhost {
    struct event_base *base;
    broker *b;
    kv_store *kv; /* the broker's */
    int max_depth;
    module *mods[MODHOST_MAX];
    size_t n;
    struct pub_list pubs; /* module publishes under way */
    size_t reacting;      /* ... of them made in reaction to an event */
    /* While a module's on_event runs: the depth of the message it reacts to
     * (what it publishes goes one deeper), -1 outside on_event; and its id
     * (0 outside on_event). */
    int cur_depth;
    uint64_t cur_seq;

    /* Once per event in a cluster: the lease (see modhost.h). */
    struct event *lease_ev; /* every MODHOST_LEASE_TICK_MS */
    struct event *save_ev;  /* saves 'done' MODHOST_SAVE_MS after it moved */
    bool lease_busy;        /* a read or write of the lease under way */
    bool holder;            /* this node won the lease and did not lose it */
    bool active;            /* ... and caught up: modules get events here */
    bool reading;           /* reading where the last holder stopped */
    bool stopped;           /* modhost_stop: no more events, no more lease */
    bool sessions;          /* a module is told of sessions: SESSION_CHANNEL is
                               caught up too */
    int64_t lease_until_ms; /* the lease is ours until then (our clock) */
    int64_t asked_ms;       /* when the write of the lease was sent */
    char lease_val[64];     /* what the store holds while we hold it */
    uint64_t done;          /* the last event handed to the modules here */
    uint64_t saved;         /* the last 'done' written to the store */
    uint64_t start_seq;     /* the newest event retained when we started */
    unsigned long long takeovers;

    /* modhost_stop waiting for the publishes under way (MODHOST_STOP_MS at
     * most), then calling stopped_cb (once). */
    struct event *stop_ev;
    modhost_stopped_cb stopped_cb;
    void *stopped_arg;
};

/* A module's publish under way: the channel looked up, then the publish. */
struct mod_pub {
    TAILQ_ENTRY(mod_pub) link; /* the host's pubs */
    TAILQ_ENTRY(mod_pub) wait; /* its module's waiting, until handed to the broker */
    module *mod;               /* NULL once the host is gone */
    uint64_t seq;              /* the event it reacts to; 0: none (a timer's) */
    chan *ch;                  /* while waiting: its channel, found (a reference) */
    pub_batch batch;
    char channel[CHAN_NAME_MAX + 1];
};

/* ---- the host table ---- */

static void host_logv(module *mod, int level, const char *fmt, va_list ap)
{
    char text[LOG_MESSAGE_MAX];
    vsnprintf(text, sizeof(text), fmt, ap);
    log_fields(level < LOG_DEBUG || level > LOG_ERROR ? LOG_INFO : level,
               (log_field[]){LOG_STR("module", mod->name)}, 1, "module %s: %s", mod->name,
               text);
}

static void host_log(const ssebroker_host *h, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    host_logv((module *)h, level, fmt, ap);
    va_end(ap);
}

static void timer_fired(evutil_socket_t fd, short what, void *arg)
{
    ssebroker_timer *t = arg;
    ssebroker_timer_cb cb = t->cb;
    void *cbarg = t->arg;
    /* Gone before the call: the callback may set timers, or cancel others. */
    LIST_REMOVE(t, link);
    event_free(t->ev);
    free(t);
    cb(cbarg);
}

static ssebroker_timer *host_timer_add(const ssebroker_host *h, unsigned ms,
                                       ssebroker_timer_cb cb, void *arg)
{
    module *mod = (module *)h;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    ssebroker_timer *t = calloc(1, sizeof(*t));
    if (!t || !cb || !(t->ev = evtimer_new(mod->mh->base, timer_fired, t)) ||
        evtimer_add(t->ev, &tv) < 0) {
        if (t && t->ev)
            event_free(t->ev);
        free(t);
        return NULL;
    }
    t->mod = mod;
    t->cb = cb;
    t->arg = arg;
    LIST_INSERT_HEAD(&mod->timers, t, link);
    return t;
}

static void host_timer_cancel(const ssebroker_host *h, ssebroker_timer *t)
{
    if (!t)
        return;
    LIST_REMOVE(t, link);
    event_free(t->ev);
    free(t);
}

static void mod_error(module *mod, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void mod_error(module *mod, const char *fmt, ...)
{
    va_list ap;
    mod->st.errors++;
    va_start(ap, fmt);
    host_logv(mod, LOG_WARN, fmt, ap);
    va_end(ap);
}

static void host_error(const ssebroker_host *h, const char *fmt, ...)
{
    module *mod = (module *)h;
    va_list ap;
    mod->st.errors++;
    va_start(ap, fmt);
    host_logv(mod, LOG_WARN, fmt, ap);
    va_end(ap);
}

static void save_soon(modhost *mh);
static void stop_soon(modhost *mh);

static void pub_free(mod_pub *mp)
{
    if (mp->mod) { /* else the host is gone, and took it off its list */
        modhost *mh = mp->mod->mh;
        mp->mod->inflight--;
        TAILQ_REMOVE(&mh->pubs, mp, link);
        if (mp->seq && !--mh->reacting && mh->stopped_cb)
            stop_soon(mh); /* modhost_stop was waiting for it */
        else if (mp->seq)
            save_soon(mh); /* 'done' may move on */
    }
    pub_batch_free(&mp->batch);
    free(mp);
}

static void pub_done(int status, const uint64_t *ids, size_t n, int64_t ts_us, void *arg)
{
    mod_pub *mp = arg;
    if (mp->mod && status < 0)
        mod_error(mp->mod, "a publish to '%s' failed: %s", mp->channel,
                  broker_strerror(status));
    else if (mp->mod)
        mp->mod->st.published += n;
    pub_free(mp);
}

/* Publish on the channel found; 0, or the refusal (the caller frees). */
static int pub_start(mod_pub *mp, chan *ch)
{
    int rc = broker_publish(mp->mod->mh->b, ch, NULL, &mp->batch, pub_done, mp);
    if (rc < 0)
        mod_error(mp->mod, "a publish to '%s' failed: %s", mp->channel,
                  broker_strerror(rc));
    return rc;
}

/* A module's publishes go to the broker (which numbers them in the order it
 * gets them) in the order the module made them: the first waiting once its
 * channel is found, then each one behind it whose channel is found too. The
 * first waiting is always one whose lookup is under way. */
static void pub_pump(module *mod)
{
    mod_pub *mp;
    while ((mp = TAILQ_FIRST(&mod->waiting)) && mp->ch) {
        chan *ch = mp->ch;
        TAILQ_REMOVE(&mod->waiting, mp, wait);
        mp->ch = NULL;
        if (ch->deleted) { /* while it waited for the one before */
            mod_error(mod, "a publish to '%s' failed: %s", mp->channel,
                      broker_strerror(BROKER_ENOCHAN));
            pub_free(mp);
        } else if (pub_start(mp, ch) < 0) {
            pub_free(mp);
        }
        chan_unref(ch);
    }
}

static void pub_found(int status, chan *ch, void *arg)
{
    mod_pub *mp = arg;
    module *mod = mp->mod;
    if (!mod) { /* the host is gone: it is on no list */
        pub_free(mp);
        return;
    }
    if (status < 0 || !ch) {
        mod_error(mod, "a publish to '%s' failed: %s", mp->channel,
                  broker_strerror(status < 0 ? status : BROKER_ENOCHAN));
        TAILQ_REMOVE(&mod->waiting, mp, wait);
        pub_free(mp);
    } else {
        mp->ch = chan_ref(ch);
    }
    pub_pump(mod);
}

/* An event type a client could publish: 1..PUB_EVENT_MAX bytes, no CR, LF,
 * not "sys.". */
static bool valid_event(const char *e)
{
    size_t len = strlen(e);
    return len >= 1 && len <= PUB_EVENT_MAX && !strpbrk(e, "\r\n") &&
           strncmp(e, PUB_EVENT_RESERVED, strlen(PUB_EVENT_RESERVED)) != 0;
}

static int host_publish(const ssebroker_host *h, const char *channel, const char *event,
                        const char *data, size_t len)
{
    module *mod = (module *)h;
    modhost *mh = mod->mh;
    int depth = mh->cur_depth >= 0 ? mh->cur_depth + 1 : 1;
    int why = 0;
    mod_pub *mp;
    pub_event *ev;
    chan *ch;

    if (!channel || !valid_channel_name(channel, strlen(channel)) ||
        channel_reserved(channel) || (event && !valid_event(event)) || (len && !data) ||
        len > MODHOST_DATA_MAX || (len && memchr(data, '\0', len))) {
        mod_error(mod, "a publish refused: bad channel, event type or data");
        return SSEBROKER_EINVAL;
    }
    if (depth > mh->max_depth) {
        mod->st.cut++;
        log_debug("module %s: a publish to '%s' cut at depth %d (modules_max_depth)",
                  mod->name, channel, depth);
        return SSEBROKER_EDEPTH;
    }
    if (mod->inflight >= MODHOST_INFLIGHT_MAX) {
        mod->st.dropped++;
        return SSEBROKER_EBUSY;
    }
    if (!(mp = calloc(1, sizeof(*mp))) || !(mp->batch.ev = ev = calloc(1, sizeof(*ev)))) {
        free(mp);
        mod_error(mod, "a publish refused: out of memory");
        return SSEBROKER_ENOMEM;
    }
    mp->batch.n = 1;
    if (!(ev->data = malloc(len + 1)) || (event && !(ev->event = strdup(event))) ||
        !(ev->tg = target_with_source(NULL, mod->name, (unsigned)depth, NULL))) {
        pub_batch_free(&mp->batch);
        free(mp);
        mod_error(mod, "a publish refused: out of memory");
        return SSEBROKER_ENOMEM;
    }
    if (len)
        memcpy(ev->data, data, len);
    ev->data[len] = '\0';
    ev->data_len = len;
    ev->retry = -1;
    mp->mod = mod;
    mp->seq = mh->cur_seq;
    snprintf(mp->channel, sizeof(mp->channel), "%s", channel);
    TAILQ_INSERT_TAIL(&mh->pubs, mp, link);
    mod->inflight++;
    if (mp->seq)
        mh->reacting++;
    ch = broker_chan_lookup(mh->b, channel, true, &why, pub_found, mp);
    if (ch && TAILQ_EMPTY(&mod->waiting)) {
        if (pub_start(mp, ch) < 0) {
            pub_free(mp);
            return SSEBROKER_EFAIL;
        }
    } else if (ch) { /* behind one whose channel is being looked up */
        mp->ch = chan_ref(ch);
        TAILQ_INSERT_TAIL(&mod->waiting, mp, wait);
    } else if (why == BROKER_EPENDING) {
        TAILQ_INSERT_TAIL(&mod->waiting, mp, wait);
    } else {
        mod_error(mod, "a publish to '%s' failed: %s", channel, broker_strerror(why));
        pub_free(mp);
        return SSEBROKER_EFAIL;
    }
    return 0;
}

/* ---- delivery ---- */

static bool mod_matches(const module *mod, const char *name)
{
    for (size_t i = 0; i < mod->nmatch; i++) {
        const char *p = mod->match[i];
        if (channel_reserved(name) && strncmp(p, "sys.", 4) != 0)
            continue;
        if (pattern_match(p, name, NULL))
            return true;
    }
    return false;
}

/* A session opened or ended (a join or leave on SESSION_CHANNEL). */
static void sessions_tell(modhost *mh, const msg *m)
{
    bool start = m->event && strcmp(m->event, "joined") == 0;
    if (!m->event || (!start && strcmp(m->event, "left") != 0))
        return;
    for (size_t i = 0; i < mh->n; i++) {
        module *mod = mh->mods[i];
        void (*fn)(void *, const char *) =
            start ? mod->desc->on_session_start : mod->desc->on_session_stop;
        if (fn)
            fn(mod->state, m->data);
    }
}

/* Hand 'm' of 'ch' to every module that wants it. */
static void deliver(modhost *mh, chan *ch, const msg *m)
{
    const target_rec *pub = m->pub;
    const char *source = pub ? pub->source : NULL;
    ssebroker_event ev = {
        .channel = ch->name,
        .id = m->id,
        .seq = m->seq,
        .event = m->event,
        .data = m->data,
        .data_len = m->data_len,
        .timestamp_us = m->ts_us,
        .authid = pub ? pub->pub_authid : NULL,
        .authrole = pub ? pub->pub_authrole : NULL,
        .source = source,
    };

    if (strcmp(ch->name, SESSION_CHANNEL) == 0)
        sessions_tell(mh, m);
    for (size_t i = 0; i < mh->n; i++) {
        module *mod = mh->mods[i];
        if ((source && strcmp(source, mod->name) == 0) || !mod_matches(mod, ch->name))
            continue;
        mod->st.events++;
        mh->cur_depth = source ? (int)pub->depth : 0;
        mh->cur_seq = m->seq;
        int rc = mod->desc->on_event(mod->state, &ev);
        mh->cur_depth = -1;
        mh->cur_seq = 0;
        if (rc < 0)
            mod_error(mod, "error %d on event %s of '%s'", rc, m->id, ch->name);
    }
    if (m->seq > mh->done)
        mh->done = m->seq;
    save_soon(mh);
}

/* Whether the modules run here now: the lease is ours and not run out. */
static bool running_here(modhost *mh)
{
    if (mh->active && now_us() / 1000 >= mh->lease_until_ms) {
        /* Not renewed in time (the store is away): another node may take
         * over; if we keep it, we catch up from 'done' again. */
        log_warn("modules: the lease ran out before it was renewed: paused here");
        mh->active = false;
    }
    return mh->active;
}

static void on_message(void *arg, chan *ch, const msg *m)
{
    modhost *mh = arg;
    if (running_here(mh))
        deliver(mh, ch, m);
}

/* ---- once per event in a cluster ---- */

/* A retained event, for the catch-up. */
typedef struct held {
    chan *ch;
    msg *m;
} held;

static int held_cmp(const void *a, const void *b)
{
    uint64_t x = ((const held *)a)->m->seq, y = ((const held *)b)->m->seq;
    return x < y ? -1 : x > y;
}

static bool wanted(const modhost *mh, const char *name)
{
    if (mh->sessions && strcmp(name, SESSION_CHANNEL) == 0)
        return true;
    for (size_t i = 0; i < mh->n; i++)
        if (mod_matches(mh->mods[i], name))
            return true;
    return false;
}

/* The events after 'after' that the channels the modules match retain here
 * (every node mirrors each channel's history), into '*out' with a reference
 * each (not sorted) when 'out' is not NULL. Returns the newest id retained. */
static uint64_t retained(modhost *mh, uint64_t after, held **out, size_t *nout)
{
    chan *page[256];
    const char *last = NULL;
    char from[CHAN_NAME_MAX + 1];
    bool more = true;
    uint64_t newest = 0;
    size_t n = 0, cap = 0;
    held *v = NULL;

    while (more) {
        size_t k = broker_chan_page(mh->b, last, 256, page, &more);
        for (size_t i = 0; i < k; i++) {
            chan *ch = page[i];
            if (!wanted(mh, ch->name))
                continue;
            for (size_t j = 0; j < ch->history.len; j++) {
                msg *m = msgq_at(&ch->history, j);
                if (m->seq > newest)
                    newest = m->seq;
                if (!out || m->seq <= after)
                    continue;
                if (n == cap) {
                    held *nv = realloc(v, (cap = cap ? 2 * cap : 64) * sizeof(*v));
                    if (!nv) {
                        log_error("modules: out of memory catching up: events skipped");
                        goto done;
                    }
                    v = nv;
                }
                v[n++] = (held){chan_ref(ch), msg_ref(m)};
            }
        }
        if (!k)
            break;
        snprintf(from, sizeof(from), "%s", page[k - 1]->name);
        last = from;
    }
done:
    if (out) {
        *out = v;
        *nout = n;
    }
    return newest;
}

static void catch_up(modhost *mh, uint64_t after)
{
    held *v = NULL;
    size_t n = 0;
    retained(mh, after, &v, &n);
    if (n)
        qsort(v, n, sizeof(*v), held_cmp);
    mh->active = true;
    mh->done = after;
    log_info("modules: running on this node from event %llu (%zu retained after it)",
             (unsigned long long)after, n);
    for (size_t i = 0; i < n; i++) {
        if (!v[i].ch->deleted)
            deliver(mh, v[i].ch, v[i].m);
        msg_unref(v[i].m);
        chan_unref(v[i].ch);
    }
    free(v);
}

/* Where the last holder stopped: catch up from there. */
static void done_read(const kv_result *res, void *arg)
{
    modhost *mh = arg;
    unsigned long long d = mh->start_seq;
    char text[32];
    mh->reading = false;
    if (!mh->holder || mh->stopped)
        return;
    if (res->status < 0 && res->status != KV_ENOTFOUND) {
        log_warn("modules: cannot read where the last holder stopped: %s; again later",
                 kv_strerror(res->status));
        mh->holder = false; /* taken again at the next tick, read again */
        return;
    }
    if (res->status == 0 && res->len < sizeof(text)) {
        memcpy(text, res->val, res->len);
        text[res->len] = '\0';
        d = strtoull(text, NULL, 10);
    }
    mh->saved = d;
    catch_up(mh, d);
}

static void lease_lost(modhost *mh, const char *why)
{
    if (mh->holder)
        log_info("modules: %s: they run on another node", why);
    mh->holder = mh->active = false;
}

static void lease_written(const kv_result *res, void *arg)
{
    modhost *mh = arg;
    mh->lease_busy = false;
    if (mh->stopped)
        return;
    if (res->status < 0)
        return; /* the store is away: the lease runs out on its own */
    if (res->num != 1) {
        lease_lost(mh, "another node holds the lease");
        return;
    }
    mh->lease_until_ms = mh->asked_ms + MODHOST_LEASE_MS;
    if (!mh->holder) {
        mh->holder = true;
        mh->takeovers++;
        mh->reading = true;
        log_info("modules: this node holds the lease");
        if (kv_get(mh->kv, MODHOST_DONE_KEY, done_read, mh) < 0) {
            mh->reading = false;
            mh->holder = false;
        }
    } else if (!mh->active && !mh->reading) {
        catch_up(mh, mh->done); /* renewed after it ran out */
    }
}

static void lease_read(const kv_result *res, void *arg)
{
    modhost *mh = arg;
    char cur[sizeof(mh->lease_val)] = "", owner[sizeof(mh->lease_val)] = "";
    long long until = 0;
    int64_t now = now_us() / 1000;

    if (mh->stopped || (res->status < 0 && res->status != KV_ENOTFOUND) ||
        (res->status == 0 && res->len >= sizeof(cur))) {
        mh->lease_busy = false;
        return;
    }
    if (res->status == 0) {
        memcpy(cur, res->val, res->len);
        cur[res->len] = '\0';
        sscanf(cur, "%63s %lld", owner, &until);
    }
    if (cur[0] && strcmp(owner, broker_node_id(mh->b)) != 0 && until > now) {
        mh->lease_busy = false;
        lease_lost(mh, "another node holds the lease");
        return;
    }
    /* Ours to renew, or free (none, or run out): take it, if nobody else
     * wrote it meanwhile. */
    mh->asked_ms = now;
    snprintf(mh->lease_val, sizeof(mh->lease_val), "%s %lld", broker_node_id(mh->b),
             (long long)(now + MODHOST_LEASE_MS));
    if (kv_set_if(mh->kv, MODHOST_LEASE_KEY, cur, mh->lease_val, lease_written, mh) < 0)
        mh->lease_busy = false;
}

/* The last event done with: handed over, and every publish the modules
 * made in reaction to it and to the events before it answered. A publish
 * under way may yet fail (the node stopping): the next holder hands its
 * event over again. */
static uint64_t done_safe(const modhost *mh)
{
    uint64_t d = mh->done;
    const mod_pub *mp;
    if (!mh->reacting)
        return d;
    /* Bounded by MODHOST_MAX * MODHOST_INFLIGHT_MAX, at most once per
     * MODHOST_SAVE_MS. */
    TAILQ_FOREACH (mp, &mh->pubs, link) {
        if (mp->seq && mp->seq - 1 < d)
            d = mp->seq - 1;
    }
    return d;
}

static void save_done(modhost *mh)
{
    char text[32];
    uint64_t d = done_safe(mh);
    int n;
    if (!mh->holder || d <= mh->saved)
        return;
    n = snprintf(text, sizeof(text), "%llu", (unsigned long long)d);
    if (kv_set(mh->kv, MODHOST_DONE_KEY, text, (size_t)n, NULL, NULL) == 0)
        mh->saved = d;
}

static void save_cb(evutil_socket_t fd, short what, void *arg)
{
    save_done(arg);
}

static void save_soon(modhost *mh)
{
    struct timeval tv = {0, MODHOST_SAVE_MS * 1000};
    if (mh->save_ev && !evtimer_pending(mh->save_ev, NULL))
        evtimer_add(mh->save_ev, &tv);
}

static void lease_tick(evutil_socket_t fd, short what, void *arg)
{
    modhost *mh = arg;
    if (mh->lease_busy || mh->stopped)
        return;
    mh->lease_busy = true;
    if (kv_get(mh->kv, MODHOST_LEASE_KEY, lease_read, mh) < 0)
        mh->lease_busy = false;
}

/* ---- loading ---- */

modhost *modhost_new(struct event_base *base, broker *b, int max_depth)
{
    modhost *mh = calloc(1, sizeof(*mh));
    if (!mh)
        return NULL;
    mh->base = base;
    mh->b = b;
    mh->kv = broker_store(b);
    mh->max_depth = max_depth;
    mh->cur_depth = -1;
    TAILQ_INIT(&mh->pubs);
    return mh;
}

static void module_free(module *mod)
{
    ssebroker_timer *t;
    if (!mod)
        return;
    if (mod->state)
        mod->desc->free(mod->state);
    while ((t = LIST_FIRST(&mod->timers)))
        host_timer_cancel(&mod->host, t);
    if (mod->dl && MODHOST_DLCLOSE)
        dlclose(mod->dl);
    for (size_t i = 0; i < mod->nmatch; i++)
        free(mod->match[i]);
    free(mod->match);
    free(mod->name);
    free(mod);
}

static int load_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int load_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int modhost_load(modhost *mh, const module_spec *spec, const char **field, char *err,
                 size_t errlen)
{
    module *mod = NULL;
    char ierr[256] = "";
    const char *dlerr;

    *field = "name";
    if (mh->n >= MODHOST_MAX)
        return load_fail(err, errlen, "at most %d modules", MODHOST_MAX);
    for (size_t i = 0; i < mh->n; i++)
        if (strcmp(mh->mods[i]->name, spec->name) == 0)
            return load_fail(err, errlen, "'%s' is loaded already: names are unique",
                             spec->name);
    if (!(mod = calloc(1, sizeof(*mod))) || !(mod->name = strdup(spec->name)) ||
        !(mod->match = calloc(spec->nmatch ? spec->nmatch : 1, sizeof(char *))))
        goto oom;
    mod->mh = mh;
    LIST_INIT(&mod->timers);
    TAILQ_INIT(&mod->waiting);
    for (; mod->nmatch < spec->nmatch; mod->nmatch++)
        if (!(mod->match[mod->nmatch] = strdup(spec->match[mod->nmatch])))
            goto oom;
    *field = "path";
    if (!(mod->dl = dlopen(spec->path, RTLD_NOW | RTLD_LOCAL))) {
        dlerr = dlerror();
        load_fail(err, errlen, "cannot load '%s': %s", spec->path,
                  dlerr ? dlerr : "unknown error");
        goto fail;
    }
    dlerror();
    mod->desc = dlsym(mod->dl, SSEBROKER_MODULE_SYMBOL);
    if (!mod->desc) {
        dlerr = dlerror();
        load_fail(err, errlen, "'%s' is no ssebroker module: no symbol %s (%s)",
                  spec->path, SSEBROKER_MODULE_SYMBOL, dlerr ? dlerr : "NULL");
        goto fail;
    }
    if (mod->desc->abi != SSEBROKER_MODULE_ABI) {
        load_fail(err, errlen,
                  "'%s' is built for module ABI %d, this broker runs ABI %d: rebuild it "
                  "against this broker's ssebroker/module.h",
                  spec->path, mod->desc->abi, SSEBROKER_MODULE_ABI);
        goto fail;
    }
    if (!mod->desc->name || !mod->desc->init || !mod->desc->on_event ||
        !mod->desc->free) {
        load_fail(err, errlen, "'%s': its descriptor lacks name, init, on_event or free",
                  spec->path);
        goto fail;
    }
    mod->st.name = mod->name;
    mod->st.module = mod->desc->name;
    mod->host = (ssebroker_host){
        .name = mod->name,
        .event_base = mh->base,
        .publish = host_publish,
        .log = host_log,
        .error = host_error,
        .timer_add = host_timer_add,
        .timer_cancel = host_timer_cancel,
    };
    *field = "config";
    if (!(mod->state = mod->desc->init(spec->config ? spec->config : "{}", &mod->host,
                                       ierr, sizeof(ierr)))) {
        load_fail(err, errlen, "module '%s' (%s) refused its config: %s", spec->name,
                  mod->desc->name, ierr[0] ? ierr : "no reason given");
        goto fail;
    }
    mh->mods[mh->n++] = mod;
    log_info("module %s: loaded %s (%s), %zu pattern(s)", mod->name, mod->desc->name,
             spec->path, mod->nmatch);
    return 0;
oom:
    load_fail(err, errlen, "out of memory");
fail:
    module_free(mod);
    return -1;
}

static void sessions_opened(int status, chan *ch, void *arg)
{
    if (status < 0)
        log_warn("modules: cannot open %s: no session is told to modules: %s",
                 SESSION_CHANNEL, broker_strerror(status));
}

/* Joins and leaves are published while SESSION_CHANNEL exists: open it if a
 * module wants to be told of sessions. */
static void sessions_open(modhost *mh)
{
    int why = 0;
    for (size_t i = 0; i < mh->n; i++) {
        const ssebroker_module_desc *d = mh->mods[i]->desc;
        if (d->on_session_start || d->on_session_stop)
            mh->sessions = true;
    }
    if (mh->sessions &&
        !broker_chan_lookup(mh->b, SESSION_CHANNEL, true, &why, sessions_opened, NULL) &&
        why != BROKER_EPENDING)
        sessions_opened(why, NULL, NULL);
}

int modhost_start(modhost *mh)
{
    struct timeval tv = {MODHOST_LEASE_TICK_MS / 1000,
                         (MODHOST_LEASE_TICK_MS % 1000) * 1000};
    if (!mh->n)
        return 0;
    sessions_open(mh); /* first: the sessions' events count in start_seq */
    mh->start_seq = retained(mh, 0, NULL, NULL);
    if (!(mh->lease_ev = event_new(mh->base, -1, EV_PERSIST, lease_tick, mh)) ||
        !(mh->save_ev = evtimer_new(mh->base, save_cb, mh)) ||
        event_add(mh->lease_ev, &tv) < 0)
        return -1;
    broker_set_observer(mh->b, on_message, mh);
    lease_tick(-1, 0, mh); /* at once: a lone node runs its modules from the start */
    return 0;
}

/* Record what is done and give the lease up, so that another node takes
 * over at its next tick and hands over the rest. */
static void give_up(modhost *mh)
{
    save_done(mh);
    if (mh->holder)
        kv_del_if(mh->kv, MODHOST_LEASE_KEY, mh->lease_val, strlen(mh->lease_val), NULL,
                  NULL);
    mh->holder = false;
}

/* The publishes modhost_stop waited for are answered, or it waited
 * MODHOST_STOP_MS: give up, tell the caller (once). */
static void stop_finish(evutil_socket_t fd, short what, void *arg)
{
    modhost *mh = arg;
    modhost_stopped_cb cb = mh->stopped_cb;
    if (!cb)
        return;
    mh->stopped_cb = NULL;
    evtimer_del(mh->stop_ev);
    if (mh->reacting)
        log_warn("modules: stopping with %zu publish(es) still under way: the next "
                 "node hands their events over again",
                 mh->reacting);
    give_up(mh);
    cb(mh->stopped_arg);
}

/* The last publish waited for is answered: finish on a stack of its own (the
 * caller's callback may drain the broker, which called us). */
static void stop_soon(modhost *mh)
{
    event_active(mh->stop_ev, EV_TIMEOUT, 0);
}

int modhost_stop(modhost *mh, modhost_stopped_cb cb, void *arg)
{
    struct timeval tv = {MODHOST_STOP_MS / 1000, (MODHOST_STOP_MS % 1000) * 1000};
    if (!mh || mh->stopped)
        return 0;
    mh->stopped = true; /* no more events, no more lease ticks */
    mh->active = false;
    if (mh->holder && mh->reacting &&
        (mh->stop_ev = evtimer_new(mh->base, stop_finish, mh)) &&
        evtimer_add(mh->stop_ev, &tv) == 0) {
        log_info("modules: stopping: waiting for %zu publish(es) under way",
                 mh->reacting);
        mh->stopped_cb = cb;
        mh->stopped_arg = arg;
        save_done(mh); /* what is done already, should the wait be cut short */
        return 1;
    }
    give_up(mh);
    return 0;
}

void modhost_free(modhost *mh)
{
    mod_pub *mp;
    if (!mh)
        return;
    broker_set_observer(mh->b, NULL, NULL);
    mh->stopped_cb = NULL; /* the loop is over: nobody waits */
    mh->holder = false;    /* and nothing more is saved */
    /* Publishes waiting behind a lookup with their channel found are
     * dropped; those whose lookup is under way finish without their module
     * (below). */
    for (size_t i = 0; i < mh->n; i++) {
        mod_pub *next;
        for (mp = TAILQ_FIRST(&mh->mods[i]->waiting); mp; mp = next) {
            next = TAILQ_NEXT(mp, wait);
            if (mp->ch) {
                TAILQ_REMOVE(&mh->mods[i]->waiting, mp, wait);
                chan_unref(mp->ch);
                pub_free(mp);
            }
        }
    }
    if (mh->lease_ev)
        event_free(mh->lease_ev);
    if (mh->save_ev)
        event_free(mh->save_ev);
    if (mh->stop_ev)
        event_free(mh->stop_ev);
    /* Publishes still under way finish without their module. */
    while ((mp = TAILQ_FIRST(&mh->pubs))) {
        TAILQ_REMOVE(&mh->pubs, mp, link);
        mp->mod = NULL;
    }
    for (size_t i = mh->n; i-- > 0;)
        module_free(mh->mods[i]);
    free(mh);
}

/* ---- counters ---- */

size_t modhost_count(const modhost *mh)
{
    return mh ? mh->n : 0;
}

void modhost_stats_get(const modhost *mh, size_t i, modhost_stats *st)
{
    *st = mh->mods[i]->st;
}

json_t *modhost_status(const modhost *mh)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < modhost_count(mh); i++) {
        const modhost_stats *st = &mh->mods[i]->st;
        if (json_array_append_new(
                a, json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I}", "name", st->name,
                             "module", st->module, "active", mh->active, "events",
                             (json_int_t)st->events, "errors", (json_int_t)st->errors,
                             "published", (json_int_t)st->published, "cut",
                             (json_int_t)st->cut, "dropped", (json_int_t)st->dropped)) <
            0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}
