/*
 * The engine: wires sources to fetch, routing, lanes (Lua handlers), the
 * worker pool and the sinks, and tracks every event until it is stored or
 * dead-lettered. Created and fed by the CLI thread; the rest runs on the
 * engine's own threads.
 */
#ifndef MMP_ENGINE_H
#define MMP_ENGINE_H

#include <stdint.h>

#include "config/config.h"
#include "engine/event.h"
#include "lua/pipeline.h"
#include "plugin/loader.h"
#include "util/err.h"

typedef void(mmp_event_done_cb)(const mmp_event_t *ev, const mmp_failure_t *first_failure, void *opaque);

/* Parks a failed event where it can be replayed; returns 0 once it is
 * durably there (the event is acknowledged only after). Any engine thread. */
typedef int(mmp_dead_letter_fn)(const mmp_event_t *ev, const mmp_failure_t *failure, void *opaque);

typedef struct mmp_engine_opts {
        const char *plugin_dir;     /* resolved folders */
        const char *pipeline_dir;
        const char *lib_dirs[3];    /* require() search path, NULL-terminated */
        const char *output_jsonl;   /* non-NULL: every pipeline writes here instead ("-" = stdout) */
        const char *deadletter_path; /* NULL: the config's dead_letters.path; "": none */
        mmp_dead_letter_fn *dead_letter; /* non-NULL: used instead of the file (a Kafka topic) */
        void *dead_letter_opaque;
        mmp_event_done_cb *on_event_done; /* any engine thread */
        void *opaque;
} mmp_engine_opts_t;

typedef struct mmp_engine_stats {
        uint64_t submitted, done, failed, unmatched, documents, dead_letters;
        uint64_t in_flight;
} mmp_engine_stats_t;

/* Loads plugins and pipelines, opens sinks and dead letters, starts lanes
 * and workers. Returns NULL with errstr (naming file/key) on failure. */
mmp_engine_t *mmp_engine_new(const mmp_config_t *cfg, const mmp_engine_opts_t *opts, char *errstr,
                             size_t errstr_size);

/* Hands an event to the engine (takes the caller's reference). Blocks while
 * engine.max_in_flight events are in flight. */
void mmp_engine_submit(mmp_engine_t *e, mmp_event_t *ev);
/* Hands n events at once (takes each one's reference; evs itself stays the
 * caller's): routed and posted to the lanes with one hand-off per lane.
 * Waits while the engine is full, then admits the whole batch. */
void mmp_engine_submit_batch(mmp_engine_t *e, mmp_event_t **evs, size_t n);

/* Asks the engine to stop (async-signal-safe: only sets a flag): a submit
 * waiting for room gives up (the event is not taken), and destinations
 * that are down stop retrying after their drain time instead of holding
 * the shutdown forever. */
void mmp_engine_request_stop(mmp_engine_t *e);

/* Waits until every submitted event is done. */
void mmp_engine_drain(mmp_engine_t *e);
/* Like drain, but gives up after timeout_ms; returns 0 when drained. */
int mmp_engine_drain_for(mmp_engine_t *e, int64_t timeout_ms);

void mmp_engine_stats(mmp_engine_t *e, mmp_engine_stats_t *out);
const mmp_plugins_t *mmp_engine_plugins(const mmp_engine_t *e);
size_t mmp_engine_pipeline_count(const mmp_engine_t *e);
const mmp_pipeline_t *mmp_engine_pipeline(const mmp_engine_t *e, size_t i);

/* Drains, then stops lanes, workers and sinks. Accepts NULL. */
void mmp_engine_free(mmp_engine_t *e);

/* Internal: used by lanes. */
struct mmp_lane;
void mmp_engine_pipeline_done(mmp_engine_t *e, mmp_event_t *ev, size_t pidx, mmp_failure_t *failure);
/* Stores a handler's documents (array, taken; NULL = none) with their lineage: plugins
 * used ({name: version}, borrowed; NULL = none) and endpoints called
 * (array, borrowed; NULL = none). Lane thread. */
void mmp_engine_store(mmp_engine_t *e, mmp_event_t *ev, size_t pidx, json_t *docs, json_t *plugins,
                      json_t *endpoints);

#endif
