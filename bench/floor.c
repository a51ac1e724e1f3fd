/* chat-floor: what this box's loopback TCP does with no chat work at all,
 * the floor under chat-bench's figures (docs/BENCHMARKS.md section 32).
 *
 * storm: CLIENTS connections opened and held by PROCS client processes
 *        against SERVERS server processes (a port each, like nodes), each
 *        with two request/answer exchanges sized like a WebSocket upgrade
 *        and a token login; reports connections/s and the CPU each cost
 *        on both ends together.
 * push:  a storm, then every server sends one frame to each of its
 *        connections (a broadcast); reports the time to the last arrival.
 * ring:  RING processes in a ring, CLIENTS connections between each pair,
 *        WINDOW 100-byte messages per connection passed on for DURATION:
 *        the hops of a cross-node 1:1 message (client, node, leader,
 *        node, client and back); reports hops/s and CPU per hop.
 *
 * Everything runs on 127.0.0.0/8: servers on 127.0.0.1, clients from
 * 127.0.K.(2+i). A storm's request or answer is one send() and is taken
 * as arrived on the first read (loopback does not split a few hundred
 * bytes); the ring reassembles what it times. Output: one JSON line. */
#include "bench/bench.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FLOOR_MAX_PROCS 64
#define FLOOR_FDS_PER_PROC 19000 /* under this box's 20,000 per process */
#define FLOOR_SPREAD 64          /* source addresses per client process */
#define FLOOR_EVENTS 256
#define FLOOR_MSG 100            /* ring message bytes */

/* Sizes as chat-bench's clients and chat-node send them for a token login. */
enum { UPGRADE_REQ = 230, UPGRADE_RESP = 130, LOGIN_REQ = 120, LOGIN_RESP = 300, PUSH_FRAME = 150 };

typedef struct floor_opts {
    const char *mode;
    int clients, procs, servers, window, ring;
    double duration, timeout, rate;
} floor_opts_t;

/* Shared with the parent: what each client process got to, and when. */
typedef struct floor_slot {
    long held;          /* connections through both exchanges */
    long pushed;        /* push frames arrived */
    long laps;          /* ring: messages back at process 0 */
    double held_at;     /* when the last of this process's connections was held */
    double pushed_at;   /* when its last push frame arrived */
    int failed;
    double p50_ms, p99_ms, max_ms; /* ring --rate: latency once round */
    long measured;                 /* ring --rate: latencies taken */
} floor_slot_t;

static volatile sig_atomic_t floor_go_push;

static double floor_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void floor_die(const char *what)
{
    fprintf(stderr, "chat-floor: %s: %s\n", what, strerror(errno));
    _exit(1);
}

static void floor_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int floor_listen(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4096) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        floor_die("listen");
    *port = ntohs(a.sin_port);
    return fd;
}

/* Many source addresses per process: connect() looks for a free port among
 * those a source address already uses, which slows down past a few
 * thousand (real clients come from many addresses). */
static int floor_dial(int port, int proc, unsigned n)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in src = {.sin_family = AF_INET};
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0)
        return -1;
    floor_nodelay(fd);
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    src.sin_addr.s_addr = htonl(0x7f000000u | (n % FLOOR_SPREAD) << 8 | (unsigned)(2 + proc));
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0 ||
        (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS)) {
        close(fd);
        return -1;
    }
    return fd;
}

static void floor_watch(int ep, int op, int fd, uint32_t events)
{
    struct epoll_event e = {.events = events, .data.fd = fd};
    if (epoll_ctl(ep, op, fd, &e) != 0)
        floor_die("epoll_ctl");
}

