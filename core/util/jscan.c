/*
 * Strict JSON scanning (RFC 8259) into flat tokens, in one pass with an
 * explicit stack, plus the readers that decode tokens on demand. Any thread.
 */
#include "util/jscan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

typedef unsigned char uchar;

typedef struct scan {
        mmp_jscan_t *js;
        const uchar *buf, *end;
        unsigned flags;
} scan_t;

/* A byte a string may hold as it is: 0x20..0x7f but '"' and '\\'. The rest
 * (controls, escapes, the closing quote, non-ASCII) take the slow path. A
 * table: one load per byte on the short strings (keys) that most are. */
static const uchar plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

static inline int is_plain(uchar c) {
        return plain[c];
}

static inline int is_ws(uchar c) {
        return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static inline int is_digit(uchar c) {
        return c >= '0' && c <= '9';
}

static inline int is_alpha(uchar c) {
        return (c | 32) >= 'a' && (c | 32) <= 'z';
}

static inline const uchar *skip_ws(const uchar *p, const uchar *end) {
        /* Compact JSON has none: one test for the usual case (every
         * whitespace byte is below '!'). */
        while (p < end && *p <= ' ' && is_ws(*p))
                p++;
        return p;
}

/* Length of the valid UTF-8 sequence at p (2..4), 0 if invalid: no
 * overlong forms, no surrogates (U+D800..DFFF), nothing above U+10FFFF. */
static size_t utf8_len(const uchar *p, const uchar *end) {
        uchar c = p[0];
        size_t n;
        uchar lo = 0x80, hi = 0xbf; /* the range of the second byte */
        if (c >= 0xc2 && c <= 0xdf)
                n = 2;
        else if (c >= 0xe0 && c <= 0xef)
                n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        else if (c >= 0xf0 && c <= 0xf4)
                n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        else
                return 0;
        if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
                return 0;
        for (size_t i = 2; i < n; i++)
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
        return n;
}

static int hex4(const uchar *p) {
        int v = 0;
        for (int i = 0; i < 4; i++) {
                uchar c = p[i];
                int d = is_digit(c) ? c - '0' : (c | 32) >= 'a' && (c | 32) <= 'f' ? (c | 32) - 'a' + 10 : -1;
                if (d < 0)
                        return -1;
                v = v * 16 + d;
        }
        return v;
}

/* ---- errors ---- */

/* Bytes of the token at p, for "near '...'": a string to its closing
 * quote, a structural character alone, else a run up to a delimiter. */
static size_t token_extent(const uchar *p, const uchar *end) {
        const uchar *q = p + 1;
        if (strchr("{}[],:", *p) && *p)
                return 1;
        if (*p == '"') {
                while (q < end && *q != '"')
                        q += *q == '\\' && q + 1 < end ? 2 : 1;
                return (size_t)((q < end ? q + 1 : end) - p);
        }
        while (q < end && !is_ws(*q) && !strchr("{}[],:\"", *q))
                q++;
        return (size_t)(q - p);
}

/* Appends n bytes of input, printable: controls and invalid UTF-8 as \xNN. */
static void put_near(char *dst, size_t size, const uchar *p, size_t n) {
        size_t k = strlen(dst), cut = n > 24 ? 24 : n;
        for (size_t i = 0; i < cut && k + 8 < size;) {
                size_t u = p[i] >= 0x80 ? utf8_len(p + i, p + n) : 0;
                if (u && i + u <= cut) {
                        memcpy(dst + k, p + i, u);
                        k += u, i += u;
                } else if (p[i] < 0x20 || p[i] >= 0x7f) {
                        k += (size_t)snprintf(dst + k, size - k, "\\x%02x", p[i]);
                        i++;
                } else {
                        dst[k++] = (char)p[i++];
                }
        }
        snprintf(dst + k, size - k, "%s", cut < n ? "..." : "");
}

/* Fails at byte at (the end of input for a premature end), quoting
 * near[0..near_len) or "end of file" when near is NULL. Line and column as
 * jansson counts them: characters read on the line, the offending one
 * included (at the end of input: the last one read). */
__attribute__((format(printf, 5, 6))) static int fail(scan_t *s, const uchar *at, const uchar *near, size_t near_len,
                                                      const char *fmt, ...) {
        mmp_jscan_t *js = s->js;
        char what[96];
        va_list ap;
        int line = 1, column = 0;
        for (const uchar *p = s->buf; p < at; p++) {
                if (*p == '\n')
                        line++, column = 0;
                else if ((*p & 0xc0) != 0x80)
                        column++;
        }
        if (at < s->end)
                column++;
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        js->line = line;
        js->column = column;
        js->position = (size_t)(at - s->buf);
        snprintf(js->error, sizeof(js->error), "line %d column %d: %s near %s", line, column, what,
                 near ? "'" : "end of file");
        if (near) {
                put_near(js->error, sizeof(js->error) - 1, near, near_len);
                strcat(js->error, "'");
        }
        return -1;
}

/* Fails on the token at p (or at the end of input). */
static int fail_token(scan_t *s, const uchar *p, const char *what) {
        if (p == s->end)
                return fail(s, p, NULL, 0, "%s", what);
        return fail(s, p, p, token_extent(p, s->end), "%s", what);
}

/* ---- scanning ---- */

static int grow(scan_t *s, const uchar *at) {
        mmp_jscan_t *js = s->js;
        /* A valid rest of R bytes holds at most (R + 1) / 2 values (each
         * value but the last is followed by a separator or a closer), so
         * one spill of that many is enough for a valid document up to
         * 128 KiB; bigger ones (and invalid ones) grow by doubling. */
        size_t bound = js->ntok + (size_t)(s->end - at + 1) / 2 + 1;
        size_t cap = js->heap ? js->cap * 2 : bound < 65536 ? bound : 65536;
        mmp_jtok_t *tok;
        if (js->fixed)
                return fail(s, at, at, token_extent(at, s->end), "more than %zu values", js->cap);
        if (cap > bound && bound > js->ntok)
                cap = bound;
        if (cap <= js->ntok)
                cap = js->ntok * 2;
        if (!(tok = js->heap ? realloc(js->tok, cap * sizeof(*tok)) : malloc(cap * sizeof(*tok))))
                return fail(s, at, NULL, 0, "out of memory");
        if (!js->heap)
                memcpy(tok, js->tok, js->ntok * sizeof(*tok));
        js->tok = tok;
        js->cap = cap;
        js->heap = 1;
        return 0;
}

static inline mmp_jtok_t *push(scan_t *s, const uchar *at, int type) {
        mmp_jscan_t *js = s->js;
        mmp_jtok_t *t;
        if (js->ntok == js->cap && grow(s, at))
                return NULL;
        t = &js->tok[js->ntok++];
        t->type = (uint8_t)type;
        t->flags = 0;
        t->off = (uint32_t)(at - s->buf);
        t->len = 0;
        t->next = (uint32_t)js->ntok;
        t->count = 0;
        return t;
}

/* The escape at p ('\\'), inside the string opened at q. Returns the byte
 * after it, or NULL after failing. */
static const uchar *scan_escape(scan_t *s, const uchar *q, const uchar *p, mmp_jtok_t *t) {
        const uchar *end = s->end;
        int cp, lo;
        if (end - p < 2)
                return fail(s, end, q, (size_t)(end - q), "unterminated string"), NULL;
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
                return p + 2;
        case 'u':
                break;
        default:
                return fail(s, p, q, (size_t)(p + 2 - q), "invalid escape '\\%c'",
                            p[1] >= 0x20 && p[1] < 0x7f ? p[1] : '?'),
                       NULL;
        }
        if (end - p < 6 || (cp = hex4(p + 2)) < 0)
                return fail(s, p, q, (size_t)((end - p < 6 ? end : p + 6) - q), "invalid \\u escape"), NULL;
        if (cp == 0)
                t->flags |= MMP_JSCAN_HAS_NUL;
        if (cp >= 0xdc00 && cp <= 0xdfff)
                return fail(s, p, q, (size_t)(p + 6 - q), "invalid Unicode '\\u%04X' (a lone low surrogate)", cp), NULL;
        if (cp < 0xd800 || cp > 0xdbff)
                return p + 6;
        /* A high surrogate must pair with a low one. */
        if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || (lo = hex4(p + 8)) < 0xdc00 || lo > 0xdfff)
                return fail(s, p, q, (size_t)(p + 6 - q),
                            "invalid Unicode '\\u%04X' (a high surrogate without its low one)", cp),
                       NULL;
        return p + 12;
}

