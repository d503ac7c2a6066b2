/* util.c - string, number and clock helpers. */
#include "src/base/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int valid_utf8(const char *s, size_t len)
{
    if (!len)
        return 1;
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        /* ASCII, eight bytes at a time: most payloads are only that. */
        uint64_t w;
        while (end - p >= 8 && (memcpy(&w, p, 8), !(w & 0x8080808080808080ull)))
            p += 8;
        if (p == end)
            break;
        unsigned c = *p;
        size_t n;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c < 0x80) {
            p++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            else if (c == 0xED)
                hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90; /* overlong */
            else if (c == 0xF4)
                hi = 0x8F; /* above U+10FFFF */
        } else {
            return 0;
        }
        if ((size_t)(end - p) <= n || p[1] < lo || p[1] > hi)
            return 0;
        for (size_t i = 2; i <= n; i++)
            if ((p[i] & 0xC0) != 0x80)
                return 0;
        p += n + 1;
    }
    return 1;
}

int strpair_set(char **dst, const char *a, const char *b)
{
    size_t al = a ? strlen(a) : 0, bl = b ? strlen(b) : 0;
    *dst = NULL;
    if (!al && !bl)
        return 0;
    if (!(*dst = malloc(al + bl + 2)))
        return -1;
    memcpy(*dst, al ? a : "", al + 1);
    memcpy(*dst + al + 1, bl ? b : "", bl + 1);
    return 0;
}

const char *strpair_first(const char *p)
{
    return p && *p ? p : NULL;
}

const char *strpair_second(const char *p)
{
    p = p ? p + strlen(p) + 1 : NULL;
    return p && *p ? p : NULL;
}

char *memdup_nul(const char *s, size_t len)
{
    char *p = malloc(len + 1);
    if (p) {
        if (len)
            memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!s || !*s || strlen(s) > 20)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

char *fmt_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

char *fmt_i64(char *p, int64_t v)
{
    if (v < 0)
        *p++ = '-';
    return fmt_u64(p, v < 0 ? -(uint64_t)v : (uint64_t)v);
}
