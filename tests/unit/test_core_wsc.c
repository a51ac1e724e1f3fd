/* Tests for the WebSocket client (core/wsc.c) against the WebSocket server
 * (core/ws.c), both on one libev loop over real TCP on 127.0.0.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core.h"
#include "test_util.h"

#define BIG 70000

typedef struct env {
    struct ev_loop *loop;
    core_http_server_t *srv;
    char url[128];
    /* server side */
    int srv_opens, srv_closes, srv_code;
    core_buf_t srv_got;
    /* client side */
    core_wsc_t *wsc;
    int opens, closes, code;
    char why[128];
    core_buf_t got; /* messages, each followed by '\n' */
    int nmsgs;
    size_t last_len;
} env_t;

/* ------------------------------------------------------------------ server */

static void srv_on_open(core_ws_t *ws, void *ud)
{
    env_t *e = ud;

    e->srv_opens++;
    /* Goes out right behind the 101, often in the same segment. */
    assert_int_equal(core_ws_send_text(ws, "welcome", 7), 0);
}

static void srv_on_text(core_ws_t *ws, const char *msg, size_t len, void *ud)
{
    env_t *e = ud;
    static char big[BIG];

    core_buf_append(&e->srv_got, msg, len);
    core_buf_append(&e->srv_got, "\n", 1);
    if (len == 8 && memcmp(msg, "close-me", 8) == 0) {
        core_ws_close(ws, CORE_WS_NORMAL, "bye");
    } else if (len == 3 && memcmp(msg, "big", 3) == 0) {
        memset(big, 'B', sizeof(big));
        assert_int_equal(core_ws_send_text(ws, big, sizeof(big)), 0);
    } else {
        assert_int_equal(core_ws_send_text(ws, msg, len), 0);
    }
}

static void srv_on_close(core_ws_t *ws, int code, void *ud)
{
    env_t *e = ud;

    (void)ws;
    e->srv_closes++;
    e->srv_code = code;
}

/* ------------------------------------------------------------------ client */

static void cli_on_open(core_wsc_t *c, void *ud)
{
    env_t *e = ud;

    assert_ptr_equal(c, e->wsc);
    e->opens++;
}

static void cli_on_text(core_wsc_t *c, const char *msg, size_t len, void *ud)
{
    env_t *e = ud;

    (void)c;
    e->nmsgs++;
    e->last_len = len;
    if (len < 1000) {
        core_buf_append(&e->got, msg, len);
        core_buf_append(&e->got, "\n", 1);
    }
}

static void cli_on_close(core_wsc_t *c, int code, const char *why, void *ud)
{
    env_t *e = ud;

    assert_ptr_equal(c, e->wsc);
    e->closes++;
    e->code = code;
    snprintf(e->why, sizeof(e->why), "%s", why);
    e->wsc = NULL;
}

static const core_wsc_cbs_t cli_cbs = {cli_on_open, cli_on_text, cli_on_close};

/* ------------------------------------------------------------------ helpers */

static int setup(void **state)
{
    static const core_http_server_cbs_t cbs = {.ws_path = "/ws",
                                               .on_ws_open = srv_on_open,
                                               .on_ws_text = srv_on_text,
                                               .on_ws_close = srv_on_close};
    env_t *e = calloc(1, sizeof(*e));
    char err[128];

    assert_non_null(e);
    core_log_set_level(CORE_LOG_ERROR);
    e->loop = ev_loop_new(EVFLAG_AUTO);
    core_buf_init(&e->srv_got);
    core_buf_init(&e->got);
    e->srv = core_http_server_new(e->loop, "127.0.0.1", 0, NULL, &cbs, e, err, sizeof(err));
    assert_non_null(e->srv);
    snprintf(e->url, sizeof(e->url), "ws://127.0.0.1:%d/ws", core_http_server_port(e->srv));
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env_t *e = *state;

    if (e->wsc)
        core_wsc_close(e->wsc, CORE_WS_GOING_AWAY);
    core_http_server_free(e->srv);
    ev_run(e->loop, 0); /* until every conn finished closing */
    assert_null(e->wsc);
    ev_loop_destroy(e->loop);
    core_buf_free(&e->srv_got);
    core_buf_free(&e->got);
    free(e);
    return 0;
}

static void run_until(env_t *e, const int *flag, int want)
{
    tu_wait_flag(e->loop, flag, want);
}

static void connect_to(env_t *e, const char *url)
{
    char err[128];

    e->wsc = core_wsc_connect(e->loop, url, NULL, &cli_cbs, e, err, sizeof(err));
    assert_non_null(e->wsc);
}

static void open_client(env_t *e)
{
    connect_to(e, e->url);
    assert_int_equal(core_wsc_send_text(e->wsc, "early", 5), -1); /* not open yet */
    run_until(e, &e->opens, 1);
    run_until(e, &e->nmsgs, 1);
    assert_string_equal(e->got.data, "welcome\n");
}

/* ------------------------------------------------------------------ tests */

static void test_send_receive(void **state)
{
    env_t *e = *state;

    open_client(e);
    assert_int_equal(core_wsc_send_text(e->wsc, "one", 3), 0);
    assert_int_equal(core_wsc_send_text(e->wsc, "{\"action\":\"ping\"}", 17), 0);
    assert_int_equal(core_wsc_send_text(e->wsc, "", 0), 0);
    assert_int_equal(core_wsc_send_text(e->wsc, "tr\xc3\xa8s", 5), 0);
    run_until(e, &e->nmsgs, 5);
    assert_string_equal(e->got.data, "welcome\none\n{\"action\":\"ping\"}\n\ntr\xc3\xa8s\n");
    assert_string_equal(e->srv_got.data, "one\n{\"action\":\"ping\"}\n\ntr\xc3\xa8s\n");
    assert_int_equal(e->closes, 0);
}

