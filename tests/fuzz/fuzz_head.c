/* fuzz_head.c - libFuzzer target for httpd_parse_head, the HTTP request-head
 * parser of src/httpd.c, called directly (fuzz_http reaches it over a socket,
 * a thousand times slower).
 *
 * The input is copied into a buffer of its exact size and parsed in place.
 * On success the result is checked against the contract: the path starts
 * with '/' (or is "*" for OPTIONS), every field name is a non-empty token and
 * no value holds CR, LF or NUL, the version is 1.0 or 1.1, the field count is
 * bounded, Content-Length and chunked never come together, HTTP/1.0 is never
 * chunked, and every line of the head up to its empty line ends in CRLF. On
 * failure the status is a 4xx/5xx with a code and message. Any violation
 * aborts. */
#include "src/http/httpd.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_head: check failed: %s (line %d)\n", #cond, __LINE__); \
            abort();                                                                     \
        }                                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static httpd_field fields[HTTPD_MAX_HEADER_LINES];
    char *buf = malloc(size ? size : 1);
    const char *code = NULL, *message = NULL;
    httpd_head h = {.fields = fields};

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    int status = httpd_parse_head(buf, size, &h, &code, &message);
    if (status) {
        CHECK(status >= 400 && status <= 599);
        CHECK(code && *code && message && *message);
    } else {
        CHECK(h.path &&
              (h.path[0] == '/' || (h.method == HTTPD_OPTIONS && !strcmp(h.path, "*"))));
        CHECK(!strpbrk(h.path, " \r\n?"));
        CHECK(h.minor == 0 || h.minor == 1);
        CHECK(h.nfields <= HTTPD_MAX_HEADER_LINES);
        CHECK(!(h.chunked && h.content_length >= 0));
        CHECK(!(h.chunked && h.minor == 0));
        /* The head ends at the first empty line; no LF before it is bare. */
        for (size_t i = 0; i < size; i++) {
            if (data[i] != '\n')
                continue;
            CHECK(i > 0 && data[i - 1] == '\r');
            if (i >= 3 && data[i - 2] == '\n')
                break; /* CRLF CRLF: the end of the head */
        }
        for (size_t i = 0; i < h.nfields; i++) {
            CHECK(h.fields[i].name[0] && !strpbrk(h.fields[i].name, " \t:\r\n"));
            CHECK(!strpbrk(h.fields[i].value, "\r\n"));
        }
    }
    free(buf);
    return 0;
}
