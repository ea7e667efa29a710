/*
 * The `mmpipe` module: pipeline(), tools.<plugin>.<op>, log, json, sha256,
 * base64, and the event table. Lane thread.
 */
#include "lua/api.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/convert.h"
#include "plugin/value.h"
#include "util/b64.h"
#include "util/log.h"
#include "util/sha256.h"

typedef struct dispatcher {
        mmp_lua_dispatch_fn fn;
        mmp_lua_invoke_fn invoke;
        void *ud;
} dispatcher_t;

/* Lua part of the module: small wrappers that are clearer in Lua. */
static const char prelude[] =
    "local C = ...\n"
    "local function readonly(t, what, missing)\n"
    "  local index = t\n"
    "  if missing then\n"
    "    index = function(_, k)\n"
    "      local v = t[k]\n"
    "      if v == nil then error(what .. '.' .. tostring(k) .. ': ' .. missing, 2) end\n"
    "      return v\n"
    "    end\n"
    "  end\n"
    "  local mt = getmetatable(t)\n"
    "  return setmetatable({}, { __index = index, __metatable = false, __call = mt and mt.__call,\n"
    "    __newindex = function(_, k) error(what .. ' is read-only (cannot set ' .. tostring(k) .. ')', 2) end })\n"
    "end\n"
    "local log = {}\n"
    "for _, lvl in ipairs { 'error', 'warn', 'info', 'debug' } do\n"
    "  log[lvl] = function(...) C.log(lvl, ...) end\n"
    "end\n"
    "setmetatable(log, { __call = function(_, ...) C.log('info', ...) end })\n"
    "local tools, listing = {}, {}\n"
    "for pname, ops in pairs(C.ops) do\n"
    "  local t = {}\n"
    "  for opname, call in pairs(ops) do\n"
    "    local qualified = pname .. '.' .. opname\n"
    "    t[opname] = function(input, opts)\n"
    "      local ok, res = call(input, opts)\n"
    "      if not ok then error(qualified .. ': ' .. tostring(res), 2) end\n"
    "      return res\n"
    "    end\n"
    "  end\n"
    "  tools[pname] = readonly(t, 'mmpipe.tools.' .. pname, 'the plugin has no such operation (see `mmpipe plugins`)')\n"
    "  listing[#listing + 1] = pname\n"
    "end\n"
    "table.sort(listing)\n"
    "local json_decode = C.json_decode\n"
    "local response_mt = { __index = { json = function(self) return json_decode(self.body) end } }\n"
    "C.set_response_mt(response_mt)\n"
    "local function invoke_all(requests, opts)\n"
    "  local results, err = C.invoke_all(requests)\n"
    "  if err and not (opts and opts.errors == 'return') then error(err, 2) end\n"
    "  return results\n"
    "end\n"
    "local function invoke(endpoint, body, opts)\n"
    "  local results, err = C.invoke_all({ { endpoint = endpoint, body = body, opts = opts } })\n"
    "  if err then error(err, 2) end\n"
    "  return results[1]\n"
    "end\n"
    "local models = C.models or {}\n"
    "local function pick(v, path, what)\n"
    "  for part in tostring(path):gmatch('[^.]+') do\n"
    "    if type(v) ~= 'table' then error(what .. ': the response has no ' .. path, 3) end\n"
    "    v = v[tonumber(part) or part]\n"
    "  end\n"
    "  if type(v) ~= 'table' then error(what .. ': no vector at ' .. path .. ' in the response', 3) end\n"
    "  return v\n"
    "end\n"
    "local function embed_all(name, inputs)\n"
    "  local m = models[name]\n"
    "  local what = 'mmpipe.embed(\\'' .. tostring(name) .. '\\')'\n"
    "  if not m then error(what .. ': no such model under \\\"models\\\" in the config', 2) end\n"
    "  local out = {}\n"
    "  if m.provider == 'local' then\n"
    "    local op = tools[m.plugin] and tools[m.plugin][m.op]\n"
    "    if not op then error(what .. ': plugin operation ' .. m.plugin .. '.' .. m.op .. ' is not loaded', 2) end\n"
    "    for i, x in ipairs(inputs) do out[i] = pick(op(x, m.options), m.response_path or 'embedding', what) end\n"
    "    return out\n"
    "  end\n"
    "  local reqs = {}\n"
    "  for i, x in ipairs(inputs) do\n"
    "    local body = x\n"
    "    if m.request ~= 'raw' then body = { [m.input_field or 'inputs'] = x } end\n"
    "    reqs[i] = { endpoint = m.endpoint, body = body,\n"
    "                opts = { content_type = m.content_type, accept = m.accept or 'application/json' } }\n"
    "  end\n"
    "  local rs, err = C.invoke_all(reqs)\n"
    "  if err then error(what .. ': ' .. err, 2) end\n"
    "  for i, r in ipairs(rs) do out[i] = pick(r:json(), m.response_path or 'embedding', what) end\n"
    "  return out\n"
    "end\n"
    "local function generate(name, input)\n"
    "  local m = models[name]\n"
    "  local what = 'mmpipe.generate(\\'' .. tostring(name) .. '\\')'\n"
    "  if not m then error(what .. ': no such model under \\\"models\\\" in the config', 2) end\n"
    "  local r\n"
    "  if m.provider == 'local' then\n"
    "    local op = tools[m.plugin] and tools[m.plugin][m.op]\n"
    "    r = op(input, m.options)\n"
    "  else\n"
    "    local body = input\n"
    "    if m.request ~= 'raw' then body = { [m.input_field or 'inputs'] = input } end\n"
    "    local rs, err = C.invoke_all({ { endpoint = m.endpoint, body = body,\n"
    "      opts = { content_type = m.content_type, accept = m.accept or 'application/json' } } })\n"
    "    if err then error(what .. ': ' .. err, 2) end\n"
    "    r = rs[1]:json()\n"
    "  end\n"
    "  if m.response_path then\n"
    "    for part in m.response_path:gmatch('[^.]+') do r = type(r) == 'table' and r[tonumber(part) or part] or nil end\n"
    "  end\n"
    "  return r\n"
    "end\n"
    "local M = {\n"
    "  pipeline = C.pipeline, version = C.version,\n"
    "  log = readonly(log, 'mmpipe.log'),\n"
    "  tools = readonly(tools, 'mmpipe.tools', 'no plugin of that name is loaded (see `mmpipe plugins`)'),\n"
    "  plugins = function() local r = {} for i, n in ipairs(listing) do r[i] = n end return r end,\n"
    "  json = readonly({ encode = C.json_encode, decode = C.json_decode, null = C.null }, 'mmpipe.json'),\n"
    "  base64 = readonly({ encode = C.b64_encode, decode = C.b64_decode }, 'mmpipe.base64'),\n"
    "  sha256 = C.sha256,\n"
    "  invoke = invoke, invoke_all = invoke_all,\n"
    "  embed = function(name, input) return embed_all(name, { input })[1] end,\n"
    "  embed_all = embed_all,\n"
    "  generate = generate,\n"
    "}\n"
    "return readonly(M, 'mmpipe'), function(...) C.log('info', ...) end\n";

