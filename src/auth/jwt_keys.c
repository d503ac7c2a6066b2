/* jwt_keys.c - the verification keys of jwt.h: secrets, PEM public keys, JWK Sets. */
#include "src/auth/jwt.h"
#include "src/auth/jwt_private.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

/* Write "<where><message>" to 'err' if there is one; returns 'code'. */
static int fail(char *err, size_t errlen, const char *where, int code, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));

static int fail(char *err, size_t errlen, const char *where, int code, const char *fmt,
                ...)
{
    char msg[200];
    va_list ap;

    if (!err || !errlen)
        return code;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s%s", where, msg);
    return code;
}

jwt_keys *jwt_keys_new(void)
{
    return calloc(1, sizeof(jwt_keys));
}

static void key_clear(struct jwt_key *key)
{
    free(key->kid);
    if (key->secret)
        OPENSSL_cleanse(key->secret, key->secret_len);
    free(key->secret);
    EVP_PKEY_free(key->pkey);
    memset(key, 0, sizeof(*key));
}

/* Drop the keys added after the first 'n' (a JWK Set that failed). */
static void keys_truncate(jwt_keys *k, size_t n)
{
    while (k->n > n)
        key_clear(&k->v[--k->n]);
}

void jwt_keys_free(jwt_keys *k)
{
    if (!k)
        return;
    keys_truncate(k, 0);
    free(k->v);
    free(k);
}

size_t jwt_keys_count(const jwt_keys *k)
{
    return k ? k->n : 0;
}

/* Append a key. Takes 'secret' (malloc'ed) and 'pkey' even when it fails.
 * Returns 0, JWT_EKEY (the kid is taken) or JWT_ENOMEM. */
static int keys_push(jwt_keys *k, const char *kid, const jwt_alg *a,
                     unsigned char *secret, size_t slen, EVP_PKEY *pkey, char *err,
                     size_t errlen, const char *where)
{
    struct jwt_key key = {.alg = a, .secret = secret, .secret_len = slen, .pkey = pkey};
    int rc = JWT_ENOMEM;

    for (size_t i = 0; kid && i < k->n; i++) {
        if (k->v[i].kid && strcmp(k->v[i].kid, kid) == 0) {
            rc =
                fail(err, errlen, where, JWT_EKEY, "kid \"%.64s\" is already taken", kid);
            goto err;
        }
    }
    if (kid && !(key.kid = strdup(kid)))
        goto err;
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 4;
        struct jwt_key *v = realloc(k->v, cap * sizeof(*v));
        if (!v)
            goto err;
        k->v = v;
        k->cap = cap;
    }
    k->v[k->n++] = key;
    return 0;
err:
    key_clear(&key);
    return rc == JWT_ENOMEM ? fail(err, errlen, where, rc, "out of memory") : rc;
}

/* Is 'pkey' a public key 'a' may use? 0, or JWT_EKEY with the reason. */
static int pkey_fits(const jwt_alg *a, EVP_PKEY *pkey, char *err, size_t errlen,
                     const char *where)
{
    int id = EVP_PKEY_get_base_id(pkey);
    char group[64] = "";
    size_t glen = 0;

    switch (a->kind) {
    case JWT_KIND_RSA:
    case JWT_KIND_PSS:
        if (id != EVP_PKEY_RSA)
            return fail(err, errlen, where, JWT_EKEY, "%s needs an RSA key", a->name);
        if ((size_t)EVP_PKEY_get_bits(pkey) < a->size)
            return fail(err, errlen, where, JWT_EKEY,
                        "%s needs an RSA key of at least %zu bits (this one has %d)",
                        a->name, a->size, EVP_PKEY_get_bits(pkey));
        break;
    case JWT_KIND_EC:
        if (id != EVP_PKEY_EC ||
            EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) != 1 ||
            strcmp(group, a->curve) != 0)
            return fail(err, errlen, where, JWT_EKEY, "%s needs an EC key on %s", a->name,
                        a->crv);
        break;
    case JWT_KIND_EDDSA:
        if (id != EVP_PKEY_ED25519)
            return fail(err, errlen, where, JWT_EKEY, "%s needs an Ed25519 key", a->name);
        break;
    case JWT_KIND_HMAC:
        return fail(err, errlen, where, JWT_EKEY, "%s needs a secret", a->name);
    }
    /* The point is on its curve, the modulus and exponent are sane. */
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int ok = ctx && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (!ok)
        return fail(err, errlen, where, JWT_EKEY, "the public key is not valid");
    return 0;
}

