/*
 * Dead letters as JSON lines: one line per failed event, flushed at once,
 * so an event that failed for good can be read back and replayed. Any
 * thread: lines are built unlocked and written whole under a mutex.
 */
#include "deadletter.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sink_driver.h" /* mmp_sink_mkparents */
#include "util/log.h"

struct mmp_deadletter {
        char *path; /* "-" = stderr */
        FILE *fp;
        pthread_mutex_t lock; /* one line at a time */
        long count;           /* atomic */
        int torn;             /* the last write failed: a line may be cut short */
};

mmp_deadletter_t *mmp_deadletter_open(const char *path, char *errstr, size_t errstr_size) {
        mmp_deadletter_t *dl;
        char why[512];

        if (!path || !*path) {
                snprintf(errstr, errstr_size, "dead-letter path is empty");
                return NULL;
        }
        if (strcmp(path, "-") != 0 && mmp_sink_mkparents(path, why, sizeof(why))) {
                snprintf(errstr, errstr_size, "cannot open dead-letter file \"%s\": %s", path, why);
                return NULL;
        }
        if (!(dl = calloc(1, sizeof(*dl))) || !(dl->path = strdup(path))) {
                free(dl);
                snprintf(errstr, errstr_size, "cannot open dead-letter file \"%s\": out of memory", path);
                return NULL;
        }
        if (!strcmp(path, "-")) {
                dl->fp = stderr;
        } else if (!(dl->fp = fopen(path, "a"))) {
                snprintf(errstr, errstr_size, "cannot open dead-letter file \"%s\": %s", path,
                         strerror(errno));
                free(dl->path);
                free(dl);
                return NULL;
        }
        pthread_mutex_init(&dl->lock, NULL);
        return dl;
}

/* "2024-05-01T12:00:00.123Z" */
static void iso8601_now(char *buf, size_t size) {
        struct timespec ts;
        struct tm tm;
        size_t n;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* The line, fields in a fixed order so that a person reading the file sees
 * what failed before the (possibly long) event. */
static json_t *build_line(const json_t *event, const json_t *source, const mmp_failure_t *f) {
        json_t *o = json_object();
        char now[40];

        if (!o)
                return NULL;
        iso8601_now(now, sizeof(now));
        json_object_set_new(o, "time", json_string(now));
        json_object_set_new(o, "stage", json_string(mmp_stage2str(f->stage)));
        json_object_set_new(o, "error_class", json_string(mmp_err2name(f->code)));
        json_object_set_new(o, "retriable", json_boolean(f->retriable));
        json_object_set_new(o, "message", f->message ? json_string(f->message) : json_string(""));
        json_object_set_new(o, "attempts", json_integer(f->attempts));
        json_object_set_new(o, "pipeline", f->pipeline ? json_string(f->pipeline) : json_null());
        if (f->traceback)
                json_object_set_new(o, "traceback", json_string(f->traceback));
        /* Borrowed values are only referenced (jansson counts references
         * atomically) and dumped, never changed. */
        json_object_set(o, "source", source ? (json_t *)source : json_null());
        json_object_set(o, "event", event ? (json_t *)event : json_null());
        return o;
}

int mmp_deadletter_write(mmp_deadletter_t *dl, const json_t *event, const json_t *source,
                         const mmp_failure_t *failure) {
        json_t *line;
        char *text;
        size_t len;
        int rc = 0;

        if (!dl || !failure) {
                mmp_err("deadletter", "dead letter without a %s", dl ? "failure" : "file");
                return -1;
        }
        line = build_line(event, source, failure);
        text = line ? json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(line);
        if (!text) {
                mmp_err("deadletter", "%s: cannot serialise a dead letter (%s)", dl->path,
                        failure->message ? failure->message : "no message");
                return -1;
        }
        /* One fwrite of the whole line: on stderr (unbuffered) that is one
         * write(2), so it does not interleave with log lines either. */
        len = strlen(text);
        text[len] = '\n';

        pthread_mutex_lock(&dl->lock);
        /* After a failed write the file may end inside a line: end it, so
         * this one starts on a line of its own. */
        if (dl->torn && fputc('\n', dl->fp) != EOF)
                dl->torn = 0;
        errno = 0;
        if (fwrite(text, 1, len + 1, dl->fp) != len + 1 || fflush(dl->fp) != 0) {
                int err = errno ? errno : EIO;
                clearerr(dl->fp);
                dl->torn = 1;
                pthread_mutex_unlock(&dl->lock);
                mmp_err("deadletter", "cannot write to \"%s\": %s", dl->path, strerror(err));
                rc = -1;
        } else {
                __atomic_add_fetch(&dl->count, 1, __ATOMIC_RELAXED);
                pthread_mutex_unlock(&dl->lock);
        }
        free(text);
        return rc;
}

long mmp_deadletter_count(const mmp_deadletter_t *dl) {
        return dl ? __atomic_load_n(&dl->count, __ATOMIC_RELAXED) : 0;
}

const char *mmp_deadletter_path(const mmp_deadletter_t *dl) {
        return dl ? dl->path : NULL;
}

void mmp_deadletter_close(mmp_deadletter_t *dl) {
        if (!dl)
                return;
        if (dl->fp != stderr && fclose(dl->fp) != 0)
                mmp_err("deadletter", "closing \"%s\": %s", dl->path, strerror(errno));
        pthread_mutex_destroy(&dl->lock);
        free(dl->path);
        free(dl);
}
