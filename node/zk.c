/* node/zk.c: ZooKeeper membership and leader election.
 *
 * The ZooKeeper library runs completions and watchers on its own threads.
 * Those only copy what they got into a small event record and queue it; an
 * ev_async wakes the loop, which runs the state machine and every user
 * callback. Each request carries the handle generation and a round number,
 * so answers that arrive after things moved on (a new session, a newer
 * refresh) are dropped instead of acted on.
 *
 * Per session: create the parent paths, watch <root>/nodes, register
 * <root>/nodes/<id>, then join the election with n_<session hex>_<seq>.
 * The node after the leader learns of its death by watching it (each node
 * watches only its predecessor); the others learn through the member watch
 * they keep anyway, since a node's two ephemeral znodes go in one session
 * close.
 *
 * Credentials (node_zk_set_auth): each new handle adds them (digest) before
 * its first request, and everything this module creates gets the "auth"
 * ACL: all rights for the session's identity, nothing for anyone else.
 * The client library sends them again by itself on a reconnect of the same
 * session. A cluster path (root, nodes, election) found open, from a run
 * without credentials, is restricted to ours (zoo_aset_acl).
 */
#include "node/node.h"

#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <zookeeper/zookeeper.h>

#define ZK_ROOT_MAX 128
#define ZK_PATH_MAX 256
#define ZK_NAME_MAX 64
#define ZK_MAX_CHILDREN 4096  /* children read per listing */
#define ZK_MAX_DATA 2048      /* bytes kept of a znode's data */
#define ZK_RETRY_SEC 0.5      /* after a failed step, or while our id is held */
#define ZK_AUTH_MAX 256       /* "user:password" */
#define ZK_NOAUTH_EVERY 20    /* a refusal that goes on is logged this often */

typedef enum {
    OP_MKDIR,       /* one parent path */
    OP_REGISTER,    /* create <root>/nodes/<id> */
    OP_OWNER,       /* who holds <root>/nodes/<id> */
    OP_FIND_SELF,   /* our election znode from before a lost reply? */
    OP_ELECT,       /* create our election znode */
    OP_MEMBERS,     /* list <root>/nodes (with watch) */
    OP_MEMBER,      /* one member's data */
    OP_ELECTION,    /* list <root>/election */
    OP_WATCH_PRED,  /* get + watch the predecessor */
    OP_LEADER_ID,   /* the leader's election znode data: its id */
    OP_LEADER_INFO, /* the leader's member data: its cluster address */
    OP_ACL_GET,     /* an existing cluster path: open to anyone? */
    OP_ACL_SET,     /* restrict it to our identity */
} zk_op_t;

/* One request in flight. Written on the loop before submission, only read
 * by the library threads, freed on the loop. */
typedef struct zk_req {
    struct zk_req *prev, *next; /* z->reqs */
    node_zk_t *z;
    unsigned gen;
    unsigned round;
    zk_op_t op;
    size_t index; /* OP_MKDIR: step; OP_MEMBER: slot */
    char path[ZK_PATH_MAX];
} zk_req_t;

/* A completion or watch event, handed from a library thread to the loop. */
typedef struct zk_ev {
    struct zk_ev *next;
    zk_req_t *req; /* NULL for a watch event */
    unsigned gen;  /* watch events: handle generation */
    int rc;
    int type, state;
    char *text; /* created path, watched path or data (NUL-terminated) */
    size_t len;
    int64_t owner;
    char **names;
    size_t count;
    int acl_open;     /* OP_ACL_GET: world:anyone has some right */
    int32_t aversion; /* OP_ACL_GET: the ACL's version, for the set */
} zk_ev_t;

/* The watcher context of one handle; lives until the handle is closed. */
typedef struct zk_conn {
    node_zk_t *z;
    unsigned gen;
    int auth_added; /* the credentials are in this handle's list */
} zk_conn_t;

typedef struct zk_slot {
    int done;
    int ok;
    node_zk_member_t m;
} zk_slot_t;

typedef struct zk_leader {
    char name[ZK_NAME_MAX]; /* election znode; "" = unknown */
    char id[64];
    char cluster[128];
    int64_t epoch;
    int is_self;
    int reported; /* on_leader told and not revoked since */
} zk_leader_t;

struct node_zk {
    struct ev_loop *loop;
    char *hosts;
    char root[ZK_ROOT_MAX];
    char nodes_path[ZK_ROOT_MAX + 16];
    char election_path[ZK_ROOT_MAX + 16];
    int timeout_ms;
    node_zk_member_t self;
    node_zk_cbs_t cbs;
    void *ud;
    char auth[ZK_AUTH_MAX];     /* digest "user:password", "" = none */
    struct ACL_vector *acl;     /* what we create znodes with */
    size_t root_step;           /* mkdir step of the root itself */
    unsigned noauth;            /* ZNOAUTH answers in a row */

    /* hand-off from the library threads */
    pthread_mutex_t lock;
    pthread_cond_t closed;
    zk_ev_t *head, *tail;
    int closers; /* expired handles still being closed off the loop */
    ev_async wake;

