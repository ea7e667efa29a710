/*
 * A strict, non-allocating JSON scanner (RFC 8259): one pass over a buffer
 * into a flat array of tokens that point back into it. Any thread; a
 * scanner and its tokens belong to one thread at a time.
 */
#ifndef MMP_JSCAN_H
#define MMP_JSCAN_H

#include <stddef.h>
#include <stdint.h>

typedef enum mmp_jscan_type {
        MMP_JSCAN_OBJECT = 1,
        MMP_JSCAN_ARRAY,
        MMP_JSCAN_STRING,
        MMP_JSCAN_NUMBER,
        MMP_JSCAN_TRUE,
        MMP_JSCAN_FALSE,
        MMP_JSCAN_NULL,
} mmp_jscan_type_t;

/* Token flags. */
#define MMP_JSCAN_ESCAPED 0x01 /* string: holds backslash escapes (unescape before use) */
#define MMP_JSCAN_HAS_NUL 0x02 /* string: holds \u0000 (not usable as a C string) */
#define MMP_JSCAN_INTEGER 0x04 /* number: no fraction, no exponent */

/* One value. An object's members follow it as key, value, key, value...;
 * an array's elements follow it in order; a value's own subtree ends just
 * before tok[next], so the sibling after a value is tok[value->next]. */
typedef struct mmp_jtok {
        uint8_t type;   /* mmp_jscan_type_t */
        uint8_t flags;  /* MMP_JSCAN_ESCAPED, ... */
        uint32_t off;   /* byte offset in the buffer: inside the quotes for strings */
        uint32_t len;   /* bytes: inside the quotes for strings, '{' to '}' for objects */
        uint32_t next;  /* index of the token just past this value */
        uint32_t count; /* members (objects) or elements (arrays); 0 otherwise */
} mmp_jtok_t;

/* Scanner flags. */
#define MMP_JSCAN_CONTAINER_ROOT 0x01 /* the document must be an object or an array */

#define MMP_JSCAN_MAX_DEPTH 64
#define MMP_JSCAN_INLINE 128 /* tokens held in the scanner before spilling to the heap */

typedef struct mmp_jscan {
        const char *buf; /* borrowed: must outlive the tokens */
        size_t len;
        mmp_jtok_t *tok; /* tok[0] is the document's value */
        size_t ntok;

        /* After a failure: where (1-based line, column counted in characters
         * like jansson, byte position) and what. */
        int line, column;
        size_t position;
        char error[160]; /* "line 1 column 17: ':' expected near '}'" */

        /* Private. */
        size_t cap;
        int heap;  /* tok was malloc'd (free with mmp_jscan_free) */
        int fixed; /* tok is the caller's: never grown */
        mmp_jtok_t inline_tok[MMP_JSCAN_INLINE];
} mmp_jscan_t;

/* Scans buf[0..len) (not NUL-terminated; never read past len). Returns 0
 * with js->tok[0..ntok) filled, or -1 with js->error set. Tokens live in
 * the scanner (MMP_JSCAN_INLINE of them), past that in one heap array sized
 * for the rest of the buffer (grown by doubling only past 128 KiB); call
 * mmp_jscan_free() after either outcome. js need not be initialised. */
int mmp_jscan_parse(mmp_jscan_t *js, const char *buf, size_t len, unsigned flags);
/* The same into the caller's array of cap tokens, never allocating: a
 * document with more values fails ("more than N values"). */
int mmp_jscan_parse_into(mmp_jscan_t *js, const char *buf, size_t len, unsigned flags, mmp_jtok_t *tok, size_t cap);
/* Frees the heap spill, if any. NULL is fine. */
void mmp_jscan_free(mmp_jscan_t *js);

/* ---- reading tokens (all borrowed from js; none allocate but strdup) ---- */

/* The value of member key[0..keylen) of object obj, compared byte for byte
 * with the key unescaped; the last one when a key repeats (as jansson).
 * NULL when absent or obj is not an object. */
const mmp_jtok_t *mmp_jscan_get(const mmp_jscan_t *js, const mmp_jtok_t *obj, const char *key, size_t keylen);
/* The same with a NUL-terminated key. */
const mmp_jtok_t *mmp_jscan_gets(const mmp_jscan_t *js, const mmp_jtok_t *obj, const char *key);
/* A member name with its length: MMP_JKEY("eventName"). */
typedef struct mmp_jkey {
        const char *s;
        size_t n;
} mmp_jkey_t;
#define MMP_JKEY(literal) {literal, sizeof(literal) - 1}
/* Members keys[0..n) of obj in one pass over it: out[i] as
 * mmp_jscan_get(js, obj, keys[i].s, keys[i].n) would return it. */
void mmp_jscan_getv(const mmp_jscan_t *js, const mmp_jtok_t *obj, const mmp_jkey_t *keys, size_t n,
                    const mmp_jtok_t **out);

/* Elements of an array (or members' keys of an object: the value is the
 * key + 1) in order:
 *   const mmp_jtok_t *el; size_t i;
 *   MMP_JSCAN_EACH(js, arr, el, i) { ... }
 */
#define MMP_JSCAN_EACH(js, arr, el, i)                                                                                 \
        for ((i) = 0, (el) = (arr) + 1; (i) < (arr)->count;                                                            \
             (i)++, (el) = (js)->tok + ((arr)->type == MMP_JSCAN_OBJECT ? (el)[1].next : (el)->next))

/* 1 when string token t unescaped is exactly s[0..n). */
int mmp_jscan_streq(const mmp_jscan_t *js, const mmp_jtok_t *t, const char *s, size_t n);

/* Unescapes string token t into dst (room for t->len + 1 bytes is always
 * enough), NUL-terminates it and returns its length (which may include
 * NULs from \u0000). */
size_t mmp_jscan_unescape(const mmp_jscan_t *js, const mmp_jtok_t *t, char *dst);

/* String token t as a new NUL-terminated string (free()), its length in
 * *lenp if non-NULL. NULL with a reason in *why (static text) when t is not
 * a string, holds \u0000 (a C string would end there), or out of memory. */
char *mmp_jscan_strdup(const mmp_jscan_t *js, const mmp_jtok_t *t, size_t *lenp, const char **why);

/* Integer token t (no fraction, no exponent) as int64 in *out. Returns 0,
 * or -1 when t is not an integer or is out of range. */
int mmp_jscan_int64(const mmp_jscan_t *js, const mmp_jtok_t *t, int64_t *out);

/* The raw JSON text of t (strings with their quotes), n bytes. */
const char *mmp_jscan_raw(const mmp_jscan_t *js, const mmp_jtok_t *t, size_t *n);

/* A value as compact JSON for an error message ("got ..."): its raw text
 * without whitespace between tokens, at most 40 bytes, cut on a UTF-8
 * boundary with "..." appended. The same form as mmp_json_excerpt(). */
#define MMP_JSCAN_EXCERPT_SIZE 48
void mmp_jscan_excerpt(const mmp_jscan_t *js, const mmp_jtok_t *t, char out[MMP_JSCAN_EXCERPT_SIZE]);

#endif
