/*
 * The generic half of a destination: write objects, the queue any thread
 * submits to, and the one writer thread per sink that takes batches off the
 * queue, hands them to the driver and calls each write's callback.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_setname_np */
#endif
#include "util/jsonw.h"
#include "sink.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sink_driver.h"
#include "util/log.h"

/* Default batch bounds (a driver may set its own, sink_driver.h): enough to
 * amortise a transaction, small enough that one batch never holds the writer
 * long. */
#define SINK_BATCH_WRITES 512
#define SINK_BATCH_BYTES (4u << 20)

static const mmp_sink_driver_t *const drivers[] = {
    &mmp_sink_sqlite_driver,
    &mmp_sink_jsonl_driver,
#ifdef MMP_WITH_MONGODB
    &mmp_sink_mongodb_driver,
#endif
};

/* Known by name, not built: refused with "not supported in this build". */
static const char *const unsupported_types[] = {
#ifndef MMP_WITH_MONGODB
    "mongodb",
#endif
    NULL,
};

/* mmp_write_new allocates this; the link lets submit queue a write without
 * allocating (so it cannot fail). Only writes from mmp_write_new may be
 * submitted, which the sink already requires since it frees them. */
typedef struct write_entry {
        mmp_write_t w; /* first: the public part */
        struct write_entry *next;
        size_t bytes; /* size of the documents' JSON, for the batch bound */
        size_t cost;  /* documents, at least 1, for the batch bound */
        int64_t queued_ms;
        char **texts; /* each document serialised at submit (NULL: not serialisable) */
        size_t n_texts;
} write_entry_t;

#define ENTRY_OF(wp) ((write_entry_t *)(void *)(wp))

/* What the writer thread knows about a destination that keeps failing. */
typedef struct outage {
        int active;
        int attempts;
        int64_t since_ms;
        char message[512]; /* the first failure's */
} outage_t;

struct mmp_sink {
        char *name;
        const mmp_sink_driver_t *driver;
        void *ctx;
        pthread_t thread;
        mmp_sink_limits_t limits;
        pthread_mutex_t driver_lock; /* one driver call at a time: write_batch, ensure_indexes */

        /* The writer thread's own. */
        mmp_write_t **batch;
        mmp_failure_t **failures;
        outage_t outage;

        pthread_mutex_t lock; /* protects everything below */
        pthread_cond_t cond;  /* CLOCK_MONOTONIC */
        write_entry_t *head, *tail;
        size_t queued_writes, queued_docs, queued_bytes;
        mmp_sink_retry_t retry;
        int stopping;    /* mmp_sink_free called: drain, then exit */
        int64_t stop_ms; /* when */
        int exited;      /* writer gone: late submits fail at once */
        int waiting;     /* the writer sleeps on cond: WAIT_IDLE or WAIT_FILL */
};

enum { WAIT_NONE = 0, WAIT_IDLE, WAIT_FILL };

static char *dup_or_null(const char *s) {
        return s ? strdup(s) : NULL;
}

mmp_write_t *mmp_write_new(mmp_write_kind_t kind, const char *collection, const char *pipeline,
                           const char *bucket, const char *key, const char *version, json_t *docs,
                           mmp_write_done_cb *done, void *opaque) {
        write_entry_t *e = calloc(1, sizeof(*e));
        mmp_write_t *w;

        if (!e) {
                json_decref(docs);
                return NULL;
        }
        w = &e->w;
        w->kind = kind;
        w->collection = dup_or_null(collection);
        w->pipeline = dup_or_null(pipeline);
        w->bucket = dup_or_null(bucket);
        w->key = dup_or_null(key);
        w->version = dup_or_null(version);
        w->docs = docs;
        w->done = done;
        w->opaque = opaque;
        if ((collection && !w->collection) || (pipeline && !w->pipeline) || (bucket && !w->bucket) ||
            (key && !w->key) || (version && !w->version)) {
                mmp_write_free(w);
                return NULL;
        }
        return w;
}

void mmp_write_free(mmp_write_t *w) {
        if (!w)
                return;
        free(w->collection);
        free(w->pipeline);
        free(w->bucket);
        free(w->key);
        free(w->version);
        json_decref(w->docs);
        for (size_t i = 0; i < ENTRY_OF(w)->n_texts; i++)
                free(ENTRY_OF(w)->texts[i]);
        free(ENTRY_OF(w)->texts);
        free(ENTRY_OF(w));
}

char *mmp_write_doc_dup(const mmp_write_t *w, size_t i) {
        const write_entry_t *e = (const write_entry_t *)(const void *)w;
        if (i < e->n_texts && e->texts[i])
                return strdup(e->texts[i]);
        return mmp_json_dumps(json_array_get(w->docs, i), NULL);
}

