/* Tests for the server side of a WebSocket (core/ws.c) through the real
 * HTTP server, with a raw test client that builds its frames by hand: TCP
 * through the listener, or a socketpair handed to the server's accept path
 * when a test must know that the server read every byte sent. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/http_int.h"
#include "test_util.h"

#define HANDSHAKE                                                                      \
    "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

typedef struct env {
    struct ev_loop *loop;
    core_http_server_t *srv;
    core_ws_t *ws;    /* the last one opened */
    core_buf_t msgs;  /* received text messages, each followed by '\n' */
    int nmsgs;
    int opens, closes;
    int close_code;
    int echo;
} env_t;

typedef tu_cli_t cli_t;

typedef struct frame {
    int fin, op;
    size_t len;
    char *payload; /* owned; NUL-terminated */
} frame_t;

/* ------------------------------------------------------------------ server side */

static void on_ws_open(core_ws_t *ws, void *ud)
{
    env_t *e = ud;

    e->ws = ws;
    e->opens++;
    core_ws_set_ud(ws, e);
}

static void on_ws_text(core_ws_t *ws, const char *msg, size_t len, void *ud)
{
    env_t *e = ud;

    assert_ptr_equal(core_ws_ud(ws), e);
    core_buf_append(&e->msgs, msg, len);
    core_buf_append(&e->msgs, "\n", 1);
    e->nmsgs++;
    if (len == 8 && memcmp(msg, "close-me", 8) == 0) {
        core_ws_close(ws, CORE_WS_NORMAL, "bye");
        assert_int_equal(core_ws_send_text(ws, "late", 4), -1);
        return;
    }
    if (e->echo)
        assert_int_equal(core_ws_send_text(ws, msg, len), 0);
}

static void on_ws_close(core_ws_t *ws, int code, void *ud)
{
    env_t *e = ud;

    assert_ptr_equal(core_ws_ud(ws), e);
    if (e->ws == ws)
        e->ws = NULL;
    e->closes++;
    e->close_code = code;
}

static env_t *env_new(const core_http_server_opts_t *opts)
{
    static const core_http_server_cbs_t cbs = {
        .ws_path = "/ws", .on_ws_open = on_ws_open, .on_ws_text = on_ws_text,
        .on_ws_close = on_ws_close};
    env_t *e = calloc(1, sizeof(*e));
    char err[128];

    assert_non_null(e);
    core_log_set_level(CORE_LOG_ERROR);
    e->loop = ev_loop_new(EVFLAG_AUTO);
    core_buf_init(&e->msgs);
    e->echo = 1;
    e->srv = core_http_server_new(e->loop, "127.0.0.1", 0, opts, &cbs, e, err, sizeof(err));
    assert_non_null(e->srv);
    return e;
}

static int setup(void **state)
{
    *state = env_new(NULL);
    return 0;
}

static int teardown(void **state)
{
    env_t *e = *state;

    core_http_server_free(e->srv);
    ev_run(e->loop, 0); /* until every conn finished closing */
    ev_loop_destroy(e->loop);
    core_buf_free(&e->msgs);
    free(e);
    return 0;
}

/* ------------------------------------------------------------------ loop helpers */

static int run_until(env_t *e, cli_t *c, tu_done_fn done, const void *arg)
{
    return tu_run_until(e->loop, e, c, done, arg);
}

