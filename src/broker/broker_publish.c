/* broker_publish.c - publishes in flight: each message appended to the store,
 * which numbers it; the publisher answered once every message is stored and,
 * with opts.sync, delivered here (a client reads its own writes); and the
 * graceful drain at shutdown. */
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "src/base/util.h"
#include "src/broker/broker_private.h"

#define PUB_WAIT_US 1000000 /* longest wait for our own notification */
#define TICK_US 250000      /* how often publishes waiting that long are looked at */

/* One publish in flight: its messages are appended one by one (the store
 * gives each its id). */
struct pub_ctx {
    broker *b;
    chan *ch; /* holds a reference */
    conn *target;
    pub_batch batch;
    uint64_t *ids;
    size_t nids, pending;
    int64_t ts;
    int64_t waiting_since; /* in b->waiting since (us), else 0 */
    int status;
    broker_pub_cb cb;
    void *arg;
    TAILQ_ENTRY(pub_ctx) link; /* in b->waiting */
    TAILQ_ENTRY(pub_ctx) all;  /* in b->inflight */
};

static void drain_check(broker *b);

int broker_pub_result(int status)
{
    switch (status) {
    case 0:
        return BROKER_PUB_OK;
    case BROKER_EINVAL:
        return BROKER_PUB_INVALID;
    case BROKER_ENOCHAN:
    case BROKER_ENOCONN:
        return BROKER_PUB_NOT_FOUND;
    case BROKER_ELIMIT:
        return BROKER_PUB_LIMIT;
    case BROKER_EFULL:
        return BROKER_PUB_MEMORY_FULL;
    case BROKER_ECLOSING:
        return BROKER_PUB_SHUTDOWN;
    case KV_EFULL:
        return BROKER_PUB_STORE_FULL;
    case KV_EIO:
    case KV_ETYPE:
    case KV_EINVAL:
    case KV_ENOTFOUND:
        return BROKER_PUB_STORE_ERROR;
    default:
        return BROKER_PUB_ERROR;
    }
}

void broker_publish_refused(broker *b, int result)
{
    if (result >= 0 && result < BROKER_PUB_N)
        b->m.publishes[result]++;
}

static void pub_free(pub_ctx *pc)
{
    TAILQ_REMOVE(&pc->b->inflight, pc, all);
    free(pc->ids);
    pub_batch_free(&pc->batch);
    chan_unref(pc->ch);
    free(pc);
}

static void pub_finish(pub_ctx *pc)
{
    broker *b = pc->b;
    if (pc->waiting_since)
        TAILQ_REMOVE(&b->waiting, pc, link);
    if (pc->status == 0 && pc->ch->deleted)
        pc->status = BROKER_ENOCHAN;
    if (!channel_reserved(pc->ch->name)) { /* the broker's own are not counted */
        b->m.publishes[broker_pub_result(pc->status)]++;
        if (pc->status == 0)
            b->m.messages_published += pc->nids;
    }
    pc->cb(pc->status, pc->ids, pc->nids, pc->ts, pc->arg);
    pub_free(pc);
    b->publishing--;
    drain_check(b);
}

static void pub_flushed(const kv_result *res, void *arg)
{
    pub_ctx *pc = arg;
    if (res->status < 0 && pc->status == 0)
        pc->status = res->status;
    pub_finish(pc);
}

/* Stored (and delivered here, or waited for long enough): with opts.sync,
 * wait for what delivering wrote (queue counts) too, then answer. */
static void pub_settle(pub_ctx *pc)
{
    if (pc->waiting_since) {
        TAILQ_REMOVE(&pc->b->waiting, pc, link);
        pc->waiting_since = 0;
    }
    if (pc->status == 0 && pc->b->opts.sync) {
        broker_cursors_save(pc->b);
        if (kv_flush(pc->b->kv, pub_flushed, pc) == 0)
            return;
    }
    pub_finish(pc);
}

/* Answer the publishes this node has now delivered (or waited long enough
 * for: the subscription may be down, the catch-up will deliver). */
void broker_pubs_release(broker *b, bool all)
{
    pub_ctx *pc, *next;
    int64_t now = now_us();
    /* What delivering moved goes to the store before anyone is answered, so
     * that the publisher reads its own writes (queue counts included). */
    if (TAILQ_FIRST(&b->waiting))
        broker_cursors_save(b);
    for (pc = TAILQ_FIRST(&b->waiting); pc; pc = next) {
        next = TAILQ_NEXT(pc, link);
        if (all || pc->ids[pc->nids - 1] <= b->seen_seq ||
            now - pc->waiting_since > PUB_WAIT_US)
            pub_settle(pc);
    }
}

/* Shutting down and nothing in flight: one last flush, then report. */
static void drained(const kv_result *res, void *arg)
{
    broker *b = arg;
    broker_done_cb cb = b->drained_cb;
    b->drained_cb = NULL;
    cb(res->status, b->drained_arg);
}

static void drain_check(broker *b)
{
    if (!b->closing || b->publishing || !b->drained_cb)
        return;
    if (kv_flush(b->kv, drained, b) < 0) {
        kv_result res = {.status = KV_EIO};
        drained(&res, b);
    }
}

void broker_drain(broker *b, broker_done_cb cb, void *arg)
{
    b->closing = true;
    b->drained_cb = cb;
    b->drained_arg = arg;
    broker_close_streams(b);
    broker_pubs_release(b, true);
    drain_check(b);
}

