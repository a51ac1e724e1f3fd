/* The session: gateway -> WebSocket -> register/login, acks, resume token,
 * reconnect with exponential backoff and jitter. A reconnect tries the node
 * the session was last ready on before it asks the gateway: after a node
 * restart (or a whole cluster's) its clients go back without all asking the
 * gateway at once, and the gateway's spread of them is kept. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "client/client.h"
#include "core/core.h"
#include "proto/proto.h"

/* Ids of the session's own requests: strings, so they never collide with
 * the integer ids of user commands. */
#define ID_REGISTER "_register"
#define ID_LOGIN "_login"
#define ID_ACK "_ack"
#define URL_MAX 1024
#define CONNECT_TIMEOUT_S 10.0 /* TCP + WebSocket handshake of one node */
#define STICKY_TIMEOUT_S 3.0   /* ... of the last node: failing it only means asking */

typedef enum sess_state {
    S_IDLE,
    S_RESOLVE, /* asking the gateway */
    S_CONNECT, /* WebSocket handshake */
    S_AUTH,    /* open; register/login on the way */
    S_READY,
    S_BACKOFF,
    S_STOPPING,
    S_DONE,
} sess_state_t;

struct client_sess {
    struct ev_loop *loop;
    client_opts_t opts;
    client_sess_cbs_t cbs;
    void *ud;
    sess_state_t state;
    core_wsc_t *wsc;
    client_gw_t *gw;
    ev_timer retry;
    ev_timer connect_timer;
    int attempt;
    int sticky;          /* the next attempt tries last_node before the gateway */
    int sticky_try;      /* this attempt is that try */
    char url[URL_MAX];   /* the node of this attempt */
    char last_node[URL_MAX]; /* where the session was last ready */
    int is_open;         /* WebSocket handshake done, not closed */
    int final;           /* do not reconnect (logout, kicked, stop, bad credentials) */
    int registered;      /* --register done (or the user existed) */
    int login_by_token;
    char final_why[256];
    char user[PROTO_NAME_MAX + 1];
    char token[PROTO_TOKEN_LEN + 1];
    long next_id;
    unsigned long cid_seq;
    void (*stop_done)(void *ud);
    void *stop_ud;
};

static void sess_connect(client_sess_t *s);

static void status(client_sess_t *s, client_status_t st, const char *detail)
{
    if (s->cbs.on_status)
        s->cbs.on_status(st, detail ? detail : "", s->ud);
}

/* Ends the session for good with a reason; the close callback reports it. */
static void sess_final(client_sess_t *s, const char *why)
{
    if (!s->final)
        core_copy_trunc(s->final_why, sizeof s->final_why, why);
    s->final = 1;
}

static int send_frame(client_sess_t *s, cJSON *id, const char *action, cJSON *data)
{
    cJSON *root = cJSON_CreateObject();
    char *text;
    int rc;

    cJSON_AddItemToObject(root, "id", id);
    cJSON_AddStringToObject(root, "action", action);
    cJSON_AddItemToObject(root, "data", data ? data : cJSON_CreateObject());
    text = cJSON_PrintUnformatted(root);
    rc = core_wsc_send_text(s->wsc, text, strlen(text));
    free(text);
    cJSON_Delete(root);
    return rc;
}

static void send_internal(client_sess_t *s, const char *id, const char *action, cJSON *data)
{
    if (!s->is_open) {
        cJSON_Delete(data);
        return;
    }
    send_frame(s, cJSON_CreateString(id), action, data);
}

static void send_login(client_sess_t *s)
{
    cJSON *d = cJSON_CreateObject();

    s->login_by_token = s->token[0] && strcmp(s->user, s->opts.user) == 0;
    cJSON_AddStringToObject(d, "user", s->opts.user);
    if (s->login_by_token)
        cJSON_AddStringToObject(d, "token", s->token);
    else
        cJSON_AddStringToObject(d, "password", s->opts.password ? s->opts.password : "");
    send_internal(s, ID_LOGIN, "login", d);
}

static void send_register(client_sess_t *s)
{
    cJSON *d = cJSON_CreateObject();

    cJSON_AddStringToObject(d, "user", s->opts.user);
    cJSON_AddStringToObject(d, "password", s->opts.password ? s->opts.password : "");
    if (s->opts.nickname)
        cJSON_AddStringToObject(d, "nickname", s->opts.nickname);
    send_internal(s, ID_REGISTER, "register", d);
}

