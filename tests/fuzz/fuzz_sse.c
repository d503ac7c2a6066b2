/* fuzz_sse.c - libFuzzer target for the SSE frame encoder (src/sse.c).
 *
 * Input: one flag byte, then "id NUL event NUL retry NUL data". Flag bit 0
 * keeps the id, bit 1 the event, bit 2 passes data as NULL; the retry part is
 * decimal text (empty or negative: no retry line). Bytes an id or event may
 * not hold are replaced so that every input yields a frame. The frame must be
 * exactly what sse.h describes; any difference aborts. */
#include "src/domain/sse.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_sse: check failed: %s (line %d)\n", #cond, __LINE__);  \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* The next NUL-terminated part of [*p, end): a malloc'd copy. */
static char *next_part(const uint8_t **p, const uint8_t *end, size_t *len)
{
    const uint8_t *nul = memchr(*p, '\0', (size_t)(end - *p));
    size_t n = nul ? (size_t)(nul - *p) : (size_t)(end - *p);
    char *s = malloc(n + 1);

    if (!s)
        abort();
    memcpy(s, *p, n);
    s[n] = '\0';
    *p = nul ? nul + 1 : end;
    *len = n;
    return s;
}

/* The reference for sse_valid_field(). */
static int ref_valid_field(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return 0;
    return 1;
}

/* Make 's' a valid field by replacing CR and LF (it holds no NUL). */
static void clean_field(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\r' || s[i] == '\n')
            s[i] = '_';
}

/* 'data' with every CRLF and lone CR turned into LF; returns its length. */
static size_t normalize(const char *data, size_t len, char *out)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\r') {
            out[n++] = '\n';
            if (i + 1 < len && data[i + 1] == '\n')
                i++;
        } else {
            out[n++] = data[i];
        }
    }
    return n;
}

/* Line ends in 'data' (CR, LF and CRLF count once). */
static size_t count_line_ends(const char *data, size_t len)
{
    size_t k = 0;

    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n') {
            k++;
        } else if (data[i] == '\r') {
            k++;
            if (i + 1 < len && data[i + 1] == '\n')
                i++;
        }
    }
    return k;
}

/* If the line at 'p' (length 'n') starts with 'prefix', return its value. */
static const char *value_of(const char *p, size_t n, const char *prefix, size_t *vlen)
{
    size_t pl = strlen(prefix);

    if (n < pl || memcmp(p, prefix, pl) != 0)
        return NULL;
    *vlen = n - pl;
    return p + pl;
}

static void check_frame(const sse_event *ev, const char *frame, size_t flen)
{
    const char *data = ev->data ? ev->data : "";
    size_t data_len = ev->data ? ev->data_len : 0;
    size_t want_lines = count_line_ends(data, data_len) + 1;
    char *norm = malloc(data_len + 1), *decoded = malloc(data_len + 1);
    size_t norm_len, dec_len = 0, data_lines = 0, pos = 0;
    int stage = 0; /* 0 retry, 1 id, 2 event, 3 data, 4 the blank line seen */
    int seen_retry = 0, seen_id = 0, seen_event = 0;

    CHECK(norm && decoded);
    norm_len = normalize(data, data_len, norm);

    CHECK(flen >= 2 && frame[flen - 2] == '\n' && frame[flen - 1] == '\n');
    CHECK(memchr(frame, '\r', flen) == NULL);

    /* Walk the LF-terminated lines: retry?, id?, event?, data+ , blank. */
    while (pos < flen) {
        const char *line = frame + pos, *v;
        const char *lf = memchr(line, '\n', flen - pos);
        size_t n, vlen;

        CHECK(lf != NULL); /* every line is terminated */
        n = (size_t)(lf - line);
        pos += n + 1;
        CHECK(stage < 4); /* nothing after the blank line */
        if (n == 0) {
            CHECK(stage == 3); /* the blank line comes after the data */
            stage = 4;
        } else if ((v = value_of(line, n, "retry: ", &vlen))) {
            char want[32];
            CHECK(stage == 0 && ev->retry >= 0);
            snprintf(want, sizeof(want), "%d", ev->retry);
            CHECK(vlen == strlen(want) && memcmp(v, want, vlen) == 0);
            stage = 1;
            seen_retry = 1;
        } else if ((v = value_of(line, n, "id: ", &vlen))) {
            CHECK(stage <= 1 && ev->id);
            CHECK(vlen == strlen(ev->id) && memcmp(v, ev->id, vlen) == 0);
            stage = 2;
            seen_id = 1;
        } else if ((v = value_of(line, n, "event: ", &vlen))) {
            CHECK(stage <= 2 && ev->event);
            CHECK(vlen == strlen(ev->event) && memcmp(v, ev->event, vlen) == 0);
            stage = 3;
            seen_event = 1;
        } else if ((v = value_of(line, n, "data: ", &vlen))) {
            stage = 3;
            /* Rebuild the data the way a browser does: lines joined by LF. */
            CHECK(dec_len + (data_lines ? 1 : 0) + vlen <= data_len);
            if (data_lines++)
                decoded[dec_len++] = '\n';
            memcpy(decoded + dec_len, v, vlen);
            dec_len += vlen;
        } else {
            CHECK(!"a line with an unknown field");
        }
    }
    CHECK(stage == 4);
    /* Each optional line is there exactly when asked for. */
    CHECK(seen_retry == (ev->retry >= 0));
    CHECK(seen_id == (ev->id != NULL));
    CHECK(seen_event == (ev->event != NULL));
    CHECK(data_lines == want_lines);
    CHECK(dec_len == norm_len && memcmp(decoded, norm, norm_len) == 0);
    free(norm);
    free(decoded);
}

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t size)
{
    const uint8_t *p = buf, *end = buf + size;
    size_t id_len, event_len, retry_len, n;
    unsigned flags;
    char *id, *event, *retry_s, *frame;
    long retry;

    if (size < 1)
        return 0;
    flags = *p++;
    id = next_part(&p, end, &id_len);
    event = next_part(&p, end, &event_len);
    retry_s = next_part(&p, end, &retry_len);

    /* The data is the rest, in its own buffer of exactly its size. */
    size_t data_len = (size_t)(end - p);
    char *data = malloc(data_len ? data_len : 1);
    CHECK(data);
    if (data_len)
        memcpy(data, p, data_len);

    /* sse_valid_field against the reference, on parts and on the raw input. */
    CHECK(sse_valid_field(id, id_len) == ref_valid_field(id, id_len));
    CHECK(sse_valid_field(event, event_len) == ref_valid_field(event, event_len));
    CHECK(sse_valid_field((const char *)buf, size) ==
          ref_valid_field((const char *)buf, size));
    clean_field(id, id_len);
    clean_field(event, event_len);
    CHECK(sse_valid_field(id, id_len) && sse_valid_field(event, event_len));

    retry = strtol(retry_s, NULL, 10);
    if (retry_len == 0 || retry < 0)
        retry = -1;
    else if (retry > INT_MAX)
        retry = INT_MAX;

    sse_event ev = {
        .id = (flags & 1) ? id : NULL,
        .event = (flags & 2) ? event : NULL,
        .data = (flags & 4) ? NULL : data,
        .data_len = (flags & 4) ? 0 : data_len,
        .retry = (int)retry,
    };
    frame = sse_frame(&ev, &n);
    CHECK(frame != NULL);
    check_frame(&ev, frame, n);

    free(frame);
    free(data);
    free(id);
    free(event);
    free(retry_s);
    return 0;
}
