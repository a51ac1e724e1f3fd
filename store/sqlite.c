/* store/sqlite.c: the SQLite backend.
 *
 * One connection, WAL, synchronous=FULL by default (a committed batch is on
 * disk; NORMAL with STORE_DURABLE_PROCESS: in the OS, safe from crashes),
 * foreign keys on, busy timeout for other processes (chat-seed) sharing the
 * file. Every statement is prepared once and cached. The caller (store.c)
 * serialises all use of the connection.
 *
 * Checkpoints (copying the WAL back into the database, with its fsyncs) run
 * on a thread of their own with its own connection, not inside a commit:
 * done by the writer, each one stalled every write queued behind it (the
 * p99 of the 1:1 path, docs/BENCHMARKS.md section 16). A writer that finds
 * the WAL far past the mark checkpoints itself, which bounds the file.
 */
#include "store/store_int.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SQLITE_SCHEMA_VERSION 2
#define CKPT_DUE_PAGES 1000     /* the checkpointer's mark (SQLite's autocheckpoint) */
#define CKPT_GAP_MS 100         /* the checkpointer rests this long after each run */
#define CKPT_INLINE_PAGES 16000 /* the checkpointer is behind: the writer does it */
#define SQLITE_BUSY_MS 5000

/* Version 2: one b-tree, a user's items in msgid (send) order; version 1
 * kept a rowid table, two indexes and an AUTOINCREMENT counter, four
 * b-trees written per item added and three per item taken. */
#define PENDING_V2_SQL(name)                                                                   \
    "CREATE TABLE IF NOT EXISTS " name "(user TEXT NOT NULL, msgid TEXT NOT NULL,"             \
    " event TEXT NOT NULL, data TEXT NOT NULL, ts INTEGER NOT NULL,"                           \
    " PRIMARY KEY(user, msgid)) WITHOUT ROWID;"

/* A version 1 file: its pending items move over in one transaction. Builds
 * before c200491 stored friend events without a msgid: they get "!" and
 * their seq, which sorts before every real msgid (they are older). Nodes of
 * the old build must be stopped first (docs/DEPLOY.md). */
static const char migrate_v1_sql[] =
    PENDING_V2_SQL("pending_v2")
    "INSERT INTO pending_v2(user, msgid, event, data, ts)"
    " SELECT user, CASE msgid WHEN '' THEN printf('!%019d', seq) ELSE msgid END,"
    " event, data, ts FROM pending ORDER BY seq;"
    "DROP TABLE pending;"
    "ALTER TABLE pending_v2 RENAME TO pending;"
    "UPDATE schema_version SET version = 2;";

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL);"
    "INSERT INTO schema_version(version) SELECT 2 WHERE NOT EXISTS (SELECT 1 FROM schema_version);"
    "CREATE TABLE IF NOT EXISTS users(user TEXT PRIMARY KEY, nickname TEXT NOT NULL,"
    " pwhash TEXT NOT NULL, created INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS tokens(hash TEXT PRIMARY KEY, user TEXT NOT NULL,"
    " expires INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS tokens_expires ON tokens(expires);"
    "CREATE TABLE IF NOT EXISTS friends(a TEXT NOT NULL, b TEXT NOT NULL,"
    " since INTEGER NOT NULL, PRIMARY KEY(a, b));"
    "CREATE TABLE IF NOT EXISTS friend_requests(\"from\" TEXT NOT NULL, \"to\" TEXT NOT NULL,"
    " note TEXT NOT NULL, ts INTEGER NOT NULL, PRIMARY KEY(\"from\", \"to\"));"
    "CREATE TABLE IF NOT EXISTS \"groups\"(gid TEXT PRIMARY KEY, name TEXT NOT NULL,"
    " owner TEXT NOT NULL, created INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS group_members(gid TEXT NOT NULL REFERENCES \"groups\"(gid)"
    " ON DELETE CASCADE, user TEXT NOT NULL, PRIMARY KEY(gid, user));"
    "CREATE INDEX IF NOT EXISTS group_members_user ON group_members(user);"
    "CREATE TABLE IF NOT EXISTS rooms(room TEXT PRIMARY KEY, title TEXT NOT NULL,"
    " creator TEXT NOT NULL, created INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS messages(msgid TEXT PRIMARY KEY,"
    " kind TEXT NOT NULL CHECK(kind IN ('c', 'g')),"
    " sender TEXT NOT NULL, target TEXT NOT NULL, conv TEXT NOT NULL, ts INTEGER NOT NULL,"
    " format TEXT NOT NULL, message TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS messages_conv ON messages(conv, msgid);"
    PENDING_V2_SQL("pending")
    "CREATE TABLE IF NOT EXISTS cids(user TEXT NOT NULL, cid TEXT NOT NULL,"
    " msgid TEXT NOT NULL, ts INTEGER NOT NULL, PRIMARY KEY(user, cid));"
    "CREATE INDEX IF NOT EXISTS cids_ts ON cids(ts);";

#define GROUP_COLS "g.gid, g.name, g.owner, (SELECT count(*) FROM group_members c WHERE c.gid = g.gid)"
#define MSG_COLS "msgid, kind, sender, target, ts, format, message"

