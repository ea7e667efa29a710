/*
 * `mmpipe search`: the documents nearest to a text or a file, by cosine
 * similarity of their embeddings, over a SQLite or MongoDB collection. The
 * query is embedded by the same model name the pipelines use (local or
 * SageMaker, by config) through a one-event run of the engine. Main thread.
 */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sources/sources.h"
#include "util/log.h"
#ifdef MMP_WITH_MONGODB
#include <mongoc/mongoc.h>
#endif

static const char help[] =
    "usage: mmpipe search [options] (--text TEXT | --file PATH)\n"
    "\n"
    "Prints the documents nearest to TEXT (or to the text of PATH), one JSON line\n"
    "each, best first: {\"score\", \"_id\", \"key\", \"text\"}. The query is embedded with\n"
    "the model --model names in the config's \"models\" (local or SageMaker), and\n"
    "compared by cosine similarity with each document's embedding field.\n"
    "\n"
    "options:\n"
    "  --config FILE        config (default: the embedded defaults)\n"
    "  --set KEY=VALUE      override one config key\n"
    "  --connection NAME    the destination to search (default: default_connection)\n"
    "  --collection NAME    the collection (default: text_chunks)\n"
    "  --model NAME         the model that made the embeddings (default: text-embedding)\n"
    "  --field PATH         the embedding's field in the documents (default: embedding)\n"
    "  --top K              how many results (default: 5)\n"
    "  --text TEXT          the query\n"
    "  --file PATH          a file whose text is the query\n"
    "  --plugins DIR        plugin folder (for local models)\n";

typedef struct hit {
        double score;
        char *line; /* the printed JSON line */
} hit_t;

typedef struct hits {
        hit_t *v;
        int n, k;
        size_t dim;
        double *q;
        const char *field;
        long seen, without;
} hits_t;

/* Embeds the query with a one-event run of the engine on a throwaway pipeline. */
static double *embed_query(mmp_cli_t *cli, const mmp_config_t *cfg, const char *model, const char *text,
                           const char *file, size_t *dim) {
        char dir[] = "/tmp/mmpipe-search-XXXXXX", path[256], out[256], err[2048];
        mmp_engine_opts_t opts = {0};
        mmp_engine_t *e;
        FILE *f;
        double *q = NULL;
        if (!mkdtemp(dir))
                return NULL;
        snprintf(path, sizeof(path), "%s/query.lua", dir);
        f = fopen(path, "w");
        fprintf(f, "local mmpipe = require 'mmpipe'\n"
                   "return mmpipe.pipeline { name = 'search-query', match = {},\n"
                   "  destination = { collection = 'query' },\n"
                   "  handler = function(event)\n"
                   "    local t = mmpipe.tools.text.extract(event).text\n"
                   "    return { embedding = mmpipe.embed(%s%s%s, t) }\n"
                   "  end }\n",
                "\"", model, "\"");
        fclose(f);
        snprintf(path, sizeof(path), "%s/query.txt", dir);
        if (text) {
                f = fopen(path, "w");
                fputs(text, f);
                fclose(f);
        }
        snprintf(out, sizeof(out), "%s/out.jsonl", dir);
        mmp_cli_dirs(cli, cfg, &opts);
        opts.pipeline_dir = dir;
        opts.output_jsonl = out;
        opts.deadletter_path = "";
        if (!(e = mmp_engine_new(cfg, &opts, err, sizeof(err)))) {
                fprintf(stderr, "mmpipe search: %s\n", err);
        } else {
                mmp_engine_submit(e, mmp_event_from_path(text ? path : file));
                mmp_engine_drain(e);
                mmp_engine_free(e);
                json_error_t je;
                json_t *doc = json_load_file(out, JSON_DISABLE_EOF_CHECK, &je);
                json_t *emb = json_object_get(doc, "embedding");
                if (json_is_array(emb) && json_array_size(emb)) {
                        *dim = json_array_size(emb);
                        q = calloc(*dim, sizeof(double));
                        for (size_t i = 0; i < *dim; i++)
                                q[i] = json_number_value(json_array_get(emb, i));
                }
                json_decref(doc);
        }
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd)) {
                /* a leftover temp folder is harmless */
        }
        return q;
}

