/* sortmap.h - a sorted map from NUL-terminated strings to pointers (a skip
 * list, as Redis's sorted sets): in key order from any point in O(log n),
 * for listings that page by name. */
#ifndef SORTMAP_H
#define SORTMAP_H

#include <stddef.h>
#include <stdint.h>

#define SORTMAP_MAXLEVEL 32

typedef struct sortmap_node {
    const char *key; /* borrowed: the value owns it */
    void *val;
    int level;
    struct sortmap_node *next[]; /* 'level' of them */
} sortmap_node;

/* Keys are borrowed, as in strmap: each value must outlive its entry and own
 * the key it was added with. An entry costs sizeof(sortmap_node) plus 1.33
 * pointers on average. */
typedef struct sortmap {
    sortmap_node *head[SORTMAP_MAXLEVEL];
    int level;
    size_t len;
    uint64_t rng;
} sortmap;

void sortmap_init(sortmap *m);
void sortmap_free(sortmap *m); /* frees the nodes, not the values */
/* Insert, or replace the value and key of an entry with an equal key.
 * Returns 0, or -1 on OOM (map unchanged). */
int sortmap_put(sortmap *m, const char *key, void *val);
/* Remove; returns the old value or NULL. */
void *sortmap_del(sortmap *m, const char *key);
/* The first entry whose key sorts after 'after' (strcmp order), or the very
 * first with NULL; NULL when there is none. Then sortmap_next() walks on. */
const sortmap_node *sortmap_after(const sortmap *m, const char *after);
static inline const sortmap_node *sortmap_next(const sortmap_node *n)
{
    return n->next[0];
}

#endif
