/* Every store operation, the same cases on both backends: a real SQLite
 * file in a private temp dir, or (when CHAT_TEST_MONGO names a server,
 * scripts/congodb.sh with ...) a fresh MongoDB database per test. Cases
 * that only one backend can pass say so where they branch. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#ifdef CHAT_HAVE_MONGO
#include <mongoc/mongoc.h>
#endif

#include "store/store.h"

typedef struct fixture {
    char dir[64];
    char uri[256];
    store_t *st;
} fixture_t;

/* "mongodb://host:port" when the run is against MongoDB, else NULL. */
static const char *mongo_base(void)
{
    const char *m = getenv("CHAT_TEST_MONGO");

    return m && m[0] ? m : NULL;
}

static int on_mongo(void)
{
    return mongo_base() != NULL;
}

/* A database or file nobody used before: one per test case. */
static int fresh_uri(fixture_t *f)
{
    static unsigned serial;

    if (on_mongo()) {
        snprintf(f->uri, sizeof(f->uri), "%s/t%ld_%u", mongo_base(), (long)getpid(), serial++);
        return 0;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/store-test-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->uri, sizeof(f->uri), "sqlite:%s/chat.db", f->dir);
    return 0;
}

static void remove_db(fixture_t *f)
{
    static const char *const suffix[] = {"", "-wal", "-shm"};
    char path[160];

    if (!f->dir[0])
        return; /* MongoDB: the server is thrown away after the run */
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/chat.db%s", f->dir, suffix[i]);
        unlink(path);
    }
    rmdir(f->dir);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char err[256] = "";

    if (fresh_uri(f) != 0)
        return -1;
    f->st = store_open(f->uri, err, sizeof(err));
    if (!f->st) {
        fprintf(stderr, "open: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;

    store_close(f->st);
    remove_db(f);
    free(f);
    return 0;
}

static void reopen(fixture_t *f)
{
    char err[256] = "";

    store_close(f->st);
    f->st = store_open(f->uri, err, sizeof(err));
    assert_non_null(f->st);
}

static void test_open_errors(void **state)
{
    char err[256] = "";
    (void)state;

    assert_null(store_open("bogus:x", err, sizeof(err)));
    assert_non_null(strstr(err, "unknown URI scheme"));
    err[0] = '\0';
    assert_null(store_open("sqlite:", err, sizeof(err)));
    assert_non_null(strstr(err, "empty path"));
    err[0] = '\0';
    assert_null(store_open("sqlite:/nonexistent-dir-xyz/a.db", err, sizeof(err)));
    assert_true(err[0] != '\0');
    err[0] = '\0';
    assert_null(store_open("mongodb://", err, sizeof(err)));
    assert_non_null(strstr(err, "bad URI"));
}

/* MongoDB: opening needs no server (nodes start before it); calls fail
 * with STORE_ERR, not a hang or a crash, until one answers. */
static void test_server_down(void **state)
{
    char err[256] = "";
    store_user_t u;
    (void)state;

    store_t *st = store_open("mongodb://127.0.0.1:1/x?serverSelectionTimeoutMS=300", err,
                             sizeof(err));
    assert_non_null(st);
    assert_int_equal(store_user_get(st, "alice", &u), STORE_ERR);
    /* the next calls fail at once, not after 300 ms each (100 would take 30 s) */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(store_user_create(st, "alice", "A", "h", 1), STORE_ERR);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 10);
    store_close(st);
}

static void test_users(void **state)
{
    fixture_t *f = *state;
    store_user_t u;

    assert_string_equal(store_backend_name(f->st), on_mongo() ? "mongodb" : "sqlite");
    assert_int_equal(store_user_get(f->st, "alice", &u), STORE_NOTFOUND);
    assert_int_equal(store_user_exists(f->st, "alice"), STORE_NOTFOUND); /* not remembered */
    assert_int_equal(store_user_create(f->st, "alice", "Alice", "$argon2id$x", 100), STORE_OK);
    assert_int_equal(store_user_create(f->st, "alice", "Other", "h2", 101), STORE_EXISTS);
    assert_int_equal(store_user_get(f->st, "alice", &u), STORE_OK);
    assert_string_equal(u.user, "alice");
    assert_string_equal(u.nickname, "Alice");
    assert_string_equal(u.pwhash, "$argon2id$x");
    assert_int_equal(store_user_exists(f->st, "alice"), STORE_OK);
    assert_int_equal(store_user_exists(f->st, "alice"), STORE_OK); /* remembered */
    assert_int_equal(store_user_exists(f->st, "alicex"), STORE_NOTFOUND);
}

