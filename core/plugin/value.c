/*
 * The value tree of the plugin ABI. Any thread (values are not shared;
 * blob bytes are, with an atomic reference count).
 */
#include "value.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mmp_blob {
        int refcnt; /* atomic */
        void *data;
        size_t len;
        char *content_type;
} mmp_blob_t;

struct mmp_value {
        mmp_value_type_t type;
        union {
                int b;
                int64_t i;
                double d;
                struct {
                        char *p;
                        size_t len;
                } s;
                struct {
                        mmp_value_t **items;
                        char **keys; /* maps only */
                        size_t n, cap;
                } c;
                mmp_blob_t *blob;
        } u;
};

static mmp_value_t *value_alloc(mmp_value_type_t type) {
        mmp_value_t *v = calloc(1, sizeof(*v));
        if (v)
                v->type = type;
        return v;
}

mmp_value_type_t mmp_value_type(const mmp_value_t *v) {
        return v ? v->type : MMP_VAL_NIL;
}

int mmp_value_bool(const mmp_value_t *v) {
        if (!v)
                return 0;
        switch (v->type) {
        case MMP_VAL_BOOL: return v->u.b;
        case MMP_VAL_NIL: return 0;
        default: return 1; /* Lua truthiness */
        }
}

int64_t mmp_value_int(const mmp_value_t *v) {
        if (!v)
                return 0;
        if (v->type == MMP_VAL_INT)
                return v->u.i;
        if (v->type == MMP_VAL_DOUBLE)
                return (int64_t)v->u.d;
        return 0;
}

double mmp_value_double(const mmp_value_t *v) {
        if (!v)
                return 0;
        if (v->type == MMP_VAL_DOUBLE)
                return v->u.d;
        if (v->type == MMP_VAL_INT)
                return (double)v->u.i;
        return 0;
}

const char *mmp_value_string(const mmp_value_t *v, size_t *lenp) {
        if (!v || v->type != MMP_VAL_STRING) {
                if (lenp)
                        *lenp = 0;
                return NULL;
        }
        if (lenp)
                *lenp = v->u.s.len;
        return v->u.s.p;
}

size_t mmp_value_len(const mmp_value_t *v) {
        if (!v)
                return 0;
        switch (v->type) {
        case MMP_VAL_STRING: return v->u.s.len;
        case MMP_VAL_ARRAY:
        case MMP_VAL_MAP: return v->u.c.n;
        case MMP_VAL_BLOB: return v->u.blob->len;
        default: return 0;
        }
}

const mmp_value_t *mmp_value_index(const mmp_value_t *v, size_t i) {
        if (!v || (v->type != MMP_VAL_ARRAY && v->type != MMP_VAL_MAP) || i >= v->u.c.n)
                return NULL;
        return v->u.c.items[i];
}

const char *mmp_value_key(const mmp_value_t *v, size_t i) {
        if (!v || v->type != MMP_VAL_MAP || i >= v->u.c.n)
                return NULL;
        return v->u.c.keys[i];
}

const mmp_value_t *mmp_value_get(const mmp_value_t *map, const char *key) {
        if (!map || map->type != MMP_VAL_MAP || !key)
                return NULL;
        for (size_t i = 0; i < map->u.c.n; i++)
                if (!strcmp(map->u.c.keys[i], key))
                        return map->u.c.items[i];
        return NULL;
}

mmp_value_t *mmp_value_new_nil(void) {
        return value_alloc(MMP_VAL_NIL);
}

mmp_value_t *mmp_value_new_bool(int b) {
        mmp_value_t *v = value_alloc(MMP_VAL_BOOL);
        if (v)
                v->u.b = !!b;
        return v;
}

mmp_value_t *mmp_value_new_int(int64_t i) {
        mmp_value_t *v = value_alloc(MMP_VAL_INT);
        if (v)
                v->u.i = i;
        return v;
}

mmp_value_t *mmp_value_new_double(double d) {
        mmp_value_t *v = value_alloc(MMP_VAL_DOUBLE);
        if (v)
                v->u.d = d;
        return v;
}

