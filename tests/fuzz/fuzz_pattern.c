/* fuzz_pattern.c - libFuzzer target for channel patterns (src/domain/pattern.c).
 *
 * The input is "PATTERN\nNAME[\nSUB]". pattern_valid() is compared with a
 * reference written from pattern.h (split into segments first), and, for a
 * valid pattern and a valid channel name, pattern_match() with a reference
 * matcher on segment arrays (recursive, as the contract reads);
 * pattern_topic_valid() and pattern_is_exact() with references on the same
 * segments. Any disagreement aborts. */
#include "src/domain/names.h"
#include "src/domain/pattern.h"

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
    }
    free(in);
    return 0;
}
