/* Tests for core_conn_* and core_listener_* over real sockets on 127.0.0.1. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core.h"
#include "test_util.h"


/* One side of a test connection. */
typedef struct side {
    core_conn_t *conn;
    core_buf_t got;
    int closes;
    int connected;
    int connect_err;
    int reads;
    int partial_reads;  /* on_read calls that left bytes unconsumed */
    int line_mode;      /* consume complete lines only */
    int consume_none;   /* never consume (max_in test) */
    int echo;
    int close_on;       /* on "quit\n": write "bye" and close */
    core_conn_t *abort_other; /* abort this conn from on_read */
    struct env *env;
} side_t;

typedef struct env {
    struct ev_loop *loop;
    core_listener_t *listener;
    core_conn_limits_t server_limits;
    side_t server[2];
    int accepted;
    side_t client;
} env_t;

static long on_read(core_conn_t *c, const char *data, size_t len, void *ud)
{
    side_t *s = ud;
    size_t used = len;

    (void)c;
    s->reads++;
    if (s->abort_other) {
        core_conn_abort(s->abort_other);
        s->abort_other = NULL;
    }
    if (s->consume_none)
        return 0;
    if (s->line_mode) {
        const char *nl = memrchr(data, '\n', len);
        used = nl ? (size_t)(nl - data) + 1 : 0;
        if (used < len)
            s->partial_reads++;
    }
    core_buf_append(&s->got, data, used);
    if (s->echo)
        assert_int_equal(core_conn_write(s->conn, data, used), 0);
    if (s->close_on && used >= 5 && memcmp(data + used - 5, "quit\n", 5) == 0) {
        assert_int_equal(core_conn_write(s->conn, "bye", 3), 0);
        core_conn_close(s->conn);
        /* The input stays readable until on_read returns. */
        assert_int_equal(data[used - 1], '\n');
    }
    return (long)used;
}

static void on_connect(core_conn_t *c, int err, void *ud)
{
    side_t *s = ud;

    (void)c;
    s->connected++;
    s->connect_err = err;
}

static void on_close(core_conn_t *c, void *ud)
{
    side_t *s = ud;

    (void)c;
    s->closes++;
}

static const core_conn_cbs_t cbs = {on_read, on_connect, on_close};

static void on_accept(struct ev_loop *loop, int fd, const char *peer, void *ud)
{
    env_t *e = ud;
    side_t *s;

    assert_non_null(peer);
    assert_true(strncmp(peer, "127.0.0.1:", 10) == 0 || strncmp(peer, "[::1]:", 6) == 0);
    assert_true(e->accepted < 2);
    /* what core_conn_adopt takes as given, from the listener: */
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    int nodelay = 0;
    socklen_t optlen = sizeof nodelay;
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &optlen), 0);
    assert_true(nodelay);
    s = &e->server[e->accepted++];
    s->conn = core_conn_adopt(loop, fd, peer, &e->server_limits, &cbs, s);
    assert_non_null(s->conn);
}

/* Runs the loop until *flag >= want, failing the test after the deadline. */
static void run_until(env_t *e, const int *flag, int want)
{
    tu_wait_flag(e->loop, flag, want);
}

static void run_until_len(env_t *e, const core_buf_t *b, size_t want)
{
    tu_wait_len(e->loop, b, want);
}

static env_t *env_new(size_t max_in, size_t max_out)
{
    env_t *e = calloc(1, sizeof(*e));
    char err[128];

    assert_non_null(e);
    e->loop = ev_loop_new(EVFLAG_AUTO);
    e->server_limits.max_in = max_in;
    e->server_limits.max_out = max_out;
    for (int i = 0; i < 2; i++) {
        core_buf_init(&e->server[i].got);
        e->server[i].env = e;
    }
    core_buf_init(&e->client.got);
    e->client.env = e;
    e->listener = core_listener_new(e->loop, "127.0.0.1", 0, on_accept, e, err, sizeof(err));
    assert_non_null(e->listener);
    assert_true(core_listener_port(e->listener) > 0);
    return e;
}

