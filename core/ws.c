/* core/ws.c: the server side of a WebSocket (RFC 6455) on wslay 1.1.1.
 *
 * wslay parses, unmasks, reassembles, validates and answers pings. Its
 * context costs about 9 KB (two 4 KB buffers), far too much to keep on each
 * of tens of thousands of idle connections, so a context exists only while
 * input is being processed or a frame/message is incomplete: a tiny shadow
 * parser follows frame boundaries and the context is let go whenever the
 * stream sits between complete messages (a few wait on the server for the
 * next connection with input, so a frame seldom costs a new one). Outgoing
 * data frames (text, ping, close when no context exists) are framed here
 * directly: a server frame is just a header and the payload, and wslay's
 * own queue (pongs, close) is drained into the conn before each direct
 * frame and after each read, so the order on the wire is the order things
 * happened.
 */
#include "core/http_int.h"

#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

enum { WS_OPEN, WS_CLOSING, WS_CLOSED };

/* At most this many idle wslay contexts wait on a server for reuse: one
 * is created and freed per incoming frame otherwise (a 9 KB calloc). */
enum { WS_SPARES_MAX = 4 };

/* A wslay context and the connection using it now: wslay's callbacks get
 * this holder, so one context can serve many connections in turn. */
typedef struct core__ws_ctx {
    wslay_event_context_ptr wslay;
    core_ws_t *ws;
    struct core__ws_ctx *next; /* among the server's spares */
} ws_ctx_t;

struct core_ws {
    core__peer_t base;
    core_conn_t *conn;
    core_ws_t *prev, *next;       /* the server's wheel slot, for the idle sweep */
    struct core__ws_ctx *ctx;     /* only while input is open (see above) */
    void *ud;
    uint64_t frame_left;          /* shadow parser: payload bytes still due */
    uint8_t hdr[14];              /* shadow parser: partial frame header */
    uint8_t hdr_have;
    uint8_t frag_open;            /* a fragmented data message is incomplete */
    uint8_t hold_len;             /* bytes in hold */
    uint8_t *hold;                /* an incomplete close frame, held back (see ws_close_cut) */
    uint8_t state;
    uint8_t in_recv;              /* inside wslay_event_recv */
    uint16_t pings;               /* pings sent since the last input */
    uint32_t heard_tick;          /* the server's sweep_tick at the last input */
    uint16_t close_code;          /* reported to on_ws_close */
    uint16_t slot;                /* its slot in the server's wheel */
    uint32_t due_tick;            /* the sweep that next looks at it */
};

/* ------------------------------------------------------------------ frame boundaries */

static size_t shadow_header_len(const uint8_t *h, size_t have)
{
    size_t n = 2;

    if (have < 2)
        return 2;
    if ((h[1] & 0x7f) == 126)
        n += 2;
    else if ((h[1] & 0x7f) == 127)
        n += 8;
    if (h[1] & 0x80)
        n += 4;
    return n;
}

static uint64_t shadow_payload_len(const uint8_t *h)
{
    uint64_t len = h[1] & 0x7f;

    if (len == 126) {
        len = ((uint64_t)h[2] << 8) | h[3];
    } else if (len == 127) {
        len = 0;
        for (int i = 2; i < 10; i++)
            len = (len << 8) | h[i];
    }
    return len;
}

static void shadow_frame_start(core_ws_t *ws)
{
    const uint8_t *h = ws->hdr;
    uint8_t opcode = h[0] & 0x0f, fin = h[0] & 0x80;

    ws->frame_left = shadow_payload_len(h);
    ws->hdr_have = 0;
    if (opcode == WSLAY_TEXT_FRAME || opcode == WSLAY_BINARY_FRAME)
        ws->frag_open = !fin;
    else if (opcode == WSLAY_CONTINUATION_FRAME && fin)
        ws->frag_open = 0;
}

static void shadow_feed(core_ws_t *ws, const uint8_t *p, size_t len)
{
    while (len > 0) {
        if (ws->frame_left > 0) {
            size_t n = ws->frame_left < len ? (size_t)ws->frame_left : len;
            ws->frame_left -= n;
            p += n;
            len -= n;
            continue;
        }
        ws->hdr[ws->hdr_have++] = *p++;
        len--;
        if (ws->hdr_have >= shadow_header_len(ws->hdr, ws->hdr_have))
            shadow_frame_start(ws);
    }
}

