/*
 * Fetching objects. Local files (paths and file:// URLs) are read in place:
 * stat, streamed SHA-256 as the ETag, libmagic check. s3:// URLs go to s3.c;
 * http(s):// URLs are a plain GET. Both remote kinds run through the
 * transfer below: one curl easy handle per worker thread (so connections
 * are reused), the body streamed to the event's temp file, retries with
 * backoff and full jitter. Worker threads; init/shutdown on the main thread.
 */
#include "fetch/fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch/s3.h"
#include "util/log.h"
#include "util/sha256.h"
#include "util/time.h"

static mmp_failure_t *fetch_fail(mmp_err_t code, int retriable, const char *fmt, const char *a,
                                 const char *b) {
        return mmp_failure_new(code, MMP_STAGE_FETCH, retriable, NULL, NULL, fmt, a, b);
}

/* detected = libmagic's type, unless the head of the bytes confirms a
 * declared text type: libmagic would spend most of an event's cost to say
 * "text" too. */
static void set_types(mmp_event_t *ev, int fd, const char *declared, const uint8_t *head, size_t head_len) {
        char detected[128];
        if (declared && mmp_content_type_is_text(declared) && head_len > 0 && mmp_looks_like_utf8_text(head, head_len))
                snprintf(detected, sizeof(detected), "%s", declared);
        else
                mmp_content_type_detect(fd, detected, sizeof(detected));
        mmp_event_set(ev, &ev->detected_type, detected);
        if (!ev->content_type)
                mmp_event_set(ev, &ev->content_type, declared ? declared : detected);
        ev->content_type_mismatch = mmp_content_type_mismatch(ev->content_type, detected);
}

void mmp_fetch_set_types(mmp_event_t *ev, int fd, const char *declared) {
        uint8_t head[8192];
        ssize_t n = pread(fd, head, sizeof(head), 0);
        set_types(ev, fd, declared, head, n > 0 ? (size_t)n : 0);
}

static mmp_failure_t *fetch_file(mmp_event_t *ev, const char *path) {
        struct stat st;
        mmp_sha256_t sha;
        uint8_t digest[32], buf[65536], head[8192];
        char hex[65];
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

        ev->size = (int64_t)st.st_size;
        if (!ev->time_ms)
                ev->time_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
        mmp_event_set(ev, &ev->path, path);
        mmp_event_set(ev, &ev->etag, hex);
        if (!ev->version)
                mmp_event_set(ev, &ev->version, hex); /* files have no versions: the content is one */
        set_types(ev, fd, declared, head, head_len);
        close(fd);
        return NULL;
}

/* ---- helpers shared with s3.c ---- */

