/*
 * Destinations: the SQLite driver's upsert/version/delete semantics against
 * real database files (read back with the sqlite3 API), the writer thread's
 * one-callback-per-write promise and its retries, declared indexes, open
 * errors, and the JSON Lines driver.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw */
#endif
#include <setjmp.h> /* cmocka.h needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sinks/sink.h"

static char tmpdir[256];
static char dbpath[512];

/* ---- callbacks ---- */

typedef struct result {
        int calls;
        mmp_failure_t *failure;
} result_t;

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int done_count;

static void on_done(mmp_write_t *w, mmp_failure_t *failure, void *opaque) {
        result_t *r = opaque;
        pthread_mutex_lock(&done_lock);
        r->calls++;
        mmp_failure_free(r->failure);
        r->failure = failure;
        done_count++;
        pthread_cond_broadcast(&done_cond);
        pthread_mutex_unlock(&done_lock);
}

/* Waits until n callbacks arrived since the test began (10 s at most). */
static void wait_done(int n) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        pthread_mutex_lock(&done_lock);
        while (done_count < n && pthread_cond_timedwait(&done_cond, &done_lock, &until) == 0)
                ;
        int got = done_count;
        pthread_mutex_unlock(&done_lock);
        assert_int_equal(got, n);
}

static void results_clear(result_t *r, size_t n) {
        for (size_t i = 0; i < n; i++) {
                mmp_failure_free(r[i].failure);
                r[i].failure = NULL;
                r[i].calls = 0;
        }
}

/* ---- documents ---- */

static const char *oid(int n) {
        static __thread char buf[8][25]; /* the flood test builds documents on two threads */
        static __thread int next;
        char *b = buf[next++ % 8];
        snprintf(b, 25, "%024x", n);
        return b;
}

/* An array of documents with the given ids (terminated by -1); keys are
 * built out of sorted order on purpose. */
static json_t *docs(int first, ...) {
        json_t *a = json_array();
        va_list ap;
        va_start(ap, first);
        for (int id = first; id >= 0; id = va_arg(ap, int)) {
                char text[32];
                snprintf(text, sizeof(text), "doc %d", id);
                json_array_append_new(a, json_pack("{s:s, s:s, s:i}", "text", text, "_id", oid(id), "n", id));
        }
        va_end(ap);
        return a;
}

/* "id1,id2,..." as ids_of returns it (ids ascending, -1 terminated). */
static const char *ids(int first, ...) {
        static char buf[4096];
        size_t len = 0;
        va_list ap;
        buf[0] = '\0';
        va_start(ap, first);
        for (int id = first; id >= 0; id = va_arg(ap, int))
                len += snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "," : "", oid(id));
        va_end(ap);
        return buf;
}

static void upsert(mmp_sink_t *s, result_t *r, const char *coll, const char *pipeline, const char *bucket,
                   const char *key, const char *version, json_t *d) {
        mmp_write_t *w = mmp_write_new(MMP_WRITE_UPSERT, coll, pipeline, bucket, key, version, d, on_done, r);
        assert_non_null(w);
        mmp_sink_submit(s, w);
}

static void delete (mmp_sink_t *s, result_t *r, const char *coll, const char *pipeline, const char *bucket,
                    const char *key) {
        mmp_write_t *w = mmp_write_new(MMP_WRITE_DELETE, coll, pipeline, bucket, key, NULL, NULL, on_done, r);
        assert_non_null(w);
        mmp_sink_submit(s, w);
}

/* ---- reading back ---- */

/* First column of the first row as text ("" when none); static buffer. */
static const char *q1(const char *fmt, ...) {
        static char out[65536];
        char sql[2048];
        sqlite3 *db;
        sqlite3_stmt *st;
        va_list ap;
        int rc;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof(sql), fmt, ap);
        va_end(ap);
        assert_int_equal(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                fail_msg("%s: %s", sql, sqlite3_errmsg(db));
        out[0] = '\0';
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
                snprintf(out, sizeof(out), "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        sqlite3_close(db);
        return out;
}

static const char *ids_of(const char *coll, const char *pipeline, const char *bucket, const char *key) {
        return q1("SELECT group_concat(_id, ',') FROM (SELECT _id FROM \"%s\" WHERE pipeline = '%s' AND "
                  "bucket = '%s' AND key = '%s' ORDER BY _id)",
                  coll, pipeline, bucket, key);
}

static int rows(const char *coll) {
        return atoi(q1("SELECT count(*) FROM \"%s\"", coll));
}

static mmp_sink_t *open_sqlite(const char *path, int busy_ms) {
        char err[512] = "";
        json_t *conf = json_pack("{s:s, s:s}", "type", "sqlite", "path", path);
        if (busy_ms >= 0)
                json_object_set_new(conf, "busy_timeout_ms", json_integer(busy_ms));
        mmp_sink_t *s = mmp_sink_new("local", conf, err, sizeof(err));
        json_decref(conf);
        if (!s)
                fail_msg("open: %s", err);
        return s;
}

static void assert_stored(result_t *r, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (r[i].failure)
                        fail_msg("write %zu: %s", i, r[i].failure->message);
                assert_int_equal(r[i].calls, 1);
        }
}

