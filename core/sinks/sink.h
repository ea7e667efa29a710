/*
 * Destinations ("sinks"): where documents go out. A sink is a named
 * connection from the config (sqlite, jsonl, mongodb) with one writer
 * thread that batches writes from many events and reports each write's
 * outcome back through its callback.
 *
 * Semantics every driver keeps (DESIGN.md, step 5):
 *  - upsert by the deterministic `_id`: the same write twice leaves the same
 *    documents;
 *  - once a write for (pipeline, bucket, key, version) is stored, documents
 *    of the same (pipeline, bucket, key) with another version are removed;
 *  - a delete write removes every document of (bucket, key), of one pipeline
 *    or (pipeline == NULL) of all;
 *  - a write that cannot be stored fails alone; the others of its batch are
 *    stored; while the destination itself fails, writes wait and are
 *    retried, in order (sink.c, for every driver).
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

/* Called exactly once per write, on the sink's writer thread, when the write
 * is stored (failure NULL) or has failed for good (failure owned by the
 * callee). Retriable failures (the database down, locked, a full disk) are
 * retried by the sink itself and never reach the callback, except for the
 * writes still failing when mmp_sink_free gives up (failure->retriable = 1:
 * not stored, deliver the event again later). */
typedef void(mmp_write_done_cb)(mmp_write_t *w, mmp_failure_t *failure, void *opaque);

struct mmp_write {
        mmp_write_kind_t kind;
        char *collection; /* [A-Za-z0-9_.-]+ */
        char *pipeline;   /* NULL on a delete: every pipeline */
        char *bucket;     /* "" for local files */
        char *key;        /* object key or absolute path */
        char *version;    /* version id or ETag (content SHA-256 for files) */
        json_t *docs;     /* upsert: array of objects, each with "_id" (24 hex chars); NULL: none */
        mmp_write_done_cb *done;
        void *opaque;
};

/* Allocates a write with copies of the strings, in the write's own block
 * (never free or replace them). docs is taken (may be NULL). Free with
 * mmp_write_free (the sink does so after calling done). */
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

/* Queues a write (takes ownership of w). Never blocks for I/O; thread-safe.
 * While the destination is down the writes wait in the queue: callers bound
 * what they submit (the engine's in-flight limit). */
void mmp_sink_submit(mmp_sink_t *sink, mmp_write_t *w);

/* Between hold and release, the calling thread's submits are kept and
 * handed to their writers at the release: one lock and at most one wake-up
 * per sink for many writes (a lane holds while it works through its inbox).
 * Calling thread only; holds do not nest. */
void mmp_sink_hold(void);
void mmp_sink_release(void);

/* How the writer retries retriable failures: it sleeps a uniform random time
 * in [0, min(cap_ms, base_ms * 2^attempt)] (full jitter) and tries again, as
 * long as it takes; the writes keep their order. drain_ms bounds how long
 * mmp_sink_free keeps retrying while the destination is still failing. */
typedef struct mmp_sink_retry {
        int64_t base_ms;  /* default 100 */
        int64_t cap_ms;   /* default 10000 */
        int64_t drain_ms; /* default 30000 */
} mmp_sink_retry_t;

#define MMP_SINK_RETRY_BASE_MS_DEFAULT 100
#define MMP_SINK_RETRY_CAP_MS_DEFAULT 10000
#define MMP_SINK_DRAIN_MS_DEFAULT 30000

/* Replaces the retry settings (copied; values <= 0 keep their default).
 * Any thread; takes effect at the next retry. */
void mmp_sink_set_retry(mmp_sink_t *sink, const mmp_sink_retry_t *retry);

/* Creates the indexes a pipeline declares on `collection`, if missing.
 * indexes (borrowed) is a JSON array of objects:
 *
 *   [{"keys": {"metadata.type": 1, "time": -1}, "unique": false, "name": "by_type"}]
 *
 * keys: field paths ([A-Za-z0-9_-] segments joined by '.') to 1 (ascending)
 * or -1 (descending), in order; unique: optional, default false; name:
 * optional ([A-Za-z0-9_.-]+), default derived from the keys as MongoDB does
 * ("metadata.type_1_time_-1"). mongodb: createIndexes (when the server is
 * unreachable the indexes are created by the writer before its next write to
 * the collection); sqlite: CREATE INDEX on json_extract(doc, '$.path');
 * jsonl: nothing to create. Returns 0, or -1 with errstr naming the index
 * ("collection \"c\", indexes[0].keys: ..."). Call at start-up, from any
 * thread; it waits for the batch being written. */
int mmp_sink_ensure_indexes(mmp_sink_t *sink, const char *collection, const json_t *indexes, char *errstr,
                            size_t errstr_size);

const char *mmp_sink_name(const mmp_sink_t *sink);
const char *mmp_sink_type(const mmp_sink_t *sink);

/* The engine is stopping: from now on, writes still failing once the drain
 * time (mmp_sink_set_retry, default 30 s) has passed fail as retriable (not
 * stored; the source delivers them again) instead of being retried further,
 * so that waiting for the events in flight ends even with the destination
 * down. Writes are still accepted and written. Call it when a stop begins,
 * before waiting for the events in flight; mmp_sink_free calls it too.
 * Any thread; accepts NULL. */
void mmp_sink_drain_begin(mmp_sink_t *sink);

/* Writes everything submitted so far, calls its callbacks, stops the writer
 * thread and closes the connection. If the destination is failing, keeps
 * retrying until the drain time (from mmp_sink_drain_begin, or from now) is
 * over and then fails what is left as retriable. Accepts NULL. */
void mmp_sink_free(mmp_sink_t *sink);

#endif
