/* broker_history.c - history queries (hquery.h) over the channels' retained
 * messages.
 *
 * Queries read the history mirror every node keeps of each channel (the
 * newest messages of its stored log, loaded from the store at start and kept
 * by the notifications), so they cost the store nothing: no key is scanned,
 * on either store.
 *
 * Bounded work: the channels a query names are found by exact lookup, or by
 * walking the sorted channel index from a pattern's literal prefix (what
 * precedes its first '?' or '*'); at most BROKER_QUERY_CHANNELS_MAX index
 * entries are visited, and at most BROKER_QUERY_SCAN_MAX messages read, as
 * counted before any is (query_chans). A query over more is refused
 * (BROKER_ELIMIT: narrow it). A page
 * keeps the best 'limit' + 1 messages in a heap as it reads, so it costs
 * O(messages read x log limit) and limit + 1 slots of memory; a channel
 * whose history is sorted by the query's key (the usual case: see scan_chan)
 * is read from where the page starts only. */
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "src/base/util.h"
#include "src/broker/broker_private.h"

/* The channels a query reads (references held by the map): once each after
 * query_chans. */
typedef struct chan_set {
    chan **v;
    size_t n, cap;
    size_t visited; /* index entries looked at */
} chan_set;

static int set_add(chan_set *s, chan *ch)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        chan **v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return BROKER_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = ch;
    return 0;
}

/* Add the channels one pattern matches that 'rd' may read. */
static int set_pattern(broker *b, const hquery *q, const char *pat,
                       const broker_reader *rd, chan_set *s)
{
    /* Its literal prefix: the segments before the first wildcard (with the
     * '.' after them for a '?': "a.?" matches below "a.", "a.*" "a" too). */
    size_t plen = 0;
    for (const char *p = pat;; p++) {
        if ((p == pat || p[-1] == '.') && (*p == '?' || *p == '*')) {
            plen = (size_t)(p - pat);
            if (*p == '*' && plen)
                plen--;
            break;
        }
        if (!*p) {
            plen = SIZE_MAX; /* exact */
            break;
        }
    }
    if (plen == SIZE_MAX) {
        chan *ch = strmap_get(&b->chans, pat);
        s->visited++;
        if (ch && !ch->deleted && hquery_chan_matches(q, ch->name) &&
            (!rd->may_read || rd->may_read(ch->name, rd->arg)))
            return set_add(s, ch);
        return 0;
    }
    char prefix[PATTERN_MAX + 1];
    memcpy(prefix, pat, plen);
    prefix[plen] = '\0';
    chan *first = plen ? strmap_get(&b->chans, prefix) : NULL;
    const sortmap_node *e = sortmap_after(&b->byname, plen ? prefix : NULL);
    for (chan *ch = first; ch || e;) {
        if (!ch) {
            if (strncmp(e->key, prefix, plen) != 0)
                break;
            ch = e->val;
            e = sortmap_next(e);
        }
        if (++s->visited > BROKER_QUERY_CHANNELS_MAX)
            return BROKER_ELIMIT;
        if (!ch->deleted && pattern_match(pat, ch->name, NULL) &&
            hquery_chan_matches(q, ch->name) &&
            (!rd->may_read || rd->may_read(ch->name, rd->arg))) {
            int rc = set_add(s, ch);
            if (rc < 0)
                return rc;
        }
        ch = NULL;
    }
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(chan *const *)a)->name, (*(chan *const *)b)->name);
}

static bool sorted_by(const hquery *q, const msgq *h);

/* The channels of 'q', by name, each once (see the bounds above): every
 * message of each counts against BROKER_QUERY_SCAN_MAX when it must be read
 * whole ('whole', or its history is not sorted by the query's key), else
 * what a search and a page read. */
