/* store: what must survive. Accounts, resume tokens, friends and requests,
 * groups and members, rooms, messages, pending deliveries, cid dedupe.
 *
 * Two backends behind one interface, picked by URI:
 *   sqlite:PATH          embedded default (WAL, schema created at open)
 *   mongodb://...        MongoDB through mongo-c-driver
 *
 * Two ways in:
 * - The synchronous functions (store_user_create, ...) block. Call them
 *   only off the event loop: from a work function given to store_submit,
 *   or from tools and tests that have no loop (chat-seed).
 * - store_submit() runs a work function on the store's own thread. Work
 *   items queued together run in ONE transaction (group commit: one fsync
 *   for a batch); each item runs inside its own savepoint, so one item's
 *   failure rolls back only that item. done() runs on the loop thread
 *   after the batch committed, so a done() may tell a client "stored".
 *
 * Return codes: STORE_OK, STORE_NOTFOUND, STORE_EXISTS, or STORE_ERR
 * (backend failure: the caller answers 503). Output structs are filled by
 * the callee; lists are freed with their _free function.
 */
#ifndef CHAT_STORE_H
#define CHAT_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <ev.h>

#include "core/core.h"

enum {
    STORE_OK = 0,
    STORE_NOTFOUND = 1,
    STORE_EXISTS = 2,
    STORE_ERR = -1,
};

typedef struct store store_t;

/* Opens the backend named by uri. NULL with err filled on failure. */
store_t *store_open(const char *uri, char *err, size_t errlen);
/* Starts the store thread and its mailbox on loop (needed by store_submit).
 * Before it, store_submit runs work and done inline (tools and tests).
 * After it, a synchronous call from a thread other than the store thread
 * waits for the running batch and then runs on its own (autocommit). */
int store_start(store_t *st, struct ev_loop *loop);
/* Drains queued work (running done callbacks), stops the thread, closes. */
void store_close(store_t *st);
const char *store_backend_name(const store_t *st); /* "sqlite" / "mongodb" */

/* What a committed batch survives (SQLite; call before store_start).
 * DISK: fsync at every commit, a power loss keeps it (synchronous=FULL).
 * PROCESS: written to the OS at commit, a crash or kill -9 of any process
 * keeps it, a power loss or kernel crash may take the last commits
 * (WAL, synchronous=NORMAL). MongoDB takes its level from the URI's write
 * concern (w, journal) instead: there this returns STORE_ERR. */
typedef enum { STORE_DURABLE_DISK = 0, STORE_DURABLE_PROCESS = 1 } store_durability_t;
int store_set_durability(store_t *st, store_durability_t level);

typedef void (*store_work_fn)(store_t *st, void *arg);
void store_submit(store_t *st, store_work_fn work, core_task_fn done, void *arg);
/* Like store_submit for a write that no answer waits on (a delivery's ack):
 * under load it may wait up to the linger for a write that someone waits
 * on, and commit with it. */
void store_submit_lazy(store_t *st, store_work_fn work, core_task_fn done, void *arg);
/* Like store_submit for work that only reads. Consecutive read items run in
 * a read batch: on SQLite a deferred transaction that takes no write lock,
 * so nodes sharing one file read side by side instead of queueing on the
 * write lock, and nothing is fsynced. A write inside it fails (STORE_ERR). */
void store_submit_read(store_t *st, store_work_fn work, core_task_fn done, void *arg);
/* The three above by kind, for callers that carry it. */
typedef enum { STORE_ITEM_WRITE, STORE_ITEM_LAZY, STORE_ITEM_READ } store_kind_t;
void store_submit_kind(store_t *st, store_kind_t kind, store_work_fn work, core_task_fn done,
                       void *arg);
size_t store_backlog(store_t *st);
/* Max items per batch (default 256). */
void store_set_batch_max(store_t *st, size_t n);
/* Under load (a batch ended less than 2 x usec ago), a batch of lazy
 * writes only waits up to usec for more items (a write someone waits on
 * ends the wait): fewer, larger commits, and no answer delayed. Other
 * batches run at once. 0 (the default) runs every batch at once. */
void store_set_linger(store_t *st, unsigned usec);
/* Only inside a done callback (loop thread): STORE_OK when that item's work
 * is committed; STORE_ERR when it was rolled back, because a store_* call
 * inside it (on SQLite: inside any item of its transaction) returned
 * STORE_ERR or because the batch failed to commit (the
 * work's own result fields are set either way: trust them only on OK).
 * On MongoDB a failed item is NOT undone (no transactions). */
