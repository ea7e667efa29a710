/*
 * A test plugin: "slow" has operations that sleep, echo and fail on
 * demand, so tests can show lanes staying busy while a call waits.
 * Worker-pool threads.
 */
#include <errno.h>
#include <time.h>

#include "mmpipe/plugin.h"

static const mmp_host_api_t *host;

static int slow_init(const mmp_host_api_t *h, void **statep, char *errstr, size_t n) {
        (void)errstr;
        (void)n;
        host = h;
        *statep = NULL;
        return 0;
}

/* sleep(input, {ms = N}): sleeps N ms (checking cancellation), returns input. */
static mmp_value_t *op_sleep(void *state, mmp_call_t *call, const mmp_value_t *input, const mmp_value_t *opts) {
        int64_t ms = host->value_int(host->value_get(opts, "ms"));
        (void)state;
        for (int64_t slept = 0; slept < ms; slept += 5) {
                struct timespec ts = {0, 5 * 1000000};
                if (host->call_cancelled(call)) {
                        host->call_fail(call, 0, "cancelled after %lld ms", (long long)slept);
                        return NULL;
                }
                while (nanosleep(&ts, &ts) && errno == EINTR)
                        ;
        }
        size_t len;
        const char *s = host->value_string(input, &len);
        return s ? host->value_new_string(s, len) : host->value_new_nil();
}

/* echo(input): returns {input = <input as string>, kind = <type name>}. */
static mmp_value_t *op_echo(void *state, mmp_call_t *call, const mmp_value_t *input, const mmp_value_t *opts) {
        static const char *const kinds[] = {"nil", "bool", "int", "double", "string", "array", "map", "blob"};
        mmp_value_t *out = host->value_new_map();
        size_t len;
        const char *s = host->value_string(input, &len);
        (void)state;
        (void)call;
        (void)opts;
        host->value_set(out, "kind", host->value_new_string(kinds[host->value_type(input)],
                                                            __builtin_strlen(kinds[host->value_type(input)])));
        if (s)
                host->value_set(out, "input", host->value_new_string(s, len));
        host->value_set(out, "blob", host->blob_new("abc", 3, "text/plain"));
        return out;
}

static mmp_value_t *op_fail(void *state, mmp_call_t *call, const mmp_value_t *input, const mmp_value_t *opts) {
        (void)state;
        (void)input;
        (void)opts;
        host->call_fail(call, 0, "failed on purpose");
        return NULL;
}

static const mmp_plugin_op_t ops[] = {
    {"sleep", "sleep(input, {ms=N}) -> input, after N ms", op_sleep},
    {"echo", "echo(input) -> {kind, input, blob}", op_echo},
    {"fail", "fail() -> always an error", op_fail},
    {NULL, NULL, NULL},
};

static const char *const types[] = {"test/*", NULL};

static const mmp_plugin_t plugin = {
    MMP_PLUGIN_HEADER,
    .name = "slow",
    .version = "0.0.1",
    .description = "test operations: sleep, echo, fail",
    .content_types = types,
    .ops = ops,
    .init = slow_init,
    .fini = NULL,
};

MMP_PLUGIN_EXPORT const mmp_plugin_t *mmp_plugin_entry(void) {
        return &plugin;
}
