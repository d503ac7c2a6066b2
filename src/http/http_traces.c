/* http_traces.c - the trace routes (see http_traces.h). */
#include "src/http/http_traces.h"

#include <stdlib.h>
#include <string.h>
#include <event2/http.h> /* evhttp_find_header */

#include "src/base/util.h"
#include "src/http/http_reply.h"

static void not_found(httpd_req *req, const http_opts *o)
{
    http_error(req, o, 404, "trace_not_found", "there is no such trace");
}

/* Answer 'status' for a trace: the trace as JSON, or the error it means. */
static void answer(http_held *h, int ok_status, int status, const trace *t,
                   uint64_t records)
{
    if (status == KV_ENOTFOUND)
        not_found(h->req, h->o);
    else if (status == BROKER_EEXIST)
        http_error(h->req, h->o, 409, "trace_exists", "a trace with that id exists");
    else if (status == BROKER_ELIMIT)
        http_error(h->req, h->o, 409, "too_many_traces",
                   "traces.max traces are stored: delete one first");
    else if (status == BROKER_ENOMEM)
        http_error(h->req, h->o, 503, "out_of_memory", "out of memory");
    else if (status < 0)
        http_error(h->req, h->o, 503, "store_unavailable", "the store failed: %s",
                   broker_strerror(status));
    else if (ok_status == 204)
        http_json(h->req, h->o, 204, NULL);
    else
        http_json(h->req, h->o, ok_status, trace_to_json(t, now_us(), records));
}

#define ANSWER_CB(name, ok_status)                                                       \
    static void name(int status, const trace *t, uint64_t records, void *arg)            \
    {                                                                                    \
        http_held *h = arg;                                                              \
        if (http_held_resume(h))                                                         \
            answer(h, ok_status, status, t, records);                                    \
        free(h);                                                                         \
    }
ANSWER_CB(started, 201)
ANSWER_CB(got, 200)
ANSWER_CB(deleted, 204)

void http_trace_start(httpd_req *req, const http_opts *o, broker *b, const char *body,
                      size_t len)
{
    json_error_t jerr;
    json_t *j;
    const char *code = NULL;
    char err[200];
    trace *t;
    http_held *h;
    int rc;

    if (len > o->max_body) {
        http_error(req, o, 413, "body_too_large", "the request body is over the limit");
        return;
    }
    if (!(j = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr))) {
        http_error(req, o, 400, "invalid_json", "invalid JSON: %s", jerr.text);
        return;
    }
    t = trace_from_request(j, &broker_options(b)->trace_bounds, now_us(), &code, err,
                           sizeof(err));
    json_decref(j);
    if (!t) {
        http_error(req, o, strcmp(code, "out_of_memory") == 0 ? 503 : 400, code, "%s",
                   err);
        return;
    }
    if (!(h = http_held_new(req, o))) {
        trace_free(t);
        return;
    }
    if ((rc = broker_trace_start(b, t, started, h)) < 0)
        http_held_failed(h, rc);
}

static void listed(int status, trace *const *v, const uint64_t *records, size_t n,
                   void *arg)
{
    http_held *h = arg;
    int64_t now = now_us();
    json_t *arr, *o;
    if (!(o = http_held_listing(h, status, "traces", &arr)))
        goto out;
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, trace_to_json(v[i], now, records[i]));
    http_json(h->req, h->o, 200, o);
out:
    free(h);
}

void http_traces_list(httpd_req *req, const http_opts *o, broker *b)
{
    http_held *h = http_held_new(req, o);
    int rc;
    if (h && (rc = broker_trace_list(b, listed, h)) < 0)
        http_held_failed(h, rc);
}

void http_trace_one(httpd_req *req, const http_opts *o, broker *b, const char *id,
                    bool stop, bool del)
{
    http_held *h;
    int rc;
    if (!trace_id_valid(id, strlen(id))) {
        not_found(req, o);
        return;
    }
    if (!(h = http_held_new(req, o)))
        return;
    if (del)
        rc = broker_trace_delete(b, id, deleted, h);
    else if (stop)
        rc = broker_trace_stop(b, id, got, h);
    else
        rc = broker_trace_get(b, id, got, h);
    if (rc < 0)
        http_held_failed(h, rc);
}

/* A page of data being read: 'limit' was asked for, to tell a full page. */
typedef struct data_page {
    http_held *h;
    size_t limit;
} data_page;

static void paged(int status, const kv_item *items, size_t n, void *arg)
{
    data_page *p = arg;
    http_held *h = p->h;
    json_t *arr, *o;
    if (status == KV_ENOTFOUND) {
        if (http_held_resume(h))
            not_found(h->req, h->o);
        goto out;
    }
    if (!(o = http_held_listing(h, status, "records", &arr)))
        goto out;
    for (size_t i = 0; i < n; i++) {
        json_t *rec = json_loadb(items[i].val, items[i].vlen, 0, NULL);
        if (rec) /* written by us: only a lack of memory fails here */
            json_array_append_new(arr, rec);
    }
    if (n && n >= p->limit)
        json_object_set_new(o, "next", json_integer((json_int_t)items[n - 1].id));
    http_json(h->req, h->o, 200, o);
out:
    free(h);
    free(p);
}

void http_trace_data(httpd_req *req, const http_opts *o, broker *b, const char *id,
                     const struct evkeyvalq *query)
{
    struct evkeyvalq *q = (struct evkeyvalq *)query; /* evhttp is not const-correct */
    const char *limit_s = evhttp_find_header(q, "limit");
    const char *after_s = evhttp_find_header(q, "after");
    uint64_t limit = TRACE_PAGE, after = 0;
    data_page *p;
    int rc;

    if (!trace_id_valid(id, strlen(id))) {
        not_found(req, o);
        return;
    }
    if (limit_s &&
        (parse_u64(limit_s, &limit) < 0 || limit < 1 || limit > TRACE_PAGE_MAX)) {
        http_error(req, o, 400, "invalid_query",
                   "'limit' must be an integer from 1 to %d", TRACE_PAGE_MAX);
        return;
    }
    if (after_s && (parse_u64(after_s, &after) < 0 || after > (uint64_t)INT64_MAX)) {
        http_error(req, o, 400, "invalid_query",
                   "'after' must be the 'next' of the page before (a record's seq)");
        return;
    }
    if (!(p = malloc(sizeof(*p)))) {
        http_error(req, o, 503, "out_of_memory", "out of memory");
        return;
    }
    p->limit = (size_t)limit;
    if (!(p->h = http_held_new(req, o))) {
        free(p);
        return;
    }
    if ((rc = broker_trace_data(b, id, after, (size_t)limit, paged, p)) < 0) {
        http_held_failed(p->h, rc);
        free(p);
    }
}
