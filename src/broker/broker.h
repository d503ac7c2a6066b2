/* broker.h - the broker: the live channel map and every state change.
 *
 * Each change is applied to the in-memory domain objects (src/domain) and
 * written through the repositories (repo/), so that a restart on a persistent
 * store rebuilds the same state. Message ids are allocated by the store, and
 * every node sharing it (this one too) delivers from the store's
 * notifications, so the id order is the delivery order everywhere.
 *
 * The broker knows no HTTP: it decides (may this stream open, which reason if
 * not) and writes live streams through sinks (sink.h) that the transport
 * implements; the transport answers the client.
 *
 * Errors: functions return 0 or a negative code, either a BROKER_E* below or a
 * KV_E* of the store (kv/kv.h); the two ranges do not overlap. */
#ifndef BROKER_H
#define BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "kv/kv.h"
#include "src/base/prom.h"
#include "src/broker/sink.h"
#include "src/domain/chan.h"
#include "src/domain/hquery.h"
#include "src/domain/pattern.h"
#include "src/domain/policy.h"
#include "src/domain/publish.h"
#include "src/domain/session.h"
#include "src/domain/trace.h"

struct event_base;
typedef struct broker broker;

enum {
    BROKER_ENOCHAN = -100, /* no such channel (or it was deleted meanwhile) */
    BROKER_ENOCONN = -101, /* no such connection (or it was deleted meanwhile) */
    BROKER_ENOMEM = -102,
    BROKER_EINVAL = -103,   /* bad options or arguments */
    BROKER_ELIMIT = -104,   /* a limit is reached: try again later */
    BROKER_ECLOSING = -105, /* shutting down */
    BROKER_EPENDING = -106, /* not known here yet: the store is asked, the
                               callback says */
    BROKER_EFULL = -107,    /* the memory bound is reached (policy reject) */
    BROKER_EEXIST = -108    /* a trace with that id exists */
};

/* What the broker does when retained messages reach max_memory. */
enum {
    BROKER_MEM_REJECT, /* refuse publishes (BROKER_EFULL) until there is room */
    BROKER_MEM_EVICT   /* evict the oldest retained messages, across channels */
};

/* Human-readable text for a BROKER_E* or KV_E* code. Never NULL. */
const char *broker_strerror(int code);

/* The name of a BROKER_MEM_* policy ("reject", "evict"), and back (-1: none). */
const char *broker_memory_policy_name(int mem_policy);
int broker_memory_policy_parse(const char *name);

/* A retention rule (config "retention"): a new channel whose name 'match'
 * matches (pattern.h) gets these as its defaults; -1: the default's own. */
typedef struct broker_retention {
    char match[PATTERN_MAX + 1];
    int history, history_age_s, history_bytes;
} broker_retention;
#define BROKER_RETENTION_MAX 64 /* rules */

/* What the broker needs to know of the configuration. */
typedef struct broker_opts {
    chan_opts defaults; /* options of channels created without any */
    broker_retention retention[BROKER_RETENTION_MAX]; /* the first match overlays */
    size_t nretention;                                /* 'defaults' (above) */
    int max_query_results;           /* messages a history query answers at most */
    bool autocreate;                 /* broker_chan_open(create) may create */
    bool sync;                       /* answer a publish once stored and delivered */
    int max_channels;                /* channels held */
    int max_connections_per_channel; /* persistent connections of a channel */
    int max_streams;                 /* live streams in all */
    int max_streams_per_channel;     /* live streams on one channel */
    int max_patterns_per_stream;     /* names and patterns of a topic stream */
    int max_pattern_streams;         /* topic streams with a pattern, in all */
    size_t max_pattern_bytes;        /* bytes the tree of their patterns may take */
    int heartbeat_s;                 /* seconds between ':' comments on streams */
    int node_ttl_s;                  /* a node offline this long leaves /nodes */
    size_t max_memory;               /* bytes retained messages may take (see
                                        broker_memory_used) */
    int memory_policy;               /* BROKER_MEM_* */
    int idle_ttl_s;                  /* a channel holding nothing this long
                                        expires (0: never) */
    int sessions_retention_s;        /* ended sessions are archived this long */
    int sessions_max;                /* sessions archived (the active always are) */
    bool access_log;                 /* log a line for each stream that ends */
    int trace_max;                   /* traces stored at once */
    trace_bounds trace_bounds;       /* what one trace may ask for */
} broker_opts;

