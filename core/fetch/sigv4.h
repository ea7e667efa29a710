/*
 * AWS Signature Version 4 for one HTTP request, written here rather than
 * left to libcurl's CURLOPT_AWS_SIGV4 so the engine signs at a time it
 * chooses (testable byte for byte against botocore) and signs
 * x-amz-content-sha256, which S3 requires and libcurl 7.88 does not add.
 * Pure functions: any thread.
 */
#ifndef MMP_SIGV4_H
#define MMP_SIGV4_H

#include <stddef.h>
#include <time.h>

/* SHA-256 of the empty body, the payload hash of every GET and HEAD. */
#define MMP_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct mmp_sigv4_header {
        const char *name; /* any case; names must be distinct */
        const char *value;
} mmp_sigv4_header_t;

/* Everything that goes into a signature. All strings are borrowed. */
typedef struct mmp_sigv4_request {
        const char *method;         /* "GET", "HEAD", "POST" ... */
        const char *host;           /* the Host header as sent: "b.s3.eu-west-1.amazonaws.com", "127.0.0.1:9000" */
        const char *path;           /* canonical URI, already URI-encoded exactly as sent ("/b/a%20b.txt") */
        const char *query;          /* canonical query string (sorted, encoded) or NULL */
        const mmp_sigv4_header_t *headers; /* further headers to sign (content-type ...), may be NULL */
        size_t n_headers;
        const char *payload_sha256; /* hex digest of the body; NULL = empty body */
        const char *region;         /* "us-east-1" */
        const char *service;        /* "s3", "sagemaker" */
        const char *access_key_id;
        const char *secret_access_key;
        const char *session_token;  /* NULL when none; sent and signed as x-amz-security-token */
        time_t now;                 /* the signing time, UTC seconds */
} mmp_sigv4_request_t;

/* The headers to add to the request (their values; names are fixed). */
typedef struct mmp_sigv4_signed {
        char amz_date[17];       /* X-Amz-Date: 20240102T030405Z */
        char content_sha256[65]; /* x-amz-content-sha256 */
        char *authorization;     /* Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=... */
        char *canonical_request; /* what was signed, for diagnostics */
} mmp_sigv4_signed_t;

/* Signs req. The host, x-amz-content-sha256, x-amz-date and (with a token)
 * x-amz-security-token headers are always signed, besides req->headers.
 * Returns 0, or -1 with errstr on bad input or no memory. On success the
 * caller owns out's strings: free them with mmp_sigv4_signed_clear. */
int mmp_sigv4_sign(const mmp_sigv4_request_t *req, mmp_sigv4_signed_t *out, char *errstr,
                   size_t errstr_size);
void mmp_sigv4_signed_clear(mmp_sigv4_signed_t *s);

/* URI-encodes s the way SigV4 and S3 want: A-Z a-z 0-9 - . _ ~ stay, every
 * other byte becomes %XX (upper-case hex), and '/' stays when keep_slash.
 * Returns a malloc'd string, or NULL when out of memory. */
char *mmp_sigv4_uri_encode(const char *s, int keep_slash);

#endif
