/* test_config.c - unit tests for defaults, the config file and channel options. */
#include "src/config.h"
#include "src/base/log.h"
#include "tests/tap.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static int config_eq(const config *a, const config *b)
{
#define STREQ(x, y) ((!(x) && !(y)) || ((x) && (y) && strcmp((x), (y)) == 0))
    return STREQ(a->path, b->path) && strcmp(a->http.host, b->http.host) == 0 &&
           a->http.port == b->http.port && STREQ(a->store_type, b->store_type) &&
           STREQ(a->store_url, b->store_url) &&
           a->broker.autocreate == b->broker.autocreate &&
           a->broker.defaults.history == b->broker.defaults.history &&
           a->broker.defaults.queue_limit == b->broker.defaults.queue_limit &&
           a->broker.defaults.retry_ms == b->broker.defaults.retry_ms &&
           a->http.max_body == b->http.max_body &&
           a->http.max_headers == b->http.max_headers &&
           a->broker.heartbeat_s == b->broker.heartbeat_s &&
           a->broker.node_ttl_s == b->broker.node_ttl_s &&
           a->http.threads == b->http.threads &&
           STREQ(a->http.cors_origin, b->http.cors_origin) &&
           a->log_level == b->log_level && a->log_format == b->log_format &&
           a->access_log == b->access_log && STREQ(a->store_prefix, b->store_prefix) &&
           a->store_maxbuffer == b->store_maxbuffer &&
           a->store_buffertime_ms == b->store_buffertime_ms &&
           a->store_timeout_ms == b->store_timeout_ms &&
           a->broker.sync == b->broker.sync &&
           a->broker.max_channels == b->broker.max_channels &&
           a->broker.max_streams == b->broker.max_streams &&
           a->broker.max_streams_per_channel == b->broker.max_streams_per_channel &&
           a->broker.max_patterns_per_stream == b->broker.max_patterns_per_stream &&
           a->broker.max_pattern_streams == b->broker.max_pattern_streams &&
           a->broker.max_pattern_bytes == b->broker.max_pattern_bytes &&
           a->broker.max_connections_per_channel ==
               b->broker.max_connections_per_channel &&
           a->http.stream_buffer == b->http.stream_buffer &&
           a->http.idle_timeout_s == b->http.idle_timeout_s &&
           a->http.backoff_ms == b->http.backoff_ms;
#undef STREQ
}

static void test_defaults(void)
{
    config c;

    ok(config_init(&c) == 0, "config_init");
    ok(c.path == NULL, "default path NULL");
    ok(strcmp(c.http.host, "127.0.0.1") == 0 && c.http.port == 8080,
       "default listen 127.0.0.1:8080");
    ok(c.store_type && strcmp(c.store_type, "memory") == 0, "default store memory");
    ok(c.store_url == NULL, "default store_url NULL");
    ok(c.broker.autocreate, "default autocreate");
    ok(c.broker.defaults.history == 100 && c.broker.defaults.queue_limit == 1000 &&
           c.broker.defaults.retry_ms == 3000,
       "default channel options");
    ok(c.http.max_body == 1048576 && c.http.max_headers == 16384, "default limits");
    ok(c.broker.heartbeat_s == 15, "default heartbeat");
    ok(c.broker.node_ttl_s == 300, "default node_ttl_s");
    ok(c.broker.sessions_retention_s == 3600 && c.broker.sessions_max == 10000,
       "default sessions bounds");
    ok(c.http.cors_origin && strcmp(c.http.cors_origin, "*") == 0, "default cors_origin");
    ok(c.log_level == LOG_INFO, "default log level");
    config_free(&c);
    config_free(&c); /* pointers were cleared: a second free is harmless */
    config_free(NULL);
    ok(1, "config_free twice and on NULL");
}

