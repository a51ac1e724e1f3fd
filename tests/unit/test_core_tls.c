/* Tests for TLS in core (core/tls.c, the TLS glue of core/conn.c, https and
 * wss in core/http.c and core/wsc.c) over real TCP on 127.0.0.1, with
 * certificates made by scripts/tls-ca.sh (openssl) in a temp dir: CA "a"
 * signs "server" (127.0.0.1, ::1, localhost) and "other" (other.example);
 * CA "b" is a stranger. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "core/core.h"
#include "test_util.h"

#ifndef TLS_CA_SCRIPT
#error "TLS_CA_SCRIPT (scripts/tls-ca.sh) must be defined by the build"
#endif

#define BULK (1024 * 1024)

static char g_dir[256];

/* ------------------------------------------------------------------ env */

typedef struct env {
    struct ev_loop *loop;
    core_tls_t *srv_tls, *cli_tls;
    core_http_server_t *srv;
    int port;
    /* ws client */
    core_wsc_t *wsc;
    int opens, closes, code;
    char why[256];
    core_buf_t got;
    /* raw conn client */
    core_conn_t *conn;
    core_buf_t raw_in;
    int raw_closed;
    char raw_tls_err[256];
} env_t;

static void srv_on_request(core_http_req_t *req, void *ud)
{
    (void)ud;
    core_http_respond(req, 200, "text/plain", "pong-body", 9);
}

static void srv_on_ws_text(core_ws_t *ws, const char *msg, size_t len, void *ud)
{
    (void)ud;
    assert_int_equal(core_ws_send_text(ws, msg, len), 0);
}

static void cli_on_open(core_wsc_t *c, void *ud)
{
    env_t *e = ud;

    (void)c;
    e->opens++;
}

static void cli_on_text(core_wsc_t *c, const char *msg, size_t len, void *ud)
{
    env_t *e = ud;

    (void)c;
    core_buf_append(&e->got, msg, len);
}

static void cli_on_close(core_wsc_t *c, int code, const char *why, void *ud)
{
    env_t *e = ud;

    (void)c;
    e->closes++;
    e->code = code;
    snprintf(e->why, sizeof(e->why), "%s", why);
    e->wsc = NULL;
}

static const core_wsc_cbs_t cli_cbs = {cli_on_open, cli_on_text, cli_on_close};

static core_tls_t *server_ctx(const char *name)
{
    char cert[300], key[300], err[256];
    core_tls_t *t;

    snprintf(cert, sizeof(cert), "%s/a/%s.pem", g_dir, name);
    snprintf(key, sizeof(key), "%s/a/%s.key", g_dir, name);
    t = core_tls_server_new(cert, key, err, sizeof(err));
    if (!t)
        fail_msg("server context: %s", err);
    return t;
}

static core_tls_t *client_ctx(const char *ca_dir)
{
    char ca[300], err[256];
    core_tls_t *t;

    snprintf(ca, sizeof(ca), "%s/%s/ca.pem", g_dir, ca_dir);
    t = core_tls_client_new(ca, err, sizeof(err));
    if (!t)
        fail_msg("client context: %s", err);
    return t;
}

/* An https/wss server with the given certificate; the client trusts ca_dir. */
static env_t *env_new(const char *cert_name, const char *ca_dir)
{
    static const core_http_server_cbs_t cbs = {.on_request = srv_on_request,
                                               .ws_path = "/ws",
                                               .on_ws_text = srv_on_ws_text};
    env_t *e = calloc(1, sizeof(*e));
    core_http_server_opts_t opts = {0};
    char err[128];

    assert_non_null(e);
    e->loop = ev_loop_new(EVFLAG_AUTO);
    e->srv_tls = server_ctx(cert_name);
    e->cli_tls = client_ctx(ca_dir);
    opts.tls = e->srv_tls;
    e->srv = core_http_server_new(e->loop, "127.0.0.1", 0, &opts, &cbs, e, err, sizeof(err));
    assert_non_null(e->srv);
    e->port = core_http_server_port(e->srv);
    core_buf_init(&e->got);
    core_buf_init(&e->raw_in);
    return e;
}

