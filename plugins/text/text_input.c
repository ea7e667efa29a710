/*
 * The inputs every text operation accepts (a string, a blob, or a map with
 * `path` or `text`), file reading, format detection and extraction into a
 * text_doc_t. Worker-pool threads; plain POSIX I/O, no state outside the call.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strerror_r returning char * */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "text.h"

/* The raw bytes of one input: borrowed from a value, or read from a file. */
typedef struct text_raw {
        const char *data;
        size_t len;
        text_buf_t file;      /* owns the bytes of a file */
        text_format_t format; /* from content type or extension; AUTO if unknown */
} text_raw_t;

const char *text_format_name(text_format_t f) {
        switch (f) {
        case TEXT_FORMAT_MARKDOWN: return "markdown";
        case TEXT_FORMAT_HTML: return "html";
        default: return "plain";
        }
}

/* "text/html; charset=utf-8" -> html. AUTO for types that say nothing
 * about the format (application/octet-stream, missing). */
static text_format_t format_from_content_type(const char *ct) {
        static const struct {
                const char *type;
                text_format_t format;
        } types[] = {
                {"text/markdown", TEXT_FORMAT_MARKDOWN},
                {"text/x-markdown", TEXT_FORMAT_MARKDOWN},
                {"text/html", TEXT_FORMAT_HTML},
                {"application/xhtml+xml", TEXT_FORMAT_HTML},
                {"text/plain", TEXT_FORMAT_PLAIN},
        };
        size_t n;

        if (!ct)
                return TEXT_FORMAT_AUTO;
        while (*ct == ' ')
                ct++;
        n = strcspn(ct, "; ");
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
                if (strlen(types[i].type) == n && !strncasecmp(ct, types[i].type, n))
                        return types[i].format;
        /* Any other text type (csv, x-log, ...) is read as plain text. */
        return !strncasecmp(ct, "text/", 5) ? TEXT_FORMAT_PLAIN : TEXT_FORMAT_AUTO;
}

static text_format_t format_from_name(const char *path) {
        static const struct {
                const char *ext;
                text_format_t format;
        } exts[] = {
                {"md", TEXT_FORMAT_MARKDOWN},  {"markdown", TEXT_FORMAT_MARKDOWN},
                {"mdown", TEXT_FORMAT_MARKDOWN}, {"mkd", TEXT_FORMAT_MARKDOWN},
                {"html", TEXT_FORMAT_HTML},    {"htm", TEXT_FORMAT_HTML},
                {"xhtml", TEXT_FORMAT_HTML},   {"txt", TEXT_FORMAT_PLAIN},
                {"text", TEXT_FORMAT_PLAIN},
        };
        const char *slash, *dot;

        if (!path)
                return TEXT_FORMAT_AUTO;
        slash = strrchr(path, '/');
        dot = strrchr(slash ? slash : path, '.');
        if (!dot)
                return TEXT_FORMAT_AUTO;
        for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++)
                if (!strcasecmp(dot + 1, exts[i].ext))
                        return exts[i].format;
        return TEXT_FORMAT_AUTO;
}

static int fail_errno(text_ctx_t *ctx, const char *what, const char *path, int err) {
        char buf[128];
        text_fail(ctx, "%s '%s': %s", what, path, strerror_r(err, buf, sizeof(buf)));
        return -1;
}

/* `path` is NULL for inputs that are values. */
static int fail_too_large(text_ctx_t *ctx, const char *path, size_t len, size_t max) {
        text_fail(ctx, "%s%s%s too large: %zu bytes (limit %zu bytes, set by opts.max_bytes)",
                  path ? "file '" : "input", path ? path : "", path ? "'" : "", len, max);
        return -1;
}

/* Reads a whole file with read(2), refusing more than max_bytes even when
 * the file grows while it is read or is not a regular file. */
static int read_fd(text_ctx_t *ctx, int fd, const char *path, size_t max_bytes, text_buf_t *out) {
        struct stat st;
        ssize_t got;

        if (fstat(fd, &st))
                return fail_errno(ctx, "cannot stat", path, errno);
        if (S_ISDIR(st.st_mode))
                return fail_errno(ctx, "cannot read", path, EISDIR);
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max_bytes)
                return fail_too_large(ctx, path, (size_t)st.st_size, max_bytes);
        if (text_buf_reserve(out, S_ISREG(st.st_mode) ? (size_t)st.st_size + 2 : 65536))
                return text_fail_oom(ctx);
        for (;;) {
                if (out->cap - out->len < 2 && text_buf_reserve(out, out->cap))
                        return text_fail_oom(ctx);
                got = read(fd, out->data + out->len, out->cap - out->len - 1);
                if (got < 0 && errno == EINTR)
                        continue;
                if (got < 0)
                        return fail_errno(ctx, "cannot read", path, errno);
                if (got == 0)
                        return 0;
                out->len += (size_t)got;
                out->data[out->len] = '\0';
                if (out->len > max_bytes)
                        return fail_too_large(ctx, path, out->len, max_bytes);
        }
}

