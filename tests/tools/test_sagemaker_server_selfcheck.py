#!/usr/bin/env python3
"""Checks tests/tools/sagemaker_server.py against botocore, so the server can be trusted.

  test_sagemaker_server_selfcheck.py               # offline SigV4 checks, then live checks
                                                   # against a server it starts itself
  test_sagemaker_server_selfcheck.py --offline     # SigV4 checks only (no server)
  test_sagemaker_server_selfcheck.py --url URL [--server-python PY]
                                                   # live checks against a running server
                                                   # (keys test/test, region us-east-1)

Offline: requests built by a real boto3 sagemaker-runtime client (caught just
before they would be sent) are checked by the server's verifier; its canonical
request must equal, byte for byte, the one botocore's signer logged. Then
botocore's SigV4Auth signs synthetic requests (odd header spacing, repeated
headers, queries, dot segments, binary bodies, session tokens) and the verifier
must accept each, and reject each after one byte of it is changed.

Live: boto3 drives the server: echo, signature failures (wrong secret, unknown
key, expired date, wrong region, tampered body), every scripted fault and the
boto3 exception it raises, Retry-After, hang -> read timeout, reset -> connection
error, the 6 MB limit, and 100 concurrent calls against 64 slots.

Prints one line per check; exits 0 when all pass, 1 on the first failure,
3 when botocore is not importable (a skip, not a failure).
"""
import argparse
import base64
import contextlib
import datetime
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

try:
    import boto3
    import botocore
    import botocore.auth
    import botocore.exceptions
    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import Credentials
except ImportError as e:
    print("SKIP: botocore/boto3 is not importable by %s: %s" % (sys.executable, e))
    sys.exit(3)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import sagemaker_server as sm  # noqa: E402

CHECKS = 0
WHO = "selfcheck[%s, botocore %s]" % (sys.executable, botocore.__version__)


def ok(what):
    global CHECKS
    CHECKS += 1
    print("  ok: %s" % what, flush=True)


def fail(what):
    print("%s: FAIL: %s" % (WHO, what), file=sys.stderr, flush=True)
    sys.exit(1)


def check(cond, what):
    if not cond:
        fail(what)
    ok(what)


