/* node/zk.c: membership and election against a real ZooKeeper server.
 *
 * One server (scripts/zookeeper.sh) on a free port for the whole binary;
 * every test works under its own root. Several node_zk instances share one
 * libev loop, driven with deadlines. The test's own synchronous handle
 * only inspects znodes; the instances under test never see it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include "node/node.h"

#define SESSION_MS 2000
#define MAX_INST 4

static char g_dir[128];
static int g_port;
static char g_hosts[64];
static zhandle_t *g_zh;        /* the test's own inspection handle */
static zhandle_t *g_last_zh;   /* the handle zookeeper_init made last */

static int g_init_until_refused; /* zookeeper_init returns once a connect was refused */
static int g_auth_refusals;      /* zoo_add_auth calls to answer ZINVALIDSTATE */

/* Wraps the library's zookeeper_init so the test can learn an instance's
 * session (id and password) and expire it from a second handle. */
typedef zhandle_t *(*zk_init_fn)(const char *, watcher_fn, int, const clientid_t *, void *, int);
zhandle_t *zookeeper_init(const char *host, watcher_fn fn, int recv_timeout,
                          const clientid_t *clientid, void *context, int flags)
{
    zk_init_fn real = (zk_init_fn)dlsym(RTLD_NEXT, "zookeeper_init");
    zhandle_t *zh = real ? real(host, fn, recv_timeout, clientid, context, flags) : NULL;
    g_last_zh = zh;
    /* after a refused connect the library sits in state 0 until it tries again */
    for (int i = 0; zh && g_init_until_refused && zoo_state(zh) != 0 && i < 3000; i++)
        usleep(1000);
    return zh;
}

/* Wraps zoo_add_auth: ZINVALIDSTATE is what the library answers between two
 * connection attempts (as above); here on demand, then the real thing. */
typedef int (*zk_add_auth_fn)(zhandle_t *, const char *, const char *, int, void_completion_t,
                              const void *);
int zoo_add_auth(zhandle_t *zh, const char *scheme, const char *cert, int certLen,
                 void_completion_t completion, const void *data)
{
    zk_add_auth_fn real = (zk_add_auth_fn)dlsym(RTLD_NEXT, "zoo_add_auth");
    if (g_auth_refusals > 0) {
        g_auth_refusals--;
        return ZINVALIDSTATE;
    }
    return real ? real(zh, scheme, cert, certLen, completion, data) : ZSYSTEMERROR;
}

/* ------------------------------------------------------------------ instances */

typedef struct inst {
    node_zk_t *z;
    char id[64];
    int known;
    char leader[64];
    char cluster[128];
    int64_t epoch;
    int is_self;
    int leader_calls, no_leader_calls, members_calls;
    size_t nmembers;
    node_zk_member_t members[MAX_INST];
} inst_t;

static void on_leader(void *ud, const char *id, const char *cluster, int64_t epoch, int is_self)
{
    inst_t *t = ud;
    t->known = 1;
    snprintf(t->leader, sizeof t->leader, "%s", id);
    snprintf(t->cluster, sizeof t->cluster, "%s", cluster);
    t->epoch = epoch;
    t->is_self = is_self;
    t->leader_calls++;
}

static void on_no_leader(void *ud)
{
    inst_t *t = ud;
    t->known = 0;
    t->is_self = 0;
    t->no_leader_calls++;
}

static void on_members(void *ud, const node_zk_member_t *members, size_t count)
{
    inst_t *t = ud;
    t->members_calls++;
    t->nmembers = count;
    for (size_t i = 0; i < count && i < MAX_INST; i++)
        t->members[i] = members[i];
}

static const node_zk_cbs_t g_cbs = {on_leader, on_no_leader, on_members};

