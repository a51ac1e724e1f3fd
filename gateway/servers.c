/* GET /servers: the live node list from chat:nodes, least loaded first.
 *
 * A login storm sends every client here first, so the answer from Redis is
 * cached for at most cfg.servers_cache_ms (250 ms by default) and requests
 * that arrive while an HGETALL is in flight wait for that one instead of
 * sending their own: Redis sees at most one HGETALL per cache period per
 * gateway, whatever the request rate. */
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>

#include "gateway/gateway_int.h"

typedef struct node_entry {
    const cJSON *obj; /* borrowed from its parsed value */
    const char *id;
    double load;
} node_entry_t;

static const char empty_list[] = "{\"servers\":[]}";

static int entry_cmp(const void *a, const void *b)
{
    const node_entry_t *x = a, *y = b;
    if (x->load != y->load)
        return x->load < y->load ? -1 : 1;
    return strcmp(x->id, y->id);
}

static const char *string_field(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(it) && it->valuestring[0] ? it->valuestring : NULL;
}

static int number_field(const cJSON *o, const char *key, double *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(it))
        return -1;
    *out = it->valuedouble;
    return 0;
}

/* Fills e from one chat:nodes value; 0 when it is well-formed and fresh. */
static int entry_read(const cJSON *o, double now_ms, double ttl_ms, node_entry_t *e)
{
    double ts = 0;
    e->obj = o;
    e->id = string_field(o, "id");
    if (!e->id || !string_field(o, "addr") || !string_field(o, "url") ||
        number_field(o, "load", &e->load) || number_field(o, "ts", &ts))
        return -1;
    return ts + ttl_ms >= now_ms ? 0 : -1;
}

static cJSON *entry_public(const node_entry_t *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", e->id);
    cJSON_AddStringToObject(o, "addr", string_field(e->obj, "addr"));
    cJSON_AddStringToObject(o, "url", string_field(e->obj, "url"));
    cJSON_AddNumberToObject(o, "load", e->load);
    return o;
}

/* Builds the answer from an HGETALL reply (field, value, field, value...). */
static char *servers_body(gateway_t *g, const redisReply *reply, size_t *count)
{
    size_t pairs = reply->elements / 2;
    if (pairs > GATEWAY_MAX_NODES)
        pairs = GATEWAY_MAX_NODES;
    cJSON **parsed = core_xcalloc(pairs ? pairs : 1, sizeof *parsed);
    node_entry_t *list = core_xcalloc(pairs ? pairs : 1, sizeof *list);
    double now = (double)core_now_ms(), ttl = (double)g->cfg.node_ttl_ms;
    size_t n = 0;
    for (size_t i = 0; i < pairs; i++) {
        const redisReply *v = reply->element[2 * i + 1];
        if (v->type != REDIS_REPLY_STRING)
            continue;
        parsed[i] = cJSON_ParseWithLength(v->str, v->len);
        if (parsed[i] && entry_read(parsed[i], now, ttl, &list[n]) == 0)
            n++;
    }
    qsort(list, n, sizeof *list, entry_cmp);
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "servers");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, entry_public(&list[i]));
    char *body = gateway__json_take(root);
    for (size_t i = 0; i < pairs; i++)
        cJSON_Delete(parsed[i]);
    free(parsed);
    free(list);
    *count = n;
    return body;
}

static void cache_store(gateway_t *g, char *body, int status)
{
    gateway__servers_t *s = &g->servers;
    free(s->body);
    s->body = body;
    s->len = strlen(body);
    s->status = status;
    s->at_ms = core_mono_ms();
}

/* Answers everyone waiting. The list is detached first: an answer may let
 * the connection's next pipelined request in, which must start afresh. */
static void answer_waiters(gateway_t *g, int status, const char *body, size_t len)
{
    gateway__waiter_t *w = g->servers.waiters;
    g->servers.waiters = NULL;
    g->servers.fetching = 0;
    while (w) {
        gateway__waiter_t *next = w->next;
        gateway__respond(g, w->req, GW_ROUTE_SERVERS, status, "application/json", body, len);
        free(w);
        w = next;
    }
}

static void on_nodes(core_redis_t *r, struct redisReply *reply, void *ud)
{
    (void)r;
    gateway_t *g = ud;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        g->metrics.redis_errors++;
        CORE_WARN("HGETALL chat:nodes failed: %s",
                  reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "no answer");
        answer_waiters(g, 503, empty_list, sizeof empty_list - 1);
        return;
    }
    size_t count = 0;
    char *body = servers_body(g, reply, &count);
    g->metrics.nodes_listed = count;
    cache_store(g, body, count ? 200 : 503);
    /* Safe to answer from the cache: it only changes in this callback, never during the answers. */
    answer_waiters(g, g->servers.status, g->servers.body, g->servers.len);
}

static int cache_fresh(const gateway_t *g)
{
    const gateway__servers_t *s = &g->servers;
    return s->body && g->cfg.servers_cache_ms > 0 &&
           core_mono_ms() - s->at_ms <= g->cfg.servers_cache_ms;
}

void gateway__servers(gateway_t *g, core_http_req_t *req)
{
    gateway__servers_t *s = &g->servers;
    if (cache_fresh(g)) {
        g->metrics.servers_cache_hits++;
        gateway__respond(g, req, GW_ROUTE_SERVERS, s->status, "application/json", s->body,
                         s->len);
        return;
    }
    if (!s->fetching) {
        if (core_redis_cmd(g->redis, on_nodes, g, "HGETALL chat:nodes") != 0) {
            g->metrics.redis_errors++;
            gateway__respond(g, req, GW_ROUTE_SERVERS, 503, "application/json", empty_list,
                             sizeof empty_list - 1);
            return;
        }
        s->fetching = 1;
    }
    gateway__waiter_t *w = core_xmalloc(sizeof *w);
    w->req = req;
    w->next = s->waiters;
    s->waiters = w;
}

void gateway__servers_free(gateway_t *g)
{
    free(g->servers.body);
    g->servers.body = NULL;
}
