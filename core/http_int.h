/* http_int.h: what core/http.c and core/ws.c share (core/ only).
 *
 * A connection accepted by the HTTP server starts as an HTTP peer; after a
 * WebSocket handshake the same core_conn is handed to ws.c. Both peer
 * structs start with a core__peer_kind_t so the one set of conn callbacks
 * in http.c can dispatch on core_conn_ud().
 */
#ifndef CHAT_HTTP_INT_H
#define CHAT_HTTP_INT_H

#include "core/core.h"

typedef enum {
    CORE__PEER_HTTP = 1,
    CORE__PEER_WS = 2,
} core__peer_kind_t;

typedef struct core__http_conn core__http_conn_t;
/* A source address with live connections (only with max_conns_per_ip). */
typedef struct core__addr core__addr_t;

/* The first member of both peer structs. */
typedef struct core__peer {
    core__peer_kind_t kind;
    core_http_server_t *srv;
    core__addr_t *addr; /* counted against its address; NULL: not counted */
} core__peer_t;

/* Plain HTTP connections a server at opts.max_conns still takes (its
 * /metrics and health checks stay readable); past that it closes at accept. */
#define CORE__HTTP_FULL_ROOM 32

struct core_http_server {
    struct ev_loop *loop;
    core_listener_t *listener;
    core_http_server_cbs_t cbs; /* ws_path points at ws_path_copy */
    char *ws_path_copy;
    core_http_server_opts_t opts;
    void *ud;
    size_t nconns;
    core__http_conn_t *http_head; /* plain HTTP connections */
    core_ws_t **ws_wheel;         /* WebSockets by the sweep tick they are due at */
    uint32_t ws_wheel_len;        /* slots: tick % len; a due further off waits a lap */
    ev_timer sweep;               /* every ping interval / sweep_ticks (<= 1 s) */
    uint32_t sweep_tick;          /* sweeps so far: the clock of idleness */
    uint32_t sweep_ticks;         /* sweeps per ping interval */
    core__addr_t *addrs;          /* connections per source address (uthash) */
    size_t refused;               /* closed at accept (a cap) or upgrade refused 503 (full) */
    struct core__ws_ctx *ws_spare; /* ws.c: idle wslay contexts kept for reuse */
    size_t ws_spares;
};

/* http.c: serves an accepted (or socketpair) fd as an HTTP peer of the
 * server srv; the listener's accept callback. Fuzz targets use it to run
 * the real parser without TCP. */
void core__http_accept(struct ev_loop *loop, int fd, const char *peer, void *srv);

/* http.c, also used by the client (wsc.c): the Sec-WebSocket-Accept value
 * for key (base64(SHA1(key + GUID)), out needs 29 bytes; 0 / -1), and
 * whether a comma-separated header value holds token (case-insensitive). */
int core__ws_accept(const char *key, char *out);
int core__header_has_token(const char *value, const char *token);

/* http.c: closes HTTP connections idle for opts.ws_idle_pings sweeps;
 * run by ws.c's sweep timer once per ping interval. */
void core__http_sweep(core_http_server_t *s);

/* ws.c: takes over conn (whose 101 response is queued) and feeds it the
 * bytes that followed the handshake. Returns how many of them were
 * consumed (all), or -1 when the conn must close. */
long core__ws_attach(core_http_server_t *s, core_conn_t *conn, core__addr_t *addr,
                     const char *rest, size_t len);
/* ws.c: conn callbacks forwarded by http.c for a WebSocket peer. */
long core__ws_on_read(core_ws_t *ws, const char *data, size_t len);
void core__ws_on_close(core_ws_t *ws);
/* ws.c: the idle sweep timer, and closing every WebSocket on server free. */
void core__ws_server_init(core_http_server_t *s);
void core__ws_server_shutdown(core_http_server_t *s);

#endif