static void inst_start(struct ev_loop *loop, inst_t *t, const char *root, const char *id,
                       const char *url)
{
    node_zk_member_t self;
    memset(t, 0, sizeof *t);
    memset(&self, 0, sizeof self);
    snprintf(t->id, sizeof t->id, "%s", id);
    snprintf(self.id, sizeof self.id, "%s", id);
    snprintf(self.url, sizeof self.url, "%s", url);
    snprintf(self.cluster, sizeof self.cluster, "127.0.0.1:7%s", id);
    t->z = node_zk_start(loop, g_hosts, root, SESSION_MS, &self, &g_cbs, t);
    assert_non_null(t->z);
}

static void inst_stop(inst_t *t)
{
    node_zk_stop(t->z);
    t->z = NULL;
}

/* ------------------------------------------------------------------ waiting */

typedef int (*cond_fn)(void *arg);

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* Runs the loop until ok(arg) or the deadline; the tick keeps ev_run from
 * blocking past it. */
static int wait_until(struct ev_loop *loop, cond_fn ok, void *arg, double sec)
{
    ev_timer tick;
    uint64_t deadline = core_mono_ms() + (uint64_t)(sec * 1000);
    ev_timer_init(&tick, on_tick, 0.02, 0.02);
    ev_timer_start(loop, &tick);
    while (!ok(arg) && core_mono_ms() < deadline)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &tick);
    return ok(arg);
}

static int never(void *arg)
{
    (void)arg;
    return 0;
}

/* A set of instances that should agree on one leader and n members. */
typedef struct group {
    inst_t *v[MAX_INST];
    size_t n;
    size_t members;
} group_t;

static int agreed(void *arg)
{
    group_t *g = arg;
    int selves = 0;
    for (size_t i = 0; i < g->n; i++) {
        inst_t *t = g->v[i];
        if (!t->known || t->nmembers != g->members)
            return 0;
        if (strcmp(t->leader, g->v[0]->leader) || t->epoch != g->v[0]->epoch)
            return 0;
        if (t->is_self != !strcmp(t->leader, t->id))
            return 0;
        selves += t->is_self;
    }
    return selves == 1;
}

static inst_t *group_leader(group_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->v[i]->is_self)
            return g->v[i];
    return NULL;
}

static int is_leader_self(void *arg)
{
    inst_t *t = arg;
    return t->known && t->is_self;
}

/* ------------------------------------------------------------------ server inspection */

/* The owner of the lowest election znode: its node id and sequence. */
static int lowest_candidate(const char *root, char *id, size_t idlen, int64_t *seq)
{
    char path[128], best[384] = "";
    struct String_vector sv;
    int64_t low = -1;
    snprintf(path, sizeof path, "%s/election", root);
    if (zoo_get_children(g_zh, path, 0, &sv) != ZOK)
        return -1;
    for (int i = 0; i < sv.count; i++) {
        const char *us = strrchr(sv.data[i], '_');
        int64_t s = us ? strtoll(us + 1, NULL, 10) : -1;
        if (s >= 0 && (low < 0 || s < low)) {
            low = s;
            snprintf(best, sizeof best, "%s/%s", path, sv.data[i]);
        }
    }
    deallocate_String_vector(&sv);
    int len = (int)idlen - 1;
    if (low < 0 || zoo_get(g_zh, best, 0, id, &len, NULL) != ZOK || len < 0)
        return -1;
    id[len] = '\0';
    *seq = low;
    return 0;
}

static int child_count(const char *path)
{
    struct String_vector sv;
    if (zoo_get_children(g_zh, path, 0, &sv) != ZOK)
        return -1;
    int n = sv.count;
    deallocate_String_vector(&sv);
    return n;
}

/* zookeeper_close only sends closeSession: the server drops the session's
 * ephemerals a moment later. Well under SESSION_MS, so an expiry (a close
 * that never reached the server) would not pass for it. */
static int no_children(void *path)
{
    return child_count(path) == 0;
}

static int gone_soon(struct ev_loop *loop, const char *path)
{
    return wait_until(loop, no_children, (void *)path, SESSION_MS / 2000.0);
}

