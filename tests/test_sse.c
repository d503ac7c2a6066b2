/* test_sse.c - unit tests for the SSE frame encoder (src/sse.c) and the
 * stored JSON form of messages (src/msg.c: the hand-written fast paths must
 * agree with jansson). */
#include "src/domain/msg.h"
#include "src/domain/sse.h"
#include "tests/tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The data is given with an explicit length so cases can hold odd bytes. */
struct frame_case {
    const char *name;
    const char *id;
    const char *event;
    const char *data;
    size_t data_len;
    int retry;
    const char *want;
};

#define D(s) s, sizeof(s) - 1

static const struct frame_case frame_cases[] = {
    {"empty data", NULL, NULL, D(""), -1, "data: \n\n"},
    {"NULL data", NULL, NULL, NULL, 0, -1, "data: \n\n"},
    {"one line", NULL, NULL, D("hello"), -1, "data: hello\n\n"},
    {"trailing LF", NULL, NULL, D("a\n"), -1, "data: a\ndata: \n\n"},
    {"trailing CR", NULL, NULL, D("a\r"), -1, "data: a\ndata: \n\n"},
    {"trailing CRLF", NULL, NULL, D("a\r\n"), -1, "data: a\ndata: \n\n"},
    {"only LF", NULL, NULL, D("\n"), -1, "data: \ndata: \n\n"},
    {"only CRLF", NULL, NULL, D("\r\n"), -1, "data: \ndata: \n\n"},
    {"LF CR is two ends", NULL, NULL, D("\n\r"), -1, "data: \ndata: \ndata: \n\n"},
    {"CR CR LF", NULL, NULL, D("x\r\r\ny"), -1, "data: x\ndata: \ndata: y\n\n"},
    {"mixed line ends", NULL, NULL, D("a\r\nb\rc\nd"), -1,
     "data: a\ndata: b\ndata: c\ndata: d\n\n"},
    {"leading LF", NULL, NULL, D("\nz"), -1, "data: \ndata: z\n\n"},
    {"spaces kept", NULL, NULL, D("  x  "), -1, "data:   x  \n\n"},
    {"colon kept", NULL, NULL, D(": not a comment"), -1, "data: : not a comment\n\n"},
    {"utf-8 bytes", NULL, NULL, D("caf\xc3\xa9"), -1, "data: caf\xc3\xa9\n\n"},
    {"id", "42", NULL, D("x"), -1, "id: 42\ndata: x\n\n"},
    {"event", NULL, "update", D("x"), -1, "event: update\ndata: x\n\n"},
    {"retry 0", NULL, NULL, D("x"), 0, "retry: 0\ndata: x\n\n"},
    {"retry big", NULL, NULL, D("x"), 86400000, "retry: 86400000\ndata: x\n\n"},
    {"all fields", "7", "tick", D("l1\nl2"), 3000,
     "retry: 3000\nid: 7\nevent: tick\ndata: l1\ndata: l2\n\n"},
    {"empty id and event", "", "", D(""), -1, "id: \nevent: \ndata: \n\n"},
};

static void test_frames(void)
{
    size_t n = sizeof(frame_cases) / sizeof(frame_cases[0]);

    for (size_t i = 0; i < n; i++) {
        const struct frame_case *t = &frame_cases[i];
        sse_event ev = {.id = t->id,
                        .event = t->event,
                        .data = t->data,
                        .data_len = t->data_len,
                        .retry = t->retry};
        size_t len = 12345;
        char *f = sse_frame(&ev, &len);
        size_t want_len = strlen(t->want);

        ok(f && len == want_len && memcmp(f, t->want, len) == 0, "frame: %s", t->name);
        free(f);
    }
}

/* A frame built from a long payload: every line is framed, nothing is lost. Each
 * line costs "data: " and its LF (the data's own LFs become those), plus one LF
 * for the last line and one for the blank line. */
static void test_large(void)
{
    size_t n = 100000;
    char *data = malloc(n);
    size_t lines = 1, len;

    for (size_t i = 0; i < n; i++) {
        data[i] = (i % 100 == 99) ? '\n' : 'a' + (char)(i % 26);
        if (data[i] == '\n')
            lines++;
    }
    sse_event ev = {.data = data, .data_len = n, .retry = -1};
    char *f = sse_frame(&ev, &len);

    ok(f != NULL, "large frame built");
    ok(len == n + lines * 6 + 2, "large frame has the exact length (%zu)", len);
    ok(f && f[len - 1] == '\n' && f[len - 2] == '\n',
       "large frame ends with a blank line");
    free(f);
    free(data);
}

