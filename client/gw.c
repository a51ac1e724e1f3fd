/* Gateway lookup: GET /servers on the loop, response parsed by http-parser. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <http_parser.h>

#include "client/client.h"
#include "core/core.h"

#define GW_MAX_BODY 65536
#define GW_MAX_IN (GW_MAX_BODY + 16384)
#define GW_LINGER_S 1.0 /* after an answer: how long the gateway's close is awaited */

struct client_gw {
    struct ev_loop *loop;
    core_conn_t *conn;
    ev_timer timer;
    http_parser parser;
    core_buf_t body;
    int status;
    int complete;
    int reported;  /* cb ran */
    int cancelled; /* cb runs from on_close with "cancelled" */
    client_gw_cb cb;
    void *ud;
};

int client_http_url_parse(const char *url, char *host, size_t hostlen, int *port, char *path,
                          size_t pathlen, int *secure)
{
    *secure = core_parse_url(url, "https", host, hostlen, port, path, pathlen) == 0;
    if (*secure)
        return 0;
    return core_parse_url(url, "http", host, hostlen, port, path, pathlen);
}

int client_gw_pick(const char *body, size_t len, char *url, size_t urllen)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *servers = cJSON_GetObjectItemCaseSensitive(root, "servers");
    const cJSON *first = cJSON_GetArrayItem(servers, 0);
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(first, "url");
    int rc = -1;

    if (cJSON_IsArray(servers) && cJSON_IsString(u) && (strncmp(u->valuestring, "ws://", 5) == 0 || strncmp(u->valuestring, "wss://", 6) == 0) &&
        strlen(u->valuestring) < urllen) {
        core_copy_trunc(url, urllen, u->valuestring);
        rc = 0;
    }
    cJSON_Delete(root);
    return rc;
}

/* Runs the callback at most once; the connection is then torn down. After
 * an answer the gateway closes (Connection: close): waiting for its close
 * leaves the TIME_WAIT on its side, not on this host's port, which a host
 * that asks for many clients (a storm from one machine) would run out of. */
static void gw_report(client_gw_t *g, int ok, const char *url, const char *why)
{
    if (g->reported)
        return;
    g->reported = 1;
    ev_timer_stop(g->loop, &g->timer);
    g->cb(ok, url, why, g->ud);
    if (!g->conn)
        return;
    if (ok) {
        ev_timer_set(&g->timer, GW_LINGER_S, 0.);
        ev_timer_start(g->loop, &g->timer);
        return;
    }
    core_conn_abort(g->conn); /* on_close frees g later */
}

static void gw_finish(client_gw_t *g)
{
    char url[1024], why[96];

    if (g->status != 200) {
        snprintf(why, sizeof why, "gateway answered HTTP %d", g->status);
        gw_report(g, 0, NULL, why);
    } else if (client_gw_pick(g->body.data ? g->body.data : "", g->body.len, url, sizeof url) < 0) {
        gw_report(g, 0, NULL, "gateway listed no usable server");
    } else {
        gw_report(g, 1, url, NULL);
    }
}

static int gw_on_body(http_parser *p, const char *at, size_t len)
{
    client_gw_t *g = p->data;

    if (g->body.len + len > GW_MAX_BODY)
        return -1;
    core_buf_append(&g->body, at, len);
    return 0;
}

