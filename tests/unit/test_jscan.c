/*
 * The JSON scanner: every kind of value, nesting and skipping, member
 * lookup, unescaping, each class of invalid input with its line and column,
 * the depth limit, and agreement with jansson over generated and mutated
 * documents. Single-threaded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "util/jscan.h"

static mmp_jscan_t js;

static void scan_ok(const char *doc) {
        if (mmp_jscan_parse(&js, doc, strlen(doc), 0))
                fail_msg("scan failed: %s\n%s", js.error, doc);
}

static void scan_bad_n(const char *doc, size_t len, const char *want) {
        assert_int_equal(mmp_jscan_parse(&js, doc, len, 0), -1);
        assert_string_equal(js.error, want);
        mmp_jscan_free(&js);
}

static void scan_bad(const char *doc, const char *want) {
        scan_bad_n(doc, strlen(doc), want);
}

/* A string token unescaped (static buffer). */
static const char *str(const mmp_jtok_t *t) {
        static char buf[256];
        assert_int_equal(t->type, MMP_JSCAN_STRING);
        assert_true(t->len < sizeof(buf));
        mmp_jscan_unescape(&js, t, buf);
        return buf;
}

static const char *excerpt(const mmp_jtok_t *t) {
        static char buf[MMP_JSCAN_EXCERPT_SIZE];
        mmp_jscan_excerpt(&js, t, buf);
        return buf;
}

static void test_scalars(void **state) {
        static const struct {
                const char *doc;
                int type, flags;
                unsigned off, len;
        } cases[] = {
            {"\"abc\"", MMP_JSCAN_STRING, 0, 1, 3},
            {" \"\" ", MMP_JSCAN_STRING, 0, 2, 0},
            {"\"a\\nb\"", MMP_JSCAN_STRING, MMP_JSCAN_ESCAPED, 1, 4},
            {"\"\\u0000\"", MMP_JSCAN_STRING, MMP_JSCAN_ESCAPED | MMP_JSCAN_HAS_NUL, 1, 6},
            {"0", MMP_JSCAN_NUMBER, MMP_JSCAN_INTEGER, 0, 1},
            {"-12", MMP_JSCAN_NUMBER, MMP_JSCAN_INTEGER, 0, 3},
            {"\t1.5e-3\n", MMP_JSCAN_NUMBER, 0, 1, 6},
            {"-0.0E+0", MMP_JSCAN_NUMBER, 0, 0, 7},
            {"1e5", MMP_JSCAN_NUMBER, 0, 0, 3},
            {"true", MMP_JSCAN_TRUE, 0, 0, 4},
            {"false", MMP_JSCAN_FALSE, 0, 0, 5},
            {"\r\nnull", MMP_JSCAN_NULL, 0, 2, 4},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                scan_ok(cases[i].doc);
                assert_int_equal(js.ntok, 1);
                assert_int_equal(js.tok[0].type, cases[i].type);
                assert_int_equal(js.tok[0].flags, cases[i].flags);
                assert_int_equal(js.tok[0].off, cases[i].off);
                assert_int_equal(js.tok[0].len, cases[i].len);
                assert_int_equal(js.tok[0].next, 1);
                assert_int_equal(js.tok[0].count, 0);
                mmp_jscan_free(&js);
        }
        /* the root may be required to be a container (jansson's default) */
        assert_int_equal(mmp_jscan_parse(&js, "1", 1, MMP_JSCAN_CONTAINER_ROOT), -1);
        assert_string_equal(js.error, "line 1 column 1: '[' or '{' expected near '1'");
        assert_int_equal(mmp_jscan_parse(&js, " [] ", 4, MMP_JSCAN_CONTAINER_ROOT), 0);
}

