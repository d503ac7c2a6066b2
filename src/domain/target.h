/* target.h - targeted delivery: a message's publication record (who published
 * it, and to whom it may go) and the test of a receiver against it.
 *
 * A publish may name receivers in six lists, as Crossbar does: 'exclude' and
 * 'eligible' (session ids), 'exclude_authid', 'eligible_authid',
 * 'exclude_authrole' and 'eligible_authrole'. A receiver gets the message
 * only if it is in every eligible list given and in none of the exclude
 * lists given. A list given empty is still given: an empty eligible list
 * lets nobody in, an empty exclude list keeps nobody out. A receiver without
 * a value (no session: a history reader; no authid: anonymous; no role) is in
 * no list: it fails every eligible list of that kind and passes every
 * exclude list of that kind.
 *
 * A record is one allocation, immutable once made, owned by the message it
 * hangs off (msg.h) and freed with it. */
#ifndef TARGET_H
#define TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

enum {
    TARGET_EXCLUDE,
    TARGET_ELIGIBLE,
    TARGET_EXCLUDE_AUTHID,
    TARGET_ELIGIBLE_AUTHID,
    TARGET_EXCLUDE_AUTHROLE,
    TARGET_ELIGIBLE_AUTHROLE,
    TARGET_NLISTS
};

#define TARGET_LIST_MAX 100 /* entries in one list */
#define TARGET_ITEM_MAX 256 /* bytes of one entry (1 at least) */

/* The field names of the lists, by TARGET_* index. */
extern const char *const target_list_names[TARGET_NLISTS];

typedef struct target_rec {
    const char *pub_authid;   /* the publisher's authid; NULL: anonymous */
    const char *pub_authrole; /* its role; NULL: none */
    const char *source;       /* the module instance that published it; NULL: none */
    unsigned depth;           /* how many module publishes led to it (0 with no
                                 source) */
    unsigned lists;           /* bit k set: list k was given */
    unsigned short n[TARGET_NLISTS];
    const char *const *item[TARGET_NLISTS];
    size_t size; /* bytes of the allocation (the struct and everything it points to) */
} target_rec;

/* Who a message would go to. Any field may be NULL (see above). */
typedef struct target_rcv {
    const char *session;
    const char *authid;
    const char *authrole;
} target_rcv;

/* 1 if 'name' is one of the six list names. */
bool target_is_list_name(const char *name);

/* A record from the lists in 'lists' (borrowed: an object whose keys are
 * list names, each an array of strings; NULL or {}: no list) and the
 * publisher (copied; either may be NULL). Returns NULL with '*code' set to
 * "invalid_target" (a static string) and a message in 'err' when a key is
 * no list name, a list is no array, holds more than TARGET_LIST_MAX entries,
 * or an entry is no string of 1..TARGET_ITEM_MAX bytes without NUL; or with
 * '*code' "out_of_memory". NULL with '*code' NULL: nothing to record (no list
 * and no publisher). */
target_rec *target_new(const json_t *lists, const char *pub_authid,
                       const char *pub_authrole, const char **code, char *err,
                       size_t errlen);

/* The same lists with another publisher (copied). NULL with '*code' as
 * target_new. 'tg' may be NULL (no list). */
target_rec *target_with_publisher(const target_rec *tg, const char *pub_authid,
                                  const char *pub_authrole, const char **code);

/* The same record with the module instance 'source' (copied) as its origin,
 * 'depth' module publishes down a chain. NULL on OOM ('*code'
 * "out_of_memory"). 'tg' may be NULL. */
target_rec *target_with_source(const target_rec *tg, const char *source, unsigned depth,
                               const char **code);

void target_free(target_rec *tg);

/* 1 if any list was given. */
static inline bool target_has_lists(const target_rec *tg)
{
    return tg && tg->lists != 0;
}

/* 1 if 'r' may receive a message targeted by 'tg'. */
bool target_allows(const target_rec *tg, const target_rcv *r);

/* The stored form: {"publisher_authid"?, "publisher_authrole"?, "source"?,
 * "depth"? (with a source), LIST: [...]
 * for each list given, in TARGET_* order}. New reference, NULL on OOM. */
json_t *target_to_json(const target_rec *tg);

/* A record from its stored form (borrowed). NULL if it is not one (or on
 * OOM). */
target_rec *target_from_json(const json_t *o);

#endif
