/* jwt.c - verify a compact JWS token and its claims against pinned keys. */
#include "src/auth/jwt.h"
#include "src/auth/jwt_private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

static const jwt_alg algs[] = {
    {"HS256", JWT_KIND_HMAC, EVP_sha256, 32, NULL, NULL},
    {"HS384", JWT_KIND_HMAC, EVP_sha384, 48, NULL, NULL},
    {"HS512", JWT_KIND_HMAC, EVP_sha512, 64, NULL, NULL},
    {"RS256", JWT_KIND_RSA, EVP_sha256, 2048, NULL, NULL},
    {"RS384", JWT_KIND_RSA, EVP_sha384, 2048, NULL, NULL},
    {"RS512", JWT_KIND_RSA, EVP_sha512, 2048, NULL, NULL},
    {"PS256", JWT_KIND_PSS, EVP_sha256, 2048, NULL, NULL},
    {"PS384", JWT_KIND_PSS, EVP_sha384, 2048, NULL, NULL},
    {"PS512", JWT_KIND_PSS, EVP_sha512, 2048, NULL, NULL},
    {"ES256", JWT_KIND_EC, EVP_sha256, 32, "prime256v1", "P-256"},
    {"ES384", JWT_KIND_EC, EVP_sha384, 48, "secp384r1", "P-384"},
    {"ES512", JWT_KIND_EC, EVP_sha512, 66, "secp521r1", "P-521"},
    {"EdDSA", JWT_KIND_EDDSA, NULL, 32, "ED25519", "Ed25519"},
};

const jwt_alg *jwt_alg_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof(algs) / sizeof(algs[0]); i++)
        if (strcmp(algs[i].name, name) == 0)
            return &algs[i];
    return NULL;
}

const char *jwt_strerror(int code)
{
    switch (code) {
    case 0:
        return "ok";
    case JWT_EMALFORMED:
        return "malformed token";
    case JWT_ETOOBIG:
        return "token too long";
    case JWT_EALG:
        return "algorithm not accepted";
    case JWT_EKID:
        return "unknown key id";
    case JWT_ESIG:
        return "invalid signature";
    case JWT_EEXPIRED:
        return "token expired";
    case JWT_ENOTYET:
        return "token not yet valid";
    case JWT_EISS:
        return "wrong issuer";
    case JWT_EAUD:
        return "wrong audience";
    case JWT_ENOMEM:
        return "out of memory";
    case JWT_EKEY:
        return "key refused";
    case JWT_EINVAL:
        return "invalid argument";
    }
    return "unknown error";
}

/* ---- base64url ---- */

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int jwt_b64url_char(unsigned char c)
{
    return b64url_value(c) >= 0;
}

int jwt_b64url_decode(const char *s, size_t len, unsigned char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (len % 4 == 1)
        return JWT_EMALFORMED;
    size_t n = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    unsigned char *buf = malloc(n + 1);
    if (!buf)
        return JWT_ENOMEM;
    unsigned acc = 0, bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0) {
            free(buf);
            return JWT_EMALFORMED;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* What is left (0, 2 or 4 bits) must be zero: one text per byte string. */
    if (acc != 0) {
        free(buf);
        return JWT_EMALFORMED;
    }
    buf[o] = '\0';
    *out = buf;
    *outlen = o;
    return 0;
}

/* ---- the signature ---- */

/* ES*: the raw R || S of JWS (RFC 7518 3.4) as the DER ECDSA-Sig-Value that
 * libcrypto verifies. Returns its length and sets '*der' (OPENSSL_free), 0 if
 * the length is wrong, JWT_ENOMEM. */
static int ec_sig_der(const jwt_alg *a, const unsigned char *sig, size_t len,
                      unsigned char **der)
{
    *der = NULL;
    if (len != 2 * a->size)
        return 0;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)a->size, NULL);
    BIGNUM *s = BN_bin2bn(sig + a->size, (int)a->size, NULL);
    if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return JWT_ENOMEM;
    }
    int n = i2d_ECDSA_SIG(es, der); /* r and s now belong to es */
    ECDSA_SIG_free(es);
    return n > 0 ? n : JWT_ENOMEM;
}

/* Does 'sig' sign the 'len' bytes at 'data' with 'key'? 1 yes, 0 no, or
 * JWT_ENOMEM. */
