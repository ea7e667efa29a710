/*
 * S3 event notifications (AWS Records[], MinIO's variant, the simple
 * {"bucket","key","file_type"} form) turned into engine events. Pure
 * parsing: any thread.
 */
#include "util/jsonw.h"
#include "sources/s3_event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fetch/s3.h"
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
} reader_t;

static int fail(reader_t *r, const char *fmt, const char *a, const char *b) {
        snprintf(r->err, r->err_size, fmt, a, b);
        return -1;
}

static int wrong_type(reader_t *r, const char *path, const char *what, const json_t *v) {
        char got[48];
        mmp_json_excerpt(v, got);
        snprintf(r->err, r->err_size, "%s: expected %s, got %s", path, what, got);
        return -1;
}

/* obj.name as a string: *out NULL when absent and not required. */
static int get_string(reader_t *r, const json_t *obj, const char *name, const char *path, int required,
                      const char **out) {
        const json_t *v = json_object_get(obj, name);
        *out = NULL;
        if (!v || json_is_null(v))
                return required ? fail(r, "%s is missing", path, NULL) : 0;
        if (!json_is_string(v))
                return wrong_type(r, path, "a string", v);
        if (required && !json_string_length(v))
                return fail(r, "%s is empty", path, NULL);
        *out = json_string_value(v);
        return 0;
}

static int get_object(reader_t *r, const json_t *obj, const char *name, const char *path, const json_t **out) {
        const json_t *v = json_object_get(obj, name);
        if (!v)
                return fail(r, "%s is missing", path, NULL);
        if (!json_is_object(v))
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
        const json_t *original;
} fields_t;

static int push(mmp_s3_events_t *out, mmp_event_t *ev) {
        mmp_event_t **v = realloc(out->v, (out->n + 1) * sizeof(*v));
        if (!v)
                return -1;
        out->v = v;
        out->v[out->n++] = ev;
        return 0;
}

