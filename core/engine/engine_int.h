/*
 * The engine's insides, shared by engine.c (the path of an event) and
 * engine_setup.c (start-up and shutdown). Not for other modules.
 */
#ifndef MMP_ENGINE_INT_H
#define MMP_ENGINE_INT_H

#include <pthread.h>
#include <signal.h>

#include "engine/engine.h"
#include "engine/lane.h"
#include "engine/pool.h"
#include "inference/endpoint.h"
#include "sinks/deadletter.h"
#include "sinks/sink.h"

struct mmp_engine {
        mmp_engine_opts_t opts;
        const mmp_config_t *cfg;
        mmp_plugins_t *plugins;
        mmp_pipeline_t **pipelines;
        size_t n_pipelines, n_pipelines_alloc;
        mmp_sink_t **sinks;        /* distinct open sinks */
        size_t n_sinks;
        mmp_sink_t **pipeline_sink; /* per pipeline */
        mmp_deadletter_t *deadletters;
        mmp_endpoints_t *endpoints; /* inference endpoints, shared by the lanes */
        mmp_pool_t *pool;
        mmp_lane_t **lanes;
        int n_lanes;
        int64_t max_in_flight;
        int64_t handler_timeout_ms;

        pthread_mutex_t lock;
        pthread_cond_t cond;
        uint64_t in_flight, seq;
        int waiters; /* threads in submit or drain waiting on cond */
        int fetch_ready;
        volatile sig_atomic_t stop_requested;
        int sinks_draining;
        mmp_engine_stats_t stats; /* counters updated atomically */
};

#endif
