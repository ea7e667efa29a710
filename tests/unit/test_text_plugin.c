/*
 * Unit tests of the text plugin (plugins/text): loads the built text.so with
 * dlopen, hands it a host API made of the engine's value functions, and
 * checks every operation. Single-threaded except the reentrancy test.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "plugin/value.h"
#include "plugin_test_host.h"

static void *text_dl;
static const mmp_plugin_t *text_plugin;
static void *text_state;

static int load_plugin(void **unused) {
        return test_plugin_open("text", &text_dl, &text_plugin, &text_state);
}

static int unload_plugin(void **unused) {
        if (text_plugin)
                text_plugin->fini(text_state);
        if (text_dl)
                dlclose(text_dl);
        return 0;
}

/* ---- helpers ---- */

static mmp_op_fn find_op(const char *name) {
        for (const mmp_plugin_op_t *op = text_plugin->ops; op->name; op++)
                if (!strcmp(op->name, name))
                        return op->fn;
        fail_msg("no operation %s", name);
        return NULL;
}

/* Runs `op`; takes ownership of input and opts. */
static mmp_value_t *run(const char *op, mmp_value_t *input, mmp_value_t *opts,
                        struct mmp_call *call) {
        int cancel = call->cancel;
        mmp_value_t *out;

        memset(call, 0, sizeof(*call));
        call->cancel = cancel;
        out = find_op(op)(text_state, call, input, opts);
        mmp_value_free(input);
        mmp_value_free(opts);
        if (out)
                assert_int_equal(call->failures, 0);
        else
                assert_int_equal(call->failures, 1);
        return out;
}

/* Runs `op` and expects success. */
static mmp_value_t *ok(const char *op, mmp_value_t *input, mmp_value_t *opts) {
        struct mmp_call call = {0};
        mmp_value_t *out = run(op, input, opts, &call);
        if (!out)
                fail_msg("%s failed: %s", op, call.err);
        return out;
}

/* Runs `op`, expects a failure whose message contains `needle`. */
static void expect_error(const char *op, mmp_value_t *input, mmp_value_t *opts,
                         const char *needle) {
        struct mmp_call call = {0};
        mmp_value_t *out = run(op, input, opts, &call);
        if (out) {
                mmp_value_free(out);
                fail_msg("%s succeeded, expected an error containing \"%s\"", op, needle);
        }
        if (!strstr(call.err, needle))
                fail_msg("error \"%s\" does not contain \"%s\"", call.err, needle);
        assert_int_equal(call.retriable, 0);
}

static mmp_value_t *str(const char *s) {
        return mmp_value_new_string(s, strlen(s));
}

static mmp_value_t *bytes(const char *s, size_t n) {
        return mmp_value_new_string(s, n);
}

/* A map from key/value pairs, ending with NULL. Takes the values. */
static mmp_value_t *map(const char *key, ...) {
        mmp_value_t *m = mmp_value_new_map();
        va_list ap;
        va_start(ap, key);
        for (; key; key = va_arg(ap, const char *))
                assert_int_equal(mmp_value_set(m, key, va_arg(ap, mmp_value_t *)), 0);
        va_end(ap);
        return m;
}

static mmp_value_t *num(int64_t i) {
        return mmp_value_new_int(i);
}

static mmp_value_t *data_path(const char *name) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/text/%s", MMP_TEST_DATA_DIR, name);
        return map("path", str(path), NULL);
}

static int64_t get_int(const mmp_value_t *m, const char *key) {
        const mmp_value_t *v = mmp_value_get(m, key);
        if (mmp_value_type(v) != MMP_VAL_INT)
                fail_msg("field %s is not an integer", key);
        return mmp_value_int(v);
}

static const char *get_str(const mmp_value_t *m, const char *key) {
        const mmp_value_t *v = mmp_value_get(m, key);
        if (mmp_value_type(v) != MMP_VAL_STRING)
                fail_msg("field %s is not a string", key);
        return mmp_value_string(v, NULL);
}

/* extract(input, opts).text, checked against `want`, with the format. */
static void expect_text(mmp_value_t *input, mmp_value_t *opts, const char *want_format,
                        const char *want) {
        mmp_value_t *out = ok("extract", input, opts);
        if (want) /* NULL: only the format matters */
                assert_string_equal(get_str(out, "text"), want);
        assert_string_equal(get_str(out, "format"), want_format);
        mmp_value_free(out);
}

/* Whether this build of the plugin reads `format` (libxml2 and cmark are
 * optional); the tests of a missing one are skipped, not failed. */
static int supported(const char *format) {
        struct mmp_call call = {0};
        mmp_value_t *out = run("extract", str("x"), map("format", str(format), NULL), &call);
        mmp_value_free(out);
        if (!out && !strstr(call.err, "not supported in this build"))
                fail_msg("extract as %s: %s", format, call.err);
        return out != NULL;
}

