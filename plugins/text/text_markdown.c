/*
 * Markdown to text with cmark: parse to the CommonMark AST and keep the text
 * of text and code nodes, with line breaks at block boundaries; link text
 * stays, URLs go. Worker-pool threads (cmark keeps no global state).
 */
#include "text.h"

#ifdef MMP_TEXT_WITH_CMARK
#define CMARK_NO_SHORT_NAMES 1
#include <cmark.h>
#include <string.h>

/* A paragraph inside a tight list item is one line, not a block. */
static int md_tight_paragraph(cmark_node *node) {
        cmark_node *item = cmark_node_parent(node), *list;
        if (!item || cmark_node_get_type(item) != CMARK_NODE_ITEM)
                return 0;
        list = cmark_node_parent(item);
        return list && cmark_node_get_list_tight(list);
}

/* Newlines a block owes before and after it; 0 for inlines. */
static int md_block_breaks(cmark_node *node) {
        cmark_node *parent;

        switch (cmark_node_get_type(node)) {
        case CMARK_NODE_PARAGRAPH:
                return md_tight_paragraph(node) ? 1 : 2;
        case CMARK_NODE_LIST:
                parent = cmark_node_parent(node);
                return parent && cmark_node_get_type(parent) == CMARK_NODE_ITEM ? 1 : 2;
        case CMARK_NODE_ITEM:
                return 1;
        case CMARK_NODE_HEADING:
        case CMARK_NODE_BLOCK_QUOTE:
        case CMARK_NODE_CODE_BLOCK:
        case CMARK_NODE_HTML_BLOCK:
        case CMARK_NODE_THEMATIC_BREAK:
        case CMARK_NODE_CUSTOM_BLOCK:
                return 2;
        default:
                return 0;
        }
}

static void md_literal(text_emit_t *e, cmark_node *node, int strip_final_newline) {
        const char *s = cmark_node_get_literal(node);
        size_t n = s ? strlen(s) : 0;
        if (strip_final_newline && n > 0 && s[n - 1] == '\n')
                n--;
        text_emit_text(e, s, n, 0);
}

/* What entering a node adds to the text. Leaves carry the text; the raw
 * HTML of a block goes through the HTML extractor, inline tags are dropped. */
static int md_enter(text_ctx_t *ctx, text_emit_t *e, cmark_node *node) {
        const char *s;

        switch (cmark_node_get_type(node)) {
        case CMARK_NODE_TEXT:
        case CMARK_NODE_CODE:
                md_literal(e, node, 0);
                break;
        case CMARK_NODE_CODE_BLOCK:
                md_literal(e, node, 1);
                break;
        case CMARK_NODE_SOFTBREAK:
                text_emit_space(e);
                break;
        case CMARK_NODE_LINEBREAK:
                text_emit_newline(e);
                break;
        case CMARK_NODE_HTML_BLOCK:
                s = cmark_node_get_literal(node);
                if (s && text_html_emit(ctx, e, s, strlen(s)))
                        return -1;
                break;
        default:
                break;
        }
        return 0;
}

static int md_walk(text_ctx_t *ctx, text_emit_t *e, cmark_node *doc) {
        cmark_iter *it = cmark_iter_new(doc);
        cmark_event_type ev;
        size_t visited = 0;
        int rc = 0, breaks;

        if (!it)
                return text_fail_oom(ctx);
        while (!rc && (ev = cmark_iter_next(it)) != CMARK_EVENT_DONE) {
                cmark_node *node = cmark_iter_get_node(it);
                if ((++visited & 4095) == 0 && text_cancelled(ctx)) {
                        rc = -1;
                        break;
                }
                if ((breaks = md_block_breaks(node)))
                        text_emit_break(e, breaks);
                if (ev == CMARK_EVENT_ENTER)
                        rc = md_enter(ctx, e, node);
                /* Leaves get one event only: close them right away. */
                if (breaks && ev == CMARK_EVENT_ENTER && !cmark_node_first_child(node) &&
                    cmark_node_get_type(node) != CMARK_NODE_DOCUMENT)
                        text_emit_break(e, breaks);
        }
        cmark_iter_free(it);
        if (!rc && e->failed)
                rc = text_fail_oom(ctx);
        return rc;
}

int text_markdown_extract(text_ctx_t *ctx, const char *s, size_t n, text_buf_t *out) {
        text_emit_t e = {.out = out};
        cmark_node *doc;
        int rc;

        /* cmark aborts the process when malloc fails; 64 MiB inputs keep
         * that out of reach in practice. */
        doc = cmark_parse_document(s, n, CMARK_OPT_DEFAULT);
        if (!doc)
                return text_fail_oom(ctx);
        rc = md_walk(ctx, &e, doc);
        cmark_node_free(doc);
        if (rc)
                return -1;
        text_emit_finish(&e);
        return text_utf8_repair(out) ? text_fail_oom(ctx) : 0;
}

#else /* !MMP_TEXT_WITH_CMARK */

int text_markdown_extract(text_ctx_t *ctx, const char *s, size_t n, text_buf_t *out) {
        text_fail(ctx, "markdown: not supported in this build (cmark was not found when the "
                       "text plugin was built)");
        return -1;
}

#endif
