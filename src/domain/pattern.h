/* pattern.h - channel patterns, for permissions and (later) subscriptions.
 *
 * A pattern is a channel name whose '.'-separated segments may also be
 *   ?      exactly one segment, whatever it holds
 *   *      as the last segment only: zero or more segments
 *   {sub}  one segment equal to the caller's authid (never an anonymous one)
 * so "news" matches only "news", "news.?" matches "news.eu" but not "news" or
 * "news.eu.fr", "news.*" matches "news", "news.eu" and "news.eu.fr", "*"
 * matches every channel, and "user.{sub}.*" gives each user the channels
 * below their own name. Other segments match themselves, byte for byte. */
#ifndef PATTERN_H
#define PATTERN_H

#include <stddef.h>

#define PATTERN_MAX 255 /* bytes of a pattern */

/* 1 if the 'len' bytes at 'p' are a pattern: not empty, at most PATTERN_MAX,
 * channel-name characters, '?' and '{sub}' only as whole segments, '*' only
 * as the whole last segment. */
int pattern_valid(const char *p, size_t len);

/* 1 if the 'len' bytes at 'p' are a topic pattern, what a multi-channel
 * stream subscribes with: a valid pattern without "{sub}" (that is for
 * access control only) and without empty segments. */
int pattern_topic_valid(const char *p, size_t len);

/* 1 if the valid pattern 'p' has no '?', '*' or "{sub}" segment: it matches
 * the one channel of its own name. */
int pattern_is_exact(const char *p);

/* 1 if the channel 'name' matches the valid pattern 'p' for a caller whose
 * authid is 'sub' (NULL: anonymous; "{sub}" then matches nothing). */
int pattern_match(const char *p, const char *name, const char *sub);

#endif
