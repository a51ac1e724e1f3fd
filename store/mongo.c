/* store/mongo.c: the MongoDB backend (mongo-c-driver 1.23).
 *
 * One client, popped from a mongoc_client_pool_t and kept: store.c
 * serialises every use of it (call_lock). The pool (not a single-threaded
 * client) for its background monitoring: after an outage or a primary
 * change, the next call finds the server within a heartbeat instead of
 * failing through the single-threaded client's 5 s cooldown. A call waits
 * for a server at most serverSelectionTimeoutMS (5 s unless the URI says). Collections mirror the SQLite
 * tables. Every record's natural key is its _id (user name, msgid, gid,
 * "a|b" for pairs: names never hold '|'), so "already there" is the
 * duplicate-key error 11000 on _id (STORE_EXISTS) on any server and any
 * shard, and a write retried after a lost answer lands on the same
 * document. Secondary indexes serve queries only; none is unique (a unique
 * secondary index cannot be enforced across shards). Indexes are created
 * once per process, on the first call that reaches a server, so store_open
 * succeeds while the server is down and calls return STORE_ERR until it
 * is up. docs/DEPLOY.md gives each collection's shard key.
 *
 * No transactions: batch and item hooks are no-ops. Writes use the URI's
 * write concern, w:majority (10 s timeout) when the URI names none, and the
 * driver's retryable writes (on by default). A failed work item is
 * reported failed but its earlier writes are NOT undone. A pending item's
 * _id is "user|msgid" (one insert, no counter): a user's items come in
 * msgid (send) order, as in SQLite. Items of builds before this one keep
 * their "user|seq" _id; the same queries find, order and take them.
 */
#include "store/store_int.h"

#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum coll_id {
    C_USERS, C_TOKENS, C_FRIENDS, C_FREQS, C_GROUPS, C_MEMBERS, C_ROOMS,
    C_MESSAGES, C_PENDING, C_CIDS, C_COUNT
};

static const char *const coll_names[C_COUNT] = {
    "users", "tokens", "friends", "friend_requests", "groups", "group_members", "rooms",
    "messages", "pending", "cids",
};

typedef struct mongo_index {
    enum coll_id coll;
    const char *name;
    const char *k1, *k2;
    int unique;
} mongo_index_t;

/* What each query needs; _id (the natural key) serves every point lookup. */
static const mongo_index_t indexes[] = {
    {C_TOKENS, "expires", "expires", NULL, 0},  /* store_expire */
    {C_FRIENDS, "a_b", "a", "b", 0},            /* friends of a, by name */
    {C_MEMBERS, "gid_user", "gid", "user", 0},  /* members, member count */
    {C_MEMBERS, "user_gid", "user", "gid", 0},  /* groups of a user */
    {C_MESSAGES, "conv_id", "conv", "_id", 0},  /* history, conv_last */
    {C_PENDING, "user_msgid", "user", "msgid", 0}, /* a user's items in order, ack */
    {C_CIDS, "ts", "ts", NULL, 0},              /* store_expire */
};

/* "a|b": the _id of a record keyed by two values (the first is a name). */
#define PAIR_MAX (STORE_GID_MAX + 1 + 65)
#define MONGO_DOWN_MS 1000

static const char *pair_id(char out[PAIR_MAX], const char *a, const char *b)
{
    snprintf(out, PAIR_MAX, "%s|%s", a ? a : "", b ? b : "");
    return out;
}

typedef struct mongo_be {
    mongoc_client_pool_t *pool;
    mongoc_client_t *client; /* popped from pool for the backend's life */
    mongoc_database_t *db;
    mongoc_collection_t *coll[C_COUNT];
    int schema_ready;
    uint64_t down_until_ms; /* no server found lately: calls fail at once until then */
} mongo_be_t;

static pthread_once_t mongo_once = PTHREAD_ONCE_INIT;

static void mongo_global_init(void)
{
    mongoc_init();
    atexit(mongoc_cleanup);
}

/* ------------------------------------------------------------------ bson helpers */

static const char *doc_str(const bson_t *doc, const char *key)
{
    bson_iter_t it;

    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
        return bson_iter_utf8(&it, NULL);
    return "";
}

static int64_t doc_i64(const bson_t *doc, const char *key)
{
    bson_iter_t it;

    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_NUMBER(&it))
        return bson_iter_as_int64(&it);
    return 0;
}