static void wait_eof(env_t *e, cli_t *c)
{
    assert_true(run_until(e, c, tu_done_eof, NULL));
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

/* ------------------------------------------------------------------ frames */

/* A client frame: masked unless told otherwise. Returns its length. */
static size_t frame_build(char *out, int fin, int op, const void *payload, size_t len, int mask)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t *o = (uint8_t *)out;
    size_t h = 2;

    o[0] = (uint8_t)((fin ? 0x80 : 0) | op);
    if (len < 126) {
        o[1] = (uint8_t)len;
    } else if (len <= 0xffff) {
        o[1] = 126;
        o[2] = (uint8_t)(len >> 8);
        o[3] = (uint8_t)len;
        h = 4;
    } else {
        o[1] = 127;
        for (int i = 0; i < 8; i++)
            o[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        h = 10;
    }
    if (mask) {
        o[1] |= 0x80;
        memcpy(o + h, key, 4);
        h += 4;
    }
    for (size_t i = 0; i < len; i++)
        o[h + i] = (uint8_t)(((const uint8_t *)payload)[i] ^ (mask ? key[i % 4] : 0));
    return h + len;
}

static void send_frame(cli_t *c, int fin, int op, const void *payload, size_t len)
{
    char *buf = malloc(len + 14);

    assert_non_null(buf);
    tu_cli_send(c, buf, frame_build(buf, fin, op, payload, len, 1));
    free(buf);
}

static void send_text(cli_t *c, const char *s)
{
    send_frame(c, 1, 1, s, strlen(s));
}

static void send_close(cli_t *c, int code, const char *reason)
{
    char p[125];
    size_t rl = strlen(reason);

    p[0] = (char)(code >> 8);
    p[1] = (char)code;
    memcpy(p + 2, reason, rl);
    send_frame(c, 1, 8, p, rl + 2);
}

/* Pops one complete server frame off c->in; 0 when none is complete. */
static int frame_pop(cli_t *c, frame_t *f)
{
    const uint8_t *p = (const uint8_t *)c->in.data;
    size_t have = c->in.len, h = 2;
    uint64_t len;

    if (have < 2)
        return 0;
    assert_int_equal(p[1] & 0x80, 0); /* a server never masks */
    len = p[1] & 0x7f;
    if (len == 126) {
        if (have < 4)
            return 0;
        len = ((uint64_t)p[2] << 8) | p[3];
        h = 4;
    } else if (len == 127) {
        if (have < 10)
            return 0;
        len = 0;
        for (int i = 2; i < 10; i++)
            len = (len << 8) | p[i];
        h = 10;
    }
    if (have < h + len)
        return 0;
    f->fin = !!(p[0] & 0x80);
    f->op = p[0] & 0x0f;
    f->len = (size_t)len;
    f->payload = malloc(f->len + 1);
    assert_non_null(f->payload);
    memcpy(f->payload, p + h, f->len);
    f->payload[f->len] = '\0';
    core_buf_consume(&c->in, h + (size_t)len);
    return 1;
}

static int done_frame(void *ctx, cli_t *c, const void *arg)
{
    (void)ctx;
    return frame_pop(c, (frame_t *)arg);
}

static void wait_frame(env_t *e, cli_t *c, frame_t *f)
{
    memset(f, 0, sizeof(*f)); /* filled by done_frame; zeroed for the compiler */
    assert_true(run_until(e, c, done_frame, f));
}

static int close_code_of(const frame_t *f)
{
    assert_int_equal(f->op, 8);
    assert_true(f->len >= 2);
    return ((uint8_t)f->payload[0] << 8) | (uint8_t)f->payload[1];
}

/* Expects a close frame with code, then EOF, then on_ws_close(code). */
static void expect_close(env_t *e, cli_t *c, int code)
{
    frame_t f;

    wait_frame(e, c, &f);
    assert_int_equal(close_code_of(&f), code);
    free(f.payload);
    wait_eof(e, c);
    assert_int_equal(c->in.len, 0);
    shutdown(c->fd, SHUT_WR); /* as a client does after the close handshake */
    assert_true(run_until(e, NULL, tu_done_no_conns, e->srv));
    assert_int_equal(e->closes, 1);
    assert_int_equal(e->close_code, code);
}

static void expect_text(env_t *e, cli_t *c, const char *want)
{
    frame_t f;

    wait_frame(e, c, &f);
    assert_int_equal(f.op, 1);
    assert_true(f.fin);
    assert_int_equal(f.len, strlen(want));
    assert_memory_equal(f.payload, want, f.len);
    free(f.payload);
}

static int done_header_end(void *ctx, cli_t *c, const void *arg)
{
    (void)ctx;
    (void)arg;
    return c->in.data && strstr(c->in.data, "\r\n\r\n") != NULL;
}

/* Handshake on a fresh client; leaves only frames in c->in. */
static void ws_open(env_t *e, cli_t *c, int pair)
{
    const char *end;
    int before = e->opens;

    if (pair)
        cli_pair(e, c);
    else
        cli_tcp(e, c);
    tu_cli_sends(c, HANDSHAKE);
    assert_true(run_until(e, c, done_header_end, NULL));
    assert_non_null(strstr(c->in.data, "HTTP/1.1 101 Switching Protocols\r\n"));
    assert_non_null(strstr(c->in.data, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    end = strstr(c->in.data, "\r\n\r\n") + 4;
    core_buf_consume(&c->in, (size_t)(end - c->in.data));
    assert_int_equal(e->opens, before + 1);
    assert_non_null(e->ws);
}

/* ------------------------------------------------------------------ tests */

static void test_handshake_refused(void **state)
{
    static const struct {
        const char *key, *version, *want;
    } cases[] = {
        {"dGhlIHNhbXBsZSBub25jZQ", "13", "400 "},     /* no padding */
        {"dGhlIHNhbXBsZSBub25jZQ=", "13", "400 "},    /* 23 chars */
        {"dGhlIHNhbXBsZSBub2!jZQ==", "13", "400 "},   /* not base64 */
        {"dGhlIHNhbXBsZSBub25jZQ==", "12", "Sec-WebSocket-Version: 13"},
        {"dGhlIHNhbXBsZSBub25jZQ==", "", "Sec-WebSocket-Version: 13"},
    };
    env_t *e = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char req[512];
        cli_t c;
        snprintf(req, sizeof(req),
                 "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: %s\r\n\r\n",
                 cases[i].key, cases[i].version);
        cli_tcp(e, &c);
        tu_cli_sends(&c, req);
        wait_eof(e, &c);
        assert_non_null(strstr(c.in.data, "HTTP/1.1 400 Bad Request\r\n"));
        assert_non_null(strstr(c.in.data, cases[i].want));
        tu_cli_free(&c);
    }
    assert_int_equal(e->opens, 0);
}

static void test_text_whole(void **state)
{
    env_t *e = *state;
    cli_t c;

    ws_open(e, &c, 0);
    send_text(&c, "hello");
    send_text(&c, "{\"action\":\"ping\"}");
    expect_text(e, &c, "hello");
    expect_text(e, &c, "{\"action\":\"ping\"}");
    assert_string_equal(e->msgs.data, "hello\n{\"action\":\"ping\"}\n");
    tu_cli_free(&c);
    assert_true(run_until(e, NULL, tu_done_no_conns, e->srv));
    assert_int_equal(e->closes, 1);
    assert_int_equal(e->close_code, 1006); /* no close frame: abnormal */
}

/* Handshake and frames in one send: the bytes after the request are frames. */
static void test_frames_with_handshake(void **state)
{
    env_t *e = *state;
    char buf[256];
    size_t n = strlen(HANDSHAKE);
    cli_t c;

    memcpy(buf, HANDSHAKE, n);
    n += frame_build(buf + n, 1, 1, "early", 5, 1);
    cli_tcp(e, &c);
    tu_cli_send(&c, buf, n);
    assert_true(run_until(e, &c, done_header_end, NULL));
    core_buf_consume(&c.in, (size_t)(strstr(c.in.data, "\r\n\r\n") + 4 - c.in.data));
    expect_text(e, &c, "early");
    tu_cli_free(&c);
}

static void test_text_split(void **state)
{
    static const size_t steps[] = {1, 2, 3, 5, 11};
    env_t *e = *state;
    char buf[600], big[300];
    size_t n;

    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    n = frame_build(buf, 1, 1, "split me", 8, 1);
    n += frame_build(buf + n, 1, 1, big, strlen(big), 1); /* 16-bit length */
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        cli_t c;
        ws_open(e, &c, 1);
        tu_cli_send_split(e->loop, &c, buf, n, steps[i]);
        expect_text(e, &c, "split me");
        expect_text(e, &c, big);
        tu_cli_free(&c);
    }
    assert_int_equal(e->nmsgs, 10);
}

static void test_fragmented(void **state)
{
    env_t *e = *state;
    frame_t f;
    cli_t c;

    ws_open(e, &c, 0);
    send_frame(&c, 0, 1, "hel", 3);
    send_frame(&c, 1, 9, "mid", 3); /* control frames may come in between */
    send_frame(&c, 0, 0, "lo ", 3);
    send_frame(&c, 1, 0, "world", 5);
    wait_frame(e, &c, &f);
    assert_int_equal(f.op, 10);
    assert_string_equal(f.payload, "mid");
    free(f.payload);
    expect_text(e, &c, "hello world");
    assert_int_equal(e->nmsgs, 1);
    tu_cli_free(&c);
}

static void test_fragmented_split(void **state)
{
    env_t *e = *state;
    char buf[128];
    size_t n;
    cli_t c;

    n = frame_build(buf, 0, 1, "ab", 2, 1);
    n += frame_build(buf + n, 0, 0, "cd", 2, 1);
    n += frame_build(buf + n, 1, 0, "ef", 2, 1);
    ws_open(e, &c, 1);
    tu_cli_send_split(e->loop, &c, buf, n, 1);
    expect_text(e, &c, "abcdef");
    tu_cli_free(&c);
}

static void test_too_big(void **state)
{
    env_t *e = *state;
    size_t max = CORE_WS_MAX_MESSAGE;
    char *big = malloc(max + 1);
    cli_t c;

    assert_non_null(big);
    memset(big, 'x', max + 1);
    ws_open(e, &c, 0);
    e->echo = 0;
    send_frame(&c, 1, 1, big, max); /* exactly the limit is fine */
    send_frame(&c, 1, 1, big, max + 1);
    expect_close(e, &c, CORE_WS_TOO_BIG);
    assert_int_equal(e->nmsgs, 1);
    assert_int_equal(e->msgs.len, max + 1);
    tu_cli_free(&c);
    free(big);
}

static void test_too_big_fragmented(void **state)
{
    env_t *e = *state;
    char *part = malloc(40000);
    cli_t c;

    assert_non_null(part);
    memset(part, 'y', 40000);
    ws_open(e, &c, 0);
    send_frame(&c, 0, 1, part, 40000);
    send_frame(&c, 1, 0, part, 40000);
    expect_close(e, &c, CORE_WS_TOO_BIG);
    assert_int_equal(e->nmsgs, 0);
    tu_cli_free(&c);
    free(part);
}

static void test_binary(void **state)
{
    env_t *e = *state;
    cli_t c;

    ws_open(e, &c, 0);
    send_frame(&c, 1, 2, "\x01\x02", 2);
    send_text(&c, "after");
    expect_close(e, &c, CORE_WS_UNSUPPORTED);
    assert_int_equal(e->nmsgs, 0);
    tu_cli_free(&c);
}

static void test_invalid_utf8(void **state)
{
    env_t *e = *state;
    cli_t c;

    ws_open(e, &c, 0);
    send_text(&c, "ok \xc3\xa9");
    send_frame(&c, 1, 1, "bad \xc3\x28", 6);
    expect_text(e, &c, "ok \xc3\xa9");
    expect_close(e, &c, CORE_WS_INVALID_DATA);
    assert_int_equal(e->nmsgs, 1);
    tu_cli_free(&c);
}

/* A code point split over two fragments is fine; a surrogate is not. */
static void test_utf8_across_fragments(void **state)
{
    env_t *e = *state;
    cli_t c;

    ws_open(e, &c, 0);
    send_frame(&c, 0, 1, "\xe2\x9c", 2);
    send_frame(&c, 1, 0, "\x93", 1);
    expect_text(e, &c, "\xe2\x9c\x93");
    send_frame(&c, 0, 1, "\xed\xa0", 2);
    send_frame(&c, 1, 0, "\x80", 1);
    expect_close(e, &c, CORE_WS_INVALID_DATA);
    tu_cli_free(&c);
}

/* wslay contexts go back to the server between messages and serve the
 * next connection with input, in turn: what each connection sends stays
 * its own (echoes, pongs, a frame split across reads), and a context that
 * saw a close is never kept. */
static void test_ctx_reused(void **state)
{
    env_t *e = *state;
    char buf[64];
    size_t n;
    frame_t f;
    cli_t a, b, c;

    ws_open(e, &a, 1);
    ws_open(e, &b, 1);
    ws_open(e, &c, 1);
    send_text(&a, "a1");
    expect_text(e, &a, "a1");
    assert_int_equal(e->srv->ws_spares, 1); /* a's context, kept for the next */
    n = frame_build(buf, 1, 1, "b1 in two", 9, 1);
    tu_cli_send(&b, buf, 6); /* half a frame: b takes the spare and holds it */
    assert_true(run_until(e, &b, tu_done_consumed, NULL));
    assert_int_equal(e->srv->ws_spares, 0);
    send_frame(&a, 1, 9, "pa", 2); /* a ping, on a new context */
    wait_frame(e, &a, &f);
    assert_int_equal(f.op, 10);
    assert_string_equal(f.payload, "pa");
    free(f.payload);
    tu_cli_send(&b, buf + 6, n - 6);
    expect_text(e, &b, "b1 in two");
    assert_int_equal(e->srv->ws_spares, 2);
    send_text(&c, "c1");
    expect_text(e, &c, "c1");
    send_frame(&c, 1, 1, "bad \xc3\x28", 6); /* closes c: its context is not kept */
    wait_frame(e, &c, &f);
    assert_int_equal(close_code_of(&f), CORE_WS_INVALID_DATA);
    free(f.payload);
    wait_eof(e, &c);
    assert_int_equal(e->srv->ws_spares, 1);
    send_text(&b, "b2");
    expect_text(e, &b, "b2");
    send_text(&a, "a2");
    expect_text(e, &a, "a2");
    assert_string_equal(e->msgs.data, "a1\nb1 in two\nc1\nb2\na2\n");
    assert_true(e->srv->ws_spares >= 1 && e->srv->ws_spares <= 2);
    tu_cli_free(&a);
    tu_cli_free(&b);
    tu_cli_free(&c);
}

static void test_ping_pong(void **state)
{
    env_t *e = *state;
    frame_t f;
    cli_t c;

    ws_open(e, &c, 1);
    send_frame(&c, 1, 9, "are you there", 13);
    wait_frame(e, &c, &f);
    assert_int_equal(f.op, 10);
    assert_string_equal(f.payload, "are you there");
    free(f.payload);
    send_frame(&c, 1, 10, "unsolicited", 11); /* ignored */
    send_frame(&c, 1, 9, "", 0);
    wait_frame(e, &c, &f);
    assert_int_equal(f.op, 10);
    assert_int_equal(f.len, 0);
    free(f.payload);
    assert_int_equal(e->closes, 0);
    tu_cli_free(&c);
}

static void test_unmasked(void **state)
{
    env_t *e = *state;
    char buf[32];
    cli_t c;

    ws_open(e, &c, 0);
    tu_cli_send(&c, buf, frame_build(buf, 1, 1, "plain", 5, 0));
    expect_close(e, &c, CORE_WS_PROTOCOL_ERROR);
    assert_int_equal(e->nmsgs, 0);
    tu_cli_free(&c);
}

static void test_protocol_errors(void **state)
{
    static const uint8_t bad[][4] = {
        {0x80, 0x80, 0, 0}, /* continuation with nothing to continue */
        {0xc1, 0x80, 0, 0}, /* RSV1 without an extension */
        {0x83, 0x80, 0, 0}, /* reserved opcode */
        {0x09, 0x80, 0, 0}, /* fragmented ping */
        {0x89, 0xfe, 0, 200}, /* ping over 125 bytes (a 16-bit length) */
        {0x81, 0xff, 0x80, 0}, /* 64-bit length with the top bit set */
    };
    env_t *e = *state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cli_t c;
        e->closes = 0;
        ws_open(e, &c, 0);
        tu_cli_send(&c, (const char *)bad[i], 4);
        tu_cli_send(&c, "\0\0\0\0\0\0\0\0\0\0\0\0", 12); /* length, mask key */
        expect_close(e, &c, CORE_WS_PROTOCOL_ERROR);
        tu_cli_free(&c);
    }
}

