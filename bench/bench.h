/* bench: chat-bench, the load generator.
 *
 * Pieces, one file each:
 * - stats.c     log-linear latency histogram and the per-worker result
 *               (merge, JSON encode/decode, the final report line);
 * - target.c    the 127.0.0.0/8 guard, ws[s]:// URL parsing, gateway lookup;
 * - wsclient.c  a lean WebSocket client per connection (own framing, no
 *               per-connection buffers while idle, source-address binding);
 * - scenario.c  the worker: clients' state machine and the scenarios;
 * - main.c      flags, fork of --procs workers, aggregation, report.
 *
 * Ownership: functions returning char * hand it to the caller (free()).
 * Everything here runs on one thread per process.
 */
#ifndef CHAT_BENCH_H
#define CHAT_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include <ev.h>

#include "core/core.h"

/* ------------------------------------------------------------------ histogram */

/* Values below 2^BENCH_HIST_SUB_BITS are exact; above, each power of two is
 * split into 2^(BENCH_HIST_SUB_BITS-1) linear buckets, so a reported value
 * is within 1/64 of the true one (HdrHistogram-like, 2 significant digits). */
#define BENCH_HIST_SUB_BITS 7
#define BENCH_HIST_BUCKETS (128 + 57 * 64)

typedef struct bench_hist {
    uint64_t count;
    uint64_t min;
    uint64_t max;
    double sum;
    uint64_t counts[BENCH_HIST_BUCKETS];
} bench_hist_t;

void bench_hist_init(bench_hist_t *h);
void bench_hist_record(bench_hist_t *h, uint64_t value);
void bench_hist_merge(bench_hist_t *into, const bench_hist_t *from);
/* The value at percentile p (0..100): the highest value equivalent to the
 * bucket holding that rank, capped at max. 0 when empty. */
uint64_t bench_hist_percentile(const bench_hist_t *h, double p);
size_t bench_hist_index(uint64_t value);
uint64_t bench_hist_bucket_high(size_t index);

/* ------------------------------------------------------------------ results */

/* What one worker measured; the parent merges them. Latencies in µs. */
typedef struct bench_result {
    uint64_t clients;     /* clients that reached the ready state */
    uint64_t sent;        /* requests acknowledged with code 0 (chat, login, ping) */
    uint64_t expected;    /* deliveries expected from what this worker sent */
    uint64_t delivered;   /* unique deliveries (or successful logins / pongs) */
    uint64_t dup;         /* the same message delivered twice to one client */
    uint64_t reordered;   /* arrived too far out of order to be checked for dup */
    uint64_t errors;      /* error answers, failed connects, unexpected closes */
    uint64_t connect_errors;
    uint64_t receivers;   /* room members other than the sender (room scenario) */
    uint64_t self_rss_kb; /* the worker's own VmRSS once its clients were set up */
    uint64_t dropped;     /* --reconnect: logged-in connections the server ended */
    uint64_t reconnected; /* --reconnect: of those, logged in again (lat: how long) */
    uint64_t first_drop_unix_us, last_back_unix_us; /* the storm's span (wall clock) */
    uint64_t first_back_unix_us;                    /* its first client logged in again */
    uint64_t asked;       /* --ask-gateway: reconnects that asked the gateway */
    uint64_t ask_misses;  /* of those, no usable answer: a random node instead */
    uint64_t last_tries;  /* --ask-gateway: attempts that tried the last node first */
    uint64_t last_misses; /* of those, its handshake failed: the gateway asked then */
    double elapsed_s;     /* measured phase length */
    bench_hist_t lat;
} bench_result_t;

void bench_result_init(bench_result_t *r);
void bench_result_merge(bench_result_t *into, const bench_result_t *from);
/* One JSON line (no newline) that bench_result_decode reads back. */
char *bench_result_encode(const bench_result_t *r);
int bench_result_decode(const char *json, size_t len, bench_result_t *r); /* 0 / -1 */

/* The report: counts, rate, p50/p99/max in ms, plus extra (consumed, may
 * be NULL) merged in. lost = expected - delivered, never negative. */
cJSON *bench_report_json(const char *scenario, const bench_result_t *r, cJSON *extra);
uint64_t bench_result_lost(const bench_result_t *r);

/* ------------------------------------------------------------------ server CPU */

/* utime + stime (clock ticks) from the text of /proc/PID/stat; the command
 * name may hold spaces and parentheses. 0, or -1 when malformed. */
int bench_proc_stat_cpu_ticks(const char *stat, uint64_t *ticks);
/* utime + stime of these running processes in seconds (/proc/PID/stat);
 * -1 when one cannot be read. */
double bench_pids_cpu_s(const int *pids, int n);
/* CPU seconds per million deliveries; -1 when nothing was delivered. */
double bench_cpu_per_million(double cpu_s, uint64_t delivered);

/* ------------------------------------------------------------------ targets */

#define BENCH_HOST_MAX 256
#define BENCH_PATH_MAX 256

typedef struct bench_target {
    char host[BENCH_HOST_MAX];
    int port;
    char path[BENCH_PATH_MAX];
    char ip[64];          /* the resolved loopback address we connect to */
    int tls;              /* https or wss: TLS with the context of bench_set_tls */
} bench_target_t;

/* The client TLS context every https/wss target uses (verified: the
 * certificate must chain to its CAs and carry the URL's host). */
