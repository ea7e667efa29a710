/*
 * Unit tests of the embed plugin (plugins/embed, the local text embedding
 * model "hashed-ngrams-v1"): loads the built embed.so with dlopen, hands it
 * a host API made of the engine's value functions, and checks the vectors:
 * fixed hash, pinned output, unit norm, the dim option, the similarities
 * docs/models.md quotes, errors, and reentrancy from 4 threads.
 */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../plugins/embed/embed.h"
#include "plugin/value.h"
#include "plugin_test_host.h"

static void *embed_dl;
static const mmp_plugin_t *embed_plugin;
static void *embed_state;
static mmp_op_fn op_text;
static mmp_op_fn op_describe;

static int load_plugin(void **unused) {
        if (test_plugin_open("embed", &embed_dl, &embed_plugin, &embed_state))
                return -1;
        for (const mmp_plugin_op_t *op = embed_plugin->ops; op->name; op++) {
                if (!strcmp(op->name, "text"))
                        op_text = op->fn;
                if (!strcmp(op->name, "describe"))
                        op_describe = op->fn;
        }
        return op_text ? 0 : -1;
}

static int unload_plugin(void **unused) {
        if (embed_plugin && embed_plugin->fini)
                embed_plugin->fini(embed_state);
        if (embed_dl)
                dlclose(embed_dl);
        return 0;
}

/* ---- helpers ---- */

static mmp_value_t *str(const char *s) {
        return mmp_value_new_string(s, strlen(s));
}

static mmp_value_t *dim_opts(int64_t dim) {
        mmp_value_t *m = mmp_value_new_map();
        assert_int_equal(mmp_value_set(m, "dim", mmp_value_new_int(dim)), 0);
        return m;
}

/* Runs text(input, opts); takes both. NULL on failure, with call filled. */
static mmp_value_t *run(mmp_value_t *input, mmp_value_t *opts, struct mmp_call *call) {
        mmp_value_t *out = op_text(embed_state, call, input, opts);
        mmp_value_free(input);
        mmp_value_free(opts);
        assert_int_equal(call->failures, out ? 0 : 1);
        return out;
}

/* The embedding of `input` (taken) as a malloc'd array of *dimp doubles;
 * checks the result's shape on the way. */
static double *embed_value(mmp_value_t *input, mmp_value_t *opts, uint32_t *dimp) {
        struct mmp_call call = {0};
        mmp_value_t *out = run(input, opts, &call);
        const mmp_value_t *arr;
        double *v;
        size_t n;

        if (!out)
                fail_msg("text failed: %s", call.err);
        arr = mmp_value_get(out, "embedding");
        assert_int_equal(mmp_value_type(arr), MMP_VAL_ARRAY);
        n = mmp_value_len(arr);
        assert_int_equal(mmp_value_int(mmp_value_get(out, "dim")), n);
        assert_string_equal(mmp_value_string(mmp_value_get(out, "model"), NULL), EMBED_MODEL_NAME);
        v = malloc(n * sizeof(*v));
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(mmp_value_type(mmp_value_index(arr, i)), MMP_VAL_DOUBLE);
                v[i] = mmp_value_double(mmp_value_index(arr, i));
        }
        mmp_value_free(out);
        *dimp = (uint32_t)n;
        return v;
}

static double *embed_dim(const char *text, uint32_t dim) {
        uint32_t got;
        double *v = embed_value(str(text), dim_opts(dim), &got);
        assert_int_equal(got, dim);
        return v;
}

static double dot(const double *a, const double *b, uint32_t n) {
        double s = 0;
        for (uint32_t i = 0; i < n; i++)
                s += a[i] * b[i];
        return s;
}

static double cosine(const char *a, const char *b) {
        double *x = embed_dim(a, EMBED_DEFAULT_DIM), *y = embed_dim(b, EMBED_DEFAULT_DIM);
        double c = dot(x, y, EMBED_DEFAULT_DIM); /* unit vectors: the dot product is the cosine */
        free(x);
        free(y);
        if (getenv("MMP_TEST_VERBOSE"))
                fprintf(stderr, "cos %.3f  [%s] [%s]\n", c, a, b);
        return c;
}

