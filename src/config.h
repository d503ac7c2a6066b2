/* config.h - the broker's configuration: defaults and the JSON config file. */
#ifndef CONFIG_H
#define CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "src/broker/broker.h"
#include "src/domain/policy.h"
#include "src/http/http.h"
#include "src/module/modhost.h"

#define THREADS_MAX 17 /* the 'threads' key: the loop and 16 writer threads */

/* One JWT verification key of the "auth" section, as written: its key
 * material is read when the broker starts (config_auth_keys). */
typedef struct auth_key_cfg {
    char *kid;    /* NULL: none */
    char *alg;    /* "HS256", "RS256", "ES256" or "EdDSA" */
    char *secret; /* an HMAC secret written in the file, or NULL */
    char *file;   /* secret_file (HS256) or public_key_file (PEM), or NULL */
} auth_key_cfg;

/* An API key: stored by its SHA-256, never in clear. */
typedef struct auth_apikey_cfg {
    char *name; /* its authid */
    char *role;
    unsigned char sha256[32];
} auth_apikey_cfg;

/* The "auth" section. Everything owned. */
typedef struct auth_cfg {
    bool present;        /* the file has one: access is checked */
    policy pol;          /* roles, anonymous_role */
    char *cookie;        /* the cookie holding a token (default "ssebroker_token") */
    char *role_claim;    /* the JWT claim naming the role (default "role") */
    char *issuer;        /* "iss" required, if not NULL */
    char *audience;      /* "aud" required, if not NULL */
    char *jwks_file;     /* keys from a JWKS file, if not NULL */
    int leeway_s;        /* clock skew allowed on exp/nbf (default 30) */
    int max_token_bytes; /* default 8192 */
    auth_key_cfg *keys;
    size_t nkeys;
    auth_apikey_cfg *apikeys;
    size_t napikeys;
} auth_cfg;

void auth_cfg_free(auth_cfg *a);

typedef struct config {
    char *path;          /* the file it was loaded from, or NULL; owned */
    char *store_type;    /* "memory" (default) or "redis"; owned */
    char *store_url;     /* redis: redis://[:pw@]host:port/db or unix:///path; owned */
    char *store_prefix;  /* redis: prefix of every key (default "ssebroker:"); owned */
    int store_maxbuffer; /* redis: writes per pipelined batch, 1..100000 (default 100) */
    int store_buffertime_ms; /* redis: longest a write waits for its batch, 0..10000 (5)
                              */
    int store_timeout_ms;    /* redis: the reply timeout, 100..600000 (5000) */
    int log_level;           /* LOG_* (default LOG_INFO) */
    int log_format;          /* LOG_TEXT (default) or LOG_JSON */
    bool access_log;         /* a line per request answered and per stream ended */
    /* The broker's part. Defaults: autocreate and sync (store.sync) true,
     * max_channels 100000, max_streams 15000, max_streams_per_channel and
     * max_connections_per_channel 10000, heartbeat_s 15 (1..3600),
     * idle_ttl_s (limits.channel_idle_ttl_s) 600 (0: never). */
    broker_opts broker;
    /* The HTTP layer's part; http.cors_origin is owned here. Defaults: listen
     * 127.0.0.1:8080, max_body 1 MiB, max_headers 16 KiB, max_connections the
     * open-file limit less a reserve, idle_timeout_s 30, stream_buffer and max_response 1
     * MiB, backoff_ms 5000, max_retry_ms 60000, max_delivery_lag_ms 1000, cors_origin
     * "*", threads 0: one per CPU this process may run on, or 1 under --workers (1..17
     * when set). */
    http_opts http;
    auth_cfg auth; /* access control; none (not present): open to all, on loopback only */
    /* "modules": the event-processing modules to load, in order; owned.
     * A file's list replaces what was. */
    module_spec *modules;
    size_t nmodules;
    int modules_max_depth; /* default MODHOST_DEPTH_DEFAULT, 1..64 */
} config;

/* Where the config file gives field 'field' of the i-th module: "FILE:LINE:
 * field 'modules[i].field'" into 'buf', for messages about loading it. */
void config_module_where(const config *c, size_t i, const char *field, char *buf,
                         size_t len);

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

/* 1 if 'host' (as config_parse_listen leaves it) is a loopback address:
 * 127.0.0.0/8, ::1 or "localhost". */
int config_host_is_loopback(const char *host);

/* The checks that need the whole configuration (file and command line):
 * without an "auth" section the broker listens on loopback only. 0, or -1
 * with a message naming the file (or --listen) and the field. */
int config_check(const config *c, char *err, size_t errlen);

struct auth;
/* The access checks of c->auth, its keys read from their files (the policy
 * moves into it). NULL with a message naming the file, line and field in
 * 'err' when a key cannot be loaded, or on OOM. Only when c->auth.present. */
struct auth *config_auth_build(config *c, char *err, size_t errlen);

#endif
