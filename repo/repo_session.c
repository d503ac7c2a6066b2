/* repo_session.c - the sessions archive: a record per session (ss/{id}) and
 * its times (st/{id}), which is all the bound has to read. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repo/repo_private.h"

#define SESS_TABLE "ss/"
#define TIMES_TABLE "st/"

typedef struct repo_session_kv {
    repo_session base;
    kv_store *kv;
} repo_session_kv;

/* The id of a scanned key "table/id" (borrowed). */
static const char *key_id(const kv_item *it)
{
    const char *slash = strrchr(it->key, '/');
    return slash ? slash + 1 : it->key;
}

static void session_kv_save(repo_session *r, const session *s)
{
    repo_session_kv *k = (repo_session_kv *)r;
    char key[REPO_KEY_MAX], times[64];
    char *rec = session_to_record(s);
    if (!rec) {
        kv_report(k->kv, KV_EV_FAILED, "repo: out of memory saving session %s", s->id);
        return;
    }
    int n = snprintf(times, sizeof(times), "%" PRId64 " %" PRId64 " %s", s->joined_at,
                     s->left_at, s->node);
    kv_set(k->kv, repo_key(key, "ss", s->id, NULL), rec, strlen(rec), NULL, NULL);
    kv_set(k->kv, repo_key(key, "st", s->id, NULL), times, (size_t)n, NULL, NULL);
    free(rec);
}

/* ---- listing ---- */

typedef struct session_listing {
    repo_session_kv *k;
    session_filter f;
    char *channel, *authid, *after; /* owned copies of the filter's strings */
    size_t limit;
    repo_sessions_cb cb;
    void *arg;
} session_listing;

static void listing_free(session_listing *sl)
{
    free(sl->channel);
    free(sl->authid);
    free(sl->after);
    free(sl);
}

static void sessions_scanned(const kv_result *res, void *arg)
{
    session_listing *sl = arg;
    session *v = NULL;
    size_t n = 0;
    bool more = false;
    int status = res->status;

    if (status == KV_OK && sl->limit && !(v = calloc(sl->limit, sizeof(*v))))
        status = KV_ENOMEM;
    for (size_t i = 0; status == KV_OK && i < res->n; i++) {
        const kv_item *it = &res->items[i];
        if (sl->after && strcmp(key_id(it), sl->after) <= 0)
            continue; /* keys come sorted: a seek would do, a scan is what kv has */
        session s = {0};
        int rc = session_from_text(&s, it->val, it->vlen);
        if (rc == -1) {
            status = KV_ENOMEM;
            break;
        }
        if (rc < 0) {
            kv_report(sl->k->kv, KV_EV_BAD_RECORD, "repo: skipping a bad session record");
            continue;
        }
        if (!session_matches(&s, &sl->f)) {
            session_clear(&s);
            continue;
        }
        if (n == sl->limit) {
            session_clear(&s);
            more = true;
            break;
        }
        v[n++] = s; /* moved */
    }
    if (status < 0)
        sl->cb(status, NULL, 0, false, sl->arg);
    else
        sl->cb(0, v, n, more, sl->arg);
    for (size_t i = 0; i < n; i++)
        session_clear(&v[i]);
    free(v);
    listing_free(sl);
}

static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    return !src || (*dst = strdup(src)) ? 0 : -1;
}

static int session_kv_list(repo_session *r, const session_filter *f, const char *after,
                           size_t limit, repo_sessions_cb cb, void *arg)
{
    repo_session_kv *k = (repo_session_kv *)r;
    session_listing *sl = calloc(1, sizeof(*sl));
    int rc;
    if (!sl || dup_opt(&sl->channel, f->channel) < 0 ||
        dup_opt(&sl->authid, f->authid) < 0 ||
        dup_opt(&sl->after, after && *after ? after : NULL) < 0) {
        if (sl)
            listing_free(sl);
        return KV_ENOMEM;
    }
    sl->k = k;
    sl->f = (session_filter){f->active, sl->channel, sl->authid};
    sl->limit = limit;
    sl->cb = cb;
    sl->arg = arg;
    if ((rc = kv_scan(k->kv, SESS_TABLE, sessions_scanned, sl)) < 0)
        listing_free(sl);
    return rc;
}

/* ---- one ---- */

typedef struct session_lookup {
    repo_session_kv *k;
    repo_session_cb cb;
    void *arg;
} session_lookup;

static void session_got(const kv_result *res, void *arg)
{
    session_lookup sl = *(session_lookup *)arg;
    session s = {0};
    int rc = res->status;
    free(arg);
    if (rc == KV_OK) {
        rc = session_from_text(&s, res->val, res->len);
        if (rc == -2) {
            kv_report(sl.k->kv, KV_EV_BAD_RECORD, "repo: a bad session record");
            rc = KV_ENOTFOUND;
        } else if (rc == -1) {
            rc = KV_ENOMEM;
        }
    }
    sl.cb(rc, rc == 0 ? &s : NULL, sl.arg);
    session_clear(&s);
}

static int session_kv_get(repo_session *r, const char *id, repo_session_cb cb, void *arg)
{
    repo_session_kv *k = (repo_session_kv *)r;
    char key[REPO_KEY_MAX];
    session_lookup *sl = malloc(sizeof(*sl));
    int rc;
    if (!sl)
        return KV_ENOMEM;
    *sl = (session_lookup){k, cb, arg};
    if ((rc = kv_get(k->kv, repo_key(key, "ss", id, NULL), session_got, sl)) < 0)
        free(sl);
    return rc;
}

/* ---- the bound ---- */

