/* Groups: persistent membership in the store, stored history, offline delivery. */
#include <string.h>
#include <sodium.h>

#include "node/node.h"

#define CID_WINDOW_MS (24ull * 3600 * 1000)

/* One job shape serves the simple group actions. */
typedef struct group_job {
    node_job_t job;
    char user[PROTO_NAME_MAX + 1];
    char gid[PROTO_GROUP_ID_MAX + 1];
    char name[PROTO_GROUP_NAME_MAX + 1];
    store_group_t group;
    store_groups_t groups;
    store_names_t members;
} group_job_t;

static group_job_t *group_job_new(node_req_t *r, const char *gid)
{
    group_job_t *j = core_xcalloc(1, sizeof *j);
    j->job.req = r;
    core_copy_trunc(j->user, sizeof j->user, r->sess->user);
    core_copy_trunc(j->gid, sizeof j->gid, gid ? gid : "");
    return j;
}

static void group_job_free(group_job_t *j)
{
    store_groups_free(&j->groups);
    store_names_free(&j->members);
    free(j);
}

/* Maps a store result to the reply; 1 when it was an error (already answered). */
static int group_fail(group_job_t *j, const char *exists_text, int exists_code)
{
    node_req_t *r = j->job.req;
    switch (j->job.rc) {
    case STORE_OK:
        return 0;
    case STORE_NOTFOUND:
        node_req_fail(r, PROTO_NOT_FOUND, "group not found");
        break;
    case STORE_EXISTS:
        node_req_fail(r, exists_code, exists_text);
        break;
    default:
        node_req_fail(r, PROTO_UNAVAILABLE, "store unavailable, retry");
    }
    group_job_free(j);
    return 1;
}

static cJSON *group_json(const char *gid, const char *name)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "group", gid);
    cJSON_AddStringToObject(d, "name", name);
    return d;
}

