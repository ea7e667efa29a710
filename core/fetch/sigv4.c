/*
 * AWS Signature Version 4: canonical request, string to sign, derived
 * signing key, Authorization header. Any thread (no shared state).
 */
#include "fetch/sigv4.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/sha256.h"

#define MAX_HEADERS 32

typedef struct canon_header {
        char name[64];     /* lower case */
        const char *value; /* as given; trimmed when written */
} canon_header_t;

char *mmp_sigv4_uri_encode(const char *s, int keep_slash) {
        static const char hex[] = "0123456789ABCDEF";
        size_t n = strlen(s);
        char *out = malloc(3 * n + 1), *o = out;
        if (!out)
                return NULL;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                unsigned char c = *p;
                if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '.' || c == '_' || c == '~' || (c == '/' && keep_slash)) {
                        *o++ = (char)c;
                } else {
                        *o++ = '%';
                        *o++ = hex[c >> 4];
                        *o++ = hex[c & 15];
                }
        }
        *o = '\0';
        return out;
}

static int has_crlf(const char *s) {
        return s && strpbrk(s, "\r\n") != NULL;
}

/* Adds one header to the canonical set; -1 on a bad or repeated name. */
static int add_header(canon_header_t *h, size_t *n, const char *name, const char *value) {
        size_t len = strlen(name);
        if (*n == MAX_HEADERS || len == 0 || len >= sizeof(h->name) || has_crlf(value))
                return -1;
        for (size_t i = 0; i <= len; i++) {
                char c = name[i];
                if (c == ':' || c == ' ' || c == '\r' || c == '\n')
                        return -1;
                h[*n].name[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
        for (size_t i = 0; i < *n; i++)
                if (!strcmp(h[i].name, h[*n].name))
                        return -1;
        h[(*n)++].value = value;
        return 0;
}

static int by_name(const void *a, const void *b) {
        return strcmp(((const canon_header_t *)a)->name, ((const canon_header_t *)b)->name);
}

static int is_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* A header value as SigV4 (and botocore) canonicalise it: leading and
 * trailing white space dropped, inner runs of it collapsed to one space. */
static void put_value(FILE *f, const char *v) {
        int pending_space = 0, any = 0;
        for (; *v; v++) {
                if (is_space(*v)) {
                        pending_space = any;
                        continue;
                }
                if (pending_space)
                        fputc(' ', f);
                fputc(*v, f);
                pending_space = 0;
                any = 1;
        }
}

static void hmac(const uint8_t *key, size_t klen, const char *msg, uint8_t out[32]) {
        mmp_hmac_sha256(key, klen, msg, strlen(msg), out);
}

void mmp_sigv4_signed_clear(mmp_sigv4_signed_t *s) {
        if (!s)
                return;
        free(s->authorization);
        free(s->canonical_request);
        s->authorization = s->canonical_request = NULL;
}

int mmp_sigv4_sign(const mmp_sigv4_request_t *req, mmp_sigv4_signed_t *out, char *errstr,
                   size_t errstr_size) {
        canon_header_t h[MAX_HEADERS];
        size_t nh = 0, cr_len = 0, sts_len = 0;
        char date[9], scope[256], *cr = NULL, *sts = NULL, *signed_names = NULL, hash_hex[65], sig_hex[65];
        uint8_t digest[32], k1[32], k2[32];
        struct tm tm;
        FILE *f;

        memset(out, 0, sizeof(*out));
        if (!req->method || !req->host || !req->path || !req->region || !req->service || !req->access_key_id ||
            !req->secret_access_key || !*req->access_key_id || !*req->secret_access_key) {
                snprintf(errstr, errstr_size, "SigV4: %s", "method, host, path, region, service and credentials are required");
                return -1;
        }
        if (has_crlf(req->host) || has_crlf(req->path) || has_crlf(req->query) || has_crlf(req->access_key_id) ||
            has_crlf(req->session_token) || strchr(req->region, '/') || strchr(req->service, '/')) {
                snprintf(errstr, errstr_size, "SigV4: %s", "a request part contains a line break or '/'");
                return -1;
        }
        if (!gmtime_r(&req->now, &tm) || !strftime(out->amz_date, sizeof(out->amz_date), "%Y%m%dT%H%M%SZ", &tm)) {
                snprintf(errstr, errstr_size, "SigV4: cannot format the time %lld", (long long)req->now);
                return -1;
        }
        memcpy(date, out->amz_date, 8);
        date[8] = '\0';
        snprintf(out->content_sha256, sizeof(out->content_sha256), "%s",
                 req->payload_sha256 ? req->payload_sha256 : MMP_SIGV4_EMPTY_SHA256);

        int bad = add_header(h, &nh, "host", req->host) ||
                  add_header(h, &nh, "x-amz-content-sha256", out->content_sha256) ||
                  add_header(h, &nh, "x-amz-date", out->amz_date) ||
                  (req->session_token && add_header(h, &nh, "x-amz-security-token", req->session_token));
        for (size_t i = 0; !bad && i < req->n_headers; i++)
                bad = add_header(h, &nh, req->headers[i].name, req->headers[i].value ? req->headers[i].value : "");
        if (bad) {
                snprintf(errstr, errstr_size, "SigV4: %s", "bad, repeated or too many headers to sign");
                return -1;
        }
        qsort(h, nh, sizeof(h[0]), by_name);

        /* SignedHeaders: the sorted names joined by ';'. */
        size_t sn_len = 0;
        if (!(f = open_memstream(&signed_names, &sn_len)))
                goto nomem;
        for (size_t i = 0; i < nh; i++)
                fprintf(f, "%s%s", i ? ";" : "", h[i].name);
        if (fclose(f))
                goto nomem;

        /* The canonical request. */
        if (!(f = open_memstream(&cr, &cr_len)))
                goto nomem;
        fprintf(f, "%s\n%s\n%s\n", req->method, req->path, req->query ? req->query : "");
        for (size_t i = 0; i < nh; i++) {
                fprintf(f, "%s:", h[i].name);
                put_value(f, h[i].value);
                fputc('\n', f);
        }
        fprintf(f, "\n%s\n%s", signed_names, out->content_sha256);
        if (fclose(f))
                goto nomem;

        /* The string to sign. */
        snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", date, req->region, req->service);
        mmp_sha256(cr, cr_len, digest);
        mmp_hex(digest, 32, hash_hex);
        if (!(f = open_memstream(&sts, &sts_len)))
                goto nomem;
        fprintf(f, "AWS4-HMAC-SHA256\n%s\n%s\n%s", out->amz_date, scope, hash_hex);
        if (fclose(f))
                goto nomem;

        /* The signing key: HMAC chain over date, region, service. */
        {
                size_t slen = strlen(req->secret_access_key);
                char *k0 = malloc(slen + 5);
                if (!k0)
                        goto nomem;
                memcpy(k0, "AWS4", 4);
                memcpy(k0 + 4, req->secret_access_key, slen + 1);
                hmac((const uint8_t *)k0, slen + 4, date, k1);
                memset(k0, 0, slen + 4); /* secrets do not linger on the heap */
                free(k0);
        }
        hmac(k1, 32, req->region, k2);
        hmac(k2, 32, req->service, k1);
        hmac(k1, 32, "aws4_request", k2);
        mmp_hmac_sha256(k2, 32, sts, sts_len, digest);
        mmp_hex(digest, 32, sig_hex);
        memset(k1, 0, sizeof(k1));
        memset(k2, 0, sizeof(k2));

        if (asprintf(&out->authorization, "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                     req->access_key_id, scope, signed_names, sig_hex) < 0) {
                out->authorization = NULL;
                goto nomem;
        }
        out->canonical_request = cr;
        free(sts);
        free(signed_names);
        return 0;
nomem:
        free(cr);
        free(sts);
        free(signed_names);
        mmp_sigv4_signed_clear(out);
        snprintf(errstr, errstr_size, "SigV4: %s", "out of memory");
        return -1;
}
