/* core/wsc.c: the WebSocket client (interactive client, load generator,
 * tests): ws://host:port/path or wss:// (TLS, verified), RFC 6455 handshake checked with
 * http-parser, then a wslay client context (frames masked with libsodium
 * randomness).
 */
#include "core/http_int.h"

#include <errno.h>
#include <http_parser.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#define WSC_MAX_HANDSHAKE (16 * 1024)
#define WSC_MAX_OUT (4 * 1024 * 1024)
#define WSC_MAX_IN (1024 * 1024)

enum { WSC_HANDSHAKE, WSC_OPEN, WSC_CLOSED };
enum { HDR_NONE, HDR_FIELD, HDR_VALUE };

struct core_wsc {
    core_conn_t *conn;
    core_wsc_cbs_t cbs;
    void *ud;
    int state;
    char accept[32]; /* the Sec-WebSocket-Accept we expect */
    /* handshake response parsing */
    http_parser parser;
    size_t hs_bytes;
    int hdr_state;
    core_buf_t hname, hval;
    int got_upgrade, got_connection, got_accept, hs_done;
    /* WebSocket */
    wslay_event_context_ptr ctx;
    const char *in;
    size_t in_len;
    int close_code;
    char why[192];
};

/* ------------------------------------------------------------------ helpers */

static void wsc_set_why(core_wsc_t *c, int code, const char *why)
{
    if (c->why[0])
        return; /* the first reason is the real one */
    c->close_code = code;
    core_copy_trunc(c->why, sizeof(c->why), why);
}

/* Ends the session: on_close follows from the conn's on_close. */
static void wsc_fail(core_wsc_t *c, int code, const char *why)
{
    wsc_set_why(c, code, why);
    c->state = WSC_CLOSED;
    core_conn_abort(c->conn);
}

/* ------------------------------------------------------------------ wslay glue */

static ssize_t wsc_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                           void *user_data)
{
    core_wsc_t *c = user_data;
    size_t n = c->in_len < len ? c->in_len : len;

    (void)flags;
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    memcpy(buf, c->in, n);
    c->in += n;
    c->in_len -= n;
    return (ssize_t)n;
}

static ssize_t wsc_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                           int flags, void *user_data)
{
    core_wsc_t *c = user_data;

    (void)flags;
    if (core_conn_write(c->conn, data, len) < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static int wsc_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user_data)
{
    (void)ctx;
    (void)user_data;
    randombytes_buf(buf, len);
    return 0;
}

static void wsc_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                       void *user_data)
{
    core_wsc_t *c = user_data;

    (void)ctx;
    if (c->state != WSC_OPEN)
        return;
    if (arg->opcode == WSLAY_TEXT_FRAME && c->cbs.on_text)
        c->cbs.on_text(c, (const char *)arg->msg, arg->msg_length, c->ud);
}

static const struct wslay_event_callbacks wsc_callbacks = {
    .recv_callback = wsc_recv_cb,
    .send_callback = wsc_send_cb,
    .genmask_callback = wsc_genmask_cb,
    .on_msg_recv_callback = wsc_on_msg,
};

/* After wslay stopped reading (close received or a protocol error). */
static void wsc_finish_wslay(core_wsc_t *c)
{
    if (wslay_event_get_close_received(c->ctx))
        wsc_set_why(c, wslay_event_get_status_code_received(c->ctx), "closed by server");
    else
        wsc_set_why(c, wslay_event_get_status_code_sent(c->ctx), "protocol error");
    c->state = WSC_CLOSED;
    core_conn_close(c->conn);
}

static void wsc_feed_ws(core_wsc_t *c, const char *data, size_t len)
{
    int rv;

    c->in = data;
    c->in_len = len;
    rv = wslay_event_recv(c->ctx);
    c->in = NULL;
    c->in_len = 0;
    if (c->state != WSC_OPEN)
        return; /* closed from a callback */
    if (rv != 0 || wslay_event_send(c->ctx) != 0) {
        wsc_fail(c, 1006, "connection failed");
        return;
    }
    if (!wslay_event_get_read_enabled(c->ctx))
        wsc_finish_wslay(c);
}

/* ------------------------------------------------------------------ handshake */

