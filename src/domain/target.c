/* target.c - publication records and the receiver test of targeted delivery. */
#include "src/domain/target.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const target_list_names[TARGET_NLISTS] = {
    "exclude",         "eligible",         "exclude_authid",
    "eligible_authid", "exclude_authrole", "eligible_authrole"};

bool target_is_list_name(const char *name)
{
    for (int k = 0; k < TARGET_NLISTS; k++)
        if (strcmp(name, target_list_names[k]) == 0)
            return true;
    return false;
}

static int list_index(const char *name)
{
    for (int k = 0; k < TARGET_NLISTS; k++)
        if (strcmp(name, target_list_names[k]) == 0)
            return k;
    return -1;
}

/* What a record is made from: the lists as borrowed string arrays. */
typedef struct target_src {
    const char *pub_authid, *pub_authrole, *source;
    unsigned depth;
    unsigned lists;
    size_t n[TARGET_NLISTS];
    const char *const *ptrs[TARGET_NLISTS]; /* from a record, or NULL */
    const json_t *arr[TARGET_NLISTS];       /* from JSON, or NULL */
} target_src;

static const char *src_item(const target_src *s, int k, size_t i)
{
    return s->ptrs[k] ? s->ptrs[k][i] : json_string_value(json_array_get(s->arr[k], i));
}

/* Lay the record out in one allocation: the struct, the pointer arrays, then
 * the strings. */
static target_rec *build(const target_src *s)
{
    size_t nptr = 0, bytes = 0;
    for (int k = 0; k < TARGET_NLISTS; k++) {
        nptr += s->n[k];
        for (size_t i = 0; i < s->n[k]; i++)
            bytes += strlen(src_item(s, k, i)) + 1;
    }
    if (s->pub_authid)
        bytes += strlen(s->pub_authid) + 1;
    if (s->pub_authrole)
        bytes += strlen(s->pub_authrole) + 1;
    if (s->source)
        bytes += strlen(s->source) + 1;
    size_t size = sizeof(target_rec) + nptr * sizeof(char *) + bytes;
    target_rec *tg = malloc(size);
    if (!tg)
        return NULL;
    memset(tg, 0, sizeof(*tg));
    const char **ptr = (const char **)(tg + 1);
    char *str = (char *)(ptr + nptr);
    tg->size = size;
    tg->lists = s->lists;
    if (s->pub_authid) {
        tg->pub_authid = str;
        str = stpcpy(str, s->pub_authid) + 1;
    }
    if (s->pub_authrole) {
        tg->pub_authrole = str;
        str = stpcpy(str, s->pub_authrole) + 1;
    }
    if (s->source) {
        tg->source = str;
        tg->depth = s->depth;
        str = stpcpy(str, s->source) + 1;
    }
    for (int k = 0; k < TARGET_NLISTS; k++) {
        tg->n[k] = (unsigned short)s->n[k];
        tg->item[k] = ptr;
        for (size_t i = 0; i < s->n[k]; i++) {
            *ptr++ = str;
            str = stpcpy(str, src_item(s, k, i)) + 1;
        }
    }
    return tg;
}

static target_rec *fail(const char **code, char *err, size_t errlen, const char *c,
                        const char *fmt, const char *name)
{
    if (code)
        *code = c;
    if (err && errlen)
        snprintf(err, errlen, fmt, name);
    return NULL;
}

target_rec *target_new(const json_t *lists, const char *pub_authid,
                       const char *pub_authrole, const char **code, char *err,
                       size_t errlen)
{
    target_src s = {.pub_authid = pub_authid, .pub_authrole = pub_authrole};
    const char *key;
    json_t *v;

    if (code)
        *code = NULL;
    if (lists && !json_is_object(lists))
        return fail(code, err, errlen, "invalid_target", "%s must be an object",
                    "the targeting lists");
    json_object_foreach ((json_t *)lists, key, v) {
        int k = list_index(key);
        if (k < 0)
            return fail(code, err, errlen, "invalid_target",
                        "unknown targeting list '%.64s'", key);
        if (!json_is_array(v) || json_array_size(v) > TARGET_LIST_MAX)
            return fail(code, err, errlen, "invalid_target",
                        "'%s' must be a list of at most 100 strings", key);
        for (size_t i = 0; i < json_array_size(v); i++) {
            const json_t *e = json_array_get(v, i);
            size_t len = json_string_length(e);
            if (!json_is_string(e) || len < 1 || len > TARGET_ITEM_MAX ||
                strlen(json_string_value(e)) != len)
                return fail(code, err, errlen, "invalid_target",
                            "'%s' must hold strings of 1 to 256 bytes without NUL", key);
        }
        s.lists |= 1u << k;
        s.arr[k] = v;
        s.n[k] = json_array_size(v);
    }
    if (!s.lists && !pub_authid && !pub_authrole)
        return NULL; /* nothing to record, '*code' NULL */
    target_rec *tg = build(&s);
    if (!tg && code)
        *code = "out_of_memory";
    return tg;
}

