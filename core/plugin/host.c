/*
 * Host API table for plugins and the call context behind it.
 * Operations call into it from worker-pool threads.
 */
#include "host.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin/value.h"
#include "util/log.h"
#include "util/time.h"

void mmp_tmplist_init(mmp_tmplist_t *t) {
        memset(t, 0, sizeof(*t));
        pthread_mutex_init(&t->lock, NULL);
}

int mmp_tmplist_add(mmp_tmplist_t *t, const char *path) {
        int rc = -1;
        pthread_mutex_lock(&t->lock);
        if (t->n == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 4;
                char **p = realloc(t->paths, cap * sizeof(*p));
                if (!p)
                        goto out;
                t->paths = p;
                t->cap = cap;
        }
        if ((t->paths[t->n] = strdup(path))) {
                t->n++;
                rc = 0;
        }
out:
        pthread_mutex_unlock(&t->lock);
        return rc;
}

void mmp_tmplist_clear(mmp_tmplist_t *t) {
        pthread_mutex_lock(&t->lock);
        for (size_t i = 0; i < t->n; i++) {
                unlink(t->paths[i]);
                free(t->paths[i]);
        }
        free(t->paths);
        t->paths = NULL;
        t->n = t->cap = 0;
        pthread_mutex_unlock(&t->lock);
        pthread_mutex_destroy(&t->lock);
}

void mmp_call_init(mmp_call_t *call, const char *plugin, const char *op, int64_t deadline_us,
                   const volatile int *cancel, mmp_tmplist_t *tmp) {
        memset(call, 0, sizeof(*call));
        call->plugin = plugin;
        call->op = op;
        call->deadline_us = deadline_us;
        call->cancel = cancel;
        call->tmp = tmp;
}

static void host_log(const char *plugin, mmp_log_level_t level, const char *fmt, ...) {
        char area[96];
        va_list ap;
        snprintf(area, sizeof(area), "plugin:%s", plugin ? plugin : "?");
        va_start(ap, fmt);
        mmp_vlog(level, area, fmt, ap);
        va_end(ap);
}

static void host_call_fail(mmp_call_t *call, int retriable, const char *fmt, ...) {
        va_list ap;
        if (!call)
                return;
        call->failed = 1;
        call->retriable = retriable;
        va_start(ap, fmt);
        vsnprintf(call->errmsg, sizeof(call->errmsg), fmt, ap);
        va_end(ap);
}

void mmp_call_fail_cancelled(mmp_call_t *call) {
        host_call_fail(call, 0, "cancelled: the event was abandoned (deadline passed)");
}

static int host_call_cancelled(mmp_call_t *call) {
        if (!call)
                return 0;
        if (call->cancel && *call->cancel)
                return 1;
        return call->deadline_us && mmp_now_us() > call->deadline_us;
}

static int host_call_tempfile(mmp_call_t *call, const char *suffix, char *path, size_t path_size) {
        const char *dir = getenv("TMPDIR");
        int fd, slen = suffix ? (int)strlen(suffix) : 0;
        if (!dir || !*dir)
                dir = "/tmp";
        if ((size_t)snprintf(path, path_size, "%s/mmpipe-XXXXXX%s", dir, suffix ? suffix : "") >=
            path_size) {
                host_call_fail(call, 0, "temp file path too long");
                return -1;
        }
        if ((fd = mkstemps(path, slen)) < 0) {
                host_call_fail(call, 1, "cannot create temp file in %s: %s", dir, strerror(errno));
                return -1;
        }
        if (call && call->tmp && mmp_tmplist_add(call->tmp, path)) {
                close(fd);
                unlink(path);
                host_call_fail(call, 1, "out of memory");
                return -1;
        }
        return fd;
}

static const mmp_host_api_t host_api = {
    .abi_major = MMP_PLUGIN_ABI_MAJOR,
    .abi_minor = MMP_PLUGIN_ABI_MINOR,
    .struct_size = sizeof(mmp_host_api_t),
    .alloc = malloc,
    .realloc = realloc,
    .free = free,
    .log = host_log,
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
    .call_fail = host_call_fail,
    .call_cancelled = host_call_cancelled,
    .call_tempfile = host_call_tempfile,
};

const mmp_host_api_t *mmp_host_api(void) {
        return &host_api;
}
