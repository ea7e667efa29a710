/*
 * The MongoDB destination against a real server: the CongoDB stand-in that
 * tests/tools/mongo_server.sh starts (or MMP_TEST_MONGO_URI). Upserts,
 * versions, deletes, batches touching one object twice, bad documents
 * failing alone, declared indexes, an outage of the server (writes held,
 * then stored exactly once) and shutdown while it is down. Read back with
 * libmongoc. Skipped, saying why, when no server can be had.
 */
#include <setjmp.h> /* cmocka.h needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sinks/sink.h"

#ifdef MMP_WITH_MONGODB
#include <mongoc/mongoc.h>

static char server_dir[256]; /* set when this test started the server */
static char uri[512];
static char skip_reason[512];
static char dbname[64];
static int db_counter;

/* ---- callbacks (as in test_sinks.c) ---- */

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

static void wait_done(int n, int secs) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += secs;
        pthread_mutex_lock(&done_lock);
        while (done_count < n && pthread_cond_timedwait(&done_cond, &done_lock, &until) == 0)
                ;
        int got = done_count;
        pthread_mutex_unlock(&done_lock);
        assert_int_equal(got, n);
}

static int done_so_far(void) {
        pthread_mutex_lock(&done_lock);
        int n = done_count;
        pthread_mutex_unlock(&done_lock);
        return n;
}

static void results_clear(result_t *r, size_t n) {
        for (size_t i = 0; i < n; i++) {
                mmp_failure_free(r[i].failure);
                r[i].failure = NULL;
                r[i].calls = 0;
        }
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
        assert_int_equal(r->failure->retriable, retriable);
        assert_string_equal(r->failure->message, message);
}

static void sleep_ms(int ms) {
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

/* ---- documents ---- */

static const char *oid(int n) {
        static char buf[8][25];
        static int next;
        char *b = buf[next++ % 8];
        snprintf(b, 25, "%024x", n);
        return b;
}

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

static const char *ids(int first, ...) {
        static char buf[4096];
        size_t len = 0;
        va_list ap;
        buf[0] = '\0';
        va_start(ap, first);
        for (int id = first; id >= 0; id = va_arg(ap, int))
                len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "," : "", oid(id));
        va_end(ap);
        return buf;
}

static void upsert(mmp_sink_t *s, result_t *r, const char *coll, const char *pipeline, const char *bucket,
                   const char *key, const char *version, json_t *d) {
        mmp_write_t *w = mmp_write_new(MMP_WRITE_UPSERT, coll, pipeline, bucket, key, version, d, on_done, r);
        assert_non_null(w);
        mmp_sink_submit(s, w);
}

static void delete_object(mmp_sink_t *s, result_t *r, const char *coll, const char *pipeline, const char *bucket,
                          const char *key) {
        mmp_write_t *w = mmp_write_new(MMP_WRITE_DELETE, coll, pipeline, bucket, key, NULL, NULL, on_done, r);
        assert_non_null(w);
        mmp_sink_submit(s, w);
}

/* ---- reading back: a fresh single-threaded client per question ---- */

static mongoc_collection_t *reader(const char *coll, mongoc_client_t **client) {
        *client = mongoc_client_new(uri);
        assert_non_null(*client);
        mongoc_client_set_error_api(*client, MONGOC_ERROR_API_VERSION_2);
        return mongoc_client_get_collection(*client, dbname, coll);
}

static bson_t *json_bson(const char *json) {
        bson_error_t e;
        bson_t *b = bson_new_from_json((const uint8_t *)json, -1, &e);
        if (!b)
                fail_msg("bad test JSON %s: %s", json, e.message);
        return b;
}