int mmp_fetch_tempfile(mmp_event_t *ev, const char *name, char *path, size_t path_size, mmp_failure_t **f) {
        const char *dir = getenv("TMPDIR"), *slash = strrchr(name, '/'), *dot = strrchr(name, '.');
        char suffix[16] = "";
        size_t elen;
        int fd;

        if (!dir || !*dir)
                dir = "/tmp";
        /* Keep a short, plain extension: some decoders look at it. */
        if (dot && (!slash || dot > slash) && (elen = strlen(dot)) > 1 && elen < sizeof(suffix) &&
            strspn(dot + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == elen - 1)
                memcpy(suffix, dot, elen + 1);
        if ((size_t)snprintf(path, path_size, "%s/mmpipe-fetch-XXXXXX%s", dir, suffix) >= path_size) {
                *f = fetch_fail(MMP_ERR_IO, 0, "%s: temp file path too long (TMPDIR=%s)", name, dir);
                return -1;
        }
        if ((fd = mkostemps(path, (int)strlen(suffix), O_CLOEXEC)) < 0) {
                *f = fetch_fail(MMP_ERR_IO, 1, "cannot create a temp file in %s: %s", dir, strerror(errno));
                return -1;
        }
        if (mmp_tmplist_add(&ev->tmp, path)) {
                close(fd);
                unlink(path);
                *f = fetch_fail(MMP_ERR_NOMEM, 1, "%s: %s", name, "out of memory");
                return -1;
        }
        return fd;
}

const char *mmp_fetch_declared_type(const char *header, char *out, size_t out_size) {
        size_t n = 0;
        if (!header)
                return NULL;
        while (*header == ' ' || *header == '\t')
                header++;
        for (; header[n] && header[n] != ';' && header[n] != ' ' && header[n] != '\t' && n + 1 < out_size; n++)
                out[n] = (header[n] >= 'A' && header[n] <= 'Z') ? (char)(header[n] + 32) : header[n];
        out[n] = '\0';
        if (!n || !strchr(out, '/') || !strcmp(out, "binary/octet-stream") || !strcmp(out, "application/octet-stream"))
                return NULL;
        return out;
}

void mmp_fetch_set_download(mmp_event_t *ev, const mmp_xfer_t *x, const char *path) {
        mmp_event_set(ev, &ev->path, path);
        ev->size = x->received;
        if (!ev->time_ms && x->last_modified[0]) {
                time_t t = curl_getdate(x->last_modified, NULL);
                if (t > 0)
                        ev->time_ms = (int64_t)t * 1000;
        }
}

/* ---- the remote transfer ---- */

static pthread_key_t curl_key;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_handle_free(void *h) {
        curl_easy_cleanup(h);
}

static void curl_key_init(void) {
        /* Reference-counted by libcurl: harmless next to main()'s own call. */
        curl_global_init(CURL_GLOBAL_DEFAULT);
        pthread_key_create(&curl_key, curl_handle_free);
}

/* This thread's easy handle: its connection cache outlives one fetch. */
static CURL *thread_curl(void) {
        CURL *h;
        pthread_once(&curl_once, curl_key_init);
        if (!(h = pthread_getspecific(curl_key)) && (h = curl_easy_init()))
                pthread_setspecific(curl_key, h);
        return h;
}

static void thread_curl_release(void) {
        CURL *h;
        pthread_once(&curl_once, curl_key_init);
        if ((h = pthread_getspecific(curl_key))) {
                pthread_setspecific(curl_key, NULL);
                curl_easy_cleanup(h);
        }
}

/* What one attempt saw besides the fields of mmp_xfer_t. */
typedef struct attempt {
        mmp_xfer_t *x;
        char errbody[16384]; /* an error answer's body (S3's XML) */
        size_t errlen;
        int64_t retry_after_ms;
        int64_t last_progress_ms, last_dlnow;
        int too_big, stalled, cancelled, write_errno;
} attempt_t;

static int status_ok(long s) {
        return s >= 200 && s <= 299;
}

static void copy_trimmed(char *dst, size_t size, const char *v, size_t len) {
        while (len && (*v == ' ' || *v == '\t'))
                v++, len--;
        while (len && (v[len - 1] == ' ' || v[len - 1] == '\t' || v[len - 1] == '\r' || v[len - 1] == '\n'))
                len--;
        if (len >= size)
                len = size - 1;
        memcpy(dst, v, len);
        dst[len] = '\0';
}

/* A new status line (also after a redirect or a 100): forget what came before. */
static void response_reset(attempt_t *a, const char *line, size_t len) {
        mmp_xfer_t *x = a->x;
        char buf[128];
        const char *p;
        copy_trimmed(buf, sizeof(buf), line, len);
        x->status = (p = strchr(buf, ' ')) ? strtol(p + 1, NULL, 10) : 0;
        x->reason[0] = '\0';
        if (p && (p = strchr(p + 1, ' ')))
                snprintf(x->reason, sizeof(x->reason), "%s", p + 1);
        x->content_type[0] = x->etag[0] = x->version_id[0] = x->last_modified[0] = x->bucket_region[0] = '\0';
        x->content_length = -1;
        a->retry_after_ms = -1;
}

static size_t on_header(char *line, size_t size, size_t n, void *ud) {
        attempt_t *a = ud;
        mmp_xfer_t *x = a->x;
        size_t len = size * n, nlen;
        const char *colon = memchr(line, ':', len), *v;
        char num[32];

        if (len >= 5 && !memcmp(line, "HTTP/", 5)) {
                response_reset(a, line, len);
                return len;
        }
        if (len <= 2 && (line[0] == '\r' || line[0] == '\n')) {
                /* End of headers: refuse an announced oversized body before it flows. */
                if (status_ok(x->status) && x->max_bytes > 0 && x->content_length > x->max_bytes) {
                        a->too_big = 1;
                        return 0;
                }
                return len;
        }
        if (!colon)
                return len;
        nlen = (size_t)(colon - line);
        v = colon + 1;
        len -= nlen + 1;
#define IS(name) (nlen == sizeof(name) - 1 && !strncasecmp(line, name, nlen))
        if (IS("content-type")) {
                copy_trimmed(x->content_type, sizeof(x->content_type), v, len);
        } else if (IS("etag")) {
                char *e = x->etag;
                copy_trimmed(e, sizeof(x->etag), v, len);
                if (!strncmp(e, "W/", 2))
                        memmove(e, e + 2, strlen(e + 2) + 1);
                size_t el = strlen(e);
                if (el >= 2 && e[0] == '"' && e[el - 1] == '"') {
                        memmove(e, e + 1, el - 2);
                        e[el - 2] = '\0';
                }
        } else if (IS("x-amz-version-id")) {
                copy_trimmed(x->version_id, sizeof(x->version_id), v, len);
        } else if (IS("last-modified")) {
                copy_trimmed(x->last_modified, sizeof(x->last_modified), v, len);
        } else if (IS("x-amz-bucket-region")) {
                copy_trimmed(x->bucket_region, sizeof(x->bucket_region), v, len);
        } else if (IS("content-length")) {
                copy_trimmed(num, sizeof(num), v, len);
                x->content_length = strtoll(num, NULL, 10);
        } else if (IS("retry-after")) {
                copy_trimmed(num, sizeof(num), v, len);
                char *end;
                long long secs = strtoll(num, &end, 10);
                if (end != num && !*end && secs >= 0)
                        a->retry_after_ms = secs * 1000; /* an HTTP date is rare enough to ignore */
        }
#undef IS
        return size * n;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
        attempt_t *a = ud;
        mmp_xfer_t *x = a->x;
        size_t len = size * n, done = 0;

        if (!status_ok(x->status)) {
                /* An error answer: keep its head for S3's code and message. */
                size_t k = len < sizeof(a->errbody) - 1 - a->errlen ? len : sizeof(a->errbody) - 1 - a->errlen;
                memcpy(a->errbody + a->errlen, p, k);
                a->errlen += k;
                a->errbody[a->errlen] = '\0';
                return len;
        }
        if (x->max_bytes > 0 && x->received + (int64_t)len > x->max_bytes) {
                a->too_big = 1;
                return 0;
        }
        while (done < len) {
                ssize_t w = pwrite(x->fd, p + done, len - done, (off_t)(x->received + (int64_t)done));
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        a->write_errno = w < 0 ? errno : EIO;
                        return 0;
                }
                done += (size_t)w;
        }
        x->received += (int64_t)len;
        return len;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
        attempt_t *a = ud;
        int64_t now = mmp_now_ms();
        if (a->x->cancel && *a->x->cancel) {
                a->cancelled = 1;
                return 1;
        }
        if (dlnow != a->last_dlnow) {
                a->last_dlnow = dlnow;
                a->last_progress_ms = now;
        } else if (now - a->last_progress_ms > a->x->timeout_ms) {
                a->stalled = 1;
                return 1;
        }
        return 0;
}

