/*
 * Error names and failure objects. Any thread.
 */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
        mmp_err_t code;
        const char *name;
        const char *desc;
} errs[] = {
    {MMP_OK, "OK", "success"},
    {MMP_ERR_INVALID, "INVALID", "invalid argument or input"},
    {MMP_ERR_NOMEM, "NOMEM", "out of memory"},
    {MMP_ERR_IO, "IO", "input/output error"},
    {MMP_ERR_CONFIG, "CONFIG", "configuration error"},
    {MMP_ERR_PLUGIN, "PLUGIN", "plugin error"},
    {MMP_ERR_LUA, "LUA", "handler error"},
    {MMP_ERR_TIMEOUT, "TIMEOUT", "deadline exceeded"},
    {MMP_ERR_NOT_FOUND, "NOT_FOUND", "not found"},
    {MMP_ERR_UNSUPPORTED, "UNSUPPORTED", "not supported in this build"},
    {MMP_ERR_SINK, "SINK", "destination error"},
    {MMP_ERR_MEMORY_CAP, "MEMORY_CAP", "memory cap exceeded"},
    {MMP_ERR_BAD_INPUT, "BAD_INPUT", "bad input"},
    {MMP_ERR_SHUTDOWN, "SHUTDOWN", "engine shutting down"},
};

const char *mmp_err2str(mmp_err_t err) {
        for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
                if (errs[i].code == err)
                        return errs[i].desc;
        return "unknown error";
}

const char *mmp_err2name(mmp_err_t err) {
        for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
                if (errs[i].code == err)
                        return errs[i].name;
        return "UNKNOWN";
}

const char *mmp_stage2str(mmp_stage_t stage) {
        static const char *names[] = {"receive", "fetch", "route", "handle", "store"};
        if ((unsigned)stage < sizeof(names) / sizeof(names[0]))
                return names[stage];
        return "unknown";
}

static char *dup_or_null(const char *s) {
        return s ? strdup(s) : NULL;
}

mmp_failure_t *mmp_failure_new(mmp_err_t code, mmp_stage_t stage, int retriable, const char *pipeline,
                               const char *traceback, const char *fmt, ...) {
        mmp_failure_t *f = calloc(1, sizeof(*f));
        va_list ap;
        if (!f)
                return NULL;
        f->code = code;
        f->stage = stage;
        f->retriable = retriable;
        f->attempts = 1;
        f->pipeline = dup_or_null(pipeline);
        f->traceback = dup_or_null(traceback);
        va_start(ap, fmt);
        if (vasprintf(&f->message, fmt, ap) < 0)
                f->message = NULL;
        va_end(ap);
        return f;
}

void mmp_failure_free(mmp_failure_t *f) {
        if (!f)
                return;
        free(f->pipeline);
        free(f->message);
        free(f->traceback);
        free(f);
}
