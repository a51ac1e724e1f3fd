/* Tests for core_utf8_valid, clocks and deadlines, core_install_signals,
 * log lines and the number and URL parsers. */
#include <math.h>
#include <regex.h>
#include <getopt.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core.h"

typedef struct utf8_case {
    const char *bytes;
    size_t len; /* 0: strlen */
    int valid;
    const char *what;
} utf8_case_t;

static const utf8_case_t utf8_cases[] = {
    {"", 0, 1, "empty"},
    {"plain ascii text, longer than eight bytes", 0, 1, "ascii"},
    {"a\0b", 3, 1, "embedded NUL is valid UTF-8"},
    {"\x7f", 0, 1, "DEL"},
    {"\xc2\x80", 0, 1, "U+0080"},
    {"caf\xc3\xa9", 0, 1, "2-byte"},
    {"\xdf\xbf", 0, 1, "U+07FF"},
    {"\xe0\xa0\x80", 0, 1, "U+0800"},
    {"\xe2\x82\xac", 0, 1, "euro sign"},
    {"\xed\x9f\xbf", 0, 1, "U+D7FF"},
    {"\xee\x80\x80", 0, 1, "U+E000"},
    {"\xef\xbf\xbd", 0, 1, "U+FFFD"},
    {"\xef\xbf\xbf", 0, 1, "U+FFFF (noncharacter, still valid)"},
    {"\xf0\x90\x80\x80", 0, 1, "U+10000"},
    {"\xf0\x9f\x98\x80 emoji after ascii", 0, 1, "emoji"},
    {"\xf4\x8f\xbf\xbf", 0, 1, "U+10FFFF"},
    {"12345678\xc3\xa9" "12345678", 0, 1, "multibyte between ascii words"},
    {"\x80", 0, 0, "lone continuation"},
    {"\xbf", 0, 0, "lone continuation bf"},
    {"\xc0\x80", 0, 0, "overlong NUL"},
    {"\xc1\xbf", 0, 0, "overlong 2-byte"},
    {"\xe0\x80\x80", 0, 0, "overlong 3-byte"},
    {"\xe0\x9f\xbf", 0, 0, "overlong U+07FF"},
    {"\xf0\x80\x80\x80", 0, 0, "overlong 4-byte"},
    {"\xf0\x8f\xbf\xbf", 0, 0, "overlong U+FFFF"},
    {"\xed\xa0\x80", 0, 0, "high surrogate U+D800"},
    {"\xed\xbf\xbf", 0, 0, "low surrogate U+DFFF"},
    {"\xed\xa0\xbd\xed\xb8\x80", 0, 0, "CESU-8 surrogate pair"},
    {"\xf4\x90\x80\x80", 0, 0, "U+110000"},
    {"\xf5\x80\x80\x80", 0, 0, "lead f5"},
    {"\xf8\x88\x80\x80\x80", 0, 0, "5-byte form"},
    {"\xfe", 0, 0, "fe"},
    {"\xff", 0, 0, "ff"},
    {"\xc3", 0, 0, "truncated 2-byte"},
    {"\xe2\x82", 0, 0, "truncated 3-byte"},
    {"\xf0\x9f\x98", 0, 0, "truncated 4-byte"},
    {"abcdefgh\xf0\x9f\x98", 0, 0, "truncated after ascii block"},
    {"\xc3\x28", 0, 0, "bad continuation"},
    {"\xe2\x28\xa1", 0, 0, "bad 2nd of 3"},
    {"\xe2\x82\x28", 0, 0, "bad 3rd of 3"},
    {"\xf0\x9f\x28\x80", 0, 0, "bad 3rd of 4"},
    {"\xf0\x9f\x98\x28", 0, 0, "bad 4th of 4"},
    {"abcdefghijklmno\x80pq", 0, 0, "continuation inside ascii run"},
};

static void test_utf8_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
        const utf8_case_t *c = &utf8_cases[i];
        size_t len = c->len ? c->len : strlen(c->bytes);
        int got = core_utf8_valid(c->bytes, len);
        if (got != c->valid)
            fail_msg("utf8 case '%s': got %d, want %d", c->what, got, c->valid);
    }
}

/* The validator never reads past len: a valid prefix of an invalid buffer. */
static void test_utf8_respects_len(void **state)
{
    const char *s = "ok\xc3\xa9\xff";

    (void)state;
    assert_int_equal(core_utf8_valid(s, 4), 1);
    assert_int_equal(core_utf8_valid(s, 5), 0); /* the 0xff */
    assert_int_equal(core_utf8_valid(s, 3), 0); /* cut inside the 2-byte sequence */
}

/* Every 2-byte lead/continuation pair agrees with a direct decode. */
static void test_utf8_all_two_byte(void **state)
{
    (void)state;
    for (int a = 0x80; a < 0x100; a++) {
        for (int b = 0; b < 0x100; b++) {
            char s[2] = {(char)a, (char)b};
            int want = a >= 0xC2 && a <= 0xDF && (b & 0xC0) == 0x80;
            assert_int_equal(core_utf8_valid(s, 2), want);
        }
    }
}

