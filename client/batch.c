/* Batch mode: one command at a time from a file or pipe, each answered
 * before the next; every frame and status goes to stdout as one JSON line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client.h"
#include "core/core.h"
#include "proto/proto.h"

#define READY_TIMEOUT 30.0 /* seconds to (re)connect and log in */
#define STOP_GRACE 3.0     /* seconds for the close handshake at exit */
#define SEEN_MAX 16        /* distinct event names counted for /expect */

enum { RC_OK = 0, RC_FAILED = 1, RC_NOCONN = 2, RC_EXPECT = 3 };

typedef struct seen_event {
    char name[32];
    long count;
} seen_event_t;

typedef struct batch {
    struct ev_loop *loop;
    client_sess_t *sess;
    int fd;
    int eof;
    core_buf_t in;
    ev_io in_w;
    ev_timer ready_timer; /* not ready in time: give up */
    ev_timer step_timer;  /* /wait, /expect, --wait */
    ev_timer stop_timer;  /* close handshake took too long */
    long waiting_id;      /* the command we wait an answer for */
    char action[32];      /* ... and what it was, for a resend */
    cJSON *data;
    int resend;
    char expect[32];      /* /expect in progress */
    seen_event_t seen[SEEN_MAX];
    char room[PROTO_NAME_MAX + 1];
    double wait_s;
    int started;
    int finishing;        /* the final --wait is running */
    int quitting;
    int stopped;
    int rc;
} batch_t;

static void next_command(batch_t *b);

static void emit(cJSON *obj)
{
    char *text = cJSON_PrintUnformatted(obj);

    printf("%s\n", text);
    fflush(stdout);
    free(text);
    cJSON_Delete(obj);
}

/* {"client":what,key:value}: the client's own lines. */
static void emit_client(const char *what, const char *key, const char *value)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "client", what);
    if (key)
        cJSON_AddStringToObject(o, key, value);
    emit(o);
}

static void set_rc(batch_t *b, int rc)
{
    if (rc > b->rc)
        b->rc = rc;
}

/* ------------------------------------------------------------------ exit */

static void on_stopped(void *ud)
{
    batch_t *b = ud;

    b->stopped = 1;
    ev_timer_stop(b->loop, &b->stop_timer);
    ev_break(b->loop, EVBREAK_ALL);
}

static void on_stop_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void quit(batch_t *b)
{
    if (b->quitting)
        return;
    b->quitting = 1;
    ev_io_stop(b->loop, &b->in_w);
    ev_timer_stop(b->loop, &b->ready_timer);
    ev_timer_stop(b->loop, &b->step_timer);
    ev_timer_start(b->loop, &b->stop_timer);
    client_sess_stop(b->sess, on_stopped, b);
}

/* ------------------------------------------------------------------ events seen */

static seen_event_t *seen_slot(batch_t *b, const char *name, int create)
{
    for (int i = 0; i < SEEN_MAX; i++) {
        if (strcmp(b->seen[i].name, name) == 0)
            return &b->seen[i];
        if (create && b->seen[i].name[0] == '\0') {
            core_copy_trunc(b->seen[i].name, sizeof b->seen[i].name, name);
            return &b->seen[i];
        }
    }
    return NULL;
}

/* Consumes one seen event named name; 1 when there was one. */
static int seen_take(batch_t *b, const char *name)
{
    seen_event_t *e = seen_slot(b, name, 0);

    if (!e || e->count == 0)
        return 0;
    e->count--;
    return 1;
}

static void expect_done(batch_t *b)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "client", "expect");
    cJSON_AddStringToObject(o, "event", b->expect);
    cJSON_AddBoolToObject(o, "ok", 1);
    emit(o);
    b->expect[0] = '\0';
    ev_timer_stop(b->loop, &b->step_timer);
}

static void on_event(batch_t *b, const char *name)
{
    seen_event_t *e = seen_slot(b, name, 1);

    if (e)
        e->count++;
    if (b->expect[0] && seen_take(b, b->expect)) {
        expect_done(b);
        next_command(b);
    }
}

/* ------------------------------------------------------------------ responses */

static void track_room(batch_t *b, const char *action, const cJSON *frame)
{
    const cJSON *room = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(frame, "data"), "room");
    const cJSON *sent = cJSON_GetObjectItemCaseSensitive(b->data, "room");

    if (strcmp(action, "room_join") == 0 && cJSON_IsString(room))
        core_copy_trunc(b->room, sizeof b->room, room->valuestring);
    if (strcmp(action, "room_leave") == 0 && cJSON_IsString(sent) &&
        strcmp(sent->valuestring, b->room) == 0)
        core_copy_trunc(b->room, sizeof b->room, CLIENT_ROOM_DEFAULT);
}