static void test_large_messages(void **state)
{
    env_t *e = *state;
    char *msg = malloc(CORE_WS_MAX_MESSAGE);

    assert_non_null(msg);
    memset(msg, 'm', CORE_WS_MAX_MESSAGE);
    open_client(e);
    /* 64 KiB up (the server's limit), and 70000 bytes down. */
    assert_int_equal(core_wsc_send_text(e->wsc, msg, CORE_WS_MAX_MESSAGE), 0);
    run_until(e, &e->nmsgs, 2);
    assert_int_equal(e->last_len, CORE_WS_MAX_MESSAGE);
    assert_int_equal(core_wsc_send_text(e->wsc, "big", 3), 0);
    run_until(e, &e->nmsgs, 3);
    assert_int_equal(e->last_len, BIG);
    free(msg);
}

static void test_client_close(void **state)
{
    env_t *e = *state;

    open_client(e);
    core_wsc_close(e->wsc, CORE_WS_NORMAL);
    run_until(e, &e->closes, 1);
    assert_int_equal(e->code, CORE_WS_NORMAL);
    run_until(e, &e->srv_closes, 1);
    assert_int_equal(e->srv_code, CORE_WS_NORMAL);
}

static void test_server_close(void **state)
{
    env_t *e = *state;

    open_client(e);
    assert_int_equal(core_wsc_send_text(e->wsc, "close-me", 8), 0);
    run_until(e, &e->closes, 1);
    assert_int_equal(e->code, CORE_WS_NORMAL);
    assert_string_equal(e->why, "closed by server");
    run_until(e, &e->srv_closes, 1);
    assert_int_equal(e->srv_code, CORE_WS_NORMAL);
}

static void test_too_big_for_server(void **state)
{
    env_t *e = *state;
    char *msg = malloc(CORE_WS_MAX_MESSAGE + 1);

    assert_non_null(msg);
    memset(msg, 'm', CORE_WS_MAX_MESSAGE + 1);
    open_client(e);
    assert_int_equal(core_wsc_send_text(e->wsc, msg, CORE_WS_MAX_MESSAGE + 1), 0);
    run_until(e, &e->closes, 1);
    assert_int_equal(e->code, CORE_WS_TOO_BIG);
    run_until(e, &e->srv_closes, 1);
    assert_int_equal(e->srv_code, CORE_WS_TOO_BIG);
    free(msg);
}

static void test_server_gone(void **state)
{
    env_t *e = *state;

    open_client(e);
    core_http_server_free(e->srv);
    e->srv = NULL;
    run_until(e, &e->closes, 1);
    assert_int_equal(e->code, CORE_WS_GOING_AWAY);
    assert_int_equal(e->srv_closes, 1);
    assert_int_equal(e->closes, 1);
}

static void on_accept_drop(struct ev_loop *loop, int fd, const char *peer, void *ud)
{
    int *accepted = ud;

    (void)loop;
    (void)peer;
    close(fd);
    (*accepted)++;
}

static void test_connection_lost(void **state)
{
    env_t *e = *state;
    int accepted = 0;
    char err[128], url[64];
    core_listener_t *l = core_listener_new(e->loop, "127.0.0.1", 0, on_accept_drop, &accepted,
                                           err, sizeof(err));

    assert_non_null(l);
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws", core_listener_port(l));
    connect_to(e, url);
    run_until(e, &e->closes, 1);
    assert_int_equal(accepted, 1);
    assert_int_equal(e->code, 1006);
    assert_int_equal(e->opens, 0);
    assert_non_null(strstr(e->why, "handshake"));
    /* Nothing listening there any more: connection refused. */
    core_listener_free(l);
    connect_to(e, url);
    run_until(e, &e->closes, 2);
    assert_int_equal(e->code, 1006);
    assert_int_equal(e->opens, 0);
}

static void test_handshake_refused(void **state)
{
    env_t *e = *state;
    char url[128];

    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/other?x=1", core_http_server_port(e->srv));
    connect_to(e, url);
    run_until(e, &e->closes, 1);
    assert_int_equal(e->code, 1006);
    assert_non_null(strstr(e->why, "404"));
    assert_int_equal(e->opens, 0);
    assert_int_equal(e->srv_opens, 0);
}

static void test_bad_urls(void **state)
{
    static const char *bad[] = {
        NULL, "", "http://127.0.0.1:80/", "ws://", "ws://:80/x", "ws://127.0.0.1:0/",
        "ws://127.0.0.1:70000/", "ws://127.0.0.1:80/a b", "ws://127.0.0.1:80/a\r\nX: y",
    };
    env_t *e = *state;
    char err[128];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_null(core_wsc_connect(e->loop, bad[i], NULL, &cli_cbs, e, err, sizeof(err)));
        assert_true(err[0] != '\0');
    }
}

static void test_close_during_handshake(void **state)
{
    env_t *e = *state;

    connect_to(e, e->url);
    core_wsc_close(e->wsc, CORE_WS_NORMAL);
    run_until(e, &e->closes, 1);
    assert_int_equal(e->opens, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_send_receive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_big_for_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_urls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_during_handshake, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
