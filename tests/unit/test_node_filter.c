/* node/filter.c: word-list loading, masking (case, UTF-8, overlaps) and
 * hot-word splitting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "node/node.h"

static node_filter_t *load_words(const char *content)
{
    char path[] = "/tmp/chat-filter-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    char err[128] = "";
    node_filter_t *f = node_filter_load(path, err, sizeof err);
    unlink(path);
    assert_non_null(f);
    return f;
}

static void check_mask(const node_filter_t *f, const char *in, const char *want)
{
    char *out = node_filter_mask(f, in);
    assert_string_equal(out, want);
    free(out);
}

static void test_load_skips_comments_and_blanks(void **state)
{
    (void)state;
    node_filter_t *f = load_words("# a comment\nbad\n\n  worse  \r\n#bad2\nBAD3\n");
    assert_int_equal(node_filter_size(f), 3);
    node_filter_free(f);
}

static void test_missing_file_is_an_error(void **state)
{
    (void)state;
    char err[128] = "";
    assert_null(node_filter_load("/nonexistent/dir/words.txt", err, sizeof err));
    assert_true(err[0] != '\0');
}

static void test_no_list_keeps_text(void **state)
{
    (void)state;
    char err[64] = "";
    node_filter_t *f = node_filter_load(NULL, err, sizeof err);
    assert_non_null(f);
    assert_int_equal(node_filter_size(f), 0);
    check_mask(f, "anything goes", "anything goes");
    node_filter_free(f);
}

static void test_mask_case_insensitive(void **state)
{
    (void)state;
    node_filter_t *f = load_words("darn\n");
    check_mask(f, "oh DARN it, Darn!", "oh **** it, ****!");
    check_mask(f, "darndarn", "********");
    check_mask(f, "no match here", "no match here");
    node_filter_free(f);
}

static void test_mask_overlapping_words(void **state)
{
    (void)state;
    node_filter_t *f = load_words("abc\nbcd\n");
    check_mask(f, "xabcdx", "x****x");
    node_filter_free(f);
}

static void test_mask_utf8_one_star_per_character(void **state)
{
    (void)state;
    node_filter_t *f = load_words("\xc3\xa9t\xc3\xa9\n");     /* "été" */
    check_mask(f, "un \xc3\xa9t\xc3\xa9 chaud", "un *** chaud");
    node_filter_free(f);
}

static void test_mask_empty_text(void **state)
{
    (void)state;
    node_filter_t *f = load_words("x\n");
    check_mask(f, "", "");
    node_filter_free(f);
}

typedef struct words_seen {
    char buf[512];
} words_seen_t;

static void collect(const char *word, size_t len, void *ud)
{
    words_seen_t *w = ud;
    strncat(w->buf, word, len);
    strcat(w->buf, "|");
}

static void test_words_split_and_lowercase(void **state)
{
    (void)state;
    words_seen_t w = {""};
    node_filter_words("Hello, WORLD! a to_be 42", collect, &w);
    assert_string_equal(w.buf, "hello|world|to_be|42|");
}

static void test_words_length_bounds(void **state)
{
    (void)state;
    words_seen_t w = {""};
    char longword[40];
    memset(longword, 'x', 33);
    longword[33] = '\0';
    char text[80];
    snprintf(text, sizeof text, "%s ok i", longword);
    node_filter_words(text, collect, &w);
    assert_string_equal(w.buf, "ok|"); /* 33 bytes and 1 byte are not counted */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_skips_comments_and_blanks),
        cmocka_unit_test(test_missing_file_is_an_error),
        cmocka_unit_test(test_no_list_keeps_text),
        cmocka_unit_test(test_mask_case_insensitive),
        cmocka_unit_test(test_mask_overlapping_words),
        cmocka_unit_test(test_mask_utf8_one_star_per_character),
        cmocka_unit_test(test_mask_empty_text),
        cmocka_unit_test(test_words_split_and_lowercase),
        cmocka_unit_test(test_words_length_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
