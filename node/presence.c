/* Global sessions and the node list in Redis (keys: docs/CLUSTER.md). */
#include <string.h>
#include <hiredis/hiredis.h>

#include "node/node.h"

/* A session lives in one of SESS_BUCKETS hashes, a node's list of its
 * users in one of NODE_BUCKETS hashes: small hashes stay listpacks in
 * Redis (~60 B a session instead of ~195 B as a key and a set member).
 * Both counts are part of the layout every node must share. */
#define SESS_BUCKETS 16384u
#define NODE_BUCKETS 1024u
#define SESS_PREFIX "chat:sessions:"
#define SESS_KEY SESS_PREFIX "%u"
#define NODE_USERS_PREFIX "chat:node:%s:users:"
#define NODE_USERS_KEY NODE_USERS_PREFIX "%u"
#define NODES_KEY "chat:nodes"

/* Lua: set the session, list it under this node, answer the one it
 * replaced (nil if none). KEYS: session bucket, node bucket; ARGV: user,
 * value, session bucket number. */
static const char *const SESS_SET =
    "local o = redis.call('hget', KEYS[1], ARGV[1]) redis.call('hset', KEYS[1], ARGV[1], ARGV[2]) "
    "redis.call('hset', KEYS[2], ARGV[1], ARGV[3]) return o";

/* Lua fragment, after `local v = <the session of ARGV[1]>`: the user
 * leaves this node's list (KEYS[2]) unless the session names this node
 * (ARGV[2] = "<node id> "; the new session may be here too). */
#define LUA_UNLIST_IF_MOVED                                                                        \
    "if not v or string.sub(v, 1, #ARGV[2]) ~= ARGV[2] then redis.call('hdel', KEYS[2], ARGV[1]) end "

/* Lua: delete the session only if it still names this connection; the
 * node's list keeps the user only while the session is on this node.
 * KEYS: session bucket, node bucket; ARGV: user, "<node id> ", value. */
static const char *const DEL_IF_MINE =
    "local v = redis.call('hget', KEYS[1], ARGV[1]) "
    "if v == ARGV[3] then redis.call('hdel', KEYS[2], ARGV[1]) "
    "return redis.call('hdel', KEYS[1], ARGV[1]) end " LUA_UNLIST_IF_MOVED "return 0";

/* Lua: a kicked session's user leaves this node's list unless the session
 * still names this node. KEYS: session bucket, node bucket; ARGV: user,
 * "<node id> ". */
static const char *const UNLIST_IF_MOVED =
    "local v = redis.call('hget', KEYS[1], ARGV[1]) " LUA_UNLIST_IF_MOVED "return 0";

/* Lua: forget node ARGV[1]'s run ARGV[4] and its earlier runs ("0": the
 * runs that did not name themselves): the sessions that still name the
 * node (not a user who logged in elsewhere meanwhile) and its node-list
 * entry. A later run of the same id (its entry says a larger boot) keeps
 * its entry and its sessions, those whose conn id is not below its boot.
 * Returns the users whose session it ended. Numbers are compared as
 * decimal strings (conn ids pass 2^53). KEYS: the node list; ARGV: id,
 * "<id> ", session bucket prefix, boot, the node's bucket prefix, node
 * bucket count. */
static const char *const CLEAN_NODE =
    "local function lt(a, b) return #a < #b or (#a == #b and a < b) end "
    "local keep = nil local v = redis.call('hget', KEYS[1], ARGV[1]) "
    "if v then local ok, e = pcall(cjson.decode, v) "
    "if ok and type(e) == 'table' and type(e.boot) == 'string' and lt(ARGV[4], e.boot) "
    "then keep = e.boot end end "
    "if not keep then redis.call('hdel', KEYS[1], ARGV[1]) end "
    "local gone = {} for j = 0, tonumber(ARGV[6]) - 1 do "
    "local ik = ARGV[5] .. j local flat = redis.call('hgetall', ik) "
    "for i = 1, #flat, 2 do local u = flat[i] local k = ARGV[3] .. flat[i + 1] "
    "local s = redis.call('hget', k, u) "
    "local ours = s and string.sub(s, 1, #ARGV[2]) == ARGV[2] "
    "if ours and (not keep or lt(string.sub(s, #ARGV[2] + 1), keep)) then "
    "redis.call('hdel', k, u) gone[#gone + 1] = u ours = false end "
    "if keep and not ours then redis.call('hdel', ik, u) end end "
    "if not keep and #flat > 0 then redis.call('del', ik) end end return gone";

