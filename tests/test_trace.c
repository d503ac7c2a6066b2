/* test_trace.c - unit tests for traces (src/domain/trace.c): a request's
 * validation and defaults, the stored form there and back, when a trace runs
 * and what it matches, and a record's text. */
#include "src/domain/msg.h"
#include "src/domain/trace.h"
#include "tests/tap.h"

#include <stdlib.h>
#include <string.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static const trace_bounds BOUNDS = {500, 30};

static trace *from_request(const char *text, const char **code)
{
    json_t *o = json_loads(text, 0, NULL);
    char err[200] = "";
    trace *t = trace_from_request(o, &BOUNDS, 1000000, code, err, sizeof(err));
    if (!t && !*err)
        diag("no message for %s", text);
    json_decref(o);
    return t;
}

static void test_request(void)
{
    static const char *const bad[] = {
        "[]",
        "{\"match\": [\"a\"]}",
        "{\"id\": \"\", \"match\": [\"a\"]}",
        "{\"id\": \"a/b\", \"match\": [\"a\"]}",
        "{\"id\": 3, \"match\": [\"a\"]}",
        "{\"id\": \"t\"}",
        "{\"id\": \"t\", \"match\": []}",
        "{\"id\": \"t\", \"match\": \"a\"}",
        "{\"id\": \"t\", \"match\": [\"a.*.b\"]}",
        "{\"id\": \"t\", \"match\": [\"u.{sub}\"]}",
        "{\"id\": \"t\", \"match\": [\"a..b\"]}",
        "{\"id\": \"t\", \"match\": [\"a\"], \"limit\": 0}",
        "{\"id\": \"t\", \"match\": [\"a\"], \"limit\": 501}",
        "{\"id\": \"t\", \"match\": [\"a\"], \"limit\": 2.0}",
        "{\"id\": \"t\", \"match\": [\"a\"], \"duration_s\": 31}",
        "{\"id\": \"t\", \"match\": [\"a\"], \"duration_s\": -1}",
        "{\"id\": \"t\", \"match\": [\"a\"], \"x\": 1}",
        "{\"id\": \"t\", \"match\": [\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\", "
        "\"h\", "
        "\"i\", \"j\", \"k\", \"l\", \"m\", \"n\", \"o\", \"p\", \"q\"]}",
    };
    const char *code;
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        code = NULL;
        trace *t = from_request(bad[i], &code);
        ok(!t && code && strcmp(code, "invalid_trace") == 0, "refused: %s", bad[i]);
        trace_free(t);
    }
    trace *t = from_request("{\"id\": \"t:1\", \"match\": [\"news.*\", \"x.?\"]}", &code);
    ok(t && strcmp(t->id, "t:1") == 0 && t->nmatch == 2, "a trace with two patterns");
    ok(t && t->limit == 500 && t->duration_s == 30,
       "defaults lowered to the bounds when they are lower");
    ok(t && t->started_at == 1000000 && t->stopped_at == 0, "started now, not stopped");
    trace_free(t);
    t = from_request(
        "{\"id\": \"t\", \"match\": [\"a\"], \"limit\": 7, \"duration_s\": 3}", &code);
    ok(t && t->limit == 7 && t->duration_s == 3, "limit and duration as asked");
    trace_free(t);
    char id[TRACE_ID_MAX + 2];
    memset(id, 'a', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    ok(!trace_id_valid(id, strlen(id)), "a %d-byte id is too long", TRACE_ID_MAX + 1);
    ok(trace_id_valid(id, TRACE_ID_MAX) == 0, "(a length that is not the string's: no)");
    id[TRACE_ID_MAX] = '\0';
    ok(trace_id_valid(id, strlen(id)), "a %d-byte id is fine", TRACE_ID_MAX);
    ok(!trace_id_valid("..", 2) && !trace_id_valid(".", 1), "'.' and '..' are no ids");
}