#define REQUIRE(format)                   \
        do {                              \
                if (!supported(format))   \
                        skip();           \
        } while (0)

static void test_unsupported_message(void **unused) {
        if (supported("html") && supported("markdown"))
                skip();
        expect_error("extract", str("x"),
                     map("format", str(supported("html") ? "markdown" : "html"), NULL),
                     "not supported in this build");
}

/* ---- descriptor ---- */

static void test_descriptor(void **unused) {
        const char *names[] = {"extract", "chunk", "metadata"};
        size_t n = 0;

        assert_int_equal(text_plugin->abi_major, MMP_PLUGIN_ABI_MAJOR);
        assert_int_equal(text_plugin->struct_size, sizeof(mmp_plugin_t));
        assert_string_equal(text_plugin->name, "text");
        assert_string_equal(text_plugin->version, "1.0.0");
        assert_string_equal(text_plugin->content_types[0], "text/*");
        assert_null(text_plugin->content_types[1]);
        for (const mmp_plugin_op_t *op = text_plugin->ops; op->name; op++, n++) {
                assert_true(n < 3);
                assert_string_equal(op->name, names[n]);
                assert_non_null(op->fn);
                assert_non_null(op->doc);
                assert_null(strchr(op->doc, '\n'));
        }
        assert_int_equal(n, 3);
}

/* ---- extraction ---- */

static void test_extract_plain(void **unused) {
        mmp_value_t *out = ok("extract", str("Hello, world.\n"), NULL);
        assert_string_equal(get_str(out, "text"), "Hello, world.\n");
        assert_string_equal(get_str(out, "format"), "plain");
        assert_int_equal(get_int(out, "bytes"), 14);
        assert_int_equal(get_int(out, "invalid_bytes"), 0);
        assert_int_equal(get_int(out, "replaced"), 0);
        mmp_value_free(out);
        /* Markup in a plain string is text. */
        expect_text(str("<b>*x*</b>"), NULL, "plain", "<b>*x*</b>");
        /* Line ends become LF. */
        expect_text(str("a\r\nb\rc\n"), NULL, "plain", "a\nb\nc\n");
}

static void test_extract_plain_file(void **unused) {
        mmp_value_t *out = ok("extract", data_path("sample.txt"), NULL);
        assert_string_equal(get_str(out, "text"),
                            "The quick brown fox jumps over the lazy dog.\n"
                            "Pack my box with five dozen liquor jugs!\n\n"
                            "How vexingly quick daft zebras jump?\n");
        assert_string_equal(get_str(out, "format"), "plain");
        assert_int_equal(get_int(out, "bytes"), 124);
        mmp_value_free(out);
        /* No extension, no content type: plain. */
        expect_text(data_path("README"), NULL, "plain", "no extension: <b>kept</b> as *plain*\n");
}

static void test_extract_markdown(void **unused) {
        REQUIRE("markdown");
        expect_text(str("# Title\n\nSome *emphasis* and a [link](http://example.com/x) "
                        "and `code`.\nSame paragraph.\n\n- one\n- two\n\n"
                        "```\nint x = 1;\n```\n\n1. first\n\n2. loose\n"),
                    map("format", str("markdown"), NULL), "markdown",
                    "Title\n\nSome emphasis and a link and code. Same paragraph.\n\n"
                    "one\ntwo\n\nint x = 1;\n\nfirst\n\nloose");
        /* Entities decoded, hard line break kept, raw HTML blocks reduced to text. */
        expect_text(str("Fish &amp; chips&nbsp;&#8364;  \nnext\n\n<div>Hi <b>there</b></div>\n"),
                    map("format", str("markdown"), NULL), "markdown",
                    "Fish & chips\xC2\xA0\xE2\x82\xAC\nnext\n\nHi there");
}

static void test_extract_markdown_file(void **unused) {
        REQUIRE("markdown");
        mmp_value_t *out = ok("extract", data_path("sample.md"), NULL);
        const char *text = get_str(out, "text");
        assert_string_equal(text, "Getting started\n\n"
                                  "mmpipe turns events into documents. See the guide.\n\n"
                                  "Install the package\nRun mmpipe demo\n\n"
                                  "mmpipe process file.md\n\nQuoted text.");
        assert_null(strstr(text, "example.com"));
        assert_string_equal(get_str(out, "format"), "markdown");
        mmp_value_free(out);
        /* .markdown extension; image alt text kept, its URL dropped. */
        expect_text(data_path("notes.markdown"), NULL, "markdown",
                    "Some notes with a diagram here.");
}

static const char sample_html_text[] =
        "Caf\xC3\xA9 & Bar\n\n"
        "Prices in \xE2\x82\xAC and see the menu.\n\n"
        "First line\nSecond line\nOne\nTwo\n\n"
        "  keep   spacing\n  here\n\n"
        "Fish\xC2\xA0&\xC2\xA0" "chips <3";

