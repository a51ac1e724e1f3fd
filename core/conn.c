/* core/conn.c: non-blocking TCP connections with bounded buffers.
 *
 * Writes are coalesced: core_conn_write appends and marks the conn dirty;
 * an ev_prepare watcher per loop flushes each dirty conn with one send()
 * per loop iteration and arms EV_WRITE only for leftovers. Closing is
 * deferred: a finished conn goes on the loop's close list and that same
 * prepare watcher runs on_close and frees it outside user callbacks.
 *
 * TLS (core_conn_start_tls) sits inside that: OpenSSL reads the socket
 * itself and writes records to a memory BIO that is drained into the same
 * coalesced output, so flushing, caps and closing stay as they are.
 */
#include "core_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_PER_EVENT (64 * 1024)
#define DEFAULT_MAX_IN (1024 * 1024)
#define DEFAULT_MAX_OUT (4 * 1024 * 1024)
#define CLOSE_TIMEOUT_S 2.0
#define IDLE_BUF_KEEP 4096 /* larger empty buffers are released, unless the kind keeps more */
#define TLS_RECORD_MAX 16384 /* a whole record's plaintext per SSL_read */

typedef enum {
    CONN_CONNECTING,
    CONN_OPEN,
    CONN_FLUSHING, /* core_conn_close: sending what is queued */
    CONN_LINGER,   /* output sent and shut down: draining input until EOF */
    CONN_CLOSED,   /* fd closed, waiting for on_close + free */
} conn_state_t;

typedef struct conn_loop conn_loop_t;

/* What connections made the same way share: an idle connection then keeps a
 * pointer instead of its own copy (interned, never freed; few exist). */
typedef struct conn_kind {
    core_conn_limits_t limits;
    core_conn_cbs_t cbs;
    struct conn_kind *next;
} conn_kind_t;

/* Field order packs it into a 256-byte allocation: a node holds one per
 * client (docs/BENCHMARKS.md, memory per connection). */
struct core_conn {
    conn_loop_t *cl;
    int fd;
    int connect_err;     /* connect failed synchronously; reported from prepare */
    unsigned char state; /* a conn_state_t */
    unsigned char dirty;
    unsigned char io_events; /* what io watches: EV_READ | EV_WRITE */
    ev_io io; /* one watcher for both ways: few connections ever wait to write */
    ev_timer *close_timer; /* made at the first close: most connections never need it */
    core_buf_t in;
    core_buf_t out;
    size_t out_pos; /* bytes of out already sent */
    const conn_kind_t *kind;
    void *ud;
    core_conn_t *dirty_prev, *dirty_next;
    core_conn_t *close_next;
    struct conn_tls *tls; /* NULL: plain TCP */
    char peer[56];        /* "[IPv6]:port" fits */
};

typedef struct conn_tls {
    SSL *ssl;
    int ready;       /* handshake done */
    int failed;      /* no more TLS calls (alerts may still be flushed) */
    core_buf_t held; /* plaintext written before the handshake ended */
    char *err;       /* why TLS failed; allocated only then */
} conn_tls_t;

/* Per-loop state, found through a small registry keyed by loop. */
struct conn_loop {
    struct ev_loop *loop;
    ev_prepare prepare;
    size_t nconns;
    core_conn_t *dirty_head;
    core_conn_t *close_head, *close_tail;
    char *scratch; /* READ_PER_EVENT + 1: reads of conns with nothing pending */
    conn_loop_t *next;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static conn_loop_t *registry;
static conn_kind_t *kinds; /* under registry_lock */

static void conn_loop_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents);
static void close_timer_start(core_conn_t *c);

static conn_loop_t *conn_loop_get(struct ev_loop *loop)
{
    conn_loop_t *cl;

    pthread_mutex_lock(&registry_lock);
    for (cl = registry; cl; cl = cl->next)
        if (cl->loop == loop)
            break;
    if (!cl) {
        cl = core_xcalloc(1, sizeof(*cl));
        cl->loop = loop;
        ev_prepare_init(&cl->prepare, conn_loop_on_prepare);
        cl->prepare.data = cl;
        cl->next = registry;
        registry = cl;
    }
    cl->nconns++;
    pthread_mutex_unlock(&registry_lock);
    return cl;
}

