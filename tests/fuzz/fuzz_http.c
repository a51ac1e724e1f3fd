/* Fuzz target: bytes from a client through the real HTTP/1.1 server
 * (core/http.c over http-parser), on a socketpair instead of TCP.
 *
 * Input: byte 0 picks a second delivery (0 = none, else chunks of that many
 * bytes, each fully read by the server before the next is sent) which must
 * serve exactly the requests the stream sent whole did; the rest is what
 * the client sends. Requests for "/later" are answered only after
 * all input was sent, which drives the pipelining backlog and answers to
 * clients that already left. Invariants abort() so a replay run fails. */
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

#define MAX_LATER 64
#define PUMP_LIMIT 10000

static struct ev_loop *loop;
static core_http_server_t *srv;
static core_http_req_t *later[MAX_LATER];
static size_t nlater;
static core_buf_t trace; /* the requests the application saw */

static void check_request(const core_http_req_t *r)
{
    size_t blen = 99;
    const char *body = core_http_req_body(r, &blen);

    CHECK(core_http_req_method(r)[0] != '\0');
    CHECK(core_http_req_path(r) != NULL);
    CHECK(core_http_req_query(r) != NULL);
    CHECK(body != NULL && blen <= 1024);
    (void)core_http_req_header(r, "Host");
    (void)core_http_req_header(r, "");
    (void)core_http_req_peer(r);
}

static void on_request(core_http_req_t *r, void *ud)
{
    size_t blen;
    const char *body = core_http_req_body(r, &blen);

    (void)ud;
    check_request(r);
    core_buf_printf(&trace, "%s %s ?%s %zu:", core_http_req_method(r), core_http_req_path(r),
                    core_http_req_query(r), blen);
    core_buf_append(&trace, body, blen);
    if (strcmp(core_http_req_path(r), "/later") == 0 && nlater < MAX_LATER) {
        later[nlater++] = r;
        return;
    }
    core_http_respond(r, 200, "text/plain", body, blen);
}

static void on_ws_text(core_ws_t *ws, const char *msg, size_t len, void *ud)
{
    (void)ud;
    CHECK(len <= CORE_WS_MAX_MESSAGE && core_utf8_valid(msg, len));
    core_ws_send_text(ws, msg, len);
}

static void setup(void)
{
    static const core_http_server_cbs_t cbs = {
        .on_request = on_request, .ws_path = "/ws", .on_ws_text = on_ws_text};
    core_http_server_opts_t opts = {.max_body = 1024, .max_out = 1 << 20};
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

static void answer_later(void)
{
    for (size_t i = 0; i < nlater; i++)
        core_http_respond(later[i], 202, NULL, "later", 5);
    nlater = 0;
}

/* One connection fed data in chunks; trace records what was served. */
static void run_session(const uint8_t *data, size_t size, size_t chunk)
{
    int sv[2];

    core_buf_reset(&trace);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    core__http_accept(loop, sv[0], "fuzz:1", srv);
    CHECK(core_http_server_conns(srv) == 1);
    for (size_t off = 0; off < size; off += chunk)
        send_all(sv[0], sv[1], data + off, size - off < chunk ? size - off : chunk);
    answer_later();
    shutdown(sv[1], SHUT_WR);
    for (int i = 0; i < PUMP_LIMIT && core_http_server_conns(srv) > 0; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        drain_client(sv[1]);
        answer_later();
    }
    close(sv[1]);
    CHECK(core_http_server_conns(srv) == 0);
    CHECK(nlater == 0);
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
    /* However the stream is cut, the same requests are served. */
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