static void test_clocks(void **state)
{
    uint64_t now = core_now_ms(), m1 = core_mono_ms(), m2;

    (void)state;
    assert_true(now > 1600000000000ull); /* after 2020 */
    m2 = core_mono_ms();
    assert_true(m2 >= m1);
    /* a deadline 1.9995 s ahead: carried into tv_sec, tv_nsec normalised */
    struct timespec at = core_mono_after(1999500u);
    uint64_t at_ms = (uint64_t)at.tv_sec * 1000u + (uint64_t)at.tv_nsec / 1000000u;
    assert_true(at.tv_nsec >= 0 && at.tv_nsec < 1000000000L);
    assert_true(at_ms >= m2 + 1999 && at_ms <= core_mono_ms() + 2000);
}

static void raise_term(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    raise(SIGTERM);
}

static void deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    *(int *)w->data = 1;
    ev_break(loop, EVBREAK_ALL);
}

static void test_signals_stop_loop(void **state)
{
    struct ev_loop *loop = ev_default_loop(0);
    ev_timer fire, guard;
    int timed_out = 0;

    (void)state;
    core_install_signals(loop);
    assert_ptr_equal(signal(SIGPIPE, SIG_IGN), SIG_IGN);
    ev_timer_init(&fire, raise_term, 0.01, 0.);
    ev_timer_init(&guard, deadline, 10., 0.);
    guard.data = &timed_out;
    ev_timer_start(loop, &fire);
    ev_timer_start(loop, &guard);
    ev_run(loop, 0);
    ev_timer_stop(loop, &guard);
    assert_int_equal(timed_out, 0);
    /* The signal watchers alone do not keep the loop alive. */
    ev_run(loop, 0);
}

static void test_log_line_format(void **state)
{
    int fds[2], saved;
    char line[512];
    ssize_t n;
    regex_t re;

    (void)state;
    assert_int_equal(pipe(fds), 0);
    saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    core_log_set_tag("node-7");
    core_log_set_level(CORE_LOG_INFO);
    CORE_DEBUG("hidden %d", 1);
    CORE_WARN("visible %d", 2);
    core_log_set_tag("");
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    n = read(fds[0], line, sizeof(line) - 1);
    close(fds[0]);
    assert_true(n > 0);
    line[n] = '\0';
    assert_int_equal(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                             "WARN \\[node-7\\] visible 2\n$",
                             REG_EXTENDED),
                     0);
    if (regexec(&re, line, 0, NULL, 0) != 0)
        fail_msg("bad log line: %s", line);
    regfree(&re);
}

static void test_parse_double(void **state)
{
    double d = -7;

    (void)state;
    assert_int_equal(core_parse_double("1.5", 0, 2, &d), 0);
    assert_true(d == 1.5);
    assert_int_equal(core_parse_double("0", 0, 0, &d), 0); /* bounds included */
    assert_true(d == 0);
    assert_int_equal(core_parse_double("1e3", 1000, 1000, &d), 0);
    assert_true(d == 1000);
    assert_int_equal(core_parse_double("inf", 0, HUGE_VAL, &d), 0);
    assert_true(isinf(d));
    d = -7;
    assert_int_equal(core_parse_double("2.01", 0, 2, &d), -1);
    assert_int_equal(core_parse_double("-1", 0, 2, &d), -1);
    assert_int_equal(core_parse_double("", 0, 2, &d), -1);
    assert_int_equal(core_parse_double("1x", 0, 2, &d), -1);
    assert_int_equal(core_parse_double("nan", 0, HUGE_VAL, &d), -1);
    assert_int_equal(core_parse_double("1e999", 0, HUGE_VAL, &d), -1); /* ERANGE */
    assert_int_equal(core_parse_double(NULL, 0, 2, &d), -1);
    assert_true(d == -7); /* untouched on failure */
}

static void test_parse_size(void **state)
{
    (void)state;
    assert_int_equal(core_parse_size("0"), 0);
    assert_int_equal(core_parse_size("8192"), 8192);
    assert_int_equal(core_parse_size("4k"), 4096);
    assert_int_equal(core_parse_size("64M"), 64ll << 20);
    assert_int_equal(core_parse_size("2g"), 2ll << 30);
    assert_int_equal(core_parse_size("8589934591G"), 8589934591ll << 30); /* LLONG_MAX >> 30 */
    assert_int_equal(core_parse_size("8589934592G"), -1);                  /* would overflow */
    assert_int_equal(core_parse_size("99999999999999999999"), -1);         /* ERANGE */
    assert_int_equal(core_parse_size("-1"), -1);
    assert_int_equal(core_parse_size(""), -1);
    assert_int_equal(core_parse_size("M"), -1);
    assert_int_equal(core_parse_size("1T"), -1);
    assert_int_equal(core_parse_size("1MB"), -1);
    assert_int_equal(core_parse_size(NULL), -1);
}

