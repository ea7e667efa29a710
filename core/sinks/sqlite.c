/*
 * The SQLite destination: one database file per connection, one table per
 * collection, the same upsert/version/delete semantics as MongoDB. Batches
 * are written on the sink's writer thread, the only user of the connection.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sink_driver.h"
#include "util/log.h"
#include "util/time.h"

#define SQLITE_DEFAULT_BUSY_TIMEOUT_MS 5000

/* A collection's table and its cached statements. */
typedef struct coll {
        struct coll *next;
        char *name;
        sqlite3_stmt *upsert;
        sqlite3_stmt *cleanup; /* the object's documents this write did not rewrite */
        sqlite3_stmt *del_one; /* (bucket, key) of one pipeline */
        sqlite3_stmt *del_all; /* (bucket, key) of every pipeline */
} coll_t;

typedef struct sqlite_sink {
        char *name; /* connection name */
        char *path;
        sqlite3 *db;
        coll_t *colls;
        int stale; /* forget colls once the current write is done with them */
        sqlite3_stmt *begin, *commit, *rollback, *savepoint, *release, *rollback_to;
} sqlite_sink_t;

/* How the writes of a batch end up. */
enum { WRITE_STORED = 0, WRITE_FAILED = 1, BATCH_ABORT = 2 };

/* Errors of the database rather than of one write: the transaction is lost
 * (SQLite may already have rolled it back) and trying again later may work. */
static int db_level_error(int rc) {
        switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
        case SQLITE_FULL:
        case SQLITE_IOERR:
        case SQLITE_NOMEM:
        case SQLITE_CANTOPEN:
        case SQLITE_PROTOCOL:
        case SQLITE_READONLY:
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB: return 1;
        default: return 0;
        }
}