/* The example from the spec, then every field changed at once. */
static void test_load_ok(void)
{
    config c;
    char err[512] = "";
    const char *spec =
        "{\n"
        "  \"listen\": \"127.0.0.1:8080\",\n"
        "  \"store\": {\"type\": \"memory\"},\n"
        "  \"autocreate\": true,\n"
        "  \"channel_defaults\": {\"history\": 100, \"queue_limit\": 1000, "
        "\"retry_ms\": 3000},\n"
        "  \"limits\": {\"max_body\": 1048576, \"max_headers\": 16384},\n"
        "  \"heartbeat_s\": 15,\n"
        "  \"cors_origin\": \"*\",\n"
        "  \"log_level\": \"info\"\n"
        "}\n";
    const char *all =
        "{\"listen\": \"[::1]:9000\", \"store\": {\"type\": \"memory\", "
        "\"url\": \"redis://x\"}, \"autocreate\": false, "
        "\"channel_defaults\": {\"history\": 0, \"queue_limit\": 1, "
        "\"retry_ms\": 86400000}, \"limits\": {\"max_body\": 1073741824, "
        "\"max_headers\": 1024}, \"heartbeat_s\": 3600, \"threads\": 17, "
        "\"cors_origin\": \"https://example.com\", \"log_level\": \"debug\"}";

    config c_ref, *ref = &c_ref;

    config_init(&c);
    config_init(ref);
    ok(config_load_string(&c, spec, "spec.json", err, sizeof(err)) == 0,
       "spec example loads (%s)", err);
    ok(config_eq(&c, ref), "spec example equals the defaults");
    config_free(ref);
    ok(config_load_string(&c, "{}", "e.json", err, sizeof(err)) == 0,
       "empty object loads");
    ok(config_load_string(&c, all, "all.json", err, sizeof(err)) == 0,
       "all fields load (%s)", err);
    ok(strcmp(c.http.host, "::1") == 0 && c.http.port == 9000, "listen [::1]:9000");
    ok(strcmp(c.store_type, "memory") == 0 && c.store_url &&
           strcmp(c.store_url, "redis://x") == 0,
       "store url kept");
    ok(!c.broker.autocreate, "autocreate false");
    ok(c.broker.defaults.history == 0 && c.broker.defaults.queue_limit == 1 &&
           c.broker.defaults.retry_ms == 86400000,
       "channel defaults at their bounds");
    ok(c.http.max_body == 1073741824 && c.http.max_headers == 1024,
       "limits at their bounds");
    ok(c.broker.heartbeat_s == 3600, "heartbeat 3600");
    ok(c.http.threads == 17, "threads 17");
    ok(strcmp(c.http.cors_origin, "https://example.com") == 0, "cors_origin");
    ok(config_load_string(&c,
                          "{\"cors_origin\": [\"https://a.example\", "
                          "\"http://127.0.0.1:9\"]}",
                          "o.json", err, sizeof(err)) == 0 &&
           strcmp(c.http.cors_origin, "https://a.example http://127.0.0.1:9") == 0,
       "cors_origin: a list, kept space-separated (%s)", err);
    ok(c.log_level == LOG_DEBUG, "log_level debug");
    ok(config_load_string(
           &c,
           "{\"store\": {\"type\": \"redis\", \"url\": \"unix:///run/r.sock\", "
           "\"prefix\": \"app:\", \"maxbuffer\": 7, \"buffertime_ms\": 0, "
           "\"timeout_ms\": 250, \"sync\": false}}",
           "r.json", err, sizeof(err)) == 0,
       "a redis store loads (%s)", err);
    ok(strcmp(c.store_type, "redis") == 0 &&
           strcmp(c.store_url, "unix:///run/r.sock") == 0 &&
           strcmp(c.store_prefix, "app:") == 0 && c.store_maxbuffer == 7 &&
           c.store_buffertime_ms == 0 && c.store_timeout_ms == 250 && !c.broker.sync,
       "redis store fields kept");
    {
        config d;
        config_init(&d);
        ok(config_load_string(&d, "{\"store\": {\"type\": \"redis\"}}", "d.json", err,
                              sizeof(err)) == 0 &&
               strcmp(d.store_url, "redis://127.0.0.1:6379/0") == 0,
           "redis without a url defaults to the local server");
        ok(config_set_store_url(&d, "http://x", err, sizeof(err)) < 0 &&
               strstr(err, "redis://"),
           "--store refuses a non-redis URL");
        ok(config_set_store_url(&d, "redis://127.0.0.1:7000/2", err, sizeof(err)) == 0 &&
               strcmp(d.store_type, "redis") == 0 &&
               strcmp(d.store_url, "redis://127.0.0.1:7000/2") == 0,
           "--store selects redis");
        config_free(&d);
    }
    {
        config d;
        config_init(&d);
        ok(d.broker.max_channels == 100000 && d.broker.max_streams == 15000 &&
               d.broker.max_streams_per_channel == 10000 &&
               d.broker.max_patterns_per_stream == 64 &&
               d.broker.max_pattern_streams == 10000 &&
               d.broker.max_pattern_bytes == (size_t)64 << 20 &&
               d.broker.max_connections_per_channel == 10000 &&
               d.http.stream_buffer == 1048576 && d.http.idle_timeout_s == 30 &&
               d.http.backoff_ms == 5000 && d.http.max_retry_ms == 60000 &&
               d.http.max_delivery_lag_ms == 1000 && d.http.max_response == 1048576,
           "limit defaults");
        ok(config_load_string(
               &d,
               "{\"limits\": {\"max_channels\": 2, \"max_streams\": 3, "
               "\"max_streams_per_channel\": 4, "
               "\"max_connections_per_channel\": 5, \"stream_buffer\": 4096, "
               "\"idle_timeout_s\": 1, \"backoff_ms\": 0, \"max_retry_ms\": 7, "
               "\"max_delivery_lag_ms\": 0, \"max_response\": 8192}}",
               "l.json", err, sizeof(err)) == 0 &&
               d.broker.max_channels == 2 && d.broker.max_streams == 3 &&
               d.broker.max_streams_per_channel == 4 &&
               d.broker.max_connections_per_channel == 5 &&
               d.http.stream_buffer == 4096 && d.http.idle_timeout_s == 1 &&
               d.http.backoff_ms == 0 && d.http.max_retry_ms == 7 &&
               d.http.max_delivery_lag_ms == 0 && d.http.max_response == 8192,
           "every limit loads (%s)", err);
        ok(config_load_string(&d, "{\"limits\": {\"stream_buffer\": 100}}", "l.json", err,
                              sizeof(err)) < 0 &&
               strcmp(err,
                      "l.json:1: field 'limits.stream_buffer': must be an integer from "
                      "4096 to 1073741824") == 0,
           "a limit out of range names its field (%s)", err);
        ok(config_load_string(&d, "{\n  \"limits\": {\n    \"max_retry_ms\": 86400001}}",
                              "l.json", err, sizeof(err)) < 0 &&
               strcmp(err, "l.json:3: field 'limits.max_retry_ms': must be an integer "
                           "from 0 to 86400000") == 0,
           "max_retry_ms out of range names its file, line and field (%s)", err);
        ok(config_load_string(&d, "{\"limits\": {\"max_response\": 4095}}", "l.json", err,
                              sizeof(err)) < 0 &&
               strstr(err, "field 'limits.max_response': must be an integer from 4096"),
           "max_response below 4096 is refused (%s)", err);
        ok(config_load_string(&d, "{\"limits\": {\"idle_timeout_s\": 0}}", "l.json", err,
                              sizeof(err)) < 0 &&
               strstr(err, "limits.idle_timeout_s"),
           "idle_timeout_s 0 is refused");
        config_free(&d);
    }
    ok(c.path == NULL, "load_string sets no path");

    /* A later file overrides only what it names. */
    ok(config_load_string(&c,
                          "{\"channel_defaults\": {\"history\": 5}, \"listen\": \":0\"}",
                          "p.json", err, sizeof(err)) == 0,
       "partial override loads");
    ok(c.broker.defaults.history == 5 && c.broker.defaults.queue_limit == 1 &&
           c.broker.defaults.retry_ms == 86400000,
       "partial channel_defaults keep the other options");
    ok(strcmp(c.http.host, "0.0.0.0") == 0 && c.http.port == 0, "listen :0 is 0.0.0.0:0");
    ok(c.broker.heartbeat_s == 3600 && !c.broker.autocreate, "fields not named are kept");
    ok(config_load_string(&c, "{\"log_level\": \"error\", \"heartbeat_s\": 1}", "p.json",
                          err, sizeof(err)) == 0 &&
           c.log_level == LOG_ERROR && c.broker.heartbeat_s == 1,
       "log_level error, heartbeat 1");
    ok(config_load_string(&c,
                          "{\"retention\": [{\"match\": \"a.*\", \"history_age_s\": 2}, "
                          "{\"match\": \"b\", \"history\": 3, \"history_bytes\": 9}], "
                          "\"limits\": {\"max_query_results\": 50}}",
                          "p.json", err, sizeof(err)) == 0 &&
           c.broker.nretention == 2 && strcmp(c.broker.retention[0].match, "a.*") == 0 &&
           c.broker.retention[0].history_age_s == 2 &&
           c.broker.retention[0].history == -1 && c.broker.retention[1].history == 3 &&
           c.broker.retention[1].history_bytes == 9 &&
           c.broker.retention[1].history_age_s == -1 && c.broker.max_query_results == 50,
       "retention rules and max_query_results (%s)", err);
    ok(config_load_string(&c, "{\"sessions\": {\"retention_s\": 0, \"max\": 7}}",
                          "p.json", err, sizeof(err)) == 0 &&
           c.broker.sessions_retention_s == 0 && c.broker.sessions_max == 7,
       "sessions bounds");
    ok(config_load_string(&c, "{\"log_level\": \"warn\"}", "p.json", err, sizeof(err)) ==
               0 &&
           c.log_level == LOG_WARN,
       "log_level warn");
    ok(c.log_format == LOG_TEXT && !c.access_log && !c.broker.access_log &&
           !c.http.access_log,
       "log_format text and no access log by default");
    ok(config_load_string(&c, "{\"log_format\": \"json\", \"access_log\": true}",
                          "p.json", err, sizeof(err)) == 0 &&
           c.log_format == LOG_JSON && c.access_log && c.broker.access_log &&
           c.http.access_log,
       "log_format json, access_log true (broker and http)");
    ok(config_load_string(&c, "{\"log_format\": \"text\", \"access_log\": false}",
                          "p.json", err, sizeof(err)) == 0 &&
           c.log_format == LOG_TEXT && !c.access_log && !c.http.access_log,
       "log_format text, access_log false");
    config_free(&c);
}

