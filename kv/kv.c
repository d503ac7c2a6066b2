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
