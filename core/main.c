/*
 * mmpipe: the command-line entry point. Dispatches to the sub-commands in
 * core/cli/. Main thread.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#ifdef MMP_WITH_JEMALLOC
/* jemalloc's own options (MALLOC_CONF in the environment is applied after
 * them), each measured with bench/kafka_consume.sh (docs/perf-kafka.md):
 * - thp:always, its memory in transparent huge pages. librdkafka prefetches
 *   up to 64 MB of messages into new buffers, and on 4 KiB pages every page
 *   of them is a page fault: 4x fewer faults, about 13% less CPU a message.
 * - narenas:1, one arena for every thread. Memory here is mostly freed on
 *   another thread than the one that took it (librdkafka's messages by the
 *   poll thread, events by the sink writer); with an arena per thread (4 a
 *   core by default) it went back to an arena its taker did not use, and new
 *   work took new pages. One arena: 2,900 page faults a run instead of
 *   5,200, 7-12% less time (seven A-B-B-A blocks); bench/engine_overhead.sh
 *   unchanged (the threads' caches take most calls without the arena lock).
 *   Measured on two cores; many cores and lanes may want more arenas:
 *   MALLOC_CONF=narenas:N (docs/kafka.md).
 * Found by jemalloc by name: exported. */
__attribute__((visibility("default"))) const char *malloc_conf = "thp:always,narenas:1";
#endif

static const char usage[] =
    "usage: mmpipe <command> [options]\n"
    "\n"
    "mmpipe turns files into stored, searchable documents: each file event is\n"
    "fetched, routed by content type to Lua pipeline handlers that call modality\n"
    "plugins, and the documents they return are stored idempotently.\n"
    "\n"
    "commands:\n"
    "  run       run the engine on the configured source (a folder by default)\n"
    "  process   run the pipelines on local files and print the documents (JSON lines)\n"
    "  check     validate the config, compile the pipelines, load the plugins\n"
    "  plugins   list plugins and their operations, and refused files with reasons\n"
    "  serve     serve one plugin operation over HTTP as a SageMaker container (/ping, /invocations)\n"
    "  search    the documents nearest to a text or a file (embeddings, cosine similarity)\n"
    "  replay    republish dead letters from the dead-letter topic to their source topic\n"
    "  version   version and the features compiled in\n"
    "\n"
    "`mmpipe <command> --help` describes each command's options.\n";

int main(int argc, char **argv) {
        static const struct {
                const char *name;
                int (*fn)(int, char **);
        } cmds[] = {{"run", mmp_cmd_run},         {"process", mmp_cmd_process}, {"check", mmp_cmd_check},
                    {"plugins", mmp_cmd_plugins}, {"version", mmp_cmd_version}, {"replay", mmp_cmd_replay},
                    {"search", mmp_cmd_search}, {"serve", mmp_cmd_serve}};
        int rc;

        if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
                fputs(usage, argc < 2 ? stderr : stdout);
                return argc < 2 ? MMP_EXIT_USAGE : MMP_EXIT_OK;
        }
        if (!strcmp(argv[1], "--version"))
                return mmp_cmd_version(1, argv + 1);
        for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
                if (!strcmp(argv[1], cmds[i].name)) {
                        curl_global_init(CURL_GLOBAL_DEFAULT);
                        rc = cmds[i].fn(argc - 1, argv + 1);
                        curl_global_cleanup();
                        return rc;
                }
        }
        fprintf(stderr, "mmpipe: unknown command \"%s\"\n\n%s", argv[1], usage);
        return MMP_EXIT_USAGE;
}
