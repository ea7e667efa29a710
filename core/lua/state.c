/*
 * Sandboxed LuaJIT states: allocator with a cap, the deadline hook,
 * allow-listed environments, require() of shipped libraries, pipeline
 * loading. Owned and used by one thread (a lane, or the CLI for check).
 */
#include "lua/state.h"

#include <errno.h>
#include <lauxlib.h>
#include <luajit.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/api.h"
#include "lua/convert.h"
#include "lua/event.h"
#include "util/sha256.h"
#include "util/time.h"

#define HOOK_EVERY 1000 /* instructions between deadline checks */

struct mmp_lua {
        lua_State *L;
        size_t mem_used, memory_cap;
        int enforce;            /* cap applies while handler code runs */
        lua_Alloc inner;        /* LuaJIT's own allocator, wrapped to count */
        void *inner_ud;
        int64_t deadline_us;
        int fired;
        mmp_lua_opts_t opts;
        const char *lib_dirs[4];
};

static __thread mmp_lua_t *tl_lua; /* the armed state of this thread */

static void *lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
        mmp_lua_t *lua = ud;
        void *p;
        if (!ptr)
                osize = 0;
        if (nsize == 0) {
                lua->inner(lua->inner_ud, ptr, osize, 0);
                lua->mem_used -= osize;
                return NULL;
        }
        if (lua->enforce && lua->memory_cap && nsize > osize &&
            lua->mem_used + (nsize - osize) > lua->memory_cap)
                return NULL; /* LuaJIT raises "not enough memory" in the handler */
        if (!(p = lua->inner(lua->inner_ud, ptr, osize, nsize)))
                return NULL;
        lua->mem_used += nsize - osize;
        return p;
}

static void deadline_hook(lua_State *L, lua_Debug *ar) {
        mmp_lua_t *lua = tl_lua;
        (void)ar;
        if (!lua || !lua->deadline_us)
                return;
        if (lua->fired || mmp_now_us() > lua->deadline_us) {
                if (!lua->fired) {
                        lua->fired = 1;
                        /* From now on every instruction fails: a pcall loop
                         * in the handler cannot keep it alive. */
                        lua_sethook(L, deadline_hook, LUA_MASKCOUNT, 1);
                }
                /* Level 0 inside a hook is the Lua function being run, so
                 * the message names the line the handler was stuck on. */
                luaL_where(L, 0);
                lua_pushliteral(L, "deadline exceeded: handler stopped here");
                lua_concat(L, 2);
                lua_error(L);
        }
}

void mmp_lua_arm(mmp_lua_t *lua, int64_t deadline_us) {
        tl_lua = lua;
        lua->deadline_us = deadline_us;
        lua->fired = 0;
        lua->enforce = 1;
}

void mmp_lua_disarm(mmp_lua_t *lua) {
        if (lua->fired)
                lua_sethook(lua->L, deadline_hook, LUA_MASKCOUNT, HOOK_EVERY);
        lua->deadline_us = 0;
        lua->enforce = 0;
}

int mmp_lua_deadline_fired(const mmp_lua_t *lua) {
        return lua->fired;
}

size_t mmp_lua_memory(const mmp_lua_t *lua) {
        return lua->mem_used;
}

lua_State *mmp_lua_L(mmp_lua_t *lua) {
        return lua->L;
}

/* Reads a whole script; refuses precompiled bytecode. */
static char *read_script(const char *path, size_t *lenp, char *err, size_t n) {
        FILE *f = fopen(path, "rb");
        char *buf = NULL;
        size_t len = 0;
        if (!f) {
                snprintf(err, n, "cannot read %s: %s", path, strerror(errno));
                return NULL;
        }
        FILE *m = open_memstream(&buf, &len);
        char chunk[8192];
        size_t r;
        while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0)
                fwrite(chunk, 1, r, m);
        fclose(f);
        fclose(m);
        *lenp = len;
        return buf;
}

int mmp_lua_load_chunk(lua_State *L, const char *name, const char *text, size_t len) {
        if (len > 0 && text[0] == LUA_SIGNATURE[0]) {
                lua_pushfstring(L, "%s: precompiled bytecode is refused; give Lua source", name);
                return LUA_ERRSYNTAX;
        }
        lua_pushfstring(L, "@%s", name);
        int rc = luaL_loadbuffer(L, text, len, lua_tostring(L, -1));
        lua_remove(L, rc ? -2 : -2);
        return rc;
}

