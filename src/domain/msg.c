/* msg.c - messages: creation, reference counting, JSON form. */
#include "src/domain/msg.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/domain/sse.h"
#include "src/base/util.h"

/* What every live message takes, in real bytes (malloc_usable_size plus the
 * allocator's header per allocation). Messages live on the loop's thread only. */
static size_t live_bytes;

static size_t heap_size(const void *p)
{
    return p ? malloc_usable_size((void *)p) + sizeof(size_t) : 0;
}

static size_t msg_bytes(const msg *m)
{
    return heap_size(m) + heap_size(m->json) + heap_size(m->env) + heap_size(m->pub);
}

size_t msg_live_bytes(void)
{
    return live_bytes;
}

/* The HTTP/1.1 chunk head of a 'len'-byte chunk ("<hex length>\r\n") into
 * 'head' (room 18); returns its length. The chunk is head, the bytes, "\r\n":
 * a chunked stream takes it as it is. */
static size_t chunk_head(size_t len, char *head)
{
    size_t hl = 0;
    for (int shift = 60; shift >= 0; shift -= 4)
        if ((len >> shift) || hl || !shift)
            head[hl++] = "0123456789abcdef"[(len >> shift) & 15];
    head[hl++] = '\r';
    head[hl++] = '\n';
    return hl;
}

/* 'ev' encoded as an SSE frame inside chunk framing: chunk_size() is the
 * chunk's length (and the frame's, in '*frame_len'); chunk_write() writes the
 * chunk at 'out' (room: that length) and says where the frame lies in it. */
static size_t chunk_size(const sse_event *ev, size_t *frame_len)
{
    char head[18];
    *frame_len = sse_frame_size(ev);
    return chunk_head(*frame_len, head) + *frame_len + 2;
}

static void chunk_write(const sse_event *ev, size_t frame_len, char *out,
                        const char **frame_at)
{
    size_t hl = chunk_head(frame_len, out);
    *frame_at = out + hl;
    sse_frame_write(ev, out + hl);
    memcpy(out + hl + frame_len, "\r\n", 2);
}

/* The size of the allocation of a message with this data, event type and
 * chunk. */
static size_t msg_alloc_len(size_t data_len, size_t event_len, size_t chunk_len)
{
    return offsetof(msg, data) + data_len + 1 + event_len + chunk_len;
}

msg *msg_new(uint64_t seq, const char *event, const char *data, size_t data_len,
             int64_t ts_us, int retry)
{
    char id[21];
    size_t elen = event ? strlen(event) + 1 : 0, frame_len, chunk_len;
    *fmt_u64(id, seq) = '\0';
    sse_event ev = {id, event, data, data_len, retry};
    chunk_len = chunk_size(&ev, &frame_len);

    /* One allocation: the struct, the data, the event type, the chunk. */
    msg *m = malloc(msg_alloc_len(data_len, elen, chunk_len));
    if (!m)
        return NULL;
    *m = (msg){.refs = 1,
               .retry = retry,
               .seq = seq,
               .ts_us = ts_us,
               .src_ts_us = MSG_NO_SOURCE_TS,
               .data_len = data_len,
               .frame_len = frame_len,
               .chunk_len = chunk_len};
    memcpy(m->id, id, sizeof(id));
    if (data_len)
        memcpy(m->data, data, data_len);
    m->data[data_len] = '\0';
    char *p = m->data + data_len + 1;
    if (event) {
        m->event = memcpy(p, event, elen);
        p += elen;
    }
    ev = (sse_event){m->id, m->event, m->data, data_len, retry};
    chunk_write(&ev, frame_len, p, &m->frame);
    m->chunk = p;
    live_bytes += msg_bytes(m);
    return m;
}

void msg_set_pub(msg *m, target_rec *pub)
{
    if (!m) {
        target_free(pub);
        return;
    }
    live_bytes -= heap_size(m->pub);
    target_free(m->pub);
    m->pub = pub;
    m->tg = target_has_lists(pub) ? pub : NULL;
    live_bytes += heap_size(pub);
}

msg *msg_ref(msg *m)
{
    m->refs++;
    return m;
}

/* What malloc(n) takes on glibc: n and its 8-byte header, rounded up to 16,
 * at least 32. */
static size_t alloc_size(size_t n)
{
    size_t a = (n + 8 + 15) & ~(size_t)15;
    return a < 32 ? 32 : a;
}