static int64_t u64_to_i64(uint64_t v)
{
    return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* After a call found no server (it waited serverSelectionTimeoutMS), the
 * calls of the next MONGO_DOWN_MS fail at once: an outage costs the store
 * thread one wait per second, not one per item (a queue of items, or a
 * stopping node's drain, would take minutes). */
static int log_error(mongo_be_t *be, const char *what, const bson_error_t *error)
{
    CORE_ERROR("store/mongodb: %s: %s (%u.%u)", what, error->message, error->domain, error->code);
    if (error->domain == MONGOC_ERROR_SERVER_SELECTION)
        be->down_until_ms = core_mono_ms() + MONGO_DOWN_MS;
    return STORE_ERR;
}

static int server_down(const mongo_be_t *be)
{
    return be->down_until_ms && core_mono_ms() < be->down_until_ms;
}

/* ------------------------------------------------------------------ schema */

static bson_t *index_command(const mongo_index_t *ix)
{
    bson_t *cmd = bson_new();
    bson_t arr, spec, key;

    BSON_APPEND_UTF8(cmd, "createIndexes", coll_names[ix->coll]);
    BSON_APPEND_ARRAY_BEGIN(cmd, "indexes", &arr);
    BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &spec);
    BSON_APPEND_DOCUMENT_BEGIN(&spec, "key", &key);
    BSON_APPEND_INT32(&key, ix->k1, 1);
    if (ix->k2)
        BSON_APPEND_INT32(&key, ix->k2, 1);
    bson_append_document_end(&spec, &key);
    BSON_APPEND_UTF8(&spec, "name", ix->name);
    if (ix->unique)
        BSON_APPEND_BOOL(&spec, "unique", true);
    bson_append_document_end(&arr, &spec);
    bson_append_array_end(cmd, &arr);
    return cmd;
}

/* Creates the indexes once a server answers; STORE_ERR until then. */
static int ensure_schema(mongo_be_t *be)
{
    bson_error_t error;

    if (be->schema_ready)
        return STORE_OK;
    if (server_down(be))
        return STORE_ERR;
    for (size_t i = 0; i < sizeof(indexes) / sizeof(indexes[0]); i++) {
        bson_t *cmd = index_command(&indexes[i]);
        bool ok = mongoc_database_write_command_with_opts(be->db, cmd, NULL, NULL, &error);

        bson_destroy(cmd);
        if (!ok)
            return log_error(be, "createIndexes", &error);
    }
    be->schema_ready = 1;
    return STORE_OK;
}

static mongoc_collection_t *coll(mongo_be_t *be, enum coll_id id)
{
    return ensure_schema(be) == STORE_OK && !server_down(be) ? be->coll[id] : NULL;
}

/* ------------------------------------------------------------------ operations */

static int do_insert(mongo_be_t *be, enum coll_id id, const bson_t *doc)
{
    mongoc_collection_t *c = coll(be, id);
    bson_error_t error;

    if (!c)
        return STORE_ERR;
    if (mongoc_collection_insert_one(c, doc, NULL, NULL, &error))
        return STORE_OK;
    if (error.code == MONGOC_ERROR_DUPLICATE_KEY)
        return STORE_EXISTS;
    return log_error(be, "insert", &error);
}

/* update_one with upsert; *inserted (may be NULL) says a new document was made. */
static int do_upsert(mongo_be_t *be, enum coll_id id, const bson_t *filter, const bson_t *update,
                     int *inserted)
{
    mongoc_collection_t *c = coll(be, id);
    bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
    bson_t reply;
    bson_error_t error;
    int ret = STORE_ERR;

    if (c && mongoc_collection_update_one(c, filter, update, opts, &reply, &error)) {
        if (inserted)
            *inserted = doc_i64(&reply, "upsertedCount") > 0;
        ret = STORE_OK;
    } else if (c) {
        log_error(be, "update", &error);
    }
    if (c)
        bson_destroy(&reply);
    bson_destroy(opts);
    return ret;
}

/* OK when something was deleted, else NOTFOUND. */
static int do_delete(mongo_be_t *be, enum coll_id id, const bson_t *filter, int many)
{
    mongoc_collection_t *c = coll(be, id);
    bson_t reply;
    bson_error_t error;
    bool ok;
    int ret;

    if (!c)
        return STORE_ERR;
    ok = many ? mongoc_collection_delete_many(c, filter, NULL, &reply, &error)
              : mongoc_collection_delete_one(c, filter, NULL, &reply, &error);
    if (!ok)
        ret = log_error(be, "delete", &error);
    else
        ret = doc_i64(&reply, "deletedCount") > 0 ? STORE_OK : STORE_NOTFOUND;
    bson_destroy(&reply);
    return ret;
}

typedef int (*doc_fn)(const bson_t *doc, void *ud);

/* Calls fn for every match (fn returning non-OK stops with that code). */
static int do_find(mongo_be_t *be, enum coll_id id, const bson_t *filter, const bson_t *opts,
                   doc_fn fn, void *ud)
{
    mongoc_collection_t *c = coll(be, id);
    mongoc_cursor_t *cur;
    const bson_t *doc;
    bson_error_t error;
    int ret = STORE_OK;

    if (!c)
        return STORE_ERR;
    cur = mongoc_collection_find_with_opts(c, filter, opts, NULL);
    while (ret == STORE_OK && mongoc_cursor_next(cur, &doc))
        ret = fn(doc, ud);
    if (ret == STORE_OK && mongoc_cursor_error(cur, &error))
        ret = log_error(be, "find", &error);
    mongoc_cursor_destroy(cur);
    return ret;
}

static int copy_doc(const bson_t *doc, void *ud)
{
    bson_copy_to(doc, ud);
    return STORE_NOTFOUND - 100; /* stop after the first */
}

/* First match copied into out (caller destroys out on OK): OK / NOTFOUND / ERR. */
static int find_one(mongo_be_t *be, enum coll_id id, const bson_t *filter, bson_t *out)
{
    bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
    int ret = do_find(be, id, filter, opts, copy_doc, out);

    bson_destroy(opts);
    if (ret == STORE_NOTFOUND - 100)
        return STORE_OK;
    return ret == STORE_OK ? STORE_NOTFOUND : ret;
}

static int exists(mongo_be_t *be, enum coll_id id, const bson_t *filter)
{
    bson_t doc;
    int ret = find_one(be, id, filter, &doc);

    if (ret == STORE_OK)
        bson_destroy(&doc);
    return ret;
}

static int count_docs(mongo_be_t *be, enum coll_id id, const bson_t *filter, int64_t *n)
{
    mongoc_collection_t *c = coll(be, id);
    bson_error_t error;

    *n = 0;
    if (!c)
        return STORE_ERR;
    *n = mongoc_collection_count_documents(c, filter, NULL, NULL, NULL, &error);
    if (*n < 0) {
        *n = 0;
        return log_error(be, "count", &error);
    }
    return STORE_OK;
}

/* ------------------------------------------------------------------ batches (no-ops) */

static int mg_ok(void *be)
{
    (void)be;
    return STORE_OK;
}

static int mg_batch_begin(void *be, int readonly)
{
    (void)be;
    (void)readonly;
    return STORE_OK;
}

static void mg_abort(void *be)
{
    (void)be;
}

static int mg_alive(void *be)
{
    (void)be;
    return 1;
}

static int mg_item_end(void *be, int failed)
{
    (void)be;
    (void)failed;
    return STORE_OK;
}

/* ------------------------------------------------------------------ accounts */

static int mg_user_create(void *be, const char *user, const char *nickname, const char *pwhash,
                          uint64_t ts)
{
    bson_t *doc = BCON_NEW("_id", BCON_UTF8(str_or_empty(user)),
                           "nickname", BCON_UTF8(str_or_empty(nickname)),
                           "pwhash", BCON_UTF8(str_or_empty(pwhash)),
                           "created", BCON_INT64(u64_to_i64(ts)));
    int ret = do_insert(be, C_USERS, doc);

    bson_destroy(doc);
    return ret;
}

static int mg_user_get(void *be, const char *user, store_user_t *out)
{
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(str_or_empty(user)));
    bson_t doc;
    int ret = find_one(be, C_USERS, filter, &doc);

    memset(out, 0, sizeof(*out));
    bson_destroy(filter);
    if (ret != STORE_OK)
        return ret;
    core_copy_trunc(out->user, sizeof(out->user), doc_str(&doc, "_id"));
    core_copy_trunc(out->nickname, sizeof(out->nickname), doc_str(&doc, "nickname"));
    core_copy_trunc(out->pwhash, sizeof(out->pwhash), doc_str(&doc, "pwhash"));
    bson_destroy(&doc);
    return STORE_OK;
}

