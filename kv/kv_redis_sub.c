/* kv_redis_sub.c - the Redis store's subscription: PSUBSCRIBE on a connection of its own.
 *
 * A connection that has sent PSUBSCRIBE can carry nothing else, so notifications
 * come in on a second hiredis connection on the same loop, which reconnects with
 * the main connection's policy (100 ms doubling to 5 s). It sends AUTH (if there
 * is a password) and one PSUBSCRIBE; the subscription is live once Redis
 * confirms it. Pub/sub ignores the database number, so no SELECT: the key prefix
 * is what separates brokers. When a live subscription drops, the next
 * confirmation is reported to the caller as a notification with topic NULL.
 * A message may carry several values (the append script joins those of
 * appends next to each other on one channel, kv_private.h): each is handed to
 * the caller as a notification of its own, in order.
 *
 * No command follows the PSUBSCRIBE: hiredis 0.14 cannot pair the reply of a
 * PING in subscribed mode with its callback, so this connection has no reply
 * to time out. It follows the store's main connection instead, which does
 * (kv_redis.c: the reply timeout and the idle probe): it connects only while
 * the main connection is up (kv_health()), and is dropped whenever that one is
 * (kv_redis_sub_reset()). So a frozen Redis takes the subscription down with
 * the main connection within the reply timeout, and when Redis answers again
 * the subscription comes back after it and says so (topic NULL): the caller's
 * catch-up then reads through a connection that works, and reads what was
 * published while the subscription was down or not yet confirmed. TCP keepalive
 * (about 25 s) still finds a vanished peer on an idle subscription.
 *
 * Lifetime. The caller's callback may free the store, and so this subscription.
 * hiredis then defers freeing the context until the callback returns, and calls
 * this file's callbacks once more (the message callback with no reply, then the
 * disconnect callback); so hiredis holds the subscription's guard
 * (src/base/guard.h) until its disconnect callback, which frees it. A context
 * dropped by kv_redis_sub_reset() from inside one of its callbacks is held the
 * same way.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "kv/kv_private.h"
#include "src/base/guard.h"

struct kv_redis_sub {
    kv_store *kv; /* the store it belongs to: its loop and its reports */
    char *host, *path, *password;
    int port;
    char *pattern;
    size_t plen, strip;
    kv_notify_cb cb;
    void *arg;

    redisAsyncContext *ac;
    struct event *reconnect_ev;
    int backoff_ms;
    int live;          /* Redis confirmed the PSUBSCRIBE on the current connection */
    int lost;          /* a live subscription dropped: tell the caller when it is back */
    int waiting;       /* for the main connection: kv_redis_sub_resume() connects */
    int freeing;       /* kv_redis_sub_free() was called */
    int hiredis_holds; /* ... from inside the callback: hiredis holds the guard */
    guard guard;       /* the caller's callback, and hiredis */
};

static void sub_connect(kv_redis_sub *s);
static void sub_try(kv_redis_sub *s);

static void sub_destroy(kv_redis_sub *s)
{
    if (s->reconnect_ev)
        event_free(s->reconnect_ev);
    free(s->host);
    free(s->path);
    free(s->password);
    free(s->pattern);
    free(s);
}

static void deliver(kv_redis_sub *s, const char *topic, const char *data, size_t len)
{
    guard_enter(&s->guard);
    s->cb(topic, data, len, s->arg);
    /* Freed meanwhile, hiredis still holds it: its disconnect callback frees. */
    guard_leave(&s->guard);
}

/* The frame at '*at' of a message of 'len' bytes (kv_private.h): its value at
 * '*off', '*vlen' bytes; '*at' moves past it. Returns 0, or -1 if the bytes
 * there are no frame (or one longer than the rest of the message). */
static int frame_next(const char *p, size_t len, size_t *at, size_t *off, size_t *vlen)
{
    size_t i = *at, digits = 0;
    unsigned long long v = 0;

    for (; i < len && p[i] >= '0' && p[i] <= '9' && digits <= 10; i++, digits++)
        v = v * 10 + (unsigned long long)(p[i] - '0');
    if (!digits || digits > 10 || (digits > 1 && p[*at] == '0') || i >= len ||
        p[i] != ':' || v > len - i - 1)
        return -1;
    *off = i + 1;
    *vlen = (size_t)v;
    *at = *off + *vlen;
    return 0;
}

