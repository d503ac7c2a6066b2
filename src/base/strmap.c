/* strmap.c - an open-addressing hash map from strings to pointers. */
#include "src/base/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
