/* broker_trace.c - traces: what flows through chosen channels, recorded by
 * every node that delivers it.
 *
 * A trace's definition lives in the store (repo_trace) and every node keeps a
 * copy of those still running (b->traces), told of changes as it is of a
 * channel's (broker_announce, kind "x"), and reading them all again at
 * start-up and after a lost subscription. Delivery (broker_chan_deliver, and
 * broker_conn_deliver for a message to one connection) asks
 * broker_trace_note() only while that copy is not empty: one test of a count
 * when nothing is traced. A trace ends by itself at its time; a node drops its
 * copy the next time it looks. */
#include <stdlib.h>
#include <string.h>

#include "src/base/log.h"
#include "src/base/util.h"
#include "src/broker/broker_private.h"

#define TRACE_KIND "x"

/* ---- the copy kept here ---- */

static void local_drop(broker *b, const char *id)
{
    for (size_t i = 0; i < b->ntraces; i++) {
        if (strcmp(b->traces[i]->id, id) == 0) {
            trace_free(b->traces[i]);
            b->traces[i] = b->traces[--b->ntraces];
            return;
        }
    }
}

/* Keep a copy of 't' here while it runs (replacing any with its id). */
static void local_put(broker *b, const trace *t)
{
    trace *c;
    local_drop(b, t->id);
    if (!trace_running(t, now_us()))
        return;
    if (b->ntraces >= (size_t)b->opts.trace_max) {
        log_warn("trace %s: not recorded here: %d traces already run", t->id,
                 b->opts.trace_max);
        return;
    }
    if (!b->traces && !(b->traces = calloc((size_t)b->opts.trace_max, sizeof(trace *)))) {
        log_error("trace %s: not recorded here: out of memory", t->id);
        return;
    }
    if (!(c = trace_dup(t))) {
        log_error("trace %s: not recorded here: out of memory", t->id);
        return;
    }
    b->traces[b->ntraces++] = c;
}

static void local_clear(broker *b)
{
    for (size_t i = 0; i < b->ntraces; i++)
        trace_free(b->traces[i]);
    b->ntraces = 0;
}

static void all_read(int status, trace *const *v, const uint64_t *records, size_t n,
                     void *arg)
{
    broker *b = arg;
    if (status < 0) {
        log_warn("traces: cannot read them from the store: %s", broker_strerror(status));
        return;
    }
    local_clear(b);
    for (size_t i = 0; i < n; i++)
        local_put(b, v[i]);
}

void broker_traces_reload(broker *b)
{
    int rc = repo_trace_list(b->rtraces, all_read, b);
    if (rc < 0)
        log_warn("traces: cannot read them from the store: %s", broker_strerror(rc));
}

/* A change announced by another node, being read. */
typedef struct trace_ref {
    broker *b;
    char id[TRACE_ID_MAX + 1];
} trace_ref;

static void one_read(int status, const trace *t, uint64_t records, void *arg)
{
    trace_ref *r = arg;
    broker *b = r->b;
    if (status == 0)
        local_put(b, t);
    else if (status == KV_ENOTFOUND)
        local_drop(b, r->id);
    else
        log_warn("trace %s: cannot read it from the store: %s", r->id,
                 broker_strerror(status));
    free(r);
}

void broker_trace_remote(broker *b, const char *id)
{
    trace_ref *r = malloc(sizeof(*r));
    if (!r) {
        log_error("trace %s: out of memory reading a change", id);
        return;
    }
    r->b = b;
    snprintf(r->id, sizeof(r->id), "%s", id);
    if (repo_trace_get(b->rtraces, id, one_read, r) < 0) {
        log_warn("trace %s: cannot read a change from the store", id);
        free(r);
    }
}

/* ---- recording ---- */

void broker_trace_note(broker *b, const chan *ch, const conn *target, const msg *m,
                       uint64_t streams, uint64_t connections)
{
    int64_t now = now_us();
    trace_seen sn = {
        ch->name, m, b->node_id, now, streams, connections, target ? target->id : NULL};
    char *tail = NULL;
    size_t len = 0;
    for (size_t i = 0; i < b->ntraces;) {
        trace *t = b->traces[i];
        if (!trace_running(t, now)) {
            local_drop(b, t->id); /* its time is over: the last one takes its place */
            continue;
        }
        i++;
        if (!trace_matches(t, ch->name))
            continue;
        if (!tail && !(tail = trace_record_tail(&sn, &len))) {
            log_error("trace %s: a record lost: out of memory", t->id);
            return;
        }
        if (repo_trace_record(b->rtraces, t, tail, len) < 0)
            log_warn("trace %s: a record lost: the store refused it", t->id);
    }
    free(tail);
}

/* ---- requests ---- */

/* One request on a trace, waiting for the store. */
typedef struct trace_req {
    broker *b;
    trace *t; /* the new trace, or the one answered once written; owned */
    uint64_t records;
    char id[TRACE_ID_MAX + 1];
    broker_trace_cb cb;
    void *arg;
} trace_req;

