/* A lean WebSocket client: one small struct and one ev_io per connection.
 *
 * The bench holds 15k+ connections per process, so an idle connection owns
 * no buffers: reads land in one process-wide buffer and only a partial
 * frame is copied aside; writes go straight to the socket and only what the
 * kernel refuses is queued. Server frames are unmasked (RFC 6455 5.1), so
 * parsing is a header walk; our frames are masked as the RFC requires.
 * wss:// targets put OpenSSL on the same fd (SSL_read/SSL_write in place of
 * read/write, the handshake driven by the same watcher). */
#include "bench/bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core.h"

#define WS_MAX_MSG CORE_WS_MAX_MESSAGE
#define WS_MAX_IN (WS_MAX_MSG + 16)      /* one unparsed frame at most */
#define WS_MAX_OUT (1u << 20)            /* queued output cap per connection */
#define WS_MAX_HEAD 4096                 /* handshake answer cap */
#define WS_READS_PER_EVENT 4             /* fairness between connections */

enum ws_state { WS_CONNECTING, WS_TLS, WS_HANDSHAKE, WS_OPEN, WS_DEAD };
enum { WS_F_IN_CB = 1, WS_F_FREE = 2, WS_F_SIO_WAIT = 4 };

struct bench_ws {
    ev_io io;
    struct ev_loop *loop;
    const bench_ws_cbs_t *cbs;
    void *ud;
    char *in;   /* partial frame or handshake bytes; NULL when none */
    char *out;  /* bytes the kernel did not take; NULL when none */
    char *frag; /* a fragmented text message being collected */
    SSL *ssl;   /* wss only */
    uint32_t in_len, out_len, out_off, frag_len;
    uint8_t state, flags;
};

static int g_socketio; /* Engine.IO 4 / Socket.IO 5 framing, for the peer comparison */

static char g_rbuf[WS_MAX_IN + 65536];
static char g_wbuf[WS_MAX_MSG + 14];
static uint32_t g_mask_state = 0x9e3779b9u;

size_t bench_ws_struct_size(void)
{
    return sizeof(bench_ws_t);
}

static uint32_t next_mask(void)
{
    /* xorshift32: masking only has to be unpredictable to proxies, not secure */
    uint32_t x = g_mask_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return g_mask_state = x;
}

/* Not inlined: on_io frees through it only after its last use of ws (the
 * WS_F_IN_CB deferral), which GCC's -Wuse-after-free cannot follow. */
__attribute__((noinline)) static void ws_free(bench_ws_t *ws)
{
    SSL_free(ws->ssl);
    free(ws->in);
    free(ws->out);
    free(ws->frag);
    free(ws);
}

/* Ends the connection and tells the owner once. */
static void ws_end(bench_ws_t *ws, int err)
{
    if (ws->state == WS_DEAD)
        return;
    ws->state = WS_DEAD;
    ev_io_stop(ws->loop, &ws->io);
    close(ws->io.fd);
    ws->cbs->on_close(ws, err, ws->ud);
    if (ws->flags & WS_F_IN_CB)
        ws->flags |= WS_F_FREE; /* the dispatcher up the stack frees it */
    else
        ws_free(ws);
}

static void ws_want(bench_ws_t *ws, int events)
{
    if (ws->io.events == events)
        return;
    ev_io_stop(ws->loop, &ws->io);
    ev_io_set(&ws->io, ws->io.fd, events);
    ev_io_start(ws->loop, &ws->io);
}

/* read/write, or their TLS versions: -1 with errno EAGAIN while TLS waits
 * for the socket, EPROTO when it failed. */
static ssize_t tls_result(bench_ws_t *ws, int n)
{
    if (n > 0)
        return n;
    switch (SSL_get_error(ws->ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: errno = EAGAIN; return -1;
    case SSL_ERROR_ZERO_RETURN: return 0;
    default: errno = EPROTO; return -1;
    }
}

static ssize_t io_read(bench_ws_t *ws, char *buf, size_t len)
{
    if (!ws->ssl)
        return read(ws->io.fd, buf, len);
    return tls_result(ws, SSL_read(ws->ssl, buf, (int)len));
}

static ssize_t io_write(bench_ws_t *ws, const char *data, size_t len)
{
    if (!ws->ssl)
        return write(ws->io.fd, data, len);
    return tls_result(ws, SSL_write(ws->ssl, data, (int)len));
}

/* Writes what the kernel takes; queues the rest. 0, or -1 (ws ended). */
static int ws_write(bench_ws_t *ws, const char *data, size_t len)
{
    size_t off = 0;
    if (ws->out_len == 0) {
        ssize_t n = io_write(ws, data, len);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            ws_end(ws, errno);
            return -1;
        }
        off = n > 0 ? (size_t)n : 0;
        if (off == len)
            return 0;
    }
    size_t rest = len - off;
    if (ws->out_len + rest > WS_MAX_OUT) {
        ws_end(ws, ENOBUFS);
        return -1;
    }
    ws->out = core_xrealloc(ws->out, ws->out_len + rest);
    memcpy(ws->out + ws->out_len, data + off, rest);
    ws->out_len += (uint32_t)rest;
    ws_want(ws, EV_READ | EV_WRITE);
    return 0;
}

