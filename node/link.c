/* The cluster link's transport (node_int.h; docs/CLUSTER.md).
 *
 * Handshake, all frames in the clear:
 *   follower HELLO {node, nonce F, aead?}  ->  leader CHALLENGE nonce L
 *   follower AUTH HMAC(secret, L || "auth:" follower)
 *   leader WELCOME {leader, epoch, aead?,
 *                   mac = HMAC(secret, F || "welcome:" leader ":" epoch [":" aead])}
 * so each side proves the secret without sending it. A follower whose CPU
 * runs AES-256-GCM offers aead "aes256gcm"; a leader that runs it too
 * takes it and says so in WELCOME, under its proof; otherwise neither
 * names one and the link seals with ChaCha20-Poly1305 (builds before the
 * offer do just that). Then both derive the link's two keys from the
 * secret, F, L and both ids (proto_cf_keys_derive) and every later frame is
 * a BOX: sealed, numbered per direction. A frame that does not open closes
 * the link with the reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "core/core.h"
#include "node/node_int.h"
#include "proto/proto.h"

/* the largest sealed frame on the wire */
#define LINK_MAX_IN (PROTO_CF_MAX + PROTO_CF_HEADER)
/* A link carries the traffic of a whole node's clients: read up to 1 MiB
 * per turn where a client connection reads 64 KiB (fair per client). */
#define LINK_READ_SLICES 16
#define LINK_MAX_OUT (64u << 20)
#define LINK_KEEP_BUF (256u << 10) /* a loop turn's frames to one peer: no regrowth each turn */
#define PING_MS 1000
#define LINK_DEAD_MS 5000
#define HANDSHAKE_MS 3000
#define HANDSHAKE_FRAME_MAX 1024 /* before authentication, frames stay small */
#define SMALL_FRAME 512

typedef enum {
    LINK_OUT_HELLO, /* follower: HELLO sent, waiting for CHALLENGE */
    LINK_OUT_AUTH,  /* follower: AUTH sent, waiting for WELCOME */
    LINK_IN_HELLO,  /* leader: waiting for HELLO */
    LINK_IN_AUTH,   /* leader: CHALLENGE sent, waiting for AUTH */
    LINK_UP,
} link_state_t;

struct node_link {
    core_conn_t *conn; /* NULL once closed */
    link_state_t state;
    int outbound;
    const node_link_auth_t *auth;
    const node_link_cbs_t *cbs;
    void *ud;
    char peer[64];
    char addr[64];
    unsigned char nonce[PROTO_CF_NONCE];      /* the nonce this side sent */
    unsigned char peer_nonce[PROTO_CF_NONCE]; /* the nonce the other side sent */
    proto_cf_aead_t aead;                     /* agreed in the handshake */
    proto_cf_keys_t keys;
    char *rx, *tx; /* opened and sealed frames (a reply may be sealed while a frame is read) */
    size_t rx_cap, tx_cap;
    uint64_t last_rx_ms, last_ping_ms, opened_ms;
};

static void *grow(char **buf, size_t *cap, size_t need)
{
    if (need > *cap) {
        *buf = core_xrealloc(*buf, need);
        *cap = need;
    }
    return *buf;
}

static const char *link_name(const node_link_t *l)
{
    return l->peer[0] ? l->peer : l->addr;
}

/* The link is over for the cluster at once; core frees the connection later. */
static void link_gone(node_link_t *l)
{
    l->conn = NULL;
    proto_cf_keys_clear(&l->keys);
    l->cbs->gone(l, l->ud);
}

void node_link_close(node_link_t *l, const char *why)
{
    if (!l->conn)
        return;
    CORE_INFO("cluster: link %s %s closed: %s", l->outbound ? "to" : "from", link_name(l), why);
    core_conn_t *c = l->conn;
    link_gone(l);
    core_conn_abort(c); /* on_close (deferred) frees l */
}