static void test_tokens(void **state)
{
    fixture_t *f = *state;

    assert_int_equal(store_token_put(f->st, "alice", "aa11", 5000), STORE_OK);
    assert_int_equal(store_token_check(f->st, "alice", "aa11", 4999), STORE_OK);
    assert_int_equal(store_token_check(f->st, "alice", "aa11", 5000), STORE_NOTFOUND);
    assert_int_equal(store_token_check(f->st, "bob", "aa11", 10), STORE_NOTFOUND);
    assert_int_equal(store_token_check(f->st, "alice", "bb22", 10), STORE_NOTFOUND);
    /* Re-putting the same hash extends it. */
    assert_int_equal(store_token_put(f->st, "alice", "aa11", 9000), STORE_OK);
    assert_int_equal(store_token_check(f->st, "alice", "aa11", 8000), STORE_OK);
    /* expire drops tokens whose expiry is before the cut. */
    assert_int_equal(store_token_put(f->st, "alice", "cc33", 3000), STORE_OK);
    assert_int_equal(store_expire(f->st, 4000), STORE_OK);
    assert_int_equal(store_token_check(f->st, "alice", "cc33", 0), STORE_NOTFOUND);
    assert_int_equal(store_token_check(f->st, "alice", "aa11", 0), STORE_OK);
}

static void test_friends(void **state)
{
    fixture_t *f = *state;
    store_names_t l;

    assert_int_equal(store_user_create(f->st, "bob", "Bobby", "h", 1), STORE_OK);
    assert_int_equal(store_user_create(f->st, "carol", "Carol", "h", 1), STORE_OK);
    assert_int_equal(store_friend_request_take(f->st, "bob", "alice"), STORE_NOTFOUND);
    assert_int_equal(store_friend_request_put(f->st, "bob", "alice", "hi", 10), STORE_OK);
    assert_int_equal(store_friend_request_put(f->st, "bob", "alice", "hi again", 11), STORE_OK);
    assert_int_equal(store_friends_check(f->st, "alice", "bob"), STORE_NOTFOUND);
    assert_int_equal(store_friend_request_take(f->st, "bob", "alice"), STORE_OK);
    assert_int_equal(store_friend_request_take(f->st, "bob", "alice"), STORE_NOTFOUND);
    assert_int_equal(store_friend_add(f->st, "bob", "alice", 12), STORE_OK);
    assert_int_equal(store_friend_add(f->st, "alice", "bob", 13), STORE_EXISTS);
    assert_int_equal(store_friends_check(f->st, "alice", "bob"), STORE_OK);
    assert_int_equal(store_friends_check(f->st, "bob", "alice"), STORE_OK);
    assert_int_equal(store_friend_request_put(f->st, "alice", "bob", "x", 14), STORE_EXISTS);
    assert_int_equal(store_friend_add(f->st, "alice", "carol", 15), STORE_OK);

    assert_int_equal(store_friends_list(f->st, "alice", &l), STORE_OK);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[0].user, "bob");
    assert_string_equal(l.items[0].nickname, "Bobby");
    assert_string_equal(l.items[1].user, "carol");
    store_names_free(&l);
    assert_int_equal(store_friends_list(f->st, "nobody", &l), STORE_OK);
    assert_int_equal(l.count, 0);
    store_names_free(&l);
}

static void test_groups(void **state)
{
    fixture_t *f = *state;
    store_group_t g;
    store_groups_t gl;
    store_names_t ml;

    assert_int_equal(store_group_get(f->st, "g1", &g), STORE_NOTFOUND);
    assert_int_equal(store_group_create(f->st, "g1", "Group one", "alice", 1), STORE_OK);
    assert_int_equal(store_group_create(f->st, "g1", "dup", "bob", 2), STORE_EXISTS);
    assert_int_equal(store_group_create(f->st, "g2", "Group two", "bob", 3), STORE_OK);
    assert_int_equal(store_group_get(f->st, "g1", &g), STORE_OK);
    assert_string_equal(g.name, "Group one");
    assert_string_equal(g.owner, "alice");
    assert_int_equal(g.members, 1);

    assert_int_equal(store_group_join(f->st, "g1", "bob"), STORE_OK);
    assert_int_equal(store_group_join(f->st, "g1", "bob"), STORE_EXISTS);
    assert_int_equal(store_group_join(f->st, "nope", "bob"), STORE_NOTFOUND);
    assert_int_equal(store_group_is_member(f->st, "g1", "bob"), STORE_OK);
    assert_int_equal(store_group_is_member(f->st, "g1", "carol"), STORE_NOTFOUND);
    assert_int_equal(store_group_get(f->st, "g1", &g), STORE_OK);
    assert_int_equal(g.members, 2);

    assert_int_equal(store_group_members(f->st, "g1", &ml), STORE_OK);
    assert_int_equal(ml.count, 2);
    assert_string_equal(ml.items[0].user, "alice");
    assert_string_equal(ml.items[0].nickname, "Alice");
    assert_string_equal(ml.items[1].user, "bob");
    store_names_free(&ml);
    assert_int_equal(store_group_members(f->st, "nope", &ml), STORE_NOTFOUND);
    assert_int_equal(ml.count, 0);

    assert_int_equal(store_groups_of(f->st, "bob", &gl), STORE_OK);
    assert_int_equal(gl.count, 2);
    assert_string_equal(gl.items[0].gid, "g1");
    assert_int_equal(gl.items[0].members, 2);
    assert_string_equal(gl.items[1].gid, "g2");
    assert_int_equal(gl.items[1].members, 1);
    store_groups_free(&gl);

    assert_int_equal(store_group_leave(f->st, "g1", "bob"), STORE_OK);
    assert_int_equal(store_group_leave(f->st, "g1", "bob"), STORE_NOTFOUND);
    assert_int_equal(store_groups_all(f->st, &gl), STORE_OK);
    assert_int_equal(gl.count, 2);
    assert_int_equal(gl.items[0].members, 1);
    store_groups_free(&gl);
}