static void env_free(env_t *e)
{
    if (e->wsc)
        core_wsc_close(e->wsc, CORE_WS_GOING_AWAY);
    if (e->conn)
        core_conn_abort(e->conn);
    core_http_server_free(e->srv);
    ev_run(e->loop, 0);
    assert_null(e->wsc);
    ev_loop_destroy(e->loop);
    core_tls_free(e->srv_tls);
    core_tls_free(e->cli_tls);
    core_buf_free(&e->got);
    core_buf_free(&e->raw_in);
    free(e);
}

static void wss_connect(env_t *e, const char *host)
{
    char url[128], err[256];

    snprintf(url, sizeof(url), "wss://%s:%d/ws", host, e->port);
    e->wsc = core_wsc_connect(e->loop, url, e->cli_tls, &cli_cbs, e, err, sizeof(err));
    if (!e->wsc)
        fail_msg("connect %s: %s", url, err);
}

/* ------------------------------------------------------------------ raw TLS conn */

static long raw_on_read(core_conn_t *c, const char *data, size_t len, void *ud)
{
    env_t *e = ud;

    (void)c;
    core_buf_append(&e->raw_in, data, len);
    return (long)len;
}

static void raw_on_close(core_conn_t *c, void *ud)
{
    env_t *e = ud;

    snprintf(e->raw_tls_err, sizeof(e->raw_tls_err), "%s", core_conn_tls_error(c));
    e->raw_closed = 1;
    e->conn = NULL;
}

static const core_conn_cbs_t raw_cbs = {.on_read = raw_on_read, .on_close = raw_on_close};

/* ------------------------------------------------------------------ tests */

static void test_wss_echo(void **state)
{
    env_t *e = env_new("server", "a");
    static char big[60000];

    (void)state;
    wss_connect(e, "127.0.0.1");
    tu_wait_flag(e->loop, &e->opens, 1);
    assert_int_equal(core_wsc_send_text(e->wsc, "hello", 5), 0);
    tu_wait_len(e->loop, &e->got, 5);
    assert_memory_equal(e->got.data, "hello", 5);
    /* a message over several TLS records, both ways */
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    core_buf_reset(&e->got);
    assert_int_equal(core_wsc_send_text(e->wsc, big, sizeof(big)), 0);
    tu_wait_len(e->loop, &e->got, sizeof(big));
    assert_int_equal(e->got.len, sizeof(big));
    assert_memory_equal(e->got.data, big, sizeof(big));
    core_wsc_close(e->wsc, CORE_WS_NORMAL);
    tu_wait_flag(e->loop, &e->closes, 1);
    env_free(e);
}

static void test_wss_by_name(void **state)
{
    env_t *e = env_new("server", "a");

    (void)state;
    wss_connect(e, "localhost"); /* DNS name checked (and sent as SNI) */
    tu_wait_flag(e->loop, &e->opens, 1);
    env_free(e);
}

/* A plain HTTP request over TLS, written before the handshake finished. */
static void test_https_request_held_until_handshake(void **state)
{
    env_t *e = env_new("server", "a");
    const char *req = "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

    (void)state;
    e->conn = core_conn_connect(e->loop, "127.0.0.1", e->port, NULL, &raw_cbs, e);
    assert_non_null(e->conn);
    assert_int_equal(core_conn_start_tls(e->conn, e->cli_tls, "127.0.0.1"), 0);
    assert_int_equal(core_conn_write(e->conn, req, strlen(req)), 0);
    tu_wait_flag(e->loop, &e->raw_closed, 1);
    assert_string_equal(e->raw_tls_err, "");
    assert_non_null(strstr(e->raw_in.data ? e->raw_in.data : "", "HTTP/1.1 200"));
    assert_non_null(strstr(e->raw_in.data, "pong-body"));
    env_free(e);
}

/* A conn-level echo of 1 MiB in 64 KiB writes through adopt + start_tls. */
typedef struct echo_srv {
    env_t *e;
    core_tls_t *tls;
    core_conn_t *conn;
} echo_srv_t;

static long echo_on_read(core_conn_t *c, const char *data, size_t len, void *ud)
{
    (void)ud;
    return core_conn_write(c, data, len) == 0 ? (long)len : -1;
}

static void echo_on_close(core_conn_t *c, void *ud)
{
    echo_srv_t *s = ud;

    (void)c;
    s->conn = NULL;
}

