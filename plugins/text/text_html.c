/*
 * HTML to text with libxml2's forgiving HTML parser: script, style, head and
 * similar contents dropped, block elements become line breaks, entities
 * decoded by the parser. Worker-pool threads (libxml2 is initialised in init).
 */
#include <limits.h>
#include <string.h>

#include "text.h"

#ifdef MMP_TEXT_WITH_LIBXML2
#include <libxml/HTMLparser.h>
#include <libxml/tree.h>

/* Contents never shown as text by a browser, or not part of the page. */
static const char *const html_skipped[] = {
        "head", "script", "style", "template", "noscript", "title", NULL,
};
/* Blocks separated by a blank line. */
static const char *const html_paragraphs[] = {
        "p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "hr", NULL,
};
/* Blocks that start on a new line. */
static const char *const html_lines[] = {
        "address", "article", "aside", "body", "caption", "center", "dd", "details",
        "dialog", "dir", "div", "dl", "dt", "fieldset", "figcaption", "figure",
        "footer", "form", "frameset", "header", "hgroup", "html", "legend", "li",
        "main", "menu", "nav", "ol", "option", "section", "summary", "table",
        "tbody", "tfoot", "thead", "tr", "ul", NULL,
};
/* Inline boxes that still need a space around them. */
static const char *const html_cells[] = {"td", "th", NULL};

static int name_in(const char *name, const char *const *list) {
        for (; *list; list++)
                if (!strcmp(name, *list))
                        return 1;
        return 0;
}

/* Emits what starting (enter) or ending an element owes the text. Returns
 * whether to descend into its children. Names come lower-cased from the
 * HTML parser. */
static int html_element(text_emit_t *e, xmlNodePtr node, int enter, int *pre_depth) {
        const char *name = (const char *)node->name;

        if (!name || name_in(name, html_skipped))
                return 0;
        if (name_in(name, html_paragraphs))
                text_emit_break(e, 2);
        else if (name_in(name, html_lines))
                text_emit_break(e, 1);
        else if (name_in(name, html_cells))
                text_emit_space(e);
        else if (enter && !strcmp(name, "br"))
                text_emit_newline(e);
        else if (enter && !strcmp(name, "img")) {
                xmlChar *alt = xmlGetProp(node, (const xmlChar *)"alt");
                if (alt) {
                        text_emit_text(e, (const char *)alt, strlen((const char *)alt), 1);
                        xmlFree(alt);
                }
        }
        if (!strcmp(name, "pre") || !strcmp(name, "textarea") || !strcmp(name, "listing"))
                *pre_depth += enter ? 1 : -1;
        return 1;
}

static void html_text(text_emit_t *e, xmlNodePtr node, int pre_depth) {
        const char *s = (const char *)node->content;
        if (s)
                text_emit_text(e, s, strlen(s), pre_depth == 0);
}

/* Depth-first walk without recursion: deeply nested junk must not blow the
 * worker's stack. Checks for cancellation every few thousand nodes. */
static int html_walk(text_ctx_t *ctx, text_emit_t *e, xmlDocPtr doc) {
        xmlNodePtr cur = doc->children;
        int pre_depth = 0, descend;
        size_t visited = 0;

        while (cur) {
                if ((++visited & 4095) == 0 && text_cancelled(ctx))
                        return -1;
                descend = 0;
                if (cur->type == XML_ELEMENT_NODE)
                        descend = html_element(e, cur, 1, &pre_depth);
                else if (cur->type == XML_TEXT_NODE || cur->type == XML_CDATA_SECTION_NODE)
                        html_text(e, cur, pre_depth);
                if (descend && cur->children) {
                        cur = cur->children;
                        continue;
                }
                /* Leave this node and every ancestor that has no next sibling. */
                for (;;) {
                        if (cur->type == XML_ELEMENT_NODE) /* skipped ones are a no-op */
                                html_element(e, cur, 0, &pre_depth);
                        if (cur->next) {
                                cur = cur->next;
                                break;
                        }
                        cur = cur->parent;
                        if (!cur || cur == (xmlNodePtr)doc)
                                return e->failed ? text_fail_oom(ctx) : 0;
                }
        }
        return e->failed ? text_fail_oom(ctx) : 0;
}

/* No document for input that is whitespace only; anything else without a
 * document is a failure. */
static int html_no_document(text_ctx_t *ctx, const char *s, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\f') {
                        text_fail(ctx, "html: the parser returned no document");
                        return -1;
                }
        }
        return 0;
}

int text_html_emit(text_ctx_t *ctx, text_emit_t *e, const char *s, size_t n) {
        /* HUGE lifts the nesting limit of 256, beyond which libxml2 stops and
         * keeps a truncated tree; the walk below needs no stack per level. */
        const int options = HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                            HTML_PARSE_NONET | HTML_PARSE_IGNORE_ENC | HTML_PARSE_COMPACT |
                            XML_PARSE_HUGE;
        htmlParserCtxtPtr parser;
        htmlDocPtr doc;
        int rc = -1;

        if (n > INT_MAX) {
                text_fail(ctx, "html: document of %zu bytes is too large for the HTML parser", n);
                return -1;
        }
        if (!(parser = htmlNewParserCtxt()))
                return text_fail_oom(ctx);
        /* The bytes are clean UTF-8 already: say so, and ignore <meta charset>. */
        doc = htmlCtxtReadMemory(parser, s, (int)n, NULL, "UTF-8", options);
        if (!doc)
                rc = html_no_document(ctx, s, n);
        else if (parser->disableSAX) /* halted (memory, limits): the tree is cut short */
                text_fail(ctx, "html: the parser stopped early (error %d); refusing partial text",
                          parser->errNo);
        else
                rc = html_walk(ctx, e, doc);
        xmlFreeDoc(doc);
        htmlFreeParserCtxt(parser);
        return rc;
}

int text_html_extract(text_ctx_t *ctx, const char *s, size_t n, text_buf_t *out) {
        text_emit_t e = {.out = out};

        if (text_html_emit(ctx, &e, s, n))
                return -1;
        text_emit_finish(&e);
        /* libxml2 writes UTF-8, but make the promise hold whatever it does. */
        return text_utf8_repair(out) ? text_fail_oom(ctx) : 0;
}

#else /* !MMP_TEXT_WITH_LIBXML2 */

int text_html_emit(text_ctx_t *ctx, text_emit_t *e, const char *s, size_t n) {
        return 0; /* raw HTML inside Markdown is dropped */
}

int text_html_extract(text_ctx_t *ctx, const char *s, size_t n, text_buf_t *out) {
        text_fail(ctx, "html: not supported in this build (libxml2 was not found when the "
                       "text plugin was built)");
        return -1;
}

#endif