static void test_containers(void **state) {
        const char *doc = "{\"a\": [1, {\"x\": null}, []], \"b\": {}, \"c\": \"s\"}";
        const mmp_jtok_t *t = js.tok, *el;
        size_t i;
        scan_ok(doc);
        t = js.tok;
        /* 0:{ 1:"a" 2:[ 3:1 4:{ 5:"x" 6:null 7:[] 8:"b" 9:{} 10:"c" 11:"s" */
        assert_int_equal(js.ntok, 12);
        assert_int_equal(t[0].type, MMP_JSCAN_OBJECT);
        assert_int_equal(t[0].count, 3);
        assert_int_equal(t[0].next, 12);
        assert_int_equal(t[0].off, 0);
        assert_int_equal(t[0].len, strlen(doc));
        assert_int_equal(t[2].type, MMP_JSCAN_ARRAY);
        assert_int_equal(t[2].count, 3);
        assert_int_equal(t[2].next, 8);
        assert_int_equal(t[4].count, 1);
        assert_int_equal(t[4].next, 7);
        assert_int_equal(t[7].count, 0);
        assert_int_equal(t[7].next, 8);
        assert_int_equal(t[9].type, MMP_JSCAN_OBJECT);
        assert_int_equal(t[9].count, 0);
        assert_int_equal(t[9].next, 10);
        /* a container's span is its text */
        size_t n;
        const char *raw = mmp_jscan_raw(&js, &t[4], &n);
        assert_int_equal(n, 11);
        assert_memory_equal(raw, "{\"x\": null}", 11);
        raw = mmp_jscan_raw(&js, &t[11], &n);
        assert_memory_equal(raw, "\"s\"", 3);

        /* skipping a subtree is one step: "a"'s value to "b" */
        assert_int_equal(t[2].next, 8);
        assert_string_equal(str(&t[t[2].next]), "b");

        /* elements in order */
        int types[3], k = 0;
        MMP_JSCAN_EACH(&js, &t[2], el, i) types[k++] = el->type;
        assert_int_equal(k, 3);
        assert_int_equal(types[0], MMP_JSCAN_NUMBER);
        assert_int_equal(types[1], MMP_JSCAN_OBJECT);
        assert_int_equal(types[2], MMP_JSCAN_ARRAY);
        /* members: keys in order, each value just after its key */
        const char *keys[3];
        k = 0;
        MMP_JSCAN_EACH(&js, &t[0], el, i) {
                assert_int_equal(el->type, MMP_JSCAN_STRING);
                keys[k++] = el == &t[1] ? "a" : el == &t[8] ? "b" : el == &t[10] ? "c" : "?";
        }
        assert_int_equal(k, 3);
        assert_string_equal(keys[0], "a");
        assert_string_equal(keys[1], "b");
        assert_string_equal(keys[2], "c");
        MMP_JSCAN_EACH(&js, &t[9], el, i) fail_msg("an empty object has no members");
        mmp_jscan_free(&js);

        /* deeper than the inline tokens: spills to the heap once */
        char big[8192];
        size_t m = 0;
        m += (size_t)snprintf(big + m, sizeof(big) - m, "[");
        for (int j = 0; j < 1000; j++)
                m += (size_t)snprintf(big + m, sizeof(big) - m, "%s[%d]", j ? "," : "", j);
        snprintf(big + m, sizeof(big) - m, "]");
        scan_ok(big);
        assert_int_equal(js.ntok, 2001);
        assert_int_equal(js.tok[0].count, 1000);
        int64_t v;
        const mmp_jtok_t *last = NULL;
        MMP_JSCAN_EACH(&js, &js.tok[0], el, i) last = el;
        assert_int_equal(mmp_jscan_int64(&js, last + 1, &v), 0);
        assert_int_equal(v, 999);
        mmp_jscan_free(&js);

        /* past 128 KiB the heap array doubles: [7,7,...,7] */
        size_t count = 150 * 1024, huge_len = 2 * count + 1;
        char *huge = malloc(huge_len);
        for (size_t j = 0; j < count; j++)
                huge[2 * j] = j ? ',' : '[', huge[2 * j + 1] = '7';
        huge[huge_len - 1] = ']';
        assert_int_equal(mmp_jscan_parse(&js, huge, huge_len, 0), 0);
        assert_int_equal(js.ntok, count + 1);
        assert_int_equal(js.tok[0].count, count);
        assert_int_equal(js.tok[js.ntok - 1].off, huge_len - 2);
        mmp_jscan_free(&js);
        free(huge);

        /* the caller's array is never grown */
        mmp_jtok_t few[4];
        assert_int_equal(mmp_jscan_parse_into(&js, "[1,2,3]", 7, 0, few, 4), 0);
        assert_ptr_equal(js.tok, few);
        assert_int_equal(js.ntok, 4);
        assert_int_equal(mmp_jscan_parse_into(&js, "[1,2,3,4]", 9, 0, few, 4), -1);
        assert_string_equal(js.error, "line 1 column 8: more than 4 values near '4'");
        mmp_jscan_free(&js);
}

