/* Tests for core_redis_* against a real redis-server on a private port. */
#include <errno.h>
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "core/core.h"
#include "test_util.h"


/* What one command's callback saw. */
typedef struct got {
    int calls;
    int nulls;
    int type;
    long long integer;
    char str[64];
    struct fx *fx;
    int free_on_call; /* core_redis_free from inside this callback */
} got_t;

typedef struct fx {
    char dir[64];
    int port;
    pid_t pid;
    struct ev_loop *loop;
    ev_timer tick;
    core_redis_t *r;
    int hooks;
    int free_in_hook;
    got_t hook_got; /* command issued from the hook */
    int saved_stderr; /* >= 0 while stderr goes to a file */
    int fillers[8];   /* connections parked in a full accept queue */
    int nfillers;
    int listen_fd;
    int auth; /* the server wants AUTH_PW */
} fx_t;

/* ------------------------------------------------------------ redis-server */

/* A Redis that wants a password (default user) and knows an ACL user. */
#define AUTH_PW "pw-9f3c1d2e7a"
#define AUTH_USER "chatsvc"
#define AUTH_USER_PW "svc-41b7e0c2"
#define AUTH_CONF                                      \
    "requirepass " AUTH_PW "\n"                        \
    "user " AUTH_USER " on >" AUTH_USER_PW " ~* &* +@all\n"

static int start_redis(fx_t *fx)
{
    if (fx->auth)
        return tu_redis_start_conf(fx->dir, fx->port, AUTH_CONF, &fx->pid);
    return tu_redis_start(fx->dir, fx->port, &fx->pid);
}

/* ------------------------------------------------------------ fixture */

static int fx_setup_common(void **state, int with_server, int auth)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    int tries;

    if (fx == NULL)
        return -1;
    fx->pid = -1;
    fx->saved_stderr = -1;
    fx->listen_fd = -1;
    fx->auth = auth;
    strcpy(fx->dir, "/tmp/core_redis.XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    ev_timer_init(&fx->tick, tu_noop_timer, 0.01, 0.01); /* keeps EVRUN_ONCE from blocking long */
    ev_timer_start(fx->loop, &fx->tick);
    *state = fx;
    for (tries = 0; tries < 5; tries++) {
        fx->port = tu_free_port();
        if (!with_server || start_redis(fx) == 0)
            return 0;
    }
    return -1;
}

static int fx_setup(void **state)
{
    return fx_setup_common(state, 1, 0);
}

static int fx_setup_auth(void **state)
{
    return fx_setup_common(state, 1, 1);
}

static int fx_setup_noserver(void **state)
{
    return fx_setup_common(state, 0, 0);
}

static int fx_teardown(void **state)
{
    fx_t *fx = *state;

    if (fx == NULL)
        return 0;
    core_redis_free(fx->r);
    tu_redis_kill(&fx->pid);
    if (fx->saved_stderr >= 0) {
        dup2(fx->saved_stderr, 2);
        close(fx->saved_stderr);
    }
    while (fx->nfillers > 0)
        close(fx->fillers[--fx->nfillers]);
    if (fx->listen_fd >= 0)
        close(fx->listen_fd);
    ev_timer_stop(fx->loop, &fx->tick);
    ev_loop_destroy(fx->loop);
    tu_rm_tree(fx->dir);
    free(fx);
    return 0;
}

/* Runs the loop until cond holds; fails the test at the deadline. */
#define WAIT_FOR(fx, cond)                                          \
    do {                                                            \
        uint64_t dl_ = core_mono_ms() + TU_DEADLINE_MS;                \
        while (!(cond)) {                                           \
            assert_true(core_mono_ms() < dl_);                      \
            ev_run((fx)->loop, EVRUN_ONCE);                         \
        }                                                           \
    } while (0)

/* Runs the loop for ms, letting anything late arrive. */
static void run_for(fx_t *fx, uint64_t ms)
{
    uint64_t end = core_mono_ms() + ms;

    while (core_mono_ms() < end)
        ev_run(fx->loop, EVRUN_ONCE);
}

