/* repo_channel.c - channels as a kv options record and a log each, with their
 * connections from the connection repository. */
#include <stdlib.h>
#include <string.h>

#include "repo/repo_private.h"
#include "src/base/util.h"

/* The last message id allocated (repo.h). */
#define SEQ_KEY "meta/seq"

typedef struct repo_channel_kv {
    repo_channel base;
    kv_store *kv;
    repo_connection *connections; /* owned */
} repo_channel_kv;

static void channel_kv_persist(repo_channel *r, const chan *ch)
{
    repo_channel_kv *c = (repo_channel_kv *)r;
    char key[REPO_KEY_MAX];
    json_t *o = chan_opts_to_json_all(&ch->opts);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (text)
        kv_set(c->kv, repo_key(key, "c", ch->name, NULL), text, strlen(text), NULL, NULL);
    else
        kv_report(c->kv, KV_EV_FAILED, "repo: out of memory persisting channel '%s'",
                  ch->name);
    free(text);
    json_decref(o);
}

/* Removing a channel removes every connection the store holds for it, known
 * here or not: the list comes from the store. */
typedef struct channel_removal {
    repo_channel_kv *c;
    chan *ch; /* holds a reference */
} channel_removal;

static void connections_to_remove(const kv_result *res, void *arg)
{
    channel_removal *cr = arg;
    char key[REPO_KEY_MAX];
    size_t plen = strlen("n/") + strlen(cr->ch->name) + 1;
    for (size_t i = 0; res->status == KV_OK && i < res->n; i++)
        if (res->items[i].klen > plen && valid_conn_id(res->items[i].key + plen))
            repo_connection_remove(cr->c->connections, cr->ch, res->items[i].key + plen);
    kv_del(cr->c->kv, repo_key(key, "g", cr->ch->name, NULL), NULL, NULL);
    chan_unref(cr->ch);
    free(cr);
}

static void channel_kv_remove(repo_channel *r, const chan *ch)
{
    repo_channel_kv *c = (repo_channel_kv *)r;
    char key[REPO_KEY_MAX];
    channel_removal *cr = malloc(sizeof(*cr));
    conn *cn;

    kv_del(c->kv, repo_key(key, "c", ch->name, NULL), NULL, NULL);
    kv_del(c->kv, repo_key(key, "s", ch->name, NULL), NULL, NULL);
    snprintf(key, sizeof(key), "n/%s/", ch->name);
    if (cr) {
        *cr = (channel_removal){c, chan_ref((chan *)ch)};
        if (kv_scan(c->kv, key, connections_to_remove, cr) == 0)
            return;
        chan_unref(cr->ch);
        free(cr);
    }
    /* No scan: remove what this node knows, at least. */
    kv_report(c->kv, KV_EV_FAILED, "repo: out of memory removing channel '%s'", ch->name);
    TAILQ_FOREACH (cn, &ch->conns, link)
        repo_connection_remove(c->connections, ch, cn->id);
    kv_del(c->kv, repo_key(key, "g", ch->name, NULL), NULL, NULL);
}

static int channel_kv_publish(repo_channel *r, const chan *ch, const conn *target,
                              const char *tail, size_t tail_len, uint64_t floor, kv_cb cb,
                              void *arg)
{
    repo_channel_kv *c = (repo_channel_kv *)r;
    char log[REPO_KEY_MAX], topic[REPO_KEY_MAX], readers[REPO_KEY_MAX];
    const char *conn_id = target ? target->id : NULL;

    repo_key(log, target ? "o" : "g", ch->name, conn_id);
    repo_key(topic, target ? REPO_TOPIC_TARGETED : REPO_TOPIC_MSG, ch->name, conn_id);
    kv_append_args a = {.counter = SEQ_KEY,
                        .floor = (long long)floor,
                        .head = MSG_JSON_HEAD,
                        .head_len = sizeof(MSG_JSON_HEAD) - 1,
                        .mid = MSG_JSON_MID,
                        .mid_len = sizeof(MSG_JSON_MID) - 1,
                        .tail = tail,
                        .tail_len = tail_len,
                        .log = log,
                        .log_max =
                            target ? (size_t)ch->opts.queue_limit : chan_log_bound(ch),
                        .topic = topic};
    if (!target) {
        /* Without connections (no cursor in k/), only the history is kept,
         * and only for other nodes and restarts: this node reads its history
         * from its mirror (chan.history), so a store in this process holds
         * none of it (log_idle_remote): each message is held once. */
        snprintf(readers, sizeof(readers), "k/%s/", ch->name);
        a.log_readers = readers;
        a.log_idle = (size_t)ch->opts.history;
        a.log_idle_remote = 1;
    }
    return kv_append(c->kv, &a, cb, arg);
}

