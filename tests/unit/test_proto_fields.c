/* Unit tests for proto/fields.c: every getter at and around its limits.
 * The data objects come through proto_req_parse, as in the node. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"

#define MID_A "176389000012300000-1a2b"
#define MID_B "176389000012300001-0000"
#define MID_C "999999999999999999-ffff"
#define UNSET "(unset)"
#define UNSET_INT (-777L)

enum kind { K_STRING, K_NAME, K_PASSWORD, K_TEXT, K_FORMAT, K_INT, K_BOOL, K_MSGIDS };

typedef struct field_case {
    const char *name;
    enum kind kind;
    const char *key;
    const char *data; /* the data object, or NULL to generate {key: unit x reps} */
    const char *unit;
    size_t reps;
    int required;
    long min, max; /* K_STRING: byte limits; K_INT: value range; K_MSGIDS: max */
    int rc;
    const char *want_s; /* K_STRING/NAME/PASSWORD/TEXT/FORMAT: expected *out */
    long want_i;        /* K_INT, K_BOOL: expected *out; K_MSGIDS: array size */
    const char *err;    /* substring of e.msg when rc != 0 */
} field_case_t;

#define OK_S(n, k, key, data, req, want) {n, k, key, data, NULL, 0, req, 0, 0, 0, want, 0, NULL}
#define BAD_S(n, k, key, data, req, code, err) \
    {n, k, key, data, NULL, 0, req, 0, 0, code, NULL, 0, err}
#define GEN(n, k, key, unit, reps, code, err) {n, k, key, NULL, unit, reps, 1, 0, 0, code, NULL, 0, err}

