/*
 * S3 object fetch: the "s3" config section, request building (addressing
 * style, key encoding, SigV4 headers) and the HEAD/GET flow that streams an
 * object to the event's temp file. Also declares the remote transfer that
 * fetch.c runs for S3 and plain http(s) alike. Fetches run on worker
 * threads; configure/shutdown on the main thread while no fetch runs.
 */
#ifndef MMP_S3_H
#define MMP_S3_H

#include <jansson.h>
#include <stdint.h>
#include <time.h>

#include "engine/event.h"
#include "fetch/credentials.h"
#include "fetch/retry.h"
#include "util/err.h"

struct curl_slist;

/* ---- settings: the "s3" section (docs/s3.md) ---- */

typedef struct mmp_s3_settings {
        char *region;             /* s3.region, else AWS_REGION, AWS_DEFAULT_REGION, "us-east-1" */
        char *endpoint;           /* "http://127.0.0.1:9000" (no trailing '/'), NULL = AWS */
        int path_style;           /* ENDPOINT/bucket/key instead of bucket.HOST/key */
        char *profile;            /* NULL = AWS_PROFILE, else "default" */
        char *credentials_file;   /* NULL = AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials */
        int64_t max_object_bytes; /* s3.max_object_mb */
        int64_t timeout_ms;       /* connect, and longest pause in a transfer */
        mmp_retry_policy_t retry;
} mmp_s3_settings_t;

/* Reads the "s3" section (NULL = absent: all defaults) into out. Returns
 * 0, or -1 with errstr "ORIGIN: s3.KEY: expected ..., got ...". */
int mmp_s3_settings_parse(const json_t *section, const char *origin, mmp_s3_settings_t *out, char *errstr,
                          size_t errstr_size);
void mmp_s3_settings_clear(mmp_s3_settings_t *s);

/* Installs settings for every later fetch, taking over its strings (s is
 * zeroed). Main thread, while no fetch runs. */
void mmp_s3_configure(mmp_s3_settings_t *s);
/* The settings in force: the configured ones, or the defaults. */
const mmp_s3_settings_t *mmp_s3_settings(void);
/* Drops the settings and the cached credentials. */
void mmp_s3_shutdown(void);

/* ---- requests ---- */

/* One signed S3 request, ready for curl. */
typedef struct mmp_s3_request {
        char *url;
        char *host;              /* the Host header, signed */
        char *path;              /* canonical URI: the URL's path as sent */
        char *query;             /* "versionId=..." or "" */
        char *headers[5];        /* "Name: value" lines: Host, X-Amz-Date, x-amz-content-sha256,
                                    Authorization, [X-Amz-Security-Token] */
        size_t n_headers;
        char *canonical_request; /* what was signed (diagnostics, tests) */
} mmp_s3_request_t;

/* Builds the URL for bucket/key (key raw, not encoded; version_id may be
 * NULL) under the settings' addressing style and signs it for method at
 * time now. Returns 0, or -1 with errstr (invalid bucket, no memory). The
 * caller clears out with mmp_s3_request_clear. Any thread. */
int mmp_s3_request_build(const mmp_s3_settings_t *s, const char *method, const char *bucket, const char *key,
                         const char *version_id, const mmp_aws_credentials_t *creds, time_t now,
                         mmp_s3_request_t *out, char *errstr, size_t errstr_size);
void mmp_s3_request_clear(mmp_s3_request_t *r);

/* Tests only: sign with this fixed time instead of the clock (0 = clock). */
void mmp_s3_set_clock(time_t fixed);

/* ---- fetches (worker threads) ---- */

/* Fetches s3://bucket/key (key raw) into a temp file of the event. NULL on
 * success, else a failure of stage fetch. */
mmp_failure_t *mmp_s3_fetch(mmp_event_t *ev, const char *bucket, const char *key);
/* Fetches an http:// or https:// URL with a plain GET (no signing). */
mmp_failure_t *mmp_http_fetch(mmp_event_t *ev, const char *url);

/* ---- the remote transfer, shared by both (fetch.c) ---- */

typedef struct mmp_xfer mmp_xfer_t;

/* Called before every attempt: sets *url (malloc'd) and *headers (a curl
 * list, may stay NULL) for this attempt, so a retry is signed afresh.
 * Returns MMP_OK, or an error code with err for a permanent failure. */
typedef mmp_err_t (*mmp_xfer_prepare_fn)(mmp_xfer_t *x, char **url, struct curl_slist **headers, char *err,
                                         size_t err_size);

struct mmp_xfer {
        /* Request, set by the caller. */
        const char *what;          /* "s3://b/k" or the URL: every message starts with it */
        int head;                  /* HEAD (no body) instead of GET */
        int fd;                    /* GET: the body is written here, from offset 0 on each attempt */
        int follow_redirects;      /* plain http(s) only */
        int64_t max_bytes;
        int64_t timeout_ms;
        mmp_retry_policy_t retry;
        const volatile int *cancel; /* the event was abandoned: stop */
        mmp_xfer_prepare_fn prepare;
        void *opaque;              /* for prepare */
        /* Response of the last attempt. */
        long status;
        char reason[64];           /* the status line's reason phrase */
        char content_type[256];
        char etag[256];            /* quotes (and a weak W/ prefix) stripped */
        char version_id[256];      /* x-amz-version-id */
        char last_modified[64];
        int64_t content_length;    /* -1 when not sent */
        int64_t received;          /* body bytes written to fd */
        char error_code[128];      /* S3's <Code>, "" when none */
        char error_message[512];   /* S3's <Message> */
        char bucket_region[64];    /* x-amz-bucket-region, sent with wrong-region answers */
        int attempts;
};

/* Runs x with retries (5xx, 429, S3 SlowDown/InternalError/RequestTimeout,
 * connection errors and stalls) and backoff with full jitter. Blocks: worker
 * threads only. NULL when the final answer is 2xx, else a failure (stage
 * fetch, caller owns it) with attempts set: 404 is MMP_ERR_NOT_FOUND, other
 * 4xx and 3xx MMP_ERR_IO, both permanent; a body over max_bytes is a
 * permanent MMP_ERR_BAD_INPUT; exhausted retries are retriable
 * (MMP_ERR_TIMEOUT for timeouts and stalls, MMP_ERR_IO otherwise), and so
 * are a failed temp-file write and a cancel (not retried here). */
mmp_failure_t *mmp_xfer_run(mmp_xfer_t *x);

/* ---- shared by fetch.c (which defines them) and s3.c ---- */

/* After a download: records the libmagic type of fd's bytes, the declared
 * type (declared, else detected) and whether they disagree. */
void mmp_fetch_set_types(mmp_event_t *ev, int fd, const char *declared);
/* Creates the event's temp file for an object named name (its extension
 * is kept, for tools that look at it), registered in ev->tmp so it is
 * removed with the event, and writes its path. Returns the fd, or -1 with
 * a failure in *f. */
int mmp_fetch_tempfile(mmp_event_t *ev, const char *name, char *path, size_t path_size, mmp_failure_t **f);
/* A Content-Type header as a declared type: parameters dropped, lower
 * case; NULL for none or for the generic binary/octet-stream and
 * application/octet-stream, which say nothing about the content. */
const char *mmp_fetch_declared_type(const char *header, char *out, size_t out_size);
/* Records a finished download in the event: path, size, and the time from
 * Last-Modified when the event has none. */
void mmp_fetch_set_download(mmp_event_t *ev, const mmp_xfer_t *x, const char *path);

#endif