/* Expects text(input, opts) to fail with `needle` in the message. */
static void expect_error(mmp_value_t *input, mmp_value_t *opts, const char *needle) {
        struct mmp_call call = {0};
        mmp_value_t *out = run(input, opts, &call);
        if (out) {
                mmp_value_free(out);
                fail_msg("text succeeded, expected an error containing \"%s\"", needle);
        }
        if (!strstr(call.err, needle))
                fail_msg("error \"%s\" does not contain \"%s\"", call.err, needle);
        assert_int_equal(call.retriable, 0);
}

/* ---- the pairs docs/models.md quotes ---- */

static const char para[] =
    "Lighthouses were built along dangerous coasts to warn ships of rocks and shallow water. "
    "Their keepers trimmed the wicks, wound the clockwork that turned the lens, and logged the weather "
    "every few hours. Most towers are automated now, and many have become museums.";
/* two edits: a typo and a changed phrase */
static const char para_edited[] =
    "Lighthouses were built along dangerus coasts to warn ships of rocks and shallow water. "
    "Their keepers trimmed the wicks, wound the clockwork that turned the lens, and logged the weather "
    "every three hours. Most towers are automated now, and many have become museums.";
static const char para_other[] =
    "The engine reads events from Kafka, fetches each object from S3 and runs the matching Lua "
    "pipeline; documents are written to MongoDB in unordered bulk upserts and the offset is committed "
    "only after the store acknowledged them.";

/* ---- tests ---- */

static void test_descriptor(void **unused) {
        assert_int_equal(embed_plugin->abi_major, MMP_PLUGIN_ABI_MAJOR);
        assert_int_equal(embed_plugin->struct_size, sizeof(mmp_plugin_t));
        assert_string_equal(embed_plugin->name, "embed");
        assert_string_equal(embed_plugin->version, "1.0.0");
        assert_string_equal(embed_plugin->ops[0].name, "text");
        assert_null(strchr(embed_plugin->ops[0].doc, '\n'));
        assert_string_equal(embed_plugin->ops[1].name, "describe");
        assert_null(strchr(embed_plugin->ops[1].doc, '\n'));
        assert_null(embed_plugin->ops[2].name);
}

/* describe: the lead sentence and the most frequent content words. */
static void test_describe(void **unused) {
        struct mmp_call call = {0};
        mmp_value_t *in = str("Tide pools hold crabs. The crabs hide under weed, and the pools warm "
                              "in the sun while crabs wait for the tide.");
        mmp_value_t *opts = mmp_value_new_map();
        assert_int_equal(mmp_value_set(opts, "keywords", mmp_value_new_int(3)), 0);
        mmp_value_t *out = op_describe(embed_state, &call, in, opts);
        const mmp_value_t *kw;
        assert_non_null(out);
        assert_string_equal(mmp_value_string(mmp_value_get(out, "summary"), NULL), "Tide pools hold crabs.");
        kw = mmp_value_get(out, "keywords");
        assert_int_equal(mmp_value_len(kw), 3);
        assert_string_equal(mmp_value_string(mmp_value_index(kw, 0), NULL), "crabs"); /* 3 times */
        assert_string_equal(mmp_value_string(mmp_value_index(kw, 1), NULL), "tide");  /* 2, first seen */
        assert_string_equal(mmp_value_string(mmp_value_index(kw, 2), NULL), "pools");
        assert_string_equal(mmp_value_string(mmp_value_get(out, "model"), NULL), "extractive-v1");
        mmp_value_free(out);
        mmp_value_free(in);
        mmp_value_free(opts);
        /* Bad options are refused, naming them. */
        struct mmp_call bad = {0};
        in = str("x");
        opts = mmp_value_new_map();
        assert_int_equal(mmp_value_set(opts, "keywords", mmp_value_new_int(1000)), 0);
        assert_null(op_describe(embed_state, &bad, in, opts));
        assert_non_null(strstr(bad.err, "opts.keywords"));
        mmp_value_free(in);
        mmp_value_free(opts);
}

