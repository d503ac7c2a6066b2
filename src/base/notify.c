/* notify.c - sd_notify(3)'s datagram protocol to $NOTIFY_SOCKET, never blocking. */
#include "src/base/notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <event2/event.h>

#include "src/base/log.h"
#include "src/base/util.h"

static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_addrlen;
static bool notify_warned; /* a failure was logged: the next ones are not */

static void notify_warn(const char *what, const char *why)
{
    if (notify_warned)
        return;
    notify_warned = true;
    log_warn("cannot notify the service manager (%s): %s; going on without", what, why);
}

/* Open the socket named by $NOTIFY_SOCKET: a path ("/run/systemd/notify") or
 * an abstract name ("@name"). Returns 1 when open, 0 without the variable, -1
 * on failure (logged once). */
static int notify_open(void)
{
    const char *name = getenv("NOTIFY_SOCKET");
    size_t len;

    if (notify_fd >= 0)
        return 1;
    if (!name || !*name)
        return 0;
    len = strlen(name);
    if ((name[0] != '/' && name[0] != '@') || len >= sizeof(notify_addr.sun_path)) {
        notify_warn(name, "not a unix socket path or @abstract name");
        return -1;
    }
    memset(&notify_addr, 0, sizeof(notify_addr));
    notify_addr.sun_family = AF_UNIX;
    memcpy(notify_addr.sun_path, name, len);
    if (name[0] == '@')
        notify_addr.sun_path[0] = '\0'; /* abstract: the length says where it ends */
    else
        len++; /* a path: its terminating NUL counts */
    notify_addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (notify_fd < 0) {
        notify_warn(name, strerror(errno));
        return -1;
    }
    return 1;
}

int notify_send(const char *state)
{
    int rc = notify_open();
    if (rc <= 0)
        return rc;
    if (sendto(notify_fd, state, strlen(state), MSG_DONTWAIT | MSG_NOSIGNAL,
               (struct sockaddr *)&notify_addr, notify_addrlen) < 0) {
        notify_warn(getenv("NOTIFY_SOCKET"), strerror(errno));
        return -1;
    }
    return 1;
}

int notify_sendf(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    if (!getenv("NOTIFY_SOCKET"))
        return 0;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return notify_send(buf);
}

uint64_t notify_watchdog_usec(void)
{
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    uint64_t v, p;

    if (!usec || parse_u64(usec, &v) < 0 || v == 0)
        return 0;
    if (pid && (parse_u64(pid, &p) < 0 || p != (uint64_t)getpid()))
        return 0;
    return v;
}

static void notify_on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    notify_send("WATCHDOG=1");
}

struct event *notify_watchdog_start(struct event_base *base)
{
    uint64_t usec = notify_watchdog_usec() / 2;
    struct timeval every;
    struct event *ev;

    if (!usec)
        return NULL;
    every.tv_sec = (time_t)(usec / 1000000);
    every.tv_usec = (suseconds_t)(usec % 1000000);
    if (!(ev = event_new(base, -1, EV_PERSIST, notify_on_watchdog, NULL)) ||
        event_add(ev, &every) < 0) {
        log_warn("cannot start the watchdog timer: the service manager may kill us");
        if (ev)
            event_free(ev);
        return NULL;
    }
    return ev;
}

void notify_watchdog_free(struct event *ev)
{
    if (ev)
        event_free(ev);
}

void notify_close(void)
{
    if (notify_fd >= 0)
        close(notify_fd);
    notify_fd = -1;
}

void notify_forget(void)
{
    notify_close();
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}
