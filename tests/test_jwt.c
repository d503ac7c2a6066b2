/* test_jwt.c - unit tests for the JWT verifier (src/auth/jwt.c, jwt_keys.c).
 *
 * Keys are generated at start (RSA-2048, P-256, P-384, P-521, Ed25519, HMAC
 * secrets, and a few wrong ones), written as PEM and as a JWK Set for the
 * loaders, and every token is minted here with libcrypto. */
#include "src/auth/jwt.h"
#include "tests/tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

#define NOW 1700000000
#define ISS "https://issuer.example"
#define AUD "ssebroker"
/* exp an hour ahead, nbf and iat ten seconds ago */
#define GOOD_PAYLOAD                                                                     \
    "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700003600,"     \
    "\"nbf\":1699999990,\"iat\":1699999990}"

/* ---- helpers ---- */

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "test_jwt: out of memory\n");
        exit(2);
    }
    return p;
}

static void die(const char *what) __attribute__((noreturn));
static void die(const char *what)
{
    fprintf(stderr, "test_jwt: %s failed\n", what);
    ERR_print_errors_fp(stderr);
    exit(2);
}

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url without padding, NUL-terminated (free it). */
static char *b64u(const unsigned char *p, size_t n)
{
    char *out = xmalloc(n / 3 * 4 + 5), *o = out;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        *o++ = b64chars[v >> 18];
        *o++ = b64chars[(v >> 12) & 63];
        *o++ = b64chars[(v >> 6) & 63];
        *o++ = b64chars[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        *o++ = b64chars[v >> 18];
        *o++ = b64chars[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        *o++ = b64chars[v >> 18];
        *o++ = b64chars[(v >> 12) & 63];
        *o++ = b64chars[(v >> 6) & 63];
    }
    *o = '\0';
    return out;
}

static char *b64s(const char *s)
{
    return b64u((const unsigned char *)s, strlen(s));
}

/* Flip the lowest bit of the value of the last character of 's': only bits
 * no byte uses change when strlen(s) % 4 != 0. */
static void flip_last_bits(char *s)
{
    size_t n = strlen(s);
    const char *at = strchr(b64chars, s[n - 1]);
    s[n - 1] = b64chars[(at - b64chars) ^ 1];
}

static char *cat3(const char *a, const char *sep, const char *b)
{
    char *s = NULL;
    if (asprintf(&s, "%s%s%s", a, sep, b) < 0)
        die("asprintf");
    return s;
}

static char *pem_of(EVP_PKEY *pk, int private)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out;
    if (!bio || !(private ? PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL)
                          : PEM_write_bio_PUBKEY(bio, pk)))
        die("PEM_write");
    long n = BIO_get_mem_data(bio, &data);
    out = xmalloc((size_t)n + 1);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(bio);
    return out;
}

/* The RSA key 'pk' as PKCS#1 ("RSA PUBLIC KEY"). */
static char *pkcs1_of(EVP_PKEY *pk)
{
    unsigned char *data = NULL;
    size_t n = 0;
    OSSL_ENCODER_CTX *ctx = OSSL_ENCODER_CTX_new_for_pkey(pk, EVP_PKEY_PUBLIC_KEY, "PEM",
                                                          "type-specific", NULL);
    if (!ctx || OSSL_ENCODER_to_data(ctx, &data, &n) != 1)
        die("OSSL_ENCODER_to_data");
    OSSL_ENCODER_CTX_free(ctx);
    char *out = xmalloc(n + 1);
    memcpy(out, data, n);
    out[n] = '\0';
    OPENSSL_free(data);
    return out;
}

/* A self-signed certificate of 'pk', as PEM. */
static char *cert_of(EVP_PKEY *pk)
{
    X509 *x = X509_new();
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out;
    if (!x || !bio || !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), 3600) || !X509_set_pubkey(x, pk) ||
        !X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                    (const unsigned char *)"test", -1, -1, 0) ||
        !X509_set_issuer_name(x, X509_get_subject_name(x)) ||
        !X509_sign(x, pk, EVP_sha256()) || !PEM_write_bio_X509(bio, x))
        die("a certificate");
    long n = BIO_get_mem_data(bio, &data);
    out = xmalloc((size_t)n + 1);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(bio);
    X509_free(x);
    return out;
}

/* A big number parameter of 'pk' as bytes, left-padded to 'pad' if not 0. */
static char *bn_b64(EVP_PKEY *pk, const char *param, int pad)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    if (!EVP_PKEY_get_bn_param(pk, param, &bn))
        die("EVP_PKEY_get_bn_param");
    int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    BN_free(bn);
    if (n <= 0)
        die("BN_bn2bin");
    return b64u(buf, (size_t)n);
}

/* ---- keys ---- */

static EVP_PKEY *rsa, *rsa_other, *rsa1024, *ec256, *ec256_other, *ec384, *ec521, *k1,
    *ed, *ed_other;
static unsigned char hs[64], hs_wrong[64];
static char *rsa_pem; /* the RSA public key, also the secret of the confusion token */

static const EVP_MD *md_of(const char *alg)
{
    if (strstr(alg, "256"))
        return EVP_sha256();
    if (strstr(alg, "384"))
        return EVP_sha384();
    if (strstr(alg, "512"))
        return EVP_sha512();
    return NULL;
}

/* Who signs a token: an alg, the kid its default header names, a key. */
struct signer {
    const char *alg;
    const char *kid;
    EVP_PKEY **pk;
    const unsigned char *secret;
    size_t slen;
    enum { SALT_HASH, SALT_NONE, SALT_MAX } salt; /* PS*: as long as the hash, ... */
};

enum {
    S_HS256,
    S_HS384,
    S_HS512,
    S_RS256,
    S_RS384,
    S_RS512,
    S_PS256,
    S_PS384,
    S_PS512,
    S_ES256,
    S_ES384,
    S_ES512,
    S_EDDSA,
    S_GOOD_END, /* the keys configured */
    S_NONE = S_GOOD_END,
    S_HS_WRONG,
    S_RS_OTHER,
    S_ES_OTHER,
    S_ED_OTHER,
    S_CONFUSE,
    S_PS256_SALT0,
    S_PS256_SALTMAX,
    S_END
};

static struct signer signers[S_END] = {
    [S_HS256] = {"HS256", "hs256", NULL, hs, 32, SALT_HASH},
    [S_HS384] = {"HS384", "hs384", NULL, hs, 48, SALT_HASH},
    [S_HS512] = {"HS512", "hs512", NULL, hs, 64, SALT_HASH},
    [S_RS256] = {"RS256", "rs256", &rsa, NULL, 0, SALT_HASH},
    [S_RS384] = {"RS384", "rs384", &rsa, NULL, 0, SALT_HASH},
    [S_RS512] = {"RS512", "rs512", &rsa, NULL, 0, SALT_HASH},
    [S_PS256] = {"PS256", "ps256", &rsa, NULL, 0, SALT_HASH},
    [S_PS384] = {"PS384", "ps384", &rsa, NULL, 0, SALT_HASH},
    [S_PS512] = {"PS512", "ps512", &rsa, NULL, 0, SALT_HASH},
    [S_ES256] = {"ES256", "es256", &ec256, NULL, 0, SALT_HASH},
    [S_ES384] = {"ES384", "es384", &ec384, NULL, 0, SALT_HASH},
    [S_ES512] = {"ES512", "es512", &ec521, NULL, 0, SALT_HASH},
    [S_EDDSA] = {"EdDSA", "ed", &ed, NULL, 0, SALT_HASH},
    [S_NONE] = {"none", NULL, NULL, NULL, 0, SALT_HASH},
    [S_HS_WRONG] = {"HS256", "hs256", NULL, hs_wrong, 32, SALT_HASH},
    [S_RS_OTHER] = {"RS256", "rs256", &rsa_other, NULL, 0, SALT_HASH},
    [S_ES_OTHER] = {"ES256", "es256", &ec256_other, NULL, 0, SALT_HASH},
    [S_ED_OTHER] = {"EdDSA", "ed", &ed_other, NULL, 0, SALT_HASH},
    /* HS256 keyed with the text of the RSA public key (set at start) */
    [S_CONFUSE] = {"HS256", NULL, NULL, NULL, 0, SALT_HASH},
    [S_PS256_SALT0] = {"PS256", "ps256", &rsa, NULL, 0, SALT_NONE},
    [S_PS256_SALTMAX] = {"PS256", "ps256", &rsa, NULL, 0, SALT_MAX},
};