static void test_rooms(void **state)
{
    fixture_t *f = *state;
    store_room_t r;
    store_rooms_t rl;

    assert_int_equal(store_room_get(f->st, "lobby", &r), STORE_NOTFOUND);
    assert_int_equal(store_room_create(f->st, "lobby", "The lobby", "alice", 1), STORE_OK);
    assert_int_equal(store_room_create(f->st, "lobby", "x", "bob", 2), STORE_EXISTS);
    assert_int_equal(store_room_create(f->st, "attic", "Up", "bob", 3), STORE_OK);
    assert_int_equal(store_room_get(f->st, "lobby", &r), STORE_OK);
    assert_string_equal(r.title, "The lobby");
    assert_string_equal(r.creator, "alice");
    assert_int_equal(store_rooms_list(f->st, &rl), STORE_OK);
    assert_int_equal(rl.count, 2);
    assert_string_equal(rl.items[0].room, "attic");
    assert_string_equal(rl.items[1].room, "lobby");
    store_rooms_free(&rl);
}

static void put_msg(store_t *st, const char *msgid, char kind, const char *from, const char *to,
                    const char *text)
{
    char conv[STORE_CONV_MAX];
    store_msg_t m = {.kind = kind, .ts = 1000, .message = (char *)text};

    snprintf(m.msgid, sizeof(m.msgid), "%s", msgid);
    snprintf(m.from, sizeof(m.from), "%s", from);
    snprintf(m.to, sizeof(m.to), "%s", to);
    snprintf(m.format, sizeof(m.format), "text");
    if (kind == 'c')
        store_conv_direct(from, to, conv);
    else
        store_conv_group(to, conv);
    assert_int_equal(store_msg_put(st, &m, conv), STORE_OK);
}

static void test_conv_names(void **state)
{
    char a[STORE_CONV_MAX], b[STORE_CONV_MAX];
    (void)state;

    store_conv_direct("bob", "alice", a);
    store_conv_direct("alice", "bob", b);
    assert_string_equal(a, "d:alice|bob");
    assert_string_equal(b, a);
    store_conv_group("g1", a);
    assert_string_equal(a, "g:g1");
}

static void test_messages_history(void **state)
{
    fixture_t *f = *state;
    char id[STORE_MSGID_MAX], conv[STORE_CONV_MAX];
    store_msgs_t l;
    store_msg_t m;

    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "m%02d", i);
        put_msg(f->st, id, 'c', i % 2 ? "alice" : "bob", i % 2 ? "bob" : "alice", id);
    }
    put_msg(f->st, "m50", 'g', "alice", "g1", "to group");
    store_conv_direct("alice", "bob", conv);
    {
        store_msg_t dup = {.msgid = "m03", .kind = 'c'};
        assert_int_equal(store_msg_put(f->st, &dup, conv), STORE_EXISTS);
    }

    assert_int_equal(store_history(f->st, conv, NULL, 3, &l), STORE_OK);
    assert_int_equal(l.count, 3);
    assert_string_equal(l.items[0].msgid, "m07");
    assert_string_equal(l.items[2].msgid, "m09");
    assert_string_equal(l.items[2].message, "m09");
    assert_string_equal(l.items[2].from, "alice");
    assert_string_equal(l.items[2].to, "bob");
    assert_int_equal(l.items[2].kind, 'c');
    store_msgs_free(&l);

    /* the conversation's greatest id, per conversation */
    assert_int_equal(store_conv_last(f->st, conv, id), STORE_OK);
    assert_string_equal(id, "m09");
    store_conv_group("g1", conv);
    assert_int_equal(store_conv_last(f->st, conv, id), STORE_OK);
    assert_string_equal(id, "m50");
    store_conv_direct("alice", "nobody", conv);
    assert_int_equal(store_conv_last(f->st, conv, id), STORE_NOTFOUND);
    assert_string_equal(id, "");
    store_conv_direct("alice", "bob", conv);

    /* before is exclusive; oldest first. */
    assert_int_equal(store_history(f->st, conv, "m07", 4, &l), STORE_OK);
    assert_int_equal(l.count, 4);
    assert_string_equal(l.items[0].msgid, "m03");
    assert_string_equal(l.items[3].msgid, "m06");
    store_msgs_free(&l);
    assert_int_equal(store_history(f->st, conv, "m02", 10, &l), STORE_OK);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[0].msgid, "m00");
    store_msgs_free(&l);
    assert_int_equal(store_history(f->st, conv, "", 100, &l), STORE_OK);
    assert_int_equal(l.count, 10);
    store_msgs_free(&l);
    assert_int_equal(store_history(f->st, conv, NULL, 0, &l), STORE_OK);
    assert_int_equal(l.count, 0);

    store_conv_group("g1", conv);
    assert_int_equal(store_history(f->st, conv, NULL, 10, &l), STORE_OK);
    assert_int_equal(l.count, 1);
    assert_int_equal(l.items[0].kind, 'g');
    store_msgs_free(&l);

    assert_int_equal(store_msg_get(f->st, "m50", &m), STORE_OK);
    assert_string_equal(m.message, "to group");
    assert_string_equal(m.format, "text");
    assert_int_equal(m.ts, 1000);
    free(m.message);
    assert_int_equal(store_msg_get(f->st, "zz", &m), STORE_NOTFOUND);
}