/* One message: its values, one notification each, in order. A message that
 * does not split into whole frames delivers none of them. The callback may
 * free or reset the subscription: the values after that are not delivered, as
 * the messages behind this one in hiredis' buffer are not. */
static void deliver_frames(kv_redis_sub *s, redisAsyncContext *ac, const char *topic,
                           char *p, size_t len)
{
    size_t at = 0, off, vlen;

    while (at < len)
        if (frame_next(p, len, &at, &off, &vlen) < 0)
            break;
    if (at != len || !len) {
        kv_report(s->kv, KV_EV_BAD_RECORD,
                  "redis: a notification on '%s' is not in this build's framing (a "
                  "node of another version?): dropped",
                  topic);
        return;
    }
    for (at = 0; at < len && !s->freeing && s->ac == ac;) {
        frame_next(p, len, &at, &off, &vlen);
        /* The callback's data ends with a NUL: the byte after the value (the
         * next frame's, or hiredis' own NUL) is lent for it. */
        char next = p[off + vlen];
        p[off + vlen] = '\0';
        deliver(s, topic, p + off, vlen);
        p[off + vlen] = next;
    }
}

/* Every reply of the subscription: Redis' confirmation, then the messages.
 * Called with no reply when the connection goes away. */
static void on_message(redisAsyncContext *ac, void *reply, void *privdata)
{
    kv_redis_sub *s = privdata;
    redisReply *rep = reply, **e;

    if (rep && !s->freeing && rep->type == REDIS_REPLY_ERROR) {
        /* Refused (an ACL without PSUBSCRIBE, NOAUTH): try again later, as
         * after a lost connection, rather than wait here for good. */
        kv_report(s->kv, KV_EV_ERROR, "redis: the subscription was refused: %s",
                  rep->str);
        redisAsyncDisconnect(ac);
        return;
    }
    if (!rep || s->freeing || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3)
        return;
    e = rep->element;
    if (e[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(e[0]->str, "psubscribe") == 0) {
        s->live = 1;
        s->backoff_ms = 0;
        kv_report(s->kv, KV_EV_SUBSCRIBED, "redis: subscribed to %s", s->pattern);
        if (s->lost) {
            s->lost = 0;
            deliver(s, NULL, NULL, 0);
        }
    } else if (strcmp(e[0]->str, "pmessage") == 0 && rep->elements == 4 &&
               e[2]->type == REDIS_REPLY_STRING && e[3]->type == REDIS_REPLY_STRING &&
               e[2]->len >= s->strip) {
        deliver_frames(s, ac, e[2]->str + s->strip, e[3]->str, e[3]->len);
    }
}

static void on_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
    kv_redis_sub *s = privdata;
    redisReply *rep = reply;

    if (rep && rep->type == REDIS_REPLY_ERROR) {
        kv_report(s->kv, KV_EV_ERROR, "redis: AUTH failed on the subscription: %s",
                  rep->str);
        redisAsyncDisconnect(ac);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    kv_redis_sub *s = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context after this; no disconnect callback follows. */
        s->ac = NULL;
        kv_report(s->kv, KV_EV_RETRY, "redis: subscription connect failed: %s",
                  ac->errstr);
        if (!s->freeing)
            kv_redis_backoff(&s->backoff_ms, s->reconnect_ev);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    kv_redis_sub *s = ac->data;

    if (s->hiredis_holds) {
        /* hiredis lets go of a context freed or reset from inside a callback. */
        s->hiredis_holds = 0;
        if (guard_leave(&s->guard)) {
            sub_destroy(s);
            return;
        }
    }
    if (s->freeing || ac != s->ac)
        return; /* freed, or dropped by kv_redis_sub_reset() */
    s->ac = NULL;
    if (s->live) {
        kv_report(s->kv, KV_EV_SUB_LOST, "redis: subscription lost%s%s; resubscribing",
                  status == REDIS_OK ? "" : ": ", status == REDIS_OK ? "" : ac->errstr);
        s->lost = 1;
    }
    s->live = 0;
    kv_redis_backoff(&s->backoff_ms, s->reconnect_ev);
}

static void reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
    sub_try(arg);
}