static int floor_send(int fd, size_t len)
{
    static const char zeros[512];
    return send(fd, zeros, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* ------------------------------------------------------------------ storm and push: servers */

static void floor_on_usr1(int sig)
{
    (void)sig;
    floor_go_push = 1;
}

/* Answers the upgrade, then the login; on SIGUSR1 one frame to every
 * connection it holds. Runs until killed. */
static void floor_server(int lfd)
{
    static unsigned char state[FLOOR_FDS_PER_PROC + 64]; /* per fd: 0 upgrade, 1 login, 2 held */
    int ep = epoll_create1(EPOLL_CLOEXEC), maxfd = lfd;
    struct epoll_event evs[FLOOR_EVENTS];
    sigset_t usr1, open_mask;
    char buf[4096];
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, &open_mask);
    signal(SIGUSR1, floor_on_usr1);
    floor_watch(ep, EPOLL_CTL_ADD, lfd, EPOLLIN);
    for (;;) {
        int n = epoll_pwait(ep, evs, FLOOR_EVENTS, -1, &open_mask);
        if (floor_go_push) {
            floor_go_push = 0;
            for (int fd = lfd + 1; fd <= maxfd; fd++)
                if (fd < (int)sizeof state && state[fd] == 2)
                    floor_send(fd, PUSH_FRAME);
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd, c;
            if (fd == lfd) {
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    if (c >= (int)sizeof state) {
                        close(c);
                        continue;
                    }
                    floor_nodelay(c);
                    state[c] = 0;
                    maxfd = c > maxfd ? c : maxfd;
                    floor_watch(ep, EPOLL_CTL_ADD, c, EPOLLIN);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                state[fd] = 3;
                close(fd);
            } else if (r > 0 && state[fd] < 2) {
                floor_send(fd, state[fd] == 0 ? UPGRADE_RESP : LOGIN_RESP);
                state[fd]++;
            }
        }
    }
}

/* ------------------------------------------------------------------ storm and push: clients */

typedef struct floor_client {
    const floor_opts_t *o;
    const int *ports;
    int proc, ep, want, opened;
    unsigned char *state;  /* per fd: 0 connecting, 1 upgrade sent, 2 login sent, 3 held */
    floor_slot_t *slot;
} floor_client_t;

static void floor_client_open(floor_client_t *c)
{
    if (c->opened >= c->want)
        return;
    int fd = floor_dial(c->ports[c->opened % c->o->servers], c->proc, (unsigned)c->opened);
    if (fd < 0 || fd >= FLOOR_FDS_PER_PROC + 64) {
        c->slot->failed = 1;
        if (fd >= 0)
            close(fd);
        return;
    }
    c->opened++;
    c->state[fd] = 0;
    floor_watch(c->ep, EPOLL_CTL_ADD, fd, EPOLLOUT);
}

/* One readiness event of connection fd: the next step of its exchanges. */
static void floor_client_step(floor_client_t *c, int fd, int push)
{
    char buf[4096];
    if (c->state[fd] == 0) {
        floor_watch(c->ep, EPOLL_CTL_MOD, fd, EPOLLIN);
        c->state[fd] = 1;
        if (floor_send(fd, UPGRADE_REQ) != 0)
            c->slot->failed = 1;
        return;
    }
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0 && errno == EAGAIN)
        return;
    if (r <= 0) {
        c->slot->failed = 1;
        floor_watch(c->ep, EPOLL_CTL_DEL, fd, 0);
        return;
    }
    if (c->state[fd] == 1) {
        c->state[fd] = 2;
        if (floor_send(fd, LOGIN_REQ) != 0)
            c->slot->failed = 1;
    } else if (c->state[fd] == 2) {
        c->state[fd] = 3;
        c->slot->held++;
        if (c->slot->held == c->want)
            c->slot->held_at = floor_now();
        if (!push) /* a held connection needs no more events */
            floor_watch(c->ep, EPOLL_CTL_DEL, fd, 0);
        floor_client_open(c);
    } else {
        c->slot->pushed++;
        c->slot->pushed_at = floor_now();
    }
}

static void floor_client(const floor_opts_t *o, const int *ports, int proc, int want,
                         floor_slot_t *slot)
{
    static unsigned char state[FLOOR_FDS_PER_PROC + 64];
    floor_client_t c = {.o = o, .ports = ports, .proc = proc, .want = want, .state = state,
                        .slot = slot, .ep = epoll_create1(EPOLL_CLOEXEC)};
    int push = strcmp(o->mode, "push") == 0;
    struct epoll_event evs[FLOOR_EVENTS];
    double until = floor_now() + o->timeout;
    for (int i = 0; i < o->window; i++)
        floor_client_open(&c);
    while (!slot->failed && floor_now() < until &&
           (slot->held < want || (push && slot->pushed < want))) {
        int n = epoll_wait(c.ep, evs, FLOOR_EVENTS, 100);
        for (int i = 0; i < n; i++)
            floor_client_step(&c, evs[i].data.fd, push);
    }
    for (;;) /* hold until the parent has measured and kills us */
        pause();
}

/* ------------------------------------------------------------------ ring */

/* Ring member 0 in --rate mode: sends a message (its send time in the
 * first bytes) at Poisson times, takes back what went round and keeps
 * the latencies of those sent in the measured part of the run. */