static int mg_token_put(void *be, const char *user, const char *token_hash, uint64_t expires_ms)
{
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(str_or_empty(token_hash)));
    bson_t *update = BCON_NEW("$set", "{", "user", BCON_UTF8(str_or_empty(user)), "expires",
                              BCON_INT64(u64_to_i64(expires_ms)), "}");
    int ret = do_upsert(be, C_TOKENS, filter, update, NULL);

    bson_destroy(filter);
    bson_destroy(update);
    return ret;
}

static int mg_token_check(void *be, const char *user, const char *token_hash, uint64_t now_ms)
{
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(str_or_empty(token_hash)),
                              "user", BCON_UTF8(str_or_empty(user)),
                              "expires", "{", "$gt", BCON_INT64(u64_to_i64(now_ms)), "}");
    int ret = exists(be, C_TOKENS, filter);

    bson_destroy(filter);
    return ret;
}

/* ------------------------------------------------------------------ friends */

/* Finds (del 0) or deletes (del 1) the record keyed "v1|v2". */
static int pair_op(mongo_be_t *be, enum coll_id id, const char *v1, const char *v2, int del)
{
    char key[PAIR_MAX];
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(pair_id(key, v1, v2)));
    int ret = del ? do_delete(be, id, filter, 0) : exists(be, id, filter);

    bson_destroy(filter);
    return ret;
}

static int mg_friends_check(void *be, const char *a, const char *b)
{
    return pair_op(be, C_FRIENDS, a, b, 0);
}

static int mg_friend_request_put(void *be, const char *from, const char *to, const char *note,
                                 uint64_t ts)
{
    int ret = mg_friends_check(be, from, to);
    char key[PAIR_MAX];
    bson_t *filter, *update;

    if (ret != STORE_NOTFOUND)
        return ret == STORE_OK ? STORE_EXISTS : ret;
    filter = BCON_NEW("_id", BCON_UTF8(pair_id(key, from, to)));
    update = BCON_NEW("$set", "{", "from", BCON_UTF8(str_or_empty(from)), "to",
                      BCON_UTF8(str_or_empty(to)), "note", BCON_UTF8(str_or_empty(note)), "ts",
                      BCON_INT64(u64_to_i64(ts)), "}");
    ret = do_upsert(be, C_FREQS, filter, update, NULL);
    bson_destroy(filter);
    bson_destroy(update);
    return ret;
}

static int mg_friend_request_take(void *be, const char *from, const char *to)
{
    return pair_op(be, C_FREQS, from, to, 1);
}

