/* redis_server.h - start a private redis-server for a test and stop it by PID.
 *
 * It listens on a free loopback port, keeps nothing outside a temporary
 * directory, and is stopped (and its directory removed) by redis_server_stop.
 * A missing redis-server is a failure, not a skip: the README's test command
 * installs it. */
#ifndef REDIS_SERVER_H
#define REDIS_SERVER_H

#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <hiredis/hiredis.h>

typedef struct redis_server {
    pid_t pid;
    int port;
    char dir[64];
    char url[64];
    /* More redis-server arguments for the next starts (after the defaults, so
     * they override them), at most 16, NULL-terminated; or NULL. */
    const char *const *args;
} redis_server;

static int redis_free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Start redis-server on rs->port and rs->dir, without waiting for it. Returns
 * 0, or -1 if it could not be forked. */
static inline int redis_server_exec(redis_server *rs)
{
    char port[16];
    const char *argv[32] = {"redis-server", "--bind", "127.0.0.1", "--port",
                            port,           "--save", "",          "--appendonly",
                            "no",           "--dir",  rs->dir};
    size_t n = 11;
    for (size_t i = 0; rs->args && rs->args[i] && i < 16; i++)
        argv[n++] = rs->args[i];
    snprintf(port, sizeof(port), "%d", rs->port);
    if ((rs->pid = fork()) == 0) {
        /* Die with the test, however it ends. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        freopen("/dev/null", "w", stdout);
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    return rs->pid < 0 ? -1 : 0;
}

/* Start redis-server on rs->port and rs->dir. Returns 0 once it answers PING
 * (within 10 s: a server still loading its data answers LOADING), -1
 * otherwise. */
static int redis_server_spawn(redis_server *rs)
{
    if (redis_server_exec(rs) < 0)
        return -1;
    for (int i = 0; i < 200; i++) {
        struct timeval tv = {1, 0};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", rs->port, tv);
        redisReply *r = c && !c->err ? redisCommand(c, "PING") : NULL;
        int up = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        if (c)
            redisFree(c);
        if (up)
            return 0;
        if (waitpid(rs->pid, NULL, WNOHANG) == rs->pid) {
            rs->pid = 0;
            return -1;
        }
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    return -1;
}

/* Returns 0 once the server answers PING (within 10 s), -1 otherwise. */
static int redis_server_start(redis_server *rs)
{
    memset(rs, 0, sizeof(rs[0]));
    snprintf(rs->dir, sizeof(rs->dir), "/tmp/ssebroker-redis-XXXXXX");
    if (!mkdtemp(rs->dir) || (rs->port = redis_free_port()) < 0)
        return -1;
    snprintf(rs->url, sizeof(rs->url), "redis://127.0.0.1:%d/0", rs->port);
    return redis_server_spawn(rs);
}

/* Stop the server and start a new one on the same port: what clients see when
 * Redis restarts (it saves nothing, so its data and scripts are gone). Returns
 * 0 once the new one answers PING. */
static inline int redis_server_restart(redis_server *rs)
{
    if (rs->pid > 0) {
        kill(rs->pid, SIGTERM);
        waitpid(rs->pid, NULL, 0);
        rs->pid = 0;
    }
    return redis_server_spawn(rs);
}

/* Run one command on a connection of its own; 'fmt' is a hiredis format
 * ("SET %s %b", ...: arguments are split at spaces, not at quotes). Returns 0
 * unless it failed or answered an error. */
static inline int redis_server_cmd(const redis_server *rs, const char *fmt, ...)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", rs->port, tv);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = c && !c->err ? redisvCommand(c, fmt, ap) : NULL;
    va_end(ap);
    int rc = r && r->type != REDIS_REPLY_ERROR ? 0 : -1;
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    return rc;
}

static void redis_server_stop(redis_server *rs)
{
    char cmd[128];
    if (rs->pid > 0) {
        kill(rs->pid, SIGTERM);
        waitpid(rs->pid, NULL, 0);
        rs->pid = 0;
    }
    if (rs->dir[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", rs->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", rs->dir);
    }
}

#endif
