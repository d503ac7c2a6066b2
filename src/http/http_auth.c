/* http_auth.c - credentials out of a request, and refusals. */
#include "src/http/http_auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <event2/http.h> /* only its query-string helpers */
#include <event2/keyvalq_struct.h>

#include "src/base/util.h"
#include "src/http/http_reply.h"

#define COOKIE_VALUE_MAX 65536

/* The value of cookie 'name' in a Cookie header ("a=1; b=2"), copied into
 * 'out' (room 'outlen'); NULL when absent or too long. The first wins. */
static const char *cookie_value(const char *header, const char *name, char *out,
                                size_t outlen)
{
    size_t nlen = strlen(name);
    for (const char *p = header; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nlen && p[nlen] == '=' && strncmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1;
            size_t vlen = len - nlen - 1;
            while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
                vlen--;
            if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') /* RFC 6265 DQUOTEs */
                v++, vlen -= 2;
            if (vlen == 0 || vlen >= outlen)
                return NULL;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return out;
        }
        p = end;
    }
    return NULL;
}

int http_auth_identify(httpd_req *req, const http_opts *o, const struct evkeyvalq *query,
                       identity *id, const char **why)
{
    static _Thread_local char cookie_buf[COOKIE_VALUE_MAX]; /* one per loop's thread */
    const char *authz = httpd_header(req, "Authorization");
    const char *cookie = httpd_header(req, "Cookie");
    auth_creds cr = {0};

    if (authz) {
        if (strncasecmp(authz, "Bearer ", 7) != 0) {
            identity_clear(id);
            *why = "the Authorization header must be Bearer credentials";
            return AUTH_EINVALID;
        }
        cr.bearer = authz + 7;
        while (*cr.bearer == ' ')
            cr.bearer++;
    }
    cr.apikey = httpd_header(req, "X-API-Key");
    if (cookie && o->auth_cookie)
        cr.cookie = cookie_value(cookie, o->auth_cookie, cookie_buf, sizeof(cookie_buf));
    cr.query = evhttp_find_header(query, "access_token");
    return auth_identify(o->auth, &cr, now_us() / 1000000, id, why);
}

void http_auth_refuse(httpd_req *req, const http_opts *o, int rc, const char *why)
{
    char challenge[400];
    if (rc == AUTH_OK) {
        http_error(req, o, 403, "forbidden", "%s",
                   why ? why : "this identity may not do that here");
        return;
    }
    if (rc == AUTH_EINVALID) {
        /* 'why' is static ASCII without quotes (jwt_strerror, auth.c). */
        snprintf(challenge, sizeof(challenge),
                 "Bearer realm=\"ssebroker\", error=\"invalid_token\", "
                 "error_description=\"%s\"",
                 why ? why : "invalid credentials");
    } else {
        snprintf(challenge, sizeof(challenge), "Bearer realm=\"ssebroker\"");
    }
    httpd_add_header(req, "WWW-Authenticate", challenge);
    http_error(req, o, 401, "unauthorized", "%s",
               rc == AUTH_EINVALID ? (why ? why : "invalid credentials")
                                   : "credentials are needed for this");
}
