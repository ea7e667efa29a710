/*
 * S3 event notifications as they arrive on Kafka: AWS's `Records[]` form
 * (several records per message, URL-encoded keys, s3:TestEvent), MinIO's
 * variant, and the simple {"bucket","key","file_type"} form, turned into
 * engine events. Any thread (pure parsing).
 */
#ifndef MMP_S3_EVENT_H
#define MMP_S3_EVENT_H

#include <stddef.h>

#include "engine/event.h"

typedef struct mmp_s3_events {
        mmp_event_t **v; /* owned references */
        size_t n;
        int test_event;  /* the message was an s3:TestEvent: nothing to do */
} mmp_s3_events_t;

/* Parses one message payload. On success fills out (possibly with zero
 * events: a test event or records that are neither created nor removed,
 * which are skipped and logged at debug) and returns 0. A payload that is
 * none of the known forms returns -1 with a one-line reason in errstr
 * ("not JSON: line 1 column 2: ...", "Records[0].s3.object.key is missing").
 * Each event gets kind (created/removed), bucket, key (URL-decoded: '+' is a
 * space, %XX decoded), url "s3://bucket/key", event_name, size, etag,
 * version (versionId, else the ETag), time (eventTime), content_type when
 * the event carries one, and original = the record's JSON text exactly as
 * received (the bytes of the Records[i] object; the whole payload for the
 * MinIO and simple forms), NUL-terminated, owned by the event. A field
 * read whose string holds \u0000 fails, naming the field (other fields may
 * hold it). payload need not be NUL-terminated; nothing of it is kept. */
int mmp_s3_events_parse(const char *payload, size_t len, mmp_s3_events_t *out, char *errstr,
                        size_t errstr_size);
void mmp_s3_events_clear(mmp_s3_events_t *evs);

/* Decodes an S3 notification key key[0..n) in place ('+' -> ' ', %XX ->
 * byte) and NUL-terminates it. Returns its new length, or -1 on a malformed
 * escape (or %00). */
long mmp_s3_key_decode(char *key, size_t n);

#endif