static int emit(reader_t *r, mmp_s3_events_t *out, const fields_t *f) {
        char *id = NULL, *url = NULL, *etag = NULL, ctype[128];
        const char *version = f->version_id && *f->version_id && strcmp(f->version_id, "null") ? f->version_id : NULL;
        mmp_event_t *ev = NULL;

        if (f->etag && *f->etag) {
                /* Some producers keep the HTTP header's quotes. */
                size_t n = strlen(f->etag);
                etag = n >= 2 && f->etag[0] == '"' && f->etag[n - 1] == '"' ? strndup(f->etag + 1, n - 2) : strdup(f->etag);
                if (!etag)
                        goto nomem;
        }
        if (!version)
                version = etag;
        if (asprintf(&url, "s3://%s/%s", f->bucket, f->key) < 0) {
                url = NULL;
                goto nomem;
        }
        if (version ? asprintf(&id, "%s@%s", url, version) < 0 : !(id = strdup(url))) {
                id = NULL;
                goto nomem;
        }
        if (!(ev = mmp_event_new(id, f->bucket, f->key)))
                goto nomem;
        ev->kind = f->kind;
        mmp_event_set(&ev->url, url);
        mmp_event_set(&ev->event_name, f->event_name);
        mmp_event_set(&ev->etag, etag);
        mmp_event_set(&ev->version, version);
        if (f->content_type && mmp_fetch_declared_type(f->content_type, ctype, sizeof(ctype)))
                mmp_event_set(&ev->content_type, ctype);
        ev->size = f->size;
        ev->time_ms = f->time_ms;
        ev->original = json_dumps(f->original, JSON_COMPACT);
        if (!ev->id || !ev->key || !ev->url || !ev->event_name || !ev->original || push(out, ev))
                goto nomem;
        free(id);
        free(url);
        free(etag);
        return 0;
nomem:
        mmp_event_unref(ev);
        free(id);
        free(url);
        free(etag);
        return fail(r, "%s", "out of memory", NULL);
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

static int parse_record(reader_t *r, const json_t *rec, size_t i, mmp_s3_events_t *out) {
        char p[96];
        const json_t *s3, *bucket, *object, *size;
        const char *name, *key, *time_s;
        fields_t f = {.size = -1, .original = rec};
        int rc;

#define AT(suffix) (snprintf(p, sizeof(p), "Records[%zu]%s", i, suffix), p)
        if (!json_is_object(rec))
                return wrong_type(r, AT(""), "an object", rec);
        if (get_string(r, rec, "eventName", AT(".eventName"), 1, &name))
                return -1;
        if (classify(name, &f.kind, &f.event_name)) {
                mmp_debug("s3-event", "Records[%zu]: skipping a %s event", i, name);
                return 0;
        }
        if (get_object(r, rec, "s3", AT(".s3"), &s3) || get_object(r, s3, "bucket", AT(".s3.bucket"), &bucket) ||
            get_string(r, bucket, "name", AT(".s3.bucket.name"), 1, &f.bucket) ||
            get_object(r, s3, "object", AT(".s3.object"), &object) ||
            get_string(r, object, "key", AT(".s3.object.key"), 1, &key) ||
            get_string(r, object, "eTag", AT(".s3.object.eTag"), 0, &f.etag) ||
            get_string(r, object, "versionId", AT(".s3.object.versionId"), 0, &f.version_id) ||
            get_string(r, object, "contentType", AT(".s3.object.contentType"), 0, &f.content_type) ||
            get_string(r, rec, "eventTime", AT(".eventTime"), 0, &time_s))
                return -1;
        if ((size = json_object_get(object, "size")) && !json_is_null(size)) {
                if (!json_is_integer(size) || json_integer_value(size) < 0)
                        return wrong_type(r, AT(".s3.object.size"), "a non-negative integer", size);
                f.size = json_integer_value(size);
        }
        if (time_s && iso8601_ms(time_s, &f.time_ms))
                return fail(r, "%s: expected an ISO 8601 time, got \"%.40s\"", AT(".eventTime"), time_s);
        if (!(f.key = strdup(key)))
                return fail(r, "%s", "out of memory", NULL);
        if (mmp_s3_key_decode(f.key) || !*f.key) {
                free(f.key);
                return fail(r, "%s: malformed URL encoding in \"%.80s\"", AT(".s3.object.key"), key);
        }
#undef AT
        rc = emit(r, out, &f);
        free(f.key);
        return rc;
}

/* MinIO's envelope with no Records: EventName, and Key = "bucket/object"
 * (MinIO decodes the object name before writing Key: not decoded again). */
static int parse_minio_key(reader_t *r, const json_t *root, mmp_s3_events_t *out) {
        const char *name, *key, *slash;
        fields_t f = {.size = -1, .original = root};
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
static int parse_simple(reader_t *r, const json_t *root, mmp_s3_events_t *out) {
        const char *key, *file_type;
        fields_t f = {.kind = MMP_EVENT_CREATED, .event_name = "ObjectCreated", .size = -1, .original = root};
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
        reader_t r = {errstr, errstr_size};
        json_error_t jerr;
        json_t *root;
        const json_t *records, *event;
        int rc = 0;

        memset(out, 0, sizeof(*out));
        if (!(root = json_loadb(payload, len, 0, &jerr))) {
                snprintf(errstr, errstr_size, "not JSON: line %d column %d: %s", jerr.line, jerr.column, jerr.text);
                return -1;
        }
        if (!json_is_object(root)) {
                rc = wrong_type(&r, "message", "a JSON object", root);
        } else if ((event = json_object_get(root, "Event")) && json_is_string(event) &&
                   !strcmp(json_string_value(event), "s3:TestEvent")) {
                out->test_event = 1;
        } else if ((records = json_object_get(root, "Records")) && !json_is_null(records)) {
                if (!json_is_array(records))
                        rc = wrong_type(&r, "Records", "an array", records);
                for (size_t i = 0; !rc && i < json_array_size(records); i++)
                        rc = parse_record(&r, json_array_get(records, i), i, out);
        } else if (json_object_get(root, "EventName") || json_object_get(root, "Key")) {
                rc = parse_minio_key(&r, root, out);
        } else if (json_object_get(root, "bucket") || json_object_get(root, "key")) {
                rc = parse_simple(&r, root, out);
        } else {
                rc = fail(&r, "%s", "not an S3 event notification (no Records, no EventName and Key, no bucket and key)",
                          NULL);
        }
        json_decref(root);
        if (rc)
                mmp_s3_events_clear(out);
        return rc ? -1 : 0;
}
