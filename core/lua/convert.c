/*
 * Lua <-> value and Lua <-> JSON conversion. Lane thread.
 */
#include "convert.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/event.h"
#include "plugin/value.h"

#define MAX_DEPTH 64

/* Lua tables that are sequences 1..n (n > 0) become arrays. */
static int is_array(lua_State *L, int idx, size_t *np) {
        size_t n = lua_objlen(L, idx), count = 0;
        if (n == 0)
                return 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
                lua_pop(L, 1);
                if (lua_type(L, -1) != LUA_TNUMBER) {
                        lua_pop(L, 1);
                        return 0;
                }
                count++;
        }
        *np = n;
        return count == n;
}

static void child_path(char *out, size_t n, const char *parent, const char *key, long index) {
        if (key)
                snprintf(out, n, "%s%s%s", parent, *parent ? "." : "", key);
        else
                snprintf(out, n, "%s[%ld]", parent, index);
}

/* Stringifies a map key; returns NULL for keys JSON cannot hold. */
static const char *key_string(lua_State *L, int kidx, char *buf, size_t n) {
        if (lua_type(L, kidx) == LUA_TSTRING)
                return lua_tostring(L, kidx);
        if (lua_type(L, kidx) == LUA_TNUMBER) {
                snprintf(buf, n, "%.14g", lua_tonumber(L, kidx));
                return buf;
        }
        return NULL;
}

static int number_is_int(double d) {
        return d == floor(d) && fabs(d) < 9007199254740992.0;
}

/* Out of C memory (malloc, not the Lua state's cap) while converting path. */
static int out_of_memory(char *err, size_t n, const char *path) {
        snprintf(err, n, "out of memory at %s", *path ? path : "(top)");
        return -1;
}

static int to_value(lua_State *L, int idx, const char *path, int depth, mmp_value_t **out, char *err,
                    size_t n) {
        size_t len;
        const char *s;
        char sub[512], kb[64];
        *out = NULL;
        if (depth > MAX_DEPTH) {
                snprintf(err, n, "nested too deep (over %d levels) at %s", MAX_DEPTH, path);
                return -1;
        }
        switch (lua_type(L, idx)) {
        case LUA_TNIL: *out = mmp_value_new_nil(); return *out ? 0 : out_of_memory(err, n, path);
        case LUA_TBOOLEAN:
                *out = mmp_value_new_bool(lua_toboolean(L, idx));
                return *out ? 0 : out_of_memory(err, n, path);
        case LUA_TNUMBER: {
                double d = lua_tonumber(L, idx);
                *out = number_is_int(d) ? mmp_value_new_int((int64_t)d) : mmp_value_new_double(d);
                return *out ? 0 : out_of_memory(err, n, path);
        }
        case LUA_TSTRING:
                s = lua_tolstring(L, idx, &len);
                *out = mmp_value_new_string(s, len);
                return *out ? 0 : out_of_memory(err, n, path);
        case LUA_TUSERDATA: {
                if (mmp_lua_event_is(L, idx)) { /* the event passed whole: its fields */
                        int rc;
                        mmp_lua_event_push_table(L, idx);
                        rc = to_value(L, lua_gettop(L), path, depth, out, err, n);
                        lua_pop(L, 1);
                        return rc;
                }
                mmp_value_t **blob = luaL_checkudata(L, idx, MMP_LUA_BLOB_MT);
                *out = mmp_blob_ref(*blob);
                return 0;
        }
        case LUA_TTABLE: break;
        default:
                snprintf(err, n, "cannot pass a %s at %s", luaL_typename(L, idx), path);
                return -1;
        }
        if (idx < 0)
                idx = lua_gettop(L) + idx + 1;
        size_t alen;
        int arr = is_array(L, idx, &alen);
        mmp_value_t *c = arr ? mmp_value_new_array() : mmp_value_new_map(), *item;
        if (!c)
                return out_of_memory(err, n, path);
        if (arr) {
                for (size_t i = 1; i <= alen; i++) {
                        lua_rawgeti(L, idx, (int)i);
                        child_path(sub, sizeof(sub), path, NULL, (long)i);
                        if (to_value(L, -1, sub, depth + 1, &item, err, n)) {
                                lua_pop(L, 1);
                                mmp_value_free(c);
                                return -1;
                        }
                        lua_pop(L, 1);
                        if (mmp_value_push(c, item)) { /* item freed */
                                mmp_value_free(c);
                                return out_of_memory(err, n, sub);
                        }
                }
        } else {
                lua_pushnil(L);
                while (lua_next(L, idx)) {
                        const char *k = key_string(L, -2, kb, sizeof(kb));
                        if (!k) {
                                snprintf(err, n, "table key of type %s at %s", luaL_typename(L, -2), path);
                                lua_pop(L, 2);
                                mmp_value_free(c);
                                return -1;
                        }
                        child_path(sub, sizeof(sub), path, k, 0);
                        if (lua_type(L, -1) == LUA_TFUNCTION) { /* methods are not data */
                                lua_pop(L, 1);
                                continue;
                        }
                        if (to_value(L, lua_gettop(L), sub, depth + 1, &item, err, n)) {
                                lua_pop(L, 2);
                                mmp_value_free(c);
                                return -1;
                        }
                        if (mmp_value_set(c, k, item)) { /* item freed */
                                lua_pop(L, 2);
                                mmp_value_free(c);
                                return out_of_memory(err, n, sub);
                        }
                        lua_pop(L, 1);
                }
        }
        *out = c;
        return 0;
}