size_t msg_footprint(const msg *m)
{
    size_t n = alloc_size(
        msg_alloc_len(m->data_len, m->event ? strlen(m->event) + 1 : 0, m->chunk_len));
    if (m->json)
        n += alloc_size(strlen(m->json) + 1);
    if (m->env)
        n += alloc_size(sizeof(msg_env) + m->env->chunk_len);
    if (m->pub)
        n += alloc_size(m->pub->size);
    return n;
}

void msg_unref(msg *m)
{
    if (!m || --m->refs > 0)
        return;
    live_bytes -= msg_bytes(m);
    free(m->json);
    free(m->env);
    target_free(m->pub);
    free(m);
}

json_t *msg_data_json(const msg *m)
{
    json_t *v = NULL;
    /* Only what was published as a JSON value is one: a raw body "42" stays
     * the string it was sent as. */
    if (m->is_json)
        v = json_loadb(m->data, m->data_len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
                       NULL);
    return v ? v : json_stringn(m->data, m->data_len);
}

int msg_envelope(const msg *m, const char *channel)
{
    /* A memo, as msg_json_text: a message belongs to one channel, so its
     * envelope is the same for every stream that gets it. */
    msg *mm = (msg *)m;
    json_t *o;
    char *text;
    if (mm->env)
        return 0;
    o = json_pack("{s:s, s:o, s:I}", "channel", channel, "data", msg_data_json(m),
                  "timestamp", (json_int_t)m->ts_us);
    if (o && m->src_ts_us != MSG_NO_SOURCE_TS &&
        json_object_set_new(o, "source_timestamp", json_integer(m->src_ts_us)) < 0) {
        json_decref(o);
        o = NULL;
    }
    text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return -1;
    sse_event ev = {m->id, m->event, text, strlen(text), m->retry};
    size_t frame_len, chunk_len = chunk_size(&ev, &frame_len);
    msg_env *env = malloc(sizeof(*env) + chunk_len);
    if (env) {
        env->chunk_len = chunk_len;
        env->frame_len = frame_len;
        chunk_write(&ev, frame_len, env->chunk, &env->frame);
    }
    free(text);
    if (!env)
        return -1;
    mm->env = env;
    live_bytes += heap_size(env);
    return 0;
}

/* The API form, and with 'with_pos' the stored form (the position after the
 * id: the store writes it there, see msg_json_tail). */
