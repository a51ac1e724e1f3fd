/* chat-node flags. Every option has a default; --help lists them all. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "node/node.h"

void node_config_defaults(node_config_t *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen, sizeof c->listen, "127.0.0.1:9001");
    snprintf(c->redis, sizeof c->redis, "127.0.0.1:6379");
    snprintf(c->store_uri, sizeof c->store_uri, "sqlite:chat.db");
    snprintf(c->log_level, sizeof c->log_level, "info");
    c->rate = 50;
    c->burst = 100;
    c->ping_interval = 30;
    c->idle_pings = 3;
    c->hot_reset = 3600;
    c->redis_timeout = 2.0;
    c->pwhash_ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
    c->pwhash_mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
    c->auth_threads = 2;
    c->token_ttl = 7 * 24 * 3600;
    c->max_out = 4u << 20;
    c->pending_max = 10000;
    c->durability = -1; /* the backend's own: SQLite disk, MongoDB the URI's write concern */
    c->commit_linger_us = 1000; /* docs/BENCHMARKS.md: less CPU and a lower p99 under load */
    c->writer_leader = -1;      /* SQLite: one writer (the leader) for the hot path */
    c->loc_cache_ms = 2000;     /* docs/CLUSTER.md: a stale entry costs a hop, not a message */
    c->fanout_slice = 512;      /* ~8 ms of send()s per loop turn; docs/BENCHMARKS.md 15 */
    c->bcast_queue_max = 16u << 20;
    snprintf(c->zk_root, sizeof c->zk_root, "/chat");
    c->zk_timeout_ms = 2000; /* leader change < 3 s; docs/CLUSTER.md: the trade-off */
    /* abuse limits, docs/SECURITY.md: loopback is a local proxy or load generator */
    c->max_conns_per_ip = 1000;
    snprintf(c->limit_exempt, sizeof c->limit_exempt, "127.0.0.0/8,::1");
    c->login_timeout = 10;
    c->login_fails_user = 10;
    c->login_fails_ip = 100;
    c->login_fails_window = 300;
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: chat-node [options]\n"
"  --id ID               node id, unique in the cluster (default node-PORT)\n"
"  --num N               node number 0..65535 used in msgids (default PORT)\n"
"  --listen HOST:PORT    client endpoint, WebSocket at /ws (default 127.0.0.1:9001)\n"
"  --public-url URL      WebSocket URL advertised to clients (default ws://LISTEN/ws,\n"
"                        wss:// with --tls-cert)\n"
"  --tls-cert FILE       serve wss:// and https:// only (TLS 1.2+): the PEM\n"
"                        certificate chain; needs --tls-key\n"
"  --tls-key FILE        the certificate's PEM private key\n"
"  --redis HOST:PORT     Redis (default 127.0.0.1:6379)\n"
"  --redis-user NAME     Redis ACL user (else $CHAT_REDIS_USER, else\n"
"                        Redis's default user)\n"
"  --redis-password-file FILE  Redis password (AUTH); else $CHAT_REDIS_PASSWORD,\n"
"                        else none\n"
"  --store URI           sqlite:PATH or mongodb://... (default sqlite:chat.db)\n"
"  --durability LEVEL    sqlite only: disk (fsync per commit, survives power\n"
"                        loss; default) or process (survives any process\n"
"                        crash, a power loss may take the last commits);\n"
"                        MongoDB takes it from the URI's write concern\n"
"  --commit-linger USEC  under load, a batch of acks waits up to this long\n"
"                        for a write a client waits on, and commits with\n"
"                        it: fewer commits (default 1000; 0 = off)\n"
"  --store-writer WHO    leader or self: who commits chat, ack and login\n"
"                        token writes of a follower (default: leader on\n"
"                        SQLite, one writer per file; self on MongoDB)\n"
"  --location-cache-ms MS  how long a user's node, found in Redis, is reused\n"
"                        for routing (default 2000; 0 = ask Redis each time)\n"
"  --fanout-slice N      a broadcast to everyone, or to a room with more than N\n"
"                        members here, goes to N sessions per loop turn (default 512)\n"
"  --bcast-queue-max B   bytes of those broadcasts waiting on this node;\n"
"                        past it the newest is dropped (default 16 MiB)\n"
"  --dirty-words FILE    words to mask, one per line ('#' comments)\n"
"  --log-level LEVEL     debug, info, warn, error (default info)\n"
"  --rate N              requests/s per connection (default 50)\n"
"  --burst N             rate-limit burst (default 100)\n"
"  --ping-interval SEC   ping idle clients this often (default 30)\n"
"  --idle-pings N        close clients silent for N intervals (default 3)\n"
"  --hot-reset SEC       reset hot-word counts this often (default 3600)\n"
"  --redis-timeout SEC   per-command Redis timeout (default 2)\n"
"  --pwhash-ops N        argon2id opslimit (default %u)\n"
"  --pwhash-mem BYTES    argon2id memlimit, K/M suffix allowed (default 64M)\n"
"  --auth-threads N      password-hashing threads (default 2)\n"
"  --token-ttl SEC       resume token lifetime (default 604800; PROTOCOL.md wants\n"
"                        >= 86400); a resume with more than half of it left\n"
"                        gets the same token back, else a new one\n"
"  --max-out BYTES       per-connection output cap, K/M suffix (default 4M)\n"
"  --pending-max N       pending items streamed per login (default 10000)\n"
"  --zk HOSTS            ZooKeeper host:port[,host:port...]; none = standalone\n"
"                        node that is its own leader\n"
"  --zk-root PATH        znode prefix (default /chat)\n"
"  --zk-timeout MS       ZooKeeper session timeout (default 2000)\n"
"  --cluster-listen HOST:PORT  cluster link endpoint (required with --zk)\n"
"  --cluster-secret-file FILE  shared cluster secret (required with --zk)\n"
"  --max-conns N         connections in all; past it a WebSocket upgrade gets\n"
"                        503 and, 32 later (kept for /metrics and health\n"
"                        checks), connections are closed at accept, so that\n"
"                        clients try another node (default: the open-file\n"
"                        limit less 256 for links, store and Redis)\n"
"  --max-conns-per-ip N  WebSocket connections per source address (default\n"
"                        1000; 0 = no cap)\n"
"  --limit-exempt LIST   addresses/prefixes the per-address limits skip\n"
"                        (default 127.0.0.0/8,::1; none = no exemption)\n"
"  --login-timeout SEC   close connections not logged in by then (default 10;\n"
"                        0 = never)\n"
"  --login-fails-user N  failed logins per user per window before 429\n"
"                        (default 10; 0 = off)\n"
"  --login-fails-ip N    the same per source address (default 100; 0 = off)\n"
"  --login-fails-window SEC  the window (default 300)\n"
"  --zk-auth-file FILE   ZooKeeper digest credentials USER:PASSWORD; else\n"
"                        $CHAT_ZK_AUTH, else none (znodes open to anyone)\n"
"  --help                this text\n",
            (unsigned)crypto_pwhash_OPSLIMIT_INTERACTIVE);
}

