/*
 * parallel.c - see parallel.h.
 */
#include <pthread.h>
#include "parallel.h"

typedef struct {
    void (*fn)(void *ctx, unsigned slice, size_t from, size_t to);
    void *ctx;
    unsigned slice;
    size_t from, to;
} slice_job;

static void *run_slice(void *arg)
{
    slice_job *j = arg;
    j->fn(j->ctx, j->slice, j->from, j->to);
    return NULL;
}

unsigned rc_parallel_slices(size_t n, unsigned threads,
                            void (*fn)(void *ctx, unsigned slice, size_t from, size_t to),
                            void *ctx)
{
    slice_job job[RC_PARALLEL_MAX];
    pthread_t th[RC_PARALLEL_MAX];
    int started[RC_PARALLEL_MAX] = {0};
    if (threads < 1)
        threads = 1;
    if (threads > RC_PARALLEL_MAX)
        threads = RC_PARALLEL_MAX;
    if (n < RC_PARALLEL_MIN_ITEMS * (size_t)threads) /* not worth a thread */
        threads = 1;
    size_t per = (n + threads - 1) / threads;
    for (unsigned t = 0; t < threads; t++) {
        job[t].fn = fn;
        job[t].ctx = ctx;
        job[t].slice = t;
        job[t].from = t * per < n ? t * per : n;
        job[t].to = (t + 1) * per < n ? (t + 1) * per : n;
    }
    for (unsigned t = 1; t < threads; t++)
        started[t] = pthread_create(&th[t], NULL, run_slice, &job[t]) == 0;
    run_slice(&job[0]);
    for (unsigned t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(th[t], NULL);
        else
            run_slice(&job[t]);
    }
    return threads;
}