/* Runs a cached statement that returns no rows. */
static int run(sqlite3_stmt *st) {
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static void coll_free(coll_t *c) {
        if (!c)
                return;
        sqlite3_finalize(c->upsert);
        sqlite3_finalize(c->cleanup);
        sqlite3_finalize(c->del_one);
        sqlite3_finalize(c->del_all);
        free(c->name);
        free(c);
}

/* Forgets every collection: after a rollback the tables created in it are
 * gone, and after a schema error the statements may be stale. */
static void colls_forget(sqlite_sink_t *s) {
        while (s->colls) {
                coll_t *c = s->colls;
                s->colls = c->next;
                coll_free(c);
        }
}

/* fmt has one %s: the (checked) collection name. */
static int prepare(sqlite3 *db, sqlite3_stmt **st, const char *fmt, const char *coll) {
        char sql[512];
        snprintf(sql, sizeof(sql), fmt, coll);
        return sqlite3_prepare_v2(db, sql, -1, st, NULL);
}

static int table_exists(sqlite_sink_t *s, const char *name, int *exists) {
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(
            s->db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE", -1, &st,
            NULL);
        if (rc != SQLITE_OK)
                return rc;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        *exists = rc == SQLITE_ROW;
        sqlite3_finalize(st);
        return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The collection's cached statements. With create, makes the table and its
 * index on first use; without, *out = NULL when the table does not exist.
 * Names are checked by the caller ([A-Za-z0-9_.-]+), so quoting is safe. */
static int coll_get(sqlite_sink_t *s, const char *name, int create, coll_t **out) {
        char sql[512];
        coll_t *c;
        int rc, exists;

        *out = NULL;
        for (c = s->colls; c; c = c->next) {
                if (!strcmp(c->name, name)) {
                        *out = c;
                        return SQLITE_OK;
                }
        }
        if (!create) {
                if ((rc = table_exists(s, name, &exists)) != SQLITE_OK || !exists)
                        return rc;
        } else {
                /* The index leads with (bucket, key) so that a delete of every
                 * pipeline's documents uses it too; ':' cannot occur in a
                 * collection name, so it never collides with a table. */
                snprintf(sql, sizeof(sql),
                         "CREATE TABLE IF NOT EXISTS \"%s\" (_id TEXT PRIMARY KEY, pipeline TEXT NOT "
                         "NULL, bucket TEXT NOT NULL, key TEXT NOT NULL, version TEXT NOT NULL, doc "
                         "TEXT NOT NULL);"
                         "CREATE INDEX IF NOT EXISTS \"%s:by_object\" ON \"%s\" (bucket, key, "
                         "pipeline);",
                         name, name, name);
                if ((rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL)) != SQLITE_OK)
                        return rc;
        }
        if (!(c = calloc(1, sizeof(*c))) || !(c->name = strdup(name))) {
                free(c);
                return SQLITE_NOMEM;
        }
        if ((rc = prepare(s->db, &c->upsert,
                          "INSERT INTO \"%s\" (_id, pipeline, bucket, key, version, doc) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(_id) DO UPDATE SET "
                          "pipeline = excluded.pipeline, bucket = excluded.bucket, key = excluded.key, "
                          "version = excluded.version, doc = excluded.doc",
                          name)) != SQLITE_OK ||
            (rc = prepare(s->db, &c->cleanup,
                          "DELETE FROM \"%s\" WHERE bucket = ?2 AND key = ?3 AND pipeline = ?1 AND "
                          "_id NOT IN (SELECT value FROM json_each(?4))",
                          name)) != SQLITE_OK ||
            (rc = prepare(s->db, &c->del_one,
                          "DELETE FROM \"%s\" WHERE bucket = ?1 AND key = ?2 AND pipeline = ?3", name)) !=
                SQLITE_OK ||
            (rc = prepare(s->db, &c->del_all, "DELETE FROM \"%s\" WHERE bucket = ?1 AND key = ?2", name)) !=
                SQLITE_OK) {
                coll_free(c);
                return rc;
        }
        c->next = s->colls;
        s->colls = c;
        *out = c;
        return SQLITE_OK;
}

/* Records why write w did not go in. A database-level error aborts the
 * batch (the caller fails every write retriably); any other SQLite error
 * is this write's alone. */
static int sql_failed(sqlite_sink_t *s, mmp_write_t *w, int rc, const char *what, char *abort_msg,
                      size_t abort_size, mmp_failure_t **failure) {
        const char *msg = sqlite3_errmsg(s->db);

        if (db_level_error(rc)) {
                snprintf(abort_msg, abort_size, "%s", msg);
                return BATCH_ABORT;
        }
        *failure = mmp_sink_failure(w, 0, "%s: %s", what, msg);
        /* The schema may have changed under us (a table dropped or altered
         * by hand): prepare again after this write. */
        s->stale = 1;
        return WRITE_FAILED;
}

/* Takes the documents' JSON text (serialised at submit, in the engine's
 * deterministic key order) and collects their ids. */
static int upsert_prepare(mmp_write_t *w, char **texts, json_t *ids, mmp_failure_t **failure) {
        size_t n = json_array_size(w->docs);
        char why[512];

        for (size_t i = 0; i < n; i++) {
                json_t *doc = json_array_get(w->docs, i);
                if (mmp_sink_doc_check(w, i, why, sizeof(why))) {
                        *failure = mmp_sink_failure(w, 0, "%s", why);
                        return -1;
                }
                texts[i] = mmp_write_doc_dup(w, i);
                if (!texts[i]) {
                        *failure = mmp_sink_failure(
                            w, 0,
                            "collection \"%s\", document %zu of %zu (key \"%s\"): cannot serialise "
                            "it as JSON",
                            w->collection, i + 1, n, w->key);
                        return -1;
                }
                json_array_append(ids, json_object_get(doc, "_id"));
        }
        return 0;
}

static int upsert_rows(sqlite_sink_t *s, coll_t *c, mmp_write_t *w, char **texts, const char *ids,
                       char *abort_msg, size_t abort_size, mmp_failure_t **failure) {
        size_t n = json_array_size(w->docs);
        const char *bucket = w->bucket ? w->bucket : "";
        const char *version = w->version ? w->version : "";
        char what[512];
        int rc;

        for (size_t i = 0; i < n; i++) {
                sqlite3_stmt *st = c->upsert;
                sqlite3_bind_text(st, 1,
                                  json_string_value(json_object_get(json_array_get(w->docs, i), "_id")), -1,
                                  SQLITE_STATIC);
                sqlite3_bind_text(st, 2, w->pipeline, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 3, bucket, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 4, w->key, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 5, version, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 6, texts[i], -1, SQLITE_STATIC);
                if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
                        snprintf(what, sizeof(what), "collection \"%s\", document %zu of %zu (key \"%s\")",
                                 w->collection, i + 1, n, w->key);
                        rc = sql_failed(s, w, rc, what, abort_msg, abort_size, failure);
                        sqlite3_reset(st);
                        return rc;
                }
                sqlite3_reset(st);
        }
        /* Every document of this (pipeline, bucket, key) that this write did
         * not rewrite goes, whether of an older version or of this one (the
         * handler now returns fewer). The rewritten rows all carry this
         * version, so the new version has replaced the old. */
        sqlite3_bind_text(c->cleanup, 1, w->pipeline, -1, SQLITE_STATIC);
        sqlite3_bind_text(c->cleanup, 2, bucket, -1, SQLITE_STATIC);
        sqlite3_bind_text(c->cleanup, 3, w->key, -1, SQLITE_STATIC);
        sqlite3_bind_text(c->cleanup, 4, ids, -1, SQLITE_STATIC);
        if ((rc = sqlite3_step(c->cleanup)) != SQLITE_DONE) {
                snprintf(what, sizeof(what), "collection \"%s\" (key \"%s\"): removing older documents",
                         w->collection, w->key);
                rc = sql_failed(s, w, rc, what, abort_msg, abort_size, failure);
                sqlite3_reset(c->cleanup);
                return rc;
        }
        sqlite3_reset(c->cleanup);
        return WRITE_STORED;
}

