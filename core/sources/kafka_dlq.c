/*
 * The dead-letter topic: failed events' original messages with mmpipe.*
 * headers saying why, sent without waiting (the source holds the message's
 * offset back until the broker acknowledged its letter); and `mmpipe
 * replay`, which republishes them to their source topic. Letters are sent
 * from any thread; a poller thread serves the delivery reports.
 */
#ifdef MMP_WITH_KAFKA /* built only when librdkafka is found */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sources/kafka_int.h"
#include "util/log.h"
#include "util/time.h"

struct mmp_kafka_dlq {
        rd_kafka_t *rk;
        char *topic;
        mmp_kafka_dlq_report_cb *report;
        pthread_t poller;
        volatile int stopping;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        mmp_kafka_dlq_t *dlq = opaque;
        (void)rk;
        dlq->report(m->_private, m->err);
}

static void *poller_main(void *arg) {
        mmp_kafka_dlq_t *dlq = arg;
        while (!dlq->stopping)
                rd_kafka_poll(dlq->rk, 100);
        return NULL;
}

mmp_kafka_dlq_t *mmp_kafka_dlq_new(const mmp_kafka_settings_t *s, mmp_kafka_dlq_report_cb *report, char *err,
                                   size_t n) {
        mmp_kafka_dlq_t *dlq = calloc(1, sizeof(*dlq));
        rd_kafka_conf_t *c = mmp_kafka_conf_new(s, 0, err, n);
        char why[512];
        if (!c) {
                free(dlq);
                return NULL;
        }
        dlq->report = report;
        rd_kafka_conf_set_opaque(c, dlq);
        rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
        if (!(dlq->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, why, sizeof(why)))) {
                snprintf(err, n, "kafka: cannot create the dead-letter producer: %s", why);
                rd_kafka_conf_destroy(c);
                free(dlq);
                return NULL;
        }
        dlq->topic = strdup(s->dead_letter_topic);
        pthread_create(&dlq->poller, NULL, poller_main, dlq);
        return dlq;
}

static void iso_now(char *buf, size_t n) {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + k, n - k, ".%03ldZ", ts.tv_nsec / 1000000);
}