/* conv_last in a write batch counts what this writer stored and what
 * another connection stored since (a cache of it would have to see both). */
typedef struct conv_op {
    const char *put; /* a message to store first, or NULL */
    char last[STORE_MSGID_MAX];
    int rc;
} conv_op_t;

static void conv_work(store_t *st, void *arg)
{
    conv_op_t *op = arg;
    char conv[STORE_CONV_MAX];

    if (op->put)
        put_msg(st, op->put, 'c', "amy", "ben", "x");
    store_conv_direct("amy", "ben", conv);
    op->rc = store_conv_last(st, conv, op->last);
}

static void test_conv_last_other_writer(void **state)
{
    fixture_t *f = *state;
    conv_op_t none = {NULL, "", -9}, own = {"c05", "", -9}, later = {NULL, "", -9};
    char err[256] = "";
    store_t *other;

    store_submit(f->st, conv_work, NULL, &none);
    assert_int_equal(none.rc, STORE_NOTFOUND);
    store_submit(f->st, conv_work, NULL, &own);
    assert_int_equal(own.rc, STORE_OK);
    assert_string_equal(own.last, "c05");
    other = store_open(f->uri, err, sizeof(err));
    assert_non_null(other);
    put_msg(other, "c09", 'c', "ben", "amy", "from elsewhere");
    store_close(other);
    store_submit(f->st, conv_work, NULL, &later);
    assert_int_equal(later.rc, STORE_OK);
    assert_string_equal(later.last, "c09");
}

#define CHAT_P01 "{\"msgid\":\"p01\",\"from\":\"bob\",\"to\":\"carol\",\"message\":\"hello\"}"

static void test_pending(void **state)
{
    fixture_t *f = *state;
    const char *acks[] = {"p50", "p01", "p01", "none", "", "p70"};
    store_pendings_t pl;
    store_ackeds_t al;
    long n = -1;

    put_msg(f->st, "p01", 'c', "bob", "carol", "hello");
    put_msg(f->st, "p50", 'g', "alice", "g1", "hi all");
    assert_int_equal(store_pending_add(f->st, "carol", "p01", "chat", CHAT_P01, 1), STORE_OK);
    /* a direct message's data names its sender; one that does not, none */
    assert_int_equal(store_pending_add(f->st, "carol", "p70", "chat", "{not json", 1), STORE_OK);
    assert_int_equal(store_pending_add(f->st, "carol", "p30", "system", "{\"b\":2}", 2), STORE_OK);
    assert_int_equal(store_pending_add(f->st, "carol", "p50", "group_chat", "{}", 3), STORE_OK);
    /* the msgid keys an item: an item without one is refused */
    assert_int_equal(store_pending_add(f->st, "carol", "", "system", "{}", 4), STORE_ERR);
    assert_int_equal(store_pending_add(f->st, "carol", NULL, "system", "{}", 4), STORE_ERR);
    assert_int_equal(store_pending_add(f->st, "dave", "p01", "chat", "{}", 4), STORE_OK);
    assert_int_equal(store_pending_count(f->st, "carol", &n), STORE_OK);
    assert_int_equal(n, 4);

    assert_int_equal(store_pending_list(f->st, "carol", 2, &pl), STORE_OK);
    assert_int_equal(pl.count, 2);
    assert_string_equal(pl.items[0].msgid, "p01");
    assert_string_equal(pl.items[0].event, "chat");
    assert_string_equal(pl.items[0].data, CHAT_P01);
    assert_string_equal(pl.items[1].msgid, "p30");
    assert_string_equal(pl.items[1].event, "system");
    store_pendings_free(&pl);

    /* Ack: the group message is removed without a receipt; m01 once. */
    assert_int_equal(store_pending_ack(f->st, "carol", acks, 6, &al), STORE_OK);
    assert_int_equal(al.count, 1);
    assert_string_equal(al.items[0].msgid, "p01");
    assert_string_equal(al.items[0].from, "bob");
    store_ackeds_free(&al);
    assert_int_equal(store_pending_count(f->st, "carol", &n), STORE_OK);
    assert_int_equal(n, 1);
    assert_int_equal(store_pending_count(f->st, "dave", &n), STORE_OK);
    assert_int_equal(n, 1);

    assert_int_equal(store_pending_drop(f->st, "dave", "p30"), STORE_NOTFOUND);
    assert_int_equal(store_pending_drop(f->st, "carol", "p30"), STORE_OK);
    assert_int_equal(store_pending_drop(f->st, "carol", "p30"), STORE_NOTFOUND);
    assert_int_equal(store_pending_list(f->st, "carol", 10, &pl), STORE_OK);
    assert_int_equal(pl.count, 0);
    store_pendings_free(&pl);
}

