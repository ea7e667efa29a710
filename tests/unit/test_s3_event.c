/*
 * S3 event notifications: AWS Records[] (several per message, URL-encoded
 * keys, versions, removals, skipped kinds), s3:TestEvent, MinIO's forms,
 * the simple form, the exact reason for each malformed message, and each
 * event's original as the exact text of its record. Single-threaded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "sources/s3_event.h"

static char err[1024];

/* ev->original read back: the event keeps it as JSON text. json_decref() it. */
static json_t *original(const mmp_event_t *ev) {
        json_error_t jerr;
        json_t *o;
        assert_non_null(ev->original);
        if (!(o = json_loads(ev->original, 0, &jerr)))
                fail_msg("original is not JSON: %s\n%s", jerr.text, ev->original);
        return o;
}

static void parse_ok(const char *json, mmp_s3_events_t *out) {
        err[0] = '\0';
        if (mmp_s3_events_parse(json, strlen(json), out, err, sizeof(err)))
                fail_msg("parse failed: %s\n%s", err, json);
}

static void parse_bad(const char *json, const char *want) {
        mmp_s3_events_t out;
        err[0] = '\0';
        assert_int_equal(mmp_s3_events_parse(json, strlen(json), &out, err, sizeof(err)), -1);
        assert_string_equal(err, want);
        assert_int_equal(out.n, 0);
        assert_null(out.v);
}

/* One AWS record with the given name, key, size and extras (JSON fragments). */
static char *record(const char *name, const char *bucket, const char *key, const char *object_extra) {
        char *s;
        assert_true(asprintf(&s,
                             "{\"eventVersion\":\"2.1\",\"eventSource\":\"aws:s3\",\"awsRegion\":\"eu-west-1\","
                             "\"eventTime\":\"2024-01-02T03:04:05.678Z\",\"eventName\":\"%s\","
                             "\"s3\":{\"s3SchemaVersion\":\"1.0\",\"bucket\":{\"name\":\"%s\",\"arn\":\"arn:aws:s3:::%s\"},"
                             "\"object\":{\"key\":\"%s\"%s}}}",
                             name, bucket, bucket, key, object_extra) > 0);
        return s;
}

static void test_aws_single(void **state) {
        mmp_s3_events_t out;
        char *rec = record("ObjectCreated:Put", "media", "photos/cat.jpg",
                           ",\"size\":1024,\"eTag\":\"0123456789abcdef0123456789abcdef\",\"sequencer\":\"0A1B\"");
        char *msg;
        assert_true(asprintf(&msg, "{\"Records\":[%s]}", rec) > 0);
        parse_ok(msg, &out);
        assert_int_equal(out.test_event, 0);
        assert_int_equal(out.n, 1);
        mmp_event_t *ev = out.v[0];
        assert_int_equal(ev->kind, MMP_EVENT_CREATED);
        assert_string_equal(ev->bucket, "media");
        assert_string_equal(ev->key, "photos/cat.jpg");
        assert_string_equal(ev->url, "s3://media/photos/cat.jpg");
        assert_string_equal(ev->event_name, "ObjectCreated:Put");
        assert_string_equal(ev->etag, "0123456789abcdef0123456789abcdef");
        assert_string_equal(ev->version, "0123456789abcdef0123456789abcdef"); /* no versionId: the ETag */
        assert_string_equal(ev->id, "s3://media/photos/cat.jpg@0123456789abcdef0123456789abcdef");
        assert_int_equal(ev->size, 1024);
        assert_int_equal(ev->time_ms, 1704164645678LL); /* 2024-01-02T03:04:05.678Z */
        assert_null(ev->content_type);
        assert_int_equal(ev->source.type, MMP_SOURCE_NONE);
        /* original is the record itself, not the whole message, byte for byte */
        json_t *o = original(ev);
        assert_string_equal(json_string_value(json_object_get(o, "eventName")), "ObjectCreated:Put");
        assert_null(json_object_get(o, "Records"));
        json_decref(o);
        assert_string_equal(ev->original, rec);
        mmp_s3_events_clear(&out);
        assert_int_equal(out.n, 0);
        free(msg);
        free(rec);
}