/* Lua: HGET of many users, nil for those without a session. KEYS: their
 * session buckets; ARGV: the users. */
static const char *const SESS_GET_MANY =
    "local r = {} for i = 1, #KEYS do r[i] = redis.call('hget', KEYS[i], ARGV[i]) end return r";

static unsigned sess_bucket(const char *user)
{
    return (unsigned)(core_strhash(user) % SESS_BUCKETS);
}

static void sess_value(const node_sess_t *s, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s %llu", s->node->cfg.id, (unsigned long long)s->conn_id);
}

/* The two hashes that hold a user's session and this node's entry for it. */
static unsigned sess_keys(const node_t *n, const char *user, char *key, size_t keylen, char *idx,
                          size_t idxlen)
{
    unsigned b = sess_bucket(user);
    snprintf(key, keylen, SESS_KEY, b);
    snprintf(idx, idxlen, NODE_USERS_KEY, n->cfg.id, b % NODE_BUCKETS);
    return b;
}

typedef struct login_ctx {
    node_t *node;
    char user[PROTO_NAME_MAX + 1];
    node_login_cb cb;
    void *ud;
} login_ctx_t;

static void on_sess_set(core_redis_t *r, struct redisReply *reply, void *ud)
{
    (void)r;
    login_ctx_t *c = ud;
    const char *old = (reply && reply->type == REDIS_REPLY_STRING) ? reply->str : NULL;
    if (!reply || reply->type == REDIS_REPLY_ERROR)
        c->node->presence_lost = 1;
    if (c->cb)
        c->cb(c->node, c->user, old, c->ud);
    free(c);
}

void node_presence_login(node_t *n, node_sess_t *s, node_login_cb cb, void *ud)
{
    char key[64], idx[128], val[128];
    unsigned b = sess_keys(n, s->user, key, sizeof key, idx, sizeof idx);
    sess_value(s, val, sizeof val);
    login_ctx_t *c = core_xcalloc(1, sizeof *c);
    c->node = n;
    core_copy_trunc(c->user, sizeof c->user, s->user);
    c->cb = cb;
    c->ud = ud;
    if (core_redis_cmd(n->redis, on_sess_set, c, "EVAL %s 2 %s %s %s %s %u", SESS_SET, key, idx,
                       s->user, val, b) != 0)
        on_sess_set(NULL, NULL, c);
}

typedef struct logout_ctx {
    node_t *node;
    char user[PROTO_NAME_MAX + 1];
} logout_ctx_t;

/* Friends hear "offline" only when this session was still the user's one
 * (not when the user already logged in elsewhere); also when Redis is down. */
static void on_sess_deleted(core_redis_t *r, struct redisReply *reply, void *ud)
{
    (void)r;
    logout_ctx_t *c = ud;
    if (!reply || reply->type != REDIS_REPLY_INTEGER || reply->integer == 1)
        node_presence_notify_friends(c->node, c->user, 0);
    free(c);
}

void node_presence_logout(node_t *n, node_sess_t *s)
{
    char key[64], idx[128], val[128], prefix[80];
    sess_keys(n, s->user, key, sizeof key, idx, sizeof idx);
    sess_value(s, val, sizeof val);
    snprintf(prefix, sizeof prefix, "%s ", n->cfg.id);
    logout_ctx_t *c = core_xcalloc(1, sizeof *c);
    c->node = n;
    core_copy_trunc(c->user, sizeof c->user, s->user);
    if (core_redis_cmd(n->redis, on_sess_deleted, c, "EVAL %s 2 %s %s %s %s %s", DEL_IF_MINE, key,
                       idx, s->user, prefix, val) != 0)
        on_sess_deleted(NULL, NULL, c);
}