static int channel_kv_history_load(repo_channel *r, const chan *ch, msgq *q, repo_cb cb,
                                   void *arg)
{
    char key[REPO_KEY_MAX];
    return repo_load_log(((repo_channel_kv *)r)->kv, repo_key(key, "g", ch->name, NULL),
                         0, (size_t)ch->opts.history, 1, q, cb, arg);
}

static void channel_kv_trim(repo_channel *r, const chan *ch, size_t keep)
{
    repo_channel_kv *c = (repo_channel_kv *)r;
    char key[REPO_KEY_MAX];
    kv_log_trim(c->kv, repo_key(key, "g", ch->name, NULL), keep, NULL, NULL);
}

/* One load_all (or find) in progress. */
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
        if (status == 0)
            cl->found(cl->v[i], cl->arg);
        else
            chan_unref(cl->v[i]);
    }
    cl->cb(status, cl->arg);
    free(cl->v);
    free(cl);
}

/* The end of a channel's log is the id of its newest message. */
typedef struct last_read {
    chan *ch;
    repo_join *join;
} last_read;

static void got_last(const kv_result *res, void *arg)
{
    last_read lr = *(last_read *)arg;
    free(arg);
    if (res->status == KV_OK && (uint64_t)res->id > lr.ch->last_seq)
        lr.ch->last_seq = (uint64_t)res->id;
    repo_join_done(res->status, lr.join);
}

/* Build the channel of one record and start reading its history, its end and
 * its connections under the load's join. */
static void channel_build(channels_load *cl, const char *name, const char *val,
                          size_t vlen)
{
    repo_join *j = cl->join;
    chan_opts opts = cl->defaults;
    char err[128], key[REPO_KEY_MAX];
    json_t *o = json_loadb(val, vlen, 0, NULL);
    chan *ch;

    if (!valid_channel_name(name, strlen(name)) ||
        chan_opts_apply_json(&opts, o, err, sizeof(err)) < 0) {
        kv_report(cl->c->kv, KV_EV_BAD_RECORD,
                  "repo: skipping a bad channel record 'c/%s'", name);
    } else if (!(ch = chan_new(name, &opts))) {
        j->status = KV_ENOMEM;
    } else {
        cl->v[cl->n++] = ch;
        repo_key(key, "g", name, NULL);
        last_read *lr = malloc(sizeof(*lr));
        if (lr)
            *lr = (last_read){ch, j};
        if (lr && kv_log_end(cl->c->kv, key, got_last, lr) == 0)
            j->pending++;
        else
            free(lr), j->status = KV_ENOMEM;
        if (repo_load_log(cl->c->kv, key, 0, (size_t)opts.history, 1, &ch->history,
                          repo_join_done, j) == 0)
            j->pending++;
        if (repo_connection_load_all(cl->c->connections, ch, repo_join_done, j) == 0)
            j->pending++;
    }
    json_decref(o);
}

static void channels_scanned(const kv_result *res, void *arg)
{
    channels_load *cl = arg;
    repo_join *j = cl->join;

    if (res->status < 0)
        j->status = res->status;
    if (res->status == KV_OK && res->n && !(cl->v = calloc(res->n, sizeof(chan *))))
        j->status = KV_ENOMEM;
    for (size_t i = 0; cl->v && i < res->n; i++)
        channel_build(cl, res->items[i].key + 2 /* after "c/" */, res->items[i].val,
                      res->items[i].vlen);
    repo_join_done(0, j); /* the scan's share */
}

static void channel_found(const kv_result *res, void *arg)
{
    channels_load *cl = arg;
    repo_join *j = cl->join;
    const char *name = (const char *)(cl + 1);

    if (res->status < 0)
        j->status = res->status;
    else if (!(cl->v = calloc(1, sizeof(chan *))))
        j->status = KV_ENOMEM;
    else
        channel_build(cl, name, res->val, res->len);
    if (j->status == 0 && !cl->n)
        j->status = KV_ENOTFOUND; /* a bad record is no channel */
    repo_join_done(0, j);         /* the read's share */
}

/* A load of all channels, or of one ('name' not NULL: kept after the struct). */
static int channels_start(repo_channel_kv *c, const char *name, const chan_opts *defaults,
                          repo_chan_found_cb found, repo_cb cb, void *arg)
{
    size_t nlen = name ? strlen(name) + 1 : 0;
    channels_load *cl = calloc(1, sizeof(*cl) + nlen);
    char key[REPO_KEY_MAX];
    int rc = KV_ENOMEM;

    if (!cl)
        return KV_ENOMEM;
    *cl = (channels_load){c, *defaults, NULL, 0, found, NULL, cb, arg};
    if (name)
        memcpy(cl + 1, name, nlen);
    if (!(cl->join = repo_join_new(channels_loaded, cl)))
        goto err;
    cl->join->pending++; /* held by the read */
    rc = name ? kv_get(c->kv, repo_key(key, "c", name, NULL), channel_found, cl)
              : kv_scan(c->kv, "c/", channels_scanned, cl);
    if (rc < 0)
        goto err;
    repo_join_done(0, cl->join); /* the starter's share */
    return 0;
err:
    free(cl->join);
    free(cl);
    return rc;
}

