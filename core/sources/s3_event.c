/*
 * S3 event notifications (AWS Records[], MinIO's variant, the simple
 * {"bucket","key","file_type"} form) turned into engine events, read with
 * the jscan tokenizer (no JSON tree per message). Pure parsing: any thread.
 */
#include "sources/s3_event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fetch/s3.h"
#include "util/jscan.h"
#include "util/log.h"

static int hexval(char c) {
        return c >= '0' && c <= '9' ? c - '0' : (c | 32) >= 'a' && (c | 32) <= 'f' ? (c | 32) - 'a' + 10 : -1;
}

long mmp_s3_key_decode(char *key, size_t n) {
        char *r = key, *w = key, *end = key + n;
        while (r < end) {
                if (*r == '+') {
                        *w++ = ' ';
                        r++;
                } else if (*r == '%') {
                        int hi = end - r > 1 ? hexval(r[1]) : -1, lo = end - r > 2 ? hexval(r[2]) : -1;
                        /* %00 would cut the key short: no S3 key holds a NUL. */
                        if (hi < 0 || lo < 0 || (hi | lo) == 0)
                                return -1;
                        *w++ = (char)(hi * 16 + lo);
                        r += 3;
                } else {
                        *w++ = *r++;
                }
        }
        *w = '\0';
        return (long)(w - key);
}

void mmp_s3_events_clear(mmp_s3_events_t *evs) {
        if (!evs)
                return;
        for (size_t i = 0; i < evs->n; i++)
                mmp_event_unref(evs->v[i]);
        free(evs->v);
        memset(evs, 0, sizeof(*evs));
}

/* ---- reading fields with exact reasons ---- */

/* A string s[0..n) read from the message, s NULL when absent. A whole
 * string read is NUL-terminated too; a slice of one (MinIO's bucket) is
 * not, so whatever builds the event goes by n. */
typedef struct str {
        const char *s;
        size_t n;
} str_t;

typedef struct reader {
        char *err;
        size_t err_size;
        const mmp_jscan_t *js;
        long record; /* the Records[] index being read, -1 outside */
        /* Strings read are unescaped here, NUL-terminated: each takes at
         * most its span in the message quotes included, and no token is
         * read twice, so the message's length is enough. */
        char *text;
        size_t text_used, text_size;
} reader_t;

static int fail(reader_t *r, const char *fmt, const char *a, const char *b) {
        snprintf(r->err, r->err_size, fmt, a, b);
        return -1;
}

/* A field's full name for a message, "Records[2].s3.object.key" for
 * ".s3.object.key" while reading a record: made only to report a failure. */
static const char *where(const reader_t *r, const char *path, char buf[96]) {
        if (r->record < 0)
                return path;
        snprintf(buf, 96, "Records[%ld]%s", r->record, path);
        return buf;
}

static int wrong_type(reader_t *r, const char *path, const char *what, const mmp_jtok_t *v) {
        char got[MMP_JSCAN_EXCERPT_SIZE], p[96];
        mmp_jscan_excerpt(r->js, v, got);
        snprintf(r->err, r->err_size, "%s: expected %s, got %s", where(r, path, p), what, got);
        return -1;
}

/* Value v (NULL when absent) of field path as a string: out->s NULL when
 * absent and not required. */
static int string_of(reader_t *r, const mmp_jtok_t *v, const char *path, int required, str_t *out) {
        char p[96];
        out->s = NULL;
        out->n = 0;
        if (!v || v->type == MMP_JSCAN_NULL)
                return required ? fail(r, "%s is missing", where(r, path, p), NULL) : 0;
        if (v->type != MMP_JSCAN_STRING)
                return wrong_type(r, path, "a string", v);
        if (required && !v->len)
                return fail(r, "%s is empty", where(r, path, p), NULL);
        /* Every field read ends up in a C string. */
        if (v->flags & MMP_JSCAN_HAS_NUL)
                return fail(r, "%s: holds \\u0000 (a NUL byte, not allowed here)", where(r, path, p), NULL);
        if (r->text_used + v->len + 1 > r->text_size)
                return fail(r, "%s: %s", where(r, path, p), "out of room for strings (a bug: a field read twice?)");
        out->s = r->text + r->text_used;
        out->n = mmp_jscan_unescape(r->js, v, r->text + r->text_used);
        r->text_used += out->n + 1;
        return 0;
}

