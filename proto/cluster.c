/* proto/cluster.c: cluster link framing, the HMAC proof of the secret and
 * the sealed frames that follow the handshake.
 *
 * The header is validated as soon as its bytes arrive, so a peer cannot
 * make us wait for (and buffer) a payload we would refuse anyway. */
#include "proto/proto.h"
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define CF_LEN_BYTES 4

static int known_type(uint8_t t)
{
    switch (t) {
    case PROTO_CF_HELLO:
    case PROTO_CF_CHALLENGE:
    case PROTO_CF_AUTH:
    case PROTO_CF_WELCOME:
    case PROTO_CF_PING:
    case PROTO_CF_PONG:
    case PROTO_CF_MSG:
    case PROTO_CF_BOX:
        return 1;
    default:
        return 0;
    }
}

static uint32_t be32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | (uint32_t)u[3];
}

long proto_cf_decode(const char *buf, size_t len, proto_cf_frame_t *f)
{
    if (len < CF_LEN_BYTES)
        return 0;
    uint32_t n = be32(buf);
    if (n == 0 || n > PROTO_CF_MAX)
        return -1;
    if (len < PROTO_CF_HEADER)
        return 0;
    uint8_t type = (uint8_t)buf[CF_LEN_BYTES];
    if (!known_type(type))
        return -1;
    if (len - CF_LEN_BYTES < n)
        return 0;
    f->type = type;
    f->payload = buf + PROTO_CF_HEADER;
    f->len = n - 1;
    return (long)(CF_LEN_BYTES + n);
}

size_t proto_cf_encode(uint8_t type, const void *payload, size_t len, char *out, size_t outlen)
{
    if (len > PROTO_CF_MAX - 1 || !known_type(type) || !out || outlen < PROTO_CF_HEADER + len)
        return 0;
    if (len && !payload)
        return 0;
    uint32_t n = (uint32_t)len + 1;
    unsigned char *u = (unsigned char *)out;
    u[0] = (unsigned char)(n >> 24);
    u[1] = (unsigned char)(n >> 16);
    u[2] = (unsigned char)(n >> 8);
    u[3] = (unsigned char)n;
    u[4] = type;
    if (len)
        memcpy(out + PROTO_CF_HEADER, payload, len);
    return PROTO_CF_HEADER + len;
}

static void sodium_ready(void)
{
    if (sodium_init() < 0) {
        fputs("proto: sodium_init failed\n", stderr);
        abort();
    }
}

void proto_cf_mac(const char *secret, const unsigned char nonce[PROTO_CF_NONCE], const char *node,
                  unsigned char mac[PROTO_CF_MAC])
{
    sodium_ready();
    if (!secret)
        secret = "";
    if (!node)
        node = "";
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, nonce, PROTO_CF_NONCE);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)node, strlen(node));
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof st);
}

int proto_cf_mac_ok(const char *secret, const unsigned char nonce[PROTO_CF_NONCE],
                    const char *node, const unsigned char *mac, size_t maclen)
{
    if (!mac || maclen != PROTO_CF_MAC)
        return 0;
    unsigned char want[PROTO_CF_MAC];
    proto_cf_mac(secret, nonce, node, want);
    int ok = sodium_memcmp(want, mac, PROTO_CF_MAC) == 0;
    sodium_memzero(want, sizeof want);
    return ok;
}

/* ------------------------------------------------------------------ sealed frames */

static const char KDF_CONTEXT[crypto_kdf_CONTEXTBYTES] = {'c', 'h', 'a', 't', 'l', 'i', 'n', 'k'};
enum { SUBKEY_TO_LEADER = 1, SUBKEY_TO_FOLLOWER = 2 };

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* One link's master key: a keyed BLAKE2b over both nonces and both ids,
 * the key itself a hash of the secret (any length fits). */
static void link_master(unsigned char master[crypto_kdf_KEYBYTES], const char *secret,
                        const unsigned char fn[PROTO_CF_NONCE], const unsigned char ln[PROTO_CF_NONCE],
                        const char *follower_id, const char *leader_id)
{
    unsigned char skey[crypto_generichash_KEYBYTES];
    crypto_generichash(skey, sizeof skey, (const unsigned char *)secret, strlen(secret),
                       (const unsigned char *)"chat-link-v1", 12);
    crypto_generichash_state st;
    crypto_generichash_init(&st, skey, sizeof skey, crypto_kdf_KEYBYTES);
    crypto_generichash_update(&st, fn, PROTO_CF_NONCE);
    crypto_generichash_update(&st, ln, PROTO_CF_NONCE);
    /* ids with their terminating NULs: "ab"+"c" and "a"+"bc" differ */
    crypto_generichash_update(&st, (const unsigned char *)follower_id, strlen(follower_id) + 1);
    crypto_generichash_update(&st, (const unsigned char *)leader_id, strlen(leader_id) + 1);
    crypto_generichash_final(&st, master, crypto_kdf_KEYBYTES);
    sodium_memzero(skey, sizeof skey);
    sodium_memzero(&st, sizeof st);
}