static const field_case_t field_cases[] = {
    /* names */
    OK_S("name 1 char", K_NAME, "to", "{\"to\":\"a\"}", 1, "a"),
    OK_S("name charset", K_NAME, "to", "{\"to\":\"a.b-c_D9\"}", 1, "a.b-c_D9"),
    GEN("name 32", K_NAME, "to", "a", 32, 0, NULL),
    GEN("name 33", K_NAME, "to", "a", 33, 400, "field 'to' must be 1..32 characters"),
    BAD_S("name empty", K_NAME, "to", "{\"to\":\"\"}", 1, 400, "field 'to' must be 1..32"),
    BAD_S("name space", K_NAME, "to", "{\"to\":\"a b\"}", 1, 400, "field 'to' must be 1..32"),
    BAD_S("name slash", K_NAME, "to", "{\"to\":\"a/b\"}", 1, 400, "field 'to' must be 1..32"),
    BAD_S("name unicode", K_NAME, "to", "{\"to\":\"\xc3\xa9\"}", 1, 400, "field 'to'"),
    BAD_S("name missing", K_NAME, "to", "{\"To\":\"bob\"}", 1, 400, "missing field 'to'"),
    BAD_S("name null", K_NAME, "to", "{\"to\":null}", 1, 400, "missing field 'to'"),
    BAD_S("name number", K_NAME, "to", "{\"to\":5}", 1, 400, "field 'to' must be a string"),
    BAD_S("name array", K_NAME, "to", "{\"to\":[\"bob\"]}", 1, 400, "field 'to' must be a string"),
    OK_S("name optional absent", K_NAME, "user", "{}", 0, UNSET),
    OK_S("name optional null", K_NAME, "user", "{\"user\":null}", 0, UNSET),
    OK_S("name optional given", K_NAME, "user", "{\"user\":\"bob\"}", 0, "bob"),
    BAD_S("name optional bad", K_NAME, "user", "{\"user\":\"b b\"}", 0, 400, "field 'user'"),

    /* passwords: bytes, not characters */
    GEN("password 5", K_PASSWORD, "password", "x", 5, 400, "field 'password' must be 6..128"),
    GEN("password 6", K_PASSWORD, "password", "x", 6, 0, NULL),
    GEN("password 128", K_PASSWORD, "password", "x", 128, 0, NULL),
    GEN("password 129", K_PASSWORD, "password", "x", 129, 400, "field 'password' must be 6..128"),
    GEN("password 3 x 2-byte", K_PASSWORD, "password", "\xc3\xa9", 3, 0, NULL),
    GEN("password 64 x 2-byte", K_PASSWORD, "password", "\xc3\xa9", 64, 0, NULL),
    GEN("password 65 x 2-byte", K_PASSWORD, "password", "\xc3\xa9", 65, 400, "6..128"),
    BAD_S("password missing", K_PASSWORD, "password", "{}", 1, 400, "missing field 'password'"),
    BAD_S("password number", K_PASSWORD, "password", "{\"password\":123456}", 1, 400,
          "field 'password' must be a string"),

    /* message text: 1..4096 bytes, longer is 413 */
    BAD_S("text empty", K_TEXT, "message", "{\"message\":\"\"}", 1, 400,
          "field 'message' must not be empty"),
    GEN("text 1", K_TEXT, "message", "m", 1, 0, NULL),
    GEN("text 4096", K_TEXT, "message", "m", 4096, 0, NULL),
    GEN("text 4097", K_TEXT, "message", "m", 4097, 413, "field 'message' is too long"),
    GEN("text 65000", K_TEXT, "message", "m", 65000, 413, "too long"),
    GEN("text 4095 bytes of 3-byte", K_TEXT, "message", "\xe6\x97\xa5", 1365, 0, NULL),
    GEN("text 4098 bytes of 3-byte", K_TEXT, "message", "\xe6\x97\xa5", 1366, 413, "too long"),
    GEN("text 4096 bytes of 4-byte", K_TEXT, "message", "\xf0\x9f\x98\x80", 1024, 0, NULL),
    GEN("text 4100 bytes of 4-byte", K_TEXT, "message", "\xf0\x9f\x98\x80", 1025, 413,
        "too long"),
    GEN("text escapes count decoded", K_TEXT, "message", "\\n", 4096, 0, NULL),
    GEN("text escapes 4097 decoded", K_TEXT, "message", "\\u00e9", 2049, 413, "too long"),
    BAD_S("text missing", K_TEXT, "message", "{}", 1, 400, "missing field 'message'"),
    BAD_S("text null", K_TEXT, "message", "{\"message\":null}", 1, 400, "missing field 'message'"),
    BAD_S("text number", K_TEXT, "message", "{\"message\":1}", 1, 400,
          "field 'message' must be a string"),
    BAD_S("text object", K_TEXT, "message", "{\"message\":{}}", 1, 400, "must be a string"),
    OK_S("text unicode", K_TEXT, "message", "{\"message\":\"h\xc3\xa9 \xf0\x9f\x98\x80\"}", 1,
         "h\xc3\xa9 \xf0\x9f\x98\x80"),

    /* format: optional, default "text" */
    OK_S("format absent", K_FORMAT, "format", "{}", 0, "text"),
    OK_S("format null", K_FORMAT, "format", "{\"format\":null}", 0, "text"),
    OK_S("format image", K_FORMAT, "format", "{\"format\":\"image\"}", 0, "image"),
    OK_S("format charset", K_FORMAT, "format", "{\"format\":\"x_1-y\"}", 0, "x_1-y"),
    GEN("format 16", K_FORMAT, "format", "f", 16, 0, NULL),
    GEN("format 17", K_FORMAT, "format", "f", 17, 400, "field 'format' must be 1..16"),
    BAD_S("format empty", K_FORMAT, "format", "{\"format\":\"\"}", 0, 400, "field 'format'"),
    BAD_S("format upper", K_FORMAT, "format", "{\"format\":\"Image\"}", 0, 400, "field 'format'"),
    BAD_S("format space", K_FORMAT, "format", "{\"format\":\"a b\"}", 0, 400, "field 'format'"),
    BAD_S("format number", K_FORMAT, "format", "{\"format\":5}", 0, 400,
          "field 'format' must be a string"),

    /* generic strings */
    {"string absent optional", K_STRING, "nickname", "{}", NULL, 0, 0, 1, 64, 0, UNSET, 0, NULL},
    {"string 64", K_STRING, "nickname", NULL, "n", 64, 0, 1, 64, 0, NULL, 0, NULL},
    {"string 65", K_STRING, "nickname", NULL, "n", 65, 0, 1, 64, 400, NULL, 0,
     "field 'nickname' must be at most 64 bytes"},
    {"string empty", K_STRING, "nickname", "{\"nickname\":\"\"}", NULL, 0, 0, 1, 64, 400, NULL, 0,
     "field 'nickname' must not be empty"},
    {"string min 3", K_STRING, "cid", "{\"cid\":\"ab\"}", NULL, 0, 1, 3, 64, 400, NULL, 0,
     "field 'cid' must be at least 3 bytes"},
    {"string empty allowed", K_STRING, "title", "{\"title\":\"\"}", NULL, 0, 1, 0, 128, 0, "", 0,
     NULL},
    {"string required missing", K_STRING, "title", "{}", NULL, 0, 1, 0, 128, 400, NULL, 0,
     "missing field 'title'"},
    {"string bool", K_STRING, "title", "{\"title\":true}", NULL, 0, 1, 0, 128, 400, NULL, 0,
     "field 'title' must be a string"},

    /* integers */
    {"int 1", K_INT, "limit", "{\"limit\":1}", NULL, 0, 1, 1, 100, 0, NULL, 1, NULL},
    {"int 100", K_INT, "limit", "{\"limit\":100}", NULL, 0, 1, 1, 100, 0, NULL, 100, NULL},
    {"int 1e2", K_INT, "limit", "{\"limit\":1e2}", NULL, 0, 1, 1, 100, 0, NULL, 100, NULL},
    {"int 0", K_INT, "limit", "{\"limit\":0}", NULL, 0, 1, 1, 100, 400, NULL, 0,
     "field 'limit' must be between 1 and 100"},
    {"int 101", K_INT, "limit", "{\"limit\":101}", NULL, 0, 1, 1, 100, 400, NULL, 0,
     "between 1 and 100"},
    {"int negative", K_INT, "limit", "{\"limit\":-1}", NULL, 0, 1, 1, 100, 400, NULL, 0,
     "between 1 and 100"},
    {"int fraction", K_INT, "limit", "{\"limit\":1.5}", NULL, 0, 1, 1, 100, 400, NULL, 0,
     "field 'limit' must be an integer"},
    {"int string", K_INT, "limit", "{\"limit\":\"5\"}", NULL, 0, 1, 1, 100, 400, NULL, 0,
     "field 'limit' must be an integer"},
    {"int bool", K_INT, "limit", "{\"limit\":true}", NULL, 0, 1, 1, 100, 400, NULL, 0,
     "must be an integer"},
    {"int huge", K_INT, "limit", "{\"limit\":1e300}", NULL, 0, 1, 1, 100, 400, NULL, 0,
     "between"},
    {"int -huge", K_INT, "limit", "{\"limit\":-1e300}", NULL, 0, 1, 1, 100, 400, NULL, 0,
     "between"},
    {"int inf", K_INT, "limit", "{\"limit\":1e999}", NULL, 0, 1, 1, 100, 400, NULL, 0, "between"},
    {"int absent optional", K_INT, "limit", "{}", NULL, 0, 0, 1, 100, 0, NULL, UNSET_INT, NULL},
    {"int null optional", K_INT, "limit", "{\"limit\":null}", NULL, 0, 0, 1, 100, 0, NULL,
     UNSET_INT, NULL},
    {"int absent required", K_INT, "limit", "{}", NULL, 0, 1, 1, 100, 400, NULL, 0,
     "missing field 'limit'"},
    {"int 2^63", K_INT, "n", "{\"n\":9223372036854775807}", NULL, 0, 1, LONG_MIN, LONG_MAX, 400,
     NULL, 0, "between"},
    {"int -2^63", K_INT, "n", "{\"n\":-9223372036854775808}", NULL, 0, 1, LONG_MIN, LONG_MAX, 0,
     NULL, LONG_MIN, NULL},
    {"int 2^62", K_INT, "n", "{\"n\":4611686018427387904}", NULL, 0, 1, LONG_MIN, LONG_MAX, 0,
     NULL, 4611686018427387904L, NULL},
    {"int -0", K_INT, "n", "{\"n\":-0}", NULL, 0, 1, LONG_MIN, LONG_MAX, 0, NULL, 0, NULL},

    /* booleans */
    {"bool true", K_BOOL, "accept", "{\"accept\":true}", NULL, 0, 1, 0, 0, 0, NULL, 1, NULL},
    {"bool false", K_BOOL, "accept", "{\"accept\":false}", NULL, 0, 1, 0, 0, 0, NULL, 0, NULL},
    {"bool number", K_BOOL, "accept", "{\"accept\":1}", NULL, 0, 1, 0, 0, 400, NULL, 0,
     "field 'accept' must be true or false"},
    {"bool string", K_BOOL, "accept", "{\"accept\":\"true\"}", NULL, 0, 1, 0, 0, 400, NULL, 0,
     "field 'accept'"},
    {"bool missing", K_BOOL, "accept", "{}", NULL, 0, 1, 0, 0, 400, NULL, 0,
     "missing field 'accept'"},
    {"bool optional", K_BOOL, "accept", "{}", NULL, 0, 0, 0, 0, 0, NULL, UNSET_INT, NULL},

    /* msgid arrays (max 3 here) */
    {"msgids one", K_MSGIDS, "msgids", "{\"msgids\":[\"" MID_A "\"]}", NULL, 0, 1, 0, 3, 0, NULL,
     1, NULL},
    {"msgids max", K_MSGIDS, "msgids",
     "{\"msgids\":[\"" MID_A "\",\"" MID_B "\",\"" MID_C "\"]}", NULL, 0, 1, 0, 3, 0, NULL, 3,
     NULL},
    {"msgids max+1", K_MSGIDS, "msgids",
     "{\"msgids\":[\"" MID_A "\",\"" MID_B "\",\"" MID_C "\",\"" MID_A "\"]}", NULL, 0, 1, 0, 3,
     400, NULL, 0, "field 'msgids' has more than 3 entries"},
    {"msgids empty", K_MSGIDS, "msgids", "{\"msgids\":[]}", NULL, 0, 1, 0, 3, 400, NULL, 0,
     "field 'msgids' must be a non-empty array"},
    {"msgids object", K_MSGIDS, "msgids", "{\"msgids\":{}}", NULL, 0, 1, 0, 3, 400, NULL, 0,
     "non-empty array"},
    {"msgids string", K_MSGIDS, "msgids", "{\"msgids\":\"" MID_A "\"}", NULL, 0, 1, 0, 3, 400,
     NULL, 0, "non-empty array"},
    {"msgids number entry", K_MSGIDS, "msgids", "{\"msgids\":[1]}", NULL, 0, 1, 0, 3, 400, NULL,
     0, "field 'msgids' entry 0 is not a valid msgid"},
    {"msgids bad entry", K_MSGIDS, "msgids",
     "{\"msgids\":[\"" MID_A "\",\"176389000012300000-1a2\"]}", NULL, 0, 1, 0, 3, 400, NULL, 0,
     "entry 1 is not a valid msgid"},
    {"msgids missing", K_MSGIDS, "msgids", "{}", NULL, 0, 1, 0, 3, 400, NULL, 0,
     "missing field 'msgids'"},
};

