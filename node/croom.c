/* The leader's live room membership: room -> user -> node, plus a count of
 * members per node so a room message costs one copy per node, not one
 * lookup per member. */
#include <string.h>

#include "node/node.h"

typedef struct croom_node {
    char node[64];
    size_t members;
    UT_hash_handle hh;
} croom_node_t;

/* One per member of every room (the world room: every user online), so
 * small: its node is shared, its name sized to fit, and it sits in an
 * open-addressing table of pointers (a hash handle would add 56 bytes). */
typedef struct croom_user {
    croom_node_t *nd;
    char user[];
} croom_user_t;

/* Linear probing, at most 3/4 full; removal shifts entries back, so no
 * tombstones. cap is 0 or a power of two, at least 1/8 used once past
 * the smallest (a room that shrank gives its slots back). */
typedef struct croom_users {
    croom_user_t **slots;
    size_t cap;
    size_t count;
} croom_users_t;

typedef struct croom_room {
    char room[PROTO_NAME_MAX + 1];
    croom_users_t users;
    croom_node_t *nodes;
    UT_hash_handle hh;
} croom_room_t;

static size_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211u;
    return (size_t)(h ^ (h >> 29));
}

/* The slot holding user, or the empty slot where it would go. */
static size_t users_slot(const croom_users_t *us, const char *user)
{
    size_t mask = us->cap - 1, i = name_hash(user) & mask;
    while (us->slots[i] && strcmp(us->slots[i]->user, user) != 0)
        i = (i + 1) & mask;
    return i;
}

static croom_user_t *users_find(const croom_users_t *us, const char *user)
{
    return us->cap ? us->slots[users_slot(us, user)] : NULL;
}

#define USERS_MIN_CAP 16

static void users_resize(croom_users_t *us, size_t cap)
{
    croom_users_t to = {NULL, cap, us->count};
    to.slots = core_xcalloc(to.cap, sizeof *to.slots);
    for (size_t i = 0; i < us->cap; i++)
        if (us->slots[i])
            to.slots[users_slot(&to, us->slots[i]->user)] = us->slots[i];
    free(us->slots);
    *us = to;
}

static void users_grow(croom_users_t *us)
{
    users_resize(us, us->cap ? us->cap * 2 : USERS_MIN_CAP);
}

/* After removals: halves while under 1/8 full, so growing again (at 3/4)
 * is far off. Not while someone walks the slots. */
static void users_fit(croom_users_t *us)
{
    size_t cap = us->cap;
    while (cap > USERS_MIN_CAP && us->count * 8 < cap)
        cap /= 2;
    if (cap != us->cap)
        users_resize(us, cap);
}

/* u's name is not in the table yet. */
static void users_add(croom_users_t *us, croom_user_t *u)
{
    if ((us->count + 1) * 4 > us->cap * 3)
        users_grow(us);
    us->slots[users_slot(us, u->user)] = u;
    us->count++;
}

/* Takes u out; entries after it that probed past its slot move back. */
static void users_remove(croom_users_t *us, const croom_user_t *u)
{
    size_t mask = us->cap - 1, hole = users_slot(us, u->user);
    us->slots[hole] = NULL;
    us->count--;
    for (size_t i = (hole + 1) & mask; us->slots[i]; i = (i + 1) & mask) {
        size_t home = name_hash(us->slots[i]->user) & mask;
        /* it may fill the hole when its home is not in (hole, i] */
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            us->slots[hole] = us->slots[i];
            us->slots[i] = NULL;
            hole = i;
        }
    }
}

struct node_croom {
    croom_room_t *rooms;
};

node_croom_t *node_croom_new(void)
{
    return core_xcalloc(1, sizeof(node_croom_t));
}

static croom_room_t *room_find(const node_croom_t *t, const char *room)
{
    croom_room_t *r = NULL;
    HASH_FIND_STR(t->rooms, room, r);
    return r;
}

static void room_free(node_croom_t *t, croom_room_t *r)
{
    croom_node_t *nd, *nt;
    for (size_t i = 0; i < r->users.cap; i++)
        free(r->users.slots[i]);
    free(r->users.slots);
    HASH_ITER(hh, r->nodes, nd, nt) {
        HASH_DEL(r->nodes, nd);
        free(nd);
    }
    HASH_DEL(t->rooms, r);
    free(r);
}

