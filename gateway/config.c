/* chat-gateway flags and the push token file. Every option has a default;
 * --help lists them all. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway_int.h"

void gateway_config_defaults(gateway_config_t *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen, sizeof c->listen, "127.0.0.1:8080");
    snprintf(c->redis, sizeof c->redis, "127.0.0.1:6379");
    snprintf(c->log_level, sizeof c->log_level, "info");
    c->node_ttl_ms = GATEWAY_NODE_TTL_MS;
    c->servers_cache_ms = GATEWAY_CACHE_MS;
    c->redis_timeout = 2.0;
    c->max_conns_per_ip = 1000;
    core_addrset_parse(&c->exempt, "127.0.0.0/8,::1", NULL, 0); /* a local proxy, tests */
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: chat-gateway [options]\n"
"  --listen HOST:PORT      HTTP endpoint (default 127.0.0.1:8080)\n"
"  --redis HOST:PORT       Redis (default 127.0.0.1:6379)\n"
"  --redis-user NAME       Redis ACL user (else $CHAT_REDIS_USER, else\n"
"                          Redis's default user)\n"
"  --redis-password-file FILE  Redis password (AUTH); else $CHAT_REDIS_PASSWORD,\n"
"                          else none\n"
"  --push-token-file FILE  admin token for POST /push (whitespace-trimmed);\n"
"                          without it every push is refused (401)\n"
"  --web-root DIR          serve the web client's files from DIR at / (read at start)\n"
"  --tls-cert FILE         serve https:// only (TLS 1.2+): the PEM certificate\n"
"                          chain; needs --tls-key\n"
"  --tls-key FILE          the certificate's PEM private key\n"
"  --max-conns-per-ip N    connections per source address, closed at accept\n"
"                          above it (default 1000, 0 = no cap)\n"
"  --limit-exempt LIST     addresses/prefixes the cap skips (default\n"
"                          127.0.0.0/8,::1; \"none\": nobody)\n"
"  --node-ttl MS           list nodes whose heartbeat is at most MS old (default %d)\n"
"  --servers-cache MS      reuse a /servers answer for at most MS (default %d, 0 = off)\n"
"  --num N                 msgid node number 1..65535 (default: the listen port)\n"
"  --shared-port           let other gateways (each with its own --num) listen on\n"
"                          the same port: the kernel spreads connections over them\n"
"  --redis-timeout SEC     per-command Redis timeout (default 2)\n"
"  --log-level LEVEL       debug, info, warn, error (default info)\n"
"  --help                  this text\n",
            GATEWAY_NODE_TTL_MS, GATEWAY_CACHE_MS);
}

static int check_hostport(const char *s)
{
    char host[256];
    int port = 0;
    return core_parse_hostport(s, host, sizeof host, &port);
}

enum {
    OPT_LISTEN = 256, OPT_REDIS, OPT_TOKEN_FILE, OPT_NODE_TTL, OPT_CACHE, OPT_NUM,
    OPT_REDIS_TIMEOUT, OPT_LOG, OPT_WEB_ROOT, OPT_REDIS_USER, OPT_REDIS_PW_FILE, OPT_TLS_CERT,
    OPT_TLS_KEY, OPT_MAX_CONNS_IP, OPT_LIMIT_EXEMPT, OPT_SHARED_PORT, OPT_HELP,
};

static const struct option options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"redis", required_argument, NULL, OPT_REDIS},
    {"push-token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"node-ttl", required_argument, NULL, OPT_NODE_TTL},
    {"servers-cache", required_argument, NULL, OPT_CACHE},
    {"num", required_argument, NULL, OPT_NUM},
    {"redis-timeout", required_argument, NULL, OPT_REDIS_TIMEOUT},
    {"log-level", required_argument, NULL, OPT_LOG},
    {"web-root", required_argument, NULL, OPT_WEB_ROOT},
    {"redis-user", required_argument, NULL, OPT_REDIS_USER},
    {"redis-password-file", required_argument, NULL, OPT_REDIS_PW_FILE},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"max-conns-per-ip", required_argument, NULL, OPT_MAX_CONNS_IP},
    {"limit-exempt", required_argument, NULL, OPT_LIMIT_EXEMPT},
    {"shared-port", no_argument, NULL, OPT_SHARED_PORT},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* Applies one option; -1 on a bad value. */