typedef struct floor_pacer {
    double next_at, from, to;   /* next send; the measured window */
    unsigned next_out;
    unsigned char (*stage)[FLOOR_MSG]; /* per inbound fd: a message being reassembled */
    int *have;
    double *lat;
    long nlat, cap;
} floor_pacer_t;

static int floor_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The messages due by now; -1 if one could not go out whole (the run
 * then says so: a part of one would shift every later message). */
static int floor_pacer_send(floor_pacer_t *p, const floor_opts_t *o, const int *out, double now)
{
    unsigned char msg[FLOOR_MSG] = {0};
    int rc = 0;
    while (p->next_at <= now) {
        memcpy(msg, &p->next_at, sizeof p->next_at);
        if (send(out[p->next_out++ % (unsigned)o->clients], msg, sizeof msg, MSG_NOSIGNAL) !=
            (ssize_t)sizeof msg)
            rc = -1;
        p->next_at += -log(1.0 - drand48()) / o->rate;
    }
    return rc;
}

/* Reassembles what came back on fd; returns the messages completed. */
static long floor_pacer_take(floor_pacer_t *p, int fd, const char *buf, size_t len, double now)
{
    long done = 0;
    while (len > 0) {
        size_t k = FLOOR_MSG - (size_t)p->have[fd];
        k = k < len ? k : len;
        memcpy(p->stage[fd] + p->have[fd], buf, k);
        p->have[fd] += (int)k;
        buf += k;
        len -= k;
        if (p->have[fd] < FLOOR_MSG)
            break;
        p->have[fd] = 0;
        done++;
        double sent;
        memcpy(&sent, p->stage[fd], sizeof sent);
        if (sent >= p->from && sent < p->to && p->nlat < p->cap)
            p->lat[p->nlat++] = now - sent;
    }
    return done;
}

static void floor_pacer_report(floor_pacer_t *p, floor_slot_t *slot)
{
    if (p->nlat == 0)
        return;
    qsort(p->lat, (size_t)p->nlat, sizeof *p->lat, floor_cmp_double);
    slot->p50_ms = p->lat[p->nlat / 2] * 1e3;
    slot->p99_ms = p->lat[(long)((double)p->nlat * 0.99)] * 1e3;
    slot->max_ms = p->lat[p->nlat - 1] * 1e3;
    slot->measured = p->nlat;
}

/* Connects to the next member and accepts the previous one's: inbound
 * connection j passes on to outbound j (peer[inbound fd]). */
static void floor_ring_link(const floor_opts_t *o, int idx, int lfd, int next_port, int *out,
                            int *peer, int ep)
{
    int nin = 0;
    for (int j = 0; j < o->clients; j++) {
        out[j] = floor_dial(next_port, idx, (unsigned)j);
        if (out[j] < 0)
            floor_die("connect");
    }
    double give_up = floor_now() + 10; /* a member that died never connects */
    while (nin < o->clients) {
        int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0 && errno == EAGAIN && floor_now() < give_up) {
            usleep(1000);
            continue;
        }
        if (c < 0 || c >= FLOOR_FDS_PER_PROC + 64)
            floor_die("accept");
        floor_nodelay(c);
        peer[c] = out[nin++];
        floor_watch(ep, EPOLL_CTL_ADD, c, EPOLLIN);
    }
}

/* Passes on whatever arrives on inbound connection j to outbound j;
 * process 0 starts WINDOW messages on each and counts what comes back
 * (or, with --rate, sends new ones at that rate and ends those back). */