static void on_got(core_redis_t *r, redisReply *reply, void *ud)
{
    got_t *g = ud;

    g->calls++;
    if (reply == NULL) {
        g->nulls++;
    } else {
        g->type = reply->type;
        g->integer = reply->integer;
        if (reply->str)
            snprintf(g->str, sizeof(g->str), "%.*s", (int)reply->len, reply->str);
    }
    if (g->free_on_call) {
        core_redis_free(r);
        g->fx->r = NULL;
        /* After free nothing is accepted (r is still valid until we return). */
    }
}

static void on_hook(core_redis_t *r, void *ud)
{
    fx_t *fx = ud;

    fx->hooks++;
    if (fx->free_in_hook) {
        assert_int_equal(core_redis_cmd(r, on_got, &fx->hook_got, "BLPOP nokey 0"), 0);
        core_redis_free(r);
        fx->r = NULL;
    }
}

static void connect_client(fx_t *fx, double timeout_s)
{
    fx->r = core_redis_new(fx->loop, "127.0.0.1", fx->port, timeout_s);
    assert_non_null(fx->r);
    core_redis_on_connect(fx->r, on_hook, fx);
    WAIT_FOR(fx, core_redis_connected(fx->r) && fx->hooks == 1);
}

/* ------------------------------------------------------------ tests */

static void test_set_get(void **state)
{
    fx_t *fx = *state;
    got_t set = {0}, get = {0}, set2 = {0}, get2 = {0};
    const char *argv[] = {"SET", "bin", "a\0b"};
    const size_t argvlen[] = {3, 3, 3};

    connect_client(fx, 2.0);
    assert_int_equal(core_redis_cmd(fx->r, on_got, &set, "SET %s %s", "k", "hello world"), 0);
    assert_int_equal(core_redis_cmd(fx->r, on_got, &get, "GET %s", "k"), 0);
    assert_int_equal(core_redis_cmdargv(fx->r, on_got, &set2, 3, argv, argvlen), 0);
    assert_int_equal(core_redis_cmd(fx->r, on_got, &get2, "STRLEN bin"), 0);
    assert_int_equal(core_redis_cmd(fx->r, NULL, NULL, "DEL nothing"), 0);
    assert_int_equal(core_redis_inflight(fx->r), 5);
    WAIT_FOR(fx, get2.calls >= 1 && core_redis_inflight(fx->r) == 0);
    assert_int_equal(set.type, REDIS_REPLY_STATUS);
    assert_string_equal(set.str, "OK");
    assert_int_equal(get.type, REDIS_REPLY_STRING);
    assert_string_equal(get.str, "hello world");
    assert_int_equal(set2.type, REDIS_REPLY_STATUS);
    assert_int_equal(get2.type, REDIS_REPLY_INTEGER);
    assert_int_equal(get2.integer, 3);
    assert_int_equal(set.calls + get.calls + set2.calls, 3);
    /* Pub/sub would break one-reply-per-command: refused, cb not called. */
    assert_int_equal(core_redis_cmd(fx->r, on_got, &set, "SUBSCRIBE ch"), -1);
    assert_int_equal(set.calls, 1);
}

#define PIPELINE_N 2000

static void test_pipeline_in_order(void **state)
{
    fx_t *fx = *state;
    got_t *g = calloc(PIPELINE_N, sizeof(*g));
    int i;

    assert_non_null(g);
    connect_client(fx, 5.0);
    for (i = 0; i < PIPELINE_N; i++)
        assert_int_equal(core_redis_cmd(fx->r, on_got, &g[i], "INCR counter"), 0);
    assert_int_equal(core_redis_inflight(fx->r), PIPELINE_N);
    WAIT_FOR(fx, g[PIPELINE_N - 1].calls >= 1);
    for (i = 0; i < PIPELINE_N; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_int_equal(g[i].type, REDIS_REPLY_INTEGER);
        assert_int_equal(g[i].integer, i + 1);
    }
    assert_int_equal(core_redis_inflight(fx->r), 0);
    free(g);
}