static int is_small_close(const uint8_t *h)
{
    return (h[0] & 0x0f) == WSLAY_CONNECTION_CLOSE && (h[1] & 0x7f) <= 125;
}

/* wslay 1.1.1 checks the UTF-8 of a close reason chunk by chunk and skips
 * the first two bytes of every chunk, so its verdict would depend on how
 * TCP cut the frame: it is handed a close frame only whole. Returns where
 * an incomplete close frame starts in p, or len when there is none. */
static size_t ws_close_cut(const core_ws_t *ws, const uint8_t *p, size_t len)
{
    uint64_t left = ws->frame_left;
    uint8_t h[14];
    size_t have = ws->hdr_have, start = len;

    memcpy(h, ws->hdr, sizeof(h));
    for (size_t i = 0; i < len;) {
        if (left > 0) {
            size_t n = left < len - i ? (size_t)left : len - i;
            left -= n;
            i += n;
            continue;
        }
        if (have == 0)
            start = i;
        h[have++] = p[i++];
        if (have < shadow_header_len(h, have))
            continue;
        left = shadow_payload_len(h);
        have = 0;
        if (start < len && is_small_close(h) && left > len - i)
            return start;
    }
    if (have > 0 && start < len && (have < 2 ? (h[0] & 0x0f) == WSLAY_CONNECTION_CLOSE
                                             : is_small_close(h)))
        return start;
    return len;
}

/* ------------------------------------------------------------------ direct framing */

static void ws_trim_soon(core_ws_t *ws);

static int ws_write_frame(core_ws_t *ws, uint8_t opcode, const void *data, size_t len)
{
    uint8_t h[10];
    size_t hl = 2;

    h[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        h[1] = (uint8_t)len;
    } else if (len <= 0xffff) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        hl = 10;
    }
    if (!ws->conn)
        return -1;
    /* A pong wslay queued while parsing goes out before what follows it. */
    if (ws->ctx && wslay_event_want_write(ws->ctx->wslay) &&
        wslay_event_send(ws->ctx->wslay) != 0)
        return -1;
    if (core_conn_write(ws->conn, h, hl) < 0)
        return -1;
    if (len > 0 && core_conn_write(ws->conn, data, len) < 0)
        return -1;
    ws_trim_soon(ws);
    return 0;
}

static int ws_write_close(core_ws_t *ws, int code, const char *reason)
{
    uint8_t payload[125];
    size_t rl = reason ? strlen(reason) : 0;

    if (rl > sizeof(payload) - 2)
        rl = sizeof(payload) - 2;
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    if (rl)
        memcpy(payload + 2, reason, rl);
    return ws_write_frame(ws, WSLAY_CONNECTION_CLOSE, payload, rl + 2);
}

/* ------------------------------------------------------------------ wslay glue */

/* The input being handed to wslay: only during wslay_event_recv, so one per
 * thread instead of 16 bytes in every connection. */
typedef struct ws_input {
    const core_ws_t *ws;
    const char *data;
    size_t len;
} ws_input_t;