/* ------------------------------------------------------------------ frames */

static long frame_code(const cJSON *frame)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(frame, "code");

    return cJSON_IsNumber(c) ? (long)c->valuedouble : -1;
}

static const char *frame_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return cJSON_IsString(v) ? v->valuestring : "";
}

/* Remembers who we are and the resume token from any successful login. */
static void note_login(client_sess_t *s, const cJSON *frame)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(frame, "data");
    char detail[PROTO_NAME_MAX + 32];

    snprintf(s->user, sizeof s->user, "%s", frame_str(d, "user"));
    snprintf(s->token, sizeof s->token, "%s", frame_str(d, "token"));
    s->state = S_READY;
    s->attempt = 0;
    core_copy_trunc(s->last_node, sizeof s->last_node, s->url);
    s->sticky = 1;
    snprintf(detail, sizeof detail, "%s%s", s->user, s->login_by_token ? " (resumed by token)" : "");
    status(s, CLIENT_ST_READY, detail);
}

static void auth_failed(client_sess_t *s, const cJSON *frame)
{
    char why[256];

    snprintf(why, sizeof why, "%s failed (%ld): %s", frame_str(frame, "action"), frame_code(frame),
             frame_str(frame, "error"));
    sess_final(s, why);
    status(s, CLIENT_ST_ERROR, why);
    core_wsc_close(s->wsc, CORE_WS_NORMAL);
}

static void on_register_reply(client_sess_t *s, const cJSON *frame)
{
    long code = frame_code(frame);

    if (code != PROTO_OK && code != PROTO_CONFLICT) {
        auth_failed(s, frame);
        return;
    }
    s->registered = 1;
    send_login(s);
}

static void on_login_reply(client_sess_t *s, const cJSON *frame)
{
    if (frame_code(frame) == PROTO_OK) {
        note_login(s, frame);
        return;
    }
    if (s->login_by_token && s->opts.password) {
        s->token[0] = '\0'; /* expired or unknown: fall back to the password */
        send_login(s);
        return;
    }
    auth_failed(s, frame);
}

/* Answers to our own requests; 1 when frame was one. */
static int internal_reply(client_sess_t *s, const cJSON *frame)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(frame, "id");

    if (!cJSON_IsString(id) || id->valuestring[0] != '_')
        return 0;
    if (strcmp(id->valuestring, ID_REGISTER) == 0)
        on_register_reply(s, frame);
    else if (strcmp(id->valuestring, ID_LOGIN) == 0)
        on_login_reply(s, frame);
    return 1;
}

static void ack_if_needed(client_sess_t *s, const char *event, const cJSON *data)
{
    const char *msgid = frame_str(data, "msgid");
    cJSON *d, *ids;

    if ((strcmp(event, "chat") != 0 && strcmp(event, "group_chat") != 0) || !*msgid)
        return;
    d = cJSON_CreateObject();
    ids = cJSON_AddArrayToObject(d, "msgids");
    cJSON_AddItemToArray(ids, cJSON_CreateString(msgid));
    send_internal(s, ID_ACK, "ack", d);
}

static void on_event(client_sess_t *s, const cJSON *frame, const char *event)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(frame, "data");

    if (strcmp(event, "kicked") == 0)
        sess_final(s, "kicked");
    if (s->cbs.on_frame)
        s->cbs.on_frame(frame, s->ud);
    ack_if_needed(s, event, data); /* after it was shown */
}

static void on_user_reply(client_sess_t *s, const cJSON *frame)
{
    const char *action = frame_str(frame, "action");

    if (frame_code(frame) == PROTO_OK && strcmp(action, "login") == 0) {
        s->login_by_token = 0; /* a /login typed by the user */
        note_login(s, frame);
    }
    if (frame_code(frame) == PROTO_OK && strcmp(action, "logout") == 0)
        sess_final(s, "logged out");
    if (s->cbs.on_frame)
        s->cbs.on_frame(frame, s->ud);
}

static void wsc_on_text(core_wsc_t *c, const char *msg, size_t len, void *ud)
{
    client_sess_t *s = ud;
    cJSON *frame = cJSON_ParseWithLength(msg, len);
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(frame, "event");

    (void)c;
    if (!cJSON_IsObject(frame))
        CORE_WARN("ignoring a frame that is not a JSON object");
    else if (cJSON_IsString(ev))
        on_event(s, frame, ev->valuestring);
    else if (!internal_reply(s, frame))
        on_user_reply(s, frame);
    cJSON_Delete(frame);
}

