/* Live room membership on this node: room -> the local sessions in it.
 * Each session also lists its rooms, so a disconnect leaves them all. */
#include <string.h>

#include "node/node.h"

struct node_room_entry {
    char room[PROTO_NAME_MAX + 1];
    node_sess_t **members;
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
        snprintf(e->room, sizeof e->room, "%s", room);
        HASH_ADD_STR(n->rooms, room, e);
    }
    return e;
}

static ssize_t member_index(const node_room_entry_t *e, const node_sess_t *s)
{
    for (size_t i = 0; i < e->count; i++)
        if (e->members[i] == s)
            return (ssize_t)i;
    return -1;
}

int node_rooms_is_member(node_t *n, const char *room, const node_sess_t *s)
{
    node_room_entry_t *e = room_find(n, room);
    return e && member_index(e, s) >= 0;
}

int node_rooms_join(node_t *n, const char *room, node_sess_t *s)
{
    if (!node_sess_live(s))
        return PROTO_UNAVAILABLE; /* a session that has gone must never be listed */
    node_room_entry_t *e = room_get(n, room);
    if (member_index(e, s) >= 0)
        return PROTO_CONFLICT;
    if (e->count == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 8;
        e->members = core_xrealloc(e->members, e->cap * sizeof *e->members);
    }
    e->members[e->count++] = s;
    node_room_link_t *l = core_xcalloc(1, sizeof *l);
    snprintf(l->room, sizeof l->room, "%s", room);
    l->next = s->rooms;
    s->rooms = l;
    return 0;
}

static void entry_remove(node_t *n, node_room_entry_t *e, size_t i)
{
    e->members[i] = e->members[--e->count];
    if (e->count == 0) {
        HASH_DEL(n->rooms, e);
        free(e->members);
        free(e);
    }
}

static void link_remove(node_sess_t *s, const char *room)
{
    for (node_room_link_t **pp = &s->rooms; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->room, room) == 0) {
            node_room_link_t *dead = *pp;
            *pp = dead->next;
            free(dead);
            return;
        }
    }
}

int node_rooms_leave_local(node_t *n, const char *room, node_sess_t *s)
{
    node_room_entry_t *e = room_find(n, room);
    ssize_t i = e ? member_index(e, s) : -1;
    if (i < 0)
        return PROTO_NOT_FOUND;
    entry_remove(n, e, (size_t)i);
    link_remove(s, room);
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
        node_room_entry_t *e = room_find(n, l->room);
        ssize_t i = e ? member_index(e, s) : -1;
        if (i >= 0)
            entry_remove(n, e, (size_t)i);
        node_cluster_room_leave(n, l->room, s->user);
        s->rooms = l->next;
        free(l);
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
        out[k++] = e->members[i]->user;
    return k;
}

void node_rooms_each(node_t *n, const char *room, void (*fn)(node_sess_t *, void *), void *ud)
{
    node_room_entry_t *e = room_find(n, room);
    if (!e)
        return;
    /* fn may not change membership (it only queues frames) */
    for (size_t i = 0; i < e->count; i++)
        fn(e->members[i], ud);
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
    snprintf(r->room, sizeof r->room, "%s", room);
    HASH_ADD_STR(n->room_names, room, r);
}

void node_rooms_free_all(node_t *n)
{
    node_room_entry_t *e, *etmp;
    HASH_ITER(hh, n->rooms, e, etmp) {
        HASH_DEL(n->rooms, e);
        free(e->members);
        free(e);
    }
    node_room_name_t *r, *rtmp;
    HASH_ITER(hh, n->room_names, r, rtmp) {
        HASH_DEL(n->room_names, r);
        free(r);
    }
}
