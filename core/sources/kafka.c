/*
 * The Kafka source: consumer-group poll loop, the per-partition offset
 * ledger (events finish out of order; the offset stored is the one below
 * which everything is done), backpressure (no more messages taken at the
 * in-flight limit, partitions paused when that lasts), rebalance
 * handling and the graceful drain. The poll loop and rebalance callbacks run
 * on the caller's thread; acknowledgements and dead letters arrive from
 * engine threads and meet the ledger under one lock.
 */
#ifdef MMP_WITH_KAFKA /* built only when librdkafka is found */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sources/kafka_int.h"
#include "sources/s3_event.h"
#include "util/log.h"
#include "util/time.h"

/* Most messages taken at once (see the poll loop). 256 woke the lane twice
 * as often, for 5-7% more time a message (docs/perf-kafka.md). */
#define POLL_BATCH 512
#define JOIN_WARN_MS 15000        /* a group join this long gets a warning ... */
#define JOIN_WARN_REPEAT_MS 30000 /* ... and another every this long until it completes */

struct mmp_kafka_source {
        mmp_kafka_settings_t s;
        rd_kafka_t *rk;
        rd_kafka_queue_t *msgq; /* every assigned partition's messages, taken in batches */
        rd_kafka_queue_t *groupq; /* the consumer queue: rebalances and errors */
        mmp_kafka_dlq_t *dlq;
        mmp_engine_t *engine;

        pthread_mutex_t lock; /* the ledger, counters and flags below */
        mmp_kafka_part_t *parts;
        mmp_kafka_mark_t *marks; /* every partition's ever assigned here */
        long in_flight_events;
        long long in_flight_bytes;
        int paused;
        int waiting_for_room; /* the poll thread waits in the group queue until acks make room */
        int64_t full_since_ms; /* pressure: since the poll thread first found no room while fetched
                                  messages waited, until it caught up with them (0: none) */
        int64_t assigned_ms;   /* the first assignment, for the first message's log line */
        /* A join under way (poll thread): since subscribing, or since an
         * eager revoke or a lost assignment, until the next assignment
         * (0: none). Warned about at join_warn_ms. */
        int64_t joining_since_ms, join_warn_ms;
        const char *join_cause; /* "subscribing", "its partitions were revoked" */
        int first_seen;
        int stored_since_commit; /* (poll thread) offsets stored since the source last committed */
        mmp_kafka_stats_t st;
};

/* ---- the ledger (lock held) ---- */

static mmp_kafka_part_t *part_find(mmp_kafka_source_t *src, const char *topic, int32_t partition) {
        for (mmp_kafka_part_t *p = src->parts; p; p = p->next)
                if (!p->revoked && p->partition == partition && !strcmp(p->topic, topic))
                        return p;
        return NULL;
}

static mmp_kafka_mark_t *mark_find(mmp_kafka_source_t *src, const char *topic, int32_t partition) {
        for (mmp_kafka_mark_t *k = src->marks; k; k = k->next)
                if (k->partition == partition && !strcmp(k->topic, topic))
                        return k;
        return NULL;
}

static mmp_kafka_mark_t *mark_get(mmp_kafka_source_t *src, const char *topic, int32_t partition) {
        mmp_kafka_mark_t *k = mark_find(src, topic, partition);
        if (k || !(k = calloc(1, sizeof(*k))))
                return k;
        if (!(k->topic = strdup(topic))) {
                free(k);
                return NULL;
        }
        k->partition = partition;
        k->offset = -1;
        k->next = src->marks;
        src->marks = k;
        return k;
}

static mmp_kafka_part_t *part_add(mmp_kafka_source_t *src, const char *topic, int32_t partition) {
        mmp_kafka_part_t *p = part_find(src, topic, partition);
        if (p)
                return p;
        p = calloc(1, sizeof(*p));
        p->topic = strdup(topic);
        p->partition = partition;
        p->mark = mark_get(src, topic, partition);
        p->next = src->parts;
        src->parts = p;
        return p;
}

static void dl_free(mmp_kafka_dl_t *d) {
        while (d) {
                mmp_kafka_dl_t *next = d->next;
                free(d->event);
                free(d->pipeline);
                free(d->message);
                free(d);
                d = next;
        }
}

static void msg_free(mmp_kafka_msg_t *m) {
        dl_free(m->dl_retry);
        free(m);
}

static char *dup_or_null(const char *s) {
        return s ? strdup(s) : NULL;
}

/* A dead letter of m, NULL when out of memory. Copies the strings. */
static mmp_kafka_dl_t *dl_new(mmp_kafka_source_t *src, mmp_kafka_msg_t *m, const char *event, mmp_stage_t stage,
                              mmp_err_t code, int attempts, const char *pipeline, const char *message) {
        mmp_kafka_dl_t *d = calloc(1, sizeof(*d));
        if (!d)
                return NULL;
        d->src = src;
        d->m = m;
        d->stage = stage;
        d->code = code;
        d->attempts = attempts;
        d->event = dup_or_null(event);
        d->pipeline = dup_or_null(pipeline);
        d->message = dup_or_null(message);
        return d;
}

