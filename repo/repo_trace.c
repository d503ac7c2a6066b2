/* repo_trace.c - traces in the store: a definition (tr/{id}), the count of
 * records every node took (tc/{id}) and the records themselves (td/{id}, a
 * log numbered by that count, so pages go on from a record's number). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repo/repo_private.h"

#define DEF_TABLE "tr/"
#define COUNT_TABLE "tc/"

typedef struct repo_trace_kv {
    repo_trace base;
    kv_store *kv;
} repo_trace_kv;

/* A read in flight: the trace's id, where the answer goes, and the definition
 * once read. */
typedef struct trace_read {
    repo_trace_kv *k;
    char id[TRACE_ID_MAX + 1];
    trace *t;
    uint64_t after;
    size_t limit;
    union {
        repo_trace_cb one;
        repo_traces_cb all;
        repo_trace_data_cb data;
    } cb;
    void *arg;
    /* list: the definitions scanned, then their counts */
    trace **v;
    uint64_t *records;
    size_t n;
} trace_read;

static void read_free(trace_read *rd)
{
    trace_free(rd->t);
    for (size_t i = 0; i < rd->n; i++)
        trace_free(rd->v[i]);
    free(rd->v);
    free(rd->records);
    free(rd);
}

static trace_read *read_new(repo_trace *r, const char *id, void *arg)
{
    trace_read *rd = calloc(1, sizeof(*rd));
    if (!rd)
        return NULL;
    rd->k = (repo_trace_kv *)r;
    if (id)
        snprintf(rd->id, sizeof(rd->id), "%s", id);
    rd->arg = arg;
    return rd;
}

/* A count as stored ("" or missing: 0). */
static uint64_t count_of(const char *val, size_t len)
{
    char buf[24];
    if (!val || !len || len >= sizeof(buf))
        return 0;
    memcpy(buf, val, len);
    buf[len] = '\0';
    return strtoull(buf, NULL, 10);
}

static void trace_kv_save(repo_trace *r, const trace *t)
{
    repo_trace_kv *k = (repo_trace_kv *)r;
    char key[REPO_KEY_MAX];
    char *rec = trace_to_text(t);
    if (!rec) {
        kv_report(k->kv, KV_EV_FAILED, "repo: out of memory saving trace %s", t->id);
        return;
    }
    kv_set(k->kv, repo_key(key, "tr", t->id, NULL), rec, strlen(rec), NULL, NULL);
    free(rec);
}

/* ---- one ---- */

static void count_got(const kv_result *res, void *arg)
{
    trace_read *rd = arg;
    int status = res->status == KV_ENOTFOUND ? KV_OK : res->status;
    uint64_t n = status == KV_OK ? count_of(res->val, res->len) : 0;
    rd->cb.one(status, status == KV_OK ? rd->t : NULL, n, rd->arg);
    read_free(rd);
}

static void def_got(const kv_result *res, void *arg)
{
    trace_read *rd = arg;
    char key[REPO_KEY_MAX];
    int status = res->status;
    if (status == KV_OK && !(rd->t = trace_from_text(res->val, res->len))) {
        kv_report(rd->k->kv, KV_EV_BAD_RECORD, "repo: a bad trace record");
        status = KV_ENOTFOUND;
    }
    if (status == KV_OK && (status = kv_get(rd->k->kv, repo_key(key, "tc", rd->id, NULL),
                                            count_got, rd)) == KV_OK)
        return;
    rd->cb.one(status, NULL, 0, rd->arg);
    read_free(rd);
}

/* Read the definition of rd->id, then go on in 'then'. */
static int def_read(trace_read *rd, kv_cb then)
{
    char key[REPO_KEY_MAX];
    int rc = kv_get(rd->k->kv, repo_key(key, "tr", rd->id, NULL), then, rd);
    if (rc < 0)
        read_free(rd);
    return rc;
}

static int trace_kv_get(repo_trace *r, const char *id, repo_trace_cb cb, void *arg)
{
    trace_read *rd = read_new(r, id, arg);
    if (!rd)
        return KV_ENOMEM;
    rd->cb.one = cb;
    return def_read(rd, def_got);
}

/* ---- all ---- */

/* The id of a scanned key "table/id" (borrowed). */
static const char *key_id(const kv_item *it)
{
    const char *slash = strrchr(it->key, '/');
    return slash ? slash + 1 : it->key;
}

static void counts_scanned(const kv_result *res, void *arg)
{
    trace_read *rd = arg;
    /* Both scans come in key order: one pass matches them. */
    for (size_t i = 0, j = 0; res->status == KV_OK && i < res->n && j < rd->n;) {
        int c = strcmp(key_id(&res->items[i]), rd->v[j]->id);
        if (c == 0)
            rd->records[j] = count_of(res->items[i].val, res->items[i].vlen);
        i += c <= 0;
        j += c >= 0;
    }
    rd->cb.all(res->status, res->status == KV_OK ? rd->v : NULL, rd->records,
               res->status == KV_OK ? rd->n : 0, rd->arg);
    read_free(rd);
}