/* Whether any of 8 bytes is a quote, a backslash, a control or non-ASCII:
 * the plain stretch of a string goes a word at a time. */
static inline int word_needs_care(const uchar *p) {
        const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
        uint64_t x, q, b;
        memcpy(&x, p, 8);
        q = x ^ (ones * '"');
        b = x ^ (ones * '\\');
        return ((((q - ones) & ~q) | ((b - ones) & ~b) | ((x - ones * 0x20) & ~x) | x) & high) != 0;
}

/* The first byte from p on that is not plain, or end. With SSE2 (every
 * x86-64) 16 bytes are checked at once and the first needing care is found
 * by its bit: most strings here (keys, names, hashes) end in one or two
 * steps, with no byte loop. */
static inline const uchar *skip_plain(const uchar *p, const uchar *end) {
#ifdef __SSE2__
        const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
        while (end - p >= 16) {
                __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
                /* Signed: below 0x20 is a control, or (negative) non-ASCII. */
                __m128i care = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                            _mm_cmplt_epi8(v, space));
                unsigned bits = (unsigned)_mm_movemask_epi8(care);
                if (bits)
                        return p + __builtin_ctz(bits);
                p += 16;
        }
#endif
        while (end - p >= 8 && !word_needs_care(p))
                p += 8;
        while (p < end && is_plain(*p))
                p++;
        return p;
}