static int query_chans(broker *b, const hquery *q, const broker_reader *rd, bool whole,
                       chan_set *s)
{
    size_t total = 0, n = 0;
    for (size_t i = 0; i < q->nchans; i++) {
        int rc = set_pattern(b, q, q->chans[i], rd, s);
        if (rc < 0)
            return rc;
    }
    if (s->n > 1)
        qsort(s->v, s->n, sizeof(*s->v), by_name);
    for (size_t i = 0; i < s->n; i++) {
        if (n && s->v[n - 1] == s->v[i])
            continue; /* named by two patterns */
        s->v[n++] = s->v[i];
        const msgq *h = &s->v[i]->history;
        total += whole || !sorted_by(q, h) ? h->len : 64 + q->limit;
    }
    s->n = n;
    return total > BROKER_QUERY_SCAN_MAX ? BROKER_ELIMIT : 0;
}

/* Whether 'm' of 'ch' is still retained (its age), 'rd' may see it and 'q'
 * matches it. */
static bool hit_ok(const hquery *q, const broker_reader *rd, const chan *ch, const msg *m,
                   int64_t now)
{
    return !chan_history_aged(ch, m, now) && hquery_msg_matches(q, m) &&
           (!rd->may_see || rd->may_see(m, rd->arg));
}

/* ---- the page: a heap of the best limit + 1, the last in order on top ---- */

static bool later(const hquery *q, const broker_hit *a, const broker_hit *b)
{
    return hquery_before(q, hquery_key(q, b->m), b->m->seq, hquery_key(q, a->m),
                         a->m->seq);
}

static void sift_down(const hquery *q, broker_hit *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, top = i;
        if (l < n && later(q, &h[l], &h[top]))
            top = l;
        if (r < n && later(q, &h[r], &h[top]))
            top = r;
        if (top == i)
            return;
        broker_hit t = h[i];
        h[i] = h[top];
        h[top] = t;
        i = top;
    }
}

