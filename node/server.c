/* The client endpoint: plain HTTP routes and WebSocket sessions. */
#include <string.h>
#include <sys/resource.h>

#include "node/node.h"

/* Connections per address the HTTP layer still accepts over --max-conns-per-ip,
 * so that those over the cap hear why (a 1008 close) instead of a bare reset. */
#define NODE_ACCEPT_SLACK 16
#define NODE_FD_RESERVE 256 /* links, store, Redis, ZooKeeper, logs: not clients */

/* ------------------------------------------------------------------ sessions */

node_sess_t *node_sess_ref(node_sess_t *s)
{
    s->refs++;
    return s;
}

static void sess_free_slots(node_sess_t *s)
{
    node_slot_t *sl = s->slot_head;
    while (sl) {
        node_slot_t *next = sl->next;
        core_buf_free(&sl->frames);
        free(sl);
        sl = next;
    }
    s->slot_head = s->slot_tail = NULL;
}

void node_sess_unref(node_sess_t *s)
{
    if (--s->refs > 0)
        return;
    sess_free_slots(s);
    free(s);
}

int node_sess_live(const node_sess_t *s)
{
    return s->ws != NULL && s->logged_in && !s->kicked;
}

void node_sess_send(node_sess_t *s, const char *frame, size_t len)
{
    if (!s->ws)
        return;
    if (core_ws_send_text(s->ws, frame, len) == 0)
        s->node->metrics.deliveries_total++;
}

void node_sess_close(node_sess_t *s, int code, const char *reason)
{
    if (s->ws)
        core_ws_close(s->ws, code, reason);
}

node_sess_t *node_sess_find(node_t *n, const char *user)
{
    return core_strtab_find(&n->sessions, user);
}

void node_sess_bind(node_sess_t *s, const char *user)
{
    core_copy_trunc(s->user, sizeof s->user, user);
    s->logged_in = 1;
    node_route_sess_add(s->node, s);
}

/* Removes s from the local table if it is the one bound to its user. */
static void sess_unbind(node_sess_t *s)
{
    if (!s->logged_in)
        return;
    node_sess_t *cur = node_sess_find(s->node, s->user);
    if (cur == s) {
        node_route_sess_remove(s->node, s);
    }
}

/* ------------------------------------------------------------------ reply slots */

/* Sends every ready slot at the head, in order. */
static void sess_flush_slots(node_sess_t *s)
{
    while (s->slot_head && s->slot_head->ready) {
        node_slot_t *sl = s->slot_head;
        s->slot_head = sl->next;
        if (!s->slot_head)
            s->slot_tail = NULL;
        const char *p = sl->frames.data;
        size_t left = sl->frames.len;
        /* frames are stored as <u32 length><bytes> so one slot can hold several */
        while (left >= 4) {
            uint32_t flen;
            memcpy(&flen, p, 4);
            if (flen > left - 4)
                break;
            if (s->ws)
                core_ws_send_text(s->ws, p + 4, flen);
            p += 4 + flen;
            left -= 4 + flen;
        }
        core_buf_free(&sl->frames);
        free(sl);
    }
    if (s->closing && !s->slot_head)
        node_sess_close(s, CORE_WS_NORMAL, "logout");
}

static void slot_add_frame(node_slot_t *sl, const char *frame, size_t len)
{
    uint32_t flen = (uint32_t)len;
    core_buf_append(&sl->frames, &flen, 4);
    core_buf_append(&sl->frames, frame, len);
}

node_req_t *node_req_new(node_sess_t *s, const proto_req_t *pr)
{
    node_req_t *r = core_xcalloc(1, sizeof *r);
    node_slot_t *sl = core_xcalloc(1, sizeof *sl);
    core_buf_init(&sl->frames);
    if (s->slot_tail)
        s->slot_tail->next = sl;
    else
        s->slot_head = sl;
    s->slot_tail = sl;
    r->sess = node_sess_ref(s);
    r->slot = sl;
    r->id = pr->id ? cJSON_Duplicate(pr->id, 1) : NULL;
    core_copy_trunc(r->action, sizeof r->action, pr->action ? pr->action : "error");
    return r;
}

/* The response goes first in its slot, before any follow-up frames. */
static void req_finish(node_req_t *r, char *frame, size_t len)
{
    node_sess_t *s = r->sess;
    if (frame) {
        core_buf_t all;
        core_buf_init(&all);
        uint32_t flen = (uint32_t)len;
        core_buf_append(&all, &flen, 4);
        core_buf_append(&all, frame, len);
        core_buf_append(&all, r->slot->frames.data, r->slot->frames.len);
        core_buf_free(&r->slot->frames);
        r->slot->frames = all;
        free(frame);
    }
    r->slot->ready = 1;
    int lane = r->lane;
    cJSON_Delete(r->id);
    free(r);
    sess_flush_slots(s);
    if (lane)
        node_dispatch_done(s, lane);
    node_sess_unref(s);
}

void node_req_follow(node_req_t *r, const char *frame, size_t len)
{
    slot_add_frame(r->slot, frame, len);
}

void node_req_ok(node_req_t *r, cJSON *data)
{
    size_t len = 0;
    char *frame = proto_ok(r->id, r->action, data, &len);
    req_finish(r, frame, len);
}

void node_req_fail_data(node_req_t *r, int code, const char *text, cJSON *data)
{
    size_t len = 0;
    r->sess->node->metrics.errors_total++;
    char *frame = proto_error_data(r->id, r->action, code, text, data, &len);
    req_finish(r, frame, len);
}

