/* fuzz_names.c - libFuzzer target for the name and number checks of src/util.c.
 *
 * valid_channel_name, valid_conn_id, valid_utf8 and parse_u64 are each
 * compared with a plain reference written from the contract in util.h, on the
 * whole input and on the input as a C string. Any disagreement aborts. */
#include "src/base/util.h"
#include "src/domain/names.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_names: check failed: %s (line %d)\n", #cond,           \
                    __LINE__);                                                           \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* [A-Za-z0-9_.:-]{1,200}, but not the dot-segments "." and "..". */
static int ref_channel_name(const char *s, size_t len)
{
    static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                             "0123456789_.:-";
    if (len < 1 || len > CHAN_NAME_MAX)
        return 0;
    if (len <= 2 && memcmp(s, "..", len) == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\0' || !strchr(ok, s[i]))
            return 0;
    return 1;
}

/* Exactly CONN_ID_LEN characters of [0-9a-f]. */
static int ref_conn_id(const char *s)
{
    if (strlen(s) != CONN_ID_LEN)
        return 0;
    return strspn(s, "0123456789abcdef") == CONN_ID_LEN;
}

/* Decode each sequence to its code point, then check the code point: the
 * other way round from util.c, which checks byte ranges. */
static int ref_utf8(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned c = s[i], cp, min;
        size_t n;

        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0; /* a continuation byte first, or 0xF8..0xFF */
        }
        if (len - i <= n)
            return 0; /* truncated */
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0; /* overlong, too large, surrogate */
        i += n + 1;
    }
    return 1;
}

/* Whole decimal, no sign or blanks, fits in 64 bits. util.c also rejects more
 * than 20 characters even when they are leading zeros ("000...01"), which
 * util.h does not say; the reference does the same, since ids and limits are
 * never zero-padded. */
static int ref_u64(const char *s, uint64_t *out)
{
    static const char max[] = "18446744073709551615";
    size_t len = strlen(s), i;
    uint64_t v = 0;

    if (len == 0 || len > 20 || strspn(s, "0123456789") != len)
        return -1;
    for (i = 0; i < len && s[i] == '0'; i++)
        ;
    if (len - i == 20 && strcmp(s + i, max) > 0)
        return -1;
    for (; i < len; i++)
        v = v * 10 + (uint64_t)(s[i] - '0');
    *out = v;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t size)
{
    const char *s = (const char *)buf;
    char *str = malloc(size + 1);
    uint64_t got = 0x5a5a5a5a5a5a5a5aULL, want = 0;
    int rc, ref;

    CHECK(str);
    memcpy(str, buf, size);
    str[size] = '\0';

    CHECK(valid_channel_name(s, size) == ref_channel_name(s, size));
    CHECK(valid_channel_name(str, strlen(str)) == ref_channel_name(str, strlen(str)));
    CHECK(valid_conn_id(str) == ref_conn_id(str));
    CHECK(valid_utf8(s, size) == ref_utf8(buf, size));
    CHECK(valid_utf8(str, strlen(str)) ==
          ref_utf8((const unsigned char *)str, strlen(str)));

    rc = parse_u64(str, &got);
    ref = ref_u64(str, &want);
    CHECK(rc == ref);
    if (rc == 0)
        CHECK(got == want);
    else
        CHECK(got == 0x5a5a5a5a5a5a5a5aULL); /* untouched on failure */

    /* A generated id is always valid. */
    if (size == 1 && buf[0] == 'g') {
        char id[CONN_ID_LEN + 1];
        conn_id_generate(id);
        CHECK(valid_conn_id(id) && ref_conn_id(id));
    }
    free(str);
    return 0;
}
