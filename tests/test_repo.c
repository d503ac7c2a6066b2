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
    ok(repo_channel_load_all(r, defaults, found, done, l) == 0, "load_all starts");
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

typedef struct pubs {
    int n, failed;
    long long id[16];
} pubs;

static void published(const kv_result *res, void *arg)
{
    pubs *p = arg;
    if (res->status < 0)
        p->failed++;
    else if (p->n < 16)
        p->id[p->n++] = res->num;
}

/* Publish through the repository, as the broker does: to the channel (its
 * history and every connection's queue) or to one connection. */
static void publish(repo_channel *r, const chan *ch, const conn *target,
                    const char *event, const char *data, pubs *p)
{
    size_t len;
    char *tail = msg_json_tail(event, data, strlen(data), 1700000000000000LL, -1, &len);
    ok(tail && repo_channel_publish(r, ch, target, tail, len, 0, published, p) == 0,
       "publish '%s' to %s starts", data, target ? "a connection" : "the channel");
    free(tail);
}

static void repo_suite(kv_store *kv)
{
    repo_channel *r = repo_kv_stack_new(kv);
    repo_connection *rc = r ? repo_channel_connections(r) : NULL;
    repo_queue *rq = rc ? repo_connection_queues(rc) : NULL;
    repo_listener *rl = rc ? repo_connection_listeners(rc) : NULL;
    chan_opts defaults = {100, 1000, 3000}, small = {2, 3, 500};
    pubs p = {0};
    loaded l;

    ok(kv && r && rc && rq && rl, "the kv repository stack builds");
    if (!r)
        return;

    /* An empty store loads nothing. */
    load(r, &l, &defaults);
    ok(l.n == 0, "an empty store has no channels");

    /* Build state through the repositories. */
    chan *news = chan_new("news", &small), *ops = chan_new("ops:eu-1", &defaults);
    repo_channel_persist(r, news);
    repo_channel_persist(r, ops);
    conn *c1 = conn_new(news, NULL), *c2 = conn_new(news, NULL);
    repo_connection_persist(rc, c1);
    c2->lis.running = false;
    repo_connection_persist(rc, c2);
    publish(r, news, NULL, NULL, "hello", &p);
    publish(r, news, NULL, "alert", "hello", &p);
    publish(r, news, NULL, NULL, "multi\nline", &p);
    for (int i = 0; i < 5; i++) /* 5 more into c2's queue, bounded at 3 */
        publish(r, news, c2, NULL, "queued", &p);
    c2->queue.dropped = 5; /* as the broker counts it */
    repo_queue_dropped(rq, c2);
    wait_flush(kv);
    ok(p.n == 8 && !p.failed, "every publish is stored (%d, %d failed)", p.n, p.failed);
    ok(p.n == 8 && p.id[0] == 1 && p.id[7] == 8,
       "the store numbers them 1 to 8, in issue order");

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
            ok(l1->queue.len == 3 && msgq_at(&l1->queue, 0)->seq == 1,
               "a channel publish is queued for every connection");
            ok(l2->queue.len == 3 && msgq_at(&l2->queue, 0)->seq == 6 &&
                   msgq_at(&l2->queue, 2)->seq == 8,
               "queued messages come back, the oldest dropped by the bound");
            ok(l2->queue.dropped == 5, "the dropped count comes back (%llu)",
               (unsigned long long)l2->queue.dropped);
        }
    }
    for (size_t i = 0; i < l.n; i++)
        chan_unref(l.v[i]);

    /* Draining and stopping go through the repositories too. */
    repo_queue_pop(rq, c2, 2);
    c1->lis.running = false;
    repo_listener_persist(rl, c1);
    /* Shrinking history rewrites the stored list (from the domain's own). */
    chan_opts one = small;
    one.history = 1;
    const char *text = "{\"id\":\"3\",\"event\":null,\"data\":\"x\",\"timestamp\":1}";
    msg *m3 = msg_from_json(text, strlen(text));
    ok(m3 != NULL, "a message to keep");
    if (m3)
        msgq_push(&news->history, m3);
    msg_unref(m3);
    chan_set_opts(news, &one);
    repo_channel_persist(r, news);
    repo_channel_history_trim(r, news);
    wait_flush(kv);
    load(r, &l, &defaults);
    n2 = by_name(&l, "news");
    ok(n2 && n2->history.len == 1 && msgq_at(&n2->history, 0)->seq == 3,
       "a trimmed history stays trimmed");
    ok(n2 && chan_conn(n2, c2->id) && chan_conn(n2, c2->id)->queue.len == 1 &&
           msgq_at(&chan_conn(n2, c2->id)->queue, 0)->seq == 8,
       "a drained queue stays drained");
    ok(n2 && chan_conn(n2, c1->id) && !chan_conn(n2, c1->id)->lis.running,
       "a stopped listener stays stopped");
    for (size_t i = 0; i < l.n; i++)
        chan_unref(l.v[i]);

    /* Removing a connection, then a channel, removes what they own. */
    repo_connection_remove(rc, c1);
    conn_free(c1);
    repo_channel_remove(r, ops);
    wait_flush(kv);
    load(r, &l, &defaults);
    n2 = by_name(&l, "news");
    ok(l.n == 1 && n2 && n2->nconns == 1, "removed channel and connection stay removed");
    for (size_t i = 0; i < l.n; i++)
        chan_unref(l.v[i]);
    repo_channel_remove(r, news);
    wait_flush(kv);
    load(r, &l, &defaults);
    ok(l.n == 0, "removing the last channel empties the store");

    /* Ids keep increasing after everything is gone. */
    chan *again = chan_new("news", &small);
    p.n = 0;
    publish(r, again, NULL, NULL, "again", &p);
    wait_flush(kv);
    ok(p.n == 1 && p.id[0] == 9, "ids never go back (%lld)", p.n ? p.id[0] : 0);
    repo_channel_remove(r, again);
    wait_flush(kv);

    chan_unref(again);
    chan_unref(news);
    chan_unref(ops);
    repo_channel_free(r);
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
