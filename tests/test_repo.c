/* test_repo.c - the repositories persist domain objects to a kv store and
 * rebuild the same objects from it. Runs against the in-memory store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "kv/kv.h"
#include "repo/repo.h"
#include "src/domain/policy.h"
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
    long long id[16], pos[16];
} pubs;

static void published(const kv_result *res, void *arg)
{
    pubs *p = arg;
    if (res->status < 0)
        p->failed++;
    else if (p->n < 16)
        p->id[p->n] = res->id, p->pos[p->n++] = res->pos;
}

/* Publish through the repository, as the broker does: to the channel's log
 * or to one connection's own. */
static void publish(repo_channel *r, const chan *ch, const conn *target,
                    const char *event, const char *data, pubs *p)
{
    size_t len;
    char *tail = msg_json_tail(event, data, strlen(data), 1700000000000000LL, -1, &len);
    ok(tail && repo_channel_publish(r, ch, target, tail, len, 0, published, p) == 0,
       "publish '%s' to %s starts", data, target ? "a connection" : "the channel");
    free(tail);
}

typedef struct read_result {
    int done, status;
    repo_backlog bl; /* cursors and counts copied; the messages' ids */
    uint64_t ids[8], pos[8], oids[8], opos[8];
    size_t n, on;
} read_result;

static void backlog_got(int status, repo_backlog *bl, void *arg)
{
    read_result *rr = arg;
    rr->done = 1;
    rr->status = status;
    rr->bl.at = bl->at, rr->bl.own = bl->own, rr->bl.end = bl->end;
    rr->bl.own_end = bl->own_end, rr->bl.dropped = bl->dropped;
    for (size_t i = 0; i < bl->chan_msgs.len && i < 8; i++, rr->n++)
        rr->ids[i] = msgq_at(&bl->chan_msgs, i)->seq,
        rr->pos[i] = msgq_at(&bl->chan_msgs, i)->pos;
    for (size_t i = 0; i < bl->own_msgs.len && i < 8; i++, rr->on++)
        rr->oids[i] = msgq_at(&bl->own_msgs, i)->seq,
        rr->opos[i] = msgq_at(&bl->own_msgs, i)->pos;
}

static void read_backlog(repo_queue *rq, const conn *cn, size_t limit, read_result *rr)
{
    memset(rr, 0, sizeof(*rr));
    ok(repo_queue_read(rq, cn, limit, backlog_got, rr) == 0, "read the queue of %s",
       cn->id);
    for (int i = 0; !rr->done && i < 1000; i++)
        event_base_loop(base, EVLOOP_ONCE);
}

typedef struct state_result {
    int done, status;
    repo_conn_state st;
} state_result;

static void state_got(int status, const repo_conn_state *st, void *arg)
{
    state_result *sr = arg;
    sr->done = 1;
    sr->status = status;
    sr->st = *st;
}

static void read_state(repo_connection *rc, const conn *cn, state_result *sr)
{
    memset(sr, 0, sizeof(*sr));
    ok(repo_connection_state(rc, cn, state_got, sr) == 0, "read the state of %s", cn->id);
    for (int i = 0; !sr->done && i < 1000; i++)
        event_base_loop(base, EVLOOP_ONCE);
}

static void done_kv(const kv_result *res, void *arg)
{
    int *d = arg;
    *d = res->status == 0 ? 1 : -1;
}

static void wait_done(int *d)
{
    for (int i = 0; !*d && i < 1000; i++)
        event_base_loop(base, EVLOOP_ONCE);
}

typedef struct finding {
    int done, status;
    chan *found;
} finding;

static void find_found(chan *ch, void *arg)
{
    ((finding *)arg)->found = ch;
}

static void find_done(int status, void *arg)
{
    finding *f = arg;
    f->done = 1;
    f->status = status;
}

static void conn_found(int status, void *arg)
{
    finding *f = arg;
    f->done = 1;
    f->status = status;
}

