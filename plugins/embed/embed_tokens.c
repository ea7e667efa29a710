/*
 * The embed plugin's tokeniser: strict UTF-8 decoding, simple lower-casing
 * and the split into words. Runs inside one operation call on a worker
 * thread; no state outside its arguments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"

/* Decodes one code point at s[0..n). Returns its length in bytes, or 0 when
 * the bytes are not well-formed UTF-8 (overlong forms, surrogates and code
 * points past U+10FFFF are refused, as RFC 3629 says). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
        uint32_t c = s[0], min;
        size_t len;
        if (c < 0x80) {
                *cp = c;
                return 1;
        }
        if (c >= 0xC2 && c <= 0xDF)
                len = 2, c &= 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF)
                len = 3, c &= 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4)
                len = 4, c &= 0x07, min = 0x10000;
        else
                return 0;
        if (len > n)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xC0) != 0x80)
                        return 0;
                c = (c << 6) | (s[i] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
                return 0;
        *cp = c;
        return len;
}

static size_t utf8_encode(uint32_t c, char *out) {
        if (c < 0x80) {
                out[0] = (char)c;
                return 1;
        }
        if (c < 0x800) {
                out[0] = (char)(0xC0 | (c >> 6));
                out[1] = (char)(0x80 | (c & 0x3F));
                return 2;
        }
        if (c < 0x10000) {
                out[0] = (char)(0xE0 | (c >> 12));
                out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
                out[2] = (char)(0x80 | (c & 0x3F));
                return 3;
        }
        out[0] = (char)(0xF0 | (c >> 18));
        out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[3] = (char)(0x80 | (c & 0x3F));
        return 4;
}

/* Simple lower-casing of the alphabets most text in the wild uses: Latin
 * (Basic, Latin-1, Extended-A, Vietnamese), Greek, Cyrillic, Armenian and
 * fullwidth Latin. A lower-cased code point never needs more bytes than
 * the original, which embed_tokenize relies on. */
static uint32_t lower(uint32_t c) {
        if (c < 0x80)
                return (c >= 'A' && c <= 'Z') ? c + 32 : c;
        if ((c >= 0xC0 && c <= 0xDE && c != 0xD7) || (c >= 0x391 && c <= 0x3AB && c != 0x3A2) ||
            (c >= 0x410 && c <= 0x42F) || (c >= 0xFF21 && c <= 0xFF3A))
                return c + 0x20;
        if (c == 0x130) /* dotted capital I */
                return 'i';
        if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177) || (c >= 0x1E00 && c <= 0x1E95) ||
            (c >= 0x1EA0 && c <= 0x1EFF))
                return c | 1; /* pairs: even upper, odd lower */
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E))
                return (c & 1) ? c + 1 : c; /* pairs: odd upper, even lower */
        if (c == 0x178)
                return 0xFF;
        if (c == 0x3C2) /* final sigma folds to sigma */
                return 0x3C3;
        if (c >= 0x400 && c <= 0x40F)
                return c + 0x50;
        if (c >= 0x531 && c <= 0x556)
                return c + 0x30;
        return c;
}

typedef enum cclass { C_SEP = 0, C_WORD, C_IDEO, C_APOS } cclass_t;

/* What a code point is to the tokeniser: part of a word, a separator, an
 * ideograph (a word by itself, as scripts without spaces need) or an
 * apostrophe (dropped inside a word: "don't" is "dont"). */