static void assert_failed(const result_t *r, int retriable, const char *message) {
        assert_int_equal(r->calls, 1);
        assert_non_null(r->failure);
        assert_int_equal(r->failure->code, MMP_ERR_SINK);
        assert_int_equal(r->failure->stage, MMP_STAGE_STORE);
        assert_int_equal(r->failure->retriable, retriable);
        assert_string_equal(r->failure->message, message);
}

/* ---- fixtures ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static int setup(void **state) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/mmp-test-sinks-XXXXXX");
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(dbpath, sizeof(dbpath), "%s/mmpipe.db", tmpdir);
        pthread_mutex_lock(&done_lock);
        done_count = 0;
        pthread_mutex_unlock(&done_lock);
        return 0;
}

static int teardown(void **state) {
        return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- sqlite ---- */

/* Several processes opening the same new database at once (engines of one
 * consumer group starting together) all succeed. Written after one member
 * of test_kafka_group (ASan build) died at start-up with "cannot open SQLite
 * database: database is locked"; this unforced race did not reproduce it in
 * 60 rounds without the fix, so it guards the scenario, not that timing. */
static void test_sqlite_concurrent_first_open(void **state) {
        (void)state;
        for (int round = 0; round < 20; round++) {
                char path[512];
                pid_t kids[4];
                snprintf(path, sizeof(path), "%s/race-%d.db", tmpdir, round);
                for (int k = 0; k < 4; k++) {
                        if ((kids[k] = fork()) == 0) {
                                char err[512];
                                json_t *conf = json_pack("{s:s, s:s}", "type", "sqlite", "path", path);
                                mmp_sink_t *s = mmp_sink_new("local", conf, err, sizeof(err));
                                if (!s)
                                        fprintf(stderr, "round %d child %d: %s\n", round, k, err);
                                mmp_sink_free(s);
                                json_decref(conf);
                                _exit(s ? 0 : 1);
                        }
                }
                for (int k = 0; k < 4; k++) {
                        int st;
                        assert_int_equal(waitpid(kids[k], &st, 0), kids[k]);
                        assert_true(WIFEXITED(st));
                        assert_int_equal(WEXITSTATUS(st), 0);
                }
        }
}

static void test_sqlite_upsert_twice_same_rows(void **state) {
        mmp_sink_t *s = open_sqlite(dbpath, -1);
        result_t r[3] = {{0}};
        json_t *changed;

        upsert(s, &r[0], "docs", "p1", "bkt", "a.txt", "v1", docs(1, 2, 3, -1));
        wait_done(1);
        upsert(s, &r[1], "docs", "p1", "bkt", "a.txt", "v1", docs(1, 2, 3, -1));
        wait_done(2);
        assert_stored(r, 2);

        assert_int_equal(rows("docs"), 3);
        assert_string_equal(ids_of("docs", "p1", "bkt", "a.txt"), ids(1, 2, 3, -1));
        /* Compact, keys sorted, whatever order the handler used. */
        assert_string_equal(q1("SELECT doc FROM docs WHERE _id = '%s'", oid(2)),
                            "{\"text\":\"doc 2\",\"_id\":\"000000000000000000000002\",\"n\":2}");
        assert_string_equal(
            q1("SELECT pipeline || '|' || bucket || '|' || key || '|' || version FROM docs WHERE _id = '%s'",
               oid(3)),
            "p1|bkt|a.txt|v1");
        assert_string_equal(q1("PRAGMA journal_mode"), "wal");
        assert_string_equal(q1("SELECT json_extract(doc, '$.text') FROM docs WHERE _id = '%s'", oid(1)),
                            "doc 1");

        /* Same ids, new content (a fixed handler): the rows are updated. */
        changed = docs(1, 2, 3, -1);
        json_object_set_new(json_array_get(changed, 0), "text", json_string("fixed"));
        upsert(s, &r[2], "docs", "p1", "bkt", "a.txt", "v1", changed);
        wait_done(3);
        assert_stored(r, 3);
        assert_int_equal(rows("docs"), 3);
        assert_string_equal(q1("SELECT doc FROM docs WHERE _id = '%s'", oid(1)),
                            "{\"text\":\"fixed\",\"_id\":\"000000000000000000000001\",\"n\":1}");
        mmp_sink_free(s);
        results_clear(r, 3);
}

/* Writes submitted while the thread holds reach the writer only at the
 * release, all of them, in submit order (the delete comes after its upsert). */
