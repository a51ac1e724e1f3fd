/* The store thread on a real SQLite file: done callbacks run on the loop
 * after their batch committed, items queued together share one commit,
 * a linger under load gathers lazy items that arrive a little apart (an
 * item someone waits on never waits, and ends a linger), and read
 * items run beside another process's write lock, in submission order;
 * an item that fails leaves nothing, and nothing reported stored is
 * missing; the WAL checkpointer rests between runs, not one per commit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ev.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
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

static void submit_as(fixture_t *f, item_t *it, const char *prefix, int i, int lazy)
{
    it->f = f;
    snprintf(it->user, sizeof(it->user), "%s%d", prefix, i);
    if (lazy)
        store_submit_lazy(f->st, create_work, create_done, it);
    else
        store_submit(f->st, create_work, create_done, it);
}

static void submit(fixture_t *f, item_t *it, const char *prefix, int i)
{
    submit_as(f, it, prefix, i, 0);
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

static uint64_t lingers(fixture_t *f)
{
    store_stats_t s;
    store_get_stats(f->st, &s);
    return s.lingers;
}

typedef struct spaced_run {
    uint64_t commits, lingers;
} spaced_run_t;

/* Items 2 ms apart after a batch just ended (the store is "under load").
 * How many commits they take without a linger depends on the disk's fsync
 * time (a slow one batches them anyway), so the checks below count the
 * store thread's lingers, and commits only where a linger bounds them. */
static spaced_run_t spaced_items(fixture_t *f, const char *prefix, int lazy)
{
    item_t first, items[ITEMS];
    spaced_run_t r;

    f->done = f->ok = 0;
    submit(f, &first, prefix, 99);
    run_until_done(f, 1);
    r.commits = commits(f);
    r.lingers = lingers(f);
    for (int i = 0; i < ITEMS; i++) {
        submit_as(f, &items[i], prefix, i, lazy);
        sleep_ms(2);
    }
    run_until_done(f, ITEMS + 1);
    assert_int_equal(f->ok, ITEMS + 1);
    r.commits = commits(f) - r.commits;
    r.lingers = lingers(f) - r.lingers;
    return r;
}

/* Without a linger nothing waits; with one, lazy writes wait for company
 * and share one or two commits; writes someone waits on never wait. */
static void test_linger_gathers(void **state)
{
    fixture_t *f = *state;

    spaced_run_t plain = spaced_items(f, "p", 1);
    store_set_linger(f->st, 500000);
    spaced_run_t lingered = spaced_items(f, "l", 1);
    spaced_run_t eager = spaced_items(f, "e", 0);
    if (plain.lingers != 0 || lingered.lingers == 0 || lingered.commits > 2 || eager.lingers != 0)
        fail_msg("%d spaced items: lazy without linger %llu lingers, lazy with it %llu lingers "
                 "and %llu commits, eager with it %llu lingers",
                 ITEMS, (unsigned long long)plain.lingers, (unsigned long long)lingered.lingers,
                 (unsigned long long)lingered.commits, (unsigned long long)eager.lingers);
}

/* Lazy items lingering under a long linger: an item someone waits on ends
 * the wait at once, and all of them share its commit. */
static void test_eager_item_ends_linger(void **state)
{
    fixture_t *f = *state;
    item_t first, lazy[3], eager;

    store_set_linger(f->st, 900000);
    submit(f, &first, "x", 99);
    run_until_done(f, 1);
    f->done = f->ok = 0;
    store_stats_t before, after;
    store_get_stats(f->st, &before);
    for (int i = 0; i < 3; i++)
        submit_as(f, &lazy[i], "x", i, 1);
    sleep_ms(100); /* the store thread is lingering now */
    submit(f, &eager, "x", 3);
    run_until_done(f, 4);
    assert_int_equal(f->ok, 4);
    store_get_stats(f->st, &after);
    assert_int_equal(after.commits - before.commits, 1);
    assert_int_equal(after.lingers - before.lingers, 1);
    assert_int_equal(after.lingers_expired - before.lingers_expired, 0); /* cut short */
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
    uint64_t before = lingers(f);
    submit(f, &it, "q", 0);
    run_until_done(f, 1);
    assert_int_equal(f->ok, 1);
    assert_int_equal(lingers(f) - before, 0);
}

