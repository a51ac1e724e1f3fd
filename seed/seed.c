/* Idempotent test data through the synchronous store API. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sodium.h>

#include "core/core.h"
#include "proto/proto.h"
#include "seed/seed.h"

#define SEED_USERS_MAX 1000000L

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void seed_opts_default(seed_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->prefix = "user";
    o->password_format = "pass-%d"; /* 6+ bytes: "pw-1" would be too short */
    o->group_size = 5;
    o->group_prefix = "group";
    o->room_prefix = "room";
    o->pwhash_ops = 1;
    o->pwhash_mem = 8u << 20;
}

/* prefix + n; -1 when it is not a valid name. */
static int numbered_name(const char *prefix, long n, char *out, size_t outlen)
{
    int len = snprintf(out, outlen, "%s%ld", prefix, n);

    if (len < 0 || (size_t)len >= outlen || !proto_valid_name(out, (size_t)len))
        return -1;
    return 0;
}

int seed_user_name(const seed_opts_t *o, long n, char *out, size_t outlen)
{
    return numbered_name(o->prefix, n, out, outlen);
}

/* Expands the one "%d" (and "%%") of the format by hand: the format comes
 * from the command line, so it never reaches printf. */
int seed_password(const seed_opts_t *o, long n, char *out, size_t outlen)
{
    const char *f = o->password_format;
    core_buf_t b;
    int numbers = 0, rc = -1;

    core_buf_init(&b);
    for (; *f; f++) {
        if (f[0] == '%' && f[1] == 'd') {
            core_buf_printf(&b, "%ld", n);
            numbers++;
            f++;
        } else if (f[0] == '%' && f[1] == '%') {
            core_buf_append(&b, "%", 1);
            f++;
        } else if (f[0] == '%') {
            goto out;
        } else {
            core_buf_append(&b, f, 1);
        }
    }
    if (numbers == 1 && b.len >= PROTO_PASSWORD_MIN && b.len <= PROTO_PASSWORD_MAX &&
        b.len < outlen) {
        memcpy(out, b.data, b.len + 1);
        rc = 0;
    }
out:
    core_buf_free(&b);
    return rc;
}

static int check_counts(const seed_opts_t *o, char *err, size_t errlen)
{
    if (o->users < 1 || o->users > SEED_USERS_MAX)
        return fail(err, errlen, "--users must be 1..%ld", SEED_USERS_MAX);
    if (o->friends < 0 || o->friends > o->users - 1)
        return fail(err, errlen, "--friends must be 0..users-1 (%ld)", o->users - 1);
    if (o->groups < 0 || o->groups > SEED_USERS_MAX || o->rooms < 0 || o->rooms > SEED_USERS_MAX)
        return fail(err, errlen, "--groups and --rooms must be 0..%ld", SEED_USERS_MAX);
    if (o->groups > 0 && o->group_size < 1)
        return fail(err, errlen, "--group-size must be at least 1");
    if (o->pwhash_ops < crypto_pwhash_OPSLIMIT_MIN || o->pwhash_mem < crypto_pwhash_MEMLIMIT_MIN)
        return fail(err, errlen, "--pwhash-ops must be >= %u and --pwhash-mem >= %u bytes",
                    (unsigned)crypto_pwhash_OPSLIMIT_MIN, (unsigned)crypto_pwhash_MEMLIMIT_MIN);
    return 0;
}

/* The longest numbered names must still be valid. */
static int check_names(const seed_opts_t *o, char *err, size_t errlen)
{
    char name[PROTO_PASSWORD_MAX + 1];

    if (seed_user_name(o, o->users, name, sizeof name) < 0)
        return fail(err, errlen, "user names '%s1'..'%s%ld' are not valid names", o->prefix,
                    o->prefix, o->users);
    if (seed_password(o, 1, name, sizeof name) < 0 ||
        seed_password(o, o->users, name, sizeof name) < 0)
        return fail(err, errlen, "--password-format needs exactly one %%d and %d..%d bytes",
                    PROTO_PASSWORD_MIN, PROTO_PASSWORD_MAX);
    if (o->groups > 0 && (numbered_name(o->group_prefix, o->groups, name, sizeof name) < 0 ||
                          strlen(name) > PROTO_GROUP_ID_MAX))
        return fail(err, errlen, "group ids '%s1'.. are not valid", o->group_prefix);
    if (o->rooms > 0 && numbered_name(o->room_prefix, o->rooms, name, sizeof name) < 0)
        return fail(err, errlen, "room names '%s1'.. are not valid", o->room_prefix);
    return 0;
}

