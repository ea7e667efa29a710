/*
 * The command line: shared option handling and one function per
 * sub-command. Main thread.
 */
#ifndef MMP_CLI_H
#define MMP_CLI_H

#include "config/config.h"
#include "engine/engine.h"

#define MMP_EXIT_OK 0
#define MMP_EXIT_FAILED 1 /* some events or checks failed */
#define MMP_EXIT_USAGE 2  /* bad arguments or configuration */

typedef struct mmp_cli {
        const char *config_path;
        const char *sets[64];
        int n_sets;
        const char *plugin_dir;
        const char *pipeline_dir;
        const char *source;      /* run --source */
        int once, watch;         /* run */
        const char *output;      /* process --output */
        const char *deadletters; /* process --dead-letters */
        const char *error_class; /* replay */
        const char *pipeline;    /* replay */
        int from_beginning, dry_run;
        const char *connection, *collection, *model, *field, *query_text, *query_file; /* search */
        int top;
        int quiet, verbose;
        char **args;             /* positional arguments */
        int n_args;
        /* resolved */
        char plugin_dir_buf[4200], pipeline_dir_buf[4200], lib_dir_buf[2][4300];
} mmp_cli_t;

/* Parses the options every sub-command shares (and the ones it allows in
 * `allowed`, a string of long option names separated by '|'). Prints the
 * error and returns -1 on a bad option; returns 1 when --help was asked. */
int mmp_cli_parse(mmp_cli_t *cli, int argc, char **argv, const char *allowed, const char *help);

/* Loads the config (defaults + --config + --set) and validates it. */
mmp_config_t *mmp_cli_config(mmp_cli_t *cli);
/* Resolves the plugin, pipeline and library folders into cli and opts. */
void mmp_cli_dirs(mmp_cli_t *cli, const mmp_config_t *cfg, mmp_engine_opts_t *opts);

int mmp_cmd_run(int argc, char **argv);
int mmp_cmd_process(int argc, char **argv);
int mmp_cmd_check(int argc, char **argv);
int mmp_cmd_plugins(int argc, char **argv);
int mmp_cmd_version(int argc, char **argv);
int mmp_cmd_replay(int argc, char **argv);
int mmp_cmd_search(int argc, char **argv);
int mmp_cmd_serve(int argc, char **argv);

#endif
