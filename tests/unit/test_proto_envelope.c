/* Unit tests for proto/envelope.c: request parsing and response encoding.
 * Every frame is parsed from a copy that ends exactly at a PROT_NONE page,
 * so any read past the frame's length faults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/proto.h"

/* ------------------------------------------------------------ guard page */

typedef struct guarded {
    char *map;
    size_t maplen;
    const char *data;
} guarded_t;

static guarded_t guard_copy(const char *src, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t body = (len + page - 1) / page * page;
    if (body == 0)
        body = page;
    guarded_t g = {0};
    g.maplen = body + page;
    g.map = mmap(NULL, g.maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g.map != MAP_FAILED);
    assert_int_equal(mprotect(g.map + body, page, PROT_NONE), 0);
    char *dst = g.map + body - len;
    if (len)
        memcpy(dst, src, len);
    g.data = dst;
    return g;
}

static void guard_free(guarded_t *g)
{
    munmap(g->map, g->maplen);
}

static int parse_guarded(const char *src, size_t len, proto_req_t *req, proto_err_t *e)
{
    guarded_t g = guard_copy(src, len);
    int rc = proto_req_parse(g.data, len, req, e);
    /* The request must not point into the frame: the caller frees it next. */
    guard_free(&g);
    return rc;
}

/* ------------------------------------------------------------ parse table */

typedef struct parse_case {
    const char *name;
    const char *in;
    size_t len;         /* 0: strlen(in) */
    int rc;
    const char *id_out; /* how the id is echoed, NULL: no id */
    const char *action; /* on success */
    const char *err;    /* substring of e.msg on failure */
} parse_case_t;