    /* the session */
    zhandle_t *zh;
    zk_conn_t *conn;
    unsigned gen;
    int connected;
    int64_t session;
    ev_timer retry;
    ev_timer lost;
    zk_req_t *reqs;

    /* joining */
    unsigned join_round;
    int paths_ok; /* parents exist, member watch set (this session) */
    int held_warned;
    char my_name[ZK_NAME_MAX]; /* election znode, "" until joined */
    int64_t my_seq;

    /* members */
    unsigned members_round;
    zk_slot_t *slots;
    size_t nslots, pending;
    int members_failed;
    node_zk_member_t *members;
    size_t nmembers;

    /* election */
    unsigned eval_round;
    zk_leader_t leader;
};

static void join_start(node_zk_t *z);
static void election_refresh(node_zk_t *z);
static void members_refresh(node_zk_t *z);

/* Credentials for the sessions node_zk_start opens from now on: process-wide
 * because the caller that starts the session (node/cluster.c) has none of
 * its own to pass. */
static char zk_auth_default[ZK_AUTH_MAX];

/* ------------------------------------------------------------------ requests */

static zk_req_t *req_new(node_zk_t *z, zk_op_t op, unsigned round, const char *path)
{
    zk_req_t *r = core_xcalloc(1, sizeof *r);
    r->z = z;
    r->gen = z->gen;
    r->op = op;
    r->round = round;
    core_copy_trunc(r->path, sizeof r->path, path);
    r->next = z->reqs;
    if (z->reqs)
        z->reqs->prev = r;
    z->reqs = r;
    return r;
}

static void req_free(node_zk_t *z, zk_req_t *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        z->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    free(r);
}

static void retry_later(node_zk_t *z)
{
    if (!ev_is_active(&z->retry)) {
        ev_timer_set(&z->retry, ZK_RETRY_SEC, 0.);
        ev_timer_start(z->loop, &z->retry);
    }
}

/* A request the library refused never completes: forget it, try again later. */
static int submitted(node_zk_t *z, zk_req_t *r, int rc)
{
    if (rc == ZOK)
        return 0;
    CORE_WARN("zk: request on %s not sent: %s", r->path, zerror(rc));
    req_free(z, r);
    retry_later(z);
    return -1;
}

/* ------------------------------------------------------------------ library threads */

static void ev_push(node_zk_t *z, zk_ev_t *e)
{
    pthread_mutex_lock(&z->lock);
    if (z->tail)
        z->tail->next = e;
    else
        z->head = e;
    z->tail = e;
    pthread_mutex_unlock(&z->lock);
    ev_async_send(z->loop, &z->wake);
}

static zk_ev_t *reply_new(const void *data, int rc)
{
    zk_ev_t *e = core_xcalloc(1, sizeof *e);
    e->req = (zk_req_t *)(uintptr_t)data; /* our own request, const only in the API */
    e->rc = rc;
    return e;
}

static void ev_set_text(zk_ev_t *e, const char *text, size_t len)
{
    if (len > ZK_MAX_DATA)
        len = ZK_MAX_DATA;
    e->text = core_xstrndup(text, len);
    e->len = strlen(e->text);
}

static void on_string_done(int rc, const char *value, const void *data)
{
    zk_ev_t *e = reply_new(data, rc);
    if (rc == ZOK && value)
        ev_set_text(e, value, strlen(value));
    ev_push(e->req->z, e);
}

static void on_data_done(int rc, const char *value, int len, const struct Stat *stat,
                         const void *data)
{
    zk_ev_t *e = reply_new(data, rc);
    if (rc == ZOK && value && len > 0)
        ev_set_text(e, value, (size_t)len);
    if (rc == ZOK && stat)
        e->owner = stat->ephemeralOwner;
    ev_push(e->req->z, e);
}

static void on_strings_done(int rc, const struct String_vector *sv, const void *data)
{
    zk_ev_t *e = reply_new(data, rc);
    if (rc == ZOK && sv && sv->count > 0) {
        size_t n = (size_t)sv->count;
        if (n > ZK_MAX_CHILDREN)
            n = ZK_MAX_CHILDREN;
        e->names = core_xcalloc(n, sizeof *e->names);
        for (size_t i = 0; i < n; i++)
            e->names[i] = core_xstrdup(sv->data[i]);
        e->count = n;
    }
    ev_push(e->req->z, e);
}

static void on_acl_done(int rc, struct ACL_vector *acl, struct Stat *stat, const void *data)
{
    zk_ev_t *e = reply_new(data, rc);
    if (rc == ZOK && acl)
        for (int32_t i = 0; i < acl->count; i++)
            if (acl->data[i].id.scheme && !strcmp(acl->data[i].id.scheme, "world"))
                e->acl_open = 1;
    if (rc == ZOK && stat)
        e->aversion = stat->aversion;
    ev_push(e->req->z, e);
}

static void on_void_done(int rc, const void *data)
{
    zk_ev_t *e = reply_new(data, rc);
    ev_push(e->req->z, e);
}

static void on_watch(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    zk_conn_t *c = ctx;
    zk_ev_t *e = core_xcalloc(1, sizeof *e);
    (void)zh;
    e->gen = c->gen;
    e->type = type;
    e->state = state;
    if (path)
        ev_set_text(e, path, strlen(path));
    ev_push(c->z, e);
}

