/*
 * Lanes: the event loop that runs Lua handlers as coroutines. The lane
 * thread owns its Lua state; other threads only post messages to its inbox
 * (new handler runs, finished plugin calls) and wake it through the curl
 * multi handle, which later also carries the lane's HTTP calls.
 */
#include "engine/lane.h"

#include <curl/curl.h>
#include <lauxlib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "lua/convert.h"
#include "plugin/value.h"
#include "sinks/sink.h"
#include "util/log.h"
#include "util/time.h"

#define MAX_TRACKED_PLUGINS 16
/* Coroutines whose handler returned normally are reused: creating one
 * (a new Lua stack) costs more than a no-op handler itself. */
#define IDLE_COROUTINES 64

typedef struct task {
        mmp_lane_t *lane;
        mmp_event_t *ev;
        size_t pidx;
        lua_State *co;
        int co_ref;
        /* Deadline accounting: an event is charged for its own time, not
         * for time other handlers held the lane (a CPU-bound neighbour
         * must not time out everyone else on its lane). */
        int64_t started_us;       /* monotonic */
        int64_t held_at_start;    /* the lane's held_us when this task started */
        int64_t own_us;           /* time this task's own Lua code ran */
        volatile int cancel;      /* the plugin call should stop (call_cancelled) */
        int waiting;              /* a plugin call is outstanding */
        int dead;                 /* finished; freed when the call returns */
        int handler_returned;     /* the coroutine ran to its end without error */
        char waiting_on[96];      /* "text.chunk" while waiting */
        int pending_calls;        /* inference calls not yet over */
        int results_ref;          /* their results table (registry), LUA_NOREF when none */
        char *call_error;         /* the first failed call's message */
        json_t *endpoints;        /* endpoint names called, for the lineage */
        char *op_error;           /* the last plugin failure, to classify the handler's error */
        int op_error_retriable;
        const mmp_plugin_inst_t *used[MAX_TRACKED_PLUGINS];
        int n_used;
        struct task *prev, *next; /* the lane's live tasks */
} task_t;

enum { MSG_START, MSG_OP_DONE };

typedef struct msg {
        int type;
        struct msg *next;
} msg_t;

typedef struct start_msg {
        msg_t hdr;
        mmp_event_t *ev;
        size_t pidx;
} start_msg_t;

typedef struct op_job {
        msg_t hdr;
        mmp_job_t job;
        task_t *task;
        const mmp_plugin_inst_t *inst;
        const mmp_plugin_op_t *op;
        mmp_value_t *input, *opts, *result;
        mmp_call_t call;
        char qualified[128];
} op_job_t;

struct mmp_lane {
        int id;
        mmp_lane_opts_t opts;
        mmp_lua_t *lua;
        int *handler_refs;
        CURLM *multi;
        mmp_invoker_t *invoker;
        pthread_t thread;
        int started;

        pthread_mutex_t lock;
        msg_t *inbox_head, *inbox_tail;
        int stopping;
        /* Handler runs posted (any thread), started (run to their first
         * yield or their end) and finished (lane thread): what
         * mmp_lane_load reports. */
        uint64_t runs_posted, runs_started, runs_finished;

        task_t *tasks;   /* live tasks (lane thread only) */
        int64_t held_us; /* total time handlers ran on this lane */
        int outstanding; /* plugin calls not yet returned (lane thread only) */
        task_t *current; /* the task whose coroutine is running */
        int idle_cos[IDLE_COROUTINES]; /* registry refs of finished coroutines kept for reuse */
        int n_idle_cos;
};

/* Appends the chain head..tail (starts handler runs) to the lane's inbox. */
static void post_chain(mmp_lane_t *lane, msg_t *head, msg_t *tail, uint64_t starts) {
        int was_empty;
        tail->next = NULL;
        __atomic_add_fetch(&lane->runs_posted, starts, __ATOMIC_RELAXED);
        pthread_mutex_lock(&lane->lock);
        was_empty = !lane->inbox_head;
        if (lane->inbox_tail)
                lane->inbox_tail->next = head;
        else
                lane->inbox_head = head;
        lane->inbox_tail = tail;
        pthread_mutex_unlock(&lane->lock);
        /* A non-empty inbox already has a wake-up on its way. */
        if (was_empty)
                curl_multi_wakeup(lane->multi);
}

