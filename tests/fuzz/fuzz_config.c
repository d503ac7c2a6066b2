/* fuzz_config.c - libFuzzer target for the config loader (src/config.c).
 *
 * The input, as a C string, is loaded with config_load_string() over the
 * defaults (even sizes) or over a config that already owns non-default
 * strings (odd sizes), and parsed with config_parse_listen(). A failed load
 * must leave the config byte for byte as it was and name the file first; a
 * successful one must hold only values inside the documented bounds. Any
 * broken promise aborts; leaks are LeakSanitizer's. */
#include "src/config.h"
#include "src/base/log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_config: check failed: %s (line %d)\n", #cond,          \
                    __LINE__);                                                           \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#define NAME "fuzz.json"

static const char base_config[] =
    "{\"store\": {\"type\": \"redis\", \"url\": \"redis://10.0.0.1:6380/2\","
    " \"prefix\": \"p:\"}, \"cors_origin\": \"https://example.org\","
    " \"listen\": \"[::1]:9000\", \"heartbeat_s\": 7}";

/* The owned strings of a config, copied, to compare after a failed load. */
typedef struct snapshot {
    config raw;
    char *str[5];
} snapshot;

static char **owned(config *c, int i)
{
    char **v[] = {&c->path, &c->store_type, &c->store_url, &c->store_prefix,
                  &c->http.cors_origin};
    return v[i];
}

static void snap_take(snapshot *s, config *c)
{
    memcpy(&s->raw, c, sizeof(*c));
    for (int i = 0; i < 5; i++) {
        char *p = *owned(c, i);
        s->str[i] = p ? strdup(p) : NULL;
        CHECK(!p || s->str[i]);
    }
}

static void snap_check_and_free(snapshot *s, config *c)
{
    CHECK(memcmp(&s->raw, c, sizeof(*c)) == 0);
    for (int i = 0; i < 5; i++) {
        char *p = *owned(c, i);
        CHECK((p == NULL) == (s->str[i] == NULL));
        CHECK(!p || strcmp(p, s->str[i]) == 0);
        free(s->str[i]);
    }
}

static int host_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_' || ch == ':' ||
           ch == '%';
}

static void check_host(const char *host, size_t hostlen)
{
    size_t n = strnlen(host, hostlen);
    CHECK(n >= 1 && n < hostlen);
    for (size_t i = 0; i < n; i++)
        CHECK(host_char(host[i]));
}

static void check_bounds(const config *c)
{
    CHECK(c->broker.heartbeat_s >= 1 && c->broker.heartbeat_s <= 3600);
    CHECK(c->broker.defaults.history >= 0 &&
          c->broker.defaults.history <= CHAN_HISTORY_MAX);
    CHECK(c->broker.defaults.queue_limit >= 1 &&
          c->broker.defaults.queue_limit <= CHAN_QUEUE_LIMIT_MAX);
    CHECK(c->broker.defaults.retry_ms >= 0 &&
          c->broker.defaults.retry_ms <= CHAN_RETRY_MS_MAX);
    CHECK(c->http.port >= 0 && c->http.port <= 65535);
    check_host(c->http.host, sizeof(c->http.host));
    CHECK(c->store_type &&
          (!strcmp(c->store_type, "memory") || !strcmp(c->store_type, "redis")));
    if (!strcmp(c->store_type, "redis"))
        CHECK(c->store_url != NULL);
    if (c->store_url)
        CHECK(!strncmp(c->store_url, "redis://", 8) ||
              !strncmp(c->store_url, "unix:///", 8));
    CHECK(c->store_prefix && strlen(c->store_prefix) <= 64 &&
          !strchr(c->store_prefix, '/'));
    CHECK(c->store_maxbuffer >= 1 && c->store_maxbuffer <= 100000);
    CHECK(c->store_buffertime_ms >= 0 && c->store_buffertime_ms <= 10000);
    CHECK(c->store_timeout_ms >= 100 && c->store_timeout_ms <= 600000);
    CHECK(c->http.max_body >= 1 && c->http.max_body <= 1073741824);
    CHECK(c->http.max_headers >= 1024 && c->http.max_headers <= 1048576);
    CHECK(c->http.cors_origin && c->http.cors_origin[0] &&
          !strpbrk(c->http.cors_origin, "\r\n"));
    CHECK(c->log_level >= LOG_DEBUG && c->log_level <= LOG_ERROR);
    CHECK(c->path == NULL); /* a string has no file */
}

static void check_listen(const char *text)
{
    /* A host buffer of the size asked for, so a write past it is caught. */
    static const size_t sizes[] = {64, 8};
    for (size_t k = 0; k < 2; k++) {
        char *host = malloc(sizes[k]);
        int port = -1;
        CHECK(host);
        if (config_parse_listen(text, host, sizes[k], &port) == 0) {
            CHECK(port >= 0 && port <= 65535);
            check_host(host, sizes[k]);
        }
        free(host);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t size)
{
    static int quiet;
    char *text = malloc(size + 1), err[512];
    config c;
    snapshot s;

    if (!quiet++)
        log_set_level(LOG_ERROR);
    CHECK(text);
    memcpy(text, buf, size);
    text[size] = '\0';

    CHECK(config_init(&c) == 0);
    if (size % 2) {
        CHECK(config_load_string(&c, base_config, NAME, err, sizeof(err)) == 0);
        check_bounds(&c);
    }
    snap_take(&s, &c);
    memset(err, 'x', sizeof(err));
    if (config_load_string(&c, text, NAME, err, sizeof(err)) == 0) {
        for (int i = 0; i < 5; i++)
            free(s.str[i]);
        check_bounds(&c);
    } else {
        CHECK(memchr(err, '\0', sizeof(err)) != NULL);
        CHECK(strncmp(err, NAME ":", sizeof(NAME)) == 0);
        snap_check_and_free(&s, &c);
    }
    /* Without an error buffer: same outcome, no crash. */
    snap_take(&s, &c);
    if (config_load_string(&c, text, NULL, NULL, 0) == 0) {
        for (int i = 0; i < 5; i++)
            free(s.str[i]);
        check_bounds(&c);
    } else {
        snap_check_and_free(&s, &c);
    }
    config_free(&c);
    config_free(&c); /* twice is harmless */

    check_listen(text);
    free(text);
    return 0;
}
