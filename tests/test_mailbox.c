/* test_mailbox.c - unit tests for the mailbox (src/base/mailbox.c): jobs
 * posted from other threads reach the receiving loop once each, in the order
 * each sender posted them, a wake-up runs at most a batch and the rest
 * follows on later turns, the bound refuses a job over it (which stays the
 * sender's), the bytes are counted, and a free hands leftovers to the
 * callback. */
#include "src/base/mailbox.h"
#include "tests/tap.h"

#include <pthread.h>
#include <stdlib.h>
#include <event2/event.h>

#define SENDERS 4
#define PER_SENDER 20000

typedef struct job {
    mail m;
    int sender, seq;
} job;

typedef struct rx {
    struct event_base *base;
    int got, bad_order, turns_over_batch;
    int last[SENDERS];
} rx;

static void on_job(mail *m, void *arg)
{
    rx *r = arg;
    job *j = (job *)m;
    if (j->seq != r->last[j->sender] + 1)
        r->bad_order++;
    r->last[j->sender] = j->seq;
    if (++r->got == SENDERS * PER_SENDER)
        event_base_loopbreak(r->base);
    free(j);
}

typedef struct tx {
    mailbox *mb;
    int sender;
} tx;

static void *sender(void *arg)
{
    tx *t = arg;
    for (int i = 1; i <= PER_SENDER; i++) {
        job *j = malloc(sizeof(*j));
        j->sender = t->sender;
        j->seq = i;
        mailbox_post(t->mb, &j->m, sizeof(*j));
    }
    return NULL;
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

/* A callback that counts and frees. */
static int freed;
static void count_free(mail *m, void *arg)
{
    freed++;
    free(m);
}

int main(void)
{
    struct event_base *base = event_base_new();
    rx r = {.base = base};
    mailbox *mb = mailbox_new(base, 0, on_job, &r);
    pthread_t tid[SENDERS];
    tx t[SENDERS];
    struct timeval limit = {10, 0};
    struct event *timeout = evtimer_new(base, on_timeout, base);

    ok(mb != NULL, "a mailbox");
    evtimer_add(timeout, &limit);
    for (int i = 0; i < SENDERS; i++) {
        t[i] = (tx){mb, i};
        pthread_create(&tid[i], NULL, sender, &t[i]);
    }
    event_base_dispatch(base);
    for (int i = 0; i < SENDERS; i++)
        pthread_join(tid[i], NULL);
    ok(r.got == SENDERS * PER_SENDER, "every job arrived once (%d)", r.got);
    ok(r.bad_order == 0, "each sender's jobs in its order");
    ok(mailbox_jobs(mb, NULL) == 0, "none left");
    mailbox_free(mb);

    /* A batch per wake-up: the rest on later turns of the loop. */
    freed = 0;
    mb = mailbox_new(base, 0, count_free, NULL);
    for (int i = 0; i < MAILBOX_BATCH + 10; i++)
        mailbox_post(mb, malloc(sizeof(mail)), 1);
    event_base_loop(base, EVLOOP_ONCE);
    ok(freed == MAILBOX_BATCH, "one wake-up runs a batch (%d)", freed);
    event_base_loop(base, EVLOOP_ONCE);
    ok(freed == MAILBOX_BATCH + 10, "the rest on the next turn (%d)", freed);
    mailbox_free(mb);

    /* The bound, the bytes, and a free with jobs queued. */
    freed = 0;
    mb = mailbox_new(base, 2, count_free, NULL);
    mail *a = malloc(sizeof(mail)), *b = malloc(sizeof(mail)), *c = malloc(sizeof(mail));
    size_t bytes = 0;
    ok(mailbox_post(mb, a, 100) == 0 && mailbox_post(mb, b, 50) == 0, "two jobs in");
    ok(mailbox_post(mb, c, 1) == -1, "a third is over the bound");
    ok(mailbox_jobs(mb, &bytes) == 2 && bytes == 150, "2 jobs, 150 bytes");
    free(c); /* refused: still ours */
    mailbox_free(mb);
    ok(freed == 2, "the free hands what is queued to the callback");

    event_free(timeout);
    event_base_free(base);
    return done_testing();
}
