/* Friends: request, reply, list.
 *
 * friend_request / friend_reply events are durable: stored as a pending item
 * of the target in the same store job as the request itself, answered, then
 * routed; the node that hands one to the target's live session settles the
 * item (node_route_local). A node that dies before delivering loses nothing:
 * the item waits for the next login. */
#include <string.h>

#include "node/node.h"

/* A friend event: its msgid (settles the pending item), JSON data, frame. */
typedef struct fevent {
    char msgid[PROTO_MSGID_LEN + 1];
    char *data;
} fevent_t;

/* Store thread: takes a msgid, keeps the event pending for user. */
static int fevent_store(store_t *st, node_t *n, const char *user, const char *name, cJSON *ev,
                        uint64_t ts, fevent_t *out)
{
    proto_msgid_next(&n->msgids, ts, out->msgid);
    cJSON_AddStringToObject(ev, "msgid", out->msgid);
    out->data = node_json_take(ev);
    return store_pending_add(st, user, out->msgid, name, out->data, ts);
}

/* Loop: hands the stored event to the user's live session, if any. */
static void fevent_route(node_t *n, const char *user, const char *name, fevent_t *ev)
{
    size_t len = 0;
    char *frame = proto_event_text(name, ev->data, &len);
    node_route_user(n, user, frame, len, NULL, NULL);
    free(frame);
}

/* ------------------------------------------------------------------ friend_request */

typedef struct freq_job {
    node_job_t job;
    char from[PROTO_NAME_MAX + 1];
    char to[PROTO_NAME_MAX + 1];
    char note[PROTO_NOTE_MAX + 1];
    uint64_t ts;
    fevent_t ev;
} freq_job_t;

static void freq_work(store_t *st, void *arg)
{
    freq_job_t *j = arg;
    if ((j->job.rc = store_user_exists(st, j->to)) != STORE_OK)
        return;
    j->job.rc = store_friends_check(st, j->from, j->to);
    if (j->job.rc == STORE_OK) {
        j->job.rc = STORE_EXISTS;
        return;
    }
    if (j->job.rc == STORE_NOTFOUND)
        j->job.rc = store_friend_request_put(st, j->from, j->to, j->note, j->ts);
    if (j->job.rc == STORE_OK)
        j->job.rc = fevent_store(st, j->job.node, j->to, "friend_request",
                                 proto_ev_friend_request(j->from, j->note, j->ts), j->ts, &j->ev);
}

static void freq_done(void *arg)
{
    freq_job_t *j = arg;
    node_req_t *r = j->job.req;
    if (j->job.rc == STORE_NOTFOUND) {
        node_req_fail(r, PROTO_NOT_FOUND, "user not found");
    } else if (j->job.rc == STORE_EXISTS) {
        node_req_fail(r, PROTO_CONFLICT, "already friends");
    } else if (j->job.rc != STORE_OK) {
        node_req_fail(r, PROTO_UNAVAILABLE, "store unavailable, retry");
    } else {
        node_req_ok(r, NULL);
        fevent_route(j->job.node, j->to, "friend_request", &j->ev);
    }
    free(j->ev.data);
    free(j);
}

void node_act_friend_request(node_req_t *r, const cJSON *data)
{
    proto_err_t e;
    const char *user = NULL, *note = "";
    if (proto_get_name(data, "user", 1, &user, &e) ||
        proto_get_string(data, "note", 0, 0, PROTO_NOTE_MAX, &note, &e)) {
        node_req_fail_e(r, &e);
        return;
    }
    if (strcmp(user, r->sess->user) == 0) {
        node_req_fail(r, PROTO_BAD_REQUEST, "cannot befriend yourself");
        return;
    }
    freq_job_t *j = core_xcalloc(1, sizeof *j);
    j->job.req = r;
    core_copy_trunc(j->from, sizeof j->from, r->sess->user);
    core_copy_trunc(j->to, sizeof j->to, user);
    core_copy_trunc(j->note, sizeof j->note, note);
    j->ts = core_now_ms();
    node_job_submit(r->sess->node, &j->job, freq_work, freq_done);
}

/* ------------------------------------------------------------------ friend_reply */