static void test_extract_html_file(void **unused) {
        REQUIRE("html");
        mmp_value_t *out = ok("extract", data_path("sample.html"), NULL);
        const char *text = get_str(out, "text");
        assert_string_equal(text, sample_html_text);
        assert_null(strstr(text, "hidden"));      /* script */
        assert_null(strstr(text, "color"));       /* style */
        assert_null(strstr(text, "Sample page")); /* head */
        assert_null(strstr(text, "comment"));
        assert_string_equal(get_str(out, "format"), "html");
        mmp_value_free(out);
}

/* <div> nested `depth` times around "deep". */
static mmp_value_t *deep_html(int depth) {
        char *s = malloc((size_t)depth * 11 + 5), *w = s;
        mmp_value_t *v;

        for (int i = 0; i < depth; i++)
                w += sprintf(w, "<div>");
        w += sprintf(w, "deep");
        for (int i = 0; i < depth; i++)
                w += sprintf(w, "</div>");
        v = bytes(s, (size_t)(w - s));
        free(s);
        return v;
}

static void test_extract_html_blob(void **unused) {
        REQUIRE("html");
        const char html[] = "<html><body><p>One &lt;two&gt;</p><table><tr><td>a</td><td>b</td>"
                            "</tr></table><img src=x.png alt=\"A cat\"><p>end</p>"
                            "<noscript>enable js</noscript><template>tpl</template>";
        expect_text(mmp_blob_new(html, strlen(html), "text/html; charset=UTF-8"), NULL, "html",
                    "One <two>\n\na b\nA cat\n\nend");
        /* Broken markup is recovered, not refused. */
        expect_text(str("<div><p>unclosed <b>bold <i>both</div>after"),
                    map("format", str("html"), NULL), "html", "unclosed bold both\n\nafter");
        /* Nesting past libxml2's default limit of 256 is not cut short. */
        expect_text(deep_html(1000), map("format", str("html"), NULL), "html", "deep");
        /* A <meta charset> cannot make the parser misread UTF-8. */
        expect_text(str("<meta charset=\"iso-8859-1\"><p>caf\xC3\xA9</p>"),
                    map("format", str("html"), NULL), "html", "caf\xC3\xA9");
}

static void test_format_selection(void **unused) {
        char path[4096];

        REQUIRE("markdown");
        REQUIRE("html");
        /* The map's content_type wins over the extension. */
        snprintf(path, sizeof(path), "%s/text/sample.txt", MMP_TEST_DATA_DIR);
        expect_text(map("path", str(path), "content_type", str("text/x-markdown"), NULL), NULL,
                    "markdown", "The quick brown fox jumps over the lazy dog. Pack my box with "
                                "five dozen liquor jugs!\n\nHow vexingly quick daft zebras jump?");
        /* opts.format wins over everything. */
        snprintf(path, sizeof(path), "%s/text/sample.html", MMP_TEST_DATA_DIR);
        expect_text(map("path", str(path), "content_type", str("text/html"), NULL),
                    map("format", str("plain"), NULL), "plain", NULL);
        /* A text map with a content type; unknown types fall back to the key. */
        expect_text(map("text", str("<p>a&amp;b</p>"), "content_type", str("text/html"), NULL),
                    NULL, "html", "a&b");
        expect_text(map("text", str("*a*"), "content_type", str("application/octet-stream"),
                        "key", str("docs/README.MD"), NULL),
                    NULL, "markdown", "a");
        expect_text(mmp_blob_new("*a*", 3, "text/csv"), NULL, "plain", "*a*");
}

/* ---- UTF-8 policy ---- */

/* `bad` padded with valid text so it stays under the binary threshold; the
 * extracted text must be "[" + want + "]" + padding. */
static void expect_utf8(const char *bad, size_t bad_len, const char *want, int64_t invalid,
                        int64_t replaced) {
        char in[256], expect[256];
        const char pad[] = "................................................................";
        mmp_value_t *out;
        int n = snprintf(in, sizeof(in), "[%.*s]%s", (int)bad_len, bad, pad);

        snprintf(expect, sizeof(expect), "[%s]%s", want, pad);
        out = ok("extract", bytes(in, (size_t)n), NULL);
        assert_string_equal(get_str(out, "text"), expect);
        assert_int_equal(get_int(out, "invalid_bytes"), invalid);
        assert_int_equal(get_int(out, "replaced"), replaced);
        assert_int_equal(get_int(out, "bytes"), n);
        mmp_value_free(out);
}

#define FFFD "\xEF\xBF\xBD"

