/*
 * Splits extracted text into overlapping chunks of at most `size` characters
 * that end, by preference, at a sentence or paragraph end, else at a word
 * end, else anywhere. Worker-pool threads; no state outside the call.
 */
#include "text.h"

/* A place in the text: byte offset and character (code point) offset. */
typedef struct text_pos {
        size_t byte, ch;
} text_pos_t;

/* The text being chunked. */
typedef struct chunk_text {
        const char *s;
        size_t n;
} chunk_text_t;

static uint32_t cp_at(const chunk_text_t *t, text_pos_t p, size_t *len) {
        uint32_t cp;
        *len = text_utf8_decode(t->s + p.byte, t->n - p.byte, &cp);
        return cp;
}

static text_pos_t pos_next(const chunk_text_t *t, text_pos_t p) {
        size_t len;
        cp_at(t, p, &len);
        return (text_pos_t){p.byte + len, p.ch + 1};
}

static text_pos_t pos_prev(const chunk_text_t *t, text_pos_t p) {
        return (text_pos_t){text_utf8_prev(t->s, p.byte), p.ch - 1};
}

static int space_at(const chunk_text_t *t, text_pos_t p) {
        size_t len;
        return p.byte < t->n && text_is_space(cp_at(t, p, &len));
}

static text_pos_t skip_space(const chunk_text_t *t, text_pos_t p) {
        while (space_at(t, p))
                p = pos_next(t, p);
        return p;
}

/* Sentence ends: . ! ? possibly followed by closing quotes or brackets. */
static int is_terminal(uint32_t cp) {
        return cp == '.' || cp == '!' || cp == '?';
}

static int is_closer(uint32_t cp) {
        return cp == '"' || cp == '\'' || cp == ')' || cp == ']' || cp == '}' ||
               cp == 0x2019 || cp == 0x201D || cp == 0xBB;
}

/* Where the chunk starting at `start` (not a space) ends: the last sentence
 * or paragraph end in the window, else the last word end, else the window
 * edge. A boundary counts only from `min_ch` on, which keeps chunks at least
 * half full and longer than the overlap, so every step makes progress.
 * The text past the window is looked at only to see whether a boundary
 * inside it is followed by a space or a blank line. */
static text_pos_t chunk_find_end(const chunk_text_t *t, text_pos_t start, size_t limit_ch,
                                 size_t min_ch) {
        text_pos_t p = start, edge = start, sentence = {0, 0}, word = {0, 0}, run = {0, 0};
        int in_space = 0, after_terminal = 0, newlines = 0;
        size_t len, lookahead = 0;
        uint32_t cp;

        while (p.byte < t->n) {
                cp = cp_at(t, p, &len);
                if (p.ch == limit_ch)
                        edge = p;
                if (!text_is_space(cp)) {
                        if (p.ch >= limit_ch)
                                break; /* the window is full */
                        if (in_space)
                                after_terminal = 0; /* a new word */
                        in_space = 0;
                        if (is_terminal(cp))
                                after_terminal = 1;
                        else if (!is_closer(cp))
                                after_terminal = 0;
                } else {
                        if (!in_space) {
                                in_space = 1;
                                newlines = 0;
                                run = p;
                                if (p.ch >= min_ch && p.ch <= limit_ch) {
                                        word = p;
                                        if (after_terminal)
                                                sentence = p;
                                }
                        }
                        if (cp == '\n' && ++newlines == 2 && run.ch >= min_ch && run.ch <= limit_ch)
                                sentence = run; /* a blank line ends a paragraph */
                        /* Past the window only the space run matters, and
                         * only until it shows a blank line. */
                        if (p.ch >= limit_ch &&
                            (newlines >= 2 || ++lookahead > limit_ch - start.ch))
                                break;
                }
                p = (text_pos_t){p.byte + len, p.ch + 1};
        }
        if (p.byte >= t->n && (in_space || p.ch <= limit_ch))
                return (text_pos_t){t->n, p.ch}; /* the rest fits */
        if (sentence.ch)
                return sentence;
        if (word.ch)
                return word;
        return edge;
}

