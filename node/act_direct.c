/* Direct messages: chat, ack, history. */
#include <string.h>
#include <hiredis/hiredis.h>

#include "node/node.h"

#define CID_WINDOW_MS (24ull * 3600 * 1000)
#define ACK_MAX 1000

/* ------------------------------------------------------------------ chat */

typedef struct chat_job {
    node_job_t job;
    char from[PROTO_NAME_MAX + 1];
    char to[PROTO_NAME_MAX + 1];
    char msgid[PROTO_MSGID_LEN + 1]; /* assigned on the store thread */
    char cid[PROTO_CID_MAX + 1];
    char format[PROTO_FORMAT_MAX + 1];
    uint64_t ts;
    char *message;  /* masked */
    char *event;    /* the event data as JSON (pending item) */
    int duplicate;  /* cid seen: msgid is the first one's */
    char origin[64];  /* job.req NULL: the follower that handed it over */
    uint64_t call_id; /* and its call id */
} chat_job_t;

static void chat_job_free(chat_job_t *j)
{
    free(j->message);
    free(j->event);
    free(j);
}

static int chat_store(store_t *st, chat_job_t *j)
{
    int rc = store_user_exists(st, j->to);
    if (rc != STORE_OK)
        return rc;
    if (j->cid[0]) {
        char first[STORE_MSGID_MAX];
        rc = store_cid_get(st, j->from, j->cid, j->ts - CID_WINDOW_MS, first);
        if (rc == STORE_OK) {
            core_copy_trunc(j->msgid, sizeof j->msgid, first);
            j->duplicate = 1;
            return STORE_OK;
        }
        if (rc != STORE_NOTFOUND)
            return rc;
    }
    char conv[STORE_CONV_MAX];
    store_conv_direct(j->from, j->to, conv);
    if ((rc = node_job_conv_msgid(j->job.node, st, conv, j->ts, j->msgid)) != STORE_OK)
        return rc;
    j->event = node_json_take(
        proto_ev_chat(j->msgid, j->from, j->to, j->ts, j->message, j->format));
    store_msg_t m = {.kind = 'c', .ts = j->ts, .message = j->message};
    core_copy_trunc(m.msgid, sizeof m.msgid, j->msgid);
    core_copy_trunc(m.from, sizeof m.from, j->from);
    core_copy_trunc(m.to, sizeof m.to, j->to);
    core_copy_trunc(m.format, sizeof m.format, j->format);
    if ((rc = store_msg_put(st, &m, conv)) != STORE_OK)
        return rc;
    if ((rc = store_pending_add(st, j->to, j->msgid, "chat", j->event, j->ts)) != STORE_OK)
        return rc;
    return j->cid[0] ? store_cid_put(st, j->from, j->cid, j->msgid, j->ts) : STORE_OK;
}

static void chat_work(store_t *st, void *arg)
{
    chat_job_t *j = arg;
    j->job.rc = chat_store(st, j);
}

static cJSON *chat_data(const chat_job_t *j, int online)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "msgid", j->msgid);
    cJSON_AddNumberToObject(d, "ts", (double)j->ts);
    cJSON_AddBoolToObject(d, "online", online);
    return d;
}

static const char *store_fail_text(int code)
{
    return code == PROTO_NOT_FOUND ? "user not found" : "store unavailable, retry";
}

/* Answers the client, or the follower that handed the chat over; frees j. */
static void chat_answer(chat_job_t *j, int code, int online)
{
    if (j->job.req && code == 0)
        node_req_ok(j->job.req, chat_data(j, online));
    else if (j->job.req)
        node_req_fail(j->job.req, code, store_fail_text(code));
    else
        node_cluster_store_reply(j->job.node, j->origin, j->call_id, code,
                                 code == 0 ? chat_data(j, online) : NULL);
    chat_job_free(j);
}

static void chat_delivered(node_t *n, int delivered, void *ud)
{
    (void)n;
    chat_answer(ud, 0, delivered);
}

static void chat_dup_online(node_t *n, const int *online, size_t count, void *ud)
{
    (void)n;
    (void)count;
    chat_answer(ud, 0, online ? online[0] : 0);
}

static void chat_done(void *arg)
{
    chat_job_t *j = arg;
    node_t *n = j->job.node;
    if (j->job.rc != STORE_OK) {
        chat_answer(j, j->job.rc == STORE_NOTFOUND ? PROTO_NOT_FOUND : PROTO_UNAVAILABLE, 0);
        return;
    }
    if (j->duplicate) {
        const char *users[1] = {j->to};
        node_presence_online(n, users, 1, chat_dup_online, j);
        return;
    }
    n->metrics.messages_total++;
    size_t len = 0;
    char *frame = proto_event_text("chat", j->event, &len); /* printed on the store thread */
    node_route_user(n, j->to, frame, len, chat_delivered, j);
    free(frame);
}