/* Sends d without waiting; m's offset is held back until it is reported
 * written (dl_report). Any thread, lock not held. */
static void dl_send(mmp_kafka_dl_t *d) {
        pthread_mutex_lock(&d->src->lock);
        d->m->dl_pending++;
        pthread_mutex_unlock(&d->src->lock);
        mmp_kafka_dlq_send(d->src->dlq, d->m, d->event, d->stage, d->code, d->attempts, d->pipeline, d->message, d);
}

/* A letter's delivery report (the dead-letter producer's poller thread). A
 * refused or failed one is kept on its message, whose offset stays held
 * back, and sent again once that message is the oldest of its partition
 * (dl_retry_heads), after 1 s, then doubling up to 30 s. */
static void dl_report(void *opaque, rd_kafka_resp_err_t err) {
        mmp_kafka_dl_t *d = opaque;
        mmp_kafka_source_t *src = d->src;
        mmp_kafka_msg_t *m = d->m;
        pthread_mutex_lock(&src->lock);
        if (err) {
                int shift = m->dl_tries < 5 ? m->dl_tries : 5;
                int64_t wait = (int64_t)1000 << shift;
                if (wait > 30000)
                        wait = 30000;
                mmp_err("kafka", "dead letter for %s [%d] @%lld could not be written to %s: %s (its offset is held "
                                 "back; sent again in %lld s)",
                        m->part->topic, m->part->partition, (long long)m->offset, mmp_kafka_dlq_topic(src->dlq),
                        rd_kafka_err2str(err), (long long)(wait / 1000));
                d->next = m->dl_retry;
                m->dl_retry = d;
                m->dl_retry_ms = mmp_now_ms() + wait;
        } else {
                src->st.dead_letters++;
                if (m->dl_tries)
                        mmp_info("kafka", "%s [%d] @%lld: dead letter written at retry %d", m->part->topic,
                                 m->part->partition, (long long)m->offset, m->dl_tries);
                d->next = NULL;
                dl_free(d);
        }
        m->dl_pending--; /* last: m may be popped once this is 0 */
        pthread_mutex_unlock(&src->lock);
}

/* A message's dead letters are all written (lock held). */
static int dl_settled(const mmp_kafka_msg_t *m) {
        return !m->dl_pending && !m->dl_retry && !m->dl_lost;
}

/* What a message's ledger entry holds until it is popped: its copy. */
static long long msg_held(const mmp_kafka_msg_t *m) {
        return (long long)(m->len + m->key_len);
}

/* Pops done messages off the head; returns the offset to store (the next
 * one to consume) or -1 when the head did not move. A message whose dead
 * letter could not be written stops the partition here until the letter is
 * written (dl_retry_heads), or is consumed again after a restart: never
 * lost. */
static int64_t part_advance(mmp_kafka_source_t *src, mmp_kafka_part_t *p) {
        int64_t next = -1;
        while (p->head && p->head->done && dl_settled(p->head)) {
                mmp_kafka_msg_t *m = p->head;
                next = m->offset + 1;
                p->head = m->next;
                if (!p->head)
                        p->tail = NULL;
                src->in_flight_bytes -= msg_held(m);
                msg_free(m);
        }
        return next;
}

/* Frees revoked partitions once their last in-flight message is done. */
static void parts_reap(mmp_kafka_source_t *src) {
        mmp_kafka_part_t **pp = &src->parts;
        while (*pp) {
                mmp_kafka_part_t *p = *pp;
                if (p->revoked) {
                        /* (A letter still on its way keeps its message.) */
                        while (p->head && p->head->done && !p->head->dl_pending) {
                                mmp_kafka_msg_t *m = p->head;
                                p->head = m->next;
                                src->in_flight_bytes -= msg_held(m);
                                msg_free(m);
                        }
                        if (!p->head) {
                                *pp = p->next;
                                free(p->topic);
                                free(p);
                                continue;
                        }
                }
                pp = &p->next;
        }
}

/* Stores the advanced offsets of the given partitions (all when NULL).
 * Poll thread. */
static void store_offsets(mmp_kafka_source_t *src, const rd_kafka_topic_partition_list_t *only) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
        pthread_mutex_lock(&src->lock);
        for (mmp_kafka_part_t *p = src->parts; p; p = p->next) {
                int64_t next;
                if (p->revoked || (only && !rd_kafka_topic_partition_list_find(only, p->topic, p->partition)))
                        continue;
                if ((next = part_advance(src, p)) >= 0)
                        rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = next;
        }
        parts_reap(src);
        pthread_mutex_unlock(&src->lock);
        if (l->cnt) {
                rd_kafka_resp_err_t e = rd_kafka_offsets_store(src->rk, l);
                if (e)
                        mmp_warn("kafka", "storing offsets: %s", rd_kafka_err2str(e));
                src->stored_since_commit = 1;
        }
        rd_kafka_topic_partition_list_destroy(l);
}