/* Value v (NULL when absent) of field path as an object. */
static int object_of(reader_t *r, const mmp_jtok_t *v, const char *path, const mmp_jtok_t **out) {
        char p[96];
        if (!v)
                return fail(r, "%s is missing", where(r, path, p), NULL);
        if (v->type != MMP_JSCAN_OBJECT)
                return wrong_type(r, path, "an object", v);
        *out = v;
        return 0;
}

static int days_from_civil(int y, int m, int d, int64_t *out) {
        /* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's method). */
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        int64_t yoe = y - era * 400;
        int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        *out = era * 146097 + doe - 719468;
        return 0;
}

static int digits(const char *s, int n, int *out) {
        int v = 0;
        for (int i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -1;
                v = v * 10 + (s[i] - '0');
        }
        *out = v;
        return 0;
}

/* ISO 8601 as S3 writes it, "2024-01-02T03:04:05.678Z", also with an
 * offset (+01:00) or no zone (taken as UTC), to milliseconds since 1970. */
static int iso8601_ms(const char *s, int64_t *out) {
        int y, mo, d, h, mi, sec, ms = 0, off = 0;
        int64_t days;
        if (strlen(s) < 19 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
            digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || digits(s + 11, 2, &h) ||
            s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec))
                return -1;
        if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
                return -1;
        s += 19;
        if (*s == '.' || *s == ',') {
                int scale = 100;
                if (s[1] < '0' || s[1] > '9')
                        return -1;
                for (s++; *s >= '0' && *s <= '9'; s++, scale /= 10)
                        ms += (*s - '0') * scale;
        }
        if (*s == 'Z' || *s == 'z') {
                s++;
        } else if (*s == '+' || *s == '-') {
                int oh, om, sign = *s == '-' ? -1 : 1;
                if (digits(s + 1, 2, &oh) || (s[3] == ':' ? digits(s + 4, 2, &om) : digits(s + 3, 2, &om)))
                        return -1;
                off = sign * (oh * 60 + om);
                s += s[3] == ':' ? 6 : 5;
        }
        if (*s)
                return -1;
        days_from_civil(y, mo, d, &days);
        *out = ((days * 24 + h) * 60 + mi - off) * 60000 + (int64_t)sec * 1000 + ms;
        return 0;
}

/* ---- building events ---- */

typedef struct fields {
        mmp_event_kind_t kind;
        str_t event_name, bucket, etag, version_id, content_type;
        str_t key; /* decoded */
        int64_t size, time_ms;
        str_t original; /* the record's JSON text in the message */
} fields_t;

static int push(mmp_s3_events_t *out, mmp_event_t *ev) {
        mmp_event_t **v = realloc(out->v, (out->n + 1) * sizeof(*v));
        if (!v)
                return -1;
        out->v = v;
        out->v[out->n++] = ev;
        return 0;
}

/* Parts part[0..n) end to end, NUL-terminated, in buf[0..size) when they
 * fit, else in a new string (free() it when it is not buf); NULL when out
 * of memory. Its length goes to *len. */
static char *join(char *buf, size_t size, const str_t *part, size_t n, size_t *len) {
        size_t total = 0, at = 0;
        char *s;
        for (size_t i = 0; i < n; i++)
                total += part[i].n;
        if (!(s = total < size ? buf : malloc(total + 1)))
                return NULL;
        for (size_t i = 0; i < n; at += part[i].n, i++)
                memcpy(s + at, part[i].s, part[i].n);
        s[total] = '\0';
        *len = total;
        return s;
}

