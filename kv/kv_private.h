/* kv_private.h - what the stores' files share; not for callers of kv.h. */
#ifndef KV_PRIVATE_H
#define KV_PRIVATE_H

#include <stddef.h>
#include <string.h>

#include "kv/kv.h"

/* A table's name, as kv_scan() takes it: not empty, ending in '/'. */
static inline int kv_valid_table(const char *t)
{
    size_t n = t ? strlen(t) : 0;
    return n > 0 && t[n - 1] == '/';
}

struct event;
struct redisAsyncContext;

#define KV_REDIS_BACKOFF_MIN_MS 100
#define KV_REDIS_BACKOFF_MAX_MS 5000

/* Notifications on Redis. Every PUBLISH of the store (kv_notify()'s, and the
 * append script's) carries one or more values, each framed as its length in
 * decimal (1 to 10 digits, no sign, no leading zero), ':', then its bytes:
 * "5:hello3:abc". The append script joins the values of the appends that
 * follow each other on one channel in a script call into one PUBLISH, at most
 * KV_REDIS_PUB_MAX bytes of frames (a value longer than that goes alone); the
 * subscription (kv_redis_sub.c) splits them back, in order, one notification
 * each. Length-prefixed, so a value may hold any bytes; only appends next to
 * each other are joined, so every subscriber still sees the notifications of
 * all channels in the order the appends took their ids. A message not in this
 * form (a node of an older build sharing the Redis) is reported as
 * KV_EV_BAD_RECORD and dropped: the nodes of a cluster run the same build. */
#define KV_REDIS_PUB_MAX 65536
#define KV_REDIS_PUB_MAX_STR "65536"     /* the same, for the script's text */
#define KV_REDIS_FRAME_MAX 9999999999ULL /* the longest value a frame holds */

/* Where Redis is: a TCP host and port, or a unix socket path when 'path' is not
 * NULL; 'password' is sent with AUTH when not NULL. */
typedef struct kv_redis_addr {
    const char *host;
    int port;
    const char *path;
    const char *password;
} kv_redis_addr;

/* Start connecting to 'addr' on the loop of 'kv', with ac->data = 'data'.
 * Returns the context, or NULL (reported as KV_EV_RETRY) if it could not even
 * be started. */
struct redisAsyncContext *kv_redis_dial(kv_store *kv, const kv_redis_addr *addr,
                                        void *data);

/* Arm 'ev' for the next connection attempt: 100 ms after the first failure,
 * doubling up to 5 s. '*ms' holds the last delay; set it to 0 after a success. */
void kv_redis_backoff(int *ms, struct event *ev);

/* kv_redis_sub.c: a subscription on its own connection. */
typedef struct kv_redis_sub kv_redis_sub;

/* Subscribe (PSUBSCRIBE 'pattern', a Redis glob) on a new connection to 'addr',
 * reconnecting whenever it drops, on the loop of 'kv', which it reports
 * through. 'cb' gets each message with the first 'strip' bytes of its channel
 * removed, and topic == NULL once the subscription is live again after a loss.
 * Copies what it keeps. Returns NULL on OOM. */
kv_redis_sub *kv_redis_sub_new(kv_store *kv, const kv_redis_addr *addr,
                               const char *pattern, size_t strip, kv_notify_cb cb,
                               void *arg);

/* 1 while the subscription is confirmed by Redis and its connection is up. */
int kv_redis_sub_live(const kv_redis_sub *s);

/* The store's main connection went down: drop the subscription's connection
 * too (as lost, if it was live) and connect again only once
 * kv_redis_sub_resume() says the main one is back. It connects by itself only
 * while kv_health() of its store says it serves. kv_redis_sub_reset(NULL) does
 * nothing. */
void kv_redis_sub_reset(kv_redis_sub *s);

/* The store's main connection is up: connect now if waiting for it. */
void kv_redis_sub_resume(kv_redis_sub *s);

/* Close the connection; 'cb' is never called again. Safe from inside 'cb'.
 * kv_redis_sub_free(NULL) does nothing. */
void kv_redis_sub_free(kv_redis_sub *s);

#endif
