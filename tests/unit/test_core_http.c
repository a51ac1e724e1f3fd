/* Tests for the HTTP/1.1 server (core/http.c) with a raw client over real
 * sockets: TCP through the listener, or a socketpair handed to the server's
 * accept path when a test must know that the server read every byte sent
 * (split and byte-at-a-time input). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/http_int.h"
#include "test_util.h"

#define MAX_BODY 1024
#define MAX_ASYNC 8

typedef struct env {
    struct ev_loop *loop;
    core_http_server_t *srv;
    core_buf_t seen; /* one line per request: "METHOD path ?query |x-test |body" */
    int nreq;
    int ws_opens;
    core_http_req_t *async[MAX_ASYNC];
    int nasync;
} env_t;

typedef tu_cli_t cli_t;

/* ------------------------------------------------------------------ server side */

static void on_request(core_http_req_t *r, void *ud)
{
    env_t *e = ud;
    size_t blen;
    const char *body = core_http_req_body(r, &blen);
    const char *xt = core_http_req_header(r, "x-TEST");

    e->nreq++;
    core_buf_printf(&e->seen, "%s %s ?%s |%s |%.*s\n", core_http_req_method(r),
                    core_http_req_path(r), core_http_req_query(r), xt ? xt : "-", (int)blen, body);
    if (strncmp(core_http_req_path(r), "/async", 6) == 0) {
        assert_true(e->nasync < MAX_ASYNC);
        e->async[e->nasync++] = r;
        return;
    }
    core_http_respond(r, 200, "text/plain", core_http_req_path(r), strlen(core_http_req_path(r)));
}

static void on_ws_open(core_ws_t *ws, void *ud)
{
    env_t *e = ud;

    (void)ws;
    e->ws_opens++;
}

static env_t *env_new(const core_http_server_opts_t *opts)
{
    static const core_http_server_cbs_t cbs = {
        .on_request = on_request, .ws_path = "/ws", .on_ws_open = on_ws_open};
    env_t *e = calloc(1, sizeof(*e));
    char err[128];

    assert_non_null(e);
    core_log_set_level(CORE_LOG_ERROR);
    e->loop = ev_loop_new(EVFLAG_AUTO);
    core_buf_init(&e->seen);
    e->srv = core_http_server_new(e->loop, "127.0.0.1", 0, opts, &cbs, e, err, sizeof(err));
    assert_non_null(e->srv);
    return e;
}

static int setup(void **state)
{
    core_http_server_opts_t opts = {.max_body = MAX_BODY};

    *state = env_new(&opts);
    return 0;
}

static int teardown(void **state)
{
    env_t *e = *state;

    core_http_server_free(e->srv);
    for (int i = 0; i < e->nasync; i++)
        core_http_respond(e->async[i], 200, NULL, NULL, 0); /* orphans: dropped */
    ev_run(e->loop, 0); /* until every conn finished closing */
    ev_loop_destroy(e->loop);
    core_buf_free(&e->seen);
    free(e);
    return 0;
}

/* ------------------------------------------------------------------ loop helpers */

static int run_until(env_t *e, cli_t *c, tu_done_fn done, const void *arg)
{
    return tu_run_until(e->loop, e, c, done, arg);
}