static void make_keys(void)
{
    if (RAND_bytes(hs, sizeof(hs)) != 1 || RAND_bytes(hs_wrong, sizeof(hs_wrong)) != 1)
        die("RAND_bytes");
    if (!(rsa = EVP_RSA_gen(2048)) || !(rsa_other = EVP_RSA_gen(2048)) ||
        !(rsa1024 = EVP_RSA_gen(1024)))
        die("EVP_RSA_gen");
    if (!(ec256 = EVP_EC_gen("P-256")) || !(ec256_other = EVP_EC_gen("P-256")) ||
        !(ec384 = EVP_EC_gen("P-384")) || !(ec521 = EVP_EC_gen("P-521")) ||
        !(k1 = EVP_EC_gen("secp256k1")))
        die("EVP_EC_gen");
    if (!(ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) ||
        !(ed_other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")))
        die("EVP_PKEY_Q_keygen");
    rsa_pem = pem_of(rsa, 0);
    signers[S_CONFUSE].secret = (const unsigned char *)rsa_pem;
    signers[S_CONFUSE].slen = strlen(rsa_pem);
}

static void free_keys(void)
{
    EVP_PKEY *all[] = {rsa,   rsa_other, rsa1024, ec256, ec256_other,
                       ec384, ec521,     k1,      ed,    ed_other};
    for (size_t i = 0; i < N_ELEMS(all); i++)
        EVP_PKEY_free(all[i]);
    free(rsa_pem);
}

/* ---- minting ---- */

/* The signature of 'in' by 's' ('*len' bytes; free it). ES* as raw R || S
 * unless 'der'. */
static unsigned char *sign(const struct signer *s, const char *in, size_t *len, int der)
{
    unsigned char *out = xmalloc(1024);
    size_t n = strlen(in);

    if (s->secret) {
        unsigned l = 0;
        if (!HMAC(md_of(s->alg), s->secret, (int)s->slen, (const unsigned char *)in, n,
                  out, &l))
            die("HMAC");
        *len = l;
        return out;
    }
    if (!s->pk) { /* "none": something, so that the segment is not empty */
        memset(out, 0, 3);
        *len = 3;
        return out;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    size_t l = 1024;
    if (!ctx || EVP_DigestSignInit(ctx, &pctx, md_of(s->alg), NULL, *s->pk) != 1)
        die("EVP_DigestSignInit");
    if (s->alg[0] == 'P' &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, s->salt == SALT_NONE ? 0
                                                : s->salt == SALT_MAX
                                                    ? RSA_PSS_SALTLEN_MAX
                                                    : RSA_PSS_SALTLEN_DIGEST) != 1))
        die("PSS padding");
    if (EVP_DigestSign(ctx, out, &l, (const unsigned char *)in, n) != 1)
        die("EVP_DigestSign");
    EVP_MD_CTX_free(ctx);
    *len = l;
    if (s->alg[0] == 'E' && s->alg[1] == 'S' && !der) {
        int size =
            EVP_PKEY_get_bits(*s->pk) == 521 ? 66 : (EVP_PKEY_get_bits(*s->pk) / 8);
        const unsigned char *p = out;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)l);
        if (!es)
            die("d2i_ECDSA_SIG");
        unsigned char *raw = xmalloc(2 * (size_t)size + 1); /* room for G_EXTEND */
        BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, size);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + size, size);
        ECDSA_SIG_free(es);
        free(out);
        *len = 2 * (size_t)size;
        return raw;
    }
    return out;
}

/* How a minted token is spoiled. P_: before signing (the signature covers
 * it); G_: the signature's bytes; T_: the finished token. */
enum {
    M_NONE,
    P_EMPTY_PAY, /* the payload segment empty */
    P_PAY_PLUS,  /* a '+' in the payload segment */
    P_PAY_MOD1,  /* 'A's added to the payload segment until length % 4 == 1 */
    P_PAY_BITS,  /* the payload segment's unused bits set */
    P_HDR_BITS,  /* the header segment's unused bits set */
    P_PAD10K,    /* a 10 KiB claim added */
    P_PAD100K,   /* a 100 KiB claim added */
    G_TRUNC,     /* the last byte dropped */
    G_EXTEND,    /* a zero byte added */
    G_DER,       /* ES*: the DER form libcrypto makes */
    G_ZERO,      /* every byte zero */
    G_EMPTY,     /* no bytes */
    T_EXTRA_SEG, /* ".e30" added: four segments */
    T_DROP_SIG,  /* "h.p." */
    T_NO_SIG,    /* "h.p" */
    T_LEAD_DOT,  /* ".h.p.s" */
    T_EMPTY_HDR, /* ".p.s" */
    T_HDR_PAD,   /* "=" after the header segment */
    T_SIG_PAD,   /* "==" after the signature */
    T_SIG_PLUS,  /* the signature's first character '+' */
    T_SIG_SLASH, /* the signature's first character '/' */
    T_SIG_SPACE, /* a space in the middle of the signature */
    T_SIG_NL,    /* a newline after the signature */
    T_SIG_MOD1,  /* 'A's added to the signature until length % 4 == 1 */
    T_SIG_BITS,  /* the signature's unused bits set */
    T_SIG_CHAR,  /* a character in the middle of the signature changed */
    T_NUL,       /* a NUL byte in the payload segment */
    T_HIBYTE,    /* a 0xff byte in the payload segment */
    T_PAY_SWAP   /* another payload under the same signature */
};

struct tok {
    char *s;
    size_t len;
};

/* JSON text made longer by blanks until its base64url has bits to spare at
 * the end (length % 3 != 0). */
static char *unaligned(const char *json)
{
    return strlen(json) % 3 ? strdup(json) : cat3(json, "", " ");
}

static struct tok mint(int si, const char *hdr, const char *pay, int mut)
{
    const struct signer *s = &signers[si];
    char *h, *p, *hseg, *pseg, *in, *sseg, *t;
    unsigned char *sig;
    size_t siglen;

    if (hdr)
        h = strdup(hdr);
    else if (s->kid && asprintf(&h, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
                                s->alg, s->kid) < 0)
        die("asprintf");
    else if (!s->kid && asprintf(&h, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", s->alg) < 0)
        die("asprintf");
    p = strdup(pay ? pay : GOOD_PAYLOAD);
    if (mut == P_PAD10K || mut == P_PAD100K) {
        size_t n = mut == P_PAD10K ? 10 * 1024 : 100 * 1024, l = strlen(p);
        char *big = xmalloc(l + n + 16);
        memcpy(big, p, l - 1);
        memcpy(big + l - 1, ",\"pad\":\"", 8);
        memset(big + l + 7, 'x', n);
        strcpy(big + l + 7 + n, "\"}");
        free(p);
        p = big;
    }
    if (mut == P_PAY_BITS || mut == P_HDR_BITS) {
        char **which = mut == P_PAY_BITS ? &p : &h, *u = unaligned(*which);
        free(*which);
        *which = u;
    }
    hseg = b64s(h);
    pseg = b64s(p);
    free(h);
    free(p);
    switch (mut) {
    case P_EMPTY_PAY:
        pseg[0] = '\0';
        break;
    case P_PAY_PLUS:
        pseg[1] = '+';
        break;
    case P_PAY_MOD1:
        while (strlen(pseg) % 4 != 1) {
            char *x = cat3(pseg, "", "A");
            free(pseg);
            pseg = x;
        }
        break;
    case P_PAY_BITS:
        flip_last_bits(pseg);
        break;
    case P_HDR_BITS:
        flip_last_bits(hseg);
        break;
    }
    in = cat3(hseg, ".", pseg);
    sig = sign(s, in, &siglen, mut == G_DER);
    switch (mut) {
    case G_TRUNC:
        siglen--;
        break;
    case G_EXTEND:
        sig[siglen++] = 0;
        break;
    case G_ZERO:
        memset(sig, 0, siglen);
        break;
    case G_EMPTY:
        siglen = 0;
        break;
    }
    sseg = b64u(sig, siglen);
    free(sig);
    switch (mut) {
    case T_SIG_PAD:
    case T_SIG_NL:
    case T_SIG_MOD1: {
        char *x = cat3(sseg, "", mut == T_SIG_PAD ? "==" : mut == T_SIG_NL ? "\n" : "");
        while (mut == T_SIG_MOD1 && strlen(x) % 4 != 1) {
            char *y = cat3(x, "", "A");
            free(x);
            x = y;
        }
        free(sseg);
        sseg = x;
        break;
    }
    case T_SIG_PLUS:
        sseg[0] = '+';
        break;
    case T_SIG_SLASH:
        sseg[0] = '/';
        break;
    case T_SIG_SPACE:
        sseg[strlen(sseg) / 2] = ' ';
        break;
    case T_SIG_BITS:
        if (strlen(sseg) % 4 == 0)
            die("T_SIG_BITS on a signature without spare bits");
        flip_last_bits(sseg);
        break;
    case T_SIG_CHAR: {
        char *c = &sseg[strlen(sseg) / 2];
        *c = *c == 'A' ? 'B' : 'A';
        break;
    }
    case T_HDR_PAD: {
        char *x = cat3(hseg, "", "=");
        free(hseg);
        hseg = x;
        break;
    }
    case T_PAY_SWAP:
        free(pseg);
        pseg = b64s("{\"sub\":\"mallory\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\"}");
        break;
    }
    free(in);
    in = cat3(hseg, ".", pseg);
    switch (mut) {
    case T_DROP_SIG:
        t = cat3(in, ".", "");
        break;
    case T_NO_SIG:
        t = strdup(in);
        break;
    case T_EMPTY_HDR:
        t = cat3(in + strlen(hseg), ".", sseg); /* ".payload.sig" */
        break;
    case T_LEAD_DOT: {
        char *x = cat3(in, ".", sseg);
        t = cat3(".", "", x);
        free(x);
        break;
    }
    case T_EXTRA_SEG: {
        char *x = cat3(in, ".", sseg);
        t = cat3(x, ".", "e30");
        free(x);
        break;
    }
    default:
        t = cat3(in, ".", sseg);
    }
    free(in);
    free(hseg);
    free(pseg);
    free(sseg);
    struct tok out = {t, strlen(t)};
    if (mut == T_NUL || mut == T_HIBYTE) { /* a byte in the payload segment */
        char *x = xmalloc(out.len + 1);
        size_t at = (size_t)(strchr(t, '.') - t) + 2;
        memcpy(x, t, at);
        x[at] = mut == T_NUL ? '\0' : (char)0xff;
        memcpy(x + at + 1, t + at, out.len - at);
        free(t);
        out.s = x;
        out.len++;
    }
    return out;
}

/* ---- key sets ---- */

enum { KS_KID, KS_NOKID, KS_JWKS, KS_RSA, KS_RSA_NOKID, KS_END };
static jwt_keys *ks[KS_END];

/* Set 'key' of 'j' to the string 's', which it frees. */
static void set_take(json_t *j, const char *key, char *s)
{
    json_object_set_new(j, key, json_string(s));
    free(s);
}

static json_t *jwk_of(int si, int with_alg)
{
    const struct signer *s = &signers[si];
    json_t *j = json_pack("{s:s}", "kid", s->kid);
    if (with_alg)
        json_object_set_new(j, "alg", json_string(s->alg));
    if (s->secret) {
        json_object_set_new(j, "kty", json_string("oct"));
        set_take(j, "k", b64u(s->secret, s->slen));
        return j;
    }
    EVP_PKEY *pk = *s->pk;
    if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA) {
        json_object_set_new(j, "kty", json_string("RSA"));
        json_object_set_new(j, "use", json_string("sig"));
        set_take(j, "n", bn_b64(pk, OSSL_PKEY_PARAM_RSA_N, 0));
        set_take(j, "e", bn_b64(pk, OSSL_PKEY_PARAM_RSA_E, 0));
    } else if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC) {
        int bits = EVP_PKEY_get_bits(pk), size = bits == 521 ? 66 : bits / 8;
        json_object_set_new(j, "kty", json_string("EC"));
        json_object_set_new(j, "crv",
                            json_string(bits == 256   ? "P-256"
                                        : bits == 384 ? "P-384"
                                                      : "P-521"));
        set_take(j, "x", bn_b64(pk, OSSL_PKEY_PARAM_EC_PUB_X, size));
        set_take(j, "y", bn_b64(pk, OSSL_PKEY_PARAM_EC_PUB_Y, size));
    } else {
        unsigned char raw[32];
        size_t n = sizeof(raw);
        if (!EVP_PKEY_get_raw_public_key(pk, raw, &n))
            die("EVP_PKEY_get_raw_public_key");
        json_object_set_new(j, "kty", json_string("OKP"));
        json_object_set_new(j, "crv", json_string("Ed25519"));
        set_take(j, "x", b64u(raw, n));
    }
    return j;
}

