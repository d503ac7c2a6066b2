/* test_target.c - unit tests for targeted delivery (src/domain/target.c): the
 * lists as publish takes them, the receiver test, the publication record in a
 * message's stored form and the publisher shown to a disclose_publisher
 * reader. */
#include "src/domain/msg.h"
#include "src/domain/publish.h"
#include "src/domain/target.h"
#include "tests/tap.h"

#include <stdlib.h>
#include <string.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static target_rec *from_text(const char *text, const char **code)
{
    json_t *o = json_loads(text, JSON_ALLOW_NUL, NULL);
    char err[160];
    target_rec *tg = target_new(o, NULL, NULL, code, err, sizeof(err));
    json_decref(o);
    return tg;
}

static void test_lists(void)
{
    static const char *const bad[] = {
        "{\"eligible\": \"a\"}",        "{\"exclude\": [1]}",
        "{\"exclude_authid\": [\"\"]}", "{\"eligible_authrole\": null}",
        "{\"eligible\": [[\"a\"]]}",    "{\"exclude\": [\"a\\u0000b\"]}",
        "{\"eligible_x\": [\"a\"]}",    "{\"eligible\": {}}",
    };
    const char *code;
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        target_rec *tg = from_text(bad[i], &code);
        ok(!tg && code && strcmp(code, "invalid_target") == 0, "refused: %s", bad[i]);
        target_free(tg);
    }
    /* The bounds: 100 entries of 256 bytes pass, one more of either fails. */
    json_t *lists = json_object(), *a = json_array();
    char item[TARGET_ITEM_MAX + 2];
    memset(item, 'x', TARGET_ITEM_MAX);
    item[TARGET_ITEM_MAX] = '\0';
    for (int i = 0; i < TARGET_LIST_MAX; i++)
        json_array_append_new(a, json_string(item));
    json_object_set_new(lists, "eligible", a);
    target_rec *tg = target_new(lists, NULL, NULL, &code, NULL, 0);
    ok(tg && tg->n[TARGET_ELIGIBLE] == TARGET_LIST_MAX, "100 entries of 256 bytes");
    target_free(tg);
    json_array_append_new(a, json_string("y"));
    tg = target_new(lists, NULL, NULL, &code, NULL, 0);
    ok(!tg && code && strcmp(code, "invalid_target") == 0, "101 entries: refused");
    json_array_clear(a);
    item[TARGET_ITEM_MAX] = 'x';
    item[TARGET_ITEM_MAX + 1] = '\0';
    json_array_append_new(a, json_string(item));
    tg = target_new(lists, NULL, NULL, &code, NULL, 0);
    ok(!tg && code && strcmp(code, "invalid_target") == 0, "257 bytes: refused");
    json_decref(lists);
    tg = from_text("{}", &code);
    ok(!tg && !code, "no list, no publisher: no record");
}

/* Receivers: {session, authid, authrole}. */
static const target_rcv A = {"s1", "alice", "user"}, B = {"s2", "bob", "user"},
                        C = {"s3", "carol", "admin"}, N = {"s4", NULL, "anon"},
                        H = {NULL, "alice", "user"}; /* alice reading the history */

static void test_allows(void)
{
    static const struct {
        const char *lists;
        const char *want; /* A B C N H: who gets it */
    } cases[] = {
        {"{\"eligible\": [\"s1\", \"s4\"]}", "10010"},
        {"{\"exclude\": [\"s1\"]}", "01111"},
        {"{\"eligible\": []}", "00000"},
        {"{\"exclude\": []}", "11111"},
        {"{\"eligible_authid\": [\"alice\"]}", "10001"},
        {"{\"exclude_authid\": [\"alice\"]}", "01110"},
        {"{\"eligible_authrole\": [\"user\"]}", "11001"},
        {"{\"exclude_authrole\": [\"user\", \"anon\"]}", "00100"},
        {"{\"eligible_authrole\": [\"user\"], \"exclude\": [\"s2\"]}", "10001"},
        {"{\"eligible\": [\"s1\", \"s3\"], \"eligible_authrole\": [\"admin\"]}", "00100"},
        {"{\"exclude_authid\": [\"bob\"], \"exclude_authrole\": [\"admin\"]}", "10011"},
        {"{\"eligible_authid\": [\"alice\", \"bob\"], \"exclude\": [\"s1\"]}", "01001"},
    };
    const target_rcv *rcv[] = {&A, &B, &C, &N, &H};
    const char *code;
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        target_rec *tg = from_text(cases[i].lists, &code);
        char got[6] = "";
        for (int r = 0; tg && r < 5; r++)
            got[r] = target_allows(tg, rcv[r]) ? '1' : '0';
        ok(tg && strcmp(got, cases[i].want) == 0, "%s: %s, want %s", cases[i].lists, got,
           cases[i].want);
        target_free(tg);
    }
}

/* A targeted message's stored text carries its record and reads back the
 * same; the API form and the SSE frame never show it; the disclosed form
 * adds the publisher's authid. */
