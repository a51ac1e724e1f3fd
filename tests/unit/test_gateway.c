/* Tests for the gateway (GET /servers, /healthz, /metrics, POST /push)
 * against a real redis-server on a private port, over raw HTTP sockets.
 * The gateway runs on a loop in this thread; the test turns the loop while
 * it waits for answers, always with a deadline. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "core/core.h"
#include "test_util.h"
#include "gateway/gateway.h"
#include "proto/proto.h"

#define TOKEN "s3cret-Token_42"
#define GW_NUM 7

typedef struct fx {
    char dir[64];
    char token_path[128];
    int redis_port;
    pid_t redis_pid;
    redisContext *rc; /* the test's own (blocking) Redis connection */
    struct ev_loop *loop;
    ev_timer tick;
    gateway_t *gw;
} fx_t;

/* One client connection to the gateway. */
typedef struct client {
    int fd;
    core_buf_t in;
    ev_io io; /* wakes the loop when the answer arrives */
    fx_t *fx;
} client_t;

typedef struct resp {
    int status;
    char head[1024];
    char body[65536];
    size_t len;
} resp_t;

/* ------------------------------------------------------------ redis-server */

/* Starts redis and connects the test's own (blocking) client to it. */
static int start_redis(fx_t *fx)
{
    struct timeval tv = {1, 0};

    if (tu_redis_start(fx->dir, fx->redis_port, &fx->redis_pid) == 0) {
        fx->rc = redisConnectWithTimeout("127.0.0.1", fx->redis_port, tv);
        if (fx->rc && !fx->rc->err)
            return 0;
        redisFree(fx->rc);
        fx->rc = NULL;
    }
    tu_redis_kill(&fx->redis_pid); /* a later try starts afresh */
    return -1;
}

/* One command on the test's connection; the reply is freed by the caller. */
static redisReply *rcmd(fx_t *fx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(fx->rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    return r;
}

static void rcmd_void(fx_t *fx, const char *fmt, const char *a, const char *b)
{
    freeReplyObject(rcmd(fx, fmt, a, b));
}

static void add_node(fx_t *fx, const char *id, double load, uint64_t ts)
{
    char json[256];
    snprintf(json, sizeof json,
             "{\"id\":\"%s\",\"addr\":\"127.0.0.1:%s\",\"url\":\"ws://127.0.0.1:%s/ws\","
             "\"load\":%g,\"ts\":%llu}",
             id, id, id, load, (unsigned long long)ts);
    rcmd_void(fx, "HSET chat:nodes %s %s", id, json);
}

/* ------------------------------------------------------------ fixture */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int fx_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    *state = fx;
    fx->redis_pid = -1;
    strcpy(fx->dir, "/tmp/test_gateway.XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->token_path, sizeof fx->token_path, "%s/token", fx->dir);
    FILE *f = fopen(fx->token_path, "w");
    if (!f)
        return -1;
    fputs("  \t" TOKEN "\n\n", f); /* the gateway trims whitespace */
    fclose(f);
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    ev_timer_init(&fx->tick, tu_noop_timer, 0.01, 0.01); /* keeps EVRUN_ONCE short */
    ev_timer_start(fx->loop, &fx->tick);
    core_log_set_level(CORE_LOG_ERROR);
    for (int tries = 0; tries < 5; tries++) {
        fx->redis_port = tu_free_port();
        if (start_redis(fx) == 0)
            return 0;
    }
    return -1;
}

static int fx_teardown(void **state)
{
    fx_t *fx = *state;
    if (!fx)
        return 0;
    gateway_free(fx->gw);
    if (fx->rc)
        redisFree(fx->rc);
    tu_redis_kill(&fx->redis_pid);
    if (fx->loop) {
        ev_timer_stop(fx->loop, &fx->tick);
        ev_run(fx->loop, 0); /* until every connection finished closing (core bounds it) */
        ev_loop_destroy(fx->loop);
    }
    tu_rm_tree(fx->dir);
    free(fx);
    return 0;
}

/* ------------------------------------------------------------ HTTP client */

static void on_client_io(struct ev_loop *loop, ev_io *w, int revents)
{
    client_t *c = w->data;
    char buf[4096];
    (void)revents;
    ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0)
        core_buf_append(&c->in, buf, (size_t)n);
    else if (n == 0 || (errno != EAGAIN && errno != EINTR))
        ev_io_stop(loop, w); /* closed: what arrived stays in c->in */
}

static void client_open(fx_t *fx, client_t *c)
{
    memset(c, 0, sizeof *c);
    c->fx = fx;
    c->fd = tu_tcp_connect(gateway_port(fx->gw), 0);
    assert_true(c->fd >= 0);
    core_buf_init(&c->in);
    ev_io_init(&c->io, on_client_io, c->fd, EV_READ);
    c->io.data = c;
    ev_io_start(fx->loop, &c->io);
}

static void client_close(client_t *c)
{
    ev_io_stop(c->fx->loop, &c->io);
    close(c->fd);
    core_buf_free(&c->in);
}