/* Sends again the dead letters that were refused or failed, of messages
 * at the head of their partition (the ones holding its offset back), once
 * their backoff is over. Poll thread; nothing waits for the broker. */
static void dl_retry_heads(mmp_kafka_source_t *src) {
        mmp_kafka_dl_t *again = NULL;
        int64_t now = mmp_now_ms();
        pthread_mutex_lock(&src->lock);
        for (mmp_kafka_part_t *p = src->parts; p; p = p->next) {
                mmp_kafka_msg_t *m = p->head;
                if (p->revoked || !m || !m->done || !m->dl_retry || m->dl_pending || now < m->dl_retry_ms)
                        continue;
                m->dl_tries++;
                while (m->dl_retry) { /* to the list sent below */
                        mmp_kafka_dl_t *d = m->dl_retry;
                        m->dl_retry = d->next;
                        d->next = again;
                        again = d;
                }
        }
        pthread_mutex_unlock(&src->lock);
        while (again) {
                mmp_kafka_dl_t *d = again;
                again = d->next;
                d->next = NULL;
                dl_send(d);
        }
}

/* ---- acknowledgements (engine threads) ---- */

/* Room worth waking the poll thread for: a full batch, or a quarter of the limit. */
static long room_wanted(const mmp_kafka_source_t *src) {
        long quarter = src->s.max_in_flight_events / 4;
        return quarter < POLL_BATCH ? (quarter ? quarter : 1) : POLL_BATCH;
}

static void on_event_done(const mmp_event_t *ev, const mmp_failure_t *failure, void *opaque) {
        mmp_kafka_source_t *src = opaque;
        mmp_kafka_msg_t *m = ev->source_opaque;
        pthread_mutex_lock(&src->lock);
        src->in_flight_events--;
        src->st.done++;
        if (failure)
                src->st.failed++;
        if (--m->pending == 0) {
                m->done = 1;
                src->in_flight_bytes -= m->bytes;
        }
        /* Wake the poll thread once a batch's worth of room is free. */
        int wake = src->waiting_for_room && src->in_flight_bytes < src->s.max_in_flight_bytes &&
                   src->in_flight_events <= src->s.max_in_flight_events - room_wanted(src);
        if (wake)
                src->waiting_for_room = 0;
        pthread_mutex_unlock(&src->lock);
        if (wake)
                rd_kafka_queue_yield(src->groupq);
}

static int on_dead_letter(const mmp_event_t *ev, const mmp_failure_t *f, void *opaque) {
        mmp_kafka_source_t *src = opaque;
        mmp_kafka_msg_t *m = ev->source_opaque;
        mmp_kafka_dl_t *d = dl_new(src, m, ev->original, f->stage, f->code, f->attempts, f->pipeline, f->message);
        if (!d) {
                pthread_mutex_lock(&src->lock);
                m->dl_lost = 1;
                pthread_mutex_unlock(&src->lock);
                return -1;
        }
        dl_send(d); /* written or not, its message waits for it */
        return 0;
}

void mmp_kafka_source_engine_opts(mmp_kafka_source_t *src, mmp_engine_opts_t *opts) {
        opts->on_event_done = on_event_done;
        opts->opaque = src;
        opts->dead_letter = on_dead_letter;
        opts->dead_letter_opaque = src;
}

/* ---- rebalances (poll thread, inside rd_kafka_consumer_poll) ---- */

static void set_pause(mmp_kafka_source_t *src, int pause) {
        rd_kafka_topic_partition_list_t *a = NULL;
        if (rd_kafka_assignment(src->rk, &a) || !a)
                return;
        if (a->cnt)
                (pause ? rd_kafka_pause_partitions : rd_kafka_resume_partitions)(src->rk, a);
        rd_kafka_topic_partition_list_destroy(a);
}

/* Sends a partition's messages to msgq. */
static void forward_partition(mmp_kafka_source_t *src, const char *topic, int32_t partition) {
        rd_kafka_queue_t *pq = rd_kafka_queue_get_partition(src->rk, topic, partition);
        if (pq) {
                rd_kafka_queue_forward(pq, src->msgq);
                rd_kafka_queue_destroy(pq);
        }
}

