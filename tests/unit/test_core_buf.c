/* Tests for core_buf_*, core_bytes_*, core_x* and core_log_parse_level. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"

static void test_buf_append_and_nul(void **state)
{
    core_buf_t b;

    (void)state;
    core_buf_init(&b);
    assert_int_equal(b.len, 0);
    core_buf_append(&b, "abc", 3);
    core_buf_append_str(&b, "def");
    assert_int_equal(b.len, 6);
    assert_string_equal(b.data, "abcdef");
    assert_true(b.cap > b.len);
    core_buf_append(&b, "", 0);
    assert_int_equal(b.len, 6);
    core_buf_free(&b);
    assert_null(b.data);
    core_buf_free(&b); /* twice is fine */
}

static void test_buf_grows_large(void **state)
{
    core_buf_t b;
    char chunk[1000];

    (void)state;
    core_buf_init(&b);
    memset(chunk, 'q', sizeof(chunk));
    for (int i = 0; i < 1000; i++)
        core_buf_append(&b, chunk, sizeof(chunk));
    assert_int_equal(b.len, 1000000);
    assert_int_equal(b.data[999999], 'q');
    assert_int_equal(b.data[1000000], '\0');
    core_buf_free(&b);
}

/* What is reserved is one allocation: appends within it never move the data. */
static void test_buf_reserve(void **state)
{
    (void)state;
    core_buf_t b;
    core_buf_init(&b);
    core_buf_reserve(&b, 1000);
    assert_true(b.cap >= 1001);
    assert_int_equal(b.len, 0);
    const char *data = b.data;
    for (int i = 0; i < 100; i++)
        core_buf_append(&b, "0123456789", 10);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.len, 1000);
    assert_int_equal(b.data[1000], '\0');
    core_buf_reserve(&b, 0); /* room for the NUL only: already there */
    assert_ptr_equal(b.data, data);
    core_buf_free(&b);
}

static void test_buf_printf(void **state)
{
    core_buf_t b;
    char big[300];

    (void)state;
    core_buf_init(&b);
    core_buf_printf(&b, "%d-%s", 42, "x");
    core_buf_printf(&b, "|%05u", 7u);
    assert_string_equal(b.data, "42-x|00007");
    memset(big, 'w', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    core_buf_printf(&b, "%s", big);
    assert_int_equal(b.len, 10 + 299);
    assert_int_equal(strlen(b.data), b.len);
    core_buf_free(&b);
}

static void test_buf_consume_and_reset(void **state)
{
    core_buf_t b;

    (void)state;
    core_buf_init(&b);
    core_buf_reset(&b); /* on an empty buffer */
    core_buf_append_str(&b, "0123456789");
    core_buf_consume(&b, 3);
    assert_string_equal(b.data, "3456789");
    assert_int_equal(b.len, 7);
    core_buf_consume(&b, 0);
    assert_int_equal(b.len, 7);
    core_buf_consume(&b, 100);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    core_buf_append_str(&b, "again");
    core_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    core_buf_free(&b);
}

static void test_bytes_refcount(void **state)
{
    core_bytes_t *b;

    (void)state;
    b = core_bytes_new("frame", 5);
    assert_int_equal(b->refs, 1);
    assert_int_equal(b->len, 5);
    assert_memory_equal(b->data, "frame", 5);
    assert_ptr_equal(core_bytes_ref(b), b);
    assert_int_equal(b->refs, 2);
    core_bytes_unref(b);
    assert_int_equal(b->refs, 1);
    core_bytes_unref(b); /* freed: LeakSanitizer checks the count reached 0 */
    core_bytes_unref(NULL);
    b = core_bytes_new(NULL, 0);
    assert_int_equal(b->len, 0);
    core_bytes_unref(b);
}

static void test_xalloc(void **state)
{
    char *s, *t;
    int *v;

    (void)state;
    s = core_xstrdup("hello");
    assert_string_equal(s, "hello");
    t = core_xstrndup("hello", 3);
    assert_string_equal(t, "hel");
    free(t);
    t = core_xstrndup("hi", 10);
    assert_string_equal(t, "hi");
    free(t);
    s = core_xrealloc(s, 1000);
    assert_string_equal(s, "hello");
    free(s);
    v = core_xcalloc(10, sizeof(*v));
    for (int i = 0; i < 10; i++)
        assert_int_equal(v[i], 0);
    free(v);
    free(core_xmalloc(0));
}

static void test_log_parse_level(void **state)
{
    (void)state;
    assert_int_equal(core_log_parse_level("debug"), CORE_LOG_DEBUG);
    assert_int_equal(core_log_parse_level("INFO"), CORE_LOG_INFO);
    assert_int_equal(core_log_parse_level("warn"), CORE_LOG_WARN);
    assert_int_equal(core_log_parse_level("error"), CORE_LOG_ERROR);
    assert_int_equal(core_log_parse_level("verbose"), -1);
    assert_int_equal(core_log_parse_level(""), -1);
    assert_int_equal(core_log_parse_level(NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_append_and_nul),
        cmocka_unit_test(test_buf_grows_large),
        cmocka_unit_test(test_buf_reserve),
        cmocka_unit_test(test_buf_printf),
        cmocka_unit_test(test_buf_consume_and_reset),
        cmocka_unit_test(test_bytes_refcount),
        cmocka_unit_test(test_xalloc),
        cmocka_unit_test(test_log_parse_level),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
