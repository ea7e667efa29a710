/*
 * Fetching objects. Local files (paths and file:// URLs) are read in place:
 * stat, streamed SHA-256 as the ETag, libmagic check. Worker threads.
 */
#include "fetch/fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/sha256.h"

static mmp_failure_t *fetch_fail(mmp_err_t code, int retriable, const char *fmt, const char *a,
                                 const char *b) {
        return mmp_failure_new(code, MMP_STAGE_FETCH, retriable, NULL, NULL, fmt, a, b);
}

static mmp_failure_t *fetch_file(mmp_event_t *ev, const char *path) {
        struct stat st;
        mmp_sha256_t sha;
        uint8_t digest[32], buf[65536], head[8192];
        char hex[65], detected[128];
        size_t head_len = 0;
        ssize_t r;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return fetch_fail(errno == ENOENT ? MMP_ERR_NOT_FOUND : MMP_ERR_IO, 0,
                                  errno == ENOENT ? "%s: file vanished before it was read (%s)"
                                                  : "%s: cannot open: %s",
                                  path, strerror(errno));
        if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
                close(fd);
                return fetch_fail(MMP_ERR_BAD_INPUT, 0, "%s: %s", path, "not a regular file");
        }
        mmp_sha256_init(&sha);
        while ((r = read(fd, buf, sizeof(buf))) > 0) {
                if (head_len < sizeof(head)) {
                        size_t k = (size_t)r < sizeof(head) - head_len ? (size_t)r : sizeof(head) - head_len;
                        memcpy(head + head_len, buf, k);
                        head_len += k;
                }
                mmp_sha256_update(&sha, buf, (size_t)r);
        }
        if (r < 0) {
                int e = errno;
                close(fd);
                return fetch_fail(MMP_ERR_IO, 1, "%s: read failed: %s", path, strerror(e));
        }
        mmp_sha256_final(&sha, digest);
        mmp_hex(digest, 32, hex);
        const char *declared = ev->content_type ? ev->content_type : mmp_content_type_from_name(path);
        if (declared && mmp_content_type_is_text(declared) && head_len > 0 &&
            mmp_looks_like_utf8_text(head, head_len))
                /* The bytes confirm the declared text type; libmagic would
                 * spend most of an event's cost to say "text" too. */
                snprintf(detected, sizeof(detected), "%s", declared);
        else
                mmp_content_type_detect(fd, detected, sizeof(detected));
        close(fd);

        ev->size = (int64_t)st.st_size;
        if (!ev->time_ms)
                ev->time_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
        mmp_event_set(&ev->path, path);
        mmp_event_set(&ev->etag, hex);
        if (!ev->version)
                mmp_event_set(&ev->version, hex); /* files have no versions: the content is one */
        mmp_event_set(&ev->detected_type, detected);
        if (!ev->content_type)
                mmp_event_set(&ev->content_type, declared ? declared : detected);
        ev->content_type_mismatch = mmp_content_type_mismatch(ev->content_type, detected);
        return NULL;
}

int mmp_fetch_init(const mmp_config_t *cfg, char *errstr, size_t errstr_size) {
        (void)cfg;
        (void)errstr;
        (void)errstr_size;
        return 0; /* local files need no settings */
}

void mmp_fetch_shutdown(void) {
}

mmp_failure_t *mmp_fetch(mmp_event_t *ev) {
        const char *url = ev->url ? ev->url : ev->key;
        if (!url)
                return fetch_fail(MMP_ERR_INVALID, 0, "event %s has %s", ev->id ? ev->id : "?", "no object location");
        if (!strncmp(url, "file://", 7))
                return fetch_file(ev, url + 7);
        if (url[0] == '/')
                return fetch_file(ev, url);
        return fetch_fail(MMP_ERR_UNSUPPORTED, 0, "%s: fetching this kind of URL is %s", url,
                          "not supported in this build");
}