/* A join starts: warned about if no assignment comes within JOIN_WARN_MS. */
static void join_begin(mmp_kafka_source_t *src, const char *cause) {
        src->joining_since_ms = mmp_now_ms();
        src->join_warn_ms = src->joining_since_ms + JOIN_WARN_MS;
        src->join_cause = cause;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
        mmp_kafka_source_t *src = opaque;
        int cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
        src->st.rebalances++;
        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                pthread_mutex_lock(&src->lock);
                for (int i = 0; i < parts->cnt; i++) {
                        mmp_kafka_part_t *p = part_add(src, parts->elems[i].topic, parts->elems[i].partition);
                        if (p->mark) /* another member may have committed since: counted from the next message */
                                p->mark->offset = -1;
                }
                pthread_mutex_unlock(&src->lock);
                mmp_info("kafka", "assigned %d partition(s)", parts->cnt);
                src->joining_since_ms = 0;
                if (!src->assigned_ms)
                        src->assigned_ms = mmp_now_ms();
                if (cooperative)
                        rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
                else
                        rd_kafka_assign(rk, parts);
                /* Messages go to their own queue, so the poll thread can
                 * keep serving the group (rebalances, max.poll.interval.ms)
                 * while it takes no messages. */
                for (int i = 0; i < parts->cnt; i++)
                        forward_partition(src, parts->elems[i].topic, parts->elems[i].partition);
                /* librdkafka keeps a partition's pause flag across a revoke and
                 * a later re-assignment: set it from our state, both ways, or
                 * a partition paused before a rebalance stays paused forever. */
                pthread_mutex_lock(&src->lock);
                int paused = src->paused;
                pthread_mutex_unlock(&src->lock);
                (paused ? rd_kafka_pause_partitions : rd_kafka_resume_partitions)(rk, parts);
                return;
        }
        /* Revoked (or lost): store and commit what is done; events still in
         * flight finish and their documents are stored (idempotently), but
         * their offsets are left to the partition's next owner, which
         * consumes them again from the last commit. */
        store_offsets(src, parts);
        if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && !rd_kafka_assignment_lost(rk)) {
                rd_kafka_commit(rk, NULL, 0); /* its result goes to on_commit, like every commit's */
                src->stored_since_commit = 0;
        }
        pthread_mutex_lock(&src->lock);
        for (int i = 0; i < parts->cnt; i++) {
                mmp_kafka_part_t *p = part_find(src, parts->elems[i].topic, parts->elems[i].partition);
                if (p)
                        p->revoked = 1;
        }
        parts_reap(src);
        pthread_mutex_unlock(&src->lock);
        mmp_info("kafka", "revoked %d partition(s)", parts->cnt);
        /* An eager revoke (or a lost assignment) leaves nothing assigned
         * until the group's rebalance completes: a join like the first. (A
         * cooperative revoke keeps the rest of the assignment.) */
        if (!cooperative || err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS || rd_kafka_assignment_lost(rk))
                join_begin(src, "its partitions were revoked");
        if (cooperative)
                rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
        else
                rd_kafka_assign(rk, NULL);
}

/* The result of every offset commit, automatic, asynchronous or not (poll
 * thread, served by rd_kafka_consumer_poll or rd_kafka_consumer_close; a
 * synchronous rd_kafka_commit's result comes here too, so its callers do
 * not report it again). What the coordinator acknowledged is counted and
 * logged at debug level. A refused commit is warned about here, the one
 * place: with this callback set, librdkafka does not log it. */
static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offsets,
                      void *opaque) {
        mmp_kafka_source_t *src = opaque;
        const char *why = err ? rd_kafka_err2str(err) : NULL;
        int n = offsets ? offsets->cnt : 0;
        long moved = 0, advanced = 0, total, failed = 0;
        (void)rk;
        if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) /* nothing new was stored */
                return;
        pthread_mutex_lock(&src->lock);
        for (int i = 0; i < n; i++) {
                const rd_kafka_topic_partition_t *e = &offsets->elems[i];
                mmp_kafka_mark_t *k;
                if (e->err) {
                        failed++;
                        why = rd_kafka_err2str(e->err);
                } else if (!err && e->offset >= 0 && (k = mark_find(src, e->topic, e->partition)) &&
                           k->offset >= 0 && e->offset > k->offset) {
                        moved++;
                        advanced += (long)(e->offset - k->offset);
                        k->offset = e->offset;
                }
        }
        src->st.committed += advanced;
        total = src->st.committed;
        pthread_mutex_unlock(&src->lock);
        if (why)
                mmp_warn("kafka",
                         "committing offsets: %s (%ld of %d partition(s) not committed; a later commit carries "
                         "them, or the group consumes them again: nothing is lost)",
                         why, err ? (long)n : failed, n);
        if (moved)
                mmp_debug("kafka", "offsets committed: %ld partition(s) moved by %ld message(s), %ld since the start",
                          moved, advanced, total);
}

/* ---- set-up ---- */