/* Issues PING until one answers PONG (a NULL on a busy box is retried). */
static void wait_pong(fx_t *fx)
{
    uint64_t dl = core_mono_ms() + TU_DEADLINE_MS;
    got_t g;

    for (;;) {
        assert_true(core_mono_ms() < dl);
        memset(&g, 0, sizeof(g));
        WAIT_FOR(fx, core_redis_connected(fx->r));
        assert_int_equal(core_redis_cmd(fx->r, on_got, &g, "PING"), 0);
        WAIT_FOR(fx, g.calls >= 1);
        assert_int_equal(g.calls, 1);
        if (g.nulls == 0) {
            assert_string_equal(g.str, "PONG");
            return;
        }
    }
}

static void test_timeout(void **state)
{
    fx_t *fx = *state;
    got_t slow = {0}, behind = {0};
    uint64_t t0;

    connect_client(fx, 0.1);
    t0 = core_mono_ms();
    assert_int_equal(core_redis_cmd(fx->r, on_got, &slow, "DEBUG SLEEP 0.5"), 0);
    assert_int_equal(core_redis_cmd(fx->r, on_got, &behind, "PING"), 0);
    WAIT_FOR(fx, slow.calls >= 1);
    assert_int_equal(slow.calls, 1);
    assert_int_equal(slow.nulls, 1);   /* NULL, not the late +OK */
    assert_int_equal(behind.calls, 1); /* dropped with the unhealthy connection */
    assert_int_equal(behind.nulls, 1);
    assert_int_equal(core_redis_inflight(fx->r), 0);
    /* Give the late reply every chance to (wrongly) arrive. */
    run_for(fx, t0 + 800 > core_mono_ms() ? t0 + 800 - core_mono_ms() : 0);
    WAIT_FOR(fx, fx->hooks >= 2);
    wait_pong(fx);
    assert_int_equal(slow.calls, 1);
    assert_int_equal(behind.calls, 1);
}

/* A process starved past the timeout (here: it sleeps) finds the answer
 * waiting unread: libev would run the expired timer before the read, so
 * the answer is delivered, not a NULL and a reconnect. */
static void test_late_loop_reads_waiting_answer(void **state)
{
    fx_t *fx = *state;
    got_t g = {0};

    connect_client(fx, 0.2);
    assert_int_equal(core_redis_cmd(fx->r, on_got, &g, "DEBUG SLEEP 0.05"), 0);
    run_for(fx, 10); /* the command goes out; its answer takes 50 ms */
    assert_int_equal(g.calls, 0);
    usleep(400 * 1000); /* the loop does not run: the answer waits, the timer expires */
    WAIT_FOR(fx, g.calls >= 1);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.nulls, 0);
    assert_string_equal(g.str, "OK");
    assert_int_equal(fx->hooks, 1); /* the connection was kept */
    wait_pong(fx);
}

static void test_reconnect(void **state)
{
    fx_t *fx = *state;
    got_t blocked = {0}, down = {0}, get = {0};

    connect_client(fx, 5.0);
    assert_int_equal(core_redis_cmd(fx->r, on_got, &blocked, "BLPOP nokey 0"), 0);
    run_for(fx, 20);
    tu_redis_kill(&fx->pid);
    WAIT_FOR(fx, !core_redis_connected(fx->r));
    assert_int_equal(blocked.calls, 1);
    assert_int_equal(blocked.nulls, 1);
    assert_int_equal(core_redis_cmd(fx->r, on_got, &down, "PING"), -1);
    assert_int_equal(core_redis_cmd(fx->r, on_got, &down, "GET %s", "k"), -1);
    run_for(fx, 150); /* at least one failed reconnect attempt */
    assert_false(core_redis_connected(fx->r));
    assert_int_equal(down.calls, 0);
    assert_int_equal(fx->hooks, 1);

    assert_int_equal(start_redis(fx), 0);
    WAIT_FOR(fx, fx->hooks == 2 && core_redis_connected(fx->r));
    assert_int_equal(core_redis_cmd(fx->r, on_got, &get, "SET k v"), 0);
    WAIT_FOR(fx, get.calls >= 1);
    assert_int_equal(get.calls, 1);
    assert_string_equal(get.str, "OK");
    assert_int_equal(down.calls, 0);
    assert_int_equal(blocked.calls, 1);
}

