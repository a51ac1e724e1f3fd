/* Accounts: register, login (password or token), logout, user_info, ping. */
#include <string.h>

#include <hiredis/hiredis.h>
#include <sodium.h>

#include "node/node.h"

static const char *const BAD_CREDENTIALS = "invalid user or password";

/* ------------------------------------------------------------------ register */

typedef struct register_job {
    node_job_t job;
    char user[PROTO_NAME_MAX + 1];
    char nickname[PROTO_NICK_MAX + 1];
    char password[PROTO_PASSWORD_MAX + 1]; /* until it is handed to the hashing pool */
    char hash[STORE_HASH_MAX];
} register_job_t;

static void register_job_free(register_job_t *j)
{
    sodium_memzero(j->password, sizeof j->password);
    free(j);
}

static void register_work(store_t *st, void *arg)
{
    register_job_t *j = arg;
    j->job.rc = store_user_create(st, j->user, j->nickname, j->hash, core_now_ms());
}

static void register_done(void *arg)
{
    register_job_t *j = arg;
    node_req_t *r = j->job.req;
    if (j->job.rc == STORE_EXISTS) {
        node_req_fail(r, PROTO_CONFLICT, "user already exists");
    } else if (j->job.rc != STORE_OK) {
        node_req_fail(r, PROTO_UNAVAILABLE, "store unavailable, retry");
    } else {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "user", j->user);
        cJSON_AddStringToObject(d, "nickname", j->nickname);
        node_req_ok(r, d);
    }
    register_job_free(j);
}

static void register_hashed(int ok, const char *hash, void *ud)
{
    register_job_t *j = ud;
    if (!ok) {
        node_req_fail(j->job.req, PROTO_INTERNAL, "password hashing failed");
        register_job_free(j);
        return;
    }
    core_copy_trunc(j->hash, sizeof j->hash, hash);
    node_job_submit(j->job.req->sess->node, &j->job, register_work, register_done);
}

static void taken_work(store_t *st, void *arg)
{
    register_job_t *j = arg;
    store_user_t u;
    j->job.rc = store_user_get(st, j->user, &u);
}

/* A taken name is refused before the (deliberately slow) hashing; the store
 * still refuses a name taken in between. */
static void taken_done(void *arg)
{
    register_job_t *j = arg;
    node_req_t *r = j->job.req;
    if (j->job.rc == STORE_OK) {
        node_req_fail(r, PROTO_CONFLICT, "user already exists");
    } else if (j->job.rc != STORE_NOTFOUND) {
        node_req_fail(r, PROTO_UNAVAILABLE, "store unavailable, retry");
    } else {
        node_auth_hash(j->job.node->auth, j->password, register_hashed, j);
        sodium_memzero(j->password, sizeof j->password);
        return;
    }
    register_job_free(j);
}

void node_act_register(node_req_t *r, const cJSON *data)
{
    proto_err_t e;
    const char *user = NULL, *password = NULL, *nickname = NULL;
    if (proto_get_name(data, "user", 1, &user, &e) || proto_get_password(data, "password", &password, &e) ||
        proto_get_string(data, "nickname", 0, 1, PROTO_NICK_MAX, &nickname, &e)) {
        node_req_fail_e(r, &e);
        return;
    }
    register_job_t *j = core_xcalloc(1, sizeof *j);
    j->job.req = r;
    core_copy_trunc(j->user, sizeof j->user, user);
    core_copy_trunc(j->nickname, sizeof j->nickname, nickname ? nickname : user);
    core_copy_trunc(j->password, sizeof j->password, password);
    node_job_submit_read(r->sess->node, &j->job, taken_work, taken_done);
}

/* ------------------------------------------------------------------ login */