static void test_sink_hold_release(void **state) {
        mmp_sink_t *s = open_sqlite(dbpath, -1);
        result_t r[4] = {{0}};

        mmp_sink_hold();
        upsert(s, &r[0], "docs", "p1", "bkt", "a.txt", "v1", docs(1, 2, -1));
        upsert(s, &r[1], "docs", "p1", "bkt", "b.txt", "v1", docs(3, -1));
        delete (s, &r[2], "docs", "p1", "bkt", "a.txt");
        upsert(s, &r[3], "docs", "p1", "bkt", "c.txt", "v1", docs(4, -1));
        usleep(100 * 1000); /* a writer that had them would have called back by now */
        pthread_mutex_lock(&done_lock);
        assert_int_equal(done_count, 0);
        pthread_mutex_unlock(&done_lock);
        mmp_sink_release();
        wait_done(4);
        assert_stored(r, 4);
        assert_string_equal(ids_of("docs", "p1", "bkt", "a.txt"), "");
        assert_string_equal(ids_of("docs", "p1", "bkt", "b.txt"), ids(3, -1));
        assert_string_equal(ids_of("docs", "p1", "bkt", "c.txt"), ids(4, -1));

        /* Released: the next write goes at once. */
        upsert(s, &r[0], "docs", "p1", "bkt", "d.txt", "v1", docs(5, -1));
        wait_done(5);
        assert_string_equal(ids_of("docs", "p1", "bkt", "d.txt"), ids(5, -1));
        mmp_sink_free(s);
        results_clear(r, 4);
}

static void test_sqlite_new_version_replaces_old(void **state) {
        mmp_sink_t *s = open_sqlite(dbpath, -1);
        result_t r[5] = {{0}};

        upsert(s, &r[0], "docs", "p1", "bkt", "k1", "v1", docs(1, 2, 3, -1));
        upsert(s, &r[1], "docs", "p2", "bkt", "k1", "v1", docs(4, 5, -1)); /* other pipeline */
        upsert(s, &r[2], "docs", "p1", "bkt", "k2", "v1", docs(6, -1));    /* other key */
        upsert(s, &r[3], "docs", "p1", "bkt2", "k1", "v1", docs(7, -1));   /* other bucket */
        wait_done(4);
        upsert(s, &r[4], "docs", "p1", "bkt", "k1", "v2", docs(8, 9, -1));
        wait_done(5);
        assert_stored(r, 5);

        assert_string_equal(ids_of("docs", "p1", "bkt", "k1"), ids(8, 9, -1));
        assert_string_equal(q1("SELECT group_concat(DISTINCT version) FROM docs WHERE pipeline = 'p1' AND "
                               "bucket = 'bkt' AND key = 'k1'"),
                            "v2");
        assert_string_equal(ids_of("docs", "p2", "bkt", "k1"), ids(4, 5, -1));
        assert_string_equal(ids_of("docs", "p1", "bkt", "k2"), ids(6, -1));
        assert_string_equal(ids_of("docs", "p1", "bkt2", "k1"), ids(7, -1));
        assert_int_equal(rows("docs"), 6);
        mmp_sink_free(s);
        results_clear(r, 5);
}

static void test_sqlite_fewer_docs_same_version(void **state) {
        mmp_sink_t *s = open_sqlite(dbpath, -1);
        result_t r[5] = {{0}};

        upsert(s, &r[0], "docs", "p1", "", "/data/a.txt", "sha", docs(1, 2, 3, -1));
        upsert(s, &r[1], "docs", "p1", "", "/data/b.txt", "sha", docs(4, -1));
        wait_done(2);
        upsert(s, &r[2], "docs", "p1", "", "/data/a.txt", "sha", docs(2, -1));
        wait_done(3);
        assert_string_equal(ids_of("docs", "p1", "", "/data/a.txt"), ids(2, -1));
        assert_string_equal(ids_of("docs", "p1", "", "/data/b.txt"), ids(4, -1));

        /* No documents at all still replaces what was there. */
        upsert(s, &r[3], "docs", "p1", "", "/data/a.txt", "sha", json_array());
        upsert(s, &r[4], "docs", "p1", "", "/data/b.txt", "sha2", NULL);
        wait_done(5);
        assert_stored(r, 5);
        assert_int_equal(rows("docs"), 0);
        mmp_sink_free(s);
        results_clear(r, 5);
}

static void test_sqlite_delete(void **state) {
        mmp_sink_t *s = open_sqlite(dbpath, -1);
        result_t r[7] = {{0}};

        upsert(s, &r[0], "docs", "p1", "bkt", "k", "v1", docs(1, 2, -1));
        upsert(s, &r[1], "docs", "p2", "bkt", "k", "v1", docs(3, -1));
        upsert(s, &r[2], "docs", "p1", "bkt", "k2", "v1", docs(4, -1));
        upsert(s, &r[3], "docs", "p2", "other", "k", "v1", docs(5, -1));
        wait_done(4);

        delete (s, &r[4], "docs", "p1", "bkt", "k");
        wait_done(5);
        assert_string_equal(ids_of("docs", "p1", "bkt", "k"), "");
        assert_string_equal(ids_of("docs", "p2", "bkt", "k"), ids(3, -1));
        assert_string_equal(ids_of("docs", "p1", "bkt", "k2"), ids(4, -1));

        delete (s, &r[5], "docs", NULL, "bkt", "k");
        /* A collection never written to: nothing to delete, no table made. */
        delete (s, &r[6], "never_written", NULL, "bkt", "k");
        wait_done(7);
        assert_stored(r, 7);
        assert_string_equal(ids_of("docs", "p2", "bkt", "k"), "");
        assert_string_equal(ids_of("docs", "p1", "bkt", "k2"), ids(4, -1));
        assert_string_equal(ids_of("docs", "p2", "other", "k"), ids(5, -1));
        assert_int_equal(rows("docs"), 2);
        assert_string_equal(q1("SELECT count(*) FROM sqlite_master WHERE name = 'never_written'"), "0");
        mmp_sink_free(s);
        results_clear(r, 7);
}

