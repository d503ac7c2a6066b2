/* config_auth.c - the "auth" section of the config file: roles, anonymous
 * access, JWT keys and settings, API keys. Read and checked here, with
 * errors naming file, line and field; the key material is loaded when the
 * broker starts. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "src/auth/auth.h"
#include "src/config.h"
#include "src/config_private.h"

#define KID_MAX 128
#define SECRET_MIN                                                                       \
    32 /* bytes of the shortest HMAC key (HS256: the hash size, RFC 7518 3.2) */

static const char *const jwt_algs[] = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                       "RS512", "PS256", "PS384", "PS512", "ES256",
                                       "ES384", "ES512", "EdDSA"};
#define NALGS (sizeof(jwt_algs) / sizeof(jwt_algs[0]))

void auth_cfg_free(auth_cfg *a)
{
    policy_free(&a->pol);
    free(a->cookie);
    free(a->role_claim);
    free(a->issuer);
    free(a->audience);
    free(a->jwks_file);
    for (size_t i = 0; i < a->nkeys; i++) {
        free(a->keys[i].kid);
        free(a->keys[i].alg);
        free(a->keys[i].secret);
        free(a->keys[i].file);
    }
    free(a->keys);
    for (size_t i = 0; i < a->napikeys; i++) {
        free(a->apikeys[i].name);
        free(a->apikeys[i].role);
    }
    free(a->apikeys);
    memset(a, 0, sizeof(*a));
}

/* A non-empty string of at most 'max' bytes without NUL, CR or LF. */
static const char *plain_string(json_t *v, size_t max)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    return s && n > 0 && n <= max && strlen(s) == n && !strpbrk(s, "\r\n") ? s : NULL;
}

static int str_field(const cfg_ctx *x, const char *parent, const char *key, json_t *v,
                     size_t max, char **dst)
{
    const char *s = plain_string(v, max);
    if (!s)
        return cfg_fail(x, parent, key, "must be a string of 1 to %zu bytes", max);
    return cfg_set_str(x, dst, s);
}

/* A cookie name: an RFC 6265 token, kept to [A-Za-z0-9_.-]. */
static int valid_cookie_name(const char *s)
{
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
            return 0;
    return *s != '\0';
}

/* Key i of "auth.jwt.keys": an error names the field inside it, on that
 * field's line ("auth.jwt.keys[1].secret"), else the element's. */
static int cfg_jwt_key(const cfg_ctx *x, auth_cfg *a, size_t i, json_t *o)
{
    auth_key_cfg *k = &a->keys[i];
    const char *key, *alg;
    json_t *v;
    int sources = 0;
    char parent[40];
    snprintf(parent, sizeof(parent), "auth.jwt.keys[%zu]", i);
    if (!json_is_object(o))
        return cfg_fail(x, parent, NULL, "must be an object");
    json_object_foreach (o, key, v) {
        if (strcmp(key, "alg") == 0) {
            alg = json_string_value(v);
            size_t n = 0;
            while (alg && n < NALGS && strcmp(alg, jwt_algs[n]) != 0)
                n++;
            if (!alg || n == NALGS)
                return cfg_fail(x, parent, key,
                                "must be one of HS256, HS384, HS512, RS256, RS384, "
                                "RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA");
            if (cfg_set_str(x, &k->alg, alg) < 0)
                return -1;
        } else if (strcmp(key, "kid") == 0) {
            if (!plain_string(v, KID_MAX))
                return cfg_fail(x, parent, key, "must be a string of 1 to %d bytes",
                                KID_MAX);
            if (cfg_set_str(x, &k->kid, json_string_value(v)) < 0)
                return -1;
        } else if (strcmp(key, "secret") == 0) {
            const char *s = plain_string(v, 4096);
            if (!s || strlen(s) < SECRET_MIN)
                return cfg_fail(x, parent, key, "must be %d to 4096 bytes", SECRET_MIN);
            if (cfg_set_str(x, &k->secret, s) < 0)
                return -1;
            sources++;
        } else if (strcmp(key, "secret_file") == 0 ||
                   strcmp(key, "public_key_file") == 0) {
            if (!plain_string(v, 4096))
                return cfg_fail(x, parent, key, "must be a path");
            if (cfg_set_str(x, &k->file, json_string_value(v)) < 0)
                return -1;
            sources++;
        } else {
            return cfg_fail(x, parent, key, "unknown key");
        }
    }
    if (!k->alg)
        return cfg_fail(x, parent, "alg", "is required");
    bool hmac = k->alg[0] == 'H';
    if (sources != 1 || (hmac && json_object_get(o, "public_key_file")) ||
        (!hmac && !json_object_get(o, "public_key_file")))
        return cfg_fail(x, parent, NULL, "%s needs exactly one of %s", k->alg,
                        hmac ? "\"secret\" or \"secret_file\""
                             : "\"public_key_file\" (PEM)");
    size_t least = hmac ? (k->alg[2] == '2' ? 32 : k->alg[2] == '3' ? 48 : 64) : 0;
    if (k->secret && strlen(k->secret) < least)
        return cfg_fail(x, parent, "secret",
                        "a %s secret must be at least as long as its hash (%zu bytes)",
                        k->alg, least);
    for (size_t j = 0; k->kid && j < i; j++)
        if (a->keys[j].kid && strcmp(a->keys[j].kid, k->kid) == 0)
            return cfg_fail(x, parent, "kid", "\"%s\" is used twice", k->kid);
    return 0;
}