static void client_send(client_t *c, const char *data, size_t len)
{
    assert_int_equal(send(c->fd, data, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Length of one complete response at the start of c->in, 0 if incomplete. */
static size_t response_complete(const client_t *c, size_t *head_len, size_t *body_len)
{
    const char *end = c->in.len ? strstr(c->in.data, "\r\n\r\n") : NULL;
    if (!end)
        return 0;
    *head_len = (size_t)(end - c->in.data) + 4;
    const char *cl = strcasestr(c->in.data, "\r\nContent-Length:");
    *body_len = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
    return c->in.len >= *head_len + *body_len ? *head_len + *body_len : 0;
}

/* Turns the loop until one whole response is in; takes it out of c->in. */
static void client_read(client_t *c, resp_t *r)
{
    uint64_t deadline = core_mono_ms() + TU_DEADLINE_MS;
    size_t head = 0, body = 0, total;
    while ((total = response_complete(c, &head, &body)) == 0) {
        assert_true(core_mono_ms() < deadline);
        ev_run(c->fx->loop, EVRUN_ONCE);
    }
    assert_true(head < sizeof r->head && body < sizeof r->body);
    memcpy(r->head, c->in.data, head);
    r->head[head] = '\0';
    memcpy(r->body, c->in.data + head, body);
    r->body[body] = '\0';
    r->len = body;
    assert_int_equal(strncmp(r->head, "HTTP/1.1 ", 9), 0);
    r->status = atoi(r->head + 9);
    core_buf_consume(&c->in, total);
}

/* One request on a fresh connection. */
static void http(fx_t *fx, const char *raw, size_t len, resp_t *r)
{
    client_t c;
    client_open(fx, &c);
    client_send(&c, raw, len);
    client_read(&c, r);
    client_close(&c);
}

static void http_str(fx_t *fx, const char *raw, resp_t *r)
{
    http(fx, raw, strlen(raw), r);
}

static void get(fx_t *fx, const char *path, resp_t *r)
{
    char raw[512];
    int n = snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    http(fx, raw, (size_t)n, r);
}

/* POST /push with body; auth NULL sends no Authorization header. */
static void push(fx_t *fx, const char *auth, const char *body, size_t len, resp_t *r)
{
    core_buf_t raw;
    core_buf_init(&raw);
    core_buf_printf(&raw, "POST /push HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n");
    if (auth)
        core_buf_printf(&raw, "Authorization: %s\r\n", auth);
    core_buf_printf(&raw, "Content-Length: %zu\r\n\r\n", len);
    core_buf_append(&raw, body, len);
    http(fx, raw.data, raw.len, r);
    core_buf_free(&raw);
}

static void push_ok_auth(fx_t *fx, const char *body, resp_t *r)
{
    push(fx, "Bearer " TOKEN, body, strlen(body), r);
}

/* ------------------------------------------------------------ gateway */

typedef struct gw_opts {
    uint64_t cache_ms;
    int no_token;
    double redis_timeout;
    const char *web_root;
} gw_opts_t;

static void gw_start(fx_t *fx, const gw_opts_t *o)
{
    gateway_config_t cfg;
    char err[256] = "";
    gateway_config_defaults(&cfg);
    snprintf(cfg.listen, sizeof cfg.listen, "127.0.0.1:0");
    snprintf(cfg.redis, sizeof cfg.redis, "127.0.0.1:%d", fx->redis_port);
    if (!o->no_token)
        snprintf(cfg.push_token_file, sizeof cfg.push_token_file, "%s", fx->token_path);
    cfg.servers_cache_ms = o->cache_ms;
    cfg.redis_timeout = o->redis_timeout > 0 ? o->redis_timeout : 1.0;
    cfg.num = GW_NUM;
    if (o->web_root)
        snprintf(cfg.web_root, sizeof cfg.web_root, "%s", o->web_root);
    fx->gw = gateway_new(fx->loop, &cfg, err, sizeof err);
    if (!fx->gw)
        fail_msg("gateway_new: %s", err);
    /* The Redis connection is asynchronous: wait until /healthz says so. */
    uint64_t deadline = core_mono_ms() + TU_DEADLINE_MS;
    resp_t r;
    for (get(fx, "/healthz", &r); r.status != 200; get(fx, "/healthz", &r))
        assert_true(core_mono_ms() < deadline);
}

static void gw_default(fx_t *fx)
{
    gw_opts_t o = {0};
    gw_start(fx, &o);
}

/* ------------------------------------------------------------ /servers */

static void test_servers_ordered(void **state)
{
    fx_t *fx = *state;
    resp_t r;
    uint64_t now = core_now_ms();
    gw_default(fx);
    add_node(fx, "n3", 5, now);
    add_node(fx, "n2", 1, now);
    add_node(fx, "n1", 1, now - 1000);
    add_node(fx, "n0", 12, now);
    get(fx, "/servers", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strcasestr(r.head, "Content-Type: application/json"));
    /* Least loaded first, ties by id; ts is not published. */
    assert_string_equal(r.body,
        "{\"servers\":["
        "{\"id\":\"n1\",\"addr\":\"127.0.0.1:n1\",\"url\":\"ws://127.0.0.1:n1/ws\",\"load\":1},"
        "{\"id\":\"n2\",\"addr\":\"127.0.0.1:n2\",\"url\":\"ws://127.0.0.1:n2/ws\",\"load\":1},"
        "{\"id\":\"n3\",\"addr\":\"127.0.0.1:n3\",\"url\":\"ws://127.0.0.1:n3/ws\",\"load\":5},"
        "{\"id\":\"n0\",\"addr\":\"127.0.0.1:n0\",\"url\":\"ws://127.0.0.1:n0/ws\",\"load\":12}]}");
}

static void test_servers_stale_and_malformed_dropped(void **state)
{
    fx_t *fx = *state;
    resp_t r;
    uint64_t now = core_now_ms();
    gw_default(fx);
    add_node(fx, "fresh", 3, now);
    add_node(fx, "stale", 0, now - 6000); /* older than the 5 s default ttl */
    add_node(fx, "edge", 4, now - 3000);
    rcmd_void(fx, "HSET chat:nodes %s %s", "junk", "not json");
    rcmd_void(fx, "HSET chat:nodes %s %s", "nourl", "{\"id\":\"nourl\",\"addr\":\"x:1\",\"load\":0,\"ts\":1e300}");
    rcmd_void(fx, "HSET chat:nodes %s %s", "strload",
              "{\"id\":\"strload\",\"addr\":\"x:1\",\"url\":\"ws://x:1/ws\",\"load\":\"0\",\"ts\":1e300}");
    get(fx, "/servers", &r);
    assert_int_equal(r.status, 200);
    cJSON *root = cJSON_Parse(r.body);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "servers");
    assert_int_equal(cJSON_GetArraySize(list), 2);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "id")->valuestring, "fresh");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 1), "id")->valuestring, "edge");
    cJSON_Delete(root);
}