static void conn_loop_release(conn_loop_t *cl)
{
    conn_loop_t **pp;

    cl->nconns--;
    if (cl->nconns > 0)
        return;
    ev_prepare_stop(cl->loop, &cl->prepare);
    pthread_mutex_lock(&registry_lock);
    for (pp = &registry; *pp; pp = &(*pp)->next) {
        if (*pp == cl) {
            *pp = cl->next;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    free(cl->scratch);
    free(cl);
}

/* The prepare watcher runs only while there is work, which also keeps
 * ev_run alive until queued output and on_close calls are done. */
static void conn_loop_wake(conn_loop_t *cl)
{
    if (!ev_is_active(&cl->prepare))
        ev_prepare_start(cl->loop, &cl->prepare);
}

static void dirty_add(core_conn_t *c)
{
    conn_loop_t *cl = c->cl;

    if (c->dirty)
        return;
    c->dirty = 1;
    c->dirty_prev = NULL;
    c->dirty_next = cl->dirty_head;
    if (cl->dirty_head)
        cl->dirty_head->dirty_prev = c;
    cl->dirty_head = c;
    conn_loop_wake(cl);
}

static void dirty_remove(core_conn_t *c)
{
    if (!c->dirty)
        return;
    if (c->dirty_prev)
        c->dirty_prev->dirty_next = c->dirty_next;
    else
        c->cl->dirty_head = c->dirty_next;
    if (c->dirty_next)
        c->dirty_next->dirty_prev = c->dirty_prev;
    c->dirty = 0;
    c->dirty_prev = c->dirty_next = NULL;
}

/* Sets what the watcher waits for; it runs only while that is not nothing.
 * ev_io_modify, not ev_io_set: the fd is the same, and ev_io_set would make
 * libev re-add it to epoll (EEXIST, then a MOD) on every change. */
static void io_watch(core_conn_t *c, int events)
{
    if (events == c->io_events)
        return;
    ev_io_stop(c->cl->loop, &c->io);
    c->io_events = (unsigned char)events;
    if (events) {
        ev_io_modify(&c->io, events);
        ev_io_start(c->cl->loop, &c->io);
    }
}

static void io_read(core_conn_t *c, int on)
{
    io_watch(c, on ? c->io_events | EV_READ : c->io_events & ~EV_READ);
}

static void io_write(core_conn_t *c, int on)
{
    io_watch(c, on ? c->io_events | EV_WRITE : c->io_events & ~EV_WRITE);
}

static int io_writing(const core_conn_t *c)
{
    return c->io_events & EV_WRITE;
}

static void buf_trim_idle(const core_conn_t *c, core_buf_t *b)
{
    if (b->len == 0 && b->cap > c->kind->limits.keep_buf)
        core_buf_free(b);
}

size_t core_conn_buffer_bytes(const core_conn_t *c)
{
    return c->in.cap + c->out.cap + (c->tls ? c->tls->held.cap : 0);
}

void core_conn_trim(core_conn_t *c)
{
    if (c->out.len == c->out_pos) {
        core_buf_free(&c->out);
        c->out_pos = 0;
    }
    if (c->in.len == 0)
        core_buf_free(&c->in);
}

/* The loop's buffer for reads of conns with nothing pending (READ_PER_EVENT
 * and a NUL): whole frames are consumed from it with no allocation. */
static char *conn_scratch(conn_loop_t *cl)
{
    if (!cl->scratch)
        cl->scratch = core_xmalloc(READ_PER_EVENT + 1);
    return cl->scratch;
}

/* Room for extra more bytes (and the NUL), exactly: a connection's buffers
 * are sized to what they hold (core_buf_reserve doubles, for printing). */
static void buf_reserve_exact(core_buf_t *b, size_t extra)
{
    if (b->cap < b->len + extra + 1) {
        b->cap = b->len + extra + 1;
        b->data = core_xrealloc(b->data, b->cap);
    }
}

/* Ends the connection now: no more I/O; on_close runs from the prepare. */
static void conn_finish(core_conn_t *c)
{
    conn_loop_t *cl = c->cl;

    if (c->state == CONN_CLOSED)
        return;
    c->state = CONN_CLOSED;
    io_watch(c, 0);
    if (c->close_timer)
        ev_timer_stop(c->cl->loop, c->close_timer);
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    dirty_remove(c);
    c->close_next = NULL;
    if (cl->close_tail)
        cl->close_tail->close_next = c;
    else
        cl->close_head = c;
    cl->close_tail = c;
    conn_loop_wake(cl);
}

static void conn_destroy(core_conn_t *c)
{
    conn_loop_t *cl = c->cl;

    if (c->kind->cbs.on_close)
        c->kind->cbs.on_close(c, c->ud);
    dirty_remove(c);
    core_buf_free(&c->in);
    core_buf_free(&c->out);
    if (c->tls) {
        SSL_free(c->tls->ssl); /* the socket BIO does not own the fd */
        core_buf_free(&c->tls->held);
        free(c->tls->err);
        free(c->tls);
    }
    free(c->close_timer);
    free(c);
    conn_loop_release(cl);
}

static size_t out_pending(const core_conn_t *c)
{
    return c->out.len - c->out_pos;
}

/* Output is fully sent after close: half-close and drain input until the
 * peer closes, so unread input does not turn our close into a RST that
 * could destroy the data just sent. */
static void conn_start_linger(core_conn_t *c)
{
    c->state = CONN_LINGER;
    if (shutdown(c->fd, SHUT_WR) < 0) {
        conn_finish(c);
        return;
    }
    /* c->in stays: on_read may still be reading it when it closes. */
    io_read(c, 1);
}

/* One send() of everything queued. */
static void conn_flush(core_conn_t *c)
{
    ssize_t n;

    if (c->state != CONN_OPEN && c->state != CONN_FLUSHING)
        return;
    if (out_pending(c) > 0) {
        do {
            n = send(c->fd, c->out.data + c->out_pos, out_pending(c), MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            CORE_DEBUG("conn %s: send: %s", c->peer, strerror(errno));
            conn_finish(c);
            return;
        }
        if (n > 0)
            c->out_pos += (size_t)n;
    }
    if (out_pending(c) > 0) {
        /* Compact lazily so appends do not grow the buffer forever. */
        if (c->out_pos > c->out.len / 2) {
            core_buf_consume(&c->out, c->out_pos);
            c->out_pos = 0;
        }
        io_write(c, 1);
        return;
    }
    io_write(c, 0);
    core_buf_reset(&c->out);
    c->out_pos = 0;
    buf_trim_idle(c, &c->out);
    if (c->state == CONN_FLUSHING)
        conn_start_linger(c);
}

static void conn_run_dirty(core_conn_t *c)
{
    if (c->state == CONN_CONNECTING && c->connect_err) {
        if (c->kind->cbs.on_connect)
            c->kind->cbs.on_connect(c, c->connect_err, c->ud);
        conn_finish(c);
        return;
    }
    conn_flush(c);
}

static void conn_loop_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    conn_loop_t *cl = w->data;

    (void)loop;
    (void)revents;
    /* Pin the loop state: an on_close may drop the last conn. */
    cl->nconns++;
    while (cl->close_head || cl->dirty_head) {
        while (cl->close_head) {
            core_conn_t *c = cl->close_head;
            cl->close_head = c->close_next;
            if (!cl->close_head)
                cl->close_tail = NULL;
            conn_destroy(c);
        }
        while (cl->dirty_head) {
            core_conn_t *c = cl->dirty_head;
            dirty_remove(c);
            conn_run_dirty(c);
        }
    }
    ev_prepare_stop(cl->loop, &cl->prepare);
    conn_loop_release(cl);
}

static void conn_on_read_overflow(core_conn_t *c)
{
    CORE_WARN("conn %s: input over %zu bytes unconsumed, closing", c->peer, c->kind->limits.max_in);
    core_conn_abort(c);
}

/* Hands all unconsumed input to on_read: c->in, or the loop's scratch
 * when c->in was empty (most reads: whole frames, consumed at once, with no
 * allocation). What on_read leaves is kept in c->in. */
static void conn_deliver_from(core_conn_t *c, const char *data, size_t len)
{
    long used = c->kind->cbs.on_read(c, data, len, c->ud);

    if (used < 0) {
        core_conn_close(c);
        return;
    }
    if ((size_t)used > len) {
        CORE_ERROR("conn %s: on_read consumed %ld of %zu bytes", c->peer, used, len);
        core_conn_abort(c);
        return;
    }
    if (c->state == CONN_CLOSED)
        return;
    if (data == c->in.data) {
        core_buf_consume(&c->in, (size_t)used);
        buf_trim_idle(c, &c->in);
    } else if ((size_t)used < len && c->state == CONN_OPEN) {
        core_buf_append(&c->in, data + used, len - (size_t)used);
    }
    if (c->state == CONN_OPEN && c->in.len > c->kind->limits.max_in)
        conn_on_read_overflow(c);
}

static void conn_deliver(core_conn_t *c)
{
    conn_deliver_from(c, c->in.data, c->in.len);
}

static void conn_on_eof(core_conn_t *c)
{
    if (c->state == CONN_OPEN && out_pending(c) > 0) {
        io_read(c, 0);
        c->state = CONN_FLUSHING;
        close_timer_start(c);
        if (!io_writing(c))
            dirty_add(c);
        return;
    }
    conn_finish(c);
}

static void conn_linger_read(core_conn_t *c)
{
    char scratch[4096];
    ssize_t n;

    do {
        n = read(c->fd, scratch, sizeof(scratch));
    } while (n < 0 && errno == EINTR);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
        conn_finish(c);
}

/* One read of up to READ_PER_EVENT bytes, handed on. 1 when the socket
 * may hold more (a full slice was read and the conn is still open). */
static int conn_read_slice(core_conn_t *c)
{
    ssize_t n;

    int direct = c->in.len == 0;
    char *dst;

    if (direct) {
        dst = conn_scratch(c->cl);
    } else {
        buf_reserve_exact(&c->in, READ_PER_EVENT); /* one read takes a full slice */
        dst = c->in.data + c->in.len;
    }
    do {
        n = read(c->fd, dst, READ_PER_EVENT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        CORE_DEBUG("conn %s: read: %s", c->peer, strerror(errno));
        conn_finish(c);
        return 0;
    }
    if (n == 0) {
        conn_on_eof(c);
        return 0;
    }
    dst[n] = '\0'; /* input is NUL-terminated for on_read's convenience */
    if (direct) {
        conn_deliver_from(c, dst, (size_t)n);
    } else {
        c->in.len += (size_t)n;
        conn_deliver(c);
    }
    return n == READ_PER_EVENT && c->state == CONN_OPEN;
}

/* ------------------------------------------------------------------ TLS */

/* Moves the records OpenSSL wrote into the connection's output. */
static void tls_pump_out(core_conn_t *c)
{
    BIO *wbio = SSL_get_wbio(c->tls->ssl);
    size_t pending = BIO_ctrl_pending(wbio);
    int n;

    if (pending == 0)
        return;
    buf_reserve_exact(&c->out, pending);
    n = BIO_read(wbio, c->out.data + c->out.len, (int)pending);
    if (n <= 0)
        return;
    c->out.len += (size_t)n;
    c->out.data[c->out.len] = '\0';
    if ((c->state == CONN_OPEN || c->state == CONN_FLUSHING) && !io_writing(c))
        dirty_add(c);
}

/* Records why, sends the alert OpenSSL queued, and closes. */
static void tls_fail(core_conn_t *c, int rc)
{
    char why[160];

    core_tls_reason(c->tls->ssl, rc, why, sizeof(why));
    free(c->tls->err);
    c->tls->err = core_xstrdup(why);
    CORE_DEBUG("conn %s: TLS: %s", c->peer, why);
    c->tls->failed = 1;
    tls_pump_out(c);
    if (c->state == CONN_OPEN)
        core_conn_close(c);
    else
        conn_finish(c);
}

static int tls_write(core_conn_t *c, const void *data, size_t len)
{
    int rc;

    if (len == 0)
        return 0;
    if (!c->tls->ready) {
        core_buf_append(&c->tls->held, data, len);
        return 0;
    }
    rc = SSL_write(c->tls->ssl, data, (int)len); /* len <= max_out: fits an int */
    if (rc <= 0) {
        tls_fail(c, rc);
        return -1;
    }
    tls_pump_out(c);
    return 0;
}

/* 1 when the handshake is done, 0 when it needs more input, -1 failed. */
static int tls_handshake(core_conn_t *c)
{
    int rc = SSL_do_handshake(c->tls->ssl);

    if (rc != 1) {
        if (SSL_get_error(c->tls->ssl, rc) != SSL_ERROR_WANT_READ) {
            tls_fail(c, rc);
            return -1;
        }
        tls_pump_out(c);
        return 0;
    }
    c->tls->ready = 1;
    tls_pump_out(c);
    if (c->tls->held.len > 0) {
        core_buf_t held = c->tls->held;

        core_buf_init(&c->tls->held);
        rc = tls_write(c, held.data, held.len);
        core_buf_free(&held);
        if (rc < 0)
            return -1;
    }
    return 1;
}

/* Reads records until the socket is drained or the per-event budget is
 * used, then hands the plaintext on; like plain reads, into the loop's
 * scratch when nothing is pending. A record is read whole (16 KiB of
 * room) and OpenSSL reads no further ahead (read-ahead measured no
 * cheaper: BENCHMARKS section 10), so nothing stays buffered inside
 * OpenSSL unseen by the loop: what is left waits in the socket. */
static void tls_on_readable(core_conn_t *c)
{
    int direct = c->in.len == 0;
    size_t budget = direct ? READ_PER_EVENT : (size_t)READ_PER_EVENT * c->kind->limits.read_slices;
    size_t got = 0;
    int rc = 0, err = SSL_ERROR_WANT_READ;
    char *dst;

    if (!c->tls->ready && tls_handshake(c) <= 0)
        return;
    while (got + TLS_RECORD_MAX <= budget) {
        if (direct) {
            dst = conn_scratch(c->cl) + got;
        } else {
            buf_reserve_exact(&c->in, TLS_RECORD_MAX);
            dst = c->in.data + c->in.len;
        }
        rc = SSL_read(c->tls->ssl, dst, TLS_RECORD_MAX);
        if (rc <= 0) {
            err = SSL_get_error(c->tls->ssl, rc);
            break;
        }
        got += (size_t)rc;
        if (!direct)
            c->in.len += (size_t)rc;
    }
    tls_pump_out(c); /* key updates, session tickets */
    if (got > 0 && direct) {
        c->cl->scratch[got] = '\0';
        conn_deliver_from(c, c->cl->scratch, got);
    } else if (got > 0) {
        c->in.data[c->in.len] = '\0';
        conn_deliver(c);
    }
    if (c->state != CONN_OPEN || err == SSL_ERROR_WANT_READ)
        return;
    if (err == SSL_ERROR_ZERO_RETURN)
        conn_on_eof(c);
    else
        tls_fail(c, rc);
}

int core_conn_start_tls(core_conn_t *c, core_tls_t *t, const char *host)
{
    if (!c || !t || c->tls || out_pending(c) > 0 || c->in.len > 0)
        return -1;
    if (core_tls_is_server(t) ? c->state != CONN_OPEN : c->state != CONN_CONNECTING)
        return -1;
    SSL *ssl = core__tls_ssl_new(t, c->fd, host);
    if (!ssl)
        return -1;
    c->tls = core_xcalloc(1, sizeof *c->tls);
    c->tls->ssl = ssl;
    return 0;
}

const char *core_conn_tls_error(const core_conn_t *c)
{
    return c->tls && c->tls->err ? c->tls->err : "";
}

static void conn_on_readable(core_conn_t *c)
{
    if (c->state == CONN_LINGER) {
        conn_linger_read(c);
        return;
    }
    if (c->tls) {
        if (c->state == CONN_OPEN)
            tls_on_readable(c);
        return;
    }
    for (unsigned i = 0; i < c->kind->limits.read_slices && c->state == CONN_OPEN; i++)
        if (!conn_read_slice(c))
            return;
}

static void conn_connected(core_conn_t *c)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        if (c->kind->cbs.on_connect)
            c->kind->cbs.on_connect(c, err, c->ud);
        conn_finish(c);
        return;
    }
    c->state = CONN_OPEN;
    io_watch(c, EV_READ);
    if (c->kind->cbs.on_connect)
        c->kind->cbs.on_connect(c, 0, c->ud);
    if (c->state == CONN_OPEN && c->tls && tls_handshake(c) < 0)
        return; /* the client hello goes out with the flush below */
    if (c->state == CONN_OPEN && out_pending(c) > 0)
        dirty_add(c);
}

static void conn_on_writable(core_conn_t *c)
{
    if (c->state == CONN_CONNECTING) {
        conn_connected(c);
        return;
    }
    /* A flush from here counts as this iteration's write for the conn. */
    dirty_remove(c);
    conn_flush(c);
}

/* Writing first: a connect's result, or room for output that waited. */
static void conn_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    core_conn_t *c = w->data;

    (void)loop;
    if ((revents & EV_WRITE) && io_writing(c))
        conn_on_writable(c);
    if ((revents & EV_READ) && (c->io_events & EV_READ))
        conn_on_readable(c);
}

