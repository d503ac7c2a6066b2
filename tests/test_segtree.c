/* test_segtree.c - the segment tree of patterns (src/domain/segtree.c): the
 * matching rules of hat.event's query types, the tree against the linear
 * matcher (pattern_match) on many patterns at once, removal, and its bytes. */
#include "src/domain/pattern.h"
#include "src/domain/segtree.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/tap.h"

#define NVALS 64

/* How many times each value was matched: values are &hits[i]. */
static int hits[NVALS];

static void count_hit(void *val, void *arg)
{
    (void)arg;
    (*(int *)val)++;
}

static void clear_hits(void)
{
    memset(hits, 0, sizeof(hits));
}

/* Whether 'pattern', alone in a tree, matches 'name'. */
static int tree_matches(const char *pattern, const char *name)
{
    segtree *t = segtree_new(0);
    int r = -1;
    clear_hits();
    if (t && segtree_add(t, pattern, &hits[0]) == 0 &&
        segtree_match(t, name, 0, count_hit, NULL) == 0)
        r = hits[0];
    segtree_free(t);
    return r;
}

/* A pattern and a name, and whether one matches the other. */
typedef struct rule {
    const char *pattern, *name;
    int match;
} rule;

/* hat.event's query types, written as our patterns: 'a.b' is ('a', 'b'). */
static const rule rules[] = {
    {"a", "a", 1},
    {"a", "b", 0},
    {"a", "a.b", 0},
    {"a.b", "a", 0},
    {"a.b", "a.b", 1},
    /* '*' matches zero or more segments: an empty tail too */
    {"*", "a", 1},
    {"*", "a.b.c", 1},
    {"a.*", "a", 1},
    {"a.*", "a.b", 1},
    {"a.*", "a.b.c", 1},
    {"a.*", "b", 0},
    {"a.*", "ab", 0},
    {"a.b.*", "a", 0},
    {"a.b.*", "a.b", 1},
    {"a.b.*", "a.c.b", 0},
    /* '?' is exactly one segment, never an absent one */
    {"?", "a", 1},
    {"?", "a.b", 0},
    {"a.?", "a", 0},
    {"a.?", "a.b", 1},
    {"a.?", "a.b.c", 0},
    {"?.b", "a.b", 1},
    {"?.b", "b", 0},
    {"?.?", "a.b", 1},
    {"?.?", "a", 0},
    {"?.*", "a", 1},
    {"?.*", "a.b.c", 1},
    {"a.?.*", "a", 0},
    {"a.?.*", "a.b", 1},
    {"a.?.*", "a.b.c", 1},
    {"a.?.c", "a.b.c", 1},
    {"a.?.c", "a.b.d", 0},
    {"?.?.*", "a", 0},
    /* empty segments of a name are segments like any other */
    {"?", "", 1},
    {"a.?", "a.", 1},
    {"a..b", "a..b", 1},
    {"?.?.?", "a..b", 1},
    {"a.*", "a.", 1},
};

static void test_rules(void)
{
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        const rule *r = &rules[i];
        ok(tree_matches(r->pattern, r->name) == r->match &&
               pattern_match(r->pattern, r->name, NULL) == r->match,
           "'%s' %s '%s' (tree and linear matcher)", r->pattern,
           r->match ? "matches" : "does not match", r->name);
    }
}

static void test_invalid(void)
{
    segtree *t = segtree_new(0);
    size_t empty = segtree_bytes(t);
    static const char *const bad[] = {"",     "a.*.b",      "*.a", "a*",
                                      "a.?b", "user.{sub}", "a b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ok(segtree_add(t, bad[i], &hits[0]) == SEGTREE_EINVAL,
           "'%s' is not a pattern the tree holds", bad[i]);
    ok(segtree_count(t) == 0 && segtree_bytes(t) == empty, "and the tree is unchanged");
    char long_name[SEGTREE_NAME_MAX + 2];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    ok(segtree_match(t, long_name, 0, count_hit, NULL) == SEGTREE_EINVAL,
       "a name over %d bytes is refused", SEGTREE_NAME_MAX);
    ok(segtree_remove(t, "a.b", &hits[0]) == SEGTREE_ENOTFOUND,
       "removing what is not there: ENOTFOUND");
    segtree_free(t);
    segtree_free(NULL);
}

/* Several patterns in one tree, sharing branches; a value under two matching
 * patterns comes twice; removal frees what it leaves empty. */
