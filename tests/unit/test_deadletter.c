/*
 * Dead letters: every field reads back in order, lines from concurrent
 * writers never interleave, "-" is stderr, open errors name the path.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw, strptime */
#endif
#include <setjmp.h> /* cmocka.h needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sinks/deadletter.h"

static char tmpdir[256];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static int setup(void **state) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/mmp-test-deadletter-XXXXXX");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
        return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Reads the file's lines, each checked to end in a newline and parse. */
static json_t *read_lines(const char *path) {
        json_t *lines = json_array();
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        FILE *fp = fopen(path, "r");

        assert_non_null(fp);
        while ((len = getline(&line, &cap, fp)) > 0) {
                json_error_t err;
                json_t *doc;
                assert_int_equal(line[len - 1], '\n');
                doc = json_loadb(line, (size_t)len, 0, &err);
                if (!doc)
                        fail_msg("line %zu does not parse: %s", json_array_size(lines) + 1, err.text);
                json_array_append_new(lines, doc);
        }
        free(line);
        fclose(fp);
        return lines;
}

static void assert_keys(const json_t *obj, const char *const *expected) {
        const char *key;
        json_t *v;
        size_t i = 0;

        json_object_foreach((json_t *)obj, key, v) {
                assert_non_null(expected[i]);
                assert_string_equal(key, expected[i]);
                i++;
        }
        assert_null(expected[i]);
}

static void assert_recent_time(const char *s) {
        struct tm tm = {0};
        const char *rest;
        time_t t;

        assert_non_null(s);
        assert_int_equal(strlen(s), 24); /* 2024-05-01T12:00:00.123Z */
        rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        assert_non_null(rest);
        assert_true(rest[0] == '.' && rest[1] >= '0' && rest[1] <= '9' && rest[4] == 'Z');
        t = timegm(&tm);
        assert_true(labs((long)(time(NULL) - t)) < 60);
}

static void test_lines_parse_back(void **state) {
        static const char *const full_keys[] = {"time",    "stage",    "error_class", "retriable",
                                                "message", "attempts", "pipeline",    "traceback",
                                                "source",  "event",    NULL};
        static const char *const short_keys[] = {"time",    "stage",    "error_class", "retriable",
                                                 "message", "attempts", "pipeline",    "source",
                                                 "event",   NULL};
        char path[512], err[512] = "";
        mmp_deadletter_t *dl;
        mmp_failure_t *f1, *f2;
        json_t *event1, *event2, *source, *lines, *l;

        snprintf(path, sizeof(path), "%s/dead/letters/dead.jsonl", tmpdir);
        dl = mmp_deadletter_open(path, err, sizeof(err));
        if (!dl)
                fail_msg("open: %s", err);
        assert_string_equal(mmp_deadletter_path(dl), path);

        f1 = mmp_failure_new(MMP_ERR_LUA, MMP_STAGE_HANDLE, 0, "video-embeddings",
                             "stack traceback:\n\t[C]: in function 'error'", "handler.lua:12: %s", "boom");
        f1->attempts = 3;
        f2 = mmp_failure_new(MMP_ERR_TIMEOUT, MMP_STAGE_FETCH, 1, NULL, NULL, "GET s3://b/k: timed out");
        event1 = json_pack("{s:s, s:s, s:s}", "bucket", "media", "key", "clips/a.mp4", "file_type", "video");
        event2 = json_pack("{s:[{s:s}]}", "Records", "eventName", "ObjectCreated:Put");
        source = json_pack("{s:s, s:s, s:i, s:I}", "type", "kafka", "topic", "uploads", "partition", 2,
                           "offset", (json_int_t)41);

        assert_int_equal(mmp_deadletter_write(dl, event1, source, f1), 0);
        assert_int_equal(mmp_deadletter_write(dl, event2, NULL, f2), 0);
        assert_int_equal(mmp_deadletter_count(dl), 2);
        mmp_deadletter_close(dl);

        lines = read_lines(path);
        assert_int_equal(json_array_size(lines), 2);

        l = json_array_get(lines, 0);
        assert_keys(l, full_keys);
        assert_recent_time(json_string_value(json_object_get(l, "time")));
        assert_string_equal(json_string_value(json_object_get(l, "stage")), "handle");
        assert_string_equal(json_string_value(json_object_get(l, "error_class")), "LUA");
        assert_true(json_is_false(json_object_get(l, "retriable")));
        assert_string_equal(json_string_value(json_object_get(l, "message")), "handler.lua:12: boom");
        assert_int_equal(json_integer_value(json_object_get(l, "attempts")), 3);
        assert_string_equal(json_string_value(json_object_get(l, "pipeline")), "video-embeddings");
        assert_string_equal(json_string_value(json_object_get(l, "traceback")),
                            "stack traceback:\n\t[C]: in function 'error'");
        assert_true(json_equal(json_object_get(l, "source"), source));
        assert_true(json_equal(json_object_get(l, "event"), event1));

        l = json_array_get(lines, 1);
        assert_keys(l, short_keys);
        assert_string_equal(json_string_value(json_object_get(l, "stage")), "fetch");
        assert_string_equal(json_string_value(json_object_get(l, "error_class")), "TIMEOUT");
        assert_true(json_is_true(json_object_get(l, "retriable")));
        assert_string_equal(json_string_value(json_object_get(l, "message")), "GET s3://b/k: timed out");
        assert_int_equal(json_integer_value(json_object_get(l, "attempts")), 1);
        assert_true(json_is_null(json_object_get(l, "pipeline")));
        assert_true(json_is_null(json_object_get(l, "source")));
        assert_true(json_equal(json_object_get(l, "event"), event2));
        json_decref(lines);

        /* Opening again appends; the count is per open. */
        dl = mmp_deadletter_open(path, err, sizeof(err));
        assert_non_null(dl);
        assert_int_equal(mmp_deadletter_count(dl), 0);
        assert_int_equal(mmp_deadletter_write(dl, event2, NULL, f2), 0);
        assert_int_equal(mmp_deadletter_count(dl), 1);
        mmp_deadletter_close(dl);
        lines = read_lines(path);
        assert_int_equal(json_array_size(lines), 3);
        json_decref(lines);

        mmp_failure_free(f1);
        mmp_failure_free(f2);
        json_decref(event1);
        json_decref(event2);
        json_decref(source);
}

