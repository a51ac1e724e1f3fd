/* The Prometheus page of a node. */
#include "node/node.h"

#include <string.h>

#ifdef CHAT_TCMALLOC
#include <gperftools/malloc_extension_c.h>
#else
#include <malloc.h>
#endif

static void counter(core_buf_t *out, const char *name, const char *help, uint64_t v)
{
    core_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                    (unsigned long long)v);
}

static void gauge(core_buf_t *out, const char *name, const char *help, double v)
{
    core_buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, v);
}

/* Items per commit tells an operator how well writes are grouped. */
static void store_metrics(node_t *n, core_buf_t *out)
{
    store_stats_t s;

    store_get_stats(n->store, &s);
    counter(out, "chat_node_store_items_total", "Store work items run (reads and writes).", s.items);
    counter(out, "chat_node_store_commits_total", "Store batch transactions committed.", s.commits);
    counter(out, "chat_node_store_commit_failures_total", "Store batches that failed to commit.",
            s.commit_failures);
    counter(out, "chat_node_store_checkpoints_total",
            "SQLite WAL checkpoints run (by its checkpoint thread, or by the writer when far behind).",
            s.checkpoints);
}

/* The allocator's own count of live bytes: a leak shows here before RSS moves,
 * and a build whose allocator did not take over malloc shows ~0. A
 * sanitizer's allocator has no such count here: none is given. */
static void heap_metrics(core_buf_t *out)
{
    core_buf_printf(out, "# HELP chat_node_allocator_info The malloc this node runs on.\n"
                         "# TYPE chat_node_allocator_info gauge\n"
                         "chat_node_allocator_info{name=\"%s\"} 1\n", CHAT_MALLOC_NAME);
    if (strcmp(CHAT_MALLOC_NAME, "sanitizer") == 0)
        return;
#ifdef CHAT_TCMALLOC
    size_t live = 0;
    if (!MallocExtension_GetNumericProperty("generic.current_allocated_bytes", &live))
        live = 0;
#else
    struct mallinfo2 mi = mallinfo2();
    size_t live = mi.uordblks + mi.hblkhd;
#endif
    gauge(out, "chat_node_heap_live_bytes", "Bytes the allocator has handed out and not got back.",
          (double)live);
}

void node_metrics_render(node_t *n, core_buf_t *out)
{
    const node_metrics_t *m = &n->metrics;
    gauge(out, "chat_node_connections", "Open WebSocket connections.", (double)n->conns);
    gauge(out, "chat_node_sessions", "Logged-in sessions on this node.",
          (double)n->sessions.count);
    gauge(out, "chat_node_store_backlog", "Store jobs queued or running.",
          (double)store_backlog(n->store));
    gauge(out, "chat_node_redis_connected", "1 when Redis is connected.",
          core_redis_connected(n->redis) ? 1.0 : 0.0);
    gauge(out, "chat_node_uptime_seconds", "Seconds since start.",
          (double)(core_now_ms() - n->started_ms) / 1000.0);
    gauge(out, "chat_node_leader", "1 while this node is the cluster leader.",
          node_cluster_is_leader(n) ? 1.0 : 0.0);
    gauge(out, "chat_node_leader_linked", "1 while a follower's link to the leader is up (leaders: 1).",
          node_cluster_linked(n) ? 1.0 : 0.0);
    gauge(out, "chat_node_cluster_epoch", "The leader epoch this node follows.",
          (double)node_cluster_epoch(n));
    counter(out, "chat_node_connections_total", "WebSocket connections accepted.", m->connections_total);
    counter(out, "chat_node_requests_total", "Client requests received.", m->requests_total);
    counter(out, "chat_node_errors_total", "Requests answered with an error.", m->errors_total);
    counter(out, "chat_node_rate_limited_total", "Requests refused with 429.", m->rate_limited_total);
    counter(out, "chat_node_messages_total", "chat, group_chat and room_chat accepted.", m->messages_total);
    counter(out, "chat_node_deliveries_total", "Event frames queued to local sessions.", m->deliveries_total);
    counter(out, "chat_node_logins_total", "Successful logins.", m->logins_total);
    counter(out, "chat_node_login_failures_total", "Refused logins.", m->login_failures_total);
    core_buf_printf(out, "# HELP chat_node_link_ups_total Cluster links that came up, by the AEAD"
                         " that seals them.\n# TYPE chat_node_link_ups_total counter\n");
    for (int a = PROTO_CF_AEADS - 1; a >= 0; a--)
        core_buf_printf(out, "chat_node_link_ups_total{aead=\"%s\"} %llu\n",
                        proto_cf_aead_name((proto_cf_aead_t)a),
                        (unsigned long long)m->link_ups_total[a]);
    counter(out, "chat_node_store_handed_total", "chat and ack writes handed to the leader.",
            m->store_handed_total);
    counter(out, "chat_node_store_served_total", "chat and ack writes committed for a follower.",
            m->store_served_total);
    counter(out, "chat_node_reroutes_total", "Events for a user not here (a cached guess), located again.",
            m->reroutes_total);
    counter(out, "chat_node_locates_total",
            "Events for a user not here and not cached, sent after a Redis look-up.", m->locates_total);
    counter(out, "chat_node_loc_refreshes_total",
            "Location cache entries renewed from Redis while in use.", m->loc_refreshes_total);
    counter(out, "chat_node_rsync_skipped_total",
            "Leader: follower re-links whose room-table share was already held (not re-sent).",
            m->rsync_skipped_total);
    counter(out, "chat_node_bcast_dropped_total",
            "Broadcasts (to everyone or a big room) dropped: --bcast-queue-max bytes were still going out.",
            m->bcast_dropped_total);
    counter(out, "chat_node_room_slices_total",
            "Room fan-outs sent in slices (more local members than --fanout-slice).",
            m->room_slices_total);
    counter(out, "chat_node_conns_refused_total",
            "WebSocket connections closed for being over the per-address cap.", m->conns_refused_total);
    counter(out, "chat_node_conns_refused_at_accept_total",
            "Connections closed at accept (the node full: --max-conns and its room for plain HTTP; or an address far over its cap), and WebSocket upgrades refused with 503 past --max-conns.",
            n->http ? (uint64_t)core_http_server_refused(n->http) : 0);
    counter(out, "chat_node_login_timeouts_total",
            "Connections closed for not logging in within --login-timeout.", m->login_timeouts_total);
    counter(out, "chat_node_login_throttled_total",
            "Logins answered 429 after too many failures for the user or address.",
            m->login_throttled_total);
    store_metrics(n, out);
    heap_metrics(out);
}
