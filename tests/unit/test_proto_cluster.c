/* Unit tests for proto/cluster.c: frame codec under every split of the
 * input, header checks before the payload arrives, and the HMAC proof
 * (RFC 4231 vectors plus a cross-check against OpenSSL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "proto/proto.h"

static const uint8_t known_types[] = {PROTO_CF_HELLO, PROTO_CF_CHALLENGE, PROTO_CF_AUTH,
                                      PROTO_CF_WELCOME, PROTO_CF_PING, PROTO_CF_PONG,
                                      PROTO_CF_MSG, PROTO_CF_BOX};

/* ------------------------------------------------------------ codec */

static void test_encode_decode(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 2, 31, 32, 1000, 65536};
    char *payload = malloc(65536);
    char *out = malloc(PROTO_CF_HEADER + 65536);
    assert_non_null(payload);
    assert_non_null(out);
    for (size_t i = 0; i < 65536; i++)
        payload[i] = (char)(i * 7 + 3);
    for (size_t t = 0; t < sizeof known_types; t++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t n = proto_cf_encode(known_types[t], payload, sizes[s], out,
                                       PROTO_CF_HEADER + sizes[s]);
            assert_int_equal(n, PROTO_CF_HEADER + sizes[s]);
            uint32_t be = (uint32_t)(sizes[s] + 1);
            unsigned char hdr[5] = {(unsigned char)(be >> 24), (unsigned char)(be >> 16),
                                    (unsigned char)(be >> 8), (unsigned char)be, known_types[t]};
            assert_memory_equal(out, hdr, 5);
            proto_cf_frame_t f;
            assert_int_equal(proto_cf_decode(out, n, &f), (long)n);
            assert_int_equal(f.type, known_types[t]);
            assert_int_equal(f.len, sizes[s]);
            assert_ptr_equal(f.payload, out + PROTO_CF_HEADER);
            if (sizes[s])
                assert_memory_equal(f.payload, payload, sizes[s]);
        }
    free(payload);
    free(out);
}

static void test_encode_limits(void **state)
{
    (void)state;
    size_t big = PROTO_CF_MAX - 1; /* the largest payload: N = PROTO_CF_MAX */
    char *payload = calloc(1, PROTO_CF_MAX + 1);
    char *out = malloc(PROTO_CF_HEADER + PROTO_CF_MAX + 1);
    assert_non_null(payload);
    assert_non_null(out);
    size_t n = proto_cf_encode(PROTO_CF_MSG, payload, big, out, PROTO_CF_HEADER + big);
    assert_int_equal(n, PROTO_CF_HEADER + big);
    proto_cf_frame_t f;
    assert_int_equal(proto_cf_decode(out, n, &f), (long)n);
    assert_int_equal(f.len, big);
    /* one byte more is refused */
    assert_int_equal(proto_cf_encode(PROTO_CF_MSG, payload, big + 1, out, PROTO_CF_HEADER + big + 1),
                     0);
    assert_int_equal(proto_cf_encode(PROTO_CF_MSG, payload, SIZE_MAX, out, SIZE_MAX), 0);
    /* too small an output buffer, unknown types, NULL payload */
    assert_int_equal(proto_cf_encode(PROTO_CF_PING, "ab", 2, out, PROTO_CF_HEADER + 1), 0);
    assert_int_equal(proto_cf_encode(PROTO_CF_PING, NULL, 0, out, PROTO_CF_HEADER - 1), 0);
    assert_int_equal(proto_cf_encode(0, "ab", 2, out, 64), 0);
    assert_int_equal(proto_cf_encode(7, "ab", 2, out, 64), 0);
    assert_int_equal(proto_cf_encode(PROTO_CF_MSG, NULL, 2, out, 64), 0);
    assert_int_equal(proto_cf_encode(PROTO_CF_PING, NULL, 0, out, PROTO_CF_HEADER), PROTO_CF_HEADER);
    free(payload);
    free(out);
}

typedef struct hdr_case {
    const char *name;
    unsigned char bytes[5];
    size_t avail;
    long want;
} hdr_case_t;

