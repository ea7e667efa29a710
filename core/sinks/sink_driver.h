/*
 * The internal interface between the generic sink (sink.c: queue, writer
 * thread, callbacks) and one destination driver (sqlite.c, jsonl.c). open
 * and close run on the thread that calls mmp_sink_new / mmp_sink_free;
 * write_batch runs only on the sink's writer thread, one batch at a time.
 */
#ifndef MMP_SINK_DRIVER_H
#define MMP_SINK_DRIVER_H

#include <stddef.h>

#include <jansson.h>

#include "sinks/sink.h"

typedef struct mmp_sink_driver {
        const char *type; /* "sqlite", "jsonl": the value of connections.<name>.type */

        /* conf is borrowed. On failure returns NULL with errstr naming the key
         * path, e.g. "connections.local.path: cannot open ...". */
        void *(*open)(const char *name, const json_t *conf, char *errstr, size_t errstr_size);

        /* Stores writes[0..n-1] (borrowed; the sink frees them). failures has n
         * slots, all NULL on entry: the driver sets failures[i] to an owned
         * failure for every write it did not store, and leaves NULL the ones
         * it did. */
        void (*write_batch)(void *ctx, mmp_write_t **writes, size_t n, mmp_failure_t **failures);

        void (*close)(void *ctx);
} mmp_sink_driver_t;

extern const mmp_sink_driver_t mmp_sink_sqlite_driver;
extern const mmp_sink_driver_t mmp_sink_jsonl_driver;

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

/* Creates the missing parent directories of path (mode 0777 & ~umask).
 * Returns 0, or -1 with errstr = "cannot create directory \"d\": <strerror>".
 * Also used by deadletter.c. */
int mmp_sink_mkparents(const char *path, char *errstr, size_t errstr_size);

#endif