struct err_case {
    const char *text;
    const char *want; /* the whole message, or a prefix if it ends in '*' */
};

/* JSON strings for the auth cases: a 40-byte secret, SHA-256 hex digits. */
#define S40 "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\""
#define H64 "\"0000000000000000000000000000000000000000000000000000000000000000\""
#define H64B "\"1111111111111111111111111111111111111111111111111111111111111111\""
#define HZZ "\"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\""

static const struct err_case err_cases[] = {
    /* top-level integers */
    {"{\n  \"heartbeat_s\": 0\n}",
     "t.json:2: field 'heartbeat_s': must be an integer from 1 to 3600"},
    {"{\"node_ttl_s\": 9}",
     "t.json:1: field 'node_ttl_s': must be an integer from 10 to 604800"},
    {"{\"node_ttl_s\": 604801}",
     "t.json:1: field 'node_ttl_s': must be an integer from 10 to 604800"},
    {"{\"heartbeat_s\": 3601}",
     "t.json:1: field 'heartbeat_s': must be an integer from 1 to 3600"},
    {"{\"heartbeat_s\": \"15\"}",
     "t.json:1: field 'heartbeat_s': must be an integer from 1 to 3600"},
    {"{\"heartbeat_s\": 15.0}",
     "t.json:1: field 'heartbeat_s': must be an integer from 1 to 3600"},
    {"{\"heartbeat_s\": true}",
     "t.json:1: field 'heartbeat_s': must be an integer from 1 to 3600"},
    {"{\"heartbeat_s\": null}",
     "t.json:1: field 'heartbeat_s': must be an integer from 1 to 3600"},
    {"{\"heartbeat_s\": 99999999999999999}",
     "t.json:1: field 'heartbeat_s': must be an integer from 1 to 3600"},
    {"{\"threads\": -1}", "t.json:1: field 'threads': must be an integer from 0 to 17"},
    {"{\"threads\": 18}", "t.json:1: field 'threads': must be an integer from 0 to 17"},
    {"{\"threads\": \"2\"}",
     "t.json:1: field 'threads': must be an integer from 0 to 17"},
    /* listen */
    {"{\"listen\": \"1.2.3.4\"}", "t.json:1: field 'listen': must be *"},
    {"{\"listen\": \"h:65536\"}", "t.json:1: field 'listen': must be *"},
    {"{\"listen\": \"::1:80\"}", "t.json:1: field 'listen': must be *"},
    {"{\"listen\": 8080}", "t.json:1: field 'listen': must be *"},
    {"{\"listen\": \"h:\"}", "t.json:1: field 'listen': must be *"},
    /* store */
    {"{\"store\": \"memory\"}", "t.json:1: field 'store': must be an object"},
    {"{\"store\": {\"type\": \"sqlite\"}}",
     "t.json:1: field 'store.type': must be \"memory\" or \"redis\""},
    {"{\"store\": {\"type\": 1}}", "t.json:1: field 'store.type': must be a string"},
    {"{\"store\": {\"url\": 1}}", "t.json:1: field 'store.url': must be "
                                  "redis://[:password@]host:port/db or unix:///path"},
    {"{\"store\": {\"url\": \"http://x\"}}",
     "t.json:1: field 'store.url': must be redis://[:password@]host:port/db or "
     "unix:///path"},
    {"{\"store\": {\"prefix\": \"a/b\"}}",
     "t.json:1: field 'store.prefix': must be a string of at most 64 bytes without '/'"},
    {"{\"store\": {\"maxbuffer\": 0}}",
     "t.json:1: field 'store.maxbuffer': must be an integer from 1 to 100000"},
    {"{\"store\": {\"buffertime_ms\": -1}}",
     "t.json:1: field 'store.buffertime_ms': must be an integer from 0 to 10000"},
    {"{\"store\": {\"timeout_ms\": 99}}",
     "t.json:1: field 'store.timeout_ms': must be an integer from 100 to 600000"},
    {"{\"store\": {\"timeout_ms\": \"5s\"}}",
     "t.json:1: field 'store.timeout_ms': must be an integer from 100 to 600000"},
    {"{\"store\": {\"sync\": 1}}", "t.json:1: field 'store.sync': must be true or false"},
    {"{\"store\": {\"type\": \"memory\",\n\n \"host\": \"x\"}}",
     "t.json:3: field 'store.host': unknown key"},
    /* autocreate */
    {"{\"autocreate\": \"yes\"}", "t.json:1: field 'autocreate': must be true or false"},
    {"{\"autocreate\": 1}", "t.json:1: field 'autocreate': must be true or false"},
    /* channel_defaults */
    {"{\"channel_defaults\": []}",
     "t.json:1: field 'channel_defaults': must be an object"},
    {"{\"channel_defaults\": {\"history\": -1}}",
     "t.json:1: field 'channel_defaults.history': must be an integer from 0 to 100000"},
    {"{\"channel_defaults\": {\"history\": 100001}}",
     "t.json:1: field 'channel_defaults.history': must be an integer from 0 to 100000"},
    {"{\"channel_defaults\": {\"history\": 1.0}}",
     "t.json:1: field 'channel_defaults.history': must be an integer from 0 to 100000"},
    {"{\"channel_defaults\": {\"queue_limit\": 0}}",
     "t.json:1: field 'channel_defaults.queue_limit': must be an integer from 1 to "
     "100000"},
    {"{\"channel_defaults\": {\"queue_limit\": \"5\"}}",
     "t.json:1: field 'channel_defaults.queue_limit': must be an integer from 1 to "
     "100000"},
    {"{\"channel_defaults\": {\"retry_ms\": 86400001}}",
     "t.json:1: field 'channel_defaults.retry_ms': must be an integer from 0 to "
     "86400000"},
    {"{\"channel_defaults\": {\"history\": 1,\n \"foo\": 1}}",
     "t.json:2: field 'channel_defaults.foo': unknown key"},
    /* retention */
    {"{\"retention\": {}}",
     "t.json:1: field 'retention': must be a list of at most 64 rules"},
    {"{\"retention\": [5]}", "t.json:1: field 'retention[0]': must be an object"},
    {"{\"retention\": [{\"history\": 1}]}",
     "t.json:1: field 'retention[0].match': is required"},
    {"{\"retention\": [{\"match\": \"a\"}, {\"match\": \"a.*.b\"}]}",
     "t.json:1: field 'retention[1].match': must be a channel name or pattern ('?' for "
     "one segment, '*' last for zero or more)"},
    {"{\"retention\": [{\"match\": \"a\", \"history_age_s\": -1}]}",
     "t.json:1: field 'retention[0].history_age_s': must be an integer from 0 to "
     "315360000"},
    {"{\"retention\": [{\"match\": \"a\", \"history_bytes\": 1073741825}]}",
     "t.json:1: field 'retention[0].history_bytes': must be an integer from 0 to "
     "1073741824"},
    {"{\"retention\": [{\"match\": \"a\", \"queue_limit\": 1}]}",
     "t.json:1: field 'retention[0].queue_limit': unknown key"},
    /* inside retention[i]: the line of the field, else of the element */
    {"{\"retention\": [\n {\"match\": \"a\"},\n {\"match\": \"b\",\n  \"history\": -1}]}",
     "t.json:4: field 'retention[1].history': must be an integer from 0 to 100000"},
    {"{\"retention\": [\n {\"match\": \"x.*\"},\n [1],\n {\"history\": 1,\n  \"match\": "
     "\"a.*.b\"}]}",
     "t.json:3: field 'retention[1]': must be an object"},
    {"{\"retention\": [{\"match\": \"y\"}, {\"match\": \"a\"},\n {\"history\": 1}]}",
     "t.json:2: field 'retention[2].match': is required"},
    {"{\"retention\": [{\"match\": \"a\"},\n {\"match\": \"b\",\n  \"history_bytes\": "
     "1,\n"
     "  \"queue_limit\": 1}]}",
     "t.json:4: field 'retention[1].queue_limit': unknown key"},
    {"{\"retention\":\n [{\"match\": \"a\"},\n  {\"m\\u0061tch\": \"b.*.c\"}]}",
     "t.json:3: field 'retention[1].match': must be a channel name or pattern ('?' for "
     "one segment, '*' last for zero or more)"},
    /* inside auth.jwt.keys[i] and auth.api_keys[i]: the line of the field, else
     * of the element */
    {"{\"auth\": {\"jwt\": {\"keys\": [5]}}}",
     "t.json:1: field 'auth.jwt.keys[0]': must be an object"},
    {"{\"auth\": {\"jwt\": {\"keys\": [\n {\"alg\": \"HS256\", \"secret\": " S40 "},\n"
     " {\"alg\": \"HS256\",\n  \"secret\": \"short\"}]}}}",
     "t.json:4: field 'auth.jwt.keys[1].secret': must be 32 to 4096 bytes"},
    {"{\"auth\": {\"jwt\": {\"keys\": [\n {\"alg\": \"HS256\", \"secret\": " S40 "},\n"
     " {\"secret\": " S40 ",\n  \"alg\": \"none\"}]}}}",
     "t.json:4: field 'auth.jwt.keys[1].alg': must be one of HS256, HS384, HS512, "
     "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA"},
    {"{\"auth\": {\"jwt\":\n {\"keys\": [\n  {\"alg\": \"HS256\",\n   \"kid\": \"\"}]}}}",
     "t.json:4: field 'auth.jwt.keys[0].kid': must be a string of 1 to 128 bytes"},
    {"{\"auth\": {\"jwt\": {\"keys\": [{\"alg\": \"HS256\", \"secret\": " S40 "},\n"
     " {\"alg\": \"HS256\",\n  \"pem\": \"x\"}]}}}",
     "t.json:3: field 'auth.jwt.keys[1].pem': unknown key"},
    {"{\"auth\": {\"jwt\": {\"keys\": [{\"alg\": \"HS256\", \"secret\": " S40 "},\n"
     " {\"secret\": " S40 "}]}}}",
     "t.json:2: field 'auth.jwt.keys[1].alg': is required"},
    {"{\"auth\": {\"jwt\": {\"keys\": [{\"alg\": \"HS256\", \"secret\": " S40 "},\n"
     " {\"alg\": \"RS256\",\n  \"secret\": " S40 "}]}}}",
     "t.json:2: field 'auth.jwt.keys[1]': RS256 needs exactly one of \"public_key_file\" "
     "(PEM)"},
    {"{\"auth\": {\"jwt\": {\"keys\": [\n {\"alg\": \"HS512\",\n  \"secret\": " S40
     "}]}}}",
     "t.json:3: field 'auth.jwt.keys[0].secret': a HS512 secret must be at least as "
     "long as its hash (64 bytes)"},
    {"{\"auth\": {\"jwt\": {\"keys\": [\n {\"alg\": \"HS256\", \"kid\": \"a\", "
     "\"secret\": " S40 "},\n {\"alg\": \"HS256\", \"secret\": " S40
     ",\n  \"kid\": \"a\"}]}}}",
     "t.json:4: field 'auth.jwt.keys[1].kid': \"a\" is used twice"},
    {"{\"auth\": {\"api_keys\": [\n {\"name\": \"a\", \"role\": \"r\", \"sha256\": " H64
     "},\n {\"name\": \"b\", \"role\": \"r\",\n  \"sha256\": " HZZ "}]}}",
     "t.json:4: field 'auth.api_keys[1].sha256': must be hex"},
    {"{\"auth\": {\"api_keys\": [\n {\"name\": \"a\", \"role\": \"r\", \"sha256\": " H64
     "},\n {\"name\": \"b\"}]}}",
     "t.json:3: field 'auth.api_keys[1]': must be {\"name\": AUTHID, \"role\": ROLE, "
     "\"sha256\": 64 hex digits of the key's SHA-256}"},
    {"{\"auth\": {\"roles\": {\"r\": [{\"match\": \"*\", \"allow\": [\"publish\"]}]},\n"
     " \"api_keys\": [\n {\"name\": \"a\", \"role\": \"r\", \"sha256\": " H64 "},\n"
     " {\"name\": \"b\", \"sha256\": " H64B ",\n  \"role\": \"nobody\"}]}}",
     "t.json:5: field 'auth.api_keys[1].role': \"nobody\" is not in \"auth.roles\""},
    {"{\"limits\": {\"max_query_results\": 0}}",
     "t.json:1: field 'limits.max_query_results': must be an integer from 1 to 100000"},
    /* limits */
    {"{\"limits\": 5}", "t.json:1: field 'limits': must be an object"},
    {"{\"limits\": {\"max_body\": 0}}",
     "t.json:1: field 'limits.max_body': must be an integer from 1 to 1073741824"},
    {"{\"limits\": {\"max_body\": 1073741825}}",
     "t.json:1: field 'limits.max_body': must be an integer from 1 to 1073741824"},
    {"{\"limits\": {\"max_headers\": 1023}}",
     "t.json:1: field 'limits.max_headers': must be an integer from 1024 to 1048576"},
    {"{\"limits\": {\"max_headers\": 1048577}}",
     "t.json:1: field 'limits.max_headers': must be an integer from 1024 to 1048576"},
    {"{\"limits\": {\"max_body\": 10, \"body\": 1}}",
     "t.json:1: field 'limits.body': unknown key"},
    /* cors_origin */
    {"{\"cors_origin\": \"\"}",
     "t.json:1: field 'cors_origin': must be \"*\", an origin (\"https://app.example\") "
     "or a list of origins, without blanks, CR, LF or NUL"},
    {"{\"cors_origin\": \"a\\r\\nb\"}",
     "t.json:1: field 'cors_origin': must be \"*\", an origin (\"https://app.example\") "
     "or a list of origins, without blanks, CR, LF or NUL"},
    {"{\"cors_origin\": \"a\\u0000b\"}", "t.json:1: invalid JSON: *"}, /* jansson */
    {"{\"cors_origin\": 5}",
     "t.json:1: field 'cors_origin': must be \"*\", an origin (\"https://app.example\") "
     "or a list of origins, without blanks, CR, LF or NUL"},
    {"{\"cors_origin\": \"https://a.example https://b.example\"}",
     "t.json:1: field 'cors_origin': must be \"*\", an origin (\"https://app.example\") "
     "or a list of origins, without blanks, CR, LF or NUL"},
    {"{\"cors_origin\": [\"https://a.example\", \"*\"]}",
     "t.json:1: field 'cors_origin': must be \"*\", an origin (\"https://app.example\") "
     "or a list of origins, without blanks, CR, LF or NUL"},
    {"{\"cors_origin\": [\"https://a.example\", 5]}",
     "t.json:1: field 'cors_origin': must be \"*\", an origin (\"https://app.example\") "
     "or a list of origins, without blanks, CR, LF or NUL"},
    {"{\"cors_origin\": []}",
     "t.json:1: field 'cors_origin': must be \"*\", an origin (\"https://app.example\") "
     "or a list of origins, without blanks, CR, LF or NUL (1 to 100)"},
    /* log_level */
    {"{\"log_level\": \"verbose\"}",
     "t.json:1: field 'log_level': must be one of debug, info, warn, error"},
    {"{\"log_level\": \"INFO\"}",
     "t.json:1: field 'log_level': must be one of debug, info, warn, error"},
    {"{\"log_level\": 1}",
     "t.json:1: field 'log_level': must be one of debug, info, warn, error"},
    /* log_format, access_log */
    {"{\"log_format\": \"xml\"}",
     "t.json:1: field 'log_format': must be \"text\" or \"json\""},
    {"{\"log_format\": \"JSON\"}",
     "t.json:1: field 'log_format': must be \"text\" or \"json\""},
    {"{\"log_format\": null}",
     "t.json:1: field 'log_format': must be \"text\" or \"json\""},
    {"{\n  \"heartbeat_s\": 5,\n  \"access_log\": \"yes\"\n}",
     "t.json:3: field 'access_log': must be true or false"},
    {"{\"access_log\": 1}", "t.json:1: field 'access_log': must be true or false"},
    /* sessions */
    {"{\"sessions\": 5}", "t.json:1: field 'sessions': must be an object"},
    {"{\n  \"sessions\": {\n    \"max\": 0}}",
     "t.json:3: field 'sessions.max': must be an integer from 1 to 10000000"},
    {"{\"sessions\": {\"max\": 10000001}}",
     "t.json:1: field 'sessions.max': must be an integer from 1 to 10000000"},
    {"{\"sessions\": {\"retention_s\": -1}}",
     "t.json:1: field 'sessions.retention_s': must be an integer from 0 to 31536000"},
    {"{\"sessions\": {\"retention_s\": \"60\"}}",
     "t.json:1: field 'sessions.retention_s': must be an integer from 0 to 31536000"},
    {"{\"sessions\": {\"keep\": 1}}", "t.json:1: field 'sessions.keep': unknown key"},
    /* unknown keys */
    {"{\n\"listen\": \":1\",\n\"port\": 80}", "t.json:3: field 'port': unknown key"},
    {"{\"store\": {}, \"Store\": {}}", "t.json:1: field 'Store': unknown key"},
    /* the scanner skips strings and nested objects when it looks for a key */
    {"{\"cors_origin\": \"\\\"max_body\\\":{\",\n"
     "\"channel_defaults\": {\"history\": 1},\n"
     "\"limits\": {\"max_headers\": 2048,\n"
     "  \"max_body\": -5}}",
     "t.json:4: field 'limits.max_body': must be an integer from 1 to 1073741824"},
    {"{\"store\": {\"url\": \"redis://\\\"\\\\\"},\n\"heartbeat_s\": 0}",
     "t.json:2: field 'heartbeat_s': must be an integer from 1 to 3600"},
    /* a key written with escapes is not found: the parent's line, or line 1 */
    {"\n{\"limits\":\n {\"max_b\\u006fdy\": 0}}",
     "t.json:2: field 'limits.max_body': must be an integer from 1 to 1073741824"},
    {"\n\n{\"heartb\\u0065at_s\": 0}",
     "t.json:1: field 'heartbeat_s': must be an integer from 1 to 3600"},
    /* syntax errors and the top level */
    {"", "t.json:1: invalid JSON: *"},
    {"{\n\"heartbeat_s\": 1,\n}", "t.json:3: invalid JSON: *"},
    {"{\"heartbeat_s\": 1, \"heartbeat_s\": 2}", "t.json:1: invalid JSON: duplicate*"},
    {"{\"limits\": {\"max_body\": 1,\n \"max_body\": 2}}",
     "t.json:2: invalid JSON: duplicate*"},
    {"\n[1]", "t.json:2: invalid JSON: the top level must be an object"},
    {"\"x\"", "t.json:1: invalid JSON: *"},
    {"{} {}", "t.json:1: invalid JSON: *"},
};

