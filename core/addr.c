/* core/addr.c: sets of address prefixes ("127.0.0.0/8,::1") and the
 * address part of a peer string: who is exempt from per-address limits. */
#include "core/core.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int prefix_parse(const char *text, core_prefix_t *p)
{
    char buf[64], *slash;

    if (snprintf(buf, sizeof buf, "%s", text) >= (int)sizeof buf)
        return -1;
    slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    memset(p, 0, sizeof *p);
    if (inet_pton(AF_INET, buf, p->bytes) == 1)
        p->family = AF_INET, p->bits = 32;
    else if (inet_pton(AF_INET6, buf, p->bytes) == 1)
        p->family = AF_INET6, p->bits = 128;
    else
        return -1;
    if (slash) {
        char *end = NULL;
        long bits = strtol(slash + 1, &end, 10);
        if (!slash[1] || !end || *end || bits < 0 || (unsigned long)bits > p->bits)
            return -1;
        p->bits = (unsigned)bits;
    }
    return 0;
}

int core_addrset_parse(core_addrset_t *set, const char *list, char *err, size_t errlen)
{
    char buf[512], *save = NULL;

    memset(set, 0, sizeof *set);
    if (!list || !list[0] || strcmp(list, "none") == 0)
        return 0;
    if (snprintf(buf, sizeof buf, "%s", list) >= (int)sizeof buf) {
        snprintf(err, errlen, "address list too long");
        return -1;
    }
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (set->count == CORE_ADDRSET_MAX || prefix_parse(tok, &set->p[set->count]) != 0) {
            snprintf(err, errlen, "'%s' is not an address or prefix (at most %d)", tok,
                     CORE_ADDRSET_MAX);
            memset(set, 0, sizeof *set);
            return -1;
        }
        set->count++;
    }
    return 0;
}

static int prefix_has(const core_prefix_t *p, int family, const unsigned char *addr)
{
    unsigned full = p->bits / 8, rest = p->bits % 8;
    unsigned char mask = (unsigned char)(0xFF << (8 - rest));

    if (p->family != family || memcmp(p->bytes, addr, full) != 0)
        return 0;
    return rest == 0 || (p->bytes[full] & mask) == (addr[full] & mask);
}

int core_addrset_has(const core_addrset_t *set, const char *ip)
{
    unsigned char a[16];
    int family = inet_pton(AF_INET, ip, a) == 1    ? AF_INET
                 : inet_pton(AF_INET6, ip, a) == 1 ? AF_INET6
                                                   : 0;

    for (size_t i = 0; set && family && i < set->count; i++)
        if (prefix_has(&set->p[i], family, a))
            return 1;
    return 0;
}

void core_peer_ip(const char *peer, char *ip, size_t iplen)
{
    const char *start = peer[0] == '[' ? peer + 1 : peer;
    const char *end = peer[0] == '[' ? strchr(start, ']') : strrchr(start, ':');
    size_t n = end ? (size_t)(end - start) : strlen(start);

    snprintf(ip, iplen, "%.*s", (int)n, start);
}
