/* Cross-node routing over the cluster link (docs/CLUSTER.md).
 *
 * Every node listens on its cluster port; only the leader accepts links.
 * A follower keeps one link to the leader (node/link.c: the handshake that
 * proves the secret both ways, then sealed frames). Messages are JSON:
 * followers send to the leader, which relays to the node concerned (one
 * copy per node) or answers calls about room membership. Every leader
 * message carries the epoch; a follower drops a link whose epoch is not the
 * one ZooKeeper names. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>
#include <hiredis/hiredis.h>
#include <utlist.h>

#include "node/node.h"
#include "node/node_int.h"

#define TICK_SEC 0.25
#define CALL_TIMEOUT_MS 3000
#define QUEUE_MAX_BYTES (16u << 20)
#define QUEUE_MAX_AGE_MS 10000
#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 2000
#define SWEEP_TICKS 8
#define PENDING_IN_MAX 32
#define OUTBOX_MAX_BYTES (16u << 20)
#define RSYNC_CHUNK (256u << 10)
#define MEMBERS_MAX 10000          /* room_members answers list at most this many */
#define NODE_STALE_MS 5000
#define RESEND_MS 3000             /* room messages a follower keeps for a new leader */
#define RESEND_MAX_BYTES (4u << 20)
#define SEEN_MAX 8192              /* room msgids a node remembers, to drop a resent copy */

/* The cluster's record of one link; the transport is node_link_t. */
typedef struct link {
    struct node_cluster *cl;
    node_link_t *t;                          /* NULL once the transport is gone */
    int outbound;
    char peer[64];                           /* the other node's id, once up */
    int synced;                              /* leader side: the peer's rooms are all known */
    UT_hash_handle hh;                       /* cl->links, by peer (leader side) */
} link_t;

typedef struct call {
    uint64_t id;
    uint64_t deadline_ms;
    node_cluster_cb cb;
    void *ud;
    struct call *prev, *next;   /* cl->call_order: oldest first, so by deadline */
    UT_hash_handle hh;          /* cl->calls, by id: thousands may be out under load */
} call_t;

typedef struct member {
    char id[64];
    char boot[24];              /* the member's run (node.h NODE_BOOT) */
    UT_hash_handle hh;
} member_t;

/* Leader side: how far a follower's share of the room table is known here,
 * so that a re-link after a short loss (a busy loop, a dropped connection)
 * does not re-send it: the follower counts its membership changes (share
 * version "sv"), and every notice says the count after it. */
typedef struct share {
    char id[64];
    char boot[24];              /* the follower's run */
    uint64_t sv;                /* the last change applied here */
    int whole;                  /* a full rsync ended here: sv is exact */
    UT_hash_handle hh;
} share_t;

/* Leader side: frames for a member node whose link is not (yet) up, e.g.
 * right after an election; bounded, flushed when it links. */
typedef struct outbox {
    char id[64];
    core_buf_t frames;
    uint64_t since_ms;
    UT_hash_handle hh;
} outbox_t;

typedef struct node_cluster {
    node_t *node;
    char secret[256];
    node_link_auth_t auth;           /* what every link's handshake checks */
    node_zk_t *zk;
    core_listener_t *listener;
    ev_timer tick;
    unsigned ticks;
    /* what ZooKeeper says */
    int leader_known;
    int is_leader;
    char leader_id[64];
    char leader_addr[128];
    int64_t epoch;
    member_t *members;
    /* follower side */
    link_t *up;                      /* the link to the leader, once connecting */
    uint64_t next_connect_ms;
    uint64_t backoff_ms;
    core_buf_t queue;                /* MSG frames waiting for a leader */
    uint64_t queue_since_ms;
    core_buf_t resend;               /* [u64 ms][MSG frame]: room messages sent lately */
    struct seen *seen;               /* room msgids delivered lately (by id) */
    struct seen **seen_ring;         /* the same, oldest first out; SEEN_MAX slots */
    size_t seen_next;
    call_t *calls;
    call_t *call_order; /* the same calls by deadline (one timeout for all) */
    uint64_t next_call_id;
    /* leader side */
    link_t *links;                   /* authenticated followers by id */
    outbox_t *outboxes;              /* by node id */
    link_t **pending_in;             /* accepted, not yet authenticated */
    size_t pending_in_count, pending_in_cap;
    node_croom_t *rooms;
    share_t *shares;                 /* by follower id */
    /* follower side: membership changes sent (or lost) so far */
    uint64_t share_ver;
} node_cluster_t;

static void link_close(link_t *l, const char *why);
static int seen_before(node_cluster_t *cl, const char *frame);
static void outbox_drop(struct node_cluster *cl, const char *id);
static void close_pending_in(struct node_cluster *cl, const char *why);
static void leader_msg(node_cluster_t *cl, const char *origin, const cJSON *m);
static void send_rsync(node_cluster_t *cl);

/* ------------------------------------------------------------------ helpers */

static uint64_t now_ms(void)
{
    return core_mono_ms();
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The follower's link to the leader, when it is up. */
static link_t *up_ready(const node_cluster_t *cl)
{
    return cl->up && node_link_is_up(cl->up->t) ? cl->up : NULL;
}

/* The wire form of a cluster message (m consumed): proto_cm_print. */
static char *msg_take(cJSON *m, size_t *len)
{
    char *wire = proto_cm_print(m, len);
    cJSON_Delete(m);
    return wire;
}

/* Sends a cluster message (consumed) on l. */
static int link_send_json(link_t *l, cJSON *m)
{
    size_t len = 0;
    char *wire = msg_take(m, &len);
    int rc = l->t && wire ? node_link_send(l->t, wire, len) : -1;
    free(wire);
    return rc;
}

/* ------------------------------------------------------------------ local delivery */

/* reroute: the sender guessed this node from its cache; a user who is not
 * here is located again in Redis (once: that delivery is not a guess). */
static void deliver_users(node_t *n, const cJSON *users, const char *frame, size_t len, int reroute)
{
    const cJSON *u;
    cJSON_ArrayForEach(u, users) {
        if (cJSON_IsString(u) && !node_route_local(n, u->valuestring, frame, len) && reroute) {
            n->metrics.reroutes_total++;
            node_route_user_located(n, u->valuestring, frame, len);
        }
    }
}

static void deliver_kick(node_t *n, const char *user, const char *conn)
{
    node_sess_t *s = node_sess_find(n, user);
    if (s && node_sess_live(s) && strtoull(conn, NULL, 10) == s->conn_id)
        node_route_kick_session(n, s);
}

/* Ids this node issues later sort after one it delivers (hybrid clock), so
 * a reply never sorts before the message it answers, whatever the clocks. */
static void observe_msgid(node_t *n, const char *frame)
{
    static const char key[] = "\"msgid\":\"";
    const char *p = frame ? strstr(frame, key) : NULL;
    if (p && proto_msgid_valid(p + sizeof key - 1, PROTO_MSGID_LEN)) {
        char id[PROTO_MSGID_LEN + 1];
        memcpy(id, p + sizeof key - 1, PROTO_MSGID_LEN);
        id[PROTO_MSGID_LEN] = '\0';
        proto_msgid_observe(&n->msgids, id);
    }
}

/* A message for this node (from the leader, or from itself as leader). */
static void node_msg(node_cluster_t *cl, const cJSON *m)
{
    node_t *n = cl->node;
    const char *t = jstr(m, "t"), *f = jstr(m, "f");
    if (!t)
        return;
    observe_msgid(n, f);
    if (strcmp(t, "dlv") == 0 && f)
        deliver_users(n, cJSON_GetObjectItemCaseSensitive(m, "users"), f, strlen(f),
                      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "r")));
    else if (strcmp(t, "room") == 0 && f && jstr(m, "room") && !seen_before(cl, f))
        node_route_room_local(n, jstr(m, "room"), jstr(m, "x"), f, strlen(f));
    else if (strcmp(t, "all") == 0 && f)
        node_route_all_local(n, f, strlen(f));
    else if (strcmp(t, "kick") == 0 && jstr(m, "user") && jstr(m, "conn"))
        deliver_kick(n, jstr(m, "user"), jstr(m, "conn"));
    else if (strcmp(t, "rwant") == 0)
        send_rsync(cl); /* the leader does not hold this node's share as it is */
}

