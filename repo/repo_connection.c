/* repo_connection.c - connections as a kv record each, built from the listener
 * and queue repositories. */
#include <stdlib.h>
#include <string.h>

#include "repo/repo_private.h"

typedef struct repo_connection_kv {
    repo_connection base;
    kv_store *kv;
    repo_listener *listeners; /* owned */
    repo_queue *queues;       /* owned */
} repo_connection_kv;

static void connection_kv_persist(repo_connection *r, const conn *cn)
{
    repo_connection_kv *c = (repo_connection_kv *)r;
    char key[REPO_KEY_MAX], rec[64];
    int len = snprintf(rec, sizeof(rec), "{\"id\":\"%s\"}", cn->id);
    kv_set(c->kv, repo_key(key, "n", cn->ch->name, cn->id), rec, (size_t)len, NULL, NULL);
    repo_listener_persist(c->listeners, cn);
}

static void connection_kv_remove(repo_connection *r, const conn *cn)
{
    repo_connection_kv *c = (repo_connection_kv *)r;
    char key[REPO_KEY_MAX];
    repo_queue_remove(c->queues, cn);
    repo_listener_remove(c->listeners, cn);
    kv_del(c->kv, repo_key(key, "n", cn->ch->name, cn->id), NULL, NULL);
}

typedef struct connections_load {
    repo_connection_kv *c;
    chan *ch;
    repo_join *join;
} connections_load;

static void connections_scanned(const kv_result *res, void *arg)
{
    connections_load cl = *(connections_load *)arg;
    free(arg);
    if (res->status < 0)
        cl.join->status = res->status;
    for (size_t i = 0; res->status == KV_OK && i < res->n; i++) {
        json_t *o = json_loadb(res->items[i].val, res->items[i].vlen, 0, NULL);
        const char *id = json_string_value(json_object_get(o, "id"));
        conn *cn;
        if (!id || !valid_conn_id(id) || chan_conn(cl.ch, id)) {
            kv_report(cl.c->kv, KV_EV_BAD_RECORD,
                      "repo: skipping a bad connection record in channel '%s'",
                      cl.ch->name);
        } else if (!(cn = conn_new(cl.ch, id))) {
            cl.join->status = KV_ENOMEM;
        } else {
            if (repo_listener_load(cl.c->listeners, cn, repo_join_done, cl.join) == 0)
                cl.join->pending++;
            if (repo_queue_load(cl.c->queues, cn, repo_join_done, cl.join) == 0)
                cl.join->pending++;
        }
        json_decref(o);
    }
    repo_join_done(0, cl.join); /* the scan's share */
}

static int connection_kv_load_all(repo_connection *r, chan *ch, repo_cb cb, void *arg)
{
    repo_connection_kv *c = (repo_connection_kv *)r;
    char table[REPO_KEY_MAX];
    connections_load *cl = malloc(sizeof(*cl));
    repo_join *j = repo_join_new(cb, arg);
    int rc = KV_ENOMEM;

    if (!cl || !j)
        goto err;
    j->pending++; /* held by the scan until connections_scanned runs */
    *cl = (connections_load){c, ch, j};
    snprintf(table, sizeof(table), "n/%s/", ch->name);
    if ((rc = kv_scan(c->kv, table, connections_scanned, cl)) < 0)
        goto err;
    repo_join_done(0, j); /* the starter's share */
    return 0;
err:
    free(cl);
    free(j);
    return rc;
}

static repo_listener *connection_kv_listeners(repo_connection *r)
{
    return ((repo_connection_kv *)r)->listeners;
}

static repo_queue *connection_kv_queues(repo_connection *r)
{
    return ((repo_connection_kv *)r)->queues;
}

static void connection_kv_free(repo_connection *r)
{
    repo_connection_kv *c = (repo_connection_kv *)r;
    repo_listener_free(c->listeners);
    repo_queue_free(c->queues);
    free(c);
}

static const repo_connection_ops repo_connection_kv_ops = {
    .persist = connection_kv_persist,
    .remove = connection_kv_remove,
    .load_all = connection_kv_load_all,
    .listeners = connection_kv_listeners,
    .queues = connection_kv_queues,
    .free = connection_kv_free,
};

repo_connection *repo_connection_kv_new(kv_store *kv, repo_listener *listeners,
                                        repo_queue *queues)
{
    repo_connection_kv *c = calloc(1, sizeof(*c));
    if (!c || !listeners || !queues) {
        repo_listener_free(listeners);
        repo_queue_free(queues);
        free(c);
        return NULL;
    }
    c->base.ops = &repo_connection_kv_ops;
    c->kv = kv;
    c->listeners = listeners;
    c->queues = queues;
    return &c->base;
}
