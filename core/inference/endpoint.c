/*
 * Endpoint settings and the shared per-endpoint state (limit, rate,
 * breaker). Settings are read on the main thread; the state is used by
 * every lane under the endpoint's lock.
 */
#include "inference/endpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetch/sigv4.h"
#include "util/log.h"
#include "util/time.h"

struct mmp_endpoints {
        char *region;
        char *base_url; /* scheme://host[:port] */
        char *profile;
        mmp_endpoint_t defaults;
        const json_t *configured; /* sagemaker.endpoints (borrowed from the config) */
        pthread_mutex_t lock;     /* the list and the credentials */
        mmp_endpoint_t **v;
        size_t n;
        mmp_aws_credentials_t creds;
        int have_creds;
};

static int read_int(const json_t *o, const char *path, const char *key, int64_t min, int64_t *out, char *err,
                    size_t n) {
        const json_t *v = json_object_get(o, key);
        if (!v)
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < min) {
                snprintf(err, n, "%s.%s: expected an integer >= %lld", path, key, (long long)min);
                return -1;
        }
        *out = json_integer_value(v);
        return 0;
}

/* Reads a policy object (defaults or one endpoint) over p. */
static int read_policy(const json_t *o, const char *path, mmp_endpoint_t *p, char *err, size_t n) {
        static const char *const known[] = {"max_in_flight", "rate_per_s", "timeout_ms", "retries", "breaker",
                                            "endpoint_name", NULL};
        const char *k;
        json_t *v;
        int64_t iv;
        if (!json_is_object(o)) {
                snprintf(err, n, "%s: expected an object", path);
                return -1;
        }
        json_object_foreach((json_t *)o, k, v) {
                int ok = 0;
                for (int i = 0; known[i]; i++)
                        ok |= !strcmp(k, known[i]);
                if (!ok) {
                        snprintf(err, n, "unknown key \"%s.%s\" (known: max_in_flight, rate_per_s, timeout_ms, "
                                         "retries, breaker, endpoint_name)",
                                 path, k);
                        return -1;
                }
        }
        iv = p->max_in_flight;
        if (read_int(o, path, "max_in_flight", 1, &iv, err, n))
                return -1;
        p->max_in_flight = (int)iv;
        if ((v = json_object_get(o, "rate_per_s"))) {
                if (!json_is_number(v) || json_number_value(v) < 0) {
                        snprintf(err, n, "%s.rate_per_s: expected a number >= 0 (0: no limit)", path);
                        return -1;
                }
                p->rate_per_s = json_number_value(v);
        }
        if (read_int(o, path, "timeout_ms", 1, &p->timeout_ms, err, n))
                return -1;
        if ((v = json_object_get(o, "retries"))) {
                char sub[256];
                snprintf(sub, sizeof(sub), "%s.retries", path);
                iv = p->retry.attempts;
                if (!json_is_object(v) || read_int(v, sub, "attempts", 1, &iv, err, n) ||
                    read_int(v, sub, "base_ms", 1, &p->retry.base_ms, err, n) ||
                    read_int(v, sub, "cap_ms", 1, &p->retry.cap_ms, err, n)) {
                        if (!json_is_object(v))
                                snprintf(err, n, "%s: expected {attempts, base_ms, cap_ms}", sub);
                        return -1;
                }
                p->retry.attempts = (int)iv;
        }
        if ((v = json_object_get(o, "breaker"))) {
                char sub[256];
                snprintf(sub, sizeof(sub), "%s.breaker", path);
                iv = p->breaker_failures;
                if (!json_is_object(v) || read_int(v, sub, "failures", 1, &iv, err, n) ||
                    read_int(v, sub, "open_ms", 1, &p->breaker_open_ms, err, n)) {
                        if (!json_is_object(v))
                                snprintf(err, n, "%s: expected {failures, open_ms}", sub);
                        return -1;
                }
                p->breaker_failures = (int)iv;
        }
        return 0;
}

