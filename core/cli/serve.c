/*
 * `mmpipe serve`: loads one plugin and serves one of its operations behind
 * SageMaker's container contract (core/serve/). The main thread loads,
 * starts the server and then only waits for SIGTERM or SIGINT.
 */
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "plugin/loader.h"
#include "serve/serve.h"
#include "util/log.h"

static const char serve_help[] =
    "usage: mmpipe serve --plugin NAME --op OP [--port 8080] [--host 0.0.0.0]\n"
    "                    [--plugins DIR] [--workers N] [--timeout SECONDS] [-v | -q]\n"
    "\n"
    "Serves the plugin operation NAME.OP over HTTP/1.1 the way SageMaker runs a\n"
    "bring-your-own-container model, so the same code is a local endpoint and a\n"
    "SageMaker endpoint:\n"
    "  GET  /ping         200 once the plugin is loaded\n"
    "  POST /invocations  application/json: {\"inputs\": X, \"parameters\": {...}} runs\n"
    "                     OP(X, parameters) (a list X runs OP on each item and answers\n"
    "                     a list); any other JSON value is the input itself.\n"
    "                     text/plain: the body is a string input; other types: a blob.\n"
    "                     The answer is OP's result as JSON. Bodies over 6 MB: 413;\n"
    "                     invalid JSON or input refused by OP: 400; 404 for other paths.\n"
    "\n"
    "options:\n"
    "  --plugin NAME      the plugin (a name from the plugin folder, or a path to a .so);\n"
    "                     default $MMPIPE_SERVE_PLUGIN\n"
    "  --op OP            its operation; default $MMPIPE_SERVE_OP\n"
    "  --port N           default $SAGEMAKER_BIND_TO_PORT, else 8080; 0 = any free port\n"
    "  --host ADDR        address to listen on (default 0.0.0.0)\n"
    "  --plugins DIR      plugin folder (default $MMPIPE_PLUGIN_DIR, then next to the binary)\n"
    "  --workers N        invocations run at once (default: one per core)\n"
    "  --timeout SECONDS  deadline of one invocation, seen by the plugin (default 60)\n"
    "  -v, --verbose      log every request (debug); -q, --quiet: errors only\n"
    "\n"
    "SIGTERM or SIGINT: stop accepting, finish the invocations in flight, exit 0.\n"
    "See docs/serve.md.\n";

typedef struct serve_args {
        const char *plugin, *op, *host, *plugin_dir;
        int port, workers, timeout_s;
} serve_args_t;

static int parse_int(const char *opt, const char *s, int min, int max, int *out) {
        char *end;
        long v = strtol(s, &end, 10);
        if (!*s || *end || v < min || v > max) {
                fprintf(stderr, "mmpipe serve: --%s must be an integer from %d to %d, got \"%s\"\n", opt, min, max, s);
                return -1;
        }
        *out = (int)v;
        return 0;
}

/* Returns 0, 1 for --help, -1 on a usage error (printed). */
static int parse_args(int argc, char **argv, serve_args_t *a) {
        static const struct option longopts[] = {
            {"plugin", required_argument, NULL, 'P'}, {"op", required_argument, NULL, 'o'},
            {"port", required_argument, NULL, 'p'},   {"host", required_argument, NULL, 'H'},
            {"plugins", required_argument, NULL, 'd'}, {"workers", required_argument, NULL, 'w'},
            {"timeout", required_argument, NULL, 't'}, {"verbose", no_argument, NULL, 'v'},
            {"quiet", no_argument, NULL, 'q'},         {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        const char *env_port = getenv("SAGEMAKER_BIND_TO_PORT");
        int c, verbose = 0, quiet = 0;

        memset(a, 0, sizeof(*a));
        a->plugin = getenv("MMPIPE_SERVE_PLUGIN");
        a->op = getenv("MMPIPE_SERVE_OP");
        a->host = "0.0.0.0";
        a->port = 8080;
        a->timeout_s = MMP_SERVE_DEFAULT_TIMEOUT_MS / 1000;
        if (env_port && *env_port && parse_int("port (from SAGEMAKER_BIND_TO_PORT)", env_port, 0, 65535, &a->port))
                return -1;
        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":vqh", longopts, NULL)) != -1) {
                switch (c) {
                case 'P': a->plugin = optarg; break;
                case 'o': a->op = optarg; break;
                case 'H': a->host = optarg; break;
                case 'd': a->plugin_dir = optarg; break;
                case 'p': if (parse_int("port", optarg, 0, 65535, &a->port)) return -1; break;
                case 'w': if (parse_int("workers", optarg, 1, 1024, &a->workers)) return -1; break;
                case 't': if (parse_int("timeout", optarg, 1, 86400, &a->timeout_s)) return -1; break;
                case 'v': verbose = 1; break;
                case 'q': quiet = 1; break;
                case 'h': fputs(serve_help, stdout); return 1;
                case ':':
                        fprintf(stderr, "mmpipe serve: option %s needs a value (see --help)\n", argv[optind - 1]);
                        return -1;
                default:
                        fprintf(stderr, "mmpipe serve: unknown option %s (see --help)\n", argv[optind - 1]);
                        return -1;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "mmpipe serve: unexpected argument \"%s\" (see --help)\n", argv[optind]);
                return -1;
        }
        if (!a->plugin || !*a->plugin || !a->op || !*a->op) {
                fprintf(stderr, "mmpipe serve: --%s is required (see --help)\n",
                        !a->plugin || !*a->plugin ? "plugin" : "op");
                return -1;
        }
        mmp_log_set_level(verbose ? MMP_LOG_DEBUG : quiet ? MMP_LOG_ERROR : MMP_LOG_INFO);
        return 0;
}

