/*
 * Inference calls on a lane's curl multi handle: queueing behind the
 * endpoint's limit, rate and breaker, signing, sending, classifying the
 * answer (SageMaker's error classes) and retrying. Lane thread only.
 */
#include "inference/invoke.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fetch/sigv4.h"
#include "util/log.h"
#include "util/sha256.h"
#include "util/time.h"

typedef struct call {
        mmp_invoker_t *inv;
        mmp_invoke_request_t req;
        mmp_endpoint_t *ep;
        void *tag;
        int index;
        int attempt;        /* attempts made */
        int not_ready;      /* ModelNotReady answers seen (waited out, not counted) */
        int64_t wake_at_us; /* queued until then */
        int is_probe;
        CURL *easy;
        struct curl_slist *hdrs;
        char *resp;
        size_t resp_len, resp_cap;
        json_t *resp_headers;
        char errbuf[CURL_ERROR_SIZE];
        struct call *next;
} call_t;

struct mmp_invoker {
        CURLM *multi;
        mmp_endpoints_t *eps;
        mmp_invoke_done_fn done;
        void *owner;
        call_t *queued; /* waiting for their time, a slot, a token or the breaker */
        call_t *active; /* on the multi handle */
        int n_active;
};

void mmp_invoke_request_clear(mmp_invoke_request_t *r) {
        free(r->endpoint);
        free(r->body);
        free(r->content_type);
        free(r->accept);
        free(r->custom_attributes);
        free(r->target_model);
        free(r->target_variant);
        free(r->inference_id);
        memset(r, 0, sizeof(*r));
}

void mmp_invoke_result_free(mmp_invoke_result_t *r) {
        if (!r)
                return;
        free(r->body);
        json_decref(r->headers);
        free(r->error);
        free(r->error_type);
        free(r);
}

mmp_invoker_t *mmp_invoker_new(CURLM *multi, mmp_endpoints_t *eps, mmp_invoke_done_fn done, void *owner) {
        mmp_invoker_t *inv = calloc(1, sizeof(*inv));
        inv->multi = multi;
        inv->eps = eps;
        inv->done = done;
        inv->owner = owner;
        return inv;
}

int mmp_invoker_active(const mmp_invoker_t *inv) {
        return inv && (inv->n_active || inv->queued);
}

static void call_reset_attempt(call_t *c) {
        if (c->easy) {
                curl_multi_remove_handle(c->inv->multi, c->easy);
                curl_easy_cleanup(c->easy);
                c->easy = NULL;
        }
        curl_slist_free_all(c->hdrs);
        c->hdrs = NULL;
        free(c->resp);
        c->resp = NULL;
        c->resp_len = c->resp_cap = 0;
        json_decref(c->resp_headers);
        c->resp_headers = NULL;
}

static void call_free(call_t *c) {
        call_reset_attempt(c);
        mmp_invoke_request_clear(&c->req);
        free(c);
}

int mmp_invoker_submit(mmp_invoker_t *inv, mmp_invoke_request_t *req, void *tag, int index, char *err, size_t n) {
        call_t *c;
        if (req->len > MMP_INVOKE_MAX_BODY) {
                snprintf(err, n, "endpoint %s: the request body is %zu bytes, over SageMaker's limit of %d bytes (6 MB)",
                         req->endpoint, req->len, MMP_INVOKE_MAX_BODY);
                mmp_invoke_request_clear(req);
                return -1;
        }
        c = calloc(1, sizeof(*c));
        c->inv = inv;
        c->req = *req;
        memset(req, 0, sizeof(*req));
        c->ep = mmp_endpoints_get(inv->eps, c->req.endpoint);
        c->tag = tag;
        c->index = index;
        c->wake_at_us = 0;
        c->next = inv->queued;
        inv->queued = c;
        return 0;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud) {
        call_t *c = ud;
        size_t len = size * nmemb;
        if (c->resp_len + len + 1 > c->resp_cap) {
                size_t cap = c->resp_cap ? c->resp_cap * 2 : 4096;
                while (cap < c->resp_len + len + 1)
                        cap *= 2;
                char *r = realloc(c->resp, cap);
                if (!r)
                        return 0;
                c->resp = r;
                c->resp_cap = cap;
        }
        memcpy(c->resp + c->resp_len, p, len);
        c->resp_len += len;
        c->resp[c->resp_len] = '\0';
        return len;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud) {
        call_t *c = ud;
        size_t len = size * nmemb;
        char *colon = memchr(p, ':', len);
        if (!colon)
                return len;
        char name[128], value[2048];
        size_t nl = (size_t)(colon - p), vl;
        if (nl >= sizeof(name))
                return len;
        for (size_t i = 0; i < nl; i++)
                name[i] = (char)tolower((unsigned char)p[i]);
        name[nl] = '\0';
        const char *v = colon + 1, *end = p + len;
        while (v < end && (*v == ' ' || *v == '\t'))
                v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
                end--;
        vl = (size_t)(end - v) < sizeof(value) - 1 ? (size_t)(end - v) : sizeof(value) - 1;
        memcpy(value, v, vl);
        value[vl] = '\0';
        if (!c->resp_headers)
                c->resp_headers = json_object();
        json_t *s = json_string(value);
        if (s)
                json_object_set_new(c->resp_headers, name, s);
        return len;
}

