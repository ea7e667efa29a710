/*
 * Unit tests for the configuration: defaults, file merge, ${ENV}, --set and
 * the exact text of validation errors. Single-threaded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "util/err.h"

#define ORIGIN "config.json"
#define TOP_KEYS                                                                                   \
        "engine, plugins, pipelines, source, default_connection, connections, dead_letters, log, " \
        "kafka, s3, sagemaker, models, admin"

static char err[1024];

static mmp_config_t *load(const char *text) {
        err[0] = '\0';
        mmp_config_t *cfg = mmp_config_load_string(text, ORIGIN, err, sizeof(err));
        if (!cfg)
                fail_msg("load failed: %s", err);
        return cfg;
}

/* Loads text and checks that loading succeeds and validation fails with want. */
static void expect_invalid(const char *text, const char *want) {
        mmp_config_t *cfg = load(text);
        err[0] = '\0';
        assert_int_equal(mmp_config_validate(cfg, err, sizeof(err)), MMP_ERR_CONFIG);
        assert_string_equal(err, want);
        mmp_config_free(cfg);
}

static void expect_valid(const char *text) {
        mmp_config_t *cfg = load(text);
        err[0] = '\0';
        if (mmp_config_validate(cfg, err, sizeof(err)) != 0)
                fail_msg("unexpected error: %s", err);
        mmp_config_free(cfg);
}

/* Loading fails (parse or interpolation) with want. */
static void expect_load_error(const char *text, const char *want) {
        err[0] = '\0';
        assert_null(mmp_config_load_string(text, ORIGIN, err, sizeof(err)));
        assert_string_equal(err, want);
}

static void test_defaults(void **state) {
        mmp_config_t *cfg = mmp_config_load(NULL, err, sizeof(err));
        assert_non_null(cfg);
        assert_int_equal(mmp_config_validate(cfg, err, sizeof(err)), 0);
        assert_string_equal(mmp_config_origin(cfg), "<embedded defaults>");

        json_t *want = json_loads(
            "{\"engine\": {\"lanes\": 0, \"workers\": 0, \"max_in_flight\": 1024,"
            " \"handler_timeout_ms\": 30000, \"lua_memory_mb\": 256},"
            " \"plugins\": {\"dir\": \"\"}, \"pipelines\": {\"dir\": \"\"},"
            " \"source\": {\"type\": \"dir\", \"path\": \"./inbox\", \"watch\": false, \"recursive\": true},"
            " \"default_connection\": \"local\","
            " \"connections\": {\"local\": {\"type\": \"sqlite\", \"path\": \"./mmpipe.db\"}},"
            " \"dead_letters\": {\"path\": \"./mmpipe-dead-letters.jsonl\"},"
            " \"models\": {\"text-embedding\": {\"provider\": \"local\", \"plugin\": \"embed\", \"op\": \"text\"},"
            "             \"text-generation\": {\"provider\": \"local\", \"plugin\": \"embed\", \"op\": \"describe\"}},"
            " \"log\": {\"level\": \"info\"}}",
            0, NULL);
        assert_non_null(want);
        assert_true(json_equal(want, (json_t *)mmp_config_root(cfg)));
        json_decref(want);

        assert_int_equal(mmp_config_int(cfg, "engine.max_in_flight", -1), 1024);
        assert_int_equal(mmp_config_int(cfg, "engine.lanes", -1), 0);
        assert_string_equal(mmp_config_str(cfg, "source.type", NULL), "dir");
        assert_string_equal(mmp_config_str(cfg, "connections.local.path", NULL), "./mmpipe.db");
        assert_int_equal(mmp_config_bool(cfg, "source.watch", -1), 0);
        assert_int_equal(mmp_config_bool(cfg, "source.recursive", -1), 1);
        /* Wrong type or missing: the caller's default. */
        assert_int_equal(mmp_config_int(cfg, "source.type", 7), 7);
        assert_int_equal(mmp_config_int(cfg, "engine.nope", 7), 7);
        assert_int_equal(mmp_config_int(cfg, "engine.lanes.deeper", 7), 7);
        assert_int_equal(mmp_config_bool(cfg, "engine.lanes", 5), 5);
        assert_string_equal(mmp_config_str(cfg, "engine.lanes", "d"), "d");
        assert_ptr_equal(mmp_config_get(cfg, ""), mmp_config_root(cfg));
        assert_true(json_is_object(mmp_config_get(cfg, "engine")));
        mmp_config_free(cfg);
        mmp_config_free(NULL);
}

