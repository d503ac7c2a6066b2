/* test_prom.c - unit tests for the Prometheus text format writer
 * (src/base/prom.c) and the log line writer (src/base/log.c): escaped label
 * values, cumulative histograms ending in +Inf, and log lines that stay one
 * line, whatever their message. */
#include "src/base/prom.h"
#include "src/base/log.h"
#include "tests/tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/buffer.h>

/* The contents of 'b' as a NUL-terminated string (static buffer). */
static const char *text(struct evbuffer *b)
{
    static char out[4096];
    size_t n = evbuffer_get_length(b);
    if (n >= sizeof(out))
        n = sizeof(out) - 1;
    evbuffer_remove(b, out, n);
    out[n] = '\0';
    return out;
}

static void test_labels(void)
{
    char lb[64] = "";
    ok(prom_label(lb, sizeof(lb), "worker", "1") == 0 && strcmp(lb, "worker=\"1\"") == 0,
       "one label");
    ok(prom_label(lb, sizeof(lb), "v", "a\"b\\c\nd") == 0 &&
           strcmp(lb, "worker=\"1\",v=\"a\\\"b\\\\c\\nd\"") == 0,
       "quote, backslash and newline escaped: %s", lb);
    char small[16] = "x=\"1\"";
    ok(prom_label(small, sizeof(small), "long", "0123456789") == -1 &&
           strcmp(small, "x=\"1\"") == 0,
       "a label that does not fit leaves the buffer as it was");
}

static void test_histogram(void)
{
    static const double bounds[] = {0.1, 1, 10};
    prom_hist h;
    struct evbuffer *b = evbuffer_new();
    prom_hist_init(&h, bounds, 3);
    prom_hist_observe(&h, 0.05);
    prom_hist_observe(&h, 0.1); /* on a bound: in it (le) */
    prom_hist_observe(&h, 5);
    prom_hist_observe(&h, 100);
    prom_hist_write(b, "x_seconds", "w=\"1\"", &h);
    ok(strcmp(text(b), "x_seconds_bucket{w=\"1\",le=\"0.1\"} 2\n"
                       "x_seconds_bucket{w=\"1\",le=\"1\"} 2\n"
                       "x_seconds_bucket{w=\"1\",le=\"10\"} 3\n"
                       "x_seconds_bucket{w=\"1\",le=\"+Inf\"} 4\n"
                       "x_seconds_sum{w=\"1\"} 105.15\n"
                       "x_seconds_count{w=\"1\"} 4\n") == 0,
       "cumulative buckets, +Inf last, sum and count");
    prom_hist_init(&h, bounds, 3);
    prom_hist_write(b, "y", NULL, &h);
    ok(strstr(text(b), "y_bucket{le=\"+Inf\"} 0\ny_sum 0\ny_count 0\n") != NULL,
       "an empty histogram, without labels");
    prom_head(b, "z_total", "counter", "a\\b\nc");
    prom_sample_u(b, "z_total", "", 18446744073709551615ULL);
    ok(strcmp(text(b), "# HELP z_total a\\\\b\\nc\n# TYPE z_total counter\n"
                       "z_total 18446744073709551615\n") == 0,
       "HELP escaped, integers exact");
    evbuffer_free(b);
}

/* Run 'fn' with stderr into a pipe; the bytes written, NUL-terminated. */
static char *capture(void (*fn)(void))
{
    static char out[65536];
    int fds[2], saved = dup(2);
    ssize_t n;
    if (pipe(fds) < 0)
        return NULL;
    dup2(fds[1], 2);
    close(fds[1]);
    fn();
    dup2(saved, 2);
    close(saved);
    n = read(fds[0], out, sizeof(out) - 1);
    close(fds[0]);
    out[n < 0 ? 0 : n] = '\0';
    return out;
}

static void log_odd(void)
{
    char big[5000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_field f[] = {LOG_STR("path", "/a\"b\\c\x01\n\xff"), LOG_NUM("n", 3),
                     LOG_STR("none", NULL), LOG_STR("big", big)};
    log_fields(LOG_INFO, f, 4, "msg \"%s\"\r\n", "x\ty");
}

static void test_log(void)
{
    char *out;
    log_set_worker("w3");
    log_set_format(LOG_JSON);
    out = capture(log_odd);
    ok(out && strchr(out, '\n') == out + strlen(out) - 1, "JSON: one line");
    ok(out && strstr(out, "\"level\":\"info\",\"worker\":\"w3\",\"message\":\"msg "
                          "\\\"x\\ty\\\"\\r\\n\"") != NULL,
       "JSON: the message escaped: %s", out);
    ok(out &&
           strstr(out,
                  "\"path\":\"/a\\\"b\\\\c\\u0001\\n\\ufffd\",\"n\":3,\"none\":null") !=
               NULL,
       "JSON: control characters and a byte that is not UTF-8 escaped");
    ok(out && strlen(out) < 8192 && strstr(out, "\"big\":\"aaaa") != NULL,
       "JSON: a long value is cut, the line bounded (%zu bytes)", out ? strlen(out) : 0);
    ok(out && strcmp(out + strlen(out) - 3, "\"}\n") == 0, "JSON: the object is closed");
    log_set_format(LOG_TEXT);
    out = capture(log_odd);
    ok(out && strchr(out, '\n') == out + strlen(out) - 1, "text: one line");
    ok(out &&
           strstr(out, " info  w3 msg \"x\\ty\"\\r\\n path=\"/a\\\"b\\\\c\\x01\\n\\xff\" "
                       "n=3 none=- big=\"aaa") != NULL,
       "text: quoted and escaped values: %s", out);
    log_set_worker(NULL);
    out = capture(log_odd);
    ok(out && strstr(out, " info  msg") != NULL, "text: no worker, no name");
}

int main(void)
{
    test_labels();
    test_histogram();
    test_log();
    return done_testing();
}
