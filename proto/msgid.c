/* proto/msgid.c: msgids from a hybrid logical clock.
 *
 * "MMMMMMMMMMMMMCCCCC-NNNN": fixed widths make string order equal to
 * (ms, counter, node) order. The clock never goes back: a wall clock that
 * steps backwards, or an observed id from a node whose clock runs ahead,
 * just makes the counter advance within the largest ms seen so far. */
#include "proto/proto.h"

#include <inttypes.h>
#include <stdio.h>

#define MS_DIGITS 13
#define COUNTER_DIGITS 5
#define MS_MAX UINT64_C(9999999999999)
#define COUNTER_MAX UINT32_C(99999)

void proto_msgid_init(proto_msgid_gen_t *g, uint16_t node)
{
    pthread_mutex_init(&g->lock, NULL);
    g->last_ms = 0;
    g->counter = 0;
    g->node = node;
}

/* Moves the clock to the next (ms, counter) after the current one. At the
 * very end of the 13-digit range it saturates rather than break the format. */
static void tick(proto_msgid_gen_t *g, uint64_t now_ms)
{
    if (now_ms > MS_MAX)
        now_ms = MS_MAX;
    if (now_ms > g->last_ms) {
        g->last_ms = now_ms;
        g->counter = 0;
        return;
    }
    if (g->counter < COUNTER_MAX) {
        g->counter++;
    } else if (g->last_ms < MS_MAX) {
        g->last_ms++; /* borrow the next ms: ids stay unique and ordered */
        g->counter = 0;
    }
}

static void format_id(const proto_msgid_gen_t *g, char out[PROTO_MSGID_LEN + 1])
{
    snprintf(out, PROTO_MSGID_LEN + 1, "%013" PRIu64 "%05" PRIu32 "-%04" PRIx16, g->last_ms,
             g->counter, g->node);
}

void proto_msgid_next(proto_msgid_gen_t *g, uint64_t now_ms, char out[PROTO_MSGID_LEN + 1])
{
    pthread_mutex_lock(&g->lock);
    tick(g, now_ms);
    format_id(g, out);
    pthread_mutex_unlock(&g->lock);
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f');
}

int proto_msgid_valid(const char *s, size_t len)
{
    if (!s || len != PROTO_MSGID_LEN)
        return 0;
    for (size_t i = 0; i < MS_DIGITS + COUNTER_DIGITS; i++)
        if (!is_digit(s[i]))
            return 0;
    if (s[MS_DIGITS + COUNTER_DIGITS] != '-')
        return 0;
    for (size_t i = MS_DIGITS + COUNTER_DIGITS + 1; i < PROTO_MSGID_LEN; i++)
        if (!is_hex(s[i]))
            return 0;
    return 1;
}

static uint64_t digits(const char *s, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (uint64_t)(s[i] - '0');
    return v;
}

/* Moves the clock up to msgid's (ms, counter); the caller holds the lock. */
static void observe_locked(proto_msgid_gen_t *g, const char *msgid)
{
    if (!msgid)
        return;
    size_t len = 0;
    while (len <= PROTO_MSGID_LEN && msgid[len])
        len++; /* bounded: never scan far past a malformed id */
    if (!proto_msgid_valid(msgid, len))
        return;
    uint64_t ms = digits(msgid, MS_DIGITS);
    uint32_t counter = (uint32_t)digits(msgid + MS_DIGITS, COUNTER_DIGITS);
    if (ms > g->last_ms || (ms == g->last_ms && counter > g->counter)) {
        g->last_ms = ms;
        g->counter = counter;
    }
}

void proto_msgid_observe(proto_msgid_gen_t *g, const char *msgid)
{
    pthread_mutex_lock(&g->lock);
    observe_locked(g, msgid);
    pthread_mutex_unlock(&g->lock);
}

/* Observing the floor makes the clock at least its (ms, counter); the tick
 * then moves strictly past it, whatever the node numbers. */
void proto_msgid_next_after(proto_msgid_gen_t *g, uint64_t now_ms, const char *floor,
                            char out[PROTO_MSGID_LEN + 1])
{
    pthread_mutex_lock(&g->lock);
    observe_locked(g, floor);
    tick(g, now_ms);
    format_id(g, out);
    pthread_mutex_unlock(&g->lock);
}