static int friend_upsert(mongo_be_t *be, const char *a, const char *b, uint64_t ts, int *added)
{
    char key[PAIR_MAX];
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(pair_id(key, a, b)));
    bson_t *update = BCON_NEW("$setOnInsert", "{", "a", BCON_UTF8(str_or_empty(a)), "b",
                              BCON_UTF8(str_or_empty(b)), "since", BCON_INT64(u64_to_i64(ts)),
                              "}");
    int inserted = 0;
    int ret = do_upsert(be, C_FRIENDS, filter, update, &inserted);

    *added += inserted;
    bson_destroy(filter);
    bson_destroy(update);
    return ret;
}

static int mg_friend_add(void *be, const char *a, const char *b, uint64_t ts)
{
    int added = 0;
    int ret = friend_upsert(be, a, b, ts, &added);

    if (ret == STORE_OK)
        ret = friend_upsert(be, b, a, ts, &added);
    return ret == STORE_OK && added == 0 ? STORE_EXISTS : ret;
}

/* Collects names; the nickname is looked up per user. */
typedef struct names_ctx {
    mongo_be_t *be;
    const char *key;
    store_names_t *out;
    size_t cap;
} names_ctx_t;

static int add_name(const bson_t *doc, void *ud)
{
    names_ctx_t *c = ud;
    store_name_t *n = store__list_push((void **)&c->out->items, &c->out->count, &c->cap,
                                       sizeof(*n));
    store_user_t u;
    int ret;

    core_copy_trunc(n->user, sizeof(n->user), doc_str(doc, c->key));
    ret = mg_user_get(c->be, n->user, &u);
    if (ret == STORE_OK)
        core_copy_trunc(n->nickname, sizeof(n->nickname), u.nickname);
    return ret == STORE_ERR ? STORE_ERR : STORE_OK;
}

static int list_names(mongo_be_t *be, enum coll_id id, const char *fk, const char *fv,
                      const char *key, store_names_t *out)
{
    bson_t *filter = BCON_NEW(fk, BCON_UTF8(str_or_empty(fv)));
    bson_t *opts = BCON_NEW("sort", "{", key, BCON_INT32(1), "}");
    names_ctx_t ctx = {be, key, out, 0};
    int ret = do_find(be, id, filter, opts, add_name, &ctx);

    bson_destroy(filter);
    bson_destroy(opts);
    if (ret != STORE_OK)
        store_names_free(out);
    return ret;
}

static int mg_friends_list(void *be, const char *user, store_names_t *out)
{
    memset(out, 0, sizeof(*out));
    return list_names(be, C_FRIENDS, "a", user, "b", out);
}

/* ------------------------------------------------------------------ groups */

static int mg_group_join(void *be, const char *gid, const char *user);

static int mg_group_create(void *be, const char *gid, const char *name, const char *owner,
                           uint64_t ts)
{
    bson_t *doc = BCON_NEW("_id", BCON_UTF8(str_or_empty(gid)),
                           "name", BCON_UTF8(str_or_empty(name)),
                           "owner", BCON_UTF8(str_or_empty(owner)),
                           "created", BCON_INT64(u64_to_i64(ts)));
    int ret = do_insert(be, C_GROUPS, doc);

    bson_destroy(doc);
    if (ret != STORE_OK)
        return ret;
    ret = mg_group_join(be, gid, owner);
    return ret == STORE_EXISTS ? STORE_OK : ret;
}

static int fill_group(mongo_be_t *be, const bson_t *doc, store_group_t *out)
{
    bson_t *filter;
    int64_t n;
    int ret;

    core_copy_trunc(out->gid, sizeof(out->gid), doc_str(doc, "_id"));
    core_copy_trunc(out->name, sizeof(out->name), doc_str(doc, "name"));
    core_copy_trunc(out->owner, sizeof(out->owner), doc_str(doc, "owner"));
    filter = BCON_NEW("gid", BCON_UTF8(out->gid));
    ret = count_docs(be, C_MEMBERS, filter, &n);
    bson_destroy(filter);
    out->members = (long)n;
    return ret;
}

static int mg_group_get(void *be, const char *gid, store_group_t *out)
{
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(str_or_empty(gid)));
    bson_t doc;
    int ret = find_one(be, C_GROUPS, filter, &doc);

    memset(out, 0, sizeof(*out));
    bson_destroy(filter);
    if (ret != STORE_OK)
        return ret;
    ret = fill_group(be, &doc, out);
    bson_destroy(&doc);
    return ret;
}

static int group_exists(mongo_be_t *be, const char *gid)
{
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(str_or_empty(gid)));
    int ret = exists(be, C_GROUPS, filter);

    bson_destroy(filter);
    return ret;
}

static int mg_group_join(void *be, const char *gid, const char *user)
{
    char key[PAIR_MAX];
    bson_t *doc;
    int ret = group_exists(be, gid);

    if (ret != STORE_OK)
        return ret;
    doc = BCON_NEW("_id", BCON_UTF8(pair_id(key, gid, user)), "gid", BCON_UTF8(str_or_empty(gid)),
                   "user", BCON_UTF8(str_or_empty(user)));
    ret = do_insert(be, C_MEMBERS, doc);
    bson_destroy(doc);
    return ret;
}

static int mg_group_leave(void *be, const char *gid, const char *user)
{
    return pair_op(be, C_MEMBERS, gid, user, 1);
}