static void get_work(store_t *st, void *arg)
{
    item_t *it = arg;
    store_user_t u;
    it->rc = store_user_get(st, it->user, &u);
}

/* Counts done() calls; ok counts items whose work and commit succeeded. */
static void get_done(void *arg)
{
    item_t *it = arg;
    it->f->done++;
    if (it->rc == STORE_OK && store_done_status(it->f->st) == STORE_OK)
        it->f->ok++;
}

static void run_for_ms(fixture_t *f, int ms)
{
    for (int i = 0; i < ms * 10; i++)
        ev_run(f->loop, EVRUN_NOWAIT), usleep(100);
}

/* Another process holds the write lock: a read item still runs (it takes
 * only a snapshot); a write item waits until the lock is released. */
static void test_read_beside_write_lock(void **state)
{
    fixture_t *f = *state;
    item_t made, read = {.f = f, .user = "a0"}, write;
    sqlite3 *other = NULL;
    char path[160];

    submit(f, &made, "a", 0);
    run_until_done(f, 1);
    snprintf(path, sizeof(path), "%s/chat.db", f->dir);
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    f->done = f->ok = 0;
    store_submit_read(f->st, get_work, get_done, &read);
    submit(f, &write, "w", 0);
    run_for_ms(f, 300);
    assert_int_equal(f->done, 1); /* the read, not the write */
    assert_int_equal(read.rc, STORE_OK);

    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    run_until_done(f, 2);
    assert_int_equal(f->ok, 2);
}

/* A write inside a read item is refused and leaves nothing behind. */
static void test_write_in_read_item_refused(void **state)
{
    fixture_t *f = *state;
    item_t bad = {.f = f, .user = "bad"}, check = {.f = f, .user = "bad"};

    store_submit_read(f->st, create_work, get_done, &bad);
    run_until_done(f, 1);
    assert_int_equal(bad.rc, STORE_ERR);
    assert_int_equal(f->ok, 0);
    store_submit_read(f->st, get_work, get_done, &check);
    run_until_done(f, 2);
    assert_int_equal(check.rc, STORE_NOTFOUND);
}

/* Reads and writes queued together keep their order: a read after a write
 * sees it, a read before it does not. */
static void test_reads_and_writes_in_order(void **state)
{
    fixture_t *f = *state;
    item_t before = {.f = f, .user = "o0"}, made, after = {.f = f, .user = "o0"};

    store_submit_read(f->st, get_work, get_done, &before);
    submit(f, &made, "o", 0);
    store_submit_read(f->st, get_work, get_done, &after);
    run_until_done(f, 3);
    assert_int_equal(before.rc, STORE_NOTFOUND);
    assert_int_equal(made.rc, STORE_OK);
    assert_int_equal(after.rc, STORE_OK);
}

/* Two writes, the second refused by a trigger for the user "bad-N": a
 * store error, not a taken key. */
static void pair_work(store_t *st, void *arg)
{
    item_t *it = arg;
    char second[24];
    snprintf(second, sizeof second, "bad-%s", it->user);
    it->rc = store_user_create(st, it->user, "N", "h", 1);
    if (it->rc == STORE_OK)
        it->rc = store_user_create(st, second, "N", "h", 1);
}

static void status_done(void *arg)
{
    item_t *it = arg;
    it->f->done++;
    it->rc = store_done_status(it->f->st) == STORE_OK ? it->rc : STORE_ERR;
}

static int stored(sqlite3 *db, const char *user)
{
    sqlite3_stmt *s = NULL;
    int found;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT 1 FROM users WHERE user = ?1", -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
    found = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    return found;
}