enum stmt_id {
    S_BEGIN, S_BEGIN_READ, S_COMMIT, S_ROLLBACK,
    S_ITEM_SP, S_ITEM_RELEASE, S_ITEM_UNDO,
    S_OP_SP, S_OP_RELEASE, S_OP_UNDO,
    S_USER_INS, S_USER_GET, S_TOKEN_PUT, S_TOKEN_CHECK,
    S_FRIEND_IS, S_FREQ_PUT, S_FREQ_TAKE, S_FRIEND_INS, S_FRIENDS_LIST,
    S_GROUP_INS, S_MEMBER_INS, S_GROUP_GET, S_GROUP_EXISTS, S_MEMBER_DEL, S_MEMBER_IS,
    S_MEMBERS, S_GROUPS_OF, S_GROUPS_ALL,
    S_ROOM_INS, S_ROOM_GET, S_ROOMS,
    S_MSG_INS, S_HIST, S_HIST_BEFORE, S_MSG_GET, S_CONV_LAST,
    S_PEND_INS, S_PEND_LIST, S_PEND_COUNT, S_PEND_DEL_MSGID, S_PEND_ACK,
    S_CID_GET, S_CID_PUT, S_EXPIRE_CIDS, S_EXPIRE_TOKENS,
    S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_BEGIN_READ] = "BEGIN DEFERRED",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_ITEM_SP] = "SAVEPOINT item",
    [S_ITEM_RELEASE] = "RELEASE item",
    [S_ITEM_UNDO] = "ROLLBACK TO item",
    [S_OP_SP] = "SAVEPOINT op",
    [S_OP_RELEASE] = "RELEASE op",
    [S_OP_UNDO] = "ROLLBACK TO op",
    [S_USER_INS] = "INSERT INTO users(user, nickname, pwhash, created) VALUES(?1, ?2, ?3, ?4)",
    [S_USER_GET] = "SELECT user, nickname, pwhash FROM users WHERE user = ?1",
    [S_TOKEN_PUT] = "INSERT OR REPLACE INTO tokens(hash, user, expires) VALUES(?1, ?2, ?3)",
    [S_TOKEN_CHECK] = "SELECT 1 FROM tokens WHERE hash = ?1 AND user = ?2 AND expires > ?3",
    [S_FRIEND_IS] = "SELECT 1 FROM friends WHERE a = ?1 AND b = ?2",
    [S_FREQ_PUT] = "INSERT OR REPLACE INTO friend_requests(\"from\", \"to\", note, ts)"
                   " VALUES(?1, ?2, ?3, ?4)",
    [S_FREQ_TAKE] = "DELETE FROM friend_requests WHERE \"from\" = ?1 AND \"to\" = ?2",
    [S_FRIEND_INS] = "INSERT OR IGNORE INTO friends(a, b, since) VALUES(?1, ?2, ?3)",
    [S_FRIENDS_LIST] = "SELECT f.b, COALESCE(u.nickname, '') FROM friends f"
                       " LEFT JOIN users u ON u.user = f.b WHERE f.a = ?1 ORDER BY f.b",
    [S_GROUP_INS] = "INSERT INTO \"groups\"(gid, name, owner, created) VALUES(?1, ?2, ?3, ?4)",
    [S_MEMBER_INS] = "INSERT INTO group_members(gid, user) VALUES(?1, ?2)",
    [S_GROUP_GET] = "SELECT " GROUP_COLS " FROM \"groups\" g WHERE g.gid = ?1",
    [S_GROUP_EXISTS] = "SELECT 1 FROM \"groups\" WHERE gid = ?1",
    [S_MEMBER_DEL] = "DELETE FROM group_members WHERE gid = ?1 AND user = ?2",
    [S_MEMBER_IS] = "SELECT 1 FROM group_members WHERE gid = ?1 AND user = ?2",
    [S_MEMBERS] = "SELECT m.user, COALESCE(u.nickname, '') FROM group_members m"
                  " LEFT JOIN users u ON u.user = m.user WHERE m.gid = ?1 ORDER BY m.user",
    [S_GROUPS_OF] = "SELECT " GROUP_COLS " FROM group_members m JOIN \"groups\" g"
                    " ON g.gid = m.gid WHERE m.user = ?1 ORDER BY g.gid",
    [S_GROUPS_ALL] = "SELECT " GROUP_COLS " FROM \"groups\" g ORDER BY g.gid",
    [S_ROOM_INS] = "INSERT INTO rooms(room, title, creator, created) VALUES(?1, ?2, ?3, ?4)",
    [S_ROOM_GET] = "SELECT room, title, creator FROM rooms WHERE room = ?1",
    [S_ROOMS] = "SELECT room, title, creator FROM rooms ORDER BY room",
    [S_MSG_INS] = "INSERT INTO messages(msgid, kind, sender, target, conv, ts, format, message)"
                  " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_HIST] = "SELECT " MSG_COLS " FROM messages WHERE conv = ?1"
               " ORDER BY msgid DESC LIMIT ?2",
    [S_HIST_BEFORE] = "SELECT " MSG_COLS " FROM messages WHERE conv = ?1 AND msgid < ?3"
                      " ORDER BY msgid DESC LIMIT ?2",
    [S_MSG_GET] = "SELECT " MSG_COLS " FROM messages WHERE msgid = ?1",
    /* one step down the (conv, msgid) index */
    [S_CONV_LAST] = "SELECT msgid FROM messages WHERE conv = ?1 ORDER BY msgid DESC LIMIT 1",
    [S_PEND_INS] = "INSERT INTO pending(user, msgid, event, data, ts) VALUES(?1, ?2, ?3, ?4, ?5)",
    [S_PEND_LIST] = "SELECT msgid, event, data FROM pending WHERE user = ?1"
                    " ORDER BY msgid LIMIT ?2",
    [S_PEND_COUNT] = "SELECT count(*) FROM pending WHERE user = ?1",
    [S_PEND_DEL_MSGID] = "DELETE FROM pending WHERE user = ?1 AND msgid = ?2",
    /* a direct message's item holds its sender: no look-up in messages */
    [S_PEND_ACK] = "DELETE FROM pending WHERE user = ?1 AND msgid = ?2"
                   " RETURNING CASE WHEN event = 'chat' AND json_valid(data)"
                   " THEN json_extract(data, '$.from') END",
    [S_CID_GET] = "SELECT msgid FROM cids WHERE user = ?1 AND cid = ?2 AND ts > ?3",
    [S_CID_PUT] = "INSERT OR REPLACE INTO cids(user, cid, msgid, ts) VALUES(?1, ?2, ?3, ?4)",
    [S_EXPIRE_CIDS] = "DELETE FROM cids WHERE ts < ?1",
    [S_EXPIRE_TOKENS] = "DELETE FROM tokens WHERE expires < ?1",
};

/* The checkpoint thread: woken by the writer's WAL hook. */
typedef struct sqlite_ckpt {
    sqlite3 *db; /* its own connection; NULL: the writer checkpoints as usual */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    int due;
    int stopping;
    int idle;     /* waiting for a due checkpoint (not resting) */
    atomic_uint_fast64_t runs; /* checkpoints run, here or inline */
} sqlite_ckpt_t;

typedef struct sqlite_be {
    sqlite3 *db;
    sqlite3_stmt *stmts[S_COUNT];
    int read_batch; /* in a read batch: no write lock held, writes refused */
    int write_batch; /* in a write batch: its items share one fate, no savepoints */
    sqlite_ckpt_t ckpt;
} sqlite_be_t;

/* ------------------------------------------------------------------ statement helpers */