/* call(input, opts): hands the operation to the lane and yields; the lane
 * resumes with (true, result) or (false, message). */
static int l_tool_call(lua_State *L) {
        dispatcher_t *d = lua_touserdata(L, lua_upvalueindex(1));
        const mmp_plugin_inst_t *inst = lua_touserdata(L, lua_upvalueindex(2));
        const mmp_plugin_op_t *op = lua_touserdata(L, lua_upvalueindex(3));
        mmp_value_t *input = NULL, *opts = NULL;
        char err[512];

        if (!d->fn || lua_pushthread(L)) {
                lua_pop(L, 1);
                lua_pushboolean(L, 0);
                lua_pushliteral(L, "plugin operations can only be called from a running handler");
                return 2;
        }
        lua_pop(L, 1);
        if (mmp_lua_to_value(L, 1, "input", &input, err, sizeof(err)) ||
            (!lua_isnoneornil(L, 2) && !lua_istable(L, 2) &&
             (snprintf(err, sizeof(err), "opts must be a table, got a %s", luaL_typename(L, 2)), 1)) ||
            mmp_lua_to_value(L, 2, "opts", &opts, err, sizeof(err))) {
                mmp_value_free(input);
                lua_pushboolean(L, 0);
                lua_pushstring(L, err);
                return 2;
        }
        if (d->fn(d->ud, L, inst, op, input, opts, err, sizeof(err))) {
                lua_pushboolean(L, 0);
                lua_pushstring(L, err);
                return 2;
        }
        return lua_yield(L, 0);
}