static void wsc_header_done(core_wsc_t *c)
{
    const char *name = c->hname.data ? c->hname.data : "";
    const char *value = c->hval.data ? c->hval.data : "";

    if (strcasecmp(name, "Upgrade") == 0 && strcasecmp(value, "websocket") == 0)
        c->got_upgrade = 1;
    else if (strcasecmp(name, "Connection") == 0 && core__header_has_token(value, "upgrade"))
        c->got_connection = 1;
    else if (strcasecmp(name, "Sec-WebSocket-Accept") == 0 && strcmp(value, c->accept) == 0)
        c->got_accept = 1;
    core_buf_reset(&c->hname);
    core_buf_reset(&c->hval);
}

static int wsc_on_header_field(http_parser *p, const char *at, size_t len)
{
    core_wsc_t *c = p->data;

    if (c->hdr_state == HDR_VALUE)
        wsc_header_done(c);
    c->hdr_state = HDR_FIELD;
    core_buf_append(&c->hname, at, len);
    return 0;
}

static int wsc_on_header_value(http_parser *p, const char *at, size_t len)
{
    core_wsc_t *c = p->data;

    c->hdr_state = HDR_VALUE;
    core_buf_append(&c->hval, at, len);
    return 0;
}

static int wsc_on_headers_complete(http_parser *p)
{
    core_wsc_t *c = p->data;

    if (c->hdr_state != HDR_NONE)
        wsc_header_done(c);
    c->hdr_state = HDR_NONE;
    return p->status_code == 101 ? 0 : -1;
}

static int wsc_on_message_complete(http_parser *p)
{
    core_wsc_t *c = p->data;

    c->hs_done = 1;
    return 0;
}

static const http_parser_settings wsc_parser_settings = {
    .on_header_field = wsc_on_header_field,
    .on_header_value = wsc_on_header_value,
    .on_headers_complete = wsc_on_headers_complete,
    .on_message_complete = wsc_on_message_complete,
};

static int wsc_open_session(core_wsc_t *c)
{
    core_buf_free(&c->hname);
    core_buf_free(&c->hval);
    if (wslay_event_context_client_init(&c->ctx, &wsc_callbacks, c) != 0) {
        c->ctx = NULL;
        return -1;
    }
    wslay_event_config_set_max_recv_msg_length(c->ctx, 16 * 1024 * 1024);
    c->state = WSC_OPEN;
    if (c->cbs.on_open)
        c->cbs.on_open(c, c->ud);
    return 0;
}

static void wsc_handshake_read(core_wsc_t *c, const char *data, size_t len)
{
    size_t n = http_parser_execute(&c->parser, &wsc_parser_settings, data, len);
    enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
    char why[96];

    c->hs_bytes += n;
    if (err != HPE_OK) {
        if (err == HPE_CB_headers_complete)
            snprintf(why, sizeof(why), "handshake refused: HTTP %u", c->parser.status_code);
        else
            snprintf(why, sizeof(why), "bad handshake response: %s", http_errno_name(err));
        wsc_fail(c, 1006, why);
        return;
    }
    if (!c->hs_done) {
        if (c->hs_bytes > WSC_MAX_HANDSHAKE)
            wsc_fail(c, 1006, "handshake response too large");
        return;
    }
    if (!c->got_upgrade || !c->got_connection || !c->got_accept) {
        wsc_fail(c, 1006, "handshake: bad Upgrade/Connection/Sec-WebSocket-Accept");
        return;
    }
    if (wsc_open_session(c) < 0) {
        wsc_fail(c, 1006, "out of memory");
        return;
    }
    if (c->state == WSC_OPEN && len > n)
        wsc_feed_ws(c, data + n, len - n);
}

/* ------------------------------------------------------------------ conn callbacks */

static long wsc_on_read(core_conn_t *conn, const char *data, size_t len, void *ud)
{
    core_wsc_t *c = ud;

    (void)conn;
    if (c->state == WSC_HANDSHAKE)
        wsc_handshake_read(c, data, len);
    else if (c->state == WSC_OPEN)
        wsc_feed_ws(c, data, len);
    return (long)len;
}

static void wsc_on_connect(core_conn_t *conn, int err, void *ud)
{
    core_wsc_t *c = ud;

    (void)conn;
    if (err != 0)
        wsc_set_why(c, 1006, strerror(err));
}

