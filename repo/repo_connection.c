/* repo_connection.c - connections as a kv record each, built from the listener
 * and queue repositories. */
#include <stdlib.h>
#include <string.h>

#include "src/base/log.h"
#include "repo/repo_private.h"

typedef struct repo_connection_kv {
    repo_connection base;
    kv_store *kv;
    repo_listener *listeners; /* owned */
    repo_queue *queues;       /* owned */
} repo_connection_kv;

static void conn_persist(repo_connection *r, const conn *cn)
{
    repo_connection_kv *c = (repo_connection_kv *)r;
    char key[REPO_KEY_MAX], rec[64];
    int len = snprintf(rec, sizeof(rec), "{\"id\":\"%s\"}", cn->id);
    kv_set(c->kv, repo_key(key, "n", cn->ch->name, cn->id), rec, (size_t)len, NULL, NULL);
    c->listeners->ops->persist(c->listeners, cn);
}

static void conn_remove(repo_connection *r, const conn *cn)
{
    repo_connection_kv *c = (repo_connection_kv *)r;
    char key[REPO_KEY_MAX];
    c->queues->ops->remove(c->queues, cn);
    c->listeners->ops->remove(c->listeners, cn);
    kv_del(c->kv, repo_key(key, "n", cn->ch->name, cn->id), NULL, NULL);
}

typedef struct conns_load {
    repo_connection_kv *c;
    chan *ch;
    repo_join *join;
} conns_load;

static void conns_scanned(const kv_result *res, void *arg)
{
    conns_load cl = *(conns_load *)arg;
    free(arg);
    if (res->status < 0)
        cl.join->status = res->status;
    for (size_t i = 0; res->status == KV_OK && i < res->n; i++) {
        json_t *o = json_loadb(res->items[i].val, res->items[i].vlen, 0, NULL);
        const char *id = json_string_value(json_object_get(o, "id"));
        conn *cn;
        if (!id || !valid_conn_id(id) || chan_conn(cl.ch, id)) {
            log_warn("repo: skipping a bad connection record in channel '%s'",
                     cl.ch->name);
        } else if (!(cn = conn_new(cl.ch, id))) {
            cl.join->status = KV_ENOMEM;
        } else {
            if (cl.c->listeners->ops->load(cl.c->listeners, cn, repo_join_done,
                                           cl.join) == 0)
                cl.join->pending++;
            if (cl.c->queues->ops->load(cl.c->queues, cn, repo_join_done, cl.join) == 0)
                cl.join->pending++;
        }
        json_decref(o);
    }
    repo_join_done(0, cl.join); /* the scan's share */
}

static int conn_load_all(repo_connection *r, chan *ch, repo_cb cb, void *arg)
{
    repo_connection_kv *c = (repo_connection_kv *)r;
    char table[REPO_KEY_MAX];
    conns_load *cl = malloc(sizeof(*cl));
    repo_join *j = repo_join_new(cb, arg);
    int rc = KV_ENOMEM;

    if (!cl || !j)
        goto err;
    j->pending++; /* held by the scan until conns_scanned runs */
    *cl = (conns_load){c, ch, j};
    snprintf(table, sizeof(table), "n/%s/", ch->name);
    if ((rc = kv_scan(c->kv, table, conns_scanned, cl)) < 0)
        goto err;
    repo_join_done(0, j); /* the starter's share */
    return 0;
err:
    free(cl);
    free(j);
    return rc;
}

static repo_listener *conn_listeners(repo_connection *r)
{
    return ((repo_connection_kv *)r)->listeners;
}

static repo_queue *conn_queues(repo_connection *r)
{
    return ((repo_connection_kv *)r)->queues;
}

static void conn_repo_free(repo_connection *r)
{
    repo_connection_kv *c = (repo_connection_kv *)r;
    if (c->listeners)
        c->listeners->ops->free(c->listeners);
    if (c->queues)
        c->queues->ops->free(c->queues);
    free(c);
}

static const repo_connection_ops repo_connection_kv_ops = {
    .persist = conn_persist,
    .remove = conn_remove,
    .load_all = conn_load_all,
    .listeners = conn_listeners,
    .queues = conn_queues,
    .free = conn_repo_free,
};

repo_connection *repo_connection_kv_new(kv_store *kv, repo_listener *listeners,
                                        repo_queue *queues)
{
    repo_connection_kv *c = calloc(1, sizeof(*c));
    if (!c || !listeners || !queues) {
        if (listeners)
            listeners->ops->free(listeners);
        if (queues)
            queues->ops->free(queues);
        free(c);
        return NULL;
    }
    c->base.ops = &repo_connection_kv_ops;
    c->kv = kv;
    c->listeners = listeners;
    c->queues = queues;
    return &c->base;
}