/* An optional string field of the table at idx, copied. */
static char *opt_str(lua_State *L, int idx, const char *key) {
        char *v = NULL;
        if (lua_type(L, idx) != LUA_TTABLE)
                return NULL;
        lua_getfield(L, idx, key);
        if (lua_type(L, -1) == LUA_TSTRING)
                v = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
        return v;
}

/* Fills one request from {endpoint=, body=, opts=} (or {endpoint, body, opts}). */
static int read_request(lua_State *L, int idx, int i, mmp_invoke_request_t *r, char *err, size_t n) {
        const char *s;
        size_t len;
        lua_getfield(L, idx, "endpoint");
        if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                lua_rawgeti(L, idx, 1);
        }
        if (lua_type(L, -1) != LUA_TSTRING) {
                snprintf(err, n, "request %d: the endpoint must be a name (string)", i);
                lua_pop(L, 1);
                return -1;
        }
        r->endpoint = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
        lua_getfield(L, idx, "opts");
        if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                lua_rawgeti(L, idx, 3);
        }
        int oidx = lua_gettop(L);
        r->content_type = opt_str(L, oidx, "content_type");
        r->accept = opt_str(L, oidx, "accept");
        r->custom_attributes = opt_str(L, oidx, "custom_attributes");
        r->target_model = opt_str(L, oidx, "target_model");
        r->target_variant = opt_str(L, oidx, "target_variant");
        r->inference_id = opt_str(L, oidx, "inference_id");
        lua_getfield(L, idx, "body");
        if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                lua_rawgeti(L, idx, 2);
        }
        if (lua_type(L, -1) == LUA_TSTRING) {
                s = lua_tolstring(L, -1, &len);
                r->body = malloc(len + 1);
                memcpy(r->body, s, len);
                r->body[len] = '\0';
                r->len = len;
        } else if (lua_type(L, -1) == LUA_TTABLE) { /* JSON */
                char jerr[256];
                json_t *j = mmp_lua_to_json(L, -1, "body", jerr, sizeof(jerr));
                if (!j) {
                        snprintf(err, n, "request %d: %s", i, jerr);
                        lua_pop(L, 2);
                        return -1;
                }
                r->body = json_dumps(j, JSON_COMPACT);
                r->len = strlen(r->body);
                json_decref(j);
                if (!r->content_type)
                        r->content_type = strdup("application/json");
        } else if (lua_type(L, -1) == LUA_TUSERDATA) { /* a blob: its bytes and type */
                mmp_value_t **ud = luaL_checkudata(L, -1, MMP_LUA_BLOB_MT);
                const char *ct;
                const void *data = mmp_blob_data(*ud, &len, &ct);
                r->body = malloc(len + 1);
                memcpy(r->body, data, len);
                r->len = len;
                if (!r->content_type && ct)
                        r->content_type = strdup(ct);
        } else {
                snprintf(err, n, "request %d: the body must be a string, a table (sent as JSON) or a blob, got %s", i,
                         luaL_typename(L, -1));
                lua_pop(L, 2);
                return -1;
        }
        lua_pop(L, 2);
        if (r->len > MMP_INVOKE_MAX_BODY) {
                snprintf(err, n, "endpoint %s: the request body is %zu bytes, over SageMaker's limit of 6 MB (%d bytes)",
                         r->endpoint, r->len, MMP_INVOKE_MAX_BODY);
                return -1;
        }
        return 0;
}

/* invoke_all({request...}): queues every call and yields; the lane
 * resumes with (results, first error or nil). */
static int l_invoke_all(lua_State *L) {
        dispatcher_t *d = lua_touserdata(L, lua_upvalueindex(1));
        char err[512];
        int n, rc = 0;
        mmp_invoke_request_t *reqs;
        luaL_checktype(L, 1, LUA_TTABLE);
        n = (int)lua_objlen(L, 1);
        if (!d->invoke || lua_pushthread(L)) {
                lua_pop(L, 1);
                return luaL_error(L, "inference calls can only be made from a running handler");
        }
        lua_pop(L, 1);
        if (n == 0) {
                lua_newtable(L);
                return 1;
        }
        reqs = calloc((size_t)n, sizeof(*reqs));
        for (int i = 1; i <= n && !rc; i++) {
                lua_rawgeti(L, 1, i);
                if (lua_type(L, -1) != LUA_TTABLE) {
                        snprintf(err, sizeof(err), "request %d must be a table {endpoint, body, opts}", i);
                        rc = -1;
                } else {
                        rc = read_request(L, lua_gettop(L), i, &reqs[i - 1], err, sizeof(err));
                }
                lua_pop(L, 1);
        }
        if (!rc)
                rc = d->invoke(d->ud, L, reqs, n, err, sizeof(err));
        if (rc) {
                for (int i = 0; i < n; i++)
                        mmp_invoke_request_clear(&reqs[i]);
                free(reqs);
                return luaL_error(L, "%s", err);
        }
        free(reqs);
        return lua_yield(L, 0);
}