/* Items queued behind another process's write lock run as one batch; one
 * of them fails half-way. Whatever the batch does with its neighbours,
 * its first write is undone, no item reported stored is missing, none
 * reported failed left anything, and the next item is stored. */
static void test_failed_item_leaves_nothing(void **state)
{
    fixture_t *f = *state;
    item_t items[ITEMS], after;
    sqlite3 *other = NULL;
    char path[160];

    snprintf(path, sizeof(path), "%s/chat.db", f->dir);
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other,
                                  "CREATE TRIGGER refuse_bad BEFORE INSERT ON users"
                                  " WHEN NEW.user LIKE 'bad-%' BEGIN SELECT RAISE(ABORT, 'refused');"
                                  " END; BEGIN IMMEDIATE",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    for (int i = 0; i < ITEMS; i++) {
        items[i].f = f;
        snprintf(items[i].user, sizeof(items[i].user), "p%d", i);
        if (i == ITEMS / 2)
            store_submit(f->st, pair_work, status_done, &items[i]);
        else
            store_submit(f->st, create_work, status_done, &items[i]);
    }
    run_for_ms(f, 50);
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    run_until_done(f, ITEMS);

    assert_int_equal(items[ITEMS / 2].rc, STORE_ERR);
    assert_false(stored(other, items[ITEMS / 2].user));
    for (int i = 0; i < ITEMS; i++)
        if (stored(other, items[i].user) != (items[i].rc == STORE_OK))
            fail_msg("%s: reported %d, stored %d", items[i].user, items[i].rc,
                     stored(other, items[i].user));
    submit(f, &after, "after", 0);
    run_until_done(f, ITEMS + 1);
    assert_true(stored(other, "after0"));
    sqlite3_close(other);
}

static void counted(void *arg)
{
    item_t *it = arg;
    it->f->done++;
}

/* A reader keeps the WAL from starting over (as the other nodes' reads do
 * under steady load), so every commit past the mark makes a checkpoint
 * due: the checkpointer must rest 100 ms after each run, not run one per
 * small commit (hundreds a second, docs/BENCHMARKS.md section 30). */
static void test_checkpoints_paced(void **state)
{
    fixture_t *f = *state;
    char path[160];
    sqlite3 *reader = NULL;
    enum { COMMITS = 1500 }; /* two pages or more each: past the mark */

    snprintf(path, sizeof(path), "%s/chat.db", f->dir);
    assert_int_equal(sqlite3_open(path, &reader), SQLITE_OK);
    assert_int_equal(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM users;", NULL, NULL, NULL),
                     SQLITE_OK);
    item_t *items = calloc(COMMITS, sizeof *items);
    assert_non_null(items);
    uint64_t t0 = core_mono_ms();
    for (int i = 0; i < COMMITS; i++) { /* one at a time: a commit each */
        items[i].f = f;
        snprintf(items[i].user, sizeof(items[i].user), "k%d", i);
        store_submit(f->st, create_work, counted, &items[i]);
        run_until_done(f, i + 1);
    }
    store_stats_t s;
    store_get_stats(f->st, &s);
    for (int i = 0; i < 200 && s.checkpoints == 0; i++) { /* its thread runs on its own */
        usleep(10000);
        store_get_stats(f->st, &s);
    }
    double runs_max = (double)(core_mono_ms() - t0) / 100.0 + 2; /* one per rest, and the first */
    if (s.checkpoints < 1 || s.commits < COMMITS || (double)s.checkpoints > runs_max)
        fail_msg("%llu commits, %llu checkpoints (at most %.0f)", (unsigned long long)s.commits,
                 (unsigned long long)s.checkpoints, runs_max);
    sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(reader);
    free(items);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_done_after_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linger_gathers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linger_idle_runs_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eager_item_ends_linger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_beside_write_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_in_read_item_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_and_writes_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_item_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoints_paced, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