/* A copy of 'tg' (may be NULL) as 's' says, with the lists of 'tg'. */
static target_rec *rebuild(const target_rec *tg, target_src *s, const char **code)
{
    if (code)
        *code = NULL;
    if (tg) {
        s->lists = tg->lists;
        for (int k = 0; k < TARGET_NLISTS; k++) {
            s->n[k] = tg->n[k];
            s->ptrs[k] = tg->item[k];
        }
    }
    if (!s->lists && !s->pub_authid && !s->pub_authrole && !s->source)
        return NULL;
    target_rec *out = build(s);
    if (!out && code)
        *code = "out_of_memory";
    return out;
}

target_rec *target_with_publisher(const target_rec *tg, const char *pub_authid,
                                  const char *pub_authrole, const char **code)
{
    target_src s = {.pub_authid = pub_authid, .pub_authrole = pub_authrole};
    if (tg) {
        s.source = tg->source;
        s.depth = tg->depth;
    }
    return rebuild(tg, &s, code);
}

target_rec *target_with_source(const target_rec *tg, const char *source, unsigned depth,
                               const char **code)
{
    target_src s = {.source = source, .depth = source ? depth : 0};
    if (tg) {
        s.pub_authid = tg->pub_authid;
        s.pub_authrole = tg->pub_authrole;
    }
    return rebuild(tg, &s, code);
}

void target_free(target_rec *tg)
{
    free(tg);
}

static bool in_list(const target_rec *tg, int k, const char *v)
{
    if (!v)
        return false;
    for (unsigned i = 0; i < tg->n[k]; i++)
        if (strcmp(tg->item[k][i], v) == 0)
            return true;
    return false;
}

bool target_allows(const target_rec *tg, const target_rcv *r)
{
    const char *val[3] = {r->session, r->authid, r->authrole};
    for (int kind = 0; kind < 3; kind++) {
        int ex = 2 * kind, el = 2 * kind + 1;
        if ((tg->lists & (1u << ex)) && in_list(tg, ex, val[kind]))
            return false;
        if ((tg->lists & (1u << el)) && !in_list(tg, el, val[kind]))
            return false;
    }
    return true;
}

json_t *target_to_json(const target_rec *tg)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    if ((tg->pub_authid &&
         json_object_set_new(o, "publisher_authid", json_string(tg->pub_authid)) < 0) ||
        (tg->pub_authrole && json_object_set_new(o, "publisher_authrole",
                                                 json_string(tg->pub_authrole)) < 0) ||
        (tg->source && (json_object_set_new(o, "source", json_string(tg->source)) < 0 ||
                        json_object_set_new(o, "depth", json_integer(tg->depth)) < 0)))
        goto err;
    for (int k = 0; k < TARGET_NLISTS; k++) {
        if (!(tg->lists & (1u << k)))
            continue;
        json_t *a = json_array();
        if (json_object_set_new(o, target_list_names[k], a) < 0)
            goto err;
        for (unsigned i = 0; i < tg->n[k]; i++)
            if (json_array_append_new(a, json_string(tg->item[k][i])) < 0)
                goto err;
    }
    return o;
err:
    json_decref(o);
    return NULL;
}

/* A publisher field of a stored record: absent, or a string of 1..256 bytes
 * without NUL. */
static bool pub_field(const json_t *o, const char *key, const char **out)
{
    const json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v)
        return true;
    size_t len = json_string_length(v);
    if (!json_is_string(v) || len < 1 || len > TARGET_ITEM_MAX ||
        strlen(json_string_value(v)) != len)
        return false;
    *out = json_string_value(v);
    return true;
}

target_rec *target_from_json(const json_t *o)
{
    const char *id, *role, *source, *key;
    json_t *v, *lists, *depth = json_object_get(o, "depth");
    target_rec *tg = NULL, *with;

    if (!json_is_object(o) || !pub_field(o, "publisher_authid", &id) ||
        !pub_field(o, "publisher_authrole", &role) || !pub_field(o, "source", &source) ||
        (source && (!json_is_integer(depth) || json_integer_value(depth) < 0 ||
                    json_integer_value(depth) > 65535)) ||
        (!source && depth) || !(lists = json_object()))
        return NULL;
    json_object_foreach ((json_t *)o, key, v)
        if (target_is_list_name(key) && json_object_set(lists, key, v) < 0)
            goto out;
    if (json_object_size(lists) + (id != NULL) + (role != NULL) + 2 * (source != NULL) !=
        json_object_size(o))
        goto out; /* a key that is neither */
    tg = target_new(lists, id, role, NULL, NULL, 0);
    if (source) {
        with = target_with_source(tg, source, (unsigned)json_integer_value(depth), NULL);
        target_free(tg);
        tg = with;
    }
out:
    json_decref(lists);
    return tg;
}
