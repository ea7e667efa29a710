/*
 * The embed plugin's English function words: the ones frequent enough in
 * any English text that, counted fully, they make unrelated short texts
 * look alike. Any thread: a constant table.
 */
#include <stdlib.h>
#include <string.h>

#include "embed.h"

/* Sorted (strcmp order) for bsearch; apostrophes are already gone from
 * the tokens ("don't" is "dont"). Changing this list changes the model. */
static const char *const stopwords[] = {
        "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are",
        "arent", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both",
        "but", "by", "can", "cannot", "could", "couldnt", "did", "didnt", "do", "does", "doesnt",
        "doing", "dont", "down", "during", "each", "few", "for", "from", "further", "had", "hadnt",
        "has", "hasnt", "have", "havent", "having", "he", "hed", "her", "here", "heres", "hers",
        "herself", "hes", "him", "himself", "his", "how", "hows", "i", "if", "im", "in", "into",
        "is", "isnt", "it", "its", "itself", "ive", "just", "me", "more", "most", "my", "myself",
        "no", "nor", "not", "of", "off", "on", "once", "only", "or", "other", "ought", "our",
        "ours", "ourselves", "out", "over", "own", "same", "shall", "she", "shes", "should",
        "shouldnt", "so", "some", "such", "than", "that", "thats", "the", "their", "theirs", "them",
        "themselves", "then", "there", "theres", "these", "they", "theyd", "theyll", "theyre",
        "theyve", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was",
        "wasnt", "we", "were", "werent", "weve", "what", "whats", "when", "whens", "where",
        "wheres", "which", "while", "who", "whom", "whos", "why", "whys", "will", "with", "would",
        "wouldnt", "you", "youd", "youll", "your", "youre", "yours", "yourself", "yourselves",
        "youve",
};

typedef struct key {
        const char *s;
        size_t len;
} stop_key_t;

static int cmp(const void *k, const void *elem) {
        const stop_key_t *key = k;
        const char *w = *(const char *const *)elem;
        size_t wl = strlen(w);
        int c = memcmp(key->s, w, key->len < wl ? key->len : wl);
        return c ? c : (key->len > wl) - (key->len < wl);
}

int embed_is_stopword(const char *word, size_t len) {
        stop_key_t k = {word, len};
        if (len > 10)
                return 0;
        return bsearch(&k, stopwords, sizeof(stopwords) / sizeof(stopwords[0]), sizeof(stopwords[0]), cmp) != NULL;
}