static void ev_free(zk_ev_t *e)
{
    for (size_t i = 0; i < e->count; i++)
        free(e->names[i]);
    free(e->names);
    free(e->text);
    free(e);
}

/* ------------------------------------------------------------------ leader reports */

static void leader_lost(node_zk_t *z)
{
    int told = z->leader.reported;
    memset(&z->leader, 0, sizeof z->leader);
    if (told && z->cbs.on_no_leader)
        z->cbs.on_no_leader(z->ud);
}

static void leader_report(node_zk_t *z, const char *id, const char *cluster, int64_t epoch,
                          int is_self)
{
    zk_leader_t *l = &z->leader;
    if (l->reported && l->epoch == epoch && l->is_self == is_self && !strcmp(l->id, id) &&
        !strcmp(l->cluster, cluster))
        return;
    core_copy_trunc(l->id, sizeof l->id, id);
    core_copy_trunc(l->cluster, sizeof l->cluster, cluster);
    l->epoch = epoch;
    l->is_self = is_self;
    l->reported = 1;
    CORE_INFO("zk: leader %s (epoch %" PRId64 ")%s", id, epoch, is_self ? ", this node" : "");
    if (z->cbs.on_leader)
        z->cbs.on_leader(z->ud, id, cluster, epoch, is_self);
}

/* ------------------------------------------------------------------ joining */

/* The step-th parent path to create: each prefix of root, then nodes and
 * election. -1 past the last. */
static int mkdir_path(const node_zk_t *z, size_t step, char *out, size_t len)
{
    size_t depth = 0;
    for (const char *p = z->root + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        if (depth++ == step) {
            snprintf(out, len, "%.*s", (int)(p - z->root), z->root);
            return 0;
        }
        if (!*p)
            break;
    }
    step -= depth;
    if (step > 1)
        return -1;
    core_copy_trunc(out, len, step == 0 ? z->nodes_path : z->election_path);
    return 0;
}

/* Wrong or missing credentials retry forever: said first, then now and then. */
static void log_noauth(node_zk_t *z, const char *path)
{
    if (z->noauth++ % ZK_NOAUTH_EVERY != 0)
        return;
    if (z->auth[0])
        CORE_ERROR("zk: %s: not authorized: the cluster's znodes belong to other ZooKeeper "
                   "credentials than this node's (--zk-auth-file / CHAT_ZK_AUTH); retrying", path);
    else
        CORE_ERROR("zk: %s: not authorized: the cluster's znodes are protected and this node "
                   "has no ZooKeeper credentials (--zk-auth-file or CHAT_ZK_AUTH); retrying", path);
}

static void join_fail(node_zk_t *z, const zk_req_t *r, int rc)
{
    if (rc == ZNOAUTH)
        log_noauth(z, r->path);
    else
        CORE_WARN("zk: %s: %s; retrying", r->path, zerror(rc));
    retry_later(z);
}

static void mkdir_step(node_zk_t *z, size_t step);

static void do_register(node_zk_t *z)
{
    char path[ZK_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", z->nodes_path, z->self.id);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", z->self.id);
    cJSON_AddStringToObject(o, "url", z->self.url);
    cJSON_AddStringToObject(o, "cluster", z->self.cluster);
    cJSON_AddStringToObject(o, "boot", z->self.boot);
    char *json = node_json_take(o);
    zk_req_t *r = req_new(z, OP_REGISTER, z->join_round, path);
    submitted(z, r,
              zoo_acreate(z->zh, path, json, (int)strlen(json), z->acl, ZOO_EPHEMERAL,
                          on_string_done, r));
    free(json);
}

static void mkdir_step(node_zk_t *z, size_t step)
{
    char path[ZK_PATH_MAX];
    if (mkdir_path(z, step, path, sizeof path) != 0) {
        z->paths_ok = 1;
        z->noauth = 0;
        members_refresh(z);
        do_register(z);
        return;
    }
    zk_req_t *r = req_new(z, OP_MKDIR, z->join_round, path);
    r->index = step;
    submitted(z, r,
              zoo_acreate(z->zh, path, "", 0, z->acl, 0, on_string_done, r));
}

/* An existing cluster path: is it open to anyone (an older run without
 * credentials made it)? */
static void acl_check(node_zk_t *z, const zk_req_t *mkdir)
{
    zk_req_t *r = req_new(z, OP_ACL_GET, z->join_round, mkdir->path);
    r->index = mkdir->index;
    submitted(z, r, zoo_aget_acl(z->zh, r->path, on_acl_done, r));
}

static void acl_restrict(node_zk_t *z, const zk_req_t *get, int32_t aversion)
{
    zk_req_t *r = req_new(z, OP_ACL_SET, z->join_round, get->path);
    r->index = get->index;
    submitted(z, r, zoo_aset_acl(z->zh, r->path, aversion, &ZOO_CREATOR_ALL_ACL, on_void_done, r));
}

