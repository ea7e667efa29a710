/*
 * Inference endpoints: the "sagemaker" config section (region, runtime URL
 * or an override, credentials, a policy per endpoint) and the state every
 * lane shares per endpoint: calls in flight against the limit, the rate
 * limiter and the circuit breaker. Any thread.
 */
#ifndef MMP_ENDPOINT_H
#define MMP_ENDPOINT_H

#include <pthread.h>
#include <stdint.h>

#include "config/config.h"
#include "fetch/credentials.h"
#include "fetch/retry.h"

typedef enum mmp_breaker_state { MMP_BREAKER_CLOSED = 0, MMP_BREAKER_OPEN, MMP_BREAKER_HALF_OPEN } mmp_breaker_state_t;

typedef struct mmp_endpoint {
        char *name;          /* as handlers call it */
        char *endpoint_name; /* the SageMaker endpoint (default: name) */
        char *url;           /* POST target: BASE/endpoints/NAME/invocations */
        char *host;          /* Host header as sent, for signing */
        char *path;          /* canonical (encoded) path, for signing */
        /* policy */
        int max_in_flight;
        double rate_per_s;   /* 0: no limit */
        int64_t timeout_ms;
        mmp_retry_policy_t retry;
        int breaker_failures; /* consecutive failures that open it */
        int64_t breaker_open_ms;
        /* shared state */
        pthread_mutex_t lock;
        int in_flight, max_seen;
        double tokens;
        int64_t tokens_at_us;
        mmp_breaker_state_t breaker;
        int consecutive_failures;
        int64_t open_until_us;
        int probing;
        long calls, ok, failed, retries;
} mmp_endpoint_t;

typedef struct mmp_endpoints mmp_endpoints_t;

/* Reads the "sagemaker" section (may be absent: defaults). Errors name the key path. */
mmp_endpoints_t *mmp_endpoints_new(const mmp_config_t *cfg, char *errstr, size_t errstr_size);
void mmp_endpoints_free(mmp_endpoints_t *eps);
/* The endpoint handlers call `name` (created with the default policy the
 * first time an unconfigured name is used). Thread-safe. */
mmp_endpoint_t *mmp_endpoints_get(mmp_endpoints_t *eps, const char *name);
const char *mmp_endpoints_region(const mmp_endpoints_t *eps);
/* Current credentials (resolved once, re-read when their file changes).
 * Returns 0 and copies, or -1 with errstr. */
int mmp_endpoints_credentials(mmp_endpoints_t *eps, mmp_aws_credentials_t *out, char *errstr, size_t n);

/* May a call start now? Takes a slot, a token, and (half-open) the probe.
 * Returns 0 when it may; otherwise how many microseconds to wait before
 * asking again (*why says "limit", "rate", "open"). */
int64_t mmp_endpoint_acquire(mmp_endpoint_t *ep, int64_t now_us, int *is_probe, const char **why);
/* A call finished: frees its slot and feeds the breaker. success: the
 * endpoint answered well; counts: whether this outcome counts for the
 * breaker (a 400 is the caller's fault, not the endpoint's). */
void mmp_endpoint_release(mmp_endpoint_t *ep, int is_probe, int success, int counts);

#endif
