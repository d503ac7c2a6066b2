/* msgq.c - bounded ring of message references. */
#include "src/domain/msgq.h"

#include <stdlib.h>

void msgq_init(msgq *q, size_t limit)
{
    q->v = NULL;
    q->cap = q->head = q->len = 0;
    q->limit = limit;
    q->dropped = 0;
    q->gone = 0;
    q->bytes = 0;
    q->last_ts = q->last_src = 0;
    q->ts_disorder = q->src_disorder = q->src_seen = 0;
    q->nosrc = 0;
}

void msgq_free(msgq *q)
{
    msg *m;
    while ((m = msgq_shift(q)))
        msg_unref(m);
    free(q->v);
    q->v = NULL;
    q->cap = 0;
}

msg *msgq_at(const msgq *q, size_t i)
{
    return i < q->len ? q->v[(q->head + i) % q->cap] : NULL;
}

msg *msgq_shift(msgq *q)
{
    if (!q->len)
        return NULL;
    msg *m = q->v[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    q->bytes -= msg_payload_bytes(m);
    q->nosrc -= m->src_ts_us == MSG_NO_SOURCE_TS;
    if (m->seq > q->gone)
        q->gone = m->seq;
    return m;
}

static int msgq_grow(msgq *q)
{
    size_t ncap = q->cap ? q->cap * 2 : 8;
    if (ncap > q->limit)
        ncap = q->limit;
    msg **nv = malloc(ncap * sizeof(*nv));
    if (!nv)
        return -1;
    for (size_t i = 0; i < q->len; i++)
        nv[i] = q->v[(q->head + i) % q->cap];
    free(q->v);
    q->v = nv;
    q->cap = ncap;
    q->head = 0;
    return 0;
}

int msgq_push(msgq *q, msg *m)
{
    int dropped = 0;
    if (q->limit == 0) {
        if (m->seq > q->gone)
            q->gone = m->seq; /* kept nowhere: gone at once */
        return 0;
    }
    if (q->len == q->cap && q->cap < q->limit && msgq_grow(q) < 0)
        return -1;
    if (q->len == q->limit) {
        msg_unref(msgq_shift(q));
        q->dropped++;
        dropped = 1;
    }
    if (!q->len)
        q->ts_disorder = q->src_disorder = q->src_seen = 0;
    q->ts_disorder |= q->len && m->ts_us < q->last_ts;
    q->last_ts = m->ts_us;
    if (m->src_ts_us == MSG_NO_SOURCE_TS) {
        q->nosrc++;
    } else {
        q->src_disorder |= q->src_seen && m->src_ts_us < q->last_src;
        q->last_src = m->src_ts_us;
        q->src_seen = 1;
    }
    q->v[(q->head + q->len) % q->cap] = msg_ref(m);
    q->len++;
    q->bytes += msg_payload_bytes(m);
    return dropped;
}

void msgq_set_limit(msgq *q, size_t limit)
{
    while (q->len > limit)
        msg_unref(msgq_shift(q));
    if (q->cap > limit) {
        /* Compact so the ring never exceeds the new bound. */
        msg **nv = limit ? malloc(limit * sizeof(*nv)) : NULL;
        if (limit && !nv) {
            q->limit = limit; /* keep the old storage; the bound still holds */
            return;
        }
        for (size_t i = 0; i < q->len; i++)
            nv[i] = q->v[(q->head + i) % q->cap];
        free(q->v);
        q->v = nv;
        q->cap = limit;
        q->head = 0;
    }
    q->limit = limit;
}

size_t msgq_after(const msgq *q, uint64_t seq)
{
    /* Messages are in ascending seq: binary search. */
    size_t lo = 0, hi = q->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (msgq_at(q, mid)->seq <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

long msgq_find(const msgq *q, uint64_t seq)
{
    size_t i = msgq_after(q, seq);
    return (i > 0 && msgq_at(q, i - 1)->seq == seq) ? (long)(i - 1) : -1;
}