static void post(mmp_lane_t *lane, msg_t *m) {
        post_chain(lane, m, m, m->type == MSG_START);
}

mmp_lane_load_t mmp_lane_load(const mmp_lane_t *lane) {
        mmp_lane_load_t l;
        /* finished and started before posted: neither can then pass it. */
        uint64_t finished = __atomic_load_n(&lane->runs_finished, __ATOMIC_ACQUIRE);
        uint64_t started = __atomic_load_n(&lane->runs_started, __ATOMIC_ACQUIRE);
        uint64_t posted = __atomic_load_n(&lane->runs_posted, __ATOMIC_ACQUIRE);
        l.queued = posted - started;
        l.live = posted - finished;
        return l;
}

static start_msg_t *start_msg_new(mmp_event_t *ev, size_t pidx) {
        start_msg_t *m = calloc(1, sizeof(*m));
        mmp_event_ref(ev);
        m->hdr.type = MSG_START;
        m->ev = ev;
        m->pidx = pidx;
        return m;
}

void mmp_lane_post(mmp_lane_t *lane, mmp_event_t *ev, size_t pidx) {
        post(lane, &start_msg_new(ev, pidx)->hdr);
}

struct mmp_lane_batch {
        msg_t *head, *tail;
        uint64_t n;
};

mmp_lane_batch_t *mmp_lane_batch_new(void) {
        return calloc(1, sizeof(mmp_lane_batch_t));
}

void mmp_lane_batch_add(mmp_lane_batch_t *b, mmp_event_t *ev, size_t pidx) {
        msg_t *m = &start_msg_new(ev, pidx)->hdr;
        if (b->tail)
                b->tail->next = m;
        else
                b->head = m;
        b->tail = m;
        b->n++;
}

size_t mmp_lane_batch_size(const mmp_lane_batch_t *b) {
        return b ? (size_t)b->n : 0;
}

void mmp_lane_batch_post(mmp_lane_batch_t *b, mmp_lane_t *lane) {
        if (!b)
                return;
        if (b->head)
                post_chain(lane, b->head, b->tail, b->n);
        free(b);
}

/* Worker thread: run the operation, hand the result back to the lane. */
static void op_job_run(mmp_job_t *job) {
        op_job_t *oj = (op_job_t *)((char *)job - offsetof(op_job_t, job));
        if (oj->call.cancel && *oj->call.cancel)
                mmp_call_fail_cancelled(&oj->call);
        else
                oj->result = oj->op->fn(oj->inst->state, &oj->call, oj->input, oj->opts);
        if (!oj->result && !oj->call.failed)
                snprintf(oj->call.errmsg, sizeof(oj->call.errmsg), "returned no result and no error");
        if (oj->result && oj->call.failed) { /* a result wins, but say so */
                mmp_warn("plugins", "%s returned a result after reporting: %s", oj->qualified,
                         oj->call.errmsg);
                oj->call.failed = 0;
        }
        oj->hdr.type = MSG_OP_DONE;
        post(oj->task->lane, &oj->hdr);
}

static void op_job_free(op_job_t *oj) {
        mmp_value_free(oj->input);
        mmp_value_free(oj->opts);
        mmp_value_free(oj->result);
        free(oj);
}

/* Time left before the task's deadline, not counting the time other
 * handlers held the lane since it started. */
static int64_t task_remaining_us(const mmp_lane_t *lane, const task_t *t, int64_t now) {
        int64_t others = (lane->held_us - t->held_at_start) - t->own_us;
        return lane->opts.handler_timeout_ms * 1000 - ((now - t->started_us) - others);
}

