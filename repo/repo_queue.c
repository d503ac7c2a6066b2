/* repo_queue.c - connection queues as cursors into logs, plus the helpers every
 * kv repository shares (log loading, load joins, cursors).
 *
 * A connection's queue holds no messages of its own: it is a cursor into its
 * channel's log (k/), a log of the messages published to it alone (o/) with a
 * cursor of its own (j/), and the count its bound dropped (d/). What waits for
 * it is what lies after each cursor. */
#include <stdlib.h>
#include <string.h>

#include "repo/repo_private.h"
#include "src/base/util.h"

typedef struct repo_queue_kv {
    repo_queue base;
    kv_store *kv;
} repo_queue_kv;

/* ---- shared helpers ---- */

typedef struct log_load {
    kv_store *kv;
    msgq *q;
    repo_cb cb;
    void *arg;
} log_load;

static void log_loaded(const kv_result *res, void *arg)
{
    log_load *ll = arg;
    for (size_t i = 0; res->status == KV_OK && i < res->n; i++) {
        msg *m = msg_from_json(res->items[i].val, res->items[i].vlen);
        if (!m) {
            kv_report(ll->kv, KV_EV_BAD_RECORD,
                      "repo: skipping a stored message that does not parse");
            continue;
        }
        m->pos = (uint64_t)res->items[i].pos; /* the log's word is final */
        msgq_push(ll->q, m);
        msg_unref(m);
    }
    ll->cb(res->status, ll->arg);
    free(ll);
}

int repo_load_log(kv_store *kv, const char *key, uint64_t after, size_t count, int newest,
                  msgq *q, repo_cb cb, void *arg)
{
    log_load *ll = malloc(sizeof(*ll));
    if (!ll)
        return KV_ENOMEM;
    *ll = (log_load){kv, q, cb, arg};
    int rc = kv_log_range(kv, key, (long long)after, count, newest, log_loaded, ll);
    if (rc < 0)
        free(ll);
    return rc;
}

typedef struct value_load {
    conn *cn;
    repo_parse_fn parse;
    repo_cb cb;
    void *arg;
} value_load;

static void value_loaded(const kv_result *res, void *arg)
{
    value_load vl = *(value_load *)arg;
    free(arg);
    if (res->status == KV_OK)
        vl.parse(vl.cn, res->val, res->len);
    vl.cb(res->status == KV_ENOTFOUND ? KV_OK : res->status, vl.arg);
}

int repo_load_value(kv_store *kv, const char *key, conn *cn, repo_parse_fn parse,
                    repo_cb cb, void *arg)
{
    value_load *vl = malloc(sizeof(*vl));
    if (!vl)
        return KV_ENOMEM;
    *vl = (value_load){cn, parse, cb, arg};
    int rc = kv_get(kv, key, value_loaded, vl);
    if (rc < 0)
        free(vl);
    return rc;
}

repo_join *repo_join_new(repo_cb cb, void *arg)
{
    repo_join *j = malloc(sizeof(*j));
    if (j)
        *j = (repo_join){1, 0, cb, arg};
    return j;
}

void repo_join_done(int status, void *arg)
{
    repo_join *j = arg;
    if (status < 0 && j->status == 0)
        j->status = status;
    if (--j->pending == 0) {
        j->cb(j->status, j->arg);
        free(j);
    }
}

int repo_cursor_parse(const char *val, size_t len, cursor *c)
{
    char text[48], *sp;
    *c = (cursor){0, 0};
    if (!val || len >= sizeof(text))
        return -1;
    memcpy(text, val, len);
    text[len] = '\0';
    if (!(sp = strchr(text, ' ')))
        return -1;
    *sp = '\0';
    if (parse_u64(text, &c->id) < 0 || parse_u64(sp + 1, &c->pos) < 0) {
        *c = (cursor){0, 0};
        return -1;
    }
    return 0;
}

int repo_cursor_text(const cursor *c, char buf[48])
{
    char *p = fmt_u64(buf, c->id);
    *p++ = ' ';
    p = fmt_u64(p, c->pos);
    *p = '\0';
    return (int)(p - buf);
}

/* ---- the queue repository ---- */

static int queue_kv_init(repo_queue *r, const conn *cn, kv_cb cb, void *arg)
{
    repo_queue_kv *q = (repo_queue_kv *)r;
    char log[REPO_KEY_MAX], key[REPO_KEY_MAX];
    return kv_log_mark(q->kv, repo_key(log, "g", cn->ch->name, NULL),
                       repo_key(key, "k", cn->ch->name, cn->id), cb, arg);
}

/* One read of a backlog: six reads joined. */
typedef struct backlog_read {
    repo_queue_kv *q;
    char chan_name[CHAN_NAME_MAX + 1];
    char conn_id[CONN_ID_LEN + 1];
    size_t limit;
    repo_backlog bl;
    repo_backlog_cb cb;
    void *arg;
    repo_join *join;
    int stage; /* 0: cursors and ends; 1: the entries after the cursors */
} backlog_read;

static void backlog_free(backlog_read *br)
{
    msgq_free(&br->bl.chan_msgs);
    msgq_free(&br->bl.own_msgs);
    free(br);
}

static void got_cursor(const kv_result *res, cursor *c, repo_join *j)
{
    if (res->status == KV_OK)
        repo_cursor_parse(res->val, res->len, c);
    repo_join_done(res->status == KV_ENOTFOUND ? KV_OK : res->status, j);
}

static void got_at(const kv_result *res, void *arg)
{
    backlog_read *br = arg;
    got_cursor(res, &br->bl.at, br->join);
}

