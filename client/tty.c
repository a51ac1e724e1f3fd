/* Interactive mode: libedit's callback interface on an ev_io for stdin, so
 * events print above the line being typed without garbling it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <editline/readline.h>

#include "client/client.h"
#include "core/core.h"
#include "proto/proto.h"

#define STOP_GRACE 3.0
#define HISTORY_MAX 1000

typedef struct tty {
    struct ev_loop *loop;
    client_sess_t *sess;
    ev_io in_w;
    ev_timer stop_timer;
    const char *history_path;
    char room[PROTO_NAME_MAX + 1];
    char prompt[PROTO_NAME_MAX + 8];
    long join_id;   /* the room_join in flight */
    long leave_id;  /* the room_leave in flight ... */
    char leaving[PROTO_NAME_MAX + 1]; /* ... and its room */
    int quitting;
    int stopped;
    int rc;
} tty_t;

/* libedit's line callback carries no user pointer: one terminal, one tty. */
static tty_t *the_tty;

/* Prints text above the input line, then redraws prompt and typed text. */
static void print_above(const char *text)
{
    fputs("\r\033[K", stdout); /* erase the prompt line as displayed */
    fputs(text, stdout);
    fputs("\n", stdout);
    fflush(stdout);
    /* libedit's rl_redisplay() only queues ^R (read as i-search): force
     * a redraw of prompt + typed text at the cursor instead */
    if (the_tty && !the_tty->quitting)
        rl_forced_update_display();
}

static void print_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void print_fmt(const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    print_above(line);
}

static void update_prompt(tty_t *t)
{
    const char *user = client_sess_user(t->sess);

    snprintf(t->prompt, sizeof t->prompt, "%s> ", *user ? user : "");
    rl_set_prompt(t->prompt);
}

/* ------------------------------------------------------------------ exit */

static void on_stopped(void *ud)
{
    tty_t *t = ud;

    t->stopped = 1;
    ev_timer_stop(t->loop, &t->stop_timer);
    ev_break(t->loop, EVBREAK_ALL);
}

static void on_stop_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void quit(tty_t *t)
{
    if (t->quitting)
        return;
    t->quitting = 1;
    ev_io_stop(t->loop, &t->in_w);
    ev_timer_start(t->loop, &t->stop_timer);
    client_sess_stop(t->sess, on_stopped, t);
}

/* ------------------------------------------------------------------ server side */

static void track_room(tty_t *t, const cJSON *frame)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(frame, "id");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(frame, "code");
    const cJSON *room = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(frame, "data"), "room");
    long n = cJSON_IsNumber(id) ? (long)id->valuedouble : 0;

    if (!cJSON_IsNumber(code) || code->valueint != 0 || n <= 0)
        return;
    if (n == t->join_id && cJSON_IsString(room))
        core_copy_trunc(t->room, sizeof t->room, room->valuestring);
    if (n == t->leave_id && strcmp(t->leaving, t->room) == 0)
        core_copy_trunc(t->room, sizeof t->room, CLIENT_ROOM_DEFAULT);
}

static void on_frame(const cJSON *frame, void *ud)
{
    tty_t *t = ud;
    char *text = client_fmt_frame(frame);

    track_room(t, frame);
    print_above(text);
    free(text);
}

static void on_status(client_status_t st, const char *detail, void *ud)
{
    tty_t *t = ud;

    switch (st) {
    case CLIENT_ST_CONNECTING:
        print_fmt("-- connecting to %s", detail);
        break;
    case CLIENT_ST_CONNECTED:
        print_fmt("-- connected");
        break;
    case CLIENT_ST_READY:
        update_prompt(t);
        print_fmt(*detail ? "-- logged in as %s (current room #%s; /help lists commands)"
                          : "-- ready%s (current room #%s; /register or /login, /help)",
                  detail, t->room);
        break;
    case CLIENT_ST_RETRY:
        print_fmt("-- disconnected: %s", detail);
        break;
    case CLIENT_ST_ERROR:
        t->rc = 2;
        print_fmt("-- error: %s", detail);
        break;
    case CLIENT_ST_CLOSED:
        print_fmt("-- closed: %s", detail);
        quit(t);
        break;
    }
}