/* A handshake frame, in the clear. */
static int send_plain(node_link_t *l, uint8_t type, const void *payload, size_t len)
{
    char buf[HANDSHAKE_FRAME_MAX + PROTO_CF_HEADER];
    size_t n = proto_cf_encode(type, payload, len, buf, sizeof buf);
    return n && l->conn ? core_conn_write(l->conn, buf, n) : -1;
}

static int send_sealed(node_link_t *l, uint8_t type, const char *payload, size_t len)
{
    if (!l->conn || l->state != LINK_UP)
        return -1;
    if (len > PROTO_CF_BOX_MAX) {
        CORE_WARN("cluster: a %zu-byte message for %s is over the frame limit; dropped", len,
                  link_name(l));
        return -1;
    }
    size_t total = PROTO_CF_HEADER + PROTO_CF_BOX_OVERHEAD + len;
    char stack[SMALL_FRAME];
    char *buf = total <= sizeof stack ? stack : grow(&l->tx, &l->tx_cap, total);
    size_t n = proto_cf_seal(&l->keys, type, payload, len, buf, total);
    return n ? core_conn_write(l->conn, buf, n) : -1;
}

int node_link_send(node_link_t *l, const char *json, size_t len)
{
    return send_sealed(l, PROTO_CF_MSG, json, len);
}

void node_link_send_frames(node_link_t *l, const char *frames, size_t len)
{
    for (size_t off = 0; off < len;) {
        proto_cf_frame_t f;
        long used = proto_cf_decode(frames + off, len - off, &f);
        if (used <= 0)
            break;
        if (f.type == PROTO_CF_MSG)
            send_sealed(l, PROTO_CF_MSG, f.payload, f.len);
        off += (size_t)used;
    }
}

/* ------------------------------------------------------------------ handshake */

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int hex_decode(const char *hex, unsigned char *out, size_t outlen)
{
    size_t got = 0;
    if (!hex || strlen(hex) != outlen * 2)
        return -1;
    return sodium_hex2bin(out, outlen, hex, strlen(hex), NULL, &got, NULL) == 0 && got == outlen
               ? 0 : -1;
}

/* Sends a JSON handshake frame (m consumed). */
static void send_plain_json(node_link_t *l, uint8_t type, cJSON *m)
{
    size_t len = 0;
    char *json = proto_json_print(m, &len);
    cJSON_Delete(m);
    if (json)
        send_plain(l, type, json, len);
    free(json);
}

static void send_hello(node_link_t *l)
{
    char nonce_hex[PROTO_CF_NONCE * 2 + 1];
    randombytes_buf(l->nonce, sizeof l->nonce);
    sodium_bin2hex(nonce_hex, sizeof nonce_hex, l->nonce, sizeof l->nonce);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "node", l->auth->self);
    cJSON_AddStringToObject(m, "nonce", nonce_hex);
    if (proto_cf_aes_available())
        cJSON_AddStringToObject(m, "aead", proto_cf_aead_name(PROTO_CF_AES));
    send_plain_json(l, PROTO_CF_HELLO, m);
    l->state = LINK_OUT_HELLO;
}

/* The proof a leader gives: HMAC over the follower's nonce and "id:epoch",
 * and ":aes256gcm" when it took that AEAD (so nobody else can pick it). */
static void leader_proof(const char *secret, const unsigned char nonce[PROTO_CF_NONCE],
                         const char *leader, int64_t epoch, proto_cf_aead_t aead,
                         unsigned char mac[PROTO_CF_MAC])
{
    char who[128];
    snprintf(who, sizeof who, "welcome:%s:%lld%s", leader, (long long)epoch,
             aead == PROTO_CF_AES ? ":aes256gcm" : "");
    proto_cf_mac(secret, nonce, who, mac);
}

/* The AEAD a handshake frame names: none is ChaCha20-Poly1305; -1 (and
 * ChaCha20-Poly1305 in out) for a name this side cannot take. */
