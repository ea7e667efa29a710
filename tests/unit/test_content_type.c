/*
 * Content types from object names: the extension after the last dot of the
 * last path segment, any case, the longest known one included; no type for
 * unknown, missing or over-long extensions. Single-threaded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fetch/fetch.h"

static void test_from_name(void **state) {
        static const struct {
                const char *name, *want;
        } cases[] = {
            {"photos/cat.jpg", "image/jpeg"},
            {"photos/CAT.JPG", "image/jpeg"},
            {"a.b/c.JpEg", "image/jpeg"},
            {"notes.markdown", "text/markdown"},
            {"notes.MARKDOWN", "text/markdown"},
            {"report.pdf", "application/pdf"},
            {"x.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
            {"clip.mkv", "video/x-matroska"},
            {"song.m4a", "audio/mp4"},
            {"file.markdowns", NULL},  /* longer than any known one */
            {"file.abcdefghijklmnopqrstuvwxyz", NULL},
            {"file.unknown", NULL},
            {"dir.jpg/file", NULL},    /* the dot is in a folder's name */
            {"noext", NULL},
            {"trailing.", NULL},
            {".jpg", "image/jpeg"},    /* a hidden file named like its type */
            {"", NULL},
        };
        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const char *got = mmp_content_type_from_name(cases[i].name);
                if (!cases[i].want)
                        assert_null(got);
                else if (!got)
                        fail_msg("%s: no type, expected %s", cases[i].name, cases[i].want);
                else
                        assert_string_equal(got, cases[i].want);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_from_name),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
