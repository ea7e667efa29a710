/*
 * The lane's inference client: SageMaker InvokeEndpoint calls (or any
 * endpoint speaking its HTTP contract) on the lane's curl multi handle, so a
 * lane keeps hundreds of calls in flight without threads. Per call: SigV4
 * for service "sagemaker", the endpoint's limit, rate and circuit breaker,
 * retries with full-jitter backoff honouring Retry-After, and SageMaker's
 * error classes. Owned and driven by one lane thread.
 */
#ifndef MMP_INVOKE_H
#define MMP_INVOKE_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdint.h>

#include "inference/endpoint.h"

#define MMP_INVOKE_MAX_BODY (6 * 1024 * 1024) /* SageMaker's request limit */

typedef struct mmp_invoke_request {
        char *endpoint;
        char *body;
        size_t len;
        char *content_type, *accept, *custom_attributes, *target_model, *target_variant, *inference_id;
} mmp_invoke_request_t;

typedef struct mmp_invoke_result {
        int ok;
        long status;       /* HTTP status of the last attempt, 0 when none answered */
        char *body;        /* response body (NUL-terminated copy) */
        size_t len;
        json_t *headers;   /* lower-case name -> value */
        char *error;       /* when !ok: one line naming the endpoint, status, class and message */
        char *error_type;  /* ValidationError, ModelError, ThrottlingException, timeout, connection ... */
        int attempts;
        int retriable;     /* when !ok: could it succeed later */
} mmp_invoke_result_t;

void mmp_invoke_request_clear(mmp_invoke_request_t *r);
void mmp_invoke_result_free(mmp_invoke_result_t *r);

/* Called on the lane thread when a call is over (ok or not after its
 * retries). res is owned by the callee. */
typedef void (*mmp_invoke_done_fn)(void *owner, void *tag, int index, mmp_invoke_result_t *res);

typedef struct mmp_invoker mmp_invoker_t;

mmp_invoker_t *mmp_invoker_new(CURLM *multi, mmp_endpoints_t *eps, mmp_invoke_done_fn done, void *owner);
/* Queues a call (takes req's contents). Returns 0, or -1 with errstr for a
 * request that can never succeed (a body over 6 MB). */
int mmp_invoker_submit(mmp_invoker_t *inv, mmp_invoke_request_t *req, void *tag, int index, char *errstr,
                       size_t errstr_size);
/* Drops every call of `tag` without calling back (its handler was stopped). */
void mmp_invoker_cancel(mmp_invoker_t *inv, void *tag);
/* Starts the calls that may start, lets curl work, finishes completed
 * calls (callbacks run here). Returns microseconds until it wants to run
 * again (-1: nothing waiting on a timer). */
int64_t mmp_invoker_run(mmp_invoker_t *inv);
int mmp_invoker_active(const mmp_invoker_t *inv);
void mmp_invoker_free(mmp_invoker_t *inv);

#endif