static void test_servers_none_503(void **state)
{
    fx_t *fx = *state;
    resp_t r;
    gw_default(fx);
    get(fx, "/servers", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "{\"servers\":[]}");
    add_node(fx, "old", 0, core_now_ms() - 60000);
    get(fx, "/servers", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "{\"servers\":[]}");
    add_node(fx, "new", 0, core_now_ms());
    get(fx, "/servers", &r);
    assert_int_equal(r.status, 200);
}

/* With a (long, for determinism) cache a change in Redis is not seen, and
 * concurrent requests are all answered; each answer counts the client it
 * sends to the first node. */
static void test_servers_cached(void **state)
{
    fx_t *fx = *state;
    gw_opts_t o = {.cache_ms = 60000};
    resp_t r1, r2;
    client_t c[3];
    gw_start(fx, &o);
    add_node(fx, "a", 1, core_now_ms());
    get(fx, "/servers", &r1);
    assert_int_equal(r1.status, 200);
    assert_string_equal(r1.body, "{\"servers\":[{\"id\":\"a\",\"addr\":\"127.0.0.1:a\","
                                 "\"url\":\"ws://127.0.0.1:a/ws\",\"load\":1}]}");
    add_node(fx, "b", 0, core_now_ms());
    for (int i = 0; i < 3; i++) {
        client_open(fx, &c[i]);
        client_send(&c[i], "GET /servers HTTP/1.1\r\nHost: t\r\n\r\n", 35);
    }
    int seen[3] = {0};
    for (int i = 0; i < 3; i++) {
        client_read(&c[i], &r2);
        assert_int_equal(r2.status, 200);
        assert_null(strstr(r2.body, "\"b\"")); /* not listed again yet */
        const char *load = strstr(r2.body, "\"load\":");
        assert_non_null(load);
        int l = atoi(load + 7);
        assert_true(l >= 2 && l <= 4);
        seen[l - 2]++;
        client_close(&c[i]);
    }
    assert_int_equal(seen[0] + seen[1] + seen[2], 3);
    assert_true(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
    get(fx, "/metrics", &r2);
    assert_non_null(strstr(r2.body, "\ngateway_servers_cache_hits_total 3\n"));
}

static const char *first_id(const resp_t *r, char *out, size_t outlen)
{
    cJSON *root = cJSON_Parse(r->body);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "servers");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(list, 0), "id");
    assert_true(cJSON_IsString(id));
    snprintf(out, outlen, "%s", id->valuestring);
    cJSON_Delete(root);
    return out;
}

/* A storm asks within one heartbeat: the answers fill the least loaded
 * node up to the next, then take turns, as each answer counts the client it
 * sends. No cache, so the count also survives listings with the same
 * reports; at a newer report the count becomes the interval before it, and
 * at the one after that it is gone. */
static void test_servers_spread(void **state)
{
    fx_t *fx = *state;
    resp_t r;
    char id[16];
    uint64_t now = core_now_ms();
    gw_default(fx);
    add_node(fx, "n0", 0, now);
    add_node(fx, "n1", 5, now);
    add_node(fx, "n2", 10, now);
    int first[3] = {0};
    for (int i = 0; i < 30; i++) {
        get(fx, "/servers", &r);
        assert_int_equal(r.status, 200);
        first_id(&r, id, sizeof id);
        assert_true(id[0] == 'n' && id[1] >= '0' && id[1] <= '2');
        first[id[1] - '0']++;
        if (i < 5)
            assert_string_equal(id, "n0");
    }
    assert_int_equal(first[0], 15);
    assert_int_equal(first[1], 10);
    assert_int_equal(first[2], 5);
    get(fx, "/servers", &r); /* all at 15: ties by id, least first */
    assert_non_null(strstr(r.body, "{\"id\":\"n0\",\"addr\":\"127.0.0.1:n0\","
                                   "\"url\":\"ws://127.0.0.1:n0/ws\",\"load\":15}"));
    assert_string_equal(first_id(&r, id, sizeof id), "n0");
    /* n1 reports again, 12 of its 5 + 10 connected: the 10 it was sent
     * before the report still count (some may be on their way) ... */
    add_node(fx, "n1", 12, now + 1);
    get(fx, "/servers", &r);
    assert_string_equal(first_id(&r, id, sizeof id), "n2"); /* n0 16, n1 22, n2 15 */
    assert_non_null(strstr(r.body, "\"id\":\"n1\",\"addr\":\"127.0.0.1:n1\","
                                   "\"url\":\"ws://127.0.0.1:n1/ws\",\"load\":22}"));
    /* ... until its next report: nothing was sent to it in between. */
    add_node(fx, "n1", 15, now + 2);
    get(fx, "/servers", &r);
    assert_string_equal(first_id(&r, id, sizeof id), "n1"); /* n0 16, n1 15, n2 16 */
    assert_non_null(strstr(r.body, "\"id\":\"n1\",\"addr\":\"127.0.0.1:n1\","
                                   "\"url\":\"ws://127.0.0.1:n1/ws\",\"load\":15}"));
}

