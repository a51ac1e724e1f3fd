/* node: the chat server (chat-node).
 *
 * Files and their jobs:
 *   main.c      flags, start-up and shutdown
 *   server.c    client endpoint: HTTP routes, WebSocket sessions, rate
 *               limit, reply ordering, the local session table
 *   dispatch.c  the action table and the login gate
 *   act_*.c     one file per area of PROTOCOL.md section 2
 *   route.c     where an event for a user / room / group goes (local
 *               sessions today; the cluster link plugs in here)
 *   presence.c  global sessions in Redis, online lookups, presence events
 *   rooms.c     live room membership
 *   filter.c    dirty-word masking and hot-word counting
 *   auth.c      password hashing off the loop, resume tokens
 *   metrics.c   counters and the Prometheus page
 *   zk.c        ZooKeeper membership and leader election
 *   cluster.c   the cluster link (leader <-> followers) and cross-node routing
 *
 * Everything runs on the loop thread except the work functions handed to
 * store_submit (store thread) and the hashing in auth.c (its pool).
 */
#ifndef CHAT_NODE_H
#define CHAT_NODE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <ev.h>
#include <cjson/cJSON.h>
#include <uthash.h>

#include "core/core.h"
#include "proto/proto.h"
#include "store/store.h"

typedef struct node node_t;
typedef struct node_sess node_sess_t;
typedef struct node_req node_req_t;

/* ------------------------------------------------------------------ config */

typedef struct node_config {
    char id[64];                /* node id, unique in the cluster */
    uint16_t num;               /* node number in msgids */
    char listen[128];           /* client endpoint host:port */
    char public_url[192];       /* ws[s]://host:port/ws advertised to clients */
    char redis[128];            /* host:port */
    char store_uri[512];
    int durability;             /* --durability as a store_durability_t, -1 = backend default */
    unsigned commit_linger_us;  /* store batches wait this long for more items */
    int writer_leader;          /* --store-writer: 1 leader, 0 self, -1 = leader on SQLite */
    unsigned loc_cache_ms;      /* --location-cache-ms: user -> node cache lifetime, 0 = off */
    unsigned fanout_slice;      /* --fanout-slice: sessions a broadcast reaches per loop turn */
    size_t bcast_queue_max;     /* --bcast-queue-max: bytes of broadcasts waiting here */
    char dirty_words[512];      /* word-list file, "" for none */
    char log_level[16];
    double rate;                /* requests/s per connection */
    double burst;
    double ping_interval;       /* seconds */
    int idle_pings;
    double hot_reset;           /* seconds between hot-word resets */
    double redis_timeout;
    unsigned long pwhash_ops;   /* argon2id cost */
    size_t pwhash_mem;
    int auth_threads;
    double token_ttl;           /* seconds */
    size_t max_out;             /* per-connection output cap */
    size_t pending_max;         /* pending items streamed per login */
    char zk[256];               /* ZooKeeper host:port[,...], "" = standalone */
    char zk_root[64];           /* znode prefix, default /chat */
    int zk_timeout_ms;          /* ZooKeeper session timeout */
    char cluster_listen[128];   /* cluster link host:port */
    char cluster_secret_file[512];
    unsigned max_conns_per_ip;  /* WebSocket connections per source address, 0 = no cap */
    unsigned max_conns;         /* connections in all, 0 = the fd limit less a reserve */
    char limit_exempt[256];     /* addresses/prefixes the per-address limits skip */
    double login_timeout;       /* seconds a connection may stay logged out, 0 = no limit */
    unsigned login_fails_user;  /* failed logins per user per window before 429, 0 = off */
    unsigned login_fails_ip;    /* the same per source address */
    double login_fails_window;  /* seconds */
    /* credentials: read from files or the environment, never from argv */
    char redis_user[64];        /* --redis-user: ACL user, "" = default user */
    char redis_password_file[512];
    char redis_password[256];   /* loaded: file, else $CHAT_REDIS_PASSWORD; "" = no AUTH */
    char zk_auth_file[512];
    char zk_auth[256];          /* loaded "user:password": file, else $CHAT_ZK_AUTH */
    char tls_cert[512];         /* --tls-cert: PEM chain; with tls_key, wss + https only */
    char tls_key[512];
} node_config_t;

