/* core_int.h: helpers shared by files of core/ only. */
#ifndef CHAT_CORE_INT_H
#define CHAT_CORE_INT_H

#include <sys/socket.h>

#include "core/core.h"

/* Fills ss from a numeric IPv4/IPv6 host (brackets allowed), "localhost",
 * or "" (any, when passive). 0 / -1. */
int core__sockaddr(const char *host, int port, int passive, struct sockaddr_storage *ss,
                   socklen_t *sslen);
/* "ip:port" or "[ip6]:port". */
void core__format_peer(const struct sockaddr *sa, char *out, size_t outlen);

/* TLS (tls.c): an SSL reading fd directly and writing to a memory BIO
 * (drained by conn.c); a client checks host (DNS name or IP). NULL on error. */
typedef struct ssl_st SSL;
SSL *core__tls_ssl_new(core_tls_t *t, int fd, const char *host);

#endif