static cclass_t classify(uint32_t c) {
        if (c < 0x80) {
                if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
                        return C_WORD;
                return c == '\'' ? C_APOS : C_SEP;
        }
        if (c == 0x2019 || c == 0x02BC)
                return C_APOS;
        /* Latin-1 punctuation and symbols, except the letters ª µ º and the
         * superscript digits. */
        if (c <= 0xBF)
                return (c == 0xAA || c == 0xB5 || c == 0xBA || c == 0xB2 || c == 0xB3 || c == 0xB9) ? C_WORD
                                                                                                   : C_SEP;
        if (c == 0xD7 || c == 0xF7)
                return C_SEP;
        if ((c >= 0x2000 && c <= 0x206F) ||   /* general punctuation, spaces */
            (c >= 0x20A0 && c <= 0x20CF) ||   /* currency */
            (c >= 0x2190 && c <= 0x2BFF) ||   /* arrows, math, boxes, shapes, dingbats */
            (c >= 0x2E00 && c <= 0x2E7F) ||   /* supplemental punctuation */
            (c >= 0x3000 && c <= 0x303F) ||   /* CJK punctuation */
            (c >= 0xFE30 && c <= 0xFE4F) ||   /* CJK compatibility forms */
            (c >= 0xFF00 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20) || (c >= 0xFF3B && c <= 0xFF40) ||
            (c >= 0xFF5B && c <= 0xFF65) ||   /* fullwidth punctuation */
            (c >= 0xFFF0 && c <= 0xFFFF) ||   /* specials */
            (c >= 0x1F000 && c <= 0x1FAFF))   /* emoji and pictographs */
                return C_SEP;
        if ((c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xF900 && c <= 0xFAFF) ||
            (c >= 0x20000 && c <= 0x2FA1F))
                return C_IDEO;
        return C_WORD;
}

static int words_push(embed_words_t *w, size_t start, size_t end) {
        if (w->n == w->cap) {
                size_t cap = w->cap ? w->cap * 2 : 64;
                size_t *s = realloc(w->start, cap * sizeof(*s));
                if (!s)
                        return -1;
                w->start = s;
                if (!(s = realloc(w->end, cap * sizeof(*s))))
                        return -1;
                w->end = s;
                w->cap = cap;
        }
        w->start[w->n] = start;
        w->end[w->n] = end;
        w->n++;
        return 0;
}

int embed_tokenize(const char *s, size_t len, embed_words_t *w, char *err, size_t errsz, int *oom) {
        const unsigned char *p = (const unsigned char *)s;
        size_t i = 0, o = 0, word = SIZE_MAX; /* word: start offset in text of the open word */

        memset(w, 0, sizeof(*w));
        *oom = 0;
        /* Every code point is written at most once with at most its own
         * length, plus one space per word (at most one per code point). */
        if (len > (SIZE_MAX - 1) / 2 || !(w->text = malloc(2 * len + 1)))
                goto nomem;
        while (i < len) {
                uint32_t c;
                size_t l = utf8_decode(p + i, len - i, &c);
                cclass_t k;
                if (!l) {
                        snprintf(err, errsz, "input is not valid UTF-8 (byte 0x%02X at offset %zu)", p[i], i);
                        embed_words_free(w);
                        return -1;
                }
                i += l;
                k = classify(c);
                if (k == C_APOS && word != SIZE_MAX)
                        continue; /* inside a word: dropped */
                if (k == C_WORD) {
                        if (word == SIZE_MAX)
                                word = o;
                        o += utf8_encode(lower(c), w->text + o);
                        continue;
                }
                /* A separator or an ideograph closes the open word (an apostrophe
                 * outside a word is a separator). */
                if (word != SIZE_MAX) {
                        if (words_push(w, word, o))
                                goto nomem;
                        w->text[o++] = ' ';
                        word = SIZE_MAX;
                }
                if (k == C_IDEO) {
                        size_t start = o;
                        o += utf8_encode(c, w->text + o);
                        if (words_push(w, start, o))
                                goto nomem;
                        w->text[o++] = ' ';
                }
        }
        if (word != SIZE_MAX) {
                if (words_push(w, word, o))
                        goto nomem;
                w->text[o++] = ' ';
        }
        w->text[o] = '\0';
        return 0;
nomem:
        embed_words_free(w);
        *oom = 1;
        snprintf(err, errsz, "out of memory");
        return -1;
}

void embed_words_free(embed_words_t *w) {
        free(w->text);
        free(w->start);
        free(w->end);
        memset(w, 0, sizeof(*w));
}