static void ws_flush(bench_ws_t *ws)
{
    ssize_t n = io_write(ws, ws->out + ws->out_off, ws->out_len - ws->out_off);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            ws_end(ws, errno);
        return;
    }
    ws->out_off += (uint32_t)n;
    if (ws->out_off < ws->out_len)
        return;
    free(ws->out);
    ws->out = NULL;
    ws->out_len = ws->out_off = 0;
    ws_want(ws, EV_READ);
}

static int send_frame(bench_ws_t *ws, int opcode, const char *msg, size_t len)
{
    if (ws->state != WS_OPEN || len > WS_MAX_MSG)
        return -1;
    unsigned char *p = (unsigned char *)g_wbuf;
    size_t h = 0;
    p[h++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        p[h++] = (unsigned char)(0x80 | len);
    } else {
        p[h++] = 0x80 | 126;
        p[h++] = (unsigned char)(len >> 8);
        p[h++] = (unsigned char)len;
    }
    uint32_t m = next_mask();
    unsigned char key[4] = {(unsigned char)m, (unsigned char)(m >> 8), (unsigned char)(m >> 16),
                            (unsigned char)(m >> 24)};
    memcpy(p + h, key, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        p[h + i] = (unsigned char)msg[i] ^ key[i & 3];
    return ws_write(ws, g_wbuf, h + len);
}

void bench_ws_set_socketio(int on)
{
    g_socketio = on;
}

/* Socket.IO: our envelope travels as the argument of event "m". */
static const char SIO_PREFIX[] = "42[\"m\",";

int bench_ws_send(bench_ws_t *ws, const char *msg, size_t len)
{
    if (!g_socketio)
        return send_frame(ws, 0x1, msg, len);
    size_t plen = sizeof SIO_PREFIX - 1;
    if (plen + len + 1 > WS_MAX_MSG)
        return -1;
    char *wrapped = core_xmalloc(plen + len + 1);
    memcpy(wrapped, SIO_PREFIX, plen);
    memcpy(wrapped + plen, msg, len);
    wrapped[plen + len] = ']';
    int rc = send_frame(ws, 0x1, wrapped, plen + len + 1);
    free(wrapped);
    return rc;
}

void bench_ws_close(bench_ws_t *ws)
{
    static const char bye[2] = {0x03, (char)0xe8}; /* 1000, best effort */
    if (ws->state == WS_OPEN && ws->out_len == 0)
        (void)send_frame(ws, 0x8, bye, sizeof bye);
    ws_end(ws, 0);
}

/* ------------------------------------------------------------------ reading */

/* Engine.IO open "0{...}" -> connect "40"; its answer "40{...}" opens the
 * session for the scenario; ping "2" -> pong "3"; "42[\"m\",X]" carries X. */
static void deliver_socketio(bench_ws_t *ws, const char *msg, size_t len)
{
    size_t plen = sizeof SIO_PREFIX - 1;
    if (len >= 2 && memcmp(msg, "40", 2) == 0 && (ws->flags & WS_F_SIO_WAIT)) {
        ws->flags &= (uint8_t)~WS_F_SIO_WAIT;
        ws->cbs->on_open(ws, ws->ud);
    } else if (len >= 1 && msg[0] == '0') {
        (void)send_frame(ws, 0x1, "40", 2);
    } else if (len == 1 && msg[0] == '2') {
        (void)send_frame(ws, 0x1, "3", 1);
    } else if (len > plen + 1 && memcmp(msg, SIO_PREFIX, plen) == 0 && msg[len - 1] == ']') {
        ws->cbs->on_text(ws, msg + plen, len - plen - 1, ws->ud);
    } else if (len >= 2 && memcmp(msg, "41", 2) == 0) {
        ws_end(ws, ECONNABORTED);
    }
}

static void deliver_text(bench_ws_t *ws, const char *msg, size_t len)
{
    if (g_socketio)
        deliver_socketio(ws, msg, len);
    else
        ws->cbs->on_text(ws, msg, len, ws->ud);
}

/* A data frame (text or continuation). 0, or -1 (ws ended). */
static int on_data(bench_ws_t *ws, int opcode, int fin, const char *pl, size_t len)
{
    if (opcode == 0x1 && fin && !ws->frag) {
        deliver_text(ws, pl, len);
        return 0;
    }
    if ((opcode == 0x1) == (ws->frag != NULL) || ws->frag_len + len > WS_MAX_MSG) {
        ws_end(ws, EPROTO);
        return -1;
    }
    ws->frag = core_xrealloc(ws->frag, ws->frag_len + len + 1);
    memcpy(ws->frag + ws->frag_len, pl, len);
    ws->frag_len += (uint32_t)len;
    if (fin) {
        char *msg = ws->frag;
        size_t mlen = ws->frag_len;
        ws->frag = NULL;
        ws->frag_len = 0;
        deliver_text(ws, msg, mlen);
        free(msg);
    }
    return 0;
}

static int on_frame(bench_ws_t *ws, int opcode, int fin, const char *pl, size_t len)
{
    switch (opcode) {
    case 0x0:
    case 0x1:
        return on_data(ws, opcode, fin, pl, len);
    case 0x9:
        return send_frame(ws, 0xA, pl, len) == 0 || ws->state != WS_DEAD ? 0 : -1;
    case 0xA:
        return 0;
    case 0x8:
        ws_end(ws, ECONNABORTED);
        return -1;
    default: /* binary or reserved: the node never sends them */
        ws_end(ws, EPROTO);
        return -1;
    }
}

/* Parses whole frames from data; returns bytes consumed or -1 (ws ended). */
static long parse_frames(bench_ws_t *ws, const char *data, size_t len)
{
    size_t off = 0;
    while (ws->state == WS_OPEN && !(ws->flags & WS_F_FREE)) {
        const unsigned char *p = (const unsigned char *)data + off;
        size_t avail = len - off, h = 2;
        if (avail < 2)
            break;
        uint64_t plen = p[1] & 0x7f;
        if (p[1] & 0x80) { /* servers never mask */
            ws_end(ws, EPROTO);
            return -1;
        }
        if (plen == 126) {
            h = 4;
            if (avail < h)
                break;
            plen = (uint64_t)p[2] << 8 | p[3];
        } else if (plen == 127) {
            h = 10;
            if (avail < h)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | p[2 + i];
        }
        if (plen > WS_MAX_MSG) {
            ws_end(ws, EMSGSIZE);
            return -1;
        }
        if (avail < h + plen)
            break;
        if (on_frame(ws, p[0] & 0x0f, p[0] & 0x80, (const char *)p + h, (size_t)plen) != 0)
            return -1;
        off += h + (size_t)plen;
    }
    return ws->state == WS_DEAD ? -1 : (long)off;
}

/* The 101 answer; returns bytes consumed, 0 for more, -1 (ws ended). */
static long parse_handshake(bench_ws_t *ws, const char *data, size_t len)
{
    const char *end = memmem(data, len, "\r\n\r\n", 4);
    if (!end) {
        if (len > WS_MAX_HEAD)
            ws_end(ws, EPROTO);
        return len > WS_MAX_HEAD ? -1 : 0;
    }
    if (len < 12 || memcmp(data, "HTTP/1.1 101", 12) != 0) {
        ws_end(ws, ECONNREFUSED);
        return -1;
    }
    ws->state = WS_OPEN;
    if (g_socketio)
        ws->flags |= WS_F_SIO_WAIT; /* open once the Socket.IO connect is answered */
    else
        ws->cbs->on_open(ws, ws->ud);
    return ws->state == WS_OPEN ? end + 4 - data : -1;
}

static long parse_input(bench_ws_t *ws, const char *data, size_t len)
{
    long used = 0;
    if (ws->state == WS_HANDSHAKE) {
        used = parse_handshake(ws, data, len);
        if (used <= 0)
            return used;
    }
    long more = parse_frames(ws, data + used, len - (size_t)used);
    return more < 0 ? -1 : used + more;
}

/* Keeps the unparsed tail of data (a partial frame) aside, sized exactly:
 * thousands of connections may each hold one under load. */
static void keep_tail(bench_ws_t *ws, const char *data, size_t len, size_t used)
{
    size_t rest = len - used;
    if (rest == 0) {
        free(ws->in);
        ws->in = NULL;
        ws->in_len = 0;
        return;
    }
    ws->in = core_xrealloc(ws->in, rest);
    memcpy(ws->in, data + used, rest);
    ws->in_len = (uint32_t)rest;
}

static void on_readable(bench_ws_t *ws)
{
    for (int i = 0; i < WS_READS_PER_EVENT && ws->state != WS_DEAD; i++) {
        size_t have = ws->in_len;
        if (have)
            memcpy(g_rbuf, ws->in, have);
        ssize_t n = io_read(ws, g_rbuf + have, sizeof g_rbuf - have);
        if (n == 0) {
            ws_end(ws, ECONNRESET);
            return;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                ws_end(ws, errno);
            return;
        }
        size_t len = have + (size_t)n;
        long used = parse_input(ws, g_rbuf, len);
        if (used < 0 || ws->state == WS_DEAD)
            return;
        if (len - (size_t)used > WS_MAX_IN) {
            ws_end(ws, EMSGSIZE);
            return;
        }
        keep_tail(ws, g_rbuf, len, (size_t)used);
        if ((size_t)n < sizeof g_rbuf - have)
            return; /* drained the socket */
    }
}

/* Queues the upgrade request; it leaves once the connect completes. */
static void queue_upgrade(bench_ws_t *ws, const bench_target_t *t)
{
    char req[BENCH_HOST_MAX + BENCH_PATH_MAX + 256];
    /* a fixed key is fine: the bench only talks to our own node */
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     t->path, t->host, t->port);
    ws->out = core_xmalloc((size_t)n);
    memcpy(ws->out, req, (size_t)n);
    ws->out_len = (uint32_t)n;
}

