/*
 * UTF-8 policy of the text plugin: strict validation, U+FFFD for each maximal
 * subpart of an ill-formed subsequence, binary detection, BOM and line-end
 * normalisation. Worker-pool threads; no state outside the call.
 */
#include <string.h>

#include "text.h"

#define TEXT_REPLACEMENT "\xEF\xBF\xBD" /* U+FFFD */

/* Length of the valid sequence at s[0..n) (1..4), or 0 when s[0] starts an
 * ill-formed subsequence; then *badlen is the length of its maximal subpart
 * (Unicode 15, 3.9 "U+FFFD substitution of maximal subparts", as WHATWG and
 * Python decode). Rejects overlongs, surrogates and code points > U+10FFFF
 * by the narrowed second-byte ranges of Table 3-7. */
static size_t utf8_valid_len(const unsigned char *s, size_t n, uint32_t *cp, size_t *badlen) {
        unsigned char b0 = s[0], lo = 0x80, hi = 0xBF;
        size_t need, i;
        uint32_t c;

        *badlen = 1;
        if (b0 < 0x80) {
                *cp = b0;
                return 1;
        }
        if (b0 < 0xC2 || b0 > 0xF4)
                return 0; /* continuation byte, C0/C1 overlong lead, or > U+10FFFF */
        if (b0 < 0xE0) {
                need = 1;
                c = b0 & 0x1F;
        } else if (b0 < 0xF0) {
                need = 2;
                c = b0 & 0x0F;
                if (b0 == 0xE0)
                        lo = 0xA0; /* overlong */
                else if (b0 == 0xED)
                        hi = 0x9F; /* surrogates */
        } else {
                need = 3;
                c = b0 & 0x07;
                if (b0 == 0xF0)
                        lo = 0x90; /* overlong */
                else if (b0 == 0xF4)
                        hi = 0x8F; /* > U+10FFFF */
        }
        for (i = 1; i <= need; i++) {
                if (i >= n || s[i] < lo || s[i] > hi) {
                        *badlen = i;
                        return 0;
                }
                c = (c << 6) | (s[i] & 0x3F);
                lo = 0x80;
                hi = 0xBF;
        }
        *cp = c;
        return need + 1;
}

size_t text_utf8_decode(const char *s, size_t n, uint32_t *cp) {
        size_t bad, len = utf8_valid_len((const unsigned char *)s, n, cp, &bad);
        if (len)
                return len;
        *cp = 0xFFFD;
        return 1;
}

size_t text_utf8_prev(const char *s, size_t pos) {
        size_t p = pos - 1;
        while (p > 0 && pos - p < 4 && ((unsigned char)s[p] & 0xC0) == 0x80)
                p--;
        return p;
}

size_t text_utf8_count(const char *s, size_t n) {
        size_t count = 0;
        uint32_t cp;
        for (size_t i = 0; i < n; count++)
                i += text_utf8_decode(s + i, n - i, &cp);
        return count;
}

int text_is_space(uint32_t cp) {
        if (cp < 0x80)
                return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
        switch (cp) {
        case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
        case 0x202F: case 0x205F: case 0x3000:
                return 1;
        default:
                return cp >= 0x2000 && cp <= 0x200A;
        }
}

/* First pass: counts ill-formed bytes overall and in the head, finds a NUL.
 * Fails the call when the input looks binary. */
static int utf8_check_binary(text_ctx_t *ctx, const unsigned char *s, size_t len,
                             text_utf8_stats_t *stats) {
        size_t i = 0, head_invalid = 0, head = len < TEXT_BINARY_HEAD ? len : TEXT_BINARY_HEAD;
        size_t bad, n, next_check = TEXT_CANCEL_STRIDE;
        uint32_t cp;

        while (i < len) {
                if (i >= next_check) {
                        if (text_cancelled(ctx))
                                return -1;
                        next_check += TEXT_CANCEL_STRIDE;
                }
                if (!s[i]) {
                        text_fail(ctx, "binary content: NUL byte at offset %zu", i);
                        return -1;
                }
                if ((n = utf8_valid_len(s + i, len - i, &cp, &bad))) {
                        i += n;
                        continue;
                }
                stats->invalid_bytes += bad;
                stats->replaced++;
                if (i < head)
                        head_invalid += (i + bad <= head ? bad : head - i);
                i += bad;
        }
        if (head_invalid * TEXT_BINARY_RATIO > head) {
                text_fail(ctx, "binary content: %zu%% of bytes are not valid UTF-8",
                          (head_invalid * 100 + head - 1) / head);
                return -1;
        }
        if (stats->invalid_bytes * TEXT_BINARY_RATIO > len) {
                text_fail(ctx, "binary content: %zu%% of bytes are not valid UTF-8",
                          (stats->invalid_bytes * 100 + len - 1) / len);
                return -1;
        }
        return 0;
}

/* Second pass: writes the clean text. Runs are copied whole, so valid text
 * costs one memcpy per line end or bad sequence. */
static void utf8_write_clean(const unsigned char *s, size_t len, text_buf_t *out) {
        size_t i = 0, run = 0, bad, n;
        char *w = out->data + out->len;
        uint32_t cp;

#define FLUSH_RUN()                                    \
        do {                                           \
                memcpy(w, s + run, i - run);           \
                w += i - run;                          \
        } while (0)
        while (i < len) {
                if (s[i] == '\r') {
                        FLUSH_RUN();
                        *w++ = '\n';
                        i += (i + 1 < len && s[i + 1] == '\n') ? 2 : 1;
                        run = i;
                } else if ((n = utf8_valid_len(s + i, len - i, &cp, &bad))) {
                        i += n;
                } else {
                        FLUSH_RUN();
                        memcpy(w, TEXT_REPLACEMENT, 3);
                        w += 3;
                        i += bad;
                        run = i;
                }
        }
        FLUSH_RUN();
#undef FLUSH_RUN
        out->len = (size_t)(w - out->data);
        out->data[out->len] = '\0';
}

int text_utf8_clean(text_ctx_t *ctx, const char *data, size_t len, text_buf_t *out,
                    text_utf8_stats_t *stats) {
        const unsigned char *s = (const unsigned char *)data;

        memset(stats, 0, sizeof(*stats));
        if (len == 0) {
                text_fail(ctx, "empty input (0 bytes)");
                return -1;
        }
        if (text_cancelled(ctx) || utf8_check_binary(ctx, s, len, stats))
                return -1;
        if (len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) {
                s += 3;
                len -= 3;
        }
        /* Each replaced subpart is at least one byte and becomes three. */
        if (text_buf_reserve(out, len + 2 * stats->replaced + 1))
                return text_fail_oom(ctx);
        utf8_write_clean(s, len, out);
        return text_cancelled(ctx) ? -1 : 0;
}

int text_utf8_repair(text_buf_t *b) {
        const unsigned char *s = (const unsigned char *)b->data;
        size_t i = 0, bad, n, replaced = 0;
        text_buf_t fixed = {0};
        uint32_t cp;

        while (i < b->len) {
                if ((n = utf8_valid_len(s + i, b->len - i, &cp, &bad))) {
                        i += n;
                } else {
                        replaced++;
                        i += bad;
                }
        }
        if (!replaced)
                return 0;
        if (text_buf_reserve(&fixed, b->len + 2 * replaced + 1))
                return -1;
        utf8_write_clean(s, b->len, &fixed);
        text_buf_free(b);
        *b = fixed;
        return 0;
}