static void on_mkdir(node_zk_t *z, const zk_req_t *r, const zk_ev_t *e)
{
    if (e->rc == ZNODEEXISTS && z->auth[0] && r->index >= z->root_step)
        acl_check(z, r);
    else if (e->rc == ZOK || e->rc == ZNODEEXISTS)
        mkdir_step(z, r->index + 1);
    else
        join_fail(z, r, e->rc);
}

static void on_acl_reply(node_zk_t *z, const zk_req_t *r, const zk_ev_t *e)
{
    if (r->op == OP_ACL_GET && e->rc == ZOK && e->acl_open) {
        acl_restrict(z, r, e->aversion);
    } else if (e->rc == ZOK) {
        if (r->op == OP_ACL_SET)
            CORE_WARN("zk: %s was open to anyone (made without credentials); now only this "
                      "cluster's ZooKeeper credentials may use it", r->path);
        mkdir_step(z, r->index + 1);
    } else if (e->rc == ZBADVERSION) {
        acl_check(z, r); /* changed meanwhile: look again */
    } else {
        join_fail(z, r, e->rc);
    }
}

static void join_start(node_zk_t *z)
{
    z->join_round++;
    if (z->paths_ok)
        do_register(z);
    else
        mkdir_step(z, 0);
}

static void find_self(node_zk_t *z)
{
    zk_req_t *r = req_new(z, OP_FIND_SELF, z->join_round, z->election_path);
    submitted(z, r, zoo_aget_children(z->zh, z->election_path, 0, on_strings_done, r));
}

static void session_prefix(const node_zk_t *z, char *out, size_t len)
{
    snprintf(out, len, "n_%016" PRIx64 "_", (uint64_t)z->session);
}

static int64_t name_seq(const char *name)
{
    const char *us = strrchr(name, '_');
    if (strncmp(name, "n_", 2) != 0 || !us || !us[1])
        return -1;
    char *end;
    long long seq = strtoll(us + 1, &end, 10);
    return *end || seq < 0 ? -1 : (int64_t)seq;
}

static void joined(node_zk_t *z, const char *name)
{
    core_copy_trunc(z->my_name, sizeof z->my_name, name);
    z->my_seq = name_seq(name);
    CORE_INFO("zk: joined the election as %s", z->my_name);
    election_refresh(z);
}

/* A reply to a create whose answer was lost may have made our znode:
 * the session id in the name finds it, so no duplicate is created. */
