/*
 * The Kafka stand-in does what the Kafka source relies on: librdkafka's mock cluster (in-process
 * here, the same code tests/tools/kafka_mock runs) keeps a consumer group's committed offsets, and
 * a restarted member with enable.auto.offset.store=false resumes from what it stored, not from
 * where it had read. Main thread; librdkafka's threads serve the mock. Skipped without Kafka.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <setjmp.h> /* cmocka.h needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef MMP_WITH_KAFKA
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define N_MSGS 1000
#define N_PARTS 4
#define TOPIC "smoke"

static rd_kafka_t *mock_rk;
static rd_kafka_mock_cluster_t *mock;
static char bootstrap[512];

static rd_kafka_conf_t *conf_new(const char *const *kv) {
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();

        for (; kv && kv[0]; kv += 2) {
                if (rd_kafka_conf_set(conf, kv[0], kv[1], errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
                        fail_msg("setting %s=%s: %s", kv[0], kv[1], errstr);
        }
        return conf;
}

static int setup(void **state) {
        char errstr[512];
        static const char *const quiet[] = {"log_level", "3", NULL};

        mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf_new(quiet), errstr, sizeof(errstr));
        if (!mock_rk || !(mock = rd_kafka_mock_cluster_new(mock_rk, 3)))
                return -1;
        if (rd_kafka_mock_topic_create(mock, TOPIC, N_PARTS, 1))
                return -1;
        snprintf(bootstrap, sizeof(bootstrap), "%s", rd_kafka_mock_cluster_bootstraps(mock));
        return 0;
}

static int teardown(void **state) {
        rd_kafka_mock_cluster_destroy(mock);
        rd_kafka_destroy(mock_rk);
        return 0;
}

static void produce_all(void) {
        const char *const kv[] = {"bootstrap.servers", bootstrap, "linger.ms", "5", NULL};
        char errstr[512], payload[16];
        rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf_new(kv), errstr, sizeof(errstr));

        assert_non_null(p);
        for (int i = 0; i < N_MSGS; i++) {
                int n = snprintf(payload, sizeof(payload), "%d", i);
                assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                                   RD_KAFKA_V_VALUE(payload, (size_t)n), RD_KAFKA_V_END),
                                 RD_KAFKA_RESP_ERR_NO_ERROR);
        }
        assert_int_equal(rd_kafka_flush(p, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_destroy(p);
}

static rd_kafka_t *group_member_new(const char *group) {
        /* Short session and heartbeat: a restarted member rejoins in seconds (TESTING.md). */
        const char *const kv[] = {"bootstrap.servers", bootstrap, "group.id", group,
                                  "enable.auto.offset.store", "false", "enable.auto.commit", "false",
                                  "auto.offset.reset", "earliest", "enable.partition.eof", "true",
                                  "session.timeout.ms", "3000", "heartbeat.interval.ms", "500",
                                  "log_level", "3", NULL};
        char errstr[512];
        rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf_new(kv), errstr, sizeof(errstr));
        rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);

        assert_non_null(c);
        rd_kafka_poll_set_consumer(c);
        rd_kafka_topic_partition_list_add(topics, TOPIC, RD_KAFKA_PARTITION_UA);
        assert_int_equal(rd_kafka_subscribe(c, topics), RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_topic_partition_list_destroy(topics);
        return c;
}

/* Consumes up to `limit` messages (or until every partition is at its end), marking each in
 * seen[] (counts) and storing the offsets of the first `store` of them; then commits the stored
 * offsets and closes. Returns how many it consumed. */
static int consume_run(const char *group, int limit, int store, int *seen) {
        rd_kafka_t *c = group_member_new(group);
        int got = 0, at_eof[N_PARTS] = {0}, eofs = 0;

        for (int idle = 0; got < limit && eofs < N_PARTS && idle < 300;) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);

                if (!m) {
                        idle++;
                        continue;
                }
                idle = 0;
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        eofs += !at_eof[m->partition];
                        at_eof[m->partition] = 1;
                } else {
                        assert_int_equal(m->err, RD_KAFKA_RESP_ERR_NO_ERROR);
                        char num[16];
                        snprintf(num, sizeof(num), "%.*s", (int)m->len, (const char *)m->payload);
                        seen[atoi(num)]++;
                        if (got++ < store) {
                                rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
                                rd_kafka_topic_partition_list_add(l, TOPIC, m->partition)->offset = m->offset + 1;
                                assert_int_equal(rd_kafka_offsets_store(c, l), RD_KAFKA_RESP_ERR_NO_ERROR);
                                rd_kafka_topic_partition_list_destroy(l);
                        }
                }
                rd_kafka_message_destroy(m);
        }
        /* Synchronous commit of the stored offsets; NO_OFFSET means nothing was stored. */
        rd_kafka_resp_err_t err = rd_kafka_commit(c, NULL, 0);
        assert_true(err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET);
        assert_int_equal(rd_kafka_consumer_close(c), RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_destroy(c);
        return got;
}

/* 1000 produced; the first member reads 400 but stores only 300; a restarted member gets the other
 * 700, 100 of them for the second time (read, never stored): at-least-once from the stored offset. */
static void test_restart_resumes_from_stored_offset(void **state) {
        static int first[N_MSGS], second[N_MSGS];
        int again = 0;

        produce_all();
        assert_int_equal(consume_run("smoke-group", 400, 300, first), 400);
        assert_int_equal(consume_run("smoke-group", N_MSGS, N_MSGS, second), 700);
        for (int i = 0; i < N_MSGS; i++) {
                assert_int_equal(first[i] + second[i] - (first[i] && second[i]), 1); /* each seen */
                assert_true(first[i] <= 1 && second[i] <= 1);
                again += first[i] && second[i];
        }
        assert_int_equal(again, 100);
        /* Everything stored and committed now: a third run finds nothing left. */
        memset(second, 0, sizeof(second));
        assert_int_equal(consume_run("smoke-group", N_MSGS, N_MSGS, second), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_restart_resumes_from_stored_offset),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}

#else /* !MMP_WITH_KAFKA */

static void test_kafka_not_built(void **state) {
        skip(); /* built without librdkafka: nothing to check */
}

int main(void) {
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_kafka_not_built)};
        return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