/* Without a cache, requests that arrive together share one HGETALL and
 * each gets the answer. */
static void test_servers_concurrent_uncached(void **state)
{
    fx_t *fx = *state;
    resp_t r;
    client_t c[4];
    gw_default(fx);
    add_node(fx, "a", 1, core_now_ms());
    for (int i = 0; i < 4; i++) {
        client_open(fx, &c[i]);
        client_send(&c[i], "GET /servers HTTP/1.1\r\nHost: t\r\n\r\n", 35);
    }
    for (int i = 0; i < 4; i++) {
        client_read(&c[i], &r);
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(r.body, "\"id\":\"a\""));
        client_close(&c[i]);
    }
}

/* ------------------------------------------------------------ /healthz */

static void wait_status(fx_t *fx, const char *path, int status)
{
    uint64_t deadline = core_mono_ms() + TU_DEADLINE_MS;
    resp_t r;
    for (get(fx, path, &r); r.status != status; get(fx, path, &r))
        assert_true(core_mono_ms() < deadline);
}

static void test_healthz_follows_redis(void **state)
{
    fx_t *fx = *state;
    gw_opts_t o = {.redis_timeout = 0.3};
    resp_t r;
    gw_start(fx, &o);
    get(fx, "/healthz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");
    /* A hung Redis: the PING times out and /healthz says 503. */
    kill(fx->redis_pid, SIGSTOP);
    uint64_t t0 = core_mono_ms();
    get(fx, "/healthz", &r);
    assert_int_equal(r.status, 503);
    assert_true(core_mono_ms() - t0 < 3000);
    kill(fx->redis_pid, SIGCONT);
    wait_status(fx, "/healthz", 200);
    /* Redis gone: healthz, servers and push all say 503. */
    tu_redis_kill(&fx->redis_pid);
    wait_status(fx, "/healthz", 503);
    get(fx, "/servers", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "{\"servers\":[]}");
    push_ok_auth(fx, "{\"message\":\"hi\",\"all\":true}", &r);
    assert_int_equal(r.status, 503);
}

/* ------------------------------------------------------------ /push */

/* The single chat:push entry, popped. */
static char *pop_push(fx_t *fx)
{
    redisReply *r = rcmd(fx, "LLEN chat:push");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    r = rcmd(fx, "RPOP chat:push");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char *s = strdup(r->str);
    freeReplyObject(r);
    return s;
}

/* Sends body, expects 202 {"msgid"} and exactly
 * {"msgid":<its msgid>,"message":<message>,"ts":<now>,<target>} in chat:push. */
static void push_expect(fx_t *fx, const char *body, const char *message, const char *target)
{
    resp_t r;
    char want[8192], msgid[PROTO_MSGID_LEN + 1];
    uint64_t before = core_now_ms();
    push_ok_auth(fx, body, &r);
    uint64_t after = core_now_ms();
    assert_int_equal(r.status, 202);
    assert_int_equal(sscanf(r.body, "{\"msgid\":\"%23[^\"]\"}", msgid), 1);
    assert_true(proto_msgid_valid(msgid, strlen(msgid)));
    assert_string_equal(msgid + 19, "0007"); /* --num 7 */
    char *got = pop_push(fx);
    cJSON *o = cJSON_Parse(got);
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "ts");
    assert_true(cJSON_IsNumber(ts));
    unsigned long long t = (unsigned long long)ts->valuedouble;
    assert_true(t >= before && t <= after);
    snprintf(want, sizeof want, "{\"msgid\":\"%s\",\"message\":%s,\"ts\":%llu,%s}", msgid,
             message, t, target);
    assert_string_equal(got, want);
    cJSON_Delete(o);
    free(got);
}

static void test_push_accepted(void **state)
{
    fx_t *fx = *state;
    gw_default(fx);
    push_expect(fx, "{\"message\":\"hello\",\"to\":\"alice\"}", "\"hello\"", "\"to\":\"alice\"");
    push_expect(fx, "{\"room\":\"world\",\"message\":\"to the room\"}", "\"to the room\"",
                "\"room\":\"world\"");
    push_expect(fx, "{\"message\":\"everyone\",\"all\":true,\"to\":null}", "\"everyone\"",
                "\"all\":true");
    /* UTF-8 (raw and escaped) survives; quotes are re-escaped. */
    push_expect(fx, "{\"message\":\"h\xc3\xa9llo \\u2713 \\\"q\\\"\",\"to\":\"b.o-b_1\"}",
                "\"h\xc3\xa9llo \xe2\x9c\x93 \\\"q\\\"\"", "\"to\":\"b.o-b_1\"");
    resp_t r;
    get(fx, "/metrics", &r);
    assert_non_null(strstr(r.body, "\ngateway_push_accepted_total 4\n"));
    assert_non_null(strstr(r.body, "gateway_requests_total{route=\"push\",status=\"202\"} 4\n"));
}

