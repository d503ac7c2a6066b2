/* http.h - the HTTP API: routes, request validation, the listening server. */
#ifndef HTTP_H
#define HTTP_H

#include <stddef.h>

#include "src/broker/broker.h"
#include "src/config.h"

struct event_base;
typedef struct http_server http_server;

/* Bind cfg->listen_host:listen_port and serve the API for 'b'. Returns NULL
 * with a message in 'err' if the address cannot be bound. */
http_server *http_server_new(struct event_base *base, broker *b, const config *cfg,
                             char *err, size_t errlen);
/* Stop accepting new connections; open ones are served on. */
void http_server_stop_accepting(http_server *h);

/* The port actually bound (useful with port 0). */
int http_server_port(const http_server *h);
/* Stop accepting and free the server and its client connections. NULL is fine. */
void http_server_free(http_server *h);

#endif