typedef struct frep_job {
    node_job_t job;
    char me[PROTO_NAME_MAX + 1];
    char requester[PROTO_NAME_MAX + 1];
    int accept;
    fevent_t ev;
} frep_job_t;

static void frep_work(store_t *st, void *arg)
{
    frep_job_t *j = arg;
    if ((j->job.rc = store_friend_request_take(st, j->requester, j->me)) != STORE_OK)
        return;
    uint64_t now = core_now_ms();
    if (j->accept && (j->job.rc = store_friend_add(st, j->me, j->requester, now)) != STORE_OK)
        return;
    j->job.rc = fevent_store(st, j->job.node, j->requester, "friend_reply",
                             proto_ev_friend_reply(j->me, j->accept), now, &j->ev);
}

static void frep_done(void *arg)
{
    frep_job_t *j = arg;
    node_req_t *r = j->job.req;
    if (j->job.rc == STORE_NOTFOUND) {
        node_req_fail(r, PROTO_NOT_FOUND, "no pending friend request from this user");
    } else if (j->job.rc != STORE_OK) {
        node_req_fail(r, PROTO_UNAVAILABLE, "store unavailable, retry");
    } else {
        node_req_ok(r, NULL);
        fevent_route(j->job.node, j->requester, "friend_reply", &j->ev);
    }
    free(j->ev.data);
    free(j);
}

void node_act_friend_reply(node_req_t *r, const cJSON *data)
{
    proto_err_t e;
    const char *user = NULL;
    int accept = 0;
    if (proto_get_name(data, "user", 1, &user, &e) || proto_get_bool(data, "accept", 1, &accept, &e)) {
        node_req_fail_e(r, &e);
        return;
    }
    frep_job_t *j = core_xcalloc(1, sizeof *j);
    j->job.req = r;
    core_copy_trunc(j->me, sizeof j->me, r->sess->user);
    core_copy_trunc(j->requester, sizeof j->requester, user);
    j->accept = accept;
    node_job_submit(r->sess->node, &j->job, frep_work, frep_done);
}

/* ------------------------------------------------------------------ friends */

typedef struct flist_job {
    node_job_t job;
    char user[PROTO_NAME_MAX + 1];
    store_names_t names;
} flist_job_t;

static void flist_work(store_t *st, void *arg)
{
    flist_job_t *j = arg;
    j->job.rc = store_friends_list(st, j->user, &j->names);
}

static void flist_online(node_t *n, const int *online, size_t count, void *ud)
{
    (void)n;
    flist_job_t *j = ud;
    if (!online) {
        node_req_fail(j->job.req, PROTO_UNAVAILABLE, "session registry unavailable, retry");
    } else {
        cJSON *d = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(d, "friends");
        for (size_t i = 0; i < count; i++) {
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "user", j->names.items[i].user);
            cJSON_AddStringToObject(f, "nickname", j->names.items[i].nickname);
            cJSON_AddBoolToObject(f, "online", online[i]);
            cJSON_AddItemToArray(arr, f);
        }
        node_req_ok(j->job.req, d);
    }
    store_names_free(&j->names);
    free(j);
}

/* Looks up the online flag of every name in a store_names_t. */
void node_names_online(node_t *n, const store_names_t *names, node_online_cb cb, void *ud)
{
    const char **users = core_xcalloc(names->count + 1, sizeof *users);
    for (size_t i = 0; i < names->count; i++)
        users[i] = names->items[i].user;
    node_presence_online(n, users, names->count, cb, ud);
    free(users);
}

static void flist_done(void *arg)
{
    flist_job_t *j = arg;
    if (j->job.rc != STORE_OK) {
        node_req_fail(j->job.req, PROTO_UNAVAILABLE, "store unavailable, retry");
        store_names_free(&j->names);
        free(j);
        return;
    }
    node_names_online(j->job.node, &j->names, flist_online, j);
}

void node_act_friends(node_req_t *r, const cJSON *data)
{
    (void)data;
    flist_job_t *j = core_xcalloc(1, sizeof *j);
    j->job.req = r;
    core_copy_trunc(j->user, sizeof j->user, r->sess->user);
    node_job_submit_read(r->sess->node, &j->job, flist_work, flist_done);
}
