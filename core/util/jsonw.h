/*
 * A fast compact JSON writer for jansson values: documents are serialised
 * once per event on the lanes, and jansson's own dumper was a third of the
 * engine's cost per event. Keys in insertion order; reals in the shortest
 * form that reads back exactly. Any thread.
 */
#ifndef MMP_JSONW_H
#define MMP_JSONW_H

#include <jansson.h>
#include <stddef.h>

/* A new NUL-terminated string (free()), its length in *lenp if non-NULL;
 * NULL for NaN/infinite reals (not JSON) or out of memory. */
char *mmp_json_dumps(const json_t *j, size_t *lenp);

/* A value as compact JSON for an error message ("got ..."): at most 40
 * bytes, cut on a UTF-8 boundary with "..." appended. */
#define MMP_JSON_EXCERPT_SIZE 48
void mmp_json_excerpt(const json_t *v, char out[MMP_JSON_EXCERPT_SIZE]);

#endif
