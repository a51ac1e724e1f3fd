/* The leader's live room membership: room -> user -> node, plus a count of
 * members per node so a room message costs one copy per node, not one
 * lookup per member. */
#include <stddef.h>
#include <stdlib.h>
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

typedef struct croom_room {
    char room[PROTO_NAME_MAX + 1];
    core_strtab_t users;        /* croom_user_t by name: gives slots back as it shrinks */
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
    croom_node_t *nd, *nt;
    core_strtab_free_all(&r->users);
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
        core_copy_trunc(nd->node, sizeof nd->node, node);
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
        core_copy_trunc(r->room, sizeof r->room, room);
        core_strtab_init(&r->users, offsetof(croom_user_t, user));
        HASH_ADD_STR(t->rooms, room, r);
    }
    croom_user_t *u = core_strtab_find(&r->users, user);
    if (u && strcmp(u->nd->node, node) == 0)
        return PROTO_CONFLICT;
    if (u) {
        node_unref(r, u->nd);
    } else {
        size_t len = strnlen(user, PROTO_NAME_MAX);
        u = core_xcalloc(1, sizeof *u + len + 1);
        memcpy(u->user, user, len);
        core_strtab_add(&r->users, u);
    }
    u->nd = node_ref(r, node);
    return 0;
}

/* Returns 1 when that freed the room (its last member). */
static int user_remove(node_croom_t *t, croom_room_t *r, croom_user_t *u)
{
    node_unref(r, u->nd);
    core_strtab_remove(&r->users, u);
    free(u);
    if (r->users.count > 0)
        return 0;
    room_free(t, r);
    return 1;
}

void node_croom_leave(node_croom_t *t, const char *room, const char *user, const char *node)
{
    croom_room_t *r = room_find(t, room);
    croom_user_t *u = r ? core_strtab_find(&r->users, user) : NULL;
    if (u && (!node || strcmp(u->nd->node, node) == 0) && !user_remove(t, r, u))
        core_strtab_fit(&r->users);
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
            core_strtab_fit(&r->users);
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
            fn(((const croom_user_t *)r->users.slots[i])->user, ud);
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