/* The text of an XML element, entities decoded (S3's <Code>, <Message>). */
static void xml_text(const char *body, const char *tag, char *out, size_t out_size) {
        char open[64], close[64];
        const char *s, *e;
        size_t n = 0;
        out[0] = '\0';
        snprintf(open, sizeof(open), "<%s>", tag);
        snprintf(close, sizeof(close), "</%s>", tag);
        if (!(s = strstr(body, open)) || !(e = strstr(s += strlen(open), close)))
                return;
        static const struct {
                const char *ent;
                char c;
        } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
        while (s < e && n + 1 < out_size) {
                size_t i = 0;
                for (; *s == '&' && i < sizeof(ents) / sizeof(ents[0]); i++)
                        if (!strncmp(s, ents[i].ent, strlen(ents[i].ent)))
                                break;
                if (*s == '&' && i < sizeof(ents) / sizeof(ents[0])) {
                        out[n++] = ents[i].c;
                        s += strlen(ents[i].ent);
                } else {
                        out[n++] = (*s == '\n' || *s == '\r') ? ' ' : *s;
                        s++;
                }
        }
        out[n] = '\0';
}

static int retriable_curl_code(CURLcode cc) {
        switch (cc) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
                return 1;
        default:
                return 0;
        }
}

/* S3 error codes that mean "try again" even under a 4xx status. */
static int retriable_s3_code(const char *code) {
        static const char *const codes[] = {"SlowDown", "InternalError", "RequestTimeout", "ServiceUnavailable",
                                            "Throttling", "ThrottlingException"};
        for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
                if (!strcmp(code, codes[i]))
                        return 1;
        return 0;
}