static int sig_ok(const struct jwt_key *key, const unsigned char *data, size_t len,
                  const unsigned char *sig, size_t siglen)
{
    const jwt_alg *a = key->alg;

    if (a->kind == JWT_KIND_HMAC) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned maclen = 0;
        if (!HMAC(a->md(), key->secret, (int)key->secret_len, data, len, mac, &maclen))
            return JWT_ENOMEM;
        return siglen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0;
    }

    unsigned char *der = NULL;
    if (a->kind == JWT_KIND_EC) {
        int n = ec_sig_der(a, sig, siglen, &der);
        if (n <= 0)
            return n;
        sig = der;
        siglen = (size_t)n;
    }
    int ok = JWT_ENOMEM;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        goto out;
    ok = 0;
    if (EVP_DigestVerifyInit(ctx, &pctx, a->md ? a->md() : NULL, NULL, key->pkey) != 1)
        goto out;
    if (a->kind == JWT_KIND_RSA &&
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
        goto out;
    /* RFC 7518 3.5: MGF1 with the same hash, a salt as long as the hash. */
    if (a->kind == JWT_KIND_PSS &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
        goto out;
    ok = EVP_DigestVerify(ctx, sig, siglen, data, len) == 1;
out:
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    return ok;
}

/* ---- the claims ---- */

static int64_t add_sat(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* The NumericDate 'v' (an integer or a real) against the time 't': -1
 * before, 0 at, 1 after. */
static int time_cmp(const json_t *v, int64_t t)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        return x < t ? -1 : x > t;
    }
    double d = json_real_value(v), td = (double)t;
    return d < td ? -1 : d > td;
}

/* Claims with a type RFC 7519 fixes: JWT_EMALFORMED if one has another. */
static int claim_types(const json_t *c)
{
    static const char *const dates[] = {"exp", "nbf", "iat"};
    for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
        const json_t *v = json_object_get(c, dates[i]);
        if (v && !json_is_number(v))
            return JWT_EMALFORMED;
    }
    const json_t *iss = json_object_get(c, "iss");
    if (iss && !json_is_string(iss))
        return JWT_EMALFORMED;
    const json_t *aud = json_object_get(c, "aud"), *e;
    size_t i;
    if (aud && !json_is_string(aud) && !json_is_array(aud))
        return JWT_EMALFORMED;
    json_array_foreach (aud, i, e) {
        if (!json_is_string(e))
            return JWT_EMALFORMED;
    }
    return 0;
}

static int claims_check(const json_t *c, const jwt_opts *o)
{
    int rc = claim_types(c);
    if (rc < 0)
        return rc;
    int64_t leeway = o->leeway_s > 0 ? o->leeway_s : 0;
    const json_t *exp = json_object_get(c, "exp"), *nbf = json_object_get(c, "nbf");
    if (exp && time_cmp(exp, add_sat(o->now_s, -leeway)) <= 0)
        return JWT_EEXPIRED;
    if (nbf && time_cmp(nbf, add_sat(o->now_s, leeway)) > 0)
        return JWT_ENOTYET;
    if (o->issuer) {
        const char *iss = json_string_value(json_object_get(c, "iss"));
        if (!iss || strcmp(iss, o->issuer) != 0)
            return JWT_EISS;
    }
    if (o->audience) {
        const json_t *aud = json_object_get(c, "aud"), *e;
        size_t i;
        int found =
            json_is_string(aud) && strcmp(json_string_value(aud), o->audience) == 0;
        json_array_foreach (aud, i, e) {
            if (strcmp(json_string_value(e), o->audience) == 0)
                found = 1;
        }
        if (!found)
            return JWT_EAUD;
    }
    return 0;
}

/* ---- the token ---- */

/* 1 if the header's "typ" (not NULL) names a JWT we take. */
static int typ_ok(const char *typ)
{
    static const char *const ok[] = {"JWT", "application/jwt", "at+jwt",
                                     "application/at+jwt"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strcasecmp(typ, ok[i]) == 0)
            return 1;
    return 0;
}

/* Check the header 'h': 0 with '*alg' and '*kid' (NULL if none) borrowed
 * from it, or JWT_EMALFORMED. */