static trace_req *req_new(broker *b, const char *id, broker_trace_cb cb, void *arg)
{
    trace_req *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    *q = (trace_req){b, NULL, 0, "", cb, arg};
    snprintf(q->id, sizeof(q->id), "%s", id);
    return q;
}

static void req_free(trace_req *q)
{
    trace_free(q->t);
    free(q);
}

static void written(const kv_result *res, void *arg)
{
    trace_req *q = arg;
    q->cb(res->status, res->status == KV_OK ? q->t : NULL, q->records, q->arg);
    req_free(q);
}

/* Answer once what was written is in the store (another node asked next
 * reads it): q->t and q->records are the answer. */
static void answer_written(trace_req *q)
{
    int rc = kv_flush(q->b->kv, written, q);
    if (rc < 0) {
        q->cb(rc, NULL, 0, q->arg);
        req_free(q);
    }
}

static void start_listed(int status, trace *const *v, const uint64_t *records, size_t n,
                         void *arg)
{
    trace_req *q = arg;
    broker *b = q->b;
    for (size_t i = 0; status == 0 && i < n; i++)
        if (strcmp(v[i]->id, q->id) == 0)
            status = BROKER_EEXIST;
    if (status == 0 && n >= (size_t)b->opts.trace_max)
        status = BROKER_ELIMIT;
    if (status < 0) {
        q->cb(status, NULL, 0, q->arg);
        req_free(q);
        return;
    }
    repo_trace_save(b->rtraces, q->t);
    broker_announce(b, TRACE_KIND, q->id, NULL, "started");
    local_put(b, q->t);
    log_info("trace %s: started", q->id);
    answer_written(q);
}

int broker_trace_start(broker *b, trace *t, broker_trace_cb cb, void *arg)
{
    trace_req *q = req_new(b, t->id, cb, arg);
    int rc;
    if (!q) {
        trace_free(t);
        return BROKER_ENOMEM;
    }
    q->t = t;
    if ((rc = repo_trace_list(b->rtraces, start_listed, q)) < 0)
        req_free(q);
    return rc;
}

int broker_trace_get(broker *b, const char *id, broker_trace_cb cb, void *arg)
{
    return repo_trace_get(b->rtraces, id, cb, arg);
}

int broker_trace_list(broker *b, broker_traces_cb cb, void *arg)
{
    return repo_trace_list(b->rtraces, cb, arg);
}

int broker_trace_data(broker *b, const char *id, uint64_t after, size_t limit,
                      broker_trace_data_cb cb, void *arg)
{
    return repo_trace_data(b->rtraces, id, after, limit, cb, arg);
}

/* Stop or delete, once the trace is read. */
static void change_read(int status, const trace *t, uint64_t records, void *arg, bool del)
{
    trace_req *q = arg;
    broker *b = q->b;
    if (status == 0 && !(q->t = trace_dup(t)))
        status = BROKER_ENOMEM;
    if (status < 0) {
        q->cb(status, NULL, 0, q->arg);
        req_free(q);
        return;
    }
    q->records = records;
    if (del) {
        repo_trace_remove(b->rtraces, q->id);
        broker_announce(b, TRACE_KIND, q->id, NULL, "deleted");
        local_drop(b, q->id);
        log_info("trace %s: deleted", q->id);
    } else if (trace_running(q->t, now_us())) {
        q->t->stopped_at = now_us();
        repo_trace_save(b->rtraces, q->t);
        broker_announce(b, TRACE_KIND, q->id, NULL, "stopped");
        local_drop(b, q->id);
        log_info("trace %s: stopped", q->id);
    }
    answer_written(q);
}

static void stop_read(int status, const trace *t, uint64_t records, void *arg)
{
    change_read(status, t, records, arg, false);
}

static void delete_read(int status, const trace *t, uint64_t records, void *arg)
{
    change_read(status, t, records, arg, true);
}

static int change(broker *b, const char *id, bool del, broker_trace_cb cb, void *arg)
{
    trace_req *q = req_new(b, id, cb, arg);
    int rc;
    if (!q)
        return BROKER_ENOMEM;
    if ((rc = repo_trace_get(b->rtraces, id, del ? delete_read : stop_read, q)) < 0)
        req_free(q);
    return rc;
}

int broker_trace_stop(broker *b, const char *id, broker_trace_cb cb, void *arg)
{
    return change(b, id, false, cb, arg);
}

int broker_trace_delete(broker *b, const char *id, broker_trace_cb cb, void *arg)
{
    return change(b, id, true, cb, arg);
}

/* ---- start and stop ---- */

int broker_traces_init(broker *b)
{
    return (b->rtraces = repo_trace_kv_new(b->kv)) ? 0 : -1;
}

void broker_traces_free(broker *b)
{
    local_clear(b);
    free(b->traces);
    b->traces = NULL;
    repo_trace_free(b->rtraces);
    b->rtraces = NULL;
}
