/* Unit tests for proto/events.c: each builder's exact wire form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"

#define MID "176389000012300007-00a1"
#define TS UINT64_C(1763890000123)

typedef struct event_case {
    const char *name;
    cJSON *(*build)(void);
    const char *want; /* the data object, compact */
} event_case_t;

static cJSON *b_chat(void)
{
    return proto_ev_chat(MID, "alice", "bob", TS, "hi \"bob\"", "text");
}
static cJSON *b_chat_default_format(void)
{
    return proto_ev_chat(MID, "alice", "bob", TS, "x", NULL);
}
static cJSON *b_chat_unicode(void)
{
    return proto_ev_chat(MID, "a", "b", 0, "h\xc3\xa9 \xf0\x9f\x98\x80/", "image");
}
static cJSON *b_group_chat(void)
{
    return proto_ev_group_chat(MID, "g42", "alice", TS, "hello", "text");
}
static cJSON *b_room_chat(void)
{
    return proto_ev_room_chat(MID, "world", "alice", TS, "hello", "file");
}
static cJSON *b_receipt(void)
{
    return proto_ev_receipt(MID, "bob");
}
static cJSON *b_friend_request(void)
{
    return proto_ev_friend_request("alice", "hi, it's me", TS);
}
static cJSON *b_friend_request_no_note(void)
{
    return proto_ev_friend_request("alice", NULL, TS);
}
static cJSON *b_friend_reply_yes(void)
{
    return proto_ev_friend_reply("bob", 1);
}
static cJSON *b_friend_reply_no(void)
{
    return proto_ev_friend_reply("bob", 0);
}
static cJSON *b_friend_reply_nonzero(void)
{
    return proto_ev_friend_reply("bob", 42);
}
static cJSON *b_presence_on(void)
{
    return proto_ev_presence("carol", 1);
}
static cJSON *b_presence_off(void)
{
    return proto_ev_presence("carol", 0);
}
static cJSON *b_system(void)
{
    return proto_ev_system(MID, "maintenance at 10:00", TS);
}
static cJSON *b_system_no_msgid(void)
{
    return proto_ev_system(NULL, "m", TS);
}
static cJSON *b_kicked(void)
{
    return proto_ev_kicked("login elsewhere");
}
static cJSON *b_ts_big(void)
{
    return proto_ev_system(NULL, "m", UINT64_C(999999999999999)); /* year 33658 */
}
static cJSON *b_ts_small(void)
{
    return proto_ev_system(NULL, "m", 7);
}

static const event_case_t event_cases[] = {
    {"chat", b_chat,
     "{\"msgid\":\"" MID "\",\"from\":\"alice\",\"to\":\"bob\",\"ts\":1763890000123,"
     "\"message\":\"hi \\\"bob\\\"\",\"format\":\"text\"}"},
    {"chat default format", b_chat_default_format,
     "{\"msgid\":\"" MID "\",\"from\":\"alice\",\"to\":\"bob\",\"ts\":1763890000123,"
     "\"message\":\"x\",\"format\":\"text\"}"},
    {"chat unicode", b_chat_unicode,
     "{\"msgid\":\"" MID "\",\"from\":\"a\",\"to\":\"b\",\"ts\":0,"
     "\"message\":\"h\xc3\xa9 \xf0\x9f\x98\x80/\",\"format\":\"image\"}"},
    {"group_chat", b_group_chat,
     "{\"msgid\":\"" MID "\",\"group\":\"g42\",\"from\":\"alice\",\"ts\":1763890000123,"
     "\"message\":\"hello\",\"format\":\"text\"}"},
    {"room_chat", b_room_chat,
     "{\"msgid\":\"" MID "\",\"room\":\"world\",\"from\":\"alice\",\"ts\":1763890000123,"
     "\"message\":\"hello\",\"format\":\"file\"}"},
    {"receipt", b_receipt, "{\"msgid\":\"" MID "\",\"by\":\"bob\",\"status\":\"delivered\"}"},
    {"friend_request", b_friend_request,
     "{\"from\":\"alice\",\"note\":\"hi, it's me\",\"ts\":1763890000123}"},
    {"friend_request no note", b_friend_request_no_note,
     "{\"from\":\"alice\",\"note\":\"\",\"ts\":1763890000123}"},
    {"friend_reply yes", b_friend_reply_yes, "{\"from\":\"bob\",\"accept\":true}"},
    {"friend_reply no", b_friend_reply_no, "{\"from\":\"bob\",\"accept\":false}"},
    {"friend_reply nonzero", b_friend_reply_nonzero, "{\"from\":\"bob\",\"accept\":true}"},
    {"presence on", b_presence_on, "{\"user\":\"carol\",\"online\":true}"},
    {"presence off", b_presence_off, "{\"user\":\"carol\",\"online\":false}"},
    {"system", b_system,
     "{\"msgid\":\"" MID "\",\"message\":\"maintenance at 10:00\",\"ts\":1763890000123}"},
    {"system without msgid", b_system_no_msgid, "{\"message\":\"m\",\"ts\":1763890000123}"},
    {"kicked", b_kicked, "{\"reason\":\"login elsewhere\"}"},
    {"ts 10^15-1", b_ts_big, "{\"message\":\"m\",\"ts\":999999999999999}"},
    {"ts small", b_ts_small, "{\"message\":\"m\",\"ts\":7}"},
};

static void test_event_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof event_cases / sizeof event_cases[0]; i++) {
        const event_case_t *c = &event_cases[i];
        cJSON *data = c->build();
        assert_non_null(data);
        char *s = cJSON_PrintUnformatted(data);
        if (strcmp(s, c->want) != 0)
            fail_msg("event '%s': %s\n want %s", c->name, s, c->want);
        free(s);
        cJSON_Delete(data);
    }
}

/* The timestamp is a JSON number holding the exact integer (cJSON prints
 * 15 significant digits, so exact up to 10^15 - 1 ms, the year 33658). */
static void test_ts_is_integer_number(void **state)
{
    (void)state;
    static const uint64_t stamps[] = {0, 1, 1763890000123, 4102444800000, 999999999999999};
    for (size_t i = 0; i < sizeof stamps / sizeof stamps[0]; i++) {
        cJSON *d = proto_ev_friend_request("a", "n", stamps[i]);
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(d, "ts");
        assert_true(cJSON_IsNumber(ts));
        assert_true(ts->valuedouble == (double)stamps[i]);
        char *s = cJSON_PrintUnformatted(ts);
        char want[32];
        snprintf(want, sizeof want, "%llu", (unsigned long long)stamps[i]);
        assert_string_equal(s, want);
        free(s);
        cJSON_Delete(d);
    }
}

/* Wrapped by proto_event, the frame parses back to the same data. */
static void test_event_frame(void **state)
{
    (void)state;
    size_t len = 0;
    char *s = proto_event("chat", b_chat(), &len);
    assert_int_equal(len, strlen(s));
    assert_memory_equal(s, "{\"event\":\"chat\",\"data\":{\"msgid\":", 32);
    cJSON *back = cJSON_ParseWithLength(s, len);
    assert_non_null(back);
    cJSON *want = b_chat();
    assert_true(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(back, "data"), want, 1));
    cJSON_Delete(want);
    cJSON_Delete(back);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_table),
        cmocka_unit_test(test_ts_is_integer_number),
        cmocka_unit_test(test_event_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
