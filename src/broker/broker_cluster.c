/* broker_cluster.c - what the nodes sharing a store tell each other, this one
 * included: every message (each node delivers from the notification, so the id
 * order is the delivery order everywhere), every change of a channel,
 * connection or listener, and attaches; and catching up from the stored state
 * after the subscription was lost, holding what arrives meanwhile so that a
 * stream never goes back in ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "src/base/log.h"
#include "src/broker/broker_private.h"

void broker_announce(broker *b, const char *kind, const char *chan_name,
                     const char *conn_id, const char *what)
{
    char topic[300], data[160];
    int n = snprintf(data, sizeof(data), "%s %s", b->node_id, what);
    if (conn_id)
        snprintf(topic, sizeof(topic), "%s/%s/%s", kind, chan_name, conn_id);
    else
        snprintf(topic, sizeof(topic), "%s/%s", kind, chan_name);
    kv_notify(b->kv, topic, data, (size_t)n, NULL, NULL);
}

/* After the subscription was lost: deliver from the stored history what was
 * published meanwhile, and reload the queues of attached connections. */
#define CATCHUP_RETRY_MAX_MS 5000
typedef struct catchup {
    broker *b;
    chan *ch; /* holds a reference */
    msgq q;
} catchup;

/* Notifications that arrive while the state is read back wait here, so that
 * nothing is delivered ahead of older messages still being read (a stream
 * never goes back in ids). Bounded: past it, the newest are dropped and logged. */
#define HELD_NOTES_MAX 100000

struct held_note {
    struct held_note *next;
    size_t len;
    char *topic; /* and the data after it, in the same allocation */
};

static void hold_note(broker *b, const char *topic, const char *data, size_t len)
{
    size_t tl = strlen(topic);
    held_note *h = malloc(sizeof(*h) + tl + 1 + len + 1);
    if (!h || b->nheld >= HELD_NOTES_MAX) {
        free(h);
        log_warn("cluster: a notification on '%s' dropped while catching up", topic);
        return;
    }
    h->next = NULL;
    h->len = len;
    h->topic = (char *)(h + 1);
    memcpy(h->topic, topic, tl + 1);
    memcpy(h->topic + tl + 1, data, len);
    h->topic[tl + 1 + len] = '\0';
    *b->held_tail = h;
    b->held_tail = &h->next;
    b->nheld++;
}

void broker_held_free(broker *b)
{
    held_note *h;
    while ((h = b->held)) {
        b->held = h->next;
        free(h);
    }
    if (b->catchup_retry)
        event_free(b->catchup_retry);
    b->catchup_retry = NULL;
}

static void catch_up(broker *b);

/* Hold on to the notes and read everything again: catch_up() counts its own
 * reads, then the hold taken in broker_catchup_step() is let go. */
static void catchup_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    broker *b = arg;
    catch_up(b);
    broker_catchup_step(b);
}

/* The subscription can come back before the store answers reads (Redis
 * restarting, the command connection still in its backoff): a history that
 * could not be read may hide messages whose notifications were missed, so
 * the catch-up runs again, with a backoff, until every read succeeds. The
 * notes that arrive meanwhile stay held (bounded by HELD_NOTES_MAX): given
 * now, a newer message would make a missed older one look already seen. */
static int catchup_again(broker *b)
{
    struct timeval tv;
    b->catchup_backoff_ms = b->catchup_backoff_ms ? b->catchup_backoff_ms * 2 : 250;
    if (b->catchup_backoff_ms > CATCHUP_RETRY_MAX_MS)
        b->catchup_backoff_ms = CATCHUP_RETRY_MAX_MS;
    tv = (struct timeval){b->catchup_backoff_ms / 1000,
                          (b->catchup_backoff_ms % 1000) * 1000};
    if (!b->catchup_retry &&
        !(b->catchup_retry = evtimer_new(b->base, catchup_retry_cb, b))) {
        log_error("cluster: cannot schedule the catch-up again (out of memory)");
        return -1;
    }
    log_warn("cluster: the store could not be read while catching up; again in %d ms",
             b->catchup_backoff_ms);
    return evtimer_add(b->catchup_retry, &tv);
}

/* One read-back is over: after the last, deliver what waited. */
void broker_catchup_step(broker *b)
{
    held_note *h;
    if (--b->catching_up)
        return;
    if (b->catchup_failed) {
        b->catchup_failed = false;
        b->catching_up = 1; /* held until the catch-up runs again */
        if (catchup_again(b) == 0)
            return;
        b->catching_up = 0; /* cannot: give what waited now */
    }
    b->catchup_backoff_ms = 0;
    while ((h = b->held)) {
        b->held = h->next;
        if (!b->held)
            b->held_tail = &b->held;
        b->nheld--;
        broker_on_notify(h->topic, h->topic + strlen(h->topic) + 1, h->len, b);
        free(h);
    }
    broker_pubs_release(b, false);
}

static void history_caught_up(int status, void *arg)
{
    catchup *cu = arg;
    if (status < 0 && !cu->ch->deleted)
        cu->b->catchup_failed = true;
    for (size_t i = 0; status == 0 && !cu->ch->deleted && i < cu->q.len; i++)
        broker_chan_deliver(cu->b, cu->ch, msgq_at(&cu->q, i));
    msgq_free(&cu->q);
    chan_unref(cu->ch);
    broker_catchup_step(cu->b);
    free(cu);
}

