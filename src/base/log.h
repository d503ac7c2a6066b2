/* log.h - one line per event worth knowing, to stderr, with a level: as text
 * or as one JSON object per line, naming the worker under --workers. */
#ifndef LOG_H
#define LOG_H

#include <stddef.h>

enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum { LOG_TEXT, LOG_JSON };

#define LOG_MESSAGE_MAX 1024 /* longer messages are cut */
#define LOG_VALUE_MAX 512    /* longer field values are cut */

/* Lines below 'level' are dropped. Default LOG_INFO. Any thread may call
 * it while others log (SIGHUP's reload: the level is an atomic). */
void log_set_level(int level);
/* Parse "debug"/"info"/"warn"/"error"; -1 if none of them. */
int log_level_parse(const char *name);
/* LOG_TEXT (default): "TIME LEVEL [WORKER] message key=value ...";
 * LOG_JSON: {"time", "level", "worker", "message", key: value, ...}. */
void log_set_format(int format);
/* Parse "text"/"json"; -1 if neither. */
int log_format_parse(const char *name);
/* Name the process in every line from now on ("w1", "supervisor"; copied,
 * at most 31 bytes); NULL: none (JSON says null). */
void log_set_worker(const char *name);

/* A field of a line: a string (NULL: null) or a number. */
typedef struct log_field {
    const char *key;
    const char *str;
    double num;
    int is_num;
} log_field;
#define LOG_STR(k, v) ((log_field){(k), (v), 0, 0})
#define LOG_NUM(k, v) ((log_field){(k), NULL, (double)(v), 1})

/* One line: the message (formatted like printf, cut at LOG_MESSAGE_MAX) and
 * 'n' fields. Written with one write(2), so lines of several processes do
 * not interleave; a line never holds a raw control character (escaped). */
void log_fields(int level, const log_field *fields, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