/* Take the limits of 'o' (max_channels, idle_ttl_s, max_streams,
 * max_streams_per_channel, max_patterns_per_stream, max_query_results,
 * max_pattern_streams,
 * max_connections_per_channel, max_memory, memory_policy) for what comes from
 * now on: nothing open is closed for being over a lowered limit (the memory
 * bound applies at the next check). The rest of 'o' is ignored. */
void broker_set_limits(broker *b, const broker_opts *o);
/* Access control changed: topic streams test their channels against 'pol'
 * (borrowed, NULL: none) from now on, so the old policy may go. */
void broker_set_policy(broker *b, const policy *pol);

/* A broker over 'kv' (borrowed; it must outlive the broker). Copies 'opts'.
 * NULL on OOM. */
broker *broker_new(struct event_base *base, const broker_opts *opts, kv_store *kv);
/* Rebuild every channel from the store. Blocks (runs the loop) until done:
 * only for start-up. Returns 0 or -1 with the reason logged. */
int broker_load(broker *b);
/* End every stream cleanly (each client sees its response end). */
void broker_close_streams(broker *b);
/* Shut down gracefully: refuse new publishes (BROKER_ECLOSING), end every
 * stream, let publishes in flight finish, then flush the store and call 'cb'
 * with 0 or the flush's KV_E* error. 'cb' may run before this returns. */
typedef void (*broker_done_cb)(int status, void *arg);
void broker_drain(broker *b, broker_done_cb cb, void *arg);
/* Free everything; streams still open are ended first. NULL is fine. */
void broker_free(broker *b);

/* The options it runs with (borrowed). */
const broker_opts *broker_options(const broker *b);
/* The options a new channel 'name' gets: the defaults, overlaid by the first
 * retention rule whose pattern matches it. */
void broker_chan_defaults(const broker *b, const char *name, chan_opts *out);

/* ---- history queries and retention (broker_history.c) ----
 *
 * A query reads the history this node mirrors of each channel (what its
 * stored log retains, on either store): no key of the store is read. Its
 * work is bounded: at most BROKER_QUERY_CHANNELS_MAX entries of the channel
 * index are visited (exact names are looked up; a pattern walks the index
 * from its literal prefix), and it reads at most BROKER_QUERY_SCAN_MAX
 * messages, as counted before anything is read: a channel whose history is
 * sorted by the query's key (broker_history.c) counts 64 + limit (a search
 * and a page), any other every message it retains (a whole read, which
 * /history/latest always does). A broader query is refused with
 * BROKER_ELIMIT. */
#define BROKER_QUERY_CHANNELS_MAX 10000
#define BROKER_QUERY_SCAN_MAX 2000000

/* One message a query returns, and its channel. Both borrowed: valid until
 * the loop runs on (take a reference to keep them). */
typedef struct broker_hit {
    msg *m;
    chan *ch;
} broker_hit;

/* Who reads: which channels (history and subscribe rights) and which
 * messages (targeted delivery) they may have. NULL callbacks allow all. */
typedef struct broker_reader {
    bool (*may_read)(const char *chan_name, void *arg);
    bool (*may_see)(const msg *m, void *arg);
    void *arg;
} broker_reader;

/* One page of the query 'q' (hquery_finish'ed): the messages after its
 * cursor in its order, at most q->limit, into 'out' (room for q->limit + 1),
 * '*n' of them; '*more' if others follow. Messages older than their
 * channel's history_age_s are not returned, even before the sweep frees
 * them. 0, BROKER_ELIMIT (too broad, see above) or BROKER_ENOMEM. */
int broker_history_query(broker *b, const hquery *q, const broker_reader *rd,
                         broker_hit *out, size_t *n, bool *more);
/* The newest retained message of each (channel, event type) pair 'q'
 * matches (its channels, event types and time ranges), by channel name, at
 * most 'max' into 'out'; '*more' if that cut the answer. As above. */
int broker_history_latest(broker *b, const hquery *q, const broker_reader *rd,
                          broker_hit *out, size_t max, size_t *n, bool *more);