/* A table made beforehand with a CHECK that fails on the second document
 * of a write: the first document must be rolled back with it. */
static void create_checked_table(void) {
        sqlite3 *db;
        assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db,
                                      "CREATE TABLE checked (_id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, "
                                      "bucket TEXT NOT NULL, key TEXT NOT NULL, version TEXT NOT NULL, "
                                      "doc TEXT NOT NULL CHECK (length(doc) < 60))",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);
}

static void test_sqlite_bad_write_fails_alone(void **state) {
        result_t r[8] = {{0}};
        json_t *missing_id = docs(2, -1), *bad_id = docs(4, -1), *big = docs(10, 11, -1);
        mmp_sink_t *s;

        create_checked_table();
        s = open_sqlite(dbpath, -1);
        json_array_append_new(missing_id, json_pack("{s:s}", "text", "no id"));
        json_object_set_new(json_array_get(bad_id, 0), "_id", json_string("xyz"));
        json_object_set_new(json_array_get(big, 1), "text",
                            json_string("a text long enough to fail the CHECK"));

        upsert(s, &r[0], "docs", "p1", "b", "k0", "v", docs(1, -1));
        upsert(s, &r[1], "docs", "p1", "b", "k1", "v", missing_id);
        upsert(s, &r[2], "bad name", "p1", "b", "k2", "v", docs(3, -1));
        upsert(s, &r[3], "docs", "p1", "b", "k3", "v", json_pack("[i]", 42));
        upsert(s, &r[4], "docs", "p1", "b", "k4", "v", bad_id);
        upsert(s, &r[5], "docs", "p1", "b", "k5", "v", docs(5, -1));
        upsert(s, &r[6], "checked", "p1", "b", "k6", "v", big);
        upsert(s, &r[7], "checked", "p1", "b", "k7", "v", docs(12, -1));
        wait_done(8);

        assert_stored(&r[0], 1);
        assert_failed(&r[1], 0,
                      "collection \"docs\", document 2 of 2 (key \"k1\"): _id must be a string of 24 hex "
                      "characters");
        assert_string_equal(r[1].failure->pipeline, "p1");
        assert_failed(&r[2], 0, "invalid collection name \"bad name\" (expected [A-Za-z0-9_.-]+)");
        assert_failed(&r[3], 0, "collection \"docs\", document 1 of 1 (key \"k3\"): not a JSON object");
        assert_failed(&r[4], 0,
                      "collection \"docs\", document 1 of 1 (key \"k4\"): _id must be a string of 24 hex "
                      "characters");
        assert_stored(&r[5], 1);
        assert_failed(&r[6], 0,
                      "collection \"checked\", document 2 of 2 (key \"k6\"): CHECK constraint failed: "
                      "length(doc) < 60");
        assert_stored(&r[7], 1);

        assert_string_equal(q1("SELECT group_concat(_id, ',') FROM (SELECT _id FROM docs ORDER BY _id)"),
                            ids(1, 5, -1));
        assert_string_equal(q1("SELECT group_concat(_id, ',') FROM checked"), ids(12, -1));
        mmp_sink_free(s);
        results_clear(r, 8);
}

/* Callbacks so far (the test's own count). */
static int done_so_far(void) {
        pthread_mutex_lock(&done_lock);
        int n = done_count;
        pthread_mutex_unlock(&done_lock);
        return n;
}

static void sleep_ms(int ms) {
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

/* Fast retries for the tests; drain_ms bounds mmp_sink_free. */
static void fast_retry(mmp_sink_t *s, int64_t drain_ms) {
        mmp_sink_retry_t r = {.base_ms = 10, .cap_ms = 50, .drain_ms = drain_ms};
        mmp_sink_set_retry(s, &r);
}

/* A retriable failure (the database locked by another writer) is the sink's
 * to retry: the write is not called back while the lock is held, and is
 * stored once it is gone, before the write submitted after it. */
static void test_sqlite_locked_database_is_retried(void **state) {
        mmp_sink_t *s = open_sqlite(dbpath, 50);
        result_t r[3] = {{0}};
        sqlite3 *db;

        fast_retry(s, 30000);
        upsert(s, &r[0], "docs", "p1", "b", "k", "v", docs(1, -1));
        wait_done(1);
        assert_stored(r, 1);

        assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
        upsert(s, &r[1], "docs", "p1", "b", "k", "v2", docs(2, -1));
        upsert(s, &r[2], "docs", "p1", "b", "k", "v3", docs(3, -1));
        sleep_ms(600); /* several retries */
        assert_int_equal(done_so_far(), 1);
        assert_int_equal(r[1].calls, 0);
        assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);

        wait_done(3);
        assert_stored(&r[1], 2);
        /* In order: v3 came last, so v3 is what is left. */
        assert_string_equal(ids_of("docs", "p1", "b", "k"), ids(3, -1));
        mmp_sink_free(s);
        results_clear(r, 3);
}

/* mmp_sink_free with the destination still failing: retries for drain_ms,
 * then every write still queued fails as retriable (not stored). */
