/* The action table: parse, rate-limit, gate on login, hand to a handler. */
#include <string.h>

#include "node/node.h"

typedef struct action {
    const char *name;
    node_action_fn fn;
    int before_login; /* allowed without a session */
} action_t;

static const action_t actions[] = {
    {"register", node_act_register, 1},
    {"login", node_act_login, 1},
    {"ping", node_act_ping, 1},
    {"logout", node_act_logout, 0},
    {"user_info", node_act_user_info, 0},
    {"chat", node_act_chat, 0},
    {"ack", node_act_ack, 0},
    {"history", node_act_history, 0},
    {"friend_request", node_act_friend_request, 0},
    {"friend_reply", node_act_friend_reply, 0},
    {"friends", node_act_friends, 0},
    {"group_create", node_act_group_create, 0},
    {"group_join", node_act_group_join, 0},
    {"group_leave", node_act_group_leave, 0},
    {"groups", node_act_groups, 0},
    {"group_members", node_act_group_members, 0},
    {"group_chat", node_act_group_chat, 0},
    {"room_create", node_act_room_create, 0},
    {"room_join", node_act_room_join, 0},
    {"room_leave", node_act_room_leave, 0},
    {"rooms", node_act_rooms, 0},
    {"room_members", node_act_room_members, 0},
    {"room_chat", node_act_room_chat, 0},
    {"popular", node_act_popular, 0},
};

static const action_t *find_action(const char *name)
{
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
        if (strcmp(actions[i].name, name) == 0)
            return &actions[i];
    return NULL;
}

/* Token bucket: rate per second, up to burst. 1 = allowed. */
static int rate_allow(node_sess_t *s)
{
    const node_config_t *c = &s->node->cfg;
    uint64_t now = core_mono_ms();
    s->tokens += (double)(now - s->tokens_ms) * c->rate / 1000.0;
    if (s->tokens > c->burst)
        s->tokens = c->burst;
    s->tokens_ms = now;
    if (s->tokens < 1.0)
        return 0;
    s->tokens -= 1.0;
    return 1;
}

/* A request that waits for the ones before it to be answered. */
typedef struct node_queued {
    struct node_queued *next;
    node_req_t *req;
    const action_t *action;
    proto_req_t pr;             /* owns the parsed frame */
} node_queued_t;

/* Beyond this many waiting requests a connection gets 429: the rate limit
 * (burst 100 by default) keeps a well-behaved client below it. */
#define QUEUE_MAX 128

/* Chats and acks run side by side (their answers still go out in order,
 * through the reply slots): a receiver that acks every message keeps up
 * with a sender that has several in flight, which one ack at a time did
 * not when commits were slow (its queue filled and it got 429s). */
static int lane_of(const action_t *a)
{
    return a->fn == node_act_chat || a->fn == node_act_ack ? NODE_LANE_MSG : NODE_LANE_OTHER;
}

/* Nothing runs, or only chats and acks run and this is one of them. */
static int can_start(const node_sess_t *s, const action_t *a)
{
    return s->running_other == 0 && (s->running_msg == 0 || lane_of(a) == NODE_LANE_MSG);
}

/* Runs the handler, with the login gate checked now: a request queued
 * behind a login runs as the logged-in user. */
static void start(node_sess_t *s, node_req_t *r, const action_t *a, const cJSON *data)
{
    r->lane = lane_of(a);
    if (r->lane == NODE_LANE_MSG)
        s->running_msg++;
    else
        s->running_other++;
    if (!a->before_login && !s->logged_in)
        node_req_fail(r, PROTO_UNAUTHORIZED, "not logged in");
    else
        a->fn(r, data);
}

static void pump(node_sess_t *s)
{
    if (s->pumping)
        return; /* a handler answered at once: the outer loop goes on */
    s->pumping = 1;
    node_sess_ref(s);
    while (s->queue_head && can_start(s, s->queue_head->action)) {
        node_queued_t *q = s->queue_head;
        s->queue_head = q->next;
        if (!s->queue_head)
            s->queue_tail = NULL;
        s->queued--;
        start(s, q->req, q->action, q->pr.data);
        proto_req_free(&q->pr);
        free(q);
    }
    s->pumping = 0;
    node_sess_unref(s);
}

void node_dispatch_done(node_sess_t *s, int lane)
{
    if (lane == NODE_LANE_MSG)
        s->running_msg--;
    else
        s->running_other--;
    pump(s);
}

void node_dispatch_drop_queue(node_sess_t *s)
{
    while (s->queue_head) {
        node_queued_t *q = s->queue_head;
        s->queue_head = q->next;
        s->queued--;
        node_req_fail(q->req, PROTO_UNAVAILABLE, "connection closed");
        proto_req_free(&q->pr);
        free(q);
    }
    s->queue_tail = NULL;
}

static void enqueue(node_sess_t *s, node_req_t *r, const action_t *a, proto_req_t *pr)
{
    node_queued_t *q = core_xcalloc(1, sizeof *q);
    q->req = r;
    q->action = a;
    q->pr = *pr; /* takes the parsed frame */
    memset(pr, 0, sizeof *pr);
    if (s->queue_tail)
        s->queue_tail->next = q;
    else
        s->queue_head = q;
    s->queue_tail = q;
    s->queued++;
}

void node_dispatch(node_sess_t *s, const char *msg, size_t len)
{
    node_t *n = s->node;
    proto_req_t pr;
    proto_err_t e;
    n->metrics.requests_total++;
    if (proto_req_parse(msg, len, &pr, &e) != 0) {
        /* bad envelopes answer as action "error" and keep the connection */
        proto_req_t bad = {.id = pr.id, .action = "error"};
        node_req_fail_e(node_req_new(s, &bad), &e);
        proto_req_free(&pr);
        return;
    }
    node_req_t *r = node_req_new(s, &pr);
    const action_t *a = find_action(pr.action);
    /* refusals take no effect, so they answer at once (still in order) */
    if (!rate_allow(s)) {
        n->metrics.rate_limited_total++;
        node_req_fail(r, PROTO_RATE_LIMITED, "rate limit exceeded");
    } else if (!a && !s->logged_in && !s->queue_head && !s->running_other) {
        node_req_fail(r, PROTO_UNAUTHORIZED, "not logged in");
    } else if (!a) {
        proto_fail(&e, PROTO_NOT_FOUND, "unknown action '%.40s'", pr.action);
        node_req_fail_e(r, &e);
    } else if (!s->queue_head && can_start(s, a)) {
        start(s, r, a, pr.data);
    } else if (s->queued < QUEUE_MAX) {
        enqueue(s, r, a, &pr);
    } else {
        n->metrics.rate_limited_total++;
        node_req_fail(r, PROTO_RATE_LIMITED, "too many requests waiting");
    }
    proto_req_free(&pr);
}
