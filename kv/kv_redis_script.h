/* kv_redis_script.h - the Redis store's Lua script and the RESP of the calls
 * that append through it; private to kv_redis.c.
 *
 * kv_redis.c batches and sends; this file knows what the script does and how
 * its arguments are laid out (kv_redis_script.c says both). */
#ifndef KV_REDIS_SCRIPT_H
#define KV_REDIS_SCRIPT_H

#include <stddef.h>

#include "kv/kv.h"

#define KV_REDIS_SHA_LEN 40
#define KV_REDIS_GROUP_MAX 100 /* appends joined into one script call, at most */

/* The script's text, for SCRIPT LOAD. */
extern const char kv_redis_script[];

/* One append's arguments to the script: 'len' bytes of RESP bulk strings at
 * 'p', its 'nkeys' keys first (the first 'split' bytes), then its record. */
typedef struct kv_redis_rec {
    char *p;
    size_t len, split;
    int nkeys;
} kv_redis_rec;

/* Write the keys and the record of kv_append(a) on a store whose keys start
 * with 'prefix' into '*rec', its buffer new (rec->p: the caller frees it).
 * Returns 0, KV_EINVAL for arguments kv_append() refuses (kv.h), or
 * KV_ENOMEM. */
int kv_redis_script_append(const char *prefix, const kv_append_args *a,
                           kv_redis_rec *rec);

/* One EVALSHA of the script loaded as 'sha' for the 'm' appends recs[0..m)
 * (1 <= m <= KV_REDIS_GROUP_MAX), in order: their keys, then their records.
 * Returns the command as RESP in a new buffer (the caller frees it), '*len'
 * bytes, or NULL on OOM. The records are borrowed. */
char *kv_redis_script_call(const char *sha, const kv_redis_rec *recs, int m, size_t *len);

#endif
