/* broker_stats.c - this node's figures, published on BROKER_STATS_CHANNEL
 * every second while a stream here listens to it (what the dashboard shows).
 *
 * The tick always notes the counters (two reads), so that rates are per
 * second of the last tick; it builds and publishes a message only while the
 * channel exists and has a stream on this node by its name: nobody
 * listening costs no message and no id. One publish is in flight at a time;
 * a tick that finds one in flight is skipped. Each node publishes its own
 * figures, so a listener on a shared store sees every node that has a
 * listener too. */
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "src/base/log.h"
#include "src/base/util.h"
#include "src/broker/broker_private.h"

#define STATS_TICK_S 1

void broker_stats_slow(broker *b, const char *channel)
{
    struct stats_slow *sl = &b->slow_recent[b->nslow++ % BROKER_STATS_SLOW];
    sl->at = now_us();
    snprintf(sl->channel, sizeof(sl->channel), "%s", channel);
}

/* True while a stream here reads the channel by its name. */
static bool listened(broker *b, const chan *ch)
{
    return !TAILQ_EMPTY(&ch->streams) || !TAILQ_EMPTY(&ch->attached) ||
           strmap_get(&b->topic_exact, ch->name) != NULL;
}

/* The figures as JSON text; caller frees. NULL on OOM. */
static char *stats_text(broker *b, int64_t now)
{
    broker_metrics m;
    broker_stats st;
    json_t *slow = json_array(), *o;
    char *text;
    size_t n = b->nslow < BROKER_STATS_SLOW ? b->nslow : BROKER_STATS_SLOW;

    broker_metrics_get(b, &m);
    broker_stats_get(b, &st);
    for (size_t i = 0; slow && i < n; i++) { /* the newest first */
        const struct stats_slow *sl =
            &b->slow_recent[(b->nslow - 1 - i) % BROKER_STATS_SLOW];
        json_array_append_new(slow, json_pack("{s:I, s:s}", "time", (json_int_t)sl->at,
                                              "channel", sl->channel));
    }
    o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, "
                  "s:{s:I, s:I}, s:{s:s, s:b, s:b}, s:I, s:o*}",
                  "node", b->node_id, "time", (json_int_t)now, "uptime_s",
                  (json_int_t)b->clock_s, "channels", (json_int_t)st.channels, "streams",
                  (json_int_t)st.streams, "connections", (json_int_t)m.connections,
                  "attached", (json_int_t)m.attached, "published",
                  (json_int_t)m.messages_published, "delivered",
                  (json_int_t)m.messages_delivered, "publish_rate", b->pub_rate,
                  "delivery_rate", b->del_rate, "memory", "used", (json_int_t)st.memory,
                  "max", (json_int_t)b->opts.max_memory, "store", "type", kv_name(b->kv),
                  "healthy", kv_health(b->kv) == 0, "subscribed", kv_subscribed(b->kv),
                  "slow_disconnects", (json_int_t)st.slow_closed, "recent_slow", slow);
    text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return text;
}

static void published(int status, const uint64_t *ids, size_t n, int64_t ts_us, void *arg)
{
    broker *b = arg;
    b->stats_publishing = false;
    if (status < 0)
        log_debug("stats: not published: %s", broker_strerror(status));
}

static void publish_stats(broker *b, chan *ch, int64_t now)
{
    pub_batch batch = {0};
    char *text = stats_text(b, now), *type = strdup("stats");
    int rc;
    if (!text || !type || !(batch.ev = calloc(1, sizeof(*batch.ev)))) {
        free(text);
        free(type);
        log_debug("stats: not published: out of memory");
        return;
    }
    batch.n = 1;
    batch.ev[0] = (pub_event){
        .event = type, .data = text, .data_len = strlen(text), .retry = -1, .is_json = 1};
    if ((rc = broker_publish(b, ch, NULL, &batch, published, b)) < 0) {
        log_debug("stats: not published: %s", broker_strerror(rc));
        return;
    }
    b->stats_publishing = true;
}

/* A rate to hundredths: enough for a person, and a short text. */
static double hundredths(double x)
{
    return (double)(long long)(x * 100 + 0.5) / 100;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    broker *b = arg;
    int64_t now = now_us();
    chan *ch;
    if (b->stats_at && now > b->stats_at) {
        double dt = (double)(now - b->stats_at) / 1e6;
        b->pub_rate =
            hundredths((double)(b->m.messages_published - b->stats_published) / dt);
        b->del_rate =
            hundredths((double)(b->m.messages_delivered - b->stats_delivered) / dt);
    }
    b->stats_at = now;
    b->stats_published = b->m.messages_published;
    b->stats_delivered = b->m.messages_delivered;
    if (!b->stats_publishing && !b->closing &&
        (ch = broker_chan(b, BROKER_STATS_CHANNEL)) && listened(b, ch))
        publish_stats(b, ch, now);
}

int broker_stats_init(broker *b)
{
    struct timeval tv = {STATS_TICK_S, 0};
    if (!(b->stats_tick = event_new(b->base, -1, EV_PERSIST, tick_cb, b)) ||
        event_add(b->stats_tick, &tv) < 0)
        return -1;
    return 0;
}

void broker_stats_free(broker *b)
{
    if (b->stats_tick)
        event_free(b->stats_tick);
    b->stats_tick = NULL;
}
