/* notify.h - tell the service manager how we are: the datagram protocol of
 * sd_notify(3) ("READY=1", "STOPPING=1", "WATCHDOG=1", ...) to the socket
 * named by $NOTIFY_SOCKET, in a few lines of our own rather than libsystemd.
 *
 * Nothing here blocks or fails the caller: the socket is non-blocking, a
 * message the manager cannot take at once is dropped, and only the first
 * failure is logged. Without $NOTIFY_SOCKET every call does nothing. */
#ifndef NOTIFY_H
#define NOTIFY_H

#include <stdint.h>

struct event;
struct event_base;

/* Send one message of newline-separated VAR=value assignments (e.g.
 * "READY=1\nMAINPID=42"). Returns 1 if the manager has it, 0 when there is no
 * $NOTIFY_SOCKET, -1 if it could not be sent (the first such failure
 * logged as a warning). */
int notify_send(const char *state);

/* notify_send() of a formatted message (at most 1 KiB; longer is cut). */
int notify_sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The watchdog interval the manager asks for, in microseconds: $WATCHDOG_USEC
 * when it is a positive number and $WATCHDOG_PID is absent or this process;
 * else 0 (no watchdog). */
uint64_t notify_watchdog_usec(void);

/* Send "WATCHDOG=1" every half watchdog interval from a timer on 'base'.
 * Returns the timer (stop it with notify_watchdog_free()), or NULL when no
 * watchdog is asked for or the timer could not be made (logged). */
struct event *notify_watchdog_start(struct event_base *base);

/* Stop and free a timer from notify_watchdog_start(). NULL does nothing. */
void notify_watchdog_free(struct event *ev);

/* Close the socket; a later notify_send() opens it again. */
void notify_close(void);

/* In a process that must never speak for the service (a worker forked by a
 * supervisor that does): close the socket and unset $NOTIFY_SOCKET,
 * $WATCHDOG_USEC and $WATCHDOG_PID, so that it and its children stay quiet. */
void notify_forget(void);

#endif
