#include "fuzz_util.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/http_int.h"

void fuzz_http_setup(fuzz_http_t *f, const core_http_server_opts_t *opts,
                     const core_http_server_cbs_t *cbs)
{
    char err[128];

    core_log_set_level(CORE_LOG_ERROR);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    CHECK(f->loop);
    f->srv = core_http_server_new(f->loop, "127.0.0.1", 0, opts, cbs, NULL, err, sizeof(err));
    CHECK(f->srv);
    f->sv[0] = f->sv[1] = -1;
}

void fuzz_http_open(fuzz_http_t *f)
{
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, f->sv) == 0);
    core__http_accept(f->loop, f->sv[0], "fuzz:1", f->srv);
    CHECK(core_http_server_conns(f->srv) == 1);
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
static void pump_until_read(fuzz_http_t *f)
{
    for (int i = 0; i < FUZZ_PUMP_LIMIT && core_http_server_conns(f->srv) > 0; i++) {
        ev_run(f->loop, EVRUN_NOWAIT);
        drain_client(f->sv[1]);
        if (unread_by_server(f->sv[0]) == 0)
            break;
    }
}

static void send_all(fuzz_http_t *f, const uint8_t *p, size_t len)
{
    while (len > 0 && core_http_server_conns(f->srv) > 0) {
        ssize_t n = send(f->sv[1], p, len, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN)
            return; /* the server hung up */
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        }
        pump_until_read(f);
    }
}

void fuzz_http_send(fuzz_http_t *f, const uint8_t *p, size_t len, size_t chunk)
{
    for (size_t off = 0; off < len; off += chunk)
        send_all(f, p + off, len - off < chunk ? len - off : chunk);
}

void fuzz_http_finish(fuzz_http_t *f, void (*each_turn)(void))
{
    shutdown(f->sv[1], SHUT_WR);
    for (int i = 0; i < FUZZ_PUMP_LIMIT && core_http_server_conns(f->srv) > 0; i++) {
        ev_run(f->loop, EVRUN_NOWAIT);
        drain_client(f->sv[1]);
        if (each_turn)
            each_turn();
    }
    close(f->sv[1]);
    f->sv[0] = f->sv[1] = -1;
    CHECK(core_http_server_conns(f->srv) == 0);
}

void fuzz_whole_and_split(const uint8_t *data, size_t size, fuzz_session_fn run,
                          core_buf_t *trace)
{
    core_buf_t whole;

    if (size == 0)
        return;
    run(data + 1, size - 1, size);
    if (data[0] == 0)
        return;
    whole = *trace;
    core_buf_init(trace);
    run(data + 1, size - 1, data[0]);
    if (whole.len != trace->len || (whole.len && memcmp(whole.data, trace->data, whole.len)))
        fprintf(stderr, "whole: %.300s\nsplit: %.300s\n", whole.data ? whole.data : "",
                trace->data ? trace->data : "");
    CHECK(whole.len == trace->len);
    CHECK(whole.len == 0 || memcmp(whole.data, trace->data, whole.len) == 0);
    core_buf_free(&whole);
}
