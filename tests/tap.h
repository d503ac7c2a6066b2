/* tap.h - the smallest TAP producer: ok(cond, name), then done_testing(). */
#ifndef TAP_H
#define TAP_H

#include <stdio.h>

static int tap_n, tap_failed;

#define ok(cond, ...)                                                                    \
    do {                                                                                 \
        int ok_ = !!(cond);                                                              \
        tap_n++;                                                                         \
        if (!ok_)                                                                        \
            tap_failed++;                                                                \
        printf("%sok %d - ", ok_ ? "" : "not ", tap_n);                                  \
        printf(__VA_ARGS__);                                                             \
        printf("\n");                                                                    \
        if (!ok_)                                                                        \
            printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);              \
        fflush(stdout);                                                                  \
    } while (0)

#define diag(...)                                                                        \
    do {                                                                                 \
        printf("# ");                                                                    \
        printf(__VA_ARGS__);                                                             \
        printf("\n");                                                                    \
    } while (0)

static inline int done_testing(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif
