/* repo_listener.c - listener state (running/stopped) as one kv string each. */
#include <stdlib.h>
#include <string.h>

#include "repo_private.h"

typedef struct repo_listener_kv {
    repo_listener base;
    kv_store *kv;
} repo_listener_kv;

static void listener_persist(repo_listener *r, const conn *cn)
{
    repo_listener_kv *l = (repo_listener_kv *)r;
    char key[REPO_KEY_MAX];
    const char *v = cn->lis.running ? "{\"running\":true}" : "{\"running\":false}";
    kv_set(l->kv, repo_key(key, "l", cn->ch->name, cn->id), v, strlen(v), NULL, NULL);
}

static void listener_remove(repo_listener *r, const conn *cn)
{
    repo_listener_kv *l = (repo_listener_kv *)r;
    char key[REPO_KEY_MAX];
    kv_del(l->kv, repo_key(key, "l", cn->ch->name, cn->id), NULL, NULL);
}

typedef struct listener_load {
    conn *cn;
    repo_cb cb;
    void *arg;
} listener_load;

static void listener_loaded(const kv_result *res, void *arg)
{
    listener_load ll = *(listener_load *)arg;
    free(arg);
    if (res->status == KV_OK) {
        json_t *o = json_loadb(res->val, res->len, 0, NULL);
        json_t *running = json_object_get(o, "running");
        /* Streams never survive a restart: the listener comes back detached. */
        ll.cn->lis.running = !json_is_false(running);
        json_decref(o);
    }
    ll.cb(res->status == KV_ENOTFOUND ? KV_OK : res->status, ll.arg);
}

static int listener_load_one(repo_listener *r, conn *cn, repo_cb cb, void *arg)
{
    repo_listener_kv *l = (repo_listener_kv *)r;
    char key[REPO_KEY_MAX];
    listener_load *ll = malloc(sizeof(*ll));
    if (!ll)
        return KV_ENOMEM;
    *ll = (listener_load){cn, cb, arg};
    int rc = kv_get(l->kv, repo_key(key, "l", cn->ch->name, cn->id), listener_loaded, ll);
    if (rc < 0)
        free(ll);
    return rc;
}

static void listener_free(repo_listener *r)
{
    free(r);
}

static const repo_listener_ops repo_listener_kv_ops = {
    .persist = listener_persist,
    .remove = listener_remove,
    .load = listener_load_one,
    .free = listener_free,
};

repo_listener *repo_listener_kv_new(kv_store *kv)
{
    repo_listener_kv *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->base.ops = &repo_listener_kv_ops;
    l->kv = kv;
    return &l->base;
}
