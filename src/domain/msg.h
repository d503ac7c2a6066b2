/* msg.h - a published message: immutable once made, shared by reference count.
 *
 * One message fanned out to N streams and queues is encoded once (its SSE frame,
 * already framed as an HTTP/1.1 chunk, is built in msg_new) and referenced N
 * times, never copied.
 *
 * Memory: a message is one allocation: the struct, then its data, its event
 * type and its chunk-framed frame, one after the other (a history of 100,000
 * messages is 100,000 allocations, not three or four times that). What is
 * made later, on first use (the enveloped frame, the stored JSON text), is
 * one allocation each, hung off the message. */
#ifndef MSG_H
#define MSG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <jansson.h>

#include "src/domain/target.h"

/* msg_envelope(): the enveloped SSE frame, chunk-framed as a message's chunk
 * is, in one allocation. */
typedef struct msg_env {
    size_t chunk_len, frame_len;
    const char *frame; /* inside 'chunk' */
    char chunk[];
} msg_env;

typedef struct msg {
    int refs;
    int retry;         /* -1 if none */
    uint64_t seq;      /* numeric form of the id */
    uint64_t pos;      /* its position in its log (its channel's, or for a message to
                          one connection, that connection's): 1 for the first, 0 if
                          unknown */
    int64_t ts_us;     /* publish time, microseconds since the epoch */
    int64_t src_ts_us; /* the publisher's own time (us), MSG_NO_SOURCE_TS if none */
    const char *event; /* NULL if none; else inside the message's allocation */
    const char *frame; /* the SSE frame, frame_len bytes (inside 'chunk') */
    const char *chunk; /* the frame with HTTP/1.1 chunk framing around it, inside
                          the message's allocation */
    size_t data_len;
    size_t frame_len, chunk_len;
    char *json;   /* msg_json_text(), made on first use; owned */
    msg_env *env; /* msg_envelope(), made on first use; owned */
    /* Its publication record (who published it, the targeting lists), owned,
     * NULL if there is none (anonymous and untargeted); 'tg' is the same
     * record when it names receivers, else NULL: the one test delivery makes
     * per receiver for an untargeted message. */
    target_rec *pub;
    const target_rec *tg;
    unsigned char own;     /* 1: published to one connection (pos is in its own log) */
    unsigned char is_json; /* 1: published as a JSON value that is no string (the
                              data is its compact text), 0: as a string or a raw
                              body */
    char id[21];           /* decimal id, what clients see */
    char data[];           /* data_len bytes, NUL-terminated; then the event type
                              and the chunk */
} msg;

/* No source timestamp (msg.src_ts_us). A given one is 0..MSG_SOURCE_TS_MAX. */
#define MSG_NO_SOURCE_TS INT64_MIN
#define MSG_SOURCE_TS_MAX 9007199254740991LL /* 2^53 - 1: exact in JavaScript */

/* A new message with one reference; copies its inputs. No source timestamp
 * and not JSON: set src_ts_us and is_json before the message is shared. NULL
 * on OOM. */
msg *msg_new(uint64_t seq, const char *event, const char *data, size_t data_len,
             int64_t ts_us, int retry);
/* Hang the publication record 'pub' off 'm' (taken: freed with the message,
 * even if 'm' is NULL), before the message is shared. */
void msg_set_pub(msg *m, target_rec *pub);
msg *msg_ref(msg *m);
/* The bytes 'm' holds in memory: its allocation (the struct, its data, event
 * type and chunk-framed frame) and every buffer it owns (its JSON text and
 * envelope once made, its publication record), each with the allocator's
 * header. What a reference keeps alive if it is the last. */
size_t msg_footprint(const msg *m);
/* Drop a reference; the last one frees. NULL is fine. */
void msg_unref(msg *m);

/* What every message alive in this process takes, in real bytes (allocator
 * overhead included): in histories, queues, and socket buffers. Messages are
 * made and freed on the event loop's thread only. */
size_t msg_live_bytes(void);

/* What 'm' counts for a history's byte bound (chan_opts.history_bytes): its
 * data and its event type, in bytes. */
static inline size_t msg_payload_bytes(const msg *m)
{
    return m->data_len + (m->event ? strlen(m->event) : 0);
}

/* Whether a receiver may have 'm' (targeted delivery, target.h). */
static inline int msg_allows(const msg *m, const target_rcv *r)
{
    return !m->tg || target_allows(m->tg, r);
}