mmp_kafka_source_t *mmp_kafka_source_new(const mmp_config_t *cfg, char *err, size_t n) {
        mmp_kafka_source_t *src = calloc(1, sizeof(*src));
        rd_kafka_conf_t *c;
        char why[512];
        pthread_mutex_init(&src->lock, NULL);
        if (mmp_kafka_settings_read(cfg, &src->s, err, n) || !(c = mmp_kafka_conf_new(&src->s, 1, err, n)))
                goto fail;
        rd_kafka_conf_set_opaque(c, src);
        rd_kafka_conf_set_rebalance_cb(c, on_rebalance);
        rd_kafka_conf_set_offset_commit_cb(c, on_commit);
        if (!(src->rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, why, sizeof(why)))) {
                snprintf(err, n, "kafka: cannot create the consumer: %s", why);
                rd_kafka_conf_destroy(c);
                goto fail;
        }
        rd_kafka_poll_set_consumer(src->rk);
        src->msgq = rd_kafka_queue_new(src->rk);
        src->groupq = rd_kafka_queue_get_consumer(src->rk);
        if (!(src->dlq = mmp_kafka_dlq_new(&src->s, dl_report, err, n)))
                goto fail;
        return src;
fail:
        mmp_kafka_source_free(src);
        return NULL;
}

void mmp_kafka_source_free(mmp_kafka_source_t *src) {
        if (!src)
                return;
        if (src->msgq)
                rd_kafka_queue_destroy(src->msgq);
        if (src->groupq)
                rd_kafka_queue_destroy(src->groupq);
        if (src->rk)
                rd_kafka_destroy(src->rk);
        mmp_kafka_dlq_free(src->dlq);
        while (src->parts) {
                mmp_kafka_part_t *p = src->parts;
                src->parts = p->next;
                while (p->head) {
                        mmp_kafka_msg_t *m = p->head;
                        p->head = m->next;
                        msg_free(m);
                }
                free(p->topic);
                free(p);
        }
        while (src->marks) {
                mmp_kafka_mark_t *k = src->marks;
                src->marks = k->next;
                free(k->topic);
                free(k);
        }
        mmp_kafka_settings_clear(&src->s);
        pthread_mutex_destroy(&src->lock);
        free(src);
}

void mmp_kafka_source_stats(mmp_kafka_source_t *src, mmp_kafka_stats_t *out) {
        pthread_mutex_lock(&src->lock);
        *out = src->st;
        out->in_flight_events = src->in_flight_events;
        out->in_flight_bytes = src->in_flight_bytes;
        out->paused = src->paused;
        pthread_mutex_unlock(&src->lock);
}

/* ---- the poll loop ---- */

/* Messages are taken in batches: one blocking poll for the first, then
 * whatever else is already fetched, so the ledger lock, the engine's
 * in-flight accounting and the hand-off to the lanes are paid once per
 * batch rather than once per message. */

/* Copies a consumed message into one allocation (the ledger entry). */
static mmp_kafka_msg_t *msg_copy(const rd_kafka_message_t *rm) {
        mmp_kafka_msg_t *m = malloc(sizeof(*m) + rm->len + rm->key_len + 1);
        if (!m)
                return NULL;
        memset(m, 0, sizeof(*m));
        m->offset = rm->offset;
        m->pending = 1; /* the poll thread's own hold while it submits */
        m->len = rm->len;
        m->payload = m->data;
        if (rm->len)
                memcpy(m->data, rm->payload, rm->len);
        m->data[rm->len] = '\0';
        if (rm->key_len) {
                m->key = m->data + rm->len + 1;
                memcpy(m->key, rm->key, rm->key_len);
                m->key_len = rm->key_len;
        }
        m->bytes = 0; /* the objects' declared sizes, added as its events are made */
        return m;
}

/* Links the batch's messages into their partitions' ledgers, in offset
 * order (a partition's messages arrive in order), under one lock. */
static void msgs_track(mmp_kafka_source_t *src, rd_kafka_message_t **rms, mmp_kafka_msg_t **ms, size_t n) {
        mmp_kafka_part_t *p = NULL;
        pthread_mutex_lock(&src->lock);
        for (size_t i = 0; i < n; i++) {
                mmp_kafka_msg_t *m = ms[i];
                /* A message of a partition we no longer track (revoked
                 * between fetch and now) still gets a ledger so its acks
                 * have a home. A batch comes in runs of one partition: the
                 * list is searched only where a run starts. */
                if (!p || rms[i]->rkt != rms[i - 1]->rkt || rms[i]->partition != rms[i - 1]->partition)
                        p = part_add(src, rd_kafka_topic_name(rms[i]->rkt), rms[i]->partition);
                m->part = p;
                if (p->mark && p->mark->offset < 0)
                        p->mark->offset = m->offset;
                if (p->tail)
                        p->tail->next = m;
                else
                        p->head = m;
                p->tail = m;
                /* Held until the message is popped off the ledger, done
                 * or not: messages done behind a slow one count too. */
                src->in_flight_bytes += msg_held(m);
                src->st.messages++;
        }
        pthread_mutex_unlock(&src->lock);
}