static char *dumps(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!s)
        die("json_dumps");
    return s;
}

/* The JWK Set of every configured key: EC and OKP keys without "alg" (their
 * curve says it), ES512 with key_ops; and keys to skip (an encryption key, a
 * curve not supported). */
static char *jwks_text(void)
{
    json_t *keys = json_array();
    for (int si = 0; si < S_GOOD_END; si++) {
        json_t *j = jwk_of(si, si != S_ES256 && si != S_EDDSA);
        if (si == S_ES512)
            json_object_set_new(j, "key_ops", json_pack("[s]", "verify"));
        json_array_append_new(keys, j);
    }
    json_t *enc = jwk_of(S_RS256, 0);
    json_object_set_new(enc, "kid", json_string("enc"));
    json_object_set_new(enc, "use", json_string("enc"));
    json_object_set_new(enc, "alg", json_string("RSA-OAEP"));
    json_array_append_new(keys, enc);
    json_array_append_new(keys, json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv",
                                          "secp256k1", "x", "AAAA", "y", "AAAA"));
    return dumps(json_pack("{s:o}", "keys", keys));
}

/* ---- the checks a token is held to ---- */

enum { O_STD, O_NONE, O_STRICT, O_NEGLEEWAY, O_END };
static const jwt_opts opts[O_END] = {
    [O_STD] = {NOW, 30, ISS, AUD, 0},           /* issuer and audience, 30 s leeway */
    [O_NONE] = {NOW, 30, NULL, NULL, 0},        /* no issuer, no audience */
    [O_STRICT] = {NOW, 0, ISS, AUD, 0},         /* no leeway */
    [O_NEGLEEWAY] = {NOW, -100, NULL, NULL, 0}, /* a negative leeway counts as 0 */
};

struct bad_case {
    const char *name;
    int ks, o, signer;
    const char *hdr; /* header JSON; NULL: alg, typ JWT and kid of the signer */
    const char *pay; /* payload JSON; NULL: GOOD_PAYLOAD */
    int mut;
    int want;
};

#define HS "{\"alg\":\"HS256\""
#define MAL JWT_EMALFORMED