void node_presence_unlist(node_t *n, const node_sess_t *s)
{
    char key[64], idx[128], prefix[80];
    sess_keys(n, s->user, key, sizeof key, idx, sizeof idx);
    snprintf(prefix, sizeof prefix, "%s ", n->cfg.id);
    core_redis_cmd(n->redis, NULL, NULL, "EVAL %s 2 %s %s %s %s", UNLIST_IF_MOVED, key, idx, s->user,
                   prefix);
}

/* The users of a dead node are offline now: their friends hear it (the
 * script ran once, so each user is announced once, by whoever cleaned). */
static void on_node_cleaned(core_redis_t *r, struct redisReply *reply, void *ud)
{
    (void)r;
    node_t *n = ud;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
            CORE_WARN("cleaning a departed node's sessions failed: %s", reply->str);
        return;
    }
    if (reply->elements)
        CORE_INFO("%zu sessions of a departed node ended", reply->elements);
    for (size_t i = 0; i < reply->elements; i++)
        if (reply->element[i]->type == REDIS_REPLY_STRING)
            node_presence_notify_friends(n, reply->element[i]->str, 0);
}

void node_presence_clean_node(node_t *n, const char *id, const char *boot)
{
    char idx[128], prefix[80];
    snprintf(idx, sizeof idx, NODE_USERS_PREFIX, id);
    snprintf(prefix, sizeof prefix, "%s ", id);
    core_redis_cmd(n->redis, on_node_cleaned, n, "EVAL %s 1 %s %s %s %s %s %s %u", CLEAN_NODE,
                   NODES_KEY, id, prefix, SESS_PREFIX, boot ? boot : "0", idx, NODE_BUCKETS);
}

/* ------------------------------------------------------------------ location cache */

#define LOC_CACHE_MAX 100000 /* entries; full: start over (a cache, not a source) */

typedef struct node_loc_entry {
    char user[PROTO_NAME_MAX + 1];
    char node[64];              /* "" while not known */
    uint64_t expires_ms;
    unsigned locating;          /* Redis look-ups in flight for this user */
    uint8_t refreshing;         /* a look-up that only renews the entry is in flight */
    UT_hash_handle hh;
} node_loc_entry_t;

static void cache_refresh(node_t *n, node_loc_entry_t *e);

static node_loc_entry_t *cache_entry(node_t *n, const char *user)
{
    node_loc_entry_t *e = NULL;
    HASH_FIND_STR(n->loc_cache, user, e);
    if (e)
        return e;
    if (n->loc_cache_count >= LOC_CACHE_MAX)
        node_presence_cache_free(n);
    e = core_xcalloc(1, sizeof *e);
    core_copy_trunc(e->user, sizeof e->user, user);
    HASH_ADD_STR(n->loc_cache, user, e);
    n->loc_cache_count++;
    return e;
}

const char *node_presence_cached(node_t *n, const char *user)
{
    node_loc_entry_t *e = NULL;
    HASH_FIND_STR(n->loc_cache, user, e);
    if (!e || e->locating) /* a look-up in flight: later events queue behind it, in order */
        return NULL;
    uint64_t now = core_mono_ms();
    if (!e->node[0] || e->expires_ms <= now) {
        node_presence_cache_drop(n, user);
        return NULL;
    }
    /* e stays valid: a renewal that cannot be sent answers at once with no
     * result, which keeps the entry; a real answer comes from the loop */
    if (!e->refreshing && e->expires_ms - now < n->cfg.loc_cache_ms / 2)
        cache_refresh(n, e);
    return e->node;
}

void node_presence_cache_locating(node_t *n, const char *user, int delta)
{
    node_loc_entry_t *e = delta > 0 ? cache_entry(n, user) : NULL;
    if (!e)
        HASH_FIND_STR(n->loc_cache, user, e);
    if (!e) /* the cache started over meanwhile */
        return;
    if (delta > 0)
        e->locating++;
    else if (e->locating)
        e->locating--;
    if (!e->locating && !e->node[0])
        node_presence_cache_drop(n, user);
}