/* ------------------------------------------------------------------ sending towards the leader */

static void queue_drop(node_cluster_t *cl, const char *why)
{
    if (cl->queue.len)
        CORE_WARN("cluster: dropping %zu queued bytes (%s)", cl->queue.len, why);
    core_buf_reset(&cl->queue);
    cl->queue_since_ms = 0;
}

/* Sends m (consumed) to the leader: handled here when this node leads,
 * queued (bounded, briefly) while no leader link is up. */
/* Appends json as one MSG frame (the wire format) to b. */
static void frame_append(core_buf_t *b, const char *json, size_t len)
{
    char hdr[PROTO_CF_HEADER];
    uint32_t n = (uint32_t)len + 1;
    hdr[0] = (char)(n >> 24), hdr[1] = (char)(n >> 16), hdr[2] = (char)(n >> 8),
    hdr[3] = (char)n, hdr[4] = (char)PROTO_CF_MSG;
    core_buf_append(b, hdr, sizeof hdr);
    core_buf_append(b, json, len);
}

/* Size of the resend entry at p: the timestamp, the frame header, the frame. */
static size_t resend_entry_len(const char *p)
{
    const unsigned char *h = (const unsigned char *)p + 8;
    uint32_t n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    return 8 + PROTO_CF_HEADER - 1 + n;
}

/* Drops entries older than RESEND_MS from the front. */
static void resend_trim(node_cluster_t *cl, uint64_t now)
{
    size_t off = 0;
    while (off < cl->resend.len) {
        uint64_t ts;
        memcpy(&ts, cl->resend.data + off, 8);
        if (ts + RESEND_MS >= now)
            break;
        off += resend_entry_len(cl->resend.data + off);
    }
    core_buf_consume(&cl->resend, off);
}

/* A room message written to the leader's link (or fanned out by this node
 * as the leader): a leader that dies or steps down may never have passed
 * it on, so it is kept for RESEND_MS and goes again to the next leader
 * (receivers drop a copy they already delivered, by msgid). */
static void resend_remember(node_cluster_t *cl, const cJSON *m)
{
    size_t len = 0;
    char *json = proto_cm_print(m, &len);
    if (!json)
        return;
    uint64_t now = now_ms();
    resend_trim(cl, now);
    if (cl->resend.len + 8 + PROTO_CF_HEADER + len <= RESEND_MAX_BYTES) {
        core_buf_append(&cl->resend, &now, 8);
        frame_append(&cl->resend, json, len);
    }
    free(json);
}

/* The leader link is gone, or this node stopped leading: what may be
 * unread waits for the next leader, ahead of what was queued since. */
static void resend_to_queue(node_cluster_t *cl)
{
    resend_trim(cl, now_ms());
    if (!cl->resend.len)
        return;
    core_buf_t q;
    core_buf_init(&q);
    for (size_t off = 0; off < cl->resend.len;) {
        size_t n = resend_entry_len(cl->resend.data + off);
        core_buf_append(&q, cl->resend.data + off + 8, n - 8);
        off += n;
    }
    core_buf_append(&q, cl->queue.data, cl->queue.len);
    core_buf_free(&cl->queue);
    cl->queue = q;
    if (!cl->queue_since_ms)
        cl->queue_since_ms = now_ms();
    core_buf_reset(&cl->resend);
}

typedef struct seen {
    char id[PROTO_MSGID_LEN + 1];
    UT_hash_handle hh;
} seen_t;

/* 1 when frame's msgid was delivered here lately (a resent copy). */
static int seen_before(node_cluster_t *cl, const char *frame)
{
    static const char key[] = "\"msgid\":\"";
    const char *p = strstr(frame, key);
    if (!p || !proto_msgid_valid(p + sizeof key - 1, PROTO_MSGID_LEN))
        return 0;
    seen_t *s = NULL;
    HASH_FIND(hh, cl->seen, p + sizeof key - 1, PROTO_MSGID_LEN, s);
    if (s)
        return 1;
    if (!cl->seen_ring)
        cl->seen_ring = core_xcalloc(SEEN_MAX, sizeof *cl->seen_ring);
    s = cl->seen_ring[cl->seen_next];
    if (s)
        HASH_DEL(cl->seen, s);
    else
        s = core_xcalloc(1, sizeof *s);
    memcpy(s->id, p + sizeof key - 1, PROTO_MSGID_LEN);
    s->id[PROTO_MSGID_LEN] = '\0';
    HASH_ADD(hh, cl->seen, id, PROTO_MSGID_LEN, s);
    cl->seen_ring[cl->seen_next] = s;
    cl->seen_next = (cl->seen_next + 1) % SEEN_MAX;
    return 0;
}

static void seen_free(node_cluster_t *cl)
{
    HASH_CLEAR(hh, cl->seen);
    for (size_t i = 0; cl->seen_ring && i < SEEN_MAX; i++)
        free(cl->seen_ring[i]);
    free(cl->seen_ring);
    cl->seen_ring = NULL;
}

static void to_leader(node_cluster_t *cl, cJSON *m)
{
    if (cl->is_leader) {
        leader_msg(cl, cl->node->cfg.id, m);
        cJSON_Delete(m);
        return;
    }
    if (up_ready(cl)) {
        link_send_json(cl->up, m);
        return;
    }
    size_t len = 0;
    char *json = msg_take(m, &len);
    if (!json) {
        return;
    } else if (len > PROTO_CF_BOX_MAX) {
        CORE_WARN("cluster: a %zu-byte message is over the frame limit; dropped", len);
    } else if (cl->queue.len + PROTO_CF_HEADER + len > QUEUE_MAX_BYTES) {
        CORE_WARN("cluster: no leader and the queue is full; a message is dropped");
    } else {
        if (!cl->queue.len)
            cl->queue_since_ms = now_ms();
        frame_append(&cl->queue, json, len);
    }
    free(json);
}

static void queue_flush(node_cluster_t *cl)
{
    if (cl->queue.len && up_ready(cl))
        node_link_send_frames(cl->up->t, cl->queue.data, cl->queue.len);
    core_buf_reset(&cl->queue);
    cl->queue_since_ms = 0;
}

/* ------------------------------------------------------------------ calls (request/response to the leader) */

static void call_finish(node_cluster_t *cl, call_t *c, int code, const cJSON *data)
{
    c->cb(cl->node, code, data, c->ud);
    free(c);
}

static void call_forget(node_cluster_t *cl, call_t *c)
{
    HASH_DEL(cl->calls, c);
    DL_DELETE(cl->call_order, c);
}

/* Ends the calls that are due (all when now is 0) with PROTO_UNAVAILABLE,
 * walking only those: they come first. The due ones leave the table before
 * any callback runs, as a callback may start a new call. */
