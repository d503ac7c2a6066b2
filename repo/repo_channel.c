/* repo_channel.c - channels as a kv options record and a history list each,
 * with their connections from the connection repository. */
#include <stdlib.h>
#include <string.h>

#include "repo/repo_private.h"

typedef struct repo_channel_kv {
    repo_channel base;
    kv_store *kv;
    repo_connection *connections; /* owned */
} repo_channel_kv;

static void channel_kv_persist(repo_channel *r, const chan *ch)
{
    repo_channel_kv *c = (repo_channel_kv *)r;
    char key[REPO_KEY_MAX];
    json_t *o = chan_opts_to_json(&ch->opts);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (text)
        kv_set(c->kv, repo_key(key, "c", ch->name, NULL), text, strlen(text), NULL, NULL);
    else
        kv_report(c->kv, KV_EV_FAILED, "repo: out of memory persisting channel '%s'",
                  ch->name);
    free(text);
    json_decref(o);
}

static void channel_kv_remove(repo_channel *r, const chan *ch)
{
    repo_channel_kv *c = (repo_channel_kv *)r;
    char key[REPO_KEY_MAX];
    conn *cn;
    TAILQ_FOREACH (cn, &ch->conns, link)
        repo_connection_remove(c->connections, cn);
    kv_del(c->kv, repo_key(key, "h", ch->name, NULL), NULL, NULL);
    kv_del(c->kv, repo_key(key, "c", ch->name, NULL), NULL, NULL);
}

static void history_push_one(repo_channel_kv *c, const char *key, const chan *ch,
                             const msg *m)
{
    size_t len;
    const char *text = msg_json_text(m, &len);
    if (text)
        kv_list_push(c->kv, key, text, len, (size_t)ch->opts.history, NULL, NULL);
    else
        kv_report(c->kv, KV_EV_FAILED, "repo: out of memory persisting history of '%s'",
                  ch->name);
}

static int channel_kv_publish(repo_channel *r, const chan *ch, const conn *target,
                              const char *tail, size_t tail_len, uint64_t floor, kv_cb cb,
                              void *arg)
{
    repo_channel_kv *c = (repo_channel_kv *)r;
    size_t n = target ? 1 : ch->nconns + (ch->opts.history > 0);
    char(*keys)[REPO_KEY_MAX] = malloc((n ? n : 1) * sizeof(*keys));
    const char **lists = malloc((n ? n : 1) * sizeof(*lists));
    size_t *max = malloc((n ? n : 1) * sizeof(*max)), i = 0;
    char topic[REPO_KEY_MAX];
    const conn *cn;
    int rc = KV_ENOMEM;

    if (!keys || !lists || !max)
        goto out;
    if (target) {
        repo_key(keys[i], "q", ch->name, target->id);
        max[i++] = (size_t)ch->opts.queue_limit;
        repo_key(topic, REPO_TOPIC_TARGETED, ch->name, target->id);
    } else {
        if (ch->opts.history > 0) {
            repo_key(keys[i], "h", ch->name, NULL);
            max[i++] = (size_t)ch->opts.history;
        }
        TAILQ_FOREACH (cn, &ch->conns, link) {
            repo_key(keys[i], "q", ch->name, cn->id);
            max[i++] = (size_t)ch->opts.queue_limit;
        }
        repo_key(topic, REPO_TOPIC_MSG, ch->name, NULL);
    }
    for (size_t k = 0; k < i; k++)
        lists[k] = keys[k];
    kv_append_args a = {.counter = "meta/seq",
                        .floor = (long long)floor,
                        .head = "{\"id\":\"",
                        .head_len = 7,
                        .tail = tail,
                        .tail_len = tail_len,
                        .lists = lists,
                        .nlists = i,
                        .max = max,
                        .topic = topic};
    rc = kv_append(c->kv, &a, cb, arg);
out:
    free(keys);
    free(lists);
    free(max);
    return rc;
}

static int channel_kv_history_load(repo_channel *r, const chan *ch, msgq *q, repo_cb cb,
                                   void *arg)
{
    char key[REPO_KEY_MAX];
    return repo_load_list(((repo_channel_kv *)r)->kv, repo_key(key, "h", ch->name, NULL),
                          q, cb, arg);
}

static void channel_kv_history_trim(repo_channel *r, const chan *ch)
{
    /* Bounds change rarely: rewrite the stored list from the channel's own
     * (already trimmed) history rather than read its length first. */
    repo_channel_kv *c = (repo_channel_kv *)r;
    char key[REPO_KEY_MAX];
    repo_key(key, "h", ch->name, NULL);
    kv_del(c->kv, key, NULL, NULL);
    for (size_t i = 0; i < ch->history.len; i++)
        history_push_one(c, key, ch, msgq_at(&ch->history, i));
}