static void test_close_by_client(void **state)
{
    env_t *e = *state;
    cli_t c;

    ws_open(e, &c, 0);
    send_text(&c, "last");
    send_close(&c, CORE_WS_NORMAL, "done");
    expect_text(e, &c, "last");
    expect_close(e, &c, CORE_WS_NORMAL);
    tu_cli_free(&c);
}

/* The reason of a close frame is checked as UTF-8 whatever the cut. */
static void test_close_reason_split(void **state)
{
    static const char *reasons[] = {"tr\xc3\xa8s bien \xe2\x9c\x93 ok", "bad \xc3\x28 reason"};
    static const int codes[] = {CORE_WS_NORMAL, CORE_WS_INVALID_DATA};
    static const size_t steps[] = {1, 2, 3, 4, 7};
    env_t *e = *state;

    for (size_t r = 0; r < 2; r++) {
        for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
            char payload[64], buf[80];
            size_t rl = strlen(reasons[r]), n;
            cli_t c;
            payload[0] = (char)(CORE_WS_NORMAL >> 8);
            payload[1] = (char)(CORE_WS_NORMAL & 0xff);
            memcpy(payload + 2, reasons[r], rl);
            n = frame_build(buf, 1, 1, "hi", 2, 1);
            n += frame_build(buf + n, 1, 8, payload, rl + 2, 1);
            e->closes = 0;
            ws_open(e, &c, 1);
            tu_cli_send_split(e->loop, &c, buf, n, steps[i]);
            expect_text(e, &c, "hi");
            expect_close(e, &c, codes[r]);
            tu_cli_free(&c);
        }
    }
}