#define FREE_N 5

static void test_free_inflight(void **state)
{
    fx_t *fx = *state;
    got_t g[FREE_N] = {{0}};
    int i;

    connect_client(fx, 5.0);
    assert_int_equal(core_redis_cmd(fx->r, on_got, &g[0], "BLPOP nokey 0"), 0);
    for (i = 1; i < FREE_N; i++)
        assert_int_equal(core_redis_cmd(fx->r, on_got, &g[i], "GET k%d", i), 0);
    run_for(fx, 20); /* sent, not answered: BLPOP holds the connection */
    assert_int_equal(core_redis_inflight(fx->r), FREE_N);
    core_redis_free(fx->r);
    fx->r = NULL;
    for (i = 0; i < FREE_N; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_int_equal(g[i].nulls, 1);
    }
    run_for(fx, 50);
    for (i = 0; i < FREE_N; i++)
        assert_int_equal(g[i].calls, 1);
}

static void test_free_in_reply_callback(void **state)
{
    fx_t *fx = *state;
    got_t first = {0}, g[FREE_N] = {{0}};
    int i;

    connect_client(fx, 5.0);
    first.fx = fx;
    first.free_on_call = 1;
    assert_int_equal(core_redis_cmd(fx->r, on_got, &first, "PING"), 0);
    assert_int_equal(core_redis_cmd(fx->r, on_got, &g[0], "BLPOP nokey 0"), 0);
    for (i = 1; i < FREE_N; i++)
        assert_int_equal(core_redis_cmd(fx->r, on_got, &g[i], "GET k%d", i), 0);
    WAIT_FOR(fx, first.calls >= 1);
    assert_int_equal(first.calls, 1);
    assert_null(fx->r);
    assert_string_equal(first.str, "PONG");
    for (i = 0; i < FREE_N; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_int_equal(g[i].nulls, 1);
    }
    run_for(fx, 50);
    assert_int_equal(first.calls, 1);
    for (i = 0; i < FREE_N; i++)
        assert_int_equal(g[i].calls, 1);
}

/* The timed-out command's NULL callback frees the client mid-teardown. */
static void test_free_in_timeout_callback(void **state)
{
    fx_t *fx = *state;
    got_t slow = {0}, behind = {0};

    connect_client(fx, 0.1);
    slow.fx = fx;
    slow.free_on_call = 1;
    assert_int_equal(core_redis_cmd(fx->r, on_got, &slow, "DEBUG SLEEP 0.3"), 0);
    assert_int_equal(core_redis_cmd(fx->r, on_got, &behind, "PING"), 0);
    WAIT_FOR(fx, slow.calls >= 1);
    assert_int_equal(slow.calls, 1);
    assert_null(fx->r);
    assert_int_equal(slow.nulls, 1);
    assert_int_equal(behind.calls, 1);
    assert_int_equal(behind.nulls, 1);
    run_for(fx, 400);
    assert_int_equal(slow.calls, 1);
    assert_int_equal(behind.calls, 1);
}

static void test_free_in_hook(void **state)
{
    fx_t *fx = *state;

    fx->free_in_hook = 1;
    fx->r = core_redis_new(fx->loop, "127.0.0.1", fx->port, 1.0);
    assert_non_null(fx->r);
    core_redis_on_connect(fx->r, on_hook, fx);
    WAIT_FOR(fx, fx->hooks >= 1);
    assert_null(fx->r);
    assert_int_equal(fx->hooks, 1);
    assert_int_equal(fx->hook_got.calls, 1);
    assert_int_equal(fx->hook_got.nulls, 1);
    run_for(fx, 50);
    assert_int_equal(fx->hook_got.calls, 1);
}

