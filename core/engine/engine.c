/*
 * The engine: start-up (plugins, pipelines, sinks, lanes, workers), the
 * path of each event (fetch -> route -> lanes -> store -> done) and the
 * in-flight limit. Event steps run on worker, lane and sink threads.
 */
#include "engine/engine_int.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/lane.h"
#include "engine/pool.h"
#include "fetch/fetch.h"
#include "sinks/deadletter.h"
#include "sinks/sink.h"
#include "util/docid.h"
#include "util/log.h"
#include "util/time.h"

typedef struct fetch_job {
        mmp_job_t job;
        mmp_engine_t *engine;
        mmp_event_t *ev;
} fetch_job_t;

typedef struct store_ctx {
        mmp_engine_t *engine;
        mmp_event_t *ev;
        size_t pidx;
        size_t ndocs;
} store_ctx_t;

static void stat_add(uint64_t *counter, uint64_t n) {
        __atomic_add_fetch(counter, n, __ATOMIC_RELAXED);
}

static void event_done(mmp_engine_t *e, mmp_event_t *ev) {
        if (ev->failure)
                stat_add(&e->stats.failed, 1);
        stat_add(&e->stats.done, 1);
        stat_add(&e->stats.documents, (uint64_t)ev->documents);
        if (e->opts.on_event_done)
                e->opts.on_event_done(ev, ev->failure, e->opts.opaque);
        pthread_mutex_lock(&e->lock);
        e->in_flight--;
        if (e->waiters)
                pthread_cond_broadcast(&e->cond);
        pthread_mutex_unlock(&e->lock);
        mmp_event_unref(ev); /* the submit reference */
}

/* Logs the failure once and parks the event in the dead letters. */
static void report_failure(mmp_engine_t *e, mmp_event_t *ev, mmp_failure_t *f) {
        mmp_err("event", "%s: %s%s%sfailed at %s (%s): %s%s%s", ev->id, f->pipeline ? "pipeline " : "",
                f->pipeline ? f->pipeline : "", f->pipeline ? " " : "", mmp_stage2str(f->stage),
                mmp_err2name(f->code), f->message, f->traceback ? "\n" : "", f->traceback ? f->traceback : "");
        if (e->opts.dead_letter) {
                if (!e->opts.dead_letter(ev, f, e->opts.dead_letter_opaque))
                        stat_add(&e->stats.dead_letters, 1);
        } else if (e->deadletters) {
                /* Kept as text on the event (most never fail): parsed only here. */
                json_t *original = ev->original ? json_loads(ev->original, 0, NULL) : NULL;
                if (ev->original && !original)
                        original = json_string(ev->original);
                json_t *source = mmp_event_source_json(ev);
                if (!mmp_deadletter_write(e->deadletters, original, source, f))
                        stat_add(&e->stats.dead_letters, 1);
                json_decref(original);
                json_decref(source);
        }
}

static void keep_first_failure(mmp_event_t *ev, mmp_failure_t *f) {
        mmp_failure_t *expected = NULL;
        if (!__atomic_compare_exchange_n(&ev->failure, &expected, f, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                mmp_failure_free(f);
}

void mmp_engine_pipeline_done(mmp_engine_t *e, mmp_event_t *ev, size_t pidx, mmp_failure_t *failure) {
        (void)pidx;
        if (failure) {
                report_failure(e, ev, failure);
                __atomic_add_fetch(&ev->failures, 1, __ATOMIC_RELAXED);
                keep_first_failure(ev, failure);
        }
        if (__atomic_sub_fetch(&ev->pending, 1, __ATOMIC_ACQ_REL) == 0)
                event_done(e, ev);
}

/* Fails an event before any pipeline ran (fetch, malformed). */
static void event_fail_early(mmp_engine_t *e, mmp_event_t *ev, mmp_failure_t *f) {
        report_failure(e, ev, f);
        keep_first_failure(ev, f);
        event_done(e, ev);
}

static void store_done(mmp_write_t *w, mmp_failure_t *failure, void *opaque) {
        store_ctx_t *c = opaque;
        (void)w;
        if (failure && !failure->pipeline) {
                const mmp_pipeline_t *p = c->engine->pipelines[c->pidx];
                failure->pipeline = strdup(p->name);
        }
        if (!failure)
                __atomic_add_fetch(&c->ev->documents, (int)c->ndocs, __ATOMIC_RELAXED);
        mmp_engine_pipeline_done(c->engine, c->ev, c->pidx, failure);
        mmp_event_unref(c->ev);
        free(c);
}

static json_t *iso_time(int64_t ms) {
        char buf[40];
        time_t s = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&s, &tm);
        size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)(ms % 1000));
        return json_string(buf);
}

