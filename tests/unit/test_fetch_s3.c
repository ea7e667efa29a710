/*
 * Object fetch from S3 and http(s), against real peers: an S3 stand-in
 * (moto_server, started here through tests/tools/s3_server.sh unless
 * MMP_TEST_S3_ENDPOINT names a running one) seeded with boto3, and
 * tests/tools/flaky_http_server.py, which fails on purpose (5xx, SlowDown,
 * stalls, oversized bodies). Also the "s3" config section's errors, the
 * shared credentials file and the backoff. Single test thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/config.h"
#include "fetch/credentials.h"
#include "fetch/fetch.h"
#include "fetch/retry.h"
#include "fetch/s3.h"
#include "util/sha256.h"
#include "util/time.h"

#define TOOLS MMP_SOURCE_DIR "/tests/tools"
#define BUCKET "mmp-test"
#define VBUCKET "mmp-versioned"

static char workdir[256];     /* TMPDIR of the fetches, and the servers' files */
static char s3_endpoint[128]; /* moto (or s3rver) */
static char s3_key[64] = "test", s3_secret[64] = "test"; /* what the stand-in accepts */
static int s3_started;        /* by this test (stopped at the end) */
static pid_t flaky_pid = -1;
static int flaky_port;
static const char *python;    /* a python3 with boto3 */
static char v1_id[256], v2_id[256];
static char err[2048];

/* ---- helpers ---- */

static char *read_file(const char *path, size_t *len) {
        FILE *f = fopen(path, "rb");
        char *buf = NULL;
        size_t cap = 0, n = 0, r;
        if (!f)
                return NULL;
        do {
                if (n + 65536 > cap && !(buf = realloc(buf, cap = cap * 2 + 65536)))
                        abort();
                r = fread(buf + n, 1, cap - n - 1, f);
                n += r;
        } while (r > 0);
        fclose(f);
        buf[n] = '\0';
        if (len)
                *len = n;
        return buf;
}

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

/* Runs a shell command and returns its stdout (malloc'd), or NULL on failure. */
static char *run_capture(const char *cmd) {
        FILE *p = popen(cmd, "r");
        char *out = NULL;
        size_t cap = 0, n = 0, r;
        if (!p)
                return NULL;
        do {
                if (n + 4096 > cap && !(out = realloc(out, cap = cap * 2 + 4096)))
                        abort();
                r = fread(out + n, 1, cap - n - 1, p);
                n += r;
        } while (r > 0);
        out[n] = '\0';
        if (pclose(p) != 0) {
                fprintf(stderr, "command failed: %s\n%s\n", cmd, out);
                free(out);
                return NULL;
        }
        return out;
}

/* A GET of the flaky server's bookkeeping endpoints. */
static char *flaky_query(const char *what, const char *path) {
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "curl -s --max-time 5 'http://127.0.0.1:%d/%s%s'", flaky_port, what, path);
        char *out = run_capture(cmd);
        assert_non_null(out);
        return out;
}

static void assert_count(const char *path, const char *want) {
        char *got = flaky_query("_count", path);
        if (strcmp(got, want))
                fail_msg("%s: expected %s, got %s", path, want, got);
        free(got);
}

static void start_flaky(void) {
        int out[2];
        char line[64] = "";
        assert_int_equal(pipe(out), 0);
        flaky_pid = fork();
        assert_true(flaky_pid >= 0);
        if (flaky_pid == 0) {
                dup2(out[1], 1);
                close(out[0]);
                close(out[1]);
                execlp("python3", "python3", TOOLS "/flaky_http_server.py", (char *)NULL);
                _exit(127);
        }
        close(out[1]);
        FILE *f = fdopen(out[0], "r");
        if (!fgets(line, sizeof(line), f) || sscanf(line, "port=%d", &flaky_port) != 1)
                fail_msg("flaky_http_server.py did not start (got \"%s\")", line);
        fclose(f);
}

/* boto3 seeding: buckets and objects the tests read. */
static const char seed_py[] =
    "import sys, struct, zlib, boto3, botocore\n"
    "ep = sys.argv[1]\n"
    "s3 = boto3.client('s3', endpoint_url=ep, region_name='us-east-1', aws_access_key_id=sys.argv[2],\n"
    "                  aws_secret_access_key=sys.argv[3])\n"
    "def bucket(name):\n"
    "    try:\n"
    "        s3.create_bucket(Bucket=name)\n"
    "    except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):\n"
    "        pass  # a shared stand-in seeded before\n"
    "bucket('" BUCKET "')\n"
    "put = lambda k, b, **kw: s3.put_object(Bucket='" BUCKET "', Key=k, Body=b, **kw)\n"
    "put('hello.txt', b'hello world\\n', ContentType='text/plain')\n"
    "put('dir/a b+c \\u00e9.txt', b'unicode key\\n', ContentType='text/plain; charset=utf-8')\n"
    "def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))\n"
    "png = b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 1, 1, 8, 2, 0, 0, 0)) + "
    "chunk(b'IDAT', zlib.compress(b'\\x00\\xff\\x00\\x00')) + chunk(b'IEND', b'')\n"
    "put('noext', png)\n"
    "put('mislabeled.png', b'this is plain text, not a picture\\n', ContentType='image/png')\n"
    "put('big.bin', b'\\x00' * (1024 * 1024 * 3 // 2), ContentType='application/x-big')\n"
    "bucket('" VBUCKET "')\n"
    "try:\n"
    "    s3.put_bucket_versioning(Bucket='" VBUCKET "', VersioningConfiguration={'Status': 'Enabled'})\n"
    "    v1 = s3.put_object(Bucket='" VBUCKET "', Key='v.txt', Body=b'version one\\n', ContentType='text/plain')\n"
    "    v2 = s3.put_object(Bucket='" VBUCKET "', Key='v.txt', Body=b'version two\\n', ContentType='text/plain')\n"
    "    print(v1.get('VersionId', '-'))\n"
    "    print(v2.get('VersionId', '-'))\n"
    "except botocore.exceptions.ClientError as e:  # s3rver has no versioning\n"
    "    print('-')\n"
    "    print('-')\n";