static void calls_fail(node_cluster_t *cl, uint64_t now)
{
    call_t *due = NULL, *last = NULL;
    while (cl->call_order && (now == 0 || cl->call_order->deadline_ms <= now)) {
        call_t *c = cl->call_order;
        call_forget(cl, c);
        c->next = NULL;
        if (last)
            last->next = c;
        else
            due = c;
        last = c;
    }
    while (due) {
        call_t *c = due;
        due = c->next;
        call_finish(cl, c, PROTO_UNAVAILABLE, NULL);
    }
}

static void call_answer(node_cluster_t *cl, const cJSON *m)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(m, "code");
    if (!cJSON_IsNumber(id) || !cJSON_IsNumber(code) || id->valuedouble < 0)
        return;
    uint64_t key = (uint64_t)id->valuedouble;
    call_t *c = NULL;
    HASH_FIND(hh, cl->calls, &key, sizeof key, c);
    if (!c)
        return;
    call_forget(cl, c);
    call_finish(cl, c, code->valueint, cJSON_GetObjectItemCaseSensitive(m, "data"));
}

static int leader_call(node_cluster_t *cl, const char *origin, const cJSON *m, cJSON **data);

/* Runs op at the leader; cb gets the answer (PROTO_UNAVAILABLE without one). */
static void call_leader(node_t *n, cJSON *m, node_cluster_cb cb, void *ud)
{
    node_cluster_t *cl = n->cluster;
    if (!cl) { /* shutting down */
        cJSON_Delete(m);
        cb(n, PROTO_UNAVAILABLE, NULL, ud);
        return;
    }
    if (cl->is_leader) {
        cJSON *data = NULL;
        int code = leader_call(cl, cl->node->cfg.id, m, &data);
        cb(cl->node, code, data, ud);
        cJSON_Delete(data);
        cJSON_Delete(m);
        return;
    }
    if (!up_ready(cl)) {
        cJSON_Delete(m);
        cb(cl->node, PROTO_UNAVAILABLE, NULL, ud);
        return;
    }
    call_t *c = core_xcalloc(1, sizeof *c);
    c->id = ++cl->next_call_id;
    c->deadline_ms = now_ms() + CALL_TIMEOUT_MS;
    c->cb = cb;
    c->ud = ud;
    HASH_ADD(hh, cl->calls, id, sizeof c->id, c);
    DL_APPEND(cl->call_order, c);
    cJSON_AddStringToObject(m, "t", "call");
    cJSON_AddNumberToObject(m, "id", (double)c->id);
    link_send_json(cl->up, m);
}

/* ------------------------------------------------------------------ leader duties */

static link_t *link_of(node_cluster_t *cl, const char *id)
{
    link_t *l = NULL;
    HASH_FIND_STR(cl->links, id, l);
    return l && node_link_is_up(l->t) ? l : NULL;
}

static void outbox_drop(node_cluster_t *cl, const char *id)
{
    outbox_t *o = NULL;
    HASH_FIND_STR(cl->outboxes, id, o);
    if (!o)
        return;
    if (o->frames.len)
        CORE_WARN("cluster: dropping %zu bytes held for %s", o->frames.len, id);
    HASH_DEL(cl->outboxes, o);
    core_buf_free(&o->frames);
    free(o);
}

static void outbox_drop_all(node_cluster_t *cl)
{
    outbox_t *o, *tmp;
    HASH_ITER(hh, cl->outboxes, o, tmp)
        outbox_drop(cl, o->id);
}

static void outbox_expire(node_cluster_t *cl, uint64_t now)
{
    outbox_t *o, *tmp;
    HASH_ITER(hh, cl->outboxes, o, tmp) {
        if (now - o->since_ms > QUEUE_MAX_AGE_MS)
            outbox_drop(cl, o->id);
    }
}

/* Holds a frame for a member that has not linked yet (bounded). */
static void outbox_put(node_cluster_t *cl, const char *id, const char *frame, size_t len)
{
    outbox_t *o = NULL;
    HASH_FIND_STR(cl->outboxes, id, o);
    if (!o) {
        o = core_xcalloc(1, sizeof *o);
        core_copy_trunc(o->id, sizeof o->id, id);
        core_buf_init(&o->frames);
        o->since_ms = now_ms();
        HASH_ADD_STR(cl->outboxes, id, o);
    }
    if (o->frames.len + len > OUTBOX_MAX_BYTES) {
        CORE_WARN("cluster: %s is not linked and its backlog is full; a message is dropped", id);
        return;
    }
    core_buf_append(&o->frames, frame, len);
}

static void outbox_flush(node_cluster_t *cl, link_t *l)
{
    outbox_t *o = NULL;
    HASH_FIND_STR(cl->outboxes, l->peer, o);
    if (!o)
        return;
    if (o->frames.len)
        node_link_send_frames(l->t, o->frames.data, o->frames.len);
    HASH_DEL(cl->outboxes, o);
    core_buf_free(&o->frames);
    free(o);
}

/* Sends m (not consumed) to node id: handled here when id is this node,
 * held briefly for a member that is not linked yet, dropped otherwise. */
static void leader_send_to(node_cluster_t *cl, const char *id, cJSON *m)
{
    if (strcmp(id, cl->node->cfg.id) == 0) {
        node_msg(cl, m);
        return;
    }
    link_t *l = link_of(cl, id);
    if (!l && !node_cluster_is_member(cl->node, id)) {
        CORE_WARN("cluster: %s is not a member; a %s is dropped", id, jstr(m, "t"));
        return;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(m, "e");
    cJSON_AddNumberToObject(m, "e", (double)cl->epoch);
    size_t len = 0;
    char *json = proto_cm_print(m, &len);
    if (!json) {
        return;
    } else if (l) {
        if (node_link_send(l->t, json, len) != 0)
            CORE_WARN("cluster: could not send a %s to %s", jstr(m, "t"), id);
    } else if (len <= PROTO_CF_BOX_MAX) {
        char *frame = core_xmalloc(PROTO_CF_HEADER + len);
        proto_cf_encode(PROTO_CF_MSG, json, len, frame, PROTO_CF_HEADER + len);
        outbox_put(cl, id, frame, PROTO_CF_HEADER + len);
        free(frame);
    }
    free(json);
}

typedef struct room_fan {
    node_cluster_t *cl;
    const char *origin;
    cJSON *msg;
    member_t *sent;             /* nodes that got a copy */
} room_fan_t;

static void room_fan_node(const char *node, void *ud)
{
    room_fan_t *rf = ud;
    if (strcmp(node, rf->origin) == 0)
        return;
    leader_send_to(rf->cl, node, rf->msg);
    member_t *m = core_xcalloc(1, sizeof *m);
    core_copy_trunc(m->id, sizeof m->id, node);
    HASH_ADD_STR(rf->sent, id, m);
}

/* A member whose room membership this leader does not fully know yet (no
 * link, or its re-announcement is still arriving): it may have members. */
static int membership_unknown(node_cluster_t *cl, const char *id)
{
    if (strcmp(id, cl->node->cfg.id) == 0)
        return 0;
    link_t *l = link_of(cl, id);
    return !l || !l->synced;
}

/* One copy per node with members; and, right after a leader change, one to
 * every node whose members are not known yet (it fans out to its own local
 * members, so a copy too many costs nothing but the frame), so no member
 * misses a room message while the followers re-announce. */
static void leader_room(node_cluster_t *cl, const char *origin, cJSON *m)
{
    room_fan_t rf = {cl, origin, m, NULL};
    node_croom_each_node(cl->rooms, jstr(m, "room"), room_fan_node, &rf);
    member_t *mem, *tmp, *got;
    HASH_ITER(hh, cl->members, mem, tmp) {
        HASH_FIND_STR(rf.sent, mem->id, got);
        if (!got && strcmp(mem->id, origin) != 0 && membership_unknown(cl, mem->id))
            leader_send_to(cl, mem->id, m);
    }
    HASH_ITER(hh, rf.sent, mem, tmp) {
        HASH_DEL(rf.sent, mem);
        free(mem);
    }
}

static void leader_all(node_cluster_t *cl, const char *origin, cJSON *m)
{
    if (strcmp(origin, cl->node->cfg.id) != 0)
        node_msg(cl, m);
    link_t *l, *tmp;
    HASH_ITER(hh, cl->links, l, tmp) {
        if (strcmp(l->peer, origin) != 0)
            leader_send_to(cl, l->peer, m);
    }
}

static void add_user(const char *user, void *ud)
{
    if (cJSON_GetArraySize(ud) < MEMBERS_MAX)
        cJSON_AddItemToArray(ud, cJSON_CreateString(user));
}

/* ------------------------------------------------------------------ followers' shares (leader side) */

static share_t *share_of(node_cluster_t *cl, const char *id)
{
    share_t *sh = NULL;
    HASH_FIND_STR(cl->shares, id, sh);
    return sh;
}

/* Forgets what is known of id's share (NULL: of every follower's). */
static void shares_forget(node_cluster_t *cl, const char *id)
{
    share_t *sh, *tmp;
    HASH_ITER(hh, cl->shares, sh, tmp) {
        if (!id || strcmp(sh->id, id) == 0) {
            HASH_DEL(cl->shares, sh);
            free(sh);
        }
    }
}

static uint64_t json_u64(const cJSON *m, const char *key, int *ok)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    *ok = cJSON_IsNumber(v) && v->valuedouble >= 0;
    return *ok ? (uint64_t)v->valuedouble : 0;
}

