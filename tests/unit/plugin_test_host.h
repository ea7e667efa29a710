/*
 * A host API for the plugin unit tests: the engine's value functions, a
 * call that records failures (exactly one per failed call is the contract)
 * and can be cancelled on demand, and loading a built plugin by name.
 * Included by one test file each (static definitions).
 */
#ifndef MMP_PLUGIN_TEST_HOST_H
#define MMP_PLUGIN_TEST_HOST_H

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mmpipe/plugin.h"
#include "plugin/value.h"

/* The call as the test's host sees it; the plugin only holds a pointer. */
struct mmp_call {
        char err[1024];
        int failures; /* call_fail invocations */
        int retriable;
        int cancel;   /* call_cancelled is true from its cancel-th query on (0: never) */
        int queries;
};

static void test_host_log(const char *plugin, mmp_log_level_t level, const char *fmt, ...) {
        va_list ap;
        (void)level;
        if (!getenv("MMP_TEST_VERBOSE"))
                return;
        va_start(ap, fmt);
        fprintf(stderr, "[plugin:%s] ", plugin);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}

static void test_host_call_fail(mmp_call_t *call, int retriable, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(call->err, sizeof(call->err), fmt, ap);
        va_end(ap);
        call->failures++;
        call->retriable = retriable;
}

static int test_host_call_cancelled(mmp_call_t *call) {
        return call->cancel && ++call->queries >= call->cancel;
}

static int test_host_call_tempfile(mmp_call_t *call, const char *suffix, char *path, size_t size) {
        int fd;
        snprintf(path, size, "/tmp/mmp-plugin-test-XXXXXX%s", suffix ? suffix : "");
        if ((fd = mkstemps(path, suffix ? (int)strlen(suffix) : 0)) < 0)
                test_host_call_fail(call, 1, "mkstemps: %s", strerror(errno));
        return fd;
}

static const mmp_host_api_t test_host = {
    .abi_major = MMP_PLUGIN_ABI_MAJOR,
    .abi_minor = MMP_PLUGIN_ABI_MINOR,
    .struct_size = sizeof(mmp_host_api_t),
    .alloc = malloc,
    .realloc = realloc,
    .free = free,
    .log = test_host_log,
    .value_type = mmp_value_type,
    .value_bool = mmp_value_bool,
    .value_int = mmp_value_int,
    .value_double = mmp_value_double,
    .value_string = mmp_value_string,
    .value_len = mmp_value_len,
    .value_index = mmp_value_index,
    .value_key = mmp_value_key,
    .value_get = mmp_value_get,
    .value_new_nil = mmp_value_new_nil,
    .value_new_bool = mmp_value_new_bool,
    .value_new_int = mmp_value_new_int,
    .value_new_double = mmp_value_new_double,
    .value_new_string = mmp_value_new_string,
    .value_new_array = mmp_value_new_array,
    .value_new_map = mmp_value_new_map,
    .value_push = mmp_value_push,
    .value_set = mmp_value_set,
    .value_free = mmp_value_free,
    .blob_new = mmp_blob_new,
    .blob_new_owned = mmp_blob_new_owned,
    .blob_data = mmp_blob_data,
    .call_fail = test_host_call_fail,
    .call_cancelled = test_host_call_cancelled,
    .call_tempfile = test_host_call_tempfile,
};

/* dlopens the built plugin NAME ($MMP_TEST_BUILD_DIR/plugins/NAME.so) and
 * runs its init with test_host. Returns 0, or -1 after saying why. */
static int test_plugin_open(const char *name, void **dlp, const mmp_plugin_t **pluginp, void **statep) {
        char path[4096], errstr[256] = "";
        const char *dir = getenv("MMP_TEST_BUILD_DIR");
        mmp_plugin_entry_fn entry;

        if (dir)
                snprintf(path, sizeof(path), "%s/plugins/%s.so", dir, name);
        else
                snprintf(path, sizeof(path), "%s/%s.so", MMP_BUILD_PLUGIN_DIR, name);
        if (!(*dlp = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
                fprintf(stderr, "cannot load %s: %s\n", path, dlerror());
                return -1;
        }
        *(void **)&entry = dlsym(*dlp, MMP_PLUGIN_ENTRY_SYMBOL);
        if (!entry || !(*pluginp = entry())) {
                fprintf(stderr, "%s: no %s\n", path, MMP_PLUGIN_ENTRY_SYMBOL);
                return -1;
        }
        if ((*pluginp)->init(&test_host, statep, errstr, sizeof(errstr))) {
                fprintf(stderr, "%s: init failed: %s\n", path, errstr);
                return -1;
        }
        return 0;
}

#endif