static int mg_group_is_member(void *be, const char *gid, const char *user)
{
    return pair_op(be, C_MEMBERS, gid, user, 0);
}

static int mg_group_members(void *be, const char *gid, store_names_t *out)
{
    int ret;

    memset(out, 0, sizeof(*out));
    ret = group_exists(be, gid);
    if (ret != STORE_OK)
        return ret;
    return list_names(be, C_MEMBERS, "gid", gid, "user", out);
}

typedef struct groups_ctx {
    mongo_be_t *be;
    int by_member; /* docs are memberships (look the group up) */
    store_groups_t *out;
    size_t cap;
} groups_ctx_t;

static int add_group(const bson_t *doc, void *ud)
{
    groups_ctx_t *c = ud;
    store_group_t g;
    int ret = c->by_member ? mg_group_get(c->be, doc_str(doc, "gid"), &g)
                           : fill_group(c->be, doc, &g);

    if (ret == STORE_NOTFOUND)
        return STORE_OK; /* membership of a vanished group */
    if (ret != STORE_OK)
        return ret;
    *(store_group_t *)store__list_push((void **)&c->out->items, &c->out->count, &c->cap,
                                       sizeof(g)) = g;
    return STORE_OK;
}

static int list_groups(mongo_be_t *be, const char *user, store_groups_t *out)
{
    bson_t *filter = user ? BCON_NEW("user", BCON_UTF8(user)) : bson_new();
    bson_t *opts = BCON_NEW("sort", "{", user ? "gid" : "_id", BCON_INT32(1), "}");
    groups_ctx_t ctx = {be, user != NULL, out, 0};
    int ret;

    memset(out, 0, sizeof(*out));
    ret = do_find(be, user ? C_MEMBERS : C_GROUPS, filter, opts, add_group, &ctx);
    bson_destroy(filter);
    bson_destroy(opts);
    if (ret != STORE_OK)
        store_groups_free(out);
    return ret;
}

static int mg_groups_of(void *be, const char *user, store_groups_t *out)
{
    return list_groups(be, str_or_empty(user), out);
}

static int mg_groups_all(void *be, store_groups_t *out)
{
    return list_groups(be, NULL, out);
}

/* ------------------------------------------------------------------ rooms */

static int mg_room_create(void *be, const char *room, const char *title, const char *creator,
                          uint64_t ts)
{
    bson_t *doc = BCON_NEW("_id", BCON_UTF8(str_or_empty(room)),
                           "title", BCON_UTF8(str_or_empty(title)),
                           "creator", BCON_UTF8(str_or_empty(creator)),
                           "created", BCON_INT64(u64_to_i64(ts)));
    int ret = do_insert(be, C_ROOMS, doc);

    bson_destroy(doc);
    return ret;
}

static void fill_room(const bson_t *doc, store_room_t *r)
{
    core_copy_trunc(r->room, sizeof(r->room), doc_str(doc, "_id"));
    core_copy_trunc(r->title, sizeof(r->title), doc_str(doc, "title"));
    core_copy_trunc(r->creator, sizeof(r->creator), doc_str(doc, "creator"));
}

static int mg_room_get(void *be, const char *room, store_room_t *out)
{
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(str_or_empty(room)));
    bson_t doc;
    int ret = find_one(be, C_ROOMS, filter, &doc);

    memset(out, 0, sizeof(*out));
    bson_destroy(filter);
    if (ret != STORE_OK)
        return ret;
    fill_room(&doc, out);
    bson_destroy(&doc);
    return STORE_OK;
}

typedef struct rooms_ctx {
    store_rooms_t *out;
    size_t cap;
} rooms_ctx_t;

static int add_room(const bson_t *doc, void *ud)
{
    rooms_ctx_t *c = ud;

    fill_room(doc, store__list_push((void **)&c->out->items, &c->out->count, &c->cap,
                                    sizeof(store_room_t)));
    return STORE_OK;
}

static int mg_rooms_list(void *be, store_rooms_t *out)
{
    bson_t *filter = bson_new();
    bson_t *opts = BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}");
    rooms_ctx_t ctx = {out, 0};
    int ret;

    memset(out, 0, sizeof(*out));
    ret = do_find(be, C_ROOMS, filter, opts, add_room, &ctx);
    bson_destroy(filter);
    bson_destroy(opts);
    if (ret != STORE_OK)
        store_rooms_free(out);
    return ret;
}

/* ------------------------------------------------------------------ messages */

static int mg_msg_put(void *be, const store_msg_t *m, const char *conv)
{
    char kind[2] = {m->kind, '\0'};
    bson_t *doc = BCON_NEW("_id", BCON_UTF8(m->msgid), "kind", BCON_UTF8(kind),
                           "sender", BCON_UTF8(m->from), "target", BCON_UTF8(m->to),
                           "conv", BCON_UTF8(str_or_empty(conv)),
                           "ts", BCON_INT64(u64_to_i64(m->ts)), "format", BCON_UTF8(m->format),
                           "message", BCON_UTF8(str_or_empty(m->message)));
    int ret = m->kind == 'c' || m->kind == 'g' ? do_insert(be, C_MESSAGES, doc) : STORE_ERR;

    bson_destroy(doc);
    return ret;
}