/* The rest of the string at p (a byte that is not plain) whose opening
 * quote is at q: escapes, UTF-8, or the failure. Returns the byte after
 * the closing quote, or NULL after failing. Out of line: most strings
 * never come here. */
static __attribute__((noinline)) const uchar *scan_string_rest(scan_t *s, const uchar *q, const uchar *p,
                                                               mmp_jtok_t *t) {
        const uchar *end = s->end;
        for (;;) {
                if (p == end)
                        return fail(s, end, q, (size_t)(end - q), "unterminated string"), NULL;
                if (*p == '"')
                        break;
                if (*p == '\\') {
                        t->flags |= MMP_JSCAN_ESCAPED;
                        if (!(p = scan_escape(s, q, p, t)))
                                return NULL;
                } else if (*p < 0x20) {
                        return fail(s, p, q, (size_t)(p - q), "control character 0x%02x in a string", *p), NULL;
                } else {
                        size_t n = utf8_len(p, end);
                        if (!n)
                                return fail(s, p, q, (size_t)(p + 1 - q), "invalid UTF-8 byte 0x%02x in a string", *p),
                                       NULL;
                        p += n;
                }
                p = skip_plain(p, end);
        }
        t->len = (uint32_t)(p - q - 1);
        return p + 1;
}

/* The string whose opening quote is at q, into t. Returns the byte after
 * the closing quote, or NULL after failing. */
static inline const uchar *scan_string(scan_t *s, const uchar *q, mmp_jtok_t *t) {
        const uchar *p = skip_plain(q + 1, s->end);
        t->off = (uint32_t)(q + 1 - s->buf);
        if (p < s->end && *p == '"') {
                t->len = (uint32_t)(p - q - 1);
                return p + 1;
        }
        return scan_string_rest(s, q, p, t);
}

