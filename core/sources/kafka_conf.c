/*
 * The "kafka" config section: checked here (every error names the key
 * path) and turned into librdkafka configurations. Main thread.
 */
#ifdef MMP_WITH_KAFKA /* built only when librdkafka is found */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sources/kafka_int.h"
#include "util/log.h"

static const char *const known_keys[] = {"brokers", "topics", "group", "dead_letter_topic",
                                         "max_in_flight_events", "max_in_flight_mb", "pause_after_ms",
                                         "drain_timeout_ms", "properties", "consumer_properties",
                                         "producer_properties", NULL};

static int is_known(const char *k) {
        for (int i = 0; known_keys[i]; i++)
                if (!strcmp(k, known_keys[i]))
                        return 1;
        return 0;
}

static int read_int(const json_t *sec, const char *key, long long min, long long def, long long *out,
                    char *err, size_t n) {
        const json_t *v = json_object_get(sec, key);
        *out = def;
        if (!v)
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < min) {
                snprintf(err, n, "kafka.%s: expected an integer >= %lld", key, min);
                return -1;
        }
        *out = json_integer_value(v);
        return 0;
}

static int read_props(const json_t *sec, const char *key, json_t **out, char *err, size_t n) {
        const json_t *v = json_object_get(sec, key);
        const char *k;
        json_t *item;
        if (!v)
                return 0;
        if (!json_is_object(v)) {
                snprintf(err, n, "kafka.%s: expected an object of librdkafka properties", key);
                return -1;
        }
        json_object_foreach((json_t *)v, k, item) {
                if (!json_is_string(item) && !json_is_number(item) && !json_is_boolean(item)) {
                        snprintf(err, n, "kafka.%s.%s: expected a string, number or boolean", key, k);
                        return -1;
                }
        }
        *out = json_incref((json_t *)v);
        return 0;
}

int mmp_kafka_settings_read(const mmp_config_t *cfg, mmp_kafka_settings_t *s, char *err, size_t n) {
        const json_t *sec = mmp_config_get(cfg, "kafka"), *v;
        const char *k;
        long long iv;
        memset(s, 0, sizeof(*s));
        if (!json_is_object(sec)) {
                snprintf(err, n, "kafka: the kafka source needs a \"kafka\" section with brokers and topics");
                return -1;
        }
        json_object_foreach((json_t *)sec, k, v) {
                if (!is_known(k)) {
                        snprintf(err, n, "unknown key \"kafka.%s\" (known: brokers, topics, group, dead_letter_topic, "
                                         "max_in_flight_events, max_in_flight_mb, pause_after_ms, drain_timeout_ms, "
                                         "properties, consumer_properties, producer_properties)",
                                 k);
                        return -1;
                }
        }
        v = json_object_get(sec, "brokers");
        if (!json_is_string(v) || !json_string_length(v)) {
                snprintf(err, n, "kafka.brokers: expected a non-empty string such as \"127.0.0.1:9092\"");
                return -1;
        }
        s->brokers = strdup(json_string_value(v));
        v = json_object_get(sec, "topics");
        if (json_is_string(v) && json_string_length(v)) {
                s->topics = calloc(1, sizeof(char *));
                s->topics[s->n_topics++] = strdup(json_string_value(v));
        } else if (json_is_array(v) && json_array_size(v)) {
                s->topics = calloc(json_array_size(v), sizeof(char *));
                for (size_t i = 0; i < json_array_size(v); i++) {
                        const json_t *t = json_array_get(v, i);
                        if (!json_is_string(t) || !json_string_length(t)) {
                                snprintf(err, n, "kafka.topics[%zu]: expected a topic name", i);
                                return -1;
                        }
                        s->topics[s->n_topics++] = strdup(json_string_value(t));
                }
        } else {
                snprintf(err, n, "kafka.topics: expected a topic name or a non-empty list of them");
                return -1;
        }
        v = json_object_get(sec, "group");
        if (v && (!json_is_string(v) || !json_string_length(v))) {
                snprintf(err, n, "kafka.group: expected a non-empty string");
                return -1;
        }
        s->group = strdup(v ? json_string_value(v) : "mmpipe");
        v = json_object_get(sec, "dead_letter_topic");
        if (v && (!json_is_string(v) || !json_string_length(v))) {
                snprintf(err, n, "kafka.dead_letter_topic: expected a topic name");
                return -1;
        }
        s->dead_letter_topic = strdup(v ? json_string_value(v) : "mmpipe-dead-letters");
        if (read_int(sec, "max_in_flight_events", 1, 1000, &iv, err, n))
                return -1;
        s->max_in_flight_events = (long)iv;
        if (read_int(sec, "max_in_flight_mb", 1, 512, &iv, err, n))
                return -1;
        s->max_in_flight_bytes = iv << 20;
        if (read_int(sec, "pause_after_ms", 0, 2000, &iv, err, n))
                return -1;
        s->pause_after_ms = (long)iv;
        if (read_int(sec, "drain_timeout_ms", 0, 30000, &iv, err, n))
                return -1;
        s->drain_timeout_ms = (long)iv;
        if (read_props(sec, "properties", &s->properties, err, n) ||
            read_props(sec, "consumer_properties", &s->consumer_properties, err, n) ||
            read_props(sec, "producer_properties", &s->producer_properties, err, n))
                return -1;
        return 0;
}