static void test_close_by_server(void **state)
{
    env_t *e = *state;
    frame_t f;
    cli_t c;

    ws_open(e, &c, 0);
    send_text(&c, "close-me");
    wait_frame(e, &c, &f);
    assert_int_equal(close_code_of(&f), CORE_WS_NORMAL);
    assert_string_equal(f.payload + 2, "bye");
    free(f.payload);
    send_close(&c, CORE_WS_NORMAL, "");
    wait_eof(e, &c);
    assert_true(run_until(e, NULL, tu_done_no_conns, e->srv));
    assert_int_equal(e->close_code, CORE_WS_NORMAL);
    tu_cli_free(&c);
}

/* core_ws_close outside any callback, and sending after it. */
static void test_close_api(void **state)
{
    env_t *e = *state;
    core_ws_t *ws;
    cli_t c;

    ws_open(e, &c, 0);
    ws = e->ws;
    assert_int_equal(core_ws_send_text(ws, "first", 5), 0);
    core_ws_close(ws, CORE_WS_POLICY, "go away");
    core_ws_close(ws, CORE_WS_NORMAL, "twice"); /* no-op */
    assert_int_equal(core_ws_send_text(ws, "x", 1), -1);
    expect_text(e, &c, "first");
    expect_close(e, &c, CORE_WS_POLICY);
    tu_cli_free(&c);
}

