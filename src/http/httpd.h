/* httpd.h - a small HTTP/1.1 server on libevent bufferevents.
 *
 * It reads requests (keep-alive and pipelining, Content-Length and chunked
 * bodies, Expect: 100-continue), enforces the size and time limits, and hands
 * each complete request to one handler. Every error it finds itself is
 * answered the way the API answers its own: a 4xx/5xx with a JSON body
 * {"error": {"code", "message"}}, and every response, those errors included,
 * carries the configured Access-Control-Allow-Origin. A response is either complete
 * (httpd_reply) or a stream (httpd_stream_start ... httpd_stream_end) whose
 * body the caller writes straight into the connection's output buffer.
 *
 * Ownership: the server owns every httpd_req. A request stays valid until its
 * response is complete, the caller aborts it, or, when the client goes away
 * first, until the close callback set with httpd_on_close() returns. */
#ifndef HTTPD_H
#define HTTPD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;

typedef struct httpd httpd;
typedef struct httpd_req httpd_req;

/* Methods, as bits so that a route can list the ones it takes. */
enum {
    HTTPD_GET = 1,
    HTTPD_HEAD = 2,
    HTTPD_POST = 4,
    HTTPD_PUT = 8,
    HTTPD_DELETE = 16,
    HTTPD_OPTIONS = 32,
    HTTPD_OTHER = 64 /* any other token: routes answer 405 */
};

#define HTTPD_MAX_HEADER_LINES 100 /* header fields in one request */
#define HTTPD_WRITE_TIMEOUT_S 60   /* a socket that takes nothing this long is closed */

/* What the servers of one process share, each on its own loop and thread
 * (the main loop's and the fronts': see http_front.h): the connection count
 * that max_connections bounds, the figures /status shows, and how far the
 * main loop's delivery is behind (the fronts refuse publishes on it). */
typedef struct httpd_shared {
    _Atomic size_t conns; /* client sockets open on every loop */
    _Atomic unsigned long long accepted, rejected;
    _Atomic int64_t dirty_since_us; /* the oldest unwritten stream output (a
                                       monotonic clock), 0: none */
} httpd_shared;

typedef struct httpd_opts {
    const char *host;        /* address to bind (numeric or a name) */
    int port;                /* 0 picks a free one: see httpd_port() */
    size_t max_headers;      /* bytes of the request line and headers: 414 / 431 */
    size_t max_body;         /* bytes of a body: 413 */
    int idle_timeout_s;      /* a request not read in full within this: 408 and close;
                                also how long a keep-alive connection may sit idle */
    size_t max_connections;  /* client sockets beyond it are flagged over the limit */
    bool reuseport;          /* SO_REUSEPORT: several processes share the port */
    bool no_listen;          /* listen on nothing: serve only connections given
                                with httpd_adopt() ('port' is then only reported) */
    int threads;             /* threads that write streams, the loop's included (>= 1) */
    bool access_log;         /* log a line for each answer (log.h) */
    httpd_shared *shared;    /* shared with the other servers of the process
                                (borrowed: outlives the server); NULL: its own */
    const char *cors_origin; /* "*" or one origin: Access-Control-Allow-Origin
                                on every response, the server's own errors
                                included (with credentials allowed for an
                                origin); several, space-separated: a request's
                                Origin that is one of them is echoed, with
                                credentials allowed, and Vary: Origin; NULL:
                                none. Copied */
} httpd_opts;

/* Called for every complete request; it must answer 'req' now or later. */
typedef void (*httpd_handler)(httpd_req *req, void *arg);
/* Called when the client went away before the response was complete. */
typedef void (*httpd_close_cb)(httpd_req *req, void *arg);

/* Bind and listen. NULL with a message in 'err' if that fails. */
httpd *httpd_new(struct event_base *base, const httpd_opts *opts, httpd_handler handler,
                 void *arg, char *err, size_t errlen);
