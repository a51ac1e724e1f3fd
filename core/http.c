/* core/http.c: the HTTP/1.1 server (http-parser 2.9) and WebSocket upgrade.
 *
 * One request at a time per connection: parsing pauses when a request is
 * complete and resumes once it was answered, so pipelined responses leave
 * in request order even when a handler answers later. Input that arrives
 * meanwhile is kept in a bounded backlog (the conn only re-delivers input
 * when new bytes arrive, so it cannot stay unconsumed there).
 */
#include "core/http_int.h"

#include <arpa/inet.h>
#include <http_parser.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <uthash.h>

#define HTTP_MAX_HEAD (16 * 1024)
#define HTTP_BACKLOG_SLACK (64 * 1024)
#define HTTP_OUT_SLACK 4096 /* room for control frames beyond max_out */
#define DEFAULT_MAX_BODY 65536
#define DEFAULT_MAX_OUT (4 * 1024 * 1024)
#define DEFAULT_PING_S 30.0
#define DEFAULT_IDLE_PINGS 3
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum { HDR_NONE, HDR_FIELD, HDR_VALUE };

struct core_http_req {
    core__http_conn_t *hc; /* NULL once the client is gone */
    const char *method;    /* static string from http-parser */
    core_buf_t url;
    core_buf_t hdrs; /* "name\0value\0" pairs */
    size_t nhdrs;
    char *path, *query;
    core_buf_t body;
    char peer[64];
    int keep_alive;
    int upgrade; /* the parser stopped at an Upgrade/CONNECT */
};

struct core__http_conn {
    core__peer_t base;
    core_conn_t *conn;
    core__http_conn_t *prev, *next;
    http_parser parser;
    core_http_req_t *req; /* being parsed, or waiting for its response */
    core_buf_t backlog;   /* input that arrived while a response was pending */
    int hdr_state;
    int err_status; /* answer for a parse failure a callback detected */
    int waiting;    /* req dispatched and not answered yet */
    int in_dispatch;
    int closing; /* no more requests on this connection */
    int upgraded;
    int heard;  /* input arrived since the last sweep */
    int silent; /* sweeps without input while no request was pending */
};

typedef enum { FEED_MORE, FEED_UPGRADED } feed_result_t;

static feed_result_t http_feed(core__http_conn_t *hc, const char *data, size_t len);

/* ------------------------------------------------------------------ requests */

static core_http_req_t *req_new(core__http_conn_t *hc)
{
    core_http_req_t *r = core_xcalloc(1, sizeof(*r));

    r->hc = hc;
    core_buf_init(&r->url);
    core_buf_init(&r->hdrs);
    core_buf_init(&r->body);
    core_copy_trunc(r->peer, sizeof(r->peer), core_conn_peer(hc->conn));
    return r;
}

static void req_free(core_http_req_t *r)
{
    if (!r)
        return;
    core_buf_free(&r->url);
    core_buf_free(&r->hdrs);
    core_buf_free(&r->body);
    free(r->path);
    free(r->query);
    free(r);
}

const char *core_http_req_method(const core_http_req_t *r)
{
    return r->method ? r->method : "";
}

const char *core_http_req_path(const core_http_req_t *r)
{
    return r->path ? r->path : "/";
}

const char *core_http_req_query(const core_http_req_t *r)
{
    return r->query ? r->query : "";
}

const char *core_http_req_header(const core_http_req_t *r, const char *name)
{
    const char *p = r->hdrs.data;
    const char *end = p ? p + r->hdrs.len : NULL;

    for (size_t i = 0; i < r->nhdrs && p < end; i++) {
        const char *value = p + strlen(p) + 1;
        if (value >= end)
            break;
        if (strcasecmp(p, name) == 0)
            return value;
        p = value + strlen(value) + 1;
    }
    return NULL;
}

const char *core_http_req_body(const core_http_req_t *r, size_t *len)
{
    if (len)
        *len = r->body.len;
    return r->body.data ? r->body.data : "";
}

const char *core_http_req_peer(const core_http_req_t *r)
{
    return r->peer;
}

/* ------------------------------------------------------------------ responses */

