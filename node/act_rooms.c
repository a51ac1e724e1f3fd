/* Rooms (persistent names, live membership, history in Redis) and hot words. */
#include <string.h>
#include <hiredis/hiredis.h>

#include "node/node.h"

#define ROOM_HISTORY 50
#define HOT_KEY "chat:hot"

/* ------------------------------------------------------------------ room existence */

/* Rooms persist once created: a cache hit is final; a miss asks the store. */
typedef void (*room_cont_fn)(node_req_t *r, const char *room, const cJSON *data);

typedef struct room_job {
    node_job_t job;
    char room[PROTO_NAME_MAX + 1];
    char title[PROTO_TITLE_MAX + 1];
    char user[PROTO_NAME_MAX + 1];
    room_cont_fn cont;
    cJSON *data;       /* a copy of the request data for the continuation */
    store_rooms_t rooms;
} room_job_t;

static void room_job_free(room_job_t *j)
{
    cJSON_Delete(j->data);
    store_rooms_free(&j->rooms);
    free(j);
}

static void exists_work(store_t *st, void *arg)
{
    room_job_t *j = arg;
    store_room_t rec;
    j->job.rc = store_room_get(st, j->room, &rec);
}

static void exists_done(void *arg)
{
    room_job_t *j = arg;
    if (j->job.rc == STORE_OK) {
        node_rooms_remember(j->job.node, j->room);
        j->cont(j->job.req, j->room, j->data);
    } else if (j->job.rc == STORE_NOTFOUND) {
        node_req_fail(j->job.req, PROTO_NOT_FOUND, "room not found");
    } else {
        node_req_fail(j->job.req, PROTO_UNAVAILABLE, "store unavailable, retry");
    }
    room_job_free(j);
}

/* Reads data.room and runs cont once the room is known to exist. */
static void with_room(node_req_t *r, const cJSON *data, room_cont_fn cont)
{
    proto_err_t e;
    const char *room = NULL;
    if (proto_get_name(data, "room", 1, &room, &e)) {
        node_req_fail_e(r, &e);
        return;
    }
    node_t *n = r->sess->node;
    if (node_rooms_known(n, room)) {
        cont(r, room, data);
        return;
    }
    room_job_t *j = core_xcalloc(1, sizeof *j);
    j->job.req = r;
    core_copy_trunc(j->room, sizeof j->room, room);
    j->cont = cont;
    j->data = cJSON_Duplicate(data, 1);
    node_job_submit_read(n, &j->job, exists_work, exists_done);
}

/* ------------------------------------------------------------------ create */

static void create_work(store_t *st, void *arg)
{
    room_job_t *j = arg;
    j->job.rc = store_room_create(st, j->room, j->title, j->user, core_now_ms());
}

static void create_done(void *arg)
{
    room_job_t *j = arg;
    node_req_t *r = j->job.req;
    if (j->job.rc == STORE_EXISTS) {
        node_req_fail(r, PROTO_CONFLICT, "room already exists");
    } else if (j->job.rc != STORE_OK) {
        node_req_fail(r, PROTO_UNAVAILABLE, "store unavailable, retry");
    } else {
        node_rooms_remember(j->job.node, j->room);
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "room", j->room);
        cJSON_AddStringToObject(d, "title", j->title);
        node_req_ok(r, d);
    }
    room_job_free(j);
}

void node_act_room_create(node_req_t *r, const cJSON *data)
{
    proto_err_t e;
    const char *room = NULL, *title = NULL;
    if (proto_get_name(data, "room", 1, &room, &e) ||
        proto_get_string(data, "title", 0, 0, PROTO_TITLE_MAX, &title, &e)) {
        node_req_fail_e(r, &e);
        return;
    }
    room_job_t *j = core_xcalloc(1, sizeof *j);
    j->job.req = r;
    core_copy_trunc(j->room, sizeof j->room, room);
    core_copy_trunc(j->title, sizeof j->title, title ? title : room);
    core_copy_trunc(j->user, sizeof j->user, r->sess->user);
    node_job_submit(r->sess->node, &j->job, create_work, create_done);
}

/* ------------------------------------------------------------------ join, leave, members */

typedef struct join_ctx {
    node_req_t *req;
    char room[PROTO_NAME_MAX + 1];
} join_ctx_t;