static int count_str(const core_buf_t *b, const char *needle)
{
    int n = 0;

    for (const char *p = b->data; p && (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static int done_responses(void *ctx, cli_t *c, const void *arg)
{
    (void)ctx;
    return count_str(&c->in, "HTTP/1.") >= *(const int *)arg;
}

static int done_nreq(void *ctx, cli_t *c, const void *arg)
{
    (void)c;
    return ((env_t *)ctx)->nreq >= *(const int *)arg;
}

static void wait_eof(env_t *e, cli_t *c)
{
    assert_true(run_until(e, c, tu_done_eof, NULL));
}

static void wait_responses(env_t *e, cli_t *c, int n)
{
    assert_true(run_until(e, c, done_responses, &n));
}

static void wait_nreq(env_t *e, int n)
{
    assert_true(run_until(e, NULL, done_nreq, &n));
}

/* ------------------------------------------------------------------ clients */

static void cli_tcp(env_t *e, cli_t *c)
{
    tu_cli_tcp(c, core_http_server_port(e->srv));
}

static void cli_pair(env_t *e, cli_t *c)
{
    tu_cli_pair(c);
    core__http_accept(e->loop, c->server_fd, "pair:1", e->srv);
}

/* ------------------------------------------------------------------ tests */

static const char get_req[] = "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: t\r\nX-Test: hello\r\n\r\n";

static void test_get(void **state)
{
    env_t *e = *state;
    cli_t c;

    cli_tcp(e, &c);
    tu_cli_sends(&c, get_req);
    wait_responses(e, &c, 1);
    assert_string_equal(e->seen.data, "GET /a/b ?x=1&y=2 |hello |\n");
    assert_non_null(strstr(c.in.data, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(c.in.data, "Content-Type: text/plain\r\n"));
    assert_non_null(strstr(c.in.data, "Content-Length: 4\r\n"));
    assert_non_null(strstr(c.in.data, "\r\n\r\n/a/b"));
    assert_null(strstr(c.in.data, "Connection: close"));
    assert_int_equal(core_http_server_conns(e->srv), 1);
    tu_cli_free(&c);
    assert_true(run_until(e, NULL, tu_done_no_conns, e->srv));
}

static void test_split_input(void **state)
{
    static const char req[] = "POST /split?q HTTP/1.1\r\nHost: t\r\nX-Test: v\r\n"
                              "Content-Length: 11\r\n\r\nhello world";
    static const size_t steps[] = {1, 2, 3, 7, 16};
    env_t *e = *state;

    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        cli_t c;
        cli_pair(e, &c);
        tu_cli_send_split(e->loop, &c, req, strlen(req), steps[i]);
        wait_responses(e, &c, 1);
        assert_non_null(strstr(c.in.data, "HTTP/1.1 200 OK"));
        tu_cli_free(&c);
    }
    assert_int_equal(e->nreq, 5);
    assert_int_equal(count_str(&e->seen, "POST /split ?q |v |hello world\n"), 5);
}

static void test_keep_alive(void **state)
{
    env_t *e = *state;
    cli_t c;

    cli_tcp(e, &c);
    for (int i = 1; i <= 3; i++) {
        tu_cli_sends(&c, get_req);
        wait_responses(e, &c, i);
    }
    assert_int_equal(e->nreq, 3);
    assert_false(c.eof);
    assert_int_equal(core_http_server_conns(e->srv), 1);
    tu_cli_free(&c);
}

static void test_pipelined_in_order(void **state)
{
    env_t *e = *state;
    cli_t c;
    const char *p1, *p2, *p3;

    cli_tcp(e, &c);
    tu_cli_sends(&c, "GET /one HTTP/1.1\r\n\r\nGET /async HTTP/1.1\r\n\r\n"
                  "POST /three HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /four HTTP/1.1\r\n\r\n");
    wait_nreq(e, 2);
    wait_responses(e, &c, 1);
    /* The async request holds back the ones behind it. */
    assert_int_equal(e->nreq, 2);
    assert_int_equal(e->nasync, 1);
    core_http_respond(e->async[0], 201, "text/plain", "two", 3);
    e->nasync = 0;
    wait_responses(e, &c, 4);
    p1 = strstr(c.in.data, "/one");
    p2 = strstr(c.in.data, "201 Created");
    p3 = strstr(c.in.data, "/three");
    assert_true(p1 && p2 && p3 && p1 < p2 && p2 < p3 && p3 < strstr(c.in.data, "/four"));
    assert_non_null(strstr(e->seen.data, "POST /three ? |- |abc\n"));
    tu_cli_free(&c);
}

static void test_body_limits(void **state)
{
    env_t *e = *state;
    char req[MAX_BODY + 128];
    cli_t c;
    int n;

    n = snprintf(req, sizeof(req), "POST /max HTTP/1.1\r\nContent-Length: %d\r\n\r\n", MAX_BODY);
    memset(req + n, 'b', MAX_BODY);
    cli_tcp(e, &c);
    tu_cli_send(&c, req, (size_t)n + MAX_BODY);
    wait_responses(e, &c, 1);
    assert_non_null(strstr(c.in.data, "HTTP/1.1 200 OK"));
    tu_cli_free(&c);

    cli_tcp(e, &c);
    tu_cli_sends(&c, "POST /over HTTP/1.1\r\nContent-Length: 1025\r\n\r\nxx");
    wait_eof(e, &c);
    assert_non_null(strstr(c.in.data, "HTTP/1.1 413 Payload Too Large\r\n"));
    assert_non_null(strstr(c.in.data, "Connection: close\r\n"));
    assert_int_equal(e->nreq, 1);
    tu_cli_free(&c);
}

static void test_chunked(void **state)
{
    static const char req[] = "POST /chunked HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    env_t *e = *state;
    cli_t c;

    cli_pair(e, &c);
    tu_cli_send_split(e->loop, &c, req, sizeof(req) - 1, 4);
    wait_responses(e, &c, 1);
    assert_string_equal(e->seen.data, "POST /chunked ? |- |hello world\n");
    tu_cli_free(&c);

    /* Chunks adding up past the body cap are refused like a long body. */
    cli_tcp(e, &c);
    tu_cli_sends(&c, "POST /big HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        char chunk[520];
        int n = snprintf(chunk, sizeof(chunk), "200\r\n");
        memset(chunk + n, 'z', 512);
        memcpy(chunk + n + 512, "\r\n", 2);
        tu_cli_send(&c, chunk, (size_t)n + 514);
    }
    wait_eof(e, &c);
    assert_non_null(strstr(c.in.data, "413"));
    assert_int_equal(e->nreq, 1);
    tu_cli_free(&c);
}

static void test_oversized_head(void **state)
{
    env_t *e = *state;
    static char big[20000];
    cli_t c;

    memset(big, 'h', sizeof(big) - 1);
    cli_tcp(e, &c);
    tu_cli_sends(&c, "GET / HTTP/1.1\r\nX-Big: ");
    tu_cli_send(&c, big, sizeof(big) - 1);
    wait_eof(e, &c);
    assert_non_null(strstr(c.in.data, "HTTP/1.1 431 "));
    tu_cli_free(&c);

    /* A huge request line too. */
    cli_tcp(e, &c);
    tu_cli_sends(&c, "GET /");
    tu_cli_send(&c, big, sizeof(big) - 1);
    wait_eof(e, &c);
    assert_non_null(strstr(c.in.data, "HTTP/1.1 431 "));
    assert_int_equal(e->nreq, 0);
    tu_cli_free(&c);
}

static void test_malformed(void **state)
{
    static const char *bad[] = {
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    env_t *e = *state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cli_t c;
        cli_tcp(e, &c);
        tu_cli_sends(&c, bad[i]);
        wait_eof(e, &c);
        assert_non_null(strstr(c.in.data, "HTTP/1.1 400 Bad Request\r\n"));
        assert_non_null(strstr(c.in.data, "Connection: close\r\n"));
        tu_cli_free(&c);
    }
    /* Only HTTP/1.x is spoken. */
    cli_t v;
    cli_tcp(e, &v);
    tu_cli_sends(&v, "GET / HTTP/2.0\r\n\r\n");
    wait_eof(e, &v);
    assert_non_null(strstr(v.in.data, "HTTP/1.1 505 HTTP Version Not Supported\r\n"));
    tu_cli_free(&v);
    assert_int_equal(e->nreq, 0);
    /* A good request followed by garbage: served, then 400 and close. */
    cli_t c;
    cli_tcp(e, &c);
    tu_cli_sends(&c, "GET /ok HTTP/1.1\r\n\r\n\x01\x02 nonsense\r\n\r\n");
    wait_eof(e, &c);
    assert_int_equal(count_str(&c.in, "HTTP/1.1 "), 2);
    assert_true(strstr(c.in.data, "200 OK") < strstr(c.in.data, "400 Bad Request"));
    tu_cli_free(&c);
    assert_true(run_until(e, NULL, tu_done_no_conns, e->srv));
}

static void test_http10_and_close(void **state)
{
    env_t *e = *state;
    cli_t c;

    cli_tcp(e, &c);
    tu_cli_sends(&c, "GET /ten HTTP/1.0\r\n\r\n");
    wait_eof(e, &c);
    assert_non_null(strstr(c.in.data, "HTTP/1.1 200 OK"));
    assert_non_null(strstr(c.in.data, "Connection: close"));
    tu_cli_free(&c);

    cli_tcp(e, &c);
    tu_cli_sends(&c, "HEAD /h HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                  "GET /x HTTP/1.1\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\n\r\n");
    wait_eof(e, &c);
    assert_int_equal(count_str(&c.in, "HTTP/1.1 200"), 2);
    assert_non_null(strstr(c.in.data, "Connection: keep-alive\r\n"));
    /* HEAD: the length of the body, without the body. */
    assert_non_null(strstr(c.in.data, "Content-Length: 2\r\n"));
    assert_non_null(strstr(c.in.data, "\r\n\r\nHTTP/1.1 200 OK"));
    assert_null(strstr(e->seen.data, "/never"));
    tu_cli_free(&c);
}

static void test_upgrade_handoff(void **state)
{
    env_t *e = *state;
    cli_t c;

    cli_tcp(e, &c);
    tu_cli_sends(&c, "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    wait_responses(e, &c, 1);
    assert_non_null(strstr(c.in.data, "HTTP/1.1 101 Switching Protocols\r\n"));
    assert_non_null(strstr(c.in.data, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert_int_equal(e->ws_opens, 1);
    assert_int_equal(e->nreq, 0);
    assert_int_equal(core_http_server_conns(e->srv), 1);
    tu_cli_free(&c);
    assert_true(run_until(e, NULL, tu_done_no_conns, e->srv));
}

static void test_upgrade_refused(void **state)
{
    static const struct {
        const char *req, *want;
    } cases[] = {
        {"GET /other HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         "HTTP/1.1 404 "},
        {"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\n\r\n",
         "HTTP/1.1 400 "},
        {"POST /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         "HTTP/1.1 400 "},
        {"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
         "Sec-WebSocket-Version: 13\r\n"},
    };
    env_t *e = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cli_t c;
        cli_tcp(e, &c);
        tu_cli_sends(&c, cases[i].req);
        wait_eof(e, &c);
        assert_non_null(strstr(c.in.data, cases[i].want));
        tu_cli_free(&c);
    }
    assert_int_equal(e->ws_opens, 0);
    assert_int_equal(e->nreq, 0);
}

/* A non-WebSocket upgrade is served as plain HTTP, and ends the stream. */
static void test_other_upgrade(void **state)
{
    env_t *e = *state;
    cli_t c;

    cli_tcp(e, &c);
    tu_cli_sends(&c, "GET /h2 HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
                  "GET /after HTTP/1.1\r\n\r\n");
    wait_eof(e, &c);
    assert_int_equal(count_str(&c.in, "HTTP/1.1 200"), 1);
    assert_string_equal(e->seen.data, "GET /h2 ? |- |\n");
    tu_cli_free(&c);
}

static void test_client_gone_while_pending(void **state)
{
    env_t *e = *state;
    cli_t c;

    cli_tcp(e, &c);
    tu_cli_sends(&c, "GET /async1 HTTP/1.1\r\n\r\nGET /queued HTTP/1.1\r\n\r\n");
    wait_nreq(e, 1);
    tu_cli_free(&c);
    assert_true(run_until(e, NULL, tu_done_no_conns, e->srv));
    /* The orphaned request is still valid and answering it is harmless. */
    assert_string_equal(core_http_req_path(e->async[0]), "/async1");
    core_http_respond(e->async[0], 200, "text/plain", "late", 4);
    e->nasync = 0;
    assert_int_equal(e->nreq, 1);
}

static void test_backlog_bound(void **state)
{
    env_t *e = *state;
    static char junk[64 * 1024];
    cli_t c;

    memset(junk, 'a', sizeof(junk));
    cli_tcp(e, &c);
    tu_cli_sends(&c, "GET /async HTTP/1.1\r\n\r\n");
    wait_nreq(e, 1);
    /* Pipelining far more than any request may hold while one is pending. */
    for (int i = 0; i < 32 && !c.eof; i++) {
        ssize_t n = send(c.fd, junk, sizeof(junk), MSG_NOSIGNAL);
        (void)n;
        for (int j = 0; j < 5; j++)
            ev_run(e->loop, EVRUN_NOWAIT);
        tu_cli_pump(&c);
    }
    wait_eof(e, &c);
    assert_true(run_until(e, NULL, tu_done_no_conns, e->srv));
    tu_cli_free(&c);
}

static void test_free_with_open_conns(void **state)
{
    env_t *e = *state;
    cli_t a, b;

    cli_tcp(e, &a);
    cli_tcp(e, &b);
    tu_cli_sends(&a, "GET /async HTTP/1.1\r\n\r\n");
    tu_cli_sends(&b, "GET /x HTTP/1.1\r\n\r\n");
    wait_responses(e, &b, 1);
    wait_nreq(e, 2);
    assert_int_equal(core_http_server_conns(e->srv), 2);
    core_http_server_free(e->srv);
    e->srv = NULL;
    core_http_respond(e->async[0], 200, NULL, NULL, 0);
    e->nasync = 0;
    assert_true(run_until(e, &a, tu_done_eof, NULL));
    assert_true(run_until(e, &b, tu_done_eof, NULL));
    tu_cli_free(&a);
    tu_cli_free(&b);
}

/* Silent clients are closed after a few sweeps; one waiting for its
 * answer, or one that keeps sending, is not. */
static void test_idle_closed(void **state)
{
    core_http_server_opts_t opts = {.ws_ping_interval = 0.05, .ws_idle_pings = 2};
    env_t *e = env_new(&opts);
    cli_t idle, waiting, served;

    *state = e;
    cli_tcp(e, &idle);
    cli_tcp(e, &waiting);
    cli_tcp(e, &served);
    tu_cli_sends(&waiting, "GET /async HTTP/1.1\r\n\r\n");
    tu_cli_sends(&served, "GET /s HTTP/1.1\r\n\r\n");
    tu_cli_sends(&idle, "GET / HTTP/1.1\r\n"); /* never finished */
    wait_responses(e, &served, 1);
    wait_eof(e, &idle);
    assert_int_equal(idle.in.len, 0);
    wait_eof(e, &served); /* idle after its answer */
    tu_cli_pump(&waiting);
    assert_false(waiting.eof);
    core_http_respond(e->async[0], 200, "text/plain", "ok", 2);
    e->nasync = 0;
    wait_responses(e, &waiting, 1);
    wait_eof(e, &waiting);
    tu_cli_free(&idle);
    tu_cli_free(&waiting);
    tu_cli_free(&served);
}

/* The per-address cap and the cap on all connections; an exempt address is
 * never counted per address. */
static int done_conns(void *ctx, cli_t *c, const void *arg)
{
    (void)c;
    return core_http_server_conns(((env_t *)ctx)->srv) == *(const size_t *)arg;
}

/* Two connections from one address fit, the third is closed at accept
 * before any byte, the first two keep working, and a freed slot is used
 * again. */
static void check_cap_of_two(const core_http_server_opts_t *opts)
{
    env_t *e = env_new(opts);
    int port = core_http_server_port(e->srv), one = 1;
    size_t two = 2;
    cli_t a, b, c, d;

    tu_cli_tcp(&a, port);
    tu_cli_tcp(&b, port);
    assert_true(run_until(e, NULL, done_conns, &two));
    tu_cli_tcp(&c, port);
    wait_eof(e, &c);
    assert_int_equal(c.in.len, 0);
    assert_int_equal(core_http_server_refused(e->srv), 1);
    tu_cli_sends(&b, "GET /still HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_responses(e, &b, one);
    tu_cli_free(&a);
    tu_cli_free(&c);
    size_t now_one = 1;
    assert_true(run_until(e, NULL, done_conns, &now_one));
    tu_cli_tcp(&d, port); /* a's slot */
    tu_cli_sends(&d, "GET /again HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_responses(e, &d, one);
    assert_int_equal(core_http_server_refused(e->srv), 1);
    tu_cli_free(&b);
    tu_cli_free(&d);
    teardown((void **)&e);
}

static void test_conns_per_ip_cap(void **state)
{
    core_http_server_opts_t opts = {.max_body = MAX_BODY, .max_conns_per_ip = 2};
    (void)state;
    check_cap_of_two(&opts);
}

#define WS_UPGRADE                                                                     \
    "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

static int done_ws_opens(void *ctx, cli_t *c, const void *arg)
{
    (void)c;
    return ((env_t *)ctx)->ws_opens == *(const int *)arg;
}

/* The cap on all connections holds for exempt addresses too (it is the
 * server's room, not a limit on one source): at max_conns (2) a WebSocket
 * upgrade is answered 503 while plain HTTP (metrics, health checks) is
 * still served, and CORE__HTTP_FULL_ROOM connections later the server
 * closes new ones at accept, before any byte. */
static void test_conns_total_cap(void **state)
{
    core_addrset_t exempt;
    char err[128];
    core_http_server_opts_t opts = {.max_body = MAX_BODY, .max_conns = 2, .exempt = &exempt,
                                    .max_conns_per_ip = 100};
    env_t *e;
    int port, two_ws = 2;
    cli_t a, b, c, d, over, extra[CORE__HTTP_FULL_ROOM];
    size_t full = 2 + CORE__HTTP_FULL_ROOM;

    (void)state;
    assert_int_equal(core_addrset_parse(&exempt, "127.0.0.0/8", err, sizeof err), 0);
    e = env_new(&opts);
    port = core_http_server_port(e->srv);
    tu_cli_tcp(&a, port);
    tu_cli_tcp(&b, port);
    tu_cli_sends(&a, WS_UPGRADE);
    tu_cli_sends(&b, WS_UPGRADE);
    assert_true(run_until(e, NULL, done_ws_opens, &two_ws));
    tu_cli_tcp(&c, port); /* full for WebSockets: plain HTTP still answered */
    tu_cli_sends(&c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_responses(e, &c, 1);
    assert_non_null(strstr(c.in.data, "HTTP/1.1 200 "));
    tu_cli_tcp(&d, port);
    tu_cli_sends(&d, WS_UPGRADE);
    wait_eof(e, &d);
    assert_non_null(strstr(d.in.data, "HTTP/1.1 503 Service Unavailable\r\n"));
    assert_int_equal(e->ws_opens, 2);
    assert_int_equal(core_http_server_refused(e->srv), 1);
    tu_cli_free(&d);
    tu_cli_free(&c);
    size_t two = 2;
    assert_true(run_until(e, NULL, done_conns, &two)); /* both gone on the server too */
    for (size_t i = 0; i < CORE__HTTP_FULL_ROOM; i++)
        tu_cli_tcp(&extra[i], port);
    assert_true(run_until(e, NULL, done_conns, &full));
    tu_cli_tcp(&over, port); /* past the room: closed at accept */
    wait_eof(e, &over);
    assert_int_equal(over.in.len, 0);
    assert_int_equal(core_http_server_refused(e->srv), 2);
    tu_cli_free(&over);
    for (size_t i = 0; i < CORE__HTTP_FULL_ROOM; i++)
        tu_cli_free(&extra[i]);
    tu_cli_free(&a);
    tu_cli_free(&b);
    teardown((void **)&e);
}

static void test_conns_per_ip_exempt(void **state)
{
    core_addrset_t exempt;
    char err[128];
    core_http_server_opts_t opts = {.max_body = MAX_BODY, .max_conns_per_ip = 1,
                                    .exempt = &exempt};
    env_t *e;
    cli_t a, b;
    size_t two = 2;

    (void)state;
    assert_int_equal(core_addrset_parse(&exempt, "10.0.0.0/8,127.0.0.0/8", err, sizeof err), 0);
    e = env_new(&opts);
    tu_cli_tcp(&a, core_http_server_port(e->srv));
    tu_cli_tcp(&b, core_http_server_port(e->srv));
    assert_true(run_until(e, NULL, done_conns, &two));
    assert_int_equal(core_http_server_refused(e->srv), 0);
    tu_cli_free(&a);
    tu_cli_free(&b);
    teardown((void **)&e);
}

static void test_addrset(void **state)
{
    core_addrset_t set;
    char err[128], ip[64];

    (void)state;
    assert_int_equal(core_addrset_parse(&set, "127.0.0.0/8,::1,192.168.1.128/25", err, sizeof err), 0);
    assert_true(core_addrset_has(&set, "127.9.8.7"));
    assert_true(core_addrset_has(&set, "::1"));
    assert_true(core_addrset_has(&set, "192.168.1.200"));
    assert_false(core_addrset_has(&set, "192.168.1.127"));
    assert_false(core_addrset_has(&set, "128.0.0.1"));
    assert_false(core_addrset_has(&set, "::2"));
    assert_false(core_addrset_has(&set, "not an ip"));
    assert_int_equal(core_addrset_parse(&set, "none", err, sizeof err), 0);
    assert_false(core_addrset_has(&set, "127.0.0.1"));
    assert_false(core_addrset_has(NULL, "127.0.0.1"));
    assert_int_equal(core_addrset_parse(&set, "10.0.0.0/33", err, sizeof err), -1);
    assert_non_null(strstr(err, "10.0.0.0/33"));
    assert_int_equal(core_addrset_parse(&set, "10.0.0.0/", err, sizeof err), -1);
    assert_int_equal(core_addrset_parse(&set, "example.com", err, sizeof err), -1);
    assert_int_equal(set.count, 0);
    core_peer_ip("[::1]:80", ip, sizeof ip);
    assert_string_equal(ip, "::1");
    core_peer_ip("10.1.2.3:4567", ip, sizeof ip);
    assert_string_equal(ip, "10.1.2.3");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http10_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_handoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_upgrade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_gone_while_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backlog_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_open_conns, setup, teardown),
        cmocka_unit_test_teardown(test_idle_closed, teardown),
        cmocka_unit_test(test_conns_per_ip_cap),
        cmocka_unit_test(test_conns_total_cap),
        cmocka_unit_test(test_conns_per_ip_exempt),
        cmocka_unit_test(test_addrset),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
