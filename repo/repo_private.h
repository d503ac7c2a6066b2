/* repo_private.h - key layout and list loading shared by the kv repositories. */
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

/* Load the message list at 'key' into 'q' (which keeps its bound), then call
 * 'cb'. Items that do not parse are skipped and logged. */
int repo_load_list(kv_store *kv, const char *key, msgq *q, repo_cb cb, void *arg);

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