/* Headers are judged with only the header bytes present. */
static const hdr_case_t hdr_cases[] = {
    {"nothing", {0}, 0, 0},
    {"1 byte", {0, 0, 0, 2, 5}, 1, 0},
    {"3 bytes", {0, 0, 0, 2, 5}, 3, 0},
    {"good len, no type yet", {0, 0, 0, 2, 5}, 4, 0},
    {"good header, no payload", {0, 0, 0, 2, 5}, 5, 0},
    {"N=1 complete", {0, 0, 0, 1, 5}, 5, 5},
    {"N=0", {0, 0, 0, 0, 5}, 4, -1},
    {"N=0 with type", {0, 0, 0, 0, 5}, 5, -1},
    {"N=MAX waits", {0x00, 0x10, 0x00, 0x00, 16}, 5, 0},
    {"N=MAX+1 with 4 bytes", {0x00, 0x10, 0x00, 0x01, 16}, 4, -1},
    {"N=MAX+1 with 5 bytes", {0x00, 0x10, 0x00, 0x01, 16}, 5, -1},
    {"N=4GiB-1", {0xff, 0xff, 0xff, 0xff, 16}, 5, -1},
    {"N=2^31", {0x80, 0x00, 0x00, 0x00, 16}, 4, -1},
    {"type 0", {0, 0, 0, 9, 0}, 5, -1},
    {"type 7", {0, 0, 0, 9, 7}, 5, -1},
    {"type 15", {0, 0, 0, 9, 15}, 5, -1},
    {"type 18", {0, 0, 0, 9, 18}, 5, -1},
    {"type 255", {0, 0, 0, 9, 255}, 5, -1},
};

static void test_header_checks(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof hdr_cases / sizeof hdr_cases[0]; i++) {
        const hdr_case_t *c = &hdr_cases[i];
        /* an exact-size heap copy: ASan flags any read past avail */
        char *buf = malloc(c->avail ? c->avail : 1);
        assert_non_null(buf);
        memcpy(buf, c->bytes, c->avail);
        proto_cf_frame_t f;
        long got = proto_cf_decode(buf, c->avail, &f);
        if (got != c->want)
            fail_msg("header '%s': %ld want %ld", c->name, got, c->want);
        free(buf);
    }
}

/* Three frames back to back, fed to a reader the way a socket would
 * deliver them, split at every position (and one byte at a time). */
static const char hello_json[] = "{\"node\":1}";
static const char msg_json[] = "{\"t\":\"x\",\"d\":\"\xc3\xa9\"}";

static size_t build_stream(char *out, size_t cap)
{
    size_t n = 0;
    n += proto_cf_encode(PROTO_CF_HELLO, hello_json, strlen(hello_json), out + n, cap - n);
    n += proto_cf_encode(PROTO_CF_PING, NULL, 0, out + n, cap - n);
    n += proto_cf_encode(PROTO_CF_MSG, msg_json, strlen(msg_json), out + n, cap - n);
    return n;
}

typedef struct reader {
    char buf[256];
    size_t len;
    int frames;
    uint8_t types[8];
    size_t lens[8];
} reader_t;

static void reader_feed(reader_t *r, const char *p, size_t n)
{
    memcpy(r->buf + r->len, p, n);
    r->len += n;
    for (;;) {
        proto_cf_frame_t f;
        long used = proto_cf_decode(r->buf, r->len, &f);
        assert_true(used >= 0);
        if (used == 0)
            return;
        assert_true(r->frames < 8);
        static const char *want[3] = {hello_json, "", msg_json};
        if (r->frames < 3 && (f.len != strlen(want[r->frames]) ||
                              memcmp(f.payload, want[r->frames], f.len) != 0))
            fail_msg("frame %d payload differs", r->frames);
        r->types[r->frames] = f.type;
        r->lens[r->frames] = f.len;
        r->frames++;
        memmove(r->buf, r->buf + used, r->len - (size_t)used);
        r->len -= (size_t)used;
    }
}

static void check_reader(const reader_t *r)
{
    assert_int_equal(r->frames, 3);
    assert_int_equal(r->len, 0);
    assert_int_equal(r->types[0], PROTO_CF_HELLO);
    assert_int_equal(r->lens[0], strlen(hello_json));
    assert_int_equal(r->types[1], PROTO_CF_PING);
    assert_int_equal(r->lens[1], 0);
    assert_int_equal(r->types[2], PROTO_CF_MSG);
    assert_int_equal(r->lens[2], strlen(msg_json));
}