static int msg_matches(const char *got, const char *want)
{
    size_t n = strlen(want);

    if (n && want[n - 1] == '*')
        return strncmp(got, want, n - 1) == 0;
    return strcmp(got, want) == 0;
}

static void test_load_errors(void)
{
    config c, before;

    config_init(&c);
    for (size_t i = 0; i < N_ELEMS(err_cases); i++) {
        char err[512] = "";
        int rc;

        before = c;
        rc = config_load_string(&c, err_cases[i].text, "t.json", err, sizeof(err));
        ok(rc == -1 && msg_matches(err, err_cases[i].want), "error case %zu: %s", i, err);
        ok(memcmp(&c, &before, sizeof(c)) == 0,
           "error case %zu leaves the config unchanged", i);
    }
    config_free(&c);
}

/* Valid fields before the bad one must not leak into the config. */
static void test_unchanged(void)
{
    config c, copy;
    char err[512] = "";
    const char *bad = "{\"listen\": \"10.0.0.1:1\", \"store\": {\"url\": \"redis://u\"},"
                      " \"cors_origin\": \"x\", \"autocreate\": false,"
                      " \"channel_defaults\": {\"history\": 7}, \"log_level\": \"debug\","
                      " \"limits\": {\"max_body\": 5}, \"heartbeat_s\": 9000}";

    config_init(&c);
    config_load_string(&c, "{\"cors_origin\": \"https://a\"}", "a.json", err,
                       sizeof(err));
    config_init(&copy);
    config_load_string(&copy, "{\"cors_origin\": \"https://a\"}", "a.json", err,
                       sizeof(err));

    ok(config_load_string(&c, bad, "bad.json", err, sizeof(err)) == -1,
       "bad file rejected");
    ok(strcmp(err,
              "bad.json:1: field 'heartbeat_s': must be an integer from 1 to 3600") == 0,
       "message names the last field (%s)", err);
    ok(config_eq(&c, &copy), "config unchanged after a late error");
    ok(config_load_string(&c, NULL, "n.json", err, sizeof(err)) == -1,
       "NULL text rejected");
    ok(config_load_string(&c, "{\"heartbeat_s\": 0}", "x.json", NULL, 0) == -1,
       "errors without an error buffer");
    ok(config_eq(&c, &copy), "config unchanged");
    config_free(&c);
    config_free(&copy);
}

