/*
 * Worker pool: a FIFO of jobs under one mutex, N threads draining it.
 * Submitters are the source and lane threads; workers run the jobs.
 */
#include "pool.h"

#include <pthread.h>
#include <stdlib.h>

struct mmp_pool {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        mmp_job_t *head, *tail;
        int stopping;
        int idle; /* workers asleep on cond */
        int n;
        pthread_t *threads;
};

static void *worker_main(void *arg) {
        mmp_pool_t *pool = arg;
        for (;;) {
                mmp_job_t *job;
                pthread_mutex_lock(&pool->lock);
                while (!pool->head && !pool->stopping) {
                        pool->idle++;
                        pthread_cond_wait(&pool->cond, &pool->lock);
                        pool->idle--;
                }
                job = pool->head;
                if (job) {
                        pool->head = job->next;
                        if (!pool->head)
                                pool->tail = NULL;
                }
                pthread_mutex_unlock(&pool->lock);
                if (!job)
                        return NULL; /* stopping and drained */
                job->next = NULL;
                job->run(job);
        }
}

mmp_pool_t *mmp_pool_new(int nthreads) {
        mmp_pool_t *pool = calloc(1, sizeof(*pool));
        if (!pool)
                return NULL;
        pthread_mutex_init(&pool->lock, NULL);
        pthread_cond_init(&pool->cond, NULL);
        pool->threads = calloc(nthreads, sizeof(*pool->threads));
        for (int i = 0; i < nthreads; i++) {
                if (pthread_create(&pool->threads[i], NULL, worker_main, pool))
                        break;
                pool->n++;
        }
        if (!pool->n) {
                mmp_pool_free(pool);
                return NULL;
        }
        return pool;
}

void mmp_pool_submit(mmp_pool_t *pool, mmp_job_t *job) {
        job->next = NULL;
        pthread_mutex_lock(&pool->lock);
        if (pool->tail)
                pool->tail->next = job;
        else
                pool->head = job;
        pool->tail = job;
        if (pool->idle) /* busy workers come back for it by themselves */
                pthread_cond_signal(&pool->cond);
        pthread_mutex_unlock(&pool->lock);
}

int mmp_pool_size(const mmp_pool_t *pool) {
        return pool->n;
}

void mmp_pool_free(mmp_pool_t *pool) {
        if (!pool)
                return;
        pthread_mutex_lock(&pool->lock);
        pool->stopping = 1;
        pthread_cond_broadcast(&pool->cond);
        pthread_mutex_unlock(&pool->lock);
        for (int i = 0; i < pool->n; i++)
                pthread_join(pool->threads[i], NULL);
        pthread_mutex_destroy(&pool->lock);
        pthread_cond_destroy(&pool->cond);
        free(pool->threads);
        free(pool);
}
