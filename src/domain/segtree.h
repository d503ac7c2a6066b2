/* segtree.h - a segment tree of patterns (pattern.h), each with a value: which
 * values' patterns match a channel name, without looking at the others.
 *
 * Patterns are split at '.' into a tree, one node per segment: a node has a
 * child for each literal segment that follows it (a hash map), one for '?',
 * and two lists of values: those whose pattern ends at the node, and those
 * whose pattern ends at it with a last '*'. Matching a name walks its
 * segments down from the root: at each node the '*' values match (zero or
 * more segments are left), then the literal child and the '?' child are
 * followed, and where the name ends the node's own values match. So a name
 * costs one hash lookup per segment and per '?' branch the tree holds along
 * it, plus the matches: never a look at a pattern that cannot match. (A
 * worst case, a tree of '?' and literals along every path, visits at most
 * every node once.)
 *
 * Memory: every node, segment, map table and value list is counted in
 * segtree_bytes(), as allocated; segtree_add() refuses what would take the
 * tree over the bound it was made with. A pattern of n segments takes at
 * most n nodes; removing the last value of a branch frees the branch.
 *
 * Ownership: patterns and names are the caller's (the tree copies the
 * segments it keeps); values are borrowed, never freed or dereferenced. */
#ifndef SEGTREE_H
#define SEGTREE_H

#include <stddef.h>

#define SEGTREE_NAME_MAX 255 /* bytes of a name to match */

/* Error codes. */
#define SEGTREE_EINVAL -1    /* not a pattern the tree holds */
#define SEGTREE_ENOMEM -2    /* out of memory: the tree is unchanged */
#define SEGTREE_EFULL -3     /* over the tree's byte bound: unchanged */
#define SEGTREE_ENOTFOUND -4 /* no such pattern with that value */

/* segtree_match() flags. */
/* The name's first segment is matched only by patterns that spell it out
 * (not by a first '?' or a lone '*'): for channels kept for the broker's own
 * use, which a pattern reaches only by naming them. */
#define SEGTREE_FIRST_LITERAL 1u

typedef struct segtree segtree;

/* An empty tree that holds at most 'max_bytes' (0: no bound). NULL on OOM. */
segtree *segtree_new(size_t max_bytes);
/* A new bound for later adds (0: none); what the tree holds stays. */
void segtree_set_max(segtree *t, size_t max_bytes);
/* Free the tree (not the values). NULL is fine. */
void segtree_free(segtree *t);

/* Add 'val' under 'pattern' (pattern_valid(), without "{sub}": that needs a
 * caller, which the tree does not know). The same pair may be added more
 * than once; each is matched and removed separately. 0, or SEGTREE_EINVAL,
 * SEGTREE_ENOMEM, SEGTREE_EFULL and the tree unchanged. */
int segtree_add(segtree *t, const char *pattern, void *val);

/* Remove one 'val' added under 'pattern'. 0, or SEGTREE_ENOTFOUND. */
int segtree_remove(segtree *t, const char *pattern, void *val);

/* Called once per (pattern, value) pair that matches: a value added under
 * two matching patterns comes twice. It must not change the tree. */
typedef void (*segtree_cb)(void *val, void *arg);

/* Call 'cb' for every value whose pattern matches 'name' (pattern_match()
 * with no caller), in no set order. 0, or SEGTREE_EINVAL for a name longer
 * than SEGTREE_NAME_MAX (nothing is called). Does not allocate. */
int segtree_match(const segtree *t, const char *name, unsigned flags, segtree_cb cb,
                  void *arg);

/* The (pattern, value) pairs held, and the bytes the tree takes. */
size_t segtree_count(const segtree *t);
size_t segtree_bytes(const segtree *t);

#endif
