/*
 * Deterministic document ids (encoding in docid.h). Any thread; sink
 * writers and lanes call it per document.
 */
#include "docid.h"

#include <string.h>

#include "sha256.h"

static void put_u64_be(mmp_sha256_t *ctx, uint64_t v) {
        uint8_t b[8];
        for (int i = 7; i >= 0; i--, v >>= 8)
                b[i] = (uint8_t)v;
        mmp_sha256_update(ctx, b, sizeof(b));
}

static void put_field(mmp_sha256_t *ctx, const char *s) {
        size_t n = s ? strlen(s) : 0;
        put_u64_be(ctx, (uint64_t)n);
        mmp_sha256_update(ctx, s, n);
}

void mmp_docid(const char *pipeline, const char *bucket, const char *key, const char *version,
               uint64_t index, char out[25]) {
        mmp_sha256_t ctx;
        uint8_t digest[32];
        mmp_sha256_init(&ctx);
        put_field(&ctx, pipeline);
        put_field(&ctx, bucket);
        put_field(&ctx, key);
        put_field(&ctx, version);
        put_u64_be(&ctx, index);
        mmp_sha256_final(&ctx, digest);
        mmp_hex(digest, 12, out);
}
