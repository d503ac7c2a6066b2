/* modconf.h - what the example modules share to read their JSON config. */
#ifndef MODCONF_H
#define MODCONF_H

#include <stdio.h>
#include <string.h>
#include <jansson.h>

/* '*out' = the integer 'key' of 'conf' if it is one from lo to hi, 'def'
 * when absent. 0, or -1 with a message in 'err'. */
static inline int modconf_int(json_t *conf, const char *key, long long def, long long lo,
                              long long hi, long long *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(conf, key);
    *out = def;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(err, errlen, "\"%s\" must be an integer from %lld to %lld", key, lo, hi);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

/* 0 if every key of 'conf' is one of the 'n' 'keys', else -1 with a message. */
static inline int modconf_keys(json_t *conf, const char *const *keys, size_t n, char *err,
                               size_t errlen)
{
    const char *key;
    json_t *v;
    json_object_foreach (conf, key, v) {
        size_t k = 0;
        while (k < n && strcmp(key, keys[k]) != 0)
            k++;
        if (k == n) {
            snprintf(err, errlen, "unknown key \"%.64s\"", key);
            return -1;
        }
    }
    return 0;
}

#endif