static void defs_scanned(const kv_result *res, void *arg)
{
    trace_read *rd = arg;
    int status = res->status;
    if (status == KV_OK && res->n &&
        (!(rd->v = calloc(res->n, sizeof(*rd->v))) ||
         !(rd->records = calloc(res->n, sizeof(*rd->records)))))
        status = KV_ENOMEM;
    for (size_t i = 0; status == KV_OK && i < res->n; i++) {
        trace *t = trace_from_text(res->items[i].val, res->items[i].vlen);
        if (!t || strcmp(t->id, key_id(&res->items[i])) != 0) {
            trace_free(t);
            kv_report(rd->k->kv, KV_EV_BAD_RECORD, "repo: skipping a bad trace record");
            continue;
        }
        rd->v[rd->n++] = t;
    }
    if (status == KV_OK &&
        (status = kv_scan(rd->k->kv, COUNT_TABLE, counts_scanned, rd)) == KV_OK)
        return;
    rd->cb.all(status, NULL, NULL, 0, rd->arg);
    read_free(rd);
}

static int trace_kv_list(repo_trace *r, repo_traces_cb cb, void *arg)
{
    trace_read *rd = read_new(r, NULL, arg);
    int rc;
    if (!rd)
        return KV_ENOMEM;
    rd->cb.all = cb;
    if ((rc = kv_scan(rd->k->kv, DEF_TABLE, defs_scanned, rd)) < 0)
        read_free(rd);
    return rc;
}

/* ---- records ---- */

static int trace_kv_record(repo_trace *r, const trace *t, const char *tail, size_t len)
{
    repo_trace_kv *k = (repo_trace_kv *)r;
    char counter[REPO_KEY_MAX], log[REPO_KEY_MAX], none[REPO_KEY_MAX + 1];
    /* A log with readers is trimmed roughly (whole nodes on Redis); one whose
     * readers' table is empty, exactly: a record has no reader, so name a
     * table nothing writes, and the log keeps exactly its 'limit' newest. */
    snprintf(none, sizeof(none), "%s/", repo_key(log, "tn", t->id, NULL));
    kv_append_args a = {
        .counter = repo_key(counter, "tc", t->id, NULL),
        .head = TRACE_RECORD_HEAD,
        .head_len = sizeof(TRACE_RECORD_HEAD) - 1,
        .tail = tail,
        .tail_len = len,
        .log = repo_key(log, "td", t->id, NULL),
        .log_max = (size_t)t->limit,
        .log_readers = none,
        .log_idle = (size_t)t->limit,
    };
    return kv_append(k->kv, &a, NULL, NULL);
}

static void page_read(const kv_result *res, void *arg)
{
    trace_read *rd = arg;
    rd->cb.data(res->status, res->status == KV_OK ? res->items : NULL,
                res->status == KV_OK ? res->n : 0, rd->arg);
    read_free(rd);
}

/* The definition is there: read the page. */
static void data_def_got(const kv_result *res, void *arg)
{
    trace_read *rd = arg;
    char key[REPO_KEY_MAX];
    int status = res->status;
    if (status == KV_OK &&
        (status = kv_log_range(rd->k->kv, repo_key(key, "td", rd->id, NULL),
                               (long long)rd->after, rd->limit, 0, page_read, rd)) ==
            KV_OK)
        return;
    rd->cb.data(status, NULL, 0, rd->arg);
    read_free(rd);
}

static int trace_kv_data(repo_trace *r, const char *id, uint64_t after, size_t limit,
                         repo_trace_data_cb cb, void *arg)
{
    trace_read *rd = read_new(r, id, arg);
    if (!rd)
        return KV_ENOMEM;
    rd->cb.data = cb;
    rd->after = after;
    rd->limit = limit;
    return def_read(rd, data_def_got);
}

static void trace_kv_remove(repo_trace *r, const char *id)
{
    repo_trace_kv *k = (repo_trace_kv *)r;
    char key[REPO_KEY_MAX];
    kv_del(k->kv, repo_key(key, "tr", id, NULL), NULL, NULL);
    kv_del(k->kv, repo_key(key, "tc", id, NULL), NULL, NULL);
    kv_del(k->kv, repo_key(key, "td", id, NULL), NULL, NULL);
}

static void trace_kv_free(repo_trace *r)
{
    free(r);
}

static const repo_trace_ops trace_kv_ops = {
    .save = trace_kv_save,
    .get = trace_kv_get,
    .list = trace_kv_list,
    .record = trace_kv_record,
    .data = trace_kv_data,
    .remove = trace_kv_remove,
    .free = trace_kv_free,
};

repo_trace *repo_trace_kv_new(kv_store *kv)
{
    repo_trace_kv *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    k->base.ops = &trace_kv_ops;
    k->kv = kv;
    return &k->base;
}