static void test_aws_several_records(void **state) {
        mmp_s3_events_t out;
        char *a = record("ObjectCreated:Put", "b1", "a.txt", ",\"size\":1,\"eTag\":\"e1\",\"versionId\":\"v1\"");
        char *b = record("ObjectRemoved:Delete", "b2", "dir/b.txt", ",\"versionId\":\"v2\"");
        char *c = record("ObjectRestore:Completed", "b3", "c.txt", ",\"size\":3");
        char *d = record("s3:ObjectCreated:CompleteMultipartUpload", "b4", "d.bin", ",\"size\":4,\"eTag\":\"e4-2\"");
        char *e = record("ObjectRemoved:DeleteMarkerCreated", "b5", "e.txt", ",\"versionId\":\"null\"");
        char *msg;
        assert_true(asprintf(&msg, "{\"Records\":[%s,%s,%s,%s,%s]}", a, b, c, d, e) > 0);
        parse_ok(msg, &out);
        assert_int_equal(out.n, 4); /* the restore is skipped */

        assert_int_equal(out.v[0]->kind, MMP_EVENT_CREATED);
        assert_string_equal(out.v[0]->version, "v1");
        assert_string_equal(out.v[0]->etag, "e1");
        assert_string_equal(out.v[0]->id, "s3://b1/a.txt@v1");

        assert_int_equal(out.v[1]->kind, MMP_EVENT_REMOVED);
        assert_string_equal(out.v[1]->bucket, "b2");
        assert_string_equal(out.v[1]->key, "dir/b.txt");
        assert_string_equal(out.v[1]->event_name, "ObjectRemoved:Delete");
        assert_int_equal(out.v[1]->size, -1);
        assert_null(out.v[1]->etag);
        assert_string_equal(out.v[1]->id, "s3://b2/dir/b.txt@v2");

        /* "s3:" prefix (MinIO, EventBridge-style names) is dropped */
        assert_int_equal(out.v[2]->kind, MMP_EVENT_CREATED);
        assert_string_equal(out.v[2]->event_name, "ObjectCreated:CompleteMultipartUpload");
        assert_string_equal(out.v[2]->id, "s3://b4/d.bin@e4-2");
        assert_int_equal(out.v[2]->size, 4);

        /* versionId "null" (unversioned writes) names no version: no ETag either, so no '@' */
        assert_int_equal(out.v[3]->kind, MMP_EVENT_REMOVED);
        assert_null(out.v[3]->version);
        assert_string_equal(out.v[3]->id, "s3://b5/e.txt");

        /* each event's original is its own record's text */
        assert_string_equal(out.v[0]->original, a);
        assert_string_equal(out.v[1]->original, b);
        assert_string_equal(out.v[2]->original, d);
        assert_string_equal(out.v[3]->original, e);
        mmp_s3_events_clear(&out);
        free(msg);
        free(a), free(b), free(c), free(d), free(e);
}