typedef struct login_job {
    node_job_t job;
    char user[PROTO_NAME_MAX + 1];
    char password[PROTO_PASSWORD_MAX + 1];
    char token_digest[65];      /* token login: digest of the presented token */
    int by_token;
    uint64_t fresh_at_ms;       /* token login: now + half the token lifetime */
    int token_fresh;            /* it is valid then too: answered again, nothing written */
    store_user_t rec;
    /* second step: new token and pending items */
    char token[PROTO_TOKEN_LEN + 1];
    char new_digest[65];
    uint64_t expires;
    size_t pending_max;
    store_pendings_t pending;
    core_buf_t parked;          /* offline frames of pushes not stored yet */
    size_t parked_count;
    store_names_t friends;      /* read in a resume's one store trip */
    int friends_read;
} login_job_t;

static void login_job_free(login_job_t *j)
{
    store_pendings_free(&j->pending);
    store_names_free(&j->friends);
    core_buf_free(&j->parked);
    memset(j->password, 0, sizeof j->password);
    memset(j->token, 0, sizeof j->token);
    free(j);
}

static void lookup_work(store_t *st, void *arg)
{
    login_job_t *j = arg;
    j->job.rc = store_user_get(st, j->user, &j->rec);
    if (j->job.rc != STORE_OK || !j->by_token)
        return;
    /* valid at half its life from now: fresh (and valid now); one query */
    j->token_fresh = j->token[0] &&
                     store_token_check(st, j->user, j->token_digest, j->fresh_at_ms) == STORE_OK;
    if (!j->token_fresh)
        j->job.rc = store_token_check(st, j->user, j->token_digest, core_now_ms());
    else /* the resume writes nothing: its pending items come in the same trip */
        j->job.rc = store_pending_list(st, j->user, j->pending_max, &j->pending);
    /* and whom to tell it is online: no second trip after the answer */
    if (j->token_fresh && j->job.rc == STORE_OK)
        j->friends_read = store_friends_list(st, j->user, &j->friends) == STORE_OK;
}

/* Items that need no ack (friend events) are dropped once read. */
static int pending_once(const store_pending_t *p)
{
    return strncmp(p->event, "friend_", 7) == 0;
}

/* An item already gone (taken by another login in between) is no error. */
static int pending_drop_once(store_t *st, const char *user, const store_pendings_t *l)
{
    int rc = STORE_OK;
    for (size_t i = 0; rc == STORE_OK && i < l->count; i++)
        if (pending_once(&l->items[i]) &&
            (rc = store_pending_drop(st, user, l->items[i].msgid)) == STORE_NOTFOUND)
            rc = STORE_OK;
    return rc;
}

/* Store thread: the user's pending items, in send order. */
static int pending_take(store_t *st, const char *user, size_t max, store_pendings_t *out)
{
    int rc = store_pending_list(st, user, max, out);
    return rc == STORE_OK ? pending_drop_once(st, user, out) : rc;
}

/* New token + pending items. */
static void session_work(store_t *st, void *arg)
{
    login_job_t *j = arg;
    j->job.rc = store_token_put(st, j->user, j->new_digest, j->expires);
    if (j->job.rc != STORE_OK)
        return;
    j->job.rc = pending_take(st, j->user, j->pending_max, &j->pending);
}

/* The token stored by the leader: the pending items are only read here
 * (pending_read_done drops the read-once ones in a write job, if any). */
static void pending_read_work(store_t *st, void *arg)
{
    login_job_t *j = arg;
    j->job.rc = store_pending_list(st, j->user, j->pending_max, &j->pending);
}

static void pending_drop_work(store_t *st, void *arg)
{
    login_job_t *j = arg;
    j->job.rc = pending_drop_once(st, j->user, &j->pending);
}

/* The global session this login replaced: a session on another live node
 * is ended through the cluster (one session per user). */
static void kick_replaced(node_t *n, const char *user, const char *old)
{
    char node_id[64] = "";
    unsigned long long conn = 0;
    if (!old)
        return;
    if (sscanf(old, "%63s %llu", node_id, &conn) == 2 && strcmp(node_id, n->cfg.id) != 0 &&
        node_cluster_is_member(n, node_id))
        node_cluster_kick(n, node_id, user, conn);
}