/* Apply the retention of 'ch' (history_age_s at the current time,
 * history_bytes) to its history now: the oldest messages it no longer keeps
 * leave the mirror and, while the channel has no connections (whose queues
 * read the same log), the stored log. A sweep does it every second for every
 * channel with such a bound (at most BROKER_RETAIN_SWEEP channels a
 * second). */
void broker_history_retain(broker *b, chan *ch);
#define BROKER_RETAIN_SWEEP 20000
/* The store the broker runs on (borrowed). */
kv_store *broker_store(broker *b);
/* This process's id among the nodes sharing the store. */
const char *broker_node_id(const broker *b);

typedef struct broker_stats {
    size_t channels;                /* held here */
    size_t streams;                 /* live streams here */
    unsigned long long slow_closed; /* streams cut for not reading */
    unsigned long long refused;     /* streams refused by a limit */
    size_t memory;                  /* broker_memory_used() */
    unsigned long long evicted;     /* messages the memory bound evicted */
    unsigned long long rejected;    /* publishes it refused */
    unsigned long long expired;     /* channels expired for holding nothing */
} broker_stats;
void broker_stats_get(const broker *b, broker_stats *st);

/* Why a live stream ended (its metrics label: broker_end_name). */
enum {
    BROKER_END_CLIENT,   /* the client went away */
    BROKER_END_SLOW,     /* cut: it did not read (stream_buffer) */
    BROKER_END_TOKEN,    /* its token expired */
    BROKER_END_SHUTDOWN, /* the broker shuts down */
    BROKER_END_DELETED,  /* its channel or connection was deleted (or expired) */
    BROKER_END_TAKEOVER, /* another stream attached its connection's listener */
    BROKER_END_ERROR,    /* its connection's queue could not be read */
    BROKER_END_N
};
const char *broker_end_name(int why);

/* What became of a publish request (its metrics label: broker_pub_name). */
enum {
    BROKER_PUB_OK,
    BROKER_PUB_INVALID,     /* a bad request (counted by the transport) */
    BROKER_PUB_NOT_FOUND,   /* no such channel or connection */
    BROKER_PUB_DENIED,      /* refused by access control (counted by the transport) */
    BROKER_PUB_LIMIT,       /* refused by a limit (max_channels: the transport) */
    BROKER_PUB_MEMORY_FULL, /* refused by max_memory */
    BROKER_PUB_STORE_FULL,  /* the store is out of memory */
    BROKER_PUB_STORE_ERROR, /* the store failed or is unreachable */
    BROKER_PUB_SHUTDOWN,    /* the broker shuts down */
    BROKER_PUB_OVERLOADED,  /* delivery is behind (limits.max_delivery_lag_ms: the
                               transport) */
    BROKER_PUB_ERROR,       /* anything else (out of memory here) */
    BROKER_PUB_N
};
const char *broker_pub_name(int result);
/* The BROKER_PUB_* result of a publish that ended with 'status' (0, or a
 * BROKER_E* or KV_E* code). */
int broker_pub_result(int status);
/* Count a publish the transport refused before handing it to the broker. */
void broker_publish_refused(broker *b, int result);

/* Counters for metrics: plain integers the loop's thread increments. */
typedef struct broker_metrics {
    unsigned long long streams_opened;
    unsigned long long streams_closed[BROKER_END_N];
    unsigned long long publishes[BROKER_PUB_N]; /* requests, by result */
    unsigned long long messages_published;      /* messages stored by publishes here */
    unsigned long long messages_delivered;      /* frames handed to live streams */
    unsigned long long bytes_delivered;         /* their bytes (SSE frames) */
    prom_hist publish_seconds; /* a publish: from the call to every message stored */
    size_t connections;        /* durable connections of the channels held here */
    size_t attached;           /* ... with a stream attached on this node */
} broker_metrics;
/* Copy the counters into 'm' (connections are counted: O(channels)). */
void broker_metrics_get(const broker *b, broker_metrics *m);

/* What retained messages take in this process, in real bytes: every live
 * message (histories, queues being drained, socket buffers), what the store
 * holds here (all of it for the memory store, nothing for Redis, which has
 * its own maxmemory), and the eviction notes. Compared with max_memory. */
size_t broker_memory_used(const broker *b);

/* ---- observers ---- */