mmp_value_t *mmp_value_new_string(const char *s, size_t len) {
        mmp_value_t *v = value_alloc(MMP_VAL_STRING);
        if (!v)
                return NULL;
        v->u.s.p = malloc(len + 1);
        if (!v->u.s.p) {
                free(v);
                return NULL;
        }
        if (len)
                memcpy(v->u.s.p, s, len);
        v->u.s.p[len] = '\0';
        v->u.s.len = len;
        return v;
}

mmp_value_t *mmp_value_new_array(void) {
        return value_alloc(MMP_VAL_ARRAY);
}

mmp_value_t *mmp_value_new_map(void) {
        return value_alloc(MMP_VAL_MAP);
}

static int container_grow(mmp_value_t *c) {
        size_t cap = c->u.c.cap ? c->u.c.cap * 2 : 8;
        mmp_value_t **items = realloc(c->u.c.items, cap * sizeof(*items));
        if (!items)
                return -1;
        c->u.c.items = items;
        if (c->type == MMP_VAL_MAP) {
                char **keys = realloc(c->u.c.keys, cap * sizeof(*keys));
                if (!keys)
                        return -1;
                c->u.c.keys = keys;
        }
        c->u.c.cap = cap;
        return 0;
}

int mmp_value_push(mmp_value_t *array, mmp_value_t *item) {
        if (!array || array->type != MMP_VAL_ARRAY || !item ||
            (array->u.c.n == array->u.c.cap && container_grow(array))) {
                mmp_value_free(item);
                return -1;
        }
        array->u.c.items[array->u.c.n++] = item;
        return 0;
}

int mmp_value_set(mmp_value_t *map, const char *key, mmp_value_t *item) {
        char *k;
        if (!map || map->type != MMP_VAL_MAP || !key || !item) {
                mmp_value_free(item);
                return -1;
        }
        for (size_t i = 0; i < map->u.c.n; i++) {
                if (!strcmp(map->u.c.keys[i], key)) {
                        mmp_value_free(map->u.c.items[i]);
                        map->u.c.items[i] = item;
                        return 0;
                }
        }
        if ((map->u.c.n == map->u.c.cap && container_grow(map)) || !(k = strdup(key))) {
                mmp_value_free(item);
                return -1;
        }
        map->u.c.keys[map->u.c.n] = k;
        map->u.c.items[map->u.c.n++] = item;
        return 0;
}

static void blob_unref(mmp_blob_t *b) {
        if (__atomic_sub_fetch(&b->refcnt, 1, __ATOMIC_ACQ_REL) == 0) {
                free(b->data);
                free(b->content_type);
                free(b);
        }
}

void mmp_value_free(mmp_value_t *v) {
        if (!v)
                return;
        switch (v->type) {
        case MMP_VAL_STRING: free(v->u.s.p); break;
        case MMP_VAL_ARRAY:
        case MMP_VAL_MAP:
                for (size_t i = 0; i < v->u.c.n; i++) {
                        mmp_value_free(v->u.c.items[i]);
                        if (v->u.c.keys)
                                free(v->u.c.keys[i]);
                }
                free(v->u.c.items);
                free(v->u.c.keys);
                break;
        case MMP_VAL_BLOB: blob_unref(v->u.blob); break;
        default: break;
        }
        free(v);
}

mmp_value_t *mmp_blob_new_owned(void *data, size_t len, const char *content_type) {
        mmp_value_t *v = value_alloc(MMP_VAL_BLOB);
        mmp_blob_t *b = calloc(1, sizeof(*b));
        if (!v || !b) {
                free(v);
                free(b);
                free(data);
                return NULL;
        }
        b->refcnt = 1;
        b->data = data;
        b->len = len;
        b->content_type = strdup(content_type ? content_type : "application/octet-stream");
        v->u.blob = b;
        return v;
}

