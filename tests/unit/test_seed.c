/* chat-seed's code path against a real SQLite store in a temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <sodium.h>

#include "seed/seed.h"

typedef struct fixture {
    char dir[64];
    char uri[128];
    char db[96];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);

    snprintf(f->dir, sizeof f->dir, "/tmp/chat-seed-test.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof f->db, "%s/seed.db", f->dir);
    snprintf(f->uri, sizeof f->uri, "sqlite:%s", f->db);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char path[128];
    const char *suffixes[] = {"", "-wal", "-shm"};

    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s%s", f->db, suffixes[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void small_opts(seed_opts_t *o)
{
    seed_opts_default(o);
    o->users = 6;
    o->friends = 2;
    o->groups = 2;
    o->group_size = 3;
    o->rooms = 2;
}

static void seed_once(const char *uri, const seed_opts_t *o, seed_counts_t *c)
{
    char err[256] = "";
    store_t *st = store_open(uri, err, sizeof err);

    assert_non_null(st);
    if (seed_run(st, NULL, o, c, err, sizeof err) != 0)
        fail_msg("seed_run: %s", err);
    store_close(st);
}

/* The same through a started store: users in batched transactions. */
static void seed_batched(const char *uri, const seed_opts_t *o, seed_counts_t *c)
{
    char err[256] = "";
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    store_t *st = store_open(uri, err, sizeof err);

    assert_non_null(st);
    assert_int_equal(store_start(st, loop), 0);
    if (seed_run(st, loop, o, c, err, sizeof err) != 0)
        fail_msg("seed_run: %s", err);
    store_close(st);
    ev_loop_destroy(loop);
}

static void test_seed_batched(void **state)
{
    fixture_t *f = *state;
    seed_opts_t o;
    seed_counts_t c;
    store_user_t u;
    char err[256];
    store_t *st;

    small_opts(&o);
    o.users = 20000; /* more than the window and many batches */
    o.pwhash_mem = 8192;
    o.friends = 1;
    seed_once(f->uri, &(seed_opts_t){.users = 5, .prefix = "user", .password_format = "pass-%d",
                                     .group_size = 1, .group_prefix = "group",
                                     .room_prefix = "room", .pwhash_ops = 1, .pwhash_mem = 8192},
              &c);
    seed_batched(f->uri, &o, &c);
    assert_int_equal(c.users_created, 20000 - 5);
    assert_int_equal(c.users_existing, 5);
    assert_int_equal(c.friendships_created, 20000);
    seed_batched(f->uri, &o, &c);
    assert_int_equal(c.users_created, 0);
    assert_int_equal(c.users_existing, 20000);
    st = store_open(f->uri, err, sizeof err);
    assert_non_null(st);
    assert_int_equal(store_user_get(st, "user19999", &u), STORE_OK);
    assert_int_equal(crypto_pwhash_str_verify(u.pwhash, "pass-19999", 10), 0);
    assert_int_equal(store_user_get(st, "user20001", &u), STORE_NOTFOUND);
    store_close(st);
}

static void test_seed_twice(void **state)
{
    fixture_t *f = *state;
    seed_opts_t o;
    seed_counts_t c;

    small_opts(&o);
    seed_once(f->uri, &o, &c);
    assert_int_equal(c.users_created, 6);
    assert_int_equal(c.users_existing, 0);
    assert_int_equal(c.friendships_created, 12); /* ring: 6 users x 2 next */
    assert_int_equal(c.groups_created, 2);
    assert_int_equal(c.members_added, 4); /* owner is a member by creation */
    assert_int_equal(c.rooms_created, 2);

    seed_once(f->uri, &o, &c);
    assert_int_equal(c.users_created, 0);
    assert_int_equal(c.users_existing, 6);
    assert_int_equal(c.friendships_created, 0);
    assert_int_equal(c.friendships_existing, 12);
    assert_int_equal(c.groups_created, 0);
    assert_int_equal(c.groups_existing, 2);
    assert_int_equal(c.members_added, 0);
    assert_int_equal(c.members_existing, 4);
    assert_int_equal(c.rooms_created, 0);
    assert_int_equal(c.rooms_existing, 2);
}

static void test_seeded_data(void **state)
{
    fixture_t *f = *state;
    seed_opts_t o;
    seed_counts_t c;
    store_user_t u;
    store_names_t names;
    store_group_t g;
    store_room_t r;
    char err[256];
    store_t *st;

    small_opts(&o);
    seed_once(f->uri, &o, &c);
    st = store_open(f->uri, err, sizeof err);
    assert_non_null(st);
    assert_int_equal(store_user_get(st, "user3", &u), STORE_OK);
    assert_int_equal(crypto_pwhash_str_verify(u.pwhash, "pass-3", 6), 0);
    assert_int_not_equal(crypto_pwhash_str_verify(u.pwhash, "pass-4", 6), 0);
    assert_non_null(strstr(u.pwhash, "$argon2id$"));
    assert_int_equal(store_user_get(st, "user7", &u), STORE_NOTFOUND);
    /* user1 befriends 2 and 3; 5 and 6 befriend 1 */
    assert_int_equal(store_friends_list(st, "user1", &names), STORE_OK);
    assert_int_equal(names.count, 4);
    store_names_free(&names);
    assert_int_equal(store_friends_check(st, "user6", "user2"), STORE_OK);
    assert_int_equal(store_friends_check(st, "user1", "user4"), STORE_NOTFOUND);
    assert_int_equal(store_group_get(st, "group2", &g), STORE_OK);
    assert_string_equal(g.owner, "user4");
    assert_int_equal(g.members, 3);
    assert_int_equal(store_group_is_member(st, "group2", "user6"), STORE_OK);
    assert_int_equal(store_room_get(st, "room2", &r), STORE_OK);
    assert_string_equal(r.creator, "user1");
    store_close(st);
}

static void test_bad_opts(void **state)
{
    seed_opts_t o;
    char err[256], pw[200];

    (void)state;
    small_opts(&o);
    o.password_format = "pw-%d";
    assert_int_equal(seed_opts_check(&o, err, sizeof err), -1); /* "pw-1" is too short */
    o.password_format = "secret-%d-%d";
    assert_int_equal(seed_opts_check(&o, err, sizeof err), -1);
    o.password_format = "secret-%s";
    assert_int_equal(seed_opts_check(&o, err, sizeof err), -1);
    o.password_format = "100%%-%d";
    assert_int_equal(seed_opts_check(&o, err, sizeof err), 0);
    assert_int_equal(seed_password(&o, 42, pw, sizeof pw), 0);
    assert_string_equal(pw, "100%-42");
    small_opts(&o);
    o.prefix = "bad name";
    assert_int_equal(seed_opts_check(&o, err, sizeof err), -1);
    small_opts(&o);
    o.prefix = "a_very_long_user_name_prefix_xxxx";
    assert_int_equal(seed_opts_check(&o, err, sizeof err), -1);
    small_opts(&o);
    o.friends = 6;
    assert_int_equal(seed_opts_check(&o, err, sizeof err), -1);
    small_opts(&o);
    o.users = 0;
    assert_int_equal(seed_opts_check(&o, err, sizeof err), -1);
    small_opts(&o);
    o.pwhash_mem = 1;
    assert_int_equal(seed_opts_check(&o, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seed_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seeded_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_batched, setup, teardown),
        cmocka_unit_test(test_bad_opts),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