/* The hash is FNV-1a 64 (published test vectors) then fmix64. */
static void test_hash(void **unused) {
        assert_true(embed_fnv1a(EMBED_FNV_OFFSET, "", 0) == 0xcbf29ce484222325ULL);
        assert_true(embed_fnv1a(EMBED_FNV_OFFSET, "a", 1) == 0xaf63dc4c8601ec8cULL);
        assert_true(embed_fnv1a(EMBED_FNV_OFFSET, "foobar", 6) == 0x85944171f73967e8ULL);
        assert_true(embed_fmix64(0) == 0);
        assert_true(embed_fmix64(1) == 0xb456bcfc34c2cb2cULL);
        /* the family tag makes the same bytes three features */
        assert_true(embed_feature_hash(EMBED_KIND_WORD, "fox", 3) != embed_feature_hash(EMBED_KIND_CHARGRAM, "fox", 3));
        assert_true(embed_feature_hash(EMBED_KIND_WORD, "fox", 3) ==
                    embed_fmix64(embed_fnv1a(embed_fnv1a(EMBED_FNV_OFFSET, "w", 1), "fox", 3)));
}

/* The model is pinned: these numbers may only change with a new model name. */
static void test_pinned_output(void **unused) {
        static const double want[8] = {
            0.0,                  0.40286827555485133, 0.32588261826754389, -0.23970938382448939,
            0.23052180666874234, -0.3595640757367341,  -0.69463427116002507, -0.09536081159880154,
        };
        double *v = embed_dim("Hello, world: hashed n-grams!", 8);
        for (int i = 0; i < 8; i++)
                if (fabs(v[i] - want[i]) > 1e-12)
                        fail_msg("embedding[%d] = %.17g, pinned %.17g", i, v[i], want[i]);
        free(v);
}

static void test_shape_and_default_dim(void **unused) {
        uint32_t dim;
        double *v = embed_value(str("hello world"), NULL, &dim);
        assert_int_equal(dim, EMBED_DEFAULT_DIM);
        free(v);
}

static void test_unit_norm(void **unused) {
        static const uint32_t dims[] = {8, 9, 100, 256, 1000, 4096};
        const char *texts[] = {"a", "hello world", para, para_other, "\xe6\x9c\xba\xe5\x99\xa8", "x y z 1 2 3"};
        for (size_t d = 0; d < sizeof(dims) / sizeof(dims[0]); d++) {
                for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
                        double *v = embed_dim(texts[t], dims[d]);
                        double n = sqrt(dot(v, v, dims[d]));
                        if (fabs(n - 1.0) > 1e-6)
                                fail_msg("dim %u, text %zu: norm %.12f", dims[d], t, n);
                        free(v);
                }
        }
}

static void test_deterministic(void **unused) {
        double *a = embed_dim(para, 256), *b = embed_dim(para, 256), *c, *d;
        uint32_t dim;
        assert_memory_equal(a, b, 256 * sizeof(double));
        /* a map with text and a blob of the same bytes give the same vector */
        mmp_value_t *m = mmp_value_new_map();
        mmp_value_set(m, "text", str(para));
        c = embed_value(m, NULL, &dim);
        d = embed_value(mmp_blob_new(para, strlen(para), "text/plain"), NULL, &dim);
        assert_memory_equal(a, c, 256 * sizeof(double));
        assert_memory_equal(a, d, 256 * sizeof(double));
        free(a);
        free(b);
        free(c);
        free(d);
}

static void test_dim_option(void **unused) {
        mmp_value_t *o;
        double *v;
        uint32_t dim;
        free(embed_dim(para, EMBED_MIN_DIM));
        free(embed_dim(para, EMBED_MAX_DIM));
        free(embed_dim(para, 37));
        o = mmp_value_new_map();
        mmp_value_set(o, "dim", mmp_value_new_double(64.0)); /* JSON numbers may arrive as doubles */
        v = embed_value(str(para), o, &dim);
        assert_int_equal(dim, 64);
        free(v);
        expect_error(str(para), dim_opts(EMBED_MIN_DIM - 1), "opts.dim must be from 8 to 4096");
        expect_error(str(para), dim_opts(EMBED_MAX_DIM + 1), "opts.dim must be from 8 to 4096");
        o = mmp_value_new_map();
        mmp_value_set(o, "dim", str("256"));
        expect_error(str(para), o, "opts.dim must be an integer");
        o = mmp_value_new_map();
        mmp_value_set(o, "dim", mmp_value_new_double(12.5));
        expect_error(str(para), o, "opts.dim must be an integer");
}

