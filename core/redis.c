/* core/redis.c: async Redis client on hiredis 0.14 + libev.
 *
 * hiredis 0.14 has no async timeouts and no reconnect, so this file adds:
 *  - a request record (redis_req_t) per command with its own ev_timer. On
 *    expiry the user gets NULL at once, the record is marked answered (so the
 *    hiredis callback that still holds it stays silent) and the connection is
 *    dropped as unhealthy. A record is freed only when hiredis calls back for
 *    it (a reply, or the NULL replies hiredis issues while freeing a context).
 *  - reconnection with backoff (100 ms doubling to 2 s) after a failed or
 *    timed-out connect and after a disconnect.
 *  - a handshake on every new connection: AUTH [user] password, or a PING
 *    without credentials. Only its OK makes the client connected; a refusal
 *    (WRONGPASS, NOAUTH) is logged as an error, the connection dropped and
 *    retried with the longest backoff, so a bad password is loud, not a
 *    silent reconnect loop. The password is never logged.
 *  - an on_connect hook run from its own zero-delay timer, never from inside
 *    hiredis, so the hook may do anything (even core_redis_free).
 *
 * Re-entrancy: user code (reply callbacks, the hook) may call any core_redis_*
 * function including core_redis_free. Every entry that runs user code holds
 * r->depth; core_redis_free answers and detaches everything at once but the
 * struct itself is released when the outermost entry unwinds.
 */
#include "core/core.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>
#include <sodium.h>

#define REDIS_BACKOFF_MIN 0.1
#define REDIS_BACKOFF_MAX 2.0
#define REDIS_REFUSED_EVERY 15 /* a refusal that goes on is logged this often */

typedef struct redis_req {
    ev_timer timer;          /* first: timeout watcher */
    core_redis_t *r;         /* NULL once orphaned by core_redis_free */
    core_redis_cb cb;
    void *ud;
    int answered;            /* the user has had its one callback */
    int waited_late;         /* the timeout found the answer maybe unread once */
    struct redis_req *prev, *next;
} redis_req_t;

struct core_redis {
    struct ev_loop *loop;
    char *host;
    int port;
    double timeout_s;
    redisAsyncContext *ac;   /* NULL while down */
    int connected;           /* handshake answered OK: user commands go */
    char *user, *pass;       /* AUTH credentials; pass NULL = none */
    unsigned refused;        /* handshakes refused in a row */
    double backoff;          /* next reconnect delay */
    ev_timer connect_timer;  /* connection establishment deadline */
    ev_timer retry_timer;    /* backoff before the next connect */
    ev_timer hook_timer;     /* runs the on_connect hook outside hiredis */
    void (*hook)(core_redis_t *r, void *ud);
    void *hook_ud;
    redis_req_t *head, *tail; /* records hiredis still holds */
    size_t inflight;         /* records not yet answered */
    int depth;               /* nesting of entries that run user code */
    int freeing;
};

static void redis_start_connect(core_redis_t *r);
static int redis_handshake(core_redis_t *r);

/* ------------------------------------------------------------ records */

static void req_link(core_redis_t *r, redis_req_t *q)
{
    q->prev = r->tail;
    q->next = NULL;
    if (r->tail)
        r->tail->next = q;
    else
        r->head = q;
    r->tail = q;
}

static void req_unlink(core_redis_t *r, redis_req_t *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        r->head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        r->tail = q->prev;
    q->prev = q->next = NULL;
    ev_timer_stop(r->loop, &q->timer);
}

/* Marks q answered; returns whether the user still had a callback due. */
static int req_take(core_redis_t *r, redis_req_t *q)
{
    if (q->answered)
        return 0;
    q->answered = 1;
    r->inflight--;
    ev_timer_stop(r->loop, &q->timer);
    return 1;
}

/* ------------------------------------------------------------ lifetime */

static void redis_free_auth(core_redis_t *r)
{
    if (r->pass)
        sodium_memzero(r->pass, strlen(r->pass));
    free(r->pass);
    free(r->user);
    r->pass = r->user = NULL;
}

static void redis_destroy(core_redis_t *r)
{
    redis_free_auth(r);
    free(r->host);
    free(r);
}

/* Called when an entry that ran user code returns: finishes a deferred free. */
static void redis_leave(core_redis_t *r)
{
    if (--r->depth == 0 && r->freeing)
        redis_destroy(r);
}

static void redis_deliver(core_redis_t *r, core_redis_cb cb, void *ud, redisReply *reply)
{
    if (cb == NULL)
        return;
    r->depth++;
    cb(r, reply, ud);
    r->depth--;
}