/* ------------------------------------------------------------------ connection */

static void wsc_on_open(core_wsc_t *c, void *ud)
{
    client_sess_t *s = ud;

    (void)c;
    ev_timer_stop(s->loop, &s->connect_timer);
    s->is_open = 1;
    s->state = S_AUTH;
    status(s, CLIENT_ST_CONNECTED, "");
    if (!s->opts.user) {
        s->state = S_READY;
        s->attempt = 0;
        status(s, CLIENT_ST_READY, "");
    } else if (s->opts.do_register && !s->registered) {
        send_register(s);
    } else {
        send_login(s);
    }
}

static double backoff_delay(client_sess_t *s)
{
    double d = s->opts.backoff_min;

    for (int i = 0; i < s->attempt && d < s->opts.backoff_max; i++)
        d *= 2;
    if (d > s->opts.backoff_max)
        d = s->opts.backoff_max;
    s->attempt++;
    /* jitter: somewhere in [d/2, d], so many clients do not retry in step */
    return d / 2 + d / 2 * (double)randombytes_uniform(1001) / 1000.0;
}

static void maybe_stopped(client_sess_t *s)
{
    if (s->state != S_STOPPING || s->wsc || s->gw)
        return;
    s->state = S_DONE;
    if (s->stop_done)
        s->stop_done(s->stop_ud);
}

static void schedule_retry(client_sess_t *s, const char *why)
{
    char detail[256];
    double delay;

    if (s->final) {
        s->state = S_DONE;
        status(s, CLIENT_ST_CLOSED, s->final_why);
        return;
    }
    delay = backoff_delay(s);
    snprintf(detail, sizeof detail, "%s; retrying in %.1f s", why, delay);
    s->state = S_BACKOFF;
    status(s, CLIENT_ST_RETRY, detail);
    ev_timer_set(&s->retry, delay, 0);
    ev_timer_start(s->loop, &s->retry);
}

static void ask_gateway(client_sess_t *s);

/* What a closed connection says about trying its node first next time. */
static void sticky_after_close(client_sess_t *s, int was_open, int code)
{
    if (s->sticky_try && was_open && s->state != S_READY)
        s->sticky = 0; /* the node answered but the session failed there */
    if (s->state == S_READY && code == CORE_WS_GOING_AWAY)
        s->sticky = 0; /* the node is shutting down: ask where to go */
    s->sticky_try = 0;
}

static void wsc_on_close(core_wsc_t *c, int code, const char *why, void *ud)
{
    client_sess_t *s = ud;
    int was_open = s->is_open, never_opened_sticky = s->sticky_try && !was_open;
    char detail[200];

    (void)c;
    ev_timer_stop(s->loop, &s->connect_timer);
    s->wsc = NULL;
    s->is_open = 0;
    if (s->state == S_STOPPING) {
        maybe_stopped(s);
        return;
    }
    sticky_after_close(s, was_open, code);
    if (never_opened_sticky && !s->final) {
        ask_gateway(s); /* the last node is not there (yet): the gateway, now */
        return;
    }
    snprintf(detail, sizeof detail, "connection closed (%d %s)", code, why ? why : "");
    schedule_retry(s, detail);
}

static const core_wsc_cbs_t wsc_cbs = {
    .on_open = wsc_on_open,
    .on_text = wsc_on_text,
    .on_close = wsc_on_close,
};

/* A node that takes the connection but never completes the handshake
 * (a host gone without a reset) would hold the attempt for minutes. */
static void on_connect_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    client_sess_t *s = w->data;

    (void)loop;
    (void)revents;
    if (s->wsc && !s->is_open)
        core_wsc_close(s->wsc, 1006); /* on_close follows */
}

static void connect_url(client_sess_t *s, const char *url)
{
    char err[256];

    s->state = S_CONNECT;
    core_copy_trunc(s->url, sizeof s->url, url);
    status(s, CLIENT_ST_CONNECTING, url);
    s->wsc = core_wsc_connect(s->loop, url, s->opts.tls, &wsc_cbs, s, err, sizeof err);
    if (s->wsc) {
        ev_timer_set(&s->connect_timer, s->sticky_try ? STICKY_TIMEOUT_S : CONNECT_TIMEOUT_S, 0);
        ev_timer_start(s->loop, &s->connect_timer);
        return;
    }
    if (s->sticky_try) {
        s->sticky_try = 0;
        ask_gateway(s);
        return;
    }
    if (!s->opts.gateway)
        sess_final(s, err); /* a bad --node URL will not get better */
    schedule_retry(s, err);
}