/* Something above the broker that reacts to messages (the modules,
 * src/module): 'fn' runs for every message delivered here on a channel (not
 * one published to a single connection), once, in id order, after the store
 * numbered it and after its streams got it. 'ch' and 'm' are borrowed for
 * the call; 'fn' may publish (the publish completes later, never inside).
 * One observer; NULL removes it. */
typedef void (*broker_observer_fn)(void *arg, chan *ch, const msg *m);
void broker_set_observer(broker *b, broker_observer_fn fn, void *arg);

/* ---- channels ---- */

/* The channel called 'name', or NULL. Borrowed: valid until the loop runs on
 * (a deletion, here or on another node, frees it). */
chan *broker_chan(broker *b, const char *name);
/* The channel 'name', as every node sees it: the one this node holds, returned
 * at once; else, since another node may have created it a moment ago, the
 * store is asked: NULL with '*why' BROKER_EPENDING, and 'cb' runs once, later,
 * with the channel (status 0), or with BROKER_ENOCHAN when there is none;
 * with 'create' set and the options allowing it (autocreate), one is created
 * then with the default options (or BROKER_ELIMIT, BROKER_ENOMEM). Any other
 * '*why' (BROKER_ENOMEM): no callback. The channel handed to 'cb' is borrowed
 * for the call (chan_ref to keep it). */
typedef void (*broker_chan_cb)(int status, chan *ch, void *arg);
chan *broker_chan_lookup(broker *b, const char *name, bool create, int *why,
                         broker_chan_cb cb, void *arg);
/* Create 'name' with the defaults overlaid by 'opts' (a JSON object or NULL),
 * or update it. Returns the channel, or NULL with '*why' set (BROKER_EINVAL:
 * bad options, BROKER_ELIMIT: max_channels reached, BROKER_ENOMEM) and a
 * message in 'err'; '*created' tells which. Nothing changes on error. */
chan *broker_chan_put(broker *b, const char *name, json_t *opts, bool *created, int *why,
                      char *err, size_t errlen);
/* Delete the channel: its streams end, its connections and history go. */
void broker_chan_delete(broker *b, chan *ch);
/* One page of the channels sorted by name: up to 'limit' of those whose name
 * sorts after 'after' (NULL: from the first) into 'v' (borrowed, as
 * broker_chan()); their number. '*more' tells whether others follow. */
size_t broker_chan_page(broker *b, const char *after, size_t limit, chan **v, bool *more);

/* ---- connections ---- */

/* A connection and what the store says of it (borrowed for the call). */
typedef void (*broker_conn_cb)(int status, conn *cn, void *arg);
typedef void (*broker_info_cb)(int status, const conn_info *ci, void *arg);

/* Create a connection on 'ch' owned by the authid 'owner' with the role
 * 'owner_role' (both copied; NULL: anonymous, none; the role is what targeted
 * delivery matches). Returns 0, and 'cb' runs once, later: with the
 * connection (status 0) once the store has placed its cursor at the end of the
 * channel's log, so that every message published from then on, on any node,
 * is queued for it; or with a KV_E* code (and NULL: nothing was created).
 * Returns BROKER_ELIMIT (the channel holds max_connections_per_channel) or
 * BROKER_ENOMEM, and no callback. */
int broker_conn_create(broker *b, chan *ch, const char *owner, const char *owner_role,
                       broker_conn_cb cb, void *arg);
/* The connection 'id' of 'ch': the one this node holds, returned at once; else
 * the store is asked, as broker_chan_lookup() does (BROKER_EPENDING, then 'cb'
 * with it or BROKER_ENOCONN). */
conn *broker_conn_lookup(broker *b, chan *ch, const char *id, int *why, broker_conn_cb cb,
                         void *arg);
void broker_conn_delete(broker *b, conn *cn);
void broker_conn_set_running(broker *b, conn *cn, bool running);
/* What the store says of 'cn' now (the same on every node): its listener,
 * whether a stream is attached anywhere, what waits and what was dropped.
 * Returns 0 and calls 'cb' once, later; or a negative code. */
int broker_conn_info(broker *b, conn *cn, broker_info_cb cb, void *arg);
/* broker_conn_info() for every connection of 'ch' this node knows, sorted by
 * id: 'cb' gets n ids and their infos (borrowed for the call). */
typedef void (*broker_list_cb)(int status, size_t n, const char (*ids)[CONN_ID_LEN + 1],
                               const conn_info *infos, void *arg);
