/*
 * S3: the "s3" config section, URLs (path-style or virtual-hosted, keys
 * encoded per segment), SigV4-signed HEAD and GET, and the fetch flow that
 * fills an event from them. Fetches run on worker threads and share the
 * settings (read-only) and the credentials cache (under a mutex).
 */
#include "util/jsonw.h"
#include "fetch/s3.h"

#include <curl/curl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "fetch/fetch.h"
#include "fetch/sigv4.h"
#include "util/log.h"

/* ---- settings ---- */

static mmp_s3_settings_t g_settings;
static int g_configured;
static time_t g_fixed_clock;

/* Credentials are resolved at the first S3 fetch, then re-read when their
 * file changes (tools that refresh session tokens rewrite it). */
static pthread_mutex_t g_creds_lock = PTHREAD_MUTEX_INITIALIZER;
static mmp_aws_credentials_t g_creds;
static int g_have_creds;

static const char *env_nonempty(const char *name) {
        const char *v = getenv(name);
        return v && *v ? v : NULL;
}

static int expected(char *errstr, size_t n, const char *origin, const char *path, const char *what, const json_t *v) {
        char shown[48];
        mmp_json_excerpt(v, shown);
        snprintf(errstr, n, "%s: %s: expected %s, got %s", origin, path, what, shown);
        return -1;
}

/* An endpoint as "scheme://host[:port]", default port dropped (neither curl
 * nor botocore sends it in Host), no trailing '/'. NULL when not such a URL. */
static char *endpoint_normalize(const char *url) {
        const char *rest, *end;
        char *out;
        size_t hl;
        int https = !strncasecmp(url, "https://", 8);
        if (!https && strncasecmp(url, "http://", 7))
                return NULL;
        rest = url + (https ? 8 : 7);
        end = rest + strcspn(rest, "/?#");
        if (end == rest || memchr(rest, '@', (size_t)(end - rest)) || (*end && strcmp(end, "/")))
                return NULL;
        hl = (size_t)(end - rest);
        if (hl > 3 && !strncmp(end - 3, ":80", 3) && !https)
                hl -= 3;
        else if (hl > 4 && !strncmp(end - 4, ":443", 4) && https)
                hl -= 4;
        if (asprintf(&out, "%s://%.*s", https ? "https" : "http", (int)hl, rest) < 0)
                return NULL;
        for (char *p = out; *p; p++) /* host names are case-insensitive; signatures are not */
                if (*p >= 'A' && *p <= 'Z')
                        *p = (char)(*p + 32);
        return out;
}

typedef struct int_key {
        const char *name;
        int64_t min, max;
        int64_t *dst;
} int_key_t;

static int parse_int(const json_t *v, const char *origin, const char *path, const int_key_t *k, char *errstr,
                     size_t n) {
        char what[96];
        if (!json_is_integer(v) || json_integer_value(v) < k->min || json_integer_value(v) > k->max) {
                snprintf(what, sizeof(what), "an integer from %lld to %lld", (long long)k->min, (long long)k->max);
                return expected(errstr, n, origin, path, what, v);
        }
        *k->dst = json_integer_value(v);
        return 0;
}

static int unknown_key(char *errstr, size_t n, const char *origin, const char *path, const char *known) {
        snprintf(errstr, n, "%s: unknown key \"%s\" (known: %s)", origin, path, known);
        return -1;
}

static int parse_retries(const json_t *r, const char *origin, mmp_retry_policy_t *p, char *errstr, size_t n) {
        int64_t attempts = p->attempts;
        const int_key_t keys[] = {{"attempts", 1, 100, &attempts},
                                  {"base_ms", 1, INT_MAX, &p->base_ms},
                                  {"cap_ms", 1, INT_MAX, &p->cap_ms}};
        const char *name;
        const json_t *v;
        char path[128];
        if (!json_is_object(r))
                return expected(errstr, n, origin, "s3.retries", "an object", r);
        json_object_foreach((json_t *)r, name, v) {
                size_t i = 0;
                snprintf(path, sizeof(path), "s3.retries.%s", name);
                while (i < 3 && strcmp(keys[i].name, name))
                        i++;
                if (i == 3)
                        return unknown_key(errstr, n, origin, path, "attempts, base_ms, cap_ms");
                if (parse_int(v, origin, path, &keys[i], errstr, n))
                        return -1;
        }
        p->attempts = (int)attempts;
        if (p->cap_ms < p->base_ms) {
                snprintf(errstr, n, "%s: s3.retries.cap_ms: expected at least s3.retries.base_ms (%lld), got %lld",
                         origin, (long long)p->base_ms, (long long)p->cap_ms);
                return -1;
        }
        return 0;
}

