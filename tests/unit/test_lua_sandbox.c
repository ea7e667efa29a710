/*
 * The handler sandbox: allow-listed globals, bytecode refused, deadlines
 * that stop endless loops (also inside pcall), the memory cap, pipeline
 * load errors naming file and line; and the event table handlers receive.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lauxlib.h>

#include "engine/event.h"
#include "lua/api.h"
#include "lua/convert.h"
#include "lua/state.h"
#include "plugin/value.h"
#include "util/time.h"

static mmp_lua_t *new_state(size_t cap) {
        mmp_lua_opts_t o = {0};
        char err[256];
        o.memory_cap = cap;
        mmp_lua_t *lua = mmp_lua_new(&o, err, sizeof(err));
        assert_non_null(lua);
        return lua;
}

/* Runs src as sandboxed handler code under a deadline; returns the
 * lua_pcall code and leaves the result/error string in out. */
static int run(mmp_lua_t *lua, const char *src, int64_t deadline_ms, char *out, size_t n) {
        lua_State *L = mmp_lua_L(lua);
        int rc = mmp_lua_load_chunk(L, "test.lua", src, strlen(src));
        if (!rc) {
                mmp_lua_push_new_env(L);
                lua_setfenv(L, -2);
                mmp_lua_arm(lua, deadline_ms ? mmp_now_us() + deadline_ms * 1000 : 0);
                rc = lua_pcall(L, 0, 1, 0);
                mmp_lua_disarm(lua);
        }
        snprintf(out, n, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(nil)");
        lua_pop(L, 1);
        return rc;
}

static void test_globals_allow_listed(void **state) {
        mmp_lua_t *lua = new_state(0);
        char out[512];
        (void)state;
        assert_int_equal(run(lua,
                             "local seen = {}\n"
                             "for _, k in ipairs{'io','os.execute','os.exit','os.getenv','loadfile','dofile','load',"
                             "'loadstring','debug','ffi','jit','package','module','setfenv','getfenv','collectgarbage',"
                             "'newproxy','string.dump','coroutine'} do\n"
                             "  local v = _G\n"
                             "  for part in k:gmatch('[^.]+') do v = v and v[part] end\n"
                             "  if v ~= nil then seen[#seen+1] = k end\n"
                             "end\n"
                             "return table.concat(seen, ',')",
                             1000, out, sizeof(out)),
                         0);
        assert_string_equal(out, "");
        /* What is allowed works. */
        assert_int_equal(run(lua, "return string.format('%d', math.floor(os.time() / 1e12) + #('abc'):upper())",
                             1000, out, sizeof(out)),
                         0);
        assert_string_equal(out, "3");
        mmp_lua_free(lua);
}

static void test_no_escape_through_metatables_or_require(void **state) {
        mmp_lua_t *lua = new_state(0);
        char out[512];
        (void)state;
        assert_int_equal(run(lua, "return tostring(getmetatable(''))", 1000, out, sizeof(out)), 0);
        assert_string_equal(out, "false");
        assert_int_equal(run(lua, "return tostring(('').dump)", 1000, out, sizeof(out)), 0);
        assert_string_equal(out, "nil");
        assert_int_not_equal(run(lua, "return require('ffi')", 1000, out, sizeof(out)), 0);
        assert_non_null(strstr(out, "module \"ffi\" not found"));
        assert_int_not_equal(run(lua, "return require('io')", 1000, out, sizeof(out)), 0);
        /* Each environment is separate: globals do not leak between scripts. */
        assert_int_equal(run(lua, "leak = 42 return 'ok'", 1000, out, sizeof(out)), 0);
        assert_int_equal(run(lua, "return tostring(leak)", 1000, out, sizeof(out)), 0);
        assert_string_equal(out, "nil");
        /* The module is read-only. */
        assert_int_not_equal(run(lua, "local m = require 'mmpipe' m.log = nil", 1000, out, sizeof(out)), 0);
        assert_non_null(strstr(out, "mmpipe is read-only"));
        mmp_lua_free(lua);
}

static void test_bytecode_refused(void **state) {
        mmp_lua_t *lua = new_state(0);
        lua_State *L = mmp_lua_L(lua);
        char bc[] = "\033LJ\002junk";
        (void)state;
        assert_int_not_equal(mmp_lua_load_chunk(L, "evil.lua", bc, sizeof(bc) - 1), 0);
        assert_non_null(strstr(lua_tostring(L, -1), "precompiled bytecode is refused"));
        lua_pop(L, 1);
        mmp_lua_free(lua);
}

static void test_endless_loop_stopped(void **state) {
        mmp_lua_t *lua = new_state(0);
        char out[512];
        int64_t t0 = mmp_now_us();
        (void)state;
        /* A loop the JIT would compile into a trace where hooks never run. */
        assert_int_not_equal(run(lua, "local i = 0 while true do i = i + 1 end", 200, out, sizeof(out)), 0);
        assert_non_null(strstr(out, "deadline exceeded"));
        assert_true(mmp_lua_deadline_fired(lua)); /* the hook, not an ordinary error, stopped it */
        /* pcall cannot swallow the deadline. */
        assert_int_not_equal(
            run(lua, "while true do pcall(function() while true do end end) end", 200, out, sizeof(out)), 0);
        assert_non_null(strstr(out, "deadline exceeded"));
        /* Generous bound: both loops stopped instead of running forever. */
        assert_true(mmp_now_us() - t0 < 20 * 1000000);
        /* The state is usable afterwards. */
        assert_int_equal(run(lua, "return 'alive'", 1000, out, sizeof(out)), 0);
        assert_string_equal(out, "alive");
        mmp_lua_free(lua);
}

static void test_memory_cap(void **state) {
        mmp_lua_t *lua = new_state(32u << 20);
        char out[512];
        (void)state;
        assert_int_not_equal(run(lua, "local t = {} for i = 1, 1e8 do t[i] = string.rep('x', 64) .. i end",
                                 60000, out, sizeof(out)),
                             0);
        assert_non_null(strstr(out, "not enough memory"));
        lua_gc(mmp_lua_L(lua), LUA_GCCOLLECT, 0);
        assert_true(mmp_lua_memory(lua) < (32u << 20));
        assert_int_equal(run(lua, "return 'alive'", 1000, out, sizeof(out)), 0);
        mmp_lua_free(lua);
}

static void test_pipeline_errors_name_file_and_line(void **state) {
        mmp_lua_t *lua = new_state(0);
        mmp_pipeline_t *def = NULL;
        int ref;
        char err[512];
        const char *syntax = "local mmpipe = require 'mmpipe'\nreturn mmpipe.pipeline {\n name = 'x',,\n}\n";
        const char *missing = "local mmpipe = require 'mmpipe'\n\nreturn mmpipe.pipeline {\n name = 'x',\n"
                              " match = {}, destination = { collection = 'c' } }\n";
        const char *badmatch = "local mmpipe = require 'mmpipe'\nreturn mmpipe.pipeline { name = 'x',\n"
                               " match = { content_typ = 'text/*' }, destination = { collection = 'c' },\n"
                               " handler = function() end }\n";
        const char *plain = "return { name = 'x' }\n";
        const char *ok = "local mmpipe = require 'mmpipe'\nreturn mmpipe.pipeline { name = 'good',\n"
                         " match = { content_type = 'text/*', key_suffix = { '.txt', '.md' } },\n"
                         " destination = { collection = 'c', metadata = { a = 1 } },\n handler = function() end }\n";
        (void)state;
        assert_int_equal(mmp_lua_load_pipeline(lua, "p/syntax.lua", syntax, strlen(syntax), &def, &ref, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "p/syntax.lua:3:"));
        assert_int_equal(mmp_lua_load_pipeline(lua, "p/missing.lua", missing, strlen(missing), &def, &ref, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "p/missing.lua:3:"));
        assert_non_null(strstr(err, "`handler` must be a function"));
        assert_int_equal(mmp_lua_load_pipeline(lua, "p/badmatch.lua", badmatch, strlen(badmatch), &def, &ref, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "unknown rule \"content_typ\""));
        assert_int_equal(mmp_lua_load_pipeline(lua, "p/plain.lua", plain, strlen(plain), &def, &ref, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "must return mmpipe.pipeline"));
        assert_int_equal(mmp_lua_load_pipeline(lua, "p/ok.lua", ok, strlen(ok), &def, &ref, err, sizeof(err)), 0);
        assert_string_equal(def->name, "good");
        assert_int_equal(def->match.key_suffixes.n, 2);
        assert_string_equal(def->collection, "c");
        assert_int_equal(strlen(def->version), 12);
        mmp_pipeline_free(def);
        mmp_lua_free(lua);
}


/* Calls the handler that the chunk src returns (loaded like a pipeline
 * file, in the sandbox) on ev; leaves its result on the stack. */
static void call_on(mmp_lua_t *lua, const char *src, const mmp_event_t *ev) {
        lua_State *L = mmp_lua_L(lua);
        assert_int_equal(mmp_lua_load_chunk(L, "event.lua", src, strlen(src)), 0);
        mmp_lua_push_new_env(L);
        lua_setfenv(L, -2);
        assert_int_equal(lua_pcall(L, 0, 1, 0), 0);
        int ref = luaL_ref(L, LUA_REGISTRYINDEX);
        int nargs = mmp_lua_push_handler_call(L, ref, ev);
        if (lua_pcall(L, nargs, 1, 0))
                fail_msg("handler: %s", lua_tostring(L, -1));
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
}

static const char *call_str(mmp_lua_t *lua, const char *src, const mmp_event_t *ev, char *out, size_t n) {
        lua_State *L = mmp_lua_L(lua);
        call_on(lua, src, ev);
        snprintf(out, n, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(not a string)");
        lua_pop(L, 1);
        return out;
}

/* The handler's event: every field, the source table of both kinds,
 * absent fields nil, and event:bytes(). */
static const char *call_handler(mmp_lua_t *lua, const mmp_event_t *ev, char *out, size_t n) {
        return call_str(lua,
                        "return function(e)\n"
                        "  local s = e.source or {}\n"
                        "  return table.concat({e.id, e.bucket, e.key, e.url, tostring(e.path), e.event_name,\n"
                        "    tostring(e.content_type), tostring(e.detected_content_type), "
                        "tostring(e.content_type_mismatch),\n"
                        "    tostring(e.etag), tostring(e.version), tostring(e.size), tostring(e.time),\n"
                        "    tostring(s.type), tostring(s.topic or s.path), tostring(s.partition), tostring(s.offset),\n"
                        "    type(e.bytes)}, '|')\n"
                        "end\n",
                        ev, out, n);
}

static void test_event_table(void **state) {
        mmp_lua_t *lua = new_state(0);
        mmp_event_t ev = {0};
        char out[1024];
        (void)state;
        ev.id = "s3://b/k.txt";
        ev.bucket = "b";
        ev.key = "k.txt";
        ev.url = "s3://b/k.txt";
        ev.path = "/tmp/x";
        ev.event_name = "ObjectCreated:Put";
        ev.content_type = "text/plain";
        ev.detected_type = "text/html";
        ev.content_type_mismatch = 1;
        ev.etag = "e1";
        ev.version = "v1";
        ev.size = 1234;
        ev.time_ms = 1500;
        ev.source.type = MMP_SOURCE_KAFKA;
        ev.source.topic = "uploads";
        ev.source.partition = 3;
        ev.source.offset = 9876543210LL;
        assert_string_equal(call_handler(lua, &ev, out, sizeof(out)),
                            "s3://b/k.txt|b|k.txt|s3://b/k.txt|/tmp/x|ObjectCreated:Put|text/plain|text/html|true|"
                            "e1|v1|1234|1.5|kafka|uploads|3|9876543210|function");

        ev.path = ev.content_type = ev.detected_type = ev.etag = ev.version = NULL;
        ev.content_type_mismatch = 0;
        ev.source.type = MMP_SOURCE_FILE;
        assert_string_equal(call_handler(lua, &ev, out, sizeof(out)),
                            "s3://b/k.txt|b|k.txt|s3://b/k.txt|nil|ObjectCreated:Put|nil|nil|false|"
                            "nil|nil|1234|1.5|file|k.txt|nil|nil|function");

        ev.source.type = MMP_SOURCE_NONE;
        assert_string_equal(call_handler(lua, &ev, out, sizeof(out)),
                            "s3://b/k.txt|b|k.txt|s3://b/k.txt|nil|ObjectCreated:Put|nil|nil|false|"
                            "nil|nil|1234|1.5|nil|nil|nil|nil|function");
        mmp_lua_free(lua);
}

/* The event is an object read like a table: what a handler can do with a
 * table of its fields still works (pairs, setting fields, storing it, passing
 * it on), it is a snapshot that outlives its handler and the engine's event,
 * and its metatable stays hidden. */
static void test_event_object(void **state) {
        mmp_lua_t *lua = new_state(0);
        lua_State *L = mmp_lua_L(lua);
        mmp_event_t ev = {0};
        char out[1024], key[32] = "k.txt", path[] = "/tmp/mmp-test-event-XXXXXX";
        char err[256];
        int fd = mkstemp(path);
        (void)state;
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "hello\0bytes", 11), 11);
        close(fd);
        ev.id = "s3://b/k.txt";
        ev.bucket = "b";
        ev.key = key;
        ev.path = path;
        ev.event_name = "ObjectCreated:Put";
        ev.size = 11;
        ev.source.type = MMP_SOURCE_KAFKA;
        ev.source.topic = "uploads";
        ev.source.partition = 3;
        ev.source.offset = 7;

        /* pairs: every field, bytes excluded; nil fields absent. */
        char want[1024];
        snprintf(want, sizeof(want),
                 "bucket=b content_type_mismatch=false event_name=ObjectCreated:Put id=s3://b/k.txt key=k.txt "
                 "path=%s size=11 source=kafka time=0",
                 path);
        assert_string_equal(call_str(lua,
                                     "return function(e)\n"
                                     "  local ks = {}\n"
                                     "  for k, v in pairs(e) do\n"
                                     "    ks[#ks + 1] = k .. '=' .. (type(v) == 'table' and v.type or tostring(v))\n"
                                     "  end\n"
                                     "  table.sort(ks)\n"
                                     "  return table.concat(ks, ' ')\n"
                                     "end\n",
                                     &ev, out, sizeof(out)),
                            want);

        /* Identity and hidden metatable; fields set stay set, others keep
         * their values, nil removes, bytes() still reads the file. */
        assert_string_equal(call_str(lua,
                                     "return function(e)\n"
                                     "  local r = { tostring(e.source == e.source), tostring(getmetatable(e)),\n"
                                     "              type(e), tostring(e), tostring(e.nothing), tostring(e[1]) }\n"
                                     "  e.source.seen = true\n"
                                     "  r[#r + 1] = tostring(e.source.seen)\n"
                                     "  e.key = 'changed'; e.url = nil; e.extra = 42\n"
                                     "  r[#r + 1] = e.key .. ',' .. tostring(e.url) .. ',' .. e.extra .. ',' .. e.bucket\n"
                                     "  r[#r + 1] = tostring(e.source.seen) .. ',' .. #e:bytes()\n"
                                     "  return table.concat(r, '|')\n"
                                     "end\n",
                                     &ev, out, sizeof(out)),
                            "true|false|userdata|event s3://b/k.txt|nil|nil|true|changed,nil,42,b|true,11");

        /* A kept event is a snapshot: the engine's strings may change or go. */
        static const char keep[] = "local kept\n"
                                   "return function(e)\n"
                                   "  if kept then return kept.key .. ',' .. kept.source.topic .. ',' .. e.key end\n"
                                   "  kept = e\n"
                                   "  return 'kept'\n"
                                   "end\n";
        assert_int_equal(mmp_lua_load_chunk(L, "keep.lua", keep, strlen(keep)), 0);
        mmp_lua_push_new_env(L);
        lua_setfenv(L, -2);
        assert_int_equal(lua_pcall(L, 0, 1, 0), 0);
        int ref = luaL_ref(L, LUA_REGISTRYINDEX);
        assert_int_equal(lua_pcall(L, mmp_lua_push_handler_call(L, ref, &ev), 1, 0), 0);
        assert_string_equal(lua_tostring(L, -1), "kept");
        lua_pop(L, 1);
        strcpy(key, "other.txt");
        ev.source.topic = "gone";
        lua_gc(L, LUA_GCCOLLECT, 0);
        assert_int_equal(lua_pcall(L, mmp_lua_push_handler_call(L, ref, &ev), 1, 0), 0);
        assert_string_equal(lua_tostring(L, -1), "k.txt,uploads,other.txt");
        lua_pop(L, 1);
        luaL_unref(L, LUA_REGISTRYINDEX, ref);

        /* Stored in a document or passed to a plugin: its fields. */
        call_on(lua, "return function(e) return { ev = e } end\n", &ev);
        json_t *doc = mmp_lua_to_json(L, -1, "doc", err, sizeof(err));
        assert_non_null(doc);
        assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "ev"), "key")), "other.txt");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(doc, "ev"), "source"),
                                                            "offset")),
                         7);
        assert_null(json_object_get(json_object_get(doc, "ev"), "bytes"));
        json_decref(doc);
        mmp_value_t *v = NULL;
        assert_int_equal(mmp_lua_to_value(L, -1, "input", &v, err, sizeof(err)), 0);
        assert_non_null(v);
        mmp_value_free(v);
        lua_pop(L, 1);

        /* bytes() named on anything else says how to call it. */
        call_on(lua, "return function(e) local ok, m = pcall(e.bytes, {}) return m end\n", &ev);
        assert_non_null(strstr(lua_tostring(L, -1), "event:bytes()"));
        lua_pop(L, 1);
        unlink(path);
        mmp_lua_free(lua);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_globals_allow_listed),
            cmocka_unit_test(test_no_escape_through_metatables_or_require),
            cmocka_unit_test(test_bytecode_refused),
            cmocka_unit_test(test_endless_loop_stopped),
            cmocka_unit_test(test_memory_cap),
            cmocka_unit_test(test_pipeline_errors_name_file_and_line),
            cmocka_unit_test(test_event_table),
            cmocka_unit_test(test_event_object),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