typedef struct session_sweep {
    repo_session_kv *k;
    repo_session_bound bd; /* a copy: 'live' is 'nodes' */
    const char **nodes;    /* owned: the pointers, then the ids they point to */
    repo_swept_cb cb;
    void *arg;
} session_sweep;

typedef struct ended {
    int64_t left_at;
    const char *id; /* borrowed from the scan */
} ended;

static int ended_cmp(const void *a, const void *b)
{
    const ended *x = a, *y = b;
    if (x->left_at != y->left_at)
        return x->left_at < y->left_at ? -1 : 1;
    return strcmp(x->id, y->id);
}

static void session_drop(repo_session_kv *k, const char *id)
{
    char key[REPO_KEY_MAX];
    kv_del(k->kv, repo_key(key, "ss", id, NULL), NULL, NULL);
    kv_del(k->kv, repo_key(key, "st", id, NULL), NULL, NULL);
}

/* A session whose node is gone, being ended. */
typedef struct orphan {
    repo_session_kv *k;
    int64_t at;
} orphan;

static void orphan_got(const kv_result *res, void *arg)
{
    orphan o = *(orphan *)arg;
    session s = {0};
    free(arg);
    /* Gone meanwhile, or a bad record (reported by listings): nothing to do. */
    if (res->status != KV_OK || session_from_text(&s, res->val, res->len) < 0)
        return;
    if (!s.left_at) {
        s.left_at = o.at > s.joined_at ? o.at : s.joined_at + 1;
        session_kv_save(&o.k->base, &s);
    }
    session_clear(&s);
}

static void orphan_end(repo_session_kv *k, const char *id, int64_t at)
{
    char key[REPO_KEY_MAX];
    orphan *o = malloc(sizeof(*o));
    if (!o)
        return;
    *o = (orphan){k, at};
    if (kv_get(k->kv, repo_key(key, "ss", id, NULL), orphan_got, o) < 0)
        free(o);
}

static bool node_live(const repo_session_bound *bd, const char *node)
{
    for (size_t i = 0; i < bd->nlive; i++)
        if (strcmp(bd->live[i], node) == 0)
            return true;
    return false;
}

static void times_scanned(const kv_result *res, void *arg)
{
    session_sweep *sw = arg;
    const repo_session_bound *bd = &sw->bd;
    ended *v = NULL;
    size_t nended = 0, kept = 0, dropped = 0, orphans = 0;
    int status = res->status;

    if (status == KV_OK && res->n && !(v = malloc(res->n * sizeof(*v))))
        status = KV_ENOMEM;
    for (size_t i = 0; status == KV_OK && i < res->n; i++) {
        const kv_item *it = &res->items[i];
        long long joined, left;
        char node[CONN_ID_LEN + 1] = "";
        const char *id = key_id(it);
        int nf = sscanf(it->val, "%lld %lld %16s", &joined, &left, node);
        if (nf < 2 || !valid_conn_id(id)) {
            kv_report(sw->k->kv, KV_EV_BAD_RECORD, "repo: dropping bad session times");
            session_drop(sw->k, id);
            dropped++;
        } else if (left && left < bd->now_us - bd->retention_us) {
            session_drop(sw->k, id);
            dropped++;
        } else {
            kept++;
            if (left)
                v[nended++] = (ended){left, id};
            else if (bd->live && joined < bd->now_us - bd->grace_us && nf == 3 &&
                     !node_live(bd, node)) {
                orphan_end(sw->k, id, bd->now_us);
                orphans++;
            }
        }
    }
    if (status == KV_OK && kept > bd->max) {
        /* The oldest ended go first; the active stay, counted. */
        qsort(v, nended, sizeof(*v), ended_cmp);
        for (size_t i = 0; i < nended && kept > bd->max; i++, kept--, dropped++)
            session_drop(sw->k, v[i].id);
    }
    free(v);
    if (sw->cb)
        sw->cb(status, dropped, orphans, sw->arg);
    free(sw->nodes);
    free(sw);
}

static int session_kv_sweep(repo_session *r, const repo_session_bound *bd,
                            repo_swept_cb cb, void *arg)
{
    repo_session_kv *k = (repo_session_kv *)r;
    session_sweep *sw = calloc(1, sizeof(*sw));
    int rc = KV_ENOMEM;
    if (!sw)
        return KV_ENOMEM;
    *sw = (session_sweep){k, *bd, NULL, cb, arg};
    if (bd->live) {
        size_t n = bd->nlive ? bd->nlive : 1;
        char(*ids)[CONN_ID_LEN + 1];
        /* One block: the pointers first (aligned), then the ids. */
        if (!(sw->nodes = malloc(n * (sizeof(char *) + sizeof(*ids)))))
            goto err;
        ids = (char(*)[CONN_ID_LEN + 1])(sw->nodes + n);
        for (size_t i = 0; i < bd->nlive; i++) {
            snprintf(ids[i], sizeof(ids[i]), "%s", bd->live[i]);
            sw->nodes[i] = ids[i];
        }
        sw->bd.live = sw->nodes;
    }
    if ((rc = kv_scan(k->kv, TIMES_TABLE, times_scanned, sw)) < 0)
        goto err;
    return 0;
err:
    free(sw->nodes);
    free(sw);
    return rc;
}

static void session_kv_free(repo_session *r)
{
    free(r);
}

static const repo_session_ops session_kv_ops = {
    .save = session_kv_save,
    .list = session_kv_list,
    .get = session_kv_get,
    .sweep = session_kv_sweep,
    .free = session_kv_free,
};

repo_session *repo_session_kv_new(kv_store *kv)
{
    repo_session_kv *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    k->base.ops = &session_kv_ops;
    k->kv = kv;
    return &k->base;
}