static const core_conn_cbs_t echo_cbs = {.on_read = echo_on_read, .on_close = echo_on_close};

static void echo_accept(struct ev_loop *loop, int fd, const char *peer, void *ud)
{
    echo_srv_t *s = ud;

    s->conn = core_conn_adopt(loop, fd, peer, NULL, &echo_cbs, s);
    assert_non_null(s->conn);
    assert_int_equal(core_conn_start_tls(s->conn, s->tls, NULL), 0);
}

static void test_conn_bulk_echo(void **state)
{
    env_t *e = env_new("server", "a");
    echo_srv_t s = {.e = e, .tls = e->srv_tls};
    char err[128];
    core_listener_t *l = core_listener_new(e->loop, "127.0.0.1", 0, echo_accept, &s, err,
                                           sizeof(err));
    char *chunk = malloc(65536);

    (void)state;
    assert_non_null(l);
    e->conn = core_conn_connect(e->loop, "127.0.0.1", core_listener_port(l), NULL, &raw_cbs, e);
    assert_non_null(e->conn);
    assert_int_equal(core_conn_start_tls(e->conn, e->cli_tls, "127.0.0.1"), 0);
    for (size_t off = 0; off < BULK; off += 65536) {
        for (size_t i = 0; i < 65536; i++)
            chunk[i] = (char)((off + i) * 7 % 251);
        assert_int_equal(core_conn_write(e->conn, chunk, 65536), 0);
        ev_run(e->loop, EVRUN_NOWAIT);
    }
    tu_wait_len(e->loop, &e->raw_in, BULK);
    assert_int_equal(e->raw_in.len, BULK);
    for (size_t i = 0; i < BULK; i++)
        if (e->raw_in.data[i] != (char)(i * 7 % 251))
            fail_msg("byte %zu differs", i);
    core_conn_close(e->conn);
    tu_wait_flag(e->loop, &e->raw_closed, 1);
    assert_string_equal(e->raw_tls_err, "");
    core_listener_free(l);
    if (s.conn)
        core_conn_abort(s.conn);
    env_free(e);
    free(chunk);
}

static void expect_verify_failure(const char *cert, const char *ca, const char *host)
{
    env_t *e = env_new(cert, ca);

    wss_connect(e, host);
    tu_wait_flag(e->loop, &e->closes, 1);
    assert_int_equal(e->opens, 0);
    assert_int_equal(e->code, 1015);
    if (!strstr(e->why, "certificate verify failed"))
        fail_msg("why: %s", e->why);
    env_free(e);
}

static void test_unknown_ca_refused(void **state)
{
    (void)state;
    expect_verify_failure("server", "b", "127.0.0.1");
}

static void test_wrong_name_refused(void **state)
{
    (void)state;
    expect_verify_failure("other", "a", "127.0.0.1"); /* signed by a, for other.example */
    expect_verify_failure("other", "a", "localhost"); /* a DNS name it does not carry */
}

/* Plain bytes to the TLS port: closed, and the server keeps serving. */
static int raw_closed(void *ctx, tu_cli_t *c, const void *arg)
{
    (void)ctx;
    (void)arg;
    return c->eof;
}