static void test_lookup(void **state) {
        const mmp_jtok_t *v;
        scan_ok("{\"name\":1,\"nam\":2,\"names\":3,\"\\u006eame\\u0073\":4,\"k\\\"q\":5,\"caf\\u00e9\":6,"
                "\"\":7,\"dup\":8,\"dup\":9,\"n\\u0000l\":10}");
        const mmp_jtok_t *o = &js.tok[0];
        int64_t n;
        static const struct {
                const char *key;
                size_t len;
                int64_t want;
        } cases[] = {
            {"name", 4, 1}, {"nam", 3, 2},         {"names", 5, 4}, /* the last of two equal keys, one escaped */
            {"k\"q", 3, 5}, {"caf\xc3\xa9", 5, 6}, {"", 0, 7},      {"dup", 3, 9}, {"n\0l", 3, 10},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                v = mmp_jscan_get(&js, o, cases[i].key, cases[i].len);
                assert_non_null(v);
                assert_int_equal(mmp_jscan_int64(&js, v, &n), 0);
                assert_int_equal(n, cases[i].want);
        }
        assert_null(mmp_jscan_gets(&js, o, "na"));
        assert_null(mmp_jscan_gets(&js, o, "namex"));
        assert_null(mmp_jscan_gets(&js, o, "cafe"));
        assert_null(mmp_jscan_get(&js, o, "n", 1));
        /* not an object */
        assert_null(mmp_jscan_gets(&js, mmp_jscan_gets(&js, o, "name"), "x"));
        assert_null(mmp_jscan_gets(&js, NULL, "x"));
        /* several at once: what each single lookup gives */
        static const mmp_jkey_t keys[] = {MMP_JKEY("names"), MMP_JKEY("dup"),         MMP_JKEY("na"),
                                          MMP_JKEY("k\"q"),   MMP_JKEY("caf\xc3\xa9"), MMP_JKEY(""),
                                          MMP_JKEY("name"),    {"nam", 2},              {"cafe", 3}};
        const mmp_jtok_t *got[9];
        mmp_jscan_getv(&js, o, keys, 9, got);
        for (size_t i = 0; i < 9; i++)
                assert_ptr_equal(got[i], mmp_jscan_get(&js, o, keys[i].s, keys[i].n));
        assert_null(got[2]);
        assert_non_null(got[1]);
        assert_ptr_equal(got[7], mmp_jscan_gets(&js, o, "na")); /* the length counts, not the NUL */
        mmp_jscan_getv(&js, mmp_jscan_gets(&js, o, "name"), keys, 9, got);
        for (size_t i = 0; i < 9; i++)
                assert_null(got[i]);
        /* many keys in one pass */
        mmp_jkey_t many[20];
        const mmp_jtok_t *many_got[20];
        for (size_t i = 0; i < 20; i++)
                many[i] = keys[i % 9];
        mmp_jscan_getv(&js, o, many, 20, many_got);
        for (size_t i = 0; i < 20; i++)
                assert_ptr_equal(many_got[i], mmp_jscan_get(&js, o, many[i].s, many[i].n));
        mmp_jscan_free(&js);
}

