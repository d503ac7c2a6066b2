/* http.h - the HTTP API: routes, request validation, the listening server. */
#ifndef HTTP_H
#define HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "src/broker/broker.h"
#include "src/module/modhost.h"

struct event_base;
typedef struct http_server http_server;

/* What the HTTP layer needs to know of the configuration. */
typedef struct http_opts {
    char host[64];           /* address to listen on (default "127.0.0.1") */
    int port;                /* default 8080; 0 picks a free one */
    bool reuseport;          /* SO_REUSEPORT: several processes share the port */
    size_t max_body;         /* bytes a request body may hold (default 1 MiB) */
    size_t max_headers;      /* bytes of the request line and headers (16 KiB) */
    int max_connections;     /* client sockets; beyond them requests are refused */
    int idle_timeout_s;      /* a request not complete within this is closed (30) */
    size_t stream_buffer;    /* what a stream's unsent output may cost before it is cut
                                (1 MiB) */
    size_t max_response;     /* bytes of one page of history (1 MiB) */
    int backoff_ms;          /* retry: sent to a subscriber refused by a limit (5000) */
    int max_retry_ms;        /* largest retry a publish may set (60000) */
    int max_delivery_lag_ms; /* a publish is refused (503) while delivery is this far
                                behind (httpd_delivery_lag_ms); 0: never (1000) */
    int threads;             /* threads serving the process, the loop's included (>= 1):
                                each one beyond it a writer of streams and, from 3
                                on, a front loop (http_front_loops) */
    char *cors_origin;       /* Access-Control-Allow-Origin (default "*"); the config
                                that filled it owns it, the server borrows it */
    const struct auth *auth; /* access control (borrowed); NULL: open to all */
    const char *auth_cookie; /* the cookie holding a token (borrowed) */
    bool access_log;         /* log a line for each request answered */
    int worker;              /* this worker's index under --workers, else 0: /metrics
                                then shows every worker's series (http_metrics.h) */
    const modhost *modules;  /* the modules' counters for /status and /metrics
                                (borrowed); NULL: none */
} http_opts;

/* Bind o->host:o->port and serve the API for 'b'. Copies 'o' (not the strings
 * it points to, which must outlive the server). Returns NULL with a message in
 * 'err' if the address cannot be bound. */
http_server *http_server_new(struct event_base *base, broker *b, const http_opts *o,
                             char *err, size_t errlen);
/* Take what a reload may change from 'o': the limits (max_body,
 * max_headers, max_connections, idle_timeout_s, stream_buffer, max_response,
 * backoff_ms, max_retry_ms), the CORS origins and access control (auth,
 * auth_cookie). The strings and the auth object are borrowed as
 * http_server_new's are: the old ones may go once this returns. The rest of
 * 'o' is ignored. 0, or -1 on OOM (then nothing changed). */
int http_server_reload(http_server *h, const http_opts *o);
/* Stop accepting new connections; open ones are served on. */
void http_server_stop_accepting(http_server *h);

/* The port actually bound (useful with port 0). */
int http_server_port(const http_server *h);
/* Stop accepting and free the server and its client connections. NULL is fine. */
void http_server_free(http_server *h);

#endif
