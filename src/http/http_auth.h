/* http_auth.h - access control on HTTP: the credentials of a request read
 * from its headers, cookie and query (what auth.h then checks), and the
 * answers that refuse it (RFC 6750: 401 with WWW-Authenticate, or 403). */
#ifndef HTTP_AUTH_H
#define HTTP_AUTH_H

#include "src/auth/auth.h"
#include "src/http/http.h"
#include "src/http/httpd.h"

struct evkeyvalq;

/* Who sends 'req': auth_identify() on its Authorization (Bearer), X-API-Key,
 * o->auth_cookie cookie and access_token query parameter ('query', parsed).
 * Returns what auth_identify() returns; a malformed Authorization header is
 * AUTH_EINVALID. '*id' is the caller's to identity_clear(). */
int http_auth_identify(httpd_req *req, const http_opts *o, const struct evkeyvalq *query,
                       identity *id, const char **why);

/* Refuse 'req': 401 unauthorized (no identity: 'rc' AUTH_ANONYMOUS with no
 * anonymous right, or AUTH_EINVALID with 'why') with a WWW-Authenticate
 * challenge, or 403 forbidden (an identity without the right). */
void http_auth_refuse(httpd_req *req, const http_opts *o, int rc, const char *why);

#endif
