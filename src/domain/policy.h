/* policy.h - who may do what: the identity a request carries, and roles that
 * grant actions on channel patterns (pattern.h).
 *
 * A request is anonymous or carries an identity (a verified token or API
 * key): its authid, its role, and grants of its own from its token. An
 * action on a channel is allowed when a grant of the identity's role, or of
 * its own, allows that action on a pattern the channel matches ('{sub}' in a
 * pattern standing for the authid). Actions on the broker itself (listing
 * channels, /nodes, /status, /sessions) need 'manage' on the pattern "*". */
#ifndef POLICY_H
#define POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

enum {
    ACT_SUBSCRIBE = 1, /* live streams, durable connections */
    ACT_PUBLISH = 2,
    ACT_HISTORY = 4, /* replay and history reads (with subscribe) */
    ACT_MANAGE = 8,  /* channels and connections administration */
    ACT_ALL = 15
};

#define POLICY_GRANTS_MAX 1000 /* grants of one role, or of one token */
#define POLICY_ROLES_MAX 1000
#define POLICY_NAME_MAX 64 /* a role's name: [A-Za-z0-9_.:-] */

/* The name of one action ("subscribe", ...), and back (0: none). */
const char *policy_action_name(unsigned action);
unsigned policy_action_parse(const char *name);

typedef struct grant {
    char *pattern;  /* owned */
    unsigned allow; /* ACT_* bits */
} grant;

typedef struct grant_list {
    grant *v;
    size_t n;
} grant_list;

void grant_list_free(grant_list *g);
/* A role's grants from [{"match": PATTERN, "allow": [ACTION, ...]}, ...].
 * 0, or -1 with the reason in 'err' (nothing allocated then). */
int grant_list_from_role(const json_t *arr, grant_list *out, char *err, size_t errlen);
/* A token's own grants from its claim {"subscribe": [PATTERN, ...],
 * "publish": [...], "history": [...]} (each key optional, no other). */
int grant_list_from_claim(const json_t *obj, grant_list *out, char *err, size_t errlen);

enum { AUTHMETHOD_ANONYMOUS, AUTHMETHOD_JWT, AUTHMETHOD_APIKEY };
const char *policy_method_name(int method);

/* Who makes a request. Owns its strings and grants. */
typedef struct identity {
    char *authid;     /* JWT "sub" or the API key's name; NULL: anonymous */
    char *authrole;   /* its role (NULL: none) */
    int method;       /* AUTHMETHOD_* */
    int64_t exp_s;    /* when its token stops being accepted (its "exp" and
                         the leeway), unix seconds; 0: never */
    grant_list extra; /* the token's own grants */
} identity;

void identity_clear(identity *id);

typedef struct policy_role {
    char *name;
    grant_list grants;
    bool disclose_publisher; /* history shows the publisher's authid */
} policy_role;

/* Every role, and which one anonymous requests get. Owns everything. */
typedef struct policy {
    policy_role *roles;
    size_t nroles;
    char *anonymous_role; /* NULL: anonymous requests are refused */
} policy;

/* Add the roles of {"name": [grant, ...] or {"permissions": [grant, ...],
 * "disclose_publisher": bool}, ...}. 0, or -1 with the reason in 'err'
 * ("role 'x': ...") and the policy unchanged. */
int policy_add_roles(policy *p, const json_t *roles, char *err, size_t errlen);
void policy_free(policy *p);
const policy_role *policy_role_find(const policy *p, const char *name);

/* 1 if 'id' may do every action of 'actions' on the channel 'name'; with
 * 'name' NULL, on the broker itself (a grant on "*"). */
int policy_allows(const policy *p, const identity *id, unsigned actions,
                  const char *name);

#endif
