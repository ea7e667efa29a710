/*
 * The text plugin: descriptor, init/fini and the operations extract, chunk
 * and metadata over plain text, Markdown and HTML. init/fini run on the
 * loading thread; the operations on worker-pool threads, reentrantly.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef MMP_TEXT_WITH_LIBXML2
#include <libxml/parser.h>
#endif

#include "text.h"

/* ---- call helpers and buffers ---- */

void text_fail(text_ctx_t *ctx, const char *fmt, ...) {
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        ctx->host->call_fail(ctx->call, 0, "%s", msg);
}

int text_fail_oom(text_ctx_t *ctx) {
        ctx->host->call_fail(ctx->call, 1, "out of memory");
        return -1;
}

int text_cancelled(text_ctx_t *ctx) {
        if (!ctx->host->call_cancelled(ctx->call))
                return 0;
        /* A deadline, not bad input: trying again later may succeed. */
        ctx->host->call_fail(ctx->call, 1, "cancelled");
        return 1;
}

int text_buf_reserve(text_buf_t *b, size_t extra) {
        size_t cap;
        char *p;

        if (b->cap - b->len > extra)
                return 0;
        cap = b->cap ? b->cap : 64;
        while (cap - b->len <= extra) {
                if (cap > SIZE_MAX / 2)
                        return -1;
                cap *= 2;
        }
        if (!(p = realloc(b->data, cap)))
                return -1;
        b->data = p;
        b->cap = cap;
        return 0;
}

int text_buf_append(text_buf_t *b, const char *s, size_t n) {
        if (text_buf_reserve(b, n))
                return -1;
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
}

void text_buf_free(text_buf_t *b) {
        free(b->data);
        *b = (text_buf_t){0};
}

/* ---- options ---- */

typedef struct text_opts {
        text_format_t format; /* AUTO: from the input */
        size_t max_bytes;
        text_chunk_opts_t chunk;
        int allow_empty;
} text_opts_t;

static const char *const text_keys_common[] = {"format", "max_bytes", NULL};
static const char *const text_keys_chunk[] = {"format", "max_bytes", "size", "overlap",
                                              "allow_empty", "max_chunks", NULL};

/* Refuses keys the operation does not know: a typo ("chunk_size") must not
 * silently fall back to a default. */
static int opts_check_keys(text_ctx_t *ctx, const char *op, const mmp_value_t *opts,
                           const char *const *known) {
        const mmp_host_api_t *h = ctx->host;
        char list[256] = "";

        for (size_t i = 0; i < h->value_len(opts); i++) {
                const char *key = h->value_key(opts, i);
                const char *const *k;
                for (k = known; *k && strcmp(*k, key); k++)
                        ;
                if (*k)
                        continue;
                for (k = known; *k; k++)
                        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                                 k == known ? "" : ", ", *k);
                text_fail(ctx, "%s: unknown option opts.%s (known: %s)", op, key, list);
                return -1;
        }
        return 0;
}

/* An integer option in [min, max]; integral doubles are accepted since Lua
 * numbers may arrive as doubles. Absent or nil keeps *out. */
static int opt_size(text_ctx_t *ctx, const mmp_value_t *opts, const char *key, size_t min,
                    size_t max, size_t *out) {
        const mmp_host_api_t *h = ctx->host;
        const mmp_value_t *v = h->value_get(opts, key);
        double d;
        int64_t i;

        switch (h->value_type(v)) {
        case MMP_VAL_NIL:
                return 0;
        case MMP_VAL_INT:
                i = h->value_int(v);
                break;
        case MMP_VAL_DOUBLE:
                d = h->value_double(v);
                if (!(d >= -9e18 && d <= 9e18) || (double)(int64_t)d != d)
                        goto not_integer;
                i = (int64_t)d;
                break;
        default:
                goto not_integer;
        }
        if (i < 0 || (uint64_t)i < min || (uint64_t)i > max) {
                text_fail(ctx, "opts.%s must be between %zu and %zu (got %lld)", key, min, max,
                          (long long)i);
                return -1;
        }
        *out = (size_t)i;
        return 0;
not_integer:
        text_fail(ctx, "opts.%s must be an integer", key);
        return -1;
}

static int opt_format(text_ctx_t *ctx, const mmp_value_t *opts, text_format_t *out) {
        const mmp_host_api_t *h = ctx->host;
        const mmp_value_t *v = h->value_get(opts, "format");
        const char *s;

        if (h->value_type(v) == MMP_VAL_NIL)
                return 0;
        s = h->value_type(v) == MMP_VAL_STRING ? h->value_string(v, NULL) : "";
        if (!strcmp(s, "plain"))
                *out = TEXT_FORMAT_PLAIN;
        else if (!strcmp(s, "markdown"))
                *out = TEXT_FORMAT_MARKDOWN;
        else if (!strcmp(s, "html"))
                *out = TEXT_FORMAT_HTML;
        else if (strcmp(s, "auto")) {
                text_fail(ctx, "opts.format must be \"plain\", \"markdown\", \"html\" or \"auto\"");
                return -1;
        }
        return 0;
}