/* The leader counted the member in: answer with the cluster-wide count. */
static void joined(node_t *n, int code, const cJSON *data, void *ud)
{
    join_ctx_t *c = ud;
    node_req_t *r = c->req;
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(data, "members");
    if (!node_sess_live(r->sess)) {
        node_req_fail(r, PROTO_UNAVAILABLE, "session ended");
    } else if (code != 0 && code != PROTO_CONFLICT) {
        /* no answer: undo here and tell the leader, which may still apply the join late */
        node_rooms_leave(n, c->room, r->sess);
        node_req_fail(r, PROTO_UNAVAILABLE, "cluster leader unavailable, retry");
    } else {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "room", c->room);
        cJSON_AddNumberToObject(d, "members", cJSON_IsNumber(members) ? members->valuedouble : 1);
        node_req_ok(r, d);
    }
    free(c);
}

static void join_cont(node_req_t *r, const char *room, const cJSON *data)
{
    (void)data;
    node_t *n = r->sess->node;
    int rc = node_rooms_join(n, room, r->sess);
    if (rc != 0) {
        node_req_fail(r, rc, rc == PROTO_CONFLICT ? "already in this room" : "session ended");
        return;
    }
    join_ctx_t *c = core_xcalloc(1, sizeof *c);
    c->req = r;
    core_copy_trunc(c->room, sizeof c->room, room);
    node_cluster_room_join(n, room, r->sess->user, joined, c);
}

void node_act_room_join(node_req_t *r, const cJSON *data)
{
    with_room(r, data, join_cont);
}

static void leave_cont(node_req_t *r, const char *room, const cJSON *data)
{
    (void)data;
    if (node_rooms_leave(r->sess->node, room, r->sess) != 0)
        node_req_fail(r, PROTO_NOT_FOUND, "not in this room");
    else
        node_req_ok(r, NULL);
}

void node_act_room_leave(node_req_t *r, const cJSON *data)
{
    with_room(r, data, leave_cont);
}

