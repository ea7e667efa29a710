/*
 * The handler's event object (event.h). Fields are read through __index
 * from a C snapshot of the event, made into Lua values one at a time as the
 * handler reads them. The first write, pairs() or conversion (the event
 * passed to a plugin or stored in a document) turns it into a plain table,
 * kept as the userdata's environment: from then on that table is the
 * event. Lane thread.
 */
#include "lua/event.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The fields, in the order of lua_event_t's strings, then the others. */
enum {
        F_ID,
        F_BUCKET,
        F_KEY,
        F_URL,
        F_PATH,
        F_EVENT_NAME,
        F_CONTENT_TYPE,
        F_DETECTED,
        F_ETAG,
        F_VERSION,
        F_TOPIC, /* source.topic: not a field of its own */
        N_STRINGS,
        F_MISMATCH = N_STRINGS,
        F_SIZE,
        F_TIME,
        F_SOURCE,
        F_BYTES, /* the method */
};

static const struct {
        const char *name;
        size_t len;
        int f;
} fields[] = {
#define FIELD(s, f) {s, sizeof(s) - 1, f}
    FIELD("id", F_ID),
    FIELD("bucket", F_BUCKET),
    FIELD("key", F_KEY),
    FIELD("url", F_URL),
    FIELD("path", F_PATH),
    FIELD("event_name", F_EVENT_NAME),
    FIELD("content_type", F_CONTENT_TYPE),
    FIELD("detected_content_type", F_DETECTED),
    FIELD("content_type_mismatch", F_MISMATCH),
    FIELD("etag", F_ETAG),
    FIELD("version", F_VERSION),
    FIELD("size", F_SIZE),
    FIELD("time", F_TIME),
    FIELD("source", F_SOURCE),
    FIELD("bytes", F_BYTES),
#undef FIELD
};
#define N_FIELDS (sizeof(fields) / sizeof(*fields))

enum {
        SNAPSHOT, /* no environment table yet */
        CACHED,   /* the environment table holds the values read so far that must keep their identity */
        TABLE,    /* the environment table is the event */
};

/* The metatable's registry key: an address, which is cheaper to look up
 * than a name, once per event. */
static const char event_mt_key;

static void push_mt(lua_State *L) {
        lua_pushlightuserdata(L, (void *)&event_mt_key);
        lua_rawget(L, LUA_REGISTRYINDEX);
}

typedef struct lua_event {
        const char *s[N_STRINGS]; /* into text; NULL reads as nil */
        uint32_t len[N_STRINGS];
        double size, time, partition, offset;
        int source; /* mmp_source_type_t */
        int mismatch;
        int state;
        char text[];
} lua_event_t;

static int field_of(lua_State *L, int k) {
        size_t n;
        const char *s;
        if (lua_type(L, k) != LUA_TSTRING)
                return -1;
        s = lua_tolstring(L, k, &n);
        for (size_t i = 0; i < N_FIELDS; i++)
                if (fields[i].len == n && !memcmp(fields[i].name, s, n))
                        return fields[i].f;
        return -1;
}

static void push_string(lua_State *L, const lua_event_t *e, int f) {
        if (e->s[f])
                lua_pushlstring(L, e->s[f], e->len[f]);
        else
                lua_pushnil(L);
}

/* Pushes the value of field f (not F_BYTES). */
static void push_field(lua_State *L, const lua_event_t *e, int f) {
        switch (f) {
        case F_MISMATCH: lua_pushboolean(L, e->mismatch); return;
        case F_SIZE: lua_pushnumber(L, e->size); return;
        case F_TIME: lua_pushnumber(L, e->time); return;
        case F_SOURCE:
                if (e->source == MMP_SOURCE_KAFKA) {
                        lua_createtable(L, 0, 4);
                        lua_pushliteral(L, "kafka");
                        lua_setfield(L, -2, "type");
                        push_string(L, e, F_TOPIC);
                        lua_setfield(L, -2, "topic");
                        lua_pushnumber(L, e->partition);
                        lua_setfield(L, -2, "partition");
                        lua_pushnumber(L, e->offset);
                        lua_setfield(L, -2, "offset");
                } else if (e->source == MMP_SOURCE_FILE) {
                        lua_createtable(L, 0, 2);
                        lua_pushliteral(L, "file");
                        lua_setfield(L, -2, "type");
                        push_string(L, e, F_KEY);
                        lua_setfield(L, -2, "path");
                } else {
                        lua_pushnil(L);
                }
                return;
        default: push_string(L, e, f); return;
        }
}

/* Pushes the environment table of the event at idx, making it first. */
static void push_env(lua_State *L, int idx, lua_event_t *e) {
        if (e->state != SNAPSHOT) {
                lua_getfenv(L, idx);
                return;
        }
        lua_createtable(L, 0, (int)N_FIELDS);
        lua_pushvalue(L, -1);
        lua_setfenv(L, idx);
        e->state = CACHED;
}

void mmp_lua_event_push_table(lua_State *L, int idx) {
        lua_event_t *e = lua_touserdata(L, idx);
        if (idx < 0)
                idx = lua_gettop(L) + idx + 1;
        push_env(L, idx, e);
        if (e->state == TABLE)
                return;
        for (size_t i = 0; i < N_FIELDS; i++) {
                if (fields[i].f == F_BYTES)
                        continue;
                lua_pushlstring(L, fields[i].name, fields[i].len);
                lua_rawget(L, -2);
                int have = !lua_isnil(L, -1); /* kept: the source table read before */
                lua_pop(L, 1);
                if (have)
                        continue;
                lua_pushlstring(L, fields[i].name, fields[i].len);
                push_field(L, e, fields[i].f);
                lua_rawset(L, -3);
        }
        e->state = TABLE;
}