void node_croom_free(node_croom_t *t)
{
    if (!t)
        return;
    croom_room_t *r, *tmp;
    HASH_ITER(hh, t->rooms, r, tmp)
        room_free(t, r);
    free(t);
}

static croom_node_t *node_ref(croom_room_t *r, const char *node)
{
    croom_node_t *nd = NULL;
    HASH_FIND_STR(r->nodes, node, nd);
    if (!nd) {
        nd = core_xcalloc(1, sizeof *nd);
        snprintf(nd->node, sizeof nd->node, "%s", node);
        HASH_ADD_STR(r->nodes, node, nd);
    }
    nd->members++;
    return nd;
}

static void node_unref(croom_room_t *r, croom_node_t *nd)
{
    if (--nd->members == 0) {
        HASH_DEL(r->nodes, nd);
        free(nd);
    }
}

int node_croom_join(node_croom_t *t, const char *room, const char *user, const char *node)
{
    croom_room_t *r = room_find(t, room);
    if (!r) {
        r = core_xcalloc(1, sizeof *r);
        snprintf(r->room, sizeof r->room, "%s", room);
        HASH_ADD_STR(t->rooms, room, r);
    }
    croom_user_t *u = users_find(&r->users, user);
    if (u && strcmp(u->nd->node, node) == 0)
        return PROTO_CONFLICT;
    if (u) {
        node_unref(r, u->nd);
    } else {
        size_t len = strnlen(user, PROTO_NAME_MAX);
        u = core_xcalloc(1, sizeof *u + len + 1);
        memcpy(u->user, user, len);
        users_add(&r->users, u);
    }
    u->nd = node_ref(r, node);
    return 0;
}

/* Returns 1 when that freed the room (its last member). */
static int user_remove(node_croom_t *t, croom_room_t *r, croom_user_t *u)
{
    node_unref(r, u->nd);
    users_remove(&r->users, u);
    free(u);
    if (r->users.count > 0)
        return 0;
    room_free(t, r);
    return 1;
}

void node_croom_leave(node_croom_t *t, const char *room, const char *user, const char *node)
{
    croom_room_t *r = room_find(t, room);
    croom_user_t *u = r ? users_find(&r->users, user) : NULL;
    if (u && (!node || strcmp(u->nd->node, node) == 0) && !user_remove(t, r, u))
        users_fit(&r->users);
}

void node_croom_drop_node(node_croom_t *t, const char *node)
{
    croom_room_t *r, *rt;
    HASH_ITER(hh, t->rooms, r, rt) {
        croom_node_t *nd = NULL;
        HASH_FIND_STR(r->nodes, node, nd);
        if (!nd)
            continue;
        /* removal moves entries back into the slot just emptied: look at
         * it again; user_remove frees the room with its last member */
        size_t gone = nd->members, i = 0;
        int freed = 0;
        while (gone && i < r->users.cap) {
            croom_user_t *u = r->users.slots[i];
            if (u && u->nd == nd) {
                gone--;
                freed = user_remove(t, r, u);
            } else {
                i++;
            }
        }
        if (!freed)
            users_fit(&r->users);
    }
}

size_t node_croom_count(const node_croom_t *t, const char *room)
{
    croom_room_t *r = room_find(t, room);
    return r ? r->users.count : 0;
}

size_t node_croom_slots(const node_croom_t *t, const char *room)
{
    croom_room_t *r = room_find(t, room);
    return r ? r->users.cap : 0;
}

void node_croom_each_user(const node_croom_t *t, const char *room,
                          void (*fn)(const char *user, void *ud), void *ud)
{
    croom_room_t *r = room_find(t, room);
    for (size_t i = 0; r && i < r->users.cap; i++)
        if (r->users.slots[i])
            fn(r->users.slots[i]->user, ud);
}

void node_croom_each_node(const node_croom_t *t, const char *room,
                          void (*fn)(const char *node, void *ud), void *ud)
{
    croom_room_t *r = room_find(t, room);
    croom_node_t *nd, *nt;
    if (r)
        HASH_ITER(hh, r->nodes, nd, nt)
            fn(nd->node, ud);
}