/* Called from l_tool_call inside a resume: queue the operation. */
static int dispatch(void *ud, lua_State *co, const mmp_plugin_inst_t *inst, const mmp_plugin_op_t *op,
                    mmp_value_t *input, mmp_value_t *opts, char *errstr, size_t n) {
        mmp_lane_t *lane = ud;
        task_t *t = lane->current;
        op_job_t *oj;
        if (!t || t->co != co) {
                snprintf(errstr, n, "plugin operations can only be called from the handler's own coroutine");
                mmp_value_free(input);
                mmp_value_free(opts);
                return -1;
        }
        oj = calloc(1, sizeof(*oj));
        oj->task = t;
        oj->inst = inst;
        oj->op = op;
        oj->input = input;
        oj->opts = opts;
        oj->job.run = op_job_run;
        snprintf(oj->qualified, sizeof(oj->qualified), "%s.%s", inst->desc->name, op->name);
        /* No wall-clock deadline for the plugin: the lane alone judges the
         * task's deadline and raises t->cancel when it gives up. */
        mmp_call_init(&oj->call, inst->desc->name, op->name, 0, &t->cancel, &t->ev->tmp);
        t->waiting = 1;
        snprintf(t->waiting_on, sizeof(t->waiting_on), "%s", oj->qualified);
        int seen = 0;
        for (int i = 0; i < t->n_used; i++)
                seen |= t->used[i] == inst;
        if (!seen && t->n_used < MAX_TRACKED_PLUGINS)
                t->used[t->n_used++] = inst;
        mmp_event_ref(t->ev);
        lane->outstanding++;
        mmp_pool_submit(lane->opts.pool, &oj->job);
        return 0;
}

static void task_resume(mmp_lane_t *lane, task_t *t, int nargs);

/* Called from the mmpipe invoke functions inside a resume: queue the calls. */
static int invoke_dispatch(void *ud, lua_State *co, mmp_invoke_request_t *reqs, int n, char *errstr, size_t errn) {
        mmp_lane_t *lane = ud;
        task_t *t = lane->current;
        lua_State *L = mmp_lua_L(lane->lua);
        if (!t || t->co != co) {
                snprintf(errstr, errn, "inference calls can only be made from the handler's own coroutine");
                return -1;
        }
        lua_createtable(L, n, 0);
        t->results_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        free(t->call_error);
        t->call_error = NULL;
        t->pending_calls = n;
        snprintf(t->waiting_on, sizeof(t->waiting_on), "endpoint %s%s", reqs[0].endpoint, n > 1 ? " (and others)" : "");
        if (!t->endpoints)
                t->endpoints = json_array();
        for (int i = 0; i < n; i++) {
                int seen = 0;
                for (size_t k = 0; k < json_array_size(t->endpoints); k++)
                        seen |= !strcmp(json_string_value(json_array_get(t->endpoints, k)), reqs[i].endpoint);
                if (!seen)
                        json_array_append_new(t->endpoints, json_string(reqs[i].endpoint));
                /* Bodies were checked against the limit before: this cannot fail. */
                mmp_invoker_submit(lane->invoker, &reqs[i], t, i + 1, errstr, errn);
        }
        return 0;
}

/* One call is over: put its response in the results; resume the handler
 * when the last one is in. Lane thread (inside mmp_invoker_run). */
static void invoke_done(void *owner, void *tag, int index, mmp_invoke_result_t *r) {
        mmp_lane_t *lane = owner;
        task_t *t = tag;
        lua_State *L = mmp_lua_L(lane->lua);
        const char *k;
        json_t *v;
        lua_rawgeti(L, LUA_REGISTRYINDEX, t->results_ref);
        lua_createtable(L, 0, 6);
        lua_pushboolean(L, r->ok);
        lua_setfield(L, -2, "ok");
        lua_pushnumber(L, (lua_Number)r->status);
        lua_setfield(L, -2, "status");
        lua_pushlstring(L, r->body, r->len);
        lua_setfield(L, -2, "body");
        lua_pushnumber(L, r->attempts);
        lua_setfield(L, -2, "attempts");
        lua_newtable(L);
        json_object_foreach(r->headers, k, v) {
                lua_pushstring(L, json_string_value(v));
                lua_setfield(L, -2, k);
        }
        lua_setfield(L, -2, "headers");
        if (!r->ok) {
                lua_pushstring(L, r->error);
                lua_setfield(L, -2, "error");
                lua_pushstring(L, r->error_type);
                lua_setfield(L, -2, "error_type");
                if (!t->call_error)
                        t->call_error = strdup(r->error ? r->error : "inference call failed");
        }
        lua_getfield(L, LUA_REGISTRYINDEX, "mmpipe.response_mt");
        lua_setmetatable(L, -2);
        lua_rawseti(L, -2, index);
        lua_pop(L, 1);
        mmp_invoke_result_free(r);
        if (--t->pending_calls > 0)
                return;
        lua_rawgeti(t->co, LUA_REGISTRYINDEX, t->results_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, t->results_ref);
        t->results_ref = LUA_NOREF;
        if (t->call_error)
                lua_pushstring(t->co, t->call_error);
        else
                lua_pushnil(t->co);
        task_resume(lane, t, 2);
}