void node_config_defaults(node_config_t *c);
/* Parses argv into c; prints usage and returns 1 for --help, -1 on errors. */
int node_config_parse(node_config_t *c, int argc, char **argv);

/* ------------------------------------------------------------------ sessions */

/* One request waiting for its turn to answer: responses leave in request
 * order, so each request takes a slot and answers fill slots. */
typedef struct node_slot {
    struct node_slot *next;
    int ready;
    core_buf_t frames;          /* the response, plus any frames that must follow it */
} node_slot_t;

struct node_sess {
    /* one per connection, tens of thousands per node: laid out without
     * padding (8-byte fields, then 4-byte ones, then bytes and names) */
    node_t *node;
    core_ws_t *ws;              /* NULL once the connection has gone */
    uint64_t conn_id;           /* unique on this node; stale async results check it */
    double tokens;              /* rate-limit bucket */
    uint64_t tokens_ms;
    node_slot_t *slot_head, *slot_tail;
    struct node_queued *queue_head, *queue_tail; /* requests waiting for their turn */
    struct node_room_link *rooms; /* live rooms joined (rooms.c) */
    struct node_addr *addr;     /* its source address (guard.c) */
    struct node_sess *next, *prev; /* node->sess_first (utlist DL): bound, newest first */
    int refs;                   /* the connection + every async op in flight */
    unsigned queued;            /* length of that queue */
    unsigned running_msg;       /* chats and acks started and not answered */
    unsigned running_other;     /* any other request started and not answered */
    uint8_t logged_in;
    uint8_t kicked;             /* ended by a login elsewhere: no presence, no cleanup */
    uint8_t closing;            /* logout answered: close after the reply */
    uint8_t parked_sent;        /* login sent pushes parked in Redis: acks must drop them there */
    uint8_t pumping;            /* starting queued requests (no re-entry) */
    char user[PROTO_NAME_MAX + 1]; /* nothing else of the account: 160 bytes in all */
};

node_sess_t *node_sess_ref(node_sess_t *s);
void node_sess_unref(node_sess_t *s);
/* 1 when the session still has its connection and is logged in as user. */
int node_sess_live(const node_sess_t *s);
/* Sends an event frame now (not ordered against pending replies). */
void node_sess_send(node_sess_t *s, const char *frame, size_t len);
void node_sess_close(node_sess_t *s, int code, const char *reason);
node_sess_t *node_sess_find(node_t *n, const char *user);
/* Binds s to user in the local table (the caller kicked any older one). */
void node_sess_bind(node_sess_t *s, const char *user);

/* ------------------------------------------------------------------ requests */

/* A request being served: the reply slot, a copy of the id, the session. */
struct node_req {
    node_sess_t *sess;          /* holds a ref */
    node_slot_t *slot;
    cJSON *id;                  /* duplicated from the frame; may be NULL */
    char action[32];
    int lane;                   /* NODE_LANE_* once started, 0 before */
};

/* Requests take effect in request order: one runs at a time, except that
 * consecutive chats overlap (each is one store job queued in order, then
 * routed in order), so pipelined chats keep their throughput. */
enum { NODE_LANE_NONE = 0, NODE_LANE_MSG = 1 /* message traffic: chat, ack */, NODE_LANE_OTHER = 2 };

/* Takes a slot for the request (called by dispatch). */
node_req_t *node_req_new(node_sess_t *s, const proto_req_t *pr);
/* Answer and free the request. data is consumed. */
void node_req_ok(node_req_t *r, cJSON *data);
void node_req_fail(node_req_t *r, int code, const char *text);
/* An error with a data object (consumed). */
void node_req_fail_data(node_req_t *r, int code, const char *text, cJSON *data);
void node_req_fail_e(node_req_t *r, const proto_err_t *e);
/* Frames to send right after the response (e.g. pending items after login). */
void node_req_follow(node_req_t *r, const char *frame, size_t len);

typedef void (*node_action_fn)(node_req_t *r, const cJSON *data);

/* dispatch.c */
void node_dispatch(node_sess_t *s, const char *msg, size_t len);
/* A started request of lane was answered: start what waited behind it. */
void node_dispatch_done(node_sess_t *s, int lane);
/* The connection is gone: answer what still waits (it never runs). */
void node_dispatch_drop_queue(node_sess_t *s);