static sqlite3_stmt *stmt_get(sqlite_be_t *be, enum stmt_id id)
{
    if (!be->stmts[id] && sqlite3_prepare_v3(be->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                             &be->stmts[id], NULL) != SQLITE_OK) {
        CORE_ERROR("store/sqlite: prepare: %s", sqlite3_errmsg(be->db));
        be->stmts[id] = NULL;
    }
    return be->stmts[id];
}

static void stmt_done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

static void bind_text(sqlite3_stmt *s, int idx, const char *v)
{
    sqlite3_bind_text(s, idx, v ? v : "", -1, SQLITE_STATIC);
}

static void bind_u64(sqlite3_stmt *s, int idx, uint64_t v)
{
    sqlite3_bind_int64(s, idx, v > INT64_MAX ? INT64_MAX : (sqlite3_int64)v);
}

static const char *col_text(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    return t ? (const char *)t : "";
}

static int step_error(sqlite_be_t *be, sqlite3_stmt *s, int rc)
{
    int ext = sqlite3_extended_errcode(be->db);

    if (ext == SQLITE_CONSTRAINT_PRIMARYKEY || ext == SQLITE_CONSTRAINT_UNIQUE)
        return STORE_EXISTS;
    CORE_ERROR("store/sqlite: %s: %s (%d)", sqlite3_sql(s), sqlite3_errmsg(be->db), rc);
    return STORE_ERR;
}

/* A write in a read batch would take the write lock after the snapshot was
 * taken (SQLITE_BUSY_SNAPSHOT under contention): refused, loudly. */
static int write_refused(sqlite_be_t *be, sqlite3_stmt *s)
{
    if (!be->read_batch || sqlite3_stmt_readonly(s))
        return 0;
    CORE_ERROR("store/sqlite: a write in a read-only work item: %s", sqlite3_sql(s));
    stmt_done(s);
    return 1;
}

/* Runs a bound statement without result rows: OK, EXISTS (key taken) or ERR. */
static int run_write(sqlite_be_t *be, sqlite3_stmt *s)
{
    if (write_refused(be, s))
        return STORE_ERR;
    int rc = sqlite3_step(s);
    int ret = rc == SQLITE_DONE ? STORE_OK : step_error(be, s, rc);

    stmt_done(s);
    return ret;
}

/* Like run_write, and NOTFOUND when no row changed. */
static int run_delete(sqlite_be_t *be, sqlite3_stmt *s)
{
    int ret = run_write(be, s);

    if (ret == STORE_OK && sqlite3_changes(be->db) == 0)
        ret = STORE_NOTFOUND;
    return ret;
}

/* Steps to the first row: OK (row available; caller reads then stmt_done),
 * NOTFOUND or ERR (statement already reset). */
static int run_first(sqlite_be_t *be, sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);

    if (rc == SQLITE_ROW)
        return STORE_OK;
    stmt_done(s);
    return rc == SQLITE_DONE ? STORE_NOTFOUND : step_error(be, s, rc);
}

/* A bound statement whose only question is "is there a row". */
static int run_exists(sqlite_be_t *be, sqlite3_stmt *s)
{
    int ret = run_first(be, s);

    if (ret == STORE_OK)
        stmt_done(s);
    return ret;
}

static int run_simple(sqlite_be_t *be, enum stmt_id id)
{
    sqlite3_stmt *s = stmt_get(be, id);

    return s ? run_write(be, s) : STORE_ERR;
}

typedef void (*row_fill_fn)(sqlite3_stmt *s, void *slot);

/* Appends one element per row. On ERR the partial list is left to the
 * caller's _free. */
static int run_list(sqlite_be_t *be, sqlite3_stmt *s, void **items, size_t *count, size_t elem,
                    row_fill_fn fill)
{
    size_t cap = 0;
    int rc;

    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        fill(s, store__list_push(items, count, &cap, elem));
    stmt_done(s);
    return rc == SQLITE_DONE ? STORE_OK : step_error(be, s, rc);
}

/* Nested savepoint so a multi-statement call is atomic on its own; in a
 * write batch a failed call takes its whole transaction down instead. */
static int op_begin(sqlite_be_t *be)
{
    return be->write_batch ? STORE_OK : run_simple(be, S_OP_SP);
}

static int op_end(sqlite_be_t *be, int ret)
{
    if (be->write_batch)
        return ret;
    if (ret == STORE_ERR)
        run_simple(be, S_OP_UNDO);
    if (run_simple(be, S_OP_RELEASE) != STORE_OK)
        ret = STORE_ERR;
    return ret;
}

/* ------------------------------------------------------------------ row readers */

static void fill_name(sqlite3_stmt *s, void *slot)
{
    store_name_t *n = slot;

    core_copy_trunc(n->user, sizeof(n->user), col_text(s, 0));
    core_copy_trunc(n->nickname, sizeof(n->nickname), col_text(s, 1));
}

static void fill_group(sqlite3_stmt *s, void *slot)
{
    store_group_t *g = slot;

    core_copy_trunc(g->gid, sizeof(g->gid), col_text(s, 0));
    core_copy_trunc(g->name, sizeof(g->name), col_text(s, 1));
    core_copy_trunc(g->owner, sizeof(g->owner), col_text(s, 2));
    g->members = (long)sqlite3_column_int64(s, 3);
}

static void fill_room(sqlite3_stmt *s, void *slot)
{
    store_room_t *r = slot;

    core_copy_trunc(r->room, sizeof(r->room), col_text(s, 0));
    core_copy_trunc(r->title, sizeof(r->title), col_text(s, 1));
    core_copy_trunc(r->creator, sizeof(r->creator), col_text(s, 2));
}

static void fill_msg(sqlite3_stmt *s, void *slot)
{
    store_msg_t *m = slot;

    core_copy_trunc(m->msgid, sizeof(m->msgid), col_text(s, 0));
    m->kind = col_text(s, 1)[0];
    core_copy_trunc(m->from, sizeof(m->from), col_text(s, 2));
    core_copy_trunc(m->to, sizeof(m->to), col_text(s, 3));
    m->ts = (uint64_t)sqlite3_column_int64(s, 4);
    core_copy_trunc(m->format, sizeof(m->format), col_text(s, 5));
    m->message = core_xstrdup(col_text(s, 6));
}

static void fill_pending(sqlite3_stmt *s, void *slot)
{
    store_pending_t *p = slot;

    core_copy_trunc(p->msgid, sizeof(p->msgid), col_text(s, 0));
    core_copy_trunc(p->event, sizeof(p->event), col_text(s, 1));
    p->data = core_xstrdup(col_text(s, 2));
}