static int set_string(char **dst, const json_t *v, const char *origin, const char *path, char *errstr, size_t n) {
        if (!json_is_string(v) || !json_string_length(v))
                return expected(errstr, n, origin, path, "a non-empty string", v);
        free(*dst);
        if (!(*dst = strdup(json_string_value(v)))) {
                snprintf(errstr, n, "%s: %s: out of memory", origin, path);
                return -1;
        }
        return 0;
}

void mmp_s3_settings_clear(mmp_s3_settings_t *s) {
        if (!s)
                return;
        free(s->region);
        free(s->endpoint);
        free(s->profile);
        free(s->credentials_file);
        memset(s, 0, sizeof(*s));
}

static void settings_defaults(mmp_s3_settings_t *s) {
        memset(s, 0, sizeof(*s));
        s->max_object_bytes = 1024LL * 1024 * 1024;
        s->timeout_ms = 60000;
        s->retry.attempts = MMP_RETRY_ATTEMPTS_DEFAULT;
        s->retry.base_ms = MMP_RETRY_BASE_MS_DEFAULT;
        s->retry.cap_ms = MMP_RETRY_CAP_MS_DEFAULT;
}

static int parse_section(const json_t *section, const char *origin, mmp_s3_settings_t *s, int *path_style_set,
                         char *errstr, size_t n) {
        static const char known[] = "region, endpoint, path_style, profile, credentials_file, max_object_mb, "
                                    "timeout_ms, retries";
        int64_t max_mb = 1024;
        const int_key_t ints[] = {{"max_object_mb", 1, 1024 * 1024, &max_mb},
                                  {"timeout_ms", 1, INT_MAX, &s->timeout_ms}};
        const char *name;
        const json_t *v;
        char path[128];

        if (!json_is_object(section))
                return expected(errstr, n, origin, "s3", "an object", section);
        json_object_foreach((json_t *)section, name, v) {
                int rc = 0;
                snprintf(path, sizeof(path), "s3.%s", name);
                if (!strcmp(name, "region")) {
                        rc = set_string(&s->region, v, origin, path, errstr, n);
                } else if (!strcmp(name, "endpoint")) {
                        free(s->endpoint);
                        if (!json_is_string(v) || !(s->endpoint = endpoint_normalize(json_string_value(v))))
                                return expected(errstr, n, origin, path,
                                                "an http:// or https:// URL with no path (http://127.0.0.1:9000)", v);
                } else if (!strcmp(name, "path_style")) {
                        if (!json_is_boolean(v))
                                return expected(errstr, n, origin, path, "true or false", v);
                        s->path_style = json_is_true(v);
                        *path_style_set = 1;
                } else if (!strcmp(name, "profile")) {
                        rc = set_string(&s->profile, v, origin, path, errstr, n);
                } else if (!strcmp(name, "credentials_file")) {
                        rc = set_string(&s->credentials_file, v, origin, path, errstr, n);
                } else if (!strcmp(name, "retries")) {
                        rc = parse_retries(v, origin, &s->retry, errstr, n);
                } else if (!strcmp(name, ints[0].name)) {
                        rc = parse_int(v, origin, path, &ints[0], errstr, n);
                } else if (!strcmp(name, ints[1].name)) {
                        rc = parse_int(v, origin, path, &ints[1], errstr, n);
                } else {
                        return unknown_key(errstr, n, origin, path, known);
                }
                if (rc)
                        return -1;
        }
        s->max_object_bytes = max_mb * 1024 * 1024;
        return 0;
}