/* Write 'text' to a new temp file; returns its malloc'd path. */
static char *write_temp(const char *text, size_t len)
{
    char *path = strdup("/tmp/test_config_XXXXXX");
    int fd = mkstemp(path);

    if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
        diag("cannot write a temp file");
        if (fd >= 0)
            close(fd);
        free(path);
        return NULL;
    }
    close(fd);
    return path;
}

static void test_load_file(void)
{
    config c, copy;
    char err[512] = "", want[600];
    char *path;
    const char *good = "{\n  \"listen\": \"127.0.0.1:9090\",\n  \"heartbeat_s\": 5\n}\n";
    const char *syntax = "{\n  \"listen\": \"127.0.0.1:9090\",\n  \"heartbeat_s\" 5\n}\n";
    const char *nested = "{\n"
                         "  \"listen\": \"127.0.0.1:9090\",\n"
                         "  \"limits\": {\n"
                         "    \"max_headers\": 4096,\n"
                         "    \"max_body\": 0\n"
                         "  }\n"
                         "}\n";
    const char *unknown = "{\n  \"heartbeat_s\": 5,\n  \"colour\": \"blue\"\n}\n";

    config_init(&c);

    path = write_temp(good, strlen(good));
    ok(path && config_load_file(&c, path, err, sizeof(err)) == 0, "file loads (%s)", err);
    ok(c.http.port == 9090 && c.broker.heartbeat_s == 5, "file values applied");
    ok(c.path && path && strcmp(c.path, path) == 0, "path recorded");
    unlink(path);
    free(path);

    config_init(&copy);
    config_load_string(&copy, good, "x", err, sizeof(err));
    copy.path = strdup(c.path);

    path = write_temp(syntax, strlen(syntax));
    ok(path && config_load_file(&c, path, err, sizeof(err)) == -1,
       "syntax error rejected");
    snprintf(want, sizeof(want), "%s:3: invalid JSON: ", path);
    ok(strncmp(err, want, strlen(want)) == 0, "syntax error on line 3: %s", err);
    ok(config_eq(&c, &copy), "config unchanged after a syntax error");
    unlink(path);
    free(path);

    path = write_temp(nested, strlen(nested));
    ok(path && config_load_file(&c, path, err, sizeof(err)) == -1,
       "bad nested field rejected");
    snprintf(want, sizeof(want),
             "%s:5: field 'limits.max_body': must be an integer from 1 to 1073741824",
             path);
    ok(strcmp(err, want) == 0, "bad nested field on line 5: %s", err);
    ok(config_eq(&c, &copy), "config unchanged after a bad field");
    unlink(path);
    free(path);

    path = write_temp(unknown, strlen(unknown));
    ok(path && config_load_file(&c, path, err, sizeof(err)) == -1,
       "unknown key rejected");
    snprintf(want, sizeof(want), "%s:3: field 'colour': unknown key", path);
    ok(strcmp(err, want) == 0, "unknown key on line 3: %s", err);
    unlink(path);
    free(path);

    ok(config_load_file(&c, "/tmp/no/such/ssebroker.json", err, sizeof(err)) == -1,
       "missing file rejected");
    ok(strcmp(err,
              "/tmp/no/such/ssebroker.json: cannot open: No such file or directory") == 0,
       "missing file message: %s", err);

    ok(config_load_file(&c, "/tmp", err, sizeof(err)) == -1, "directory rejected");
    ok(strncmp(err, "/tmp: cannot read: ", 19) == 0, "directory message: %s", err);

    /* Exactly 1 MiB of valid JSON loads; one byte more is refused. */
    size_t big = 1024 * 1024;
    char *text = malloc(big + 1);
    memset(text, ' ', big + 1);
    text[0] = '{';
    text[big - 1] = '}';
    path = write_temp(text, big);
    ok(path && config_load_file(&c, path, err, sizeof(err)) == 0, "1 MiB file loads (%s)",
       err);
    unlink(path);
    free(path);
    text[big - 1] = ' ';
    text[big] = '}';
    path = write_temp(text, big + 1);
    ok(path && config_load_file(&c, path, err, sizeof(err)) == -1,
       "file over 1 MiB rejected");
    ok(strstr(err, "larger than") != NULL, "too large message: %s", err);
    unlink(path);
    free(path);
    free(text);

    /* A NUL byte in the file is a syntax error, not a silently shorter file. */
    path = write_temp("{}\0{", 4);
    ok(path && config_load_file(&c, path, err, sizeof(err)) == -1,
       "NUL in file rejected (%s)", err);
    unlink(path);
    free(path);

    config_free(&c);
    config_free(&copy);
}

