/* client: the chat-client terminal program as a library.
 *
 * - a pure command parser (one typed line -> one protocol request or a
 *   local command), unit-tested on its own;
 * - a formatter that turns server frames into one human-readable line;
 * - a non-blocking gateway lookup (GET /servers, parsed with http-parser);
 * - a session: WebSocket to a node, register/login, acks, resume token,
 *   reconnect with backoff: the last node first, then the gateway;
 * - two drivers on one libev loop: batch (commands from a file or pipe,
 *   one JSON line per frame on stdout) and interactive (libedit).
 *
 * Ownership: functions returning char * or cJSON * hand it to the caller;
 * inputs are borrowed. Everything runs on the loop thread.
 */
#ifndef CHAT_CLIENT_H
#define CHAT_CLIENT_H

#include <stddef.h>
#include <ev.h>
#include <cjson/cJSON.h>
#include "core/core.h"

/* ------------------------------------------------------------------ commands */

#define CLIENT_LINE_MAX 8192   /* longest command line accepted */
#define CLIENT_ROOM_DEFAULT "world"

typedef enum client_cmd_kind {
    CLIENT_CMD_EMPTY = 0, /* blank line or a '#' comment: nothing to do */
    CLIENT_CMD_SEND,      /* a request: action + data */
    CLIENT_CMD_HELP,
    CLIENT_CMD_QUIT,
    CLIENT_CMD_WAIT,      /* keep listening for `seconds` */
    CLIENT_CMD_EXPECT,    /* wait up to `seconds` for one event named `event` */
} client_cmd_kind_t;

typedef struct client_cmd {
    client_cmd_kind_t kind;
    char action[32]; /* CLIENT_CMD_SEND */
    cJSON *data;     /* CLIENT_CMD_SEND: an object, owned; see client_cmd_free */
    char event[32];  /* CLIENT_CMD_EXPECT */
    double seconds;  /* CLIENT_CMD_WAIT, CLIENT_CMD_EXPECT */
} client_cmd_t;

/* Parses one line. room is the current room (plain text and /say go
 * there; NULL means CLIENT_ROOM_DEFAULT). Returns 0 with out filled, or -1
 * with a one-line reason in err (out is then empty: nothing to free).
 * Pure: no I/O, no globals. */
int client_cmd_parse(const char *line, const char *room, client_cmd_t *out, char *err,
                     size_t errlen);
void client_cmd_free(client_cmd_t *cmd); /* frees data; cmd itself is the caller's */
/* The /help text: every command, one per line (static storage). */
const char *client_cmd_help(void);

/* ------------------------------------------------------------------ formatting */

/* Human text (no trailing newline) for a server frame (response, error or
 * event): one line, except list answers (history, groups, rooms) which add
 * one indented line per item. Returns malloc'd text. */
char *client_fmt_frame(const cJSON *frame);

/* ------------------------------------------------------------------ URLs and gateway */

/* Splits http[s]://host:port[/path] (port defaults to 80 or 443, path to
 * "/"); *secure = 1 for https. 0, or -1 for anything else. */
int client_http_url_parse(const char *url, char *host, size_t hostlen, int *port, char *path,
                          size_t pathlen, int *secure);
/* Picks the first server's "url" from a GET /servers body. 0, or -1 when
 * the body is not that JSON or the list is empty. */
int client_gw_pick(const char *body, size_t len, char *url, size_t urllen);

/* ok = 1 with url (a ws:// or wss:// URL) filled, or ok = 0 with why. Called exactly
 * once per client_gw_fetch that returned non-NULL, unless cancelled. */
typedef void (*client_gw_cb)(int ok, const char *url, const char *why, void *ud);
typedef struct client_gw client_gw_t;

/* GET /servers from gateway (http[s]://host:port) without blocking the
 * loop; https needs tls (a client context). NULL when the URL is bad or the
 * connect cannot start (cb is then never called). The handle is invalid
 * once cb has run. */