static void members_answer(node_t *n, int code, const cJSON *data, void *ud)
{
    (void)n;
    node_req_t *r = ud;
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(data, "members");
    if (code != 0 || !cJSON_IsArray(members)) {
        node_req_fail(r, PROTO_UNAVAILABLE, "cluster leader unavailable, retry");
        return;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddItemToObject(d, "members", cJSON_Duplicate(members, 1));
    node_req_ok(r, d);
}

static void members_cont(node_req_t *r, const char *room, const cJSON *data)
{
    (void)data;
    node_cluster_room_members(r->sess->node, room, members_answer, r);
}

void node_act_room_members(node_req_t *r, const cJSON *data)
{
    with_room(r, data, members_cont);
}

/* ------------------------------------------------------------------ rooms */

static void rooms_work(store_t *st, void *arg)
{
    room_job_t *j = arg;
    j->job.rc = store_rooms_list(st, &j->rooms);
}

/* The rooms from the store, with live counts from the leader. */
static void rooms_counted(node_t *n, int code, const cJSON *data, void *ud)
{
    room_job_t *j = ud;
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(data, "counts");
    if (code != 0 || cJSON_GetArraySize(counts) != (int)j->rooms.count) {
        node_req_fail(j->job.req, PROTO_UNAVAILABLE, "cluster leader unavailable, retry");
        room_job_free(j);
        return;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(d, "rooms");
    const cJSON *c = counts->child;
    for (size_t i = 0; i < j->rooms.count; i++, c = c->next) {
        const store_room_t *rm = &j->rooms.items[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "room", rm->room);
        cJSON_AddStringToObject(o, "title", rm->title);
        cJSON_AddNumberToObject(o, "members", cJSON_IsNumber(c) ? c->valuedouble : 0);
        cJSON_AddItemToArray(arr, o);
        node_rooms_remember(n, rm->room);
    }
    node_req_ok(j->job.req, d);
    room_job_free(j);
}

static void rooms_done(void *arg)
{
    room_job_t *j = arg;
    if (j->job.rc != STORE_OK) {
        node_req_fail(j->job.req, PROTO_UNAVAILABLE, "store unavailable, retry");
        room_job_free(j);
        return;
    }
    const char **names = core_xcalloc(j->rooms.count + 1, sizeof *names);
    for (size_t i = 0; i < j->rooms.count; i++)
        names[i] = j->rooms.items[i].room;
    node_cluster_room_counts(j->job.node, names, j->rooms.count, rooms_counted, j);
    free(names);
}

void node_act_rooms(node_req_t *r, const cJSON *data)
{
    (void)data;
    room_job_t *j = core_xcalloc(1, sizeof *j);
    j->job.req = r;
    node_job_submit_read(r->sess->node, &j->job, rooms_work, rooms_done);
}

/* ------------------------------------------------------------------ room_chat */

static void count_word(const char *word, size_t len, void *ud)
{
    node_t *n = ud;
    core_redis_cmd(n->redis, NULL, NULL, "ZINCRBY " HOT_KEY " 1 %b", word, len);
}

/* Lua: append a room message to the history only when its msgid sorts
 * after the newest one there (ARGV: msgid, event JSON, history length);
 * else return that newest msgid so the sender takes a larger one. Redis
 * runs one script at a time: the history order is the msgid order, and a
 * message sent after another's answer, from any node, sorts after it. */
static const char *const ROOM_APPEND =
    "local top = redis.call('lindex', KEYS[1], 0) "
    "if top then local ok, m = pcall(cjson.decode, top) "
    "if ok and type(m) == 'table' and type(m.msgid) == 'string' and m.msgid >= ARGV[1] then "
    "return m.msgid end end "
    "redis.call('lpush', KEYS[1], ARGV[2]) "
    "redis.call('ltrim', KEYS[1], 0, tonumber(ARGV[3]) - 1) "
    "return 1";

/* Same-ms races with other nodes settle within a few tries. */
#define ROOM_APPEND_TRIES 8

typedef struct room_send {
    node_req_t *req;
    char room[PROTO_NAME_MAX + 1];
    char from[PROTO_NAME_MAX + 1];
    char format[PROTO_FORMAT_MAX + 1];
    char msgid[PROTO_MSGID_LEN + 1];
    uint64_t ts;
    char *text; /* masked */
    int tries;
} room_send_t;

static void room_append(node_t *n, room_send_t *rs);

/* Answers the sender and fans the message out under its final msgid. */
static void room_send_finish(node_t *n, room_send_t *rs)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "msgid", rs->msgid);
    cJSON_AddNumberToObject(d, "ts", (double)rs->ts);
    node_req_ok(rs->req, d);
    if (!n->http) { /* shutting down: Redis is handing back what it held */
        free(rs->text);
        free(rs);
        return;
    }
    n->metrics.messages_total++;
    size_t len = 0;
    char *frame = node_event_frame(
        "room_chat", proto_ev_room_chat(rs->msgid, rs->room, rs->from, rs->ts, rs->text, rs->format),
        &len);
    node_route_room(n, rs->room, rs->from, frame, len);
    free(frame);
    free(rs->text);
    free(rs);
}

static void on_room_appended(core_redis_t *rc, struct redisReply *reply, void *ud)
{
    (void)rc;
    room_send_t *rs = ud;
    node_t *n = rs->req->sess->node;
    if (reply && reply->type == REDIS_REPLY_STRING && rs->tries < ROOM_APPEND_TRIES) {
        proto_msgid_next_after(&n->msgids, core_now_ms(), reply->str, rs->msgid);
        room_append(n, rs);
        return;
    }
    if (!reply || reply->type != REDIS_REPLY_INTEGER) /* delivered live all the same */
        CORE_WARN("room message %s is missing from the room history (Redis)", rs->msgid);
    room_send_finish(n, rs);
}

static void room_append(node_t *n, room_send_t *rs)
{
    char key[PROTO_NAME_MAX + 32], history[8];
    char *json = node_json_take(
        proto_ev_room_chat(rs->msgid, rs->room, rs->from, rs->ts, rs->text, rs->format));
    snprintf(key, sizeof key, "chat:room:%s:hist", rs->room);
    snprintf(history, sizeof history, "%d", ROOM_HISTORY);
    const char *argv[] = {"EVAL", ROOM_APPEND, "1", key, rs->msgid, json, history};
    rs->tries++;
    int rc = core_redis_cmdargv(n->redis, on_room_appended, rs, 7, argv, NULL);
    free(json);
    if (rc != 0)
        on_room_appended(NULL, NULL, rs);
}

