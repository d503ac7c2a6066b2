/* sink.h - where the broker writes a live stream: a small interface the
 * transport implements (src/http/http_stream.c), in the way Redis'
 * ConnectionType hides sockets and TLS from the rest of the server.
 *
 * The broker decides (may this stream open, what it carries, when it ends);
 * the sink only writes. Life of a sink:
 *   - the transport makes it and hands it to broker_subscribe() or
 *     broker_attach(), which open it (sink_open) or refuse it (then the
 *     transport still owns it and answers the client itself);
 *   - while the broker holds it, the broker writes to it and ends it
 *     (sink_end, sink_abort), which frees it; or the client goes away first,
 *     and the transport calls broker_sink_closed() before freeing it; or
 *     the transport asks for a clean end (broker_sink_finish), which the
 *     broker makes as its own.
 * A sink is never used by the broker after either of those. */
#ifndef SINK_H
#define SINK_H

#include <stdbool.h>
#include <stddef.h>

#include "src/domain/msg.h"

struct stream;
typedef struct sink sink;

enum {
    SINK_EFULL = -1 /* the client leaves more than its bound unread */
};

typedef struct sink_ops {
    /* Start the stream: the client sees it open, with 'retry_ms' as its
     * reconnection delay. */
    void (*open)(sink *s, int retry_ms);
    /* Write one message's frame (the sink copies it, or takes a msg reference
     * for as long as it keeps it, and counts what that costs against its
     * bound); with 'envelope', its enveloped frame (made already:
     * msg_envelope). Returns 0, or SINK_EFULL when the client does not keep
     * up: nothing was written, and the broker aborts it. */
    int (*send)(sink *s, msg *m, bool envelope);
    /* Write an SSE comment line (": text"). */
    void (*comment)(sink *s, const char *text);
    /* Write an event without an id ("event: type", one "data: data" line):
     * the client's Last-Event-ID stays as it was. 'data' holds no CR or LF. */
    void (*event)(sink *s, const char *type, const char *data);
    /* Describe the client, before open: its address ("ip:port", "[ip6]:port")
     * and User-Agent into 'remote' and 'agent', NUL-terminated and cut to
     * fit ("" when unknown). NULL: nothing is known of it. */
    void (*peer)(sink *s, char *remote, size_t rlen, char *agent, size_t alen);
    /* Bytes written to the stream that the socket has not taken yet. */
    size_t (*pending)(sink *s);
    /* End the stream cleanly (the client sees its response end); frees 's'. */
    void (*end)(sink *s);
    /* Drop the client at once, unsent output and all; frees 's'. */
    void (*abort)(sink *s);
} sink_ops;

/* The base every sink embeds as its first member. */
struct sink {
    const sink_ops *ops;
    struct stream *stream; /* the broker's stream while it holds the sink, else NULL */
};

static inline void sink_open(sink *s, int retry_ms)
{
    s->ops->open(s, retry_ms);
}

static inline int sink_send(sink *s, msg *m, bool envelope)
{
    return s->ops->send(s, m, envelope);
}

static inline void sink_comment(sink *s, const char *text)
{
    s->ops->comment(s, text);
}

static inline void sink_event(sink *s, const char *type, const char *data)
{
    s->ops->event(s, type, data);
}

static inline void sink_peer(sink *s, char *remote, size_t rlen, char *agent, size_t alen)
{
    remote[0] = agent[0] = '\0';
    if (s->ops->peer)
        s->ops->peer(s, remote, rlen, agent, alen);
}

static inline size_t sink_pending(sink *s)
{
    return s->ops->pending(s);
}

static inline void sink_end(sink *s)
{
    s->ops->end(s);
}

static inline void sink_abort(sink *s)
{
    s->ops->abort(s);
}

#endif