static const struct bad_case bad_cases[] = {
    /* structure and size */
    {"four segments", KS_KID, O_STD, S_HS256, NULL, NULL, T_EXTRA_SEG, MAL},
    {"no signature (h.p.)", KS_KID, O_STD, S_HS256, NULL, NULL, T_DROP_SIG, MAL},
    {"two segments (h.p)", KS_KID, O_STD, S_HS256, NULL, NULL, T_NO_SIG, MAL},
    {"a leading dot", KS_KID, O_STD, S_HS256, NULL, NULL, T_LEAD_DOT, MAL},
    {"empty header segment", KS_KID, O_STD, S_HS256, NULL, NULL, T_EMPTY_HDR, MAL},
    {"empty payload segment, signed", KS_KID, O_STD, S_HS256, NULL, NULL, P_EMPTY_PAY,
     MAL},
    {"empty signature segment", KS_KID, O_STD, S_HS256, NULL, NULL, G_EMPTY, MAL},
    {"10 KB token", KS_KID, O_STD, S_HS256, NULL, NULL, P_PAD10K, JWT_ETOOBIG},
    {"100 KB token", KS_KID, O_STD, S_HS256, NULL, NULL, P_PAD100K, JWT_ETOOBIG},
    /* base64url */
    {"header padded with '='", KS_KID, O_STD, S_HS256, NULL, NULL, T_HDR_PAD, MAL},
    {"signature padded with '=='", KS_KID, O_STD, S_HS256, NULL, NULL, T_SIG_PAD, MAL},
    {"'+' in the signature", KS_KID, O_STD, S_HS256, NULL, NULL, T_SIG_PLUS, MAL},
    {"'/' in the signature", KS_KID, O_STD, S_HS256, NULL, NULL, T_SIG_SLASH, MAL},
    {"'+' in the payload, signed", KS_KID, O_STD, S_HS256, NULL, NULL, P_PAY_PLUS, MAL},
    {"a space in the signature", KS_KID, O_STD, S_HS256, NULL, NULL, T_SIG_SPACE, MAL},
    {"a newline at the end", KS_KID, O_STD, S_HS256, NULL, NULL, T_SIG_NL, MAL},
    {"signature length % 4 == 1", KS_KID, O_STD, S_HS256, NULL, NULL, T_SIG_MOD1, MAL},
    {"payload length % 4 == 1, signed", KS_KID, O_STD, S_HS256, NULL, NULL, P_PAY_MOD1,
     MAL},
    {"signature with non-zero spare bits", KS_KID, O_STD, S_HS256, NULL, NULL, T_SIG_BITS,
     MAL},
    {"header with non-zero spare bits, signed", KS_KID, O_STD, S_HS256, NULL, NULL,
     P_HDR_BITS, MAL},
    {"payload with non-zero spare bits, signed", KS_KID, O_STD, S_HS256, NULL, NULL,
     P_PAY_BITS, MAL},
    {"a NUL byte", KS_KID, O_STD, S_HS256, NULL, NULL, T_NUL, MAL},
    {"a byte above 0x7f", KS_KID, O_STD, S_HS256, NULL, NULL, T_HIBYTE, MAL},
    /* header */
    {"header not JSON", KS_KID, O_STD, S_HS256, "xyz", NULL, M_NONE, MAL},
    {"header an array", KS_KID, O_STD, S_HS256, "[\"HS256\"]", NULL, M_NONE, MAL},
    {"header a string", KS_KID, O_STD, S_HS256, "\"HS256\"", NULL, M_NONE, MAL},
    {"header with text after it", KS_KID, O_STD, S_HS256, HS "} x", NULL, M_NONE, MAL},
    {"duplicate alg", KS_KID, O_STD, S_HS256, HS ",\"alg\":\"HS256\"}", NULL, M_NONE,
     MAL},
    {"duplicate kid", KS_KID, O_STD, S_HS256, HS ",\"kid\":\"hs256\",\"kid\":\"hs256\"}",
     NULL, M_NONE, MAL},
    {"no alg", KS_KID, O_STD, S_HS256, "{\"typ\":\"JWT\"}", NULL, M_NONE, MAL},
    {"alg a number", KS_KID, O_STD, S_HS256, "{\"alg\":256}", NULL, M_NONE, MAL},
    {"alg null", KS_KID, O_STD, S_HS256, "{\"alg\":null}", NULL, M_NONE, MAL},
    {"alg with a NUL (\\u0000)", KS_KID, O_STD, S_HS256, "{\"alg\":\"HS256\\u0000\"}",
     NULL, M_NONE, MAL},
    {"crit", KS_KID, O_STD, S_HS256, HS ",\"crit\":[\"exp\"],\"exp\":1}", NULL, M_NONE,
     MAL},
    {"crit empty", KS_KID, O_STD, S_HS256, HS ",\"crit\":[]}", NULL, M_NONE, MAL},
    {"typ JOSE", KS_KID, O_STD, S_HS256, HS ",\"typ\":\"JOSE\"}", NULL, M_NONE, MAL},
    {"typ dpop+jwt", KS_KID, O_STD, S_HS256, HS ",\"typ\":\"dpop+jwt\"}", NULL, M_NONE,
     MAL},
    {"typ a number", KS_KID, O_STD, S_HS256, HS ",\"typ\":1}", NULL, M_NONE, MAL},
    {"kid a number", KS_KID, O_STD, S_HS256, HS ",\"kid\":7}", NULL, M_NONE, MAL},
    {"kid null", KS_KID, O_STD, S_HS256, HS ",\"kid\":null}", NULL, M_NONE, MAL},
    /* the algorithm */
    {"alg none", KS_KID, O_STD, S_NONE, "{\"alg\":\"none\"}", NULL, M_NONE, JWT_EALG},
    {"alg None", KS_KID, O_STD, S_NONE, "{\"alg\":\"None\"}", NULL, M_NONE, JWT_EALG},
    {"alg NONE", KS_KID, O_STD, S_NONE, "{\"alg\":\"NONE\"}", NULL, M_NONE, JWT_EALG},
    {"alg nOnE with a kid", KS_KID, O_STD, S_NONE, "{\"alg\":\"nOnE\",\"kid\":\"hs256\"}",
     NULL, M_NONE, JWT_EALG},
    {"alg hs256 (case)", KS_KID, O_STD, S_HS256, "{\"alg\":\"hs256\"}", NULL, M_NONE,
     JWT_EALG},
    {"alg 'HS256 '", KS_KID, O_STD, S_HS256, "{\"alg\":\"HS256 \"}", NULL, M_NONE,
     JWT_EALG},
    {"alg unknown", KS_KID, O_STD, S_HS256, "{\"alg\":\"XS256\"}", NULL, M_NONE,
     JWT_EALG},
    {"alg RSA-OAEP", KS_KID, O_STD, S_HS256, "{\"alg\":\"RSA-OAEP\"}", NULL, M_NONE,
     JWT_EALG},
    {"confusion: HS256 keyed with the RS256 PEM", KS_RSA, O_STD, S_CONFUSE, HS "}", NULL,
     M_NONE, JWT_EALG},
    {"confusion, RS256 key without kid", KS_RSA_NOKID, O_STD, S_CONFUSE, HS "}", NULL,
     M_NONE, JWT_EALG},
    {"confusion naming the RSA kid", KS_RSA, O_STD, S_CONFUSE, HS ",\"kid\":\"rs256\"}",
     NULL, M_NONE, JWT_EALG},
    {"confusion naming the RSA kid, all keys", KS_KID, O_STD, S_CONFUSE,
     HS ",\"kid\":\"rs256\"}", NULL, M_NONE, JWT_EALG},
    {"confusion without kid, all keys", KS_KID, O_STD, S_CONFUSE, HS "}", NULL, M_NONE,
     JWT_ESIG},
    {"ES256 naming an RS256 kid", KS_KID, O_STD, S_ES256,
     "{\"alg\":\"ES256\",\"kid\":\"rs256\"}", NULL, M_NONE, JWT_EALG},
    {"RS256 naming an HS256 kid", KS_KID, O_STD, S_RS256,
     "{\"alg\":\"RS256\",\"kid\":\"hs256\"}", NULL, M_NONE, JWT_EALG},
    {"PS256, no PS256 key", KS_RSA, O_STD, S_PS256, "{\"alg\":\"PS256\"}", NULL, M_NONE,
     JWT_EALG},
    {"EdDSA, no EdDSA key", KS_RSA, O_STD, S_EDDSA, "{\"alg\":\"EdDSA\"}", NULL, M_NONE,
     JWT_EALG},
    /* the kid */
    {"unknown kid", KS_KID, O_STD, S_HS256, HS ",\"kid\":\"nope\"}", NULL, M_NONE,
     JWT_EKID},
    {"empty kid", KS_KID, O_STD, S_HS256, HS ",\"kid\":\"\"}", NULL, M_NONE, JWT_EKID},
    {"kid in another case", KS_KID, O_STD, S_HS256, HS ",\"kid\":\"HS256\"}", NULL,
     M_NONE, JWT_EKID},
    {"a kid, keys without kids", KS_NOKID, O_STD, S_HS256, NULL, NULL, M_NONE, JWT_EKID},
    /* the signature */
    {"HS256, wrong secret", KS_KID, O_STD, S_HS_WRONG, NULL, NULL, M_NONE, JWT_ESIG},
    {"HS256, wrong secret, no kid", KS_NOKID, O_STD, S_HS_WRONG, HS "}", NULL, M_NONE,
     JWT_ESIG},
    {"HS256, a byte short", KS_KID, O_STD, S_HS256, NULL, NULL, G_TRUNC, JWT_ESIG},
    {"HS256, a byte long", KS_KID, O_STD, S_HS256, NULL, NULL, G_EXTEND, JWT_ESIG},
    {"HS256, a character changed", KS_KID, O_STD, S_HS256, NULL, NULL, T_SIG_CHAR,
     JWT_ESIG},
    {"HS512 token, HS256-length MAC", KS_KID, O_STD, S_HS256,
     "{\"alg\":\"HS512\",\"kid\":\"hs512\"}", NULL, M_NONE, JWT_ESIG},
    {"RS256, a character changed", KS_KID, O_STD, S_RS256, NULL, NULL, T_SIG_CHAR,
     JWT_ESIG},
    {"RS256, payload swapped", KS_KID, O_STD, S_RS256, NULL, NULL, T_PAY_SWAP, JWT_ESIG},
    {"RS256, another RSA key", KS_KID, O_STD, S_RS_OTHER, NULL, NULL, M_NONE, JWT_ESIG},
    {"RS256, a byte short", KS_KID, O_STD, S_RS256, NULL, NULL, G_TRUNC, JWT_ESIG},
    {"RS256, all zero", KS_KID, O_STD, S_RS256, NULL, NULL, G_ZERO, JWT_ESIG},
    {"PS256 header, RS256 signature", KS_KID, O_STD, S_RS256,
     "{\"alg\":\"PS256\",\"kid\":\"ps256\"}", NULL, M_NONE, JWT_ESIG},
    {"RS256 header, PS256 signature", KS_KID, O_STD, S_PS256,
     "{\"alg\":\"RS256\",\"kid\":\"rs256\"}", NULL, M_NONE, JWT_ESIG},
    {"PS256, no salt", KS_KID, O_STD, S_PS256_SALT0, NULL, NULL, M_NONE, JWT_ESIG},
    {"PS256, the longest salt", KS_KID, O_STD, S_PS256_SALTMAX, NULL, NULL, M_NONE,
     JWT_ESIG},
    {"RS512 header, RS256 signature", KS_KID, O_STD, S_RS256,
     "{\"alg\":\"RS512\",\"kid\":\"rs512\"}", NULL, M_NONE, JWT_ESIG},
    {"ES256, 63 bytes", KS_KID, O_STD, S_ES256, NULL, NULL, G_TRUNC, JWT_ESIG},
    {"ES256, 65 bytes", KS_KID, O_STD, S_ES256, NULL, NULL, G_EXTEND, JWT_ESIG},
    {"ES256, DER instead of R||S", KS_KID, O_STD, S_ES256, NULL, NULL, G_DER, JWT_ESIG},
    {"ES256, R and S zero", KS_KID, O_STD, S_ES256, NULL, NULL, G_ZERO, JWT_ESIG},
    {"ES256, another P-256 key", KS_KID, O_STD, S_ES_OTHER, NULL, NULL, M_NONE, JWT_ESIG},
    {"ES256, a character changed", KS_KID, O_STD, S_ES256, NULL, NULL, T_SIG_CHAR,
     JWT_ESIG},
    {"ES384 header, P-256 signature", KS_KID, O_STD, S_ES256,
     "{\"alg\":\"ES384\",\"kid\":\"es384\"}", NULL, M_NONE, JWT_ESIG},
    {"EdDSA, a character changed", KS_KID, O_STD, S_EDDSA, NULL, NULL, T_SIG_CHAR,
     JWT_ESIG},
    {"EdDSA, another Ed25519 key", KS_KID, O_STD, S_ED_OTHER, NULL, NULL, M_NONE,
     JWT_ESIG},
    {"EdDSA, a byte short", KS_KID, O_STD, S_EDDSA, NULL, NULL, G_TRUNC, JWT_ESIG},
    {"EdDSA via JWKS, another key", KS_JWKS, O_STD, S_ED_OTHER, NULL, NULL, M_NONE,
     JWT_ESIG},
    /* the signature first, the claims after */
    {"expired and badly signed", KS_KID, O_STD, S_HS_WRONG, NULL, "{\"exp\":1}", M_NONE,
     JWT_ESIG},
    {"payload not JSON and badly signed", KS_KID, O_STD, S_HS_WRONG, NULL, "{{{", M_NONE,
     JWT_ESIG},
    {"payload not base64url and badly signed", KS_KID, O_STD, S_HS_WRONG, NULL, NULL,
     P_PAY_BITS, JWT_ESIG},
    /* the payload, signed */
    {"payload not JSON", KS_KID, O_STD, S_HS256, NULL, "hello", M_NONE, MAL},
    {"payload an array", KS_KID, O_STD, S_HS256, NULL, "[1]", M_NONE, MAL},
    {"payload a string", KS_KID, O_STD, S_HS256, NULL, "\"x\"", M_NONE, MAL},
    {"payload not UTF-8", KS_KID, O_NONE, S_HS256, NULL, "{\"sub\":\"\xff\"}", M_NONE,
     MAL},
    {"payload with \\u0000", KS_KID, O_NONE, S_HS256, NULL, "{\"sub\":\"a\\u0000b\"}",
     M_NONE, MAL},
    {"duplicate claim", KS_KID, O_NONE, S_HS256, NULL, "{\"sub\":\"a\",\"sub\":\"b\"}",
     M_NONE, MAL},
    {"duplicate exp", KS_KID, O_NONE, S_HS256, NULL,
     "{\"exp\":1700003600,\"exp\":1700003600}", M_NONE, MAL},
    {"exp a string", KS_KID, O_NONE, S_HS256, NULL, "{\"exp\":\"1700003600\"}", M_NONE,
     MAL},
    {"exp null", KS_KID, O_NONE, S_HS256, NULL, "{\"exp\":null}", M_NONE, MAL},
    {"exp too big for a double", KS_KID, O_NONE, S_HS256, NULL, "{\"exp\":1e400}", M_NONE,
     MAL},
    {"nbf a boolean", KS_KID, O_NONE, S_HS256, NULL, "{\"nbf\":true}", M_NONE, MAL},
    {"iat a string", KS_KID, O_NONE, S_HS256, NULL, "{\"iat\":\"now\"}", M_NONE, MAL},
    {"exp at now - leeway", KS_KID, O_NONE, S_HS256, NULL, "{\"exp\":1699999970}", M_NONE,
     JWT_EEXPIRED},
    {"exp at now, no leeway", KS_KID, O_STRICT, S_HS256, NULL,
     "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000000}", M_NONE,
     JWT_EEXPIRED},
    {"exp a real, past", KS_KID, O_NONE, S_HS256, NULL, "{\"exp\":1699999969.5}", M_NONE,
     JWT_EEXPIRED},
    {"exp 0", KS_KID, O_NONE, S_HS256, NULL, "{\"exp\":0}", M_NONE, JWT_EEXPIRED},
    {"exp negative", KS_KID, O_NONE, S_HS256, NULL, "{\"exp\":-9223372036854775808}",
     M_NONE, JWT_EEXPIRED},
    {"exp past, negative leeway", KS_KID, O_NEGLEEWAY, S_HS256, NULL,
     "{\"exp\":1700000000}", M_NONE, JWT_EEXPIRED},
    {"nbf after now + leeway", KS_KID, O_NONE, S_HS256, NULL, "{\"nbf\":1700000031}",
     M_NONE, JWT_ENOTYET},
    {"nbf a real, after", KS_KID, O_NONE, S_HS256, NULL, "{\"nbf\":1700000030.5}", M_NONE,
     JWT_ENOTYET},
    {"nbf the largest integer", KS_KID, O_NONE, S_HS256, NULL,
     "{\"nbf\":9223372036854775807}", M_NONE, JWT_ENOTYET},
    {"nbf after now, no leeway", KS_KID, O_STRICT, S_HS256, NULL,
     "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"nbf\":1700000001}", M_NONE, JWT_ENOTYET},
    {"expired before the issuer is looked at", KS_KID, O_STD, S_HS256, NULL,
     "{\"exp\":1,\"iss\":\"x\"}", M_NONE, JWT_EEXPIRED},
    {"iss another", KS_KID, O_STD, S_HS256, NULL,
     "{\"iss\":\"https://evil.example\",\"aud\":\"" AUD "\"}", M_NONE, JWT_EISS},
    {"iss missing", KS_KID, O_STD, S_HS256, NULL, "{\"aud\":\"" AUD "\"}", M_NONE,
     JWT_EISS},
    {"iss in another case", KS_KID, O_STD, S_HS256, NULL,
     "{\"iss\":\"HTTPS://ISSUER.EXAMPLE\",\"aud\":\"" AUD "\"}", M_NONE, JWT_EISS},
    {"iss a prefix", KS_KID, O_STD, S_HS256, NULL,
     "{\"iss\":\"https://issuer.exampl\",\"aud\":\"" AUD "\"}", M_NONE, JWT_EISS},
    {"iss a number", KS_KID, O_STD, S_HS256, NULL, "{\"iss\":1,\"aud\":\"" AUD "\"}",
     M_NONE, MAL},
    {"iss a number, not configured", KS_KID, O_NONE, S_HS256, NULL, "{\"iss\":1}", M_NONE,
     MAL},
    {"aud another", KS_KID, O_STD, S_HS256, NULL,
     "{\"iss\":\"" ISS "\",\"aud\":\"other\"}", M_NONE, JWT_EAUD},
    {"aud missing", KS_KID, O_STD, S_HS256, NULL, "{\"iss\":\"" ISS "\"}", M_NONE,
     JWT_EAUD},
    {"aud longer", KS_KID, O_STD, S_HS256, NULL,
     "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "2\"}", M_NONE, JWT_EAUD},
    {"aud an array without it", KS_KID, O_STD, S_HS256, NULL,
     "{\"iss\":\"" ISS "\",\"aud\":[\"a\",\"b\"]}", M_NONE, JWT_EAUD},
    {"aud an empty array", KS_KID, O_STD, S_HS256, NULL,
     "{\"iss\":\"" ISS "\",\"aud\":[]}", M_NONE, JWT_EAUD},
    {"aud an array with a number", KS_KID, O_STD, S_HS256, NULL,
     "{\"iss\":\"" ISS "\",\"aud\":[\"" AUD "\",1]}", M_NONE, MAL},
    {"aud a number", KS_KID, O_STD, S_HS256, NULL, "{\"iss\":\"" ISS "\",\"aud\":1}",
     M_NONE, MAL},
    {"aud an object", KS_KID, O_STD, S_HS256, NULL,
     "{\"iss\":\"" ISS "\",\"aud\":{\"" AUD "\":1}}", M_NONE, MAL},
    {"aud an array with null, not configured", KS_KID, O_NONE, S_HS256, NULL,
     "{\"aud\":[null]}", M_NONE, MAL},
};