# ---------------------------------------------------------------------------
# botocore's clock and canonical request
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def frozen_clock(when):
    """botocore's signer sees `when` (aware UTC datetime) as now."""
    if hasattr(botocore.auth, "get_current_datetime"):  # botocore >= 1.32
        saved = botocore.auth.get_current_datetime
        botocore.auth.get_current_datetime = lambda *a, **k: when
        try:
            yield
        finally:
            botocore.auth.get_current_datetime = saved
        return
    naive = when.replace(tzinfo=None)  # older botocore: datetime.datetime.utcnow()

    class FrozenDatetime(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return naive

    class FrozenModule:
        datetime = FrozenDatetime

    saved = botocore.auth.datetime
    botocore.auth.datetime = FrozenModule
    try:
        yield
    finally:
        botocore.auth.datetime = saved


class CanonicalLog(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.canonical = None

    def emit(self, record):
        if record.msg == "CanonicalRequest:\n%s":
            self.canonical = record.args[0] if isinstance(record.args, tuple) else record.args


class Caught(Exception):
    pass


def client(url, region="us-east-1", key="test", secret="test", token=None, **config):
    cfg = {"retries": {"total_max_attempts": 1}, "connect_timeout": 5, "read_timeout": 30}
    cfg.update(config)
    session = boto3.session.Session()
    return session.client("sagemaker-runtime", endpoint_url=url, region_name=region,
                          aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
                          config=Config(**cfg))


def catch_boto3_request(kwargs, endpoint_url="http://127.0.0.1:8080", region="us-east-1", token=None):
    """What a boto3 client would send for invoke_endpoint(**kwargs), and botocore's canonical request."""
    log = CanonicalLog()
    logger = logging.getLogger("botocore.auth")
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(log)
    c = client(endpoint_url, region=region, key="AKIDEXAMPLE", secret="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
               token=token)
    caught = {}

    def before_send(request, **_):
        caught["method"] = request.method
        caught["url"] = request.url
        caught["headers"] = [(k, v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()]
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        caught["body"] = body if isinstance(body, bytes) else (body or "").encode()
        raise Caught()

    c.meta.events.register("before-send.sagemaker-runtime", before_send)
    try:
        c.invoke_endpoint(**kwargs)
    except Caught:
        pass
    finally:
        logger.removeHandler(log)
        logger.setLevel(old_level)
    caught["canonical"] = log.canonical
    return caught


def wire_request(caught):
    """(target, headers) as they arrive at the server: urllib3 adds Host from the URL."""
    parts = urllib.parse.urlsplit(caught["url"])
    target = parts.path + ("?" + parts.query if parts.query else "")
    headers = list(caught["headers"])
    if not any(k.lower() == "host" for k, _ in headers):
        headers.append(("Host", parts.netloc))
    return target, headers


KEYS = {"AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}


def amz_now(headers):
    d = [v for k, v in headers if k.lower() == "x-amz-date"][0]
    return sm.parse_amz_date(d)


def expect_sig_error(what, type_, fn):
    try:
        fn()
    except sm.SigV4Error as e:
        if e.type != type_:
            fail("%s: expected %s, got %s: %s" % (what, type_, e.type, e.message))
        ok("%s -> %d %s" % (what, e.status, e.type))
        return e
    fail("%s: accepted, expected %s" % (what, type_))


def offline_checks():
    print("%s: offline SigV4 checks" % WHO)
    when = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    cases = [
        ("plain JSON", {"EndpointName": "my-endpoint", "Body": b'{"inputs": "hello"}',
                        "ContentType": "application/json"}),
        ("all headers", {"EndpointName": "ep-2", "Body": b'{"inputs": [1, 2, 3]}', "ContentType": "application/json",
                         "Accept": "application/json", "CustomAttributes": "trace_id=abc,  spaced   value",
                         "TargetModel": "model-a.tar.gz", "TargetVariant": "variant-B",
                         "InferenceId": "id-123"}),
        ("binary body", {"EndpointName": "img", "Body": bytes(range(256)) * 40,
                         "ContentType": "application/x-image"}),
        ("empty body", {"EndpointName": "e", "Body": b""}),
        ("eu region", {"EndpointName": "E9", "Body": b"text body", "ContentType": "text/plain"}, "eu-west-1"),
        ("session token", {"EndpointName": "tok", "Body": b"{}", "ContentType": "application/json"}, "us-east-1",
         "FQoGZXIvYXdzEJr//////////wEaDOZ5session+token/with=chars"),
    ]
    with frozen_clock(when):
        for case in cases:
            label, kwargs = case[0], case[1]
            region = case[2] if len(case) > 2 else "us-east-1"
            token = case[3] if len(case) > 3 else None
            caught = catch_boto3_request(kwargs, region=region, token=token)
            target, headers = wire_request(caught)
            info = sm.verify_sigv4(caught["method"], target, headers, caught["body"], KEYS, region,
                                   now=amz_now(headers))
            check(info["canonical_request"] == caught["canonical"],
                  "boto3 %s: accepted, canonical request equals botocore's byte for byte (signed: %s)"
                  % (label, ";".join(info["signed_headers"])))
            if caught["body"]:
                tampered = bytes([caught["body"][0] ^ 1]) + caught["body"][1:]
                expect_sig_error("boto3 %s with one body byte changed" % label, "InvalidSignatureException",
                                 lambda: sm.verify_sigv4(caught["method"], target, headers, tampered, KEYS, region,
                                                         now=amz_now(headers)))
            expect_sig_error("boto3 %s checked with another secret" % label, "InvalidSignatureException",
                             lambda: sm.verify_sigv4(caught["method"], target, headers, caught["body"],
                                                     {"AKIDEXAMPLE": "other"}, region, now=amz_now(headers)))

    # botocore's SigV4Auth on synthetic requests: the verifier must agree on each.
    creds = Credentials("AKIDEXAMPLE", KEYS["AKIDEXAMPLE"])
    synthetic = [
        ("spaces and tabs in values", "/endpoints/x/invocations", {"X-Amz-Meta": "  a   b\tc  ", "Content-Type": "text/plain"}, b"1"),
        ("query string", "/endpoints/x/invocations?b=2&a=1&a=0&empty=&sp=a%20b", {}, b"q"),
        ("encoded path segment", "/endpoints/a%20b/invocations", {}, b"p"),
        ("dot segments and double slash", "/endpoints/./x//invocations", {}, b"d"),
        ("tilde and unreserved", "/endpoints/a-b_c.d~e/invocations", {}, b"t"),
        ("x-amz-content-sha256 signed", "/endpoints/s/invocations",
         {"X-Amz-Content-SHA256": hashlib.sha256(b"payload").hexdigest()}, b"payload"),
        ("large body", "/endpoints/big/invocations", {"Content-Type": "application/octet-stream"}, os.urandom(1 << 20)),
    ]
    for label, path, hdrs, body in synthetic:
        for region in ("us-east-1", "ap-southeast-2"):
            req = AWSRequest(method="POST", url="http://127.0.0.1:9000" + path, data=body, headers=dict(hdrs))
            signer = botocore.auth.SigV4Auth(creds, "sagemaker", region)
            log = CanonicalLog()
            logger = logging.getLogger("botocore.auth")
            old_level = logger.level
            logger.setLevel(logging.DEBUG)
            logger.addHandler(log)
            try:
                with frozen_clock(when):
                    signer.add_auth(req)
            finally:
                logger.removeHandler(log)
                logger.setLevel(old_level)
            theirs = log.canonical
            target = path
            headers = [(k, v.decode() if isinstance(v, bytes) else v) for k, v in req.headers.items()]
            headers.append(("Host", "127.0.0.1:9000"))
            info = sm.verify_sigv4("POST", target, headers, body, KEYS, region, now=when.timestamp())
            check(info["canonical_request"] == theirs,
                  "SigV4Auth %s (%s): accepted, same canonical request" % (label, region))
    # Timestamps, scope, headers.
    caught = catch_boto3_request({"EndpointName": "t", "Body": b"x"})
    target, headers = wire_request(caught)
    now = amz_now(headers)
    sm.verify_sigv4("POST", target, headers, b"x", KEYS, now=now + 299)
    ok("a signature 299 s old is accepted")
    expect_sig_error("a signature 301 s old", "InvalidSignatureException",
                     lambda: sm.verify_sigv4("POST", target, headers, b"x", KEYS, now=now + 301))
    expect_sig_error("a signature 301 s in the future", "InvalidSignatureException",
                     lambda: sm.verify_sigv4("POST", target, headers, b"x", KEYS, now=now - 301))
    expect_sig_error("region us-east-1 required, eu-west-1 signed", "InvalidSignatureException",
                     lambda: sm.verify_sigv4("POST", target, headers, b"x", KEYS, region="eu-west-1", now=now))
    expect_sig_error("service s3 required, sagemaker signed", "InvalidSignatureException",
                     lambda: sm.verify_sigv4("POST", target, headers, b"x", KEYS, service="s3", now=now))
    expect_sig_error("unknown access key", "UnrecognizedClientException",
                     lambda: sm.verify_sigv4("POST", target, headers, b"x", {"OTHER": "x"}, now=now))
    no_auth = [(k, v) for k, v in headers if k.lower() != "authorization"]
    expect_sig_error("no Authorization header", "MissingAuthenticationTokenException",
                     lambda: sm.verify_sigv4("POST", target, no_auth, b"x", KEYS, now=now))
    no_date = [(k, v) for k, v in headers if k.lower() != "x-amz-date"]
    expect_sig_error("no X-Amz-Date header", "IncompleteSignatureException",
                     lambda: sm.verify_sigv4("POST", target, no_date, b"x", KEYS, now=now))
    other_host = [(k, "127.0.0.1:1" if k.lower() == "host" else v) for k, v in headers]
    expect_sig_error("Host changed after signing", "InvalidSignatureException",
                     lambda: sm.verify_sigv4("POST", target, other_host, b"x", KEYS, now=now))
    expect_sig_error("path changed after signing", "InvalidSignatureException",
                     lambda: sm.verify_sigv4("POST", "/endpoints/u/invocations", headers, b"x", KEYS, now=now))
    unsigned = headers + [("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD")]
    expect_sig_error("x-amz-content-sha256: UNSIGNED-PAYLOAD (not allowed by default)", "InvalidSignatureException",
                     lambda: sm.verify_sigv4("POST", target, unsigned, b"x", KEYS, now=now))
    wrong_hash = headers + [("X-Amz-Content-SHA256", hashlib.sha256(b"y").hexdigest())]
    expect_sig_error("x-amz-content-sha256 that is not the body's", "InvalidSignatureException",
                     lambda: sm.verify_sigv4("POST", target, wrong_hash, b"x", KEYS, now=now))


# ---------------------------------------------------------------------------
# Live checks against a running server
# ---------------------------------------------------------------------------

def http_json(url, data=None):
    req = urllib.request.Request(url, data=json.dumps(data).encode() if data is not None else None,
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        fail("%s -> %d %s" % (url, e.code, e.read()[:300]))


def control(url, **kw):
    return http_json(url + "/control", kw)


def stats(url, endpoint):
    return http_json(url + "/stats?endpoint=" + endpoint)


def client_error(fn):
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        return e
    fail("the call succeeded; an error was expected")


def live_checks(url):
    print("%s: live checks against %s" % (WHO, url))
    c = client(url)
    # Each run uses its own endpoint names, so two interpreters can share one server.
    tag = "%s-%d" % (botocore.__version__.replace(".", "-"), os.getpid())
    ep = "echo-" + tag

    # --- a good call is echoed ---
    r = c.invoke_endpoint(EndpointName=ep, Body=b'{"inputs": "hello"}', ContentType="application/json",
                          Accept="application/json", CustomAttributes="trace=42", TargetVariant="blue",
                          InferenceId="inf-1")
    body = json.loads(r["Body"].read())
    check(r["ResponseMetadata"]["HTTPStatusCode"] == 200, "echo: 200")
    check(body["echo"] == {"inputs": "hello"} and body["echo_encoding"] == "json", "echo: the request JSON comes back")
    check(body["content_type"] == "application/json" and body["accept"] == "application/json",
          "echo: Content-Type and Accept seen by the server")
    check(body["headers"]["inference_id"] == "inf-1" and body["headers"]["target_variant"] == "blue",
          "echo: InferenceId and TargetVariant seen by the server")
    check(r["ContentType"] == "application/json", "response ContentType application/json")
    check(r.get("CustomAttributes") == "trace=42", "response CustomAttributes echoed (trace=42)")
    check(r.get("InvokedProductionVariant") == "blue", "InvokedProductionVariant = the target variant")
    check(len(body["embedding"]) == 8 and abs(sum(x * x for x in body["embedding"]) - 1) < 1e-4,
          "echo: an 8-float unit embedding")
    same = json.loads(c.invoke_endpoint(EndpointName=ep, Body=b'{"inputs": "hello"}',
                                        ContentType="application/json")["Body"].read())
    check(same["embedding"] == body["embedding"], "echo: the embedding depends on the body only")
    r = c.invoke_endpoint(EndpointName=ep, Body=b"\x00\xff binary", ContentType="application/octet-stream")
    body = json.loads(r["Body"].read())
    check(body["echo_encoding"] == "base64" and base64.b64decode(body["echo"]) == b"\x00\xff binary",
          "echo: binary bodies come back base64")
    check(r.get("InvokedProductionVariant") == "AllTraffic" and "CustomAttributes" not in r,
          "no target variant: AllTraffic; no custom attributes sent: none returned")
    st = stats(url, ep)
    check(st["calls"] == 3 and st["ok"] == 3 and st["bad_signatures"] == 0, "stats: 3 calls, 3 ok")
    check("x-amz-date" in st["last"]["signed_headers"] and "host" in st["last"]["signed_headers"],
          "stats: the last call's signed headers are recorded")

    # --- connections are kept alive (one client, sequential calls: one connection) ---
    ka = "keepalive-" + tag
    for i in range(20):
        c.invoke_endpoint(EndpointName=ka, Body=b"{}", ContentType="application/json")["Body"].read()
    st = stats(url, ka)
    check(st["calls"] == 20 and st["connections_used"] == 1,
          "20 sequential calls on one client came on %d connection: keep-alive works" % st["connections_used"])
    check(http_json(url + "/stats")["connections"]["opened"] >= 1, "/stats counts connections")

    # --- signatures ---
    bad = "sig-" + tag
    e = client_error(lambda: client(url, secret="wrong").invoke_endpoint(EndpointName=bad, Body=b"{}"))
    check(e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
          and e.response["Error"]["Code"] == "InvalidSignatureException",
          "wrong secret -> 403 InvalidSignatureException (%s)" % type(e).__name__)
    check("Canonical String for this request should have been" in e.response["Error"]["Message"],
          "the message shows the canonical request the server computed")
    e = client_error(lambda: client(url, key="nobody").invoke_endpoint(EndpointName=bad, Body=b"{}"))
    check(e.response["Error"]["Code"] == "UnrecognizedClientException"
          and e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, "unknown access key -> 403 UnrecognizedClientException")
    e = client_error(lambda: client(url, region="eu-west-1").invoke_endpoint(EndpointName=bad, Body=b"{}"))
    check(e.response["Error"]["Code"] == "InvalidSignatureException" and "region" in e.response["Error"]["Message"],
          "signed for eu-west-1 -> 403 InvalidSignatureException (wrong region)")
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10)
    stale = client(url)
    with frozen_clock(old):
        e = client_error(lambda: stale.invoke_endpoint(EndpointName=bad, Body=b"{}"))
    check(e.response["Error"]["Code"] == "InvalidSignatureException"
          and e.response["Error"]["Message"].startswith("Signature expired"),
          "signed 10 minutes ago -> 403 InvalidSignatureException: Signature expired")
    tamper = client(url)
    tamper.meta.events.register("before-send.sagemaker-runtime",
                                lambda request, **_: setattr(request, "body", b'{"x": 2}'))
    e = client_error(lambda: tamper.invoke_endpoint(EndpointName=bad, Body=b'{"x": 1}'))
    check(e.response["Error"]["Code"] == "InvalidSignatureException", "body changed after signing -> 403")
    st = stats(url, bad)
    check(st["bad_signatures"] == 5 and st["ok"] == 0 and st["calls"] == 5,
          "stats: 5 bad signatures counted (%s)" % st["errors_by_type"])

    # --- the fault catalogue ---
    fe = "faults-" + tag
    control(url, endpoint=fe, latency_ms=0, script=[
        {"validation": "Endpoint input is not valid: no inputs"},
        {"model_error": 500, "message": "CUDA out of memory"},
        {"model_error": 400, "message": "bad input shape"},
        {"not_ready": True},
        {"status": 503},
        {"status": 500},
        {"status": 530},
        {"throttle": True, "retry_after": 2},
        {"throttle": True},
        {"status": 502},
        {"status": 200, "body": {"vector": [1, 2]}, "custom_attributes": "from-model"},
        {"status": 200, "body_base64": base64.b64encode(b"\x89PNG").decode(), "content_type": "image/png"},
    ])
    call = lambda: c.invoke_endpoint(EndpointName=fe, Body=b'{"inputs": 1}', ContentType="application/json",
                                     CustomAttributes="ca=1")

    def expect(cls_name, status, code, what):
        e = client_error(call)
        cls = getattr(c.exceptions, cls_name, None) if cls_name else botocore.exceptions.ClientError
        check(isinstance(e, cls) and e.response["Error"]["Code"] == code
              and e.response["ResponseMetadata"]["HTTPStatusCode"] == status,
              "%s -> %d, boto3 raises %s (Code %s): %s" % (what, status, type(e).__name__, code,
                                                          e.response["Error"]["Message"][:60].strip()))
        return e

    expect("ValidationError", 400, "ValidationError", "validation")
    e = expect("ModelError", 424, "ModelError", "model_error 500")
    check(e.response.get("OriginalStatusCode") == 500 and e.response.get("OriginalMessage") == "CUDA out of memory",
          "ModelError carries OriginalStatusCode 500 and OriginalMessage")
    check(e.response.get("LogStreamArn", "").startswith("arn:aws:logs:us-east-1:"), "ModelError carries LogStreamArn")
    check(e.response["Error"]["Message"].startswith('Received server error (500) from primary with message "CUDA'),
          "ModelError message as the service words it")
    e = expect("ModelError", 424, "ModelError", "model_error 400")
    check(e.response.get("OriginalStatusCode") == 400
          and e.response["Error"]["Message"].startswith("Received client error (400)"),
          "ModelError 400: OriginalStatusCode 400, 'client error'")
    expect("ModelNotReadyException", 429, "ModelNotReadyException", "not_ready")
    expect("ServiceUnavailable", 503, "ServiceUnavailable", "status 503")
    expect("InternalFailure", 500, "InternalFailure", "status 500")
    expect("InternalDependencyException", 530, "InternalDependencyException", "status 530")
    e = expect(None, 429, "ThrottlingException", "throttle with retry_after 2")
    check(type(e) is botocore.exceptions.ClientError, "ThrottlingException is not in the model: plain ClientError")
    check(e.response["ResponseMetadata"]["HTTPHeaders"].get("retry-after") == "2", "Retry-After: 2 sent")
    e = expect(None, 429, "ThrottlingException", "throttle without retry_after")
    check("retry-after" not in e.response["ResponseMetadata"]["HTTPHeaders"], "no Retry-After when not scripted")
    e = expect(None, 502, "502", "status 502 (no AWS error shape)")
    r = call()
    check(json.loads(r["Body"].read()) == {"vector": [1, 2]} and r.get("CustomAttributes") == "from-model",
          "scripted 200 body and custom attributes")
    r = call()
    check(r["ContentType"] == "image/png" and r["Body"].read() == b"\x89PNG", "scripted binary body and content type")
    r = call()
    check(json.loads(r["Body"].read())["echo"] == {"inputs": 1}, "script used up: back to the echo default")
    st = stats(url, fe)
    expected = {"ValidationError": 1, "ModelError": 2, "ModelNotReadyException": 1, "ServiceUnavailable": 1,
                "InternalFailure": 1, "InternalDependencyException": 1, "ThrottlingException": 2, "HTTP502": 1}
    check(st["errors_by_type"] == expected and st["ok"] == 3 and st["calls"] == 13,
          "stats: errors_by_type %s" % json.dumps(st["errors_by_type"], sort_keys=True))
    # repeat and default
    control(url, endpoint=fe, script=[{"throttle": True, "repeat": 2}], default={"status": 503})
    codes = [client_error(call).response["Error"]["Code"] for _ in range(3)]
    check(codes == ["ThrottlingException", "ThrottlingException", "ServiceUnavailable"],
          "repeat: 2 and then the default: %s" % codes)
    control(url, endpoint=fe, default={"echo": True})

    # --- hang, reset, close, truncate ---
    he = "hang-" + tag
    control(url, endpoint=he, script=[{"hang": True}, {"reset": True}, {"close": True}, {"truncate": True}])
    quick = client(url, read_timeout=1, connect_timeout=2)
    t0 = time.monotonic()
    try:
        quick.invoke_endpoint(EndpointName=he, Body=b"{}")
        fail("hang: the call returned")
    except botocore.exceptions.ReadTimeoutError as e:
        check(0.9 < time.monotonic() - t0 < 5, "hang -> botocore ReadTimeoutError after ~1 s (%s)" % type(e).__name__)
    for what in ("reset", "close"):
        try:
            quick.invoke_endpoint(EndpointName=he, Body=b"{}")
            fail("%s: the call returned" % what)
        except (botocore.exceptions.ConnectionClosedError, botocore.exceptions.EndpointConnectionError) as e:
            check(True, "%s -> %s" % (what, type(e).__name__))
    try:
        r = quick.invoke_endpoint(EndpointName=he, Body=b"{}")
        r["Body"].read()
        fail("truncate: the body was read whole")
    except (botocore.exceptions.IncompleteReadError, botocore.exceptions.ResponseStreamingError
            if hasattr(botocore.exceptions, "ResponseStreamingError") else botocore.exceptions.IncompleteReadError,
            botocore.exceptions.ConnectionClosedError) as e:
        check(True, "truncate -> %s" % type(e).__name__)
    for _ in range(100):  # the hung call ends when the server sees the client hang up
        st = stats(url, he)
        if st["in_flight"] == 0:
            break
        time.sleep(0.05)
    check(st["in_flight"] == 0 and st["serving"] == 0, "nothing left in flight after the client gave up")
    check(st["errors_by_type"] == {"hang": 1, "reset": 1, "close": 1, "truncate": 1},
          "stats: %s" % json.dumps(st["errors_by_type"], sort_keys=True))

    # --- body size limit ---
    r = c.invoke_endpoint(EndpointName=ep, Body=b"x" * sm.MAX_BODY, ContentType="application/octet-stream")
    check(json.loads(r["Body"].read())["body_bytes"] == sm.MAX_BODY, "a body of exactly 6 MB is accepted")
    e = client_error(lambda: c.invoke_endpoint(EndpointName=ep, Body=b"x" * (sm.MAX_BODY + 1)))
    check(isinstance(e, c.exceptions.ValidationError) and e.response["ResponseMetadata"]["HTTPStatusCode"] == 413,
          "6 MB + 1 byte -> 413, boto3 raises ValidationError")

    # --- concurrency: 64 slots, 100 concurrent boto3 calls ---
    ce = "conc-" + tag
    control(url, endpoint=ce, slots=64, latency_ms=400, reset_stats=True)
    many = client(url, max_pool_connections=100)
    errors = []
    barrier = threading.Barrier(100)

    def one(i):
        try:
            barrier.wait()
            many.invoke_endpoint(EndpointName=ce, Body=json.dumps({"i": i}).encode(), ContentType="application/json")
        except Exception as ex:  # noqa: BLE001 (reported below)
            errors.append(repr(ex))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(100)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    st = stats(url, ce)
    check(not errors, "100 concurrent calls succeeded (%s)" % (errors[:2],))
    check(st["max_concurrency"] == 64, "max_concurrency == 64 (served at once)")
    check(st["max_in_flight"] > 64, "max_in_flight %d > 64: the other calls waited for a slot" % st["max_in_flight"])
    check(0.75 < secs < 10, "two rounds of 400 ms took %.2f s" % secs)
    check(st["calls"] == 100 and st["ok"] == 100 and st["in_flight"] == 0, "stats: 100 calls, 100 ok, 0 in flight")

    # --- control API errors ---
    req = urllib.request.Request(url + "/control", data=b'{"endpoint": "x", "script": [{"bogus": 1}]}', method="POST")
    try:
        urllib.request.urlopen(req, timeout=5)
        fail("a bad script item was accepted")
    except urllib.error.HTTPError as e:
        check(e.code == 400 and b"exactly one of" in e.read(), "a bad script item -> 400 with a reason")
    print("%s: all %d checks passed" % (WHO, CHECKS))


def start_server(python):
    d = tempfile.mkdtemp(prefix="sm-selfcheck.")
    ready = os.path.join(d, "ready")
    proc = subprocess.Popen([python, os.path.join(HERE, "sagemaker_server.py"), "--port", "0", "--ready-file", ready],
                            stdout=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(ready):
            with open(ready) as f:
                url = f.read().strip().split("=", 1)[1]
            shutil.rmtree(d, ignore_errors=True)
            return proc, url
        if proc.poll() is not None:
            fail("the server exited with %s" % proc.returncode)
        time.sleep(0.05)
    proc.kill()
    fail("the server did not write its ready file")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url")
    p.add_argument("--offline", action="store_true")
    p.add_argument("--server-python", default=sys.executable)
    a = p.parse_args()
    if a.url:
        live_checks(a.url.rstrip("/"))
        return
    offline_checks()
    if a.offline:
        print("%s: all %d checks passed" % (WHO, CHECKS))
        return
    proc, url = start_server(a.server_python)
    try:
        live_checks(url)
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