static void sift_up(const hquery *q, broker_hit *h, size_t i)
{
    while (i > 0 && later(q, &h[i], &h[(i - 1) / 2])) {
        broker_hit t = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

/* The first index of 'h' whose message has a key >= 'x' (h.len if none),
 * for a history sorted by that key (see sorted_by). */
static size_t lower_bound(const hquery *q, const msgq *h, int64_t x)
{
    size_t lo = 0, hi = h->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (hquery_key(q, msgq_at(h, mid)) < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Whether the history 'h' is sorted by the query's key as it is by id: no
 * message came with a smaller key than the one before it (one node's clock
 * only goes on; several nodes' clocks may disagree), and, by source time,
 * every message has one. */
static bool sorted_by(const hquery *q, const msgq *h)
{
    return q->by_source ? !h->src_disorder && !h->nosrc : !h->ts_disorder;
}

/* Offer the messages of 'ch' to the page's heap 'out' (k of cap slots
 * used). A history sorted by the key is read in the query's order from where
 * its range (or cursor) starts, found by binary search, up to where the
 * range ends or the heap is full of messages that all come first: O(log n +
 * what the page takes). Any other history is read whole. */
static void scan_chan(const hquery *q, const broker_reader *rd, chan *ch, int64_t now,
                      broker_hit *out, size_t cap, size_t *k)
{
    const msgq *h = &ch->history;
    bool sorted = sorted_by(q, h);
    int64_t lo = q->by_source ? q->src_from : q->from;
    int64_t hi = q->by_source ? q->src_to : q->to;
    size_t i = 0, end = h->len;

    if (sorted && !q->desc) {
        i = lower_bound(q, h, q->has_after && q->after_key > lo ? q->after_key : lo);
    } else if (sorted) {
        int64_t top = q->has_after && q->after_key < hi ? q->after_key : hi;
        end = top == INT64_MAX ? h->len : lower_bound(q, h, top + 1);
    }
    for (size_t step = 0; step < h->len; step++) {
        if (q->desc ? end == 0 : i == end)
            break;
        msg *m = msgq_at(h, q->desc ? --end : i++);
        broker_hit hit = {m, ch};
        if (sorted) {
            int64_t key = hquery_key(q, m);
            if (q->desc ? key < lo : key > hi)
                break; /* the range is over */
            if (*k == cap && !later(q, &out[0], &hit))
                break; /* this and what follows come after the whole page */
        }
        if (!hquery_after_cursor(q, m) || !hit_ok(q, rd, ch, m, now))
            continue;
        if (*k < cap) {
            out[*k] = hit;
            sift_up(q, out, (*k)++);
        } else if (later(q, &out[0], &hit)) {
            out[0] = hit;
            sift_down(q, out, *k, 0);
        }
    }
}

int broker_history_query(broker *b, const hquery *q, const broker_reader *rd,
                         broker_hit *out, size_t *n, bool *more)
{
    chan_set s = {0};
    size_t cap = q->limit + 1, k = 0;
    int64_t now = now_us();
    int rc = query_chans(b, q, rd, false, &s);

    *n = 0;
    *more = false;
    for (size_t c = 0; rc == 0 && c < s.n; c++)
        scan_chan(q, rd, s.v[c], now, out, cap, &k);
    free(s.v);
    if (rc < 0)
        return rc;
    /* Heap sort: the last in order goes to the end first. */
    for (size_t end = k; end > 1; end--) {
        broker_hit t = out[0];
        out[0] = out[end - 1];
        out[end - 1] = t;
        sift_down(q, out, end - 1, 0);
    }
    *more = k > q->limit;
    *n = k > q->limit ? q->limit : k;
    return 0;
}

int broker_history_latest(broker *b, const hquery *q, const broker_reader *rd,
                          broker_hit *out, size_t max, size_t *n, bool *more)
{
    chan_set s = {0};
    strmap seen;
    int64_t now = now_us();
    int rc = query_chans(b, q, rd, true, &s);

    *n = 0;
    *more = false;
    strmap_init(&seen);
    for (size_t c = 0; rc == 0 && c < s.n && !*more; c++) {
        chan *ch = s.v[c];
        bool untyped = false; /* the newest message without a type is in */
        for (size_t i = ch->history.len; i-- > 0;) {
            msg *m = msgq_at(&ch->history, i);
            if (m->event ? strmap_get(&seen, m->event) != NULL : untyped)
                continue;
            if (!hit_ok(q, rd, ch, m, now))
                continue;
            if (*n == max) {
                *more = true;
                break;
            }
            if (m->event && strmap_put(&seen, m->event, m) < 0) {
                rc = BROKER_ENOMEM;
                break;
            }
            untyped |= !m->event;
            out[(*n)++] = (broker_hit){m, ch};
        }
        /* The types are per channel: the map starts again (its keys are
         * borrowed from this channel's messages). */
        strmap_free(&seen);
        strmap_init(&seen);
    }
    strmap_free(&seen);
    free(s.v);
    return rc;
}

/* ---- retention: age and bytes ---- */

void broker_history_retain(broker *b, chan *ch)
{
    int64_t now = now_us();
    uint64_t upto = 0;
    msg *m;
    if (!ch->opts.history_age_s && !ch->opts.history_bytes)
        return;
    while ((m = msgq_at(&ch->history, 0)) &&
           (chan_history_aged(ch, m, now) || chan_history_over(ch))) {
        upto = m->seq;
        msg_unref(msgq_shift(&ch->history));
    }
    if (upto)
        broker_memory_retained(b, ch, upto);
}

/* Every second: the retention of at most BROKER_RETAIN_SWEEP channels, in
 * map order, so that aged messages are freed within about a second while
 * the channels number fewer (and the cost per second is bounded anyway). */
static void retain_tick(evutil_socket_t fd, short what, void *arg)
{
    broker *b = arg;
    strmap_entry *e;
    if (b->closing)
        return;
    for (int n = 0; n < BROKER_RETAIN_SWEEP; n++) {
        if (!strmap_next(&b->chans, &b->retain_pos, &e)) {
            b->retain_pos = 0;
            break;
        }
        broker_history_retain(b, e->val);
    }
}

int broker_history_init(broker *b)
{
    struct timeval sec = {1, 0};
    if (!(b->retain_ev = event_new(b->base, -1, EV_PERSIST, retain_tick, b)) ||
        event_add(b->retain_ev, &sec) < 0)
        return -1;
    return 0;
}

void broker_history_free(broker *b)
{
    if (b->retain_ev)
        event_free(b->retain_ev);
    b->retain_ev = NULL;
}