static char *gen_data(const field_case_t *c)
{
    size_t ulen = strlen(c->unit);
    size_t cap = strlen(c->key) + ulen * c->reps + 16;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t n = (size_t)snprintf(s, cap, "{\"%s\":\"", c->key);
    for (size_t i = 0; i < c->reps; i++, n += ulen)
        memcpy(s + n, c->unit, ulen);
    snprintf(s + n, cap - n, "\"}");
    return s;
}

/* Decoded value of a generated string, for comparison with *out. */
static size_t gen_decoded_len(const field_case_t *c)
{
    if (strcmp(c->unit, "\\n") == 0)
        return c->reps;
    if (strcmp(c->unit, "\\u00e9") == 0)
        return 2 * c->reps;
    return strlen(c->unit) * c->reps;
}

static int call(const field_case_t *c, const cJSON *data, const char **s, long *i,
                proto_err_t *e)
{
    int b = (int)UNSET_INT;
    const cJSON *arr = NULL;
    int rc;
    switch (c->kind) {
    case K_STRING:
        return proto_get_string(data, c->key, c->required, (size_t)c->min, (size_t)c->max, s, e);
    case K_NAME:
        return proto_get_name(data, c->key, c->required, s, e);
    case K_PASSWORD:
        return proto_get_password(data, c->key, s, e);
    case K_TEXT:
        return proto_get_text(data, c->key, s, e);
    case K_FORMAT:
        return proto_get_format(data, s, e);
    case K_INT:
        return proto_get_int(data, c->key, c->required, c->min, c->max, i, e);
    case K_BOOL:
        rc = proto_get_bool(data, c->key, c->required, &b, e);
        *i = b;
        return rc;
    case K_MSGIDS:
        rc = proto_get_msgids(data, c->key, (size_t)c->max, &arr, e);
        *i = rc == 0 ? cJSON_GetArraySize(arr) : 0;
        if (rc == 0 && arr != cJSON_GetObjectItemCaseSensitive(data, c->key))
            fail_msg("case '%s': arr is not the field", c->name);
        return rc;
    }
    return -1;
}