static int read_file(text_ctx_t *ctx, const char *path, size_t max_bytes, text_buf_t *out) {
        int fd, rc;

        do
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        while (fd < 0 && errno == EINTR);
        if (fd < 0)
                return fail_errno(ctx, "cannot open", path, errno);
        rc = read_fd(ctx, fd, path, max_bytes, out);
        close(fd);
        return rc;
}

static const char *map_string(text_ctx_t *ctx, const mmp_value_t *map, const char *key,
                              size_t *lenp) {
        const mmp_value_t *v = ctx->host->value_get(map, key);
        return ctx->host->value_type(v) == MMP_VAL_STRING ? ctx->host->value_string(v, lenp) : NULL;
}

/* { path = "...", content_type = "...", key = "..." } or { text = "...", ... }:
 * the format comes from content_type, then the extension of path, then of
 * key (an event's object key when path is a temp file). */
static int raw_from_map(text_ctx_t *ctx, const mmp_value_t *map, size_t max_bytes,
                        text_raw_t *raw) {
        const mmp_host_api_t *h = ctx->host;
        const mmp_value_t *path = h->value_get(map, "path"), *text = h->value_get(map, "text");

        if (path && text) {
                text_fail(ctx, "input map has both 'path' and 'text': give one");
                return -1;
        }
        if (!path && !text) {
                text_fail(ctx, "input map needs 'path' (a file) or 'text' (a string)");
                return -1;
        }
        if (h->value_type(path ? path : text) != MMP_VAL_STRING) {
                text_fail(ctx, "input '%s' must be a string", path ? "path" : "text");
                return -1;
        }
        raw->format = format_from_content_type(map_string(ctx, map, "content_type", NULL));
        if (raw->format == TEXT_FORMAT_AUTO && path)
                raw->format = format_from_name(h->value_string(path, NULL));
        if (raw->format == TEXT_FORMAT_AUTO)
                raw->format = format_from_name(map_string(ctx, map, "key", NULL));
        if (text) {
                raw->data = h->value_string(text, &raw->len);
                return 0;
        }
        if (read_file(ctx, h->value_string(path, NULL), max_bytes, &raw->file))
                return -1;
        raw->data = raw->file.data;
        raw->len = raw->file.len;
        return 0;
}

static int raw_from_value(text_ctx_t *ctx, const mmp_value_t *input, size_t max_bytes,
                          text_raw_t *raw) {
        const mmp_host_api_t *h = ctx->host;
        const char *ct = NULL;

        switch (h->value_type(input)) {
        case MMP_VAL_STRING:
                raw->data = h->value_string(input, &raw->len);
                break;
        case MMP_VAL_BLOB:
                raw->data = h->blob_data(input, &raw->len, &ct);
                raw->format = format_from_content_type(ct);
                break;
        case MMP_VAL_MAP:
                return raw_from_map(ctx, input, max_bytes, raw);
        default:
                text_fail(ctx, "input must be a string, a blob, or a map with 'path' or 'text'");
                return -1;
        }
        if (raw->len > max_bytes)
                return fail_too_large(ctx, NULL, raw->len, max_bytes);
        return 0;
}

int text_doc_load(text_ctx_t *ctx, const mmp_value_t *input, text_format_t format,
                  size_t max_bytes, text_doc_t *doc) {
        text_raw_t raw = {0};
        text_buf_t clean = {0};
        int rc = -1;

        memset(doc, 0, sizeof(*doc));
        if (raw_from_value(ctx, input, max_bytes, &raw))
                goto out;
        doc->bytes = raw.len;
        doc->format = format != TEXT_FORMAT_AUTO ? format
                      : raw.format != TEXT_FORMAT_AUTO ? raw.format : TEXT_FORMAT_PLAIN;
        if (text_utf8_clean(ctx, raw.data, raw.len, &clean, &doc->utf8))
                goto out;
        text_buf_free(&raw.file); /* the clean copy is all we need now */
        switch (doc->format) {
        case TEXT_FORMAT_HTML:
                rc = text_html_extract(ctx, clean.data, clean.len, &doc->text);
                break;
        case TEXT_FORMAT_MARKDOWN:
                rc = text_markdown_extract(ctx, clean.data, clean.len, &doc->text);
                break;
        default:
                doc->text = clean;
                clean = (text_buf_t){0};
                rc = 0;
                break;
        }
out:
        text_buf_free(&raw.file);
        text_buf_free(&clean);
        return rc;
}