static json_t *object_lineage(const mmp_event_t *ev) {
        json_t *o = json_object();
        json_object_set_new(o, "bucket", json_string(ev->bucket ? ev->bucket : ""));
        json_object_set_new(o, "key", json_string(ev->key ? ev->key : ""));
        if (ev->url)
                json_object_set_new(o, "url", json_string(ev->url));
        json_object_set_new(o, "version", json_string(ev->version ? ev->version : ""));
        json_object_set_new(o, "etag", json_string(ev->etag ? ev->etag : ""));
        json_object_set_new(o, "size", json_integer(ev->size));
        json_object_set_new(o, "content_type", ev->content_type ? json_string(ev->content_type) : json_null());
        json_object_set_new(o, "detected_content_type",
                            ev->detected_type ? json_string(ev->detected_type) : json_null());
        json_object_set_new(o, "content_type_mismatch", json_boolean(ev->content_type_mismatch));
        return o;
}

/* Final form of one document: _id first, the handler's fields, metadata
 * merged under "metadata" (the document's own keys win), lineage last. */
typedef struct lineage_parts { /* shared by every document of one store */
        json_t *source, *object, *plugins, *endpoints, *event_time;
} lineage_parts_t;

static json_t *finish_doc(const mmp_pipeline_t *p, const mmp_event_t *ev, json_t *doc, size_t i, size_t n,
                          const lineage_parts_t *lp) {
        char id[25];
        const char *k;
        json_t *v, *out = json_object(), *lin;
        mmp_docid(p->name, ev->bucket ? ev->bucket : "", ev->key ? ev->key : "", ev->version ? ev->version : "",
                  i, id);
        json_object_set_new(out, "_id", json_string(id));
        json_object_foreach(doc, k, v) {
                if (strcmp(k, "_id") && strcmp(k, "_lineage"))
                        json_object_set(out, k, v);
        }
        if (p->metadata) {
                json_t *m = json_deep_copy(p->metadata), *own = json_object_get(doc, "metadata");
                if (json_is_object(own))
                        json_object_update(m, own);
                json_object_set_new(out, "metadata", m);
        }
        lin = json_object();
        json_object_set_new(lin, "pipeline", json_string(p->name));
        json_object_set_new(lin, "pipeline_version", json_string(p->version));
        /* Shared parts are set by reference: documents are never modified
         * after this point, only serialised. */
        json_object_set(lin, "source", lp->source);
        json_object_set(lin, "object", lp->object);
        json_object_set(lin, "plugins", lp->plugins);
        json_object_set(lin, "endpoints", lp->endpoints);
        json_object_set(lin, "event_time", lp->event_time);
        json_object_set_new(lin, "index", json_integer((json_int_t)i));
        json_object_set_new(lin, "count", json_integer((json_int_t)n));
        json_object_set_new(out, "_lineage", lin);
        return out;
}

void mmp_engine_store(mmp_engine_t *e, mmp_event_t *ev, size_t pidx, json_t *docs, json_t *plugins,
                      json_t *endpoints) {
        const mmp_pipeline_t *p = e->pipelines[pidx];
        size_t n = json_array_size(docs);
        store_ctx_t *c = calloc(1, sizeof(*c));
        json_t *out = docs;

        /* No documents (docs NULL or empty) still makes a write: the
         * destination drops what earlier versions of the object left. */
        if (n) {
                lineage_parts_t lp = {
                    .source = mmp_event_source_json(ev),
                    .object = object_lineage(ev),
                    .plugins = plugins ? json_incref(plugins) : json_object(),
                    .endpoints = endpoints ? json_incref(endpoints) : json_array(),
                    /* No processing time: the same object must give
                     * byte-identical documents however often it is processed. */
                    .event_time = iso_time(ev->time_ms),
                };
                out = json_array();
                for (size_t i = 0; i < n; i++)
                        json_array_append_new(out, finish_doc(p, ev, json_array_get(docs, i), i, n, &lp));
                json_decref(lp.source);
                json_decref(lp.object);
                json_decref(lp.plugins);
                json_decref(lp.endpoints);
                json_decref(lp.event_time);
                json_decref(docs);
        }
        c->engine = e;
        c->ev = ev;
        c->pidx = pidx;
        c->ndocs = n;
        mmp_event_ref(ev);
        mmp_sink_submit(e->pipeline_sink[pidx],
                        mmp_write_new(MMP_WRITE_UPSERT, p->collection, p->name, ev->bucket, ev->key, ev->version,
                                      out, store_done, c));
}