static const json_t *at_path(const json_t *doc, const char *path) {
        char buf[256], *save = NULL;
        snprintf(buf, sizeof(buf), "%s", path);
        for (char *p = strtok_r(buf, ".", &save); p && doc; p = strtok_r(NULL, ".", &save))
                doc = json_object_get(doc, p);
        return doc;
}

/* Scores one document and keeps it when it is among the best k. */
static void consider(hits_t *h, const char *id, const json_t *doc) {
        const json_t *emb = at_path(doc, h->field);
        double dot = 0, nq = 0, nd = 0;
        h->seen++;
        if (!json_is_array(emb) || json_array_size(emb) != h->dim) {
                h->without++;
                return;
        }
        for (size_t i = 0; i < h->dim; i++) {
                double d = json_number_value(json_array_get(emb, i));
                dot += d * h->q[i];
                nd += d * d;
                nq += h->q[i] * h->q[i];
        }
        double score = nd > 0 && nq > 0 ? dot / sqrt(nd * nq) : 0;
        if (h->n == h->k && score <= h->v[h->n - 1].score)
                return;
        const char *text = json_string_value(json_object_get(doc, "text"));
        const char *key = json_string_value(at_path(doc, "_lineage.object.key"));
        json_t *o = json_pack("{s:f, s:s, s:s?}", "score", round(score * 1e4) / 1e4, "_id", id, "key", key);
        if (text)
                json_object_set_new(o, "text", json_stringn(text, strlen(text) > 160 ? 160 : strlen(text)));
        char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(4));
        json_decref(o);
        if (h->n == h->k) {
                free(h->v[h->n - 1].line);
                h->n--;
        }
        int i = h->n++;
        while (i > 0 && h->v[i - 1].score < score) {
                h->v[i] = h->v[i - 1];
                i--;
        }
        h->v[i] = (hit_t){score, line};
}

static int scan_sqlite(const json_t *conn, const char *coll, hits_t *h) {
        sqlite3 *db;
        sqlite3_stmt *st;
        char sql[300];
        const char *path = json_string_value(json_object_get(conn, "path"));
        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL)) {
                fprintf(stderr, "mmpipe search: cannot open %s: %s\n", path, sqlite3_errmsg(db));
                sqlite3_close(db);
                return -1;
        }
        snprintf(sql, sizeof(sql), "SELECT _id, doc FROM \"%s\"", coll);
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL)) {
                fprintf(stderr, "mmpipe search: %s: %s\n", path, sqlite3_errmsg(db));
                sqlite3_close(db);
                return -1;
        }
        while (sqlite3_step(st) == SQLITE_ROW) {
                json_error_t je;
                json_t *doc = json_loads((const char *)sqlite3_column_text(st, 1), 0, &je);
                if (doc)
                        consider(h, (const char *)sqlite3_column_text(st, 0), doc);
                json_decref(doc);
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
        return 0;
}

#ifdef MMP_WITH_MONGODB
static int scan_mongodb(const json_t *conn, const char *coll, hits_t *h) {
        bson_error_t be;
        mongoc_uri_t *uri = mongoc_uri_new_with_error(json_string_value(json_object_get(conn, "uri")), &be);
        if (!uri) {
                fprintf(stderr, "mmpipe search: bad MongoDB URI: %s\n", be.message);
                return -1;
        }
        mongoc_client_t *client = mongoc_client_new_from_uri(uri);
        mongoc_collection_t *c =
            mongoc_client_get_collection(client, json_string_value(json_object_get(conn, "database")), coll);
        bson_t *filter = bson_new();
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, filter, NULL, NULL);
        const bson_t *d;
        while (mongoc_cursor_next(cur, &d)) {
                char *js = bson_as_relaxed_extended_json(d, NULL);
                json_error_t je;
                json_t *doc = json_loads(js, 0, &je);
                bson_free(js);
                bson_iter_t it;
                char id[25] = "";
                if (bson_iter_init_find(&it, d, "_id") && BSON_ITER_HOLDS_OID(&it))
                        bson_oid_to_string(bson_iter_oid(&it), id);
                if (doc)
                        consider(h, id, doc);
                json_decref(doc);
        }
        int rc = 0;
        if (mongoc_cursor_error(cur, &be)) {
                fprintf(stderr, "mmpipe search: MongoDB: %s\n", be.message);
                rc = -1;
        }
        mongoc_cursor_destroy(cur);
        bson_destroy(filter);
        mongoc_collection_destroy(c);
        mongoc_client_destroy(client);
        mongoc_uri_destroy(uri);
        return rc;
}
#endif