static json_t *to_json(const msg *m, bool with_pos)
{
    json_t *o =
        with_pos && m->pos
            ? json_pack("{s:s, s:I, s:s?, s:s%, s:I}", "id", m->id, "pos",
                        (json_int_t)m->pos, "event", m->event, "data", m->data,
                        m->data_len, "timestamp", (json_int_t)m->ts_us)
            : json_pack("{s:s, s:s?, s:s%, s:I}", "id", m->id, "event", m->event, "data",
                        m->data, m->data_len, "timestamp", (json_int_t)m->ts_us);
    if (o && m->src_ts_us != MSG_NO_SOURCE_TS)
        json_object_set_new(o, "source_timestamp", json_integer(m->src_ts_us));
    if (o && with_pos && m->is_json)
        json_object_set_new(o, "json", json_true());
    if (o && m->retry >= 0)
        json_object_set_new(o, "retry", json_integer(m->retry));
    if (o && with_pos && m->pub) {
        json_t *p = target_to_json(m->pub);
        if (!p || json_object_set_new(o, "publication", p) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

json_t *msg_to_json(const msg *m)
{
    return to_json(m, false);
}

const char *msg_json_text(const msg *m, size_t *len)
{
    /* A memo, not a change: the message is immutable, its text is computed
     * once. */
    msg *mm = (msg *)m;
    if (!mm->json) {
        json_t *o = to_json(m, true);
        mm->json = o ? json_dumps(o, JSON_COMPACT) : NULL;
        live_bytes += heap_size(mm->json);
        json_decref(o);
    }
    /* Compact JSON text holds no NUL: its length is its strlen. */
    *len = mm->json ? strlen(mm->json) : 0;
    return mm->json;
}

/* The bytes of 's' escaped for inside a JSON string at 'p' (room: 6 * len);
 * returns the end. Escapes as jansson does by default: '"', '\\', and
 * control characters. */
static char *json_escape(char *p, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *p++ = (char)c;
            continue;
        }
        *p++ = '\\';
        switch (c) {
        case '"':
        case '\\':
            *p++ = (char)c;
            break;
        case '\b':
            *p++ = 'b';
            break;
        case '\f':
            *p++ = 'f';
            break;
        case '\n':
            *p++ = 'n';
            break;
        case '\r':
            *p++ = 'r';
            break;
        case '\t':
            *p++ = 't';
            break;
        default:
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    return p;
}

/* What json_escape() writes for 's', in bytes. */
static size_t json_escape_len(const char *s, size_t len)
{
    size_t n = len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        n += c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' ||
                     c == '\t'
                 ? 1
                 : 5;
    }
    return n;
}

char *msg_json_quote(char *p, const char *s, size_t len)
{
    *p++ = '"';
    p = json_escape(p, s, len);
    *p++ = '"';
    return p;
}

char *msg_json_tail(const char *event, const char *data, size_t data_len, int64_t ts_us,
                    int retry, size_t *len)
{
    return msg_json_tail_pub(event, data, data_len, ts_us, retry, NULL, len);
}

char *msg_json_tail_pub(const char *event, const char *data, size_t data_len,
                        int64_t ts_us, int retry, const target_rec *pub, size_t *len)
{
    return msg_json_tail_src(event, data, data_len, ts_us, MSG_NO_SOURCE_TS, 0, retry,
                             pub, len);
}

char *msg_json_tail_src(const char *event, const char *data, size_t data_len,
                        int64_t ts_us, int64_t src_ts_us, int is_json, int retry,
                        const target_rec *pub, size_t *len)
{
    /* Written by hand (the publish hot path): the same text as json_dumps of
     * the stored form, from just past the position. The publication record,
     * rare and small, is jansson's. */
    size_t elen = event ? strlen(event) : 0, plen = 0;
    char *ptext = NULL;
    if (pub) {
        json_t *po = target_to_json(pub);
        ptext = po ? json_dumps(po, JSON_COMPACT) : NULL;
        json_decref(po);
        if (!ptext)
            return NULL;
        plen = strlen(ptext);
    }
    char *text = malloc(64 + 6 * (elen + data_len) + 64 + 16 + 48 + plen), *p = text;
    if (!text) {
        free(ptext);
        return NULL;
    }
    memcpy(p, ",\"event\":", 9);
    p += 9;
    if (event) {
        p = msg_json_quote(p, event, elen);
    } else {
        memcpy(p, "null", 4);
        p += 4;
    }
    memcpy(p, ",\"data\":", 8);
    p = msg_json_quote(p + 8, data, data_len);
    memcpy(p, ",\"timestamp\":", 13);
    p = fmt_i64(p + 13, ts_us);
    if (src_ts_us != MSG_NO_SOURCE_TS)
        p = fmt_i64(stpcpy(p, ",\"source_timestamp\":"), src_ts_us);
    if (is_json)
        p = stpcpy(p, ",\"json\":true");
    if (retry >= 0) {
        memcpy(p, ",\"retry\":", 9);
        p = fmt_u64(p + 9, (uint64_t)retry);
    }
    if (ptext) {
        p = stpcpy(stpcpy(p, ",\"publication\":"), ptext);
        free(ptext);
    }
    *p++ = '}';
    *p = '\0';
    *len = (size_t)(p - text);
    return text;
}

/* ---- the same text, sized and written in pieces ---- */

/* The publisher's authid a reader with 'disclose' sees, or NULL. */
static const char *disclosed(const msg *m, int disclose)
{
    return disclose && m->pub ? m->pub->pub_authid : NULL;
}

#define DISCLOSE_KEY ",\"publisher_authid\":"

/* The text after the data's closing quote: timestamps, retry, the disclosed
 * publisher, '}'. At most 104 bytes, and 24 + 6 * its length with a
 * publisher. */
#define JSON_TAIL_MAX 104
static char *json_tail_fields(char *p, const msg *m, int disclose)
{
    const char *who = disclosed(m, disclose);
    memcpy(p, "\",\"timestamp\":", 14);
    p = fmt_i64(p + 14, m->ts_us);
    if (m->src_ts_us != MSG_NO_SOURCE_TS)
        p = fmt_i64(stpcpy(p, ",\"source_timestamp\":"), m->src_ts_us);
    if (m->retry >= 0) {
        memcpy(p, ",\"retry\":", 9);
        p = fmt_u64(p + 9, (uint64_t)m->retry);
    }
    if (who)
        p = msg_json_quote(stpcpy(p, DISCLOSE_KEY), who, strlen(who));
    *p++ = '}';
    return p;
}

size_t msg_json_len_for(const msg *m, int disclose)
{
    char tail[JSON_TAIL_MAX];
    const char *who = disclosed(m, disclose);
    size_t n = 7 + strlen(m->id) + 10; /* {"id":"ID","event": */
    n += m->event ? 2 + json_escape_len(m->event, strlen(m->event)) : 4;
    n += 9 + json_escape_len(m->data, m->data_len); /* ,"data":"DATA */
    if (who)                                        /* ,"publisher_authid":"WHO" */
        n += sizeof(DISCLOSE_KEY) - 1 + 2 + json_escape_len(who, strlen(who));
    return n + (size_t)(json_tail_fields(tail, m, 0) - tail);
}

size_t msg_json_len(const msg *m)
{
    return msg_json_len_for(m, 0);
}

size_t msg_json_piece(const msg *m, msg_json_cursor *c, char *out, size_t room)
{
    char *p = out, *end = out + room;
    if (c->part == 0) {
        /* At most 7 + 20 + 10 + 6 * PUB_EVENT_MAX-ish + 2 + 9: within the
         * minimum room for any event the broker accepts. */
        size_t el = m->event ? strlen(m->event) : 0;
        if (room < 48 + 6 * el)
            return 0;
        p = stpcpy(stpcpy(stpcpy(p, "{\"id\":\""), m->id), "\",\"event\":");
        if (m->event) {
            p = msg_json_quote(p, m->event, el);
        } else {
            memcpy(p, "null", 4);
            p += 4;
        }
        memcpy(p, ",\"data\":\"", 9);
        p += 9;
        c->part = 1;
        c->off = 0;
    }
    if (c->part == 1) {
        /* As much of the data as surely fits: 6 bytes per byte at worst. */
        size_t n = (size_t)(end - p) / 6;
        if (n > m->data_len - c->off)
            n = m->data_len - c->off;
        p = json_escape(p, m->data + c->off, n);
        c->off += n;
        if (c->off == m->data_len)
            c->part = 2;
    }
    const char *who = disclosed(m, c->disclose);
    if (c->part == 2 &&
        (size_t)(end - p) >= JSON_TAIL_MAX + (who ? 24 + 6 * strlen(who) : 0)) {
        p = json_tail_fields(p, m, c->disclose);
        c->part = 3;
    }
    return (size_t)(p - out);
}

/* ---- reading our own text back, fast (falls back to jansson) ---- */

static int hexval(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* A JSON string at *pp (at its opening quote), unescaped into 'out' (room:
 * its length); NUL-terminated. Returns the length, or -1 for anything this
 * fast path does not take (NUL, surrogates: jansson handles those). */
static long json_unquote(const char **pp, const char *end, char *out)
{
    const char *p = *pp;
    char *o = out;
    if (p >= end || *p++ != '"')
        return -1;
    while (p < end && *p != '"') {
        unsigned char c = (unsigned char)*p++;
        if (c < 0x20)
            return -1;
        if (c != '\\') {
            *o++ = (char)c;
            continue;
        }
        if (p >= end)
            return -1;
        switch (*p++) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '/':
            *o++ = '/';
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            int v = 0;
            for (int k = 0; k < 4; k++) {
                int h = p < end ? hexval(*p++) : -1;
                if (h < 0)
                    return -1;
                v = v * 16 + h;
            }
            if (v == 0 || (v >= 0xd800 && v <= 0xdfff))
                return -1;
            if (v < 0x80) {
                *o++ = (char)v;
            } else if (v < 0x800) {
                *o++ = (char)(0xc0 | (v >> 6));
                *o++ = (char)(0x80 | (v & 0x3f));
            } else {
                *o++ = (char)(0xe0 | (v >> 12));
                *o++ = (char)(0x80 | ((v >> 6) & 0x3f));
                *o++ = (char)(0x80 | (v & 0x3f));
            }
            break;
        }
        default:
            return -1;
        }
    }
    if (p >= end || !valid_utf8(out, (size_t)(o - out)))
        return -1; /* jansson refuses invalid UTF-8: so do we */
    *pp = p + 1;
    *o = '\0';
    return (long)(o - out);
}

static int take(const char **pp, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(end - *pp) < n || memcmp(*pp, lit, n) != 0)
        return 0;
    *pp += n;
    return 1;
}

