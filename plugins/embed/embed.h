/*
 * Internal interfaces of the embed plugin (the local text embedding model
 * "hashed-ngrams-v1"): the feature hash, the tokeniser and the vectoriser.
 * Everything here runs on a worker-pool thread inside one operation call;
 * nothing is shared between calls, so the operation is reentrant.
 *
 * The model is fixed by this file and embed_tokens.c / embed_vector.c:
 * any change that moves a single output bit (hash, tokeniser, weights)
 * is a new model and must change EMBED_MODEL_NAME (docs/models.md).
 */
#ifndef MMP_EMBED_H
#define MMP_EMBED_H

#include <stddef.h>
#include <stdint.h>

#include "mmpipe/plugin.h"

#define EMBED_MODEL_NAME "hashed-ngrams-v1"
#define EMBED_DEFAULT_DIM 256
#define EMBED_MIN_DIM 8
#define EMBED_MAX_DIM 4096

/* Character n-grams: lengths, counted in code points of the padded word
 * "<word>", and the word prefix they are taken from (longer "words" are
 * URLs, hashes, base64: this bounds the work per word). */
#define EMBED_CHARGRAM_MIN 3
#define EMBED_CHARGRAM_MAX 5
#define EMBED_CHARGRAM_WORD_CAP 64

/* Share of the squared norm each feature family gets in the final vector
 * (they sum to 1): the cosine of two texts is, up to hash collisions,
 * 0.45 cos(words) + 0.15 cos(bigrams) + 0.40 cos(character n-grams).
 * Measured on the pairs of docs/models.md; a word still weighs far more
 * than any one of its character n-grams, which share their 0.40 among
 * about three per character. */
#define EMBED_SHARE_WORDS 0.45
#define EMBED_SHARE_BIGRAMS 0.15
#define EMBED_SHARE_CHARGRAMS 0.40
/* The weight of an English function word (embed_stopwords.c) and of a
 * bigram of two; ordinary features weigh sqrt(count). */
#define EMBED_STOP_WEIGHT 0.1

/* Feature families; the tag is hashed before the feature's bytes, so the
 * same bytes in two families are two features. */
typedef enum embed_kind {
        EMBED_KIND_WORD = 0,
        EMBED_KIND_BIGRAM,
        EMBED_KIND_CHARGRAM,
        EMBED_KINDS,
} embed_kind_t;

static const unsigned char embed_kind_tag[EMBED_KINDS] = {'w', 'b', 'c'};

/* ---- the feature hash: FNV-1a 64 then MurmurHash3's fmix64 ----
 * FNV-1a alone mixes the last bytes of short keys weakly into the high bits;
 * fmix64 (a bijection) spreads every input bit over the whole word. */

#define EMBED_FNV_OFFSET 0xcbf29ce484222325ULL
#define EMBED_FNV_PRIME 0x100000001b3ULL

static inline uint64_t embed_fnv1a(uint64_t h, const void *data, size_t len) {
        const unsigned char *p = data;
        for (size_t i = 0; i < len; i++) {
                h ^= p[i];
                h *= EMBED_FNV_PRIME;
        }
        return h;
}

static inline uint64_t embed_fmix64(uint64_t k) {
        k ^= k >> 33;
        k *= 0xff51afd7ed558ccdULL;
        k ^= k >> 33;
        k *= 0xc4ceb9fe1a85ec53ULL;
        k ^= k >> 33;
        return k;
}

/* The hash of one feature: its family tag, then its UTF-8 bytes. */
static inline uint64_t embed_feature_hash(embed_kind_t kind, const void *data, size_t len) {
        uint64_t h = embed_fnv1a(EMBED_FNV_OFFSET, &embed_kind_tag[kind], 1);
        return embed_fmix64(embed_fnv1a(h, data, len));
}

/* Bucket and sign of a feature hash in a vector of `dim` entries. */
static inline uint32_t embed_bucket(uint64_t h, uint32_t dim) {
        return (uint32_t)(h >> 32) % dim;
}
static inline int embed_sign(uint64_t h) {
        return (h & 1) ? -1 : 1;
}

/* ---- tokens ---- */

/* The words of a text, lower-cased, each followed by one space in `text`
 * (so words i and i+1 with the space between them are bytes
 * start[i] .. end[i+1], the bigram). Memory from malloc. */
typedef struct embed_words {
        char *text;
        size_t *start, *end; /* byte offsets into text, n entries */
        size_t n, cap;
} embed_words_t;

/* Splits UTF-8 `s` into words (docs/models.md, "Tokens"). Returns 0, or -1
 * with a one-line reason in err: invalid UTF-8 (naming the byte offset) or
 * out of memory (*oom set). */
int embed_tokenize(const char *s, size_t len, embed_words_t *w, char *err, size_t errsz, int *oom);
void embed_words_free(embed_words_t *w);

/* Whether the word (lower-cased UTF-8, not NUL-terminated) is an English
 * function word ("the", "of", "is", ...): such words weigh
 * EMBED_STOP_WEIGHT, and so does a bigram of two of them; they yield no
 * character n-grams. */
int embed_is_stopword(const char *word, size_t len);

/* ---- extractive description (embed_describe.c) ---- */

typedef struct kw kw_t;
/* Length of the lead sentence of s (at most max bytes); *startp: where it begins. */
size_t embed_lead_sentence(const char *s, size_t len, size_t max, size_t *startp);
/* The distinct content words of w, most frequent first (ties: first seen
 * first), into *out (free()). Returns how many. Each: start, len into w->text. */
size_t embed_keywords(const embed_words_t *w, kw_t **out);
struct kw {
        size_t start, len;
        size_t count, first;
};

/* ---- the vector ---- */

/* Computes the L2-normalised embedding of `w` into out[dim]. Returns 0,
 * -1 when out of memory, -2 when cancel(cancel_arg) turned true. */
int embed_vectorize(const embed_words_t *w, uint32_t dim, double *out, int (*cancel)(void *),
                    void *cancel_arg);

#endif
