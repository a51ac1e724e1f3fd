/* Unit tests for proto/msgid.c: format, order, and the hybrid logical clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"

#define NOW UINT64_C(1763890000123)

static void next(proto_msgid_gen_t *g, uint64_t now, char *out)
{
    proto_msgid_next(g, now, out);
    if (strlen(out) != PROTO_MSGID_LEN || !proto_msgid_valid(out, PROTO_MSGID_LEN))
        fail_msg("generated an invalid msgid '%s'", out);
}

static void test_format(void **state)
{
    (void)state;
    proto_msgid_gen_t g;
    char id[PROTO_MSGID_LEN + 1];
    proto_msgid_init(&g, 0x1a2b);
    next(&g, NOW, id);
    assert_string_equal(id, "176389000012300000-1a2b");
    next(&g, NOW, id);
    assert_string_equal(id, "176389000012300001-1a2b");
    next(&g, NOW + 1, id);
    assert_string_equal(id, "176389000012400000-1a2b");
    proto_msgid_init(&g, 0);
    next(&g, 5, id);
    assert_string_equal(id, "000000000000500000-0000");
    proto_msgid_init(&g, 0xffff);
    next(&g, NOW, id);
    assert_string_equal(id, "176389000012300000-ffff");
}

static void test_valid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int ok;
    } cases[] = {
        {"176389000012300000-1a2b", 1},
        {"000000000000000000-0000", 1},
        {"999999999999999999-ffff", 1},
        {"176389000012300000-1A2B", 0}, /* upper-case hex would break the order */
        {"176389000012300000-1a2", 0},
        {"176389000012300000-1a2bc", 0},
        {"17638900001230000-01a2b", 0},
        {"176389000012300000_1a2b", 0},
        {"1763890000123000a0-1a2b", 0},
        {"176389000012300000-1g2b", 0},
        {" 76389000012300000-1a2b", 0},
        {"-76389000012300000-1a2b", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (proto_msgid_valid(cases[i].s, strlen(cases[i].s)) != cases[i].ok)
            fail_msg("valid('%s') != %d", cases[i].s, cases[i].ok);
    assert_int_equal(proto_msgid_valid(NULL, 23), 0);
    /* only len bytes count */
    assert_int_equal(proto_msgid_valid("176389000012300000-1a2bXYZ", 23), 1);
    assert_int_equal(proto_msgid_valid("176389000012300000-1a2b", 22), 0);
}

/* 200k ids in one ms: strictly increasing; the counter overflow borrows the next ms. */
static void test_monotonic_same_ms(void **state)
{
    (void)state;
    proto_msgid_gen_t g;
    proto_msgid_init(&g, 7);
    char prev[PROTO_MSGID_LEN + 1] = "";
    char id[PROTO_MSGID_LEN + 1];
    for (int i = 0; i < 200000; i++) {
        next(&g, NOW, id);
        if (strcmp(id, prev) <= 0)
            fail_msg("call %d: '%s' not after '%s'", i, id, prev);
        if (i == 99999)
            assert_string_equal(id, "176389000012399999-0007");
        if (i == 100000)
            assert_string_equal(id, "176389000012400000-0007");
        memcpy(prev, id, sizeof id);
    }
    assert_string_equal(id, "176389000012499999-0007");
    /* wall clock catches up with the borrowed ms: still increasing */
    next(&g, NOW + 1, id);
    assert_string_equal(id, "176389000012500000-0007");
    next(&g, NOW + 3, id);
    assert_string_equal(id, "176389000012600000-0007");
}

static void test_clock_backwards(void **state)
{
    (void)state;
    proto_msgid_gen_t g;
    proto_msgid_init(&g, 1);
    char a[PROTO_MSGID_LEN + 1], b[PROTO_MSGID_LEN + 1];
    next(&g, NOW, a);
    next(&g, NOW - 5000, b);
    assert_true(strcmp(b, a) > 0);
    assert_string_equal(b, "176389000012300001-0001");
    next(&g, 0, b);
    assert_string_equal(b, "176389000012300002-0001");
}

