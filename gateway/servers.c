/* GET /servers: the live node list from chat:nodes, least loaded first.
 *
 * A login storm sends every client here first, so the listing from Redis is
 * cached for at most cfg.servers_cache_ms (250 ms by default) and requests
 * that arrive while an HGETALL is in flight wait for that one instead of
 * sending their own: Redis sees at most one HGETALL per cache period per
 * gateway, whatever the request rate.
 *
 * A node's load in chat:nodes is at most a heartbeat (1 s) old, and in a
 * storm thousands of clients ask within that second: ordered by the report
 * alone, every one of them would be sent to the same node. So each answer
 * counts its first node as sent one client (clients connect to the first),
 * and the order and the published load are the report plus what this
 * gateway sent since it and in the interval before it: a client takes time
 * to connect (seconds in a storm), so a report may not hold the ones sent
 * just before it yet. Those counted twice are counted twice on every node
 * the gateway spreads evenly over, and a node that got more than its share
 * then gets less. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>

#include "gateway/gateway_int.h"

#define LOAD_TEXT_MAX 32 /* room for "%.15g}" of a load */

static const char empty_list[] = "{\"servers\":[]}";

/* 503 with an empty list: no node alive, or Redis did not answer. */
static void answer_none(gateway_t *g, core_http_req_t *req)
{
    gateway__respond(g, req, GW_ROUTE_SERVERS, 503, "application/json", empty_list,
                     sizeof empty_list - 1);
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

static double estimate(const gateway__node_t *e)
{
    return e->load + (double)(e->sent + e->before);
}

static int node_before(const gateway__node_t *x, const gateway__node_t *y)
{
    double a = estimate(x), b = estimate(y);
    if (a != b)
        return a < b;
    return strcmp(x->id, y->id) < 0;
}

/* Writes the estimate after the fixed head of e's text. */
static void node_render_load(gateway__node_t *e)
{
    int n = snprintf(e->text + e->head_len, e->text_cap - e->head_len, "%.15g}", estimate(e));
    e->text_len = e->head_len + (size_t)(n > 0 ? n : 0);
}

/* Fills e from one chat:nodes value; 0 when it is well-formed and fresh. */
static int node_read(const cJSON *o, double now_ms, double ttl_ms, gateway__node_t *e)
{
    const char *id = string_field(o, "id"), *addr = string_field(o, "addr");
    const char *url = string_field(o, "url");
    double ts = 0;
    if (!id || !addr || !url || number_field(o, "load", &e->load) || number_field(o, "ts", &ts) ||
        ts + ttl_ms < now_ms)
        return -1;
    cJSON *pub = cJSON_CreateObject();
    cJSON_AddStringToObject(pub, "id", id);
    cJSON_AddStringToObject(pub, "addr", addr);
    cJSON_AddStringToObject(pub, "url", url);
    char *fixed = gateway__json_take(pub); /* {"id":..,"addr":..,"url":..} */
    size_t flen = strlen(fixed);
    static const char load_key[] = ",\"load\":";
    e->head_len = flen - 1 + sizeof load_key - 1;
    e->text_cap = e->head_len + LOAD_TEXT_MAX;
    e->text = core_xmalloc(e->text_cap);
    memcpy(e->text, fixed, flen - 1);
    memcpy(e->text + flen - 1, load_key, sizeof load_key - 1);
    free(fixed);
    e->id = core_xstrdup(id);
    e->ts = ts;
    e->sent = e->before = 0;
    return 0;
}

static void node_free(gateway__node_t *e)
{
    free(e->id);
    free(e->text);
}

static int node_id_cmp(const void *a, const void *b)
{
    return strcmp(((const gateway__node_t *)a)->id, ((const gateway__node_t *)b)->id);
}

static int order_cmp(const void *a, const void *b)
{
    const gateway__node_t *x = *(gateway__node_t *const *)a, *y = *(gateway__node_t *const *)b;
    return node_before(x, y) ? -1 : node_before(y, x) ? 1 : 0;
}

/* Carries the counts of what was sent to each node over a listing: the
 * same while its report is unchanged; at a newer report, what was sent
 * since the last one becomes the interval before. Both tables are sorted by
 * id. */
static void carry_sent(const gateway__servers_t *old, gateway__node_t *nodes, size_t n)
{
    size_t i = 0;
    for (size_t j = 0; j < n; j++) {
        while (i < old->count && strcmp(old->nodes[i].id, nodes[j].id) < 0)
            i++;
        if (i >= old->count || strcmp(old->nodes[i].id, nodes[j].id) != 0)
            continue;
        if (nodes[j].ts <= old->nodes[i].ts) {
            nodes[j].sent = old->nodes[i].sent;
            nodes[j].before = old->nodes[i].before;
        } else {
            nodes[j].before = old->nodes[i].sent;
        }
    }
}

static void table_clear(gateway__servers_t *s)
{
    for (size_t i = 0; i < s->count; i++)
        node_free(&s->nodes[i]);
    free(s->nodes);
    free(s->order);
    s->nodes = NULL;
    s->order = NULL;
    s->count = 0;
}

/* Replaces the table with an HGETALL reply (field, value, field, value...). */
static void table_load(gateway_t *g, const redisReply *reply)
{
    gateway__servers_t *s = &g->servers;
    size_t pairs = reply->elements / 2;
    if (pairs > GATEWAY_MAX_NODES)
        pairs = GATEWAY_MAX_NODES;
    gateway__node_t *nodes = core_xcalloc(pairs ? pairs : 1, sizeof *nodes);
    double now = (double)core_now_ms(), ttl = (double)g->cfg.node_ttl_ms;
    size_t n = 0;
    for (size_t i = 0; i < pairs; i++) {
        const redisReply *v = reply->element[2 * i + 1];
        if (v->type != REDIS_REPLY_STRING)
            continue;
        cJSON *o = cJSON_ParseWithLength(v->str, v->len);
        if (o && node_read(o, now, ttl, &nodes[n]) == 0)
            n++;
        cJSON_Delete(o);
    }
    qsort(nodes, n, sizeof *nodes, node_id_cmp);
    size_t kept = 0; /* one entry per id (a value under a wrong field) */
    for (size_t i = 0; i < n; i++) {
        if (kept && !strcmp(nodes[kept - 1].id, nodes[i].id))
            node_free(&nodes[i]);
        else
            nodes[kept++] = nodes[i];
    }
    carry_sent(s, nodes, kept);
    table_clear(s);
    s->nodes = nodes;
    s->count = kept;
    s->order = core_xcalloc(kept ? kept : 1, sizeof *s->order);
    for (size_t i = 0; i < kept; i++) {
        node_render_load(&nodes[i]);
        s->order[i] = &nodes[i];
    }
    qsort(s->order, kept, sizeof *s->order, order_cmp);
    s->listed = 1;
    s->at_ms = core_mono_ms();
    g->metrics.nodes_listed = kept;
}

/* The first node got a client: its estimate grows and it moves back. */
static void hand_out_first(gateway__servers_t *s)
{
    gateway__node_t *first = s->order[0];
    size_t j = 0;
    first->sent++;
    node_render_load(first);
    for (; j + 1 < s->count && node_before(s->order[j + 1], first); j++)
        s->order[j] = s->order[j + 1];
    s->order[j] = first;
}

/* One answer from the table: 503 with an empty list when no node is alive. */
static void answer(gateway_t *g, core_http_req_t *req)
{
    gateway__servers_t *s = &g->servers;
    if (!s->count) {
        answer_none(g, req);
        return;
    }
    core_buf_reset(&s->body);
    core_buf_append_str(&s->body, "{\"servers\":[");
    for (size_t i = 0; i < s->count; i++) {
        const gateway__node_t *e = s->order[i];
        if (i)
            core_buf_append(&s->body, ",", 1);
        core_buf_append(&s->body, e->text, e->text_len);
    }
    core_buf_append_str(&s->body, "]}");
    hand_out_first(s); /* before the answer: it may run the connection's next request */
    gateway__respond(g, req, GW_ROUTE_SERVERS, 200, "application/json", s->body.data,
                     s->body.len);
}

/* Answers everyone waiting, from the table or with a 503 after a failed
 * listing. The list is detached first: an answer may let the connection's
 * next pipelined request in, which must start afresh. */
static void answer_waiters(gateway_t *g, int failed)
{
    gateway__waiter_t *w = g->servers.waiters;
    g->servers.waiters = NULL;
    g->servers.fetching = 0;
    while (w) {
        gateway__waiter_t *next = w->next;
        if (failed)
            answer_none(g, w->req);
        else
            answer(g, w->req);
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
        answer_waiters(g, 1);
        return;
    }
    table_load(g, reply);
    answer_waiters(g, 0);
}

static int cache_fresh(const gateway_t *g)
{
    const gateway__servers_t *s = &g->servers;
    return s->listed && g->cfg.servers_cache_ms > 0 &&
           core_mono_ms() - s->at_ms <= g->cfg.servers_cache_ms;
}

void gateway__servers(gateway_t *g, core_http_req_t *req)
{
    gateway__servers_t *s = &g->servers;
    if (cache_fresh(g)) {
        g->metrics.servers_cache_hits++;
        answer(g, req);
        return;
    }
    if (!s->fetching) {
        if (core_redis_cmd(g->redis, on_nodes, g, "HGETALL chat:nodes") != 0) {
            g->metrics.redis_errors++;
            answer_none(g, req);
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
    table_clear(&g->servers);
    core_buf_free(&g->servers.body);
}
