/* Unit tests for bench/: histogram percentiles against a brute-force
 * reference, merging worker results through their JSON lines, the worker
 * slices, and the 127.0.0.0/8 target guard. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bench/bench.h"
#include "test_util.h"

#define NVALUES 20000

static uint64_t rng_state = 88172645463325252ull;

static uint64_t rnd(void)
{
    return tu_xorshift(&rng_state);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The sorted-array percentile: the smallest v with >= p% of values <= v. */
static uint64_t ref_percentile(const uint64_t *sorted, size_t n, double p)
{
    double want = p / 100.0 * (double)n;
    size_t rank = (size_t)want;
    if ((double)rank < want)
        rank++;
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

static void check_against_reference(uint64_t *vals, size_t n)
{
    bench_hist_t *h = malloc(sizeof *h);
    bench_hist_init(h);
    for (size_t i = 0; i < n; i++)
        bench_hist_record(h, vals[i]);
    qsort(vals, n, sizeof *vals, cmp_u64);
    static const double ps[] = {0.1, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        uint64_t ref = ref_percentile(vals, n, ps[i]);
        uint64_t got = bench_hist_percentile(h, ps[i]);
        /* never below the truth, at most one bucket width (1/64) above */
        if (got < ref || got - ref > ref / 64)
            fail_msg("p%g: hist %llu vs reference %llu", ps[i], (unsigned long long)got,
                     (unsigned long long)ref);
    }
    assert_int_equal(h->count, n);
    assert_int_equal(h->min, vals[0]);
    assert_int_equal(h->max, vals[n - 1]);
    assert_int_equal(bench_hist_percentile(h, 100), vals[n - 1]);
    free(h);
}

static void test_percentiles_uniform_small(void **state)
{
    (void)state;
    uint64_t *v = malloc(NVALUES * sizeof *v);
    for (size_t i = 0; i < NVALUES; i++)
        v[i] = rnd() % 300; /* crosses the exact/log-linear boundary at 128 */
    check_against_reference(v, NVALUES);
    free(v);
}

static void test_percentiles_log_spread(void **state)
{
    (void)state;
    uint64_t *v = malloc(NVALUES * sizeof *v);
    for (size_t i = 0; i < NVALUES; i++)
        v[i] = rnd() >> (rnd() % 64); /* every magnitude up to 2^64 */
    check_against_reference(v, NVALUES);
    free(v);
}

static void test_percentiles_latency_like(void **state)
{
    (void)state;
    uint64_t *v = malloc(NVALUES * sizeof *v);
    for (size_t i = 0; i < NVALUES; i++) /* 200 µs .. 20 ms with a long tail */
        v[i] = 200 + rnd() % 5000 + (i % 100 == 0 ? rnd() % 2000000 : 0);
    check_against_reference(v, NVALUES);
    free(v);
}

static void test_empty_and_single(void **state)
{
    (void)state;
    bench_hist_t *h = malloc(sizeof *h);
    bench_hist_init(h);
    assert_int_equal(bench_hist_percentile(h, 50), 0);
    bench_hist_record(h, 123456);
    assert_int_equal(bench_hist_percentile(h, 0), 123456);
    assert_int_equal(bench_hist_percentile(h, 50), 123456); /* capped at max */
    assert_int_equal(bench_hist_percentile(h, 100), 123456);
    free(h);
}

static void test_buckets_contiguous(void **state)
{
    (void)state;
    /* every bucket's high + 1 starts the next bucket: no gaps, no overlap */
    for (size_t i = 0; i + 1 < BENCH_HIST_BUCKETS; i++) {
        uint64_t hi = bench_hist_bucket_high(i);
        assert_int_equal(bench_hist_index(hi), i);
        assert_int_equal(bench_hist_index(hi + 1), i + 1);
    }
    assert_int_equal(bench_hist_index(UINT64_MAX), BENCH_HIST_BUCKETS - 1);
    assert_true(bench_hist_bucket_high(BENCH_HIST_BUCKETS - 1) == UINT64_MAX);
}

static void fill_result(bench_result_t *r, uint64_t seed, uint64_t *all, size_t *nall)
{
    bench_result_init(r);
    r->clients = seed;
    r->sent = 100 * seed;
    r->expected = 100 * seed;
    r->delivered = 100 * seed - 1;
    r->dup = seed;
    r->errors = 2 * seed;
    r->connect_errors = seed / 2;
    r->receivers = 3;
    r->self_rss_kb = 1000;
    r->elapsed_s = 1.5 + (double)seed;
    r->dropped = r->reconnected = 10 * seed; /* a storm: each worker's span */
    r->first_drop_unix_us = 1000000 + seed;
    r->first_back_unix_us = 3000000 - 100 * seed;
    r->last_back_unix_us = 4000000 + 100 * seed;
    r->asked = 7 * seed;
    r->ask_misses = seed;
    for (int i = 0; i < 1000; i++) {
        uint64_t v = rnd() % (1000 * seed * seed);
        bench_hist_record(&r->lat, v);
        all[(*nall)++] = v;
    }
}

static void test_merge_through_json(void **state)
{
    (void)state;
    uint64_t *all = malloc(3000 * sizeof *all);
    size_t nall = 0;
    bench_result_t *w = malloc(3 * sizeof *w), *total = malloc(sizeof *total),
                   *back = malloc(sizeof *back);
    bench_result_init(total);
    for (int i = 0; i < 3; i++) {
        fill_result(&w[i], (uint64_t)i + 1, all, &nall);
        /* what the parent does: decode the worker's line, then merge */
        char *line = bench_result_encode(&w[i]);
        assert_int_equal(bench_result_decode(line, strlen(line), back), 0);
        assert_memory_equal(back->lat.counts, w[i].lat.counts, sizeof back->lat.counts);
        assert_int_equal(back->lat.max, w[i].lat.max);
        assert_int_equal(back->delivered, w[i].delivered);
        free(line);
        bench_result_merge(total, back);
    }
    assert_int_equal(total->clients, 6);
    assert_int_equal(total->sent, 600);
    assert_int_equal(total->delivered, 597);
    assert_int_equal(bench_result_lost(total), 3);
    assert_int_equal(total->dup, 6);
    assert_int_equal(total->errors, 12);
    assert_int_equal(total->receivers, 9);
    assert_int_equal(total->self_rss_kb, 3000);
    assert_true(total->elapsed_s == 4.5); /* the longest worker */
    assert_int_equal(total->lat.count, 3000);
    /* the storm's span: the first drop and first back of any worker, the last back of all */
    assert_int_equal(total->reconnected, 60);
    assert_int_equal(total->first_drop_unix_us, 1000001);
    assert_int_equal(total->first_back_unix_us, 2999700);
    assert_int_equal(total->last_back_unix_us, 4000300);
    assert_int_equal(total->asked, 42);
    assert_int_equal(total->ask_misses, 6);
    /* the merged histogram answers like one fed every value */
    qsort(all, nall, sizeof *all, cmp_u64);
    for (double p = 1; p <= 100; p += 7.3) {
        uint64_t ref = ref_percentile(all, nall, p), got = bench_hist_percentile(&total->lat, p);
        assert_true(got >= ref && got - ref <= ref / 64);
    }
    cJSON *rep = bench_report_json("direct", total, NULL);
    assert_int_equal(cJSON_GetObjectItem(rep, "lost")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItem(rep, "delivered")->valueint, 597);
    assert_true(cJSON_GetObjectItem(rep, "first_back_s")->valuedouble == 1.999699);
    assert_int_equal(cJSON_GetObjectItem(rep, "asked_gateway")->valueint, 42);
    assert_int_equal(cJSON_GetObjectItem(rep, "gateway_misses")->valueint, 6);
    assert_true(cJSON_GetObjectItem(rep, "p99_ms")->valuedouble <=
                cJSON_GetObjectItem(rep, "max_ms")->valuedouble);
    cJSON_Delete(rep);
    free(all);
    free(w);
    free(total);
    free(back);
}

static void test_decode_rejects_garbage(void **state)
{
    (void)state;
    bench_result_t *r = malloc(sizeof *r);
    static const char *const bad[] = {
        "", "[]", "{\"clients\":1}", "not json",
        "{\"clients\":1,\"sent\":1,\"expected\":1,\"delivered\":1,\"dup\":0,\"reordered\":0,"
        "\"errors\":0,\"connect_errors\":0,\"receivers\":0,\"self_rss_kb\":0,\"elapsed_s\":1,\"lat_min\":0,"
        "\"lat_max\":0,\"lat\":[[99999,1]]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(bench_result_decode(bad[i], strlen(bad[i]), r), -1);
    free(r);
}

static void test_loopback_guard(void **state)
{
    (void)state;
    assert_true(bench_addr_is_loopback("127.0.0.1"));
    assert_true(bench_addr_is_loopback("127.255.255.254"));
    assert_true(bench_addr_is_loopback("127.0.0.42"));
    assert_true(bench_addr_is_loopback("::1"));
    assert_true(bench_addr_is_loopback("::ffff:127.0.0.1"));
    assert_false(bench_addr_is_loopback("128.0.0.1"));
    assert_false(bench_addr_is_loopback("126.255.255.255"));
    assert_false(bench_addr_is_loopback("10.0.0.1"));
    assert_false(bench_addr_is_loopback("192.168.1.1"));
    assert_false(bench_addr_is_loopback("0.0.0.0"));
    assert_false(bench_addr_is_loopback("::ffff:10.0.0.1"));
    assert_false(bench_addr_is_loopback("2001:db8::1"));
    assert_false(bench_addr_is_loopback("localhost")); /* names must be resolved first */
    assert_false(bench_addr_is_loopback(""));
}

static void test_target_parse(void **state)
{
    (void)state;
    bench_target_t t;
    char err[256];
    assert_int_equal(bench_target_parse("ws://127.0.0.5:9001/ws", "ws", &t, err, sizeof err), 0);
    assert_string_equal(t.ip, "127.0.0.5");
    assert_int_equal(t.port, 9001);
    assert_string_equal(t.path, "/ws");
    assert_int_equal(bench_target_parse("http://localhost:8080", "http", &t, err, sizeof err), 0);
    assert_true(bench_addr_is_loopback(t.ip));
    assert_string_equal(t.path, "/");
    /* refused: outside 127.0.0.0/8 */
    assert_int_equal(bench_target_parse("ws://10.1.2.3:80/ws", "ws", &t, err, sizeof err), -2);
    assert_non_null(strstr(err, "127.0.0.0/8"));
    assert_int_equal(bench_target_parse("ws://8.8.8.8:80/ws", "ws", &t, err, sizeof err), -2);
    assert_int_equal(bench_target_parse("ws://0.0.0.0:80/ws", "ws", &t, err, sizeof err), -2);
    assert_int_equal(bench_target_parse("http://192.168.0.1:1/", "http", &t, err, sizeof err), -2);
    /* malformed */
    assert_int_equal(bench_target_parse("http://127.0.0.1:80/", "ws", &t, err, sizeof err), -1);
    assert_int_equal(bench_target_parse("ws://127.0.0.1/ws", "ws", &t, err, sizeof err), -1);
    assert_int_equal(bench_target_parse("ws://127.0.0.1:0/ws", "ws", &t, err, sizeof err), -1);
    assert_int_equal(bench_target_parse("ws://127.0.0.1:70000/ws", "ws", &t, err, sizeof err), -1);
    assert_int_equal(bench_target_parse("ws://:80/ws", "ws", &t, err, sizeof err), -1);
}

static void test_worker_slices(void **state)
{
    (void)state;
    bench_opts_t o;
    memset(&o, 0, sizeof o);
    for (int sc = BENCH_LOGIN; sc <= BENCH_ROOM; sc++) {
        for (int n = 1; n < 40; n++) {
            for (int p = 1; p <= n && p <= 7; p++) {
                o.scenario = (bench_scenario_t)sc;
                o.clients = n;
                o.procs = p;
                int next = 0;
                for (int i = 0; i < p; i++) {
                    int first, count;
                    bench_worker_slice(&o, i, &first, &count);
                    assert_int_equal(first, next); /* contiguous, complete */
                    assert_true(count >= 0);
                    if (sc == BENCH_DIRECT && i < p - 1)
                        assert_int_equal((first | count) & 1, 0); /* pairs never split */
                    next = first + count;
                }
                assert_int_equal(next, n);
            }
        }
    }
}

/* Real /proc/PID/stat shapes: utime is field 14, stime 15 (1-based). */
static void test_proc_stat_cpu(void **state)
{
    (void)state;
    uint64_t t = 0;
    const char *plain = "4242 (chat-node) S 1 4242 4242 0 -1 4194560 1500 0 0 0 "
                        "731 269 0 0 20 0 1 0 12345 123456789 2500 18446744073709551615\n";
    assert_int_equal(bench_proc_stat_cpu_ticks(plain, &t), 0);
    assert_int_equal(t, 731 + 269);
    /* a command name with spaces and ')' must not shift the fields */
    const char *odd = "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 1 1";
    assert_int_equal(bench_proc_stat_cpu_ticks(odd, &t), 0);
    assert_int_equal(t, 11);
    /* stime as the last field, no newline */
    assert_int_equal(bench_proc_stat_cpu_ticks("1 (x) S 1 1 1 0 -1 0 0 0 0 0 2 3", &t), 0);
    assert_int_equal(t, 5);
    t = 99;
    assert_int_equal(bench_proc_stat_cpu_ticks("", &t), -1);
    assert_int_equal(bench_proc_stat_cpu_ticks("1 (x) S 1 1 1 0 -1 0 0 0 0 0 2", &t), -1);
    assert_int_equal(bench_proc_stat_cpu_ticks("1 (x) S 1 1 1 0 -1 0 0 0 0 0 x 3 0", &t), -1);
    assert_int_equal(bench_proc_stat_cpu_ticks("1 (x)S 1 1 1 0 -1 0 0 0 0 0 2 3 0", &t), -1);
    assert_int_equal(bench_proc_stat_cpu_ticks("1 x S 1 1 1 0 -1 0 0 0 0 0 2 3 0", &t), -1);
    assert_int_equal(t, 99); /* untouched on failure */
}

static void test_cpu_per_million(void **state)
{
    (void)state;
    assert_true(bench_cpu_per_million(2.0, 0) < 0);
    double v = bench_cpu_per_million(3.0, 1500000);
    assert_true(v > 1.999 && v < 2.001);
    assert_true(bench_cpu_per_million(0.0, 10) == 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percentiles_uniform_small),
        cmocka_unit_test(test_percentiles_log_spread),
        cmocka_unit_test(test_percentiles_latency_like),
        cmocka_unit_test(test_empty_and_single),
        cmocka_unit_test(test_buckets_contiguous),
        cmocka_unit_test(test_merge_through_json),
        cmocka_unit_test(test_decode_rejects_garbage),
        cmocka_unit_test(test_loopback_guard),
        cmocka_unit_test(test_target_parse),
        cmocka_unit_test(test_worker_slices),
        cmocka_unit_test(test_proc_stat_cpu),
        cmocka_unit_test(test_cpu_per_million),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
