/* The store thread on a real SQLite file: done callbacks run on the loop
 * after their batch committed, items queued together share one commit,
 * and a linger under load gathers items that arrive a little apart. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

#define ITEMS 10

typedef struct fixture {
    char dir[64];
    char uri[128];
    struct ev_loop *loop;
    store_t *st;
    int done;
    int ok;
} fixture_t;

typedef struct item {
    fixture_t *f;
    char user[16];
    int rc;
} item_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char err[256] = "";

    snprintf(f->dir, sizeof(f->dir), "/tmp/store-async-XXXXXX");
    if (!f || !mkdtemp(f->dir))
        return -1;
    snprintf(f->uri, sizeof(f->uri), "sqlite:%s/chat.db", f->dir);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    f->st = store_open(f->uri, err, sizeof(err));
    if (!f->st || store_start(f->st, f->loop) != 0) {
        fprintf(stderr, "open: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    static const char *const suffix[] = {"", "-wal", "-shm"};
    char path[160];

    store_close(f->st);
    ev_loop_destroy(f->loop);
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/chat.db%s", f->dir, suffix[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void create_work(store_t *st, void *arg)
{
    item_t *it = arg;
    it->rc = store_user_create(st, it->user, "N", "h", 1);
}

static void create_done(void *arg)
{
    item_t *it = arg;
    fixture_t *f = it->f;
    store_user_t u;

    f->done++;
    /* "stored" in a done callback means committed: a second connection sees it */
    char err[256] = "";
    store_t *other = store_open(f->uri, err, sizeof(err));
    if (other && it->rc == STORE_OK && store_done_status(f->st) == STORE_OK &&
        store_user_get(other, it->user, &u) == STORE_OK)
        f->ok++;
    store_close(other);
}

static void run_until_done(fixture_t *f, int want)
{
    for (int i = 0; i < 20000 && f->done < want; i++)
        ev_run(f->loop, EVRUN_NOWAIT), usleep(100);
    assert_int_equal(f->done, want);
}

static void submit(fixture_t *f, item_t *it, const char *prefix, int i)
{
    it->f = f;
    snprintf(it->user, sizeof(it->user), "%s%d", prefix, i);
    store_submit(f->st, create_work, create_done, it);
}

static uint64_t commits(fixture_t *f)
{
    store_stats_t s;
    store_get_stats(f->st, &s);
    return s.commits;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_done_after_commit(void **state)
{
    fixture_t *f = *state;
    item_t items[ITEMS];

    for (int i = 0; i < ITEMS; i++)
        submit(f, &items[i], "a", i);
    run_until_done(f, ITEMS);
    assert_int_equal(f->ok, ITEMS);
    assert_int_equal(store_backlog(f->st), 0);
}

/* Items 2 ms apart: without a linger nearly each has its own commit; with
 * a 300 ms linger under load (a batch just ended) they share one or two. */
static uint64_t commits_for_spaced_items(fixture_t *f, const char *prefix)
{
    item_t first, items[ITEMS];

    f->done = f->ok = 0;
    submit(f, &first, prefix, 99); /* a batch ends: the store is "under load" */
    run_until_done(f, 1);
    uint64_t before = commits(f);
    for (int i = 0; i < ITEMS; i++) {
        submit(f, &items[i], prefix, i);
        sleep_ms(2);
    }
    run_until_done(f, ITEMS + 1);
    assert_int_equal(f->ok, ITEMS + 1);
    return commits(f) - before;
}

static void test_linger_gathers(void **state)
{
    fixture_t *f = *state;

    uint64_t plain = commits_for_spaced_items(f, "p");
    store_set_linger(f->st, 300000);
    uint64_t lingered = commits_for_spaced_items(f, "l");
    if (lingered > 2 || plain < 5)
        fail_msg("commits for %d spaced items: %llu without linger, %llu with", ITEMS,
                 (unsigned long long)plain, (unsigned long long)lingered);
}

/* A lone item at a quiet time does not wait for the linger. */
static void test_linger_idle_runs_at_once(void **state)
{
    fixture_t *f = *state;
    item_t first, it;

    store_set_linger(f->st, 900000);
    submit(f, &first, "q", 1);
    run_until_done(f, 1);
    sleep_ms(1900); /* well past 2 x linger since that batch */
    f->done = f->ok = 0;
    submit(f, &it, "q", 0);
    for (int i = 0; i < 3000 && f->done < 1; i++) /* 300 ms < the 900 ms linger */
        ev_run(f->loop, EVRUN_NOWAIT), usleep(100);
    assert_int_equal(f->done, 1);
    assert_int_equal(f->ok, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_done_after_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linger_gathers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linger_idle_runs_at_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
