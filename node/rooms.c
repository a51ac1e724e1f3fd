/* Live room membership on this node: room -> the local sessions in it.
 * Each session also lists its rooms, so a disconnect leaves them all. */
#include <string.h>

#include "node/node.h"

struct node_room_entry {
    char room[PROTO_NAME_MAX + 1];
    node_room_link_t **members;
    size_t count;
    size_t cap;
    UT_hash_handle hh;
};

struct node_room_name {
    char room[PROTO_NAME_MAX + 1];
    UT_hash_handle hh;
};

static node_room_entry_t *room_find(node_t *n, const char *room)
{
    node_room_entry_t *e = NULL;
    HASH_FIND_STR(n->rooms, room, e);
    return e;
}

static node_room_entry_t *room_get(node_t *n, const char *room)
{
    node_room_entry_t *e = room_find(n, room);
    if (!e) {
        e = core_xcalloc(1, sizeof *e);
        core_copy_trunc(e->room, sizeof e->room, room);
        HASH_ADD_STR(n->rooms, room, e);
    }
    return e;
}

/* The session's link to e: its own list is short (the rooms it joined),
 * the room's may hold every session of the node. */
static node_room_link_t **link_find(node_sess_t *s, const node_room_entry_t *e)
{
    node_room_link_t **pp = &s->rooms;
    while (*pp && (*pp)->entry != e)
        pp = &(*pp)->next;
    return pp;
}

const char *node_rooms_link_name(const node_room_link_t *l)
{
    return l->entry->room;
}

int node_rooms_is_member(node_t *n, const char *room, const node_sess_t *s)
{
    node_room_entry_t *e = room_find(n, room);
    return e && *link_find((node_sess_t *)s, e) != NULL;
}

int node_rooms_join(node_t *n, const char *room, node_sess_t *s)
{
    if (!node_sess_live(s))
        return PROTO_UNAVAILABLE; /* a session that has gone must never be listed */
    node_room_entry_t *e = room_get(n, room);
    if (*link_find(s, e))
        return PROTO_CONFLICT;
    if (e->count == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 8;
        e->members = core_xrealloc(e->members, e->cap * sizeof *e->members);
    }
    node_room_link_t *l = core_xmalloc(sizeof *l);
    *l = (node_room_link_t){.next = s->rooms, .sess = s, .entry = e, .idx = e->count};
    e->members[e->count++] = l;
    s->rooms = l;
    return 0;
}

/* Takes l out of its room (the last member moves into its place) and
 * frees it; the room goes with its last member. l is off the session's
 * list already. */
static void link_drop(node_t *n, node_room_link_t *l)
{
    node_room_entry_t *e = l->entry;
    node_room_link_t *last = e->members[--e->count];
    e->members[l->idx] = last;
    last->idx = l->idx;
    free(l);
    if (e->count == 0) {
        HASH_DEL(n->rooms, e);
        free(e->members);
        free(e);
    }
}

int node_rooms_leave_local(node_t *n, const char *room, node_sess_t *s)
{
    node_room_entry_t *e = room_find(n, room);
    node_room_link_t **pp = e ? link_find(s, e) : NULL;
    if (!pp || !*pp)
        return PROTO_NOT_FOUND;
    node_room_link_t *l = *pp;
    *pp = l->next;
    link_drop(n, l);
    return 0;
}

int node_rooms_leave(node_t *n, const char *room, node_sess_t *s)
{
    int rc = node_rooms_leave_local(n, room, s);
    if (rc == 0)
        node_cluster_room_leave(n, room, s->user);
    return rc;
}

void node_rooms_leave_all(node_t *n, node_sess_t *s)
{
    while (s->rooms) {
        node_room_link_t *l = s->rooms;
        s->rooms = l->next;
        node_cluster_room_leave(n, l->entry->room, s->user);
        link_drop(n, l);
    }
}

size_t node_rooms_count(node_t *n, const char *room)
{
    node_room_entry_t *e = room_find(n, room);
    return e ? e->count : 0;
}

size_t node_rooms_members(node_t *n, const char *room, const char **out, size_t max)
{
    node_room_entry_t *e = room_find(n, room);
    size_t k = 0;
    for (size_t i = 0; e && i < e->count && k < max; i++)
        out[k++] = e->members[i]->sess->user;
    return k;
}

void node_rooms_each(node_t *n, const char *room, void (*fn)(node_sess_t *, void *), void *ud)
{
    node_room_entry_t *e = room_find(n, room);
    if (!e)
        return;
    /* fn may not change membership (it only queues frames) */
    for (size_t i = 0; i < e->count; i++)
        fn(e->members[i]->sess, ud);
}

node_sess_t **node_rooms_snapshot(node_t *n, const char *room, size_t *count)
{
    node_room_entry_t *e = room_find(n, room);
    *count = e ? e->count : 0;
    if (*count == 0)
        return NULL;
    node_sess_t **out = core_xmalloc(*count * sizeof *out);
    for (size_t i = 0; i < *count; i++)
        out[i] = node_sess_ref(e->members[i]->sess);
    return out;
}

int node_rooms_known(node_t *n, const char *room)
{
    node_room_name_t *r = NULL;
    HASH_FIND_STR(n->room_names, room, r);
    return r != NULL;
}

void node_rooms_remember(node_t *n, const char *room)
{
    if (node_rooms_known(n, room))
        return;
    node_room_name_t *r = core_xcalloc(1, sizeof *r);
    core_copy_trunc(r->room, sizeof r->room, room);
    HASH_ADD_STR(n->room_names, room, r);
}

void node_rooms_free_all(node_t *n)
{
    node_room_entry_t *e, *etmp;
    HASH_ITER(hh, n->rooms, e, etmp) {
        HASH_DEL(n->rooms, e);
        for (size_t i = 0; i < e->count; i++) { /* sessions still open at exit */
            e->members[i]->sess->rooms = NULL;
            free(e->members[i]);
        }
        free(e->members);
        free(e);
    }
    node_room_name_t *r, *rtmp;
    HASH_ITER(hh, n->room_names, r, rtmp) {
        HASH_DEL(n->room_names, r);
        free(r);
    }
}
