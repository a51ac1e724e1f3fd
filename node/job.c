/* Store jobs: a typed job struct runs on the store thread, finishes on the loop. */
#include "node/node.h"

void node_job_submit(node_t *n, node_job_t *job, store_work_fn work, core_task_fn done)
{
    job->node = n;
    store_submit(n->store, work, done, job);
}
