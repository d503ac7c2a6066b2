/* policy.c - roles, grants and the check: linear in the grants of the
 * caller's role and token (both bounded), each a one-pass pattern match. */
#include "src/domain/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/domain/names.h"
#include "src/domain/pattern.h"

static const char *const action_names[] = {"subscribe", "publish", "history", "manage"};

const char *policy_action_name(unsigned action)
{
    for (unsigned i = 0; i < 4; i++)
        if (action == 1u << i)
            return action_names[i];
    return "?";
}

unsigned policy_action_parse(const char *name)
{
    for (unsigned i = 0; i < 4; i++)
        if (strcmp(name, action_names[i]) == 0)
            return 1u << i;
    return 0;
}

const char *policy_method_name(int method)
{
    return method == AUTHMETHOD_JWT      ? "jwt"
           : method == AUTHMETHOD_APIKEY ? "apikey"
                                         : "anonymous";
}

void grant_list_free(grant_list *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->v[i].pattern);
    free(g->v);
    g->v = NULL;
    g->n = 0;
}

/* Append a grant of 'allow' on 'pattern' (validated). */
static int grant_add(grant_list *g, const json_t *pattern, unsigned allow, char *err,
                     size_t errlen)
{
    const char *p = json_string_value(pattern);
    grant *v;
    if (!p || !pattern_valid(p, json_string_length(pattern))) {
        snprintf(err, errlen,
                 "a pattern must be a channel name whose segments may be '?', "
                 "'{sub}' or, last, '*'");
        return -1;
    }
    if (g->n >= POLICY_GRANTS_MAX) {
        snprintf(err, errlen, "more than %d grants", POLICY_GRANTS_MAX);
        return -1;
    }
    if (!(v = realloc(g->v, (g->n + 1) * sizeof(*v)))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    g->v = v;
    if (!(v[g->n].pattern = strdup(p))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    v[g->n++].allow = allow;
    return 0;
}

int grant_list_from_role(const json_t *arr, grant_list *out, char *err, size_t errlen)
{
    grant_list g = {0};
    size_t i;
    const json_t *e;
    if (!json_is_array(arr)) {
        snprintf(err, errlen,
                 "must be a list of {\"match\": PATTERN, \"allow\": [ACTION...]}");
        return -1;
    }
    json_array_foreach (arr, i, e) {
        const json_t *match = json_object_get(e, "match"),
                     *allow = json_object_get(e, "allow"), *a;
        unsigned bits = 0;
        size_t k;
        if (!json_is_object(e) || json_object_size(e) != 2 || !match ||
            !json_is_array(allow)) {
            snprintf(err, errlen,
                     "grant %zu: must be {\"match\": PATTERN, \"allow\": [ACTION...]}",
                     i);
            goto fail;
        }
        json_array_foreach (allow, k, a) {
            unsigned bit =
                json_is_string(a) ? policy_action_parse(json_string_value(a)) : 0;
            if (!bit) {
                snprintf(
                    err, errlen,
                    "grant %zu: actions are \"subscribe\", \"publish\", \"history\", "
                    "\"manage\"",
                    i);
                goto fail;
            }
            bits |= bit;
        }
        char why[160];
        if (grant_add(&g, match, bits, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "grant %zu: %s", i, why);
            goto fail;
        }
    }
    *out = g;
    return 0;
fail:
    grant_list_free(&g);
    return -1;
}

int grant_list_from_claim(const json_t *obj, grant_list *out, char *err, size_t errlen)
{
    static const unsigned claimable = ACT_SUBSCRIBE | ACT_PUBLISH | ACT_HISTORY;
    grant_list g = {0};
    const char *key;
    const json_t *v;
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "must be an object of pattern lists");
        return -1;
    }
    json_object_foreach ((json_t *)obj, key, v) {
        unsigned bit = policy_action_parse(key);
        size_t i;
        const json_t *p;
        if (!(bit & claimable) || !json_is_array(v)) {
            snprintf(err, errlen,
                     "'%.32s': only \"subscribe\", \"publish\" and \"history\", "
                     "each a list of patterns",
                     key);
            goto fail;
        }
        json_array_foreach (v, i, p)
            if (grant_add(&g, p, bit, err, errlen) < 0)
                goto fail;
    }
    *out = g;
    return 0;
fail:
    grant_list_free(&g);
    return -1;
}

