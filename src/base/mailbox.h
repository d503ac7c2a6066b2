/* mailbox.h - jobs handed from one thread to the event loop of another.
 *
 * A mutex-protected FIFO and an eventfd the receiving loop watches. The
 * eventfd is written only when the queue goes from empty to non-empty, so a
 * busy sender costs one lock per job and no system call; the receiver takes
 * at most MAILBOX_BATCH jobs per wake-up and, when more are left, runs again
 * on its loop's next turn, so that a flood of jobs does not starve the
 * loop's sockets. No libevent locking is involved: the loop's own events stay
 * lock-free (no evthread_use_pthreads()).
 *
 * Ownership: a job is a struct that starts with a 'mail'; posting hands it
 * to the receiver (whose callback owns it from then on), a refused post
 * leaves it with the sender. A mailbox is bounded ('max' jobs queued, 0: the
 * sender bounds what it posts) and counts the bytes its senders say their
 * jobs hold. */
#ifndef MAILBOX_H
#define MAILBOX_H

#include <stddef.h>

struct event_base;

#define MAILBOX_BATCH 256 /* jobs run per wake-up of the receiving loop */

typedef struct mail {
    struct mail *next;
    size_t bytes; /* what the job holds, as its sender counts it */
} mail;

typedef struct mailbox mailbox;
/* Runs on the receiving loop's thread, once per job; it owns 'm' then. */
typedef void (*mailbox_fn)(mail *m, void *arg);

/* A mailbox received on 'base' (whose thread runs 'fn'). NULL on error. */
mailbox *mailbox_new(struct event_base *base, size_t max, mailbox_fn fn, void *arg);
/* From any thread: queue 'm' ('bytes': what it holds). 0, or -1 when the
 * mailbox holds 'max' jobs already (then 'm' stays the caller's). */
int mailbox_post(mailbox *mb, mail *m, size_t bytes);
/* On the receiving thread: run every job queued now, outside the loop (at
 * shutdown). Returns how many ran. */
size_t mailbox_run(mailbox *mb);
/* Wait up to 'ms' for a job to be posted (the loop not running). */
void mailbox_wait(mailbox *mb, int ms);
/* Jobs queued now, and into '*bytes' (unless NULL) what they hold (any
 * thread). */
size_t mailbox_jobs(mailbox *mb, size_t *bytes);
/* Free the mailbox; jobs still queued are handed to 'fn' first (which must
 * free them). NULL is fine. */
void mailbox_free(mailbox *mb);

#endif
