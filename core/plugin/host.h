/*
 * The host side of the plugin ABI: the API table handed to plugins and the
 * per-call context (deadline, cancellation, error slot, temp files).
 * Calls run on worker-pool threads.
 */
#ifndef MMP_HOST_H
#define MMP_HOST_H

#include <pthread.h>
#include <stdint.h>

#include "mmpipe/plugin.h"

/* Temp files of one event: removed when the event ends. Thread-safe. */
typedef struct mmp_tmplist {
        pthread_mutex_t lock;
        char **paths;
        size_t n, cap;
} mmp_tmplist_t;

void mmp_tmplist_init(mmp_tmplist_t *t);
int mmp_tmplist_add(mmp_tmplist_t *t, const char *path);
/* Unlinks every file and frees the list. */
void mmp_tmplist_clear(mmp_tmplist_t *t);

struct mmp_call {
        const char *plugin;         /* borrowed, for messages */
        const char *op;
        int64_t deadline_us;        /* monotonic; 0 = none */
        const volatile int *cancel; /* set by the lane when the event is abandoned */
        mmp_tmplist_t *tmp;         /* the event's temp files, may be NULL */
        int failed;
        int retriable;
        char errmsg[1024];
};

void mmp_call_init(mmp_call_t *call, const char *plugin, const char *op, int64_t deadline_us,
                   const volatile int *cancel, mmp_tmplist_t *tmp);

/* Marks the call as stopped because its event was abandoned. */
void mmp_call_fail_cancelled(mmp_call_t *call);

/* The single host API table (static, lives for the process). */
const mmp_host_api_t *mmp_host_api(void);

#endif