void identity_clear(identity *id)
{
    free(id->authid);
    free(id->authrole);
    grant_list_free(&id->extra);
    memset(id, 0, sizeof(*id));
    id->method = AUTHMETHOD_ANONYMOUS;
}

static int valid_role_name(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= POLICY_NAME_MAX && valid_channel_name(s, n);
}

int policy_add_roles(policy *p, const json_t *roles, char *err, size_t errlen)
{
    const char *name;
    const json_t *v;
    size_t n0 = p->nroles;
    char why[200];
    if (!json_is_object(roles)) {
        snprintf(err, errlen, "must be an object: role name -> grants");
        return -1;
    }
    if (p->nroles + json_object_size(roles) > POLICY_ROLES_MAX) {
        snprintf(err, errlen, "more than %d roles", POLICY_ROLES_MAX);
        return -1;
    }
    json_object_foreach ((json_t *)roles, name, v) {
        policy_role r = {0};
        const json_t *grants = v;
        policy_role *nv;
        if (!valid_role_name(name) || policy_role_find(p, name)) {
            snprintf(err, errlen,
                     "role '%.64s': a name is 1 to %d of [A-Za-z0-9_.:-], once", name,
                     POLICY_NAME_MAX);
            goto fail;
        }
        if (json_is_object(v)) {
            const json_t *d = json_object_get(v, "disclose_publisher");
            grants = json_object_get(v, "permissions");
            if ((d && !json_is_boolean(d)) || json_object_size(v) != 1u + (d != NULL)) {
                snprintf(err, errlen,
                         "role '%s': an object has \"permissions\" and may have "
                         "\"disclose_publisher\": true or false, nothing else",
                         name);
                goto fail;
            }
            r.disclose_publisher = json_is_true(d);
        }
        if (grant_list_from_role(grants, &r.grants, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "role '%s': %s", name, why);
            goto fail;
        }
        if (!(r.name = strdup(name)) ||
            !(nv = realloc(p->roles, (p->nroles + 1) * sizeof(*nv)))) {
            free(r.name);
            grant_list_free(&r.grants);
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        p->roles = nv;
        p->roles[p->nroles++] = r;
    }
    return 0;
fail:
    while (p->nroles > n0) {
        policy_role *r = &p->roles[--p->nroles];
        free(r->name);
        grant_list_free(&r->grants);
    }
    return -1;
}

void policy_free(policy *p)
{
    for (size_t i = 0; i < p->nroles; i++) {
        free(p->roles[i].name);
        grant_list_free(&p->roles[i].grants);
    }
    free(p->roles);
    free(p->anonymous_role);
    memset(p, 0, sizeof(*p));
}

const policy_role *policy_role_find(const policy *p, const char *name)
{
    for (size_t i = 0; name && i < p->nroles; i++)
        if (strcmp(p->roles[i].name, name) == 0)
            return &p->roles[i];
    return NULL;
}

/* The actions of 'actions' that 'g' grants on 'name' (NULL: the broker). */
static unsigned granted(const grant_list *g, unsigned actions, const char *name,
                        const char *sub)
{
    unsigned got = 0;
    for (size_t i = 0; i < g->n && (got & actions) != actions; i++) {
        const grant *e = &g->v[i];
        if (!(e->allow & actions & ~got))
            continue;
        if (name ? pattern_match(e->pattern, name, sub) : strcmp(e->pattern, "*") == 0)
            got |= e->allow & actions;
    }
    return got;
}

int policy_allows(const policy *p, const identity *id, unsigned actions, const char *name)
{
    const policy_role *r = policy_role_find(p, id->authrole);
    unsigned got = r ? granted(&r->grants, actions, name, id->authid) : 0;
    if ((got & actions) != actions)
        got |= granted(&id->extra, actions & ~got, name, id->authid);
    return (got & actions) == actions;
}