static void repo_suite(kv_store *kv)
{
    repo_channel *r = repo_kv_stack_new(kv);
    repo_connection *rc = r ? repo_channel_connections(r) : NULL;
    repo_queue *rq = rc ? repo_connection_queues(rc) : NULL;
    repo_listener *rl = rc ? repo_connection_listeners(rc) : NULL;
    chan_opts defaults = {100, 1000, 3000, 0, 0}, small = {2, 3, 500, 0, 0};
    pubs p = {0};
    read_result rr;
    state_result sr;
    finding f;
    loaded l;
    int d;

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
    d = 0;
    ok(repo_queue_init(rq, c1, done_kv, &d) == 0, "place c1's cursor");
    wait_done(&d);
    ok(d == 1, "c1's cursor is placed");
    d = 0;
    repo_queue_init(rq, c2, done_kv, &d);
    wait_done(&d);
    publish(r, news, NULL, NULL, "hello", &p);
    publish(r, news, NULL, "alert", "hello", &p);
    publish(r, news, NULL, NULL, "multi\nline", &p);
    for (int i = 0; i < 5; i++) /* 5 for c2 alone: its log keeps at least 3 */
        publish(r, news, c2, NULL, "queued", &p);
    wait_flush(kv);
    ok(p.n == 8 && !p.failed, "every publish is stored (%d, %d failed)", p.n, p.failed);
    ok(p.n == 8 && p.id[0] == 1 && p.id[7] == 8 && p.pos[2] == 3 && p.pos[3] == 1 &&
           p.pos[7] == 5,
       "ids 1 to 8 in issue order; positions count in each log");

    load(r, &l, &defaults);
    ok(l.n == 2, "both channels come back (%zu)", l.n);
    chan *n2 = by_name(&l, "news"), *o2 = by_name(&l, "ops:eu-1");
    ok(n2 && o2, "by name");
    if (n2 && o2) {
        ok(n2->opts.history == 2 && n2->opts.queue_limit == 3 && n2->opts.retry_ms == 500,
           "options come back");
        ok(o2->opts.history == 100, "default options come back");
        ok(n2->history.len == 2, "the history mirror holds the newest 2 (%zu)",
           n2->history.len);
        ok(n2->history.len == 2 && msgq_at(&n2->history, 0)->seq == 2 &&
               msgq_at(&n2->history, 0)->pos == 2 &&
               strcmp(msgq_at(&n2->history, 0)->event, "alert") == 0 &&
               strcmp(msgq_at(&n2->history, 1)->data, "multi\nline") == 0,
           "history messages come back intact, in order, with their positions");
        ok(n2->last_seq == 3, "last id comes back (%llu)",
           (unsigned long long)n2->last_seq);
        ok(n2->nconns == 2 && o2->nconns == 0, "connections come back to their channel");
        conn *l1 = chan_conn(n2, c1->id), *l2 = chan_conn(n2, c2->id);
        ok(l1 && l2, "connections keep their ids");
        if (l1 && l2) {
            ok(l1->lis.running && !l2->lis.running, "listener state comes back");
            ok(l1->lis.stream == NULL && l2->lis.stream == NULL,
               "listeners come back detached");
        }
    }
    for (size_t i = 0; i < l.n; i++)
        chan_unref(l.v[i]);

    /* What waits: a cursor in the channel's log, and c2's own log. */
    read_backlog(rq, c1, 3, &rr);
    ok(rr.status == 0 && rr.bl.at.pos == 0 && rr.bl.end.pos == 3 && rr.bl.end.id == 3 &&
           rr.n == 3 && rr.ids[0] == 1 && rr.pos[2] == 3 && rr.on == 0,
       "c1, created before them, has the channel's 3 messages waiting");
    read_backlog(rq, c2, 3, &rr);
    ok(rr.status == 0 && rr.n == 3 && rr.bl.own_end.pos == 5 && rr.on == 3 &&
           rr.oids[0] == 6 && rr.opos[0] == 3 && rr.oids[2] == 8,
       "c2 has them too, and the newest 3 of its own 5");
    c2->at = (cursor){3, 3};
    c2->own = (cursor){8, 5};
    repo_queue_save(rq, c2, &c2->at, &c2->own, 5);
    read_backlog(rq, c2, 3, &rr);
    ok(rr.status == 0 && rr.n == 0 && rr.on == 0 && rr.bl.at.pos == 3 &&
           rr.bl.own.pos == 5 && rr.bl.own.id == 8 && rr.bl.dropped == 5,
       "saved cursors and dropped count come back; nothing waits after them");
    read_backlog(rq, c1, 0, &rr);
    ok(rr.status == 0 && rr.n == 0 && rr.bl.end.pos == 3 && rr.bl.at.pos == 0,
       "a read of counts only");

    /* A connection created after a publish does not see it. */
    conn *c3 = conn_new(news, NULL);
    repo_connection_persist(rc, c3);
    d = 0;
    repo_queue_init(rq, c3, done_kv, &d);
    wait_done(&d);
    read_backlog(rq, c3, 10, &rr);
    ok(rr.status == 0 && rr.n == 0 && rr.bl.at.pos == 3 && rr.bl.at.id == 3,
       "a new connection's cursor is at the log's end");
    publish(r, news, NULL, NULL, "after", &p);
    wait_flush(kv);
    read_backlog(rq, c3, 10, &rr);
    ok(rr.status == 0 && rr.n == 1 && rr.ids[0] == 9 && rr.pos[0] == 4,
       "... and it gets what is published after");

    /* Where a stream is attached. */
    read_state(rc, c2, &sr);
    ok(sr.status == 0 && !sr.st.running && sr.st.node[0] == '\0' &&
           sr.st.bl.dropped == 5 && sr.st.bl.end.pos == 4,
       "state: stopped, detached, its counts");
    repo_connection_attach(rc, c2, "nodeA");
    repo_connection_detach(rc, c2, "nodeB");
    read_state(rc, c2, &sr);
    ok(strcmp(sr.st.node, "nodeA") == 0, "attached on nodeA; another node's detach "
                                         "leaves it");
    repo_connection_detach(rc, c2, "nodeA");
    read_state(rc, c2, &sr);
    ok(sr.st.node[0] == '\0', "its own detach clears it");

    /* Finding what another node created. */
    memset(&f, 0, sizeof(f));
    ok(repo_channel_find(r, "news", &defaults, find_found, find_done, &f) == 0,
       "find a channel");
    for (int i = 0; !f.done && i < 1000; i++)
        event_base_loop(base, EVLOOP_ONCE);
    ok(f.status == 0 && f.found && f.found->opts.history == 2 && f.found->nconns == 3 &&
           f.found->last_seq == 9,
       "it comes with its options, connections and last id");
    if (f.found) {
        chan *fresh = chan_new("news", &small);
        finding g = {0};
        ok(repo_connection_find(rc, fresh, c2->id, conn_found, &g) == 0,
           "find a connection");
        for (int i = 0; !g.done && i < 1000; i++)
            event_base_loop(base, EVLOOP_ONCE);
        ok(g.status == 0 && chan_conn(fresh, c2->id) &&
               !chan_conn(fresh, c2->id)->lis.running,
           "it is added to the channel with its listener state");
        memset(&g, 0, sizeof(g));
        repo_connection_find(rc, fresh, "0123456789abcdef", conn_found, &g);
        for (int i = 0; !g.done && i < 1000; i++)
            event_base_loop(base, EVLOOP_ONCE);
        ok(g.status == KV_ENOTFOUND && fresh->nconns == 1, "an unknown one is not found");
        chan_unref(fresh);
        chan_unref(f.found);
    }
    memset(&f, 0, sizeof(f));
    repo_channel_find(r, "nope", &defaults, find_found, find_done, &f);
    for (int i = 0; !f.done && i < 1000; i++)
        event_base_loop(base, EVLOOP_ONCE);
    ok(f.status == KV_ENOTFOUND && !f.found, "a missing channel is not found");

    /* Stopping goes through the repositories too. */
    c1->lis.running = false;
    repo_listener_persist(rl, c1);
    /* Shrinking both bounds trims the stored log. */
    chan_opts one = {1, 1, 500, 0, 0};
    chan_set_opts(news, &one);
    repo_channel_persist(r, news);
    repo_channel_trim(r, news, chan_log_bound(news));
    wait_flush(kv);
    load(r, &l, &defaults);
    n2 = by_name(&l, "news");
    ok(n2 && n2->history.len == 1 && msgq_at(&n2->history, 0)->seq == 9,
       "a trimmed log keeps its newest");
    ok(n2 && chan_conn(n2, c1->id) && !chan_conn(n2, c1->id)->lis.running,
       "a stopped listener stays stopped");
    for (size_t i = 0; i < l.n; i++)
        chan_unref(l.v[i]);

    /* Removing a connection, then a channel, removes what they own. */
    repo_connection_remove(rc, news, c1->id);
    conn_free(c1);
    repo_channel_remove(r, ops);
    wait_flush(kv);
    load(r, &l, &defaults);
    n2 = by_name(&l, "news");
    ok(l.n == 1 && n2 && n2->nconns == 2, "removed channel and connection stay removed");
    for (size_t i = 0; i < l.n; i++)
        chan_unref(l.v[i]);
    repo_channel_remove(r, news);
    wait_flush(kv);
    load(r, &l, &defaults);
    ok(l.n == 0, "removing the last channel empties the store");
    chan *fresh = chan_new("news", &small);
    finding g = {0};
    repo_connection_find(rc, fresh, c2->id, conn_found, &g);
    for (int i = 0; !g.done && i < 1000; i++)
        event_base_loop(base, EVLOOP_ONCE);
    ok(g.status == KV_ENOTFOUND, "its connections went with it");
    read_backlog(rq, c2, 3, &rr);
    ok(rr.status == 0 && rr.bl.end.pos == 0 && rr.bl.at.pos == 0 && rr.bl.dropped == 0 &&
           rr.on == 0,
       "their cursors, own logs and counts too");
    chan_unref(fresh);

    /* Ids keep increasing after everything is gone. */
    chan *again = chan_new("news", &small);
    p.n = 0;
    publish(r, again, NULL, NULL, "again", &p);
    wait_flush(kv);
    ok(p.n == 1 && p.id[0] == 10 && p.pos[0] == 1,
       "ids never go back (%lld); the new log starts at 1", p.n ? p.id[0] : 0);
    repo_channel_remove(r, again);
    wait_flush(kv);

    chan_unref(again);
    chan_unref(news);
    chan_unref(ops);
    repo_channel_free(r);
}

