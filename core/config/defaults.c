/*
 * The embedded default configuration: what `mmpipe` runs on with no
 * --config (local folder in, SQLite out). Read by the main thread at start-up.
 * Every key here is documented in docs/config.md; keep the two in step.
 */
#include "config.h"

/* lanes/workers 0 = one per core; plugins.dir/pipelines.dir "" = the
 * built-in locations, resolved by the engine. */
static const char defaults_json[] =
    "{\n"
    "  \"engine\": { \"lanes\": 0, \"workers\": 0, \"max_in_flight\": 1024,\n"
    "              \"handler_timeout_ms\": 30000, \"lua_memory_mb\": 256 },\n"
    "  \"plugins\": { \"dir\": \"\" },\n"
    "  \"pipelines\": { \"dir\": \"\" },\n"
    "  \"source\": { \"type\": \"dir\", \"path\": \"./inbox\", \"watch\": false, \"recursive\": true },\n"
    "  \"default_connection\": \"local\",\n"
    "  \"connections\": { \"local\": { \"type\": \"sqlite\", \"path\": \"./mmpipe.db\" } },\n"
    "  \"dead_letters\": { \"path\": \"./mmpipe-dead-letters.jsonl\" },\n"
    "  \"models\": { \"text-embedding\": { \"provider\": \"local\", \"plugin\": \"embed\", \"op\": \"text\" },\n"
    "              \"text-generation\": { \"provider\": \"local\", \"plugin\": \"embed\", \"op\": \"describe\" } },\n"
    "  \"log\": { \"level\": \"info\" }\n"
    "}\n";

const char *mmp_config_defaults_text(void) {
        return defaults_json;
}
