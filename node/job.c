/* Store jobs: a typed job struct runs on the store thread, finishes on the loop. */
#include "node/node.h"

/* On the loop: whatever the work set, an item rolled back (its own store
 * error, another item's in its transaction, a failed commit) is an error:
 * nothing of it was stored. */
static void job_done(void *arg)
{
    node_job_t *job = arg;
    if (store_done_status(job->node->store) != STORE_OK)
        job->rc = STORE_ERR;
    job->done(job);
}

static void submit(node_t *n, node_job_t *job, store_work_fn work, core_task_fn done,
                   store_kind_t kind)
{
    job->node = n;
    job->done = done;
    if (!n->store) { /* shutting down (Redis answering what it held): fail, and free it */
        job->rc = STORE_ERR;
        done(job);
        return;
    }
    store_submit_kind(n->store, kind, work, job_done, job);
}

void node_job_submit(node_t *n, node_job_t *job, store_work_fn work, core_task_fn done)
{
    submit(n, job, work, done, STORE_ITEM_WRITE);
}

void node_job_submit_lazy(node_t *n, node_job_t *job, store_work_fn work, core_task_fn done)
{
    submit(n, job, work, done, STORE_ITEM_LAZY);
}

void node_job_submit_read(node_t *n, node_job_t *job, store_work_fn work, core_task_fn done)
{
    submit(n, job, work, done, STORE_ITEM_READ);
}

int node_job_conv_msgid(node_t *n, store_t *st, const char *conv, uint64_t ts,
                        char out[PROTO_MSGID_LEN + 1])
{
    char last[STORE_MSGID_MAX];
    int rc = store_conv_last(st, conv, last);
    if (rc != STORE_OK && rc != STORE_NOTFOUND)
        return rc;
    proto_msgid_next_after(&n->msgids, ts, rc == STORE_OK ? last : NULL, out);
    return STORE_OK;
}