static int take_int(const char **pp, const char *end, long long *v)
{
    const char *p = *pp;
    int neg = p < end && *p == '-';
    unsigned long long n = 0;
    int digits = 0;
    p += neg;
    if (p + 1 < end && p[0] == '0' && p[1] >= '0' && p[1] <= '9')
        return 0; /* no leading zeros in JSON */
    while (p < end && *p >= '0' && *p <= '9' && digits < 18) {
        n = n * 10 + (unsigned long long)(*p++ - '0');
        digits++;
    }
    if (!digits || (p < end && *p >= '0' && *p <= '9'))
        return 0;
    *v = neg ? -(long long)n : (long long)n;
    *pp = p;
    return 1;
}

/* The exact layout msg_json_tail() writes, or NULL. */
msg *msg_from_json_fast(const char *text, size_t len)
{
    const char *p = text, *end = text + len;
    /* A small message is unescaped on the stack: no allocation to free
     * between the message's own (msg_new copies what it keeps). */
    char small[1024];
    char *buf = len < sizeof(small) ? small : malloc(len + 1), *event = NULL, *data;
    long long ts, retry = -1, pos = 0, src = MSG_NO_SOURCE_TS;
    long n, dn;
    uint64_t seq;
    int is_json = 0;
    msg *m = NULL;
    target_rec *pub = NULL;

    /* The id, event and data are unescaped into one buffer, one after the
     * other: together they are no longer than the text. */
    if (!buf || !take(&p, end, "{\"id\":") || (n = json_unquote(&p, end, buf)) < 0 ||
        parse_u64(buf, &seq) < 0)
        goto out;
    if (take(&p, end, ",\"pos\":") && (!take_int(&p, end, &pos) || pos < 0))
        goto out;
    if (!take(&p, end, ",\"event\":"))
        goto out;
    if (take(&p, end, "null")) {
        data = buf + n + 1;
    } else {
        event = buf + n + 1;
        if ((n = json_unquote(&p, end, event)) < 0)
            goto out;
        data = event + n + 1;
    }
    if (!take(&p, end, ",\"data\":") || (dn = json_unquote(&p, end, data)) < 0 ||
        !take(&p, end, ",\"timestamp\":") || !take_int(&p, end, &ts))
        goto out;
    if (take(&p, end, ",\"source_timestamp\":") &&
        (!take_int(&p, end, &src) || src < 0 || src > MSG_SOURCE_TS_MAX))
        goto out;
    is_json = take(&p, end, ",\"json\":true");
    if (take(&p, end, ",\"retry\":") &&
        (!take_int(&p, end, &retry) || retry < 0 || retry > INT32_MAX))
        goto out;
    if (take(&p, end, ",\"publication\":")) {
        /* The record is the rest, up to the closing brace: small, jansson's. */
        json_t *po =
            end - p >= 3 && end[-1] == '}'
                ? json_loadb(p, (size_t)(end - 1 - p), JSON_REJECT_DUPLICATES, NULL)
                : NULL;
        pub = target_from_json(po);
        json_decref(po);
        if (!pub)
            goto out;
        p = end - 1;
    }
    if (!take(&p, end, "}") || p != end)
        goto out;
    if ((m = msg_new(seq, event, data, (size_t)dn, ts, (int)retry))) {
        m->pos = (uint64_t)pos;
        m->src_ts_us = src;
        m->is_json = is_json;
        msg_set_pub(m, pub);
        pub = NULL;
    }
out:
    target_free(pub);
    if (buf != small)
        free(buf);
    return m;
}

