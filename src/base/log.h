/* log.h - one line per event worth knowing, to stderr, with a level. */
#ifndef LOG_H
#define LOG_H

enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Lines below 'level' are dropped. Default LOG_INFO. */
void log_set_level(int level);
/* Parse "debug"/"info"/"warn"/"error"; -1 if none of them. */
int log_level_parse(const char *name);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