static void env_connect_client(env_t *e)
{
    e->client.conn = core_conn_connect(e->loop, "127.0.0.1", core_listener_port(e->listener), NULL,
                                       &cbs, &e->client);
    assert_non_null(e->client.conn);
    run_until(e, &e->client.connected, 1);
    assert_int_equal(e->client.connect_err, 0);
    run_until(e, &e->accepted, 1);
}

/* A plain blocking socket as the peer, to control reads exactly. */
static int raw_connect(env_t *e, int rcvbuf)
{
    int fd = tu_tcp_connect(core_listener_port(e->listener), rcvbuf);

    assert_true(fd >= 0);
    run_until(e, &e->accepted, 1);
    return fd;
}

/* Reads from a raw fd until EOF/error or the deadline; returns bytes read. */
static size_t raw_read_all(env_t *e, int fd, core_buf_t *into)
{
    uint64_t end = core_mono_ms() + TU_DEADLINE_MS;
    size_t total = 0;

    fcntl(fd, F_SETFL, O_NONBLOCK);
    while (core_mono_ms() < end) {
        char buf[8192];
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            core_buf_append(into, buf, (size_t)n);
            total += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            break;
        ev_run(e->loop, EVRUN_NOWAIT);
        poll(NULL, 0, 1);
    }
    return total;
}

static void env_free(env_t *e)
{
    /* Every conn must have ended; the loop must then be idle. */
    core_listener_free(e->listener);
    ev_run(e->loop, 0);
    for (int i = 0; i < 2; i++)
        core_buf_free(&e->server[i].got);
    core_buf_free(&e->client.got);
    ev_loop_destroy(e->loop);
    free(e);
}

static void close_client_and_wait(env_t *e)
{
    core_conn_close(e->client.conn);
    run_until(e, &e->client.closes, 1);
    run_until(e, &e->server[0].closes, 1);
}

static void test_echo(void **state)
{
    env_t *e = env_new(0, 0);
    const char *msg = "hello, world\n";

    (void)state;
    e->server[0].echo = 1;
    env_connect_client(e);
    assert_string_equal(core_conn_peer(e->client.conn) + 0, core_conn_peer(e->client.conn));
    for (size_t i = 0; i < strlen(msg); i++)
        assert_int_equal(core_conn_write(e->client.conn, msg + i, 1), 0);
    run_until_len(e, &e->client.got, strlen(msg));
    assert_int_equal(e->client.got.len, strlen(msg));
    assert_memory_equal(e->client.got.data, msg, strlen(msg));
    close_client_and_wait(e);
    assert_int_equal(e->client.closes, 1);
    assert_int_equal(e->server[0].closes, 1);
    env_free(e);
}

static void test_ud_and_peer(void **state)
{
    env_t *e = env_new(0, 0);
    int marker = 0;

    (void)state;
    env_connect_client(e);
    assert_ptr_equal(core_conn_ud(e->client.conn), &e->client);
    core_conn_set_ud(e->client.conn, &marker);
    assert_ptr_equal(core_conn_ud(e->client.conn), &marker);
    core_conn_set_ud(e->client.conn, &e->client);
    assert_true(strncmp(core_conn_peer(e->client.conn), "127.0.0.1:", 10) == 0);
    close_client_and_wait(e);
    env_free(e);
}

/* Input split at every byte boundary reaches a line parser intact. */
static void test_split_input(void **state)
{
    env_t *e = env_new(0, 0);
    const char *text = "alpha\nbravo charlie\ndelta\n";
    int fd;

    (void)state;
    e->server[0].line_mode = 1;
    fd = raw_connect(e, 0);
    for (size_t i = 0; i < strlen(text); i++) {
        int before = e->server[0].reads;
        assert_int_equal(write(fd, text + i, 1), 1);
        run_until(e, &e->server[0].reads, before + 1);
    }
    assert_int_equal(e->server[0].got.len, strlen(text));
    assert_memory_equal(e->server[0].got.data, text, strlen(text));
    assert_true(e->server[0].partial_reads > 0);
    close(fd);
    run_until(e, &e->server[0].closes, 1);
    env_free(e);
}

