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

/* From core/plugin/host.h, whose own struct mmp_call this test replaces. */
const mmp_host_api_t *mmp_host_api(void);

/* The engine's own table (allocation, values, blobs), with the call
 * functions replaced by the ones above. Filled by test_plugin_open. */
static mmp_host_api_t test_host;

/* dlopens the built plugin NAME ($MMP_TEST_BUILD_DIR/plugins/NAME.so) and
 * runs its init with test_host. Returns 0, or -1 after saying why. */
static int test_plugin_open(const char *name, void **dlp, const mmp_plugin_t **pluginp, void **statep) {
        char path[4096], errstr[256] = "";
        const char *dir = getenv("MMP_TEST_BUILD_DIR");
        mmp_plugin_entry_fn entry;

        test_host = *mmp_host_api();
        test_host.log = test_host_log;
        test_host.call_fail = test_host_call_fail;
        test_host.call_cancelled = test_host_call_cancelled;
        test_host.call_tempfile = test_host_call_tempfile;
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