int mmp_lua_to_value(lua_State *L, int idx, const char *path, mmp_value_t **out, char *errstr,
                     size_t errstr_size) {
        if (idx < 0)
                idx = lua_gettop(L) + idx + 1;
        return to_value(L, idx, path, 0, out, errstr, errstr_size);
}

void mmp_lua_push_value(lua_State *L, const mmp_value_t *v) {
        size_t len;
        const char *s;
        switch (mmp_value_type(v)) {
        case MMP_VAL_NIL: lua_pushnil(L); return;
        case MMP_VAL_BOOL: lua_pushboolean(L, mmp_value_bool(v)); return;
        case MMP_VAL_INT: lua_pushnumber(L, (lua_Number)mmp_value_int(v)); return;
        case MMP_VAL_DOUBLE: lua_pushnumber(L, mmp_value_double(v)); return;
        case MMP_VAL_STRING:
                s = mmp_value_string(v, &len);
                lua_pushlstring(L, s, len);
                return;
        case MMP_VAL_BLOB: {
                mmp_value_t **ud = lua_newuserdata(L, sizeof(*ud));
                *ud = mmp_blob_ref(v);
                luaL_getmetatable(L, MMP_LUA_BLOB_MT);
                lua_setmetatable(L, -2);
                return;
        }
        case MMP_VAL_ARRAY:
                lua_createtable(L, (int)mmp_value_len(v), 0);
                for (size_t i = 0; i < mmp_value_len(v); i++) {
                        mmp_lua_push_value(L, mmp_value_index(v, i));
                        lua_rawseti(L, -2, (int)i + 1);
                }
                return;
        case MMP_VAL_MAP:
                lua_createtable(L, 0, (int)mmp_value_len(v));
                for (size_t i = 0; i < mmp_value_len(v); i++) {
                        mmp_lua_push_value(L, mmp_value_index(v, i));
                        lua_setfield(L, -2, mmp_value_key(v, i));
                }
                return;
        }
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static json_t *to_json(lua_State *L, int idx, const char *path, int depth, char *err, size_t n);

/* Why jansson refused to set field key of the object at path: a name that
 * is not UTF-8 (which it checks; the name itself is not repeated), or
 * memory. The probe is one more allocation: should that one fail too, the
 * name is blamed, and the document fails either way. */
static void set_failed(const char *key, char *err, size_t n, const char *path, const char *field_path) {
        json_t *probe = json_string(key);
        if (!probe) {
                snprintf(err, n, "a field name in %s is not valid UTF-8", *path ? path : "(top)");
                return;
        }
        json_decref(probe);
        out_of_memory(err, n, field_path);
}

static json_t *table_to_json(lua_State *L, int idx, const char *path, int depth, char *err, size_t n) {
        char sub[512], kb[64];
        size_t alen, nkeys = 0, cap = 0;
        json_t *j, *item;
        char **keys = NULL;

        if (is_array(L, idx, &alen)) {
                if (!(j = json_array())) {
                        out_of_memory(err, n, path);
                        return NULL;
                }
                for (size_t i = 1; i <= alen; i++) {
                        lua_rawgeti(L, idx, (int)i);
                        child_path(sub, sizeof(sub), path, NULL, (long)i);
                        item = to_json(L, lua_gettop(L), sub, depth + 1, err, n);
                        lua_pop(L, 1);
                        if (!item || json_array_append_new(j, item)) { /* item freed */
                                if (item)
                                        out_of_memory(err, n, sub);
                                json_decref(j);
                                return NULL;
                        }
                }
                return j;
        }
        /* Collect keys first so the object is built in sorted order. */
        lua_pushnil(L);
        while (lua_next(L, idx)) {
                const char *k = key_string(L, -2, kb, sizeof(kb));
                lua_pop(L, 1);
                if (!k) {
                        snprintf(err, n, "table key of type %s at %s (keys must be strings)",
                                 luaL_typename(L, -1), *path ? path : "(top)");
                        lua_pop(L, 1);
                        goto fail;
                }
                if (nkeys == cap) {
                        size_t want = cap ? cap * 2 : 8;
                        char **grown = realloc(keys, want * sizeof(*keys));
                        if (!grown) {
                                lua_pop(L, 1);
                                out_of_memory(err, n, path);
                                goto fail;
                        }
                        keys = grown;
                        cap = want;
                }
                if (!(keys[nkeys] = strdup(k))) {
                        lua_pop(L, 1);
                        out_of_memory(err, n, path);
                        goto fail;
                }
                nkeys++;
        }
        if (nkeys)
                qsort(keys, nkeys, sizeof(*keys), cmp_str);
        if (!(j = json_object())) {
                out_of_memory(err, n, path);
                goto fail;
        }
        for (size_t i = 0; i < nkeys; i++) {
                char *end;
                double d = strtod(keys[i], &end);
                lua_getfield(L, idx, keys[i]);
                if (lua_isnil(L, -1) && *end == '\0' && end != keys[i]) { /* numeric key */
                        lua_pop(L, 1);
                        lua_pushnumber(L, d);
                        lua_rawget(L, idx);
                }
                child_path(sub, sizeof(sub), path, keys[i], 0);
                item = to_json(L, lua_gettop(L), sub, depth + 1, err, n);
                lua_pop(L, 1);
                if (!item || json_object_set_new(j, keys[i], item)) { /* item freed */
                        if (item)
                                set_failed(keys[i], err, n, path, sub);
                        json_decref(j);
                        goto fail;
                }
        }
        for (size_t i = 0; i < nkeys; i++)
                free(keys[i]);
        free(keys);
        return j;
fail:
        for (size_t i = 0; i < nkeys; i++)
                free(keys[i]);
        free(keys);
        return NULL;
}

static json_t *to_json(lua_State *L, int idx, const char *path, int depth, char *err, size_t n) {
        size_t len;
        const char *s;
        json_t *j;
        if (depth > MAX_DEPTH) {
                snprintf(err, n, "nested too deep (over %d levels) at %s", MAX_DEPTH, path);
                return NULL;
        }
        switch (lua_type(L, idx)) {
        case LUA_TNIL: return json_null();
        case LUA_TBOOLEAN: return json_boolean(lua_toboolean(L, idx));
        case LUA_TLIGHTUSERDATA:
                if (!lua_touserdata(L, idx))
                        return json_null(); /* mmpipe.json.null */
                break;
        case LUA_TNUMBER: {
                double d = lua_tonumber(L, idx);
                if (isnan(d) || isinf(d)) {
                        snprintf(err, n, "number %g cannot be stored at %s", d, path);
                        return NULL;
                }
                return number_is_int(d) ? json_integer((json_int_t)d) : json_real(d);
        }
        case LUA_TSTRING:
                s = lua_tolstring(L, idx, &len);
                if (!(j = json_stringn(s, len)))
                        snprintf(err, n, "string is not valid UTF-8 at %s", path);
                return j;
        case LUA_TTABLE: return table_to_json(L, idx, path, depth, err, n);
        case LUA_TUSERDATA:
                if (mmp_lua_event_is(L, idx)) { /* the event stored whole: its fields */
                        mmp_lua_event_push_table(L, idx);
                        j = table_to_json(L, lua_gettop(L), path, depth, err, n);
                        lua_pop(L, 1);
                        return j;
                }
                break;
        default: break;
        }
        snprintf(err, n, "a %s cannot be stored at %s", luaL_typename(L, idx), *path ? path : "(top)");
        return NULL;
}

json_t *mmp_lua_to_json(lua_State *L, int idx, const char *path, char *errstr, size_t errstr_size) {
        if (idx < 0)
                idx = lua_gettop(L) + idx + 1;
        return to_json(L, idx, path ? path : "", 0, errstr, errstr_size);
}

void mmp_lua_push_json(lua_State *L, const json_t *j) {
        const char *k;
        json_t *item;
        size_t i;
        switch (json_typeof(j)) {
        case JSON_NULL: lua_pushlightuserdata(L, NULL); return;
        case JSON_TRUE: lua_pushboolean(L, 1); return;
        case JSON_FALSE: lua_pushboolean(L, 0); return;
        case JSON_INTEGER: lua_pushnumber(L, (lua_Number)json_integer_value(j)); return;
        case JSON_REAL: lua_pushnumber(L, json_real_value(j)); return;
        case JSON_STRING: lua_pushlstring(L, json_string_value(j), json_string_length(j)); return;
        case JSON_ARRAY:
                lua_createtable(L, (int)json_array_size(j), 0);
                json_array_foreach(j, i, item) {
                        mmp_lua_push_json(L, item);
                        lua_rawseti(L, -2, (int)i + 1);
                }
                return;
        case JSON_OBJECT:
                lua_createtable(L, 0, (int)json_object_size(j));
                json_object_foreach((json_t *)j, k, item) {
                        mmp_lua_push_json(L, item);
                        lua_setfield(L, -2, k);
                }
                return;
        }
}

static int blob_gc(lua_State *L) {
        mmp_value_t **ud = luaL_checkudata(L, 1, MMP_LUA_BLOB_MT);
        mmp_value_free(*ud);
        *ud = NULL;
        return 0;
}

static int blob_len(lua_State *L) {
        mmp_value_t **ud = luaL_checkudata(L, 1, MMP_LUA_BLOB_MT);
        lua_pushnumber(L, (lua_Number)mmp_value_len(*ud));
        return 1;
}

static int blob_index(lua_State *L) {
        mmp_value_t **ud = luaL_checkudata(L, 1, MMP_LUA_BLOB_MT);
        const char *k = luaL_checkstring(L, 2), *ctype;
        size_t len;
        const void *data = mmp_blob_data(*ud, &len, &ctype);
        if (!strcmp(k, "content_type"))
                lua_pushstring(L, ctype);
        else if (!strcmp(k, "size"))
                lua_pushnumber(L, (lua_Number)len);
        else if (!strcmp(k, "bytes")) /* blob.bytes: a copy into a Lua string, only when asked */
                lua_pushlstring(L, data, len);
        else
                lua_pushnil(L);
        return 1;
}

void mmp_lua_blob_register(lua_State *L) {
        luaL_newmetatable(L, MMP_LUA_BLOB_MT);
        lua_pushcfunction(L, blob_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, blob_len);
        lua_setfield(L, -2, "__len");
        lua_pushcfunction(L, blob_index);
        lua_setfield(L, -2, "__index");
        lua_pushliteral(L, "blob");
        lua_setfield(L, -2, "__metatable");
        lua_pop(L, 1);
}
