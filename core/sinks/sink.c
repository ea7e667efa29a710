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

#include "fetch/retry.h"
#include "sink_driver.h"
#include "util/log.h"
#include "util/time.h"

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
        void *prepared; /* the driver's form of the write (driver->prepare) */
        void (*prepared_free)(void *);
} write_entry_t;

#define ENTRY_OF(wp) ((write_entry_t *)(void *)(wp))

/* What the writer thread knows about a destination that keeps failing. */
typedef struct outage {
        int active;
        int attempts;
        int64_t since_ms;
        char message[512]; /* the first failure's */
        char last[512];    /* the latest one's */
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
        int stopping;     /* mmp_sink_free called: drain, then exit */
        int draining;     /* stopping: writes still failing drain_ms after drain_at give up */
        int64_t drain_at; /* when draining began */
        int exited;       /* writer gone: late submits fail at once */
        int waiting;      /* the writer sleeps on cond: WAIT_IDLE or WAIT_FILL */
};

enum { WAIT_NONE = 0, WAIT_IDLE, WAIT_FILL };

/* Copies s (NULL stays NULL) to *room, moving it past the copy. */
static char *put(char **room, const char *s) {
        char *d = *room;
        size_t n;
        if (!s)
                return NULL;
        n = strlen(s) + 1;
        memcpy(d, s, n);
        *room += n;
        return d;
}

mmp_write_t *mmp_write_new(mmp_write_kind_t kind, const char *collection, const char *pipeline,
                           const char *bucket, const char *key, const char *version, json_t *docs,
                           mmp_write_done_cb *done, void *opaque) {
        /* One block: the entry, then its strings (freed with it). */
        const char *strs[] = {collection, pipeline, bucket, key, version};
        size_t room = 0;
        for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
                room += strs[i] ? strlen(strs[i]) + 1 : 0;
        write_entry_t *e = calloc(1, sizeof(*e) + room);
        mmp_write_t *w;
        char *at;

        if (!e) {
                json_decref(docs);
                return NULL;
        }
        at = (char *)(e + 1);
        w = &e->w;
        w->kind = kind;
        w->collection = put(&at, collection);
        w->pipeline = put(&at, pipeline);
        w->bucket = put(&at, bucket);
        w->key = put(&at, key);
        w->version = put(&at, version);
        w->docs = docs;
        w->done = done;
        w->opaque = opaque;
        return w;
}

