/* jwt.h - a small, strict verifier of signed JSON Web Tokens (compact JWS).
 *
 * Keys are configured, each pinned to one algorithm; the token's "alg" only
 * selects among them and never chooses how a key is used (an RS256 key never
 * verifies an HS256 token, whatever the token says). Algorithms: HS256,
 * HS384, HS512 (a secret); RS256, RS384, RS512, PS256, PS384, PS512 (RSA,
 * >= 2048 bits); ES256, ES384, ES512 (P-256, P-384, P-521); EdDSA (Ed25519).
 * "none" never.
 *
 * What jwt_verify() checks, in this order (the first check that fails gives
 * the code):
 *   1. the length, before anything else is read (JWT_ETOOBIG);
 *   2. three non-empty segments of the base64url alphabet (A-Z a-z 0-9 - _),
 *      two dots: no padding, no blanks, nothing else (JWT_EMALFORMED, as for
 *      everything up to 4);
 *   3. the header and signature segments decode strictly: length % 4 != 1 and
 *      the unused bits of the last character zero (one text per byte string);
 *   4. the header: a JSON object without duplicate members, a string "alg", a
 *      string "kid" if any, no "crit" (extensions we would have to understand:
 *      we know none), and a "typ" if any of "JWT", "at+jwt" (RFC 9068 access
 *      tokens, what an OAuth server issues), with or without "application/",
 *      any case (RFC 7515 4.1.9); other typs name other kinds of token
 *      (logout, DPoP proofs, ...) that must not pass for access tokens.
 *      Keys named by "jku", "jwk", "x5u", "x5c" are never used;
 *   5. the key: "none" (any case) and unknown algs are refused (JWT_EALG); with
 *      a "kid", the key with that kid (JWT_EKID if there is none) and its alg
 *      must be the header's (JWT_EALG); without, every key pinned to the
 *      header's alg is tried (JWT_EALG if there is none);
 *   6. the signature (JWT_ESIG): HMACs compared in constant time, ES* as raw
 *      R || S of the curve's size, PS* with a salt as long as the hash;
 *   7. only then the payload: its segment decodes strictly, to a JSON object
 *      without duplicate members, whose "exp", "nbf", "iat" if any are numbers,
 *      "iss" if any a string, "aud" if any a string or an array of strings
 *      (JWT_EMALFORMED);
 *   8. exp (JWT_EEXPIRED), nbf (JWT_ENOTYET), iss (JWT_EISS), aud (JWT_EAUD)
 *      against jwt_opts.
 *
 * Ownership: a jwt_keys copies what it is given (the caller keeps its
 * buffers) and owns its keys. Once loaded it is only read by jwt_verify(), so
 * one set may serve several threads at once; adding keys while another
 * thread verifies is not safe. Libcrypto's error queue is left as it was
 * found. Nothing here logs: failures are codes and messages. */
#ifndef JWT_H
#define JWT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* A set of verification keys, each pinned to one algorithm. */
typedef struct jwt_keys jwt_keys;

/* Errors: a negative code, one meaning each (jwt_strerror). These are the
 * module's own range: do not mix them with another module's codes. */
enum {
    JWT_EMALFORMED = -1, /* not a well-formed token (structure, base64url, JSON,
                            header members, claim types, "crit") */
    JWT_ETOOBIG = -2,    /* longer than jwt_opts.max_bytes */
    JWT_EALG = -3,       /* an algorithm not accepted: "none", unknown, or no key
                            pinned to it (loading: unknown or unfit for the call) */
    JWT_EKID = -4,       /* the header's "kid" names no key */
    JWT_ESIG = -5,       /* the signature does not verify */
    JWT_EEXPIRED = -6,   /* "exp" has passed */
    JWT_ENOTYET = -7,    /* "nbf" has not come */
    JWT_EISS = -8,       /* "iss" missing or not the configured issuer */
    JWT_EAUD = -9,       /* "aud" missing or without the configured audience */
    JWT_ENOMEM = -10,    /* out of memory */
    JWT_EKEY = -11,      /* loading: the key is refused (unreadable, too short or
                            small, the wrong type for its alg, a duplicate kid) */
    JWT_EINVAL = -12     /* a NULL argument where one is needed */
};