/* The algorithm named 'alg' if it is of the kinds 'hmac' asks (HMAC or not). */
static int alg_for(const char *alg, int hmac, const jwt_alg **a, char *err, size_t errlen)
{
    *a = jwt_alg_find(alg);
    if (!alg)
        return fail(err, errlen, "", JWT_EALG, "no alg given");
    if (!*a)
        return fail(err, errlen, "", JWT_EALG, "alg \"%.32s\" is not supported", alg);
    if (hmac != ((*a)->kind == JWT_KIND_HMAC))
        return fail(err, errlen, "", JWT_EALG, "alg %s takes %s", alg,
                    hmac ? "a public key (jwt_keys_add_pem)"
                         : "a secret (jwt_keys_add_secret)");
    return 0;
}

/* An HMAC secret 'a' accepts: 0, or JWT_EKEY. */
static int secret_fits(const jwt_alg *a, size_t len, char *err, size_t errlen,
                       const char *where)
{
    if (len < a->size)
        return fail(err, errlen, where, JWT_EKEY,
                    "an %s secret must be at least %zu bytes (this one has %zu)", a->name,
                    a->size, len);
    if (len > INT_MAX) /* what HMAC() takes */
        return fail(err, errlen, where, JWT_EKEY, "the secret is too long");
    return 0;
}

int jwt_keys_add_secret(jwt_keys *k, const char *kid, const char *alg,
                        const unsigned char *secret, size_t len, char *err, size_t errlen)
{
    const jwt_alg *a;

    if (!k || (!secret && len))
        return fail(err, errlen, "", JWT_EINVAL, "no key set or no secret");
    int rc = alg_for(alg, 1, &a, err, errlen);
    if (rc == 0)
        rc = secret_fits(a, len, err, errlen, "");
    if (rc < 0)
        return rc;
    unsigned char *copy = malloc(len ? len : 1);
    if (!copy)
        return fail(err, errlen, "", JWT_ENOMEM, "out of memory");
    memcpy(copy, secret, len);
    return keys_push(k, kid, a, copy, len, NULL, err, errlen, "");
}

/* A PEM pass phrase is never asked for (a public key has none). */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return 0;
}

int jwt_keys_add_pem(jwt_keys *k, const char *kid, const char *alg, const char *pem,
                     size_t len, char *err, size_t errlen)
{
    const jwt_alg *a;

    if (!k || (!pem && len))
        return fail(err, errlen, "", JWT_EINVAL, "no key set or no PEM text");
    int rc = alg_for(alg, 0, &a, err, errlen);
    if (rc < 0)
        return rc;
    if (len > INT_MAX)
        return fail(err, errlen, "", JWT_EKEY, "the PEM text is too long");
    ERR_set_mark();
    EVP_PKEY *pkey = NULL;
    BIO *bio = BIO_new_mem_buf(len ? pem : "", (int)len);
    if (!bio) {
        rc = fail(err, errlen, "", JWT_ENOMEM, "out of memory");
        goto out;
    }
    pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    if (!pkey) {
        rc = fail(err, errlen, "", JWT_EKEY,
                  "no public key (a \"PUBLIC KEY\" PEM block) in the text");
        goto out;
    }
    rc = pkey_fits(a, pkey, err, errlen, "");
    if (rc == 0) {
        rc = keys_push(k, kid, a, NULL, 0, pkey, err, errlen, "");
        pkey = NULL;
    }
out:
    EVP_PKEY_free(pkey);
    ERR_pop_to_mark();
    return rc;
}

/* ---- JWK (RFC 7517, 7518 section 6, RFC 8037) ---- */

/* The member 'name' of 'jwk', base64url-decoded into '*out' (free it).
 * Returns 0 or JWT_EKEY/JWT_ENOMEM. */
static int jwk_bytes(const json_t *jwk, const char *name, unsigned char **out,
                     size_t *len, char *err, size_t errlen, const char *where)
{
    const json_t *v = json_object_get(jwk, name);
    *out = NULL;
    if (!json_is_string(v))
        return fail(err, errlen, where, JWT_EKEY, "\"%s\" must be a string", name);
    int rc = jwt_b64url_decode(json_string_value(v), json_string_length(v), out, len);
    if (rc == JWT_EMALFORMED)
        return fail(err, errlen, where, JWT_EKEY, "\"%s\" is not base64url", name);
    if (rc < 0)
        return fail(err, errlen, where, rc, "out of memory");
    return 0;
}

/* A public key from OSSL_PARAMs: "RSA" or "EC". NULL if libcrypto refuses. */
static EVP_PKEY *pkey_from(const char *type, OSSL_PARAM *params)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