void bench_set_tls(core_tls_t *tls);
core_tls_t *bench_tls(void);

/* 1 when the dotted/colon address text is inside 127.0.0.0/8 (or ::1,
 * ::ffff:127.x). */
int bench_addr_is_loopback(const char *ip);
/* Resolves host; 0 when every address is loopback (ip gets the first IPv4
 * one), -2 when any address is outside the loopback range, -1 when it does
 * not resolve to an IPv4 address (err says which). */
int bench_resolve_loopback(const char *host, char *ip, size_t iplen, char *err, size_t errlen);
/* Parses scheme://host:port/path (scheme "ws" or "http", or the same
 * with TLS: "wss", "https") and checks the host with
 * bench_resolve_loopback. 0, -1 (bad URL) or -2 (refused). */
int bench_target_parse(const char *url, const char *scheme, bench_target_t *t, char *err,
                       size_t errlen);
/* GET /servers on a gateway (blocking, with timeout; called before any
 * loop runs) and fills up to max node targets. Returns the count, -1 on
 * failure, -2 when a listed node is outside the loopback range. */
int bench_gateway_nodes(const bench_target_t *gw, bench_target_t *out, int max, double timeout_s,
                        char *err, size_t errlen);
/* POST /push with body (JSON, sent as is) and the admin token (blocking,
 * with timeout). The HTTP status, or -1 with err set. */
int bench_gateway_push(const bench_target_t *gw, const char *token, const char *body,
                       double timeout_s, char *err, size_t errlen);

/* ------------------------------------------------------------------ WebSocket client */

typedef struct bench_ws bench_ws_t;

typedef struct bench_ws_cbs {
    void (*on_open)(bench_ws_t *ws, void *ud);
    void (*on_text)(bench_ws_t *ws, const char *msg, size_t len, void *ud);
    /* Once, for a failed connect/handshake or an ended session; ws is
     * freed right after. err is 0 for a clean close we asked for. */
    void (*on_close)(bench_ws_t *ws, int err, void *ud);
} bench_ws_cbs_t;

/* Starts a non-blocking connect from src_ip (NULL = any) to t. NULL when
 * the socket cannot even be created (errno set); on_close follows any
 * later failure. */
bench_ws_t *bench_ws_connect(struct ev_loop *loop, const bench_target_t *t, const char *src_ip,
                             const bench_ws_cbs_t *cbs, void *ud);
/* Sends one masked text frame. 0, or -1 when the output cap is exceeded or
 * the socket failed (the client is then closing; on_close follows). */
int bench_ws_send(bench_ws_t *ws, const char *msg, size_t len);
/* Speak Socket.IO 5 over Engine.IO 4 (websocket transport) instead of the
 * plain protocol: for comparisons with a socket.io peer (bench/socketio/). */
void bench_ws_set_socketio(int on);
/* Closes now; on_close(ws, 0) runs before this returns. */
void bench_ws_close(bench_ws_t *ws);
size_t bench_ws_struct_size(void);

/* ------------------------------------------------------------------ worker */

typedef enum {
    BENCH_LOGIN,
    BENCH_IDLE,
    BENCH_DIRECT,
    BENCH_GROUP,
    BENCH_ROOM,
    BENCH_PUSH,     /* idle clients; the parent POSTs /push to all, they time it */
} bench_scenario_t;

typedef struct bench_opts {
    bench_scenario_t scenario;
    const char *scenario_name;
    bench_target_t nodes[64];
    int nnodes;
    int clients;          /* total over all workers */
    int procs;
    double duration_s;
    double warmup_s;      /* direct, group, room: send this long before latencies count */
    double grace_s;
    double setup_timeout_s;
    double connect_rate;  /* connects/s in total */
    double rate;          /* messages/s in total; 0 = closed loop */
    int window;           /* in-flight requests per sender in closed loop */
    int pace_tick;        /* --rate: each 5 ms tick's share at once, not Poisson */
    int group_size;
    int senders;          /* senders per group */
    int msg_size;         /* bytes of message text (at least the header) */
    long max_msgs;        /* per sender, hard cap */
    int do_register;
    int src_bind;         /* worker i connects from 127.0.K.(2+i), K = 0..7 in turn */
    const char *user_prefix;
    long user_offset;     /* client i is user prefix(i + offset) */
    const char *password_format;
    const char *room;
    uint32_t run_id;      /* tags our messages; others' are ignored */
    double reconnect_s;   /* idle: a dropped client logs in again (token) on another
                             node after a random 0..reconnect_s; 0 = off */
    const char *gateway;  /* the --gateway URL, or NULL */
    int ask_gateway;      /* --reconnect asks it where to go (as clients do) */
    int ask_always;       /* ... on every attempt, not the last node first */
    int verbose;
} bench_opts_t;

/* Runs worker `index` of opts->procs: clients [first, first+count). Writes
 * "ready\n" to ctl once set up, waits for a "go" byte from ctl, runs the
 * scenario, then writes its bench_result_encode line + "\n". Returns the
 * process exit code. */
int bench_worker_run(const bench_opts_t *opts, int index, int ctl);

/* The slice of clients worker index owns (pairs never split). */
void bench_worker_slice(const bench_opts_t *opts, int index, int *first, int *count);

#endif