/* require(name): "mmpipe", or a library from the lib folders, sandboxed. */
static int l_require(lua_State *L) {
        mmp_lua_t *lua = lua_touserdata(L, lua_upvalueindex(1));
        const char *name = luaL_checkstring(L, 1);
        char path[4096], err[512];
        size_t len;
        char *text = NULL;

        if (!strcmp(name, "mmpipe")) {
                mmp_lua_push_module(L);
                return 1;
        }
        for (const char *c = name; *c; c++)
                if (!(*c == '.' || *c == '_' || *c == '-' || (*c >= 'a' && *c <= 'z') ||
                      (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
                        return luaL_error(L, "require: invalid module name \"%s\"", name);
        lua_getfield(L, LUA_REGISTRYINDEX, "mmpipe.loaded");
        lua_getfield(L, -1, name);
        if (!lua_isnil(L, -1))
                return 1;
        lua_pop(L, 1);
        for (int i = 0; lua->lib_dirs[i] && !text; i++) {
                char rel[1024];
                snprintf(rel, sizeof(rel), "%s", name);
                for (char *c = rel; *c; c++)
                        if (*c == '.')
                                *c = '/';
                snprintf(path, sizeof(path), "%s/%s.lua", lua->lib_dirs[i], rel);
                text = read_script(path, &len, err, sizeof(err));
        }
        if (!text)
                return luaL_error(L, "require: module \"%s\" not found in the Lua library folders", name);
        int rc = mmp_lua_load_chunk(L, path, text, len);
        free(text);
        if (rc)
                return lua_error(L);
        mmp_lua_push_new_env(L);
        lua_setfenv(L, -2);
        lua_call(L, 0, 1);
        if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                lua_pushboolean(L, 1);
        }
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, name);
        return 1;
}

/* The allow-list: the only globals handler code sees. */
static const char *const safe_globals[] = {
    "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget", "rawset", "select",
    "setmetatable", "getmetatable", "tonumber", "tostring", "type", "unpack", "xpcall", "_VERSION",
    NULL};
static const char *const safe_string[] = {"byte", "char", "find", "format", "gmatch", "gsub", "len",
                                          "lower", "match", "rep", "reverse", "sub", "upper", NULL};
static const char *const safe_table[] = {"concat", "insert", "maxn", "remove", "sort", NULL};
static const char *const safe_os[] = {"clock", "date", "difftime", "time", NULL};

static void copy_fields(lua_State *L, const char *lib, const char *const *names) {
        lua_getglobal(L, lib);
        lua_newtable(L);
        for (int i = 0; names[i]; i++) {
                lua_getfield(L, -2, names[i]);
                lua_setfield(L, -2, names[i]);
        }
        lua_setfield(L, -3, lib);
        lua_pop(L, 1);
}

static void copy_all(lua_State *L, const char *lib) {
        lua_getglobal(L, lib);
        lua_newtable(L);
        lua_pushnil(L);
        while (lua_next(L, -3)) {
                lua_pushvalue(L, -2);
                lua_insert(L, -2);
                lua_settable(L, -4);
        }
        lua_setfield(L, -3, lib);
        lua_pop(L, 1);
}

void mmp_lua_push_new_env(lua_State *L) {
        lua_newtable(L);
        for (int i = 0; safe_globals[i]; i++) {
                lua_getglobal(L, safe_globals[i]);
                lua_setfield(L, -2, safe_globals[i]);
        }
        copy_fields(L, "string", safe_string);
        copy_fields(L, "table", safe_table);
        copy_fields(L, "os", safe_os);
        copy_all(L, "math");
        copy_all(L, "bit");
        lua_getfield(L, LUA_REGISTRYINDEX, "mmpipe.require");
        lua_setfield(L, -2, "require");
        lua_getfield(L, LUA_REGISTRYINDEX, "mmpipe.pairs"); /* knows the event object */
        lua_setfield(L, -2, "pairs");
        lua_getfield(L, LUA_REGISTRYINDEX, "mmpipe.print");
        lua_setfield(L, -2, "print");
        lua_pushvalue(L, -1);
        lua_setfield(L, -2, "_G");
}

static int at_panic(lua_State *L) {
        fprintf(stderr, "mmpipe: unprotected Lua error: %s\n", lua_tostring(L, -1));
        abort();
        return 0;
}

mmp_lua_t *mmp_lua_new(const mmp_lua_opts_t *opts, char *errstr, size_t n) {
        mmp_lua_t *lua = calloc(1, sizeof(*lua));
        lua_State *L;
        if (!lua)
                return NULL;
        lua->opts = *opts;
        lua->memory_cap = opts->memory_cap;
        for (int i = 0; i < 3 && opts->lib_dirs[i]; i++)
                lua->lib_dirs[i] = opts->lib_dirs[i];
        /* LuaJIT's own allocator is much faster than malloc for its small
         * objects; wrap it to count what the state holds. */
        if (!(L = lua->L = luaL_newstate())) {
                snprintf(errstr, n, "cannot create a Lua state");
                free(lua);
                return NULL;
        }
        lua->inner = lua_getallocf(L, &lua->inner_ud);
        lua->mem_used = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
        lua_setallocf(L, lua_alloc, lua);
        lua_atpanic(L, at_panic);
        luaL_openlibs(L);
        /* Hooks never run inside JIT-compiled traces, so handlers run in the
         * interpreter, where the count hook below always fires. (After
         * openlibs: opening the jit library switches the compiler on.) */
        luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
        /* string.dump would hand out bytecode; the string metatable would
         * hand out the real string table. Close both doors. */
        lua_getglobal(L, "string");
        lua_pushnil(L);
        lua_setfield(L, -2, "dump");
        lua_pop(L, 1);
        lua_pushliteral(L, "");
        lua_getmetatable(L, -1);
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
        lua_pop(L, 2);

        lua_newtable(L);
        lua_setfield(L, LUA_REGISTRYINDEX, "mmpipe.loaded");
        lua_pushlightuserdata(L, lua);
        lua_pushcclosure(L, l_require, 1);
        lua_setfield(L, LUA_REGISTRYINDEX, "mmpipe.require");
        mmp_lua_blob_register(L);
        mmp_lua_event_register(L);
        if (mmp_lua_api_open(L, opts, errstr, n)) {
                mmp_lua_free(lua);
                return NULL;
        }
        lua_sethook(L, deadline_hook, LUA_MASKCOUNT, HOOK_EVERY);
        return lua;
}

int mmp_lua_push_handler_call(lua_State *L, int handler_ref, const mmp_event_t *ev) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, handler_ref);
        mmp_lua_event_push(L, ev);
        return 1;
}