static _Thread_local ws_input_t ws_input;

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                          void *user_data)
{
    core_ws_t *ws = ((ws_ctx_t *)user_data)->ws;
    size_t n = ws_input.ws != ws ? 0 : ws_input.len < len ? ws_input.len : len;

    (void)flags;
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    memcpy(buf, ws_input.data, n);
    ws_input.data += n;
    ws_input.len -= n;
    return (ssize_t)n;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                          void *user_data)
{
    core_ws_t *ws = ((ws_ctx_t *)user_data)->ws;

    (void)flags;
    if (!ws->conn || core_conn_write(ws->conn, data, len) < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

/* Closes from inside wslay_event_recv: wslay queues the close frame after
 * anything already queued (a pong) and stops reading further frames. */
static void ws_close_in_recv(core_ws_t *ws, int code, const char *reason)
{
    size_t rl = reason ? strlen(reason) : 0;

    if (ws->state != WS_OPEN)
        return;
    ws->state = WS_CLOSING;
    ws->close_code = (uint16_t)code;
    wslay_event_queue_close(ws->ctx->wslay, (uint16_t)code, (const uint8_t *)reason,
                            rl > 123 ? 123 : rl);
    wslay_event_shutdown_read(ws->ctx->wslay);
}

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *user_data)
{
    core_ws_t *ws = ((ws_ctx_t *)user_data)->ws;
    core_http_server_t *s = ws->base.srv;

    (void)ctx;
    if (ws->state != WS_OPEN)
        return;
    if (arg->opcode == WSLAY_BINARY_FRAME) {
        ws_close_in_recv(ws, CORE_WS_UNSUPPORTED, "binary frames are not supported");
    } else if (arg->opcode == WSLAY_TEXT_FRAME) {
        /* wslay validates too; this keeps the rule ours whatever its version */
        if (!core_utf8_valid((const char *)arg->msg, arg->msg_length))
            ws_close_in_recv(ws, CORE_WS_INVALID_DATA, "invalid UTF-8");
        else if (s->cbs.on_ws_text)
            s->cbs.on_ws_text(ws, (const char *)arg->msg, arg->msg_length, s->ud);
    }
}

static const struct wslay_event_callbacks ws_callbacks = {
    .recv_callback = ws_recv_cb,
    .send_callback = ws_send_cb,
    .on_msg_recv_callback = ws_on_msg,
};

static int ws_ctx_open(core_ws_t *ws)
{
    core_http_server_t *s = ws->base.srv;
    ws_ctx_t *c = s->ws_spare;

    if (ws->ctx)
        return 0;
    if (c) {
        s->ws_spare = c->next;
        s->ws_spares--;
    } else {
        c = core_xcalloc(1, sizeof *c);
        if (wslay_event_context_server_init(&c->wslay, &ws_callbacks, c) != 0) {
            free(c);
            return -1;
        }
        wslay_event_config_set_max_recv_msg_length(c->wslay, CORE_WS_MAX_MESSAGE);
    }
    c->ws = ws;
    c->next = NULL;
    ws->ctx = c;
    return 0;
}

static void ws_ctx_destroy(ws_ctx_t *c)
{
    wslay_event_context_free(c->wslay);
    free(c);
}

static void ws_ctx_free(core_ws_t *ws)
{
    if (!ws->ctx)
        return;
    ws_ctx_destroy(ws->ctx);
    ws->ctx = NULL;
}

/* Between complete messages wslay holds no state worth keeping. */
static int ws_ctx_idle(core_ws_t *ws)
{
    return ws->hdr_have == 0 && ws->frame_left == 0 && !ws->frag_open &&
           wslay_event_get_read_enabled(ws->ctx->wslay) &&
           !wslay_event_want_write(ws->ctx->wslay);
}

/* An idle context that neither sent nor heard a close is as good as a new
 * one: a few wait on the server for the next connection with input. */
static void ws_ctx_release(core_ws_t *ws)
{
    core_http_server_t *s = ws->base.srv;
    ws_ctx_t *c = ws->ctx;
    wslay_event_context_ptr w = c->wslay;

    if (s->ws_spares >= WS_SPARES_MAX || !wslay_event_get_write_enabled(w) ||
        wslay_event_get_close_sent(w) || wslay_event_get_close_received(w)) {
        ws_ctx_free(ws);
        return;
    }
    ws->ctx = NULL;
    c->ws = NULL;
    c->next = s->ws_spare;
    s->ws_spare = c;
    s->ws_spares++;
}

/* ------------------------------------------------------------------ closing */

/* The close frame is queued (or dropped): end the TCP connection after
 * flushing; on_ws_close follows from the conn's on_close. */
static void ws_finish(core_ws_t *ws, int code, int abort_now)
{
    ws->state = WS_CLOSED;
    ws->close_code = (uint16_t)code;
    if (!ws->in_recv) {
        ws_ctx_free(ws);
    } else { /* wslay is on the stack: just make it stop; freed after recv */
        wslay_event_shutdown_read(ws->ctx->wslay);
        wslay_event_shutdown_write(ws->ctx->wslay);
    }
    if (!ws->conn)
        return;
    if (abort_now)
        core_conn_abort(ws->conn);
    else
        core_conn_close(ws->conn);
}

/* The code wslay closed with: the peer's (echoed) or its own error. */
static int ws_wslay_close_code(core_ws_t *ws)
{
    if (ws->state == WS_CLOSING)
        return ws->close_code;
    if (wslay_event_get_close_received(ws->ctx->wslay))
        return wslay_event_get_status_code_received(ws->ctx->wslay);
    return wslay_event_get_status_code_sent(ws->ctx->wslay);
}

static void ws_after_recv(core_ws_t *ws, int rv)
{
    if (ws->state == WS_CLOSED) {
        ws_ctx_free(ws);
        return;
    }
    if (rv == WSLAY_ERR_CALLBACK_FAILURE) {
        /* Our recv_cb never fails: this is a frame wslay's frame layer
         * refused (fragmented or oversized control frame, bad length). Its
         * own close frame would carry no code; send ours instead. */
        ws_ctx_free(ws);
        ws_write_close(ws, CORE_WS_PROTOCOL_ERROR, "bad frame");
        ws_finish(ws, CORE_WS_PROTOCOL_ERROR, 0);
        return;
    }
    if (rv != 0) {
        CORE_WARN("ws %s: wslay recv failed (%d)", core_ws_peer(ws), rv);
        ws_finish(ws, CORE_WS_INTERNAL, 1);
        return;
    }
    if (wslay_event_send(ws->ctx->wslay) != 0) { /* the conn refused output: it is closing */
        ws_finish(ws, CORE_WS_POLICY, 1);
        return;
    }
    if (ws->state == WS_CLOSING || !wslay_event_get_read_enabled(ws->ctx->wslay)) {
        ws_finish(ws, ws_wslay_close_code(ws), 0);
        return;
    }
    if (ws_ctx_idle(ws))
        ws_ctx_release(ws);
}

void core_ws_close(core_ws_t *ws, int code, const char *reason)
{
    if (ws->state != WS_OPEN)
        return;
    if (ws->in_recv) {
        ws_close_in_recv(ws, code, reason);
        return;
    }
    if (ws->ctx) {
        size_t rl = reason ? strlen(reason) : 0;
        wslay_event_queue_close(ws->ctx->wslay, (uint16_t)code, (const uint8_t *)reason,
                                rl > 123 ? 123 : rl);
        wslay_event_send(ws->ctx->wslay);
    } else {
        ws_write_close(ws, code, reason);
    }
    ws_finish(ws, code, 0);
}

/* ------------------------------------------------------------------ conn side (from http.c) */

/* Files ws in the wheel slot of tick due (a due more than a lap away waits
 * in the last slot of this lap and is filed again when it comes up). */
static void ws_link(core_http_server_t *s, core_ws_t *ws, uint32_t due)
{
    uint32_t ahead = due - s->sweep_tick;

    if (ahead == 0 || ahead > UINT32_MAX / 2)
        ahead = 1;
    if (ahead >= s->ws_wheel_len)
        ahead = s->ws_wheel_len - 1;
    ws->due_tick = s->sweep_tick + ahead;
    ws->slot = (uint16_t)(ws->due_tick % s->ws_wheel_len);
    ws->prev = NULL;
    ws->next = s->ws_wheel[ws->slot];
    if (ws->next)
        ws->next->prev = ws;
    s->ws_wheel[ws->slot] = ws;
}

static void ws_unlink(core_ws_t *ws)
{
    core_http_server_t *s = ws->base.srv;

    if (ws->prev)
        ws->prev->next = ws->next;
    else if (s->ws_wheel[ws->slot] == ws)
        s->ws_wheel[ws->slot] = ws->next;
    if (ws->next)
        ws->next->prev = ws->prev;
    ws->prev = ws->next = NULL;
}

/* Output to a quiet client: looked at again two sweeps on, when its output
 * buffer (drained by then) goes back. */
static void ws_trim_soon(core_ws_t *ws)
{
    core_http_server_t *s = ws->base.srv;
    uint32_t soon = s->sweep_tick + 2;

    if ((int32_t)(ws->due_tick - soon) > 0) {
        ws_unlink(ws);
        ws_link(s, ws, soon);
    }
}

long core__ws_attach(core_http_server_t *s, core_conn_t *conn, core__addr_t *addr,
                     const char *rest, size_t len)
{
    core_ws_t *ws = core_xcalloc(1, sizeof(*ws));

    ws->base.kind = CORE__PEER_WS;
    ws->base.srv = s;
    ws->base.addr = addr;
    ws->conn = conn;
    ws->state = WS_OPEN;
    ws->heard_tick = s->sweep_tick;
    ws->close_code = 1006;
    ws_link(s, ws, s->sweep_tick + 2);
    core_conn_set_ud(conn, ws);
    if (s->cbs.on_ws_open)
        s->cbs.on_ws_open(ws, s->ud);
    if (len == 0)
        return 0;
    return core__ws_on_read(ws, rest, len);
}

/* Hands wslay everything but an incomplete close frame, which is kept. */
static void ws_feed(core_ws_t *ws, const char *data, size_t len)
{
    size_t n = ws_close_cut(ws, (const uint8_t *)data, len);
    int rv;

    if (len - n > 0) { /* at most a close header and 125 bytes */
        ws->hold = core_xrealloc(ws->hold, len - n);
        memcpy(ws->hold, data + n, len - n);
        ws->hold_len = (uint8_t)(len - n);
    }
    if (n == 0)
        return;
    shadow_feed(ws, (const uint8_t *)data, n);
    if (ws_ctx_open(ws) < 0) {
        ws_finish(ws, CORE_WS_INTERNAL, 1);
        return;
    }
    ws_input_t outer = ws_input; /* a callback may feed another connection */
    ws_input = (ws_input_t){ws, data, n};
    ws->in_recv = 1;
    rv = wslay_event_recv(ws->ctx->wslay);
    ws->in_recv = 0;
    ws_input = outer;
    ws_after_recv(ws, rv);
}

long core__ws_on_read(core_ws_t *ws, const char *data, size_t len)
{
    core_buf_t joined;

    if (ws->state != WS_OPEN)
        return (long)len; /* closing: the rest is of no interest */
    ws->heard_tick = ws->base.srv->sweep_tick;
    ws->pings = 0;
    if (ws->hold_len == 0) {
        ws_feed(ws, data, len);
        return (long)len;
    }
    core_buf_init(&joined);
    core_buf_append(&joined, ws->hold, ws->hold_len);
    core_buf_append(&joined, data, len);
    ws->hold_len = 0;
    ws_feed(ws, joined.data, joined.len);
    core_buf_free(&joined);
    return (long)len;
}

static void ws_notify_close(core_ws_t *ws)
{
    core_http_server_t *s = ws->base.srv;

    if (s->cbs.on_ws_close)
        s->cbs.on_ws_close(ws, ws->close_code, s->ud);
}

static void ws_free(core_ws_t *ws)
{
    ws_unlink(ws);
    ws_ctx_free(ws);
    ws_notify_close(ws);
    free(ws->hold);
    free(ws);
}

void core__ws_on_close(core_ws_t *ws)
{
    ws_free(ws);
}

/* ------------------------------------------------------------------ idle sweep */

/* The sweep runs at least once a second: a client silent for k ping
 * intervals hears its k-th ping (or its close, at ws_idle_pings) within
 * one sweep period after that, never a whole interval late. The +1 counts
 * from the sweep after the last input, which came anywhere within a tick. */
static void ws_sweep_one(core_http_server_t *s, core_ws_t *ws)
{
    if (ws->state != WS_OPEN)
        return;
    uint32_t idle = s->sweep_tick - ws->heard_tick;
    if (idle > 1) /* quiet for a whole sweep period: its buffers go back */
        core_conn_trim(ws->conn);
    if (idle < s->sweep_ticks * ((uint32_t)ws->pings + 1) + 1)
        return;
    if (ws->pings + 1 >= s->opts.ws_idle_pings) {
        core_ws_close(ws, CORE_WS_GOING_AWAY, "idle");
        return;
    }
    if (ws->pings < UINT16_MAX)
        ws->pings++;
    if (ws_write_frame(ws, WSLAY_PING, NULL, 0) < 0)
        ws_finish(ws, CORE_WS_POLICY, 1);
}

/* The next sweep with something to do for ws: its buffers go back two
 * sweeps after its last input (or the sweep after, while a quiet one still
 * holds some: the ping just sent), then its next ping (or idle close). */
static uint32_t ws_next_due(const core_http_server_t *s, const core_ws_t *ws)
{
    if (s->sweep_tick - ws->heard_tick < 2)
        return ws->heard_tick + 2;
    if (ws->conn && core_conn_buffer_bytes(ws->conn) > 0)
        return s->sweep_tick + 1;
    return ws->heard_tick + s->sweep_ticks * ((uint32_t)ws->pings + 1) + 1;
}

/* Only the WebSockets due now are looked at (an idle one about twice per
 * ping interval), not every open one each sweep. Each goes to a later
 * slot, never this one, so the slot empties. Closing never frees a ws
 * synchronously (on_close is deferred by the conn layer). */
static void ws_on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    core_http_server_t *s = w->data;
    uint32_t slot;
    core_ws_t *ws;

    (void)loop;
    (void)revents;
    s->sweep_tick++;
    slot = s->sweep_tick % s->ws_wheel_len;
    while ((ws = s->ws_wheel[slot]) != NULL) {
        ws_unlink(ws);
        ws_sweep_one(s, ws);
        ws_unlink(ws); /* a ping written re-files it: filed once, below */
        ws_link(s, ws, ws->state == WS_OPEN ? ws_next_due(s, ws) : s->sweep_tick + s->ws_wheel_len);
    }
    if (s->sweep_tick % s->sweep_ticks == 0)
        core__http_sweep(s);
}