static int named_aead(const cJSON *m, proto_cf_aead_t *out)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(m, "aead");
    *out = PROTO_CF_CHACHA;
    if (!a)
        return 0;
    if (!cJSON_IsString(a) || strcmp(a->valuestring, proto_cf_aead_name(PROTO_CF_AES)) != 0 ||
        !proto_cf_aes_available())
        return -1;
    *out = PROTO_CF_AES;
    return 0;
}

static void become_up(node_link_t *l, int follower)
{
    const char *fid = follower ? l->auth->self : l->peer;
    const char *lid = follower ? l->peer : l->auth->self;
    proto_cf_keys_derive(&l->keys, l->auth->secret, follower ? l->nonce : l->peer_nonce,
                         follower ? l->peer_nonce : l->nonce, fid, lid, follower, l->aead);
    l->state = LINK_UP;
    l->cbs->up(l, l->ud);
}

/* Follower: the leader's CHALLENGE; answer with the proof of the secret. */
static int out_challenge(node_link_t *l, const proto_cf_frame_t *f)
{
    if (f->type != PROTO_CF_CHALLENGE || f->len != PROTO_CF_NONCE)
        return -1;
    memcpy(l->peer_nonce, f->payload, PROTO_CF_NONCE);
    unsigned char mac[PROTO_CF_MAC];
    char who[96];
    snprintf(who, sizeof who, "auth:%s", l->auth->self);
    proto_cf_mac(l->auth->secret, l->peer_nonce, who, mac);
    send_plain(l, PROTO_CF_AUTH, mac, sizeof mac);
    l->state = LINK_OUT_AUTH;
    return 0;
}

/* Follower: WELCOME must name the leader and epoch ZooKeeper names, and
 * prove the secret over this side's nonce. */
static int out_welcome(node_link_t *l, const proto_cf_frame_t *f)
{
    if (f->type != PROTO_CF_WELCOME)
        return -1;
    cJSON *m = cJSON_ParseWithLength(f->payload, f->len);
    const char *leader = jstr(m, "leader");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(m, "epoch");
    unsigned char mac[PROTO_CF_MAC], want[PROTO_CF_MAC];
    int64_t epoch = *l->auth->epoch;
    int ok = leader && cJSON_IsNumber(e) && hex_decode(jstr(m, "mac"), mac, sizeof mac) == 0 &&
             strcmp(leader, l->auth->leader) == 0 && (int64_t)e->valuedouble == epoch &&
             named_aead(m, &l->aead) == 0;
    if (ok) {
        leader_proof(l->auth->secret, l->nonce, leader, epoch, l->aead, want);
        ok = sodium_memcmp(mac, want, sizeof mac) == 0;
    }
    cJSON_Delete(m);
    if (!ok) {
        CORE_WARN("cluster: leader %s failed its proof or names another epoch", l->auth->leader);
        return -1;
    }
    core_copy_trunc(l->peer, sizeof l->peer, l->auth->leader);
    become_up(l, 1);
    return 0;
}

/* Leader: HELLO from a follower; answer with this side's challenge. */
static int in_hello(node_link_t *l, const proto_cf_frame_t *f)
{
    cJSON *m = f->type == PROTO_CF_HELLO ? cJSON_ParseWithLength(f->payload, f->len) : NULL;
    const char *id = jstr(m, "node");
    int ok = id && id[0] && strlen(id) < sizeof l->peer &&
             hex_decode(jstr(m, "nonce"), l->peer_nonce, sizeof l->peer_nonce) == 0;
    if (ok) {
        core_copy_trunc(l->peer, sizeof l->peer, id);
        named_aead(m, &l->aead); /* an offer this side cannot take leaves ChaCha20-Poly1305 */
    }
    cJSON_Delete(m);
    if (!ok)
        return -1;
    randombytes_buf(l->nonce, sizeof l->nonce);
    send_plain(l, PROTO_CF_CHALLENGE, l->nonce, sizeof l->nonce);
    l->state = LINK_IN_AUTH;
    return 0;
}