/* A membership notice of origin's was applied: the share stays exact only
 * when it is the very next change (a gap means notices were lost). */
static void share_applied(node_cluster_t *cl, const char *origin, const cJSON *m)
{
    share_t *sh = share_of(cl, origin);
    int ok;
    uint64_t sv = json_u64(m, "sv", &ok);
    if (!sh)
        return;
    sh->whole = sh->whole && ok && sv == sh->sv + 1;
    sh->sv = sv;
}

/* A follower (re)linked and says its run and share version: when this
 * leader holds exactly that share it needs nothing; else it asks for all. */
static void leader_rcheck(node_cluster_t *cl, const char *origin, const cJSON *m)
{
    share_t *sh = share_of(cl, origin);
    const char *boot = jstr(m, "boot");
    int ok;
    uint64_t sv = json_u64(m, "sv", &ok);
    link_t *l = link_of(cl, origin);
    if (sh && sh->whole && ok && sv == sh->sv && boot && strcmp(boot, sh->boot) == 0) {
        if (l)
            l->synced = 1;
        cl->node->metrics.rsync_skipped_total++;
        return;
    }
    cJSON *want = cJSON_CreateObject();
    cJSON_AddStringToObject(want, "t", "rwant");
    leader_send_to(cl, origin, want);
    cJSON_Delete(want);
}

/* Room membership questions; returns the code, *data the answer. */
static int leader_call(node_cluster_t *cl, const char *origin, const cJSON *m, cJSON **data)
{
    const char *op = jstr(m, "op"), *room = jstr(m, "room"), *user = jstr(m, "user");
    *data = cJSON_CreateObject();
    if (op && strcmp(op, "rjoin") == 0 && room && user) {
        int rc = node_croom_join(cl->rooms, room, user, origin);
        share_applied(cl, origin, m);
        cJSON_AddNumberToObject(*data, "members", (double)node_croom_count(cl->rooms, room));
        return rc;
    }
    if (op && strcmp(op, "rmembers") == 0 && room) {
        node_croom_each_user(cl->rooms, room, add_user,
                             cJSON_AddArrayToObject(*data, "members"));
        return 0;
    }
    if (op && strcmp(op, "rcounts") == 0) {
        cJSON *counts = cJSON_AddArrayToObject(*data, "counts");
        const cJSON *r;
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(m, "rooms")) {
            size_t c = cJSON_IsString(r) ? node_croom_count(cl->rooms, r->valuestring) : 0;
            cJSON_AddItemToArray(counts, cJSON_CreateNumber((double)c));
        }
        return 0;
    }
    return PROTO_BAD_REQUEST;
}

/* The share record a reset starts: exact once its last part arrives. */
static void share_reset(node_cluster_t *cl, const char *origin, const cJSON *m)
{
    share_t *sh = share_of(cl, origin);
    if (!sh) {
        sh = core_xcalloc(1, sizeof *sh);
        core_copy_trunc(sh->id, sizeof sh->id, origin);
        HASH_ADD_STR(cl->shares, id, sh);
    }
    snprintf(sh->boot, sizeof sh->boot, "%s", jstr(m, "boot") ? jstr(m, "boot") : "");
    sh->whole = 0;
}

static void share_done(node_cluster_t *cl, const char *origin, const cJSON *m)
{
    share_t *sh = share_of(cl, origin);
    int ok;
    uint64_t sv = json_u64(m, "sv", &ok);
    if (sh && ok && sh->boot[0]) {
        sh->sv = sv;
        sh->whole = 1;
    }
}

/* Replaces (reset) or extends origin's share of the room table. */
static void leader_rsync(node_cluster_t *cl, const char *origin, const cJSON *m)
{
    int remote = strcmp(origin, cl->node->cfg.id) != 0;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "reset"))) {
        node_croom_drop_node(cl->rooms, origin);
        if (remote)
            share_reset(cl, origin, m);
    }
    const cJSON *room;
    cJSON_ArrayForEach(room, cJSON_GetObjectItemCaseSensitive(m, "rooms")) {
        const cJSON *u;
        cJSON_ArrayForEach(u, room) {
            if (cJSON_IsString(u))
                node_croom_join(cl->rooms, room->string, u->valuestring, origin);
        }
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "done"))) { /* after the reset it may carry */
        link_t *l = link_of(cl, origin);
        if (l)
            l->synced = 1;
        if (remote)
            share_done(cl, origin, m);
    }
}

/* A delivery to a node the sender only guessed (its location cache) that
 * has no link here: that node is likely dead while its membership lingers
 * until its ZooKeeper session expires; holding the frame for it would lose
 * a user who already moved, so the users are located again instead. */
static int guess_unreachable(node_cluster_t *cl, const cJSON *m)
{
    const char *id = jstr(m, "node");
    return id && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "r")) &&
           strcmp(id, cl->node->cfg.id) != 0 && !link_of(cl, id);
}

static void relocate_users(node_cluster_t *cl, const cJSON *m)
{
    const char *f = jstr(m, "f");
    const cJSON *u;
    if (!f)
        return;
    cJSON_ArrayForEach(u, cJSON_GetObjectItemCaseSensitive(m, "users")) {
        if (cJSON_IsString(u)) {
            cl->node->metrics.reroutes_total++;
            node_route_user_located(cl->node, u->valuestring, f, strlen(f));
        }
    }
}

