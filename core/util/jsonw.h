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

#endif