static void test_key_decoding(void **state) {
        mmp_s3_events_t out;
        char *rec = record("ObjectCreated:Put", "b", "a%2Fb+c%C3%A9.txt", ",\"size\":5");
        char *msg;
        assert_true(asprintf(&msg, "{\"Records\":[%s]}", rec) > 0);
        parse_ok(msg, &out);
        assert_int_equal(out.n, 1);
        assert_string_equal(out.v[0]->key, "a/b c\xc3\xa9.txt");
        assert_string_equal(out.v[0]->url, "s3://b/a/b c\xc3\xa9.txt");
        assert_string_equal(out.v[0]->id, "s3://b/a/b c\xc3\xa9.txt");
        /* the original keeps the key as it came */
        json_t *o = original(out.v[0]);
        json_t *object = json_object_get(json_object_get(o, "s3"), "object");
        assert_string_equal(json_string_value(json_object_get(object, "key")), "a%2Fb+c%C3%A9.txt");
        json_decref(o);
        mmp_s3_events_clear(&out);
        free(msg);
        free(rec);

        char k1[] = "x%2bplus%20space+sp%7E", k2[] = "bad%2", k3[] = "bad%zz", k4[] = "nul%00", k5[] = "trail%";
        char k6[] = "plain/key.jpg", k7[] = "a%41", k8[] = "cut%4";
        assert_int_equal(mmp_s3_key_decode(k1, strlen(k1)), 16);
        assert_string_equal(k1, "x+plus space sp~");
        assert_int_equal(mmp_s3_key_decode(k2, strlen(k2)), -1);
        assert_int_equal(mmp_s3_key_decode(k3, strlen(k3)), -1);
        assert_int_equal(mmp_s3_key_decode(k4, strlen(k4)), -1);
        assert_int_equal(mmp_s3_key_decode(k5, strlen(k5)), -1);
        assert_int_equal(mmp_s3_key_decode(k6, strlen(k6)), 13);
        assert_string_equal(k6, "plain/key.jpg");
        assert_int_equal(mmp_s3_key_decode(k7, strlen(k7)), 2);
        assert_string_equal(k7, "aA");
        /* Only n bytes are read: an escape cut by the length is malformed. */
        assert_int_equal(mmp_s3_key_decode(k8, 4), -1);
        assert_int_equal(mmp_s3_key_decode(k8, 3), 3);
        assert_string_equal(k8, "cut");
}

static void test_test_event(void **state) {
        mmp_s3_events_t out;
        parse_ok("{\"Service\":\"Amazon S3\",\"Event\":\"s3:TestEvent\",\"Time\":\"2024-01-02T03:04:05.000Z\","
                 "\"Bucket\":\"media\",\"RequestId\":\"R\",\"HostId\":\"H\"}",
                 &out);
        assert_int_equal(out.test_event, 1);
        assert_int_equal(out.n, 0);
        mmp_s3_events_clear(&out);
        /* An empty Records list is a valid message with nothing to do. */
        parse_ok("{\"Records\":[]}", &out);
        assert_int_equal(out.test_event, 0);
        assert_int_equal(out.n, 0);
        mmp_s3_events_clear(&out);
}

static void test_minio(void **state) {
        mmp_s3_events_t out;
        /* MinIO's Kafka target: EventName, Key (decoded) and Records (encoded), with contentType */
        parse_ok("{\"EventName\":\"s3:ObjectCreated:Put\",\"Key\":\"photos/a b.png\",\"Records\":[{"
                 "\"eventVersion\":\"2.0\",\"eventSource\":\"minio:s3\",\"awsRegion\":\"\","
                 "\"eventTime\":\"2019-10-22T09:27:27Z\",\"eventName\":\"s3:ObjectCreated:Put\","
                 "\"s3\":{\"bucket\":{\"name\":\"photos\"},\"object\":{\"key\":\"a+b.png\",\"size\":224662,"
                 "\"eTag\":\"5fc7298143efe1276d39a3466d4e255f-1\",\"contentType\":\"image/png\","
                 "\"versionId\":\"1\",\"sequencer\":\"15CFEDF8D5304D1A\"}}}]}",
                 &out);
        assert_int_equal(out.n, 1);
        assert_string_equal(out.v[0]->bucket, "photos");
        assert_string_equal(out.v[0]->key, "a b.png");
        assert_string_equal(out.v[0]->content_type, "image/png");
        assert_string_equal(out.v[0]->version, "1");
        assert_string_equal(out.v[0]->event_name, "ObjectCreated:Put");
        assert_int_equal(out.v[0]->time_ms, 1571736447000LL);
        mmp_s3_events_clear(&out);

        /* A generic binary type says nothing: left for HEAD and libmagic */
        parse_ok("{\"Records\":[{\"eventName\":\"s3:ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},"
                 "\"object\":{\"key\":\"x\",\"contentType\":\"application/octet-stream\"}}}]}",
                 &out);
        assert_int_equal(out.n, 1);
        assert_null(out.v[0]->content_type);
        assert_int_equal(out.v[0]->time_ms, 0);
        mmp_s3_events_clear(&out);

        /* Without Records: Key split at the first '/', not decoded again (MinIO decoded it) */
        parse_ok("{\"EventName\":\"s3:ObjectRemoved:Delete\",\"Key\":\"bkt/dir/100%+sure.txt\"}", &out);
        assert_int_equal(out.n, 1);
        assert_int_equal(out.v[0]->kind, MMP_EVENT_REMOVED);
        assert_string_equal(out.v[0]->bucket, "bkt");
        assert_string_equal(out.v[0]->key, "dir/100%+sure.txt");
        assert_string_equal(out.v[0]->id, "s3://bkt/dir/100%+sure.txt");
        json_t *o = original(out.v[0]);
        assert_non_null(json_object_get(o, "EventName"));
        json_decref(o);
        assert_string_equal(out.v[0]->original,
                            "{\"EventName\":\"s3:ObjectRemoved:Delete\",\"Key\":\"bkt/dir/100%+sure.txt\"}");
        mmp_s3_events_clear(&out);

        parse_ok("{\"EventName\":\"s3:ObjectAccessed:Get\",\"Key\":\"bkt/x\"}", &out);
        assert_int_equal(out.n, 0);
        mmp_s3_events_clear(&out);
}