/* A message that is no S3 event: to the dead-letter topic with the reason. */
static void msg_malformed(mmp_kafka_source_t *src, mmp_kafka_msg_t *m, const char *why) {
        mmp_kafka_dl_t *d = dl_new(src, m, NULL, MMP_STAGE_RECEIVE, MMP_ERR_BAD_INPUT, 1, NULL, why);
        mmp_warn("kafka", "%s [%d] @%lld: not an S3 event: %s", m->part->topic, m->part->partition,
                 (long long)m->offset, why);
        pthread_mutex_lock(&src->lock);
        src->st.malformed++;
        if (!d)
                m->dl_lost = 1;
        pthread_mutex_unlock(&src->lock);
        if (d)
                dl_send(d);
}

/* Parses one message's events onto evs (growing it); 0, or -1 when malformed. */
static int msg_events(mmp_kafka_source_t *src, mmp_kafka_msg_t *m, mmp_event_t ***evs, size_t *n, size_t *cap) {
        mmp_s3_events_t parsed = {0};
        char why[512];
        if (mmp_s3_events_parse(m->payload, m->len, &parsed, why, sizeof(why))) {
                msg_malformed(src, m, why);
                return -1;
        }
        for (size_t i = 0; i < parsed.n; i++) {
                mmp_event_t *ev = parsed.v[i];
                if (*n == *cap) {
                        size_t want = *cap ? *cap * 2 : POLL_BATCH;
                        mmp_event_t **grown = realloc(*evs, want * sizeof(**evs));
                        if (!grown) {
                                /* The rest of this message is not started, and
                                 * its offset is never stored: it is consumed
                                 * again after a restart rather than lost. */
                                mmp_err("kafka", "%s [%d] @%lld: out of memory for its events (%zu of %zu started)",
                                        m->part->topic, m->part->partition, (long long)m->offset, i, parsed.n);
                                pthread_mutex_lock(&src->lock);
                                m->dl_lost = 1;
                                pthread_mutex_unlock(&src->lock);
                                break;
                        }
                        *evs = grown;
                        *cap = want;
                }
                ev->source.type = MMP_SOURCE_KAFKA;
                mmp_event_set(ev, &ev->source.topic, m->part->topic);
                ev->source.partition = m->part->partition;
                ev->source.offset = m->offset;
                ev->source_opaque = m;
                if (ev->size > 0)
                        m->bytes += ev->size;
                m->pending++;
                (*evs)[(*n)++] = ev;
                parsed.v[i] = NULL;
        }
        mmp_s3_events_clear(&parsed);
        return 0;
}

static void handle_batch(mmp_kafka_source_t *src, rd_kafka_message_t **rms, size_t n) {
        mmp_kafka_msg_t *ms[POLL_BATCH];
        mmp_event_t **evs = NULL;
        size_t k = 0, nevs = 0, cap = 0;
        long long bytes = 0;

        for (size_t i = 0; i < n; i++) /* allocation outside the lock */
                if ((ms[k] = msg_copy(rms[i])))
                        rms[k++] = rms[i];
                else
                        mmp_err("kafka", "out of memory for a message of %zu bytes: it is consumed again after a "
                                         "restart", rms[i]->len);
        n = k;
        if (!src->first_seen && n) {
                /* Says how long the start (offset look-ups, first fetch) took. */
                src->first_seen = 1;
                mmp_info("kafka", "first message %lld ms after the assignment",
                         (long long)(mmp_now_ms() - src->assigned_ms));
        }
        msgs_track(src, rms, ms, n);
        for (size_t i = 0; i < n; i++) {
                long long before = ms[i]->bytes;
                if (!msg_events(src, ms[i], &evs, &nevs, &cap))
                        bytes += ms[i]->bytes - before;
        }
        /* The objects' sizes count in flight from here; events first, so
         * an event finishing on another thread never drives them negative. */
        pthread_mutex_lock(&src->lock);
        src->in_flight_bytes += bytes;
        src->in_flight_events += (long)nevs;
        src->st.events += nevs;
        pthread_mutex_unlock(&src->lock);
        if (nevs)
                mmp_engine_submit_batch(src->engine, evs, nevs);
        free(evs);
        /* The poll thread's holds: a message with no events (or only
         * skipped ones, or malformed) is done here. */
        pthread_mutex_lock(&src->lock);
        for (size_t i = 0; i < n; i++) {
                if (--ms[i]->pending == 0) {
                        ms[i]->done = 1;
                        src->in_flight_bytes -= ms[i]->bytes;
                }
        }
        pthread_mutex_unlock(&src->lock);
}

/* At the in-flight limit the poll thread takes no more messages (what
 * librdkafka has fetched waits in its queue, bounded by
 * queued.max.messages.kbytes). Pressure that lasts kafka.pause_after_ms (no room
 * while fetched messages wait) means the work is slower than the arrivals:
 * every assigned partition is paused so the brokers stop sending, and
 * resumed once half the limit is free. Polling goes on either way, so the
 * group never sees a stalled member. (Pausing at every brush with the limit
 * cost throughput: librdkafka drops a resumed partition's prefetched
 * messages and fetches again only about a second later.) With
 * pause_after_ms 0 the source pauses as soon as it finds no room. */
