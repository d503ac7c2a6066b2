/* util.h - string, number and clock helpers every layer may use. */
#ifndef UTIL_H
#define UTIL_H

#include <stddef.h>
#include <stdint.h>

/* 1 if the 'len' bytes at 's' are well-formed UTF-8 (no overlongs, no
 * surrogates, nothing above U+10FFFF); 0 otherwise. */
int valid_utf8(const char *s, size_t len);

/* A NUL-terminated copy of the 'len' bytes at 's' (caller frees), or NULL on
 * OOM. */
char *memdup_nul(const char *s, size_t len);

/* Two strings kept in one allocation of their length ('a', NUL, 'b', NUL),
 * for objects that hold a pair for long (a stream's reader, its client's
 * address and User-Agent). Sets '*dst' (NULL when both are NULL or "").
 * Returns 0, or -1 on OOM ('*dst' NULL). Free '*dst' with free(). */
int strpair_set(char **dst, const char *a, const char *b);
/* The first or the second string of a pair; NULL when it is "" or 'p' NULL. */
const char *strpair_first(const char *p);
const char *strpair_second(const char *p);

/* Microseconds since the Unix epoch. */
int64_t now_us(void);

/* Parse a whole decimal string of at most 20 digits into 'out' (no sign, no
 * spaces, no overflow). Returns 0, or -1 with 'out' untouched. */
int parse_u64(const char *s, uint64_t *out);

/* Write 'v' in decimal at 'p' (room for 20 digits); returns the end (no NUL). */
char *fmt_u64(char *p, uint64_t v);
/* The same for a signed value (room for a '-' and 20 digits). */
char *fmt_i64(char *p, int64_t v);

#endif
