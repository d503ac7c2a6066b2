/* mailbox.c - jobs handed to another thread's event loop: see mailbox.h. */
#include "src/base/mailbox.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <event2/event.h>

struct mailbox {
    pthread_mutex_t mu;
    mail *head, *tail; /* under mu */
    size_t n, bytes;   /* under mu */
    size_t max;
    int efd;
    struct event *ev;
    mailbox_fn fn;
    void *arg;
};

/* Take up to 'max' jobs off the queue, in order. */
static mail *take(mailbox *mb, size_t max, size_t *more)
{
    mail *first, *last;
    size_t k = 1;
    pthread_mutex_lock(&mb->mu);
    if (!(first = mb->head)) {
        pthread_mutex_unlock(&mb->mu);
        *more = 0;
        return NULL;
    }
    mb->bytes -= first->bytes;
    for (last = first; last->next && k < max; last = last->next, k++)
        mb->bytes -= last->next->bytes;
    mb->head = last->next;
    if (!mb->head)
        mb->tail = NULL;
    mb->n -= k;
    *more = mb->n;
    last->next = NULL;
    pthread_mutex_unlock(&mb->mu);
    return first;
}

static void run_list(mailbox *mb, mail *m)
{
    while (m) {
        mail *next = m->next;
        m->next = NULL;
        mb->fn(m, mb->arg);
        m = next;
    }
}

/* Make the eventfd readable (EAGAIN: its counter is full, so it is). */
static void wake(mailbox *mb)
{
    uint64_t one = 1;
    if (write(mb->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        return; /* cannot happen on an eventfd of ours */
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    mailbox *mb = arg;
    uint64_t v;
    size_t more;
    /* Cleared before taking: a post after this read writes again (its job
     * is then taken here or on that wake-up: a spare wake-up at most). */
    if (read(mb->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        return;
    run_list(mb, take(mb, MAILBOX_BATCH, &more));
    /* Left over: the queue is not empty, so no sender writes the eventfd;
     * write it here, so that the rest runs on the next turn, after the
     * loop's sockets (event_active would run it in this one). */
    if (more)
        wake(mb);
}

mailbox *mailbox_new(struct event_base *base, size_t max, mailbox_fn fn, void *arg)
{
    mailbox *mb = calloc(1, sizeof(*mb));
    if (!mb)
        return NULL;
    mb->efd = -1;
    if (pthread_mutex_init(&mb->mu, NULL) != 0) {
        free(mb);
        return NULL;
    }
    mb->max = max;
    mb->fn = fn;
    mb->arg = arg;
    if ((mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
        !(mb->ev = event_new(base, mb->efd, EV_READ | EV_PERSIST, on_wake, mb)) ||
        event_add(mb->ev, NULL) < 0) {
        mailbox_free(mb);
        return NULL;
    }
    return mb;
}

int mailbox_post(mailbox *mb, mail *m, size_t bytes)
{
    bool was_empty;
    m->next = NULL;
    m->bytes = bytes;
    pthread_mutex_lock(&mb->mu);
    if (mb->max && mb->n >= mb->max) {
        pthread_mutex_unlock(&mb->mu);
        return -1;
    }
    was_empty = !mb->head;
    if (mb->tail)
        mb->tail->next = m;
    else
        mb->head = m;
    mb->tail = m;
    mb->n++;
    mb->bytes += bytes;
    pthread_mutex_unlock(&mb->mu);
    if (was_empty)
        wake(mb);
    return 0;
}

size_t mailbox_run(mailbox *mb)
{
    size_t more, ran = 0;
    mail *m = take(mb, SIZE_MAX, &more);
    for (mail *p = m; p; p = p->next)
        ran++;
    run_list(mb, m);
    return ran;
}

void mailbox_wait(mailbox *mb, int ms)
{
    struct pollfd p = {.fd = mb->efd, .events = POLLIN};
    if (!mailbox_jobs(mb, NULL))
        poll(&p, 1, ms);
}

size_t mailbox_jobs(mailbox *mb, size_t *bytes)
{
    size_t n;
    pthread_mutex_lock(&mb->mu);
    n = mb->n;
    if (bytes)
        *bytes = mb->bytes;
    pthread_mutex_unlock(&mb->mu);
    return n;
}

void mailbox_free(mailbox *mb)
{
    if (!mb)
        return;
    if (mb->fn)
        mailbox_run(mb);
    if (mb->ev)
        event_free(mb->ev);
    if (mb->efd >= 0)
        close(mb->efd);
    pthread_mutex_destroy(&mb->mu);
    free(mb);
}
