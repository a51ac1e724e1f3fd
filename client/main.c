/* chat-client: flags, then the batch or the interactive driver. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>

#include "client/client.h"
#include "core/core.h"

typedef struct main_opts {
    client_opts_t client;
    int batch;
    const char *script;
    const char *history;
    const char *ca_file;
    double wait_s;
} main_opts_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: chat-client (--gateway http[s]://HOST:PORT | --node ws[s]://HOST:PORT/ws)\n"
            "                   [--ca-file PEM] [--user U --password P [--register [--nickname N]]]\n"
            "                   [--batch] [--script FILE] [--wait SEC]\n"
            "\n"
            "  --gateway URL      ask GET URL/servers for a node (and again on every reconnect)\n"
            "  --node URL         connect to this node directly\n"
            "  --ca-file PEM      trust these CAs for https/wss (default: the system's store);\n"
            "                     certificates are always verified, names included\n"
            "  --user U           log in as U once connected (reconnects use the resume token)\n"
            "  --password P       U's password (or set CHAT_PASSWORD)\n"
            "  --register         register U first (an existing account is fine)\n"
            "  --nickname N       nickname for --register\n"
            "  --batch            non-interactive even on a terminal (default when stdin is not one)\n"
            "  --script FILE      batch commands from FILE instead of stdin\n"
            "  --wait SEC         batch: keep listening SEC seconds after the last command\n"
            "  --history FILE     interactive history (default $HOME/.chat_history)\n"
            "  --log-level L      debug, info, warn, error (stderr; default warn)\n"
            "  --help             this text\n"
            "\n"
            "Batch mode prints every server frame as one JSON line, and its own lines as\n"
            "{\"client\":\"connecting|connected|ready|retry|closed|error|expect|help\",...}.\n"
            "Exit status: 0 ok, 1 a command failed, 2 no connection/login, 3 /expect timed out.\n"
            "\n%s",
            client_cmd_help());
}

enum { OPT_GATEWAY = 256, OPT_NODE, OPT_USER, OPT_PASSWORD, OPT_REGISTER, OPT_NICK, OPT_BATCH,
       OPT_SCRIPT, OPT_WAIT, OPT_HISTORY, OPT_LOG, OPT_HELP, OPT_CA };

static const struct option long_opts[] = {
    {"gateway", required_argument, NULL, OPT_GATEWAY},
    {"node", required_argument, NULL, OPT_NODE},
    {"user", required_argument, NULL, OPT_USER},
    {"password", required_argument, NULL, OPT_PASSWORD},
    {"register", no_argument, NULL, OPT_REGISTER},
    {"nickname", required_argument, NULL, OPT_NICK},
    {"batch", no_argument, NULL, OPT_BATCH},
    {"script", required_argument, NULL, OPT_SCRIPT},
    {"wait", required_argument, NULL, OPT_WAIT},
    {"history", required_argument, NULL, OPT_HISTORY},
    {"ca-file", required_argument, NULL, OPT_CA},
    {"log-level", required_argument, NULL, OPT_LOG},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* One flag; 0 ok, 1 stop with success (--help), -1 bad. */
static int apply_opt(main_opts_t *o, int c, const char *arg)
{
    int level;

    switch (c) {
    case OPT_GATEWAY: o->client.gateway = arg; return 0;
    case OPT_NODE: o->client.node = arg; return 0;
    case OPT_USER: o->client.user = arg; return 0;
    case OPT_PASSWORD: o->client.password = arg; return 0;
    case OPT_REGISTER: o->client.do_register = 1; return 0;
    case OPT_NICK: o->client.nickname = arg; return 0;
    case OPT_BATCH: o->batch = 1; return 0;
    case OPT_SCRIPT: o->script = arg; o->batch = 1; return 0;
    case OPT_HISTORY: o->history = arg; return 0;
    case OPT_CA: o->ca_file = arg; return 0;
    case OPT_HELP: usage(stdout); return 1;
    case OPT_WAIT:
        if (core_parse_double(arg, 0, 86400, &o->wait_s) == 0)
            return 0;
        fprintf(stderr, "chat-client: bad --wait '%s'\n", arg);
        return -1;
    case OPT_LOG:
        if ((level = core_log_parse_level(arg)) >= 0) {
            core_log_set_level((core_log_level_t)level);
            return 0;
        }
        fprintf(stderr, "chat-client: bad --log-level '%s'\n", arg);
        return -1;
    }
    usage(stderr);
    return -1;
}

static int parse_args(main_opts_t *o, int argc, char **argv)
{
    int c, rc;

    memset(o, 0, sizeof *o);
    core_log_set_level(CORE_LOG_WARN); /* stderr stays quiet unless asked */
    while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1)
        if ((rc = apply_opt(o, c, optarg)) != 0)
            return rc;
    if (optind < argc) {
        fprintf(stderr, "chat-client: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!o->client.password)
        o->client.password = getenv("CHAT_PASSWORD");
    if (!o->client.gateway && !o->client.node) {
        fprintf(stderr, "chat-client: need --gateway URL or --node URL (see --help)\n");
        return -1;
    }
    if (o->client.user && !o->client.password) {
        fprintf(stderr, "chat-client: --user needs --password (or CHAT_PASSWORD)\n");
        return -1;
    }
    return 0;
}

static int run_batch(struct ev_loop *loop, const main_opts_t *o)
{
    int fd = 0, rc;

    if (o->script && (fd = open(o->script, O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "chat-client: cannot open %s\n", o->script);
        return 2;
    }
    rc = client_batch_run(loop, &o->client, fd, o->wait_s);
    if (fd != 0)
        close(fd);
    return rc;
}

static int run_tty(struct ev_loop *loop, const main_opts_t *o)
{
    char path[4096];
    const char *home = getenv("HOME");
    const char *history = o->history;

    if (!history && home && *home &&
        snprintf(path, sizeof path, "%s/.chat_history", home) < (int)sizeof path)
        history = path;
    return client_tty_run(loop, &o->client, history);
}

int main(int argc, char **argv)
{
    main_opts_t o;
    struct ev_loop *loop;
    char err[256];
    int rc = parse_args(&o, argc, argv);

    if (rc != 0)
        return rc > 0 ? 0 : 64;
    core_log_set_tag("client");
    if (!(o.client.tls = core_tls_client_new(o.ca_file, err, sizeof err))) {
        fprintf(stderr, "chat-client: %s\n", err);
        return 64;
    }
    loop = ev_default_loop(0);
    core_install_signals(loop);
    if (o.batch || !isatty(0))
        rc = run_batch(loop, &o);
    else
        rc = run_tty(loop, &o);
    ev_loop_destroy(loop);
    core_tls_free(o.client.tls);
    return rc;
}