_Static_assert(crypto_aead_aes256gcm_NPUBBYTES == crypto_aead_chacha20poly1305_IETF_NPUBBYTES,
               "one nonce layout for both AEADs");
_Static_assert(crypto_aead_aes256gcm_ABYTES == PROTO_CF_TAG &&
                   crypto_aead_chacha20poly1305_IETF_ABYTES == PROTO_CF_TAG,
               "one tag size for both AEADs");

int proto_cf_aes_available(void)
{
    sodium_ready();
    return crypto_aead_aes256gcm_is_available();
}

const char *proto_cf_aead_name(proto_cf_aead_t aead)
{
    return aead == PROTO_CF_AES ? "aes256gcm" : "chacha20poly1305";
}

void proto_cf_keys_derive(proto_cf_keys_t *k, const char *secret,
                          const unsigned char follower_nonce[PROTO_CF_NONCE],
                          const unsigned char leader_nonce[PROTO_CF_NONCE], const char *follower_id,
                          const char *leader_id, int follower, proto_cf_aead_t aead)
{
    sodium_ready();
    unsigned char master[crypto_kdf_KEYBYTES];
    link_master(master, secret ? secret : "", follower_nonce, leader_nonce,
                follower_id ? follower_id : "", leader_id ? leader_id : "");
    crypto_kdf_derive_from_key(follower ? k->tx : k->rx, PROTO_CF_KEY, SUBKEY_TO_LEADER, KDF_CONTEXT,
                               master);
    crypto_kdf_derive_from_key(follower ? k->rx : k->tx, PROTO_CF_KEY, SUBKEY_TO_FOLLOWER,
                               KDF_CONTEXT, master);
    k->tx_seq = k->rx_seq = 0;
    sodium_memzero(master, sizeof master);
    k->aead = aead == PROTO_CF_AES && crypto_aead_aes256gcm_is_available() ? PROTO_CF_AES
                                                                            : PROTO_CF_CHACHA;
    if (k->aead == PROTO_CF_AES) { /* the key schedule once per link, not per frame */
        crypto_aead_aes256gcm_beforenm(&k->tx_aes, k->tx);
        crypto_aead_aes256gcm_beforenm(&k->rx_aes, k->rx);
    }
}

void proto_cf_keys_clear(proto_cf_keys_t *k)
{
    sodium_memzero(k, sizeof *k);
}

/* The AEAD nonce: the sequence number (unique per key, never reused). */
static void seq_nonce(unsigned char nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES], uint64_t seq)
{
    memset(nonce, 0, crypto_aead_chacha20poly1305_IETF_NPUBBYTES);
    put_be64(nonce + crypto_aead_chacha20poly1305_IETF_NPUBBYTES - 8, seq);
}

size_t proto_cf_seal(proto_cf_keys_t *k, uint8_t type, const void *payload, size_t len, char *out,
                     size_t outlen)
{
    size_t total = PROTO_CF_HEADER + PROTO_CF_BOX_OVERHEAD + len;
    if (len > PROTO_CF_BOX_MAX || !out || outlen < total || (len && !payload))
        return 0;
    unsigned char *u = (unsigned char *)out;
    uint32_t n = (uint32_t)(total - CF_LEN_BYTES);
    u[0] = (unsigned char)(n >> 24), u[1] = (unsigned char)(n >> 16);
    u[2] = (unsigned char)(n >> 8), u[3] = (unsigned char)n, u[4] = PROTO_CF_BOX;
    put_be64(u + PROTO_CF_HEADER, k->tx_seq);
    unsigned char *body = u + PROTO_CF_HEADER + PROTO_CF_SEQ;
    body[0] = type;
    if (len)
        memcpy(body + 1, payload, len);
    unsigned char nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES];
    seq_nonce(nonce, k->tx_seq);
    unsigned long long clen = 0;
    if (k->aead == PROTO_CF_AES)
        crypto_aead_aes256gcm_encrypt_afternm(body, &clen, body, 1 + len, u,
                                              PROTO_CF_HEADER + PROTO_CF_SEQ, NULL, nonce,
                                              &k->tx_aes);
    else
        crypto_aead_chacha20poly1305_ietf_encrypt(body, &clen, body, 1 + len, u,
                                                  PROTO_CF_HEADER + PROTO_CF_SEQ, NULL, nonce,
                                                  k->tx);
    k->tx_seq++;
    return total;
}

