/*
 * The worker pool: N threads running blocking work (plugin operations,
 * file fetches) so lanes never block. Jobs are intrusive: embed an
 * mmp_job_t and set run(); run() owns the job from then on.
 */
#ifndef MMP_POOL_H
#define MMP_POOL_H

typedef struct mmp_job mmp_job_t;
struct mmp_job {
        void (*run)(mmp_job_t *job); /* on a worker thread; must finish or hand the job on */
        mmp_job_t *next;
};

typedef struct mmp_pool mmp_pool_t;

mmp_pool_t *mmp_pool_new(int nthreads);
/* Thread-safe; never blocks. */
void mmp_pool_submit(mmp_pool_t *pool, mmp_job_t *job);
int mmp_pool_size(const mmp_pool_t *pool);
/* Runs every queued job, then joins the threads. Accepts NULL. */
void mmp_pool_free(mmp_pool_t *pool);

#endif
