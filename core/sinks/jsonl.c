/*
 * The JSON Lines destination: every upserted document as one line, to a
 * file (appended) or stdout. Append-only, so deletes and version
 * replacement are left to the reader (docs/destinations.md). Batches are
 * written on the sink's writer thread, the only user of the stream.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink_driver.h"
#include "util/log.h"

typedef struct jsonl_sink {
        char *name;
        char *path; /* "-" = stdout */
        FILE *fp;
        int torn; /* the last flush failed: a line may be cut short */
} jsonl_sink_t;

/* Serialises every document of w before writing any, so a write with a bad
 * document leaves nothing in the stream. Returns the lines joined, or NULL
 * with *failure set. */
static char *render(mmp_write_t *w, size_t *lenp, mmp_failure_t **failure) {
        size_t n = json_array_size(w->docs), len = 0, cap = 0;
        char *out = NULL, why[512];

        if (w->docs && !json_is_array(w->docs)) {
                *failure =
                    mmp_sink_failure(w, 0, "collection \"%s\" (key \"%s\"): documents must be an array",
                                     w->collection, w->key ? w->key : "");
                return NULL;
        }
        for (size_t i = 0; i < n; i++) {
                char *line;
                size_t m;

                if (mmp_sink_doc_check(w, i, why, sizeof(why))) {
                        *failure = mmp_sink_failure(w, 0, "%s", why);
                        free(out);
                        return NULL;
                }
                /* Insertion order: the document reads the way the handler built it. */
                line = mmp_write_doc_dup(w, i);
                if (!line) {
                        *failure = mmp_sink_failure(
                            w, 0,
                            "collection \"%s\", document %zu of %zu (key \"%s\"): cannot serialise "
                            "it as JSON",
                            w->collection, i + 1, n, w->key ? w->key : "");
                        free(out);
                        return NULL;
                }
                m = strlen(line);
                if (len + m + 2 > cap) {
                        char *grown;
                        cap = (len + m + 2) * 2;
                        if (!(grown = realloc(out, cap))) {
                                free(line);
                                free(out);
                                *failure = mmp_sink_failure(w, 1, "out of memory");
                                return NULL;
                        }
                        out = grown;
                }
                memcpy(out + len, line, m);
                len += m;
                out[len++] = '\n';
                out[len] = '\0';
                free(line);
        }
        *lenp = len;
        return out ? out : strdup("");
}

static void jsonl_write_batch(void *ctx, mmp_write_t **writes, size_t n, mmp_failure_t **failures) {
        jsonl_sink_t *s = ctx;
        int err = 0;

        /* After a failed flush the stream may end inside a line: end it, so
         * the next document starts on a line of its own. */
        if (s->torn && fputc('\n', s->fp) != EOF)
                s->torn = 0;
        for (size_t i = 0; i < n && !err; i++) {
                mmp_write_t *w = writes[i];
                char *text;
                size_t len = 0;

                if (!mmp_sink_collection_valid(w->collection)) {
                        failures[i] = mmp_sink_failure(
                            w, 0, "invalid collection name \"%s\" (expected [A-Za-z0-9_.-]+)",
                            w->collection ? w->collection : "");
                        continue;
                }
                if (w->kind == MMP_WRITE_DELETE)
                        continue; /* not representable in an append-only stream */
                if (!(text = render(w, &len, &failures[i])))
                        continue;
                errno = 0;
                if (len && fwrite(text, 1, len, s->fp) != len)
                        err = errno ? errno : EIO;
                free(text);
        }
        errno = 0;
        if (fflush(s->fp) != 0 && !err)
                err = errno ? errno : EIO;
        if (!err)
                return;

        /* stdio buffers across writes: which of them reached the file is
         * unknown, so all are retried (readers de-duplicate by _id). */
        clearerr(s->fp);
        s->torn = 1;
        mmp_warn("sink", "%s: cannot write to \"%s\": %s", s->name, s->path, strerror(err));
        for (size_t i = 0; i < n; i++)
                if (!failures[i])
                        failures[i] = mmp_sink_failure(writes[i], 1, "cannot write to \"%s\": %s", s->path,
                                                       strerror(err));
}

static void jsonl_close(void *ctx) {
        jsonl_sink_t *s = ctx;

        if (!s)
                return;
        if (s->fp && s->fp != stdout && fclose(s->fp) != 0)
                mmp_warn("sink", "%s: closing \"%s\": %s", s->name, s->path, strerror(errno));
        free(s->name);
        free(s->path);
        free(s);
}

static void *jsonl_open(const char *name, const json_t *conf, char *errstr, size_t errstr_size) {
        const char *path = json_string_value(json_object_get(conf, "path"));
        jsonl_sink_t *s;
        char why[512];

        if (!path || !*path) {
                snprintf(errstr, errstr_size,
                         "connections.%s.path: expected a string (a file, or \"-\" for stdout)", name);
                return NULL;
        }
        if (!(s = calloc(1, sizeof(*s))) || !(s->name = strdup(name)) || !(s->path = strdup(path))) {
                snprintf(errstr, errstr_size, "connections.%s: out of memory", name);
                jsonl_close(s);
                return NULL;
        }
        if (!strcmp(path, "-")) {
                s->fp = stdout;
                return s;
        }
        if (mmp_sink_mkparents(path, why, sizeof(why))) {
                snprintf(errstr, errstr_size, "connections.%s.path: cannot open \"%s\": %s", name, path, why);
                jsonl_close(s);
                return NULL;
        }
        if (!(s->fp = fopen(path, "a"))) {
                snprintf(errstr, errstr_size, "connections.%s.path: cannot open \"%s\": %s", name, path,
                         strerror(errno));
                jsonl_close(s);
                return NULL;
        }
        return s;
}

const mmp_sink_driver_t mmp_sink_jsonl_driver = {
    .type = "jsonl",
    .open = jsonl_open,
    .write_batch = jsonl_write_batch,
    .close = jsonl_close,
};
