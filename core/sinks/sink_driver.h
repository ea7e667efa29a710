/*
 * The internal interface between the generic sink (sink.c: queue, writer
 * thread, retries, callbacks) and one destination driver (sqlite.c, jsonl.c,
 * mongodb.c). open and close run on the thread that calls mmp_sink_new /
 * mmp_sink_free; write_batch runs only on the sink's writer thread, one
 * batch at a time; ensure_indexes runs on the caller's thread, never at the
 * same time as write_batch (sink.c serialises them).
 */
#ifndef MMP_SINK_DRIVER_H
#define MMP_SINK_DRIVER_H

#include <stddef.h>

#include <jansson.h>

#include "sinks/sink.h"

/* How the writer thread batches writes for a driver. A batch is cut when the
 * next write would pass a bound (a single write larger than a bound still
 * goes, alone). With flush_ms > 0 the writer waits up to that long after the
 * oldest queued write for the batch to fill; with 0 it writes whatever is
 * queued as soon as it is free. */
typedef struct mmp_sink_limits {
        size_t max_writes; /* default 512 */
        size_t max_docs;   /* documents of all writes together; 0 = no bound (default) */
        size_t max_bytes;  /* their JSON text; default 4 MB */
        int flush_ms;      /* default 0 */
} mmp_sink_limits_t;

typedef struct mmp_sink_driver {
        const char *type; /* "sqlite", "jsonl", "mongodb": the value of connections.<name>.type */

        /* conf is borrowed. On failure returns NULL with errstr naming the key
         * path, e.g. "connections.local.path: cannot open ...". */
        void *(*open)(const char *name, const json_t *conf, char *errstr, size_t errstr_size);

        /* Stores writes[0..n-1] (borrowed; the sink frees them). failures has n
         * slots, all NULL on entry: the driver sets failures[i] to an owned
         * failure for every write it did not store, and leaves NULL the ones
         * it did.
         *
         * Retriable failures are written again later, in order, before any
         * write submitted after them. So when write i fails retriably, no
         * later write j > i of the same object (collection, bucket, key) may
         * be stored by this call: it would be undone by the retry of i. The
         * simplest driver fails the whole batch retriably (sqlite, jsonl). */
        void (*write_batch)(void *ctx, mmp_write_t **writes, size_t n, mmp_failure_t **failures);

        void (*close)(void *ctx);

        /* Optional (NULL: the defaults of mmp_sink_limits_t). Fills *limits,
         * pre-set to the defaults, once after open. */
        void (*limits)(void *ctx, mmp_sink_limits_t *limits);

        /* Optional. Runs in mmp_sink_submit on the submitting thread (the
         * lanes, in parallel, and concurrently with write_batch), before the
         * write is queued: whatever the driver can make of a write once, there
         * rather than on the one writer thread, kept with
         * mmp_write_set_prepared (it stays across retries). Returns the
         * write's size in bytes for the batch bound. Without it, the sink
         * serialises the documents to JSON text there (mmp_write_doc_dup). */
        size_t (*prepare)(void *ctx, mmp_write_t *w);

        /* Optional (NULL: nothing to create). indexes is the validated form of
         * mmp_sink_ensure_indexes' argument: every element has "keys" (an
         * object of path -> 1 or -1, at least one), "name" (a string of
         * [A-Za-z0-9_.-]) and "unique" (a boolean). The collection name is
         * valid. Returns 0, or -1 with errstr saying what failed. */
        int (*ensure_indexes)(void *ctx, const char *collection, const json_t *indexes, char *errstr,
                              size_t errstr_size);
} mmp_sink_driver_t;

extern const mmp_sink_driver_t mmp_sink_sqlite_driver;
extern const mmp_sink_driver_t mmp_sink_jsonl_driver;
#ifdef MMP_WITH_MONGODB
extern const mmp_sink_driver_t mmp_sink_mongodb_driver;
#endif

/* Helpers shared by the drivers (defined in sink.c). */

/* 1 when name matches [A-Za-z0-9_.-]+ (it is then safe inside "quotes" in
 * SQL and as a MongoDB collection name). */
int mmp_sink_collection_valid(const char *name);

/* Checks that upsert document i (0-based) of w is an object whose "_id" is a
 * string of 24 hex characters. Returns 0, or -1 with a one-line reason in
 * why, e.g. "collection \"c\", document 2 of 3 (key \"a.txt\"): _id must be a
 * string of 24 hex characters". */
int mmp_sink_doc_check(const mmp_write_t *w, size_t i, char *why, size_t why_size);

/* A failure of write w (MMP_ERR_SINK, stage store, pipeline from w). */
mmp_failure_t *mmp_sink_failure(const mmp_write_t *w, int retriable, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The driver's data for write w (prepare above): set (replacing and freeing
 * any earlier one with its free_fn, which may be NULL) and get (NULL when
 * none). The sink frees it with the write. */
void mmp_write_set_prepared(mmp_write_t *w, void *data, void (*free_fn)(void *));
void *mmp_write_prepared(const mmp_write_t *w);

/* Creates the missing parent directories of path (mode 0777 & ~umask).
 * Returns 0, or -1 with errstr = "cannot create directory \"d\": <strerror>".
 * Also used by deadletter.c. */
int mmp_sink_mkparents(const char *path, char *errstr, size_t errstr_size);

#endif