static void backpressure(mmp_kafka_source_t *src) {
        int under, paused, pause = 0, resume = 0;
        int64_t now = mmp_now_ms();
        pthread_mutex_lock(&src->lock);
        under = src->in_flight_events <= src->s.max_in_flight_events / 2 &&
                src->in_flight_bytes <= src->s.max_in_flight_bytes / 2;
        paused = src->paused;
        if (!paused && src->full_since_ms && now - src->full_since_ms >= src->s.pause_after_ms) {
                src->paused = pause = 1;
                src->st.paused_times++;
        } else if (paused && under) {
                src->paused = 0;
                src->full_since_ms = 0;
                resume = 1;
        }
        pthread_mutex_unlock(&src->lock);
        if (pause) {
                mmp_debug("kafka", "pausing: %ld events / %lld bytes in flight, at the limit for %ld ms or more",
                          src->in_flight_events, src->in_flight_bytes, src->s.pause_after_ms);
                set_pause(src, 1);
        } else if (resume) {
                mmp_debug("kafka", "resuming");
                set_pause(src, 0);
        }
}

static int subscribe(mmp_kafka_source_t *src) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)src->s.n_topics);
        rd_kafka_resp_err_t e;
        for (size_t i = 0; i < src->s.n_topics; i++)
                rd_kafka_topic_partition_list_add(l, src->s.topics[i], RD_KAFKA_PARTITION_UA);
        e = rd_kafka_subscribe(src->rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        if (e) {
                mmp_err("kafka", "cannot subscribe to kafka.topics: %s", rd_kafka_err2str(e));
                return -1;
        }
        return 0;
}

/* Room for more messages under the in-flight limit (by messages: a
 * message's records are known only once it is parsed, so the limit is
 * exceeded by at most one message's events). */
static long room_left(mmp_kafka_source_t *src) {
        long room;
        pthread_mutex_lock(&src->lock);
        room = src->in_flight_bytes >= src->s.max_in_flight_bytes
                   ? 0
                   : src->s.max_in_flight_events - src->in_flight_events;
        /* None: the poll below waits in the group queue, and the ack that
         * frees enough room ends that wait (rd_kafka_queue_yield; the wait
         * is also capped at 10 ms, should a yield come between the check
         * and the wait). */
        src->waiting_for_room = room <= 0;
        /* Pressure: no room while fetched messages wait for it; it is over
         * once the source has caught up with what was fetched. */
        if (src->s.pause_after_ms && !rd_kafka_queue_length(src->msgq))
                src->full_since_ms = 0;
        else if (room <= 0 && !src->full_since_ms)
                src->full_since_ms = mmp_now_ms();
        pthread_mutex_unlock(&src->lock);
        return room < 0 ? 0 : room > POLL_BATCH ? POLL_BATCH : room;
}

/* Serves the group (rebalances, errors) and takes the messages there is
 * room for: waiting up to timeout_ms for the first, then whatever else is
 * already fetched. With no room (or take = 0: draining) it only serves
 * the group. */