/* The number at p, into t. Returns the byte after it, or NULL. */
static const uchar *scan_number(scan_t *s, const uchar *p, mmp_jtok_t *t) {
        const uchar *start = p, *end = s->end;
        int integer = 1;
        if (*p == '-')
                p++;
        if (p == end || !is_digit(*p))
                return fail_token(s, start, "invalid number"), NULL;
        if (*p == '0') {
                if (++p < end && is_digit(*p))
                        return fail_token(s, start, "invalid number (a leading zero)"), NULL;
        } else {
                while (p < end && is_digit(*p))
                        p++;
        }
        if (p < end && *p == '.') {
                integer = 0;
                if (++p == end || !is_digit(*p))
                        return fail_token(s, start, "invalid number (no digit after '.')"), NULL;
                while (p < end && is_digit(*p))
                        p++;
        }
        if (p < end && (*p | 32) == 'e') {
                integer = 0;
                if (++p < end && (*p == '+' || *p == '-'))
                        p++;
                if (p == end || !is_digit(*p))
                        return fail_token(s, start, "invalid number (no digit in the exponent)"), NULL;
                while (p < end && is_digit(*p))
                        p++;
        }
        /* "1x", "1.2.3", "0x1f", "1-2": one bad token, not a number and then junk. */
        if (p < end && (is_alpha(*p) || is_digit(*p) || *p == '.' || *p == '+' || *p == '-'))
                return fail_token(s, start, "invalid number"), NULL;
        t->flags = integer ? MMP_JSCAN_INTEGER : 0;
        t->len = (uint32_t)(p - start);
        return p;
}

static const uchar *scan_literal(scan_t *s, const uchar *p, mmp_jtok_t *t) {
        static const char *const words[] = {
            [MMP_JSCAN_TRUE] = "true", [MMP_JSCAN_FALSE] = "false", [MMP_JSCAN_NULL] = "null"};
        const char *w = words[t->type];
        size_t n = strlen(w);
        if ((size_t)(s->end - p) < n || memcmp(p, w, n) ||
            (p + n < s->end && (is_alpha(p[n]) || is_digit(p[n]) || p[n] == '_')))
                return fail_token(s, p, "invalid literal"), NULL;
        t->len = (uint32_t)n;
        return p + n;
}

/* The document: values and containers without recursion, the open ones
 * on a stack of token indices. */
