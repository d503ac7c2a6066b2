/* auth.h - who a request is: its credentials (a JWT or an API key) checked
 * against the configured keys and turned into an identity (policy.h), and
 * the policy that says what that identity may do.
 *
 * Credentials come, in this order of precedence, from the Authorization
 * header ("Bearer <JWT or API key>"), the X-API-Key header, the token cookie,
 * and the access_token query parameter; the first present is the one used
 * (a header and a cookie that disagree: the header wins). A value with two
 * dots is a JWT, anything else an API key. A JWT gives authid = its "sub"
 * (a string of 1 to AUTH_ID_MAX bytes, required), authrole = its role claim
 * (optional; naming no role is an invalid token), its "exp", and its own
 * grants from the claim "ssebroker". An API key gives its configured name
 * and role; keys are compared by their SHA-256, in constant time.
 *
 * Ownership: an auth owns its key set, its API keys and its policy. Once
 * built it is only read, so the threads of a process may share it. */
#ifndef AUTH_H
#define AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "src/auth/jwt.h"
#include "src/domain/policy.h"

#define AUTH_ID_MAX 256     /* bytes of an authid */
#define AUTH_APIKEY_MAX 256 /* bytes of an API key */

typedef struct auth auth;

/* What a token is checked against, besides the keys. */
typedef struct auth_jwt_opts {
    int leeway_s;
    const char *issuer;     /* copied; NULL: any */
    const char *audience;   /* copied; NULL: any */
    size_t max_bytes;       /* 0: JWT_MAX_BYTES */
    const char *role_claim; /* copied; NULL: "role" */
} auth_jwt_opts;

/* An auth with no keys; it takes 'pol' (moved: '*pol' is left empty) and
 * 'keys' (may be NULL: no JWT accepted). NULL on OOM (nothing taken then). */
auth *auth_new(policy *pol, jwt_keys *keys, const auth_jwt_opts *o);
/* One more holder (another thread's loop may use 'a' until it lets go with
 * auth_free()); returns 'a'. NULL is fine. */
auth *auth_ref(const auth *a);
/* Let go of 'a': freed when the last holder lets go. NULL is fine. Safe
 * from any thread; 'a' is read-only while shared. */
void auth_free(auth *a);

/* Accept the API key whose SHA-256 is 'sha256' as 'name' with 'role'
 * (both copied). 0, or -1 on OOM. */
int auth_add_apikey(auth *a, const char *name, const char *role,
                    const unsigned char sha256[32]);

/* The policy it checks against (borrowed). */
const policy *auth_policy(const auth *a);

/* The credentials a request carries, each NULL when absent. */
typedef struct auth_creds {
    const char *bearer; /* the Authorization header's value after "Bearer " */
    const char *apikey; /* X-API-Key */
    const char *cookie; /* the token cookie's value */
    const char *query;  /* access_token */
} auth_creds;

enum {
    AUTH_OK = 0,        /* '*id' is who it is */
    AUTH_ANONYMOUS = 1, /* no credentials: '*id' is anonymous, with the
                           anonymous role if there is one */
    AUTH_EINVALID = -1, /* credentials that do not check out: '*why' says */
    AUTH_ENOMEM = -2
};

/* Identify the bearer of 'cr' at 'now_s'. '*id' is cleared first and filled
 * (the caller identity_clear()s it); '*why' is a short static text for an
 * error (fit for an RFC 6750 error_description) or NULL. */
int auth_identify(const auth *a, const auth_creds *cr, int64_t now_s, identity *id,
                  const char **why);

#endif
