#include "test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cmocka.h>

/* ------------------------------------------------------------------ loop */

void tu_noop_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

int tu_run_until(struct ev_loop *loop, void *ctx, tu_cli_t *c, tu_done_fn done, const void *arg)
{
    uint64_t end = core_mono_ms() + TU_DEADLINE_MS;
    ev_timer tick;
    int ok;

    ev_timer_init(&tick, tu_noop_timer, 0.005, 0.005);
    ev_timer_start(loop, &tick);
    while (!(ok = done(ctx, c, arg)) && core_mono_ms() < end) {
        ev_run(loop, EVRUN_ONCE);
        if (c)
            tu_cli_pump(c);
    }
    ev_timer_stop(loop, &tick);
    return ok;
}

static int done_flag(void *ctx, tu_cli_t *c, const void *arg)
{
    (void)c;
    return *(const int *)ctx >= *(const int *)arg;
}

void tu_wait_flag(struct ev_loop *loop, const int *flag, int want)
{
    assert_true(tu_run_until(loop, (void *)flag, NULL, done_flag, &want));
}

static int done_len(void *ctx, tu_cli_t *c, const void *arg)
{
    (void)c;
    return ((const core_buf_t *)ctx)->len >= *(const size_t *)arg;
}

void tu_wait_len(struct ev_loop *loop, const core_buf_t *b, size_t want)
{
    assert_true(tu_run_until(loop, (void *)b, NULL, done_len, &want));
}

int tu_done_eof(void *ctx, tu_cli_t *c, const void *arg)
{
    (void)ctx;
    (void)arg;
    return c->eof;
}

int tu_done_consumed(void *ctx, tu_cli_t *c, const void *arg)
{
    int n = 0;

    (void)ctx;
    (void)arg;
    return ioctl(c->server_fd, FIONREAD, &n) < 0 || n == 0;
}

int tu_done_no_conns(void *ctx, tu_cli_t *c, const void *arg)
{
    (void)ctx;
    (void)c;
    return core_http_server_conns((const core_http_server_t *)arg) == 0;
}

/* ------------------------------------------------------------------ clients */

int tu_tcp_connect(int port, int rcvbuf)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

void tu_cli_tcp(tu_cli_t *c, int port)
{
    memset(c, 0, sizeof(*c));
    core_buf_init(&c->in);
    c->server_fd = -1;
    c->fd = tu_tcp_connect(port, 0);
    assert_true(c->fd >= 0);
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
}

void tu_cli_pair(tu_cli_t *c)
{
    int sv[2];

    memset(c, 0, sizeof(*c));
    core_buf_init(&c->in);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    c->fd = sv[1];
    c->server_fd = sv[0];
}

void tu_cli_free(tu_cli_t *c)
{
    close(c->fd);
    core_buf_free(&c->in);
}

void tu_cli_pump(tu_cli_t *c)
{
    char buf[4096];
    ssize_t n;

    while (!c->eof && (n = read(c->fd, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            c->eof = 1; /* reset: as final as EOF */
            return;
        }
        core_buf_append(&c->in, buf, (size_t)n);
    }
    c->eof = 1;
}

void tu_cli_send(tu_cli_t *c, const char *data, size_t len)
{
    assert_int_equal(send(c->fd, data, len, MSG_NOSIGNAL), (ssize_t)len);
}

void tu_cli_sends(tu_cli_t *c, const char *s)
{
    tu_cli_send(c, s, strlen(s));
}

void tu_cli_send_split(struct ev_loop *loop, tu_cli_t *c, const char *s, size_t len, size_t step)
{
    for (size_t off = 0; off < len; off += step) {
        tu_cli_send(c, s + off, len - off < step ? len - off : step);
        assert_true(tu_run_until(loop, NULL, c, tu_done_consumed, NULL));
    }
}

/* ------------------------------------------------------------------ redis-server */

int tu_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = -1;

    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* One blocking PING with a short poll; 1 when "+PONG" came back, or the
 * NOAUTH refusal of a Redis that wants a password (it serves). */
static int ping_once(int port)
{
    struct pollfd p;
    char buf[16] = {0};
    int ok = 0;
    int fd = tu_tcp_connect(port, 0);

    if (fd < 0)
        return 0;
    if (write(fd, "PING\r\n", 6) == 6) {
        p.fd = fd;
        p.events = POLLIN;
        if (poll(&p, 1, 200) == 1 && read(fd, buf, sizeof(buf) - 1) >= 5)
            ok = strncmp(buf, "+PONG", 5) == 0 || strncmp(buf, "-NOAUTH", 7) == 0;
    }
    close(fd);
    return ok;
}

/* conf: a config file (its lines before the flags below), or NULL. */
static pid_t spawn_redis(const char *dir, int port, const char *conf)
{
    char portstr[16];
    pid_t pid;
    int devnull;

    snprintf(portstr, sizeof(portstr), "%d", port);
    pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
    devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, 1);
        dup2(devnull, 2);
    }
    if (conf)
        execl(TU_REDIS_BIN, TU_REDIS_BIN, conf, "--port", portstr, "--bind", "127.0.0.1",
              "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir, "--logfile",
              "redis.log", (char *)NULL);
    execl(TU_REDIS_BIN, TU_REDIS_BIN, "--port", portstr, "--bind", "127.0.0.1", "--save", "",
          "--appendonly", "no", "--daemonize", "no", "--dir", dir, "--logfile", "redis.log",
          "--enable-debug-command", "local", (char *)NULL);
    _exit(127);
}

static int redis_start(const char *dir, int port, const char *conf, pid_t *pid)
{
    uint64_t deadline = core_mono_ms() + TU_DEADLINE_MS;

    *pid = spawn_redis(dir, port, conf);
    if (*pid < 0)
        return -1;
    while (core_mono_ms() < deadline) {
        if (ping_once(port))
            return 0;
        if (waitpid(*pid, NULL, WNOHANG) == *pid) {
            *pid = -1;
            return -1;
        }
        usleep(10000); /* test thread, not a loop: polling for readiness */
    }
    tu_redis_kill(pid);
    return -1;
}

int tu_redis_start(const char *dir, int port, pid_t *pid)
{
    return redis_start(dir, port, NULL, pid);
}

int tu_redis_start_conf(const char *dir, int port, const char *conf_lines, pid_t *pid)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/redis.conf", dir);
    f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs(conf_lines, f);
    fclose(f);
    return redis_start(dir, port, path, pid);
}

void tu_redis_kill(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
    }
    *pid = -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

uint64_t tu_xorshift(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

void tu_rm_tree(const char *dir)
{
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}
