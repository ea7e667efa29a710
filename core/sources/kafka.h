/*
 * The Kafka source: a librdkafka consumer in a consumer group that turns S3
 * event notifications into engine events, stores per partition the offset
 * below which every event is done (events finish out of order), stops
 * taking messages when too much is in flight (and pauses its partitions
 * when that lasts), and parks what fails in a
 * dead-letter topic. The poll loop runs on the thread that calls
 * mmp_kafka_source_run; acknowledgements arrive from engine threads.
 */
#ifndef MMP_KAFKA_SOURCE_H
#define MMP_KAFKA_SOURCE_H

#include <signal.h>

#include "config/config.h"
#include "engine/engine.h"

typedef struct mmp_kafka_source mmp_kafka_source_t;

typedef struct mmp_kafka_stats {
        long messages, events, done, failed, malformed, dead_letters, paused_times, rebalances;
        long committed; /* messages whose offsets the group coordinator acknowledged, from this process */
        long in_flight_events;
        long long in_flight_bytes;
        int paused;
} mmp_kafka_stats_t;

/* Reads and checks the "kafka" config section (errors name the key path),
 * creates the consumer and the dead-letter producer. Does not subscribe yet. */
mmp_kafka_source_t *mmp_kafka_source_new(const mmp_config_t *cfg, char *errstr, size_t errstr_size);

/* Checks the "kafka" section as mmp_kafka_source_new would (settings and
 * librdkafka properties of the consumer and the dead-letter producer),
 * without connecting: for `mmpipe check`. Returns 0, or -1 with errstr. */
int mmp_kafka_config_check(const mmp_config_t *cfg, char *errstr, size_t errstr_size);

/* What the engine must be given so acknowledgements and dead letters come
 * back here: fills on_event_done/opaque and dead_letter/dead_letter_opaque. */
void mmp_kafka_source_engine_opts(mmp_kafka_source_t *src, mmp_engine_opts_t *opts);

/* Subscribes and polls until *stop is set, then drains: stops taking new
 * messages, waits up to kafka.drain_timeout_ms for in-flight events, stores
 * and commits what is done, and leaves the group. Returns 0, or -1 when the
 * consumer failed fatally (logged). progress() is called about once a second. */
int mmp_kafka_source_run(mmp_kafka_source_t *src, mmp_engine_t *engine, volatile sig_atomic_t *stop,
                         void (*progress)(const mmp_kafka_stats_t *st, int force, void *opaque),
                         void *progress_opaque);

void mmp_kafka_source_stats(mmp_kafka_source_t *src, mmp_kafka_stats_t *out);
void mmp_kafka_source_free(mmp_kafka_source_t *src);

/* `mmpipe replay`: republishes dead letters to the topic they came from.
 * Filters may be NULL. Returns the number republished, or -1 (errstr). */
long mmp_kafka_replay(const mmp_config_t *cfg, const char *error_class, const char *pipeline, int from_beginning,
                      int dry_run, char *errstr, size_t errstr_size);

#endif
