/* node.c - the node registry and heartbeat (see node.h). */
#include "src/broker/node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>

#include "src/base/log.h"
#include "src/base/util.h"

struct node_reg {
    broker *b;
    struct event *beat;
    char *address;
    int64_t started_ms;
    node_conns_fn conns;
    void *conns_arg;
    bool stopped;
};

static int64_t wall_ms(void)
{
    return now_us() / 1000;
}

json_t *node_reg_self(node_reg *n)
{
    broker_stats st;
    broker_stats_get(n->b, &st);
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "id",
                     broker_node_id(n->b), "address", n->address, "version",
                     PACKAGE_VERSION, "pid", (json_int_t)getpid(), "started",
                     (json_int_t)n->started_ms, "heartbeat", (json_int_t)wall_ms(),
                     "channels", (json_int_t)st.channels, "streams",
                     (json_int_t)st.streams, "sockets",
                     (json_int_t)(n->conns ? n->conns(n->conns_arg) : 0), "memory",
                     (json_int_t)st.memory, "stopped", n->stopped);
}

static void node_write(node_reg *n)
{
    char key[64];
    json_t *o = node_reg_self(n);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    snprintf(key, sizeof(key), "node/%s", broker_node_id(n->b));
    if (text)
        kv_set(broker_store(n->b), key, text, strlen(text), NULL, NULL);
    free(text);
    json_decref(o);
}

static void beat_cb(evutil_socket_t fd, short what, void *arg)
{
    node_write(arg);
}

node_reg *node_reg_new(struct event_base *base, broker *b, const char *address,
                       node_conns_fn conns, void *conns_arg)
{
    node_reg *n = calloc(1, sizeof(*n));
    struct timeval tv = {NODE_HEARTBEAT_S, 0};
    if (!n || !(n->address = strdup(address)) ||
        !(n->beat = event_new(base, -1, EV_PERSIST, beat_cb, n)) ||
        event_add(n->beat, &tv) < 0) {
        node_reg_free(n);
        return NULL;
    }
    n->b = b;
    n->started_ms = wall_ms();
    n->conns = conns;
    n->conns_arg = conns_arg;
    node_write(n);
    log_info("node %s registered (%s)", broker_node_id(b), address);
    return n;
}

void node_reg_free(node_reg *n)
{
    if (!n)
        return;
    if (n->b) {
        n->stopped = true;
        node_write(n);
    }
    if (n->beat)
        event_free(n->beat);
    free(n->address);
    free(n);
}

typedef struct list_req {
    broker *b;
    node_list_cb cb;
    void *arg;
} list_req;

static void listed(const kv_result *res, void *arg)
{
    list_req *lr = arg;
    json_t *arr = res->status == KV_OK ? json_array() : NULL;
    int64_t now = wall_ms();

    for (size_t i = 0; arr && i < res->n; i++) {
        json_t *o = json_loadb(res->items[i].val, res->items[i].vlen, 0, NULL);
        json_int_t beat = 0;
        int stopped = 0;
        if (!json_is_object(o) ||
            json_unpack(o, "{s:I, s?:b}", "heartbeat", &beat, "stopped", &stopped) < 0) {
            json_decref(o);
            continue;
        }
        int64_t age = now - (int64_t)beat;
        bool online = !stopped && age <= NODE_TTL_S * 1000;
        if (!online && age > (int64_t)broker_options(lr->b)->node_ttl_s * 1000) {
            kv_del(broker_store(lr->b), res->items[i].key, NULL, NULL);
            json_decref(o);
            continue;
        }
        json_object_set_new(o, "status", json_string(online ? "online" : "offline"));
        json_object_set_new(o, "age_ms", json_integer(age < 0 ? 0 : age));
        json_array_append_new(arr, o);
    }
    lr->cb(arr ? 0 : (res->status < 0 ? res->status : KV_ENOMEM), arr, lr->arg);
    json_decref(arr);
    free(lr);
}

int node_reg_list(node_reg *n, node_list_cb cb, void *arg)
{
    return node_list(n->b, cb, arg);
}

int node_list(broker *b, node_list_cb cb, void *arg)
{
    list_req *lr = malloc(sizeof(*lr));
    if (!lr)
        return KV_ENOMEM;
    *lr = (list_req){b, cb, arg};
    int rc = kv_scan(broker_store(b), "node/", listed, lr);
    if (rc < 0)
        free(lr);
    return rc;
}