/* The _ids matching filter, ascending, joined by ','; static buffer. */
static const char *ids_where(const char *coll, const char *filter) {
        static char out[8192];
        mongoc_client_t *client;
        mongoc_collection_t *c = reader(coll, &client);
        bson_t *f = json_bson(filter), *opts = json_bson("{\"sort\": {\"_id\": 1}, \"projection\": {\"_id\": 1}}");
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, f, opts, NULL);
        const bson_t *doc;
        bson_error_t e;
        size_t len = 0;
        bson_iter_t it;

        out[0] = '\0';
        while (mongoc_cursor_next(cur, &doc)) {
                char hex[25];
                assert_true(bson_iter_init_find(&it, doc, "_id") && BSON_ITER_HOLDS_OID(&it));
                bson_oid_to_string(bson_iter_oid(&it), hex);
                len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%s", len ? "," : "", hex);
        }
        if (mongoc_cursor_error(cur, &e))
                fail_msg("find in %s: %s", coll, e.message);
        mongoc_cursor_destroy(cur);
        bson_destroy(f);
        bson_destroy(opts);
        mongoc_collection_destroy(c);
        mongoc_client_destroy(client);
        return out;
}

static int64_t count_where(const char *coll, const char *filter) {
        mongoc_client_t *client;
        mongoc_collection_t *c = reader(coll, &client);
        bson_t *f = json_bson(filter);
        bson_error_t e;
        int64_t n = mongoc_collection_count_documents(c, f, NULL, NULL, NULL, &e);
        if (n < 0)
                fail_msg("count in %s: %s", coll, e.message);
        bson_destroy(f);
        mongoc_collection_destroy(c);
        mongoc_client_destroy(client);
        return n;
}

/* One document as relaxed extended JSON (malloc), or NULL. */
static char *find_json(const char *coll, const char *filter) {
        mongoc_client_t *client;
        mongoc_collection_t *c = reader(coll, &client);
        bson_t *f = json_bson(filter);
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, f, NULL, NULL);
        const bson_t *doc;
        char *out = NULL;

        if (mongoc_cursor_next(cur, &doc))
                out = bson_as_relaxed_extended_json(doc, NULL);
        mongoc_cursor_destroy(cur);
        bson_destroy(f);
        mongoc_collection_destroy(c);
        mongoc_client_destroy(client);
        return out;
}

/* The names of the collection's indexes, joined by ','; static buffer. */
static const char *index_names(const char *coll) {
        static char out[2048];
        mongoc_client_t *client;
        mongoc_collection_t *c = reader(coll, &client);
        mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(c, NULL);
        const bson_t *doc;
        bson_iter_t it;
        size_t len = 0;

        out[0] = '\0';
        while (mongoc_cursor_next(cur, &doc))
                if (bson_iter_init_find(&it, doc, "name") && BSON_ITER_HOLDS_UTF8(&it))
                        len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%s", len ? "," : "",
                                                bson_iter_utf8(&it, NULL));
        mongoc_cursor_destroy(cur);
        mongoc_collection_destroy(c);
        mongoc_client_destroy(client);
        return out;
}

/* ---- the server ---- */

/* Runs mongo_server.sh CMD DIR; returns its exit status, its stdout in out. */
static int server_cmd(const char *cmd, char *out, size_t out_size) {
        char line[1024];
        FILE *p;
        size_t len = 0;

        snprintf(line, sizeof(line), "bash '%s/tests/tools/mongo_server.sh' %s '%s' 2>>'%s/server.err'",
                 MMP_SOURCE_DIR, cmd, server_dir, server_dir);
        if (!(p = popen(line, "r")))
                return -1;
        if (out)
                out[0] = '\0';
        while (fgets(line, sizeof(line), p))
                if (out)
                        len += (size_t)snprintf(out + len, out_size - len, "%s", line);
        return pclose(p);
}

static int group_setup(void **state) {
        const char *env = getenv("MMP_TEST_MONGO_URI");
        char out[1024], *u, *nl;

        mongoc_init();
        if (env && *env) {
                snprintf(uri, sizeof(uri), "%s", env);
                return 0;
        }
        snprintf(server_dir, sizeof(server_dir), "/tmp/mmp-test-mongo-XXXXXX");
        if (!mkdtemp(server_dir))
                return -1;
        if (server_cmd("start", out, sizeof(out)) != 0 || !(u = strstr(out, "uri="))) {
                char err[512] = "", errpath[300];
                FILE *fp;
                snprintf(errpath, sizeof(errpath), "%s/server.err", server_dir);
                if ((fp = fopen(errpath, "r"))) {
                        while (fgets(err, sizeof(err), fp))
                                ; /* the last line says why */
                        fclose(fp);
                }
                if ((nl = strchr(err, '\n')))
                        *nl = '\0';
                snprintf(skip_reason, sizeof(skip_reason),
                         "no MongoDB server: set MMP_TEST_MONGO_URI, or install node and npm (apt-get install "
                         "nodejs npm) for the stand-in (%s)",
                         err[0] ? err : "tests/tools/mongo_server.sh start failed");
                fprintf(stderr, "test_sink_mongodb: SKIPPED: %s\n", skip_reason);
                server_dir[0] = '\0';
                return 0;
        }
        snprintf(uri, sizeof(uri), "%s", u + 4);
        if ((nl = strchr(uri, '\n')))
                *nl = '\0';
        return 0;
}

