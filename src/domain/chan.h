/* chan.h - the domain: channels, their connections, listeners and live streams.
 *
 * A channel has options, a bounded history and persistent connections; a
 * connection is a listener plus a bounded queue. A listener is running or
 * stopped and attached to at most one live stream. Plain subscribers (GET
 * /channels/{name}/events) are live streams on the channel itself and resume
 * from its history. These are plain in-memory objects: the repositories
 * (repo/) persist and rebuild them, the broker (broker.c) changes them. */
#ifndef CHAN_H
#define CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

#include "src/domain/chan_opts.h"
#include "src/domain/msgq.h"
#include "src/domain/names.h"

struct stream;

typedef struct listener {
    bool running;          /* stopped: messages wait in the queue */
    struct stream *stream; /* the attached live stream, or NULL */
} listener;

typedef struct conn {
    char id[CONN_ID_LEN + 1];
    struct chan *ch; /* owning channel */
    listener lis;
    msgq queue;   /* mirror of the stored queue */
    bool loading; /* the stored queue is being read back: no draining */
    TAILQ_ENTRY(conn) link;
} conn;

TAILQ_HEAD(conn_list, conn);
TAILQ_HEAD(stream_list, stream);

typedef struct chan {
    char *name; /* owned; also the key of the broker's channel map */
    chan_opts opts;
    msgq history;
    struct conn_list conns;
    size_t nconns;
    struct stream_list streams; /* plain subscribers */
    size_t nstreams;
    size_t nattached;  /* connection streams attached */
    uint64_t last_seq; /* highest seq published here, 0 if none */
    int refs;          /* the broker's map holds one; in-flight publishes hold others */
    bool deleted;
} chan;

/* A new channel with one reference, no connections, empty history. NULL on OOM. */
chan *chan_new(const char *name, const chan_opts *opts);
chan *chan_ref(chan *ch);
/* Drop a reference; the last one frees the channel, its history and
 * connections. Streams must have been detached before. */
void chan_unref(chan *ch);
/* Apply new options: history and queues are trimmed to the new bounds. */
void chan_set_opts(chan *ch, const chan_opts *opts);

/* A new connection in 'ch' (listener running, empty queue). 'id' NULL makes a
 * fresh random id. NULL on OOM. */
conn *conn_new(chan *ch, const char *id);
conn *chan_conn(const chan *ch, const char *id);
/* Unlink from its channel and free. The stream must have been detached. */
void conn_free(conn *cn);

/* The API form of a channel and a connection. New references. */
json_t *chan_to_json(const chan *ch);
json_t *conn_to_json(const conn *cn);

#endif
