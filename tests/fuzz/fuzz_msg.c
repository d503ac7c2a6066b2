/* fuzz_msg.c - libFuzzer target for the stored JSON form of messages
 * (src/msg.c), whose hot paths are written by hand: checked against jansson.
 *
 * 1. The input as stored text: whenever the fast reader takes it, jansson
 *    must read the same message from it (id, event, data, timestamp, source
 *    timestamp, the JSON flag, retry).
 * 2. The input split into an event and data (byte 0 says where; the data is
 *    used only when valid UTF-8, as publish guarantees): msg_json_tail() with
 *    its head must be byte for byte the text jansson writes for the message,
 *    and must read back through the fast path to the same message; and
 *    msg_json_len() must be the length of jansson's API text (no "pos"), and
 *    msg_json_piece() must write that text, piece by piece (rooms from the
 *    minimum up).
 * Any disagreement aborts. */
#include "src/domain/msg.h"
#include "src/base/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_msg: check failed: %s (line %d)\n", #cond, __LINE__);  \
            abort();                                                                     \
        }                                                                                \
    } while (0)

static int same(const msg *a, const msg *b)
{
    return a->seq == b->seq && a->pos == b->pos && a->ts_us == b->ts_us &&
           a->src_ts_us == b->src_ts_us && a->is_json == b->is_json &&
           a->retry == b->retry && a->data_len == b->data_len &&
           memcmp(a->data, b->data, a->data_len) == 0 &&
           ((!a->event && !b->event) ||
            (a->event && b->event && strcmp(a->event, b->event) == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t size)
{
    /* 1. */
    msg *fast = msg_from_json_fast((const char *)buf, size);
    if (fast) {
        msg *slow = msg_from_json_jansson((const char *)buf, size);
        CHECK(slow && same(fast, slow));
        msg_unref(slow);
        msg_unref(fast);
    }
    /* 2. */
    if (size < 1)
        return 0;
    size_t cut = buf[0] % size;
    char *event = memdup_nul((const char *)buf + 1, cut ? cut - 1 : 0);
    const char *data = (const char *)buf + (cut ? cut : 1);
    size_t dlen = size - (cut ? cut : 1);
    int has_event =
        cut > 0 && valid_utf8(event, strlen(event)) && strlen(event) == cut - 1;
    if (event && valid_utf8(data, dlen) && !memchr(data, '\0', dlen)) {
        size_t tl, rl;
        const char *ev = has_event ? event : NULL;
        /* Byte 0 also picks a source timestamp and the JSON flag. */
        int64_t src = buf[0] & 2 ? (int64_t)size * 1000003 : MSG_NO_SOURCE_TS;
        int is_json = (buf[0] & 4) != 0;
        char *tail = msg_json_tail_src(ev, data, dlen, 1234567, src, is_json,
                                       buf[0] & 1 ? 7 : -1, NULL, &tl);
        msg *ref = msg_new(99, ev, data, dlen, 1234567, buf[0] & 1 ? 7 : -1);
        if (ref) {
            ref->pos = size;
            ref->src_ts_us = src;
            ref->is_json = is_json;
        }
        const char *want = ref ? msg_json_text(ref, &rl) : NULL;
        if (tail && want) {
            char head[64];
            int hl =
                snprintf(head, sizeof(head), MSG_JSON_HEAD "99" MSG_JSON_MID "%zu", size);
            char *text = malloc((size_t)hl + tl + 1);
            CHECK(text);
            memcpy(text, head, (size_t)hl);
            memcpy(text + hl, tail, tl + 1);
            CHECK(strlen(text) == rl && memcmp(text, want, rl) == 0);
            msg *back = msg_from_json_fast(text, rl);
            CHECK(back && same(back, ref));
            msg_unref(back);
            free(text);
            json_t *ao = msg_to_json(ref);
            char *api = ao ? json_dumps(ao, JSON_COMPACT) : NULL;
            json_decref(ao);
            CHECK(api);
            size_t al = strlen(api);
            CHECK(msg_json_len(ref) == al);
            size_t el = ev ? strlen(ev) : 0, room = MSG_JSON_PIECE_MIN + 6 * el + buf[0];
            char *pieces = malloc(al + room), *p = pieces;
            msg_json_cursor c = {0};
            size_t n;
            CHECK(pieces);
            while ((size_t)(p - pieces) <= al &&
                   (n = msg_json_piece(ref, &c, p, room)) > 0)
                p += n;
            CHECK(msg_json_done(&c) && (size_t)(p - pieces) == al &&
                  memcmp(pieces, api, al) == 0);
            free(pieces);
            free(api);
        }
        free(tail);
        msg_unref(ref);
    }
    free(event);
    return 0;
}
