/* store/store.c: URI dispatch, the store thread with group commit, and the
 * public synchronous calls forwarding to the backend vtable.
 *
 * Threads: the store thread takes everything queued (up to batch_max),
 * runs it as one backend batch holding call_lock, then moves the items to
 * the done FIFO and pokes the loop through a core_mailbox. Done callbacks
 * run on the loop thread in submission order. A synchronous call from any
 * other thread takes call_lock, so it waits for the running batch.
 */
#include "store/store_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STORE_BATCH_DEFAULT 256
#define KNOWN_USERS_MAX 65536 /* names store_user_exists remembers */

typedef struct known_user {
    char user[STORE_USER_MAX];
} known_user_t;

typedef struct store_item {
    store_work_fn work;
    core_task_fn done;
    void *arg;
    int status;
    store_kind_t kind;
} store_item_t;

static int item_reads(const store_item_t *it)
{
    return it->kind == STORE_ITEM_READ; /* it may join a read batch */
}

/* A ring buffer that doubles when full. */
typedef struct store_fifo {
    store_item_t *items;
    size_t head;
    size_t count;
    size_t cap;
} store_fifo_t;

struct store {
    const store_ops_t *ops;
    void *be;
    /* Serialises backend use; the store thread holds it for a whole batch. */
    pthread_mutex_t call_lock;
    int item_failed; /* a call inside the running item returned STORE_ERR */
    /* Names seen committed (users are never renamed or deleted), under
     * call_lock; none are added in a batch that created a user, as what it
     * reads may yet be rolled back. */
    core_strtab_t known_users;
    int batch_created_user;

    pthread_mutex_t mu; /* guards everything down to batch_max */
    pthread_cond_t wake; /* work queued or stopping */
    pthread_cond_t idle; /* a batch finished */
    store_fifo_t queue;  /* submitted, not yet taken */
    store_fifo_t done;   /* finished, done() not yet run */
    int busy;
    int stopping;
    size_t batch_max;
    unsigned linger_us; /* a lazy batch waits this long for company */
    size_t eager;       /* queued items that are not lazy: they end a linger */
    int lingering;      /* the thread waits for company: only eager items wake it */
    uint64_t last_end_us; /* when the last batch committed (store thread only) */

    int started;
    pthread_t thread;
    core_mailbox_t *mailbox;
    int done_status; /* loop thread: status of the done() running now */

    atomic_size_t backlog;
    _Atomic uint64_t n_items;
    _Atomic uint64_t n_items_failed;
    _Atomic uint64_t n_commits;
    _Atomic uint64_t n_commit_failures;
    _Atomic uint64_t n_lingers;
    _Atomic uint64_t n_lingers_expired;
};

/* The store whose batch this thread is running: its calls skip call_lock
 * (already held) and mark the item failed on STORE_ERR. */
static _Thread_local store_t *tls_batch_store;

/* ------------------------------------------------------------------ helpers */

void *store__list_push(void **items, size_t *count, size_t *cap, size_t elem)
{
    char *slot;

    if (*count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        *items = core_xrealloc(*items, ncap * elem);
        *cap = ncap;
    }
    slot = (char *)*items + *count * elem;
    memset(slot, 0, elem);
    (*count)++;
    return slot;
}

static void fifo_push(store_fifo_t *f, const store_item_t *it)
{
    if (f->count == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 64;
        store_item_t *n = core_xcalloc(ncap, sizeof(*n));
        for (size_t i = 0; i < f->count; i++)
            n[i] = f->items[(f->head + i) % f->cap];
        free(f->items);
        f->items = n;
        f->head = 0;
        f->cap = ncap;
    }
    f->items[(f->head + f->count) % f->cap] = *it;
    f->count++;
}

static store_item_t fifo_pop(store_fifo_t *f)
{
    store_item_t it = f->items[f->head];

    f->head = (f->head + 1) % f->cap;
    f->count--;
    return it;
}

/* ------------------------------------------------------------------ open / close */

