/* chat-node: start-up, timers and shutdown. */
#include <stdio.h>
#include <string.h>
#include <sodium.h>

#include "node/node.h"

#define HEARTBEAT_SEC 1.0

static void on_heartbeat(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    node_presence_heartbeat(w->data);
}

static void on_hot_reset(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    node_t *n = w->data;
    if (node_cluster_is_leader(n))
        core_redis_cmd(n->redis, NULL, NULL, "DEL chat:hot");
}

/* Re-publish what Redis must know after every (re)connect. */
static void on_redis_connect(core_redis_t *r, void *ud)
{
    (void)r;
    node_t *n = ud;
    int again = n->redis_seen;
    if (!n->redis_seen) {
        /* a previous run of this node id may have died with sessions listed;
         * this run's own are re-published below, after the clean-up */
        n->redis_seen = 1;
        node_presence_clean_node(n, n->cfg.id, n->boot);
    }
    n->entry_seen = 0; /* a fresh Redis has no entry: that is no clean-up */
    n->republish_owed = 0; /* published now or after the entry's answer */
    n->reconnect_check = again;
    node_presence_heartbeat(n);
    if (!again)
        node_presence_republish(n, NODE_REPUBLISH_FIRST);
}

typedef struct world_job {
    node_job_t job;
} world_job_t;

static void world_work(store_t *st, void *arg)
{
    world_job_t *j = arg;
    j->job.rc = store_room_create(st, "world", "world", "", core_now_ms());
}

static void world_done(void *arg)
{
    world_job_t *j = arg;
    if (j->job.rc == STORE_OK || j->job.rc == STORE_EXISTS)
        node_rooms_remember(j->job.node, "world");
    else
        CORE_ERROR("could not create the room 'world'");
    free(j);
}

static int open_backends(node_t *n, char *err, size_t errlen)
{
    char host[128];
    int port = 0;
    n->store = store_open(n->cfg.store_uri, err, errlen);
    if (!n->store)
        return -1;
    if (n->cfg.writer_leader < 0) /* one writer per SQLite file; MongoDB takes writes from all */
        n->cfg.writer_leader = strcmp(store_backend_name(n->store), "sqlite") == 0;
    if (n->cfg.durability >= 0 &&
        store_set_durability(n->store, (store_durability_t)n->cfg.durability) != STORE_OK) {
        snprintf(err, errlen, "--durability: not for the %s store (MongoDB: set the write "
                 "concern in the URI)", store_backend_name(n->store));
        return -1;
    }
    store_set_linger(n->store, n->cfg.commit_linger_us);
    if (store_start(n->store, n->loop) != 0)
        return -1;
    if (core_parse_hostport(n->cfg.redis, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "bad --redis '%s'", n->cfg.redis);
        return -1;
    }
    n->redis = core_redis_new(n->loop, host[0] ? host : "127.0.0.1", port, n->cfg.redis_timeout);
    core_redis_set_auth(n->redis, n->cfg.redis_user, n->cfg.redis_password);
    core_redis_on_connect(n->redis, on_redis_connect, n);
    node_push_start(n, host[0] ? host : "127.0.0.1", port);
    node_zk_set_auth(n->cfg.zk_auth); /* checked by the config: USER:PASSWORD */
    n->auth = node_auth_new(n->loop, n->cfg.auth_threads, n->cfg.pwhash_ops, n->cfg.pwhash_mem);
    n->filter = node_filter_load(n->cfg.dirty_words, err, errlen);
    return n->auth && n->filter ? 0 : -1;
}

static void start_timers(node_t *n)
{
    ev_timer_init(&n->heartbeat, on_heartbeat, HEARTBEAT_SEC, HEARTBEAT_SEC);
    n->heartbeat.data = n;
    ev_timer_start(n->loop, &n->heartbeat);
    ev_timer_init(&n->hot_reset, on_hot_reset, n->cfg.hot_reset, n->cfg.hot_reset);
    n->hot_reset.data = n;
    ev_timer_start(n->loop, &n->hot_reset);
}

static void shutdown_node(node_t *n)
{
    ev_timer_stop(n->loop, &n->heartbeat);
    ev_timer_stop(n->loop, &n->hot_reset);
    if (n->http)
        node_server_stop(n);
    node_cluster_stop(n);
    if (n->redis)
        core_redis_cmd(n->redis, NULL, NULL, "HDEL chat:nodes %s", n->cfg.id);
    if (n->redis_push)
        node_push_stop(n);
    node_auth_free(n->auth);
    if (n->store)
        store_close(n->store);
    n->store = NULL; /* jobs submitted from here on (Redis callbacks) fail at once */
    core_redis_free(n->redis);
    node_filter_free(n->filter);
    node_rooms_free_all(n);
    node_route_bcast_free(n);
    core_strtab_free(&n->sessions); /* the slots: sessions end with their connections */
    node_presence_cache_free(n);
    node_guard_stop(n);
    sodium_memzero(n->cfg.redis_password, sizeof n->cfg.redis_password);
    sodium_memzero(n->cfg.zk_auth, sizeof n->cfg.zk_auth);
    node_zk_set_auth(NULL);
}

int main(int argc, char **argv)
{
    static node_t node;
    node_t *n = &node;
    core_strtab_init(&n->sessions, offsetof(node_sess_t, user));
    char err[256] = "";
    node_config_defaults(&n->cfg);
    int rc = node_config_parse(&n->cfg, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    core_log_set_level((core_log_level_t)core_log_parse_level(n->cfg.log_level));
    core_log_set_tag(n->cfg.id);
    n->loop = EV_DEFAULT;
    n->started_ms = core_now_ms();
    /* conn ids differ across restarts, so a stale global session never names a new one */
    n->next_conn_id = NODE_BOOT(n->started_ms);
    snprintf(n->boot, sizeof n->boot, "%llu", (unsigned long long)n->next_conn_id);
    proto_msgid_init(&n->msgids, n->cfg.num);
    core_install_signals(n->loop);
    node_guard_start(n);
    if (open_backends(n, err, sizeof err) != 0 || node_cluster_start(n, err, sizeof err) != 0 ||
        node_server_start(n, err, sizeof err) != 0) {
        CORE_ERROR("cannot start: %s", err);
        shutdown_node(n);
        return 1;
    }
    world_job_t *wj = core_xcalloc(1, sizeof *wj);
    node_job_submit(n, &wj->job, world_work, world_done);
    start_timers(n);
    CORE_INFO("chat-node %s serving %s (store %s, redis %s)", n->cfg.id, n->cfg.public_url,
              store_backend_name(n->store), n->cfg.redis);
    ev_run(n->loop, 0);
    CORE_INFO("shutting down");
    shutdown_node(n);
    return 0;
}
