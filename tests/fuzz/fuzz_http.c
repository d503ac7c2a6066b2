/* fuzz_http.c - libFuzzer target for the HTTP API: raw request streams sent to
 * the real broker, running in-process on 127.0.0.1:0 over the memory store.
 *
 * Input: byte 0 picks a request line to put in front (bits 0-2: none, or one
 * of 'prefixes' below) and whether to keep the write side open (bit 3); the
 * rest is sent as is, as one or more pipelined requests. For each input the
 * target connects, writes, half-closes, and runs the loop (non-blocking) while
 * reading and dropping the answer, until the broker closes or a bound is hit.
 * Crashes and sanitizer reports are the findings; everything is freed at exit
 * so LeakSanitizer sees only real leaks. With FUZZ_HTTP_VERBOSE set in the
 * environment the answers are copied to stderr (to check a seed does what it
 * should). */
#include "src/broker/broker.h"
#include "src/config.h"
#include "src/http/http.h"
#include "kv/kv.h"
#include "src/base/log.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <event2/event.h>

#define MAX_ROUNDS 200    /* loop iterations per input */
#define MAX_NS 50000000LL /* and at most 50 ms */
#define RESET_EVERY 1000  /* inputs between deleting every channel */

static const char *const prefixes[8] = {
    NULL,
    "GET / HTTP/1.1\r\n",
    "POST /channels/fz/events HTTP/1.1\r\n",
    "PUT /channels/fz HTTP/1.1\r\n",
    "GET /channels/fz/events HTTP/1.1\r\nAccept: text/event-stream\r\n",
    "POST /channels/fz/connections HTTP/1.1\r\n",
    "DELETE /channels/fz HTTP/1.1\r\n",
    "GET /channels/fz/events?after=1&limit=5 HTTP/1.1\r\n",
};

static struct {
    struct event_base *base;
    config cfg;
    int cfg_ok;
    kv_store *kv;
    broker *b;
    http_server *http;
    struct sockaddr_in addr;
    unsigned long inputs;
    int verbose; /* FUZZ_HTTP_VERBOSE set: answers go to stderr */
} fz;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_http: %s\n", what);
    abort();
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void pump(int rounds)
{
    for (int i = 0; i < rounds; i++)
        event_base_loop(fz.base, EVLOOP_NONBLOCK);
}

/* Delete every channel: their streams end, their memory goes. */
static void delete_all_channels(void)
{
    chan *v[64];
    bool more = true;
    while (more) {
        size_t n = broker_chan_page(fz.b, NULL, 64, v, &more);
        for (size_t i = 0; i < n; i++)
            broker_chan_delete(fz.b, v[i]);
    }
    pump(20);
}

static void teardown(void)
{
    if (fz.b)
        delete_all_channels();
    http_server_free(fz.http);
    broker_free(fz.b);
    kv_free(fz.kv);
    if (fz.base)
        event_base_free(fz.base);
    if (fz.cfg_ok)
        config_free(&fz.cfg);
    memset(&fz, 0, sizeof(fz));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];

    signal(SIGPIPE, SIG_IGN);
    fz.verbose = getenv("FUZZ_HTTP_VERBOSE") != NULL;
    log_set_level(LOG_ERROR);
    if (!(fz.base = event_base_new()))
        fail("event_base_new failed");
    if (config_init(&fz.cfg) < 0)
        fail("config_init failed");
    fz.cfg_ok = 1;
    snprintf(fz.cfg.http.host, sizeof(fz.cfg.http.host), "127.0.0.1");
    fz.cfg.http.port = 0;
    /* Small limits so that inputs of a few KiB reach them. */
    fz.cfg.http.max_body = 2048;
    fz.cfg.http.max_headers = 1024;
    fz.cfg.broker.heartbeat_s = 1;
    if (!(fz.kv = kv_memory_new(fz.base)) ||
        !(fz.b = broker_new(fz.base, &fz.cfg.broker, fz.kv)))
        fail("cannot create the broker");
    if (broker_load(fz.b) < 0)
        fail("broker_load failed");
    if (!(fz.http = http_server_new(fz.base, fz.b, &fz.cfg.http, err, sizeof(err))))
        fail(err);
    fz.addr.sin_family = AF_INET;
    fz.addr.sin_port = htons((uint16_t)http_server_port(fz.http));
    fz.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    atexit(teardown);
    return 0;
}

/* Send 'req' on a fresh connection and drain the answer within the bounds. */
static void exchange(const char *req, size_t len, int half_close)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    size_t off = 0;
    int writing = 1, connected = 0, closed = 0;
    long long deadline = now_ns() + MAX_NS;
    char sink[16384];

    if (fd < 0)
        fail("socket failed");
    if (connect(fd, (struct sockaddr *)&fz.addr, sizeof(fz.addr)) == 0)
        connected = 1;
    else if (errno != EINPROGRESS)
        fail("connect failed");

    for (int round = 0; round < MAX_ROUNDS && now_ns() < deadline; round++) {
        event_base_loop(fz.base, EVLOOP_NONBLOCK);
        if (writing && off < len) {
            ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                off += (size_t)n;
                connected = 1;
            } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                       errno != EINPROGRESS && errno != ENOTCONN) {
                writing = 0; /* the broker closed on us: read what it said */
            }
        }
        if (writing && off == len && (connected || len == 0)) {
            writing = 0;
            if (half_close)
                shutdown(fd, SHUT_WR);
        }
        for (;;) {
            ssize_t n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
            if (n > 0 && fz.verbose)
                fwrite(sink, 1, (size_t)n, stderr);
            if (n > 0)
                continue;
            if (n == 0 ||
                (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN)) {
                closed = 1; /* closed or reset: this exchange is over */
                goto done;
            }
            break;
        }
    }
done:
    if (fz.verbose)
        fprintf(stderr, "\n-- %zu of %zu bytes sent; %s\n", off, len,
                closed ? "the broker closed" : "bound reached, we close");
    close(fd);
    pump(4); /* let the broker see the close and free the connection */
}

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t size)
{
    const char *prefix;
    char *req;
    size_t plen, len;

    if (size < 1)
        return 0;
    prefix = prefixes[buf[0] & 7];
    plen = prefix ? strlen(prefix) : 0;
    len = plen + size - 1;
    req = malloc(len ? len : 1);
    if (!req)
        fail("out of memory");
    if (plen)
        memcpy(req, prefix, plen);
    memcpy(req + plen, buf + 1, size - 1);
    exchange(req, len, !(buf[0] & 8));
    free(req);

    if (++fz.inputs % RESET_EVERY == 0)
        delete_all_channels();
    return 0;
}