/* One load_all in progress. */
typedef struct channels_load {
    repo_channel_kv *c;
    chan_opts defaults;
    chan **v;
    size_t n;
    repo_chan_found_cb found;
    repo_join *join;
    repo_cb cb;
    void *arg;
} channels_load;

static void channels_loaded(int status, void *arg)
{
    channels_load *cl = arg;
    for (size_t i = 0; i < cl->n; i++) {
        chan *ch = cl->v[i];
        msg *last = msgq_at(&ch->history, ch->history.len ? ch->history.len - 1 : 0);
        if (last)
            ch->last_seq = last->seq;
        if (status == 0)
            cl->found(ch, cl->arg);
        else
            chan_unref(ch);
    }
    cl->cb(status, cl->arg);
    free(cl->v);
    free(cl);
}

static void channels_scanned(const kv_result *res, void *arg)
{
    channels_load *cl = arg;
    repo_join *j = cl->join;
    char key[REPO_KEY_MAX];

    if (res->status < 0)
        j->status = res->status;
    if (res->status == KV_OK && res->n && !(cl->v = calloc(res->n, sizeof(chan *))))
        j->status = KV_ENOMEM;
    for (size_t i = 0; cl->v && i < res->n; i++) {
        const char *name = res->items[i].key + 2; /* after "c/" */
        chan_opts opts = cl->defaults;
        char err[128];
        json_t *o = json_loadb(res->items[i].val, res->items[i].vlen, 0, NULL);
        chan *ch;

        if (!valid_channel_name(name, strlen(name)) ||
            chan_opts_apply_json(&opts, o, err, sizeof(err)) < 0) {
            kv_report(cl->c->kv, KV_EV_BAD_RECORD,
                      "repo: skipping a bad channel record '%s'", res->items[i].key);
        } else if (!(ch = chan_new(name, &opts))) {
            j->status = KV_ENOMEM;
        } else {
            cl->v[cl->n++] = ch;
            if (repo_load_list(cl->c->kv, repo_key(key, "h", name, NULL), &ch->history,
                               repo_join_done, j) == 0)
                j->pending++;
            if (repo_connection_load_all(cl->c->connections, ch, repo_join_done, j) == 0)
                j->pending++;
        }
        json_decref(o);
    }
    repo_join_done(0, j); /* the scan's share */
}

static int channel_kv_load_all(repo_channel *r, const chan_opts *defaults,
                               repo_chan_found_cb found, repo_cb cb, void *arg)
{
    repo_channel_kv *c = (repo_channel_kv *)r;
    channels_load *cl = calloc(1, sizeof(*cl));
    int rc = KV_ENOMEM;

    if (!cl)
        return KV_ENOMEM;
    *cl = (channels_load){c, *defaults, NULL, 0, found, NULL, cb, arg};
    if (!(cl->join = repo_join_new(channels_loaded, cl)))
        goto err;
    cl->join->pending++; /* held by the scan */
    if ((rc = kv_scan(c->kv, "c/", channels_scanned, cl)) < 0)
        goto err;
    repo_join_done(0, cl->join); /* the starter's share */
    return 0;
err:
    free(cl->join);
    free(cl);
    return rc;
}

static repo_connection *channel_kv_connections(repo_channel *r)
{
    return ((repo_channel_kv *)r)->connections;
}

static void channel_kv_free(repo_channel *r)
{
    repo_channel_kv *c = (repo_channel_kv *)r;
    if (!c)
        return;
    repo_connection_free(c->connections);
    free(c);
}

static const repo_channel_ops repo_channel_kv_ops = {
    .persist = channel_kv_persist,
    .remove = channel_kv_remove,
    .history_trim = channel_kv_history_trim,
    .history_load = channel_kv_history_load,
    .publish = channel_kv_publish,
    .load_all = channel_kv_load_all,
    .connections = channel_kv_connections,
    .free = channel_kv_free,
};

repo_channel *repo_channel_kv_new(kv_store *kv, repo_connection *connections)
{
    repo_channel_kv *c = calloc(1, sizeof(*c));
    if (!c || !connections) {
        repo_connection_free(connections);
        free(c);
        return NULL;
    }
    c->base.ops = &repo_channel_kv_ops;
    c->kv = kv;
    c->connections = connections;
    return &c->base;
}

repo_channel *repo_kv_stack_new(kv_store *kv)
{
    return repo_channel_kv_new(
        kv, repo_connection_kv_new(kv, repo_listener_kv_new(kv), repo_queue_kv_new(kv)));
}
