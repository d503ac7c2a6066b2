/* test_repo.c - the repositories persist domain objects to a kv store and
 * rebuild the same objects from it. Runs against the in-memory store. */
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "kv/kv.h"
#include "repo/repo.h"
#include "tests/tap.h"
#include "tests/redis_server.h"

static struct event_base *base;

typedef struct loaded {
    chan *v[16];
    size_t n;
    int done, status;
} loaded;

static void found(chan *ch, void *arg)
{
    loaded *l = arg;
    if (l->n < 16)
        l->v[l->n++] = ch;
    else
        chan_unref(ch);
}

static void done(int status, void *arg)
{
    loaded *l = arg;
    l->done = 1;
    l->status = status;
}

static void flushed(const kv_result *res, void *arg)
{
    *(int *)arg = 1;
}

static void wait_flush(kv_store *kv)
{
    int f = 0;
    kv_flush(kv, flushed, &f);
    for (int i = 0; !f && i < 1000; i++)
        event_base_loop(base, EVLOOP_ONCE);
}

static void load(repo_channel *r, loaded *l, const chan_opts *defaults)
{
    memset(l, 0, sizeof(*l));
    ok(r->ops->load_all(r, defaults, found, done, l) == 0, "load_all starts");
    ok(!l->done, "load_all does not call back before it returns");
    for (int i = 0; !l->done && i < 1000; i++)
        event_base_loop(base, EVLOOP_ONCE);
    ok(l->done && l->status == 0, "load_all completes");
}

static chan *by_name(loaded *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i]->name, name) == 0)
            return l->v[i];
    return NULL;
}

static msg *mk(uint64_t seq, const char *event, const char *data)
{
    return msg_new(seq, event, data, strlen(data), 1700000000000000LL + (int64_t)seq, -1);
}

typedef struct seqs {
    int n;
    unsigned long long last[4];
} seqs;

static void seq_cb(int status, unsigned long long last, void *arg)
{
    seqs *s = arg;
    s->last[s->n++] = status == 0 ? last : 0;
}