/* Take the limits and the CORS origins of 'o' (the rest of it is ignored):
 * for requests from now on; open connections keep theirs. 0, or -1 on OOM
 * (then nothing changed). */
int httpd_reload(httpd *h, const httpd_opts *o);
/* Close the listening socket; open connections are served on. */
void httpd_stop_accepting(httpd *h);
/* Close every connection (close callbacks run) and free the server. NULL ok. */
void httpd_free(httpd *h);
int httpd_port(const httpd *h);
/* The figures below are the process's: every server sharing httpd_shared. */
size_t httpd_connections(const httpd *h);
/* Connections closed at accept because even the over-limit reserve was full. */
unsigned long long httpd_rejected(const httpd *h);
/* Client sockets accepted so far (those closed at accept are not). */
unsigned long long httpd_accepted(const httpd *h);

/* ---- handing connections over to another server (front loops) ---- */
/* Looks at the start of a request before it is parsed (raw bytes, not
 * NUL-terminated, holding at least the request line and its LF: a whole
 * head, or what a peek at accept saw): true to serve it here, false to hand
 * the connection over. */
typedef bool (*httpd_keep_fn)(const char *head, size_t len, void *arg);
/* Takes a connection this server lets go of: its socket 'fd', whether it
 * came in over max_connections, and every byte read from it and not used
 * ('bytes', malloc'd, 'len' of them, the request head first; NULL and 0
 * when it is handed over at accept, its bytes unread). 0: both are
 * the callee's now; -1: it cannot take them (the server answers 503
 * overloaded and closes). */
typedef int (*httpd_give_fn)(int fd, bool over, char *bytes, size_t len, void *arg);
/* Serve only the requests 'keep' accepts; hand every other connection over
 * through 'give' when such a request is next on it (its earlier answers
 * written). A connection handed over still counts in httpd_shared.conns:
 * the server that adopts it does not count it again. */
void httpd_set_handover(httpd *h, httpd_keep_fn keep, httpd_give_fn give, void *arg);
/* Serve the connection 'fd' as if accepted here, its first 'len' bytes
 * 'bytes' (malloc'd) already read: both are taken, even on failure. 0, or
 * -1 (then the connection is closed). */
int httpd_adopt(httpd *h, int fd, bool over, char *bytes, size_t len);

/* ---- the request ---- */
int httpd_method(const httpd_req *r);
const char *httpd_path(const httpd_req *r);  /* raw (undecoded), without the query */
const char *httpd_query(const httpd_req *r); /* raw query string, or NULL */
/* The first header field named 'name' (case-insensitive), or NULL. */
const char *httpd_header(const httpd_req *r, const char *name);
/* The client's address, "ip:port" or "[ip6]:port", into 'buf' (NUL-terminated;
 * "" when unknown or it does not fit). */
void httpd_remote(const httpd_req *r, char *buf, size_t len);
/* The body, contiguous and NUL-terminated one past 'len'; "" when none. */
const char *httpd_body(httpd_req *r, size_t *len);
/* HTTP/1.1 or later (a response may be chunked). */
bool httpd_is_http11(const httpd_req *r);
/* The connection arrived while max_connections were open: refuse politely. */
bool httpd_over_limit(const httpd_req *r);

/* ---- the response ---- */
/* Add a header line to the response ('value' is copied). */
void httpd_add_header(httpd_req *r, const char *name, const char *value);
/* Answer with 'status' and 'body' (its contents are moved out; NULL for none),
 * typed 'ctype' (may be NULL). HEAD gets the headers only. */
void httpd_reply(httpd_req *r, int status, const char *ctype, struct evbuffer *body);
/* The same with a body of 'len' bytes at 'body' (borrowed; copied or written
 * before it returns). A short answer goes to the socket in one write, with
 * no buffer allocated on the way. */
void httpd_reply_bytes(httpd_req *r, int status, const char *ctype, const char *body,
                       size_t len);
/* Answer {"error": {"code": code, "message": message}} and close the
 * connection afterwards when 'close' is set. */