proto_cf_open_rc_t proto_cf_open(proto_cf_keys_t *k, const proto_cf_frame_t *f, char *out,
                                 size_t outlen, uint8_t *type, const char **payload, size_t *len)
{
    if (f->type != PROTO_CF_BOX)
        return PROTO_CF_OPEN_NOT_BOX;
    if (f->len < PROTO_CF_BOX_OVERHEAD || outlen < f->len)
        return PROTO_CF_OPEN_SHORT;
    const unsigned char *p = (const unsigned char *)f->payload;
    uint64_t seq = get_be64(p);
    if (seq < k->rx_seq)
        return PROTO_CF_OPEN_REPLAYED;
    if (seq > k->rx_seq)
        return PROTO_CF_OPEN_GAP;
    /* the header as sent: what a decoded frame of this length had */
    unsigned char ad[PROTO_CF_HEADER + PROTO_CF_SEQ];
    uint32_t n = (uint32_t)f->len + 1;
    ad[0] = (unsigned char)(n >> 24), ad[1] = (unsigned char)(n >> 16);
    ad[2] = (unsigned char)(n >> 8), ad[3] = (unsigned char)n, ad[4] = PROTO_CF_BOX;
    memcpy(ad + PROTO_CF_HEADER, p, PROTO_CF_SEQ);
    unsigned char nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES];
    seq_nonce(nonce, seq);
    unsigned long long mlen = 0;
    unsigned char *m = (unsigned char *)out;
    const unsigned char *c = p + PROTO_CF_SEQ;
    size_t clen = f->len - PROTO_CF_SEQ;
    int bad = k->aead == PROTO_CF_AES
                  ? crypto_aead_aes256gcm_decrypt_afternm(m, &mlen, NULL, c, clen, ad, sizeof ad,
                                                          nonce, &k->rx_aes)
                  : crypto_aead_chacha20poly1305_ietf_decrypt(m, &mlen, NULL, c, clen, ad,
                                                              sizeof ad, nonce, k->rx);
    if (bad != 0)
        return PROTO_CF_OPEN_FORGED;
    if (m[0] != PROTO_CF_PING && m[0] != PROTO_CF_PONG && m[0] != PROTO_CF_MSG)
        return PROTO_CF_OPEN_INNER;
    k->rx_seq++;
    *type = m[0];
    *payload = out + 1;
    *len = (size_t)mlen - 1;
    return PROTO_CF_OPEN_OK;
}

const char *proto_cf_open_reason(proto_cf_open_rc_t rc)
{
    switch (rc) {
    case PROTO_CF_OPEN_OK:
        return "ok";
    case PROTO_CF_OPEN_NOT_BOX:
        return "an unsealed frame after the handshake";
    case PROTO_CF_OPEN_SHORT:
        return "a truncated sealed frame";
    case PROTO_CF_OPEN_REPLAYED:
        return "a replayed frame (sequence number already seen)";
    case PROTO_CF_OPEN_GAP:
        return "a frame out of sequence (one was dropped or reordered)";
    case PROTO_CF_OPEN_FORGED:
        return "a frame that fails authentication (altered or forged)";
    case PROTO_CF_OPEN_INNER:
        return "a sealed frame of an unknown inner type";
    }
    return "?";
}

/* ------------------------------------------------------------------ cluster messages */

cJSON *proto_cm_parse(const char *payload, size_t len)
{
    const char *nul = memchr(payload, '\0', len);
    size_t json_len = nul ? (size_t)(nul - payload) : len;
    cJSON *m = cJSON_ParseWithLength(payload, json_len);
    if (!cJSON_IsObject(m)) {
        cJSON_Delete(m);
        return NULL;
    }
    if (!nul)
        return m;
    char *f = core_xstrndup(nul + 1, len - json_len - 1); /* a NUL inside ends it */
    while (cJSON_GetObjectItemCaseSensitive(m, "f"))
        cJSON_DeleteItemFromObjectCaseSensitive(m, "f");
    cJSON *item = cJSON_CreateString(f);
    free(f);
    if (!item || !cJSON_AddItemToObject(m, "f", item)) {
        cJSON_Delete(item);
        cJSON_Delete(m);
        return NULL;
    }
    return m;
}