static int l_set_response_mt(lua_State *L) {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_setfield(L, LUA_REGISTRYINDEX, "mmpipe.response_mt");
        return 0;
}

static int l_log(lua_State *L) {
        int level = mmp_log_level_parse(luaL_checkstring(L, 1));
        luaL_Buffer b;
        char area[256];
        lua_Debug ar;
        int n = lua_gettop(L);

        /* Name the script and line that logged: two levels up (wrapper, caller). */
        snprintf(area, sizeof(area), "lua");
        if (lua_getstack(L, 2, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
                snprintf(area, sizeof(area), "lua:%s:%d", ar.short_src, ar.currentline);
        luaL_buffinit(L, &b);
        for (int i = 2; i <= n; i++) {
                if (i > 2)
                        luaL_addchar(&b, ' ');
                lua_getglobal(L, "tostring");
                lua_pushvalue(L, i);
                lua_call(L, 1, 1);
                luaL_addvalue(&b);
        }
        luaL_pushresult(&b);
        mmp_log(level < 0 ? MMP_LOG_INFO : (mmp_log_level_t)level, area, "%s", lua_tostring(L, -1));
        return 0;
}

static int l_json_encode(lua_State *L) {
        char err[512];
        json_t *j;
        char *s;
        luaL_checkany(L, 1);
        if (!(j = mmp_lua_to_json(L, 1, "", err, sizeof(err))))
                return luaL_error(L, "mmpipe.json.encode: %s", err);
        s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(j);
        if (!s)
                return luaL_error(L, "mmpipe.json.encode: out of memory");
        lua_pushstring(L, s);
        free(s);
        return 1;
}

static int l_json_decode(lua_State *L) {
        size_t len;
        const char *s = luaL_checklstring(L, 1, &len);
        json_error_t e;
        json_t *j = json_loadb(s, len, JSON_DECODE_ANY, &e);
        if (!j)
                return luaL_error(L, "mmpipe.json.decode: line %d column %d: %s", e.line, e.column, e.text);
        mmp_lua_push_json(L, j);
        json_decref(j);
        return 1;
}

static int l_sha256(lua_State *L) {
        size_t len;
        const char *s = luaL_checklstring(L, 1, &len);
        uint8_t digest[32];
        char hex[65];
        mmp_sha256(s, len, digest);
        mmp_hex(digest, 32, hex);
        lua_pushstring(L, hex);
        return 1;
}

static int l_b64_encode(lua_State *L) {
        size_t len;
        const char *s = luaL_checklstring(L, 1, &len);
        char *out = mmp_b64_encode(s, len, NULL);
        lua_pushstring(L, out ? out : "");
        free(out);
        return 1;
}

static int l_b64_decode(lua_State *L) {
        size_t len, olen;
        const char *s = luaL_checklstring(L, 1, &len);
        char *out = mmp_b64_decode(s, len, &olen);
        if (!out)
                return luaL_error(L, "mmpipe.base64.decode: invalid base64 input");
        lua_pushlstring(L, out, olen);
        free(out);
        return 1;
}

/* Fields a pipeline table may have, and what each must be. */
static int check_pipeline_table(lua_State *L, int idx) {
        static const char *const known[] = {"name", "match", "destination", "handler", "description", "fetch", NULL};
        lua_pushnil(L);
        while (lua_next(L, idx)) {
                int ok = 0;
                lua_pop(L, 1);
                for (int i = 0; known[i] && lua_type(L, -1) == LUA_TSTRING; i++)
                        ok |= !strcmp(lua_tostring(L, -1), known[i]);
                if (!ok)
                        return luaL_error(L, "mmpipe.pipeline: unknown field \"%s\" (known: name, match, "
                                             "destination, handler, description, fetch)",
                                          lua_tostring(L, -1));
        }
        lua_getfield(L, idx, "name");
        if (lua_type(L, -1) != LUA_TSTRING || !lua_objlen(L, -1))
                return luaL_error(L, "mmpipe.pipeline: `name` must be a non-empty string");
        lua_getfield(L, idx, "handler");
        if (lua_type(L, -1) != LUA_TFUNCTION)
                return luaL_error(L, "mmpipe.pipeline \"%s\": `handler` must be a function, got %s",
                                  lua_tostring(L, -2), luaL_typename(L, -1));
        lua_getfield(L, idx, "match");
        if (lua_type(L, -1) != LUA_TTABLE)
                return luaL_error(L, "mmpipe.pipeline \"%s\": `match` must be a table such as "
                                     "{ content_type = \"text/*\" }",
                                  lua_tostring(L, -3));
        lua_getfield(L, idx, "destination");
        if (lua_type(L, -1) != LUA_TTABLE)
                return luaL_error(L, "mmpipe.pipeline \"%s\": `destination` must be a table such as "
                                     "{ collection = \"chunks\" }",
                                  lua_tostring(L, -4));
        lua_getfield(L, -1, "collection");
        if (lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "mmpipe.pipeline \"%s\": `destination.collection` must be a string",
                                  lua_tostring(L, -5));
        lua_pop(L, 5);
        return 0;
}

/* mmpipe.pipeline{...}: checks the table now, so mistakes point at the
 * line that made it, and marks it as a pipeline. */
static int l_pipeline(lua_State *L) {
        char err[512];
        mmp_pipeline_t *def = NULL;
        luaL_checktype(L, 1, LUA_TTABLE);
        check_pipeline_table(L, 1);
        if (mmp_lua_pipeline_from_table(L, 1, NULL, &def, NULL, err, sizeof(err)))
                return luaL_error(L, "%s", err);
        mmp_pipeline_free(def);
        lua_getfield(L, LUA_REGISTRYINDEX, "mmpipe.pipelines");
        lua_pushvalue(L, 1);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
        lua_pop(L, 1);
        lua_settop(L, 1);
        return 1;
}

static int read_strlist(lua_State *L, int idx, const char *field, mmp_strlist_t *out, char *err, size_t n) {
        lua_getfield(L, idx, field);
        if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                return 0;
        }
        if (lua_type(L, -1) == LUA_TSTRING) {
                out->v = calloc(1, sizeof(char *));
                out->v[0] = strdup(lua_tostring(L, -1));
                out->n = 1;
        } else if (lua_type(L, -1) == LUA_TTABLE) {
                size_t len = lua_objlen(L, -1);
                out->v = calloc(len ? len : 1, sizeof(char *));
                for (size_t i = 1; i <= len; i++) {
                        lua_rawgeti(L, -1, (int)i);
                        if (lua_type(L, -1) != LUA_TSTRING) {
                                snprintf(err, n, "match.%s[%zu] must be a string", field, i);
                                lua_pop(L, 2);
                                return -1;
                        }
                        out->v[out->n++] = strdup(lua_tostring(L, -1));
                        lua_pop(L, 1);
                }
        } else {
                snprintf(err, n, "match.%s must be a string or a list of strings, got %s", field,
                         luaL_typename(L, -1));
                lua_pop(L, 1);
                return -1;
        }
        lua_pop(L, 1);
        return 0;
}

static int read_size(lua_State *L, int idx, const char *field, int64_t *out, char *err, size_t n) {
        lua_getfield(L, idx, field);
        *out = -1;
        if (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) >= 0)
                *out = (int64_t)lua_tonumber(L, -1);
        else if (!lua_isnil(L, -1)) {
                snprintf(err, n, "match.%s must be a non-negative number of bytes", field);
                lua_pop(L, 1);
                return -1;
        }
        lua_pop(L, 1);
        return 0;
}