static int scan_document(scan_t *s) {
        mmp_jscan_t *js = s->js;
        const uchar *p = s->buf, *end = s->end;
        uint32_t stack[MMP_JSCAN_MAX_DEPTH];
        int depth = 0, first_key = 0;
        mmp_jtok_t *t, *top;

value:
        p = skip_ws(p, end);
        if (depth == 0 && (s->flags & MMP_JSCAN_CONTAINER_ROOT) && (p == end || (*p != '{' && *p != '[')))
                return fail_token(s, p, "'[' or '{' expected");
        if (p == end)
                return fail_token(s, p, "value expected");
        switch (*p) {
        case '{':
        case '[':
                if (depth == MMP_JSCAN_MAX_DEPTH)
                        return fail(s, p, p, 1, "nesting deeper than %d levels", MMP_JSCAN_MAX_DEPTH);
                if (!(t = push(s, p, *p == '{' ? MMP_JSCAN_OBJECT : MMP_JSCAN_ARRAY)))
                        return -1;
                stack[depth++] = (uint32_t)(js->ntok - 1);
                p = skip_ws(p + 1, end);
                if (t->type == MMP_JSCAN_OBJECT) {
                        if (p < end && *p == '}')
                                goto close;
                        first_key = 1;
                        goto key;
                }
                if (p < end && *p == ']')
                        goto close;
                if (p == end)
                        return fail_token(s, p, "']' expected");
                goto value;
        case '"':
                if (!(t = push(s, p, MMP_JSCAN_STRING)) || !(p = scan_string(s, p, t)))
                        return -1;
                break;
        case '-':
        case '0':
        case '1':
        case '2':
        case '3':
        case '4':
        case '5':
        case '6':
        case '7':
        case '8':
        case '9':
                if (!(t = push(s, p, MMP_JSCAN_NUMBER)) || !(p = scan_number(s, p, t)))
                        return -1;
                break;
        case 't':
                if (!(t = push(s, p, MMP_JSCAN_TRUE)) || !(p = scan_literal(s, p, t)))
                        return -1;
                break;
        case 'f':
                if (!(t = push(s, p, MMP_JSCAN_FALSE)) || !(p = scan_literal(s, p, t)))
                        return -1;
                break;
        case 'n':
                if (!(t = push(s, p, MMP_JSCAN_NULL)) || !(p = scan_literal(s, p, t)))
                        return -1;
                break;
        default:
                /* Jansson refuses a byte order mark too: say what it is, it is invisible. */
                if (p == s->buf && end - p >= 3 && !memcmp(p, "\xef\xbb\xbf", 3))
                        return fail_token(s, p + 3 == end ? end : p + 3,
                                          "byte order mark (U+FEFF) before the document");
                return fail_token(s, p, *p ? "value expected" : "NUL byte where a value was expected");
        }

after: /* a value ended at p */
        if (depth == 0) {
                p = skip_ws(p, end);
                return p == end ? 0 : fail_token(s, p, *p ? "end of file expected" : "NUL byte after the document");
        }
        top = &js->tok[stack[depth - 1]];
        top->count++;
        p = skip_ws(p, end);
        if (p < end && *p == ',') {
                p++;
                if (top->type == MMP_JSCAN_ARRAY)
                        goto value;
                first_key = 0;
                p = skip_ws(p, end);
                goto key;
        }
        if (p < end && *p == (top->type == MMP_JSCAN_OBJECT ? '}' : ']'))
                goto close;
        if (p == end)
                return fail_token(s, p, top->type == MMP_JSCAN_OBJECT ? "'}' expected" : "']' expected");
        return fail_token(s, p, top->type == MMP_JSCAN_OBJECT ? "',' or '}' expected" : "',' or ']' expected");

key: /* p is past whitespace */
        if (p == end || *p != '"')
                return fail_token(s, p, first_key ? "string or '}' expected" : "string expected");
        if (!(t = push(s, p, MMP_JSCAN_STRING)) || !(p = scan_string(s, p, t)))
                return -1;
        p = skip_ws(p, end);
        if (p == end || *p != ':')
                return fail_token(s, p, "':' expected");
        p++;
        goto value;

close: /* p is at the closer of the innermost container */
        top = &js->tok[stack[--depth]];
        top->len = (uint32_t)(p + 1 - s->buf - top->off);
        top->next = (uint32_t)js->ntok;
        p++;
        goto after;
}

static int parse(mmp_jscan_t *js, const char *buf, size_t len, unsigned flags, mmp_jtok_t *tok, size_t cap, int fixed) {
        scan_t s = {js, (const uchar *)buf, (const uchar *)buf + len, flags};
        js->buf = buf;
        js->len = len;
        js->tok = tok;
        js->ntok = 0;
        js->cap = cap;
        js->heap = 0;
        js->fixed = fixed;
        js->line = js->column = 0;
        js->position = 0;
        js->error[0] = '\0';
        /* Offsets are 32-bit: a 4 GiB notification is not one. */
        if (len >= UINT32_MAX) {
                snprintf(js->error, sizeof(js->error), "line 1 column 0: document too large (%zu bytes)", len);
                return -1;
        }
        return scan_document(&s);
}

int mmp_jscan_parse(mmp_jscan_t *js, const char *buf, size_t len, unsigned flags) {
        return parse(js, buf, len, flags, js->inline_tok, MMP_JSCAN_INLINE, 0);
}

int mmp_jscan_parse_into(mmp_jscan_t *js, const char *buf, size_t len, unsigned flags, mmp_jtok_t *tok, size_t cap) {
        return parse(js, buf, len, flags, tok, cap, 1);
}

