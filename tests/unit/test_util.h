/* Helpers shared by the unit tests: a raw client socket, running a loop
 * until a condition holds (with a deadline), and a private redis-server. */
#ifndef CHAT_TEST_UTIL_H
#define CHAT_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "core/core.h"

/* How long any wait in a test may take before the test fails. */
#define TU_DEADLINE_MS 10000
#define TU_REDIS_BIN "/usr/bin/redis-server"

/* A raw, non-blocking client socket; what it reads piles up in `in`. */
typedef struct tu_cli {
    int fd;
    int server_fd; /* socketpair only: the server's end, for FIONREAD; else -1 */
    core_buf_t in;
    int eof;
} tu_cli_t;

/* A condition for tu_run_until: ctx and arg are the caller's, c may be NULL. */
typedef int (*tu_done_fn)(void *ctx, tu_cli_t *c, const void *arg);

/* An ev_timer callback that does nothing: a tick that keeps EVRUN_ONCE short. */
void tu_noop_timer(struct ev_loop *loop, ev_timer *w, int revents);

/* Runs the loop (and reads c, if not NULL) until done() or the deadline;
 * returns done()'s last answer. */
int tu_run_until(struct ev_loop *loop, void *ctx, tu_cli_t *c, tu_done_fn done, const void *arg);

/* Runs the loop until *flag >= want; fails the test at the deadline. */
void tu_wait_flag(struct ev_loop *loop, const int *flag, int want);

/* Runs the loop until b holds at least want bytes; fails the test at the deadline. */
void tu_wait_len(struct ev_loop *loop, const core_buf_t *b, size_t want);

/* Conditions for tu_run_until. */
int tu_done_eof(void *ctx, tu_cli_t *c, const void *arg);
int tu_done_consumed(void *ctx, tu_cli_t *c, const void *arg); /* server end drained */
int tu_done_no_conns(void *ctx, tu_cli_t *c, const void *arg); /* arg: core_http_server_t */

/* A blocking TCP connection to 127.0.0.1:port (SO_RCVBUF first when rcvbuf > 0);
 * the fd, or -1. */
int tu_tcp_connect(int port, int rcvbuf);

/* Clients: tu_cli_tcp connects to 127.0.0.1:port; tu_cli_pair makes a
 * socketpair whose c->server_fd the caller hands to the server. */
void tu_cli_tcp(tu_cli_t *c, int port);
void tu_cli_pair(tu_cli_t *c);
void tu_cli_free(tu_cli_t *c);
void tu_cli_pump(tu_cli_t *c); /* reads what is there without blocking */
void tu_cli_send(tu_cli_t *c, const char *data, size_t len);
void tu_cli_sends(tu_cli_t *c, const char *s);
/* Sends in pieces of `step` bytes, each read by the server before the next
 * (socketpair clients only). */
void tu_cli_send_split(struct ev_loop *loop, tu_cli_t *c, const char *s, size_t len, size_t step);

/* A TCP port on 127.0.0.1 that was free a moment ago, or -1. */
int tu_free_port(void);

/* Starts redis-server on 127.0.0.1:port with its files in dir and polls
 * until it answers PING; 0 with *pid set, or -1 with *pid = -1. */
int tu_redis_start(const char *dir, int port, pid_t *pid);
/* The same with extra config lines (requirepass, user ...) written to
 * dir/redis.conf (no DEBUG command there). */
int tu_redis_start_conf(const char *dir, int port, const char *conf_lines, pid_t *pid);
/* SIGKILLs and reaps *pid when > 0, then sets it to -1. */
void tu_redis_kill(pid_t *pid);

/* Removes dir and everything below it. */
void tu_rm_tree(const char *dir);

/* The next of a repeatable pseudo-random sequence (xorshift64; *state
 * nonzero): randomized tests that fail the same way on every run. */
uint64_t tu_xorshift(uint64_t *state);

#endif