static void poll_batch(mmp_kafka_source_t *src, int timeout_ms, int take) {
        rd_kafka_message_t *rms[POLL_BATCH];
        size_t n = 0, ok = 0;
        long room = take ? room_left(src) : 0;
        ssize_t more;

        /* A message here means its partition's queue is not forwarded to
         * msgq (librdkafka sets its own forwarding when it starts fetching,
         * which can come after ours): the forwarding is set again, and the
         * message taken like the others, even without room (it cannot be
         * put back; this happens only just after an assignment, for what
         * was fetched before the forwarding held). Both waits are short, so
         * neither queue starves while the other is empty. */
        if ((rms[0] = rd_kafka_consumer_poll(src->rk, room ? 0 : timeout_ms < 10 ? timeout_ms : 10))) {
                n = 1;
                if (!rms[0]->err)
                        forward_partition(src, rd_kafka_topic_name(rms[0]->rkt), rms[0]->partition);
        }
        if (room && !n && (rms[0] = rd_kafka_consume_queue(src->msgq, timeout_ms < 10 ? timeout_ms : 10)))
                n = 1;
        if (room > (long)n && n && !rms[0]->err &&
            (more = rd_kafka_consume_batch_queue(src->msgq, 0, rms + n, (size_t)room - n)) > 0)
                n += (size_t)more;
        for (size_t i = 0; i < n; i++) {
                if (rms[i]->err) {
                        if (rms[i]->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                                mmp_warn("kafka", "consumer: %s", rd_kafka_message_errstr(rms[i]));
                        rd_kafka_message_destroy(rms[i]);
                } else {
                        rms[ok++] = rms[i];
                }
        }
        /* Draining: nothing new is started; what was fetched is consumed
         * again later because its offset is never stored. */
        if (take && ok)
                handle_batch(src, rms, ok);
        for (size_t i = 0; i < ok; i++)
                rd_kafka_message_destroy(rms[i]);
}

int mmp_kafka_source_run(mmp_kafka_source_t *src, mmp_engine_t *engine, volatile sig_atomic_t *stop,
                         void (*progress)(const mmp_kafka_stats_t *, int, void *), void *popaque) {
        mmp_kafka_stats_t st;
        int64_t last_store = 0, last_commit = 0, deadline;
        src->engine = engine;
        if (subscribe(src))
                return -1;
        mmp_info("kafka", "consuming %s%s as group %s from %s", src->s.topics[0], src->s.n_topics > 1 ? " ..." : "",
                 src->s.group, src->s.brokers);
        join_begin(src, "subscribing");
        while (!*stop) {
                poll_batch(src, 100, 1);
                backpressure(src);
                int64_t now = mmp_now_ms();
                /* A join that does not complete leaves the engine idle with
                 * nothing in its log: say so, and what usually holds it. (The
                 * rebalance callback runs on this thread.) */
                if (src->joining_since_ms && now >= src->join_warn_ms) {
                        mmp_warn("kafka",
                                 "group %s: still joining %lld s after %s, no partitions assigned yet. "
                                 "The group coordinator waits for every member it knows to rejoin: a member that "
                                 "stopped without leaving the group holds the rebalance until its session.timeout.ms "
                                 "(or max.poll.interval.ms) runs out; unreachable brokers are reported above",
                                 src->s.group, (long long)((now - src->joining_since_ms) / 1000), src->join_cause);
                        src->join_warn_ms += JOIN_WARN_REPEAT_MS;
                }
                /* Offsets stored soon after their events are done: the
                 * next commit (auto.commit.interval.ms) takes them, and a
                 * crash re-delivers less. Once everything taken is done
                 * (a burst is over, or the stream is quiet) they are stored
                 * and committed at once rather than at the next interval:
                 * a pause leaves nothing to consume again. */
                pthread_mutex_lock(&src->lock);
                int caught_up = src->in_flight_events == 0;
                pthread_mutex_unlock(&src->lock);
                /* (Nothing fetched waits either; and not more often than
                 * stores, so a trickle of messages commits 50 times a second
                 * at most.) */
                if (caught_up && now - last_commit >= 20 && !rd_kafka_queue_length(src->msgq)) {
                        /* (Whatever stored them: this store, or the periodic
                         * one below in an earlier turn.) */
                        store_offsets(src, NULL);
                        if (src->stored_since_commit) {
                                rd_kafka_resp_err_t ce = rd_kafka_commit(src->rk, NULL, 1 /* async */);
                                if (ce && ce != RD_KAFKA_RESP_ERR__NO_OFFSET)
                                        mmp_warn("kafka", "commit: %s", rd_kafka_err2str(ce));
                                src->stored_since_commit = 0;
                                last_commit = now;
                        }
                }
                if (now - last_store >= 20) {
                        dl_retry_heads(src);
                        store_offsets(src, NULL);
                        last_store = now;
                        if (progress) {
                                mmp_kafka_source_stats(src, &st);
                                progress(&st, 0, popaque);
                        }
                }
        }
        /* Drain: take nothing new, keep polling (heartbeats, rebalances),
         * let what is in flight finish, store and commit it, leave. */
        mmp_info("kafka", "draining: up to %ld ms for the events in flight", src->s.drain_timeout_ms);
        set_pause(src, 1);
        deadline = mmp_now_ms() + src->s.drain_timeout_ms;
        for (;;) {
                mmp_kafka_source_stats(src, &st);
                if (!st.in_flight_events || mmp_now_ms() >= deadline)
                        break;
                poll_batch(src, 50, 0);
                store_offsets(src, NULL);
        }
        /* The dead letters on their way, so their messages can be passed
         * (within what is left of the drain time). */
        int64_t left = deadline - mmp_now_ms();
        mmp_kafka_dlq_flush(src->dlq, left > 0 ? (int)left : 0);
        store_offsets(src, NULL);
        if (st.in_flight_events)
                mmp_warn("kafka", "%ld events still in flight at the drain deadline: they finish, but their offsets "
                                  "are not committed (they will be consumed again)",
                         st.in_flight_events);
        rd_kafka_commit(src->rk, NULL, 0); /* reported by on_commit, served in rd_kafka_consumer_close */
        rd_kafka_consumer_close(src->rk);
        if (progress) {
                mmp_kafka_source_stats(src, &st);
                progress(&st, 1, popaque);
        }
        return 0;
}
#endif /* MMP_WITH_KAFKA */