void mmp_jscan_free(mmp_jscan_t *js) {
        if (js && js->heap) {
                free(js->tok);
                js->tok = js->inline_tok;
                js->heap = 0;
                js->ntok = 0;
        }
}

/* ---- reading ---- */

/* The escape at p (validated by the scan) as UTF-8 in out; returns its length. */
static size_t unescape_one(const uchar **pp, char *out) {
        const uchar *p = *pp;
        unsigned cp;
        *pp = p + 2;
        switch (p[1]) {
        case 'b':
                *out = '\b';
                return 1;
        case 'f':
                *out = '\f';
                return 1;
        case 'n':
                *out = '\n';
                return 1;
        case 'r':
                *out = '\r';
                return 1;
        case 't':
                *out = '\t';
                return 1;
        case 'u':
                break;
        default:
                *out = (char)p[1];
                return 1; /* '"', '\\', '/' */
        }
        cp = (unsigned)hex4(p + 2);
        *pp = p + 6;
        if (cp >= 0xd800 && cp <= 0xdbff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + ((unsigned)hex4(p + 8) - 0xdc00);
                *pp = p + 12;
        }
        if (cp < 0x80) {
                out[0] = (char)cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (char)(0xc0 | cp >> 6);
                out[1] = (char)(0x80 | (cp & 0x3f));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (char)(0xe0 | cp >> 12);
                out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
                out[2] = (char)(0x80 | (cp & 0x3f));
                return 3;
        }
        out[0] = (char)(0xf0 | cp >> 18);
        out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
        out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[3] = (char)(0x80 | (cp & 0x3f));
        return 4;
}

size_t mmp_jscan_unescape(const mmp_jscan_t *js, const mmp_jtok_t *t, char *dst) {
        const uchar *p = (const uchar *)js->buf + t->off, *end = p + t->len;
        char *d = dst;
        if (!(t->flags & MMP_JSCAN_ESCAPED)) {
                memcpy(dst, p, t->len);
                dst[t->len] = '\0';
                return t->len;
        }
        while (p < end) {
                const uchar *q = memchr(p, '\\', (size_t)(end - p));
                size_t n = (size_t)((q ? q : end) - p);
                memcpy(d, p, n);
                d += n;
                p += n;
                if (q)
                        d += unescape_one(&p, d);
        }
        *d = '\0';
        return (size_t)(d - dst);
}

int mmp_jscan_streq(const mmp_jscan_t *js, const mmp_jtok_t *t, const char *s, size_t n) {
        const uchar *p = (const uchar *)js->buf + t->off, *end = p + t->len;
        if (t->type != MMP_JSCAN_STRING)
                return 0;
        if (!(t->flags & MMP_JSCAN_ESCAPED))
                return t->len == n && !memcmp(p, s, n);
        /* Unescaping never lengthens a string. */
        if (n > t->len)
                return 0;
        while (p < end) {
                char u[4];
                size_t k;
                if (*p != '\\') {
                        if (!n || (uchar)*s != *p)
                                return 0;
                        p++, s++, n--;
                        continue;
                }
                k = unescape_one(&p, u);
                if (k > n || memcmp(u, s, k))
                        return 0;
                s += k, n -= k;
        }
        return n == 0;
}

/* Whether member name k is key[0..keylen). For a name without escapes (all
 * but a few) the length and the first byte decide most misses before any
 * call. */
static inline int key_is(const mmp_jscan_t *js, const mmp_jtok_t *k, const char *key, size_t keylen) {
        const char *name = js->buf + k->off;
        if (k->flags & MMP_JSCAN_ESCAPED)
                return mmp_jscan_streq(js, k, key, keylen);
        return k->len == keylen && (!keylen || (name[0] == key[0] && !memcmp(name + 1, key + 1, keylen - 1)));
}

