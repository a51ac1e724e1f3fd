/* proto/cluster.c: cluster link framing and the HMAC proof of the secret.
 *
 * The header is validated as soon as its bytes arrive, so a peer cannot
 * make us wait for (and buffer) a payload we would refuse anyway. */
#include "proto/proto.h"

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