static const store_ops_t *pick_backend(const char *uri, const char **arg, char *err,
                                       size_t errlen)
{
    if (strncmp(uri, "sqlite:", 7) == 0) {
        *arg = uri + 7;
        return &store__sqlite_ops;
    }
    if (strncmp(uri, "mongodb://", 10) == 0 || strncmp(uri, "mongodb+srv://", 14) == 0) {
#ifdef CHAT_HAVE_MONGO
        *arg = uri;
        return &store__mongo_ops;
#else
        snprintf(err, errlen, "store: built without MongoDB support (CHAT_MONGO=OFF)");
        return NULL;
#endif
    }
    snprintf(err, errlen, "store: unknown URI scheme (want sqlite:PATH or mongodb://...)");
    return NULL;
}

store_t *store_open(const char *uri, char *err, size_t errlen)
{
    const store_ops_t *ops;
    const char *arg = NULL;
    void *be = NULL;
    store_t *st;

    if (!uri) {
        snprintf(err, errlen, "store: no URI");
        return NULL;
    }
    ops = pick_backend(uri, &arg, err, errlen);
    if (!ops)
        return NULL;
    if (ops == &store__sqlite_ops)
        be = store__sqlite_open(arg, err, errlen);
#ifdef CHAT_HAVE_MONGO
    else
        be = store__mongo_open(arg, err, errlen);
#endif
    if (!be)
        return NULL;
    st = core_xcalloc(1, sizeof(*st));
    st->ops = ops;
    st->be = be;
    st->batch_max = STORE_BATCH_DEFAULT;
    st->done_status = STORE_OK;
    core_strtab_init(&st->known_users, offsetof(known_user_t, user));
    pthread_mutex_init(&st->call_lock, NULL);
    pthread_mutex_init(&st->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* linger deadlines */
    pthread_cond_init(&st->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&st->idle, NULL);
    atomic_init(&st->backlog, 0);
    return st;
}

const char *store_backend_name(const store_t *st)
{
    return st ? st->ops->name : "";
}

/* ------------------------------------------------------------------ batches */

static void fail_items(store_item_t *items, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        items[i].status = STORE_ERR;
}

static void run_item(store_t *st, store_item_t *it)
{
    const store_ops_t *ops = st->ops;

    st->item_failed = ops->item_begin(st->be) != STORE_OK;
    if (it->work)
        it->work(st, it->arg);
    if (ops->item_end(st->be, st->item_failed) != STORE_OK)
        st->item_failed = 1;
    it->status = st->item_failed ? STORE_ERR : STORE_OK;
}

/* Ends the transaction holding items[seg..end). */
static void finish_txn(store_t *st, store_item_t *items, size_t seg, size_t end)
{
    if (st->ops->batch_commit(st->be) == STORE_OK) {
        atomic_fetch_add(&st->n_commits, 1);
        return;
    }
    st->ops->batch_abort(st->be);
    atomic_fetch_add(&st->n_commit_failures, 1);
    fail_items(items, seg, end);
}

/* Runs items as one transaction; a failed item is undone alone (its own
 * savepoint) or with its whole transaction (the backend drops it, and
 * batch_alive says so). Without a transaction (begin failed) each item
 * commits on its own. */
static void run_batch(store_t *st, store_item_t *items, size_t n)
{
    const store_ops_t *ops = st->ops;
    size_t seg = 0;
    int in_txn;

    int readonly = n > 0 && item_reads(&items[0]);

    pthread_mutex_lock(&st->call_lock);
    tls_batch_store = st;
    st->batch_created_user = 0;
    in_txn = ops->batch_begin(st->be, readonly) == STORE_OK;
    for (size_t i = 0; i < n; i++) {
        run_item(st, &items[i]);
        if (in_txn && !ops->batch_alive(st->be)) {
            /* The backend dropped the transaction: everything in it is gone. */
            fail_items(items, seg, i + 1);
            atomic_fetch_add(&st->n_commit_failures, 1);
            seg = i + 1;
            in_txn = ops->batch_begin(st->be, readonly) == STORE_OK;
        }
    }
    if (in_txn)
        finish_txn(st, items, seg, n);
    tls_batch_store = NULL;
    pthread_mutex_unlock(&st->call_lock);
    for (size_t i = 0; i < n; i++) {
        atomic_fetch_add(&st->n_items, 1);
        if (items[i].status != STORE_OK)
            atomic_fetch_add(&st->n_items_failed, 1);
    }
}

static void run_done(store_t *st, const store_item_t *it)
{
    st->done_status = it->status;
    if (it->done)
        it->done(it->arg);
    st->done_status = STORE_OK;
    atomic_fetch_sub(&st->backlog, 1);
}

/* Loop thread: runs every finished item's done() in order. */
static void run_dones(store_t *st)
{
    for (;;) {
        store_item_t it;

        pthread_mutex_lock(&st->mu);
        if (st->done.count == 0) {
            pthread_mutex_unlock(&st->mu);
            return;
        }
        it = fifo_pop(&st->done);
        pthread_mutex_unlock(&st->mu);
        run_done(st, &it);
    }
}

static void on_dones_ready(void *arg)
{
    run_dones(arg);
}

/* How many items from the queue's head are of the head's kind (read or
 * write), at most max: a batch is one kind, and items keep their order. */
static size_t same_kind_run(const store_fifo_t *f, size_t max)
{
    size_t n = 0;
    int readonly = f->count ? item_reads(&f->items[f->head]) : 0;

    while (n < f->count && n < max && item_reads(&f->items[(f->head + n) % f->cap]) == readonly)
        n++;
    return n;
}

/* Takes up to batch_max queued items of one kind; called with mu held. */
static size_t take_batch(store_t *st, store_item_t **buf, size_t *bufcap)
{
    size_t n = same_kind_run(&st->queue, st->batch_max);

    if (n > *bufcap) {
        free(*buf);
        *buf = core_xcalloc(n, sizeof(**buf));
        *bufcap = n;
    }
    for (size_t i = 0; i < n; i++) {
        (*buf)[i] = fifo_pop(&st->queue);
        if ((*buf)[i].kind != STORE_ITEM_LAZY)
            st->eager--;
    }
    return n;
}

static uint64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Only for a batch of lazy writes (nobody waits on them, and nothing else
 * is queued), and only under load (a batch ended within 2 x linger):
 * lingering then lets a later write carry them, and never delays an
 * answer. Called with a non-empty queue. */
static int should_linger(const store_t *st)
{
    return st->linger_us && st->eager == 0 && st->queue.count < st->batch_max &&
           !st->stopping && !item_reads(&st->queue.items[st->queue.head]) &&
           mono_us() - st->last_end_us < 2u * (uint64_t)st->linger_us;
}

/* Lets more items join a batch of lazy writes: one commit (its page
 * writes, its fsync) then covers them all. Ends early when a write that
 * someone waits for arrives. Called with mu held. */
static void linger(store_t *st)
{
    struct timespec until = core_mono_after(st->linger_us);

    st->lingering = 1;
    atomic_fetch_add(&st->n_lingers, 1);
    while (st->eager == 0 && st->queue.count < st->batch_max && !st->stopping)
        if (pthread_cond_timedwait(&st->wake, &st->mu, &until) != 0) {
            atomic_fetch_add(&st->n_lingers_expired, 1); /* ETIMEDOUT */
            break;
        }
    st->lingering = 0;
}

static void *store_thread_main(void *arg)
{
    store_t *st = arg;
    store_item_t *batch = NULL;
    size_t cap = 0;
    pthread_setname_np(pthread_self(), "store"); /* for top -H, perf, bench/threads.sh */

    pthread_mutex_lock(&st->mu);
    for (;;) {
        size_t n;

        while (st->queue.count == 0 && !st->stopping)
            pthread_cond_wait(&st->wake, &st->mu);
        if (st->queue.count == 0)
            break;
        if (should_linger(st))
            linger(st);
        n = take_batch(st, &batch, &cap);
        st->busy = 1;
        pthread_mutex_unlock(&st->mu);

        run_batch(st, batch, n);
        st->last_end_us = mono_us();

        pthread_mutex_lock(&st->mu);
        for (size_t i = 0; i < n; i++)
            fifo_push(&st->done, &batch[i]);
        st->busy = 0;
        pthread_cond_broadcast(&st->idle);
        pthread_mutex_unlock(&st->mu);
        core_mailbox_post(st->mailbox, on_dones_ready, st);
        pthread_mutex_lock(&st->mu);
    }
    pthread_mutex_unlock(&st->mu);
    free(batch);
    return NULL;
}

int store_start(store_t *st, struct ev_loop *loop)
{
    if (!st || !loop || st->started)
        return -1;
    st->mailbox = core_mailbox_new(loop);
    if (!st->mailbox)
        return -1;
    if (pthread_create(&st->thread, NULL, store_thread_main, st) != 0) {
        CORE_ERROR("store: cannot start the store thread");
        core_mailbox_free(st->mailbox);
        st->mailbox = NULL;
        return -1;
    }
    st->started = 1;
    return 0;
}

void store_submit_kind(store_t *st, store_kind_t kind, store_work_fn work, core_task_fn done,
                       void *arg)
{
    store_item_t it = {work, done, arg, STORE_OK, kind};
    int lazy = kind == STORE_ITEM_LAZY;

    atomic_fetch_add(&st->backlog, 1);
    if (!st->started) {
        run_batch(st, &it, 1);
        run_done(st, &it);
        return;
    }
    pthread_mutex_lock(&st->mu);
    fifo_push(&st->queue, &it);
    if (!lazy)
        st->eager++;
    if (!st->lingering || !lazy || st->queue.count >= st->batch_max)
        pthread_cond_signal(&st->wake); /* a lingering thread sleeps through lazy ones */
    pthread_mutex_unlock(&st->mu);
}

void store_submit(store_t *st, store_work_fn work, core_task_fn done, void *arg)
{
    store_submit_kind(st, STORE_ITEM_WRITE, work, done, arg);
}

void store_submit_lazy(store_t *st, store_work_fn work, core_task_fn done, void *arg)
{
    store_submit_kind(st, STORE_ITEM_LAZY, work, done, arg);
}

void store_submit_read(store_t *st, store_work_fn work, core_task_fn done, void *arg)
{
    store_submit_kind(st, STORE_ITEM_READ, work, done, arg);
}

size_t store_backlog(store_t *st)
{
    return st ? atomic_load(&st->backlog) : 0;
}

void store_set_batch_max(store_t *st, size_t n)
{
    pthread_mutex_lock(&st->mu);
    st->batch_max = n ? n : STORE_BATCH_DEFAULT;
    pthread_mutex_unlock(&st->mu);
}

void store_set_linger(store_t *st, unsigned usec)
{
    pthread_mutex_lock(&st->mu);
    st->linger_us = usec < 1000000 ? usec : 999999;
    pthread_mutex_unlock(&st->mu);
}

int store_done_status(const store_t *st)
{
    return st ? st->done_status : STORE_ERR;
}

void store_get_stats(store_t *st, store_stats_t *out)
{
    if (!st) {
        memset(out, 0, sizeof(*out));
        return;
    }
    out->items = atomic_load(&st->n_items);
    out->items_failed = atomic_load(&st->n_items_failed);
    out->commits = atomic_load(&st->n_commits);
    out->commit_failures = atomic_load(&st->n_commit_failures);
    out->lingers = atomic_load(&st->n_lingers);
    out->lingers_expired = atomic_load(&st->n_lingers_expired);
    out->checkpoints = st->ops->checkpoints ? st->ops->checkpoints(st->be) : 0;
}

/* Loop thread: waits for the thread to finish everything queued and runs
 * the done callbacks, until no done() queues more work. */
static void drain(store_t *st)
{
    pthread_mutex_lock(&st->mu);
    for (;;) {
        while (st->busy || st->queue.count > 0)
            pthread_cond_wait(&st->idle, &st->mu);
        if (st->done.count == 0)
            break;
        pthread_mutex_unlock(&st->mu);
        run_dones(st);
        pthread_mutex_lock(&st->mu);
    }
    st->stopping = 1;
    pthread_cond_signal(&st->wake);
    pthread_mutex_unlock(&st->mu);
}

void store_close(store_t *st)
{
    if (!st)
        return;
    if (st->started) {
        drain(st);
        pthread_join(st->thread, NULL);
        core_mailbox_free(st->mailbox);
    }
    st->ops->close(st->be);
    core_strtab_free_all(&st->known_users);
    pthread_cond_destroy(&st->idle);
    pthread_cond_destroy(&st->wake);
    pthread_mutex_destroy(&st->mu);
    pthread_mutex_destroy(&st->call_lock);
    free(st->queue.items);
    free(st->done.items);
    free(st);
}

/* ------------------------------------------------------------------ calls */

static int call_enter(store_t *st)
{
    if (tls_batch_store == st)
        return 0;
    pthread_mutex_lock(&st->call_lock);
    return 1;
}

static int call_leave(store_t *st, int locked, int rc)
{
    if (locked)
        pthread_mutex_unlock(&st->call_lock);
    else if (rc == STORE_ERR)
        st->item_failed = 1;
    return rc;
}

/* Forwards one call to the backend under the call rules above. */
#define STORE_CALL(st, method, ...)                                                            \
    do {                                                                                       \
        int locked_, rc_;                                                                      \
        if (!(st))                                                                             \
            return STORE_ERR;                                                                  \
        locked_ = call_enter(st);                                                              \
        rc_ = (st)->ops->method((st)->be, __VA_ARGS__);                                        \
        return call_leave((st), locked_, rc_);                                                 \
    } while (0)

int store_set_durability(store_t *st, store_durability_t level)
{
    if (!st || !st->ops->set_durability)
        return STORE_ERR;
    int locked = call_enter(st);
    return call_leave(st, locked, st->ops->set_durability(st->be, level));
}

int store_user_create(store_t *st, const char *user, const char *nickname, const char *pwhash,
                      uint64_t ts)
{
    if (st && tls_batch_store == st)
        st->batch_created_user = 1;
    STORE_CALL(st, user_create, user, nickname, pwhash, ts);
}

/* Bounded: past the limit the set starts over (no LRU to keep). */
static void known_user_add(store_t *st, const char *user)
{
    known_user_t *k = core_xcalloc(1, sizeof(*k));

    core_copy_trunc(k->user, sizeof(k->user), user);
    if (st->known_users.count >= KNOWN_USERS_MAX)
        core_strtab_free_all(&st->known_users);
    core_strtab_add(&st->known_users, k);
}

int store_user_exists(store_t *st, const char *user)
{
    store_user_t u;
    int locked, rc;

    if (!st)
        return STORE_ERR;
    int fits = user && strlen(user) < STORE_USER_MAX;
    locked = call_enter(st);
    if (fits && core_strtab_find(&st->known_users, user))
        return call_leave(st, locked, STORE_OK);
    rc = st->ops->user_get(st->be, user, &u);
    if (rc == STORE_OK && fits && !(tls_batch_store == st && st->batch_created_user))
        known_user_add(st, user);
    return call_leave(st, locked, rc);
}

int store_user_get(store_t *st, const char *user, store_user_t *out)
{
    STORE_CALL(st, user_get, user, out);
}

int store_token_put(store_t *st, const char *user, const char *token_hash, uint64_t expires_ms)
{
    STORE_CALL(st, token_put, user, token_hash, expires_ms);
}

int store_token_check(store_t *st, const char *user, const char *token_hash, uint64_t now_ms)
{
    STORE_CALL(st, token_check, user, token_hash, now_ms);
}

int store_friend_request_put(store_t *st, const char *from, const char *to, const char *note,
                             uint64_t ts)
{
    STORE_CALL(st, friend_request_put, from, to, note, ts);
}

int store_friend_request_take(store_t *st, const char *from, const char *to)
{
    STORE_CALL(st, friend_request_take, from, to);
}

int store_friend_add(store_t *st, const char *a, const char *b, uint64_t ts)
{
    STORE_CALL(st, friend_add, a, b, ts);
}

int store_friends_check(store_t *st, const char *a, const char *b)
{
    STORE_CALL(st, friends_check, a, b);
}

int store_friends_list(store_t *st, const char *user, store_names_t *out)
{
    STORE_CALL(st, friends_list, user, out);
}

int store_group_create(store_t *st, const char *gid, const char *name, const char *owner,
                       uint64_t ts)
{
    STORE_CALL(st, group_create, gid, name, owner, ts);
}

int store_group_get(store_t *st, const char *gid, store_group_t *out)
{
    STORE_CALL(st, group_get, gid, out);
}

int store_group_join(store_t *st, const char *gid, const char *user)
{
    STORE_CALL(st, group_join, gid, user);
}

int store_group_leave(store_t *st, const char *gid, const char *user)
{
    STORE_CALL(st, group_leave, gid, user);
}

int store_group_is_member(store_t *st, const char *gid, const char *user)
{
    STORE_CALL(st, group_is_member, gid, user);
}

int store_group_members(store_t *st, const char *gid, store_names_t *out)
{
    STORE_CALL(st, group_members, gid, out);
}

int store_groups_of(store_t *st, const char *user, store_groups_t *out)
{
    STORE_CALL(st, groups_of, user, out);
}

int store_groups_all(store_t *st, store_groups_t *out)
{
    STORE_CALL(st, groups_all, out);
}

int store_room_create(store_t *st, const char *room, const char *title, const char *creator,
                      uint64_t ts)
{
    STORE_CALL(st, room_create, room, title, creator, ts);
}

int store_room_get(store_t *st, const char *room, store_room_t *out)
{
    STORE_CALL(st, room_get, room, out);
}

int store_rooms_list(store_t *st, store_rooms_t *out)
{
    STORE_CALL(st, rooms_list, out);
}

int store_msg_put(store_t *st, const store_msg_t *m, const char *conv)
{
    STORE_CALL(st, msg_put, m, conv);
}

int store_history(store_t *st, const char *conv, const char *before, int limit, store_msgs_t *out)
{
    STORE_CALL(st, history, conv, before, limit, out);
}

int store_msg_get(store_t *st, const char *msgid, store_msg_t *out)
{
    STORE_CALL(st, msg_get, msgid, out);
}

int store_conv_last(store_t *st, const char *conv, char out[STORE_MSGID_MAX])
{
    out[0] = '\0';
    STORE_CALL(st, conv_last, conv, out);
}

int store_pending_add(store_t *st, const char *user, const char *msgid, const char *event,
                      const char *data_json, uint64_t ts)
{
    if (!msgid || !msgid[0])
        return STORE_ERR; /* the item's key: an item without one could never be taken */
    STORE_CALL(st, pending_add, user, msgid, event, data_json, ts);
}

int store_pending_list(store_t *st, const char *user, size_t limit, store_pendings_t *out)
{
    STORE_CALL(st, pending_list, user, limit, out);
}

int store_pending_count(store_t *st, const char *user, long *count)
{
    STORE_CALL(st, pending_count, user, count);
}

int store_pending_ack(store_t *st, const char *user, const char *const *msgids, size_t n,
                      store_ackeds_t *out)
{
    STORE_CALL(st, pending_ack, user, msgids, n, out);
}

int store_pending_drop(store_t *st, const char *user, const char *msgid)
{
    STORE_CALL(st, pending_drop, user, msgid);
}

int store_cid_get(store_t *st, const char *user, const char *cid, uint64_t since_ms,
                  char msgid[STORE_MSGID_MAX])
{
    STORE_CALL(st, cid_get, user, cid, since_ms, msgid);
}

int store_cid_put(store_t *st, const char *user, const char *cid, const char *msgid, uint64_t ts)
{
    STORE_CALL(st, cid_put, user, cid, msgid, ts);
}

int store_expire(store_t *st, uint64_t before_ms)
{
    STORE_CALL(st, expire, before_ms);
}

/* ------------------------------------------------------------------ records */

void store_conv_direct(const char *a, const char *b, char out[STORE_CONV_MAX])
{
    if (strcmp(a, b) > 0) {
        const char *t = a;
        a = b;
        b = t;
    }
    snprintf(out, STORE_CONV_MAX, "d:%s|%s", a, b);
}

void store_conv_group(const char *gid, char out[STORE_CONV_MAX])
{
    snprintf(out, STORE_CONV_MAX, "g:%s", gid);
}

void store_names_free(store_names_t *l)
{
    if (!l)
        return;
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

void store_groups_free(store_groups_t *l)
{
    if (!l)
        return;
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

void store_rooms_free(store_rooms_t *l)
{
    if (!l)
        return;
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

void store_msgs_free(store_msgs_t *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i].message);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

void store_pendings_free(store_pendings_t *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i].data);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

void store_ackeds_free(store_ackeds_t *l)
{
    if (!l)
        return;
    free(l->items);
    l->items = NULL;
    l->count = 0;
}