static void set_options(CURL *h, mmp_xfer_t *x, attempt_t *a, const char *url, struct curl_slist *headers,
                        char *errbuf) {
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_NOBODY, x->head ? 1L : 0L);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, a);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)x->timeout_ms);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        /* S3 keys may hold "/../": send the path exactly as built and signed. */
        curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_USERAGENT, "mmpipe/" MMP_VERSION);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        if (x->follow_redirects) {
                curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
                curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
                curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        }
}

typedef enum verdict {
        V_DONE,
        V_RETRY, /* try again; retriable when the attempts run out */
        V_FAIL,  /* permanent */
        V_STOP,  /* retriable, but not by trying again at once (local disk, cancelled) */
} verdict_t;

/* Judges one attempt; on V_RETRY or V_FAIL writes the message and code. */
static verdict_t judge(mmp_xfer_t *x, attempt_t *a, CURLcode cc, const char *errbuf, mmp_err_t *code, char *msg,
                       size_t msg_size) {
        double mb_limit = (double)x->max_bytes / (1024.0 * 1024.0);
        *code = MMP_ERR_IO;
        if (a->too_big) {
                *code = MMP_ERR_BAD_INPUT;
                if (x->content_length > x->max_bytes)
                        snprintf(msg, msg_size, "%s: object is %.1f MB, over s3.max_object_mb (%g)", x->what,
                                 (double)x->content_length / (1024.0 * 1024.0), mb_limit);
                else
                        snprintf(msg, msg_size, "%s: object is over %g MB, over s3.max_object_mb (%g)", x->what,
                                 mb_limit, mb_limit);
                return V_FAIL;
        }
        if (a->write_errno) {
                snprintf(msg, msg_size, "%s: cannot write the temp file: %s", x->what, strerror(a->write_errno));
                return V_STOP;
        }
        if (a->cancelled) {
                *code = MMP_ERR_SHUTDOWN;
                snprintf(msg, msg_size, "%s: fetch cancelled", x->what);
                return V_STOP;
        }
        if (a->stalled) {
                *code = MMP_ERR_TIMEOUT;
                snprintf(msg, msg_size, "%s: no data for %lld ms (s3.timeout_ms)", x->what, (long long)x->timeout_ms);
                return V_RETRY;
        }
        if (cc != CURLE_OK) {
                if (cc == CURLE_OPERATION_TIMEDOUT)
                        *code = MMP_ERR_TIMEOUT;
                snprintf(msg, msg_size, "%s: %s", x->what, errbuf[0] ? errbuf : curl_easy_strerror(cc));
                return retriable_curl_code(cc) ? V_RETRY : V_FAIL;
        }
        if (status_ok(x->status))
                return V_DONE;
        xml_text(a->errbody, "Code", x->error_code, sizeof(x->error_code));
        xml_text(a->errbody, "Message", x->error_message, sizeof(x->error_message));
        if (x->status == 404)
                *code = MMP_ERR_NOT_FOUND;
        if (x->error_code[0])
                snprintf(msg, msg_size, "%s: %ld %s%s%s", x->what, x->status, x->error_code,
                         x->error_message[0] ? ": " : "", x->error_message);
        else
                snprintf(msg, msg_size, "%s: HTTP %ld%s%s", x->what, x->status, x->reason[0] ? " " : "", x->reason);
        if (x->bucket_region[0] && (x->status == 301 || x->status == 400))
                snprintf(msg + strlen(msg), msg_size - strlen(msg), " (the bucket is in %s: set s3.region)",
                         x->bucket_region);
        return mmp_retry_http_status(x->status) || retriable_s3_code(x->error_code) ? V_RETRY : V_FAIL;
}