static void test_many(void)
{
    segtree *t = segtree_new(0);
    size_t empty = segtree_bytes(t);
    static const char *const pats[] = {"a.*", "a.?", "a.b", "?.b", "*", "a.b.*", "x.y"};
    size_t np = sizeof(pats) / sizeof(pats[0]);
    int added = 1;
    for (size_t i = 0; i < np; i++)
        added &= segtree_add(t, pats[i], &hits[i]) == 0;
    added &=
        segtree_add(t, "a.?", &hits[10]) == 0 && segtree_add(t, "a.b", &hits[10]) == 0;
    ok(added && segtree_count(t) == np + 2, "%zu patterns added", np + 2);
    ok(segtree_bytes(t) > empty, "the tree counts its bytes (%zu)", segtree_bytes(t));

    clear_hits();
    segtree_match(t, "a.b", 0, count_hit, NULL);
    ok(hits[0] == 1 && hits[1] == 1 && hits[2] == 1 && hits[3] == 1 && hits[4] == 1 &&
           hits[5] == 1 && hits[6] == 0,
       "'a.b' matches a.*, a.?, a.b, ?.b, *, a.b.* and not x.y");
    ok(hits[10] == 2, "a value under two matching patterns is called twice");

    clear_hits();
    segtree_match(t, "sys.b", SEGTREE_FIRST_LITERAL, count_hit, NULL);
    ok(hits[3] == 0 && hits[4] == 0, "FIRST_LITERAL: '?.b' and '*' do not reach 'sys.b'");
    segtree_add(t, "sys.*", &hits[20]);
    clear_hits();
    segtree_match(t, "sys.b", SEGTREE_FIRST_LITERAL, count_hit, NULL);
    ok(hits[20] == 1, "FIRST_LITERAL: 'sys.*' does");
    segtree_remove(t, "sys.*", &hits[20]);

    ok(segtree_remove(t, "a.?", &hits[10]) == 0 &&
           segtree_remove(t, "a.?", &hits[10]) == SEGTREE_ENOTFOUND,
       "a pair is removed once");
    ok(segtree_remove(t, "a.b", &hits[3]) == SEGTREE_ENOTFOUND,
       "a value is removed only under its own pattern");
    clear_hits();
    segtree_match(t, "a.c", 0, count_hit, NULL);
    ok(hits[1] == 1 && hits[10] == 0, "the other value of 'a.?' stays");

    int removed = segtree_remove(t, "a.b", &hits[10]) == 0;
    for (size_t i = 0; i < np; i++)
        removed &= segtree_remove(t, pats[i], &hits[i]) == 0;
    ok(removed && segtree_count(t) == 0, "every pattern removed");
    ok(segtree_bytes(t) == empty, "an empty tree is back to its first size (%zu bytes)",
       segtree_bytes(t));
    clear_hits();
    segtree_match(t, "a.b", 0, count_hit, NULL);
    ok(hits[0] + hits[1] + hits[2] + hits[10] == 0, "and matches nothing");
    segtree_free(t);
}

/* The bound: an add over it is refused and changes nothing. */
static void test_bound(void)
{
    segtree *t = segtree_new(4096);
    char p[32];
    size_t i, before = 0;
    int r = 0;
    for (i = 0; i < 1000; i++) {
        snprintf(p, sizeof(p), "dev.%zu.*", i);
        before = segtree_bytes(t);
        if ((r = segtree_add(t, p, &hits[0])) != 0)
            break;
    }
    ok(r == SEGTREE_EFULL && i > 2, "the %zuth pattern is over 4096 bytes: EFULL", i + 1);
    ok(segtree_bytes(t) == before && segtree_bytes(t) <= 4096 && segtree_count(t) == i,
       "the tree is unchanged (%zu bytes, %zu patterns)", segtree_bytes(t),
       segtree_count(t));
    segtree_free(t);
}

/* Patterns and names from a small alphabet of segments, so that they meet:
 * the tree holding them all calls each value as often as pattern_match says
 * its pattern matches. Then half are removed, and the check runs again. */
static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return rnd_state >> 8;
}

static void random_text(char *out, int pattern)
{
    static const char *const lit[] = {"a", "b", "c", ""};
    int n = 1 + rnd() % 4;
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        int k = rnd() % (pattern ? 6 : 3);
        const char *s = k < 3 ? lit[k] : k == 3 ? "?" : k == 4 && i == n - 1 ? "*" : "a";
        if (i)
            strcat(out, ".");
        strcat(out, s);
    }
    if (!out[0])
        strcpy(out, "b"); /* one empty segment: not a pattern, a name all the same */
}

static void test_random(void)
{
    char pats[NVALS][32], name[32];
    int bad = 0, rounds = 0;
    for (int round = 0; round < 50; round++) {
        segtree *t = segtree_new(0);
        for (int i = 0; i < NVALS; i++) {
            random_text(pats[i], 1);
            if (segtree_add(t, pats[i], &hits[i]) != 0)
                bad++;
        }
        for (int phase = 0; phase < 2; phase++) {
            for (int k = 0; k < 40; k++) {
                random_text(name, 0);
                clear_hits();
                segtree_match(t, name, 0, count_hit, NULL);
                for (int i = 0; i < NVALS; i++) {
                    int want =
                        (phase == 0 || i % 2) && pattern_match(pats[i], name, NULL);
                    if (hits[i] != want) {
                        diag("'%s' on '%s': tree %d, linear %d", pats[i], name, hits[i],
                             want);
                        bad++;
                    }
                }
                rounds++;
            }
            for (int i = 0; phase == 0 && i < NVALS; i += 2)
                if (segtree_remove(t, pats[i], &hits[i]) != 0)
                    bad++;
        }
        segtree_free(t);
    }
    ok(bad == 0,
       "the tree agrees with pattern_match on %d random names, %d patterns each", rounds,
       NVALS);
}

int main(void)
{
    test_rules();
    test_invalid();
    test_many();
    test_bound();
    test_random();
    return done_testing();
}