static int done_closes(void *ctx, cli_t *c, const void *arg)
{
    (void)c;
    return ((env_t *)ctx)->closes >= *(const int *)arg;
}

static void test_idle_close(void **state)
{
    core_http_server_opts_t opts = {.ws_ping_interval = 0.05, .ws_idle_pings = 3};
    env_t *e = env_new(&opts);
    int pings = 0, one = 1;
    frame_t f;
    cli_t c, d;

    *state = e;
    ws_open(e, &c, 0);
    /* A client that answers every ping outlives several silent intervals. */
    ws_open(e, &d, 0);
    for (int i = 0; i < 8; i++) {
        wait_frame(e, &d, &f);
        assert_int_equal(f.op, 9);
        free(f.payload);
        send_frame(&d, 1, 10, "", 0);
    }
    /* The silent one got two pings, then a close, long before that. */
    assert_true(run_until(e, &c, tu_done_eof, NULL));
    while (frame_pop(&c, &f)) {
        if (f.op == 9)
            pings++;
        else
            assert_int_equal(close_code_of(&f), CORE_WS_GOING_AWAY);
        free(f.payload);
    }
    assert_int_equal(pings, 2);
    shutdown(c.fd, SHUT_WR);
    assert_true(run_until(e, NULL, done_closes, &one));
    assert_int_equal(e->close_code, CORE_WS_GOING_AWAY);
    assert_int_equal(core_http_server_conns(e->srv), 1);
    assert_false(d.eof);
    tu_cli_free(&c);
    tu_cli_free(&d);
}

