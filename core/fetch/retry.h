/*
 * Retrying a remote call: exponential backoff with full jitter (sleep a
 * uniform random time in [0, min(cap, base * 2^attempt)]), which spreads the
 * retries of many clients instead of having them return in waves. Used by
 * object fetch and meant for any other remote call (SageMaker). Any thread.
 */
#ifndef MMP_RETRY_H
#define MMP_RETRY_H

#include <stdint.h>

typedef struct mmp_retry_policy {
        int attempts;    /* total tries, the first included (>= 1) */
        int64_t base_ms; /* backoff scale */
        int64_t cap_ms;  /* no single sleep exceeds this */
} mmp_retry_policy_t;

#define MMP_RETRY_ATTEMPTS_DEFAULT 5
#define MMP_RETRY_BASE_MS_DEFAULT 100
#define MMP_RETRY_CAP_MS_DEFAULT 10000

/* How long to sleep after failed attempt number `attempt` (0 = the first
 * try failed): uniform in [0, min(cap_ms, base_ms * 2^attempt)]. The random
 * numbers come from a per-thread generator. */
int64_t mmp_retry_backoff_ms(const mmp_retry_policy_t *p, int attempt);

/* Sleeps ms milliseconds, in short slices so that a raised *cancel (may be
 * NULL) ends the sleep early. Returns 0, or -1 when cancelled. */
int mmp_retry_sleep_ms(int64_t ms, const volatile int *cancel);

/* Is an HTTP status worth another try (429 Too Many Requests, 5xx)? */
int mmp_retry_http_status(long status);

#endif
