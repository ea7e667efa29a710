/*
 * mmpipe plugin ABI, version 1.
 *
 * A modality plugin is a shared object that exports one symbol,
 * MMP_PLUGIN_ENTRY_SYMBOL, returning a const descriptor. The engine dlopen()s
 * it with RTLD_NOW | RTLD_LOCAL, checks the ABI, hands init() the host API
 * table and then calls the operations from worker-pool threads.
 *
 * Rules a plugin follows:
 *  - It never links against engine symbols: everything it needs from the
 *    host arrives through mmp_host_api_t.
 *  - Operations are reentrant: the pool calls them from several threads at
 *    once with the same plugin state.
 *  - Inputs are borrowed for the duration of the call. The returned value is
 *    owned by the host once the operation returns it (non-NULL = success).
 *  - On failure an operation calls host->call_fail() and returns NULL.
 *
 * Compatibility: the loader refuses a different abi_major. Fields are only
 * ever appended; the loader reads a field only when struct_size covers it,
 * so a plugin built against an older minor keeps loading.
 */
#ifndef MMPIPE_PLUGIN_H
#define MMPIPE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MMP_PLUGIN_ABI_MAJOR 1
#define MMP_PLUGIN_ABI_MINOR 0

/* The one symbol a plugin exports. */
#define MMP_PLUGIN_ENTRY_SYMBOL "mmp_plugin_entry"

#if defined(__GNUC__)
#define MMP_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define MMP_PLUGIN_EXPORT
#endif

/* Values crossing the plugin boundary: a small tree of typed nodes.
 * Opaque; built and read only through the host API. Blobs (frames, audio
 * segments, files) are reference-counted bytes passed by reference. */
typedef struct mmp_value mmp_value_t;

typedef enum mmp_value_type {
        MMP_VAL_NIL = 0,
        MMP_VAL_BOOL,
        MMP_VAL_INT,
        MMP_VAL_DOUBLE,
        MMP_VAL_STRING, /* bytes with a length; not necessarily UTF-8 */
        MMP_VAL_ARRAY,
        MMP_VAL_MAP,    /* string keys, insertion order kept */
        MMP_VAL_BLOB,   /* shared bytes with a content type */
} mmp_value_type_t;

/* One operation call: carries the deadline, the error slot and the
 * per-event scratch space. Opaque, valid only during the call. */
typedef struct mmp_call mmp_call_t;

typedef enum mmp_log_level {
        MMP_LOG_ERROR = 0,
        MMP_LOG_WARN,
        MMP_LOG_INFO,
        MMP_LOG_DEBUG,
} mmp_log_level_t;

