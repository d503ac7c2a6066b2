/* msg.h - a published message: immutable once made, shared by reference count.
 *
 * One message fanned out to N streams and queues is encoded once (its SSE frame,
 * already framed as an HTTP/1.1 chunk, is built in msg_new) and referenced N
 * times, never copied. */
#ifndef MSG_H
#define MSG_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

typedef struct msg {
    int refs;
    uint64_t seq; /* numeric form of the id */
    uint64_t pos; /* its position in its log (its channel's, or for a message to
                     one connection, that connection's): 1 for the first, 0 if
                     unknown */
    int own;      /* 1: published to one connection (pos is in its own log) */
    char id[21];  /* decimal id, what clients see */
    char *event;  /* NULL if none */
    char *data;   /* NUL-terminated, data_len bytes */
    size_t data_len;
    int64_t ts_us; /* publish time, microseconds since the epoch */
    int retry;     /* -1 if none */
    char *frame;   /* the SSE frame, frame_len bytes (inside 'chunk') */
    size_t frame_len;
    char *chunk; /* the frame with HTTP/1.1 chunk framing around it, owned */
    size_t chunk_len;
    char *json; /* msg_json_text(), made on first use; owned */
    size_t json_len;
} msg;

/* A new message with one reference; copies its inputs. NULL on OOM. */
msg *msg_new(uint64_t seq, const char *event, const char *data, size_t data_len,
             int64_t ts_us, int retry);
msg *msg_ref(msg *m);
/* Drop a reference; the last one frees. NULL is fine. */
void msg_unref(msg *m);

/* What every message alive in this process takes, in real bytes (allocator
 * overhead included): in histories, queues, and socket buffers. Messages are
 * made and freed on the event loop's thread only. */
size_t msg_live_bytes(void);

/* The API form: {"id", "event" (or null), "data", "timestamp" [, "retry"]}.
 * New reference, NULL on OOM. */
json_t *msg_to_json(const msg *m);

/* The stored form as compact text: the API form with "pos" after "id" when
 * the position is known. Made once per message and kept with it (borrowed:
 * valid while the message is). NULL on OOM. */
const char *msg_json_text(const msg *m, size_t *len);

/* The msg_to_json() text of a message not numbered yet, from just past its
 * position on: MSG_JSON_HEAD + id + MSG_JSON_MID + pos + the result is the
 * whole text (the store fills in the id and position, see kv_append). Caller
 * frees; NULL on OOM. */
#define MSG_JSON_HEAD "{\"id\":\""
#define MSG_JSON_MID "\",\"pos\":"
char *msg_json_tail(const char *event, const char *data, size_t data_len, int64_t ts_us,
                    int retry, size_t *len);

/* Rebuild a message from msg_to_json() text. NULL if the text is not one. */
msg *msg_from_json(const char *text, size_t len);
/* Its two halves, for tests: the fast reader of exactly the layout
 * msg_json_tail() and jansson write (NULL for anything else), and jansson. */
msg *msg_from_json_fast(const char *text, size_t len);
msg *msg_from_json_jansson(const char *text, size_t len);

#endif