static const parse_case_t parse_cases[] = {
    {"minimal", "{\"action\":\"ping\"}", 0, 0, NULL, "ping", NULL},
    {"int id", "{\"id\":7,\"action\":\"chat\",\"data\":{\"to\":\"bob\"}}", 0, 0, "7", "chat", NULL},
    {"zero id", "{\"id\":0,\"action\":\"a\"}", 0, 0, "0", "a", NULL},
    {"negative id", "{\"id\":-5,\"action\":\"a\"}", 0, 0, "-5", "a", NULL},
    {"id beyond int", "{\"id\":4294967296,\"action\":\"a\"}", 0, 0, "4294967296", "a", NULL},
    {"id 2^53", "{\"id\":9007199254740992,\"action\":\"a\"}", 0, 0, "9007199254740992", "a",
     NULL},
    {"id -2^53", "{\"id\":-9007199254740992,\"action\":\"a\"}", 0, 0, "-9007199254740992", "a",
     NULL},
    {"id exponent", "{\"id\":1e3,\"action\":\"a\"}", 0, 0, "1000", "a", NULL},
    {"id 2.0", "{\"id\":2.0,\"action\":\"a\"}", 0, 0, "2", "a", NULL},
    {"string id", "{\"id\":\"abc\",\"action\":\"a\"}", 0, 0, "\"abc\"", "a", NULL},
    {"empty string id", "{\"id\":\"\",\"action\":\"a\"}", 0, 0, "\"\"", "a", NULL},
    {"unicode string id", "{\"id\":\"\xc3\xaf" "d/\\\"q\\\\\xf0\x9f\x98\x80\",\"action\":\"a\"}", 0, 0,
     "\"\xc3\xaf" "d/\\\"q\\\\\xf0\x9f\x98\x80\"", "a", NULL},
    {"escaped unicode id", "{\"id\":\"\\u00e9\\ud83d\\ude00\",\"action\":\"a\"}", 0, 0,
     "\"\xc3\xa9\xf0\x9f\x98\x80\"", "a", NULL},
    {"data given", "{\"action\":\"a\",\"data\":{\"x\":1}}", 0, 0, NULL, "a", NULL},
    {"empty action", "{\"action\":\"\"}", 0, 0, NULL, "", NULL},
    {"trailing whitespace", "{\"action\":\"a\"} \t\r\n", 0, 0, NULL, "a", NULL},
    {"leading whitespace", " \n{\"action\":\"a\"}", 0, 0, NULL, "a", NULL},
    {"unicode data", "{\"action\":\"chat\",\"data\":{\"m\":\"h\xc3\xa9llo \xe6\x97\xa5 \xf0\x9f\x98\x80\"}}",
     0, 0, NULL, "chat", NULL},
    {"escaped backslash then u0000", "{\"action\":\"a\",\"data\":{\"m\":\"\\\\u0000\"}}", 0, 0, NULL,
     "a", NULL},

    {"empty frame", "", 0, 400, NULL, NULL, "empty"},
    {"bad json", "{", 0, 400, NULL, NULL, "invalid JSON"},
    {"bad json value", "{\"action\":}", 0, 400, NULL, NULL, "invalid JSON"},
    {"truncated literal", "nul", 0, 400, NULL, NULL, "invalid JSON"},
    {"unterminated string", "{\"action\":\"abc", 0, 400, NULL, NULL, "invalid JSON"},
    {"array frame", "[1,2]", 0, 400, NULL, NULL, "JSON object"},
    {"empty array frame", "[]", 0, 400, NULL, NULL, "JSON object"},
    {"number frame", "42", 0, 400, NULL, NULL, "JSON object"},
    {"string frame", "\"action\"", 0, 400, NULL, NULL, "JSON object"},
    {"null frame", "null", 0, 400, NULL, NULL, "JSON object"},
    {"true frame", "true", 0, 400, NULL, NULL, "JSON object"},
    {"missing action", "{\"id\":3}", 0, 400, "3", NULL, "missing field 'action'"},
    {"action case", "{\"id\":3,\"Action\":\"a\"}", 0, 400, "3", NULL, "missing field 'action'"},
    {"action number", "{\"id\":\"q\",\"action\":5}", 0, 400, "\"q\"", NULL,
     "field 'action' must be a string"},
    {"action null", "{\"action\":null}", 0, 400, NULL, NULL, "field 'action' must be a string"},
    {"data array", "{\"id\":1,\"action\":\"a\",\"data\":[]}", 0, 400, "1", NULL,
     "field 'data' must be an object"},
    {"data null", "{\"id\":1,\"action\":\"a\",\"data\":null}", 0, 400, "1", NULL,
     "field 'data' must be an object"},
    {"data string", "{\"id\":1,\"action\":\"a\",\"data\":\"x\"}", 0, 400, "1", NULL,
     "field 'data' must be an object"},
    {"id float", "{\"id\":1.5,\"action\":\"a\"}", 0, 400, NULL, NULL, "field 'id'"},
    {"id huge", "{\"id\":1e300,\"action\":\"a\"}", 0, 400, NULL, NULL, "field 'id'"},
    {"id -huge", "{\"id\":-1e300,\"action\":\"a\"}", 0, 400, NULL, NULL, "field 'id'"},
    {"id overflow", "{\"id\":1e999,\"action\":\"a\"}", 0, 400, NULL, NULL, "field 'id'"},
    {"id 2^53+2", "{\"id\":9007199254740994,\"action\":\"a\"}", 0, 400, NULL, NULL, "field 'id'"},
    {"id int64 max", "{\"id\":9223372036854775807,\"action\":\"a\"}", 0, 400, NULL, NULL,
     "field 'id'"},
    {"id bool", "{\"id\":true,\"action\":\"a\"}", 0, 400, NULL, NULL, "field 'id'"},
    {"id null", "{\"id\":null,\"action\":\"a\"}", 0, 400, NULL, NULL, "field 'id'"},
    {"id object", "{\"id\":{},\"action\":\"a\"}", 0, 400, NULL, NULL, "field 'id'"},
    {"id array", "{\"id\":[1],\"action\":\"a\"}", 0, 400, NULL, NULL, "field 'id'"},
    {"trailing garbage", "{\"id\":9,\"action\":\"a\"} x", 0, 400, "9", NULL, "after the JSON"},
    {"two objects", "{\"action\":\"a\"}{\"action\":\"b\"}", 0, 400, NULL, NULL, "after the JSON"},
    {"nul byte in string", "{\"action\":\"a\0b\"}", 16, 400, NULL, NULL, "NUL"},
    {"nul byte after object", "{\"action\":\"a\"}\0", 15, 400, NULL, NULL, "NUL"},
    {"escaped nul", "{\"action\":\"a\\u0000b\"}", 0, 400, NULL, NULL, "u0000"},
    {"escaped nul with id", "{\"id\":5,\"action\":\"a\\u0000b\"}", 0, 400, "5", NULL, "u0000"},
    {"escaped nul in data", "{\"id\":\"k\",\"action\":\"chat\",\"data\":{\"to\":\"b\\u0000x\",\"message\":\"hi\"}}",
     0, 400, "\"k\"", NULL, "u0000"},
    {"escaped nul id after", "{\"action\":\"a\",\"data\":{\"m\":\"\\u0000\"},\"id\":-2}", 0, 400, "-2", NULL,
     "u0000"},
    {"escaped nul in the id", "{\"id\":\"a\\u0000\",\"action\":\"a\"}", 0, 400, NULL, NULL, "u0000"},
    {"escaped nul, bad json", "{\"id\":5,\"action\":\"\\u0000\"", 0, 400, NULL, NULL, "u0000"},
    {"escaped nul, array", "[\"\\u0000\"]", 0, 400, NULL, NULL, "u0000"},
    {"escaped nul, bad id", "{\"id\":1.5,\"action\":\"\\u0000\"}", 0, 400, NULL, NULL, "u0000"},
    {"invalid utf8 ff", "{\"action\":\"\xff\"}", 0, 400, NULL, NULL, "UTF-8"},
    {"overlong utf8", "{\"action\":\"\xc0\xaf\"}", 0, 400, NULL, NULL, "UTF-8"},
    {"utf8 surrogate", "{\"action\":\"\xed\xa0\x80\"}", 0, 400, NULL, NULL, "UTF-8"},
    {"utf8 above max", "{\"action\":\"\xf4\x90\x80\x80\"}", 0, 400, NULL, NULL, "UTF-8"},
    {"truncated utf8 at end", "{\"action\":\"a\"}\xe6\x97", 0, 400, NULL, NULL, "UTF-8"},
    {"lone escaped surrogate", "{\"action\":\"\\ud800\"}", 0, 400, NULL, NULL, "invalid JSON"},
};

