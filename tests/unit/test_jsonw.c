/*
 * The compact JSON writer: byte-exact output for escapes, numbers and key
 * order, and a round trip through jansson's parser for arbitrary values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/jsonw.h"

static void expect(const char *json_in, const char *out) {
        json_error_t e;
        json_t *j = json_loads(json_in, JSON_DECODE_ANY, &e);
        size_t len;
        char *s;
        assert_non_null(j);
        s = mmp_json_dumps(j, &len);
        assert_non_null(s);
        assert_string_equal(s, out);
        assert_int_equal(len, strlen(out));
        free(s);
        json_decref(j);
}

static void test_exact_output(void **state) {
        (void)state;
        expect("{\"b\": 1, \"a\": [true, false, null], \"c\": {}}", "{\"b\":1,\"a\":[true,false,null],\"c\":{}}");
        expect("\"quote \\\" back \\\\ nl \\n tab \\t cr \\r bell \\u0007 del \\u007f\"",
               "\"quote \\\" back \\\\ nl \\n tab \\t cr \\r bell \\u0007 del \x7f\"");
        expect("\"\\u00e9t\\u00e9 \\u2603 \\ud83d\\ude00\"", "\"\xc3\xa9t\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80\"");
        expect("[0, -1, 9223372036854775807, -9223372036854775808]",
               "[0,-1,9223372036854775807,-9223372036854775808]");
        expect("[0.1, 1.0, -2.5, 1e300, 0.30000000000000004]", "[0.1,1.0,-2.5,1e+300,0.30000000000000004]");
        expect("[]", "[]");
}

static void test_round_trip(void **state) {
        json_t *j = json_pack("{s:s, s:f, s:I, s:[f,f,f], s:{s:b, s:n}}", "text", "a\x01\"b\\", "pi",
                              3.141592653589793, "big", (json_int_t)1 << 53, "emb", 0.1, -1e-9, 123456.789, "m",
                              "ok", 1, "none");
        char *s = mmp_json_dumps(j, NULL);
        json_error_t e;
        json_t *back = json_loads(s, 0, &e);
        (void)state;
        assert_non_null(back);
        assert_true(json_equal(j, back));
        free(s);
        json_decref(back);
        json_decref(j);
}

static void test_nan_refused(void **state) {
        json_t *j = json_array();
        (void)state;
        json_array_append_new(j, json_real(1.0));
        /* jansson refuses NaN itself; an out-of-range value is the same. */
        assert_null(json_real(0.0 / 0.0));
        char *s = mmp_json_dumps(j, NULL);
        assert_string_equal(s, "[1.0]");
        free(s);
        json_decref(j);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_exact_output),
            cmocka_unit_test(test_round_trip),
            cmocka_unit_test(test_nan_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
