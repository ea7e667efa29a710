/*
 * The embed plugin: the local text embedding model "hashed-ngrams-v1"
 * (signed feature hashing of words, word bigrams and character n-grams;
 * docs/models.md says what it captures and what it does not).
 * init/fini run on the loading thread; `text` on worker-pool threads,
 * reentrantly: each call keeps its data on its own stack and heap.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"

/* Set once by init, before any operation runs; read-only afterwards. */
static const mmp_host_api_t *host;

typedef struct cancel_arg {
        mmp_call_t *call;
} cancel_arg_t;

static int call_cancelled(void *arg) {
        return host->call_cancelled(((cancel_arg_t *)arg)->call);
}

/* The text of the input: a string, a map with a string `text`, or a blob
 * of UTF-8. Returns NULL after call_fail. Borrowed from the input. */
static const char *input_text(mmp_call_t *call, const mmp_value_t *input, size_t *lenp) {
        const mmp_value_t *v = input;
        const char *s;

        if (host->value_type(v) == MMP_VAL_MAP) {
                v = host->value_get(input, "text");
                if (host->value_type(v) == MMP_VAL_NIL) {
                        host->call_fail(call, 0, "input map has no \"text\" field");
                        return NULL;
                }
                if (host->value_type(v) != MMP_VAL_STRING) {
                        host->call_fail(call, 0, "input field \"text\" must be a string");
                        return NULL;
                }
        }
        switch (host->value_type(v)) {
        case MMP_VAL_STRING:
                return host->value_string(v, lenp);
        case MMP_VAL_BLOB:
                if (!(s = host->blob_data(v, lenp, NULL)))
                        *lenp = 0, s = "";
                return s;
        default:
                host->call_fail(call, 0, "input must be a string, a map with \"text\" or a blob of UTF-8 text");
                return NULL;
        }
}

/* opts.dim, EMBED_MIN_DIM..EMBED_MAX_DIM, default EMBED_DEFAULT_DIM. Returns 0 after call_fail. */
static uint32_t opt_dim(mmp_call_t *call, const mmp_value_t *opts) {
        const mmp_value_t *v = host->value_get(opts, "dim");
        double d;

        switch (host->value_type(v)) {
        case MMP_VAL_NIL:
                return EMBED_DEFAULT_DIM;
        case MMP_VAL_INT:
                d = (double)host->value_int(v);
                break;
        case MMP_VAL_DOUBLE:
                d = host->value_double(v);
                if (d == floor(d))
                        break;
                /* fall through */
        default:
                host->call_fail(call, 0, "opts.dim must be an integer from %d to %d", EMBED_MIN_DIM,
                                EMBED_MAX_DIM);
                return 0;
        }
        if (d < EMBED_MIN_DIM || d > EMBED_MAX_DIM) {
                host->call_fail(call, 0, "opts.dim must be from %d to %d, got %.0f", EMBED_MIN_DIM, EMBED_MAX_DIM,
                                d);
                return 0;
        }
        return (uint32_t)d;
}

/* { embedding = [dim doubles], dim = dim, model = EMBED_MODEL_NAME } */
static mmp_value_t *result(const double *vec, uint32_t dim) {
        mmp_value_t *out = host->value_new_map(), *arr = host->value_new_array();
        if (!out || !arr)
                goto fail;
        for (uint32_t i = 0; i < dim; i++)
                if (host->value_push(arr, host->value_new_double(vec[i])))
                        goto fail;
        if (host->value_set(out, "embedding", arr)) {
                arr = NULL; /* taken even on failure */
                goto fail;
        }
        arr = NULL;
        if (host->value_set(out, "dim", host->value_new_int(dim)) ||
            host->value_set(out, "model", host->value_new_string(EMBED_MODEL_NAME, strlen(EMBED_MODEL_NAME))))
                goto fail;
        return out;
fail:
        host->value_free(arr);
        host->value_free(out);
        return NULL;
}