int broker_conn_list(broker *b, chan *ch, broker_list_cb cb, void *arg);

/* ---- publishing ---- */

/* Publish completion. status: 0, or BROKER_ENOCHAN / BROKER_ENOCONN (the
 * target went away meanwhile), or a negative KV_E* code of the store. 'ids'
 * (n of them, one per message, in order) is borrowed for the call. */
typedef void (*broker_pub_cb)(int status, const uint64_t *ids, size_t n, int64_t ts_us,
                              void *arg);

/* Publish 'batch' (taken: freed by the broker, whatever happens) to the
 * channel, or only to the connection 'conn_id' of it when not NULL. Each
 * message is appended to the store, which numbers it and tells every node
 * (this one too) to deliver it. Returns 0, and then 'cb' runs exactly once,
 * later (never before this returns), with the ids once the store has every
 * message and, with opts.sync, this node has delivered them. Returns
 * BROKER_ECLOSING while shutting down, BROKER_ENOCONN if there is no such
 * connection, BROKER_EINVAL for an empty batch, BROKER_ENOMEM, or the store's
 * KV_E* code if it refused the first message; 'cb' never runs then. */
int broker_publish(broker *b, chan *ch, const char *conn_id, pub_batch *batch,
                   broker_pub_cb cb, void *arg);

/* ---- sessions: every live stream, archived (broker_session.c) ----
 *
 * A stream is a session from the moment it opens: its client is told its id
 * first (an event "session" without id), it is archived in the store (so on
 * every node sharing it) and, unless its channel is a reserved one itself,
 * "joined" is published on SESSION_CHANNEL with its record; when it ends,
 * its end is archived and "left" published. Publishing is batched and
 * bounded: what cannot be published (store down, bound reached) is skipped. */

/* One page of the archive: the sessions matching 'f' whose id sorts after
 * 'after' (NULL: from the first), at most 'limit', sorted by id. 'v' (n of
 * them) is borrowed for the call; 'more' tells whether others follow.
 * Returns 0 and calls 'cb' once, later; or a negative code. */
typedef void (*broker_sessions_cb)(int status, const session *v, size_t n, bool more,
                                   void *arg);
int broker_session_list(broker *b, const session_filter *f, const char *after,
                        size_t limit, broker_sessions_cb cb, void *arg);
/* The session 'id' (status KV_ENOTFOUND and NULL when there is none). */
typedef void (*broker_session_cb)(int status, const session *s, void *arg);
int broker_session_get(broker *b, const char *id, broker_session_cb cb, void *arg);

/* ---- traces (broker_trace.c) ----
 *
 * A trace records, on every node sharing the store, each message delivered on
 * a channel matching one of its patterns until its time is over or it is
 * stopped: what the record holds is trace_record_tail(). Definitions and
 * records live in the store; at most opts.trace_max traces are stored at
 * once (stopped ones count until deleted), each keeping its 'limit' newest
 * records. Each call returns 0 and calls 'cb' once, later; or a negative code
 * and no callback. 't' and the other arguments of a callback are borrowed for
 * the call; a trace that is not there is KV_ENOTFOUND. */
typedef void (*broker_trace_cb)(int status, const trace *t, uint64_t records, void *arg);
typedef void (*broker_traces_cb)(int status, trace *const *v, const uint64_t *records,
                                 size_t n, void *arg);
typedef void (*broker_trace_data_cb)(int status, const kv_item *items, size_t n,
                                     void *arg);
/* Start 't' (taken, even on failure): BROKER_EEXIST if its id is stored,
 * BROKER_ELIMIT if trace_max traces are. */
int broker_trace_start(broker *b, trace *t, broker_trace_cb cb, void *arg);
int broker_trace_get(broker *b, const char *id, broker_trace_cb cb, void *arg);
/* Every stored trace, sorted by id. */
int broker_trace_list(broker *b, broker_traces_cb cb, void *arg);
/* Records numbered above 'after', at most 'limit', oldest first (their text
 * in items[i].val, their number in items[i].id). */
int broker_trace_data(broker *b, const char *id, uint64_t after, size_t limit,
                      broker_trace_data_cb cb, void *arg);
/* Stop it on every node (a trace already over is left as it is); its records
 * stay. */
