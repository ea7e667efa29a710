/*
 * Object fetch: make an event's bytes available as a local file and fill
 * in size, ETag/version, time and content type (declared, and detected by
 * libmagic; a mismatch is recorded, not guessed away). Worker threads.
 */
#ifndef MMP_FETCH_H
#define MMP_FETCH_H

#include "engine/event.h"
#include "util/err.h"

#include "config/config.h"

/* Reads the fetch settings (the "s3" config section: region, endpoint,
 * path-style, credentials, size limit, retries) before any fetch. Main
 * thread. Returns 0, or -1 with errstr naming the key path. */
int mmp_fetch_init(const mmp_config_t *cfg, char *errstr, size_t errstr_size);
void mmp_fetch_shutdown(void);

/* Returns NULL when the object is ready, else a failure (stage fetch). */
mmp_failure_t *mmp_fetch(mmp_event_t *ev);

/* Content type from a file name's extension, or NULL when unknown. */
const char *mmp_content_type_from_name(const char *name);
/* libmagic's MIME type of a file (thread-safe: one magic handle per
 * thread). Writes "application/octet-stream" when it cannot tell. */
void mmp_content_type_detect(int fd, char *out, size_t out_size);
/* Do these bytes (a file's head) read as UTF-8 text with no NUL? A
 * sequence cut by the end of the buffer is allowed. */
int mmp_looks_like_utf8_text(const unsigned char *p, size_t n);
/* Is this a type whose content is text (text/..., JSON, XML, SVG)? */
int mmp_content_type_is_text(const char *type);
/* Do declared and detected types disagree in kind (text vs binary, image vs video)? */
int mmp_content_type_mismatch(const char *declared, const char *detected);

#endif
