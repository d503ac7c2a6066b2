/* broker_topic.c - topic streams: one stream listening to many channels, by
 * exact name and by pattern (GET /events?channel=...).
 *
 * Exact names are found with one lookup per delivery: the broker keeps a map
 * from each name to the topic streams listening to it, whether the channel
 * exists yet or not (so a channel created later is matched). Patterns are
 * kept in one segment tree (src/domain/segtree.h) whose values are the topics:
 * a delivery walks the channel name's segments down the tree and meets only
 * the patterns that match, whatever the number of pattern streams (bounded by
 * max_pattern_streams, and the tree by max_pattern_bytes). The streams it
 * finds are collected first, each once, then written: a stream cut for being
 * slow leaves the tree while nothing walks it.
 *
 * Order: a node delivers messages in id order (the store's notifications), and
 * ids are broker-wide, so a topic stream gets its channels' messages merged in
 * id order; stream_send skips any id not above the last one written, so a
 * message matched twice (by its name and a pattern) is written once. */
#include <stdlib.h>
#include <string.h>

#include "src/base/log.h"
#include "src/broker/broker_private.h"
#include "src/domain/pattern.h"
#include "src/domain/segtree.h"
#include "src/domain/session.h"

struct topic {
    char **names; /* exact names (owned) */
    size_t nnames;
    char **pats; /* patterns (owned) */
    size_t npats;
    char *label;       /* every name and pattern, joined by ',' (owned) */
    identity who;      /* its reader, with its token's grants (owned) */
    const policy *pol; /* NULL: no access control */
    stream *s;         /* its stream, once open */
    segtree *tree;     /* the tree its first 'ntree' patterns are in, or NULL */
    size_t ntree;
    uint64_t hit_seq; /* the last message its patterns matched */
};

/* The topic streams listening to one exact name. */
typedef struct topic_subs {
    char *name; /* the map's key (owned) */
    stream **v;
    size_t n, cap;
} topic_subs;

void broker_set_policy(broker *b, const policy *pol)
{
    stream *s;
    TAILQ_FOREACH (s, &b->all, all)
        if (s->tp)
            s->tp->pol = pol;
}

void broker_topics_init(broker *b)
{
    strmap_init(&b->topic_exact);
    b->topic_tree = NULL; /* made for the first pattern stream */
    b->topic_hits = NULL;
    b->topic_hits_cap = 0;
}

void broker_topics_free(broker *b)
{
    strmap_entry *e;
    for (size_t i = 0; strmap_next(&b->topic_exact, &i, &e);) {
        topic_subs *ts = e->val;
        free(ts->v);
        free(ts->name);
        free(ts);
    }
    strmap_free(&b->topic_exact);
    segtree_free(b->topic_tree);
    free(b->topic_hits);
}

void broker_topic_free(struct topic *tp)
{
    if (!tp)
        return;
    for (size_t i = 0; i < tp->ntree; i++)
        segtree_remove(tp->tree, tp->pats[i], tp);
    for (size_t i = 0; i < tp->nnames; i++)
        free(tp->names[i]);
    for (size_t i = 0; i < tp->npats; i++)
        free(tp->pats[i]);
    free(tp->names);
    free(tp->pats);
    free(tp->label);
    identity_clear(&tp->who);
    free(tp);
}

const char *broker_topic_label(const struct topic *tp)
{
    return tp->label;
}

/* Whether the reader of 'tp' may do 'acts' on the channel 'name'. */
static bool topic_may(const struct topic *tp, const char *name, unsigned acts)
{
    return !tp->pol || policy_allows(tp->pol, &tp->who, acts, name);
}

/* Whether pattern 'p' matches 'name': the broker's own channels (sys.*) only
 * for a pattern that names them. */
static bool topic_pattern_match(const char *p, const char *name)
{
    if (channel_reserved(name) && strncmp(p, "sys.", 4) != 0)
        return false;
    return pattern_match(p, name, NULL);
}

static bool topic_pats_match(const struct topic *tp, const char *name)
{
    for (size_t i = 0; i < tp->npats; i++)
        if (topic_pattern_match(tp->pats[i], name))
            return true;
    return false;
}

static bool topic_names_have(const struct topic *tp, const char *name)
{
    for (size_t i = 0; i < tp->nnames; i++)
        if (strcmp(tp->names[i], name) == 0)
            return true;
    return false;
}

/* What a walk of the tree collects for one message. */
typedef struct topic_hits {
    broker *b;
    uint64_t seq;
    size_t n;
} topic_hits;

/* segtree_cb: each topic once per message, however many of its patterns
 * match. The array has room for every pattern stream (topic_hits_reserve). */
static void topic_hit(void *val, void *arg)
{
    struct topic *tp = val;
    topic_hits *h = arg;
    if (tp->hit_seq == h->seq || !tp->s)
        return;
    tp->hit_seq = h->seq;
    h->b->topic_hits[h->n++] = tp->s;
}