static int emit(reader_t *r, mmp_s3_events_t *out, const fields_t *f) {
        char url_buf[512], id_buf[600], *url = NULL, *id = NULL, ctype[128];
        str_t version = f->version_id, etag = f->etag;
        size_t extra, url_len, id_len = 0, ctype_len;
        mmp_event_t *ev = NULL;
        int rc = -1;

        if (version.s && (!version.n || !strcmp(version.s, "null")))
                version.s = NULL, version.n = 0;
        if (etag.s && !etag.n)
                etag.s = NULL;
        /* Some producers keep the HTTP header's quotes. */
        if (etag.n >= 2 && etag.s[0] == '"' && etag.s[etag.n - 1] == '"')
                etag.s++, etag.n -= 2;
        ctype[0] = '\0'; /* none declared, or none usable */
        if (f->content_type.s && !mmp_fetch_declared_type(f->content_type.s, ctype, sizeof(ctype)))
                ctype[0] = '\0';
        /* (No printf here: this runs for every record of every message.) */
        ctype_len = strlen(ctype);
        const str_t url_parts[] = {{"s3://", 5}, f->bucket, {"/", 1}, f->key};
        if (!(url = join(url_buf, sizeof(url_buf), url_parts, 4, &url_len)))
                goto done;
        if (version.s || etag.s) {
                const str_t id_parts[] = {{url, url_len}, {"@", 1}, version.s ? version : etag};
                if (!(id = join(id_buf, sizeof(id_buf), id_parts, 3, &id_len)))
                        goto done;
        }
        /* Everything below goes in the event's block, and what fetching adds. */
        extra = url_len + 1 + f->event_name.n + 1 + 2 * (etag.n + 1) + (version.s ? version.n + 1 : 0) +
                f->original.n + 1 + ctype_len + 1 + MMP_EVENT_FETCH_ROOM;
        if (!(ev = mmp_event_new_n(id ? id : url, id ? id_len : url_len, f->bucket.s, f->bucket.n, f->key.s, f->key.n,
                                   extra)))
                goto done;
        ev->kind = f->kind;
        ev->size = f->size;
        ev->time_ms = f->time_ms;
        if (mmp_event_set_n(ev, &ev->url, url, url_len) ||
            mmp_event_set_n(ev, &ev->event_name, f->event_name.s, f->event_name.n) ||
            (etag.s && mmp_event_set_n(ev, &ev->etag, etag.s, etag.n)) ||
            (version.s ? mmp_event_set_n(ev, &ev->version, version.s, version.n)
                       : mmp_event_set_n(ev, &ev->version, ev->etag, etag.n)) ||
            (*ctype && mmp_event_set_n(ev, &ev->content_type, ctype, ctype_len)) ||
            mmp_event_set_n(ev, &ev->original, f->original.s, f->original.n) || !ev->id || !ev->key || push(out, ev))
                goto done;
        ev = NULL;
        rc = 0;
done:
        mmp_event_unref(ev);
        if (url != url_buf)
                free(url);
        if (id != id_buf)
                free(id);
        return rc ? fail(r, "%s", "out of memory", NULL) : 0;
}

/* "ObjectCreated:Put" and "s3:ObjectCreated:Put" alike. Returns 0 with
 * *kind set, or 1 for an event of no interest here. */
static int classify(str_t name, mmp_event_kind_t *kind, str_t *bare) {
        if (!strncmp(name.s, "s3:", 3))
                name.s += 3, name.n -= 3;
        *bare = name;
        if (!strncmp(name.s, "ObjectCreated:", 14)) {
                *kind = MMP_EVENT_CREATED;
                return 0;
        }
        /* Expiry by a lifecycle rule removes the object just as a DELETE does. */
        if (!strncmp(name.s, "ObjectRemoved:", 14) || !strcmp(name.s, "LifecycleExpiration:Delete") ||
            !strcmp(name.s, "LifecycleExpiration:DeleteMarkerCreated")) {
                *kind = MMP_EVENT_REMOVED;
                return 0;
        }
        return 1;
}