static void on_find_self(node_zk_t *z, const zk_ev_t *e)
{
    char prefix[ZK_NAME_MAX];
    session_prefix(z, prefix, sizeof prefix);
    for (size_t i = 0; i < e->count; i++) {
        if (!strncmp(e->names[i], prefix, strlen(prefix)) && name_seq(e->names[i]) >= 0) {
            joined(z, e->names[i]);
            return;
        }
    }
    char path[ZK_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", z->election_path, prefix);
    zk_req_t *r = req_new(z, OP_ELECT, z->join_round, path);
    submitted(z, r,
              zoo_acreate(z->zh, path, z->self.id, (int)strlen(z->self.id), z->acl,
                          ZOO_EPHEMERAL_SEQUENTIAL, on_string_done, r));
}

static void on_owner(node_zk_t *z, const zk_req_t *r, const zk_ev_t *e)
{
    if (e->rc == ZNONODE) {
        do_register(z);
    } else if (e->rc != ZOK) {
        join_fail(z, r, e->rc);
    } else if (e->owner == z->session) {
        find_self(z); /* ours: the create's reply was lost */
    } else {
        if (!z->held_warned)
            CORE_WARN("zk: id %s is held by another session; waiting for it to go",
                      z->self.id);
        z->held_warned = 1;
        retry_later(z); /* ephemeral: it goes when that session ends or expires */
    }
}

static void on_join_reply(node_zk_t *z, const zk_req_t *r, const zk_ev_t *e)
{
    if (r->round != z->join_round)
        return;
    switch (r->op) {
    case OP_MKDIR:
        on_mkdir(z, r, e);
        break;
    case OP_ACL_GET:
    case OP_ACL_SET:
        on_acl_reply(z, r, e);
        break;
    case OP_REGISTER:
        if (e->rc == ZOK) {
            z->held_warned = 0;
            find_self(z);
        } else if (e->rc == ZNODEEXISTS) {
            zk_req_t *q = req_new(z, OP_OWNER, z->join_round, r->path);
            submitted(z, q, zoo_aget(z->zh, r->path, 0, on_data_done, q));
        } else {
            join_fail(z, r, e->rc);
        }
        break;
    case OP_OWNER:
        on_owner(z, r, e);
        break;
    case OP_FIND_SELF:
        if (e->rc == ZOK)
            on_find_self(z, e);
        else
            join_fail(z, r, e->rc);
        break;
    default: /* OP_ELECT */
        if (e->rc == ZOK && e->text && strrchr(e->text, '/'))
            joined(z, strrchr(e->text, '/') + 1);
        else
            join_fail(z, r, e->rc);
        break;
    }
}

/* ------------------------------------------------------------------ members */

static void slots_free(node_zk_t *z)
{
    free(z->slots);
    z->slots = NULL;
    z->nslots = z->pending = 0;
}

static int member_cmp(const void *a, const void *b)
{
    const node_zk_member_t *x = a, *y = b;
    return strcmp(x->id, y->id);
}

static void member_parse(node_zk_member_t *m, const char *json)
{
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(o, "url");
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(o, "cluster");
    const cJSON *boot = cJSON_GetObjectItemCaseSensitive(o, "boot");
    if (cJSON_IsString(boot))
        core_copy_trunc(m->boot, sizeof m->boot, boot->valuestring);
    if (cJSON_IsString(url))
        core_copy_trunc(m->url, sizeof m->url, url->valuestring);
    if (cJSON_IsString(cl))
        core_copy_trunc(m->cluster, sizeof m->cluster, cl->valuestring);
    cJSON_Delete(o);
}

static void members_publish(node_zk_t *z)
{
    size_t n = 0;
    node_zk_member_t *list = core_xcalloc(z->nslots ? z->nslots : 1, sizeof *list);
    for (size_t i = 0; i < z->nslots; i++)
        if (z->slots[i].ok)
            list[n++] = z->slots[i].m;
    slots_free(z);
    qsort(list, n, sizeof *list, member_cmp);
    if (n == z->nmembers && (n == 0 || !memcmp(list, z->members, n * sizeof *list))) {
        free(list);
        return;
    }
    free(z->members);
    z->members = list;
    z->nmembers = n;
    if (z->cbs.on_members)
        z->cbs.on_members(z->ud, z->members, z->nmembers);
}

static void members_refresh(node_zk_t *z)
{
    z->members_round++;
    slots_free(z);
    zk_req_t *r = req_new(z, OP_MEMBERS, z->members_round, z->nodes_path);
    submitted(z, r, zoo_aget_children(z->zh, z->nodes_path, 1, on_strings_done, r));
}

static void on_member_list(node_zk_t *z, const zk_ev_t *e)
{
    z->slots = core_xcalloc(e->count ? e->count : 1, sizeof *z->slots);
    z->nslots = e->count;
    z->members_failed = 0;
    for (size_t i = 0; i < e->count; i++) {
        char path[ZK_PATH_MAX];
        core_copy_trunc(z->slots[i].m.id, sizeof z->slots[i].m.id, e->names[i]);
        snprintf(path, sizeof path, "%s/%s", z->nodes_path, e->names[i]);
        zk_req_t *r = req_new(z, OP_MEMBER, z->members_round, path);
        r->index = i;
        if (submitted(z, r, zoo_aget(z->zh, path, 0, on_data_done, r)) == 0)
            z->pending++;
        else
            z->members_failed = 1;
    }
    if (!z->pending && !z->members_failed)
        members_publish(z);
}

static void on_member(node_zk_t *z, const zk_req_t *r, const zk_ev_t *e)
{
    zk_slot_t *s = &z->slots[r->index];
    s->done = 1;
    if (e->rc == ZOK) {
        s->ok = 1;
        member_parse(&s->m, e->text);
    } else if (e->rc != ZNONODE) {
        z->members_failed = 1; /* a retry lists again */
        retry_later(z);
    }
    if (--z->pending == 0 && !z->members_failed)
        members_publish(z);
}

static void on_members_reply(node_zk_t *z, const zk_req_t *r, const zk_ev_t *e)
{
    if (r->round != z->members_round)
        return;
    if (r->op == OP_MEMBER) {
        on_member(z, r, e);
    } else if (e->rc == ZOK) {
        on_member_list(z, e);
    } else {
        CORE_WARN("zk: listing %s: %s", r->path, zerror(e->rc));
        retry_later(z);
    }
}

/* ------------------------------------------------------------------ election */

typedef struct zk_cand {
    const char *name;
    int64_t seq;
} zk_cand_t;

static int cand_cmp(const void *a, const void *b)
{
    const zk_cand_t *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void election_refresh(node_zk_t *z)
{
    if (!z->my_name[0] || !z->zh)
        return;
    z->eval_round++;
    zk_req_t *r = req_new(z, OP_ELECTION, z->eval_round, z->election_path);
    submitted(z, r, zoo_aget_children(z->zh, z->election_path, 0, on_strings_done, r));
}

static void eval_get(node_zk_t *z, zk_op_t op, const char *dir, const char *name, int watch)
{
    char path[ZK_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    zk_req_t *r = req_new(z, op, z->eval_round, path);
    submitted(z, r, zoo_aget(z->zh, path, watch, on_data_done, r));
}

/* Our znode went while the session lives (someone deleted it): join again. */
static void rejoin_election(node_zk_t *z)
{
    CORE_WARN("zk: our election znode %s is gone; joining again", z->my_name);
    z->my_name[0] = '\0';
    leader_lost(z);
    z->join_round++;
    find_self(z);
}

static void election_decide(node_zk_t *z, const zk_ev_t *e)
{
    zk_cand_t *c = core_xcalloc(e->count ? e->count : 1, sizeof *c);
    size_t n = 0, mine = SIZE_MAX;
    for (size_t i = 0; i < e->count; i++) {
        int64_t seq = name_seq(e->names[i]);
        if (seq >= 0)
            c[n++] = (zk_cand_t){e->names[i], seq};
    }
    qsort(c, n, sizeof *c, cand_cmp);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(c[i].name, z->my_name))
            mine = i;
    if (mine == SIZE_MAX) {
        rejoin_election(z);
    } else if (mine == 0) {
        core_copy_trunc(z->leader.name, sizeof z->leader.name, z->my_name);
        leader_report(z, z->self.id, z->self.cluster, z->my_seq, 1);
    } else {
        eval_get(z, OP_WATCH_PRED, z->election_path, c[mine - 1].name, 1);
        if (strcmp(z->leader.name, c[0].name) != 0) {
            leader_lost(z); /* the next leader is not known yet */
            core_copy_trunc(z->leader.name, sizeof z->leader.name, c[0].name);
            z->leader.epoch = c[0].seq;
        }
        /* also when an earlier lookup was cut short by a newer round */
        if (!z->leader.reported)
            eval_get(z, OP_LEADER_ID, z->election_path, c[0].name, 0);
    }
    free(c);
}

static void on_leader_info(node_zk_t *z, const zk_ev_t *e)
{
    char id[64];
    node_zk_member_t m;
    memset(&m, 0, sizeof m);
    member_parse(&m, e->text);
    /* the leader's id is the last path element */
    const char *slash = strrchr(e->req->path, '/');
    core_copy_trunc(id, sizeof id, slash ? slash + 1 : "");
    leader_report(z, id, m.cluster, z->leader.epoch, 0);
}

static void on_election_reply(node_zk_t *z, const zk_req_t *r, const zk_ev_t *e)
{
    if (r->round != z->eval_round)
        return;
    if (e->rc == ZNONODE && r->op == OP_WATCH_PRED) {
        election_refresh(z); /* it went meanwhile: look again */
        return;
    }
    if (e->rc != ZOK) {
        CORE_WARN("zk: %s: %s", r->path, zerror(e->rc));
        retry_later(z);
        return;
    }
    if (r->op == OP_WATCH_PRED)
        return; /* watching it now */
    if (r->op == OP_ELECTION)
        election_decide(z, e);
    else if (r->op == OP_LEADER_ID && e->text && e->text[0] && !strchr(e->text, '/'))
        eval_get(z, OP_LEADER_INFO, z->nodes_path, e->text, 0);
    else if (r->op == OP_LEADER_INFO)
        on_leader_info(z, e);
    else
        retry_later(z); /* not a node id: look again later */
}

/* ------------------------------------------------------------------ session */

static int auth_add(node_zk_t *z)
{
    if (!z->auth[0] || z->conn->auth_added)
        return ZOK;
    int rc = zoo_add_auth(z->zh, "digest", z->auth, (int)strlen(z->auth), NULL, NULL);
    z->conn->auth_added = rc == ZOK;
    return rc;
}

static int session_open(node_zk_t *z)
{
    zk_conn_t *c = core_xcalloc(1, sizeof *c);
    c->z = z;
    c->gen = ++z->gen;
    /* zookeeper_init resolves the host names: quick for the addresses we use */
    zhandle_t *zh = zookeeper_init(z->hosts, on_watch, z->timeout_ms, NULL, c, 0);
    if (!zh) {
        free(c);
        return -1;
    }
    z->zh = zh;
    z->conn = c;
    /* before any request; the library re-sends it on every reconnect. Its
     * answer ZINVALIDSTATE also means "between two connection attempts" (a
     * server refused, as one being restarted does): added once connected. */
    int rc = auth_add(z);
    if (rc != ZOK && (rc != ZINVALIDSTATE || is_unrecoverable(zh))) {
        CORE_ERROR("zk: cannot add the ZooKeeper credentials: %s", zerror(rc));
        zookeeper_close(zh); /* never connected: nothing to wait for */
        free(c);
        z->zh = NULL;
        z->conn = NULL;
        return -1;
    }
    return 0;
}

typedef struct zk_closer {
    zhandle_t *zh;
    zk_conn_t *conn;
} zk_closer_t;

static void closer_done(node_zk_t *z)
{
    pthread_mutex_lock(&z->lock);
    z->closers--;
    pthread_cond_broadcast(&z->closed);
    pthread_mutex_unlock(&z->lock);
}

static void *closer_main(void *arg)
{
    zk_closer_t *c = arg;
    node_zk_t *z = c->conn->z;
    zookeeper_close(c->zh);
    free(c->conn);
    free(c);
    closer_done(z);
    return NULL;
}

/* An expired handle is closed on a thread of its own: zookeeper_close
 * joins the library's threads, which must not hold up the loop. */
static void session_retire(node_zk_t *z)
{
    zk_closer_t *c = core_xcalloc(1, sizeof *c);
    pthread_attr_t attr;
    pthread_t tid;
    c->zh = z->zh;
    c->conn = z->conn;
    z->zh = NULL;
    z->conn = NULL;
    pthread_mutex_lock(&z->lock);
    z->closers++;
    pthread_mutex_unlock(&z->lock);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&tid, &attr, closer_main, c) != 0)
        closer_main(c); /* no thread to be had: close it here, once */
    pthread_attr_destroy(&attr);
}