/* ------------------------------------------------------------------ batches */

/* A write batch takes the write lock up front (IMMEDIATE: it waits in the
 * busy handler, never fails half-way); a read batch only a snapshot. */
static int sq_batch_begin(void *be, int readonly)
{
    sqlite_be_t *b = be;
    int rc = run_simple(b, readonly ? S_BEGIN_READ : S_BEGIN);

    b->read_batch = readonly && rc == STORE_OK;
    b->write_batch = !readonly && rc == STORE_OK;
    return rc;
}

static int sq_batch_commit(void *be)
{
    sqlite_be_t *b = be;

    b->read_batch = b->write_batch = 0;
    return run_simple(b, S_COMMIT);
}

static void sq_batch_abort(void *be)
{
    sqlite_be_t *b = be;

    b->read_batch = b->write_batch = 0;
    if (!sqlite3_get_autocommit(b->db))
        run_simple(b, S_ROLLBACK);
}

static int sq_batch_alive(void *be)
{
    return !sqlite3_get_autocommit(((sqlite_be_t *)be)->db);
}

/* A savepoint per item copies every page the item touches first into a
 * sub-journal (a third of a chat's statement time at saturation,
 * docs/BENCHMARKS.md section 33): in a write batch, items run bare and a
 * failed one rolls the transaction back (batch_alive then reports it gone
 * and the store fails every item in it, to be retried). Outside one
 * (autocommit, read batch) each keeps its own. */
static int sq_item_begin(void *be)
{
    return ((sqlite_be_t *)be)->write_batch ? STORE_OK : run_simple(be, S_ITEM_SP);
}

static int sq_item_end(void *be, int failed)
{
    int ret = STORE_OK;

    if (((sqlite_be_t *)be)->write_batch) {
        if (failed)
            sq_batch_abort(be);
        return STORE_OK;
    }
    if (failed && run_simple(be, S_ITEM_UNDO) != STORE_OK)
        ret = STORE_ERR;
    if (run_simple(be, S_ITEM_RELEASE) != STORE_OK)
        ret = STORE_ERR;
    return ret;
}

/* ------------------------------------------------------------------ accounts */

static int sq_user_create(void *be, const char *user, const char *nickname, const char *pwhash,
                          uint64_t ts)
{
    sqlite3_stmt *s = stmt_get(be, S_USER_INS);

    if (!s)
        return STORE_ERR;
    bind_text(s, 1, user);
    bind_text(s, 2, nickname);
    bind_text(s, 3, pwhash);
    bind_u64(s, 4, ts);
    return run_write(be, s);
}

static int sq_user_get(void *be, const char *user, store_user_t *out)
{
    sqlite3_stmt *s = stmt_get(be, S_USER_GET);
    int ret;

    memset(out, 0, sizeof(*out));
    if (!s)
        return STORE_ERR;
    bind_text(s, 1, user);
    ret = run_first(be, s);
    if (ret != STORE_OK)
        return ret;
    core_copy_trunc(out->user, sizeof(out->user), col_text(s, 0));
    core_copy_trunc(out->nickname, sizeof(out->nickname), col_text(s, 1));
    core_copy_trunc(out->pwhash, sizeof(out->pwhash), col_text(s, 2));
    stmt_done(s);
    return STORE_OK;
}

static int sq_token_put(void *be, const char *user, const char *token_hash, uint64_t expires_ms)
{
    sqlite3_stmt *s = stmt_get(be, S_TOKEN_PUT);

    if (!s)
        return STORE_ERR;
    bind_text(s, 1, token_hash);
    bind_text(s, 2, user);
    bind_u64(s, 3, expires_ms);
    return run_write(be, s);
}

static int sq_token_check(void *be, const char *user, const char *token_hash, uint64_t now_ms)
{
    sqlite3_stmt *s = stmt_get(be, S_TOKEN_CHECK);

    if (!s)
        return STORE_ERR;
    bind_text(s, 1, token_hash);
    bind_text(s, 2, user);
    bind_u64(s, 3, now_ms);
    return run_exists(be, s);
}

/* ------------------------------------------------------------------ friends */

static int pair_stmt(sqlite_be_t *be, enum stmt_id id, const char *a, const char *b,
                     int (*run)(sqlite_be_t *, sqlite3_stmt *))
{
    sqlite3_stmt *s = stmt_get(be, id);

    if (!s)
        return STORE_ERR;
    bind_text(s, 1, a);
    bind_text(s, 2, b);
    return run(be, s);
}

static int sq_friends_check(void *be, const char *a, const char *b)
{
    return pair_stmt(be, S_FRIEND_IS, a, b, run_exists);
}

static int sq_friend_request_put(void *be, const char *from, const char *to, const char *note,
                                 uint64_t ts)
{
    int ret = sq_friends_check(be, from, to);
    sqlite3_stmt *s;

    if (ret != STORE_NOTFOUND)
        return ret == STORE_OK ? STORE_EXISTS : ret;
    s = stmt_get(be, S_FREQ_PUT);
    if (!s)
        return STORE_ERR;
    bind_text(s, 1, from);
    bind_text(s, 2, to);
    bind_text(s, 3, note);
    bind_u64(s, 4, ts);
    return run_write(be, s);
}

static int sq_friend_request_take(void *be, const char *from, const char *to)
{
    return pair_stmt(be, S_FREQ_TAKE, from, to, run_delete);
}

static int friend_insert(sqlite_be_t *be, const char *a, const char *b, uint64_t ts, int *added)
{
    sqlite3_stmt *s = stmt_get(be, S_FRIEND_INS);
    int ret;

    if (!s)
        return STORE_ERR;
    bind_text(s, 1, a);
    bind_text(s, 2, b);
    bind_u64(s, 3, ts);
    ret = run_write(be, s);
    if (ret == STORE_OK && sqlite3_changes(be->db) > 0)
        (*added)++;
    return ret;
}

/* Both directions; EXISTS when both already existed. */
static int sq_friend_add(void *be, const char *a, const char *b, uint64_t ts)
{
    int added = 0;
    int ret = op_begin(be);

    if (ret != STORE_OK)
        return ret;
    ret = friend_insert(be, a, b, ts, &added);
    if (ret == STORE_OK)
        ret = friend_insert(be, b, a, ts, &added);
    ret = op_end(be, ret);
    return ret == STORE_OK && added == 0 ? STORE_EXISTS : ret;
}