static void add_header(call_t *c, const char *name, const char *value) {
        char line[4096];
        if (!value)
                return;
        snprintf(line, sizeof(line), "%s: %s", name, value);
        c->hdrs = curl_slist_append(c->hdrs, line);
}

/* Builds, signs and adds one attempt to the multi handle. */
static int call_start(call_t *c, char *err, size_t n) {
        mmp_aws_credentials_t cred;
        mmp_sigv4_signed_t sig;
        uint8_t digest[32];
        char hex[65];
        const char *ctype = c->req.content_type ? c->req.content_type : "application/octet-stream";
        mmp_sigv4_header_t sh[6];
        size_t nsh = 0;

        if (mmp_endpoints_credentials(c->inv->eps, &cred, err, n))
                return -1;
        sh[nsh++] = (mmp_sigv4_header_t){"content-type", ctype};
        if (c->req.accept)
                sh[nsh++] = (mmp_sigv4_header_t){"accept", c->req.accept};
        if (c->req.custom_attributes)
                sh[nsh++] = (mmp_sigv4_header_t){"x-amzn-sagemaker-custom-attributes", c->req.custom_attributes};
        if (c->req.target_model)
                sh[nsh++] = (mmp_sigv4_header_t){"x-amzn-sagemaker-target-model", c->req.target_model};
        if (c->req.target_variant)
                sh[nsh++] = (mmp_sigv4_header_t){"x-amzn-sagemaker-target-variant", c->req.target_variant};
        if (c->req.inference_id)
                sh[nsh++] = (mmp_sigv4_header_t){"x-amzn-sagemaker-inference-id", c->req.inference_id};
        mmp_sha256(c->req.body ? c->req.body : "", c->req.len, digest);
        mmp_hex(digest, 32, hex);
        mmp_sigv4_request_t sr = {
            .method = "POST", .host = c->ep->host, .path = c->ep->path, .headers = sh, .n_headers = nsh,
            .payload_sha256 = hex, .region = mmp_endpoints_region(c->inv->eps), .service = "sagemaker",
            .access_key_id = cred.access_key_id, .secret_access_key = cred.secret_access_key,
            .session_token = cred.session_token, .now = time(NULL),
        };
        int rc = mmp_sigv4_sign(&sr, &sig, err, n);
        if (rc) {
                mmp_aws_credentials_clear(&cred);
                return -1;
        }
        for (size_t i = 0; i < nsh; i++)
                add_header(c, sh[i].name, sh[i].value);
        add_header(c, "X-Amz-Date", sig.amz_date);
        add_header(c, "x-amz-content-sha256", sig.content_sha256);
        add_header(c, "Authorization", sig.authorization);
        if (cred.session_token)
                add_header(c, "X-Amz-Security-Token", cred.session_token);
        c->hdrs = curl_slist_append(c->hdrs, "Expect:"); /* no 100-continue round trip */
        mmp_sigv4_signed_clear(&sig);
        mmp_aws_credentials_clear(&cred);

        c->easy = curl_easy_init();
        curl_easy_setopt(c->easy, CURLOPT_URL, c->ep->url);
        curl_easy_setopt(c->easy, CURLOPT_POST, 1L);
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->req.body ? c->req.body : "");
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->req.len);
        curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->hdrs);
        curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
        curl_easy_setopt(c->easy, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c->easy, CURLOPT_HEADERDATA, c);
        curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, (long)c->ep->timeout_ms);
        curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
        curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->errbuf);
        curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
        c->errbuf[0] = '\0';
        c->attempt++;
        curl_multi_add_handle(c->inv->multi, c->easy);
        return 0;
}