/* Case, punctuation, apostrophes and simple case folding do not matter. */
static void test_normalisation(void **unused) {
        static const char *same[][2] = {
            {"Hello, World!", "hello world"},
            {"don't STOP", "dont stop"},
            {"CAF\xc3\x89 \xc3\x9c" "BER", "caf\xc3\xa9 \xc3\xbc" "ber"},            /* CAFÉ ÜBER */
            /* ΟΔΟΣ / οδος (final sigma) */
            {"\xce\x9f\xce\x94\xce\x9f\xce\xa3", "\xce\xbf\xce\xb4\xce\xbf\xcf\x82"},
            {"\xd0\x9c\xd0\x9e\xd0\xa1\xd0\x9a\xd0\x92\xd0\x90", "\xd0\xbc\xd0\xbe\xd1\x81\xd0\xba\xd0\xb2\xd0\xb0"},
        };
        for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
                double *a = embed_dim(same[i][0], 64), *b = embed_dim(same[i][1], 64);
                if (memcmp(a, b, 64 * sizeof(double)))
                        fail_msg("\"%s\" and \"%s\" should embed identically", same[i][0], same[i][1]);
                free(a);
                free(b);
        }
        /* Ideographs are words of their own: shared characters count. */
        /* 机器学习 / 机器学习模型 */
        assert_true(cosine("\xe6\x9c\xba\xe5\x99\xa8\xe5\xad\xa6\xe4\xb9\xa0",
                           "\xe6\x9c\xba\xe5\x99\xa8\xe5\xad\xa6\xe4\xb9\xa0\xe6\xa8\xa1\xe5\x9e\x8b") > 0.6);
}

/* The honest thresholds: measured values are in docs/models.md. */
static void test_similarities(void **unused) {
        double near_para = cosine(para, para_edited);
        double near_short = cosine("The quick brown fox jumps over the lazy dog.",
                                   "The quick brown fox jumped over the lazy dog!");
        double typo = cosine("The committee will meet on Tuesday to discuss the budget.",
                             "The comittee will meet on tuesday to dicuss the budget.");
        double lexical = cosine("How do I reset my password?", "Password reset instructions for your account");
        double unrelated[] = {
            cosine(para, para_other),
            cosine("The quick brown fox jumps over the lazy dog.",
                   "Quarterly revenue grew by eight percent in Europe."),
            cosine("The cat sat on the mat.", "The stock market fell sharply on Monday."),
        };
        double synonyms = cosine("The physician prescribed medication.", "A doctor gave her drugs.");

        assert_true(near_para > 0.9);
        assert_true(near_short > 0.7);
        assert_true(typo > 0.6);
        assert_true(lexical > 0.4 && lexical < near_short);
        for (size_t i = 0; i < sizeof(unrelated) / sizeof(unrelated[0]); i++)
                if (fabs(unrelated[i]) > 0.2)
                        fail_msg("unrelated pair %zu: cosine %.3f", i, unrelated[i]);
        /* The limit, stated: synonyms share no letters, so no similarity. */
        assert_true(fabs(synonyms) < 0.2);
}

static void test_empty_text(void **unused) {
        mmp_value_t *m = mmp_value_new_map();
        expect_error(str(""), NULL, "no text to embed");
        expect_error(str("   \n\t "), NULL, "no text to embed");
        expect_error(str("!!! ... --- \xe2\x80\x94"), NULL, "no text to embed");
        mmp_value_set(m, "text", str(""));
        expect_error(m, NULL, "no text to embed");
        expect_error(mmp_blob_new("", 0, "text/plain"), NULL, "no text to embed");
}