static void expect_push_status(fx_t *fx, const char *auth, const char *body, size_t len,
                               int status)
{
    resp_t r;
    push(fx, auth, body, len, &r);
    if (r.status != status)
        fail_msg("body %.80s: got %d %s, expected %d", body, r.status, r.body, status);
    if (status == 400 || status == 401) { /* a clear JSON error */
        cJSON *o = cJSON_Parse(r.body);
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
        assert_true(cJSON_IsString(e) && e->valuestring[0]);
        cJSON_Delete(o);
    }
}

static void expect_bad_body(fx_t *fx, const char *body)
{
    expect_push_status(fx, "Bearer " TOKEN, body, strlen(body), 400);
}

static void test_push_bad_body_400(void **state)
{
    fx_t *fx = *state;
    gw_default(fx);
    static const char *const bodies[] = {
        "",
        "not json",
        "[\"message\",\"to\"]",
        "\"just a string\"",
        "{\"message\":\"x\",\"to\":\"alice\"} trailing",
        "{\"to\":\"someone\"}",
        "{\"message\":\"no target\"}",
        "{\"message\":\"\",\"to\":\"alice\"}",
        "{\"message\":42,\"to\":\"alice\"}",
        "{\"message\":null,\"to\":\"alice\"}",
        "{\"message\":\"two\",\"to\":\"alice\",\"room\":\"world\"}",
        "{\"message\":\"three\",\"to\":\"a\",\"room\":\"w\",\"all\":true}",
        "{\"message\":\"x\",\"to\":\"bad name\"}",
        "{\"message\":\"x\",\"to\":\"\"}",
        "{\"message\":\"x\",\"to\":\"abcdefghijklmnopqrstuvwxyz0123456\"}", /* 33 chars */
        "{\"message\":\"x\",\"to\":7}",
        "{\"message\":\"x\",\"room\":\"r/oom\"}",
        "{\"message\":\"x\",\"all\":false}",
        "{\"message\":\"x\",\"all\":\"yes\"}",
        "{\"message\":\"x\\u0000y\",\"all\":true}",
        "{\"message\":\"\xff\xfe\",\"all\":true}",
        "{\"message\":\"\xc0\xaf\",\"all\":true}",  /* overlong */
        "{\"message\":\"\\ud800\",\"all\":true}",   /* lone surrogate */
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        expect_bad_body(fx, bodies[i]);
    static const char nul[] = "{\"message\":\"a\0b\",\"all\":true}";
    expect_push_status(fx, "Bearer " TOKEN, nul, sizeof nul - 1, 400);
    /* Text limit: 4096 bytes pass, 4097 do not. */
    char big[4200];
    memset(big, 0, sizeof big);
    strcpy(big, "{\"all\":true,\"message\":\"");
    memset(big + strlen(big), 'x', 4097);
    strcat(big, "\"}");
    expect_bad_body(fx, big);
    big[strlen(big) - 3] = '\0';
    strcat(big, "\"}");
    expect_push_status(fx, "Bearer " TOKEN, big, strlen(big), 202);
    freeReplyObject(rcmd(fx, "DEL chat:push"));
    redisReply *r = rcmd(fx, "LLEN chat:push");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
}

static void test_push_body_cap_413(void **state)
{
    fx_t *fx = *state;
    gw_default(fx);
    size_t len = GATEWAY_MAX_BODY + 1;
    char *body = malloc(len);
    memset(body, ' ', len);
    expect_push_status(fx, "Bearer " TOKEN, body, len, 413);
    free(body);
}

static void test_push_unauthorized_401(void **state)
{
    fx_t *fx = *state;
    const char *ok = "{\"message\":\"hi\",\"all\":true}";
    static const char *const auths[] = {
        NULL,
        "",
        "Bearer",
        "Bearer ",
        "Basic " TOKEN,
        "Bearer wrong",
        "Bearer s3cret-Token_4",    /* a prefix */
        "Bearer " TOKEN "2",        /* longer */
        "Bearer S3CRET-TOKEN_42",   /* tokens are case-sensitive */
        "Bearer" TOKEN,
        TOKEN,
    };
    gw_default(fx);
    for (size_t i = 0; i < sizeof auths / sizeof auths[0]; i++)
        expect_push_status(fx, auths[i], ok, strlen(ok), 401);
    /* A bad body without a token is still 401: the token is checked first. */
    expect_push_status(fx, NULL, "not json", 8, 401);
    redisReply *r = rcmd(fx, "LLEN chat:push");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    /* The scheme is case-insensitive and blanks around the token are fine. */
    expect_push_status(fx, "bearer   " TOKEN "  ", ok, strlen(ok), 202);
}

static void test_push_disabled_without_token_file(void **state)
{
    fx_t *fx = *state;
    gw_opts_t o = {.no_token = 1};
    const char *ok = "{\"message\":\"hi\",\"all\":true}";
    gw_start(fx, &o);
    expect_push_status(fx, "Bearer " TOKEN, ok, strlen(ok), 401);
    expect_push_status(fx, "Bearer ", ok, strlen(ok), 401);
}

static void test_bad_token_file(void **state)
{
    fx_t *fx = *state;
    gateway_config_t cfg;
    char err[256] = "";
    char path[160];
    gateway_config_defaults(&cfg);
    snprintf(cfg.listen, sizeof cfg.listen, "127.0.0.1:0");
    snprintf(path, sizeof path, "%s/empty", fx->dir);
    write_file(path, " \n\t\n");
    snprintf(cfg.push_token_file, sizeof cfg.push_token_file, "%s", path);
    assert_null(gateway_new(fx->loop, &cfg, err, sizeof err));
    assert_non_null(strstr(err, "empty"));
    snprintf(cfg.push_token_file, sizeof cfg.push_token_file, "%s/missing", fx->dir);
    assert_null(gateway_new(fx->loop, &cfg, err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
}

/* A port already taken: gateway_new fails cleanly (its Redis client included). */
static void test_listen_failure(void **state)
{
    fx_t *fx = *state;
    gateway_config_t cfg;
    char err[256] = "";
    gw_default(fx);
    gateway_config_defaults(&cfg);
    snprintf(cfg.listen, sizeof cfg.listen, "127.0.0.1:%d", gateway_port(fx->gw));
    snprintf(cfg.redis, sizeof cfg.redis, "127.0.0.1:%d", fx->redis_port);
    assert_null(gateway_new(fx->loop, &cfg, err, sizeof err));
    assert_true(err[0] != '\0');
}

/* Gateways with --shared-port serve one port side by side (each answers
 * /servers); one without it still cannot take the port. */
static void test_shared_port(void **state)
{
    fx_t *fx = *state;
    gateway_config_t cfg;
    char err[256] = "";
    gw_opts_t o = {0};
    gw_start(fx, &o);
    int taken = gateway_port(fx->gw);
    gateway_free(fx->gw); /* start again, shared */
    fx->gw = NULL;
    gateway_config_defaults(&cfg);
    snprintf(cfg.listen, sizeof cfg.listen, "127.0.0.1:%d", taken);
    snprintf(cfg.redis, sizeof cfg.redis, "127.0.0.1:%d", fx->redis_port);
    cfg.shared_port = 1;
    cfg.num = 7;
    fx->gw = gateway_new(fx->loop, &cfg, err, sizeof err);
    assert_non_null(fx->gw);
    cfg.num = 8;
    gateway_t *second = gateway_new(fx->loop, &cfg, err, sizeof err);
    assert_non_null(second);
    assert_int_equal(gateway_port(second), taken);
    cfg.shared_port = 0;
    cfg.num = 9;
    assert_null(gateway_new(fx->loop, &cfg, err, sizeof err));
    assert_non_null(strstr(err, "in use"));
    add_node(fx, "a", 1, core_now_ms());
    resp_t r;
    /* both have their Redis connection: ten healthy answers in a row */
    uint64_t deadline = core_mono_ms() + TU_DEADLINE_MS;
    for (int healthy = 0; healthy < 10; assert_true(core_mono_ms() < deadline)) {
        get(fx, "/healthz", &r);
        healthy = r.status == 200 ? healthy + 1 : 0;
    }
    for (int i = 0; i < 8; i++) { /* whichever takes it, the answer is the same kind */
        get(fx, "/servers", &r);
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(r.body, "\"id\":\"a\""));
    }
    gateway_free(second);
}

/* ------------------------------------------------------------ routing, framing */

static void test_not_found_and_method(void **state)
{
    fx_t *fx = *state;
    resp_t r;
    gw_default(fx);
    get(fx, "/nope", &r);
    assert_int_equal(r.status, 404);
    get(fx, "/servers/", &r);
    assert_int_equal(r.status, 404);
    get(fx, "/push", &r);
    assert_int_equal(r.status, 405);
    http_str(fx, "POST /servers HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r);
    assert_int_equal(r.status, 405);
    http_str(fx, "DELETE /healthz HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 405);
    http_str(fx, "PUT /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r);
    assert_int_equal(r.status, 405);
    get(fx, "/servers?x=1", &r); /* a query string does not change the route */
    assert_int_equal(r.status, 503);
}

/* ------------------------------------------------------------ web client */

static const char *header_value(const resp_t *r, const char *name, char *out, size_t cap)
{
    const char *h = strcasestr(r->head, name);
    size_t n;

    if (!h)
        return NULL;
    h += strlen(name);
    while (*h == ' ')
        h++;
    n = strcspn(h, "\r");
    snprintf(out, cap, "%.*s", (int)n, h);
    return out;
}

static void web_root(fx_t *fx, char *root, size_t cap)
{
    char path[300];

    snprintf(root, cap, "%s/web", fx->dir);
    assert_int_equal(mkdir(root, 0700), 0);
    snprintf(path, sizeof path, "%s/index.html", root);
    write_file(path, "<!doctype html><title>chat</title>");
    snprintf(path, sizeof path, "%s/js", root);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/js/app.js", root);
    write_file(path, "export const x = 1;\n");
    snprintf(path, sizeof path, "%s/.secret", root);
    write_file(path, "dotfiles are not served");
}

/* Files are served from memory with their type, an ETag (304 on a match),
 * caching by kind, a strict CSP; routes win; nothing outside the root. */
static void test_web_files(void **state)
{
    fx_t *fx = *state;
    char root[200], v[512], etag[64], raw[512];
    gw_opts_t o = {0};
    resp_t r;

    web_root(fx, root, sizeof root);
    o.web_root = root;
    gw_start(fx, &o);
    get(fx, "/", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "<!doctype html><title>chat</title>");
    assert_string_equal(header_value(&r, "Content-Type:", v, sizeof v), "text/html; charset=utf-8");
    assert_string_equal(header_value(&r, "Cache-Control:", v, sizeof v), "no-cache");
    assert_non_null(strstr(header_value(&r, "Content-Security-Policy:", v, sizeof v),
                           "script-src 'self'"));
    assert_non_null(strstr(v, "default-src 'none'"));
    assert_string_equal(header_value(&r, "X-Content-Type-Options:", v, sizeof v), "nosniff");
    get(fx, "/js/app.js", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header_value(&r, "Content-Type:", v, sizeof v),
                        "text/javascript; charset=utf-8");
    assert_string_equal(header_value(&r, "Cache-Control:", v, sizeof v), "public, max-age=300");
    assert_non_null(header_value(&r, "ETag:", etag, sizeof etag));
    snprintf(raw, sizeof raw, "GET /js/app.js HTTP/1.1\r\nIf-None-Match: %s\r\n\r\n", etag);
    http_str(fx, raw, &r);
    assert_int_equal(r.status, 304);
    assert_int_equal(r.len, 0);
    http_str(fx, "GET /js/app.js HTTP/1.1\r\nIf-None-Match: \"0000\"\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    static const char *const not_served[] = {"/.secret", "/js/../index.html", "/../etc/passwd",
                                             "/js", "/index.html/", "/nope.js"};
    for (size_t i = 0; i < sizeof not_served / sizeof not_served[0]; i++) {
        get(fx, not_served[i], &r);
        assert_int_equal(r.status, 404);
    }
    http_str(fx, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r);
    assert_int_equal(r.status, 404);
    get(fx, "/servers", &r); /* routes keep their meaning */
    assert_int_equal(r.status, 503);
}

static void test_web_root_errors(void **state)
{
    fx_t *fx = *state;
    gateway_config_t cfg;
    char err[256] = "", root[200];

    gateway_config_defaults(&cfg);
    snprintf(cfg.listen, sizeof cfg.listen, "127.0.0.1:0");
    snprintf(cfg.web_root, sizeof cfg.web_root, "%s/missing", fx->dir);
    assert_null(gateway_new(fx->loop, &cfg, err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
    snprintf(root, sizeof root, "%s/empty", fx->dir);
    assert_int_equal(mkdir(root, 0700), 0);
    snprintf(cfg.web_root, sizeof cfg.web_root, "%s", root);
    assert_null(gateway_new(fx->loop, &cfg, err, sizeof err));
    assert_non_null(strstr(err, "no index.html"));
}

/* Byte-at-a-time delivery, with the loop turning between bytes. */
static void test_split_request(void **state)
{
    fx_t *fx = *state;
    client_t c;
    resp_t r;
    char raw[512];
    const char *body = "{\"message\":\"split\",\"room\":\"lobby\"}";
    int n = snprintf(raw, sizeof raw,
                     "POST /push HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     TOKEN, strlen(body), body);
    gw_default(fx);
    client_open(fx, &c);
    for (int i = 0; i < n; i++) {
        client_send(&c, raw + i, 1);
        ev_run(fx->loop, EVRUN_NOWAIT);
        assert_int_equal(c.in.len, 0); /* nothing answered before the last byte */
    }
    client_read(&c, &r);
    assert_int_equal(r.status, 202);
    client_close(&c);
    char *got = pop_push(fx);
    assert_non_null(strstr(got, "\"message\":\"split\""));
    assert_non_null(strstr(got, "\"room\":\"lobby\""));
    free(got);
}

/* Two requests in one write are answered in order on one connection. */
static void test_pipelined(void **state)
{
    fx_t *fx = *state;
    client_t c;
    resp_t r;
    static const char raw[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
                              "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"
                              "GET /servers HTTP/1.1\r\nHost: t\r\n\r\n";
    gw_default(fx);
    add_node(fx, "p", 2, core_now_ms());
    client_open(fx, &c);
    client_send(&c, raw, sizeof raw - 1);
    client_read(&c, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");
    client_read(&c, &r);
    assert_int_equal(r.status, 404);
    client_read(&c, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"id\":\"p\""));
    client_close(&c);
}

/* A client that leaves before its answer: nothing leaks or breaks. */
static void test_client_gone_before_answer(void **state)
{
    fx_t *fx = *state;
    client_t c;
    resp_t r;
    gw_default(fx);
    kill(fx->redis_pid, SIGSTOP); /* answers now wait for Redis */
    client_open(fx, &c);
    client_send(&c, "GET /servers HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n", 50);
    ev_run(fx->loop, EVRUN_NOWAIT);
    client_close(&c);
    kill(fx->redis_pid, SIGCONT);
    wait_status(fx, "/healthz", 200);
    get(fx, "/healthz", &r);
    assert_int_equal(r.status, 200);
}

/* ------------------------------------------------------------ metrics, config */

static int prom_line_ok(const char *line)
{
    const char *p = line;
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || *p == ':'))
        return 0;
    while (*p && *p != ' ' && *p != '{')
        p++;
    if (*p == '{') {
        p = strchr(p, '}');
        if (!p)
            return 0;
        p++;
    }
    if (*p++ != ' ')
        return 0;
    char *end = NULL;
    strtod(p, &end);
    return end != p && *end == '\0';
}

static void test_metrics_format(void **state)
{
    fx_t *fx = *state;
    resp_t r;
    gw_default(fx);
    get(fx, "/nope", &r);
    push(fx, NULL, "{}", 2, &r);
    expect_bad_body(fx, "{}");
    get(fx, "/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strcasestr(r.head, "Content-Type: text/plain"));
    int samples = 0;
    for (char *save = NULL, *line = strtok_r(r.body, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        if (!prom_line_ok(line))
            fail_msg("not a Prometheus sample: '%s'", line);
        samples++;
    }
    assert_true(samples >= 6);
    get(fx, "/metrics", &r);
    assert_non_null(strstr(r.body, "gateway_requests_total{route=\"other\",status=\"404\"} 1\n"));
    assert_non_null(strstr(r.body, "gateway_requests_total{route=\"push\",status=\"401\"} 1\n"));
    assert_non_null(strstr(r.body, "gateway_requests_total{route=\"push\",status=\"400\"} 1\n"));
    assert_non_null(strstr(r.body, "gateway_requests_total{route=\"metrics\",status=\"200\"} 1\n"));
    assert_non_null(strstr(r.body, "\ngateway_push_rejected_total 2\n"));
}

static int parse_args(gateway_config_t *c, int argc, const char **argv)
{
    gateway_config_defaults(c);
    return gateway_config_parse(c, argc, (char **)argv);
}

static void test_config_flags(void **state)
{
    (void)state;
    gateway_config_t c;
    const char *ok[] = {"gw", "--listen", "0.0.0.0:9999", "--redis", "10.0.0.1:7000",
                        "--push-token-file", "/tmp/t", "--node-ttl", "1500", "--num", "12",
                        "--redis-timeout", "0.5", "--log-level", "debug", "--servers-cache", "0"};
    assert_int_equal(parse_args(&c, 17, ok), 0);
    assert_string_equal(c.listen, "0.0.0.0:9999");
    assert_string_equal(c.redis, "10.0.0.1:7000");
    assert_string_equal(c.push_token_file, "/tmp/t");
    assert_int_equal(c.node_ttl_ms, 1500);
    assert_int_equal(c.num, 12);
    assert_true(c.redis_timeout == 0.5);
    assert_string_equal(c.log_level, "debug");
    assert_int_equal(c.servers_cache_ms, 0);
    const char *defaults[] = {"gw"};
    assert_int_equal(parse_args(&c, 1, defaults), 0);
    assert_string_equal(c.listen, "127.0.0.1:8080");
    assert_int_equal(c.node_ttl_ms, 5000);
    assert_int_equal(c.servers_cache_ms, 250);
    assert_int_equal(c.num, 0);
    assert_int_equal(c.max_conns_per_ip, 1000);
    assert_true(core_addrset_has(&c.exempt, "127.0.0.1"));
    const char *limits[] = {"gw", "--max-conns-per-ip", "7", "--limit-exempt", "none",
                            "--tls-cert", "/c.pem", "--tls-key", "/k.pem"};
    assert_int_equal(parse_args(&c, 9, limits), 0);
    assert_int_equal(c.max_conns_per_ip, 7);
    assert_false(core_addrset_has(&c.exempt, "127.0.0.1"));
    assert_string_equal(c.tls_cert, "/c.pem");
    const char *shared[] = {"gw", "--shared-port", "--num", "1001"};
    assert_int_equal(parse_args(&c, 4, shared), 0);
    assert_int_equal(c.shared_port, 1);
    /* bad values and unknown flags (getopt and the parser print to stderr) */
    int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    const char *bad[][3] = {
        {"gw", "--num", "0"},           {"gw", "--num", "65536"},
        {"gw", "--node-ttl", "x"},      {"gw", "--listen", "nocolon"},
        {"gw", "--log-level", "loud"},  {"gw", "--redis-timeout", "-1"},
        {"gw", "--bogus", "1"},         {"gw", "extra", "arg"},
        {"gw", "--max-conns-per-ip", "-1"}, {"gw", "--max-conns-per-ip", "1.5"},
        {"gw", "--limit-exempt", "10.0.0.0/99"}, {"gw", "--tls-cert", "/only-cert.pem"},
        {"gw", "--shared-port", "--listen=127.0.0.1:1"}, /* shared needs --num */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (parse_args(&c, 3, bad[i]) != -1)
            fail_msg("%s %s was accepted", bad[i][1], bad[i][2]);
    dup2(saved, 2);
    close(saved);
    close(devnull);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_servers_ordered),
        T(test_servers_stale_and_malformed_dropped),
        T(test_servers_none_503),
        T(test_servers_cached),
        T(test_servers_spread),
        T(test_servers_concurrent_uncached),
        T(test_shared_port),
        T(test_healthz_follows_redis),
        T(test_push_accepted),
        T(test_push_bad_body_400),
        T(test_push_body_cap_413),
        T(test_push_unauthorized_401),
        T(test_push_disabled_without_token_file),
        T(test_bad_token_file),
        T(test_listen_failure),
        T(test_not_found_and_method),
        T(test_split_request),
        T(test_pipelined),
        T(test_client_gone_before_answer),
        T(test_metrics_format),
        T(test_web_files),
        T(test_web_root_errors),
        cmocka_unit_test(test_config_flags),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