static void conn_on_close_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    core_conn_t *c = w->data;

    (void)loop;
    (void)revents;
    CORE_DEBUG("conn %s: close timed out, %zu bytes dropped", c->peer, out_pending(c));
    conn_finish(c);
}

static void close_timer_start(core_conn_t *c)
{
    if (!c->close_timer) {
        c->close_timer = core_xmalloc(sizeof *c->close_timer);
        ev_timer_init(c->close_timer, conn_on_close_timeout, CLOSE_TIMEOUT_S, 0.);
        c->close_timer->data = c;
    }
    ev_timer_start(c->cl->loop, c->close_timer);
}

/* The shared copy of limits (defaults filled in) and callbacks. */
static const conn_kind_t *conn_kind_get(const core_conn_limits_t *limits,
                                        const core_conn_cbs_t *cbs)
{
    conn_kind_t want, *k;

    memset(&want, 0, sizeof want); /* padding too: kinds compare with memcmp */
    want.limits.max_in = limits && limits->max_in ? limits->max_in : DEFAULT_MAX_IN;
    want.limits.max_out = limits && limits->max_out ? limits->max_out : DEFAULT_MAX_OUT;
    want.limits.read_slices = limits && limits->read_slices ? limits->read_slices : 1;
    want.limits.keep_buf = limits && limits->keep_buf ? limits->keep_buf : IDLE_BUF_KEEP;
    want.cbs = *cbs;
    pthread_mutex_lock(&registry_lock);
    for (k = kinds; k; k = k->next)
        if (memcmp(&k->limits, &want.limits, sizeof want.limits) == 0 &&
            memcmp(&k->cbs, &want.cbs, sizeof want.cbs) == 0)
            break;
    if (!k) {
        k = core_xmalloc(sizeof *k);
        *k = want;
        k->next = kinds;
        kinds = k;
    }
    pthread_mutex_unlock(&registry_lock);
    return k;
}

