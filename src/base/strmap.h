/* strmap.h - an open-addressing hash map from NUL-terminated strings to pointers. */
#ifndef STRMAP_H
#define STRMAP_H

#include <stddef.h>

/* An open hash map from NUL-terminated keys to pointers. Keys are borrowed:
 * each value must outlive its entry and own the key it was added with. */
typedef struct strmap {
    struct strmap_entry *v;
    size_t cap, len;
} strmap;

typedef struct strmap_entry {
    const char *key;
    void *val;
} strmap_entry;

void strmap_init(strmap *m);
void strmap_free(strmap *m); /* frees the table, not the values */
void *strmap_get(const strmap *m, const char *key);
/* Insert or replace. Returns 0, or -1 on OOM (map unchanged). */
int strmap_put(strmap *m, const char *key, void *val);
/* Remove; returns the old value or NULL. */
void *strmap_del(strmap *m, const char *key);
/* Iterate: for (size_t i = 0; strmap_next(m, &i, &e);) ... */
int strmap_next(const strmap *m, size_t *i, strmap_entry **e);

#endif