static void on_response(batch_t *b, const cJSON *frame)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(frame, "id");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(frame, "code");

    if (!cJSON_IsNumber(id) || (long)id->valuedouble != b->waiting_id || b->waiting_id <= 0)
        return;
    b->waiting_id = 0;
    if (!cJSON_IsNumber(code) || code->valueint != 0)
        set_rc(b, RC_FAILED);
    else
        track_room(b, b->action, frame);
    cJSON_Delete(b->data);
    b->data = NULL;
    next_command(b);
}

static void on_frame(const cJSON *frame, void *ud)
{
    batch_t *b = ud;
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(frame, "event");

    emit(cJSON_Duplicate(frame, 1));
    if (b->quitting)
        return;
    if (cJSON_IsString(ev))
        on_event(b, ev->valuestring);
    else
        on_response(b, frame);
}

/* ------------------------------------------------------------------ status */

static const char *status_name(client_status_t st)
{
    switch (st) {
    case CLIENT_ST_CONNECTING: return "connecting";
    case CLIENT_ST_CONNECTED: return "connected";
    case CLIENT_ST_READY: return "ready";
    case CLIENT_ST_RETRY: return "retry";
    case CLIENT_ST_CLOSED: return "closed";
    case CLIENT_ST_ERROR: return "error";
    }
    return "?";
}

static void send_pending(batch_t *b)
{
    b->resend = 0;
    b->waiting_id = client_sess_send(b->sess, b->action, b->data);
    if (b->waiting_id < 0) {
        emit_client("error", "error", "not connected");
        set_rc(b, RC_FAILED);
        b->waiting_id = 0;
        next_command(b);
    }
}

static void on_ready(batch_t *b)
{
    ev_timer_stop(b->loop, &b->ready_timer);
    if (b->resend) {
        send_pending(b);
    } else if (!b->started) {
        b->started = 1;
        next_command(b);
    }
}

static void on_status(client_status_t st, const char *detail, void *ud)
{
    batch_t *b = ud;

    emit_client(status_name(st), "detail", detail);
    if (b->quitting)
        return;
    if (st == CLIENT_ST_READY) {
        on_ready(b);
    } else if (st == CLIENT_ST_RETRY) {
        b->resend = b->waiting_id > 0; /* its answer is lost: send again once back */
        if (!ev_is_active(&b->ready_timer))
            ev_timer_start(b->loop, &b->ready_timer);
    } else if (st == CLIENT_ST_ERROR || (st == CLIENT_ST_CLOSED && !b->started)) {
        set_rc(b, RC_NOCONN);
        quit(b);
    } else if (st == CLIENT_ST_CLOSED) {
        if (b->waiting_id > 0)
            set_rc(b, RC_FAILED);
        quit(b);
    }
}

static void on_ready_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    batch_t *b = w->data;

    (void)loop;
    (void)revents;
    emit_client("error", "error", "could not connect and log in in time");
    set_rc(b, RC_NOCONN);
    quit(b);
}

/* ------------------------------------------------------------------ commands */

static void on_step_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    batch_t *b = w->data;
    cJSON *o;

    (void)loop;
    (void)revents;
    if (b->finishing) {
        quit(b);
        return;
    }
    if (b->expect[0]) {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "client", "expect");
        cJSON_AddStringToObject(o, "event", b->expect);
        cJSON_AddBoolToObject(o, "ok", 0);
        emit(o);
        set_rc(b, RC_EXPECT);
        quit(b);
        return;
    }
    next_command(b);
}

static void start_step(batch_t *b, double seconds)
{
    ev_timer_set(&b->step_timer, seconds, 0);
    ev_timer_start(b->loop, &b->step_timer);
}

/* Runs one parsed command. 1 when it has to wait (answer, timer). */
static int run_command(batch_t *b, client_cmd_t *cmd)
{
    switch (cmd->kind) {
    case CLIENT_CMD_EMPTY:
        return 0;
    case CLIENT_CMD_HELP:
        emit_client("help", "text", client_cmd_help());
        return 0;
    case CLIENT_CMD_QUIT:
        quit(b);
        return 1;
    case CLIENT_CMD_WAIT:
        start_step(b, cmd->seconds);
        return 1;
    case CLIENT_CMD_EXPECT:
        core_copy_trunc(b->expect, sizeof b->expect, cmd->event);
        if (seen_take(b, b->expect)) {
            expect_done(b);
            return 0;
        }
        start_step(b, cmd->seconds);
        return 1;
    case CLIENT_CMD_SEND:
        core_copy_trunc(b->action, sizeof b->action, cmd->action);
        b->data = cmd->data;
        cmd->data = NULL;
        send_pending(b);
        return b->waiting_id > 0;
    }
    return 0;
}

