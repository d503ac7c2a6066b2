/* broker_private.h - what the broker's files share: the broker itself and the
 * calls between its parts. Not for anything outside src/broker.
 *
 *   broker.c          the channel map and every change to it; delivery into
 *                     live streams and connection queues; loading at start-up
 *   broker_publish.c  publishes in flight: appends, answers, draining
 *   broker_cluster.c  what nodes sharing the store tell each other: messages,
 *                     changes, catching up after a lost subscription
 *   broker_memory.c   the global bound on retained messages
 *   broker_idle.c     channels that hold nothing expire
 *   broker_session.c  every live stream is a session: the archive, sys.sessions
 *   broker_topic.c    multi-channel streams: exact names and patterns
 *   broker_trace.c    traces: what flows through chosen channels, per node
 *   broker_stats.c    this node's figures on sys.stats, every second
 */
#ifndef BROKER_PRIVATE_H
#define BROKER_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "repo/repo.h"
#include "src/base/sortmap.h"
#include "src/base/strmap.h"
#include "src/broker/broker.h"
#include "src/broker/stream.h"
#include "src/domain/segtree.h"

typedef struct pub_ctx pub_ctx;
TAILQ_HEAD(pub_list, pub_ctx);
typedef struct held_note held_note;
typedef struct idle_read idle_read;
LIST_HEAD(idle_read_list, idle_read);

struct broker {
    struct event_base *base;
    broker_opts opts;
    kv_store *kv;            /* borrowed */
    repo_channel *repo;      /* owned: the whole repository stack */
    repo_connection *rconns; /* ... and its parts, borrowed from it */
    repo_listener *rlisteners;
    repo_queue *rqueues;
    strmap chans;           /* name -> chan* (one reference each) */
    sortmap byname;         /* the same, sorted by name (for listings) */
    struct stream_list all; /* every live stream */
    size_t nstreams;
    struct event *heartbeat;        /* one timer for every stream */
    struct event *tick;             /* answers publishes that waited too long */
    char node_id[CONN_ID_LEN + 1];  /* this process among the nodes of the store */
    unsigned long long slow_closed; /* streams ended for not reading */
    broker_metrics m;               /* counters (connections: counted when read) */
    unsigned long long refused;     /* subscribers sent away by a limit */
    struct conn_list dirty;         /* connections whose cursors moved */
    chan **heap;                    /* channels by the oldest id in their log */
    size_t nheap, heapcap;
    unsigned long long evicted;  /* messages the memory bound evicted */
    unsigned long long rejected; /* publishes the memory bound refused */
    struct event *save_ev;       /* saves them, at the end of the loop turn */
    bool save_pending;
    broker_observer_fn observer; /* broker_set_observer */
    void *observer_arg;

    /* broker_publish.c */
    uint64_t max_seq;          /* highest message id seen: ids never go back */
    size_t publishing;         /* publishes in flight */
    struct pub_list waiting;   /* publishes stored, not yet delivered here */
    struct pub_list inflight;  /* every publish in flight (broker_free answers them) */
    bool closing;              /* shutting down: no new publishes */
    broker_done_cb drained_cb; /* broker_drain's callback, once nothing is in flight */
    void *drained_arg;

    /* broker_idle.c */
    struct event *idle_ev;            /* the sweep, every second */
    int64_t clock_s;                  /* seconds since start, by that timer */
    size_t idle_pos;                  /* where the sweep goes on in 'chans' */
    struct idle_read_list idle_reads; /* expiry reads in flight */
    unsigned long long expired;       /* channels expired */

    /* broker_history.c */
    struct event *retain_ev; /* the retention sweep, every second */
    size_t retain_pos;       /* where it goes on in 'chans' */

    /* broker_topic.c */
    strmap topic_exact;    /* exact name -> topic_subs*: the topic
                              streams listening to that name */
    segtree *topic_tree;   /* the patterns of topic streams -> their
                              topics; NULL until the first */
    size_t ntopic_pats;    /* topic streams with patterns */
    stream **topic_hits;   /* what a delivery matched: room for every */
    size_t topic_hits_cap; /* topic stream with patterns */