static cJSON *login_data(const login_job_t *j, node_t *n)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "user", j->rec.user);
    cJSON_AddStringToObject(d, "nickname", j->rec.nickname);
    cJSON_AddStringToObject(d, "node", n->cfg.id);
    cJSON_AddStringToObject(d, "token", j->token);
    cJSON_AddNumberToObject(d, "pending", (double)(j->pending.count + j->parked_count));
    return d;
}

static void on_presence_set(node_t *n, const char *user, const char *old, void *ud);

static void session_finish(login_job_t *j)
{
    node_req_t *r = j->job.req;
    node_sess_t *s = r->sess;
    node_t *n = s->node;
    if (j->job.rc != STORE_OK) {
        node_req_fail(r, PROTO_UNAVAILABLE, "store unavailable, retry");
        login_job_free(j);
        return;
    }
    if (!s->ws || s->logged_in) {
        node_req_fail(r, PROTO_CONFLICT, "session ended or already logged in");
        login_job_free(j);
        return;
    }
    node_route_kick(n, j->user, s);
    node_sess_bind(s, j->rec.user);
    if (node_rooms_join(n, "world", s) == 0)
        node_cluster_room_join(n, "world", s->user, NULL, NULL);
    for (size_t i = 0; i < j->pending.count; i++) {
        size_t len = 0;
        char *f = node_offline_frame(j->pending.items[i].event, j->pending.items[i].data, &len);
        node_req_follow(r, f, len);
        free(f);
    }
    if (j->parked.len)
        node_req_follow(r, j->parked.data, j->parked.len);
    s->parked_sent = j->parked_count > 0;
    node_presence_login(n, s, on_presence_set, j);
}

/* The login answers once the global session is in Redis: a message sent to
 * the user right after the answer, from any node, finds it online. */
static void on_presence_set(node_t *n, const char *user, const char *old, void *ud)
{
    login_job_t *j = ud;
    kick_replaced(n, user, old);
    n->metrics.logins_total++;
    int live = node_sess_live(j->job.req->sess); /* not closed while Redis answered */
    node_req_ok(j->job.req, login_data(j, n));
    if (live && j->friends_read)
        node_presence_tell_friends(n, j->rec.user, 1, &j->friends);
    else if (live)
        node_presence_notify_friends(n, j->rec.user, 1);
    login_job_free(j);
}

static int pending_has(const login_job_t *j, const char *msgid)
{
    for (size_t i = 0; i < j->pending.count; i++)
        if (strcmp(j->pending.items[i].msgid, msgid) == 0)
            return 1;
    return 0;
}

/* Pushes accepted by a gateway but not yet stored by the node popping them
 * (chat:upush:<user>) count as pending too; the store has the others. */
static void on_parked(core_redis_t *rc, struct redisReply *reply, void *ud)
{
    (void)rc;
    login_job_t *j = ud;
    for (size_t i = 0; reply && reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
        cJSON *p = cJSON_ParseWithLength(reply->element[i]->str, reply->element[i]->len);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(p, "msgid");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(p, "message");
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(p, "ts");
        if (cJSON_IsString(id) && cJSON_IsString(msg) && cJSON_IsNumber(ts) &&
            !pending_has(j, id->valuestring)) {
            char *data = node_json_take(
                proto_ev_system(id->valuestring, msg->valuestring, (uint64_t)ts->valuedouble));
            size_t len = 0;
            char *f = node_offline_frame("system", data, &len);
            core_buf_append(&j->parked, f, len);
            j->parked_count++;
            free(f);
            free(data);
        }
        cJSON_Delete(p);
    }
    session_finish(j);
}

static void session_done(void *arg)
{
    login_job_t *j = arg;
    node_t *n = j->job.node;
    if (j->job.rc != STORE_OK ||
        core_redis_cmd(n->redis, on_parked, j, "LRANGE chat:upush:%s 0 -1", j->user) != 0)
        session_finish(j);
}