static void repo_suite(kv_store *kv)
{
    repo_channel *r = repo_kv_stack_new(kv);
    repo_connection *rc = r->ops->connections(r);
    repo_queue *rq = rc->ops->queues(rc);
    repo_listener *rl = rc->ops->listeners(rc);
    chan_opts defaults = {100, 1000, 3000}, small = {2, 3, 500};
    loaded l;

    ok(kv && r && rc && rq && rl, "the kv repository stack builds");

    /* An empty store loads nothing. */
    load(r, &l, &defaults);
    ok(l.n == 0, "an empty store has no channels");

    /* Build state through the repositories. */
    chan *news = chan_new("news", &small), *ops = chan_new("ops:eu-1", &defaults);
    r->ops->persist(r, news);
    r->ops->persist(r, ops);
    for (uint64_t s = 1; s <= 3; s++) {
        msg *m = mk(s, s == 2 ? "alert" : NULL, s == 3 ? "multi\nline" : "hello");
        msgq_push(&news->history, m);
        news->last_seq = s;
        r->ops->history_push(r, news, m);
        msg_unref(m);
    }
    conn *c1 = conn_new(news, NULL), *c2 = conn_new(news, NULL);
    rc->ops->persist(rc, c1);
    c2->lis.running = false;
    rc->ops->persist(rc, c2);
    for (uint64_t s = 10; s < 15; s++) { /* 5 into a queue bounded at 3 */
        msg *m = mk(s, NULL, "queued");
        msgq_push(&c2->queue, m);
        rq->ops->push(rq, c2, m);
        msg_unref(m);
    }
    ok(c2->queue.len == 3 && c2->queue.dropped == 2, "the domain queue drops the oldest");
    wait_flush(kv);

    load(r, &l, &defaults);
    ok(l.n == 2, "both channels come back (%zu)", l.n);
    chan *n2 = by_name(&l, "news"), *o2 = by_name(&l, "ops:eu-1");
    ok(n2 && o2, "by name");
    if (n2 && o2) {
        ok(n2->opts.history == 2 && n2->opts.queue_limit == 3 && n2->opts.retry_ms == 500,
           "options come back");
        ok(o2->opts.history == 100, "default options come back");
        ok(n2->history.len == 2, "history keeps its bound of 2 (%zu)", n2->history.len);
        ok(n2->history.len == 2 && msgq_at(&n2->history, 0)->seq == 2 &&
               strcmp(msgq_at(&n2->history, 0)->event, "alert") == 0 &&
               strcmp(msgq_at(&n2->history, 1)->data, "multi\nline") == 0,
           "history messages come back intact and in order");
        ok(n2->last_seq == 3, "last id comes back");
        ok(n2->nconns == 2 && o2->nconns == 0, "connections come back to their channel");
        conn *l1 = chan_conn(n2, c1->id), *l2 = chan_conn(n2, c2->id);
        ok(l1 && l2, "connections keep their ids");
        if (l1 && l2) {
            ok(l1->lis.running && !l2->lis.running, "listener state comes back");
            ok(l1->lis.stream == NULL && l2->lis.stream == NULL,
               "listeners come back detached");
            ok(l2->queue.len == 3 && msgq_at(&l2->queue, 0)->seq == 12,
               "queued messages come back, oldest dropped");
            ok(l2->queue.dropped == 2, "the dropped count comes back (%llu)",
               (unsigned long long)l2->queue.dropped);
            ok(l1->queue.len == 0, "an empty queue stays empty");
        }
    }
    for (size_t i = 0; i < l.n; i++)
        chan_unref(l.v[i]);

    /* Draining and stopping go through the repositories too. */
    rq->ops->pop(rq, c2, 2);
    c1->lis.running = false;
    rl->ops->persist(rl, c1);
    /* Shrinking history rewrites the stored list. */
    chan_opts one = small;
    one.history = 1;
    chan_set_opts(news, &one);
    r->ops->persist(r, news);
    r->ops->history_trim(r, news);
    wait_flush(kv);
    load(r, &l, &defaults);
    n2 = by_name(&l, "news");
    ok(n2 && n2->history.len == 1 && msgq_at(&n2->history, 0)->seq == 3,
       "a trimmed history stays trimmed");
    ok(n2 && chan_conn(n2, c2->id) && chan_conn(n2, c2->id)->queue.len == 1,
       "a drained queue stays drained");
    ok(n2 && chan_conn(n2, c1->id) && !chan_conn(n2, c1->id)->lis.running,
       "a stopped listener stays stopped");
    for (size_t i = 0; i < l.n; i++)
        chan_unref(l.v[i]);

    /* Removing a connection, then a channel, removes what they own. */
    rc->ops->remove(rc, c1);
    conn_free(c1);
    r->ops->remove(r, ops);
    wait_flush(kv);
    load(r, &l, &defaults);
    n2 = by_name(&l, "news");
    ok(l.n == 1 && n2 && n2->nconns == 1, "removed channel and connection stay removed");
    for (size_t i = 0; i < l.n; i++)
        chan_unref(l.v[i]);
    r->ops->remove(r, news);
    wait_flush(kv);
    load(r, &l, &defaults);
    ok(l.n == 0, "removing the last channel empties the store");

    /* Ids come from the store, in order, without gaps or repeats. */
    seqs s = {0};
    repo_seq_alloc(kv, 1, seq_cb, &s);
    repo_seq_alloc(kv, 3, seq_cb, &s);
    repo_seq_alloc(kv, 1, seq_cb, &s);
    for (int i = 0; s.n < 3 && i < 1000; i++)
        event_base_loop(base, EVLOOP_ONCE);
    ok(s.n == 3 && s.last[0] == 1 && s.last[1] == 4 && s.last[2] == 5,
       "id allocation is ordered and contiguous (%llu %llu %llu)", s.last[0], s.last[1],
       s.last[2]);

    chan_unref(news);
    chan_unref(ops);
    r->ops->free(r);
}

int main(void)
{
    redis_server rs;
    char err[256];
    kv_store *kv;

    base = event_base_new();
    diag("repositories on the memory store");
    kv = kv_memory_new(base);
    repo_suite(kv);
    kv_free(kv);

    ok(redis_server_start(&rs) == 0, "a private redis-server starts");
    kv_redis_opts ro = {
        .url = rs.url, .prefix = "t:", .maxbuffer = 100, .buffertime_ms = 5};
    if ((kv = kv_redis_new(base, &ro, err, sizeof(err)))) {
        diag("repositories on the redis store");
        repo_suite(kv);
        kv_free(kv);
    } else {
        ok(0, "kv_redis_new: %s", err);
    }
    redis_server_stop(&rs);
    event_base_free(base);
    return done_testing();
}