/* Leader: AUTH; on success WELCOME goes out (the last frame in the clear). */
static int in_auth(node_link_t *l, const proto_cf_frame_t *f)
{
    char who[96];
    snprintf(who, sizeof who, "auth:%s", l->peer);
    if (f->type != PROTO_CF_AUTH ||
        !proto_cf_mac_ok(l->auth->secret, l->nonce, who, (const unsigned char *)f->payload, f->len)) {
        CORE_WARN("cluster: %s from %s failed the secret check", l->peer, l->addr);
        return -1;
    }
    int64_t epoch = *l->auth->epoch;
    unsigned char mac[PROTO_CF_MAC];
    char mac_hex[PROTO_CF_MAC * 2 + 1];
    leader_proof(l->auth->secret, l->peer_nonce, l->auth->self, epoch, l->aead, mac);
    sodium_bin2hex(mac_hex, sizeof mac_hex, mac, sizeof mac);
    cJSON *w = cJSON_CreateObject();
    cJSON_AddStringToObject(w, "leader", l->auth->self);
    cJSON_AddNumberToObject(w, "epoch", (double)epoch);
    if (l->aead == PROTO_CF_AES)
        cJSON_AddStringToObject(w, "aead", proto_cf_aead_name(l->aead));
    cJSON_AddStringToObject(w, "mac", mac_hex);
    send_plain_json(l, PROTO_CF_WELCOME, w);
    become_up(l, 0);
    return 0;
}

static int handshake_frame(node_link_t *l, const proto_cf_frame_t *f)
{
    switch (l->state) {
    case LINK_OUT_HELLO:
        return out_challenge(l, f);
    case LINK_OUT_AUTH:
        return out_welcome(l, f);
    case LINK_IN_HELLO:
        return in_hello(l, f);
    case LINK_IN_AUTH:
        return in_auth(l, f);
    case LINK_UP:
        break;
    }
    return -1;
}

/* ------------------------------------------------------------------ I/O */

/* One sealed frame: opened, then a ping answered or a message handed on.
 * Returns NULL, or why the link must close. */
static const char *sealed_frame(node_link_t *l, const proto_cf_frame_t *f)
{
    uint8_t type = 0;
    const char *payload = NULL;
    size_t len = 0;
    proto_cf_open_rc_t rc = proto_cf_open(&l->keys, f, grow(&l->rx, &l->rx_cap, f->len + 1),
                                          f->len + 1, &type, &payload, &len);
    if (rc != PROTO_CF_OPEN_OK)
        return proto_cf_open_reason(rc);
    if (type == PROTO_CF_PING)
        return send_sealed(l, PROTO_CF_PONG, "", 0) == 0 ? NULL : "could not answer a ping";
    if (type == PROTO_CF_MSG && l->cbs->msg(l, payload, len, l->ud) != 0)
        return "a message it must not send";
    return NULL;
}