static void test_sink_free_gives_up_after_drain(void **state) {
        mmp_sink_t *s = open_sqlite(dbpath, 20);
        result_t r[2] = {{0}};
        char prefix[256];
        sqlite3 *db;
        int64_t t0;

        fast_retry(s, 400);
        upsert(s, &r[0], "docs", "p1", "b", "k", "v", docs(1, -1)); /* creates the table */
        wait_done(1);
        assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
        upsert(s, &r[1], "docs", "p1", "b", "k2", "v", docs(2, -1));
        sleep_ms(100);
        t0 = time(NULL);
        mmp_sink_free(s);
        assert_true(time(NULL) - t0 < 5);
        assert_int_equal(r[1].calls, 1);
        assert_non_null(r[1].failure);
        assert_int_equal(r[1].failure->retriable, 1);
        snprintf(prefix, sizeof(prefix), "destination local: not stored; still failing after ");
        assert_memory_equal(r[1].failure->message, prefix, strlen(prefix));
        assert_non_null(strstr(r[1].failure->message, "database is locked"));
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(db);
        results_clear(r, 2);
}

/* mmp_sink_drain_begin (the engine is stopping): writes still failing after
 * the drain time are called back as retriable without waiting for
 * mmp_sink_free, so waiting for the events in flight ends; writes that can
 * be stored still are. */
static void test_sink_drain_begin_bounds_the_wait(void **state) {
        mmp_sink_t *s = open_sqlite(dbpath, 20);
        result_t r[3] = {{0}};
        sqlite3 *db;

        fast_retry(s, 300);
        upsert(s, &r[0], "docs", "p1", "b", "k", "v", docs(1, -1)); /* creates the table */
        wait_done(1);
        assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
        upsert(s, &r[1], "docs", "p1", "b", "k2", "v", docs(2, -1));
        sleep_ms(200);
        assert_int_equal(r[1].calls, 0);
        mmp_sink_drain_begin(s);
        wait_done(2);
        assert_non_null(r[1].failure);
        assert_int_equal(r[1].failure->retriable, 1);
        assert_non_null(strstr(r[1].failure->message, "database is locked"));
        assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        upsert(s, &r[2], "docs", "p1", "b", "k3", "v", docs(3, -1));
        wait_done(3);
        assert_stored(&r[2], 1);
        mmp_sink_free(s);
        results_clear(r, 3);
}

/* ---- indexes ---- */

/* The detail column of the query plan's first row (static buffer). */
static const char *query_plan(const char *query) {
        static char out[1024];
        char sql[1024];
        sqlite3 *db;
        sqlite3_stmt *st;

        snprintf(sql, sizeof(sql), "EXPLAIN QUERY PLAN %s", query);
        assert_int_equal(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        out[0] = '\0';
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 3))
                snprintf(out, sizeof(out), "%s", (const char *)sqlite3_column_text(st, 3));
        sqlite3_finalize(st);
        sqlite3_close(db);
        return out;
}

static int ensure(mmp_sink_t *s, const char *coll, const char *indexes_json, char *err, size_t n) {
        json_error_t jerr;
        json_t *ix = json_loads(indexes_json, 0, &jerr);
        if (!ix)
                fail_msg("bad test JSON: %s", jerr.text);
        int rc = mmp_sink_ensure_indexes(s, coll, ix, err, n);
        json_decref(ix);
        return rc;
}

static void expect_index_error(mmp_sink_t *s, const char *indexes_json, const char *expected) {
        char err[1024] = "";
        assert_int_equal(ensure(s, "docs", indexes_json, err, sizeof(err)), -1);
        assert_string_equal(err, expected);
}