static void floor_ring_member(const floor_opts_t *o, int idx, int lfd, int next_port,
                              floor_slot_t *slot)
{
    int out[FLOOR_FDS_PER_PROC / 2], paced = idx == 0 && o->rate > 0;
    int *peer = calloc(FLOOR_FDS_PER_PROC + 64, sizeof *peer);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event evs[FLOOR_EVENTS];
    char buf[65536];
    long rest = 0;
    floor_pacer_t pacer = {0};
    if (!peer)
        floor_die("calloc");
    floor_ring_link(o, idx, lfd, next_port, out, peer, ep);
    usleep(200000); /* every member has accepted before messages flow */
    double start = floor_now(), until = start + o->duration;
    if (paced) {
        pacer = (floor_pacer_t){.next_at = start, .from = start + 1.0, .to = until - 0.5,
                                .cap = (long)(o->rate * o->duration) + 1000};
        pacer.stage = calloc(FLOOR_FDS_PER_PROC + 64, sizeof *pacer.stage);
        pacer.have = calloc(FLOOR_FDS_PER_PROC + 64, sizeof *pacer.have);
        pacer.lat = calloc((size_t)pacer.cap, sizeof *pacer.lat);
        if (!pacer.stage || !pacer.have || !pacer.lat)
            floor_die("calloc");
        srand48((long)getpid());
    } else if (idx == 0) {
        for (int j = 0; j < o->clients; j++)
            for (int w = 0; w < o->window; w++)
                floor_send(out[j], FLOOR_MSG);
    }
    for (double now = start; now < until; now = floor_now()) {
        struct timespec wait = {0, 100000000};
        if (paced) {
            if (floor_pacer_send(&pacer, o, out, now) != 0)
                slot->failed = 1;
            double d = pacer.next_at - floor_now();
            d = d > 0 ? d : 0;
            wait = (struct timespec){(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
        }
        int n = epoll_pwait2(ep, evs, FLOOR_EVENTS, &wait, NULL);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            ssize_t r = read(fd, buf, sizeof buf);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                /* a neighbour went away: at the end, as members stop a moment
                 * apart, or early, which the counts then show */
                floor_watch(ep, EPOLL_CTL_DEL, fd, 0);
                continue;
            }
            if (r < 0)
                continue;
            if (paced) { /* back from the round: ends here */
                slot->laps += floor_pacer_take(&pacer, fd, buf, (size_t)r, floor_now());
                continue;
            }
            if (send(peer[fd], buf, (size_t)r, MSG_NOSIGNAL) != r)
                slot->failed = 1;
            if (idx == 0) {
                rest += r;
                slot->laps += rest / FLOOR_MSG;
                rest %= FLOOR_MSG;
            }
        }
    }
    if (paced)
        floor_pacer_report(&pacer, slot);
    free(pacer.stage);
    free(pacer.have);
    free(pacer.lat);
    free(peer);
}

/* ------------------------------------------------------------------ parent */

/* CPU seconds of both ends of a storm so far; -1 when one cannot be read. */
static double floor_both_cpu(const int *servers, int nservers, const int *clients, int nclients)
{
    double a = bench_pids_cpu_s(servers, nservers), b = bench_pids_cpu_s(clients, nclients);
    return a < 0 || b < 0 ? -1 : a + b;
}

static int floor_spawn(void)
{
    pid_t p = fork();
    if (p < 0)
        floor_die("fork");
    return p;
}

static void floor_reap(const int *pids, int n)
{
    for (int i = 0; i < n; i++)
        kill(pids[i], SIGKILL);
    for (int i = 0; i < n; i++)
        waitpid(pids[i], NULL, 0);
}

/* Waits until every client process is held (and pushed to): 0, or -1 on a
 * failure or the timeout. */
static int floor_wait_clients(const floor_opts_t *o, floor_slot_t *slots, const int *want,
                              int push_phase)
{
    double until = floor_now() + o->timeout;
    for (;;) {
        int all = 1;
        for (int i = 0; i < o->procs; i++) {
            if (slots[i].failed)
                return -1;
            if ((push_phase ? slots[i].pushed : slots[i].held) < want[i])
                all = 0;
        }
        if (all)
            return 0;
        if (floor_now() > until)
            return -1;
        usleep(5000);
    }
}

/* The storm's (and push's) JSON line. */
static void floor_print_storm(const floor_opts_t *o, const floor_slot_t *slots, double secs,
                              double cpu_storm, double push_secs, double cpu_push, int ok)
{
    long held = 0, pushed = 0;
    for (int i = 0; i < o->procs; i++) {
        held += slots[i].held;
        pushed += slots[i].pushed;
    }
    printf("{\"mode\":\"%s\",\"clients\":%d,\"procs\":%d,\"servers\":%d,\"window\":%d,"
           "\"held\":%ld,\"storm_s\":%.3f,\"conns_per_s\":%.0f,\"storm_cpu_s\":%.2f,"
           "\"cpu_us_per_conn\":%.1f",
           o->mode, o->clients, o->procs, o->servers, o->window, held, secs,
           secs > 0 ? (double)held / secs : 0.0, cpu_storm,
           held > 0 ? cpu_storm * 1e6 / (double)held : 0.0);
    if (strcmp(o->mode, "push") == 0)
        printf(",\"pushed\":%ld,\"push_last_s\":%.3f,\"push_per_s\":%.0f,\"push_cpu_s\":%.2f,"
               "\"cpu_us_per_push\":%.2f",
               pushed, push_secs, push_secs > 0 ? (double)pushed / push_secs : 0.0, cpu_push,
               pushed > 0 ? cpu_push * 1e6 / (double)pushed : 0.0);
    printf(",\"ok\":%s}\n", ok ? "true" : "false");
}

