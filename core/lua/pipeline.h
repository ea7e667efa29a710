/*
 * A pipeline as the engine sees it: name, version, match rules and
 * destination, read from the table a pipeline file returns. The handler
 * itself stays in each lane's Lua state. Read-only after loading.
 */
#ifndef MMP_PIPELINE_H
#define MMP_PIPELINE_H

#include <jansson.h>
#include <stdint.h>

#include "engine/event.h"

typedef struct mmp_strlist {
        char **v;
        size_t n;
} mmp_strlist_t;

typedef struct mmp_match {
        mmp_strlist_t content_types; /* fnmatch globs such as text/[*] */
        mmp_strlist_t key_prefixes;
        mmp_strlist_t key_suffixes;  /* ".md", ".txt" */
        int64_t min_size, max_size;  /* -1 = unbounded */
} mmp_match_t;

typedef struct mmp_pipeline {
        char *name;
        char *file;       /* path of the script */
        char *source;     /* its text (every lane compiles the same text) */
        size_t source_len;
        char version[13]; /* first 12 hex of the text's SHA-256 */
        mmp_match_t match;
        char *connection; /* NULL = the config's default_connection */
        char *collection;
        json_t *metadata; /* merged into each document's "metadata"; may be NULL */
        int fetch;        /* the handler reads the object's bytes (`fetch = false`: metadata only) */
        json_t *indexes;  /* destination.indexes: created at start-up; may be NULL */
} mmp_pipeline_t;

/* Does the pipeline take this event? (content type, key, size) */
int mmp_match_accepts(const mmp_match_t *m, const mmp_event_t *ev);
/* Human-readable form of the rules for `mmpipe check`. */
char *mmp_match_describe(const mmp_match_t *m);

void mmp_pipeline_free(mmp_pipeline_t *p);

#endif