/* A number >= min, no upper bound. */
static int parse_double(const char *s, double min, double *out)
{
    return core_parse_double(s, min, HUGE_VAL, out);
}

enum {
    OPT_ID = 256, OPT_NUM, OPT_LISTEN, OPT_PUBLIC_URL, OPT_REDIS, OPT_STORE, OPT_DURABILITY, OPT_LINGER, OPT_WRITER, OPT_LOC_CACHE, OPT_FANOUT_SLICE, OPT_BCAST_MAX, OPT_DIRTY,
    OPT_LOG, OPT_RATE, OPT_BURST, OPT_PING, OPT_IDLE, OPT_HOT, OPT_REDIS_TIMEOUT, OPT_OPS,
    OPT_MEM, OPT_AUTH_THREADS, OPT_TOKEN_TTL, OPT_MAX_OUT, OPT_PENDING_MAX, OPT_ZK, OPT_ZK_ROOT, OPT_ZK_TIMEOUT,
    OPT_CLUSTER_LISTEN, OPT_CLUSTER_SECRET, OPT_REDIS_USER, OPT_REDIS_PW_FILE, OPT_ZK_AUTH_FILE,
    OPT_MAX_CONNS, OPT_MAX_CONNS_IP, OPT_LIMIT_EXEMPT, OPT_LOGIN_TIMEOUT, OPT_FAILS_USER, OPT_FAILS_IP, OPT_FAILS_WINDOW,
    OPT_TLS_CERT, OPT_TLS_KEY, OPT_HELP,
};