static int sq_friends_list(void *be, const char *user, store_names_t *out)
{
    sqlite3_stmt *s = stmt_get(be, S_FRIENDS_LIST);
    int ret;

    memset(out, 0, sizeof(*out));
    if (!s)
        return STORE_ERR;
    bind_text(s, 1, user);
    ret = run_list(be, s, (void **)&out->items, &out->count, sizeof(*out->items), fill_name);
    if (ret != STORE_OK)
        store_names_free(out);
    return ret;
}

/* ------------------------------------------------------------------ groups */

static int sq_group_create(void *be, const char *gid, const char *name, const char *owner,
                           uint64_t ts)
{
    sqlite3_stmt *s;
    int ret = op_begin(be);

    if (ret != STORE_OK)
        return ret;
    s = stmt_get(be, S_GROUP_INS);
    if (!s)
        return op_end(be, STORE_ERR);
    bind_text(s, 1, gid);
    bind_text(s, 2, name);
    bind_text(s, 3, owner);
    bind_u64(s, 4, ts);
    ret = run_write(be, s);
    if (ret == STORE_OK)
        ret = pair_stmt(be, S_MEMBER_INS, gid, owner, run_write);
    return op_end(be, ret);
}

static int sq_group_get(void *be, const char *gid, store_group_t *out)
{
    sqlite3_stmt *s = stmt_get(be, S_GROUP_GET);
    int ret;

    memset(out, 0, sizeof(*out));
    if (!s)
        return STORE_ERR;
    bind_text(s, 1, gid);
    ret = run_first(be, s);
    if (ret != STORE_OK)
        return ret;
    fill_group(s, out);
    stmt_done(s);
    return STORE_OK;
}

static int group_exists(sqlite_be_t *be, const char *gid)
{
    sqlite3_stmt *s = stmt_get(be, S_GROUP_EXISTS);

    if (!s)
        return STORE_ERR;
    bind_text(s, 1, gid);
    return run_exists(be, s);
}

static int sq_group_join(void *be, const char *gid, const char *user)
{
    int ret = group_exists(be, gid);

    if (ret != STORE_OK)
        return ret;
    return pair_stmt(be, S_MEMBER_INS, gid, user, run_write);
}

static int sq_group_leave(void *be, const char *gid, const char *user)
{
    return pair_stmt(be, S_MEMBER_DEL, gid, user, run_delete);
}

static int sq_group_is_member(void *be, const char *gid, const char *user)
{
    return pair_stmt(be, S_MEMBER_IS, gid, user, run_exists);
}

/* NOTFOUND for an unknown group. */
static int sq_group_members(void *be, const char *gid, store_names_t *out)
{
    sqlite3_stmt *s;
    int ret;

    memset(out, 0, sizeof(*out));
    ret = group_exists(be, gid);
    if (ret != STORE_OK)
        return ret;
    s = stmt_get(be, S_MEMBERS);
    if (!s)
        return STORE_ERR;
    bind_text(s, 1, gid);
    ret = run_list(be, s, (void **)&out->items, &out->count, sizeof(*out->items), fill_name);
    if (ret != STORE_OK)
        store_names_free(out);
    return ret;
}

static int groups_query(sqlite_be_t *be, enum stmt_id id, const char *user, store_groups_t *out)
{
    sqlite3_stmt *s = stmt_get(be, id);
    int ret;

    memset(out, 0, sizeof(*out));
    if (!s)
        return STORE_ERR;
    if (user)
        bind_text(s, 1, user);
    ret = run_list(be, s, (void **)&out->items, &out->count, sizeof(*out->items), fill_group);
    if (ret != STORE_OK)
        store_groups_free(out);
    return ret;
}

static int sq_groups_of(void *be, const char *user, store_groups_t *out)
{
    return groups_query(be, S_GROUPS_OF, user ? user : "", out);
}

static int sq_groups_all(void *be, store_groups_t *out)
{
    return groups_query(be, S_GROUPS_ALL, NULL, out);
}

/* ------------------------------------------------------------------ rooms */

static int sq_room_create(void *be, const char *room, const char *title, const char *creator,
                          uint64_t ts)
{
    sqlite3_stmt *s = stmt_get(be, S_ROOM_INS);

    if (!s)
        return STORE_ERR;
    bind_text(s, 1, room);
    bind_text(s, 2, title);
    bind_text(s, 3, creator);
    bind_u64(s, 4, ts);
    return run_write(be, s);
}

static int sq_room_get(void *be, const char *room, store_room_t *out)
{
    sqlite3_stmt *s = stmt_get(be, S_ROOM_GET);
    int ret;

    memset(out, 0, sizeof(*out));
    if (!s)
        return STORE_ERR;
    bind_text(s, 1, room);
    ret = run_first(be, s);
    if (ret != STORE_OK)
        return ret;
    fill_room(s, out);
    stmt_done(s);
    return STORE_OK;
}

static int sq_rooms_list(void *be, store_rooms_t *out)
{
    sqlite3_stmt *s = stmt_get(be, S_ROOMS);
    int ret;

    memset(out, 0, sizeof(*out));
    if (!s)
        return STORE_ERR;
    ret = run_list(be, s, (void **)&out->items, &out->count, sizeof(*out->items), fill_room);
    if (ret != STORE_OK)
        store_rooms_free(out);
    return ret;
}

/* ------------------------------------------------------------------ messages */

static int sq_msg_put(void *be, const store_msg_t *m, const char *conv)
{
    sqlite3_stmt *s = stmt_get(be, S_MSG_INS);
    char kind[2] = {m->kind, '\0'};

    if (!s)
        return STORE_ERR;
    bind_text(s, 1, m->msgid);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_TRANSIENT);
    bind_text(s, 3, m->from);
    bind_text(s, 4, m->to);
    bind_text(s, 5, conv);
    bind_u64(s, 6, m->ts);
    bind_text(s, 7, m->format);
    bind_text(s, 8, m->message);
    return run_write(be, s);
}

/* Reverses the newest-first rows into oldest-first. */
static void msgs_reverse(store_msgs_t *l)
{
    for (size_t i = 0, j = l->count; i + 1 < j; i++, j--) {
        store_msg_t t = l->items[i];
        l->items[i] = l->items[j - 1];
        l->items[j - 1] = t;
    }
}