mmp_value_t *mmp_blob_new(const void *data, size_t len, const char *content_type) {
        void *copy = malloc(len ? len : 1);
        if (!copy)
                return NULL;
        if (len)
                memcpy(copy, data, len);
        return mmp_blob_new_owned(copy, len, content_type);
}

const void *mmp_blob_data(const mmp_value_t *v, size_t *lenp, const char **content_typep) {
        if (!v || v->type != MMP_VAL_BLOB) {
                if (lenp)
                        *lenp = 0;
                if (content_typep)
                        *content_typep = NULL;
                return NULL;
        }
        if (lenp)
                *lenp = v->u.blob->len;
        if (content_typep)
                *content_typep = v->u.blob->content_type;
        return v->u.blob->data;
}

mmp_value_t *mmp_blob_ref(const mmp_value_t *blob) {
        mmp_value_t *v;
        if (!blob || blob->type != MMP_VAL_BLOB || !(v = value_alloc(MMP_VAL_BLOB)))
                return NULL;
        __atomic_add_fetch(&blob->u.blob->refcnt, 1, __ATOMIC_ACQ_REL);
        v->u.blob = blob->u.blob;
        return v;
}

json_t *mmp_value_to_json(const mmp_value_t *v, char *errstr, size_t errstr_size) {
        json_t *j, *item;
        switch (mmp_value_type(v)) {
        case MMP_VAL_NIL: return json_null();
        case MMP_VAL_BOOL: return json_boolean(v->u.b);
        case MMP_VAL_INT: return json_integer(v->u.i);
        case MMP_VAL_DOUBLE: return json_real(v->u.d);
        case MMP_VAL_STRING:
                j = json_stringn(v->u.s.p, v->u.s.len);
                if (!j)
                        snprintf(errstr, errstr_size, "string is not valid UTF-8");
                return j;
        case MMP_VAL_BLOB:
                return json_pack("{s:s, s:I}", "$blob", v->u.blob->content_type, "size",
                                 (json_int_t)v->u.blob->len);
        case MMP_VAL_ARRAY:
                j = json_array();
                for (size_t i = 0; j && i < v->u.c.n; i++) {
                        if (!(item = mmp_value_to_json(v->u.c.items[i], errstr, errstr_size))) {
                                json_decref(j);
                                return NULL;
                        }
                        json_array_append_new(j, item);
                }
                return j;
        case MMP_VAL_MAP:
                j = json_object();
                for (size_t i = 0; j && i < v->u.c.n; i++) {
                        if (!(item = mmp_value_to_json(v->u.c.items[i], errstr, errstr_size))) {
                                json_decref(j);
                                return NULL;
                        }
                        json_object_set_new(j, v->u.c.keys[i], item);
                }
                return j;
        }
        return NULL;
}

mmp_value_t *mmp_value_from_json(const json_t *j) {
        mmp_value_t *v;
        switch (json_typeof(j)) {
        case JSON_NULL: return mmp_value_new_nil();
        case JSON_TRUE: return mmp_value_new_bool(1);
        case JSON_FALSE: return mmp_value_new_bool(0);
        case JSON_INTEGER: return mmp_value_new_int(json_integer_value(j));
        case JSON_REAL: return mmp_value_new_double(json_real_value(j));
        case JSON_STRING: return mmp_value_new_string(json_string_value(j), json_string_length(j));
        case JSON_ARRAY: {
                size_t i;
                json_t *item;
                if (!(v = mmp_value_new_array()))
                        return NULL;
                json_array_foreach(j, i, item) {
                        if (mmp_value_push(v, mmp_value_from_json(item))) {
                                mmp_value_free(v);
                                return NULL;
                        }
                }
                return v;
        }
        case JSON_OBJECT: {
                const char *k;
                json_t *item;
                if (!(v = mmp_value_new_map()))
                        return NULL;
                json_object_foreach((json_t *)j, k, item) {
                        if (mmp_value_set(v, k, mmp_value_from_json(item))) {
                                mmp_value_free(v);
                                return NULL;
                        }
                }
                return v;
        }
        }
        return NULL;
}