static void test_max_in_overflow_closes(void **state)
{
    env_t *e = env_new(1024, 0);
    char data[4096];
    core_buf_t rest;
    int fd;

    (void)state;
    core_buf_init(&rest);
    memset(data, 'x', sizeof(data));
    e->server[0].consume_none = 1;
    fd = raw_connect(e, 0);
    assert_int_equal(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
    run_until(e, &e->server[0].closes, 1);
    assert_int_equal(e->server[0].closes, 1);
    raw_read_all(e, fd, &rest); /* the server side is gone: EOF or RST */
    assert_int_equal(rest.len, 0);
    close(fd);
    core_buf_free(&rest);
    env_free(e);
}

static void test_max_out_single_write_fails(void **state)
{
    env_t *e = env_new(0, 1000);
    char data[1001];
    int fd;

    (void)state;
    memset(data, 'y', sizeof(data));
    fd = raw_connect(e, 0);
    assert_int_equal(core_conn_write(e->server[0].conn, data, 1000), 0);
    assert_int_equal(core_conn_out_pending(e->server[0].conn), 1000);
    assert_int_equal(core_conn_write(e->server[0].conn, data, 1), -1);
    /* Closing now: later writes fail too, on_close comes once. */
    assert_int_equal(core_conn_write(e->server[0].conn, data, 1), -1);
    run_until(e, &e->server[0].closes, 1);
    assert_int_equal(e->server[0].closes, 1);
    close(fd);
    env_free(e);
}

/* A peer that never reads: writes start failing once max_out is queued. */
static void test_slow_reader_hits_max_out(void **state)
{
    env_t *e = env_new(0, 256 * 1024);
    static char chunk[16384];
    size_t sent = 0;
    int fd, rc = 0;

    (void)state;
    memset(chunk, 'z', sizeof(chunk));
    fd = raw_connect(e, 4096);
    while (sent < 512u * 1024 * 1024) {
        rc = core_conn_write(e->server[0].conn, chunk, sizeof(chunk));
        if (rc < 0)
            break;
        sent += sizeof(chunk);
        ev_run(e->loop, EVRUN_NOWAIT);
    }
    assert_int_equal(rc, -1);
    run_until(e, &e->server[0].closes, 1);
    assert_int_equal(e->server[0].closes, 1);
    close(fd);
    env_free(e);
}

/* Close from inside on_read: queued output is flushed, then EOF. */
static void test_close_inside_on_read(void **state)
{
    env_t *e = env_new(0, 0);
    core_buf_t got;
    int fd;

    (void)state;
    core_buf_init(&got);
    e->server[0].close_on = 1;
    fd = raw_connect(e, 0);
    assert_int_equal(write(fd, "hi\nquit\n", 8), 8);
    raw_read_all(e, fd, &got);
    assert_int_equal(got.len, 3);
    assert_memory_equal(got.data, "bye", 3);
    close(fd);
    run_until(e, &e->server[0].closes, 1);
    /* Give any stray second on_close a chance to show up. */
    ev_run(e->loop, EVRUN_NOWAIT);
    assert_int_equal(e->server[0].closes, 1);
    core_buf_free(&got);
    env_free(e);
}

/* on_read of one conn aborts another conn. */
static void test_abort_other_from_on_read(void **state)
{
    env_t *e = env_new(0, 0);
    int fd1, fd2;

    (void)state;
    fd1 = raw_connect(e, 0);
    fd2 = socket(AF_INET, SOCK_STREAM, 0);
    {
        struct sockaddr_in sa = {.sin_family = AF_INET};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sa.sin_port = htons((uint16_t)core_listener_port(e->listener));
        assert_int_equal(connect(fd2, (struct sockaddr *)&sa, sizeof(sa)), 0);
    }
    run_until(e, &e->accepted, 2);
    e->server[0].abort_other = e->server[1].conn;
    e->server[0].line_mode = 1;
    /* Both usually get input in the same iteration: an aborted conn's pending event is dropped. */
    assert_int_equal(write(fd2, "two\n", 4), 4);
    assert_int_equal(write(fd1, "one\n", 4), 4);
    run_until(e, &e->server[1].closes, 1);
    run_until_len(e, &e->server[0].got, 4);
    assert_int_equal(e->server[1].closes, 1);
    assert_int_equal(e->server[0].closes, 0);
    close(fd1);
    close(fd2);
    run_until(e, &e->server[0].closes, 1);
    assert_int_equal(e->server[1].closes, 1);
    env_free(e);
}

/* Many writes in one callback are queued (no syscall yet) and arrive intact. */
static void test_coalesced_writes(void **state)
{
    env_t *e = env_new(0, 0);
    core_buf_t expect, got;
    int fd;

    (void)state;
    core_buf_init(&expect);
    core_buf_init(&got);
    fd = raw_connect(e, 0);
    for (int i = 0; i < 5000; i++) {
        size_t before = expect.len;
        core_buf_printf(&expect, "message %05d\n", i);
        assert_int_equal(core_conn_write(e->server[0].conn, expect.data + before, expect.len - before), 0);
    }
    assert_int_equal(core_conn_out_pending(e->server[0].conn), expect.len);
    core_conn_close(e->server[0].conn);
    assert_int_equal(core_conn_write(e->server[0].conn, "x", 1), -1);
    raw_read_all(e, fd, &got);
    assert_int_equal(got.len, expect.len);
    assert_memory_equal(got.data, expect.data, expect.len);
    close(fd);
    run_until(e, &e->server[0].closes, 1);
    assert_int_equal(e->server[0].closes, 1);
    core_buf_free(&expect);
    core_buf_free(&got);
    env_free(e);
}

/* 20 KB written and sent: the emptied output buffer is released by
 * default (over 4 KiB) and kept by a kind whose keep_buf holds it. */
static size_t buffer_after_flush(size_t keep_buf)
{
    env_t *e = env_new(0, 0);
    e->server_limits.keep_buf = keep_buf;
    int fd = raw_connect(e, 0);
    static char chunk[20000];
    memset(chunk, 'k', sizeof chunk);
    assert_int_equal(core_conn_write(e->server[0].conn, chunk, sizeof chunk), 0);
    uint64_t end = core_mono_ms() + TU_DEADLINE_MS;
    while (core_conn_out_pending(e->server[0].conn) > 0 && core_mono_ms() < end)
        ev_run(e->loop, EVRUN_NOWAIT);
    assert_int_equal(core_conn_out_pending(e->server[0].conn), 0);
    size_t bytes = core_conn_buffer_bytes(e->server[0].conn);
    core_conn_close(e->server[0].conn);
    close(fd);
    run_until(e, &e->server[0].closes, 1);
    env_free(e);
    return bytes;
}

static void test_keep_buf(void **state)
{
    (void)state;
    assert_true(buffer_after_flush(0) <= 4096);
    assert_true(buffer_after_flush(64 << 10) >= 20000);
}

/* close() flushes a large queue through many partial writes. */
static void test_close_flushes_large_output(void **state)
{
    env_t *e = env_new(0, 8 * 1024 * 1024);
    size_t total = 3 * 1024 * 1024;
    char *data = malloc(total);
    core_buf_t got;
    int fd;

    (void)state;
    core_buf_init(&got);
    for (size_t i = 0; i < total; i++)
        data[i] = (char)('a' + i % 26);
    fd = raw_connect(e, 0);
    assert_int_equal(core_conn_write(e->server[0].conn, data, total), 0);
    core_conn_close(e->server[0].conn);
    raw_read_all(e, fd, &got);
    assert_int_equal(got.len, total);
    assert_memory_equal(got.data, data, total);
    close(fd);
    run_until(e, &e->server[0].closes, 1);
    free(data);
    core_buf_free(&got);
    env_free(e);
}

/* Two loops alive at once keep separate state: each flushes its own conns. */
static void test_two_loops_at_once(void **state)
{
    env_t *a = env_new(0, 0), *b = env_new(0, 0);

    (void)state;
    a->server[0].echo = 1;
    b->server[0].echo = 1;
    env_connect_client(a);
    env_connect_client(b);
    assert_int_equal(core_conn_write(a->client.conn, "from-a", 6), 0);
    assert_int_equal(core_conn_write(b->client.conn, "from-b", 6), 0);
    run_until_len(b, &b->client.got, 6);
    run_until_len(a, &a->client.got, 6);
    assert_memory_equal(a->client.got.data, "from-a", 6);
    assert_memory_equal(b->client.got.data, "from-b", 6);
    close_client_and_wait(a);
    env_free(a);
    /* b still works after a's loop state is gone. */
    assert_int_equal(core_conn_write(b->client.conn, "again", 5), 0);
    run_until_len(b, &b->client.got, 11);
    assert_memory_equal(b->client.got.data, "from-bagain", 11);
    close_client_and_wait(b);
    env_free(b);
}

/* close() against a peer that never reads gives up after a short timeout. */
static void test_close_times_out_on_stuck_peer(void **state)
{
    env_t *e = env_new(0, 0);
    size_t total = 2 * 1024 * 1024;
    char *data = calloc(1, total);
    uint64_t start;
    int fd;

    (void)state;
    fd = raw_connect(e, 4096);
    assert_int_equal(core_conn_write(e->server[0].conn, data, total), 0);
    core_conn_close(e->server[0].conn);
    start = core_mono_ms();
    run_until(e, &e->server[0].closes, 1);
    assert_true(core_mono_ms() - start < 5000);
    close(fd);
    free(data);
    env_free(e);
}

static void test_connect_refused(void **state)
{
    env_t *e = env_new(0, 0);
    int port = core_listener_port(e->listener);
    side_t *s = &e->client;

    (void)state;
    core_listener_free(e->listener);
    e->listener = NULL;
    s->conn = core_conn_connect(e->loop, "localhost", port, NULL, &cbs, s);
    assert_non_null(s->conn);
    run_until(e, &s->closes, 1);
    assert_int_equal(s->connected, 1);
    assert_int_equal(s->connect_err, ECONNREFUSED);
    assert_int_equal(s->closes, 1);
    env_free(e);
}

static void test_connect_bad_host(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    side_t s = {0};

    (void)state;
    assert_null(core_conn_connect(loop, "not-an-ip.example", 80, NULL, &cbs, &s));
    assert_null(core_conn_connect(loop, "127.0.0.1", 70000, NULL, &cbs, &s));
    ev_loop_destroy(loop);
}

/* A chosen source address is the one the peer sees; a bad one fails at once. */
static void test_connect_from(void **state)
{
    env_t *e = env_new(0, 0);
    int port = core_listener_port(e->listener);
    side_t *s = &e->client, bad = {0};

    (void)state;
    core_listener_free(e->listener); /* a plain socket: accept() shows the peer */
    e->listener = NULL;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(lfd, 4), 0);
    s->conn = core_conn_connect_from(e->loop, "127.0.0.3", "127.0.0.1", port, NULL, &cbs, s);
    assert_non_null(s->conn);
    run_until(e, &s->connected, 1);
    assert_int_equal(s->connect_err, 0);
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    int fd = accept(lfd, (struct sockaddr *)&peer, &len);
    assert_true(fd >= 0);
    assert_int_equal(ntohl(peer.sin_addr.s_addr), 0x7f000003);
    close(fd);
    close(lfd);
    assert_null(core_conn_connect_from(e->loop, "nope", "127.0.0.1", port, NULL, &cbs, &bad));
    assert_null(core_conn_connect_from(e->loop, "::1", "127.0.0.1", port, NULL, &cbs, &bad));
    env_free(e);
}