/* act_*.c: one handler per action */
void node_act_register(node_req_t *r, const cJSON *data);
void node_act_login(node_req_t *r, const cJSON *data);
void node_act_logout(node_req_t *r, const cJSON *data);
void node_act_user_info(node_req_t *r, const cJSON *data);
void node_act_ping(node_req_t *r, const cJSON *data);
void node_act_chat(node_req_t *r, const cJSON *data);
void node_act_ack(node_req_t *r, const cJSON *data);
void node_act_history(node_req_t *r, const cJSON *data);
void node_act_friend_request(node_req_t *r, const cJSON *data);
void node_act_friend_reply(node_req_t *r, const cJSON *data);
void node_act_friends(node_req_t *r, const cJSON *data);
void node_act_group_create(node_req_t *r, const cJSON *data);
void node_act_group_join(node_req_t *r, const cJSON *data);
void node_act_group_leave(node_req_t *r, const cJSON *data);
void node_act_groups(node_req_t *r, const cJSON *data);
void node_act_group_members(node_req_t *r, const cJSON *data);
void node_act_group_chat(node_req_t *r, const cJSON *data);
void node_act_room_create(node_req_t *r, const cJSON *data);
void node_act_room_join(node_req_t *r, const cJSON *data);
void node_act_room_leave(node_req_t *r, const cJSON *data);
void node_act_rooms(node_req_t *r, const cJSON *data);
void node_act_room_members(node_req_t *r, const cJSON *data);
void node_act_room_chat(node_req_t *r, const cJSON *data);
void node_act_popular(node_req_t *r, const cJSON *data);
/* At the leader: a store op a follower handed over (call m, "op" s.chat or
 * s.ack). 0 when it is one (answered with node_cluster_store_reply once
 * committed, or at once when malformed), -1 when m is some other call. */
int node_direct_serve(node_t *n, const char *origin, uint64_t id, const cJSON *m);
/* The same for s.token {user, digest, expires}: a follower's login token. */
int node_account_serve(node_t *n, const char *origin, uint64_t id, const cJSON *m);

/* history {room}: the room's recent messages from Redis (act_rooms.c). */
void node_act_room_history(node_req_t *r, const char *room, const char *before, int limit);

/* Session end (disconnect or logout): leave rooms, global session, presence. */
void node_account_session_end(node_sess_t *s);
/* Streams s's pending items again, as login does (after Redis was back:
 * messages sent meanwhile found the user offline and are pending). */
void node_account_redeliver_pending(node_sess_t *s);

/* ------------------------------------------------------------------ async store helper */

/* A store job: work runs on the store thread, then done on the loop with
 * the request (if any) still owned by the job. The job struct is the
 * caller's, with node_job_t as its first member. */
typedef struct node_job {
    node_t *node;
    node_req_t *req;            /* may be NULL */
    int rc;                     /* set by work; STORE_ERR if the item was rolled back */
    core_task_fn done;          /* the submitter's, run once the item's fate is known */
} node_job_t;

void node_job_submit(node_t *n, node_job_t *job, store_work_fn work, core_task_fn done);
/* For a write no answer waits on (store_submit_lazy: it may ride on the
 * next commit someone waits for). */
void node_job_submit_lazy(node_t *n, node_job_t *job, store_work_fn work, core_task_fn done);
/* For work that only reads (store_submit_read: no write lock, no fsync). */
void node_job_submit_read(node_t *n, node_job_t *job, store_work_fn work, core_task_fn done);
/* Store thread: the msgid of a new message of conv, above every id conv
 * already holds. The store serialises writers (SQLite's write lock; a
 * message is committed before its sender hears back), so a message sent
 * after another one's answer, from any node, sorts after it. */
int node_job_conv_msgid(node_t *n, store_t *st, const char *conv, uint64_t ts,
                        char out[PROTO_MSGID_LEN + 1]);

/* ------------------------------------------------------------------ routing */

/* Delivers an event frame to user wherever its session is. cb (may be
 * NULL) learns whether it was handed to a live session (local or remote). */
typedef void (*node_route_cb)(node_t *n, int delivered, void *ud);
void node_route_user(node_t *n, const char *user, const char *frame, size_t len,
                     node_route_cb cb, void *ud);
/* The same, located in Redis whatever the cache says: a cached guess of
 * another node that missed here. */
void node_route_user_located(node_t *n, const char *user, const char *frame, size_t len);
/* Every user of the list but `except`, one copy per node. */
void node_route_users(node_t *n, const char *const *users, size_t count, const char *except,
                      const char *frame, size_t len);