static EVP_PKEY *rsa_pkey(const unsigned char *n, size_t nlen, const unsigned char *e,
                          size_t elen)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL), *be = BN_bin2bn(e, (int)elen, NULL);
    if (bld && bn && be && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) &&
        (params = OSSL_PARAM_BLD_to_param(bld)))
        pkey = pkey_from("RSA", params);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    return pkey;
}

/* 'x' and 'y' are a->size bytes each. */
static EVP_PKEY *ec_pkey(const jwt_alg *a, const unsigned char *x, const unsigned char *y)
{
    unsigned char point[1 + 2 * 66];
    char group[16];

    point[0] = 0x04; /* uncompressed */
    memcpy(point + 1, x, a->size);
    memcpy(point + 1 + a->size, y, a->size);
    snprintf(group, sizeof(group), "%s", a->curve);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point,
                                          1 + 2 * a->size),
        OSSL_PARAM_construct_end(),
    };
    return pkey_from("EC", params);
}

/* The EC algorithm of the JWK curve 'crv', or NULL. */
static const jwt_alg *ec_alg_of(const char *crv)
{
    static const char *const names[] = {"ES256", "ES384", "ES512"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const jwt_alg *a = jwt_alg_find(names[i]);
        if (strcmp(a->crv, crv) == 0)
            return a;
    }
    return NULL;
}

/* 1 if 'jwk' says it is not for verifying signatures: "use" other than
 * "sig", "key_ops" without "verify". JWT_EKEY if those are not well-formed. */
static int jwk_not_for_us(const json_t *jwk, char *err, size_t errlen, const char *where)
{
    const json_t *use = json_object_get(jwk, "use"),
                 *ops = json_object_get(jwk, "key_ops");
    const json_t *op;
    size_t i;
    int verify = 0;

    if (use && !json_is_string(use))
        return fail(err, errlen, where, JWT_EKEY, "\"use\" must be a string");
    if (ops && !json_is_array(ops))
        return fail(err, errlen, where, JWT_EKEY, "\"key_ops\" must be an array");
    json_array_foreach (ops, i, op) {
        if (!json_is_string(op))
            return fail(err, errlen, where, JWT_EKEY,
                        "\"key_ops\" must hold strings only");
        if (strcmp(json_string_value(op), "verify") == 0)
            verify = 1;
    }
    return (use && strcmp(json_string_value(use), "sig") != 0) || (ops && !verify);
}

/* Add the key 'jwk' of a set: 1 added, 0 skipped (not ours to use), or a
 * negative code. */