static void test_split_everywhere(void **state)
{
    (void)state;
    char stream[128];
    size_t n = build_stream(stream, sizeof stream);
    assert_int_equal(n, 3 * PROTO_CF_HEADER + strlen(hello_json) + strlen(msg_json));
    for (size_t a = 0; a <= n; a++)
        for (size_t b = a; b <= n; b++) {
            reader_t r = {0};
            reader_feed(&r, stream, a);
            reader_feed(&r, stream + a, b - a);
            reader_feed(&r, stream + b, n - b);
            check_reader(&r);
        }
    reader_t r = {0};
    for (size_t i = 0; i < n; i++)
        reader_feed(&r, stream + i, 1);
    check_reader(&r);
}

/* Every proper prefix of a frame needs more bytes, and decode never
 * reads beyond what it was given. */
static void test_prefixes_need_more(void **state)
{
    (void)state;
    char frame[64];
    size_t n = proto_cf_encode(PROTO_CF_WELCOME, "{\"leader\":2,\"epoch\":9}", 22, frame,
                               sizeof frame);
    for (size_t k = 0; k < n; k++) {
        char *copy = malloc(k ? k : 1);
        assert_non_null(copy);
        memcpy(copy, frame, k);
        proto_cf_frame_t f;
        if (proto_cf_decode(copy, k, &f) != 0)
            fail_msg("prefix %zu not 'need more'", k);
        free(copy);
    }
}

/* ------------------------------------------------------------ MAC */

static void hex(const char *s, unsigned char *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
        out[i] = (unsigned char)v;
    }
}

/* RFC 4231 cases 6 and 7: a 131-byte key (hashed first), message split
 * as nonce (32 bytes) || node. */
