/* POST /push: the admin push API. A valid request becomes one JSON entry
 * LPUSHed on chat:push (docs/CLUSTER.md), which the leader node pops and
 * delivers (node/push.c reads the same fields). 202 is sent only once
 * Redis has confirmed the LPUSH, so an accepted push is really queued. */
#include <string.h>
#include <strings.h>
#include <hiredis/hiredis.h>

#include "gateway/gateway_int.h"

typedef enum push_target { PUSH_TO, PUSH_ROOM, PUSH_ALL } push_target_t;

typedef struct push_msg {
    cJSON *root;          /* owned: the parsed body */
    const char *message;  /* borrowed from root */
    push_target_t target;
    const char *name;     /* user or room; NULL for all */
} push_msg_t;

/* KEYS: the queue, the user's list; ARGV: the entry. Atomic, kept one day. */
static const char *const PUSH_TO_USER_LUA =
    "redis.call('rpush', KEYS[2], ARGV[1]) redis.call('expire', KEYS[2], 86400) "
    "return redis.call('lpush', KEYS[1], ARGV[1])";

/* A push waiting for Redis to confirm its LPUSH. */
typedef struct push_op {
    gateway_t *g;
    core_http_req_t *req;
    char msgid[PROTO_MSGID_LEN + 1];
} push_op_t;

void gateway__token_hash(const char *token, size_t len, unsigned char out[crypto_generichash_BYTES])
{
    crypto_generichash(out, crypto_generichash_BYTES, (const unsigned char *)token, len, NULL, 0);
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Compares hashes so the time taken says nothing about the token, its
 * length included. */
static int push_authorized(const gateway_t *g, const core_http_req_t *req)
{
    const char *h = core_http_req_header(req, "Authorization");
    unsigned char got[crypto_generichash_BYTES];
    if (!g->push_enabled || !h)
        return 0;
    while (is_blank(*h))
        h++;
    if (strncasecmp(h, "Bearer", 6) != 0 || !is_blank(h[6]))
        return 0;
    h += 7;
    while (is_blank(*h))
        h++;
    size_t len = strlen(h);
    while (len > 0 && is_blank(h[len - 1]))
        len--;
    if (len == 0 || len > GATEWAY_TOKEN_MAX)
        return 0;
    gateway__token_hash(h, len, got);
    return sodium_memcmp(got, g->token_hash, sizeof got) == 0;
}

/* Length of the UTF-8 sequence at s, 0 when invalid. */
static size_t utf8_len(const char *s, size_t avail)
{
    size_t n = 1;
    unsigned char c = (unsigned char)s[0];
    if (c >= 0xF0)
        n = 4;
    else if (c >= 0xE0)
        n = 3;
    else if (c >= 0xC0)
        n = 2;
    return n <= avail && core_utf8_valid(s, n) ? n : 0;
}

/* cJSON strings end at the first NUL, so a raw NUL or \u0000 would cut the
 * message short without notice: such bodies are refused, as are bytes
 * that are not UTF-8 (cJSON does not check). */
static int body_bytes_ok(const char *s, size_t len, proto_err_t *e)
{
    size_t i = 0;
    while (i < len) {
        if (s[i] == '\0')
            return proto_fail(e, PROTO_BAD_REQUEST, "body contains a NUL byte");
        if (s[i] == '\\' && i + 1 < len) {
            if (s[i + 1] == 'u' && len - i >= 6 && memcmp(s + i + 2, "0000", 4) == 0)
                return proto_fail(e, PROTO_BAD_REQUEST, "\\u0000 is not allowed in strings");
            /* skip an escaped ASCII char, so "\\u0000" (escaped backslash) stays text */
            i += (unsigned char)s[i + 1] < 0x80 ? 2 : 1;
            continue;
        }
        size_t n = utf8_len(s + i, len - i);
        if (n == 0)
            return proto_fail(e, PROTO_BAD_REQUEST, "body is not valid UTF-8");
        i += n;
    }
    return 0;
}

/* Whether [p, end) is JSON whitespace only (nothing trails the object). */
static int only_blanks(const char *p, const char *end)
{
    for (; p && p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return 0;
    return p != NULL;
}

static int present(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    return it && !cJSON_IsNull(it);
}

/* Exactly one of to / room / all:true. */
static int push_read_target(push_msg_t *m, proto_err_t *e)
{
    int all = 0;
    int n = present(m->root, "to") + present(m->root, "room") + present(m->root, "all");
    if (n != 1)
        return proto_fail(e, PROTO_BAD_REQUEST,
                          "exactly one target is required: 'to', 'room' or 'all': true");
    if (present(m->root, "to")) {
        m->target = PUSH_TO;
        return proto_get_name(m->root, "to", 1, &m->name, e);
    }
    if (present(m->root, "room")) {
        m->target = PUSH_ROOM;
        return proto_get_name(m->root, "room", 1, &m->name, e);
    }
    m->target = PUSH_ALL;
    int rc = proto_get_bool(m->root, "all", 1, &all, e);
    if (rc == 0 && !all)
        return proto_fail(e, PROTO_BAD_REQUEST, "field 'all' must be true when given");
    return rc;
}

/* Parses and validates a body; 0, or non-zero with e filled. m->root must
 * be freed either way. */
static int push_parse(const char *body, size_t len, push_msg_t *m, proto_err_t *e)
{
    int rc;
    memset(m, 0, sizeof *m);
    if (len == 0)
        return proto_fail(e, PROTO_BAD_REQUEST, "empty body: expected a JSON object");
    if ((rc = body_bytes_ok(body, len, e)) != 0)
        return rc;
    const char *end = NULL;
    m->root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!cJSON_IsObject(m->root) || !only_blanks(end, body + len))
        return proto_fail(e, PROTO_BAD_REQUEST, "body must be one JSON object");
    if ((rc = proto_get_text(m->root, "message", &m->message, e)) != 0)
        return rc;
    return push_read_target(m, e);
}

/* The chat:push entry: {"msgid","message","ts","to"|"room"|"all":true}. */
static char *push_entry(const push_msg_t *m, const char *msgid, uint64_t ts)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "msgid", msgid);
    cJSON_AddStringToObject(o, "message", m->message);
    cJSON_AddNumberToObject(o, "ts", (double)ts);
    if (m->target == PUSH_TO)
        cJSON_AddStringToObject(o, "to", m->name);
    else if (m->target == PUSH_ROOM)
        cJSON_AddStringToObject(o, "room", m->name);
    else
        cJSON_AddTrueToObject(o, "all");
    return gateway__json_take(o);
}