static void task_free(task_t *t) {
        mmp_event_unref(t->ev);
        free(t->op_error);
        free(t->call_error);
        json_decref(t->endpoints);
        free(t);
}

static void task_unlink(mmp_lane_t *lane, task_t *t) {
        if (t->prev)
                t->prev->next = t->next;
        else if (lane->tasks == t)
                lane->tasks = t->next;
        if (t->next)
                t->next->prev = t->prev;
        t->prev = t->next = NULL;
}

/* The handler is over (done or failed): drop the coroutine; the task
 * itself lives on while a plugin call still holds it. */
static void task_finish(mmp_lane_t *lane, task_t *t, mmp_failure_t *failure) {
        lua_State *L = mmp_lua_L(lane->lua);
        if (t->co_ref != LUA_NOREF) {
                /* Only a coroutine that ran to its end is clean enough to
                 * run another handler; one that failed or was stopped
                 * mid-call is left to the garbage collector. */
                if (lua_status(t->co) == 0 && t->handler_returned && lane->n_idle_cos < IDLE_COROUTINES) {
                        lua_settop(t->co, 0);
                        lane->idle_cos[lane->n_idle_cos++] = t->co_ref;
                } else {
                        luaL_unref(L, LUA_REGISTRYINDEX, t->co_ref);
                }
                t->co_ref = LUA_NOREF;
                t->co = NULL;
        }
        if (t->pending_calls) {
                mmp_invoker_cancel(lane->invoker, t);
                t->pending_calls = 0;
        }
        if (t->results_ref != LUA_NOREF) {
                luaL_unref(L, LUA_REGISTRYINDEX, t->results_ref);
                t->results_ref = LUA_NOREF;
        }
        task_unlink(lane, t);
        t->dead = 1;
        __atomic_store_n(&lane->runs_finished, lane->runs_finished + 1, __ATOMIC_RELEASE);
        if (failure)
                mmp_engine_pipeline_done(lane->opts.engine, t->ev, t->pidx, failure);
        if (!t->waiting)
                task_free(t);
}

/* Lineage of plugins used, in call order: {"text":"1.0.0"}. */
static json_t *plugins_used(const task_t *t) {
        json_t *o = json_object();
        for (int i = 0; i < t->n_used; i++)
                json_object_set_new(o, t->used[i]->desc->name, json_string(t->used[i]->desc->version));
        return o;
}