static void finish(call_t *c, int ok, int retriable, long status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Hands the outcome to the owner and frees the call (not on any list). */
static void finish(call_t *c, int ok, int retriable, long status, const char *type, const char *fmt, ...) {
        mmp_invoke_result_t *r = calloc(1, sizeof(*r));
        r->ok = ok;
        r->retriable = retriable;
        r->status = status;
        r->attempts = c->attempt;
        r->body = c->resp ? c->resp : strdup("");
        r->len = c->resp ? c->resp_len : 0;
        c->resp = NULL;
        r->headers = c->resp_headers ? c->resp_headers : json_object();
        c->resp_headers = NULL;
        if (!ok) {
                char msg[1024];
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(msg, sizeof(msg), fmt, ap);
                va_end(ap);
                if (asprintf(&r->error, "endpoint %s: %s (after %d attempt%s)", c->ep->name, msg, c->attempt,
                             c->attempt == 1 ? "" : "s") < 0)
                        r->error = NULL;
                r->error_type = strdup(type ? type : "error");
        }
        pthread_mutex_lock(&c->ep->lock);
        if (ok)
                ; /* counted in release */
        else
                c->ep->failed++;
        pthread_mutex_unlock(&c->ep->lock);
        void *tag = c->tag;
        int index = c->index;
        mmp_invoker_t *inv = c->inv;
        call_free(c);
        inv->done(inv->owner, tag, index, r);
}

static void requeue(call_t *c, int64_t delay_ms) {
        pthread_mutex_lock(&c->ep->lock);
        c->ep->retries++;
        pthread_mutex_unlock(&c->ep->lock);
        call_reset_attempt(c);
        c->wake_at_us = mmp_now_us() + delay_ms * 1000;
        c->next = c->inv->queued;
        c->inv->queued = c;
}

/* The error class of an answer: x-amzn-ErrorType ("ValidationError:http://...")
 * or the body's __type/code. */
static void error_type_of(call_t *c, char *out, size_t n, json_t **bodyj) {
        const char *t = json_string_value(json_object_get(c->resp_headers, "x-amzn-errortype"));
        json_error_t e;
        *bodyj = c->resp ? json_loadb(c->resp, c->resp_len, 0, &e) : NULL;
        if (!t && *bodyj)
                t = json_string_value(json_object_get(*bodyj, "__type"));
        if (!t && *bodyj)
                t = json_string_value(json_object_get(*bodyj, "code"));
        snprintf(out, n, "%s", t ? t : "");
        out[strcspn(out, ":")] = '\0';
        char *hash = strrchr(out, '#'); /* "com.amazon...#ValidationError" */
        if (hash)
                memmove(out, hash + 1, strlen(hash));
}

static int64_t retry_after_ms(call_t *c) {
        const char *ra = json_string_value(json_object_get(c->resp_headers, "retry-after"));
        if (!ra)
                return 0;
        char *end;
        double s = strtod(ra, &end);
        return end != ra && s > 0 ? (int64_t)(s * 1000) : 0;
}

/* Judges an attempt that is over. */
static void call_complete(call_t *c, CURLcode cc) {
        long status = 0;
        char type[128] = "", msg[512] = "";
        json_t *bodyj = NULL;
        int retriable = 0, counts = 1, waited_out = 0;

        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
        if (cc != CURLE_OK) {
                retriable = 1;
                snprintf(type, sizeof(type), "%s", cc == CURLE_OPERATION_TIMEDOUT ? "timeout" : "connection");
                snprintf(msg, sizeof(msg), "%s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
                status = 0;
        } else if (status >= 200 && status < 300) {
                mmp_endpoint_release(c->ep, c->is_probe, 1, 1);
                finish(c, 1, 0, status, NULL, "%s", "");
                return;
        } else {
                error_type_of(c, type, sizeof(type), &bodyj);
                const char *m = json_string_value(json_object_get(bodyj, "message"));
                if (!m)
                        m = json_string_value(json_object_get(bodyj, "Message"));
                snprintf(msg, sizeof(msg), "%s", m ? m : (c->resp ? c->resp : ""));
                msg[strcspn(msg, "\n")] = '\0';
                if (!strcmp(type, "ModelError")) {
                        /* The container's own status decides. */
                        json_int_t orig = json_integer_value(json_object_get(bodyj, "OriginalStatusCode"));
                        retriable = orig >= 500 || orig == 429;
                        counts = retriable;
                        char tmp[600];
                        snprintf(tmp, sizeof(tmp), "%s (the model answered %lld)", msg, (long long)orig);
                        snprintf(msg, sizeof(msg), "%s", tmp);
                } else if (!strcmp(type, "ModelNotReadyException")) {
                        retriable = 1;
                        waited_out = 1;
                        counts = 0;
                } else if (!strcmp(type, "ValidationError") || status == 400 || status == 403 || status == 404 ||
                           status == 413) {
                        retriable = 0;
                        counts = 0; /* the request's fault, not the endpoint's */
                } else {
                        retriable = mmp_retry_http_status(status);
                }
                if (!type[0])
                        snprintf(type, sizeof(type), "HTTP %ld", status);
        }
        json_decref(bodyj);
        mmp_endpoint_release(c->ep, c->is_probe, 0, counts);
        if (waited_out && c->not_ready++ < 120) {
                c->attempt--; /* the model is loading: wait, do not spend an attempt */
                requeue(c, retry_after_ms(c) > 0 ? retry_after_ms(c) : 1000);
                return;
        }
        if (retriable && c->attempt < c->ep->retry.attempts) {
                int64_t delay = mmp_retry_backoff_ms(&c->ep->retry, c->attempt - 1), ra = retry_after_ms(c);
                requeue(c, ra > delay ? ra : delay);
                return;
        }
        if (status)
                finish(c, 0, retriable, status, type, "%ld %s: %s", status, type, msg);
        else
                finish(c, 0, retriable, 0, type, "%s: %s", type, msg);
}

static void unlink_active(mmp_invoker_t *inv, call_t *c) {
        for (call_t **pp = &inv->active; *pp; pp = &(*pp)->next)
                if (*pp == c) {
                        *pp = c->next;
                        inv->n_active--;
                        return;
                }
}

int64_t mmp_invoker_run(mmp_invoker_t *inv) {
        int64_t now = mmp_now_us(), next = -1;
        call_t *c, **pp;
        int running;
        CURLMsg *m;
        int left;

        if (!inv)
                return -1;
        /* Start what may start; keep the rest queued with its wait. */
        pp = &inv->queued;
        while ((c = *pp)) {
                int64_t wait = c->wake_at_us > now ? c->wake_at_us - now : 0;
                const char *why = "";
                if (!wait)
                        wait = mmp_endpoint_acquire(c->ep, now, &c->is_probe, &why);
                if (wait) {
                        if (next < 0 || wait < next)
                                next = wait;
                        pp = &c->next;
                        continue;
                }
                *pp = c->next;
                char err[512];
                if (call_start(c, err, sizeof(err))) {
                        mmp_endpoint_release(c->ep, c->is_probe, 0, 0);
                        finish(c, 0, 1, 0, "credentials", "%s", err);
                        continue;
                }
                c->next = inv->active;
                inv->active = c;
                inv->n_active++;
        }
        curl_multi_perform(inv->multi, &running);
        while ((m = curl_multi_info_read(inv->multi, &left))) {
                if (m->msg != CURLMSG_DONE)
                        continue;
                curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
                unlink_active(inv, c);
                call_complete(c, m->data.result);
                next = 0; /* callbacks may have queued new calls */
        }
        if (inv->n_active) {
                long t = -1;
                curl_multi_timeout(inv->multi, &t);
                if (t >= 0 && (next < 0 || t * 1000 < next))
                        next = t * 1000;
        }
        return next;
}

void mmp_invoker_cancel(mmp_invoker_t *inv, void *tag) {
        if (!inv)
                return;
        for (int pass = 0; pass < 2; pass++) {
                call_t **pp = pass ? &inv->active : &inv->queued, *c;
                while ((c = *pp)) {
                        if (c->tag != tag) {
                                pp = &c->next;
                                continue;
                        }
                        *pp = c->next;
                        if (pass) {
                                inv->n_active--;
                                mmp_endpoint_release(c->ep, c->is_probe, 0, 0);
                        }
                        call_free(c);
                }
        }
}

void mmp_invoker_free(mmp_invoker_t *inv) {
        if (!inv)
                return;
        while (inv->queued) {
                call_t *c = inv->queued;
                inv->queued = c->next;
                call_free(c);
        }
        while (inv->active) {
                call_t *c = inv->active;
                inv->active = c->next;
                mmp_endpoint_release(c->ep, c->is_probe, 0, 0);
                call_free(c);
        }
        free(inv);
}
