/* node.h - this process as a node of the cluster: its record in the store,
 * refreshed by a heartbeat, and the list of every node sharing the store.
 *
 * Each node writes node/{id} = {"id", "address", "version", "pid", "started",
 * "heartbeat", "channels", "streams", "sockets", "memory"} every
 * NODE_HEARTBEAT_S.
 * A node whose heartbeat is older than NODE_TTL_S is listed offline (it died,
 * or lost the store); one that stopped cleanly says so at once. Records
 * whose last heartbeat is older than the broker's node_ttl_s are removed by
 * whichever node lists them. */
#ifndef NODE_H
#define NODE_H

#include <stddef.h>
#include <jansson.h>

#include "src/broker/broker.h"

#define NODE_HEARTBEAT_S 2
#define NODE_TTL_S 6

struct event_base;
typedef struct node_reg node_reg;

/* What the record counts besides the broker's own: the client sockets. */
typedef size_t (*node_conns_fn)(void *arg);

/* Register this node (broker b, reachable at 'address') and start its
 * heartbeat. NULL on OOM. */
node_reg *node_reg_new(struct event_base *base, broker *b, const char *address,
                       node_conns_fn conns, void *conns_arg);
/* Mark the record stopped (a last write the shutdown flush carries), stop the
 * heartbeat and free. NULL is fine. */
void node_reg_free(node_reg *n);

/* This node's record as JSON (new reference), with "status": "online". */
json_t *node_reg_self(node_reg *n);

/* Every node's record, sorted by id, each with "status" ("online" or
 * "offline") and "age_ms" (since its last heartbeat). 'cb' gets the array
 * (borrowed) or NULL with a KV_E* status. */
typedef void (*node_list_cb)(int status, json_t *nodes, void *arg);
int node_reg_list(node_reg *n, node_list_cb cb, void *arg);
/* The same for a broker that holds no registration of its own. */
int node_list(broker *b, node_list_cb cb, void *arg);

#endif