/* At least 4 sweeps per interval and at most 1 s between them; at most a
 * million per interval, so tick arithmetic never overflows in practice. */
static uint32_t sweeps_per_interval(double interval)
{
    double n = interval < 4.0 ? 4.0 : interval;
    if (n > 1e6)
        n = 1e6;
    return (uint32_t)(n + 0.999);
}

void core__ws_server_init(core_http_server_t *s)
{
    s->sweep_ticks = sweeps_per_interval(s->opts.ws_ping_interval);
    /* room for the furthest due (a ping interval and a sweep on), up to 64 */
    s->ws_wheel_len = s->sweep_ticks + 3 < 64 ? s->sweep_ticks + 3 : 64;
    s->ws_wheel = core_xcalloc(s->ws_wheel_len, sizeof *s->ws_wheel);
    double period = s->opts.ws_ping_interval / s->sweep_ticks;
    ev_timer_init(&s->sweep, ws_on_sweep, period, period);
    s->sweep.data = s;
    ev_timer_start(s->loop, &s->sweep);
    ev_unref(s->loop); /* the sweep alone does not keep ev_run going */
}

static core_ws_t *ws_any(const core_http_server_t *s)
{
    for (uint32_t i = 0; i < s->ws_wheel_len; i++)
        if (s->ws_wheel[i])
            return s->ws_wheel[i];
    return NULL;
}