static void test_parse_url(void **state)
{
    char host[16], path[16];
    int port = 0;

    (void)state;
    assert_int_equal(core_parse_url("ws://h:9/ws?x=1", "ws", host, sizeof(host), &port, path,
                                    sizeof(path)), 0);
    assert_string_equal(host, "h");
    assert_int_equal(port, 9);
    assert_string_equal(path, "/ws?x=1");
    assert_int_equal(core_parse_url("http://[::1]:8080", "http", host, sizeof(host), &port, path,
                                    sizeof(path)), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 8080);
    assert_string_equal(path, "/");
    assert_int_equal(core_parse_url("http://example/", "http", host, sizeof(host), &port, path,
                                    sizeof(path)), 0);
    assert_string_equal(host, "example");
    assert_int_equal(port, 80);
    assert_string_equal(path, "/");

    static const char *const bad[] = {
        "ws://h:9/ws",               /* other scheme */
        "http:/h/",                  /* no "//" */
        "http:///x",                 /* no host */
        "http://:80/",               /* empty host */
        "http://h:0/",               /* port out of range */
        "http://h:x/",               /* port not a number */
        "http://::1/",               /* bare IPv6 */
        "http://a-very-long-host-name/", /* host too long for the buffer */
        "http://h/a path",           /* space in path */
        "http://h/a-path-too-long-for-it", /* path too long for the buffer */
        NULL,
    };
    for (int i = 0; bad[i]; i++)
        assert_int_equal(core_parse_url(bad[i], "http", host, sizeof(host), &port, path,
                                        sizeof(path)), -1);
    assert_int_equal(core_parse_url(NULL, "http", host, sizeof(host), &port, path, sizeof(path)),
                     -1);
    assert_int_equal(core_parse_url("http://h/", "", host, sizeof(host), &port, path, sizeof(path)),
                     -1);
}

static void test_copy_str(void **state)
{
    (void)state;
    char buf[4] = "xyz";
    assert_int_equal(core_copy_str(buf, sizeof buf, "abc"), 0);
    assert_string_equal(buf, "abc");
    assert_int_equal(core_copy_str(buf, sizeof buf, "abcd"), -1);
    assert_string_equal(buf, "abc"); /* untouched */
}

/* What fits is copied, always terminated; NULL copies as "". */
static void test_copy_trunc(void **state)
{
    (void)state;
    char buf[4] = "xyz";
    core_copy_trunc(buf, sizeof buf, "ab");
    assert_string_equal(buf, "ab");
    core_copy_trunc(buf, sizeof buf, "abcdef");
    assert_string_equal(buf, "abc");
    core_copy_trunc(buf, sizeof buf, NULL);
    assert_string_equal(buf, "");
    buf[0] = 'q';
    core_copy_trunc(buf, 0, "abc"); /* no room: nothing written */
    assert_int_equal(buf[0], 'q');
    core_copy_trunc(buf, 1, "abc");
    assert_string_equal(buf, "");
}

enum { FL_NAME = 300, FL_HELP };
static const struct option flag_opts[] = {
    {"name", required_argument, NULL, FL_NAME},
    {"help", no_argument, NULL, FL_HELP},
    {NULL, 0, NULL, 0},
};

static int flag_apply(void *ud, int opt, const char *arg)
{
    return opt == FL_NAME && strcmp(arg, "bad") != 0 ? core_copy_str(ud, 16, arg) : -1;
}

static void flag_usage(FILE *f)
{
    (void)f;
}

static int run_flags(char *name, int argc, ...)
{
    static char prog[] = "prog";
    char *argv[8] = {prog};
    va_list ap;
    va_start(ap, argc);
    for (int i = 1; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    return core_parse_flags("prog", argc, argv, flag_opts, FL_HELP, flag_apply, flag_usage, name);
}

static void test_parse_flags(void **state)
{
    (void)state;
    char name[16] = "";
    assert_int_equal(run_flags(name, 3, "--name", "alice"), 0);
    assert_string_equal(name, "alice");
    assert_int_equal(run_flags(name, 2, "--name=bob"), 0);
    assert_string_equal(name, "bob");
    assert_int_equal(run_flags(name, 2, "--help"), 1);
    assert_int_equal(run_flags(name, 3, "--name", "bad"), -1);
    assert_int_equal(run_flags(name, 2, "--nope"), -1);
    assert_int_equal(run_flags(name, 2, "stray"), -1);
    assert_int_equal(run_flags(name, 1), 0);
}

/* FNV-1a 64 places sessions in Redis buckets every node and tool must
 * agree on: the published test vectors, not just any stable hash. */
static void test_strhash_is_fnv1a64(void **state)
{
    (void)state;
    assert_true(core_strhash("") == 0xcbf29ce484222325ull);
    assert_true(core_strhash("a") == 0xaf63dc4c8601ec8cull);
    assert_true(core_strhash("foobar") == 0x85944171f73967e8ull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_table),
        cmocka_unit_test(test_utf8_respects_len),
        cmocka_unit_test(test_utf8_all_two_byte),
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_signals_stop_loop),
        cmocka_unit_test(test_log_line_format),
        cmocka_unit_test(test_parse_double),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_url),
        cmocka_unit_test(test_copy_str),
        cmocka_unit_test(test_copy_trunc),
        cmocka_unit_test(test_parse_flags),
        cmocka_unit_test(test_strhash_is_fnv1a64),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