static int channel_kv_load_all(repo_channel *r, const chan_opts *defaults,
                               repo_chan_found_cb found, repo_cb cb, void *arg)
{
    return channels_start((repo_channel_kv *)r, NULL, defaults, found, cb, arg);
}

static int channel_kv_find(repo_channel *r, const char *name, const chan_opts *defaults,
                           repo_chan_found_cb found, repo_cb cb, void *arg)
{
    if (!valid_channel_name(name, strlen(name)))
        return KV_EINVAL;
    return channels_start((repo_channel_kv *)r, name, defaults, found, cb, arg);
}

static void channel_kv_mark_used(repo_channel *r, const chan *ch, int64_t now_s)
{
    repo_channel_kv *c = (repo_channel_kv *)r;
    char key[REPO_KEY_MAX], val[24];
    int n = snprintf(val, sizeof(val), "%lld", (long long)now_s);
    kv_set(c->kv, repo_key(key, "s", ch->name, NULL), val, (size_t)n, NULL, NULL);
}

/* A usage read: the mark and the connection table, read in one pipeline. */
typedef struct usage_read {
    int pending, status;
    int64_t used_s;
    size_t nconns;
    repo_usage_cb cb;
    void *arg;
} usage_read;

static void usage_step(usage_read *u, int status)
{
    if (status < 0 && status != KV_ENOTFOUND && u->status == 0)
        u->status = status;
    if (--u->pending == 0) {
        u->cb(u->status, u->used_s, u->nconns, u->arg);
        free(u);
    }
}

static void usage_mark(const kv_result *res, void *arg)
{
    usage_read *u = arg;
    long long v;
    char *end;
    if (res->status == KV_OK && res->len < 24) {
        v = strtoll(res->val, &end, 10); /* values are NUL-terminated */
        if (end != res->val && !*end && v > 0)
            u->used_s = v;
    }
    usage_step(u, res->status);
}

static void usage_conns(const kv_result *res, void *arg)
{
    usage_read *u = arg;
    if (res->status == KV_OK)
        u->nconns = res->n;
    usage_step(u, res->status);
}

static int channel_kv_usage(repo_channel *r, const chan *ch, repo_usage_cb cb, void *arg)
{
    repo_channel_kv *c = (repo_channel_kv *)r;
    char key[REPO_KEY_MAX];
    usage_read *u = calloc(1, sizeof(*u));
    int rc;
    if (!u)
        return KV_ENOMEM;
    *u = (usage_read){.pending = 2, .cb = cb, .arg = arg}; /* the read, the caller */
    if ((rc = kv_get(c->kv, repo_key(key, "s", ch->name, NULL), usage_mark, u)) < 0) {
        free(u);
        return rc;
    }
    snprintf(key, sizeof(key), "n/%s/", ch->name);
    if ((rc = kv_scan(c->kv, key, usage_conns, u)) == 0)
        u->pending++;
    else
        u->status = rc;
    usage_step(u, 0); /* the caller's share */
    return 0;
}

/* A read of meta/seq under way. */
typedef struct id_read {
    repo_id_cb cb;
    void *arg;
} id_read;

static void last_id_got(const kv_result *res, void *arg)
{
    id_read *rd = arg;
    char buf[24];
    uint64_t id = 0;
    int status = res->status == KV_ENOTFOUND ? KV_OK : res->status; /* none yet */
    if (res->status == KV_OK) {
        if (res->len >= sizeof(buf))
            status = KV_EIO;
        else {
            memcpy(buf, res->val, res->len);
            buf[res->len] = '\0';
            if (parse_u64(buf, &id) < 0)
                status = KV_EIO; /* not a counter: nothing to go by */
        }
    }
    rd->cb(status, id, rd->arg);
    free(rd);
}

static int channel_kv_last_id(repo_channel *r, repo_id_cb cb, void *arg)
{
    repo_channel_kv *c = (repo_channel_kv *)r;
    id_read *rd = malloc(sizeof(*rd));
    int rc;
    if (!rd)
        return KV_ENOMEM;
    *rd = (id_read){cb, arg};
    if ((rc = kv_get(c->kv, SEQ_KEY, last_id_got, rd)) < 0)
        free(rd);
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
    .publish = channel_kv_publish,
    .history_load = channel_kv_history_load,
    .trim = channel_kv_trim,
    .load_all = channel_kv_load_all,
    .find = channel_kv_find,
    .mark_used = channel_kv_mark_used,
    .usage = channel_kv_usage,
    .last_id = channel_kv_last_id,
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
