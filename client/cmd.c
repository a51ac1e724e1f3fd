/* The command parser: one typed line -> one request or local command. Pure. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "proto/proto.h"

#define WORD_MAX 256

/* A parse in progress: the rest of the line and where errors go. */
typedef struct parse_ctx {
    const char *rest;
    const char *room;
    client_cmd_t *out;
    char *err;
    size_t errlen;
} parse_ctx_t;

typedef int (*cmd_fn)(parse_ctx_t *p);

typedef struct cmd_entry {
    const char *name;
    cmd_fn fn;
} cmd_entry_t;

static const char help_text[] =
    "Commands (arguments in CAPS; TEXT is the rest of the line):\n"
    "  /register USER PASSWORD [NICKNAME]  create an account\n"
    "  /login USER PASSWORD                log in\n"
    "  /logout                             log out (the node closes the connection)\n"
    "  /whois USER                         user_info: nickname and online state\n"
    "  /ping                               server time\n"
    "  /msg USER TEXT                      direct message (chat)\n"
    "  /ack MSGID...                       acknowledge messages (shown ones are acked already)\n"
    "  /history USER|#ROOM|+GROUP [LIMIT [BEFORE]]  stored messages, oldest first\n"
    "  /friend USER [NOTE]                 friend request\n"
    "  /accept USER | /reject USER         answer a friend request\n"
    "  /friends                            friend list\n"
    "  /group create NAME | join GID | leave GID | members GID | say GID TEXT | list\n"
    "  /groups                             my groups\n"
    "  /gsay GID TEXT                      group message (group_chat)\n"
    "  /room create ROOM [TITLE] | join ROOM | leave ROOM | members ROOM | say ROOM TEXT | list\n"
    "  /rooms                              all rooms\n"
    "  /join ROOM | /leave [ROOM]          enter / leave a room (the current room by default)\n"
    "  /members [ROOM]                     who is in a room\n"
    "  /say TEXT (or a line without '/')   message to the current room (room_chat)\n"
    "  /popular [LIMIT]                    hot words\n"
    "  /raw {\"action\":...,\"data\":{...}}  send any request\n"
    "  /wait SECONDS                       keep listening (batch scripts)\n"
    "  /expect EVENT [SECONDS]             wait for one EVENT event (default 10 s)\n"
    "  /help                               this list\n"
    "  /quit                               leave\n";

const char *client_cmd_help(void)
{
    return help_text;
}

