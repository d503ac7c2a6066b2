/* names.h - what channel names and connection ids may be, and fresh ids. */
#ifndef NAMES_H
#define NAMES_H

#include <stddef.h>

#define CHAN_NAME_MAX 200
#define CONN_ID_LEN 16 /* hex characters of a connection id */

/* 1 if the 'len' bytes at 's' are a channel name: [A-Za-z0-9_.:-]{1,200},
 * but not "." or "..". */
int valid_channel_name(const char *s, size_t len);

/* 1 if 's' is a connection id: exactly CONN_ID_LEN lowercase hex characters. */
int valid_conn_id(const char *s);

/* Write a fresh random connection id (CONN_ID_LEN hex chars + NUL) to 'out'. */
void conn_id_generate(char out[CONN_ID_LEN + 1]);

#endif
