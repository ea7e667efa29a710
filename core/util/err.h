/*
 * Error codes and the failure object that travels with an event.
 * Any thread.
 */
#ifndef MMP_ERR_H
#define MMP_ERR_H

#include <stddef.h>

typedef enum mmp_err {
        MMP_OK = 0,
        MMP_ERR_INVALID = -1,     /* bad argument or bad input */
        MMP_ERR_NOMEM = -2,
        MMP_ERR_IO = -3,          /* file system or socket */
        MMP_ERR_CONFIG = -4,
        MMP_ERR_PLUGIN = -5,
        MMP_ERR_LUA = -6,         /* handler or pipeline script */
        MMP_ERR_TIMEOUT = -7,     /* deadline passed */
        MMP_ERR_NOT_FOUND = -8,
        MMP_ERR_UNSUPPORTED = -9, /* not supported in this build */
        MMP_ERR_SINK = -10,       /* destination refused or failed */
        MMP_ERR_MEMORY_CAP = -11, /* a lane's Lua memory cap */
        MMP_ERR_BAD_INPUT = -12,  /* corrupt or unusable media/event */
        MMP_ERR_SHUTDOWN = -13,
} mmp_err_t;

const char *mmp_err2str(mmp_err_t err);
const char *mmp_err2name(mmp_err_t err);

/* Where in the life of an event a failure happened (DESIGN.md). */
typedef enum mmp_stage {
        MMP_STAGE_RECEIVE = 0,
        MMP_STAGE_FETCH,
        MMP_STAGE_ROUTE,
        MMP_STAGE_HANDLE,
        MMP_STAGE_STORE,
} mmp_stage_t;

const char *mmp_stage2str(mmp_stage_t stage);

/* A failure attached to an event. Owned by whoever holds the event. */
typedef struct mmp_failure {
        mmp_err_t code;
        mmp_stage_t stage;
        int retriable;
        int attempts;
        char *pipeline;  /* NULL when not pipeline-specific */
        char *message;   /* one line: what and where */
        char *traceback; /* Lua traceback or NULL */
} mmp_failure_t;

/* message is formatted; pipeline and traceback are copied (may be NULL). */
mmp_failure_t *mmp_failure_new(mmp_err_t code, mmp_stage_t stage, int retriable, const char *pipeline,
                               const char *traceback, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
void mmp_failure_free(mmp_failure_t *f);

#endif