static void session_reset(node_zk_t *z);

static void on_connected(node_zk_t *z)
{
    if (auth_add(z) != ZOK) { /* deferred by session_open: before any request */
        CORE_ERROR("zk: cannot add the ZooKeeper credentials; joining again later");
        session_reset(z);
        retry_later(z);
        return;
    }
    const clientid_t *cid = zoo_client_id(z->zh);
    ev_timer_stop(z->loop, &z->lost);
    z->connected = 1;
    z->session = cid ? cid->client_id : 0;
    CORE_INFO("zk: connected, session %016" PRIx64, (uint64_t)z->session);
    if (!z->my_name[0]) {
        join_start(z);
    } else {
        /* requests lost with the connection are made again */
        members_refresh(z);
        election_refresh(z);
    }
}

static void on_disconnected(node_zk_t *z)
{
    int ms = z->zh ? zoo_recv_timeout(z->zh) : 0;
    z->connected = 0;
    CORE_WARN("zk: disconnected; keeping state for now");
    if (!ev_is_active(&z->lost)) {
        ev_timer_set(&z->lost, (ms > 0 ? ms : z->timeout_ms) / 1000., 0.);
        ev_timer_start(z->loop, &z->lost);
    }
}

/* The session is over: no leader known, nothing of it kept. */
static void session_reset(node_zk_t *z)
{
    leader_lost(z);
    ev_timer_stop(z->loop, &z->lost);
    z->connected = 0;
    z->my_name[0] = '\0';
    z->paths_ok = 0;
    z->session = 0;
    if (z->zh)
        session_retire(z);
}