    /* broker_cluster.c */
    uint64_t seen_seq;            /* highest message id delivered here */
    int catching_up;              /* reads of stored state under way */
    held_note *held, **held_tail; /* notifications waiting for them */
    size_t nheld;
    bool catchup_failed;         /* a read of the catch-up failed */
    struct event *catchup_retry; /* then the catch-up runs again, later */
    int catchup_backoff_ms;      /* 0 after a catch-up that read everything */

    /* broker_session.c */
    repo_session *rsessions;       /* owned */
    struct event *sess_tick;       /* bounds the archive, every second */
    struct event *sess_pub_ev;     /* publishes what is pending on sys.sessions */
    int64_t sess_swept_at;         /* when the last sweep started (us), 0: never */
    bool sess_dirty;               /* sessions written since the last sweep */
    struct sess_sweep *sess_sweep; /* the sweep in flight, or NULL */
    bool sess_publishing;          /* a publish to sys.sessions is in flight */
    pub_batch sess_pending;        /* joins and leaves waiting to be published */
    size_t sess_cap;               /* room in sess_pending.ev */

    /* broker_stats.c */
    struct event *stats_tick; /* every second */
    bool stats_publishing;    /* a publish to sys.stats is in flight */
    int64_t stats_at;         /* the last tick (us), 0: none yet */
    unsigned long long stats_published, stats_delivered; /* counters then */
    double pub_rate, del_rate; /* messages per second over the last tick */
    struct stats_slow {
        int64_t at;
        char channel[CHAN_NAME_MAX + 1];
    } slow_recent[BROKER_STATS_SLOW]; /* the newest slow disconnects, a ring */
    size_t nslow;                     /* slow disconnects noted (the ring's end) */

    /* broker_trace.c */
    repo_trace *rtraces; /* owned */
    trace **traces;      /* the running traces, a copy of each (trace_max room) */
    size_t ntraces;      /* delivery tests this alone when nothing is traced */
};

/* ---- broker.c ---- */

/* Save the cursors of every connection that moved (batched: at the end of a
 * loop turn, and before a publisher is answered, so it reads its writes). */
void broker_cursors_save(broker *b);
/* The stream of 'cn' on this node ended (stream.c), 'flushed' if its output
 * still goes out (a clean end) rather than being dropped: save its cursors
 * now and say in the store it is attached here no more. */
void broker_conn_detached(broker *b, conn *cn, bool flushed);
/* Forget a connection here: its stream ends, it leaves every list, it is
 * freed. The store is not touched. */
void broker_conn_forget(broker *b, conn *cn);

/* The memory bound: note a message appended to a channel's log, and forget a
 * channel (deleted here); evict while over max_memory (policy evict). */
void broker_memory_note(broker *b, chan *ch, uint64_t seq);
/* The messages of 'ch' up to id 'seq' left its history for its retention:
 * off the notes and, when its log holds no more than the history (no
 * connections), off the stored log. */
void broker_memory_retained(broker *b, chan *ch, uint64_t seq);
void broker_memory_forget(broker *b, chan *ch);
void broker_memory_check(broker *b);

/* Forget a channel here: its streams end. The store is not touched. */
void broker_chan_drop(broker *b, chan *ch);
/* A channel new to this node, with 'opts', into the map. NULL on OOM. */
chan *broker_chan_add(broker *b, const char *name, const chan_opts *opts);
/* A message reached this node for a channel (the store has it): history, live
 * streams, and the connections attached here. Seen ids are skipped. */
void broker_chan_deliver(broker *b, chan *ch, msg *m);
/* ... for one connection (m->own: in its own log). */
void broker_conn_deliver(broker *b, conn *cn, msg *m);
/* Read what waits for 'cn' from the store (its cursors may have moved on
 * another node, messages may have been missed), then give it to the stream
 * attached here while the listener runs. */
void broker_conn_reload(broker *b, conn *cn);

/* Where a subscriber resuming after 'last_id' starts in the history of 'ch'
 * (an index), and whether it missed messages ch retains no more ('*gap'). */
size_t broker_resume_at(const broker *b, const chan *ch, const char *last_id, bool *gap);
/* Write BROKER_GAP_EVENT to 's': its client resumed after 'last_id' and
 * missed messages; 'first_retained' is the oldest id still there (NULL:
 * none). */
