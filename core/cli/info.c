/*
 * `mmpipe check`, `mmpipe plugins` and `mmpipe version`: what is loaded,
 * what is wrong with it, what this build can do. Main thread.
 */
#include <curl/curl.h>
#ifdef MMP_WITH_KAFKA
#include <librdkafka/rdkafka.h>
#endif
#include <jansson.h>
#include <luajit.h>
#include <magic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "plugin/loader.h"
#include "serve/serve.h"
#ifdef MMP_WITH_KAFKA
#include "sources/kafka.h"
#endif
#ifdef MMP_WITH_MONGODB
#include <mongoc/mongoc.h>
#endif

static const char check_help[] =
    "usage: mmpipe check [--config FILE] [--set KEY=VALUE]... [--pipelines DIR] [--plugins DIR]\n"
    "\n"
    "Validates the config, loads the plugins, compiles every pipeline on every lane\n"
    "and opens the destinations, then lists what it found. Exit status 0 when all\n"
    "is well, 1 when a plugin was refused, 2 when the config or a pipeline is wrong.\n";

static const char plugins_help[] =
    "usage: mmpipe plugins [--plugins DIR] [--config FILE]\n"
    "\n"
    "Lists each plugin with its version, content types and operations (callable\n"
    "from handlers as mmpipe.tools.<plugin>.<operation>), and each refused file\n"
    "with the reason. Exit status 1 when a file was refused.\n";

static const char version_help[] = "usage: mmpipe version\n\nPrints the version and the features compiled in.\n";

static void print_plugins(const mmp_plugins_t *ps) {
        for (size_t i = 0; i < ps->n; i++) {
                const mmp_plugin_t *d = ps->v[i].desc;
                printf("%s %s  %s\n", d->name, d->version, d->description ? d->description : "");
                printf("  file: %s\n", ps->v[i].path);
                if (d->content_types) {
                        printf("  content types:");
                        for (const char *const *t = d->content_types; *t; t++)
                                printf(" %s", *t);
                        printf("\n");
                }
                for (const mmp_plugin_op_t *op = d->ops; op->name; op++)
                        printf("  mmpipe.tools.%s.%s  %s\n", d->name, op->name, op->doc ? op->doc : "");
        }
        for (size_t i = 0; i < ps->n_refused; i++)
                printf("refused: %s: %s\n", ps->refused[i].path, ps->refused[i].reason);
}

int mmp_cmd_plugins(int argc, char **argv) {
        mmp_cli_t cli;
        mmp_engine_opts_t opts = {0};
        mmp_config_t *cfg = NULL;
        mmp_plugins_t *ps;
        char err[1024];
        int rc;
        if ((rc = mmp_cli_parse(&cli, argc, argv, "plugins|config|set", plugins_help)))
                return free(cli.args), rc > 0 ? MMP_EXIT_OK : MMP_EXIT_USAGE;
        if ((cli.config_path || cli.n_sets) && !(cfg = mmp_cli_config(&cli)))
                return free(cli.args), MMP_EXIT_USAGE;
        mmp_cli_dirs(&cli, cfg, &opts);
        mmp_config_free(cfg);
        free(cli.args);
        if (!(ps = mmp_plugins_load_dir(opts.plugin_dir, err, sizeof(err)))) {
                fprintf(stderr, "mmpipe plugins: %s\n", err);
                return MMP_EXIT_USAGE;
        }
        printf("plugin folder: %s\n", opts.plugin_dir);
        print_plugins(ps);
        rc = ps->n_refused ? MMP_EXIT_FAILED : MMP_EXIT_OK;
        mmp_plugins_free(ps);
        return rc;
}