int broker_trace_stop(broker *b, const char *id, broker_trace_cb cb, void *arg);
/* Remove it and its records (the callback has the trace as it was). */
int broker_trace_delete(broker *b, const char *id, broker_trace_cb cb, void *arg);

/* ---- sys.stats (broker_stats.c) ----
 *
 * While a stream here listens to it (by its name), each node publishes its
 * figures on BROKER_STATS_CHANNEL every second, event type "stats", as a
 * JSON object: {"node", "time", "uptime_s", "channels", "streams",
 * "connections", "attached", "published", "delivered", "publish_rate",
 * "delivery_rate", "memory": {"used", "max"}, "store": {"type", "healthy",
 * "subscribed"}, "slow_disconnects", "recent_slow": [{"time", "channel"}]}.
 * Like sys.sessions it is read-only and comes when first subscribed to. */
#define BROKER_STATS_CHANNEL "sys.stats"
#define BROKER_STATS_SLOW 10 /* slow disconnects it lists, the newest */

/* ---- live streams ---- */

/* The event type a resuming subscriber gets first when it may have missed
 * messages (broker_subscribe). "sys." types are the broker's own: no client
 * publishes one (publish.h). */
#define BROKER_GAP_EVENT "sys.gap"

/* Open a plain subscriber stream on 'ch' through 'sk'; 'last_id' (may be
 * NULL) resumes after that message. When the channel no longer retains what
 * came after it (or the id is unknown), the stream first gets the event
 * BROKER_GAP_EVENT with {"last_event_id", "first_retained"} (no id), then
 * everything retained replays. 'envelope': every message is written in its
 * envelope (msg_envelope).
 * Returns 0: the broker holds 'sk' (see sink.h) and has opened it (or already
 * aborted it: a client too slow to take the replay). Or,
 * 'who' is its reader (copied; NULL: anonymous). Or,
 * leaving 'sk' to the caller, unopened: BROKER_ELIMIT with '*why' saying which
 * limit (the caller sends the subscriber away to retry later), BROKER_ENOMEM. */
int broker_subscribe(broker *b, sink *sk, chan *ch, const char *last_id, bool envelope,
                     const identity *who, const char **why);
/* Open a topic stream (one stream, many channels) on 'sk': every channel
 * named by one of the 'n' 'chans' (exact names, or topic patterns:
 * pattern_topic_valid; at most max_patterns_per_stream, checked by the
 * caller), those created later included. Each message is written in its
 * envelope (msg_envelope), with its broker-wide id, once, in id order.
 * Patterns match the broker's own sys.* channels only if they start with
 * "sys.". With 'pol' (NULL: no access control) a channel's messages reach it
 * only if 'who' may subscribe there, checked per channel as they arrive.
 * 'last_id' (may be NULL) resumes after that id: the messages after it of
 * every matching channel this node holds (where 'who' may also read history),
 * merged in id order; BROKER_GAP_EVENT first when any of them no longer
 * retains what came after it. 'who' is taken (its fields, zeroed), even on
 * failure; 'pol' is borrowed and must outlive the stream. Returns as
 * broker_subscribe() (BROKER_ELIMIT: max_streams, or max_pattern_streams). */
int broker_subscribe_topics(broker *b, sink *sk, const char *const *chans, size_t n,
                            const char *last_id, identity *who, const policy *pol,
                            const char **why);
/* Attach 'sk' to the listener of 'cn' (ending the stream attached before, here
 * or on another node) and drain its queue into it while the listener runs.
 * Returns as broker_subscribe(). */
int broker_attach(broker *b, sink *sk, conn *cn, const identity *who, const char **why);
/* The client behind 'sk' went away: the broker forgets its stream and never
 * uses 'sk' again. Called by the transport before it frees 'sk'. */
void broker_sink_closed(sink *sk);
/* The transport wants the stream of 'sk' ended cleanly (its client's access
 * ran out): 'why' (may be NULL) as a comment, then the end, as the broker
 * ends streams (sink_end frees 'sk'). Nothing if the broker holds it no more. */
void broker_sink_finish(sink *sk, const char *why);
/* Everything written to 'sk' has reached the socket: what a connection was
 * given there is saved as given. Called by the transport; ends nothing. */
void broker_sink_drained(sink *sk);

#endif