/* text(input, opts) -> { embedding, dim, model } */
static mmp_value_t *op_text(void *state, mmp_call_t *call, const mmp_value_t *input, const mmp_value_t *opts) {
        embed_words_t words;
        cancel_arg_t ca = {call};
        char err[160];
        const char *s;
        size_t len;
        uint32_t dim;
        double *vec;
        mmp_value_t *out;
        int oom, rc;

        if (!(s = input_text(call, input, &len)) || !(dim = opt_dim(call, opts)))
                return NULL;
        if (embed_tokenize(s, len, &words, err, sizeof(err), &oom)) {
                host->call_fail(call, oom, "%s", err);
                return NULL;
        }
        if (!words.n) {
                embed_words_free(&words);
                host->call_fail(call, 0, "no text to embed (the input has no letters or digits)");
                return NULL;
        }
        if (!(vec = malloc(dim * sizeof(*vec)))) {
                embed_words_free(&words);
                host->call_fail(call, 1, "out of memory");
                return NULL;
        }
        rc = embed_vectorize(&words, dim, vec, call_cancelled, &ca);
        embed_words_free(&words);
        if (rc) {
                free(vec);
                if (rc == -3)
                        host->call_fail(call, 0, "the features cancelled out at dim %u: try another dim", dim);
                else
                        host->call_fail(call, 1, "%s", rc == -2 ? "cancelled" : "out of memory");
                return NULL;
        }
        out = result(vec, dim);
        free(vec);
        if (!out)
                host->call_fail(call, 1, "out of memory");
        return out;
}

/* describe(input, {keywords=8, summary_chars=240}) -> { summary, keywords, model } */
static mmp_value_t *op_describe(void *state, mmp_call_t *call, const mmp_value_t *input, const mmp_value_t *opts) {
        embed_words_t words;
        char err[160];
        const char *s;
        size_t len, lead_start, lead_len, n;
        int64_t want = 8, chars = 240;
        kw_t *kws = NULL;
        int oom;
        mmp_value_t *out, *arr;
        (void)state;
        if (!(s = input_text(call, input, &len)))
                return NULL;
        if (host->value_type(host->value_get(opts, "keywords")) == MMP_VAL_INT)
                want = host->value_int(host->value_get(opts, "keywords"));
        if (host->value_type(host->value_get(opts, "summary_chars")) == MMP_VAL_INT)
                chars = host->value_int(host->value_get(opts, "summary_chars"));
        if (want < 0 || want > 100 || chars < 16 || chars > 4096) {
                host->call_fail(call, 0, "describe: opts.keywords must be 0..100 and opts.summary_chars 16..4096");
                return NULL;
        }
        if (embed_tokenize(s, len, &words, err, sizeof(err), &oom)) {
                host->call_fail(call, oom, "%s", err);
                return NULL;
        }
        n = embed_keywords(&words, &kws);
        lead_len = embed_lead_sentence(s, len, (size_t)chars, &lead_start);
        out = host->value_new_map();
        arr = host->value_new_array();
        for (size_t i = 0; i < n && (int64_t)i < want; i++)
                host->value_push(arr, host->value_new_string(words.text + kws[i].start, kws[i].len));
        host->value_set(out, "summary", host->value_new_string(s + lead_start, lead_len));
        host->value_set(out, "keywords", arr);
        host->value_set(out, "model", host->value_new_string("extractive-v1", 13));
        free(kws);
        embed_words_free(&words);
        return out;
}

static int embed_init(const mmp_host_api_t *h, void **statep, char *errstr, size_t errstr_size) {
        /* Everything used here is in ABI 1.0's table, up to call_cancelled. */
        if (h->struct_size < offsetof(mmp_host_api_t, call_cancelled) + sizeof(h->call_cancelled)) {
                snprintf(errstr, errstr_size, "host API table too small (%u bytes)", h->struct_size);
                return -1;
        }
        host = h;
        *statep = NULL;
        return 0;
}

static void embed_fini(void *state) {
}

static const mmp_plugin_op_t embed_ops[] = {
        {"text",
         "text(string | {text=} | blob, {dim=256}) -> {embedding=[dim floats, L2 norm 1], dim, "
         "model=\"" EMBED_MODEL_NAME "\"}",
         op_text},
        {"describe",
         "describe(string | {text=} | blob, {keywords=8, summary_chars=240}) -> {summary=lead sentence, "
         "keywords=[most frequent content words], model=\"extractive-v1\"}",
         op_describe},
        {NULL, NULL, NULL},
};

static const char *const embed_types[] = {"text/*", NULL};

static const mmp_plugin_t embed_plugin = {
        MMP_PLUGIN_HEADER,
        .name = "embed",
        .version = "1.0.0",
        .description = "local text embedding " EMBED_MODEL_NAME ": hashed word and character n-grams "
                       "(lexical similarity, not semantics)",
        .content_types = embed_types,
        .ops = embed_ops,
        .init = embed_init,
        .fini = embed_fini,
};

MMP_PLUGIN_EXPORT const mmp_plugin_t *mmp_plugin_entry(void) {
        return &embed_plugin;
}