int seed_opts_check(const seed_opts_t *o, char *err, size_t errlen)
{
    if (!o->prefix || !o->password_format || !o->group_prefix || !o->room_prefix)
        return fail(err, errlen, "missing name prefix or password format");
    if (check_counts(o, err, errlen) < 0)
        return -1;
    return check_names(o, err, errlen);
}

/* ------------------------------------------------------------------ seeding */

/* Counts one created/existing outcome; -1 on a store failure. */
static int tally(int rc, long *created, long *existing)
{
    if (rc == STORE_OK)
        (*created)++;
    else if (rc == STORE_EXISTS)
        (*existing)++;
    else
        return -1;
    return 0;
}

/* Creates user n: STORE_OK, STORE_EXISTS (left alone) or STORE_ERR. */
static int user_create(store_t *st, const seed_opts_t *o, long n)
{
    char user[STORE_USER_MAX], pw[PROTO_PASSWORD_MAX + 1], hash[crypto_pwhash_STRBYTES];
    store_user_t u;
    int rc;

    seed_user_name(o, n, user, sizeof user);
    rc = store_user_get(st, user, &u);
    if (rc == STORE_OK)
        return STORE_EXISTS;
    if (rc != STORE_NOTFOUND || seed_password(o, n, pw, sizeof pw) < 0)
        return STORE_ERR;
    rc = crypto_pwhash_str_alg(hash, pw, strlen(pw), o->pwhash_ops, o->pwhash_mem,
                               crypto_pwhash_ALG_ARGON2ID13);
    sodium_memzero(pw, sizeof pw);
    if (rc != 0)
        return STORE_ERR;
    return store_user_create(st, user, user, hash, core_now_ms());
}

/* ------------------------------------------------------------------ users in batches */

/* With a started store, users go through store_submit: a window of work
 * items on the store thread, committed SEED_BATCH at a time (one commit
 * per batch instead of one per user: 1M users in minutes). */
#define SEED_WINDOW 8192
#define SEED_BATCH 1024
#define SEED_PROGRESS_S 2.0

typedef struct batcher {
    store_t *st;
    struct ev_loop *loop;
    const seed_opts_t *o;
    seed_counts_t *c;
    long next, finished;
    long failed_n; /* first user whose item failed, 0 = none */
    ev_timer progress;
    uint64_t t0;
} batcher_t;

typedef struct user_item {
    batcher_t *b;
    long n;
    int rc;
} user_item_t;

static void batch_submit_more(batcher_t *b);

static void user_item_work(store_t *st, void *arg)
{
    user_item_t *it = arg;

    it->rc = user_create(st, it->b->o, it->n);
}

static void user_item_done(void *arg)
{
    user_item_t *it = arg;
    batcher_t *b = it->b;

    if ((store_done_status(b->st) != STORE_OK ||
         tally(it->rc, &b->c->users_created, &b->c->users_existing) < 0) &&
        !b->failed_n)
        b->failed_n = it->n;
    b->finished++;
    free(it);
    batch_submit_more(b);
}

static void batch_submit_more(batcher_t *b)
{
    while (!b->failed_n && b->next <= b->o->users && b->next - b->finished <= SEED_WINDOW) {
        user_item_t *it = core_xcalloc(1, sizeof *it);
        it->b = b;
        it->n = b->next++;
        store_submit(b->st, user_item_work, user_item_done, it);
    }
    if (b->finished == b->next - 1 && (b->failed_n || b->next > b->o->users))
        ev_break(b->loop, EVBREAK_ONE);
}

static void batch_progress(struct ev_loop *loop, ev_timer *w, int revents)
{
    batcher_t *b = w->data;
    double s = (double)(core_mono_ms() - b->t0) / 1000.0;

    (void)loop;
    (void)revents;
    if (b->o->progress)
        fprintf(stderr, "chat-seed: users %ld/%ld (%.0f/s)\n", b->finished, b->o->users,
            s > 0 ? (double)b->finished / s : 0.0);
}

static int seed_users_batched(store_t *st, struct ev_loop *loop, const seed_opts_t *o,
                              seed_counts_t *c)
{
    batcher_t b = {.st = st, .loop = loop, .o = o, .c = c, .next = 1, .t0 = core_mono_ms()};

    if (o->users == 0)
        return 0;
    store_set_batch_max(st, SEED_BATCH);
    ev_timer_init(&b.progress, batch_progress, SEED_PROGRESS_S, SEED_PROGRESS_S);
    b.progress.data = &b;
    /* also what keeps ev_run running: the store's mailbox does not */
    ev_timer_start(loop, &b.progress);
    batch_submit_more(&b);
    ev_run(loop, 0);
    ev_timer_stop(loop, &b.progress);
    return b.failed_n ? -1 : 0;
}

