/*
 * The text emitter shared by the HTML and Markdown extractors: turns a walk
 * over a document tree into readable text with line breaks at block
 * boundaries. Worker-pool threads; one emitter per call.
 */
#include "text.h"

static int is_ascii_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

void text_emit_break(text_emit_t *e, int newlines) {
        if (e->out->len == 0)
                return; /* never start the text with blank lines */
        if (newlines > e->pending_breaks)
                e->pending_breaks = newlines;
        e->pending_space = 0;
}

void text_emit_newline(text_emit_t *e) {
        if (e->out->len == 0)
                return;
        if (e->pending_breaks < 2)
                e->pending_breaks++;
        e->pending_space = 0;
}

void text_emit_space(text_emit_t *e) {
        if (e->out->len > 0 && !e->pending_breaks)
                e->pending_space = 1;
}

/* Writes what is owed before the next text. Newlines already at the end of
 * the output (from preformatted text) count towards the breaks owed, and
 * spaces before a line break are dropped. */
static void emit_flush(text_emit_t *e) {
        text_buf_t *b = e->out;
        int have = 0;

        if (e->pending_breaks) {
                while (b->len > 0 && (b->data[b->len - 1] == ' ' || b->data[b->len - 1] == '\t'))
                        b->len--;
                for (size_t i = b->len; i > 0 && b->data[i - 1] == '\n' && have < 2; i--)
                        have++;
                for (; have < e->pending_breaks; have++)
                        if (text_buf_append(b, "\n", 1))
                                e->failed = 1;
        } else if (e->pending_space && b->len > 0 && !is_ascii_space(b->data[b->len - 1])) {
                if (text_buf_append(b, " ", 1))
                        e->failed = 1;
        }
        e->pending_breaks = 0;
        e->pending_space = 0;
}

static void emit_raw(text_emit_t *e, const char *s, size_t n) {
        if (e->out->len == 0) /* no leading blank space, even from <pre> */
                for (; n > 0 && is_ascii_space(*s); n--)
                        s++;
        if (n == 0)
                return;
        emit_flush(e);
        if (text_buf_append(e->out, s, n))
                e->failed = 1;
}

void text_emit_text(text_emit_t *e, const char *s, size_t n, int collapse) {
        size_t i = 0, word;

        if (!collapse) {
                emit_raw(e, s, n);
                return;
        }
        while (i < n) {
                if (is_ascii_space(s[i])) {
                        text_emit_space(e);
                        while (i < n && is_ascii_space(s[i]))
                                i++;
                        continue;
                }
                for (word = i; i < n && !is_ascii_space(s[i]); i++)
                        ;
                emit_raw(e, s + word, i - word);
        }
}

void text_emit_finish(text_emit_t *e) {
        text_buf_t *b = e->out;
        while (b->len > 0 && is_ascii_space(b->data[b->len - 1]))
                b->len--;
        if (b->data)
                b->data[b->len] = '\0';
        e->pending_breaks = 0;
        e->pending_space = 0;
}
