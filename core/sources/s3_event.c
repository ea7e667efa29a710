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

int mmp_s3_key_decode(char *key) {
        char *r = key, *w = key;
        while (*r) {
                if (*r == '+') {
                        *w++ = ' ';
                        r++;
                } else if (*r == '%') {
                        int hi, lo;
                        char c1 = r[1], c2 = c1 ? r[2] : '\0';
                        hi = c1 >= '0' && c1 <= '9' ? c1 - '0' : (c1 | 32) >= 'a' && (c1 | 32) <= 'f' ? (c1 | 32) - 'a' + 10 : -1;
                        lo = c2 >= '0' && c2 <= '9' ? c2 - '0' : (c2 | 32) >= 'a' && (c2 | 32) <= 'f' ? (c2 | 32) - 'a' + 10 : -1;
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
        return 0;
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

/* Value v (NULL when absent) of field path as a string: *out NULL when
 * absent and not required. */
static int string_of(reader_t *r, const mmp_jtok_t *v, const char *path, int required, const char **out) {
        char p[96];
        *out = NULL;
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
        *out = r->text + r->text_used;
        r->text_used += mmp_jscan_unescape(r->js, v, r->text + r->text_used) + 1;
        return 0;
}

/* obj.name as a string. */
static int get_string(reader_t *r, const mmp_jtok_t *obj, const char *name, const char *path, int required,
                      const char **out) {
        return string_of(r, mmp_jscan_gets(r->js, obj, name), path, required, out);
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
        const char *event_name, *bucket, *etag, *version_id, *content_type;
        char *key; /* decoded, owned */
        int64_t size, time_ms;
        const char *original; /* the record's JSON text in the message */
        size_t original_len;
} fields_t;

static int push(mmp_s3_events_t *out, mmp_event_t *ev) {
        mmp_event_t **v = realloc(out->v, (out->n + 1) * sizeof(*v));
        if (!v)
                return -1;
        out->v = v;
        out->v[out->n++] = ev;
        return 0;
}

/* a, b, c and d[0..nd) end to end, NUL-terminated, in buf[0..size) when
 * they fit, else in a new string (free() it when it is not buf); NULL when
 * out of memory. Its length goes to *len (unless NULL). */
static char *join4(char *buf, size_t size, const char *a, const char *b, const char *c, const char *d, size_t nd,
                   size_t *len) {
        size_t na = strlen(a), nb = strlen(b), nc = strlen(c);
        char *s = na + nb + nc + nd < size ? buf : malloc(na + nb + nc + nd + 1);
        if (s) {
                memcpy(s, a, na);
                memcpy(s + na, b, nb);
                memcpy(s + na + nb, c, nc);
                memcpy(s + na + nb + nc, d, nd);
                s[na + nb + nc + nd] = '\0';
                if (len)
                        *len = na + nb + nc + nd;
        }
        return s;
}

static int emit(reader_t *r, mmp_s3_events_t *out, const fields_t *f) {
        char url_buf[512], id_buf[600], *url = NULL, *id = NULL, ctype[128];
        const char *version = f->version_id && *f->version_id && strcmp(f->version_id, "null") ? f->version_id : NULL;
        const char *etag = f->etag && *f->etag ? f->etag : NULL;
        size_t etag_len = etag ? strlen(etag) : 0, extra, url_len;
        size_t name_len = strlen(f->event_name), version_len = version ? strlen(version) : 0, ctype_len;
        mmp_event_t *ev = NULL;
        int rc = -1;

        /* Some producers keep the HTTP header's quotes. */
        if (etag_len >= 2 && etag[0] == '"' && etag[etag_len - 1] == '"')
                etag++, etag_len -= 2;
        ctype[0] = '\0'; /* none declared, or none usable */
        if (f->content_type && !mmp_fetch_declared_type(f->content_type, ctype, sizeof(ctype)))
                ctype[0] = '\0';
        /* (No printf here: this runs for every record of every message.) */
        ctype_len = strlen(ctype);
        if (!(url = join4(url_buf, sizeof(url_buf), "s3://", f->bucket, "/", f->key, strlen(f->key), &url_len)) ||
            ((version || etag) && !(id = join4(id_buf, sizeof(id_buf), url, "@", "", version ? version : etag,
                                               version ? version_len : etag_len, NULL))))
                goto done;
        /* Everything below goes in the event's block, and what fetching adds. */
        extra = url_len + 1 + name_len + 1 + 2 * (etag_len + 1) + (version ? version_len + 1 : 0) + f->original_len + 1 +
                ctype_len + 1 + MMP_EVENT_FETCH_ROOM;
        if (!(ev = mmp_event_new(id ? id : url, f->bucket, f->key, extra)))
                goto done;
        ev->kind = f->kind;
        ev->size = f->size;
        ev->time_ms = f->time_ms;
        if (mmp_event_set_n(ev, &ev->url, url, url_len) || mmp_event_set_n(ev, &ev->event_name, f->event_name, name_len) ||
            (etag && mmp_event_set_n(ev, &ev->etag, etag, etag_len)) ||
            (version ? mmp_event_set_n(ev, &ev->version, version, version_len)
                     : mmp_event_set_n(ev, &ev->version, ev->etag, etag_len)) ||
            (*ctype && mmp_event_set_n(ev, &ev->content_type, ctype, ctype_len)) ||
            mmp_event_set_n(ev, &ev->original, f->original, f->original_len) || !ev->id || !ev->key || push(out, ev))
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
static int classify(const char *name, mmp_event_kind_t *kind, const char **bare) {
        if (!strncmp(name, "s3:", 3))
                name += 3;
        *bare = name;
        if (!strncmp(name, "ObjectCreated:", 14)) {
                *kind = MMP_EVENT_CREATED;
                return 0;
        }
        /* Expiry by a lifecycle rule removes the object just as a DELETE does. */
        if (!strncmp(name, "ObjectRemoved:", 14) || !strcmp(name, "LifecycleExpiration:Delete") ||
            !strcmp(name, "LifecycleExpiration:DeleteMarkerCreated")) {
                *kind = MMP_EVENT_REMOVED;
                return 0;
        }
        return 1;
}

static int parse_record(reader_t *r, const mmp_jtok_t *rec, size_t i, mmp_s3_events_t *out) {
        char p[96];
        const mmp_jtok_t *s3, *bucket, *object, *size;
        const char *name, *key, *time_s;
        fields_t f = {.size = -1};
        int rc;

        r->record = (long)i;
        if (rec->type != MMP_JSCAN_OBJECT)
                return wrong_type(r, "", "an object", rec);
        static const mmp_jkey_t rec_keys[] = {MMP_JKEY("eventName"), MMP_JKEY("s3"), MMP_JKEY("eventTime")};
        const mmp_jtok_t *rec_v[3];
        f.original = mmp_jscan_raw(r->js, rec, &f.original_len);
        mmp_jscan_getv(r->js, rec, rec_keys, 3, rec_v);
        if (string_of(r, rec_v[0], ".eventName", 1, &name))
                return -1;
        if (classify(name, &f.kind, &f.event_name)) {
                mmp_debug("s3-event", "Records[%zu]: skipping a %s event", i, name);
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
            get_string(r, bucket, "name", ".s3.bucket.name", 1, &f.bucket) ||
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
        if (time_s && iso8601_ms(time_s, &f.time_ms))
                return fail(r, "%s: expected an ISO 8601 time, got \"%.40s\"", where(r, ".eventTime", p), time_s);
        /* Decoded on the stack for the usual key (S3's limit is 1,024 bytes). */
        size_t n = strlen(key) + 1;
        char kbuf[1100];
        if (!(f.key = n <= sizeof(kbuf) ? memcpy(kbuf, key, n) : strdup(key)))
                return fail(r, "%s", "out of memory", NULL);
        if (mmp_s3_key_decode(f.key) || !*f.key)
                rc = fail(r, "%s: malformed URL encoding in \"%.80s\"", where(r, ".s3.object.key", p), key);
        else
                rc = emit(r, out, &f);
        if (f.key != kbuf)
                free(f.key);
        return rc;
}

/* MinIO's envelope with no Records: EventName, and Key = "bucket/object"
 * (MinIO decodes the object name before writing Key: not decoded again). */
static int parse_minio_key(reader_t *r, const mmp_jtok_t *root, mmp_s3_events_t *out) {
        const char *name, *key, *slash;
        fields_t f = {.size = -1, .original = r->js->buf, .original_len = r->js->len};
        int rc;
        if (get_string(r, root, "EventName", "EventName", 1, &name) || get_string(r, root, "Key", "Key", 1, &key))
                return -1;
        if (classify(name, &f.kind, &f.event_name)) {
                mmp_debug("s3-event", "skipping a %s event", name);
                return 0;
        }
        if (!(slash = strchr(key, '/')) || slash == key || !slash[1])
                return fail(r, "Key: expected \"BUCKET/OBJECT\", got \"%.80s\"", key, NULL);
        char *bucket = strndup(key, (size_t)(slash - key));
        if (!bucket || !(f.key = strdup(slash + 1))) {
                free(bucket);
                return fail(r, "%s", "out of memory", NULL);
        }
        f.bucket = bucket;
        rc = emit(r, out, &f);
        free(bucket);
        free(f.key);
        return rc;
}

/* {"bucket": "b", "key": "k", "file_type": "..."}: the key is not URL-encoded. */
static int parse_simple(reader_t *r, const mmp_jtok_t *root, mmp_s3_events_t *out) {
        const char *key, *file_type;
        fields_t f = {.kind = MMP_EVENT_CREATED,
                      .event_name = "ObjectCreated",
                      .size = -1,
                      .original = r->js->buf,
                      .original_len = r->js->len};
        int rc;
        if (get_string(r, root, "bucket", "bucket", 1, &f.bucket) || get_string(r, root, "key", "key", 1, &key) ||
            get_string(r, root, "file_type", "file_type", 0, &file_type))
                return -1;
        /* "image/png" declares a content type; "image" or "pdf" is a hint kept
         * in the original only (routing goes by the bytes then). */
        if (file_type && strchr(file_type, '/'))
                f.content_type = file_type;
        if (!(f.key = strdup(key)))
                return fail(r, "%s", "out of memory", NULL);
        rc = emit(r, out, &f);
        free(f.key);
        return rc;
}

int mmp_s3_events_parse(const char *payload, size_t len, mmp_s3_events_t *out, char *errstr,
                        size_t errstr_size) {
        mmp_jscan_t js;
        char text[1024];
        reader_t r = {errstr, errstr_size, &js, -1, text, 0, sizeof(text)};
        const mmp_jtok_t *root, *records, *rec, *event;
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
        if (root->type != MMP_JSCAN_OBJECT) {
                rc = wrong_type(&r, "message", "a JSON object", root);
        } else if ((event = mmp_jscan_gets(&js, root, "Event")) &&
                   mmp_jscan_streq(&js, event, "s3:TestEvent", strlen("s3:TestEvent"))) {
                out->test_event = 1;
        } else if ((records = mmp_jscan_gets(&js, root, "Records")) && records->type != MMP_JSCAN_NULL) {
                if (records->type != MMP_JSCAN_ARRAY)
                        rc = wrong_type(&r, "Records", "an array", records);
                else
                        MMP_JSCAN_EACH(&js, records, rec, i) {
                                if ((rc = parse_record(&r, rec, i, out)))
                                        break;
                        }
        } else if (mmp_jscan_gets(&js, root, "EventName") || mmp_jscan_gets(&js, root, "Key")) {
                rc = parse_minio_key(&r, root, out);
        } else if (mmp_jscan_gets(&js, root, "bucket") || mmp_jscan_gets(&js, root, "key")) {
                rc = parse_simple(&r, root, out);
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
