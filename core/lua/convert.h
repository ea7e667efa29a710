/*
 * Conversions between Lua values and the engine's value trees (plugin
 * calls) and JSON (documents, mmpipe.json). Run on the lane that owns the
 * Lua state. Errors name the path inside the value ("doc[2].meta.x").
 */
#ifndef MMP_LUA_CONVERT_H
#define MMP_LUA_CONVERT_H

#include <jansson.h>
#include <lua.h>

#include "mmpipe/plugin.h"

#define MMP_LUA_BLOB_MT "mmpipe.blob"

/* Lua -> value. On error returns -1 with errstr "<what> at <path>". */
int mmp_lua_to_value(lua_State *L, int idx, const char *path, mmp_value_t **out, char *errstr,
                     size_t errstr_size);
/* value -> Lua (pushes one value). Blobs become userdata sharing the bytes. */
void mmp_lua_push_value(lua_State *L, const mmp_value_t *v);

/* Lua -> JSON with object keys sorted (deterministic documents). Blobs are
 * refused: documents hold data, not handles. */
json_t *mmp_lua_to_json(lua_State *L, int idx, const char *path, char *errstr, size_t errstr_size);
/* JSON -> Lua (null becomes mmpipe.json.null, a light userdata NULL). */
void mmp_lua_push_json(lua_State *L, const json_t *j);

/* Registers the blob metatable in L. */
void mmp_lua_blob_register(lua_State *L);

#endif