mmp_failure_t *mmp_xfer_run(mmp_xfer_t *x) {
        CURL *h = thread_curl();
        char msg[2048], errbuf[CURL_ERROR_SIZE];
        mmp_err_t code = MMP_ERR_IO;
        verdict_t v = V_FAIL;
        attempt_t *a = calloc(1, sizeof(*a));
        mmp_failure_t *f;
        int attempts = x->retry.attempts > 0 ? x->retry.attempts : 1;

        if (!h || !a) {
                free(a);
                return fetch_fail(MMP_ERR_NOMEM, 1, "%s: %s", x->what, "cannot start a transfer (out of memory)");
        }
        for (x->attempts = 0; x->attempts < attempts;) {
                char *url = NULL, err[1024] = "";
                struct curl_slist *headers = NULL;
                mmp_err_t prc;

                if (x->attempts > 0) {
                        int64_t ms = mmp_retry_backoff_ms(&x->retry, x->attempts - 1);
                        if (a->retry_after_ms > ms)
                                ms = a->retry_after_ms < x->retry.cap_ms ? a->retry_after_ms : x->retry.cap_ms;
                        mmp_debug("fetch", "%s (attempt %d of %d); retrying in %lld ms", msg, x->attempts, attempts,
                                  (long long)ms);
                        if (mmp_retry_sleep_ms(ms, x->cancel)) {
                                code = MMP_ERR_SHUTDOWN;
                                snprintf(msg, sizeof(msg), "%s: fetch cancelled", x->what);
                                v = V_STOP;
                                break;
                        }
                }
                memset(a, 0, sizeof(*a));
                a->x = x;
                a->retry_after_ms = -1;
                a->last_progress_ms = mmp_now_ms();
                x->status = 0;
                x->reason[0] = x->error_code[0] = x->error_message[0] = '\0';
                x->content_length = -1;
                x->received = 0;
                if (!x->head && x->fd >= 0 && ftruncate(x->fd, 0) != 0) {
                        snprintf(msg, sizeof(msg), "%s: cannot truncate the temp file: %s", x->what, strerror(errno));
                        v = V_STOP;
                        x->attempts++;
                        break;
                }
                if ((prc = x->prepare(x, &url, &headers, err, sizeof(err))) != MMP_OK) {
                        code = prc;
                        snprintf(msg, sizeof(msg), "%s: %s", x->what, err);
                        v = V_FAIL;
                        curl_slist_free_all(headers);
                        free(url);
                        x->attempts++;
                        break;
                }
                errbuf[0] = '\0';
                curl_easy_reset(h);
                set_options(h, x, a, url, headers, errbuf);
                CURLcode cc = curl_easy_perform(h);
                if (cc == CURLE_OK)
                        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x->status);
                curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
                curl_slist_free_all(headers);
                free(url);
                x->attempts++;
                code = MMP_ERR_IO;
                if ((v = judge(x, a, cc, errbuf, &code, msg, sizeof(msg))) != V_RETRY)
                        break;
        }
        free(a);
        if (v == V_DONE)
                return NULL;
        if (v == V_RETRY && x->attempts > 1)
                snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), " (gave up after %d attempts)", x->attempts);
        /* Exhausted retries stay retriable: the object may well come back. */
        f = mmp_failure_new(code, MMP_STAGE_FETCH, v == V_RETRY || v == V_STOP, NULL, NULL, "%s", msg);
        if (f)
                f->attempts = x->attempts;
        return f;
}

/* ---- plain http(s) ---- */

static mmp_err_t http_prepare(mmp_xfer_t *x, char **url, struct curl_slist **headers, char *err, size_t err_size) {
        if (!(*url = strdup(x->opaque))) {
                snprintf(err, err_size, "%s", "out of memory");
                return MMP_ERR_NOMEM;
        }
        return MMP_OK;
}

