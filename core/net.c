/* core/net.c: address parsing and TCP listeners. */
#include "core_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ACCEPTS_PER_EVENT 64
#define EMFILE_PAUSE_S 0.1
/* A storm's connections wait here until accepted; one that finds it full has
 * its SYN dropped and tries again a second later (then 3 s, 7 s...). The
 * kernel caps it at net.core.somaxconn (4096 by default since Linux 5.4). */
#define LISTEN_BACKLOG 65535

struct core_listener {
    struct ev_loop *loop;
    int fd;
    int port;
    ev_io io;
    ev_timer pause; /* EMFILE/ENFILE back-off */
    core_accept_fn on_accept;
    void *ud;
};

static int parse_port(const char *s, int *port)
{
    long v = 0;

    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > 65535)
            return -1;
    }
    *port = (int)v;
    return 0;
}

static int copy_host(const char *s, size_t n, char *host, size_t hostlen)
{
    if (n >= hostlen)
        return -1;
    memcpy(host, s, n);
    host[n] = '\0';
    return 0;
}

int core_parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;

    if (!s || !host || !port || hostlen == 0)
        return -1;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            return -1;
        if (copy_host(s + 1, (size_t)(end - s - 1), host, hostlen) < 0)
            return -1;
        return parse_port(end + 2, port);
    }
    colon = strchr(s, ':');
    if (!colon || strchr(colon + 1, ':')) /* bare IPv6 needs brackets */
        return -1;
    if (copy_host(s, (size_t)(colon - s), host, hostlen) < 0)
        return -1;
    return parse_port(colon + 1, port);
}

int core_parse_url(const char *url, const char *scheme, char *host, size_t hostlen, int *port,
                   char *path, size_t pathlen)
{
    char hostport[300];
    const char *p, *slash;
    size_t n = scheme ? strlen(scheme) : 0;

    if (!url || n == 0 || strncmp(url, scheme, n) != 0 || strncmp(url + n, "://", 3) != 0)
        return -1;
    p = url + n + 3;
    slash = strchr(p, '/');
    n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n >= sizeof(hostport))
        return -1;
    memcpy(hostport, p, n);
    hostport[n] = '\0';
    if (core_parse_hostport(hostport, host, hostlen, port) < 0) {
        if (strchr(hostport, ':') || copy_host(hostport, n, host, hostlen) < 0)
            return -1;
        *port = strcmp(scheme, "https") == 0 || strcmp(scheme, "wss") == 0 ? 443 : 80;
    }
    if (!host[0] || *port <= 0 || *port > 65535)
        return -1;
    if (snprintf(path, pathlen, "%s", slash ? slash : "/") >= (int)pathlen)
        return -1;
    return strpbrk(path, " \r\n") ? -1 : 0;
}

int core__sockaddr(const char *host, int port, int passive, struct sockaddr_storage *ss,
                   socklen_t *sslen)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    char tmp[INET6_ADDRSTRLEN + 2];
    size_t n;

    if (port < 0 || port > 65535 || !host)
        return -1;
    memset(ss, 0, sizeof(*ss));
    if (host[0] == '\0' && !passive)
        return -1;
    if (host[0] == '\0' || strcmp(host, "localhost") == 0) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        v4->sin_addr.s_addr = htonl(host[0] ? INADDR_LOOPBACK : INADDR_ANY);
        *sslen = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *sslen = sizeof(*v4);
        return 0;
    }
    n = strlen(host);
    if (host[0] == '[' && n >= 2 && host[n - 1] == ']' && n - 2 < sizeof(tmp)) {
        memcpy(tmp, host + 1, n - 2);
        tmp[n - 2] = '\0';
        host = tmp;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *sslen = sizeof(*v6);
        return 0;
    }
    return -1;
}

void core__format_peer(const struct sockaddr *sa, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof(ip));
        snprintf(out, outlen, "%s:%u", ip, ntohs(v4->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof(ip));
        snprintf(out, outlen, "[%s]:%u", ip, ntohs(v6->sin6_port));
    } else {
        snprintf(out, outlen, "?");
    }
}

static void listener_resume(struct ev_loop *loop, ev_timer *w, int revents)
{
    core_listener_t *l = w->data;

    (void)revents;
    ev_io_start(loop, &l->io);
}

/* Out of descriptors: stop accepting for a moment instead of spinning. */
static void listener_pause(core_listener_t *l, int err)
{
    CORE_WARN("accept: %s; pausing listener on port %d", strerror(err), l->port);
    ev_io_stop(l->loop, &l->io);
    ev_timer_set(&l->pause, EMFILE_PAUSE_S, 0.);
    ev_timer_start(l->loop, &l->pause);
}

static void listener_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    core_listener_t *l = w->data;

    (void)revents;
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        char peer[64];
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                listener_pause(l, errno);
            else if (errno != EAGAIN && errno != EWOULDBLOCK)
                CORE_WARN("accept on port %d: %s", l->port, strerror(errno));
            return;
        }
        core__format_peer((struct sockaddr *)&ss, peer, sizeof(peer));
        l->on_accept(loop, fd, peer, l->ud);
    }
}

static int listener_bind(core_listener_t *l, const char *host, int port, int shared, char *err,
                         size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    int one = 1;

    if (core__sockaddr(host ? host : "", port, 1, &ss, &sslen) < 0) {
        snprintf(err, errlen, "bad listen address '%s'", host ? host : "");
        return -1;
    }
    l->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* accepted sockets inherit it (one system call per listener, not per conn) */
    setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (shared && setsockopt(l->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        snprintf(err, errlen, "SO_REUSEPORT: %s", strerror(errno));
        return -1;
    }
    if (bind(l->fd, (struct sockaddr *)&ss, sslen) < 0 || listen(l->fd, LISTEN_BACKLOG) < 0) {
        snprintf(err, errlen, "bind/listen %s:%d: %s", host ? host : "", port, strerror(errno));
        return -1;
    }
    sslen = sizeof(ss);
    if (getsockname(l->fd, (struct sockaddr *)&ss, &sslen) < 0) {
        snprintf(err, errlen, "getsockname: %s", strerror(errno));
        return -1;
    }
    l->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                            : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

core_listener_t *core_listener_new(struct ev_loop *loop, const char *host, int port,
                                   core_accept_fn on_accept, void *ud, char *err, size_t errlen)
{
    return core_listener_new_shared(loop, host, port, 0, on_accept, ud, err, errlen);
}

core_listener_t *core_listener_new_shared(struct ev_loop *loop, const char *host, int port,
                                          int shared, core_accept_fn on_accept, void *ud,
                                          char *err, size_t errlen)
{
    core_listener_t *l = core_xcalloc(1, sizeof(*l));
    char dummy[8];

    if (!err) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    l->loop = loop;
    l->fd = -1;
    l->on_accept = on_accept;
    l->ud = ud;
    if (listener_bind(l, host, port, shared, err, errlen) < 0)
        goto fail;
    ev_io_init(&l->io, listener_on_io, l->fd, EV_READ);
    l->io.data = l;
    ev_timer_init(&l->pause, listener_resume, EMFILE_PAUSE_S, 0.);
    l->pause.data = l;
    ev_io_start(loop, &l->io);
    return l;
fail:
    if (l->fd >= 0)
        close(l->fd);
    free(l);
    return NULL;
}

int core_listener_port(const core_listener_t *l)
{
    return l->port;
}

void core_listener_free(core_listener_t *l)
{
    if (!l)
        return;
    ev_io_stop(l->loop, &l->io);
    ev_timer_stop(l->loop, &l->pause);
    close(l->fd);
    free(l);
}
