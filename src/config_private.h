/* config_private.h - what the config file's parts share (config.c,
 * config_auth.c): the file being read and the error helpers that name its
 * file, line and field. Not for anything outside src/config*.c. */
#ifndef CONFIG_PRIVATE_H
#define CONFIG_PRIVATE_H

#include <stddef.h>
#include <jansson.h>

typedef struct cfg_ctx {
    const char *name; /* the file name in messages */
    const char *text;
    size_t len;
    char *err;
    size_t errlen;
} cfg_ctx;

/* Write "NAME:LINE: field 'parent.key': <message>" to the error buffer and
 * return -1. 'parent' is a dotted path of objects from the top ("auth.jwt"),
 * or NULL for a top-level 'key'; 'key' may be NULL when 'parent' itself is
 * at fault. */
int cfg_fail(const cfg_ctx *x, const char *parent, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* '*out' = the integer 'v' if it is one from lo to hi; else cfg_fail. */
int cfg_int(const cfg_ctx *x, const char *parent, const char *key, json_t *v,
            long long lo, long long hi, long long *out);

/* Replace the owned string '*dst' with a copy of 'src'. 0, or -1 (OOM, said). */
int cfg_set_str(const cfg_ctx *x, char **dst, const char *src);

/* The "auth" object into c->auth (config_auth.c). */
struct config;
int cfg_auth(const cfg_ctx *x, struct config *c, json_t *obj);

#endif
