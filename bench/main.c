/* chat-bench: flags, the worker processes, aggregation and the report. */
#include "bench/bench.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "proto/proto.h"

#define MAX_PROCS 64
#define MAX_PIDS 128 /* bench/scale.sh passes every node of a big cluster */
#define LINE_MAX_BYTES (1u << 20)
#define PARENT_SLACK_S 30.0

typedef struct worker_proc {
    pid_t pid;
    int fd;
    core_buf_t in;
    int ready;      /* saw "ready" */
    int done;       /* saw the result line */
    bench_result_t res;
} worker_proc_t;

typedef struct cli {
    bench_opts_t o;
    const char *gateway;
    const char *ca_file;
    const char *node_urls[64];
    int nurls;
    int pids[MAX_PIDS];
    int npids;
    int cpu_pids[MAX_PIDS]; /* CPU only (Redis, gateway): not in the RSS figures */
    int ncpu_pids;
    int rate_set;
    char room_buf[PROTO_NAME_MAX + 1];
    const char *push_token_file;
    char push_token[256];
    bench_target_t gw;
    uint64_t pushes;        /* push: accepted by the gateway (202) */
    uint64_t push_errors;   /* push: refused or failed */
} cli_t;

static const char usage[] =
    "usage: chat-bench --scenario login|idle|direct|group|room|push (--gateway URL | --node URL...)\n"
    "  --gateway URL         http[s]://HOST:PORT; asks GET /servers once\n"
    "  --node URL            ws[s]://HOST:PORT/ws; repeatable (clients go round-robin)\n"
    "  --ca-file PEM         trust these CAs for https/wss (default: the system's store);\n"
    "                        certificates and names are always verified\n"
    "  --clients N           connections in total (default 100)\n"
    "  --procs N             worker processes; worker i connects from 127.0.K.(2+i),\n"
    "                        K = 0..7 in turn (default 1)\n"
    "  --duration SEC        measured phase (default 10)\n"
    "  --warmup SEC          direct, group, room: send for SEC before the measured\n"
    "                        phase; those messages count as sent and delivered, their\n"
    "                        latencies do not (caches, JITs, windows settle; default 0)\n"
    "  --grace SEC           wait for late deliveries after it (default 3)\n"
    "  --setup-timeout SEC   connect + login phase bound (default 120)\n"
    "  --connect-rate N      new connections per second in total (default 500)\n"
    "  --rate N              messages/s in total; 0 = closed loop (default 0; room 20;\n"
    "                        push: POST /push calls per second, default 1)\n"
    "  --window N            unanswered messages per sender (default 4)\n"
    "  --pace poisson|tick   with --rate: sends at random times, as many independent\n"
    "                        users would (gaps drawn from an exponential; default),\n"
    "                        or every 5 ms tick's share at once (before 2026-12-07)\n"
    "  --group-size N        members per group (default 50)\n"
    "  --senders N           senders per group (default 1)\n"
    "  --msg-size N          message text bytes (default 64)\n"
    "  --max-msgs N          per-sender cap (default 1000000)\n"
    "  --register            register the users first (409 = already there)\n"
    "  --user-prefix P       user names are P0, P1, ... (default bench)\n"
    "  --user-offset N       start at user PN instead of P0 (default 0)\n"
    "  --password-format F   password of user i, %d = i (default bench-pw-%d)\n"
    "  --room NAME           room scenario's room (default bench-RUNID)\n"
    "  --pid PID             node process to sample VmRSS and CPU time of; repeatable\n"
    "  --cpu-pid PID         other server process (Redis, gateway) whose CPU time counts\n"
    "  --no-src-bind         do not bind workers to their own source addresses\n"
    "  --reconnect SEC       idle: a client whose connection the server ends logs in\n"
    "                        again with its token after a random 0..SEC, on a random\n"
    "                        other node of the list (one that refused is skipped 2 s;\n"
    "                        each refusal doubles the next wait, from 0.2 s up to\n"
    "                        2 s); the latency figures become drop-to-logged-in times\n"
    "  --ask-gateway         with --reconnect: as clients do, each attempt tries the\n"
    "                        node the client was last logged in on, and when its\n"
    "                        handshake fails asks the gateway (GET /servers on a new\n"
    "                        connection) and goes to its first node (a random one\n"
    "                        when it cannot)\n"
    "  --ask-always          with --ask-gateway: every attempt asks the gateway first\n"
    "                        (clients before the last node was tried first)\n"
    "  --push-token-file F   push: the gateway's admin token (its --push-token-file)\n"
    "  push scenario: every client logs in and idles; the bench POSTs /push {all}\n"
    "  to the gateway --rate times a second for --duration, and every client times\n"
    "  each push from the POST to its arrival (max = time to the last delivery)\n"
    "  --socketio            the --node URLs are a socket.io peer (bench/socketio/):\n"
    "                        ws://HOST:PORT/socket.io/?EIO=4&transport=websocket\n"
    "Only targets inside 127.0.0.0/8 are accepted (exit 2 otherwise).\n";