static void on_gateway(int ok, const char *url, const char *why, void *ud)
{
    client_sess_t *s = ud;

    s->gw = NULL;
    if (s->state == S_STOPPING) {
        maybe_stopped(s);
        return;
    }
    if (ok)
        connect_url(s, url);
    else
        schedule_retry(s, why);
}

static void ask_gateway(client_sess_t *s)
{
    s->state = S_RESOLVE;
    status(s, CLIENT_ST_CONNECTING, s->opts.gateway);
    s->gw = client_gw_fetch(s->loop, s->opts.gateway, s->opts.tls, 5.0, on_gateway, s);
    if (!s->gw)
        schedule_retry(s, "cannot reach the gateway");
}

static void sess_connect(client_sess_t *s)
{
    if (!s->opts.gateway) {
        connect_url(s, s->opts.node);
        return;
    }
    if (s->sticky && s->last_node[0]) {
        s->sticky_try = 1;
        connect_url(s, s->last_node);
        return;
    }
    ask_gateway(s);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    sess_connect(w->data);
}

/* ------------------------------------------------------------------ public */

client_sess_t *client_sess_new(struct ev_loop *loop, const client_opts_t *opts,
                               const client_sess_cbs_t *cbs, void *ud)
{
    client_sess_t *s;

    if (sodium_init() < 0 || (!opts->gateway && !opts->node))
        return NULL;
    s = core_xcalloc(1, sizeof *s);
    s->loop = loop;
    s->opts = *opts;
    if (s->opts.backoff_min <= 0)
        s->opts.backoff_min = 0.5;
    if (s->opts.backoff_max < s->opts.backoff_min)
        s->opts.backoff_max = s->opts.backoff_min > 10 ? s->opts.backoff_min : 10;
    if (cbs)
        s->cbs = *cbs;
    s->ud = ud;
    ev_timer_init(&s->retry, on_retry, 0, 0);
    s->retry.data = s;
    ev_timer_init(&s->connect_timer, on_connect_timeout, 0, 0);
    s->connect_timer.data = s;
    return s;
}

void client_sess_start(client_sess_t *s)
{
    if (s->state == S_IDLE)
        sess_connect(s);
}

/* A cid for chat/group_chat, unique for this process. */
static void add_cid(client_sess_t *s, const char *action, cJSON *data)
{
    char cid[64];

    if ((strcmp(action, "chat") != 0 && strcmp(action, "group_chat") != 0) ||
        cJSON_GetObjectItemCaseSensitive(data, "cid"))
        return;
    snprintf(cid, sizeof cid, "c%llu-%08x-%lu", (unsigned long long)core_now_ms(),
             (unsigned)randombytes_random(), ++s->cid_seq);
    cJSON_AddStringToObject(data, "cid", cid);
}

long client_sess_send(client_sess_t *s, const char *action, cJSON *data)
{
    long id;

    if (!s->is_open || (data && !cJSON_IsObject(data)))
        return -1;
    if (data)
        add_cid(s, action, data);
    id = ++s->next_id;
    if (send_frame(s, cJSON_CreateNumber((double)id), action,
                   data ? cJSON_Duplicate(data, 1) : NULL) < 0)
        return -1;
    return id;
}

int client_sess_ready(const client_sess_t *s)
{
    return s->state == S_READY;
}

const char *client_sess_user(const client_sess_t *s)
{
    return s->user;
}

void client_sess_stop(client_sess_t *s, void (*done)(void *ud), void *ud)
{
    s->stop_done = done;
    s->stop_ud = ud;
    sess_final(s, "stopped");
    ev_timer_stop(s->loop, &s->retry);
    ev_timer_stop(s->loop, &s->connect_timer);
    s->state = S_STOPPING;
    if (s->gw)
        client_gw_cancel(s->gw);
    if (s->wsc)
        core_wsc_close(s->wsc, CORE_WS_NORMAL);
    maybe_stopped(s);
}

void client_sess_free(client_sess_t *s)
{
    if (!s)
        return;
    ev_timer_stop(s->loop, &s->retry);
    ev_timer_stop(s->loop, &s->connect_timer);
    sodium_memzero(s->token, sizeof s->token);
    free(s);
}
