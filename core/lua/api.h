/*
 * The `mmpipe` Lua module handlers see, and the internals state.c and the
 * lanes share. Lane thread (or the CLI thread in check mode).
 */
#ifndef MMP_LUA_API_H
#define MMP_LUA_API_H

#include <lua.h>

#include "lua/state.h"

/* Builds the module (mmpipe.pipeline, tools, log, json, sha256, base64)
 * into the registry. Returns 0 or -1 with errstr. */
int mmp_lua_api_open(lua_State *L, const mmp_lua_opts_t *opts, char *errstr, size_t errstr_size);
/* Pushes the (read-only) module table. */
void mmp_lua_push_module(lua_State *L);
/* Pushes a fresh allow-listed environment table. */
void mmp_lua_push_new_env(lua_State *L);
/* luaL_loadbuffer that refuses bytecode; chunk name "@name". */
int mmp_lua_load_chunk(lua_State *L, const char *name, const char *text, size_t len);
/* Reads the table made by mmpipe.pipeline{} at idx. */
int mmp_lua_pipeline_from_table(lua_State *L, int idx, const char *file, mmp_pipeline_t **defp,
                                int *handler_ref, char *errstr, size_t errstr_size);

#endif