/* Data given with a length is not read past it. */
static void test_length_bound(void)
{
    size_t len;
    sse_event ev = {.data = "abc\ndef", .data_len = 3, .retry = -1};
    char *f = sse_frame(&ev, &len);

    ok(f && len == strlen("data: abc\n\n") && memcmp(f, "data: abc\n\n", len) == 0,
       "data_len bounds the data");
    free(f);
}

struct field_case {
    const char *s;
    size_t len;
    int want;
};

static const struct field_case field_cases[] = {
    {D("update"), 1}, {D(""), 1},     {D("a b:c"), 1}, {D("caf\xc3\xa9"), 1},
    {D("a\nb"), 0},   {D("a\rb"), 0}, {D("\n"), 0},    {D("a\0b"), 0},
    {D("end\r"), 0},  {"x\ny", 1, 1}, /* the length bounds the check */
};

static void test_valid_field(void)
{
    size_t n = sizeof(field_cases) / sizeof(field_cases[0]);

    for (size_t i = 0; i < n; i++)
        ok(sse_valid_field(field_cases[i].s, field_cases[i].len) == field_cases[i].want,
           "sse_valid_field case %zu -> %d", i, field_cases[i].want);
}

/* The API form's compact text of 'm', as jansson writes it. Caller frees. */
static char *api_text(const msg *m, size_t *len)
{
    json_t *o = msg_to_json(m);
    char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    *len = t ? strlen(t) : 0;
    return t;
}

/* Does writing 'm' with msg_json_piece() give 'want' (its 'len' bytes), for
 * rooms from the minimum up? */
static int pieces_are(const msg *m, const char *want, size_t len)
{
    static const size_t rooms[] = {MSG_JSON_PIECE_MIN, MSG_JSON_PIECE_MIN + 7, 4096,
                                   1 << 20};
    char *buf = malloc(len + (1 << 20)), *room = malloc(1 << 20);
    int same = buf && room;
    for (size_t r = 0; same && r < sizeof(rooms) / sizeof(rooms[0]); r++) {
        msg_json_cursor c = {0};
        size_t got = 0, n, calls = 0;
        while (got <= len && (n = msg_json_piece(m, &c, room, rooms[r])) > 0) {
            memcpy(buf + got, room, n);
            got += n;
            calls++;
        }
        same = msg_json_done(&c) && got == len && memcmp(buf, want, len) == 0 &&
               msg_json_piece(m, &c, room, rooms[r]) == 0 && calls > 0;
    }
    free(buf);
    free(room);
    return same;
}

/* A large message, all of whose bytes escape to six: many pieces. */
static void test_msg_json_large(void)
{
    size_t dl = 100000;
    char *data = malloc(dl + 1);
    for (size_t i = 0; i < dl; i++)
        data[i] = (char)(i % 7 == 0 ? 'a' : i % 5 == 0 ? '"' : 1 + (int)(i % 31));
    data[dl] = '\0';
    msg *m = msg_new(7, "big", data, dl, -5, 100);
    size_t len = 0;
    char *want = m ? api_text(m, &len) : NULL;
    ok(want && msg_json_len(m) == len && len > 4 * dl, "large: msg_json_len %zu", len);
    ok(want && pieces_are(m, want, len), "large: written in pieces, it is the text");
    free(want);
    msg_unref(m);
    free(data);
}

/* msg_json_tail() + its head is what jansson writes for msg_to_json(), and
 * msg_from_json() reads it back, for awkward events and data. */
