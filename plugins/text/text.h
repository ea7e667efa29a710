/*
 * Internal interfaces of the text plugin, shared by its files: the per-call
 * context, byte buffers, UTF-8 cleaning, markup extraction and chunking.
 * Everything here runs on a worker-pool thread, inside one operation call.
 */
#ifndef MMP_TEXT_H
#define MMP_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "mmpipe/plugin.h"

/* Defaults of the options; docs/plugins/text.md lists them all. */
#define TEXT_DEFAULT_MAX_BYTES ((size_t)64 << 20)
#define TEXT_DEFAULT_CHUNK_SIZE 1000
#define TEXT_DEFAULT_CHUNK_OVERLAP 100
#define TEXT_DEFAULT_MAX_CHUNKS 1000000
/* Binary detection: more than 1 byte in TEXT_BINARY_RATIO invalid, in the
 * first TEXT_BINARY_HEAD bytes or overall, refuses the input. */
#define TEXT_BINARY_HEAD ((size_t)64 << 10)
#define TEXT_BINARY_RATIO 10
/* Long loops over bytes ask the host about cancellation this often. */
#define TEXT_CANCEL_STRIDE ((size_t)4 << 20)

typedef enum text_format {
        TEXT_FORMAT_AUTO = 0, /* not decided yet: no opts.format given */
        TEXT_FORMAT_PLAIN,
        TEXT_FORMAT_MARKDOWN,
        TEXT_FORMAT_HTML,
} text_format_t;

/* The plugin state: what init() stored. Read-only after init. */
typedef struct text_state {
        const mmp_host_api_t *host;
} text_state_t;

/* One operation call, passed to every helper that can fail. */
typedef struct text_ctx {
        const mmp_host_api_t *host;
        mmp_call_t *call;
} text_ctx_t;

/* Records a permanent failure (corrupt or refused input) on the call. */
void text_fail(text_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records "out of memory" (retriable) and returns -1. */
int text_fail_oom(text_ctx_t *ctx);
/* Non-zero (and the call failed with "cancelled") once the host cancelled. */
int text_cancelled(text_ctx_t *ctx);

/* A growable byte buffer, always NUL-terminated once non-empty. Scratch
 * memory of one call: plain malloc, never handed to the host. */
typedef struct text_buf {
        char *data;
        size_t len, cap;
} text_buf_t;

int text_buf_reserve(text_buf_t *b, size_t extra); /* 0 or -1 (no memory) */
int text_buf_append(text_buf_t *b, const char *s, size_t n);
void text_buf_free(text_buf_t *b); /* leaves an empty buffer */

/* ---- UTF-8 (text_utf8.c) ---- */

/* What text_utf8_clean() found in the raw bytes. */
typedef struct text_utf8_stats {
        size_t invalid_bytes; /* bytes inside ill-formed subsequences */
        size_t replaced;      /* U+FFFD written: one per maximal subpart */
} text_utf8_stats_t;

/* Validates raw input and writes clean UTF-8 into `out` (appended): BOM
 * dropped, ill-formed subsequences replaced by U+FFFD, CR LF and lone CR
 * turned into LF. Refuses empty and binary input (call failed, -1). */
int text_utf8_clean(text_ctx_t *ctx, const char *data, size_t len, text_buf_t *out,
                    text_utf8_stats_t *stats);
/* Makes `b` valid UTF-8 by the same replacement rule (it is left alone when
 * it already is); used on what a markup parser wrote. 0 or -1 (no memory). */
int text_utf8_repair(text_buf_t *b);
/* Decodes the character at s[0] of valid UTF-8 (n > 0 bytes left); returns
 * its length and stores the code point. An invalid byte reads as U+FFFD of
 * length 1, so callers always make progress. */
size_t text_utf8_decode(const char *s, size_t n, uint32_t *cp);
/* Start of the character before byte offset `pos` (> 0) of valid UTF-8. */
size_t text_utf8_prev(const char *s, size_t pos);
/* Unicode White_Space property. */
int text_is_space(uint32_t cp);
/* Characters (code points) in s[0..n). */
size_t text_utf8_count(const char *s, size_t n);

/* ---- markup (text_html.c, text_markdown.c) ---- */

/* Collects extracted text: whitespace collapsing, line breaks owed by
 * block elements, no leading or trailing blank space. */
typedef struct text_emit {
        text_buf_t *out;
        int pending_breaks; /* newlines owed before the next text, 0..2 */
        int pending_space;  /* a space owed before the next text */
        int failed;         /* out of memory while appending */
} text_emit_t;

void text_emit_break(text_emit_t *e, int newlines); /* block boundary: at least n */
void text_emit_newline(text_emit_t *e);             /* <br>: one more newline */
void text_emit_space(text_emit_t *e);
/* Appends text; collapse: runs of ASCII whitespace become one space. */
void text_emit_text(text_emit_t *e, const char *s, size_t n, int collapse);
void text_emit_finish(text_emit_t *e); /* drops trailing whitespace */

/* Both return 0, or -1 with the call failed ("not supported in this build"
 * when the library was missing at build time). `out` receives the text. */
int text_html_extract(text_ctx_t *ctx, const char *s, size_t n, text_buf_t *out);
int text_markdown_extract(text_ctx_t *ctx, const char *s, size_t n, text_buf_t *out);
/* Appends the text of an HTML fragment to an emitter (markdown's raw HTML
 * blocks); a no-op without libxml2. 0 or -1 (call failed). */
int text_html_emit(text_ctx_t *ctx, text_emit_t *e, const char *s, size_t n);

/* ---- chunking (text_chunk.c) ---- */

typedef struct text_chunk_opts {
        size_t size;       /* max characters per chunk, >= 1 */
        size_t overlap;    /* < size */
        size_t max_chunks; /* refuse to build more */
} text_chunk_opts_t;

/* Builds the array of chunk maps over valid UTF-8 `s`. Returns a new value
 * owned by the caller (an empty array when s holds only whitespace), or NULL
 * with the call failed. */
mmp_value_t *text_chunk_build(text_ctx_t *ctx, const char *s, size_t n,
                              const text_chunk_opts_t *opts);

/* ---- input (text_input.c) ---- */

/* One input, loaded and extracted. */
typedef struct text_doc {
        text_buf_t text;      /* extracted UTF-8 text */
        text_format_t format; /* never AUTO once loaded */
        size_t bytes;         /* size of the raw input */
        text_utf8_stats_t utf8;
} text_doc_t;

/* Loads `input` (string, blob, or map with path or text), decides its format
 * (`format` wins unless AUTO), cleans and extracts it. 0, or -1 with the call
 * failed. The caller frees doc->text with text_buf_free in both cases. */
int text_doc_load(text_ctx_t *ctx, const mmp_value_t *input, text_format_t format,
                  size_t max_bytes, text_doc_t *doc);
const char *text_format_name(text_format_t f);

#endif