static int fail(parse_ctx_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(parse_ctx_t *p, const char *fmt, ...)
{
    va_list ap;

    if (p->err && p->errlen) {
        va_start(ap, fmt);
        vsnprintf(p->err, p->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static const char *skip_space(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* Takes the next blank-separated word. 1 taken, 0 none left, -1 too long. */
static int next_word(parse_ctx_t *p, char *out, size_t outlen)
{
    const char *s = skip_space(p->rest);
    size_t n = 0;

    while (s[n] && s[n] != ' ' && s[n] != '\t')
        n++;
    if (n == 0)
        return 0;
    if (n >= outlen)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    p->rest = s + n;
    return 1;
}

/* A required word; fails naming what was missing. */
static int need_word(parse_ctx_t *p, const char *what, char *out, size_t outlen)
{
    int rc = next_word(p, out, outlen);

    if (rc == 0)
        return fail(p, "missing %s", what);
    if (rc < 0)
        return fail(p, "%s is too long", what);
    return 0;
}

static int need_name(parse_ctx_t *p, const char *what, char *out, size_t outlen)
{
    if (need_word(p, what, out, outlen) < 0)
        return -1;
    if (!proto_valid_name(out, strlen(out)))
        return fail(p, "bad %s '%s' (want [A-Za-z0-9_.-]{1,32})", what, out);
    return 0;
}

/* The rest of the line, without leading blanks and the trailing newline. */
static const char *rest_text(parse_ctx_t *p)
{
    return skip_space(p->rest);
}

static int need_text(parse_ctx_t *p, const char *what, const char **out)
{
    *out = rest_text(p);
    if (**out == '\0')
        return fail(p, "missing %s", what);
    return 0;
}

static int no_more(parse_ctx_t *p)
{
    const char *s = rest_text(p);

    if (*s)
        return fail(p, "unexpected '%s'", s);
    return 0;
}

static int parse_long(parse_ctx_t *p, const char *what, const char *s, long min, long max,
                      long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return fail(p, "%s must be an integer in %ld..%ld", what, min, max);
    *out = v;
    return 0;
}

static int parse_seconds(parse_ctx_t *p, const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0 && v <= 3600))
        return fail(p, "seconds must be a number in 0..3600");
    *out = v;
    return 0;
}

/* Starts a request: the caller adds fields to out->data. */
static cJSON *send_cmd(parse_ctx_t *p, const char *action)
{
    p->out->kind = CLIENT_CMD_SEND;
    core_copy_trunc(p->out->action, sizeof p->out->action, action);
    p->out->data = cJSON_CreateObject();
    return p->out->data;
}

static int send_empty(parse_ctx_t *p, const char *action)
{
    if (no_more(p) < 0)
        return -1;
    send_cmd(p, action);
    return 0;
}

/* action {key: NAME} with nothing after the name. */
static int send_one_name(parse_ctx_t *p, const char *action, const char *key, const char *what)
{
    char name[WORD_MAX];

    if (need_name(p, what, name, sizeof name) < 0 || no_more(p) < 0)
        return -1;
    cJSON_AddStringToObject(send_cmd(p, action), key, name);
    return 0;
}

/* action {key: WORD} (group ids are server strings, not names). */
static int send_one_word(parse_ctx_t *p, const char *action, const char *key, const char *what)
{
    char word[WORD_MAX];

    if (need_word(p, what, word, sizeof word) < 0 || no_more(p) < 0)
        return -1;
    cJSON_AddStringToObject(send_cmd(p, action), key, word);
    return 0;
}

/* action {key: WORD, message: TEXT}. */
static int send_word_text(parse_ctx_t *p, const char *action, const char *key, const char *what,
                          int is_name)
{
    char word[WORD_MAX];
    const char *text;
    cJSON *d;

    if ((is_name ? need_name(p, what, word, sizeof word) : need_word(p, what, word, sizeof word)) <
            0 ||
        need_text(p, "message text", &text) < 0)
        return -1;
    d = send_cmd(p, action);
    cJSON_AddStringToObject(d, key, word);
    cJSON_AddStringToObject(d, "message", text);
    return 0;
}

/* ------------------------------------------------------------------ account */

static int cmd_register(parse_ctx_t *p)
{
    char user[WORD_MAX], pass[WORD_MAX];
    const char *nick;
    cJSON *d;

    if (need_name(p, "user", user, sizeof user) < 0 ||
        need_word(p, "password", pass, sizeof pass) < 0)
        return -1;
    nick = rest_text(p);
    d = send_cmd(p, "register");
    cJSON_AddStringToObject(d, "user", user);
    cJSON_AddStringToObject(d, "password", pass);
    if (*nick)
        cJSON_AddStringToObject(d, "nickname", nick);
    return 0;
}

static int cmd_login(parse_ctx_t *p)
{
    char user[WORD_MAX], pass[WORD_MAX];
    cJSON *d;

    if (need_name(p, "user", user, sizeof user) < 0 ||
        need_word(p, "password", pass, sizeof pass) < 0 || no_more(p) < 0)
        return -1;
    d = send_cmd(p, "login");
    cJSON_AddStringToObject(d, "user", user);
    cJSON_AddStringToObject(d, "password", pass);
    return 0;
}

static int cmd_logout(parse_ctx_t *p)
{
    return send_empty(p, "logout");
}

static int cmd_whois(parse_ctx_t *p)
{
    return send_one_name(p, "user_info", "user", "user");
}

static int cmd_ping(parse_ctx_t *p)
{
    return send_empty(p, "ping");
}

/* ------------------------------------------------------------------ direct */

static int cmd_msg(parse_ctx_t *p)
{
    return send_word_text(p, "chat", "to", "user", 1);
}

static int cmd_ack(parse_ctx_t *p)
{
    char id[WORD_MAX];
    cJSON *ids = cJSON_CreateArray();
    int rc;

    while ((rc = next_word(p, id, sizeof id)) > 0)
        cJSON_AddItemToArray(ids, cJSON_CreateString(id));
    if (rc < 0 || cJSON_GetArraySize(ids) == 0) {
        cJSON_Delete(ids);
        return fail(p, rc < 0 ? "msgid is too long" : "missing msgid");
    }
    cJSON_AddItemToObject(send_cmd(p, "ack"), "msgids", ids);
    return 0;
}

/* TARGET is a user, #room or +group. */
static int history_target(parse_ctx_t *p, const char *t, cJSON *d)
{
    const char *key = t[0] == '#' ? "room" : t[0] == '+' ? "group" : "with";
    const char *name = (t[0] == '#' || t[0] == '+') ? t + 1 : t;

    if (*name == '\0')
        return fail(p, "missing name after '%c'", t[0]);
    if (t[0] != '+' && !proto_valid_name(name, strlen(name)))
        return fail(p, "bad name '%s' (want [A-Za-z0-9_.-]{1,32})", name);
    cJSON_AddStringToObject(d, key, name);
    return 0;
}

static int cmd_history(parse_ctx_t *p)
{
    char target[WORD_MAX], word[WORD_MAX];
    long limit = 0;
    cJSON *d;

    if (need_word(p, "user, #room or +group", target, sizeof target) < 0)
        return -1;
    d = send_cmd(p, "history");
    /* on failure client_cmd_parse frees d with the rest of out */
    if (history_target(p, target, d) < 0)
        return -1;
    if (next_word(p, word, sizeof word) > 0) {
        if (parse_long(p, "limit", word, 1, 100, &limit) < 0)
            return -1;
        cJSON_AddNumberToObject(d, "limit", (double)limit);
        if (next_word(p, word, sizeof word) > 0)
            cJSON_AddStringToObject(d, "before", word);
    }
    return no_more(p);
}

/* ------------------------------------------------------------------ friends */

static int cmd_friend(parse_ctx_t *p)
{
    char user[WORD_MAX];
    const char *note;
    cJSON *d;

    if (need_name(p, "user", user, sizeof user) < 0)
        return -1;
    note = rest_text(p);
    d = send_cmd(p, "friend_request");
    cJSON_AddStringToObject(d, "user", user);
    if (*note)
        cJSON_AddStringToObject(d, "note", note);
    return 0;
}

static int friend_reply(parse_ctx_t *p, int accept)
{
    char user[WORD_MAX];
    cJSON *d;

    if (need_name(p, "user", user, sizeof user) < 0 || no_more(p) < 0)
        return -1;
    d = send_cmd(p, "friend_reply");
    cJSON_AddStringToObject(d, "user", user);
    cJSON_AddBoolToObject(d, "accept", accept);
    return 0;
}

static int cmd_accept(parse_ctx_t *p)
{
    return friend_reply(p, 1);
}

static int cmd_reject(parse_ctx_t *p)
{
    return friend_reply(p, 0);
}

static int cmd_friends(parse_ctx_t *p)
{
    return send_empty(p, "friends");
}

/* ------------------------------------------------------------------ groups */

static int cmd_groups(parse_ctx_t *p)
{
    return send_empty(p, "groups");
}

static int cmd_gsay(parse_ctx_t *p)
{
    return send_word_text(p, "group_chat", "group", "group id", 0);
}

static int group_create(parse_ctx_t *p)
{
    const char *name;

    if (need_text(p, "group name", &name) < 0)
        return -1;
    cJSON_AddStringToObject(send_cmd(p, "group_create"), "name", name);
    return 0;
}

static int cmd_group(parse_ctx_t *p)
{
    char sub[WORD_MAX];

    if (need_word(p, "subcommand (create, join, leave, members, say, list)", sub, sizeof sub) < 0)
        return -1;
    if (strcmp(sub, "create") == 0)
        return group_create(p);
    if (strcmp(sub, "join") == 0)
        return send_one_word(p, "group_join", "group", "group id");
    if (strcmp(sub, "leave") == 0)
        return send_one_word(p, "group_leave", "group", "group id");
    if (strcmp(sub, "members") == 0)
        return send_one_word(p, "group_members", "group", "group id");
    if (strcmp(sub, "say") == 0)
        return cmd_gsay(p);
    if (strcmp(sub, "list") == 0)
        return cmd_groups(p);
    return fail(p, "unknown /group subcommand '%s'", sub);
}

/* ------------------------------------------------------------------ rooms */

static const char *cur_room(const parse_ctx_t *p)
{
    return p->room && *p->room ? p->room : CLIENT_ROOM_DEFAULT;
}

static int cmd_rooms(parse_ctx_t *p)
{
    return send_empty(p, "rooms");
}

static int cmd_join(parse_ctx_t *p)
{
    return send_one_name(p, "room_join", "room", "room");
}

/* An optional room name, else the current room. */
static int room_or_current(parse_ctx_t *p, const char *action)
{
    char room[WORD_MAX];
    int rc = next_word(p, room, sizeof room);

    if (rc < 0)
        return fail(p, "room is too long");
    if (rc == 0)
        core_copy_trunc(room, sizeof room, cur_room(p));
    if (!proto_valid_name(room, strlen(room)))
        return fail(p, "bad room '%s' (want [A-Za-z0-9_.-]{1,32})", room);
    if (no_more(p) < 0)
        return -1;
    cJSON_AddStringToObject(send_cmd(p, action), "room", room);
    return 0;
}

static int cmd_leave(parse_ctx_t *p)
{
    return room_or_current(p, "room_leave");
}

static int cmd_members(parse_ctx_t *p)
{
    return room_or_current(p, "room_members");
}

static int say_to(parse_ctx_t *p, const char *room, const char *text)
{
    cJSON *d;

    if (*text == '\0')
        return fail(p, "missing message text");
    d = send_cmd(p, "room_chat");
    cJSON_AddStringToObject(d, "room", room);
    cJSON_AddStringToObject(d, "message", text);
    return 0;
}

static int cmd_say(parse_ctx_t *p)
{
    return say_to(p, cur_room(p), rest_text(p));
}

static int room_create(parse_ctx_t *p)
{
    char room[WORD_MAX];
    const char *title;
    cJSON *d;

    if (need_name(p, "room", room, sizeof room) < 0)
        return -1;
    title = rest_text(p);
    d = send_cmd(p, "room_create");
    cJSON_AddStringToObject(d, "room", room);
    if (*title)
        cJSON_AddStringToObject(d, "title", title);
    return 0;
}

static int cmd_room(parse_ctx_t *p)
{
    char sub[WORD_MAX];

    if (need_word(p, "subcommand (create, join, leave, members, say, list)", sub, sizeof sub) < 0)
        return -1;
    if (strcmp(sub, "create") == 0)
        return room_create(p);
    if (strcmp(sub, "join") == 0)
        return cmd_join(p);
    if (strcmp(sub, "leave") == 0)
        return send_one_name(p, "room_leave", "room", "room");
    if (strcmp(sub, "members") == 0)
        return send_one_name(p, "room_members", "room", "room");
    if (strcmp(sub, "say") == 0)
        return send_word_text(p, "room_chat", "room", "room", 1);
    if (strcmp(sub, "list") == 0)
        return cmd_rooms(p);
    return fail(p, "unknown /room subcommand '%s'", sub);
}

/* ------------------------------------------------------------------ misc */

static int cmd_popular(parse_ctx_t *p)
{
    char word[WORD_MAX];
    long limit = 0;
    int rc = next_word(p, word, sizeof word);

    if (rc < 0 || (rc > 0 && parse_long(p, "limit", word, 1, 50, &limit) < 0))
        return rc < 0 ? fail(p, "limit is too long") : -1;
    if (no_more(p) < 0)
        return -1;
    send_cmd(p, "popular");
    if (limit)
        cJSON_AddNumberToObject(p->out->data, "limit", (double)limit);
    return 0;
}

static int cmd_raw(parse_ctx_t *p)
{
    const char *text = rest_text(p);
    cJSON *root = cJSON_ParseWithLength(text, strlen(text));
    const cJSON *action = cJSON_GetObjectItemCaseSensitive(root, "action");
    cJSON *data = cJSON_DetachItemFromObjectCaseSensitive(root, "data");
    int rc = 0;

    if (!cJSON_IsObject(root) || !cJSON_IsString(action) ||
        strlen(action->valuestring) >= sizeof p->out->action || (data && !cJSON_IsObject(data))) {
        rc = fail(p, "want a JSON object with a string \"action\" and an object \"data\"");
        cJSON_Delete(data);
        goto out;
    }
    p->out->kind = CLIENT_CMD_SEND;
    core_copy_trunc(p->out->action, sizeof p->out->action, action->valuestring);
    p->out->data = data ? data : cJSON_CreateObject();
out:
    cJSON_Delete(root);
    return rc;
}

static int cmd_wait(parse_ctx_t *p)
{
    char word[WORD_MAX];

    if (need_word(p, "seconds", word, sizeof word) < 0 ||
        parse_seconds(p, word, &p->out->seconds) < 0 || no_more(p) < 0)
        return -1;
    p->out->kind = CLIENT_CMD_WAIT;
    return 0;
}

static int cmd_expect(parse_ctx_t *p)
{
    char word[WORD_MAX];
    int rc;

    if (need_word(p, "event name", p->out->event, sizeof p->out->event) < 0)
        return -1;
    p->out->seconds = 10;
    rc = next_word(p, word, sizeof word);
    if (rc < 0 || (rc > 0 && parse_seconds(p, word, &p->out->seconds) < 0) || no_more(p) < 0)
        return rc < 0 ? fail(p, "seconds is too long") : -1;
    p->out->kind = CLIENT_CMD_EXPECT;
    return 0;
}

static int cmd_help(parse_ctx_t *p)
{
    p->out->kind = CLIENT_CMD_HELP;
    return 0;
}

static int cmd_quit(parse_ctx_t *p)
{
    if (no_more(p) < 0)
        return -1;
    p->out->kind = CLIENT_CMD_QUIT;
    return 0;
}

static const cmd_entry_t commands[] = {
    {"register", cmd_register}, {"login", cmd_login},     {"logout", cmd_logout},
    {"whois", cmd_whois},       {"ping", cmd_ping},       {"msg", cmd_msg},
    {"ack", cmd_ack},           {"history", cmd_history}, {"friend", cmd_friend},
    {"accept", cmd_accept},     {"reject", cmd_reject},   {"friends", cmd_friends},
    {"group", cmd_group},       {"groups", cmd_groups},   {"gsay", cmd_gsay},
    {"room", cmd_room},         {"rooms", cmd_rooms},     {"join", cmd_join},
    {"leave", cmd_leave},       {"members", cmd_members}, {"say", cmd_say},
    {"popular", cmd_popular},   {"raw", cmd_raw},         {"wait", cmd_wait},
    {"expect", cmd_expect},     {"help", cmd_help},       {"quit", cmd_quit},
    {"exit", cmd_quit},
};

static int dispatch(parse_ctx_t *p)
{
    char name[WORD_MAX];

    p->rest++; /* the '/' */
    if (next_word(p, name, sizeof name) <= 0)
        return fail(p, "missing command after '/' (try /help)");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return commands[i].fn(p);
    return fail(p, "unknown command '/%s' (try /help)", name);
}

int client_cmd_parse(const char *line, const char *room, client_cmd_t *out, char *err,
                     size_t errlen)
{
    char buf[CLIENT_LINE_MAX + 1];
    size_t n = strlen(line);
    parse_ctx_t p = {.room = room, .out = out, .err = err, .errlen = errlen};
    const char *s;
    int rc;

    memset(out, 0, sizeof *out);
    if (n > CLIENT_LINE_MAX)
        return fail(&p, "line longer than %d bytes", CLIENT_LINE_MAX);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    memcpy(buf, line, n);
    buf[n] = '\0';
    s = skip_space(buf);
    p.rest = s;
    if (*s == '\0' || *s == '#')
        return 0;
    rc = *s == '/' ? dispatch(&p) : say_to(&p, cur_room(&p), s);
    if (rc < 0)
        client_cmd_free(out);
    return rc;
}

void client_cmd_free(client_cmd_t *cmd)
{
    if (!cmd)
        return;
    cJSON_Delete(cmd->data);
    memset(cmd, 0, sizeof *cmd);
}