static int read_match(lua_State *L, int midx, mmp_match_t *m, char *err, size_t n) {
        static const char *const known[] = {"content_type", "key_prefix", "key_suffix", "min_size",
                                            "max_size", NULL};
        lua_pushnil(L);
        while (lua_next(L, midx)) {
                int ok = 0;
                lua_pop(L, 1);
                for (int i = 0; known[i] && lua_type(L, -1) == LUA_TSTRING; i++)
                        ok |= !strcmp(lua_tostring(L, -1), known[i]);
                if (!ok) {
                        snprintf(err, n, "match: unknown rule \"%s\" (known: content_type, key_prefix, "
                                         "key_suffix, min_size, max_size)",
                                 lua_tostring(L, -1));
                        lua_pop(L, 1);
                        return -1;
                }
        }
        return read_strlist(L, midx, "content_type", &m->content_types, err, n) ||
               read_strlist(L, midx, "key_prefix", &m->key_prefixes, err, n) ||
               read_strlist(L, midx, "key_suffix", &m->key_suffixes, err, n) ||
               read_size(L, midx, "min_size", &m->min_size, err, n) ||
               read_size(L, midx, "max_size", &m->max_size, err, n);
}

static int valid_collection(const char *s) {
        if (!*s)
                return 0;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      *s == '_' || *s == '-' || *s == '.'))
                        return 0;
        return 1;
}