void broker_topic_deliver(broker *b, chan *ch, msg *m)
{
    topic_subs *ts;
    stream *s;
    /* A stream cut for being slow leaves the list at once (its place taken by
     * the last one, which is then next): look the list up again each time. */
    for (size_t i = 0; (ts = strmap_get(&b->topic_exact, ch->name)) && i < ts->n;) {
        s = ts->v[i];
        if (topic_may(s->tp, ch->name, ACT_SUBSCRIBE) && stream_send_on(s, ch, m) < 0)
            continue;
        i++;
    }
    if (!b->ntopic_pats)
        return;
    /* The broker's own channels (sys.*) only for a pattern that names them. */
    topic_hits h = {b, m->seq, 0};
    segtree_match(b->topic_tree, ch->name,
                  channel_reserved(ch->name) ? SEGTREE_FIRST_LITERAL : 0, topic_hit, &h);
    for (size_t i = 0; i < h.n; i++) {
        s = b->topic_hits[i]; /* a write may close its own stream, no other */
        if (topic_may(s->tp, ch->name, ACT_SUBSCRIBE))
            stream_send_on(s, ch, m);
    }
}

void broker_topic_unlink(broker *b, stream *s)
{
    struct topic *tp = s->tp;
    for (size_t i = 0; i < tp->nnames; i++) {
        topic_subs *ts = strmap_get(&b->topic_exact, tp->names[i]);
        for (size_t k = 0; ts && k < ts->n; k++) {
            if (ts->v[k] == s) {
                ts->v[k] = ts->v[--ts->n];
                break;
            }
        }
        if (ts && !ts->n) {
            strmap_del(&b->topic_exact, ts->name);
            free(ts->v);
            free(ts->name);
            free(ts);
        }
    }
    if (tp->npats)
        b->ntopic_pats--; /* its patterns leave the tree when it is freed */
}

/* Room in b->topic_hits for one more pattern stream. 0, or -1 on OOM. */
static int topic_hits_reserve(broker *b)
{
    if (b->ntopic_pats < b->topic_hits_cap)
        return 0;
    size_t cap = b->topic_hits_cap ? 2 * b->topic_hits_cap : 64;
    stream **v = realloc(b->topic_hits, cap * sizeof(*v));
    if (!v)
        return -1;
    b->topic_hits = v;
    b->topic_hits_cap = cap;
    return 0;
}

/* Put the patterns of 'tp' in the broker's tree, all or none. 0,
 * SEGTREE_EFULL (over max_pattern_bytes) or SEGTREE_ENOMEM. */
static int topic_tree_add(broker *b, struct topic *tp)
{
    int rc;
    if (!b->topic_tree && !(b->topic_tree = segtree_new(b->opts.max_pattern_bytes)))
        return SEGTREE_ENOMEM;
    if (topic_hits_reserve(b) < 0)
        return SEGTREE_ENOMEM;
    tp->tree = b->topic_tree;
    for (; tp->ntree < tp->npats; tp->ntree++) {
        if ((rc = segtree_add(tp->tree, tp->pats[tp->ntree], tp)) < 0) {
            while (tp->ntree)
                segtree_remove(tp->tree, tp->pats[--tp->ntree], tp);
            return rc == SEGTREE_EFULL ? rc : SEGTREE_ENOMEM;
        }
    }
    return 0;
}

/* Add 's' to the streams listening to 'name'. 0, or -1 on OOM. */
static int subs_add(broker *b, const char *name, stream *s)
{
    topic_subs *ts = strmap_get(&b->topic_exact, name);
    if (!ts) {
        if (!(ts = calloc(1, sizeof(*ts))) || !(ts->name = strdup(name)) ||
            strmap_put(&b->topic_exact, ts->name, ts) < 0) {
            if (ts)
                free(ts->name);
            free(ts);
            return -1;
        }
    }
    if (ts->n == ts->cap) {
        size_t cap = ts->cap ? 2 * ts->cap : 4;
        stream **v = realloc(ts->v, cap * sizeof(*v));
        if (!v)
            return -1; /* an empty entry stays: broker_topic_unlink drops it */
        ts->v = v;
        ts->cap = cap;
    }
    ts->v[ts->n++] = s;
    return 0;
}

/* A topic from the request's names and patterns (duplicates dropped). NULL on
 * OOM. */