void mmp_write_free(mmp_write_t *w) {
        if (!w)
                return;
        json_decref(w->docs);
        for (size_t i = 0; i < ENTRY_OF(w)->n_texts; i++)
                free(ENTRY_OF(w)->texts[i]);
        free(ENTRY_OF(w)->texts);
        if (ENTRY_OF(w)->prepared_free)
                ENTRY_OF(w)->prepared_free(ENTRY_OF(w)->prepared);
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

/* ---- the queue (sink->lock held) ---- */

static void queue_count(mmp_sink_t *sink, const write_entry_t *e, int sign) {
        sink->queued_writes += (size_t)sign;
        sink->queued_docs += (size_t)sign * e->cost;
        sink->queued_bytes += (size_t)sign * e->bytes;
}

static int batch_full(const mmp_sink_t *sink) {
        const mmp_sink_limits_t *l = &sink->limits;
        return sink->queued_writes >= l->max_writes || sink->queued_bytes >= l->max_bytes ||
               (l->max_docs && sink->queued_docs >= l->max_docs);
}

/* Takes the next batch off the queue. */
static size_t take_batch(mmp_sink_t *sink, mmp_write_t **batch) {
        const mmp_sink_limits_t *l = &sink->limits;
        size_t n = 0, bytes = 0, docs = 0;

        while (sink->head && n < l->max_writes) {
                write_entry_t *e = sink->head;
                if (n > 0 && (bytes + e->bytes > l->max_bytes || (l->max_docs && docs + e->cost > l->max_docs)))
                        break;
                bytes += e->bytes;
                docs += e->cost;
                sink->head = e->next;
                e->next = NULL;
                queue_count(sink, e, -1);
                batch[n++] = &e->w;
        }
        if (!sink->head)
                sink->tail = NULL;
        return n;
}

/* Puts writes back at the head of the queue, in their order: a retry goes
 * before anything submitted after it. */
static void queue_push_front(mmp_sink_t *sink, mmp_write_t **writes, size_t n) {
        for (size_t i = n; i-- > 0;) {
                write_entry_t *e = ENTRY_OF(writes[i]);
                e->next = sink->head;
                sink->head = e;
                if (!sink->tail)
                        sink->tail = e;
                queue_count(sink, e, +1);
        }
}

/* Waits until ms (CLOCK_MONOTONIC) or a signal. */
static void cond_wait_until(mmp_sink_t *sink, int64_t ms) {
        struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
        pthread_cond_timedwait(&sink->cond, &sink->lock, &ts);
}

static void complete(mmp_write_t *w, mmp_failure_t *failure) {
        if (w->done)
                w->done(w, failure, w->opaque);
        else
                mmp_failure_free(failure);
        mmp_write_free(w);
}

/* ---- the writer thread ---- */

/* With flush_ms, gives the batch that long after its oldest write to fill. */
static void wait_to_fill(mmp_sink_t *sink) {
        int64_t deadline;

        if (sink->limits.flush_ms <= 0 || !sink->head)
                return;
        deadline = sink->head->queued_ms + sink->limits.flush_ms;
        while (!sink->stopping && !batch_full(sink) && mmp_now_ms() < deadline) {
                sink->waiting = WAIT_FILL;
                cond_wait_until(sink, deadline);
                sink->waiting = WAIT_NONE;
        }
}

/* Shutdown with the destination still failing: everything queued fails as
 * retriable (not stored; the source delivers it again). Lock held; dropped
 * while the callbacks run. */
static void give_up(mmp_sink_t *sink) {
        write_entry_t *e = sink->head;
        double secs = (double)(mmp_now_ms() - sink->outage.since_ms) / 1000.0;
        size_t n = sink->queued_writes;

        sink->head = sink->tail = NULL;
        sink->queued_writes = sink->queued_docs = sink->queued_bytes = 0;
        pthread_mutex_unlock(&sink->lock);
        mmp_err("sink", "%s: shutting down with the destination still failing after %.1f s: %zu writes not "
                        "stored (%s)",
                sink->name, secs, n, sink->outage.last);
        while (e) {
                write_entry_t *next = e->next;
                complete(&e->w, mmp_sink_failure(&e->w, 1,
                                                 "destination %s: not stored; still failing after %.1f s "
                                                 "when the engine stopped: %s",
                                                 sink->name, secs, sink->outage.last));
                e = next;
        }
        pthread_mutex_lock(&sink->lock);
}

/* Requeues the retriable writes and sleeps the backoff (full jitter). Once
 * the drain (mmp_sink_drain_begin, mmp_sink_free) is drain_ms old, gives
 * everything up instead. */
static void retry_later(mmp_sink_t *sink, mmp_write_t **writes, size_t n) {
        mmp_retry_policy_t policy;
        int64_t now, wake, give_up_at;

        pthread_mutex_lock(&sink->lock);
        queue_push_front(sink, writes, n);
        policy = (mmp_retry_policy_t){.attempts = 1, .base_ms = sink->retry.base_ms, .cap_ms = sink->retry.cap_ms};
        wake = mmp_now_ms() + mmp_retry_backoff_ms(&policy, sink->outage.attempts - 1);
        for (;;) {
                now = mmp_now_ms();
                give_up_at = sink->drain_at + sink->retry.drain_ms;
                if (sink->draining && now >= give_up_at) {
                        give_up(sink);
                        break;
                }
                if (now >= wake)
                        break;
                cond_wait_until(sink, sink->draining && give_up_at < wake ? give_up_at : wake);
        }
        pthread_mutex_unlock(&sink->lock);
}

/* Hands one batch to the driver; completes what is done for good and sends
 * the retriable rest round again. */
static void write_batch(mmp_sink_t *sink, size_t n) {
        mmp_write_t **batch = sink->batch;
        mmp_failure_t **failures = sink->failures;
        size_t nretry = 0;
        char first[512] = "";

        memset(failures, 0, n * sizeof(*failures));
        pthread_mutex_lock(&sink->driver_lock);
        sink->driver->write_batch(sink->ctx, batch, n, failures);
        pthread_mutex_unlock(&sink->driver_lock);

        /* Callbacks run unlocked: they may submit again. */
        for (size_t i = 0; i < n; i++) {
                if (failures[i] && failures[i]->retriable) {
                        if (!nretry)
                                snprintf(first, sizeof(first), "%s", failures[i]->message);
                        mmp_failure_free(failures[i]);
                        batch[nretry++] = batch[i]; /* nretry <= i: compacts in place */
                } else {
                        complete(batch[i], failures[i]);
                }
        }
        if (!nretry) {
                if (sink->outage.active)
                        mmp_info("sink", "%s: destination available again after %.1f s (%d retries); writes resumed",
                                 sink->name, (double)(mmp_now_ms() - sink->outage.since_ms) / 1000.0,
                                 sink->outage.attempts);
                sink->outage.active = 0;
                return;
        }
        if (!sink->outage.active) {
                sink->outage = (outage_t){.active = 1, .attempts = 0, .since_ms = mmp_now_ms()};
                snprintf(sink->outage.message, sizeof(sink->outage.message), "%s", first);
                mmp_warn("sink", "%s: writes failing, held and retried with backoff until they succeed: %s",
                         sink->name, first);
        }
        snprintf(sink->outage.last, sizeof(sink->outage.last), "%s", first);
        sink->outage.attempts++;
        mmp_debug("sink", "%s: %zu of %zu writes to retry (attempt %d): %s", sink->name, nretry, n,
                  sink->outage.attempts, first);
        retry_later(sink, batch, nretry);
}

static void *writer_main(void *arg) {
        mmp_sink_t *sink = arg;

        pthread_mutex_lock(&sink->lock);
        for (;;) {
                size_t n;

                while (!sink->head && !sink->stopping) {
                        sink->waiting = WAIT_IDLE;
                        pthread_cond_wait(&sink->cond, &sink->lock);
                        sink->waiting = WAIT_NONE;
                }
                if (!sink->head)
                        break; /* stopping and drained */
                wait_to_fill(sink);
                n = take_batch(sink, sink->batch);
                pthread_mutex_unlock(&sink->lock);
                write_batch(sink, n);
                pthread_mutex_lock(&sink->lock);
        }
        sink->exited = 1;
        pthread_mutex_unlock(&sink->lock);
        return NULL;
}

/* ---- life cycle ---- */

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
        for (size_t i = 0; unsupported_types[i]; i++) {
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

static void sink_destroy(mmp_sink_t *sink) {
        pthread_cond_destroy(&sink->cond);
        pthread_mutex_destroy(&sink->lock);
        pthread_mutex_destroy(&sink->driver_lock);
        free(sink->batch);
        free(sink->failures);
        free(sink->name);
        free(sink);
}

/* The driver's batch bounds, made sane. */
static void limits_init(mmp_sink_t *sink) {
        mmp_sink_limits_t *l = &sink->limits;

        *l = (mmp_sink_limits_t){.max_writes = SINK_BATCH_WRITES, .max_bytes = SINK_BATCH_BYTES};
        if (sink->driver->limits)
                sink->driver->limits(sink->ctx, l);
        if (!l->max_writes)
                l->max_writes = SINK_BATCH_WRITES;
        if (!l->max_bytes)
                l->max_bytes = SINK_BATCH_BYTES;
        if (l->flush_ms < 0)
                l->flush_ms = 0;
}

mmp_sink_t *mmp_sink_new(const char *name, const json_t *conf, char *errstr, size_t errstr_size) {
        const mmp_sink_driver_t *driver = driver_find(name, conf, errstr, errstr_size);
        pthread_condattr_t attr;
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
        sink->retry = (mmp_sink_retry_t){MMP_SINK_RETRY_BASE_MS_DEFAULT, MMP_SINK_RETRY_CAP_MS_DEFAULT,
                                         MMP_SINK_DRAIN_MS_DEFAULT};
        pthread_mutex_init(&sink->lock, NULL);
        pthread_mutex_init(&sink->driver_lock, NULL);
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&sink->cond, &attr);
        pthread_condattr_destroy(&attr);
        sink->ctx = driver->open(name, conf, errstr, errstr_size);
        if (!sink->ctx) {
                sink_destroy(sink);
                return NULL;
        }
        limits_init(sink);
        sink->batch = calloc(sink->limits.max_writes, sizeof(*sink->batch));
        sink->failures = calloc(sink->limits.max_writes, sizeof(*sink->failures));
        if (!sink->batch || !sink->failures) {
                snprintf(errstr, errstr_size, "connections.%s: out of memory", name);
                driver->close(sink->ctx);
                sink_destroy(sink);
                return NULL;
        }
        if ((err = pthread_create(&sink->thread, NULL, writer_main, sink))) {
                snprintf(errstr, errstr_size, "connections.%s: cannot start the writer thread: %s", name,
                         strerror(err));
                driver->close(sink->ctx);
                sink_destroy(sink);
                return NULL;
        }
        snprintf(tname, sizeof(tname), "mmp-sink-%s", name); /* 15 chars max: truncated */
        pthread_setname_np(sink->thread, tname);
        mmp_debug("sink", "%s: opened %s destination", name, driver->type);
        return sink;
}

/* Writes held by this thread (mmp_sink_hold), in submit order. */
typedef struct held {
        mmp_sink_t *sink;
        write_entry_t *head, *tail;
} held_t;

#define HELD_SINKS 8 /* sinks one thread holds writes for at once; more are submitted at once */
static __thread int hold_on;
static __thread held_t held[HELD_SINKS];
static __thread int n_held;

/* Appends head..tail to the sink's queue and wakes the writer if it needs it. */
static void enqueue(mmp_sink_t *sink, write_entry_t *head, write_entry_t *tail) {
        int64_t now = mmp_now_ms(); /* one clock read for a lane round's writes */
        pthread_mutex_lock(&sink->lock);
        if (sink->exited) {
                /* Submitted after mmp_sink_free drained the queue: a caller
                 * bug, but each write still gets its one callback. */
                pthread_mutex_unlock(&sink->lock);
                for (write_entry_t *e = head, *nx; e; e = nx) {
                        nx = e->next;
                        complete(&e->w, mmp_failure_new(MMP_ERR_SHUTDOWN, MMP_STAGE_STORE, 1, e->w.pipeline, NULL,
                                                         "destination %s is closed", sink->name));
                }
                return;
        }
        if (sink->tail)
                sink->tail->next = head;
        else
                sink->head = head;
        sink->tail = tail;
        for (write_entry_t *e = head; e; e = e->next) {
                e->queued_ms = now;
                queue_count(sink, e, +1);
        }
        /* A busy writer finds them when its batch is done; one filling a
         * batch needs waking only once the batch is full. */
        if (sink->waiting == WAIT_IDLE || (sink->waiting == WAIT_FILL && batch_full(sink)))
                pthread_cond_signal(&sink->cond);
        pthread_mutex_unlock(&sink->lock);
}

void mmp_sink_hold(void) {
        hold_on = 1;
}

void mmp_sink_release(void) {
        hold_on = 0;
        for (int i = 0; i < n_held; i++)
                enqueue(held[i].sink, held[i].head, held[i].tail);
        n_held = 0;
}

/* Keeps e for the release when this thread holds; 0 when it was kept. */
static int hold_write(mmp_sink_t *sink, write_entry_t *e) {
        int i;
        if (!hold_on)
                return -1;
        for (i = 0; i < n_held && held[i].sink != sink; i++)
                ;
        if (i == n_held) {
                if (n_held == HELD_SINKS)
                        return -1;
                held[n_held++] = (held_t){.sink = sink};
        }
        if (held[i].tail)
                held[i].tail->next = e;
        else
                held[i].head = e;
        held[i].tail = e;
        return 0;
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
        /* On the submitting thread (the lanes, in parallel), not the writer's:
         * the driver's own form of the documents, or else their JSON text. */
        if (sink->driver->prepare)
                e->bytes = sink->driver->prepare(sink->ctx, w);
        else
                e->bytes = w->docs ? serialise_docs(e) : 0;
        e->cost = json_array_size(w->docs) ? json_array_size(w->docs) : 1;
        if (hold_write(sink, e))
                enqueue(sink, e, e);
}

void mmp_sink_set_retry(mmp_sink_t *sink, const mmp_sink_retry_t *retry) {
        if (!sink || !retry)
                return;
        pthread_mutex_lock(&sink->lock);
        sink->retry.base_ms = retry->base_ms > 0 ? retry->base_ms : MMP_SINK_RETRY_BASE_MS_DEFAULT;
        sink->retry.cap_ms = retry->cap_ms > 0 ? retry->cap_ms : MMP_SINK_RETRY_CAP_MS_DEFAULT;
        sink->retry.drain_ms = retry->drain_ms > 0 ? retry->drain_ms : MMP_SINK_DRAIN_MS_DEFAULT;
        pthread_cond_signal(&sink->cond); /* a writer in a backoff sleep re-reads them */
        pthread_mutex_unlock(&sink->lock);
}

const char *mmp_sink_name(const mmp_sink_t *sink) {
        return sink ? sink->name : NULL;
}

const char *mmp_sink_type(const mmp_sink_t *sink) {
        return sink ? sink->driver->type : NULL;
}

/* Lock held. */
static void drain_begin_locked(mmp_sink_t *sink) {
        if (sink->draining)
                return;
        sink->draining = 1;
        sink->drain_at = mmp_now_ms();
        pthread_cond_signal(&sink->cond); /* a writer in a backoff sleep re-reads its deadline */
}

void mmp_sink_drain_begin(mmp_sink_t *sink) {
        if (!sink)
                return;
        pthread_mutex_lock(&sink->lock);
        drain_begin_locked(sink);
        pthread_mutex_unlock(&sink->lock);
}

void mmp_sink_free(mmp_sink_t *sink) {
        if (!sink)
                return;
        pthread_mutex_lock(&sink->lock);
        drain_begin_locked(sink);
        sink->stopping = 1;
        pthread_cond_signal(&sink->cond);
        pthread_mutex_unlock(&sink->lock);
        pthread_join(sink->thread, NULL);

        sink->driver->close(sink->ctx);
        mmp_debug("sink", "%s: closed", sink->name);
        sink_destroy(sink);
}

/* ---- indexes declared by pipelines ---- */

#define INDEX_MAX_KEYS 32 /* MongoDB's limit for a compound index */
#define INDEX_NAME_MAX 100

/* A field path: [A-Za-z0-9_-]+ segments joined by single dots. */
static int field_path_valid(const char *p) {
        size_t seg = 0;
        for (; *p; p++) {
                if (*p == '.') {
                        if (!seg)
                                return 0;
                        seg = 0;
                } else if (isalnum((unsigned char)*p) || *p == '_' || *p == '-') {
                        seg++;
                } else {
                        return 0;
                }
        }
        return seg > 0;
}

/* MongoDB's default index name: "a.b_1_c_-1". */
static int index_default_name(const json_t *keys, char *out, size_t size) {
        const char *path;
        json_t *order;
        size_t len = 0;

        out[0] = '\0';
        json_object_foreach((json_t *)keys, path, order) {
                len += (size_t)snprintf(out + len, len < size ? size - len : 0, "%s%s_%d", len ? "_" : "",
                                        path, (int)json_integer_value(order));
        }
        return len < size ? 0 : -1;
}

/* Checks one index of the list and returns its normalised copy
 * ({"keys", "name", "unique"}), or NULL with why set. */
static json_t *index_normalise(const json_t *ix, size_t i, char *why, size_t why_size) {
        const json_t *keys = json_object_get(ix, "keys"), *unique = json_object_get(ix, "unique");
        const json_t *name = json_object_get(ix, "name");
        const char *k, *nm;
        json_t *v, *out_keys;
        char derived[INDEX_NAME_MAX * 4];

        if (!json_is_object(ix)) {
                snprintf(why, why_size, "indexes[%zu]: expected an object with \"keys\" (and optionally "
                                        "\"unique\", \"name\")",
                         i);
                return NULL;
        }
        json_object_foreach((json_t *)ix, k, v) {
                if (strcmp(k, "keys") && strcmp(k, "unique") && strcmp(k, "name")) {
                        snprintf(why, why_size, "indexes[%zu]: unknown key \"%s\" (expected keys, unique, name)",
                                 i, k);
                        return NULL;
                }
        }
        if (!json_is_object(keys) || !json_object_size(keys) || json_object_size(keys) > INDEX_MAX_KEYS) {
                snprintf(why, why_size,
                         "indexes[%zu].keys: expected an object of 1 to %d field paths, each to 1 "
                         "(ascending) or -1 (descending)",
                         i, INDEX_MAX_KEYS);
                return NULL;
        }
        json_object_foreach((json_t *)keys, k, v) {
                json_int_t o = json_integer_value(v);
                if (!field_path_valid(k)) {
                        snprintf(why, why_size,
                                 "indexes[%zu].keys: \"%s\" is not a field path (names of letters, digits, "
                                 "'_' and '-', joined by '.')",
                                 i, k);
                        return NULL;
                }
                if (!json_is_integer(v) || (o != 1 && o != -1)) {
                        snprintf(why, why_size, "indexes[%zu].keys.%s: expected 1 (ascending) or -1 (descending)",
                                 i, k);
                        return NULL;
                }
        }
        if (unique && !json_is_boolean(unique)) {
                snprintf(why, why_size, "indexes[%zu].unique: expected true or false", i);
                return NULL;
        }
        if (name) {
                nm = json_string_value(name);
                if (!nm || !mmp_sink_collection_valid(nm) || strlen(nm) > INDEX_NAME_MAX) {
                        snprintf(why, why_size, "indexes[%zu].name: expected a string of [A-Za-z0-9_.-], at most %d "
                                                "characters",
                                 i, INDEX_NAME_MAX);
                        return NULL;
                }
        } else {
                if (index_default_name(keys, derived, sizeof(derived)) || strlen(derived) > INDEX_NAME_MAX) {
                        snprintf(why, why_size, "indexes[%zu]: the derived name is too long; give it a \"name\"",
                                 i);
                        return NULL;
                }
                nm = derived;
        }
        out_keys = json_deep_copy(keys);
        return json_pack("{s:o, s:s, s:b}", "keys", out_keys, "name", nm, "unique", json_is_true(unique));
}

/* The checked, normalised list, or NULL with why set. */
static json_t *indexes_normalise(const json_t *indexes, char *why, size_t why_size) {
        json_t *out;
        size_t n = json_array_size(indexes);

        if (!json_is_array(indexes)) {
                snprintf(why, why_size, "indexes: expected an array of index objects");
                return NULL;
        }
        if (!(out = json_array()))
                goto nomem;
        for (size_t i = 0; i < n; i++) {
                json_t *ix = index_normalise(json_array_get(indexes, i), i, why, why_size);
                const char *name;
                if (!ix && why[0]) {
                        json_decref(out);
                        return NULL;
                }
                if (!ix || json_array_append_new(out, ix))
                        goto nomem;
                name = json_string_value(json_object_get(ix, "name"));
                for (size_t j = 0; j < i; j++) {
                        if (!strcmp(name, json_string_value(json_object_get(json_array_get(out, j), "name")))) {
                                snprintf(why, why_size,
                                         "indexes[%zu]: the name \"%s\" is also the name of indexes[%zu]", i, name, j);
                                json_decref(out);
                                return NULL;
                        }
                }
        }
        return out;
nomem:
        json_decref(out);
        snprintf(why, why_size, "out of memory");
        return NULL;
}

int mmp_sink_ensure_indexes(mmp_sink_t *sink, const char *collection, const json_t *indexes, char *errstr,
                            size_t errstr_size) {
        char why[768] = "";
        json_t *norm;
        int rc = 0;

        if (!sink) {
                snprintf(errstr, errstr_size, "no destination to create indexes in");
                return -1;
        }
        if (!mmp_sink_collection_valid(collection)) {
                snprintf(errstr, errstr_size, "invalid collection name \"%s\" (expected [A-Za-z0-9_.-]+)",
                         collection ? collection : "");
                return -1;
        }
        if (!(norm = indexes_normalise(indexes, why, sizeof(why)))) {
                snprintf(errstr, errstr_size, "collection \"%s\", %s", collection, why);
                return -1;
        }
        if (json_array_size(norm) && sink->driver->ensure_indexes) {
                pthread_mutex_lock(&sink->driver_lock);
                rc = sink->driver->ensure_indexes(sink->ctx, collection, norm, why, sizeof(why));
                pthread_mutex_unlock(&sink->driver_lock);
                if (rc)
                        snprintf(errstr, errstr_size, "collection \"%s\", %s", collection, why);
                else
                        mmp_debug("sink", "%s: collection \"%s\": %zu indexes in place", sink->name, collection,
                                  json_array_size(norm));
        }
        json_decref(norm);
        return rc ? -1 : 0;
}

/* ---- helpers shared by the drivers ---- */

void mmp_write_set_prepared(mmp_write_t *w, void *data, void (*free_fn)(void *)) {
        write_entry_t *e = ENTRY_OF(w);
        if (e->prepared_free)
                e->prepared_free(e->prepared);
        e->prepared = data;
        e->prepared_free = free_fn;
}

void *mmp_write_prepared(const mmp_write_t *w) {
        return ((const write_entry_t *)(const void *)w)->prepared;
}

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