static void pending_read_done(void *arg)
{
    login_job_t *j = arg;
    for (size_t i = 0; j->job.rc == STORE_OK && i < j->pending.count; i++)
        if (pending_once(&j->pending.items[i])) {
            node_job_submit(j->job.node, &j->job, pending_drop_work, session_done);
            return;
        }
    session_done(j);
}

/* The leader stored the token (one writer): the pending items are a read. */
static void token_stored(node_t *n, int code, const cJSON *data, void *ud)
{
    (void)data;
    login_job_t *j = ud;
    if (code != 0) {
        j->job.rc = STORE_ERR;
        session_finish(j);
        return;
    }
    node_job_submit_read(n, &j->job, pending_read_work, pending_read_done);
}

/* A follower on a one-writer store hands the token write to the leader, as
 * it does chat writes: a login storm over many nodes then has one process
 * writing tokens in big batches instead of every node queueing on the lock. */
static void token_put_at_leader(node_t *n, login_job_t *j)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "op", "s.token");
    cJSON_AddStringToObject(m, "user", j->user);
    cJSON_AddStringToObject(m, "digest", j->new_digest);
    cJSON_AddNumberToObject(m, "expires", (double)j->expires);
    node_cluster_store_call(n, m, token_stored, j);
}

static void login_accept(login_job_t *j)
{
    node_t *n = j->job.req->sess->node;
    if (!j->by_token)
        node_guard_login_ok(n, j->user);
    /* A resume with a token that has more than half its life left gets the
     * same token back: a reconnect storm writes nothing and the tokens
     * table does not grow per reconnect; an older one is replaced. */
    if (!j->token_fresh)
        node_auth_token_new(j->token, j->new_digest);
    j->expires = core_now_ms() + (uint64_t)(n->cfg.token_ttl * 1000.0);
    if (j->token_fresh) /* a reconnect storm takes no write lock; already read */
        pending_read_done(j);
    else if (node_cluster_store_at_leader(n))
        token_put_at_leader(n, j);
    else
        node_job_submit(n, &j->job, session_work, session_done);
}

static void reject_counted(node_t *n, uint64_t retry_ms, void *ud)
{
    (void)n;
    (void)retry_ms;
    login_job_t *j = ud;
    node_req_fail(j->job.req, PROTO_UNAUTHORIZED, BAD_CREDENTIALS);
    login_job_free(j);
}

static void login_reject(login_job_t *j, int code, const char *text)
{
    node_sess_t *s = j->job.req->sess;
    s->node->metrics.login_failures_total++;
    if (code == PROTO_UNAUTHORIZED && !j->by_token) { /* tokens are 256-bit: not guessable */
        /* answered once counted: the client's next try, on any node, sees it */
        node_guard_login_failed(s->node, s, j->user, reject_counted, j);
        return;
    }
    node_req_fail(j->job.req, code, text);
    login_job_free(j);
}

static void login_verified(int ok, const char *hash, void *ud)
{
    (void)hash;
    login_job_t *j = ud;
    if (ok)
        login_accept(j);
    else
        login_reject(j, PROTO_UNAUTHORIZED, BAD_CREDENTIALS);
}

static void lookup_done(void *arg)
{
    login_job_t *j = arg;
    if (j->job.rc == STORE_NOTFOUND)
        login_reject(j, PROTO_UNAUTHORIZED, BAD_CREDENTIALS);
    else if (j->job.rc != STORE_OK)
        login_reject(j, PROTO_UNAVAILABLE, "store unavailable, retry");
    else if (j->by_token)
        login_accept(j);
    else
        node_auth_verify(j->job.req->sess->node->auth, j->password, j->rec.pwhash, login_verified, j);
}

static void login_checked(node_t *n, uint64_t retry_ms, void *ud)
{
    login_job_t *j = ud;
    if (!retry_ms) {
        node_job_submit_read(n, &j->job, lookup_work, lookup_done);
        return;
    }
    char text[96];
    uint64_t sec = (retry_ms + 999) / 1000;
    snprintf(text, sizeof text, "too many failed logins; retry in %llu s", (unsigned long long)sec);
    cJSON *data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "retry_ms", (double)retry_ms);
    n->metrics.login_throttled_total++;
    node_req_fail_data(j->job.req, PROTO_RATE_LIMITED, text, data);
    login_job_free(j);
}

