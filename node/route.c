/* Where events go: a session on this node directly; a user on another node
 * through the cluster link, located by its global session in Redis (one
 * copy per node for many users); rooms and "all" through the leader. */
#include <stddef.h>
#include <string.h>
#include <utlist.h>

#include "node/node.h"

typedef struct settle_job {
    node_job_t job;
    char user[PROTO_NAME_MAX + 1];
    char msgid[PROTO_MSGID_LEN + 1];
} settle_job_t;

static void settle_work(store_t *st, void *arg)
{
    settle_job_t *j = arg;
    const char *ids[1] = {j->msgid};
    store_ackeds_t acked;
    j->job.rc = store_pending_ack(st, j->user, ids, 1, &acked);
    store_ackeds_free(&acked);
}

static void settle_done(void *arg)
{
    settle_job_t *j = arg;
    if (j->job.rc != STORE_OK) /* it comes again at the next login: at-least-once */
        CORE_WARN("could not settle pending %s of %s", j->msgid, j->user);
    free(j);
}

/* Friend events need no ack: the node that hands one to the session ends
 * its pending item (act_friends.c stored it before routing). */
static void settle_read_once(node_t *n, const char *user, const char *frame, size_t len)
{
    static const char kind[] = "{\"event\":\"friend_", key[] = "\"msgid\":\"";
    if (len < sizeof kind || memcmp(frame, kind, sizeof kind - 1) != 0)
        return;
    const char *p = strstr(frame, key);
    if (!p || !proto_msgid_valid(p + sizeof key - 1, PROTO_MSGID_LEN) ||
        p[sizeof key - 1 + PROTO_MSGID_LEN] != '"')
        return;
    settle_job_t *j = core_xcalloc(1, sizeof *j);
    core_copy_trunc(j->user, sizeof j->user, user);
    memcpy(j->msgid, p + sizeof key - 1, PROTO_MSGID_LEN);
    node_job_submit(n, &j->job, settle_work, settle_done);
}

int node_route_local(node_t *n, const char *user, const char *frame, size_t len)
{
    node_sess_t *s = node_sess_find(n, user);
    if (!s || !node_sess_live(s))
        return 0;
    node_sess_send(s, frame, len);
    settle_read_once(n, user, frame, len);
    return 1;
}

/* ------------------------------------------------------------------ one user */

typedef struct user_route {
    node_route_cb cb;
    void *ud;
    char user[PROTO_NAME_MAX + 1];
    size_t len;
    char frame[];
} user_route_t;

static void user_located(node_t *n, const node_loc_t *locs, size_t count, void *ud)
{
    user_route_t *u = ud;
    int delivered = 0;
    node_presence_cache_locating(n, u->user, -1);
    if (locs && count == 1 && locs[0].online) {
        if (strcmp(locs[0].node, n->cfg.id) == 0) {
            delivered = node_route_local(n, u->user, u->frame, u->len);
        } else {
            const char *users[1] = {u->user};
            node_cluster_deliver(n, locs[0].node, users, 1, u->frame, u->len, 0);
            node_presence_cache_put(n, u->user, locs[0].node);
            delivered = 1;
        }
    }
    if (u->cb)
        u->cb(n, delivered, u->ud);
    free(u);
}

/* Through the location cache: 1 when handed to the cached node. */
static int route_cached(node_t *n, const char *user, const char *frame, size_t len)
{
    const char *node_id = node_presence_cached(n, user);
    if (!node_id)
        return 0;
    if (!node_cluster_is_member(n, node_id) || !node_cluster_linked(n)) {
        node_presence_cache_drop(n, user);
        return 0;
    }
    const char *users[1] = {user};
    node_cluster_deliver(n, node_id, users, 1, frame, len, 1);
    return 1;
}

static void route_user(node_t *n, const char *user, const char *frame, size_t len,
                       node_route_cb cb, void *ud, int use_cache)
{
    int here = node_route_local(n, user, frame, len);
    int sent = !here && n->cfg.zk[0] && use_cache && route_cached(n, user, frame, len);
    if (here || sent || !n->cfg.zk[0]) {
        if (cb)
            cb(n, here || sent, ud);
        return;
    }
    user_route_t *u = core_xmalloc(sizeof *u + len + 1);
    u->cb = cb;
    u->ud = ud;
    core_copy_trunc(u->user, sizeof u->user, user);
    u->len = len;
    memcpy(u->frame, frame, len);
    u->frame[len] = '\0';
    n->metrics.locates_total++;
    node_presence_cache_locating(n, user, +1);
    node_presence_locate(n, (const char *const *)&user, 1, user_located, u);
}

