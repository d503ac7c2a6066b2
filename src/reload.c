/* reload.c - the configuration as main assembles it, at start and on SIGHUP
 * (see reload.h). */
#include "src/reload.h"

#include <stdio.h>
#include <string.h>

#include "src/auth/auth.h"
#include "src/base/log.h"

int config_assemble(const config_src *src, config *c, struct auth **au, char *err,
                    size_t errlen)
{
    char why[400];
    int rc = -1;

    *au = NULL;
    if (config_init(c) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (src->path && config_load_file(c, src->path, err, errlen) < 0)
        goto fail;
    if (src->listen && config_parse_listen(src->listen, c->http.host,
                                           sizeof(c->http.host), &c->http.port) < 0) {
        snprintf(err, errlen, "--listen '%s': expected HOST:PORT", src->listen);
        rc = -2;
        goto fail;
    }
    if (src->store && config_set_store_url(c, src->store, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "--store %s", why);
        rc = -2;
        goto fail;
    }
    if (config_check(c, err, errlen) < 0)
        goto fail;
    /* Keys are read once, before any worker starts: they share them. */
    if (c->auth.present) {
        if (!(*au = config_auth_build(c, err, errlen)))
            goto fail;
        c->http.auth = *au;
        c->http.auth_cookie = c->auth.cookie;
    }
    return 0;
fail:
    config_free(c);
    return rc;
}

static int str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

int reload_restart_needed(const config *cur, const config *next)
{
    const broker_opts *x = &cur->broker, *y = &next->broker;
    const struct {
        const char *name;
        int differs;
    } fields[] = {
        {"listen", strcmp(cur->http.host, next->http.host) != 0 ||
                       cur->http.port != next->http.port},
        {"store", str_differs(cur->store_type, next->store_type) ||
                      str_differs(cur->store_url, next->store_url) ||
                      str_differs(cur->store_prefix, next->store_prefix) ||
                      cur->store_maxbuffer != next->store_maxbuffer ||
                      cur->store_buffertime_ms != next->store_buffertime_ms ||
                      cur->store_timeout_ms != next->store_timeout_ms ||
                      x->sync != y->sync},
        {"threads", cur->http.threads != next->http.threads},
        {"log_format", cur->log_format != next->log_format},
        {"access_log", cur->access_log != next->access_log},
        {"channel_defaults",
         memcmp(&x->defaults, &y->defaults, sizeof(x->defaults)) != 0},
        {"retention", x->nretention != y->nretention ||
                          memcmp(x->retention, y->retention,
                                 x->nretention * sizeof(x->retention[0])) != 0},
        {"autocreate", x->autocreate != y->autocreate},
        {"heartbeat_s", x->heartbeat_s != y->heartbeat_s},
        {"node_ttl_s", x->node_ttl_s != y->node_ttl_s},
        {"sessions", x->sessions_retention_s != y->sessions_retention_s ||
                         x->sessions_max != y->sessions_max},
        {"traces", x->trace_max != y->trace_max ||
                       x->trace_bounds.limit_max != y->trace_bounds.limit_max ||
                       x->trace_bounds.duration_max_s != y->trace_bounds.duration_max_s},
    };
    int n = 0;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (fields[i].differs) {
            log_warn("reload: '%s' changed: it takes effect at the next restart",
                     fields[i].name);
            n++;
        }
    }
    return n;
}
