/* The worker: each client's state machine and the scenarios.
 *
 * Phases: SETUP (rate-limited connects, register/login, group/room setup)
 * -> "ready" to the parent -> wait for "go" -> RUN for --warmup + --duration -> DRAIN
 * (no new sends; wait for answers and deliveries up to --grace) -> result
 * line to the parent. Every phase has a deadline. */
#include "bench/bench.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "core/core.h"
#include "proto/proto.h"

#define TICK_S 0.005
#define PACE_MIN_S 0.0002 /* --pace poisson: the shortest wait between wakes */
#define SETUP_INFLIGHT_MAX 512 /* connects + logins in progress per worker */
#define GO_TIMEOUT_S 120.0      /* past the setup deadline: the parent is gone */
#define QUIET_US 500000        /* drain ends this long after the last delivery */
#define REQ_MAX (CORE_WS_MAX_MESSAGE - 1024)
#define BENCH_SRC_SPREAD 8      /* source addresses per worker */
#define ID_KIND_BITS 4
#define NODE_SKIP_US 2000000    /* --reconnect: a node that refused is skipped this long */
#define RETRY_S 0.2             /* --reconnect: the first wait before trying the next node */
#define RETRY_MAX_S 2.0         /* --reconnect: the longest (each refusal doubles the wait) */
#define ASK_TIMEOUT_S 5.0       /* --ask-gateway: how long a GET /servers may take */
#define PUSH_SLACK_S 30.0       /* push: how late the parent's last push may be */

enum phase { PH_SETUP, PH_WAIT_GO, PH_RUN, PH_DRAIN, PH_DONE };
enum cstate { C_NEW, C_OPENING, C_AUTH, C_JOINING, C_WAIT_SHARED, C_READY, C_FAILED };
enum kind { K_REGISTER = 1, K_LOGIN, K_CHAT, K_ACK, K_GCREATE, K_GJOIN, K_RCREATE, K_RJOIN, K_PING };

/* Anti-replay window per (receiver, sender slot): max is the highest
 * seq + 1 seen; bit d of win is seq max-2-d. */
typedef struct seen {
    uint32_t max;
    uint64_t win;
} seen_t;

typedef struct worker worker_t;

typedef struct client {
    bench_ws_t *ws;
    client_gw_t *gw;   /* --ask-gateway: the GET /servers in flight */
    worker_t *w;
    seen_t *seen;      /* one per sender slot */
    char *token;       /* login scenario: the resume token */
    uint64_t t0_us;    /* login scenario: when this attempt started */
    uint64_t lost_us;  /* --reconnect: when the server ended its connection */
    uint64_t retry_at_us; /* --reconnect: when to connect again */
    uint32_t gidx;     /* global index: user name and node */
    uint32_t seq;      /* next message sequence */
    uint32_t next_id;
    uint16_t inflight; /* chats without an answer */
    uint8_t state;
    uint8_t relogin;   /* this attempt uses the token (login scenario, --reconnect) */
    uint8_t node;      /* index of its target in o->nodes */
    uint8_t retries;   /* --reconnect: attempts refused since it was last logged in */
    uint8_t last_node; /* --ask-gateway: where it was last logged in */
    uint8_t sticky;    /* --ask-gateway: the next attempt tries last_node first */
    uint8_t sticky_try; /* --ask-gateway: this attempt is that try */
} client_t;

typedef struct group {
    char id[PROTO_GROUP_ID_MAX + 1];
    int first, count; /* local client range */
    int joined;
    int created;
} group_t;