static void got_own(const kv_result *res, void *arg)
{
    backlog_read *br = arg;
    got_cursor(res, &br->bl.own, br->join);
}

static void got_end(const kv_result *res, void *arg)
{
    backlog_read *br = arg;
    br->bl.end = (cursor){(uint64_t)res->id, (uint64_t)res->num};
    repo_join_done(res->status, br->join);
}

static void got_own_end(const kv_result *res, void *arg)
{
    backlog_read *br = arg;
    br->bl.own_end = (cursor){(uint64_t)res->id, (uint64_t)res->num};
    repo_join_done(res->status, br->join);
}

static void got_dropped(const kv_result *res, void *arg)
{
    backlog_read *br = arg;
    char num[24];
    if (res->status == KV_OK && res->len < sizeof(num)) {
        memcpy(num, res->val, res->len);
        num[res->len] = '\0';
        parse_u64(num, &br->bl.dropped);
    }
    repo_join_done(res->status == KV_ENOTFOUND ? KV_OK : res->status, br->join);
}

static void backlog_stage(int status, void *arg);

/* Issue one stage's reads under a new join; 'n' is how many it issued. */
static int backlog_issue(backlog_read *br)
{
    kv_store *kv = br->q->kv;
    char key[REPO_KEY_MAX];
    const char *ch = br->chan_name, *id = br->conn_id;
    int rc = 0;

    if (!(br->join = repo_join_new(backlog_stage, br)))
        return KV_ENOMEM;
#define ISSUE(call)                                                                      \
    do {                                                                                 \
        if (rc == 0 && (rc = (call)) == 0)                                               \
            br->join->pending++;                                                         \
    } while (0)
    if (br->stage == 0) {
        /* The ends first: an entry appended after them is still read below,
         * and the caller takes the further of the end and the last entry. */
        ISSUE(kv_log_end(kv, repo_key(key, "g", ch, NULL), got_end, br));
        ISSUE(kv_log_end(kv, repo_key(key, "o", ch, id), got_own_end, br));
        ISSUE(kv_get(kv, repo_key(key, "k", ch, id), got_at, br));
        ISSUE(kv_get(kv, repo_key(key, "j", ch, id), got_own, br));
        ISSUE(kv_get(kv, repo_key(key, "d", ch, id), got_dropped, br));
    } else {
        ISSUE(repo_load_log(kv, repo_key(key, "g", ch, NULL), br->bl.at.id, br->limit, 1,
                            &br->bl.chan_msgs, repo_join_done, br->join));
        ISSUE(repo_load_log(kv, repo_key(key, "o", ch, id), br->bl.own.id, br->limit, 1,
                            &br->bl.own_msgs, repo_join_done, br->join));
    }
#undef ISSUE
    if (rc < 0)
        br->join->status = rc;
    repo_join_done(0, br->join); /* the issuer's share */
    return 0;
}

static void backlog_stage(int status, void *arg)
{
    backlog_read *br = arg;
    if (status == 0 && br->stage == 0 && br->limit > 0) {
        br->stage = 1;
        if ((status = backlog_issue(br)) == 0)
            return;
    }
    br->cb(status, &br->bl, br->arg);
    backlog_free(br);
}

static int queue_kv_read(repo_queue *r, const conn *cn, size_t limit, repo_backlog_cb cb,
                         void *arg)
{
    backlog_read *br = calloc(1, sizeof(*br));
    int rc;
    if (!br)
        return KV_ENOMEM;
    br->q = (repo_queue_kv *)r;
    snprintf(br->chan_name, sizeof(br->chan_name), "%s", cn->ch->name);
    snprintf(br->conn_id, sizeof(br->conn_id), "%s", cn->id);
    br->limit = limit;
    br->cb = cb;
    br->arg = arg;
    msgq_init(&br->bl.chan_msgs, limit);
    msgq_init(&br->bl.own_msgs, limit);
    if ((rc = backlog_issue(br)) < 0)
        backlog_free(br);
    return rc;
}

static void queue_kv_save(repo_queue *r, const conn *cn, const cursor *at,
                          const cursor *own, uint64_t dropped_add)
{
    repo_queue_kv *q = (repo_queue_kv *)r;
    char key[REPO_KEY_MAX], text[48];
    int n = repo_cursor_text(at, text);
    kv_set(q->kv, repo_key(key, "k", cn->ch->name, cn->id), text, (size_t)n, NULL, NULL);
    if (own->pos) {
        n = repo_cursor_text(own, text);
        kv_set(q->kv, repo_key(key, "j", cn->ch->name, cn->id), text, (size_t)n, NULL,
               NULL);
    }
    if (dropped_add)
        kv_incr(q->kv, repo_key(key, "d", cn->ch->name, cn->id), (long long)dropped_add,
                NULL, NULL);
}

static void queue_kv_remove(repo_queue *r, const chan *ch, const char *conn_id)
{
    repo_queue_kv *q = (repo_queue_kv *)r;
    char key[REPO_KEY_MAX];
    static const char *const tables[] = {"k", "j", "o", "d"};
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
        kv_del(q->kv, repo_key(key, tables[i], ch->name, conn_id), NULL, NULL);
}

static void queue_kv_free(repo_queue *r)
{
    free(r);
}

static const repo_queue_ops repo_queue_kv_ops = {
    .init = queue_kv_init,
    .read = queue_kv_read,
    .save = queue_kv_save,
    .remove = queue_kv_remove,
    .free = queue_kv_free,
};

repo_queue *repo_queue_kv_new(kv_store *kv)
{
    repo_queue_kv *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->base.ops = &repo_queue_kv_ops;
    q->kv = kv;
    return &q->base;
}
