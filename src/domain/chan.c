/* chan.c - channels and connections as plain objects. */
#include "src/domain/chan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    free(ch->name);
    free(ch);
}

void chan_set_opts(chan *ch, const chan_opts *opts)
{
    conn *cn;
    ch->opts = *opts;
    msgq_set_limit(&ch->history, (size_t)opts->history);
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

void conn_free(conn *cn)
{
    if (!cn)
        return;
    TAILQ_REMOVE(&cn->ch->conns, cn, link);
    cn->ch->nconns--;
    msgq_free(&cn->pending);
    free(cn);
}

json_t *chan_to_json(const chan *ch)
{
    char last_id[21];
    snprintf(last_id, sizeof(last_id), "%llu", (unsigned long long)ch->last_seq);
    return json_pack("{s:s, s:o, s:I, s:I, s:s?, s:I}", "name", ch->name, "options",
                     chan_opts_to_json(&ch->opts), "connections", (json_int_t)ch->nconns,
                     "subscribers", (json_int_t)(ch->nstreams + ch->nattached), "last_id",
                     ch->last_seq ? last_id : NULL, "messages",
                     (json_int_t)ch->history.len);
}

json_t *conn_to_json(const conn *cn, const conn_info *ci)
{
    return json_pack("{s:s, s:s, s:s, s:b, s:I, s:I}", "id", cn->id, "channel",
                     cn->ch->name, "listener", ci->running ? "running" : "stopped",
                     "attached", ci->attached, "queue_length",
                     (json_int_t)ci->queue_length, "dropped", (json_int_t)ci->dropped);
}