/* One message from origin (a follower, or this node itself). */
static void leader_msg(node_cluster_t *cl, const char *origin, const cJSON *m)
{
    const char *t = jstr(m, "t");
    if (!t)
        return;
    if (strcmp(t, "dlv") == 0 && guess_unreachable(cl, m)) {
        relocate_users(cl, m);
    } else if ((strcmp(t, "dlv") == 0 || strcmp(t, "kick") == 0) && jstr(m, "node")) {
        leader_send_to(cl, jstr(m, "node"), (cJSON *)m);
    } else if (strcmp(t, "room") == 0 && jstr(m, "room")) {
        leader_room(cl, origin, (cJSON *)m);
    } else if (strcmp(t, "all") == 0) {
        leader_all(cl, origin, (cJSON *)m);
    } else if (strcmp(t, "rleave") == 0 && jstr(m, "room") && jstr(m, "user")) {
        node_croom_leave(cl->rooms, jstr(m, "room"), jstr(m, "user"), origin);
        share_applied(cl, origin, m);
    } else if (strcmp(t, "rjoin") == 0 && jstr(m, "room") && jstr(m, "user")) {
        node_croom_join(cl->rooms, jstr(m, "room"), jstr(m, "user"), origin);
        share_applied(cl, origin, m);
    } else if (strcmp(t, "rsync") == 0) {
        leader_rsync(cl, origin, m);
    } else if (strcmp(t, "rcheck") == 0) {
        leader_rcheck(cl, origin, m);
    } else if (strcmp(t, "call") == 0) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0)
            return;
        if (node_direct_serve(cl->node, origin, (uint64_t)id->valuedouble, m) == 0 ||
            node_account_serve(cl->node, origin, (uint64_t)id->valuedouble, m) == 0) {
            cl->node->metrics.store_served_total++;
            return; /* a store op: answered once it is committed */
        }
        cJSON *data = NULL;
        int code = leader_call(cl, origin, m, &data);
        node_cluster_store_reply(cl->node, origin, (uint64_t)id->valuedouble, code, data);
    }
}

void node_cluster_store_reply(node_t *n, const char *origin, uint64_t id, int code, cJSON *data)
{
    node_cluster_t *cl = n->cluster;
    link_t *l = cl ? link_of(cl, origin) : NULL;
    if (!l) { /* gone: the follower answers its client 503 and the client retries */
        cJSON_Delete(data);
        return;
    }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "t", "ret");
    cJSON_AddNumberToObject(r, "id", (double)id);
    cJSON_AddNumberToObject(r, "code", code);
    cJSON_AddItemToObject(r, "data", data ? data : cJSON_CreateObject());
    cJSON_AddNumberToObject(r, "e", (double)cl->epoch);
    link_send_json(l, r);
}

int node_cluster_store_at_leader(const node_t *n)
{
    const node_cluster_t *cl = n->cluster;
    return n->cfg.writer_leader == 1 && cl && !cl->is_leader && up_ready(cl) != NULL;
}

void node_cluster_store_call(node_t *n, cJSON *m, node_cluster_cb cb, void *ud)
{
    n->metrics.store_handed_total++;
    call_leader(n, m, cb, ud);
}

/* The local share of the room table, as a follower announces it. */
static cJSON *local_rooms_json(node_t *n)
{
    cJSON *rooms = cJSON_CreateObject();
    for (node_sess_t *s = n->sess_first; s; s = s->next) {
        if (!node_sess_live(s))
            continue;
        for (node_room_link_t *rl = s->rooms; rl; rl = rl->next) {
            const char *room = node_rooms_link_name(rl);
            cJSON *arr = cJSON_GetObjectItemCaseSensitive(rooms, room);
            if (!arr)
                arr = cJSON_AddArrayToObject(rooms, room);
            cJSON_AddItemToArray(arr, cJSON_CreateString(s->user));
        }
    }
    return rooms;
}

static cJSON *rsync_msg(const node_t *n, int first)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "t", "rsync");
    if (first) {
        cJSON_AddTrueToObject(m, "reset");
        cJSON_AddStringToObject(m, "boot", n->boot);
    }
    cJSON_AddObjectToObject(m, "rooms");
    return m;
}

/* This node's live members in rsync messages of bounded size: the first
 * resets the node's share at the leader, the others add to it; the last
 * says the share version they make. */
static void send_rsync(node_cluster_t *cl)
{
    link_t *l = cl->up;
    if (cl->is_leader || !l)
        return;
    node_t *n = cl->node;
    cJSON *m = rsync_msg(n, 1);
    size_t bytes = 0;
    for (node_sess_t *s = n->sess_first; s; s = s->next) {
        if (!node_sess_live(s))
            continue;
        for (node_room_link_t *rl = s->rooms; rl; rl = rl->next) {
            const char *room = node_rooms_link_name(rl);
            cJSON *rooms = cJSON_GetObjectItemCaseSensitive(m, "rooms");
            cJSON *arr = cJSON_GetObjectItemCaseSensitive(rooms, room);
            if (!arr)
                arr = cJSON_AddArrayToObject(rooms, room);
            cJSON_AddItemToArray(arr, cJSON_CreateString(s->user));
            bytes += strlen(room) + strlen(s->user) + 8;
        }
        if (bytes >= RSYNC_CHUNK) {
            link_send_json(l, m);
            m = rsync_msg(n, 0);
            bytes = 0;
        }
    }
    cJSON_AddTrueToObject(m, "done"); /* the leader knows every member here now */
    cJSON_AddNumberToObject(m, "sv", (double)cl->share_ver);
    link_send_json(l, m);
}

static void become_leader(node_cluster_t *cl)
{
    CORE_INFO("cluster: this node leads (epoch %lld)", (long long)cl->epoch);
    cl->is_leader = 1;
    if (cl->up)
        link_close(cl->up, "this node leads now");
    node_croom_free(cl->rooms);
    cl->rooms = node_croom_new();
    shares_forget(cl, NULL);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddTrueToObject(m, "reset");
    cJSON_AddItemToObject(m, "rooms", local_rooms_json(cl->node));
    leader_rsync(cl, cl->node->cfg.id, m);
    cJSON_Delete(m);
    /* what was queued for the old leader is handled here now */
    core_buf_t q = cl->queue;
    core_buf_init(&cl->queue);
    cl->queue_since_ms = 0;
    for (size_t off = 0; off < q.len;) {
        proto_cf_frame_t f;
        long used = proto_cf_decode(q.data + off, q.len - off, &f);
        if (used <= 0)
            break;
        cJSON *qm = proto_cm_parse(f.payload, f.len);
        if (qm)
            leader_msg(cl, cl->node->cfg.id, qm);
        cJSON_Delete(qm);
        off += (size_t)used;
    }
    core_buf_free(&q);
}

static void stop_leading(node_cluster_t *cl)
{
    if (!cl->is_leader)
        return;
    CORE_WARN("cluster: this node no longer leads");
    cl->is_leader = 0;
    link_t *l, *tmp;
    HASH_ITER(hh, cl->links, l, tmp)
        link_close(l, "leadership lost");
    close_pending_in(cl, "leadership lost");
    outbox_drop_all(cl);
    /* its own room messages of the last moments may be unread by the
     * followers it just cut off: the next leader (maybe itself) fans them
     * out again, receivers drop what they already have */
    resend_to_queue(cl);
    node_croom_free(cl->rooms);
    cl->rooms = node_croom_new();
    shares_forget(cl, NULL);
}