static int read_destination(lua_State *L, int didx, mmp_pipeline_t *p, char *err, size_t n) {
        lua_getfield(L, didx, "collection");
        p->collection = strdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
        lua_pop(L, 1);
        if (!valid_collection(p->collection)) {
                snprintf(err, n, "destination.collection \"%s\" must match [A-Za-z0-9_.-]+", p->collection);
                return -1;
        }
        lua_getfield(L, didx, "connection");
        if (lua_type(L, -1) == LUA_TSTRING)
                p->connection = strdup(lua_tostring(L, -1));
        else if (!lua_isnil(L, -1)) {
                snprintf(err, n, "destination.connection must be a connection name (string)");
                lua_pop(L, 1);
                return -1;
        }
        lua_pop(L, 1);
        lua_getfield(L, didx, "indexes");
        if (lua_type(L, -1) == LUA_TTABLE) {
                char jerr[256];
                json_t *ix = mmp_lua_to_json(L, -1, "destination.indexes", jerr, sizeof(jerr));
                if (!ix || !json_is_array(ix)) {
                        snprintf(err, n, "%s", ix ? "destination.indexes must be a list of { keys = {...}, name = ... }" : jerr);
                        json_decref(ix);
                        lua_pop(L, 1);
                        return -1;
                }
                p->indexes = ix;
        } else if (!lua_isnil(L, -1)) {
                snprintf(err, n, "destination.indexes must be a list of { keys = {...}, name = ... }");
                lua_pop(L, 1);
                return -1;
        }
        lua_pop(L, 1);
        lua_getfield(L, didx, "metadata");
        if (lua_type(L, -1) == LUA_TTABLE) {
                char jerr[256];
                if (!(p->metadata = mmp_lua_to_json(L, -1, "destination.metadata", jerr, sizeof(jerr)))) {
                        snprintf(err, n, "%s", jerr);
                        lua_pop(L, 1);
                        return -1;
                }
        } else if (!lua_isnil(L, -1)) {
                snprintf(err, n, "destination.metadata must be a table");
                lua_pop(L, 1);
                return -1;
        }
        lua_pop(L, 1);
        return 0;
}

int mmp_lua_pipeline_from_table(lua_State *L, int idx, const char *file, mmp_pipeline_t **defp,
                                int *handler_ref, char *err, size_t n) {
        mmp_pipeline_t *p;
        char why[512] = "";
        int top = lua_gettop(L);

        if (lua_type(L, idx) != LUA_TTABLE) {
                snprintf(err, n, "%s: must return mmpipe.pipeline { ... }, returned a %s", file,
                         luaL_typename(L, idx));
                return -1;
        }
        if (file) { /* a table made by mmpipe.pipeline, not a look-alike */
                lua_getfield(L, LUA_REGISTRYINDEX, "mmpipe.pipelines");
                lua_pushvalue(L, idx);
                lua_rawget(L, -2);
                int marked = lua_toboolean(L, -1);
                lua_settop(L, top);
                if (!marked) {
                        snprintf(err, n, "%s: must return mmpipe.pipeline { ... }, returned a plain table",
                                 file);
                        return -1;
                }
        }
        p = calloc(1, sizeof(*p));
        lua_getfield(L, idx, "name");
        p->name = strdup(lua_tostring(L, -1));
        lua_getfield(L, idx, "fetch");
        p->fetch = lua_isnil(L, -1) || lua_toboolean(L, -1);
        if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) {
                snprintf(err, n, "%s%spipeline \"%s\": `fetch` must be true or false", file ? file : "",
                         file ? ": " : "", p->name);
                lua_settop(L, top);
                mmp_pipeline_free(p);
                return -1;
        }
        lua_pop(L, 1);
        lua_getfield(L, idx, "match");
        lua_getfield(L, idx, "destination");
        if (read_match(L, top + 2, &p->match, why, sizeof(why)) ||
            read_destination(L, top + 3, p, why, sizeof(why))) {
                snprintf(err, n, "%s%spipeline \"%s\": %s", file ? file : "", file ? ": " : "", p->name, why);
                lua_settop(L, top);
                mmp_pipeline_free(p);
                return -1;
        }
        if (handler_ref) {
                lua_getfield(L, idx, "handler");
                *handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        }
        lua_settop(L, top);
        if (defp)
                *defp = p;
        else
                mmp_pipeline_free(p);
        return 0;
}

