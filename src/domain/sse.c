/* sse.c - Server-Sent Events wire encoding: one event in, one frame out. */
#include "src/domain/sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the line starting at 'p' (at most 'n' bytes) and, in '*eol', the
 * length of the line end that follows it: 0 at the end of the data, 1 for CR
 * or LF, 2 for CRLF. */
static size_t sse_line(const char *p, size_t n, size_t *eol)
{
    size_t i = 0;

    while (i < n && p[i] != '\r' && p[i] != '\n')
        i++;
    if (i == n)
        *eol = 0;
    else if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
        *eol = 2;
    else
        *eol = 1;
    return i;
}

/* Walk the data lines once to size the frame, once to write it ('out' NULL
 * means count only). Returns the bytes the data: lines take. */
static size_t sse_data_lines(const char *data, size_t len, char *out)
{
    size_t total = 0, pos = 0;

    for (;;) {
        size_t eol;
        size_t n = sse_line(data + pos, len - pos, &eol);

        if (out) {
            memcpy(out + total, "data: ", 6);
            if (n)
                memcpy(out + total + 6, data + pos, n);
            out[total + 6 + n] = '\n';
        }
        total += 6 + n + 1;
        pos += n + eol;
        if (eol == 0)
            break;
    }
    return total;
}

/* The "retry: N\n" line of 'ev' into 'buf' (room 32), its length (0: none). */
static size_t sse_retry_line(const sse_event *ev, char *buf)
{
    return ev->retry >= 0 ? (size_t)snprintf(buf, 32, "retry: %d\n", ev->retry) : 0;
}

size_t sse_frame_size(const sse_event *ev)
{
    char retry[32];
    size_t size = sse_retry_line(ev, retry);

    if (ev->id)
        size += 4 + strlen(ev->id) + 1; /* "id: " ... "\n" */
    if (ev->event)
        size += 7 + strlen(ev->event) + 1; /* "event: " ... "\n" */
    size += sse_data_lines(ev->data ? ev->data : "", ev->data ? ev->data_len : 0, NULL);
    return size + 1; /* the blank line that ends the event */
}

size_t sse_frame_write(const sse_event *ev, char *out)
{
    char retry[32];
    size_t off = sse_retry_line(ev, retry);

    memcpy(out, retry, off);
    if (ev->id) {
        size_t id_len = strlen(ev->id);
        memcpy(out + off, "id: ", 4);
        memcpy(out + off + 4, ev->id, id_len);
        out[off + 4 + id_len] = '\n';
        off += 4 + id_len + 1;
    }
    if (ev->event) {
        size_t event_len = strlen(ev->event);
        memcpy(out + off, "event: ", 7);
        memcpy(out + off + 7, ev->event, event_len);
        out[off + 7 + event_len] = '\n';
        off += 7 + event_len + 1;
    }
    off +=
        sse_data_lines(ev->data ? ev->data : "", ev->data ? ev->data_len : 0, out + off);
    out[off++] = '\n';
    return off;
}

char *sse_frame(const sse_event *ev, size_t *len)
{
    char *buf = malloc(sse_frame_size(ev));
    if (buf)
        *len = sse_frame_write(ev, buf);
    return buf;
}

int sse_valid_field(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return 0;
    return 1;
}
