/* core/misc.c: clocks, signal setup, UTF-8 validation. */
#include "core/core.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t core_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t core_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct timespec core_mono_after(uint64_t usec)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(usec / 1000000u);
    ts.tv_nsec += (long)(usec % 1000000u) * 1000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int core_fd_has_input(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* Process-wide: libev binds a signal to one loop at a time. */
static ev_signal sig_int_w, sig_term_w;
static struct ev_loop *sig_loop;

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    CORE_INFO("signal %d: stopping", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

void core_install_signals(struct ev_loop *loop)
{
    signal(SIGPIPE, SIG_IGN);
    if (sig_loop) {
        if (sig_loop != loop)
            CORE_WARN("core_install_signals: already bound to another loop");
        return;
    }
    sig_loop = loop;
    ev_signal_init(&sig_int_w, on_stop_signal, SIGINT);
    ev_signal_init(&sig_term_w, on_stop_signal, SIGTERM);
    ev_signal_start(loop, &sig_int_w);
    ev_signal_start(loop, &sig_term_w);
    /* Signal watchers alone must not keep the loop running. */
    ev_unref(loop);
    ev_unref(loop);
}

/* Length of the multi-byte sequence at p (lead byte >= 0x80), 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];

    if (c >= 0xC2 && c <= 0xDF)
        return avail >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned char lo = c == 0xE0 ? 0xA0 : 0x80; /* overlong */
        unsigned char hi = c == 0xED ? 0x9F : 0xBF; /* surrogates */
        if (avail < 3 || p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80)
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned char lo = c == 0xF0 ? 0x90 : 0x80; /* overlong */
        unsigned char hi = c == 0xF4 ? 0x8F : 0xBF; /* > U+10FFFF */
        if (avail < 4 || p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 ||
            (p[3] & 0xC0) != 0x80)
            return 0;
        return 4;
    }
    return 0;
}

int core_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        uint64_t word;
        size_t n;

        /* Fast path: eight ASCII bytes at a time. */
        if (len - i >= 8) {
            memcpy(&word, p + i, 8);
            if ((word & 0x8080808080808080ull) == 0) {
                i += 8;
                continue;
            }
        }
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        n = utf8_seq(p + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

/* ------------------------------------------------------------------ numbers */

int core_parse_double(const char *s, double min, double max, double *out)
{
    char *end = NULL;
    double v;

    if (!s)
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= min && v <= max))
        return -1;
    *out = v;
    return 0;
}

long long core_parse_size(const char *s)
{
    char *end = NULL;
    long long v;
    int shift = 0;

    if (!s)
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (end == s || errno || v < 0)
        return -1;
    if (*end == 'K' || *end == 'k')
        shift = 10, end++;
    else if (*end == 'M' || *end == 'm')
        shift = 20, end++;
    else if (*end == 'G' || *end == 'g')
        shift = 30, end++;
    if (*end || v > (LLONG_MAX >> shift))
        return -1;
    return v << shift;
}

int core_copy_str(char *dst, size_t cap, const char *src)
{
    size_t len = strlen(src);
    if (len >= cap)
        return -1;
    memcpy(dst, src, len + 1);
    return 0;
}

void core_copy_trunc(char *dst, size_t cap, const char *src)
{
    if (cap == 0)
        return;
    size_t n = strnlen(src ? src : "", cap - 1);
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

static const char *flag_name(const struct option *opts, int opt)
{
    for (; opts->name; opts++)
        if (opts->val == opt)
            return opts->name;
    return "?";
}

int core_parse_flags(const char *prog, int argc, char **argv, const struct option *opts,
                     int help, int (*apply)(void *ud, int opt, const char *arg),
                     void (*usage)(FILE *f), void *ud)
{
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == help) {
            usage(stdout);
            return 1;
        }
        if (opt == '?' || apply(ud, opt, optarg) != 0) {
            if (opt != '?')
                fprintf(stderr, "%s: bad value '%s' for --%s\n", prog, optarg ? optarg : "",
                        flag_name(opts, opt));
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        return -1;
    }
    return 0;
}