static core_conn_t *conn_new(struct ev_loop *loop, int fd, const char *peer,
                             const core_conn_limits_t *limits, const core_conn_cbs_t *cbs, void *ud)
{
    core_conn_t *c = core_xcalloc(1, sizeof(*c));

    c->cl = conn_loop_get(loop);
    c->fd = fd;
    c->kind = conn_kind_get(limits, cbs);
    c->ud = ud;
    core_copy_trunc(c->peer, sizeof(c->peer), peer ? peer : "?");
    core_buf_init(&c->in);
    core_buf_init(&c->out);
    ev_io_init(&c->io, conn_on_io, fd, EV_READ);
    c->io.data = c;
    return c;
}

core_conn_t *core_conn_adopt(struct ev_loop *loop, int fd, const char *peer,
                             const core_conn_limits_t *limits, const core_conn_cbs_t *cbs,
                             void *ud)
{
    core_conn_t *c;

    if (fd < 0 || !cbs || !cbs->on_read)
        return NULL;
    c = conn_new(loop, fd, peer, limits, cbs, ud);
    c->state = CONN_OPEN;
    io_watch(c, EV_READ);
    return c;
}

/* Binds fd to src (port chosen by connect(), per 4-tuple); 0 / -1. */
static int bind_source(int fd, int family, const char *src)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    int one = 1;

    if (core__sockaddr(src, 0, 0, &ss, &sslen) < 0 || ss.ss_family != family)
        return -1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    return bind(fd, (struct sockaddr *)&ss, sslen);
}

