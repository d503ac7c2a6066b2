/* msg.c - messages: creation, reference counting, JSON form. */
#include "msg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"
#include "util.h"

msg *msg_new(uint64_t seq, const char *event, const char *data, size_t data_len,
             int64_t ts_us, int retry)
{
    msg *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->refs = 1;
    m->seq = seq;
    snprintf(m->id, sizeof(m->id), "%" PRIu64, seq);
    m->ts_us = ts_us;
    m->retry = retry;
    if (event && !(m->event = strdup(event)))
        goto err;
    if (!(m->data = memdup_nul(data, data_len)))
        goto err;
    m->data_len = data_len;

    sse_event ev = {m->id, m->event, m->data, data_len, retry};
    char *frame = sse_frame(&ev, &m->frame_len), head[24];
    if (!frame)
        goto err;
    /* "<hex length>\r\n<frame>\r\n": a chunked stream takes it as it is. */
    int hl = snprintf(head, sizeof(head), "%zx\r\n", m->frame_len);
    m->chunk_len = (size_t)hl + m->frame_len + 2;
    if (!(m->chunk = malloc(m->chunk_len))) {
        free(frame);
        goto err;
    }
    memcpy(m->chunk, head, (size_t)hl);
    memcpy(m->chunk + hl, frame, m->frame_len);
    memcpy(m->chunk + hl + m->frame_len, "\r\n", 2);
    m->frame = m->chunk + hl;
    free(frame);
    return m;
err:
    free(m->event);
    free(m->data);
    free(m);
    return NULL;
}

msg *msg_ref(msg *m)
{
    m->refs++;
    return m;
}

void msg_unref(msg *m)
{
    if (!m || --m->refs > 0)
        return;
    free(m->event);
    free(m->data);
    free(m->chunk);
    free(m->json);
    free(m);
}

json_t *msg_to_json(const msg *m)
{
    json_t *o =
        json_pack("{s:s, s:s?, s:s%, s:I}", "id", m->id, "event", m->event, "data",
                  m->data, m->data_len, "timestamp", (json_int_t)m->ts_us);
    if (o && m->retry >= 0)
        json_object_set_new(o, "retry", json_integer(m->retry));
    return o;
}

const char *msg_json_text(const msg *m, size_t *len)
{
    /* A memo, not a change: the message is immutable, its text is computed
     * once for history and every queue it goes to. */
    msg *mm = (msg *)m;
    if (!mm->json) {
        json_t *o = msg_to_json(m);
        mm->json = o ? json_dumps(o, JSON_COMPACT) : NULL;
        mm->json_len = mm->json ? strlen(mm->json) : 0;
        json_decref(o);
    }
    *len = mm->json_len;
    return mm->json;
}

char *msg_json_tail(const char *event, const char *data, size_t data_len, int64_t ts_us,
                    int retry, size_t *len)
{
    /* The same object as msg_to_json() with an empty id, which json_dumps
     * writes first (jansson keeps insertion order): drop its 7 bytes {"id":" */
    json_t *o = json_pack("{s:s, s:s?, s:s%, s:I}", "id", "", "event", event, "data",
                          data, data_len, "timestamp", (json_int_t)ts_us);
    char *text;
    if (o && retry >= 0)
        json_object_set_new(o, "retry", json_integer(retry));
    text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return NULL;
    *len = strlen(text) - 7;
    memmove(text, text + 7, *len + 1);
    return text;
}

msg *msg_from_json(const char *text, size_t len)
{
    json_t *o = json_loadb(text, len, JSON_ALLOW_NUL, NULL), *event = NULL;
    const char *id, *data;
    size_t data_len;
    json_int_t ts, retry = -1;
    uint64_t seq;
    msg *m = NULL;

    /* "event" is null when the message has no type. */
    if (o &&
        json_unpack(o, "{s:s, s?:o, s:s%, s:I, s?:I}", "id", &id, "event", &event, "data",
                    &data, &data_len, "timestamp", &ts, "retry", &retry) == 0 &&
        (!event || json_is_null(event) || json_is_string(event)) &&
        parse_u64(id, &seq) == 0 && retry >= -1 && retry <= INT32_MAX &&
        strlen(data) == data_len)
        m = msg_new(seq, json_string_value(event), data, data_len, ts, (int)retry);
    json_decref(o);
    return m;
}