/* Whole tokens written out. */
struct raw_case {
    const char *name;
    const char *text;
    size_t len;
    int want;
};
#define R(s) s, sizeof(s) - 1

static const struct raw_case raw_cases[] = {
    {"empty", R(""), MAL},
    {"no dot", R("abc"), MAL},
    {"one dot", R("abc.def"), MAL},
    {"two dots only", R(".."), MAL},
    {"three dots", R("..."), MAL},
    {"one-character segments", R("a.b.c"), MAL},
    {"{} header", R("e30.e30.e30"), MAL},
    {"alg none, unsigned (RFC 7519 6.1)", R("eyJhbGciOiJub25lIn0.e30."), MAL},
    {"alg none, signature AAAA", R("eyJhbGciOiJub25lIn0.e30.AAAA"), JWT_EALG},
};

/* ---- good tokens ---- */

struct good_case {
    const char *name;
    int ks, o, signer;
    const char *hdr, *pay;
};

static const struct good_case good_cases[] = {
    {"exp a second inside the leeway", KS_KID, O_NONE, S_HS256, NULL,
     "{\"exp\":1699999971}"},
    {"nbf at now + leeway", KS_KID, O_NONE, S_HS256, NULL, "{\"nbf\":1700000030}"},
    {"exp a real inside the leeway", KS_KID, O_NONE, S_HS256, NULL,
     "{\"exp\":1699999970.5}"},
    {"exp the largest integer", KS_KID, O_NONE, S_HS256, NULL,
     "{\"exp\":9223372036854775807}"},
    {"exp 1e300", KS_KID, O_NONE, S_HS256, NULL, "{\"exp\":1e300}"},
    {"nbf the smallest integer", KS_KID, O_NONE, S_HS256, NULL,
     "{\"nbf\":-9223372036854775808}"},
    {"no claims at all, none configured", KS_KID, O_NONE, S_HS256, NULL, "{}"},
    {"exp just ahead, negative leeway", KS_KID, O_NEGLEEWAY, S_HS256, NULL,
     "{\"exp\":1700000001}"},
    {"aud an array with it", KS_KID, O_STD, S_HS256, NULL,
     "{\"iss\":\"" ISS "\",\"aud\":[\"x\",\"" AUD "\"]}"},
    {"iss and aud not configured, present", KS_KID, O_NONE, S_HS256, NULL,
     "{\"iss\":\"anyone\",\"aud\":[\"x\"]}"},
    {"typ jwt", KS_KID, O_STD, S_HS256, HS ",\"typ\":\"jwt\"}", NULL},
    {"typ application/jwt", KS_KID, O_STD, S_HS256, HS ",\"typ\":\"application/jwt\"}",
     NULL},
    {"typ at+jwt", KS_KID, O_STD, S_HS256, HS ",\"typ\":\"at+jwt\"}", NULL},
    {"typ APPLICATION/AT+JWT", KS_KID, O_STD, S_HS256,
     HS ",\"typ\":\"APPLICATION/AT+JWT\"}", NULL},
    {"no typ", KS_KID, O_STD, S_HS256, HS "}", NULL},
    {"jku, jwk, x5u in the header are ignored", KS_KID, O_STD, S_HS256,
     HS ",\"jku\":\"https://evil.example/jwks\",\"jwk\":{\"kty\":\"oct\",\"k\":\"AA\"},"
        "\"x5u\":\"https://evil.example/x5u\"}",
     NULL},
    {"RS256 with the RSA-only set", KS_RSA, O_STD, S_RS256, NULL, NULL},
    {"RS256 without kid, RSA-only set without kids", KS_RSA_NOKID, O_STD, S_RS256,
     "{\"alg\":\"RS256\"}", NULL},
    {"non-ASCII claims", KS_KID, O_STD, S_HS256, NULL,
     "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"name\":\"J\xc3\xbcrgen \xe2\x9c\x93\"}"},
};

