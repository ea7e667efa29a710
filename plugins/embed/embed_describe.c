/*
 * The local "generation" model extractive-v1: a text's lead sentence as its
 * summary and its most frequent content words as keywords. Extractive, not
 * generative: it picks from the text, it writes nothing new (docs/models.md).
 * Worker-pool threads; reentrant.
 */
#include <stdlib.h>
#include <string.h>

#include "embed.h"

static int kw_cmp(const void *a, const void *b) {
        const kw_t *x = a, *y = b;
        if (x->count != y->count)
                return x->count < y->count ? 1 : -1;
        return x->first < y->first ? -1 : x->first > y->first;
}

/* The lead sentence: up to the first . ! or ? followed by white space, at
 * most max bytes, cut back to a UTF-8 boundary and a word end. */
size_t embed_lead_sentence(const char *s, size_t len, size_t max, size_t *startp) {
        size_t i = 0, end;
        while (i < len && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t'))
                i++;
        *startp = i;
        for (end = i; end < len && end - i < max; end++) {
                if ((s[end] == '.' || s[end] == '!' || s[end] == '?') &&
                    (end + 1 == len || s[end + 1] == ' ' || s[end + 1] == '\n')) {
                        end++;
                        return end - i;
                }
                if (s[end] == '\n' && end + 1 < len && s[end + 1] == '\n')
                        return end - i; /* a paragraph break ends a heading-like lead */
        }
        if (end - i >= max) { /* too long: cut at the last space, on a character boundary */
                size_t cut = end;
                while (cut > i && s[cut] != ' ')
                        cut--;
                if (cut == i)
                        for (cut = end; cut > i && ((unsigned char)s[cut] & 0xc0) == 0x80; cut--)
                                ;
                return cut - i;
        }
        return end - i;
}

/* Fills kws (caller frees) with the distinct content words, best first. */
size_t embed_keywords(const embed_words_t *w, kw_t **out) {
        kw_t *k = calloc(w->n ? w->n : 1, sizeof(*k));
        size_t n = 0;
        for (size_t i = 0; k && i < w->n; i++) {
                const char *word = w->text + w->start[i];
                size_t len = w->end[i] - w->start[i], j;
                if (len < 3 || embed_is_stopword(word, len))
                        continue;
                for (j = 0; j < n; j++)
                        if (k[j].len == len && !memcmp(w->text + k[j].start, word, len))
                                break;
                if (j == n)
                        k[n++] = (kw_t){w->start[i], len, 0, i};
                k[j].count++;
        }
        if (n)
                qsort(k, n, sizeof(*k), kw_cmp);
        *out = k;
        return n;
}