static int write_upsert(sqlite_sink_t *s, mmp_write_t *w, char *abort_msg, size_t abort_size,
                        mmp_failure_t **failure) {
        size_t n = json_array_size(w->docs);
        char **texts = calloc(n ? n : 1, sizeof(*texts));
        json_t *ids = json_array();
        char *ids_text = NULL;
        char what[512];
        coll_t *c;
        int rc, res = WRITE_FAILED;

        if (!w->pipeline || !w->key) {
                *failure = mmp_sink_failure(w, 0, "collection \"%s\": an upsert needs a pipeline and a key",
                                            w->collection);
                goto out;
        }
        if (w->docs && !json_is_array(w->docs)) {
                *failure =
                    mmp_sink_failure(w, 0, "collection \"%s\" (key \"%s\"): documents must be an array",
                                     w->collection, w->key);
                goto out;
        }
        if (!texts || !ids) {
                *failure = mmp_sink_failure(w, 1, "collection \"%s\": out of memory", w->collection);
                goto out;
        }
        /* Everything that can be wrong with the write itself is found before
         * the database is touched. */
        if (upsert_prepare(w, texts, ids, failure))
                goto out;
        if (!(ids_text = json_dumps(ids, JSON_COMPACT))) {
                *failure = mmp_sink_failure(w, 1, "collection \"%s\": out of memory", w->collection);
                goto out;
        }
        snprintf(what, sizeof(what), "collection \"%s\"", w->collection);
        if ((rc = coll_get(s, w->collection, 1, &c)) != SQLITE_OK) {
                res = sql_failed(s, w, rc, what, abort_msg, abort_size, failure);
                goto out;
        }
        if ((rc = run(s->savepoint)) != SQLITE_OK) {
                res = sql_failed(s, w, rc, what, abort_msg, abort_size, failure);
                goto out;
        }
        res = upsert_rows(s, c, w, texts, ids_text, abort_msg, abort_size, failure);
        /* Undo this write alone. If even that fails, its rows could still
         * commit with the batch: give the whole batch up instead. */
        if (res == WRITE_FAILED && run(s->rollback_to) != SQLITE_OK) {
                snprintf(abort_msg, abort_size, "%s", sqlite3_errmsg(s->db));
                res = BATCH_ABORT;
        }
        if (res != BATCH_ABORT && (rc = run(s->release)) != SQLITE_OK && res == WRITE_STORED)
                res = sql_failed(s, w, rc, what, abort_msg, abort_size, failure);
out:
        for (size_t i = 0; texts && i < n; i++)
                free(texts[i]);
        free(texts);
        free(ids_text);
        json_decref(ids);
        return res;
}

