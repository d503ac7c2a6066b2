/* log.c - leveled, timestamped log lines on stderr, as text or JSON. */
#include "src/base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 8192

/* Written by SIGHUP's reload on the main loop while front loops (other
 * threads) log: an atomic, read relaxed (a line may still see the old level
 * for a moment; nothing else is ordered by it). */
static _Atomic int log_level = LOG_INFO;
static int log_format = LOG_TEXT;
static char log_worker[32];
static const char *const log_names[] = {"debug", "info", "warn", "error"};

void log_set_level(int level)
{
    atomic_store_explicit(&log_level, level, memory_order_relaxed);
}

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, log_names[i]) == 0)
            return i;
    return -1;
}

void log_set_format(int format)
{
    log_format = format;
}

int log_format_parse(const char *name)
{
    return strcmp(name, "text") == 0   ? LOG_TEXT
           : strcmp(name, "json") == 0 ? LOG_JSON
                                       : -1;
}

void log_set_worker(const char *name)
{
    snprintf(log_worker, sizeof(log_worker), "%s", name ? name : "");
}

/* A line being built: what does not fit is dropped, and room for its end
 * is always kept. */
typedef struct line {
    char buf[LINE_MAX_BYTES];
    size_t n;
    bool full; /* something did not fit */
} line;
#define LINE_END_ROOM 8 /* a closing quote, brace and newline always fit */

static bool put(line *l, const char *s, size_t len)
{
    if (l->n + len > sizeof(l->buf) - LINE_END_ROOM) {
        l->full = true;
        return false;
    }
    memcpy(l->buf + l->n, s, len);
    l->n += len;
    return true;
}

