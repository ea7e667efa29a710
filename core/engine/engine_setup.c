/*
 * Engine start-up and shutdown: plugins, pipeline files, lanes, sinks,
 * dead letters, workers. CLI thread.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine_int.h"
#include "fetch/fetch.h"
#include "inference/models.h"
#include "util/log.h"

typedef struct script_set {
        char **files, **texts;
        size_t *lens;
        size_t n;
} script_set_t;

static void scripts_free(script_set_t *s) {
        for (size_t i = 0; i < s->n; i++) {
                free(s->files[i]);
                free(s->texts[i]);
        }
        free(s->files);
        free(s->texts);
        free(s->lens);
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads every *.lua of dir (sorted by name). */
static int scripts_read(const char *dir, script_set_t *s, char *err, size_t n) {
        DIR *d = opendir(dir);
        struct dirent *de;
        memset(s, 0, sizeof(*s));
        if (!d) {
                snprintf(err, n, "cannot open pipeline folder %s: %s", dir, strerror(errno));
                return -1;
        }
        while ((de = readdir(d))) {
                size_t l = strlen(de->d_name);
                if (de->d_name[0] == '.' || l < 5 || strcmp(de->d_name + l - 4, ".lua"))
                        continue;
                s->files = realloc(s->files, (s->n + 1) * sizeof(char *));
                if (asprintf(&s->files[s->n], "%s/%s", dir, de->d_name) < 0)
                        break;
                s->n++;
        }
        closedir(d);
        if (!s->n) {
                snprintf(err, n, "no pipelines (*.lua) in %s", dir);
                return -1;
        }
        qsort(s->files, s->n, sizeof(char *), cmp_str);
        s->texts = calloc(s->n, sizeof(char *));
        s->lens = calloc(s->n, sizeof(size_t));
        for (size_t i = 0; i < s->n; i++) {
                FILE *f = fopen(s->files[i], "rb");
                FILE *m;
                char buf[8192];
                size_t r;
                if (!f) {
                        snprintf(err, n, "cannot read %s: %s", s->files[i], strerror(errno));
                        return -1;
                }
                m = open_memstream(&s->texts[i], &s->lens[i]);
                while ((r = fread(buf, 1, sizeof(buf), f)) > 0)
                        fwrite(buf, 1, r, m);
                fclose(f);
                fclose(m);
        }
        return 0;
}

static int64_t cores(void) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        return c > 0 ? c : 1;
}

static mmp_sink_t *sink_named(mmp_engine_t *e, const char *name, const json_t *conf, char *err, size_t n) {
        for (size_t i = 0; i < e->n_sinks; i++)
                if (!strcmp(mmp_sink_name(e->sinks[i]), name))
                        return e->sinks[i];
        mmp_sink_t *s = mmp_sink_new(name, conf, err, n);
        if (s) {
                e->sinks = realloc(e->sinks, (e->n_sinks + 1) * sizeof(*e->sinks));
                e->sinks[e->n_sinks++] = s;
        }
        return s;
}

static int open_sinks(mmp_engine_t *e, char *err, size_t n) {
        const char *def = mmp_config_str(e->cfg, "default_connection", "local");
        const json_t *conns = mmp_config_get(e->cfg, "connections");
        e->pipeline_sink = calloc(e->n_pipelines, sizeof(*e->pipeline_sink));
        for (size_t i = 0; i < e->n_pipelines; i++) {
                const mmp_pipeline_t *p = e->pipelines[i];
                const char *name = p->connection ? p->connection : def;
                const json_t *conf;
                json_t *override = NULL;
                if (e->opts.output_jsonl) {
                        override = json_pack("{s:s, s:s}", "type", "jsonl", "path", e->opts.output_jsonl);
                        name = "output";
                        conf = override;
                } else if (!(conf = json_object_get(conns, name))) {
                        snprintf(err, n, "%s: pipeline \"%s\": destination.connection \"%s\" is not defined under "
                                         "\"connections\" in the config",
                                 p->file, p->name, name);
                        return -1;
                }
                e->pipeline_sink[i] = sink_named(e, name, conf, err, n);
                json_decref(override);
                if (!e->pipeline_sink[i])
                        return -1;
                if (p->indexes) {
                        char why[512];
                        if (mmp_sink_ensure_indexes(e->pipeline_sink[i], p->collection, p->indexes, why, sizeof(why))) {
                                snprintf(err, n, "%s: pipeline \"%s\": destination.indexes: %s", p->file, p->name, why);
                                return -1;
                        }
                }
        }
        return 0;
}

