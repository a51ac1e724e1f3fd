/* Targets: the loopback-only guard, URL parsing, the gateway's node list. */
#include "bench/bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core.h"

#define GW_REPLY_MAX (1u << 20)

static int v4_is_loopback(const struct in_addr *a)
{
    return (ntohl(a->s_addr) >> 24) == 127;
}

static int v6_is_loopback(const struct in6_addr *a)
{
    if (IN6_IS_ADDR_LOOPBACK(a))
        return 1;
    if (IN6_IS_ADDR_V4MAPPED(a))
        return a->s6_addr[12] == 127;
    return 0;
}

int bench_addr_is_loopback(const char *ip)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, ip, &a4) == 1)
        return v4_is_loopback(&a4);
    if (inet_pton(AF_INET6, ip, &a6) == 1)
        return v6_is_loopback(&a6);
    return 0;
}

static int sockaddr_text(const struct sockaddr *sa, char *ip, size_t iplen)
{
    const void *src = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                                               : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    return inet_ntop(sa->sa_family, src, ip, (socklen_t)iplen) ? 0 : -1;
}

int bench_resolve_loopback(const char *host, char *ip, size_t iplen, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    int ok = 0, count = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        char text[64];
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            sockaddr_text(ai->ai_addr, text, sizeof text) != 0)
            continue;
        if (!bench_addr_is_loopback(text)) {
            snprintf(err, errlen, "refusing target '%s' (%s): outside 127.0.0.0/8", host, text);
            freeaddrinfo(res);
            return -2;
        }
        /* connect over IPv4 only: source binding uses 127.0.0.x */
        if (ai->ai_family == AF_INET && !ok) {
            core_copy_trunc(ip, iplen, text);
            ok = 1;
        }
        count++;
    }
    freeaddrinfo(res);
    if (!ok) {
        snprintf(err, errlen, "'%s' has no IPv4 loopback address%s", host, count ? "" : " at all");
        return -1;
    }
    return 0;
}

static core_tls_t *g_tls;

void bench_set_tls(core_tls_t *tls)
{
    g_tls = tls;
}

core_tls_t *bench_tls(void)
{
    return g_tls;
}

int bench_target_parse(const char *url, const char *scheme, bench_target_t *t, char *err,
                       size_t errlen)
{
    memset(t, 0, sizeof *t);
    size_t sl = strlen(scheme);
    if (strncmp(url, scheme, sl) != 0) {
        snprintf(err, errlen, "'%s' is not a %s[s]:// URL", url, scheme);
        return -1;
    }
    if (url[sl] == 's') {
        t->tls = 1;
        sl++;
    }
    if (strncmp(url + sl, "://", 3) != 0) {
        snprintf(err, errlen, "'%s' is not a %s[s]:// URL", url, scheme);
        return -1;
    }
    const char *hp = url + sl + 3;
    const char *slash = strchr(hp, '/');
    size_t hplen = slash ? (size_t)(slash - hp) : strlen(hp);
    char hostport[BENCH_HOST_MAX + 8];
    if (hplen == 0 || hplen >= sizeof hostport) {
        snprintf(err, errlen, "bad host in '%s'", url);
        return -1;
    }
    memcpy(hostport, hp, hplen);
    hostport[hplen] = '\0';
    if (core_parse_hostport(hostport, t->host, sizeof t->host, &t->port) != 0 || !t->host[0] ||
        t->port <= 0 || t->port > 65535) {
        snprintf(err, errlen, "bad host:port in '%s'", url);
        return -1;
    }
    core_copy_trunc(t->path, sizeof t->path, slash ? slash : "/");
    return bench_resolve_loopback(t->host, t->ip, sizeof t->ip, err, errlen);
}

/* ------------------------------------------------------------------ gateway */

static double left_ms(uint64_t deadline)
{
    uint64_t now = core_mono_ms();
    return now >= deadline ? 0 : (double)(deadline - now);
}

static int connect_deadline(const bench_target_t *t, uint64_t deadline)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->port)};
    if (inet_pton(AF_INET, t->ip, &sa.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS)
        goto fail;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (poll(&p, 1, (int)left_ms(deadline)) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0)
        goto fail;
    return fd;
fail:
    close(fd);
    return -1;
}

/* One read or write, plain or TLS: bytes moved, 0 at EOF, -1 failed (why
 * filled), -2 to poll for *events first. */
static ssize_t gw_io(int fd, SSL *ssl, int writing, char *buf, size_t len, short *events,
                     char *why, size_t whylen)
{
    if (!ssl) {
        ssize_t n = writing ? write(fd, buf, len) : read(fd, buf, len);
        if (n >= 0)
            return n;
        *events = writing ? POLLOUT : POLLIN;
        if (errno == EAGAIN || errno == EINTR)
            return -2;
        core_copy_trunc(why, whylen, strerror(errno));
        return -1;
    }
    int n = writing ? SSL_write(ssl, buf, (int)len) : SSL_read(ssl, buf, (int)len);
    if (n > 0)
        return n;
    switch (SSL_get_error(ssl, n)) {
    case SSL_ERROR_WANT_READ: *events = POLLIN; return -2;
    case SSL_ERROR_WANT_WRITE: *events = POLLOUT; return -2;
    case SSL_ERROR_ZERO_RETURN: return 0;
    default:
        core_tls_reason(ssl, n, why, whylen);
        return -1;
    }
}

