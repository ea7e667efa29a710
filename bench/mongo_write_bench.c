/*
 * bench/mongo_write.sh's engine side: the documents of a JSON Lines file
 * (mongo_write_seed.py make) written through the engine's sink, as the
 * engine writes them: one write per object (its documents together), all
 * submitted at once, timed from the first submit to the last
 * acknowledgement. Prints one JSON line like mongo_write_seed.py's.
 *
 *   mongo_write_bench URI DATABASE COLLECTION FILE
 *
 * MMP_BENCH_DEBUG=1 logs every bulk with its duration.
 */
#include <jansson.h>
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sinks/sink.h"
#include "util/log.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static size_t done, failed;

static void on_done(mmp_write_t *w, mmp_failure_t *failure, void *opaque) {
        (void)w;
        (void)opaque;
        pthread_mutex_lock(&lock);
        if (failure) {
                if (!failed)
                        fprintf(stderr, "mongo_write_bench: %s\n", failure->message);
                failed++;
        }
        done++;
        pthread_cond_signal(&cond);
        pthread_mutex_unlock(&lock);
        mmp_failure_free(failure);
}

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The file's documents grouped by object: consecutive lines with the same
 * _lineage.object.key make one write. */
typedef struct object {
        char *key;
        json_t *docs;
} object_t;

static size_t load(const char *path, object_t **out, size_t *ndocs) {
        FILE *fp = fopen(path, "r");
        object_t *objs = NULL;
        size_t n = 0, cap = 0;
        char *line = NULL;
        size_t len = 0;

        if (!fp) {
                perror(path);
                exit(1);
        }
        *ndocs = 0;
        while (getline(&line, &len, fp) > 0) {
                json_error_t err;
                json_t *doc = json_loads(line, 0, &err);
                const char *key;
                if (!doc) {
                        fprintf(stderr, "%s: %s\n", path, err.text);
                        exit(1);
                }
                key = json_string_value(json_object_get(json_object_get(json_object_get(doc, "_lineage"), "object"),
                                                        "key"));
                if (!n || strcmp(objs[n - 1].key, key)) {
                        if (n == cap && !(objs = realloc(objs, (cap = cap ? 2 * cap : 1024) * sizeof(*objs))))
                                exit(1);
                        objs[n].key = strdup(key);
                        objs[n].docs = json_array();
                        n++;
                }
                json_array_append_new(objs[n - 1].docs, doc);
                (*ndocs)++;
        }
        free(line);
        fclose(fp);
        *out = objs;
        return n;
}

static void drop(const char *uri, const char *db, const char *coll) {
        mongoc_client_t *client = mongoc_client_new(uri);
        mongoc_collection_t *c = mongoc_client_get_collection(client, db, coll);
        mongoc_collection_drop(c, NULL); /* absent is fine */
        mongoc_collection_destroy(c);
        mongoc_client_destroy(client);
}

int main(int argc, char **argv) {
        char err[1024];
        object_t *objs;
        size_t nobjs, ndocs;
        json_t *conf;
        mmp_sink_t *sink;
        double t0, c0, secs, cpu;

        if (argc != 5) {
                fprintf(stderr, "usage: %s URI DATABASE COLLECTION FILE\n", argv[0]);
                return 2;
        }
        if (getenv("MMP_BENCH_DEBUG"))
                mmp_log_set_level(MMP_LOG_DEBUG);
        nobjs = load(argv[4], &objs, &ndocs);
        drop(argv[1], argv[2], argv[3]);
        conf = json_pack("{s:s, s:s, s:s}", "type", "mongodb", "uri", argv[1], "database", argv[2]);
        if (!(sink = mmp_sink_new("bench", conf, err, sizeof(err)))) {
                fprintf(stderr, "mongo_write_bench: %s\n", err);
                return 1;
        }
        json_decref(conf);

        t0 = now_s();
        c0 = cpu_s();
        for (size_t i = 0; i < nobjs; i++)
                mmp_sink_submit(sink, mmp_write_new(MMP_WRITE_UPSERT, argv[3], "bench", "media", objs[i].key, "v1",
                                                    objs[i].docs, on_done, NULL));
        pthread_mutex_lock(&lock);
        while (done < nobjs)
                pthread_cond_wait(&cond, &lock);
        pthread_mutex_unlock(&lock);
        secs = now_s() - t0;
        cpu = cpu_s() - c0;
        mmp_sink_free(sink);

        printf("{\"method\": \"engine_bulk\", \"docs\": %zu, \"writes\": %zu, \"seconds\": %.3f, \"docs_per_s\": %.1f, "
               "\"cpu_s\": %.3f, \"failed_writes\": %zu}\n",
               ndocs, nobjs, secs, (double)ndocs / secs, cpu, failed);
        for (size_t i = 0; i < nobjs; i++)
                free(objs[i].key);
        free(objs);
        return failed ? 1 : 0;
}
