/* Fuzz target: bytes from a client through the server side of a WebSocket
 * (core/ws.c over wslay) right after a valid handshake, on a socketpair
 * through the real HTTP server instead of TCP.
 *
 * Input: byte 0 picks a second delivery (0 = none, else chunks of that many
 * bytes, each fully read by the server before the next is sent) which must
 * give the application exactly what the stream sent whole gave it; the rest
 * is the client's frame stream (the fuzzer has to mask them itself). Text
 * messages are echoed; "close" makes the server close, the first "big"
 * makes it send a 60000-byte message. Invariants abort() so a replay run fails. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/http_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                      \
    do {                                                                              \
        if (!(c)) {                                                                   \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

#define PUMP_LIMIT 10000

static const char handshake[] = "GET /ws HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\n"
                                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                "Sec-WebSocket-Version: 13\r\n\r\n";

static struct ev_loop *loop;
static core_http_server_t *srv;
static int opened, closed, sent_big;
static core_buf_t trace; /* what the application saw: messages, close code */

static void on_request(core_http_req_t *r, void *ud)
{
    (void)ud;
    core_http_respond(r, 404, NULL, NULL, 0);
}

static void on_ws_open(core_ws_t *ws, void *ud)
{
    (void)ud;
    core_ws_set_ud(ws, &opened);
    opened++;
}

static void on_ws_text(core_ws_t *ws, const char *msg, size_t len, void *ud)
{
    static char big[60000];

    (void)ud;
    CHECK(core_ws_ud(ws) == &opened);
    CHECK(len <= CORE_WS_MAX_MESSAGE && core_utf8_valid(msg, len));
    core_buf_printf(&trace, "T%zu:", len);
    core_buf_append(&trace, msg, len);
    if (len == 5 && memcmp(msg, "close", 5) == 0) {
        core_ws_close(ws, CORE_WS_NORMAL, "bye");
        CHECK(core_ws_send_text(ws, "x", 1) < 0);
        return;
    }
    /* Once per session, so the output cap is never reached by a client
     * that reads everything (whole and split runs must agree). */
    if (len == 3 && memcmp(msg, "big", 3) == 0 && !sent_big++) {
        memset(big, 'b', sizeof(big));
        core_ws_send_text(ws, big, sizeof(big));
        return;
    }
    core_ws_send_text(ws, msg, len);
}

static void on_ws_close(core_ws_t *ws, int code, void *ud)
{
    (void)ud;
    CHECK(core_ws_ud(ws) == &opened);
    CHECK(code >= 1000 && code < 5000);
    core_buf_printf(&trace, "C%d", code);
    closed++;
}

static void setup(void)
{
    static const core_http_server_cbs_t cbs = {.on_request = on_request,
                                               .ws_path = "/ws",
                                               .on_ws_open = on_ws_open,
                                               .on_ws_text = on_ws_text,
                                               .on_ws_close = on_ws_close};
    core_http_server_opts_t opts = {.max_out = 256 * 1024};
    char err[128];

    core_log_set_level(CORE_LOG_ERROR);
    loop = ev_loop_new(EVFLAG_AUTO);
    CHECK(loop);
    srv = core_http_server_new(loop, "127.0.0.1", 0, &opts, &cbs, NULL, err, sizeof(err));
    CHECK(srv);
}

/* Reads and drops whatever the server sent. */
static void drain_client(int fd)
{
    char buf[4096];

    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

static size_t unread_by_server(int fd)
{
    int n = 0;

    if (ioctl(fd, FIONREAD, &n) < 0)
        return 0; /* the server closed its end */
    return (size_t)n;
}

/* Runs the loop until the server read everything sent (or closed). */
static void pump_until_read(int sfd, int cfd)
{
    for (int i = 0; i < PUMP_LIMIT && core_http_server_conns(srv) > 0; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        drain_client(cfd);
        if (unread_by_server(sfd) == 0)
            break;
    }
}

static void send_all(int sfd, int cfd, const uint8_t *p, size_t len)
{
    while (len > 0 && core_http_server_conns(srv) > 0) {
        ssize_t n = send(cfd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN)
            return; /* the server hung up */
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        }
        pump_until_read(sfd, cfd);
    }
}

/* One connection: handshake, then data in chunks; trace records it. */
static void run_session(const uint8_t *data, size_t size, size_t chunk)
{
    int sv[2];

    core_buf_reset(&trace);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    core__http_accept(loop, sv[0], "fuzz:1", srv);
    CHECK(core_http_server_conns(srv) == 1);
    opened = closed = sent_big = 0;
    send_all(sv[0], sv[1], (const uint8_t *)handshake, sizeof(handshake) - 1);
    CHECK(opened == 1);
    for (size_t off = 0; off < size; off += chunk)
        send_all(sv[0], sv[1], data + off, size - off < chunk ? size - off : chunk);
    shutdown(sv[1], SHUT_WR);
    for (int i = 0; i < PUMP_LIMIT && core_http_server_conns(srv) > 0; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        drain_client(sv[1]);
    }
    close(sv[1]);
    CHECK(core_http_server_conns(srv) == 0);
    CHECK(closed == 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    core_buf_t whole;

    if (!srv)
        setup();
    if (size == 0)
        return 0;
    run_session(data + 1, size - 1, size);
    if (data[0] == 0)
        return 0;
    /* However the stream is cut, the application sees the same thing. */
    whole = trace;
    core_buf_init(&trace);
    run_session(data + 1, size - 1, data[0]);
    if (whole.len != trace.len || (whole.len && memcmp(whole.data, trace.data, whole.len)))
        fprintf(stderr, "whole: %.300s\nsplit: %.300s\n", whole.data ? whole.data : "",
                trace.data ? trace.data : "");
    CHECK(whole.len == trace.len);
    CHECK(whole.len == 0 || memcmp(whole.data, trace.data, whole.len) == 0);
    core_buf_free(&whole);
    return 0;
}