static void test_simple_form(void **state) {
        mmp_s3_events_t out;
        /* not URL-decoded; a file_type with '/' is the declared content type */
        parse_ok("{\"bucket\":\"in\",\"key\":\"docs/a+b%20c.pdf\",\"file_type\":\"application/pdf\"}", &out);
        assert_int_equal(out.n, 1);
        mmp_event_t *ev = out.v[0];
        assert_int_equal(ev->kind, MMP_EVENT_CREATED);
        assert_string_equal(ev->key, "docs/a+b%20c.pdf");
        assert_string_equal(ev->url, "s3://in/docs/a+b%20c.pdf");
        assert_string_equal(ev->id, "s3://in/docs/a+b%20c.pdf");
        assert_string_equal(ev->content_type, "application/pdf");
        assert_string_equal(ev->event_name, "ObjectCreated");
        assert_null(ev->version);
        assert_int_equal(ev->size, -1);
        json_t *o = original(ev);
        assert_string_equal(json_string_value(json_object_get(o, "file_type")), "application/pdf");
        json_decref(o);
        assert_string_equal(ev->original,
                            "{\"bucket\":\"in\",\"key\":\"docs/a+b%20c.pdf\",\"file_type\":\"application/pdf\"}");
        mmp_s3_events_clear(&out);

        /* a bare kind ("video") is kept in the original only */
        parse_ok("{\"bucket\":\"in\",\"key\":\"v.mp4\",\"file_type\":\"video\"}", &out);
        assert_int_equal(out.n, 1);
        assert_null(out.v[0]->content_type);
        o = original(out.v[0]);
        assert_string_equal(json_string_value(json_object_get(o, "file_type")), "video");
        json_decref(o);
        mmp_s3_events_clear(&out);

        parse_ok("{\"bucket\":\"in\",\"key\":\"k\"}", &out);
        assert_int_equal(out.n, 1);
        mmp_s3_events_clear(&out);
}

static void test_time_forms(void **state) {
        mmp_s3_events_t out;
        static const struct {
                const char *time;
                long long ms;
        } cases[] = {
            {"1970-01-01T00:00:00Z", 0},
            {"2024-02-29T23:59:59.999Z", 1709251199999LL},
            {"2024-01-02T04:04:05+01:00", 1704164645000LL},
            {"2024-01-02T03:04:05", 1704164645000LL},
            {"2024-01-02T03:04:05.5Z", 1704164645500LL},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *msg;
                assert_true(asprintf(&msg,
                                     "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"eventTime\":\"%s\","
                                     "\"s3\":{\"bucket\":{\"name\":\"b\"},\"object\":{\"key\":\"k\"}}}]}",
                                     cases[i].time) > 0);
                parse_ok(msg, &out);
                assert_int_equal(out.v[0]->time_ms, cases[i].ms);
                mmp_s3_events_clear(&out);
                free(msg);
        }
}