void core__ws_server_shutdown(core_http_server_t *s)
{
    ev_ref(s->loop);
    ev_timer_stop(s->loop, &s->sweep);
    core_ws_t *ws;
    /* from the first non-empty slot each time: the close frame re-files ws */
    while ((ws = ws_any(s)) != NULL) {
        if (ws->state == WS_OPEN) {
            ws_write_close(ws, CORE_WS_GOING_AWAY, "server shutting down");
            ws->close_code = CORE_WS_GOING_AWAY;
        }
        core_conn_set_ud(ws->conn, NULL);
        core_conn_close(ws->conn);
        ws_free(ws);
    }
    free(s->ws_wheel);
    s->ws_wheel = NULL;
    while (s->ws_spare) {
        ws_ctx_t *c = s->ws_spare;
        s->ws_spare = c->next;
        ws_ctx_destroy(c);
    }
    s->ws_spares = 0;
}

/* ------------------------------------------------------------------ public */

int core_ws_send_text(core_ws_t *ws, const char *msg, size_t len)
{
    size_t max_out = ws->base.srv->opts.max_out;

    if (ws->state != WS_OPEN || !ws->conn)
        return -1;
    if (len + 10 > max_out || core_ws_out_pending(ws) > max_out - len - 10) {
        CORE_WARN("ws %s: output over %zu bytes, closing slow client", core_ws_peer(ws), max_out);
        ws_finish(ws, CORE_WS_POLICY, 1);
        return -1;
    }
    if (ws_write_frame(ws, WSLAY_TEXT_FRAME, msg, len) < 0) {
        ws_finish(ws, CORE_WS_POLICY, 1);
        return -1;
    }
    return 0;
}

void core_ws_set_ud(core_ws_t *ws, void *ud)
{
    ws->ud = ud;
}

void *core_ws_ud(const core_ws_t *ws)
{
    return ws->ud;
}

const char *core_ws_peer(const core_ws_t *ws)
{
    return ws->conn ? core_conn_peer(ws->conn) : "";
}

size_t core_ws_buffer_bytes(const core_ws_t *ws)
{
    enum { WSLAY_CTX_BYTES = 9 * 1024 }; /* its two 4 KiB buffers and state (private) */
    return (ws->conn ? core_conn_buffer_bytes(ws->conn) : 0) + (ws->ctx ? WSLAY_CTX_BYTES : 0);
}

size_t core_ws_out_pending(const core_ws_t *ws)
{
    size_t n = ws->conn ? core_conn_out_pending(ws->conn) : 0;

    if (ws->ctx)
        n += wslay_event_get_queued_msg_length(ws->ctx->wslay);
    return n;
}

/* glibc adds 8 bytes to an allocation and rounds it up to 16. */
_Static_assert(sizeof(struct core_ws) + 8 <= 128, "core_ws outgrew its 128-byte allocation");