static void fill_msg(const bson_t *doc, store_msg_t *m)
{
    core_copy_trunc(m->msgid, sizeof(m->msgid), doc_str(doc, "_id"));
    m->kind = doc_str(doc, "kind")[0];
    core_copy_trunc(m->from, sizeof(m->from), doc_str(doc, "sender"));
    core_copy_trunc(m->to, sizeof(m->to), doc_str(doc, "target"));
    m->ts = (uint64_t)doc_i64(doc, "ts");
    core_copy_trunc(m->format, sizeof(m->format), doc_str(doc, "format"));
    m->message = core_xstrdup(doc_str(doc, "message"));
}

typedef struct msgs_ctx {
    store_msgs_t *out;
    size_t cap;
} msgs_ctx_t;

static int add_msg(const bson_t *doc, void *ud)
{
    msgs_ctx_t *c = ud;

    fill_msg(doc, store__list_push((void **)&c->out->items, &c->out->count, &c->cap,
                                   sizeof(store_msg_t)));
    return STORE_OK;
}

static int mg_history(void *be, const char *conv, const char *before, int limit,
                      store_msgs_t *out)
{
    bson_t *filter, *opts;
    msgs_ctx_t ctx = {out, 0};
    int ret;

    memset(out, 0, sizeof(*out));
    if (limit <= 0)
        return ensure_schema(be);
    if (before && before[0])
        filter = BCON_NEW("conv", BCON_UTF8(str_or_empty(conv)), "_id", "{", "$lt",
                          BCON_UTF8(before), "}");
    else
        filter = BCON_NEW("conv", BCON_UTF8(str_or_empty(conv)));
    opts = BCON_NEW("sort", "{", "_id", BCON_INT32(-1), "}", "limit",
                    BCON_INT64(limit > STORE_HISTORY_MAX ? STORE_HISTORY_MAX : limit));
    ret = do_find(be, C_MESSAGES, filter, opts, add_msg, &ctx);
    bson_destroy(filter);
    bson_destroy(opts);
    if (ret != STORE_OK) {
        store_msgs_free(out);
        return ret;
    }
    for (size_t i = 0, j = out->count; i + 1 < j; i++, j--) {
        store_msg_t t = out->items[i];
        out->items[i] = out->items[j - 1];
        out->items[j - 1] = t;
    }
    return STORE_OK;
}

static int mg_msg_get(void *be, const char *msgid, store_msg_t *out)
{
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(str_or_empty(msgid)));
    bson_t doc;
    int ret = find_one(be, C_MESSAGES, filter, &doc);

    memset(out, 0, sizeof(*out));
    bson_destroy(filter);
    if (ret != STORE_OK)
        return ret;
    fill_msg(&doc, out);
    bson_destroy(&doc);
    return STORE_OK;
}

/* The newest msgid of conv: the (conv, _id) index read backwards, one key. */
static int mg_conv_last(void *be, const char *conv, char out[STORE_MSGID_MAX])
{
    bson_t *filter = BCON_NEW("conv", BCON_UTF8(str_or_empty(conv)));
    bson_t *opts = BCON_NEW("sort", "{", "_id", BCON_INT32(-1), "}", "limit", BCON_INT64(1),
                            "projection", "{", "_id", BCON_INT32(1), "}");
    bson_t doc;
    int ret = do_find(be, C_MESSAGES, filter, opts, copy_doc, &doc);

    bson_destroy(filter);
    bson_destroy(opts);
    if (ret != STORE_NOTFOUND - 100)
        return ret == STORE_OK ? STORE_NOTFOUND : ret;
    core_copy_trunc(out, STORE_MSGID_MAX, doc_str(&doc, "_id"));
    bson_destroy(&doc);
    return STORE_OK;
}

/* ------------------------------------------------------------------ pending */

static int mg_pending_add(void *be, const char *user, const char *msgid, const char *event,
                          const char *data_json, uint64_t ts)
{
    char key[PAIR_MAX];
    bson_t *doc;
    int ret;

    if (!msgid || !msgid[0])
        return STORE_ERR; /* the msgid keys the item */
    doc = BCON_NEW("_id", BCON_UTF8(pair_id(key, user, msgid)), "user",
                   BCON_UTF8(str_or_empty(user)), "msgid", BCON_UTF8(msgid), "event",
                   BCON_UTF8(str_or_empty(event)), "data", BCON_UTF8(data_json ? data_json : "{}"),
                   "ts", BCON_INT64(u64_to_i64(ts)));
    ret = do_insert(be, C_PENDING, doc);
    bson_destroy(doc);
    return ret;
}

typedef struct pend_ctx {
    store_pendings_t *out;
    size_t cap;
} pend_ctx_t;

static int add_pending(const bson_t *doc, void *ud)
{
    pend_ctx_t *c = ud;
    store_pending_t *p = store__list_push((void **)&c->out->items, &c->out->count, &c->cap,
                                          sizeof(*p));

    core_copy_trunc(p->msgid, sizeof(p->msgid), doc_str(doc, "msgid"));
    core_copy_trunc(p->event, sizeof(p->event), doc_str(doc, "event"));
    p->data = core_xstrdup(doc_str(doc, "data"));
    return STORE_OK;
}