static const struct option options[] = {
    {"id", required_argument, NULL, OPT_ID},
    {"num", required_argument, NULL, OPT_NUM},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"public-url", required_argument, NULL, OPT_PUBLIC_URL},
    {"redis", required_argument, NULL, OPT_REDIS},
    {"store", required_argument, NULL, OPT_STORE},
    {"durability", required_argument, NULL, OPT_DURABILITY},
    {"commit-linger", required_argument, NULL, OPT_LINGER},
    {"store-writer", required_argument, NULL, OPT_WRITER},
    {"location-cache-ms", required_argument, NULL, OPT_LOC_CACHE},
    {"fanout-slice", required_argument, NULL, OPT_FANOUT_SLICE},
    {"bcast-queue-max", required_argument, NULL, OPT_BCAST_MAX},
    {"dirty-words", required_argument, NULL, OPT_DIRTY},
    {"log-level", required_argument, NULL, OPT_LOG},
    {"rate", required_argument, NULL, OPT_RATE},
    {"burst", required_argument, NULL, OPT_BURST},
    {"ping-interval", required_argument, NULL, OPT_PING},
    {"idle-pings", required_argument, NULL, OPT_IDLE},
    {"hot-reset", required_argument, NULL, OPT_HOT},
    {"redis-timeout", required_argument, NULL, OPT_REDIS_TIMEOUT},
    {"pwhash-ops", required_argument, NULL, OPT_OPS},
    {"pwhash-mem", required_argument, NULL, OPT_MEM},
    {"auth-threads", required_argument, NULL, OPT_AUTH_THREADS},
    {"token-ttl", required_argument, NULL, OPT_TOKEN_TTL},
    {"max-out", required_argument, NULL, OPT_MAX_OUT},
    {"pending-max", required_argument, NULL, OPT_PENDING_MAX},
    {"zk", required_argument, NULL, OPT_ZK},
    {"zk-root", required_argument, NULL, OPT_ZK_ROOT},
    {"zk-timeout", required_argument, NULL, OPT_ZK_TIMEOUT},
    {"cluster-listen", required_argument, NULL, OPT_CLUSTER_LISTEN},
    {"cluster-secret-file", required_argument, NULL, OPT_CLUSTER_SECRET},
    {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
    {"max-conns-per-ip", required_argument, NULL, OPT_MAX_CONNS_IP},
    {"limit-exempt", required_argument, NULL, OPT_LIMIT_EXEMPT},
    {"login-timeout", required_argument, NULL, OPT_LOGIN_TIMEOUT},
    {"login-fails-user", required_argument, NULL, OPT_FAILS_USER},
    {"login-fails-ip", required_argument, NULL, OPT_FAILS_IP},
    {"login-fails-window", required_argument, NULL, OPT_FAILS_WINDOW},
    {"redis-user", required_argument, NULL, OPT_REDIS_USER},
    {"redis-password-file", required_argument, NULL, OPT_REDIS_PW_FILE},
    {"zk-auth-file", required_argument, NULL, OPT_ZK_AUTH_FILE},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* Applies one option; -1 on a bad value. */
static int apply_limits(node_config_t *c, int opt, const char *arg);

static int apply(void *ud, int opt, const char *arg)
{
    node_config_t *c = ud;
    double d = 0;
    long long sz;
    switch (opt) {
    case OPT_ID: return core_copy_str(c->id, sizeof c->id, arg);
    case OPT_NUM:
        if (parse_double(arg, 0, &d) || d > 65535)
            return -1;
        c->num = (uint16_t)d;
        return 0;
    case OPT_LISTEN: return core_copy_str(c->listen, sizeof c->listen, arg);
    case OPT_PUBLIC_URL: return core_copy_str(c->public_url, sizeof c->public_url, arg);
    case OPT_REDIS: return core_copy_str(c->redis, sizeof c->redis, arg);
    case OPT_STORE: return core_copy_str(c->store_uri, sizeof c->store_uri, arg);
    case OPT_DURABILITY:
        if (strcmp(arg, "disk") != 0 && strcmp(arg, "process") != 0)
            return -1;
        c->durability = strcmp(arg, "process") == 0 ? STORE_DURABLE_PROCESS : STORE_DURABLE_DISK;
        return 0;
    case OPT_LINGER:
        if (parse_double(arg, 0, &d) || d > 100000)
            return -1;
        c->commit_linger_us = (unsigned)d;
        return 0;
    case OPT_WRITER:
        if (strcmp(arg, "leader") != 0 && strcmp(arg, "self") != 0)
            return -1;
        c->writer_leader = strcmp(arg, "leader") == 0;
        return 0;
    case OPT_LOC_CACHE:
        if (parse_double(arg, 0, &d) || d > 3600000)
            return -1;
        c->loc_cache_ms = (unsigned)d;
        return 0;
    case OPT_FANOUT_SLICE:
        if (parse_double(arg, 1, &d) || d > 1000000)
            return -1;
        c->fanout_slice = (unsigned)d;
        return 0;
    case OPT_BCAST_MAX: /* a broadcast larger than the bound is always dropped */
        if (parse_double(arg, 4096, &d) || d > (double)(1u << 30))
            return -1;
        c->bcast_queue_max = (size_t)d;
        return 0;
    case OPT_DIRTY: return core_copy_str(c->dirty_words, sizeof c->dirty_words, arg);
    case OPT_LOG: return core_log_parse_level(arg) < 0 ? -1 : core_copy_str(c->log_level, sizeof c->log_level, arg);
    case OPT_RATE: return parse_double(arg, 0.001, &c->rate);
    case OPT_BURST: return parse_double(arg, 1, &c->burst);
    case OPT_PING: return parse_double(arg, 0.05, &c->ping_interval);
    case OPT_IDLE:
        if (parse_double(arg, 1, &d))
            return -1;
        c->idle_pings = (int)d;
        return 0;
    case OPT_HOT: return parse_double(arg, 1, &c->hot_reset);
    case OPT_REDIS_TIMEOUT: return parse_double(arg, 0.01, &c->redis_timeout);
    case OPT_OPS:
        if (parse_double(arg, 1, &d))
            return -1;
        c->pwhash_ops = (unsigned long)d;
        return 0;
    case OPT_MEM:
        if ((sz = core_parse_size(arg)) < 8192)
            return -1;
        c->pwhash_mem = (size_t)sz;
        return 0;
    case OPT_AUTH_THREADS:
        if (parse_double(arg, 1, &d) || d > 64)
            return -1;
        c->auth_threads = (int)d;
        return 0;
    case OPT_TOKEN_TTL: return parse_double(arg, 2, &c->token_ttl); /* tests use seconds */
    case OPT_MAX_OUT:
        if ((sz = core_parse_size(arg)) < 65536)
            return -1;
        c->max_out = (size_t)sz;
        return 0;
    case OPT_PENDING_MAX:
        if (parse_double(arg, 1, &d))
            return -1;
        c->pending_max = (size_t)d;
        return 0;
    case OPT_ZK: return core_copy_str(c->zk, sizeof c->zk, arg);
    case OPT_ZK_ROOT: return arg[0] != '/' ? -1 : core_copy_str(c->zk_root, sizeof c->zk_root, arg);
    case OPT_ZK_TIMEOUT:
        if (parse_double(arg, 1000, &d) || d > 120000)
            return -1;
        c->zk_timeout_ms = (int)d;
        return 0;
    case OPT_CLUSTER_LISTEN: return core_copy_str(c->cluster_listen, sizeof c->cluster_listen, arg);
    case OPT_CLUSTER_SECRET:
        return core_copy_str(c->cluster_secret_file, sizeof c->cluster_secret_file, arg);
    case OPT_REDIS_USER: return core_copy_str(c->redis_user, sizeof c->redis_user, arg);
    case OPT_REDIS_PW_FILE:
        return core_copy_str(c->redis_password_file, sizeof c->redis_password_file, arg);
    case OPT_ZK_AUTH_FILE: return core_copy_str(c->zk_auth_file, sizeof c->zk_auth_file, arg);
    case OPT_TLS_CERT: return core_copy_str(c->tls_cert, sizeof c->tls_cert, arg);
    case OPT_TLS_KEY: return core_copy_str(c->tls_key, sizeof c->tls_key, arg);
    default: return apply_limits(c, opt, arg);
    }
}

/* The abuse-limit flags (guard.c). */
static int apply_limits(node_config_t *c, int opt, const char *arg)
{
    double d = 0;
    char err[160];
    switch (opt) {
    case OPT_MAX_CONNS:
    case OPT_MAX_CONNS_IP:
    case OPT_FAILS_USER:
    case OPT_FAILS_IP:
        if (parse_double(arg, 0, &d) || d > 1e7)
            return -1;
        *(opt == OPT_MAX_CONNS ? &c->max_conns
          : opt == OPT_MAX_CONNS_IP ? &c->max_conns_per_ip
          : opt == OPT_FAILS_USER ? &c->login_fails_user : &c->login_fails_ip) = (unsigned)d;
        return 0;
    case OPT_LIMIT_EXEMPT:
        if (node_guard_parse_exempt(arg, err, sizeof err) != 0) {
            fprintf(stderr, "chat-node: %s\n", err);
            return -1;
        }
        return core_copy_str(c->limit_exempt, sizeof c->limit_exempt, arg);
    case OPT_LOGIN_TIMEOUT: return parse_double(arg, 0, &c->login_timeout);
    case OPT_FAILS_WINDOW: return parse_double(arg, 1, &c->login_fails_window);
    default: return -1;
    }
}

/* Credentials from their files or the environment (never argv). */
static int load_secrets(node_config_t *c)
{
    char err[640];
    if (core_redis_auth_load(c->redis_password_file, c->redis_user, sizeof c->redis_user,
                             c->redis_password, sizeof c->redis_password, err, sizeof err) != 0 ||
        core_secret_load("ZooKeeper credentials", c->zk_auth_file, "CHAT_ZK_AUTH", c->zk_auth,
                         sizeof c->zk_auth, err, sizeof err) != 0) {
        fprintf(stderr, "chat-node: %s\n", err);
        return -1;
    }
    const char *colon = strchr(c->zk_auth, ':');
    if (c->zk_auth[0] && (!colon || colon == c->zk_auth || !colon[1])) {
        fprintf(stderr, "chat-node: ZooKeeper credentials must be USER:PASSWORD\n");
        return -1;
    }
    return 0;
}

/* Derived defaults: id, num and URL follow the listen port. */
static int finish(node_config_t *c)
{
    char host[128];
    int port = 0;
    if (core_parse_hostport(c->listen, host, sizeof host, &port) != 0) {
        fprintf(stderr, "chat-node: bad --listen '%s'\n", c->listen);
        return -1;
    }
    if (!c->id[0])
        snprintf(c->id, sizeof c->id, "node-%d", port);
    if (!c->num)
        c->num = (uint16_t)port;
    if (!c->public_url[0]) {
        const char *h = (!host[0] || strcmp(host, "0.0.0.0") == 0) ? "127.0.0.1" : host;
        snprintf(c->public_url, sizeof c->public_url, "%s://%s:%d/ws",
                 c->tls_cert[0] ? "wss" : "ws", h, port);
    }
    if (!c->tls_cert[0] != !c->tls_key[0]) {
        fprintf(stderr, "chat-node: --tls-cert and --tls-key go together\n");
        return -1;
    }
    if (c->zk[0] && (!c->cluster_listen[0] || !c->cluster_secret_file[0])) {
        fprintf(stderr, "chat-node: --zk needs --cluster-listen and --cluster-secret-file\n");
        return -1;
    }
    return load_secrets(c);
}

int node_config_parse(node_config_t *c, int argc, char **argv)
{
    int rc = core_parse_flags("chat-node", argc, argv, options, OPT_HELP, apply, usage, c);
    if (rc != 0)
        return rc;
    return finish(c);
}