/* One append (or the hold the issuer keeps) is over: answer after the last. */
static void pub_step(pub_ctx *pc)
{
    broker *b = pc->b;
    if (--pc->pending)
        return;
    if (pc->status == 0 && !channel_reserved(pc->ch->name)) /* every message stored */
        prom_hist_observe(&b->m.publish_seconds, (double)(now_us() - pc->ts) / 1e6);
    /* opts.sync: also wait until this node delivered them (read your writes). */
    if (pc->status < 0 || !pc->nids || pc->ids[pc->nids - 1] <= b->seen_seq ||
        !kv_subscribed(b->kv) || !b->opts.sync) {
        pub_settle(pc);
        return;
    }
    pc->waiting_since = now_us();
    TAILQ_INSERT_TAIL(&b->waiting, pc, link);
}

static void pub_appended(const kv_result *res, void *arg)
{
    pub_ctx *pc = arg;
    broker *b = pc->b;
    if (res->status < 0 && pc->status == 0)
        pc->status = res->status;
    if (res->status == 0) {
        pc->ids[pc->nids++] = (uint64_t)res->num;
        if ((uint64_t)res->num > b->max_seq)
            b->max_seq = (uint64_t)res->num;
    }
    pub_step(pc);
}

/* Whether the batch fits under max_memory. What a message will take is
 * estimated from its size: here, its data and its SSE frame; in a store in
 * this process, its JSON text. Under policy evict, room is made by evicting,
 * unless the batch alone is more than the bound. */
static bool memory_room(broker *b, const pub_batch *batch)
{
    size_t need = 0;
    for (size_t i = 0; i < batch->n; i++) {
        const pub_event *ev = &batch->ev[i];
        need += 3 * (ev->data_len + (ev->event ? strlen(ev->event) : 0)) + 600 +
                (ev->tg ? 3 * ev->tg->size : 0);
    }
    if (need <= b->opts.max_memory &&
        (b->opts.memory_policy == BROKER_MEM_EVICT ||
         broker_memory_used(b) + need <= b->opts.max_memory))
        return true;
    b->rejected++;
    return false;
}

int broker_publish(broker *b, chan *ch, const char *conn_id, pub_batch *batch,
                   broker_pub_cb cb, void *arg)
{
    pub_ctx *pc;
    conn *target = NULL;
    int rc = 0;

    if (b->closing)
        rc = BROKER_ECLOSING;
    else if (!batch->n)
        rc = BROKER_EINVAL;
    else if (!memory_room(b, batch))
        rc = BROKER_EFULL;
    else if (conn_id && !(target = chan_conn(ch, conn_id)))
        rc = BROKER_ENOCONN;
    else if (!(pc = calloc(1, sizeof(*pc))) ||
             !(pc->ids = calloc(batch->n, sizeof(uint64_t)))) {
        free(pc);
        rc = BROKER_ENOMEM;
    }
    if (rc < 0) {
        pub_batch_free(batch);
        if (!channel_reserved(ch->name))
            b->m.publishes[broker_pub_result(rc)]++;
        return rc;
    }
    pc->b = b;
    TAILQ_INSERT_TAIL(&b->inflight, pc, all);
    pc->ch = chan_ref(ch);
    pc->target = target;
    pc->batch = *batch;
    memset(batch, 0, sizeof(*batch));
    pc->cb = cb;
    pc->arg = arg;
    pc->ts = now_us();
    pc->pending = 1; /* held while issuing */
    for (size_t i = 0; i < pc->batch.n; i++) {
        pub_event *ev = &pc->batch.ev[i];
        size_t len;
        char *tail = msg_json_tail_src(ev->event, ev->data, ev->data_len, pc->ts,
                                       ev->has_src_ts ? ev->src_ts : MSG_NO_SOURCE_TS,
                                       ev->is_json, ev->retry, ev->tg, &len);
        rc = tail ? repo_channel_publish(b->repo, ch, target, tail, len, b->max_seq,
                                         pub_appended, pc)
                  : BROKER_ENOMEM;
        free(tail);
        if (rc < 0)
            break;
        pc->pending++;
    }
    if (pc->pending == 1 && rc < 0) {
        /* Refused before anything was issued: no callback, the caller answers. */
        pub_free(pc);
        rc = rc == KV_ENOMEM ? BROKER_ENOMEM : rc;
        if (!channel_reserved(ch->name))
            b->m.publishes[broker_pub_result(rc)]++;
        return rc;
    }
    /* Some were issued: they call back later, and the answer carries the
     * failure of the ones that were not. */
    if (rc < 0)
        pc->status = rc == KV_ENOMEM ? BROKER_ENOMEM : rc;
    b->publishing++;
    pub_step(pc); /* drops the hold: the last append's callback finishes it */
    return 0;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    broker *b = arg;
    broker_pubs_release(b, false);
    broker_cursors_save(b); /* cursors whose output was still being written */
}

int broker_publish_init(broker *b)
{
    struct timeval tick = {0, TICK_US};
    if (!(b->tick = event_new(b->base, -1, EV_PERSIST, tick_cb, b)))
        return -1;
    return event_add(b->tick, &tick);
}

void broker_publish_free(broker *b)
{
    pub_ctx *pc;
    b->closing = true; /* a publisher's callback below cannot publish again */
    broker_pubs_release(b, true);
    /* Still in flight: the store never answered, and was not abandoned
     * (main.c's kv_abandon answers what Redis owes first; here, the memory
     * store's answers queued when the loop ended). Each publisher hears
     * "shutting down" now, so that what it holds for the answer is freed;
     * the store, freed after the broker, runs no callback then (kv_free). */
    while ((pc = TAILQ_FIRST(&b->inflight))) {
        if (pc->waiting_since)
            TAILQ_REMOVE(&b->waiting, pc, link);
        pc->cb(BROKER_ECLOSING, NULL, 0, pc->ts, pc->arg);
        pub_free(pc);
        b->publishing--;
    }
    if (b->tick)
        event_free(b->tick);
    b->tick = NULL;
}
