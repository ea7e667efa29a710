/*
 * `mmpipe run`: the daemon. Takes events from the configured source (a
 * folder, scanned once or watched), shows progress, drains on SIGINT or
 * SIGTERM and prints a summary. Main thread.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sources/kafka.h"
#include "sources/sources.h"
#include "util/log.h"
#include "util/time.h"

static const char help[] =
    "usage: mmpipe run [options]\n"
    "\n"
    "Runs the engine on the configured source until it is done (a folder scanned\n"
    "once) or stopped (SIGINT/SIGTERM drain what is in flight, then exit).\n"
    "Documents go to each pipeline's destination; failed events to the dead letters.\n"
    "\n"
    "options:\n"
    "  --config FILE     JSON config (default: the embedded defaults)\n"
    "  --set KEY=VALUE   override one config key, e.g. --set connections.local.path=out.db\n"
    "  --source DIR      shorthand for --set source.type=dir --set source.path=DIR\n"
    "  --once            scan the folder once and exit (source.watch=false)\n"
    "  --watch           keep watching the folder for new files (source.watch=true)\n"
    "  --pipelines DIR   pipeline scripts (default: the shipped scripts/pipelines)\n"
    "  --plugins DIR     plugin folder (default: the built plugins)\n"
    "  -q, --quiet       errors only\n"
    "  -v, --verbose     debug logging\n"
    "  -h, --help        this text\n";

static volatile sig_atomic_t stop_requested;
static mmp_engine_t *volatile running_engine;

static void on_signal(int sig) {
        (void)sig;
        stop_requested = 1;
        if (running_engine)
                mmp_engine_request_stop(running_engine);
}

typedef struct progress {
        mmp_engine_t *engine;
        uint64_t total; /* known for a scan, 0 while watching */
        int64_t started_ms, last_ms;
        uint64_t last_done;
        int quiet;
} progress_t;

static void progress_print(progress_t *p, int force) {
        mmp_engine_stats_t st;
        int64_t now = mmp_now_ms();
        if (p->quiet || (!force && now - p->last_ms < 1000))
                return;
        mmp_engine_stats(p->engine, &st);
        if (!force && !p->total && st.done == p->last_done && !st.in_flight)
                return; /* watching an idle folder: nothing new to say */
        p->last_ms = now;
        p->last_done = st.done;
        double secs = (now - p->started_ms) / 1000.0;
        if (p->total)
                fprintf(stderr, "progress: %llu/%llu files done (%.1f/s), %llu documents, %llu failed\n",
                        (unsigned long long)st.done, (unsigned long long)p->total, secs > 0 ? st.done / secs : 0.0,
                        (unsigned long long)st.documents, (unsigned long long)st.failed);
        else
                fprintf(stderr, "progress: %llu files done (%.1f/s), %llu in flight, %llu documents, %llu failed\n",
                        (unsigned long long)st.done, secs > 0 ? st.done / secs : 0.0,
                        (unsigned long long)st.in_flight, (unsigned long long)st.documents,
                        (unsigned long long)st.failed);
}

static void submit_all(progress_t *p, char **paths, size_t n) {
        for (size_t i = 0; i < n && !stop_requested; i++) {
                mmp_engine_submit(p->engine, mmp_event_from_path(paths[i]));
                progress_print(p, 0);
        }
}

/* Scan, then (when watching) take files as they land until stopped. */
static int run_dir(progress_t *p, const mmp_config_t *cfg) {
        const char *dir = mmp_config_str(cfg, "source.path", "./inbox");
        int recursive = mmp_config_bool(cfg, "source.recursive", 1), watch = mmp_config_bool(cfg, "source.watch", 0);
        mmp_dir_watch_t *w = NULL;
        char **paths, err[1024];
        size_t n;

        if (watch && !(w = mmp_dir_watch_new(dir, recursive, err, sizeof(err)))) {
                fprintf(stderr, "mmpipe run: %s\n", err);
                return -1;
        }
        if (mmp_dir_list(dir, recursive, &paths, &n, err, sizeof(err))) {
                fprintf(stderr, "mmpipe run: %s\n", err);
                mmp_dir_watch_free(w);
                return -1;
        }
        mmp_info("source", "%s: %zu files%s", dir, n, watch ? "; watching for new ones" : "");
        p->total = watch ? 0 : n;
        submit_all(p, paths, n);
        mmp_paths_free(paths, n);
        while (w && !stop_requested) {
                if (mmp_dir_watch_poll(w, 250, &paths, &n) == 0 && n) {
                        submit_all(p, paths, n);
                        mmp_paths_free(paths, n);
                }
                progress_print(p, 0);
        }
        mmp_dir_watch_free(w);
        while (!stop_requested && mmp_engine_drain_for(p->engine, 200))
                progress_print(p, 0);
        return 0;
}

#ifdef MMP_WITH_KAFKA
static void kafka_progress(const mmp_kafka_stats_t *st, int force, void *opaque) {
        progress_t *p = opaque;
        int64_t now = mmp_now_ms();
        if (p->quiet || (!force && now - p->last_ms < 1000) || (!force && (uint64_t)st->done == p->last_done))
                return;
        p->last_ms = now;
        p->last_done = (uint64_t)st->done;
        double secs = (now - p->started_ms) / 1000.0;
        fprintf(stderr,
                "progress: %ld events done (%.1f/s), %ld in flight (%.1f MB)%s, %ld messages, %ld committed, "
                "%ld failed, %ld malformed, %ld dead letters, %ld rebalances\n",
                st->done, secs > 0 ? st->done / secs : 0.0, st->in_flight_events, st->in_flight_bytes / 1048576.0,
                st->paused ? " paused" : "", st->messages, st->committed, st->failed, st->malformed,
                st->dead_letters, st->rebalances);
}
#endif