static void test_utf8_replacement(void **unused) {
        expect_utf8("\xC3(", 2, FFFD "(", 1, 1);              /* missing continuation */
        expect_utf8("\xC0\xAF", 2, FFFD FFFD, 2, 2);          /* overlong '/' */
        expect_utf8("\xE0\x80\xAF", 3, FFFD FFFD FFFD, 3, 3); /* overlong, 3 bytes */
        expect_utf8("\xED\xA0\x80", 3, FFFD FFFD FFFD, 3, 3); /* surrogate D800 */
        expect_utf8("\xF4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD, 4, 4); /* > U+10FFFF */
        expect_utf8("\xF5\x80", 2, FFFD FFFD, 2, 2);
        expect_utf8("\xE2\x82x", 3, FFFD "x", 2, 1);          /* truncated: one subpart */
        expect_utf8("\xF0\x9F\x98", 3, FFFD, 3, 1);           /* truncated 4-byte */
        expect_utf8("\x80\xBF", 2, FFFD FFFD, 2, 2);          /* lone continuations */
        /* Valid edge cases pass untouched. */
        expect_utf8("\xF4\x8F\xBF\xBF\xEF\xBB\xBF\xED\x9F\xBF", 10,
                    "\xF4\x8F\xBF\xBF\xEF\xBB\xBF\xED\x9F\xBF", 0, 0);
}

static void test_utf8_bom(void **unused) {
        mmp_value_t *out = ok("extract", str("\xEF\xBB\xBFhello"), NULL);
        assert_string_equal(get_str(out, "text"), "hello");
        assert_int_equal(get_int(out, "bytes"), 8);
        mmp_value_free(out);
        out = ok("metadata", str("\xEF\xBB\xBFh\xC3\xA9"), NULL);
        assert_int_equal(get_int(out, "characters"), 2);
        mmp_value_free(out);
        /* Only a leading BOM goes. */
        if (supported("html"))
                expect_text(str("\xEF\xBB\xBF<p>x\xEF\xBB\xBFy</p>"),
                            map("format", str("html"), NULL), "html", "x\xEF\xBB\xBFy");
}

static void test_binary_refused(void **unused) {
        char buf[200];

        expect_error("extract", bytes("abc\0def", 7), NULL, "binary content: NUL byte at offset 3");
        /* 10% invalid is still text, 11% is binary. */
        memset(buf, 'a', 100);
        memset(buf, 0xFF, 10);
        mmp_value_free(ok("extract", bytes(buf, 100), NULL));
        buf[10] = (char)0xFF;
        expect_error("metadata", bytes(buf, 100), NULL,
                     "binary content: 11% of bytes are not valid UTF-8");
}

/* A binary head is refused even when the whole is mostly text. */
static void test_binary_head(void **unused) {
        size_t n = (size_t)1 << 20;
        char *buf = malloc(n);

        memset(buf, 'x', n);
        for (size_t i = 0; i < 65536; i += 4)
                buf[i] = (char)0xFE; /* 25% of the first 64 KiB, 1.6% overall */
        expect_error("extract", mmp_blob_new(buf, n, "text/plain"), NULL,
                     "binary content: 25% of bytes are not valid UTF-8");
        free(buf);
}

static void test_empty_input(void **unused) {
        char path[] = "/tmp/mmp-text-empty-XXXXXX.txt";
        int fd = mkstemps(path, 4);

        assert_true(fd >= 0);
        close(fd);
        expect_error("extract", str(""), NULL, "empty input (0 bytes)");
        expect_error("chunk", mmp_blob_new("", 0, "text/plain"), NULL, "empty input (0 bytes)");
        expect_error("metadata", map("path", str(path), NULL), NULL, "empty input (0 bytes)");
        unlink(path);
        /* A BOM alone is not empty input: it is empty text. */
        expect_text(str("\xEF\xBB\xBF"), NULL, "plain", "");
}

static void test_file_errors(void **unused) {
        char path[4096], want[4200];

        snprintf(path, sizeof(path), "%s/text/no-such-file.txt", MMP_TEST_DATA_DIR);
        snprintf(want, sizeof(want), "cannot open '%s': No such file or directory", path);
        expect_error("extract", map("path", str(path), NULL), NULL, want);
        snprintf(path, sizeof(path), "%s/text", MMP_TEST_DATA_DIR);
        expect_error("extract", map("path", str(path), NULL), NULL, "Is a directory");
        /* The size limit, for files and for values. */
        snprintf(path, sizeof(path), "%s/text/sample.txt", MMP_TEST_DATA_DIR);
        snprintf(want, sizeof(want), "file '%s' too large: 124 bytes (limit 100 bytes, set by "
                                     "opts.max_bytes)", path);
        expect_error("extract", map("path", str(path), NULL), map("max_bytes", num(100), NULL),
                     want);
        expect_error("metadata", str("0123456789"), map("max_bytes", num(9), NULL),
                     "input too large: 10 bytes (limit 9 bytes");
        mmp_value_free(ok("metadata", str("0123456789"), map("max_bytes", num(10), NULL)));
}

static void test_input_errors(void **unused) {
        expect_error("extract", num(3), NULL, "input must be a string, a blob, or a map");
        expect_error("extract", map("url", str("x"), NULL), NULL, "input map needs 'path'");
        expect_error("extract", map("path", str("a"), "text", str("b"), NULL), NULL,
                     "both 'path' and 'text'");
        expect_error("extract", map("path", num(1), NULL), NULL, "input 'path' must be a string");
        expect_error("extract", str("x"), num(1), "extract: opts must be a map");
        expect_error("extract", str("x"), map("format", str("pdf"), NULL), "opts.format must be");
        expect_error("metadata", str("x"), map("size", num(10), NULL),
                     "metadata: unknown option opts.size (known: format, max_bytes)");
}

/* ---- metadata ---- */

static void expect_counts(const char *text, int64_t chars, int64_t words, int64_t lines) {
        mmp_value_t *out = ok("metadata", str(text), NULL);
        assert_int_equal(get_int(out, "characters"), chars);
        assert_int_equal(get_int(out, "words"), words);
        assert_int_equal(get_int(out, "lines"), lines);
        assert_int_equal(get_int(out, "bytes"), strlen(text));
        assert_string_equal(get_str(out, "format"), "plain");
        assert_int_equal(get_int(out, "invalid_bytes"), 0);
        mmp_value_free(out);
}

static void test_metadata(void **unused) {
        mmp_value_t *out;

        expect_counts("Hello world\nsecond  line here\n\nlast", 35, 6, 4);
        expect_counts("a\nb\n", 4, 2, 2);
        expect_counts("one", 3, 1, 1);
        expect_counts("\n", 1, 0, 1);
        expect_counts("  \t ", 4, 0, 1);
        expect_counts("h\xC3\xA9llo w\xC3\xB6rld \xF0\x9F\x98\x80", 13, 3, 1);
        /* U+00A0 and U+3000 separate words too. */
        expect_counts("a\xC2\xA0" "b\xE3\x80\x80" "c", 5, 3, 1);
        if (supported("html")) {
                out = ok("metadata", data_path("sample.html"), NULL);
                assert_int_equal(get_int(out, "characters"), 115);
                assert_int_equal(get_int(out, "words"), 23);
                assert_int_equal(get_int(out, "lines"), 13);
                assert_int_equal(get_int(out, "bytes"), 497);
                assert_string_equal(get_str(out, "format"), "html");
                mmp_value_free(out);
        }
        out = ok("metadata", bytes("ab\xFF" "cdefghijklmnop", 17), NULL);
        assert_int_equal(get_int(out, "invalid_bytes"), 1);
        assert_int_equal(get_int(out, "characters"), 17);
        mmp_value_free(out);
}

/* ---- chunking ---- */

typedef struct want_chunk {
        int64_t start, stop;
        const char *text;
} want_chunk_t;

static mmp_value_t *chunk_opts(int64_t size, int64_t overlap) {
        return map("size", num(size), "overlap", num(overlap), NULL);
}

static void expect_chunks(mmp_value_t *input, mmp_value_t *opts, const want_chunk_t *want,
                          size_t n) {
        mmp_value_t *out = ok("chunk", input, opts);

        assert_int_equal(mmp_value_type(out), MMP_VAL_ARRAY);
        assert_int_equal(mmp_value_len(out), n);
        for (size_t i = 0; i < n; i++) {
                const mmp_value_t *c = mmp_value_index(out, i);
                assert_int_equal(get_int(c, "index"), i);
                assert_string_equal(get_str(c, "text"), want[i].text);
                assert_int_equal(get_int(c, "start"), want[i].start);
                assert_int_equal(get_int(c, "stop"), want[i].stop);
                assert_int_equal(get_int(c, "characters"), want[i].stop - want[i].start);
        }
        mmp_value_free(out);
}

static void test_chunk_sentence_over_word(void **unused) {
        const want_chunk_t want[] = {
                {0, 23, "The cat sat on the mat."},
                {24, 61, "The dog ran far away from home today."},
        };
        expect_chunks(str("The cat sat on the mat. The dog ran far away from home today."),
                      chunk_opts(40, 0), want, 2);
}

static void test_chunk_paragraph_over_word(void **unused) {
        const want_chunk_t want[] = {
                {0, 20, "First paragraph here"},
                {22, 48, "second part goes on and on"},
        };
        expect_chunks(str("First paragraph here\n\nsecond part goes on and on"),
                      chunk_opts(40, 0), want, 2);
}

static void test_chunk_word_over_cut(void **unused) {
        const want_chunk_t want[] = {
                {0, 16, "alpha beta gamma"},
                {17, 35, "delta epsilon zeta"},
                {36, 45, "eta theta"},
        };
        expect_chunks(str("alpha beta gamma delta epsilon zeta eta theta"), chunk_opts(20, 0),
                      want, 3);
}

static void test_chunk_hard_cut(void **unused) {
        const want_chunk_t plain[] = {
                {0, 10, "abcdefghij"}, {10, 20, "klmnopqrst"}, {20, 26, "uvwxyz"},
        };
        const want_chunk_t overlapped[] = {
                {0, 10, "abcdefghij"}, {7, 17, "hijklmnopq"},
                {14, 24, "opqrstuvwx"}, {21, 26, "vwxyz"},
        };
        expect_chunks(str("abcdefghijklmnopqrstuvwxyz"), chunk_opts(10, 0), plain, 3);
        expect_chunks(str("abcdefghijklmnopqrstuvwxyz"), chunk_opts(10, 3), overlapped, 4);
}

/* The next chunk starts `overlap` back, moved forward to a word start. */
static void test_chunk_overlap_word_start(void **unused) {
        const want_chunk_t want[] = {
                {0, 18, "one two three four"},
                {14, 33, "four five six seven"},
                {28, 48, "seven eight nine ten"},
        };
        expect_chunks(str("one two three four five six seven eight nine ten"),
                      chunk_opts(20, 8), want, 3);
}

/* A run of spaces longer than the window: the chunk after it must not be a
 * repeat of the end of the one before ("bbbb" twice, found by the
 * invariants test). */
static void test_chunk_space_gap(void **unused) {
        const want_chunk_t want[] = {{0, 9, "aaaa bbbb"}, {39, 43, "cccc"}};
        expect_chunks(str("aaaa bbbb                              cccc"), chunk_opts(10, 5),
                      want, 2);
}

static void test_chunk_multibyte_offsets(void **unused) {
        const want_chunk_t want[] = {
                {0, 8, "\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC \xC3\xA9\xC3\xA9\xC3\xA9."},
                {9, 16, "\xCE\xB1\xCE\xB1\xCE\xB1 \xCE\xB2\xCE\xB2\xCE\xB2"},
        };
        const want_chunk_t emoji[] = {
                {2, 5, "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80"},
                {4, 7, "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80"},
        };
        expect_chunks(str("\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC \xC3\xA9\xC3\xA9\xC3\xA9. "
                          "\xCE\xB1\xCE\xB1\xCE\xB1 \xCE\xB2\xCE\xB2\xCE\xB2"),
                      chunk_opts(8, 0), want, 2);
        expect_chunks(str("  \xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80"
                          "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\n"),
                      chunk_opts(3, 1), emoji, 2);
}

/* Byte offset of code point `cp` in UTF-8 `s`. */
static size_t cp_to_byte(const char *s, size_t len, int64_t cp) {
        size_t i = 0;
        for (int64_t seen = -1; i < len; i++)
                if (((unsigned char)s[i] & 0xC0) != 0x80 && ++seen == cp)
                        return i;
        return len;
}

static size_t cp_count(const char *s, size_t len) {
        size_t n = 0;
        for (size_t i = 0; i < len; i++)
                n += ((unsigned char)s[i] & 0xC0) != 0x80;
        return n;
}

static int is_ws(char c) {
        return c == ' ' || c == '\n' || c == '\t';
}

static int all_ws(const char *s, size_t from, size_t to) {
        for (size_t i = from; i < to; i++)
                if (!is_ws(s[i]))
                        return 0;
        return 1;
}

/* What must hold for any chunking of `text` (whose whitespace is ASCII):
 * chunks are non-empty, at most `size` long, exact substrings at their
 * offsets, trimmed, moving forward, overlapping at most `overlap`, and
 * together cover every non-space character. */
static void check_chunks(const char *text, const mmp_value_t *chunks, int64_t size,
                         int64_t overlap) {
        size_t len = strlen(text), n = mmp_value_len(chunks), prev_stop_b = 0;
        int64_t prev_start = -1, prev_stop = 0;

        assert_true(n > 0);
        for (size_t i = 0; i < n; i++) {
                const mmp_value_t *c = mmp_value_index(chunks, i);
                int64_t start = get_int(c, "start"), stop = get_int(c, "stop");
                size_t sb = cp_to_byte(text, len, start), eb = cp_to_byte(text, len, stop), tl;
                const char *t = mmp_value_string(mmp_value_get(c, "text"), &tl);

                assert_int_equal(get_int(c, "index"), i);
                assert_int_equal(get_int(c, "characters"), stop - start);
                assert_true(stop > start);
                assert_true(stop - start <= size);
                assert_int_equal(tl, eb - sb);
                assert_memory_equal(t, text + sb, tl);
                assert_false(is_ws(t[0]) || is_ws(t[tl - 1]));
                assert_true(start > prev_start);
                assert_true(stop > prev_stop);
                if (prev_stop > start)
                        assert_true(prev_stop - start <= overlap);
                else
                        assert_true(all_ws(text, prev_stop_b, sb)); /* nothing skipped */
                prev_start = start;
                prev_stop = stop;
                prev_stop_b = eb;
        }
        assert_true(all_ws(text, prev_stop_b, len));
        assert_true((size_t)prev_stop <= cp_count(text, len));
}

/* Deterministic text with sentences, paragraphs, long words, runs of
 * spaces and multi-byte characters. */
static char *make_text(size_t words) {
        static const char *const vocab[] = {
                "lorem", "ipsum", "dolor", "sit", "amet", "h\xC3\xA9llo", "\xE2\x82\xAC" "uro",
                "\xF0\x9F\x98\x80", "\xCE\xB1\xCE\xB2\xCE\xB3", "a", "to", "be",
                "supercalifragilisticexpialidocious", "(quoted.)", "x",
        };
        static const char *const seps[] = {" ", " ", " ", " ", ". ", "! ", "? ", "\n", "\n\n",
                                           ".\n\n", "                                        ",
                                           "\"said.\" ", " ", " \t "};
        char *s = malloc(words * 64 + 1);
        size_t len = 0;
        uint32_t r = 12345;

        for (size_t i = 0; i < words; i++) {
                r = r * 1103515245u + 12345u;
                len += (size_t)sprintf(s + len, "%s", vocab[(r >> 8) % 15]);
                r = r * 1103515245u + 12345u;
                len += (size_t)sprintf(s + len, "%s", seps[(r >> 8) % 14]);
        }
        return s;
}

static void test_chunk_invariants(void **unused) {
        const int64_t sizes[] = {1, 2, 3, 5, 7, 16, 33, 50, 100, 333, 1000, 5000};
        char *text = make_text(1500);

        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                int64_t size = sizes[i];
                const int64_t overlaps[] = {0, 1, size / 3, size / 2, size - 1};
                for (size_t j = 0; j < 5; j++) {
                        mmp_value_t *out;
                        if (overlaps[j] >= size)
                                continue;
                        out = ok("chunk", str(text), chunk_opts(size, overlaps[j]));
                        check_chunks(text, out, size, overlaps[j]);
                        mmp_value_free(out);
                }
        }
        /* Defaults: size 1000, overlap 100. */
        {
                mmp_value_t *out = ok("chunk", str(text), NULL);
                check_chunks(text, out, 1000, 100);
                assert_true(mmp_value_len(out) > 5);
                mmp_value_free(out);
        }
        free(text);
}