static void test_mac_rfc4231(void **state)
{
    (void)state;
    static const struct {
        const char *data, *mac;
    } v[] = {
        {"Test Using Larger Than Block-Size Key - Hash Key First",
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
        {"This is a test using a larger than block-size key and a larger than block-size data. "
         "The key needs to be hashed before being used by the HMAC algorithm.",
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
    };
    char key[132];
    memset(key, 0xaa, 131);
    key[131] = '\0';
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        unsigned char want[32], mac[32];
        hex(v[i].mac, want, 32);
        proto_cf_mac(key, (const unsigned char *)v[i].data, v[i].data + 32, mac);
        assert_memory_equal(mac, want, 32);
        assert_int_equal(proto_cf_mac_ok(key, (const unsigned char *)v[i].data, v[i].data + 32,
                                         want, 32),
                         1);
    }
}

/* Any key length, any node: identical to OpenSSL's HMAC-SHA256. */
static void test_mac_matches_openssl(void **state)
{
    (void)state;
    static const size_t key_lens[] = {0, 1, 5, 31, 32, 63, 64, 65, 128, 200};
    static const char *nodes[] = {"", "1", "node-7", "a-much-longer-node-name:10.0.0.7:7001"};
    unsigned char nonce[PROTO_CF_NONCE];
    for (size_t i = 0; i < sizeof nonce; i++)
        nonce[i] = (unsigned char)(i * 37 + 11);
    for (size_t k = 0; k < sizeof key_lens / sizeof key_lens[0]; k++)
        for (size_t n = 0; n < sizeof nodes / sizeof nodes[0]; n++) {
            char key[256];
            for (size_t i = 0; i < key_lens[k]; i++)
                key[i] = (char)('!' + (i * 13) % 90);
            key[key_lens[k]] = '\0';
            unsigned char msg[PROTO_CF_NONCE + 64];
            size_t nl = strlen(nodes[n]);
            memcpy(msg, nonce, PROTO_CF_NONCE);
            memcpy(msg + PROTO_CF_NONCE, nodes[n], nl);
            unsigned char want[EVP_MAX_MD_SIZE], mac[PROTO_CF_MAC];
            unsigned int wl = 0;
            assert_non_null(HMAC(EVP_sha256(), key, (int)key_lens[k], msg, PROTO_CF_NONCE + nl,
                                 want, &wl));
            assert_int_equal(wl, PROTO_CF_MAC);
            proto_cf_mac(key, nonce, nodes[n], mac);
            if (memcmp(mac, want, PROTO_CF_MAC) != 0)
                fail_msg("key %zu bytes, node '%s': MAC differs", key_lens[k], nodes[n]);
        }
}

static void test_mac_rejects(void **state)
{
    (void)state;
    const char *secret = "cluster-secret";
    unsigned char nonce[PROTO_CF_NONCE], mac[PROTO_CF_MAC], bad[PROTO_CF_MAC + 1];
    memset(nonce, 0x5c, sizeof nonce);
    proto_cf_mac(secret, nonce, "node-1", mac);
    assert_int_equal(proto_cf_mac_ok(secret, nonce, "node-1", mac, sizeof mac), 1);
    /* any single flipped bit, in any byte */
    for (size_t i = 0; i < PROTO_CF_MAC; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(bad, mac, sizeof mac);
            bad[i] ^= (unsigned char)(1u << bit);
            if (proto_cf_mac_ok(secret, nonce, "node-1", bad, PROTO_CF_MAC))
                fail_msg("flipped byte %zu bit %d accepted", i, bit);
        }
    /* wrong length, even with a correct prefix */
    memcpy(bad, mac, sizeof mac);
    bad[PROTO_CF_MAC] = 0;
    assert_int_equal(proto_cf_mac_ok(secret, nonce, "node-1", bad, PROTO_CF_MAC + 1), 0);
    assert_int_equal(proto_cf_mac_ok(secret, nonce, "node-1", mac, PROTO_CF_MAC - 1), 0);
    assert_int_equal(proto_cf_mac_ok(secret, nonce, "node-1", mac, 0), 0);
    assert_int_equal(proto_cf_mac_ok(secret, nonce, "node-1", NULL, PROTO_CF_MAC), 0);
    /* other secret, node or nonce */
    assert_int_equal(proto_cf_mac_ok("cluster-secreT", nonce, "node-1", mac, sizeof mac), 0);
    assert_int_equal(proto_cf_mac_ok("", nonce, "node-1", mac, sizeof mac), 0);
    assert_int_equal(proto_cf_mac_ok(secret, nonce, "node-2", mac, sizeof mac), 0);
    assert_int_equal(proto_cf_mac_ok(secret, nonce, "node-1x", mac, sizeof mac), 0);
    nonce[31] ^= 1;
    assert_int_equal(proto_cf_mac_ok(secret, nonce, "node-1", mac, sizeof mac), 0);
}

/* ------------------------------------------------------------ sealed frames */

typedef struct pair {
    proto_cf_keys_t follower, leader;
} pair_t;

/* The AEAD the sealed-frame cases run with (each runs once per AEAD). */
static proto_cf_aead_t test_aead = PROTO_CF_CHACHA;

static int with_chacha(void **state)
{
    (void)state;
    test_aead = PROTO_CF_CHACHA;
    return 0;
}

static int with_aes(void **state)
{
    (void)state;
    test_aead = PROTO_CF_AES;
    return 0;
}

static void pair_init(pair_t *p, const char *secret)
{
    unsigned char fn[PROTO_CF_NONCE], ln[PROTO_CF_NONCE];
    for (int i = 0; i < PROTO_CF_NONCE; i++)
        fn[i] = (unsigned char)i, ln[i] = (unsigned char)(200 - i);
    proto_cf_keys_derive(&p->follower, secret, fn, ln, "n1", "n0", 1, test_aead);
    proto_cf_keys_derive(&p->leader, secret, fn, ln, "n1", "n0", 0, test_aead);
    if (test_aead == PROTO_CF_AES && !proto_cf_aes_available())
        skip(); /* no AES-NI here: the ChaCha20-Poly1305 runs cover the path */
    assert_int_equal(p->follower.aead, test_aead);
}

/* Seals (type, text) with from and opens the result with to. */
static proto_cf_open_rc_t pass(proto_cf_keys_t *from, proto_cf_keys_t *to, uint8_t type,
                               const char *text, char *got, size_t *gotlen)
{
    char frame[256], out[256];
    size_t n = proto_cf_seal(from, type, text, strlen(text), frame, sizeof frame);
    assert_int_equal(n, PROTO_CF_HEADER + PROTO_CF_BOX_OVERHEAD + strlen(text));
    proto_cf_frame_t f;
    assert_int_equal(proto_cf_decode(frame, n, &f), (long)n);
    uint8_t t = 0;
    const char *payload = NULL;
    proto_cf_open_rc_t rc = proto_cf_open(to, &f, out, sizeof out, &t, &payload, gotlen);
    if (rc == PROTO_CF_OPEN_OK) {
        assert_int_equal(t, type);
        memcpy(got, payload, *gotlen);
    }
    return rc;
}

static void test_seal_round_trip(void **state)
{
    (void)state;
    pair_t p;
    pair_init(&p, "s3cret");
    char got[256];
    size_t len = 0;
    for (int i = 0; i < 5; i++) { /* both ways, interleaved, each with its own sequence */
        assert_int_equal(pass(&p.follower, &p.leader, PROTO_CF_MSG, "{\"t\":\"dlv\"}", got, &len),
                         PROTO_CF_OPEN_OK);
        assert_memory_equal(got, "{\"t\":\"dlv\"}", len);
        assert_int_equal(pass(&p.leader, &p.follower, PROTO_CF_PONG, "", got, &len), PROTO_CF_OPEN_OK);
        assert_int_equal(len, 0);
    }
    assert_int_equal(p.follower.tx_seq, 5);
    assert_int_equal(p.leader.rx_seq, 5);
    /* the two directions have different keys: a frame does not open on its own side */
    pair_init(&p, "s3cret");
    assert_int_equal(pass(&p.follower, &p.follower, PROTO_CF_MSG, "x", got, &len),
                     PROTO_CF_OPEN_FORGED);
    /* inner types other than PING, PONG, MSG are refused after verifying */
    pair_init(&p, "s3cret");
    assert_int_equal(pass(&p.follower, &p.leader, PROTO_CF_HELLO, "x", got, &len),
                     PROTO_CF_OPEN_INNER);
}

static void test_seal_other_keys(void **state)
{
    (void)state;
    unsigned char fn[PROTO_CF_NONCE] = {1}, ln[PROTO_CF_NONCE] = {2};
    proto_cf_keys_t f, l;
    char got[256];
    size_t len;
    proto_cf_keys_derive(&f, "secret", fn, ln, "n1", "n0", 1, test_aead);
    const struct { const char *secret, *fid, *lid; int fn_flip, ln_flip; } other[] = {
        {"secreT", "n1", "n0", 0, 0}, {"secret", "n2", "n0", 0, 0}, {"secret", "n1", "n3", 0, 0},
        {"secret", "n", "1n0", 0, 0}, {"secret", "n1", "n0", 1, 0}, {"secret", "n1", "n0", 0, 1},
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        unsigned char fn2[PROTO_CF_NONCE], ln2[PROTO_CF_NONCE];
        memcpy(fn2, fn, sizeof fn2), memcpy(ln2, ln, sizeof ln2);
        fn2[5] ^= (unsigned char)other[i].fn_flip, ln2[9] ^= (unsigned char)other[i].ln_flip;
        proto_cf_keys_derive(&l, other[i].secret, fn2, ln2, other[i].fid, other[i].lid, 0,
                             test_aead);
        f.tx_seq = 0;
        if (pass(&f, &l, PROTO_CF_MSG, "hello", got, &len) != PROTO_CF_OPEN_FORGED)
            fail_msg("case %zu opened with another link's key", i);
    }
    proto_cf_keys_clear(&f);
    static const unsigned char zero[sizeof f] = {0};
    assert_memory_equal(&f, zero, sizeof f);
}

/* The same keys under the other AEAD open nothing: the two ends must agree
 * (the handshake does), and AES is not ChaCha20-Poly1305 in disguise. */
static void test_seal_aead_mismatch(void **state)
{
    (void)state;
    unsigned char fn[PROTO_CF_NONCE] = {1}, ln[PROTO_CF_NONCE] = {2};
    proto_cf_keys_t f, l;
    char got[256];
    size_t len;
    if (!proto_cf_aes_available())
        skip();
    proto_cf_keys_derive(&f, "secret", fn, ln, "n1", "n0", 1, PROTO_CF_AES);
    proto_cf_keys_derive(&l, "secret", fn, ln, "n1", "n0", 0, PROTO_CF_CHACHA);
    assert_int_equal(pass(&f, &l, PROTO_CF_MSG, "hello", got, &len), PROTO_CF_OPEN_FORGED);
    proto_cf_keys_derive(&f, "secret", fn, ln, "n1", "n0", 1, PROTO_CF_CHACHA);
    proto_cf_keys_derive(&l, "secret", fn, ln, "n1", "n0", 0, PROTO_CF_AES);
    assert_int_equal(pass(&f, &l, PROTO_CF_MSG, "hello", got, &len), PROTO_CF_OPEN_FORGED);
    proto_cf_keys_derive(&l, "secret", fn, ln, "n1", "n0", 0, PROTO_CF_CHACHA);
    f.tx_seq = 0;
    assert_int_equal(pass(&f, &l, PROTO_CF_MSG, "hello", got, &len), PROTO_CF_OPEN_OK);
}

static void test_seal_replay_reorder_cut(void **state)
{
    (void)state;
    pair_t p;
    pair_init(&p, "s3cret");
    char f1[64], f2[64], out[64];
    size_t n1 = proto_cf_seal(&p.follower, PROTO_CF_MSG, "one", 3, f1, sizeof f1);
    size_t n2 = proto_cf_seal(&p.follower, PROTO_CF_MSG, "two", 3, f2, sizeof f2);
    proto_cf_frame_t a, b;
    assert_true(proto_cf_decode(f1, n1, &a) > 0 && proto_cf_decode(f2, n2, &b) > 0);
    uint8_t t;
    const char *pl;
    size_t len;
    /* reordered: the second first */
    assert_int_equal(proto_cf_open(&p.leader, &b, out, sizeof out, &t, &pl, &len), PROTO_CF_OPEN_GAP);
    assert_int_equal(proto_cf_open(&p.leader, &a, out, sizeof out, &t, &pl, &len), PROTO_CF_OPEN_OK);
    assert_memory_equal(pl, "one", 3);
    /* replayed */
    assert_int_equal(proto_cf_open(&p.leader, &a, out, sizeof out, &t, &pl, &len),
                     PROTO_CF_OPEN_REPLAYED);
    /* cut: the same bytes with a shorter length field decode, but do not open */
    char cut[64];
    memcpy(cut, f2, n2);
    uint32_t n = (uint32_t)(n2 - 4 - 2);
    cut[0] = (char)(n >> 24), cut[1] = (char)(n >> 16), cut[2] = (char)(n >> 8), cut[3] = (char)n;
    proto_cf_frame_t c;
    assert_true(proto_cf_decode(cut, n2 - 2, &c) > 0);
    assert_int_equal(proto_cf_open(&p.leader, &c, out, sizeof out, &t, &pl, &len),
                     PROTO_CF_OPEN_FORGED);
    c.len = PROTO_CF_BOX_OVERHEAD - 1;
    assert_int_equal(proto_cf_open(&p.leader, &c, out, sizeof out, &t, &pl, &len),
                     PROTO_CF_OPEN_SHORT);
    /* an unsealed frame */
    proto_cf_frame_t plain = {PROTO_CF_MSG, "{}", 2};
    assert_int_equal(proto_cf_open(&p.leader, &plain, out, sizeof out, &t, &pl, &len),
                     PROTO_CF_OPEN_NOT_BOX);
    /* the refusals did not move the sequence: the second still opens */
    assert_int_equal(proto_cf_open(&p.leader, &b, out, sizeof out, &t, &pl, &len), PROTO_CF_OPEN_OK);
    assert_memory_equal(pl, "two", 3);
}

static void test_seal_any_flip(void **state)
{
    (void)state;
    pair_t p;
    pair_init(&p, "s3cret");
    char frame[64], bad[64], out[64];
    size_t n = proto_cf_seal(&p.follower, PROTO_CF_MSG, "{\"t\":1}", 7, frame, sizeof frame);
    uint8_t t;
    const char *pl;
    size_t len;
    /* every bit after the length field: nothing altered ever opens */
    for (size_t i = 4; i < n; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(bad, frame, n);
            bad[i] ^= (char)(1u << bit);
            proto_cf_frame_t f;
            if (proto_cf_decode(bad, n, &f) <= 0)
                continue; /* the type byte became unknown: refused earlier */
            if (proto_cf_open(&p.leader, &f, out, sizeof out, &t, &pl, &len) == PROTO_CF_OPEN_OK)
                fail_msg("byte %zu bit %d flipped and still opened", i, bit);
        }
    proto_cf_frame_t f;
    assert_true(proto_cf_decode(frame, n, &f) > 0);
    assert_int_equal(proto_cf_open(&p.leader, &f, out, sizeof out, &t, &pl, &len), PROTO_CF_OPEN_OK);
}

static void test_seal_limits(void **state)
{
    (void)state;
    pair_t p;
    pair_init(&p, "s3cret");
    size_t big = PROTO_CF_BOX_MAX;
    char *payload = calloc(1, big + 1);
    char *frame = malloc(PROTO_CF_HEADER + PROTO_CF_BOX_OVERHEAD + big + 1);
    char *out = malloc(PROTO_CF_MAX);
    assert_true(payload && frame && out);
    size_t n = proto_cf_seal(&p.follower, PROTO_CF_MSG, payload, big, frame,
                             PROTO_CF_HEADER + PROTO_CF_BOX_OVERHEAD + big);
    assert_int_equal(n, PROTO_CF_HEADER + PROTO_CF_MAX - 1);
    proto_cf_frame_t f;
    assert_int_equal(proto_cf_decode(frame, n, &f), (long)n);
    uint8_t t;
    const char *pl;
    size_t len;
    assert_int_equal(proto_cf_open(&p.leader, &f, out, PROTO_CF_MAX, &t, &pl, &len), PROTO_CF_OPEN_OK);
    assert_int_equal(len, big);
    /* one more byte, or too small an output, is refused without a sequence step */
    assert_int_equal(proto_cf_seal(&p.follower, PROTO_CF_MSG, payload, big + 1, frame,
                                   PROTO_CF_HEADER + PROTO_CF_BOX_OVERHEAD + big + 1), 0);
    assert_int_equal(proto_cf_seal(&p.follower, PROTO_CF_MSG, "ab", 2, frame,
                                   PROTO_CF_HEADER + PROTO_CF_BOX_OVERHEAD + 1), 0);
    assert_int_equal(p.follower.tx_seq, 1);
    assert_int_equal(proto_cf_open(&p.leader, &f, out, f.len - 1, &t, &pl, &len), PROTO_CF_OPEN_SHORT);
    free(payload);
    free(frame);
    free(out);
}

/* ------------------------------------------------------------------ cluster messages */

/* m printed and parsed back is m (f included), and its JSON part has no f. */
static void cm_round_trip(const char *json, const char *frame)
{
    cJSON *m = cJSON_Parse(json);
    assert_non_null(m);
    if (frame)
        cJSON_AddStringToObject(m, "f", frame);
    size_t len = 0;
    char *wire = proto_cm_print(m, &len);
    assert_non_null(wire);
    size_t json_len = strlen(wire);
    assert_int_equal(len, frame ? json_len + 1 + strlen(frame) : json_len);
    if (frame)
        assert_memory_equal(wire + json_len + 1, frame, strlen(frame));
    cJSON *json_part = cJSON_Parse(wire);
    assert_non_null(json_part);
    assert_null(cJSON_GetObjectItemCaseSensitive(json_part, "f"));
    cJSON_Delete(json_part);
    cJSON *back = proto_cm_parse(wire, len);
    assert_non_null(back);
    assert_true(cJSON_Compare(m, back, 1));
    cJSON_Delete(back);
    cJSON_Delete(m);
    free(wire);
}

static void test_cm_round_trip(void **state)
{
    (void)state;
    const char *frame = "{\"event\":\"chat\",\"data\":{\"message\":\"q\\\"uote \\\\ \\u0001 \xc3\xa9\"}}";
    cm_round_trip("{\"t\":\"dlv\",\"users\":[\"bob\"],\"node\":\"n2\",\"e\":7}", frame);
    cm_round_trip("{\"t\":\"dlv\"}", "");           /* an empty frame */
    cm_round_trip("{}", frame);                       /* f alone */
    cm_round_trip("{\"t\":\"ret\",\"id\":12,\"code\":0}", NULL); /* no frame: plain JSON */
    /* an f that is not a string stays in the JSON */
    cJSON *m = cJSON_Parse("{\"t\":\"x\",\"f\":5}");
    size_t len = 0;
    char *wire = proto_cm_print(m, &len);
    assert_string_equal(wire, "{\"t\":\"x\",\"f\":5}");
    assert_int_equal(len, strlen(wire));
    free(wire);
    cJSON_Delete(m);
}

static void test_cm_parse_edges(void **state)
{
    (void)state;
    /* a tail replaces an f in the JSON */
    static const char both[] = "{\"t\":\"dlv\",\"f\":\"old\"}\0new";
    cJSON *m = proto_cm_parse(both, sizeof both - 1);
    assert_non_null(m);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m, "f")->valuestring, "new");
    assert_int_equal(cJSON_GetArraySize(m), 2);
    cJSON_Delete(m);
    static const char twice[] = "{\"f\":\"a\",\"t\":\"dlv\",\"f\":\"b\"}\0new";
    m = proto_cm_parse(twice, sizeof twice - 1);
    assert_int_equal(cJSON_GetArraySize(m), 2);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m, "f")->valuestring, "new");
    cJSON_Delete(m);
    /* a NUL inside the tail ends the frame */
    static const char inner[] = "{\"t\":\"dlv\"}\0ab\0cd";
    m = proto_cm_parse(inner, sizeof inner - 1);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m, "f")->valuestring, "ab");
    cJSON_Delete(m);
    /* the JSON part must be an object, whole */
    static const char *bad[] = {"", "[1,2]", "\"s\"", "{\"t\":", "{\"t\":1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(proto_cm_parse(bad[i], strlen(bad[i])));
        char with_tail[32];
        size_t n = strlen(bad[i]);
        memcpy(with_tail, bad[i], n);
        memcpy(with_tail + n, "\0{}", 3);
        assert_null(proto_cm_parse(with_tail, n + 3));
    }
    static const char nul_first[] = "\0{\"t\":\"dlv\"}";
    assert_null(proto_cm_parse(nul_first, sizeof nul_first - 1));
    /* JSON only, no NUL: a message without a frame */
    static const char plain[] = "{\"t\":\"all\",\"f\":\"x\"}";
    m = proto_cm_parse(plain, sizeof plain - 1);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m, "f")->valuestring, "x");
    cJSON_Delete(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_decode),
        cmocka_unit_test(test_encode_limits),
        cmocka_unit_test(test_header_checks),
        cmocka_unit_test(test_split_everywhere),
        cmocka_unit_test(test_prefixes_need_more),
        cmocka_unit_test(test_mac_rfc4231),
        cmocka_unit_test(test_mac_matches_openssl),
        cmocka_unit_test(test_mac_rejects),
        cmocka_unit_test_setup(test_seal_round_trip, with_chacha),
        cmocka_unit_test_setup(test_seal_other_keys, with_chacha),
        cmocka_unit_test_setup(test_seal_replay_reorder_cut, with_chacha),
        cmocka_unit_test_setup(test_seal_any_flip, with_chacha),
        cmocka_unit_test_setup(test_seal_limits, with_chacha),
        cmocka_unit_test_setup(test_seal_round_trip, with_aes),
        cmocka_unit_test_setup(test_seal_other_keys, with_aes),
        cmocka_unit_test_setup(test_seal_replay_reorder_cut, with_aes),
        cmocka_unit_test_setup(test_seal_any_flip, with_aes),
        cmocka_unit_test_setup(test_seal_limits, with_aes),
        cmocka_unit_test(test_seal_aead_mismatch),
        cmocka_unit_test(test_cm_round_trip),
        cmocka_unit_test(test_cm_parse_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