/* ---- running ---- */

static int check_bad(const char *name, int k, int o, const char *tok, size_t len,
                     int want)
{
    json_t *claims = (json_t *)1;
    int rc = jwt_verify(ks[k], &opts[o], tok, len, &claims);
    ok(rc == want && claims == NULL, "bad: %s: %d (%s), want %d", name, rc,
       jwt_strerror(rc), want);
    if (rc == 0)
        json_decref(claims);
    return rc == want;
}

static int check_good(const char *name, int k, int o, const char *tok, size_t len,
                      const char *sub)
{
    json_t *claims = NULL;
    int rc = jwt_verify(ks[k], &opts[o], tok, len, &claims);
    const char *got = json_string_value(json_object_get(claims, "sub"));
    int good =
        rc == 0 && json_is_object(claims) && (!sub || (got && strcmp(got, sub) == 0));
    ok(good, "good: %s: %d (%s)", name, rc, jwt_strerror(rc));
    json_decref(claims);
    return good;
}

/* ---- the loaders ---- */

/* {"keys": [jwk]} as text (takes 'jwk'). */
static char *jwks1(json_t *jwk)
{
    return dumps(json_pack("{s:[o]}", "keys", jwk));
}

/* Add the JWK Set 'text' (freed) to 'k'; the code. */
static int add_jwks_take(jwt_keys *k, char *text, char *err, size_t errlen)
{
    int rc = jwt_keys_add_jwks(k, text, strlen(text), err, errlen);
    free(text);
    return rc;
}

