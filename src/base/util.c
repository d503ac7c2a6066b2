/* util.c - name checks, clocks, ids and an open-addressing string map. */
#include "src/base/util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

int valid_channel_name(const char *s, size_t len)
{
    if (len == 0 || len > CHAN_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

int valid_conn_id(const char *s)
{
    size_t i;
    for (i = 0; s[i]; i++)
        if (i >= CONN_ID_LEN ||
            !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return i == CONN_ID_LEN;
}

void conn_id_generate(char out[CONN_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[CONN_ID_LEN / 2];

    /* getrandom() on a few bytes never blocks once the pool is initialised;
     * fall back to the clock if it ever fails. */
    if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd)) {
        uint64_t t = (uint64_t)now_us() ^ ((uint64_t)rand() << 20);
        memcpy(rnd, &t, sizeof(rnd));
    }
    for (size_t i = 0; i < sizeof(rnd); i++) {
        out[2 * i] = hex[rnd[i] >> 4];
        out[2 * i + 1] = hex[rnd[i] & 15];
    }
    out[CONN_ID_LEN] = '\0';
}

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

/* FNV-1a: short keys, good enough spread for a power-of-two table. */
static size_t strmap_hash(const char *k)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ULL;
    return (size_t)h;
}

void strmap_init(strmap *m)
{
    memset(m, 0, sizeof(*m));
}

void strmap_free(strmap *m)
{
    free(m->v);
    memset(m, 0, sizeof(*m));
}

static strmap_entry *strmap_find(const strmap *m, const char *key)
{
    if (!m->cap)
        return NULL;
    for (size_t i = strmap_hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        strmap_entry *e = &m->v[i];
        if (!e->key || strcmp(e->key, key) == 0)
            return e;
    }
}

void *strmap_get(const strmap *m, const char *key)
{
    strmap_entry *e = strmap_find(m, key);
    return e && e->key ? e->val : NULL;
}

static int strmap_grow(strmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    strmap n = {calloc(ncap, sizeof(strmap_entry)), ncap, 0};
    if (!n.v)
        return -1;
    for (size_t i = 0; i < m->cap; i++)
        if (m->v[i].key)
            *strmap_find(&n, m->v[i].key) = m->v[i];
    n.len = m->len;
    free(m->v);
    *m = n;
    return 0;
}

int strmap_put(strmap *m, const char *key, void *val)
{
    /* Keep the load under 1/2 so probes stay short. */
    if ((m->len + 1) * 2 > m->cap && strmap_grow(m) < 0)
        return -1;
    strmap_entry *e = strmap_find(m, key);
    if (!e->key)
        m->len++;
    e->key = key;
    e->val = val;
    return 0;
}

void *strmap_del(strmap *m, const char *key)
{
    strmap_entry *e = strmap_find(m, key);
    if (!e || !e->key)
        return NULL;
    void *old = e->val;
    size_t i = (size_t)(e - m->v);
    e->key = NULL;
    m->len--;
    /* Backward-shift deletion: re-place the rest of the probe run. */
    for (size_t j = (i + 1) & (m->cap - 1); m->v[j].key; j = (j + 1) & (m->cap - 1)) {
        strmap_entry moved = m->v[j];
        m->v[j].key = NULL;
        *strmap_find(m, moved.key) = moved;
    }
    return old;
}

int strmap_next(const strmap *m, size_t *i, strmap_entry **e)
{
    for (; *i < m->cap; (*i)++) {
        if (m->v[*i].key) {
            *e = &m->v[(*i)++];
            return 1;
        }
    }
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