static int group_teardown(void **state) {
        char cmd[600];
        if (server_dir[0]) {
                server_cmd("stop", NULL, 0);
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", server_dir);
                if (system(cmd) != 0)
                        fprintf(stderr, "test_sink_mongodb: could not remove %s\n", server_dir);
        }
        return 0;
}

static int setup(void **state) {
        snprintf(dbname, sizeof(dbname), "mmp_test_%d_%d", (int)getpid(), ++db_counter);
        pthread_mutex_lock(&done_lock);
        done_count = 0;
        pthread_mutex_unlock(&done_lock);
        return 0;
}

static int teardown(void **state) {
        mongoc_client_t *client;
        mongoc_database_t *db;

        if (!uri[0] || skip_reason[0])
                return 0;
        client = mongoc_client_new(uri);
        db = mongoc_client_get_database(client, dbname);
        mongoc_database_drop(db, NULL); /* best effort */
        mongoc_database_destroy(db);
        mongoc_client_destroy(client);
        return 0;
}

#define NEED_SERVER()                                                                                      \
        do {                                                                                               \
                if (skip_reason[0]) {                                                                      \
                        fprintf(stderr, "SKIPPED: %s\n", skip_reason);                                      \
                        skip();                                                                            \
                }                                                                                          \
        } while (0)

/* opts: extra connection keys as JSON text ("" for none). */
static mmp_sink_t *open_mongo(const char *extra) {
        char err[1024] = "", conf_text[2048];
        json_t *conf;
        mmp_sink_t *s;

        snprintf(conf_text, sizeof(conf_text),
                 "{\"type\": \"mongodb\", \"uri\": \"%s\", \"database\": \"%s\", \"timeout_ms\": 1500%s%s}", uri,
                 dbname, extra[0] ? ", " : "", extra);
        assert_non_null(conf = json_loads(conf_text, 0, NULL));
        s = mmp_sink_new("mongo", conf, err, sizeof(err));
        json_decref(conf);
        if (!s)
                fail_msg("open: %s", err);
        return s;
}

static const char *obj_filter(const char *pipeline, const char *key) {
        static char out[512];
        snprintf(out, sizeof(out), "{\"_lineage.pipeline\": \"%s\", \"_lineage.object.key\": \"%s\"}", pipeline,
                 key);
        return out;
}

/* ---- tests ---- */

static void test_mongo_upsert_twice_same_set(void **state) {
        NEED_SERVER();
        mmp_sink_t *s = open_mongo("");
        result_t r[3] = {{0}};
        char *doc;

        upsert(s, &r[0], "docs", "p1", "b", "k1", "v1", docs(1, 2, 3, -1));
        upsert(s, &r[1], "docs", "p1", "b", "k2", "v1", docs(4, -1));
        wait_done(2, 10);
        upsert(s, &r[2], "docs", "p1", "b", "k1", "v1", docs(1, 2, 3, -1));
        wait_done(3, 10);
        assert_stored(r, 3);
        assert_string_equal(ids_where("docs", "{}"), ids(1, 2, 3, 4, -1));
        assert_int_equal(count_where("docs", "{}"), 4);

        /* The document as stored: _id an ObjectId first, the fields, and the
         * lineage the clean-up queries select on (added, as here, when the
         * caller's documents have none). */
        doc = find_json("docs", "{\"_id\": {\"$oid\": \"000000000000000000000002\"}}");
        assert_non_null(doc);
        assert_string_equal(doc, "{ \"_id\" : { \"$oid\" : \"000000000000000000000002\" }, \"text\" : \"doc 2\", "
                                 "\"n\" : 2, \"_lineage\" : { \"pipeline\" : \"p1\", \"object\" : { \"bucket\" : "
                                 "\"b\", \"key\" : \"k1\", \"version\" : \"v1\" } } }");
        bson_free(doc);
        mmp_sink_free(s);
        results_clear(r, 3);
}

