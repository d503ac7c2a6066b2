/* http_stream.h - a live SSE response: the HTTP side of a broker sink.
 *
 * The broker writes shared, already-encoded message frames through the sink
 * (src/broker/sink.h); this file puts them on the connection's output (small
 * ones copied, large ones by reference), chunk-framed on HTTP/1.1, counts
 * what they cost against stream_buffer (see http_stream.c), and ends or
 * aborts the response when the broker says so. When the client goes away
 * first it tells the broker (broker_sink_closed) and frees itself. */
#ifndef HTTP_STREAM_H
#define HTTP_STREAM_H

#include <stdint.h>

#include "src/broker/sink.h"
#include "src/http/http.h"
#include "src/http/httpd.h"

/* A sink answering 'req', not started yet: hand it to broker_subscribe() or
 * broker_attach(), which open it. 'o' (borrowed) must outlive it. NULL on OOM. */
sink *http_stream_new(httpd_req *req, const http_opts *o);

/* End the stream cleanly at 'at_us' (microseconds since the epoch; at the
 * next turn of the loop if past): when the token that opened it expires.
 * Call once, before handing the sink to the broker (which may free it at
 * once). 0, or -1 on OOM. */
int http_stream_expire_at(sink *sk, int64_t at_us);

/* Free a sink the broker did not take (it refused the stream). */
void http_stream_free(sink *sk);

#endif