static void test_stored(void)
{
    const char *code;
    trace *t = from_request(
        "{\"id\": \"s\", \"match\": [\"a.*\", \"b\"], \"limit\": 9, \"duration_s\": 2}",
        &code);
    char *text = t ? trace_to_text(t) : NULL;
    trace *back = text ? trace_from_text(text, strlen(text)) : NULL;
    ok(back && strcmp(back->id, "s") == 0 && back->nmatch == 2 &&
           strcmp(back->match[0], "a.*") == 0 && strcmp(back->match[1], "b") == 0 &&
           back->limit == 9 && back->duration_s == 2 && back->started_at == 1000000 &&
           back->stopped_at == 0,
       "there and back: %s", text ? text : "(null)");
    ok(trace_running(back, 2999999) && !trace_running(back, 3000000),
       "it runs until started_at + duration_s");
    ok(trace_matches(back, "a") && trace_matches(back, "a.b.c") &&
           trace_matches(back, "b") && !trace_matches(back, "b.c") &&
           !trace_matches(back, "ab"),
       "it matches its patterns only");
    back->stopped_at = 1500000;
    free(text);
    text = trace_to_text(back);
    trace *stopped = text ? trace_from_text(text, strlen(text)) : NULL;
    ok(stopped && stopped->stopped_at == 1500000 && !trace_running(stopped, 1600000),
       "stopped: no longer running, and stored so");
    json_t *j = stopped ? trace_to_json(stopped, 1600000, 42) : NULL;
    ok(j && json_integer_value(json_object_get(j, "ends_at")) == 1500000 &&
           strcmp(json_string_value(json_object_get(j, "state")), "stopped") == 0 &&
           json_integer_value(json_object_get(j, "records")) == 42,
       "the API form: ends when stopped, its state and its records");
    json_decref(j);
    static const char *const bad[] = {
        "", "[]", "{\"id\": \"x\"}",
        "{\"id\": \"a/b\", \"match\": [], \"limit\": 1, "
        "\"duration_s\": 1, \"started_at\": 1}",
        "{\"id\": \"x\", \"match\": [\"a..b\"], \"limit\": 1, "
        "\"duration_s\": 1, \"started_at\": 1}"};
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        trace *x = trace_from_text(bad[i], strlen(bad[i]));
        ok(!x, "no trace from '%s'", bad[i]);
        trace_free(x);
    }
    trace_free(stopped);
    trace_free(back);
    trace_free(t);
    free(text);
}

static void test_record(void)
{
    msg *m = msg_new(17, "tick", "hello", 5, 123, -1);
    const char *code = NULL;
    char err[100];
    msg_set_pub(m, target_new(NULL, "alice", "user", &code, err, sizeof(err)));
    trace_seen sn = {"news", m, "0123456789abcdef", 456, 3, 1, NULL};
    size_t len = 0;
    char *tail = trace_record_tail(&sn, &len);
    char whole[1024];
    snprintf(whole, sizeof(whole), "%s%d%s", TRACE_RECORD_HEAD, 5, tail ? tail : "");
    json_t *o = json_loads(whole, 0, NULL);
    ok(tail && len == strlen(tail) && tail[0] == ',', "the tail follows the number");
    ok(o && json_integer_value(json_object_get(o, "seq")) == 5 &&
           json_integer_value(json_object_get(o, "time")) == 456 &&
           strcmp(json_string_value(json_object_get(o, "node")), "0123456789abcdef") ==
               0 &&
           strcmp(json_string_value(json_object_get(o, "channel")), "news") == 0 &&
           strcmp(json_string_value(json_object_get(o, "id")), "17") == 0 &&
           strcmp(json_string_value(json_object_get(o, "event")), "tick") == 0 &&
           json_integer_value(json_object_get(o, "timestamp")) == 123 &&
           json_integer_value(json_object_get(o, "size")) == 5 &&
           strcmp(json_string_value(json_object_get(o, "authid")), "alice") == 0 &&
           strcmp(json_string_value(json_object_get(o, "authrole")), "user") == 0 &&
           json_integer_value(json_object_get(o, "streams")) == 3 &&
           json_integer_value(json_object_get(o, "connections")) == 1 &&
           json_is_null(json_object_get(o, "connection")),
       "the record: %s", whole);
    json_decref(o);
    free(tail);
    msg_unref(m);

    m = msg_new(18, NULL, "", 0, 1, -1);
    sn.m = m;
    sn.connection = "c-42";
    tail = trace_record_tail(&sn, &len);
    snprintf(whole, sizeof(whole), "%s%d%s", TRACE_RECORD_HEAD, 6, tail ? tail : "");
    o = json_loads(whole, 0, NULL);
    ok(o && json_is_null(json_object_get(o, "event")) &&
           json_is_null(json_object_get(o, "authid")) &&
           json_is_null(json_object_get(o, "authrole")) &&
           strcmp(json_string_value(json_object_get(o, "connection")), "c-42") == 0,
       "no type, an anonymous publisher: nulls; published to one connection: its id");
    json_decref(o);
    free(tail);
    msg_unref(m);
}

int main(void)
{
    test_request();
    test_stored();
    test_record();
    return done_testing();
}