static void chat_cont(node_req_t *r, const char *room, const cJSON *data)
{
    proto_err_t e;
    const char *message = NULL, *format = "text";
    node_sess_t *s = r->sess;
    node_t *n = s->node;
    if (proto_get_text(data, "message", &message, &e) || proto_get_format(data, &format, &e)) {
        node_req_fail_e(r, &e);
        return;
    }
    if (!node_rooms_is_member(n, room, s)) {
        node_req_fail(r, PROTO_FORBIDDEN, "join the room first");
        return;
    }
    room_send_t *rs = core_xcalloc(1, sizeof *rs);
    rs->req = r;
    core_copy_trunc(rs->room, sizeof rs->room, room);
    core_copy_trunc(rs->from, sizeof rs->from, s->user);
    core_copy_trunc(rs->format, sizeof rs->format, format);
    rs->ts = core_now_ms();
    proto_msgid_next(&n->msgids, rs->ts, rs->msgid);
    rs->text = node_filter_mask(n->filter, message);
    /* counted first: Redis answers a connection in order, so once the
     * append is confirmed the words are counted too */
    node_filter_words(rs->text, count_word, n);
    room_append(n, rs);
}

void node_act_room_chat(node_req_t *r, const cJSON *data)
{
    with_room(r, data, chat_cont);
}

/* ------------------------------------------------------------------ history {room} */

typedef struct rhist {
    node_req_t *req;
    char before[PROTO_MSGID_LEN + 1];
    int limit;
} rhist_t;

/* Redis holds newest first; answer the newest `limit` older than before, oldest first. */
static void on_room_history(core_redis_t *rc, struct redisReply *reply, void *ud)
{
    (void)rc;
    rhist_t *h = ud;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        node_req_fail(h->req, PROTO_UNAVAILABLE, "history unavailable, retry");
        free(h);
        return;
    }
    cJSON *picked[ROOM_HISTORY];
    int k = 0;
    for (size_t i = 0; i < reply->elements && k < h->limit && k < ROOM_HISTORY; i++) {
        cJSON *m = cJSON_Parse(reply->element[i]->str);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "msgid");
        if (!cJSON_IsString(id) || (h->before[0] && strcmp(id->valuestring, h->before) >= 0)) {
            cJSON_Delete(m);
            continue;
        }
        picked[k++] = m;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(d, "messages");
    while (k > 0)
        cJSON_AddItemToArray(arr, picked[--k]);
    node_req_ok(h->req, d);
    free(h);
}

static void room_history_cont(node_req_t *r, const char *room, const cJSON *data)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(data, "before");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(data, "limit");
    rhist_t *h = core_xcalloc(1, sizeof *h);
    h->req = r;
    core_copy_trunc(h->before, sizeof h->before, cJSON_IsString(b) ? b->valuestring : "");
    h->limit = cJSON_IsNumber(l) ? l->valueint : 20;
    if (core_redis_cmd(r->sess->node->redis, on_room_history, h, "LRANGE chat:room:%s:hist 0 %d",
                       room, ROOM_HISTORY - 1) != 0)
        on_room_history(NULL, NULL, h);
}

void node_act_room_history(node_req_t *r, const char *room, const char *before, int limit)
{
    /* the fields were validated by the caller; pass them on in a small object */
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "room", room);
    if (before)
        cJSON_AddStringToObject(data, "before", before);
    cJSON_AddNumberToObject(data, "limit", limit);
    with_room(r, data, room_history_cont);
    cJSON_Delete(data);
}

/* ------------------------------------------------------------------ popular */

static void on_popular(core_redis_t *rc, struct redisReply *reply, void *ud)
{
    (void)rc;
    node_req_t *r = ud;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        node_req_fail(r, PROTO_UNAVAILABLE, "hot words unavailable, retry");
        return;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(d, "words");
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        cJSON *w = cJSON_CreateObject();
        cJSON_AddStringToObject(w, "word", reply->element[i]->str);
        cJSON_AddNumberToObject(w, "count", (double)strtoll(reply->element[i + 1]->str, NULL, 10));
        cJSON_AddItemToArray(arr, w);
    }
    node_req_ok(r, d);
}

void node_act_popular(node_req_t *r, const cJSON *data)
{
    proto_err_t e;
    long limit = 10;
    if (proto_get_int(data, "limit", 0, 1, 50, &limit, &e)) {
        node_req_fail_e(r, &e);
        return;
    }
    if (core_redis_cmd(r->sess->node->redis, on_popular, r, "ZREVRANGE " HOT_KEY " 0 %ld WITHSCORES",
                       limit - 1) != 0)
        on_popular(NULL, NULL, r);
}
