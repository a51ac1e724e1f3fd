/* Fuzz target: bytes from a client through the real HTTP/1.1 server
 * (core/http.c over http-parser), on a socketpair instead of TCP.
 *
 * Input: byte 0 picks a second delivery (0 = none, else chunks of that many
 * bytes, each fully read by the server before the next is sent) which must
 * serve exactly the requests the stream sent whole did; the rest is what
 * the client sends. Requests for "/later" are answered only after
 * all input was sent, which drives the pipelining backlog and answers to
 * clients that already left. Invariants abort() so a replay run fails. */
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LATER 64

static fuzz_http_t fx;
static core_http_req_t *later[MAX_LATER];
static size_t nlater;
static core_buf_t trace; /* the requests the application saw */

static void check_request(const core_http_req_t *r)
{
    size_t blen = 99;
    const char *body = core_http_req_body(r, &blen);

    CHECK(core_http_req_method(r)[0] != '\0');
    CHECK(core_http_req_path(r) != NULL);
    CHECK(core_http_req_query(r) != NULL);
    CHECK(body != NULL && blen <= 1024);
    (void)core_http_req_header(r, "Host");
    (void)core_http_req_header(r, "");
    (void)core_http_req_peer(r);
}

static void on_request(core_http_req_t *r, void *ud)
{
    size_t blen;
    const char *body = core_http_req_body(r, &blen);

    (void)ud;
    check_request(r);
    core_buf_printf(&trace, "%s %s ?%s %zu:", core_http_req_method(r), core_http_req_path(r),
                    core_http_req_query(r), blen);
    core_buf_append(&trace, body, blen);
    if (strcmp(core_http_req_path(r), "/later") == 0 && nlater < MAX_LATER) {
        later[nlater++] = r;
        return;
    }
    core_http_respond(r, 200, "text/plain", body, blen);
}

static void on_ws_text(core_ws_t *ws, const char *msg, size_t len, void *ud)
{
    (void)ud;
    CHECK(len <= CORE_WS_MAX_MESSAGE && core_utf8_valid(msg, len));
    core_ws_send_text(ws, msg, len);
}

static void setup(void)
{
    static const core_http_server_cbs_t cbs = {
        .on_request = on_request, .ws_path = "/ws", .on_ws_text = on_ws_text};
    core_http_server_opts_t opts = {.max_body = 1024, .max_out = 1 << 20};

    fuzz_http_setup(&fx, &opts, &cbs);
}

static void answer_later(void)
{
    for (size_t i = 0; i < nlater; i++)
        core_http_respond(later[i], 202, NULL, "later", 5);
    nlater = 0;
}

/* One connection fed data in chunks; trace records what was served. */
static void run_session(const uint8_t *data, size_t size, size_t chunk)
{
    core_buf_reset(&trace);
    fuzz_http_open(&fx);
    fuzz_http_send(&fx, data, size, chunk);
    answer_later();
    fuzz_http_finish(&fx, answer_later);
    CHECK(nlater == 0);
}

/* However the stream is cut, the same requests are served. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fx.srv)
        setup();
    fuzz_whole_and_split(data, size, run_session, &trace);
    return 0;
}