static void test_mongo_new_version_replaces_old(void **state) {
        NEED_SERVER();
        mmp_sink_t *s = open_mongo("");
        result_t r[7] = {{0}};
        json_t *with_lineage = docs(7, -1);

        /* An engine-style document: its own _lineage keeps its other fields. */
        json_object_set_new(json_array_get(with_lineage, 0), "_lineage",
                            json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:i}}", "pipeline", "p1", "pipeline_version",
                                      "abc", "object", "bucket", "b", "key", "other", "version", "v1", "size", 12));
        upsert(s, &r[0], "docs", "p1", "b", "k", "v1", docs(1, 2, -1));
        upsert(s, &r[1], "docs", "p2", "b", "k", "v1", docs(5, -1));   /* another pipeline */
        upsert(s, &r[2], "docs", "p1", "b", "other", "v1", with_lineage); /* another object */
        wait_done(3, 10);
        upsert(s, &r[3], "docs", "p1", "b", "k", "v2", docs(3, 4, -1));
        wait_done(4, 10);
        assert_string_equal(ids_where("docs", obj_filter("p1", "k")), ids(3, 4, -1));
        /* Fewer documents for the same version: the missing ones go. */
        upsert(s, &r[4], "docs", "p1", "b", "k", "v2", docs(3, -1));
        /* No documents: all of the pipeline's for the object go. */
        upsert(s, &r[5], "docs", "p2", "b", "k", "v2", json_array());
        wait_done(6, 10);
        assert_stored(r, 6);
        assert_string_equal(ids_where("docs", obj_filter("p1", "k")), ids(3, -1));
        assert_string_equal(ids_where("docs", obj_filter("p2", "k")), "");
        assert_string_equal(ids_where("docs", "{}"), ids(3, 7, -1));
        assert_int_equal(count_where("docs", "{\"_lineage.pipeline_version\": \"abc\", \"_lineage.object.size\": 12}"),
                         1);
        /* No documents given as NULL (what the engine passes for a handler
         * that returned nothing): the same. */
        upsert(s, &r[6], "docs", "p1", "b", "other", "v2", NULL);
        wait_done(7, 10);
        assert_stored(r, 7);
        assert_string_equal(ids_where("docs", "{}"), ids(3, -1));
        /* The index the clean-ups use was made with the collection. */
        assert_non_null(strstr(index_names("docs"), "mmpipe_object"));
        mmp_sink_free(s);
        results_clear(r, 7);
}

static void test_mongo_delete(void **state) {
        NEED_SERVER();
        mmp_sink_t *s = open_mongo("");
        result_t r[6] = {{0}};

        upsert(s, &r[0], "docs", "p1", "b", "k", "v1", docs(1, 2, -1));
        upsert(s, &r[1], "docs", "p2", "b", "k", "v1", docs(3, -1));
        upsert(s, &r[2], "docs", "p1", "b2", "k", "v1", docs(4, -1)); /* same key, other bucket */
        wait_done(3, 10);
        delete_object(s, &r[3], "docs", "p1", "b", "k");
        wait_done(4, 10);
        assert_string_equal(ids_where("docs", "{}"), ids(3, 4, -1));
        delete_object(s, &r[4], "docs", NULL, "b", "k");
        delete_object(s, &r[5], "nothing_here", NULL, "b", "k"); /* no such collection: fine */
        wait_done(6, 10);
        assert_stored(r, 6);
        assert_string_equal(ids_where("docs", "{}"), ids(4, -1));
        mmp_sink_free(s);
        results_clear(r, 6);
}

