/*
 * `mmpipe serve`'s HTTP side: SageMaker's container contract (GET /ping,
 * POST /invocations) over libmicrohttpd. Requests run on libmicrohttpd's
 * thread pool, one invocation per pool thread at a time; the plugin
 * operation is called on that thread. docs/serve.md is the user's view.
 */
#include "serve/serve.h"

#include <stdio.h>
#include <string.h>

#ifndef MMP_WITH_SERVE

mmp_serve_t *mmp_serve_new(const mmp_plugin_inst_t *inst, const mmp_plugin_op_t *op, const mmp_serve_opts_t *opts,
                           char *errstr, size_t errstr_size) {
        snprintf(errstr, errstr_size, "not supported in this build: libmicrohttpd was not found when mmpipe was built");
        return NULL;
}

int mmp_serve_port(const mmp_serve_t *s) {
        return 0;
}

void mmp_serve_free(mmp_serve_t *s) {
}

const char *mmp_serve_feature(void) {
        return "no (not supported in this build: libmicrohttpd was not found)";
}

#else /* MMP_WITH_SERVE */

#include <ctype.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "plugin/host.h"
#include "plugin/value.h"
#include "util/log.h"
#include "util/time.h"

#if MHD_VERSION < 0x00097002
typedef int mhd_result_t;
#else
typedef enum MHD_Result mhd_result_t;
#endif

#ifndef MHD_HTTP_CONTENT_TOO_LARGE /* before 0.9.74 */
#define MHD_HTTP_CONTENT_TOO_LARGE 413
#endif

#define CUSTOM_ATTRIBUTES "X-Amzn-SageMaker-Custom-Attributes"
/* SageMaker's limit on the custom attributes header: 1024 visible ASCII characters. */
#define CUSTOM_ATTRIBUTES_MAX 1024
/* The most a too large body is read (and dropped) to answer 413 cleanly. */
#define DISCARD_MAX ((unsigned long long)64 << 20)
/* How long SIGTERM waits for invocations in flight before cancelling them. */
#define DRAIN_MS 10000

struct mmp_serve {
        struct MHD_Daemon *daemon;
        const mmp_plugin_inst_t *inst;
        const mmp_plugin_op_t *op;
        char qualified[160]; /* plugin.op, for messages */
        size_t max_body;
        int timeout_ms;
        int port;
        atomic_int in_flight; /* requests presented and not yet completed */
        volatile int cancel;  /* raised when draining gave up: plugins see call_cancelled */
};

/* One request, from its headers to its completion. */
typedef struct request {
        char *body;
        size_t len, cap;
        int too_large;
        int64_t started_us;
} request_t;

/* ---- responses ---- */

static int printable_ascii(const char *s) {
        for (; *s; s++)
                if (*s < 0x20 || *s > 0x7E)
                        return 0;
        return 1;
}

/* Queues `body` (malloc'd, taken; NULL = empty) with `status`; logs the
 * request: errors at warn with `why`, the rest at debug. */
static mhd_result_t reply(mmp_serve_t *s, struct MHD_Connection *c, const request_t *r, const char *method,
                          const char *url, unsigned status, char *body, const char *why) {
        size_t len = body ? strlen(body) : 0;
        struct MHD_Response *resp;
        const char *attrs;
        mhd_result_t rc;
        double ms = r ? (mmp_now_us() - r->started_us) / 1000.0 : 0;

        resp = body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)
                    : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (!resp) {
                free(body);
                return MHD_NO; /* libmicrohttpd closes the connection */
        }
        if (body)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, !strcmp(url, "/ping") ? "GET, HEAD" : "POST");
        /* SageMaker hands the caller's custom attributes to the container and
         * returns what the container answers in the same header: echo them. */
        attrs = MHD_lookup_connection_value(c, MHD_HEADER_KIND, CUSTOM_ATTRIBUTES);
        if (attrs && strlen(attrs) <= CUSTOM_ATTRIBUTES_MAX && printable_ascii(attrs))
                MHD_add_response_header(resp, CUSTOM_ATTRIBUTES, attrs);
        rc = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        if (status >= 400)
                mmp_warn("serve", "%s %s -> %u in %.1f ms: %s", method, url, status, ms, why ? why : "");
        else
                mmp_debug("serve", "%s %s -> %u in %.1f ms (%zu bytes in, %zu out)", method, url, status, ms,
                          r ? r->len : 0, len);
        return rc;
}