static int gw_on_complete(http_parser *p)
{
    client_gw_t *g = p->data;

    g->status = (int)p->status_code;
    g->complete = 1;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings gw_settings = {
    .on_body = gw_on_body,
    .on_message_complete = gw_on_complete,
};

static long gw_on_read(core_conn_t *c, const char *data, size_t len, void *ud)
{
    client_gw_t *g = ud;
    size_t used = http_parser_execute(&g->parser, &gw_settings, data, len);

    (void)c;
    if (g->complete) {
        gw_finish(g);
        return (long)len;
    }
    if (HTTP_PARSER_ERRNO(&g->parser) != HPE_OK || used != len) {
        gw_report(g, 0, NULL, "bad HTTP response from gateway");
        return -1;
    }
    return (long)len;
}

static void gw_on_connect(core_conn_t *c, int err, void *ud)
{
    client_gw_t *g = ud;
    char why[128];

    (void)c;
    if (err) {
        snprintf(why, sizeof why, "gateway: %s", strerror(err));
        gw_report(g, 0, NULL, why);
    }
}

static void gw_on_close(core_conn_t *c, void *ud)
{
    client_gw_t *g = ud;
    char why[192];

    if (!g)
        return; /* TLS could not start: nobody to tell */
    g->conn = NULL;
    if (core_conn_tls_error(c)[0]) {
        snprintf(why, sizeof why, "gateway: TLS: %s", core_conn_tls_error(c));
        gw_report(g, 0, NULL, why);
    }
    if (!g->reported && !g->complete && !g->cancelled) {
        /* a body delimited by EOF ends here */
        http_parser_execute(&g->parser, &gw_settings, NULL, 0);
    }
    if (g->cancelled)
        gw_report(g, 0, NULL, "cancelled");
    else if (g->complete)
        gw_finish(g);
    else
        gw_report(g, 0, NULL, "gateway closed the connection");
    ev_timer_stop(g->loop, &g->timer);
    core_buf_free(&g->body);
    free(g);
}

static const core_conn_cbs_t gw_conn_cbs = {
    .on_read = gw_on_read,
    .on_connect = gw_on_connect,
    .on_close = gw_on_close,
};

static void gw_on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    client_gw_t *g = w->data;

    (void)loop;
    (void)revents;
    if (g->reported) { /* answered; the gateway did not close in time */
        core_conn_abort(g->conn);
        return;
    }
    gw_report(g, 0, NULL, "gateway timed out");
}

client_gw_t *client_gw_fetch(struct ev_loop *loop, const char *gateway, core_tls_t *tls,
                             double timeout_s, client_gw_cb cb, void *ud)
{
    return client_gw_fetch_from(loop, gateway, tls, NULL, timeout_s, cb, ud);
}

client_gw_t *client_gw_fetch_from(struct ev_loop *loop, const char *gateway, core_tls_t *tls,
                                  const char *src, double timeout_s, client_gw_cb cb, void *ud)
{
    char host[256], base[512], req[1024];
    int port, secure;
    core_conn_limits_t limits = {.max_in = GW_MAX_IN, .max_out = 4096};
    client_gw_t *g;
    size_t n;

    if (client_http_url_parse(gateway, host, sizeof host, &port, base, sizeof base, &secure) < 0 ||
        (secure && !tls))
        return NULL;
    n = strlen(base);
    snprintf(req, sizeof req,
             "GET %.*s/servers HTTP/1.1\r\nHost: %s:%d\r\nAccept: application/json\r\n"
             "Connection: close\r\n\r\n",
             (int)(n > 0 && base[n - 1] == '/' ? n - 1 : n), base, host, port);
    g = core_xcalloc(1, sizeof *g);
    g->loop = loop;
    g->cb = cb;
    g->ud = ud;
    core_buf_init(&g->body);
    http_parser_init(&g->parser, HTTP_RESPONSE);
    g->parser.data = g;
    g->conn = core_conn_connect_from(loop, src, host, port, &limits, &gw_conn_cbs, g);
    if (!g->conn) {
        free(g);
        return NULL;
    }
    if (secure && core_conn_start_tls(g->conn, tls, host) < 0) {
        core_conn_set_ud(g->conn, NULL);
        core_conn_abort(g->conn); /* gw_on_close is told by the NULL ud */
        free(g);
        return NULL;
    }
    core_conn_write(g->conn, req, strlen(req));
    ev_timer_init(&g->timer, gw_on_timeout, timeout_s > 0 ? timeout_s : 5.0, 0);
    g->timer.data = g;
    ev_timer_start(loop, &g->timer);
    return g;
}

void client_gw_cancel(client_gw_t *g)
{
    if (!g || g->reported || g->cancelled)
        return;
    g->cancelled = 1;
    ev_timer_stop(g->loop, &g->timer);
    core_conn_abort(g->conn);
}
