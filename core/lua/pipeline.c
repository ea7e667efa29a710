/*
 * Pipeline descriptions and routing (match rules). Any thread: a pipeline
 * is immutable once loaded.
 */
#include "pipeline.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void strlist_free(mmp_strlist_t *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
        l->v = NULL;
        l->n = 0;
}

static int any_glob(const mmp_strlist_t *l, const char *s) {
        for (size_t i = 0; i < l->n; i++)
                if (!fnmatch(l->v[i], s, FNM_CASEFOLD))
                        return 1;
        return 0;
}

static int any_prefix(const mmp_strlist_t *l, const char *s) {
        for (size_t i = 0; i < l->n; i++)
                if (!strncmp(s, l->v[i], strlen(l->v[i])))
                        return 1;
        return 0;
}

static int any_suffix(const mmp_strlist_t *l, const char *s) {
        size_t ls = strlen(s);
        for (size_t i = 0; i < l->n; i++) {
                size_t lx = strlen(l->v[i]);
                if (ls >= lx && !strcasecmp(s + ls - lx, l->v[i]))
                        return 1;
        }
        return 0;
}

int mmp_match_accepts(const mmp_match_t *m, const mmp_event_t *ev) {
        const char *ctype = ev->content_type ? ev->content_type : "application/octet-stream";
        const char *key = ev->key ? ev->key : "";
        if (m->content_types.n && !any_glob(&m->content_types, ctype))
                return 0;
        if (m->key_prefixes.n && !any_prefix(&m->key_prefixes, key))
                return 0;
        if (m->key_suffixes.n && !any_suffix(&m->key_suffixes, key))
                return 0;
        if (m->min_size >= 0 && ev->size >= 0 && ev->size < m->min_size)
                return 0;
        if (m->max_size >= 0 && ev->size > m->max_size)
                return 0;
        return 1;
}

static void describe_list(char **buf, size_t *len, FILE *f, const char *label, const mmp_strlist_t *l) {
        if (!l->n)
                return;
        fprintf(f, "%s%s=", *len || ftell(f) ? " " : "", label);
        for (size_t i = 0; i < l->n; i++)
                fprintf(f, "%s%s", i ? "|" : "", l->v[i]);
}

char *mmp_match_describe(const mmp_match_t *m) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        describe_list(&buf, &len, f, "content_type", &m->content_types);
        describe_list(&buf, &len, f, "key_prefix", &m->key_prefixes);
        describe_list(&buf, &len, f, "key_suffix", &m->key_suffixes);
        if (m->min_size >= 0)
                fprintf(f, "%smin_size=%lld", ftell(f) ? " " : "", (long long)m->min_size);
        if (m->max_size >= 0)
                fprintf(f, "%smax_size=%lld", ftell(f) ? " " : "", (long long)m->max_size);
        if (!ftell(f))
                fprintf(f, "everything");
        fclose(f);
        return buf;
}

void mmp_pipeline_free(mmp_pipeline_t *p) {
        if (!p)
                return;
        free(p->name);
        free(p->file);
        free(p->source);
        strlist_free(&p->match.content_types);
        strlist_free(&p->match.key_prefixes);
        strlist_free(&p->match.key_suffixes);
        free(p->connection);
        free(p->collection);
        json_decref(p->metadata);
        json_decref(p->indexes);
        free(p);
}