/* The TLS handshake; the upgrade request leaves once it is done. The first
 * failure's reason is logged (a wrong CA fails every connection alike). */
static void tls_step(bench_ws_t *ws)
{
    static int told;
    int rc = SSL_do_handshake(ws->ssl);
    if (rc == 1) {
        ws->state = WS_HANDSHAKE;
        ws_want(ws, EV_READ | EV_WRITE);
        ws_flush(ws);
        return;
    }
    int e = SSL_get_error(ws->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ws_want(ws, e == SSL_ERROR_WANT_READ ? EV_READ : EV_READ | EV_WRITE);
        return;
    }
    if (!told++) {
        char why[192];
        core_tls_reason(ws->ssl, rc, why, sizeof why);
        CORE_ERROR("bench: TLS: %s", why);
    }
    ws_end(ws, EPROTO);
}

static void on_connected(bench_ws_t *ws)
{
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(ws->io.fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
        ws_end(ws, soerr ? soerr : errno);
        return;
    }
    if (ws->ssl) {
        ws->state = WS_TLS;
        tls_step(ws);
        return;
    }
    ws->state = WS_HANDSHAKE;
    ws_want(ws, EV_READ | EV_WRITE);
    ws_flush(ws);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    bench_ws_t *ws = (bench_ws_t *)w;
    ws->flags |= WS_F_IN_CB;
    if (ws->state == WS_CONNECTING)
        on_connected(ws);
    else if (ws->state == WS_TLS)
        tls_step(ws);
    else {
        if ((revents & EV_WRITE) && ws->out_len && ws->state != WS_DEAD)
            ws_flush(ws);
        if ((revents & EV_READ) && ws->state != WS_DEAD)
            on_readable(ws);
    }
    ws->flags &= (uint8_t)~WS_F_IN_CB;
    if (ws->flags & WS_F_FREE)
        ws_free(ws);
}

