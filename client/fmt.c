/* Server frames -> human text for the interactive mode. Pure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client.h"
#include "core/core.h"

typedef void (*fmt_fn)(core_buf_t *b, const cJSON *data);

typedef struct fmt_entry {
    const char *name;
    fmt_fn fn;
} fmt_entry_t;

static const char *str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return cJSON_IsString(v) ? v->valuestring : "";
}

static double num(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static int truthy(const cJSON *obj, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, key));
}

static void add_time(core_buf_t *b, const cJSON *data)
{
    time_t t = (time_t)(num(data, "ts") / 1000);
    struct tm tm;
    char out[16];

    if (t <= 0 || !localtime_r(&t, &tm) || strftime(out, sizeof out, "%H:%M:%S", &tm) == 0)
        return;
    core_buf_printf(b, "[%s] ", out);
}

static void add_tail(core_buf_t *b, const cJSON *data)
{
    const char *format = str(data, "format");

    if (*format && strcmp(format, "text") != 0)
        core_buf_printf(b, " (%s)", format);
    if (truthy(data, "offline"))
        core_buf_append_str(b, " (offline)");
}

/* ------------------------------------------------------------------ events */

static void ev_chat(core_buf_t *b, const cJSON *d)
{
    add_time(b, d);
    core_buf_printf(b, "<%s> %s", str(d, "from"), str(d, "message"));
    add_tail(b, d);
}

static void ev_group_chat(core_buf_t *b, const cJSON *d)
{
    add_time(b, d);
    core_buf_printf(b, "[+%s] <%s> %s", str(d, "group"), str(d, "from"), str(d, "message"));
    add_tail(b, d);
}

static void ev_room_chat(core_buf_t *b, const cJSON *d)
{
    add_time(b, d);
    core_buf_printf(b, "[#%s] <%s> %s", str(d, "room"), str(d, "from"), str(d, "message"));
    add_tail(b, d);
}

static void ev_receipt(core_buf_t *b, const cJSON *d)
{
    core_buf_printf(b, "* %s received %s", str(d, "by"), str(d, "msgid"));
}

static void ev_friend_request(core_buf_t *b, const cJSON *d)
{
    const char *note = str(d, "note");

    core_buf_printf(b, "* friend request from %s%s%s (/accept %s or /reject %s)", str(d, "from"),
                    *note ? ": " : "", note, str(d, "from"), str(d, "from"));
}

static void ev_friend_reply(core_buf_t *b, const cJSON *d)
{
    core_buf_printf(b, "* %s %s your friend request", str(d, "from"),
                    truthy(d, "accept") ? "accepted" : "declined");
}

static void ev_presence(core_buf_t *b, const cJSON *d)
{
    core_buf_printf(b, "* %s is %s", str(d, "user"), truthy(d, "online") ? "online" : "offline");
}

static void ev_system(core_buf_t *b, const cJSON *d)
{
    add_time(b, d);
    core_buf_printf(b, "*** %s", str(d, "message"));
    add_tail(b, d);
}

static void ev_kicked(core_buf_t *b, const cJSON *d)
{
    core_buf_printf(b, "*** kicked: %s", str(d, "reason"));
}

static const fmt_entry_t events[] = {
    {"chat", ev_chat},
    {"group_chat", ev_group_chat},
    {"room_chat", ev_room_chat},
    {"receipt", ev_receipt},
    {"friend_request", ev_friend_request},
    {"friend_reply", ev_friend_reply},
    {"presence", ev_presence},
    {"system", ev_system},
    {"kicked", ev_kicked},
};

/* ------------------------------------------------------------------ responses */

static void ok_login(core_buf_t *b, const cJSON *d)
{
    core_buf_printf(b, "logged in as %s (%s) on %s, %ld pending", str(d, "user"),
                    str(d, "nickname"), str(d, "node"), (long)num(d, "pending"));
}

static void ok_register(core_buf_t *b, const cJSON *d)
{
    core_buf_printf(b, "registered %s (%s)", str(d, "user"), str(d, "nickname"));
}

static void ok_user_info(core_buf_t *b, const cJSON *d)
{
    core_buf_printf(b, "%s (%s) is %s", str(d, "user"), str(d, "nickname"),
                    truthy(d, "online") ? "online" : "offline");
}

static void ok_sent(core_buf_t *b, const cJSON *d)
{
    const cJSON *online = cJSON_GetObjectItemCaseSensitive(d, "online");

    core_buf_printf(b, "sent %s", str(d, "msgid"));
    if (cJSON_IsBool(online))
        core_buf_append_str(b, cJSON_IsTrue(online) ? " (online)" : " (offline, stored)");
}

static void ok_history(core_buf_t *b, const cJSON *d)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(d, "messages");
    const cJSON *m;

    core_buf_printf(b, "history: %d message(s)", cJSON_GetArraySize(msgs));
    cJSON_ArrayForEach(m, msgs)
    {
        core_buf_append_str(b, "\n  ");
        add_time(b, m);
        core_buf_printf(b, "<%s> %s", str(m, "from"), str(m, "message"));
    }
}