#define REC(name, object) \
        "{\"Records\":[{\"eventName\":" name ",\"s3\":{\"bucket\":{\"name\":\"b\"},\"object\":" object "}}]}"

static void test_malformed(void **state) {
        parse_bad("{\"Records\":[", "not JSON: line 1 column 12: ']' expected near end of file");
        parse_bad("", "not JSON: line 1 column 0: '[' or '{' expected near end of file");
        parse_bad("[1,2]", "message: expected a JSON object, got [1,2]");
        parse_bad("{\"hello\":1}",
                  "not an S3 event notification (no Records, no EventName and Key, no bucket and key)");
        parse_bad("{\"Records\":{}}", "Records: expected an array, got {}");
        parse_bad("{\"Records\":[7]}", "Records[0]: expected an object, got 7");
        parse_bad("{\"Records\":[{}]}", "Records[0].eventName is missing");
        parse_bad("{\"Records\":[{\"eventName\":5}]}", "Records[0].eventName: expected a string, got 5");
        parse_bad("{\"Records\":[{\"eventName\":\"ObjectCreated:Put\"}]}", "Records[0].s3 is missing");
        parse_bad("{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{},\"object\":{}}}]}",
                  "Records[0].s3.bucket.name is missing");
        parse_bad(REC("\"ObjectCreated:Put\"", "{}"), "Records[0].s3.object.key is missing");
        parse_bad(REC("\"ObjectCreated:Put\"", "{\"key\":\"\"}"), "Records[0].s3.object.key is empty");
        parse_bad(REC("\"ObjectCreated:Put\"", "{\"key\":[\"k\"]}"),
                  "Records[0].s3.object.key: expected a string, got [\"k\"]");
        parse_bad(REC("\"ObjectCreated:Put\"", "{\"key\":\"k\",\"size\":\"12\"}"),
                  "Records[0].s3.object.size: expected a non-negative integer, got \"12\"");
        parse_bad(REC("\"ObjectCreated:Put\"", "{\"key\":\"k\",\"size\":-1}"),
                  "Records[0].s3.object.size: expected a non-negative integer, got -1");
        parse_bad(REC("\"ObjectCreated:Put\"", "{\"key\":\"k\",\"eTag\":42}"),
                  "Records[0].s3.object.eTag: expected a string, got 42");
        parse_bad(REC("\"ObjectCreated:Put\"", "{\"key\":\"k\",\"versionId\":true}"),
                  "Records[0].s3.object.versionId: expected a string, got true");
        parse_bad(REC("\"ObjectCreated:Put\"", "{\"key\":\"bad%zzkey\"}"),
                  "Records[0].s3.object.key: malformed URL encoding in \"bad%zzkey\"");
        parse_bad("{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"eventTime\":\"yesterday\","
                  "\"s3\":{\"bucket\":{\"name\":\"b\"},\"object\":{\"key\":\"k\"}}}]}",
                  "Records[0].eventTime: expected an ISO 8601 time, got \"yesterday\"");
        parse_bad("{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":\"b\",\"object\":{}}}]}",
                  "Records[0].s3.bucket: expected an object, got \"b\"");
        /* one bad record fails the whole message (it goes to dead letters whole) */
        parse_bad("{\"Records\":[" "{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},"
                  "\"object\":{\"key\":\"ok\"}}},{\"eventName\":\"ObjectCreated:Put\"}]}",
                  "Records[1].s3 is missing");
        parse_bad("{\"EventName\":\"s3:ObjectCreated:Put\",\"Key\":\"nobucket\"}",
                  "Key: expected \"BUCKET/OBJECT\", got \"nobucket\"");
        parse_bad("{\"EventName\":\"s3:ObjectCreated:Put\"}", "Key is missing");
        parse_bad("{\"bucket\":\"b\"}", "key is missing");
        parse_bad("{\"key\":\"k\"}", "bucket is missing");
        parse_bad("{\"bucket\":\"b\",\"key\":3}", "key: expected a string, got 3");
        parse_bad("{\"bucket\":\"b\",\"key\":\"k\",\"file_type\":[]}", "file_type: expected a string, got []");

        /* what the scanner rejects, with line and column */
        parse_bad("5", "not JSON: line 1 column 1: '[' or '{' expected near '5'");
        parse_bad("{\"Records\":[1,]}", "not JSON: line 1 column 15: value expected near ']'");
        parse_bad("{} x", "not JSON: line 1 column 4: end of file expected near 'x'");
        parse_bad("{\n  \"Records\": [\n    {\"eventName\": tru}\n  ]\n}",
                  "not JSON: line 3 column 19: invalid literal near 'tru'");
        parse_bad("{\"bucket\":\"b\xc3\x28\"}",
                  "not JSON: line 1 column 13: invalid UTF-8 byte 0xc3 in a string near '\"b\\xc3'");
        /* valid JSON, but not as these fields */
        parse_bad(REC("\"ObjectCreated:Put\"", "{\"key\":\"k\",\"size\":99999999999999999999}"),
                  "Records[0].s3.object.size: expected a non-negative integer, got 99999999999999999999");
        parse_bad(REC("\"ObjectCreated:Put\"", "{\"key\":\"k\",\"size\":1.0}"),
                  "Records[0].s3.object.size: expected a non-negative integer, got 1.0");
        parse_bad(REC("\"ObjectCreated:Put\"", "{\"key\":\"a\\u0000b\"}"),
                  "Records[0].s3.object.key: holds \\u0000 (a NUL byte, not allowed here)");
        parse_bad(REC("\"ObjectCreated:Put\"", "{\"key\":\"k\",\"size\":[1, 2,\n 3]}"),
                  "Records[0].s3.object.size: expected a non-negative integer, got [1,2,3]");
}