enum {
    OPT_SCENARIO = 256, OPT_GATEWAY, OPT_NODE, OPT_CLIENTS, OPT_PROCS, OPT_DURATION, OPT_GRACE,
    OPT_SETUP, OPT_CRATE, OPT_RATE, OPT_WINDOW, OPT_GSIZE, OPT_SENDERS, OPT_MSIZE, OPT_MAXMSG,
    OPT_REGISTER, OPT_PREFIX, OPT_UOFFSET, OPT_PWFMT, OPT_ROOM, OPT_PID, OPT_CPU_PID, OPT_NOBIND, OPT_RECONNECT, OPT_ASK_GW, OPT_ASK_ALWAYS, OPT_PACE, OPT_SOCKETIO, OPT_CA, OPT_PUSH_TOKEN, OPT_WARMUP, OPT_HELP,
};

static const struct option long_opts[] = {
    {"scenario", 1, 0, OPT_SCENARIO}, {"gateway", 1, 0, OPT_GATEWAY}, {"node", 1, 0, OPT_NODE},
    {"clients", 1, 0, OPT_CLIENTS}, {"procs", 1, 0, OPT_PROCS}, {"duration", 1, 0, OPT_DURATION},
    {"grace", 1, 0, OPT_GRACE}, {"setup-timeout", 1, 0, OPT_SETUP},
    {"connect-rate", 1, 0, OPT_CRATE}, {"rate", 1, 0, OPT_RATE}, {"window", 1, 0, OPT_WINDOW},
    {"group-size", 1, 0, OPT_GSIZE}, {"senders", 1, 0, OPT_SENDERS},
    {"msg-size", 1, 0, OPT_MSIZE}, {"max-msgs", 1, 0, OPT_MAXMSG},
    {"register", 0, 0, OPT_REGISTER}, {"user-prefix", 1, 0, OPT_PREFIX},
    {"user-offset", 1, 0, OPT_UOFFSET},
    {"password-format", 1, 0, OPT_PWFMT}, {"room", 1, 0, OPT_ROOM}, {"pid", 1, 0, OPT_PID},
    {"cpu-pid", 1, 0, OPT_CPU_PID}, {"reconnect", 1, 0, OPT_RECONNECT},
    {"ask-gateway", 0, 0, OPT_ASK_GW},
    {"ask-always", 0, 0, OPT_ASK_ALWAYS}, {"pace", 1, 0, OPT_PACE},
    {"no-src-bind", 0, 0, OPT_NOBIND}, {"socketio", 0, 0, OPT_SOCKETIO}, {"ca-file", 1, 0, OPT_CA},
    {"push-token-file", 1, 0, OPT_PUSH_TOKEN}, {"warmup", 1, 0, OPT_WARMUP},
    {"help", 0, 0, OPT_HELP}, {0, 0, 0, 0},
};

static const char *const scenario_names[] = {"login", "idle", "direct", "group", "room", "push"};

/* ------------------------------------------------------------------ flags */

