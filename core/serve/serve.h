/*
 * `mmpipe serve`'s HTTP side: one plugin operation behind SageMaker's
 * bring-your-own-container contract (GET /ping, POST /invocations),
 * served by libmicrohttpd on its own thread pool. Optional feature
 * (MMP_WITH_SERVE): without libmicrohttpd, mmp_serve_new fails with
 * "not supported in this build".
 */
#ifndef MMP_SERVE_H
#define MMP_SERVE_H

#include <stddef.h>

#include "plugin/loader.h"

/* SageMaker's limit on a real-time invocation's payload. */
#define MMP_SERVE_MAX_BODY ((size_t)6 * 1024 * 1024)
/* SageMaker gives the container 60 s to answer an invocation. */
#define MMP_SERVE_DEFAULT_TIMEOUT_MS 60000

typedef struct mmp_serve_opts {
        const char *host;  /* address to bind: numeric IPv4/IPv6 or a name; NULL = 0.0.0.0 */
        int port;          /* 0 = any free port (see mmp_serve_port) */
        int workers;       /* invocations run at once, one per pool thread; <= 0 = one per core */
        size_t max_body;   /* 0 = MMP_SERVE_MAX_BODY */
        int timeout_ms;    /* an invocation's deadline, passed to the plugin; 0 = default, < 0 = none */
} mmp_serve_opts_t;

typedef struct mmp_serve mmp_serve_t;

/* Starts serving `op` of the loaded plugin `inst` (both borrowed: they must
 * outlive the server). The listening socket is bound before this returns.
 * Returns NULL with a one-line reason in errstr.
 * @locality main thread */
mmp_serve_t *mmp_serve_new(const mmp_plugin_inst_t *inst, const mmp_plugin_op_t *op, const mmp_serve_opts_t *opts,
                           char *errstr, size_t errstr_size);

/* The port actually bound (useful with port 0). */
int mmp_serve_port(const mmp_serve_t *s);

/* Stops accepting, lets the invocations in flight finish, closes every
 * connection and frees the server. Accepts NULL. @locality main thread */
void mmp_serve_free(mmp_serve_t *s);

/* "yes (libmicrohttpd X.Y.Z)" or "no (not supported in this build: ...)",
 * for `mmpipe version`. Static string. */
const char *mmp_serve_feature(void);

#endif
