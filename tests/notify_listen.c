/* notify_listen.c - a fake service manager's notification socket, for
 * tests/it_service.mjs (node has no unix datagram sockets).
 *
 *   notify_listen PATH|@NAME [SECONDS]
 *
 * Binds a unix datagram socket (a path, or an abstract name after '@'), prints
 * "listening" once bound, then one line per datagram: "PID TEXT", PID the
 * sender's (from its credentials) and TEXT the datagram with '\' and newlines
 * escaped ("\\", "\n"). Exits after SECONDS (default 120): it never outlives a
 * test that forgot it. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    char buf[4096], cbuf[CMSG_SPACE(sizeof(struct ucred))];
    size_t len;
    socklen_t alen;
    int fd, one = 1;

    if (argc < 2 || (len = strlen(argv[1])) >= sizeof(addr.sun_path) || len < 2) {
        fprintf(stderr, "usage: notify_listen PATH|@NAME [SECONDS]\n");
        return 2;
    }
    alarm(argc > 2 ? (unsigned)atoi(argv[2]) : 120);
    memcpy(addr.sun_path, argv[1], len);
    if (argv[1][0] == '@')
        addr.sun_path[0] = '\0';
    alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&addr, alen) < 0) {
        fprintf(stderr, "notify_listen: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    printf("listening\n");
    fflush(stdout);
    for (;;) {
        struct iovec iov = {buf, sizeof(buf)};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = cbuf,
                            .msg_controllen = sizeof(cbuf)};
        struct cmsghdr *c;
        long pid = 0;
        ssize_t got = recvmsg(fd, &mh, 0);

        if (got < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "notify_listen: recvmsg: %s\n", strerror(errno));
            return 1;
        }
        for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
                struct ucred cr;
                memcpy(&cr, CMSG_DATA(c), sizeof(cr));
                pid = (long)cr.pid;
            }
        printf("%ld ", pid);
        for (ssize_t i = 0; i < got; i++) {
            if (buf[i] == '\n')
                fputs("\\n", stdout);
            else if (buf[i] == '\\')
                fputs("\\\\", stdout);
            else
                putchar(buf[i]);
        }
        putchar('\n');
        fflush(stdout);
    }
}