void httpd_reply_error(httpd_req *r, int status, const char *code, const char *message,
                       bool close);
/* Start a streamed response: headers now, then the caller writes the body into
 * the returned buffer (chunk-framed if httpd_is_http11(); otherwise raw, and
 * the connection closes at the end). The request's head and body are freed
 * once the handler returns (at once when the stream starts later): keep
 * nothing that points into them. */
struct evbuffer *httpd_stream_start(httpd_req *r, int status, const char *ctype);
/* Start a response whose body of exactly 'clen' bytes the caller writes in
 * pieces into the returned buffer (the socket's output), as a stream's: say
 * httpd_stream_dirty() after each, and httpd_stream_end() once all 'clen'
 * are in. Unlike a stream, the connection serves on afterwards on HTTP/1.0
 * too, and pipelined requests wait. Returns NULL when there is no body to
 * write (HEAD, or 'clen' 0): the response is complete then. */
struct evbuffer *httpd_body_start(httpd_req *r, int status, const char *ctype,
                                  uint64_t clen);
/* Called, from the loop, each time the output of a stream or of a body
 * started with httpd_body_start() has all been written (after a write): for
 * a stream, the moment its client has taken everything; for a body, the
 * moment to add the next piece, so that a body is produced as fast as the
 * client reads it and what it holds unsent is what the caller adds per call.
 * The callback may end its own response. Set (or clear with NULL). */
typedef void (*httpd_drain_cb)(httpd_req *r, void *arg);
void httpd_on_drain(httpd_req *r, httpd_drain_cb cb, void *arg);
/* The buffer a started stream writes into (the socket's output). */
struct evbuffer *httpd_stream_output(httpd_req *r);
/* Say the stream's output grew: it is written at the end of this turn of
 * the loop, together with whatever else the turn adds. */
void httpd_stream_dirty(httpd_req *r);
/* Bytes written to the stream and not yet taken by the socket. */
size_t httpd_pending(const httpd_req *r);
/* How far this server's delivery is behind, in ms: the age of the oldest
 * stream output not yet handed to its socket (streams marked dirty and not
 * written since), 0 when every stream has been written. A client that reads
 * slowly does not count: what its socket does not take waits in its own
 * buffer (limits.stream_buffer), not here. 'r' is any request of the server. */
int64_t httpd_delivery_lag_ms(const httpd_req *r);
/* Write what the socket takes now, without waiting for the loop. Returns the
 * bytes still pending. */
size_t httpd_push(httpd_req *r);
/* End the stream (the last chunk when chunked) or the sized body; the
 * connection serves on. */
void httpd_stream_end(httpd_req *r);
/* Close the connection now, dropping unsent output. No close callback. */
void httpd_abort(httpd_req *r);
/* The event base the request is served on. */
struct event_base *httpd_req_base(const httpd_req *r);
/* Set (or clear with NULL) the callback for a client that leaves first. */
void httpd_on_close(httpd_req *r, httpd_close_cb cb, void *arg);

/* ---- the parser, exposed for tests and fuzzing ---- */
typedef struct httpd_field {
    const char *name, *value;
} httpd_field;

typedef struct httpd_head {
    int method;
    int minor;           /* HTTP/1.<minor> */
    const char *path;    /* raw, NUL-terminated, inside the parsed buffer */
    const char *query;   /* or NULL */
    httpd_field *fields; /* caller's: room for HTTPD_MAX_HEADER_LINES or one
                            per line of the head, whichever is fewer */
    size_t nfields;
    int64_t content_length; /* -1: none */
    bool chunked, keepalive, expect_continue;
} httpd_head;

/* Parse the request head buf[0..len) (request line, fields, the empty line),
 * in place. Returns 0, or an HTTP status with '*code' and '*message' set. */
int httpd_parse_head(char *buf, size_t len, httpd_head *h, const char **code,
                     const char **message);

#endif
