/* broker_idle.c - channels that hold nothing expire.
 *
 * A channel with no retained message, no connection and no live stream (on
 * any node) for idle_ttl_s is deleted, as a DELETE would: its slot comes back,
 * so that channels created once by clients that came and went (a subscribe or
 * a publish autocreates one, a PUT any number) cannot hold max_channels for
 * good. A publish counts as activity, whether or not anything keeps it.
 *
 * Each node watches what it can see (history, connections, its own streams)
 * on a timer that visits at most IDLE_SWEEP channels a second, in map order,
 * so the cost per second is bounded whatever the number of channels. Live
 * streams are the one thing a node cannot see of the others: a node holding
 * some marks the channel used in the store (at most every idle_ttl_s / 3),
 * and a node about to expire a channel first reads that mark and the
 * connections the store holds for it; it expires the channel only if neither
 * says it is in use. A stream opened on another node in the one round trip
 * between that read and the deletion is ended (its client reconnects). */
#include <stdlib.h>
#include <time.h>
#include <event2/event.h>

#include "src/base/log.h"
#include "src/broker/broker_private.h"

#define IDLE_SWEEP 2000 /* channels visited per second */

/* An expiry read in flight; 'b' is NULL once the broker is gone. */
struct idle_read {
    broker *b;
    chan *ch; /* holds a reference */
    LIST_ENTRY(idle_read) link;
};

static int64_t idle_mark_every(const broker *b)
{
    return b->opts.idle_ttl_s >= 3 ? b->opts.idle_ttl_s / 3 : 1;
}

void broker_chan_used(broker *b, chan *ch)
{
    ch->active_s = b->clock_s;
    if (b->opts.idle_ttl_s > 0 && (ch->nstreams || ch->nattached) &&
        (!ch->marked_s || b->clock_s - ch->marked_s >= idle_mark_every(b))) {
        ch->marked_s = b->clock_s ? b->clock_s : 1;
        repo_channel_mark_used(b->repo, ch, (int64_t)time(NULL));
    }
}

static void idle_usage(int status, int64_t used_s, size_t nconns, void *arg)
{
    idle_read *r = arg;
    broker *b = r->b;
    chan *ch = r->ch;
    int64_t ago = used_s ? (int64_t)time(NULL) - used_s : INT64_MAX;

    if (b) {
        LIST_REMOVE(r, link);
        ch->expiring = false;
    }
    free(r);
    if (!b || ch->deleted || status < 0) {
        chan_unref(ch); /* a failed read: the next visit asks again */
        return;
    }
    if (nconns || ago < b->opts.idle_ttl_s) {
        /* In use elsewhere: idle, at most, since the other node's mark. */
        ch->active_s = b->clock_s - (nconns || ago < 0 ? 0 : ago);
    } else if (!ch->nstreams && !ch->nattached && !ch->nconns && !ch->history.len &&
               b->clock_s - ch->active_s >= b->opts.idle_ttl_s) {
        log_debug("channel '%s' expired: nothing in it for %d s", ch->name,
                  b->opts.idle_ttl_s);
        b->expired++;
        broker_chan_delete(b, ch);
    }
    chan_unref(ch);
}

/* One visit: note what it holds, or ask the store whether it may expire. */
static void idle_visit(broker *b, chan *ch)
{
    idle_read *r;
    if (ch->nstreams || ch->nattached) {
        broker_chan_used(b, ch);
        return;
    }
    if (ch->nconns || ch->history.len) {
        ch->active_s = b->clock_s;
        return;
    }
    if (ch->expiring || b->clock_s - ch->active_s < b->opts.idle_ttl_s)
        return;
    if (!(r = malloc(sizeof(*r))))
        return;
    *r = (idle_read){.b = b, .ch = chan_ref(ch)};
    if (repo_channel_usage(b->repo, ch, idle_usage, r) < 0) {
        chan_unref(ch);
        free(r);
        return;
    }
    ch->expiring = true;
    LIST_INSERT_HEAD(&b->idle_reads, r, link);
}

static void idle_tick(evutil_socket_t fd, short what, void *arg)
{
    broker *b = arg;
    strmap_entry *e;
    b->clock_s++;
    if (b->opts.idle_ttl_s <= 0 || b->closing)
        return;
    /* Deletions happen in the store's callbacks, never during this walk. */
    for (int n = 0; n < IDLE_SWEEP; n++) {
        if (!strmap_next(&b->chans, &b->idle_pos, &e)) {
            b->idle_pos = 0;
            break;
        }
        idle_visit(b, e->val);
    }
}

int broker_idle_init(broker *b)
{
    struct timeval sec = {1, 0};
    LIST_INIT(&b->idle_reads);
    b->clock_s = 1;
    if (!(b->idle_ev = event_new(b->base, -1, EV_PERSIST, idle_tick, b)) ||
        event_add(b->idle_ev, &sec) < 0)
        return -1;
    return 0;
}

void broker_idle_free(broker *b)
{
    idle_read *r;
    while ((r = LIST_FIRST(&b->idle_reads))) {
        LIST_REMOVE(r, link);
        r->b = NULL; /* its callback only lets go of the channel */
        r->ch->expiring = false;
    }
    if (b->idle_ev)
        event_free(b->idle_ev);
}
