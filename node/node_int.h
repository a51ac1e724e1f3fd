/* node/node_int.h: what node/ shares inside the folder only.
 *
 * The cluster link's transport (node/link.c): TCP, framing, the handshake
 * that proves the cluster secret both ways, and after it every frame sealed
 * with keys of that link (proto_cf_seal). cluster.c routes over it and
 * never sees a key. */
#ifndef NODE_INT_H
#define NODE_INT_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "proto/proto.h"

typedef struct node_link node_link_t;

/* What the handshake checks, owned by the caller and read when needed: a
 * follower's WELCOME must name the leader and the epoch ZooKeeper names at
 * that moment; a leader welcomes with the epoch it leads in. */
typedef struct node_link_auth {
    const char *secret;
    const char *self;    /* this node's id */
    const char *leader;  /* follower side: the leader's id */
    const int64_t *epoch;
} node_link_auth_t;

typedef struct node_link_cbs {
    /* The handshake is done: frames from here on are sealed. */
    void (*up)(node_link_t *l, void *ud);
    /* One MSG payload (JSON, not NUL-terminated). -1 closes the link. */
    int (*msg)(node_link_t *l, const char *json, size_t len, void *ud);
    /* The link is gone (closed by either side, timed out, refused a frame);
     * l must not be used after this returns. */
    void (*gone)(node_link_t *l, void *ud);
} node_link_cbs_t;

/* Follower side: connects to the leader and sends HELLO. NULL on failure. */
node_link_t *node_link_connect(struct ev_loop *loop, const char *host, int port,
                               const node_link_auth_t *auth, const node_link_cbs_t *cbs, void *ud);
/* Leader side: takes an accepted socket and waits for HELLO. NULL on failure
 * (fd is closed). */
node_link_t *node_link_accept(struct ev_loop *loop, int fd, const char *peer,
                              const node_link_auth_t *auth, const node_link_cbs_t *cbs, void *ud);
/* Sends one MSG payload, sealed. -1 when the link is not up, the payload is
 * over PROTO_CF_BOX_MAX, or the output is full. */
int node_link_send(node_link_t *l, const char *json, size_t len);
/* Sends each MSG frame of a buffer of plain frames (queued while no link
 * was up), sealed one by one. */
void node_link_send_frames(node_link_t *l, const char *frames, size_t len);
/* Closes with a logged reason; calls gone. */
void node_link_close(node_link_t *l, const char *why);
/* Timeouts (handshake, a silent peer) and the follower's pings. */
void node_link_check(node_link_t *l, uint64_t now_ms);
int node_link_is_up(const node_link_t *l);
/* The other node's id: from HELLO (leader side) or the leader's (follower
 * side, once up); "" before. */
const char *node_link_peer(const node_link_t *l);
/* The AEAD the link's handshake agreed on (once it is up). */
proto_cf_aead_t node_link_aead(const node_link_t *l);
const char *node_link_addr(const node_link_t *l); /* "ip:port" */

#endif
