/* msgq.h - a bounded FIFO of message references (connection queues, history).
 *
 * Policy when full: the oldest message is dropped to make room, and counted. */
#ifndef MSGQ_H
#define MSGQ_H

#include <stddef.h>
#include <stdint.h>

#include "src/domain/msg.h"

typedef struct msgq {
    msg **v; /* ring storage, grows on demand up to 'limit' */
    size_t cap, head, len;
    size_t limit;     /* 0: holds nothing */
    uint64_t dropped; /* messages dropped by the bound since creation */
    uint64_t gone;    /* the highest seq that left it from the front (dropped,
                         shifted, or never kept with 'limit' 0); 0: none */
    size_t bytes;     /* msg_payload_bytes() of the messages it holds */
    /* The order of its timestamps, for queries: whether a message was pushed
     * with a timestamp (a source timestamp) below the one pushed before it
     * since the queue was last empty, and how many it holds without a
     * source timestamp. Without disorder a queue is sorted by that key as
     * it is by id, and can be searched by it. */
    int64_t last_ts, last_src;
    int ts_disorder, src_disorder, src_seen;
    size_t nosrc;
} msgq;

void msgq_init(msgq *q, size_t limit);
/* Drop every reference and the storage. */
void msgq_free(msgq *q);
/* Append a new reference to 'm'. Returns how many old messages the bound
 * dropped (0 or more), or -1 on OOM (queue unchanged). */
int msgq_push(msgq *q, msg *m);
/* The i-th oldest message (borrowed), or NULL past the end. */
msg *msgq_at(const msgq *q, size_t i);
/* Remove the oldest message and hand its reference to the caller; NULL if empty. */
msg *msgq_shift(msgq *q);
/* Change the bound, dropping the oldest beyond it (not counted as dropped). */
void msgq_set_limit(msgq *q, size_t limit);
/* Index of the first message with seq > 'seq' (len if none). */
size_t msgq_after(const msgq *q, uint64_t seq);
/* Index of the message with exactly 'seq', or -1. */
long msgq_find(const msgq *q, uint64_t seq);

#endif
