/* core: the event-loop toolkit every binary shares.
 *
 * Logging, checked allocation, byte buffers, TCP listeners and connections
 * with bounded buffers, an HTTP/1.1 server (http-parser) with WebSocket
 * upgrade (wslay), a WebSocket client, and a worker pool / mailbox that
 * hands results from other threads back to the libev loop.
 *
 * Threading: everything here except core_pool_submit's work function,
 * core_mailbox_post and the log/alloc helpers must be called on the loop
 * thread that owns the object.
 */
#ifndef CHAT_CORE_H
#define CHAT_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <ev.h>

/* ------------------------------------------------------------------ log */

typedef enum {
    CORE_LOG_DEBUG = 0,
    CORE_LOG_INFO = 1,
    CORE_LOG_WARN = 2,
    CORE_LOG_ERROR = 3,
} core_log_level_t;

/* Lines go to stderr as "2026-11-23T09:31:37.123Z LEVEL [tag] text". */
void core_log_set_level(core_log_level_t level);
void core_log_set_tag(const char *tag); /* e.g. "node-1"; copied */
/* "debug", "info", "warn", "error" -> level; -1 when unknown. */
int core_log_parse_level(const char *name);
void core_log(core_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define CORE_DEBUG(...) core_log(CORE_LOG_DEBUG, __VA_ARGS__)
#define CORE_INFO(...) core_log(CORE_LOG_INFO, __VA_ARGS__)
#define CORE_WARN(...) core_log(CORE_LOG_WARN, __VA_ARGS__)
#define CORE_ERROR(...) core_log(CORE_LOG_ERROR, __VA_ARGS__)

/* ------------------------------------------------------------------ memory */

/* Allocation that aborts on out-of-memory (the real defence is bounded
 * buffers); xcalloc and xreallocarray check n * size for overflow. */
void *core_xmalloc(size_t size);
void *core_xcalloc(size_t n, size_t size);
void *core_xrealloc(void *p, size_t size);
char *core_xstrdup(const char *s);
char *core_xstrndup(const char *s, size_t n);

/* ------------------------------------------------------------------ string-keyed table */

/* FNV-1a, 64 bits: also fixes which Redis bucket holds a user's session
 * (docs/CLUSTER.md), so every node and tool must compute it alike. */
uint64_t core_strhash(const char *s);

/* Pointers to items found by a NUL-terminated key at key_off inside each
 * item (a char array or a flexible member, not a pointer); 8 bytes a slot,
 * nothing in the item. Walk slots[0..cap) for the items; a walk must not
 * add, remove or fit. */
typedef struct core_strtab {
    void **slots;
    size_t cap;                 /* 0 or a power of two */
    size_t count;
    size_t key_off;
} core_strtab_t;
void core_strtab_init(core_strtab_t *t, size_t key_off);
void core_strtab_free(core_strtab_t *t); /* the slots, not the items */
void core_strtab_free_all(core_strtab_t *t); /* the slots and the items (malloc'd) */
void *core_strtab_find(const core_strtab_t *t, const char *key);
void core_strtab_add(core_strtab_t *t, void *item);          /* its key is not in t */
void core_strtab_remove(core_strtab_t *t, const void *item); /* it is in t */
/* After removals: gives slots back while under 1/8 used (growth is at 3/4). */
void core_strtab_fit(core_strtab_t *t);

/* ------------------------------------------------------------------ time */

uint64_t core_now_ms(void);      /* wall clock, ms since the epoch */
uint64_t core_mono_ms(void);     /* monotonic, ms */
/* CLOCK_MONOTONIC now + usec, for a timed wait on a condition variable
 * made with pthread_condattr_setclock(CLOCK_MONOTONIC). */
struct timespec core_mono_after(uint64_t usec);
/* 1 when bytes already wait to be read on fd (poll, no wait). A timeout
 * that fires while they do is our loop running late, not the peer. */
int core_fd_has_input(int fd);

/* ------------------------------------------------------------------ buffers */

/* A growable byte buffer. data is NUL-terminated for convenience (the NUL
 * is not counted in len). core_buf_free(NULL-initialised) is a no-op. */
typedef struct core_buf {
    char *data;
    size_t len;
    size_t cap;
} core_buf_t;

void core_buf_init(core_buf_t *b);
void core_buf_free(core_buf_t *b);
void core_buf_reset(core_buf_t *b);
/* Room for extra more bytes (and the NUL) in one allocation: for a caller
 * that knows about how much it will append. */
void core_buf_reserve(core_buf_t *b, size_t extra);
void core_buf_append(core_buf_t *b, const void *data, size_t len);
void core_buf_append_str(core_buf_t *b, const char *s);
void core_buf_printf(core_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes. */
void core_buf_consume(core_buf_t *b, size_t n);

/* Immutable reference-counted bytes: one encoded frame shared by many
 * connections (fan-out encodes once). Loop-thread only. */
typedef struct core_bytes {
    int refs;
    size_t len;
    char data[];
} core_bytes_t;

core_bytes_t *core_bytes_new(const void *data, size_t len); /* refs = 1 */
core_bytes_t *core_bytes_ref(core_bytes_t *b);
void core_bytes_unref(core_bytes_t *b); /* NULL is a no-op */

/* ------------------------------------------------------------------ address */

/* Splits "host:port" (or "[v6]:port"); host may be empty (any). 0 / -1. */
int core_parse_hostport(const char *s, char *host, size_t hostlen, int *port);

/* Splits "SCHEME://host[:port][/path]" (port 80 when absent, 443 for the
 * schemes https and wss; path "/" when absent; no spaces or line breaks in
 * path). 0 / -1. */
int core_parse_url(const char *url, const char *scheme, char *host, size_t hostlen, int *port,
                   char *path, size_t pathlen);

/* Sets of address prefixes, e.g. "127.0.0.0/8,::1" (at most
 * CORE_ADDRSET_MAX; "none" or "" = empty): who skips per-address limits. */
#define CORE_ADDRSET_MAX 16
typedef struct core_prefix {
    int family;
    unsigned char bytes[16];
    unsigned bits;
} core_prefix_t;
typedef struct core_addrset {
    core_prefix_t p[CORE_ADDRSET_MAX];
    size_t count;
} core_addrset_t;

/* 0, or -1 with err naming the bad entry (set left empty). */
int core_addrset_parse(core_addrset_t *set, const char *list, char *err, size_t errlen);
/* 1 when the numeric address ip is inside a prefix of set (NULL: none). */
int core_addrset_has(const core_addrset_t *set, const char *ip);
/* "1.2.3.4:5" or "[::1]:5" -> the address alone. */
void core_peer_ip(const char *peer, char *ip, size_t iplen);

/* ------------------------------------------------------------------ numbers */

/* A whole string as a number in [min, max] (NaN and out-of-range refused). 0 / -1. */
int core_parse_double(const char *s, double min, double max, double *out);

/* Bytes with an optional K, M or G suffix (either case): "64M" -> 67108864;
 * -1 when malformed, negative or too large for a long long. */
long long core_parse_size(const char *s);

/* Copies src into dst (cap bytes with the NUL); -1, dst untouched, when it
 * does not fit. */
int core_copy_str(char *dst, size_t cap, const char *src);
/* Copies what fits of src (NULL: "") into dst, always NUL-terminated when
 * cap > 0: snprintf's "%s" without the format engine, for the hot path. */
void core_copy_trunc(char *dst, size_t cap, const char *src);

/* The binaries' flag loop: getopt_long over long options only. apply sets
 * one option (0 / -1 for a bad value); help is the code of --help. Errors
 * are reported as "<prog>: ..." with usage(stderr). Returns 1 after
 * --help (usage(stdout)), -1 on an error, 0 when every argument parsed. */
struct option;
int core_parse_flags(const char *prog, int argc, char **argv, const struct option *opts,
                     int help, int (*apply)(void *ud, int opt, const char *arg),
                     void (*usage)(FILE *f), void *ud);

/* ------------------------------------------------------------------ TCP */

typedef struct core_conn core_conn_t;

typedef struct core_conn_cbs {
    /* Bytes arrived: data/len is everything unconsumed so far. Return how
     * many bytes were consumed (0..len), or -1 to close the connection.
     * The connection may be closed from inside the callback. */
    long (*on_read)(core_conn_t *c, const char *data, size_t len, void *ud);
    /* Outgoing connect finished: ok = 0 on success, else an errno. A failed
     * connect is followed by on_close. May be NULL. */
    void (*on_connect)(core_conn_t *c, int err, void *ud);
    /* Called exactly once when the connection ends (peer close, error,
     * buffer overflow, core_conn_close). The conn is freed after it. */
    void (*on_close)(core_conn_t *c, void *ud);
} core_conn_cbs_t;

typedef struct core_conn_limits {
    size_t max_in;  /* unconsumed input cap; over it the conn is closed */
    size_t max_out; /* queued output cap; over it the conn is closed */
    unsigned read_slices; /* 64 KiB reads per readable event (0 = 1): a link that
                             carries many clients' traffic gets their share */
    size_t keep_buf;      /* an emptied buffer up to this size is kept for the next
                             loop turn (0 = 4 KiB): a busy link keeps its room */
} core_conn_limits_t;

/* Non-blocking connect to host:port (numeric IP or "localhost"). */
core_conn_t *core_conn_connect(struct ev_loop *loop, const char *host, int port,
                               const core_conn_limits_t *limits, const core_conn_cbs_t *cbs,
                               void *ud);
/* The same from the local address src (numeric IP, or NULL for any): a
 * load generator spreads its connections over many source addresses. */
core_conn_t *core_conn_connect_from(struct ev_loop *loop, const char *src, const char *host,
                                    int port, const core_conn_limits_t *limits,
                                    const core_conn_cbs_t *cbs, void *ud);
/* Queues bytes for sending (copied). Returns 0, or -1 when the output cap
 * would be exceeded: the connection is then being closed. */
int core_conn_write(core_conn_t *c, const void *data, size_t len);
/* Sends what is queued, then closes (on_close follows, maybe later). */
void core_conn_close(core_conn_t *c);
/* Closes now, dropping queued output. */
void core_conn_abort(core_conn_t *c);
size_t core_conn_out_pending(const core_conn_t *c);
/* Releases its buffers while they are empty (an idle connection keeps none). */
void core_conn_trim(core_conn_t *c);
/* Bytes its input and output buffers hold allocated. */
size_t core_conn_buffer_bytes(const core_conn_t *c);
void core_conn_set_ud(core_conn_t *c, void *ud);
void *core_conn_ud(const core_conn_t *c);
const char *core_conn_peer(const core_conn_t *c); /* "ip:port" */
int core_conn_has_input(const core_conn_t *c); /* core_fd_has_input of its socket */

typedef struct core_listener core_listener_t;
typedef void (*core_accept_fn)(struct ev_loop *loop, int fd, const char *peer, void *ud);

/* Binds and listens on host:port (port 0 = ephemeral; see core_listener_port).
 * The accept callback owns fd (already non-blocking). When accept fails with
 * EMFILE/ENFILE the listener pauses for a moment instead of spinning. */
core_listener_t *core_listener_new(struct ev_loop *loop, const char *host, int port,
                                   core_accept_fn on_accept, void *ud, char *err, size_t errlen);
/* The same; with shared set, other processes that set it may listen on the
 * same host:port (SO_REUSEPORT) and the kernel spreads connections over
 * them. */
core_listener_t *core_listener_new_shared(struct ev_loop *loop, const char *host, int port,
                                          int shared, core_accept_fn on_accept, void *ud,
                                          char *err, size_t errlen);
int core_listener_port(const core_listener_t *l);
void core_listener_free(core_listener_t *l);

/* Wraps an fd accepted by a core_listener: non-blocking, TCP_NODELAY
 * inherited from the listener (no system call here for either). */
core_conn_t *core_conn_adopt(struct ev_loop *loop, int fd, const char *peer,
                             const core_conn_limits_t *limits, const core_conn_cbs_t *cbs,
                             void *ud);

/* ------------------------------------------------------------------ TLS */

/* TLS 1.2/1.3 (OpenSSL). A server context holds a certificate chain and its
 * key (PEM); a client context verifies the peer's chain and name against
 * ca_file (PEM), or the system's store when ca_file is NULL or "". Files are
 * read here, once (call at start, not from the loop). NULL + err on error. */
typedef struct core_tls core_tls_t;
core_tls_t *core_tls_server_new(const char *cert_file, const char *key_file, char *err,
                                size_t errlen);
core_tls_t *core_tls_client_new(const char *ca_file, char *err, size_t errlen);
int core_tls_is_server(const core_tls_t *t);
/* Connections made with t keep working after it is freed. */
void core_tls_free(core_tls_t *t);

/* An SSL (OpenSSL) reading and writing socket fd directly, for callers
 * that do their own non-blocking I/O (chat-bench): SSL_read/SSL_write with
 * partial writes and moving write buffers allowed. A client context checks
 * host. NULL on error; the caller SSL_free()s it (fd stays open).
 * core_tls_reason: why the call that returned rc failed, in one line. */
struct ssl_st;
struct ssl_st *core_tls_ssl_on_fd(core_tls_t *t, int fd, const char *host);
void core_tls_reason(struct ssl_st *ssl, int rc, char *out, size_t cap);

/* Makes c a TLS connection: call right after core_conn_adopt (server
 * context) or core_conn_connect (client context; host is the name or IP the
 * certificate must carry), before any write. Writes made before the
 * handshake ends are held (within max_out) and sent after it; on_read sees
 * plaintext only. 0 / -1 (c untouched). */
int core_conn_start_tls(core_conn_t *c, core_tls_t *t, const char *host);
/* Why TLS failed on c ("" when it did not), e.g. "certificate verify
 * failed: ..."; valid until on_close returns. */
const char *core_conn_tls_error(const core_conn_t *c);

/* ------------------------------------------------------------------ HTTP + WebSocket server */

#define CORE_WS_MAX_MESSAGE 65536

/* WebSocket close codes used by the protocol. */
enum {
    CORE_WS_NORMAL = 1000,
    CORE_WS_GOING_AWAY = 1001,
    CORE_WS_PROTOCOL_ERROR = 1002,
    CORE_WS_UNSUPPORTED = 1003,
    CORE_WS_INVALID_DATA = 1007,
    CORE_WS_POLICY = 1008,
    CORE_WS_TOO_BIG = 1009,
    CORE_WS_INTERNAL = 1011,
};

typedef struct core_http_server core_http_server_t;
typedef struct core_http_req core_http_req_t;
typedef struct core_ws core_ws_t;

typedef struct core_http_server_cbs {
    /* A plain HTTP request. The handler must call core_http_respond exactly
     * once, now or later (async); if the client goes away first the
     * response is dropped safely. */
    void (*on_request)(core_http_req_t *req, void *ud);
    /* WebSocket: upgrades are accepted only at ws_path (others get 404).
     * NULL ws_path disables WebSocket. */
    const char *ws_path;
    void (*on_ws_open)(core_ws_t *ws, void *ud);
    /* One complete, UTF-8-valid text message (not NUL-terminated). */
    void (*on_ws_text)(core_ws_t *ws, const char *msg, size_t len, void *ud);
    /* Called once when the WebSocket ends for any reason; ws is freed after. */
    void (*on_ws_close)(core_ws_t *ws, int code, void *ud);
} core_http_server_cbs_t;

typedef struct core_http_server_opts {
    size_t max_body;          /* request body cap (413 above); default 65536 */
    size_t max_out;           /* per-connection output cap; default 4 MiB */
    double ws_ping_interval;  /* seconds; idle clients get pinged; default 30 */
    int ws_idle_pings;        /* closed (1001) after this many silent intervals; default 3;
                               * plain HTTP connections idle as long are closed too */
    core_tls_t *tls;          /* a server context: https and wss only; NULL = plain.
                               * Must outlive the server. */
    unsigned max_conns_per_ip; /* connections (HTTP and WebSocket) per source
                                * address; more are closed at accept, before any
                                * byte (TLS included) is read; 0 = no cap */
    const core_addrset_t *exempt; /* addresses the cap skips (NULL: none); must
                                   * outlive the server */
    unsigned max_conns;       /* open connections in all; past it a WebSocket
                               * upgrade is answered 503, and past it by a few
                               * (kept for plain HTTP: metrics, health checks)
                               * connections are closed at accept, so a full
                               * server refuses at once (the client tries
                               * another) instead of leaving them in the
                               * backlog at the fd limit; 0 = no cap */
    int shared_port;          /* other processes may serve the same port
                               * (SO_REUSEPORT: the kernel spreads connections) */
} core_http_server_opts_t;

core_http_server_t *core_http_server_new(struct ev_loop *loop, const char *host, int port,
                                         const core_http_server_opts_t *opts,
                                         const core_http_server_cbs_t *cbs, void *ud,
                                         char *err, size_t errlen);
int core_http_server_port(const core_http_server_t *s);
/* Number of open connections (HTTP + WebSocket). */
size_t core_http_server_conns(const core_http_server_t *s);
/* Connections closed at accept for being over max_conns_per_ip or
 * max_conns, and upgrades refused (503) for being over max_conns. */
size_t core_http_server_refused(const core_http_server_t *s);
/* Stops listening and closes every connection. */
void core_http_server_free(core_http_server_t *s);

const char *core_http_req_method(const core_http_req_t *r);
const char *core_http_req_path(const core_http_req_t *r); /* without query */
const char *core_http_req_query(const core_http_req_t *r); /* "" when none */
/* Case-insensitive header lookup; NULL when absent. */
const char *core_http_req_header(const core_http_req_t *r, const char *name);
const char *core_http_req_body(const core_http_req_t *r, size_t *len);
const char *core_http_req_peer(const core_http_req_t *r);
void core_http_respond(core_http_req_t *r, int status, const char *content_type,
                       const char *body, size_t len);
/* The same with extra header lines ("Name: value\r\n" each; NULL: none). */
void core_http_respond_headers(core_http_req_t *r, int status, const char *headers,
                               const char *content_type, const char *body, size_t len);

/* Queues one text message (copied). Returns 0, or -1 when the connection
 * is closing or its output cap is exceeded (it is then closed with 1008). */
int core_ws_send_text(core_ws_t *ws, const char *msg, size_t len);
/* Sends a close frame with code/reason and closes once it is flushed. */
void core_ws_close(core_ws_t *ws, int code, const char *reason);
void core_ws_set_ud(core_ws_t *ws, void *ud);
void *core_ws_ud(const core_ws_t *ws);
const char *core_ws_peer(const core_ws_t *ws);
size_t core_ws_out_pending(const core_ws_t *ws);
/* Bytes of buffers it holds (its connection's; wslay's context while one
 * exists): 0 for one quiet for a whole sweep period. */
size_t core_ws_buffer_bytes(const core_ws_t *ws);

/* ------------------------------------------------------------------ WebSocket client */

typedef struct core_wsc core_wsc_t;

typedef struct core_wsc_cbs {
    void (*on_open)(core_wsc_t *c, void *ud);                 /* handshake done */
    void (*on_text)(core_wsc_t *c, const char *msg, size_t len, void *ud);
    /* Once, for a failed connect/handshake or a closed session; freed after. */
    void (*on_close)(core_wsc_t *c, int code, const char *why, void *ud);
} core_wsc_cbs_t;

/* url: ws://host:port/path, or wss:// with tls, a client context (NULL:
 * wss is refused). Returns NULL (and err) for a bad URL. A failed TLS
 * handshake closes with code 1015 and the reason in why. */
core_wsc_t *core_wsc_connect(struct ev_loop *loop, const char *url, core_tls_t *tls,
                             const core_wsc_cbs_t *cbs, void *ud, char *err, size_t errlen);
int core_wsc_send_text(core_wsc_t *c, const char *msg, size_t len);
void core_wsc_close(core_wsc_t *c, int code);
void core_wsc_set_ud(core_wsc_t *c, void *ud);

/* ------------------------------------------------------------------ workers and mailbox */

typedef void (*core_task_fn)(void *arg);

/* A fixed pool of threads. work runs on a worker; done (may be NULL) runs
 * afterwards on the loop thread. FIFO per pool. */
typedef struct core_pool core_pool_t;
core_pool_t *core_pool_new(struct ev_loop *loop, int threads);
void core_pool_submit(core_pool_t *p, core_task_fn work, core_task_fn done, void *arg);
size_t core_pool_backlog(core_pool_t *p); /* queued + running */
/* Finishes queued work, joins the threads, runs remaining done callbacks. */
void core_pool_free(core_pool_t *p);

/* Lets any thread run fn(arg) on the loop thread (ev_async underneath). */
typedef struct core_mailbox core_mailbox_t;
core_mailbox_t *core_mailbox_new(struct ev_loop *loop);
void core_mailbox_post(core_mailbox_t *m, core_task_fn fn, void *arg); /* thread-safe */
void core_mailbox_free(core_mailbox_t *m); /* loop thread; runs nothing left */

/* ------------------------------------------------------------------ Redis */

/* An async Redis client (hiredis 0.14 on this loop) with what hiredis 0.14
 * lacks: a timeout per command, reconnection with backoff, and a hook run
 * after every (re)connect so callers can re-publish their state. */
typedef struct core_redis core_redis_t;
struct redisReply;

/* reply is NULL on timeout, disconnect or when the client is freed; it is
 * owned by the client (valid only during the callback). */
typedef void (*core_redis_cb)(core_redis_t *r, struct redisReply *reply, void *ud);

core_redis_t *core_redis_new(struct ev_loop *loop, const char *host, int port, double timeout_s);
/* Credentials sent (AUTH [user] password) as the first command of every
 * connection; without a password a PING checks that Redis serves us. Until
 * that answers OK the client is not connected; a refusal is logged as an
 * error and retried with backoff. Applies from the next connection attempt
 * (call right after core_redis_new). user may be NULL or "" (the default
 * user); password NULL or "" = no AUTH. Copied; never logged. */
void core_redis_set_auth(core_redis_t *r, const char *user, const char *password);
/* Runs fn every time a connection is established (first and re-connects). */
void core_redis_on_connect(core_redis_t *r, void (*fn)(core_redis_t *r, void *ud), void *ud);
int core_redis_connected(const core_redis_t *r);
/* Queues a command (printf-style, hiredis formats). cb may be NULL. Returns
 * 0, or -1 when not connected: cb is then NOT called. */
int core_redis_cmd(core_redis_t *r, core_redis_cb cb, void *ud, const char *fmt, ...);
int core_redis_cmdargv(core_redis_t *r, core_redis_cb cb, void *ud, int argc, const char **argv,
                       const size_t *argvlen);
/* Commands sent and not yet answered. */
size_t core_redis_inflight(const core_redis_t *r);
/* Every pending callback gets NULL, then the client is freed. */
void core_redis_free(core_redis_t *r);

/* ------------------------------------------------------------------ secrets */

/* Loads a credential into out (cap bytes): from file when file is not
 * empty, else from the environment variable env (if set), else "" (no
 * credential). Trailing whitespace is trimmed; a file must hold one
 * non-empty line. A file others may read is warned about. Returns 0, or -1
 * with err filled ("WHAT FILE: why"; never the secret). */
int core_secret_load(const char *what, const char *file, const char *env, char *out, size_t cap,
                     char *err, size_t errlen);
/* A program's Redis credentials: the password from password_file or
 * $CHAT_REDIS_PASSWORD, the user (when user is "") from $CHAT_REDIS_USER;
 * a user without a password is an error. 0, or -1 with err. */
int core_redis_auth_load(const char *password_file, char *user, size_t user_cap, char *password,
                         size_t password_cap, char *err, size_t errlen);

/* ------------------------------------------------------------------ misc */

/* Ignores SIGPIPE, stops the loop on SIGINT/SIGTERM. */
void core_install_signals(struct ev_loop *loop);
/* Validates UTF-8 (no overlongs, no surrogates, <= U+10FFFF). 1 = valid. */
int core_utf8_valid(const char *s, size_t len);

#endif