static void test_closed_port_retries(void **state)
{
    fx_t *fx = *state;
    got_t g = {0};

    fx->r = core_redis_new(fx->loop, "127.0.0.1", fx->port, 0.5);
    assert_non_null(fx->r);
    core_redis_on_connect(fx->r, on_hook, fx);
    run_for(fx, 350); /* refused at least twice (100 ms, then 200 ms backoff) */
    assert_false(core_redis_connected(fx->r));
    assert_int_equal(core_redis_cmd(fx->r, on_got, &g, "PING"), -1);
    assert_int_equal(core_redis_inflight(fx->r), 0);
    assert_int_equal(fx->hooks, 0);
    /* A server appearing later is found by the retries. */
    assert_int_equal(start_redis(fx), 0);
    WAIT_FOR(fx, fx->hooks == 1 && core_redis_connected(fx->r));
    wait_pong(fx);
    assert_int_equal(g.calls, 0);
}

/* Sends stderr (core_log) to a file in the test directory. */
static void capture_stderr(fx_t *fx)
{
    char path[128];
    int fd;

    snprintf(path, sizeof(path), "%s/stderr.log", fx->dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    fx->saved_stderr = dup(2);
    assert_true(fx->saved_stderr >= 0);
    assert_true(dup2(fd, 2) == 2);
    close(fd);
}

/* Occurrences of needle in the captured stderr so far. */
static int count_in_stderr(const fx_t *fx, const char *needle)
{
    char path[128], buf[16384];
    ssize_t n;
    int fd, count = 0;
    const char *p;

    snprintf(path, sizeof(path), "%s/stderr.log", fx->dir);
    fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    for (p = buf; (p = strstr(p, needle)) != NULL; p++)
        count++;
    return count;
}

/* 1 when a non-blocking connect to port completes within 200 ms. */
static int connect_completes(fx_t *fx)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)fx->port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct pollfd p = {.fd = fd, .events = POLLOUT};

    assert_true(fd >= 0);
    fx->fillers[fx->nfillers++] = fd;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
        return 1;
    assert_int_equal(errno, EINPROGRESS);
    return poll(&p, 1, 200) == 1;
}

/* A listener whose accept queue is full drops SYNs: connect hangs, and only
 * our connect timeout (not the kernel's 1 s SYN retransmit) ends it. */
static void test_connect_timeout(void **state)
{
    fx_t *fx = *state;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)fx->port)};
    got_t g = {0};

    fx->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fx->listen_fd >= 0);
    assert_int_equal(bind(fx->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fx->listen_fd, 0), 0);
    while (connect_completes(fx))
        assert_true(fx->nfillers < 8);

    capture_stderr(fx);
    core_log_set_level(CORE_LOG_WARN);
    fx->r = core_redis_new(fx->loop, "127.0.0.1", fx->port, 0.15);
    assert_non_null(fx->r);
    core_redis_on_connect(fx->r, on_hook, fx);
    WAIT_FOR(fx, count_in_stderr(fx, "connect timed out") >= 2);
    core_log_set_level(CORE_LOG_ERROR);
    assert_false(core_redis_connected(fx->r));
    assert_int_equal(core_redis_cmd(fx->r, on_got, &g, "PING"), -1);
    assert_int_equal(fx->hooks, 0);
    core_redis_free(fx->r); /* while a connect is pending */
    fx->r = NULL;
    assert_int_equal(g.calls, 0);
}

/* ------------------------------------------------------------ AUTH */

/* A client with credentials, its hook counted; not waited for. */
static void start_auth_client(fx_t *fx, const char *user, const char *pw)
{
    fx->r = core_redis_new(fx->loop, "127.0.0.1", fx->port, 1.0);
    assert_non_null(fx->r);
    core_redis_set_auth(fx->r, user, pw);
    core_redis_on_connect(fx->r, on_hook, fx);
}

static void expect_reply(fx_t *fx, const char *cmd, const char *want)
{
    got_t g = {0};

    assert_int_equal(core_redis_cmd(fx->r, on_got, &g, cmd), 0);
    WAIT_FOR(fx, g.calls >= 1);
    assert_int_equal(g.nulls, 0);
    assert_string_equal(g.str, want);
}

/* The right password: commands work, and AUTH goes again on a reconnect
 * (a Redis restarted keeps wanting it). */
