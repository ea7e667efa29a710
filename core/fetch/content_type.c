/*
 * Content types: by extension (declared) and by libmagic (detected).
 * Worker threads; each keeps its own magic handle.
 */
#include <ctype.h>
#include <magic.h>
#include <stdint.h>
#include <unistd.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "fetch/fetch.h"

static const struct {
        const char *ext, *type;
} by_ext[] = {
    {"txt", "text/plain"},        {"text", "text/plain"},        {"log", "text/plain"},
    {"md", "text/markdown"},      {"markdown", "text/markdown"}, {"html", "text/html"},
    {"htm", "text/html"},         {"csv", "text/csv"},           {"json", "application/json"},
    {"xml", "application/xml"},   {"pdf", "application/pdf"},    {"png", "image/png"},
    {"jpg", "image/jpeg"},        {"jpeg", "image/jpeg"},        {"gif", "image/gif"},
    {"webp", "image/webp"},       {"tif", "image/tiff"},         {"tiff", "image/tiff"},
    {"bmp", "image/bmp"},         {"svg", "image/svg+xml"},      {"wav", "audio/wav"},
    {"mp3", "audio/mpeg"},        {"ogg", "audio/ogg"},          {"oga", "audio/ogg"},
    {"flac", "audio/flac"},       {"m4a", "audio/mp4"},          {"mp4", "video/mp4"},
    {"m4v", "video/mp4"},         {"webm", "video/webm"},        {"mkv", "video/x-matroska"},
    {"mov", "video/quicktime"},   {"avi", "video/x-msvideo"},    {"ogv", "video/ogg"},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    {"odt", "application/vnd.oasis.opendocument.text"},
};

const char *mmp_content_type_from_name(const char *name) {
        const char *slash = strrchr(name, '/'), *dot = strrchr(name, '.');
        char ext[16];
        size_t n = 0;
        if (!dot || (slash && dot < slash) || !dot[1])
                return NULL;
        /* Lower-cased once (every event of a Kafka source passes here), then
         * the first letter sieves the table; no known extension is longer. */
        for (const char *c = dot + 1; *c; c++) {
                if (n == sizeof(ext) - 1)
                        return NULL;
                ext[n++] = (char)tolower((unsigned char)*c);
        }
        ext[n] = '\0';
        for (size_t i = 0; i < sizeof(by_ext) / sizeof(by_ext[0]); i++)
                if (by_ext[i].ext[0] == ext[0] && !strcmp(ext, by_ext[i].ext))
                        return by_ext[i].type;
        return NULL;
}

static pthread_key_t magic_key;
static pthread_once_t magic_once = PTHREAD_ONCE_INIT;

static void magic_destroy(void *m) {
        magic_close(m);
}

static void magic_key_init(void) {
        pthread_key_create(&magic_key, magic_destroy);
}

void mmp_content_type_detect(int fd, char *out, size_t out_size) {
        magic_t m;
        const char *t = NULL;
        pthread_once(&magic_once, magic_key_init);
        if (!(m = pthread_getspecific(magic_key))) {
                if ((m = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR)) && magic_load(m, NULL) == 0)
                        pthread_setspecific(magic_key, m);
                else if (m) {
                        magic_close(m);
                        m = NULL;
                }
        }
        if (m && lseek(fd, 0, SEEK_SET) == 0)
                t = magic_descriptor(m, fd);
        snprintf(out, out_size, "%s", t ? t : "application/octet-stream");
        lseek(fd, 0, SEEK_SET);
}

int mmp_looks_like_utf8_text(const unsigned char *p, size_t n) {
        size_t i = 0;
        while (i < n) {
                unsigned char c = p[i];
                size_t len;
                uint32_t cp;
                if (c == 0)
                        return 0;
                if (c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf)
                        len = 2, cp = c & 0x1f;
                else if (c >= 0xe0 && c <= 0xef)
                        len = 3, cp = c & 0x0f;
                else if (c >= 0xf0 && c <= 0xf4)
                        len = 4, cp = c & 0x07;
                else
                        return 0;
                if (i + len > n)
                        return 1; /* cut by the buffer's end */
                for (size_t k = 1; k < len; k++) {
                        if ((p[i + k] & 0xc0) != 0x80)
                                return 0;
                        cp = (cp << 6) | (p[i + k] & 0x3f);
                }
                if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
                        return 0;
                i += len;
        }
        return 1;
}

/* Structured text formats libmagic reports as text/plain. */
static int text_like(const char *t) {
        return !strncmp(t, "text/", 5) || !strcmp(t, "application/json") || !strcmp(t, "application/xml") ||
               !strcmp(t, "image/svg+xml");
}

int mmp_content_type_is_text(const char *type) {
        return type && text_like(type);
}

int mmp_content_type_mismatch(const char *declared, const char *detected) {
        size_t dl, tl;
        if (!declared || !detected || !strcmp(declared, detected))
                return 0;
        if (text_like(declared) && text_like(detected))
                return 0;
        dl = strcspn(declared, "/");
        tl = strcspn(detected, "/");
        /* audio in a video container and the like are reported by kind only */
        return dl != tl || strncmp(declared, detected, dl) != 0;
}
