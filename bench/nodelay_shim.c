/* LD_PRELOAD shim: sets TCP_NODELAY on every socket accept()/accept4()
 * returns, so a server that leaves Nagle on (nginx-rtmp) can be measured
 * writing each message as it comes, as Sluice does. Bench use only. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void nodelay(int fd) {
    int one = 1;
    if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int accept(int fd, struct sockaddr *a, socklen_t *l) {
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real) real = dlsym(RTLD_NEXT, "accept");
    int c = real(fd, a, l);
    nodelay(c);
    return c;
}

int accept4(int fd, struct sockaddr *a, socklen_t *l, int flags) {
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real) real = dlsym(RTLD_NEXT, "accept4");
    int c = real(fd, a, l, flags);
    nodelay(c);
    return c;
}