struct worker {
    const bench_opts_t *o;
    struct ev_loop *loop;
    int index, first, count;
    client_t *c;
    group_t *groups;
    int ngroups;
    int nslots;        /* sender slots each receiver tracks */
    int src_bind;      /* connect from 127.0.K.(2 + index) */
    int error_told;    /* the first error answer went to stderr */
    int miss_told;     /* --ask-gateway: the first miss went to stderr */
    int connect_told;  /* the first failed connect() went to stderr */
    int ctl;
    ev_io ctl_io;
    ev_timer tick;
    ev_timer pace;     /* --pace poisson: the next send */
    double next_send;  /* --pace poisson: when it is due (ev time) */
    int phase;
    int next_connect;
    int setup_busy;
    int room_created;
    int rc;
    int rr;            /* round-robin position for rate mode */
    double connect_credit, send_credit;
    double last_tick;
    uint64_t phase_deadline_us, run_start_us, run_end_us, last_delivery_us;
    uint64_t measure_from_us; /* run_start_us + --warmup: later sends count in lat */
    uint64_t node_skip_until[64]; /* --reconnect: refused lately */
    int *requeue;      /* --reconnect: clients waiting to connect again, a
                        * min-heap by retry_at_us (a storm queues them all) */
    int *due;          /* scratch for reconnect_due */
    int nrequeue;
    unsigned seed;
    bench_result_t res;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* system-wide: valid across workers */
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* the storm's span is compared across workers */
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void client_start(client_t *c);
static void worker_check_setup(worker_t *w);

/* ------------------------------------------------------------------ names */

static void user_name(const worker_t *w, uint32_t gidx, char *out, size_t len)
{
    snprintf(out, len, "%s%ld", w->o->user_prefix, (long)gidx + w->o->user_offset);
}

/* --password-format with its one "%d" replaced by the user's index. */
static void user_password(const worker_t *w, uint32_t gidx, char *out, size_t len)
{
    const char *f = w->o->password_format, *d = strstr(f, "%d");
    if (!d) {
        core_copy_trunc(out, len, f);
        return;
    }
    snprintf(out, len, "%.*s%ld%s", (int)(d - f), f, (long)gidx + w->o->user_offset, d + 2);
}

static int is_sender(const worker_t *w, int i)
{
    switch (w->o->scenario) {
    case BENCH_DIRECT:
        return (i ^ 1) < w->count;
    case BENCH_GROUP: {
        const group_t *g = &w->groups[i / w->o->group_size];
        return i - g->first < w->o->senders && g->count > 1;
    }
    case BENCH_ROOM:
        return w->c[i].gidx == 0;
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------ sending */

static int send_req(client_t *c, int kind, const char *action, const char *data_fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int send_req(client_t *c, int kind, const char *action, const char *data_fmt, ...)
{
    char buf[REQ_MAX];
    uint32_t id = (c->next_id++ << ID_KIND_BITS) | (uint32_t)kind;
    int n = snprintf(buf, sizeof buf, "{\"id\":%u,\"action\":\"%s\",\"data\":", id, action);
    va_list ap;
    va_start(ap, data_fmt);
    n += vsnprintf(buf + n, sizeof buf - (size_t)n, data_fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n + 2 > sizeof buf)
        return -1;
    buf[n++] = '}';
    return bench_ws_send(c->ws, buf, (size_t)n);
}

/* Message text: "b SLOT SEQ SENT_US RUN " then filler up to --msg-size. */
static int send_chat(client_t *c)
{
    worker_t *w = c->w;
    int i = (int)(c - w->c);
    char text[4097];
    int slot = w->o->scenario == BENCH_GROUP ? i - w->groups[i / w->o->group_size].first : 0;
    int n = snprintf(text, sizeof text, "b %d %u %llu %x ", slot, c->seq,
                     (unsigned long long)now_us(), w->o->run_id);
    while (n < w->o->msg_size && n < (int)sizeof text - 1)
        text[n++] = 'x';
    text[n] = '\0';
    int rc;
    if (w->o->scenario == BENCH_DIRECT) {
        char to[64];
        user_name(w, w->c[i ^ 1].gidx, to, sizeof to);
        rc = send_req(c, K_CHAT, "chat", "{\"to\":\"%s\",\"message\":\"%s\"}", to, text);
    } else if (w->o->scenario == BENCH_GROUP) {
        rc = send_req(c, K_CHAT, "group_chat", "{\"group\":\"%s\",\"message\":\"%s\"}",
                      w->groups[i / w->o->group_size].id, text);
    } else {
        rc = send_req(c, K_CHAT, "room_chat", "{\"room\":\"%s\",\"message\":\"%s\"}", w->o->room,
                      text);
    }
    if (rc == 0) {
        c->seq++;
        c->inflight++;
    }
    return rc;
}

static int can_send(const client_t *c)
{
    return c->state == C_READY && c->inflight < c->w->o->window &&
           (long)c->seq < c->w->o->max_msgs;
}

/* Closed loop: keep every sender's window full. */
static void fill_window(client_t *c)
{
    while (c->w->phase == PH_RUN && c->w->o->rate <= 0 && can_send(c))
        if (send_chat(c) != 0)
            return;
}

static double worker_rate(const worker_t *w)
{
    /* the room's one sender lives in worker 0 and gets the whole rate */
    return w->o->scenario == BENCH_ROOM ? w->o->rate : w->o->rate / w->o->procs;
}

/* Rate mode: spend `due` more sends round-robin over senders with room. */
static void send_paced(worker_t *w, double due)
{
    double per_worker = worker_rate(w);
    w->send_credit += due;
    if (w->send_credit > per_worker * 0.1 + 1)
        w->send_credit = per_worker * 0.1 + 1; /* no catch-up bursts after a stall */
    for (int tries = 0; w->send_credit >= 1 && tries < w->count; tries++) {
        client_t *c = &w->c[w->rr];
        w->rr = (w->rr + 1) % w->count;
        if (!is_sender(w, (int)(c - w->c)) || !can_send(c))
            continue;
        if (send_chat(c) == 0) {
            w->send_credit -= 1;
            tries = -1;
        }
    }
}

static int paced(const worker_t *w)
{
    return w->o->rate > 0 && w->o->scenario >= BENCH_DIRECT && w->o->scenario != BENCH_PUSH;
}

/* The gap to the next of a Poisson stream of sends at the worker's rate. */
static double pace_gap(worker_t *w)
{
    double u = ((double)rand_r(&w->seed) + 1.0) / ((double)RAND_MAX + 2.0); /* (0, 1) */
    return -log(u) / worker_rate(w);
}

/* --pace poisson: the sends that fell due since the last wake go now, and
 * the timer waits for the next one (at least PACE_MIN_S: at high rates a
 * wake sends a few). A tick's burst of 5 ms worth of messages at once made
 * each wait behind the others: the latency measured the burst. */
static void on_pace(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    worker_t *w = t->data;
    if (w->phase != PH_RUN)
        return;
    double now = ev_now(loop), due = 0;
    if (w->next_send < now - 0.1)
        w->next_send = now - 0.1; /* after a stall: send_paced caps the credit too */
    for (; w->next_send <= now; w->next_send += pace_gap(w))
        due += 1;
    if (due > 0)
        send_paced(w, due);
    double wait = w->next_send - now;
    ev_timer_set(t, wait < PACE_MIN_S ? PACE_MIN_S : wait, 0.);
    ev_timer_start(loop, t);
}

static void pace_start(worker_t *w)
{
    w->next_send = ev_now(w->loop) + pace_gap(w);
    ev_timer_set(&w->pace, w->next_send - ev_now(w->loop), 0.);
    ev_timer_start(w->loop, &w->pace);
}

/* ------------------------------------------------------------------ setup steps */

static void fail_waiting(worker_t *w, int from, int to);

static void client_fail(client_t *c)
{
    worker_t *w = c->w;
    if (c->state == C_FAILED)
        return;
    if (c->state != C_READY && w->phase == PH_SETUP)
        w->setup_busy--;
    w->res.errors++;
    c->state = C_FAILED;
    if (c->ws) {
        bench_ws_t *ws = c->ws;
        c->ws = NULL;
        bench_ws_close(ws);
    }
    /* members waiting for a group or room this client was to create */
    int i = (int)(c - w->c);
    if (w->o->scenario == BENCH_GROUP) {
        group_t *g = &w->groups[i / w->o->group_size];
        if (i == g->first && !g->created)
            fail_waiting(w, g->first, g->first + g->count);
    } else if (w->o->scenario == BENCH_ROOM && i == 0 && !w->room_created) {
        fail_waiting(w, 0, w->count);
    }
    worker_check_setup(w);
}

static void fail_waiting(worker_t *w, int from, int to)
{
    for (int i = from; i < to; i++)
        if (w->c[i].state == C_WAIT_SHARED)
            client_fail(&w->c[i]);
}

static void client_ready(client_t *c)
{
    worker_t *w = c->w;
    c->state = C_READY;
    if (w->phase == PH_SETUP)
        w->setup_busy--;
    worker_check_setup(w);
}

static void send_login(client_t *c)
{
    char user[64], pw[256];
    user_name(c->w, c->gidx, user, sizeof user);
    c->state = C_AUTH;
    if (c->relogin) {
        send_req(c, K_LOGIN, "login", "{\"user\":\"%s\",\"token\":\"%s\"}", user, c->token);
        return;
    }
    user_password(c->w, c->gidx, pw, sizeof pw);
    send_req(c, K_LOGIN, "login", "{\"user\":\"%s\",\"password\":\"%s\"}", user, pw);
}

static void group_join_waiting(worker_t *w, group_t *g)
{
    for (int i = g->first + 1; i < g->first + g->count; i++) {
        client_t *m = &w->c[i];
        if (m->state != C_WAIT_SHARED)
            continue;
        m->state = C_JOINING;
        send_req(m, K_GJOIN, "group_join", "{\"group\":\"%s\"}", g->id);
    }
}

static void room_join_waiting(worker_t *w)
{
    for (int i = 0; i < w->count; i++) {
        client_t *m = &w->c[i];
        if (m->state != C_WAIT_SHARED)
            continue;
        m->state = C_JOINING;
        send_req(m, K_RJOIN, "room_join", "{\"room\":\"%s\"}", w->o->room);
    }
}

/* After login: the scenario's own setup, then READY. */
static void after_login(client_t *c)
{
    worker_t *w = c->w;
    int i = (int)(c - w->c);
    if (w->o->scenario == BENCH_GROUP) {
        group_t *g = &w->groups[i / w->o->group_size];
        if (i == g->first) {
            c->state = C_JOINING;
            send_req(c, K_GCREATE, "group_create", "{\"name\":\"bench-%x-%d-%d\"}", w->o->run_id,
                     w->index, i / w->o->group_size);
        } else {
            c->state = C_WAIT_SHARED;
            if (g->created)
                group_join_waiting(w, g);
        }
    } else if (w->o->scenario == BENCH_ROOM) {
        c->state = C_WAIT_SHARED;
        if (i == 0) {
            c->state = C_JOINING;
            send_req(c, K_RCREATE, "room_create", "{\"room\":\"%s\"}", w->o->room);
        } else if (w->room_created) {
            room_join_waiting(w);
        }
    } else {
        client_ready(c);
    }
}

/* ------------------------------------------------------------------ answers */

static void store_token(client_t *c, const cJSON *data)
{
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(data, "token");
    if (!cJSON_IsString(tok) || strlen(tok->valuestring) > 128 ||
        strspn(tok->valuestring, "0123456789abcdefABCDEF") != strlen(tok->valuestring))
        return;
    free(c->token);
    c->token = core_xstrdup(tok->valuestring);
}

static void on_login_answer(client_t *c, int code, const cJSON *data)
{
    worker_t *w = c->w;
    if (code != 0) {
        client_fail(c);
        return;
    }
    if (w->o->scenario == BENCH_LOGIN || w->o->reconnect_s > 0)
        store_token(c, data);
    if (c->relogin && w->o->scenario != BENCH_LOGIN) { /* --reconnect: back */
        c->retries = 0;
        w->res.reconnected++;
        bench_hist_record(&w->res.lat, now_us() - c->lost_us);
        w->res.last_back_unix_us = wall_us();
        if (!w->res.first_back_unix_us)
            w->res.first_back_unix_us = w->res.last_back_unix_us;
        c->state = C_READY;
        return;
    }
    if (c->relogin) {
        /* a timed resume: record it and start the next one */
        w->res.sent++;
        w->res.delivered++;
        bench_hist_record(&w->res.lat, now_us() - c->t0_us);
        c->state = C_READY;
        bench_ws_t *ws = c->ws;
        c->ws = NULL;
        bench_ws_close(ws);
        if (w->phase == PH_RUN)
            client_start(c);
        return;
    }
    after_login(c);
}

static void on_group_created(client_t *c, int code, const cJSON *data)
{
    worker_t *w = c->w;
    group_t *g = &w->groups[(c - w->c) / w->o->group_size];
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(data, "group");
    if (code != 0 || !cJSON_IsString(id) || strlen(id->valuestring) >= sizeof g->id ||
        strcspn(id->valuestring, "\"\\") != strlen(id->valuestring)) {
        client_fail(c);
        return;
    }
    core_copy_trunc(g->id, sizeof g->id, id->valuestring);
    g->created = 1;
    g->joined++;
    client_ready(c);
    group_join_waiting(w, g);
}

static void on_joined(client_t *c, int kind, int code)
{
    worker_t *w = c->w;
    if (code != 0 && code != PROTO_CONFLICT) {
        client_fail(c);
        return;
    }
    if (kind == K_GJOIN)
        w->groups[(c - w->c) / w->o->group_size].joined++;
    else if (c->gidx != 0)
        w->res.receivers++;
    client_ready(c);
}

static void on_room_created(client_t *c, int code)
{
    worker_t *w = c->w;
    if (code != 0 && code != PROTO_CONFLICT) {
        client_fail(c);
        return;
    }
    w->room_created = 1;
    c->state = C_WAIT_SHARED;
    room_join_waiting(w);
}

static void on_chat_answer(client_t *c, int code)
{
    worker_t *w = c->w;
    if (c->inflight)
        c->inflight--;
    if (code != 0) {
        w->res.errors++;
    } else {
        w->res.sent++;
        if (w->o->scenario == BENCH_DIRECT) {
            w->res.expected++;
        } else if (w->o->scenario == BENCH_GROUP) {
            const group_t *g = &w->groups[(c - w->c) / w->o->group_size];
            w->res.expected += (uint64_t)(g->joined - 1);
        }
    }
    fill_window(c);
}

static void on_answer(client_t *c, const cJSON *o)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(o, "code");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");
    int k = cJSON_IsNumber(id) ? (int)((uint32_t)id->valuedouble & ((1u << ID_KIND_BITS) - 1)) : 0;
    int rc = cJSON_IsNumber(code) ? code->valueint : -1;
    if (rc != 0 && !c->w->error_told) { /* the first refusal says why the rest came */
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(o, "error");
        c->w->error_told = 1;
        fprintf(stderr, "chat-bench: worker %d: first error answer: kind %d, code %d: %s\n",
                c->w->index, k, rc, cJSON_IsString(text) ? text->valuestring : "(no text)");
    }
    switch (k) {
    case K_REGISTER:
        if (rc != 0 && rc != PROTO_CONFLICT)
            client_fail(c);
        else
            send_login(c);
        break;
    case K_LOGIN: on_login_answer(c, rc, data); break;
    case K_CHAT: on_chat_answer(c, rc); break;
    case K_GCREATE: on_group_created(c, rc, data); break;
    case K_GJOIN:
    case K_RJOIN: on_joined(c, k, rc); break;
    case K_RCREATE: on_room_created(c, rc); break;
    case K_PING:
        if (rc == 0) {
            c->w->res.delivered++;
            if (c->w->o->reconnect_s <= 0) /* else lat holds the reconnect times */
                bench_hist_record(&c->w->res.lat, now_us() - c->t0_us);
        } else {
            c->w->res.errors++;
        }
        c->inflight = 0;
        break;
    case K_ACK:
        if (rc != 0)
            c->w->res.errors++;
        break;
    default:
        c->w->res.errors++;
    }
}

/* ------------------------------------------------------------------ deliveries */

static void record_seen(worker_t *w, seen_t *s, uint32_t seq)
{
    uint32_t s1 = seq + 1;
    if (s1 > s->max) {
        uint32_t shift = s1 - s->max;
        s->win = shift >= 64 ? 0 : s->win << shift;
        if (s->max && shift < 64)
            s->win |= 1ull << (shift - 1); /* the old max joins the window */
        s->max = s1;
    } else if (s1 == s->max) {
        w->res.dup++;
        return;
    } else {
        uint32_t d = s->max - s1 - 1;
        if (d >= 64) {
            w->res.reordered++;
        } else if (s->win & (1ull << d)) {
            w->res.dup++;
            return;
        } else {
            s->win |= 1ull << d;
        }
    }
    w->res.delivered++;
}

static void send_ack(client_t *c, const char *msgid)
{
    if (strcspn(msgid, "\"\\") == strlen(msgid) && strlen(msgid) < 128)
        send_req(c, K_ACK, "ack", "{\"msgids\":[\"%s\"]}", msgid);
}

static void on_delivery(client_t *c, const char *event, const cJSON *data)
{
    worker_t *w = c->w;
    const cJSON *msgid = cJSON_GetObjectItemCaseSensitive(data, "msgid");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(data, "message");
    const cJSON *offline = cJSON_GetObjectItemCaseSensitive(data, "offline");
    /* pending items are kept until acked: ack ours and leftovers alike (a
     * push to all is never pending: nothing to ack) */
    if (strcmp(event, "room_chat") != 0 && w->o->scenario != BENCH_PUSH && cJSON_IsString(msgid))
        send_ack(c, msgid->valuestring);
    unsigned slot, seq, run;
    unsigned long long sent;
    if (cJSON_IsTrue(offline) || !cJSON_IsString(text) ||
        sscanf(text->valuestring, "b %u %u %llu %x ", &slot, &seq, &sent, &run) != 4 ||
        run != w->o->run_id || (int)slot >= w->nslots || !c->seen)
        return;
    uint64_t now = now_us();
    uint64_t before = w->res.delivered;
    record_seen(w, &c->seen[slot], seq);
    if (w->res.delivered != before && sent >= w->measure_from_us)
        bench_hist_record(&w->res.lat, now > sent ? now - sent : 0);
    w->last_delivery_us = now;
}

static void on_text(bench_ws_t *ws, const char *msg, size_t len, void *ud)
{
    (void)ws;
    client_t *c = ud;
    cJSON *o = cJSON_ParseWithLength(msg, len);
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
    if (!cJSON_IsObject(o)) {
        c->w->res.errors++;
    } else if (cJSON_IsString(ev)) {
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");
        const char *name = ev->valuestring;
        if (!strcmp(name, "chat") || !strcmp(name, "group_chat") || !strcmp(name, "room_chat") ||
            !strcmp(name, "system"))
            on_delivery(c, name, data);
        else if (!strcmp(name, "kicked"))
            c->w->res.errors++;
    } else {
        on_answer(c, o);
    }
    cJSON_Delete(o);
}

/* ------------------------------------------------------------------ connection */

static void on_open(bench_ws_t *ws, void *ud)
{
    (void)ws;
    client_t *c = ud;
    char user[64], pw[256];
    if (c->w->o->do_register && !c->relogin) {
        user_name(c->w, c->gidx, user, sizeof user);
        user_password(c->w, c->gidx, pw, sizeof pw);
        c->state = C_AUTH;
        send_req(c, K_REGISTER, "register", "{\"user\":\"%s\",\"password\":\"%s\"}", user, pw);
        return;
    }
    send_login(c);
}

/* --reconnect: a random node other than c's that has not refused lately
 * (the gateway would spread them the same way: least loaded first). */
static void pick_other_node(client_t *c)
{
    worker_t *w = c->w;
    uint64_t now = now_us();
    int n = w->o->nnodes, ok[64], nok = 0;
    for (int j = 0; j < n; j++)
        if (j != c->node && w->node_skip_until[j] <= now)
            ok[nok++] = j;
    if (!nok) /* all refused lately: any other one */
        for (int j = 0; j < n; j++)
            if (j != c->node)
                ok[nok++] = j;
    if (nok)
        c->node = (uint8_t)ok[rand_r(&w->seed) % nok];
}

/* The reconnect queue is a binary min-heap of client indexes by
 * retry_at_us: a tick takes the due ones without scanning the rest (every
 * 5 ms, a storm's 16k-client queue scanned whole cost most of a core). */
static int requeue_earlier(const worker_t *w, int a, int b)
{
    return w->c[w->requeue[a]].retry_at_us < w->c[w->requeue[b]].retry_at_us;
}

static void requeue_swap(worker_t *w, int a, int b)
{
    int t = w->requeue[a];
    w->requeue[a] = w->requeue[b];
    w->requeue[b] = t;
}

static void requeue_push(worker_t *w, int k)
{
    int i = w->nrequeue++;
    w->requeue[i] = k;
    while (i > 0 && requeue_earlier(w, i, (i - 1) / 2)) {
        requeue_swap(w, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static int requeue_pop(worker_t *w)
{
    int top = w->requeue[0], i = 0;
    w->requeue[0] = w->requeue[--w->nrequeue];
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < w->nrequeue && requeue_earlier(w, l, m))
            m = l;
        if (r < w->nrequeue && requeue_earlier(w, r, m))
            m = r;
        if (m == i)
            return top;
        requeue_swap(w, i, m);
        i = m;
    }
}

static void reconnect_later(client_t *c, double max_s)
{
    worker_t *w = c->w;
    c->state = C_NEW;
    c->retry_at_us = now_us() + (uint64_t)(max_s * 1e6 * ((double)rand_r(&w->seed) / RAND_MAX));
    requeue_push(w, (int)(c - w->c));
}

/* Refused again: the next try waits up to twice as long (RETRY_S doubling
 * to RETRY_MAX_S, a random part of it), as clients back off (client/ does,
 * 0.5 s to 10 s): 100k clients of a cluster that is down do not try again
 * five times a second each. */
static double retry_backoff(client_t *c)
{
    double d = RETRY_S;
    for (int i = 0; i < c->retries && d < RETRY_MAX_S; i++)
        d *= 2;
    if (c->retries < UINT8_MAX)
        c->retries++;
    return d < RETRY_MAX_S ? d : RETRY_MAX_S;
}

/* A held connection ended by the server, or a reconnect attempt refused. */
static void on_dropped(client_t *c)
{
    worker_t *w = c->w;
    if (c->state == C_READY) {
        w->res.dropped++;
        c->lost_us = now_us();
        c->last_node = c->node;
        c->sticky = !w->o->ask_always;
        c->sticky_try = 0; /* the try that got it here, if any, is over */
        if (!w->res.first_drop_unix_us)
            w->res.first_drop_unix_us = wall_us();
        pick_other_node(c); /* not the node it just lost */
        reconnect_later(c, w->o->reconnect_s);
        return;
    }
    if (c->sticky_try)
        c->sticky = 0; /* the last node took the handshake but not the login */
    c->sticky_try = 0;
    w->node_skip_until[c->node] = now_us() + NODE_SKIP_US;
    pick_other_node(c);
    reconnect_later(c, retry_backoff(c));
}

/* The address c connects from, or NULL (--no-src-bind). Several per worker:
 * the kernel picks each connect's port by scanning the ports an address
 * already uses, which grows slow near 20k connections from one address, and
 * one address has ~28k ports for one destination (the gateway). */
static const char *client_src(const client_t *c, char *buf, size_t len)
{
    if (!c->w->src_bind)
        return NULL;
    snprintf(buf, len, "127.0.%u.%d", c->gidx % BENCH_SRC_SPREAD, 2 + c->w->index);
    return buf;
}

/* --ask-gateway: the index in o->nodes of the node url names; -1 when it is
 * none of them (the bench only ever connects to the checked list). */
static int node_of_url(const bench_opts_t *o, const char *url)
{
    bench_target_t t;
    char err[128];
    if (bench_target_parse(url, "ws", &t, err, sizeof err) != 0)
        return -1;
    for (int j = 0; j < o->nnodes; j++) {
        const bench_target_t *n = &o->nodes[j];
        if (n->port == t.port && n->tls == t.tls && !strcmp(n->host, t.host) &&
            !strcmp(n->path, t.path))
            return j;
    }
    return -1;
}

static void on_gateway_answer(int ok, const char *url, const char *why, void *ud)
{
    client_t *c = ud;
    worker_t *w = c->w;
    c->gw = NULL;
    if (w->phase == PH_DONE)
        return; /* cancelled at the end */
    int j = ok ? node_of_url(w->o, url) : -1;
    if (j >= 0) {
        c->node = (uint8_t)j;
    } else {
        w->res.ask_misses++;
        pick_other_node(c); /* a random one, not the last node */
        if (!w->miss_told++)
            fprintf(stderr, "chat-bench: worker %d: gateway: %s\n", w->index,
                    ok ? "a node outside the list" : why);
    }
    client_start(c);
}

static void ask_gateway(client_t *c)
{
    worker_t *w = c->w;
    w->res.asked++;
    char src[32];
    c->gw = client_gw_fetch_from(w->loop, w->o->gateway, bench_tls(),
                                 client_src(c, src, sizeof src), ASK_TIMEOUT_S,
                                 on_gateway_answer, c);
    if (c->gw)
        return;
    w->res.ask_misses++;
    if (!w->miss_told++)
        fprintf(stderr, "chat-bench: worker %d: gateway: cannot connect\n", w->index);
    client_start(c);
}

/* One reconnect attempt; with --ask-gateway as clients make it: the last
 * node first, the gateway when that node does not take the handshake. */
static void reconnect_go(client_t *c)
{
    worker_t *w = c->w;
    if (w->o->ask_gateway && c->sticky) {
        w->res.last_tries++;
        c->sticky_try = 1;
        c->node = c->last_node;
        client_start(c);
        return;
    }
    if (w->o->ask_gateway) {
        ask_gateway(c);
        return;
    }
    client_start(c);
}

/* The last node did not take the handshake: the gateway, in this attempt. */
static int sticky_missed(client_t *c)
{
    if (!c->sticky_try || c->state != C_OPENING || c->w->phase != PH_RUN)
        return 0;
    c->sticky_try = 0;
    c->w->res.last_misses++;
    ask_gateway(c);
    return 1;
}

/* Starts the reconnects that are due; keeps the rest in the queue. */
static void reconnect_due(worker_t *w)
{
    uint64_t now = now_us();
    int ndue = 0;
    while (w->nrequeue && w->c[w->requeue[0]].retry_at_us <= now)
        w->due[ndue++] = requeue_pop(w);
    /* started after the heap is settled: a start that fails at once queues again */
    for (int i = 0; i < ndue; i++)
        reconnect_go(&w->c[w->due[i]]);
}

static void on_close(bench_ws_t *ws, int err, void *ud)
{
    (void)ws;
    (void)err;
    client_t *c = ud;
    if (!c->ws)
        return; /* we closed it on purpose */
    c->ws = NULL;
    if (c->w->phase == PH_DONE || sticky_missed(c))
        return;
    if (c->w->phase == PH_RUN && c->w->o->reconnect_s > 0 && c->token && c->state != C_FAILED) {
        on_dropped(c);
        return;
    }
    if (c->w->phase == PH_SETUP && c->state != C_READY)
        c->w->res.connect_errors++;
    if (c->state != C_FAILED)
        client_fail(c);
}

static const bench_ws_cbs_t ws_cbs = {on_open, on_text, on_close};

static void client_start(client_t *c)
{
    worker_t *w = c->w;
    const bench_target_t *t = &w->o->nodes[c->node];
    c->t0_us = now_us();
    c->relogin = c->token != NULL;
    c->state = C_OPENING;
    char src[32];
    c->ws = bench_ws_connect(w->loop, t, client_src(c, src, sizeof src), &ws_cbs, c);
    if (c->ws)
        return;
    w->res.connect_errors++;
    if (!w->connect_told++)
        fprintf(stderr, "chat-bench: worker %d: connect: %s\n", w->index, strerror(errno));
    if (sticky_missed(c))
        return;
    if (w->phase == PH_RUN && w->o->reconnect_s > 0 && c->token) {
        on_dropped(c); /* --reconnect: like a refusal, tried again later (clients do) */
        return;
    }
    client_fail(c);
}

/* ------------------------------------------------------------------ phases */

static void worker_finish(worker_t *w)
{
    w->phase = PH_DONE;
    w->res.elapsed_s = (double)(w->run_end_us - w->run_start_us) / 1e6;
    char *line = bench_result_encode(&w->res);
    size_t len = strlen(line);
    line[len] = '\n'; /* overwrites the NUL: write exactly len + 1 bytes */
    size_t off = 0;
    while (off < len + 1) {
        ssize_t n = write(w->ctl, line + off, len + 1 - off);
        if (n <= 0 && errno != EINTR) {
            w->rc = 1;
            break;
        }
        off += n > 0 ? (size_t)n : 0;
    }
    free(line);
    ev_break(w->loop, EVBREAK_ALL);
}

static uint64_t self_rss_kb(void)
{
    char line[256];
    unsigned long long kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static void worker_check_setup(worker_t *w)
{
    if (w->phase != PH_SETUP || w->next_connect < w->count || w->setup_busy > 0)
        return;
    w->phase = PH_WAIT_GO;
    for (int i = 0; i < w->count; i++)
        w->res.clients += w->c[i].state == C_READY;
    w->res.self_rss_kb = self_rss_kb(); /* once, before the loop gets busy */
    /* the slowest worker may take until the setup deadline (the parent
     * waits that long for all): a fixed wait from now made the quick ones
     * give up (and close their clients) while a big run was still setting up */
    w->phase_deadline_us += (uint64_t)(GO_TIMEOUT_S * 1e6);
    char line[64];
    int n = snprintf(line, sizeof line, "ready %llu\n", (unsigned long long)w->res.clients);
    if (write(w->ctl, line, (size_t)n) != n)
        w->rc = 1;
    ev_io_start(w->loop, &w->ctl_io);
}

static void setup_timeout(worker_t *w)
{
    for (int i = 0; i < w->count; i++)
        if (w->c[i].state != C_READY && w->c[i].state != C_FAILED)
            client_fail(&w->c[i]);
    w->next_connect = w->count;
    w->setup_busy = 0;
    worker_check_setup(w);
}

static void setup_tick(worker_t *w, double dt)
{
    double per_worker = w->o->connect_rate / w->o->procs;
    w->connect_credit += per_worker * dt;
    if (w->connect_credit > per_worker * 0.1 + 1)
        w->connect_credit = per_worker * 0.1 + 1;
    while (w->connect_credit >= 1 && w->next_connect < w->count &&
           w->setup_busy < SETUP_INFLIGHT_MAX) {
        w->connect_credit -= 1;
        w->setup_busy++;
        client_start(&w->c[w->next_connect++]);
    }
    if (now_us() > w->phase_deadline_us)
        setup_timeout(w);
    else
        worker_check_setup(w);
}

static void run_start(worker_t *w)
{
    w->phase = PH_RUN;
    w->run_start_us = now_us();
    w->measure_from_us = w->run_start_us + (uint64_t)(w->o->warmup_s * 1e6);
    w->phase_deadline_us = w->measure_from_us + (uint64_t)(w->o->duration_s * 1e6);
    if (paced(w) && !w->o->pace_tick)
        pace_start(w);
    if (w->o->scenario == BENCH_PUSH) /* the parent's 'e' ends it; this is a backstop */
        w->phase_deadline_us += (uint64_t)(PUSH_SLACK_S * 1e6);
    for (int i = 0; i < w->count; i++) {
        client_t *c = &w->c[i];
        if (c->state != C_READY)
            continue;
        if (w->o->scenario == BENCH_LOGIN) {
            bench_ws_t *ws = c->ws;
            c->ws = NULL;
            bench_ws_close(ws);
            client_start(c);
        } else if (is_sender(w, i)) {
            fill_window(c);
        }
    }
}

static void drain_start(worker_t *w)
{
    w->phase = PH_DRAIN;
    w->run_end_us = now_us();
    w->last_delivery_us = w->run_end_us;
    w->phase_deadline_us = w->run_end_us + (uint64_t)(w->o->grace_s * 1e6);
    if (w->o->scenario != BENCH_IDLE)
        return;
    /* idle: every held connection must still answer; one still reconnecting
     * (--reconnect) counts as lost */
    for (int i = 0; i < w->count; i++) {
        client_t *c = &w->c[i];
        if (c->state != C_READY && c->state != C_FAILED && w->o->reconnect_s > 0) {
            w->res.expected++;
            continue;
        }
        if (c->state != C_READY || !c->ws)
            continue;
        c->t0_us = now_us();
        if (send_req(c, K_PING, "ping", "{}") == 0) {
            c->inflight = 1;
            w->res.sent++;
            w->res.expected++;
        }
    }
}

static int drain_done(const worker_t *w)
{
    uint64_t now = now_us();
    if (now >= w->phase_deadline_us)
        return 1;
    for (int i = 0; i < w->count; i++)
        if (w->c[i].inflight && w->c[i].ws)
            return 0;
    if (w->o->scenario == BENCH_LOGIN)
        for (int i = 0; i < w->count; i++)
            if (w->c[i].ws && w->c[i].state != C_READY && w->c[i].state != C_FAILED)
                return 0;
    if (w->o->scenario == BENCH_ROOM)
        return now - w->last_delivery_us > QUIET_US;
    return w->res.delivered >= w->res.expected;
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    worker_t *w = t->data;
    /* timers drift under load: pace by the time that really passed */
    double dt = ev_now(loop) - w->last_tick;
    w->last_tick = ev_now(loop);
    if (dt <= 0 || dt > 1)
        dt = TICK_S;
    switch (w->phase) {
    case PH_SETUP:
        setup_tick(w, dt);
        break;
    case PH_WAIT_GO:
        if (now_us() > w->phase_deadline_us) {
            w->rc = 1;
            ev_break(w->loop, EVBREAK_ALL);
        }
        break;
    case PH_RUN:
        if (now_us() >= w->phase_deadline_us)
            drain_start(w);
        else if (paced(w) && w->o->pace_tick)
            send_paced(w, worker_rate(w) * dt);
        else if (w->nrequeue) /* --reconnect: idle only, never paced */
            reconnect_due(w);
        break;
    case PH_DRAIN:
        if (drain_done(w))
            worker_finish(w);
        break;
    default:
        break;
    }
}

/* push scenario, RUN: the parent writes 'p' for every push the gateway
 * accepted (each ready client expects it) and 'e' when it is done. */
static void on_push_ctl(worker_t *w)
{
    char b[64];
    ssize_t n = read(w->ctl, b, sizeof b);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        w->rc = 1; /* the parent went away */
        ev_break(w->loop, EVBREAK_ALL);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (b[i] == 'p')
            w->res.expected += w->res.clients;
        else if (b[i] == 'e' && w->phase == PH_RUN)
            drain_start(w);
    }
}

static void on_ctl(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    worker_t *w = io->data;
    if (w->o->scenario == BENCH_PUSH && w->phase >= PH_RUN) {
        on_push_ctl(w);
        return;
    }
    char b;
    ssize_t n = read(io->fd, &b, 1);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    ev_io_stop(loop, io);
    if (n == 1 && b == 'g' && w->phase == PH_WAIT_GO) {
        run_start(w);
        if (w->o->scenario == BENCH_PUSH) /* the parent's pushes follow */
            ev_io_start(loop, io);
        return;
    }
    w->rc = 1; /* the parent went away or aborted */
    ev_break(loop, EVBREAK_ALL);
}

/* ------------------------------------------------------------------ worker */

void bench_worker_slice(const bench_opts_t *o, int index, int *first, int *count)
{
    long n = o->clients, p = o->procs;
    long a = n * index / p, b = n * (index + 1) / p;
    if (o->scenario == BENCH_DIRECT) { /* pairs stay in one worker */
        a &= ~1L;
        b = index == p - 1 ? n : b & ~1L;
    }
    *first = (int)a;
    *count = (int)(b - a);
}

static void worker_init_groups(worker_t *w)
{
    if (w->o->scenario != BENCH_GROUP)
        return;
    int s = w->o->group_size;
    w->ngroups = (w->count + s - 1) / s;
    w->groups = core_xcalloc((size_t)(w->ngroups ? w->ngroups : 1), sizeof *w->groups);
    for (int g = 0; g < w->ngroups; g++) {
        w->groups[g].first = g * s;
        w->groups[g].count = w->count - g * s < s ? w->count - g * s : s;
    }
}

static void worker_init(worker_t *w, const bench_opts_t *o, int index, int ctl)
{
    memset(w, 0, sizeof *w);
    w->o = o;
    w->index = index;
    w->ctl = ctl;
    bench_worker_slice(o, index, &w->first, &w->count);
    w->loop = ev_loop_new(EVFLAG_AUTO);
    bench_result_init(&w->res);
    w->src_bind = o->src_bind;
    w->nslots = o->scenario == BENCH_GROUP ? o->senders : 1;
    int tracks = o->scenario >= BENCH_DIRECT;
    w->c = core_xcalloc((size_t)(w->count ? w->count : 1), sizeof *w->c);
    for (int i = 0; i < w->count; i++) {
        w->c[i].w = w;
        w->c[i].gidx = (uint32_t)(w->first + i);
        w->c[i].node = (uint8_t)(w->c[i].gidx % (uint32_t)o->nnodes);
        if (tracks)
            w->c[i].seen = core_xcalloc((size_t)w->nslots, sizeof(seen_t));
    }
    worker_init_groups(w);
    w->seed = o->run_id ^ (unsigned)index;
    if (o->reconnect_s > 0) {
        w->requeue = core_xcalloc((size_t)(w->count ? w->count : 1), sizeof *w->requeue);
        w->due = core_xcalloc((size_t)(w->count ? w->count : 1), sizeof *w->due);
    }
    ev_timer_init(&w->tick, on_tick, TICK_S, TICK_S);
    w->tick.data = w;
    ev_timer_init(&w->pace, on_pace, TICK_S, 0.);
    w->pace.data = w;
    ev_io_init(&w->ctl_io, on_ctl, ctl, EV_READ);
    w->ctl_io.data = w;
    w->phase_deadline_us = now_us() + (uint64_t)(o->setup_timeout_s * 1e6);
}

/* Gateway requests end on the loop, cancelled ones too (their callbacks
 * see PH_DONE and do nothing), and a finished one frees itself there: run
 * it, with nothing else left on it, until they have. */
static void worker_end_asks(worker_t *w)
{
    if (!w->o->ask_gateway)
        return;
    for (int i = 0; i < w->count; i++)
        client_gw_cancel(w->c[i].gw);
    int pending = 1;
    for (int turns = 0; pending && turns < 8; turns++) {
        ev_run(w->loop, EVRUN_NOWAIT);
        pending = 0;
        for (int i = 0; i < w->count && !pending; i++)
            pending = w->c[i].gw != NULL;
    }
}

static void worker_deinit(worker_t *w)
{
    w->phase = PH_DONE;
    ev_timer_stop(w->loop, &w->tick);
    ev_timer_stop(w->loop, &w->pace);
    ev_io_stop(w->loop, &w->ctl_io);
    for (int i = 0; i < w->count; i++) {
        client_t *c = &w->c[i];
        if (c->ws) {
            bench_ws_t *ws = c->ws;
            c->ws = NULL;
            bench_ws_close(ws);
        }
    }
    worker_end_asks(w);
    for (int i = 0; i < w->count; i++) {
        free(w->c[i].seen);
        free(w->c[i].token);
    }
    free(w->c);
    free(w->groups);
    free(w->requeue);
    free(w->due);
    ev_loop_destroy(w->loop);
}

int bench_worker_run(const bench_opts_t *o, int index, int ctl)
{
    worker_t w;
    worker_init(&w, o, index, ctl);
    w.last_tick = ev_now(w.loop);
    ev_timer_start(w.loop, &w.tick);
    worker_check_setup(&w); /* an empty slice is ready at once */
    ev_run(w.loop, 0);
    int rc = w.phase == PH_DONE ? w.rc : 1;
    worker_deinit(&w);
    return rc;
}