static int mg_pending_list(void *be, const char *user, size_t limit, store_pendings_t *out)
{
    bson_t *filter, *opts;
    pend_ctx_t ctx = {out, 0};
    int ret;

    memset(out, 0, sizeof(*out));
    if (limit == 0)
        return ensure_schema(be);
    filter = BCON_NEW("user", BCON_UTF8(str_or_empty(user)));
    opts = BCON_NEW("sort", "{", "msgid", BCON_INT32(1), "}", "limit",
                    BCON_INT64(limit > INT64_MAX ? INT64_MAX : (int64_t)limit));
    ret = do_find(be, C_PENDING, filter, opts, add_pending, &ctx);
    bson_destroy(filter);
    bson_destroy(opts);
    if (ret != STORE_OK)
        store_pendings_free(out);
    return ret;
}

static int mg_pending_count(void *be, const char *user, long *count)
{
    bson_t *filter = BCON_NEW("user", BCON_UTF8(str_or_empty(user)));
    int64_t n;
    int ret = count_docs(be, C_PENDING, filter, &n);

    bson_destroy(filter);
    *count = (long)n;
    return ret;
}

/* The "from" of a "chat" item's data (JSON), or NULL. */
static const char *chat_sender(const bson_t *item, bson_t *data)
{
    bson_error_t error;
    bson_iter_t it;

    if (strcmp(doc_str(item, "event"), "chat") != 0 ||
        !bson_init_from_json(data, doc_str(item, "data"), -1, &error))
        return NULL;
    return bson_iter_init_find(&it, data, "from") && BSON_ITER_HOLDS_UTF8(&it)
               ? bson_iter_utf8(&it, NULL)
               : NULL;
}

/* Takes the item and reads it in one round trip (findAndModify, remove). */
static int ack_one(mongo_be_t *be, const char *user, const char *msgid, store_ackeds_t *out,
                   size_t *cap)
{
    mongoc_collection_t *c;
    bson_t *filter, reply, data = BSON_INITIALIZER;
    bson_error_t error;
    bson_iter_t it;
    int ret = STORE_OK;

    if (!msgid || !msgid[0])
        return STORE_OK;
    if (!(c = coll(be, C_PENDING)))
        return STORE_ERR;
    filter = BCON_NEW("user", BCON_UTF8(str_or_empty(user)), "msgid", BCON_UTF8(msgid));
    if (!mongoc_collection_find_and_modify(c, filter, NULL, NULL, NULL, true, false, false, &reply,
                                           &error)) {
        ret = log_error(be, "findAndModify", &error);
    } else if (bson_iter_init_find(&it, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
        uint32_t len;
        const uint8_t *raw;
        bson_t item;
        bson_iter_document(&it, &len, &raw);
        const char *from = bson_init_static(&item, raw, len) ? chat_sender(&item, &data) : NULL;
        if (from) {
            store_acked_t *a =
                store__list_push((void **)&out->items, &out->count, cap, sizeof(*a));
            core_copy_trunc(a->msgid, sizeof(a->msgid), msgid);
            core_copy_trunc(a->from, sizeof(a->from), from);
        }
    }
    bson_destroy(&reply);
    bson_destroy(&data);
    bson_destroy(filter);
    return ret;
}

static int mg_pending_ack(void *be, const char *user, const char *const *msgids, size_t n,
                          store_ackeds_t *out)
{
    size_t cap = 0;
    int ret = STORE_OK;

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n && ret == STORE_OK; i++)
        ret = ack_one(be, user, msgids[i], out, &cap);
    if (ret != STORE_OK)
        store_ackeds_free(out);
    return ret;
}

static int mg_pending_drop(void *be, const char *user, const char *msgid)
{
    bson_t *filter = BCON_NEW("user", BCON_UTF8(str_or_empty(user)), "msgid",
                              BCON_UTF8(str_or_empty(msgid)));
    int ret = do_delete(be, C_PENDING, filter, 0);

    bson_destroy(filter);
    return ret;
}

/* ------------------------------------------------------------------ cids */

static int mg_cid_get(void *be, const char *user, const char *cid, uint64_t since_ms,
                      char msgid[STORE_MSGID_MAX])
{
    char key[PAIR_MAX];
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(pair_id(key, user, cid)), "ts", "{", "$gt",
                              BCON_INT64(u64_to_i64(since_ms)), "}");
    bson_t doc;
    int ret = find_one(be, C_CIDS, filter, &doc);

    msgid[0] = '\0';
    bson_destroy(filter);
    if (ret != STORE_OK)
        return ret;
    core_copy_trunc(msgid, STORE_MSGID_MAX, doc_str(&doc, "msgid"));
    bson_destroy(&doc);
    return STORE_OK;
}

static int mg_cid_put(void *be, const char *user, const char *cid, const char *msgid, uint64_t ts)
{
    char key[PAIR_MAX];
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(pair_id(key, user, cid)));
    bson_t *update = BCON_NEW("$set", "{", "user", BCON_UTF8(str_or_empty(user)), "msgid",
                              BCON_UTF8(str_or_empty(msgid)), "ts", BCON_INT64(u64_to_i64(ts)),
                              "}");
    int ret = do_upsert(be, C_CIDS, filter, update, NULL);

    bson_destroy(filter);
    bson_destroy(update);
    return ret;
}