/* A JSON error body {"error": message}; the message is logged too. */
static mhd_result_t reply_error(mmp_serve_t *s, struct MHD_Connection *c, const request_t *r, const char *method,
                                const char *url, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static mhd_result_t reply_error(mmp_serve_t *s, struct MHD_Connection *c, const request_t *r, const char *method,
                                const char *url, unsigned status, const char *fmt, ...) {
        char msg[1280];
        json_t *j;
        char *body;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        /* json_string refuses invalid UTF-8 (an echoed path could hold it). */
        if (!(j = json_pack("{s:s}", "error", msg)))
                j = json_pack("{s:s}", "error", "(the error message is not valid UTF-8)");
        body = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        return reply(s, c, r, method, url, status, body, msg);
}

/* ---- invocations ---- */

/* The media type of a Content-Type or Accept item, lower-cased, without
 * parameters, into out. */
static void media_type(const char *v, char *out, size_t n) {
        size_t i = 0;
        while (*v == ' ' || *v == '\t')
                v++;
        for (; *v && *v != ';' && *v != ',' && *v != ' ' && i + 1 < n; v++)
                out[i++] = (char)tolower((unsigned char)*v);
        out[i] = '\0';
}

static int is_json_type(const char *mt) {
        size_t l = strlen(mt);
        return !strcmp(mt, "application/json") || (l > 5 && !strcmp(mt + l - 5, "+json"));
}

/* Whether an Accept header admits application/json. */
static int accepts_json(const char *accept) {
        char mt[128];
        if (!accept || !*accept)
                return 1;
        for (const char *p = accept; p; p = strchr(p, ',')) {
                if (*p == ',')
                        p++;
                media_type(p, mt, sizeof(mt));
                if (!strcmp(mt, "*/*") || !strcmp(mt, "application/*") || is_json_type(mt))
                        return 1;
        }
        return 0;
}

/* Runs the operation once on `input` (borrowed). Returns the result as
 * JSON, or NULL with the HTTP status and message: 400 for a refused input,
 * 503 when the plugin says trying again may succeed, 500 for our faults. */
static json_t *run_op(mmp_serve_t *s, const mmp_value_t *input, const mmp_value_t *opts, int64_t deadline_us,
                      unsigned *status, char *err, size_t errsz) {
        mmp_value_t *result = NULL;
        mmp_tmplist_t tmp;
        mmp_call_t call;
        json_t *out;
        char why[1024];

        mmp_tmplist_init(&tmp);
        mmp_call_init(&call, s->inst->desc->name, s->op->name, deadline_us, &s->cancel, &tmp);
        if (s->cancel)
                mmp_call_fail_cancelled(&call);
        else
                result = s->op->fn(s->inst->state, &call, input, opts);
        mmp_tmplist_clear(&tmp);
        if (!result) {
                *status = !call.failed     ? MHD_HTTP_INTERNAL_SERVER_ERROR
                          : call.retriable ? MHD_HTTP_SERVICE_UNAVAILABLE
                                           : MHD_HTTP_BAD_REQUEST;
                snprintf(err, errsz, "%s: %s", s->qualified,
                         call.failed ? call.errmsg : "returned no result and no error");
                return NULL;
        }
        if (!(out = mmp_value_to_json(result, why, sizeof(why)))) {
                *status = MHD_HTTP_INTERNAL_SERVER_ERROR;
                snprintf(err, errsz, "%s: the result cannot be written as JSON: %s", s->qualified, why);
        }
        mmp_value_free(result);
        return out;
}

/* The request's input (new value) and its opts (the "parameters" of an
 * {"inputs", "parameters"} body, else NULL); *batch when the input is the
 * list of "inputs", to run the operation on each item. NULL: a 4xx/5xx in
 * *status and err. */
static mmp_value_t *parse_body(const request_t *r, const char *ctype, mmp_value_t **opts, int *batch,
                               unsigned *status, char *err, size_t errsz) {
        const char *data = r->body ? r->body : "";
        char mt[128];
        json_error_t jerr;
        json_t *body, *in, *params;
        mmp_value_t *v;

        *opts = NULL;
        *batch = 0;
        *status = MHD_HTTP_INTERNAL_SERVER_ERROR; /* the only failure left below: no memory */
        snprintf(err, errsz, "out of memory");
        media_type(ctype ? ctype : "application/json", mt, sizeof(mt));
        /* Plain text is the input as it is; the operation judges its bytes. */
        if (!strcmp(mt, "text/plain"))
                return mmp_value_new_string(data, r->len);
        /* Anything else that is not JSON (images, audio, ...) is a blob
         * carrying its Content-Type, as the engine hands media to plugins. */
        if (!is_json_type(mt))
                return mmp_blob_new(data, r->len, ctype);
        if (!(body = json_loadb(data, r->len, JSON_DECODE_ANY, &jerr))) {
                *status = MHD_HTTP_BAD_REQUEST;
                snprintf(err, errsz, "invalid JSON: %s at line %d, column %d", jerr.text, jerr.line, jerr.column);
                return NULL;
        }
        if (json_is_object(body) && (in = json_object_get(body, "inputs"))) {
                params = json_object_get(body, "parameters");
                if (params && !json_is_object(params) && !json_is_null(params)) {
                        *status = MHD_HTTP_BAD_REQUEST;
                        snprintf(err, errsz, "\"parameters\" must be an object");
                        json_decref(body);
                        return NULL;
                }
                if (json_is_object(params) && !(*opts = mmp_value_from_json(params))) {
                        json_decref(body);
                        return NULL;
                }
                *batch = json_is_array(in);
        } else {
                in = body;
        }
        v = mmp_value_from_json(in);
        json_decref(body);
        if (!v) {
                mmp_value_free(*opts);
                *opts = NULL;
        }
        return v;
}

static mhd_result_t invoke(mmp_serve_t *s, struct MHD_Connection *c, request_t *r, const char *url) {
        const char *ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        int64_t deadline = s->timeout_ms > 0 ? mmp_now_us() + (int64_t)s->timeout_ms * 1000 : 0;
        char err[1280];
        unsigned status;
        mmp_value_t *input, *opts;
        json_t *out = NULL;
        char *body;
        int batch;

        if (!accepts_json(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT)))
                return reply_error(s, c, r, "POST", url, MHD_HTTP_NOT_ACCEPTABLE,
                                   "this endpoint answers application/json only (see the Accept header)");
        if (!(input = parse_body(r, ctype, &opts, &batch, &status, err, sizeof(err))))
                return reply_error(s, c, r, "POST", url, status, "%s", err);
        if (!batch) {
                out = run_op(s, input, opts, deadline, &status, err, sizeof(err));
        } else if ((out = json_array())) {
                for (size_t i = 0; i < mmp_value_len(input); i++) {
                        char one_err[1024];
                        json_t *one = run_op(s, mmp_value_index(input, i), opts, deadline, &status, one_err,
                                             sizeof(one_err));
                        if (!one) {
                                snprintf(err, sizeof(err), "inputs[%zu]: %s", i, one_err);
                                json_decref(out);
                                out = NULL;
                                break;
                        }
                        json_array_append_new(out, one);
                }
        } else {
                status = MHD_HTTP_INTERNAL_SERVER_ERROR;
                snprintf(err, sizeof(err), "out of memory");
        }
        mmp_value_free(input);
        mmp_value_free(opts);
        if (!out)
                return reply_error(s, c, r, "POST", url, status, "%s", err);
        body = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(out);
        if (!body)
                return reply_error(s, c, r, "POST", url, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return reply(s, c, r, "POST", url, MHD_HTTP_OK, body, NULL);
}

/* ---- the request handler ---- */

/* Body bytes of /invocations, up to the limit; past it the rest is read
 * and dropped, and the answer is 413. */
static void take_body(mmp_serve_t *s, request_t *r, const char *data, size_t n) {
        if (r->too_large || n > s->max_body - r->len) {
                r->too_large = 1;
                return;
        }
        if (r->len + n > r->cap) {
                size_t cap = r->cap ? r->cap : 16384;
                char *p;
                while (cap < r->len + n)
                        cap *= 2;
                if (cap > s->max_body)
                        cap = s->max_body;
                if (!(p = realloc(r->body, cap))) {
                        r->too_large = 1; /* answered as 413: the only limit we can state */
                        return;
                }
                r->body = p;
                r->cap = cap;
        }
        memcpy(r->body + r->len, data, n);
        r->len += n;
}

/* "/invocations" (the container contract), or the runtime API's
 * "/endpoints/NAME/invocations" (any NAME), so that mmpipe.invoke pointed
 * at this server with sagemaker.endpoint_url reaches the operation too. */
static int is_invocations_path(const char *url) {
        const char *name, *slash;
        if (!strcmp(url, "/invocations"))
                return 1;
        if (strncmp(url, "/endpoints/", 11))
                return 0;
        name = url + 11;
        slash = strchr(name, '/');
        return slash && slash > name && !strcmp(slash, "/invocations");
}

/* The path as logs and error bodies show it: printable ASCII (the client
 * chose these bytes, and libmicrohttpd has %-decoded them), at most 200. */
static void shown_path(const char *url, char *out, size_t n) {
        size_t i = 0;
        for (; *url && i + 4 < n && i < 200; url++)
                out[i++] = (*url >= 0x20 && *url <= 0x7E) ? *url : '?';
        if (*url)
                out[i++] = '.', out[i++] = '.', out[i++] = '.';
        out[i] = '\0';
}

static mhd_result_t on_request(void *cls, struct MHD_Connection *c, const char *raw_url, const char *method,
                               const char *version, const char *data, size_t *data_size, void **con_cls) {
        mmp_serve_t *s = cls;
        request_t *r = *con_cls;
        int is_ping = !strcmp(raw_url, "/ping"), is_invoke = is_invocations_path(raw_url);
        int invoking = is_invoke && !strcmp(method, "POST");
        char url[208];

        shown_path(raw_url, url, sizeof(url));

        if (!r) { /* headers are in, the body (if any) is not */
                const char *cl;
                if (!(r = calloc(1, sizeof(*r))))
                        return MHD_NO;
                r->started_us = mmp_now_us();
                *con_cls = r;
                atomic_fetch_add(&s->in_flight, 1);
                /* A declared length over the limit: a client waiting on
                 * "Expect: 100-continue" is answered at once and never sends
                 * the body; any other would see its connection closed while
                 * it writes, so its body is read, dropped and then answered
                 * (up to DISCARD_MAX). Every other answer also waits for the
                 * end of the request: the connection stays open for the next. */
                cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                if (invoking && cl && strtoull(cl, NULL, 10) > s->max_body) {
                        const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
                        if ((expect && strcasestr(expect, "100-continue")) || strtoull(cl, NULL, 10) > DISCARD_MAX)
                                return reply_error(s, c, r, method, url, MHD_HTTP_CONTENT_TOO_LARGE,
                                                   "request body of %s bytes is over the limit of %zu bytes", cl,
                                                   s->max_body);
                        r->too_large = 1;
                }
                return MHD_YES;
        }
        if (*data_size) {
                if (invoking)
                        take_body(s, r, data, *data_size);
                *data_size = 0; /* other requests' bodies are read and dropped */
                return MHD_YES;
        }
        if (is_ping)
                return strcmp(method, "GET") && strcmp(method, "HEAD")
                           ? reply_error(s, c, r, method, url, MHD_HTTP_METHOD_NOT_ALLOWED, "/ping answers GET")
                           : reply(s, c, r, method, url, MHD_HTTP_OK, NULL, NULL);
        if (!is_invoke)
                return reply_error(s, c, r, method, url, MHD_HTTP_NOT_FOUND,
                                   "no such path: %s (this container serves GET /ping and POST /invocations)", url);
        if (!invoking)
                return reply_error(s, c, r, method, url, MHD_HTTP_METHOD_NOT_ALLOWED, "%s answers POST", url);
        if (r->too_large)
                return reply_error(s, c, r, method, url, MHD_HTTP_CONTENT_TOO_LARGE,
                                   "request body is over the limit of %zu bytes", s->max_body);
        return invoke(s, c, r, url);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why) {
        mmp_serve_t *s = cls;
        request_t *r = *con_cls;
        if (!r)
                return;
        free(r->body);
        free(r);
        *con_cls = NULL;
        atomic_fetch_sub(&s->in_flight, 1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
        char msg[1024];
        size_t n;
        vsnprintf(msg, sizeof(msg), fmt, ap);
        n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
                msg[--n] = '\0';
        mmp_warn("serve", "libmicrohttpd: %s", msg);
}

/* ---- the server ---- */

static int resolve(const char *host, int port, struct sockaddr_storage *ss, char *errstr, size_t n) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
        struct addrinfo *res = NULL;
        char portstr[16];
        int rc;

        snprintf(portstr, sizeof(portstr), "%d", port);
        if ((rc = getaddrinfo(host, portstr, &hints, &res)) || !res) {
                snprintf(errstr, n, "cannot resolve --host %s: %s", host, rc ? gai_strerror(rc) : "no address");
                return -1;
        }
        memcpy(ss, res->ai_addr, res->ai_addrlen);
        freeaddrinfo(res);
        return 0;
}

mmp_serve_t *mmp_serve_new(const mmp_plugin_inst_t *inst, const mmp_plugin_op_t *op, const mmp_serve_opts_t *opts,
                           char *errstr, size_t errstr_size) {
        struct sockaddr_storage ss;
        const union MHD_DaemonInfo *info;
        unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC;
        const char *host = opts->host && *opts->host ? opts->host : "0.0.0.0";
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned workers = opts->workers > 0 ? (unsigned)opts->workers : cores > 0 ? (unsigned)cores : 1;
        mmp_serve_t *s;

        if (opts->port < 0 || opts->port > 65535) {
                snprintf(errstr, errstr_size, "port %d is out of range (0..65535)", opts->port);
                return NULL;
        }
        if (resolve(host, opts->port, &ss, errstr, errstr_size))
                return NULL;
        if (!(s = calloc(1, sizeof(*s)))) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        s->inst = inst;
        s->op = op;
        snprintf(s->qualified, sizeof(s->qualified), "%s.%s", inst->desc->name, op->name);
        s->max_body = opts->max_body ? opts->max_body : MMP_SERVE_MAX_BODY;
        s->timeout_ms = opts->timeout_ms ? opts->timeout_ms : MMP_SERVE_DEFAULT_TIMEOUT_MS;
        if (ss.ss_family == AF_INET6)
                flags |= MHD_USE_IPv6;
        s->daemon = MHD_start_daemon(
            flags, (uint16_t)opts->port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, workers,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
            /* keep-alive connections from SageMaker's front end idle for long */
            MHD_OPTION_CONNECTION_TIMEOUT, 300u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)128 * 1024,
            MHD_OPTION_END);
        if (!s->daemon) {
                snprintf(errstr, errstr_size, "cannot listen on %s port %d (in use? see the log above)", host,
                         opts->port);
                free(s);
                return NULL;
        }
        info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
        s->port = info ? info->port : opts->port;
        mmp_info("serve", "serving %s on http://%s%s%s:%d (GET /ping, POST /invocations; %u workers, body limit %zu bytes)",
                 s->qualified, strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", s->port, workers,
                 s->max_body);
        return s;
}

int mmp_serve_port(const mmp_serve_t *s) {
        return s ? s->port : 0;
}

void mmp_serve_free(mmp_serve_t *s) {
        int64_t until;
        MHD_socket fd;

        if (!s)
                return;
        /* Stop accepting; let what is in flight finish, then cancel it. */
        if ((fd = MHD_quiesce_daemon(s->daemon)) != MHD_INVALID_SOCKET)
                close(fd);
        until = mmp_now_ms() + DRAIN_MS;
        while (atomic_load(&s->in_flight) > 0 && mmp_now_ms() < until)
                usleep(10000);
        if (atomic_load(&s->in_flight) > 0) {
                mmp_warn("serve", "%d requests still in flight after %d ms: cancelling them",
                         atomic_load(&s->in_flight), DRAIN_MS);
                s->cancel = 1;
        }
        MHD_stop_daemon(s->daemon);
        free(s);
}

const char *mmp_serve_feature(void) {
        static char buf[96];
        snprintf(buf, sizeof(buf), "yes (libmicrohttpd %s; mmpipe serve)", MHD_get_version());
        return buf;
}

#endif /* MMP_WITH_SERVE */
