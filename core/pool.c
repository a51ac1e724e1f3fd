/* core/pool.c: worker threads and a mailbox back to the loop thread. */
#include "core/core.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct task {
    core_task_fn fn;
    core_task_fn done;
    void *arg;
    core_pool_t *pool;
    struct task *next;
} task_t;

typedef struct task_queue {
    task_t *head, *tail;
} task_queue_t;

struct core_mailbox {
    struct ev_loop *loop;
    ev_async async;
    pthread_mutex_t lock;
    task_queue_t queue;
};

struct core_pool {
    struct ev_loop *loop;
    core_mailbox_t *mailbox;
    pthread_t *threads;
    int nthreads;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    task_queue_t queue;
    size_t queued, running;
    size_t outstanding; /* submitted, done not yet run; loop thread only */
    int stopping;
};

static void queue_push(task_queue_t *q, task_t *t)
{
    t->next = NULL;
    if (q->tail)
        q->tail->next = t;
    else
        q->head = t;
    q->tail = t;
}

static task_t *queue_pop(task_queue_t *q)
{
    task_t *t = q->head;

    if (t) {
        q->head = t->next;
        if (!q->head)
            q->tail = NULL;
    }
    return t;
}

/* ------------------------------------------------------------------ mailbox */

/* Runs every posted task; tasks posted meanwhile wait for the next wake-up. */
static void mailbox_drain(core_mailbox_t *m)
{
    task_queue_t batch;
    task_t *t;

    pthread_mutex_lock(&m->lock);
    batch = m->queue;
    m->queue.head = m->queue.tail = NULL;
    pthread_mutex_unlock(&m->lock);
    while ((t = queue_pop(&batch)) != NULL) {
        t->fn(t->arg);
        free(t);
    }
}

static void mailbox_on_async(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    mailbox_drain(w->data);
}

core_mailbox_t *core_mailbox_new(struct ev_loop *loop)
{
    core_mailbox_t *m = core_xcalloc(1, sizeof(*m));

    m->loop = loop;
    pthread_mutex_init(&m->lock, NULL);
    ev_async_init(&m->async, mailbox_on_async);
    m->async.data = m;
    ev_async_start(loop, &m->async);
    /* An idle mailbox must not keep ev_run from returning. */
    ev_unref(loop);
    return m;
}

void core_mailbox_post(core_mailbox_t *m, core_task_fn fn, void *arg)
{
    task_t *t = core_xcalloc(1, sizeof(*t));

    t->fn = fn;
    t->arg = arg;
    pthread_mutex_lock(&m->lock);
    queue_push(&m->queue, t);
    pthread_mutex_unlock(&m->lock);
    ev_async_send(m->loop, &m->async);
}

void core_mailbox_free(core_mailbox_t *m)
{
    task_t *t;

    if (!m)
        return;
    ev_ref(m->loop);
    ev_async_stop(m->loop, &m->async);
    while ((t = queue_pop(&m->queue)) != NULL)
        free(t);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* ------------------------------------------------------------------ pool */

static void pool_on_done(void *arg)
{
    task_t *t = arg;
    core_pool_t *p = t->pool;

    if (t->done)
        t->done(t->arg);
    free(t);
    /* Work in flight held a loop reference (see core_pool_submit). */
    if (--p->outstanding == 0)
        ev_unref(p->loop);
}

static void *pool_worker(void *arg)
{
    core_pool_t *p = arg;

    pthread_setname_np(pthread_self(), "pool");
    for (;;) {
        task_t *t;

        pthread_mutex_lock(&p->lock);
        while (!p->queue.head && !p->stopping)
            pthread_cond_wait(&p->cond, &p->lock);
        t = queue_pop(&p->queue);
        if (!t) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        p->queued--;
        p->running++;
        pthread_mutex_unlock(&p->lock);

        t->fn(t->arg);

        pthread_mutex_lock(&p->lock);
        p->running--;
        pthread_mutex_unlock(&p->lock);
        core_mailbox_post(p->mailbox, pool_on_done, t);
    }
}

core_pool_t *core_pool_new(struct ev_loop *loop, int threads)
{
    core_pool_t *p = core_xcalloc(1, sizeof(*p));

    if (threads < 1)
        threads = 1;
    p->loop = loop;
    p->mailbox = core_mailbox_new(loop);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->threads = core_xcalloc((size_t)threads, sizeof(*p->threads));
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, pool_worker, p) != 0) {
            CORE_ERROR("pool: cannot start worker %d", i);
            if (i == 0)
                abort(); /* a pool without workers would never finish anything */
            break;
        }
        p->nthreads++;
    }
    return p;
}

void core_pool_submit(core_pool_t *p, core_task_fn work, core_task_fn done, void *arg)
{
    task_t *t = core_xcalloc(1, sizeof(*t));

    t->fn = work;
    t->done = done;
    t->arg = arg;
    t->pool = p;
    if (p->outstanding++ == 0)
        ev_ref(p->loop);
    pthread_mutex_lock(&p->lock);
    queue_push(&p->queue, t);
    p->queued++;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

size_t core_pool_backlog(core_pool_t *p)
{
    size_t n;

    pthread_mutex_lock(&p->lock);
    n = p->queued + p->running;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void core_pool_free(core_pool_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    /* Workers are gone: every finished task is in the mailbox now. */
    mailbox_drain(p->mailbox);
    core_mailbox_free(p->mailbox);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}