static int sq_history(void *be, const char *conv, const char *before, int limit,
                      store_msgs_t *out)
{
    int has_before = before && before[0];
    sqlite3_stmt *s = stmt_get(be, has_before ? S_HIST_BEFORE : S_HIST);
    int ret;

    memset(out, 0, sizeof(*out));
    if (!s)
        return STORE_ERR;
    if (limit <= 0)
        return STORE_OK;
    bind_text(s, 1, conv);
    sqlite3_bind_int(s, 2, limit > STORE_HISTORY_MAX ? STORE_HISTORY_MAX : limit);
    if (has_before)
        bind_text(s, 3, before);
    ret = run_list(be, s, (void **)&out->items, &out->count, sizeof(*out->items), fill_msg);
    if (ret != STORE_OK) {
        store_msgs_free(out);
        return ret;
    }
    msgs_reverse(out);
    return STORE_OK;
}

static int sq_msg_get(void *be, const char *msgid, store_msg_t *out)
{
    sqlite3_stmt *s = stmt_get(be, S_MSG_GET);
    int ret;

    memset(out, 0, sizeof(*out));
    if (!s)
        return STORE_ERR;
    bind_text(s, 1, msgid);
    ret = run_first(be, s);
    if (ret != STORE_OK)
        return ret;
    fill_msg(s, out);
    stmt_done(s);
    return STORE_OK;
}

static int sq_conv_last(void *be, const char *conv, char out[STORE_MSGID_MAX])
{
    sqlite3_stmt *s = stmt_get(be, S_CONV_LAST);
    int ret;

    if (!s)
        return STORE_ERR;
    bind_text(s, 1, conv);
    ret = run_first(be, s);
    if (ret != STORE_OK)
        return ret;
    core_copy_trunc(out, STORE_MSGID_MAX, (const char *)sqlite3_column_text(s, 0));
    stmt_done(s);
    return STORE_OK;
}

/* ------------------------------------------------------------------ pending */

static int sq_pending_add(void *be, const char *user, const char *msgid, const char *event,
                          const char *data_json, uint64_t ts)
{
    sqlite3_stmt *s = stmt_get(be, S_PEND_INS);

    if (!s)
        return STORE_ERR;
    bind_text(s, 1, user);
    bind_text(s, 2, msgid);
    bind_text(s, 3, event);
    bind_text(s, 4, data_json ? data_json : "{}");
    bind_u64(s, 5, ts);
    return run_write(be, s);
}

static int sq_pending_list(void *be, const char *user, size_t limit, store_pendings_t *out)
{
    sqlite3_stmt *s = stmt_get(be, S_PEND_LIST);
    int ret;

    memset(out, 0, sizeof(*out));
    if (!s)
        return STORE_ERR;
    bind_text(s, 1, user);
    sqlite3_bind_int64(s, 2, limit > INT64_MAX ? INT64_MAX : (sqlite3_int64)limit);
    ret = run_list(be, s, (void **)&out->items, &out->count, sizeof(*out->items), fill_pending);
    if (ret != STORE_OK)
        store_pendings_free(out);
    return ret;
}

static int sq_pending_count(void *be, const char *user, long *count)
{
    sqlite3_stmt *s = stmt_get(be, S_PEND_COUNT);
    int ret;

    *count = 0;
    if (!s)
        return STORE_ERR;
    bind_text(s, 1, user);
    ret = run_first(be, s);
    if (ret != STORE_OK)
        return ret;
    *count = (long)sqlite3_column_int64(s, 0);
    stmt_done(s);
    return STORE_OK;
}

/* Takes the user's item; a direct message's sender goes to out. */
static int ack_one(sqlite_be_t *be, const char *user, const char *msgid, store_ackeds_t *out,
                   size_t *cap)
{
    sqlite3_stmt *s = stmt_get(be, S_PEND_ACK);
    int ret;

    if (!msgid || !msgid[0])
        return STORE_OK;
    if (!s)
        return STORE_ERR;
    bind_text(s, 1, user);
    bind_text(s, 2, msgid);
    ret = run_first(be, s);
    if (ret == STORE_NOTFOUND)
        return STORE_OK;
    if (ret != STORE_OK)
        return ret;
    if (sqlite3_column_type(s, 0) == SQLITE_TEXT) {
        store_acked_t *a = store__list_push((void **)&out->items, &out->count, cap, sizeof(*a));
        core_copy_trunc(a->msgid, sizeof(a->msgid), msgid);
        core_copy_trunc(a->from, sizeof(a->from), col_text(s, 0));
    }
    stmt_done(s);
    return STORE_OK;
}

static int sq_pending_ack(void *be, const char *user, const char *const *msgids, size_t n,
                          store_ackeds_t *out)
{
    size_t cap = 0;
    int ret;

    memset(out, 0, sizeof(*out));
    ret = op_begin(be);
    if (ret != STORE_OK)
        return ret;
    for (size_t i = 0; i < n && ret == STORE_OK; i++)
        ret = ack_one(be, user, msgids[i], out, &cap);
    ret = op_end(be, ret);
    if (ret != STORE_OK)
        store_ackeds_free(out);
    return ret;
}

static int sq_pending_drop(void *be, const char *user, const char *msgid)
{
    return pair_stmt(be, S_PEND_DEL_MSGID, user, msgid, run_delete);
}

/* ------------------------------------------------------------------ cids */

static int sq_cid_get(void *be, const char *user, const char *cid, uint64_t since_ms,
                      char msgid[STORE_MSGID_MAX])
{
    sqlite3_stmt *s = stmt_get(be, S_CID_GET);
    int ret;

    msgid[0] = '\0';
    if (!s)
        return STORE_ERR;
    bind_text(s, 1, user);
    bind_text(s, 2, cid);
    bind_u64(s, 3, since_ms);
    ret = run_first(be, s);
    if (ret != STORE_OK)
        return ret;
    core_copy_trunc(msgid, STORE_MSGID_MAX, col_text(s, 0));
    stmt_done(s);
    return STORE_OK;
}

static int sq_cid_put(void *be, const char *user, const char *cid, const char *msgid, uint64_t ts)
{
    sqlite3_stmt *s = stmt_get(be, S_CID_PUT);

    if (!s)
        return STORE_ERR;
    bind_text(s, 1, user);
    bind_text(s, 2, cid);
    bind_text(s, 3, msgid);
    bind_u64(s, 4, ts);
    return run_write(be, s);
}

static int expire_one(sqlite_be_t *be, enum stmt_id id, uint64_t before_ms)
{
    sqlite3_stmt *s = stmt_get(be, id);

    if (!s)
        return STORE_ERR;
    bind_u64(s, 1, before_ms);
    return run_write(be, s);
}