static void redis_mark_down(core_redis_t *r)
{
    r->connected = 0;
    ev_timer_stop(r->loop, &r->hook_timer);
}

static void redis_schedule_retry(core_redis_t *r)
{
    if (r->freeing)
        return;
    ev_timer_stop(r->loop, &r->retry_timer);
    ev_timer_set(&r->retry_timer, r->backoff, 0.);
    ev_timer_start(r->loop, &r->retry_timer);
    r->backoff *= 2;
    if (r->backoff > REDIS_BACKOFF_MAX)
        r->backoff = REDIS_BACKOFF_MAX;
}

/* Tears our side off the context and frees it. Outside hiredis callbacks
 * (timers) hiredis frees at once and calls back every record with NULL. */
static void redis_drop_context(core_redis_t *r)
{
    redisAsyncContext *ac = r->ac;

    r->ac = NULL;
    redis_mark_down(r);
    ev_timer_stop(r->loop, &r->connect_timer);
    if (ac == NULL)
        return;
    ac->data = NULL;
    redisAsyncFree(ac);
}

/* ------------------------------------------------------------ hiredis callbacks */

static void redis_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis_req_t *q = privdata;
    core_redis_t *r = q->r;

    (void)ac;
    if (r == NULL) { /* orphaned by core_redis_free; the user had its NULL */
        free(q);
        return;
    }
    req_unlink(r, q);
    if (reply == NULL) /* hiredis only passes NULL while tearing the context down */
        redis_mark_down(r);
    r->depth++;
    if (req_take(r, q))
        redis_deliver(r, q->cb, q->ud, reply);
    free(q);
    redis_leave(r);
}

static void redis_on_connect(const redisAsyncContext *ac, int status)
{
    core_redis_t *r = ac->data;

    if (r == NULL || r->ac != ac)
        return;
    ev_timer_stop(r->loop, &r->connect_timer);
    if (status != REDIS_OK) {
        CORE_WARN("redis %s:%d: connect failed: %s", r->host, r->port, ac->errstr);
        r->ac = NULL; /* hiredis frees it when we return */
        redis_schedule_retry(r);
        return;
    }
    /* the handshake goes from the hook timer: outside hiredis, a failure
     * to send may drop the context */
    ev_timer_start(r->loop, &r->hook_timer);
}

static void redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    core_redis_t *r = ac->data;

    if (r == NULL || r->ac != ac)
        return; /* we dropped it ourselves */
    CORE_WARN("redis %s:%d: disconnected: %s", r->host, r->port,
              status == REDIS_OK ? "closed" : ac->errstr);
    r->ac = NULL;
    redis_mark_down(r);
    redis_schedule_retry(r);
}

/* ------------------------------------------------------------ timers */

static void redis_on_req_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    redis_req_t *q = (redis_req_t *)w;
    core_redis_t *r = q->r;

    (void)revents;
    /* libev runs expired timers before the reads of the same wake-up: on a
     * starved process the answer may be waiting unread. Read it first (once
     * per command, so a Redis that keeps sending other replies still times out). */
    if (!q->waited_late && r->ac && core_fd_has_input(r->ac->c.fd)) {
        q->waited_late = 1;
        ev_timer_set(&q->timer, r->timeout_s, 0.);
        ev_timer_start(loop, &q->timer);
        return;
    }
    r->depth++;
    CORE_WARN("redis %s:%d: command timed out; reconnecting", r->host, r->port);
    redis_mark_down(r); /* commands issued from the callback fail at once */
    if (req_take(r, q))
        redis_deliver(r, q->cb, q->ud, NULL);
    if (!r->freeing) {
        redis_drop_context(r);
        redis_schedule_retry(r);
    }
    redis_leave(r);
}

static void redis_on_connect_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    core_redis_t *r = w->data;

    (void)loop;
    (void)revents;
    CORE_WARN("redis %s:%d: connect timed out", r->host, r->port);
    redis_drop_context(r);
    redis_schedule_retry(r);
}

static void redis_on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    redis_start_connect(w->data);
}

static void redis_on_hook(struct ev_loop *loop, ev_timer *w, int revents)
{
    core_redis_t *r = w->data;

    (void)loop;
    (void)revents;
    if (!r->connected) {
        if (r->ac != NULL && redis_handshake(r) != 0) {
            CORE_WARN("redis %s:%d: handshake not sent; reconnecting", r->host, r->port);
            redis_drop_context(r);
            redis_schedule_retry(r);
        }
        return;
    }
    if (r->hook == NULL)
        return;
    r->depth++;
    r->hook(r, r->hook_ud);
    redis_leave(r);
}

