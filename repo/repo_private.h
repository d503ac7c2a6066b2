/* repo_private.h - key layout and loading helpers shared by the kv repositories. */
#ifndef REPO_PRIVATE_H
#define REPO_PRIVATE_H

#include <stdio.h>

#include "repo/repo.h"

#define REPO_KEY_MAX 256 /* "x/" + 200-byte channel + "/" + connection id */

/* "t/{chan}" or, with 'conn', "t/{chan}/{conn}". */
static inline const char *repo_key(char buf[REPO_KEY_MAX], const char *table,
                                   const char *chan_name, const char *conn_id)
{
    if (conn_id)
        snprintf(buf, REPO_KEY_MAX, "%s/%s/%s", table, chan_name, conn_id);
    else
        snprintf(buf, REPO_KEY_MAX, "%s/%s", table, chan_name);
    return buf;
}

/* Load entries of the log at 'key' (as kv_log_range: after id 'after', at
 * most 'count', the oldest or the 'newest') into 'q' (which keeps its bound),
 * each message with its position; then call 'cb'. Entries that do not parse
 * are skipped and reported (KV_EV_BAD_RECORD). */
int repo_load_log(kv_store *kv, const char *key, uint64_t after, size_t count, int newest,
                  msgq *q, repo_cb cb, void *arg);

/* A cursor "<id> <pos>" from a stored string; 0 or -1 (then '*c' is zeroed). */
int repo_cursor_parse(const char *val, size_t len, cursor *c);

/* The text of a cursor, "<id> <pos>", into 'buf' (room: 48); its length. */
int repo_cursor_text(const cursor *c, char buf[48]);

/* Load the string at 'key' and hand it to 'parse' for 'cn'; a missing key is
 * not an error (the connection keeps its defaults). Then call 'cb'. */
typedef void (*repo_parse_fn)(conn *cn, const char *val, size_t len);
int repo_load_value(kv_store *kv, const char *key, conn *cn, repo_parse_fn parse,
                    repo_cb cb, void *arg);

/* A countdown for loads that fan out: starts at 1 (held by the starter),
 * each sub-load adds one; the last repo_join_done() calls 'cb' with the first
 * error seen and frees the join. */
typedef struct repo_join {
    int pending;
    int status;
    repo_cb cb;
    void *arg;
} repo_join;

repo_join *repo_join_new(repo_cb cb, void *arg);
/* repo_cb-shaped: pass as the callback of each sub-load, with the join as arg. */
void repo_join_done(int status, void *join);

#endif
