/* Shared by the fuzz targets: CHECK, and a driver that feeds a real
 * HTTP server (core/http.c) over a socketpair instead of TCP. */
#ifndef CHAT_FUZZ_UTIL_H
#define CHAT_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/core.h"

/* An invariant: abort() so a replay run fails loudly. */
#define CHECK(c)                                                                      \
    do {                                                                              \
        if (!(c)) {                                                                   \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

/* Loop turns any wait may take before it gives up. */
#define FUZZ_PUMP_LIMIT 10000

/* A server on its own loop and the current connection to it. */
typedef struct fuzz_http {
    struct ev_loop *loop;
    core_http_server_t *srv;
    int sv[2]; /* [0] the server's end, [1] the client's */
} fuzz_http_t;

/* Starts the server on 127.0.0.1 (never listened to: input comes over pairs). */
void fuzz_http_setup(fuzz_http_t *f, const core_http_server_opts_t *opts,
                     const core_http_server_cbs_t *cbs);

/* Hands a new socketpair to the server; it must then have exactly one conn. */
void fuzz_http_open(fuzz_http_t *f);

/* Sends p in pieces of `chunk` bytes, each read by the server (or the
 * server gone) before the next; what the server answers is dropped. */
void fuzz_http_send(fuzz_http_t *f, const uint8_t *p, size_t len, size_t chunk);

/* Half-closes the client and runs the loop (calling each_turn, if not
 * NULL, every turn) until the server closed; then the server has no conns. */
void fuzz_http_finish(fuzz_http_t *f, void (*each_turn)(void));

/* One session over data, sent in pieces of `chunk` bytes. */
typedef void (*fuzz_session_fn)(const uint8_t *data, size_t size, size_t chunk);

/* The split-delivery check: byte 0 of data picks a second delivery (0 =
 * none, else chunks of that many bytes), the rest is the session's input.
 * Runs it whole, then split; *trace (filled by run) must come out the same. */
void fuzz_whole_and_split(const uint8_t *data, size_t size, fuzz_session_fn run,
                          core_buf_t *trace);

#endif
