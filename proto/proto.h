/* proto: the byte formats of the product, and nothing that touches a socket.
 *
 * - the client JSON envelope (PROTOCOL.md section 1): parse requests,
 *   encode responses, errors and events;
 * - field validation with the contract's names and limits;
 * - event builders for every server-to-client event;
 * - msgid generation (a hybrid logical clock, so ids sort in send order
 *   within a conversation even across nodes);
 * - the cluster link framing (docs/CLUSTER.md) and its HMAC proof.
 *
 * Ownership: every function returning char * or cJSON * hands it to the
 * caller (free() / cJSON_Delete()); inputs are borrowed.
 */
#ifndef CHAT_PROTO_H
#define CHAT_PROTO_H

#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include <sodium.h>

/* ------------------------------------------------------------------ codes */

enum {
    PROTO_OK = 0,
    PROTO_BAD_REQUEST = 400,
    PROTO_UNAUTHORIZED = 401,
    PROTO_FORBIDDEN = 403,
    PROTO_NOT_FOUND = 404,
    PROTO_CONFLICT = 409,
    PROTO_TOO_LONG = 413,
    PROTO_RATE_LIMITED = 429,
    PROTO_INTERNAL = 500,
    PROTO_UNAVAILABLE = 503,
};

/* ------------------------------------------------------------------ limits */

#define PROTO_NAME_MAX 32        /* user and room names: [A-Za-z0-9_.-]{1,32} */
#define PROTO_PASSWORD_MIN 6
#define PROTO_PASSWORD_MAX 128
#define PROTO_NICK_MAX 64
#define PROTO_GROUP_NAME_MAX 64
#define PROTO_GROUP_ID_MAX 32
#define PROTO_TITLE_MAX 128      /* project choice: room titles 0..128 bytes */
#define PROTO_NOTE_MAX 256       /* project choice: friend request notes 0..256 bytes */
#define PROTO_TEXT_MAX 4096
#define PROTO_FORMAT_MAX 16      /* project choice: [a-z0-9_-]{1,16} */
#define PROTO_CID_MAX 64         /* project choice: cid 1..64 bytes */
#define PROTO_MSGID_LEN 23       /* see proto_msgid_next */
#define PROTO_TOKEN_LEN 64       /* hex of 32 random bytes */
#define PROTO_MAX_DEPTH 16       /* JSON nesting accepted in a request */

/* ------------------------------------------------------------------ errors */

/* A validation failure: the code to answer with and a human text. */
typedef struct proto_err {
    int code;
    char msg[160];
} proto_err_t;