void broker_send_gap(stream *s, const char *last_id, const char *first_retained);
/* Resume 's' (a plain or a topic stream, just opened) after the client's
 * 'last_id': the gap event if it missed messages, then the replay. For an id
 * newer than any this node has seen, the store is asked first (its last id)
 * and the stream writes nothing at or below 'last_id' meanwhile. */
void broker_stream_resume(broker *b, stream *s, const char *last_id);
/* 's' ends: a read for its resume under way lets go of it. */
void broker_resume_forget(stream *s);

/* ---- broker_publish.c ---- */

/* Answer the publishes this node has now delivered, or waited long enough
 * for; 'all': every one, whatever it waits for. */
void broker_pubs_release(broker *b, bool all);
/* Start and stop the timer that answers publishes waiting too long. */
int broker_publish_init(broker *b);
void broker_publish_free(broker *b);

/* ---- broker_idle.c ---- */

/* 'ch' is in use now (created, published to, a stream opened): its idle time
 * starts again, and the store hears of this node's streams on it. */
void broker_chan_used(broker *b, chan *ch);
/* Start and stop the sweep. */
int broker_idle_init(broker *b);
void broker_idle_free(broker *b);
int broker_history_init(broker *b);
void broker_history_free(broker *b);

/* ---- broker_session.c ---- */

/* Ask the sink of 's' who its client is (before it opens). */
void broker_session_peer(stream *s);
/* 's' opened: tell its client its session id, archive it, publish "joined". */
void broker_session_joined(broker *b, stream *s);
/* 's' ends: archive its end, publish "left". */
void broker_session_left(broker *b, stream *s);
/* Start and stop the archive's bound and the publisher. */
int broker_sessions_init(broker *b);
void broker_sessions_free(broker *b);

/* ---- broker_topic.c ---- */

/* A message was delivered to 'ch' here: give it to every topic stream that
 * listens to the channel (by its name, or a pattern) and may read it. */
void broker_topic_deliver(broker *b, chan *ch, msg *m);
/* 's', a topic stream, ends: it leaves the name map and the pattern list. */
void broker_topic_unlink(broker *b, stream *s);
/* Replay to the topic stream 's' what its channels hold after 'last_id',
 * merged in id order, after the gap event if any of them lost messages after
 * it. */
void broker_topic_replay(broker *b, stream *s, const char *last_id);
/* Free a topic (NULL is fine). */
void broker_topic_free(struct topic *tp);
/* Its exact names and patterns, joined by ','. */
const char *broker_topic_label(const struct topic *tp);
/* Start and stop the topic map. */
void broker_topics_init(broker *b);
void broker_topics_free(broker *b);

/* ---- broker_trace.c ---- */

/* 'm' was delivered on 'ch' here (published to the connection 'target'
 * alone, or to the whole channel when NULL) to 'streams' live streams and the
 * streams of 'connections' durable connections: record it in every running
 * trace that matches. Called only while b->ntraces is not 0. */
void broker_trace_note(broker *b, const chan *ch, const conn *target, const msg *m,
                       uint64_t streams, uint64_t connections);
/* Another node started, stopped or deleted the trace 'id': read it again. */
void broker_trace_remote(broker *b, const char *id);
/* Read every trace again (start-up, a subscription back). */
void broker_traces_reload(broker *b);
/* Make and free the trace repository and the copy kept here. */
int broker_traces_init(broker *b);
void broker_traces_free(broker *b);

/* ---- broker_stats.c ---- */

/* A stream on 'channel' was cut for not reading: remembered for sys.stats. */
void broker_stats_slow(broker *b, const char *channel);
/* Start and stop the timer. */
int broker_stats_init(broker *b);
void broker_stats_free(broker *b);

/* ---- broker_cluster.c ---- */

/* Tell the other nodes that 'kind' ("c" channel, "n" connection, "l"
 * listener, "a" attached here) of 'chan_name' ('conn_id') changed to 'what'. */
void broker_announce(broker *b, const char *kind, const char *chan_name,
                     const char *conn_id, const char *what);
/* Every notification of the store (kv_notify_cb), this node's own included. */
void broker_on_notify(const char *topic, const char *data, size_t len, void *arg);
/* Notifications that arrive while stored state is read back wait until it is
 * (b->catching_up counts the reads); one read is over: after the last, deliver
 * what waited. */
void broker_catchup_step(broker *b);
/* Drop what is held (at exit). */
void broker_held_free(broker *b);

#endif