/* ------------------------------------------------------------ connect */

static void redis_start_connect(core_redis_t *r)
{
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);

    if (ac == NULL || ac->err) {
        CORE_WARN("redis %s:%d: connect: %s", r->host, r->port, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        redis_schedule_retry(r);
        return;
    }
    ac->data = r;
    r->ac = ac;
    /* Attach first: setting the connect callback arms the write watcher. */
    redisLibevAttach(r->loop, ac);
    redisAsyncSetDisconnectCallback(ac, redis_on_disconnect);
    redisAsyncSetConnectCallback(ac, redis_on_connect);
    ev_timer_set(&r->connect_timer, r->timeout_s, 0.);
    ev_timer_start(r->loop, &r->connect_timer);
}

core_redis_t *core_redis_new(struct ev_loop *loop, const char *host, int port, double timeout_s)
{
    core_redis_t *r;

    if (loop == NULL || host == NULL || port <= 0 || port > 65535 || !(timeout_s > 0))
        return NULL;
    r = core_xcalloc(1, sizeof(*r));
    r->loop = loop;
    r->host = core_xstrdup(host);
    r->port = port;
    r->timeout_s = timeout_s;
    r->backoff = REDIS_BACKOFF_MIN;
    ev_timer_init(&r->connect_timer, redis_on_connect_timeout, timeout_s, 0.);
    ev_timer_init(&r->retry_timer, redis_on_retry, 0., 0.);
    ev_timer_init(&r->hook_timer, redis_on_hook, 0., 0.);
    r->connect_timer.data = r->retry_timer.data = r->hook_timer.data = r;
    redis_start_connect(r);
    return r;
}

void core_redis_set_auth(core_redis_t *r, const char *user, const char *password)
{
    redis_free_auth(r);
    if (password && password[0]) {
        r->pass = core_xstrdup(password);
        r->user = user && user[0] ? core_xstrdup(user) : NULL;
    }
}

void core_redis_on_connect(core_redis_t *r, void (*fn)(core_redis_t *r, void *ud), void *ud)
{
    r->hook = fn;
    r->hook_ud = ud;
    if (fn == NULL)
        ev_timer_stop(r->loop, &r->hook_timer);
}

int core_redis_connected(const core_redis_t *r)
{
    return r->connected && !r->freeing;
}

size_t core_redis_inflight(const core_redis_t *r)
{
    return r->inflight;
}

/* ------------------------------------------------------------ commands */

/* Reads the command name out of a formatted "*N\r\n$L\r\nNAME\r\n". */
static int redis_cmd_name(const char *cmd, size_t len, const char **name, size_t *namelen)
{
    const char *end = cmd + len;
    const char *p = memchr(cmd, '\n', len);
    char *q;
    unsigned long l;

    if (p == NULL || ++p >= end || *p != '$')
        return -1;
    l = strtoul(p + 1, &q, 10);
    if (q + 2 > end || q[0] != '\r' || q[1] != '\n' || l > (size_t)(end - (q + 2)))
        return -1;
    *name = q + 2;
    *namelen = l;
    return 0;
}

/* Commands whose replies do not come one per command would break the
 * record's lifetime (hiredis keeps or repeats their callbacks). */
static int redis_cmd_allowed(const char *cmd, size_t len)
{
    static const char *const banned[] = {"subscribe", "psubscribe", "unsubscribe",
                                         "punsubscribe", "monitor", "ssubscribe",
                                         "sunsubscribe"};
    const char *name;
    size_t n, i;

    if (redis_cmd_name(cmd, len, &name, &n) < 0)
        return 0;
    for (i = 0; i < sizeof(banned) / sizeof(banned[0]); i++)
        if (strlen(banned[i]) == n && strncasecmp(name, banned[i], n) == 0)
            return 0;
    return 1;
}

/* Sends an already formatted command with a fresh timed record, connected
 * or not (the handshake goes before the client counts as connected). */
