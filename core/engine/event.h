/*
 * One event: "an object arrived" (or was removed), from any source, with
 * what fetching it found out. Reference-counted: the source, each running
 * handler and each outstanding plugin call hold a reference.
 */
#ifndef MMP_EVENT_H
#define MMP_EVENT_H

#include <jansson.h>
#include <stdint.h>

#include "plugin/host.h"
#include "util/err.h"

typedef struct mmp_engine mmp_engine_t;

typedef enum mmp_event_kind {
        MMP_EVENT_CREATED = 0, /* process the object */
        MMP_EVENT_REMOVED,     /* delete what was derived from it */
} mmp_event_kind_t;

/* Where an event came from: a local file (the path is the event's key) or
 * a Kafka message. Plain fields, not JSON: most events never need it as
 * JSON (mmp_event_source_json builds it for lineage and dead letters). */
typedef enum mmp_source_type {
        MMP_SOURCE_NONE = 0,
        MMP_SOURCE_FILE,
        MMP_SOURCE_KAFKA,
} mmp_source_type_t;

typedef struct mmp_event_source {
        mmp_source_type_t type;
        char *topic; /* kafka: owned */
        int32_t partition;
        int64_t offset;
} mmp_event_source_t;

typedef struct mmp_event {
        uint64_t seq;          /* engine-wide order of arrival */
        mmp_event_kind_t kind;
        char *id;              /* printable identity, used in every message */
        char *bucket;          /* "" for local files */
        char *key;             /* object key, or the absolute path of a local file */
        char *url;             /* s3://bucket/key or file:///path */
        char *path;            /* where the fetched bytes are (local file or temp file) */
        char *event_name;      /* "ObjectCreated:Put", "file", ... */
        char *content_type;    /* declared (event, extension), after fetch */
        char *detected_type;   /* what libmagic says of the bytes */
        int content_type_mismatch;
        char *etag;            /* content SHA-256 for local files */
        char *version;         /* version id, else etag: part of every _id */
        int64_t size;
        int64_t time_ms;       /* event time (mtime for files), wall clock */
        char *original;        /* the event as received, JSON text (dead letters, replay) */
        mmp_event_source_t source; /* where it came from (its lineage's "source") */

        /* Engine bookkeeping. */
        mmp_engine_t *engine;
        int refcnt;            /* atomic */
        int pending;           /* pipelines not finished yet (atomic) */
        int failures;          /* pipelines that failed (atomic) */
        int documents;         /* documents stored (atomic) */
        mmp_failure_t *failure; /* the first failure, kept for the source's report */
        mmp_tmplist_t tmp;     /* temp files, removed with the event */
        void *source_opaque;   /* for the source's acknowledgement */
        char *room, *room_end; /* the unused rest of the event's block, for strings */
} mmp_event_t;

/* Room for what fetching adds to an event (temp file path, content types,
 * digests), for mmp_event_new's extra: past it, strings go to the heap. */
#define MMP_EVENT_FETCH_ROOM 320

/* A new event with refcnt 1. Strings are copied; NULL stays NULL. They go
 * in the event's own block, with room for `extra` more bytes of strings set
 * later: an event whose strings fit is one allocation. */
mmp_event_t *mmp_event_new(const char *id, const char *bucket, const char *key, size_t extra);
/* The same with the strings' lengths (no strlen). */
mmp_event_t *mmp_event_new_n(const char *id, size_t id_n, const char *bucket, size_t bucket_n, const char *key,
                             size_t key_n, size_t extra);
void mmp_event_ref(mmp_event_t *ev);
void mmp_event_unref(mmp_event_t *ev); /* frees at zero, removing temp files */
/* Replaces a string field of ev (id, url, source.topic...) with a copy of
 * value (NULL clears it), in the event's room while it lasts, else on the
 * heap. The _n form copies n bytes and adds the NUL. -1 when out of memory
 * (the field is then NULL). Fields are only ever set this way. */
int mmp_event_set(mmp_event_t *ev, char **field, const char *value);
int mmp_event_set_n(mmp_event_t *ev, char **field, const char *value, size_t n);
/* The source as JSON ({"type":"file","path":...} or {"type":"kafka","topic":...,
 * "partition":...,"offset":...}): a new reference, or JSON null when there is none. */
json_t *mmp_event_source_json(const mmp_event_t *ev);

#endif