static void test_unescape(void **state) {
        scan_ok("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"\\u0041\\u00e9\\u20AC\\uD83D\\uDE00x\", \"plain "
                "\xc3\xa9\xe2\x82\xac\", "
                "\"a\\u0000b\", 5]");
        const mmp_jtok_t *t = js.tok;
        const char *why = NULL;
        size_t n;
        assert_string_equal(str(&t[1]), "\"\\/\b\f\n\r\t");
        assert_string_equal(str(&t[2]), "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80x");
        assert_int_equal(t[3].flags, 0);
        assert_string_equal(str(&t[3]), "plain \xc3\xa9\xe2\x82\xac");

        char buf[16];
        assert_int_equal(mmp_jscan_unescape(&js, &t[4], buf), 3);
        assert_memory_equal(buf, "a\0b", 4);
        assert_true(t[4].flags & MMP_JSCAN_HAS_NUL);
        assert_true(mmp_jscan_streq(&js, &t[4], "a\0b", 3));
        assert_false(mmp_jscan_streq(&js, &t[4], "a", 1));

        char *s = mmp_jscan_strdup(&js, &t[2], &n, &why);
        assert_non_null(s);
        assert_int_equal(n, 11);
        assert_string_equal(s, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80x");
        free(s);
        assert_null(mmp_jscan_strdup(&js, &t[4], &n, &why));
        assert_string_equal(why, "holds \\u0000 (a NUL byte, not allowed here)");
        assert_null(mmp_jscan_strdup(&js, &t[5], &n, &why));
        assert_string_equal(why, "not a string");

        assert_true(mmp_jscan_streq(&js, &t[2], "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80x", 11));
        assert_false(mmp_jscan_streq(&js, &t[2], "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10));
        assert_false(mmp_jscan_streq(&js, &t[2], "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80xy", 12));
        assert_false(mmp_jscan_streq(&js, &t[5], "5", 1));
        mmp_jscan_free(&js);
}

static void test_numbers(void **state) {
        int64_t v;
        scan_ok("[9223372036854775807, -9223372036854775808, 9223372036854775808, -9223372036854775809, -0, "
                "123456789012345678901234567890, 1e400, -1.5e-400, 1.0, 1E2, 0.5]");
        const mmp_jtok_t *t = js.tok;
        assert_int_equal(mmp_jscan_int64(&js, &t[1], &v), 0);
        assert_true(v == INT64_MAX);
        assert_int_equal(mmp_jscan_int64(&js, &t[2], &v), 0);
        assert_true(v == INT64_MIN);
        assert_int_equal(mmp_jscan_int64(&js, &t[3], &v), -1);
        assert_int_equal(mmp_jscan_int64(&js, &t[4], &v), -1);
        assert_int_equal(mmp_jscan_int64(&js, &t[5], &v), 0);
        assert_int_equal(v, 0);
        /* big numbers are valid JSON: only reading them as int64 fails */
        assert_int_equal(t[6].flags, MMP_JSCAN_INTEGER);
        assert_int_equal(mmp_jscan_int64(&js, &t[6], &v), -1);
        assert_string_equal(excerpt(&t[6]), "123456789012345678901234567890");
        assert_int_equal(t[7].type, MMP_JSCAN_NUMBER);
        assert_int_equal(t[8].type, MMP_JSCAN_NUMBER);
        for (int i = 9; i <= 11; i++) {
                assert_int_equal(t[i].flags, 0);
                assert_int_equal(mmp_jscan_int64(&js, &t[i], &v), -1);
        }
        assert_int_equal(mmp_jscan_int64(&js, &t[0], &v), -1);
        mmp_jscan_free(&js);
}

static void test_excerpt(void **state) {
        scan_ok("[ {\"a\" : [1, 2 ] ,\n \"b c\":\"x y\" }, \"0123456789012345678901234567890123456789\", "
                "\"012345678901234567890123456789012345\xc3\xa9z\", \"tab\\t\"]");
        const mmp_jtok_t *t = js.tok;
        assert_string_equal(excerpt(&t[1]), "{\"a\":[1,2],\"b c\":\"x y\"}");
        /* 42 bytes: cut to 37 and "..." */
        assert_string_equal(excerpt(&t[t[1].next]), "\"012345678901234567890123456789012345...");
        /* never inside a UTF-8 sequence */
        assert_string_equal(excerpt(&t[t[t[1].next].next]), "\"012345678901234567890123456789012345...");
        assert_string_equal(excerpt(&t[js.ntok - 1]), "\"tab\\t\"");
        mmp_jscan_free(&js);
}

static void test_invalid(void **state) {
        static const struct {
                const char *doc, *want;
        } cases[] = {
            /* structure */
            {"", "line 1 column 0: value expected near end of file"},
            {" \n ", "line 2 column 1: value expected near end of file"},
            {"[", "line 1 column 1: ']' expected near end of file"},
            {"[1", "line 1 column 2: ']' expected near end of file"},
            {"[1,", "line 1 column 3: value expected near end of file"},
            {"[1,]", "line 1 column 4: value expected near ']'"},
            {"[,1]", "line 1 column 2: value expected near ','"},
            {"[1 2]", "line 1 column 4: ',' or ']' expected near '2'"},
            {"[1}", "line 1 column 3: ',' or ']' expected near '}'"},
            {"{", "line 1 column 1: string or '}' expected near end of file"},
            {"{\"a\"", "line 1 column 4: ':' expected near end of file"},
            {"{\"a\":", "line 1 column 5: value expected near end of file"},
            {"{\"a\":1", "line 1 column 6: '}' expected near end of file"},
            {"{\"a\":1,}", "line 1 column 8: string expected near '}'"},
            {"{1:2}", "line 1 column 2: string or '}' expected near '1'"},
            {"{\"a\" 1}", "line 1 column 6: ':' expected near '1'"},
            {"{\"a\":1]", "line 1 column 7: ',' or '}' expected near ']'"},
            {"{'a':1}", "line 1 column 2: string or '}' expected near ''a''"},
            {"]", "line 1 column 1: value expected near ']'"},
            /* trailing garbage */
            {"{} {}", "line 1 column 4: end of file expected near '{'"},
            {"1 2", "line 1 column 3: end of file expected near '2'"},
            {"[]]", "line 1 column 3: end of file expected near ']'"},
            {"\"a\" x", "line 1 column 5: end of file expected near 'x'"},
            /* literals */
            {"tru", "line 1 column 1: invalid literal near 'tru'"},
            {"[truex]", "line 1 column 2: invalid literal near 'truex'"},
            {"[nul]", "line 1 column 2: invalid literal near 'nul'"},
            {"True", "line 1 column 1: value expected near 'True'"},
            {"[undefined]", "line 1 column 2: value expected near 'undefined'"},
            {"[NaN]", "line 1 column 2: value expected near 'NaN'"},
            /* numbers */
            {"[01]", "line 1 column 2: invalid number (a leading zero) near '01'"},
            {"[-01]", "line 1 column 2: invalid number (a leading zero) near '-01'"},
            {"[1.]", "line 1 column 2: invalid number (no digit after '.') near '1.'"},
            {"[.5]", "line 1 column 2: value expected near '.5'"},
            {"[1e]", "line 1 column 2: invalid number (no digit in the exponent) near '1e'"},
            {"[1e+]", "line 1 column 2: invalid number (no digit in the exponent) near '1e+'"},
            {"[-]", "line 1 column 2: invalid number near '-'"},
            {"[+1]", "line 1 column 2: value expected near '+1'"},
            {"[0x1F]", "line 1 column 2: invalid number near '0x1F'"},
            {"[1.2.3]", "line 1 column 2: invalid number near '1.2.3'"},
            {"[Infinity]", "line 1 column 2: value expected near 'Infinity'"},
            {"[-Infinity]", "line 1 column 2: invalid number near '-Infinity'"},
            /* strings */
            {"\"abc", "line 1 column 4: unterminated string near '\"abc'"},
            {"\"ab\\", "line 1 column 4: unterminated string near '\"ab\\'"},
            {"[\"a\\x\"]", "line 1 column 4: invalid escape '\\x' near '\"a\\x'"},
            {"[\"a\\'\"]", "line 1 column 4: invalid escape '\\'' near '\"a\\''"},
            {"[\"\\u12\"]", "line 1 column 3: invalid \\u escape near '\"\\u12\"]'"},
            {"[\"\\u12G4\"]", "line 1 column 3: invalid \\u escape near '\"\\u12G4'"},
            {"[\"\\uD83D\"]", "line 1 column 3: invalid Unicode '\\uD83D' (a high surrogate without its low one) near "
                              "'\"\\uD83D'"},
            {"[\"\\uD83D\\u0041\"]",
             "line 1 column 3: invalid Unicode '\\uD83D' (a high surrogate without its low one) near '\"\\uD83D'"},
            {"[\"\\uD83Dx\"]",
             "line 1 column 3: invalid Unicode '\\uD83D' (a high surrogate without its low one) near '\"\\uD83D'"},
            {"[\"\\uDE00\"]", "line 1 column 3: invalid Unicode '\\uDE00' (a lone low surrogate) near '\"\\uDE00'"},
            {"[\"a\tb\"]", "line 1 column 4: control character 0x09 in a string near '\"a'"},
            {"[\"a\nb\"]", "line 1 column 4: control character 0x0a in a string near '\"a'"},
            {"[\"\x1f\"]", "line 1 column 3: control character 0x1f in a string near '\"'"},
            /* UTF-8: overlong forms, surrogates, past U+10FFFF, stray and cut bytes */
            {"[\"\xc0\xaf\"]", "line 1 column 3: invalid UTF-8 byte 0xc0 in a string near '\"\\xc0'"},
            {"[\"\xc1\xbf\"]", "line 1 column 3: invalid UTF-8 byte 0xc1 in a string near '\"\\xc1'"},
            {"[\"\xe0\x80\xaf\"]", "line 1 column 3: invalid UTF-8 byte 0xe0 in a string near '\"\\xe0'"},
            {"[\"\xf0\x80\x80\xaf\"]", "line 1 column 3: invalid UTF-8 byte 0xf0 in a string near '\"\\xf0'"},
            {"[\"\xed\xa0\x80\"]", "line 1 column 3: invalid UTF-8 byte 0xed in a string near '\"\\xed'"},
            {"[\"\xed\xbf\xbf\"]", "line 1 column 3: invalid UTF-8 byte 0xed in a string near '\"\\xed'"},
            {"[\"\xf4\x90\x80\x80\"]", "line 1 column 3: invalid UTF-8 byte 0xf4 in a string near '\"\\xf4'"},
            {"[\"\xf5\x80\x80\x80\"]", "line 1 column 3: invalid UTF-8 byte 0xf5 in a string near '\"\\xf5'"},
            {"[\"\xff\"]", "line 1 column 3: invalid UTF-8 byte 0xff in a string near '\"\\xff'"},
            {"[\"a\x80\"]", "line 1 column 4: invalid UTF-8 byte 0x80 in a string near '\"a\\x80'"},
            {"[\"\xc3\"]", "line 1 column 3: invalid UTF-8 byte 0xc3 in a string near '\"\\xc3'"},
            {"[\"\xe2\x82\"]", "line 1 column 3: invalid UTF-8 byte 0xe2 in a string near '\"\\xe2'"},
            {"\"\xe2\x82", "line 1 column 2: invalid UTF-8 byte 0xe2 in a string near '\"\\xe2'"},
            {"[\xc3\xa9]", "line 1 column 2: value expected near '\xc3\xa9'"},
            {"\xef\xbb\xbf{}", "line 1 column 2: byte order mark (U+FEFF) before the document near '{'"},
            /* positions count characters, not bytes, line by line */
            {"[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\", x]", "line 1 column 9: value expected near 'x'"},
            {"{\n  \"a\": 1,\n  \"b\": [tru]\n}", "line 3 column 9: invalid literal near 'tru'"},
            {"[\r\n1\r\n,\r\n]", "line 4 column 1: value expected near ']'"},
            /* a long token is cut in the message */
            {"[\"abcdefghijklmnopqrstuvwxyz\\q\"]",
             "line 1 column 29: invalid escape '\\q' near '\"abcdefghijklmnopqrstuvw...'"},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                if (!mmp_jscan_parse(&js, cases[i].doc, strlen(cases[i].doc), 0))
                        fail_msg("accepted: %s", cases[i].doc);
                if (strcmp(js.error, cases[i].want))
                        fail_msg("for %s\n got: %s\nwant: %s", cases[i].doc, js.error, cases[i].want);
                mmp_jscan_free(&js);
        }

        /* NUL bytes: input is bounded by its length, not by a NUL */
        scan_bad_n("[1,\0]", 5, "line 1 column 4: NUL byte where a value was expected near '\\x00'");
        scan_bad_n("[\"a\0\"]", 6, "line 1 column 4: control character 0x00 in a string near '\"a'");
        scan_bad_n("{}\0", 3, "line 1 column 3: NUL byte after the document near '\\x00'");
        scan_bad_n("[1]", 2, "line 1 column 2: ']' expected near end of file");
        assert_int_equal(mmp_jscan_parse(&js, "[1]xyz", 3, 0), 0);
        mmp_jscan_free(&js);
}

static void test_depth(void **state) {
        /* 64 levels, objects and arrays in turn: {"":[{"":[ ... 1 ... ]}]} */
        char doc[6 * MMP_JSCAN_MAX_DEPTH + 8];
        size_t n = 0;
        for (int i = 0; i < MMP_JSCAN_MAX_DEPTH; i++)
                n += (size_t)snprintf(doc + n, sizeof(doc) - n, "%s", i % 2 ? "[" : "{\"\":");
        doc[n++] = '1';
        for (int i = MMP_JSCAN_MAX_DEPTH - 1; i >= 0; i--)
                doc[n++] = i % 2 ? ']' : '}';
        doc[n] = '\0';
        scan_ok(doc);
        assert_int_equal(js.ntok, MMP_JSCAN_MAX_DEPTH + MMP_JSCAN_MAX_DEPTH / 2 + 1);
        assert_int_equal(js.tok[0].next, js.ntok);
        mmp_jscan_free(&js);

        /* one more level fails where it opens */
        char deep[MMP_JSCAN_MAX_DEPTH + 3];
        memset(deep, '[', MMP_JSCAN_MAX_DEPTH + 1);
        deep[MMP_JSCAN_MAX_DEPTH + 1] = '\0';
        scan_bad(deep, "line 1 column 65: nesting deeper than 64 levels near '['");
        deep[MMP_JSCAN_MAX_DEPTH] = '\0';
        scan_bad(deep, "line 1 column 64: ']' expected near end of file");
}

/* ---- agreement with jansson ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (uint32_t)(rng % n);
}

typedef struct text {
        char *p;
        size_t len, cap;
} text_t;

static void put(text_t *t, const char *s, size_t n) {
        if (t->len + n + 1 > t->cap) {
                t->cap = (t->len + n + 1) * 2;
                assert_non_null(t->p = realloc(t->p, t->cap));
        }
        memcpy(t->p + t->len, s, n);
        t->len += n;
        t->p[t->len] = '\0';
}

static void puts_(text_t *t, const char *s) {
        put(t, s, strlen(s));
}

static void gen_ws(text_t *t) {
        static const char *const ws[] = {"", "", "", " ", "\n", "\t", "\r\n  "};
        puts_(t, ws[rnd(7)]);
}

static void gen_string(text_t *t, int key) {
        static const char *const plain[] = {"a", "Key", " ", "photos/2024/", "abcdefghijklmnop", "\x7f", "'", "{",
                                            "]", ":",   ","};
        static const char *const escapes[] = {
            "\\\"",    "\\\\",           "\\/",    "\\b", "\\f", "\\n", "\\r", "\\t", "\\u0041", "\\u00e9", "\\u20AC",
            "\\uFFFF", "\\uD83D\\uDE00", "\\u0000"};
        static const char *const utf8[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf"};
        /* some long enough to take the word-at-a-time path */
        int n = (int)(rnd(4) ? rnd(6) : rnd(24));
        puts_(t, "\"");
        for (int i = 0; i < n; i++) {
                int group = (int)rnd(3);
                const char *piece = group == 0   ? plain[rnd(sizeof(plain) / sizeof(plain[0]))]
                                    : group == 1 ? escapes[rnd(sizeof(escapes) / sizeof(escapes[0]))]
                                                 : utf8[rnd(sizeof(utf8) / sizeof(utf8[0]))];
                /* jansson keeps no key with a NUL */
                puts_(t, key && !strcmp(piece, "\\u0000") ? "\\u0001" : piece);
        }
        puts_(t, "\"");
}

static void gen_number(text_t *t) {
        char b[64];
        int k = 0;
        if (rnd(3) == 0)
                b[k++] = '-';
        if (rnd(4) == 0) {
                b[k++] = '0';
        } else {
                int digits = 1 + (int)rnd(19);
                b[k++] = (char)('1' + rnd(9));
                for (int i = 1; i < digits; i++)
                        b[k++] = (char)('0' + rnd(10));
        }
        if (rnd(3) == 0) {
                b[k++] = '.';
                for (int i = 0, d = 1 + (int)rnd(5); i < d; i++)
                        b[k++] = (char)('0' + rnd(10));
        }
        if (rnd(4) == 0)
                k += snprintf(b + k, sizeof(b) - (size_t)k, "%c%s%u", rnd(2) ? 'e' : 'E',
                              rnd(2)   ? "-"
                              : rnd(2) ? "+"
                                       : "",
                              rnd(60));
        put(t, b, (size_t)k);
}

static void gen_value(text_t *t, int depth) {
        int kind = (int)rnd(depth >= 5 ? 5 : 8);
        int n;
        switch (kind) {
        case 0:
                gen_string(t, 0);
                break;
        case 1:
                gen_number(t);
                break;
        case 2:
                puts_(t, "true");
                break;
        case 3:
                puts_(t, "false");
                break;
        case 4:
                puts_(t, "null");
                break;
        case 5:
        case 6:
                puts_(t, "{");
                n = (int)rnd(5);
                for (int i = 0; i < n; i++) {
                        gen_ws(t);
                        gen_string(t, 1);
                        gen_ws(t);
                        puts_(t, ":");
                        gen_ws(t);
                        gen_value(t, depth + 1);
                        gen_ws(t);
                        if (i + 1 < n)
                                puts_(t, ",");
                }
                puts_(t, "}");
                break;
        default:
                puts_(t, "[");
                n = (int)rnd(5);
                for (int i = 0; i < n; i++) {
                        gen_ws(t);
                        gen_value(t, depth + 1);
                        gen_ws(t);
                        if (i + 1 < n)
                                puts_(t, ",");
                }
                puts_(t, "]");
        }
}

static void mutate(text_t *t) {
        static const char bytes[] =
            "{}[],:\"\\ \t\nu0123456789eE.-+tfnlx\x00\x01\x1f\x7f\x80\xbf\xc0\xc3\xe0\xed\xf0\xf4\xf5\xff";
        size_t at = t->len ? rnd((uint32_t)t->len) : 0;
        switch (rnd(5)) {
        case 0: /* replace a byte */
                if (t->len)
                        t->p[at] = bytes[rnd(sizeof(bytes) - 1)];
                break;
        case 1: /* insert a byte */
                put(t, " ", 1);
                memmove(t->p + at + 1, t->p + at, t->len - at - 1);
                t->p[at] = bytes[rnd(sizeof(bytes) - 1)];
                break;
        case 2: /* delete a byte */
                if (t->len) {
                        memmove(t->p + at, t->p + at + 1, t->len - at - 1);
                        t->len--;
                }
                break;
        case 3: /* cut short */
                t->len = at;
                break;
        default: /* swap two bytes */
                if (t->len) {
                        size_t b = rnd((uint32_t)t->len);
                        char c = t->p[at];
                        t->p[at] = t->p[b];
                        t->p[b] = c;
                }
        }
}

/* The scanner's reading of t equals jansson's value j. */
static void same(const mmp_jtok_t *t, const json_t *j, const char *doc) {
        char num[512];
        size_t n, i;
        const char *raw;
        const mmp_jtok_t *el;
        switch (t->type) {
        case MMP_JSCAN_OBJECT: {
                const char *key;
                json_t *v;
                if (!json_is_object(j))
                        fail_msg("object vs jansson type %d in %s", json_typeof(j), doc);
                /* every key either way; repeated keys read the last value */
                MMP_JSCAN_EACH(&js, t, el, i) {
                        char *k = malloc(el->len + 1);
                        size_t kn = mmp_jscan_unescape(&js, el, k);
                        json_t *jv = json_object_getn(j, k, kn);
                        if (!jv)
                                fail_msg("key %s missing in jansson's object: %s", k, doc);
                        same(mmp_jscan_get(&js, t, k, kn), jv, doc);
                        free(k);
                }
                json_object_foreach((json_t *)j, key, v) {
                        if (!mmp_jscan_get(&js, t, key, strlen(key)))
                                fail_msg("key %s missing in the scan of %s", key, doc);
                }
                assert_true(json_object_size(j) <= t->count);
                break;
        }
        case MMP_JSCAN_ARRAY:
                if (!json_is_array(j) || json_array_size(j) != t->count)
                        fail_msg("array vs jansson type %d in %s", json_typeof(j), doc);
                MMP_JSCAN_EACH(&js, t, el, i) same(el, json_array_get(j, i), doc);
                break;
        case MMP_JSCAN_STRING: {
                char *s = malloc(t->len + 1);
                n = mmp_jscan_unescape(&js, t, s);
                if (!json_is_string(j) || json_string_length(j) != n || memcmp(json_string_value(j), s, n))
                        fail_msg("string %s differs from jansson's in %s", s, doc);
                assert_int_equal(!!(t->flags & MMP_JSCAN_HAS_NUL), !!memchr(s, '\0', n));
                free(s);
                break;
        }
        case MMP_JSCAN_NUMBER:
                raw = mmp_jscan_raw(&js, t, &n);
                assert_true(n < sizeof(num));
                memcpy(num, raw, n);
                num[n] = '\0';
                if (!json_is_real(j) || strtod(num, NULL) != json_real_value(j))
                        fail_msg("number %s differs from jansson's in %s", num, doc);
                break;
        case MMP_JSCAN_TRUE:
                assert_true(json_is_true(j));
                break;
        case MMP_JSCAN_FALSE:
                assert_true(json_is_false(j));
                break;
        case MMP_JSCAN_NULL:
                assert_true(json_is_null(j));
                break;
        default:
                fail_msg("token type %d", t->type);
        }
}

/* Printable for a failure message. */
static const char *show(const char *p, size_t n) {
        static char buf[4096];
        size_t k = 0;
        for (size_t i = 0; i < n && k + 5 < sizeof(buf); i++)
                k += (size_t)(p[i] >= 0x20 && p[i] < 0x7f
                                  ? snprintf(buf + k, sizeof(buf) - k, "%c", p[i])
                                  : snprintf(buf + k, sizeof(buf) - k, "\\x%02x", (unsigned char)p[i]));
        buf[k] = '\0';
        return buf;
}

/* A NUL byte at pos just after a literal or a number (jansson drops it). */
static int nul_after_token(const text_t *t, size_t pos) {
        char c = pos > 0 && pos < t->len && !t->p[pos] ? t->p[pos - 1] : '\0';
        return ((c | 32) >= 'a' && (c | 32) <= 'z') || (c >= '0' && c <= '9');
}

static void test_against_jansson(void **state) {
        /* Any root (RFC 8259), \u0000 allowed, every number a double so that
         * jansson's int64 overflow is not a difference. */
        const size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL;
        int valid = 0, invalid = 0, skipped = 0;
        text_t t = {0};
        for (int round = 0; round < 400; round++) {
                t.len = 0;
                gen_ws(&t);
                gen_value(&t, 0);
                gen_ws(&t);
                for (int variant = 0; variant < 3; variant++) {
                        json_error_t jerr;
                        json_t *j;
                        int rc;
                        if (variant)
                                for (int k = 0, m = 1 + (int)rnd(3); k < m; k++)
                                        mutate(&t);
                        j = json_loadb(t.p, t.len, flags, &jerr);
                        rc = mmp_jscan_parse(&js, t.p, t.len, 0);
                        /* Known differences: jansson keeps no key with a NUL and no
                         * double past DBL_MAX, and nests deeper; and its lexer
                         * drops a NUL byte just after a literal or a number
                         * ("[false\0]" passes, "[\"a\"\0]" does not), where the
                         * scanner refuses every NUL byte outside a string. */
                        if (!j && (json_error_code(&jerr) == json_error_null_byte_in_key ||
                                   json_error_code(&jerr) == json_error_numeric_overflow)) {
                                skipped++;
                        } else if (rc && strstr(js.error, "nesting deeper")) {
                                skipped++;
                        } else if (j && rc && nul_after_token(&t, js.position)) {
                                skipped++;
                        } else if (!j != !!rc) {
                                fail_msg("jansson %s, jscan %s: %s\n%s", j ? "accepts" : jerr.text,
                                         rc ? js.error : "accepts", show(t.p, t.len), "");
                        } else if (j) {
                                valid++;
                                same(&js.tok[0], j, show(t.p, t.len));
                                assert_int_equal(js.tok[0].next, js.ntok);
                        } else {
                                invalid++;
                        }
                        json_decref(j);
                        mmp_jscan_free(&js);
                }
        }
        free(t.p);
        print_message("against jansson: %d valid, %d invalid, %d skipped (known differences)\n", valid, invalid,
                      skipped);
        assert_true(valid >= 300);
        assert_true(invalid >= 300);
}

/* Strings are checked many bytes at a time: a byte that needs care (the
 * closing quote, an escape, a control, DEL, UTF-8 valid or not) at every
 * position of strings of every length up to 40, with the string's end near
 * and far from the buffer's, must read as jansson reads it. */
static void test_string_bytes_at_every_position(void **state) {
        static const char *const special[] = {"\"",       "\\n", "\\u00e9", "\x01", "\x1f", "\x7f", "\xc3\xa9",
                                              "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xff", "\xc3", "\xed\xa0\x80"};
        const size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
        int checked = 0;
        (void)state;
        for (size_t len = 1; len <= 40; len++)
                for (size_t pos = 0; pos < len; pos++)
                        for (size_t k = 0; k < sizeof(special) / sizeof(*special); k++)
                                for (int pad = 0; pad < 2; pad++) {
                                        char doc[128];
                                        json_error_t jerr;
                                        size_t n = 0;
                                        doc[n++] = '[';
                                        doc[n++] = '"';
                                        for (size_t i = 0; i < len; i++) {
                                                if (i == pos) {
                                                        memcpy(doc + n, special[k], strlen(special[k]));
                                                        n += strlen(special[k]);
                                                } else {
                                                        doc[n++] = (char)('a' + i % 26);
                                                }
                                        }
                                        doc[n++] = '"';
                                        doc[n++] = ']';
                                        if (pad) { /* far from the end: the wide path reads the whole string */
                                                memset(doc + n, ' ', 24);
                                                n += 24;
                                        }
                                        json_t *j = json_loadb(doc, n, flags, &jerr);
                                        int rc = mmp_jscan_parse(&js, doc, n, 0);
                                        if (!j != !!rc)
                                                fail_msg("jansson %s, jscan %s: %s", j ? "accepts" : jerr.text,
                                                         rc ? js.error : "accepts", show(doc, n));
                                        if (j)
                                                same(&js.tok[0], j, show(doc, n));
                                        json_decref(j);
                                        mmp_jscan_free(&js);
                                        checked++;
                                }
        print_message("string bytes: %d documents\n", checked);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_scalars),  cmocka_unit_test(test_containers), cmocka_unit_test(test_lookup),
            cmocka_unit_test(test_unescape), cmocka_unit_test(test_numbers),    cmocka_unit_test(test_excerpt),
            cmocka_unit_test(test_invalid),  cmocka_unit_test(test_depth),      cmocka_unit_test(test_against_jansson),
            cmocka_unit_test(test_string_bytes_at_every_position),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