/* A file of schema version 1 (pending: a rowid table, seq AUTOINCREMENT,
 * two indexes) with the rows older builds wrote. */
static void write_v1_file(const char *path, const char *rows_sql)
{
    static const char v1_sql[] =
        "CREATE TABLE schema_version(version INTEGER NOT NULL);"
        "INSERT INTO schema_version(version) VALUES(1);"
        "CREATE TABLE pending(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " user TEXT NOT NULL, msgid TEXT NOT NULL, event TEXT NOT NULL, data TEXT NOT NULL,"
        " ts INTEGER NOT NULL);"
        "CREATE INDEX pending_user_seq ON pending(user, seq);"
        "CREATE INDEX pending_user_msgid ON pending(user, msgid);";
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, v1_sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, rows_sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static int file_version(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int version = -1;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1, &s, NULL) ==
            SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return version;
}

#ifdef CHAT_HAVE_MONGO
/* A pending item as builds before 2026-12-08 stored it: "user|seq". */
static void put_legacy_pending(const char *uri, int64_t seq, const char *msgid, const char *event,
                               const char *data)
{
    char id[64];
    bson_error_t error;
    mongoc_uri_t *u = mongoc_uri_new(uri);
    mongoc_client_t *c = mongoc_client_new_from_uri(u);
    mongoc_collection_t *coll =
        mongoc_client_get_collection(c, mongoc_uri_get_database(u), "pending");

    snprintf(id, sizeof(id), "carol|%lld", (long long)seq);
    bson_t *doc = BCON_NEW("_id", BCON_UTF8(id), "seq", BCON_INT64(seq), "user", BCON_UTF8("carol"),
                           "msgid", BCON_UTF8(msgid), "event", BCON_UTF8(event), "data",
                           BCON_UTF8(data), "ts", BCON_INT64(seq));
    assert_true(mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
    bson_destroy(doc);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(c);
    mongoc_uri_destroy(u);
}
#endif

/* MongoDB: old items (by seq) are ordered by msgid among new ones and taken. */
static void test_mongo_legacy_pending(void **state)
{
#ifdef CHAT_HAVE_MONGO
    fixture_t *f = *state;
    const char *ack[] = {"p40"}, *order[] = {"p10", "p20", "p40"};
    store_pendings_t pl;
    store_ackeds_t al;
    long n = -1;

    if (!on_mongo())
        return;
    put_legacy_pending(f->uri, 1, "p40", "chat", "{\"from\":\"bob\"}");
    put_legacy_pending(f->uri, 2, "p10", "system", "{}");
    assert_int_equal(store_pending_add(f->st, "carol", "p20", "chat", "{}", 3), STORE_OK);
    assert_int_equal(store_pending_list(f->st, "carol", 10, &pl), STORE_OK);
    assert_int_equal(pl.count, 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(pl.items[i].msgid, order[i]);
    store_pendings_free(&pl);
    assert_int_equal(store_pending_ack(f->st, "carol", ack, 1, &al), STORE_OK);
    assert_int_equal(al.count, 1);
    assert_string_equal(al.items[0].from, "bob"); /* from the old item's data */
    store_ackeds_free(&al);
    assert_int_equal(store_pending_drop(f->st, "carol", "p10"), STORE_OK);
    assert_int_equal(store_pending_count(f->st, "carol", &n), STORE_OK);
    assert_int_equal(n, 1);
#else
    (void)state;
#endif
}

/* Opening a version 1 file moves its pending items to version 2 in order;
 * friend events stored without a msgid (before c200491) keep theirs apart
 * and come first. A file of its own: the group's store goes on as it was. */
static void test_migrate_v1(void **state)
{
    fixture_t m = {0};
    store_pendings_t pl;
    store_ackeds_t al;
    const char *ack[] = {"m2"};
    char err[256] = "";
    long n = -1;

    (void)state;
    if (on_mongo())
        return; /* a SQLite file's schema */
    assert_int_equal(fresh_uri(&m), 0);
    const char *path = m.uri + strlen("sqlite:");
    write_v1_file(path, "INSERT INTO pending(user, msgid, event, data, ts) VALUES"
                        "('carol', '', 'friend_request', '{\"from\":\"bob\"}', 1),"
                        "('carol', 'm2', 'chat', '{\"m\":2}', 2),"
                        "('carol', '', 'friend_reply', '{}', 3),"
                        "('dave', 'm1', 'chat', '{}', 4);");
    m.st = store_open(m.uri, err, sizeof(err));
    assert_non_null(m.st);
    assert_int_equal(file_version(path), 2);

    assert_int_equal(store_pending_list(m.st, "carol", 10, &pl), STORE_OK);
    assert_int_equal(pl.count, 3);
    assert_string_equal(pl.items[0].msgid, "!0000000000000000001");
    assert_string_equal(pl.items[0].event, "friend_request");
    assert_string_equal(pl.items[0].data, "{\"from\":\"bob\"}");
    assert_string_equal(pl.items[1].msgid, "!0000000000000000003");
    assert_string_equal(pl.items[2].msgid, "m2");
    assert_int_equal(store_pending_drop(m.st, "carol", pl.items[0].msgid), STORE_OK);
    store_pendings_free(&pl);
    assert_int_equal(store_pending_ack(m.st, "carol", ack, 1, &al), STORE_OK);
    store_ackeds_free(&al);
    assert_int_equal(store_pending_count(m.st, "carol", &n), STORE_OK);
    assert_int_equal(n, 1);
    /* new items go to the version 2 table beside the moved ones */
    assert_int_equal(store_pending_add(m.st, "dave", "m3", "chat", "{}", 5), STORE_OK);
    reopen(&m);
    assert_int_equal(store_pending_count(m.st, "dave", &n), STORE_OK);
    assert_int_equal(n, 2);
    store_close(m.st);
    remove_db(&m);
}

/* A migration that cannot finish leaves the file as it was, and a version
 * this build does not know is refused. */
static void test_migrate_refused(void **state)
{
    fixture_t m = {0};
    char err[256] = "";

    (void)state;
    if (on_mongo())
        return;
    assert_int_equal(fresh_uri(&m), 0);
    const char *path = m.uri + strlen("sqlite:");
    write_v1_file(path, "INSERT INTO pending(user, msgid, event, data, ts) VALUES"
                        "('carol', 'm2', 'chat', '{}', 1), ('carol', 'm2', 'chat', '{}', 2);");
    assert_null(store_open(m.uri, err, sizeof(err)));
    assert_non_null(strstr(err, "UNIQUE"));
    assert_non_null(strstr(err, "the file stays at 1"));
    assert_int_equal(file_version(path), 1);
    remove_db(&m);

    assert_int_equal(fresh_uri(&m), 0);
    write_v1_file(path, "UPDATE schema_version SET version = 3;");
    err[0] = '\0';
    assert_null(store_open(m.uri, err, sizeof(err)));
    assert_non_null(strstr(err, "unsupported schema version 3"));
    remove_db(&m);
}

static void test_cids(void **state)
{
    fixture_t *f = *state;
    char msgid[STORE_MSGID_MAX];

    assert_int_equal(store_cid_get(f->st, "alice", "c1", 0, msgid), STORE_NOTFOUND);
    assert_int_equal(store_cid_put(f->st, "alice", "c1", "m77", 1000), STORE_OK);
    assert_int_equal(store_cid_get(f->st, "alice", "c1", 999, msgid), STORE_OK);
    assert_string_equal(msgid, "m77");
    assert_int_equal(store_cid_get(f->st, "alice", "c1", 1000, msgid), STORE_NOTFOUND);
    assert_int_equal(store_cid_get(f->st, "bob", "c1", 0, msgid), STORE_NOTFOUND);
    assert_int_equal(store_cid_put(f->st, "alice", "c2", "m78", 3000), STORE_OK);
    assert_int_equal(store_expire(f->st, 2000), STORE_OK);
    assert_int_equal(store_cid_get(f->st, "alice", "c1", 0, msgid), STORE_NOTFOUND);
    assert_int_equal(store_cid_get(f->st, "alice", "c2", 0, msgid), STORE_OK);
    assert_string_equal(msgid, "m78");
}

/* Nodes start together on one new store: every opener must succeed (SQLite:
 * WAL set once, locks waited out, never "database is locked"; MongoDB:
 * indexes created by whoever comes first, the others' createIndexes are
 * no-ops). */
#define OPENERS 8

static void open_and_write(const char *uri, int rfd, int i)
{
    char err[256] = "", name[16];
    char go;

    if (read(rfd, &go, 1) < 0) /* EOF when the parent lets every child go */
        _exit(3);
    store_t *st = store_open(uri, err, sizeof(err));
    if (!st) {
        fprintf(stderr, "opener %d: %s\n", i, err);
        _exit(1);
    }
    snprintf(name, sizeof name, "u%d", i);
    int rc = store_user_create(st, name, name, "h", 1);
    store_close(st);
    _exit(rc == STORE_OK ? 0 : 2);
}

static void test_concurrent_open(void **state)
{
    (void)state;
    int rounds = on_mongo() ? 3 : 10; /* a MongoDB round waits ~1 s for 8 pools to close */

    for (int round = 0; round < rounds; round++) {
        fixture_t f = {0};
        int go[2];
        pid_t kids[OPENERS];
        assert_int_equal(fresh_uri(&f), 0);
        assert_int_equal(pipe(go), 0);
        for (int i = 0; i < OPENERS; i++) {
            kids[i] = fork();
            assert_true(kids[i] >= 0);
            if (kids[i] == 0) {
                close(go[1]);
                open_and_write(f.uri, go[0], i);
            }
        }
        close(go[0]);
        close(go[1]); /* all children start at once */
        int failed = 0;
        for (int i = 0; i < OPENERS; i++) {
            int status = 0;
            assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
            failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        assert_int_equal(failed, 0);
        char err[256] = "";
        f.st = store_open(f.uri, err, sizeof(err));
        assert_non_null(f.st);
        store_user_t u;
        for (int i = 0; i < OPENERS; i++) {
            char name[16];
            snprintf(name, sizeof name, "u%d", i);
            assert_int_equal(store_user_get(f.st, name, &u), STORE_OK);
        }
        store_close(f.st);
        remove_db(&f);
    }
}

static void test_survives_reopen(void **state)
{
    fixture_t *f = *state;
    store_user_t u;
    store_group_t g;
    store_msgs_t l;
    char conv[STORE_CONV_MAX];

    assert_int_equal(store_user_create(f->st, "erin", "Erin", "h", 1), STORE_OK);
    assert_int_equal(store_group_create(f->st, "gx", "X", "erin", 1), STORE_OK);
    put_msg(f->st, "m90", 'c', "erin", "bob", "persisted");
    assert_int_equal(store_pending_add(f->st, "bob", "m90", "chat", "{}", 1), STORE_OK);
    reopen(f);
    assert_int_equal(store_user_get(f->st, "erin", &u), STORE_OK);
    assert_string_equal(u.nickname, "Erin");
    assert_int_equal(store_group_get(f->st, "gx", &g), STORE_OK);
    assert_int_equal(g.members, 1);
    store_conv_direct("bob", "erin", conv);
    assert_int_equal(store_history(f->st, conv, NULL, 5, &l), STORE_OK);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].message, "persisted");
    store_msgs_free(&l);
    assert_int_equal(store_friends_check(f->st, "alice", "bob"), STORE_OK);
}

/* --durability process: what a batch committed survives the kill -9 of
 * the writer right after the commit (the WAL is in the OS, not fsynced). */
static void crash_work(store_t *st, void *arg)
{
    (void)arg;
    for (int i = 0; i < 50; i++) {
        char id[16];
        snprintf(id, sizeof id, "k%02d", i);
        put_msg(st, id, 'c', "kim", "lee", "kept");
    }
}

static void crash_done(void *arg)
{
    (void)arg;
    raise(SIGKILL); /* "answered", then killed before any close or checkpoint */
}

static void test_process_durability_kill(void **state)
{
    fixture_t *f = *state;
    store_msgs_t l;
    char conv[STORE_CONV_MAX];
    int status = 0;

    if (on_mongo()) { /* the level is the URI's write concern there */
        assert_int_equal(store_set_durability(f->st, STORE_DURABLE_PROCESS), STORE_ERR);
        return;
    }
    assert_int_equal(store_set_durability(f->st, STORE_DURABLE_PROCESS), STORE_OK);
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        store_submit(f->st, crash_work, crash_done, NULL);
        _exit(3); /* not reached */
    }
    assert_int_equal(waitpid(kid, &status, 0), kid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    reopen(f);
    store_conv_direct("kim", "lee", conv);
    assert_int_equal(store_history(f->st, conv, NULL, 100, &l), STORE_OK);
    assert_int_equal(l.count, 50);
    store_msgs_free(&l);
    assert_int_equal(store_set_durability(f->st, STORE_DURABLE_DISK), STORE_OK);
}

/* The WAL index (the -shm file, sqlite.org/walformat.html): frames in the
 * WAL (header offset 16) and frames already copied back (offset 96). */
static void wal_frames(const fixture_t *f, uint32_t *in_wal, uint32_t *copied)
{
    char path[160];
    unsigned char shm[128];

    snprintf(path, sizeof(path), "%s/chat.db-shm", f->dir);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, shm, sizeof(shm), 0), (ssize_t)sizeof(shm));
    close(fd);
    memcpy(in_wal, shm + 16, 4); /* native byte order, as SQLite keeps it */
    memcpy(copied, shm + 96, 4);
}

