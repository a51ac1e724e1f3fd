/* gateway: the cluster's HTTP front door (PROTOCOL.md section 3).
 *
 *   GET  /servers  live nodes from Redis (chat:nodes), least loaded first
 *   GET  /healthz  200 "ok" while Redis answers a PING, else 503
 *   GET  /metrics  Prometheus text
 *   POST /push     admin push (Bearer token) queued in Redis (chat:push)
 *   GET  /, /...   the web client's files (--web-root), read at start-up
 *
 * Stateless apart from a short /servers cache: run as many as you like.
 * Everything runs on one libev loop and never blocks it; the only blocking
 * I/O (reading the token file and the web files) happens inside gateway_new,
 * at start-up.
 *
 * Threading: every function must be called on the loop thread.
 */
#ifndef CHAT_GATEWAY_H
#define CHAT_GATEWAY_H

#include <stddef.h>
#include <stdint.h>
#include <ev.h>
#include "core/core.h"

#define GATEWAY_NODE_TTL_MS 5000   /* default --node-ttl */
#define GATEWAY_CACHE_MS 250       /* default --servers-cache: /servers answers reuse for this long */
#define GATEWAY_MAX_BODY 32768     /* request body cap (413 above): a 4096-byte text, escaped */
#define GATEWAY_TOKEN_MAX 1024     /* longest accepted push token */
#define GATEWAY_MAX_NODES 4096     /* entries of chat:nodes considered per listing */
#define GATEWAY_WEB_FILES 256      /* --web-root: at most this many files */
#define GATEWAY_WEB_BYTES (8 << 20) /* ... and this many bytes in all */

typedef struct gateway_config {
    char listen[256];          /* HOST:PORT; port 0 = ephemeral (tests) */
    char redis[256];           /* HOST:PORT */
    char redis_user[64];       /* ACL user, "" = Redis's default user */
    char redis_password_file[1024];
    char redis_password[256];  /* loaded by the parse: file, else $CHAT_REDIS_PASSWORD */
    char push_token_file[1024]; /* "" = push disabled: every POST /push gets 401 */
    char web_root[1024];       /* "" = no web client */
    char log_level[16];        /* applied by main, not by gateway_new */
    uint64_t node_ttl_ms;      /* list nodes whose ts is at most this old */
    uint64_t servers_cache_ms; /* 0 = no cache */
    double redis_timeout;      /* seconds per Redis command */
    uint16_t num;              /* msgid node number; 0 = the bound listen port */
    int shared_port;           /* --shared-port: other gateways listen on the same port */
    unsigned max_conns_per_ip; /* connections per source address; 0 = no cap */
    core_addrset_t exempt;     /* --limit-exempt: addresses the cap skips */
    char tls_cert[512];          /* --tls-cert + --tls-key: https only */
    char tls_key[512];
} gateway_config_t;

void gateway_config_defaults(gateway_config_t *c);
/* getopt_long over argv (see --help). Returns 0 when the gateway should
 * run, 1 after printing --help to stdout, -1 on bad usage (reported on
 * stderr). */
int gateway_config_parse(gateway_config_t *c, int argc, char **argv);

typedef struct gateway gateway_t;

/* Reads the push token (whitespace-trimmed; an empty file is an error),
 * listens on cfg->listen and starts connecting to Redis (asynchronously:
 * a gateway without Redis still serves, answering 503 where Redis is
 * needed). cfg is copied. Returns NULL with err filled on failure. */
gateway_t *gateway_new(struct ev_loop *loop, const gateway_config_t *cfg, char *err,
                       size_t errlen);
/* The bound listen port (useful with port 0). */
int gateway_port(const gateway_t *g);
/* Stops listening, closes connections; requests still waiting for Redis
 * are answered 503 (to nobody) and freed. NULL is a no-op. */
void gateway_free(gateway_t *g);

#endif