static void check_case(const field_case_t *c)
{
    char *gen = c->data ? NULL : gen_data(c);
    char *frame = malloc(strlen(c->data ? c->data : gen) + 32);
    assert_non_null(frame);
    sprintf(frame, "{\"action\":\"a\",\"data\":%s}", c->data ? c->data : gen);
    proto_req_t req;
    proto_err_t e = {0};
    if (proto_req_parse(frame, strlen(frame), &req, &e) != 0)
        fail_msg("case '%s': frame rejected: %s", c->name, e.msg);

    const char *s = UNSET;
    long i = UNSET_INT;
    int rc = call(c, req.data, &s, &i, &e);
    if (rc != c->rc)
        fail_msg("case '%s': rc %d want %d (%s)", c->name, rc, c->rc, e.msg);
    if (rc != 0 && (e.code != rc || !strstr(e.msg, c->err)))
        fail_msg("case '%s': error %d '%s', want '%s'", c->name, e.code, e.msg, c->err);
    int is_str = c->kind <= K_FORMAT;
    if (rc != 0 && is_str && strcmp(s, UNSET) != 0)
        fail_msg("case '%s': out written on failure", c->name);
    if (rc == 0 && is_str && c->want_s && strcmp(s, c->want_s) != 0)
        fail_msg("case '%s': out '%s' want '%s'", c->name, s, c->want_s);
    if (rc == 0 && is_str && !c->data && strlen(s) != gen_decoded_len(c))
        fail_msg("case '%s': out has %zu bytes", c->name, strlen(s));
    if (rc == 0 && !is_str && i != c->want_i)
        fail_msg("case '%s': out %ld want %ld", c->name, i, c->want_i);
    proto_req_free(&req);
    free(frame);
    free(gen);
}