static void test_observe(void **state)
{
    (void)state;
    proto_msgid_gen_t g;
    proto_msgid_init(&g, 2);
    char id[PROTO_MSGID_LEN + 1];
    /* an id from a node 10 s ahead: ours follow it */
    proto_msgid_observe(&g, "176389001012300007-ffff");
    next(&g, NOW, id);
    assert_string_equal(id, "176389001012300008-0002");
    /* an older id changes nothing */
    proto_msgid_observe(&g, "176389000000000000-0001");
    next(&g, NOW, id);
    assert_string_equal(id, "176389001012300009-0002");
    /* same (ms, counter) from another node: we still move past it */
    proto_msgid_observe(&g, "176389001012300009-ffff");
    next(&g, NOW, id);
    assert_string_equal(id, "176389001012300010-0002");
    /* counter at its maximum: borrow the next ms */
    proto_msgid_observe(&g, "176389001012399999-0003");
    next(&g, NOW, id);
    assert_string_equal(id, "176389001012400000-0002");
    /* the wall clock passing the observed time resets the counter */
    next(&g, UINT64_C(1763890010125), id);
    assert_string_equal(id, "176389001012500000-0002");
}

static void test_observe_ignores_malformed(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "abc",
        "999999999999999999-fff",
        "999999999999999999-fffff",
        "999999999999999999-FFFF",
        "99999999999999999a-ffff",
        "999999999999999999+ffff",
        "9999999999999999999ffff",
        "999999999999999999-ffff and more",
    };
    proto_msgid_gen_t g, ctl;
    proto_msgid_init(&g, 9);
    proto_msgid_init(&ctl, 9);
    char a[PROTO_MSGID_LEN + 1], b[PROTO_MSGID_LEN + 1];
    proto_msgid_observe(&g, NULL);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        proto_msgid_observe(&g, bad[i]);
        next(&g, NOW, a);
        next(&ctl, NOW, b);
        if (strcmp(a, b) != 0)
            fail_msg("observe('%s') changed the clock: %s", bad[i], a);
    }
}

/* Two nodes with skewed clocks answer each other: every reply sorts after
 * the message it answers, and each node's ids keep increasing. */
static void test_reply_order_across_nodes(void **state)
{
    (void)state;
    proto_msgid_gen_t n[2];
    proto_msgid_init(&n[0], 0x0001);
    proto_msgid_init(&n[1], 0x0002);
    const uint64_t skew[2] = {0, 7000}; /* node 1 runs 7 s behind */
    char last[2][PROTO_MSGID_LEN + 1] = {"", ""};
    char msg[PROTO_MSGID_LEN + 1], reply[PROTO_MSGID_LEN + 1];
    uint64_t now = NOW;
    uint32_t rnd = 12345;
    for (int i = 0; i < 20000; i++) {
        rnd = rnd * 1103515245u + 12345u;
        int from = (rnd >> 16) & 1, to = !from;
        now += (rnd >> 20) % 3; /* often the same ms */
        next(&n[from], now - skew[from], msg);
        proto_msgid_observe(&n[to], msg);
        next(&n[to], now - skew[to], reply);
        if (strcmp(reply, msg) <= 0)
            fail_msg("step %d: reply %s not after %s", i, reply, msg);
        if (strcmp(msg, last[from]) <= 0 || strcmp(reply, last[to]) <= 0)
            fail_msg("step %d: a node went backwards", i);
        memcpy(last[from], msg, sizeof msg);
        memcpy(last[to], reply, sizeof reply);
        proto_msgid_observe(&n[from], reply);
    }
}

/* A conversation's last id made on a node with a faster clock or a higher
 * node number, in the same ms: the next id of the conversation sorts after
 * it, and this node's own ids keep increasing. */
static void test_next_after_floor(void **state)
{
    (void)state;
    proto_msgid_gen_t a, b;
    proto_msgid_init(&a, 0x0001);
    proto_msgid_init(&b, 0xffff);
    char prev[PROTO_MSGID_LEN + 1] = "", last[PROTO_MSGID_LEN + 1], id[PROTO_MSGID_LEN + 1];
    uint64_t now = NOW;
    for (int i = 0; i < 5000; i++) {
        now += (uint64_t)(i % 3 == 0);
        next(&b, now + (uint64_t)(i % 7) * 1000, last); /* b runs up to 6 s ahead */
        proto_msgid_next_after(&a, now, i % 5 ? last : NULL, id);
        if (!proto_msgid_valid(id, strlen(id)) || strcmp(id, prev) <= 0)
            fail_msg("step %d: %s not after this node's previous %s", i, id, prev);
        if (i % 5 && strcmp(id, last) <= 0)
            fail_msg("step %d: %s not after the conversation's last %s", i, id, last);
        memcpy(prev, id, sizeof id);
    }
    proto_msgid_next_after(&a, NOW, "", id); /* empty and malformed floors are no floor */
    assert_true(strcmp(id, prev) > 0);
    memcpy(prev, id, sizeof id);
    proto_msgid_next_after(&a, NOW, "99999999999999999x-0000", id);
    assert_true(strcmp(id, prev) > 0);
    assert_true(strncmp(id, "9999", 4) != 0);
}