void mmp_kafka_settings_clear(mmp_kafka_settings_t *s) {
        free(s->brokers);
        for (size_t i = 0; i < s->n_topics; i++)
                free(s->topics[i]);
        free(s->topics);
        free(s->group);
        free(s->dead_letter_topic);
        json_decref(s->properties);
        json_decref(s->consumer_properties);
        json_decref(s->producer_properties);
        memset(s, 0, sizeof(*s));
}

static int conf_set(rd_kafka_conf_t *c, const char *key, const char *val, const char *where, char *err, size_t n) {
        char why[512];
        if (rd_kafka_conf_set(c, key, val, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
                snprintf(err, n, "%s%s: %s", where, key, why);
                return -1;
        }
        return 0;
}

static int apply_props(rd_kafka_conf_t *c, const json_t *props, const char *where, char *err, size_t n) {
        const char *k;
        json_t *v;
        char buf[64];
        json_object_foreach((json_t *)props, k, v) {
                const char *val = buf;
                if (json_is_string(v))
                        val = json_string_value(v);
                else if (json_is_integer(v))
                        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
                else if (json_is_real(v))
                        snprintf(buf, sizeof(buf), "%g", json_real_value(v));
                else
                        snprintf(buf, sizeof(buf), "%s", json_is_true(v) ? "true" : "false");
                if (conf_set(c, k, val, where, err, n))
                        return -1;
        }
        return 0;
}

/* librdkafka's own log lines, through ours (syslog levels: 0-3 error,
 * 4 warning, 5-6 info, 7 debug). */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
        mmp_log_level_t l = level <= 3 ? MMP_LOG_ERROR : level == 4 ? MMP_LOG_WARN : level <= 6 ? MMP_LOG_INFO
                                                                                               : MMP_LOG_DEBUG;
        (void)rk;
        /* Shared "properties" are given to both clients; librdkafka warns
         * that the producer ignores the consumer's. That is expected. */
        if (!strcmp(fac, "CONFWARN") && strstr(buf, "will be ignored by this"))
                l = MMP_LOG_DEBUG;
        mmp_log(l, "rdkafka", "%s: %s", fac, buf);
}

rd_kafka_conf_t *mmp_kafka_conf_new(const mmp_kafka_settings_t *s, int consumer, char *err, size_t n) {
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        rd_kafka_conf_set_log_cb(c, on_log);
        /* At-least-once with out-of-order completion: the source stores each
         * partition's offset itself once everything below it is done, and
         * librdkafka commits what was stored. Bounded prefetch keeps memory
         * bounded while partitions are paused: every partition's messages
         * share one queue here (kafka.c), and librdkafka applies both of its
         * prefetch thresholds to that queue as a whole, so the memory bound
         * is queued.max.messages.kbytes and the message count (meant per
         * partition, 100,000 by default) is set out of its way. Past either,
         * librdkafka 2.0 stops fetching for about a second. */
        static const char *const consumer_defaults[][2] = {
            {"enable.auto.offset.store", "false"}, {"enable.auto.commit", "true"},
            {"auto.commit.interval.ms", "1000"},   {"auto.offset.reset", "earliest"},
            {"queued.max.messages.kbytes", "65536"}, {"queued.min.messages", "1000000"},
            {"enable.partition.eof", "false"},
        };
        static const char *const producer_defaults[][2] = {
            {"acks", "all"}, {"enable.idempotence", "true"}, {"message.timeout.ms", "30000"},
            {"linger.ms", "5"},
        };
        if (conf_set(c, "bootstrap.servers", s->brokers, "kafka.brokers: ", err, n) ||
            conf_set(c, "client.id", "mmpipe", "", err, n))
                goto fail;
        if (consumer) {
                if (conf_set(c, "group.id", s->group, "kafka.group: ", err, n))
                        goto fail;
                for (size_t i = 0; i < sizeof(consumer_defaults) / sizeof(consumer_defaults[0]); i++)
                        if (conf_set(c, consumer_defaults[i][0], consumer_defaults[i][1], "", err, n))
                                goto fail;
        } else {
                for (size_t i = 0; i < sizeof(producer_defaults) / sizeof(producer_defaults[0]); i++)
                        if (conf_set(c, producer_defaults[i][0], producer_defaults[i][1], "", err, n))
                                goto fail;
        }
        if (s->properties && apply_props(c, s->properties, "kafka.properties.", err, n))
                goto fail;
        if (consumer && s->consumer_properties &&
            apply_props(c, s->consumer_properties, "kafka.consumer_properties.", err, n))
                goto fail;
        if (!consumer && s->producer_properties &&
            apply_props(c, s->producer_properties, "kafka.producer_properties.", err, n))
                goto fail;
        return c;
fail:
        rd_kafka_conf_destroy(c);
        return NULL;
}

int mmp_kafka_config_check(const mmp_config_t *cfg, char *err, size_t n) {
        mmp_kafka_settings_t s;
        rd_kafka_conf_t *c = NULL;
        int rc = mmp_kafka_settings_read(cfg, &s, err, n) || !(c = mmp_kafka_conf_new(&s, 1, err, n)) ? -1 : 0;
        if (c) {
                rd_kafka_conf_destroy(c);
                if (!(c = mmp_kafka_conf_new(&s, 0, err, n)))
                        rc = -1;
        }
        if (c)
                rd_kafka_conf_destroy(c);
        mmp_kafka_settings_clear(&s);
        return rc;
}
#endif /* MMP_WITH_KAFKA */