static void test_connect_ipv6_and_write_before_connect(void **state)
{
    env_t *e = calloc(1, sizeof(*e));
    char err[128];

    (void)state;
    e->loop = ev_loop_new(EVFLAG_AUTO);
    core_buf_init(&e->server[0].got);
    core_buf_init(&e->server[1].got);
    core_buf_init(&e->client.got);
    e->listener = core_listener_new(e->loop, "::1", 0, on_accept, e, err, sizeof(err));
    if (!e->listener) { /* no IPv6 loopback here */
        ev_loop_destroy(e->loop);
        free(e);
        skip();
        return;
    }
    e->server[0].echo = 1;
    e->client.conn = core_conn_connect(e->loop, "[::1]", core_listener_port(e->listener), NULL,
                                       &cbs, &e->client);
    assert_non_null(e->client.conn);
    assert_int_equal(core_conn_write(e->client.conn, "early", 5), 0);
    run_until_len(e, &e->client.got, 5);
    assert_memory_equal(e->client.got.data, "early", 5);
    close_client_and_wait(e);
    env_free(e);
}

static void count_iteration(struct ev_loop *loop, ev_check *w, int revents)
{
    (void)loop;
    (void)revents;
    (*(int *)w->data)++;
}

/* Out of descriptors: the listener pauses instead of spinning, then resumes. */
static void test_listener_emfile_pauses(void **state)
{
    env_t *e = env_new(0, 0);
    struct rlimit saved, low;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int fd, lowest, iterations = 0;
    uint64_t until;
    ev_check check;
    ev_timer tick;

    (void)state;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)core_listener_port(e->listener));
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    lowest = dup(0);
    assert_true(lowest >= 0);
    close(lowest);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    low = saved;
    low.rlim_cur = (rlim_t)lowest;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);

    ev_check_init(&check, count_iteration);
    check.data = &iterations;
    ev_check_start(e->loop, &check);
    ev_timer_init(&tick, tu_noop_timer, 0.01, 0.01);
    ev_timer_start(e->loop, &tick);
    until = core_mono_ms() + 300;
    while (core_mono_ms() < until)
        ev_run(e->loop, EVRUN_ONCE);
    ev_timer_stop(e->loop, &tick);
    ev_check_stop(e->loop, &check);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    assert_int_equal(e->accepted, 0);
    /* ~30 ticks plus a few pauses; a spinning listener makes thousands. */
    assert_true(iterations < 200);
    run_until(e, &e->accepted, 1);
    close(fd);
    run_until(e, &e->server[0].closes, 1);
    env_free(e);
}