static int floor_run_storm(const floor_opts_t *o, floor_slot_t *slots)
{
    int servers[FLOOR_MAX_PROCS], clients[FLOOR_MAX_PROCS];
    int ports[FLOOR_MAX_PROCS], lfds[FLOOR_MAX_PROCS], want[FLOOR_MAX_PROCS];
    int push = strcmp(o->mode, "push") == 0, rc;
    for (int i = 0; i < o->servers; i++)
        lfds[i] = floor_listen(&ports[i]);
    for (int i = 0; i < o->servers; i++)
        if ((servers[i] = floor_spawn()) == 0)
            floor_server(lfds[i]);
    for (int i = 0; i < o->servers; i++)
        close(lfds[i]);
    double t0 = floor_now();
    for (int i = 0; i < o->procs; i++) {
        want[i] = o->clients / o->procs + (i < o->clients % o->procs);
        if ((clients[i] = floor_spawn()) == 0)
            floor_client(o, ports, i, want[i], &slots[i]);
    }
    rc = floor_wait_clients(o, slots, want, 0);
    double cpu_storm = floor_both_cpu(servers, o->servers, clients, o->procs), cpu_push = 0;
    if (cpu_storm < 0) /* a figure we cannot read fails the run, not skews it */
        rc = -1;
    double held_at = t0, push_at = 0, last = 0;
    for (int i = 0; i < o->procs; i++)
        held_at = slots[i].held_at > held_at ? slots[i].held_at : held_at;
    if (rc == 0 && push) {
        push_at = floor_now();
        for (int i = 0; i < o->servers; i++)
            kill(servers[i], SIGUSR1);
        rc = floor_wait_clients(o, slots, want, 1);
        for (int i = 0; i < o->procs; i++)
            last = slots[i].pushed_at > last ? slots[i].pushed_at : last;
        double cpu_now = floor_both_cpu(servers, o->servers, clients, o->procs);
        if (cpu_now < 0)
            rc = -1;
        cpu_push = cpu_now - cpu_storm;
    }
    floor_reap(servers, o->servers);
    floor_reap(clients, o->procs);
    double push_secs = last > push_at ? last - push_at : 0;
    floor_print_storm(o, slots, held_at - t0, cpu_storm, push_secs, cpu_push, rc == 0);
    return rc == 0 ? 0 : 1;
}