static int jwk_add(jwt_keys *k, const json_t *jwk, char *err, size_t errlen,
                   const char *where)
{
    const json_t *jkty = json_object_get(jwk, "kty"), *jkid = json_object_get(jwk, "kid"),
                 *jalg = json_object_get(jwk, "alg"), *jcrv = json_object_get(jwk, "crv");
    unsigned char *b1 = NULL, *b2 = NULL;
    size_t l1 = 0, l2 = 0;
    EVP_PKEY *pkey = NULL;
    int rc;

    if (!json_is_object(jwk))
        return fail(err, errlen, where, JWT_EKEY, "a key must be an object");
    if (!json_is_string(jkty))
        return fail(err, errlen, where, JWT_EKEY, "\"kty\" must be a string");
    if ((jkid && !json_is_string(jkid)) || (jalg && !json_is_string(jalg)) ||
        (jcrv && !json_is_string(jcrv)))
        return fail(err, errlen, where, JWT_EKEY,
                    "\"kid\", \"alg\" and \"crv\" must be strings");
    if ((rc = jwk_not_for_us(jwk, err, errlen, where)) != 0)
        return rc < 0 ? rc : 0;
    const char *kty = json_string_value(jkty), *kid = json_string_value(jkid);
    const char *name = json_string_value(jalg), *crv = json_string_value(jcrv);
    const jwt_alg *a = jwt_alg_find(name);
    if (name && !a)
        return 0; /* an algorithm for something else: RSA-OAEP, ES256K, ... */

    int oct = strcmp(kty, "oct") == 0, rsa = strcmp(kty, "RSA") == 0,
        ec = strcmp(kty, "EC") == 0, okp = strcmp(kty, "OKP") == 0;
    if (!oct && !rsa && !ec && !okp)
        return 0;
    if (!oct && json_object_get(jwk, "d"))
        return fail(err, errlen, where, JWT_EKEY,
                    "a private key (\"d\"): give the public key only");
    if (ec || okp) {
        if (!crv)
            return fail(err, errlen, where, JWT_EKEY, "an %s key needs \"crv\"", kty);
        const jwt_alg *by_crv = ec                            ? ec_alg_of(crv)
                                : strcmp(crv, "Ed25519") == 0 ? jwt_alg_find("EdDSA")
                                                              : NULL;
        if (!by_crv)
            return 0; /* another curve: secp256k1, X25519, Ed448, ... */
        if (a && a != by_crv)
            return fail(err, errlen, where, JWT_EKEY, "alg %s does not fit crv %s",
                        a->name, crv);
        a = by_crv;
    }
    if (!a)
        return fail(err, errlen, where, JWT_EKEY,
                    "an %s key needs \"alg\" (it could serve several)", kty);
    enum jwt_kind want = a->kind;
    if ((oct && want != JWT_KIND_HMAC) ||
        (rsa && want != JWT_KIND_RSA && want != JWT_KIND_PSS))
        return fail(err, errlen, where, JWT_EKEY, "alg %s does not fit kty %s", a->name,
                    kty);

    if (oct) {
        if ((rc = jwk_bytes(jwk, "k", &b1, &l1, err, errlen, where)) < 0 ||
            (rc = secret_fits(a, l1, err, errlen, where)) < 0)
            goto out;
        rc = keys_push(k, kid, a, b1, l1, NULL, err, errlen, where);
        b1 = NULL;
        goto out;
    }
    if (rsa) {
        if ((rc = jwk_bytes(jwk, "n", &b1, &l1, err, errlen, where)) < 0 ||
            (rc = jwk_bytes(jwk, "e", &b2, &l2, err, errlen, where)) < 0)
            goto out;
        if (l1 > 2048 || l2 > 2048) { /* 16384 bits: more than anyone uses */
            rc = fail(err, errlen, where, JWT_EKEY, "\"n\" or \"e\" is too long");
            goto out;
        }
        pkey = rsa_pkey(b1, l1, b2, l2);
    } else if (ec) {
        if ((rc = jwk_bytes(jwk, "x", &b1, &l1, err, errlen, where)) < 0 ||
            (rc = jwk_bytes(jwk, "y", &b2, &l2, err, errlen, where)) < 0)
            goto out;
        if (l1 != a->size || l2 != a->size) {
            rc = fail(err, errlen, where, JWT_EKEY,
                      "\"x\" and \"y\" of a %s key must be %zu bytes each", crv, a->size);
            goto out;
        }
        pkey = ec_pkey(a, b1, b2);
    } else {
        if ((rc = jwk_bytes(jwk, "x", &b1, &l1, err, errlen, where)) < 0)
            goto out;
        if (l1 != 32) {
            rc = fail(err, errlen, where, JWT_EKEY,
                      "\"x\" of an Ed25519 key must be 32 "
                      "bytes");
            goto out;
        }
        pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, b1, l1);
    }
    if (!pkey) {
        rc = fail(err, errlen, where, JWT_EKEY, "libcrypto refuses the %s key", kty);
        goto out;
    }
    if ((rc = pkey_fits(a, pkey, err, errlen, where)) == 0) {
        rc = keys_push(k, kid, a, NULL, 0, pkey, err, errlen, where);
        pkey = NULL;
    }
out:
    EVP_PKEY_free(pkey);
    if (b1)
        OPENSSL_cleanse(b1, l1);
    free(b1);
    free(b2);
    return rc < 0 ? rc : 1;
}

int jwt_keys_add_jwks(jwt_keys *k, const char *json, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    const json_t *jwk;
    size_t i, start;
    int rc = 0, added = 0;

    if (!k || (!json && len))
        return fail(err, errlen, "", JWT_EINVAL, "no key set or no JSON text");
    json_t *doc = json_loadb(len ? json : "", len, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        return fail(err, errlen, "", JWT_EKEY, "JWK Set: %s (line %d, column %d)",
                    je.text, je.line, je.column);
    const json_t *keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        rc = fail(err, errlen, "", JWT_EKEY,
                  "a JWK Set must be an object with a \"keys\" array");
        goto out;
    }
    ERR_set_mark();
    start = k->n;
    json_array_foreach (keys, i, jwk) {
        char where[40];
        snprintf(where, sizeof(where), "keys[%zu]: ", i);
        if ((rc = jwk_add(k, jwk, err, errlen, where)) < 0)
            break;
        added += rc;
    }
    ERR_pop_to_mark();
    if (rc >= 0 && added == 0)
        rc = fail(err, errlen, "", JWT_EKEY, "the JWK Set has no key to verify with");
    if (rc < 0)
        keys_truncate(k, start);
    else
        rc = added;
out:
    json_decref(doc);
    return rc;
}
