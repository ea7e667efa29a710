/*
 * SHA-256 from FIPS 180-4 section 6.2, HMAC from RFC 2104. Any thread; no
 * shared state. Portable C: big-endian loads and stores are done by hand.
 */
#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

/* FIPS 180-4 4.2.2: the first 32 bits of the fractional parts of the cube
 * roots of the first 64 primes. */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define CH(x, y, z) (((x) & (y)) ^ (~(x) & (z)))
#define MAJ(x, y, z) (((x) & (y)) ^ ((x) & (z)) ^ ((y) & (z)))
#define BSIG0(x) (ROTR(x, 2) ^ ROTR(x, 13) ^ ROTR(x, 22))
#define BSIG1(x) (ROTR(x, 6) ^ ROTR(x, 11) ^ ROTR(x, 25))
#define SSIG0(x) (ROTR(x, 7) ^ ROTR(x, 18) ^ ((x) >> 3))
#define SSIG1(x) (ROTR(x, 17) ^ ROTR(x, 19) ^ ((x) >> 10))

static uint32_t load_be32(const uint8_t *p) {
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void store_be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
}

/* One 512-bit block (FIPS 180-4 6.2.2). */
static void compress(uint32_t h[8], const uint8_t block[64]) {
        uint32_t w[64];
        for (int t = 0; t < 16; t++)
                w[t] = load_be32(block + 4 * t);
        for (int t = 16; t < 64; t++)
                w[t] = SSIG1(w[t - 2]) + w[t - 7] + SSIG0(w[t - 15]) + w[t - 16];

        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
        for (int t = 0; t < 64; t++) {
                uint32_t t1 = hh + BSIG1(e) + CH(e, f, g) + K[t] + w[t];
                uint32_t t2 = BSIG0(a) + MAJ(a, b, c);
                hh = g;
                g = f;
                f = e;
                e = d + t1;
                d = c;
                c = b;
                b = a;
                a = t1 + t2;
        }
        h[0] += a;
        h[1] += b;
        h[2] += c;
        h[3] += d;
        h[4] += e;
        h[5] += f;
        h[6] += g;
        h[7] += hh;
}

void mmp_sha256_init(mmp_sha256_t *ctx) {
        /* FIPS 180-4 5.3.3: square roots of the first 8 primes. */
        static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
        memcpy(ctx->h, h0, sizeof(h0));
        ctx->nbytes = 0;
        ctx->buflen = 0;
}

void mmp_sha256_update(mmp_sha256_t *ctx, const void *data, size_t len) {
        const uint8_t *p = data;
        if (!len)
                return; /* data may be NULL: memcpy must not see it */
        ctx->nbytes += len;
        if (ctx->buflen) {
                size_t take = 64 - ctx->buflen < len ? 64 - ctx->buflen : len;
                memcpy(ctx->buf + ctx->buflen, p, take);
                ctx->buflen += take;
                p += take;
                len -= take;
                if (ctx->buflen < 64)
                        return;
                compress(ctx->h, ctx->buf);
                ctx->buflen = 0;
        }
        /* Whole blocks straight from the caller's buffer, no copy. */
        for (; len >= 64; p += 64, len -= 64)
                compress(ctx->h, p);
        if (len) {
                memcpy(ctx->buf, p, len);
                ctx->buflen = len;
        }
}

void mmp_sha256_final(mmp_sha256_t *ctx, uint8_t out[32]) {
        /* Padding (5.1.1): 0x80, zeros to 56 mod 64, then the bit length. */
        uint64_t bits = ctx->nbytes * 8;
        ctx->buf[ctx->buflen++] = 0x80;
        if (ctx->buflen > 56) {
                memset(ctx->buf + ctx->buflen, 0, 64 - ctx->buflen);
                compress(ctx->h, ctx->buf);
                ctx->buflen = 0;
        }
        memset(ctx->buf + ctx->buflen, 0, 56 - ctx->buflen);
        store_be32(ctx->buf + 56, (uint32_t)(bits >> 32));
        store_be32(ctx->buf + 60, (uint32_t)bits);
        compress(ctx->h, ctx->buf);
        for (int i = 0; i < 8; i++)
                store_be32(out + 4 * i, ctx->h[i]);
        /* The state is derived from the message: do not leave it behind
         * (HMAC keys pass through here). */
        memset(ctx, 0, sizeof(*ctx));
}

void mmp_sha256(const void *data, size_t len, uint8_t out[32]) {
        mmp_sha256_t ctx;
        mmp_sha256_init(&ctx);
        mmp_sha256_update(&ctx, data, len);
        mmp_sha256_final(&ctx, out);
}

void mmp_hex(const uint8_t *in, size_t n, char *out) {
        static const char digits[] = "0123456789abcdef";
        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[in[i] >> 4];
                out[2 * i + 1] = digits[in[i] & 0xf];
        }
        out[2 * n] = '\0';
}

int mmp_sha256_file(const char *path, char hex_out[65], int64_t *size_out, char *errstr,
                    size_t errstr_size) {
        enum { CHUNK = 64 * 1024 };
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                snprintf(errstr, errstr_size, "cannot open %s: %s", path, strerror(errno));
                return MMP_ERR_IO;
        }
        /* On the heap: worker threads may run with small stacks. */
        uint8_t *buf = malloc(CHUNK);
        if (!buf) {
                close(fd);
                snprintf(errstr, errstr_size, "cannot read %s: out of memory", path);
                return MMP_ERR_NOMEM;
        }
        mmp_sha256_t ctx;
        mmp_sha256_init(&ctx);
        int64_t total = 0;
        for (;;) {
                ssize_t n = read(fd, buf, CHUNK);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        snprintf(errstr, errstr_size, "cannot read %s: %s", path, strerror(errno));
                        free(buf);
                        close(fd);
                        return MMP_ERR_IO;
                }
                if (n == 0)
                        break;
                mmp_sha256_update(&ctx, buf, (size_t)n);
                total += n;
        }
        free(buf);
        close(fd);
        uint8_t digest[32];
        mmp_sha256_final(&ctx, digest);
        mmp_hex(digest, sizeof(digest), hex_out);
        if (size_out)
                *size_out = total;
        return MMP_OK;
}

void mmp_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, uint8_t out[32]) {
        uint8_t k[64] = {0}, pad[64], inner[32];
        if (klen > sizeof(k))
                mmp_sha256(key, klen, k);
        else if (klen)
                memcpy(k, key, klen);

        mmp_sha256_t ctx;
        for (int i = 0; i < 64; i++)
                pad[i] = k[i] ^ 0x36;
        mmp_sha256_init(&ctx);
        mmp_sha256_update(&ctx, pad, sizeof(pad));
        mmp_sha256_update(&ctx, msg, mlen);
        mmp_sha256_final(&ctx, inner);

        for (int i = 0; i < 64; i++)
                pad[i] = k[i] ^ 0x5c;
        mmp_sha256_init(&ctx);
        mmp_sha256_update(&ctx, pad, sizeof(pad));
        mmp_sha256_update(&ctx, inner, sizeof(inner));
        mmp_sha256_final(&ctx, out);

        /* Not memset: the compiler may drop stores to dying locals. */
        explicit_bzero(k, sizeof(k));
        explicit_bzero(pad, sizeof(pad));
}
