/* Counters and GET /metrics (Prometheus text format 0.0.4). */
#include <inttypes.h>

#include "gateway/gateway_int.h"

static const char *const route_names[GW_ROUTE_COUNT] = {
    [GW_ROUTE_SERVERS] = "servers",
    [GW_ROUTE_HEALTHZ] = "healthz",
    [GW_ROUTE_METRICS] = "metrics",
    [GW_ROUTE_PUSH] = "push",
    [GW_ROUTE_WEB] = "web",
    [GW_ROUTE_OTHER] = "other",
};

/* The last slot is "other". */
static const int statuses[GW_STATUS_KINDS - 1] = {200, 202, 304, 400, 401, 404, 405, 500, 503};

static int status_slot(int status)
{
    for (int i = 0; i < GW_STATUS_KINDS - 1; i++)
        if (statuses[i] == status)
            return i;
    return GW_STATUS_KINDS - 1;
}

void gateway__count(gateway_t *g, gateway__route_t route, int status)
{
    g->metrics.requests[route][status_slot(status)]++;
}

static void render_requests(const gateway__metrics_t *m, core_buf_t *out)
{
    core_buf_append_str(out, "# HELP gateway_requests_total HTTP requests answered, by route and status.\n"
                             "# TYPE gateway_requests_total counter\n");
    for (int r = 0; r < GW_ROUTE_COUNT; r++) {
        for (int s = 0; s < GW_STATUS_KINDS; s++) {
            if (!m->requests[r][s])
                continue;
            char status[8];
            if (s < GW_STATUS_KINDS - 1)
                snprintf(status, sizeof status, "%d", statuses[s]);
            else
                snprintf(status, sizeof status, "other");
            core_buf_printf(out, "gateway_requests_total{route=\"%s\",status=\"%s\"} %" PRIu64 "\n",
                            route_names[r], status, m->requests[r][s]);
        }
    }
}

static void render_one(core_buf_t *out, const char *name, const char *type, const char *help,
                       uint64_t v)
{
    core_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type,
                    name, v);
}

void gateway__metrics(gateway_t *g, core_http_req_t *req)
{
    const gateway__metrics_t *m = &g->metrics;
    core_buf_t out;
    core_buf_init(&out);
    render_requests(m, &out);
    render_one(&out, "gateway_push_accepted_total", "counter",
               "Pushes queued in Redis (answered 202).", m->push_accepted);
    render_one(&out, "gateway_push_rejected_total", "counter",
               "Pushes refused (bad token, bad body, Redis unavailable).", m->push_rejected);
    render_one(&out, "gateway_redis_errors_total", "counter",
               "Redis commands that failed, timed out or could not be sent.", m->redis_errors);
    render_one(&out, "gateway_servers_cache_hits_total", "counter",
               "GET /servers answered from the short cache.", m->servers_cache_hits);
    render_one(&out, "gateway_nodes_listed", "gauge", "Live nodes in the last node listing.",
               m->nodes_listed);
    render_one(&out, "gateway_conns_refused_total", "counter",
               "Connections closed at accept: over --max-conns-per-ip.",
               (uint64_t)core_http_server_refused(g->http));
    render_one(&out, "gateway_redis_connected", "gauge", "1 while the Redis client is connected.",
               (uint64_t)core_redis_connected(g->redis));
    gateway__respond(g, req, GW_ROUTE_METRICS, 200, "text/plain; version=0.0.4", out.data,
                     out.len);
    core_buf_free(&out);
}