static int sq_expire(void *be, uint64_t before_ms)
{
    int ret = op_begin(be);

    if (ret != STORE_OK)
        return ret;
    ret = expire_one(be, S_EXPIRE_CIDS, before_ms);
    if (ret == STORE_OK)
        ret = expire_one(be, S_EXPIRE_TOKENS, before_ms);
    return op_end(be, ret);
}

/* ------------------------------------------------------------------ open / close */

/* Results of one attempt at opening: ready, "another opener holds a lock,
 * try again", or a real error. */
enum { OPEN_OK = 0, OPEN_BUSY = 1, OPEN_FAIL = -1 };
/* Nodes starting together on one file retry this long before giving up. */
#define SQLITE_OPEN_WAIT_MS 30000

static int busy_code(int rc)
{
    rc &= 0xff;
    return rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
}

static int exec_sql(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

    if (rc == SQLITE_OK)
        return OPEN_OK;
    snprintf(err, errlen, "store/sqlite: %s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return busy_code(rc) ? OPEN_BUSY : OPEN_FAIL;
}

/* The journal mode as the file has it now ("" when it cannot be read). */
static int journal_mode(sqlite3 *db, const char *sql, char *mode, size_t len)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);

    mode[0] = '\0';
    if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        core_copy_trunc(mode, len, (const char *)sqlite3_column_text(s, 0));
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return rc;
}

/* WAL is a property of the file: set it only when the file does not have it
 * yet, so nodes opening an existing file never need the exclusive lock the
 * switch takes. */
static int ensure_wal(sqlite3 *db, char *err, size_t errlen)
{
    char mode[16];
    int rc = journal_mode(db, "PRAGMA journal_mode", mode, sizeof mode);

    if (rc == SQLITE_OK && sqlite3_stricmp(mode, "wal") != 0)
        rc = journal_mode(db, "PRAGMA journal_mode=WAL", mode, sizeof mode);
    if (rc == SQLITE_OK && sqlite3_stricmp(mode, "wal") == 0)
        return OPEN_OK;
    snprintf(err, errlen, "store/sqlite: cannot enable WAL: %s",
             rc == SQLITE_OK ? mode : sqlite3_errmsg(db));
    return busy_code(rc) || (rc == SQLITE_OK && sqlite3_stricmp(mode, "delete") == 0) ? OPEN_BUSY
                                                                                  : OPEN_FAIL;
}

/* Moves a version 1 file's pending rows; a failure says what was being
 * done, since the caller's rollback leaves the file at version 1. */
static int migrate_v1(sqlite3 *db, char *err, size_t errlen)
{
    int rc = exec_sql(db, migrate_v1_sql, err, errlen);
    if (rc != OPEN_OK) {
        char why[256];
        core_copy_trunc(why, sizeof why, err);
        snprintf(err, errlen, "%s (moving pending rows to schema 2; the file stays at 1)", why);
    }
    return rc;
}

/* The file's schema version, brought up to this build's (inside the
 * caller's transaction); a newer or unknown one is refused. */
static int check_version(sqlite3 *db, char *err, size_t errlen)
{
    sqlite3_stmt *s = NULL;
    int version = -1;

    if (sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1, &s, NULL) ==
            SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    if (version == 1)
        return migrate_v1(db, err, errlen);
    if (version == SQLITE_SCHEMA_VERSION)
        return OPEN_OK;
    snprintf(err, errlen, "store/sqlite: unsupported schema version %d (this build knows %d)",
             version, SQLITE_SCHEMA_VERSION);
    return OPEN_FAIL;
}

/* Several nodes may share one file: SQLite's default busy handler backs off
 * up to 100 ms per try, which becomes the latency tail, while polling every
 * 0.5 ms burns CPU at low rates. Retry after 0.25, 0.5, 1, then every 2 ms
 * (+ jitter), about SQLITE_BUSY_MS in all. Runs on the store thread only. */
static int busy_retry(void *ud, int tries)
{
    (void)ud;
    long step_us = tries < 3 ? 250L << tries : 2000L;
    if ((long)tries * 2000L >= (long)SQLITE_BUSY_MS * 1000L + 6000L)
        return 0;
    struct timespec ts = {0, (step_us + (tries * 7919L) % 250L) * 1000L};
    nanosleep(&ts, NULL);
    return 1;
}

static int create_schema(sqlite3 *db, char *err, size_t errlen)
{
    int rc = exec_sql(db, "BEGIN IMMEDIATE", err, errlen);

    if (rc != OPEN_OK)
        return rc;
    if ((rc = exec_sql(db, schema_sql, err, errlen)) != OPEN_OK ||
        (rc = check_version(db, err, errlen)) != OPEN_OK) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return exec_sql(db, "COMMIT", err, errlen);
}

