/* stream.h - a live stream as the broker holds it: one subscriber's open
 * EventSource, written through its sink. Private to src/broker.
 *
 * A stream belongs to a channel (a plain subscriber), to a connection's
 * listener, or to no channel: a multi-channel stream (its topic, see
 * broker_topic.c) listens to exact names and patterns. It writes shared, already-encoded
 * message frames (msg.h) and never writes a message twice. */
#ifndef STREAM_H
#define STREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "src/broker/sink.h"
#include "src/domain/chan.h"
#include "src/domain/msg.h"
#include "src/domain/names.h"
#include "src/domain/policy.h"
#include "src/domain/session.h"

struct broker;
struct topic;

typedef struct stream {
    struct broker *b;
    sink *sk;                      /* where it writes; NULL once the client is gone */
    chan *ch;                      /* holds a reference; NULL for a topic stream */
    struct topic *tp;              /* a multi-channel stream's (owned), or NULL */
    conn *cn;                      /* NULL for a plain channel subscriber */
    uint64_t last_seq;             /* highest seq written: never write one twice */
    struct resume_read *resume;    /* its resume waiting for the store (broker.c) */
    char *reader;                  /* owned strpair: authid, authrole; NULL: anonymous */
    int method;                    /* AUTHMETHOD_* */
    bool envelope;                 /* write enveloped frames (msg_envelope) */
    char session[CONN_ID_LEN + 1]; /* its session id: random, unique cluster-wide */
    TAILQ_ENTRY(stream)
    link;                    /* in ch->streams (plain subscribers) */
    TAILQ_ENTRY(stream) all; /* in the broker's list of every stream */

    /* Its session, as broker_session.c archives it. Every live stream has
     * one, so it is kept small (136 bytes, malloc's 144-byte class): its
     * reader's strings, and its client's address and User-Agent, are pairs
     * in one allocation each (strpair_set, util.h), read with
     * stream_authid() ... stream_agent(). */
    int64_t joined_at; /* when it opened (us since the epoch) */
    char *peer;        /* owned strpair: the address, the User-Agent; or NULL */
} stream;

/* Link a new stream on 'sk' into 'ch' (or attach it to 'cn's listener) and
 * open the sink with the channel's retry; 'who' (copied; NULL: anonymous)
 * reads it. With 'ch' NULL, a topic stream of 'tp' (taken, even on failure;
 * broker_topic.c links it) with the default retry. NULL on OOM ('sk'
 * untouched). */
stream *stream_open(struct broker *b, sink *sk, chan *ch, conn *cn, struct topic *tp,
                    const identity *who);

/* Its reader's authid and authrole (NULL: anonymous, none), its client's
 * address as the sink said it ("" when unknown), and its User-Agent (NULL
 * when none). Borrowed from the stream. */
const char *stream_authid(const stream *s);
const char *stream_authrole(const stream *s);
const char *stream_remote(const stream *s);
const char *stream_agent(const stream *s);

/* The channel a stream is on, as its session shows it: a topic stream's
 * exact names and patterns joined by ','. */
const char *stream_channel(const stream *s);

/* Write one message (skipped if its seq was already written, or if it is
 * targeted and its reader is not eligible: see target.h; a connection's
 * stream is matched by the connection's owner and role, and its own session);
 * its enveloped frame if the stream wants the envelope (made on first use,
 * once per message).
 * Returns 0, or -1 if the stream was aborted because the client does not keep
 * up (it is freed then). */
int stream_send(stream *s, msg *m);
/* The same for a message of the channel 'ch' (a topic stream's: always in its
 * envelope). */
int stream_send_on(stream *s, const chan *ch, msg *m);

/* Write an SSE comment (heartbeat). */
void stream_comment(stream *s, const char *text);

/* Write an event without an id (the client's Last-Event-ID stays): one of
 * the broker's own, such as "session" or "sys.gap". 'data' holds no CR or
 * LF. */
void stream_event(stream *s, const char *type, const char *data);

/* Drop the client at once, unsent output and all, then unlink and free.
 * 'why': BROKER_END_* (broker.h), counted. */
void stream_abort(stream *s, int why);

/* End the response cleanly, unlink and free the stream ('why' as above). */
void stream_close(stream *s, int why);

#endif