static int group_arg(node_req_t *r, const cJSON *data, const char **gid)
{
    proto_err_t e;
    if (proto_get_string(data, "group", 1, 1, PROTO_GROUP_ID_MAX, gid, &e)) {
        node_req_fail_e(r, &e);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ create */

static void create_work(store_t *st, void *arg)
{
    group_job_t *j = arg;
    j->job.rc = store_group_create(st, j->gid, j->name, j->user, core_now_ms());
}

static void create_done(void *arg)
{
    group_job_t *j = arg;
    if (group_fail(j, "group id collision, retry", PROTO_UNAVAILABLE))
        return;
    node_req_ok(j->job.req, group_json(j->gid, j->name));
    group_job_free(j);
}

void node_act_group_create(node_req_t *r, const cJSON *data)
{
    proto_err_t e;
    const char *name = NULL;
    if (proto_get_string(data, "name", 1, 1, PROTO_GROUP_NAME_MAX, &name, &e)) {
        node_req_fail_e(r, &e);
        return;
    }
    group_job_t *j = group_job_new(r, NULL);
    unsigned char raw[8];
    randombytes_buf(raw, sizeof raw);
    j->gid[0] = 'g';
    sodium_bin2hex(j->gid + 1, sizeof j->gid - 1, raw, sizeof raw);
    core_copy_trunc(j->name, sizeof j->name, name);
    node_job_submit(r->sess->node, &j->job, create_work, create_done);
}

/* ------------------------------------------------------------------ join / leave */

static void join_work(store_t *st, void *arg)
{
    group_job_t *j = arg;
    if ((j->job.rc = store_group_get(st, j->gid, &j->group)) == STORE_OK)
        j->job.rc = store_group_join(st, j->gid, j->user);
}

static void join_done(void *arg)
{
    group_job_t *j = arg;
    if (group_fail(j, "already a member", PROTO_CONFLICT))
        return;
    node_req_ok(j->job.req, group_json(j->gid, j->group.name));
    group_job_free(j);
}

void node_act_group_join(node_req_t *r, const cJSON *data)
{
    const char *gid;
    if (group_arg(r, data, &gid) == 0)
        node_job_submit(r->sess->node, &group_job_new(r, gid)->job, join_work, join_done);
}

static void leave_work(store_t *st, void *arg)
{
    group_job_t *j = arg;
    if ((j->job.rc = store_group_get(st, j->gid, &j->group)) != STORE_OK)
        return;
    j->job.rc = store_group_leave(st, j->gid, j->user);
    if (j->job.rc == STORE_NOTFOUND)
        j->job.rc = STORE_EXISTS; /* the group exists; the user is not in it: 403 */
}

static void leave_done(void *arg)
{
    group_job_t *j = arg;
    if (group_fail(j, "not a member of this group", PROTO_FORBIDDEN))
        return;
    node_req_ok(j->job.req, NULL);
    group_job_free(j);
}

void node_act_group_leave(node_req_t *r, const cJSON *data)
{
    const char *gid;
    if (group_arg(r, data, &gid) == 0)
        node_job_submit(r->sess->node, &group_job_new(r, gid)->job, leave_work, leave_done);
}

/* ------------------------------------------------------------------ groups, members */

static void groups_work(store_t *st, void *arg)
{
    group_job_t *j = arg;
    j->job.rc = store_groups_of(st, j->user, &j->groups);
}

static void groups_done(void *arg)
{
    group_job_t *j = arg;
    if (group_fail(j, "", PROTO_INTERNAL))
        return;
    cJSON *d = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(d, "groups");
    for (size_t i = 0; i < j->groups.count; i++) {
        cJSON *g = group_json(j->groups.items[i].gid, j->groups.items[i].name);
        cJSON_AddNumberToObject(g, "members", (double)j->groups.items[i].members);
        cJSON_AddItemToArray(arr, g);
    }
    node_req_ok(j->job.req, d);
    group_job_free(j);
}

void node_act_groups(node_req_t *r, const cJSON *data)
{
    (void)data;
    node_job_submit_read(r->sess->node, &group_job_new(r, NULL)->job, groups_work, groups_done);
}

/* Group exists and the user is in it: else NOTFOUND (404) or EXISTS (403). */
static int member_check(store_t *st, group_job_t *j)
{
    int rc = store_group_get(st, j->gid, &j->group);
    if (rc != STORE_OK)
        return rc;
    rc = store_group_is_member(st, j->gid, j->user);
    return rc == STORE_NOTFOUND ? STORE_EXISTS : rc;
}

static void members_work(store_t *st, void *arg)
{
    group_job_t *j = arg;
    if ((j->job.rc = member_check(st, j)) == STORE_OK)
        j->job.rc = store_group_members(st, j->gid, &j->members);
}

static void members_online(node_t *n, const int *online, size_t count, void *ud)
{
    (void)n;
    group_job_t *j = ud;
    if (!online) {
        node_req_fail(j->job.req, PROTO_UNAVAILABLE, "session registry unavailable, retry");
    } else {
        cJSON *d = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(d, "members");
        for (size_t i = 0; i < count; i++) {
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "user", j->members.items[i].user);
            cJSON_AddBoolToObject(m, "online", online[i]);
            cJSON_AddItemToArray(arr, m);
        }
        node_req_ok(j->job.req, d);
    }
    group_job_free(j);
}

static void members_done(void *arg)
{
    group_job_t *j = arg;
    if (group_fail(j, "not a member of this group", PROTO_FORBIDDEN))
        return;
    node_names_online(j->job.node, &j->members, members_online, j);
}

void node_act_group_members(node_req_t *r, const cJSON *data)
{
    const char *gid;
    if (group_arg(r, data, &gid) == 0)
        node_job_submit_read(r->sess->node, &group_job_new(r, gid)->job, members_work, members_done);
}

/* ------------------------------------------------------------------ group_chat */

typedef struct gchat_job {
    group_job_t g;              /* first: shares group_fail and friends */
    char msgid[PROTO_MSGID_LEN + 1]; /* assigned on the store thread */
    char cid[PROTO_CID_MAX + 1];
    char format[PROTO_FORMAT_MAX + 1];
    uint64_t ts;
    char *message;
    char *event;
    int duplicate;
} gchat_job_t;

static int gchat_store(store_t *st, gchat_job_t *j)
{
    int rc = member_check(st, &j->g);
    if (rc != STORE_OK)
        return rc;
    if (j->cid[0]) {
        char first[STORE_MSGID_MAX];
        rc = store_cid_get(st, j->g.user, j->cid, j->ts - CID_WINDOW_MS, first);
        if (rc == STORE_OK) {
            core_copy_trunc(j->msgid, sizeof j->msgid, first);
            j->duplicate = 1;
            return STORE_OK;
        }
        if (rc != STORE_NOTFOUND)
            return rc;
    }
    if ((rc = store_group_members(st, j->g.gid, &j->g.members)) != STORE_OK)
        return rc;
    char conv[STORE_CONV_MAX];
    store_conv_group(j->g.gid, conv);
    if ((rc = node_job_conv_msgid(j->g.job.node, st, conv, j->ts, j->msgid)) != STORE_OK)
        return rc;
    j->event = node_json_take(
        proto_ev_group_chat(j->msgid, j->g.gid, j->g.user, j->ts, j->message, j->format));
    store_msg_t m = {.kind = 'g', .ts = j->ts, .message = j->message};
    core_copy_trunc(m.msgid, sizeof m.msgid, j->msgid);
    core_copy_trunc(m.from, sizeof m.from, j->g.user);
    core_copy_trunc(m.to, sizeof m.to, j->g.gid);
    core_copy_trunc(m.format, sizeof m.format, j->format);
    if ((rc = store_msg_put(st, &m, conv)) != STORE_OK)
        return rc;
    /* every member but the sender keeps it pending until acked */
    for (size_t i = 0; i < j->g.members.count; i++) {
        const char *u = j->g.members.items[i].user;
        if (strcmp(u, j->g.user) != 0 &&
            (rc = store_pending_add(st, u, j->msgid, "group_chat", j->event, j->ts)) != STORE_OK)
            return rc;
    }
    return j->cid[0] ? store_cid_put(st, j->g.user, j->cid, j->msgid, j->ts) : STORE_OK;
}

static void gchat_work(store_t *st, void *arg)
{
    gchat_job_t *j = arg;
    j->g.job.rc = gchat_store(st, j);
}

static void gchat_free(gchat_job_t *j)
{
    free(j->message);
    free(j->event);
    store_groups_free(&j->g.groups);
    store_names_free(&j->g.members);
    free(j);
}

static void gchat_done(void *arg)
{
    gchat_job_t *j = arg;
    node_t *n = j->g.job.node;
    node_req_t *r = j->g.job.req;
    int rc = j->g.job.rc;
    if (rc != STORE_OK) {
        node_req_fail(r, rc == STORE_NOTFOUND ? PROTO_NOT_FOUND
                         : rc == STORE_EXISTS ? PROTO_FORBIDDEN : PROTO_UNAVAILABLE,
                      rc == STORE_NOTFOUND ? "group not found"
                      : rc == STORE_EXISTS ? "not a member of this group" : "store unavailable, retry");
        gchat_free(j);
        return;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "msgid", j->msgid);
    cJSON_AddNumberToObject(d, "ts", (double)j->ts);
    node_req_ok(r, d);
    if (!j->duplicate) {
        n->metrics.messages_total++;
        size_t len = 0;
        char *frame = proto_event_text("group_chat", j->event, &len); /* printed on the store thread */
        const char **users = core_xcalloc(j->g.members.count + 1, sizeof *users);
        for (size_t i = 0; i < j->g.members.count; i++)
            users[i] = j->g.members.items[i].user;
        node_route_users(n, users, j->g.members.count, j->g.user, frame, len);
        free(users);
        free(frame);
    }
    gchat_free(j);
}

void node_act_group_chat(node_req_t *r, const cJSON *data)
{
    proto_err_t e;
    const char *gid = NULL, *message = NULL, *format = "text", *cid = NULL;
    if (proto_get_string(data, "group", 1, 1, PROTO_GROUP_ID_MAX, &gid, &e) ||
        proto_get_text(data, "message", &message, &e) || proto_get_format(data, &format, &e) ||
        proto_get_string(data, "cid", 0, 1, PROTO_CID_MAX, &cid, &e)) {
        node_req_fail_e(r, &e);
        return;
    }
    node_t *n = r->sess->node;
    gchat_job_t *j = core_xcalloc(1, sizeof *j);
    j->g.job.req = r;
    core_copy_trunc(j->g.user, sizeof j->g.user, r->sess->user);
    core_copy_trunc(j->g.gid, sizeof j->g.gid, gid);
    core_copy_trunc(j->cid, sizeof j->cid, cid ? cid : "");
    core_copy_trunc(j->format, sizeof j->format, format);
    j->ts = core_now_ms();
    j->message = node_filter_mask(n->filter, message);
    node_job_submit(n, &j->g.job, gchat_work, gchat_done);
}