static int setup_db(sqlite3 *db, char *err, size_t errlen)
{
    int rc;

    sqlite3_busy_handler(db, busy_retry, NULL);
    if ((rc = ensure_wal(db, err, errlen)) != OPEN_OK)
        return rc;
    if ((rc = exec_sql(db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", err, errlen)) !=
        OPEN_OK)
        return rc;
    return create_schema(db, err, errlen);
}

static int open_once(const char *path, sqlite3 **out, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                            SQLITE_OPEN_NOMUTEX, NULL);

    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "store/sqlite: open %s: %s", path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return busy_code(rc) ? OPEN_BUSY : OPEN_FAIL;
    }
    sqlite3_extended_result_codes(db, 1);
    if ((rc = setup_db(db, err, errlen)) != OPEN_OK) {
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return OPEN_OK;
}

/* Another process creating the file, switching it to WAL or recovering its
 * WAL holds locks that a busy handler is not always asked about: start over
 * after 10, 20, 40 .. 320 ms (+ jitter) until SQLITE_OPEN_WAIT_MS. Start-up
 * only (before the store thread runs). */
static sqlite3 *open_retrying(const char *path, char *err, size_t errlen)
{
    uint64_t deadline = core_mono_ms() + SQLITE_OPEN_WAIT_MS;
    unsigned seed = (unsigned)getpid() ^ (unsigned)core_mono_ms();

    for (int attempt = 0;; attempt++) {
        sqlite3 *db = NULL;
        int rc = open_once(path, &db, err, errlen);
        if (rc == OPEN_OK)
            return db;
        if (rc == OPEN_FAIL || core_mono_ms() >= deadline)
            return NULL;
        long ms = 10L << (attempt < 5 ? attempt : 5);
        struct timespec ts = {0, (ms + (long)(rand_r(&seed) % 10)) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* ------------------------------------------------------------------ checkpoints */

/* With c->mu held: CKPT_GAP_MS, or until the store closes. Past the mark
 * every commit makes a checkpoint due (until the WAL starts over: a
 * complete checkpoint, then a write), and running one per small commit
 * copied the same hot pages back hundreds of times a second, two fsyncs
 * each (docs/BENCHMARKS.md section 30). What falls due meanwhile runs
 * after the rest, so the WAL is still copied back soon after the last write. */
static void ckpt_rest(sqlite_ckpt_t *c)
{
    struct timespec until = core_mono_after(CKPT_GAP_MS * 1000u);

    while (!c->stopping && pthread_cond_timedwait(&c->wake, &c->mu, &until) == 0)
        ;
}

static void *ckpt_main(void *arg)
{
    sqlite_ckpt_t *c = arg;

    pthread_setname_np(pthread_self(), "sqlite-ckpt");
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        if (!c->due) {
            c->idle = 1;
            pthread_cond_wait(&c->wake, &c->mu);
            c->idle = 0;
            continue;
        }
        c->due = 0;
        pthread_mutex_unlock(&c->mu);
        /* PASSIVE: copies what no reader still needs, never blocks a writer */
        int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        atomic_fetch_add(&c->runs, 1);
        if (rc != SQLITE_OK && !busy_code(rc))
            CORE_WARN("store/sqlite: checkpoint: %s", sqlite3_errmsg(c->db));
        pthread_mutex_lock(&c->mu);
        ckpt_rest(c);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* After every commit of the writer connection, with the WAL's page count. */
static int ckpt_wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    sqlite_ckpt_t *c = arg;

    if (pages >= CKPT_INLINE_PAGES) {
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        atomic_fetch_add(&c->runs, 1);
    } else if (pages >= CKPT_DUE_PAGES) {
        pthread_mutex_lock(&c->mu);
        c->due = 1;
        if (c->idle) /* resting: it looks again when the rest is over */
            pthread_cond_signal(&c->wake);
        pthread_mutex_unlock(&c->mu);
    }
    return SQLITE_OK;
}

/* Its own connection and thread; on any failure the writer keeps SQLite's
 * own autocheckpoint (slower tail, same data). */
static void ckpt_start(sqlite_be_t *be, const char *path)
{
    sqlite_ckpt_t *c = &be->ckpt;
    sqlite3 *db = NULL;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK) {
        CORE_WARN("store/sqlite: no checkpoint thread (%s): the writer checkpoints",
                  db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return;
    }
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* ckpt_rest: wall clock jumps do not count */
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->wake, &attr);
    pthread_condattr_destroy(&attr);
    c->db = db;
    if (pthread_create(&c->thread, NULL, ckpt_main, c) != 0) {
        CORE_WARN("store/sqlite: no checkpoint thread: the writer checkpoints");
        sqlite3_close(db);
        c->db = NULL;
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->wake);
        return;
    }
    sqlite3_wal_hook(be->db, ckpt_wal_hook, c); /* replaces the autocheckpoint */
}

static void ckpt_stop(sqlite_ckpt_t *c)
{
    if (!c->db)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = 1;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    sqlite3_close(c->db);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->wake);
}

void *store__sqlite_open(const char *path, char *err, size_t errlen)
{
    sqlite_be_t *be;
    sqlite3 *db;

    if (!path || !path[0]) {
        snprintf(err, errlen, "store/sqlite: empty path (want sqlite:PATH)");
        return NULL;
    }
    if (!(db = open_retrying(path, err, errlen)))
        return NULL;
    be = core_xcalloc(1, sizeof(*be));
    be->db = db;
    ckpt_start(be, path);
    return be;
}

static void sq_close(void *be)
{
    sqlite_be_t *b = be;

    if (!b)
        return;
    ckpt_stop(&b->ckpt);
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(b->stmts[i]);
    if (sqlite3_close(b->db) != SQLITE_OK)
        CORE_ERROR("store/sqlite: close: %s", sqlite3_errmsg(b->db));
    free(b);
}

static int sq_set_durability(void *be, store_durability_t level)
{
    sqlite_be_t *b = be;
    const char *sql = level == STORE_DURABLE_PROCESS ? "PRAGMA synchronous=NORMAL"
                                                     : "PRAGMA synchronous=FULL";
    int rc = sqlite3_exec(b->db, sql, NULL, NULL, NULL);

    if (rc != SQLITE_OK) {
        CORE_ERROR("store/sqlite: %s: %s", sql, sqlite3_errmsg(b->db));
        return STORE_ERR;
    }
    return STORE_OK;
}

static uint64_t sq_checkpoints(void *be)
{
    sqlite_be_t *b = be;
    return atomic_load(&b->ckpt.runs);
}

const store_ops_t store__sqlite_ops = {
    .name = "sqlite",
    .set_durability = sq_set_durability,
    .checkpoints = sq_checkpoints,
    .close = sq_close,
    .batch_begin = sq_batch_begin,
    .batch_commit = sq_batch_commit,
    .batch_abort = sq_batch_abort,
    .batch_alive = sq_batch_alive,
    .item_begin = sq_item_begin,
    .item_end = sq_item_end,
    .user_create = sq_user_create,
    .user_get = sq_user_get,
    .token_put = sq_token_put,
    .token_check = sq_token_check,
    .friend_request_put = sq_friend_request_put,
    .friend_request_take = sq_friend_request_take,
    .friend_add = sq_friend_add,
    .friends_check = sq_friends_check,
    .friends_list = sq_friends_list,
    .group_create = sq_group_create,
    .group_get = sq_group_get,
    .group_join = sq_group_join,
    .group_leave = sq_group_leave,
    .group_is_member = sq_group_is_member,
    .group_members = sq_group_members,
    .groups_of = sq_groups_of,
    .groups_all = sq_groups_all,
    .room_create = sq_room_create,
    .room_get = sq_room_get,
    .rooms_list = sq_rooms_list,
    .msg_put = sq_msg_put,
    .history = sq_history,
    .msg_get = sq_msg_get,
    .conv_last = sq_conv_last,
    .pending_add = sq_pending_add,
    .pending_list = sq_pending_list,
    .pending_count = sq_pending_count,
    .pending_ack = sq_pending_ack,
    .pending_drop = sq_pending_drop,
    .cid_get = sq_cid_get,
    .cid_put = sq_cid_put,
    .expire = sq_expire,
};