/* The API form: {"id", "event" (or null), "data", "timestamp"
 * [, "source_timestamp"] [, "retry"]}.
 * Never the publication record. New reference, NULL on OOM. */
json_t *msg_to_json(const msg *m);

/* Make the message's enveloped frame (m->env), once: the same
 * id, event type and retry, with the data a JSON envelope
 * {"channel": 'channel', "data": ..., "timestamp": ts_us
 * [, "source_timestamp": src_ts_us]}, where "data" is msg_data_json().
 * Shared by every stream that wants the envelope (m->env) and counted in
 * msg_footprint. 0, or -1 on OOM. */
int msg_envelope(const msg *m, const char *channel);

/* The data as published: the JSON value for a message published as one
 * (is_json), else the text as a JSON string. New reference, NULL on OOM. */
json_t *msg_data_json(const msg *m);

/* The stored form as compact text: the API form with "pos" after "id" when
 * the position is known, "json": true after the timestamps for a message
 * published as JSON, and "publication" (target_to_json) last when the
 * message has a record. Made once per message and kept with it (borrowed:
 * valid while the message is). NULL on OOM. */
const char *msg_json_text(const msg *m, size_t *len);

/* The length of the API form's compact text (json_dumps of msg_to_json(),
 * JSON_COMPACT: no "pos"), computed without making it. With 'disclose' (the
 * reader's role has disclose_publisher), the text has "publisher_authid"
 * last when the publisher had one: msg_json_len_for and the cursor's
 * 'disclose' say so. */
size_t msg_json_len(const msg *m);
size_t msg_json_len_for(const msg *m, int disclose);

/* That text written a piece at a time, for answers too large to build at
 * once: a cursor starts zeroed; each call appends to 'out' the next bytes
 * that fit in 'room' and returns how many (0 once the text is complete, see
 * msg_json_done). 'room' of MSG_JSON_PIECE_MIN or more always makes progress.
 * The pieces, joined, are exactly that text. */
typedef struct msg_json_cursor {
    int part;     /* 0 head, 1 data, 2 tail, 3 done */
    size_t off;   /* bytes of data written */
    int disclose; /* set by the caller: add "publisher_authid" (see above) */
} msg_json_cursor;
#define MSG_JSON_PIECE_MIN                                                               \
    1664 /* the head with a 200-byte event, or the tail with a 256-byte                  \
            publisher authid, escaped */
size_t msg_json_piece(const msg *m, msg_json_cursor *c, char *out, size_t room);
static inline int msg_json_done(const msg_json_cursor *c)
{
    return c->part == 3;
}

/* The msg_json_text() of a message not numbered yet, from just past its
 * position on: MSG_JSON_HEAD + id + MSG_JSON_MID + pos + the result is the
 * whole text (the store fills in the id and position, see kv_append).
 * msg_json_tail_pub adds the publication record 'pub' (may be NULL). Caller
 * frees; NULL on OOM. */
#define MSG_JSON_HEAD "{\"id\":\""
#define MSG_JSON_MID "\",\"pos\":"
char *msg_json_tail(const char *event, const char *data, size_t data_len, int64_t ts_us,
                    int retry, size_t *len);
char *msg_json_tail_pub(const char *event, const char *data, size_t data_len,
                        int64_t ts_us, int retry, const target_rec *pub, size_t *len);
/* The same with a source timestamp (MSG_NO_SOURCE_TS: none) and the JSON
 * flag (msg.is_json). */
char *msg_json_tail_src(const char *event, const char *data, size_t data_len,
                        int64_t ts_us, int64_t src_ts_us, int is_json, int retry,
                        const target_rec *pub, size_t *len);

/* Rebuild a message from msg_to_json() text. NULL if the text is not one. */
msg *msg_from_json(const char *text, size_t len);
/* Its two halves, for tests: the fast reader of exactly the layout
 * msg_json_tail() and jansson write (NULL for anything else), and jansson. */
msg *msg_from_json_fast(const char *text, size_t len);
msg *msg_from_json_jansson(const char *text, size_t len);

/* 's' (its 'len' bytes) as a JSON string literal at 'p', escaped as
 * json_dumps() does (room: 6 * len + 2); returns the end. For text written
 * by hand on hot paths. */
char *msg_json_quote(char *p, const char *s, size_t len);

#endif