void node_route_user(node_t *n, const char *user, const char *frame, size_t len,
                     node_route_cb cb, void *ud)
{
    route_user(n, user, frame, len, cb, ud, 1);
}

void node_route_user_located(node_t *n, const char *user, const char *frame, size_t len)
{
    route_user(n, user, frame, len, NULL, NULL, 0);
}

/* ------------------------------------------------------------------ many users (groups) */

typedef struct users_route {
    char **users;
    size_t count;
    size_t len;
    char frame[];
} users_route_t;

static void users_route_free(users_route_t *u)
{
    for (size_t i = 0; i < u->count; i++)
        free(u->users[i]);
    free(u->users);
    free(u);
}

/* One copy per node: the users located on each node travel together. */
static void users_located(node_t *n, const node_loc_t *locs, size_t count, void *ud)
{
    users_route_t *u = ud;
    const char **batch = core_xcalloc(count + 1, sizeof *batch);
    char *done = core_xcalloc(count + 1, 1);
    for (size_t i = 0; locs && i < count; i++) {
        if (done[i] || !locs[i].online || strcmp(locs[i].node, n->cfg.id) == 0)
            continue;
        size_t k = 0;
        for (size_t j = i; j < count; j++) {
            if (!done[j] && locs[j].online && strcmp(locs[j].node, locs[i].node) == 0) {
                batch[k++] = u->users[j];
                done[j] = 1;
            }
        }
        node_cluster_deliver(n, locs[i].node, batch, k, u->frame, u->len, 0);
    }
    free(done);
    free(batch);
    users_route_free(u);
}

void node_route_users(node_t *n, const char *const *users, size_t count, const char *except,
                      const char *frame, size_t len)
{
    users_route_t *u = core_xmalloc(sizeof *u + len + 1);
    u->users = core_xcalloc(count + 1, sizeof *u->users);
    u->count = 0;
    u->len = len;
    memcpy(u->frame, frame, len);
    u->frame[len] = '\0';
    for (size_t i = 0; i < count; i++) {
        if (except && strcmp(users[i], except) == 0)
            continue;
        if (!node_route_local(n, users[i], frame, len) && n->cfg.zk[0])
            u->users[u->count++] = core_xstrdup(users[i]);
    }
    if (u->count == 0) {
        users_route_free(u);
        return;
    }
    node_presence_locate(n, (const char *const *)u->users, u->count, users_located, u);
}

typedef struct fanout {
    const char *except;
    const char *frame;
    size_t len;
} fanout_t;

/* A room's frame skips its sender (except: NULL or "" skips no one). */
static void send_unless(node_sess_t *s, const char *except, const char *frame, size_t len)
{
    if (!except || !except[0] || strcmp(s->user, except) != 0)
        node_sess_send(s, frame, len);
}

static void fanout_one(node_sess_t *s, void *ud)
{
    fanout_t *f = ud;
    send_unless(s, f->except, f->frame, f->len);
}

static void bcast_queue(node_t *n, const char *room, const char *except, const char *frame,
                        size_t len);
static int bcast_has_room(node_t *n, const char *room);

/* A room with more local members than a slice goes out in slices, like a
 * broadcast; so does any message of a room that has one under way, which
 * keeps a room's messages in order. */
void node_route_room_local(node_t *n, const char *room, const char *except, const char *frame,
                           size_t len)
{
    size_t members = node_rooms_count(n, room);
    if (members == 0)
        return;
    if (members > n->cfg.fanout_slice || bcast_has_room(n, room)) {
        bcast_queue(n, room, except, frame, len);
        return;
    }
    fanout_t f = {except, frame, len};
    node_rooms_each(n, room, fanout_one, &f);
}

void node_route_room(node_t *n, const char *room, const char *except, const char *frame,
                     size_t len)
{
    node_route_room_local(n, room, except, frame, len);
    node_cluster_room(n, room, except, frame, len);
}