static void check_parse_case(const parse_case_t *c)
{
    size_t len = c->len ? c->len : strlen(c->in);
    proto_req_t req;
    proto_err_t e = {0};
    int rc = parse_guarded(c->in, len, &req, &e);
    if (rc != c->rc)
        fail_msg("case '%s': rc %d, want %d (%s)", c->name, rc, c->rc, e.msg);
    if (rc == 0) {
        if (!req.action || strcmp(req.action, c->action) != 0)
            fail_msg("case '%s': action '%s'", c->name, req.action ? req.action : "(null)");
        if (!cJSON_IsObject(req.data))
            fail_msg("case '%s': data is not an object", c->name);
    } else {
        if (e.code != c->rc || !strstr(e.msg, c->err))
            fail_msg("case '%s': error %d '%s', want '%s'", c->name, e.code, e.msg, c->err);
        if (req.action || req.data)
            fail_msg("case '%s': action/data set on failure", c->name);
    }
    if ((req.id != NULL) != (c->id_out != NULL))
        fail_msg("case '%s': id %s", c->name, req.id ? "set" : "missing");

    /* The id must echo unchanged in the error reply the caller would send. */
    size_t olen = 0;
    char *out = proto_error(req.id, "error", 400, "x", &olen);
    char want[512];
    if (c->id_out)
        snprintf(want, sizeof want, "{\"id\":%s,\"action\":\"error\",\"code\":400,\"error\":\"x\"}",
                 c->id_out);
    else
        snprintf(want, sizeof want, "{\"action\":\"error\",\"code\":400,\"error\":\"x\"}");
    if (strcmp(out, want) != 0)
        fail_msg("case '%s': reply %s, want %s", c->name, out, want);
    assert_int_equal(olen, strlen(out));
    free(out);
    proto_req_free(&req);
    assert_null(req.root);
}