/* Writes of one object in one batch keep their order (rounds). */
static void test_mongo_same_object_twice_in_a_batch(void **state) {
        NEED_SERVER();
        mmp_sink_t *s = open_mongo("\"flush_ms\": 300");
        result_t r[5] = {{0}};

        upsert(s, &r[0], "docs", "p1", "b", "k", "v1", docs(1, 2, -1));
        upsert(s, &r[1], "docs", "p1", "b", "k", "v2", docs(3, -1));
        upsert(s, &r[2], "docs", "p1", "b", "j", "v1", docs(5, -1));
        delete_object(s, &r[3], "docs", NULL, "b", "j");
        upsert(s, &r[4], "docs", "p1", "b", "j", "v2", docs(6, -1));
        wait_done(5, 10);
        assert_stored(r, 5);
        assert_string_equal(ids_where("docs", "{}"), ids(3, 6, -1));
        mmp_sink_free(s);
        results_clear(r, 5);
}

static json_t *one_doc(int id, const char *field, json_t *value) {
        json_t *d = docs(id, -1);
        json_object_set_new(json_array_get(d, 0), field, value);
        return d;
}

/* Documents MongoDB would refuse fail their write alone, with the reason;
 * the other writes of the batch are stored. */
static void test_mongo_bad_documents_fail_alone(void **state) {
        NEED_SERVER();
        mmp_sink_t *s = open_mongo("\"flush_ms\": 300");
        result_t r[9] = {{0}};
        size_t big_len = 16u * 1024 * 1024 + 1000;
        char *big = malloc(big_len + 1);
        json_t *deep = json_object(), *nested = docs(9, 10, -1);
        char expected[512];

        memset(big, 'x', big_len);
        big[big_len] = '\0';
        for (int i = 0; i < 120; i++)
                deep = json_pack("{s:o}", "d", deep);
        json_object_set_new(json_array_get(nested, 1), "meta",
                            json_pack("{s:[i, {s:i}]}", "list", 1, "a.b", 2));

        upsert(s, &r[0], "docs", "p1", "b", "k0", "v", docs(1, -1));
        upsert(s, &r[1], "docs", "p1", "b", "k1", "v", one_doc(2, "big", json_string(big)));
        upsert(s, &r[2], "docs", "p1", "b", "k2", "v", one_doc(3, "$set", json_integer(1)));
        upsert(s, &r[3], "docs", "p1", "b", "k3", "v", nested);
        upsert(s, &r[4], "docs", "p1", "b", "k4", "v", one_doc(4, "bytes", json_stringn_nocheck("\xff\xfe", 2)));
        upsert(s, &r[5], "docs", "p1", "b", "k5", "v", one_doc(5, "deep", deep));
        upsert(s, &r[6], "docs", "p1", "b", "k6", "v", one_doc(6, "", json_true()));
        upsert(s, &r[7], "docs", "p1", "b", "k7", "v", one_doc(7, "fine", json_pack("{s:[s]}", "x", "ok")));
        upsert(s, &r[8], "docs", "p1", "b", "k8", "v", json_pack("[{s:s}]", "_id", "nothex"));
        wait_done(9, 20);
        free(big);

        assert_stored(&r[0], 1);
        snprintf(expected, sizeof(expected),
                 "collection \"docs\", document 1 of 1 (key \"k1\"): %zu bytes as BSON, over MongoDB's limit of 16 "
                 "MB (16777216 bytes) per document",
                 big_len + 132);
        assert_int_equal(r[1].calls, 1);
        assert_non_null(r[1].failure);
        assert_int_equal(r[1].failure->retriable, 0);
        assert_non_null(strstr(r[1].failure->message, "bytes as BSON, over MongoDB's limit of 16 MB (16777216 "
                                                      "bytes) per document"));
        assert_failed(&r[2], 0,
                      "collection \"docs\", document 1 of 1 (key \"k2\"): field name \"$set\": MongoDB does not "
                      "accept field names that start with '$'");
        assert_failed(&r[3], 0,
                      "collection \"docs\", document 2 of 2 (key \"k3\"): field name \"a.b\" in \"meta.list[1]\": "
                      "MongoDB does not accept field names that contain '.'");
        assert_failed(&r[4], 0,
                      "collection \"docs\", document 1 of 1 (key \"k4\"): field \"bytes\": the string is not valid "
                      "UTF-8");
        assert_non_null(r[5].failure);
        assert_non_null(strstr(r[5].failure->message, "nested more than 100 levels deep, MongoDB's limit"));
        assert_failed(&r[6], 0,
                      "collection \"docs\", document 1 of 1 (key \"k6\"): field name \"\": MongoDB does not accept "
                      "an empty field name");
        assert_stored(&r[7], 1);
        assert_failed(&r[8], 0,
                      "collection \"docs\", document 1 of 1 (key \"k8\"): _id must be a string of 24 hex "
                      "characters");
        /* Nothing of a failed write went in. */
        assert_string_equal(ids_where("docs", "{}"), ids(1, 7, -1));
        mmp_sink_free(s);
        results_clear(r, 9);
}