/* SQLite: once the WAL passes its mark (1000 pages) the checkpoint thread
 * copies it back, not the committing writer; a moment after the last
 * commit nothing is left to copy. (SQLite's own autocheckpoint, run by
 * the writer at each 1000-page mark, would leave the frames written after
 * its last run.) */
static void test_checkpoint_in_background(void **state)
{
    fixture_t *f = *state;
    char text[1500], id[16];
    uint32_t in_wal = 0, copied = 0;

    if (on_mongo())
        return;
    memset(text, 'w', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    /* each its own commit, until the last one leaves the WAL past the
     * mark: a checkpoint that finished early lets the writer restart the
     * WAL, and frames under the mark wait for the next one by design */
    for (int i = 0; i < 3000 && (i < 700 || in_wal < 1000); i++) {
        snprintf(id, sizeof id, "w%04d", i);
        put_msg(f->st, id, 'c', "wal", "ann", text);
        if (i >= 699)
            wal_frames(f, &in_wal, &copied);
    }
    assert_true(in_wal >= 1000);
    for (int i = 0; i < 500 && copied != in_wal; i++) { /* up to 10 s on a loaded box */
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
        wal_frames(f, &in_wal, &copied);
    }
    if (copied != in_wal)
        fail_msg("WAL holds %u frames, %u copied back", in_wal, copied);
}

/* Before store_start, store_submit runs work and done inline; a failed
 * call rolls back only its own item. */
typedef struct inline_op {
    store_t *st;
    const char *user;
    char kind;
    int rc_user, rc_exists, rc_msg;
    int status;
} inline_op_t;

static void inline_work(store_t *st, void *arg)
{
    inline_op_t *op = arg;
    store_msg_t m = {.kind = op->kind, .message = (char *)"x"};

    snprintf(m.msgid, sizeof(m.msgid), "i-%s", op->user);
    op->rc_user = store_user_create(st, op->user, "N", "h", 1);
    op->rc_exists = store_user_exists(st, op->user);
    op->rc_msg = store_msg_put(st, &m, "conv"); /* kind 'x' breaks a CHECK: STORE_ERR */
}

static void inline_done(void *arg)
{
    inline_op_t *op = arg;

    op->status = store_done_status(op->st);
}

static void test_inline_submit(void **state)
{
    fixture_t *f = *state;
    inline_op_t good = {f->st, "ivy", 'c', -9, -9, -9, -9};
    inline_op_t bad = {f->st, "ghost", 'x', -9, -9, -9, -9};
    store_user_t u;
    store_msg_t m;
    store_stats_t stats;

    store_submit(f->st, inline_work, inline_done, &good);
    assert_int_equal(good.rc_user, STORE_OK);
    assert_int_equal(good.rc_msg, STORE_OK);
    assert_int_equal(good.status, STORE_OK);
    store_submit(f->st, inline_work, inline_done, &bad);
    assert_int_equal(bad.rc_user, STORE_OK);
    assert_int_equal(bad.rc_exists, STORE_OK); /* seen inside its own transaction */
    assert_int_equal(bad.rc_msg, STORE_ERR);
    assert_int_equal(bad.status, STORE_ERR);
    assert_int_equal(store_backlog(f->st), 0);

    assert_int_equal(store_user_get(f->st, "ivy", &u), STORE_OK);
    assert_int_equal(store_msg_get(f->st, "i-ivy", &m), STORE_OK);
    free(m.message);
    /* SQLite rolls the failed item back; MongoDB (no transactions) keeps
     * its earlier writes, as store.h says. */
    assert_int_equal(store_user_get(f->st, "ghost", &u), on_mongo() ? STORE_OK : STORE_NOTFOUND);
    /* not remembered from the batch that created it and was rolled back */
    assert_int_equal(store_user_exists(f->st, "ghost"), on_mongo() ? STORE_OK : STORE_NOTFOUND);
    assert_int_equal(store_user_exists(f->st, "ivy"), STORE_OK);
    store_get_stats(f->st, &stats);
    assert_int_equal(stats.items, 2);
    assert_int_equal(stats.items_failed, 1);
    assert_int_equal(stats.commits, 2);

    /* A direct call that fails leaves the connection usable. */
    m = (store_msg_t){.msgid = "direct-bad", .kind = 'q'};
    assert_int_equal(store_msg_put(f->st, &m, "c"), STORE_ERR);
    assert_int_equal(store_user_create(f->st, "after", "A", "h", 1), STORE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_server_down),
        cmocka_unit_test(test_conv_names),
        cmocka_unit_test(test_users),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_friends),
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_rooms),
        cmocka_unit_test(test_messages_history),
        cmocka_unit_test(test_conv_last_other_writer),
        cmocka_unit_test(test_pending),
        cmocka_unit_test(test_migrate_v1),
        cmocka_unit_test(test_mongo_legacy_pending),
        cmocka_unit_test(test_migrate_refused),
        cmocka_unit_test(test_cids),
        cmocka_unit_test(test_survives_reopen),
        cmocka_unit_test(test_concurrent_open),
        cmocka_unit_test(test_inline_submit),
        cmocka_unit_test(test_process_durability_kill),
        cmocka_unit_test(test_checkpoint_in_background),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