struct listen_case {
    const char *s;
    int rc;
    const char *host;
    int port;
};

static const struct listen_case listen_cases[] = {
    {"127.0.0.1:8080", 0, "127.0.0.1", 8080},
    {"localhost:80", 0, "localhost", 80},
    {"my-host.example_1.com:1", 0, "my-host.example_1.com", 1},
    {":9000", 0, "0.0.0.0", 9000},
    {"0.0.0.0:0", 0, "0.0.0.0", 0},
    {"[::1]:8080", 0, "::1", 8080},
    {"[::]:65535", 0, "::", 65535},
    {"[fe80::1%eth0]:80", 0, "fe80::1%eth0", 80},
    {"h:007", 0, "h", 7},
    {"h:65536", -1, NULL, 0},
    {"h:99999999999999999999", -1, NULL, 0},
    {"h:-1", -1, NULL, 0},
    {"h:+1", -1, NULL, 0},
    {"h:1a", -1, NULL, 0},
    {"h: 1", -1, NULL, 0},
    {"h:", -1, NULL, 0},
    {"8080", -1, NULL, 0},
    {"", -1, NULL, 0},
    {":", -1, NULL, 0},
    {"::1:80", -1, NULL, 0},
    {"[::1]80", -1, NULL, 0},
    {"[::1]", -1, NULL, 0},
    {"[]:80", -1, NULL, 0},
    {"[::1:80", -1, NULL, 0},
    {"bad host:80", -1, NULL, 0},
    {"a/b:80", -1, NULL, 0},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:1", 0,
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1}, /* 63 bytes */
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:1", -1, NULL,
     0}, /* 64 bytes */
};

