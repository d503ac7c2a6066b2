/* fuzz_pattern.c - libFuzzer target for channel patterns (src/domain/pattern.c).
 *
 * The input is "PATTERN\nNAME[\nSUB]". pattern_valid() is compared with a
 * reference written from pattern.h (split into segments first), and, for a
 * valid pattern and a valid channel name, pattern_match() with a reference
 * matcher on segment arrays (recursive, as the contract reads);
 * pattern_topic_valid() and pattern_is_exact() with references on the same
 * segments. Then the segment tree (src/domain/segtree.c) against
 * pattern_match(): a tree holding the pattern and patterns made from it (its
 * prefixes with '*', each segment as '?') must call each one's value exactly
 * when pattern_match() says it matches the name, also with
 * SEGTREE_FIRST_LITERAL, after half of them are removed, and must be back to
 * its empty size once all are. Any disagreement aborts. */
#include "src/domain/names.h"
#include "src/domain/pattern.h"
#include "src/domain/segtree.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_pattern: check failed: %s (line %d)\n", #cond,         \
                    __LINE__);                                                           \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#define SEGS_MAX 256

/* Split 's' at '.' into at most SEGS_MAX segments (pointers into a copy). */
static int split(char *s, char *seg[SEGS_MAX])
{
    int n = 0;
    seg[n++] = s;
    for (char *p = s; *p; p++) {
        if (*p == '.') {
            if (n == SEGS_MAX)
                return -1;
            *p = '\0';
            seg[n++] = p + 1;
        }
    }
    return n;
}

static int ref_valid(const char *p, size_t len)
{
    static const char lit[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                              "0123456789_:-";
    char copy[PATTERN_MAX + 1], *seg[SEGS_MAX];
    if (len == 0 || len > PATTERN_MAX || memchr(p, '\0', len))
        return 0;
    memcpy(copy, p, len);
    copy[len] = '\0';
    int n = split(copy, seg);
    if (n < 0)
        return 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(seg[i], "*") == 0 ? i != n - 1 : 0)
            return 0;
        if (!strcmp(seg[i], "*") || !strcmp(seg[i], "?") || !strcmp(seg[i], "{sub}"))
            continue;
        for (const char *c = seg[i]; *c; c++)
            if (!strchr(lit, *c))
                return 0;
    }
    return 1;
}

static int ref_match(char **ps, int np, char **ns, int nn, const char *sub)
{
    if (np == 0)
        return nn == 0;
    if (np == 1 && strcmp(ps[0], "*") == 0)
        return 1;
    if (nn == 0)
        return 0;
    if (strcmp(ps[0], "?") == 0)
        ;
    else if (strcmp(ps[0], "{sub}") == 0) {
        if (!sub || !*sub || strcmp(ns[0], sub) != 0)
            return 0;
    } else if (strcmp(ps[0], ns[0]) != 0)
        return 0;
    return ref_match(ps + 1, np - 1, ns + 1, nn - 1, sub);
}

/* A topic pattern: valid, no {sub}, no empty segment. */
static int ref_topic_valid(const char *p, size_t len)
{
    char copy[PATTERN_MAX + 1], *seg[SEGS_MAX];
    if (!ref_valid(p, len))
        return 0;
    memcpy(copy, p, len);
    copy[len] = '\0';
    int n = split(copy, seg);
    for (int i = 0; i < n; i++)
        if (!seg[i][0] || strcmp(seg[i], "{sub}") == 0)
            return 0;
    return n > 0;
}

static int ref_exact(const char *p)
{
    char copy[PATTERN_MAX + 1], *seg[SEGS_MAX];
    strcpy(copy, p);
    int n = split(copy, seg);
    for (int i = 0; i < n; i++)
        if (!strcmp(seg[i], "*") || !strcmp(seg[i], "?") || !strcmp(seg[i], "{sub}"))
            return 0;
    return 1;
}

#define VARS 32

static void count_hit(void *val, void *arg)
{
    (void)arg;
    (*(int *)val)++;
}

/* Whether pattern 'p' starts with a literal segment (not '?' or '*'). */
static int first_literal(const char *p)
{
    size_t n = strcspn(p, ".");
    return !((n == 1 && (p[0] == '?' || p[0] == '*')));
}

/* The values' hit counters: value i is &tree_hits[i]. */
static int tree_hits[VARS];

