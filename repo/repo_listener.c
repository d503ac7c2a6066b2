/* repo_listener.c - listener state (running/stopped) as one kv string each. */
#include <stdlib.h>
#include <string.h>

#include "repo/repo_private.h"

typedef struct repo_listener_kv {
    repo_listener base;
    kv_store *kv;
} repo_listener_kv;

static void listener_kv_persist(repo_listener *r, const conn *cn)
{
    repo_listener_kv *l = (repo_listener_kv *)r;
    char key[REPO_KEY_MAX];
    const char *v = cn->lis.running ? "{\"running\":true}" : "{\"running\":false}";
    kv_set(l->kv, repo_key(key, "l", cn->ch->name, cn->id), v, strlen(v), NULL, NULL);
}

static void listener_kv_remove(repo_listener *r, const chan *ch, const char *conn_id)
{
    repo_listener_kv *l = (repo_listener_kv *)r;
    char key[REPO_KEY_MAX];
    kv_del(l->kv, repo_key(key, "l", ch->name, conn_id), NULL, NULL);
}

static void listener_kv_parse(conn *cn, const char *val, size_t len)
{
    json_t *o = json_loadb(val, len, 0, NULL);
    /* Streams never survive a restart: the listener comes back detached. */
    cn->lis.running = !json_is_false(json_object_get(o, "running"));
    json_decref(o);
}

static int listener_kv_load(repo_listener *r, conn *cn, repo_cb cb, void *arg)
{
    repo_listener_kv *l = (repo_listener_kv *)r;
    char key[REPO_KEY_MAX];
    return repo_load_value(l->kv, repo_key(key, "l", cn->ch->name, cn->id), cn,
                           listener_kv_parse, cb, arg);
}

static void listener_kv_free(repo_listener *r)
{
    free(r);
}

static const repo_listener_ops repo_listener_kv_ops = {
    .persist = listener_kv_persist,
    .remove = listener_kv_remove,
    .load = listener_kv_load,
    .free = listener_kv_free,
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
