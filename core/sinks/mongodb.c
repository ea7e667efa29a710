/*
 * The MongoDB destination (libmongoc): a client pool per connection. Each
 * batch becomes, per collection, one unordered bulk of replace-with-upsert by
 * _id, then one unordered bulk of the version clean-ups and deletes. Batches
 * run on the sink's writer thread; ensure_indexes on the caller's thread.
 *
 * Replace, not $set: an _id names one output of one version of one object,
 * so the stored document must be exactly what the handler produced this
 * time. $set would keep fields an earlier run wrote and this one did not.
 */
#ifdef MMP_WITH_MONGODB

#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink_driver.h"
#include "util/log.h"
#include "util/time.h"

#define MONGO_MAX_DOC_BYTES (16 * 1024 * 1024) /* maxBsonObjectSize */
#define MONGO_MAX_DEPTH 100                    /* nesting MongoDB accepts */
#define MONGO_OBJECT_INDEX "mmpipe_object"

#define DEFAULT_BATCH_DOCS 1000
#define DEFAULT_BATCH_MB 8
#define DEFAULT_FLUSH_MS 5
#define DEFAULT_TIMEOUT_MS 30000

/* What the sink knows about one collection. */
typedef struct coll_state {
        struct coll_state *next;
        char *name;
        int object_index; /* the (bucket, key, pipeline) index is in place */
        json_t *pending;  /* declared indexes to create once the server answers */
} coll_state_t;

typedef struct mongo_sink {
        char *name; /* connection name */
        char *database;
        mongoc_uri_t *uri;
        mongoc_client_pool_t *pool;
        mongoc_write_concern_t *wc;
        bson_t bulk_opts; /* {ordered: false, writeConcern} */
        bson_t cmd_opts;  /* {writeConcern} */
        mmp_sink_limits_t limits;
        coll_state_t *colls;
} mongo_sink_t;

/* One write made ready for the bulks, at submit (mongo_prepare); kept with
 * the write, across retries. */
typedef struct prepared {
        bson_t **docs; /* upsert: the documents as BSON */
        bson_oid_t *ids;
        size_t n;
        mmp_failure_t *failure; /* what is wrong with the write itself, or NULL */
} prepared_t;

/* A write's place in the batch being written. */
typedef struct slot {
        const prepared_t *p;
        int round; /* -1: failed before the database was touched */
} slot_t;

/* Which write (and document) each operation of a bulk belongs to. */
typedef struct op_ref {
        size_t w;
        size_t doc;
} op_ref_t;

enum { PHASE_UPSERT, PHASE_CLEANUP };

/* ---- errors ---- */

/* Server error codes worth another try: the retryable-writes list of the
 * MongoDB driver specifications (network, not primary, shutting down), plus
 * timeouts, lock and write conflicts and an unsatisfied write concern. */
static int server_code_retriable(int64_t code) {
        switch (code) {
        case 6:     /* HostUnreachable */
        case 7:     /* HostNotFound */
        case 24:    /* LockTimeout */
        case 46:    /* LockBusy */
        case 50:    /* MaxTimeMSExpired */
        case 64:    /* WriteConcernFailed (wtimeout) */
        case 89:    /* NetworkTimeout */
        case 91:    /* ShutdownInProgress */
        case 112:   /* WriteConflict */
        case 133:   /* FailedToSatisfyReadPreference */
        case 134:   /* ReadConcernMajorityNotAvailableYet */
        case 150:   /* StaleEpoch */
        case 189:   /* PrimarySteppedDown */
        case 202:   /* NetworkInterfaceExceededTimeLimit */
        case 262:   /* ExceededTimeLimit */
        case 9001:  /* SocketException */
        case 10107: /* NotWritablePrimary */
        case 11600: /* InterruptedAtShutdown */
        case 11602: /* InterruptedDueToReplStateChange */
        case 13388: /* StaleConfig */
        case 13435: /* NotPrimaryNoSecondaryOk */
        case 13436: /* NotPrimaryOrSecondary */
                return 1;
        default: return 0;
        }
}

/* The connection rather than the command failed: nothing in the reply can
 * be trusted to say what was written. */
static int transport_error(const bson_error_t *e) {
        switch (e->domain) {
        case MONGOC_ERROR_STREAM:
        case MONGOC_ERROR_SERVER_SELECTION:
        case MONGOC_ERROR_PROTOCOL:
        case MONGOC_ERROR_SASL:
        case MONGOC_ERROR_SCRAM: return 1;
        case MONGOC_ERROR_CLIENT:
                /* Authentication failing (say, a rotated password) holds the
                 * writes like an outage does: nothing is lost meanwhile. */
                return e->code == MONGOC_ERROR_CLIENT_AUTHENTICATE || e->code == MONGOC_ERROR_CLIENT_NOT_READY ||
                       e->code == MONGOC_ERROR_CLIENT_IN_EXHAUST;
        default: return 0;
        }
}

static int error_retriable(const bson_error_t *e, const bson_t *reply) {
        if (reply && (mongoc_error_has_label(reply, "RetryableWriteError") ||
                      mongoc_error_has_label(reply, "TransientTransactionError")))
                return 1;
        if (transport_error(e))
                return 1;
        switch (e->domain) {
        case MONGOC_ERROR_SERVER:
        case MONGOC_ERROR_WRITE_CONCERN:
        case MONGOC_ERROR_QUERY:
        case MONGOC_ERROR_COMMAND:
        case MONGOC_ERROR_COLLECTION: return server_code_retriable(e->code);
        default: return 0;
        }
}

/* ---- JSON to BSON, checking what MongoDB would refuse ---- */

typedef struct conv {
        char path[256]; /* of the field being converted, for messages */
        size_t len;
        char *why;
        size_t why_size;
} conv_t;

