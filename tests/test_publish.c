/* test_publish.c - unit tests for parsing publish request bodies (src/publish.c). */
#include "src/domain/publish.h"
#include "tests/tap.h"

#include <stdlib.h>
#include <string.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define JSON "application/json"

/* One expected event: data given with its length so it may hold odd bytes. */
struct want_ev {
    const char *event; /* NULL for none */
    const char *data;
    size_t data_len;
    int retry;
};

#define W(ev, d, r)                                                                      \
    {                                                                                    \
        ev, d, sizeof(d) - 1, r                                                          \
    }

struct ok_case {
    const char *name;
    const char *ctype;
    const char *body;
    size_t len;
    const char *query_event;
    int is_array;
    size_t n;
    struct want_ev ev[3];
};

#define B(s) s, sizeof(s) - 1

static const struct ok_case ok_cases[] = {
    {"object with string data",
     JSON,
     B("{\"data\": \"hello\"}"),
     NULL,
     0,
     1,
     {W(NULL, "hello", -1)}},
    {"all fields",
     JSON,
     B("{\"event\": \"tick\", \"data\": \"x\", \"retry\": 500}"),
     NULL,
     0,
     1,
     {W("tick", "x", 500)}},
    {"event null is none",
     JSON,
     B("{\"event\": null, \"data\": \"x\"}"),
     NULL,
     0,
     1,
     {W(NULL, "x", -1)}},
    {"retry bounds",
     JSON,
     B("[{\"data\": \"a\", \"retry\": 0}, {\"data\": \"b\", "
       "\"retry\": 86400000}]"),
     NULL,
     1,
     2,
     {W(NULL, "a", 0), W(NULL, "b", 86400000)}},
    {"object data is compact JSON",
     JSON,
     B("{\"data\": {\"a\": 1, \"b\": [true, null]}}"),
     NULL,
     0,
     1,
     {W(NULL, "{\"a\":1,\"b\":[true,null]}", -1)}},
    {"array data",
     JSON,
     B("{\"data\": [1, 2, \"x\"]}"),
     NULL,
     0,
     1,
     {W(NULL, "[1,2,\"x\"]", -1)}},
    {"number data", JSON, B("{\"data\": 42}"), NULL, 0, 1, {W(NULL, "42", -1)}},
    {"real data", JSON, B("{\"data\": 1.5}"), NULL, 0, 1, {W(NULL, "1.5", -1)}},
    {"bool data", JSON, B("{\"data\": false}"), NULL, 0, 1, {W(NULL, "false", -1)}},
    {"null data", JSON, B("{\"data\": null}"), NULL, 0, 1, {W(NULL, "null", -1)}},
    {"empty string data", JSON, B("{\"data\": \"\"}"), NULL, 0, 1, {W(NULL, "", -1)}},
    {"multi-line string data",
     JSON,
     B("{\"data\": \"a\\nb\\r\\nc\"}"),
     NULL,
     0,
     1,
     {W(NULL, "a\nb\r\nc", -1)}},
    {"unicode data",
     JSON,
     B("{\"data\": \"caf\\u00e9 \xe2\x82\xac\"}"),
     NULL,
     0,
     1,
     {W(NULL, "caf\xc3\xa9 \xe2\x82\xac", -1)}},
    {"NUL escaped inside JSON data is fine",
     JSON,
     B("{\"data\": {\"k\": \"a\\u0000b\"}}"),
     NULL,
     0,
     1,
     {W(NULL, "{\"k\":\"a\\u0000b\"}", -1)}},
    {"batch of one", JSON, B("[{\"data\": \"x\"}]"), NULL, 1, 1, {W(NULL, "x", -1)}},
    {"batch in order",
     JSON,
     B("[{\"data\": \"1\", \"event\": \"a\"}, {\"data\": 2}, "
       "{\"event\": \"c\", \"data\": \"3\"}]"),
     NULL,
     1,
     3,
     {W("a", "1", -1), W(NULL, "2", -1), W("c", "3", -1)}},
    {"query event ignored for JSON",
     JSON,
     B("{\"data\": \"x\"}"),
     "q",
     0,
     1,
     {W(NULL, "x", -1)}},
    {"ctype with charset",
     "application/json; charset=utf-8",
     B("{\"data\": \"x\"}"),
     NULL,
     0,
     1,
     {W(NULL, "x", -1)}},
    {"ctype in upper case",
     "Application/JSON",
     B("{\"data\": \"x\"}"),
     NULL,
     0,
     1,
     {W(NULL, "x", -1)}},
    {"ctype with blanks",
     "  application/json\t ;x=y",
     B("{\"data\": \"x\"}"),
     NULL,
     0,
     1,
     {W(NULL, "x", -1)}},
    {"event of 200 bytes",
     JSON,
     B("{\"event\": "
       "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
       "aa"
       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", \"data\": \"x\"}"),
     NULL,
     0,
     1,
     {W("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "x", -1)}},
    /* raw bodies */
    {"raw text",
     "text/plain",
     B("hello\nworld"),
     NULL,
     0,
     1,
     {W(NULL, "hello\nworld", -1)}},
    {"raw without content type", NULL, B("x"), "update", 0, 1, {W("update", "x", -1)}},
    {"raw JSON-looking text",
     "text/plain",
     B("{\"data\": 1}"),
     NULL,
     0,
     1,
     {W(NULL, "{\"data\": 1}", -1)}},
    {"application/jsonx is raw",
     "application/jsonx",
     B("{"),
     NULL,
     0,
     1,
     {W(NULL, "{", -1)}},
    {"application/json-seq is raw",
     "application/json-seq",
     B("x"),
     NULL,
     0,
     1,
     {W(NULL, "x", -1)}},
    {"empty raw body", "text/plain", "", 0, NULL, 0, 1, {W(NULL, "", -1)}},
    {"NULL raw body", NULL, NULL, 0, NULL, 0, 1, {W(NULL, "", -1)}},
    {"empty query event is none", NULL, B("x"), "", 0, 1, {W(NULL, "x", -1)}},
    {"raw UTF-8 passes through",
     "text/plain",
     B("caf\xc3\xa9 \xf0\x9f\x98\x80"),
     NULL,
     0,
     1,
     {W(NULL, "caf\xc3\xa9 \xf0\x9f\x98\x80", -1)}},
    {"query event with spaces", NULL, B("x"), "a b:c", 0, 1, {W("a b:c", "x", -1)}},
};

static int event_matches(const pub_event *got, const struct want_ev *want)
{
    if (!want->event != !got->event)
        return 0;
    if (want->event && strcmp(want->event, got->event) != 0)
        return 0;
    return got->retry == want->retry && got->data_len == want->data_len && got->data &&
           memcmp(got->data, want->data, want->data_len) == 0 &&
           got->data[got->data_len] == '\0';
}

static void test_ok(void)
{
    for (size_t i = 0; i < N_ELEMS(ok_cases); i++) {
        const struct ok_case *t = &ok_cases[i];
        pub_batch b;
        const char *code = "unset";
        char err[256] = "";
        int rc = publish_parse(t->ctype, t->body, t->len, t->query_event, &b, &code, err,
                               sizeof(err));
        int good = rc == 0 && b.n == t->n && b.is_array == t->is_array;

        for (size_t k = 0; good && k < t->n; k++)
            good = event_matches(&b.ev[k], &t->ev[k]);
        ok(good, "%s (%s)", t->name, err);
        pub_batch_free(&b);
        ok(b.ev == NULL && b.n == 0 && b.is_array == 0, "%s: freed batch is zeroed",
           t->name);
    }
}

struct err_case {
    const char *name;
    const char *ctype;
    const char *body;
    size_t len;
    const char *query_event;
    const char *code;
    const char *msg; /* a substring of the message */
};

static const struct err_case err_cases[] = {
    {"syntax error", JSON, B("{\"data\": "), NULL, "invalid_json", "invalid JSON: "},
    {"empty JSON body", JSON, B(""), NULL, "invalid_json", "invalid JSON: "},
    {"NULL JSON body", JSON, NULL, 0, NULL, "invalid_json", "invalid JSON: "},
    {"trailing garbage", JSON, B("{\"data\": 1} x"), NULL, "invalid_json",
     "invalid JSON: "},
    {"bad UTF-8", JSON, B("{\"data\": \"\xff\"}"), NULL, "invalid_json",
     "invalid JSON: "},
    {"duplicate key", JSON, B("{\"data\": 1, \"data\": 2}"), NULL, "invalid_json",
     "duplicate"},
    {"top-level string", JSON, B("\"x\""), NULL, "invalid_json",
     "body must be an object or an array of objects"},
    {"top-level number", JSON, B("5"), NULL, "invalid_json",
     "body must be an object or an array of objects"},
    {"top-level null", JSON, B("null"), NULL, "invalid_json",
     "body must be an object or an array of objects"},
    {"element not an object", JSON, B("[{\"data\": 1}, 2]"), NULL, "invalid_json",
     "events[1]: each event must be a JSON object"},
    {"nested array element", JSON, B("[[{\"data\": 1}]]"), NULL, "invalid_json",
     "events[0]: each event must be a JSON object"},
    {"empty array", JSON, B("[]"), NULL, "empty_batch", "at least one"},
    {"missing data", JSON, B("{\"event\": \"x\"}"), NULL, "invalid_data",
     "'data' is required"},
    {"missing data in batch", JSON, B("[{\"data\": 1}, {\"data\": 2}, {}]"), NULL,
     "invalid_data", "events[2]: 'data' is required"},
    {"NUL in JSON string data", JSON, B("{\"data\": \"a\\u0000b\"}"), NULL,
     "invalid_data", "NUL"},
    {"empty event", JSON, B("{\"event\": \"\", \"data\": 1}"), NULL, "invalid_event",
     "'event'"},
    {"event with LF", JSON, B("{\"event\": \"a\\nb\", \"data\": 1}"), NULL,
     "invalid_event", "'event'"},
    {"event with CR", JSON, B("{\"event\": \"a\\r\", \"data\": 1}"), NULL,
     "invalid_event", "'event'"},
    {"event with NUL", JSON, B("{\"event\": \"a\\u0000\", \"data\": 1}"), NULL,
     "invalid_event", "'event'"},
    {"event not a string", JSON, B("{\"event\": 5, \"data\": 1}"), NULL, "invalid_event",
     "'event'"},
    {"event of 201 bytes", JSON,
     B("{\"event\": "
       "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
       "aa"
       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", \"data\": \"x\"}"),
     NULL, "invalid_event", "'event'"},
    {"reserved event type", JSON, B("{\"event\": \"sys.gap\", \"data\": 1}"), NULL,
     "reserved_event_type", "reserved"},
    {"reserved event type in batch", JSON,
     B("[{\"data\": 1}, {\"event\": \"sys.\", \"data\": 1}]"), NULL,
     "reserved_event_type", "events[1]: "},
    {"reserved raw event type", "text/plain", B("x"), "sys.gap", "reserved_event_type",
     "reserved"},
    {"source_timestamp negative", JSON, B("{\"source_timestamp\": -1, \"data\": 1}"),
     NULL, "invalid_source_timestamp", "'source_timestamp'"},
    {"source_timestamp too big", JSON,
     B("{\"source_timestamp\": 9007199254740992, \"data\": 1}"), NULL,
     "invalid_source_timestamp", "'source_timestamp'"},
    {"source_timestamp a string", JSON, B("{\"source_timestamp\": \"5\", \"data\": 1}"),
     NULL, "invalid_source_timestamp", "'source_timestamp'"},
    {"retry negative", JSON, B("{\"retry\": -1, \"data\": 1}"), NULL, "invalid_retry",
     "'retry' must be an integer from 0 to 86400000"},
    {"retry too big", JSON, B("{\"retry\": 86400001, \"data\": 1}"), NULL,
     "invalid_retry", "'retry'"},
    {"retry real", JSON, B("{\"retry\": 1.0, \"data\": 1}"), NULL, "invalid_retry",
     "'retry'"},
    {"retry string", JSON, B("{\"retry\": \"5\", \"data\": 1}"), NULL, "invalid_retry",
     "'retry'"},
    {"retry null", JSON, B("{\"retry\": null, \"data\": 1}"), NULL, "invalid_retry",
     "'retry'"},
    {"unknown field", JSON, B("{\"data\": 1, \"id\": \"5\"}"), NULL, "unknown_field",
     "unknown field 'id'"},
    {"unknown field in batch", JSON, B("[{\"data\": 1}, {\"data\": 1, \"Data\": 2}]"),
     NULL, "unknown_field", "events[1]: unknown field 'Data'"},
    {"bad element after good ones", JSON,
     B("[{\"data\": \"a\", \"event\": \"e\"}, {\"data\": {\"x\": 1}}, {\"data\": 1, "
       "\"retry\": -5}]"),
     NULL, "invalid_retry", "events[2]: "},
    /* raw bodies */
    {"NUL in raw body", "text/plain", B("a\0b"), NULL, "invalid_data", "NUL"},
    {"raw bytes not UTF-8", "application/octet-stream", B("\xff\xfe\x80"), NULL,
     "invalid_data", "UTF-8"},
    {"overlong UTF-8", "text/plain", B("\xc0\xaf"), NULL, "invalid_data", "UTF-8"},
    {"UTF-8 surrogate", "text/plain", B("\xed\xa0\x80"), NULL, "invalid_data", "UTF-8"},
    {"truncated UTF-8", "text/plain", B("ab\xe2\x82"), NULL, "invalid_data", "UTF-8"},
    {"query event not UTF-8", NULL, B("x"), "\xff", "invalid_event", "event type"},
    {"query event with CR", NULL, B("x"), "a\rb", "invalid_event", "event type"},
    {"query event with LF", "text/plain", B("x"), "a\n", "invalid_event", "event type"},
    {"query event of 201 bytes", NULL, B("x"),
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "invalid_event", "event type"},
};

static void test_errors(void)
{
    for (size_t i = 0; i < N_ELEMS(err_cases); i++) {
        const struct err_case *t = &err_cases[i];
        pub_batch b;
        const char *code = NULL;
        char err[256] = "";

        memset(&b, 0xab, sizeof(b)); /* the parser must zero it */
        int rc = publish_parse(t->ctype, t->body, t->len, t->query_event, &b, &code, err,
                               sizeof(err));
        ok(rc == -1 && code && strcmp(code, t->code) == 0 && strstr(err, t->msg) != NULL,
           "%s -> %s: %s", t->name, code ? code : "(null)", err);
        ok(b.ev == NULL && b.n == 0 && b.is_array == 0, "%s: out left empty", t->name);
        pub_batch_free(&b); /* no-op unless the case wrongly succeeded */
    }
}

/* An array of 'n' events as JSON text; caller frees. */
static char *batch_text(size_t n, size_t *len)
{
    static const char one[] = "{\"data\":\"x\"},";
    char *s = malloc(n * (sizeof(one) - 1) + 3);
    size_t off = 0;

    s[off++] = '[';
    for (size_t i = 0; i < n; i++) {
        memcpy(s + off, one, sizeof(one) - 1);
        off += sizeof(one) - 1;
    }
    s[off - 1] = ']'; /* replaces the last comma */
    s[off] = '\0';
    *len = off;
    return s;
}

static void test_batch_limits(void)
{
    pub_batch b;
    const char *code = NULL;
    char err[256] = "";
    size_t len;
    char *text;

    text = batch_text(PUB_BATCH_MAX, &len);
    ok(publish_parse(JSON, text, len, NULL, &b, &code, err, sizeof(err)) == 0 &&
           b.n == PUB_BATCH_MAX && b.is_array,
       "batch of %d accepted", PUB_BATCH_MAX);
    pub_batch_free(&b);
    free(text);

    text = batch_text(PUB_BATCH_MAX + 1, &len);
    ok(publish_parse(JSON, text, len, NULL, &b, &code, err, sizeof(err)) == -1 && code &&
           strcmp(code, "batch_too_large") == 0 && b.n == 0,
       "batch of %d rejected: %s", PUB_BATCH_MAX + 1, err);
    free(text);

    /* The body length bounds the parse: bytes past it are not read. */
    ok(publish_parse(JSON, "{\"data\":1}xyz", 10, NULL, &b, &code, err, sizeof(err)) ==
               0 &&
           b.n == 1 && strcmp(b.ev[0].data, "1") == 0,
       "JSON body bounded by len");
    pub_batch_free(&b);
    ok(publish_parse("text/plain", "abcdef", 3, NULL, &b, &code, err, sizeof(err)) == 0 &&
           b.ev[0].data_len == 3 && strcmp(b.ev[0].data, "abc") == 0,
       "raw body bounded by len");
    pub_batch_free(&b);

    /* No code or error buffer is fine. */
    ok(publish_parse(JSON, "[]", 2, NULL, &b, NULL, NULL, 0) == -1 && b.n == 0,
       "errors without code or message buffers");
    pub_batch_free(NULL);
    ok(1, "pub_batch_free(NULL)");
}

/* The configured bound on retry, below the parser's absolute one. */
static void test_retry_bound(void)
{
    static const char one[] = "{\"data\": \"x\", \"retry\": 60001}";
    static const char many[] = "[{\"data\": \"a\", \"retry\": 60000}, {\"data\": \"b\"}, "
                               "{\"data\": \"c\", \"retry\": 86400000}]";
    pub_batch b;
    const char *code = NULL;
    char err[256] = "";

    ok(publish_parse(JSON, one, sizeof(one) - 1, NULL, &b, &code, err, sizeof(err)) ==
               0 &&
           pub_batch_check_retry(&b, 60000, &code, err, sizeof(err)) == -1 && code &&
           strcmp(code, "invalid_retry") == 0 &&
           strcmp(err, "'retry' must be an integer from 0 to 60000") == 0,
       "retry over the bound: %s", err);
    ok(pub_batch_check_retry(&b, 60001, &code, err, sizeof(err)) == 0,
       "retry at the bound is fine");
    pub_batch_free(&b);
    ok(publish_parse(JSON, many, sizeof(many) - 1, NULL, &b, &code, err, sizeof(err)) ==
               0 &&
           pub_batch_check_retry(&b, 60000, &code, err, sizeof(err)) == -1 &&
           strcmp(err, "events[2]: 'retry' must be an integer from 0 to 60000") == 0,
       "a batch names the event over the bound: %s", err);
    ok(pub_batch_check_retry(&b, 86400000, NULL, NULL, 0) == 0, "all within 86400000");
    pub_batch_free(&b);
}

/* The source timestamp and the JSON flag of each event. */
static void test_source_and_json(void)
{
    pub_batch b;
    const char *code;
    char err[256];
    static const char body[] =
        "[{\"data\": 42, \"source_timestamp\": 7}, {\"data\": "
        "\"42\"}, {\"data\": {\"a\": 1}, \"source_timestamp\": 0}]";
    ok(publish_parse("application/json", body, strlen(body), NULL, &b, &code, err,
                     sizeof(err)) == 0 &&
           b.n == 3,
       "a batch with source timestamps parses");
    ok(b.n == 3 && b.ev[0].is_json && !b.ev[1].is_json && b.ev[2].is_json,
       "non-string data is JSON, a string is not");
    ok(b.n == 3 && b.ev[0].has_src_ts && b.ev[0].src_ts == 7 && !b.ev[1].has_src_ts &&
           b.ev[2].has_src_ts && b.ev[2].src_ts == 0,
       "each event keeps its source timestamp");
    pub_batch_default_source_ts(&b, 99);
    ok(b.n == 3 && b.ev[0].src_ts == 7 && b.ev[1].has_src_ts && b.ev[1].src_ts == 99 &&
           b.ev[2].src_ts == 0,
       "the query's source timestamp fills only the events without one");
    pub_batch_free(&b);
    ok(publish_parse("text/plain", "42", 2, NULL, &b, &code, err, sizeof(err)) == 0 &&
           b.n == 1 && !b.ev[0].is_json && !b.ev[0].has_src_ts,
       "a raw body is never JSON");
    pub_batch_free(&b);
    int64_t v = -1;
    ok(pub_parse_source_ts("0", &v) == 0 && v == 0, "source timestamp 0");
    ok(pub_parse_source_ts("9007199254740991", &v) == 0 && v == PUB_SOURCE_TS_MAX,
       "the largest source timestamp");
    ok(pub_parse_source_ts("9007199254740992", &v) < 0 &&
           pub_parse_source_ts("-1", &v) < 0 && pub_parse_source_ts("", &v) < 0 &&
           pub_parse_source_ts("1e6", &v) < 0 && pub_parse_source_ts(" 1", &v) < 0,
       "bad source timestamps are refused");
}

int main(void)
{
    test_ok();
    test_source_and_json();
    test_errors();
    test_batch_limits();
    test_retry_bound();
    return done_testing();
}