static void test_mongo_ensure_indexes(void **state) {
        NEED_SERVER();
        mmp_sink_t *s = open_mongo("");
        char err[1024] = "";
        json_t *ix = json_loads("[{\"keys\": {\"metadata.type\": 1}, \"name\": \"by_type\"},"
                                " {\"keys\": {\"n\": -1, \"text\": 1}, \"unique\": true}]",
                                0, NULL);

        assert_int_equal(mmp_sink_ensure_indexes(s, "docs", ix, err, sizeof(err)), 0);
        assert_string_equal(err, "");
        assert_non_null(strstr(index_names("docs"), "by_type"));
        assert_non_null(strstr(index_names("docs"), "n_-1_text_1"));
        /* Again: already there. */
        assert_int_equal(mmp_sink_ensure_indexes(s, "docs", ix, err, sizeof(err)), 0);
        json_decref(ix);
        ix = json_loads("[{\"keys\": {\"a\": 1}, \"unique\": \"yes\"}]", 0, NULL);
        assert_int_equal(mmp_sink_ensure_indexes(s, "docs", ix, err, sizeof(err)), -1);
        assert_string_equal(err, "collection \"docs\", indexes[0].unique: expected true or false");
        json_decref(ix);
        mmp_sink_free(s);
}

/* The server goes away: writes are held (not acknowledged), retried, and
 * stored exactly once when it is back. */
static void test_mongo_outage_holds_writes(void **state) {
        NEED_SERVER();
        if (!server_dir[0]) {
                fprintf(stderr, "SKIPPED: the outage test needs the stand-in this test starts itself "
                                "(MMP_TEST_MONGO_URI is set)\n");
                skip();
        }
        mmp_sink_t *s = open_mongo("");
        mmp_sink_retry_t fast = {.base_ms = 50, .cap_ms = 400, .drain_ms = 30000};
        result_t r[4] = {{0}};
        char out[512];

        mmp_sink_set_retry(s, &fast);
        upsert(s, &r[0], "docs", "p1", "b", "k0", "v1", docs(1, 2, -1));
        wait_done(1, 10);
        assert_stored(r, 1);

        assert_int_equal(server_cmd("stop", NULL, 0), 0);
        upsert(s, &r[1], "docs", "p1", "b", "k0", "v2", docs(3, -1)); /* replaces k0's v1 */
        upsert(s, &r[2], "docs", "p1", "b", "k1", "v1", docs(4, 5, -1));
        upsert(s, &r[3], "docs", "p1", "b", "k2", "v1", docs(6, -1));
        sleep_ms(3000); /* several server selection timeouts and retries */
        assert_int_equal(done_so_far(), 1);

        assert_int_equal(server_cmd("resume", out, sizeof(out)), 0);
        wait_done(4, 30);
        assert_stored(r, 4);
        assert_string_equal(ids_where("docs", "{}"), ids(3, 4, 5, 6, -1));
        assert_int_equal(count_where("docs", "{}"), 4);
        mmp_sink_free(s);
        results_clear(r, 4);
}

/* Shutting down while the server is unreachable: the writes fail as
 * retriable once the drain time is over (they were not stored). */
