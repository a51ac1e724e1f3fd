/* Server pushes queued by gateways in Redis (chat:push), popped here and
 * delivered: to one user (stored as a pending item until acked, like a
 * chat message), to a room's live members, or to everyone online. */
#include <string.h>
#include <hiredis/hiredis.h>

#include "node/node.h"

#define PUSH_BLOCK_SEC 1

static void push_poll(node_t *n);

typedef struct push_job {
    node_job_t job;
    char user[PROTO_NAME_MAX + 1];
    char msgid[PROTO_MSGID_LEN + 1];
    char *data;
    char *entry;                /* as queued: also parked in chat:upush:<user> */
} push_job_t;

static void push_work(store_t *st, void *arg)
{
    push_job_t *j = arg;
    if ((j->job.rc = store_user_exists(st, j->user)) == STORE_OK)
        j->job.rc = store_pending_add(st, j->user, j->msgid, "system", j->data, core_now_ms());
}

static void push_done(void *arg)
{
    push_job_t *j = arg;
    if (j->job.rc == STORE_OK) {
        size_t len = 0;
        char *frame = proto_event_text("system", j->data, &len);
        node_route_user(j->job.node, j->user, frame, len, NULL, NULL);
        free(frame);
    } else if (j->job.rc != STORE_NOTFOUND) {
        CORE_ERROR("push %s to %s could not be stored", j->msgid, j->user);
    }
    if (j->job.rc == STORE_OK || j->job.rc == STORE_NOTFOUND)
        /* stored (or no such user): the parked copy has done its job */
        core_redis_cmd(j->job.node->redis, NULL, NULL, "LREM chat:upush:%s 1 %s", j->user, j->entry);
    free(j->data);
    free(j->entry);
    free(j);
}

static void push_to_user(node_t *n, const char *user, const char *msgid, cJSON *ev,
                         const char *entry, size_t entry_len)
{
    push_job_t *j = core_xcalloc(1, sizeof *j);
    j->entry = core_xstrndup(entry, entry_len);
    core_copy_trunc(j->user, sizeof j->user, user);
    core_copy_trunc(j->msgid, sizeof j->msgid, msgid);
    j->data = node_json_take(ev);
    node_job_submit(n, &j->job, push_work, push_done);
}

/* Validates one queued push and sends it on its way. */
static void push_handle(node_t *n, const char *json, size_t len)
{
    cJSON *p = cJSON_ParseWithLength(json, len);
    const cJSON *msgid = cJSON_GetObjectItemCaseSensitive(p, "msgid");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(p, "message");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(p, "ts");
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(p, "to");
    const cJSON *room = cJSON_GetObjectItemCaseSensitive(p, "room");
    if (!cJSON_IsString(msgid) || !cJSON_IsString(msg) || !cJSON_IsNumber(ts)) {
        CORE_WARN("dropping a malformed push");
        cJSON_Delete(p);
        return;
    }
    cJSON *ev = proto_ev_system(msgid->valuestring, msg->valuestring, (uint64_t)ts->valuedouble);
    if (cJSON_IsString(to) && proto_valid_name(to->valuestring, strlen(to->valuestring))) {
        push_to_user(n, to->valuestring, msgid->valuestring, ev, json, len);
    } else {
        size_t flen = 0;
        char *frame = node_event_frame("system", ev, &flen);
        if (cJSON_IsString(room))
            node_route_room(n, room->valuestring, NULL, frame, flen);
        else
            node_route_all(n, frame, flen);
        free(frame);
    }
    cJSON_Delete(p);
}

static void on_pop(core_redis_t *r, struct redisReply *reply, void *ud)
{
    (void)r;
    node_t *n = ud;
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2)
        push_handle(n, reply->element[1]->str, reply->element[1]->len);
    push_poll(n);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    push_poll(w->data);
}

static void push_poll(node_t *n)
{
    if (!n->push_enabled)
        return;
    if (core_redis_cmd(n->redis_push, on_pop, n, "BRPOP chat:push %d", PUSH_BLOCK_SEC) != 0) {
        /* not connected: look again shortly */
        ev_timer_stop(n->loop, &n->push_retry);
        ev_timer_set(&n->push_retry, 0.5, 0);
        ev_timer_start(n->loop, &n->push_retry);
    }
}

void node_push_start(node_t *n, const char *host, int port)
{
    n->redis_push = core_redis_new(n->loop, host, port, PUSH_BLOCK_SEC + n->cfg.redis_timeout);
    core_redis_set_auth(n->redis_push, n->cfg.redis_user, n->cfg.redis_password);
    ev_timer_init(&n->push_retry, on_retry, 0.5, 0);
    n->push_retry.data = n;
    n->push_enabled = 1;
    push_poll(n);
}

void node_push_stop(node_t *n)
{
    n->push_enabled = 0;
    ev_timer_stop(n->loop, &n->push_retry);
    core_redis_free(n->redis_push);
    n->redis_push = NULL;
}