static void run_line(batch_t *b, const char *line, int *wait)
{
    client_cmd_t cmd;
    char err[256];
    cJSON *o;

    if (client_cmd_parse(line, b->room, &cmd, err, sizeof err) < 0) {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "client", "error");
        cJSON_AddStringToObject(o, "line", line);
        cJSON_AddStringToObject(o, "error", err);
        emit(o);
        set_rc(b, RC_FAILED);
        return;
    }
    *wait = run_command(b, &cmd);
    client_cmd_free(&cmd);
}

/* Takes one line out of the input buffer into line; 1 when there was one.
 * A line longer than cap is cut (the parser then rejects it as too long)
 * but consumed whole. */
static int take_line(batch_t *b, char *line, size_t cap)
{
    char *nl = b->in.len ? memchr(b->in.data, '\n', b->in.len) : NULL;
    size_t full, n;

    if (!nl && !(b->eof && b->in.len > 0))
        return 0;
    full = nl ? (size_t)(nl - b->in.data) : b->in.len;
    n = full < cap ? full : cap - 1;
    memcpy(line, b->in.data, n);
    line[n] = '\0';
    core_buf_consume(&b->in, nl ? full + 1 : full);
    return 1;
}

static void finish(batch_t *b)
{
    if (b->wait_s <= 0) {
        quit(b);
        return;
    }
    b->finishing = 1;
    start_step(b, b->wait_s);
}

static void next_command(batch_t *b)
{
    char line[CLIENT_LINE_MAX + 2];
    int wait = 0;

    while (!wait && !b->quitting && b->waiting_id <= 0) {
        if (!take_line(b, line, sizeof line)) {
            if (b->eof)
                finish(b);
            else
                ev_io_start(b->loop, &b->in_w);
            return;
        }
        run_line(b, line, &wait);
    }
}

static void on_input(struct ev_loop *loop, ev_io *w, int revents)
{
    batch_t *b = w->data;
    char chunk[4096];
    ssize_t n = read(b->fd, chunk, sizeof chunk);

    (void)revents;
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    ev_io_stop(loop, w);
    if (n <= 0)
        b->eof = 1;
    else
        core_buf_append(&b->in, chunk, (size_t)n);
    if (b->in.len > CLIENT_LINE_MAX && !memchr(b->in.data, '\n', b->in.len)) {
        emit_client("error", "error", "input line too long");
        set_rc(b, RC_FAILED);
        quit(b);
        return;
    }
    next_command(b);
}

/* ------------------------------------------------------------------ run */

static void batch_init(batch_t *b, struct ev_loop *loop, int fd, double wait_s)
{
    memset(b, 0, sizeof *b);
    b->loop = loop;
    b->fd = fd;
    b->wait_s = wait_s;
    core_buf_init(&b->in);
    core_copy_trunc(b->room, sizeof b->room, CLIENT_ROOM_DEFAULT);
    ev_io_init(&b->in_w, on_input, fd, EV_READ);
    ev_timer_init(&b->ready_timer, on_ready_timeout, READY_TIMEOUT, 0);
    ev_timer_init(&b->step_timer, on_step_timeout, 1, 0);
    ev_timer_init(&b->stop_timer, on_stop_timeout, STOP_GRACE, 0);
    b->in_w.data = b->ready_timer.data = b->step_timer.data = b;
}

int client_batch_run(struct ev_loop *loop, const client_opts_t *opts, int fd, double wait_s)
{
    static const client_sess_cbs_t cbs = {.on_frame = on_frame, .on_status = on_status};
    batch_t b;

    batch_init(&b, loop, fd, wait_s);
    b.sess = client_sess_new(loop, opts, &cbs, &b);
    if (!b.sess) {
        emit_client("error", "error", "need --gateway or --node");
        return RC_NOCONN;
    }
    ev_timer_start(loop, &b.ready_timer);
    client_sess_start(b.sess);
    ev_run(loop, 0);
    if (!b.quitting) {
        quit(&b); /* a signal broke the loop: still close properly */
        ev_run(loop, 0);
    }
    ev_io_stop(loop, &b.in_w);
    ev_timer_stop(loop, &b.ready_timer);
    ev_timer_stop(loop, &b.step_timer);
    ev_timer_stop(loop, &b.stop_timer);
    client_sess_free(b.sess);
    cJSON_Delete(b.data);
    core_buf_free(&b.in);
    return b.rc;
}
