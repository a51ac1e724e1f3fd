/* Where events go. Today: sessions on this node. The cluster link plugs in
 * here (a user on another node, a room with members elsewhere), so the
 * handlers never change when it does. */
#include <string.h>

#include "node/node.h"

void node_route_user(node_t *n, const char *user, const char *frame, size_t len,
                     node_route_cb cb, void *ud)
{
    node_sess_t *s = node_sess_find(n, user);
    int delivered = 0;
    if (s && node_sess_live(s)) {
        node_sess_send(s, frame, len);
        delivered = 1;
    }
    if (cb)
        cb(n, delivered, ud);
}

typedef struct pending_job {
    node_job_t job;
    char user[PROTO_NAME_MAX + 1];
    char msgid[PROTO_MSGID_LEN + 1];
    char event[24];
    char *data;
} pending_job_t;

static void pending_work(store_t *st, void *arg)
{
    pending_job_t *j = arg;
    j->job.rc = store_pending_add(st, j->user, j->msgid, j->event, j->data, core_now_ms());
}

static void pending_done(void *arg)
{
    pending_job_t *j = arg;
    if (j->job.rc != STORE_OK)
        CORE_ERROR("could not store a pending %s for %s", j->event, j->user);
    free(j->data);
    free(j);
}

void node_route_user_or_pending(node_t *n, const char *user, const char *msgid,
                                const char *event, cJSON *data)
{
    char *json = cJSON_PrintUnformatted(data);
    size_t len = 0;
    char *frame = node_event_frame(event, data, &len);
    int delivered = 0;
    node_sess_t *s = node_sess_find(n, user);
    if (s && node_sess_live(s)) {
        node_sess_send(s, frame, len);
        delivered = 1;
    }
    free(frame);
    if (delivered) {
        free(json);
        return;
    }
    pending_job_t *j = core_xcalloc(1, sizeof *j);
    snprintf(j->user, sizeof j->user, "%s", user);
    snprintf(j->msgid, sizeof j->msgid, "%s", msgid ? msgid : "");
    snprintf(j->event, sizeof j->event, "%s", event);
    j->data = json;
    node_job_submit(n, &j->job, pending_work, pending_done);
}

typedef struct fanout {
    const char *except;
    const char *frame;
    size_t len;
} fanout_t;

static void fanout_one(node_sess_t *s, void *ud)
{
    fanout_t *f = ud;
    if (f->except && strcmp(s->user, f->except) == 0)
        return;
    node_sess_send(s, f->frame, f->len);
}

void node_route_room(node_t *n, const char *room, const char *except, const char *frame,
                     size_t len)
{
    fanout_t f = {except, frame, len};
    node_rooms_each(n, room, fanout_one, &f);
}

void node_route_all(node_t *n, const char *frame, size_t len)
{
    node_sess_t *s, *tmp;
    HASH_ITER(hh, n->sessions, s, tmp) {
        if (node_sess_live(s))
            node_sess_send(s, frame, len);
    }
}

void node_route_kick(node_t *n, const char *user, const char *old_owner, node_sess_t *keep)
{
    (void)old_owner;
    node_sess_t *s = node_sess_find(n, user);
    if (!s || s == keep)
        return;
    size_t len = 0;
    char *frame = node_event_frame("kicked", proto_ev_kicked("login elsewhere"), &len);
    node_sess_send(s, frame, len);
    free(frame);
    s->kicked = 1;
    HASH_DEL(n->sessions, s);
    node_rooms_leave_all(n, s);
    node_sess_close(s, CORE_WS_POLICY, "login elsewhere");
}
