/* Store jobs: a typed job struct runs on the store thread, finishes on the loop. */
#include "node/node.h"

typedef enum { JOB_WRITE, JOB_WRITE_LAZY, JOB_READ } job_kind_t;

static void submit(node_t *n, node_job_t *job, store_work_fn work, core_task_fn done,
                   job_kind_t kind)
{
    job->node = n;
    if (!n->store) { /* shutting down (Redis answering what it held): fail, and free it */
        job->rc = STORE_ERR;
        done(job);
        return;
    }
    if (kind == JOB_READ)
        store_submit_read(n->store, work, done, job);
    else if (kind == JOB_WRITE_LAZY)
        store_submit_lazy(n->store, work, done, job);
    else
        store_submit(n->store, work, done, job);
}

void node_job_submit(node_t *n, node_job_t *job, store_work_fn work, core_task_fn done)
{
    submit(n, job, work, done, JOB_WRITE);
}

void node_job_submit_lazy(node_t *n, node_job_t *job, store_work_fn work, core_task_fn done)
{
    submit(n, job, work, done, JOB_WRITE_LAZY);
}

void node_job_submit_read(node_t *n, node_job_t *job, store_work_fn work, core_task_fn done)
{
    submit(n, job, work, done, JOB_READ);
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
