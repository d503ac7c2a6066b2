/* http_front_server.c - the front loops' servers (http_front.h): each a
 * server of http.c's routes on its front's thread, listening on nothing,
 * with its own copies of the options; made, reloaded, stopped and freed
 * through the hooks http_front.c calls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/auth/auth.h"
#include "src/base/log.h"
#include "src/http/http_private.h"

/* Let go of the front's copies (front_take). */
static void front_opts_free(http_server *f)
{
    free(f->o.cors_origin);
    free((char *)f->o.auth_cookie);
    auth_free((auth *)f->o.auth);
}

/* A front keeps its own copies of what 'o' points to: the main loop's may
 * go with a reload before the front has taken the next. 0, or -1 on OOM
 * (then nothing changed). */
static int front_take(http_server *f, const http_opts *o)
{
    char *cors = o->cors_origin ? strdup(o->cors_origin) : NULL;
    char *cookie = o->auth_cookie ? strdup(o->auth_cookie) : NULL;
    if ((o->cors_origin && !cors) || (o->auth_cookie && !cookie)) {
        free(cors);
        free(cookie);
        return -1;
    }
    front_opts_free(f);
    http_opts_reload(&f->o, o);
    f->o.cors_origin = cors;
    f->o.auth_cookie = cookie;
    f->o.auth = auth_ref(o->auth);
    return 0;
}

static void front_reload(void *srv, const http_opts *o)
{
    http_server *f = srv;
    httpd_opts ho = http_httpd_opts(o);
    if (httpd_reload(f->d, &ho) < 0 || front_take(f, o) < 0)
        log_error("front loop: out of memory: the reload is not applied there");
}

static void front_stop_accepting(void *srv)
{
    httpd_stop_accepting(((http_server *)srv)->d);
}

static void front_free(void *srv)
{
    http_server *f = srv;
    httpd_free(f->d);
    front_opts_free(f);
    free(f);
}

static const http_front_hooks front_hooks = {
    .answer = http_publish_answer,
    .reload = front_reload,
    .stop_accepting = front_stop_accepting,
    .free = front_free,
};

/* Front 'fr''s server: it listens on nothing (the main loop gives it its
 * publishing connections). NULL with 'err' set. */
static http_server *front_new(http_server *h, http_front *fr, const http_opts *o,
                              char *err, size_t errlen)
{
    http_server *f = calloc(1, sizeof(*f));
    httpd_opts ho = http_httpd_opts(o);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->sh = h->sh;
    f->front = fr;
    f->o = *o;
    f->o.modules = NULL;
    /* Its own copies of these (front_take), none yet. */
    f->o.cors_origin = NULL;
    f->o.auth_cookie = NULL;
    f->o.auth = NULL;
    if (front_take(f, o) < 0) {
        snprintf(err, errlen, "out of memory");
        front_free(f);
        return NULL;
    }
    ho.port = httpd_port(h->d);
    ho.no_listen = true; /* the main loop accepts, and gives it its publishers */
    ho.threads = 1;      /* the main loop's writers write every stream */
    ho.shared = &h->sh->d;
    if (!(f->d = httpd_new(http_front_base(fr), &ho, http_handle, f, err, errlen))) {
        front_free(f);
        return NULL;
    }
    return f;
}

int http_server_fronts_start(http_server *h, struct event_base *base, const http_opts *o,
                             char *err, size_t errlen)
{
    int n = http_front_loops(o->threads);
    if (!(h->fronts = http_fronts_new(base, h->b, h->d, n, &front_hooks))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        http_front *fr = http_fronts_get(h->fronts, i);
        http_server *f = front_new(h, fr, o, err, errlen);
        if (!f)
            return -1; /* the caller frees the fronts made so far */
        http_front_set(fr, f, f->d);
    }
    if (http_fronts_start(h->fronts) < 0) {
        snprintf(err, errlen, "cannot start the front loops");
        return -1;
    }
    return 0;
}