mmp_failure_t *mmp_http_fetch(mmp_event_t *ev, const char *url) {
        const mmp_s3_settings_t *s = mmp_s3_settings();
        char path[4096], name[1024], declared_buf[128], hex[65], err[512];
        const char *declared;
        mmp_failure_t *f = NULL;
        mmp_xfer_t x = {0};
        int fd;

        /* The URL's path without query or fragment names the object. */
        snprintf(name, sizeof(name), "%s", url);
        name[strcspn(name, "?#")] = '\0';
        if ((fd = mmp_fetch_tempfile(ev, name, path, sizeof(path), &f)) < 0)
                return f;
        x.what = url;
        x.fd = fd;
        x.follow_redirects = 1;
        x.max_bytes = s->max_object_bytes;
        x.timeout_ms = s->timeout_ms;
        x.retry = s->retry;
        x.cancel = NULL; /* events carry no cancel flag: a fetch runs to its retry limit */
        x.prepare = http_prepare;
        x.opaque = (void *)url;
        if ((f = mmp_xfer_run(&x))) {
                close(fd);
                return f;
        }
        mmp_fetch_set_download(ev, &x, path);
        if (x.etag[0]) {
                mmp_event_set(ev, &ev->etag, x.etag);
        } else if (mmp_sha256_file(path, hex, NULL, err, sizeof(err)) == 0) {
                mmp_event_set(ev, &ev->etag, hex); /* no ETag: the content names itself, as for files */
        } else {
                close(fd);
                return fetch_fail(MMP_ERR_IO, 1, "%s: %s", url, err);
        }
        if (!ev->version)
                mmp_event_set(ev, &ev->version, ev->etag);
        declared = ev->content_type ? ev->content_type
                                    : mmp_fetch_declared_type(x.content_type, declared_buf, sizeof(declared_buf));
        if (!declared)
                declared = mmp_content_type_from_name(name);
        mmp_fetch_set_types(ev, fd, declared);
        close(fd);
        return NULL;
}

/* ---- entry points ---- */

int mmp_fetch_init(const mmp_config_t *cfg, char *errstr, size_t errstr_size) {
        mmp_s3_settings_t s;
        /* Cheap without an "s3" section: defaults and a few getenv calls. */
        if (mmp_s3_settings_parse(cfg ? mmp_config_get(cfg, "s3") : NULL,
                                  cfg ? mmp_config_origin(cfg) : "<no config>", &s, errstr, errstr_size))
                return -1;
        mmp_s3_configure(&s);
        return 0;
}

void mmp_fetch_shutdown(void) {
        mmp_s3_shutdown();
        thread_curl_release(); /* worker threads release theirs when they exit */
}

/* s3://bucket/key: the key is everything after the bucket's '/', raw. */
static mmp_failure_t *fetch_s3_url(mmp_event_t *ev, const char *url) {
        const char *b = url + 5, *slash = strchr(b, '/');
        char *bucket;
        mmp_failure_t *f;
        if (ev->bucket && *ev->bucket && ev->key && *ev->key)
                return mmp_s3_fetch(ev, ev->bucket, ev->key);
        if (!slash || slash == b || !slash[1])
                return fetch_fail(MMP_ERR_INVALID, 0, "%s: %s", url, "expected s3://BUCKET/KEY");
        if (!(bucket = strndup(b, (size_t)(slash - b))))
                return fetch_fail(MMP_ERR_NOMEM, 1, "%s: %s", url, "out of memory");
        f = mmp_s3_fetch(ev, bucket, slash + 1);
        free(bucket);
        return f;
}

mmp_failure_t *mmp_fetch(mmp_event_t *ev) {
        const char *url = ev->url ? ev->url : ev->key;
        if (!url)
                return fetch_fail(MMP_ERR_INVALID, 0, "event %s has %s", ev->id ? ev->id : "?", "no object location");
        if (!strncmp(url, "file://", 7))
                return fetch_file(ev, url + 7);
        if (url[0] == '/')
                return fetch_file(ev, url);
        if (!strncmp(url, "s3://", 5))
                return fetch_s3_url(ev, url);
        if (!strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8))
                return mmp_http_fetch(ev, url);
        return fetch_fail(MMP_ERR_UNSUPPORTED, 0, "%s: fetching this kind of URL is %s", url,
                          "not supported (file://, s3://, http:// and https:// are)");
}