static void wsc_on_conn_close(core_conn_t *conn, void *ud)
{
    core_wsc_t *c = ud;
    const char *tls_err = core_conn_tls_error(conn);
    char why[192];

    if (tls_err[0]) {
        snprintf(why, sizeof(why), "TLS: %s", tls_err);
        wsc_set_why(c, 1015, why);
    }
    wsc_set_why(c, 1006, c->state == WSC_HANDSHAKE ? "connection closed during handshake"
                                                   : "connection closed");
    if (c->cbs.on_close)
        c->cbs.on_close(c, c->close_code, c->why, c->ud);
    wslay_event_context_free(c->ctx);
    core_buf_free(&c->hname);
    core_buf_free(&c->hval);
    free(c);
}

static const core_conn_cbs_t wsc_conn_cbs = {
    .on_read = wsc_on_read,
    .on_connect = wsc_on_connect,
    .on_close = wsc_on_conn_close,
};

/* ------------------------------------------------------------------ public */

static void wsc_queue_request(core_wsc_t *c, const char *host, int port, const char *path,
                              const char *key)
{
    core_buf_t req;

    core_buf_init(&req);
    core_buf_printf(&req,
                    "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n",
                    path, host, port, key);
    core_conn_write(c->conn, req.data, req.len);
    core_buf_free(&req);
}

core_wsc_t *core_wsc_connect(struct ev_loop *loop, const char *url, core_tls_t *tls,
                             const core_wsc_cbs_t *cbs, void *ud, char *err, size_t errlen)
{
    char host[256], path[1024], key[32];
    unsigned char raw[16];
    int port, secure = 0;
    core_conn_limits_t limits = {.max_in = WSC_MAX_IN, .max_out = WSC_MAX_OUT};
    core_wsc_t *c;

    if (core_parse_url(url, "wss", host, sizeof(host), &port, path, sizeof(path)) == 0) {
        secure = 1;
    } else if (core_parse_url(url, "ws", host, sizeof(host), &port, path, sizeof(path)) < 0) {
        if (err)
            snprintf(err, errlen, "bad WebSocket URL '%s' (want ws[s]://host:port/path)",
                     url ? url : "");
        return NULL;
    }
    if (secure && (!tls || core_tls_is_server(tls))) {
        if (err)
            snprintf(err, errlen, "%s: wss:// needs a TLS client context", url);
        return NULL;
    }
    if (sodium_init() < 0) {
        if (err)
            snprintf(err, errlen, "libsodium init failed");
        return NULL;
    }
    c = core_xcalloc(1, sizeof(*c));
    if (cbs)
        c->cbs = *cbs;
    c->ud = ud;
    c->state = WSC_HANDSHAKE;
    randombytes_buf(raw, sizeof(raw));
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
    if (core__ws_accept(key, c->accept) < 0)
        goto fail;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    c->conn = core_conn_connect(loop, host, port, &limits, &wsc_conn_cbs, c);
    if (!c->conn)
        goto fail;
    if (secure && core_conn_start_tls(c->conn, tls, host) < 0) {
        /* on_close (deferred) frees c; only the caller hears of it */
        c->cbs.on_close = NULL;
        core_conn_abort(c->conn);
        if (err)
            snprintf(err, errlen, "cannot start TLS to %s:%d", host, port);
        return NULL;
    }
    wsc_queue_request(c, host, port, path, key);
    return c;
fail:
    if (err)
        snprintf(err, errlen, "cannot connect to %s:%d", host, port);
    free(c);
    return NULL;
}

int core_wsc_send_text(core_wsc_t *c, const char *msg, size_t len)
{
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)msg, len};

    if (c->state != WSC_OPEN)
        return -1;
    if (wslay_event_queue_msg(c->ctx, &m) != 0 || wslay_event_send(c->ctx) != 0) {
        wsc_fail(c, 1006, "send failed");
        return -1;
    }
    return 0;
}

void core_wsc_close(core_wsc_t *c, int code)
{
    if (c->state == WSC_OPEN) {
        wslay_event_queue_close(c->ctx, (uint16_t)code, NULL, 0);
        wslay_event_send(c->ctx);
        wsc_set_why(c, code, "closed by client");
        c->state = WSC_CLOSED;
        core_conn_close(c->conn);
        return;
    }
    if (c->state == WSC_HANDSHAKE)
        wsc_fail(c, code, "closed by client");
}

void core_wsc_set_ud(core_wsc_t *c, void *ud)
{
    c->ud = ud;
}