/* source.type "kafka": the consumer group drives the engine. */
static int run_kafka(mmp_cli_t *cli, const mmp_config_t *cfg, mmp_engine_opts_t *opts, progress_t *p) {
#ifdef MMP_WITH_KAFKA
        char err[2048];
        mmp_kafka_source_t *src = mmp_kafka_source_new(cfg, err, sizeof(err));
        int rc;
        if (!src) {
                fprintf(stderr, "mmpipe run: %s\n", err);
                return MMP_EXIT_USAGE;
        }
        mmp_kafka_source_engine_opts(src, opts);
        if (!(p->engine = mmp_engine_new(cfg, opts, err, sizeof(err)))) {
                fprintf(stderr, "mmpipe run: %s\n", err);
                mmp_kafka_source_free(src);
                return MMP_EXIT_USAGE;
        }
        running_engine = p->engine;
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        p->started_ms = p->last_ms = mmp_now_ms();
        p->quiet = cli->quiet;
        rc = mmp_kafka_source_run(src, p->engine, &stop_requested, kafka_progress, p);
        mmp_engine_free(p->engine); /* finishes whatever outlived the drain */
        mmp_kafka_stats_t st;
        mmp_kafka_source_stats(src, &st);
        mmp_kafka_source_free(src);
        double secs = (mmp_now_ms() - p->started_ms) / 1000.0;
        fprintf(stderr, "summary: %ld messages, %ld events, %ld failed, %ld malformed, %ld dead letters, %.2f s\n",
                st.messages, st.done, st.failed, st.malformed, st.dead_letters, secs);
        return rc ? MMP_EXIT_FAILED : MMP_EXIT_OK;
#else
        (void)cli;
        (void)cfg;
        (void)opts;
        (void)p;
        fprintf(stderr, "mmpipe run: source.type \"kafka\" is not supported in this build (librdkafka was not found)\n");
        return MMP_EXIT_USAGE;
#endif
}

int mmp_cmd_run(int argc, char **argv) {
        mmp_cli_t cli;
        mmp_engine_opts_t opts = {0};
        mmp_config_t *cfg;
        mmp_engine_stats_t st;
        progress_t p = {0};
        char err[2048], set_buf[4200];
        int rc;

        if ((rc = mmp_cli_parse(&cli, argc, argv, "config|set|source|once|watch|pipelines|plugins", help)))
                return free(cli.args), rc > 0 ? MMP_EXIT_OK : MMP_EXIT_USAGE;
        if (cli.n_args) {
                fprintf(stderr, "mmpipe run: unexpected argument \"%s\" (to process files, use mmpipe process)\n",
                        cli.args[0]);
                free(cli.args);
                return MMP_EXIT_USAGE;
        }
        if (cli.source && cli.n_sets < 62) {
                snprintf(set_buf, sizeof(set_buf), "source.path=\"%s\"", cli.source);
                cli.sets[cli.n_sets++] = "source.type=\"dir\"";
                cli.sets[cli.n_sets++] = set_buf;
        }
        if ((cli.once || cli.watch) && cli.n_sets < 64)
                cli.sets[cli.n_sets++] = cli.watch ? "source.watch=true" : "source.watch=false";
        if (!(cfg = mmp_cli_config(&cli))) {
                free(cli.args);
                return MMP_EXIT_USAGE;
        }
        mmp_cli_dirs(&cli, cfg, &opts);
        if (!strcmp(mmp_config_str(cfg, "source.type", "dir"), "kafka")) {
                rc = run_kafka(&cli, cfg, &opts, &p);
                mmp_config_free(cfg);
                free(cli.args);
                return rc;
        }
        if (!(p.engine = mmp_engine_new(cfg, &opts, err, sizeof(err)))) {
                fprintf(stderr, "mmpipe run: %s\n", err);
                mmp_config_free(cfg);
                free(cli.args);
                return MMP_EXIT_USAGE;
        }
        running_engine = p.engine;
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        p.started_ms = p.last_ms = mmp_now_ms();
        p.quiet = cli.quiet;
        rc = run_dir(&p, cfg);
        if (stop_requested) {
                mmp_info("engine", "stopping: draining the events in flight");
                if (mmp_engine_drain_for(p.engine, 30000))
                        mmp_warn("engine", "drain deadline passed; events still in flight are finished before exit");
        }
        progress_print(&p, 1);
        mmp_engine_stats(p.engine, &st);
        mmp_engine_free(p.engine);
        double secs = (mmp_now_ms() - p.started_ms) / 1000.0;
        fprintf(stderr,
                "summary: %llu events, %llu documents, %llu failed (dead letters: %s), %llu matched no pipeline, "
                "%.2f s (%.1f events/s)\n",
                (unsigned long long)st.done, (unsigned long long)st.documents, (unsigned long long)st.failed,
                mmp_config_str(cfg, "dead_letters.path", "?"), (unsigned long long)st.unmatched, secs,
                secs > 0 ? st.done / secs : 0.0);
        mmp_config_free(cfg);
        free(cli.args);
        if (rc)
                return MMP_EXIT_USAGE;
        return st.failed ? MMP_EXIT_FAILED : MMP_EXIT_OK;
}