/* ObjectRemoved: one delete per pipeline's destination. */
static void remove_object(mmp_engine_t *e, mmp_event_t *ev) {
        ev->pending = (int)e->n_pipelines;
        for (size_t i = 0; i < e->n_pipelines; i++) {
                store_ctx_t *c = calloc(1, sizeof(*c));
                c->engine = e;
                c->ev = ev;
                c->pidx = i;
                mmp_event_ref(ev);
                mmp_sink_submit(e->pipeline_sink[i],
                                mmp_write_new(MMP_WRITE_DELETE, e->pipelines[i]->collection, e->pipelines[i]->name,
                                              ev->bucket, ev->key, NULL, NULL, store_done, c));
        }
}

static size_t route(mmp_engine_t *e, const mmp_event_t *ev, size_t *idx) {
        size_t matched = 0;
        for (size_t i = 0; i < e->n_pipelines && matched < 256; i++)
                if (mmp_match_accepts(&e->pipelines[i]->match, ev))
                        idx[matched++] = i;
        return matched;
}

/* The lane for the next handler runs: the first lane that has started
 * everything it was given (nothing waits for its Lua state) and holds less
 * than its share of the events in flight; when every lane is behind, the one
 * with the fewest runs not finished. Light load stays on one lane (one
 * thread woken, its caches warm, the other cores left to the source and the
 * sinks) and spreads as soon as a lane falls behind. */
static mmp_lane_t *pick_lane(mmp_engine_t *e) {
        int64_t share = e->max_in_flight / e->n_lanes;
        uint64_t least = UINT64_MAX;
        int best = 0;
        for (int i = 0; i < e->n_lanes; i++) {
                mmp_lane_load_t l = mmp_lane_load(e->lanes[i]);
                if (!l.queued && (int64_t)l.live < share)
                        return e->lanes[i];
                if (l.live < least) {
                        least = l.live;
                        best = i;
                }
        }
        return e->lanes[best];
}

/* Hands a routed event to a lane (or finishes it when nothing matched);
 * through batch when the caller gathers a batch of them. */
static void dispatch(mmp_engine_t *e, mmp_event_t *ev, const size_t *idx, size_t matched, mmp_lane_batch_t *batch) {
        if (!matched) {
                mmp_info("route", "%s: no pipeline matches (content type %s)", ev->id,
                          ev->content_type ? ev->content_type : "unknown");
                stat_add(&e->stats.unmatched, 1);
                event_done(e, ev);
                return;
        }
        ev->pending = (int)matched; /* before any lane can finish one */
        if (!batch) {
                mmp_lane_t *lane = pick_lane(e);
                for (size_t i = 0; i < matched; i++)
                        mmp_lane_post(lane, ev, idx[i]);
                return;
        }
        for (size_t i = 0; i < matched; i++)
                mmp_lane_batch_add(batch, ev, idx[i]);
}

/* Worker thread: fetch, route again with size and detected type known,
 * hand to a lane. */
static void fetch_job_run(mmp_job_t *job) {
        fetch_job_t *fj = (fetch_job_t *)((char *)job - offsetof(fetch_job_t, job));
        mmp_engine_t *e = fj->engine;
        mmp_event_t *ev = fj->ev;
        mmp_failure_t *f;
        size_t idx[256];
        free(fj);
        if ((f = mmp_fetch(ev))) {
                event_fail_early(e, ev, f);
                return;
        }
        dispatch(e, ev, idx, route(e, ev, idx), NULL);
}

/* The submitting thread routes on what the event declares before anything
 * is fetched: objects no pipeline wants are never downloaded, pipelines
 * that need only metadata (fetch = false) get the event without the bytes,
 * and neither costs a trip through the worker pool. Returns 1 when the
 * event needs the pool (a fetch). */
static int route_early(mmp_engine_t *e, mmp_event_t *ev, mmp_lane_batch_t *batch) {
        size_t matched, idx[256];
        int need_bytes = 0;
        if (ev->kind == MMP_EVENT_REMOVED) {
                if (e->n_pipelines)
                        remove_object(e, ev);
                else
                        event_done(e, ev);
                return 0;
        }
        const char *by_name;
        if (!ev->content_type && ev->key && (by_name = mmp_content_type_from_name(ev->key)))
                mmp_event_set(ev, &ev->content_type, by_name);
        if (!ev->content_type)
                return 1; /* only the bytes can tell */
        matched = route(e, ev, idx);
        for (size_t i = 0; i < matched; i++)
                need_bytes |= e->pipelines[idx[i]]->fetch;
        if (need_bytes)
                return 1;
        dispatch(e, ev, idx, matched, batch);
        return 0;
}