static int load_pipelines(mmp_engine_t *e, char *err, size_t n) {
        script_set_t s;
        mmp_lane_opts_t lo = {0};
        int rc = -1;

        if (scripts_read(e->opts.pipeline_dir, &s, err, n))
                goto out;
        lo.engine = e;
        lo.pool = e->pool;
        lo.plugins = e->plugins;
        lo.pipeline_files = (const char *const *)s.files;
        lo.pipeline_texts = (const char *const *)s.texts;
        lo.pipeline_lens = s.lens;
        lo.n_pipelines = s.n;
        for (int i = 0; i < 3; i++)
                lo.lib_dirs[i] = e->opts.lib_dirs[i];
        lo.memory_cap = (size_t)mmp_config_int(e->cfg, "engine.lua_memory_mb", 256) << 20;
        lo.handler_timeout_ms = e->handler_timeout_ms;
        lo.endpoints = e->endpoints;
        lo.models = mmp_config_get(e->cfg, "models");
        e->pipelines = calloc(s.n, sizeof(*e->pipelines));
        e->n_pipelines_alloc = s.n;
        e->lanes = calloc(e->n_lanes, sizeof(*e->lanes));
        for (int i = 0; i < e->n_lanes; i++) {
                lo.id = i;
                /* Lane 0 describes the pipelines; the others only compile them. */
                if (!(e->lanes[i] = mmp_lane_new(&lo, i == 0 ? e->pipelines : NULL, err, n)))
                        goto out;
                if (i == 0)
                        e->n_pipelines = s.n;
        }
        for (size_t i = 0; i < e->n_pipelines; i++)
                for (size_t j = 0; j < i; j++)
                        if (!strcmp(e->pipelines[i]->name, e->pipelines[j]->name)) {
                                snprintf(err, n, "%s: pipeline name \"%s\" is already used by %s",
                                         e->pipelines[i]->file, e->pipelines[i]->name, e->pipelines[j]->file);
                                goto out;
                        }
        rc = 0;
out:
        scripts_free(&s);
        return rc;
}

mmp_engine_t *mmp_engine_new(const mmp_config_t *cfg, const mmp_engine_opts_t *opts, char *err, size_t n) {
        mmp_engine_t *e = calloc(1, sizeof(*e));
        int64_t workers;
        const char *dl_path;

        e->opts = *opts;
        e->cfg = cfg;
        pthread_mutex_init(&e->lock, NULL);
        pthread_cond_init(&e->cond, NULL);
        e->n_lanes = (int)mmp_config_int(cfg, "engine.lanes", 0);
        if (e->n_lanes <= 0)
                e->n_lanes = (int)cores();
        workers = mmp_config_int(cfg, "engine.workers", 0);
        if (workers <= 0)
                workers = cores();
        e->max_in_flight = mmp_config_int(cfg, "engine.max_in_flight", 1024);
        e->handler_timeout_ms = mmp_config_int(cfg, "engine.handler_timeout_ms", 30000);

        if (!(e->plugins = mmp_plugins_load_dir(opts->plugin_dir, err, n))) {
                mmp_warn("plugins", "%s; running without plugins", err);
                e->plugins = calloc(1, sizeof(*e->plugins));
        }
        if (mmp_fetch_init(cfg, err, n))
                goto fail;
        e->fetch_ready = 1;
        if (!(e->endpoints = mmp_endpoints_new(cfg, err, n)) || mmp_models_check(cfg, err, n))
                goto fail;
        if (!(e->pool = mmp_pool_new((int)workers))) {
                snprintf(err, n, "cannot start %lld worker threads", (long long)workers);
                goto fail;
        }
        if (load_pipelines(e, err, n) || open_sinks(e, err, n))
                goto fail;
        dl_path = opts->deadletter_path ? opts->deadletter_path
                                        : mmp_config_str(cfg, "dead_letters.path", "./mmpipe-dead-letters.jsonl");
        if (!opts->dead_letter && *dl_path && !(e->deadletters = mmp_deadletter_open(dl_path, err, n)))
                goto fail;
        for (int i = 0; i < e->n_lanes; i++)
                if (mmp_lane_start(e->lanes[i])) {
                        snprintf(err, n, "cannot start lane %d", i);
                        goto fail;
                }
        mmp_debug("engine", "%zu pipelines, %zu plugins, %d lanes, %lld workers", e->n_pipelines, e->plugins->n,
                  e->n_lanes, (long long)workers);
        return e;
fail:
        mmp_engine_free(e);
        return NULL;
}

void mmp_engine_free(mmp_engine_t *e) {
        if (!e)
                return;
        if (e->in_flight) {
                e->stop_requested = 1; /* freeing is stopping: no endless retries */
                mmp_engine_drain(e);
        }
        for (int i = 0; e->lanes && i < e->n_lanes; i++)
                mmp_lane_free(e->lanes[i]);
        mmp_pool_free(e->pool);
        mmp_endpoints_free(e->endpoints);
        for (size_t i = 0; i < e->n_sinks; i++)
                mmp_sink_free(e->sinks[i]);
        mmp_deadletter_close(e->deadletters);
        if (e->fetch_ready)
                mmp_fetch_shutdown();
        for (size_t i = 0; i < e->n_pipelines_alloc; i++)
                mmp_pipeline_free(e->pipelines[i]);
        free(e->pipelines);
        free(e->lanes);
        free(e->sinks);
        free(e->pipeline_sink);
        mmp_plugins_free(e->plugins);
        pthread_mutex_destroy(&e->lock);
        pthread_cond_destroy(&e->cond);
        free(e);
}
