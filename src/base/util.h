/* util.h - small helpers shared by the broker: name checks, clocks, ids, a string map. */
#ifndef UTIL_H
#define UTIL_H

#include <stddef.h>
#include <stdint.h>

#define CHAN_NAME_MAX 200
#define CONN_ID_LEN 16 /* hex characters of a connection id */

/* 1 if the 'len' bytes at 's' are a channel name: [A-Za-z0-9_.:-]{1,200}. */
int valid_channel_name(const char *s, size_t len);

/* 1 if 's' is a connection id: exactly CONN_ID_LEN lowercase hex characters. */
int valid_conn_id(const char *s);

/* Write a fresh random connection id (CONN_ID_LEN hex chars + NUL) to 'out'. */
void conn_id_generate(char out[CONN_ID_LEN + 1]);

/* 1 if the 'len' bytes at 's' are well-formed UTF-8 (no overlongs, no
 * surrogates, nothing above U+10FFFF); 0 otherwise. */
int valid_utf8(const char *s, size_t len);

/* A NUL-terminated copy of the 'len' bytes at 's' (caller frees), or NULL on
 * OOM. */
char *memdup_nul(const char *s, size_t len);

/* Microseconds since the Unix epoch. */
int64_t now_us(void);

/* Parse a whole decimal string of at most 20 digits into 'out' (no sign, no
 * spaces, no overflow). Returns 0, or -1 with 'out' untouched. */
int parse_u64(const char *s, uint64_t *out);

/* An open hash map from NUL-terminated keys to pointers. Keys are borrowed:
 * each value must outlive its entry and own the key it was added with. */
typedef struct strmap {
    struct strmap_entry *v;
    size_t cap, len;
} strmap;

typedef struct strmap_entry {
    const char *key;
    void *val;
} strmap_entry;

void strmap_init(strmap *m);
void strmap_free(strmap *m); /* frees the table, not the values */
void *strmap_get(const strmap *m, const char *key);
/* Insert or replace. Returns 0, or -1 on OOM (map unchanged). */
int strmap_put(strmap *m, const char *key, void *val);
/* Remove; returns the old value or NULL. */
void *strmap_del(strmap *m, const char *key);
/* Iterate: for (size_t i = 0; strmap_next(m, &i, &e);) ... */
int strmap_next(const strmap *m, size_t *i, strmap_entry **e);

/* Write 'v' in decimal at 'p' (room for 20 digits); returns the end (no NUL). */
char *fmt_u64(char *p, uint64_t v);
/* The same for a signed value (room for a '-' and 20 digits). */
char *fmt_i64(char *p, int64_t v);

#endif