#define WRITERS 4
#define PER_WRITER 250
#define MESSAGE_LEN 6000 /* more than a stdio buffer */

typedef struct writer {
        mmp_deadletter_t *dl;
        int id;
} writer_t;

static void *writer_main(void *arg) {
        writer_t *w = arg;
        char *msg = malloc(MESSAGE_LEN + 1);
        memset(msg, 'a' + w->id, MESSAGE_LEN);
        msg[MESSAGE_LEN] = '\0';
        for (int i = 0; i < PER_WRITER; i++) {
                mmp_failure_t *f =
                    mmp_failure_new(MMP_ERR_BAD_INPUT, MMP_STAGE_FETCH, 0, NULL, NULL, "%s", msg);
                json_t *event = json_pack("{s:i, s:i}", "writer", w->id, "i", i);
                if (mmp_deadletter_write(w->dl, event, NULL, f) != 0)
                        abort();
                json_decref(event);
                mmp_failure_free(f);
        }
        free(msg);
        return NULL;
}

static void test_concurrent_writers_whole_lines(void **state) {
        static char seen[WRITERS][PER_WRITER];
        char path[512], err[512] = "";
        pthread_t threads[WRITERS];
        writer_t writers[WRITERS];
        mmp_deadletter_t *dl;
        json_t *lines, *l;
        size_t i;

        snprintf(path, sizeof(path), "%s/dead.jsonl", tmpdir);
        assert_non_null(dl = mmp_deadletter_open(path, err, sizeof(err)));
        for (int t = 0; t < WRITERS; t++) {
                writers[t] = (writer_t){dl, t};
                assert_int_equal(pthread_create(&threads[t], NULL, writer_main, &writers[t]), 0);
        }
        for (int t = 0; t < WRITERS; t++)
                pthread_join(threads[t], NULL);
        assert_int_equal(mmp_deadletter_count(dl), WRITERS * PER_WRITER);
        mmp_deadletter_close(dl);

        lines = read_lines(path); /* fails on any line that is not whole JSON */
        assert_int_equal(json_array_size(lines), WRITERS * PER_WRITER);
        memset(seen, 0, sizeof(seen));
        json_array_foreach(lines, i, l) {
                json_t *event = json_object_get(l, "event");
                int w = (int)json_integer_value(json_object_get(event, "writer"));
                int n = (int)json_integer_value(json_object_get(event, "i"));
                const char *msg = json_string_value(json_object_get(l, "message"));
                assert_in_range(w, 0, WRITERS - 1);
                assert_in_range(n, 0, PER_WRITER - 1);
                assert_int_equal(seen[w][n], 0);
                seen[w][n] = 1;
                assert_int_equal(strlen(msg), MESSAGE_LEN);
                assert_int_equal(strspn(msg, (char[]){(char)('a' + w), 0}), MESSAGE_LEN);
                assert_string_equal(json_string_value(json_object_get(l, "error_class")), "BAD_INPUT");
        }
        json_decref(lines);
}