static void push_reject(gateway_t *g, core_http_req_t *req, int status, const char *text)
{
    g->metrics.push_rejected++;
    gateway__respond_error(g, req, GW_ROUTE_PUSH, status, text);
}

static void on_pushed(core_redis_t *r, struct redisReply *reply, void *ud)
{
    (void)r;
    push_op_t *op = ud;
    gateway_t *g = op->g;
    if (!reply || reply->type != REDIS_REPLY_INTEGER) {
        g->metrics.redis_errors++;
        CORE_WARN("push %s: LPUSH chat:push failed: %s", op->msgid,
                  reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "no answer");
        push_reject(g, op->req, 503, "push queue unavailable, try again");
    } else {
        char body[64];
        int n = snprintf(body, sizeof body, "{\"msgid\":\"%s\"}", op->msgid);
        g->metrics.push_accepted++;
        CORE_INFO("push %s queued", op->msgid);
        gateway__respond(g, op->req, GW_ROUTE_PUSH, 202, "application/json", body, (size_t)n);
    }
    free(op);
}

/* Queues a validated push; the answer follows from on_pushed. */
static void push_enqueue(gateway_t *g, core_http_req_t *req, const push_msg_t *m)
{
    push_op_t *op = core_xcalloc(1, sizeof *op);
    uint64_t now = core_now_ms();
    op->g = g;
    op->req = req;
    proto_msgid_next(&g->msgids, now, op->msgid);
    char *entry = push_entry(m, op->msgid, now);
    int rc;
    if (m->target == PUSH_TO)
        /* also parked on the user's own list, which a login reads: a push
         * accepted here is there for the next login even before a node has
         * stored it (docs/CLUSTER.md) */
        rc = core_redis_cmd(g->redis, on_pushed, op, "EVAL %s 2 chat:push chat:upush:%s %b",
                            PUSH_TO_USER_LUA, m->name, entry, strlen(entry));
    else
        rc = core_redis_cmd(g->redis, on_pushed, op, "LPUSH chat:push %b", entry, strlen(entry));
    free(entry);
    if (rc != 0) {
        g->metrics.redis_errors++;
        push_reject(g, req, 503, "push queue unavailable, try again");
        free(op);
    }
}

void gateway__push(gateway_t *g, core_http_req_t *req)
{
    push_msg_t m;
    proto_err_t e;
    size_t len = 0;
    if (!push_authorized(g, req)) {
        push_reject(g, req, 401, g->push_enabled ? "missing or wrong bearer token"
                                                 : "push is disabled on this gateway");
        return;
    }
    const char *body = core_http_req_body(req, &len);
    /* Every validation failure is a bad body here (400), a too-long text included. */
    if (push_parse(body, len, &m, &e) != 0)
        push_reject(g, req, 400, e.msg);
    else
        push_enqueue(g, req, &m);
    cJSON_Delete(m.root);
}
