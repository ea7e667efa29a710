/*
 * A lane: one thread with one sandboxed LuaJIT state, one curl multi handle
 * and an event loop. Each (event, pipeline) runs as a coroutine; plugin
 * calls go to the worker pool and the coroutine yields until they finish,
 * so a lane keeps many events in flight without threads.
 */
#ifndef MMP_LANE_H
#define MMP_LANE_H

#include <stdint.h>

#include "engine/event.h"
#include "engine/pool.h"
#include "lua/state.h"

typedef struct mmp_lane mmp_lane_t;

typedef struct mmp_lane_opts {
        int id;
        mmp_engine_t *engine;
        mmp_pool_t *pool;
        const mmp_plugins_t *plugins;
        const char *const *pipeline_files; /* n_pipelines entries */
        const char *const *pipeline_texts;
        const size_t *pipeline_lens;
        size_t n_pipelines;
        const char *lib_dirs[3];
        size_t memory_cap;
        int64_t handler_timeout_ms;
        mmp_endpoints_t *endpoints; /* shared by the lanes */
        const json_t *models;       /* the config's "models" */
} mmp_lane_opts_t;

/* Creates the Lua state and compiles every pipeline in it. On success and
 * when defs != NULL, fills defs[i] with each pipeline's description (the
 * caller owns them). Errors name file and line. The thread starts with
 * mmp_lane_start. */
mmp_lane_t *mmp_lane_new(const mmp_lane_opts_t *opts, mmp_pipeline_t **defs, char *errstr,
                         size_t errstr_size);
int mmp_lane_start(mmp_lane_t *lane);

/* Runs pipeline pidx's handler for ev on this lane (takes a reference). Any thread. */
void mmp_lane_post(mmp_lane_t *lane, mmp_event_t *ev, size_t pidx);

/* How busy a lane is: handler runs posted to it that it has not started
 * yet (queued: they wait for its Lua state) and those it has not finished
 * (live: queued, running or waiting on a call). Any thread; a snapshot. */
typedef struct mmp_lane_load {
        uint64_t queued, live;
} mmp_lane_load_t;
mmp_lane_load_t mmp_lane_load(const mmp_lane_t *lane);

/* Handler runs gathered by one thread and posted together to one lane: one
 * inbox lock and at most one wake-up for the whole batch. */
typedef struct mmp_lane_batch mmp_lane_batch_t;
mmp_lane_batch_t *mmp_lane_batch_new(void);
/* Adds a run of pipeline pidx's handler for ev (takes a reference). */
void mmp_lane_batch_add(mmp_lane_batch_t *b, mmp_event_t *ev, size_t pidx);
/* The runs added so far (0 for NULL). */
size_t mmp_lane_batch_size(const mmp_lane_batch_t *b);
/* Posts everything added to lane and frees the batch. Accepts NULL. */
void mmp_lane_batch_post(mmp_lane_batch_t *b, mmp_lane_t *lane);

/* Finishes the running handlers, stops the thread, frees everything. */
void mmp_lane_free(mmp_lane_t *lane);

#endif