static int num(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int set_scenario(bench_opts_t *o, const char *name)
{
    for (size_t i = 0; i < sizeof scenario_names / sizeof scenario_names[0]; i++)
        if (!strcmp(name, scenario_names[i])) {
            o->scenario = (bench_scenario_t)i;
            o->scenario_name = scenario_names[i];
            return 0;
        }
    return -1;
}

static int set_numeric(cli_t *cl, int opt, const char *arg)
{
    bench_opts_t *o = &cl->o;
    double v;
    static const struct { int opt; double lo, hi; } ranges[] = {
        {OPT_CLIENTS, 1, 1e6}, {OPT_PROCS, 1, MAX_PROCS}, {OPT_DURATION, 0.1, 3600},
        {OPT_GRACE, 0, 600}, {OPT_SETUP, 1, 3600}, {OPT_CRATE, 1, 1e6}, {OPT_RATE, 0, 1e7},
        {OPT_WINDOW, 1, 1000}, {OPT_GSIZE, 2, 100000}, {OPT_SENDERS, 1, 1000},
        {OPT_MSIZE, 1, PROTO_TEXT_MAX}, {OPT_MAXMSG, 1, 1e9}, {OPT_PID, 1, 4194304}, {OPT_CPU_PID, 1, 4194304},
        {OPT_UOFFSET, 0, 1e9}, {OPT_RECONNECT, 0.001, 600}, {OPT_WARMUP, 0, 3600},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        if (ranges[i].opt != opt)
            continue;
        if (num(arg, ranges[i].lo, ranges[i].hi, &v) != 0)
            return -1;
        switch (opt) {
        case OPT_CLIENTS: o->clients = (int)v; break;
        case OPT_PROCS: o->procs = (int)v; break;
        case OPT_DURATION: o->duration_s = v; break;
        case OPT_GRACE: o->grace_s = v; break;
        case OPT_SETUP: o->setup_timeout_s = v; break;
        case OPT_CRATE: o->connect_rate = v; break;
        case OPT_RATE: o->rate = v; cl->rate_set = 1; break;
        case OPT_WINDOW: o->window = (int)v; break;
        case OPT_GSIZE: o->group_size = (int)v; break;
        case OPT_SENDERS: o->senders = (int)v; break;
        case OPT_MSIZE: o->msg_size = (int)v; break;
        case OPT_MAXMSG: o->max_msgs = (long)v; break;
        case OPT_UOFFSET: o->user_offset = (long)v; break;
        case OPT_RECONNECT: o->reconnect_s = v; break;
        case OPT_WARMUP: o->warmup_s = v; break;
        case OPT_PID:
            if (cl->npids >= MAX_PIDS)
                return -1;
            cl->pids[cl->npids++] = (int)v;
            break;
        case OPT_CPU_PID:
            if (cl->ncpu_pids >= MAX_PIDS)
                return -1;
            cl->cpu_pids[cl->ncpu_pids++] = (int)v;
            break;
        }
        return 0;
    }
    return -1;
}

static int set_option(cli_t *cl, int opt, const char *arg)
{
    bench_opts_t *o = &cl->o;
    switch (opt) {
    case OPT_SCENARIO: return set_scenario(o, arg);
    case OPT_GATEWAY: cl->gateway = o->gateway = arg; return 0;
    case OPT_ASK_GW: o->ask_gateway = 1; return 0;
    case OPT_ASK_ALWAYS: o->ask_always = 1; return 0;
    case OPT_PACE:
        if (strcmp(arg, "poisson") != 0 && strcmp(arg, "tick") != 0)
            return -1;
        o->pace_tick = strcmp(arg, "tick") == 0;
        return 0;
    case OPT_NODE:
        if (cl->nurls >= 64)
            return -1;
        cl->node_urls[cl->nurls++] = arg;
        return 0;
    case OPT_REGISTER: o->do_register = 1; return 0;
    case OPT_PREFIX: o->user_prefix = arg; return 0;
    case OPT_PWFMT: o->password_format = arg; return 0;
    case OPT_ROOM: o->room = arg; return 0;
    case OPT_NOBIND: o->src_bind = 0; return 0;
    case OPT_SOCKETIO: bench_ws_set_socketio(1); return 0;
    case OPT_CA: cl->ca_file = arg; return 0;
    case OPT_PUSH_TOKEN: cl->push_token_file = arg; return 0;
    default: return set_numeric(cl, opt, arg);
    }
}

static void defaults(cli_t *cl)
{
    bench_opts_t *o = &cl->o;
    memset(cl, 0, sizeof *cl);
    o->scenario_name = NULL;
    o->clients = 100;
    o->procs = 1;
    o->duration_s = 10;
    o->grace_s = 3;
    o->setup_timeout_s = 120;
    o->connect_rate = 500;
    o->window = 4;
    o->group_size = 50;
    o->senders = 1;
    o->msg_size = 64;
    o->max_msgs = 1000000;
    o->src_bind = 1;
    o->user_prefix = "bench";
    o->password_format = "bench-pw-%d"; /* "pw-%d" is < 6 bytes for users 0..99 */
    o->run_id = (uint32_t)(core_now_ms() ^ ((uint64_t)getpid() << 16));
}

/* push: needs the gateway and its token (core_secret_load: one line, trimmed). */
static int check_push(cli_t *cl, char *err, size_t errlen)
{
    if (cl->o.scenario != BENCH_PUSH)
        return 0;
    if (!cl->gateway || !cl->push_token_file || cl->o.rate <= 0) {
        snprintf(err, errlen, "--scenario push needs --gateway, --push-token-file and --rate > 0");
        return -1;
    }
    return core_secret_load("--push-token-file", cl->push_token_file, NULL, cl->push_token,
                            sizeof cl->push_token, err, errlen);
}

/* Names and passwords go into JSON unescaped: only allow what needs none. */
static int check_names(cli_t *cl, char *err, size_t errlen)
{
    bench_opts_t *o = &cl->o;
    size_t pl = strlen(o->user_prefix);
    if (pl > PROTO_NAME_MAX - 10 || !proto_valid_name(o->user_prefix, pl)) { /* + 10 digits */
        snprintf(err, errlen, "--user-prefix must be [A-Za-z0-9_.-]{1,22}");
        return -1;
    }
    const char *f = o->password_format, *d = strstr(f, "%d");
    size_t pcts = 0;
    for (const char *p = f; *p; p++)
        pcts += *p == '%';
    size_t min_len = strlen(f) - (d ? 1 : 0); /* user 0: "%d" -> "0" */
    if (pcts > 1 || (pcts == 1 && !d) || strpbrk(f, "\"\\") || min_len < PROTO_PASSWORD_MIN ||
        strlen(f) > 100) {
        snprintf(err, errlen, "--password-format: 6..100 bytes, at most one %%d, no quotes");
        return -1;
    }
    if (!o->room) {
        snprintf(cl->room_buf, sizeof cl->room_buf, "bench-%x", o->run_id);
        o->room = cl->room_buf;
    } else if (!proto_valid_name(o->room, strlen(o->room))) {
        snprintf(err, errlen, "--room must be [A-Za-z0-9_.-]{1,32}");
        return -1;
    }
    if (o->warmup_s > 0 && o->scenario != BENCH_DIRECT && o->scenario != BENCH_GROUP &&
        o->scenario != BENCH_ROOM) {
        snprintf(err, errlen, "--warmup goes with --scenario direct, group or room");
        return -1;
    }
    if (o->reconnect_s > 0 && o->scenario != BENCH_IDLE) {
        snprintf(err, errlen, "--reconnect goes with --scenario idle");
        return -1;
    }
    if (o->ask_gateway && (o->reconnect_s <= 0 || !cl->gateway)) {
        snprintf(err, errlen, "--ask-gateway needs --reconnect and --gateway");
        return -1;
    }
    if (o->ask_always && !o->ask_gateway) {
        snprintf(err, errlen, "--ask-always goes with --ask-gateway");
        return -1;
    }
    return check_push(cl, err, errlen);
}

/* Returns 0, 1 for a usage error, 2 for a refused target. */
static int parse_cli(cli_t *cl, int argc, char **argv, char *err, size_t errlen)
{
    int opt;
    defaults(cl);
    while ((opt = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        if (opt == OPT_HELP) {
            fputs(usage, stdout);
            exit(0);
        }
        if (opt == '?' || set_option(cl, opt, optarg) != 0) {
            snprintf(err, errlen, "bad option or value%s%s", optarg ? ": " : "", optarg ? optarg : "");
            return 1;
        }
    }
    bench_opts_t *o = &cl->o;
    if (optind < argc || !o->scenario_name || (!cl->gateway) == (cl->nurls == 0)) {
        snprintf(err, errlen, "need --scenario and exactly one of --gateway / --node");
        return 1;
    }
    if (!cl->rate_set && o->scenario == BENCH_ROOM)
        o->rate = 20;
    if (!cl->rate_set && o->scenario == BENCH_PUSH)
        o->rate = 1;
    if (o->procs > o->clients)
        o->procs = o->clients;
    if (check_names(cl, err, errlen) != 0)
        return 1;
    return 0;
}

static int resolve_nodes(cli_t *cl, char *err, size_t errlen)
{
    bench_opts_t *o = &cl->o;
    core_tls_t *tls = core_tls_client_new(cl->ca_file, err, errlen);
    if (!tls)
        return -1;
    bench_set_tls(tls); /* lives as long as the process: workers fork with it */
    if (cl->gateway) {
        int rc = bench_target_parse(cl->gateway, "http", &cl->gw, err, errlen);
        if (rc != 0)
            return rc;
        o->nnodes = bench_gateway_nodes(&cl->gw, o->nodes, 64, 10.0, err, errlen);
        return o->nnodes > 0 ? 0 : o->nnodes == -2 ? -2 : -1;
    }
    for (int i = 0; i < cl->nurls; i++) {
        int rc = bench_target_parse(cl->node_urls[i], "ws", &o->nodes[i], err, errlen);
        if (rc != 0)
            return rc;
    }
    o->nnodes = cl->nurls;
    return 0;
}

/* ------------------------------------------------------------------ workers */

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int spawn(const bench_opts_t *o, worker_proc_t *wp, int n)
{
    fflush(NULL); /* children exit() through stdio */
    for (int i = 0; i < n; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
            return -1;
        pid_t pid = fork();
        if (pid < 0) {
            close(sv[0]);
            close(sv[1]);
            return -1;
        }
        if (pid == 0) {
            close(sv[0]);
            for (int j = 0; j < i; j++)
                close(wp[j].fd);
            int rc = bench_worker_run(o, i, sv[1]);
            close(sv[1]);
            for (int j = 0; j < i; j++)
                core_buf_free(&wp[j].in);
            free(wp);
            exit(rc);
        }
        close(sv[1]);
        wp[i].pid = pid;
        wp[i].fd = sv[0];
        core_buf_init(&wp[i].in);
    }
    return 0;
}

/* Handles one complete line from a worker. */
static int on_line(worker_proc_t *w, const char *line, size_t len)
{
    if (!w->ready && len > 6 && !strncmp(line, "ready ", 6)) {
        w->ready = 1;
        return 0;
    }
    if (w->ready && !w->done && bench_result_decode(line, len, &w->res) == 0) {
        w->done = 1;
        return 0;
    }
    return -1;
}

static int read_worker(worker_proc_t *w)
{
    char tmp[65536];
    ssize_t n = read(w->fd, tmp, sizeof tmp);
    if (n <= 0)
        return n < 0 && errno == EINTR ? 0 : -1;
    if (w->in.len + (size_t)n > LINE_MAX_BYTES)
        return -1;
    core_buf_append(&w->in, tmp, (size_t)n);
    char *nl;
    while ((nl = memchr(w->in.data, '\n', w->in.len)) != NULL) {
        size_t len = (size_t)(nl - w->in.data);
        if (on_line(w, w->in.data, len) != 0)
            return -1;
        core_buf_consume(&w->in, len + 1);
    }
    return 0;
}

/* Polls until every worker has reached `want` (ready or done). */
static int wait_workers(worker_proc_t *wp, int n, int want_done, double timeout_s)
{
    uint64_t deadline = core_mono_ms() + (uint64_t)(timeout_s * 1000);
    struct pollfd pf[MAX_PROCS];
    for (;;) {
        int np = 0, idx[MAX_PROCS];
        for (int i = 0; i < n; i++)
            if (want_done ? !wp[i].done : !wp[i].ready) {
                pf[np] = (struct pollfd){.fd = wp[i].fd, .events = POLLIN};
                idx[np++] = i;
            }
        if (np == 0)
            return 0;
        uint64_t now = core_mono_ms();
        if (now >= deadline)
            return -1;
        int r = poll(pf, (nfds_t)np, (int)(deadline - now));
        if (r < 0 && errno != EINTR)
            return -1;
        for (int k = 0; k < np && r > 0; k++)
            if (pf[k].revents && read_worker(&wp[idx[k]]) != 0)
                return -1;
    }
}

/* Which workers a failed wait still lacks, and whether each is alive. */
static void say_missing(const worker_proc_t *wp, int n)
{
    for (int i = 0; i < n; i++) {
        if (wp[i].done)
            continue;
        int st = 0;
        pid_t r = waitpid(wp[i].pid, &st, WNOHANG);
        if (r == 0)
            fprintf(stderr, "chat-bench: worker %d (pid %d) is running, no report\n", i,
                    (int)wp[i].pid);
        else if (r > 0 && WIFSIGNALED(st))
            fprintf(stderr, "chat-bench: worker %d (pid %d) killed by signal %d\n", i,
                    (int)wp[i].pid, WTERMSIG(st));
        else if (r > 0)
            fprintf(stderr, "chat-bench: worker %d (pid %d) exited with %d\n", i, (int)wp[i].pid,
                    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
}

/* Writes one control byte to every worker. */
static void tell_workers(worker_proc_t *wp, int n, char b)
{
    for (int i = 0; i < n; i++)
        if (write(wp[i].fd, &b, 1) != 1)
            fprintf(stderr, "chat-bench: worker %d: %s\n", i, strerror(errno));
}

/* push: --rate POSTs a second for --duration, each carrying the time it
 * was sent (the workers' clocks are the same monotonic clock); the workers
 * hear of every accepted one ('p') and of the end ('e'). */
static void push_run(cli_t *cl, worker_proc_t *wp, int n)
{
    const bench_opts_t *o = &cl->o;
    uint64_t count = (uint64_t)(o->duration_s * o->rate);
    uint64_t t0 = core_mono_ms();
    count = count ? count : 1;
    for (uint64_t k = 0; k < count; k++) {
        uint64_t due = t0 + (uint64_t)((double)k * 1000.0 / o->rate), now = core_mono_ms();
        if (due > now)
            poll(NULL, 0, (int)(due - now));
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        unsigned long long sent = (unsigned long long)ts.tv_sec * 1000000u + (unsigned long long)ts.tv_nsec / 1000u;
        char body[160], err[256] = "";
        snprintf(body, sizeof body, "{\"message\":\"b 0 %llu %llu %x \",\"all\":true}",
                 (unsigned long long)k, sent, o->run_id);
        int status = bench_gateway_push(&cl->gw, cl->push_token, body, 10.0, err, sizeof err);
        if (status == 202) {
            cl->pushes++;
            tell_workers(wp, n, 'p');
        } else if (cl->push_errors++ == 0) {
            fprintf(stderr, "chat-bench: POST /push: %s%d\n", err[0] ? err : "status ", status);
        }
    }
    tell_workers(wp, n, 'e');
}

static int reap(worker_proc_t *wp, int n, int kill_them)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        if (kill_them)
            kill(wp[i].pid, SIGTERM);
        close(wp[i].fd);
        core_buf_free(&wp[i].in);
        int st = 0;
        if (waitpid(wp[i].pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad = 1;
    }
    return bad;
}

/* ------------------------------------------------------------------ RSS */

static long rss_kb(int pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static long rss_total(const cli_t *cl)
{
    long sum = 0;
    for (int i = 0; i < cl->npids; i++) {
        long kb = rss_kb(cl->pids[i]);
        if (kb < 0)
            return -1;
        sum += kb;
    }
    return sum;
}

/* ------------------------------------------------------------------ CPU */

/* utime+stime of every --pid and --cpu-pid in seconds; -1 when one cannot be read. */
static double cpu_total(const cli_t *cl)
{
    double a = bench_pids_cpu_s(cl->pids, cl->npids);
    double b = bench_pids_cpu_s(cl->cpu_pids, cl->ncpu_pids);
    return a < 0 || b < 0 ? -1 : a + b;
}

/* ------------------------------------------------------------------ report */

typedef struct samples {
    long rss0, rss1, rss2;
    double cpu0, cpu1; /* node CPU seconds at "go" and after the workers reported */
} samples_t;

static void add_cpu(cJSON *extra, const samples_t *s, uint64_t delivered)
{
    if (s->cpu0 < 0 || s->cpu1 < 0)
        return;
    double cpu = s->cpu1 - s->cpu0;
    cJSON_AddNumberToObject(extra, "cpu_s", (double)(long)(cpu * 100 + 0.5) / 100);
    double per = bench_cpu_per_million(cpu, delivered);
    if (per >= 0)
        cJSON_AddNumberToObject(extra, "cpu_s_per_million_deliveries",
                                (double)(long)(per * 100 + 0.5) / 100);
}

static void print_report(const cli_t *cl, bench_result_t *total, const samples_t *smp)
{
    long rss0 = smp->rss0, rss1 = smp->rss1, rss2 = smp->rss2;
    const bench_opts_t *o = &cl->o;
    if (o->scenario == BENCH_ROOM)
        total->expected = total->sent * total->receivers;
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddNumberToObject(extra, "procs", o->procs);
    cJSON_AddNumberToObject(extra, "nodes", o->nnodes);
    cJSON_AddNumberToObject(extra, "duration_s", o->duration_s);
    cJSON_AddNumberToObject(extra, "warmup_s", o->warmup_s);
    cJSON_AddNumberToObject(extra, "target_rate", o->rate);
    if (cl->npids) {
        cJSON_AddNumberToObject(extra, "rss_before_kb", (double)rss0);
        cJSON_AddNumberToObject(extra, "rss_ready_kb", (double)rss1);
        cJSON_AddNumberToObject(extra, "rss_after_kb", (double)rss2);
        /* per connection only means something when connections are all they hold */
        if (o->scenario == BENCH_IDLE && total->clients && rss1 >= 0 && rss0 >= 0)
            cJSON_AddNumberToObject(extra, "rss_per_conn_bytes",
                                    (double)(long)((double)(rss1 - rss0) * 1024.0 /
                                                   (double)total->clients));
        add_cpu(extra, smp, total->delivered);
    }
    cJSON *rep = bench_report_json(o->scenario_name, total, extra);
    printf("scenario %s: %llu clients on %d node(s), %d proc(s), %.1f s measured\n",
           o->scenario_name, (unsigned long long)total->clients, o->nnodes, o->procs,
           total->elapsed_s);
    printf("  sent %llu  delivered %llu  lost %llu  dup %llu  errors %llu (connect %llu)\n",
           (unsigned long long)total->sent, (unsigned long long)total->delivered,
           (unsigned long long)bench_result_lost(total), (unsigned long long)total->dup,
           (unsigned long long)total->errors, (unsigned long long)total->connect_errors);
    printf("  rate %.1f/s  latency p50 %.2f ms  p99 %.2f ms  max %.2f ms\n",
           cJSON_GetObjectItem(rep, "rate")->valuedouble,
           cJSON_GetObjectItem(rep, "p50_ms")->valuedouble,
           cJSON_GetObjectItem(rep, "p99_ms")->valuedouble,
           cJSON_GetObjectItem(rep, "max_ms")->valuedouble);
    if (total->dropped)
        printf("  reconnect: %llu dropped by the server, %llu logged in again; the latency\n"
               "  above is drop to logged in again\n",
               (unsigned long long)total->dropped, (unsigned long long)total->reconnected);
    const cJSON *per = cJSON_GetObjectItem(rep, "rss_per_conn_bytes");
    if (cl->npids)
        printf("  node RSS %ld kB before -> %ld kB set up -> %ld kB after", rss0, rss1, rss2);
    if (per)
        printf(" (%.0f bytes/conn)", per->valuedouble);
    if (cl->npids)
        printf("\n");
    const cJSON *cpu = cJSON_GetObjectItem(rep, "cpu_s");
    const cJSON *cpm = cJSON_GetObjectItem(rep, "cpu_s_per_million_deliveries");
    if (cpu)
        printf("  server CPU %.2f s (utime+stime of every --pid/--cpu-pid, go -> report)", cpu->valuedouble);
    if (cpm)
        printf(", %.2f s per million deliveries", cpm->valuedouble);
    if (cpu)
        printf("\n");
    printf("  bench workers' RSS %llu kB in total\n", (unsigned long long)total->self_rss_kb);
    char *line = cJSON_PrintUnformatted(rep);
    printf("%s\n", line);
    free(line);
    cJSON_Delete(rep);
    fflush(stdout);
}

static int run(cli_t *cl)
{
    bench_opts_t *o = &cl->o;
    int n = o->procs, rc = 1;
    worker_proc_t *wp = core_xcalloc((size_t)n, sizeof *wp);
    samples_t smp = {.rss0 = rss_total(cl), .rss1 = -1, .rss2 = -1, .cpu0 = -1, .cpu1 = -1};
    uint64_t t0 = core_mono_ms();
    if (spawn(o, wp, n) != 0) {
        fprintf(stderr, "chat-bench: cannot start workers: %s\n", strerror(errno));
        goto out_kill;
    }
    if (wait_workers(wp, n, 0, o->setup_timeout_s + PARENT_SLACK_S) != 0) {
        fprintf(stderr, "chat-bench: workers did not get ready\n");
        goto out_kill;
    }
    /* scripts wait for this line (bench/scale.sh): every client is set up */
    fprintf(stderr, "chat-bench: %d clients set up in %.1f s\n", o->clients,
            (double)(core_mono_ms() - t0) / 1000.0);
    smp.rss1 = rss_total(cl);
    smp.cpu0 = cpu_total(cl);
    tell_workers(wp, n, 'g');
    if (o->scenario == BENCH_PUSH)
        push_run(cl, wp, n);
    if (wait_workers(wp, n, 1, o->warmup_s + o->duration_s + o->grace_s + PARENT_SLACK_S) != 0) {
        fprintf(stderr, "chat-bench: workers did not report\n");
        say_missing(wp, n);
        goto out_kill;
    }
    smp.cpu1 = cpu_total(cl);
    smp.rss2 = rss_total(cl);
    bench_result_t *total = core_xmalloc(sizeof *total);
    bench_result_init(total);
    for (int i = 0; i < n; i++)
        bench_result_merge(total, &wp[i].res);
    total->sent += cl->pushes;
    total->errors += cl->push_errors;
    print_report(cl, total, &smp);
    /* a run where no client got in measured nothing: say so in the exit code */
    rc = reap(wp, n, 0) || total->clients == 0 || (o->scenario == BENCH_PUSH && !cl->pushes);
    free(total);
    free(wp);
    return rc;
out_kill:
    reap(wp, n, 1);
    free(wp);
    return 1;
}

int main(int argc, char **argv)
{
    cli_t *cl = core_xcalloc(1, sizeof *cl);
    char err[256] = "";
    int rc = parse_cli(cl, argc, argv, err, sizeof err);
    if (rc == 0) {
        int r = resolve_nodes(cl, err, sizeof err);
        rc = r == 0 ? 0 : r == -2 ? 2 : 3;
    }
    if (rc != 0) {
        fprintf(stderr, "chat-bench: %s\n%s", err, rc == 1 ? usage : "");
        rc = rc == 3 ? 1 : rc;
        free(cl);
        return rc;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    rc = run(cl);
    free(cl);
    return rc;
}