/* Hands frame to user's live session on this node (0 when there is none);
 * a friend event's pending item is settled once handed over. */
int node_route_local(node_t *n, const char *user, const char *frame, size_t len);
/* Every live member of room except `except` (may be NULL). */
void node_route_room(node_t *n, const char *room, const char *except, const char *frame,
                     size_t len);
/* The same, on this node only (what the cluster hands over). */
void node_route_room_local(node_t *n, const char *room, const char *except, const char *frame,
                           size_t len);
/* Every live session on this node, cfg.fanout_slice per loop turn (route.c);
 * a room with more local members than that goes the same way. */
void node_route_all_local(node_t *n, const char *frame, size_t len);
/* Puts s (bound to its user, not in the table) in the session table. */
void node_route_sess_add(node_t *n, node_sess_t *s);
/* Takes s out of the session table (the only way out): a broadcast under
 * way moves past it. */
void node_route_sess_remove(node_t *n, node_sess_t *s);
void node_route_bcast_free(node_t *n);
/* Every logged-in user on every node. */
void node_route_all(node_t *n, const char *frame, size_t len);
/* Ends the older session of user on this node with the kicked event; keep
 * is the session that stays (other nodes: node_cluster_kick). */
void node_route_kick(node_t *n, const char *user, node_sess_t *keep);
void node_route_kick_session(node_t *n, node_sess_t *s);

/* ------------------------------------------------------------------ presence (Redis) */

/* Global session value: "<node id> <conn id>". A run of a node is named by
 * its boot, (start time in ms) << 12: every conn id of the run is larger,
 * and smaller than the boot of any later run (4096 connections per ms). */
#define NODE_BOOT(started_ms) ((uint64_t)(started_ms) << 12)
/* cb gets the session value this one replaced (NULL when none). */
typedef void (*node_login_cb)(node_t *n, const char *user, const char *old, void *ud);
void node_presence_login(node_t *n, node_sess_t *s, node_login_cb cb, void *ud);
/* Ends the global session if it is still this one; friends then hear
 * "offline". */
void node_presence_logout(node_t *n, node_sess_t *s);
/* A session kicked by a login elsewhere: off this node's list if it moved. */
void node_presence_unlist(node_t *n, const node_sess_t *s);
/* Deletes the global sessions of node id's run `boot` and of its earlier
 * runs (a dead node, or this node's previous run), and its node-list entry;
 * a later run's sessions and entry stay (a node restarted under the same id
 * publishes before the leader hears that its old run left). boot NULL: the
 * runs that did not say theirs. */
void node_presence_clean_node(node_t *n, const char *id, const char *boot);
/* Where each user's live session is: online only when its node is a live
 * cluster member (nodes die without cleaning up). locs NULL on Redis failure. */
typedef struct node_loc {
    int online;
    char node[64];
} node_loc_t;
typedef void (*node_locate_cb)(node_t *n, const node_loc_t *locs, size_t count, void *ud);
void node_presence_locate(node_t *n, const char *const *users, size_t count, node_locate_cb cb,
                          void *ud);
/* A short-lived cache of where remote users were found (user -> node),
 * so that a busy conversation is not one Redis round trip per message. An
 * entry lives cfg.loc_cache_ms; a node handed an event for a user it no
 * longer has re-routes it through Redis (dlv "r", cluster.c), so a stale
 * entry costs a hop, never the delivery. Only "online elsewhere" is kept. */
/* The cached node of user, or NULL. */
const char *node_presence_cached(node_t *n, const char *user);
void node_presence_cache_put(node_t *n, const char *user, const char *node_id);
/* +1 when a Redis look-up of user starts, -1 when it answers: while one is
 * in flight the cache is not used for that user (events stay in order). */
void node_presence_cache_locating(node_t *n, const char *user, int delta);
void node_presence_cache_drop(node_t *n, const char *user);
void node_presence_cache_free(node_t *n);
/* online[i] for each user; cb gets NULL on Redis failure. */
typedef void (*node_online_cb)(node_t *n, const int *online, size_t count, void *ud);
void node_presence_online(node_t *n, const char *const *users, size_t count, node_online_cb cb,
                          void *ud);
