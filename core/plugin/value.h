/*
 * mmp_value_t: the value tree that crosses the plugin boundary, and its
 * conversion to JSON text. Any thread; a value is used by one thread at a
 * time, blobs are reference-counted and may be shared.
 */
#ifndef MMP_VALUE_H
#define MMP_VALUE_H

#include <jansson.h>

#include "mmpipe/plugin.h"

mmp_value_type_t mmp_value_type(const mmp_value_t *v);
int mmp_value_bool(const mmp_value_t *v);
int64_t mmp_value_int(const mmp_value_t *v);
double mmp_value_double(const mmp_value_t *v);
const char *mmp_value_string(const mmp_value_t *v, size_t *lenp);
size_t mmp_value_len(const mmp_value_t *v);
const mmp_value_t *mmp_value_index(const mmp_value_t *v, size_t i);
const char *mmp_value_key(const mmp_value_t *v, size_t i);
const mmp_value_t *mmp_value_get(const mmp_value_t *map, const char *key);

mmp_value_t *mmp_value_new_nil(void);
mmp_value_t *mmp_value_new_bool(int b);
mmp_value_t *mmp_value_new_int(int64_t i);
mmp_value_t *mmp_value_new_double(double d);
mmp_value_t *mmp_value_new_string(const char *s, size_t len);
mmp_value_t *mmp_value_new_array(void);
mmp_value_t *mmp_value_new_map(void);
int mmp_value_push(mmp_value_t *array, mmp_value_t *item);
int mmp_value_set(mmp_value_t *map, const char *key, mmp_value_t *item);
void mmp_value_free(mmp_value_t *v);

mmp_value_t *mmp_blob_new(const void *data, size_t len, const char *content_type);
mmp_value_t *mmp_blob_new_owned(void *data, size_t len, const char *content_type);
const void *mmp_blob_data(const mmp_value_t *v, size_t *lenp, const char **content_typep);
/* A second value sharing the same blob bytes (refcount + 1). */
mmp_value_t *mmp_blob_ref(const mmp_value_t *blob);

/* JSON view. Blobs become {"$blob": content_type, "size": n}; strings that
 * are not valid UTF-8 are refused (returns NULL, errstr says where). */
json_t *mmp_value_to_json(const mmp_value_t *v, char *errstr, size_t errstr_size);
mmp_value_t *mmp_value_from_json(const json_t *j);

#endif