/* ---- sessions ---- */

typedef struct sess_page {
    int done, status;
    size_t n;
    bool more;
    char ids[8][CONN_ID_LEN + 1];
    int64_t left[8];
    char authid[8][16];
} sess_page;

static void sess_listed(int status, const session *v, size_t n, bool more, void *arg)
{
    sess_page *pg = arg;
    pg->done = 1;
    pg->status = status;
    pg->n = n;
    pg->more = more;
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(pg->ids[i], sizeof(pg->ids[i]), "%s", v[i].id);
        pg->left[i] = v[i].left_at;
        snprintf(pg->authid[i], sizeof(pg->authid[i]), "%s",
                 v[i].authid ? v[i].authid : "-");
    }
}

static void sess_list(repo_session *rs, int active, const char *channel,
                      const char *authid, const char *after, size_t limit, sess_page *pg)
{
    session_filter f = {active, channel, authid};
    memset(pg, 0, sizeof(*pg));
    ok(repo_session_list(rs, &f, after, limit, sess_listed, pg) == 0, "list sessions");
    for (int i = 0; !pg->done && i < 1000; i++)
        event_base_loop(base, EVLOOP_ONCE);
}

typedef struct sess_one {
    int done, status;
    session s;
} sess_one;

static void sess_got(int status, const session *s, void *arg)
{
    sess_one *o = arg;
    o->done = 1;
    o->status = status;
    if (s) {
        o->s = *s;
        o->s.authid = s->authid ? strdup(s->authid) : NULL;
        o->s.authrole = s->authrole ? strdup(s->authrole) : NULL;
        o->s.channel = s->channel ? strdup(s->channel) : NULL;
        o->s.agent = s->agent ? strdup(s->agent) : NULL;
    }
}