/* Offsets of a Markdown input refer to the extracted text. */
static void test_chunk_markup(void **unused) {
        mmp_value_t *ex, *out;
        const char *text;

        REQUIRE("markdown");
        ex = ok("extract", data_path("sample.md"), NULL);
        out = ok("chunk", data_path("sample.md"), chunk_opts(30, 5));
        text = get_str(ex, "text");
        check_chunks(text, out, 30, 5);
        assert_string_equal(get_str(mmp_value_index(out, 0), "text"), "Getting started");
        mmp_value_free(out);
        mmp_value_free(ex);
        /* Double numbers from Lua are fine when integral. */
        out = ok("chunk", str("a b c"),
                 map("size", mmp_value_new_double(2.0), "overlap", num(0), NULL));
        assert_int_equal(mmp_value_len(out), 3);
        mmp_value_free(out);
}

static void test_chunk_whitespace_only(void **unused) {
        mmp_value_t *out;

        expect_error("chunk", str("  \n\t \n"), NULL, "no text: input has only whitespace");
        if (supported("html"))
                expect_error("chunk", str("<script>x()</script>"),
                             map("format", str("html"), NULL),
                             "no text: input has only whitespace");
        out = ok("chunk", str("  \n\t \n"), map("allow_empty", mmp_value_new_bool(1), NULL));
        assert_int_equal(mmp_value_type(out), MMP_VAL_ARRAY);
        assert_int_equal(mmp_value_len(out), 0);
        mmp_value_free(out);
}