static int floor_run_ring(const floor_opts_t *o, floor_slot_t *slots)
{
    int members[FLOOR_MAX_PROCS];
    int ports[FLOOR_MAX_PROCS], lfds[FLOOR_MAX_PROCS];
    for (int i = 0; i < o->ring; i++)
        lfds[i] = floor_listen(&ports[i]);
    for (int i = 0; i < o->ring; i++)
        if ((members[i] = floor_spawn()) == 0) {
            floor_ring_member(o, i, lfds[i], ports[(i + 1) % o->ring], &slots[i]);
            _exit(slots[i].failed);
        }
    for (int i = 0; i < o->ring; i++)
        close(lfds[i]);
    /* measured from 1 s in (set-up done) to 0.5 s before the members stop */
    usleep(1000000);
    double t0 = floor_now(), cpu0 = bench_pids_cpu_s(members, o->ring);
    long laps0 = slots[0].laps;
    usleep((useconds_t)((o->duration - 1.5) * 1e6));
    double secs = floor_now() - t0, cpu1 = bench_pids_cpu_s(members, o->ring), cpu = cpu1 - cpu0;
    long laps = slots[0].laps - laps0; /* in the same window as the CPU */
    double hops = (double)laps * o->ring;
    int failed = cpu0 < 0 || cpu1 < 0, status; /* an unreadable figure fails the run */
    for (int i = 0; i < o->ring; i++)
        if (waitpid(members[i], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
            failed = 1;
    printf("{\"mode\":\"ring\",\"ring\":%d,\"connections\":%d,\"window\":%d,\"rate\":%.0f,"
           "\"measured_s\":%.2f,\"laps\":%ld,\"laps_per_s\":%.0f,\"hops_per_s\":%.0f,"
           "\"cpu_s\":%.2f,\"cpu_us_per_hop\":%.2f,\"cpu_us_per_lap\":%.2f",
           o->ring, o->clients, o->window, o->rate, secs, laps, (double)laps / secs, hops / secs,
           cpu, hops > 0 ? cpu * 1e6 / hops : 0.0, laps > 0 ? cpu * 1e6 / (double)laps : 0.0);
    if (o->rate > 0)
        printf(",\"measured\":%ld,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f",
               slots[0].measured, slots[0].p50_ms, slots[0].p99_ms, slots[0].max_ms);
    printf(",\"ok\":%s}\n", failed || (o->rate > 0 && slots[0].measured == 0) ? "false" : "true");
    return failed;
}

/* ------------------------------------------------------------------ flags */

static const char floor_usage[] =
    "usage: chat-floor --mode storm|push|ring [options]\n"
    "  --clients N    storm/push: connections in total; ring: connections per hop (default 1000)\n"
    "  --procs N      storm/push: client processes (default 2)\n"
    "  --servers N    storm/push: server processes, a port each (default 2)\n"
    "  --window N     storm/push: connections being opened at once per process;\n"
    "                 ring: messages in flight per connection (default 100 / 1)\n"
    "  --ring N       ring: processes in the ring (default 8)\n"
    "  --duration S   ring: seconds, the first and the last half not measured (default 5)\n"
    "  --rate R       ring: process 0 sends R new messages/s at Poisson times (not a\n"
    "                 closed loop) and reports their latency round the ring\n"
    "  --timeout S    storm/push: give up after S seconds per phase (default 120)\n";

static int floor_parse(int argc, char **argv, floor_opts_t *o)
{
    static const struct option longs[] = {
        {"mode", 1, NULL, 'm'},   {"clients", 1, NULL, 'c'}, {"procs", 1, NULL, 'p'},
        {"servers", 1, NULL, 's'}, {"window", 1, NULL, 'w'}, {"ring", 1, NULL, 'r'},
        {"duration", 1, NULL, 'd'}, {"timeout", 1, NULL, 't'}, {"rate", 1, NULL, 'R'},
        {"help", 0, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int ch, window = -1;
    *o = (floor_opts_t){.mode = "", .clients = 1000, .procs = 2, .servers = 2, .ring = 8,
                        .duration = 5, .timeout = 120};
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'm': o->mode = optarg; break;
        case 'c': o->clients = atoi(optarg); break;
        case 'p': o->procs = atoi(optarg); break;
        case 's': o->servers = atoi(optarg); break;
        case 'w': window = atoi(optarg); break;
        case 'r': o->ring = atoi(optarg); break;
        case 'd': o->duration = atof(optarg); break;
        case 't': o->timeout = atof(optarg); break;
        case 'R': o->rate = atof(optarg); break;
        default: return -1;
        }
    }
    int ring = strcmp(o->mode, "ring") == 0;
    o->window = window >= 0 ? window : ring ? 1 : 100;
    if (optind != argc || (!ring && strcmp(o->mode, "storm") && strcmp(o->mode, "push")))
        return -1;
    if (o->clients < 1 || o->window < 1 || o->duration < 2 || o->timeout <= 0 || o->rate < 0 ||
        o->rate > 1e6 || (o->rate > 0 && !ring))
        return -1;
    if (ring)
        return o->ring >= 2 && o->ring <= FLOOR_MAX_PROCS && o->clients <= FLOOR_FDS_PER_PROC / 2
                   ? 0 : -1;
    if (o->procs < 1 || o->procs > FLOOR_MAX_PROCS || o->servers < 1 ||
        o->servers > FLOOR_MAX_PROCS || o->clients < o->procs)
        return -1;
    /* every process stays under the descriptor limit */
    return (o->clients + o->procs - 1) / o->procs <= FLOOR_FDS_PER_PROC &&
                   (o->clients + o->servers - 1) / o->servers <= FLOOR_FDS_PER_PROC
               ? 0 : -1;
}

int main(int argc, char **argv)
{
    floor_opts_t o;
    if (floor_parse(argc, argv, &o) != 0) {
        fputs(floor_usage, stderr);
        return 2;
    }
    floor_slot_t *slots = mmap(NULL, FLOOR_MAX_PROCS * sizeof *slots, PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (slots == MAP_FAILED)
        floor_die("mmap");
    signal(SIGPIPE, SIG_IGN);
    return strcmp(o.mode, "ring") == 0 ? floor_run_ring(&o, slots) : floor_run_storm(&o, slots);
}