int store_done_status(const store_t *st);

/* Counters since open (any thread). */
typedef struct store_stats {
    uint64_t items;          /* work items run */
    uint64_t items_failed;   /* items whose done saw STORE_ERR */
    uint64_t commits;        /* batch transactions committed */
    uint64_t commit_failures;
    uint64_t lingers;        /* times the thread waited for company */
    uint64_t lingers_expired; /* ... and waited the whole linger */
    uint64_t checkpoints;    /* SQLite: WAL checkpoints run (0 on MongoDB) */
} store_stats_t;
void store_get_stats(store_t *st, store_stats_t *out);

/* ------------------------------------------------------------------ records */

#define STORE_USER_MAX 33      /* 32 + NUL */
#define STORE_NICK_MAX 65
#define STORE_HASH_MAX 128     /* crypto_pwhash_STRBYTES */
#define STORE_GID_MAX 33
#define STORE_GNAME_MAX 65
#define STORE_TITLE_MAX 129
#define STORE_MSGID_MAX 24
#define STORE_FORMAT_MAX 17

typedef struct store_user {
    char user[STORE_USER_MAX];
    char nickname[STORE_NICK_MAX];
    char pwhash[STORE_HASH_MAX];
} store_user_t;

/* A (name, nickname) pair, for friend lists and group members. */
typedef struct store_name {
    char user[STORE_USER_MAX];
    char nickname[STORE_NICK_MAX];
} store_name_t;

typedef struct store_names {
    store_name_t *items;
    size_t count;
} store_names_t;
void store_names_free(store_names_t *l);

typedef struct store_group {
    char gid[STORE_GID_MAX];
    char name[STORE_GNAME_MAX];
    char owner[STORE_USER_MAX];
    long members;
} store_group_t;

typedef struct store_groups {
    store_group_t *items;
    size_t count;
} store_groups_t;
void store_groups_free(store_groups_t *l);

typedef struct store_room {
    char room[STORE_USER_MAX];
    char title[STORE_TITLE_MAX];
    char creator[STORE_USER_MAX];
} store_room_t;

typedef struct store_rooms {
    store_room_t *items;
    size_t count;
} store_rooms_t;
void store_rooms_free(store_rooms_t *l);

/* A stored chat or group message. conv is "d:<a>|<b>" (a < b) for direct
 * messages and "g:<gid>" for groups (store_conv_direct/_group build it). */
typedef struct store_msg {
    char msgid[STORE_MSGID_MAX];
    char kind;                   /* 'c' direct, 'g' group */
    char from[STORE_USER_MAX];
    char to[STORE_GID_MAX];      /* user (direct) or gid (group) */
    uint64_t ts;
    char format[STORE_FORMAT_MAX];
    char *message;               /* heap; owned by the record */
} store_msg_t;

typedef struct store_msgs {
    store_msg_t *items;
    size_t count;
} store_msgs_t;
void store_msgs_free(store_msgs_t *l);

#define STORE_CONV_MAX 80
void store_conv_direct(const char *a, const char *b, char out[STORE_CONV_MAX]);
void store_conv_group(const char *gid, char out[STORE_CONV_MAX]);

/* A pending delivery: an event to push at the user's next login. */
typedef struct store_pending {
    char msgid[STORE_MSGID_MAX]; /* the item's key within the user's */
    char event[24];              /* "chat", "group_chat", "system", "friend_request", ... */
    char *data;                  /* heap: the event's data object as JSON text */
} store_pending_t;

typedef struct store_pendings {
    store_pending_t *items;
    size_t count;
} store_pendings_t;
void store_pendings_free(store_pendings_t *l);

/* What an ack removed: for each acked direct message, who sent it (for the
 * receipt). */
typedef struct store_acked {
    char msgid[STORE_MSGID_MAX];
    char from[STORE_USER_MAX];
} store_acked_t;

typedef struct store_ackeds {
    store_acked_t *items;
    size_t count;
} store_ackeds_t;
void store_ackeds_free(store_ackeds_t *l);

/* ------------------------------------------------------------------ accounts */

int store_user_create(store_t *st, const char *user, const char *nickname, const char *pwhash,
                      uint64_t ts);                                           /* OK / EXISTS */