/* Escaped keys and values, whitespace, repeated keys: read as jansson read
 * them; the original is the record's bytes as they came. */
static void test_escapes_and_layout(void **state) {
        mmp_s3_events_t out;
        const char *rec = "{\n    \"\\u0065ventName\" : \"ObjectCreated:\\u0050ut\",\n"
                          "    \"s3\": { \"bucket\": {\"name\": \"b\\/x\"},\n"
                          "            \"object\": {\"key\": \"old\",\n"
                          "                         \"key\": \"caf\\u00e9 \\ud83d\\ude00\", \"size\": 7 } }\n  }";
        char *msg;
        assert_true(asprintf(&msg, "{ \"Records\" : [ %s ] }\n", rec) > 0);
        parse_ok(msg, &out);
        assert_int_equal(out.n, 1);
        assert_string_equal(out.v[0]->event_name, "ObjectCreated:Put");
        assert_string_equal(out.v[0]->bucket, "b/x");
        assert_string_equal(out.v[0]->key, "caf\xc3\xa9 \xf0\x9f\x98\x80"); /* the last "key" wins */
        assert_int_equal(out.v[0]->size, 7);
        assert_string_equal(out.v[0]->original, rec);
        mmp_s3_events_clear(&out);
        free(msg);

        /* the simple form's original is the whole payload */
        parse_ok(" {\"bucket\":\"b\",\"key\":\"k\",\"note\":\"a\\u0000b\"}\n", &out);
        assert_int_equal(out.n, 1);
        assert_string_equal(out.v[0]->original, " {\"bucket\":\"b\",\"key\":\"k\",\"note\":\"a\\u0000b\"}\n");
        mmp_s3_events_clear(&out);

        /* not NUL-terminated: only len bytes are read */
        const char *two = "{\"bucket\":\"b\",\"key\":\"k\"}{\"bucket\"";
        assert_int_equal(mmp_s3_events_parse(two, strlen(two) - 9, &out, err, sizeof(err)), 0);
        assert_string_equal(out.v[0]->original, "{\"bucket\":\"b\",\"key\":\"k\"}");
        mmp_s3_events_clear(&out);
}

