/* reload.h - the configuration as main assembles it (the file, then the
 * command line over it, checked, access control built), at start and again on
 * SIGHUP; and what of a new one cannot change without a restart. */
#ifndef RELOAD_H
#define RELOAD_H

#include "src/config.h"

struct auth;

/* Where the configuration comes from: the file (NULL: none) and the command
 * line's --listen and --store (NULL: not given). Borrowed. */
typedef struct config_src {
    const char *path;
    const char *listen;
    const char *store;
} config_src;

/* Fill 'c' (config_init'ed here) from 'src', check it and build its access
 * control into '*au' (NULL without an "auth" section; c->http.auth and
 * auth_cookie point at it). 0; or, with 'c' freed, '*au' NULL and a message
 * naming the file, line and field (or the option) in 'err': -1 for a bad
 * file, -2 for a bad option (a usage error). */
int config_assemble(const config_src *src, config *c, struct auth **au, char *err,
                    size_t errlen);

/* Log, at warn, each setting that differs between the running 'cur' and the
 * new 'next' and is only read at start (the listening address, the store,
 * threads, log_format, access_log, channel_defaults, autocreate, heartbeat_s,
 * node_ttl_s, sessions, traces): it takes effect at the next restart.
 * Returns how many. What a reload applies is the rest: log_level,
 * cors_origin, limits and auth. */
int reload_restart_needed(const config *cur, const config *next);

#endif
