/* names.c - what channel names and connection ids may be, and new ids. */
#include "src/domain/names.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "src/base/util.h"

int valid_channel_name(const char *s, size_t len)
{
    if (len == 0 || len > CHAN_NAME_MAX)
        return 0;
    /* "." and ".." are dot-segments: a client or proxy normalising the URL
     * (RFC 3986 5.2.4) turns /channels/../events into /events, so such a
     * channel could not be reached reliably, and a name that walks the path
     * is never meant. */
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

int valid_conn_id(const char *s)
{
    size_t i;
    for (i = 0; s[i]; i++)
        if (i >= CONN_ID_LEN ||
            !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return i == CONN_ID_LEN;
}

void conn_id_generate(char out[CONN_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[CONN_ID_LEN / 2];

    /* getrandom() on a few bytes never blocks once the pool is initialised;
     * fall back to the clock if it ever fails. */
    if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd)) {
        uint64_t t = (uint64_t)now_us() ^ ((uint64_t)rand() << 20);
        memcpy(rnd, &t, sizeof(rnd));
    }
    for (size_t i = 0; i < sizeof(rnd); i++) {
        out[2 * i] = hex[rnd[i] >> 4];
        out[2 * i + 1] = hex[rnd[i] & 15];
    }
    out[CONN_ID_LEN] = '\0';
}