/* Where the chunk after one ending at `end` starts: `overlap` characters
 * back, moved forward to a word start if one lies before `end`, and never on
 * a space. When a run of spaces after `end` is too long for that chunk to
 * reach the next word, it starts late enough to reach it (no chunk may end
 * where the previous one did). `end` is past `start` + overlap, so the
 * result is past `start`. Returns 0 when no text is left. */
static int chunk_next_start(const chunk_text_t *t, text_pos_t end, size_t overlap, size_t size,
                            text_pos_t *next) {
        text_pos_t q = skip_space(t, end), c = end, w;

        if (q.byte >= t->n)
                return 0;
        for (size_t i = 0; i < overlap; i++)
                c = pos_prev(t, c);
        if (q.ch - c.ch >= size)
                for (c = q; q.ch - c.ch < size - 1;)
                        c = pos_prev(t, c);
        if (overlap && c.byte > 0 && !space_at(t, pos_prev(t, c)) && !space_at(t, c)) {
                /* Mid-word: look for the next word start inside the overlap. */
                for (w = c; w.byte < end.byte && !space_at(t, w); w = pos_next(t, w))
                        ;
                w = skip_space(t, w);
                if (w.byte < end.byte)
                        c = w;
        }
        *next = skip_space(t, c);
        return 1;
}

static int map_put_int(text_ctx_t *ctx, mmp_value_t *map, const char *key, size_t v) {
        return ctx->host->value_set(map, key, ctx->host->value_new_int((int64_t)v));
}

/* Appends { index, text, start, stop, characters } to `array`. */
static int chunk_push(text_ctx_t *ctx, mmp_value_t *array, const chunk_text_t *t, size_t index,
                      text_pos_t start, text_pos_t stop) {
        const mmp_host_api_t *h = ctx->host;
        mmp_value_t *m = h->value_new_map();
        size_t len = stop.byte - start.byte;

        if (!m || map_put_int(ctx, m, "index", index) ||
            h->value_set(m, "text", h->value_new_string(t->s + start.byte, len)) ||
            map_put_int(ctx, m, "start", start.ch) || map_put_int(ctx, m, "stop", stop.ch) ||
            map_put_int(ctx, m, "characters", stop.ch - start.ch)) {
                h->value_free(m);
                return text_fail_oom(ctx);
        }
        return h->value_push(array, m) ? text_fail_oom(ctx) : 0;
}

static int chunk_loop(text_ctx_t *ctx, mmp_value_t *array, const chunk_text_t *t,
                      const text_chunk_opts_t *o) {
        text_pos_t start = skip_space(t, (text_pos_t){0, 0}), end, stop;
        size_t index = 0, min_len = o->size / 2 > o->overlap + 1 ? o->size / 2 : o->overlap + 1;

        while (start.byte < t->n) {
                if (text_cancelled(ctx))
                        return -1;
                if (index == o->max_chunks) {
                        text_fail(ctx, "chunk: more than %zu chunks (raise opts.max_chunks "
                                       "or opts.size)", o->max_chunks);
                        return -1;
                }
                end = chunk_find_end(t, start, start.ch + o->size, start.ch + min_len);
                for (stop = end; space_at(t, pos_prev(t, stop)); stop = pos_prev(t, stop))
                        ;
                if (chunk_push(ctx, array, t, index++, start, stop))
                        return -1;
                if (!chunk_next_start(t, end, o->overlap, o->size, &start))
                        break;
        }
        return 0;
}

mmp_value_t *text_chunk_build(text_ctx_t *ctx, const char *s, size_t n,
                              const text_chunk_opts_t *opts) {
        chunk_text_t t = {s, n};
        mmp_value_t *array = ctx->host->value_new_array();

        if (!array) {
                text_fail_oom(ctx);
                return NULL;
        }
        if (chunk_loop(ctx, array, &t, opts)) {
                ctx->host->value_free(array);
                return NULL;
        }
        return array;
}
