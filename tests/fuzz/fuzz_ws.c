/* Fuzz target: bytes from a client through the server side of a WebSocket
 * (core/ws.c over wslay) right after a valid handshake, on a socketpair
 * through the real HTTP server instead of TCP.
 *
 * Input: byte 0 picks a second delivery (0 = none, else chunks of that many
 * bytes, each fully read by the server before the next is sent) which must
 * give the application exactly what the stream sent whole gave it; the rest
 * is the client's frame stream (the fuzzer has to mask them itself). Text
 * messages are echoed; "close" makes the server close, the first "big"
 * makes it send a 60000-byte message. Invariants abort() so a replay run fails. */
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char handshake[] = "GET /ws HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\n"
                                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                "Sec-WebSocket-Version: 13\r\n\r\n";

static fuzz_http_t fx;
static int opened, closed, sent_big;
static core_buf_t trace; /* what the application saw: messages, close code */

static void on_request(core_http_req_t *r, void *ud)
{
    (void)ud;
    core_http_respond(r, 404, NULL, NULL, 0);
}

static void on_ws_open(core_ws_t *ws, void *ud)
{
    (void)ud;
    core_ws_set_ud(ws, &opened);
    opened++;
}

static void on_ws_text(core_ws_t *ws, const char *msg, size_t len, void *ud)
{
    static char big[60000];

    (void)ud;
    CHECK(core_ws_ud(ws) == &opened);
    CHECK(len <= CORE_WS_MAX_MESSAGE && core_utf8_valid(msg, len));
    core_buf_printf(&trace, "T%zu:", len);
    core_buf_append(&trace, msg, len);
    if (len == 5 && memcmp(msg, "close", 5) == 0) {
        core_ws_close(ws, CORE_WS_NORMAL, "bye");
        CHECK(core_ws_send_text(ws, "x", 1) < 0);
        return;
    }
    /* Once per session, so the output cap is never reached by a client
     * that reads everything (whole and split runs must agree). */
    if (len == 3 && memcmp(msg, "big", 3) == 0 && !sent_big++) {
        memset(big, 'b', sizeof(big));
        core_ws_send_text(ws, big, sizeof(big));
        return;
    }
    core_ws_send_text(ws, msg, len);
}

static void on_ws_close(core_ws_t *ws, int code, void *ud)
{
    (void)ud;
    CHECK(core_ws_ud(ws) == &opened);
    CHECK(code >= 1000 && code < 5000);
    core_buf_printf(&trace, "C%d", code);
    closed++;
}

static void setup(void)
{
    static const core_http_server_cbs_t cbs = {.on_request = on_request,
                                               .ws_path = "/ws",
                                               .on_ws_open = on_ws_open,
                                               .on_ws_text = on_ws_text,
                                               .on_ws_close = on_ws_close};
    core_http_server_opts_t opts = {.max_out = 256 * 1024};

    fuzz_http_setup(&fx, &opts, &cbs);
}

/* One connection: handshake, then data in chunks; trace records it. */
static void run_session(const uint8_t *data, size_t size, size_t chunk)
{
    core_buf_reset(&trace);
    fuzz_http_open(&fx);
    opened = closed = sent_big = 0;
    fuzz_http_send(&fx, (const uint8_t *)handshake, sizeof(handshake) - 1, sizeof(handshake) - 1);
    CHECK(opened == 1);
    fuzz_http_send(&fx, data, size, chunk);
    fuzz_http_finish(&fx, NULL);
    CHECK(closed == 1);
}

/* However the stream is cut, the application sees the same thing. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fx.srv)
        setup();
    fuzz_whole_and_split(data, size, run_session, &trace);
    return 0;
}
