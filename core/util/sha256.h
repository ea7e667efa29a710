/*
 * SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), written here so the
 * engine needs no crypto library for document ids and SigV4. Any thread:
 * a context belongs to its caller; the functions share no state.
 */
#ifndef MMP_SHA256_H
#define MMP_SHA256_H

#include <stddef.h>
#include <stdint.h>

/* A streaming context. Plain struct so callers can keep it on the stack;
 * touch it only through the functions below. */
typedef struct mmp_sha256 {
        uint32_t h[8];     /* chaining state */
        uint64_t nbytes;   /* message length so far */
        uint8_t buf[64];   /* partial block */
        size_t buflen;     /* bytes used in buf */
} mmp_sha256_t;

void mmp_sha256_init(mmp_sha256_t *ctx);
/* Feeds len bytes (data may be NULL when len is 0). */
void mmp_sha256_update(mmp_sha256_t *ctx, const void *data, size_t len);
/* Writes the digest; ctx must be re-initialised before reuse. */
void mmp_sha256_final(mmp_sha256_t *ctx, uint8_t out[32]);
/* One-shot digest of a buffer. */
void mmp_sha256(const void *data, size_t len, uint8_t out[32]);

/* Lower-case hex of n bytes into out, which holds 2n+1 chars (NUL-ended). */
void mmp_hex(const uint8_t *in, size_t n, char *out);

/* Hashes a file by streaming it in 64 KiB reads (never loaded whole).
 * On success writes the lower-case hex digest and, if size_out is not NULL,
 * the number of bytes read, and returns 0. On failure returns MMP_ERR_IO
 * with "cannot open|read PATH: strerror" in errstr. */
int mmp_sha256_file(const char *path, char hex_out[65], int64_t *size_out, char *errstr,
                    size_t errstr_size);

/* HMAC-SHA256 of msg under key (any key length; keys longer than the
 * 64-byte block are hashed first, as RFC 2104 says). */
void mmp_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, uint8_t out[32]);

#endif
