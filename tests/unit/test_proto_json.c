/* Unit tests for proto/json.c: proto_json_print writes what the installed
 * cJSON_PrintUnformatted writes, byte for byte, for chosen edge cases and
 * for many random trees. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"
#include "test_util.h"

#define RANDOM_TREES 20000

/* Both printers on item: same text, and len is its length. */
static void assert_same_text(const cJSON *item)
{
    char *want = cJSON_PrintUnformatted(item);
    size_t len = 12345;
    char *got = proto_json_print(item, &len);
    if (!want) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    if (strcmp(want, got) != 0)
        fail_msg("cJSON wrote %s, proto_json_print %s", want, got);
    assert_int_equal(len, strlen(want));
    free(want);
    free(got);
}

static void assert_number_same(double d)
{
    cJSON *n = cJSON_CreateNumber(d);
    assert_same_text(n);
    cJSON_Delete(n);
}

static void test_numbers(void **state)
{
    (void)state;
    const double cases[] = {
        0, -0.0, 1, -1, 42, INT_MAX, INT_MIN, (double)INT_MAX + 1, (double)INT_MIN - 1,
        1763890000123.0, 176389000012300007.0, 999999999999999.0, -999999999999999.0,
        1e15, 1e15 + 1, 1234567890123456.0, 9007199254740992.0, 9007199254740993.0,
        18446744073709551615.0, 1e300, -1e300, 0.5, -0.5, 0.1, 1.0 / 3, 3.14159,
        1e-5, 1e-300, DBL_MIN, DBL_MAX, -DBL_MAX, 4242.0, 123456.789, 2.5e20,
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_number_same(cases[i]);
    assert_number_same(NAN);
    assert_number_same(INFINITY);
    assert_number_same(-INFINITY);
}

/* Every byte value in a string value and in a key. */
static void test_string_bytes(void **state)
{
    (void)state;
    char s[256];
    for (int i = 1; i < 256; i++)
        s[i - 1] = (char)i;
    s[255] = '\0';
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, s, s);
    cJSON_AddStringToObject(o, "", "");
    cJSON_AddStringToObject(o, "q", "say \"hi\"\\ \n\t\r\b\f \x01\x1f\x7f");
    assert_same_text(o);
    cJSON_Delete(o);
}

static void test_kinds(void **state)
{
    (void)state;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNullToObject(o, "n");
    cJSON_AddTrueToObject(o, "t");
    cJSON_AddFalseToObject(o, "f");
    cJSON_AddRawToObject(o, "r", "{\"x\":[1, 2]}");
    cJSON_AddObjectToObject(o, "eo");
    cJSON_AddArrayToObject(o, "ea");
    cJSON *a = cJSON_AddArrayToObject(o, "a");
    cJSON_AddItemToArray(a, cJSON_CreateNumber(1));
    cJSON_AddItemToArray(a, cJSON_CreateString("two"));
    cJSON_AddItemToArray(a, cJSON_CreateArray());
    cJSON_AddItemReferenceToObject(o, "ref", a); /* a reference prints its target */
    assert_same_text(o);
    cJSON_Delete(o);

    cJSON *empty = cJSON_CreateArray();
    assert_same_text(empty);
    cJSON_Delete(empty);
}

/* A raw item without text: neither printer writes anything. */
static void test_unprintable(void **state)
{
    (void)state;
    cJSON *o = cJSON_CreateObject();
    cJSON *raw = cJSON_CreateRaw("1");
    free(raw->valuestring);
    raw->valuestring = NULL;
    cJSON_AddItemToObject(o, "r", raw);
    assert_null(cJSON_PrintUnformatted(o));
    assert_null(proto_json_print(o, NULL));
    cJSON_Delete(o);
    assert_null(proto_json_print(NULL, NULL));
}

/* ---------------------------------------------------------------- random trees */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    return tu_xorshift(&rng_state);
}

static double random_number(void)
{
    switch (rnd() % 6) {
    case 0: return (double)(int64_t)(rnd() % 2000001) - 1000000;
    case 1: return (double)(rnd() >> (rnd() % 64)); /* any magnitude up to 2^64 */
    case 2: return -(double)(rnd() >> (rnd() % 64));
    case 3: return (double)(rnd() % 100000) / (double)(1 + rnd() % 1000);
    case 4: return ldexp((double)(rnd() >> 11), (int)(rnd() % 200) - 100);
    default: return 1700000000000.0 + (double)(rnd() % 100000000000ull);
    }
}

static char *random_text(char *buf, size_t cap)
{
    size_t n = rnd() % (cap - 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)(rnd() % 4 ? 32 + rnd() % 95 : 1 + rnd() % 255);
        buf[i] = (char)c;
    }
    buf[n] = '\0';
    return buf;
}

static cJSON *random_item(int depth)
{
    char text[40];
    switch (rnd() % (depth < 4 ? 8 : 6)) {
    case 0: return cJSON_CreateNull();
    case 1: return cJSON_CreateBool((int)(rnd() % 2));
    case 2:
    case 3: return cJSON_CreateNumber(random_number());
    case 4: return cJSON_CreateString(random_text(text, sizeof text));
    case 5: return cJSON_CreateRaw("[1,\"x\"]");
    case 6: {
        cJSON *a = cJSON_CreateArray();
        for (int n = (int)(rnd() % 5); n > 0; n--)
            cJSON_AddItemToArray(a, random_item(depth + 1));
        return a;
    }
    default: {
        cJSON *o = cJSON_CreateObject();
        for (int n = (int)(rnd() % 6); n > 0; n--)
            cJSON_AddItemToObject(o, random_text(text, 12), random_item(depth + 1));
        return o;
    }
    }
}

static void test_random_trees(void **state)
{
    (void)state;
    for (int i = 0; i < RANDOM_TREES; i++) {
        cJSON *t = random_item(0);
        assert_same_text(t);
        cJSON_Delete(t);
    }
}

/* A tree larger than the first buffer grows it. */
static void test_large(void **state)
{
    (void)state;
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < 5000; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(1763890000123.0 + i));
    assert_same_text(a);
    cJSON_Delete(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers),      cmocka_unit_test(test_string_bytes),
        cmocka_unit_test(test_kinds),        cmocka_unit_test(test_unprintable),
        cmocka_unit_test(test_random_trees), cmocka_unit_test(test_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
