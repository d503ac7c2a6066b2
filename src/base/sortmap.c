/* sortmap.c - a skip list from strings to pointers (Pugh; Redis's t_zset.c):
 * each node is on level 0 and on each level above with probability 1/4. */
#include "src/base/sortmap.h"

#include <stdlib.h>
#include <string.h>

void sortmap_init(sortmap *m)
{
    memset(m, 0, sizeof(*m));
    m->level = 1;
    m->rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)m;
}

void sortmap_free(sortmap *m)
{
    sortmap_node *n = m->head[0];
    while (n) {
        sortmap_node *next = n->next[0];
        free(n);
        n = next;
    }
    sortmap_init(m);
}

static int sortmap_random_level(sortmap *m)
{
    /* xorshift64: the levels only need to be independent of the keys. */
    uint64_t x = m->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    m->rng = x;
    int level = 1;
    for (; level < SORTMAP_MAXLEVEL && (x & 3) == 0; x >>= 2)
        level++;
    return level;
}

/* Fill 'prev' with, on each level, the array of links whose entry at that
 * level points at the first node not before 'key'; return that node. */
static sortmap_node *sortmap_seek(const sortmap *m, const char *key, int strict,
                                  sortmap_node **prev[SORTMAP_MAXLEVEL])
{
    sortmap_node *const *links = m->head;
    for (int i = m->level - 1; i >= 0; i--) {
        for (;;) {
            sortmap_node *n = links[i];
            int c = n ? strcmp(n->key, key) : 1;
            if (c > 0 || (c == 0 && !strict))
                break;
            links = n->next;
        }
        if (prev)
            prev[i] = (sortmap_node **)links;
    }
    return links[0];
}

int sortmap_put(sortmap *m, const char *key, void *val)
{
    sortmap_node **prev[SORTMAP_MAXLEVEL];
    sortmap_node *n = sortmap_seek(m, key, 0, prev);
    if (n && strcmp(n->key, key) == 0) {
        n->key = key;
        n->val = val;
        return 0;
    }
    int level = sortmap_random_level(m);
    if (!(n = malloc(sizeof(*n) + (size_t)level * sizeof(n->next[0]))))
        return -1;
    for (int i = m->level; i < level; i++)
        prev[i] = m->head;
    if (level > m->level)
        m->level = level;
    n->key = key;
    n->val = val;
    n->level = level;
    for (int i = 0; i < level; i++) {
        n->next[i] = prev[i][i];
        prev[i][i] = n;
    }
    m->len++;
    return 0;
}

void *sortmap_del(sortmap *m, const char *key)
{
    sortmap_node **prev[SORTMAP_MAXLEVEL];
    sortmap_node *n = sortmap_seek(m, key, 0, prev);
    if (!n || strcmp(n->key, key) != 0)
        return NULL;
    for (int i = 0; i < n->level; i++)
        prev[i][i] = n->next[i];
    while (m->level > 1 && !m->head[m->level - 1])
        m->level--;
    void *val = n->val;
    free(n);
    m->len--;
    return val;
}

const sortmap_node *sortmap_after(const sortmap *m, const char *after)
{
    return after ? sortmap_seek(m, after, 1, NULL) : m->head[0];
}