static void write_response(core__http_conn_t *hc, int status, const char *extra_headers,
                           const char *ctype, const char *body, size_t len, int keep_alive,
                           int head_only)
{
    core_buf_t out;

    if (!hc->conn)
        return;
    core_buf_init(&out);
    core_buf_printf(&out, "HTTP/1.1 %d %s\r\n", status, http_status_str((enum http_status)status));
    if (ctype)
        core_buf_printf(&out, "Content-Type: %s\r\n", ctype);
    core_buf_printf(&out, "Content-Length: %zu\r\n", len);
    if (!keep_alive)
        core_buf_append_str(&out, "Connection: close\r\n");
    else if (hc->parser.http_major == 1 && hc->parser.http_minor == 0)
        core_buf_append_str(&out, "Connection: keep-alive\r\n");
    if (extra_headers)
        core_buf_append_str(&out, extra_headers);
    core_buf_append_str(&out, "\r\n");
    if (!head_only && len > 0)
        core_buf_append(&out, body, len);
    core_conn_write(hc->conn, out.data, out.len);
    core_buf_free(&out);
}

/* A request that cannot be served: answer, then close the connection. */
static void http_fail(core__http_conn_t *hc, int status, const char *extra_headers)
{
    const char *text = http_status_str((enum http_status)status);

    write_response(hc, status, extra_headers, "text/plain", text, strlen(text), 0, 0);
    req_free(hc->req);
    hc->req = NULL;
    hc->waiting = 0;
    hc->closing = 1;
    core_buf_free(&hc->backlog);
    if (hc->conn)
        core_conn_close(hc->conn);
}

/* Parses what arrived while the last response was pending. */
static feed_result_t http_drain_backlog(core__http_conn_t *hc)
{
    core_buf_t pending = hc->backlog;
    feed_result_t res;

    core_buf_init(&hc->backlog);
    res = http_feed(hc, pending.data, pending.len);
    core_buf_free(&pending);
    return res;
}

static void http_conn_free(core__http_conn_t *hc);

void core_http_respond(core_http_req_t *r, int status, const char *content_type,
                       const char *body, size_t len)
{
    core_http_respond_headers(r, status, NULL, content_type, body, len);
}

void core_http_respond_headers(core_http_req_t *r, int status, const char *headers,
                               const char *content_type, const char *body, size_t len)
{
    core__http_conn_t *hc = r->hc;
    int keep;

    if (!hc) { /* the client went away: drop the answer */
        req_free(r);
        return;
    }
    keep = r->keep_alive && !r->upgrade && !hc->closing;
    write_response(hc, status, headers, content_type, body ? body : "", body ? len : 0, keep,
                   r->method && strcmp(r->method, "HEAD") == 0);
    hc->req = NULL;
    hc->waiting = 0;
    req_free(r);
    if (!keep) {
        hc->closing = 1;
        core_buf_free(&hc->backlog);
        if (hc->conn)
            core_conn_close(hc->conn);
        return;
    }
    if (!hc->in_dispatch && hc->backlog.len > 0 && http_drain_backlog(hc) == FEED_UPGRADED)
        http_conn_free(hc);
}

/* ------------------------------------------------------------------ WebSocket handshake */

int core__header_has_token(const char *value, const char *token)
{
    size_t tl = strlen(token);

    for (const char *p = value; p && *p;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t t = n;
        while (t > 0 && (p[t - 1] == ' ' || p[t - 1] == '\t'))
            t--;
        if (t == tl && strncasecmp(p, token, tl) == 0)
            return 1;
        p += n;
    }
    return 0;
}

/* A Sec-WebSocket-Key must be 16 bytes in base64: 22 symbols and "==". */
static int ws_key_valid(const char *key)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    if (!key || strlen(key) != 24 || strcmp(key + 22, "==") != 0)
        return 0;
    for (int i = 0; i < 22; i++)
        if (!strchr(b64, key[i]))
            return 0;
    return 1;
}

