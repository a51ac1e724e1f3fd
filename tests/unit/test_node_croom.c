/* node/croom.c: the leader's room table (room -> user -> node). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "node/node.h"

typedef struct seen {
    char buf[256];
    int n;
} seen_t;

static void collect(const char *name, void *ud)
{
    seen_t *s = ud;
    s->n++;
    strcat(s->buf, name);
    strcat(s->buf, "|");
}

static int nodes_of(node_croom_t *t, const char *room)
{
    seen_t s = {"", 0};
    node_croom_each_node(t, room, collect, &s);
    return s.n;
}

static void test_join_count_conflict(void **state)
{
    (void)state;
    node_croom_t *t = node_croom_new();
    assert_int_equal(node_croom_join(t, "r", "alice", "n1"), 0);
    assert_int_equal(node_croom_join(t, "r", "bob", "n2"), 0);
    assert_int_equal(node_croom_join(t, "r", "alice", "n1"), PROTO_CONFLICT);
    assert_int_equal(node_croom_count(t, "r"), 2);
    assert_int_equal(node_croom_count(t, "other"), 0);
    assert_int_equal(nodes_of(t, "r"), 2);
    node_croom_free(t);
}

static void test_join_elsewhere_moves_user(void **state)
{
    (void)state;
    node_croom_t *t = node_croom_new();
    node_croom_join(t, "r", "alice", "n1");
    assert_int_equal(node_croom_join(t, "r", "alice", "n2"), 0);
    assert_int_equal(node_croom_count(t, "r"), 1);
    seen_t s = {"", 0};
    node_croom_each_node(t, "r", collect, &s);
    assert_string_equal(s.buf, "n2|");
    /* a late leave from the old node must not remove the new membership */
    node_croom_leave(t, "r", "alice", "n1");
    assert_int_equal(node_croom_count(t, "r"), 1);
    node_croom_leave(t, "r", "alice", "n2");
    assert_int_equal(node_croom_count(t, "r"), 0);
    node_croom_free(t);
}

static void test_node_counts_follow_members(void **state)
{
    (void)state;
    node_croom_t *t = node_croom_new();
    node_croom_join(t, "r", "a", "n1");
    node_croom_join(t, "r", "b", "n1");
    node_croom_join(t, "r", "c", "n2");
    node_croom_leave(t, "r", "a", NULL);
    assert_int_equal(nodes_of(t, "r"), 2);
    node_croom_leave(t, "r", "b", NULL);
    assert_int_equal(nodes_of(t, "r"), 1);
    node_croom_free(t);
}

static void test_drop_node(void **state)
{
    (void)state;
    node_croom_t *t = node_croom_new();
    node_croom_join(t, "r1", "a", "n1");
    node_croom_join(t, "r1", "b", "n2");
    node_croom_join(t, "r2", "c", "n1");
    node_croom_join(t, "r2", "d", "n1");
    node_croom_drop_node(t, "n1");
    assert_int_equal(node_croom_count(t, "r1"), 1);
    assert_int_equal(node_croom_count(t, "r2"), 0);
    seen_t s = {"", 0};
    node_croom_each_user(t, "r1", collect, &s);
    assert_string_equal(s.buf, "b|");
    assert_int_equal(nodes_of(t, "r2"), 0);
    node_croom_free(t);
}

static void test_many_members(void **state)
{
    (void)state;
    node_croom_t *t = node_croom_new();
    char user[32], node[16];
    for (int i = 0; i < 5000; i++) {
        snprintf(user, sizeof user, "u%d", i);
        snprintf(node, sizeof node, "n%d", i % 3);
        assert_int_equal(node_croom_join(t, "big", user, node), 0);
    }
    assert_int_equal(node_croom_count(t, "big"), 5000);
    assert_int_equal(nodes_of(t, "big"), 3);
    node_croom_drop_node(t, "n0");
    assert_int_equal(node_croom_count(t, "big"), 3333);
    node_croom_free(t);
}

#define CHURN_USERS 3000

typedef struct churn_seen {
    const int *where; /* node per user, -1: not a member */
    int n, wrong;
} churn_seen_t;

