/*
 * One sandboxed LuaJIT state (one per lane, plus one for `mmpipe check`):
 * memory cap, deadline hook, allow-listed environments, the mmpipe module
 * with every plugin operation under mmpipe.tools, and pipeline loading.
 * Used only by the thread that owns it.
 */
#ifndef MMP_LUA_STATE_H
#define MMP_LUA_STATE_H

#include <lua.h>
#include <stdint.h>

#include "inference/invoke.h"
#include "lua/pipeline.h"
#include "plugin/loader.h"

typedef struct mmp_lua mmp_lua_t;

/* How a handler's plugin call leaves the Lua state: the owner (a lane)
 * queues the operation and later resumes `co` with (true, result) or
 * (false, message). input/opts are passed on (owned by the callee).
 * Returns 0, or -1 with errstr (raised in the handler at once). */
typedef int (*mmp_lua_dispatch_fn)(void *ud, lua_State *co, const mmp_plugin_inst_t *plugin,
                                   const mmp_plugin_op_t *op, mmp_value_t *input, mmp_value_t *opts,
                                   char *errstr, size_t errstr_size);

/* How a handler's inference calls leave the Lua state: the owner queues
 * the n requests (taking their contents) and later resumes `co` with
 * (results, first error or nil). Returns 0, or -1 with errstr. */
typedef int (*mmp_lua_invoke_fn)(void *ud, lua_State *co, mmp_invoke_request_t *reqs, int n, char *errstr,
                                 size_t errstr_size);

typedef struct mmp_lua_opts {
        const mmp_plugins_t *plugins;  /* borrowed; may be NULL */
        size_t memory_cap;             /* bytes; 0 = none */
        const char *lib_dirs[4];       /* where require() looks, NULL-terminated */
        mmp_lua_dispatch_fn dispatch;  /* NULL: plugin calls fail (check mode) */
        mmp_lua_invoke_fn invoke;      /* NULL: inference calls fail (check mode) */
        void *dispatch_ud;
        const json_t *models;          /* the config's "models" (borrowed), may be NULL */
} mmp_lua_opts_t;

mmp_lua_t *mmp_lua_new(const mmp_lua_opts_t *opts, char *errstr, size_t errstr_size);
void mmp_lua_free(mmp_lua_t *lua);
lua_State *mmp_lua_L(mmp_lua_t *lua);

/* Compiles and runs a pipeline file's text in a fresh sandbox environment.
 * On success *defp (if non-NULL) gets a new description and *handler_ref a
 * registry reference to the handler function. Errors name file and line. */
int mmp_lua_load_pipeline(mmp_lua_t *lua, const char *file, const char *text, size_t len,
                          mmp_pipeline_t **defp, int *handler_ref, char *errstr, size_t errstr_size);

/* The deadline of the code about to run (monotonic us; 0 = none). While
 * armed the count hook raises "deadline exceeded" once it passes, and again
 * on every instruction after, so pcall cannot swallow it for long. */
void mmp_lua_arm(mmp_lua_t *lua, int64_t deadline_us);
void mmp_lua_disarm(mmp_lua_t *lua);
/* Did the deadline fire since the last arm? */
int mmp_lua_deadline_fired(const mmp_lua_t *lua);
size_t mmp_lua_memory(const mmp_lua_t *lua);

/* Pushes the call of a handler (by registry reference) on an event: the
 * function and its arguments, returning how many arguments to resume with.
 * The handler receives the event object (lua/event.h). */
int mmp_lua_push_handler_call(lua_State *L, int handler_ref, const mmp_event_t *ev);

#endif