static void test_chunk_opts(void **unused) {
        expect_error("chunk", str("text"), chunk_opts(10, 10),
                     "opts.overlap (10) must be smaller than opts.size (10)");
        expect_error("chunk", str("text"), map("overlap", num(1000), NULL),
                     "opts.overlap (1000) must be smaller than opts.size (1000)");
        expect_error("chunk", str("text"), map("size", num(0), NULL),
                     "opts.size must be between 1 and");
        expect_error("chunk", str("text"), map("overlap", num(-1), NULL),
                     "opts.overlap must be between 0 and");
        expect_error("chunk", str("text"), map("size", str("ten"), NULL),
                     "opts.size must be an integer");
        expect_error("chunk", str("text"), map("size", mmp_value_new_double(10.5), NULL),
                     "opts.size must be an integer");
        expect_error("chunk", str("text"), map("chunk_size", num(10), NULL),
                     "chunk: unknown option opts.chunk_size");
        expect_error("chunk", str("text"), map("allow_empty", num(1), NULL),
                     "opts.allow_empty must be a boolean");
        expect_error("chunk", str("abcdefghijklmnopqrstuvwxyz"),
                     map("size", num(10), "overlap", num(0), "max_chunks", num(2), NULL),
                     "more than 2 chunks");
}

static void test_cancelled(void **unused) {
        struct mmp_call call = {.cancel = 1};
        char *text = make_text(500);
        mmp_value_t *out = run("chunk", str("some text to chunk"), NULL, &call);

        assert_null(out);
        assert_string_equal(call.err, "cancelled");
        assert_int_equal(call.retriable, 1);
        /* Cancelled while chunking: the loop notices within a chunk. */
        call.cancel = 6;
        out = run("chunk", str(text), chunk_opts(10, 2), &call);
        assert_null(out);
        assert_string_equal(call.err, "cancelled");
        assert_int_equal(call.queries, 6);
        free(text);
}

