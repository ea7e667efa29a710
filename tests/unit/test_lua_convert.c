/*
 * Lua -> JSON (documents) and Lua -> value (plugin and endpoint calls) when
 * C memory runs out or a field name is not UTF-8: the conversion fails with
 * a reason, frees what it built and leaves the Lua stack as it was. Linked
 * with -Wl,--wrap=realloc,--wrap=strdup (tests/CMakeLists.txt): the Nth
 * call made by mmpipe's own code can be made to fail. The Lua state here is
 * LuaJIT's own (luaL_newstate), whose allocator is not wrapped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lualib.h>

#include "lua/convert.h"
#include "plugin/value.h"

/* Calls left before the one that fails (0: none fails). */
static int realloc_fails_in, strdup_fails_in;

void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);

void *__wrap_realloc(void *p, size_t n) {
        if (realloc_fails_in > 0 && --realloc_fails_in == 0)
                return NULL;
        return __real_realloc(p, n);
}

char *__wrap_strdup(const char *s) {
        if (strdup_fails_in > 0 && --strdup_fails_in == 0)
                return NULL;
        return __real_strdup(s);
}

static int setup(void **state) {
        lua_State *L = luaL_newstate();
        if (!L)
                return -1;
        luaL_openlibs(L);
        *state = L;
        return 0;
}

static int teardown(void **state) {
        lua_close(*state);
        realloc_fails_in = strdup_fails_in = 0;
        return 0;
}

/* Pushes the value of Lua expression src. */
static void push_expr(lua_State *L, const char *src) {
        char code[2048];
        snprintf(code, sizeof(code), "return %s", src);
        assert_int_equal(luaL_dostring(L, code), 0);
}

/* 20 fields: the key list grows past its first 8 slots, then past 16. */
static const char *wide = "(function() local t = {} for i = 1, 20 do t['field' .. i] = i end return t end)()";

static void test_json_key_list_cannot_grow(void **state) {
        lua_State *L = *state;
        char err[256] = "";
        push_expr(L, wide);
        int top = lua_gettop(L);
        realloc_fails_in = 2; /* the first growth works, the second (8 -> 16 slots) fails */
        json_t *j = mmp_lua_to_json(L, -1, "document", err, sizeof(err));
        assert_null(j);
        assert_int_equal(realloc_fails_in, 0);
        assert_string_equal(err, "out of memory at document");
        assert_int_equal(lua_gettop(L), top);
}

static void test_json_key_copy_fails(void **state) {
        lua_State *L = *state;
        char err[256] = "";
        push_expr(L, "{ meta = { a = 1, b = 2, c = 3 } }");
        int top = lua_gettop(L);
        strdup_fails_in = 3; /* "meta", then "a", then "b" */
        json_t *j = mmp_lua_to_json(L, -1, "document", err, sizeof(err));
        assert_null(j);
        assert_string_equal(err, "out of memory at document.meta");
        assert_int_equal(lua_gettop(L), top);
}

static void test_json_converts_once_memory_is_back(void **state) {
        lua_State *L = *state;
        char err[256] = "";
        push_expr(L, wide);
        json_t *j = mmp_lua_to_json(L, -1, "document", err, sizeof(err));
        assert_non_null(j);
        assert_int_equal(json_object_size(j), 20);
        assert_int_equal(json_integer_value(json_object_get(j, "field17")), 17);
        json_decref(j);
}

static void test_json_field_name_not_utf8(void **state) {
        lua_State *L = *state;
        char err[256] = "";
        /* Before: jansson refused the name and the field was dropped without a word. */
        push_expr(L, "{ ok = 1, inner = { ['bad\\255name'] = 2 } }");
        int top = lua_gettop(L);
        json_t *j = mmp_lua_to_json(L, -1, "document", err, sizeof(err));
        assert_null(j);
        assert_string_equal(err, "a field name in document.inner is not valid UTF-8");
        assert_int_equal(lua_gettop(L), top);
}

static void test_value_map_cannot_grow(void **state) {
        lua_State *L = *state;
        char err[256] = "";
        mmp_value_t *v = NULL;
        push_expr(L, wide);
        int top = lua_gettop(L);
        /* The map's first 8 slots (items, keys), then 16 (items): fails at the
         * 9th field. Before, that field and every later one were dropped. */
        realloc_fails_in = 3;
        assert_int_equal(mmp_lua_to_value(L, -1, "input", &v, err, sizeof(err)), -1);
        assert_null(v);
        assert_int_equal(realloc_fails_in, 0);
        assert_non_null(strstr(err, "out of memory at input.field"));
        assert_int_equal(lua_gettop(L), top);
}

static void test_value_array_cannot_grow(void **state) {
        lua_State *L = *state;
        char err[256] = "";
        mmp_value_t *v = NULL;
        push_expr(L, "{ list = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 } }");
        int top = lua_gettop(L);
        realloc_fails_in = 2; /* the list's first 8 slots, then 16: fails at its 9th item */
        assert_int_equal(mmp_lua_to_value(L, -1, "input", &v, err, sizeof(err)), -1);
        assert_null(v);
        assert_string_equal(err, "out of memory at input.list[9]");
        assert_int_equal(lua_gettop(L), top);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_json_key_list_cannot_grow, setup, teardown),
            cmocka_unit_test_setup_teardown(test_json_key_copy_fails, setup, teardown),
            cmocka_unit_test_setup_teardown(test_json_converts_once_memory_is_back, setup, teardown),
            cmocka_unit_test_setup_teardown(test_json_field_name_not_utf8, setup, teardown),
            cmocka_unit_test_setup_teardown(test_value_map_cannot_grow, setup, teardown),
            cmocka_unit_test_setup_teardown(test_value_array_cannot_grow, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
