/* sse.h - Server-Sent Events wire encoding. */
#ifndef SSE_H
#define SSE_H

#include <stddef.h>

/* One event to encode. 'id' and 'event' are NUL-terminated or NULL (omitted);
 * they must not contain CR, LF or NUL (check with sse_valid_field). 'retry'
 * < 0 means no retry: line. */
typedef struct sse_event {
    const char *id;
    const char *event;
    const char *data; /* 'data_len' bytes, may contain anything but NUL */
    size_t data_len;
    int retry;
} sse_event;

/* Encode 'ev' as one SSE frame: "retry: N\n" (if retry >= 0), "id: ...\n" (if
 * id), "event: ...\n" (if event), one "data: ...\n" per line of data (CR, LF
 * and CRLF all end a line, so k line ends give k+1 data: lines and empty data
 * gives one "data: \n"; a browser rebuilds the data with LF between lines),
 * then a blank line. Returns a malloc'd buffer (caller frees) and its length in
 * '*len', or NULL on OOM. */
char *sse_frame(const sse_event *ev, size_t *len);

/* The same frame written in place: sse_frame_size() is its length, and
 * sse_frame_write() writes it at 'out' (room: that length) and returns it. */
size_t sse_frame_size(const sse_event *ev);
size_t sse_frame_write(const sse_event *ev, char *out);

/* 1 if the 'len' bytes at 's' can be an id or event field: no CR, LF or NUL;
 * 0 otherwise. */
int sse_valid_field(const char *s, size_t len);

#endif