static void on_expired(node_zk_t *z)
{
    CORE_WARN("zk: session %016" PRIx64 " expired; joining again", (uint64_t)z->session);
    session_reset(z);
    if (session_open(z) != 0)
        retry_later(z);
}

/* The server refused the credentials themselves (digest accepts any
 * user:password, so this is a server set up for something else). */
static void on_auth_failed(node_zk_t *z)
{
    CORE_ERROR("zk: ZooKeeper refused this node's credentials (auth failed); retrying");
    session_reset(z);
    retry_later(z); /* not at once: the next handle would fail the same way */
}

static void on_session_event(node_zk_t *z, int state)
{
    if (state == ZOO_CONNECTED_STATE)
        on_connected(z);
    else if (state == ZOO_CONNECTING_STATE)
        on_disconnected(z);
    else if (state == ZOO_EXPIRED_SESSION_STATE)
        on_expired(z);
    else if (state == ZOO_AUTH_FAILED_STATE)
        on_auth_failed(z);
}

static void on_watch_event(node_zk_t *z, const zk_ev_t *e)
{
    if (e->type == ZOO_SESSION_EVENT) {
        on_session_event(z, e->state);
        return;
    }
    if (!z->connected)
        return; /* on_connected refreshes everything */
    if (e->text && !strcmp(e->text, z->nodes_path))
        members_refresh(z);
    /* a member change may be a new leader; a predecessor event surely matters */
    election_refresh(z);
}

static void on_reply(node_zk_t *z, const zk_req_t *r, const zk_ev_t *e)
{
    switch (r->op) {
    case OP_MKDIR:
    case OP_REGISTER:
    case OP_OWNER:
    case OP_FIND_SELF:
    case OP_ELECT:
    case OP_ACL_GET:
    case OP_ACL_SET:
        on_join_reply(z, r, e);
        break;
    case OP_MEMBERS:
    case OP_MEMBER:
        on_members_reply(z, r, e);
        break;
    default:
        on_election_reply(z, r, e);
        break;
    }
}

static zk_ev_t *ev_take_all(node_zk_t *z)
{
    pthread_mutex_lock(&z->lock);
    zk_ev_t *batch = z->head;
    z->head = z->tail = NULL;
    pthread_mutex_unlock(&z->lock);
    return batch;
}

static void on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    node_zk_t *z = w->data;
    zk_ev_t *e = ev_take_all(z), *next;
    (void)loop;
    (void)revents;
    for (; e; e = next) {
        next = e->next;
        if (!e->req && e->gen == z->gen)
            on_watch_event(z, e);
        else if (e->req && e->req->gen == z->gen && z->zh)
            on_reply(z, e->req, e);
        if (e->req)
            req_free(z, e->req);
        ev_free(e);
    }
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    node_zk_t *z = w->data;
    (void)loop;
    (void)revents;
    if (!z->zh) {
        if (session_open(z) != 0)
            retry_later(z);
    } else if (z->connected) {
        if (z->paths_ok)
            members_refresh(z);
        if (z->my_name[0])
            election_refresh(z);
        else
            join_start(z);
    }
}

/* Cut off longer than the session lasts: the server has expired us by now,
 * so stop counting on (or acting as) the leader we knew. */
static void on_lost(struct ev_loop *loop, ev_timer *w, int revents)
{
    node_zk_t *z = w->data;
    (void)loop;
    (void)revents;
    if (z->connected)
        return;
    CORE_WARN("zk: disconnected longer than the session timeout");
    leader_lost(z);
}

/* ------------------------------------------------------------------ public */

