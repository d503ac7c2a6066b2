/* fuzz_publish.c - libFuzzer target for the publish body parser (src/publish.c).
 *
 * Input: byte 0 picks the Content-Type (its value mod 4: application/json,
 * text/plain, none, "application/json; charset=utf-8"); if byte 1 is 'e' the
 * query parameter event= is given and runs up to the next NUL, if it is 'q'
 * the query's targeting lists are given as JSON text up to the next NUL; the
 * rest is the body. The result must keep the promises of publish.h; any
 * broken one aborts. A targeted event's record must survive the stored form
 * of its message (msg_json_tail_pub, msg_from_json) unchanged. */
#include "src/domain/msg.h"
#include "src/domain/publish.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_publish: check failed: %s (line %d)\n", #cond,         \
                    __LINE__);                                                           \
            abort();                                                                     \
        }                                                                                \
    } while (0)

static const char *const ctypes[] = {"application/json", "text/plain", NULL,
                                     "application/json; charset=utf-8"};

static const char *const codes[] = {
    "invalid_json",        "invalid_event",           "invalid_data", "invalid_retry",
    "unknown_field",       "batch_too_large",         "empty_batch",  "invalid_target",
    "reserved_event_type", "invalid_source_timestamp"};

static int known_code(const char *code)
{
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strcmp(code, codes[i]) == 0)
            return 1;
    return 0;
}

static void check_event(const pub_event *ev)
{
    if (ev->event) {
        size_t n = strlen(ev->event);
        CHECK(n >= 1 && n <= PUB_EVENT_MAX);
        CHECK(!strchr(ev->event, '\r') && !strchr(ev->event, '\n'));
        CHECK(strncmp(ev->event, PUB_EVENT_RESERVED, 4) != 0); /* sys.*: refused */
    }
    CHECK(ev->data != NULL);
    CHECK(ev->data_len == strlen(ev->data)); /* so no NUL inside */
    CHECK(ev->retry == -1 || (ev->retry >= 0 && ev->retry <= 86400000));
    CHECK(ev->has_src_ts == 0 || (ev->has_src_ts == 1 && ev->src_ts >= 0 &&
                                  ev->src_ts <= (INT64_C(1) << 53) - 1));
    CHECK(ev->is_json == 0 || ev->is_json == 1);
    if (ev->tg) {
        const target_rec *tg = ev->tg;
        CHECK(tg->lists && !tg->pub_authid && !tg->pub_authrole);
        for (int k = 0; k < TARGET_NLISTS; k++) {
            CHECK(tg->n[k] <= TARGET_LIST_MAX);
            CHECK(tg->n[k] == 0 || (tg->lists & (1u << k)));
            for (unsigned i = 0; i < tg->n[k]; i++) {
                size_t n = strlen(tg->item[k][i]);
                CHECK(n >= 1 && n <= TARGET_ITEM_MAX);
            }
        }
        /* Stored and read back with a publisher: the same record. */
        target_rec *pub = target_with_publisher(tg, "pub", "role", NULL);
        size_t tl;
        char *tail = pub ? msg_json_tail_pub(ev->event, ev->data, ev->data_len, 1,
                                             ev->retry, pub, &tl)
                         : NULL;
        if (tail) {
            size_t hl = strlen(MSG_JSON_HEAD "7" MSG_JSON_MID "1");
            char *text = malloc(hl + tl + 1);
            CHECK(text);
            memcpy(text, MSG_JSON_HEAD "7" MSG_JSON_MID "1", hl);
            memcpy(text + hl, tail, tl + 1);
            msg *m = msg_from_json(text, hl + tl);
            CHECK(m && m->pub && m->tg);
            json_t *a = target_to_json(pub), *b = target_to_json(m->pub);
            CHECK(a && b && json_equal(a, b));
            json_decref(a);
            json_decref(b);
            msg_unref(m);
            free(text);
        }
        free(tail);
        target_free(pub);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t size)
{
    const uint8_t *p = buf, *end = buf + size;
    const char *ctype, *code = (const char *)1; /* must be overwritten */
    char *query_event = NULL, *body, err[256];
    json_t *query_lists = NULL;
    size_t len;
    pub_batch b, zero;
    int rc, json;

    if (size < 2)
        return 0;
    ctype = ctypes[*p++ % 4];
    json = ctype && strncmp(ctype, "application/json", 16) == 0;
    if (*p == 'e') {
        p++;
        const uint8_t *nul = memchr(p, '\0', (size_t)(end - p));
        size_t n = nul ? (size_t)(nul - p) : (size_t)(end - p);
        query_event = malloc(n + 1);
        CHECK(query_event);
        memcpy(query_event, p, n);
        query_event[n] = '\0';
        p = nul ? nul + 1 : end;
    } else if (*p++ == 'q') {
        const uint8_t *nul = memchr(p, '\0', (size_t)(end - p));
        size_t n = nul ? (size_t)(nul - p) : (size_t)(end - p);
        query_lists = json_loadb((const char *)p, n, JSON_ALLOW_NUL, NULL);
        p = nul ? nul + 1 : end;
    }
    /* The body in a buffer of exactly its size: reads past it are caught. */
    len = (size_t)(end - p);
    body = malloc(len ? len : 1);
    CHECK(body);
    if (len)
        memcpy(body, p, len);

    memset(&b, 0x5a, sizeof(b)); /* publish_parse must not trust it */
    memset(&zero, 0, sizeof(zero));
    memset(err, 'x', sizeof(err));
    rc = publish_parse_with(ctype, body, len, query_event, query_lists, &b, &code, err,
                            sizeof(err));
    CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    if (rc == 0) {
        CHECK(b.n >= 1 && b.n <= PUB_BATCH_MAX && b.ev != NULL);
        for (size_t i = 0; i < b.n; i++)
            check_event(&b.ev[i]);
        if (!json) {
            /* Raw bodies publish exactly one event: the body and the query type. */
            CHECK(b.n == 1 && !b.is_array);
            CHECK(b.ev[0].data_len == len && memcmp(b.ev[0].data, body, len) == 0);
            CHECK(b.ev[0].retry == -1);
            if (query_event && *query_event)
                CHECK(b.ev[0].event && strcmp(b.ev[0].event, query_event) == 0);
            else
                CHECK(b.ev[0].event == NULL);
        } else if (!b.is_array) {
            CHECK(b.n == 1);
        }
    } else {
        CHECK(rc == -1);
        CHECK(memcmp(&b, &zero, sizeof(b)) == 0);
        CHECK(code != NULL && code != (const char *)1 && known_code(code));
        CHECK(err[0] != '\0');
    }
    pub_batch_free(&b);
    CHECK(memcmp(&b, &zero, sizeof(b)) == 0);

    /* The same body with no code or error buffer must not crash either. */
    rc =
        publish_parse_with(ctype, body, len, query_event, query_lists, &b, NULL, NULL, 0);
    if (rc == 0)
        CHECK(pub_batch_set_publisher(&b, "who", NULL) == 0);
    pub_batch_free(&b);

    free(body);
    free(query_event);
    json_decref(query_lists);
    return 0;
}