/* The same for every name of a store list (act_friends.c). */
void node_names_online(node_t *n, const store_names_t *names, node_online_cb cb, void *ud);
/* Tells the user's online friends (presence event). */
void node_presence_notify_friends(node_t *n, const char *user, int online);
/* The same with the friends already read (e.g. in a login's store trip). */
void node_presence_tell_friends(node_t *n, const char *user, int online,
                                const store_names_t *friends);
/* Node heartbeat in Redis (node list with load) - see docs/CLUSTER.md.
 * An entry found gone means this node was taken for dead (a stall past its
 * ZooKeeper session) and its sessions ended: once it is registered again
 * it publishes them anew (node_presence_republish). */
void node_presence_heartbeat(node_t *n);
/* Publishes every live session of this node (again): at the first Redis
 * connect; after a reconnect (what went pending meanwhile is pushed), but
 * only the pushes when Redis kept this node's entry and no session write
 * failed (KEPT); after this node was taken for dead (also: friends heard
 * "offline" and now hear "online"). */
typedef enum {
    NODE_REPUBLISH_FIRST,
    NODE_REPUBLISH_REDIS_BACK,
    NODE_REPUBLISH_REDIS_KEPT,
    NODE_REPUBLISH_FORGOTTEN,
} node_republish_why_t;
void node_presence_republish(node_t *n, node_republish_why_t why);

/* ------------------------------------------------------------------ rooms (live) */

/* One session in one room: on the session's list and in the room's array,
 * where it knows its place, so leaving costs no search of the room. */
typedef struct node_room_link {
    struct node_room_link *next; /* the session's next room */
    node_sess_t *sess;
    struct node_room_entry *entry;
    size_t idx; /* in entry->members */
} node_room_link_t;

const char *node_rooms_link_name(const node_room_link_t *l);
int node_rooms_join(node_t *n, const char *room, node_sess_t *s);    /* 0 / 409 */
int node_rooms_leave(node_t *n, const char *room, node_sess_t *s);   /* 0 / 404 */
/* Leaves here only: the leader is not told (a join it never took). */
int node_rooms_leave_local(node_t *n, const char *room, node_sess_t *s);
void node_rooms_leave_all(node_t *n, node_sess_t *s);
int node_rooms_is_member(node_t *n, const char *room, const node_sess_t *s);
size_t node_rooms_count(node_t *n, const char *room);
/* Member user names (borrowed pointers, valid until the loop runs again). */
size_t node_rooms_members(node_t *n, const char *room, const char **out, size_t max);
/* Calls fn for each live member session of room. */
void node_rooms_each(node_t *n, const char *room, void (*fn)(node_sess_t *, void *), void *ud);
/* The member sessions of room, each referenced (node_sess_unref each and
 * free the array); NULL with *count 0 when none is here. */
node_sess_t **node_rooms_snapshot(node_t *n, const char *room, size_t *count);
/* Room names known to exist (cache of the store). */
int node_rooms_known(node_t *n, const char *room);
void node_rooms_remember(node_t *n, const char *room);
void node_rooms_free_all(node_t *n);

/* ------------------------------------------------------------------ filter */

typedef struct node_filter node_filter_t;
/* Loads a word list (one word per line, '#' comments). NULL path = empty. */
node_filter_t *node_filter_load(const char *path, char *err, size_t errlen);
void node_filter_free(node_filter_t *f);
size_t node_filter_size(const node_filter_t *f);
/* Returns a malloc'd copy of text with every dirty word replaced by one '*'
 * per character, case-insensitively. */
char *node_filter_mask(const node_filter_t *f, const char *text);
/* Calls fn for each countable word of text (lowercased, 2..32 bytes). */
void node_filter_words(const char *text, void (*fn)(const char *word, size_t len, void *ud),
                       void *ud);

/* ------------------------------------------------------------------ auth */

typedef struct node_auth node_auth_t;
node_auth_t *node_auth_new(struct ev_loop *loop, int threads, unsigned long ops, size_t mem);
void node_auth_free(node_auth_t *a);
/* Hash (password -> hash) or verify (password, hash -> ok) off the loop. */
typedef void (*node_auth_cb)(int ok, const char *hash, void *ud);
void node_auth_hash(node_auth_t *a, const char *password, node_auth_cb cb, void *ud);
void node_auth_verify(node_auth_t *a, const char *password, const char *hash, node_auth_cb cb,
                      void *ud);