/* ------------------------------------------------------------------ in slices */

/* A frame for every local session, or for every local member of a big
 * room, goes out cfg.fanout_slice sessions per loop turn: one send() per
 * connection is ~15 us, so 18k connections in one turn is ~0.3 s of CPU
 * (seconds of wall time on a loaded box) in which this loop answers no
 * cluster ping, Redis reply or client. Later ones queue behind (in order);
 * frames for the same target that arrive before its walk starts share it,
 * so a session gets them in one write. Order holds within a target (a room,
 * or everyone), not across them: another event may reach a session before
 * one that was queued earlier. */
typedef struct bcast_part {
    size_t off, len;
    char except[PROTO_NAME_MAX + 1]; /* this user does not get it ("" : all do) */
} bcast_part_t;

typedef struct node_bcast {
    struct node_bcast *next;
    char room[PROTO_NAME_MAX + 1]; /* "" : every session */
    core_buf_t frames;
    bcast_part_t *parts;
    size_t nparts, cap;
    node_sess_t **members; /* a room's members when its walk started, referenced */
    size_t count, at;
    int started;
} node_bcast_t;

/* The newest broadcast queued for each target: a room's next message
 * finds in one lookup whether it must queue behind one, and joins it when
 * its walk has not started. */
static core_strtab_t *bcast_index(node_t *n)
{
    if (!n->bcast_newest.key_off) /* first use */
        core_strtab_init(&n->bcast_newest, offsetof(node_bcast_t, room));
    return &n->bcast_newest;
}

static int bcast_has_room(node_t *n, const char *room)
{
    return core_strtab_find(bcast_index(n), room) != NULL;
}

static void bcast_pop(node_t *n)
{
    node_bcast_t *b = n->bcast_head;
    n->bcast_head = b->next;
    if (!n->bcast_head)
        n->bcast_tail = NULL;
    core_strtab_t *index = bcast_index(n);
    if (core_strtab_find(index, b->room) == b) { /* else a newer one for its target waits */
        core_strtab_remove(index, b);
        core_strtab_fit(index);
    }
    n->bcast_bytes -= b->frames.len;
    while (b->at < b->count)
        node_sess_unref(b->members[b->at++]);
    free(b->members);
    free(b->parts);
    core_buf_free(&b->frames);
    free(b);
}

static void bcast_stop(node_t *n)
{
    ev_check_stop(n->loop, &n->bcast_check);
    ev_idle_stop(n->loop, &n->bcast_idle);
}

static void bcast_send(node_sess_t *s, const node_bcast_t *b)
{
    for (size_t i = 0; i < b->nparts; i++)
        send_unless(s, b->parts[i].except, b->frames.data + b->parts[i].off, b->parts[i].len);
}

static void bcast_start(node_t *n, node_bcast_t *b)
{
    b->started = 1;
    if (b->room[0])
        b->members = node_rooms_snapshot(n, b->room, &b->count);
    else
        n->bcast_next = n->sess_first;
}

/* Walks b with at most budget sessions; returns what is left of it. */
static size_t bcast_walk(node_t *n, node_bcast_t *b, size_t budget)
{
    if (b->room[0]) {
        for (; b->at < b->count && budget; budget--) {
            node_sess_t *s = b->members[b->at++];
            if (node_sess_live(s) && node_rooms_is_member(n, b->room, s))
                bcast_send(s, b); /* still in the room: it may have left meanwhile */
            node_sess_unref(s);
        }
        return budget;
    }
    while (n->bcast_next && budget) {
        node_sess_t *s = n->bcast_next;
        n->bcast_next = s->next;
        if (node_sess_live(s)) {
            bcast_send(s, b);
            budget--;
        }
    }
    return budget;
}

static int bcast_done(const node_t *n, const node_bcast_t *b)
{
    return b->room[0] ? b->at == b->count : n->bcast_next == NULL;
}

static void on_bcast_check(struct ev_loop *loop, ev_check *w, int revents)
{
    (void)loop;
    (void)revents;
    node_t *n = w->data;
    size_t budget = n->cfg.fanout_slice;
    while (n->bcast_head && budget) {
        node_bcast_t *b = n->bcast_head;
        if (!b->started)
            bcast_start(n, b);
        budget = bcast_walk(n, b, budget);
        if (bcast_done(n, b))
            bcast_pop(n);
    }
    if (!n->bcast_head)
        bcast_stop(n);
}

