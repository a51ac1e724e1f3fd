/* Fuzz target: a byte stream from a cluster peer through proto_cf_decode,
 * as a reader would consume it, once whole and once in two pieces. Each
 * decoded frame must re-encode to the same bytes; the first 32 bytes of an
 * AUTH payload are checked as a MAC (never valid by chance); a BOX frame is
 * opened with a link's keys (never valid by chance), and every payload
 * sealed with them opens again to itself. The input as a cluster message
 * (proto_cm_parse) prints and parses back to itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_keys(proto_cf_keys_t *follower, proto_cf_keys_t *leader)
{
    static const unsigned char fn[PROTO_CF_NONCE] = {7}, ln[PROTO_CF_NONCE] = {9};
    proto_cf_keys_derive(follower, "fuzz-secret-0123", fn, ln, "n1", "n0", 1, PROTO_CF_CHACHA);
    proto_cf_keys_derive(leader, "fuzz-secret-0123", fn, ln, "n1", "n0", 0, PROTO_CF_CHACHA);
}

static void check_sealed(const proto_cf_frame_t *f)
{
    proto_cf_keys_t fk, lk;
    fuzz_keys(&fk, &lk);
    char *out = malloc(f->len + 1);
    CHECK(out);
    uint8_t type;
    const char *inner;
    size_t len;
    /* what a peer without the keys sends never opens */
    CHECK(proto_cf_open(&lk, f, out, f->len + 1, &type, &inner, &len) != PROTO_CF_OPEN_OK);
    CHECK(lk.rx_seq == 0);
    free(out);
    if (f->len > PROTO_CF_BOX_MAX)
        return;
    /* the payload sealed and opened is itself */
    size_t cap = PROTO_CF_HEADER + PROTO_CF_BOX_OVERHEAD + f->len;
    char *sealed = malloc(cap), *opened = malloc(cap);
    CHECK(sealed && opened);
    size_t n = proto_cf_seal(&fk, PROTO_CF_MSG, f->payload, f->len, sealed, cap);
    CHECK(n == cap);
    proto_cf_frame_t g;
    CHECK(proto_cf_decode(sealed, n, &g) == (long)n);
    CHECK(proto_cf_open(&lk, &g, opened, cap, &type, &inner, &len) == PROTO_CF_OPEN_OK);
    CHECK(type == PROTO_CF_MSG && len == f->len && memcmp(inner, f->payload, len) == 0);
    free(sealed);
    free(opened);
}

static void check_frame(const char *at, long used, const proto_cf_frame_t *f)
{
    CHECK(used >= PROTO_CF_HEADER && (size_t)used == PROTO_CF_HEADER + f->len);
    CHECK(f->payload == at + PROTO_CF_HEADER);
    char *re = malloc((size_t)used);
    CHECK(re);
    CHECK(proto_cf_encode(f->type, f->payload, f->len, re, (size_t)used) == (size_t)used);
    CHECK(memcmp(re, at, (size_t)used) == 0);
    free(re);
    check_sealed(f);
    if (f->type == PROTO_CF_AUTH) {
        static const unsigned char nonce[PROTO_CF_NONCE] = {1, 2, 3};
        CHECK(!proto_cf_mac_ok("secret", nonce, "node", (const unsigned char *)f->payload, f->len));
    }
}

/* Decodes frames from buf; returns bytes consumed, or -1 on a bad frame. */
static long drain(const char *buf, size_t len, int *frames)
{
    size_t off = 0;
    for (;;) {
        proto_cf_frame_t f;
        long used = proto_cf_decode(buf + off, len - off, &f);
        if (used < 0)
            return -1;
        if (used == 0)
            return (long)off;
        CHECK((size_t)used <= len - off);
        check_frame(buf + off, used, &f);
        off += (size_t)used;
        (*frames)++;
    }
}

/* The input as a MSG payload: what parses prints to a message that parses
 * back to the same print (the frame tail included). */
static void check_message(const char *buf, size_t size)
{
    cJSON *m = proto_cm_parse(buf, size);
    if (!m)
        return;
    size_t len1 = 0, len2 = 0;
    char *w1 = proto_cm_print(m, &len1);
    CHECK(w1);
    cJSON *back = proto_cm_parse(w1, len1);
    CHECK(back);
    char *w2 = proto_cm_print(back, &len2);
    CHECK(w2 && len1 == len2 && memcmp(w1, w2, len1) == 0);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(m, "f");
    if (cJSON_IsString(f) && memchr(buf, '\0', size)) /* a tail comes back as it went */
        CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(back, "f")->valuestring, f->valuestring) == 0);
    free(w1);
    free(w2);
    cJSON_Delete(back);
    cJSON_Delete(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    check_message(buf, size);
    int whole = 0;
    long r1 = drain(buf, size, &whole);

    /* The same stream delivered in two reads gives the same frames. */
    size_t cut = size ? data[0] % (size + 1) : 0;
    char *acc = malloc(size ? size : 1);
    CHECK(acc);
    memcpy(acc, buf, cut);
    int split = 0;
    long a = drain(acc, cut, &split);
    long r2 = a;
    if (a >= 0) {
        memmove(acc, acc + a, cut - (size_t)a);
        size_t have = cut - (size_t)a;
        memcpy(acc + have, buf + cut, size - cut);
        long b = drain(acc, have + size - cut, &split);
        r2 = b < 0 ? -1 : a + b;
    }
    free(acc);
    CHECK((r1 < 0) == (r2 < 0));
    CHECK(r1 < 0 || (r1 == r2 && whole == split));
    return 0;
}