/* __index, with the bytes method as upvalue 1. */
static int l_index(lua_State *L) {
        lua_event_t *e = lua_touserdata(L, 1);
        int f;
        if (e->state != SNAPSHOT) {
                lua_getfenv(L, 1);
                lua_pushvalue(L, 2);
                lua_rawget(L, -2);
                if (!lua_isnil(L, -1))
                        return 1;
                lua_pop(L, 2);
        }
        f = field_of(L, 2);
        if (f == F_BYTES) {
                lua_pushvalue(L, lua_upvalueindex(1));
                return 1;
        }
        if (f < 0 || e->state == TABLE) { /* a table's missing key */
                lua_pushnil(L);
                return 1;
        }
        push_field(L, e, f);
        if (lua_istable(L, -1)) { /* event.source == event.source, and changes to it stay */
                push_env(L, 1, e);
                lua_pushvalue(L, 2);
                lua_pushvalue(L, -3);
                lua_rawset(L, -3);
                lua_pop(L, 1);
        }
        return 1;
}

static int l_newindex(lua_State *L) {
        mmp_lua_event_push_table(L, 1);
        lua_pushvalue(L, 2);
        lua_pushvalue(L, 3);
        lua_rawset(L, -3);
        return 0;
}

static int l_tostring(lua_State *L) {
        lua_getfield(L, 1, "id");
        lua_pushfstring(L, "event %s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "(no id)");
        return 1;
}

static int l_bytes(lua_State *L) {
        FILE *f;
        luaL_Buffer b;
        char chunk[LUAL_BUFFERSIZE];
        size_t r;
        if (!mmp_lua_event_is(L, 1))
                return luaL_error(L, "event:bytes(): call it on the event, with a colon");
        lua_getfield(L, 1, "path");
        if (!lua_isstring(L, -1))
                return luaL_error(L, "event:bytes(): this event has no fetched file");
        if (!(f = fopen(lua_tostring(L, -1), "rb")))
                return luaL_error(L, "event:bytes(): cannot read %s: %s", lua_tostring(L, -1), strerror(errno));
        luaL_buffinit(L, &b);
        while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0)
                luaL_addlstring(&b, chunk, r);
        fclose(f);
        luaL_pushresult(&b);
        return 1;
}

/* pairs() of the sandbox: an event's fields are its table's; otherwise the
 * usual (upvalue 1 is the built-in next). */
static int l_pairs(lua_State *L) {
        if (mmp_lua_event_is(L, 1)) {
                mmp_lua_event_push_table(L, 1);
                lua_replace(L, 1);
        } else {
                luaL_checktype(L, 1, LUA_TTABLE);
        }
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_pushvalue(L, 1);
        lua_pushnil(L);
        return 3;
}

void mmp_lua_event_register(lua_State *L) {
        lua_pushlightuserdata(L, (void *)&event_mt_key);
        lua_newtable(L);
        lua_pushcfunction(L, l_bytes);
        lua_pushcclosure(L, l_index, 1);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_newindex);
        lua_setfield(L, -2, "__newindex");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
        lua_rawset(L, LUA_REGISTRYINDEX);
        lua_getglobal(L, "next");
        lua_pushcclosure(L, l_pairs, 1);
        lua_setfield(L, LUA_REGISTRYINDEX, "mmpipe.pairs");
}

int mmp_lua_event_is(lua_State *L, int idx) {
        int is;
        if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx))
                return 0;
        push_mt(L);
        is = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        return is;
}

void mmp_lua_event_push(lua_State *L, const mmp_event_t *ev) {
        const char *src[N_STRINGS] = {
            [F_ID] = ev->id,
            [F_BUCKET] = ev->bucket,
            [F_KEY] = ev->key,
            [F_URL] = ev->url,
            [F_PATH] = ev->path,
            [F_EVENT_NAME] = ev->event_name,
            [F_CONTENT_TYPE] = ev->content_type,
            [F_DETECTED] = ev->detected_type,
            [F_ETAG] = ev->etag,
            [F_VERSION] = ev->version,
            [F_TOPIC] = ev->source.type == MMP_SOURCE_KAFKA ? ev->source.topic : NULL,
        };
        size_t len[N_STRINGS], total = 0;
        lua_event_t *e;
        char *p;
        for (int i = 0; i < N_STRINGS; i++) {
                len[i] = src[i] ? strlen(src[i]) : 0;
                total += src[i] ? len[i] + 1 : 0;
        }
        e = lua_newuserdata(L, sizeof(*e) + total);
        p = e->text;
        for (int i = 0; i < N_STRINGS; i++) {
                e->s[i] = NULL;
                e->len[i] = (uint32_t)len[i];
                if (src[i]) {
                        memcpy(p, src[i], len[i] + 1);
                        e->s[i] = p;
                        p += len[i] + 1;
                }
        }
        e->size = (double)ev->size;
        e->time = (double)ev->time_ms / 1000.0;
        e->source = ev->source.type;
        e->partition = ev->source.partition;
        e->offset = (double)ev->source.offset;
        e->mismatch = ev->content_type_mismatch;
        e->state = SNAPSHOT;
        push_mt(L);
        lua_setmetatable(L, -2);
}
