/*
 * Event objects. Any thread; the reference count is atomic.
 */
#include "event.h"

#include <stdlib.h>
#include <string.h>

void mmp_event_set(char **field, const char *value) {
        free(*field);
        *field = value ? strdup(value) : NULL;
}

mmp_event_t *mmp_event_new(const char *id, const char *bucket, const char *key) {
        mmp_event_t *ev = calloc(1, sizeof(*ev));
        if (!ev)
                return NULL;
        ev->refcnt = 1;
        ev->size = -1;
        mmp_event_set(&ev->id, id);
        mmp_event_set(&ev->bucket, bucket ? bucket : "");
        mmp_event_set(&ev->key, key);
        mmp_tmplist_init(&ev->tmp);
        return ev;
}

void mmp_event_ref(mmp_event_t *ev) {
        __atomic_add_fetch(&ev->refcnt, 1, __ATOMIC_RELAXED);
}

void mmp_event_unref(mmp_event_t *ev) {
        if (!ev || __atomic_sub_fetch(&ev->refcnt, 1, __ATOMIC_ACQ_REL))
                return;
        mmp_tmplist_clear(&ev->tmp);
        free(ev->id);
        free(ev->bucket);
        free(ev->key);
        free(ev->url);
        free(ev->path);
        free(ev->event_name);
        free(ev->content_type);
        free(ev->detected_type);
        free(ev->etag);
        free(ev->version);
        free(ev->original);
        free(ev->source.topic);
        mmp_failure_free(ev->failure);
        free(ev);
}

json_t *mmp_event_source_json(const mmp_event_t *ev) {
        switch (ev->source.type) {
        case MMP_SOURCE_FILE:
                return json_pack("{s:s, s:s}", "type", "file", "path", ev->key ? ev->key : "");
        case MMP_SOURCE_KAFKA:
                return json_pack("{s:s, s:s, s:i, s:I}", "type", "kafka", "topic",
                                 ev->source.topic ? ev->source.topic : "", "partition", (int)ev->source.partition,
                                 "offset", (json_int_t)ev->source.offset);
        default:
                return json_null();
        }
}