static int conv_fail(conv_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int conv_fail(conv_t *c, const char *fmt, ...) {
        char msg[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(c->why, c->why_size, "field \"%s%s\": %s", c->path, c->len >= sizeof(c->path) - 1 ? "..." : "",
                 msg);
        return -1;
}

/* Appends ".key" (or "[i]") to the path; returns the length to restore. */
static size_t path_push(conv_t *c, const char *key, size_t klen, long index) {
        size_t old = c->len;
        int n;

        if (index >= 0)
                n = snprintf(c->path + c->len, sizeof(c->path) - c->len, "[%ld]", index);
        else
                n = snprintf(c->path + c->len, sizeof(c->path) - c->len, "%s%.*s", c->len ? "." : "",
                             (int)klen, key);
        c->len += (size_t)n;
        if (c->len >= sizeof(c->path))
                c->len = sizeof(c->path) - 1;
        return old;
}

static void path_pop(conv_t *c, size_t old) {
        c->len = old;
        c->path[old] = '\0';
}

/* Field names MongoDB refuses in stored documents; c->path is the parent's. */
static int key_check(conv_t *c, const char *key, size_t klen) {
        const char *problem = NULL;

        if (!klen)
                problem = "MongoDB does not accept an empty field name";
        else if (memchr(key, '\0', klen))
                problem = "MongoDB does not accept a NUL character in a field name";
        else if (key[0] == '$')
                problem = "MongoDB does not accept field names that start with '$'";
        else if (memchr(key, '.', klen))
                problem = "MongoDB does not accept field names that contain '.'";
        else if (!bson_utf8_validate(key, klen, false))
                problem = "the field name is not valid UTF-8";
        if (!problem)
                return 0;
        snprintf(c->why, c->why_size, "field name \"%.*s\"%s%s%s: %s", (int)(klen > 64 ? 64 : klen), key,
                 c->len ? " in \"" : "", c->path, c->len ? "\"" : "", problem);
        return -1;
}

static int append_fields(conv_t *c, bson_t *b, const json_t *obj, int depth);

static int append_value(conv_t *c, bson_t *b, const char *key, size_t klen, const json_t *v, int depth) {
        bson_t child;
        int ok = 1;

        switch (json_typeof(v)) {
        case JSON_OBJECT:
        case JSON_ARRAY:
                if (depth >= MONGO_MAX_DEPTH)
                        return conv_fail(c, "nested more than %d levels deep, MongoDB's limit", MONGO_MAX_DEPTH);
                if (json_is_object(v)) {
                        ok = bson_append_document_begin(b, key, (int)klen, &child);
                        if (ok && append_fields(c, &child, v, depth + 1))
                                return -1;
                        ok = ok && bson_append_document_end(b, &child);
                } else {
                        ok = bson_append_array_begin(b, key, (int)klen, &child);
                        for (size_t i = 0; ok && i < json_array_size(v); i++) {
                                char buf[16];
                                const char *k;
                                size_t kl = bson_uint32_to_string((uint32_t)i, &k, buf, sizeof(buf));
                                size_t old = path_push(c, NULL, 0, (long)i);
                                if (append_value(c, &child, k, kl, json_array_get(v, i), depth + 1))
                                        return -1;
                                path_pop(c, old);
                        }
                        ok = ok && bson_append_array_end(b, &child);
                }
                break;
        case JSON_STRING:
                if (!bson_utf8_validate(json_string_value(v), json_string_length(v), true))
                        return conv_fail(c, "the string is not valid UTF-8");
                ok = bson_append_utf8(b, key, (int)klen, json_string_value(v), (int)json_string_length(v));
                break;
        case JSON_INTEGER: {
                json_int_t i = json_integer_value(v);
                ok = i >= INT32_MIN && i <= INT32_MAX ? bson_append_int32(b, key, (int)klen, (int32_t)i)
                                                      : bson_append_int64(b, key, (int)klen, (int64_t)i);
                break;
        }
        case JSON_REAL: ok = bson_append_double(b, key, (int)klen, json_real_value(v)); break;
        case JSON_TRUE: ok = bson_append_bool(b, key, (int)klen, true); break;
        case JSON_FALSE: ok = bson_append_bool(b, key, (int)klen, false); break;
        case JSON_NULL: ok = bson_append_null(b, key, (int)klen); break;
        }
        /* libbson refuses only a document past 2 GB. */
        return ok ? 0 : conv_fail(c, "the document is too large for BSON");
}

static int append_fields(conv_t *c, bson_t *b, const json_t *obj, int depth) {
        const char *key;
        size_t klen;
        json_t *v;

        json_object_keylen_foreach((json_t *)obj, key, klen, v) {
                if (key_check(c, key, klen))
                        return -1;
                size_t old = path_push(c, key, klen, -1);
                if (append_value(c, b, key, klen, v, depth))
                        return -1;
                path_pop(c, old);
        }
        return 0;
}

/* _lineage.object, with bucket, key and version from the write. */
static int append_lineage_object(conv_t *c, bson_t *lin, const json_t *obj, const mmp_write_t *w, int depth) {
        const char *fixed[3][2] = {{"bucket", w->bucket ? w->bucket : ""},
                                   {"key", w->key},
                                   {"version", w->version ? w->version : ""}};
        int seen[3] = {0, 0, 0};
        const char *key;
        size_t klen;
        json_t *v;
        bson_t child;

        bson_append_document_begin(lin, "object", -1, &child);
        json_object_keylen_foreach((json_t *)obj, key, klen, v) {
                int f = -1;
                for (int i = 0; i < 3; i++)
                        if (!strcmp(key, fixed[i][0]) && strlen(fixed[i][0]) == klen)
                                f = i;
                if (f >= 0) {
                        seen[f] = 1;
                        bson_append_utf8(&child, fixed[f][0], -1, fixed[f][1], -1);
                        continue;
                }
                if (key_check(c, key, klen))
                        return -1;
                size_t old = path_push(c, key, klen, -1);
                if (append_value(c, &child, key, klen, v, depth + 1))
                        return -1;
                path_pop(c, old);
        }
        for (int i = 0; i < 3; i++)
                if (!seen[i])
                        bson_append_utf8(&child, fixed[i][0], -1, fixed[i][1], -1);
        bson_append_document_end(lin, &child);
        return 0;
}

/* _lineage, as the handler's documents carry it (the engine adds it), with
 * pipeline, object.bucket, object.key and object.version set from the
 * write: the clean-up and delete queries select on them, so they must hold
 * for any caller. For the engine's documents this changes nothing. */
static int append_lineage(conv_t *c, bson_t *b, const json_t *lin, const mmp_write_t *w) {
        int have_pipeline = 0, have_object = 0;
        const char *key;
        size_t klen;
        json_t *v;
        bson_t child;
        size_t old = path_push(c, "_lineage", 8, -1);

        bson_append_document_begin(b, "_lineage", -1, &child);
        json_object_keylen_foreach((json_t *)(json_is_object(lin) ? lin : NULL), key, klen, v) {
                if (klen == 8 && !strcmp(key, "pipeline")) {
                        have_pipeline = 1;
                        BSON_APPEND_UTF8(&child, "pipeline", w->pipeline);
                        continue;
                }
                if (klen == 6 && !strcmp(key, "object")) {
                        have_object = 1;
                        size_t o2 = path_push(c, key, klen, -1);
                        if (append_lineage_object(c, &child, json_is_object(v) ? v : NULL, w, 2))
                                return -1;
                        path_pop(c, o2);
                        continue;
                }
                if (key_check(c, key, klen))
                        return -1;
                size_t o2 = path_push(c, key, klen, -1);
                if (append_value(c, &child, key, klen, v, 2))
                        return -1;
                path_pop(c, o2);
        }
        if (!have_pipeline)
                BSON_APPEND_UTF8(&child, "pipeline", w->pipeline);
        if (!have_object && append_lineage_object(c, &child, NULL, w, 2))
                return -1;
        bson_append_document_end(b, &child);
        path_pop(c, old);
        return 0;
}

/* Document i of upsert w as BSON, _id first as an ObjectId. NULL with why set
 * when MongoDB would refuse it. */
static bson_t *doc_to_bson(const mmp_write_t *w, size_t i, bson_oid_t *id, char *why, size_t why_size) {
        const json_t *doc = json_array_get(w->docs, i);
        conv_t c = {.why = why, .why_size = why_size};
        bson_t *b = bson_new();
        int have_lineage = 0;
        const char *key;
        size_t klen;
        json_t *v;

        bson_oid_init_from_string(id, json_string_value(json_object_get(doc, "_id")));
        BSON_APPEND_OID(b, "_id", id);
        json_object_keylen_foreach((json_t *)doc, key, klen, v) {
                if (klen == 3 && !strcmp(key, "_id"))
                        continue;
                if (klen == 8 && !strcmp(key, "_lineage")) {
                        have_lineage = 1;
                        if (append_lineage(&c, b, v, w))
                                goto bad;
                        continue;
                }
                if (key_check(&c, key, klen))
                        goto bad;
                size_t old = path_push(&c, key, klen, -1);
                if (append_value(&c, b, key, klen, v, 1))
                        goto bad;
                path_pop(&c, old);
        }
        if (!have_lineage && append_lineage(&c, b, NULL, w))
                goto bad;
        if (b->len > MONGO_MAX_DOC_BYTES) {
                snprintf(why, why_size, "%u bytes as BSON, over MongoDB's limit of 16 MB (%d bytes) per document",
                         b->len, MONGO_MAX_DOC_BYTES);
                goto bad;
        }
        return b;
bad:
        bson_destroy(b);
        return NULL;
}

/* ---- preparing a batch ---- */

static void prepared_free(void *data) {
        prepared_t *p = data;

        if (!p)
                return;
        for (size_t i = 0; i < p->n; i++)
                bson_destroy(p->docs[i]);
        free(p->docs);
        free(p->ids);
        mmp_failure_free(p->failure);
        free(p);
}

/* Everything that can be wrong with write w itself, found before the
 * database is touched. Returns 0, or -1 with *failure set. */
static int prepare_write(mmp_write_t *w, prepared_t *p, mmp_failure_t **failure) {
        size_t n = json_array_size(w->docs);
        char why[512];

        if (!mmp_sink_collection_valid(w->collection)) {
                *failure = mmp_sink_failure(w, 0, "invalid collection name \"%s\" (expected [A-Za-z0-9_.-]+)",
                                            w->collection ? w->collection : "");
                return -1;
        }
        if (!w->key || (w->kind == MMP_WRITE_UPSERT && !w->pipeline)) {
                *failure = mmp_sink_failure(w, 0, "collection \"%s\": %s", w->collection,
                                            w->kind == MMP_WRITE_UPSERT ? "an upsert needs a pipeline and a key"
                                                                        : "a delete needs a key");
                return -1;
        }
        if (w->kind == MMP_WRITE_DELETE)
                return 0;
        if (w->docs && !json_is_array(w->docs)) {
                *failure = mmp_sink_failure(w, 0, "collection \"%s\" (key \"%s\"): documents must be an array",
                                            w->collection, w->key);
                return -1;
        }
        if (n && (!(p->docs = calloc(n, sizeof(*p->docs))) || !(p->ids = calloc(n, sizeof(*p->ids))))) {
                *failure = mmp_sink_failure(w, 1, "collection \"%s\": out of memory", w->collection);
                return -1;
        }
        for (size_t i = 0; i < n; i++) {
                if (mmp_sink_doc_check(w, i, why, sizeof(why))) {
                        *failure = mmp_sink_failure(w, 0, "%s", why);
                        return -1;
                }
                if (!(p->docs[i] = doc_to_bson(w, i, &p->ids[i], why, sizeof(why)))) {
                        *failure = mmp_sink_failure(w, 0, "collection \"%s\", document %zu of %zu (key \"%s\"): %s",
                                                    w->collection, i + 1, n, w->key, why);
                        return -1;
                }
                p->n = i + 1;
        }
        return 0;
}

/* Orders the writes into rounds: a write goes one round after the last
 * earlier write of the same object (collection, bucket, key), so that within
 * a round no two writes touch one object and the bulks may run unordered.
 * Returns the number of rounds, or -1 when out of memory. */
static int assign_rounds(mmp_write_t **writes, slot_t *prep, size_t n) {
        json_t *last = json_object();
        int rounds = 0;

        if (!last)
                return -1;
        for (size_t i = 0; i < n; i++) {
                const mmp_write_t *w = writes[i];
                const char *bucket = w->bucket ? w->bucket : "";
                char *id = NULL;
                int len;

                if (prep[i].round < 0)
                        continue;
                /* Length-prefixed, so no two objects share a key. */
                len = asprintf(&id, "%zu:%s%zu:%s%s", strlen(bucket), bucket, strlen(w->key), w->key, w->collection);
                if (len < 0) {
                        json_decref(last);
                        return -1;
                }
                json_t *seen = json_object_getn(last, id, (size_t)len);
                prep[i].round = seen ? (int)json_integer_value(seen) + 1 : 0;
                json_object_setn_new_nocheck(last, id, (size_t)len, json_integer(prep[i].round));
                if (prep[i].round + 1 > rounds)
                        rounds = prep[i].round + 1;
                free(id);
        }
        json_decref(last);
        return rounds;
}

/* ---- indexes ---- */

static coll_state_t *coll_state(mongo_sink_t *s, const char *name) {
        coll_state_t *c;

        for (c = s->colls; c; c = c->next)
                if (!strcmp(c->name, name))
                        return c;
        if (!(c = calloc(1, sizeof(*c))) || !(c->name = strdup(name))) {
                free(c);
                return NULL;
        }
        c->next = s->colls;
        s->colls = c;
        return c;
}

/* createIndexes for the validated indexes (sink_driver.h). Returns 0, or -1
 * with err set (and *retriable). */
static int create_indexes(mongo_sink_t *s, mongoc_client_t *client, const char *coll, const json_t *indexes,
                          bson_error_t *err, int *retriable) {
        mongoc_database_t *db = mongoc_client_get_database(client, s->database);
        bson_t cmd = BSON_INITIALIZER, list, reply;
        int ok;

        BSON_APPEND_UTF8(&cmd, "createIndexes", coll);
        bson_append_array_begin(&cmd, "indexes", -1, &list);
        for (size_t i = 0; i < json_array_size(indexes); i++) {
                const json_t *ix = json_array_get(indexes, i);
                const char *path, *k;
                char buf[16];
                json_t *order;
                bson_t spec, keys;

                bson_uint32_to_string((uint32_t)i, &k, buf, sizeof(buf));
                bson_append_document_begin(&list, k, -1, &spec);
                bson_append_document_begin(&spec, "key", -1, &keys);
                json_object_foreach(json_object_get(ix, "keys"), path, order)
                        BSON_APPEND_INT32(&keys, path, (int32_t)json_integer_value(order));
                bson_append_document_end(&spec, &keys);
                BSON_APPEND_UTF8(&spec, "name", json_string_value(json_object_get(ix, "name")));
                if (json_is_true(json_object_get(ix, "unique")))
                        BSON_APPEND_BOOL(&spec, "unique", true);
                bson_append_document_end(&list, &spec);
        }
        bson_append_array_end(&cmd, &list);
        ok = mongoc_database_write_command_with_opts(db, &cmd, &s->cmd_opts, &reply, err);
        *retriable = !ok && error_retriable(err, &reply);
        bson_destroy(&reply);
        bson_destroy(&cmd);
        mongoc_database_destroy(db);
        return ok ? 0 : -1;
}

/* Before the first write to a collection: the index the clean-up and delete
 * queries use, and declared indexes the server was not there for. Leads with
 * (bucket, key), so a delete of every pipeline's documents uses it too. An
 * index that cannot be made never blocks the writes: they are what matters.
 * Returns -1 (err set) only when the server cannot be reached, which the
 * bulk would find out again, slowly. */
static int coll_prepare(mongo_sink_t *s, mongoc_client_t *client, const char *name, bson_error_t *err) {
        coll_state_t *c = coll_state(s, name);
        int retriable;

        if (!c)
                return 0;
        if (!c->object_index) {
                /* json_pack keeps the key order of the format: bucket, key, pipeline. */
                json_t *ix = json_pack("[{s:{s:i, s:i, s:i}, s:s, s:b}]", "keys", "_lineage.object.bucket", 1,
                                       "_lineage.object.key", 1, "_lineage.pipeline", 1, "name", MONGO_OBJECT_INDEX,
                                       "unique", 0);
                if (ix && !create_indexes(s, client, name, ix, err, &retriable)) {
                        c->object_index = 1;
                } else if (ix && !retriable) {
                        c->object_index = 1; /* do not ask again: slower deletes, not wrong ones */
                        mmp_warn("sink", "%s: collection \"%s\": cannot create index %s: %s", s->name, name,
                                 MONGO_OBJECT_INDEX, err->message);
                } else if (ix && transport_error(err)) {
                        json_decref(ix);
                        return -1;
                }
                json_decref(ix);
        }
        if (c->pending) {
                if (!create_indexes(s, client, name, c->pending, err, &retriable)) {
                        mmp_info("sink", "%s: collection \"%s\": created the %zu declared indexes", s->name, name,
                                 json_array_size(c->pending));
                } else if (retriable) {
                        return transport_error(err) ? -1 : 0; /* next batch */
                } else {
                        mmp_err("sink", "%s: collection \"%s\": cannot create the declared indexes: %s", s->name,
                                name, err->message);
                }
                json_decref(c->pending);
                c->pending = NULL;
        }
        return 0;
}

static int mongo_ensure_indexes(void *ctx, const char *collection, const json_t *indexes, char *errstr,
                                size_t errstr_size) {
        mongo_sink_t *s = ctx;
        mongoc_client_t *client = mongoc_client_pool_pop(s->pool);
        coll_state_t *c;
        bson_error_t err;
        int retriable = 0, rc;

        rc = create_indexes(s, client, collection, indexes, &err, &retriable);
        mongoc_client_pool_push(s->pool, client);
        if (!rc)
                return 0;
        if (!retriable) {
                snprintf(errstr, errstr_size, "MongoDB createIndexes: %s", err.message);
                return -1;
        }
        /* Unreachable now: the writer makes them before its first write to
         * the collection, so they exist before any document depends on them. */
        if (!(c = coll_state(s, collection))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        if (!c->pending)
                c->pending = json_array();
        json_array_extend(c->pending, (json_t *)indexes);
        mmp_warn("sink", "%s: collection \"%s\": cannot create indexes now (%s); will create them before the "
                         "first write",
                 s->name, collection, err.message);
        return 0;
}

/* ---- bulks ---- */

static void fail_rest(mmp_write_t **writes, const size_t *idx, size_t nidx, mmp_failure_t **failures,
                      int retriable, const char *what, const char *msg) {
        for (size_t i = 0; i < nidx; i++) {
                mmp_write_t *w = writes[idx[i]];
                if (!failures[idx[i]])
                        failures[idx[i]] = mmp_sink_failure(w, retriable, "collection \"%s\" (key \"%s\"): %s%s",
                                                            w->collection, w->key, what, msg);
        }
}

/* Fails the writes that the writeErrors of a bulk reply name. Returns how
 * many errors there were. */
static size_t apply_write_errors(const bson_t *reply, mmp_write_t **writes, const slot_t *prep, const op_ref_t *refs,
                                 size_t nops, int phase, mmp_failure_t **failures) {
        bson_iter_t it, errs, e;
        size_t count = 0;

        if (!bson_iter_init_find(&it, reply, "writeErrors") || !BSON_ITER_HOLDS_ARRAY(&it) ||
            !bson_iter_recurse(&it, &errs))
                return 0;
        while (bson_iter_next(&errs)) {
                int64_t index = -1, code = 0;
                const char *msg = "";

                if (!BSON_ITER_HOLDS_DOCUMENT(&errs) || !bson_iter_recurse(&errs, &e))
                        continue;
                while (bson_iter_next(&e)) {
                        if (!strcmp(bson_iter_key(&e), "index"))
                                index = bson_iter_as_int64(&e);
                        else if (!strcmp(bson_iter_key(&e), "code"))
                                code = bson_iter_as_int64(&e);
                        else if (!strcmp(bson_iter_key(&e), "errmsg") && BSON_ITER_HOLDS_UTF8(&e))
                                msg = bson_iter_utf8(&e, NULL);
                }
                count++;
                if (index < 0 || (size_t)index >= nops || failures[refs[index].w])
                        continue;
                mmp_write_t *w = writes[refs[index].w];
                if (phase == PHASE_UPSERT)
                        failures[refs[index].w] = mmp_sink_failure(
                            w, server_code_retriable(code),
                            "collection \"%s\", document %zu of %zu (key \"%s\"): MongoDB refused it: %s (code %lld)",
                            w->collection, refs[index].doc + 1, prep[refs[index].w].p->n, w->key, msg, (long long)code);
                else
                        failures[refs[index].w] = mmp_sink_failure(
                            w, server_code_retriable(code), "collection \"%s\" (key \"%s\"): %s: %s (code %lld)",
                            w->collection, w->key,
                            w->kind == MMP_WRITE_DELETE ? "delete" : "removing the older documents", msg,
                            (long long)code);
        }
        return count;
}

/* The first writeConcernError's message, or NULL. */
static const char *write_concern_error(const bson_t *reply) {
        bson_iter_t it, errs, e;

        if (!bson_iter_init_find(&it, reply, "writeConcernErrors") || !BSON_ITER_HOLDS_ARRAY(&it) ||
            !bson_iter_recurse(&it, &errs) || !bson_iter_next(&errs) || !BSON_ITER_HOLDS_DOCUMENT(&errs) ||
            !bson_iter_recurse(&errs, &e))
                return NULL;
        while (bson_iter_next(&e))
                if (!strcmp(bson_iter_key(&e), "errmsg") && BSON_ITER_HOLDS_UTF8(&e))
                        return bson_iter_utf8(&e, NULL);
        return "write concern not satisfied";
}

/* Adds write w's operations of this phase to the bulk. */
static size_t add_ops(mongoc_bulk_operation_t *bulk, mmp_write_t *w, const prepared_t *p, size_t wi, int phase,
                      op_ref_t *refs, size_t nops) {
        bson_t opts = BSON_INITIALIZER, filter = BSON_INITIALIZER, nin, sel;
        bson_error_t err;

        if (phase == PHASE_UPSERT) {
                /* validate: false: doc_to_bson has already refused what
                 * libmongoc's check would. */
                BSON_APPEND_BOOL(&opts, "upsert", true);
                BSON_APPEND_BOOL(&opts, "validate", false);
                for (size_t d = 0; d < p->n; d++) {
                        bson_init(&sel);
                        BSON_APPEND_OID(&sel, "_id", &p->ids[d]);
                        mongoc_bulk_operation_replace_one_with_opts(bulk, &sel, p->docs[d], &opts, &err);
                        bson_destroy(&sel);
                        refs[nops++] = (op_ref_t){wi, d};
                }
        } else {
                BSON_APPEND_UTF8(&filter, "_lineage.object.bucket", w->bucket ? w->bucket : "");
                BSON_APPEND_UTF8(&filter, "_lineage.object.key", w->key);
                if (w->pipeline)
                        BSON_APPEND_UTF8(&filter, "_lineage.pipeline", w->pipeline);
                if (w->kind == MMP_WRITE_UPSERT) {
                        /* Every document of this (pipeline, bucket, key) that
                         * this write did not rewrite: older versions' and, for
                         * the same version, outputs the handler no longer makes. */
                        bson_t ids;
                        bson_append_document_begin(&filter, "_id", -1, &nin);
                        bson_append_array_begin(&nin, "$nin", -1, &ids);
                        for (size_t d = 0; d < p->n; d++) {
                                char buf[16];
                                const char *k;
                                bson_uint32_to_string((uint32_t)d, &k, buf, sizeof(buf));
                                BSON_APPEND_OID(&ids, k, &p->ids[d]);
                        }
                        bson_append_array_end(&nin, &ids);
                        bson_append_document_end(&filter, &nin);
                }
                mongoc_bulk_operation_remove_many_with_opts(bulk, &filter, NULL, &err);
                refs[nops++] = (op_ref_t){wi, 0};
        }
        bson_destroy(&opts);
        bson_destroy(&filter);
        return nops;
}

/* One unordered bulk of this phase for writes idx[0..nidx-1], all of one
 * collection and none failed yet. Failures go to failures[]. */
static void run_bulk(mongo_sink_t *s, mongoc_client_t *client, const char *coll, mmp_write_t **writes,
                     const slot_t *prep, const size_t *idx, size_t nidx, int phase, mmp_failure_t **failures) {
        mongoc_collection_t *c = mongoc_client_get_collection(client, s->database, coll);
        mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(c, &s->bulk_opts);
        size_t nops = 0, cap = 0;
        op_ref_t *refs;
        bson_error_t err;
        bson_t reply;

        for (size_t i = 0; i < nidx; i++)
                cap += phase == PHASE_UPSERT ? prep[idx[i]].p->n : 1;
        if (!cap || !(refs = calloc(cap, sizeof(*refs)))) {
                if (cap)
                        fail_rest(writes, idx, nidx, failures, 1, "", "out of memory");
                mongoc_bulk_operation_destroy(bulk);
                mongoc_collection_destroy(c);
                return;
        }
        for (size_t i = 0; i < nidx; i++)
                nops = add_ops(bulk, writes[idx[i]], prep[idx[i]].p, idx[i], phase, refs, nops);

        int64_t t0 = mmp_now_us();
        int ok = mongoc_bulk_operation_execute(bulk, &reply, &err) != 0;
        mmp_debug("sink", "%s: collection \"%s\": %s of %zu operations for %zu writes: %s in %.1f ms", s->name, coll,
                  phase == PHASE_UPSERT ? "upsert bulk" : "clean-up bulk", nops, nidx, ok ? "done" : err.message,
                  (double)(mmp_now_us() - t0) / 1000.0);
        if (!ok) {
                size_t nwe = apply_write_errors(&reply, writes, prep, refs, nops, phase, failures);
                const char *wce = write_concern_error(&reply);
                const char *what = phase == PHASE_UPSERT ? "" : "removing the older documents: ";

                if (wce)
                        /* Applied, not yet replicated as asked: writing them
                         * again is harmless and will be confirmed. */
                        fail_rest(writes, idx, nidx, failures, 1, "MongoDB write concern: ", wce);
                if (transport_error(&err)) {
                        fail_rest(writes, idx, nidx, failures, 1, "MongoDB: ", err.message);
                } else if (!nwe && !wce) {
                        /* The whole command failed. */
                        if (error_retriable(&err, &reply)) {
                                fail_rest(writes, idx, nidx, failures, 1, "MongoDB: ", err.message);
                        } else if (nidx > 1) {
                                /* Permanent but not tied to one write: each
                                 * alone, so that only the culprit fails. */
                                for (size_t i = 0; i < nidx; i++)
                                        run_bulk(s, client, coll, writes, prep, &idx[i], 1, phase, failures);
                        } else {
                                fail_rest(writes, idx, nidx, failures, 0, what, err.message);
                        }
                }
        }
        bson_destroy(&reply);
        free(refs);
        mongoc_bulk_operation_destroy(bulk);
        mongoc_collection_destroy(c);
}

/* Does write j take part in this phase of this round? */
static int in_phase(mmp_write_t **writes, const slot_t *prep, mmp_failure_t **failures, size_t j, int round,
                    int phase) {
        return prep[j].round == round && !failures[j] &&
               (phase == PHASE_CLEANUP || writes[j]->kind == MMP_WRITE_UPSERT);
}

/* Runs one phase of one round: a bulk per collection, in the order the
 * collections first appear. */
static void run_phase(mongo_sink_t *s, mongoc_client_t *client, mmp_write_t **writes, const slot_t *prep, size_t n,
                      int round, int phase, size_t *idx, mmp_failure_t **failures) {
        bson_error_t err;

        for (size_t i = 0; i < n; i++) {
                const char *coll = writes[i]->collection;
                size_t nidx = 0, j;

                if (!in_phase(writes, prep, failures, i, round, phase))
                        continue;
                for (j = 0; j < i; j++) /* this collection's bulk has run already */
                        if (in_phase(writes, prep, failures, j, round, phase) && !strcmp(writes[j]->collection, coll))
                                break;
                if (j < i)
                        continue;
                for (j = i; j < n; j++)
                        if (in_phase(writes, prep, failures, j, round, phase) && !strcmp(writes[j]->collection, coll))
                                idx[nidx++] = j;
                if (phase == PHASE_UPSERT && coll_prepare(s, client, coll, &err)) {
                        fail_rest(writes, idx, nidx, failures, 1, "MongoDB: ", err.message);
                        continue;
                }
                run_bulk(s, client, coll, writes, prep, idx, nidx, phase, failures);
        }
}

/* driver->prepare: the documents as BSON, on the submitting thread. */
static size_t mongo_prepare(void *ctx, mmp_write_t *w) {
        prepared_t *p = calloc(1, sizeof(*p));
        size_t bytes = 0;

        (void)ctx;
        if (!p)
                return 0; /* the writer tries again */
        if (prepare_write(w, p, &p->failure) && p->failure->retriable) {
                prepared_free(p); /* out of memory: the writer tries again */
                return 0;
        }
        for (size_t i = 0; i < p->n; i++)
                bytes += p->docs[i]->len;
        mmp_write_set_prepared(w, p, prepared_free);
        return bytes;
}

static void mongo_write_batch(void *ctx, mmp_write_t **writes, size_t n, mmp_failure_t **failures) {
        mongo_sink_t *s = ctx;
        slot_t *prep = calloc(n, sizeof(*prep));
        size_t *idx = calloc(n, sizeof(*idx));
        mongoc_client_t *client;
        int rounds;

        if (!prep || !idx) {
                for (size_t i = 0; i < n; i++)
                        failures[i] = mmp_sink_failure(writes[i], 1, "out of memory");
                free(prep);
                free(idx);
                return;
        }
        for (size_t i = 0; i < n; i++) {
                prepared_t *p = mmp_write_prepared(writes[i]);
                if (!p) { /* not prepared at submit (out of memory then): now */
                        mongo_prepare(s, writes[i]);
                        p = mmp_write_prepared(writes[i]);
                }
                prep[i].p = p;
                if (!p) {
                        failures[i] = mmp_sink_failure(writes[i], 1, "out of memory");
                        prep[i].round = -1;
                } else if (p->failure) {
                        failures[i] = p->failure; /* permanent: the write is done with */
                        p->failure = NULL;
                        prep[i].round = -1;
                }
        }
        if ((rounds = assign_rounds(writes, prep, n)) < 0) {
                for (size_t i = 0; i < n; i++)
                        if (!failures[i])
                                failures[i] = mmp_sink_failure(writes[i], 1, "out of memory");
                rounds = 0;
        }
        client = rounds ? mongoc_client_pool_pop(s->pool) : NULL;
        for (int r = 0; r < rounds; r++) {
                int retry = 0;

                run_phase(s, client, writes, prep, n, r, PHASE_UPSERT, idx, failures);
                run_phase(s, client, writes, prep, n, r, PHASE_CLEANUP, idx, failures);
                for (size_t i = 0; i < n; i++)
                        if (prep[i].round == r && failures[i] && failures[i]->retriable)
                                retry = 1;
                if (!retry)
                        continue;
                /* The writes of later rounds come after a write that will be
                 * retried on the same object: they must wait for it. */
                for (size_t i = 0; i < n; i++)
                        if (prep[i].round > r && !failures[i])
                                failures[i] = mmp_sink_failure(writes[i], 1,
                                                               "collection \"%s\" (key \"%s\"): waits for an earlier "
                                                               "write of the same object",
                                                               writes[i]->collection, writes[i]->key);
                break;
        }
        if (client)
                mongoc_client_pool_push(s->pool, client);
        free(prep);
        free(idx);
}

/* ---- open and close ---- */

static void log_handler(mongoc_log_level_t level, const char *domain, const char *message, void *data) {
        (void)data;
        if (level <= MONGOC_LOG_LEVEL_ERROR)
                mmp_err("mongoc", "%s: %s", domain, message);
        else if (level == MONGOC_LOG_LEVEL_WARNING)
                mmp_warn("mongoc", "%s: %s", domain, message);
        else if (level <= MONGOC_LOG_LEVEL_INFO)
                mmp_debug("mongoc", "%s: %s", domain, message);
        /* debug and trace: libmongoc's own tracing, not ours to print */
}

static void mongo_init_once(void) {
        mongoc_init();
        mongoc_log_set_handler(log_handler, NULL);
}

static void mongo_close(void *ctx) {
        mongo_sink_t *s = ctx;

        if (!s)
                return;
        while (s->colls) {
                coll_state_t *c = s->colls;
                s->colls = c->next;
                json_decref(c->pending);
                free(c->name);
                free(c);
        }
        mongoc_client_pool_destroy(s->pool);
        mongoc_uri_destroy(s->uri);
        mongoc_write_concern_destroy(s->wc);
        bson_destroy(&s->bulk_opts);
        bson_destroy(&s->cmd_opts);
        free(s->name);
        free(s->database);
        free(s);
}

/* An integer option in [min, max] or its default; -1 with errstr when bad. */
static int int_option(const char *name, const json_t *conf, const char *key, int64_t min, int64_t max, int64_t def,
                      int64_t *out, char *errstr, size_t errstr_size) {
        const json_t *v = json_object_get(conf, key);

        *out = def;
        if (!v)
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
                snprintf(errstr, errstr_size, "connections.%s.%s: expected an integer from %lld to %lld", name, key,
                         (long long)min, (long long)max);
                return -1;
        }
        *out = json_integer_value(v);
        return 0;
}

static const char *const known_keys[] = {"type",         "uri",          "database", "write_concern",
                                         "batch_max_docs", "batch_max_mb", "flush_ms", "timeout_ms"};

static int check_keys(const char *name, const json_t *conf, char *errstr, size_t errstr_size) {
        const char *key;
        json_t *v;

        json_object_foreach((json_t *)conf, key, v) {
                size_t i = 0;
                while (i < sizeof(known_keys) / sizeof(known_keys[0]) && strcmp(known_keys[i], key))
                        i++;
                if (i == sizeof(known_keys) / sizeof(known_keys[0])) {
                        snprintf(errstr, errstr_size,
                                 "connections.%s.%s: unknown key (expected uri, database, write_concern, "
                                 "batch_max_docs, batch_max_mb, flush_ms, timeout_ms)",
                                 name, key);
                        return -1;
                }
        }
        return 0;
}

/* MongoDB's rules for a database name. */
static int database_valid(const char *db) {
        return db && *db && strlen(db) < 64 && !strpbrk(db, "/\\. \"$");
}

/* timeout_ms unless the URI says otherwise: the URI is the user's last word. */
static void uri_default_int(mongoc_uri_t *uri, const char *option, int32_t value) {
        if (!mongoc_uri_has_option(uri, option))
                mongoc_uri_set_option_as_int32(uri, option, value);
}

static int parse_write_concern(mongo_sink_t *s, const char *name, const json_t *conf, int64_t timeout_ms,
                               char *errstr, size_t errstr_size) {
        const json_t *v = json_object_get(conf, "write_concern");

        s->wc = mongoc_write_concern_new();
        if (!v || (json_is_string(v) && !strcmp(json_string_value(v), "majority"))) {
                mongoc_write_concern_set_w(s->wc, MONGOC_WRITE_CONCERN_W_MAJORITY);
        } else if (json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 50) {
                mongoc_write_concern_set_w(s->wc, (int32_t)json_integer_value(v));
        } else {
                /* w: 0 is refused: an unacknowledged write cannot acknowledge an event. */
                snprintf(errstr, errstr_size,
                         "connections.%s.write_concern: expected \"majority\" or a number of members from 1 to 50",
                         name);
                return -1;
        }
        /* Without a bound, a replica set short of a majority would hold the
         * writer for ever; with it, the batch fails retriably and is retried. */
        mongoc_write_concern_set_wtimeout_int64(s->wc, timeout_ms);
        BSON_APPEND_BOOL(&s->bulk_opts, "ordered", false);
        if (!mongoc_write_concern_append(s->wc, &s->bulk_opts) || !mongoc_write_concern_append(s->wc, &s->cmd_opts)) {
                snprintf(errstr, errstr_size, "connections.%s.write_concern: not a valid write concern", name);
                return -1;
        }
        return 0;
}

static void *mongo_open(const char *name, const json_t *conf, char *errstr, size_t errstr_size) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        const char *uri = json_string_value(json_object_get(conf, "uri"));
        const char *db = json_string_value(json_object_get(conf, "database"));
        int64_t docs, mb, flush, timeout;
        bson_error_t err;
        mongo_sink_t *s;

        pthread_once(&once, mongo_init_once);
        if (check_keys(name, conf, errstr, errstr_size))
                return NULL;
        if (!uri || !*uri) {
                snprintf(errstr, errstr_size, "connections.%s.uri: expected a MongoDB URI (mongodb://host:port/...)",
                         name);
                return NULL;
        }
        if (!database_valid(db)) {
                snprintf(errstr, errstr_size,
                         "connections.%s.database: expected a database name (1 to 63 characters, none of "
                         "/\\. \"$)",
                         name);
                return NULL;
        }
        if (int_option(name, conf, "batch_max_docs", 1, 100000, DEFAULT_BATCH_DOCS, &docs, errstr, errstr_size) ||
            int_option(name, conf, "batch_max_mb", 1, 48, DEFAULT_BATCH_MB, &mb, errstr, errstr_size) ||
            int_option(name, conf, "flush_ms", 0, 10000, DEFAULT_FLUSH_MS, &flush, errstr, errstr_size) ||
            int_option(name, conf, "timeout_ms", 100, 3600000, DEFAULT_TIMEOUT_MS, &timeout, errstr, errstr_size))
                return NULL;
        if (!(s = calloc(1, sizeof(*s))) || !(s->name = strdup(name)) || !(s->database = strdup(db))) {
                snprintf(errstr, errstr_size, "connections.%s: out of memory", name);
                if (s)
                        free(s->name);
                free(s);
                return NULL;
        }
        bson_init(&s->bulk_opts);
        bson_init(&s->cmd_opts);
        s->limits = (mmp_sink_limits_t){.max_writes = (size_t)docs,
                                        .max_docs = (size_t)docs,
                                        .max_bytes = (size_t)mb << 20,
                                        .flush_ms = (int)flush};
        if (parse_write_concern(s, name, conf, timeout, errstr, errstr_size))
                goto fail;
        if (!(s->uri = mongoc_uri_new_with_error(uri, &err))) {
                snprintf(errstr, errstr_size, "connections.%s.uri: %s", name, err.message);
                goto fail;
        }
        uri_default_int(s->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, (int32_t)timeout);
        uri_default_int(s->uri, MONGOC_URI_SOCKETTIMEOUTMS, (int32_t)timeout);
        uri_default_int(s->uri, MONGOC_URI_CONNECTTIMEOUTMS, (int32_t)(timeout < 10000 ? timeout : 10000));
        if (!mongoc_uri_get_option_as_utf8(s->uri, MONGOC_URI_APPNAME, NULL))
                mongoc_uri_set_appname(s->uri, "mmpipe");
        if (!(s->pool = mongoc_client_pool_new_with_error(s->uri, &err))) {
                snprintf(errstr, errstr_size, "connections.%s.uri: %s", name, err.message);
                goto fail;
        }
        /* Version 2: server errors keep their own code (domain SERVER). */
        mongoc_client_pool_set_error_api(s->pool, MONGOC_ERROR_API_VERSION_2);
        /* No connection is made here: with the server down the engine still
         * starts, and its writes wait (sink.c) until the server is back. */
        return s;
fail:
        mongo_close(s);
        return NULL;
}

static void mongo_limits(void *ctx, mmp_sink_limits_t *limits) {
        *limits = ((mongo_sink_t *)ctx)->limits;
}

const mmp_sink_driver_t mmp_sink_mongodb_driver = {
    .type = "mongodb",
    .open = mongo_open,
    .write_batch = mongo_write_batch,
    .close = mongo_close,
    .limits = mongo_limits,
    .prepare = mongo_prepare,
    .ensure_indexes = mongo_ensure_indexes,
};

#endif /* MMP_WITH_MONGODB */
