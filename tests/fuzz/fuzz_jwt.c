/* fuzz_jwt.c - libFuzzer target for the JWT verifier (src/auth/jwt.c, jwt_keys.c).
 *
 * 1. The input as a token, verified against a fixed key set: an HS256 secret
 *    fixed here (so the seed corpus holds tokens that verify and the claim
 *    checks are reached), and RSA-2048, P-256 and Ed25519 keys generated once
 *    per process (a token is minted with each at start, and must verify). An
 *    accepted token must have been signed here: its signing input (header and
 *    payload segments) must be one of the known tokens' or of those minted at
 *    start (the signature itself may differ: ECDSA's is malleable), and its
 *    claims an object.
 * 2. The input as a JWK Set, loaded into a fresh key set: a success returns
 *    how many keys it added, a failure adds none and says why; the known
 *    tokens are then verified against what it loaded (accepted: claims an
 *    object).
 * Any broken promise aborts; leaks are LeakSanitizer's. */
#include "src/auth/jwt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_jwt: check failed: %s (line %d)\n", #cond, __LINE__);  \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* The fixed secret, and tokens it signed that pass the checks of 'opts'
 * (also in the seed corpus: token-good-kid, token-good-nokid, token-typ). */
static const char secret[] = "fuzz_jwt: the fixed HS256 secret, 44 bytes.";
static const char *const known[] = {
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImhzIn0.eyJzdWIiOiJhbGljZSIsImlzcyI6Im"
    "h0dHBzOi8vaXNzdWVyLmV4YW1wbGUiLCJhdWQiOiJzc2Vicm9rZXIiLCJleHAiOjE3MDAwMDM2MDAsIm5i"
    "ZiI6MTY5OTk5OTk5MH0.S4gyXWbFod67h4Q5c5FCsxC7AVvhH7TkOyGQkDcC60w",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IiLCJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwiY"
    "XVkIjpbIngiLCJzc2Vicm9rZXIiXSwiZXhwIjoxNzAwMDAwMDMxLjV9.fkiqteqn7uEgWo5_6DqEQMi-IM"
    "ltwcXiJrBtpLzr1Uo",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K0pXVCJ9.eyJzdWIiOiJhbGljZSIsImlzcyI6Imh0dHBzOi8va"
    "XNzdWVyLmV4YW1wbGUiLCJhdWQiOiJzc2Vicm9rZXIiLCJleHAiOjE3MDAwMDM2MDAsIm5iZiI6MTY5OTk"
    "5OTk5MH0.wzW8gYwRzKDYTSqR4EhKVPFA25mZ_8MuGImych32rbk",
};
#define N_KNOWN (sizeof(known) / sizeof(known[0]))

static const jwt_opts opts = {1700000000, 30, "https://issuer.example", "ssebroker", 0};

static jwt_keys *keys;
static char *minted[3]; /* RS256, ES256, EdDSA, signed at start */

static char *b64u(const unsigned char *p, size_t n)
{
    static const char c[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(n / 3 * 4 + 5), *o = out;
    CHECK(out);
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        size_t chars = n - i >= 3 ? 4 : n - i + 1;
        for (size_t k = 0; k < chars; k++)
            *o++ = c[(v >> (18 - 6 * k)) & 63];
    }
    *o = '\0';
    return out;
}

static char *pem_of(EVP_PKEY *pk)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out;
    CHECK(bio && PEM_write_bio_PUBKEY(bio, pk));
    long n = BIO_get_mem_data(bio, &data);
    out = malloc((size_t)n + 1);
    CHECK(out);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(bio);
    return out;
}