/* ---- reentrancy ---- */

typedef struct chunk_job {
        const char *text;   /* plain text, or NULL to chunk the file `path` */
        const char *path;
        size_t want_chunks; /* what the same call gave on the main thread */
        int errors;
} chunk_job_t;

static mmp_value_t *job_input(const chunk_job_t *job) {
        return job->text ? str(job->text) : map("path", str(job->path), NULL);
}

static void *chunk_worker(void *arg) {
        chunk_job_t *job = arg;
        mmp_op_fn chunk = find_op("chunk");

        for (int i = 0; i < 20; i++) {
                struct mmp_call call = {0};
                mmp_value_t *in = job_input(job), *opts = chunk_opts(100, 20);
                mmp_value_t *out = chunk(text_state, &call, in, opts);
                if (!out || mmp_value_len(out) != job->want_chunks)
                        job->errors++;
                mmp_value_free(out);
                mmp_value_free(in);
                mmp_value_free(opts);
        }
        return NULL;
}

/* Four threads at once on one plugin state, each format among them. */
static void test_concurrent_calls(void **unused) {
        char *text = make_text(800), md[4096], html[4096];
        chunk_job_t jobs[4] = {{text, NULL, 0, 0}, {text, NULL, 0, 0}, {NULL, md, 0, 0},
                               {NULL, html, 0, 0}};
        pthread_t threads[4];
        int n = 2;

        snprintf(md, sizeof(md), "%s/text/sample.md", MMP_TEST_DATA_DIR);
        snprintf(html, sizeof(html), "%s/text/sample.html", MMP_TEST_DATA_DIR);
        if (supported("markdown") && supported("html"))
                n = 4;
        for (int i = 0; i < n; i++) {
                mmp_value_t *once = ok("chunk", job_input(&jobs[i]), chunk_opts(100, 20));
                jobs[i].want_chunks = mmp_value_len(once);
                mmp_value_free(once);
        }
        for (int i = 0; i < n; i++)
                assert_int_equal(pthread_create(&threads[i], NULL, chunk_worker, &jobs[i]), 0);
        for (int i = 0; i < n; i++) {
                pthread_join(threads[i], NULL);
                assert_int_equal(jobs[i].errors, 0);
        }
        free(text);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_descriptor),
                cmocka_unit_test(test_extract_plain),
                cmocka_unit_test(test_extract_plain_file),
                cmocka_unit_test(test_unsupported_message),
                cmocka_unit_test(test_extract_markdown),
                cmocka_unit_test(test_extract_markdown_file),
                cmocka_unit_test(test_extract_html_file),
                cmocka_unit_test(test_extract_html_blob),
                cmocka_unit_test(test_format_selection),
                cmocka_unit_test(test_utf8_replacement),
                cmocka_unit_test(test_utf8_bom),
                cmocka_unit_test(test_binary_refused),
                cmocka_unit_test(test_binary_head),
                cmocka_unit_test(test_empty_input),
                cmocka_unit_test(test_file_errors),
                cmocka_unit_test(test_input_errors),
                cmocka_unit_test(test_metadata),
                cmocka_unit_test(test_chunk_sentence_over_word),
                cmocka_unit_test(test_chunk_paragraph_over_word),
                cmocka_unit_test(test_chunk_word_over_cut),
                cmocka_unit_test(test_chunk_hard_cut),
                cmocka_unit_test(test_chunk_overlap_word_start),
                cmocka_unit_test(test_chunk_space_gap),
                cmocka_unit_test(test_chunk_multibyte_offsets),
                cmocka_unit_test(test_chunk_invariants),
                cmocka_unit_test(test_chunk_markup),
                cmocka_unit_test(test_chunk_whitespace_only),
                cmocka_unit_test(test_chunk_opts),
                cmocka_unit_test(test_cancelled),
                cmocka_unit_test(test_concurrent_calls),
        };
        return cmocka_run_group_tests_name("text plugin", tests, load_plugin, unload_plugin);
}
