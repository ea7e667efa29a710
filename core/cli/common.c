/*
 * Options shared by the sub-commands, config loading and the folders the
 * engine reads (plugins, pipelines, Lua libraries). Main thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/log.h"

static int allowed_opt(const char *allowed, const char *name) {
        size_t l = strlen(name);
        for (const char *p = allowed; p && *p;) {
                const char *bar = strchr(p, '|');
                size_t pl = bar ? (size_t)(bar - p) : strlen(p);
                if (pl == l && !strncmp(p, name, l))
                        return 1;
                p = bar ? bar + 1 : NULL;
        }
        return 0;
}

/* --name=value or --name value */
static const char *opt_value(int argc, char **argv, int *i, const char *eq) {
        if (eq)
                return eq + 1;
        if (*i + 1 < argc)
                return argv[++*i];
        return NULL;
}

int mmp_cli_parse(mmp_cli_t *cli, int argc, char **argv, const char *allowed, const char *help) {
        memset(cli, 0, sizeof(*cli));
        cli->args = calloc(argc + 1, sizeof(char *));
        for (int i = 1; i < argc; i++) {
                char *a = argv[i], name[64];
                const char *eq, *val;
                if (!strcmp(a, "--")) {
                        while (++i < argc)
                                cli->args[cli->n_args++] = argv[i];
                        break;
                }
                if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                        fputs(help, stdout);
                        return 1;
                }
                if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
                        cli->quiet = 1;
                        continue;
                }
                if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
                        cli->verbose = 1;
                        continue;
                }
                if (strncmp(a, "--", 2)) {
                        cli->args[cli->n_args++] = a;
                        continue;
                }
                eq = strchr(a, '=');
                snprintf(name, sizeof(name), "%.*s", (int)(eq ? eq - a - 2 : (long)strlen(a) - 2), a + 2);
                if (!allowed_opt(allowed, name)) {
                        fprintf(stderr, "mmpipe %s: unknown option --%s (see --help)\n", argv[0], name);
                        return -1;
                }
                if (!strcmp(name, "once") || !strcmp(name, "watch") || !strcmp(name, "from-beginning") ||
                    !strcmp(name, "dry-run")) {
                        *(!strcmp(name, "once")             ? &cli->once
                          : !strcmp(name, "watch")          ? &cli->watch
                          : !strcmp(name, "from-beginning") ? &cli->from_beginning
                                                            : &cli->dry_run) = 1;
                        continue;
                }
                if (!(val = opt_value(argc, argv, &i, eq))) {
                        fprintf(stderr, "mmpipe %s: option --%s needs a value (see --help)\n", argv[0], name);
                        return -1;
                }
                if (!strcmp(name, "config"))
                        cli->config_path = val;
                else if (!strcmp(name, "set") && cli->n_sets < 64)
                        cli->sets[cli->n_sets++] = val;
                else if (!strcmp(name, "plugins"))
                        cli->plugin_dir = val;
                else if (!strcmp(name, "pipelines"))
                        cli->pipeline_dir = val;
                else if (!strcmp(name, "source"))
                        cli->source = val;
                else if (!strcmp(name, "output"))
                        cli->output = val;
                else if (!strcmp(name, "dead-letters"))
                        cli->deadletters = val;
                else if (!strcmp(name, "error-class"))
                        cli->error_class = val;
                else if (!strcmp(name, "pipeline"))
                        cli->pipeline = val;
                else if (!strcmp(name, "connection"))
                        cli->connection = val;
                else if (!strcmp(name, "collection"))
                        cli->collection = val;
                else if (!strcmp(name, "model"))
                        cli->model = val;
                else if (!strcmp(name, "field"))
                        cli->field = val;
                else if (!strcmp(name, "text"))
                        cli->query_text = val;
                else if (!strcmp(name, "file"))
                        cli->query_file = val;
                else if (!strcmp(name, "top")) {
                        char *end;
                        long k = strtol(val, &end, 10);
                        if (*end || k < 1 || k > 10000) {
                                fprintf(stderr, "mmpipe %s: --top expects a number from 1 to 10000, got \"%s\"\n",
                                        argv[0], val);
                                return -1;
                        }
                        cli->top = (int)k;
                }
        }
        mmp_log_set_level(cli->verbose ? MMP_LOG_DEBUG : cli->quiet ? MMP_LOG_ERROR : MMP_LOG_INFO);
        return 0;
}