/* ------------------------------------------------------------------ link I/O */

static void pending_in_remove(node_cluster_t *cl, link_t *l)
{
    for (size_t i = 0; i < cl->pending_in_count; i++) {
        if (cl->pending_in[i] == l) {
            cl->pending_in[i] = cl->pending_in[--cl->pending_in_count];
            return;
        }
    }
}

/* The transport is gone: take l out of the cluster state and free it. */
static void on_link_gone(node_link_t *t, void *ud)
{
    (void)t;
    link_t *l = ud;
    node_cluster_t *cl = l->cl;
    l->t = NULL;
    if (l->outbound) {
        if (cl->up == l) {
            cl->up = NULL;
            calls_fail(cl, 0);
            resend_to_queue(cl);
            cl->backoff_ms = cl->backoff_ms ? cl->backoff_ms * 2 : RECONNECT_MIN_MS;
            if (cl->backoff_ms > RECONNECT_MAX_MS)
                cl->backoff_ms = RECONNECT_MAX_MS;
            cl->next_connect_ms = now_ms() + cl->backoff_ms;
        }
    } else {
        link_t *found = NULL;
        if (l->peer[0])
            HASH_FIND_STR(cl->links, l->peer, found);
        if (found == l)
            HASH_DEL(cl->links, l);
        pending_in_remove(cl, l);
    }
    free(l);
}

/* Closes l's transport with a reason; l is freed (on_link_gone). */
static void link_close(link_t *l, const char *why)
{
    if (l->t)
        node_link_close(l->t, why);
}

static void close_pending_in(node_cluster_t *cl, const char *why)
{
    while (cl->pending_in_count) {
        link_t *l = cl->pending_in[cl->pending_in_count - 1];
        link_close(l, why); /* gone: pending_in shrinks */
    }
}

/* Follower side: linked to the leader ZooKeeper names. */
static void out_up(link_t *l)
{
    node_cluster_t *cl = l->cl;
    core_copy_trunc(l->peer, sizeof l->peer, node_link_peer(l->t));
    cl->backoff_ms = 0;
    CORE_INFO("cluster: linked to leader %s (epoch %lld, %s)", l->peer, (long long)cl->epoch,
              proto_cf_aead_name(node_link_aead(l->t)));
    /* the leader may hold this node's share already (a re-link): it answers
     * rwant when it does not, and the share follows */
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "t", "rcheck");
    cJSON_AddStringToObject(m, "boot", cl->node->boot);
    cJSON_AddNumberToObject(m, "sv", (double)cl->share_ver);
    link_send_json(l, m);
    queue_flush(cl);
}

/* Leader side: a follower proved the secret; it replaces any older link
 * from the same node and gets what was held for it. */
static void in_up(link_t *l)
{
    node_cluster_t *cl = l->cl;
    core_copy_trunc(l->peer, sizeof l->peer, node_link_peer(l->t));
    link_t *old = NULL;
    HASH_FIND_STR(cl->links, l->peer, old);
    if (old)
        link_close(old, "replaced by a new link");
    pending_in_remove(cl, l);
    HASH_ADD_STR(cl->links, peer, l);
    CORE_INFO("cluster: follower %s linked (%s)", l->peer, proto_cf_aead_name(node_link_aead(l->t)));
    outbox_flush(cl, l);
}

static void on_link_up(node_link_t *t, void *ud)
{
    link_t *l = ud;
    l->cl->node->metrics.link_ups_total[node_link_aead(t)]++;
    if (l->outbound)
        out_up(l);
    else
        in_up(l);
}

/* Follower side: a message from the leader of the epoch ZooKeeper names. */
static int out_msg(link_t *l, const char *json, size_t len)
{
    node_cluster_t *cl = l->cl;
    cJSON *m = proto_cm_parse(json, len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(m, "e");
    if (!m || !cJSON_IsNumber(e) || (int64_t)e->valuedouble != cl->epoch) {
        cJSON_Delete(m);
        CORE_WARN("cluster: a message from a stale leader epoch; dropping the link");
        return -1;
    }
    const char *t = jstr(m, "t");
    if (t && strcmp(t, "ret") == 0)
        call_answer(cl, m);
    else
        node_msg(cl, m);
    cJSON_Delete(m);
    return 0;
}

/* Leader side: a message from a follower. */
static int in_msg(link_t *l, const char *json, size_t len)
{
    node_cluster_t *cl = l->cl;
    if (!cl->is_leader)
        return -1;
    cJSON *m = proto_cm_parse(json, len);
    if (!m)
        return -1;
    leader_msg(cl, l->peer, m);
    cJSON_Delete(m);
    return 0;
}

static int on_link_msg(node_link_t *t, const char *json, size_t len, void *ud)
{
    (void)t;
    link_t *l = ud;
    return l->outbound ? out_msg(l, json, len) : in_msg(l, json, len);
}

static const node_link_cbs_t link_cbs = {on_link_up, on_link_msg, on_link_gone};

static link_t *link_new(node_cluster_t *cl, int outbound)
{
    link_t *l = core_xcalloc(1, sizeof *l);
    l->cl = cl;
    l->outbound = outbound;
    return l;
}

static void on_accept(struct ev_loop *loop, int fd, const char *peer, void *ud)
{
    node_cluster_t *cl = ud;
    if (!cl->is_leader || cl->pending_in_count >= PENDING_IN_MAX) {
        /* only the leader takes links, and unauthenticated peers are few */
        CORE_WARN("cluster: refusing a link from %s (%s)", peer,
                  cl->is_leader ? "too many handshakes" : "not the leader");
        close(fd);
        return;
    }
    link_t *l = link_new(cl, 0);
    l->t = node_link_accept(loop, fd, peer, &cl->auth, &link_cbs, l);
    if (!l->t) {
        free(l);
        return;
    }
    if (cl->pending_in_count == cl->pending_in_cap) {
        cl->pending_in_cap = cl->pending_in_cap ? cl->pending_in_cap * 2 : 8;
        cl->pending_in = core_xrealloc(cl->pending_in, cl->pending_in_cap * sizeof *cl->pending_in);
    }
    cl->pending_in[cl->pending_in_count++] = l;
}

static void connect_leader(node_cluster_t *cl)
{
    char host[128];
    int port = 0;
    if (core_parse_hostport(cl->leader_addr, host, sizeof host, &port) != 0) {
        CORE_ERROR("cluster: leader %s has a bad cluster address '%s'", cl->leader_id,
                   cl->leader_addr);
        cl->next_connect_ms = now_ms() + RECONNECT_MAX_MS;
        return;
    }
    link_t *l = link_new(cl, 1);
    l->t = node_link_connect(cl->node->loop, host[0] ? host : "127.0.0.1", port, &cl->auth,
                             &link_cbs, l);
    if (!l->t) {
        free(l);
        cl->next_connect_ms = now_ms() + RECONNECT_MAX_MS;
        return;
    }
    cl->up = l;
}

/* ------------------------------------------------------------------ the periodic tick */

/* The leader keeps the node list to live members (a node that died
 * without cleaning up leaves its entry behind). */
static void on_node_list(core_redis_t *r, struct redisReply *reply, void *ud)
{
    (void)r;
    node_cluster_t *cl = ud;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || !cl->is_leader)
        return;
    uint64_t now = core_now_ms();
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const char *id = reply->element[i]->str;
        cJSON *e = cJSON_Parse(reply->element[i + 1]->str);
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(e, "ts");
        const cJSON *boot = cJSON_GetObjectItemCaseSensitive(e, "boot");
        /* a leader whose member list is stale must not remove fresh nodes */
        int stale = !cJSON_IsNumber(ts) || now - (uint64_t)ts->valuedouble > NODE_STALE_MS;
        /* e.g. the old leader: it left before this node led */
        if (id && stale && !node_cluster_is_member(cl->node, id))
            node_presence_clean_node(cl->node, id, cJSON_IsString(boot) ? boot->valuestring : NULL);
        cJSON_Delete(e);
    }
}

