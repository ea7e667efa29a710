/*
 * Destinations ("sinks"): where documents go out. A sink is a named
 * connection from the config (sqlite, jsonl; mongodb later) with one writer
 * thread that batches writes from many events and reports each write's
 * outcome back through its callback.
 *
 * Semantics every driver keeps (DESIGN.md, step 5):
 *  - upsert by the deterministic `_id`: the same write twice leaves the same
 *    documents;
 *  - once a write for (pipeline, bucket, key, version) is stored, documents
 *    of the same (pipeline, bucket, key) with another version are removed;
 *  - a delete write removes every document of (bucket, key), of one pipeline
 *    or (pipeline == NULL) of all.
 */
#ifndef MMP_SINK_H
#define MMP_SINK_H

#include <jansson.h>

#include "util/err.h"

typedef struct mmp_sink mmp_sink_t;

typedef enum mmp_write_kind {
        MMP_WRITE_UPSERT = 0,
        MMP_WRITE_DELETE,
} mmp_write_kind_t;

typedef struct mmp_write mmp_write_t;

/* Called exactly once per write, on the sink's writer thread.
 * failure: NULL on success; otherwise owned by the callee. */
typedef void(mmp_write_done_cb)(mmp_write_t *w, mmp_failure_t *failure, void *opaque);

struct mmp_write {
        mmp_write_kind_t kind;
        char *collection; /* [A-Za-z0-9_.-]+ */
        char *pipeline;   /* NULL on a delete: every pipeline */
        char *bucket;     /* "" for local files */
        char *key;        /* object key or absolute path */
        char *version;    /* version id or ETag (content SHA-256 for files) */
        json_t *docs;     /* upsert: array of objects, each with "_id" (24 hex chars) */
        mmp_write_done_cb *done;
        void *opaque;
};

/* Allocates a write with copies of the strings. docs is taken (may be NULL).
 * Free with mmp_write_free (the sink does so after calling done). */
mmp_write_t *mmp_write_new(mmp_write_kind_t kind, const char *collection, const char *pipeline,
                           const char *bucket, const char *key, const char *version, json_t *docs,
                           mmp_write_done_cb *done, void *opaque);
void mmp_write_free(mmp_write_t *w);

/* Document i of an upsert as compact JSON (keys in insertion order), in a
 * new string (free()). Serialised once on the submitting thread, so the
 * lanes share that cost instead of the one writer thread; NULL when the
 * document cannot be serialised. */
char *mmp_write_doc_dup(const mmp_write_t *w, size_t i);

/* Opens the connection `name` described by `conf` (the JSON object under
 * connections.<name> in the config; borrowed). Starts the writer thread.
 * Returns NULL with errstr naming the key path on failure. */
mmp_sink_t *mmp_sink_new(const char *name, const json_t *conf, char *errstr, size_t errstr_size);

/* Queues a write (takes ownership of w). Never blocks for I/O; thread-safe. */
void mmp_sink_submit(mmp_sink_t *sink, mmp_write_t *w);

const char *mmp_sink_name(const mmp_sink_t *sink);
const char *mmp_sink_type(const mmp_sink_t *sink);

/* Writes everything submitted so far, calls its callbacks, stops the writer
 * thread and closes the connection. Accepts NULL. */
void mmp_sink_free(mmp_sink_t *sink);

#endif