/* Serialises the documents on the caller's thread; returns their size. */
static size_t serialise_docs(write_entry_t *e) {
        size_t n = json_array_size(e->w.docs), bytes = 0;
        if (!n || !(e->texts = calloc(n, sizeof(char *))))
                return 0;
        e->n_texts = n;
        for (size_t i = 0; i < n; i++) {
                e->texts[i] = mmp_json_dumps(json_array_get(e->w.docs, i), NULL);
                bytes += e->texts[i] ? strlen(e->texts[i]) : 0;
        }
        return bytes;
}

/* Takes the next batch off the queue (lock held). */
static size_t take_batch(mmp_sink_t *sink, mmp_write_t **batch) {
        size_t n = 0, bytes = 0;

        while (sink->head && n < SINK_BATCH_WRITES) {
                write_entry_t *e = sink->head;
                if (n > 0 && bytes + e->bytes > SINK_BATCH_BYTES)
                        break;
                bytes += e->bytes;
                sink->head = e->next;
                e->next = NULL;
                batch[n++] = &e->w;
        }
        if (!sink->head)
                sink->tail = NULL;
        return n;
}

static void complete(mmp_write_t *w, mmp_failure_t *failure) {
        if (w->done)
                w->done(w, failure, w->opaque);
        else
                mmp_failure_free(failure);
        mmp_write_free(w);
}

static void *writer_main(void *arg) {
        mmp_sink_t *sink = arg;
        mmp_write_t *batch[SINK_BATCH_WRITES];
        mmp_failure_t *failures[SINK_BATCH_WRITES];

        pthread_mutex_lock(&sink->lock);
        for (;;) {
                size_t n;

                while (!sink->head && !sink->stopping) {
                        sink->waiting = 1;
                        pthread_cond_wait(&sink->cond, &sink->lock);
                        sink->waiting = 0;
                }
                if (!sink->head)
                        break; /* stopping and drained */
                n = take_batch(sink, batch);
                pthread_mutex_unlock(&sink->lock);

                /* Callbacks run unlocked: they may submit again (a retry). */
                memset(failures, 0, n * sizeof(*failures));
                sink->driver->write_batch(sink->ctx, batch, n, failures);
                for (size_t i = 0; i < n; i++)
                        complete(batch[i], failures[i]);

                pthread_mutex_lock(&sink->lock);
        }
        sink->exited = 1;
        pthread_mutex_unlock(&sink->lock);
        return NULL;
}

static const mmp_sink_driver_t *driver_find(const char *name, const json_t *conf, char *errstr,
                                            size_t errstr_size) {
        const char *type;

        if (!json_is_object(conf)) {
                snprintf(errstr, errstr_size, "connections.%s: expected an object", name);
                return NULL;
        }
        type = json_string_value(json_object_get(conf, "type"));
        if (!type) {
                snprintf(errstr, errstr_size,
                         "connections.%s.type: expected a string (sqlite, jsonl or mongodb)", name);
                return NULL;
        }
        for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
                if (!strcmp(drivers[i]->type, type))
                        return drivers[i];
        for (size_t i = 0; i < sizeof(unsupported_types) / sizeof(unsupported_types[0]); i++) {
                if (!strcmp(unsupported_types[i], type)) {
                        snprintf(errstr, errstr_size,
                                 "connections.%s.type: %s is not supported in this build", name, type);
                        return NULL;
                }
        }
        snprintf(errstr, errstr_size,
                 "connections.%s.type: unknown destination type \"%s\" (expected sqlite, jsonl or "
                 "mongodb)",
                 name, type);
        return NULL;
}

mmp_sink_t *mmp_sink_new(const char *name, const json_t *conf, char *errstr, size_t errstr_size) {
        const mmp_sink_driver_t *driver = driver_find(name, conf, errstr, errstr_size);
        mmp_sink_t *sink;
        char tname[16];
        int err;

        if (!driver)
                return NULL;
        sink = calloc(1, sizeof(*sink));
        if (!sink || !(sink->name = strdup(name))) {
                free(sink);
                snprintf(errstr, errstr_size, "connections.%s: out of memory", name);
                return NULL;
        }
        sink->driver = driver;
        sink->ctx = driver->open(name, conf, errstr, errstr_size);
        if (!sink->ctx) {
                free(sink->name);
                free(sink);
                return NULL;
        }
        pthread_mutex_init(&sink->lock, NULL);
        pthread_cond_init(&sink->cond, NULL);
        if ((err = pthread_create(&sink->thread, NULL, writer_main, sink))) {
                snprintf(errstr, errstr_size, "connections.%s: cannot start the writer thread: %s", name,
                         strerror(err));
                driver->close(sink->ctx);
                pthread_cond_destroy(&sink->cond);
                pthread_mutex_destroy(&sink->lock);
                free(sink->name);
                free(sink);
                return NULL;
        }
        snprintf(tname, sizeof(tname), "mmp-sink-%s", name); /* 15 chars max: truncated */
        pthread_setname_np(sink->thread, tname);
        mmp_debug("sink", "%s: opened %s destination", name, driver->type);
        return sink;
}

