/* httpd_parse.c - the HTTP/1.1 request-head parser (see httpd_parse_head in
 * httpd.h): the request line and header fields, parsed in place, strictly
 * (every line ends in CRLF).
 * No state, no allocation: it is fuzzed directly (tests/fuzz/fuzz_head.c). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "src/base/util.h"
#include "src/http/httpd.h"

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int method_of(const char *m)
{
    static const struct {
        const char *name;
        int m;
    } names[] = {{"GET", HTTPD_GET},       {"HEAD", HTTPD_HEAD},
                 {"POST", HTTPD_POST},     {"PUT", HTTPD_PUT},
                 {"DELETE", HTTPD_DELETE}, {"OPTIONS", HTTPD_OPTIONS}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(m, names[i].name) == 0)
            return names[i].m;
    return HTTPD_OTHER;
}

/* Does the comma-separated list 'v' hold 'token' (case-insensitive)? */
static int has_token(const char *v, const char *token)
{
    size_t tl = strlen(token);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *e = v;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - v) == tl && strncasecmp(v, token, tl) == 0)
            return 1;
        v = e;
    }
    return 0;
}

#define FAIL(st, c, m)                                                                   \
    do {                                                                                 \
        *code = (c);                                                                     \
        *message = (m);                                                                  \
        return (st);                                                                     \
    } while (0)

/* The request line, NUL-terminated, split in place. */
static int parse_request_line(char *line, httpd_head *h, const char **code,
                              const char **message)
{
    char *sp1 = strchr(line, ' '), *sp2, *target, *q;
    if (!sp1 || sp1 == line || sp1 - line > 32)
        FAIL(400, "invalid_request", "the request line must be METHOD TARGET HTTP/1.x");
    *sp1 = '\0';
    for (char *p = line; *p; p++)
        if (!is_tchar((unsigned char)*p))
            FAIL(400, "invalid_request", "the method is not a token");
    h->method = method_of(line);
    target = sp1 + 1;
    if (!(sp2 = strchr(target, ' ')) || sp2 == target)
        FAIL(400, "invalid_request", "the request line must be METHOD TARGET HTTP/1.x");
    *sp2 = '\0';
    const char *v = sp2 + 1;
    if (strncmp(v, "HTTP/", 5) != 0 || !(v[5] >= '0' && v[5] <= '9') || v[6] != '.' ||
        !(v[7] >= '0' && v[7] <= '9') || v[8])
        FAIL(400, "invalid_request", "the request line must be METHOD TARGET HTTP/1.x");
    if (v[5] != '1')
        FAIL(505, "http_version_not_supported", "only HTTP/1.0 and HTTP/1.1 are served");
    h->minor = v[7] == '0' ? 0 : 1; /* 1.x, x > 1: served as 1.1 (RFC 9110 2.5) */
    for (char *p = target; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            FAIL(400, "invalid_request", "the request target holds a bad character");
    /* absolute-form: keep the path; authority-form and others are refused. */
    if (strncasecmp(target, "http://", 7) == 0 ||
        strncasecmp(target, "https://", 8) == 0) {
        char *slash = strchr(strchr(target, ':') + 3, '/');
        target = slash ? slash : (char *)"/";
    }
    if (*target != '/' && !(h->method == HTTPD_OPTIONS && strcmp(target, "*") == 0))
        FAIL(400, "invalid_request", "the request target must be a path");
    if ((q = strchr(target, '?'))) {
        *q = '\0';
        h->query = q + 1;
    }
    h->path = target;
    return 0;
}

static int parse_field(httpd_head *h, const char *name, const char *value,
                       const char **code, const char **message)
{
    if (strcasecmp(name, "Content-Length") == 0) {
        uint64_t n;
        if (parse_u64(value, &n) < 0 || n > INT64_MAX)
            FAIL(400, "invalid_request", "Content-Length must be a decimal number");
        if (h->content_length >= 0 && (uint64_t)h->content_length != n)
            FAIL(400, "invalid_request", "conflicting Content-Length headers");
        h->content_length = (int64_t)n;
    } else if (strcasecmp(name, "Transfer-Encoding") == 0) {
        /* HTTP/1.0 has no transfer codings: its framing is faulty (RFC 9112
         * 6.1), and a hop that reads it as 1.0 frames it otherwise. */
        if (h->minor == 0)
            FAIL(400, "invalid_request", "Transfer-Encoding in an HTTP/1.0 request");
        if (strcasecmp(value, "chunked") != 0 || h->chunked)
            FAIL(501, "not_implemented", "only the chunked transfer coding is served");
        h->chunked = true;
    } else if (strcasecmp(name, "Connection") == 0) {
        if (has_token(value, "close"))
            h->keepalive = false;
        else if (has_token(value, "keep-alive"))
            h->keepalive = true;
    } else if (strcasecmp(name, "Expect") == 0) {
        if (strcasecmp(value, "100-continue") != 0)
            FAIL(417, "expectation_failed", "only Expect: 100-continue is understood");
        h->expect_continue = h->minor >= 1;
    }
    return 0;
}

int httpd_parse_head(char *buf, size_t len, httpd_head *h, const char **code,
                     const char **message)
{
    httpd_field *fields = h->fields;
    char *line = buf, *end = buf + len;
    int first = 1, done = 0, rc;

    memset(h, 0, sizeof(*h));
    h->fields = fields;
    h->content_length = -1;
    while (line < end) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        char *e = nl;
        if (!nl)
            break; /* a line without its end: the head is incomplete */
        /* CRLF only. RFC 9112 2.2 allows taking a bare LF, but a proxy in
         * front that does not would see other lines, other fields, another
         * framing than we do: that difference is how requests are smuggled.
         * Every client sends CRLF. */
        if (e == line || e[-1] != '\r')
            FAIL(400, "invalid_request",
                 "a line of the request head ends in LF, not CRLF");
        e--;
        *e = '\0';
        for (char *p = line; p < e; p++) {
            unsigned char c = (unsigned char)*p;
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                FAIL(400, "invalid_request", "a control character in the request head");
        }
        if (first) {
            if ((rc = parse_request_line(line, h, code, message)))
                return rc;
            h->keepalive = h->minor >= 1;
            first = 0;
        } else if (e == line) {
            done = 1; /* the empty line: end of the head */
            break;
        } else {
            char *colon = strchr(line, ':'), *v, *ve;
            if (*line == ' ' || *line == '\t')
                FAIL(400, "invalid_request", "folded header lines are not accepted");
            if (!colon || colon == line)
                FAIL(400, "invalid_request", "a header line without a name and a colon");
            *colon = '\0';
            for (char *p = line; *p; p++)
                if (!is_tchar((unsigned char)*p))
                    FAIL(400, "invalid_request", "a header name holds a bad character");
            for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
                ;
            for (ve = e; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--)
                ;
            *ve = '\0';
            if (h->nfields == HTTPD_MAX_HEADER_LINES)
                FAIL(431, "headers_too_large", "too many header lines");
            h->fields[h->nfields++] = (httpd_field){line, v};
            if ((rc = parse_field(h, line, v, code, message)))
                return rc;
        }
        line = nl + 1;
    }
    if (!done)
        FAIL(400, "invalid_request", "the request head does not end with an empty line");
    if (h->chunked && h->content_length >= 0)
        FAIL(400, "invalid_request", "both Content-Length and Transfer-Encoding");
    return 0;
}

#undef FAIL