core_conn_t *core_conn_connect(struct ev_loop *loop, const char *host, int port,
                               const core_conn_limits_t *limits, const core_conn_cbs_t *cbs,
                               void *ud)
{
    return core_conn_connect_from(loop, NULL, host, port, limits, cbs, ud);
}

core_conn_t *core_conn_connect_from(struct ev_loop *loop, const char *src, const char *host,
                                    int port, const core_conn_limits_t *limits,
                                    const core_conn_cbs_t *cbs, void *ud)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    core_conn_t *c;
    char peer[64];
    int fd, one = 1;

    if (!cbs || !cbs->on_read || !host || core__sockaddr(host, port, 0, &ss, &sslen) < 0)
        return NULL;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    if (src && bind_source(fd, ss.ss_family, src) < 0) {
        close(fd);
        return NULL;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    core__format_peer((struct sockaddr *)&ss, peer, sizeof(peer));
    c = conn_new(loop, fd, peer, limits, cbs, ud);
    c->state = CONN_CONNECTING;
    /* Writability reports the connect result, including an instant one. */
    if (connect(fd, (struct sockaddr *)&ss, sslen) < 0 && errno != EINPROGRESS) {
        c->connect_err = errno;
        dirty_add(c);
        return c;
    }
    io_watch(c, EV_WRITE);
    return c;
}