/* Probe an idle connection after 10 s, then every 5 s, and give up after 3
 * unanswered probes. Best effort: a failure leaves the defaults. */
static void keepalive(int fd)
{
    int on = 1, idle = 10, intvl = 5, cnt = 3;

    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) == 0 &&
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) == 0 &&
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) == 0)
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static void sub_connect(kv_redis_sub *s)
{
    kv_redis_addr addr = {s->host, s->port, s->path, s->password};
    redisAsyncContext *ac = kv_redis_dial(s->kv, &addr, s);

    if (!ac) {
        kv_redis_backoff(&s->backoff_ms, s->reconnect_ev);
        return;
    }
    s->ac = ac;
    s->waiting = 0;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (!s->path)
        keepalive(ac->c.fd);
    if (s->password)
        redisAsyncCommand(ac, on_auth, s, "AUTH %s", s->password);
    redisAsyncCommand(ac, on_message, s, "PSUBSCRIBE %b", s->pattern, s->plen);
}

/* Connect if the store's main connection is up; otherwise wait for it to say
 * so (kv_redis_sub_resume()). */
static void sub_try(kv_redis_sub *s)
{
    if (kv_health(s->kv) != 0)
        s->waiting = 1;
    else
        sub_connect(s);
}

kv_redis_sub *kv_redis_sub_new(kv_store *kv, const kv_redis_addr *addr,
                               const char *pattern, size_t strip, kv_notify_cb cb,
                               void *arg)
{
    kv_redis_sub *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->kv = kv;
    s->port = addr->port;
    s->plen = strlen(pattern);
    s->strip = strip;
    s->cb = cb;
    s->arg = arg;
    if ((addr->host && !(s->host = strdup(addr->host))) ||
        (addr->path && !(s->path = strdup(addr->path))) ||
        (addr->password && !(s->password = strdup(addr->password))) ||
        !(s->pattern = strdup(pattern)) ||
        !(s->reconnect_ev = evtimer_new(kv->base, reconnect_cb, s)))
        goto err;
    sub_try(s);
    return s;
err:
    sub_destroy(s);
    return NULL;
}

int kv_redis_sub_live(const kv_redis_sub *s)
{
    return s && s->live;
}

void kv_redis_sub_reset(kv_redis_sub *s)
{
    redisAsyncContext *ac;

    if (!s || s->freeing)
        return;
    evtimer_del(s->reconnect_ev);
    s->waiting = 1;
    if (!(ac = s->ac))
        return;
    s->ac = NULL;
    if (s->live) {
        kv_report(s->kv, KV_EV_SUB_LOST,
                  "redis: subscription dropped with the main connection; resubscribing "
                  "once it is back");
        s->lost = 1;
    }
    s->live = 0;
    /* Freed, not disconnected: a frozen Redis never confirms a PSUBSCRIBE
     * still waiting, and hiredis would wait for it. */
    if (ac->c.flags & REDIS_IN_CALLBACK) {
        s->hiredis_holds = 1; /* until on_disconnect, once the callback returns */
        guard_enter(&s->guard);
    }
    redisAsyncFree(ac);
}

void kv_redis_sub_resume(kv_redis_sub *s)
{
    if (s && !s->freeing && s->waiting)
        sub_try(s);
}

void kv_redis_sub_free(kv_redis_sub *s)
{
    if (!s)
        return;
    s->freeing = 1;
    evtimer_del(s->reconnect_ev);
    if (s->ac && (s->ac->c.flags & REDIS_IN_CALLBACK)) {
        /* hiredis frees the context once our callback returns, then calls
         * on_disconnect, which lets go of 's'. */
        s->hiredis_holds = 1;
        guard_enter(&s->guard);
        redisAsyncFree(s->ac);
    } else if (s->ac) {
        redisAsyncFree(s->ac); /* runs on_message(NULL) and on_disconnect now */
        s->ac = NULL;
    }
    if (guard_free(&s->guard))
        sub_destroy(s);
}