/* A fresh random token (hex) and the digest stored for it. */
void node_auth_token_new(char token[PROTO_TOKEN_LEN + 1], char digest[65]);
void node_auth_token_digest(const char *token, char digest[65]);


/* ------------------------------------------------------------------ ZooKeeper (zk.c) */

/* Layout under root (default /chat; docs/CLUSTER.md):
 *   <root>/nodes/<id>                 ephemeral, data = JSON {"id","url","cluster"}
 *   <root>/election/n_<session>_<seq> ephemeral sequential, data = node id
 * The lowest sequence leads; every other node watches only its predecessor.
 * The epoch is the leader's sequence number: it only grows. All callbacks
 * run on the loop thread (the ZooKeeper library's threads hand back through
 * ev_async). */
typedef struct node_zk node_zk_t;

typedef struct node_zk_member {
    char id[64];
    char url[192];              /* client WebSocket URL */
    char cluster[128];          /* cluster link host:port */
    char boot[24];              /* the run: NODE_BOOT, decimal ("" = not said) */
} node_zk_member_t;

typedef struct node_zk_cbs {
    /* A leader is known: its id, cluster address, epoch; is_self when it is
     * this node. Called again whenever any of those change. */
    void (*on_leader)(void *ud, const char *id, const char *cluster, int64_t epoch, int is_self);
    /* No leader is known any more (session lost, or the leader's znode went
     * and the next one is not yet known). A leader stops leading at once. */
    void (*on_no_leader)(void *ud);
    /* The member list changed (members borrowed for the call). */
    void (*on_members)(void *ud, const node_zk_member_t *members, size_t count);
} node_zk_cbs_t;

/* Connects and keeps registering/electing until node_zk_stop (re-joins by
 * itself after session expiry). NULL on bad arguments. */
node_zk_t *node_zk_start(struct ev_loop *loop, const char *hosts, const char *root,
                         int session_timeout_ms, const node_zk_member_t *self,
                         const node_zk_cbs_t *cbs, void *ud);
/* Closes the session (the ephemeral znodes go at once) and frees. */
void node_zk_stop(node_zk_t *z);
/* Digest credentials "user:password" for the sessions node_zk_start opens
 * from now on (process-wide; NULL or "" = none: znodes open to anyone).
 * With them every znode is created readable and writable only by that
 * identity. -1 when not USER:PASSWORD. Copied; never logged. */
int node_zk_set_auth(const char *user_password);
/* 1 when id is currently a registered member (last known list). */
int node_zk_is_member(const node_zk_t *z, const char *id);
/* 1 while this node holds the leadership. */
int node_zk_is_leader(const node_zk_t *z);
/* 1 while connected with this node's election znode in place (0 from a
 * session's expiry until it has joined again). */
int node_zk_joined(const node_zk_t *z);


/* ------------------------------------------------------------------ cluster (cluster.c, croom.c) */

/* Without --zk the node is a standalone cluster of one and its own leader.
 * With it, followers keep one authenticated link to the leader; everything
 * that crosses nodes goes follower -> leader -> node (docs/CLUSTER.md). */
int node_cluster_start(node_t *n, char *err, size_t errlen);
void node_cluster_stop(node_t *n);
int node_cluster_is_leader(const node_t *n);
/* 1 when cross-node traffic can flow now (leader, or follower linked). */
int node_cluster_linked(const node_t *n);
int64_t node_cluster_epoch(const node_t *n);
/* 1 when id names a live member (this node always is). */
int node_cluster_is_member(const node_t *n, const char *id);
/* 1 when this node is registered in ZooKeeper now (always without --zk). */
int node_cluster_joined(const node_t *n);
/* Hands frame to users who are on node node_id (another node). reroute:
 * the node was a cached guess; if a user is not there, that node locates
 * the user in Redis and sends it on. */
void node_cluster_deliver(node_t *n, const char *node_id, const char *const *users, size_t count,
                          const char *frame, size_t len, int reroute);
/* Ends user's session conn on node node_id (login elsewhere). */
void node_cluster_kick(node_t *n, const char *node_id, const char *user, uint64_t conn);
/* The room's members on other nodes (one copy per node). */
void node_cluster_room(node_t *n, const char *room, const char *except, const char *frame,
                       size_t len);
/* Every other node. */
void node_cluster_all(node_t *n, const char *frame, size_t len);