static void test_file_merge(void **state) {
        char path[] = "/tmp/mmp_test_config_XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        const char *text = "{\"engine\": {\"lanes\": 4}, \"source\": {\"path\": \"/data/in\", \"watch\": true},"
                           " \"log\": {\"level\": \"debug\"}}";
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);

        mmp_config_t *cfg = mmp_config_load(path, err, sizeof(err));
        unlink(path);
        assert_non_null(cfg);
        assert_string_equal(mmp_config_origin(cfg), path);
        assert_int_equal(mmp_config_validate(cfg, err, sizeof(err)), 0);
        assert_int_equal(mmp_config_int(cfg, "engine.lanes", -1), 4);
        assert_int_equal(mmp_config_int(cfg, "engine.workers", -1), 0);          /* kept */
        assert_int_equal(mmp_config_int(cfg, "engine.max_in_flight", -1), 1024); /* kept */
        assert_string_equal(mmp_config_str(cfg, "source.path", NULL), "/data/in");
        assert_string_equal(mmp_config_str(cfg, "source.type", NULL), "dir");
        assert_int_equal(mmp_config_bool(cfg, "source.watch", 0), 1);
        assert_string_equal(mmp_config_str(cfg, "log.level", NULL), "debug");
        assert_string_equal(mmp_config_str(cfg, "connections.local.type", NULL), "sqlite");
        mmp_config_free(cfg);
}

static void test_missing_file(void **state) {
        assert_null(mmp_config_load("/nonexistent/mmpipe.json", err, sizeof(err)));
        assert_string_equal(err, "cannot read config /nonexistent/mmpipe.json: No such file or directory");
}

static void test_parse_errors(void **state) {
        /* The trailing comma is on line 3; jansson reports where it notices: line 4. */
        err[0] = '\0';
        assert_null(mmp_config_load_string("{\n  \"engine\": {\n    \"lanes\": 2,\n  }\n}", ORIGIN, err,
                                           sizeof(err)));
        assert_string_equal(err, "config.json:4:3: string or '}' expected near '}'");
        expect_load_error("{\"log\": {\"level\": \"info\", \"level\": \"debug\"}}",
                          "config.json:1:33: duplicate object key near '\"level\"'");
        expect_load_error("[1, 2]", "config.json: expected a JSON object at the top level");
}

static void test_connections_replaced(void **state) {
        mmp_config_t *cfg = load("{\"default_connection\": \"mongo\", \"connections\": {\"mongo\":"
                                 " {\"type\": \"mongodb\", \"uri\": \"mongodb://db\", \"database\": \"media\","
                                 " \"tls\": true}}}");
        assert_int_equal(mmp_config_validate(cfg, err, sizeof(err)), 0);
        assert_null(mmp_config_get(cfg, "connections.local"));
        assert_int_equal(json_object_size(mmp_config_get(cfg, "connections")), 1);
        assert_string_equal(mmp_config_str(cfg, "connections.mongo.database", NULL), "media");
        mmp_config_free(cfg);

        /* Not mentioned: the default connection stays. */
        cfg = load("{\"engine\": {\"workers\": 2}}");
        assert_string_equal(mmp_config_str(cfg, "connections.local.type", NULL), "sqlite");
        mmp_config_free(cfg);

        /* Replaced, but default_connection still names the default "local". */
        expect_invalid("{\"connections\": {\"out\": {\"type\": \"jsonl\", \"path\": \"-\"}}}",
                       "config.json: default_connection: no connection named \"local\" (defined: out)");
        expect_invalid("{\"connections\": {}}",
                       "config.json: default_connection: no connection named \"local\" (defined: none)");
}

