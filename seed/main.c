/* chat-seed: flags, open the store, seed, print what was done. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "seed/seed.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: chat-seed --store sqlite:PATH|mongodb://... --users N [options]\n"
            "\n"
            "  --store URI              the store the nodes use (same URI as chat-node --store)\n"
            "  --users N                users PREFIX1..PREFIXN (nickname = name)\n"
            "  --prefix P               user name prefix (default user)\n"
            "  --password-format F      password of user n: F with %%d replaced by n (default pass-%%d)\n"
            "  --friends K              each user befriends the next K users (ring; default 0)\n"
            "  --groups G               groups GROUP_PREFIX1..G (default 0)\n"
            "  --group-size S           members per group incl. the owner (default 5)\n"
            "  --group-prefix P         group id prefix (default group)\n"
            "  --rooms R                rooms ROOM_PREFIX1..R, created by user 1 (default 0)\n"
            "  --room-prefix P          room name prefix (default room)\n"
            "  --pwhash-ops N           argon2id opslimit of the stored hashes (default 1)\n"
            "  --pwhash-mem BYTES       argon2id memlimit, K/M suffix allowed (default 8M)\n"
            "  --help                   this text\n"
            "\n"
            "Idempotent: what exists is left alone and counted as existing.\n");
}

enum { OPT_STORE = 256, OPT_USERS, OPT_PREFIX, OPT_PWFMT, OPT_FRIENDS, OPT_GROUPS, OPT_GSIZE,
       OPT_GPREFIX, OPT_ROOMS, OPT_RPREFIX, OPT_OPS, OPT_MEM, OPT_HELP };

static const struct option long_opts[] = {
    {"store", required_argument, NULL, OPT_STORE},
    {"users", required_argument, NULL, OPT_USERS},
    {"prefix", required_argument, NULL, OPT_PREFIX},
    {"password-format", required_argument, NULL, OPT_PWFMT},
    {"friends", required_argument, NULL, OPT_FRIENDS},
    {"groups", required_argument, NULL, OPT_GROUPS},
    {"group-size", required_argument, NULL, OPT_GSIZE},
    {"group-prefix", required_argument, NULL, OPT_GPREFIX},
    {"rooms", required_argument, NULL, OPT_ROOMS},
    {"room-prefix", required_argument, NULL, OPT_RPREFIX},
    {"pwhash-ops", required_argument, NULL, OPT_OPS},
    {"pwhash-mem", required_argument, NULL, OPT_MEM},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static int parse_count(const char *s, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0)
        return -1;
    *out = v;
    return 0;
}

/* BYTES with an optional K, M or G suffix, at most 1 TiB. */
static int parse_size(const char *s, size_t *out)
{
    long long v = core_parse_size(s);

    if (v < 0 || v > (1ll << 40))
        return -1;
    *out = (size_t)v;
    return 0;
}

static int apply_opt(seed_opts_t *o, const char **uri, int c, const char *arg)
{
    long n;

    switch (c) {
    case OPT_STORE: *uri = arg; return 0;
    case OPT_PREFIX: o->prefix = arg; return 0;
    case OPT_PWFMT: o->password_format = arg; return 0;
    case OPT_GPREFIX: o->group_prefix = arg; return 0;
    case OPT_RPREFIX: o->room_prefix = arg; return 0;
    case OPT_MEM: return parse_size(arg, &o->pwhash_mem);
    case OPT_HELP: usage(stdout); return 1;
    }
    if (parse_count(arg, &n) < 0)
        return -1;
    switch (c) {
    case OPT_USERS: o->users = n; return 0;
    case OPT_FRIENDS: o->friends = n; return 0;
    case OPT_GROUPS: o->groups = n; return 0;
    case OPT_GSIZE: o->group_size = n; return 0;
    case OPT_ROOMS: o->rooms = n; return 0;
    case OPT_OPS: o->pwhash_ops = (unsigned long)n; return 0;
    }
    return -1;
}

static int parse_args(seed_opts_t *o, const char **uri, int argc, char **argv)
{
    int c, rc;

    seed_opts_default(o);
    *uri = NULL;
    while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        if ((rc = apply_opt(o, uri, c, optarg)) != 0) {
            if (rc < 0 && c != '?')
                fprintf(stderr, "chat-seed: bad value '%s'\n", optarg ? optarg : "");
            if (rc < 0)
                usage(stderr);
            return rc;
        }
    }
    if (optind < argc || !*uri) {
        fprintf(stderr, "chat-seed: need --store URI and --users N (see --help)\n");
        return -1;
    }
    return 0;
}

static void report(const seed_counts_t *c)
{
    printf("users: created %ld, existing %ld\n", c->users_created, c->users_existing);
    printf("friendships: created %ld, existing %ld\n", c->friendships_created,
           c->friendships_existing);
    printf("groups: created %ld, existing %ld\n", c->groups_created, c->groups_existing);
    printf("group members: added %ld, existing %ld\n", c->members_added, c->members_existing);
    printf("rooms: created %ld, existing %ld\n", c->rooms_created, c->rooms_existing);
}

int main(int argc, char **argv)
{
    seed_opts_t o;
    seed_counts_t counts;
    const char *uri;
    char err[256];
    store_t *st;
    struct ev_loop *loop;
    int rc = parse_args(&o, &uri, argc, argv);

    if (rc != 0)
        return rc > 0 ? 0 : 64;
    if (seed_opts_check(&o, err, sizeof err) < 0) {
        fprintf(stderr, "chat-seed: %s\n", err);
        return 64;
    }
    st = store_open(uri, err, sizeof err);
    if (!st) {
        fprintf(stderr, "chat-seed: cannot open store: %s\n", err);
        return 1;
    }
    loop = EV_DEFAULT;
    if (store_start(st, loop) != 0) {
        fprintf(stderr, "chat-seed: cannot start the store thread\n");
        store_close(st);
        return 1;
    }
    o.progress = 1;
    rc = seed_run(st, loop, &o, &counts, err, sizeof err);
    report(&counts);
    if (rc < 0)
        fprintf(stderr, "chat-seed: %s\n", err);
    store_close(st);
    return rc < 0 ? 1 : 0;
}