const mmp_jtok_t *mmp_jscan_get(const mmp_jscan_t *js, const mmp_jtok_t *obj, const char *key, size_t keylen) {
        const mmp_jtok_t *k, *found = NULL;
        size_t i;
        if (!obj || obj->type != MMP_JSCAN_OBJECT)
                return NULL;
        MMP_JSCAN_EACH(js, obj, k, i) {
                if (key_is(js, k, key, keylen))
                        found = k + 1;
        }
        return found;
}

const mmp_jtok_t *mmp_jscan_gets(const mmp_jscan_t *js, const mmp_jtok_t *obj, const char *key) {
        return mmp_jscan_get(js, obj, key, strlen(key));
}

void mmp_jscan_getv(const mmp_jscan_t *js, const mmp_jtok_t *obj, const mmp_jkey_t *keys, size_t n,
                    const mmp_jtok_t **out) {
        const mmp_jtok_t *k;
        size_t i, j;
        for (j = 0; j < n; j++)
                out[j] = NULL;
        if (!obj || obj->type != MMP_JSCAN_OBJECT)
                return;
        MMP_JSCAN_EACH(js, obj, k, i) {
                for (j = 0; j < n; j++)
                        if (key_is(js, k, keys[j].s, keys[j].n))
                                out[j] = k + 1;
        }
}

char *mmp_jscan_strdup(const mmp_jscan_t *js, const mmp_jtok_t *t, size_t *lenp, const char **why) {
        char *s;
        size_t n;
        if (!t || t->type != MMP_JSCAN_STRING) {
                *why = "not a string";
                return NULL;
        }
        if (t->flags & MMP_JSCAN_HAS_NUL) {
                *why = "holds \\u0000 (a NUL byte, not allowed here)";
                return NULL;
        }
        if (!(s = malloc((size_t)t->len + 1))) {
                *why = "out of memory";
                return NULL;
        }
        n = mmp_jscan_unescape(js, t, s);
        if (lenp)
                *lenp = n;
        return s;
}

int mmp_jscan_int64(const mmp_jscan_t *js, const mmp_jtok_t *t, int64_t *out) {
        const char *p = js->buf + t->off, *end = p + t->len;
        int64_t v = 0;
        int neg;
        if (t->type != MMP_JSCAN_NUMBER || !(t->flags & MMP_JSCAN_INTEGER))
                return -1;
        neg = *p == '-';
        /* Accumulated negative: INT64_MIN has no positive twin. */
        for (p += neg; p < end; p++) {
                int d = *p - '0';
                if (v < (INT64_MIN + d) / 10)
                        return -1;
                v = v * 10 - d;
        }
        if (!neg && v == INT64_MIN)
                return -1;
        *out = neg ? v : -v;
        return 0;
}

const char *mmp_jscan_raw(const mmp_jscan_t *js, const mmp_jtok_t *t, size_t *n) {
        int quoted = t->type == MMP_JSCAN_STRING;
        *n = (size_t)t->len + (quoted ? 2 : 0);
        return js->buf + t->off - quoted;
}

void mmp_jscan_excerpt(const mmp_jscan_t *js, const mmp_jtok_t *t, char out[MMP_JSCAN_EXCERPT_SIZE]) {
        size_t n, k = 0;
        const char *p = mmp_jscan_raw(js, t, &n), *end = p + n;
        char buf[44];
        int in_string = 0;
        /* Compact: whitespace between tokens dropped, as jansson dumps it. */
        for (; p < end && k < sizeof(buf) - 1; p++) {
                if (in_string) {
                        if (*p == '\\' && p + 1 < end && k < sizeof(buf) - 2)
                                buf[k++] = *p++;
                        else if (*p == '"')
                                in_string = 0;
                } else if (is_ws((uchar)*p)) {
                        continue;
                } else if (*p == '"') {
                        in_string = 1;
                }
                buf[k++] = *p;
        }
        if (k <= 40) {
                memcpy(out, buf, k);
                out[k] = '\0';
                return;
        }
        k = 37;
        while (k > 0 && ((uchar)buf[k] & 0xc0) == 0x80)
                k--;
        memcpy(out, buf, k);
        memcpy(out + k, "...", 4);
}
