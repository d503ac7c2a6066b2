/* auth.c - credentials into identities: JWTs through jwt.c, API keys by
 * their SHA-256 (libcrypto), claims into the identity's role and grants. */
#include "src/auth/auth.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

typedef struct auth_apikey {
    char *name, *role;
    unsigned char sha256[32];
} auth_apikey;

struct auth {
    policy pol;
    jwt_keys *keys;
    int leeway_s;
    char *issuer, *audience, *role_claim;
    size_t max_bytes;
    auth_apikey *apikeys;
    size_t napikeys;
    _Atomic int refs; /* the owner's and each front loop's (auth_ref) */
};

static int dup_opt(char **dst, const char *src)
{
    *dst = src ? strdup(src) : NULL;
    return src && !*dst ? -1 : 0;
}

auth *auth_new(policy *pol, jwt_keys *keys, const auth_jwt_opts *o)
{
    auth *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    atomic_init(&a->refs, 1);
    if (dup_opt(&a->issuer, o ? o->issuer : NULL) < 0 ||
        dup_opt(&a->audience, o ? o->audience : NULL) < 0 ||
        dup_opt(&a->role_claim, o && o->role_claim ? o->role_claim : "role") < 0) {
        free(a->issuer);
        free(a->audience);
        free(a);
        return NULL;
    }
    a->leeway_s = o ? o->leeway_s : 0;
    a->max_bytes = o && o->max_bytes ? o->max_bytes : JWT_MAX_BYTES;
    a->keys = keys;
    a->pol = *pol;
    memset(pol, 0, sizeof(*pol));
    return a;
}

auth *auth_ref(const auth *a)
{
    auth *w = (auth *)a; /* the count is not the object's value */
    if (w)
        atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
    return w;
}

void auth_free(auth *a)
{
    if (!a || atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) > 1)
        return;
    policy_free(&a->pol);
    jwt_keys_free(a->keys);
    free(a->issuer);
    free(a->audience);
    free(a->role_claim);
    for (size_t i = 0; i < a->napikeys; i++) {
        free(a->apikeys[i].name);
        free(a->apikeys[i].role);
    }
    free(a->apikeys);
    free(a);
}

int auth_add_apikey(auth *a, const char *name, const char *role,
                    const unsigned char sha256[32])
{
    auth_apikey *v = realloc(a->apikeys, (a->napikeys + 1) * sizeof(*v));
    if (!v)
        return -1;
    a->apikeys = v;
    v += a->napikeys;
    if (!(v->name = strdup(name)) || !(v->role = strdup(role))) {
        free(v->name);
        return -1;
    }
    memcpy(v->sha256, sha256, 32);
    a->napikeys++;
    return 0;
}

const policy *auth_policy(const auth *a)
{
    return &a->pol;
}

static int set_str(char **dst, const char *src)
{
    return (*dst = strdup(src)) ? 0 : -1;
}

/* The anonymous identity: the anonymous role, if any. */
static int anonymous(const auth *a, identity *id)
{
    if (a->pol.anonymous_role && set_str(&id->authrole, a->pol.anonymous_role) < 0)
        return AUTH_ENOMEM;
    return AUTH_ANONYMOUS;
}

static int by_apikey(const auth *a, const char *key, identity *id, const char **why)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    const auth_apikey *hit = NULL;
    size_t len = strlen(key);
    if (len == 0 || len > AUTH_APIKEY_MAX) {
        *why = "the API key is empty or too long";
        return AUTH_EINVALID;
    }
    if (!EVP_Digest(key, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        return AUTH_ENOMEM;
    /* Every key compared, each in constant time: how far a guess got says
     * nothing, nor which key it was near. */
    for (size_t i = 0; i < a->napikeys; i++)
        if (CRYPTO_memcmp(md, a->apikeys[i].sha256, 32) == 0)
            hit = &a->apikeys[i];
    if (!hit) {
        *why = "unknown API key";
        return AUTH_EINVALID;
    }
    if (set_str(&id->authid, hit->name) < 0 || set_str(&id->authrole, hit->role) < 0)
        return AUTH_ENOMEM;
    id->method = AUTHMETHOD_APIKEY;
    return AUTH_OK;
}

static int by_jwt(const auth *a, const char *token, int64_t now_s, identity *id,
                  const char **why)
{
    jwt_opts o = {now_s, a->leeway_s, a->issuer, a->audience, a->max_bytes};
    json_t *claims = NULL;
    const json_t *sub, *role, *exp, *grants;
    int rc;
    if (!a->keys) {
        *why = "tokens are not accepted here";
        return AUTH_EINVALID;
    }
    if ((rc = jwt_verify(a->keys, &o, token, strlen(token), &claims)) < 0) {
        *why = jwt_strerror(rc);
        return rc == JWT_ENOMEM ? AUTH_ENOMEM : AUTH_EINVALID;
    }
    rc = AUTH_EINVALID;
    sub = json_object_get(claims, "sub");
    role = json_object_get(claims, a->role_claim);
    exp = json_object_get(claims, "exp");
    grants = json_object_get(claims, "ssebroker");
    if (!json_is_string(sub) || json_string_length(sub) == 0 ||
        json_string_length(sub) > AUTH_ID_MAX ||
        strlen(json_string_value(sub)) != json_string_length(sub)) {
        *why = "the token's sub must be a string of 1 to 256 bytes";
    } else if (role && (!json_is_string(role) ||
                        !policy_role_find(&a->pol, json_string_value(role)))) {
        *why = "the token's role is not a role of this broker";
    } else {
        char err[200];
        if (grants && grant_list_from_claim(grants, &id->extra, err, sizeof(err)) < 0) {
            *why = "the token's ssebroker claim is not {subscribe, publish, history: "
                   "[pattern...]}";
        } else if (set_str(&id->authid, json_string_value(sub)) < 0 ||
                   (role && set_str(&id->authrole, json_string_value(role)) < 0)) {
            rc = AUTH_ENOMEM;
        } else {
            id->method = AUTHMETHOD_JWT;
            /* When the token stops being accepted: its exp and the leeway. */
            id->exp_s =
                json_is_number(exp) ? (int64_t)json_number_value(exp) + a->leeway_s : 0;
            rc = AUTH_OK;
        }
    }
    json_decref(claims);
    return rc;
}

int auth_identify(const auth *a, const auth_creds *cr, int64_t now_s, identity *id,
                  const char **why)
{
    const char *tok = cr->bearer   ? cr->bearer
                      : cr->apikey ? cr->apikey
                      : cr->cookie ? cr->cookie
                                   : cr->query;
    int rc;
    identity_clear(id);
    *why = NULL;
    if (!tok)
        return anonymous(a, id);
    if (cr->bearer) /* a JWT has dots, an API key none */
        rc = strchr(tok, '.') ? by_jwt(a, tok, now_s, id, why)
                              : by_apikey(a, tok, id, why);
    else if (cr->apikey)
        rc = by_apikey(a, tok, id, why);
    else
        rc = by_jwt(a, tok, now_s, id, why); /* a cookie or the query: tokens only */
    if (rc != AUTH_OK)
        identity_clear(id);
    return rc;
}