static void test_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++)
        check_parse_case(&parse_cases[i]);
}

/* A prefix of a valid frame is never accepted, and never read past. */
static void test_parse_every_prefix(void **state)
{
    (void)state;
    const char *frame = "{\"id\":\"k\",\"action\":\"chat\",\"data\":{\"to\":\"bob\",\"message\":\"hi\"}}";
    size_t n = strlen(frame);
    for (size_t k = 0; k < n; k++) {
        proto_req_t req;
        proto_err_t e;
        int rc = parse_guarded(frame, k, &req, &e);
        if (rc != 400)
            fail_msg("prefix %zu accepted", k);
        proto_req_free(&req);
    }
    proto_req_t req;
    proto_err_t e;
    assert_int_equal(parse_guarded(frame, n, &req, &e), 0);
    proto_req_free(&req);
}

/* ------------------------------------------------------------ depth */

/* {"id":1,"action":"a","data":{"x":{"x":...}}}, root at depth 1. */
static char *nested_frame(int depth, int arrays)
{
    size_t cap = 64 + (size_t)depth * 8;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t n = (size_t)snprintf(s, cap, "{\"id\":1,\"action\":\"a\",\"data\":");
    for (int i = 2; i < depth; i++)
        n += (size_t)snprintf(s + n, cap - n, arrays ? "[" : "{\"x\":");
    n += (size_t)snprintf(s + n, cap - n, "{}");
    for (int i = 2; i < depth; i++)
        n += (size_t)snprintf(s + n, cap - n, arrays ? "]" : "}");
    snprintf(s + n, cap - n, "}");
    return s;
}

static void test_depth_limit(void **state)
{
    (void)state;
    static const struct {
        int depth, arrays, rc;
        const char *err;
    } cases[] = {
        {2, 0, 0, NULL},
        {15, 0, 0, NULL},
        {16, 0, 0, NULL},
        {17, 0, 400, "nested deeper than 16"},
        {100, 0, 400, "nested deeper than 16"},
        {16, 1, 400, "field 'data' must be an object"}, /* depth fine, data an array */
        {17, 1, 400, "nested deeper than 16"},
        {999, 1, 400, "nested deeper than 16"},
        {5000, 1, 400, "invalid JSON"}, /* past cJSON's own nesting limit */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = nested_frame(cases[i].depth, cases[i].arrays);
        proto_req_t req;
        proto_err_t e;
        int rc = parse_guarded(s, strlen(s), &req, &e);
        if (rc != cases[i].rc)
            fail_msg("depth %d arrays %d: rc %d (%s)", cases[i].depth, cases[i].arrays, rc,
                     e.msg);
        if (rc && !strstr(e.msg, cases[i].err))
            fail_msg("depth %d arrays %d: error '%s'", cases[i].depth, cases[i].arrays, e.msg);
        /* the id stays readable unless cJSON itself gave up */
        if ((req.id != NULL) != (cases[i].depth < 1000))
            fail_msg("depth %d: id %s", cases[i].depth, req.id ? "set" : "missing");
        proto_req_free(&req);
        free(s);
    }
}

/* Depth counts arrays too: action present, deep array under data.x. */
static void test_depth_arrays_in_data(void **state)
{
    (void)state;
    for (int depth = 3; depth <= 20; depth++) {
        char s[256];
        size_t n = (size_t)snprintf(s, sizeof s, "{\"action\":\"a\",\"data\":{\"x\":");
        for (int i = 3; i < depth; i++)
            s[n++] = '[';
        s[n++] = '1';
        for (int i = 3; i < depth; i++)
            s[n++] = ']';
        n += (size_t)snprintf(s + n, sizeof s - n, "}}");
        proto_req_t req;
        proto_err_t e;
        int rc = parse_guarded(s, n, &req, &e);
        /* root=1, data=2, x's arrays 3..depth-1: deepest container is depth-1 */
        int want = depth - 1 > PROTO_MAX_DEPTH ? 400 : 0;
        if (rc != want)
            fail_msg("array depth %d: rc %d (%s)", depth, rc, e.msg);
        proto_req_free(&req);
    }
}