/* The loaded plugins: the whole folder, or the one file given by path. */
typedef struct loaded {
        mmp_plugins_t *folder;
        mmp_plugin_inst_t file;
        const mmp_plugin_inst_t *inst;
} loaded_t;

static int load(const serve_args_t *a, loaded_t *l) {
        mmp_engine_opts_t eo = {0};
        mmp_cli_t cli;
        char err[1024];

        memset(l, 0, sizeof(*l));
        if (strchr(a->plugin, '/')) {
                if (mmp_plugin_load(a->plugin, &l->file, err, sizeof(err))) {
                        fprintf(stderr, "mmpipe serve: plugin %s refused: %s\n", a->plugin, err);
                        return -1;
                }
                l->inst = &l->file;
                return 0;
        }
        memset(&cli, 0, sizeof(cli));
        cli.plugin_dir = a->plugin_dir;
        mmp_cli_dirs(&cli, NULL, &eo);
        if (!(l->folder = mmp_plugins_load_dir(eo.plugin_dir, err, sizeof(err)))) {
                fprintf(stderr, "mmpipe serve: %s\n", err);
                return -1;
        }
        if (!(l->inst = mmp_plugins_find(l->folder, a->plugin))) {
                fprintf(stderr, "mmpipe serve: no plugin named \"%s\" in %s (loaded:", a->plugin, eo.plugin_dir);
                for (size_t i = 0; i < l->folder->n; i++)
                        fprintf(stderr, " %s", l->folder->v[i].desc->name);
                fprintf(stderr, "%s; `mmpipe plugins` lists them and the refused files)\n",
                        l->folder->n ? "" : " none");
                mmp_plugins_free(l->folder);
                l->folder = NULL;
                return -1;
        }
        return 0;
}

static void unload(loaded_t *l) {
        mmp_plugins_free(l->folder);
        if (l->inst == &l->file)
                mmp_plugin_unload(&l->file);
        memset(l, 0, sizeof(*l));
}

static const mmp_plugin_op_t *find_op(const mmp_plugin_inst_t *inst, const char *name) {
        for (const mmp_plugin_op_t *op = inst->desc->ops; op->name; op++)
                if (!strcmp(op->name, name))
                        return op;
        fprintf(stderr, "mmpipe serve: plugin %s has no operation \"%s\" (operations:", inst->desc->name, name);
        for (const mmp_plugin_op_t *op = inst->desc->ops; op->name; op++)
                fprintf(stderr, " %s", op->name);
        fprintf(stderr, ")\n");
        return NULL;
}

int mmp_cmd_serve(int argc, char **argv) {
        serve_args_t a;
        mmp_serve_opts_t so = {0};
        const mmp_plugin_op_t *op;
        mmp_serve_t *server;
        sigset_t stop, old;
        loaded_t l;
        char err[1024];
        int rc, sig = 0;

        if ((rc = parse_args(argc, argv, &a)))
                return rc > 0 ? MMP_EXIT_OK : MMP_EXIT_USAGE;
#ifndef MMP_WITH_SERVE
        fprintf(stderr, "mmpipe serve: not supported in this build: libmicrohttpd was not found when mmpipe was "
                        "built (Debian: apt-get install libmicrohttpd-dev, then rebuild)\n");
        return MMP_EXIT_FAILED;
#endif
        if (load(&a, &l))
                return MMP_EXIT_USAGE;
        if (!(op = find_op(l.inst, a.op))) {
                unload(&l);
                return MMP_EXIT_USAGE;
        }
        /* Signals wait for the main thread's sigwait: blocked before the
         * server's threads start, so they inherit the mask. */
        sigemptyset(&stop);
        sigaddset(&stop, SIGTERM);
        sigaddset(&stop, SIGINT);
        pthread_sigmask(SIG_BLOCK, &stop, &old);
        so.host = a.host;
        so.port = a.port;
        so.workers = a.workers;
        so.timeout_ms = a.timeout_s * 1000;
        if (!(server = mmp_serve_new(l.inst, op, &so, err, sizeof(err)))) {
                fprintf(stderr, "mmpipe serve: %s\n", err);
                pthread_sigmask(SIG_SETMASK, &old, NULL);
                unload(&l);
                return MMP_EXIT_FAILED;
        }
        while (sigwait(&stop, &sig))
                ;
        mmp_info("serve", "%s: stopping (finishing the invocations in flight)", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        mmp_serve_free(server);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        unload(&l);
        mmp_info("serve", "stopped");
        return MMP_EXIT_OK;
}