/* The host API handed to init(). Same versioning as the descriptor. */
typedef struct mmp_host_api {
        uint16_t abi_major;
        uint16_t abi_minor;
        uint32_t struct_size;

        /* Memory. Anything the host frees (value strings, blob data handed
         * over with blob_new_owned) must come from these. */
        void *(*alloc)(size_t size);
        void *(*realloc)(void *ptr, size_t size);
        void (*free)(void *ptr);

        /* Logging, prefixed by the host with "[plugin:<name>]". */
        void (*log)(const char *plugin, mmp_log_level_t level, const char *fmt, ...)
#if defined(__GNUC__)
            __attribute__((format(printf, 3, 4)))
#endif
            ;

        /* Reading values (all borrowed; NULL reads as nil). */
        mmp_value_type_t (*value_type)(const mmp_value_t *v);
        int (*value_bool)(const mmp_value_t *v);
        int64_t (*value_int)(const mmp_value_t *v);       /* doubles truncated */
        double (*value_double)(const mmp_value_t *v);     /* ints widened */
        const char *(*value_string)(const mmp_value_t *v, size_t *lenp); /* NUL-terminated */
        size_t (*value_len)(const mmp_value_t *v);        /* array/map entries, string/blob bytes */
        const mmp_value_t *(*value_index)(const mmp_value_t *v, size_t i); /* array item or map value */
        const char *(*value_key)(const mmp_value_t *v, size_t i);          /* map key at i */
        const mmp_value_t *(*value_get)(const mmp_value_t *map, const char *key);

        /* Building values. Each returns a new value owned by the caller;
         * the push/set functions take ownership of `item`. */
        mmp_value_t *(*value_new_nil)(void);
        mmp_value_t *(*value_new_bool)(int b);
        mmp_value_t *(*value_new_int)(int64_t i);
        mmp_value_t *(*value_new_double)(double d);
        mmp_value_t *(*value_new_string)(const char *s, size_t len); /* copies */
        mmp_value_t *(*value_new_array)(void);
        mmp_value_t *(*value_new_map)(void);
        int (*value_push)(mmp_value_t *array, mmp_value_t *item);
        int (*value_set)(mmp_value_t *map, const char *key, mmp_value_t *item);
        void (*value_free)(mmp_value_t *v); /* accepts NULL */

        /* Blobs. blob_new copies; blob_new_owned takes `data` (allocated with
         * host->alloc). blob_data is valid while the value lives. */
        mmp_value_t *(*blob_new)(const void *data, size_t len, const char *content_type);
        mmp_value_t *(*blob_new_owned)(void *data, size_t len, const char *content_type);
        const void *(*blob_data)(const mmp_value_t *v, size_t *lenp, const char **content_typep);

        /* The call. call_fail records why the operation failed; retriable
         * says whether trying again later may succeed (a busy device, not
         * corrupt input). call_cancelled is non-zero once the event's
         * deadline passed or the event was abandoned: long loops check it. */
        void (*call_fail)(mmp_call_t *call, int retriable, const char *fmt, ...)
#if defined(__GNUC__)
            __attribute__((format(printf, 3, 4)))
#endif
            ;
        int (*call_cancelled)(mmp_call_t *call);

        /* A temporary file that lives until the event ends. Writes its path
         * into `path`; returns an open fd or -1 (call_fail already set). */
        int (*call_tempfile)(mmp_call_t *call, const char *suffix, char *path, size_t path_size);
} mmp_host_api_t;

/* An operation. `state` is what init() stored; `input` and `opts` are
 * borrowed (opts is a map or nil). Returns a new value or NULL on failure
 * (after host->call_fail). */
typedef mmp_value_t *(*mmp_op_fn)(void *state, mmp_call_t *call, const mmp_value_t *input,
                                  const mmp_value_t *opts);

typedef struct mmp_plugin_op {
        const char *name; /* Lua: mmpipe.tools.<plugin>.<name> */
        const char *doc;  /* one line: what it takes and what it returns */
        mmp_op_fn fn;
} mmp_plugin_op_t;

typedef struct mmp_plugin {
        /* Fixed prefix: never moves. */
        uint16_t abi_major;
        uint16_t abi_minor;
        uint32_t struct_size; /* sizeof(mmp_plugin_t) as the plugin saw it */

        const char *name;        /* [a-z][a-z0-9_]*, unique among loaded plugins */
        const char *version;     /* recorded in every document's lineage */
        const char *description; /* one line */
        const char *const *content_types; /* NULL-terminated fnmatch globs: "text/plain", "image/" + star */
        const mmp_plugin_op_t *ops;        /* terminated by an entry with name == NULL */

        /* init: return 0 and set *statep, or non-zero with errstr filled.
         * fini: releases the state; called once, after the last operation. */
        int (*init)(const mmp_host_api_t *host, void **statep, char *errstr, size_t errstr_size);
        void (*fini)(void *state);
} mmp_plugin_t;

/* Convenience for plugin authors: fills the fixed prefix. */
#define MMP_PLUGIN_HEADER                                                     \
        .abi_major = MMP_PLUGIN_ABI_MAJOR, .abi_minor = MMP_PLUGIN_ABI_MINOR, \
        .struct_size = sizeof(mmp_plugin_t)

typedef const mmp_plugin_t *(*mmp_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif
#endif /* MMPIPE_PLUGIN_H */
