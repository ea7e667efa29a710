/*
 * The embed plugin's vectoriser: counts the features of a tokenised text
 * (words, word bigrams, character n-grams), hashes each into a signed
 * bucket, weights it by the square root of its count and L2-normalises.
 * Runs inside one operation call on a worker thread.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"

/* Feature counts: open addressing on the feature hash (0 = empty slot). */
typedef struct slot {
        uint64_t h;
        uint32_t count;
        uint16_t kind;
        uint16_t stop; /* a function word, or a bigram of two: weighs EMBED_STOP_WEIGHT */
} slot_t;

typedef struct table {
        slot_t *v;
        size_t cap, n; /* cap: a power of two, at most half full */
} table_t;

static int table_grow(table_t *t) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        slot_t *v = calloc(cap, sizeof(*v));
        if (!v)
                return -1;
        for (size_t i = 0; i < t->cap; i++) {
                size_t j;
                if (!t->v[i].h)
                        continue;
                for (j = t->v[i].h & (cap - 1); v[j].h; j = (j + 1) & (cap - 1))
                        ;
                v[j] = t->v[i];
        }
        free(t->v);
        t->v = v;
        t->cap = cap;
        return 0;
}

static int table_add(table_t *t, embed_kind_t kind, int stop, const char *bytes, size_t len) {
        uint64_t h = embed_feature_hash(kind, bytes, len);
        size_t j;
        if (!h) /* 0 marks empty slots; one feature in 2^64 moves */
                h = 1;
        if ((t->n + 1) * 2 > t->cap && table_grow(t))
                return -1;
        for (j = h & (t->cap - 1); t->v[j].h; j = (j + 1) & (t->cap - 1)) {
                if (t->v[j].h == h) {
                        t->v[j].count++;
                        return 0;
                }
        }
        t->v[j] = (slot_t){.h = h, .count = 1, .kind = (uint16_t)kind, .stop = (uint16_t)stop};
        t->n++;
        return 0;
}

static size_t utf8_len(unsigned char lead) {
        return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

/* The character n-grams of one word, padded "<word>"; only its first
 * EMBED_CHARGRAM_WORD_CAP code points, and then without the end mark. */
static int add_chargrams(table_t *t, const char *word, size_t len) {
        char buf[4 * EMBED_CHARGRAM_WORD_CAP + 2];
        size_t off[EMBED_CHARGRAM_WORD_CAP + 3], n = 0, o = 0, i = 0;

        buf[o] = '<';
        off[n++] = o++;
        while (i < len && n <= EMBED_CHARGRAM_WORD_CAP) {
                size_t l = utf8_len((unsigned char)word[i]);
                memcpy(buf + o, word + i, l);
                off[n++] = o;
                o += l;
                i += l;
        }
        if (i == len) {
                buf[o] = '>';
                off[n++] = o++;
        }
        off[n] = o; /* the end of the last code point */
        for (size_t g = EMBED_CHARGRAM_MIN; g <= EMBED_CHARGRAM_MAX; g++)
                for (size_t j = 0; j + g <= n; j++)
                        if (table_add(t, EMBED_KIND_CHARGRAM, 0, buf + off[j], off[j + g] - off[j]))
                                return -1;
        return 0;
}

static int count_features(const embed_words_t *w, table_t *t, int (*cancel)(void *), void *arg) {
        int prev_stop = 0;
        for (size_t i = 0; i < w->n; i++) {
                const char *word = w->text + w->start[i];
                size_t len = w->end[i] - w->start[i];
                int stop = embed_is_stopword(word, len);
                if ((i & 1023) == 1023 && cancel && cancel(arg))
                        return -2;
                if (table_add(t, EMBED_KIND_WORD, stop, word, len))
                        return -1;
                /* words i-1 and i with the one space between them */
                if (i && table_add(t, EMBED_KIND_BIGRAM, stop && prev_stop, w->text + w->start[i - 1],
                                   w->end[i] - w->start[i - 1]))
                        return -1;
                if (!stop && add_chargrams(t, word, len))
                        return -1;
                prev_stop = stop;
        }
        return 0;
}

/* Scales v[dim] to norm sqrt(share) and adds it to out; an empty family
 * (no bigrams in a one-word text) adds nothing. */
static void add_family(double *out, const double *v, uint32_t dim, double share) {
        double sum = 0, scale;
        for (uint32_t i = 0; i < dim; i++)
                sum += v[i] * v[i];
        if (sum == 0)
                return;
        scale = sqrt(share) / sqrt(sum);
        for (uint32_t i = 0; i < dim; i++)
                out[i] += v[i] * scale;
}

int embed_vectorize(const embed_words_t *w, uint32_t dim, double *out, int (*cancel)(void *), void *arg) {
        static const double share[EMBED_KINDS] = {EMBED_SHARE_WORDS, EMBED_SHARE_BIGRAMS,
                                                  EMBED_SHARE_CHARGRAMS};
        table_t t = {0};
        double *fam, sum = 0, scale;
        int rc;

        if (!(fam = calloc((size_t)EMBED_KINDS * dim, sizeof(*fam))))
                return -1;
        if ((rc = count_features(w, &t, cancel, arg))) {
                free(t.v);
                free(fam);
                return rc;
        }
        /* sqrt, not log, for the sublinear count: IEEE 754 rounds sqrt
         * exactly, so the vectors are bit-identical on every machine. */
        for (size_t i = 0; i < t.cap; i++)
                if (t.v[i].h)
                        fam[t.v[i].kind * dim + embed_bucket(t.v[i].h, dim)] +=
                            embed_sign(t.v[i].h) * sqrt((double)t.v[i].count) * (t.v[i].stop ? EMBED_STOP_WEIGHT : 1.0);
        free(t.v);
        memset(out, 0, dim * sizeof(*out));
        for (int k = 0; k < EMBED_KINDS; k++)
                add_family(out, fam + (size_t)k * dim, dim, share[k]);
        free(fam);
        for (uint32_t i = 0; i < dim; i++)
                sum += out[i] * out[i];
        if (sum == 0) /* the families cancelled out exactly: only in theory */
                return -3;
        scale = 1.0 / sqrt(sum);
        for (uint32_t i = 0; i < dim; i++)
                out[i] *= scale;
        return 0;
}