void node_presence_cache_put(node_t *n, const char *user, const char *node_id)
{
    if (!n->cfg.loc_cache_ms)
        return;
    node_loc_entry_t *e = cache_entry(n, user);
    core_copy_trunc(e->node, sizeof e->node, node_id);
    e->expires_ms = core_mono_ms() + n->cfg.loc_cache_ms;
}

void node_presence_cache_drop(node_t *n, const char *user)
{
    node_loc_entry_t *e = NULL;
    HASH_FIND_STR(n->loc_cache, user, e);
    if (!e)
        return;
    HASH_DEL(n->loc_cache, e);
    free(e);
    n->loc_cache_count--;
}

void node_presence_cache_free(node_t *n)
{
    node_loc_entry_t *e, *tmp;
    HASH_ITER(hh, n->loc_cache, e, tmp) {
        HASH_DEL(n->loc_cache, e);
        free(e);
    }
    n->loc_cache_count = 0;
}

/* The answer to a renewal: the entry takes what Redis says now, unless a
 * look-up that carries events is in flight (its answer decides). */
static void cache_refreshed(node_t *n, const node_loc_t *locs, size_t count, void *ud)
{
    char *user = ud;
    node_loc_entry_t *e = NULL;
    HASH_FIND_STR(n->loc_cache, user, e);
    if (e && locs) { /* no answer (Redis failed): the entry lives out its time */
        e->refreshing = 0;
        int elsewhere = count == 1 && locs[0].online && strcmp(locs[0].node, n->cfg.id) != 0;
        if (!e->locating && elsewhere)
            node_presence_cache_put(n, user, locs[0].node);
        else if (!e->locating) /* offline, or here now: no guess to keep */
            node_presence_cache_drop(n, user);
    }
    free(user);
}

/* A busy user's entry is renewed in its second half-life, while events go
 * on through it: otherwise every event of the look-up that follows its
 * expiry would wait for Redis (at saturation, most of a pair's events). */
static void cache_refresh(node_t *n, node_loc_entry_t *e)
{
    e->refreshing = 1;
    n->metrics.loc_refreshes_total++;
    const char *user = e->user;
    node_presence_locate(n, &user, 1, cache_refreshed, core_xstrdup(e->user));
}

/* ------------------------------------------------------------------ locate */

typedef struct locate_ctx {
    node_t *node;
    size_t count;
    node_locate_cb cb;
    void *ud;
} locate_ctx_t;

/* "<node id> <conn id>" names a live session when the node is a member;
 * on this node, only while the session is still here. */
static void parse_loc(node_t *n, const char *user, const struct redisReply *v, node_loc_t *loc)
{
    memset(loc, 0, sizeof *loc);
    if (v->type != REDIS_REPLY_STRING || sscanf(v->str, "%63s", loc->node) != 1)
        return;
    if (strcmp(loc->node, n->cfg.id) == 0) {
        node_sess_t *s = node_sess_find(n, user);
        loc->online = s && node_sess_live(s);
    } else {
        loc->online = node_cluster_is_member(n, loc->node);
    }
}

typedef struct locate_req {
    locate_ctx_t ctx;
    char **users;
} locate_req_t;

/* One user's HGET answers the value itself; several users' script an array. */
static const struct redisReply *located(const struct redisReply *reply, size_t count, size_t i)
{
    if (count == 1 && (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_NIL))
        return reply;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != count)
        return NULL;
    return reply->element[i];
}

static void on_located(core_redis_t *r, struct redisReply *reply, void *ud)
{
    (void)r;
    locate_req_t *q = ud;
    locate_ctx_t *c = &q->ctx;
    if (!reply || !located(reply, c->count, 0)) {
        c->cb(c->node, NULL, c->count, c->ud);
    } else {
        node_loc_t *locs = core_xcalloc(c->count + 1, sizeof *locs);
        for (size_t i = 0; i < c->count; i++)
            parse_loc(c->node, q->users[i], located(reply, c->count, i), &locs[i]);
        c->cb(c->node, locs, c->count, c->ud);
        free(locs);
    }
    for (size_t i = 0; i < c->count; i++)
        free(q->users[i]);
    free(q->users);
    free(q);
}

