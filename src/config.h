/* config.h - the broker's configuration: defaults and the JSON config file. */
#ifndef CONFIG_H
#define CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "src/domain/chan_opts.h"

#define THREADS_MAX 17 /* the 'threads' key: the loop and 16 writer threads */

typedef struct config {
    char *path;           /* the file it was loaded from, or NULL; owned */
    char listen_host[64]; /* default "127.0.0.1" */
    int listen_port;      /* default 8080 */
    char *store_type;     /* "memory" (default) or "redis"; owned */
    char *store_url;      /* redis: redis://[:pw@]host:port/db or unix:///path; owned */
    char *store_prefix;   /* redis: prefix of every key (default "ssebroker:"); owned */
    int store_maxbuffer;  /* redis: writes per pipelined batch, 1..100000 (default 100) */
    int store_buffertime_ms; /* redis: longest a write waits for its batch, 0..10000 (5)
                              */
    bool store_sync;    /* answer a publish only once the store has it (default true) */
    bool autocreate;    /* publishing to a missing channel creates it (default true) */
    chan_opts defaults; /* options of channels created without explicit ones */
    size_t max_body;    /* bytes a request body may hold (default 1 MiB) */
    size_t max_headers; /* bytes the request line and headers may hold (default 16 KiB) */
    int max_channels;   /* channels the broker holds (default 100000) */
    int max_connections;             /* client sockets; beyond them requests are refused
                                        (default: the open-file limit less a reserve) */
    bool reuseport;                  /* SO_REUSEPORT on the listening socket (workers) */
    int max_streams;                 /* live SSE streams in all (default 15000) */
    int max_streams_per_channel;     /* live SSE streams on one channel (default 10000) */
    int max_connections_per_channel; /* persistent connections of a channel (10000) */
    size_t stream_buffer; /* unsent bytes a stream may hold before it is cut (1 MiB) */
    int idle_timeout_s;   /* a request not complete within this is closed (default 30) */
    int backoff_ms;       /* retry: sent to a subscriber refused by a limit (5000) */
    int threads;          /* threads that write streams, the event loop's included, 1..17;
                             0 (default): one per CPU this process may run on, or 1 under
                             --workers */
    int heartbeat_s; /* seconds between ':' comments on idle streams (default 15, 1..3600)
                      */
    char *cors_origin; /* Access-Control-Allow-Origin value (default "*"); owned */
    int log_level;     /* LOG_* (default LOG_INFO) */
} config;

/* The default max_connections: RLIMIT_NOFILE less a reserve. */
int config_default_max_connections(void);

/* Fill 'c' with the defaults above. Allocates; release with config_free(). */
int config_init(config *c);

/* Release what 'c' owns. config_free(NULL) does nothing. */
void config_free(config *c);

/* Read the JSON file at 'path' over the values already in 'c'. On error returns
 * -1, leaves 'c' unchanged and writes to 'err' a message naming the file, the
 * line and the field, e.g. "ssebroker.json:4: field 'heartbeat_s': must be an
 * integer from 1 to 3600". Unknown keys are errors. */
int config_load_file(config *c, const char *path, char *err, size_t errlen);

/* The same for JSON text; 'name' stands for the file name in messages. */
int config_load_string(config *c, const char *text, const char *name, char *err,
                       size_t errlen);

/* Use the Redis store at 'url' (the --store option). Returns 0, or -1 with a
 * message in 'err' if the URL is not redis:// or unix://. */
int config_set_store_url(config *c, const char *url, char *err, size_t errlen);

/* Parse "HOST:PORT", "[V6]:PORT" or ":PORT" into host/port. Returns 0 or -1. */
int config_parse_listen(const char *s, char *host, size_t hostlen, int *port);

#endif
