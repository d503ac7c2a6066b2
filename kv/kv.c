/* kv.c - what every store shares: error texts and the report hook. */
#include <stdarg.h>
#include <stdio.h>

#include "kv/kv.h"
#include "kv/kv_private.h"

const char *kv_strerror(int code)
{
    switch (code) {
    case KV_OK:
        return "ok";
    case KV_ENOTFOUND:
        return "not found";
    case KV_EIO:
        return "store unreachable or write failed";
    case KV_ENOMEM:
        return "out of memory";
    case KV_ETYPE:
        return "wrong kind of value for this operation";
    case KV_EINVAL:
        return "invalid argument";
    case KV_EFULL:
        return "the store is out of memory";
    default:
        return "unknown error";
    }
}

const char *kv_event_name(int event)
{
    static const char *const names[] = {"connected", "lost",  "subscribed", "sub_lost",
                                        "failed",    "error", "retry",      "bad_record"};
    return event >= 0 && event < (int)(sizeof(names) / sizeof(names[0])) ? names[event]
                                                                         : "unknown";
}

void kv_metrics_init(kv_store *kv)
{
    /* 50 us to 5 s: a memory store answers within the loop turn, Redis within
     * a round trip unless it is slow. */
    static const double op_bounds[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                       0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                                       0.5,     1,      2.5,     5};
    static const double batch_bounds[] = {1,   2,   5,   10,   20,   50,
                                          100, 200, 500, 1000, 10000};
    prom_hist_init(&kv->metrics.op_seconds, op_bounds,
                   sizeof(op_bounds) / sizeof(op_bounds[0]));
    prom_hist_init(&kv->metrics.batch_ops, batch_bounds,
                   sizeof(batch_bounds) / sizeof(batch_bounds[0]));
}

void kv_set_report(kv_store *kv, kv_report_cb cb, void *arg)
{
    kv->report = cb;
    kv->report_arg = arg;
}

void kv_report(kv_store *kv, int event, const char *fmt, ...)
{
    char detail[512];
    va_list ap;

    if (!kv->report)
        return;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    kv->report(event, detail, kv->report_arg);
}