static void churn_check_one(const char *name, void *ud)
{
    churn_seen_t *c = ud;
    int i = atoi(name + 1);
    c->n++;
    if (i < 0 || i >= CHURN_USERS || c->where[i] < 0)
        c->wrong++;
}

/* Slots for members: none for an empty room, else at most 3/4 and, past
 * the smallest table, at least 1/8 used. */
static int slots_fit(size_t slots, size_t members)
{
    if (members == 0)
        return slots == 0;
    return members * 4 <= slots * 3 && (slots == 16 || members * 8 >= slots);
}

/* A room that grew and emptied gives its slots back, by leaves and by a
 * node's departure, and every remaining member is still found. */
static void test_shrinks_after_mass_leaves(void **state)
{
    (void)state;
    node_croom_t *t = node_croom_new();
    char user[16];
    for (int i = 0; i < 100000; i++) {
        snprintf(user, sizeof user, "s%d", i);
        assert_int_equal(node_croom_join(t, "big", user, i < 50000 ? "n1" : "n2"), 0);
    }
    assert_int_equal(node_croom_slots(t, "big"), 262144);
    node_croom_drop_node(t, "n1");
    assert_int_equal(node_croom_count(t, "big"), 50000);
    assert_true(slots_fit(node_croom_slots(t, "big"), 50000));
    for (int i = 50000; i < 99900; i++) {
        snprintf(user, sizeof user, "s%d", i);
        node_croom_leave(t, "big", user, NULL);
    }
    assert_int_equal(node_croom_count(t, "big"), 100);
    assert_int_equal(node_croom_slots(t, "big"), 512);
    for (int i = 99900; i < 100000; i++) {
        snprintf(user, sizeof user, "s%d", i);
        assert_int_equal(node_croom_join(t, "big", user, "n2"), PROTO_CONFLICT);
    }
    node_croom_free(t);
}

/* The table against a plain array through joins, moves, leaves and node
 * drops: removal shifts entries back, which a wrong probe would lose. */
static void test_churn_matches_reference(void **state)
{
    (void)state;
    node_croom_t *t = node_croom_new();
    static int where[CHURN_USERS];
    char user[16], node[8];
    int members = 0;
    unsigned seed = 12345;
    for (int i = 0; i < CHURN_USERS; i++)
        where[i] = -1;
    for (int op = 0; op < 60000; op++) {
        seed = seed * 1103515245u + 12345u;
        int u = (int)((seed >> 8) % CHURN_USERS), nd = (int)((seed >> 20) % 4);
        snprintf(user, sizeof user, "u%d", u);
        snprintf(node, sizeof node, "n%d", nd);
        if (op % 7919 == 7918) { /* a node dies */
            node_croom_drop_node(t, node);
            for (int i = 0; i < CHURN_USERS; i++)
                if (where[i] == nd) {
                    where[i] = -1;
                    members--;
                }
        } else if ((seed >> 4) % 3 == 0) {
            node_croom_leave(t, "r", user, NULL);
            members -= where[u] >= 0;
            where[u] = -1;
        } else {
            int rc = node_croom_join(t, "r", user, node);
            assert_int_equal(rc, where[u] == nd ? PROTO_CONFLICT : 0);
            members += where[u] < 0;
            where[u] = nd;
        }
        assert_int_equal(node_croom_count(t, "r"), members);
        assert_true(slots_fit(node_croom_slots(t, "r"), (size_t)members));
    }
    churn_seen_t c = {where, 0, 0};
    node_croom_each_user(t, "r", churn_check_one, &c);
    assert_int_equal(c.n, members);
    assert_int_equal(c.wrong, 0);
    for (int i = 0; i < CHURN_USERS; i++) { /* every member is found */
        snprintf(user, sizeof user, "u%d", i);
        snprintf(node, sizeof node, "n%d", where[i]);
        if (where[i] >= 0)
            assert_int_equal(node_croom_join(t, "r", user, node), PROTO_CONFLICT);
    }
    node_croom_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_count_conflict),
        cmocka_unit_test(test_join_elsewhere_moves_user),
        cmocka_unit_test(test_node_counts_follow_members),
        cmocka_unit_test(test_drop_node),
        cmocka_unit_test(test_many_members),
        cmocka_unit_test(test_churn_matches_reference),
        cmocka_unit_test(test_shrinks_after_mass_leaves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