#define THREAD_IDS 20000

typedef struct taker {
    proto_msgid_gen_t *g;
    char (*ids)[PROTO_MSGID_LEN + 1];
    int with_floor;
} taker_t;

static void *take_ids(void *arg)
{
    taker_t *t = arg;
    for (int i = 0; i < THREAD_IDS; i++) {
        if (t->with_floor)
            proto_msgid_next_after(t->g, NOW, i ? t->ids[i - 1] : NULL, t->ids[i]);
        else
            proto_msgid_next(t->g, NOW, t->ids[i]);
    }
    return NULL;
}

static int cmp_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The loop thread and the store thread share one generator: no id twice. */
static void test_threads_never_share_an_id(void **state)
{
    (void)state;
    proto_msgid_gen_t g;
    proto_msgid_init(&g, 7);
    char(*ids)[PROTO_MSGID_LEN + 1] = calloc(2 * THREAD_IDS, sizeof *ids);
    assert_non_null(ids);
    taker_t t[2] = {{&g, ids, 0}, {&g, ids + THREAD_IDS, 1}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, take_ids, &t[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    qsort(ids, 2 * THREAD_IDS, sizeof *ids, cmp_ids);
    for (int i = 1; i < 2 * THREAD_IDS; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0)
            fail_msg("id %s was handed out twice", ids[i]);
    free(ids);
}

/* String order equals (ms, counter, node) order. */
static void test_lexicographic_order(void **state)
{
    (void)state;
    static const struct {
        uint64_t ms;
        uint32_t counter;
        uint16_t node;
    } v[] = {
        {0, 0, 0},        {0, 0, 1},       {0, 1, 0},         {1, 0, 0},
        {9, 99999, 0xff}, {10, 0, 0},      {NOW, 5, 0x00ff},  {NOW, 5, 0x0100},
        {NOW, 10, 0},     {NOW + 1, 0, 0}, {9999999999999, 99999, 0xffff},
    };
    size_t n = sizeof v / sizeof v[0];
    char a[PROTO_MSGID_LEN + 1], b[PROTO_MSGID_LEN + 1];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            snprintf(a, sizeof a, "%013" PRIu64 "%05" PRIu32 "-%04x", v[i].ms, v[i].counter,
                     (unsigned)v[i].node);
            snprintf(b, sizeof b, "%013" PRIu64 "%05" PRIu32 "-%04x", v[j].ms, v[j].counter,
                     (unsigned)v[j].node);
            int c = strcmp(a, b);
            int want = i < j ? -1 : i > j ? 1 : 0;
            if ((c > 0) - (c < 0) != want)
                fail_msg("order of %s vs %s", a, b);
        }
}

/* Far-future clocks never break the 23-char format. */
static void test_saturation(void **state)
{
    (void)state;
    proto_msgid_gen_t g;
    proto_msgid_init(&g, 3);
    char id[PROTO_MSGID_LEN + 1];
    next(&g, UINT64_MAX, id);
    assert_string_equal(id, "999999999999900000-0003");
    proto_msgid_observe(&g, "999999999999999999-ffff");
    next(&g, UINT64_MAX, id);
    assert_string_equal(id, "999999999999999999-0003");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_monotonic_same_ms),
        cmocka_unit_test(test_clock_backwards),
        cmocka_unit_test(test_observe),
        cmocka_unit_test(test_observe_ignores_malformed),
        cmocka_unit_test(test_reply_order_across_nodes),
        cmocka_unit_test(test_lexicographic_order),
        cmocka_unit_test(test_next_after_floor),
        cmocka_unit_test(test_threads_never_share_an_id),
        cmocka_unit_test(test_saturation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