static void test_sqlite_ensure_indexes(void **state) {
        mmp_sink_t *s = open_sqlite(dbpath, -1);
        result_t r[2] = {{0}};
        char err[1024] = "";
        json_t *dup = docs(2, -1);

        assert_int_equal(ensure(s, "docs",
                                "[{\"keys\": {\"metadata.type\": 1}, \"unique\": false, \"name\": \"by_type\"},"
                                " {\"keys\": {\"n\": 1, \"text\": -1}, \"unique\": true}]",
                                err, sizeof(err)),
                         0);
        assert_string_equal(q1("SELECT sql FROM sqlite_master WHERE name = 'docs:by_type'"),
                            "CREATE INDEX \"docs:by_type\" ON \"docs\" (json_extract(doc, '$.metadata.type') ASC)");
        assert_string_equal(q1("SELECT sql FROM sqlite_master WHERE name = 'docs:n_1_text_-1'"),
                            "CREATE UNIQUE INDEX \"docs:n_1_text_-1\" ON \"docs\" (json_extract(doc, '$.n') ASC, "
                            "json_extract(doc, '$.text') DESC)");
        /* Queries naming the same expression use it. */
        assert_non_null(strstr(query_plan("SELECT _id FROM docs WHERE json_extract(doc, '$.metadata.type') = 'x'"),
                               "USING INDEX docs:by_type"));
        /* Again: already there, nothing to do. */
        assert_int_equal(ensure(s, "docs", "[{\"keys\": {\"metadata.type\": 1}, \"name\": \"by_type\"}]", err,
                                sizeof(err)),
                         0);
        /* The same name, another definition. */
        assert_int_equal(ensure(s, "docs", "[{\"keys\": {\"metadata.kind\": 1}, \"name\": \"by_type\"}]", err,
                                sizeof(err)),
                         -1);
        assert_non_null(strstr(err, "collection \"docs\", index \"by_type\": SQLite database"));
        assert_non_null(strstr(err, "already has index \"docs:by_type\" defined differently"));

        /* unique is enforced: a second document with the same (n, text) fails its write alone. */
        upsert(s, &r[0], "docs", "p1", "b", "k1", "v", docs(2, -1));
        json_object_set_new(json_array_get(dup, 0), "_id", json_string(oid(3)));
        upsert(s, &r[1], "docs", "p1", "b", "k2", "v", dup);
        wait_done(2);
        assert_stored(&r[0], 1);
        assert_non_null(r[1].failure);
        assert_int_equal(r[1].failure->retriable, 0);
        assert_non_null(strstr(r[1].failure->message, "UNIQUE constraint failed"));

        expect_index_error(s, "{}", "collection \"docs\", indexes: expected an array of index objects");
        expect_index_error(s, "[1]",
                           "collection \"docs\", indexes[0]: expected an object with \"keys\" (and optionally "
                           "\"unique\", \"name\")");
        expect_index_error(s, "[{\"keys\": {}}]",
                           "collection \"docs\", indexes[0].keys: expected an object of 1 to 32 field paths, "
                           "each to 1 (ascending) or -1 (descending)");
        expect_index_error(s, "[{\"keys\": {\"a\": 2}}]",
                           "collection \"docs\", indexes[0].keys.a: expected 1 (ascending) or -1 (descending)");
        expect_index_error(s, "[{\"keys\": {\"$a\": 1}}]",
                           "collection \"docs\", indexes[0].keys: \"$a\" is not a field path (names of letters, "
                           "digits, '_' and '-', joined by '.')");
        expect_index_error(s, "[{\"keys\": {\"a..b\": 1}}]",
                           "collection \"docs\", indexes[0].keys: \"a..b\" is not a field path (names of letters, "
                           "digits, '_' and '-', joined by '.')");
        expect_index_error(s, "[{\"keys\": {\"a\": 1}, \"unique\": 1}]",
                           "collection \"docs\", indexes[0].unique: expected true or false");
        expect_index_error(s, "[{\"keys\": {\"a\": 1}, \"name\": \"x y\"}]",
                           "collection \"docs\", indexes[0].name: expected a string of [A-Za-z0-9_.-], at most "
                           "100 characters");
        expect_index_error(s, "[{\"keys\": {\"a\": 1}, \"sparse\": true}]",
                           "collection \"docs\", indexes[0]: unknown key \"sparse\" (expected keys, unique, name)");
        expect_index_error(s, "[{\"keys\": {\"a\": 1}}, {\"keys\": {\"a\": 1}}]",
                           "collection \"docs\", indexes[1]: the name \"a_1\" is also the name of indexes[0]");
        assert_int_equal(ensure(s, "bad name", "[]", err, sizeof(err)), -1);
        assert_string_equal(err, "invalid collection name \"bad name\" (expected [A-Za-z0-9_.-]+)");
        mmp_sink_free(s);
        results_clear(r, 2);
}

/* ---- the writer thread ---- */

#define FLOOD_THREADS 2
#define FLOOD_PER_THREAD 1000

static int flood_calls[FLOOD_THREADS * FLOOD_PER_THREAD];
static int flood_failures;

static void on_flood_done(mmp_write_t *w, mmp_failure_t *failure, void *opaque) {
        int *calls = opaque;
        __atomic_add_fetch(calls, 1, __ATOMIC_SEQ_CST);
        if (failure)
                __atomic_add_fetch(&flood_failures, 1, __ATOMIC_SEQ_CST);
        mmp_failure_free(failure);
}

typedef struct flood {
        mmp_sink_t *sink;
        int thread;
} flood_t;

static void *flood_main(void *arg) {
        flood_t *f = arg;
        for (int i = 0; i < FLOOD_PER_THREAD; i++) {
                int n = f->thread * FLOOD_PER_THREAD + i;
                char key[32];
                snprintf(key, sizeof(key), "key-%d", n);
                mmp_sink_submit(f->sink, mmp_write_new(MMP_WRITE_UPSERT, "flood", "p", "b", key, "v",
                                                       docs(n, -1), on_flood_done, &flood_calls[n]));
        }
        return NULL;
}

static void test_sink_free_calls_back_every_write(void **state) {
        mmp_sink_t *s = open_sqlite(dbpath, -1);
        pthread_t threads[FLOOD_THREADS];
        flood_t floods[FLOOD_THREADS];

        memset(flood_calls, 0, sizeof(flood_calls));
        flood_failures = 0;
        for (int t = 0; t < FLOOD_THREADS; t++) {
                floods[t] = (flood_t){s, t};
                assert_int_equal(pthread_create(&threads[t], NULL, flood_main, &floods[t]), 0);
        }
        for (int t = 0; t < FLOOD_THREADS; t++)
                pthread_join(threads[t], NULL);
        mmp_sink_free(s); /* most writes are still queued here */

        for (int i = 0; i < FLOOD_THREADS * FLOOD_PER_THREAD; i++)
                if (flood_calls[i] != 1)
                        fail_msg("write %d: %d callbacks", i, flood_calls[i]);
        assert_int_equal(flood_failures, 0);
        assert_int_equal(rows("flood"), FLOOD_THREADS * FLOOD_PER_THREAD);
}

