/* fuzz_hquery.c - libFuzzer target for history queries (src/domain/hquery.c):
 * their parameters and the cursor parser.
 *
 * The input is lines "key=value" (parameters, in order; the first line
 * without '=' is a cursor to parse, and ends the input). Parameters are fed
 * to hquery_param and the query finished as GET /history does; then, for a
 * query that finished:
 * 1. the cursor line parses only if it is exactly what hquery_cursor writes
 *    for the key and id it gives (lowercase hex, the query's own check), and
 * 2. a cursor made for a key and id taken from the input reads back to them,
 *    and one changed character makes it fail.
 * Any disagreement aborts. */
#include "src/domain/hquery.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_hquery: check failed: %s (line %d)\n", #cond,          \
                    __LINE__);                                                           \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#define LINES_MAX 200

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t size)
{
    char *text = malloc(size + 1), *lines[LINES_MAX], *cursor = NULL;
    size_t n = 0;
    hquery q;
    const char *code;
    char err[256];
    int64_t key;
    uint64_t id;

    if (!text)
        return 0;
    memcpy(text, buf, size);
    text[size] = '\0';
    for (char *p = text; p && n < LINES_MAX;) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        if (!strchr(p, '=')) {
            cursor = p;
            break;
        }
        lines[n++] = p;
        p = nl ? nl + 1 : NULL;
    }
    hquery_init(&q);
    bool latest = size && (buf[0] & 1);
    int rc = 0;
    for (size_t i = 0; i < n && rc >= 0; i++) {
        char *eq = strchr(lines[i], '=');
        *eq = '\0';
        rc = hquery_param(&q, latest, lines[i], eq + 1, &code, err, sizeof(err));
        CHECK(rc >= -1 && rc <= 1);
        CHECK(rc >= 0 || (code && err[0]));
    }
    if (rc >= 0 && hquery_finish(&q, 1000, &code, err, sizeof(err)) == 0) {
        CHECK(q.nchans > 0 && q.limit >= 1 && q.limit <= 1000);
        char made[HQUERY_CURSOR_LEN + 1];
        /* 1. */
        if (cursor && hquery_cursor_parse(&q, cursor, strlen(cursor), &key, &id) == 0) {
            hquery_cursor(&q, key, id, made);
            CHECK(strcmp(made, cursor) == 0);
        }
        /* 2. */
        key = 0;
        id = 0;
        for (size_t i = 0; i < size && i < 16; i++) {
            if (i < 8)
                key = (int64_t)((uint64_t)key << 8 | buf[i]);
            else
                id = id << 8 | buf[i];
        }
        int64_t k2;
        uint64_t i2;
        hquery_cursor(&q, key, id, made);
        CHECK(strlen(made) == HQUERY_CURSOR_LEN);
        CHECK(hquery_cursor_parse(&q, made, strlen(made), &k2, &i2) == 0 && k2 == key &&
              i2 == id);
        size_t at = size ? buf[size - 1] % HQUERY_CURSOR_LEN : 0;
        made[at] = made[at] == '0' ? '1' : '0';
        CHECK(hquery_cursor_parse(&q, made, strlen(made), &k2, &i2) < 0);
    }
    free(text);
    return 0;
}