static void test_stored(void)
{
    const char *code;
    target_rec *lists =
        from_text("{\"exclude_authid\": [\"b\\\"ob\"], \"eligible\": []}", &code);
    target_rec *pub = target_with_publisher(lists, "svc\"1", "user", &code);
    size_t len, rl;
    char *tail = msg_json_tail_pub("e", "d", 1, 1700000000000000LL, -1, pub, &len);
    char text[1024];
    snprintf(text, sizeof(text), "%s%s%s%s", MSG_JSON_HEAD, "42", MSG_JSON_MID "3", tail);
    msg *m = msg_from_json(text, strlen(text));
    msg *slow = msg_from_json_jansson(text, strlen(text));
    ok(m && m->pub && m->tg && m->pos == 3, "read back with its record: %s", text);
    ok(slow && slow->tg && slow->tg->n[TARGET_EXCLUDE_AUTHID] == 1,
       "jansson reads it too");
    const char *again = m ? msg_json_text(m, &rl) : NULL;
    ok(again && strcmp(again, text) == 0, "the stored text is the same again: %s", again);
    ok(m && m->pub->pub_authid && strcmp(m->pub->pub_authid, "svc\"1") == 0 &&
           strcmp(m->pub->pub_authrole, "user") == 0,
       "publisher kept");
    ok(m && !memmem(m->frame, m->frame_len, "svc", 3) &&
           !memmem(m->frame, m->frame_len, "ob", 2),
       "not in the SSE frame");
    json_t *api = m ? msg_to_json(m) : NULL;
    ok(api && json_object_size(api) == 4, "not in the API form");
    json_decref(api);
    ok(m && !target_allows(m->tg, &B) && !target_allows(m->tg, &A),
       "eligible [] lets nobody in");
    if (m) {
        /* Disclosed: the API form with "publisher_authid" last. */
        char out[4096], *p = out;
        msg_json_cursor c = {.disclose = 1};
        size_t n;
        while ((n = msg_json_piece(m, &c, p, MSG_JSON_PIECE_MIN)) > 0)
            p += n;
        *p = '\0';
        ok(msg_json_done(&c) &&
               strcmp(out, "{\"id\":\"42\",\"event\":\"e\",\"data\":\"d\",\"timestamp\":"
                           "1700000000000000,\"publisher_authid\":\"svc\\\"1\"}") == 0,
           "disclosed: %s", out);
        ok(msg_json_len_for(m, 1) == strlen(out), "its length %zu",
           msg_json_len_for(m, 1));
        ok(msg_json_len(m) == strlen(out) - strlen(",\"publisher_authid\":\"svc\\\"1\""),
           "undisclosed length");
        msg *bare = msg_new(42, "e", "d", 1, 1700000000000000LL, -1);
        ok(bare && msg_footprint(m) >= msg_footprint(bare) + m->pub->size,
           "the footprint counts the record");
        msg_unref(bare);
    }
    msg_unref(m);
    msg_unref(slow);
    free(tail);
    target_free(lists);
    target_free(pub);
    /* Untargeted from an anonymous publisher: the text is what it was. */
    tail = msg_json_tail_pub("e", "d", 1, 5, -1, NULL, &len);
    char *plain = msg_json_tail("e", "d", 1, 5, -1, &rl);
    ok(tail && plain && strcmp(tail, plain) == 0 && !strstr(tail, "publication"),
       "no record: the same text");
    free(tail);
    free(plain);
    /* Records that are no records. */
    static const char *const bad[] = {
        "{\"id\":\"1\",\"event\":null,\"data\":\"d\",\"timestamp\":1,\"publication\":{}}",
        "{\"id\":\"1\",\"event\":null,\"data\":\"d\",\"timestamp\":1,\"publication\":"
        "{\"x\":1}}",
        "{\"id\":\"1\",\"event\":null,\"data\":\"d\",\"timestamp\":1,\"publication\":"
        "{\"publisher_authid\":5}}",
        "{\"id\":\"1\",\"event\":null,\"data\":\"d\",\"timestamp\":1,\"publication\":[]}",
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        msg *b = msg_from_json(bad[i], strlen(bad[i]));
        ok(!b, "not a message: %s", bad[i]);
        msg_unref(b);
    }
}

/* Publish bodies: lists per event, in the query for raw bodies only, and the
 * publisher added to every event. */
static void test_publish(void)
{
    pub_batch b;
    const char *code;
    char err[256];
    static const char body[] =
        "[{\"data\":\"a\",\"eligible_authid\":[\"x\"]},{\"data\":\"b\"}]";
    ok(publish_parse("application/json", body, strlen(body), NULL, &b, &code, err,
                     sizeof(err)) == 0 &&
           b.n == 2 && b.ev[0].tg && !b.ev[1].tg,
       "lists per event");
    ok(pub_batch_set_publisher(&b, "svc", NULL) == 0 && b.ev[0].tg && b.ev[1].tg &&
           target_has_lists(b.ev[0].tg) && !target_has_lists(b.ev[1].tg) &&
           strcmp(b.ev[1].tg->pub_authid, "svc") == 0 && !b.ev[1].tg->pub_authrole,
       "publisher on every event");
    pub_batch_free(&b);
    json_t *q = json_loads("{\"exclude\": [\"s1\"]}", 0, NULL);
    ok(publish_parse_with("text/plain", "x", 1, NULL, q, &b, &code, err, sizeof(err)) ==
               0 &&
           b.ev[0].tg && b.ev[0].tg->n[TARGET_EXCLUDE] == 1,
       "raw body: lists from the query");
    pub_batch_free(&b);
    ok(publish_parse_with("application/json", "{\"data\":1}", 10, NULL, q, &b, &code, err,
                          sizeof(err)) < 0 &&
           strcmp(code, "invalid_target") == 0,
       "JSON body with query lists: %s", err);
    json_decref(q);
    static const char bad[] = "[{\"data\":\"a\"},{\"data\":\"b\",\"exclude\":\"s\"}]";
    ok(publish_parse("application/json", bad, strlen(bad), NULL, &b, &code, err,
                     sizeof(err)) < 0 &&
           strcmp(code, "invalid_target") == 0 && strncmp(err, "events[1]: ", 11) == 0,
       "a bad list names its event: %s", err);
}

int main(void)
{
    test_lists();
    test_allows();
    test_stored();
    test_publish();
    return done_testing();
}