static void seed_s3(void) {
        char path[512], cmd[1024];
        snprintf(path, sizeof(path), "%s/seed.py", workdir);
        write_file(path, seed_py);
        snprintf(cmd, sizeof(cmd), "%s %s %s %s %s", python, path, s3_endpoint, s3_key, s3_secret);
        char *out = run_capture(cmd);
        if (!out)
                fail_msg("seeding the S3 stand-in failed: %s", cmd);
        assert_int_equal(sscanf(out, "%255s %255s", v1_id, v2_id), 2);
        free(out);
}

static int group_setup(void **state) {
        const char *candidates[] = {getenv("MMP_TEST_PYTHON"), "python3", "/usr/bin/python3"};
        char cmd[1024];
        snprintf(workdir, sizeof(workdir), "%s/mmp-fetch-s3.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(workdir))
                return -1;
        setenv("TMPDIR", workdir, 1);
        for (size_t i = 0; i < 3 && !python; i++) {
                if (!candidates[i] || !*candidates[i])
                        continue;
                snprintf(cmd, sizeof(cmd), "%s -c 'import boto3' >/dev/null 2>&1", candidates[i]);
                if (system(cmd) == 0)
                        python = candidates[i];
        }
        /* Nothing from the machine's AWS setup may leak in. */
        static const char *const vars[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                                           "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
                                           "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"};
        for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
                unsetenv(vars[i]);
        setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
        start_flaky();
        if (getenv("MMP_TEST_S3_ENDPOINT") && *getenv("MMP_TEST_S3_ENDPOINT")) {
                snprintf(s3_endpoint, sizeof(s3_endpoint), "%s", getenv("MMP_TEST_S3_ENDPOINT"));
                if (getenv("MMP_TEST_S3_ACCESS_KEY"))
                        snprintf(s3_key, sizeof(s3_key), "%s", getenv("MMP_TEST_S3_ACCESS_KEY"));
                if (getenv("MMP_TEST_S3_SECRET_KEY"))
                        snprintf(s3_secret, sizeof(s3_secret), "%s", getenv("MMP_TEST_S3_SECRET_KEY"));
        } else {
                snprintf(cmd, sizeof(cmd), "bash %s/s3_server.sh start %s/s3", TOOLS, workdir);
                char *out = run_capture(cmd), *ep;
                if (!out || !(ep = strstr(out, "endpoint="))) {
                        fprintf(stderr, "test_fetch_s3: cannot start an S3 stand-in: %s\n", cmd);
                        free(out);
                        return -1;
                }
                sscanf(ep, "endpoint=%127s", s3_endpoint);
                if ((ep = strstr(out, "access_key=")))
                        sscanf(ep, "access_key=%63s", s3_key);
                if ((ep = strstr(out, "secret_key=")))
                        sscanf(ep, "secret_key=%63s", s3_secret);
                free(out);
                s3_started = 1;
        }
        if (!python) {
                fprintf(stderr, "test_fetch_s3: no python3 with boto3 to seed the S3 stand-in "
                                "(install the Debian package python3-boto3)\n");
                return -1;
        }
        seed_s3();
        return 0;
}

static int group_teardown(void **state) {
        char cmd[1024];
        if (flaky_pid > 0) {
                kill(flaky_pid, SIGTERM);
                waitpid(flaky_pid, NULL, 0);
        }
        if (s3_started) {
                snprintf(cmd, sizeof(cmd), "bash %s/s3_server.sh stop %s/s3", TOOLS, workdir);
                if (system(cmd) != 0)
                        fprintf(stderr, "test_fetch_s3: stopping the S3 stand-in failed\n");
        }
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", workdir);
        if (system(cmd) != 0)
                fprintf(stderr, "test_fetch_s3: cannot remove %s\n", workdir);
        return 0;
}

/* Configures fetch with an "s3" section (JSON text) and env credentials
 * (the stand-in's when moto_creds, else made up). */
static mmp_config_t *configure_as(const char *s3_section, int moto_creds) {
        char text[2048];
        snprintf(text, sizeof(text), "{\"s3\": %s}", s3_section);
        mmp_config_t *cfg = mmp_config_load_string(text, "test.json", err, sizeof(err));
        if (!cfg)
                fail_msg("config: %s", err);
        if (mmp_fetch_init(cfg, err, sizeof(err)))
                fail_msg("mmp_fetch_init: %s", err);
        setenv("AWS_ACCESS_KEY_ID", moto_creds ? s3_key : "AKIDTEST", 1);
        setenv("AWS_SECRET_ACCESS_KEY", moto_creds ? s3_secret : "secret", 1);
        return cfg;
}

static mmp_config_t *configure(const char *s3_section) {
        return configure_as(s3_section, 0);
}

static void unconfigure(mmp_config_t *cfg) {
        mmp_fetch_shutdown();
        mmp_config_free(cfg);
        unsetenv("AWS_ACCESS_KEY_ID");
        unsetenv("AWS_SECRET_ACCESS_KEY");
}

static mmp_config_t *configure_moto(const char *extra) {
        char s[1024];
        snprintf(s, sizeof(s), "{\"endpoint\": \"%s\", \"retries\": {\"attempts\": 2, \"base_ms\": 1, \"cap_ms\": 5}%s}",
                 s3_endpoint, extra ? extra : "");
        return configure_as(s, 1);
}

static mmp_config_t *configure_flaky(const char *extra) {
        char s[1024];
        snprintf(s, sizeof(s),
                 "{\"endpoint\": \"http://127.0.0.1:%d\", \"retries\": {\"attempts\": 5, \"base_ms\": 1, \"cap_ms\": 5}%s}",
                 flaky_port, extra ? extra : "");
        return configure(s);
}

static mmp_event_t *s3_event(const char *bucket, const char *key, const char *content_type) {
        char url[1024];
        snprintf(url, sizeof(url), "s3://%s/%s", bucket, key);
        mmp_event_t *ev = mmp_event_new(url, bucket, key, 0);
        mmp_event_set(ev, &ev->url, url);
        mmp_event_set(ev, &ev->content_type, content_type);
        return ev;
}

static mmp_event_t *url_event(const char *url) {
        mmp_event_t *ev = mmp_event_new(url, "", url, 0);
        mmp_event_set(ev, &ev->url, url);
        return ev;
}

static void fetch_ok(mmp_event_t *ev) {
        mmp_failure_t *f = mmp_fetch(ev);
        if (f)
                fail_msg("%s: %s", ev->id, f->message);
}

/* Fetches ev expecting a failure; returns it (caller frees). */
static mmp_failure_t *fetch_fails(mmp_event_t *ev) {
        mmp_failure_t *f = mmp_fetch(ev);
        if (!f)
                fail_msg("%s: fetched, a failure was expected", ev->id);
        assert_int_equal(f->stage, MMP_STAGE_FETCH);
        return f;
}

static void assert_body(const mmp_event_t *ev, const char *want) {
        size_t n;
        char *got = read_file(ev->path, &n);
        assert_non_null(got);
        assert_int_equal(n, strlen(want));
        assert_memory_equal(got, want, n);
        assert_int_equal(ev->size, (int64_t)n);
        free(got);
}

static void md5_hex_of(const char *text, char out[33]) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "printf '%%s' '%s' | md5sum | cut -c1-32", text);
        char *o = run_capture(cmd);
        assert_non_null(o);
        snprintf(out, 33, "%s", o);
        free(o);
}