/* The first ping follows the ping interval of silence by at most one sweep
 * period (<= 1 s), whenever the silence started: two clients whose last
 * input is half an interval apart both hear it within interval + 1.5 s (a
 * sweep once per interval would make one of them wait >= 1.5 intervals). */
static void test_ping_timing(void **state)
{
    core_http_server_opts_t opts = {.ws_ping_interval = 4.0, .ws_idle_pings = 3};
    env_t *e = env_new(&opts);
    cli_t c[2];
    uint64_t last_input[2];
    frame_t f;

    *state = e;
    for (int i = 0; i < 2; i++) {
        ws_open(e, &c[i], 0);
        if (i == 1) { /* let half an interval pass, serving the loop */
            uint64_t until = core_mono_ms() + 2000;
            while (core_mono_ms() < until)
                ev_run(e->loop, EVRUN_ONCE);
        }
        send_frame(&c[i], 1, 10, "", 0); /* a pong: input, no answer */
        last_input[i] = core_mono_ms();
    }
    for (int i = 0; i < 2; i++) {
        wait_frame(e, &c[i], &f);
        uint64_t silent = core_mono_ms() - last_input[i];
        assert_int_equal(f.op, 9);
        free(f.payload);
        if (silent < 3900 || silent > 5500)
            fail_msg("client %d pinged after %llu ms of silence (interval 4000)", i,
                     (unsigned long long)silent);
    }
    for (int i = 0; i < 2; i++)
        tu_cli_free(&c[i]);
}