static void sess_get(repo_session *rs, const char *id, sess_one *o)
{
    memset(o, 0, sizeof(*o));
    ok(repo_session_get(rs, id, sess_got, o) == 0, "get session %s", id);
    for (int i = 0; !o->done && i < 1000; i++)
        event_base_loop(base, EVLOOP_ONCE);
}

typedef struct sess_swept {
    int done, status;
    size_t dropped, ended;
} sess_swept;

static void sess_swept_cb(int status, size_t dropped, size_t ended, void *arg)
{
    sess_swept *sw = arg;
    *sw = (sess_swept){1, status, dropped, ended};
}

static void sess_sweep(kv_store *kv, repo_session *rs, const repo_session_bound *bd,
                       sess_swept *sw)
{
    memset(sw, 0, sizeof(*sw));
    ok(repo_session_sweep(rs, bd, sess_swept_cb, sw) == 0, "sweep");
    for (int i = 0; !sw->done && i < 1000; i++)
        event_base_loop(base, EVLOOP_ONCE);
    wait_flush(kv); /* what the sweep wrote or deleted, done */
}

static void session_suite(kv_store *kv)
{
    repo_session *rs = repo_session_kv_new(kv);
    sess_page pg;
    sess_one one;
    sess_swept sw;
    /* Six sessions: ids a1..a6 in order, on two channels and two nodes. */
    static const char *ids[] = {"a100000000000001", "a100000000000002",
                                "a100000000000003", "a100000000000004",
                                "a100000000000005", "a100000000000006"};
    for (int i = 0; i < 6; i++) {
        session s = {
            .authid = i % 2 ? (char *)"alice" : NULL,
            .authrole = i % 2 ? (char *)"user" : NULL,
            .method = i % 2 ? AUTHMETHOD_JWT : AUTHMETHOD_ANONYMOUS,
            .channel = i < 4 ? (char *)"news" : (char *)"sport",
            .agent = (char *)"agent/1",
            .joined_at = 1000000 + i,
            .left_at = i < 3 ? 2000000 + i : 0, /* a1..a3 ended, in order */
        };
        snprintf(s.id, sizeof(s.id), "%s", ids[i]);
        snprintf(s.node, sizeof(s.node), "%s",
                 i < 5 ? "0000000000000001" : "0000000000000002");
        snprintf(s.remote, sizeof(s.remote), "127.0.0.1:%d", 4000 + i);
        repo_session_save(rs, &s);
    }
    kv_set(kv, "ss/zz", "not json", 8, NULL, NULL); /* skipped, reported */
    wait_flush(kv);

    sess_list(rs, -1, NULL, NULL, NULL, 100, &pg);
    ok(pg.status == 0 && pg.n == 6 && !pg.more,
       "all six listed (%zu), the bad record skipped", pg.n);
    ok(pg.n == 6 && strcmp(pg.ids[0], ids[0]) == 0 && strcmp(pg.ids[5], ids[5]) == 0,
       "sorted by id");
    sess_list(rs, -1, NULL, NULL, NULL, 4, &pg);
    ok(pg.n == 4 && pg.more && strcmp(pg.ids[3], ids[3]) == 0,
       "a page of 4, more follow");
    sess_list(rs, -1, NULL, NULL, ids[3], 4, &pg);
    ok(pg.n == 2 && !pg.more && strcmp(pg.ids[0], ids[4]) == 0,
       "the next page: the last two");
    sess_list(rs, 1, NULL, NULL, NULL, 100, &pg);
    ok(pg.n == 3 && pg.left[0] == 0 && strcmp(pg.ids[0], ids[3]) == 0, "active only");
    sess_list(rs, 0, "news", NULL, NULL, 100, &pg);
    ok(pg.n == 3 && pg.left[2] == 2000002, "ended on news");
    sess_list(rs, -1, "sport", "alice", NULL, 100, &pg);
    ok(pg.n == 1 && strcmp(pg.ids[0], ids[5]) == 0 && strcmp(pg.authid[0], "alice") == 0,
       "channel and authid together");
    sess_list(rs, -1, NULL, NULL, ids[1], 1, &pg);
    ok(pg.n == 1 && pg.more && strcmp(pg.ids[0], ids[2]) == 0, "after an id, limit 1");

    sess_get(rs, ids[1], &one);
    ok(one.status == 0 && one.s.authid && strcmp(one.s.authid, "alice") == 0 &&
           one.s.method == AUTHMETHOD_JWT && strcmp(one.s.channel, "news") == 0 &&
           strcmp(one.s.remote, "127.0.0.1:4001") == 0 && one.s.agent &&
           strcmp(one.s.agent, "agent/1") == 0 && one.s.joined_at == 1000001 &&
           one.s.left_at == 2000001 && strcmp(one.s.node, "0000000000000001") == 0,
       "one session, every field back");
    session_clear(&one.s);
    sess_get(rs, ids[4], &one);
    ok(one.status == 0 && !one.s.authid && !one.s.authrole && !one.s.conn[0] &&
           one.s.method == AUTHMETHOD_ANONYMOUS && one.s.left_at == 0 &&
           strcmp(one.s.channel, "sport") == 0,
       "an anonymous active session: its unset members back as unset");
    session_clear(&one.s);
    sess_get(rs, "0123456789abcdef", &one);
    ok(one.status == KV_ENOTFOUND, "a missing one: KV_ENOTFOUND");

    /* Retention: ended before now - retention go (a1, a2), the rest stays. */
    repo_session_bound bd = {.now_us = 2000002 + 10, .retention_us = 10, .max = 100};
    kv_set(kv, "st/zz", "x", 1, NULL, NULL);
    sess_sweep(kv, rs, &bd, &sw);
    ok(sw.status == 0 && sw.dropped == 3 && sw.ended == 0,
       "retention: two ended and the bad times dropped (%zu)", sw.dropped);
    sess_list(rs, -1, NULL, NULL, NULL, 100, &pg);
    ok(pg.n == 4 && strcmp(pg.ids[0], ids[2]) == 0, "a3..a6 left");
    kv_del(kv, "ss/zz", NULL, NULL);

    /* Max 2 with three active: the one ended goes, the active stay. */
    bd = (repo_session_bound){.now_us = 2000002, .retention_us = 1000000000, .max = 2};
    sess_sweep(kv, rs, &bd, &sw);
    sess_list(rs, -1, NULL, NULL, NULL, 100, &pg);
    ok(sw.dropped == 1 && pg.n == 3 && pg.left[0] == 0 && pg.left[2] == 0,
       "over max: the ended one goes, the three active stay");

    /* Node 2 is gone: its active session (a6) is ended; node 1's are not. */
    const char *live[] = {"0000000000000001"};
    bd = (repo_session_bound){.now_us = 3000000,
                              .retention_us = 1000000000,
                              .max = 100,
                              .live = live,
                              .nlive = 1,
                              .grace_us = 10};
    sess_sweep(kv, rs, &bd, &sw);
    ok(sw.ended == 1, "one session of a gone node ended");
    wait_flush(kv);
    sess_get(rs, ids[5], &one);
    ok(one.status == 0 && one.s.left_at == 3000000, "ended as of the sweep (%lld)",
       (long long)one.s.left_at);
    session_clear(&one.s);
    sess_get(rs, ids[3], &one);
    ok(one.status == 0 && one.s.left_at == 0, "a live node's session stays active");
    session_clear(&one.s);
    bd.grace_us = 10000000; /* joined too recently to judge */
    bd.live = NULL;
    sess_sweep(kv, rs, &bd, &sw);
    ok(sw.ended == 0, "without a registry no node is judged");

    for (int i = 0; i < 6; i++) {
        char key[64];
        snprintf(key, sizeof(key), "ss/%s", ids[i]);
        kv_del(kv, key, NULL, NULL);
        snprintf(key, sizeof(key), "st/%s", ids[i]);
        kv_del(kv, key, NULL, NULL);
    }
    wait_flush(kv);
    repo_session_free(rs);
}

