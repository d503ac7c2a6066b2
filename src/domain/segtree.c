/* segtree.c - the segment tree of patterns: add, remove, match (segtree.h). */
#include "src/domain/segtree.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "src/base/strmap.h"
#include "src/domain/pattern.h"

/* A name or pattern of at most 255 bytes has at most 256 segments (all
 * empty). */
#define SEGS_MAX (SEGTREE_NAME_MAX + 1)
#define VALS_FIRST 4 /* first room in a value list */
#define LIT_FIRST 16 /* first room in a literal map (strmap_grow) */

typedef struct vals {
    void **v;
    size_t n, cap;
} vals;

typedef struct node {
    struct node *parent; /* NULL for the root */
    char *seg;           /* its key in the parent's map (owned); NULL: '?', root */
    strmap lit;          /* literal segment -> node* */
    struct node *any;    /* the '?' child, or NULL */
    vals here;           /* values whose pattern ends here */
    vals star;           /* values whose pattern ends here with a last '*' */
} node;

struct segtree {
    node root;
    size_t count, bytes, max_bytes;
};

static bool is(const char *s, const char *what)
{
    return strcmp(s, what) == 0;
}

/* Copy the 'len' bytes of 's' into 'buf' and split them at '.' into 'seg'
 * (pointers into 'buf'). Returns the number of segments (at least 1). 'buf'
 * has room for len + 1 bytes, 'seg' for len + 1 pointers. */
static size_t split(char *buf, const char *s, size_t len, char **seg)
{
    size_t n = 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    seg[n++] = buf;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '.') {
            buf[i] = '\0';
            seg[n++] = buf + i + 1;
        }
    }
    return n;
}

segtree *segtree_new(size_t max_bytes)
{
    segtree *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    strmap_init(&t->root.lit);
    t->bytes = sizeof(*t);
    t->max_bytes = max_bytes;
    return t;
}

void segtree_set_max(segtree *t, size_t max_bytes)
{
    t->max_bytes = max_bytes;
}

/* Free 'n', its children and its lists, subtracting their bytes. */
static void node_release(segtree *t, node *n)
{
    strmap_entry *e;
    for (size_t i = 0; strmap_next(&n->lit, &i, &e);)
        node_release(t, e->val);
    if (n->any)
        node_release(t, n->any);
    t->bytes -=
        n->lit.cap * sizeof(strmap_entry) + (n->here.cap + n->star.cap) * sizeof(void *);
    strmap_free(&n->lit);
    free(n->here.v);
    free(n->star.v);
    if (n != &t->root) {
        t->bytes -= sizeof(*n) + (n->seg ? strlen(n->seg) + 1 : 0);
        free(n->seg);
        free(n);
    }
}

void segtree_free(segtree *t)
{
    if (!t)
        return;
    node_release(t, &t->root);
    free(t);
}

static bool node_empty(const node *n)
{
    return !n->lit.len && !n->any && !n->here.n && !n->star.n;
}

/* Free 'n' and the ancestors it leaves empty (never the root). */
static void prune(segtree *t, node *n)
{
    while (n != &t->root && node_empty(n)) {
        node *p = n->parent;
        if (n->seg) {
            strmap_del(&p->lit, n->seg);
            if (!p->lit.len) { /* an empty table is given back too */
                t->bytes -= p->lit.cap * sizeof(strmap_entry);
                strmap_free(&p->lit);
            }
        } else {
            p->any = NULL;
        }
        node_release(t, n);
        n = p;
    }
}

/* A new child of 'p' for the literal 'seg' (NULL: the '?' child). NULL on
 * OOM, 'p' unchanged. */
static node *child_new(segtree *t, node *p, const char *seg)
{
    node *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    strmap_init(&c->lit);
    c->parent = p;
    if (seg) {
        size_t cap = p->lit.cap;
        if (!(c->seg = strdup(seg)) || strmap_put(&p->lit, c->seg, c) < 0) {
            free(c->seg);
            free(c);
            return NULL;
        }
        t->bytes += (p->lit.cap - cap) * sizeof(strmap_entry) + strlen(seg) + 1;
    } else {
        p->any = c;
    }
    t->bytes += sizeof(*c);
    return c;
}

static size_t grown(size_t cap, size_t first)
{
    return cap ? 2 * cap : first;
}

/* What adding 'val' to 'l' costs in bytes. */
static size_t vals_cost(const vals *l)
{
    return l->n < l->cap ? 0 : (grown(l->cap, VALS_FIRST) - l->cap) * sizeof(void *);
}

static int vals_push(segtree *t, vals *l, void *val)
{
    if (l->n == l->cap) {
        size_t cap = grown(l->cap, VALS_FIRST);
        void **v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -1;
        t->bytes += (cap - l->cap) * sizeof(*v);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = val;
    return 0;
}

static int vals_del(segtree *t, vals *l, void *val)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i] == val) {
            l->v[i] = l->v[--l->n];
            if (!l->n) { /* an empty list is given back */
                t->bytes -= l->cap * sizeof(void *);
                free(l->v);
                *l = (vals){0};
            }
            return 0;
        }
    }
    return -1;
}

