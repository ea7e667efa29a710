/*
 * Unit tests for SHA-256, HMAC-SHA256 and document ids: NIST and RFC 4231
 * vectors, file hashing, and the docid encoding. Single-threaded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/docid.h"
#include "util/err.h"
#include "util/sha256.h"

static void assert_digest(const uint8_t d[32], const char *hex) {
        char got[65];
        mmp_hex(d, 32, got);
        assert_string_equal(got, hex);
}

static void assert_sha256(const char *msg, const char *hex) {
        uint8_t d[32];
        mmp_sha256(msg, strlen(msg), d);
        assert_digest(d, hex);
}

/* FIPS 180-4 examples (NIST CSRC "SHA256.pdf" / SHAVS short messages). */
static void test_nist_vectors(void **state) {
        assert_sha256("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_sha256("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_million_a_streaming(void **state) {
        /* Odd-sized pieces cross block boundaries at every offset. */
        static const size_t pieces[] = {1, 63, 64, 65, 127, 3, 1000, 4097, 55, 56, 57};
        char buf[4097];
        memset(buf, 'a', sizeof(buf));
        mmp_sha256_t ctx;
        mmp_sha256_init(&ctx);
        size_t left = 1000000, i = 0;
        while (left) {
                size_t n = pieces[i++ % (sizeof(pieces) / sizeof(pieces[0]))];
                if (n > left)
                        n = left;
                mmp_sha256_update(&ctx, buf, n);
                left -= n;
        }
        mmp_sha256_update(&ctx, NULL, 0);
        uint8_t d[32];
        mmp_sha256_final(&ctx, d);
        assert_digest(d, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_padding_edges(void **state) {
        /* 55, 56 and 64 bytes: the length field fits, just fails to fit, and a full block. */
        char msg[65];
        uint8_t one[32], streamed[32];
        for (size_t len = 50; len <= 64; len++) {
                memset(msg, 'q', len);
                mmp_sha256(msg, len, one);
                mmp_sha256_t ctx;
                mmp_sha256_init(&ctx);
                for (size_t i = 0; i < len; i++)
                        mmp_sha256_update(&ctx, msg + i, 1);
                mmp_sha256_final(&ctx, streamed);
                assert_memory_equal(one, streamed, 32);
        }
}

static void test_hex(void **state) {
        const uint8_t in[] = {0x00, 0x0f, 0xa5, 0xff};
        char out[9];
        mmp_hex(in, sizeof(in), out);
        assert_string_equal(out, "000fa5ff");
}

/* RFC 4231 test cases 1, 2 and 6. */
static void test_hmac_rfc4231(void **state) {
        uint8_t key[131], d[32];
        memset(key, 0x0b, 20);
        mmp_hmac_sha256(key, 20, "Hi There", 8, d);
        assert_digest(d, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

        const char *m2 = "what do ya want for nothing?";
        mmp_hmac_sha256("Jefe", 4, m2, strlen(m2), d);
        assert_digest(d, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

        const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
        memset(key, 0xaa, sizeof(key));
        mmp_hmac_sha256(key, sizeof(key), m6, strlen(m6), d);
        assert_digest(d, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void test_file(void **state) {
        char path[] = "/tmp/mmp_test_sha256_XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        /* 256003 bytes: several 64 KiB reads and a short tail. */
        uint8_t chunk[256];
        for (int i = 0; i < 256; i++)
                chunk[i] = (uint8_t)i;
        for (int i = 0; i < 1000; i++)
                assert_int_equal(write(fd, chunk, sizeof(chunk)), sizeof(chunk));
        assert_int_equal(write(fd, "xyz", 3), 3);
        close(fd);

        char hex[65], err[256] = "";
        int64_t size = -1;
        assert_int_equal(mmp_sha256_file(path, hex, &size, err, sizeof(err)), MMP_OK);
        assert_string_equal(hex, "74e5604d96b55e2b138cc325af685c8160f2068195c5ad9c7cf36e8b27aa48a8");
        assert_int_equal(size, 256003);
        assert_int_equal(mmp_sha256_file(path, hex, NULL, err, sizeof(err)), MMP_OK);
        unlink(path);

        assert_int_equal(mmp_sha256_file(path, hex, &size, err, sizeof(err)), MMP_ERR_IO);
        char want[300];
        snprintf(want, sizeof(want), "cannot open %s: No such file or directory", path);
        assert_string_equal(err, want);
}

static void test_docid_known_value(void **state) {
        /* Computed independently:
         *   f = lambda s: struct.pack('>Q', len(s)) + s
         *   sha256(f(b"video-embeddings") + f(b"media") + f(b"videos/cat.mp4")
         *          + f(b"3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY") + struct.pack('>Q', 7)).hexdigest()[:24] */
        char id[25];
        mmp_docid("video-embeddings", "media", "videos/cat.mp4", "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
                  7, id);
        assert_string_equal(id, "2d82df0200537eee1eaf5fd4");
        mmp_docid("", "", "", "", 0, id);
        assert_string_equal(id, "2c34ce1df23b838c5abf2a7f");
        /* NULL fields hash as empty strings. */
        mmp_docid(NULL, NULL, NULL, NULL, 0, id);
        assert_string_equal(id, "2c34ce1df23b838c5abf2a7f");
}

static void test_docid_deterministic_and_distinct(void **state) {
        char a[25], b[25];
        mmp_docid("p", "b", "k", "v", 1, a);
        mmp_docid("p", "b", "k", "v", 1, b);
        assert_string_equal(a, b);
        assert_int_equal(strlen(a), 24);

        const char *changed[][4] = {
            {"P", "b", "k", "v"}, {"p", "B", "k", "v"}, {"p", "b", "K", "v"}, {"p", "b", "k", "V"}};
        for (size_t i = 0; i < 4; i++) {
                mmp_docid(changed[i][0], changed[i][1], changed[i][2], changed[i][3], 1, b);
                assert_string_not_equal(a, b);
        }
        mmp_docid("p", "b", "k", "v", 2, b);
        assert_string_not_equal(a, b);
        mmp_docid("p", "b", "k", "v", (uint64_t)1 << 32 | 1, b);
        assert_string_not_equal(a, b);
}

static void test_docid_field_splits(void **state) {
        /* Moving bytes between neighbouring fields must change the id. */
        char a[25], b[25], c[25];
        mmp_docid("ab", "c", "k", "v", 0, a);
        mmp_docid("a", "bc", "k", "v", 0, b);
        assert_string_not_equal(a, b);
        mmp_docid("p", "b", "k1", "", 0, a);
        mmp_docid("p", "b", "k", "1", 0, b);
        mmp_docid("p", "b", "", "k1", 0, c);
        assert_string_not_equal(a, b);
        assert_string_not_equal(a, c);
        assert_string_not_equal(b, c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_nist_vectors),
            cmocka_unit_test(test_million_a_streaming),
            cmocka_unit_test(test_padding_edges),
            cmocka_unit_test(test_hex),
            cmocka_unit_test(test_hmac_rfc4231),
            cmocka_unit_test(test_file),
            cmocka_unit_test(test_docid_known_value),
            cmocka_unit_test(test_docid_deterministic_and_distinct),
            cmocka_unit_test(test_docid_field_splits),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