mmp_endpoints_t *mmp_endpoints_new(const mmp_config_t *cfg, char *err, size_t n) {
        mmp_endpoints_t *eps = calloc(1, sizeof(*eps));
        const json_t *sec = mmp_config_get(cfg, "sagemaker"), *v;
        const char *k;
        const char *region = getenv("AWS_REGION") ? getenv("AWS_REGION") : getenv("AWS_DEFAULT_REGION");
        char url[512];

        pthread_mutex_init(&eps->lock, NULL);
        eps->defaults.max_in_flight = 64;
        eps->defaults.timeout_ms = 70000; /* the container has 60 s, the client a margin */
        eps->defaults.retry = (mmp_retry_policy_t){5, 100, 20000};
        eps->defaults.breaker_failures = 5;
        eps->defaults.breaker_open_ms = 10000;
        if (sec && !json_is_object(sec)) {
                snprintf(err, n, "sagemaker: expected an object");
                goto fail;
        }
        json_object_foreach((json_t *)sec, k, v) {
                if (strcmp(k, "region") && strcmp(k, "endpoint_url") && strcmp(k, "profile") &&
                    strcmp(k, "defaults") && strcmp(k, "endpoints")) {
                        snprintf(err, n, "unknown key \"sagemaker.%s\" (known: region, endpoint_url, profile, "
                                         "defaults, endpoints)",
                                 k);
                        goto fail;
                }
                if (strcmp(k, "defaults") && strcmp(k, "endpoints") && (!json_is_string(v) || !json_string_length(v))) {
                        snprintf(err, n, "sagemaker.%s: expected a non-empty string", k);
                        goto fail;
                }
        }
        if ((v = json_object_get(sec, "region")))
                region = json_string_value(v);
        eps->region = strdup(region && *region ? region : "us-east-1");
        if ((v = json_object_get(sec, "profile")))
                eps->profile = strdup(json_string_value(v));
        if ((v = json_object_get(sec, "endpoint_url"))) {
                const char *u = json_string_value(v);
                if (strncmp(u, "http://", 7) && strncmp(u, "https://", 8)) {
                        snprintf(err, n, "sagemaker.endpoint_url: expected an http:// or https:// URL, got \"%s\"", u);
                        goto fail;
                }
                snprintf(url, sizeof(url), "%s", u);
                size_t l = strlen(url);
                while (l && url[l - 1] == '/')
                        url[--l] = '\0';
        } else {
                snprintf(url, sizeof(url), "https://runtime.sagemaker.%s.amazonaws.com", eps->region);
        }
        eps->base_url = strdup(url);
        if ((v = json_object_get(sec, "defaults")) && read_policy(v, "sagemaker.defaults", &eps->defaults, err, n))
                goto fail;
        if ((v = json_object_get(sec, "endpoints"))) {
                if (!json_is_object(v)) {
                        snprintf(err, n, "sagemaker.endpoints: expected an object of endpoint names");
                        goto fail;
                }
                json_t *ep;
                json_object_foreach((json_t *)v, k, ep) {
                        char path[300];
                        mmp_endpoint_t probe = eps->defaults;
                        snprintf(path, sizeof(path), "sagemaker.endpoints.%s", k);
                        if (read_policy(ep, path, &probe, err, n))
                                goto fail;
                }
                eps->configured = v;
        }
        return eps;
fail:
        mmp_endpoints_free(eps);
        return NULL;
}

static void endpoint_free(mmp_endpoint_t *ep) {
        free(ep->name);
        free(ep->endpoint_name);
        free(ep->url);
        free(ep->host);
        free(ep->path);
        pthread_mutex_destroy(&ep->lock);
        free(ep);
}

void mmp_endpoints_free(mmp_endpoints_t *eps) {
        if (!eps)
                return;
        for (size_t i = 0; i < eps->n; i++) {
                mmp_endpoint_t *ep = eps->v[i];
                if (ep->calls)
                        mmp_info("inference", "endpoint %s: %ld calls, %ld ok, %ld failed, %ld retries, at most %d "
                                              "in flight",
                                 ep->name, ep->calls, ep->ok, ep->failed, ep->retries, ep->max_seen);
                endpoint_free(ep);
        }
        free(eps->v);
        free(eps->region);
        free(eps->base_url);
        free(eps->profile);
        mmp_aws_credentials_clear(&eps->creds);
        pthread_mutex_destroy(&eps->lock);
        free(eps);
}

const char *mmp_endpoints_region(const mmp_endpoints_t *eps) {
        return eps->region;
}

static mmp_endpoint_t *endpoint_make(mmp_endpoints_t *eps, const char *name) {
        mmp_endpoint_t *ep = calloc(1, sizeof(*ep));
        const json_t *conf = eps->configured ? json_object_get(eps->configured, name) : NULL, *v;
        char err[256];
        *ep = eps->defaults;
        pthread_mutex_init(&ep->lock, NULL);
        if (conf)
                read_policy(conf, "sagemaker.endpoints", ep, err, sizeof(err)); /* checked at start-up */
        ep->name = strdup(name);
        v = conf ? json_object_get(conf, "endpoint_name") : NULL;
        ep->endpoint_name = strdup(json_is_string(v) ? json_string_value(v) : name);
        char *enc = mmp_sigv4_uri_encode(ep->endpoint_name, 0);
        const char *hoststart = strstr(eps->base_url, "://") + 3;
        if (asprintf(&ep->path, "/endpoints/%s/invocations", enc) < 0 ||
            asprintf(&ep->url, "%s%s", eps->base_url, ep->path) < 0)
                ep->path = ep->url = NULL;
        ep->host = strdup(hoststart);
        free(enc);
        ep->tokens = ep->rate_per_s > 1 ? ep->rate_per_s : 1;
        ep->tokens_at_us = mmp_now_us();
        return ep;
}

