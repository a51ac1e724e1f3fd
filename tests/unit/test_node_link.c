/* node/link.c: a cluster link's silent-peer check against a late loop.
 * Leader and follower each run on a loop of their own, so one side can
 * be held back (a starved process) while the other sends. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include <sodium.h>

#include "core/core.h"
#include "node/node_int.h"
#include "test_util.h"

#define SILENT_AFTER_MS 6000 /* past the link's 5 s dead time */

typedef struct side {
    struct ev_loop *loop;
    node_link_t *l;
    int up, gone, msgs;
} side_t;

static void on_up(node_link_t *l, void *ud) { (void)l; ((side_t *)ud)->up++; }
static void on_gone(node_link_t *l, void *ud) { (void)l; side_t *s = ud; s->gone++; s->l = NULL; }
static int on_msg(node_link_t *l, const char *json, size_t len, void *ud)
{
    (void)l, (void)json, (void)len;
    ((side_t *)ud)->msgs++;
    return 0;
}

static const node_link_cbs_t cbs = {on_up, on_msg, on_gone};
static const int64_t epoch = 7;
static const node_link_auth_t leader_auth = {"a-cluster-secret", "n1", "n1", &epoch};
static const node_link_auth_t follower_auth = {"a-cluster-secret", "n2", "n1", &epoch};

/* Turns both loops until cond holds for *v >= want, within the deadline. */
static void pump_both(side_t *a, side_t *b, const int *v, int want)
{
    uint64_t dl = core_mono_ms() + TU_DEADLINE_MS;
    while (*v < want) {
        assert_true(core_mono_ms() < dl);
        ev_run(a->loop, EVRUN_NOWAIT);
        ev_run(b->loop, EVRUN_NOWAIT);
        usleep(1000);
    }
}

/* Turns one loop for ms. */
static void pump(side_t *s, unsigned ms)
{
    uint64_t end = core_mono_ms() + ms;
    while (core_mono_ms() < end) {
        ev_run(s->loop, EVRUN_NOWAIT);
        usleep(1000);
    }
}

static void link_pair(side_t *leader, side_t *follower)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int one = 1;
    assert_true(lfd >= 0);
    /* as a core_listener: accepted fds are non-blocking and without Nagle */
    assert_int_equal(setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 1), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    leader->loop = ev_loop_new(EVFLAG_AUTO);
    follower->loop = ev_loop_new(EVFLAG_AUTO);
    follower->l = node_link_connect(follower->loop, "127.0.0.1", ntohs(a.sin_port), &follower_auth,
                                    &cbs, follower);
    assert_non_null(follower->l);
    int fd = -1;
    uint64_t dl = core_mono_ms() + TU_DEADLINE_MS;
    while (fd < 0 && core_mono_ms() < dl) { /* the follower connects on its loop */
        ev_run(follower->loop, EVRUN_NOWAIT);
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    }
    assert_true(fd >= 0);
    close(lfd);
    leader->l = node_link_accept(leader->loop, fd, "127.0.0.1:1", &leader_auth, &cbs, leader);
    assert_non_null(leader->l);
    pump_both(leader, follower, &follower->up, 1);
    pump_both(leader, follower, &leader->up, 1);
}

static void unlink_pair(side_t *leader, side_t *follower)
{
    if (leader->l)
        node_link_close(leader->l, "test over");
    if (follower->l)
        node_link_close(follower->l, "test over");
    ev_loop_destroy(leader->loop);
    ev_loop_destroy(follower->loop);
}

/* Bytes from the leader wait unread on a follower whose loop is late: the
 * check past the dead time leaves the link up; once they are read and
 * nothing more comes, the same check closes it as silent. */
static void test_late_loop_is_not_a_silent_peer(void **state)
{
    (void)state;
    side_t leader = {0}, follower = {0};
    link_pair(&leader, &follower);
    assert_int_equal(node_link_send(leader.l, "{\"t\":\"x\"}", 9), 0);
    pump(&leader, 20); /* the leader's loop sends; the follower's does not run */
    assert_int_equal(follower.msgs, 0);
    node_link_check(follower.l, core_mono_ms() + SILENT_AFTER_MS);
    assert_int_equal(follower.gone, 0);
    assert_true(node_link_is_up(follower.l));
    pump(&follower, 20); /* the late loop reads what waited */
    assert_int_equal(follower.msgs, 1);
    node_link_check(follower.l, core_mono_ms() + SILENT_AFTER_MS);
    assert_int_equal(follower.gone, 1); /* nothing waits: a silent peer */
    unlink_pair(&leader, &follower);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_late_loop_is_not_a_silent_peer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