static void test_plaintext_to_tls_port(void **state)
{
    env_t *e = env_new("server", "a");
    char url[128], err[128];
    tu_cli_t c;

    (void)state;
    tu_cli_tcp(&c, e->port);
    tu_cli_sends(&c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(tu_run_until(e->loop, e, &c, raw_closed, NULL));
    assert_null(strstr(c.in.data ? c.in.data : "", "HTTP/1.1")); /* no plaintext answer */
    tu_cli_free(&c);
    /* a ws:// client cannot even start its handshake */
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws", e->port);
    e->wsc = core_wsc_connect(e->loop, url, NULL, &cli_cbs, e, err, sizeof(err));
    assert_non_null(e->wsc);
    tu_wait_flag(e->loop, &e->closes, 1);
    assert_int_equal(e->opens, 0);
    wss_connect(e, "127.0.0.1");
    tu_wait_flag(e->loop, &e->opens, 1);
    env_free(e);
}

/* A blocking OpenSSL client on a thread, limited to one protocol version. */
typedef struct version_probe {
    int port, version, done, ok;
} version_probe_t;

static void *probe_run(void *arg)
{
    version_probe_t *p = arg;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl;
    int fd = tu_tcp_connect(p->port, 0);

    /* security level 0 lets this client offer TLS 1.1 at all */
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_cipher_list(ctx, "DEFAULT@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(ctx, p->version);
    SSL_CTX_set_max_proto_version(ctx, p->version);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    p->ok = SSL_connect(ssl) == 1;
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    __atomic_store_n(&p->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static int probe_done(void *ctx, tu_cli_t *c, const void *arg)
{
    (void)c;
    (void)arg;
    return __atomic_load_n(&((version_probe_t *)ctx)->done, __ATOMIC_SEQ_CST);
}

static int probe_version(env_t *e, int version)
{
    version_probe_t p = {.port = e->port, .version = version};
    pthread_t t;

    assert_int_equal(pthread_create(&t, NULL, probe_run, &p), 0);
    assert_true(tu_run_until(e->loop, &p, NULL, probe_done, NULL));
    pthread_join(t, NULL);
    return p.ok;
}

static void test_old_protocols_refused(void **state)
{
    env_t *e = env_new("server", "a");

    (void)state;
    assert_true(probe_version(e, TLS1_3_VERSION));
    assert_true(probe_version(e, TLS1_2_VERSION));
    assert_false(probe_version(e, TLS1_1_VERSION));
    assert_false(probe_version(e, TLS1_VERSION));
    env_free(e);
}

static void test_context_errors(void **state)
{
    char cert[300], key[300], other_key[300], err[256];
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    core_tls_t *cli;

    (void)state;
    snprintf(cert, sizeof(cert), "%s/a/server.pem", g_dir);
    snprintf(key, sizeof(key), "%s/a/server.key", g_dir);
    snprintf(other_key, sizeof(other_key), "%s/a/other.key", g_dir);
    assert_null(core_tls_server_new("/nonexistent.pem", key, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent.pem"));
    assert_null(core_tls_server_new(cert, "/nonexistent.key", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent.key"));
    assert_null(core_tls_server_new(cert, other_key, err, sizeof(err)));
    if (!strstr(err, "mismatch") && !strstr(err, "does not match"))
        fail_msg("key mismatch reported as: %s", err);
    assert_null(core_tls_server_new(cert, "", err, sizeof(err)));
    assert_null(core_tls_client_new("/nonexistent-ca.pem", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent-ca.pem"));
    /* the key is no CA file: nothing in it is a certificate */
    assert_null(core_tls_client_new(key, err, sizeof(err)));
    /* wss needs a client context */
    assert_null(core_wsc_connect(loop, "wss://127.0.0.1:1/ws", NULL, &cli_cbs, NULL, err,
                                 sizeof(err)));
    assert_non_null(strstr(err, "TLS client context"));
    cli = core_tls_server_new(cert, key, err, sizeof(err));
    assert_non_null(cli);
    assert_null(core_wsc_connect(loop, "wss://127.0.0.1:1/ws", cli, &cli_cbs, NULL, err,
                                 sizeof(err)));
    core_tls_free(cli);
    ev_loop_destroy(loop);
}

/* ------------------------------------------------------------------ main */

static int make_certs(void **state)
{
    char cmd[1024];

    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/test_core_tls.XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(cmd, sizeof(cmd),
             "%s %s/a server >/dev/null && %s %s/a other other.example >/dev/null && "
             "%s %s/b server >/dev/null",
             TLS_CA_SCRIPT, g_dir, TLS_CA_SCRIPT, g_dir, TLS_CA_SCRIPT, g_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot make certificates: %s\n", cmd);
        return -1;
    }
    core_log_set_level(CORE_LOG_ERROR);
    return 0;
}

static int remove_certs(void **state)
{
    (void)state;
    tu_rm_tree(g_dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wss_echo),
        cmocka_unit_test(test_wss_by_name),
        cmocka_unit_test(test_https_request_held_until_handshake),
        cmocka_unit_test(test_conn_bulk_echo),
        cmocka_unit_test(test_unknown_ca_refused),
        cmocka_unit_test(test_wrong_name_refused),
        cmocka_unit_test(test_plaintext_to_tls_port),
        cmocka_unit_test(test_old_protocols_refused),
        cmocka_unit_test(test_context_errors),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