/* A connection quiet for a whole sweep period holds no buffers: tens of
 * thousands of idle ones per node would otherwise keep one each. */
static void test_idle_buffers_released(void **state)
{
    core_http_server_opts_t opts = {.ws_ping_interval = 0.4, .ws_idle_pings = 3};
    env_t *e = env_new(&opts);
    cli_t c;
    frame_t f;

    *state = e;
    e->echo = 1;
    ws_open(e, &c, 0);
    send_frame(&c, 1, 1, "hello", 5);
    wait_frame(e, &c, &f);
    assert_int_equal(f.op, 1);
    free(f.payload);
    assert_true(core_ws_buffer_bytes(e->ws) > 0); /* the reply's output buffer, kept */
    uint64_t until = core_mono_ms() + 350; /* > 2 sweeps (0.1 s), before the first ping */
    while (core_mono_ms() < until)
        ev_run(e->loop, EVRUN_ONCE);
    assert_int_equal(core_ws_buffer_bytes(e->ws), 0);
    send_frame(&c, 1, 1, "again", 5); /* and it still works */
    wait_frame(e, &c, &f);
    assert_string_equal(f.payload, "again");
    free(f.payload);
    tu_cli_free(&c);
}

static int done_no_buffers(void *ctx, cli_t *c, const void *arg)
{
    env_t *e = ctx;

    (void)c;
    (void)arg;
    if (!e->ws)
        fail_msg("the connection closed (idle) before its buffers went back");
    return core_ws_buffer_bytes(e->ws) == 0;
}