static int root_valid(const char *root)
{
    size_t len = root ? strlen(root) : 0;
    if (len < 2 || len >= ZK_ROOT_MAX || root[0] != '/' || root[len - 1] == '/')
        return 0;
    return strstr(root, "//") == NULL;
}

static int self_valid(const node_zk_member_t *self)
{
    return self && self->id[0] && !strchr(self->id, '/') && strcmp(self->id, ".") != 0 &&
           strcmp(self->id, "..") != 0 && memchr(self->id, '\0', sizeof self->id) &&
           memchr(self->url, '\0', sizeof self->url) &&
           memchr(self->cluster, '\0', sizeof self->cluster) &&
           memchr(self->boot, '\0', sizeof self->boot);
}

static node_zk_t *zk_new(struct ev_loop *loop, const char *hosts, const char *root,
                         int session_timeout_ms, const node_zk_member_t *self,
                         const node_zk_cbs_t *cbs, void *ud)
{
    node_zk_t *z = core_xcalloc(1, sizeof *z);
    z->loop = loop;
    z->hosts = core_xstrdup(hosts);
    core_copy_trunc(z->root, sizeof z->root, root);
    snprintf(z->nodes_path, sizeof z->nodes_path, "%s/nodes", root);
    snprintf(z->election_path, sizeof z->election_path, "%s/election", root);
    z->timeout_ms = session_timeout_ms;
    core_copy_trunc(z->auth, sizeof z->auth, zk_auth_default);
    z->acl = z->auth[0] ? &ZOO_CREATOR_ALL_ACL : &ZOO_OPEN_ACL_UNSAFE;
    for (const char *p = root + 1; *p; p++)
        z->root_step += *p == '/';
    z->self = *self;
    z->cbs = *cbs;
    z->ud = ud;
    pthread_mutex_init(&z->lock, NULL);
    pthread_cond_init(&z->closed, NULL);
    ev_async_init(&z->wake, on_wake);
    z->wake.data = z;
    ev_async_start(loop, &z->wake);
    ev_timer_init(&z->retry, on_retry, ZK_RETRY_SEC, 0.);
    z->retry.data = z;
    ev_timer_init(&z->lost, on_lost, 1., 0.);
    z->lost.data = z;
    return z;
}

node_zk_t *node_zk_start(struct ev_loop *loop, const char *hosts, const char *root,
                         int session_timeout_ms, const node_zk_member_t *self,
                         const node_zk_cbs_t *cbs, void *ud)
{
    if (!loop || !hosts || !hosts[0] || !root_valid(root) || session_timeout_ms <= 0 ||
        !self_valid(self) || !cbs)
        return NULL;
    zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
    node_zk_t *z = zk_new(loop, hosts, root, session_timeout_ms, self, cbs, ud);
    if (!z->auth[0])
        CORE_WARN("zk: no ZooKeeper credentials (--zk-auth-file or CHAT_ZK_AUTH): %s is open "
                  "to anyone who reaches ZooKeeper", root);
    if (session_open(z) != 0) {
        CORE_ERROR("zk: cannot use ZooKeeper hosts '%s'", hosts);
        node_zk_stop(z);
        return NULL;
    }
    return z;
}

void node_zk_stop(node_zk_t *z)
{
    if (!z)
        return;
    ev_timer_stop(z->loop, &z->retry);
    ev_timer_stop(z->loop, &z->lost);
    /* zookeeper_close blocks briefly (it sends closeSession and joins the
     * library's threads): acceptable at stop only, and it makes our
     * ephemeral znodes go at once instead of at session expiry. */
    if (z->zh)
        zookeeper_close(z->zh);
    free(z->conn);
    pthread_mutex_lock(&z->lock);
    while (z->closers > 0)
        pthread_cond_wait(&z->closed, &z->lock);
    pthread_mutex_unlock(&z->lock);
    ev_async_stop(z->loop, &z->wake);
    for (zk_ev_t *e = ev_take_all(z), *next; e; e = next) {
        next = e->next;
        ev_free(e);
    }
    while (z->reqs)
        req_free(z, z->reqs);
    slots_free(z);
    free(z->members);
    free(z->hosts);
    sodium_memzero(z->auth, sizeof z->auth);
    pthread_cond_destroy(&z->closed);
    pthread_mutex_destroy(&z->lock);
    free(z);
}

int node_zk_set_auth(const char *user_password)
{
    const char *colon = user_password ? strchr(user_password, ':') : NULL;
    size_t len = user_password ? strlen(user_password) : 0;
    if (len && (len >= sizeof zk_auth_default || !colon || colon == user_password || !colon[1]))
        return -1;
    sodium_memzero(zk_auth_default, sizeof zk_auth_default);
    if (len)
        memcpy(zk_auth_default, user_password, len);
    return 0;
}

int node_zk_is_member(const node_zk_t *z, const char *id)
{
    if (!z || !id)
        return 0;
    for (size_t i = 0; i < z->nmembers; i++)
        if (!strcmp(z->members[i].id, id))
            return 1;
    return 0;
}

int node_zk_joined(const node_zk_t *z)
{
    return z && z->connected && z->my_name[0];
}

int node_zk_is_leader(const node_zk_t *z)
{
    return z && z->leader.reported && z->leader.is_self;
}
