/* relay.c - a test module (it_modules.mjs): republishes every event it gets.
 *
 * Config: {"to": CHANNEL, "event": TYPE (default "relayed"), "error": true
 * (on_event fails after publishing), "refuse": "reason" (init fails),
 * "identity": true (publish the publisher instead), "also": CHANNEL (publish
 * the same on it too, after 'to')}.
 * What it publishes on 'to' is "SOURCE|CHANNEL|ID|DATA" (SOURCE "-" for a
 * client's event), so that a test sees which module's event it reacted to;
 * with "identity", "AUTHID|AUTHROLE" ("-" for none).
 * Sessions starting and stopping are logged (debug). Built three times: as relay.so; with
 * RELAY_ABI=999 (another ABI); with RELAY_NO_DESCRIPTOR (no descriptor symbol). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <ssebroker/module.h>

#ifndef RELAY_ABI
#define RELAY_ABI SSEBROKER_MODULE_ABI
#endif

typedef struct relay {
    const ssebroker_host *h;
    char *to, *event, *also;
    int error, identity;
} relay;

static void *relay_init(const char *config, const ssebroker_host *h, char *err,
                        size_t errlen)
{
    json_t *c = json_loads(config, 0, NULL);
    const char *to = json_string_value(json_object_get(c, "to"));
    const char *ev = json_string_value(json_object_get(c, "event"));
    const char *refuse = json_string_value(json_object_get(c, "refuse"));
    const char *also = json_string_value(json_object_get(c, "also"));
    relay *r = NULL;

    if (refuse) {
        snprintf(err, errlen, "%s", refuse);
    } else if (!to) {
        snprintf(err, errlen, "\"to\" must name a channel");
    } else if ((r = calloc(1, sizeof(*r)))) {
        r->h = h;
        r->to = strdup(to);
        r->event = strdup(ev ? ev : "relayed");
        r->also = also ? strdup(also) : NULL;
        r->error = json_is_true(json_object_get(c, "error"));
        r->identity = json_is_true(json_object_get(c, "identity"));
    }
    json_decref(c);
    return r;
}

static int relay_event(void *st, const ssebroker_event *ev)
{
    relay *r = st;
    size_t len = ev->data_len + strlen(ev->channel) + strlen(ev->id) + 600;
    char *text = malloc(len);
    int n, rc;
    if (!text)
        return -1;
    if (r->identity)
        n = snprintf(text, len, "%.256s|%.256s", ev->authid ? ev->authid : "-",
                     ev->authrole ? ev->authrole : "-");
    else
        n = snprintf(text, len, "%s|%s|%s|%s", ev->source ? ev->source : "-", ev->channel,
                     ev->id, ev->data);
    rc = r->h->publish(r->h, r->to, r->event, text, (size_t)n);
    if (rc == 0 && r->also)
        rc = r->h->publish(r->h, r->also, r->event, text, (size_t)n);
    free(text);
    /* A publish cut by modules_max_depth is no error of this module. */
    return r->error ? -7 : rc == SSEBROKER_EDEPTH ? 0 : rc;
}

static void relay_session(void *st, const char *session_json)
{
    relay *r = st;
    r->h->log(r->h, SSEBROKER_LOG_DEBUG, "session: %s", session_json);
}

static void relay_free(void *st)
{
    relay *r = st;
    free(r->to);
    free(r->event);
    free(r->also);
    free(r);
}

/* Without its descriptor under the right name: a module the broker refuses. */
#ifndef RELAY_NO_DESCRIPTOR
#define RELAY_SYMBOL ssebroker_module
#else
#define RELAY_SYMBOL ssebroker_mod
#endif
const ssebroker_module_desc RELAY_SYMBOL = {
    .abi = RELAY_ABI,
    .name = "relay",
    .init = relay_init,
    .on_event = relay_event,
    .on_session_start = relay_session,
    .on_session_stop = relay_session,
    .free = relay_free,
};