/* A token of the claims of known[0], signed with 'pk' for 'alg'. */
static char *mint(const char *alg, EVP_PKEY *pk)
{
    char head[64], *in, *tok, *sseg;
    unsigned char sig[512];
    size_t siglen = sizeof(sig);
    const char *dot = strchr(known[0], '.'), *end = strrchr(known[0], '.');

    snprintf(head, sizeof(head), "{\"alg\":\"%s\"}", alg);
    char *hseg = b64u((const unsigned char *)head, strlen(head));
    CHECK(asprintf(&in, "%s%.*s", hseg, (int)(end - dot), dot) > 0);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    CHECK(ctx && EVP_DigestSignInit(ctx, NULL,
                                    alg[0] == 'E' && alg[1] == 'd' ? NULL : EVP_sha256(),
                                    NULL, pk) == 1);
    CHECK(EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)in, strlen(in)) == 1);
    EVP_MD_CTX_free(ctx);
    if (strcmp(alg, "ES256") == 0) { /* DER to R || S */
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
        CHECK(es);
        CHECK(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32) == 32 &&
              BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32) == 32);
        ECDSA_SIG_free(es);
        siglen = 64;
    }
    sseg = b64u(sig, siglen);
    CHECK(asprintf(&tok, "%s.%s", in, sseg) > 0);
    free(sseg);
    free(in);
    free(hseg);
    return tok;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const algs[] = {"RS256", "ES256", "EdDSA"};
    EVP_PKEY *pk[3] = {EVP_RSA_gen(2048), EVP_EC_gen("P-256"),
                       EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")};

    keys = jwt_keys_new();
    CHECK(keys && jwt_keys_add_secret(keys, "hs", "HS256", (const unsigned char *)secret,
                                      strlen(secret), NULL, 0) == 0);
    for (int i = 0; i < 3; i++) {
        CHECK(pk[i]);
        char *pem = pem_of(pk[i]);
        CHECK(jwt_keys_add_pem(keys, NULL, algs[i], pem, strlen(pem), NULL, 0) == 0);
        free(pem);
        minted[i] = mint(algs[i], pk[i]);
        EVP_PKEY_free(pk[i]);
    }
    /* The target's own promises hold before the fuzzer starts. */
    for (size_t i = 0; i < N_KNOWN + 3; i++) {
        const char *t = i < N_KNOWN ? known[i] : minted[i - N_KNOWN];
        json_t *claims = NULL;
        CHECK(jwt_verify(keys, &opts, t, strlen(t), &claims) == 0 && claims);
        json_decref(claims);
    }
    return 0;
}

/* Was the signing input of 'buf' (all before its last '.') signed here? */
static int signed_here(const char *buf, size_t size)
{
    const char *end = memrchr(buf, '.', size);
    size_t n = end ? (size_t)(end - buf) : 0;
    for (size_t i = 0; end && i < N_KNOWN + 3; i++) {
        const char *t = i < N_KNOWN ? known[i] : minted[i - N_KNOWN];
        if (strlen(t) > n && t[n] == '.' && memcmp(t, buf, n) == 0)
            return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    json_t *claims = (json_t *)1;
    char err[256];

    /* 1. */
    int rc = jwt_verify(keys, &opts, buf, size, &claims);
    CHECK(rc <= 0 && rc >= JWT_EINVAL);
    CHECK(rc == 0 ? json_is_object(claims) && signed_here(buf, size) : claims == NULL);
    CHECK(strcmp(jwt_strerror(rc), "unknown error") != 0);
    json_decref(claims);

    /* 2. */
    jwt_keys *k = jwt_keys_new();
    CHECK(k);
    err[0] = '\0';
    rc = jwt_keys_add_jwks(k, buf, size, err, sizeof(err));
    if (rc < 0) {
        CHECK(jwt_keys_count(k) == 0 && err[0] && strlen(err) < sizeof(err));
        CHECK(rc == JWT_EKEY || rc == JWT_ENOMEM || rc == JWT_EALG);
    } else {
        CHECK(rc > 0 && jwt_keys_count(k) == (size_t)rc);
        for (size_t i = 0; i < N_KNOWN; i++) {
            json_t *c = (json_t *)1;
            int r = jwt_verify(k, &opts, known[i], strlen(known[i]), &c);
            CHECK(r == 0 ? json_is_object(c) : c == NULL);
            json_decref(c);
        }
    }
    jwt_keys_free(k);
    return 0;
}