static void link_check(link_t *l, uint64_t now)
{
    if (l->t)
        node_link_check(l->t, now); /* may close: l is freed then */
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    node_cluster_t *cl = w->data;
    uint64_t now = now_ms();
    calls_fail(cl, now);
    outbox_expire(cl, now);
    if (cl->queue.len && now - cl->queue_since_ms > QUEUE_MAX_AGE_MS)
        queue_drop(cl, "no leader for too long");
    if (cl->up)
        link_check(cl->up, now);
    else if (cl->leader_known && !cl->is_leader && now >= cl->next_connect_ms)
        connect_leader(cl);
    link_t *l, *tmp;
    HASH_ITER(hh, cl->links, l, tmp)
        link_check(l, now);
    for (size_t i = cl->pending_in_count; i-- > 0;)
        link_check(cl->pending_in[i], now);
    if (cl->is_leader && cl->zk && ++cl->ticks % SWEEP_TICKS == 0)
        core_redis_cmd(cl->node->redis, on_node_list, cl, "HGETALL chat:nodes");
}

/* ------------------------------------------------------------------ ZooKeeper events */

static void on_leader(void *ud, const char *id, const char *cluster, int64_t epoch, int is_self)
{
    node_cluster_t *cl = ud;
    int changed = !cl->leader_known || strcmp(cl->leader_id, id) != 0 || cl->epoch != epoch;
    if (!changed && cl->is_leader == is_self)
        return;
    if (cl->is_leader && (!is_self || changed))
        stop_leading(cl);
    cl->leader_known = 1;
    core_copy_trunc(cl->leader_id, sizeof cl->leader_id, id);
    core_copy_trunc(cl->leader_addr, sizeof cl->leader_addr, cluster);
    cl->epoch = epoch;
    if (cl->up)
        link_close(cl->up, "the leader changed");
    cl->backoff_ms = 0;
    cl->next_connect_ms = 0;
    if (is_self) {
        become_leader(cl);
        return;
    }
    CORE_INFO("cluster: leader is %s at %s (epoch %lld)", id, cluster, (long long)epoch);
    if (!cl->up)
        connect_leader(cl); /* now, not at the next tick: part of every leader change */
}

static void on_no_leader(void *ud)
{
    node_cluster_t *cl = ud;
    CORE_WARN("cluster: no leader known");
    stop_leading(cl);
    cl->leader_known = 0;
    if (cl->up)
        link_close(cl->up, "no leader");
}

/* The leader forgets departed nodes: their room members and node entry.
 * Only run `boot` and earlier go from Redis: the same id may already serve
 * again, published before ZooKeeper let its new run register. */
static void forget_node(node_cluster_t *cl, const char *id, const char *boot)
{
    if (!cl->is_leader)
        return;
    node_croom_drop_node(cl->rooms, id);
    shares_forget(cl, id);
    node_presence_clean_node(cl->node, id, boot[0] ? boot : NULL);
    link_t *l = NULL;
    HASH_FIND_STR(cl->links, id, l);
    if (l)
        link_close(l, "left ZooKeeper"); /* if it is alive it re-links and re-syncs */
    outbox_drop(cl, id);
}

/* The same id under a new run: the old run's sessions go (its rooms and
 * link are replaced when the new run links and re-syncs). */
static void member_rebooted(node_cluster_t *cl, member_t *m, const char *boot)
{
    if (cl->is_leader) {
        CORE_INFO("cluster: node %s restarted", m->id);
        node_presence_clean_node(cl->node, m->id, m->boot[0] ? m->boot : NULL);
    }
    core_copy_trunc(m->boot, sizeof m->boot, boot);
}

static void on_members(void *ud, const node_zk_member_t *members, size_t count)
{
    node_cluster_t *cl = ud;
    member_t *old = cl->members, *m, *tmp;
    cl->members = NULL;
    for (size_t i = 0; i < count; i++) {
        HASH_FIND_STR(old, members[i].id, m);
        if (m) {
            HASH_DEL(old, m);
            if (strcmp(m->boot, members[i].boot) != 0)
                member_rebooted(cl, m, members[i].boot);
        } else {
            m = core_xcalloc(1, sizeof *m);
            core_copy_trunc(m->id, sizeof m->id, members[i].id);
            core_copy_trunc(m->boot, sizeof m->boot, members[i].boot);
        }
        HASH_ADD_STR(cl->members, id, m);
    }
    HASH_ITER(hh, old, m, tmp) {
        CORE_INFO("cluster: node %s left", m->id);
        forget_node(cl, m->id, m->boot);
        HASH_DEL(old, m);
        free(m);
    }
}

/* ------------------------------------------------------------------ start / stop */

static int read_secret(node_cluster_t *cl, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cluster secret %s: %s", path, strerror(errno));
        return -1;
    }
    size_t len = fread(cl->secret, 1, sizeof cl->secret - 1, f);
    fclose(f);
    cl->secret[len] = '\0';
    if (memchr(cl->secret, '\0', len)) {
        snprintf(err, errlen, "cluster secret %s: must be text (it has a NUL byte)", path);
        return -1;
    }
    while (len && (cl->secret[len - 1] == '\n' || cl->secret[len - 1] == '\r' ||
                   cl->secret[len - 1] == ' '))
        cl->secret[--len] = '\0';
    if (len < 16) {
        snprintf(err, errlen, "cluster secret %s: needs at least 16 characters", path);
        return -1;
    }
    return 0;
}

static int start_zk(node_cluster_t *cl, char *err, size_t errlen)
{
    node_t *n = cl->node;
    char host[128];
    int port = 0;
    if (read_secret(cl, n->cfg.cluster_secret_file, err, errlen) != 0)
        return -1;
    if (core_parse_hostport(n->cfg.cluster_listen, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "bad --cluster-listen '%s'", n->cfg.cluster_listen);
        return -1;
    }
    cl->listener = core_listener_new(n->loop, host, port, on_accept, cl, err, errlen);
    if (!cl->listener)
        return -1;
    node_zk_member_t self;
    memset(&self, 0, sizeof self);
    core_copy_trunc(self.id, sizeof self.id, n->cfg.id);
    core_copy_trunc(self.url, sizeof self.url, n->cfg.public_url);
    core_copy_trunc(self.cluster, sizeof self.cluster, n->cfg.cluster_listen);
    core_copy_trunc(self.boot, sizeof self.boot, n->boot);
    static const node_zk_cbs_t cbs = {on_leader, on_no_leader, on_members};
    cl->zk = node_zk_start(n->loop, n->cfg.zk, n->cfg.zk_root, n->cfg.zk_timeout_ms, &self, &cbs,
                           cl);
    if (!cl->zk) {
        snprintf(err, errlen, "bad ZooKeeper settings '%s'", n->cfg.zk);
        return -1;
    }
    return 0;
}

