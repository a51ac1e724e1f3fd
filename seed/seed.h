/* seed: idempotent test data for a chat store (chat-seed).
 *
 * N users named PREFIX1..PREFIXN with known passwords (password_format with
 * its "%d" replaced by the user's number), a ring of friendships (each user
 * befriends the next K), G groups of S members each (ids GROUP_PREFIX1..,
 * owned by their first member), R rooms ROOM_PREFIX1.. created by user 1.
 * A second run with the same options creates nothing and reports what
 * already existed. Passwords are hashed with argon2id (crypto_pwhash_str_alg)
 * exactly as the node does; the node verifies with crypto_pwhash_str_verify,
 * so the cost stored in each hash is what counts.
 *
 * Uses the synchronous store API (users also in batches through
 * store_submit, see seed_run): call it from a tool or a test, never from a
 * running event loop.
 */
#ifndef CHAT_SEED_H
#define CHAT_SEED_H

#include <stddef.h>
#include <ev.h>

#include "store/store.h"

typedef struct seed_opts {
    long users;                  /* N */
    const char *prefix;          /* user name prefix; default "user" */
    const char *password_format; /* default "pass-%d" (passwords need 6+ bytes) */
    long friends;                /* K per user (ring); 0..N-1 */
    long groups;                 /* G */
    long group_size;             /* S; 1..N; default 5 (capped at N) */
    const char *group_prefix;    /* default "group" */
    long rooms;                  /* R */
    const char *room_prefix;     /* default "room" */
    unsigned long pwhash_ops;    /* default 1 (cheap test data) */
    size_t pwhash_mem;           /* default 8 MiB */
    int progress;                /* print users done every 2 s to stderr */
} seed_opts_t;

/* What a run did: created now vs. already there. */
typedef struct seed_counts {
    long users_created, users_existing;
    long friendships_created, friendships_existing;
    long groups_created, groups_existing;
    long members_added, members_existing;
    long rooms_created, rooms_existing;
} seed_counts_t;

void seed_opts_default(seed_opts_t *o);
/* Checks names and ranges. 0, or -1 with err. */
int seed_opts_check(const seed_opts_t *o, char *err, size_t errlen);
/* The name/password of user n (1-based). 0, or -1 when it does not fit. */
int seed_user_name(const seed_opts_t *o, long n, char *out, size_t outlen);
int seed_password(const seed_opts_t *o, long n, char *out, size_t outlen);
/* Seeds st. With loop (st started on it with store_start, loop not
 * running) users are created in batched transactions on the store thread;
 * with NULL one autocommit per user. 0, or -1 with err (a store failure;
 * counts so far are kept). */
int seed_run(store_t *st, struct ev_loop *loop, const seed_opts_t *o, seed_counts_t *out,
             char *err, size_t errlen);

#endif