client_gw_t *client_gw_fetch(struct ev_loop *loop, const char *gateway, core_tls_t *tls,
                             double timeout_s, client_gw_cb cb, void *ud);
/* The same from the local address src (numeric IP; NULL for any): the
 * load generator asks for many clients from one host. */
client_gw_t *client_gw_fetch_from(struct ev_loop *loop, const char *gateway, core_tls_t *tls,
                                  const char *src, double timeout_s, client_gw_cb cb, void *ud);
/* Ends the request early: cb then runs once, later on the loop, with
 * ok = 0 and why "cancelled" (unless it ran already). */
void client_gw_cancel(client_gw_t *g);

/* ------------------------------------------------------------------ session */

typedef struct client_opts {
    const char *gateway;  /* http[s]://host:port, or NULL */
    const char *node;     /* ws[s]://host:port/ws, or NULL (gateway wins when both) */
    core_tls_t *tls;      /* client context for https and wss (NULL: plain only) */
    const char *user;     /* log in automatically when set (with password) */
    const char *password;
    const char *nickname; /* for --register */
    int do_register;      /* register first (409 "exists" is fine) */
    double backoff_min;   /* seconds; default 0.5 */
    double backoff_max;   /* seconds; default 10 */
} client_opts_t;

typedef enum client_status {
    CLIENT_ST_CONNECTING, /* detail: the URL or the gateway */
    CLIENT_ST_CONNECTED,  /* WebSocket open; detail: the URL */
    CLIENT_ST_READY,      /* logged in (detail: user [+ " (resumed by token)"]),
                           or connected without --user (detail: "") */
    CLIENT_ST_RETRY,      /* lost or failed; detail: why; a retry is scheduled */
    CLIENT_ST_CLOSED,     /* closed for good (logout, kicked, stopped); detail: why */
    CLIENT_ST_ERROR,      /* auto-login failed (detail: the server's text); closing */
} client_status_t;

typedef struct client_sess_cbs {
    /* Every frame from the server except answers to the session's own
     * requests (login on connect, acks). frame is borrowed. */
    void (*on_frame)(const cJSON *frame, void *ud);
    void (*on_status)(client_status_t st, const char *detail, void *ud);
} client_sess_cbs_t;

typedef struct client_sess client_sess_t;

/* opts strings are borrowed and must outlive the session. */
client_sess_t *client_sess_new(struct ev_loop *loop, const client_opts_t *opts,
                               const client_sess_cbs_t *cbs, void *ud);
void client_sess_start(client_sess_t *s);
/* Sends {"id":N,"action":action,"data":data}. data (an object) stays the
 * caller's, but chat and group_chat without a cid get one added to it in
 * place, so resending the same data after a reconnect is not delivered
 * twice. Returns the id (> 0), or -1 when not connected. */
long client_sess_send(client_sess_t *s, const char *action, cJSON *data);
int client_sess_ready(const client_sess_t *s);
const char *client_sess_user(const client_sess_t *s); /* "" before login */
/* Closes for good; done(ud) runs once everything is torn down (maybe
 * now, maybe later on the loop). */
void client_sess_stop(client_sess_t *s, void (*done)(void *ud), void *ud);
void client_sess_free(client_sess_t *s); /* after stop's done; NULL is a no-op */

/* ------------------------------------------------------------------ drivers */

/* Batch mode: commands from fd (one per line), each answered before the
 * next; every frame and status printed to out as one JSON line. After the
 * last command it listens wait_s more seconds, then quits.
 * Returns the exit status: 0 ok, 1 some response had a non-zero code,
 * 2 could not connect/log in, 3 an /expect timed out. */
int client_batch_run(struct ev_loop *loop, const client_opts_t *opts, int fd, double wait_s);

/* Interactive mode on the terminal (libedit, history in history_path,
 * which may be NULL). Returns the exit status. */
int client_tty_run(struct ev_loop *loop, const client_opts_t *opts, const char *history_path);

#endif