static void test_msg_json(void)
{
    static const struct {
        const char *event, *data;
        int retry;
    } cases[] = {
        {NULL, "plain", -1},
        {"ev", "quote \" backslash \\ slash /", 5},
        {"tab\there", "lines\nand\r\nreturns\x01\x1f\x7f", -1},
        {NULL, "unicode \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 0},
        {"", "", 2147483647},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t dl = strlen(cases[i].data), tl;
        char *tail = msg_json_tail(cases[i].event, cases[i].data, dl, 1795454128748758LL,
                                   cases[i].retry, &tl);
        char text[512];
        snprintf(text, sizeof(text), MSG_JSON_HEAD "42" MSG_JSON_MID "%zu%s", i + 1,
                 tail ? tail : "");
        msg *ref = msg_new(42, cases[i].event, cases[i].data, dl, 1795454128748758LL,
                           cases[i].retry);
        if (ref)
            ref->pos = i + 1;
        size_t rl = 0;
        const char *want = ref ? msg_json_text(ref, &rl) : NULL;
        ok(tail && want && strcmp(text, want) == 0, "json tail %zu is jansson's text: %s",
           i, text);
        size_t al = 0;
        char *api = ref ? api_text(ref, &al) : NULL;
        ok(api && msg_json_len(ref) == al, "json %zu: msg_json_len %zu is its length %zu",
           i, ref ? msg_json_len(ref) : 0, al);
        ok(api && pieces_are(ref, api, al),
           "json %zu: written in pieces, it is the API text", i);
        free(api);
        /* Everything the message holds, its JSON memo included now. */
        ok(ref && msg_footprint(ref) >= sizeof(msg) + dl + 1 + ref->chunk_len + rl + 1 &&
               msg_footprint(ref) <= sizeof(msg) + dl + ref->chunk_len + rl + 256 +
                                         (cases[i].event ? strlen(cases[i].event) : 0),
           "footprint %zu counts every buffer", i);
        msg *back = msg_from_json(text, strlen(text));
        ok(back && back->seq == 42 && back->pos == i + 1 && back->data_len == dl &&
               memcmp(back->data, cases[i].data, dl) == 0 &&
               (cases[i].event ? back->event && strcmp(back->event, cases[i].event) == 0
                               : back->event == NULL) &&
               back->retry == cases[i].retry && back->ts_us == 1795454128748758LL,
           "json %zu reads back", i);
        msg_unref(back);
        msg_unref(ref);
        free(tail);
    }
    /* Text jansson would write differently (key order, spacing, \u escapes,
     * NUL) still reads back, through jansson. */
    static const char *other[] = {
        "{\"data\":\"d\",\"id\":\"7\",\"event\":null,\"timestamp\":1}",
        "{ \"id\": \"7\", \"event\": null, \"data\": \"d\", \"timestamp\": 1 }",
        "{\"id\":\"7\",\"event\":null,\"data\":\"d\",\"timestamp\":1}",
        ("{\"id\":\"7\",\"event\":\"\\u00e9\",\"data\":\"\\ud83d\\ude00\","
         "\"timestamp\":1}"),
    };
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        msg *m = msg_from_json(other[i], strlen(other[i]));
        ok(m && m->seq == 7, "other JSON %zu reads back", i);
        msg_unref(m);
    }
    static const char *bad[] = {
        "",
        "{}",
        "{\"id\":\"x\",\"event\":null,\"data\":\"d\",\"timestamp\":1}",
        "{\"id\":\"7\",\"event\":null,\"data\":\"d\",\"timestamp\":1",
        "{\"id\":\"7\",\"event\":null,\"data\":\"\\u0000\",\"timestamp\":1}",
        "{\"id\":\"7\",\"pos\":-1,\"event\":null,\"data\":\"d\",\"timestamp\":1}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        msg *m = msg_from_json(bad[i], strlen(bad[i]));
        ok(m == NULL, "bad JSON %zu is refused", i);
        msg_unref(m);
    }
}

/* The source timestamp and the JSON flag: written by msg_json_tail_src as
 * jansson writes them, read back by both readers; bad ones refused. */
