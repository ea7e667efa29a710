/*
 * Compact JSON serialisation into one growing buffer. Any thread.
 */
#include "jsonw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct buf {
        char *p;
        size_t len, cap;
        int failed;
} buf_t;

static int reserve(buf_t *b, size_t more) {
        if (b->len + more + 1 <= b->cap)
                return 0;
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + more + 1)
                cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
                b->failed = 1;
                return -1;
        }
        b->p = p;
        b->cap = cap;
        return 0;
}

static void put(buf_t *b, const char *s, size_t n) {
        if (reserve(b, n))
                return;
        memcpy(b->p + b->len, s, n);
        b->len += n;
}

static void put_string(buf_t *b, const char *s, size_t n) {
        static const char hex[] = "0123456789abcdef";
        size_t start = 0;
        if (reserve(b, n + 2))
                return;
        b->p[b->len++] = '"';
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c >= 0x20 && c != '"' && c != '\\')
                        continue; /* jansson strings are valid UTF-8: copy as is */
                put(b, s + start, i - start);
                start = i + 1;
                switch (c) {
                case '"': put(b, "\\\"", 2); break;
                case '\\': put(b, "\\\\", 2); break;
                case '\n': put(b, "\\n", 2); break;
                case '\r': put(b, "\\r", 2); break;
                case '\t': put(b, "\\t", 2); break;
                case '\b': put(b, "\\b", 2); break;
                case '\f': put(b, "\\f", 2); break;
                default: {
                        char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                        put(b, u, 6);
                }
                }
        }
        put(b, s + start, n - start);
        put(b, "\"", 1);
}

static void put_real(buf_t *b, double d) {
        char tmp[40];
        int n;
        if (isnan(d) || isinf(d)) {
                b->failed = 1;
                return;
        }
        /* Shortest of 15 or 17 significant digits that reads back exactly. */
        n = snprintf(tmp, sizeof(tmp), "%.15g", d);
        if (strtod(tmp, NULL) != d)
                n = snprintf(tmp, sizeof(tmp), "%.17g", d);
        put(b, tmp, (size_t)n);
        if (!strpbrk(tmp, ".eEn")) /* keep it a real: 1.0, not 1 */
                put(b, ".0", 2);
}

static void put_int(buf_t *b, json_int_t v) {
        char tmp[24], *p = tmp + sizeof(tmp);
        unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
        do {
                *--p = (char)('0' + u % 10);
                u /= 10;
        } while (u);
        if (v < 0)
                *--p = '-';
        put(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

static void put_value(buf_t *b, const json_t *j) {
        const char *k;
        json_t *v;
        size_t i;
        int first = 1;
        switch (json_typeof(j)) {
        case JSON_NULL: put(b, "null", 4); return;
        case JSON_TRUE: put(b, "true", 4); return;
        case JSON_FALSE: put(b, "false", 5); return;
        case JSON_INTEGER: put_int(b, json_integer_value(j)); return;
        case JSON_REAL: put_real(b, json_real_value(j)); return;
        case JSON_STRING: put_string(b, json_string_value(j), json_string_length(j)); return;
        case JSON_ARRAY:
                put(b, "[", 1);
                json_array_foreach(j, i, v) {
                        if (i)
                                put(b, ",", 1);
                        put_value(b, v);
                }
                put(b, "]", 1);
                return;
        case JSON_OBJECT:
                put(b, "{", 1);
                json_object_foreach((json_t *)j, k, v) {
                        if (!first)
                                put(b, ",", 1);
                        first = 0;
                        put_string(b, k, strlen(k));
                        put(b, ":", 1);
                        put_value(b, v);
                }
                put(b, "}", 1);
                return;
        }
}

void mmp_json_excerpt(const json_t *v, char out[MMP_JSON_EXCERPT_SIZE]) {
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        size_t n = s ? strlen(s) : 0;
        if (!s) {
                snprintf(out, MMP_JSON_EXCERPT_SIZE, "(unprintable)");
        } else if (n <= 40) {
                memcpy(out, s, n + 1);
        } else {
                n = 37;
                while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
                        n--;
                memcpy(out, s, n);
                memcpy(out + n, "...", 4);
        }
        free(s);
}

char *mmp_json_dumps(const json_t *j, size_t *lenp) {
        buf_t b = {0};
        put_value(&b, j);
        if (b.failed || reserve(&b, 0)) {
                free(b.p);
                return NULL;
        }
        b.p[b.len] = '\0';
        if (lenp)
                *lenp = b.len;
        return b.p;
}