static void test_loaders(void)
{
    char err[256] = "";
    jwt_keys *k = jwt_keys_new();
    int rc;

    ok(k && jwt_keys_count(k) == 0, "a new key set is empty");
    ok(jwt_keys_count(NULL) == 0, "jwt_keys_count(NULL) is 0");
    jwt_keys_free(NULL);

    /* secrets */
    rc = jwt_keys_add_secret(k, "a", "HS256", hs, 31, err, sizeof(err));
    ok(rc == JWT_EKEY && strstr(err, "32"), "secret: HS256 refuses 31 bytes (%s)", err);
    ok(jwt_keys_add_secret(k, "a", "HS384", hs, 47, err, sizeof(err)) == JWT_EKEY,
       "secret: HS384 refuses 47 bytes (%s)", err);
    ok(jwt_keys_add_secret(k, "a", "HS512", hs, 63, err, sizeof(err)) == JWT_EKEY,
       "secret: HS512 refuses 63 bytes (%s)", err);
    ok(jwt_keys_add_secret(k, "a", "RS256", hs, 32, err, sizeof(err)) == JWT_EALG,
       "secret: RS256 takes no secret (%s)", err);
    ok(jwt_keys_add_secret(k, "a", "none", hs, 32, err, sizeof(err)) == JWT_EALG,
       "secret: alg none refused (%s)", err);
    ok(jwt_keys_add_secret(k, "a", NULL, hs, 32, err, sizeof(err)) == JWT_EALG,
       "secret: no alg refused (%s)", err);
    ok(jwt_keys_add_secret(NULL, "a", "HS256", hs, 32, err, sizeof(err)) == JWT_EINVAL,
       "secret: no key set (%s)", err);
    ok(jwt_keys_count(k) == 0, "nothing refused was added");
    ok(jwt_keys_add_secret(k, "a", "HS256", hs, 32, NULL, 0) == 0,
       "secret: HS256 takes 32 bytes (no err buffer)");
    ok(jwt_keys_add_secret(k, "a", "HS512", hs, 64, err, sizeof(err)) == JWT_EKEY &&
           strstr(err, "taken"),
       "secret: a kid already taken is refused (%s)", err);
    ok(jwt_keys_add_secret(k, NULL, "HS512", hs, 64, err, sizeof(err)) == 0 &&
           jwt_keys_add_secret(k, NULL, "HS512", hs, 64, err, sizeof(err)) == 0,
       "secret: keys without kid may repeat");
    ok(jwt_keys_count(k) == 3, "three keys");

    /* PEM */
    char *pem1024 = pem_of(rsa1024, 0), *pem256 = pem_of(ec256, 0),
         *pemk1 = pem_of(k1, 0), *pemed = pem_of(ed, 0), *priv = pem_of(ec256, 1),
         *cert = cert_of(rsa), *pkcs1 = pkcs1_of(rsa);
    struct {
        const char *name, *alg, *pem;
        int want;
    } pems[] = {
        {"RSA-1024 for RS256", "RS256", pem1024, JWT_EKEY},
        {"RSA-1024 for PS256", "PS256", pem1024, JWT_EKEY},
        {"RSA for ES256", "ES256", rsa_pem, JWT_EKEY},
        {"RSA for EdDSA", "EdDSA", rsa_pem, JWT_EKEY},
        {"P-256 for ES384", "ES384", pem256, JWT_EKEY},
        {"P-256 for RS256", "RS256", pem256, JWT_EKEY},
        {"P-256 for EdDSA", "EdDSA", pem256, JWT_EKEY},
        {"secp256k1 for ES256", "ES256", pemk1, JWT_EKEY},
        {"Ed25519 for RS256", "RS256", pemed, JWT_EKEY},
        {"Ed25519 for ES256", "ES256", pemed, JWT_EKEY},
        {"a private key", "ES256", priv, JWT_EKEY},
        {"a certificate", "RS256", cert, JWT_EKEY},
        {"not PEM", "RS256", "hello", JWT_EKEY},
        {"empty", "RS256", "", JWT_EKEY},
        {"RSA for HS256", "HS256", rsa_pem, JWT_EALG},
        {"RSA for none", "none", rsa_pem, JWT_EALG},
        {"RSA for rs256 (case)", "rs256", rsa_pem, JWT_EALG},
    };
    for (size_t i = 0; i < N_ELEMS(pems); i++) {
        err[0] = '\0';
        rc = jwt_keys_add_pem(k, NULL, pems[i].alg, pems[i].pem, strlen(pems[i].pem), err,
                              sizeof(err));
        ok(rc == pems[i].want && err[0], "pem: %s refused: %d (%s)", pems[i].name, rc,
           err);
    }
    size_t half = strlen(rsa_pem) / 2;
    ok(jwt_keys_add_pem(k, NULL, "RS256", rsa_pem, half, err, sizeof(err)) == JWT_EKEY,
       "pem: half a PEM block refused (%s)", err);
    ok(jwt_keys_count(k) == 3, "nothing refused was added");
    /* Exactly 'len' bytes, no NUL after them (ASan sees a read past). */
    size_t n = strlen(pemed);
    char *exact = xmalloc(n);
    memcpy(exact, pemed, n);
    err[0] = '\0';
    ok(jwt_keys_add_pem(k, "ed", "EdDSA", exact, n, err, sizeof(err)) == 0,
       "pem: Ed25519 for EdDSA, not NUL-terminated (%s)", err);
    free(exact);
    err[0] = '\0';
    ok(jwt_keys_add_pem(k, "p256", "ES256", pem256, strlen(pem256), err, sizeof(err)) ==
           0,
       "pem: P-256 for ES256 (%s)", err);
    err[0] = '\0';
    ok(strstr(pkcs1, "BEGIN RSA PUBLIC KEY") &&
           jwt_keys_add_pem(k, "pkcs1", "RS256", pkcs1, strlen(pkcs1), err,
                            sizeof(err)) == 0,
       "pem: RSA as PKCS#1 (RSA PUBLIC KEY) for RS256 (%s)", err);
    ok(jwt_keys_count(k) == 6, "six keys");
    free(pem1024);
    free(pem256);
    free(pemk1);
    free(pemed);
    free(priv);
    free(cert);
    free(pkcs1);
    jwt_keys_free(k);

    /* JWK Sets that are refused whole */
    struct {
        const char *name, *text;
    } texts[] = {
        {"not JSON", "{"},
        {"an array", "[]"},
        {"no keys", "{}"},
        {"keys an object", "{\"keys\":{}}"},
        {"keys empty", "{\"keys\":[]}"},
        {"a key not an object", "{\"keys\":[1]}"},
        {"duplicate members", "{\"keys\":[],\"keys\":[]}"},
        {"kty missing", "{\"keys\":[{\"alg\":\"HS256\",\"k\":\"AA\"}]}"},
        {"only a key for encryption", "{\"keys\":[{\"kty\":\"oct\",\"use\":\"enc\","
                                      "\"alg\":\"A256GCM\",\"k\":\"AA\"}]}"},
        {"only a kty not known", "{\"keys\":[{\"kty\":\"XYZ\"}]}"},
        {"use a number", "{\"keys\":[{\"kty\":\"oct\",\"use\":1}]}"},
        {"key_ops a string", "{\"keys\":[{\"kty\":\"oct\",\"key_ops\":\"verify\"}]}"},
        {"key_ops with a number", "{\"keys\":[{\"kty\":\"oct\",\"key_ops\":[1]}]}"},
        {"oct without alg", "{\"keys\":[{\"kty\":\"oct\",\"k\":"
                            "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}"},
        {"oct k 31 bytes", "{\"keys\":[{\"kty\":\"oct\",\"alg\":\"HS256\",\"k\":"
                           "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}"},
        {"oct k padded", "{\"keys\":[{\"kty\":\"oct\",\"alg\":\"HS256\",\"k\":"
                         "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}]}"},
        {"oct k not a string",
         "{\"keys\":[{\"kty\":\"oct\",\"alg\":\"HS256\",\"k\":1}]}"},
        {"oct with alg RS256", "{\"keys\":[{\"kty\":\"oct\",\"alg\":\"RS256\",\"k\":"
                               "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}"},
        {"kid a number", "{\"keys\":[{\"kty\":\"oct\",\"kid\":1,\"alg\":\"HS256\",\"k\":"
                         "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}"},
        {"EC without crv", "{\"keys\":[{\"kty\":\"EC\",\"x\":\"AA\",\"y\":\"AA\"}]}"},
        {"OKP x 31 bytes", "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":"
                           "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}"},
    };
    for (size_t i = 0; i < N_ELEMS(texts); i++) {
        k = jwt_keys_new();
        err[0] = '\0';
        rc = jwt_keys_add_jwks(k, texts[i].text, strlen(texts[i].text), err, sizeof(err));
        ok(rc == JWT_EKEY && err[0] && jwt_keys_count(k) == 0,
           "jwks: %s refused: %d (%s)", texts[i].name, rc, err);
        jwt_keys_free(k);
    }

    /* JWKs made from real keys, spoiled one way each */
    struct {
        const char *name;
        int si;
        const char *set, *to; /* member set to a JSON value (NULL: removed) */
    } spoilt[] = {
        {"RSA without alg", S_RS256, "alg", NULL},
        {"RSA with alg ES256", S_RS256, "alg", "\"ES256\""},
        {"RSA with alg EdDSA", S_RS256, "alg", "\"EdDSA\""},
        {"RSA with alg HS256", S_RS256, "alg", "\"HS256\""},
        {"RSA without n", S_RS256, "n", NULL},
        {"RSA with e a number", S_RS256, "e", "65537"},
        {"RSA with e 1", S_RS256, "e", "\"AQ\""},
        {"RSA with n 1024 bits", S_RS256, "n", NULL /* below */},
        {"RSA with d", S_RS256, "d", "\"AQAB\""},
        {"EC P-256 with alg ES384", S_ES256, "alg", "\"ES384\""},
        {"EC P-256 with alg RS256", S_ES256, "alg", "\"RS256\""},
        {"EC P-256 with crv P-384", S_ES256, "crv", "\"P-384\""},
        {"EC without y", S_ES256, "y", NULL},
        {"EC x 31 bytes", S_ES256, "x", "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\""},
        {"EC point off the curve", S_ES256, "y", NULL /* below */},
        {"EC with d", S_ES256, "d", "\"AQAB\""},
        {"OKP with alg ES256", S_EDDSA, "alg", "\"ES256\""},
        {"OKP without x", S_EDDSA, "x", NULL},
        {"OKP with d", S_EDDSA, "d", "\"AQAB\""},
        {"OKP x padded", S_EDDSA, "x", NULL /* below */},
    };
    for (size_t i = 0; i < N_ELEMS(spoilt); i++) {
        json_t *j = jwk_of(spoilt[i].si, 1);
        const char *name = spoilt[i].name;
        if (strcmp(name, "RSA with n 1024 bits") == 0) {
            set_take(j, "n", bn_b64(rsa1024, OSSL_PKEY_PARAM_RSA_N, 0));
        } else if (strcmp(name, "EC point off the curve") == 0) {
            char *y = strdup(json_string_value(json_object_get(j, "y")));
            y[5] = y[5] == 'A' ? 'B' : 'A';
            set_take(j, "y", y);
        } else if (strcmp(name, "OKP x padded") == 0) {
            set_take(j, "x", cat3(json_string_value(json_object_get(j, "x")), "", "="));
        } else if (spoilt[i].to) {
            json_object_set_new(j, spoilt[i].set,
                                json_loads(spoilt[i].to, JSON_DECODE_ANY, NULL));
        } else {
            json_object_del(j, spoilt[i].set);
        }
        k = jwt_keys_new();
        err[0] = '\0';
        rc = add_jwks_take(k, jwks1(j), err, sizeof(err));
        ok(rc == JWT_EKEY && err[0] && jwt_keys_count(k) == 0,
           "jwks: %s refused: %d (%s)", name, rc, err);
        jwt_keys_free(k);
    }

    /* All or nothing; skipped keys */
    k = jwt_keys_new();
    json_t *good = jwk_of(S_ES256, 1), *bad = jwk_of(S_RS256, 0);
    rc = add_jwks_take(k, dumps(json_pack("{s:[o,o]}", "keys", good, bad)), err,
                       sizeof(err));
    ok(rc == JWT_EKEY && strstr(err, "keys[1]") && jwt_keys_count(k) == 0,
       "jwks: a good key then a bad one adds nothing (%s)", err);
    rc = add_jwks_take(
        k, dumps(json_pack("{s:[o,o]}", "keys", jwk_of(S_ES256, 1), jwk_of(S_ES384, 1))),
        err, sizeof(err));
    ok(rc == 2 && jwt_keys_count(k) == 2, "jwks: two keys (%d)", rc);
    rc = add_jwks_take(k, jwks1(jwk_of(S_ES256, 1)), err, sizeof(err));
    ok(rc == JWT_EKEY && strstr(err, "taken") && jwt_keys_count(k) == 2,
       "jwks: a kid already in the set is refused (%s)", err);
    json_t *dup1 = jwk_of(S_EDDSA, 1), *dup2 = jwk_of(S_EDDSA, 1);
    rc = add_jwks_take(k, dumps(json_pack("{s:[o,o]}", "keys", dup1, dup2)), err,
                       sizeof(err));
    ok(rc == JWT_EKEY && jwt_keys_count(k) == 2,
       "jwks: the same kid twice in a set is refused (%s)", err);
    json_t *enc = jwk_of(S_RS384, 1), *ops = jwk_of(S_RS512, 1),
           *oaep = jwk_of(S_PS256, 1);
    json_object_set_new(enc, "use", json_string("enc"));
    json_object_set_new(ops, "key_ops", json_pack("[s]", "encrypt"));
    json_object_set_new(oaep, "alg", json_string("RSA-OAEP-256"));
    json_t *keys = json_pack("[o,o,o,{s:s,s:s,s:s},{s:s,s:s,s:s,s:s},{s:s},{s:s,s:s},o]",
                             enc, ops, oaep, "kty", "OKP", "crv", "X25519", "x", "AA",
                             "kty", "EC", "crv", "secp256k1", "x", "AA", "y", "AA", "kty",
                             "new", "kty", "oct", "alg", "A128KW", jwk_of(S_EDDSA, 0));
    rc = add_jwks_take(k, dumps(json_pack("{s:o}", "keys", keys)), err, sizeof(err));
    ok(rc == 1 && jwt_keys_count(k) == 3,
       "jwks: use enc, key_ops without verify, RSA-OAEP, X25519, secp256k1, a new kty, "
       "A128KW skipped; Ed25519 without alg added (%d: %s)",
       rc, rc < 0 ? err : "");
    jwt_keys_free(k);
    ok(jwt_keys_add_jwks(NULL, "{}", 2, err, sizeof(err)) == JWT_EINVAL,
       "jwks: no key set (%s)", err);
}