/* ---- open errors and types ---- */

static void expect_open_error(const char *name, const char *conf_text, const char *expected) {
        char err[1024] = "";
        json_t *conf = json_loads(conf_text, 0, NULL);
        mmp_sink_t *s = mmp_sink_new(name, conf, err, sizeof(err));
        json_decref(conf);
        mmp_sink_free(s);
        assert_null(s);
        assert_string_equal(err, expected);
}

static void test_sqlite_open_errors(void **state) {
        char path[600], conf[1400], expected[1400];
        FILE *fp;

        /* Not a database. */
        snprintf(path, sizeof(path), "%s/garbage.db", tmpdir);
        assert_non_null(fp = fopen(path, "w"));
        for (int i = 0; i < 64; i++)
                fputs("this is a text file, not an SQLite database\n", fp);
        fclose(fp);
        snprintf(conf, sizeof(conf), "{\"type\":\"sqlite\",\"path\":\"%s\"}", path);
        snprintf(expected, sizeof(expected),
                 "connections.local.path: cannot open SQLite database \"%s\": file is not a database", path);
        expect_open_error("local", conf, expected);

        /* A parent that is a file. */
        snprintf(path, sizeof(path), "%s/garbage.db/sub/x.db", tmpdir);
        snprintf(conf, sizeof(conf), "{\"type\":\"sqlite\",\"path\":\"%s\"}", path);
        snprintf(expected, sizeof(expected),
                 "connections.local.path: cannot open SQLite database \"%s\": cannot create directory "
                 "\"%s/garbage.db/sub\": Not a directory",
                 path, tmpdir);
        expect_open_error("local", conf, expected);

        expect_open_error("local", "{\"type\":\"sqlite\"}",
                          "connections.local.path: expected a string (the database file)");
        expect_open_error("local", "{\"type\":\"sqlite\",\"path\":\"x.db\",\"busy_timeout_ms\":\"1s\"}",
                          "connections.local.busy_timeout_ms: expected an integer from 0 to 3600000");
}

static void test_sqlite_creates_directories(void **state) {
        char path[600];
        result_t r = {0};
        mmp_sink_t *s;

        snprintf(path, sizeof(path), "%s/a/b/c/results.db", tmpdir);
        s = open_sqlite(path, -1);
        upsert(s, &r, "docs", "p", "", "k", "v", docs(1, -1));
        mmp_sink_free(s);
        assert_stored(&r, 1);
        assert_int_equal(access(path, F_OK), 0);
        results_clear(&r, 1);
}

static void test_sink_types(void **state) {
        char err[256], path[600];
        json_t *conf;
        mmp_sink_t *s;

        expect_open_error("x", "{\"type\":\"postgres\"}",
                          "connections.x.type: unknown destination type \"postgres\" (expected sqlite, "
                          "jsonl or mongodb)");
#ifdef MMP_WITH_MONGODB
        expect_open_error("mongo", "{\"type\":\"mongodb\",\"uri\":\"mongodb://localhost\"}",
                          "connections.mongo.database: expected a database name (1 to 63 characters, none of "
                          "/\\. \"$)");
#else
        expect_open_error("mongo", "{\"type\":\"mongodb\",\"uri\":\"mongodb://localhost\"}",
                          "connections.mongo.type: mongodb is not supported in this build");
#endif
        expect_open_error("y", "{\"path\":\"x.db\"}",
                          "connections.y.type: expected a string (sqlite, jsonl or mongodb)");
        expect_open_error("z", "[]", "connections.z: expected an object");

        conf = json_pack("{s:s, s:s}", "type", "sqlite", "path", dbpath);
        assert_non_null(s = mmp_sink_new("local", conf, err, sizeof(err)));
        assert_string_equal(mmp_sink_name(s), "local");
        assert_string_equal(mmp_sink_type(s), "sqlite");
        mmp_sink_free(s);
        json_decref(conf);

        snprintf(path, sizeof(path), "%s/out.jsonl", tmpdir);
        conf = json_pack("{s:s, s:s}", "type", "jsonl", "path", path);
        assert_non_null(s = mmp_sink_new("out", conf, err, sizeof(err)));
        assert_string_equal(mmp_sink_type(s), "jsonl");
        mmp_sink_free(s);
        json_decref(conf);
        mmp_sink_free(NULL);
}

/* ---- jsonl ---- */

static int read_lines(const char *path, char lines[][256], int max) {
        FILE *fp = fopen(path, "r");
        int n = 0;
        assert_non_null(fp);
        while (n < max && fgets(lines[n], 256, fp)) {
                size_t len = strlen(lines[n]);
                assert_true(len > 0 && lines[n][len - 1] == '\n'); /* whole lines only */
                lines[n][len - 1] = '\0';
                n++;
        }
        fclose(fp);
        return n;
}

