/* store/store_int.h: the backend vtable (private to store/).
 *
 * store.c owns the public API, the store thread and batching; a backend
 * only answers the calls below on its own handle. Return codes are the
 * public STORE_* codes. Batch and item hooks bracket the work functions of
 * one batch: batch_begin, then per item item_begin/item_end, then
 * batch_commit (or batch_abort). A backend without transactions makes them
 * no-ops that succeed.
 */
#ifndef CHAT_STORE_INT_H
#define CHAT_STORE_INT_H

#include "store/store.h"

typedef struct store_ops {
    const char *name;
    void (*close)(void *be);
    /* NULL when the backend takes durability from elsewhere (its URI). */
    int (*set_durability)(void *be, store_durability_t level);
    /* NULL when the backend has no checkpoints of its own to count. */
    uint64_t (*checkpoints)(void *be);

    /* readonly: every item of the batch only reads (the backend may refuse
     * writes until the batch ends). */
    int (*batch_begin)(void *be, int readonly);
    int (*batch_commit)(void *be);
    void (*batch_abort)(void *be);
    /* 1 while the transaction opened by batch_begin is still open (a
     * backend may lose it on a hard error: then the batch so far is gone). */
    int (*batch_alive)(void *be);
    int (*item_begin)(void *be);
    /* failed != 0 undoes the item's writes: alone, or by rolling back the
     * whole transaction (batch_alive then returns 0, and every item in it
     * fails). */
    int (*item_end)(void *be, int failed);

    int (*user_create)(void *be, const char *user, const char *nickname, const char *pwhash,
                       uint64_t ts);
    int (*user_get)(void *be, const char *user, store_user_t *out);
    int (*token_put)(void *be, const char *user, const char *token_hash, uint64_t expires_ms);
    int (*token_check)(void *be, const char *user, const char *token_hash, uint64_t now_ms);

    int (*friend_request_put)(void *be, const char *from, const char *to, const char *note,
                              uint64_t ts);
    int (*friend_request_take)(void *be, const char *from, const char *to);
    int (*friend_add)(void *be, const char *a, const char *b, uint64_t ts);
    int (*friends_check)(void *be, const char *a, const char *b);
    int (*friends_list)(void *be, const char *user, store_names_t *out);

    int (*group_create)(void *be, const char *gid, const char *name, const char *owner,
                        uint64_t ts);
    int (*group_get)(void *be, const char *gid, store_group_t *out);
    int (*group_join)(void *be, const char *gid, const char *user);
    int (*group_leave)(void *be, const char *gid, const char *user);
    int (*group_is_member)(void *be, const char *gid, const char *user);
    int (*group_members)(void *be, const char *gid, store_names_t *out);
    int (*groups_of)(void *be, const char *user, store_groups_t *out);
    int (*groups_all)(void *be, store_groups_t *out);

    int (*room_create)(void *be, const char *room, const char *title, const char *creator,
                       uint64_t ts);
    int (*room_get)(void *be, const char *room, store_room_t *out);
    int (*rooms_list)(void *be, store_rooms_t *out);

    int (*msg_put)(void *be, const store_msg_t *m, const char *conv);
    int (*history)(void *be, const char *conv, const char *before, int limit,
                   store_msgs_t *out);
    int (*msg_get)(void *be, const char *msgid, store_msg_t *out);
    int (*conv_last)(void *be, const char *conv, char out[STORE_MSGID_MAX]);

    int (*pending_add)(void *be, const char *user, const char *msgid, const char *event,
                       const char *data_json, uint64_t ts);
    int (*pending_list)(void *be, const char *user, size_t limit, store_pendings_t *out);
    int (*pending_count)(void *be, const char *user, long *count);
    int (*pending_ack)(void *be, const char *user, const char *const *msgids, size_t n,
                       store_ackeds_t *out);
    int (*pending_drop)(void *be, const char *user, const char *msgid);

    int (*cid_get)(void *be, const char *user, const char *cid, uint64_t since_ms,
                   char msgid[STORE_MSGID_MAX]);
    int (*cid_put)(void *be, const char *user, const char *cid, const char *msgid, uint64_t ts);
    int (*expire)(void *be, uint64_t before_ms);
} store_ops_t;

/* Backend constructors: NULL with err filled on failure. */
void *store__sqlite_open(const char *path, char *err, size_t errlen);
extern const store_ops_t store__sqlite_ops;
#ifdef CHAT_HAVE_MONGO
void *store__mongo_open(const char *uri, char *err, size_t errlen);
extern const store_ops_t store__mongo_ops;
#endif

/* Shared helpers for backends. */
#define STORE_HISTORY_MAX 1000 /* cap on one history page */
/* Grows a list array by one element (amortised doubling); returns the new slot, zeroed. */
void *store__list_push(void **items, size_t *count, size_t *cap, size_t elem);

#endif