static int redis_send(core_redis_t *r, core_redis_cb cb, void *ud, const char *cmd, size_t len)
{
    redis_req_t *q;

    if (r->ac == NULL || r->freeing)
        return -1;
    q = core_xcalloc(1, sizeof(*q));
    q->r = r;
    q->cb = cb;
    q->ud = ud;
    if (redisAsyncFormattedCommand(r->ac, redis_on_reply, q, cmd, len) != REDIS_OK) {
        free(q);
        return -1;
    }
    req_link(r, q);
    r->inflight++;
    ev_timer_init(&q->timer, redis_on_req_timeout, r->timeout_s, 0.);
    ev_timer_start(r->loop, &q->timer);
    return 0;
}

static int redis_submit(core_redis_t *r, core_redis_cb cb, void *ud, const char *cmd, size_t len)
{
    if (!core_redis_connected(r) || r->ac == NULL)
        return -1;
    if (!redis_cmd_allowed(cmd, len)) {
        CORE_WARN("redis: refusing a pub/sub or monitor command");
        return -1;
    }
    return redis_send(r, cb, ud, cmd, len);
}

/* ------------------------------------------------------------ handshake */

/* The first refusal and then every REDIS_REFUSED_EVERY-th: loud, not a flood. */
static void redis_log_refused(core_redis_t *r, const char *why)
{
    const char *hint = r->pass ? "check the password (and user)"
                               : "this Redis needs a password and none was given";

    if (r->refused != 1 && r->refused % REDIS_REFUSED_EVERY != 0)
        return;
    CORE_ERROR("redis %s:%d: %s refused (%u time%s): %s; %s", r->host, r->port,
               r->pass ? "AUTH" : "access", r->refused, r->refused == 1 ? "" : "s", why, hint);
}

static void redis_on_handshake(core_redis_t *r, redisReply *reply, void *ud)
{
    (void)ud;
    if (reply == NULL || r->freeing)
        return; /* dropped or timed out: that path reconnects */
    if (reply->type == REDIS_REPLY_ERROR) {
        r->refused++;
        redis_log_refused(r, reply->str ? reply->str : "error");
        /* hiredis defers the free to the end of this callback */
        redis_drop_context(r);
        r->backoff = REDIS_BACKOFF_MAX;
        redis_schedule_retry(r);
        return;
    }
    if (r->refused)
        CORE_WARN("redis %s:%d: accepted after %u refusal(s)", r->host, r->port, r->refused);
    else
        CORE_INFO("redis %s:%d: connected%s", r->host, r->port, r->pass ? " (authenticated)" : "");
    r->refused = 0;
    r->connected = 1;
    r->backoff = REDIS_BACKOFF_MIN;
    if (r->hook)
        ev_timer_start(r->loop, &r->hook_timer);
}

static int redis_handshake(core_redis_t *r)
{
    const char *argv[3];
    size_t lens[3];
    char *cmd = NULL;
    int argc = 0, len, rc = -1;

    argv[argc++] = r->pass ? "AUTH" : "PING";
    if (r->pass && r->user)
        argv[argc++] = r->user;
    if (r->pass)
        argv[argc++] = r->pass;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len >= 0) {
        rc = redis_send(r, redis_on_handshake, NULL, cmd, (size_t)len);
        sodium_memzero(cmd, (size_t)len); /* hiredis keeps its own copy */
    }
    redisFreeCommand(cmd);
    return rc;
}

int core_redis_cmd(core_redis_t *r, core_redis_cb cb, void *ud, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    int len, rc;

    if (!core_redis_connected(r))
        return -1;
    va_start(ap, fmt);
    len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0) {
        CORE_WARN("redis: bad command format \"%s\"", fmt);
        return -1;
    }
    rc = redis_submit(r, cb, ud, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc;
}

int core_redis_cmdargv(core_redis_t *r, core_redis_cb cb, void *ud, int argc, const char **argv,
                       const size_t *argvlen)
{
    char *cmd = NULL;
    int len, rc;

    if (!core_redis_connected(r) || argc <= 0 || argv == NULL)
        return -1;
    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0)
        return -1;
    rc = redis_submit(r, cb, ud, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc;
}

/* ------------------------------------------------------------ free */

void core_redis_free(core_redis_t *r)
{
    redis_req_t *q;

    if (r == NULL || r->freeing)
        return;
    r->freeing = 1;
    r->depth++;
    ev_timer_stop(r->loop, &r->retry_timer);
    /* Answer and orphan every record first: if we are inside a hiredis
     * callback, hiredis frees the context (and the records) only later. */
    while ((q = r->head) != NULL) {
        req_unlink(r, q);
        q->r = NULL;
        if (req_take(r, q))
            redis_deliver(r, q->cb, q->ud, NULL);
    }
    redis_drop_context(r);
    redis_leave(r);
}