void mmp_kafka_dlq_send(mmp_kafka_dlq_t *dlq, const mmp_kafka_msg_t *msg, const char *event, mmp_stage_t stage,
                        mmp_err_t code, int attempts, const char *pipeline, const char *message, void *opaque) {
        rd_kafka_headers_t *h = rd_kafka_headers_new(12);
        char part[16], off[24], att[16], when[40];
        rd_kafka_resp_err_t err;

        snprintf(part, sizeof(part), "%d", msg->part->partition);
        snprintf(off, sizeof(off), "%lld", (long long)msg->offset);
        snprintf(att, sizeof(att), "%d", attempts);
        iso_now(when, sizeof(when));
        rd_kafka_header_add(h, "mmpipe.stage", -1, mmp_stage2str(stage), -1);
        rd_kafka_header_add(h, "mmpipe.error_class", -1, mmp_err2name(code), -1);
        rd_kafka_header_add(h, "mmpipe.message", -1, message ? message : "", -1);
        rd_kafka_header_add(h, "mmpipe.attempts", -1, att, -1);
        rd_kafka_header_add(h, "mmpipe.pipeline", -1, pipeline ? pipeline : "", -1);
        rd_kafka_header_add(h, "mmpipe.source.topic", -1, msg->part->topic, -1);
        rd_kafka_header_add(h, "mmpipe.source.partition", -1, part, -1);
        rd_kafka_header_add(h, "mmpipe.source.offset", -1, off, -1);
        rd_kafka_header_add(h, "mmpipe.time", -1, when, -1);
        if (event)
                rd_kafka_header_add(h, "mmpipe.event", -1, event, -1);

        /* The copies are made here (F_COPY, the headers taken): msg may
         * go once the report came. */
        err = rd_kafka_producev(dlq->rk, RD_KAFKA_V_TOPIC(dlq->topic), RD_KAFKA_V_VALUE(msg->payload, msg->len),
                                RD_KAFKA_V_KEY(msg->key, msg->key_len), RD_KAFKA_V_HEADERS(h),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
        if (err) { /* not even queued: reported at once */
                rd_kafka_headers_destroy(h);
                dlq->report(opaque, err);
        }
}

const char *mmp_kafka_dlq_topic(const mmp_kafka_dlq_t *dlq) {
        return dlq->topic;
}

void mmp_kafka_dlq_flush(mmp_kafka_dlq_t *dlq, int timeout_ms) {
        rd_kafka_flush(dlq->rk, timeout_ms);
}

void mmp_kafka_dlq_free(mmp_kafka_dlq_t *dlq) {
        if (!dlq)
                return;
        rd_kafka_flush(dlq->rk, 30000);
        dlq->stopping = 1;
        pthread_join(dlq->poller, NULL);
        rd_kafka_destroy(dlq->rk);
        free(dlq->topic);
        free(dlq);
}

/* A header's value as a string in buf ("" when absent). */
static const char *header(rd_kafka_headers_t *h, const char *name, char *buf, size_t n) {
        const void *v;
        size_t len;
        buf[0] = '\0';
        if (h && rd_kafka_header_get_last(h, name, &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR && v) {
                if (len >= n)
                        len = n - 1;
                memcpy(buf, v, len);
                buf[len] = '\0';
        }
        return buf;
}

/* Replay: read the dead-letter topic to its current end, republish each
 * matching message to the topic it came from, then commit, so the next
 * replay starts after what this one took. */
long mmp_kafka_replay(const mmp_config_t *cfg, const char *error_class, const char *pipeline, int from_beginning,
                      int dry_run, char *err, size_t n) {
        mmp_kafka_settings_t s;
        rd_kafka_t *consumer = NULL, *producer = NULL;
        rd_kafka_conf_t *cc = NULL, *pc = NULL;
        rd_kafka_topic_partition_list_t *parts = NULL;
        const struct rd_kafka_metadata *md = NULL;
        char why[512], group[512];
        long replayed = 0, seen = 0, remaining;

        if (mmp_kafka_settings_read(cfg, &s, err, n))
                return -1;
        /* Its own group per filter: replay progress is separate from the
         * consumers', and `replay --error-class X` run again takes only the
         * X dead letters that arrived since, whatever other replays did. */
        snprintf(group, sizeof(group), "%s.replay%s%s%s%s", s.group, error_class ? ".class=" : "",
                 error_class ? error_class : "", pipeline ? ".pipeline=" : "", pipeline ? pipeline : "");
        free(s.group);
        s.group = strdup(group);
        if (!(cc = mmp_kafka_conf_new(&s, 1, err, n)) || !(pc = mmp_kafka_conf_new(&s, 0, err, n)))
                goto fail;
        rd_kafka_conf_set(cc, "enable.auto.commit", "false", why, sizeof(why));
        rd_kafka_conf_set(cc, "enable.partition.eof", "true", why, sizeof(why));
        if (!(consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, why, sizeof(why)))) {
                snprintf(err, n, "kafka: cannot create a consumer: %s", why);
                goto fail;
        }
        cc = NULL;
        if (!(producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, why, sizeof(why)))) {
                snprintf(err, n, "kafka: cannot create a producer: %s", why);
                goto fail;
        }
        pc = NULL;
        rd_kafka_poll_set_consumer(consumer);
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(consumer, s.dead_letter_topic, NULL);
        rd_kafka_resp_err_t e = rd_kafka_metadata(consumer, 0, rkt, &md, 10000);
        rd_kafka_topic_destroy(rkt);
        if (e || md->topic_cnt != 1 || md->topics[0].err) {
                snprintf(err, n, "kafka: dead-letter topic %s: %s", s.dead_letter_topic,
                         rd_kafka_err2str(e ? e : md->topic_cnt ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART));
                goto fail;
        }
        parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
        for (int i = 0; i < md->topics[0].partition_cnt; i++)
                rd_kafka_topic_partition_list_add(parts, s.dead_letter_topic, md->topics[0].partitions[i].id)->offset =
                    from_beginning ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_STORED;
        remaining = parts->cnt;
        if (!from_beginning) {
                /* No committed offset yet means "from the start". */
                rd_kafka_committed(consumer, parts, 10000);
                for (int i = 0; i < parts->cnt; i++)
                        if (parts->elems[i].offset < 0)
                                parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
        }
        rd_kafka_assign(consumer, parts);
        while (remaining > 0) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 10000);
                char cls[64], pl[256], topic[256];
                rd_kafka_headers_t *h = NULL;
                if (!m) {
                        snprintf(err, n, "kafka: no answer from the brokers for 10 s while reading %s", s.dead_letter_topic);
                        goto fail;
                }
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        remaining--;
                        rd_kafka_message_destroy(m);
                        continue;
                }
                if (m->err) {
                        snprintf(err, n, "kafka: reading %s: %s", s.dead_letter_topic, rd_kafka_message_errstr(m));
                        rd_kafka_message_destroy(m);
                        goto fail;
                }
                seen++;
                rd_kafka_message_headers(m, &h);
                header(h, "mmpipe.error_class", cls, sizeof(cls));
                header(h, "mmpipe.pipeline", pl, sizeof(pl));
                header(h, "mmpipe.source.topic", topic, sizeof(topic));
                if ((!error_class || !strcmp(cls, error_class)) && (!pipeline || !strcmp(pl, pipeline)) && topic[0]) {
                        if (dry_run) {
                                printf("would replay %s [%d] @%lld -> %s (%s, %s)\n", s.dead_letter_topic,
                                       m->partition, (long long)m->offset, topic, cls, pl[0] ? pl : "no pipeline");
                        } else if (rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(topic),
                                                     RD_KAFKA_V_VALUE(m->payload, m->len),
                                                     RD_KAFKA_V_KEY(m->key, m->key_len),
                                                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) {
                                snprintf(err, n, "kafka: cannot republish to %s", topic);
                                rd_kafka_message_destroy(m);
                                goto fail;
                        }
                        replayed++;
                }
                rd_kafka_message_destroy(m);
        }
        if (!dry_run) {
                if (rd_kafka_flush(producer, 30000) || rd_kafka_outq_len(producer) > 0) {
                        snprintf(err, n, "kafka: republished messages were not all acknowledged within 30 s");
                        goto fail;
                }
                /* Only now, with every copy acknowledged, move past them. */
                rd_kafka_position(consumer, parts);
                for (int i = 0; i < parts->cnt; i++)
                        if (parts->elems[i].offset < 0) /* nothing read there: leave it */
                                parts->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
                rd_kafka_resp_err_t ce = rd_kafka_commit(consumer, parts, 0);
                if (ce && ce != RD_KAFKA_RESP_ERR__NO_OFFSET) {
                        snprintf(err, n, "kafka: replayed, but committing the replay position failed: %s "
                                         "(the next replay repeats these; documents are idempotent)",
                                 rd_kafka_err2str(ce));
                        goto fail;
                }
        }
        mmp_info("replay", "%ld of %ld dead letters %s", replayed, seen, dry_run ? "would be replayed" : "replayed");
        rd_kafka_topic_partition_list_destroy(parts);
        rd_kafka_metadata_destroy(md);
        rd_kafka_consumer_close(consumer);
        rd_kafka_destroy(consumer);
        rd_kafka_destroy(producer);
        mmp_kafka_settings_clear(&s);
        return replayed;
fail:
        if (parts)
                rd_kafka_topic_partition_list_destroy(parts);
        if (md)
                rd_kafka_metadata_destroy(md);
        if (cc)
                rd_kafka_conf_destroy(cc);
        if (pc)
                rd_kafka_conf_destroy(pc);
        if (consumer) {
                rd_kafka_consumer_close(consumer);
                rd_kafka_destroy(consumer);
        }
        if (producer)
                rd_kafka_destroy(producer);
        mmp_kafka_settings_clear(&s);
        return -1;
}
#endif /* MMP_WITH_KAFKA */