int node_cluster_start(node_t *n, char *err, size_t errlen)
{
    node_cluster_t *cl = core_xcalloc(1, sizeof *cl);
    cl->node = n;
    cl->auth = (node_link_auth_t){cl->secret, n->cfg.id, cl->leader_id, &cl->epoch};
    cl->rooms = node_croom_new();
    core_buf_init(&cl->queue);
    core_buf_init(&cl->resend);
    n->cluster = cl;
    ev_timer_init(&cl->tick, on_tick, TICK_SEC, TICK_SEC);
    cl->tick.data = cl;
    ev_timer_start(n->loop, &cl->tick);
    if (!n->cfg.zk[0]) {
        /* standalone: a cluster of one that leads itself */
        cl->leader_known = cl->is_leader = 1;
        core_copy_trunc(cl->leader_id, sizeof cl->leader_id, n->cfg.id);
        return 0;
    }
    return start_zk(cl, err, errlen);
}

void node_cluster_stop(node_t *n)
{
    node_cluster_t *cl = n->cluster;
    if (!cl)
        return;
    ev_timer_stop(n->loop, &cl->tick);
    if (cl->zk)
        node_zk_stop(cl->zk);
    cl->zk = NULL;
    cl->is_leader = 0;
    if (cl->up)
        link_close(cl->up, "shutting down");
    link_t *l, *tmp;
    HASH_ITER(hh, cl->links, l, tmp)
        link_close(l, "shutting down");
    close_pending_in(cl, "shutting down");
    core_listener_free(cl->listener);
    calls_fail(cl, 0);
    /* core closes connections from its prepare watcher: one more turn frees the links */
    ev_run(n->loop, EVRUN_NOWAIT);
    member_t *m, *mt;
    HASH_ITER(hh, cl->members, m, mt) {
        HASH_DEL(cl->members, m);
        free(m);
    }
    free(cl->pending_in);
    outbox_drop_all(cl);
    core_buf_free(&cl->queue);
    core_buf_free(&cl->resend);
    seen_free(cl);
    node_croom_free(cl->rooms);
    shares_forget(cl, NULL);
    free(cl);
    n->cluster = NULL;
}

/* ------------------------------------------------------------------ public API */

int node_cluster_is_leader(const node_t *n)
{
    return n->cluster && n->cluster->is_leader;
}

int node_cluster_linked(const node_t *n)
{
    const node_cluster_t *cl = n->cluster;
    return cl && (cl->is_leader || up_ready(cl));
}

int64_t node_cluster_epoch(const node_t *n)
{
    return n->cluster ? n->cluster->epoch : 0;
}

int node_cluster_joined(const node_t *n)
{
    const node_cluster_t *cl = n->cluster;
    return cl && (!cl->zk || node_zk_joined(cl->zk));
}

int node_cluster_is_member(const node_t *n, const char *id)
{
    if (strcmp(id, n->cfg.id) == 0)
        return 1;
    if (!n->cluster || !n->cluster->zk)
        return 0;
    member_t *m = NULL;
    HASH_FIND_STR(n->cluster->members, id, m);
    return m != NULL;
}

static cJSON *msg_new(const char *type, const char *frame, size_t len)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "t", type);
    if (frame) {
        char *f = core_xstrndup(frame, len);
        cJSON_AddStringToObject(m, "f", f);
        free(f);
    }
    return m;
}

void node_cluster_deliver(node_t *n, const char *node_id, const char *const *users, size_t count,
                          const char *frame, size_t len, int reroute)
{
    if (!n->cluster)
        return;
    cJSON *m = msg_new("dlv", frame, len);
    cJSON_AddStringToObject(m, "node", node_id);
    if (reroute)
        cJSON_AddTrueToObject(m, "r");
    cJSON *arr = cJSON_AddArrayToObject(m, "users");
    for (size_t i = 0; i < count; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(users[i]));
    to_leader(n->cluster, m);
}

void node_cluster_kick(node_t *n, const char *node_id, const char *user, uint64_t conn)
{
    if (!n->cluster)
        return;
    char c[24];
    snprintf(c, sizeof c, "%llu", (unsigned long long)conn);
    cJSON *m = msg_new("kick", NULL, 0);
    cJSON_AddStringToObject(m, "node", node_id);
    cJSON_AddStringToObject(m, "user", user);
    cJSON_AddStringToObject(m, "conn", c);
    to_leader(n->cluster, m);
}

void node_cluster_room(node_t *n, const char *room, const char *except, const char *frame,
                       size_t len)
{
    if (!n->cluster || !n->cluster->zk)
        return; /* standalone: the local fan-out was all of it */
    node_cluster_t *cl = n->cluster;
    cJSON *m = msg_new("room", frame, len);
    cJSON_AddStringToObject(m, "room", room);
    if (except)
        cJSON_AddStringToObject(m, "x", except);
    if (cl->is_leader || up_ready(cl)) /* a leader that steps down resends its own too */
        resend_remember(cl, m);
    to_leader(cl, m);
}

void node_cluster_all(node_t *n, const char *frame, size_t len)
{
    if (n->cluster && n->cluster->zk)
        to_leader(n->cluster, msg_new("all", frame, len));
}

static cJSON *room_op(const char *op, const char *room, const char *user)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "op", op);
    if (room)
        cJSON_AddStringToObject(m, "room", room);
    if (user)
        cJSON_AddStringToObject(m, "user", user);
    return m;
}

/* A change of this node's share: counted even when it cannot be sent, so
 * the leader's copy no longer matches and is sent whole at the next link. */
static cJSON *share_op(node_cluster_t *cl, const char *op, const char *room, const char *user)
{
    cJSON *m = room_op(op, room, user);
    if (cl)
        cJSON_AddNumberToObject(m, "sv", (double)++cl->share_ver);
    return m;
}

void node_cluster_room_join(node_t *n, const char *room, const char *user, node_cluster_cb cb,
                            void *ud)
{
    node_cluster_t *cl = n->cluster;
    if (cb) {
        call_leader(n, share_op(cl, "rjoin", room, user), cb, ud);
        return;
    }
    if (!cl)
        return;
    cJSON *m = share_op(cl, "rjoin", room, user);
    /* a notice (the automatic world join): re-announced by rsync if lost */
    if (cl->is_leader) {
        node_croom_join(cl->rooms, room, user, n->cfg.id);
    } else if (up_ready(cl)) {
        cJSON_AddStringToObject(m, "t", "rjoin");
        link_send_json(cl->up, m);
        return; /* consumed */
    }
    cJSON_Delete(m);
}

void node_cluster_room_leave(node_t *n, const char *room, const char *user)
{
    node_cluster_t *cl = n->cluster;
    if (!cl)
        return;
    cJSON *m = share_op(cl, "rleave", room, user);
    if (cl->is_leader) {
        node_croom_leave(cl->rooms, room, user, n->cfg.id);
    } else if (up_ready(cl)) {
        cJSON_AddStringToObject(m, "t", "rleave");
        link_send_json(cl->up, m);
        return; /* consumed */
    }
    cJSON_Delete(m);
}

void node_cluster_room_members(node_t *n, const char *room, node_cluster_cb cb, void *ud)
{
    call_leader(n, room_op("rmembers", room, NULL), cb, ud);
}

void node_cluster_room_counts(node_t *n, const char *const *rooms, size_t count,
                              node_cluster_cb cb, void *ud)
{
    cJSON *m = room_op("rcounts", NULL, NULL);
    cJSON *arr = cJSON_AddArrayToObject(m, "rooms");
    for (size_t i = 0; i < count; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(rooms[i]));
    call_leader(n, m, cb, ud);
}
