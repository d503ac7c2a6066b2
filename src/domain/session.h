/* session.h - a session: one live stream as the archive keeps it (who reads
 * which channel, from where, since and until when). A plain object, no I/O. */
#ifndef SESSION_H
#define SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "src/domain/names.h"

#define SESSION_REMOTE_MAX 64          /* "[v6 address]:port" and its NUL */
#define SESSION_AGENT_MAX 256          /* bytes of a User-Agent kept (longer: cut) */
#define SESSION_CHANNEL "sys.sessions" /* where joins and leaves are published */

typedef struct session {
    char id[CONN_ID_LEN + 1];
    char *authid, *authrole;         /* owned; NULL: anonymous, none */
    int method;                      /* AUTHMETHOD_* (policy.h) */
    char *channel;                   /* owned */
    char conn[CONN_ID_LEN + 1];      /* the connection it is attached to, or "" */
    char node[CONN_ID_LEN + 1];      /* the node serving it */
    char remote[SESSION_REMOTE_MAX]; /* the peer's address, or "" */
    char *agent;                     /* owned; its User-Agent, or NULL */
    int64_t joined_at, left_at;      /* microseconds since the epoch; 0: active */
} session;

/* Release what 's' owns and zero it. NULL is fine. */
void session_clear(session *s);

/* {"id", "authid", "authrole", "authmethod", "channel", "connection",
 * "node", "remote", "user_agent", "joined_at", "left_at"}: authid, authrole,
 * connection, user_agent and left_at are null when unset, remote "" when
 * unknown. A new reference; NULL on OOM. */
json_t *session_to_json(const session *s);

/* The same as compact JSON text; caller frees. NULL on OOM. */
char *session_to_text(const session *s);

/* The same without the members that are null: the archive's record, read
 * back by session_from_text(). Caller frees. NULL on OOM. */
char *session_to_record(const session *s);

/* Fill 's' (cleared first) from session_to_json() or session_to_record() text. 0, -1 on
 * OOM, -2 if the text is no session record. */
int session_from_text(session *s, const char *text, size_t len);

/* Which sessions a listing wants. Strings are borrowed. */
typedef struct session_filter {
    int active;          /* 1: active only, 0: ended only, -1: both */
    const char *channel; /* NULL: any */
    const char *authid;  /* NULL: any */
} session_filter;

bool session_matches(const session *s, const session_filter *f);

/* 1 if 'name' is a channel the broker keeps for itself ("sys." prefix):
 * clients may subscribe to it, never publish to it, create or delete it. */
int channel_reserved(const char *name);

#endif