static int write_delete(sqlite_sink_t *s, mmp_write_t *w, char *abort_msg, size_t abort_size,
                        mmp_failure_t **failure) {
        const char *bucket = w->bucket ? w->bucket : "";
        char what[512];
        sqlite3_stmt *st;
        coll_t *c;
        int rc;

        if (!w->key) {
                *failure = mmp_sink_failure(w, 0, "collection \"%s\": a delete needs a key", w->collection);
                return WRITE_FAILED;
        }
        snprintf(what, sizeof(what), "collection \"%s\" (key \"%s\"): delete", w->collection, w->key);
        if ((rc = coll_get(s, w->collection, 0, &c)) != SQLITE_OK)
                return sql_failed(s, w, rc, what, abort_msg, abort_size, failure);
        if (!c)
                return WRITE_STORED; /* no table, nothing to delete */
        /* One statement: atomic by itself, no savepoint needed. */
        st = w->pipeline ? c->del_one : c->del_all;
        sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, w->key, -1, SQLITE_STATIC);
        if (w->pipeline)
                sqlite3_bind_text(st, 3, w->pipeline, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
                rc = sql_failed(s, w, rc, what, abort_msg, abort_size, failure);
                sqlite3_reset(st);
                return rc;
        }
        sqlite3_reset(st);
        return WRITE_STORED;
}

static void sqlite_write_batch(void *ctx, mmp_write_t **writes, size_t n, mmp_failure_t **failures) {
        sqlite_sink_t *s = ctx;
        char abort_msg[512] = "";
        int rc, aborted = 0;

        /* IMMEDIATE: wait for the write lock here (busy_timeout), not fail on
         * a lock upgrade halfway through the batch. */
        if ((rc = run(s->begin)) != SQLITE_OK) {
                snprintf(abort_msg, sizeof(abort_msg), "%s", sqlite3_errmsg(s->db));
                aborted = 1;
        }
        for (size_t i = 0; i < n && !aborted; i++) {
                mmp_write_t *w = writes[i];
                int res;

                if (!mmp_sink_collection_valid(w->collection)) {
                        failures[i] = mmp_sink_failure(
                            w, 0, "invalid collection name \"%s\" (expected [A-Za-z0-9_.-]+)",
                            w->collection ? w->collection : "");
                        continue;
                }
                if (w->kind == MMP_WRITE_DELETE)
                        res = write_delete(s, w, abort_msg, sizeof(abort_msg), &failures[i]);
                else
                        res = write_upsert(s, w, abort_msg, sizeof(abort_msg), &failures[i]);
                aborted = res == BATCH_ABORT;
                if (s->stale) {
                        colls_forget(s);
                        s->stale = 0;
                }
        }
        if (!aborted && (rc = run(s->commit)) != SQLITE_OK) {
                snprintf(abort_msg, sizeof(abort_msg), "%s", sqlite3_errmsg(s->db));
                aborted = 1;
        }
        if (!aborted)
                return;

        if (!sqlite3_get_autocommit(s->db))
                run(s->rollback);
        colls_forget(s); /* tables created in the lost transaction are gone */
        /* Debug only: the sink logs the outage once, and its end (sink.c). */
        mmp_debug("sink", "%s: SQLite database \"%s\": batch of %zu writes not stored: %s", s->name, s->path,
                  n, abort_msg);
        for (size_t i = 0; i < n; i++)
                if (!failures[i])
                        failures[i] = mmp_sink_failure(
                            writes[i], 1, "SQLite database \"%s\": batch not stored: %s", s->path, abort_msg);
}

/* The CREATE INDEX statement for one validated index (sink_driver.h), as
 * SQLite keeps it in sqlite_master. Queries use the index when they name
 * the same expression: json_extract(doc, '$.metadata.type'). */