static void test_field_table(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof field_cases / sizeof field_cases[0]; k++)
        check_case(&field_cases[k]);
}

/* A NULL or non-object data behaves as an empty object. */
static void test_no_data(void **state)
{
    (void)state;
    proto_err_t e;
    const char *s = UNSET;
    long l = UNSET_INT;
    assert_int_equal(proto_get_name(NULL, "to", 1, &s, &e), 400);
    assert_string_equal(e.msg, "missing field 'to'");
    assert_int_equal(proto_get_name(NULL, "to", 0, &s, &e), 0);
    assert_string_equal(s, UNSET);
    assert_int_equal(proto_get_format(NULL, &s, &e), 0);
    assert_string_equal(s, "text");
    cJSON *arr = cJSON_CreateArray();
    assert_int_equal(proto_get_int(arr, "limit", 0, 1, 10, &l, &e), 0);
    assert_int_equal(l, UNSET_INT);
    cJSON_Delete(arr);
}

static void test_valid_name(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
        int ok;
    } cases[] = {
        {"a", 1, 1},
        {"abcdefghijklmnopqrstuvwxyz012345", 32, 1},
        {"abcdefghijklmnopqrstuvwxyz0123456", 33, 0},
        {"", 0, 0},
        {"A-Z_a.z-09", 10, 1},
        {"bob\0x", 5, 0},
        {"bob x", 5, 0},
        {"bob@", 4, 0},
        {"b\xc3\xa9", 3, 0},
        {"bob", 2, 1}, /* only len bytes are looked at */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (proto_valid_name(cases[i].s, cases[i].len) != cases[i].ok)
            fail_msg("valid_name case %zu", i);
    assert_int_equal(proto_valid_name(NULL, 3), 0);
}

static void test_fail_formats_safely(void **state)
{
    (void)state;
    proto_err_t e;
    char big[400];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(proto_fail(&e, 413, "field '%s' too long", big), 413);
    assert_int_equal(e.code, 413);
    assert_int_equal(strlen(e.msg), sizeof e.msg - 1);
    assert_memory_equal(e.msg, "field 'xxx", 10);
    assert_int_equal(proto_fail(NULL, 503, "no store"), 503);
    assert_int_equal(proto_fail(&e, 404, "user '%s' not found", "bob"), 404);
    assert_string_equal(e.msg, "user 'bob' not found");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_field_table),
        cmocka_unit_test(test_no_data),
        cmocka_unit_test(test_valid_name),
        cmocka_unit_test(test_fail_formats_safely),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