static mmp_sink_t *open_jsonl(const char *path) {
        char err[512] = "";
        json_t *conf = json_pack("{s:s, s:s}", "type", "jsonl", "path", path);
        mmp_sink_t *s = mmp_sink_new("out", conf, err, sizeof(err));
        json_decref(conf);
        if (!s)
                fail_msg("open: %s", err);
        return s;
}

static void test_jsonl_file(void **state) {
        char path[600], lines[16][256], conf[1400], expected[1400];
        result_t r[5] = {{0}};
        json_t *first = json_array(), *bad = docs(9, -1);
        mmp_sink_t *s;
        int n;

        snprintf(path, sizeof(path), "%s/out/sub/docs.jsonl", tmpdir);
        s = open_jsonl(path);
        for (int i = 1; i <= 3; i++)
                json_array_append_new(first, json_pack("{s:i, s:s, s:s, s:{s:i, s:i}}", "z", i, "_id", oid(i),
                                                       "a", "first", "nested", "y", 1, "x", 2));
        json_object_del(json_array_get(bad, 0), "_id");

        upsert(s, &r[0], "docs", "p1", "b", "k1", "v1", first);
        upsert(s, &r[1], "docs", "p1", "b", "k2", "v1", docs(4, 5, -1));
        delete (s, &r[2], "docs", NULL, "b", "k1");
        upsert(s, &r[3], "docs", "p1", "b", "k3", "v1", bad);
        mmp_sink_free(s);
        assert_stored(r, 3);
        assert_failed(&r[3], 0,
                      "collection \"docs\", document 1 of 1 (key \"k3\"): _id must be a string of 24 hex "
                      "characters");

        n = read_lines(path, lines, 16);
        assert_int_equal(n, 5);
        for (int i = 0; i < n; i++) {
                json_t *doc = json_loads(lines[i], 0, NULL);
                assert_non_null(doc);
                assert_string_equal(json_string_value(json_object_get(doc, "_id")), oid(i + 1));
                json_decref(doc);
        }
        /* The handler's key order, compact. */
        assert_string_equal(
            lines[0], "{\"z\":1,\"_id\":\"000000000000000000000001\",\"a\":\"first\",\"nested\":{\"y\":1,"
                      "\"x\":2}}");
        assert_string_equal(lines[3], "{\"text\":\"doc 4\",\"_id\":\"000000000000000000000004\",\"n\":4}");

        /* Appends on the next open. */
        s = open_jsonl(path);
        upsert(s, &r[4], "docs", "p1", "b", "k1", "v2", docs(6, -1));
        mmp_sink_free(s);
        assert_stored(&r[4], 1);
        assert_int_equal(read_lines(path, lines, 16), 6);
        assert_string_equal(lines[5], "{\"text\":\"doc 6\",\"_id\":\"000000000000000000000006\",\"n\":6}");
        results_clear(r, 5);

        snprintf(conf, sizeof(conf), "{\"type\":\"jsonl\",\"path\":\"%s\"}", tmpdir);
        snprintf(expected, sizeof(expected), "connections.out.path: cannot open \"%s\": Is a directory",
                 tmpdir);
        expect_open_error("out", conf, expected);
        expect_open_error("out", "{\"type\":\"jsonl\"}",
                          "connections.out.path: expected a string (a file, or \"-\" for stdout)");
}

/* A full disk is retriable: the writes wait for space; at mmp_sink_free
 * they fail as retriable once the drain time is over. */
static void test_jsonl_write_error_is_retriable(void **state) {
        result_t r[2] = {{0}};
        mmp_sink_t *s = open_jsonl("/dev/full");
        const char *expected = "cannot write to \"/dev/full\": No space left on device";

        fast_retry(s, 300);
        upsert(s, &r[0], "docs", "p1", "b", "k1", "v1", docs(1, 2, -1));
        upsert(s, &r[1], "docs", "p1", "b", "k2", "v1", docs(3, -1));
        sleep_ms(200);
        assert_int_equal(done_so_far(), 0);
        mmp_sink_free(s);
        for (int i = 0; i < 2; i++) {
                assert_int_equal(r[i].calls, 1);
                assert_non_null(r[i].failure);
                assert_int_equal(r[i].failure->retriable, 1);
                assert_int_equal(r[i].failure->code, MMP_ERR_SINK);
                assert_non_null(strstr(r[i].failure->message, expected));
        }
        results_clear(r, 2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_sqlite_upsert_twice_same_rows, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sqlite_new_version_replaces_old, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sink_hold_release, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sqlite_fewer_docs_same_version, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sqlite_delete, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sqlite_bad_write_fails_alone, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sqlite_locked_database_is_retried, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sink_free_gives_up_after_drain, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sink_drain_begin_bounds_the_wait, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sqlite_ensure_indexes, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sink_free_calls_back_every_write, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sqlite_open_errors, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sqlite_concurrent_first_open, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sqlite_creates_directories, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sink_types, setup, teardown),
            cmocka_unit_test_setup_teardown(test_jsonl_file, setup, teardown),
            cmocka_unit_test_setup_teardown(test_jsonl_write_error_is_retriable, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
