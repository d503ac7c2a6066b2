/* repo_queue.c - connection queues as kv lists, plus the helpers every kv
 * repository shares (list loading, load joins). */
#include <stdlib.h>
#include <string.h>

#include "repo/repo_private.h"
#include "src/base/util.h"

typedef struct repo_queue_kv {
    repo_queue base;
    kv_store *kv;
} repo_queue_kv;

typedef struct list_load {
    kv_store *kv;
    msgq *q;
    repo_cb cb;
    void *arg;
} list_load;

static void list_loaded(const kv_result *res, void *arg)
{
    list_load *ll = arg;
    for (size_t i = 0; res->status == KV_OK && i < res->n; i++) {
        msg *m = msg_from_json(res->items[i].val, res->items[i].vlen);
        if (!m) {
            kv_report(ll->kv, KV_EV_BAD_RECORD,
                      "repo: skipping a stored message that does not parse");
            continue;
        }
        msgq_push(ll->q, m);
        msg_unref(m);
    }
    ll->cb(res->status, ll->arg);
    free(ll);
}

int repo_load_list(kv_store *kv, const char *key, msgq *q, repo_cb cb, void *arg)
{
    list_load *ll = malloc(sizeof(*ll));
    if (!ll)
        return KV_ENOMEM;
    *ll = (list_load){kv, q, cb, arg};
    int rc = kv_list_range(kv, key, 0, (size_t)-1, list_loaded, ll);
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

static void queue_kv_dropped(repo_queue *r, const conn *cn)
{
    repo_queue_kv *q = (repo_queue_kv *)r;
    char key[REPO_KEY_MAX], num[24];
    int n = snprintf(num, sizeof(num), "%llu", (unsigned long long)cn->queue.dropped);
    kv_set(q->kv, repo_key(key, "d", cn->ch->name, cn->id), num, (size_t)n, NULL, NULL);
}

static void queue_kv_pop(repo_queue *r, const conn *cn, size_t n)
{
    repo_queue_kv *q = (repo_queue_kv *)r;
    char key[REPO_KEY_MAX];
    kv_list_trim(q->kv, repo_key(key, "q", cn->ch->name, cn->id), n, NULL, NULL);
}

static void queue_kv_remove(repo_queue *r, const conn *cn)
{
    repo_queue_kv *q = (repo_queue_kv *)r;
    char key[REPO_KEY_MAX];
    kv_del(q->kv, repo_key(key, "q", cn->ch->name, cn->id), NULL, NULL);
    kv_del(q->kv, repo_key(key, "d", cn->ch->name, cn->id), NULL, NULL);
}

static void queue_kv_dropped_parse(conn *cn, const char *val, size_t len)
{
    char num[24];
    uint64_t v;
    if (len < sizeof(num)) {
        memcpy(num, val, len);
        num[len] = '\0';
        if (parse_u64(num, &v) == 0)
            cn->queue.dropped = v;
    }
}

static int queue_kv_load_into(repo_queue *r, const conn *cn, msgq *mq, repo_cb cb,
                              void *arg)
{
    char key[REPO_KEY_MAX];
    return repo_load_list(((repo_queue_kv *)r)->kv,
                          repo_key(key, "q", cn->ch->name, cn->id), mq, cb, arg);
}

static int queue_kv_load(repo_queue *r, conn *cn, repo_cb cb, void *arg)
{
    repo_queue_kv *q = (repo_queue_kv *)r;
    char key[REPO_KEY_MAX];
    repo_join *j = repo_join_new(cb, arg);
    int rc;

    if (!j)
        return KV_ENOMEM;
    rc = repo_load_value(q->kv, repo_key(key, "d", cn->ch->name, cn->id), cn,
                         queue_kv_dropped_parse, repo_join_done, j);
    if (rc < 0) {
        free(j);
        return rc;
    }
    j->pending++;
    if (repo_load_list(q->kv, repo_key(key, "q", cn->ch->name, cn->id), &cn->queue,
                       repo_join_done, j) == 0)
        j->pending++;
    repo_join_done(0, j); /* the starter's share */
    return 0;
}

static void queue_kv_free(repo_queue *r)
{
    free(r);
}

static const repo_queue_ops repo_queue_kv_ops = {
    .pop = queue_kv_pop,
    .dropped = queue_kv_dropped,
    .remove = queue_kv_remove,
    .load = queue_kv_load,
    .load_into = queue_kv_load_into,
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
