/* test_hquery.c - history query parameters, matching, order and cursors
 * (src/domain/hquery.c). */
#include "src/domain/hquery.h"
#include "src/domain/msgq.h"
#include "tests/tap.h"

#include <string.h>

/* Parse "key=val" pairs (NULL-terminated) into 'q'; the first failure's code. */
static const char *parse(hquery *q, bool latest, const char *const *kv, size_t max)
{
    const char *code = NULL;
    char err[256], key[64];
    hquery_init(q);
    for (size_t i = 0; kv[i]; i++) {
        const char *eq = strchr(kv[i], '=');
        memcpy(key, kv[i], (size_t)(eq - kv[i]));
        key[eq - kv[i]] = '\0';
        int rc = hquery_param(q, latest, key, eq + 1, &code, err, sizeof(err));
        if (rc == 1)
            return "unknown";
        if (rc < 0)
            return code;
    }
    return hquery_finish(q, max, &code, err, sizeof(err)) < 0 ? code : "ok";
}

#define P(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_params(void)
{
    hquery q;
    const struct {
        const char *const *kv;
        const char *want;
    } cases[] = {
        {P("channel=a"), "ok"},
        {P("channel=a.*", "channel=b.?", "event=t.*", "event=x"), "ok"},
        {P("event=x"), "missing_channel"},
        {P("channel=a..b"), "invalid_pattern"},
        {P("channel=a.*.b"), "invalid_pattern"},
        {P("channel=a", "event=*.x"), "invalid_pattern"},
        {P("channel=a", "from=1", "to=2", "source_from=0", "source_to=9"), "ok"},
        {P("channel=a", "from=-1"), "invalid_time"},
        {P("channel=a", "from=1x"), "invalid_time"},
        {P("channel=a", "to=9223372036854775808"), "invalid_time"},
        {P("channel=a", "from=5", "to=4"), "invalid_time"},
        {P("channel=a", "source_from=5", "source_to=4"), "invalid_time"},
        {P("channel=a", "from=1", "from=2"), "duplicate_parameter"},
        {P("channel=a", "order=desc", "order_by=source_timestamp"), "ok"},
        {P("channel=a", "order=up"), "invalid_order"},
        {P("channel=a", "order_by=id"), "invalid_order"},
        {P("channel=a", "limit=0"), "invalid_limit"},
        {P("channel=a", "limit=101"), "invalid_limit"},
        {P("channel=a", "limit=100"), "ok"},
        {P("channel=a", "after=zz"), "invalid_cursor"},
        {P("channel=a", "what=1"), "unknown"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = parse(&q, false, cases[i].kv, 100);
        ok(strcmp(got, cases[i].want) == 0, "params %zu: %s (want %s)", i, got,
           cases[i].want);
    }
    ok(strcmp(parse(&q, false, P("channel=a"), 100), "ok") == 0 && q.limit == 100,
       "no limit: the maximum");
    ok(strcmp(parse(&q, true, P("channel=a", "from=1"), 100), "unknown") == 0,
       "latest takes channel and event only");
    const char *many[HQUERY_PATTERNS_MAX + 2];
    for (size_t i = 0; i <= HQUERY_PATTERNS_MAX; i++)
        many[i] = "channel=a";
    many[HQUERY_PATTERNS_MAX + 1] = NULL;
    ok(strcmp(parse(&q, false, many, 100), "too_many_patterns") == 0,
       "more than %d channels", HQUERY_PATTERNS_MAX);
}

static void test_match(void)
{
    hquery q;
    msg *m = msg_new(7, "t.a", "d", 1, 100, -1),
        *bare = msg_new(8, NULL, "d", 1, 200, -1);
    m->src_ts_us = 50;
    parse(&q, false, P("channel=a.*", "channel=sys.x"), 10);
    ok(hquery_chan_matches(&q, "a") && hquery_chan_matches(&q, "a.b.c") &&
           !hquery_chan_matches(&q, "b") && hquery_chan_matches(&q, "sys.x"),
       "channel patterns");
    parse(&q, false, P("channel=*"), 10);
    ok(hquery_chan_matches(&q, "x") && !hquery_chan_matches(&q, "sys.sessions"),
       "the broker's own channels only by a pattern naming them");
    parse(&q, false, P("channel=a", "event=t.?"), 10);
    ok(hquery_msg_matches(&q, m) && !hquery_msg_matches(&q, bare), "event patterns");
    parse(&q, false, P("channel=a", "event=message"), 10);
    ok(!hquery_msg_matches(&q, m) && hquery_msg_matches(&q, bare),
       "no type is \"message\"");
    parse(&q, false, P("channel=a", "from=100", "to=100"), 10);
    ok(hquery_msg_matches(&q, m) && !hquery_msg_matches(&q, bare),
       "time bounds are inclusive");
    parse(&q, false, P("channel=a", "source_to=50"), 10);
    ok(hquery_msg_matches(&q, m) && !hquery_msg_matches(&q, bare),
       "a source range leaves out messages without a source time");
    parse(&q, false, P("channel=a", "order_by=source_timestamp"), 10);
    ok(hquery_msg_matches(&q, m) && !hquery_msg_matches(&q, bare) &&
           hquery_key(&q, m) == 50,
       "ordered by source time: only messages that have one");
    parse(&q, false, P("channel=a"), 10);
    ok(hquery_before(&q, 1, 9, 2, 1) && hquery_before(&q, 2, 1, 2, 3) &&
           !hquery_before(&q, 2, 3, 2, 3) && !hquery_before(&q, 3, 1, 2, 9),
       "asc: by key, then id");
    parse(&q, false, P("channel=a", "order=desc"), 10);
    ok(!hquery_before(&q, 1, 9, 2, 1) && hquery_before(&q, 2, 3, 2, 1) &&
           !hquery_before(&q, 2, 3, 2, 3),
       "desc: the reverse");
    msg_unref(m);
    msg_unref(bare);
}

static void test_cursor(void)
{
    hquery q, other;
    char c[HQUERY_CURSOR_LEN + 1], arg[80];
    int64_t key;
    uint64_t id;
    parse(&q, false, P("channel=a.*", "event=x", "from=5"), 10);
    hquery_cursor(&q, 1796158878428494LL, 42, c);
    ok(strlen(c) == HQUERY_CURSOR_LEN, "a cursor is %d characters", HQUERY_CURSOR_LEN);
    ok(hquery_cursor_parse(&q, c, strlen(c), &key, &id) == 0 &&
           key == 1796158878428494LL && id == 42,
       "it reads back");
    snprintf(arg, sizeof(arg), "after=%s", c);
    ok(strcmp(parse(&other, false, P("channel=a.*", "event=x", "from=5", "limit=3", arg),
                    10),
              "ok") == 0 &&
           other.has_after && other.after_key == key && other.after_id == 42,
       "the same query with another limit takes it");
    ok(strcmp(parse(&other, false, P("channel=a.*", "event=x", "from=6", arg), 10),
              "invalid_cursor") == 0,
       "another time range does not");
    ok(strcmp(parse(&other, false,
                    P("channel=a.*", "event=x", "from=5", "order=desc", arg), 10),
              "invalid_cursor") == 0,
       "another order does not");
    ok(strcmp(parse(&other, false, P("channel=a.?", "event=x", "from=5", arg), 10),
              "invalid_cursor") == 0,
       "another channel pattern does not");
    for (size_t i = 0; i < HQUERY_CURSOR_LEN; i++) {
        char bad[HQUERY_CURSOR_LEN + 1];
        memcpy(bad, c, sizeof(bad));
        bad[i] = bad[i] == '0' ? '1' : '0';
        if (hquery_cursor_parse(&q, bad, strlen(bad), &key, &id) == 0) {
            ok(0, "a changed character %zu is refused", i);
            return;
        }
    }
    ok(1, "any changed character is refused");
    char upper[HQUERY_CURSOR_LEN + 1];
    memcpy(upper, c, sizeof(upper));
    for (char *p = upper; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    ok(strcmp(upper, c) == 0 ||
           hquery_cursor_parse(&q, upper, strlen(upper), &key, &id) < 0,
       "upper case hex is refused");
    ok(hquery_cursor_parse(&q, c, strlen(c) - 1, &key, &id) < 0 &&
           hquery_cursor_parse(&q, "", 0, &key, &id) < 0,
       "a short cursor is refused");
}

/* What a history says of its order (msgq.h), which queries search by. */
static void test_msgq_order(void)
{
    msgq h;
    msg *v[4];
    const int64_t ts[] = {10, 10, 20, 15}, src[] = {5, MSG_NO_SOURCE_TS, 7, 6};
    msgq_init(&h, 3);
    for (int i = 0; i < 4; i++) {
        v[i] = msg_new((uint64_t)i + 1, NULL, "d", 1, ts[i], -1);
        v[i]->src_ts_us = src[i];
    }
    msgq_push(&h, v[0]);
    msgq_push(&h, v[1]);
    msgq_push(&h, v[2]);
    ok(!h.ts_disorder && !h.src_disorder && h.nosrc == 1, "in order; one without source");
    msgq_push(&h, v[3]); /* drops v[0] */
    ok(h.ts_disorder && h.src_disorder && h.nosrc == 1 && h.len == 3,
       "an earlier time after a later one is disorder");
    msg_unref(msgq_shift(&h));
    ok(h.nosrc == 0, "the one without source left");
    while (h.len)
        msg_unref(msgq_shift(&h));
    msgq_push(&h, v[0]);
    ok(!h.ts_disorder && !h.src_disorder, "an emptied history starts in order again");
    msgq_free(&h);
    for (int i = 0; i < 4; i++)
        msg_unref(v[i]);
}

int main(void)
{
    test_msgq_order();
    test_params();
    test_match();
    test_cursor();
    return done_testing();
}