int mmp_s3_settings_parse(const json_t *section, const char *origin, mmp_s3_settings_t *out, char *errstr,
                          size_t errstr_size) {
        int path_style_set = 0;
        const char *env;

        settings_defaults(out);
        if (section && parse_section(section, origin, out, &path_style_set, errstr, errstr_size))
                goto fail;
        /* What the section leaves out comes from the environment, as in the AWS SDKs. */
        if (!out->region) {
                env = env_nonempty("AWS_REGION");
                if (!env)
                        env = env_nonempty("AWS_DEFAULT_REGION");
                if (!(out->region = strdup(env ? env : "us-east-1")))
                        goto nomem;
        }
        if (!out->endpoint && ((env = env_nonempty("AWS_ENDPOINT_URL_S3")) || (env = env_nonempty("AWS_ENDPOINT_URL")))) {
                if (!(out->endpoint = endpoint_normalize(env))) {
                        snprintf(errstr, errstr_size, "%s: expected an http:// or https:// URL with no path, got \"%.60s\"",
                                 env_nonempty("AWS_ENDPOINT_URL_S3") ? "AWS_ENDPOINT_URL_S3" : "AWS_ENDPOINT_URL", env);
                        goto fail;
                }
        }
        if (!path_style_set)
                out->path_style = out->endpoint != NULL; /* MinIO and the stand-ins want path-style */
        return 0;
nomem:
        snprintf(errstr, errstr_size, "%s: s3: out of memory", origin);
fail:
        mmp_s3_settings_clear(out);
        return -1;
}

void mmp_s3_configure(mmp_s3_settings_t *s) {
        mmp_s3_settings_clear(&g_settings);
        g_settings = *s;
        memset(s, 0, sizeof(*s));
        g_configured = 1;
}

static mmp_s3_settings_t g_defaults;

static void defaults_init(void) {
        char err[256];
        if (mmp_s3_settings_parse(NULL, "<defaults>", &g_defaults, err, sizeof(err)))
                settings_defaults(&g_defaults); /* a bad AWS_ENDPOINT_URL: reported by mmp_fetch_init */
}

const mmp_s3_settings_t *mmp_s3_settings(void) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        if (g_configured)
                return &g_settings;
        /* Fetches without mmp_fetch_init (tools, tests) get the defaults. */
        pthread_once(&once, defaults_init);
        return &g_defaults;
}

void mmp_s3_shutdown(void) {
        mmp_s3_settings_clear(&g_settings);
        g_configured = 0;
        pthread_mutex_lock(&g_creds_lock);
        mmp_aws_credentials_clear(&g_creds);
        g_have_creds = 0;
        pthread_mutex_unlock(&g_creds_lock);
}

void mmp_s3_set_clock(time_t fixed) {
        g_fixed_clock = fixed;
}

/* ---- requests ---- */

void mmp_s3_request_clear(mmp_s3_request_t *r) {
        if (!r)
                return;
        free(r->url);
        free(r->host);
        free(r->path);
        free(r->query);
        for (size_t i = 0; i < r->n_headers; i++)
                free(r->headers[i]);
        free(r->canonical_request);
        memset(r, 0, sizeof(*r));
}