/* Live room membership is owned by the leader. code is 0 or a PROTO_* error
 * (PROTO_UNAVAILABLE when the leader cannot be reached); data is borrowed. */
typedef void (*node_cluster_cb)(node_t *n, int code, const cJSON *data, void *ud);
/* data {members}: the room's member count after the join. */
void node_cluster_room_join(node_t *n, const char *room, const char *user, node_cluster_cb cb,
                            void *ud);
void node_cluster_room_leave(node_t *n, const char *room, const char *user);
/* data {members:[user..]}. */
void node_cluster_room_members(node_t *n, const char *room, node_cluster_cb cb, void *ud);
/* data {counts:[n..]} in the order of rooms. */
void node_cluster_room_counts(node_t *n, const char *const *rooms, size_t count,
                              node_cluster_cb cb, void *ud);

/* One writer per store file: a follower hands its chat, ack and token writes to
 * the leader (node_cluster_store_call); the leader runs them on its store
 * thread and answers with node_cluster_store_reply. 1 when this node should
 * do so now (a linked follower on a store that wants one writer). */
int node_cluster_store_at_leader(const node_t *n);
/* m (consumed) carries "op"; cb gets code 0 and the leader's data, a
 * PROTO_* code, or PROTO_UNAVAILABLE when no answer came. */
void node_cluster_store_call(node_t *n, cJSON *m, node_cluster_cb cb, void *ud);
/* The leader's answer to call id from origin; data consumed (may be NULL). */
void node_cluster_store_reply(node_t *n, const char *origin, uint64_t id, int code, cJSON *data);

/* croom.c: the leader's table of live room membership, room -> user -> node. */
typedef struct node_croom node_croom_t;
node_croom_t *node_croom_new(void);
void node_croom_free(node_croom_t *t);
/* 0, or PROTO_CONFLICT when user is already in room on that node; a join
 * from another node moves the user (one session per user: the newest wins). */
int node_croom_join(node_croom_t *t, const char *room, const char *user, const char *node);
/* Removes user from room only while it is there for node (NULL = any). */
void node_croom_leave(node_croom_t *t, const char *room, const char *user, const char *node);
/* Forgets every member on node (it left the cluster or re-syncs). */
void node_croom_drop_node(node_croom_t *t, const char *node);
size_t node_croom_count(const node_croom_t *t, const char *room);
/* The room's member slots (8 bytes each): between 1/8 and 3/4 used. */
size_t node_croom_slots(const node_croom_t *t, const char *room);
/* Calls fn for each member user of room. */
void node_croom_each_user(const node_croom_t *t, const char *room,
                          void (*fn)(const char *user, void *ud), void *ud);
/* Calls fn for each node with members in room. */
void node_croom_each_node(const node_croom_t *t, const char *room,
                          void (*fn)(const char *node, void *ud), void *ud);

/* ------------------------------------------------------------------ metrics */

typedef struct node_metrics {
    uint64_t connections_total;
    uint64_t requests_total;
    uint64_t errors_total;
    uint64_t rate_limited_total;
    uint64_t messages_total;       /* chat + group_chat + room_chat accepted */
    uint64_t deliveries_total;     /* event frames handed to local sessions */
    uint64_t logins_total;
    uint64_t login_failures_total;
    uint64_t store_handed_total;   /* chat/ack writes handed to the leader (one writer) */
    uint64_t store_served_total;   /* the same, committed here for a follower */
    uint64_t reroutes_total;       /* cached guesses that missed here, located again */
    uint64_t locates_total;        /* events for a remote user that waited for a Redis look-up */
    uint64_t loc_refreshes_total;  /* location cache entries renewed while in use */
    uint64_t rsync_skipped_total;  /* leader: re-links whose room share it already held */
    uint64_t bcast_dropped_total;  /* broadcasts (to all or a big room) dropped: the queue was full */
    uint64_t room_slices_total;    /* room fan-outs walked in slices (a big room) */
    uint64_t conns_refused_total;  /* over the per-address cap */
    uint64_t login_timeouts_total; /* closed for not logging in in time */
    uint64_t login_throttled_total;/* logins answered 429 */
    uint64_t link_ups_total[PROTO_CF_AEADS]; /* cluster links up, by the AEAD sealing them */
} node_metrics_t;

void node_metrics_render(node_t *n, core_buf_t *out);