typedef char sess_key_t[32];

/* HGET for one user (the 1:1 path), a script for many: one answer either way. */
static int send_locate(node_t *n, locate_req_t *q, const sess_key_t *keys)
{
    size_t count = q->ctx.count, argc = count == 1 ? 3 : 3 + 2 * count;
    const char **argv = core_xcalloc(argc, sizeof *argv);
    size_t *lens = core_xcalloc(argc, sizeof *lens);
    char nkeys[24];
    snprintf(nkeys, sizeof nkeys, "%zu", count);
    size_t a = 0;
    if (count == 1) {
        argv[a++] = "HGET";
    } else {
        argv[a++] = "EVAL";
        argv[a++] = SESS_GET_MANY;
        argv[a++] = nkeys;
    }
    for (size_t i = 0; i < count; i++)
        argv[a++] = keys[i];
    for (size_t i = 0; i < count; i++)
        argv[a++] = q->users[i];
    for (size_t i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    int rc = core_redis_cmdargv(n->redis, on_located, q, (int)argc, argv, lens);
    free(lens);
    free(argv);
    return rc;
}

void node_presence_locate(node_t *n, const char *const *users, size_t count, node_locate_cb cb,
                          void *ud)
{
    if (count == 0) {
        node_loc_t none;
        memset(&none, 0, sizeof none);
        cb(n, &none, 0, ud);
        return;
    }
    locate_req_t *q = core_xcalloc(1, sizeof *q);
    q->ctx = (locate_ctx_t){n, count, cb, ud};
    q->users = core_xcalloc(count, sizeof *q->users);
    sess_key_t *keys = core_xcalloc(count, sizeof *keys);
    for (size_t i = 0; i < count; i++) {
        q->users[i] = core_xstrdup(users[i]);
        snprintf(keys[i], sizeof keys[i], SESS_KEY, sess_bucket(users[i]));
    }
    if (send_locate(n, q, keys) != 0)
        on_located(NULL, NULL, q);
    free(keys);
}

typedef struct online_ctx {
    node_online_cb cb;
    void *ud;
} online_ctx_t;

static void online_from_locs(node_t *n, const node_loc_t *locs, size_t count, void *ud)
{
    online_ctx_t c = *(online_ctx_t *)ud;
    free(ud);
    if (!locs) {
        c.cb(n, NULL, count, c.ud);
        return;
    }
    int *online = core_xcalloc(count + 1, sizeof *online);
    for (size_t i = 0; i < count; i++)
        online[i] = locs[i].online;
    c.cb(n, online, count, c.ud);
    free(online);
}

void node_presence_online(node_t *n, const char *const *users, size_t count, node_online_cb cb,
                          void *ud)
{
    online_ctx_t *c = core_xcalloc(1, sizeof *c);
    c->cb = cb;
    c->ud = ud;
    node_presence_locate(n, users, count, online_from_locs, c);
}

/* ------------------------------------------------------------------ presence events */

typedef struct friends_job {
    node_job_t job;
    char user[PROTO_NAME_MAX + 1];
    int online;
    store_names_t friends;
} friends_job_t;

static void friends_work(store_t *st, void *arg)
{
    friends_job_t *j = arg;
    j->job.rc = store_friends_list(st, j->user, &j->friends);
}

void node_presence_tell_friends(node_t *n, const char *user, int online,
                                const store_names_t *friends)
{
    if (friends->count == 0)
        return;
    size_t len = 0;
    char *frame = node_event_frame("presence", proto_ev_presence(user, online), &len);
    /* one lookup and one copy per node, not one per friend */
    const char **users = core_xcalloc(friends->count + 1, sizeof *users);
    for (size_t i = 0; i < friends->count; i++)
        users[i] = friends->items[i].user;
    node_route_users(n, users, friends->count, NULL, frame, len);
    free(users);
    free(frame);
}

static void friends_done(void *arg)
{
    friends_job_t *j = arg;
    if (j->job.rc == STORE_OK)
        node_presence_tell_friends(j->job.node, j->user, j->online, &j->friends);
    store_names_free(&j->friends);
    free(j);
}

void node_presence_notify_friends(node_t *n, const char *user, int online)
{
    friends_job_t *j = core_xcalloc(1, sizeof *j);
    core_copy_trunc(j->user, sizeof j->user, user);
    j->online = online;
    node_job_submit_read(n, &j->job, friends_work, friends_done);
}

/* ------------------------------------------------------------------ node list */

/* After a reconnect: Redis kept this node's entry (HSET answers 0) and no
 * session write failed: the sessions are there, and publishing them all
 * again would only load Redis when it is slow already (the usual cause of
 * a command timeout); what went pending meanwhile is still pushed. */
static void after_reconnect(node_t *n, long long created)
{
    n->reconnect_check = 0;
    if (created && !node_cluster_joined(n))
        n->republish_owed = 1; /* cleaned while stalled too: below, once registered */
    else
        node_presence_republish(n, created || n->presence_lost ? NODE_REPUBLISH_REDIS_BACK
                                                               : NODE_REPUBLISH_REDIS_KEPT);
}

/* HSET answers 1 when it created the field: after our first write since
 * the connect, only a clean-up of this node (CLEAN_NODE) removes it, and
 * that ran before this write, so publishing now cannot be undone by it.
 * Not before this node is registered again: others would take the
 * sessions for offline still (and park what they send). */
static void on_entry_set(core_redis_t *r, struct redisReply *reply, void *ud)
{
    (void)r;
    node_t *n = ud;
    if (!reply || reply->type != REDIS_REPLY_INTEGER)
        return;
    if (n->reconnect_check)
        after_reconnect(n, reply->integer);
    else if (reply->integer == 1 && n->entry_seen && !n->republish_owed) {
        CORE_WARN("this node's entry and sessions were ended in Redis (taken for dead)");
        n->republish_owed = 1;
    }
    n->entry_seen = 1;
    if (n->republish_owed && node_cluster_joined(n)) {
        n->republish_owed = 0;
        node_presence_republish(n, NODE_REPUBLISH_FORGOTTEN);
    }
}

void node_presence_heartbeat(node_t *n)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", n->cfg.id);
    cJSON_AddStringToObject(o, "addr", n->cfg.listen);
    cJSON_AddStringToObject(o, "url", n->cfg.public_url);
    cJSON_AddNumberToObject(o, "load", (double)n->conns);
    cJSON_AddNumberToObject(o, "ts", (double)core_now_ms());
    cJSON_AddStringToObject(o, "boot", n->boot);
    char *json = proto_json_print(o, NULL);
    cJSON_Delete(o);
    core_redis_cmd(n->redis, on_entry_set, n, "HSET " NODES_KEY " %s %s", n->cfg.id, json);
    free(json);
}

void node_presence_republish(node_t *n, node_republish_why_t why)
{
    static const char *const whys[] = {"Redis connected", "Redis connected again",
                                       "Redis connected again and kept them",
                                       "this node was taken for dead"};
    int publish = why != NODE_REPUBLISH_REDIS_KEPT;
    CORE_INFO("%s %u sessions (%s)", publish ? "publishing" : "not publishing",
              (unsigned)n->sessions.count, whys[why]);
    if (publish)
        n->presence_lost = 0; /* a write that fails from here on sets it again */
    for (node_sess_t *s = n->sess_first, *next; s; s = next) {
        next = s->next; /* s may leave the list below */
        if (!node_sess_live(s))
            continue;
        if (publish)
            node_presence_login(n, s, NULL, NULL);
        /* what was sent to them meanwhile may have gone pending: live now */
        if (why != NODE_REPUBLISH_FIRST)
            node_account_redeliver_pending(s);
        if (why == NODE_REPUBLISH_FORGOTTEN)
            node_presence_notify_friends(n, s->user, 1); /* they heard "offline" */
    }
}
