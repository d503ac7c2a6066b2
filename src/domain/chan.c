/* chan.c - channels and connections as plain objects. */
#include "src/domain/chan.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What every channel's note of log ids takes (see chan_log_bytes). */
static size_t log_bytes;

chan *chan_new(const char *name, const chan_opts *opts)
{
    chan *ch = calloc(1, sizeof(*ch));
    if (!ch || !(ch->name = strdup(name))) {
        free(ch);
        return NULL;
    }
    ch->opts = *opts;
    ch->refs = 1;
    msgq_init(&ch->history, (size_t)opts->history);
    TAILQ_INIT(&ch->conns);
    TAILQ_INIT(&ch->attached);
    ch->heap_at = SIZE_MAX;
    TAILQ_INIT(&ch->streams);
    return ch;
}

chan *chan_ref(chan *ch)
{
    ch->refs++;
    return ch;
}

void chan_unref(chan *ch)
{
    conn *cn;
    if (!ch || --ch->refs > 0)
        return;
    while ((cn = TAILQ_FIRST(&ch->conns)))
        conn_free(cn);
    msgq_free(&ch->history);
    log_bytes -= ch->logids.cap * sizeof(uint64_t);
    free(ch->logids.v);
    free(ch->name);
    free(ch);
}

size_t chan_log_bound(const chan *ch)
{
    size_t h = (size_t)ch->opts.history, q = (size_t)ch->opts.queue_limit;
    return h > q ? h : q;
}

size_t chan_log_kept(const chan *ch)
{
    return ch->nconns ? chan_log_bound(ch) : (size_t)ch->opts.history;
}

uint64_t chan_log_oldest(const chan *ch)
{
    return ch->logids.len ? ch->logids.v[ch->logids.head] : 0;
}

uint64_t chan_log_shift(chan *ch)
{
    seqring *r = &ch->logids;
    uint64_t seq;
    if (!r->len)
        return 0;
    seq = r->v[r->head];
    r->head = (r->head + 1) % r->cap;
    r->len--;
    return seq;
}

int chan_log_note(chan *ch, uint64_t seq)
{
    seqring *r = &ch->logids;
    size_t bound = chan_log_kept(ch);
    while (r->len && r->len >= bound)
        chan_log_shift(ch); /* the store trims the oldest beyond it too */
    if (!bound)
        return 0; /* the store keeps none of it */
    if (r->len == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 8;
        uint64_t *v;
        if (cap > bound)
            cap = bound;
        if (!(v = malloc(cap * sizeof(*v))))
            return -1;
        for (size_t i = 0; i < r->len; i++)
            v[i] = r->v[(r->head + i) % r->cap];
        free(r->v);
        log_bytes += (cap - r->cap) * sizeof(*v);
        *r = (seqring){v, cap, 0, r->len};
    }
    r->v[(r->head + r->len++) % r->cap] = seq;
    return 0;
}

size_t chan_log_bytes(void)
{
    return log_bytes;
}

void chan_set_opts(chan *ch, const chan_opts *opts)
{
    conn *cn;
    ch->opts = *opts;
    msgq_set_limit(&ch->history, (size_t)opts->history);
    while (ch->logids.len > chan_log_kept(ch))
        chan_log_shift(ch);
    TAILQ_FOREACH (cn, &ch->conns, link)
        msgq_set_limit(&cn->pending, (size_t)opts->queue_limit);
}

conn *conn_new(chan *ch, const char *id)
{
    conn *cn = calloc(1, sizeof(*cn));
    if (!cn)
        return NULL;
    if (id)
        snprintf(cn->id, sizeof(cn->id), "%s", id);
    else
        conn_id_generate(cn->id);
    cn->ch = ch;
    cn->lis.running = true;
    msgq_init(&cn->pending, (size_t)ch->opts.queue_limit);
    TAILQ_INSERT_TAIL(&ch->conns, cn, link);
    ch->nconns++;
    return cn;
}

conn *chan_conn(const chan *ch, const char *id)
{
    conn *cn;
    TAILQ_FOREACH (cn, &ch->conns, link)
        if (strcmp(cn->id, id) == 0)
            return cn;
    return NULL;
}

int conn_set_owner(conn *cn, const char *owner, const char *role)
{
    char *o = NULL, *r = NULL;
    if ((owner && !(o = strdup(owner))) || (role && !(r = strdup(role)))) {
        free(o);
        return -1;
    }
    free(cn->owner);
    free(cn->owner_role);
    cn->owner = o;
    cn->owner_role = r;
    return 0;
}

void conn_free(conn *cn)
{
    if (!cn)
        return;
    TAILQ_REMOVE(&cn->ch->conns, cn, link);
    cn->ch->nconns--;
    msgq_free(&cn->pending);
    free(cn->owner);
    free(cn->owner_role);
    free(cn);
}

json_t *chan_to_json(const chan *ch)
{
    char last_id[21];
    snprintf(last_id, sizeof(last_id), "%llu", (unsigned long long)ch->last_seq);
    return json_pack("{s:s, s:o, s:I, s:I, s:s?, s:I, s:I}", "name", ch->name, "options",
                     chan_opts_to_json(&ch->opts), "connections", (json_int_t)ch->nconns,
                     "subscribers", (json_int_t)(ch->nstreams + ch->nattached), "last_id",
                     ch->last_seq ? last_id : NULL, "messages",
                     (json_int_t)ch->history.len, "evicted", (json_int_t)ch->evicted);
}

json_t *conn_to_json(const conn *cn, const conn_info *ci)
{
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:b, s:I, s:I}", "id", cn->id, "channel", cn->ch->name,
        "listener", ci->running ? "running" : "stopped", "attached", ci->attached,
        "queue_length", (json_int_t)ci->queue_length, "dropped", (json_int_t)ci->dropped);
    if (o && cn->owner)
        json_object_set_new(o, "owner", json_string(cn->owner));
    if (o && cn->owner_role)
        json_object_set_new(o, "owner_role", json_string(cn->owner_role));
    return o;
}