static void test_strerror(void)
{
    int distinct = 1, clean = 1;
    for (int a = -12; a <= 0; a++) {
        const char *s = jwt_strerror(a);
        clean &= s && !strpbrk(s, "\"\\") && strcmp(s, "unknown error") != 0;
        for (int b = a + 1; b <= 0; b++)
            distinct &= strcmp(s, jwt_strerror(b)) != 0;
    }
    ok(distinct && clean, "jwt_strerror: a distinct text for each code, no quotes");
    ok(strcmp(jwt_strerror(-999), "unknown error") == 0, "jwt_strerror: unknown code");
}

/* Keys of the set 'which': with or without kids, from PEM or a JWK Set. */
static jwt_keys *keyset(int which)
{
    jwt_keys *k = jwt_keys_new();
    char err[256] = "";
    int rc = 0;

    if (which == KS_JWKS) {
        char *text = jwks_text();
        rc = jwt_keys_add_jwks(k, text, strlen(text), err, sizeof(err));
        ok(rc == S_GOOD_END, "jwks: the set of every key adds %d keys (%d %s)",
           S_GOOD_END, rc, err);
        free(text);
        return k;
    }
    if (which == KS_RSA || which == KS_RSA_NOKID) {
        rc = jwt_keys_add_pem(k, which == KS_RSA ? "rs256" : NULL, "RS256", rsa_pem,
                              strlen(rsa_pem), err, sizeof(err));
        ok(rc == 0, "keys: the RSA key pinned to RS256 (%s)", err);
        return k;
    }
    for (int si = 0; si < S_GOOD_END && rc == 0; si++) {
        const struct signer *s = &signers[si];
        const char *kid = which == KS_KID ? s->kid : NULL;
        if (s->secret) {
            rc =
                jwt_keys_add_secret(k, kid, s->alg, s->secret, s->slen, err, sizeof(err));
        } else {
            char *pem = pem_of(*s->pk, 0);
            rc = jwt_keys_add_pem(k, kid, s->alg, pem, strlen(pem), err, sizeof(err));
            free(pem);
        }
    }
    ok(rc == 0 && jwt_keys_count(k) == S_GOOD_END, "keys: %d keys %s kids (%s)",
       S_GOOD_END, which == KS_KID ? "with" : "without", err);
    return k;
}

int main(void)
{
    make_keys();
    test_strerror();
    test_loaders();
    for (int i = 0; i < KS_END; i++)
        ks[i] = keyset(i);

    /* Every algorithm, from PEM or a JWK Set, with a kid and without. */
    for (int si = 0; si < S_GOOD_END; si++) {
        const char *alg = signers[si].alg;
        char *hdr = NULL;
        if (asprintf(&hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg) < 0)
            die("asprintf");
        struct tok kid = mint(si, NULL, NULL, M_NONE),
                   nokid = mint(si, hdr, NULL, M_NONE);
        free(hdr);
        static const int sets[] = {KS_KID, KS_NOKID, KS_JWKS};
        static const char *const set_names[] = {"PEM with kids", "PEM without kids",
                                                "JWKS"};
        for (size_t i = 0; i < N_ELEMS(sets); i++) {
            char name[100];
            snprintf(name, sizeof(name), "%s, kid, %s", alg, set_names[i]);
            if (sets[i] == KS_NOKID)
                check_bad(name, sets[i], O_STD, kid.s, kid.len, JWT_EKID);
            else
                check_good(name, sets[i], O_STD, kid.s, kid.len, "alice");
            snprintf(name, sizeof(name), "%s, no kid, %s", alg, set_names[i]);
            check_good(name, sets[i], O_STD, nokid.s, nokid.len, "alice");
        }
        free(kid.s);
        free(nokid.s);
    }

    /* Any key pinned to the alg may verify a token without kid. */
    jwt_keys *multi = jwt_keys_new();
    ok(jwt_keys_add_secret(multi, NULL, "HS256", hs_wrong, 32, NULL, 0) == 0 &&
           jwt_keys_add_pem(multi, NULL, "RS256", rsa_pem, strlen(rsa_pem), NULL, 0) ==
               0 &&
           jwt_keys_add_secret(multi, "x", "HS256", hs, 32, NULL, 0) == 0,
       "keys: two HS256 secrets (one with a kid) and an RSA key");
    struct tok t = mint(S_HS256, HS "}", NULL, M_NONE);
    json_t *claims = NULL;
    ok(jwt_verify(multi, &opts[O_STD], t.s, t.len, &claims) == 0 && claims,
       "the second HS256 key verifies a token without kid");
    json_decref(claims);
    free(t.s);
    jwt_keys_free(multi);

    size_t nbad = 0, passed = 0;
    for (size_t i = 0; i < N_ELEMS(bad_cases); i++, nbad++) {
        const struct bad_case *c = &bad_cases[i];
        t = mint(c->signer, c->hdr, c->pay, c->mut);
        passed += check_bad(c->name, c->ks, c->o, t.s, t.len, c->want);
        free(t.s);
    }
    for (size_t i = 0; i < N_ELEMS(raw_cases); i++, nbad++)
        passed += check_bad(raw_cases[i].name, KS_KID, O_STD, raw_cases[i].text,
                            raw_cases[i].len, raw_cases[i].want);
    /* Too long is refused before anything is read: not even the alphabet. */
    char *junk = xmalloc(100 * 1024);
    memset(junk, '!', 100 * 1024);
    passed += check_bad("100 KB of '!'", KS_KID, O_STD, junk, 100 * 1024, JWT_ETOOBIG);
    nbad++;
    free(junk);
    diag("%zu of %zu bad tokens refused with the code expected", passed, nbad);

    for (size_t i = 0; i < N_ELEMS(good_cases); i++) {
        const struct good_case *c = &good_cases[i];
        t = mint(c->signer, c->hdr, c->pay, M_NONE);
        check_good(c->name, c->ks, c->o, t.s, t.len, NULL);
        free(t.s);
    }

    /* max_bytes: a token of exactly the limit passes, one byte less refuses it. */
    t = mint(S_ES256, NULL, NULL, M_NONE);
    jwt_opts o = opts[O_STD];
    o.max_bytes = t.len;
    ok(jwt_verify(ks[KS_KID], &o, t.s, t.len, &claims) == 0,
       "max_bytes: exactly the limit");
    json_decref(claims);
    o.max_bytes = t.len - 1;
    ok(jwt_verify(ks[KS_KID], &o, t.s, t.len, &claims) == JWT_ETOOBIG && !claims,
       "max_bytes: a byte over the limit");

    /* Arguments */
    ok(jwt_verify(NULL, &opts[O_STD], t.s, t.len, &claims) == JWT_EINVAL && !claims,
       "verify: no key set");
    ok(jwt_verify(ks[KS_KID], NULL, t.s, t.len, &claims) == JWT_EINVAL,
       "verify: no options");
    ok(jwt_verify(ks[KS_KID], &opts[O_STD], t.s, t.len, NULL) == JWT_EINVAL,
       "verify: nowhere for the claims");
    ok(jwt_verify(ks[KS_KID], &opts[O_STD], NULL, 0, &claims) == JWT_EMALFORMED,
       "verify: an empty token");

    /* libcrypto's error queue is left as it was found. */
    ERR_clear_error();
    struct tok bad = mint(S_RS256, NULL, NULL, G_TRUNC);
    jwt_verify(ks[KS_KID], &opts[O_STD], bad.s, bad.len, &claims);
    jwt_keys *k = jwt_keys_new();
    jwt_keys_add_pem(k, NULL, "RS256", "junk", 4, NULL, 0);
    jwt_keys_add_jwks(k, "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\"}]}",
                      49, NULL, 0);
    ok(ERR_peek_error() == 0, "failures leave nothing in libcrypto's error queue");
    ERR_raise(ERR_LIB_USER, 42);
    jwt_verify(ks[KS_KID], &opts[O_STD], t.s, t.len, &claims);
    json_decref(claims);
    jwt_verify(ks[KS_KID], &opts[O_STD], bad.s, bad.len, &claims);
    ok(ERR_GET_REASON(ERR_peek_error()) == 42, "and an error already there stays");
    ERR_clear_error();
    jwt_keys_free(k);
    free(bad.s);
    free(t.s);

    for (int i = 0; i < KS_END; i++)
        jwt_keys_free(ks[i]);
    free_keys();
    return done_testing();
}