/* A handshake frame longer than any handshake needs: refused from its header. */
static int oversized_handshake(const node_link_t *l, const char *data, size_t len)
{
    if (l->state == LINK_UP || len < 4)
        return 0;
    const unsigned char *u = (const unsigned char *)data;
    uint32_t n = (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
    return n > HANDSHAKE_FRAME_MAX;
}

static long on_read(core_conn_t *c, const char *data, size_t len, void *ud)
{
    (void)c;
    node_link_t *l = ud;
    size_t off = 0;
    l->last_rx_ms = core_mono_ms();
    while (off < len && l->conn) {
        const char *why = NULL;
        proto_cf_frame_t f;
        long used = oversized_handshake(l, data + off, len - off)
                        ? -1 : proto_cf_decode(data + off, len - off, &f);
        if (used == 0)
            break;
        if (used < 0)
            why = l->state == LINK_UP ? "bad frame" : "bad or oversized handshake frame";
        else if (l->state != LINK_UP)
            why = handshake_frame(l, &f) == 0 ? NULL : "handshake refused";
        else
            why = sealed_frame(l, &f);
        if (why) {
            if (l->conn) {
                CORE_WARN("cluster: link %s %s: %s; closing", l->outbound ? "to" : "from",
                          link_name(l), why);
                link_gone(l);
            }
            return -1;
        }
        off += (size_t)used;
    }
    return (long)off;
}

static void on_connect(core_conn_t *c, int err, void *ud)
{
    (void)c;
    node_link_t *l = ud;
    if (err == 0)
        send_hello(l);
}

static void on_close(core_conn_t *c, void *ud)
{
    (void)c;
    node_link_t *l = ud;
    if (l->conn) {
        CORE_INFO("cluster: link %s %s lost", l->outbound ? "to" : "from", link_name(l));
        link_gone(l);
    }
    free(l->rx);
    free(l->tx);
    free(l);
}

static const core_conn_cbs_t link_cbs = {on_read, on_connect, on_close};

static node_link_t *link_new(int outbound, link_state_t state, const node_link_auth_t *auth,
                             const node_link_cbs_t *cbs, void *ud)
{
    node_link_t *l = core_xcalloc(1, sizeof *l);
    l->outbound = outbound;
    l->state = state;
    l->auth = auth;
    l->cbs = cbs;
    l->ud = ud;
    l->opened_ms = l->last_rx_ms = core_mono_ms();
    return l;
}

node_link_t *node_link_connect(struct ev_loop *loop, const char *host, int port,
                               const node_link_auth_t *auth, const node_link_cbs_t *cbs, void *ud)
{
    core_conn_limits_t lim = {LINK_MAX_IN, LINK_MAX_OUT, LINK_READ_SLICES, LINK_KEEP_BUF};
    node_link_t *l = link_new(1, LINK_OUT_HELLO, auth, cbs, ud);
    snprintf(l->addr, sizeof l->addr, "%s:%d", host, port);
    l->conn = core_conn_connect(loop, host, port, &lim, &link_cbs, l);
    if (!l->conn) {
        free(l);
        return NULL;
    }
    return l;
}

node_link_t *node_link_accept(struct ev_loop *loop, int fd, const char *peer,
                              const node_link_auth_t *auth, const node_link_cbs_t *cbs, void *ud)
{
    core_conn_limits_t lim = {LINK_MAX_IN, LINK_MAX_OUT, LINK_READ_SLICES, LINK_KEEP_BUF};
    node_link_t *l = link_new(0, LINK_IN_HELLO, auth, cbs, ud);
    core_copy_trunc(l->addr, sizeof l->addr, peer);
    l->conn = core_conn_adopt(loop, fd, peer, &lim, &link_cbs, l);
    if (!l->conn) {
        close(fd);
        free(l);
        return NULL;
    }
    return l;
}

void node_link_check(node_link_t *l, uint64_t now)
{
    if (!l->conn)
        return;
    int up = l->state == LINK_UP;
    /* bytes waiting unread mean our loop is late (a starved process), not a
     * silent peer: the read that follows in this wake-up refreshes last_rx_ms */
    if (now - (up ? l->last_rx_ms : l->opened_ms) > (up ? LINK_DEAD_MS : HANDSHAKE_MS) &&
        !core_conn_has_input(l->conn)) {
        node_link_close(l, up ? "silent peer" : "handshake timeout");
        return;
    }
    /* ping on a clock, not on idleness: a busy follower still needs pongs */
    if (l->outbound && up && now - l->last_ping_ms >= PING_MS) {
        l->last_ping_ms = now;
        send_sealed(l, PROTO_CF_PING, "", 0);
    }
}

int node_link_is_up(const node_link_t *l)
{
    return l && l->conn && l->state == LINK_UP;
}

proto_cf_aead_t node_link_aead(const node_link_t *l)
{
    return l->keys.aead;
}

const char *node_link_peer(const node_link_t *l)
{
    return l->peer;
}

const char *node_link_addr(const node_link_t *l)
{
    return l->addr;
}