static void test_auth_password(void **state)
{
    fx_t *fx = *state;

    start_auth_client(fx, NULL, AUTH_PW);
    WAIT_FOR(fx, core_redis_connected(fx->r) && fx->hooks == 1);
    expect_reply(fx, "SET k v", "OK");
    expect_reply(fx, "ACL WHOAMI", "default");
    tu_redis_kill(&fx->pid);
    WAIT_FOR(fx, !core_redis_connected(fx->r));
    assert_int_equal(start_redis(fx), 0);
    WAIT_FOR(fx, core_redis_connected(fx->r) && fx->hooks == 2);
    expect_reply(fx, "PING", "PONG");
}

/* An ACL user: AUTH user password. */
static void test_auth_acl_user(void **state)
{
    fx_t *fx = *state;

    start_auth_client(fx, AUTH_USER, AUTH_USER_PW);
    WAIT_FOR(fx, core_redis_connected(fx->r) && fx->hooks == 1);
    expect_reply(fx, "ACL WHOAMI", AUTH_USER);
}

/* A wrong password: never connected, no hook, commands refused, one clear
 * error (not one per retry), the password nowhere in it. The right one,
 * set later, is used from the next attempt. */
static void test_auth_wrong_password(void **state)
{
    fx_t *fx = *state;
    got_t g = {0};

    capture_stderr(fx);
    start_auth_client(fx, NULL, "wrong-pw-5d1e");
    WAIT_FOR(fx, count_in_stderr(fx, "AUTH refused") >= 1);
    run_for(fx, 2500); /* a retry (2 s backoff) is refused too, quietly */
    assert_false(core_redis_connected(fx->r));
    assert_int_equal(fx->hooks, 0);
    assert_int_equal(core_redis_cmd(fx->r, on_got, &g, "PING"), -1);
    assert_int_equal(count_in_stderr(fx, "AUTH refused (1 time)"), 1);
    assert_int_equal(count_in_stderr(fx, "refused"), 1);
    assert_true(count_in_stderr(fx, "WRONGPASS") == 1);
    assert_int_equal(count_in_stderr(fx, "wrong-pw-5d1e"), 0);

    core_redis_set_auth(fx->r, NULL, AUTH_PW);
    WAIT_FOR(fx, core_redis_connected(fx->r) && fx->hooks == 1);
    assert_true(count_in_stderr(fx, "accepted after") == 0); /* a WARN: not at ERROR level */
    expect_reply(fx, "PING", "PONG");
    assert_int_equal(g.calls, 0);
}

/* No password for a Redis that wants one: NOAUTH, said plainly. */
static void test_auth_missing(void **state)
{
    fx_t *fx = *state;

    capture_stderr(fx);
    start_auth_client(fx, NULL, NULL);
    WAIT_FOR(fx, count_in_stderr(fx, "access refused") >= 1);
    assert_int_equal(count_in_stderr(fx, "NOAUTH"), 1);
    assert_int_equal(count_in_stderr(fx, "needs a password and none was given"), 1);
    run_for(fx, 200);
    assert_false(core_redis_connected(fx->r));
    assert_int_equal(fx->hooks, 0);
}

static void test_bad_args(void **state)
{
    fx_t *fx = *state;

    assert_null(core_redis_new(fx->loop, NULL, 6379, 1.0));
    assert_null(core_redis_new(fx->loop, "127.0.0.1", 0, 1.0));
    assert_null(core_redis_new(fx->loop, "127.0.0.1", 6379, 0.0));
    core_redis_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_get, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_in_order, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_timeout, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_late_loop_reads_waiting_answer, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reconnect, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_free_inflight, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_free_in_reply_callback, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_free_in_timeout_callback, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_free_in_hook, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_closed_port_retries, fx_setup_noserver, fx_teardown),
        cmocka_unit_test_setup_teardown(test_connect_timeout, fx_setup_noserver, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_args, fx_setup_noserver, fx_teardown),
        cmocka_unit_test_setup_teardown(test_auth_password, fx_setup_auth, fx_teardown),
        cmocka_unit_test_setup_teardown(test_auth_acl_user, fx_setup_auth, fx_teardown),
        cmocka_unit_test_setup_teardown(test_auth_wrong_password, fx_setup_auth, fx_teardown),
        cmocka_unit_test_setup_teardown(test_auth_missing, fx_setup_auth, fx_teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    core_log_set_level(CORE_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