static struct topic *topic_new(const char *const *chans, size_t n)
{
    struct topic *tp = calloc(1, sizeof(*tp));
    size_t len = 1;
    if (!tp || !(tp->names = calloc(n, sizeof(char *))) ||
        !(tp->pats = calloc(n, sizeof(char *))))
        goto err;
    for (size_t i = 0; i < n; i++) {
        bool dup = false;
        for (size_t k = 0; k < i && !dup; k++)
            dup = strcmp(chans[k], chans[i]) == 0;
        if (dup)
            continue;
        char *c = strdup(chans[i]);
        if (!c)
            goto err;
        if (pattern_is_exact(c))
            tp->names[tp->nnames++] = c;
        else
            tp->pats[tp->npats++] = c;
        len += strlen(c) + 1;
    }
    if (!(tp->label = malloc(len)))
        goto err;
    tp->label[0] = '\0';
    for (size_t i = 0; i < tp->nnames + tp->npats; i++) {
        if (i)
            strcat(tp->label, ",");
        strcat(tp->label, i < tp->nnames ? tp->names[i] : tp->pats[i - tp->nnames]);
    }
    return tp;
err:
    broker_topic_free(tp);
    return NULL;
}

/* A message of the replay and its channel. */
typedef struct replay_item {
    msg *m;
    const chan *ch;
} replay_item;

static int by_seq(const void *a, const void *b)
{
    uint64_t x = ((const replay_item *)a)->m->seq, y = ((const replay_item *)b)->m->seq;
    return x < y ? -1 : x > y;
}

void broker_topic_replay(broker *b, stream *s, const char *last_id)
{
    const struct topic *tp = s->tp;
    replay_item *v = NULL;
    size_t n = 0, cap = 0;
    const msg *first = NULL; /* the oldest retained of the channels with a gap */
    bool gap = false;
    strmap_entry *e;

    for (size_t i = 0; strmap_next(&b->chans, &i, &e);) {
        chan *ch = e->val;
        bool g;
        if (!topic_names_have(tp, ch->name) && !topic_pats_match(tp, ch->name))
            continue;
        if (!topic_may(tp, ch->name, ACT_SUBSCRIBE | ACT_HISTORY))
            continue;                 /* live only, as a single stream without history */
        broker_history_retain(b, ch); /* nothing older than its age replays */
        size_t from = broker_resume_at(b, ch, last_id, &g);
        const msg *oldest = msgq_at(&ch->history, 0);
        if (g) {
            gap = true;
            if (oldest && (!first || oldest->seq < first->seq))
                first = oldest;
        }
        for (size_t k = from; k < ch->history.len; k++) {
            if (n == cap) {
                size_t nc = cap ? 2 * cap : 64;
                replay_item *nv = realloc(v, nc * sizeof(*nv));
                if (!nv) {
                    log_error("out of memory replaying a topic stream");
                    free(v);
                    stream_close(
                        s, BROKER_END_ERROR); /* the client comes back and resumes */
                    return;
                }
                v = nv;
                cap = nc;
            }
            v[n++] = (replay_item){msgq_at(&ch->history, k), ch};
        }
    }
    if (gap)
        broker_send_gap(s, last_id, first ? first->id : NULL);
    if (n)
        qsort(v, n, sizeof(*v), by_seq); /* v is NULL when nothing replays */
    for (size_t i = 0; i < n; i++)
        if (stream_send_on(s, v[i].ch, v[i].m) < 0)
            break; /* too slow even for the replay: aborted */
    free(v);
}

int broker_subscribe_topics(broker *b, sink *sk, const char *const *chans, size_t n,
                            const char *last_id, identity *who, const policy *pol,
                            const char **why)
{
    identity id = *who;
    struct topic *tp;
    stream *s;
    int rc;

    *who = (identity){0};
    *why = NULL;
    if (b->nstreams >= (size_t)b->opts.max_streams)
        *why = "busy: the broker holds its limit of streams";
    if (!(tp = topic_new(chans, n))) {
        identity_clear(&id);
        return BROKER_ENOMEM;
    }
    tp->who = id;
    tp->pol = pol;
    if (!*why && tp->npats && b->ntopic_pats >= (size_t)b->opts.max_pattern_streams)
        *why = "busy: the broker holds its limit of pattern streams";
    if (!*why && tp->npats && (rc = topic_tree_add(b, tp)) < 0) {
        if (rc != SEGTREE_EFULL) {
            broker_topic_free(tp);
            return BROKER_ENOMEM;
        }
        *why = "busy: the patterns of the broker's streams hold their limit of bytes";
    }
    if (*why) {
        log_debug("topic subscriber sent away: %s", *why);
        b->refused++;
        broker_topic_free(tp);
        return BROKER_ELIMIT;
    }
    if (!(s = stream_open(b, sk, NULL, NULL, tp, &tp->who)))
        return BROKER_ENOMEM; /* tp freed, and out of the tree */
    tp->s = s;
    if (tp->npats)
        b->ntopic_pats++;
    for (size_t i = 0; i < tp->nnames; i++) {
        if (subs_add(b, tp->names[i], s) < 0) {
            log_error("out of memory opening a topic stream");
            stream_close(
                s, BROKER_END_ERROR); /* opened: the client sees it end, and retries */
            return 0;
        }
    }
    if (last_id)
        broker_stream_resume(b, s, last_id);
    return 0;
}
