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
 * small: its node is shared, its name sized to fit. */
typedef struct croom_user {
    croom_node_t *nd;
    UT_hash_handle hh;
    char user[];
} croom_user_t;

typedef struct croom_room {
    char room[PROTO_NAME_MAX + 1];
    croom_user_t *users;
    croom_node_t *nodes;
    UT_hash_handle hh;
} croom_room_t;

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
    croom_user_t *u, *ut;
    croom_node_t *nd, *nt;
    HASH_ITER(hh, r->users, u, ut) {
        HASH_DEL(r->users, u);
        free(u);
    }
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
    croom_user_t *u = NULL;
    HASH_FIND_STR(r->users, user, u);
    if (u && strcmp(u->nd->node, node) == 0)
        return PROTO_CONFLICT;
    if (u) {
        node_unref(r, u->nd);
    } else {
        size_t len = strnlen(user, PROTO_NAME_MAX);
        u = core_xcalloc(1, sizeof *u + len + 1);
        memcpy(u->user, user, len);
        HASH_ADD_STR(r->users, user, u);
    }
    u->nd = node_ref(r, node);
    return 0;
}

static void user_remove(node_croom_t *t, croom_room_t *r, croom_user_t *u)
{
    node_unref(r, u->nd);
    HASH_DEL(r->users, u);
    free(u);
    if (!r->users)
        room_free(t, r);
}

void node_croom_leave(node_croom_t *t, const char *room, const char *user, const char *node)
{
    croom_room_t *r = room_find(t, room);
    croom_user_t *u = NULL;
    if (r)
        HASH_FIND_STR(r->users, user, u);
    if (u && (!node || strcmp(u->nd->node, node) == 0))
        user_remove(t, r, u);
}

void node_croom_drop_node(node_croom_t *t, const char *node)
{
    croom_room_t *r, *rt;
    HASH_ITER(hh, t->rooms, r, rt) {
        croom_user_t *u, *ut;
        HASH_ITER(hh, r->users, u, ut) {
            if (strcmp(u->nd->node, node) == 0) {
                /* user_remove may free the room: stop once it is gone */
                int last = HASH_COUNT(r->users) == 1;
                user_remove(t, r, u);
                if (last)
                    break;
            }
        }
    }
}

size_t node_croom_count(const node_croom_t *t, const char *room)
{
    croom_room_t *r = room_find(t, room);
    return r ? HASH_COUNT(r->users) : 0;
}

void node_croom_each_user(const node_croom_t *t, const char *room,
                          void (*fn)(const char *user, void *ud), void *ud)
{
    croom_room_t *r = room_find(t, room);
    croom_user_t *u, *ut;
    if (r)
        HASH_ITER(hh, r->users, u, ut)
            fn(u->user, ud);
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