static void test_listener_bad_address(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char err[128] = "";

    (void)state;
    assert_null(core_listener_new(loop, "bogus", 0, on_accept, NULL, err, sizeof(err)));
    assert_true(err[0] != '\0');
    ev_loop_destroy(loop);
}

/* A storm's connections queue until accepted: a listener that is not
 * accepting still completes the handshakes of 1,500 (they were stuck in
 * SYN_SENT past 512 with a backlog of 511). */
#define BACKLOG_CONNS 1500
static void test_listener_backlog(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char err[128] = "";
    static struct pollfd pfd[BACKLOG_CONNS];
    FILE *f = fopen("/proc/sys/net/core/somaxconn", "r");
    int somaxconn = 0;

    (void)state;
    if (!f || fscanf(f, "%d", &somaxconn) != 1)
        somaxconn = 0;
    if (f)
        fclose(f);
    if (somaxconn < BACKLOG_CONNS) {
        print_message("net.core.somaxconn is %d: the kernel caps the backlog below the test\n",
                      somaxconn);
        ev_loop_destroy(loop);
        skip();
    }
    core_listener_t *l = core_listener_new(loop, "127.0.0.1", 0, on_accept, NULL, err, sizeof(err));
    assert_non_null(l);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)core_listener_port(l)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < BACKLOG_CONNS; i++) {
        pfd[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        assert_true(pfd[i].fd >= 0);
        int rc = connect(pfd[i].fd, (struct sockaddr *)&sa, sizeof sa);
        assert_true(rc == 0 || errno == EINPROGRESS);
        pfd[i].events = POLLOUT;
    }
    /* Well under the 1 s of a dropped SYN's first retry. */
    int connected = 0;
    uint64_t deadline = core_mono_ms() + 500;
    while (connected < BACKLOG_CONNS && core_mono_ms() < deadline) {
        connected = 0;
        assert_true(poll(pfd, BACKLOG_CONNS, 50) >= 0);
        for (int i = 0; i < BACKLOG_CONNS; i++)
            connected += (pfd[i].revents & POLLOUT) != 0;
    }
    for (int i = 0; i < BACKLOG_CONNS; i++)
        close(pfd[i].fd);
    core_listener_free(l);
    ev_loop_destroy(loop);
    assert_int_equal(connected, BACKLOG_CONNS);
}