/* User n befriends the next `friends` users around the ring. */
static int seed_friends_of(store_t *st, const seed_opts_t *o, long n, seed_counts_t *c)
{
    char a[STORE_USER_MAX], b[STORE_USER_MAX];
    int rc;

    seed_user_name(o, n, a, sizeof a);
    for (long k = 1; k <= o->friends; k++) {
        long m = (n - 1 + k) % o->users + 1;

        seed_user_name(o, m, b, sizeof b);
        rc = store_friends_check(st, a, b);
        if (rc == STORE_OK)
            rc = STORE_EXISTS;
        else if (rc == STORE_NOTFOUND)
            rc = store_friend_add(st, a, b, core_now_ms());
        if (tally(rc, &c->friendships_created, &c->friendships_existing) < 0)
            return -1;
    }
    return 0;
}

/* Group g: members are S consecutive users starting at ((g-1)*S) mod N. */
static int seed_group(store_t *st, const seed_opts_t *o, long g, seed_counts_t *c)
{
    char gid[STORE_GID_MAX], name[STORE_GNAME_MAX], user[STORE_USER_MAX];
    long size = o->group_size < o->users ? o->group_size : o->users;
    long first = ((g - 1) * size) % o->users;
    store_group_t grp;
    int rc;

    numbered_name(o->group_prefix, g, gid, sizeof gid);
    snprintf(name, sizeof name, "Group %ld", g);
    seed_user_name(o, first + 1, user, sizeof user);
    rc = store_group_get(st, gid, &grp);
    if (rc == STORE_OK)
        rc = STORE_EXISTS;
    else if (rc == STORE_NOTFOUND)
        rc = store_group_create(st, gid, name, user, core_now_ms());
    if (tally(rc, &c->groups_created, &c->groups_existing) < 0)
        return -1;
    for (long i = 1; i < size; i++) {
        seed_user_name(o, (first + i) % o->users + 1, user, sizeof user);
        rc = store_group_is_member(st, gid, user);
        if (rc == STORE_OK)
            rc = STORE_EXISTS;
        else if (rc == STORE_NOTFOUND)
            rc = store_group_join(st, gid, user);
        if (tally(rc, &c->members_added, &c->members_existing) < 0)
            return -1;
    }
    return 0;
}

static int seed_room(store_t *st, const seed_opts_t *o, long r, seed_counts_t *c)
{
    char room[STORE_USER_MAX], title[STORE_TITLE_MAX], creator[STORE_USER_MAX];
    store_room_t existing;
    int rc;

    numbered_name(o->room_prefix, r, room, sizeof room);
    snprintf(title, sizeof title, "Room %ld", r);
    seed_user_name(o, 1, creator, sizeof creator);
    rc = store_room_get(st, room, &existing);
    if (rc == STORE_OK)
        rc = STORE_EXISTS;
    else if (rc == STORE_NOTFOUND)
        rc = store_room_create(st, room, title, creator, core_now_ms());
    return tally(rc, &c->rooms_created, &c->rooms_existing);
}

int seed_run(store_t *st, struct ev_loop *loop, const seed_opts_t *o, seed_counts_t *out,
             char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (seed_opts_check(o, err, errlen) < 0)
        return -1;
    if (sodium_init() < 0)
        return fail(err, errlen, "libsodium init failed");
    if (loop && seed_users_batched(st, loop, o, out) < 0)
        return fail(err, errlen, "store failure while creating users");
    for (long n = 1; !loop && n <= o->users; n++)
        if (tally(user_create(st, o, n), &out->users_created, &out->users_existing) < 0)
            return fail(err, errlen, "store failure while creating user %ld", n);
    for (long n = 1; n <= o->users; n++)
        if (seed_friends_of(st, o, n, out) < 0)
            return fail(err, errlen, "store failure while adding friends of user %ld", n);
    for (long g = 1; g <= o->groups; g++)
        if (seed_group(st, o, g, out) < 0)
            return fail(err, errlen, "store failure while creating group %ld", g);
    for (long r = 1; r <= o->rooms; r++)
        if (seed_room(st, o, r, out) < 0)
            return fail(err, errlen, "store failure while creating room %ld", r);
    return 0;
}