static int open_socket(const bench_target_t *t, const char *src_ip)
{
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->port)};
    if (inet_pton(AF_INET, t->ip, &dst.sin_addr) != 1 || !bench_addr_is_loopback(t->ip)) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (src_ip) {
        /* let connect() pick the port per 4-tuple, not per source address */
        struct sockaddr_in src = {.sin_family = AF_INET};
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (inet_pton(AF_INET, src_ip, &src.sin_addr) != 1 ||
            bind(fd, (struct sockaddr *)&src, sizeof src) != 0)
            goto fail;
    }
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS)
        goto fail;
    return fd;
fail:;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

bench_ws_t *bench_ws_connect(struct ev_loop *loop, const bench_target_t *t, const char *src_ip,
                             const bench_ws_cbs_t *cbs, void *ud)
{
    int fd = open_socket(t, src_ip);
    if (fd < 0)
        return NULL;
    bench_ws_t *ws = core_xcalloc(1, sizeof *ws);
    if (t->tls && !(ws->ssl = core_tls_ssl_on_fd(bench_tls(), fd, t->host))) {
        close(fd);
        free(ws);
        errno = EPROTO;
        return NULL;
    }
    ws->loop = loop;
    ws->cbs = cbs;
    ws->ud = ud;
    ev_io_init(&ws->io, on_io, fd, EV_WRITE);
    queue_upgrade(ws, t);
    ev_io_start(loop, &ws->io);
    ws->state = WS_CONNECTING;
    return ws;
}
