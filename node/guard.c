/* Abuse limits (docs/SECURITY.md): WebSocket connections per source
 * address, a deadline to log in, and failed logins throttled per user and
 * per address across the cluster (counters in Redis, so spreading guesses
 * over nodes does not help). Addresses on the exempt list (loopback by
 * default: a local proxy or load generator) skip the per-address limits. */
#include <arpa/inet.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "node/node.h"

#define SWEEP_SEC 0.5

/* One source address with live connections. */
struct node_addr {
    char ip[INET6_ADDRSTRLEN];
    unsigned conns;
    int exempt;
    UT_hash_handle hh;
};

typedef struct waiting {
    node_sess_t *s; /* ref held */
    uint64_t deadline_ms;
} waiting_t;

struct node_guard {
    node_t *node;
    node_addr_t *addrs;
    core_addrset_t exempt;
    waiting_t *wait;            /* not logged in yet, oldest first: one deadline for all */
    size_t wait_head, wait_len, wait_cap;
    ev_timer sweep;
};

/* ------------------------------------------------------------------ exempt list */

int node_guard_parse_exempt(const char *list, char *err, size_t errlen)
{
    core_addrset_t set;
    char why[160];
    if (core_addrset_parse(&set, list, why, sizeof why) == 0)
        return 0;
    snprintf(err, errlen, "--limit-exempt: %s", why);
    return -1;
}

/* ------------------------------------------------------------------ connections */

static void wait_push(node_guard_t *g, node_sess_t *s, uint64_t deadline)
{
    if (g->wait_head + g->wait_len == g->wait_cap) {
        if (g->wait_head) { /* reuse the consumed front first */
            memmove(g->wait, g->wait + g->wait_head, g->wait_len * sizeof *g->wait);
            g->wait_head = 0;
        } else {
            g->wait_cap = g->wait_cap ? g->wait_cap * 2 : 64;
            g->wait = core_xrealloc(g->wait, g->wait_cap * sizeof *g->wait);
        }
    }
    g->wait[g->wait_head + g->wait_len++] = (waiting_t){node_sess_ref(s), deadline};
}

static uint64_t login_deadline(const node_t *n)
{
    return core_mono_ms() + (uint64_t)(n->cfg.login_timeout * 1000.0);
}

int node_guard_open(node_t *n, node_sess_t *s, const char *peer)
{
    node_guard_t *g = n->guard;
    char ip[INET6_ADDRSTRLEN];
    core_peer_ip(peer ? peer : "?", ip, sizeof ip);
    node_addr_t *a = NULL;
    HASH_FIND_STR(g->addrs, ip, a);
    if (!a) {
        a = core_xcalloc(1, sizeof *a);
        core_copy_trunc(a->ip, sizeof a->ip, ip);
        a->exempt = core_addrset_has(&g->exempt, ip);
        HASH_ADD_STR(g->addrs, ip, a);
    }
    a->conns++;
    s->addr = a;
    if (n->cfg.max_conns_per_ip && !a->exempt && a->conns > n->cfg.max_conns_per_ip) {
        n->metrics.conns_refused_total++;
        return -1;
    }
    if (n->cfg.login_timeout > 0)
        wait_push(g, s, login_deadline(n));
    return 0;
}

void node_guard_close(node_t *n, node_sess_t *s)
{
    node_addr_t *a = s->addr;
    if (!a)
        return;
    s->addr = NULL;
    if (--a->conns == 0) {
        HASH_DEL(n->guard->addrs, a);
        free(a);
    }
}

const core_addrset_t *node_guard_exempt(const node_t *n)
{
    return &n->guard->exempt;
}

const char *node_guard_ip(const node_sess_t *s)
{
    return s->addr ? s->addr->ip : "?";
}

static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    node_guard_t *g = w->data;
    uint64_t now = core_mono_ms();
    while (g->wait_len && g->wait[g->wait_head].deadline_ms <= now) {
        node_sess_t *s = g->wait[g->wait_head].s;
        g->wait_head++, g->wait_len--;
        /* A login (or register) still being served is our delay, not the
         * client's: under a login storm the hashing queue may pass the
         * deadline. Check again one timeout later. */
        if (s->ws && !s->logged_in && !s->kicked) {
            if (s->running_other) {
                wait_push(g, s, login_deadline(g->node));
            } else {
                g->node->metrics.login_timeouts_total++;
                node_sess_close(s, 1008, "log in first");
            }
        }
        node_sess_unref(s);
    }
    if (!g->wait_len)
        g->wait_head = 0;
}

/* ------------------------------------------------------------------ failed logins */

/* Both counters and their time left, in one round trip. */
static const char CHECK_LUA[] =
    "local r = {} for i, k in ipairs(KEYS) do "
    "r[#r + 1] = tonumber(redis.call('GET', k) or '0') r[#r + 1] = redis.call('PTTL', k) end "
    "return r";
/* Counts one failure; the window starts at the first. */
static const char FAIL_LUA[] =
    "for i, k in ipairs(KEYS) do if redis.call('INCR', k) == 1 then "
    "redis.call('PEXPIRE', k, ARGV[1]) end end return 1";