int store_user_get(store_t *st, const char *user, store_user_t *out);       /* OK / NOTFOUND */
/* OK / NOTFOUND; a name once found is remembered (bounded), no backend call. */
int store_user_exists(store_t *st, const char *user);
/* Tokens are stored as a hash (token_hash: hex of a digest of the token). */
int store_token_put(store_t *st, const char *user, const char *token_hash, uint64_t expires_ms);
int store_token_check(store_t *st, const char *user, const char *token_hash,
                      uint64_t now_ms); /* OK / NOTFOUND (unknown or expired) */

/* ------------------------------------------------------------------ friends */

/* OK; EXISTS when already friends. A repeated request replaces the note. */
int store_friend_request_put(store_t *st, const char *from, const char *to, const char *note,
                             uint64_t ts);
/* Removes the request from -> to. OK / NOTFOUND. */
int store_friend_request_take(store_t *st, const char *from, const char *to);
int store_friend_add(store_t *st, const char *a, const char *b, uint64_t ts); /* both ways */
int store_friends_check(store_t *st, const char *a, const char *b);          /* OK / NOTFOUND */
int store_friends_list(store_t *st, const char *user, store_names_t *out);

/* ------------------------------------------------------------------ groups */

int store_group_create(store_t *st, const char *gid, const char *name, const char *owner,
                       uint64_t ts); /* also makes owner a member */
int store_group_get(store_t *st, const char *gid, store_group_t *out);      /* OK / NOTFOUND */
int store_group_join(store_t *st, const char *gid, const char *user);       /* OK / EXISTS */
int store_group_leave(store_t *st, const char *gid, const char *user);      /* OK / NOTFOUND */
int store_group_is_member(store_t *st, const char *gid, const char *user);  /* OK / NOTFOUND */
int store_group_members(store_t *st, const char *gid, store_names_t *out);
int store_groups_of(store_t *st, const char *user, store_groups_t *out);
int store_groups_all(store_t *st, store_groups_t *out);

/* ------------------------------------------------------------------ rooms */

int store_room_create(store_t *st, const char *room, const char *title, const char *creator,
                      uint64_t ts); /* OK / EXISTS */
int store_room_get(store_t *st, const char *room, store_room_t *out);       /* OK / NOTFOUND */
int store_rooms_list(store_t *st, store_rooms_t *out);

/* ------------------------------------------------------------------ messages */

int store_msg_put(store_t *st, const store_msg_t *m, const char *conv);
/* Messages of conv with msgid < before (all when before is NULL or ""),
 * the newest `limit`, returned oldest first. */
int store_history(store_t *st, const char *conv, const char *before, int limit, store_msgs_t *out);
int store_msg_get(store_t *st, const char *msgid, store_msg_t *out);        /* OK / NOTFOUND */
/* The greatest msgid stored in conv (OK / NOTFOUND): a new message of conv
 * takes an id above it, so ids sort in send order across nodes. */
int store_conv_last(store_t *st, const char *conv, char out[STORE_MSGID_MAX]);

/* ------------------------------------------------------------------ pending */

/* msgid (unique, non-empty) keys the item within the user's. */
int store_pending_add(store_t *st, const char *user, const char *msgid, const char *event,
                      const char *data_json, uint64_t ts);
/* Oldest first, at most limit (SQLite: in msgid order, which is send order;
 * MongoDB: in the order added). */
int store_pending_list(store_t *st, const char *user, size_t limit, store_pendings_t *out);
int store_pending_count(store_t *st, const char *user, long *count);
/* Deletes the user's pending items with these msgids; fills out with the
 * sender of each deleted "chat" item (the "from" of its data, a direct
 * message's event: the receipt goes there). */
int store_pending_ack(store_t *st, const char *user, const char *const *msgids, size_t n,
                      store_ackeds_t *out);
/* Deletes one item without a receipt (read-once items, once delivered). */
int store_pending_drop(store_t *st, const char *user, const char *msgid);

/* ------------------------------------------------------------------ cid dedupe */

/* OK with msgid filled when (user, cid) was recorded after since_ms. */
int store_cid_get(store_t *st, const char *user, const char *cid, uint64_t since_ms,
                  char msgid[STORE_MSGID_MAX]);
int store_cid_put(store_t *st, const char *user, const char *cid, const char *msgid, uint64_t ts);
/* Housekeeping: drops cids and tokens older than before_ms. */
int store_expire(store_t *st, uint64_t before_ms);

#endif
