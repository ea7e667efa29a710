/*
 * `mmpipe replay`: republishes dead letters from the dead-letter topic to
 * the topics they came from, all or filtered, so a fixed handler can
 * process them again. Main thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sources/kafka.h"

static const char help[] =
    "usage: mmpipe replay --config FILE [--error-class CLASS] [--pipeline NAME] [--from-beginning] [--dry-run]\n"
    "\n"
    "Reads the dead-letter topic (kafka.dead_letter_topic) up to its current end and\n"
    "republishes each dead letter's original message to the topic it came from, so\n"
    "the engine processes it again (documents are idempotent, so replaying twice is\n"
    "harmless). Progress is kept per filter in its own consumer group\n"
    "(<kafka.group>.replay[.class=C][.pipeline=P]): the same replay run again takes\n"
    "only the dead letters that arrived since, unless --from-beginning.\n"
    "\n"
    "options:\n"
    "  --config FILE        the config with the kafka section\n"
    "  --set KEY=VALUE      override one config key\n"
    "  --error-class CLASS  only dead letters of this class (LUA, TIMEOUT, BAD_INPUT, NOT_FOUND, ...)\n"
    "  --pipeline NAME      only dead letters of this pipeline\n"
    "  --from-beginning     read the whole dead-letter topic again\n"
    "  --dry-run            list what would be replayed, republish nothing\n";

int mmp_cmd_replay(int argc, char **argv) {
        mmp_cli_t cli;
        mmp_config_t *cfg;
        char err[1024];
        long n;
        int rc;
        if ((rc = mmp_cli_parse(&cli, argc, argv, "config|set|error-class|pipeline|from-beginning|dry-run", help)))
                return free(cli.args), rc > 0 ? MMP_EXIT_OK : MMP_EXIT_USAGE;
        if (cli.n_args) {
                fprintf(stderr, "mmpipe replay: unexpected argument \"%s\" (see --help)\n", cli.args[0]);
                free(cli.args);
                return MMP_EXIT_USAGE;
        }
        if (!(cfg = mmp_cli_config(&cli)))
                return free(cli.args), MMP_EXIT_USAGE;
#ifdef MMP_WITH_KAFKA
        n = mmp_kafka_replay(cfg, cli.error_class, cli.pipeline, cli.from_beginning, cli.dry_run, err, sizeof(err));
#else
        snprintf(err, sizeof(err), "replay needs Kafka, which is not supported in this build");
        n = -1;
#endif
        mmp_config_free(cfg);
        free(cli.args);
        if (n < 0) {
                fprintf(stderr, "mmpipe replay: %s\n", err);
                return MMP_EXIT_FAILED;
        }
        printf("%ld dead letters %s\n", n, cli.dry_run ? "would be replayed" : "replayed");
        return MMP_EXIT_OK;
}
