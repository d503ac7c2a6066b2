/* test_sortmap.c - unit tests for the sorted map (src/base/sortmap.c): after
 * random inserts, replacements and removals, walking from any key gives
 * exactly the keys a sorted reference holds after it, in order. */
#include "src/base/sortmap.h"
#include "tests/tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NKEYS 3000

static char keys[NKEYS][16];
static int present[NKEYS];

static int by_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Walk from 'after' and compare with the reference; 0 when equal. */
static int walk_matches(const sortmap *m, const char *after)
{
    const char *ref[NKEYS];
    size_t n = 0, i = 0;
    for (int k = 0; k < NKEYS; k++)
        if (present[k] && (!after || strcmp(keys[k], after) > 0))
            ref[n++] = keys[k];
    qsort(ref, n, sizeof(ref[0]), by_str);
    for (const sortmap_node *e = sortmap_after(m, after); e; e = sortmap_next(e), i++)
        if (i >= n || strcmp(e->key, ref[i]) != 0 || e->val != (void *)ref[i])
            return -1;
    return i == n ? 0 : -1;
}

int main(void)
{
    sortmap m;
    unsigned seed = 12345;
    int bad = 0;
    size_t len = 0;

    sortmap_init(&m);
    ok(sortmap_after(&m, NULL) == NULL && sortmap_after(&m, "a") == NULL,
       "an empty map has nothing after any key");
    ok(sortmap_del(&m, "nothing") == NULL, "removing a missing key returns NULL");

    for (int k = 0; k < NKEYS; k++)
        snprintf(keys[k], sizeof(keys[k]), "k%u", (unsigned)(k * 7919u % 100003u));
    for (int round = 0; round < 20000; round++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 8) % NKEYS);
        if ((seed >> 4) % 3) {
            if (sortmap_put(&m, keys[k], keys[k]) < 0)
                bad++;
            len += !present[k];
            present[k] = 1;
        } else {
            void *old = sortmap_del(&m, keys[k]);
            if (old != (present[k] ? (void *)keys[k] : NULL))
                bad++;
            len -= present[k];
            present[k] = 0;
        }
        if (round % 2000 == 0 && walk_matches(&m, NULL) < 0)
            bad++;
    }
    ok(bad == 0, "inserts and removals return what the reference says");
    ok(m.len == len, "the length follows (%zu)", len);
    ok(walk_matches(&m, NULL) == 0, "a walk from the start gives every key, sorted");
    bad = 0;
    for (int k = 0; k < NKEYS; k += 37)
        bad += walk_matches(&m, keys[k]) < 0;
    bad += walk_matches(&m, "") < 0;
    bad += walk_matches(&m, "k5") < 0; /* not a key: between keys */
    bad += walk_matches(&m, "z") < 0;  /* after every key */
    ok(bad == 0, "a walk from any key, present or not, gives exactly those after it");

    /* Replacing keeps one entry and takes the new key and value. */
    static char again[16];
    int k0 = 0;
    while (!present[k0])
        k0++;
    strcpy(again, keys[k0]);
    sortmap_put(&m, again, again);
    const sortmap_node *e = sortmap_after(&m, NULL);
    while (e && strcmp(e->key, again) != 0)
        e = sortmap_next(e);
    ok(e && e->key == again && e->val == again && m.len == len,
       "putting an equal key replaces the entry");

    sortmap_free(&m);
    ok(m.len == 0 && sortmap_after(&m, NULL) == NULL, "freed, it is empty");
    return done_testing();
}