/* The handler returned: turn its result into documents and store them. */
static void task_collect(mmp_lane_t *lane, task_t *t) {
        lua_State *co = t->co;
        const mmp_pipeline_t *p = mmp_engine_pipeline(lane->opts.engine, t->pidx);
        json_t *docs = NULL, *doc; /* made at the first document: most handlers return one or none */
        char err[512];
        size_t n;

        if (lua_gettop(co) >= 1 && lua_type(co, 1) == LUA_TTABLE) {
                n = lua_objlen(co, 1);
                if (n == 0) { /* one document (or an empty table: none) */
                        lua_pushnil(co);
                        if (lua_next(co, 1)) {
                                lua_pop(co, 2);
                                if (!(doc = mmp_lua_to_json(co, 1, "document", err, sizeof(err))))
                                        goto bad;
                                json_array_append_new(docs = json_array(), doc);
                        }
                }
                for (size_t i = 1; i <= n; i++) {
                        char path[32];
                        lua_rawgeti(co, 1, (int)i);
                        snprintf(path, sizeof(path), "documents[%zu]", i);
                        if (lua_type(co, -1) != LUA_TTABLE) {
                                snprintf(err, sizeof(err), "%s is a %s, not a table", path, luaL_typename(co, -1));
                                goto bad;
                        }
                        if (!(doc = mmp_lua_to_json(co, -1, path, err, sizeof(err))))
                                goto bad;
                        lua_pop(co, 1);
                        json_array_append_new(docs ? docs : (docs = json_array()), doc);
                }
        } else if (lua_gettop(co) >= 1 && !lua_isnil(co, 1)) {
                snprintf(err, sizeof(err), "handler returned a %s; return a document, a list of documents or nil",
                         luaL_typename(co, 1));
                goto bad;
        }
        /* The engine adds the lineage (plugins used, endpoints called) to
         * each document. */
        json_t *plugins = t->n_used ? plugins_used(t) : NULL;
        mmp_engine_store(lane->opts.engine, t->ev, t->pidx, docs, plugins, t->endpoints);
        json_decref(plugins);
        task_finish(lane, t, NULL);
        return;
bad:
        json_decref(docs);
        task_finish(lane, t,
                    mmp_failure_new(MMP_ERR_LUA, MMP_STAGE_HANDLE, 0, p->name, NULL, "%s: %s", p->file, err));
}

static void task_resume(mmp_lane_t *lane, task_t *t, int nargs) {
        const mmp_pipeline_t *p = mmp_engine_pipeline(lane->opts.engine, t->pidx);
        lua_State *L = mmp_lua_L(lane->lua);
        int rc, fired;

        int64_t t0 = mmp_now_us();
        if (!t->started_us) /* the first run: the event's deadline counts from here */
                t->started_us = t0;
        lane->current = t;
        mmp_lua_arm(lane->lua, t0 + task_remaining_us(lane, t, t0));
        rc = lua_resume(t->co, nargs);
        fired = mmp_lua_deadline_fired(lane->lua);
        mmp_lua_disarm(lane->lua);
        lane->current = NULL;
        int64_t ran = mmp_now_us() - t0;
        lane->held_us += ran;
        t->own_us += ran;

        if (rc == LUA_YIELD && (t->waiting || t->pending_calls) && !fired)
                return; /* parked until the plugin call or the inference calls return */
        if (rc == 0 && !fired) {
                t->handler_returned = 1;
                task_collect(lane, t);
                return;
        }
        const char *msg = lua_type(t->co, -1) == LUA_TSTRING ? lua_tostring(t->co, -1) : "(error object is not a string)";
        luaL_traceback(L, t->co, NULL, 0);
        const char *tb = lua_tostring(L, -1);
        mmp_failure_t *f;
        if (fired)
                f = mmp_failure_new(MMP_ERR_TIMEOUT, MMP_STAGE_HANDLE, 0, p->name, tb,
                                    "%s: handler exceeded its deadline of %lld ms and was stopped (%s)",
                                    p->file, (long long)lane->opts.handler_timeout_ms, msg);
        else if (rc == LUA_ERRMEM)
                f = mmp_failure_new(MMP_ERR_MEMORY_CAP, MMP_STAGE_HANDLE, 0, p->name, tb,
                                    "%s: handler exceeded the lane's Lua memory cap of %zu MB", p->file,
                                    lane->opts.memory_cap >> 20);
        else if (rc == LUA_YIELD)
                f = mmp_failure_new(MMP_ERR_LUA, MMP_STAGE_HANDLE, 0, p->name, tb,
                                    "%s: handler yielded outside an mmpipe call", p->file);
        else if (t->op_error && strstr(msg, t->op_error))
                /* The handler let a plugin failure through: the cause is the
                 * input (or the plugin), not the handler's code. */
                f = mmp_failure_new(t->op_error_retriable ? MMP_ERR_PLUGIN : MMP_ERR_BAD_INPUT, MMP_STAGE_HANDLE,
                                    t->op_error_retriable, p->name, tb, "%s", msg);
        else
                f = mmp_failure_new(MMP_ERR_LUA, MMP_STAGE_HANDLE, 0, p->name, tb, "%s", msg);
        lua_pop(L, 1);
        task_finish(lane, t, f);
}

