/* http_sessions.h - the sessions archive over HTTP: GET /sessions (one page,
 * filtered) and GET /sessions/{id}. Access is checked by the router (manage
 * on the broker); these validate the query and answer. */
#ifndef HTTP_SESSIONS_H
#define HTTP_SESSIONS_H

#include <event2/keyvalq_struct.h>

#include "src/broker/broker.h"
#include "src/http/http.h"
#include "src/http/httpd.h"

#define SESSIONS_PAGE 100
#define SESSIONS_PAGE_MAX 1000

/* GET /sessions?active=true|false&channel=&authid=&limit=&after=: answers
 * {"sessions": [...], "next": ID} ("next" only when more follow), now (400
 * on a bad query) or once the store answered. 'o' must outlive the request. */
void http_sessions_list(httpd_req *req, const http_opts *o, broker *b,
                        const struct evkeyvalq *query);

/* GET /sessions/{id}: the session, or 404 session_not_found. */
void http_session_get(httpd_req *req, const http_opts *o, broker *b, const char *id);

#endif