/* A follower's answer from the leader, for its client. */
static void remote_answered(node_t *n, int code, const cJSON *data, void *ud)
{
    (void)n;
    node_req_t *r = ud;
    if (code == 0)
        node_req_ok(r, cJSON_IsObject(data) ? cJSON_Duplicate(data, 1) : NULL);
    else
        node_req_fail(r, code == PROTO_NOT_FOUND ? code : PROTO_UNAVAILABLE, store_fail_text(code));
}

static void chat_submit(node_t *n, chat_job_t *j)
{
    if (j->job.req && node_cluster_store_at_leader(n)) { /* one writer: the leader commits it */
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "op", "s.chat");
        cJSON_AddStringToObject(m, "from", j->from);
        cJSON_AddStringToObject(m, "to", j->to);
        cJSON_AddStringToObject(m, "message", j->message);
        cJSON_AddStringToObject(m, "format", j->format);
        if (j->cid[0])
            cJSON_AddStringToObject(m, "cid", j->cid);
        cJSON_AddNumberToObject(m, "ts", (double)j->ts);
        node_cluster_store_call(n, m, remote_answered, j->job.req);
        chat_job_free(j);
        return;
    }
    node_job_submit(n, &j->job, chat_work, chat_done);
}

/* The fields of a chat (client data or a follower's s.chat) into a new job;
 * message (heap) is taken either way. */
static chat_job_t *chat_job_new(node_t *n, const cJSON *data, const char *from, char *message,
                                proto_err_t *e)
{
    const char *to = NULL, *format = "text", *cid = NULL;
    if (proto_get_name(data, "to", 1, &to, e) || proto_get_format(data, &format, e) ||
        proto_get_string(data, "cid", 0, 1, PROTO_CID_MAX, &cid, e)) {
        free(message);
        return NULL;
    }
    chat_job_t *j = core_xcalloc(1, sizeof *j);
    j->job.node = n;
    core_copy_trunc(j->from, sizeof j->from, from);
    core_copy_trunc(j->to, sizeof j->to, to);
    core_copy_trunc(j->cid, sizeof j->cid, cid ? cid : "");
    core_copy_trunc(j->format, sizeof j->format, format);
    j->message = message;
    return j;
}

void node_act_chat(node_req_t *r, const cJSON *data)
{
    proto_err_t e;
    const char *to = NULL, *message = NULL;
    if (proto_get_name(data, "to", 1, &to, &e) || proto_get_text(data, "message", &message, &e)) {
        node_req_fail_e(r, &e);
        return;
    }
    node_t *n = r->sess->node;
    chat_job_t *j = chat_job_new(n, data, r->sess->user, node_filter_mask(n->filter, message), &e);
    if (!j) {
        node_req_fail_e(r, &e);
        return;
    }
    j->job.req = r;
    j->ts = core_now_ms();
    chat_submit(n, j);
}

/* s.chat at the leader: a follower's client sent it (already masked). */
static int serve_chat(node_t *n, const char *origin, uint64_t id, const cJSON *m)
{
    proto_err_t e;
    const char *from = NULL, *message = NULL;
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(m, "ts");
    if (proto_get_name(m, "from", 1, &from, &e) || proto_get_text(m, "message", &message, &e) ||
        !cJSON_IsNumber(ts) || ts->valuedouble < 1)
        return -1;
    chat_job_t *j = chat_job_new(n, m, from, core_xstrdup(message), &e);
    if (!j)
        return -1;
    core_copy_trunc(j->origin, sizeof j->origin, origin);
    j->call_id = id;
    j->ts = (uint64_t)ts->valuedouble;
    chat_submit(n, j);
    return 0;
}

/* ------------------------------------------------------------------ ack */

typedef struct ack_job {
    node_job_t job;
    char user[PROTO_NAME_MAX + 1];
    char **msgids;
    size_t count;
    store_ackeds_t acked;
    char origin[64];  /* job.req NULL: the follower that handed it over */
    uint64_t call_id;
} ack_job_t;

static void ack_work(store_t *st, void *arg)
{
    ack_job_t *j = arg;
    j->job.rc = store_pending_ack(st, j->user, (const char *const *)j->msgids, j->count, &j->acked);
}