/* Match 'name' in 't' (with 'flags') and compare each value's calls with
 * pattern_match() for the patterns still in: 'in[i]'. */
static void tree_round(const segtree *t, char vars[][PATTERN_MAX + 1], const int *in,
                       int nv, const char *name, unsigned flags)
{
    memset(tree_hits, 0, sizeof(tree_hits));
    CHECK(segtree_match(t, name, flags, count_hit, NULL) == 0);
    for (int i = 0; i < nv; i++) {
        int want = in[i] && pattern_match(vars[i], name, NULL) &&
                   (!(flags & SEGTREE_FIRST_LITERAL) || first_literal(vars[i]));
        CHECK(tree_hits[i] == want);
    }
}

/* The tree against the linear matcher, for a valid pattern without {sub}
 * and a valid channel name. */
static void check_tree(const char *pat, const char *name)
{
    static char vars[VARS][PATTERN_MAX + 1];
    int in[VARS], nv = 0;
    size_t len = strlen(pat);
    segtree *t = segtree_new(0);
    if (!t)
        return;
    size_t empty = segtree_bytes(t);
    strcpy(vars[nv++], pat);
    for (size_t i = 0; i <= len && nv < VARS; i++) { /* each prefix, then '*' */
        if (i < len && pat[i] != '.')
            continue;
        if (i + 2 <= PATTERN_MAX && pattern_valid(pat, i) && pat[i - 1] != '*') {
            memcpy(vars[nv], pat, i);
            memcpy(vars[nv] + i, ".*", 3);
            nv++;
        }
    }
    for (size_t i = 0; i < len && nv < VARS; i++) { /* each segment as '?' */
        if (i > 0 && pat[i - 1] != '.')
            continue;
        size_t n = strcspn(pat + i, ".");
        if (len - n + 1 > PATTERN_MAX || (n == 1 && pat[i] == '*'))
            continue;
        memcpy(vars[nv], pat, i);
        vars[nv][i] = '?';
        strcpy(vars[nv] + i + 1, pat + i + n);
        nv++;
    }
    for (int i = 0; i < nv; i++) {
        CHECK(pattern_valid(vars[i], strlen(vars[i])));
        CHECK(segtree_add(t, vars[i], &tree_hits[i]) == 0);
        in[i] = 1;
    }
    CHECK(segtree_count(t) == (size_t)nv);
    tree_round(t, vars, in, nv, name, 0);
    tree_round(t, vars, in, nv, name, SEGTREE_FIRST_LITERAL);
    for (int i = 0; i < nv; i += 2) {
        CHECK(segtree_remove(t, vars[i], &tree_hits[i]) == 0);
        in[i] = 0;
    }
    tree_round(t, vars, in, nv, name, 0);
    for (int i = 1; i < nv; i += 2)
        CHECK(segtree_remove(t, vars[i], &tree_hits[i]) == 0);
    CHECK(segtree_count(t) == 0 && segtree_bytes(t) == empty);
    segtree_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1), *pat, *name, *sub = NULL, *nl;
    if (!in)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    pat = in;
    if (!(nl = memchr(in, '\n', size))) {
        CHECK(pattern_valid(in, size) == ref_valid(in, size));
        free(in);
        return 0;
    }
    *nl = '\0';
    name = nl + 1;
    if ((nl = strchr(name, '\n'))) {
        *nl = '\0';
        sub = nl + 1;
    }
    size_t plen = strlen(pat);
    int valid = pattern_valid(pat, plen);
    CHECK(valid == ref_valid(pat, plen));
    CHECK(pattern_topic_valid(pat, plen) == ref_topic_valid(pat, plen));
    if (valid)
        CHECK(pattern_is_exact(pat) == ref_exact(pat));
    if (valid && valid_channel_name(name, strlen(name))) {
        char pc[PATTERN_MAX + 1], nc[CHAN_NAME_MAX + 1], *ps[SEGS_MAX], *ns[SEGS_MAX];
        strcpy(pc, pat);
        strcpy(nc, name);
        int np = split(pc, ps), nn = split(nc, ns);
        if (np > 0 && nn > 0)
            CHECK(pattern_match(pat, name, sub) == ref_match(ps, np, ns, nn, sub));
        if (!strstr(pat, "{sub}"))
            check_tree(pat, name);
    }
    free(in);
    return 0;
}
