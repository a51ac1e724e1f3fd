/* Password hashing (argon2id, deliberately slow) on a worker pool, and tokens. */
#include <string.h>
#include <sodium.h>

#include "node/node.h"

struct node_auth {
    core_pool_t *pool;
    unsigned long ops;
    size_t mem;
};

typedef struct auth_task {
    node_auth_t *auth;
    int verify;
    char password[PROTO_PASSWORD_MAX + 1];
    char hash[crypto_pwhash_STRBYTES];
    int ok;
    node_auth_cb cb;
    void *ud;
} auth_task_t;

node_auth_t *node_auth_new(struct ev_loop *loop, int threads, unsigned long ops, size_t mem)
{
    if (sodium_init() < 0)
        return NULL;
    node_auth_t *a = core_xcalloc(1, sizeof *a);
    a->pool = core_pool_new(loop, threads > 0 ? threads : 1);
    a->ops = ops;
    a->mem = mem;
    return a;
}

void node_auth_free(node_auth_t *a)
{
    if (!a)
        return;
    core_pool_free(a->pool);
    free(a);
}

/* Runs on a worker thread. */
static void auth_work(void *arg)
{
    auth_task_t *t = arg;
    if (t->verify) {
        t->ok = crypto_pwhash_str_verify(t->hash, t->password, strlen(t->password)) == 0;
    } else {
        t->ok = crypto_pwhash_str_alg(t->hash, t->password, strlen(t->password), t->auth->ops,
                                      t->auth->mem, crypto_pwhash_ALG_ARGON2ID13) == 0;
    }
    sodium_memzero(t->password, sizeof t->password);
}

static void auth_done(void *arg)
{
    auth_task_t *t = arg;
    t->cb(t->ok, t->hash, t->ud);
    sodium_memzero(t, sizeof *t);
    free(t);
}

static void auth_submit(node_auth_t *a, int verify, const char *password, const char *hash,
                        node_auth_cb cb, void *ud)
{
    auth_task_t *t = core_xcalloc(1, sizeof *t);
    t->auth = a;
    t->verify = verify;
    core_copy_trunc(t->password, sizeof t->password, password);
    if (hash)
        core_copy_trunc(t->hash, sizeof t->hash, hash);
    t->cb = cb;
    t->ud = ud;
    core_pool_submit(a->pool, auth_work, auth_done, t);
}

void node_auth_hash(node_auth_t *a, const char *password, node_auth_cb cb, void *ud)
{
    auth_submit(a, 0, password, NULL, cb, ud);
}

void node_auth_verify(node_auth_t *a, const char *password, const char *hash, node_auth_cb cb,
                      void *ud)
{
    auth_submit(a, 1, password, hash, cb, ud);
}

void node_auth_token_digest(const char *token, char digest[65])
{
    unsigned char d[32];
    crypto_generichash(d, sizeof d, (const unsigned char *)token, strlen(token), NULL, 0);
    sodium_bin2hex(digest, 65, d, sizeof d);
}

void node_auth_token_new(char token[PROTO_TOKEN_LEN + 1], char digest[65])
{
    unsigned char raw[PROTO_TOKEN_LEN / 2];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(token, PROTO_TOKEN_LEN + 1, raw, sizeof raw);
    node_auth_token_digest(token, digest);
}