/* accept = base64(SHA1(key + GUID)); out needs 29 bytes. */
int core__ws_accept(const char *key, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char joined[128];
    int n = snprintf(joined, sizeof(joined), "%s%s", key, WS_GUID);

    if (n < 0 || (size_t)n >= sizeof(joined))
        return -1;
    if (!EVP_Digest(joined, (size_t)n, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, md, 20);
    return 0;
}

static int ws_handshake_status(const core__http_conn_t *hc, const core_http_req_t *r)
{
    const core_http_server_t *s = hc->base.srv;
    const char *version = core_http_req_header(r, "Sec-WebSocket-Version");

    if (!s->cbs.ws_path || strcmp(core_http_req_path(r), s->cbs.ws_path) != 0)
        return 404;
    if (strcmp(r->method, "GET") != 0 || !r->upgrade ||
        !core__header_has_token(core_http_req_header(r, "Connection"), "upgrade"))
        return 400;
    if (!ws_key_valid(core_http_req_header(r, "Sec-WebSocket-Key")))
        return 400;
    if (!version || strcmp(version, "13") != 0)
        return 426;
    return 101;
}

/* Only plain HTTP past max_conns: this connection is counted in nconns. */
static int ws_server_full(const core_http_server_t *s)
{
    return s->opts.max_conns && s->nconns > s->opts.max_conns;
}

/* Answers the upgrade and hands the connection (and the bytes after the
 * request) to ws.c. */
static feed_result_t ws_upgrade(core__http_conn_t *hc, const char *rest, size_t restlen)
{
    core_http_req_t *r = hc->req;
    int status = ws_handshake_status(hc, r);
    char accept[32];
    core_buf_t out;
    core_conn_t *conn = hc->conn;

    if (status == 101 && core__ws_accept(core_http_req_header(r, "Sec-WebSocket-Key"), accept) < 0)
        status = 500;
    if (status == 101 && ws_server_full(hc->base.srv)) {
        hc->base.srv->refused++;
        status = 503; /* the client tries another server, as at a closed accept */
    }
    if (status != 101) {
        http_fail(hc, status == 426 ? 400 : status,
                  status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL);
        return FEED_MORE;
    }
    core_buf_init(&out);
    core_buf_printf(&out,
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                    accept);
    core_conn_write(conn, out.data, out.len);
    core_buf_free(&out);
    req_free(r);
    hc->req = NULL;
    hc->upgraded = 1;
    hc->conn = NULL;
    if (core__ws_attach(hc->base.srv, conn, hc->base.addr, rest, restlen) < 0)
        core_conn_close(conn);
    return FEED_UPGRADED;
}

/* ------------------------------------------------------------------ parser callbacks */

static int head_too_big(const core_http_req_t *r)
{
    return r->url.len + r->hdrs.len + 2 * r->nhdrs > HTTP_MAX_HEAD;
}

static int on_message_begin(http_parser *p)
{
    core__http_conn_t *hc = p->data;

    req_free(hc->req);
    hc->req = req_new(hc);
    hc->hdr_state = HDR_NONE;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    core__http_conn_t *hc = p->data;

    core_buf_append(&hc->req->url, at, len);
    if (head_too_big(hc->req)) {
        hc->err_status = 431;
        return -1;
    }
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    core__http_conn_t *hc = p->data;
    core_http_req_t *r = hc->req;

    if (hc->hdr_state != HDR_FIELD) {
        if (hc->hdr_state == HDR_VALUE)
            core_buf_append(&r->hdrs, "", 1);
        r->nhdrs++;
    }
    hc->hdr_state = HDR_FIELD;
    core_buf_append(&r->hdrs, at, len);
    if (head_too_big(r)) {
        hc->err_status = 431;
        return -1;
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    core__http_conn_t *hc = p->data;
    core_http_req_t *r = hc->req;

    if (hc->hdr_state == HDR_FIELD)
        core_buf_append(&r->hdrs, "", 1);
    hc->hdr_state = HDR_VALUE;
    core_buf_append(&r->hdrs, at, len);
    if (head_too_big(r)) {
        hc->err_status = 431;
        return -1;
    }
    return 0;
}

/* Splits the request target into path and query. 0 / -1. */
static int req_split_url(core_http_req_t *r, int is_connect)
{
    struct http_parser_url u;

    http_parser_url_init(&u);
    if (r->url.len == 0 || http_parser_parse_url(r->url.data, r->url.len, is_connect, &u) != 0)
        return -1;
    if (u.field_set & (1 << UF_PATH))
        r->path = core_xstrndup(r->url.data + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
    else
        r->path = core_xstrdup("/");
    if (u.field_set & (1 << UF_QUERY))
        r->query =
            core_xstrndup(r->url.data + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    core__http_conn_t *hc = p->data;
    core_http_req_t *r = hc->req;
    size_t max_body = hc->base.srv->opts.max_body;

    if (hc->hdr_state == HDR_FIELD)
        core_buf_append(&r->hdrs, "\0", 2); /* the last header had no value */
    else if (hc->hdr_state == HDR_VALUE)
        core_buf_append(&r->hdrs, "", 1);
    hc->hdr_state = HDR_NONE;
    r->method = http_method_str((enum http_method)p->method);
    if (head_too_big(r)) {
        hc->err_status = 431;
        return -1;
    }
    if (p->http_major != 1) { /* http-parser takes any digit; we speak 1.x only */
        hc->err_status = 505;
        return -1;
    }
    if (req_split_url(r, p->method == HTTP_CONNECT) < 0) {
        hc->err_status = 400;
        return -1;
    }
    if (p->content_length != ULLONG_MAX && p->content_length > max_body) {
        hc->err_status = 413;
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    core__http_conn_t *hc = p->data;
    core_http_req_t *r = hc->req;

    if (len > hc->base.srv->opts.max_body - r->body.len) {
        hc->err_status = 413;
        return -1;
    }
    core_buf_append(&r->body, at, len);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    core__http_conn_t *hc = p->data;

    hc->req->keep_alive = http_should_keep_alive(p);
    hc->req->upgrade = p->upgrade;
    http_parser_pause(p, 1); /* one request at a time */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ------------------------------------------------------------------ connections */

static int is_ws_request(const core_http_req_t *r)
{
    const char *upgrade = core_http_req_header(r, "Upgrade");

    return upgrade && core__header_has_token(upgrade, "websocket");
}

static void http_dispatch(core__http_conn_t *hc)
{
    core_http_server_t *s = hc->base.srv;
    core_http_req_t *r = hc->req;

    if (r->upgrade) /* e.g. CONNECT or h2c: served as plain, but the stream ends here */
        hc->closing = 1;
    hc->waiting = 1;
    hc->in_dispatch = 1;
    if (s->cbs.on_request)
        s->cbs.on_request(r, s->ud);
    else
        core_http_respond(r, 404, "text/plain", "Not Found", 9);
    hc->in_dispatch = 0;
}

static int http_parse_error_status(const core__http_conn_t *hc, enum http_errno err)
{
    if (hc->err_status)
        return hc->err_status;
    if (err == HPE_HEADER_OVERFLOW)
        return 431;
    return 400;
}

static feed_result_t http_feed(core__http_conn_t *hc, const char *data, size_t len)
{
    size_t cap = HTTP_MAX_HEAD + hc->base.srv->opts.max_body + HTTP_BACKLOG_SLACK;

    while (len > 0 && !hc->closing) {
        if (hc->waiting) {
            if (len > cap - hc->backlog.len || hc->backlog.len > cap) {
                CORE_WARN("http %s: pipelined too much while waiting, closing",
                          core_conn_peer(hc->conn));
                hc->closing = 1;
                core_buf_free(&hc->backlog);
                core_conn_abort(hc->conn);
                return FEED_MORE;
            }
            core_buf_append(&hc->backlog, data, len);
            return FEED_MORE;
        }
        size_t n = http_parser_execute(&hc->parser, &parser_settings, data, len);
        enum http_errno err = HTTP_PARSER_ERRNO(&hc->parser);
        data += n;
        len -= n;
        if (err == HPE_PAUSED) {
            http_parser_pause(&hc->parser, 0);
            if (is_ws_request(hc->req) || (hc->req->upgrade && hc->base.srv->cbs.ws_path &&
                                           strcmp(core_http_req_path(hc->req),
                                                  hc->base.srv->cbs.ws_path) == 0))
                return ws_upgrade(hc, data, len);
            http_dispatch(hc);
        } else if (err != HPE_OK) {
            http_fail(hc, http_parse_error_status(hc, err), NULL);
            return FEED_MORE;
        } else if (n == 0) {
            break; /* cannot happen with HPE_OK; never spin */
        }
    }
    return FEED_MORE;
}

static void http_conn_unlink(core__http_conn_t *hc)
{
    core_http_server_t *s = hc->base.srv;

    if (hc->prev)
        hc->prev->next = hc->next;
    else if (s->http_head == hc)
        s->http_head = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    hc->prev = hc->next = NULL;
}

/* Frees the connection state; a request still waiting for its answer
 * stays alive (orphaned) until core_http_respond. */
static void http_conn_free(core__http_conn_t *hc)
{
    http_conn_unlink(hc);
    if (hc->req) {
        if (hc->waiting)
            hc->req->hc = NULL;
        else
            req_free(hc->req);
    }
    core_buf_free(&hc->backlog);
    free(hc);
}

static long http_on_read(core__http_conn_t *hc, const char *data, size_t len)
{
    feed_result_t res;

    if (hc->closing)
        return (long)len;
    hc->heard = 1;
    if (hc->backlog.len > 0 && !hc->waiting)
        res = http_drain_backlog(hc); /* not expected: the backlog drains on respond */
    else
        res = FEED_MORE;
    if (res == FEED_MORE)
        res = http_feed(hc, data, len);
    if (res == FEED_UPGRADED)
        http_conn_free(hc);
    return (long)len;
}

/* An idle or trickling HTTP client (no request completed, nothing sent
 * for ws_idle_pings sweeps) would hold its fd forever: close it. One whose
 * request is being answered is not idle. */
static void http_sweep_one(core__http_conn_t *hc, int limit)
{
    if (hc->closing || hc->waiting || !hc->conn) {
        hc->silent = 0;
        return;
    }
    if (hc->heard) {
        hc->heard = 0;
        hc->silent = 0;
        return;
    }
    if (++hc->silent >= limit) {
        hc->closing = 1;
        core_buf_free(&hc->backlog);
        core_conn_close(hc->conn);
    }
}

void core__http_sweep(core_http_server_t *s)
{
    for (core__http_conn_t *hc = s->http_head; hc; hc = hc->next)
        http_sweep_one(hc, s->opts.ws_idle_pings);
}

/* ------------------------------------------------------------------ conn callbacks */

static long peer_on_read(core_conn_t *c, const char *data, size_t len, void *ud)
{
    core__peer_t *p = core_conn_ud(c);

    (void)ud;
    if (!p) /* detached by core_http_server_free: drain */
        return (long)len;
    if (p->kind == CORE__PEER_WS)
        return core__ws_on_read((core_ws_t *)p, data, len);
    return http_on_read((core__http_conn_t *)p, data, len);
}

/* ------------------------------------------------------------------ per-address cap */

struct core__addr {
    char ip[INET6_ADDRSTRLEN];
    unsigned conns;
    UT_hash_handle hh;
};

/* Counts a new connection against its address (*out, NULL when not
 * counted). 0, or -1 when the address is at the cap. */
static int addr_acquire(core_http_server_t *s, const char *peer, core__addr_t **out)
{
    char ip[INET6_ADDRSTRLEN];
    core__addr_t *a = NULL;

    *out = NULL;
    if (!s->opts.max_conns_per_ip)
        return 0;
    core_peer_ip(peer, ip, sizeof(ip));
    if (core_addrset_has(s->opts.exempt, ip))
        return 0;
    HASH_FIND_STR(s->addrs, ip, a);
    if (a && a->conns >= s->opts.max_conns_per_ip) {
        s->refused++;
        return -1;
    }
    if (!a) {
        a = core_xcalloc(1, sizeof(*a));
        core_copy_trunc(a->ip, sizeof(a->ip), ip);
        HASH_ADD_STR(s->addrs, ip, a);
    }
    a->conns++;
    *out = a;
    return 0;
}

static void addr_release(core_http_server_t *s, core__addr_t *a)
{
    if (a && --a->conns == 0) {
        HASH_DEL(s->addrs, a);
        free(a);
    }
}

static void peer_on_close(core_conn_t *c, void *ud)
{
    core__peer_t *p = core_conn_ud(c);

    (void)ud;
    if (!p)
        return;
    p->srv->nconns--;
    addr_release(p->srv, p->addr);
    p->addr = NULL;
    if (p->kind == CORE__PEER_WS) {
        core__ws_on_close((core_ws_t *)p);
        return;
    }
    ((core__http_conn_t *)p)->conn = NULL;
    http_conn_free((core__http_conn_t *)p);
}

static const core_conn_cbs_t peer_cbs = {
    .on_read = peer_on_read,
    .on_close = peer_on_close,
};

void core__http_accept(struct ev_loop *loop, int fd, const char *peer, void *ud)
{
    core_http_server_t *s = ud;
    core__http_conn_t *hc;
    core__addr_t *addr;
    core_conn_limits_t limits = {
        .max_in = HTTP_MAX_HEAD + s->opts.max_body + HTTP_BACKLOG_SLACK,
        .max_out = s->opts.max_out + HTTP_OUT_SLACK,
    };

    if (s->opts.max_conns && s->nconns >= s->opts.max_conns + CORE__HTTP_FULL_ROOM) {
        s->refused++;
        CORE_DEBUG("http: full (%u connections), %s closed", s->opts.max_conns, peer);
        close(fd);
        return;
    }
    if (addr_acquire(s, peer, &addr) < 0) {
        CORE_DEBUG("http: %s is at the cap of %u connections, closed", peer,
                   s->opts.max_conns_per_ip);
        close(fd);
        return;
    }
    hc = core_xcalloc(1, sizeof(*hc));
    hc->base.addr = addr;
    hc->base.kind = CORE__PEER_HTTP;
    hc->base.srv = s;
    hc->heard = 1; /* a fresh connection is not idle at the first sweep */
    hc->conn = core_conn_adopt(loop, fd, peer, &limits, &peer_cbs, hc);
    if (!hc->conn) {
        CORE_WARN("http: cannot adopt connection from %s", peer);
        close(fd);
        addr_release(s, addr);
        free(hc);
        return;
    }
    if (s->opts.tls && core_conn_start_tls(hc->conn, s->opts.tls, NULL) < 0) {
        CORE_WARN("http: cannot start TLS for %s", peer);
        core_conn_set_ud(hc->conn, NULL);
        core_conn_abort(hc->conn);
        addr_release(s, addr);
        free(hc);
        return;
    }
    http_parser_init(&hc->parser, HTTP_REQUEST);
    hc->parser.data = hc;
    hc->next = s->http_head;
    if (s->http_head)
        s->http_head->prev = hc;
    s->http_head = hc;
    s->nconns++;
}

/* ------------------------------------------------------------------ server */

static void server_apply_defaults(core_http_server_t *s, const core_http_server_opts_t *opts)
{
    if (opts)
        s->opts = *opts;
    if (s->opts.max_body == 0)
        s->opts.max_body = DEFAULT_MAX_BODY;
    if (s->opts.max_out == 0)
        s->opts.max_out = DEFAULT_MAX_OUT;
    if (s->opts.ws_ping_interval <= 0)
        s->opts.ws_ping_interval = DEFAULT_PING_S;
    if (s->opts.ws_idle_pings <= 0)
        s->opts.ws_idle_pings = DEFAULT_IDLE_PINGS;
}

core_http_server_t *core_http_server_new(struct ev_loop *loop, const char *host, int port,
                                         const core_http_server_opts_t *opts,
                                         const core_http_server_cbs_t *cbs, void *ud,
                                         char *err, size_t errlen)
{
    core_http_server_t *s = core_xcalloc(1, sizeof(*s));

    s->loop = loop;
    s->ud = ud;
    if (cbs)
        s->cbs = *cbs;
    if (s->cbs.ws_path) {
        s->ws_path_copy = core_xstrdup(s->cbs.ws_path);
        s->cbs.ws_path = s->ws_path_copy;
    }
    server_apply_defaults(s, opts);
    s->listener = core_listener_new_shared(loop, host, port, opts && opts->shared_port,
                                           core__http_accept, s, err, errlen);
    if (!s->listener) {
        free(s->ws_path_copy);
        free(s);
        return NULL;
    }
    core__ws_server_init(s);
    return s;
}

int core_http_server_port(const core_http_server_t *s)
{
    return core_listener_port(s->listener);
}

size_t core_http_server_conns(const core_http_server_t *s)
{
    return s->nconns;
}

void core_http_server_free(core_http_server_t *s)
{
    if (!s)
        return;
    core_listener_free(s->listener);
    core__ws_server_shutdown(s);
    while (s->http_head) {
        core__http_conn_t *hc = s->http_head;
        core_conn_set_ud(hc->conn, NULL);
        core_conn_close(hc->conn);
        hc->conn = NULL;
        http_conn_free(hc);
    }
    /* detached peers never release their address: drop the table whole */
    core__addr_t *a, *tmp;
    HASH_ITER(hh, s->addrs, a, tmp) {
        HASH_DEL(s->addrs, a);
        free(a);
    }
    free(s->ws_path_copy);
    free(s);
}

size_t core_http_server_refused(const core_http_server_t *s)
{
    return s->refused;
}
