/*
 * Event objects. Any thread; the reference count is atomic.
 */
#include "event.h"

#include <stdlib.h>
#include <string.h>

/* A string of the event's own block (freed with it), not of the heap. */
static int in_block(const mmp_event_t *ev, const char *s) {
        return s >= (const char *)(ev + 1) && s < ev->room_end;
}

static void drop(const mmp_event_t *ev, char *s) {
        if (s && !in_block(ev, s))
                free(s);
}

int mmp_event_set_n(mmp_event_t *ev, char **field, const char *value, size_t n) {
        char *old = *field, *s = NULL;
        if (value) {
                if ((size_t)(ev->room_end - ev->room) > n) {
                        s = ev->room;
                        ev->room += n + 1;
                } else if (!(s = malloc(n + 1))) {
                        drop(ev, old);
                        *field = NULL;
                        return -1;
                }
                memcpy(s, value, n);
                s[n] = '\0';
        }
        drop(ev, old); /* after the copy: value may be old itself */
        *field = s;
        return 0;
}

int mmp_event_set(mmp_event_t *ev, char **field, const char *value) {
        return mmp_event_set_n(ev, field, value, value ? strlen(value) : 0);
}

mmp_event_t *mmp_event_new_n(const char *id, size_t id_n, const char *bucket, size_t bucket_n, const char *key,
                             size_t key_n, size_t extra) {
        size_t room = (id ? id_n + 1 : 0) + bucket_n + 1 + (key ? key_n + 1 : 0) + extra;
        mmp_event_t *ev = malloc(sizeof(*ev) + room); /* the room needs no zeroing */
        if (!ev)
                return NULL;
        memset(ev, 0, sizeof(*ev));
        ev->refcnt = 1;
        ev->size = -1;
        ev->room = (char *)(ev + 1);
        ev->room_end = ev->room + room;
        mmp_event_set_n(ev, &ev->id, id, id_n);
        mmp_event_set_n(ev, &ev->bucket, bucket ? bucket : "", bucket ? bucket_n : 0);
        mmp_event_set_n(ev, &ev->key, key, key_n);
        mmp_tmplist_init(&ev->tmp);
        return ev;
}

mmp_event_t *mmp_event_new(const char *id, const char *bucket, const char *key, size_t extra) {
        return mmp_event_new_n(id, id ? strlen(id) : 0, bucket, bucket ? strlen(bucket) : 0, key, key ? strlen(key) : 0,
                               extra);
}

void mmp_event_ref(mmp_event_t *ev) {
        __atomic_add_fetch(&ev->refcnt, 1, __ATOMIC_RELAXED);
}

void mmp_event_unref(mmp_event_t *ev) {
        if (!ev || __atomic_sub_fetch(&ev->refcnt, 1, __ATOMIC_ACQ_REL))
                return;
        mmp_tmplist_clear(&ev->tmp);
        drop(ev, ev->id);
        drop(ev, ev->bucket);
        drop(ev, ev->key);
        drop(ev, ev->url);
        drop(ev, ev->path);
        drop(ev, ev->event_name);
        drop(ev, ev->content_type);
        drop(ev, ev->detected_type);
        drop(ev, ev->etag);
        drop(ev, ev->version);
        drop(ev, ev->original);
        drop(ev, ev->source.topic);
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