void mmp_sink_submit(mmp_sink_t *sink, mmp_write_t *w) {
        write_entry_t *e;

        if (!w)
                return;
        if (!sink) {
                complete(w, mmp_sink_failure(w, 0, "no destination to write to"));
                return;
        }
        e = ENTRY_OF(w);
        e->next = NULL;
        e->bytes = w->docs ? serialise_docs(e) : 0;

        pthread_mutex_lock(&sink->lock);
        if (sink->exited) {
                /* Submitted after mmp_sink_free drained the queue: a caller
                 * bug, but the write still gets its one callback. */
                pthread_mutex_unlock(&sink->lock);
                complete(w, mmp_failure_new(MMP_ERR_SHUTDOWN, MMP_STAGE_STORE, 1, w->pipeline, NULL,
                                            "destination %s is closed", sink->name));
                return;
        }
        if (sink->tail)
                sink->tail->next = e;
        else
                sink->head = e;
        sink->tail = e;
        if (sink->waiting) /* a busy writer finds it when its batch is done */
                pthread_cond_signal(&sink->cond);
        pthread_mutex_unlock(&sink->lock);
}

const char *mmp_sink_name(const mmp_sink_t *sink) {
        return sink ? sink->name : NULL;
}

const char *mmp_sink_type(const mmp_sink_t *sink) {
        return sink ? sink->driver->type : NULL;
}

void mmp_sink_free(mmp_sink_t *sink) {
        if (!sink)
                return;
        pthread_mutex_lock(&sink->lock);
        sink->stopping = 1;
        pthread_cond_signal(&sink->cond);
        pthread_mutex_unlock(&sink->lock);
        pthread_join(sink->thread, NULL);

        sink->driver->close(sink->ctx);
        pthread_cond_destroy(&sink->cond);
        pthread_mutex_destroy(&sink->lock);
        mmp_debug("sink", "%s: closed", sink->name);
        free(sink->name);
        free(sink);
}

/* ---- helpers shared by the drivers ---- */

int mmp_sink_collection_valid(const char *name) {
        if (!name || !*name)
                return 0;
        for (const char *p = name; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-')
                        return 0;
        return 1;
}

static int is_object_id(const char *s) {
        size_t n = 0;

        if (!s)
                return 0;
        for (; s[n]; n++)
                if (!isxdigit((unsigned char)s[n]))
                        return 0;
        return n == 24;
}

int mmp_sink_doc_check(const mmp_write_t *w, size_t i, char *why, size_t why_size) {
        size_t n = json_array_size(w->docs);
        const json_t *doc = json_array_get(w->docs, i);
        const char *problem = NULL;

        if (!json_is_object(doc))
                problem = "not a JSON object";
        else if (!is_object_id(json_string_value(json_object_get(doc, "_id"))))
                problem = "_id must be a string of 24 hex characters";
        if (!problem)
                return 0;
        /* 1-based, like the Lua array the handler returned. */
        snprintf(why, why_size, "collection \"%s\", document %zu of %zu (key \"%s\"): %s", w->collection,
                 i + 1, n, w->key ? w->key : "", problem);
        return -1;
}

mmp_failure_t *mmp_sink_failure(const mmp_write_t *w, int retriable, const char *fmt, ...) {
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return mmp_failure_new(MMP_ERR_SINK, MMP_STAGE_STORE, retriable, w ? w->pipeline : NULL, NULL, "%s",
                               msg);
}

int mmp_sink_mkparents(const char *path, char *errstr, size_t errstr_size) {
        char *dir = strdup(path);
        char *slash;
        int rc = 0;

        if (!dir) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        slash = strrchr(dir, '/');
        if (!slash || slash == dir) {
                free(dir); /* relative file in the working directory, or under / */
                return 0;
        }
        *slash = '\0';
        /* Create each component from the top; existing ones are fine. */
        for (char *p = dir + 1;; p++) {
                if (*p != '/' && *p != '\0')
                        continue;
                char saved = *p;
                *p = '\0';
                if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
                        snprintf(errstr, errstr_size, "cannot create directory \"%s\": %s", dir,
                                 strerror(errno));
                        rc = -1;
                        break;
                }
                *p = saved;
                if (!saved)
                        break;
        }
        /* mkdir gives EEXIST for a regular file too: say so here rather than
         * leave it to a confusing ENOTDIR at open. */
        if (rc == 0) {
                struct stat st;
                int err = stat(dir, &st) != 0 ? errno : !S_ISDIR(st.st_mode) ? ENOTDIR : 0;
                if (err) {
                        snprintf(errstr, errstr_size, "cannot create directory \"%s\": %s", dir,
                                 strerror(err));
                        rc = -1;
                }
        }
        free(dir);
        return rc;
}
