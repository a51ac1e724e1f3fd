/* core/tls.c: TLS contexts (OpenSSL) for the connections of core/conn.c.
 *
 * Modern versions only (TLS 1.2 and 1.3, OpenSSL's default cipher lists,
 * no renegotiation, no compression). A client verifies the peer's chain
 * and its name (DNS name or IP address) against a CA file or the system's
 * store. The per-connection glue lives in conn.c; this file owns the
 * contexts and turns OpenSSL's error queue into one readable line.
 */
#include "core_int.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct core_tls {
    SSL_CTX *ctx;
    int server;
};

/* The reason of the oldest queued OpenSSL error (the root cause), then
 * the queue is cleared so it cannot leak into another connection's report. */
static void tls_queue_reason(char *out, size_t cap, const char *fallback)
{
    unsigned long e = ERR_peek_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;

    core_copy_trunc(out, cap, reason ? reason : fallback);
    ERR_clear_error();
}

static void ctx_fail(char *err, size_t errlen, const char *what, const char *file)
{
    char reason[160];

    tls_queue_reason(reason, sizeof(reason), "unknown error");
    if (err)
        snprintf(err, errlen, "%s%s%s: %s", what, file ? " " : "", file ? file : "", reason);
}

static SSL_CTX *tls_ctx_new(const SSL_METHOD *method)
{
    SSL_CTX *ctx = SSL_CTX_new(method);

    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 /* WebSocket and HTTP frame their own data: a cut
                                  * stream is seen there, and a missing close_notify
                                  * is what most peers send */
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Idle connections give their record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

core_tls_t *core_tls_server_new(const char *cert_file, const char *key_file, char *err,
                                size_t errlen)
{
    core_tls_t *t;
    SSL_CTX *ctx;

    if (!cert_file || !cert_file[0] || !key_file || !key_file[0]) {
        if (err)
            snprintf(err, errlen, "TLS needs both a certificate and a key file");
        return NULL;
    }
    ctx = tls_ctx_new(TLS_server_method());
    if (!ctx) {
        ctx_fail(err, errlen, "TLS context", NULL);
        return NULL;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        ctx_fail(err, errlen, "TLS certificate", cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        ctx_fail(err, errlen, "TLS key", key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ctx_fail(err, errlen, "TLS key does not match the certificate:", key_file);
        goto fail;
    }
    /* Resumption by stateless tickets only: a server-side session cache
     * would keep every client's session in memory. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    t = core_xcalloc(1, sizeof(*t));
    t->ctx = ctx;
    t->server = 1;
    return t;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

core_tls_t *core_tls_client_new(const char *ca_file, char *err, size_t errlen)
{
    core_tls_t *t;
    SSL_CTX *ctx = tls_ctx_new(TLS_client_method());
    int ok;

    if (!ctx) {
        ctx_fail(err, errlen, "TLS context", NULL);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (ca_file && ca_file[0])
        ok = SSL_CTX_load_verify_locations(ctx, ca_file, NULL);
    else
        ok = SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        ctx_fail(err, errlen, "TLS CA file", ca_file && ca_file[0] ? ca_file : "(system)");
        SSL_CTX_free(ctx);
        return NULL;
    }
    t = core_xcalloc(1, sizeof(*t));
    t->ctx = ctx;
    return t;
}

void core_tls_free(core_tls_t *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx); /* live SSLs hold their own reference */
    free(t);
}

int core_tls_is_server(const core_tls_t *t)
{
    return t && t->server;
}

/* The name a client checks: an IP address as such, else a DNS name (also
 * sent as SNI). Brackets of "[v6]" are dropped. */
static int tls_set_peer_name(SSL *ssl, const char *host)
{
    char name[256];
    size_t n = strlen(host);
    unsigned char addr[sizeof(struct in6_addr)];

    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof(name))
        return -1;
    memcpy(name, host, n);
    name[n] = '\0';
    if (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1 ? 0 : -1;
    if (SSL_set_tlsext_host_name(ssl, name) != 1)
        return -1;
    return SSL_set1_host(ssl, name) == 1 ? 0 : -1;
}

static SSL *tls_ssl_new(core_tls_t *t, int fd, const char *host, int mem_out)
{
    SSL *ssl = SSL_new(t->ctx);
    BIO *rbio, *wbio;

    if (!ssl)
        return NULL;
    rbio = BIO_new_socket(fd, BIO_NOCLOSE);
    wbio = mem_out ? BIO_new(BIO_s_mem()) : BIO_new_socket(fd, BIO_NOCLOSE);
    if (!rbio || !wbio) {
        BIO_free(rbio);
        BIO_free(wbio);
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_bio(ssl, rbio, wbio);
    if (t->server) {
        SSL_set_accept_state(ssl);
    } else {
        if (!host || tls_set_peer_name(ssl, host) < 0) {
            SSL_free(ssl);
            return NULL;
        }
        SSL_set_connect_state(ssl);
    }
    return ssl;
}

SSL *core__tls_ssl_new(core_tls_t *t, int fd, const char *host)
{
    /* Reads come straight from the socket; writes go to memory and leave
     * through the connection's own coalesced, bounded output. */
    return tls_ssl_new(t, fd, host, 1);
}

struct ssl_st *core_tls_ssl_on_fd(core_tls_t *t, int fd, const char *host)
{
    SSL *ssl = t ? tls_ssl_new(t, fd, host, 0) : NULL;

    if (ssl) /* a caller's own output buffer may move between retries */
        SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ssl;
}

void core_tls_reason(SSL *ssl, int rc, char *out, size_t cap)
{
    int e = SSL_get_error(ssl, rc);
    long verify = SSL_get_verify_result(ssl);

    if (e == SSL_ERROR_SSL && verify != X509_V_OK) {
        snprintf(out, cap, "certificate verify failed: %s",
                 X509_verify_cert_error_string(verify));
        ERR_clear_error();
        return;
    }
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        snprintf(out, cap, "connection lost during TLS");
        return;
    }
    tls_queue_reason(out, cap, "TLS error");
}