static void test_mongo_unreachable_at_shutdown(void **state) {
        char err[1024] = "";
        json_t *conf = json_pack("{s:s, s:s, s:s, s:i}", "type", "mongodb", "uri",
                                 "mongodb://127.0.0.1:1/?connectTimeoutMS=200", "database", "x", "timeout_ms", 300);
        mmp_sink_t *s = mmp_sink_new("mongo", conf, err, sizeof(err));
        mmp_sink_retry_t fast = {.base_ms = 20, .cap_ms = 100, .drain_ms = 800};
        result_t r = {0};

        json_decref(conf);
        assert_non_null(s);
        mmp_sink_set_retry(s, &fast);
        upsert(s, &r, "docs", "p1", "b", "k", "v", docs(1, -1));
        sleep_ms(500);
        assert_int_equal(r.calls, 0);
        mmp_sink_free(s);
        assert_int_equal(r.calls, 1);
        assert_non_null(r.failure);
        assert_int_equal(r.failure->retriable, 1);
        assert_non_null(strstr(r.failure->message, "destination mongo: not stored; still failing after "));
        assert_non_null(strstr(r.failure->message, "MongoDB: "));
        results_clear(&r, 1);
}

static void expect_open_error(const char *conf_text, const char *expected) {
        char err[1024] = "";
        json_t *conf = json_loads(conf_text, 0, NULL);
        assert_non_null(conf);
        mmp_sink_t *s = mmp_sink_new("mongo", conf, err, sizeof(err));
        json_decref(conf);
        mmp_sink_free(s);
        assert_null(s);
        assert_string_equal(err, expected);
}

static void test_mongo_open_errors(void **state) {
        expect_open_error("{\"type\": \"mongodb\", \"database\": \"d\"}",
                          "connections.mongo.uri: expected a MongoDB URI (mongodb://host:port/...)");
        expect_open_error("{\"type\": \"mongodb\", \"uri\": \"http://x\", \"database\": \"d\"}",
                          "connections.mongo.uri: Invalid URI Schema, expecting 'mongodb://' or 'mongodb+srv://'");
        expect_open_error("{\"type\": \"mongodb\", \"uri\": \"mongodb://h\", \"database\": \"a.b\"}",
                          "connections.mongo.database: expected a database name (1 to 63 characters, none of "
                          "/\\. \"$)");
        expect_open_error("{\"type\": \"mongodb\", \"uri\": \"mongodb://h\", \"database\": \"d\", "
                          "\"write_concern\": 0}",
                          "connections.mongo.write_concern: expected \"majority\" or a number of members from 1 to "
                          "50");
        expect_open_error("{\"type\": \"mongodb\", \"uri\": \"mongodb://h\", \"database\": \"d\", "
                          "\"batch_max_docs\": 0}",
                          "connections.mongo.batch_max_docs: expected an integer from 1 to 100000");
        expect_open_error("{\"type\": \"mongodb\", \"uri\": \"mongodb://h\", \"database\": \"d\", \"flush\": 1}",
                          "connections.mongo.flush: unknown key (expected uri, database, write_concern, "
                          "batch_max_docs, batch_max_mb, flush_ms, timeout_ms)");
        /* A valid one opens without contacting the server. */
        char err[256];
        json_t *conf = json_pack("{s:s, s:s, s:s, s:i}", "type", "mongodb", "uri", "mongodb://127.0.0.1:1",
                                 "database", "d", "write_concern", 1);
        mmp_sink_t *s = mmp_sink_new("mongo", conf, err, sizeof(err));
        json_decref(conf);
        assert_non_null(s);
        assert_string_equal(mmp_sink_type(s), "mongodb");
        mmp_sink_free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_mongo_open_errors),
            cmocka_unit_test(test_mongo_unreachable_at_shutdown),
            cmocka_unit_test_setup_teardown(test_mongo_upsert_twice_same_set, setup, teardown),
            cmocka_unit_test_setup_teardown(test_mongo_new_version_replaces_old, setup, teardown),
            cmocka_unit_test_setup_teardown(test_mongo_delete, setup, teardown),
            cmocka_unit_test_setup_teardown(test_mongo_same_object_twice_in_a_batch, setup, teardown),
            cmocka_unit_test_setup_teardown(test_mongo_bad_documents_fail_alone, setup, teardown),
            cmocka_unit_test_setup_teardown(test_mongo_ensure_indexes, setup, teardown),
            cmocka_unit_test_setup_teardown(test_mongo_outage_holds_writes, setup, teardown),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

#else /* !MMP_WITH_MONGODB */

static void test_mongodb_not_built(void **state) {
        fprintf(stderr, "SKIPPED: this build has no MongoDB destination (libmongoc-1.0 not found)\n");
        skip();
}

int main(void) {
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_mongodb_not_built)};
        return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