static int header_check(const json_t *h, const char **alg, const char **kid)
{
    const json_t *a = json_object_get(h, "alg"), *k = json_object_get(h, "kid"),
                 *typ = json_object_get(h, "typ");
    if (!json_is_object(h) || !json_is_string(a) || (k && !json_is_string(k)))
        return JWT_EMALFORMED;
    /* Extensions that must be understood (RFC 7515 4.1.11): we know none. */
    if (json_object_get(h, "crit"))
        return JWT_EMALFORMED;
    if (typ && (!json_is_string(typ) || !typ_ok(json_string_value(typ))))
        return JWT_EMALFORMED;
    *alg = json_string_value(a);
    *kid = json_string_value(k);
    return 0;
}

/* Verify once the segments are found: the header segment is [0, d1), the
 * payload (d1, d2), the signature (d2, len). */
static int verify(const jwt_keys *k, const jwt_opts *o, const char *t, size_t len,
                  size_t d1, size_t d2, json_t **claims)
{
    unsigned char *hb = NULL, *sig = NULL, *pb = NULL;
    size_t hlen, siglen, plen;
    json_t *h = NULL, *c = NULL;
    const char *name, *kid;

    int rc = jwt_b64url_decode(t, d1, &hb, &hlen);
    if (rc == 0)
        rc = jwt_b64url_decode(t + d2 + 1, len - d2 - 1, &sig, &siglen);
    if (rc < 0)
        goto out;
    rc = JWT_EMALFORMED;
    h = json_loadb((const char *)hb, hlen, JSON_REJECT_DUPLICATES, NULL);
    if (!h || header_check(h, &name, &kid) < 0)
        goto out;

    /* The algorithm: a key's, never the token's choice. */
    rc = JWT_EALG;
    const jwt_alg *a = jwt_alg_find(name);
    if (!a)
        goto out; /* "none" in any case, and every name we do not know */
    size_t tried = 0;
    int verified = 0;
    if (kid) {
        const struct jwt_key *key = NULL;
        for (size_t i = 0; i < k->n && !key; i++)
            if (k->v[i].kid && strcmp(k->v[i].kid, kid) == 0)
                key = &k->v[i];
        rc = !key ? JWT_EKID : key->alg != a ? JWT_EALG : 0;
        if (rc < 0)
            goto out;
        tried = 1;
        verified = sig_ok(key, (const unsigned char *)t, d2, sig, siglen);
    } else {
        for (size_t i = 0; i < k->n && verified == 0; i++) {
            if (k->v[i].alg != a)
                continue;
            tried++;
            verified = sig_ok(&k->v[i], (const unsigned char *)t, d2, sig, siglen);
        }
    }
    rc = !tried ? JWT_EALG : verified < 0 ? verified : !verified ? JWT_ESIG : 0;
    if (rc < 0)
        goto out;

    /* Signed: only now is the payload read. */
    rc = jwt_b64url_decode(t + d1 + 1, d2 - d1 - 1, &pb, &plen);
    if (rc < 0)
        goto out;
    c = json_loadb((const char *)pb, plen, JSON_REJECT_DUPLICATES, NULL);
    rc = json_is_object(c) ? claims_check(c, o) : JWT_EMALFORMED;
    if (rc == 0) {
        *claims = c;
        c = NULL;
    }
out:
    json_decref(c);
    json_decref(h);
    free(pb);
    free(sig);
    free(hb);
    return rc;
}

int jwt_verify(const jwt_keys *k, const jwt_opts *o, const char *token, size_t len,
               json_t **claims)
{
    if (claims)
        *claims = NULL;
    if (!k || !o || !claims || (!token && len))
        return JWT_EINVAL;
    if (len > (o->max_bytes ? o->max_bytes : JWT_MAX_BYTES))
        return JWT_ETOOBIG;

    /* Three non-empty segments of the base64url alphabet, two dots. */
    size_t dot[2], ndots = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)token[i];
        if (ch == '.') {
            if (ndots == 2)
                return JWT_EMALFORMED;
            dot[ndots++] = i;
        } else if (!jwt_b64url_char(ch)) {
            return JWT_EMALFORMED;
        }
    }
    if (ndots != 2 || dot[0] == 0 || dot[1] == dot[0] + 1 || dot[1] + 1 == len)
        return JWT_EMALFORMED;

    ERR_set_mark();
    int rc = verify(k, o, token, len, dot[0], dot[1], claims);
    ERR_pop_to_mark();
    return rc;
}
