/* proto/events.c: data objects of the server-to-client events
 * (PROTOCOL.md section 2), exactly the contract's fields. */
#include "proto/proto.h"

#include <stdio.h>
#include <stdlib.h>

static cJSON *must(cJSON *item)
{
    if (!item) {
        fputs("proto: out of memory\n", stderr);
        abort();
    }
    return item;
}

static void add_str(cJSON *o, const char *key, const char *val)
{
    must(cJSON_AddStringToObject(o, key, val ? val : ""));
}

/* A number (not raw text) so consumers can read it back; cJSON prints 15
 * significant digits, exact for any ms before the year 33658. */
static void add_ts(cJSON *o, uint64_t ts)
{
    must(cJSON_AddNumberToObject(o, "ts", (double)ts));
}

static void add_bool(cJSON *o, const char *key, int val)
{
    must(cJSON_AddBoolToObject(o, key, val ? 1 : 0));
}

/* The three chat events share their layout but for the conversation key. */
static cJSON *chat_like(const char *msgid, const char *where_key, const char *where,
                        const char *from, const char *to, uint64_t ts, const char *message,
                        const char *format)
{
    cJSON *o = must(cJSON_CreateObject());
    add_str(o, "msgid", msgid);
    if (where_key)
        add_str(o, where_key, where);
    add_str(o, "from", from);
    if (!where_key)
        add_str(o, "to", to);
    add_ts(o, ts);
    add_str(o, "message", message);
    add_str(o, "format", format ? format : "text");
    return o;
}

cJSON *proto_ev_chat(const char *msgid, const char *from, const char *to, uint64_t ts,
                     const char *message, const char *format)
{
    return chat_like(msgid, NULL, NULL, from, to, ts, message, format);
}

cJSON *proto_ev_group_chat(const char *msgid, const char *group, const char *from, uint64_t ts,
                           const char *message, const char *format)
{
    return chat_like(msgid, "group", group, from, NULL, ts, message, format);
}

cJSON *proto_ev_room_chat(const char *msgid, const char *room, const char *from, uint64_t ts,
                          const char *message, const char *format)
{
    return chat_like(msgid, "room", room, from, NULL, ts, message, format);
}

cJSON *proto_ev_receipt(const char *msgid, const char *by)
{
    cJSON *o = must(cJSON_CreateObject());
    add_str(o, "msgid", msgid);
    add_str(o, "by", by);
    add_str(o, "status", "delivered");
    return o;
}

cJSON *proto_ev_friend_request(const char *from, const char *note, uint64_t ts)
{
    cJSON *o = must(cJSON_CreateObject());
    add_str(o, "from", from);
    add_str(o, "note", note);
    add_ts(o, ts);
    return o;
}

cJSON *proto_ev_friend_reply(const char *from, int accept)
{
    cJSON *o = must(cJSON_CreateObject());
    add_str(o, "from", from);
    add_bool(o, "accept", accept);
    return o;
}

cJSON *proto_ev_presence(const char *user, int online)
{
    cJSON *o = must(cJSON_CreateObject());
    add_str(o, "user", user);
    add_bool(o, "online", online);
    return o;
}

/* msgid is a project addition (the push API answers with it); omitted when NULL. */
cJSON *proto_ev_system(const char *msgid, const char *message, uint64_t ts)
{
    cJSON *o = must(cJSON_CreateObject());
    if (msgid)
        add_str(o, "msgid", msgid);
    add_str(o, "message", message);
    add_ts(o, ts);
    return o;
}

cJSON *proto_ev_kicked(const char *reason)
{
    cJSON *o = must(cJSON_CreateObject());
    add_str(o, "reason", reason);
    return o;
}