/* The archive's record, written by hand, is session_to_json() without its
 * null members (and without authmethod "anonymous" and an empty remote),
 * escapes included, and reads back whole. */
static void record_suite(void)
{
    session s = {
        .authid = (char *)"a\"b\\c",
        .authrole = NULL,
        .method = AUTHMETHOD_APIKEY,
        .channel = (char *)"caf\xc3\xa9/\x01\t\n",
        .agent = (char *)"Mozilla/5.0 (\"x\")",
        .joined_at = 1764633600123456,
    };
    snprintf(s.id, sizeof(s.id), "0123456789abcdef");
    snprintf(s.node, sizeof(s.node), "fedcba9876543210");
    snprintf(s.remote, sizeof(s.remote), "[::1]:8080");
    for (int round = 0; round < 3; round++) {
        if (round == 1) { /* anonymous, ended, with a connection, no remote */
            s.authid = NULL;
            s.method = AUTHMETHOD_ANONYMOUS;
            s.left_at = s.joined_at + 1;
            s.remote[0] = '\0';
            snprintf(s.conn, sizeof(s.conn), "00000000000000aa");
        } else if (round == 2) { /* a User-Agent that is no UTF-8: left out */
            s.agent = (char *)"bad \xff agent";
        }
        json_t *full = session_to_json(&s);
        char *rec = session_to_record(&s);
        json_t *got = rec ? json_loads(rec, 0, NULL) : NULL;
        const char *key;
        json_t *v, *tmp;
        json_object_foreach_safe(full, tmp, key, v)
        {
            if (json_is_null(v) || (strcmp(key, "authmethod") == 0 && round) ||
                (strcmp(key, "remote") == 0 && round))
                json_object_del(full, key);
        }
        ok(got && json_equal(got, full), "record %d: session_to_json without nulls (%s)",
           round, rec ? rec : "NULL");
        ok(rec && !strstr(rec, "null"), "record %d: no null member", round);
        session back = {0};
        ok(rec && session_from_text(&back, rec, strlen(rec)) == 0 &&
               back.method == s.method && back.left_at == s.left_at &&
               strcmp(back.channel, s.channel) == 0 && !back.authrole &&
               strcmp(back.remote, s.remote) == 0 && strcmp(back.conn, s.conn) == 0 &&
               (round == 2 ? !back.agent : strcmp(back.agent, s.agent) == 0),
           "record %d reads back", round);
        session_clear(&back);
        json_decref(full);
        json_decref(got);
        free(rec);
    }
    s.channel = (char *)"not \xfe utf-8";
    char *bad = session_to_record(&s);
    ok(!bad, "a channel that is no UTF-8: no record, as json_string() refuses it");
    free(bad);
}

int main(void)
{
    redis_server rs;
    char err[256];
    kv_store *kv;

    base = event_base_new();
    record_suite();
    diag("repositories on the memory store");
    kv = kv_memory_new(base);
    repo_suite(kv);
    session_suite(kv);
    kv_free(kv);

    ok(redis_server_start(&rs) == 0, "a private redis-server starts");
    kv_redis_opts ro = {
        .url = rs.url, .prefix = "t:", .maxbuffer = 100, .buffertime_ms = 5};
    if ((kv = kv_redis_new(base, &ro, err, sizeof(err)))) {
        diag("repositories on the redis store");
        repo_suite(kv);
        session_suite(kv);
        kv_free(kv);
    } else {
        ok(0, "kv_redis_new: %s", err);
    }
    redis_server_stop(&rs);
    event_base_free(base);
    return done_testing();
}