void node_req_fail(node_req_t *r, int code, const char *text)
{
    size_t len = 0;
    r->sess->node->metrics.errors_total++;
    char *frame = proto_error(r->id, r->action, code, text, &len);
    req_finish(r, frame, len);
}

void node_req_fail_e(node_req_t *r, const proto_err_t *e)
{
    node_req_fail(r, e->code, e->msg);
}

/* ------------------------------------------------------------------ frames */

char *node_json_take(cJSON *o)
{
    char *s = proto_json_print(o, NULL);
    cJSON_Delete(o);
    return s;
}

char *node_event_frame(const char *event, cJSON *data, size_t *len)
{
    return proto_event(event, data, len);
}

char *node_offline_frame(const char *event, const char *data_json, size_t *len)
{
    cJSON *data = cJSON_Parse(data_json);
    if (!cJSON_IsObject(data)) {
        cJSON_Delete(data);
        data = cJSON_CreateObject();
    }
    cJSON_DeleteItemFromObject(data, "offline");
    cJSON_AddBoolToObject(data, "offline", 1);
    return proto_event(event, data, len);
}

/* ------------------------------------------------------------------ WebSocket callbacks */

static void on_ws_open(core_ws_t *ws, void *ud)
{
    node_t *n = ud;
    node_sess_t *s = core_xcalloc(1, sizeof *s);
    s->node = n;
    s->ws = ws;
    s->refs = 1;
    s->conn_id = ++n->next_conn_id;
    s->tokens = n->cfg.burst;
    s->tokens_ms = core_mono_ms();
    core_ws_set_ud(ws, s);
    n->conns++;
    n->metrics.connections_total++;
    if (node_guard_open(n, s, core_ws_peer(ws)) != 0)
        node_sess_close(s, 1008, "too many connections from this address");
}

static void on_ws_text(core_ws_t *ws, const char *msg, size_t len, void *ud)
{
    (void)ud;
    node_sess_t *s = core_ws_ud(ws);
    if (s && !s->closing)
        node_dispatch(s, msg, len);
}

static void on_ws_close(core_ws_t *ws, int code, void *ud)
{
    (void)code;
    node_t *n = ud;
    node_sess_t *s = core_ws_ud(ws);
    if (!s)
        return;
    n->conns--;
    node_dispatch_drop_queue(s);
    if (s->logged_in && !s->kicked)
        node_account_session_end(s);
    else
        node_rooms_leave_all(n, s);
    sess_unbind(s);
    node_guard_close(n, s);
    s->ws = NULL;
    node_sess_unref(s);
}

/* ------------------------------------------------------------------ plain HTTP */

static void on_http(core_http_req_t *req, void *ud)
{
    node_t *n = ud;
    const char *path = core_http_req_path(req);
    if (strcmp(core_http_req_method(req), "GET") != 0) {
        core_http_respond(req, 404, "text/plain", "not found\n", 10);
    } else if (strcmp(path, "/healthz") == 0) {
        core_http_respond(req, 200, "text/plain", "ok\n", 3);
    } else if (strcmp(path, "/metrics") == 0) {
        core_buf_t out;
        core_buf_init(&out);
        node_metrics_render(n, &out);
        core_http_respond(req, 200, "text/plain; version=0.0.4", out.data, out.len);
        core_buf_free(&out);
    } else {
        core_http_respond(req, 404, "text/plain", "not found\n", 10);
    }
}

/* The open-file limit less what is not a client (0 = no cap when unknown). */
static unsigned fd_limit_conns(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 0;
    if (rl.rlim_cur <= 2 * NODE_FD_RESERVE)
        return (unsigned)(rl.rlim_cur / 2);
    return rl.rlim_cur - NODE_FD_RESERVE > 0xffffffffu ? 0 : (unsigned)(rl.rlim_cur - NODE_FD_RESERVE);
}

int node_server_start(node_t *n, char *err, size_t errlen)
{
    static const core_http_server_cbs_t cbs = {
        .on_request = on_http,
        .ws_path = "/ws",
        .on_ws_open = on_ws_open,
        .on_ws_text = on_ws_text,
        .on_ws_close = on_ws_close,
    };
    char host[128];
    int port = 0;
    if (core_parse_hostport(n->cfg.listen, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "bad --listen '%s'", n->cfg.listen);
        return -1;
    }
    core_http_server_opts_t opts = {
        .max_body = 65536,
        .max_out = n->cfg.max_out,
        .ws_ping_interval = n->cfg.ping_interval,
        .ws_idle_pings = n->cfg.idle_pings,
        /* A hard cap at accept (before TLS) a little above the guard's, which
         * closes WebSockets over it with a reason (1008): floods of handshakes
         * or plain HTTP connections stop here. */
        .max_conns_per_ip = n->cfg.max_conns_per_ip ? n->cfg.max_conns_per_ip + NODE_ACCEPT_SLACK : 0,
        .exempt = node_guard_exempt(n),
        .max_conns = n->cfg.max_conns ? n->cfg.max_conns : fd_limit_conns(),
    };
    if (n->cfg.tls_cert[0] &&
        !(n->tls = core_tls_server_new(n->cfg.tls_cert, n->cfg.tls_key, err, errlen)))
        return -1;
    opts.tls = n->tls;
    n->http = core_http_server_new(n->loop, host, port, &opts, &cbs, n, err, errlen);
    return n->http ? 0 : -1;
}

void node_server_stop(node_t *n)
{
    core_http_server_free(n->http);
    n->http = NULL;
    core_tls_free(n->tls);
    n->tls = NULL;
}

/* glibc adds 8 bytes to an allocation and rounds it up to 16. */
_Static_assert(sizeof(struct node_sess) + 8 <= 176, "node_sess outgrew its 176-byte allocation");