static void test_invalid_utf8(void **unused) {
        static const char *bad[] = {"\xff", "caf\xe9", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "ok \xe2\x82"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                expect_error(str(bad[i]), NULL, "not valid UTF-8");
        expect_error(mmp_blob_new("\x89PNG\r\n\x1a\n", 8, "image/png"), NULL, "not valid UTF-8");
}

static void test_bad_input(void **unused) {
        mmp_value_t *m = mmp_value_new_map(), *m2 = mmp_value_new_map();
        expect_error(mmp_value_new_int(3), NULL, "input must be a string");
        expect_error(mmp_value_new_array(), NULL, "input must be a string");
        mmp_value_set(m, "body", str("x"));
        expect_error(m, NULL, "no \"text\" field");
        mmp_value_set(m2, "text", mmp_value_new_int(1));
        expect_error(m2, NULL, "\"text\" must be a string");
}

/* A single 200,000-character "word" (base64, a URL): bounded work. */
static void test_long_word(void **unused) {
        size_t n = 200000;
        char *s = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
                s[i] = (char)('a' + (i * 7) % 26);
        s[n] = '\0';
        double *v = embed_dim(s, 128);
        assert_true(fabs(sqrt(dot(v, v, 128)) - 1.0) < 1e-6);
        free(v);
        free(s);
}

static void test_cancelled(void **unused) {
        struct mmp_call call = {.cancel = 1};
        mmp_value_t *out = run(str(para_other), NULL, &call); /* short texts finish before the first check */
        assert_non_null(out);
        mmp_value_free(out);
        char *s = malloc(3000 * 6 + 1);
        for (int i = 0; i < 3000; i++)
                memcpy(s + i * 6, "word  ", 6);
        s[3000 * 6] = '\0';
        memset(&call, 0, sizeof(call));
        call.cancel = 1;
        assert_null(run(str(s), NULL, &call));
        assert_string_equal(call.err, "cancelled");
        assert_int_equal(call.retriable, 1);
        free(s);
}

/* ---- reentrancy ---- */

#define N_THREADS 4
#define N_ROUNDS 150
static const char *const thread_texts[] = {para, para_edited, para_other, "hello world", "The cat sat on the mat."};
#define N_TEXTS (sizeof(thread_texts) / sizeof(thread_texts[0]))
static double *reference[N_TEXTS];

static void *thread_main(void *arg) {
        size_t seed = (size_t)arg, bad = 0;
        for (int r = 0; r < N_ROUNDS; r++) {
                size_t t = (seed + (size_t)r) % N_TEXTS;
                struct mmp_call call = {0};
                mmp_value_t *in = str(thread_texts[t]), *out = op_text(embed_state, &call, in, NULL);
                const mmp_value_t *arr = mmp_value_get(out, "embedding");
                mmp_value_free(in);
                if (!out || mmp_value_len(arr) != EMBED_DEFAULT_DIM) {
                        bad++;
                } else {
                        for (size_t i = 0; i < EMBED_DEFAULT_DIM; i++)
                                if (mmp_value_double(mmp_value_index(arr, i)) != reference[t][i])
                                        bad++;
                }
                mmp_value_free(out);
        }
        return (void *)bad;
}

static void test_reentrant(void **unused) {
        pthread_t th[N_THREADS];
        for (size_t t = 0; t < N_TEXTS; t++)
                reference[t] = embed_dim(thread_texts[t], EMBED_DEFAULT_DIM);
        for (size_t i = 0; i < N_THREADS; i++)
                assert_int_equal(pthread_create(&th[i], NULL, thread_main, (void *)i), 0);
        for (size_t i = 0; i < N_THREADS; i++) {
                void *bad;
                pthread_join(th[i], &bad);
                assert_int_equal((size_t)bad, 0);
        }
        for (size_t t = 0; t < N_TEXTS; t++)
                free(reference[t]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_descriptor),    cmocka_unit_test(test_describe),  cmocka_unit_test(test_hash),
            cmocka_unit_test(test_pinned_output), cmocka_unit_test(test_shape_and_default_dim),
            cmocka_unit_test(test_unit_norm),     cmocka_unit_test(test_deterministic),
            cmocka_unit_test(test_dim_option),    cmocka_unit_test(test_normalisation),
            cmocka_unit_test(test_similarities),  cmocka_unit_test(test_empty_text),
            cmocka_unit_test(test_invalid_utf8),  cmocka_unit_test(test_bad_input),
            cmocka_unit_test(test_long_word),     cmocka_unit_test(test_cancelled),
            cmocka_unit_test(test_reentrant),
        };
        return cmocka_run_group_tests(tests, load_plugin, unload_plugin);
}