/* The child of 'n' for the pattern segment 'seg' ('?' or a literal). */
static node *child_of(const node *n, const char *seg)
{
    return is(seg, "?") ? n->any : strmap_get(&n->lit, seg);
}

/* Split 'pattern' into 'seg' if the tree can hold it: its number of segments,
 * 0 if not. */
static size_t pattern_split(const char *pattern, char *buf, char **seg)
{
    size_t len = strlen(pattern), n;
    if (!pattern_valid(pattern, len))
        return 0;
    n = split(buf, pattern, len, seg);
    for (size_t i = 0; i < n; i++)
        if (is(seg[i], "{sub}"))
            return 0;
    return n;
}

int segtree_add(segtree *t, const char *pattern, void *val)
{
    char buf[PATTERN_MAX + 1], *seg[PATTERN_MAX + 1];
    size_t n = pattern_split(pattern, buf, seg), depth, i, cost = 0;
    node *cur = &t->root, *next, *made = NULL;
    if (!n)
        return SEGTREE_EINVAL;
    bool star = is(seg[n - 1], "*");
    depth = n - star; /* the segments that are nodes */
    for (i = 0; i < depth && (next = child_of(cur, seg[i])); i++)
        cur = next;

    /* The cost first, so that a tree over its bound is left as it was. */
    for (size_t k = i; k < depth; k++) {
        cost += sizeof(node);
        if (!is(seg[k], "?")) {
            size_t cap = k == i ? cur->lit.cap : 0, len = k == i ? cur->lit.len : 0;
            if ((len + 1) * 2 > cap) /* strmap_put grows the table */
                cost += (grown(cap, LIT_FIRST) - cap) * sizeof(strmap_entry);
            cost += strlen(seg[k]) + 1;
        }
    }
    cost += i < depth ? VALS_FIRST * sizeof(void *)
                      : vals_cost(star ? &cur->star : &cur->here);
    if (t->max_bytes && t->bytes + cost > t->max_bytes)
        return SEGTREE_EFULL;

    for (; i < depth; i++) {
        if (!(next = child_new(t, cur, is(seg[i], "?") ? NULL : seg[i])))
            goto oom;
        made = made ? made : next;
        cur = next;
    }
    if (vals_push(t, star ? &cur->star : &cur->here, val) < 0)
        goto oom;
    t->count++;
    return 0;
oom:
    if (made)
        prune(t, cur); /* the new branch, which holds nothing */
    return SEGTREE_ENOMEM;
}

int segtree_remove(segtree *t, const char *pattern, void *val)
{
    char buf[PATTERN_MAX + 1], *seg[PATTERN_MAX + 1];
    size_t n = pattern_split(pattern, buf, seg);
    node *cur = &t->root;
    if (!n)
        return SEGTREE_ENOTFOUND;
    bool star = is(seg[n - 1], "*");
    for (size_t i = 0; i < n - star; i++)
        if (!(cur = child_of(cur, seg[i])))
            return SEGTREE_ENOTFOUND;
    if (vals_del(t, star ? &cur->star : &cur->here, val) < 0)
        return SEGTREE_ENOTFOUND;
    t->count--;
    prune(t, cur);
    return 0;
}

/* A match under way: the name's segments and where the matches go. */
typedef struct walk {
    char **seg;
    size_t n;
    segtree_cb cb;
    void *arg;
} walk;

static void vals_call(const vals *l, const walk *w)
{
    for (size_t i = 0; i < l->n; i++)
        w->cb(l->v[i], w->arg);
}

/* Match the name's segments from 'i' on below 'nd'; 'lit_only': at the root
 * with SEGTREE_FIRST_LITERAL. The depth is bounded by the name's segments. */
static void walk_from(const node *nd, const walk *w, size_t i, bool lit_only)
{
    const node *c;
    if (!lit_only)
        vals_call(&nd->star, w); /* zero or more segments: whatever is left */
    if (i == w->n) {
        vals_call(&nd->here, w);
        return;
    }
    if ((c = strmap_get(&nd->lit, w->seg[i])))
        walk_from(c, w, i + 1, false);
    if (nd->any && !lit_only)
        walk_from(nd->any, w, i + 1, false);
}

int segtree_match(const segtree *t, const char *name, unsigned flags, segtree_cb cb,
                  void *arg)
{
    char buf[SEGTREE_NAME_MAX + 1], *seg[SEGS_MAX];
    size_t len = strlen(name);
    if (len > SEGTREE_NAME_MAX)
        return SEGTREE_EINVAL;
    walk w = {seg, split(buf, name, len, seg), cb, arg};
    walk_from(&t->root, &w, 0, flags & SEGTREE_FIRST_LITERAL);
    return 0;
}

size_t segtree_count(const segtree *t)
{
    return t->count;
}

size_t segtree_bytes(const segtree *t)
{
    return t->bytes;
}