static void on_bcast_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents; /* only keeps the loop from sleeping while a broadcast is under way */
}

static node_bcast_t *bcast_target(node_t *n, const char *room)
{
    core_strtab_t *index = bcast_index(n);
    node_bcast_t *b = core_strtab_find(index, room);
    if (b && !b->started)
        return b; /* not walked yet: the new frame shares its walk */
    if (b)
        core_strtab_remove(index, b);
    b = core_xcalloc(1, sizeof *b);
    core_copy_trunc(b->room, sizeof b->room, room);
    core_strtab_add(index, b);
    core_buf_init(&b->frames);
    if (n->bcast_tail)
        n->bcast_tail->next = b;
    else
        n->bcast_head = b;
    n->bcast_tail = b;
    if (b->room[0])
        n->metrics.room_slices_total++;
    return b;
}

/* Bytes of frames waiting or under way are bounded by
 * cfg.bcast_queue_max: a flood of pushes to everyone (or to a big room) on
 * an overloaded node drops the newest, never grows memory. */
static void bcast_queue(node_t *n, const char *room, const char *except, const char *frame,
                        size_t len)
{
    if (n->bcast_bytes + len > n->cfg.bcast_queue_max) {
        n->metrics.bcast_dropped_total++;
        CORE_WARN("route: %zu bytes of broadcasts under way: dropping one of %zu%s%s",
                  n->bcast_bytes, len, room[0] ? " to room " : "", room);
        return;
    }
    node_bcast_t *b = bcast_target(n, room);
    if (b->nparts == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 4;
        b->parts = core_xrealloc(b->parts, b->cap * sizeof *b->parts);
    }
    bcast_part_t *p = &b->parts[b->nparts++];
    p->off = b->frames.len;
    p->len = len;
    core_copy_trunc(p->except, sizeof p->except, except ? except : "");
    core_buf_append(&b->frames, frame, len);
    n->bcast_bytes += len;
    if (!ev_is_active(&n->bcast_check)) {
        ev_check_init(&n->bcast_check, on_bcast_check);
        n->bcast_check.data = n;
        ev_idle_init(&n->bcast_idle, on_bcast_idle);
        ev_check_start(n->loop, &n->bcast_check);
        ev_idle_start(n->loop, &n->bcast_idle);
    }
}

void node_route_all_local(node_t *n, const char *frame, size_t len)
{
    bcast_queue(n, "", NULL, frame, len);
}

void node_route_sess_add(node_t *n, node_sess_t *s)
{
    core_strtab_add(&n->sessions, s);
    DL_PREPEND(n->sess_first, s);
}

void node_route_sess_remove(node_t *n, node_sess_t *s)
{
    if (n->bcast_next == s)
        n->bcast_next = s->next;
    core_strtab_remove(&n->sessions, s);
    core_strtab_fit(&n->sessions);
    DL_DELETE(n->sess_first, s);
    s->next = s->prev = NULL;
}

void node_route_bcast_free(node_t *n)
{
    bcast_stop(n);
    while (n->bcast_head)
        bcast_pop(n);
    core_strtab_free(&n->bcast_newest);
}

void node_route_all(node_t *n, const char *frame, size_t len)
{
    node_route_all_local(n, frame, len);
    node_cluster_all(n, frame, len);
}

void node_route_kick_session(node_t *n, node_sess_t *s)
{
    size_t len = 0;
    char *frame = node_event_frame("kicked", proto_ev_kicked("login elsewhere"), &len);
    node_sess_send(s, frame, len);
    free(frame);
    s->kicked = 1;
    node_presence_unlist(n, s);
    node_route_sess_remove(n, s);
    node_rooms_leave_all(n, s);
    node_sess_close(s, CORE_WS_POLICY, "login elsewhere");
}

void node_route_kick(node_t *n, const char *user, node_sess_t *keep)
{
    node_sess_t *s = node_sess_find(n, user);
    if (s && s != keep)
        node_route_kick_session(n, s);
}
