/* jwt_private.h - what jwt.c (verifying) and jwt_keys.c (loading) share. */
#ifndef JWT_PRIVATE_H
#define JWT_PRIVATE_H

#include <stddef.h>
#include <openssl/evp.h>

/* How an algorithm uses its key. */
enum jwt_kind { JWT_KIND_HMAC, JWT_KIND_RSA, JWT_KIND_PSS, JWT_KIND_EC, JWT_KIND_EDDSA };

/* One supported algorithm (RFC 7518, RFC 8037). */
typedef struct jwt_alg {
    const char *name; /* the "alg" value */
    enum jwt_kind kind;
    const EVP_MD *(*md)(void); /* NULL for EdDSA */
    size_t size;               /* HMAC: the shortest secret; EC: bytes of one coordinate
                                  (the signature is two); RSA: the fewest bits */
    const char *curve;         /* EC: OpenSSL's group name; EdDSA: the JWK crv */
    const char *crv;           /* EC: the JWK crv */
} jwt_alg;

/* The algorithm named 'name' (case-sensitive, as RFC 7515 says), or NULL. */
const jwt_alg *jwt_alg_find(const char *name);

/* One key. Either 'secret' (HMAC) or 'pkey' (the others). */
struct jwt_key {
    char *kid; /* NULL: none */
    const jwt_alg *alg;
    unsigned char *secret;
    size_t secret_len;
    EVP_PKEY *pkey;
};

struct jwt_keys {
    struct jwt_key *v;
    size_t n, cap;
};

/* Decode the strict base64url text 's' ('len' bytes: A-Z a-z 0-9 - _ only, no
 * padding, len % 4 != 1, unused bits of the last character zero) into a new
 * buffer '*out' of '*outlen' bytes, NUL-terminated (not counted; the caller
 * frees it). Returns 0, JWT_EMALFORMED or JWT_ENOMEM (and '*out' NULL). */
int jwt_b64url_decode(const char *s, size_t len, unsigned char **out, size_t *outlen);

/* 1 if 'c' is in the base64url alphabet. */
int jwt_b64url_char(unsigned char c);

#endif
