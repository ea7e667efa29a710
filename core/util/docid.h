/*
 * Deterministic document ids: the same event output always gets the same
 * _id, so a redelivered event rewrites its documents instead of duplicating
 * them. Any thread.
 */
#ifndef MMP_DOCID_H
#define MMP_DOCID_H

#include <stdint.h>

/*
 * Writes the document id for output number `index` of the event on
 * (pipeline, bucket, key, version) as 24 lower-case hex chars plus NUL: a
 * 12-byte MongoDB ObjectId, used as the document's _id in every sink.
 *
 * The id is the first 12 bytes of SHA-256 over this byte string:
 *
 *     len(pipeline) pipeline  len(bucket) bucket  len(key) key
 *     len(version) version    index
 *
 * where every len() and the index are unsigned 64-bit big-endian integers
 * and each field is its raw bytes (no NUL, no escaping). Because every field
 * is length-prefixed, two different tuples never produce the same byte string
 * (("ab","c") and ("a","bc") differ), so ids collide only if SHA-256 does.
 * NULL is hashed as the empty string: a local file has no bucket, and
 * `version` is the object version or, when the store has none, its ETag.
 *
 * Changing this encoding changes every _id and breaks the upsert on
 * redelivery of existing data: don't, or version it.
 */
void mmp_docid(const char *pipeline, const char *bucket, const char *key, const char *version,
               uint64_t index, char out[25]);

#endif