static void test_env_interpolation(void **state) {
        setenv("MMP_TEST_URI", "mongodb://user:pw@db:27017", 1);
        setenv("MMP_TEST_EMPTY", "", 1);
        setenv("MMP_TEST_DIR", "/srv", 1);
        unsetenv("MMP_TEST_UNSET");
        mmp_config_t *cfg = load(
            "{\"default_connection\": \"mongo\", \"connections\": {\"mongo\": {\"type\": \"mongodb\","
            " \"uri\": \"${MMP_TEST_URI}\", \"database\": \"${MMP_TEST_UNSET:-media}\"}},"
            " \"source\": {\"path\": \"${MMP_TEST_DIR}/in-${MMP_TEST_EMPTY:-x}-${MMP_TEST_EMPTY}\"},"
            " \"plugins\": {\"dir\": \"$${MMP_TEST_DIR} costs $5 ${MMP_TEST_UNSET:-}\"},"
            " \"models\": {\"list\": [\"${MMP_TEST_DIR}\", 3]}}");
        assert_int_equal(mmp_config_validate(cfg, err, sizeof(err)), 0);
        assert_string_equal(mmp_config_str(cfg, "connections.mongo.uri", NULL),
                            "mongodb://user:pw@db:27017");
        assert_string_equal(mmp_config_str(cfg, "connections.mongo.database", NULL), "media");
        assert_string_equal(mmp_config_str(cfg, "source.path", NULL), "/srv/in-x-");
        assert_string_equal(mmp_config_str(cfg, "plugins.dir", NULL), "${MMP_TEST_DIR} costs $5 ");
        const json_t *list = mmp_config_get(cfg, "models.list");
        assert_string_equal(json_string_value(json_array_get(list, 0)), "/srv");
        mmp_config_free(cfg);

        expect_load_error("{\"connections\": {\"mongo\": {\"type\": \"mongodb\", \"uri\": \"${MMP_TEST_UNSET}\"}}}",
                          "config.json: connections.mongo.uri: environment variable MMP_TEST_UNSET is not set");
        expect_load_error("{\"models\": {\"list\": [\"a\", \"x${MMP_TEST_UNSET}\"]}}",
                          "config.json: models.list[1]: environment variable MMP_TEST_UNSET is not set");
        expect_load_error("{\"source\": {\"path\": \"${MMP_TEST_DIR\"}}",
                          "config.json: source.path: unterminated \"${\" (write \"$${\" for a literal \"${\")");
        expect_load_error("{\"source\": {\"path\": \"a${1X}b\"}}",
                          "config.json: source.path: bad variable reference \"${1X}\" (expected ${NAME} or "
                          "${NAME:-fallback})");
        expect_load_error("{\"source\": {\"path\": \"${A-b}\"}}",
                          "config.json: source.path: bad variable reference \"${A-b}\" (expected ${NAME} or "
                          "${NAME:-fallback})");
}