mmp_endpoint_t *mmp_endpoints_get(mmp_endpoints_t *eps, const char *name) {
        mmp_endpoint_t *ep = NULL;
        pthread_mutex_lock(&eps->lock);
        for (size_t i = 0; i < eps->n && !ep; i++)
                if (!strcmp(eps->v[i]->name, name))
                        ep = eps->v[i];
        if (!ep) {
                ep = endpoint_make(eps, name);
                eps->v = realloc(eps->v, (eps->n + 1) * sizeof(*eps->v));
                eps->v[eps->n++] = ep;
        }
        pthread_mutex_unlock(&eps->lock);
        return ep;
}

int mmp_endpoints_credentials(mmp_endpoints_t *eps, mmp_aws_credentials_t *out, char *err, size_t n) {
        int rc = 0;
        pthread_mutex_lock(&eps->lock);
        if (!eps->have_creds || mmp_aws_credentials_stale(&eps->creds)) {
                mmp_aws_credentials_lookup_t lk = {.profile = eps->profile, .profile_is_explicit = eps->profile != NULL};
                mmp_aws_credentials_clear(&eps->creds);
                eps->have_creds = mmp_aws_credentials_resolve(&lk, &eps->creds, err, n) == 0;
                rc = eps->have_creds ? 0 : -1;
        }
        if (!rc) {
                memset(out, 0, sizeof(*out));
                out->access_key_id = strdup(eps->creds.access_key_id);
                out->secret_access_key = strdup(eps->creds.secret_access_key);
                out->session_token = eps->creds.session_token ? strdup(eps->creds.session_token) : NULL;
        }
        pthread_mutex_unlock(&eps->lock);
        return rc;
}

int64_t mmp_endpoint_acquire(mmp_endpoint_t *ep, int64_t now, int *is_probe, const char **why) {
        int64_t wait = 0;
        *is_probe = 0;
        pthread_mutex_lock(&ep->lock);
        if (ep->breaker == MMP_BREAKER_OPEN) {
                if (now < ep->open_until_us) {
                        wait = ep->open_until_us - now;
                        *why = "open";
                        goto out;
                }
                ep->breaker = MMP_BREAKER_HALF_OPEN; /* one probe decides */
        }
        if (ep->breaker == MMP_BREAKER_HALF_OPEN) {
                if (ep->probing) {
                        wait = 50000;
                        *why = "open";
                        goto out;
                }
        }
        if (ep->in_flight >= ep->max_in_flight) {
                wait = 2000; /* woken early when a slot frees */
                *why = "limit";
                goto out;
        }
        if (ep->rate_per_s > 0) {
                double burst = ep->rate_per_s > 1 ? ep->rate_per_s : 1;
                ep->tokens += (now - ep->tokens_at_us) / 1e6 * ep->rate_per_s;
                if (ep->tokens > burst)
                        ep->tokens = burst;
                ep->tokens_at_us = now;
                if (ep->tokens < 1) {
                        wait = (int64_t)((1 - ep->tokens) / ep->rate_per_s * 1e6) + 1;
                        *why = "rate";
                        goto out;
                }
                ep->tokens -= 1;
        }
        if (ep->breaker == MMP_BREAKER_HALF_OPEN) {
                ep->probing = 1;
                *is_probe = 1;
        }
        ep->in_flight++;
        if (ep->in_flight > ep->max_seen)
                ep->max_seen = ep->in_flight;
        ep->calls++;
out:
        pthread_mutex_unlock(&ep->lock);
        return wait;
}

void mmp_endpoint_release(mmp_endpoint_t *ep, int is_probe, int success, int counts) {
        pthread_mutex_lock(&ep->lock);
        ep->in_flight--;
        if (is_probe)
                ep->probing = 0;
        if (success) {
                ep->ok++;
                if (ep->breaker != MMP_BREAKER_CLOSED)
                        mmp_info("inference", "endpoint %s: circuit closed again", ep->name);
                ep->breaker = MMP_BREAKER_CLOSED;
                ep->consecutive_failures = 0;
        } else if (counts) {
                ep->consecutive_failures++;
                if ((is_probe || ep->consecutive_failures >= ep->breaker_failures) && ep->breaker != MMP_BREAKER_OPEN) {
                        ep->breaker = MMP_BREAKER_OPEN;
                        ep->open_until_us = mmp_now_us() + ep->breaker_open_ms * 1000;
                        mmp_warn("inference", "endpoint %s: circuit open for %lld ms after %d consecutive failures",
                                 ep->name, (long long)ep->breaker_open_ms, ep->consecutive_failures);
                }
        }
        pthread_mutex_unlock(&ep->lock);
}