static int opt_bool(text_ctx_t *ctx, const mmp_value_t *opts, const char *key, int *out) {
        const mmp_value_t *v = ctx->host->value_get(opts, key);
        switch (ctx->host->value_type(v)) {
        case MMP_VAL_NIL: return 0;
        case MMP_VAL_BOOL: *out = ctx->host->value_bool(v); return 0;
        default: text_fail(ctx, "opts.%s must be a boolean", key); return -1;
        }
}

/* Fills `o` from `opts` (a map or nil) for operation `op`. */
static int opts_parse(text_ctx_t *ctx, const char *op, const mmp_value_t *opts, text_opts_t *o) {
        mmp_value_type_t t = ctx->host->value_type(opts);
        int chunk = !strcmp(op, "chunk");

        *o = (text_opts_t){
                .max_bytes = TEXT_DEFAULT_MAX_BYTES,
                .chunk = {TEXT_DEFAULT_CHUNK_SIZE, TEXT_DEFAULT_CHUNK_OVERLAP,
                          TEXT_DEFAULT_MAX_CHUNKS},
        };
        if (t == MMP_VAL_NIL)
                return 0;
        if (t != MMP_VAL_MAP) {
                text_fail(ctx, "%s: opts must be a map", op);
                return -1;
        }
        if (opts_check_keys(ctx, op, opts, chunk ? text_keys_chunk : text_keys_common) ||
            opt_format(ctx, opts, &o->format) ||
            opt_size(ctx, opts, "max_bytes", 1, SIZE_MAX / 4, &o->max_bytes))
                return -1;
        if (!chunk)
                return 0;
        if (opt_size(ctx, opts, "size", 1, (size_t)1 << 30, &o->chunk.size) ||
            opt_size(ctx, opts, "overlap", 0, (size_t)1 << 30, &o->chunk.overlap) ||
            opt_size(ctx, opts, "max_chunks", 1, SIZE_MAX / 4, &o->chunk.max_chunks) ||
            opt_bool(ctx, opts, "allow_empty", &o->allow_empty))
                return -1;
        if (o->chunk.overlap >= o->chunk.size) {
                text_fail(ctx, "opts.overlap (%zu) must be smaller than opts.size (%zu)",
                          o->chunk.overlap, o->chunk.size);
                return -1;
        }
        return 0;
}

/* ---- operations ---- */

/* Validates opts and loads the input; on success the caller owns doc. */
static int op_begin(text_ctx_t *ctx, const char *op, const mmp_value_t *input,
                    const mmp_value_t *opts, text_opts_t *o, text_doc_t *doc) {
        memset(doc, 0, sizeof(*doc));
        if (opts_parse(ctx, op, opts, o))
                return -1;
        if (text_doc_load(ctx, input, o->format, o->max_bytes, doc)) {
                text_buf_free(&doc->text);
                return -1;
        }
        return 0;
}

static int map_int(text_ctx_t *ctx, mmp_value_t *m, const char *key, size_t v) {
        return ctx->host->value_set(m, key, ctx->host->value_new_int((int64_t)v));
}

static int map_str(text_ctx_t *ctx, mmp_value_t *m, const char *key, const char *s, size_t n) {
        return ctx->host->value_set(m, key, ctx->host->value_new_string(s ? s : "", n));
}

/* Hands `m` back, or frees it and fails the call when building it failed. */
static mmp_value_t *op_result(text_ctx_t *ctx, mmp_value_t *m, int failed, text_doc_t *doc) {
        text_buf_free(&doc->text);
        if (m && !failed)
                return m;
        ctx->host->value_free(m);
        text_fail_oom(ctx);
        return NULL;
}

static mmp_value_t *text_op_extract(void *state, mmp_call_t *call, const mmp_value_t *input,
                                    const mmp_value_t *opts) {
        text_ctx_t ctx = {((text_state_t *)state)->host, call};
        const char *fmt;
        text_opts_t o;
        text_doc_t doc;
        mmp_value_t *m;

        if (op_begin(&ctx, "extract", input, opts, &o, &doc))
                return NULL;
        fmt = text_format_name(doc.format);
        m = ctx.host->value_new_map();
        return op_result(&ctx, m,
                         !m || map_str(&ctx, m, "text", doc.text.data, doc.text.len) ||
                             map_str(&ctx, m, "format", fmt, strlen(fmt)) ||
                             map_int(&ctx, m, "bytes", doc.bytes) ||
                             map_int(&ctx, m, "invalid_bytes", doc.utf8.invalid_bytes) ||
                             map_int(&ctx, m, "replaced", doc.utf8.replaced),
                         &doc);
}

