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

/* One dead letter, from its first send until the broker acknowledged it. */
typedef struct mmp_kafka_dl {
        struct mmp_kafka_dl *next;
        struct mmp_kafka_source *src;
        struct mmp_kafka_msg *m;
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
        /* Its dead letters (lock): any not yet acknowledged holds its offset back. */
        int dl_pending;           /* sent, not yet reported */
        mmp_kafka_dl_t *dl_retry; /* refused or failed: sent again from the poll thread */
        int dl_tries;             /* rounds of those */
        int64_t dl_retry_ms;      /* the next round (monotonic ms) */
        int dl_lost;              /* a letter could not even be kept: consumed again after a restart */
        long long bytes;     /* its events' declared object sizes, in flight until it is done */
        void *payload, *key; /* point into data */
        size_t len, key_len;
        struct mmp_kafka_msg *next;
        char data[];         /* payload, then key: one allocation per message */
} mmp_kafka_msg_t;

/* The offset ledger of one assigned partition: messages in offset order. */
/* Where a partition's committed offset stands, as far as this process
 * knows: for counting what each acknowledged commit moves. It outlives the
 * partition's ledger (a commit made at a revoke is acknowledged after the
 * ledger is gone) and starts again at each assignment. */
typedef struct mmp_kafka_mark {
        char *topic;
        int32_t partition;
        int64_t offset; /* the last acknowledged commit, or at first the offset of the first message taken
                           after the assignment (where an earlier commit left it); -1 until then */
        struct mmp_kafka_mark *next;
} mmp_kafka_mark_t;

typedef struct mmp_kafka_part {
        char *topic;
        int32_t partition;
        int revoked; /* not ours any more: nothing of it is stored again */
        mmp_kafka_msg_t *head, *tail;
        long in_flight;
        mmp_kafka_mark_t *mark; /* its commit mark (NULL: out of memory, not counted) */
        struct mmp_kafka_part *next;
} mmp_kafka_part_t;

/* The dead-letter producer: letters are sent without waiting; each one's
 * delivery report comes to the report callback. */
typedef struct mmp_kafka_dlq mmp_kafka_dlq_t;

/* Called once per letter sent, with the send's opaque: err 0 when the broker
 * acknowledged it. On the producer's poller thread (or in mmp_kafka_dlq_send
 * when the letter could not even be queued, or in mmp_kafka_dlq_flush/free). */
typedef void(mmp_kafka_dlq_report_cb)(void *opaque, rd_kafka_resp_err_t err);

mmp_kafka_dlq_t *mmp_kafka_dlq_new(const mmp_kafka_settings_t *s, mmp_kafka_dlq_report_cb *report, char *errstr,
                                   size_t n);
/* Sends one dead letter: the original message (value and key) with mmpipe.*
 * headers; its report comes later with opaque. event (the record as JSON
 * text), pipeline and message may be NULL (malformed messages). Copies what
 * it needs. Any thread. */
void mmp_kafka_dlq_send(mmp_kafka_dlq_t *dlq, const mmp_kafka_msg_t *msg, const char *event, mmp_stage_t stage,
                        mmp_err_t code, int attempts, const char *pipeline, const char *message, void *opaque);
const char *mmp_kafka_dlq_topic(const mmp_kafka_dlq_t *dlq);
/* Waits up to timeout_ms for every letter sent to be reported. */
void mmp_kafka_dlq_flush(mmp_kafka_dlq_t *dlq, int timeout_ms);
void mmp_kafka_dlq_free(mmp_kafka_dlq_t *dlq); /* reports what is still unsent (after up to 30 s) */

#endif