static void test_msg_source(void)
{
    static const struct {
        int64_t src;
        int is_json;
        const char *data;
    } cases[] = {{0, 0, "42"},
                 {1795454128748758LL, 1, "{\"a\":1}"},
                 {MSG_SOURCE_TS_MAX, 1, "42"},
                 {MSG_NO_SOURCE_TS, 1, "[1]"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t tl, rl = 0, dl = strlen(cases[i].data);
        char *tail = msg_json_tail_src("e", cases[i].data, dl, 5, cases[i].src,
                                       cases[i].is_json, 7, NULL, &tl);
        char text[512];
        snprintf(text, sizeof(text), MSG_JSON_HEAD "9" MSG_JSON_MID "3%s",
                 tail ? tail : "");
        msg *ref = msg_new(9, "e", cases[i].data, dl, 5, 7);
        if (ref) {
            ref->pos = 3;
            ref->src_ts_us = cases[i].src;
            ref->is_json = cases[i].is_json;
        }
        const char *want = ref ? msg_json_text(ref, &rl) : NULL;
        ok(tail && want && strcmp(text, want) == 0, "source %zu: tail is jansson's: %s",
           i, text);
        msg *fast = msg_from_json_fast(text, strlen(text));
        msg *slow = msg_from_json_jansson(text, strlen(text));
        ok(fast && fast->src_ts_us == cases[i].src && fast->is_json == cases[i].is_json,
           "source %zu: the fast reader keeps both", i);
        ok(slow && slow->src_ts_us == cases[i].src && slow->is_json == cases[i].is_json,
           "source %zu: jansson keeps both", i);
        size_t al = 0;
        char *api = ref ? api_text(ref, &al) : NULL;
        ok(api && msg_json_len(ref) == al && pieces_are(ref, api, al),
           "source %zu: the API text in pieces", i);
        json_t *d = ref ? msg_data_json(ref) : NULL;
        ok(d && (cases[i].is_json ? !json_is_string(d) : json_is_string(d)),
           "source %zu: the data is JSON only when published as JSON", i);
        json_decref(d);
        free(api);
        msg_unref(fast);
        msg_unref(slow);
        msg_unref(ref);
        free(tail);
    }
    static const char *bad[] = {
        "{\"id\":\"7\",\"event\":null,\"data\":\"d\",\"timestamp\":1,"
        "\"source_timestamp\":-1}",
        "{\"id\":\"7\",\"event\":null,\"data\":\"d\",\"timestamp\":1,"
        "\"source_timestamp\":9007199254740992}",
        "{\"id\":\"7\",\"event\":null,\"data\":\"d\",\"timestamp\":1,"
        "\"source_timestamp\":\"1\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        msg *m = msg_from_json(bad[i], strlen(bad[i]));
        ok(m == NULL, "bad source timestamp %zu is refused", i);
        msg_unref(m);
    }
}

/* A message is one allocation: its data, event type and chunk lie right after
 * the struct, the chunk is the frame in HTTP/1.1 chunk framing, and the
 * frame is sse_frame()'s; its envelope is one allocation more, framed alike. */
#define ENV_HEAD "retry: 3\nid: 12345\nevent: tick\ndata: {\"channel\":\"c.x\""
static void test_msg_layout(void)
{
    static const char data[] = "two\nlines";
    msg *m = msg_new(12345, "tick", data, sizeof(data) - 1, 7, 3);
    sse_event ev = {"12345", "tick", data, sizeof(data) - 1, 3};
    size_t fl = 0;
    char *f = sse_frame(&ev, &fl), head[24];
    int hl = snprintf(head, sizeof(head), "%zx\r\n", fl);
    ok(m && f && strcmp(m->data, data) == 0 && m->event == m->data + sizeof(data) &&
           strcmp(m->event, "tick") == 0 && m->chunk == m->event + 5,
       "a message is one allocation: struct, data, event type, chunk");
    ok(m && f && m->frame_len == fl && memcmp(m->frame, f, fl) == 0 &&
           m->frame == m->chunk + hl && memcmp(m->chunk, head, (size_t)hl) == 0 &&
           m->chunk_len == (size_t)hl + fl + 2 &&
           memcmp(m->chunk + hl + fl, "\r\n", 2) == 0,
       "its chunk is the SSE frame in chunk framing");
    ok(m && msg_envelope(m, "c.x") == 0 && m->env && m->env->frame_len > fl &&
           m->env->frame == m->env->chunk + (m->env->chunk_len - m->env->frame_len - 2) &&
           memcmp(m->env->frame, ENV_HEAD, sizeof(ENV_HEAD) - 1) == 0,
       "its envelope is framed alike");
    msg *bare = msg_new(1, NULL, "", 0, 1, -1);
    ok(bare && !bare->event && bare->data_len == 0 && bare->chunk == bare->data + 1 &&
           bare->frame_len == 14 && memcmp(bare->frame, "id: 1\ndata: \n\n", 14) == 0,
       "no event type, empty data");
    msg_unref(bare);
    msg_unref(m);
    free(f);
}

int main(void)
{
    test_msg_layout();
    test_msg_json();
    test_msg_source();
    test_msg_json_large();
    test_frames();
    test_large();
    test_length_bound();
    test_valid_field();
    return done_testing();
}
