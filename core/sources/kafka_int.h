/*
 * Inside the Kafka source: settings, the per-partition offset ledger and
 * the dead-letter producer, shared by kafka.c (consumer and ledger),
 * kafka_conf.c (settings) and kafka_dlq.c (dead letters and replay).
 */
#ifndef MMP_KAFKA_INT_H
#define MMP_KAFKA_INT_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>

#include "sources/kafka.h"

typedef struct mmp_kafka_settings {
        char *brokers;
        char **topics;
        size_t n_topics;
        char *group;
        char *dead_letter_topic;
        long max_in_flight_events;
        long long max_in_flight_bytes;
        long pause_after_ms; /* lasting pressure before partitions are paused (0: at once) */
        long drain_timeout_ms;
        json_t *properties;          /* for consumer and producer */
        json_t *consumer_properties; /* consumer only */
        json_t *producer_properties; /* producer only */
} mmp_kafka_settings_t;

/* Reads and checks cfg's "kafka" section. Returns 0 or -1 (errstr names the key path). */
int mmp_kafka_settings_read(const mmp_config_t *cfg, mmp_kafka_settings_t *s, char *errstr, size_t n);
void mmp_kafka_settings_clear(mmp_kafka_settings_t *s);
/* A librdkafka configuration: bootstrap servers, the given defaults, then
 * the user's properties (shared, then role-specific) on top. */
rd_kafka_conf_t *mmp_kafka_conf_new(const mmp_kafka_settings_t *s, int consumer, char *errstr, size_t n);

/* A dead letter that could not be written, kept to be written again. */
typedef struct mmp_kafka_dl {
        struct mmp_kafka_dl *next;
        mmp_stage_t stage;
        mmp_err_t code;
        int attempts;
        char *event, *pipeline, *message; /* may be NULL */
} mmp_kafka_dl_t;

/* One consumed message, from poll until every event it produced is done. */
typedef struct mmp_kafka_msg {
        struct mmp_kafka_part *part;
        int64_t offset;
        int pending;   /* events not done, +1 while the poll thread still submits (lock) */
        int done;
        int dl_failed; /* a dead letter could not be written: its offset must not be stored */
        mmp_kafka_dl_t *dl_retry; /* those dead letters, written again from the poll thread */
        int dl_tries;             /* times they were tried again */
        int64_t dl_retry_ms;      /* when next (monotonic ms) */
        long long bytes;     /* its events' declared object sizes, in flight until it is done */
        void *payload, *key; /* point into data */
        size_t len, key_len;
        struct mmp_kafka_msg *next;
        char data[];         /* payload, then key: one allocation per message */
} mmp_kafka_msg_t;

/* The offset ledger of one assigned partition: messages in offset order. */
typedef struct mmp_kafka_part {
        char *topic;
        int32_t partition;
        int revoked; /* not ours any more: nothing of it is stored again */
        mmp_kafka_msg_t *head, *tail;
        long in_flight;
        struct mmp_kafka_part *next;
} mmp_kafka_part_t;

/* The dead-letter producer: produce and wait for the broker's ack. */
typedef struct mmp_kafka_dlq mmp_kafka_dlq_t;

mmp_kafka_dlq_t *mmp_kafka_dlq_new(const mmp_kafka_settings_t *s, char *errstr, size_t n);
/* Writes one dead letter: the original message (value and key) with
 * mmpipe.* headers. Blocks until the broker acknowledged it or the delivery
 * timeout passed. event (the record as JSON text) and failure may be NULL/partial for malformed
 * messages. Any thread. Returns 0 when delivered. */
int mmp_kafka_dlq_write(mmp_kafka_dlq_t *dlq, const mmp_kafka_msg_t *msg, const char *event,
                        mmp_stage_t stage, mmp_err_t code, int attempts, const char *pipeline,
                        const char *message);
void mmp_kafka_dlq_free(mmp_kafka_dlq_t *dlq);

#endif