/* Sends req and reads the whole reply (the gateway closes: Connection:
 * close); over TLS the first write makes the handshake. */
static int http_exchange(int fd, SSL *ssl, const char *req, core_buf_t *reply, uint64_t deadline,
                         char *why, size_t whylen)
{
    size_t off = 0, len = strlen(req);
    char tmp[4096];
    short events = POLLOUT;
    for (;;) {
        int writing = off < len;
        ssize_t n = writing ? gw_io(fd, ssl, 1, (char *)req + off, len - off, &events, why, whylen)
                            : gw_io(fd, ssl, 0, tmp, sizeof tmp, &events, why, whylen);
        if (n == -2) {
            struct pollfd p = {.fd = fd, .events = events};
            if (poll(&p, 1, (int)left_ms(deadline)) != 1) {
                snprintf(why, whylen, "timed out");
                return -1;
            }
            continue;
        }
        if (n < 0 || (n == 0 && writing))
            return -1;
        if (n == 0)
            return 0;
        if (writing) {
            off += (size_t)n;
            continue;
        }
        if (reply->len + (size_t)n > GW_REPLY_MAX) {
            snprintf(why, whylen, "answer over %u bytes", GW_REPLY_MAX);
            return -1;
        }
        core_buf_append(reply, tmp, (size_t)n);
    }
}

static int parse_servers(const char *body, bench_target_t *out, int max, char *err, size_t errlen)
{
    int count = 0;
    cJSON *o = cJSON_Parse(body);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "servers"), *s;
    if (!cJSON_IsArray(arr)) {
        snprintf(err, errlen, "gateway answer has no servers list");
        count = -1;
        goto out;
    }
    cJSON_ArrayForEach(s, arr) {
        const cJSON *url = cJSON_GetObjectItemCaseSensitive(s, "url");
        if (count >= max || !cJSON_IsString(url))
            continue;
        int rc = bench_target_parse(url->valuestring, "ws", &out[count], err, errlen);
        if (rc == 0 && out[count].tls && !g_tls) {
            snprintf(err, errlen, "gateway lists %s: TLS needs a client context", url->valuestring);
            rc = -1;
        }
        if (rc != 0) {
            count = rc;
            goto out;
        }
        count++;
    }
    if (count == 0)
        snprintf(err, errlen, "gateway lists no nodes");
out:
    cJSON_Delete(o);
    return count;
}

/* Sends req (a whole HTTP/1.1 request with Connection: close) to the
 * gateway and leaves the whole answer in reply. 0, or -1 with err set. */
static int gateway_request(const bench_target_t *gw, const char *req, core_buf_t *reply,
                           double timeout_s, char *err, size_t errlen)
{
    uint64_t deadline = core_mono_ms() + (uint64_t)(timeout_s * 1000);
    int rc = -1;
    SSL *ssl = NULL;
    char why[192] = "no answer";
    int fd = connect_deadline(gw, deadline);
    if (fd < 0) {
        snprintf(err, errlen, "cannot connect to gateway %s:%d", gw->host, gw->port);
        goto out;
    }
    if (gw->tls && !(ssl = core_tls_ssl_on_fd(g_tls, fd, gw->host))) {
        snprintf(err, errlen, "cannot start TLS to gateway %s:%d", gw->host, gw->port);
        goto out;
    }
    if (http_exchange(fd, ssl, req, reply, deadline, why, sizeof why) != 0 || reply->len == 0) {
        snprintf(err, errlen, "gateway %s:%d: %s%s", gw->host, gw->port, gw->tls ? "TLS: " : "",
                 why);
        goto out;
    }
    rc = 0;
out:
    SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* err = the status line of an answer we cannot use. */
static void answer_error(const core_buf_t *reply, char *err, size_t errlen)
{
    snprintf(err, errlen, "gateway answered: %.*s", (int)strcspn(reply->data, "\r\n"), reply->data);
}

int bench_gateway_nodes(const bench_target_t *gw, bench_target_t *out, int max, double timeout_s,
                        char *err, size_t errlen)
{
    core_buf_t reply, req;
    core_buf_init(&reply);
    core_buf_init(&req);
    int count = -1;
    core_buf_printf(&req, "GET /servers HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n",
                    gw->host, gw->port);
    if (gateway_request(gw, req.data, &reply, timeout_s, err, errlen) != 0)
        goto out;
    const char *body = strstr(reply.data, "\r\n\r\n");
    if (strncmp(reply.data, "HTTP/1.1 200", 12) != 0 || !body) {
        answer_error(&reply, err, errlen);
        goto out;
    }
    count = parse_servers(body + 4, out, max, err, errlen);
out:
    core_buf_free(&reply);
    core_buf_free(&req);
    return count;
}

int bench_gateway_push(const bench_target_t *gw, const char *token, const char *body,
                       double timeout_s, char *err, size_t errlen)
{
    core_buf_t reply, req;
    core_buf_init(&reply);
    core_buf_init(&req);
    int status = -1;
    core_buf_printf(&req,
                    "POST /push HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n"
                    "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\n\r\n%s",
                    gw->host, gw->port, token, strlen(body), body);
    if (gateway_request(gw, req.data, &reply, timeout_s, err, errlen) == 0 &&
        sscanf(reply.data, "HTTP/1.1 %d", &status) != 1) {
        answer_error(&reply, err, errlen);
        status = -1;
    }
    core_buf_free(&reply);
    core_buf_free(&req);
    return status;
}