static void ok_friends(core_buf_t *b, const cJSON *d)
{
    const cJSON *f;
    const char *sep = " ";

    core_buf_append_str(b, "friends:");
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(d, "friends"))
    {
        core_buf_printf(b, "%s%s%s", sep, str(f, "user"), truthy(f, "online") ? " (online)" : "");
        sep = ", ";
    }
}

static void ok_groups(core_buf_t *b, const cJSON *d)
{
    const cJSON *g;

    core_buf_append_str(b, "groups:");
    cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(d, "groups"))
        core_buf_printf(b, "\n  +%s %s (%ld members)", str(g, "group"), str(g, "name"),
                        (long)num(g, "members"));
}

static void ok_group(core_buf_t *b, const cJSON *d)
{
    core_buf_printf(b, "group +%s %s", str(d, "group"), str(d, "name"));
}

static void ok_rooms(core_buf_t *b, const cJSON *d)
{
    const cJSON *r;

    core_buf_append_str(b, "rooms:");
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(d, "rooms"))
        core_buf_printf(b, "\n  #%s %s (%ld here)", str(r, "room"), str(r, "title"),
                        (long)num(r, "members"));
}

static void ok_room_join(core_buf_t *b, const cJSON *d)
{
    core_buf_printf(b, "joined #%s (%ld here)", str(d, "room"), (long)num(d, "members"));
}

static void ok_room_create(core_buf_t *b, const cJSON *d)
{
    core_buf_printf(b, "created #%s %s", str(d, "room"), str(d, "title"));
}

/* Members are strings (rooms) or {user, online} objects (groups). */
static void ok_members(core_buf_t *b, const cJSON *d)
{
    const cJSON *m;
    const char *sep = " ";

    core_buf_append_str(b, "members:");
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(d, "members"))
    {
        if (cJSON_IsString(m))
            core_buf_printf(b, "%s%s", sep, m->valuestring);
        else
            core_buf_printf(b, "%s%s%s", sep, str(m, "user"), truthy(m, "online") ? " (online)" : "");
        sep = ", ";
    }
}

static void ok_popular(core_buf_t *b, const cJSON *d)
{
    const cJSON *w;
    const char *sep = " ";

    core_buf_append_str(b, "popular:");
    cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(d, "words"))
    {
        core_buf_printf(b, "%s%s (%ld)", sep, str(w, "word"), (long)num(w, "count"));
        sep = ", ";
    }
}

static void ok_ping(core_buf_t *b, const cJSON *d)
{
    core_buf_printf(b, "pong, server time %.0f", num(d, "ts"));
}

static const fmt_entry_t responses[] = {
    {"login", ok_login},           {"register", ok_register},
    {"user_info", ok_user_info},   {"chat", ok_sent},
    {"group_chat", ok_sent},       {"room_chat", ok_sent},
    {"history", ok_history},       {"friends", ok_friends},
    {"groups", ok_groups},         {"group_create", ok_group},
    {"group_join", ok_group},      {"rooms", ok_rooms},
    {"room_join", ok_room_join},   {"room_create", ok_room_create},
    {"room_members", ok_members},  {"group_members", ok_members},
    {"popular", ok_popular},       {"ping", ok_ping},
};

static fmt_fn find(const fmt_entry_t *table, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(table[i].name, name) == 0)
            return table[i].fn;
    return NULL;
}

static void fmt_generic(core_buf_t *b, const char *prefix, const char *name, const cJSON *data)
{
    char *json = data ? cJSON_PrintUnformatted(data) : NULL;

    core_buf_printf(b, "%s%s%s%s", prefix, name, json ? " " : "", json ? json : "");
    free(json);
}

static void fmt_event(core_buf_t *b, const char *name, const cJSON *data)
{
    fmt_fn fn = find(events, sizeof events / sizeof events[0], name);

    if (fn)
        fn(b, data);
    else
        fmt_generic(b, "* event ", name, data);
}

static void fmt_response(core_buf_t *b, const cJSON *frame, const cJSON *data)
{
    const char *action = str(frame, "action");
    long code = (long)num(frame, "code");
    fmt_fn fn;

    if (code != 0) {
        core_buf_printf(b, "! %s failed (%ld): %s", *action ? action : "request", code,
                        str(frame, "error"));
        return;
    }
    fn = find(responses, sizeof responses / sizeof responses[0], action);
    if (fn)
        fn(b, data);
    else
        core_buf_printf(b, "ok: %s", action);
}

char *client_fmt_frame(const cJSON *frame)
{
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(frame, "event");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(frame, "data");
    core_buf_t b;

    core_buf_init(&b);
    if (!cJSON_IsObject(data))
        data = NULL;
    if (cJSON_IsString(ev))
        fmt_event(&b, ev->valuestring, data);
    else
        fmt_response(&b, frame, data);
    return b.data ? b.data : core_xstrdup("");
}