static char *index_sql(const char *coll, const json_t *ix) {
        const char *path, *name = json_string_value(json_object_get(ix, "name"));
        json_t *order;
        char *sql = NULL;
        size_t len = 0;
        FILE *fp = open_memstream(&sql, &len);
        int first = 1;

        if (!fp)
                return NULL;
        fprintf(fp, "CREATE %sINDEX \"%s:%s\" ON \"%s\" (",
                json_is_true(json_object_get(ix, "unique")) ? "UNIQUE " : "", coll, name, coll);
        json_object_foreach(json_object_get(ix, "keys"), path, order) {
                fprintf(fp, "%sjson_extract(doc, '$.%s') %s", first ? "" : ", ", path,
                        json_integer_value(order) < 0 ? "DESC" : "ASC");
                first = 0;
        }
        fputc(')', fp);
        if (fclose(fp)) {
                free(sql);
                return NULL;
        }
        return sql;
}

/* The SQL of index `name` in sqlite_master (malloc), or NULL when there is none. */
static int index_existing(sqlite_sink_t *s, const char *name, char **sql) {
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(s->db, "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1", -1,
                                    &st, NULL);
        *sql = NULL;
        if (rc != SQLITE_OK)
                return rc;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                *sql = strdup(sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "");
        sqlite3_finalize(st);
        return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int sqlite_ensure_indexes(void *ctx, const char *collection, const json_t *indexes, char *errstr,
                                 size_t errstr_size) {
        sqlite_sink_t *s = ctx;
        coll_t *c;
        int rc;

        if ((rc = coll_get(s, collection, 1, &c)) != SQLITE_OK) {
                snprintf(errstr, errstr_size, "SQLite database \"%s\": cannot create the table: %s", s->path,
                         sqlite3_errmsg(s->db));
                return -1;
        }
        for (size_t i = 0; i < json_array_size(indexes); i++) {
                const json_t *ix = json_array_get(indexes, i);
                const char *name = json_string_value(json_object_get(ix, "name"));
                char full[512], *want = index_sql(collection, ix), *have = NULL;

                snprintf(full, sizeof(full), "%s:%s", collection, name);
                if (!want || (rc = index_existing(s, full, &have)) != SQLITE_OK) {
                        snprintf(errstr, errstr_size, "index \"%s\": %s", name,
                                 want ? sqlite3_errmsg(s->db) : "out of memory");
                        free(want);
                        return -1;
                }
                if (have && strcmp(have, want) != 0) {
                        snprintf(errstr, errstr_size,
                                 "index \"%s\": SQLite database \"%s\" already has index \"%s\" defined "
                                 "differently (%s); drop it or give this one another name",
                                 name, s->path, full, have);
                        rc = -1;
                } else if (!have && (rc = sqlite3_exec(s->db, want, NULL, NULL, NULL)) != SQLITE_OK) {
                        snprintf(errstr, errstr_size, "index \"%s\": SQLite database \"%s\": %s", name, s->path,
                                 sqlite3_errmsg(s->db));
                }
                free(want);
                free(have);
                if (rc != SQLITE_OK)
                        return -1;
        }
        return 0;
}

static void sqlite_close(void *ctx) {
        sqlite_sink_t *s = ctx;

        if (!s)
                return;
        colls_forget(s);
        sqlite3_finalize(s->begin);
        sqlite3_finalize(s->commit);
        sqlite3_finalize(s->rollback);
        sqlite3_finalize(s->savepoint);
        sqlite3_finalize(s->release);
        sqlite3_finalize(s->rollback_to);
        if (s->db) {
                sqlite3_exec(s->db, "PRAGMA optimize", NULL, NULL, NULL);
                sqlite3_close(s->db);
        }
        free(s->name);
        free(s->path);
        free(s);
}

/* Switches the database to WAL. SQLite answers SQLITE_BUSY at once, without
 * its busy handler, when another process is switching or opening the same
 * new database at that moment (several engines in one consumer group
 * starting together): try again for up to busy_ms. */
static int set_wal(sqlite_sink_t *s, int busy_ms, sqlite3_stmt **stp) {
        int64_t until = mmp_now_ms() + busy_ms;
        int rc;
        for (;;) {
                if ((rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, stp, NULL)) == SQLITE_OK)
                        rc = sqlite3_step(*stp);
                if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || mmp_now_ms() >= until)
                        return rc;
                sqlite3_finalize(*stp);
                *stp = NULL;
                struct timespec ts = {0, 20 * 1000000};
                nanosleep(&ts, NULL);
        }
}