/* ops[plugin][op] = C closure of l_tool_call, for the prelude to wrap. */
static void push_ops(lua_State *L, const mmp_plugins_t *plugins, int dispatcher_idx) {
        lua_newtable(L);
        for (size_t i = 0; plugins && i < plugins->n; i++) {
                const mmp_plugin_inst_t *inst = &plugins->v[i];
                lua_newtable(L);
                for (const mmp_plugin_op_t *op = inst->desc->ops; op->name; op++) {
                        lua_pushvalue(L, dispatcher_idx);
                        lua_pushlightuserdata(L, (void *)inst);
                        lua_pushlightuserdata(L, (void *)op);
                        lua_pushcclosure(L, l_tool_call, 3);
                        lua_setfield(L, -2, op->name);
                }
                lua_setfield(L, -2, inst->desc->name);
        }
}

int mmp_lua_api_open(lua_State *L, const mmp_lua_opts_t *opts, char *errstr, size_t n) {
        const mmp_plugins_t *plugins = opts->plugins;
        dispatcher_t *d = lua_newuserdata(L, sizeof(*d));
        int didx = lua_gettop(L);
        d->fn = opts->dispatch;
        d->invoke = opts->invoke;
        d->ud = opts->dispatch_ud;
        lua_pushvalue(L, didx); /* keep it alive for the state's life */
        lua_setfield(L, LUA_REGISTRYINDEX, "mmpipe.dispatcher");

        /* Weak-keyed set of the tables mmpipe.pipeline made. */
        lua_newtable(L);
        lua_newtable(L);
        lua_pushliteral(L, "k");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
        lua_setfield(L, LUA_REGISTRYINDEX, "mmpipe.pipelines");


        if (luaL_loadbuffer(L, prelude, sizeof(prelude) - 1, "=mmpipe")) {
                snprintf(errstr, n, "mmpipe prelude: %s", lua_tostring(L, -1));
                return -1;
        }
        lua_newtable(L);
        static const luaL_Reg fns[] = {{"pipeline", l_pipeline},       {"log", l_log},
                                       {"json_encode", l_json_encode}, {"json_decode", l_json_decode},
                                       {"sha256", l_sha256},           {"b64_encode", l_b64_encode},
                                       {"b64_decode", l_b64_decode},   {NULL, NULL}};
        for (const luaL_Reg *r = fns; r->name; r++) {
                lua_pushcfunction(L, r->func);
                lua_setfield(L, -2, r->name);
        }
        lua_pushlightuserdata(L, NULL);
        lua_setfield(L, -2, "null");
        lua_pushstring(L, MMP_VERSION);
        lua_setfield(L, -2, "version");
        push_ops(L, plugins, didx);
        lua_setfield(L, -2, "ops");
        lua_pushvalue(L, didx);
        lua_pushcclosure(L, l_invoke_all, 1);
        lua_setfield(L, -2, "invoke_all");
        lua_pushcfunction(L, l_set_response_mt);
        lua_setfield(L, -2, "set_response_mt");
        if (opts->models) {
                mmp_lua_push_json(L, opts->models);
                lua_setfield(L, -2, "models");
        }
        if (lua_pcall(L, 1, 2, 0)) {
                snprintf(errstr, n, "mmpipe prelude: %s", lua_tostring(L, -1));
                return -1;
        }
        lua_setfield(L, LUA_REGISTRYINDEX, "mmpipe.print");
        lua_setfield(L, LUA_REGISTRYINDEX, "mmpipe.module");
        lua_pop(L, 1); /* dispatcher */
        return 0;
}

void mmp_lua_push_module(lua_State *L) {
        lua_getfield(L, LUA_REGISTRYINDEX, "mmpipe.module");
}