/* ------------------------------------------------------------ large frames */

static void test_large_frame(void **state)
{
    (void)state;
    size_t text = 65000;
    char *s = malloc(text + 64);
    assert_non_null(s);
    size_t n = (size_t)sprintf(s, "{\"action\":\"chat\",\"data\":{\"message\":\"");
    memset(s + n, 'a', text);
    n += text;
    n += (size_t)sprintf(s + n, "\"}}");
    proto_req_t req;
    proto_err_t e;
    assert_int_equal(parse_guarded(s, n, &req, &e), 0);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(req.data, "message");
    assert_true(cJSON_IsString(m));
    assert_int_equal(strlen(m->valuestring), text);
    proto_req_free(&req);
    free(s);
}

static void test_free_is_safe(void **state)
{
    (void)state;
    proto_req_free(NULL);
    proto_req_t req;
    proto_err_t e;
    assert_int_equal(proto_req_parse("[", 1, &req, &e), 400);
    proto_req_free(&req);
    proto_req_free(&req); /* second free of a cleared request is a no-op */
    assert_int_equal(proto_req_parse(NULL, 0, &req, NULL), 400); /* e may be NULL */
    proto_req_free(&req);
}

/* ------------------------------------------------------------ responses */

static cJSON *parse_id(const char *frame)
{
    proto_req_t req;
    proto_err_t e;
    assert_int_equal(proto_req_parse(frame, strlen(frame), &req, &e), 0);
    cJSON *id = req.id ? cJSON_Duplicate(req.id, 1) : NULL;
    proto_req_free(&req);
    return id;
}