msg *msg_from_json_jansson(const char *text, size_t len)
{
    json_t *o = json_loadb(text, len, JSON_ALLOW_NUL, NULL), *event = NULL, *po = NULL;
    const char *id, *data;
    size_t data_len;
    json_int_t ts, retry = -1, pos = 0, src = MSG_NO_SOURCE_TS;
    int is_json = 0;
    uint64_t seq;
    msg *m = NULL;
    target_rec *pub = NULL;

    /* "event" is null when the message has no type. */
    if (o &&
        json_unpack(o, "{s:s, s?:I, s?:o, s:s%, s:I, s?:I, s?:b, s?:I, s?:o}", "id", &id,
                    "pos", &pos, "event", &event, "data", &data, &data_len, "timestamp",
                    &ts, "source_timestamp", &src, "json", &is_json, "retry", &retry,
                    "publication", &po) == 0 &&
        (src == MSG_NO_SOURCE_TS || (src >= 0 && src <= MSG_SOURCE_TS_MAX)) &&
        (!event || json_is_null(event) || json_is_string(event)) &&
        parse_u64(id, &seq) == 0 && retry >= -1 && retry <= INT32_MAX && pos >= 0 &&
        strlen(data) == data_len && (!po || (pub = target_from_json(po))) &&
        (m = msg_new(seq, json_string_value(event), data, data_len, ts, (int)retry))) {
        m->pos = (uint64_t)pos;
        m->src_ts_us = src;
        m->is_json = is_json;
        msg_set_pub(m, pub);
        pub = NULL;
    }
    target_free(pub);
    json_decref(o);
    return m;
}

msg *msg_from_json(const char *text, size_t len)
{
    msg *m = msg_from_json_fast(text, len);
    return m ? m : msg_from_json_jansson(text, len);
}
