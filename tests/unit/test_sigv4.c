/*
 * SigV4: the engine's signed S3 GET/HEAD headers against botocore's for the
 * same request, credentials and time (tests/tools/sigv4_reference.py runs a
 * real boto3 client whose request is caught before it is sent), byte for
 * byte; then the same comparison on what actually leaves the engine, caught
 * by a one-connection-at-a-time HTTP listener in this test. Also AWS's own
 * published S3 example, which needs no Python. Single test thread plus the
 * listener thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fetch/fetch.h"
#include "fetch/s3.h"
#include "fetch/sigv4.h"

#define SCRIPT MMP_SOURCE_DIR "/tests/tools/sigv4_reference.py"
#define FIXED_TIME "20240102T030405Z"
#define FIXED_EPOCH 1704164645 /* 2024-01-02T03:04:05Z */
#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

static const char *python; /* a python3 that imports botocore, or NULL */

static int setup(void **state) {
        /* MMP_TEST_PYTHON picks one; else the first python3 that has botocore. */
        const char *candidates[] = {getenv("MMP_TEST_PYTHON"), "python3", "/usr/bin/python3"};
        char cmd[512];
        for (size_t i = 0; i < 3 && !python; i++) {
                if (!candidates[i] || !*candidates[i])
                        continue;
                snprintf(cmd, sizeof(cmd), "%s -c 'import botocore' >/dev/null 2>&1", candidates[i]);
                if (system(cmd) == 0)
                        python = candidates[i];
        }
        if (!python)
                fprintf(stderr, "test_sigv4: SKIP the botocore comparisons: no python3 with botocore "
                                "(install the Debian package python3-boto3)\n");
        /* Credentials come from the test, never from the machine. */
        unsetenv("AWS_PROFILE");
        unsetenv("AWS_SESSION_TOKEN");
        unsetenv("AWS_SECURITY_TOKEN");
        unsetenv("AWS_ENDPOINT_URL");
        unsetenv("AWS_ENDPOINT_URL_S3");
        unsetenv("AWS_REGION");
        unsetenv("AWS_DEFAULT_REGION");
        setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
        return 0;
}

/* One request as both sides see it. */
typedef struct spec {
        const char *method, *bucket, *key, *version_id, *region, *endpoint, *token;
        int path_style;
        int compare_url; /* botocore keeps an explicit default port in its URL; the engine drops it */
} spec_t;

/* botocore's answer for s, as a JSON object (caller decrefs). */
static json_t *botocore_sign(const spec_t *s) {
        char in[] = "/tmp/mmp-sigv4-XXXXXX", cmd[1024];
        json_t *spec = json_pack("{s:s, s:s, s:s, s:s?, s:s, s:s?, s:s, s:s, s:s, s:s?, s:s}", "method", s->method,
                                 "bucket", s->bucket, "key", s->key, "version_id", s->version_id, "region", s->region,
                                 "endpoint", s->endpoint, "addressing", s->path_style ? "path" : "virtual",
                                 "access_key", AKID, "secret_key", SECRET, "session_token", s->token, "time",
                                 FIXED_TIME);
        int fd = mkstemp(in);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(json_dump_file(spec, in, 0), 0);
        json_decref(spec);
        snprintf(cmd, sizeof(cmd), "%s %s < %s", python, SCRIPT, in);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        json_error_t jerr;
        json_t *out = json_loadf(p, 0, &jerr);
        int rc = pclose(p);
        unlink(in);
        if (!out || rc != 0)
                fail_msg("%s failed (exit %d): %s", cmd, rc, jerr.text);
        return out;
}

static mmp_s3_settings_t settings_for(const spec_t *s) {
        mmp_s3_settings_t st;
        char err[512];
        json_t *sec = json_pack("{s:s, s:b}", "region", s->region, "path_style", s->path_style);
        if (s->endpoint)
                json_object_set_new(sec, "endpoint", json_string(s->endpoint));
        if (mmp_s3_settings_parse(sec, "test", &st, err, sizeof(err)))
                fail_msg("settings: %s", err);
        json_decref(sec);
        return st;
}

static const char *botocore_header(const json_t *b, const char *name) {
        return json_string_value(json_object_get(json_object_get(b, "headers"), name));
}