void mmp_lua_free(mmp_lua_t *lua) {
        if (!lua)
                return;
        if (tl_lua == lua)
                tl_lua = NULL;
        if (lua->L)
                lua_close(lua->L);
        free(lua);
}

int mmp_lua_load_pipeline(mmp_lua_t *lua, const char *file, const char *text, size_t len,
                          mmp_pipeline_t **defp, int *handler_ref, char *errstr, size_t n) {
        lua_State *L = lua->L;
        int top = lua_gettop(L), rc;

        if ((rc = mmp_lua_load_chunk(L, file, text, len))) {
                snprintf(errstr, n, "%s", lua_tostring(L, -1));
                lua_settop(L, top);
                return -1;
        }
        mmp_lua_push_new_env(L);
        lua_setfenv(L, -2);
        /* Top-level code runs under a deadline too (a loop at load time). */
        mmp_lua_arm(lua, mmp_now_us() + 10 * 1000000);
        rc = lua_pcall(L, 0, 1, 0);
        mmp_lua_disarm(lua);
        if (rc) {
                const char *msg = lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error object is not a string)";
                if (strncmp(msg, file, strlen(file))) {
                        /* `return mmpipe.pipeline {...}` is a tail call, so the
                         * chunk's frame (and its line) is gone when the table
                         * is checked: point at the line of that call instead. */
                        const char *at = strstr(text, "mmpipe.pipeline");
                        int line = 1;
                        for (const char *c = text; at && c < at; c++)
                                line += *c == '\n';
                        snprintf(errstr, n, "%s:%d: %s", file, line, msg);
                } else {
                        snprintf(errstr, n, "%s", msg);
                }
                lua_settop(L, top);
                return -1;
        }
        rc = mmp_lua_pipeline_from_table(L, lua_gettop(L), file, defp, handler_ref, errstr, n);
        if (!rc && defp) {
                (*defp)->file = strdup(file);
                (*defp)->source = malloc(len + 1);
                memcpy((*defp)->source, text, len);
                (*defp)->source[len] = '\0';
                (*defp)->source_len = len;
                uint8_t digest[32];
                char hex[65];
                mmp_sha256(text, len, digest);
                mmp_hex(digest, 32, hex);
                memcpy((*defp)->version, hex, 12);
                (*defp)->version[12] = '\0';
        }
        lua_settop(L, top);
        return rc;
}