static void test_set(void **state) {
        mmp_config_t *cfg = load(NULL);
        assert_int_equal(mmp_config_set(cfg, "engine.lanes=8", err, sizeof(err)), 0);
        assert_int_equal(mmp_config_int(cfg, "engine.lanes", -1), 8);
        assert_int_equal(mmp_config_set(cfg, "log.level=debug", err, sizeof(err)), 0);
        assert_string_equal(mmp_config_str(cfg, "log.level", NULL), "debug");
        assert_int_equal(mmp_config_set(cfg, "source.watch=true", err, sizeof(err)), 0);
        assert_int_equal(mmp_config_bool(cfg, "source.watch", 0), 1);
        assert_int_equal(mmp_config_set(cfg, "source.path=\"42\"", err, sizeof(err)), 0);
        assert_string_equal(mmp_config_str(cfg, "source.path", NULL), "42");
        assert_int_equal(mmp_config_set(cfg, "dead_letters.path=", err, sizeof(err)), 0);
        assert_string_equal(mmp_config_str(cfg, "dead_letters.path", NULL), "");
        assert_int_equal(mmp_config_set(cfg, "plugins.dir=a=b", err, sizeof(err)), 0);
        assert_string_equal(mmp_config_str(cfg, "plugins.dir", NULL), "a=b");
        /* Nested creation, JSON object values. */
        assert_int_equal(mmp_config_set(cfg, "s3.endpoint.url=http://localhost:9000", err, sizeof(err)), 0);
        assert_string_equal(mmp_config_str(cfg, "s3.endpoint.url", NULL), "http://localhost:9000");
        assert_int_equal(mmp_config_set(cfg, "connections.out={\"type\":\"jsonl\",\"path\":\"-\"}", err,
                                        sizeof(err)),
                         0);
        assert_string_equal(mmp_config_str(cfg, "connections.out.path", NULL), "-");
        assert_string_equal(mmp_config_str(cfg, "connections.local.type", NULL), "sqlite");
        assert_int_equal(mmp_config_validate(cfg, err, sizeof(err)), 0);

        /* Errors in the assignment itself. */
        assert_int_equal(mmp_config_set(cfg, "engine.lanes", err, sizeof(err)), MMP_ERR_CONFIG);
        assert_string_equal(err, "expected KEY=VALUE (e.g. engine.lanes=4)");
        assert_int_equal(mmp_config_set(cfg, "=4", err, sizeof(err)), MMP_ERR_CONFIG);
        assert_string_equal(err, "empty key");
        assert_int_equal(mmp_config_set(cfg, "engine..lanes=4", err, sizeof(err)), MMP_ERR_CONFIG);
        assert_string_equal(err, "empty key segment in \"engine..lanes\"");
        assert_int_equal(mmp_config_set(cfg, "engine.lanes.x=4", err, sizeof(err)), MMP_ERR_CONFIG);
        assert_string_equal(err, "engine.lanes is not an object");
        assert_int_equal(mmp_config_int(cfg, "engine.lanes", -1), 8);

        /* Validation names --set as the origin of a value it set. */
        assert_int_equal(mmp_config_set(cfg, "engine.workers=two", err, sizeof(err)), 0);
        assert_int_equal(mmp_config_validate(cfg, err, sizeof(err)), MMP_ERR_CONFIG);
        assert_string_equal(err, "--set: engine.workers: expected a non-negative integer, got \"two\"");
        assert_int_equal(mmp_config_set(cfg, "engine.workers=3", err, sizeof(err)), 0);
        assert_int_equal(mmp_config_set(cfg, "connections.out={\"type\":\"jsonl\"}", err, sizeof(err)), 0);
        assert_int_equal(mmp_config_validate(cfg, err, sizeof(err)), MMP_ERR_CONFIG);
        assert_string_equal(err, "--set: connections.out: missing \"path\" (a non-empty string)");
        assert_int_equal(mmp_config_set(cfg, "connections.out.path=out.jsonl", err, sizeof(err)), 0);
        assert_int_equal(mmp_config_validate(cfg, err, sizeof(err)), 0);
        assert_int_equal(mmp_config_set(cfg, "newsection.a=1", err, sizeof(err)), 0);
        assert_int_equal(mmp_config_validate(cfg, err, sizeof(err)), MMP_ERR_CONFIG);
        assert_string_equal(err, "--set: unknown key \"newsection\" (known: " TOP_KEYS ")");
        mmp_config_free(cfg);
}

static void test_validation_errors(void **state) {
        expect_invalid("{\"engine\": {\"lanes\": \"two\"}}",
                       "config.json: engine.lanes: expected a non-negative integer, got \"two\"");
        expect_invalid("{\"engine\": {\"workers\": -1}}",
                       "config.json: engine.workers: expected a non-negative integer, got -1");
        expect_invalid("{\"engine\": {\"lanes\": 2.0}}",
                       "config.json: engine.lanes: expected a non-negative integer, got 2.0");
        expect_invalid("{\"engine\": {\"max_in_flight\": 0}}",
                       "config.json: engine.max_in_flight: expected a positive integer, got 0");
        expect_invalid("{\"engine\": {\"handler_timeout_ms\": 99999999999}}",
                       "config.json: engine.handler_timeout_ms: expected an integer from 1 to 2147483647, "
                       "got 99999999999");
        expect_invalid("{\"engine\": {\"lnes\": 2}}",
                       "config.json: unknown key \"engine.lnes\" (known: lanes, workers, max_in_flight, "
                       "handler_timeout_ms, lua_memory_mb)");
        expect_invalid("{\"engin\": {}}", "config.json: unknown key \"engin\" (known: " TOP_KEYS ")");
        expect_invalid("{\"engine\": [1]}", "config.json: engine: expected an object, got [1]");
        expect_invalid("{\"plugins\": {\"dir\": 5}}", "config.json: plugins.dir: expected a string, got 5");
        expect_invalid("{\"source\": {\"type\": \"s3\"}}",
                       "config.json: source.type: expected one of \"dir\", \"kafka\", got \"s3\"");
        expect_invalid("{\"source\": {\"watch\": \"yes\"}}",
                       "config.json: source.watch: expected true or false, got \"yes\"");
        expect_invalid("{\"source\": {\"kafka\": \"brokers\"}}",
                       "config.json: source.kafka: expected an object, got \"brokers\"");
        expect_invalid("{\"log\": {\"level\": \"verbose\"}}",
                       "config.json: log.level: expected one of \"error\", \"warn\", \"info\", \"debug\", "
                       "got \"verbose\"");
        expect_invalid("{\"dead_letters\": {\"path\": null}}",
                       "config.json: dead_letters.path: expected a string, got null");
        expect_invalid("{\"default_connection\": \"mongo\"}",
                       "config.json: default_connection: no connection named \"mongo\" (defined: local)");
        expect_invalid("{\"default_connection\": 1}",
                       "config.json: default_connection: expected a string, got 1");
        expect_invalid("{\"kafka\": 3}", "config.json: kafka: expected an object, got 3");
        /* Long values are cut to 40 characters. */
        expect_invalid("{\"engine\": {\"lanes\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}",
                       "config.json: engine.lanes: expected a non-negative integer, got "
                       "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...");
}