static void task_start(mmp_lane_t *lane, mmp_event_t *ev, size_t pidx) {
        lua_State *L = mmp_lua_L(lane->lua);
        task_t *t = calloc(1, sizeof(*t));
        t->lane = lane;
        t->ev = ev; /* the start message's reference */
        t->pidx = pidx;
        t->held_at_start = lane->held_us;
        t->results_ref = LUA_NOREF;
        if (lane->n_idle_cos) {
                t->co_ref = lane->idle_cos[--lane->n_idle_cos];
                lua_rawgeti(L, LUA_REGISTRYINDEX, t->co_ref);
                t->co = lua_tothread(L, -1);
                lua_pop(L, 1);
        } else {
                t->co = lua_newthread(L);
                t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        }
        t->next = lane->tasks;
        if (lane->tasks)
                lane->tasks->prev = t;
        lane->tasks = t;
        /* Outside a protected call, but safe from the memory cap: it
         * applies only between mmp_lua_arm and mmp_lua_disarm, while
         * handler code runs, so these pushes fail only when malloc does. */
        task_resume(lane, t, mmp_lua_push_handler_call(t->co, lane->handler_refs[pidx], ev));
}

static void fail_deadline_waiting(mmp_lane_t *lane, task_t *t) {
        const mmp_pipeline_t *p = mmp_engine_pipeline(lane->opts.engine, t->pidx);
        t->cancel = 1;
        task_finish(lane, t,
                    mmp_failure_new(MMP_ERR_TIMEOUT, MMP_STAGE_HANDLE, 0, p->name, NULL,
                                    "%s: handler exceeded its deadline of %lld ms while waiting on %s", p->file,
                                    (long long)lane->opts.handler_timeout_ms,
                                    t->waiting_on));
}

static void op_done(mmp_lane_t *lane, op_job_t *oj) {
        task_t *t = oj->task;
        lane->outstanding--;
        t->waiting = 0;
        mmp_event_unref(t->ev); /* the call's reference */
        if (t->dead) {
                task_free(t);
                op_job_free(oj);
                return;
        }
        if (oj->call.failed && task_remaining_us(lane, t, mmp_now_us()) <= 0) {
                /* The plugin gave up because the deadline passed: say so. */
                op_job_free(oj);
                fail_deadline_waiting(lane, t);
                return;
        }
        if (oj->call.failed) {
                free(t->op_error);
                t->op_error = strdup(oj->call.errmsg);
                t->op_error_retriable = oj->call.retriable;
                lua_pushboolean(t->co, 0);
                lua_pushstring(t->co, oj->call.errmsg);
        } else {
                lua_pushboolean(t->co, 1);
                mmp_lua_push_value(t->co, oj->result);
        }
        op_job_free(oj);
        task_resume(lane, t, 2);
}

/* Fails tasks whose deadline passed while they waited on a plugin call,
 * and returns the time until the next deadline (ms, capped). */
static long check_deadlines(mmp_lane_t *lane) {
        int64_t now = mmp_now_us(), next = 1000000;
        task_t *t = lane->tasks, *nx;
        for (; t; t = nx) {
                int64_t left = task_remaining_us(lane, t, now);
                nx = t->next;
                if (left <= 0 && (t->waiting || t->pending_calls))
                        fail_deadline_waiting(lane, t);
                else if (left < next)
                        next = left;
        }
        return (long)(next / 1000) + 1;
}