static void test_dash_is_stderr(void **state) {
        char path[512], err[512] = "";
        int saved, fd;
        mmp_deadletter_t *dl;
        mmp_failure_t *f = mmp_failure_new(MMP_ERR_PLUGIN, MMP_STAGE_HANDLE, 0, "p", NULL, "no such op");
        json_t *event = json_pack("{s:s}", "key", "x"), *lines;

        snprintf(path, sizeof(path), "%s/stderr.txt", tmpdir);
        fflush(stderr);
        saved = dup(STDERR_FILENO);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(saved >= 0 && fd >= 0);
        dup2(fd, STDERR_FILENO);
        close(fd);

        dl = mmp_deadletter_open("-", err, sizeof(err));
        int rc = dl ? mmp_deadletter_write(dl, event, NULL, f) : -1;
        mmp_deadletter_close(dl);
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);

        assert_int_equal(rc, 0);
        lines = read_lines(path);
        assert_int_equal(json_array_size(lines), 1);
        assert_string_equal(json_string_value(json_object_get(json_array_get(lines, 0), "error_class")),
                            "PLUGIN");
        assert_true(json_equal(json_object_get(json_array_get(lines, 0), "event"), event));
        json_decref(lines);
        json_decref(event);
        mmp_failure_free(f);
}

static void test_open_errors(void **state) {
        char path[512], err[1024] = "", expected[1400];
        FILE *fp;

        /* A directory where the file should be. */
        assert_null(mmp_deadletter_open(tmpdir, err, sizeof(err)));
        snprintf(expected, sizeof(expected), "cannot open dead-letter file \"%s\": Is a directory", tmpdir);
        assert_string_equal(err, expected);

        /* A file where a directory should be. */
        snprintf(path, sizeof(path), "%s/plain", tmpdir);
        assert_non_null(fp = fopen(path, "w"));
        fclose(fp);
        snprintf(path, sizeof(path), "%s/plain/dead.jsonl", tmpdir);
        assert_null(mmp_deadletter_open(path, err, sizeof(err)));
        snprintf(expected, sizeof(expected),
                 "cannot open dead-letter file \"%s\": cannot create directory \"%s/plain\": Not a directory",
                 path, tmpdir);
        assert_string_equal(err, expected);

        /* A write that fails is reported and not counted. */
        mmp_deadletter_t *dl = mmp_deadletter_open("/dev/full", err, sizeof(err));
        mmp_failure_t *f = mmp_failure_new(MMP_ERR_IO, MMP_STAGE_FETCH, 0, NULL, NULL, "x");
        json_t *event = json_object();
        assert_non_null(dl);
        assert_int_equal(mmp_deadletter_write(dl, event, NULL, f), -1);
        assert_int_equal(mmp_deadletter_count(dl), 0);
        mmp_deadletter_close(dl);
        mmp_failure_free(f);
        json_decref(event);

        assert_null(mmp_deadletter_open("", err, sizeof(err)));
        assert_string_equal(err, "dead-letter path is empty");
        mmp_deadletter_close(NULL);
        assert_int_equal(mmp_deadletter_count(NULL), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_lines_parse_back, setup, teardown),
            cmocka_unit_test_setup_teardown(test_concurrent_writers_whole_lines, setup, teardown),
            cmocka_unit_test_setup_teardown(test_dash_is_stderr, setup, teardown),
            cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