static void test_connection_errors(void **state) {
        expect_invalid("{\"connections\": {\"local\": {\"type\": \"postgres\", \"path\": \"x\"}}}",
                       "config.json: connections.local.type: unknown connection type \"postgres\" (known: "
                       "sqlite, jsonl, mongodb)");
        expect_invalid("{\"connections\": {\"local\": {\"path\": \"x\"}}}",
                       "config.json: connections.local: missing \"type\" (one of: sqlite, jsonl, mongodb)");
        expect_invalid("{\"connections\": {\"local\": {\"type\": 1}}}",
                       "config.json: connections.local.type: expected a connection type name, got 1");
        expect_invalid("{\"connections\": {\"local\": {\"type\": \"sqlite\"}}}",
                       "config.json: connections.local: missing \"path\" (a non-empty string)");
        expect_invalid("{\"connections\": {\"local\": {\"type\": \"sqlite\", \"path\": \"\"}}}",
                       "config.json: connections.local.path: expected a non-empty string, got \"\"");
        expect_invalid("{\"connections\": {\"local\": {\"type\": \"sqlite\", \"path\": \"a.db\", \"uri\": \"x\"}}}",
                       "config.json: unknown key \"connections.local.uri\" (known: type, path, busy_timeout_ms)");
        expect_invalid("{\"default_connection\": \"m\", \"connections\": {\"m\": {\"type\": \"mongodb\","
                       " \"uri\": \"mongodb://x\"}}}",
                       "config.json: connections.m: missing \"database\" (a non-empty string)");
        expect_invalid("{\"connections\": {\"local\": 5}}",
                       "config.json: connections.local: expected an object, got 5");
        expect_invalid("{\"connections\": []}", "config.json: connections: expected an object, got []");
        expect_invalid("{\"connections\": {\"a.b\": {\"type\": \"jsonl\", \"path\": \"-\"}}}",
                       "config.json: connections: connection name \"a.b\" must be non-empty and contain no \".\"");
        /* Accepted: jsonl on stdout, mongodb with driver options, the sections defined elsewhere. */
        expect_valid("{\"default_connection\": \"out\", \"connections\": {\"out\": {\"type\": \"jsonl\","
                     " \"path\": \"-\"}, \"m\": {\"type\": \"mongodb\", \"uri\": \"mongodb://x\","
                     " \"database\": \"d\", \"pool\": {\"max\": 4}}}}");
        expect_valid("{\"source\": {\"type\": \"kafka\", \"kafka\": {\"topic\": \"t\", \"anything\": [1]}},"
                     " \"kafka\": {\"brokers\": \"k:9092\"}, \"s3\": {}, \"sagemaker\": {}, \"models\": {},"
                     " \"admin\": {\"listen\": \"127.0.0.1:9090\"}}");
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_defaults),
            cmocka_unit_test(test_file_merge),
            cmocka_unit_test(test_missing_file),
            cmocka_unit_test(test_parse_errors),
            cmocka_unit_test(test_connections_replaced),
            cmocka_unit_test(test_env_interpolation),
            cmocka_unit_test(test_set),
            cmocka_unit_test(test_validation_errors),
            cmocka_unit_test(test_connection_errors),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