int mmp_cmd_search(int argc, char **argv) {
        mmp_cli_t cli;
        mmp_config_t *cfg;
        hits_t h = {0};
        int rc;
        if ((rc = mmp_cli_parse(&cli, argc, argv, "config|set|connection|collection|model|field|top|text|file|plugins",
                                help)))
                return free(cli.args), rc > 0 ? MMP_EXIT_OK : MMP_EXIT_USAGE;
        if (!cli.query_text == !cli.query_file) {
                fprintf(stderr, "mmpipe search: give exactly one of --text or --file (see --help)\n");
                return free(cli.args), MMP_EXIT_USAGE;
        }
        if (!(cfg = mmp_cli_config(&cli)))
                return free(cli.args), MMP_EXIT_USAGE;
        const char *conn_name = cli.connection ? cli.connection : mmp_config_str(cfg, "default_connection", "local");
        const json_t *conn = json_object_get(mmp_config_get(cfg, "connections"), conn_name);
        const char *type = json_string_value(json_object_get(conn, "type"));
        if (!conn || !type || (strcmp(type, "sqlite") && strcmp(type, "mongodb"))) {
                fprintf(stderr, "mmpipe search: connection \"%s\" is not a SQLite or MongoDB connection in the config\n",
                        conn_name);
                mmp_config_free(cfg);
                return free(cli.args), MMP_EXIT_USAGE;
        }
        if (cli.model && strpbrk(cli.model, "\"\\\n")) {
                fprintf(stderr, "mmpipe search: --model: invalid model name\n");
                mmp_config_free(cfg);
                return free(cli.args), MMP_EXIT_USAGE;
        }
        h.k = cli.top > 0 ? cli.top : 5;
        h.v = calloc((size_t)h.k, sizeof(hit_t));
        h.field = cli.field ? cli.field : "embedding";
        mmp_log_set_level(MMP_LOG_ERROR); /* the query's own run is not news */
        h.q = embed_query(&cli, cfg, cli.model ? cli.model : "text-embedding", cli.query_text, cli.query_file, &h.dim);
        if (!h.q) {
                fprintf(stderr, "mmpipe search: the query could not be embedded (see the error above)\n");
                rc = MMP_EXIT_FAILED;
        } else if (!strcmp(type, "sqlite")) {
                rc = scan_sqlite(conn, cli.collection ? cli.collection : "text_chunks", &h) ? MMP_EXIT_FAILED : 0;
        } else {
#ifdef MMP_WITH_MONGODB
                rc = scan_mongodb(conn, cli.collection ? cli.collection : "text_chunks", &h) ? MMP_EXIT_FAILED : 0;
#else
                fprintf(stderr, "mmpipe search: MongoDB is not supported in this build\n");
                rc = MMP_EXIT_USAGE;
#endif
        }
        for (int i = 0; i < h.n; i++) {
                puts(h.v[i].line);
                free(h.v[i].line);
        }
        if (!rc && h.seen && h.without == h.seen)
                fprintf(stderr, "mmpipe search: none of the %ld documents has a %zu-number \"%s\" field\n", h.seen,
                        h.dim, h.field);
        free(h.v);
        free(h.q);
        mmp_config_free(cfg);
        free(cli.args);
        return rc;
}
