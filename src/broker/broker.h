/* broker.h - the broker: the live channel map and every state change.
 *
 * Each change is applied to the in-memory domain objects (chan.h) and written
 * through the repositories (repo/), so that a restart on a persistent store
 * rebuilds the same state. Message ids are allocated by the store. */
#ifndef BROKER_H
#define BROKER_H

#include <stdbool.h>
#include <stddef.h>

#include "src/domain/chan.h"
#include "src/config.h"
#include "kv/kv.h"
#include "src/domain/publish.h"
#include "repo/repo.h"
#include "src/broker/stream.h"
#include "src/base/strmap.h"
#include "src/base/util.h"

struct event_base;

/* A stream whose socket accepts nothing for this long is closed. */
#define STREAM_WRITE_TIMEOUT_S 60

typedef struct pub_ctx pub_ctx;
TAILQ_HEAD(pub_list, pub_ctx);

typedef struct broker {
    struct event_base *base;
    const config *cfg;      /* borrowed */
    kv_store *kv;           /* borrowed */
    repo_channel *repo;     /* owned: the whole repository stack */
    strmap chans;           /* name -> chan* (one reference each) */
    struct stream_list all; /* every live stream */
    size_t nstreams;
    struct event *heartbeat;             /* one timer for every stream */
    struct event *tick;                  /* answers publishes that waited too long */
    char node_id[CONN_ID_LEN + 1];       /* this process among the nodes of the store */
    uint64_t seen_seq;                   /* highest message id delivered here */
    struct pub_list waiting;             /* publishes stored, not yet delivered here */
    int catching_up;                     /* reads of stored state under way */
    struct held_note *held, **held_tail; /* notifications waiting for them */
    size_t nheld;
    struct evbuffer *scratch;
    unsigned long long slow_closed; /* streams ended for not reading */
    unsigned long long refused;     /* subscribers sent away by a limit */
    uint64_t max_seq;               /* highest message id seen: ids never go back */
    size_t publishing;              /* publishes in flight */
    bool closing;                   /* shutting down: no new publishes */
    kv_cb drained_cb; /* broker_drain's callback, once nothing is in flight */
    void *drained_arg;
} broker;

/* A broker over 'kv'. NULL on OOM. */
broker *broker_new(struct event_base *base, const config *cfg, kv_store *kv);
/* Rebuild every channel from the store. Blocks (runs the loop) until done:
 * only for start-up. Returns 0 or -1 with the reason logged. */
int broker_load(broker *b);
/* End every stream cleanly (each client sees its response end). */
void broker_close_streams(broker *b);
/* Shut down gracefully: refuse new publishes (BROKER_ECLOSING), end every
 * stream, let publishes in flight finish, then flush the store and call 'cb'
 * with the flush result. */
void broker_drain(broker *b, kv_cb cb, void *arg);
/* Free everything; streams still open are ended first. NULL is fine. */
void broker_free(broker *b);

chan *broker_chan(broker *b, const char *name);
/* Create 'name' with the defaults overlaid by 'opts' (a JSON object or NULL),
 * or update it. Returns the channel, or NULL with '*why' set (BROKER_EINVAL:
 * bad options, BROKER_ELIMIT: limits.max_channels reached, BROKER_ENOMEM) and
 * a message in 'err'; '*created' tells which. Nothing changes on error. */
chan *broker_chan_put(broker *b, const char *name, json_t *opts, bool *created, int *why,
                      char *err, size_t errlen);
/* Delete the channel: its streams end, its connections and history go. */
void broker_chan_delete(broker *b, chan *ch);
/* Channels sorted by name; caller frees the array (not the channels). */
chan **broker_chan_list(broker *b, size_t *n);

/* A new connection, or NULL with '*why' BROKER_ELIMIT (the channel holds
 * limits.max_connections_per_channel) or BROKER_ENOMEM. */
conn *broker_conn_create(broker *b, chan *ch, int *why);
void broker_conn_delete(broker *b, conn *cn);
void broker_conn_set_running(broker *b, conn *cn, bool running);

/* Publish completion. status: 0, or BROKER_ENOCHAN / BROKER_ENOCONN (the
 * target went away meanwhile), or a negative KV_E* code. 'msgs' borrowed. */
enum {
    BROKER_ENOCHAN = -100,
    BROKER_ENOCONN = -101,
    BROKER_ENOMEM = -102,
    BROKER_EINVAL = -103,
    BROKER_ELIMIT = -104,
    BROKER_ECLOSING = -105
};
typedef void (*broker_pub_cb)(int status, const uint64_t *ids, size_t n, int64_t ts_us,
                              void *arg);

/* Publish 'batch' (taken, freed by the broker) to the channel, or only to the
 * connection 'conn_id' of it when not NULL. Each message is appended to the
 * store, which numbers it and tells every node (this one too) to deliver it;
 * 'cb' runs exactly once, later, with the ids once the store has every
 * message and this node has delivered them. Returns 0, or BROKER_ECLOSING
 * while shutting down, BROKER_ENOCONN if there is no such connection, or -1
 * on OOM (no callback in those cases). */
int broker_publish(broker *b, chan *ch, const char *conn_id, pub_batch *batch,
                   broker_pub_cb cb, void *arg);

/* Whether one more stream may open (on 'ch'; 'takeover' when it replaces a
 * stream of the same connection). If not, answers 'req' with 200, a retry:
 * of limits.backoff_ms and an ended stream (a browser gives up for good on
 * any other status), counts it, and returns 0. */
int broker_admit_stream(broker *b, httpd_req *req, chan *ch, int takeover);
/* Send a subscriber away politely (as above) with 'why' as a comment. */
void broker_refuse_stream(broker *b, httpd_req *req, const char *why);

/* Open a plain subscriber stream on 'ch'; 'last_id' (may be NULL) resumes
 * after that message. */
stream *broker_subscribe(broker *b, httpd_req *req, chan *ch, const char *last_id);
/* Attach a stream to 'cn's listener (ending any stream attached before) and
 * drain its queue into it if the listener runs. */
stream *broker_attach(broker *b, httpd_req *req, conn *cn);

/* Tell the other nodes that 'kind' ("c" channel, "n" connection, "l"
 * listener, "a" attached here) of 'chan_name' ('conn_id') changed to 'what'. */
void broker_announce(broker *b, const char *kind, const char *chan_name,
                     const char *conn_id, const char *what);

#endif
