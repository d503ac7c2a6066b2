/* broker_memory.c - the global bound on what retained messages take.
 *
 * Retained messages are counted in real bytes (msg_live_bytes: every message
 * alive here; kv_used: what the store holds in this process; the eviction
 * notes), against limits.max_memory. Policy reject: a publish that would pass
 * the bound is refused (broker_publish: BROKER_EFULL), nothing stored, and
 * what was accepted is delivered as ever. Policy evict: the oldest retained
 * messages across all channels go first, from the stored logs and the history
 * mirrors, until the bound holds.
 *
 * "Oldest across all channels": ids are global and increasing, and each
 * channel notes the ids its stored log holds (chan_log_note), so the channel
 * whose oldest noted id is the smallest holds the oldest message. Channels
 * sit in a binary min-heap by that id; an eviction takes the heap's top. */
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "src/base/log.h"
#include "src/broker/broker_private.h"

#define EVICT_MAX                                                                        \
    10000 /* evictions per check: a bounded loop; the next check goes on                 \
           */

size_t broker_memory_used(const broker *b)
{
    return msg_live_bytes() + kv_used(b->kv) + chan_log_bytes() +
           b->heapcap * sizeof(chan *);
}

const char *broker_memory_policy_name(int mem_policy)
{
    return mem_policy == BROKER_MEM_EVICT ? "evict" : "reject";
}

int broker_memory_policy_parse(const char *name)
{
    if (strcmp(name, "reject") == 0)
        return BROKER_MEM_REJECT;
    if (strcmp(name, "evict") == 0)
        return BROKER_MEM_EVICT;
    return -1;
}

/* ---- the heap ---- */

static int older(const chan *a, const chan *b)
{
    return chan_log_oldest(a) < chan_log_oldest(b);
}

static void heap_set(broker *b, size_t i, chan *ch)
{
    b->heap[i] = ch;
    ch->heap_at = i;
}

static void sift_up(broker *b, size_t i)
{
    chan *ch = b->heap[i];
    while (i > 0 && older(ch, b->heap[(i - 1) / 2])) {
        heap_set(b, i, b->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(b, i, ch);
}

static void sift_down(broker *b, size_t i)
{
    chan *ch = b->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        chan *best = ch;
        if (l < b->nheap && older(b->heap[l], best))
            m = l, best = b->heap[l];
        if (r < b->nheap && older(b->heap[r], best))
            m = r, best = b->heap[r];
        if (m == i)
            break;
        heap_set(b, i, best);
        i = m;
    }
    heap_set(b, i, ch);
}

static void heap_remove(broker *b, chan *ch)
{
    size_t i = ch->heap_at;
    chan *last;
    if (i == SIZE_MAX)
        return;
    ch->heap_at = SIZE_MAX;
    last = b->heap[--b->nheap];
    if (last == ch)
        return;
    heap_set(b, i, last);
    sift_up(b, i);
    sift_down(b, last->heap_at);
}

/* Put 'ch' where its oldest noted id says, in or out of the heap. */
static void heap_fix(broker *b, chan *ch)
{
    if (!ch->logids.len) {
        heap_remove(b, ch);
        return;
    }
    if (ch->heap_at == SIZE_MAX) {
        if (b->nheap == b->heapcap) {
            size_t cap = b->heapcap ? 2 * b->heapcap : 64;
            chan **v = realloc(b->heap, cap * sizeof(*v));
            if (!v)
                return; /* not evictable until it fits: the bound still counts it */
            b->heap = v;
            b->heapcap = cap;
        }
        heap_set(b, b->nheap++, ch);
        sift_up(b, ch->heap_at);
        return;
    }
    sift_up(b, ch->heap_at);
    sift_down(b, ch->heap_at);
}

void broker_memory_note(broker *b, chan *ch, uint64_t seq)
{
    if (seq && chan_log_note(ch, seq) < 0)
        log_error("out of memory noting message %llu of '%s'", (unsigned long long)seq,
                  ch->name);
    heap_fix(b, ch);
}

void broker_memory_retained(broker *b, chan *ch, uint64_t seq)
{
    if (ch->nconns)
        return; /* the log serves the connections' queues too: it stays */
    while (ch->logids.len && chan_log_oldest(ch) <= seq)
        chan_log_shift(ch);
    heap_fix(b, ch);
    repo_channel_trim(b->repo, ch, ch->logids.len);
}

void broker_memory_forget(broker *b, chan *ch)
{
    heap_remove(b, ch);
}

/* Evict the oldest retained message of all: off its channel's stored log and
 * its history mirror. */
static void evict_one(broker *b)
{
    chan *ch = b->heap[0];
    uint64_t seq = chan_log_shift(ch);
    msg *h;
    heap_fix(b, ch);
    repo_channel_trim(b->repo, ch, ch->logids.len);
    while ((h = msgq_at(&ch->history, 0)) && h->seq <= seq)
        msg_unref(msgq_shift(&ch->history));
    ch->evicted++;
    b->evicted++;
}

void broker_memory_check(broker *b)
{
    int n = 0;
    if (b->opts.memory_policy != BROKER_MEM_EVICT)
        return;
    while (b->nheap && n < EVICT_MAX && broker_memory_used(b) > b->opts.max_memory) {
        evict_one(b);
        n++;
    }
    if (n)
        log_debug("memory: %d message(s) evicted, %zu bytes retained", n,
                  broker_memory_used(b));
}