static int apply(void *ud, int opt, const char *arg)
{
    gateway_config_t *c = ud;
    double d = 0;
    switch (opt) {
    case OPT_LISTEN:
        return check_hostport(arg) ? -1 : core_copy_str(c->listen, sizeof c->listen, arg);
    case OPT_REDIS:
        return check_hostport(arg) ? -1 : core_copy_str(c->redis, sizeof c->redis, arg);
    case OPT_TOKEN_FILE: return core_copy_str(c->push_token_file, sizeof c->push_token_file, arg);
    case OPT_WEB_ROOT: return core_copy_str(c->web_root, sizeof c->web_root, arg);
    case OPT_TLS_CERT: return core_copy_str(c->tls_cert, sizeof c->tls_cert, arg);
    case OPT_TLS_KEY: return core_copy_str(c->tls_key, sizeof c->tls_key, arg);
    case OPT_SHARED_PORT: c->shared_port = 1; return 0;
    case OPT_MAX_CONNS_IP:
        if (core_parse_double(arg, 0, 1e7, &d) != 0 || d != (unsigned)d)
            return -1;
        c->max_conns_per_ip = (unsigned)d;
        return 0;
    case OPT_LIMIT_EXEMPT: {
        char err[160];
        if (core_addrset_parse(&c->exempt, arg, err, sizeof err) == 0)
            return 0;
        fprintf(stderr, "chat-gateway: --limit-exempt: %s\n", err);
        return -1;
    }
    case OPT_REDIS_USER: return core_copy_str(c->redis_user, sizeof c->redis_user, arg);
    case OPT_REDIS_PW_FILE:
        return core_copy_str(c->redis_password_file, sizeof c->redis_password_file, arg);
    case OPT_NODE_TTL:
        if (core_parse_double(arg, 1, 86400000, &d))
            return -1;
        c->node_ttl_ms = (uint64_t)d;
        return 0;
    case OPT_CACHE:
        if (core_parse_double(arg, 0, 60000, &d))
            return -1;
        c->servers_cache_ms = (uint64_t)d;
        return 0;
    case OPT_NUM:
        if (core_parse_double(arg, 1, 65535, &d))
            return -1;
        c->num = (uint16_t)d;
        return 0;
    case OPT_REDIS_TIMEOUT: return core_parse_double(arg, 0.01, 3600, &c->redis_timeout);
    case OPT_LOG:
        return core_log_parse_level(arg) < 0 ? -1 : core_copy_str(c->log_level, sizeof c->log_level, arg);
    default: return -1;
    }
}

int gateway_config_parse(gateway_config_t *c, int argc, char **argv)
{
    char err[1200];
    int rc = core_parse_flags("chat-gateway", argc, argv, options, OPT_HELP, apply, usage, c);
    if (rc != 0)
        return rc;
    if (!c->tls_cert[0] != !c->tls_key[0]) {
        fprintf(stderr, "chat-gateway: --tls-cert and --tls-key go together\n");
        return -1;
    }
    if (c->shared_port && !c->num) { /* the default, the port, would be everyone's */
        fprintf(stderr, "chat-gateway: --shared-port needs --num (distinct per gateway)\n");
        return -1;
    }
    /* the password from a file or the environment: argv is public (ps) */
    if (core_redis_auth_load(c->redis_password_file, c->redis_user, sizeof c->redis_user,
                             c->redis_password, sizeof c->redis_password, err, sizeof err) != 0) {
        fprintf(stderr, "chat-gateway: %s\n", err);
        return -1;
    }
    return 0;
}

int gateway__read_token(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    char buf[GATEWAY_TOKEN_MAX + 64];
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open --push-token-file '%s': %s", path, strerror(errno));
        return -1;
    }
    size_t n = fread(buf, 1, sizeof buf, f);
    int too_big = n == sizeof buf;
    fclose(f);
    size_t start = 0;
    while (start < n && isspace((unsigned char)buf[start]))
        start++;
    while (n > start && isspace((unsigned char)buf[n - 1]))
        n--;
    size_t len = n - start;
    if (too_big || len >= outlen || len > GATEWAY_TOKEN_MAX) {
        snprintf(err, errlen, "push token in '%s' is longer than %d bytes", path,
                 GATEWAY_TOKEN_MAX);
        return -1;
    }
    if (len == 0 || memchr(buf + start, 0, len)) {
        snprintf(err, errlen, "push token file '%s' is empty or binary", path);
        return -1;
    }
    memcpy(out, buf + start, len);
    out[len] = '\0';
    return 0;
}