static void test_ok_encoding(void **state)
{
    (void)state;
    static const struct {
        const char *frame, *action, *data, *want;
    } cases[] = {
        {"{\"action\":\"ping\"}", "ping", NULL, "{\"action\":\"ping\",\"code\":0,\"data\":{}}"},
        {"{\"id\":4242,\"action\":\"chat\"}", "chat", "{\"x\":1}",
         "{\"id\":4242,\"action\":\"chat\",\"code\":0,\"data\":{\"x\":1}}"},
        {"{\"id\":-1,\"action\":\"a\"}", "a", "{}", "{\"id\":-1,\"action\":\"a\",\"code\":0,\"data\":{}}"},
        {"{\"id\":1099511627776,\"action\":\"a\"}", "a", NULL,
         "{\"id\":1099511627776,\"action\":\"a\",\"code\":0,\"data\":{}}"},
        {"{\"id\":\"r/1\",\"action\":\"login\"}", "login", "{\"user\":\"bob\",\"pending\":0}",
         "{\"id\":\"r/1\",\"action\":\"login\",\"code\":0,\"data\":{\"user\":\"bob\",\"pending\":0}}"},
        {"{\"id\":\"\\\"\\\\\\n\\t\",\"action\":\"a\"}", "a", NULL,
         "{\"id\":\"\\\"\\\\\\n\\t\",\"action\":\"a\",\"code\":0,\"data\":{}}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *id = parse_id(cases[i].frame);
        cJSON *data = cases[i].data ? cJSON_Parse(cases[i].data) : NULL;
        size_t len = 0;
        char *out = proto_ok(id, cases[i].action, data, &len);
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("ok case %zu: %s", i, out);
        assert_int_equal(len, strlen(out));
        free(out);
        cJSON_Delete(id);
    }
}

static void test_error_encoding(void **state)
{
    (void)state;
    cJSON *id = parse_id("{\"id\":7,\"action\":\"chat\"}");
    char *out = proto_error(id, "chat", 404, "user 'bob' not found", NULL);
    assert_string_equal(out, "{\"id\":7,\"action\":\"chat\",\"code\":404,\"error\":\"user 'bob' not found\"}");
    free(out);
    cJSON_Delete(id);

    size_t len = 0;
    out = proto_error(NULL, "error", 400, "invalid JSON", &len);
    assert_string_equal(out, "{\"action\":\"error\",\"code\":400,\"error\":\"invalid JSON\"}");
    assert_int_equal(len, strlen(out));
    free(out);

    out = proto_error(NULL, "x", 500, NULL, NULL); /* NULL text is an empty string */
    assert_string_equal(out, "{\"action\":\"x\",\"code\":500,\"error\":\"\"}");
    free(out);
}

static void test_event_encoding(void **state)
{
    (void)state;
    size_t len = 0;
    char *out = proto_event("kicked", proto_ev_kicked("login elsewhere"), &len);
    assert_string_equal(out, "{\"event\":\"kicked\",\"data\":{\"reason\":\"login elsewhere\"}}");
    assert_int_equal(len, strlen(out));
    free(out);
    out = proto_event("system", NULL, NULL);
    assert_string_equal(out, "{\"event\":\"system\",\"data\":{}}");
    free(out);
}

/* An event around stored JSON text is byte for byte the one built from the
 * tree; the name is escaped as proto_event escapes it. */
static void test_event_text_matches_tree(void **state)
{
    (void)state;
    const char *names[] = {"chat", "system", "odd \"name\"\n"};
    cJSON *datas[] = {
        proto_ev_chat("m1", "ann", "bob", 1764000000123ull, "q\"uote\\ \x01 \xc3\xa9", "text"),
        proto_ev_system("m2", "maintenance at 5", 1764000000999ull),
        proto_ev_kicked("login elsewhere"),
        cJSON_CreateObject(),
    };
    for (size_t i = 0; i < sizeof datas / sizeof datas[0]; i++) {
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
            char *text = proto_json_print(datas[i], NULL);
            size_t tree_len = 0, text_len = 0;
            char *from_tree = proto_event(names[k], cJSON_Duplicate(datas[i], 1), &tree_len);
            char *from_text = proto_event_text(names[k], text, &text_len);
            assert_string_equal(from_text, from_tree);
            assert_int_equal(text_len, tree_len);
            assert_int_equal(text_len, strlen(from_text));
            free(text);
            free(from_tree);
            free(from_text);
        }
        cJSON_Delete(datas[i]);
    }
    char *empty = proto_event_text("system", NULL, NULL); /* as proto_event(name, NULL) */
    assert_string_equal(empty, "{\"event\":\"system\",\"data\":{}}");
    free(empty);
}

/* Every successful parse's id survives proto_ok -> proto_req_parse. */
static void test_id_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const parse_case_t *c = &parse_cases[i];
        if (c->rc != 0 || !c->id_out)
            continue;
        size_t len = c->len ? c->len : strlen(c->in);
        proto_req_t a, b;
        proto_err_t e;
        assert_int_equal(proto_req_parse(c->in, len, &a, &e), 0);
        size_t olen = 0;
        char *out = proto_ok(a.id, a.action, NULL, &olen);
        if (proto_req_parse(out, olen, &b, &e) != 0)
            fail_msg("case '%s': reply does not parse: %s", c->name, out);
        if (!cJSON_Compare(a.id, b.id, 1))
            fail_msg("case '%s': id changed: %s", c->name, out);
        free(out);
        proto_req_free(&a);
        proto_req_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parse_every_prefix),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_depth_arrays_in_data),
        cmocka_unit_test(test_large_frame),
        cmocka_unit_test(test_free_is_safe),
        cmocka_unit_test(test_ok_encoding),
        cmocka_unit_test(test_error_encoding),
        cmocka_unit_test(test_event_encoding),
        cmocka_unit_test(test_event_text_matches_tree),
        cmocka_unit_test(test_id_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