/* ---- S3 stand-in ---- */

static void test_get_with_head(void **state) {
        mmp_config_t *cfg = configure_moto(NULL);
        mmp_event_t *ev = s3_event(BUCKET, "hello.txt", NULL);
        char md5[33], path[4096];
        struct stat st;
        fetch_ok(ev);
        assert_body(ev, "hello world\n");
        md5_hex_of("hello world\n", md5);
        assert_string_equal(ev->etag, md5);
        assert_string_equal(ev->version, md5); /* unversioned: the ETag */
        assert_string_equal(ev->content_type, "text/plain");
        assert_string_equal(ev->detected_type, "text/plain");
        assert_int_equal(ev->content_type_mismatch, 0);
        assert_true(ev->time_ms > 0); /* from Last-Modified */
        /* the temp file lives in TMPDIR and dies with the event */
        assert_int_equal(strncmp(ev->path, workdir, strlen(workdir)), 0);
        assert_non_null(strstr(ev->path, ".txt"));
        snprintf(path, sizeof(path), "%s", ev->path);
        mmp_event_unref(ev);
        assert_int_equal(stat(path, &st), -1);
        assert_int_equal(errno, ENOENT);
        unconfigure(cfg);
}

static void test_key_needing_encoding(void **state) {
        mmp_config_t *cfg = configure_moto(NULL);
        mmp_event_t *ev = s3_event(BUCKET, "dir/a b+c \xc3\xa9.txt", NULL);
        fetch_ok(ev);
        assert_body(ev, "unicode key\n");
        assert_string_equal(ev->content_type, "text/plain"); /* "; charset=utf-8" dropped */
        mmp_event_unref(ev);
        /* the same object named only by its URL */
        ev = url_event("s3://" BUCKET "/dir/a b+c \xc3\xa9.txt");
        mmp_event_set(ev, &ev->bucket, "");
        fetch_ok(ev);
        assert_body(ev, "unicode key\n");
        mmp_event_unref(ev);
        unconfigure(cfg);
}

static void test_types(void **state) {
        mmp_config_t *cfg = configure_moto(NULL);
        /* stored as binary/octet-stream, no extension: libmagic decides */
        mmp_event_t *ev = s3_event(BUCKET, "noext", NULL);
        fetch_ok(ev);
        assert_string_equal(ev->detected_type, "image/png");
        assert_string_equal(ev->content_type, "image/png");
        assert_int_equal(ev->content_type_mismatch, 0);
        mmp_event_unref(ev);
        /* declared by S3 as a picture, the bytes are text: recorded, not guessed away */
        ev = s3_event(BUCKET, "mislabeled.png", NULL);
        fetch_ok(ev);
        assert_string_equal(ev->content_type, "image/png");
        assert_string_equal(ev->detected_type, "text/plain");
        assert_int_equal(ev->content_type_mismatch, 1);
        mmp_event_unref(ev);
        /* the event's own type wins over S3's */
        ev = s3_event(BUCKET, "hello.txt", "text/markdown");
        fetch_ok(ev);
        assert_string_equal(ev->content_type, "text/markdown");
        mmp_event_unref(ev);
        unconfigure(cfg);
}