mmp_config_t *mmp_cli_config(mmp_cli_t *cli) {
        char err[1024];
        mmp_config_t *cfg = mmp_config_load(cli->config_path, err, sizeof(err));
        if (!cfg) {
                fprintf(stderr, "mmpipe: %s\n", err);
                return NULL;
        }
        for (int i = 0; i < cli->n_sets; i++) {
                if (mmp_config_set(cfg, cli->sets[i], err, sizeof(err))) {
                        fprintf(stderr, "mmpipe: --set %s: %s\n", cli->sets[i], err);
                        mmp_config_free(cfg);
                        return NULL;
                }
        }
        if (mmp_config_validate(cfg, err, sizeof(err))) {
                fprintf(stderr, "mmpipe: %s\n", err);
                mmp_config_free(cfg);
                return NULL;
        }
        if (!cli->verbose && !cli->quiet) {
                int lvl = mmp_log_level_parse(mmp_config_str(cfg, "log.level", "info"));
                if (lvl >= 0)
                        mmp_log_set_level((mmp_log_level_t)lvl);
        }
        return cfg;
}

static int is_dir(const char *p) {
        struct stat st;
        return p && !stat(p, &st) && S_ISDIR(st.st_mode);
}

/* The folder holding the running binary. */
static void exe_dir(char *out, size_t n) {
        ssize_t l = readlink("/proc/self/exe", out, n - 1);
        out[l > 0 ? l : 0] = '\0';
        char *slash = strrchr(out, '/');
        if (slash)
                *slash = '\0';
}

void mmp_cli_dirs(mmp_cli_t *cli, const mmp_config_t *cfg, mmp_engine_opts_t *opts) {
        char exe[4096], cand[4096 + 32];
        const char *c;
        exe_dir(exe, sizeof(exe));

        /* Plugins: --plugins, config, $MMPIPE_PLUGIN_DIR, next to the binary, the build tree. */
        c = cli->plugin_dir;
        if (!c && cfg && *(c = mmp_config_str(cfg, "plugins.dir", "")) == '\0')
                c = NULL;
        if (!c)
                c = getenv("MMPIPE_PLUGIN_DIR");
        snprintf(cand, sizeof(cand), "%s/plugins", exe);
        if (!c)
                c = is_dir(cand) ? cand : MMP_BUILD_PLUGIN_DIR;
        snprintf(cli->plugin_dir_buf, sizeof(cli->plugin_dir_buf), "%s", c);

        /* Pipelines: --pipelines, config, the shipped scripts/pipelines. */
        c = cli->pipeline_dir;
        if (!c && cfg && *(c = mmp_config_str(cfg, "pipelines.dir", "")) == '\0')
                c = NULL;
        snprintf(cand, sizeof(cand), "%s/../share/mmpipe/pipelines", exe);
        if (!c)
                c = is_dir(cand) ? cand : MMP_SOURCE_DIR "/scripts/pipelines";
        snprintf(cli->pipeline_dir_buf, sizeof(cli->pipeline_dir_buf), "%s", c);

        /* Lua libraries: lib/ beside the pipeline folder, then the shipped scripts/lib. */
        snprintf(cli->lib_dir_buf[0], sizeof(cli->lib_dir_buf[0]), "%s/../lib", cli->pipeline_dir_buf);
        snprintf(cli->lib_dir_buf[1], sizeof(cli->lib_dir_buf[1]), "%s", MMP_SOURCE_DIR "/scripts/lib");
        opts->plugin_dir = cli->plugin_dir_buf;
        opts->pipeline_dir = cli->pipeline_dir_buf;
        opts->lib_dirs[0] = cli->lib_dir_buf[0];
        opts->lib_dirs[1] = cli->lib_dir_buf[1];
        opts->lib_dirs[2] = NULL;
}
