/* pattern.c - matching channel names against patterns, segment by segment,
 * in one pass without allocating: O(length of both). */
#include "src/domain/pattern.h"

#include <string.h>

#include "src/domain/names.h"

#define SUB "{sub}"

/* The segment starting at 's': its length up to the next '.' or the end. */
static size_t seg_len(const char *s)
{
    const char *dot = strchr(s, '.');
    return dot ? (size_t)(dot - s) : strlen(s);
}

static int seg_is(const char *s, size_t len, const char *what)
{
    return len == strlen(what) && memcmp(s, what, len) == 0;
}

int pattern_valid(const char *p, size_t len)
{
    size_t i = 0;
    if (len == 0 || len > PATTERN_MAX || memchr(p, '\0', len))
        return 0;
    for (;;) {
        const char *dot = memchr(p + i, '.', len - i);
        size_t n = dot ? (size_t)(dot - (p + i)) : len - i;
        const char *s = p + i;
        if (seg_is(s, n, "*")) {
            if (dot)
                return 0; /* '*' only last */
        } else if (!seg_is(s, n, "?") && !seg_is(s, n, SUB)) {
            for (size_t k = 0; k < n; k++)
                if (s[k] == '?' || s[k] == '*' || s[k] == '{' || s[k] == '}' ||
                    !valid_channel_name(&s[k], 1))
                    return 0;
        }
        if (!dot)
            return 1;
        i += n + 1;
    }
}

int pattern_topic_valid(const char *p, size_t len)
{
    if (!pattern_valid(p, len))
        return 0;
    for (size_t i = 0; i <= len; i++) {
        size_t n = 0;
        while (i + n < len && p[i + n] != '.')
            n++;
        if (n == 0 || seg_is(p + i, n, SUB))
            return 0; /* an empty segment, or {sub} */
        i += n;
    }
    return 1;
}

int pattern_is_exact(const char *p)
{
    for (;;) {
        size_t n = seg_len(p);
        if (seg_is(p, n, "?") || seg_is(p, n, "*") || seg_is(p, n, SUB))
            return 0;
        if (!p[n])
            return 1;
        p += n + 1;
    }
}

int pattern_match(const char *p, const char *name, const char *sub)
{
    size_t sublen = sub ? strlen(sub) : 0;
    for (;;) {
        size_t pn = seg_len(p), nn = seg_len(name);
        if (seg_is(p, pn, "*") && !p[pn])
            return 1; /* zero or more segments: whatever is left */
        if (seg_is(p, pn, "?")) {
            /* any one segment */
        } else if (seg_is(p, pn, SUB)) {
            if (!sublen || nn != sublen || memcmp(name, sub, nn) != 0)
                return 0;
        } else if (pn != nn || memcmp(p, name, pn) != 0) {
            return 0;
        }
        if (!name[nn]) /* the name ends: so must the pattern, or with ".*" */
            return !p[pn] || strcmp(p + pn, ".*") == 0;
        if (!p[pn])
            return 0; /* segments of the name are left over */
        p += pn + 1;
        name += nn + 1;
    }
}