static void puts_(line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* The length of the valid UTF-8 sequence at 's' (of at most 'len' bytes),
 * 0 if there is none. */
static size_t utf8_len(const unsigned char *s, size_t len)
{
    size_t n;
    unsigned min, c;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2, min = 0x80, c = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3, min = 0x800, c = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4, min = 0x10000, c = s[0] & 0x07;
    else
        return 0;
    if (n > len)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return n;
}

enum { ESC_JSON, ESC_QUOTED, ESC_BARE };

/* 's' (at most 'max' bytes of it) escaped: as a JSON string's contents
 * (ESC_JSON), or with C-like escapes for a quoted text value (ESC_QUOTED) or
 * a text message (ESC_BARE: quotes and backslashes as they are). Control
 * characters never go out raw; bytes that are not UTF-8 become U+FFFD in
 * JSON and \xNN in text. */
static void put_escaped(line *l, const char *s, size_t max, int mode)
{
    bool json = mode == ESC_JSON;
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strnlen(s, max);
    char esc[8];
    for (size_t i = 0; i < len;) {
        unsigned char ch = p[i];
        size_t u = utf8_len(p + i, len - i);
        bool ok;
        if ((ch == '"' || ch == '\\') && mode != ESC_BARE) {
            esc[0] = '\\', esc[1] = (char)ch;
            ok = put(l, esc, 2);
        } else if (ch == '\n') {
            ok = put(l, "\\n", 2);
        } else if (ch == '\t') {
            ok = put(l, "\\t", 2);
        } else if (ch == '\r') {
            ok = put(l, "\\r", 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            snprintf(esc, sizeof(esc), json ? "\\u%04x" : "\\x%02x", ch);
            ok = put(l, esc, strlen(esc));
        } else if (u) {
            ok = put(l, s + i, u);
            i += u;
            if (!ok)
                break;
            continue;
        } else {
            if (json) {
                ok = put(l, "\\ufffd", 6);
            } else {
                snprintf(esc, sizeof(esc), "\\x%02x", ch);
                ok = put(l, esc, 4);
            }
        }
        if (!ok)
            break;
        i++;
    }
}

/* A text value: bare when it is a plain word, else quoted and escaped. */
static void put_text_value(line *l, const char *s)
{
    bool plain = *s != '\0';
    for (const unsigned char *p = (const unsigned char *)s; *p && plain; p++)
        plain = *p > 0x20 && *p < 0x7f && *p != '"' && *p != '=' && *p != '\\';
    if (plain && strlen(s) <= LOG_VALUE_MAX) {
        puts_(l, s);
        return;
    }
    puts_(l, "\"");
    put_escaped(l, s, LOG_VALUE_MAX, ESC_QUOTED);
    puts_(l, "\"");
}

static void put_num(line *l, double v)
{
    char num[40];
    if (v == (double)(long long)v && v < 9e15 && v > -9e15)
        snprintf(num, sizeof(num), "%lld", (long long)v);
    else
        snprintf(num, sizeof(num), "%.6g", v);
    puts_(l, num);
}

static void log_vfields(int level, const log_field *f, size_t n, const char *fmt,
                        va_list ap)
{
    char msg[LOG_MESSAGE_MAX + 1], ts[40];
    struct timeval tv;
    struct tm tm;
    line l;
    size_t i;

    if (level < atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + strlen(ts), sizeof(ts) - strlen(ts), ".%03ldZ",
             (long)tv.tv_usec / 1000);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    l.n = 0;
    l.full = false;
    if (log_format == LOG_JSON) {
        puts_(&l, "{\"time\":\"");
        puts_(&l, ts);
        puts_(&l, "\",\"level\":\"");
        puts_(&l, log_names[level]);
        puts_(&l, "\",\"worker\":");
        if (log_worker[0]) {
            puts_(&l, "\"");
            put_escaped(&l, log_worker, sizeof(log_worker), ESC_JSON);
            puts_(&l, "\"");
        } else {
            puts_(&l, "null");
        }
        puts_(&l, ",\"message\":\"");
        put_escaped(&l, msg, sizeof(msg), ESC_JSON);
        l.full = false; /* a cut message still takes its fields, if they fit */
        /* The end of a string always fits (LINE_END_ROOM); a field goes in
         * whole or not at all. */
        l.buf[l.n++] = '"';
        for (i = 0; i < n && !l.full; i++) {
            size_t at = l.n;
            puts_(&l, ",\"");
            put_escaped(&l, f[i].key, 64, ESC_JSON);
            puts_(&l, "\":");
            if (f[i].is_num) {
                put_num(&l, f[i].num);
            } else if (!f[i].str) {
                puts_(&l, "null");
            } else {
                puts_(&l, "\"");
                put_escaped(&l, f[i].str, LOG_VALUE_MAX, ESC_JSON);
                puts_(&l, "\"");
            }
            if (l.full)
                l.n = at; /* it did not fit: left out, and the rest */
        }
        l.buf[l.n++] = '}';
    } else {
        puts_(&l, ts);
        puts_(&l, " ");
        char lv[8];
        snprintf(lv, sizeof(lv), "%-5s", log_names[level]);
        puts_(&l, lv);
        puts_(&l, " ");
        if (log_worker[0]) {
            put_escaped(&l, log_worker, sizeof(log_worker), ESC_BARE);
            puts_(&l, " ");
        }
        put_escaped(&l, msg, sizeof(msg), ESC_BARE);
        l.full = false; /* a cut message still takes its fields, if they fit */
        for (i = 0; i < n && !l.full; i++) {
            size_t at = l.n;
            puts_(&l, " ");
            puts_(&l, f[i].key);
            puts_(&l, "=");
            if (f[i].is_num)
                put_num(&l, f[i].num);
            else
                put_text_value(&l, f[i].str ? f[i].str : "-");
            if (l.full)
                l.n = at;
        }
    }
    l.buf[l.n++] = '\n';
    /* One write per line so lines from several processes do not interleave. */
    ssize_t w = write(STDERR_FILENO, l.buf, l.n);
    (void)w;
}

void log_fields(int level, const log_field *fields, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vfields(level, fields, n, fmt, ap);
    va_end(ap);
}

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vfields(level, NULL, 0, fmt, ap);
    va_end(ap);
}