void node_act_login(node_req_t *r, const cJSON *data)
{
    proto_err_t e;
    const char *user = NULL, *password = NULL, *token = NULL;
    if (r->sess->logged_in) {
        node_req_fail(r, PROTO_CONFLICT, "already logged in on this connection");
        return;
    }
    if (proto_get_name(data, "user", 1, &user, &e) ||
        proto_get_string(data, "token", 0, 1, 256, &token, &e)) {
        node_req_fail_e(r, &e);
        return;
    }
    if (!token && proto_get_password(data, "password", &password, &e)) {
        node_req_fail_e(r, &e);
        return;
    }
    login_job_t *j = core_xcalloc(1, sizeof *j);
    j->job.req = r;
    core_copy_trunc(j->user, sizeof j->user, user);
    j->pending_max = r->sess->node->cfg.pending_max;
    if (token) {
        j->by_token = 1;
        node_auth_token_digest(token, j->token_digest);
        j->fresh_at_ms = core_now_ms() + (uint64_t)(r->sess->node->cfg.token_ttl * 500.0);
        if (strlen(token) == PROTO_TOKEN_LEN) /* the only length we hand out */
            memcpy(j->token, token, PROTO_TOKEN_LEN + 1);
        node_job_submit_read(r->sess->node, &j->job, lookup_work, lookup_done);
        return;
    }
    core_copy_trunc(j->password, sizeof j->password, password);
    /* before any hashing: a guesser costs a Redis read, not an argon2id run */
    node_guard_login_check(r->sess->node, r->sess, user, login_checked, j);
}

/* ------------------------------------------------------------------ a follower's token, at the leader */

typedef struct token_job {
    node_job_t job;
    char user[PROTO_NAME_MAX + 1];
    char digest[65];
    uint64_t expires;
    char origin[64];  /* the follower that handed it over */
    uint64_t call_id;
} token_job_t;

static void token_work(store_t *st, void *arg)
{
    token_job_t *j = arg;
    j->job.rc = store_token_put(st, j->user, j->digest, j->expires);
}

static void token_done(void *arg)
{
    token_job_t *j = arg;
    node_cluster_store_reply(j->job.node, j->origin, j->call_id,
                             j->job.rc == STORE_OK ? 0 : PROTO_UNAVAILABLE, NULL);
    free(j);
}

int node_account_serve(node_t *n, const char *origin, uint64_t id, const cJSON *m)
{
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(m, "op");
    if (!cJSON_IsString(op) || strcmp(op->valuestring, "s.token") != 0)
        return -1;
    proto_err_t e;
    const char *user = NULL, *digest = NULL;
    const cJSON *expires = cJSON_GetObjectItemCaseSensitive(m, "expires");
    if (proto_get_name(m, "user", 1, &user, &e) ||
        proto_get_string(m, "digest", 1, 64, 64, &digest, &e) || !cJSON_IsNumber(expires) ||
        expires->valuedouble <= 0) { /* answered now: the follower's client is not left waiting */
        node_cluster_store_reply(n, origin, id, PROTO_BAD_REQUEST, NULL);
        return 0;
    }
    token_job_t *j = core_xcalloc(1, sizeof *j);
    core_copy_trunc(j->user, sizeof j->user, user);
    core_copy_trunc(j->digest, sizeof j->digest, digest);
    j->expires = (uint64_t)expires->valuedouble;
    core_copy_trunc(j->origin, sizeof j->origin, origin);
    j->call_id = id;
    node_job_submit(n, &j->job, token_work, token_done);
    return 0;
}

/* ------------------------------------------------------------------ pending, again */