/* Output to a client that sends nothing (a receiver; a ping) leaves no
 * buffer behind either, and before its next ping: the sweep looks only at
 * connections due, so output must bring one forward. Interval 1.2 s: 4
 * sweeps of 0.3 s, buffers back 2 sweeps after input, a ping after 5. */
static void test_quiet_output_buffers_released(void **state)
{
    core_http_server_opts_t opts = {.ws_ping_interval = 1.2, .ws_idle_pings = 3};
    env_t *e = env_new(&opts);
    cli_t c;
    frame_t f;

    *state = e;
    ws_open(e, &c, 0);
    assert_true(run_until(e, &c, done_no_buffers, NULL)); /* the upgrade answer's */
    assert_int_equal(core_ws_send_text(e->ws, "news", 4), 0);
    wait_frame(e, &c, &f);
    assert_string_equal(f.payload, "news");
    free(f.payload);
    assert_true(run_until(e, &c, done_no_buffers, NULL));
    assert_int_equal(c.in.len, 0); /* released before the first ping was due */
    wait_frame(e, &c, &f);
    assert_int_equal(f.op, 9);
    free(f.payload);
    assert_true(run_until(e, &c, done_no_buffers, NULL)); /* the ping's, the sweep after */
    assert_int_equal(c.in.len, 0);
    tu_cli_free(&c);
}

static void test_slow_reader_closed(void **state)
{
    core_http_server_opts_t opts = {.max_out = 64 * 1024};
    env_t *e = env_new(&opts);
    char msg[8192];
    int rc = 0, sent = 0;
    cli_t c;

    *state = e;
    memset(msg, 'm', sizeof(msg));
    ws_open(e, &c, 1);
    /* The client never reads: output backs up until the cap closes it. */
    for (int i = 0; i < 100000 && rc == 0; i++) {
        rc = core_ws_send_text(e->ws, msg, sizeof(msg));
        if (rc == 0) {
            sent++;
            assert_true(core_ws_out_pending(e->ws) <= opts.max_out);
        }
        ev_run(e->loop, EVRUN_NOWAIT);
    }
    assert_int_equal(rc, -1);
    assert_true(sent > 8);
    assert_true(run_until(e, NULL, tu_done_no_conns, e->srv));
    assert_int_equal(e->close_code, CORE_WS_POLICY);
    tu_cli_free(&c);
}

static void test_server_free_closes(void **state)
{
    env_t *e = *state;
    frame_t f;
    cli_t c;

    ws_open(e, &c, 0);
    core_http_server_free(e->srv);
    e->srv = NULL;
    assert_int_equal(e->closes, 1);
    assert_int_equal(e->close_code, CORE_WS_GOING_AWAY);
    wait_frame(e, &c, &f);
    assert_int_equal(close_code_of(&f), CORE_WS_GOING_AWAY);
    free(f.payload);
    wait_eof(e, &c);
    tu_cli_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handshake_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frames_with_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fragmented, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fragmented_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_big_fragmented, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ctx_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utf8_across_fragments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_pong, setup, teardown),
        cmocka_unit_test_teardown(test_ping_timing, teardown),
        cmocka_unit_test_teardown(test_idle_buffers_released, teardown),
        cmocka_unit_test_teardown(test_quiet_output_buffers_released, teardown),
        cmocka_unit_test_setup_teardown(test_unmasked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protocol_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_by_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_reason_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_by_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_api, setup, teardown),
        cmocka_unit_test_teardown(test_idle_close, teardown),
        cmocka_unit_test_teardown(test_slow_reader_closed, teardown),
        cmocka_unit_test_setup_teardown(test_server_free_closes, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
