/*
 * `mmpipe process FILE...`: the handler developer's loop. Runs the matching
 * pipelines on local files and prints every document as a JSON line on
 * stdout; errors go to stderr; exit 1 when any file failed. Main thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "sources/sources.h"

static const char help[] =
    "usage: mmpipe process [options] FILE|FOLDER...\n"
    "\n"
    "Runs the pipelines that match each file and prints the documents they make,\n"
    "one JSON object per line, on stdout. Errors name the file and go to stderr.\n"
    "Folders are walked recursively. Exit status: 0 all files processed, 1 some\n"
    "file failed, 2 bad arguments or configuration.\n"
    "\n"
    "options:\n"
    "  --config FILE       JSON config (default: the embedded defaults)\n"
    "  --set KEY=VALUE     override one config key, e.g. --set engine.lanes=1\n"
    "  --pipelines DIR     pipeline scripts (default: the shipped scripts/pipelines)\n"
    "  --plugins DIR       plugin folder (default: the built plugins)\n"
    "  --output FILE       write the documents to FILE instead of stdout\n"
    "  --dead-letters FILE also record failed files as dead letters in FILE\n"
    "  -q, --quiet         errors only on stderr\n"
    "  -v, --verbose       debug logging\n"
    "  -h, --help          this text\n";

typedef struct counts {
        long failed;
} counts_t;

static void on_done(const mmp_event_t *ev, const mmp_failure_t *f, void *opaque) {
        counts_t *c = opaque;
        (void)ev;
        if (f)
                __atomic_add_fetch(&c->failed, 1, __ATOMIC_RELAXED);
}

static int submit_path(mmp_engine_t *e, const char *path) {
        struct stat st;
        if (!stat(path, &st) && S_ISDIR(st.st_mode)) {
                char **paths, err[512];
                size_t n;
                if (mmp_dir_list(path, 1, &paths, &n, err, sizeof(err))) {
                        fprintf(stderr, "mmpipe process: %s\n", err);
                        return -1;
                }
                for (size_t i = 0; i < n; i++)
                        mmp_engine_submit(e, mmp_event_from_path(paths[i]));
                mmp_paths_free(paths, n);
                return 0;
        }
        /* Missing files still become events: they fail with a clear reason. */
        mmp_engine_submit(e, mmp_event_from_path(path));
        return 0;
}

int mmp_cmd_process(int argc, char **argv) {
        mmp_cli_t cli;
        mmp_engine_opts_t opts = {0};
        mmp_config_t *cfg;
        mmp_engine_t *e;
        counts_t counts = {0};
        mmp_engine_stats_t st;
        char err[2048];
        int rc, bad_args = 0;

        if ((rc = mmp_cli_parse(&cli, argc, argv, "config|set|pipelines|plugins|output|dead-letters", help)))
                return free(cli.args), rc > 0 ? MMP_EXIT_OK : MMP_EXIT_USAGE;
        if (!cli.n_args) {
                fprintf(stderr, "mmpipe process: no files given (see --help)\n");
                free(cli.args);
                return MMP_EXIT_USAGE;
        }
        if (!(cfg = mmp_cli_config(&cli))) {
                free(cli.args);
                return MMP_EXIT_USAGE;
        }
        mmp_cli_dirs(&cli, cfg, &opts);
        opts.output_jsonl = cli.output ? cli.output : "-";
        opts.deadletter_path = cli.deadletters ? cli.deadletters : "";
        opts.on_event_done = on_done;
        opts.opaque = &counts;
        if (!(e = mmp_engine_new(cfg, &opts, err, sizeof(err)))) {
                fprintf(stderr, "mmpipe process: %s\n", err);
                mmp_config_free(cfg);
                free(cli.args);
                return MMP_EXIT_USAGE;
        }
        for (int i = 0; i < cli.n_args; i++)
                bad_args |= submit_path(e, cli.args[i]) != 0;
        mmp_engine_drain(e);
        mmp_engine_stats(e, &st);
        mmp_engine_free(e);
        mmp_config_free(cfg);
        free(cli.args);
        if (!cli.quiet)
                fprintf(stderr, "mmpipe process: %llu files, %llu documents, %llu failed, %llu matched no pipeline\n",
                        (unsigned long long)st.done, (unsigned long long)st.documents,
                        (unsigned long long)st.failed, (unsigned long long)st.unmatched);
        return counts.failed || bad_args ? MMP_EXIT_FAILED : MMP_EXIT_OK;
}