int mmp_cmd_check(int argc, char **argv) {
        mmp_cli_t cli;
        mmp_engine_opts_t opts = {0};
        mmp_config_t *cfg;
        mmp_engine_t *e;
        char err[2048];
        int rc;
        if ((rc = mmp_cli_parse(&cli, argc, argv, "config|set|pipelines|plugins", check_help)))
                return free(cli.args), rc > 0 ? MMP_EXIT_OK : MMP_EXIT_USAGE;
        if (!(cfg = mmp_cli_config(&cli)))
                return free(cli.args), MMP_EXIT_USAGE;
        mmp_cli_dirs(&cli, cfg, &opts);
        opts.deadletter_path = "";
        if (!strcmp(mmp_config_str(cfg, "source.type", "dir"), "kafka")) {
#ifdef MMP_WITH_KAFKA
                rc = mmp_kafka_config_check(cfg, err, sizeof(err));
#else
                snprintf(err, sizeof(err), "source.type \"kafka\" is not supported in this build (librdkafka was "
                                           "not found)");
                rc = -1;
#endif
                if (rc) {
                        fprintf(stderr, "mmpipe check: %s\n", err);
                        mmp_config_free(cfg);
                        free(cli.args);
                        return MMP_EXIT_USAGE;
                }
        }
        printf("config: %s: ok\n", mmp_config_origin(cfg));
        if (!(e = mmp_engine_new(cfg, &opts, err, sizeof(err)))) {
                fprintf(stderr, "mmpipe check: %s\n", err);
                mmp_config_free(cfg);
                free(cli.args);
                return MMP_EXIT_USAGE;
        }
        printf("plugin folder: %s\n", opts.plugin_dir);
        print_plugins(mmp_engine_plugins(e));
        printf("pipeline folder: %s\n", opts.pipeline_dir);
        for (size_t i = 0; i < mmp_engine_pipeline_count(e); i++) {
                const mmp_pipeline_t *p = mmp_engine_pipeline(e, i);
                char *m = mmp_match_describe(&p->match);
                printf("pipeline %s (version %s) from %s\n  match: %s\n  destination: %s/%s\n", p->name, p->version,
                       p->file, m ? m : "?", p->connection ? p->connection : mmp_config_str(cfg, "default_connection", "local"),
                       p->collection);
                free(m);
        }
        rc = mmp_engine_plugins(e)->n_refused ? MMP_EXIT_FAILED : MMP_EXIT_OK;
        mmp_engine_free(e);
        mmp_config_free(cfg);
        free(cli.args);
        printf("%s\n", rc ? "check: plugins were refused (see above)" : "check: ok");
        return rc;
}

/* jemalloc's control interface: resolved when the binary links jemalloc
 * (CMakeLists.txt, core/main.c), NULL otherwise (the sanitizer builds). */
extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) __attribute__((weak));

/* The allocator line: which one, and jemalloc's options as it took them (a
 * mistyped option in main.c's malloc_conf shows here as the default). */
static void print_allocator(void) {
        const char *version = NULL, *thp = NULL;
        unsigned narenas = 0;
        size_t n;
        if (!mallctl) {
                printf("  allocator        the C library's malloc (jemalloc not linked)\n");
                return;
        }
        n = sizeof(version);
        if (mallctl("version", &version, &n, NULL, 0))
                version = "?";
        n = sizeof(thp);
        if (mallctl("opt.thp", &thp, &n, NULL, 0))
                thp = "?";
        n = sizeof(narenas);
        if (mallctl("opt.narenas", &narenas, &n, NULL, 0))
                narenas = 0;
        printf("  allocator        jemalloc %.*s (transparent huge pages: %s, arenas: %u)\n",
               (int)strcspn(version, "-"), version, thp, narenas);
}

int mmp_cmd_version(int argc, char **argv) {
        mmp_cli_t cli;
        int rc;
        if ((rc = mmp_cli_parse(&cli, argc, argv, "", version_help)))
                return free(cli.args), rc > 0 ? MMP_EXIT_OK : MMP_EXIT_USAGE;
        free(cli.args);
        printf("mmpipe %s (plugin ABI %d.%d)\n", MMP_VERSION, MMP_PLUGIN_ABI_MAJOR, MMP_PLUGIN_ABI_MINOR);
        printf("features:\n");
        printf("  lua handlers     yes (%s, JIT off for handlers so deadlines fire)\n", LUAJIT_VERSION);
        printf("  sqlite sink      yes (SQLite %s)\n", sqlite3_libversion());
        printf("  jsonl sink       yes (jansson %s)\n", JANSSON_VERSION);
        printf("  folder source    yes (scan, inotify watch)\n");
        printf("  content types    yes (libmagic %d)\n", magic_version());
        printf("  http client      yes (%s)\n", curl_version());
#ifdef MMP_WITH_KAFKA
        printf("  kafka source     yes (librdkafka %s, dead-letter topic, mmpipe replay)\n", rd_kafka_version_str());
#else
        printf("  kafka source     no (not supported in this build: librdkafka was not found)\n");
#endif
        printf("  s3 fetch         yes (SigV4, shared credentials, HEAD, streamed, retries); http(s) fetch yes\n");
#ifdef MMP_WITH_MONGODB
        printf("  mongodb sink     yes (libmongoc %s: bulk upserts, version clean-up, outages retried)\n", MONGOC_VERSION_S);
#else
        printf("  mongodb sink     no (not supported in this build: libmongoc was not found)\n");
#endif
        printf("  sagemaker invoke yes (SigV4, per-endpoint limit, rate, breaker, retries; models by name)\n");
        printf("  serve            %s\n", mmp_serve_feature());
        print_allocator();
        return MMP_EXIT_OK;
}