static void test_not_found(void **state) {
        mmp_config_t *cfg = configure_moto(NULL);
        /* with and without HEAD first: the reason is S3's either way */
        for (int typed = 0; typed < 2; typed++) {
                mmp_event_t *ev = s3_event(BUCKET, "missing.txt", typed ? "text/plain" : NULL);
                mmp_failure_t *f = fetch_fails(ev);
                assert_string_equal(f->message, "s3://" BUCKET "/missing.txt: 404 NoSuchKey: The specified key does not exist.");
                assert_int_equal(f->code, MMP_ERR_NOT_FOUND);
                assert_int_equal(f->retriable, 0);
                assert_int_equal(f->attempts, 1);
                mmp_failure_free(f);
                mmp_event_unref(ev);
        }
        mmp_event_t *ev = s3_event("no-such-bucket", "k.txt", "text/plain");
        mmp_failure_t *f = fetch_fails(ev);
        assert_string_equal(f->message, "s3://no-such-bucket/k.txt: 404 NoSuchBucket: The specified bucket does not exist");
        assert_int_equal(f->code, MMP_ERR_NOT_FOUND);
        assert_int_equal(f->retriable, 0);
        mmp_failure_free(f);
        mmp_event_unref(ev);
        unconfigure(cfg);
}

static void test_size_limit(void **state) {
        mmp_config_t *cfg = configure_moto(", \"max_object_mb\": 1");
        /* refused from HEAD's Content-Length, and from GET's when typed */
        for (int typed = 0; typed < 2; typed++) {
                mmp_event_t *ev = s3_event(BUCKET, "big.bin", typed ? "application/x-big" : NULL);
                mmp_failure_t *f = fetch_fails(ev);
                assert_string_equal(f->message, "s3://" BUCKET "/big.bin: object is 1.5 MB, over s3.max_object_mb (1)");
                assert_int_equal(f->code, MMP_ERR_BAD_INPUT);
                assert_int_equal(f->retriable, 0);
                assert_int_equal(f->attempts, 1);
                mmp_failure_free(f);
                mmp_event_unref(ev);
        }
        unconfigure(cfg);
        /* under a larger limit it comes whole */
        cfg = configure_moto(", \"max_object_mb\": 2");
        mmp_event_t *ev = s3_event(BUCKET, "big.bin", NULL);
        fetch_ok(ev);
        assert_int_equal(ev->size, 1024 * 1024 * 3 / 2);
        assert_string_equal(ev->content_type, "application/x-big");
        mmp_event_unref(ev);
        unconfigure(cfg);
}

static void test_versions(void **state) {
        if (!strcmp(v1_id, "-")) {
                fprintf(stderr, "test_fetch_s3: SKIP versions: this S3 stand-in has no versioning\n");
                skip();
        }
        mmp_config_t *cfg = configure_moto(NULL);
        /* the event names the first version: that one is fetched, not the latest */
        mmp_event_t *ev = s3_event(VBUCKET, "v.txt", NULL);
        mmp_event_set(ev, &ev->version, v1_id);
        fetch_ok(ev);
        assert_body(ev, "version one\n");
        assert_string_equal(ev->version, v1_id);
        mmp_event_unref(ev);
        /* no version in the event: the latest, and S3's version id */
        ev = s3_event(VBUCKET, "v.txt", "text/plain");
        fetch_ok(ev);
        assert_body(ev, "version two\n");
        /* v2_id, unless another run seeding a shared stand-in put a newer one */
        assert_non_null(ev->version);
        assert_string_not_equal(ev->version, v1_id);
        assert_string_not_equal(ev->version, ev->etag);
        mmp_event_unref(ev);
        unconfigure(cfg);
}

/* ---- credentials ---- */

static void test_shared_credentials_file(void **state) {
        char path[512], section[1024];
        snprintf(path, sizeof(path), "%s/credentials", workdir);
        write_file(path, "# test credentials\n"
                         "[default]\n"
                         "aws_access_key_id = AKIDDEFAULT\n"
                         "aws_secret_access_key = nope\n"
                         "\n"
                         "[ci]\n"
                         "  AWS_ACCESS_KEY_ID=AKIDFROMFILE  \n"
                         "aws_secret_access_key = s3cr3t/with+chars\n"
                         "aws_session_token = tok\n");
        snprintf(section, sizeof(section), ", \"profile\": \"ci\", \"credentials_file\": \"%s\"", path);
        mmp_config_t *cfg = configure_flaky(section);
        unsetenv("AWS_ACCESS_KEY_ID");
        unsetenv("AWS_SECRET_ACCESS_KEY");
        mmp_event_t *ev = s3_event("ok", "cred.txt", "text/plain");
        fetch_ok(ev);
        mmp_event_unref(ev);
        char *a = flaky_query("_auth", "/ok/cred.txt");
        assert_non_null(strstr(a, "Credential=AKIDFROMFILE/"));
        free(a);
        /* a configured profile wins over keys in the environment, as in the SDKs */
        setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
        ev = s3_event("ok", "cred2.txt", "text/plain");
        fetch_ok(ev);
        mmp_event_unref(ev);
        a = flaky_query("_auth", "/ok/cred2.txt");
        assert_non_null(strstr(a, "Credential=AKIDFROMFILE/"));
        free(a);
        unconfigure(cfg);

        /* no profile section: environment keys, else AWS_PROFILE, else [default] */
        cfg = configure_flaky(NULL);
        setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
        ev = s3_event("ok", "cred3.txt", "text/plain");
        fetch_ok(ev);
        mmp_event_unref(ev);
        a = flaky_query("_auth", "/ok/cred3.txt");
        assert_non_null(strstr(a, "Credential=AKIDENV/"));
        free(a);
        unconfigure(cfg); /* credentials are cached until shutdown */
        cfg = configure_flaky(NULL);
        unsetenv("AWS_ACCESS_KEY_ID");
        unsetenv("AWS_SECRET_ACCESS_KEY");
        setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
        setenv("AWS_PROFILE", "ci", 1);
        ev = s3_event("ok", "cred4.txt", "text/plain");
        fetch_ok(ev);
        mmp_event_unref(ev);
        a = flaky_query("_auth", "/ok/cred4.txt");
        assert_non_null(strstr(a, "Credential=AKIDFROMFILE/"));
        free(a);
        unsetenv("AWS_PROFILE");
        setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
        unconfigure(cfg);
}