static int parse_record(reader_t *r, const mmp_jtok_t *rec, size_t i, mmp_s3_events_t *out) {
        char p[96];
        const mmp_jtok_t *s3, *bucket, *object, *size;
        str_t name, key, time_s;
        fields_t f = {.size = -1};
        long key_n;
        int rc;

        r->record = (long)i;
        if (rec->type != MMP_JSCAN_OBJECT)
                return wrong_type(r, "", "an object", rec);
        static const mmp_jkey_t rec_keys[] = {MMP_JKEY("eventName"), MMP_JKEY("s3"), MMP_JKEY("eventTime")};
        const mmp_jtok_t *rec_v[3];
        f.original.s = mmp_jscan_raw(r->js, rec, &f.original.n);
        mmp_jscan_getv(r->js, rec, rec_keys, 3, rec_v);
        if (string_of(r, rec_v[0], ".eventName", 1, &name))
                return -1;
        if (classify(name, &f.kind, &f.event_name)) {
                mmp_debug("s3-event", "Records[%zu]: skipping a %s event", i, name.s);
                return 0;
        }
        /* Each object's members in one pass over it. */
        static const mmp_jkey_t s3_keys[] = {MMP_JKEY("bucket"), MMP_JKEY("object")};
        static const mmp_jkey_t object_keys[] = {MMP_JKEY("key"), MMP_JKEY("eTag"), MMP_JKEY("versionId"),
                                                  MMP_JKEY("contentType"), MMP_JKEY("size")};
        const mmp_jtok_t *sv[2], *ov[5];
        if (object_of(r, rec_v[1], ".s3", &s3))
                return -1;
        mmp_jscan_getv(r->js, s3, s3_keys, 2, sv);
        if (object_of(r, sv[0], ".s3.bucket", &bucket) ||
            string_of(r, mmp_jscan_gets(r->js, bucket, "name"), ".s3.bucket.name", 1, &f.bucket) ||
            object_of(r, sv[1], ".s3.object", &object))
                return -1;
        mmp_jscan_getv(r->js, object, object_keys, 5, ov);
        if (string_of(r, ov[0], ".s3.object.key", 1, &key) || string_of(r, ov[1], ".s3.object.eTag", 0, &f.etag) ||
            string_of(r, ov[2], ".s3.object.versionId", 0, &f.version_id) ||
            string_of(r, ov[3], ".s3.object.contentType", 0, &f.content_type) ||
            string_of(r, rec_v[2], ".eventTime", 0, &time_s))
                return -1;
        if ((size = ov[4]) && size->type != MMP_JSCAN_NULL) {
                if (mmp_jscan_int64(r->js, size, &f.size) || f.size < 0)
                        return wrong_type(r, ".s3.object.size", "a non-negative integer", size);
        }
        if (time_s.s && iso8601_ms(time_s.s, &f.time_ms))
                return fail(r, "%s: expected an ISO 8601 time, got \"%.40s\"", where(r, ".eventTime", p), time_s.s);
        /* Most keys have nothing URL-encoded in them. */
        if (!memchr(key.s, '%', key.n) && !memchr(key.s, '+', key.n)) {
                f.key = key;
                return emit(r, out, &f);
        }
        /* Decoded on the stack for the usual key (S3's limit is 1,024 bytes). */
        char kbuf[1100], *k = key.n < sizeof(kbuf) ? kbuf : malloc(key.n + 1);
        if (!k)
                return fail(r, "%s", "out of memory", NULL);
        memcpy(k, key.s, key.n + 1);
        if ((key_n = mmp_s3_key_decode(k, key.n)) <= 0) {
                rc = fail(r, "%s: malformed URL encoding in \"%.80s\"", where(r, ".s3.object.key", p), key.s);
        } else {
                f.key = (str_t){k, (size_t)key_n};
                rc = emit(r, out, &f);
        }
        if (k != kbuf)
                free(k);
        return rc;
}

/* The top-level members that tell the forms apart, read in one pass. */
enum { ROOT_EVENT, ROOT_RECORDS, ROOT_EVENT_NAME, ROOT_KEY, ROOT_BUCKET, ROOT_SIMPLE_KEY, ROOT_FILE_TYPE, ROOT_N };
static const mmp_jkey_t root_keys[ROOT_N] = {
    [ROOT_EVENT] = MMP_JKEY("Event"),         [ROOT_RECORDS] = MMP_JKEY("Records"),
    [ROOT_EVENT_NAME] = MMP_JKEY("EventName"), [ROOT_KEY] = MMP_JKEY("Key"),
    [ROOT_BUCKET] = MMP_JKEY("bucket"),        [ROOT_SIMPLE_KEY] = MMP_JKEY("key"),
    [ROOT_FILE_TYPE] = MMP_JKEY("file_type")};

/* MinIO's envelope with no Records: EventName, and Key = "bucket/object"
 * (MinIO decodes the object name before writing Key: not decoded again). */
