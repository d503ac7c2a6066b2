/* chan.h - the domain: channels, their connections, listeners and live streams.
 *
 * A channel has options, a log of the messages published to it (the store
 * keeps it; this object mirrors its newest 'history' messages), live
 * subscribers, and persistent connections. A connection is a listener plus a
 * queue; the queue is not a copy of messages but a place in two logs, the
 * channel's and the connection's own (messages published to it alone): what
 * waits for it is what lies after its cursor in each, at most queue_limit
 * (older ones are dropped and counted). A listener is running or stopped and
 * attached to at most one live stream in the cluster. Plain subscribers (GET
 * /channels/{name}/events) are live streams on the channel itself and resume
 * from its history. These are plain in-memory objects: the repositories
 * (repo/) persist and rebuild them, the broker (src/broker) changes them. */
#ifndef CHAN_H
#define CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <jansson.h>

#include "src/domain/chan_opts.h"
#include "src/domain/msgq.h"
#include "src/domain/names.h"

struct stream;

typedef struct listener {
    bool running;          /* stopped: messages wait in the logs */
    struct stream *stream; /* the stream attached on this node, or NULL */
} listener;

/* A place in a log: the id and position of the last entry read (0, 0: none). */
typedef struct cursor {
    uint64_t id, pos;
} cursor;

typedef struct conn {
    char id[CONN_ID_LEN + 1];
    struct chan *ch;  /* owning channel */
    char *owner;      /* the authid that created it (owned); NULL: anonymous */
    char *owner_role; /* its role then (owned; NULL: none): for targeting */
    listener lis;
    /* While a stream is attached here: */
    cursor at;               /* the last message of the channel's log it was given */
    cursor own;              /* ... of its own log */
    cursor at_w, own_w;      /* the same, once the socket took them: what is saved */
    uint64_t dropped_add;    /* dropped by the bound since the cursors were saved */
    bool dirty;              /* cursors moved since they were saved */
    bool loading;            /* its backlog is being read: live messages wait */
    bool reload;             /* read it again once this read is over */
    msgq pending;            /* live messages that arrived while loading */
    TAILQ_ENTRY(conn) link;  /* in ch->conns */
    TAILQ_ENTRY(conn) alink; /* in ch->attached while a stream is attached here */
    TAILQ_ENTRY(conn) dlink; /* in the broker's list of cursors to save */
} conn;

TAILQ_HEAD(conn_list, conn);
TAILQ_HEAD(stream_list, stream);

/* The ids of the messages a channel's stored log holds, as far as this node
 * has seen them, oldest first: what a global memory bound evicts, the oldest
 * across all channels first (from the log and the history mirror; a store no
 * other process reads keeps nothing of a log without connections, see g/{chan}
 * in repo/repo.h, and then the mirror alone holds them).
 * 8 bytes a message. */
typedef struct seqring {
    uint64_t *v;
    size_t cap, head, len;
} seqring;

typedef struct chan {
    char *name; /* owned; also the key of the broker's channel map */
    chan_opts opts;
    msgq history; /* the newest 'history' messages of its log */
    struct conn_list conns;
    size_t nconns;
    struct conn_list attached;  /* its connections with a stream attached here */
    struct stream_list streams; /* plain subscribers */
    size_t nstreams;
    size_t nattached;  /* connection streams attached */
    uint64_t last_seq; /* highest seq published here, 0 if none */
    seqring logids;    /* ids in its stored log, oldest first (see seqring) */
    uint64_t evicted;  /* messages the memory bound evicted from it */
    size_t heap_at;    /* its place in the broker's eviction heap, or SIZE_MAX */
    int refs;          /* the broker's map holds one; in-flight publishes hold others */
    bool deleted;
    bool expiring;    /* the store is asked whether it may expire */
    int64_t active_s; /* when it last held or carried something (broker clock, s) */
    int64_t marked_s; /* when this node last marked it used in the store */
} chan;

/* What a connection shows (GET .../connections/{id}). Read from the store,
 * so that every node shows the same. */
typedef struct conn_info {
    bool running, attached;
    uint64_t queue_length; /* messages waiting, at most queue_limit */
    uint64_t dropped;      /* messages its bound dropped since it was created */
} conn_info;

/* A new channel with one reference, no connections, empty history. NULL on OOM. */
chan *chan_new(const char *name, const chan_opts *opts);
chan *chan_ref(chan *ch);
/* Drop a reference; the last one frees the channel, its history and
 * connections. Streams must have been detached before. */
void chan_unref(chan *ch);
/* Apply new options: the history is trimmed to its new bound. */
void chan_set_opts(chan *ch, const chan_opts *opts);

/* Whether the history of 'ch' no longer keeps 'm' for its age (older than
 * history_age_s at 'now_us'). */
static inline bool chan_history_aged(const chan *ch, const msg *m, int64_t now_us)
{
    return ch->opts.history_age_s &&
           m->ts_us < now_us - (int64_t)ch->opts.history_age_s * 1000000;
}

/* Whether the history of 'ch' holds more than it keeps by its byte bound. */
static inline bool chan_history_over(const chan *ch)
{
    return ch->opts.history_bytes && ch->history.bytes > (size_t)ch->opts.history_bytes;
}

/* What the channel's stored log keeps while it has connections: a plain
 * subscriber replays 'history', and a connection may lag up to 'queue_limit'
 * behind. */
size_t chan_log_bound(const chan *ch);
/* What the store keeps of it: with connections (that this node knows of)
 * chan_log_bound(), else only the history. */
size_t chan_log_kept(const chan *ch);
/* Note that message 'seq' was appended to its log; the oldest beyond the
 * bound go from the note too. Returns 0, or -1 on OOM (not noted). */
int chan_log_note(chan *ch, uint64_t seq);
/* The oldest id noted (0: none), and taking it off the note. */
uint64_t chan_log_oldest(const chan *ch);
uint64_t chan_log_shift(chan *ch);
/* What every channel's note takes, in bytes. */
size_t chan_log_bytes(void);

/* A new connection in 'ch' (listener running, empty queue). 'id' NULL makes a
 * fresh random id. NULL on OOM. */
conn *conn_new(chan *ch, const char *id);
conn *chan_conn(const chan *ch, const char *id);
/* Set its owner and the owner's role (copied; NULL: anonymous, none). 0, or -1
 * on OOM (unchanged). */
int conn_set_owner(conn *cn, const char *owner, const char *role);
/* Unlink from its channel and free. The stream must have been detached. */
void conn_free(conn *cn);

/* The API form of a channel, and of a connection with what the store says
 * of it. New references. */
json_t *chan_to_json(const chan *ch);
json_t *conn_to_json(const conn *cn, const conn_info *ci);

#endif