/* Bucket names S3 has accepted (older us-east-1 rules included). */
static int bucket_name_ok(const char *b) {
        size_t n = strlen(b);
        return n >= 1 && n <= 255 &&
               strspn(b, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == n;
}

/* Can the bucket be a host name label (virtual-hosted style, also under
 * TLS with the *.s3 wildcard certificate)? As botocore, use path-style for
 * the rest. */
static int bucket_is_dns_label(const char *b) {
        size_t n = strlen(b);
        if (n < 3 || n > 63 || strspn(b, "abcdefghijklmnopqrstuvwxyz0123456789-") != n)
                return 0;
        return b[0] != '-' && b[n - 1] != '-';
}

static int add_line(mmp_s3_request_t *r, const char *name, const char *value) {
        if (asprintf(&r->headers[r->n_headers], "%s: %s", name, value) < 0)
                return -1;
        r->n_headers++;
        return 0;
}

int mmp_s3_request_build(const mmp_s3_settings_t *s, const char *method, const char *bucket, const char *key,
                         const char *version_id, const mmp_aws_credentials_t *creds, time_t now,
                         mmp_s3_request_t *out, char *errstr, size_t errstr_size) {
        char *ekey = NULL, *ebucket = NULL, *ever = NULL, *aws_host = NULL;
        const char *scheme = "https", *hostport;
        mmp_sigv4_signed_t sig = {0};
        int virtual_host, rc = -1;

        memset(out, 0, sizeof(*out));
        if (!bucket_name_ok(bucket)) {
                snprintf(errstr, errstr_size, "invalid bucket name \"%.80s\"", bucket);
                return -1;
        }
        if (!key || !*key) {
                snprintf(errstr, errstr_size, "%s", "empty object key");
                return -1;
        }
        if (s->endpoint) {
                const char *sep = strstr(s->endpoint, "://");
                scheme = s->endpoint[4] == 's' ? "https" : "http";
                hostport = sep + 3;
        } else {
                /* China's regions live under amazonaws.com.cn. */
                if (asprintf(&aws_host, "s3.%s.amazonaws.com%s", s->region, strncmp(s->region, "cn-", 3) ? "" : ".cn") < 0)
                        goto nomem;
                hostport = aws_host;
        }
        virtual_host = !s->path_style && bucket_is_dns_label(bucket);
        if (!(ekey = mmp_sigv4_uri_encode(key, 1)) || !(ebucket = mmp_sigv4_uri_encode(bucket, 0)))
                goto nomem;
        if (version_id && !(ever = mmp_sigv4_uri_encode(version_id, 0)))
                goto nomem;
        if (virtual_host ? asprintf(&out->host, "%s.%s", bucket, hostport) < 0
                         : !(out->host = strdup(hostport)))
                goto nomem;
        if (virtual_host ? asprintf(&out->path, "/%s", ekey) < 0 : asprintf(&out->path, "/%s/%s", ebucket, ekey) < 0)
                goto nomem;
        if (ever ? asprintf(&out->query, "versionId=%s", ever) < 0 : !(out->query = strdup("")))
                goto nomem;
        if (asprintf(&out->url, "%s://%s%s%s%s", scheme, out->host, out->path, *out->query ? "?" : "", out->query) < 0)
                goto nomem;

        mmp_sigv4_request_t req = {
            .method = method,
            .host = out->host,
            .path = out->path,
            .query = out->query,
            .region = s->region,
            .service = "s3",
            .access_key_id = creds->access_key_id,
            .secret_access_key = creds->secret_access_key,
            .session_token = creds->session_token,
            .now = now,
        };
        if (mmp_sigv4_sign(&req, &sig, errstr, errstr_size))
                goto out;
        /* Host is sent explicitly so what is signed is what goes out. */
        if (add_line(out, "Host", out->host) || add_line(out, "X-Amz-Date", sig.amz_date) ||
            add_line(out, "x-amz-content-sha256", sig.content_sha256) ||
            add_line(out, "Authorization", sig.authorization) ||
            (creds->session_token && add_line(out, "X-Amz-Security-Token", creds->session_token)))
                goto nomem;
        out->canonical_request = sig.canonical_request;
        sig.canonical_request = NULL;
        rc = 0;
        goto out;
nomem:
        snprintf(errstr, errstr_size, "%s", "out of memory");
out:
        mmp_sigv4_signed_clear(&sig);
        free(ekey);
        free(ebucket);
        free(ever);
        free(aws_host);
        if (rc)
                mmp_s3_request_clear(out);
        return rc;
}

/* ---- fetch ---- */

typedef struct s3_target {
        const mmp_s3_settings_t *s;
        const char *bucket, *key, *version_id;
} s3_target_t;

/* Signs this attempt of x under the cached credentials (resolving them
 * the first time, or again when their file changed). */
static mmp_err_t s3_prepare(mmp_xfer_t *x, char **url, struct curl_slist **headers, char *err, size_t err_size) {
        s3_target_t *t = x->opaque;
        mmp_s3_request_t r;
        mmp_err_t code = MMP_OK;
        time_t now = g_fixed_clock ? g_fixed_clock : time(NULL);

        pthread_mutex_lock(&g_creds_lock);
        if (!g_have_creds || mmp_aws_credentials_stale(&g_creds)) {
                mmp_aws_credentials_lookup_t lookup = {t->s->profile, t->s->credentials_file, t->s->profile != NULL};
                mmp_aws_credentials_clear(&g_creds);
                g_have_creds = mmp_aws_credentials_resolve(&lookup, &g_creds, err, err_size) == 0;
                if (g_have_creds)
                        mmp_debug("s3", "credentials from %s", g_creds.source);
                else
                        code = MMP_ERR_CONFIG;
        }
        if (g_have_creds && mmp_s3_request_build(t->s, x->head ? "HEAD" : "GET", t->bucket, t->key, t->version_id,
                                                 &g_creds, now, &r, err, err_size))
                code = MMP_ERR_INVALID;
        pthread_mutex_unlock(&g_creds_lock);
        if (code != MMP_OK)
                return code;
        for (size_t i = 0; i < r.n_headers; i++) {
                struct curl_slist *l = curl_slist_append(*headers, r.headers[i]);
                if (!l) {
                        mmp_s3_request_clear(&r);
                        snprintf(err, err_size, "%s", "out of memory");
                        return MMP_ERR_NOMEM;
                }
                *headers = l;
        }
        *url = r.url;
        r.url = NULL;
        mmp_s3_request_clear(&r);
        return MMP_OK;
}

static void xfer_setup(mmp_xfer_t *x, const char *what, const mmp_s3_settings_t *s, mmp_event_t *ev,
                       s3_target_t *t) {
        memset(x, 0, sizeof(*x));
        x->what = what;
        x->fd = -1;
        x->max_bytes = s->max_object_bytes;
        x->timeout_ms = s->timeout_ms;
        x->retry = s->retry;
        x->cancel = NULL; /* events carry no cancel flag: a fetch runs to its retry limit */
        x->prepare = s3_prepare;
        x->opaque = t;
}

/* "null" is the version of objects written while versioning was off or
 * suspended: it names no particular content, so it is no version here. */
static const char *real_version(const char *v) {
        return v && *v && strcmp(v, "null") ? v : NULL;
}

mmp_failure_t *mmp_s3_fetch(mmp_event_t *ev, const char *bucket, const char *key) {
        const mmp_s3_settings_t *s = mmp_s3_settings();
        char what[2048], path[4096], head_type[128] = "", buf[128];
        const char *declared;
        mmp_failure_t *f = NULL;
        mmp_xfer_t x;
        int fd;
        /* The event names a version (not just its ETag): fetch exactly that one. */
        s3_target_t t = {s, bucket, key,
                         real_version(ev->version) && (!ev->etag || strcmp(ev->version, ev->etag)) ? ev->version : NULL};

        snprintf(what, sizeof(what), "s3://%s/%s", bucket, key);
        if (!ev->content_type) {
                xfer_setup(&x, what, s, ev, &t);
                x.head = 1;
                if ((f = mmp_xfer_run(&x))) {
                        /* A HEAD answer has no body, so no S3 error code: let the GET
                         * below fail with the full reason (NoSuchKey, AccessDenied ...). */
                        if (f->retriable || x.status < 400 || x.status > 499)
                                return f;
                        mmp_failure_free(f);
                } else {
                        if (mmp_fetch_declared_type(x.content_type, buf, sizeof(buf)))
                                snprintf(head_type, sizeof(head_type), "%s", buf);
                }
        }
        if ((fd = mmp_fetch_tempfile(ev, key, path, sizeof(path), &f)) < 0)
                return f;
        xfer_setup(&x, what, s, ev, &t);
        x.fd = fd;
        if ((f = mmp_xfer_run(&x))) {
                close(fd);
                return f;
        }
        mmp_fetch_set_download(ev, &x, path);
        if (ev->etag && x.etag[0] && strcmp(ev->etag, x.etag))
                mmp_debug("s3", "%s: ETag %s in the event, %s now: the object changed since", what, ev->etag, x.etag);
        if (x.etag[0])
                mmp_event_set(ev, &ev->etag, x.etag);
        /* The version of the bytes fetched: S3's, else the one asked for, else
         * the ETag of what came (the event's ETag may name older content). */
        if (real_version(x.version_id))
                mmp_event_set(ev, &ev->version, x.version_id);
        else if (t.version_id)
                ; /* already ev->version */
        else if (ev->etag)
                mmp_event_set(ev, &ev->version, ev->etag);
        declared = ev->content_type ? ev->content_type : head_type[0] ? head_type : mmp_content_type_from_name(key);
        mmp_fetch_set_types(ev, fd, declared);
        close(fd);
        return NULL;
}