static int parse_minio_key(reader_t *r, const mmp_jtok_t **root, mmp_s3_events_t *out) {
        const char *slash;
        str_t name, key;
        fields_t f = {.size = -1, .original = {r->js->buf, r->js->len}};
        if (string_of(r, root[ROOT_EVENT_NAME], "EventName", 1, &name) || string_of(r, root[ROOT_KEY], "Key", 1, &key))
                return -1;
        if (classify(name, &f.kind, &f.event_name)) {
                mmp_debug("s3-event", "skipping a %s event", name.s);
                return 0;
        }
        if (!(slash = strchr(key.s, '/')) || slash == key.s || !slash[1])
                return fail(r, "Key: expected \"BUCKET/OBJECT\", got \"%.80s\"", key.s, NULL);
        f.bucket = (str_t){key.s, (size_t)(slash - key.s)};
        f.key = (str_t){slash + 1, key.n - f.bucket.n - 1};
        return emit(r, out, &f);
}

/* {"bucket": "b", "key": "k", "file_type": "..."}: the key is not URL-encoded. */
static int parse_simple(reader_t *r, const mmp_jtok_t **root, mmp_s3_events_t *out) {
        str_t file_type;
        fields_t f = {.kind = MMP_EVENT_CREATED,
                      .event_name = {"ObjectCreated", sizeof("ObjectCreated") - 1},
                      .size = -1,
                      .original = {r->js->buf, r->js->len}};
        if (string_of(r, root[ROOT_BUCKET], "bucket", 1, &f.bucket) ||
            string_of(r, root[ROOT_SIMPLE_KEY], "key", 1, &f.key) ||
            string_of(r, root[ROOT_FILE_TYPE], "file_type", 0, &file_type))
                return -1;
        /* "image/png" declares a content type; "image" or "pdf" is a hint kept
         * in the original only (routing goes by the bytes then). */
        if (file_type.s && strchr(file_type.s, '/'))
                f.content_type = file_type;
        return emit(r, out, &f);
}

int mmp_s3_events_parse(const char *payload, size_t len, mmp_s3_events_t *out, char *errstr,
                        size_t errstr_size) {
        mmp_jscan_t js;
        char text[1024];
        reader_t r = {errstr, errstr_size, &js, -1, text, 0, sizeof(text)};
        const mmp_jtok_t *root, *rv[ROOT_N], *records, *rec;
        size_t i;
        int rc = 0;

        memset(out, 0, sizeof(*out));
        if (mmp_jscan_parse(&js, payload, len, MMP_JSCAN_CONTAINER_ROOT)) {
                snprintf(errstr, errstr_size, "not JSON: %s", js.error);
                mmp_jscan_free(&js);
                return -1;
        }
        if (len >= sizeof(text) && !(r.text = malloc(len + 1))) {
                mmp_jscan_free(&js);
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        r.text_size = len >= sizeof(text) ? len + 1 : sizeof(text);
        root = &js.tok[0];
        mmp_jscan_getv(&js, root, root_keys, ROOT_N, rv);
        if (root->type != MMP_JSCAN_OBJECT) {
                rc = wrong_type(&r, "message", "a JSON object", root);
        } else if (rv[ROOT_EVENT] && mmp_jscan_streq(&js, rv[ROOT_EVENT], "s3:TestEvent", strlen("s3:TestEvent"))) {
                out->test_event = 1;
        } else if ((records = rv[ROOT_RECORDS]) && records->type != MMP_JSCAN_NULL) {
                if (records->type != MMP_JSCAN_ARRAY)
                        rc = wrong_type(&r, "Records", "an array", records);
                else
                        MMP_JSCAN_EACH(&js, records, rec, i) {
                                if ((rc = parse_record(&r, rec, i, out)))
                                        break;
                        }
        } else if (rv[ROOT_EVENT_NAME] || rv[ROOT_KEY]) {
                rc = parse_minio_key(&r, rv, out);
        } else if (rv[ROOT_BUCKET] || rv[ROOT_SIMPLE_KEY]) {
                rc = parse_simple(&r, rv, out);
        } else {
                rc = fail(&r, "%s", "not an S3 event notification (no Records, no EventName and Key, no bucket and key)",
                          NULL);
        }
        if (r.text != text)
                free(r.text);
        mmp_jscan_free(&js);
        if (rc)
                mmp_s3_events_clear(out);
        return rc ? -1 : 0;
}