static void test_missing_credentials(void **state) {
        char path[512], section[1024], want[1024];
        mmp_config_t *cfg = configure_flaky(NULL);
        unsetenv("AWS_ACCESS_KEY_ID");
        unsetenv("AWS_SECRET_ACCESS_KEY");
        mmp_event_t *ev = s3_event("ok", "x.txt", "text/plain");
        mmp_failure_t *f = fetch_fails(ev);
        assert_string_equal(f->message, "s3://ok/x.txt: no AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                                        "are not set, and /nonexistent/credentials does not exist");
        assert_int_equal(f->code, MMP_ERR_CONFIG);
        assert_int_equal(f->retriable, 0);
        mmp_failure_free(f);
        /* half the pair in the environment */
        setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
        f = fetch_fails(ev);
        assert_string_equal(f->message, "s3://ok/x.txt: incomplete AWS credentials in the environment: "
                                        "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
        mmp_failure_free(f);
        mmp_event_unref(ev);
        unconfigure(cfg);

        snprintf(path, sizeof(path), "%s/credentials2", workdir);
        write_file(path, "[default]\naws_access_key_id = A\n[half]\naws_access_key_id = B\n");
        snprintf(section, sizeof(section), ", \"profile\": \"prod\", \"credentials_file\": \"%s\"", path);
        cfg = configure_flaky(section);
        ev = s3_event("ok", "x.txt", "text/plain");
        f = fetch_fails(ev);
        snprintf(want, sizeof(want), "s3://ok/x.txt: no AWS credentials: %s has no [prod] profile", path);
        assert_string_equal(f->message, want);
        mmp_failure_free(f);
        mmp_event_unref(ev);
        unconfigure(cfg);

        snprintf(section, sizeof(section), ", \"profile\": \"half\", \"credentials_file\": \"%s\"", path);
        cfg = configure_flaky(section);
        ev = s3_event("ok", "x.txt", "text/plain");
        f = fetch_fails(ev);
        snprintf(want, sizeof(want), "s3://ok/x.txt: no AWS credentials: %s: profile [half] lacks aws_secret_access_key",
                 path);
        assert_string_equal(f->message, want);
        mmp_failure_free(f);
        mmp_event_unref(ev);
        unconfigure(cfg);
}

/* ---- failures and retries (flaky server) ---- */

static void test_head_only_when_untyped(void **state) {
        mmp_config_t *cfg = configure_flaky(NULL);
        mmp_event_t *ev = s3_event("ok", "typed.txt", "text/plain");
        fetch_ok(ev);
        assert_count("/ok/typed.txt", "GET=1 HEAD=0");
        assert_body(ev, "hello from typed.txt\n");
        assert_string_equal(ev->etag, "etag-typed.txt");
        assert_string_equal(ev->version, "etag-typed.txt");
        assert_int_equal(ev->time_ms, 1704164645000LL);
        mmp_event_unref(ev);
        ev = s3_event("ok", "untyped.png", NULL);
        fetch_ok(ev);
        assert_count("/ok/untyped.png", "GET=1 HEAD=1");
        assert_string_equal(ev->content_type, "image/png"); /* from HEAD */
        assert_string_equal(ev->detected_type, "text/plain");
        assert_int_equal(ev->content_type_mismatch, 1);
        mmp_event_unref(ev);
        /* HEAD says octet-stream: the extension declares */
        ev = s3_event("ok", "untyped.json", NULL);
        fetch_ok(ev);
        assert_string_equal(ev->content_type, "application/json");
        mmp_event_unref(ev);
        unconfigure(cfg);
}

static void test_retries_then_success(void **state) {
        mmp_config_t *cfg = configure_flaky(NULL);
        mmp_event_t *ev = s3_event("flaky", "503x2-SlowDown/a.txt", "text/plain");
        fetch_ok(ev);
        assert_count("/flaky/503x2-SlowDown/a.txt", "GET=3 HEAD=0");
        assert_body(ev, "hello from a.txt\n");
        mmp_event_unref(ev);
        /* HEAD is retried as well */
        ev = s3_event("flaky", "500x2-InternalError/b.txt", NULL);
        fetch_ok(ev);
        assert_count("/flaky/500x2-InternalError/b.txt", "GET=1 HEAD=3");
        mmp_event_unref(ev);
        /* RequestTimeout comes as a 400 and is still worth another try; so are 429 and bare 502 */
        ev = s3_event("flaky", "400x1-RequestTimeout/c.txt", "text/plain");
        fetch_ok(ev);
        assert_count("/flaky/400x1-RequestTimeout/c.txt", "GET=2 HEAD=0");
        mmp_event_unref(ev);
        ev = s3_event("flaky", "429x1/d.txt", "text/plain");
        fetch_ok(ev);
        assert_count("/flaky/429x1/d.txt", "GET=2 HEAD=0");
        mmp_event_unref(ev);
        ev = s3_event("flaky", "502x1/e.txt", "text/plain");
        fetch_ok(ev);
        assert_count("/flaky/502x1/e.txt", "GET=2 HEAD=0");
        mmp_event_unref(ev);
        unconfigure(cfg);
}

static void test_retry_after(void **state) {
        char section[256];
        snprintf(section, sizeof(section), "{\"endpoint\": \"http://127.0.0.1:%d\", "
                                           "\"retries\": {\"attempts\": 3, \"base_ms\": 1, \"cap_ms\": 3000}}",
                 flaky_port);
        mmp_config_t *cfg = configure(section);
        /* base_ms 1 alone would retry within milliseconds: the server's 1 s is honoured */
        mmp_event_t *ev = s3_event("retryafter", "1/a.txt", "text/plain");
        int64_t start = mmp_now_ms();
        fetch_ok(ev);
        int64_t took = mmp_now_ms() - start;
        assert_true(took >= 1000);
        assert_true(took < 3000);
        assert_count("/retryafter/1/a.txt", "GET=2 HEAD=0");
        mmp_event_unref(ev);
        unconfigure(cfg);
}

static void test_retries_exhausted(void **state) {
        char section[256];
        snprintf(section, sizeof(section), "{\"endpoint\": \"http://127.0.0.1:%d\", "
                                           "\"retries\": {\"attempts\": 3, \"base_ms\": 1, \"cap_ms\": 5}}",
                 flaky_port);
        mmp_config_t *cfg = configure(section);
        mmp_event_t *ev = s3_event("flaky", "503x9-SlowDown/a.txt", "text/plain");
        mmp_failure_t *f = fetch_fails(ev);
        assert_string_equal(f->message, "s3://flaky/503x9-SlowDown/a.txt: 503 SlowDown: Please reduce your request rate."
                                        " (gave up after 3 attempts)");
        assert_int_equal(f->code, MMP_ERR_IO);
        assert_int_equal(f->retriable, 1);
        assert_int_equal(f->attempts, 3);
        assert_count("/flaky/503x9-SlowDown/a.txt", "GET=3 HEAD=0");
        mmp_failure_free(f);
        mmp_event_unref(ev);
        /* permanent after a retriable one: attempts still counted */
        ev = s3_event("status", "403-AccessDenied/b.txt", "text/plain");
        f = fetch_fails(ev);
        assert_string_equal(f->message, "s3://status/403-AccessDenied/b.txt: 403 AccessDenied: Access Denied");
        assert_int_equal(f->code, MMP_ERR_IO);
        assert_int_equal(f->retriable, 0);
        assert_int_equal(f->attempts, 1);
        mmp_failure_free(f);
        mmp_event_unref(ev);
        unconfigure(cfg);
}

static void test_connection_refused(void **state) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        char section[256];
        /* a port nobody listens on: bound, then closed */
        int s = socket(AF_INET, SOCK_STREAM, 0);
        assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
        close(s);
        snprintf(section, sizeof(section), "{\"endpoint\": \"http://127.0.0.1:%d\", "
                                           "\"retries\": {\"attempts\": 3, \"base_ms\": 1, \"cap_ms\": 5}}",
                 ntohs(a.sin_port));
        mmp_config_t *cfg = configure(section);
        mmp_event_t *ev = s3_event("b", "k.txt", "text/plain");
        mmp_failure_t *f = fetch_fails(ev);
        assert_int_equal(f->retriable, 1);
        assert_int_equal(f->attempts, 3);
        assert_int_equal(f->code, MMP_ERR_IO);
        /* curl's own words, which vary between its versions, then ours */
        assert_non_null(strstr(f->message, "s3://b/k.txt: Failed to connect to 127.0.0.1 port"));
        assert_non_null(strstr(f->message, " (gave up after 3 attempts)"));
        mmp_failure_free(f);
        mmp_event_unref(ev);
        unconfigure(cfg);
}

static void test_stall(void **state) {
        char section[256];
        snprintf(section, sizeof(section), "{\"endpoint\": \"http://127.0.0.1:%d\", \"timeout_ms\": 300, "
                                           "\"retries\": {\"attempts\": 2, \"base_ms\": 1, \"cap_ms\": 5}}",
                 flaky_port);
        mmp_config_t *cfg = configure(section);
        mmp_event_t *ev = s3_event("hang", "4000/a.txt", "text/plain");
        mmp_failure_t *f = fetch_fails(ev);
        assert_string_equal(f->message, "s3://hang/4000/a.txt: no data for 300 ms (s3.timeout_ms) (gave up after 2 attempts)");
        assert_int_equal(f->code, MMP_ERR_TIMEOUT);
        assert_int_equal(f->retriable, 1);
        assert_int_equal(f->attempts, 2);
        mmp_failure_free(f);
        mmp_event_unref(ev);
        unconfigure(cfg);
}

/* ---- plain http(s) ---- */

static void test_http(void **state) {
        char url[256], hex[65];
        mmp_config_t *cfg = configure_flaky(", \"max_object_mb\": 1");
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok/page.txt?x=1", flaky_port);
        mmp_event_t *ev = url_event(url);
        fetch_ok(ev);
        assert_body(ev, "hello from page.txt\n");
        assert_string_equal(ev->etag, "etag-page.txt");
        assert_string_equal(ev->version, "etag-page.txt");
        assert_string_equal(ev->content_type, "text/plain");
        assert_non_null(strstr(ev->path, ".txt"));
        mmp_event_unref(ev);
        /* no ETag: the content's SHA-256, as for files */
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/noetag/n.txt", flaky_port);
        ev = url_event(url);
        fetch_ok(ev);
        uint8_t d[32];
        mmp_sha256("hello from n.txt\n", strlen("hello from n.txt\n"), d);
        mmp_hex(d, 32, hex);
        assert_string_equal(ev->etag, hex);
        mmp_event_unref(ev);
        /* redirects are followed; retries as for S3 */
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/redirect/r.txt", flaky_port);
        ev = url_event(url);
        fetch_ok(ev);
        assert_body(ev, "hello from r.txt\n");
        mmp_event_unref(ev);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/flaky/503x1/h.txt", flaky_port);
        ev = url_event(url);
        fetch_ok(ev);
        assert_count("/flaky/503x1/h.txt", "GET=2 HEAD=0");
        mmp_event_unref(ev);
        /* 404 without S3's XML */
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/flaky/404x9/gone.txt", flaky_port);
        ev = url_event(url);
        mmp_failure_t *f = fetch_fails(ev);
        char want[512];
        snprintf(want, sizeof(want), "%s: HTTP 404 Not Found", url);
        assert_string_equal(f->message, want);
        assert_int_equal(f->code, MMP_ERR_NOT_FOUND);
        assert_int_equal(f->retriable, 0);
        mmp_failure_free(f);
        mmp_event_unref(ev);
        /* a body with no Content-Length is cut at the limit */
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/big/3000000/b.bin", flaky_port);
        ev = url_event(url);
        f = fetch_fails(ev);
        snprintf(want, sizeof(want), "%s: object is over 1 MB, over s3.max_object_mb (1)", url);
        assert_string_equal(f->message, want);
        assert_int_equal(f->code, MMP_ERR_BAD_INPUT);
        assert_int_equal(f->retriable, 0);
        mmp_failure_free(f);
        mmp_event_unref(ev);
        unconfigure(cfg);
}

static void test_unsupported_url(void **state) {
        mmp_event_t *ev = url_event("ftp://example.com/x");
        mmp_failure_t *f = fetch_fails(ev);
        assert_int_equal(f->code, MMP_ERR_UNSUPPORTED);
        mmp_failure_free(f);
        mmp_event_unref(ev);
        ev = url_event("s3://bucket-only");
        mmp_event_set(ev, &ev->bucket, "");
        f = fetch_fails(ev);
        assert_string_equal(f->message, "s3://bucket-only: expected s3://BUCKET/KEY");
        mmp_failure_free(f);
        mmp_event_unref(ev);
}

/* ---- config, backoff, credentials file ---- */

static void expect_config_error(const char *section, const char *want) {
        char text[1024];
        snprintf(text, sizeof(text), "{\"s3\": %s}", section);
        mmp_config_t *cfg = mmp_config_load_string(text, "test.json", err, sizeof(err));
        assert_non_null(cfg);
        err[0] = '\0';
        assert_int_equal(mmp_fetch_init(cfg, err, sizeof(err)), -1);
        assert_string_equal(err, want);
        mmp_config_free(cfg);
}

static void test_config_errors(void **state) {
        expect_config_error("5", "test.json: s3: expected an object, got 5");
        expect_config_error("{\"region\": 5}", "test.json: s3.region: expected a non-empty string, got 5");
        expect_config_error("{\"regoin\": \"x\"}",
                            "test.json: unknown key \"s3.regoin\" (known: region, endpoint, path_style, profile, "
                            "credentials_file, max_object_mb, timeout_ms, retries)");
        expect_config_error("{\"endpoint\": \"127.0.0.1:9000\"}",
                            "test.json: s3.endpoint: expected an http:// or https:// URL with no path "
                            "(http://127.0.0.1:9000), got \"127.0.0.1:9000\"");
        expect_config_error("{\"endpoint\": \"http://h:9000/prefix\"}",
                            "test.json: s3.endpoint: expected an http:// or https:// URL with no path "
                            "(http://127.0.0.1:9000), got \"http://h:9000/prefix\"");
        expect_config_error("{\"path_style\": \"yes\"}", "test.json: s3.path_style: expected true or false, got \"yes\"");
        expect_config_error("{\"max_object_mb\": 0}",
                            "test.json: s3.max_object_mb: expected an integer from 1 to 1048576, got 0");
        expect_config_error("{\"timeout_ms\": 1.5}",
                            "test.json: s3.timeout_ms: expected an integer from 1 to 2147483647, got 1.5");
        expect_config_error("{\"retries\": []}", "test.json: s3.retries: expected an object, got []");
        expect_config_error("{\"retries\": {\"attempts\": 0}}",
                            "test.json: s3.retries.attempts: expected an integer from 1 to 100, got 0");
        expect_config_error("{\"retries\": {\"tries\": 3}}",
                            "test.json: unknown key \"s3.retries.tries\" (known: attempts, base_ms, cap_ms)");
        expect_config_error("{\"retries\": {\"base_ms\": 500, \"cap_ms\": 100}}",
                            "test.json: s3.retries.cap_ms: expected at least s3.retries.base_ms (500), got 100");
        expect_config_error("{\"profile\": \"\"}", "test.json: s3.profile: expected a non-empty string, got \"\"");
}

static void test_settings_defaults(void **state) {
        mmp_s3_settings_t s;
        assert_int_equal(mmp_s3_settings_parse(NULL, "x", &s, err, sizeof(err)), 0);
        assert_string_equal(s.region, "us-east-1");
        assert_null(s.endpoint);
        assert_int_equal(s.path_style, 0);
        assert_int_equal(s.max_object_bytes, 1024LL * 1024 * 1024);
        assert_int_equal(s.timeout_ms, 60000);
        assert_int_equal(s.retry.attempts, 5);
        assert_int_equal(s.retry.base_ms, 100);
        assert_int_equal(s.retry.cap_ms, 10000);
        mmp_s3_settings_clear(&s);

        setenv("AWS_DEFAULT_REGION", "eu-central-1", 1);
        assert_int_equal(mmp_s3_settings_parse(NULL, "x", &s, err, sizeof(err)), 0);
        assert_string_equal(s.region, "eu-central-1");
        mmp_s3_settings_clear(&s);
        setenv("AWS_REGION", "ap-south-1", 1); /* AWS_REGION first */
        assert_int_equal(mmp_s3_settings_parse(NULL, "x", &s, err, sizeof(err)), 0);
        assert_string_equal(s.region, "ap-south-1");
        mmp_s3_settings_clear(&s);
        unsetenv("AWS_REGION");
        unsetenv("AWS_DEFAULT_REGION");

        /* an endpoint makes path-style the default; the default port is dropped */
        json_t *sec = json_pack("{s:s}", "endpoint", "HTTP://Minio.local:80/");
        assert_int_equal(mmp_s3_settings_parse(sec, "x", &s, err, sizeof(err)), 0);
        assert_string_equal(s.endpoint, "http://minio.local");
        assert_int_equal(s.path_style, 1);
        mmp_s3_settings_clear(&s);
        json_decref(sec);
        sec = json_pack("{s:s, s:b}", "endpoint", "https://s3.example.com:9443", "path_style", 0);
        assert_int_equal(mmp_s3_settings_parse(sec, "x", &s, err, sizeof(err)), 0);
        assert_string_equal(s.endpoint, "https://s3.example.com:9443");
        assert_int_equal(s.path_style, 0);
        mmp_s3_settings_clear(&s);
        json_decref(sec);

        setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000", 1);
        assert_int_equal(mmp_s3_settings_parse(NULL, "x", &s, err, sizeof(err)), 0);
        assert_string_equal(s.endpoint, "http://127.0.0.1:9000");
        assert_int_equal(s.path_style, 1);
        mmp_s3_settings_clear(&s);
        unsetenv("AWS_ENDPOINT_URL_S3");
}

static void test_backoff(void **state) {
        mmp_retry_policy_t p = {5, 100, 1000};
        int distinct = 0;
        int64_t first = -1;
        for (int attempt = 0; attempt < 40; attempt++) {
                int64_t ceiling = attempt >= 4 ? 1000 : 100LL << attempt;
                for (int i = 0; i < 200; i++) {
                        int64_t ms = mmp_retry_backoff_ms(&p, attempt);
                        assert_true(ms >= 0 && ms <= ceiling);
                        if (first < 0)
                                first = ms;
                        distinct |= ms != first;
                }
        }
        assert_true(distinct); /* jitter, not a fixed schedule */
        mmp_retry_policy_t zero = {3, 0, 0};
        assert_int_equal(mmp_retry_backoff_ms(&zero, 3), 0);
        assert_true(mmp_retry_http_status(503) && mmp_retry_http_status(429) && mmp_retry_http_status(500));
        assert_false(mmp_retry_http_status(404) || mmp_retry_http_status(403) || mmp_retry_http_status(400));
        volatile int cancel = 1;
        assert_int_equal(mmp_retry_sleep_ms(10000, &cancel), -1);
        assert_int_equal(mmp_retry_sleep_ms(1, NULL), 0);
}

static void test_credentials_file_parsing(void **state) {
        char path[512];
        mmp_aws_credentials_t c;
        snprintf(path, sizeof(path), "%s/creds-parse", workdir);
        write_file(path, "; comment\n[other]\nnot an assignment\n[ p1 ]\r\n"
                         "aws_access_key_id=K1\r\naws_secret_access_key = S 1\r\n"
                         "region = eu-west-1\r\n[broken\n");
        assert_int_equal(mmp_aws_credentials_from_file(path, "p1", &c, err, sizeof(err)), -1);
        char want[1024];
        snprintf(want, sizeof(want), "%s:8: a section header without ']'", path);
        assert_string_equal(err, want);
        write_file(path, "; comment\n[other]\nnot an assignment\n[ p1 ]\r\n"
                         "aws_access_key_id=K1\r\naws_secret_access_key = S 1\r\n"
                         "region = eu-west-1\r\n");
        assert_int_equal(mmp_aws_credentials_from_file(path, "p1", &c, err, sizeof(err)), 0);
        assert_string_equal(c.access_key_id, "K1");
        assert_string_equal(c.secret_access_key, "S 1");
        assert_null(c.session_token);
        assert_false(mmp_aws_credentials_stale(&c));
        /* rewriting the file marks the cached credentials stale */
        usleep(20000);
        write_file(path, "[p1]\naws_access_key_id=K2\naws_secret_access_key=S2\n");
        assert_true(mmp_aws_credentials_stale(&c));
        mmp_aws_credentials_clear(&c);
        /* an assignment-less line in the wanted profile is an error */
        write_file(path, "[p1]\naws_access_key_id\n");
        assert_int_equal(mmp_aws_credentials_from_file(path, "p1", &c, err, sizeof(err)), -1);
        snprintf(want, sizeof(want), "%s:2: expected NAME = VALUE in [p1]", path);
        assert_string_equal(err, want);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_config_errors),
            cmocka_unit_test(test_settings_defaults),
            cmocka_unit_test(test_backoff),
            cmocka_unit_test(test_credentials_file_parsing),
            cmocka_unit_test(test_get_with_head),
            cmocka_unit_test(test_key_needing_encoding),
            cmocka_unit_test(test_types),
            cmocka_unit_test(test_not_found),
            cmocka_unit_test(test_size_limit),
            cmocka_unit_test(test_versions),
            cmocka_unit_test(test_shared_credentials_file),
            cmocka_unit_test(test_missing_credentials),
            cmocka_unit_test(test_head_only_when_untyped),
            cmocka_unit_test(test_retries_then_success),
            cmocka_unit_test(test_retry_after),
            cmocka_unit_test(test_retries_exhausted),
            cmocka_unit_test(test_connection_refused),
            cmocka_unit_test(test_stall),
            cmocka_unit_test(test_http),
            cmocka_unit_test(test_unsupported_url),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