static void ack_answer(ack_job_t *j, int code)
{
    if (j->job.req && code == 0)
        node_req_ok(j->job.req, NULL);
    else if (j->job.req)
        node_req_fail(j->job.req, code, store_fail_text(code));
    else
        node_cluster_store_reply(j->job.node, j->origin, j->call_id, code, NULL);
}

static void ack_done(void *arg)
{
    ack_job_t *j = arg;
    node_t *n = j->job.node;
    ack_answer(j, j->job.rc == STORE_OK ? 0 : PROTO_UNAVAILABLE);
    for (size_t i = 0; j->job.rc == STORE_OK && i < j->acked.count; i++) {
        size_t len = 0;
        char *frame = node_event_frame(
            "receipt", proto_ev_receipt(j->acked.items[i].msgid, j->user), &len);
        node_route_user(n, j->acked.items[i].from, frame, len, NULL, NULL);
        free(frame);
    }
    for (size_t i = 0; i < j->count; i++)
        free(j->msgids[i]);
    free(j->msgids);
    store_ackeds_free(&j->acked);
    free(j);
}

static ack_job_t *ack_job_new(node_t *n, const char *user, const cJSON *arr)
{
    ack_job_t *j = core_xcalloc(1, sizeof *j);
    j->job.node = n;
    core_copy_trunc(j->user, sizeof j->user, user);
    j->count = (size_t)cJSON_GetArraySize(arr);
    j->msgids = core_xcalloc(j->count + 1, sizeof *j->msgids);
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) j->msgids[i++] = core_xstrdup(it->valuestring);
    return j;
}

/* s.ack at the leader: a follower's client acked these. */
static int serve_ack(node_t *n, const char *origin, uint64_t id, const cJSON *m)
{
    proto_err_t e;
    const char *user = NULL;
    const cJSON *arr = NULL;
    if (proto_get_name(m, "user", 1, &user, &e) || proto_get_msgids(m, "msgids", ACK_MAX, &arr, &e))
        return -1;
    ack_job_t *j = ack_job_new(n, user, arr);
    core_copy_trunc(j->origin, sizeof j->origin, origin);
    j->call_id = id;
    node_job_submit_lazy(n, &j->job, ack_work, ack_done);
    return 0;
}

/* Lua: drop the user's parked pushes (chat:upush:<user>) that were acked. */
static const char *const FORGET_PARKED =
    "if redis.call('exists', KEYS[1]) == 0 then return 0 end "
    "local acked = {} for _, id in ipairs(ARGV) do acked[id] = true end "
    "local n = 0 for _, e in ipairs(redis.call('lrange', KEYS[1], 0, -1)) do "
    "local ok, p = pcall(cjson.decode, e) "
    "if ok and type(p) == 'table' and acked[p.msgid] then n = n + redis.call('lrem', KEYS[1], 1, e) end end "
    "return n";

static void forget_parked(node_t *n, const char *user, const cJSON *msgids)
{
    int count = cJSON_GetArraySize(msgids);
    const char **argv = core_xcalloc((size_t)count + 4, sizeof *argv);
    char key[64];
    snprintf(key, sizeof key, "chat:upush:%s", user);
    argv[0] = "EVAL";
    argv[1] = FORGET_PARKED;
    argv[2] = "1";
    argv[3] = key;
    int k = 4;
    const cJSON *it;
    cJSON_ArrayForEach(it, msgids) argv[k++] = it->valuestring;
    core_redis_cmdargv(n->redis, NULL, NULL, k, argv, NULL);
    free(argv);
}

void node_act_ack(node_req_t *r, const cJSON *data)
{
    proto_err_t e;
    const cJSON *arr = NULL;
    if (proto_get_msgids(data, "msgids", ACK_MAX, &arr, &e)) {
        node_req_fail_e(r, &e);
        return;
    }
    node_t *n = r->sess->node;
    if (r->sess->parked_sent) /* else no parked push reached this session: no Redis trip */
        forget_parked(n, r->sess->user, arr);
    if (node_cluster_store_at_leader(n)) { /* one writer: the leader commits it */
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "op", "s.ack");
        cJSON_AddStringToObject(m, "user", r->sess->user);
        cJSON_AddItemToObject(m, "msgids", cJSON_Duplicate(arr, 1));
        node_cluster_store_call(n, m, remote_answered, r);
        return;
    }
    ack_job_t *j = ack_job_new(n, r->sess->user, arr);
    j->job.req = r;
    node_job_submit_lazy(n, &j->job, ack_work, ack_done);
}