static void catch_up(broker *b)
{
    strmap_entry *e;
    conn *cn;
    log_info("cluster: the subscription is back; catching up from the store");
    broker_traces_reload(b);
    b->catching_up++; /* held while issuing */
    for (size_t i = 0; strmap_next(&b->chans, &i, &e);) {
        chan *ch = e->val;
        catchup *cu = calloc(1, sizeof(*cu));
        if (cu) {
            cu->b = b;
            cu->ch = chan_ref(ch);
            msgq_init(&cu->q, (size_t)ch->opts.history);
            b->catching_up++;
            if (repo_channel_history_load(b->repo, ch, &cu->q, history_caught_up, cu) < 0)
                history_caught_up(KV_ENOMEM, cu);
        }
        conn *next;
        for (cn = TAILQ_FIRST(&ch->attached); cn; cn = next) {
            next = TAILQ_NEXT(cn, alink); /* a failed read ends the stream */
            broker_conn_reload(b, cn);
        }
    }
    broker_catchup_step(b);
}

/* A channel, connection or listener changed on another node: apply it here
 * without writing (that node wrote it). */
static void apply_remote(broker *b, const char *kind, const char *chan_name,
                         const char *conn_id, const char *what)
{
    chan *ch = broker_chan(b, chan_name);
    conn *cn = ch && conn_id ? chan_conn(ch, conn_id) : NULL;
    chan_opts o;
    char err[128];

    broker_chan_defaults(b, chan_name, &o);

    if (strcmp(kind, "c") == 0 && strcmp(what, "deleted") == 0) {
        if (ch)
            broker_chan_drop(b, ch);
    } else if (strcmp(kind, "c") == 0) {
        json_t *opts = json_loads(what, 0, NULL);
        if (ch)
            o = ch->opts;
        if (chan_opts_apply_json(&o, opts, err, sizeof(err)) == 0) {
            if (ch) {
                chan_set_opts(ch, &o);
                broker_memory_note(b, ch, 0);
                broker_history_retain(b, ch);
            } else {
                broker_chan_add(b, chan_name, &o);
            }
        }
        json_decref(opts);
    } else if (strcmp(kind, "n") == 0 && strcmp(what, "deleted") == 0) {
        if (cn)
            broker_conn_forget(b, cn);
    } else if (strcmp(kind, "n") == 0) {
        /* Its record says who owns it; without one (out of memory on the
         * creating node) it is looked up in the store when asked for. */
        if (ch && !cn && valid_conn_id(conn_id) && what[0] == '{' &&
            (cn = conn_new(ch, conn_id)) &&
            repo_conn_record_owner(cn, what, strlen(what)) < 0)
            broker_conn_forget(b, cn);
    } else if (strcmp(kind, "l") == 0 && cn) {
        bool was = cn->lis.running;
        cn->lis.running = strcmp(what, "running") == 0;
        if (cn->lis.running && !was)
            broker_conn_reload(b, cn);
    } else if (strcmp(kind, "x") == 0) {
        broker_trace_remote(b, chan_name); /* a trace id, not a channel */
    } else if (strcmp(kind, "a") == 0 && cn && cn->lis.stream) {
        log_info("connection %s: a stream on another node takes over", cn->id);
        stream_close(cn->lis.stream, BROKER_END_TAKEOVER);
    }
}

/* Every notification of the store, this node's own included. */
void broker_on_notify(const char *topic, const char *data, size_t len, void *arg)
{
    broker *b = arg;
    char name[CHAN_NAME_MAX + 1], *conn_id = NULL;
    const char *slash;
    if (!topic) {
        catch_up(b);
        return;
    }
    if (b->catching_up) {
        hold_note(b, topic, data, len);
        return;
    }
    if (!(slash = strchr(topic, '/')) || slash == topic || slash - topic > 1)
        return;
    snprintf(name, sizeof(name), "%s", slash + 1);
    if ((conn_id = strchr(name, '/')))
        *conn_id++ = '\0';
    if (topic[0] == REPO_TOPIC_MSG[0] || topic[0] == REPO_TOPIC_TARGETED[0]) {
        msg *m = msg_from_json(data, len);
        chan *ch = broker_chan(b, name);
        conn *cn;
        if (!m) {
            log_warn("cluster: a message on '%s' does not parse", topic);
            return;
        }
        if (m->seq > b->seen_seq)
            b->seen_seq = m->seq;
        if (m->seq > b->max_seq)
            b->max_seq = m->seq;
        m->own = conn_id != NULL;
        if (ch && !conn_id)
            broker_chan_deliver(b, ch, m);
        else if (ch && (cn = chan_conn(ch, conn_id)))
            broker_conn_deliver(b, cn, m);
        msg_unref(m);
        broker_pubs_release(b, false);
        broker_memory_check(b);
        return;
    }
    /* "<node> <what>": our own announcements are already applied. */
    const char *sp = memchr(data, ' ', len);
    if (!sp || (size_t)(sp - data) != strlen(b->node_id) ||
        memcmp(data, b->node_id, (size_t)(sp - data)) == 0)
        return;
    char kind[2] = {topic[0], '\0'};
    apply_remote(b, kind, name, conn_id, sp + 1);
}
