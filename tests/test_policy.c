/* test_policy.c - unit tests for channel patterns (src/domain/pattern.c) and
 * the permission check (src/domain/policy.c): which patterns are valid, what
 * each matches, roles and token grants parsed or refused with a reason, and
 * policy_allows for roles, {sub}, token grants and the broker itself. */
#include "src/domain/pattern.h"
#include "src/domain/policy.h"
#include "tests/tap.h"

#include <stdlib.h>
#include <string.h>

static void test_valid(void)
{
    static const struct {
        const char *p;
        int want;
    } cases[] = {
        {"news", 1},      {"news.eu", 1},     {"news.?", 1},    {"news.*", 1},
        {"*", 1},         {"?", 1},           {"?.?.*", 1},     {"user.{sub}.*", 1},
        {"{sub}", 1},     {"a:b-c_d", 1},     {"a..b", 1},      {"", 0},
        {"news.*.eu", 0}, {"*.news", 0},      {"new*", 0},      {"ne?s", 0},
        {"news.**", 0},   {"user.{sub}x", 0}, {"user.{su}", 0}, {"{sub", 0},
        {"sub}", 0},      {"news eu", 0},     {"news/eu", 0},   {"news.\xc3\xa9", 0},
        {"a.*.*", 0},     {"??", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ok(pattern_valid(cases[i].p, strlen(cases[i].p)) == cases[i].want,
           "pattern_valid(\"%s\") is %d", cases[i].p, cases[i].want);
    char big[PATTERN_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ok(!pattern_valid(big, PATTERN_MAX + 1) && pattern_valid(big, PATTERN_MAX),
       "at most %d bytes", PATTERN_MAX);
    ok(!pattern_valid("a\0b", 3), "no NUL inside");
}

/* Topic patterns (multi-channel streams): no {sub}, no empty segment. */
static void test_topic_valid(void)
{
    static const struct {
        const char *p;
        int want, exact;
    } cases[] = {
        {"news", 1, 1},  {"news.eu", 1, 1},   {"news.?", 1, 0},    {"news.*", 1, 0},
        {"*", 1, 0},     {"?.?.*", 1, 0},     {"a:b-c_d", 1, 1},   {"a..b", 0, 0},
        {".a", 0, 0},    {"a.", 0, 0},        {".", 0, 0},         {"", 0, 0},
        {"{sub}", 0, 0}, {"u.{sub}.*", 0, 0}, {"news.*.eu", 0, 0}, {"*.news", 0, 0},
        {"new*", 0, 0},  {"a.*.*", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ok(pattern_topic_valid(cases[i].p, strlen(cases[i].p)) == cases[i].want,
           "pattern_topic_valid(\"%s\") is %d", cases[i].p, cases[i].want);
        if (cases[i].want)
            ok(pattern_is_exact(cases[i].p) == cases[i].exact,
               "pattern_is_exact(\"%s\") is %d", cases[i].p, cases[i].exact);
    }
}

static void test_match(void)
{
    static const struct {
        const char *p, *name, *sub;
        int want;
    } cases[] = {
        {"news", "news", NULL, 1},
        {"news", "news.eu", NULL, 0},
        {"news", "new", NULL, 0},
        {"news", "newsx", NULL, 0},
        {"news.?", "news.eu", NULL, 1},
        {"news.?", "news", NULL, 0},
        {"news.?", "news.eu.fr", NULL, 0},
        {"news.?", "news.", NULL, 1}, /* an empty segment is a segment */
        {"news.*", "news", NULL, 1},
        {"news.*", "news.eu", NULL, 1},
        {"news.*", "news.eu.fr", NULL, 1},
        {"news.*", "newsx", NULL, 0},
        {"news.*", "news2.eu", NULL, 0},
        {"*", "anything.at.all", NULL, 1},
        {"*", "x", NULL, 1},
        {"?.b.*", "a.b", NULL, 1},
        {"?.b.*", "a.c", NULL, 0},
        {"?.?", "a.b", NULL, 1},
        {"?.?", "a", NULL, 0},
        {"user.{sub}.*", "user.alice", "alice", 1},
        {"user.{sub}.*", "user.alice.inbox", "alice", 1},
        {"user.{sub}.*", "user.bob.inbox", "alice", 0},
        {"user.{sub}.*", "user.alice", NULL, 0},
        {"user.{sub}.*", "user.alic", "alice", 0},
        {"user.{sub}.*", "user.alicex", "alice", 0},
        {"user.{sub}", "user.a.b", "a.b", 0}, /* an authid is one segment or none */
        {"user.{sub}", "user.{sub}", "x", 0},
        {"a..b", "a..b", NULL, 1},
        {"a.?.b", "a..b", NULL, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ok(pattern_match(cases[i].p, cases[i].name, cases[i].sub) == cases[i].want,
           "\"%s\" %s \"%s\" (sub %s)", cases[i].p,
           cases[i].want ? "matches" : "does not match", cases[i].name,
           cases[i].sub ? cases[i].sub : "none");
}

static json_t *j(const char *text)
{
    json_t *v = json_loads(text, 0, NULL);
    if (!v)
        abort();
    return v;
}

static void test_parse(void)
{
    static const char *const bad_roles[] = {
        "[]",
        "{\"r\": 5}",
        "{\"r\": [{\"match\": \"*\"}]}",
        "{\"r\": [{\"match\": \"*\", \"allow\": [\"fly\"]}]}",
        "{\"r\": [{\"match\": \"a.*.b\", \"allow\": [\"publish\"]}]}",
        "{\"r\": [{\"match\": 5, \"allow\": [\"publish\"]}]}",
        "{\"r\": [{\"match\": \"*\", \"allow\": [\"publish\"], \"x\": 1}]}",
        "{\"r\": {\"permissions\": [], \"disclose_publisher\": 1}}",
        "{\"r\": {\"permissions\": [], \"other\": true}}",
        "{\"bad name\": []}",
        "{\"\": []}",
    };
    char err[256] = "";
    for (size_t i = 0; i < sizeof(bad_roles) / sizeof(bad_roles[0]); i++) {
        policy p = {0};
        json_t *v = j(bad_roles[i]);
        err[0] = '\0';
        ok(policy_add_roles(&p, v, err, sizeof(err)) < 0 && err[0] && p.nroles == 0,
           "roles %s refused: %s", bad_roles[i], err);
        json_decref(v);
        policy_free(&p);
    }
    policy p = {0};
    json_t *v = j("{\"a\": [{\"match\": \"*\", \"allow\": [\"subscribe\"]}]}");
    json_t *w = j("{\"a\": []}");
    ok(policy_add_roles(&p, v, err, sizeof(err)) == 0 && p.nroles == 1, "a role");
    ok(policy_add_roles(&p, w, err, sizeof(err)) < 0 && p.nroles == 1,
       "the same role twice refused: %s", err);
    json_decref(v);
    json_decref(w);
    policy_free(&p);

    static const char *const bad_claims[] = {
        "[]",
        "{\"manage\": [\"*\"]}",
        "{\"subscribe\": \"*\"}",
        "{\"subscribe\": [5]}",
        "{\"subscribe\": [\"a.*.b\"]}",
        "{\"fly\": []}",
    };
    for (size_t i = 0; i < sizeof(bad_claims) / sizeof(bad_claims[0]); i++) {
        grant_list g = {0};
        json_t *c = j(bad_claims[i]);
        ok(grant_list_from_claim(c, &g, err, sizeof(err)) < 0 && g.n == 0,
           "claim %s refused: %s", bad_claims[i], err);
        json_decref(c);
    }
}

static void test_allows(void)
{
    policy p = {0};
    char err[256] = "";
    json_t *roles =
        j("{"
          "\"backend\": [{\"match\": \"*\", \"allow\": [\"publish\", \"subscribe\", "
          "\"history\", \"manage\"]}],"
          "\"user\": {\"permissions\": ["
          "  {\"match\": \"user.{sub}.*\", \"allow\": [\"subscribe\", \"history\"]},"
          "  {\"match\": \"news.*\", \"allow\": [\"subscribe\"]},"
          "  {\"match\": \"chat.?\", \"allow\": [\"publish\", \"subscribe\"]}],"
          " \"disclose_publisher\": true},"
          "\"ops\": [{\"match\": \"news.*\", \"allow\": [\"manage\"]}]"
          "}");
    ok(policy_add_roles(&p, roles, err, sizeof(err)) == 0 && p.nroles == 3, "roles: %s",
       err);
    json_decref(roles);
    ok(policy_role_find(&p, "user")->disclose_publisher &&
           !policy_role_find(&p, "backend")->disclose_publisher,
       "disclose_publisher per role");

    char s_alice[] = "alice", s_svc[] = "svc", s_op[] = "op", s_g[] = "g";
    char r_user[] = "user", r_backend[] = "backend", r_ops[] = "ops",
         r_missing[] = "missing";
    identity alice = {.authid = s_alice, .authrole = r_user, .method = AUTHMETHOD_JWT};
    identity backend = {
        .authid = s_svc, .authrole = r_backend, .method = AUTHMETHOD_APIKEY};
    identity ops = {.authid = s_op, .authrole = r_ops};
    identity nobody = {.authrole = r_user}; /* anonymous with the user role */
    identity ghost = {.authid = s_g, .authrole = r_missing};

    ok(policy_allows(&p, &alice, ACT_SUBSCRIBE, "user.alice.inbox"),
       "alice: her channels");
    ok(policy_allows(&p, &alice, ACT_SUBSCRIBE | ACT_HISTORY, "user.alice"),
       "alice: subscribe and history on user.alice");
    ok(!policy_allows(&p, &alice, ACT_PUBLISH, "user.alice"), "alice: no publish there");
    ok(!policy_allows(&p, &alice, ACT_SUBSCRIBE, "user.bob"), "alice: not bob's");
    ok(!policy_allows(&p, &nobody, ACT_SUBSCRIBE, "user.alice"),
       "anonymous: {sub} matches nothing");
    ok(policy_allows(&p, &nobody, ACT_SUBSCRIBE, "news.eu"), "anonymous user: news");
    ok(!policy_allows(&p, &alice, ACT_SUBSCRIBE | ACT_HISTORY, "news.eu"),
       "both actions needed: subscribe without history is not enough");
    ok(policy_allows(&p, &alice, ACT_PUBLISH, "chat.room1") &&
           !policy_allows(&p, &alice, ACT_PUBLISH, "chat.room1.x"),
       "chat.?: one segment only");
    ok(!policy_allows(&p, &alice, ACT_MANAGE, NULL), "alice: not the broker");
    ok(policy_allows(&p, &backend, ACT_ALL, "anything") &&
           policy_allows(&p, &backend, ACT_MANAGE, NULL),
       "backend: everything, the broker too");
    ok(policy_allows(&p, &ops, ACT_MANAGE, "news.eu") &&
           !policy_allows(&p, &ops, ACT_MANAGE, NULL),
       "manage on news.* is not manage of the broker");
    ok(!policy_allows(&p, &ghost, ACT_SUBSCRIBE, "news.eu"),
       "an unknown role grants nothing");

    /* A token's own grants add to its role's. */
    json_t *claim =
        j("{\"publish\": [\"user.{sub}.outbox\"], \"history\": [\"news.*\"]}");
    ok(grant_list_from_claim(claim, &alice.extra, err, sizeof(err)) == 0 &&
           alice.extra.n == 2,
       "a claim's grants");
    json_decref(claim);
    ok(policy_allows(&p, &alice, ACT_PUBLISH, "user.alice.outbox"),
       "token grant: publish to her outbox ({sub} too)");
    ok(policy_allows(&p, &alice, ACT_SUBSCRIBE | ACT_HISTORY, "news.eu"),
       "subscribe from the role, history from the token");
    ok(!policy_allows(&p, &alice, ACT_PUBLISH, "user.bob.outbox"), "not bob's outbox");
    grant_list_free(&alice.extra);

    identity owned = {0};
    owned.authid = strdup("x");
    owned.authrole = strdup("user");
    identity_clear(&owned);
    ok(!owned.authid && !owned.authrole && owned.method == AUTHMETHOD_ANONYMOUS,
       "identity_clear frees and resets");
    policy_free(&p);
    ok(p.nroles == 0 && !p.roles, "policy_free");
    ok(strcmp(policy_action_name(ACT_HISTORY), "history") == 0 &&
           policy_action_parse("manage") == ACT_MANAGE && !policy_action_parse("all"),
       "action names");
}

int main(void)
{
    test_valid();
    test_topic_valid();
    test_match();
    test_parse();
    test_allows();
    return done_testing();
}
