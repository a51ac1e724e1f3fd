/* gateway internals shared by the files of gateway/ (not a public header). */
#ifndef CHAT_GATEWAY_INT_H
#define CHAT_GATEWAY_INT_H

#include <sodium.h>

#include "core/core.h"
#include "gateway/gateway.h"
#include "proto/proto.h"

typedef enum gateway__route {
    GW_ROUTE_SERVERS,
    GW_ROUTE_HEALTHZ,
    GW_ROUTE_METRICS,
    GW_ROUTE_PUSH,
    GW_ROUTE_WEB,
    GW_ROUTE_OTHER,
    GW_ROUTE_COUNT,
} gateway__route_t;

/* Statuses counted one by one; the rest fall into "other". */
#define GW_STATUS_KINDS 10

typedef struct gateway__metrics {
    uint64_t requests[GW_ROUTE_COUNT][GW_STATUS_KINDS];
    uint64_t push_accepted;
    uint64_t push_rejected;
    uint64_t redis_errors;
    uint64_t servers_cache_hits;
    uint64_t nodes_listed; /* gauge: entries in the last listing */
} gateway__metrics_t;

/* A request waiting for the shared HGETALL of /servers. */
typedef struct gateway__waiter {
    core_http_req_t *req;
    struct gateway__waiter *next;
} gateway__waiter_t;

/* One live node of the last listing, with what this gateway sent it since. */
typedef struct gateway__node {
    char *id;
    char *text;      /* {"id":..,"addr":..,"url":..,"load":N} with N the estimate */
    size_t head_len; /* text up to and including "load": */
    size_t text_len;
    size_t text_cap;
    double load;     /* connections the node reported */
    double ts;       /* when it reported them (its clock, ms) */
    uint64_t sent;   /* answers that put it first since that report */
    uint64_t before; /* ... in the interval before it (maybe not in the report yet) */
} gateway__node_t;

typedef struct gateway__servers {
    gateway__node_t *nodes; /* sorted by id */
    size_t count;
    gateway__node_t **order; /* into nodes, least estimated load first */
    core_buf_t body;        /* the answer being sent */
    int listed;             /* a listing arrived (the table means something) */
    uint64_t at_ms;         /* monotonic time it arrived */
    int fetching;           /* an HGETALL is in flight */
    gateway__waiter_t *waiters;
} gateway__servers_t;

/* web.c: the web client's files, in memory. */
typedef struct gateway__web_file gateway__web_file_t;
typedef struct gateway__web {
    gateway__web_file_t *files;
    size_t count;
} gateway__web_t;

struct gateway {
    struct ev_loop *loop;
    gateway_config_t cfg;
    core_http_server_t *http;
    core_tls_t *tls;       /* https context, or NULL */
    core_redis_t *redis;
    proto_msgid_gen_t msgids;
    int push_enabled;
    unsigned char token_hash[crypto_generichash_BYTES];
    gateway__servers_t servers;
    gateway__metrics_t metrics;
    gateway__web_t web;
};

/* Every answer goes through here so that it is counted. */
void gateway__respond(gateway_t *g, core_http_req_t *req, gateway__route_t route, int status,
                      const char *ctype, const char *body, size_t len);
/* {"error": text} with status. */
void gateway__respond_error(gateway_t *g, core_http_req_t *req, gateway__route_t route,
                            int status, const char *text);

/* Prints o unformatted and deletes it; aborts on OOM (cJSON's only failure).
 * The caller frees the string. */
char *gateway__json_take(cJSON *o);

/* config.c: the trimmed token from path into out (NUL-terminated); 0 / -1 + err. */
int gateway__read_token(const char *path, char *out, size_t outlen, char *err, size_t errlen);

/* Route handlers. */
void gateway__servers(gateway_t *g, core_http_req_t *req);
void gateway__servers_free(gateway_t *g);
void gateway__healthz(gateway_t *g, core_http_req_t *req);
void gateway__metrics(gateway_t *g, core_http_req_t *req);
void gateway__push(gateway_t *g, core_http_req_t *req);
/* Hash of a token as stored in token_hash (so comparisons are constant-time
 * whatever the lengths). */
void gateway__token_hash(const char *token, size_t len, unsigned char out[crypto_generichash_BYTES]);

/* web.c: loads every file under root (at start, off the loop); 0 / -1 + err. */
int gateway__web_load(gateway__web_t *w, const char *root, char *err, size_t errlen);
void gateway__web_free(gateway__web_t *w);
/* The file served at path ("/" is "/index.html"), or NULL. */
const gateway__web_file_t *gateway__web_find(const gateway__web_t *w, const char *path);
const char *gateway__web_ctype(const char *name);
/* Answers a GET/HEAD of a web file and returns 1; 0 when it is not one. */
int gateway__web_serve(gateway_t *g, core_http_req_t *req);

/* metrics.c */
void gateway__count(gateway_t *g, gateway__route_t route, int status);

#endif
