/*
 * Backoff with full jitter and an interruptible sleep. Any thread: the
 * random generator's state is per thread.
 */
#include "fetch/retry.h"

#include <pthread.h>
#include <time.h>

#include "util/time.h"

/* splitmix64: small, fast and good enough to spread sleeps; not for secrets. */
static uint64_t next_random(void) {
        static __thread uint64_t state;
        uint64_t z;
        if (!state) {
                /* Distinct per thread and per process start. */
                state = (uint64_t)mmp_now_us() ^ ((uint64_t)(uintptr_t)&state << 17) ^
                        (uint64_t)pthread_self();
                if (!state)
                        state = 0x9e3779b97f4a7c15ull;
        }
        z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}

int64_t mmp_retry_backoff_ms(const mmp_retry_policy_t *p, int attempt) {
        int64_t ceiling = p->base_ms > 0 ? p->base_ms : 0;
        /* base * 2^attempt, saturating at the cap (no overflow for any attempt). */
        for (int i = 0; i < attempt && ceiling < p->cap_ms; i++)
                ceiling *= 2;
        if (ceiling > p->cap_ms)
                ceiling = p->cap_ms;
        if (ceiling <= 0)
                return 0;
        return (int64_t)(next_random() % (uint64_t)(ceiling + 1));
}

int mmp_retry_sleep_ms(int64_t ms, const volatile int *cancel) {
        int64_t until = mmp_now_ms() + ms, left;
        while ((left = until - mmp_now_ms()) > 0) {
                if (cancel && *cancel)
                        return -1;
                int64_t slice = left < 50 ? left : 50;
                struct timespec ts = {slice / 1000, (long)(slice % 1000) * 1000000L};
                nanosleep(&ts, NULL);
        }
        return cancel && *cancel ? -1 : 0;
}

int mmp_retry_http_status(long status) {
        return status == 429 || (status >= 500 && status <= 599);
}