static int cfg_jwt(const cfg_ctx *x, auth_cfg *a, json_t *obj)
{
    const char *key;
    json_t *v;
    long long n;
    if (!json_is_object(obj))
        return cfg_fail(x, "auth", "jwt", "must be an object");
    json_object_foreach (obj, key, v) {
        if (strcmp(key, "keys") == 0) {
            size_t i;
            json_t *e;
            if (!json_is_array(v) || json_array_size(v) > 100)
                return cfg_fail(x, "auth.jwt", key, "must be a list of at most 100 keys");
            if (json_array_size(v) &&
                !(a->keys = calloc(json_array_size(v), sizeof(*a->keys))))
                return cfg_fail(x, "auth.jwt", key, "out of memory");
            json_array_foreach (v, i, e) {
                a->nkeys = i + 1;
                if (cfg_jwt_key(x, a, i, e) < 0)
                    return -1;
            }
        } else if (strcmp(key, "jwks_file") == 0) {
            if (str_field(x, "auth.jwt", key, v, 4096, &a->jwks_file) < 0)
                return -1;
        } else if (strcmp(key, "leeway_s") == 0) {
            if (cfg_int(x, "auth.jwt", key, v, 0, 3600, &n) < 0)
                return -1;
            a->leeway_s = (int)n;
        } else if (strcmp(key, "max_token_bytes") == 0) {
            if (cfg_int(x, "auth.jwt", key, v, 256, 65536, &n) < 0)
                return -1;
            a->max_token_bytes = (int)n;
        } else if (strcmp(key, "issuer") == 0) {
            if (str_field(x, "auth.jwt", key, v, 1024, &a->issuer) < 0)
                return -1;
        } else if (strcmp(key, "audience") == 0) {
            if (str_field(x, "auth.jwt", key, v, 1024, &a->audience) < 0)
                return -1;
        } else if (strcmp(key, "role_claim") == 0) {
            if (str_field(x, "auth.jwt", key, v, 128, &a->role_claim) < 0)
                return -1;
        } else {
            return cfg_fail(x, "auth.jwt", key, "unknown key");
        }
    }
    if (!a->nkeys && !a->jwks_file)
        return cfg_fail(x, "auth", "jwt", "needs \"keys\" or \"jwks_file\"");
    return 0;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* "auth.api_keys": an error inside key i names "auth.api_keys[i]" (and its
 * field when one is at fault), on that line. */
static int cfg_apikeys(const cfg_ctx *x, auth_cfg *a, json_t *arr)
{
    size_t i;
    json_t *o;
    char parent[40];
    if (!json_is_array(arr) || json_array_size(arr) > 1000)
        return cfg_fail(x, "auth", "api_keys", "must be a list of at most 1000 keys");
    if (json_array_size(arr) &&
        !(a->apikeys = calloc(json_array_size(arr), sizeof(*a->apikeys))))
        return cfg_fail(x, "auth", "api_keys", "out of memory");
    json_array_foreach (arr, i, o) {
        auth_apikey_cfg *k = &a->apikeys[i];
        const char *name = plain_string(json_object_get(o, "name"), 256);
        const char *role = plain_string(json_object_get(o, "role"), POLICY_NAME_MAX);
        const char *hex = json_string_value(json_object_get(o, "sha256"));
        a->napikeys = i + 1;
        snprintf(parent, sizeof(parent), "auth.api_keys[%zu]", i);
        if (!json_is_object(o) || json_object_size(o) != 3 || !name || !role || !hex ||
            strlen(hex) != 64)
            return cfg_fail(x, parent, NULL,
                            "must be {\"name\": AUTHID, \"role\": ROLE, \"sha256\": "
                            "64 hex digits of the key's SHA-256}");
        for (int b = 0; b < 32; b++) {
            int hi = hexval(hex[2 * b]), lo = hexval(hex[2 * b + 1]);
            if (hi < 0 || lo < 0)
                return cfg_fail(x, parent, "sha256", "must be hex");
            k->sha256[b] = (unsigned char)(hi << 4 | lo);
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(a->apikeys[j].name, name) == 0 ||
                memcmp(a->apikeys[j].sha256, k->sha256, 32) == 0)
                return cfg_fail(x, parent, NULL, "a name and a key may be used once");
        if (cfg_set_str(x, &k->name, name) < 0 || cfg_set_str(x, &k->role, role) < 0)
            return -1;
    }
    return 0;
}

int cfg_auth(const cfg_ctx *x, config *c, json_t *obj)
{
    auth_cfg a = {.present = true, .leeway_s = 30, .max_token_bytes = 8192};
    const char *key;
    json_t *v;
    char why[256];

    if (!json_is_object(obj))
        return cfg_fail(x, NULL, "auth", "must be an object");
    json_object_foreach (obj, key, v) {
        if (strcmp(key, "roles") == 0) {
            if (policy_add_roles(&a.pol, v, why, sizeof(why)) < 0) {
                cfg_fail(x, "auth", key, "%s", why);
                goto fail;
            }
        } else if (strcmp(key, "anonymous_role") == 0) {
            if (str_field(x, "auth", key, v, POLICY_NAME_MAX, &a.pol.anonymous_role) < 0)
                goto fail;
        } else if (strcmp(key, "cookie") == 0) {
            if (str_field(x, "auth", key, v, 64, &a.cookie) < 0)
                goto fail;
            if (!valid_cookie_name(a.cookie)) {
                cfg_fail(x, "auth", key, "must be a cookie name of [A-Za-z0-9_.-]");
                goto fail;
            }
        } else if (strcmp(key, "jwt") == 0) {
            if (cfg_jwt(x, &a, v) < 0)
                goto fail;
        } else if (strcmp(key, "api_keys") == 0) {
            if (cfg_apikeys(x, &a, v) < 0)
                goto fail;
        } else {
            cfg_fail(x, "auth", key, "unknown key");
            goto fail;
        }
    }
    /* Roles named elsewhere must exist, whatever the order of the keys. */
    if (a.pol.anonymous_role && !policy_role_find(&a.pol, a.pol.anonymous_role)) {
        cfg_fail(x, "auth", "anonymous_role", "names no role of \"auth.roles\"");
        goto fail;
    }
    for (size_t i = 0; i < a.napikeys; i++)
        if (!policy_role_find(&a.pol, a.apikeys[i].role)) {
            char parent[40];
            snprintf(parent, sizeof(parent), "auth.api_keys[%zu]", i);
            cfg_fail(x, parent, "role", "\"%s\" is not in \"auth.roles\"",
                     a.apikeys[i].role);
            goto fail;
        }
    if ((!a.cookie && cfg_set_str(x, &a.cookie, "ssebroker_token") < 0) ||
        (!a.role_claim && cfg_set_str(x, &a.role_claim, "role") < 0))
        goto fail;
    auth_cfg_free(&c->auth);
    c->auth = a;
    return 0;
fail:
    auth_cfg_free(&a);
    return -1;
}

/* ---- building the checks at start-up ---- */

#define KEY_FILE_MAX (1024 * 1024)

/* The contents of 'path' (at most KEY_FILE_MAX bytes), NUL-terminated; its
 * length in '*len'. NULL with the reason in 'err'. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    if (!f) {
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    if (!(buf = malloc(KEY_FILE_MAX + 1))) {
        snprintf(err, errlen, "out of memory");
    } else if ((*len = fread(buf, 1, KEY_FILE_MAX + 1, f)) > KEY_FILE_MAX || ferror(f)) {
        snprintf(err, errlen, "cannot read '%s' (or it is over 1 MiB)", path);
        free(buf);
        buf = NULL;
    } else {
        buf[*len] = '\0';
    }
    fclose(f);
    return buf;
}

/* Add key i of the section to 'keys'. */
static int load_key(const auth_key_cfg *k, jwt_keys *keys, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    int rc;
    if (k->secret) {
        len = strlen(k->secret);
        return jwt_keys_add_secret(keys, k->kid, k->alg, (const unsigned char *)k->secret,
                                   len, err, errlen);
    }
    if (!(buf = read_file(k->file, &len, err, errlen)))
        return -1;
    if (k->alg[0] == 'H') {
        /* A secret file: its bytes, less one trailing newline (an editor's). */
        if (len && buf[len - 1] == '\n')
            len--;
        rc = jwt_keys_add_secret(keys, k->kid, k->alg, (const unsigned char *)buf, len,
                                 err, errlen);
    } else {
        rc = jwt_keys_add_pem(keys, k->kid, k->alg, buf, len, err, errlen);
    }
    OPENSSL_cleanse(buf, len);
    free(buf);
    return rc;
}

struct auth *config_auth_build(config *c, char *err, size_t errlen)
{
    auth_cfg *a = &c->auth;
    const char *name = c->path ? c->path : "config";
    jwt_keys *keys = NULL;
    auth *au = NULL;
    char why[256];

    if (a->nkeys || a->jwks_file) {
        if (!(keys = jwt_keys_new()))
            goto oom;
        for (size_t i = 0; i < a->nkeys; i++)
            if (load_key(&a->keys[i], keys, why, sizeof(why)) < 0) {
                snprintf(err, errlen, "%s: field 'auth.jwt.keys[%zu]': %s", name, i, why);
                goto fail;
            }
        if (a->jwks_file) {
            size_t len;
            char *text = read_file(a->jwks_file, &len, why, sizeof(why));
            int rc = text ? jwt_keys_add_jwks(keys, text, len, why, sizeof(why)) : -1;
            free(text);
            if (rc < 0) {
                snprintf(err, errlen, "%s: field 'auth.jwt.jwks_file': %s", name, why);
                goto fail;
            }
        }
    }
    auth_jwt_opts o = {a->leeway_s, a->issuer, a->audience, (size_t)a->max_token_bytes,
                       a->role_claim};
    if (!(au = auth_new(&a->pol, keys, &o)))
        goto oom;
    keys = NULL; /* the auth has them */
    for (size_t i = 0; i < a->napikeys; i++)
        if (auth_add_apikey(au, a->apikeys[i].name, a->apikeys[i].role,
                            a->apikeys[i].sha256) < 0)
            goto oom;
    return au;
oom:
    snprintf(err, errlen, "%s: out of memory", name);
fail:
    jwt_keys_free(keys);
    auth_free(au);
    return NULL;
}