static int znode_data(const char *path, char *out, size_t outlen)
{
    int len = (int)outlen - 1;
    if (zoo_get(g_zh, path, 0, out, &len, NULL) != ZOK || len < 0)
        return -1;
    out[len] = '\0';
    return 0;
}

/* zk_watch_count from the server's mntr four-letter command. */
static long watch_count(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    char buf[8192];
    size_t got = 0;
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        write(fd, "mntr", 4) != 4) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    while (got < sizeof buf - 1 && (n = read(fd, buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    close(fd);
    buf[got] = '\0';
    const char *p = strstr(buf, "zk_watch_count");
    return p ? strtol(p + strlen("zk_watch_count"), NULL, 10) : -1;
}

static long g_want_watches;

static int watches_are(void *arg)
{
    (void)arg;
    return watch_count() == g_want_watches;
}

/* ------------------------------------------------------------------ server */

static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

static void noop_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)type;
    (void)state;
    (void)path;
    (void)ctx;
}

static int state_connected(void *arg)
{
    return zoo_state(arg) == ZOO_CONNECTED_STATE;
}

static int group_setup(void **state)
{
    char cmd[512];
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/test_node_zk.XXXXXX");
    if (!mkdtemp(g_dir) || (g_port = free_port()) <= 0)
        return -1;
    snprintf(g_hosts, sizeof g_hosts, "127.0.0.1:%d", g_port);
    snprintf(cmd, sizeof cmd, "%s/scripts/zookeeper.sh start %s %d", CHAT_SOURCE_DIR, g_dir,
             g_port);
    if (system(cmd) != 0)
        return -1;
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    g_zh = zookeeper_init(g_hosts, noop_watcher, 10000, NULL, NULL, 0);
    struct ev_loop *loop = ev_loop_new(0);
    int ok = g_zh && wait_until(loop, state_connected, g_zh, 15);
    ev_loop_destroy(loop);
    return ok ? 0 : -1;
}