static int expire_older(mongo_be_t *be, enum coll_id id, const char *field, uint64_t before_ms)
{
    bson_t *filter = BCON_NEW(field, "{", "$lt", BCON_INT64(u64_to_i64(before_ms)), "}");
    int ret = do_delete(be, id, filter, 1);

    bson_destroy(filter);
    return ret == STORE_NOTFOUND ? STORE_OK : ret;
}

static int mg_expire(void *be, uint64_t before_ms)
{
    int ret = expire_older(be, C_CIDS, "ts", before_ms);

    if (ret == STORE_OK)
        ret = expire_older(be, C_TOKENS, "expires", before_ms);
    return ret;
}

/* ------------------------------------------------------------------ open / close */

static void mg_close(void *be)
{
    mongo_be_t *b = be;

    if (!b)
        return;
    for (int i = 0; i < C_COUNT; i++)
        mongoc_collection_destroy(b->coll[i]);
    mongoc_database_destroy(b->db);
    mongoc_client_pool_push(b->pool, b->client);
    mongoc_client_pool_destroy(b->pool);
    free(b);
}

/* "stored" must survive the primary's loss: w:majority unless the URI
 * says otherwise; bounded, so a lost majority fails the write (503) instead
 * of holding the store thread forever. */
static void default_write_concern(mongoc_uri_t *uri)
{
    const mongoc_write_concern_t *given = mongoc_uri_get_write_concern(uri);
    mongoc_write_concern_t *wc;

    if (mongoc_write_concern_get_w(given) != MONGOC_WRITE_CONCERN_W_DEFAULT ||
        mongoc_write_concern_get_wmajority(given))
        return;
    wc = mongoc_write_concern_new();
    mongoc_write_concern_set_wmajority(wc, 10000);
    if (mongoc_write_concern_journal_is_set(given))
        mongoc_write_concern_set_journal(wc, mongoc_write_concern_get_journal(given));
    mongoc_uri_set_write_concern(uri, wc);
    mongoc_write_concern_destroy(wc);
}

/* A store thread waiting 30 s (the driver's default) for a server holds
 * every queued request that long: fail after 5 s instead (503, retry). */
static void default_selection_timeout(mongoc_uri_t *uri)
{
    if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000);
}

void *store__mongo_open(const char *uri_str, char *err, size_t errlen)
{
    bson_error_t error;
    mongoc_uri_t *uri;
    mongo_be_t *be;
    const char *dbname;

    pthread_once(&mongo_once, mongo_global_init);
    uri = mongoc_uri_new_with_error(uri_str, &error);
    if (!uri) {
        snprintf(err, errlen, "store/mongodb: bad URI: %s", error.message);
        return NULL;
    }
    default_write_concern(uri);
    default_selection_timeout(uri);
    be = core_xcalloc(1, sizeof(*be));
    be->pool = mongoc_client_pool_new_with_error(uri, &error);
    if (!be->pool) {
        snprintf(err, errlen, "store/mongodb: %s", error.message);
        mongoc_uri_destroy(uri);
        free(be);
        return NULL;
    }
    mongoc_client_pool_set_error_api(be->pool, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_pool_set_appname(be->pool, "chat");
    be->client = mongoc_client_pool_pop(be->pool);
    dbname = mongoc_uri_get_database(uri);
    be->db = mongoc_client_get_database(be->client, dbname && dbname[0] ? dbname : "chat");
    for (int i = 0; i < C_COUNT; i++)
        be->coll[i] = mongoc_database_get_collection(be->db, coll_names[i]);
    mongoc_uri_destroy(uri);
    return be;
}

const store_ops_t store__mongo_ops = {
    .name = "mongodb",
    .close = mg_close,
    .batch_begin = mg_batch_begin,
    .batch_commit = mg_ok,
    .batch_abort = mg_abort,
    .batch_alive = mg_alive,
    .item_begin = mg_ok,
    .item_end = mg_item_end,
    .user_create = mg_user_create,
    .user_get = mg_user_get,
    .token_put = mg_token_put,
    .token_check = mg_token_check,
    .friend_request_put = mg_friend_request_put,
    .friend_request_take = mg_friend_request_take,
    .friend_add = mg_friend_add,
    .friends_check = mg_friends_check,
    .friends_list = mg_friends_list,
    .group_create = mg_group_create,
    .group_get = mg_group_get,
    .group_join = mg_group_join,
    .group_leave = mg_group_leave,
    .group_is_member = mg_group_is_member,
    .group_members = mg_group_members,
    .groups_of = mg_groups_of,
    .groups_all = mg_groups_all,
    .room_create = mg_room_create,
    .room_get = mg_room_get,
    .rooms_list = mg_rooms_list,
    .msg_put = mg_msg_put,
    .history = mg_history,
    .msg_get = mg_msg_get,
    .conv_last = mg_conv_last,
    .pending_add = mg_pending_add,
    .pending_list = mg_pending_list,
    .pending_count = mg_pending_count,
    .pending_ack = mg_pending_ack,
    .pending_drop = mg_pending_drop,
    .cid_get = mg_cid_get,
    .cid_put = mg_cid_put,
    .expire = mg_expire,
};