static void test_listen(void)
{
    for (size_t i = 0; i < N_ELEMS(listen_cases); i++) {
        const struct listen_case *t = &listen_cases[i];
        char host[64] = "unchanged";
        int port = -7;
        int rc = config_parse_listen(t->s, host, sizeof(host), &port);

        if (t->rc == 0)
            ok(rc == 0 && strcmp(host, t->host) == 0 && port == t->port,
               "listen '%s' -> %s %d", t->s, host, port);
        else
            ok(rc == -1 && strcmp(host, "unchanged") == 0 && port == -7,
               "listen '%s' rejected, outputs untouched", t->s);
    }
    char small[4];
    int port;
    ok(config_parse_listen("abc:1", small, sizeof(small), &port) == 0,
       "host fits exactly");
    ok(config_parse_listen("abcd:1", small, sizeof(small), &port) == -1, "host too long");
    ok(config_parse_listen(":1", small, sizeof(small), &port) == -1,
       "0.0.0.0 does not fit in 4 bytes");
    ok(config_parse_listen(NULL, small, sizeof(small), &port) == -1, "NULL rejected");
}

struct opts_case {
    const char *json;
    int rc;
    const char *err;                    /* on error */
    int history, queue_limit, retry_ms; /* on success */
};

static const struct opts_case opts_cases[] = {
    {"{}", 0, NULL, 100, 1000, 3000},
    {"{\"history\": 0}", 0, NULL, 0, 1000, 3000},
    {"{\"history\": 100000, \"queue_limit\": 100000, \"retry_ms\": 86400000}", 0, NULL,
     100000, 100000, 86400000},
    {"{\"queue_limit\": 1, \"retry_ms\": 0}", 0, NULL, 100, 1, 0},
    {"{\"history\": -1}", -1, "'history' must be an integer from 0 to 100000", 0, 0, 0},
    {"{\"history\": 100001}", -1, "'history' must be an integer from 0 to 100000", 0, 0,
     0},
    {"{\"history\": 5.0}", -1, "'history' must be an integer from 0 to 100000", 0, 0, 0},
    {"{\"history\": true}", -1, "'history' must be an integer from 0 to 100000", 0, 0, 0},
    {"{\"history\": \"5\"}", -1, "'history' must be an integer from 0 to 100000", 0, 0,
     0},
    {"{\"history\": null}", -1, "'history' must be an integer from 0 to 100000", 0, 0, 0},
    {"{\"queue_limit\": 0}", -1, "'queue_limit' must be an integer from 1 to 100000", 0,
     0, 0},
    {"{\"queue_limit\": 100001}", -1, "'queue_limit' must be an integer from 1 to 100000",
     0, 0, 0},
    {"{\"retry_ms\": -1}", -1, "'retry_ms' must be an integer from 0 to 86400000", 0, 0,
     0},
    {"{\"retry_ms\": 86400001}", -1, "'retry_ms' must be an integer from 0 to 86400000",
     0, 0, 0},
    {"{\"retry_ms\": 9223372036854775807}", -1,
     "'retry_ms' must be an integer from 0 to 86400000", 0, 0, 0},
    {"{\"foo\": 1}", -1, "unknown option 'foo'", 0, 0, 0},
    {"{\"history\": 1, \"foo\": 1}", -1, "unknown option 'foo'", 0, 0, 0}, /* atomic */
    {"{\"history\": 1, \"retry_ms\": -3}", -1,
     "'retry_ms' must be an integer from 0 to 86400000", 0, 0, 0}, /* atomic */
    {"[]", -1, "options must be a JSON object", 0, 0, 0},
    {"5", -1, "options must be a JSON object", 0, 0, 0},
};