/* A short static text for a JWT_E* code, plain ASCII without quotes or
 * backslashes (fit for an RFC 6750 error_description). Never NULL. */
const char *jwt_strerror(int code);

/* An empty key set (free with jwt_keys_free), or NULL on OOM. */
jwt_keys *jwt_keys_new(void);
/* Free 'k' and every key in it. NULL is fine. */
void jwt_keys_free(jwt_keys *k);

/* The loaders copy their input. 'kid' may be NULL (a key without a kid); a
 * kid already in the set is refused (JWT_EKEY), as is an 'alg' unknown or
 * unfit for the call (JWT_EALG). On error nothing is added, the return is
 * negative and, if 'err' is not NULL, a one-line message is written there
 * (at most 'errlen' bytes with the NUL).
 *
 * jwt_keys_add_secret: an HMAC secret for HS256, HS384 or HS512, at least as
 * long as the hash (32, 48, 64 bytes). Returns 0. */
int jwt_keys_add_secret(jwt_keys *k, const char *kid, const char *alg,
                        const unsigned char *secret, size_t len, char *err,
                        size_t errlen);
/* jwt_keys_add_pem: the first "PUBLIC KEY" block of 'pem' ('len' bytes, no
 * NUL needed; for RSA an "RSA PUBLIC KEY" block too): RSA of at least 2048
 * bits for RS* and PS*, P-256 for ES256, P-384 for ES384, P-521 for ES512,
 * Ed25519 for EdDSA, that passes EVP_PKEY_public_check(). A private key or a
 * certificate is refused. Returns 0. */
int jwt_keys_add_pem(jwt_keys *k, const char *kid, const char *alg, const char *pem,
                     size_t len, char *err, size_t errlen);
/* jwt_keys_add_jwks: every key of a JWK Set (RFC 7517, {"keys": [...]}; 'len'
 * bytes of JSON). kty "oct" (k), "RSA" (n, e), "EC" (crv P-256, P-384, P-521;
 * x, y), "OKP" (crv Ed25519; x), with the same bounds as above. Each key's
 * "alg" must fit its kty and crv; without "alg", EC and OKP keys take the
 * one their curve implies, oct and RSA keys are refused (ambiguous). Skipped,
 * not refused: a "use" other than "sig", "key_ops" without "verify", a kty,
 * crv or alg this module does not know (encryption keys, other curves). All or
 * nothing: one bad key, or no usable key at all, fails the whole set (JWT_EKEY).
 * Returns the number of keys added (> 0). */
int jwt_keys_add_jwks(jwt_keys *k, const char *json, size_t len, char *err,
                      size_t errlen);
/* How many keys 'k' holds (0 for NULL). */
size_t jwt_keys_count(const jwt_keys *k);

/* What a token's claims are checked against. */
typedef struct jwt_opts {
    int64_t now_s;        /* the time to check exp/nbf against (Unix seconds) */
    int leeway_s;         /* allowed clock skew, seconds (negative: 0) */
    const char *issuer;   /* if not NULL, "iss" must equal it */
    const char *audience; /* if not NULL, "aud" (a string or an array of
                             strings) must be or contain it */
    size_t max_bytes;     /* longest token accepted (0: JWT_MAX_BYTES) */
} jwt_opts;

#define JWT_MAX_BYTES 8192

/* Verify the compact JWS 'token' ('len' bytes, no NUL needed) against the
 * keys of 'k' and its claims against 'o', in the order given at the top of
 * this file. "exp" has passed when exp <= now - leeway; "nbf" has not come
 * when nbf > now + leeway. Returns 0 and sets '*claims' to a new reference to
 * the payload object (the caller json_decref()s it), or a JWT_E* code with
 * '*claims' NULL. */
int jwt_verify(const jwt_keys *k, const jwt_opts *o, const char *token, size_t len,
               json_t **claims);

#endif