/* ------------------------------------------------------------------ the node */

typedef struct node_room_entry node_room_entry_t;
typedef struct node_room_name node_room_name_t;

struct node {
    struct ev_loop *loop;
    node_config_t cfg;
    core_http_server_t *http;
    core_tls_t *tls;            /* the client endpoint's TLS context, or NULL */
    core_redis_t *redis;
    store_t *store;
    node_auth_t *auth;
    node_filter_t *filter;
    proto_msgid_gen_t msgids;
    core_strtab_t sessions;        /* logged-in local sessions by user */
    node_sess_t *sess_first;       /* the same, as a list (broadcasts walk it in slices) */
    size_t conns;                  /* open WebSocket sessions */
    uint64_t next_conn_id;
    node_room_entry_t *rooms;      /* live membership */
    node_room_name_t *room_names;  /* known rooms */
    node_metrics_t metrics;
    ev_timer heartbeat;
    ev_timer hot_reset;
    core_redis_t *redis_push;      /* dedicated: BRPOP blocks its connection */
    ev_timer push_retry;
    int push_enabled;
    struct node_bcast *bcast_head, *bcast_tail; /* route.c: broadcasts under way */
    core_strtab_t bcast_newest;    /* each target's newest of them, by room ("" = all) */
    size_t bcast_bytes;            /* their frames' bytes, capped */
    node_sess_t *bcast_next;       /* the head broadcast's next session (to all) */
    ev_check bcast_check;
    ev_idle bcast_idle;
    uint64_t started_ms;
    char boot[24];                 /* NODE_BOOT of this run, decimal */
    int redis_seen;                /* Redis was connected once (start-up clean-up done) */
    int entry_seen;                /* the heartbeat wrote our node-list entry since the connect */
    int republish_owed;            /* our entry went: publish the sessions once registered */
    int reconnect_check;           /* Redis is back: its answer to our entry decides (presence.c) */
    int presence_lost;             /* a session write to Redis failed since the last publish */
    struct node_cluster *cluster;  /* cluster.c */
    struct node_loc_entry *loc_cache; /* presence.c: user -> node, short-lived */
    struct node_guard *guard;      /* guard.c: abuse limits */
    size_t loc_cache_count;
};

/* push.c: server pushes queued by gateways */
void node_push_start(node_t *n, const char *host, int port);
void node_push_stop(node_t *n);

/* guard.c: abuse limits (docs/SECURITY.md) */
typedef struct node_guard node_guard_t;
typedef struct node_addr node_addr_t;
/* Checks a --limit-exempt list. */
int node_guard_parse_exempt(const char *list, char *err, size_t errlen);
void node_guard_start(node_t *n);
void node_guard_stop(node_t *n);
/* A new connection from peer ("ip:port"): -1 when its address is over the
 * cap (the caller closes it). Starts its deadline to log in. */
int node_guard_open(node_t *n, node_sess_t *s, const char *peer);
void node_guard_close(node_t *n, node_sess_t *s);
/* The session's source address. */
const char *node_guard_ip(const node_sess_t *s);
/* The addresses the per-address limits skip (--limit-exempt). */
const core_addrset_t *node_guard_exempt(const node_t *n);
/* retry_ms > 0: too many failed logins for this user or address lately. */
typedef void (*node_guard_cb)(node_t *n, uint64_t retry_ms, void *ud);
void node_guard_login_check(node_t *n, const node_sess_t *s, const char *user, node_guard_cb cb,
                            void *ud);
/* Counts a failed login; cb (retry_ms 0) once Redis has it, so the next
 * attempt anywhere sees it. */
void node_guard_login_failed(node_t *n, const node_sess_t *s, const char *user, node_guard_cb cb,
                             void *ud);
void node_guard_login_ok(node_t *n, const char *user);

/* server.c: the client endpoint */
int node_server_start(node_t *n, char *err, size_t errlen);
void node_server_stop(node_t *n);

/* Prints o compactly and deletes it; malloc'd. */
char *node_json_take(cJSON *o);
/* Encodes an event frame (data consumed); malloc'd. */
char *node_event_frame(const char *event, cJSON *data, size_t *len);
/* Same data as an offline item: {"event":..,"data":{...,"offline":true}}. */
char *node_offline_frame(const char *event, const char *data_json, size_t *len);

#endif