int core_conn_write(core_conn_t *c, const void *data, size_t len)
{
    size_t queued = out_pending(c) + (c->tls ? c->tls->held.len : 0);

    if (c->state != CONN_OPEN && c->state != CONN_CONNECTING)
        return -1;
    if (len > c->kind->limits.max_out || queued > c->kind->limits.max_out - len) {
        CORE_WARN("conn %s: output over %zu bytes queued, closing", c->peer, c->kind->limits.max_out);
        core_conn_abort(c);
        return -1;
    }
    if (c->tls)
        return tls_write(c, data, len);
    core_buf_append(&c->out, data, len);
    if (c->state == CONN_OPEN && !io_writing(c))
        dirty_add(c);
    return 0;
}

void core_conn_close(core_conn_t *c)
{
    if (c->state == CONN_CONNECTING) {
        conn_finish(c);
        return;
    }
    if (c->state != CONN_OPEN)
        return;
    if (c->tls && c->tls->ready && !c->tls->failed) {
        SSL_shutdown(c->tls->ssl); /* queues our close_notify */
        ERR_clear_error();
        tls_pump_out(c);
    }
    c->state = CONN_FLUSHING;
    io_read(c, 0);
    close_timer_start(c);
    if (out_pending(c) == 0)
        conn_start_linger(c);
    else if (!io_writing(c))
        dirty_add(c);
}

void core_conn_abort(core_conn_t *c)
{
    conn_finish(c);
}

size_t core_conn_out_pending(const core_conn_t *c)
{
    return out_pending(c);
}

void core_conn_set_ud(core_conn_t *c, void *ud)
{
    c->ud = ud;
}

void *core_conn_ud(const core_conn_t *c)
{
    return c->ud;
}

const char *core_conn_peer(const core_conn_t *c)
{
    return c->peer;
}

int core_conn_has_input(const core_conn_t *c)
{
    return core_fd_has_input(c->fd);
}

/* glibc adds 8 bytes to an allocation and rounds it up to 16. */
_Static_assert(sizeof(struct core_conn) + 8 <= 256,
               "core_conn outgrew its 256-byte allocation");
