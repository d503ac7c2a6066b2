/* stream.h - a live SSE response: one subscriber's open EventSource.
 *
 * A stream writes shared, already-encoded message frames to one HTTP response
 * without copying them (each frame is referenced, see msg.h). It belongs to a
 * channel (a plain subscriber) or to a connection's listener. */
#ifndef STREAM_H
#define STREAM_H

#include <stdint.h>
#include <sys/queue.h>

#include "src/domain/chan.h"
#include "src/http/httpd.h"
#include "src/domain/msg.h"

struct broker;

typedef struct stream {
    struct broker *b;
    httpd_req *req;           /* NULL once the client is gone */
    chan *ch;                 /* holds a reference */
    conn *cn;                 /* NULL for a plain channel subscriber */
    uint64_t last_seq;        /* highest seq written: never write one twice */
    int chunked;              /* HTTP/1.1: frames go out chunk-framed */
    TAILQ_ENTRY(stream) link; /* in ch->streams (plain subscribers) */
    TAILQ_ENTRY(stream) all;  /* in the broker's list of every stream */
} stream;

/* Start the SSE response on 'req' (status 200, event-stream headers, the
 * retry: line and an opening comment) and link the stream into 'ch' (or
 * attach it to 'cn's listener). NULL on OOM, after answering 503. */
stream *stream_open(struct broker *b, httpd_req *req, chan *ch, conn *cn);

/* Write one message (skipped if its seq was already written). Returns 0, or
 * -1 if the stream was closed because the client does not keep up. */
int stream_send(stream *s, msg *m);

/* Write an SSE comment (heartbeat). */
void stream_comment(stream *s, const char *text);

/* Close the client's connection at once, dropping unsent output, then unlink
 * and free the stream. */
void stream_abort(stream *s);

/* End the response cleanly, unlink and free the stream. */
void stream_close(stream *s);

#endif
