/* repo_connection.c - connections as a kv record each, built from the listener
 * and queue repositories; where a connection's stream is attached. */
#include <stdlib.h>
#include <string.h>

#include "repo/repo_private.h"

typedef struct repo_connection_kv {
    repo_connection base;
    kv_store *kv;
    repo_listener *listeners; /* owned */
    repo_queue *queues;       /* owned */
} repo_connection_kv;

char *repo_conn_record(const conn *cn)
{
    json_t *o = json_pack("{s:s}", "id", cn->id);
    char *text;
    if (o && cn->owner)
        json_object_set_new(o, "owner", json_string(cn->owner));
    if (o && cn->owner_role)
        json_object_set_new(o, "owner_role", json_string(cn->owner_role));
    text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

int repo_conn_record_owner(conn *cn, const char *rec, size_t len)
{
    json_t *o = json_loadb(rec, len, 0, NULL);
    const json_t *owner = json_object_get(o, "owner"),
                 *role = json_object_get(o, "owner_role");
    int rc = -2;
    if (json_is_object(o) && (!owner || json_is_string(owner)) &&
        (!role || json_is_string(role)))
        rc = conn_set_owner(cn, json_string_value(owner), json_string_value(role));
    json_decref(o);
    return rc;
}

static void connection_kv_persist(repo_connection *r, const conn *cn)
{
    repo_connection_kv *c = (repo_connection_kv *)r;
    char key[REPO_KEY_MAX];
    char *rec = repo_conn_record(cn);
    if (rec)
        kv_set(c->kv, repo_key(key, "n", cn->ch->name, cn->id), rec, strlen(rec), NULL,
               NULL);
    else
        kv_report(c->kv, KV_EV_FAILED, "repo: out of memory persisting connection %s",
                  cn->id);
    free(rec);
    repo_listener_persist(c->listeners, cn);
}

static void connection_kv_remove(repo_connection *r, const chan *ch, const char *conn_id)
{
    repo_connection_kv *c = (repo_connection_kv *)r;
    char key[REPO_KEY_MAX];
    repo_queue_remove(c->queues, ch, conn_id);
    repo_listener_remove(c->listeners, ch, conn_id);
    kv_del(c->kv, repo_key(key, "a", ch->name, conn_id), NULL, NULL);
    kv_del(c->kv, repo_key(key, "n", ch->name, conn_id), NULL, NULL);
}

/* The id in a connection record, or NULL. 'o' owns it. */
static const char *record_id(json_t *o)
{
    const char *id = json_string_value(json_object_get(o, "id"));
    return id && valid_conn_id(id) ? id : NULL;
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
        const char *id = record_id(o);
        conn *cn;
        int owned;
        if (!id || chan_conn(cl.ch, id)) {
            kv_report(cl.c->kv, KV_EV_BAD_RECORD,
                      "repo: skipping a bad connection record in channel '%s'",
                      cl.ch->name);
        } else if (!(cn = conn_new(cl.ch, id))) {
            cl.join->status = KV_ENOMEM;
        } else if ((owned = repo_conn_record_owner(cn, res->items[i].val,
                                                   res->items[i].vlen)) < 0) {
            conn_free(cn);
            if (owned == -1)
                cl.join->status = KV_ENOMEM;
            else
                kv_report(cl.c->kv, KV_EV_BAD_RECORD,
                          "repo: skipping connection %s of channel '%s': a bad owner", id,
                          cl.ch->name);
        } else if (repo_listener_load(cl.c->listeners, cn, repo_join_done, cl.join) ==
                   0) {
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

/* One find: the record, then the listener. */
typedef struct connection_find {
    repo_connection_kv *c;
    chan *ch; /* holds a reference */
    char id[CONN_ID_LEN + 1];
    repo_cb cb;
    void *arg;
} connection_find;

static void find_done(int status, void *arg)
{
    connection_find *f = arg;
    f->cb(status, f->arg);
    chan_unref(f->ch);
    free(f);
}

static void record_found(const kv_result *res, void *arg)
{
    connection_find *f = arg;
    json_t *o = res->status == KV_OK ? json_loadb(res->val, res->len, 0, NULL) : NULL;
    const char *id = record_id(o);
    int status = res->status;
    conn *cn;

    if (status == KV_OK && (!id || strcmp(id, f->id) != 0)) {
        kv_report(f->c->kv, KV_EV_BAD_RECORD,
                  "repo: skipping a bad connection record in channel '%s'", f->ch->name);
        status = KV_ENOTFOUND;
    }
    json_decref(o);
    if (status == KV_OK && !f->ch->deleted) {
        /* Another find may have added it meanwhile. */
        bool fresh = !(cn = chan_conn(f->ch, f->id));
        int owned;
        if (fresh && !(cn = conn_new(f->ch, f->id))) {
            status = KV_ENOMEM;
        } else if ((owned = repo_conn_record_owner(cn, res->val, res->len)) < 0) {
            if (fresh)
                conn_free(cn);
            status = owned == -1 ? KV_ENOMEM : KV_ENOTFOUND;
        } else if (repo_listener_load(f->c->listeners, cn, find_done, f) == 0) {
            return;
        }
    }
    find_done(status, f);
}

static int connection_kv_find(repo_connection *r, chan *ch, const char *conn_id,
                              repo_cb cb, void *arg)
{
    repo_connection_kv *c = (repo_connection_kv *)r;
    connection_find *f = calloc(1, sizeof(*f));
    char key[REPO_KEY_MAX];
    int rc;
    if (!f)
        return KV_ENOMEM;
    *f = (connection_find){c, chan_ref(ch), "", cb, arg};
    snprintf(f->id, sizeof(f->id), "%s", conn_id);
    if ((rc = kv_get(c->kv, repo_key(key, "n", ch->name, conn_id), record_found, f)) <
        0) {
        chan_unref(f->ch);
        free(f);
    }
    return rc;
}

/* One state read: the listener, the attachment and the queue's counts. */
typedef struct state_read {
    repo_conn_state st;
    repo_state_cb cb;
    void *arg;
    repo_join *join;
} state_read;

static void state_done(int status, void *arg)
{
    state_read *sr = arg;
    sr->cb(status, &sr->st, sr->arg);
    free(sr);
}

static void got_listener(const kv_result *res, void *arg)
{
    state_read *sr = arg;
    if (res->status == KV_OK) {
        json_t *o = json_loadb(res->val, res->len, 0, NULL);
        sr->st.running = !json_is_false(json_object_get(o, "running"));
        json_decref(o);
    }
    repo_join_done(res->status == KV_ENOTFOUND ? KV_OK : res->status, sr->join);
}

static void got_node(const kv_result *res, void *arg)
{
    state_read *sr = arg;
    if (res->status == KV_OK && res->len < sizeof(sr->st.node)) {
        memcpy(sr->st.node, res->val, res->len);
        sr->st.node[res->len] = '\0';
    }
    repo_join_done(res->status == KV_ENOTFOUND ? KV_OK : res->status, sr->join);
}

static void got_backlog(int status, repo_backlog *bl, void *arg)
{
    state_read *sr = arg;
    if (status == 0) {
        sr->st.bl.at = bl->at;
        sr->st.bl.own = bl->own;
        sr->st.bl.end = bl->end;
        sr->st.bl.own_end = bl->own_end;
        sr->st.bl.dropped = bl->dropped;
    }
    repo_join_done(status, sr->join);
}

static int connection_kv_state(repo_connection *r, const conn *cn, repo_state_cb cb,
                               void *arg)
{
    repo_connection_kv *c = (repo_connection_kv *)r;
    state_read *sr = calloc(1, sizeof(*sr));
    char key[REPO_KEY_MAX];
    int rc = 0;
    if (!sr || !(sr->join = repo_join_new(state_done, sr))) {
        free(sr);
        return KV_ENOMEM;
    }
    sr->st.running = true; /* a missing record means running */
    sr->cb = cb;
    sr->arg = arg;
    if ((rc = kv_get(c->kv, repo_key(key, "l", cn->ch->name, cn->id), got_listener, sr)) <
        0) {
        free(sr->join); /* nothing issued: no callback */
        free(sr);
        return rc;
    }
    sr->join->pending++;
    if ((rc = kv_get(c->kv, repo_key(key, "a", cn->ch->name, cn->id), got_node, sr)) == 0)
        sr->join->pending++;
    if (rc == 0 && (rc = repo_queue_read(c->queues, cn, 0, got_backlog, sr)) == 0)
        sr->join->pending++;
    if (rc < 0)
        sr->join->status = rc;
    repo_join_done(0, sr->join); /* the issuer's share: the reads call back later */
    return 0;
}

static void connection_kv_attach(repo_connection *r, const conn *cn, const char *node)
{
    repo_connection_kv *c = (repo_connection_kv *)r;
    char key[REPO_KEY_MAX];
    kv_set(c->kv, repo_key(key, "a", cn->ch->name, cn->id), node, strlen(node), NULL,
           NULL);
}

static void connection_kv_detach(repo_connection *r, const conn *cn, const char *node)
{
    repo_connection_kv *c = (repo_connection_kv *)r;
    char key[REPO_KEY_MAX];
    kv_del_if(c->kv, repo_key(key, "a", cn->ch->name, cn->id), node, strlen(node), NULL,
              NULL);
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
    .find = connection_kv_find,
    .state = connection_kv_state,
    .attach = connection_kv_attach,
    .detach = connection_kv_detach,
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
