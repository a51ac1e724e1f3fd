/* The gateway object: HTTP routing, GET /healthz, start and stop. */
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>

#include "gateway/gateway_int.h"

typedef void (*route_fn)(gateway_t *g, core_http_req_t *req);

typedef struct route {
    const char *path;
    const char *method; /* GET routes answer HEAD too */
    gateway__route_t id;
    route_fn fn;
} route_t;

/* A /healthz waiting for its PING. */
typedef struct health_op {
    gateway_t *g;
    core_http_req_t *req;
} health_op_t;

static const route_t routes[] = {
    {"/servers", "GET", GW_ROUTE_SERVERS, gateway__servers},
    {"/healthz", "GET", GW_ROUTE_HEALTHZ, gateway__healthz},
    {"/metrics", "GET", GW_ROUTE_METRICS, gateway__metrics},
    {"/push", "POST", GW_ROUTE_PUSH, gateway__push},
};

char *gateway__json_take(cJSON *o)
{
    char *s = proto_json_print(o, NULL);
    cJSON_Delete(o);
    if (!s) {
        CORE_ERROR("out of memory printing JSON");
        abort();
    }
    return s;
}

void gateway__respond(gateway_t *g, core_http_req_t *req, gateway__route_t route, int status,
                      const char *ctype, const char *body, size_t len)
{
    gateway__count(g, route, status);
    core_http_respond(req, status, ctype, body, len);
}

void gateway__respond_error(gateway_t *g, core_http_req_t *req, gateway__route_t route,
                            int status, const char *text)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", text);
    char *body = gateway__json_take(o);
    gateway__respond(g, req, route, status, "application/json", body, strlen(body));
    free(body);
}

/* ------------------------------------------------------------------ healthz */

static void on_pong(core_redis_t *r, struct redisReply *reply, void *ud)
{
    (void)r;
    health_op_t *op = ud;
    if (reply && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0) {
        gateway__respond(op->g, op->req, GW_ROUTE_HEALTHZ, 200, "text/plain", "ok\n", 3);
    } else {
        op->g->metrics.redis_errors++;
        gateway__respond(op->g, op->req, GW_ROUTE_HEALTHZ, 503, "text/plain",
                         "redis unavailable\n", 18);
    }
    free(op);
}

void gateway__healthz(gateway_t *g, core_http_req_t *req)
{
    health_op_t *op = core_xmalloc(sizeof *op);
    op->g = g;
    op->req = req;
    if (core_redis_cmd(g->redis, on_pong, op, "PING") != 0) {
        free(op);
        g->metrics.redis_errors++;
        gateway__respond(g, req, GW_ROUTE_HEALTHZ, 503, "text/plain", "redis unavailable\n", 18);
    }
}

/* ------------------------------------------------------------------ routing */

static int method_matches(const route_t *rt, const char *method)
{
    if (strcmp(rt->method, method) == 0)
        return 1;
    return strcmp(rt->method, "GET") == 0 && strcmp(method, "HEAD") == 0;
}

static void on_request(core_http_req_t *req, void *ud)
{
    gateway_t *g = ud;
    const char *path = core_http_req_path(req);
    const char *method = core_http_req_method(req);
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(routes[i].path, path) != 0)
            continue;
        if (!method_matches(&routes[i], method)) {
            gateway__respond_error(g, req, routes[i].id, 405, "method not allowed");
            return;
        }
        routes[i].fn(g, req);
        return;
    }
    if (gateway__web_serve(g, req))
        return;
    gateway__respond_error(g, req, GW_ROUTE_OTHER, 404, "not found");
}

/* ------------------------------------------------------------------ lifetime */

static int load_token(gateway_t *g, char *err, size_t errlen)
{
    char token[GATEWAY_TOKEN_MAX + 1];
    if (!g->cfg.push_token_file[0]) {
        CORE_WARN("no --push-token-file: POST /push is disabled (401)");
        return 0;
    }
    if (gateway__read_token(g->cfg.push_token_file, token, sizeof token, err, errlen) != 0)
        return -1;
    gateway__token_hash(token, strlen(token), g->token_hash);
    sodium_memzero(token, sizeof token);
    g->push_enabled = 1;
    return 0;
}

static int start_http(gateway_t *g, char *err, size_t errlen)
{
    char host[256];
    int port = 0;
    core_http_server_opts_t opts = {.max_body = GATEWAY_MAX_BODY,
                                    .max_conns_per_ip = g->cfg.max_conns_per_ip,
                                    .exempt = &g->cfg.exempt,
                                    .shared_port = g->cfg.shared_port};
    static const core_http_server_cbs_t cbs = {.on_request = on_request};
    if (core_parse_hostport(g->cfg.listen, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "bad --listen '%s'", g->cfg.listen);
        return -1;
    }
    if (g->cfg.tls_cert[0] &&
        !(g->tls = core_tls_server_new(g->cfg.tls_cert, g->cfg.tls_key, err, errlen)))
        return -1;
    opts.tls = g->tls;
    g->http = core_http_server_new(g->loop, host, port, &opts, &cbs, g, err, errlen);
    return g->http ? 0 : -1;
}

static int start_redis(gateway_t *g, char *err, size_t errlen)
{
    char host[256];
    int port = 0;
    if (core_parse_hostport(g->cfg.redis, host, sizeof host, &port) != 0 || port == 0) {
        snprintf(err, errlen, "bad --redis '%s'", g->cfg.redis);
        return -1;
    }
    g->redis = core_redis_new(g->loop, host[0] ? host : "127.0.0.1", port, g->cfg.redis_timeout);
    if (!g->redis)
        return -1;
    core_redis_set_auth(g->redis, g->cfg.redis_user, g->cfg.redis_password);
    sodium_memzero(g->cfg.redis_password, sizeof g->cfg.redis_password); /* the client has it */
    return 0;
}

gateway_t *gateway_new(struct ev_loop *loop, const gateway_config_t *cfg, char *err,
                       size_t errlen)
{
    gateway_t *g = core_xcalloc(1, sizeof *g);
    g->loop = loop;
    g->cfg = *cfg;
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        goto fail;
    }
    if (load_token(g, err, errlen) != 0 ||
        (g->cfg.web_root[0] && gateway__web_load(&g->web, g->cfg.web_root, err, errlen) != 0) ||
        start_redis(g, err, errlen) != 0 || start_http(g, err, errlen) != 0)
        goto fail;
    proto_msgid_init(&g->msgids, g->cfg.num ? g->cfg.num : (uint16_t)gateway_port(g));
    return g;
fail:
    gateway_free(g);
    return NULL;
}

int gateway_port(const gateway_t *g)
{
    return core_http_server_port(g->http);
}

void gateway_free(gateway_t *g)
{
    if (!g)
        return;
    /* HTTP first: requests still waiting become orphans, and freeing Redis
     * then answers them (to nobody), which is what releases them. */
    if (g->http)
        core_http_server_free(g->http);
    core_tls_free(g->tls);
    if (g->redis)
        core_redis_free(g->redis);
    gateway__servers_free(g);
    gateway__web_free(&g->web);
    sodium_memzero(g->token_hash, sizeof g->token_hash);
    free(g);
}
