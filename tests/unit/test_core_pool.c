/* Tests for core_pool_* and core_mailbox_*: real threads, real loop. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/core.h"

#define NTASKS 2000

typedef struct pool_env {
    pthread_t loop_thread;
    atomic_int worked;
    int done;
    int done_off_thread;
    int order_broken;
    int last_done;
    int results[NTASKS];
} pool_env_t;

typedef struct job {
    pool_env_t *env;
    int index;
    int result;
} job_t;

static void job_work(void *arg)
{
    job_t *j = arg;

    j->result = j->index * 2;
    atomic_fetch_add(&j->env->worked, 1);
}

static void job_done(void *arg)
{
    job_t *j = arg;
    pool_env_t *e = j->env;

    if (!pthread_equal(pthread_self(), e->loop_thread))
        e->done_off_thread++;
    e->results[j->index] = j->result;
    e->done++;
    free(j);
}

static void submit_jobs(core_pool_t *p, pool_env_t *e, int n)
{
    for (int i = 0; i < n; i++) {
        job_t *j = calloc(1, sizeof(*j));
        assert_non_null(j);
        j->env = e;
        j->index = i;
        core_pool_submit(p, job_work, job_done, j);
    }
}

/* ev_run returns only after every done callback ran: the pool keeps the
 * loop alive while work is queued or running. */
static void test_pool_many_tasks(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    core_pool_t *p = core_pool_new(loop, 4);
    pool_env_t *e = calloc(1, sizeof(*e));

    (void)state;
    e->loop_thread = pthread_self();
    submit_jobs(p, e, NTASKS);
    assert_true(core_pool_backlog(p) <= NTASKS);
    ev_run(loop, 0);
    assert_int_equal(e->done, NTASKS);
    assert_int_equal(atomic_load(&e->worked), NTASKS);
    assert_int_equal(e->done_off_thread, 0);
    for (int i = 0; i < NTASKS; i++)
        assert_int_equal(e->results[i], i * 2);
    assert_int_equal(core_pool_backlog(p), 0);
    core_pool_free(p);
    ev_loop_destroy(loop);
    free(e);
}

static void order_work(void *arg)
{
    (void)arg;
}

static void order_done(void *arg)
{
    job_t *j = arg;

    if (j->index != j->env->last_done + 1)
        j->env->order_broken = 1;
    j->env->last_done = j->index;
    free(j);
}

/* One worker: FIFO means done callbacks come in submit order. */
static void test_pool_fifo(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    core_pool_t *p = core_pool_new(loop, 1);
    pool_env_t *e = calloc(1, sizeof(*e));

    (void)state;
    e->last_done = -1;
    for (int i = 0; i < 500; i++) {
        job_t *j = calloc(1, sizeof(*j));
        j->env = e;
        j->index = i;
        core_pool_submit(p, order_work, order_done, j);
    }
    ev_run(loop, 0);
    assert_int_equal(e->last_done, 499);
    assert_false(e->order_broken);
    core_pool_free(p);
    ev_loop_destroy(loop);
    free(e);
}

/* core_pool_free without running the loop still finishes everything. */
static void test_pool_free_drains(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    core_pool_t *p = core_pool_new(loop, 3);
    pool_env_t *e = calloc(1, sizeof(*e));

    (void)state;
    e->loop_thread = pthread_self();
    submit_jobs(p, e, 300);
    core_pool_free(p);
    assert_int_equal(e->done, 300);
    assert_int_equal(e->done_off_thread, 0);
    /* The loop holds no leftover reference: it returns at once. */
    ev_run(loop, 0);
    ev_loop_destroy(loop);
    free(e);
}

static void null_done_work(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

static void test_pool_null_done(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    core_pool_t *p = core_pool_new(loop, 2);
    atomic_int count = 0;

    (void)state;
    for (int i = 0; i < 100; i++)
        core_pool_submit(p, null_done_work, NULL, &count);
    ev_run(loop, 0);
    assert_int_equal(atomic_load(&count), 100);
    core_pool_free(p);
    ev_loop_destroy(loop);
}

typedef struct mb_env {
    core_mailbox_t *mb;
    pthread_t loop_thread;
    int received;
    int off_thread;
    int want;
    struct ev_loop *loop;
} mb_env_t;

static void mb_task(void *arg)
{
    mb_env_t *e = arg;

    if (!pthread_equal(pthread_self(), e->loop_thread))
        e->off_thread++;
    if (++e->received == e->want)
        ev_break(e->loop, EVBREAK_ALL);
}

static void *poster(void *arg)
{
    mb_env_t *e = arg;

    for (int i = 0; i < 1000; i++)
        core_mailbox_post(e->mb, mb_task, e);
    return NULL;
}

static void tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

static void test_mailbox_from_threads(void **state)
{
    mb_env_t e = {0};
    pthread_t t[4];
    ev_timer keep;

    (void)state;
    e.loop = ev_loop_new(EVFLAG_AUTO);
    e.mb = core_mailbox_new(e.loop);
    e.loop_thread = pthread_self();
    e.want = 4000;
    /* The mailbox itself does not hold the loop: a deadline timer does. */
    ev_timer_init(&keep, tick, 10., 0.);
    ev_timer_start(e.loop, &keep);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, poster, &e), 0);
    ev_run(e.loop, 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(e.received, 4000);
    assert_int_equal(e.off_thread, 0);
    ev_timer_stop(e.loop, &keep);
    core_mailbox_free(e.mb);
    ev_loop_destroy(e.loop);
}

static void test_idle_mailbox_does_not_hold_loop(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    core_mailbox_t *mb = core_mailbox_new(loop);
    mb_env_t e = {0};

    (void)state;
    ev_run(loop, 0); /* returns: nothing active but the unref'd mailbox */
    e.loop = loop;
    e.loop_thread = pthread_self();
    e.want = -1;
    core_mailbox_post(mb, mb_task, &e); /* left unrun: free drops it */
    core_mailbox_free(mb);
    assert_int_equal(e.received, 0);
    core_mailbox_free(NULL);
    core_pool_free(NULL);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_many_tasks),
        cmocka_unit_test(test_pool_fifo),
        cmocka_unit_test(test_pool_free_drains),
        cmocka_unit_test(test_pool_null_done),
        cmocka_unit_test(test_mailbox_from_threads),
        cmocka_unit_test(test_idle_mailbox_does_not_hold_loop),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