void mmp_engine_request_stop(mmp_engine_t *e) {
        e->stop_requested = 1;
}

/* Once a stop is asked for, destinations still down give up after their
 * drain time rather than hold the shutdown (their writes fail retriable). */
static void sinks_drain_begin(mmp_engine_t *e) {
        if (!e->stop_requested || e->sinks_draining)
                return;
        e->sinks_draining = 1;
        for (size_t i = 0; i < e->n_sinks; i++)
                mmp_sink_drain_begin(e->sinks[i]);
}

/* Waits for room for more events; 0 when there is, -1 when a stop was
 * asked for meanwhile. Called and returns with e->lock held. */
static int wait_for_room(mmp_engine_t *e) {
        while ((int64_t)e->in_flight >= e->max_in_flight) {
                struct timespec ts;
                if (e->stop_requested)
                        return -1;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 200 * 1000000;
                if (ts.tv_nsec >= 1000000000) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000;
                }
                e->waiters++;
                pthread_cond_timedwait(&e->cond, &e->lock, &ts);
                e->waiters--;
        }
        return 0;
}

void mmp_engine_submit_batch(mmp_engine_t *e, mmp_event_t **evs, size_t n) {
        mmp_lane_batch_t *batch;
        uint64_t seq;
        pthread_mutex_lock(&e->lock);
        if (wait_for_room(e)) { /* not taken: a later run sees them again */
                pthread_mutex_unlock(&e->lock);
                for (size_t i = 0; i < n; i++)
                        mmp_event_unref(evs[i]);
                return;
        }
        /* The whole batch is admitted once there is room: the limit is
         * exceeded by at most one batch. */
        e->in_flight += n;
        seq = e->seq;
        e->seq += n;
        pthread_mutex_unlock(&e->lock);
        stat_add(&e->stats.submitted, n);
        batch = mmp_lane_batch_new();
        for (size_t i = 0; i < n; i++) {
                mmp_event_t *ev = evs[i];
                ev->seq = seq + i;
                ev->engine = e;
                if (route_early(e, ev, batch)) {
                        fetch_job_t *fj = calloc(1, sizeof(*fj));
                        fj->engine = e;
                        fj->ev = ev;
                        fj->job.run = fetch_job_run;
                        mmp_pool_submit(e->pool, &fj->job);
                }
        }
        /* The whole batch to one lane: one wake-up. */
        mmp_lane_batch_post(batch, mmp_lane_batch_size(batch) ? pick_lane(e) : NULL);
}

void mmp_engine_submit(mmp_engine_t *e, mmp_event_t *ev) {
        mmp_engine_submit_batch(e, &ev, 1);
}

int mmp_engine_drain_for(mmp_engine_t *e, int64_t timeout_ms) {
        struct timespec ts;
        int rc = 0;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (timeout_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
        }
        sinks_drain_begin(e);
        pthread_mutex_lock(&e->lock);
        e->waiters++;
        while (e->in_flight > 0 && rc == 0)
                rc = timeout_ms < 0 ? pthread_cond_wait(&e->cond, &e->lock)
                                    : pthread_cond_timedwait(&e->cond, &e->lock, &ts);
        e->waiters--;
        rc = e->in_flight > 0;
        pthread_mutex_unlock(&e->lock);
        return rc;
}

void mmp_engine_drain(mmp_engine_t *e) {
        mmp_engine_drain_for(e, -1);
}

void mmp_engine_stats(mmp_engine_t *e, mmp_engine_stats_t *out) {
        out->submitted = __atomic_load_n(&e->stats.submitted, __ATOMIC_RELAXED);
        out->done = __atomic_load_n(&e->stats.done, __ATOMIC_RELAXED);
        out->failed = __atomic_load_n(&e->stats.failed, __ATOMIC_RELAXED);
        out->unmatched = __atomic_load_n(&e->stats.unmatched, __ATOMIC_RELAXED);
        out->documents = __atomic_load_n(&e->stats.documents, __ATOMIC_RELAXED);
        out->dead_letters = __atomic_load_n(&e->stats.dead_letters, __ATOMIC_RELAXED);
        pthread_mutex_lock(&e->lock);
        out->in_flight = e->in_flight;
        pthread_mutex_unlock(&e->lock);
}

const mmp_plugins_t *mmp_engine_plugins(const mmp_engine_t *e) {
        return e->plugins;
}

size_t mmp_engine_pipeline_count(const mmp_engine_t *e) {
        return e->n_pipelines;
}

const mmp_pipeline_t *mmp_engine_pipeline(const mmp_engine_t *e, size_t i) {
        return i < e->n_pipelines ? e->pipelines[i] : NULL;
}