/* The value of header `name` among "Name: value" lines, or NULL. */
static const char *line_value(char *const *lines, size_t n, const char *name) {
        size_t len = strlen(name);
        for (size_t i = 0; i < n; i++)
                if (!strncasecmp(lines[i], name, len) && lines[i][len] == ':')
                        return lines[i] + len + 2;
        return NULL;
}

/* Every signing header botocore sent must be sent by the engine, equal, and
 * the engine must send no signing header botocore did not. */
static void compare_headers(const json_t *b, char *const *lines, size_t n, const char *canonical) {
        static const char *const names[] = {"authorization", "x-amz-date", "x-amz-content-sha256",
                                            "x-amz-security-token"};
        for (size_t i = 0; i < 4; i++) {
                const char *want = botocore_header(b, names[i]), *got = line_value(lines, n, names[i]);
                if ((want == NULL) != (got == NULL) || (want && strcmp(want, got)))
                        fail_msg("%s differs:\n  botocore: %s\n  engine:   %s\n-- botocore's canonical request:\n%s\n"
                                 "-- the engine's:\n%s",
                                 names[i], want ? want : "(none)", got ? got : "(none)",
                                 json_string_value(json_object_get(b, "canonical_request")),
                                 canonical ? canonical : "(not known)");
        }
}

static const spec_t cases[] = {
    /* virtual-hosted on AWS, session token, a key needing encoding (space, '+', UTF-8) */
    {"GET", "my-bucket", "dir/a b+c \xc3\xa9.txt", NULL, "eu-west-1", NULL, "tok/en+=", 0, 1},
    /* path-style on an endpoint, no token */
    {"GET", "my-bucket", "plain.txt", NULL, "us-east-1", "http://127.0.0.1:9000", NULL, 1, 1},
    /* HEAD of one version, path-style */
    {"HEAD", "bkt", "v/x.bin", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nrjfkd", "us-east-1",
     "http://127.0.0.1:9000", "FwoGZXIvYXdzEJr//////////wEaDOSESSION", 1, 1},
    /* every character class S3 keys meet, dot segments kept as they are */
    {"GET", "bkt", "a/../b/./c d~!*'()&=;:@,$?#[]%.txt", NULL, "ap-southeast-2", NULL, NULL, 0, 1},
    /* us-east-1 virtual-hosted (regional name), a HEAD */
    {"HEAD", "bkt", "k", NULL, "us-east-1", NULL, NULL, 0, 1},
    /* a bucket with dots cannot be a TLS host label: both use path-style */
    {"GET", "my.dotted.bucket", "k.txt", NULL, "eu-west-1", NULL, NULL, 0, 1},
    /* legacy bucket name, path-style on AWS */
    {"GET", "Legacy_Bucket", "k", NULL, "us-east-1", NULL, NULL, 1, 1},
    /* China's partition */
    {"GET", "bkt", "k", NULL, "cn-north-1", NULL, NULL, 0, 1},
    /* an explicit default port: same Host, same signature (botocore's URL keeps ":80") */
    {"GET", "bkt", "k", NULL, "eu-west-1", "http://127.0.0.1:80", NULL, 1, 0},
    /* virtual-hosted on an endpoint */
    {"GET", "bkt", "k", NULL, "eu-west-1", "http://localhost:9000", NULL, 0, 1},
};

static void test_matches_botocore(void **state) {
        if (!python)
                skip();
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const spec_t *s = &cases[i];
                mmp_s3_settings_t st = settings_for(s);
                mmp_aws_credentials_t creds = {.access_key_id = AKID, .secret_access_key = SECRET,
                                               .session_token = (char *)s->token};
                mmp_s3_request_t r;
                char err[512];
                json_t *b = botocore_sign(s);

                if (mmp_s3_request_build(&st, s->method, s->bucket, s->key, s->version_id, &creds, FIXED_EPOCH, &r,
                                         err, sizeof(err)))
                        fail_msg("case %zu: %s", i, err);
                if (s->compare_url && strcmp(r.url, json_string_value(json_object_get(b, "url"))))
                        fail_msg("case %zu: URL differs:\n  botocore: %s\n  engine:   %s", i,
                                 json_string_value(json_object_get(b, "url")), r.url);
                if (strcmp(r.canonical_request, json_string_value(json_object_get(b, "canonical_request"))))
                        fail_msg("case %zu: canonical request differs:\n-- botocore:\n%s\n-- engine:\n%s", i,
                                 json_string_value(json_object_get(b, "canonical_request")), r.canonical_request);
                compare_headers(b, r.headers, r.n_headers, r.canonical_request);
                assert_string_equal(line_value(r.headers, r.n_headers, "x-amz-content-sha256"), MMP_SIGV4_EMPTY_SHA256);
                json_decref(b);
                mmp_s3_request_clear(&r);
                mmp_s3_settings_clear(&st);
        }
}