/* Sets e and returns code (so callers can "return proto_fail(...)"). */
int proto_fail(proto_err_t *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------ envelope */

typedef struct proto_req {
    cJSON *root;        /* owned: the parsed frame */
    const cJSON *id;    /* borrowed from root; NULL when absent or not int/string */
    const char *action; /* borrowed; NULL when the frame had no string action */
    const cJSON *data;  /* borrowed; an empty object when "data" was absent */
} proto_req_t;

/* Parses one client frame (need not be NUL-terminated). Returns 0, or 400
 * with e filled and req->id set when an id was readable (the caller answers
 * {"action":"error","code":400,...} echoing it). Rejects non-objects, a
 * missing/non-string action, data that is present but not an object, ids
 * that are neither integer nor string, and nesting deeper than
 * PROTO_MAX_DEPTH. Always call proto_req_free afterwards. */
int proto_req_parse(const char *buf, size_t len, proto_req_t *req, proto_err_t *e);
void proto_req_free(proto_req_t *req);

/* Responses. id may be NULL (then no id is written); data is consumed (NULL
 * means {}). The result is a malloc'd NUL-terminated string; *len its length. */
char *proto_ok(const cJSON *id, const char *action, cJSON *data, size_t *len);
char *proto_error(const cJSON *id, const char *action, int code, const char *text, size_t *len);
/* The same with a data object (consumed), e.g. {"retry_ms"} on a 429. */
char *proto_error_data(const cJSON *id, const char *action, int code, const char *text, cJSON *data,
                       size_t *len);
/* {"event":name,"data":data}; data consumed. */
char *proto_event(const char *name, cJSON *data, size_t *len);
/* The same around data that is JSON text already (an object this process
 * printed, e.g. a stored pending item): no parse and reprint. */
char *proto_event_text(const char *name, const char *data_json, size_t *len);

/* The compact text of item, exactly what cJSON_PrintUnformatted writes but
 * without its sprintf/sscanf per number; malloc'd, *len (may be NULL) its
 * length. NULL for an item cJSON cannot print (a raw without text); out of
 * memory aborts, as the builders above do. */
char *proto_json_print(const cJSON *item, size_t *len);

/* ------------------------------------------------------------------ fields */

/* Each getter reads data[key]. required=0 lets the field be absent (then
 * *out is left as the caller initialised it and 0 is returned). On a
 * missing required field, a wrong type or a value out of range it returns
 * the contract code (400, or 413 for too-long message text) and fills e. */
int proto_get_string(const cJSON *data, const char *key, int required, size_t min, size_t max,
                     const char **out, proto_err_t *e);
int proto_get_name(const cJSON *data, const char *key, int required, const char **out,
                   proto_err_t *e);     /* [A-Za-z0-9_.-]{1,32} */
int proto_get_password(const cJSON *data, const char *key, const char **out, proto_err_t *e);
int proto_get_text(const cJSON *data, const char *key, const char **out, proto_err_t *e);
int proto_get_format(const cJSON *data, const char **out, proto_err_t *e); /* default "text" */
int proto_get_int(const cJSON *data, const char *key, int required, long min, long max,
                  long *out, proto_err_t *e);
int proto_get_bool(const cJSON *data, const char *key, int required, int *out, proto_err_t *e);
/* A non-empty array of msgid strings, at most max entries. */
int proto_get_msgids(const cJSON *data, const char *key, size_t max, const cJSON **arr,
                     proto_err_t *e);

int proto_valid_name(const char *s, size_t len);

/* ------------------------------------------------------------------ events */

/* Builders return the event's data object (pass it to proto_event). */
cJSON *proto_ev_chat(const char *msgid, const char *from, const char *to, uint64_t ts,
                     const char *message, const char *format);
cJSON *proto_ev_group_chat(const char *msgid, const char *group, const char *from, uint64_t ts,
                           const char *message, const char *format);
cJSON *proto_ev_room_chat(const char *msgid, const char *room, const char *from, uint64_t ts,
                          const char *message, const char *format);
cJSON *proto_ev_receipt(const char *msgid, const char *by);
cJSON *proto_ev_friend_request(const char *from, const char *note, uint64_t ts);
cJSON *proto_ev_friend_reply(const char *from, int accept);
cJSON *proto_ev_presence(const char *user, int online);
cJSON *proto_ev_system(const char *msgid, const char *message, uint64_t ts);
cJSON *proto_ev_kicked(const char *reason);

/* ------------------------------------------------------------------ msgid */

/* A msgid is 23 ASCII bytes: 13 decimal digits of ms, 5 decimal digits of
 * a per-ms counter, '-', 4 hex digits of the node number. Lexicographic
 * order = (ms, counter, node). The generator is a hybrid logical clock:
 * proto_msgid_observe() of every id a node receives keeps its next ids
 * above it, so a reply sorts after the message it answers. */
typedef struct proto_msgid_gen {
    pthread_mutex_t lock;       /* the loop and the store thread both take ids */
    uint64_t last_ms;
    uint32_t counter;
    uint16_t node;
} proto_msgid_gen_t;

void proto_msgid_init(proto_msgid_gen_t *g, uint16_t node);
/* Writes PROTO_MSGID_LEN chars + NUL into out. now_ms is the wall clock. */
void proto_msgid_next(proto_msgid_gen_t *g, uint64_t now_ms, char out[PROTO_MSGID_LEN + 1]);
/* The next id, and above floor (a msgid, or NULL/""): a conversation's new
 * message takes an id above the conversation's last one, wherever that one
 * was made. Thread-safe, like every call on g. */
void proto_msgid_next_after(proto_msgid_gen_t *g, uint64_t now_ms, const char *floor,
                            char out[PROTO_MSGID_LEN + 1]);
void proto_msgid_observe(proto_msgid_gen_t *g, const char *msgid);
int proto_msgid_valid(const char *s, size_t len);

/* ------------------------------------------------------------------ cluster frames */

/* Frame: 4-byte big-endian length N (of what follows), 1 type byte, N-1
 * payload bytes. N is 1..PROTO_CF_MAX. */
#define PROTO_CF_MAX (1u << 20)
#define PROTO_CF_HEADER 5
#define PROTO_CF_NONCE 32
#define PROTO_CF_MAC 32

typedef enum proto_cf_type {
    PROTO_CF_HELLO = 1,     /* follower -> leader: JSON {node, cluster_addr} */
    PROTO_CF_CHALLENGE = 2, /* leader -> follower: 32-byte nonce */
    PROTO_CF_AUTH = 3,      /* follower -> leader: 32-byte HMAC (proto_cf_mac) */
    PROTO_CF_WELCOME = 4,   /* leader -> follower: JSON {leader, epoch} */
    PROTO_CF_PING = 5,
    PROTO_CF_PONG = 6,
    PROTO_CF_MSG = 16,      /* a routed cluster message (proto_cm_*, docs/CLUSTER.md) */
    PROTO_CF_BOX = 17,      /* after the handshake, every frame: a sealed PING, PONG or MSG */
} proto_cf_type_t;

typedef struct proto_cf_frame {
    uint8_t type;
    const char *payload; /* borrowed from the input buffer */
    size_t len;
} proto_cf_frame_t;

/* Decodes one frame from buf. Returns bytes consumed (> 0), 0 when more
 * bytes are needed, or -1 for a bad frame (length 0 or over PROTO_CF_MAX,
 * unknown type): the link must be closed. */
long proto_cf_decode(const char *buf, size_t len, proto_cf_frame_t *f);
/* Writes header + payload into out (at least PROTO_CF_HEADER + len bytes).
 * Returns the total, or 0 when len is too large. */
size_t proto_cf_encode(uint8_t type, const void *payload, size_t len, char *out, size_t outlen);
/* A cluster message, the payload of a MSG frame: a JSON object and, when it
 * carries a client frame (its "f" string), a NUL and that frame's bytes as
 * they are, so a frame is neither escaped on the way out nor unescaped on
 * the way in. proto_cm_print writes m so (malloc'd; *len its length, the
 * tail included; with a string "f", no other "f" key is written);
 * proto_cm_parse reads it back into an object with "f" (a tail replaces
 * every "f" in the JSON), or NULL when the JSON part is not an object. */
char *proto_cm_print(const cJSON *m, size_t *len);
cJSON *proto_cm_parse(const char *payload, size_t len);

/* HMAC-SHA256(secret, nonce || node) into mac. */
void proto_cf_mac(const char *secret, const unsigned char nonce[PROTO_CF_NONCE], const char *node,
                  unsigned char mac[PROTO_CF_MAC]);
/* Constant-time check of a received MAC. 1 = valid. */
int proto_cf_mac_ok(const char *secret, const unsigned char nonce[PROTO_CF_NONCE],
                    const char *node, const unsigned char *mac, size_t maclen);

/* Sealed frames (after WELCOME every frame is a BOX): payload = 8-byte
 * big-endian sequence number || the AEAD of (inner type || inner payload)
 * with the frame header and the sequence number as additional data. The
 * AEAD is AES-256-GCM when both ends run it in hardware (the handshake
 * agrees on it), else ChaCha20-Poly1305; both take a 12-byte nonce and
 * leave a 16-byte tag. Each direction has its own key, derived from the
 * secret and both handshake nonces, and its own sequence from 0: a
 * replayed, reordered, dropped, cut or altered frame fails to open. */
#define PROTO_CF_KEY 32
#define PROTO_CF_SEQ 8
#define PROTO_CF_TAG 16
#define PROTO_CF_BOX_OVERHEAD (PROTO_CF_SEQ + 1 + PROTO_CF_TAG)
/* the largest inner payload a BOX can carry */
#define PROTO_CF_BOX_MAX (PROTO_CF_MAX - 1 - PROTO_CF_BOX_OVERHEAD)

typedef enum proto_cf_aead {
    PROTO_CF_CHACHA = 0, /* ChaCha20-Poly1305 (IETF): every CPU */
    PROTO_CF_AES = 1,    /* AES-256-GCM: where libsodium has AES-NI and PCLMUL */
    PROTO_CF_AEADS       /* how many */
} proto_cf_aead_t;

typedef struct proto_cf_keys {
    unsigned char tx[PROTO_CF_KEY], rx[PROTO_CF_KEY];
    uint64_t tx_seq, rx_seq; /* the next to send, the next expected */
    proto_cf_aead_t aead;
    crypto_aead_aes256gcm_state tx_aes, rx_aes; /* the expanded keys (PROTO_CF_AES) */
} proto_cf_keys_t;

/* 1 when this CPU can seal with AES-256-GCM (libsodium's needs AES-NI). */
int proto_cf_aes_available(void);
/* "aes256gcm" / "chacha20poly1305": the handshake's and the metrics' name. */
const char *proto_cf_aead_name(proto_cf_aead_t aead);

typedef enum proto_cf_open_rc {
    PROTO_CF_OPEN_OK = 0,
    PROTO_CF_OPEN_NOT_BOX,   /* a plain frame after the handshake */
    PROTO_CF_OPEN_SHORT,     /* shorter than a sequence number and a tag: cut */
    PROTO_CF_OPEN_REPLAYED,  /* a sequence number already seen */
    PROTO_CF_OPEN_GAP,       /* a sequence number ahead: a frame was dropped or reordered */
    PROTO_CF_OPEN_FORGED,    /* the tag does not verify: altered, cut, or another key */
    PROTO_CF_OPEN_INNER,     /* verified, but the inner type is not PING, PONG or MSG */
} proto_cf_open_rc_t;

/* Both sides' keys for one link; follower says which side this is. The
 * AEAD falls back to ChaCha20-Poly1305 where AES is not available. */
void proto_cf_keys_derive(proto_cf_keys_t *k, const char *secret,
                          const unsigned char follower_nonce[PROTO_CF_NONCE],
                          const unsigned char leader_nonce[PROTO_CF_NONCE], const char *follower_id,
                          const char *leader_id, int follower, proto_cf_aead_t aead);
/* Wipes k. */
void proto_cf_keys_clear(proto_cf_keys_t *k);
/* Writes one BOX frame carrying (type, payload) into out (at least
 * PROTO_CF_HEADER + PROTO_CF_BOX_OVERHEAD + len bytes) and advances the
 * send sequence. Returns the frame's size, 0 when len is over
 * PROTO_CF_BOX_MAX or out is too small. */
size_t proto_cf_seal(proto_cf_keys_t *k, uint8_t type, const void *payload, size_t len, char *out,
                     size_t outlen);
/* Opens a decoded frame f into out (at least f->len bytes): the inner type,
 * and the inner payload (inside out) and its length. Advances the receive
 * sequence only on success. */
proto_cf_open_rc_t proto_cf_open(proto_cf_keys_t *k, const proto_cf_frame_t *f, char *out,
                                 size_t outlen, uint8_t *type, const char **payload, size_t *len);
/* Why a frame did not open, for the log. */
const char *proto_cf_open_reason(proto_cf_open_rc_t rc);

#endif