static void test_parse_hostport(void **state)
{
    char host[64];
    int port = -1;

    (void)state;
    assert_int_equal(core_parse_hostport("127.0.0.1:8080", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_equal(core_parse_hostport(":9000", host, sizeof(host), &port), 0);
    assert_string_equal(host, "");
    assert_int_equal(port, 9000);
    assert_int_equal(core_parse_hostport("[::1]:65535", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 65535);
    assert_int_equal(core_parse_hostport("localhost:0", host, sizeof(host), &port), 0);
    assert_int_equal(port, 0);
    assert_int_equal(core_parse_hostport("host", host, sizeof(host), &port), -1);
    assert_int_equal(core_parse_hostport("host:", host, sizeof(host), &port), -1);
    assert_int_equal(core_parse_hostport("host:65536", host, sizeof(host), &port), -1);
    assert_int_equal(core_parse_hostport("host:12a", host, sizeof(host), &port), -1);
    assert_int_equal(core_parse_hostport("::1:80", host, sizeof(host), &port), -1);
    assert_int_equal(core_parse_hostport("[::1]80", host, sizeof(host), &port), -1);
    assert_int_equal(core_parse_hostport("[::1:80", host, sizeof(host), &port), -1);
    assert_int_equal(core_parse_hostport("averyveryverylonghostname:1", host, 8, &port), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_hostport),
        cmocka_unit_test(test_listener_backlog),
        cmocka_unit_test(test_connect_from),
        cmocka_unit_test(test_listener_bad_address),
        cmocka_unit_test(test_listener_emfile_pauses),
        cmocka_unit_test(test_echo),
        cmocka_unit_test(test_ud_and_peer),
        cmocka_unit_test(test_split_input),
        cmocka_unit_test(test_max_in_overflow_closes),
        cmocka_unit_test(test_max_out_single_write_fails),
        cmocka_unit_test(test_slow_reader_hits_max_out),
        cmocka_unit_test(test_close_inside_on_read),
        cmocka_unit_test(test_abort_other_from_on_read),
        cmocka_unit_test(test_coalesced_writes),
        cmocka_unit_test(test_keep_buf),
        cmocka_unit_test(test_close_flushes_large_output),
        cmocka_unit_test(test_two_loops_at_once),
        cmocka_unit_test(test_close_times_out_on_stuck_peer),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_connect_bad_host),
        cmocka_unit_test(test_connect_ipv6_and_write_before_connect),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