typedef struct redeliver_job {
    node_job_t job;
    node_sess_t *sess;          /* holds a ref */
    uint64_t conn_id;
    char user[PROTO_NAME_MAX + 1];
    size_t max;
    store_pendings_t pending;
} redeliver_job_t;

static void redeliver_work(store_t *st, void *arg)
{
    redeliver_job_t *j = arg;
    j->job.rc = pending_take(st, j->user, j->max, &j->pending);
}

static void redeliver_done(void *arg)
{
    redeliver_job_t *j = arg;
    node_sess_t *s = j->sess;
    if (j->job.rc == STORE_OK && node_sess_live(s) && s->conn_id == j->conn_id) {
        for (size_t i = 0; i < j->pending.count; i++) {
            size_t len = 0;
            char *f = node_offline_frame(j->pending.items[i].event, j->pending.items[i].data, &len);
            node_sess_send(s, f, len);
            free(f);
        }
    }
    store_pendings_free(&j->pending);
    node_sess_unref(s);
    free(j);
}

void node_account_redeliver_pending(node_sess_t *s)
{
    redeliver_job_t *j = core_xcalloc(1, sizeof *j);
    j->sess = node_sess_ref(s);
    j->conn_id = s->conn_id;
    core_copy_trunc(j->user, sizeof j->user, s->user);
    j->max = s->node->cfg.pending_max;
    node_job_submit(s->node, &j->job, redeliver_work, redeliver_done);
}

/* ------------------------------------------------------------------ logout and session end */

void node_account_session_end(node_sess_t *s)
{
    node_t *n = s->node;
    node_rooms_leave_all(n, s);
    node_presence_logout(n, s);
}

void node_act_logout(node_req_t *r, const cJSON *data)
{
    (void)data;
    node_sess_t *s = r->sess;
    node_account_session_end(s);
    s->kicked = 1; /* the session is over: the close must not end it twice */
    s->closing = 1;
    node_req_ok(r, NULL);
}

/* ------------------------------------------------------------------ user_info, ping */

typedef struct info_job {
    node_job_t job;
    char user[PROTO_NAME_MAX + 1];
    store_user_t rec;
} info_job_t;

static void info_work(store_t *st, void *arg)
{
    info_job_t *j = arg;
    j->job.rc = store_user_get(st, j->user, &j->rec);
}

static void info_online(node_t *n, const int *online, size_t count, void *ud)
{
    (void)n;
    (void)count;
    info_job_t *j = ud;
    if (!online) {
        node_req_fail(j->job.req, PROTO_UNAVAILABLE, "session registry unavailable, retry");
    } else {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "user", j->rec.user);
        cJSON_AddStringToObject(d, "nickname", j->rec.nickname);
        cJSON_AddBoolToObject(d, "online", online[0]);
        node_req_ok(j->job.req, d);
    }
    free(j);
}

static void info_done(void *arg)
{
    info_job_t *j = arg;
    if (j->job.rc != STORE_OK) {
        node_req_fail(j->job.req, j->job.rc == STORE_NOTFOUND ? PROTO_NOT_FOUND : PROTO_UNAVAILABLE,
                      j->job.rc == STORE_NOTFOUND ? "user not found" : "store unavailable, retry");
        free(j);
        return;
    }
    const char *users[1] = {j->rec.user};
    node_presence_online(j->job.node, users, 1, info_online, j);
}

void node_act_user_info(node_req_t *r, const cJSON *data)
{
    proto_err_t e;
    const char *user = NULL;
    if (proto_get_name(data, "user", 1, &user, &e)) {
        node_req_fail_e(r, &e);
        return;
    }
    info_job_t *j = core_xcalloc(1, sizeof *j);
    j->job.req = r;
    core_copy_trunc(j->user, sizeof j->user, user);
    node_job_submit_read(r->sess->node, &j->job, info_work, info_done);
}

void node_act_ping(node_req_t *r, const cJSON *data)
{
    (void)data;
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "ts", (double)core_now_ms());
    node_req_ok(r, d);
}