typedef struct check {
    node_t *node;
    node_guard_cb cb;
    void *ud;
    int use_ip;
} check_t;

static uint64_t over_for(const redisReply *count, const redisReply *ttl, unsigned max)
{
    if (!max || count->type != REDIS_REPLY_INTEGER || count->integer < (long long)max)
        return 0;
    return ttl->type == REDIS_REPLY_INTEGER && ttl->integer > 0 ? (uint64_t)ttl->integer : 1000;
}

static void on_check(core_redis_t *r, redisReply *reply, void *ud)
{
    (void)r;
    check_t *c = ud;
    node_t *n = c->node;
    uint64_t retry = 0;
    /* Redis away: logins go on unthrottled (availability first; logged) */
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == (size_t)(c->use_ip ? 4 : 2)) {
        retry = over_for(reply->element[0], reply->element[1], n->cfg.login_fails_user);
        uint64_t ip_retry = c->use_ip ? over_for(reply->element[2], reply->element[3],
                                                 n->cfg.login_fails_ip) : 0;
        if (ip_retry > retry)
            retry = ip_retry;
    } else if (n->http) { /* (NULL at shutdown: Redis hands back what it held) */
        CORE_WARN("login throttle: no answer from Redis; this login is not throttled");
    }
    c->cb(n, retry, c->ud);
    free(c);
}

static void keys_for(const char *user, const char *ip, char *ukey, char *ikey, size_t len)
{
    snprintf(ukey, len, "chat:lf:u:%s", user);
    snprintf(ikey, len, "chat:lf:ip:%s", ip);
}

static check_t *check_new(node_t *n, const node_sess_t *s, node_guard_cb cb, void *ud)
{
    check_t *c = core_xcalloc(1, sizeof *c);
    c->node = n;
    c->cb = cb;
    c->ud = ud;
    c->use_ip = s->addr && !s->addr->exempt;
    return c;
}

/* rc: core_redis_cmd's; not connected, its callback never comes: answer now. */
static void check_sent(check_t *c, int rc)
{
    if (rc != 0) {
        c->cb(c->node, 0, c->ud);
        free(c);
    }
}

void node_guard_login_check(node_t *n, const node_sess_t *s, const char *user, node_guard_cb cb,
                            void *ud)
{
    char ukey[96], ikey[96];
    keys_for(user, node_guard_ip(s), ukey, ikey, sizeof ukey);
    check_t *c = check_new(n, s, cb, ud);
    check_sent(c, c->use_ip
                      ? core_redis_cmd(n->redis, on_check, c, "EVAL %s 2 %s %s", CHECK_LUA, ukey, ikey)
                      : core_redis_cmd(n->redis, on_check, c, "EVAL %s 1 %s", CHECK_LUA, ukey));
}

static void on_counted(core_redis_t *r, redisReply *reply, void *ud)
{
    (void)r;
    (void)reply; /* counted or not (Redis away), the answer goes out */
    check_t *c = ud;
    c->cb(c->node, 0, c->ud);
    free(c);
}

void node_guard_login_failed(node_t *n, const node_sess_t *s, const char *user, node_guard_cb cb,
                             void *ud)
{
    char ukey[96], ikey[96], window[24];
    keys_for(user, node_guard_ip(s), ukey, ikey, sizeof ukey);
    snprintf(window, sizeof window, "%llu", (unsigned long long)(n->cfg.login_fails_window * 1000.0));
    check_t *c = check_new(n, s, cb, ud);
    check_sent(c, c->use_ip ? core_redis_cmd(n->redis, on_counted, c, "EVAL %s 2 %s %s %s",
                                             FAIL_LUA, ukey, ikey, window)
                            : core_redis_cmd(n->redis, on_counted, c, "EVAL %s 1 %s %s", FAIL_LUA,
                                             ukey, window));
}

void node_guard_login_ok(node_t *n, const char *user)
{
    core_redis_cmd(n->redis, NULL, NULL, "DEL chat:lf:u:%s", user);
}

/* ------------------------------------------------------------------ start / stop */

void node_guard_start(node_t *n)
{
    node_guard_t *g = core_xcalloc(1, sizeof *g);
    g->node = n;
    char err[160];
    if (core_addrset_parse(&g->exempt, n->cfg.limit_exempt, err, sizeof err) != 0)
        CORE_WARN("--limit-exempt: %s", err); /* checked at parse: not reached */
    ev_timer_init(&g->sweep, on_sweep, SWEEP_SEC, SWEEP_SEC);
    g->sweep.data = g;
    ev_timer_start(n->loop, &g->sweep);
    n->guard = g;
}

void node_guard_stop(node_t *n)
{
    node_guard_t *g = n->guard;
    if (!g)
        return;
    ev_timer_stop(n->loop, &g->sweep);
    for (size_t i = 0; i < g->wait_len; i++)
        node_sess_unref(g->wait[g->wait_head + i].s);
    free(g->wait);
    node_addr_t *a, *tmp;
    HASH_ITER(hh, g->addrs, a, tmp) {
        HASH_DEL(g->addrs, a);
        free(a);
    }
    free(g);
    n->guard = NULL;
}