static int open_db(sqlite_sink_t *s, int busy_ms) {
        sqlite3_stmt *st = NULL;
        int rc;

        rc = sqlite3_open_v2(s->path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK)
                return rc;
        sqlite3_busy_timeout(s->db, busy_ms);
        /* WAL: readers (sqlite3 CLI, a search service) never block the writer.
         * NORMAL: durable across a process crash; a power cut may lose the
         * last transactions, which the source then delivers again. */
        rc = set_wal(s, busy_ms, &st);
        if (!st)
                return rc;
        if (rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
                mmp_debug("sink", "%s: SQLite journal mode is %s, not wal", s->name,
                          (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return rc;
        if ((rc = sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL)) != SQLITE_OK)
                return rc;
        if ((rc = sqlite3_prepare_v2(s->db, "BEGIN IMMEDIATE", -1, &s->begin, NULL)) ||
            (rc = sqlite3_prepare_v2(s->db, "COMMIT", -1, &s->commit, NULL)) ||
            (rc = sqlite3_prepare_v2(s->db, "ROLLBACK", -1, &s->rollback, NULL)) ||
            (rc = sqlite3_prepare_v2(s->db, "SAVEPOINT w", -1, &s->savepoint, NULL)) ||
            (rc = sqlite3_prepare_v2(s->db, "RELEASE w", -1, &s->release, NULL)) ||
            (rc = sqlite3_prepare_v2(s->db, "ROLLBACK TO w", -1, &s->rollback_to, NULL)))
                return rc;
        return SQLITE_OK;
}

static void *sqlite_open(const char *name, const json_t *conf, char *errstr, size_t errstr_size) {
        const char *path = json_string_value(json_object_get(conf, "path"));
        const json_t *busy = json_object_get(conf, "busy_timeout_ms");
        sqlite_sink_t *s;
        char why[512];
        int rc;

        if (!path || !*path) {
                snprintf(errstr, errstr_size, "connections.%s.path: expected a string (the database file)",
                         name);
                return NULL;
        }
        if (busy &&
            (!json_is_integer(busy) || json_integer_value(busy) < 0 || json_integer_value(busy) > 3600000)) {
                snprintf(errstr, errstr_size,
                         "connections.%s.busy_timeout_ms: expected an integer from 0 to 3600000", name);
                return NULL;
        }
        if (strcmp(path, ":memory:") != 0 && mmp_sink_mkparents(path, why, sizeof(why))) {
                snprintf(errstr, errstr_size, "connections.%s.path: cannot open SQLite database \"%s\": %s",
                         name, path, why);
                return NULL;
        }
        if (!(s = calloc(1, sizeof(*s))) || !(s->name = strdup(name)) || !(s->path = strdup(path))) {
                snprintf(errstr, errstr_size, "connections.%s: out of memory", name);
                sqlite_close(s);
                return NULL;
        }
        rc = open_db(s, busy ? (int)json_integer_value(busy) : SQLITE_DEFAULT_BUSY_TIMEOUT_MS);
        if (rc != SQLITE_OK) {
                snprintf(errstr, errstr_size, "connections.%s.path: cannot open SQLite database \"%s\": %s",
                         name, path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
                sqlite_close(s);
                return NULL;
        }
        return s;
}

const mmp_sink_driver_t mmp_sink_sqlite_driver = {
    .type = "sqlite",
    .open = sqlite_open,
    .write_batch = sqlite_write_batch,
    .close = sqlite_close,
    .ensure_indexes = sqlite_ensure_indexes,
};