/* Messages past the scanner's inline tokens and the reader's stack buffer. */
static void test_large_message(void **state) {
        mmp_s3_events_t out;
        size_t cap = 64 * 1024, n = 0;
        char *msg = malloc(cap), *recs[50];
        n += (size_t)snprintf(msg + n, cap - n, "{\"Records\":[");
        for (int i = 0; i < 50; i++) {
                char key[32], extra[64];
                snprintf(key, sizeof(key), "dir/file%%20%d.bin", i);
                snprintf(extra, sizeof(extra), ",\"size\":%d,\"eTag\":\"e%d\"", i * 1000, i);
                recs[i] = record("ObjectCreated:Put", "bkt", key, extra);
                n += (size_t)snprintf(msg + n, cap - n, "%s%s", i ? "," : "", recs[i]);
        }
        n += (size_t)snprintf(msg + n, cap - n, "]}");
        parse_ok(msg, &out);
        assert_int_equal(out.n, 50);
        for (int i = 0; i < 50; i++) {
                char key[32];
                snprintf(key, sizeof(key), "dir/file %d.bin", i);
                assert_string_equal(out.v[i]->key, key);
                assert_int_equal(out.v[i]->size, i * 1000);
                assert_string_equal(out.v[i]->original, recs[i]);
                free(recs[i]);
        }
        mmp_s3_events_clear(&out);
        free(msg);
}

/* Strings longer than the stack buffers and the event's room stay whole, and
 * fields replaced later (as fetching does) past the room go to the heap
 * (run under ASan: nothing leaks, nothing is freed twice). */
static void test_long_strings(void **state) {
        mmp_s3_events_t out;
        char key[1501], version[701], extra[800], url[1600], id[2400], *rec, *msg;
        (void)state;
        memset(key, 'k', sizeof(key) - 1);
        key[sizeof(key) - 1] = '\0';
        memset(version, 'v', sizeof(version) - 1);
        version[sizeof(version) - 1] = '\0';
        snprintf(extra, sizeof(extra), ",\"eTag\":\"\\\"abc\\\"\",\"versionId\":\"%s\"", version);
        rec = record("ObjectCreated:Put", "bkt", key, extra);
        assert_true(asprintf(&msg, "{\"Records\":[%s]}", rec) > 0);
        parse_ok(msg, &out);
        assert_int_equal(out.n, 1);
        mmp_event_t *ev = out.v[0];
        snprintf(url, sizeof(url), "s3://bkt/%s", key);
        snprintf(id, sizeof(id), "%s@%s", url, version);
        assert_string_equal(ev->url, url);
        assert_string_equal(ev->id, id);
        assert_string_equal(ev->key, key);
        assert_string_equal(ev->etag, "abc"); /* the header's quotes taken off */
        assert_string_equal(ev->version, version);
        assert_string_equal(ev->original, rec);
        for (int i = 0; i < 20; i++) { /* far past the room: the heap, each old copy freed */
                assert_int_equal(mmp_event_set(ev, &ev->path, url), 0);
                assert_int_equal(mmp_event_set(ev, &ev->content_type, "image/png"), 0);
        }
        assert_int_equal(mmp_event_set(ev, &ev->version, ev->version), 0); /* set from itself */
        assert_string_equal(ev->version, version);
        assert_string_equal(ev->path, url);
        assert_int_equal(mmp_event_set(ev, &ev->path, NULL), 0);
        assert_null(ev->path);
        mmp_s3_events_clear(&out);
        free(rec);
        free(msg);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_aws_single),   cmocka_unit_test(test_aws_several_records),
            cmocka_unit_test(test_key_decoding), cmocka_unit_test(test_test_event),
            cmocka_unit_test(test_minio),        cmocka_unit_test(test_simple_form),
            cmocka_unit_test(test_time_forms),   cmocka_unit_test(test_malformed),
            cmocka_unit_test(test_escapes_and_layout), cmocka_unit_test(test_large_message),
            cmocka_unit_test(test_long_strings),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
