/*
 * The event object a handler receives. It is a snapshot of the engine's
 * event in one userdata, read like a table: a field becomes a Lua value
 * only when the handler reads it, so a handler that looks at two fields
 * does not pay for seventeen. Owned by Lua (it outlives its handler when
 * kept), and it never points back at the engine's event.
 */
#ifndef MMP_LUA_EVENT_H
#define MMP_LUA_EVENT_H

#include <lua.h>

#include "engine/event.h"

/* Registers the event metatable in L (once per state). */
void mmp_lua_event_register(lua_State *L);
/* Pushes a new event object holding a copy of ev's fields. */
void mmp_lua_event_push(lua_State *L, const mmp_event_t *ev);
/* Is the value at idx an event object? */
int mmp_lua_event_is(lua_State *L, int idx);
/* Pushes the event at idx as a plain table of all its fields (with what the
 * handler set on it); the same table on every call. The event must be one
 * (mmp_lua_event_is). */
void mmp_lua_event_push_table(lua_State *L, int idx);

#endif
