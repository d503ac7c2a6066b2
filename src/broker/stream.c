/* stream.c - live streams: the broker's side of a sink. */
#include "src/broker/stream.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "src/base/log.h"
#include "src/base/util.h"
#include "src/broker/broker_private.h"

stream *stream_open(broker *b, sink *sk, chan *ch, conn *cn, struct topic *tp,
                    const identity *who)
{
    stream *s = calloc(1, sizeof(*s));
    if (!s) {
        broker_topic_free(tp);
        return NULL;
    }
    if (who && strpair_set(&s->reader, who->authid, who->authrole) < 0) {
        free(s);
        broker_topic_free(tp);
        return NULL;
    }
    s->method = who ? who->method : AUTHMETHOD_ANONYMOUS;
    conn_id_generate(s->session);
    s->b = b;
    s->sk = sk;
    s->ch = ch ? chan_ref(ch) : NULL;
    s->tp = tp;
    s->cn = cn;
    sk->stream = s;
    TAILQ_INSERT_TAIL(&b->all, s, all);
    b->nstreams++;
    b->m.streams_opened++;
    if (tp) {
        s->envelope = true;
    } else if (cn) {
        cn->lis.stream = s;
        ch->nattached++;
    } else {
        TAILQ_INSERT_TAIL(&ch->streams, s, link);
        ch->nstreams++;
    }
    if (ch)
        broker_chan_used(b, ch);
    broker_session_peer(s); /* before open: the transport may let its request go */
    sink_open(sk, ch ? ch->opts.retry_ms : b->opts.defaults.retry_ms);
    broker_session_joined(b, s);
    return s;
}

const char *stream_authid(const stream *s)
{
    return strpair_first(s->reader);
}

const char *stream_authrole(const stream *s)
{
    return strpair_second(s->reader);
}

const char *stream_remote(const stream *s)
{
    const char *r = strpair_first(s->peer);
    return r ? r : "";
}

const char *stream_agent(const stream *s)
{
    return strpair_second(s->peer);
}

const char *stream_channel(const stream *s)
{
    return s->ch ? s->ch->name : broker_topic_label(s->tp);
}

/* Whether the reader of 's' may have the targeted message 'm': its session,
 * and its identity, or for a stream attached to a connection, the
 * connection owner's. */
static bool stream_eligible(const stream *s, const msg *m)
{
    target_rcv r = {s->session, s->cn ? s->cn->owner : stream_authid(s),
                    s->cn ? s->cn->owner_role : stream_authrole(s)};
    return target_allows(m->tg, &r);
}

int stream_send_on(stream *s, const chan *ch, msg *m)
{
    if (!s->sk || m->seq <= s->last_seq)
        return 0;
    if (m->tg && !stream_eligible(s, m))
        return 0; /* not for this reader: passed over, as if written */
    if (s->envelope && msg_envelope(m, ch->name) < 0) {
        log_error("stream on '%s' cut: out of memory making an envelope", ch->name);
        stream_abort(s, BROKER_END_ERROR); /* the client comes back and resumes */
        return -1;
    }
    if (sink_send(s->sk, m, s->envelope) == SINK_EFULL) {
        log_debug("stream on '%s' cut: client is not reading", stream_channel(s));
        s->b->slow_closed++;
        broker_stats_slow(s->b, stream_channel(s));
        stream_abort(s, BROKER_END_SLOW);
        return -1;
    }
    s->b->m.messages_delivered++;
    s->b->m.bytes_delivered += s->envelope ? m->env->frame_len : m->frame_len;
    s->last_seq = m->seq;
    return 0;
}

int stream_send(stream *s, msg *m)
{
    return stream_send_on(s, s->ch, m);
}

void stream_comment(stream *s, const char *text)
{
    if (s->sk)
        sink_comment(s->sk, text);
}

void stream_event(stream *s, const char *type, const char *data)
{
    if (s->sk)
        sink_event(s->sk, type, data);
}

/* Unlink from the broker and the channel, and free. 'flushed': what was
 * written to it still reaches the client; 'why': BROKER_END_*. */
static void stream_free(stream *s, bool flushed, int why)
{
    broker *b = s->b;
    b->m.streams_closed[why]++;
    if (b->opts.access_log) {
        log_field f[] = {
            LOG_STR("channel", s->ch->name),
            LOG_STR("connection", s->cn ? s->cn->id : NULL),
            LOG_STR("session", s->session),
            LOG_STR("remote", strpair_first(s->peer)),
            LOG_NUM("lifetime_s", (double)(now_us() - s->joined_at) / 1e6),
            LOG_STR("reason", broker_end_name(why)),
        };
        log_fields(LOG_INFO, f, sizeof(f) / sizeof(f[0]), "stream end");
    }
    broker_session_left(b, s);
    broker_resume_forget(s);
    TAILQ_REMOVE(&b->all, s, all);
    b->nstreams--;
    if (s->tp) {
        broker_topic_unlink(b, s);
        broker_topic_free(s->tp);
    } else if (s->cn) {
        s->cn->lis.stream = NULL;
        s->ch->nattached--;
        broker_conn_detached(b, s->cn, flushed);
    } else {
        TAILQ_REMOVE(&s->ch->streams, s, link);
        s->ch->nstreams--;
    }
    chan_unref(s->ch);
    free(s->reader);
    free(s->peer);
    free(s);
}

/* Take the sink away from the stream and end it (cleanly, or dropping what
 * the client never read), then free the stream. */
static void stream_finish(stream *s, bool abort, int why)
{
    sink *sk = s->sk;
    s->sk = NULL;
    if (sk) {
        sk->stream = NULL;
        if (abort)
            sink_abort(sk);
        else
            sink_end(sk);
    }
    stream_free(s, sk && !abort, why);
}

void stream_abort(stream *s, int why)
{
    stream_finish(s, true, why);
}

void stream_close(stream *s, int why)
{
    stream_finish(s, false, why);
}

void broker_sink_finish(sink *sk, const char *why)
{
    stream *s = sk->stream;
    if (!s)
        return;
    if (why)
        stream_comment(s, why);
    stream_close(s, BROKER_END_TOKEN);
}

void broker_sink_closed(sink *sk)
{
    stream *s = sk->stream;
    if (!s)
        return;
    sk->stream = NULL;
    s->sk = NULL;
    /* The client is gone: what it was sent is lost. */
    stream_free(s, false, BROKER_END_CLIENT);
}