static mmp_value_t *text_op_chunk(void *state, mmp_call_t *call, const mmp_value_t *input,
                                  const mmp_value_t *opts) {
        text_ctx_t ctx = {((text_state_t *)state)->host, call};
        text_opts_t o;
        text_doc_t doc;
        mmp_value_t *chunks;

        if (op_begin(&ctx, "chunk", input, opts, &o, &doc))
                return NULL;
        chunks = text_chunk_build(&ctx, doc.text.data ? doc.text.data : "", doc.text.len, &o.chunk);
        text_buf_free(&doc.text);
        if (chunks && ctx.host->value_len(chunks) == 0 && !o.allow_empty) {
                ctx.host->value_free(chunks);
                text_fail(&ctx, "no text: input has only whitespace (set opts.allow_empty to "
                                "get an empty array)");
                return NULL;
        }
        return chunks;
}

/* Characters, words (runs of non-whitespace) and lines (a last line without
 * a newline counts) of valid UTF-8. 0, or -1 when the call was cancelled. */
static int text_count(text_ctx_t *ctx, const char *s, size_t n, size_t counts[3]) {
        size_t chars = 0, words = 0, lines = 0, next_check = TEXT_CANCEL_STRIDE;
        int in_word = 0, space;
        uint32_t cp;

        for (size_t i = 0; i < n; chars++) {
                if (i >= next_check) {
                        if (text_cancelled(ctx))
                                return -1;
                        next_check += TEXT_CANCEL_STRIDE;
                }
                i += text_utf8_decode(s + i, n - i, &cp);
                space = text_is_space(cp);
                if (!space && !in_word)
                        words++;
                in_word = !space;
                if (cp == '\n')
                        lines++;
        }
        if (n > 0 && s[n - 1] != '\n')
                lines++;
        counts[0] = chars;
        counts[1] = words;
        counts[2] = lines;
        return 0;
}

static mmp_value_t *text_op_metadata(void *state, mmp_call_t *call, const mmp_value_t *input,
                                     const mmp_value_t *opts) {
        text_ctx_t ctx = {((text_state_t *)state)->host, call};
        size_t counts[3];
        const char *fmt;
        text_opts_t o;
        text_doc_t doc;
        mmp_value_t *m;

        if (op_begin(&ctx, "metadata", input, opts, &o, &doc))
                return NULL;
        if (text_count(&ctx, doc.text.data, doc.text.len, counts)) {
                text_buf_free(&doc.text);
                return NULL;
        }
        fmt = text_format_name(doc.format);
        m = ctx.host->value_new_map();
        return op_result(&ctx, m,
                         !m || map_int(&ctx, m, "characters", counts[0]) ||
                             map_int(&ctx, m, "words", counts[1]) ||
                             map_int(&ctx, m, "lines", counts[2]) ||
                             map_int(&ctx, m, "bytes", doc.bytes) ||
                             map_str(&ctx, m, "format", fmt, strlen(fmt)) ||
                             map_int(&ctx, m, "invalid_bytes", doc.utf8.invalid_bytes),
                         &doc);
}

/* ---- descriptor ---- */

static int text_init(const mmp_host_api_t *host, void **statep, char *errstr,
                     size_t errstr_size) {
        text_state_t *st;

        if (host->abi_major != MMP_PLUGIN_ABI_MAJOR) {
                snprintf(errstr, errstr_size, "host API major %u, plugin built for %d",
                         host->abi_major, MMP_PLUGIN_ABI_MAJOR);
                return -1;
        }
        if (host->struct_size < sizeof(mmp_host_api_t)) {
                snprintf(errstr, errstr_size, "host API too old (%u bytes, need %zu)",
                         host->struct_size, sizeof(mmp_host_api_t));
                return -1;
        }
        if (!(st = host->alloc(sizeof(*st)))) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        st->host = host;
#ifdef MMP_TEXT_WITH_LIBXML2
        /* libxml2 must be initialised once before threads use it; repeated
         * calls are harmless. Never cleaned up: other code may share it. */
        xmlInitParser();
#endif
        *statep = st;
        return 0;
}

static void text_fini(void *state) {
        text_state_t *st = state;
        if (st)
                st->host->free(st);
}

static const char *const text_content_types[] = {"text/*", NULL};

static const mmp_plugin_op_t text_ops[] = {
        {"extract", "extract(input, {format, max_bytes}) -> {text, format, bytes, invalid_bytes, "
                    "replaced}: the UTF-8 text of plain text, Markdown or HTML",
         text_op_extract},
        {"chunk", "chunk(input, {size=1000, overlap=100, allow_empty, format, max_bytes}) -> "
                  "[{index, text, start, stop, characters}]: sentence-aware overlapping chunks",
         text_op_chunk},
        {"metadata", "metadata(input, {format, max_bytes}) -> {characters, words, lines, bytes, "
                     "format, invalid_bytes} of the extracted text",
         text_op_metadata},
        {NULL, NULL, NULL},
};

static const mmp_plugin_t text_plugin = {
        MMP_PLUGIN_HEADER,
        .name = "text",
        .version = "1.0.0",
        .description = "Plain text, Markdown and HTML: text extraction, chunking, counts",
        .content_types = text_content_types,
        .ops = text_ops,
        .init = text_init,
        .fini = text_fini,
};

MMP_PLUGIN_EXPORT const mmp_plugin_t *mmp_plugin_entry(void) {
        return &text_plugin;
}