static int group_teardown(void **state)
{
    char cmd[512];
    (void)state;
    if (g_zh)
        zookeeper_close(g_zh);
    snprintf(cmd, sizeof cmd, "%s/scripts/zookeeper.sh stop %s; rm -rf %s", CHAT_SOURCE_DIR,
             g_dir, g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ tests */

/* (1) Three members: one leader, the lowest sequence; everyone agrees. */
static void test_three_members_one_leader(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    inst_t a, b, c;
    group_t g = {{&a, &b, &c}, 3, 3};
    char id[64], data[512];
    int64_t seq;
    (void)state;
    inst_start(loop, &a, "/t1/chat", "a", "ws://a/ws");
    inst_start(loop, &b, "/t1/chat", "b", "ws://b/ws");
    inst_start(loop, &c, "/t1/chat", "c", "ws://c/ws");
    assert_true(wait_until(loop, agreed, &g, 20));

    assert_int_equal(lowest_candidate("/t1/chat", id, sizeof id, &seq), 0);
    inst_t *l = group_leader(&g);
    assert_non_null(l);
    assert_string_equal(l->id, id);
    assert_string_equal(a.leader, id);
    assert_true(a.epoch == seq);
    snprintf(data, sizeof data, "127.0.0.1:7%s", id);
    assert_string_equal(b.cluster, data);
    assert_int_equal(node_zk_is_leader(a.z) + node_zk_is_leader(b.z) + node_zk_is_leader(c.z),
                     1);
    assert_true(node_zk_is_leader(l->z));

    /* members sorted by id, with their registration data */
    assert_string_equal(c.members[0].id, "a");
    assert_string_equal(c.members[1].url, "ws://b/ws");
    assert_string_equal(c.members[2].cluster, "127.0.0.1:7c");
    assert_true(node_zk_is_member(a.z, "c"));
    assert_false(node_zk_is_member(a.z, "d"));
    assert_int_equal(znode_data("/t1/chat/nodes/b", data, sizeof data), 0);
    assert_non_null(strstr(data, "\"url\":\"ws://b/ws\""));
    assert_int_equal(child_count("/t1/chat/election"), 3);

    /* no herd: one child watch per node, one predecessor watch per follower */
    g_want_watches = 3 + 2;
    assert_true(wait_until(loop, watches_are, NULL, 10));

    inst_stop(&a);
    inst_stop(&b);
    inst_stop(&c);
    assert_true(gone_soon(loop, "/t1/chat/election"));
    assert_true(gone_soon(loop, "/t1/chat/nodes"));
    ev_loop_destroy(loop);
}

/* (2) The leader stops: a new leader with a larger epoch, two members. */
static void test_leader_stops(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    inst_t t[3];
    group_t g = {{&t[0], &t[1], &t[2]}, 3, 3};
    (void)state;
    inst_start(loop, &t[0], "/t2", "a", "ws://a/ws");
    inst_start(loop, &t[1], "/t2", "b", "ws://b/ws");
    inst_start(loop, &t[2], "/t2", "c", "ws://c/ws");
    assert_true(wait_until(loop, agreed, &g, 20));
    inst_t *old = group_leader(&g);
    int64_t old_epoch = old->epoch;
    char old_id[64];
    snprintf(old_id, sizeof old_id, "%s", old->id);

    inst_stop(old);
    group_t rest = {{NULL}, 0, 2};
    for (int i = 0; i < 3; i++)
        if (&t[i] != old)
            rest.v[rest.n++] = &t[i];
    assert_true(wait_until(loop, agreed, &rest, 20));
    inst_t *l = group_leader(&rest);
    assert_string_not_equal(l->id, old_id);
    assert_true(rest.v[0]->epoch > old_epoch);
    assert_false(node_zk_is_member(rest.v[0]->z, old_id));
    assert_true(node_zk_is_leader(l->z));

    for (size_t i = 0; i < rest.n; i++)
        inst_stop(rest.v[i]);
    ev_loop_destroy(loop);
}

/* (3) A follower in the middle stops: only its successor re-watches; the
 * leader and everyone's view of it stay as they were. */
static void test_middle_follower_stops(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    inst_t a, b, c;
    group_t g1 = {{&a}, 1, 1}, g2 = {{&a, &b}, 2, 2}, g3 = {{&a, &b, &c}, 3, 3};
    group_t ac = {{&a, &c}, 2, 2};
    (void)state;
    /* one at a time, so the sequence order is a < b < c */
    inst_start(loop, &a, "/t3", "a", "ws://a/ws");
    assert_true(wait_until(loop, agreed, &g1, 20));
    inst_start(loop, &b, "/t3", "b", "ws://b/ws");
    assert_true(wait_until(loop, agreed, &g2, 20));
    inst_start(loop, &c, "/t3", "c", "ws://c/ws");
    assert_true(wait_until(loop, agreed, &g3, 20));
    assert_true(a.is_self);
    g_want_watches = 3 + 2;
    assert_true(wait_until(loop, watches_are, NULL, 10));
    int a_calls = a.leader_calls, c_calls = c.leader_calls;
    int64_t epoch = a.epoch;

    inst_stop(&b);
    g_want_watches = 2 + 1; /* c now watches a; nobody else gained a watch */
    assert_true(wait_until(loop, agreed, &ac, 20));
    assert_true(wait_until(loop, watches_are, NULL, 10));
    assert_int_equal(a.leader_calls, a_calls);
    assert_int_equal(c.leader_calls, c_calls);
    assert_int_equal(a.no_leader_calls + c.no_leader_calls, 0);
    assert_string_equal(c.leader, "a");
    assert_true(c.epoch == epoch);

    inst_stop(&a);
    inst_stop(&c);
    ev_loop_destroy(loop);
}

static int no_leader_seen(void *arg)
{
    inst_t *t = arg;
    return t->no_leader_calls > 0;
}

/* Closes a's session from a second handle with the same id and password.
 * The first client may win its connection back before the close gets
 * through, so this is repeated until a notices. */
static int expire_session(struct ev_loop *loop, const clientid_t *cid, inst_t *a)
{
    for (int attempt = 0; attempt < 5 && !a->no_leader_calls; attempt++) {
        zhandle_t *zh = zookeeper_init(g_hosts, noop_watcher, SESSION_MS, cid, NULL, 0);
        if (!zh)
            return -1;
        int up = wait_until(loop, state_connected, zh, 10);
        zookeeper_close(zh);
        if (up)
            wait_until(loop, no_leader_seen, a, 8);
    }
    return a->no_leader_calls ? 0 : -1;
}

/* (4) Session expiry: on_no_leader at once, then the node re-joins. */
static void test_session_expiry(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    inst_t a, b;
    group_t g1 = {{&a}, 1, 1}, g2 = {{&a, &b}, 2, 2};
    (void)state;
    inst_start(loop, &a, "/t4", "a", "ws://a/ws");
    zhandle_t *a_zh = g_last_zh;
    assert_true(wait_until(loop, agreed, &g1, 20));
    inst_start(loop, &b, "/t4", "b", "ws://b/ws");
    assert_true(wait_until(loop, agreed, &g2, 20));
    assert_true(a.is_self);
    int64_t epoch = a.epoch;
    clientid_t cid = *zoo_client_id(a_zh);

    assert_int_equal(expire_session(loop, &cid, &a), 0);
    assert_false(node_zk_is_leader(a.z));
    /* a came back with a new session, behind b */
    assert_true(wait_until(loop, agreed, &g2, 20));
    assert_true(b.is_self);
    assert_true(b.epoch > epoch);
    assert_string_equal(a.leader, "b");
    assert_true(node_zk_is_member(b.z, "a"));
    assert_int_equal(child_count("/t4/election"), 2);

    inst_stop(&a);
    inst_stop(&b);
    ev_loop_destroy(loop);
}

/* (5) The id is held by a live session: wait, then take over when it goes. */
static void test_id_held_waits(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    inst_t one, two;
    group_t g1 = {{&one}, 1, 1};
    char data[512];
    (void)state;
    inst_start(loop, &one, "/t5", "a", "ws://one/ws");
    assert_true(wait_until(loop, agreed, &g1, 20));
    inst_start(loop, &two, "/t5", "a", "ws://two/ws");
    wait_until(loop, never, NULL, 1.5); /* a window for two to (wrongly) join */
    assert_false(two.known);
    assert_false(node_zk_is_leader(two.z));
    assert_int_equal(child_count("/t5/election"), 1);
    assert_int_equal(znode_data("/t5/nodes/a", data, sizeof data), 0);
    assert_non_null(strstr(data, "ws://one/ws"));
    assert_int_equal(two.nmembers, 1); /* it does see the member list */

    inst_stop(&one);
    assert_true(wait_until(loop, is_leader_self, &two, 20));
    assert_int_equal(znode_data("/t5/nodes/a", data, sizeof data), 0);
    assert_non_null(strstr(data, "ws://two/ws"));
    group_t g2 = {{&two}, 1, 1};
    assert_true(wait_until(loop, agreed, &g2, 10));
    assert_string_equal(two.members[0].url, "ws://two/ws");

    inst_stop(&two);
    ev_loop_destroy(loop);
}

/* ------------------------------------------------------------------ credentials */

#define ZK_CRED "chat:zk-pw-6b1f0e"

/* A handle of the test's own, with digest credentials when cred is set. */
static zhandle_t *handle_as(struct ev_loop *loop, const char *cred)
{
    zhandle_t *zh = zookeeper_init(g_hosts, noop_watcher, 10000, NULL, NULL, 0);
    assert_non_null(zh);
    assert_true(wait_until(loop, state_connected, zh, 10));
    if (cred)
        assert_int_equal(zoo_add_auth(zh, "digest", cred, (int)strlen(cred), NULL, NULL), ZOK);
    return zh;
}

static int children_rc(zhandle_t *zh, const char *path, int *count)
{
    struct String_vector sv;
    int rc = zoo_get_children(zh, path, 0, &sv);
    if (rc == ZOK) {
        *count = sv.count;
        deallocate_String_vector(&sv);
    }
    return rc;
}

/* 1 when the znode's ACL gives anything to world:anyone. */
static int acl_open(zhandle_t *zh, const char *path)
{
    struct ACL_vector acl;
    int open = 0;
    assert_int_equal(zoo_get_acl(zh, path, &acl, NULL), ZOK);
    for (int i = 0; i < acl.count; i++)
        open |= !strcmp(acl.data[i].id.scheme, "world");
    deallocate_ACL_vector(&acl);
    return open;
}

/* What someone without the cluster's credentials can do under its root:
 * nothing (read, list, create, change the ACL). */
static void assert_locked_out(zhandle_t *zh, const char *root)
{
    char path[128], buf[64];
    int n = 0, len = (int)sizeof buf;
    snprintf(path, sizeof path, "%s/nodes", root);
    assert_int_equal(children_rc(zh, path, &n), ZNOAUTH);
    snprintf(path, sizeof path, "%s/nodes/a", root);
    assert_int_equal(zoo_get(zh, path, 0, buf, &len, NULL), ZNOAUTH);
    snprintf(path, sizeof path, "%s/election", root);
    assert_int_equal(children_rc(zh, path, &n), ZNOAUTH);
    assert_int_equal(zoo_get(zh, root, 0, buf, &len, NULL), ZNOAUTH);
    snprintf(path, sizeof path, "%s/intruder", root);
    assert_int_equal(zoo_create(zh, path, "x", 1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0), ZNOAUTH);
    assert_int_equal(zoo_set_acl(zh, root, -1, &ZOO_OPEN_ACL_UNSAFE), ZNOAUTH);
}

/* (7) With credentials: the cluster works, and no one else (no credentials,
 * wrong ones) reads or writes under the root; the right ones do. A new
 * session (expiry) authenticates again and rejoins. */
static void test_auth_locks_root(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    inst_t a, b;
    group_t g1 = {{&a}, 1, 1}, g2 = {{&a, &b}, 2, 2};
    int n = 0;
    (void)state;
    assert_int_equal(node_zk_set_auth(ZK_CRED), 0);
    inst_start(loop, &a, "/t7/chat", "a", "ws://a/ws");
    zhandle_t *a_zh = g_last_zh;
    assert_true(wait_until(loop, agreed, &g1, 20));
    inst_start(loop, &b, "/t7/chat", "b", "ws://b/ws");
    assert_true(wait_until(loop, agreed, &g2, 20));

    zhandle_t *wrong = handle_as(loop, "chat:not-the-password");
    zhandle_t *right = handle_as(loop, ZK_CRED);
    assert_locked_out(g_zh, "/t7/chat");
    assert_locked_out(wrong, "/t7/chat");
    assert_int_equal(children_rc(right, "/t7/chat/nodes", &n), ZOK);
    assert_int_equal(n, 2);
    assert_int_equal(children_rc(right, "/t7/chat/election", &n), ZOK);
    assert_int_equal(n, 2);
    assert_false(acl_open(right, "/t7/chat"));

    clientid_t cid = *zoo_client_id(a_zh);
    assert_true(a.is_self);
    assert_int_equal(expire_session(loop, &cid, &a), 0);
    assert_true(wait_until(loop, agreed, &g2, 20));
    assert_true(b.is_self);
    assert_true(node_zk_is_member(b.z, "a"));
    assert_int_equal(children_rc(right, "/t7/chat/election", &n), ZOK);
    assert_int_equal(n, 2);

    zookeeper_close(wrong);
    zookeeper_close(right);
    inst_stop(&a);
    inst_stop(&b);
    node_zk_set_auth(NULL);
    ev_loop_destroy(loop);
}

/* (8) A root an older run made open to anyone: a node with credentials
 * restricts the cluster's paths to its identity (not the prefix above the
 * root, which is not the cluster's). */
static void test_auth_restricts_open_root(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    inst_t a;
    group_t g1 = {{&a}, 1, 1};
    (void)state;
    assert_int_equal(zoo_create(g_zh, "/t8", "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0), ZOK);
    assert_int_equal(zoo_create(g_zh, "/t8/chat", "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0), ZOK);
    assert_int_equal(zoo_create(g_zh, "/t8/chat/nodes", "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0),
                     ZOK);
    assert_true(acl_open(g_zh, "/t8/chat"));
    assert_int_equal(node_zk_set_auth(ZK_CRED), 0);
    inst_start(loop, &a, "/t8/chat", "a", "ws://a/ws");
    assert_true(wait_until(loop, agreed, &g1, 20));

    zhandle_t *right = handle_as(loop, ZK_CRED);
    assert_false(acl_open(right, "/t8/chat"));
    assert_false(acl_open(right, "/t8/chat/nodes"));
    assert_false(acl_open(right, "/t8/chat/election"));
    assert_true(acl_open(g_zh, "/t8"));
    assert_locked_out(g_zh, "/t8/chat");

    zookeeper_close(right);
    inst_stop(&a);
    node_zk_set_auth(NULL);
    ev_loop_destroy(loop);
}

/* (9) Nodes without the credentials, or with wrong ones, do not join a
 * protected cluster (nor see its members); the cluster goes on. */
static void test_auth_outsiders_kept_out(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    inst_t a, none, wrong;
    group_t g1 = {{&a}, 1, 1};
    (void)state;
    assert_int_equal(node_zk_set_auth("chat"), -1);
    assert_int_equal(node_zk_set_auth(":pw"), -1);
    assert_int_equal(node_zk_set_auth("chat:"), -1);
    assert_int_equal(node_zk_set_auth(ZK_CRED), 0);
    inst_start(loop, &a, "/t9", "a", "ws://a/ws");
    assert_true(wait_until(loop, agreed, &g1, 20));
    assert_int_equal(node_zk_set_auth(NULL), 0);
    inst_start(loop, &none, "/t9", "b", "ws://b/ws");
    assert_int_equal(node_zk_set_auth("chat:wrong-pw"), 0);
    inst_start(loop, &wrong, "/t9", "c", "ws://c/ws");
    wait_until(loop, never, NULL, 1.5); /* a window for them to (wrongly) join */
    assert_false(none.known);
    assert_false(wrong.known);
    assert_int_equal(none.members_calls + wrong.members_calls, 0);
    assert_false(node_zk_is_member(a.z, "b"));
    assert_false(node_zk_is_member(a.z, "c"));
    assert_true(a.is_self);
    assert_int_equal(a.nmembers, 1);

    inst_stop(&none);
    inst_stop(&wrong);
    inst_stop(&a);
    node_zk_set_auth(NULL);
    ev_loop_destroy(loop);
}

/* (10) Credentials given while ZooKeeper cannot be reached (not up yet, a
 * server of the list being restarted): the node starts all the same, adds
 * them once connected and joins with them. */
static void test_auth_before_reachable(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    node_zk_member_t self = {"a", "ws://a/ws", "127.0.0.1:7000"};
    inst_t a;
    group_t g1 = {{&a}, 1, 1};
    char nowhere[64];
    (void)state;
    memset(&a, 0, sizeof a);
    assert_int_equal(node_zk_set_auth(ZK_CRED), 0);
    snprintf(nowhere, sizeof nowhere, "127.0.0.1:%d", free_port());
    g_init_until_refused = 1;
    node_zk_t *z = node_zk_start(loop, nowhere, "/t10/chat", SESSION_MS, &self, &g_cbs, &a);
    g_init_until_refused = 0;
    assert_int_equal(zoo_state(g_last_zh), 0); /* the library's "between attempts" */
    assert_non_null(z);
    node_zk_stop(z);

    g_auth_refusals = 1;
    inst_start(loop, &a, "/t10/chat", "a", "ws://a/ws");
    assert_int_equal(g_auth_refusals, 0);
    assert_true(wait_until(loop, agreed, &g1, 20));
    assert_true(a.is_self);
    assert_locked_out(g_zh, "/t10/chat"); /* made with the credentials */
    zhandle_t *right = handle_as(loop, ZK_CRED);
    assert_false(acl_open(right, "/t10/chat/nodes"));
    zookeeper_close(right);
    inst_stop(&a);
    node_zk_set_auth(NULL);
    ev_loop_destroy(loop);
}

static int server_signal(const char *sig)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "kill -%s \"$(cat %s/zk.pid)\"", sig, g_dir);
    return system(cmd);
}

/* (6) Cut off from ZooKeeper longer than the session lasts: the node stops
 * leading (measured on the loop), and leads again once the server is back.
 * Last test: the paused server may expire the other sessions too. */
static void test_disconnected_too_long(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    inst_t a;
    group_t g1 = {{&a}, 1, 1};
    (void)state;
    inst_start(loop, &a, "/t6", "a", "ws://a/ws");
    zhandle_t *a_zh = g_last_zh;
    assert_true(wait_until(loop, agreed, &g1, 20));
    /* A blip under load could have started the node's clock already: the
     * session time is counted from the moment the server stops. */
    assert_true(wait_until(loop, state_connected, a_zh, 10));
    assert_int_equal(server_signal("STOP"), 0);
    uint64_t t0 = core_mono_ms();
    int lost = wait_until(loop, no_leader_seen, &a, 15);
    uint64_t waited = core_mono_ms() - t0;
    assert_int_equal(server_signal("CONT"), 0);
    assert_true(lost);
    assert_true(waited >= SESSION_MS); /* not before the session could have gone */
    assert_false(node_zk_is_leader(a.z));
    assert_true(wait_until(loop, is_leader_self, &a, 20));
    assert_true(node_zk_is_leader(a.z));
    inst_stop(&a);
    ev_loop_destroy(loop);
}

static void test_bad_arguments(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    node_zk_member_t self = {"a", "ws://a/ws", "127.0.0.1:7000"};
    node_zk_member_t slash = {"a/b", "", ""};
    (void)state;
    assert_null(node_zk_start(loop, "", "/chat", SESSION_MS, &self, &g_cbs, NULL));
    assert_null(node_zk_start(loop, g_hosts, "chat", SESSION_MS, &self, &g_cbs, NULL));
    assert_null(node_zk_start(loop, g_hosts, "/chat/", SESSION_MS, &self, &g_cbs, NULL));
    assert_null(node_zk_start(loop, g_hosts, "/a//b", SESSION_MS, &self, &g_cbs, NULL));
    assert_null(node_zk_start(loop, g_hosts, "/chat", 0, &self, &g_cbs, NULL));
    assert_null(node_zk_start(loop, g_hosts, "/chat", SESSION_MS, &slash, &g_cbs, NULL));
    assert_null(node_zk_start(loop, g_hosts, "/chat", SESSION_MS, &self, NULL, NULL));
    node_zk_stop(NULL);
    assert_false(node_zk_is_leader(NULL));
    assert_false(node_zk_is_member(NULL, "a"));
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_three_members_one_leader),
        cmocka_unit_test(test_leader_stops),
        cmocka_unit_test(test_middle_follower_stops),
        cmocka_unit_test(test_session_expiry),
        cmocka_unit_test(test_id_held_waits),
        cmocka_unit_test(test_auth_locks_root),
        cmocka_unit_test(test_auth_restricts_open_root),
        cmocka_unit_test(test_auth_outsiders_kept_out),
        cmocka_unit_test(test_auth_before_reachable),
        cmocka_unit_test(test_disconnected_too_long),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