int node_direct_serve(node_t *n, const char *origin, uint64_t id, const cJSON *m)
{
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(m, "op");
    int rc = 1;
    if (cJSON_IsString(op) && strcmp(op->valuestring, "s.chat") == 0)
        rc = serve_chat(n, origin, id, m);
    else if (cJSON_IsString(op) && strcmp(op->valuestring, "s.ack") == 0)
        rc = serve_ack(n, origin, id, m);
    if (rc < 0) /* malformed: answered now, so the follower's client is not left waiting */
        node_cluster_store_reply(n, origin, id, PROTO_BAD_REQUEST, NULL);
    return rc <= 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ history */

typedef struct history_job {
    node_job_t job;
    char user[PROTO_NAME_MAX + 1];
    char with[PROTO_NAME_MAX + 1];
    char group[PROTO_GROUP_ID_MAX + 1];
    char before[PROTO_MSGID_LEN + 1];
    int limit;
    store_msgs_t msgs;
} history_job_t;

static void history_work(store_t *st, void *arg)
{
    history_job_t *j = arg;
    char conv[STORE_CONV_MAX];
    if (j->with[0]) {
        if ((j->job.rc = store_user_exists(st, j->with)) != STORE_OK)
            return;
        store_conv_direct(j->user, j->with, conv);
    } else {
        store_group_t g;
        if ((j->job.rc = store_group_get(st, j->group, &g)) != STORE_OK)
            return;
        if ((j->job.rc = store_group_is_member(st, j->group, j->user)) != STORE_OK) {
            j->job.rc = j->job.rc == STORE_NOTFOUND ? STORE_EXISTS : j->job.rc; /* 403 */
            return;
        }
        store_conv_group(j->group, conv);
    }
    j->job.rc = store_history(st, conv, j->before, j->limit, &j->msgs);
}

static cJSON *msg_json(const store_msg_t *m)
{
    if (m->kind == 'g')
        return proto_ev_group_chat(m->msgid, m->to, m->from, m->ts, m->message, m->format);
    return proto_ev_chat(m->msgid, m->from, m->to, m->ts, m->message, m->format);
}

static void history_done(void *arg)
{
    history_job_t *j = arg;
    node_req_t *r = j->job.req;
    if (j->job.rc == STORE_NOTFOUND) {
        node_req_fail(r, PROTO_NOT_FOUND, j->with[0] ? "user not found" : "group not found");
    } else if (j->job.rc == STORE_EXISTS) {
        node_req_fail(r, PROTO_FORBIDDEN, "not a member of this group");
    } else if (j->job.rc != STORE_OK) {
        node_req_fail(r, PROTO_UNAVAILABLE, "store unavailable, retry");
    } else {
        cJSON *d = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(d, "messages");
        for (size_t i = 0; i < j->msgs.count; i++)
            cJSON_AddItemToArray(arr, msg_json(&j->msgs.items[i]));
        node_req_ok(r, d);
    }
    store_msgs_free(&j->msgs);
    free(j);
}

void node_act_history(node_req_t *r, const cJSON *data)
{
    proto_err_t e;
    const char *with = NULL, *group = NULL, *room = NULL, *before = NULL;
    long limit = 20;
    if (proto_get_name(data, "with", 0, &with, &e) ||
        proto_get_string(data, "group", 0, 1, PROTO_GROUP_ID_MAX, &group, &e) ||
        proto_get_name(data, "room", 0, &room, &e) ||
        proto_get_string(data, "before", 0, 0, PROTO_MSGID_LEN, &before, &e) ||
        proto_get_int(data, "limit", 0, 1, 100, &limit, &e)) {
        node_req_fail_e(r, &e);
        return;
    }
    if ((with != NULL) + (group != NULL) + (room != NULL) != 1) {
        node_req_fail(r, PROTO_BAD_REQUEST, "history needs exactly one of 'with', 'group', 'room'");
        return;
    }
    if (room) {
        node_act_room_history(r, room, before, (int)limit);
        return;
    }
    history_job_t *j = core_xcalloc(1, sizeof *j);
    j->job.req = r;
    core_copy_trunc(j->user, sizeof j->user, r->sess->user);
    core_copy_trunc(j->with, sizeof j->with, with ? with : "");
    core_copy_trunc(j->group, sizeof j->group, group ? group : "");
    core_copy_trunc(j->before, sizeof j->before, before ? before : "");
    j->limit = (int)limit;
    node_job_submit_read(r->sess->node, &j->job, history_work, history_done);
}