static void *lane_main(void *arg) {
        mmp_lane_t *lane = arg;
        for (;;) {
                msg_t *m, *nx;
                int stopping = 0;
                /* The writes this round's handlers make go to their sinks
                 * together, at the end of the round. */
                mmp_sink_hold();
                /* Drain the inbox until it is empty (a bounded number of
                 * rounds) before judging deadlines: a result that arrived
                 * while another handler held the lane is not late. */
                for (int round = 0; round < 64; round++) {
                        pthread_mutex_lock(&lane->lock);
                        m = lane->inbox_head;
                        lane->inbox_head = lane->inbox_tail = NULL;
                        stopping = lane->stopping;
                        pthread_mutex_unlock(&lane->lock);
                        if (!m)
                                break;
                        for (; m; m = nx) {
                                nx = m->next;
                                if (m->type == MSG_START) {
                                        start_msg_t *s = (start_msg_t *)m;
                                        task_start(lane, s->ev, s->pidx);
                                        __atomic_store_n(&lane->runs_started, lane->runs_started + 1, __ATOMIC_RELEASE);
                                        free(s);
                                } else {
                                        op_done(lane, (op_job_t *)m);
                                }
                        }
                }
                int64_t inv_us = mmp_invoker_run(lane->invoker);
                long wait_ms = check_deadlines(lane);
                mmp_sink_release();
                if (inv_us >= 0 && inv_us / 1000 < wait_ms)
                        wait_ms = (long)(inv_us / 1000);
                if (stopping && !lane->tasks && !lane->outstanding && !mmp_invoker_active(lane->invoker)) {
                        pthread_mutex_lock(&lane->lock);
                        int empty = !lane->inbox_head;
                        pthread_mutex_unlock(&lane->lock);
                        if (empty)
                                break;
                        continue;
                }
                pthread_mutex_lock(&lane->lock);
                int pending = lane->inbox_head != NULL;
                pthread_mutex_unlock(&lane->lock);
                if (!pending)
                        curl_multi_poll(lane->multi, NULL, 0, (int)(wait_ms > 1000 ? 1000 : wait_ms), NULL);
        }
        return NULL;
}

mmp_lane_t *mmp_lane_new(const mmp_lane_opts_t *opts, mmp_pipeline_t **defs, char *errstr, size_t n) {
        mmp_lane_t *lane = calloc(1, sizeof(*lane));
        mmp_lua_opts_t lo = {0};
        lane->id = opts->id;
        lane->opts = *opts;
        pthread_mutex_init(&lane->lock, NULL);
        lane->multi = curl_multi_init();
        lo.plugins = opts->plugins;
        lo.memory_cap = opts->memory_cap;
        for (int i = 0; i < 3 && opts->lib_dirs[i]; i++)
                lo.lib_dirs[i] = opts->lib_dirs[i];
        lo.dispatch = dispatch;
        lo.invoke = opts->endpoints ? invoke_dispatch : NULL;
        lo.dispatch_ud = lane;
        lo.models = opts->models;
        if (lane->multi && opts->endpoints)
                lane->invoker = mmp_invoker_new(lane->multi, opts->endpoints, invoke_done, lane);
        if (!lane->multi || !(lane->lua = mmp_lua_new(&lo, errstr, n))) {
                mmp_lane_free(lane);
                return NULL;
        }
        lane->handler_refs = calloc(opts->n_pipelines ? opts->n_pipelines : 1, sizeof(int));
        for (size_t i = 0; i < opts->n_pipelines; i++) {
                if (mmp_lua_load_pipeline(lane->lua, opts->pipeline_files[i], opts->pipeline_texts[i],
                                          opts->pipeline_lens[i], defs ? &defs[i] : NULL,
                                          &lane->handler_refs[i], errstr, n)) {
                        mmp_lane_free(lane);
                        return NULL;
                }
        }
        return lane;
}

int mmp_lane_start(mmp_lane_t *lane) {
        if (pthread_create(&lane->thread, NULL, lane_main, lane))
                return -1;
        lane->started = 1;
        return 0;
}

void mmp_lane_free(mmp_lane_t *lane) {
        if (!lane)
                return;
        if (lane->started) {
                pthread_mutex_lock(&lane->lock);
                lane->stopping = 1;
                pthread_mutex_unlock(&lane->lock);
                curl_multi_wakeup(lane->multi);
                pthread_join(lane->thread, NULL);
        }
        mmp_invoker_free(lane->invoker);
        mmp_lua_free(lane->lua);
        if (lane->multi)
                curl_multi_cleanup(lane->multi);
        free(lane->handler_refs);
        pthread_mutex_destroy(&lane->lock);
        free(lane);
}