/* ------------------------------------------------------------------ user side */

static void send_cmd(tty_t *t, client_cmd_t *cmd)
{
    const cJSON *room = cJSON_GetObjectItemCaseSensitive(cmd->data, "room");
    long id = client_sess_send(t->sess, cmd->action, cmd->data);

    if (id < 0) {
        print_fmt("! not connected");
        return;
    }
    if (strcmp(cmd->action, "room_join") == 0)
        t->join_id = id;
    if (strcmp(cmd->action, "room_leave") == 0 && cJSON_IsString(room)) {
        t->leave_id = id;
        core_copy_trunc(t->leaving, sizeof t->leaving, room->valuestring);
    }
}

static void run_line(tty_t *t, const char *line)
{
    client_cmd_t cmd;
    char err[256];

    if (client_cmd_parse(line, t->room, &cmd, err, sizeof err) < 0) {
        print_fmt("! %s", err);
        return;
    }
    switch (cmd.kind) {
    case CLIENT_CMD_EMPTY:
        break;
    case CLIENT_CMD_HELP:
        print_above(client_cmd_help());
        break;
    case CLIENT_CMD_QUIT:
        quit(t);
        break;
    case CLIENT_CMD_WAIT:
    case CLIENT_CMD_EXPECT:
        print_fmt("! /wait and /expect are for batch mode");
        break;
    case CLIENT_CMD_SEND:
        send_cmd(t, &cmd);
        break;
    }
    client_cmd_free(&cmd);
}

static void on_line(char *line)
{
    tty_t *t = the_tty;

    if (!line) { /* Ctrl-D */
        fputs("\n", stdout);
        quit(t);
        return;
    }
    /* libedit leaves the finished line in its buffer and turns unbuffered
     * (one char per call) mode off before calling us: installing again
     * turns it back on, clears the buffer and shows a fresh prompt */
    rl_callback_handler_install(t->prompt, on_line);
    if (*line)
        add_history(line);
    if (strlen(line) > CLIENT_LINE_MAX)
        print_fmt("! line longer than %d bytes", CLIENT_LINE_MAX);
    else
        run_line(t, line);
    free(line);
}

static void on_input(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    rl_callback_read_char();
}

/* ------------------------------------------------------------------ run */

static void tty_init(tty_t *t, struct ev_loop *loop, const char *history_path)
{
    memset(t, 0, sizeof *t);
    t->loop = loop;
    t->history_path = history_path;
    core_copy_trunc(t->room, sizeof t->room, CLIENT_ROOM_DEFAULT);
    snprintf(t->prompt, sizeof t->prompt, "> ");
    ev_io_init(&t->in_w, on_input, 0, EV_READ);
    ev_timer_init(&t->stop_timer, on_stop_timeout, STOP_GRACE, 0);
    t->in_w.data = t;
}

static void history_load(const char *path)
{
    using_history();
    stifle_history(HISTORY_MAX);
    if (path)
        read_history(path); /* a missing file is fine */
}

int client_tty_run(struct ev_loop *loop, const client_opts_t *opts, const char *history_path)
{
    static const client_sess_cbs_t cbs = {.on_frame = on_frame, .on_status = on_status};
    tty_t t;

    tty_init(&t, loop, history_path);
    t.sess = client_sess_new(loop, opts, &cbs, &t);
    if (!t.sess) {
        fprintf(stderr, "chat-client: need --gateway or --node\n");
        return 2;
    }
    the_tty = &t;
    history_load(history_path);
    rl_callback_handler_install(t.prompt, on_line);
    ev_io_start(loop, &t.in_w);
    client_sess_start(t.sess);
    ev_run(loop, 0);
    if (!t.quitting) {
        quit(&t); /* a signal broke the loop: still close properly */
        ev_run(loop, 0);
    }
    rl_callback_handler_remove();
    fputs("\r\033[K", stdout); /* the prompt left on the last line */
    fflush(stdout);
    if (history_path)
        write_history(history_path);
    ev_io_stop(loop, &t.in_w);
    ev_timer_stop(loop, &t.stop_timer);
    client_sess_free(t.sess);
    the_tty = NULL;
    return t.rc;
}