static void test_chan_opts(void)
{
    for (size_t i = 0; i < N_ELEMS(opts_cases); i++) {
        const struct opts_case *t = &opts_cases[i];
        chan_opts o = {100, 1000, 3000, 0, 0};
        char err[256] = "";
        json_t *j = json_loads(t->json, JSON_DECODE_ANY, NULL);
        int rc = chan_opts_apply_json(&o, j, err, sizeof(err));

        if (t->rc == 0)
            ok(rc == 0 && o.history == t->history && o.queue_limit == t->queue_limit &&
                   o.retry_ms == t->retry_ms,
               "options %s", t->json);
        else
            ok(rc == -1 && strcmp(err, t->err) == 0 && o.history == 100 &&
                   o.queue_limit == 1000 && o.retry_ms == 3000,
               "options %s rejected: %s", t->json, err);
        json_decref(j);
    }

    chan_opts o = {1, 2, 3, 4, 5};
    ok(chan_opts_apply_json(&o, NULL, NULL, 0) == 0 && o.history == 1,
       "NULL object: no change");

    json_t *j = chan_opts_to_json(&o);
    chan_opts zero = {1, 2, 3, 0, 0};
    json_t *jz = chan_opts_to_json(&zero);
    ok(jz && json_object_size(jz) == 3, "the API form leaves out unset age and bytes");
    json_decref(jz);
    jz = chan_opts_to_json_all(&zero);
    ok(jz && json_object_size(jz) == 5, "the record form has every option");
    json_decref(jz);
    ok(j && json_object_size(j) == 5 &&
           json_integer_value(json_object_get(j, "history")) == 1 &&
           json_integer_value(json_object_get(j, "queue_limit")) == 2 &&
           json_integer_value(json_object_get(j, "retry_ms")) == 3 &&
           json_integer_value(json_object_get(j, "history_age_s")) == 4 &&
           json_integer_value(json_object_get(j, "history_bytes")) == 5,
       "chan_opts_to_json");
    chan_opts back = {0, 0, 0, 0, 0};
    ok(chan_opts_apply_json(&back, j, NULL, 0) == 0 && back.history == 1 &&
           back.queue_limit == 2 && back.retry_ms == 3 && back.history_age_s == 4 &&
           back.history_bytes == 5,
       "chan_opts_to_json round-trips");
    json_decref(j);
}

/* Protected mode: without an "auth" section, loopback listen addresses only. */
static void test_protected(void)
{
    static const struct {
        const char *host;
        int want;
    } hosts[] = {
        {"127.0.0.1", 1},
        {"127.0.0.2", 1},
        {"127.255.255.254", 1},
        {"::1", 1},
        {"localhost", 1},
        {"::ffff:127.0.0.1", 1},
        {"0.0.0.0", 0},
        {"::", 0},
        {"", 0},
        {"10.0.0.1", 0},
        {"128.0.0.1", 0},
        {"::2", 0},
        {"example.com", 0},
        {"126.255.255.255", 0},
    };
    for (size_t i = 0; i < N_ELEMS(hosts); i++)
        ok(config_host_is_loopback(hosts[i].host) == hosts[i].want, "'%s' is%s loopback",
           hosts[i].host, hosts[i].want ? "" : " not");

    config c;
    char err[512] = "";
    ok(config_init(&c) == 0, "init");
    ok(config_check(&c, err, sizeof(err)) == 0, "the default listen needs no auth");
    ok(config_set_store_url(&c, "redis://127.0.0.1:1", err, sizeof(err)) == 0, "store");
    ok(config_parse_listen("0.0.0.0:80", c.http.host, sizeof(c.http.host),
                           &c.http.port) == 0,
       "--listen 0.0.0.0:80");
    ok(config_check(&c, err, sizeof(err)) == -1 &&
           strncmp(err, "--listen '0.0.0.0': not a loopback address", 42) == 0,
       "refused without auth, naming --listen: %s", err);
    static const char pub[] = "{\n\"listen\": \"[::]:80\"\n}";
    char *path = write_temp(pub, strlen(pub)), want[600];
    ok(path && config_load_file(&c, path, err, sizeof(err)) == 0,
       "a public listen loads (%s)", err);
    snprintf(want, sizeof(want), "%s:1: field 'auth': required to listen on '::'", path);
    ok(config_check(&c, err, sizeof(err)) == -1 && strncmp(err, want, strlen(want)) == 0,
       "refused without auth, naming the file and field: %s", err);
    if (path)
        unlink(path);
    free(path);
    ok(config_load_string(&c,
                          "{\"auth\": {\"roles\": {\"open\": [{\"match\": \"*\", "
                          "\"allow\": [\"publish\", \"subscribe\", \"history\", "
                          "\"manage\"]}]}, \"anonymous_role\": \"open\"}}",
                          "p.json", err, sizeof(err)) == 0,
       "an auth section that opens everything on purpose (%s)", err);
    ok(config_check(&c, err, sizeof(err)) == 0, "then a public listen starts");
    config_free(&c);
}

int main(void)
{
    test_defaults();
    test_load_ok();
    test_load_errors();
    test_unchanged();
    test_load_file();
    test_listen();
    test_chan_opts();
    test_protected();
    return done_testing();
}