/* AWS's documented example (S3 API reference, "Signature Calculations for
 * the Authorization Header", GET Object with a Range header). */
static void test_aws_documented_example(void **state) {
        mmp_sigv4_header_t range = {"Range", "bytes=0-9"};
        mmp_sigv4_request_t req = {
            .method = "GET",
            .host = "examplebucket.s3.amazonaws.com",
            .path = "/test.txt",
            .headers = &range,
            .n_headers = 1,
            .region = "us-east-1",
            .service = "s3",
            .access_key_id = "AKIAIOSFODNN7EXAMPLE",
            .secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            .now = 1369353600, /* 20130524T000000Z */
        };
        mmp_sigv4_signed_t out;
        char err[256];
        assert_int_equal(mmp_sigv4_sign(&req, &out, err, sizeof(err)), 0);
        assert_string_equal(out.amz_date, "20130524T000000Z");
        assert_string_equal(out.authorization,
                            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
        mmp_sigv4_signed_clear(&out);

        /* bad input is refused, not signed */
        mmp_sigv4_header_t evil = {"X-Evil", "a\r\nInjected: 1"};
        req.headers = &evil;
        assert_int_equal(mmp_sigv4_sign(&req, &out, err, sizeof(err)), -1);
        mmp_sigv4_header_t dup = {"HOST", "other"};
        req.headers = &dup;
        assert_int_equal(mmp_sigv4_sign(&req, &out, err, sizeof(err)), -1);
}

static void test_uri_encode(void **state) {
        char *s = mmp_sigv4_uri_encode("a/b c+d~e_f.g-h\xc3\xa9%", 1);
        assert_string_equal(s, "a/b%20c%2Bd~e_f.g-h%C3%A9%25");
        free(s);
        s = mmp_sigv4_uri_encode("a/b=c", 0);
        assert_string_equal(s, "a%2Fb%3Dc");
        free(s);
}

/* ---- what goes on the wire ---- */

typedef struct listener {
        int fd, port, expect;
        char requests[4][8192]; /* the head of each request received */
        int got;
        pthread_t thread;
} listener_t;

static void *listen_run(void *arg) {
        listener_t *l = arg;
        for (; l->got < l->expect; l->got++) {
                int c = accept(l->fd, NULL, NULL);
                size_t n = 0;
                if (c < 0)
                        break;
                char *buf = l->requests[l->got];
                while (n < sizeof(l->requests[0]) - 1 && !strstr(buf, "\r\n\r\n")) {
                        ssize_t r = read(c, buf + n, sizeof(l->requests[0]) - 1 - n);
                        if (r <= 0)
                                break;
                        n += (size_t)r;
                        buf[n] = '\0';
                }
                const char *resp = !strncmp(buf, "HEAD ", 5)
                                       ? "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n"
                                         "ETag: \"abc\"\r\nConnection: close\r\n\r\n"
                                       : "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n"
                                         "ETag: \"abc\"\r\nConnection: close\r\n\r\nhello\n";
                if (write(c, resp, strlen(resp)) < 0)
                        perror("listener write");
                close(c);
        }
        return NULL;
}

static void listener_start(listener_t *l, int expect) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        memset(l, 0, sizeof(*l));
        l->expect = expect;
        assert_true((l->fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
        assert_int_equal(bind(l->fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(listen(l->fd, 4), 0);
        assert_int_equal(getsockname(l->fd, (struct sockaddr *)&a, &len), 0);
        l->port = ntohs(a.sin_port);
        assert_int_equal(pthread_create(&l->thread, NULL, listen_run, l), 0);
}

static void listener_stop(listener_t *l) {
        pthread_join(l->thread, NULL);
        close(l->fd);
}

/* The request's header lines, split in place. */
static size_t split_lines(char *req, char **lines, size_t max) {
        size_t n = 0;
        for (char *save = NULL, *t = strtok_r(req, "\r\n", &save); t && n < max; t = strtok_r(NULL, "\r\n", &save))
                lines[n++] = t;
        return n;
}

static void wire_case(int path_style, const char *declared_type) {
        listener_t l;
        char endpoint[64], cfgtext[512], err[512], *lines[32];
        int with_head = declared_type == NULL;
        const char *key = "dir/a b+c \xc3\xa9.txt";

        listener_start(&l, with_head ? 2 : 1);
        /* localhost and *.localhost reach 127.0.0.1 without DNS (curl resolves them itself) */
        snprintf(endpoint, sizeof(endpoint), "http://localhost:%d", l.port);
        snprintf(cfgtext, sizeof(cfgtext),
                 "{\"s3\": {\"endpoint\": \"%s\", \"region\": \"eu-west-1\", \"path_style\": %s,"
                 " \"retries\": {\"attempts\": 1}}}",
                 endpoint, path_style ? "true" : "false");
        mmp_config_t *cfg = mmp_config_load_string(cfgtext, "test", err, sizeof(err));
        assert_non_null(cfg);
        assert_int_equal(mmp_fetch_init(cfg, err, sizeof(err)), 0);
        setenv("AWS_ACCESS_KEY_ID", AKID, 1);
        setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
        setenv("AWS_SESSION_TOKEN", "tok/en+=", 1);
        mmp_s3_set_clock(FIXED_EPOCH);

        mmp_event_t *ev = mmp_event_new("wire", "bkt", key, 0);
        mmp_event_set(ev, &ev->url, "s3://bkt/dir/a b+c \xc3\xa9.txt");
        mmp_event_set(ev, &ev->content_type, declared_type);
        mmp_failure_t *f = mmp_fetch(ev);
        if (f)
                fail_msg("fetch: %s", f->message);
        listener_stop(&l);
        assert_int_equal(l.got, with_head ? 2 : 1);
        assert_int_equal(ev->size, 6);
        assert_string_equal(ev->etag, "abc");

        for (int i = 0; i < l.got; i++) {
                const char *method = with_head && i == 0 ? "HEAD" : "GET";
                spec_t s = {method, "bkt", key, NULL, "eu-west-1", endpoint, "tok/en+=", path_style, 1};
                size_t n = split_lines(l.requests[i], lines, 32);
                json_t *b = botocore_sign(&s);
                const char *url = json_string_value(json_object_get(b, "url"));
                const char *path = strchr(url + strlen("http://"), '/');
                char want_line[1024];
                snprintf(want_line, sizeof(want_line), "%s %s HTTP/1.1", method, path);
                assert_true(n > 0);
                assert_string_equal(lines[0], want_line);
                /* the Host on the wire is the one botocore signed */
                char want_host[256];
                snprintf(want_host, sizeof(want_host), "%.*s", (int)(path - url - 7), url + 7);
                assert_non_null(line_value(lines + 1, n - 1, "Host"));
                assert_string_equal(line_value(lines + 1, n - 1, "Host"), want_host);
                compare_headers(b, lines + 1, n - 1, NULL);
                json_decref(b);
        }
        mmp_event_unref(ev);
        mmp_s3_set_clock(0);
        mmp_fetch_shutdown();
        mmp_config_free(cfg);
        unsetenv("AWS_ACCESS_KEY_ID");
        unsetenv("AWS_SECRET_ACCESS_KEY");
        unsetenv("AWS_SESSION_TOKEN");
}

static void test_wire_virtual_get(void **state) {
        if (!python)
                skip();
        wire_case(0, "text/plain");
}

static void test_wire_path_head_then_get(void **state) {
        if (!python)
                skip();
        wire_case(1, NULL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_aws_documented_example), cmocka_unit_test(test_uri_encode),
            cmocka_unit_test(test_matches_botocore),       cmocka_unit_test(test_wire_virtual_get),
            cmocka_unit_test(test_wire_path_head_then_get),
        };
        return cmocka_run_group_tests(tests, setup, NULL);
}
