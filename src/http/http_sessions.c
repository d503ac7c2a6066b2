/* http_sessions.c - GET /sessions and GET /sessions/{id}. */
#include "src/http/http_sessions.h"

#include <stdlib.h>
#include <string.h>
#include <event2/http.h> /* evhttp_find_header */

#include "src/base/util.h"
#include "src/domain/names.h"
#include "src/http/http_reply.h"

#define AUTHID_MAX 1024 /* bytes of an authid filter */
#define AFTER_MAX 64    /* bytes of a cursor ('after') */

static void listed(int status, const session *v, size_t n, bool more, void *arg)
{
    http_held *h = arg;
    json_t *arr, *o;
    if (!(o = http_held_listing(h, status, "sessions", &arr)))
        goto out;
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, session_to_json(&v[i]));
    if (more && n)
        json_object_set_new(o, "next", json_string(v[n - 1].id));
    http_json(h->req, h->o, 200, o);
out:
    free(h);
}

void http_sessions_list(httpd_req *req, const http_opts *o, broker *b,
                        const struct evkeyvalq *query)
{
    struct evkeyvalq *q = (struct evkeyvalq *)query; /* evhttp is not const-correct */
    const char *active = evhttp_find_header(q, "active");
    const char *channel = evhttp_find_header(q, "channel");
    const char *authid = evhttp_find_header(q, "authid");
    const char *limit_s = evhttp_find_header(q, "limit");
    const char *after = evhttp_find_header(q, "after");
    session_filter f = {-1, channel, authid};
    uint64_t limit = SESSIONS_PAGE;
    http_held *h;
    int rc;

    if (active && strcmp(active, "true") != 0 && strcmp(active, "false") != 0) {
        http_error(req, o, 400, "invalid_query", "'active' must be true or false");
        return;
    }
    if (active)
        f.active = strcmp(active, "true") == 0;
    if (channel && !valid_channel_name(channel, strlen(channel))) {
        http_error(req, o, 400, "invalid_query",
                   "'channel' must be a channel name: 1 to 200 characters of A-Z a-z "
                   "0-9 _ . : -");
        return;
    }
    if (authid && (!*authid || strlen(authid) > AUTHID_MAX)) {
        http_error(req, o, 400, "invalid_query", "'authid' must be 1 to %d bytes",
                   AUTHID_MAX);
        return;
    }
    if (limit_s &&
        (parse_u64(limit_s, &limit) < 0 || limit < 1 || limit > SESSIONS_PAGE_MAX)) {
        http_error(req, o, 400, "invalid_query",
                   "'limit' must be an integer from 1 to %d", SESSIONS_PAGE_MAX);
        return;
    }
    if (after && strlen(after) > AFTER_MAX) {
        http_error(req, o, 400, "invalid_query",
                   "'after' must be the 'next' of the page before (at most %d bytes)",
                   AFTER_MAX);
        return;
    }
    if (!(h = http_held_new(req, o)))
        return;
    if ((rc = broker_session_list(b, &f, after, (size_t)limit, listed, h)) < 0)
        http_held_failed(h, rc);
}

static void got(int status, const session *s, void *arg)
{
    http_held *h = arg;
    if (!http_held_resume(h))
        goto out;
    if (status == KV_ENOTFOUND)
        http_error(h->req, h->o, 404, "session_not_found", "there is no such session");
    else if (status < 0)
        http_error(h->req, h->o, 503, "store_unavailable", "the store failed: %s",
                   broker_strerror(status));
    else
        http_json(h->req, h->o, 200, session_to_json(s));
out:
    free(h);
}

void http_session_get(httpd_req *req, const http_opts *o, broker *b, const char *id)
{
    http_held *h;
    int rc;
    if (!valid_conn_id(id)) {
        http_error(req, o, 404, "session_not_found", "there is no such session");
        return;
    }
    if (!(h = http_held_new(req, o)))
        return;
    if ((rc = broker_session_get(b, id, got, h)) < 0)
        http_held_failed(h, rc);
}
