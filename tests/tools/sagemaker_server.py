#!/usr/bin/env python3
"""A SageMaker-runtime test server: InvokeEndpoint with SigV4 checks and faults on demand.

Python 3 standard library only, so it runs on Debian's /usr/bin/python3 as well
as on any other python3. Its SigV4 verifier is its own code; it is checked
against botocore's signer by tests/tools/test_sagemaker_server_selfcheck.py.
docs/testing-sagemaker.md is the manual (fault catalogue, what boto3 raises).

  sagemaker_server.py [--port 0] [--ready-file F] [--latency-ms 0] [--slots 64]
                      [--access-key test --secret-key test] [--keys K:S,...]
                      [--region us-east-1 | '*'] [--max-skew-s 300]
                      [--allow-unsigned-payload] [--max-body 6291456] [--verbose]

Binds 127.0.0.1 (port 0 = a free one), prints "url=http://127.0.0.1:PORT" on
stdout once it listens (and writes the same line to --ready-file), serves until
SIGTERM or SIGINT.

  POST /endpoints/{EndpointName}/invocations   InvokeEndpoint (signed, SigV4 service "sagemaker")
  GET  /ping                                   200, empty body (readiness)
  GET  /stats[?endpoint=NAME]                  counters, JSON
  POST /control                                behaviour per endpoint, JSON:
       {"endpoint": "e", "latency_ms": 50, "slots": 64, "script": [...], "default": {...},
        "variant": "AllTraffic", "append": false}
       {"reset_stats": true [, "endpoint": "e"]}      {"forget": true}  (all endpoints back to defaults)

A script item (or "default") is one of:
  {"echo": true}                                200, JSON echo of the request (the default)
  {"status": 200, "body": ..., "body_base64": "...", "content_type": "..."}
  {"throttle": true, "retry_after": 2}          429 ThrottlingException (+ Retry-After when given)
  {"not_ready": true}                           429 ModelNotReadyException
  {"validation": "message"}                     400 ValidationError
  {"model_error": 500, "message": "..."}        424 ModelError (OriginalStatusCode, OriginalMessage)
  {"status": 500} / {"status": 503} / {"status": 530}
                                                InternalFailure / ServiceUnavailable / InternalDependencyException
  {"status": N, "type": "T", "message": "m"}    any other error (no type: plain text, no x-amzn-ErrorType)
  {"hang": true}                                never answers (until the client hangs up)
  {"reset": true}                               connection reset (RST), no response
  {"close": true}                               connection closed (FIN), no response
  {"truncate": true}                            200 headers and half of the echo body, then RST
Any item may add "latency_ms" (overrides the endpoint's), "repeat": N (the item
N times), "retry_after" (any error), "headers" (extra response headers), and an
error item "slot": true (answered after a slot and the latency, not at once).
Throttling, not-ready, validation and status errors are answered at once, like
the service's front end; the other items hold one of the endpoint's slots for
the latency, like a container worker.
"""
import argparse
import base64
import calendar
import collections
import hashlib
import hmac
import http.server
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
import uuid

MAX_BODY = 6 * 1024 * 1024  # InvokeEndpoint's documented payload limit
ACCOUNT = "123456789012"
SIGV4_ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
ERROR_NAMESPACE = ":http://internal.amazon.com/coral/com.amazon.coral.service/"

# The errors a failed signature check answers with (counted as bad_signatures).
SIGNATURE_ERRORS = {"MissingAuthenticationTokenException", "IncompleteSignatureException",
                    "InvalidSignatureException", "UnrecognizedClientException"}

# Error types per HTTP status for {"status": N} items (botocore's sagemaker-runtime model).
STATUS_TYPES = {
    400: ("ValidationError", "Inspect your request and try again."),
    500: ("InternalFailure", "An internal failure occurred."),
    503: ("ServiceUnavailable", "The service is unavailable. Try your call again."),
    530: ("InternalDependencyException", "Your request caused an exception with an internal dependency."),
}


# ---------------------------------------------------------------------------
# SigV4 (AWS Signature Version 4), as a server checks it.
# ---------------------------------------------------------------------------

class SigV4Error(Exception):
    """An authentication failure: HTTP status, AWS error type, message."""

    def __init__(self, status, type_, message):
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message


def remove_dot_segments(path):
    """RFC 3986 5.2.4, and empty segments dropped (what AWS and botocore do)."""
    if not path:
        return "/"
    out = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
        else:
            out.append(seg)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and out else ""
    return first + "/".join(out) + last


def canonical_path(raw_path):
    """The path as sent (already URI-encoded once), normalised, encoded again.

    Services other than S3 use the double-encoded path; botocore's
    SigV4Auth._normalize_url_path does exactly this.
    """
    return urllib.parse.quote(remove_dot_segments(raw_path), safe="/~")


def aws_quote(s):
    return urllib.parse.quote(s, safe="-_.~")


def canonical_query(query):
    """Parameters decoded, re-encoded the AWS way, sorted by key then value."""
    if not query:
        return ""
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((aws_quote(urllib.parse.unquote(key)), aws_quote(urllib.parse.unquote(value))))
    pairs.sort()
    return "&".join("%s=%s" % kv for kv in pairs)


def trimall(value):
    return " ".join(value.split())


def parse_authorization(value):
    """'AWS4-HMAC-SHA256 Credential=K/D/R/S/aws4_request, SignedHeaders=a;b, Signature=hex'."""
    if not value:
        raise SigV4Error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != SIGV4_ALGORITHM:
        raise SigV4Error(400, "IncompleteSignatureException",
                         "Unsupported Authorization algorithm %r: expected %s" % (algorithm, SIGV4_ALGORITHM))
    fields = {}
    for part in rest.split(","):
        name, eq, val = part.strip().partition("=")
        if eq:
            fields[name.strip()] = val.strip()
    for need in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(need):
            raise SigV4Error(400, "IncompleteSignatureException",
                             "Authorization header requires '%s' parameter. Authorization=%s" % (need, value))
    scope = fields["Credential"].split("/")
    if len(scope) != 5:
        raise SigV4Error(400, "IncompleteSignatureException",
                         "Credential must have exactly 5 slash-delimited elements, "
                         "e.g. keyid/date/region/service/term, got '%s'" % fields["Credential"])
    signed = fields["SignedHeaders"].split(";")
    return {"access_key": scope[0], "date": scope[1], "region": scope[2], "service": scope[3],
            "terminator": scope[4], "signed_headers": signed, "signature": fields["Signature"]}


def header_values(headers, name):
    """All values of a header (a list of (name, value) pairs), in order."""
    lname = name.lower()
    return [v for k, v in headers if k.lower() == lname]


def canonical_request(method, raw_target, headers, signed_headers, payload_hash):
    """The SigV4 canonical request for a received request.

    raw_target is the request-target as received (path?query); headers is the
    list of (name, value) pairs as received; signed_headers the client's list.
    """
    parts = urllib.parse.urlsplit(raw_target)
    lines = [method.upper(), canonical_path(parts.path), canonical_query(parts.query)]
    for name in signed_headers:
        values = header_values(headers, name)
        lines.append("%s:%s" % (name, ",".join(trimall(v) for v in values)))
    lines.append("")
    lines.append(";".join(signed_headers))
    lines.append(payload_hash)
    return "\n".join(lines)


_key_cache = {}
_key_lock = threading.Lock()


def signing_key(secret, date, region, service):
    k = (secret, date, region, service)
    with _key_lock:
        key = _key_cache.get(k)
    if key is None:
        key = ("AWS4" + secret).encode()
        for msg in (date, region, service, "aws4_request"):
            key = hmac.new(key, msg.encode(), hashlib.sha256).digest()
        with _key_lock:
            if len(_key_cache) > 64:
                _key_cache.clear()
            _key_cache[k] = key
    return key


def string_to_sign(amz_date, scope, creq):
    return "\n".join([SIGV4_ALGORITHM, amz_date, scope, hashlib.sha256(creq.encode("utf-8")).hexdigest()])


def parse_amz_date(value):
    try:
        return calendar.timegm(time.strptime(value, "%Y%m%dT%H%M%SZ"))
    except (ValueError, TypeError):
        return None


def verify_sigv4(method, raw_target, headers, body, keys, region="us-east-1", service="sagemaker",
                 now=None, max_skew=300, allow_unsigned_payload=False):
    """Checks one request's SigV4 signature; raises SigV4Error, returns details when good.

    keys maps access key -> secret; region "*" accepts any region.
    """
    auth_values = header_values(headers, "authorization")
    auth = parse_authorization(auth_values[0] if auth_values else "")
    signed = auth["signed_headers"]
    if signed != sorted(signed) or any(h != h.lower() or not h for h in signed):
        raise SigV4Error(400, "IncompleteSignatureException",
                         "SignedHeaders must be lower-case names in sorted order, got '%s'" % ";".join(signed))
    if "host" not in signed:
        raise SigV4Error(403, "InvalidSignatureException", "'Host' must be a signed header.")
    dates = header_values(headers, "x-amz-date")
    if not dates:
        raise SigV4Error(400, "IncompleteSignatureException",
                         "Authorization header requires existence of a 'X-Amz-Date' header.")
    for name in signed:
        if not header_values(headers, name):
            raise SigV4Error(403, "InvalidSignatureException",
                             "The header '%s' is in SignedHeaders but not in the request." % name)
    amz_date = dates[0].strip()
    if "x-amz-date" not in signed:
        raise SigV4Error(403, "InvalidSignatureException", "'X-Amz-Date' must be a signed header.")
    when = parse_amz_date(amz_date)
    if when is None:
        raise SigV4Error(400, "IncompleteSignatureException",
                         "X-Amz-Date must be in the ISO 8601 basic format YYYYMMDD'T'HHMMSS'Z', got '%s'" % amz_date)
    if auth["access_key"] not in keys:
        raise SigV4Error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    if auth["date"] != amz_date[:8]:
        raise SigV4Error(403, "InvalidSignatureException",
                         "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                         "from HTTP: '%s' != '%s', from '%s'." % (auth["date"], amz_date[:8], amz_date))
    if region != "*" and auth["region"] != region:
        raise SigV4Error(403, "InvalidSignatureException",
                         "Credential should be scoped to a valid region, not '%s'. " % auth["region"] +
                         "This server expects '%s'." % region)
    if auth["service"] != service:
        raise SigV4Error(403, "InvalidSignatureException",
                         "Credential should be scoped to correct service: '%s'. " % service)
    if auth["terminator"] != "aws4_request":
        raise SigV4Error(403, "InvalidSignatureException",
                         "Credential should be scoped with a valid terminator: 'aws4_request', not '%s'."
                         % auth["terminator"])
    now = time.time() if now is None else now
    if when < now - max_skew:
        raise SigV4Error(403, "InvalidSignatureException",
                         "Signature expired: %s is now earlier than %s (%s - %d min.)"
                         % (amz_date, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now - max_skew)),
                            time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)), max_skew // 60))
    if when > now + max_skew:
        raise SigV4Error(403, "InvalidSignatureException",
                         "Signature not yet current: %s is still later than %s (%s + %d min.)"
                         % (amz_date, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now + max_skew)),
                            time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)), max_skew // 60))
    body_hash = hashlib.sha256(body).hexdigest()
    declared = header_values(headers, "x-amz-content-sha256")
    payload_hash = body_hash
    if declared:
        d = declared[0].strip()
        if d == UNSIGNED_PAYLOAD and allow_unsigned_payload:
            payload_hash = d
        elif d == UNSIGNED_PAYLOAD:
            raise SigV4Error(403, "InvalidSignatureException",
                             "x-amz-content-sha256 UNSIGNED-PAYLOAD is not accepted here: sign the body "
                             "(start the server with --allow-unsigned-payload to accept it)")
        elif d != body_hash:
            raise SigV4Error(403, "InvalidSignatureException",
                             "x-amz-content-sha256 '%s' does not match the SHA-256 of the %d-byte body, '%s'."
                             % (d, len(body), body_hash))
        else:
            payload_hash = d
    creq = canonical_request(method, raw_target, headers, signed, payload_hash)
    scope = "/".join([auth["date"], auth["region"], auth["service"], auth["terminator"]])
    sts = string_to_sign(amz_date, scope, creq)
    key = signing_key(keys[auth["access_key"]], auth["date"], auth["region"], auth["service"])
    expected = hmac.new(key, sts.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, auth["signature"]):
        raise SigV4Error(403, "InvalidSignatureException",
                         "The request signature we calculated does not match the signature you provided. "
                         "Check your AWS Secret Access Key and signing method. Consult the service "
                         "documentation for details.\n\nThe Canonical String for this request should have been\n"
                         "'%s'\n\nThe String-to-Sign should have been\n'%s'\n" % (creq, sts))
    return {"access_key": auth["access_key"], "region": auth["region"], "signed_headers": signed,
            "canonical_request": creq}


# ---------------------------------------------------------------------------
# Endpoints: behaviour and counters.
# ---------------------------------------------------------------------------

class Endpoint:
    def __init__(self, name, latency_ms, slots):
        self.name = name
        self.cond = threading.Condition()
        self.latency_ms = latency_ms
        self.slots = slots
        self.variant = "AllTraffic"
        self.script = collections.deque()
        self.default = {"echo": True}
        self.reset_stats()

    def reset_stats(self):
        self.calls = 0
        self.ok = 0
        self.errors = collections.Counter()
        self.bad_signatures = 0
        self.in_flight = 0
        self.serving = 0
        self.max_concurrency = 0
        self.max_in_flight = 0
        self.peers = set()  # client (host, port) pairs: how many connections the calls came on
        self.last = None

    def stats(self):
        with self.cond:
            return {"endpoint": self.name, "calls": self.calls, "ok": self.ok,
                    "errors_by_type": dict(self.errors), "bad_signatures": self.bad_signatures,
                    "in_flight": self.in_flight, "serving": self.serving,
                    "max_concurrency": self.max_concurrency, "max_in_flight": self.max_in_flight,
                    "connections_used": len(self.peers), "slots": self.slots, "latency_ms": self.latency_ms, "variant": self.variant,
                    "script_left": len(self.script), "default": self.default, "last": self.last}

    def next_item(self):
        with self.cond:
            return self.script.popleft() if self.script else self.default

    def acquire(self):
        with self.cond:
            while self.serving >= self.slots:
                self.cond.wait()
            self.serving += 1
            self.max_concurrency = max(self.max_concurrency, self.serving)

    def release(self):
        with self.cond:
            self.serving -= 1
            self.cond.notify()


ITEM_KINDS = ("echo", "status", "throttle", "not_ready", "validation", "model_error", "hang", "reset",
              "close", "truncate")


def check_item(item):
    """A script item as given to /control, checked; raises ValueError."""
    if not isinstance(item, dict):
        raise ValueError("a script item must be a JSON object, got %r" % (item,))
    kinds = [k for k in ITEM_KINDS if k in item]
    if len(kinds) != 1:
        raise ValueError("a script item needs exactly one of %s, got %s" % ("/".join(ITEM_KINDS), json.dumps(item)))
    if "status" in item and (not isinstance(item["status"], int) or not 200 <= item["status"] <= 599):
        raise ValueError("status must be an integer 200..599: %s" % json.dumps(item))
    if "model_error" in item and (not isinstance(item["model_error"], int) or not 100 <= item["model_error"] <= 599):
        raise ValueError("model_error must be the container's HTTP status, 100..599: %s" % json.dumps(item))
    for k in ("latency_ms", "repeat"):
        if k in item and (not isinstance(item[k], (int, float)) or item[k] < 0):
            raise ValueError("%s must be a non-negative number: %s" % (k, json.dumps(item)))
    return item


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.endpoints = {}
        self.connections = {"opened": 0, "open": 0, "max_open": 0}
        self.keys = {args.access_key: args.secret_key}
        for pair in filter(None, (args.keys or "").split(",")):
            k, _, s = pair.partition(":")
            self.keys[k] = s

    def connection_opened(self):
        with self.lock:
            c = self.connections
            c["opened"] += 1
            c["open"] += 1
            c["max_open"] = max(c["max_open"], c["open"])

    def connection_closed(self):
        with self.lock:
            self.connections["open"] -= 1

    def endpoint(self, name):
        with self.lock:
            ep = self.endpoints.get(name)
            if ep is None:
                ep = self.endpoints[name] = Endpoint(name, self.args.latency_ms, self.args.slots)
            return ep

    def control(self, req):
        if not isinstance(req, dict):
            raise ValueError("expected a JSON object")
        known = {"endpoint", "latency_ms", "slots", "script", "default", "variant", "append",
                 "reset_stats", "forget"}
        unknown = sorted(set(req) - known)
        if unknown:
            raise ValueError("unknown keys %s (known: %s)" % (unknown, ", ".join(sorted(known))))
        if req.get("forget"):
            with self.lock:
                self.endpoints.clear()
        name = req.get("endpoint")
        settings = {"latency_ms", "slots", "script", "default", "variant"} & set(req)
        if settings and not name:
            raise ValueError("%s need an \"endpoint\"" % ", ".join(sorted(settings)))
        if req.get("reset_stats") and not name:
            with self.lock:
                eps = list(self.endpoints.values())
                c = self.connections
                c["opened"], c["max_open"] = c["open"], c["open"]
            for ep in eps:
                with ep.cond:
                    ep.reset_stats_keep_live()
        if not name:
            return {"ok": True}
        script = None
        if "script" in req:
            if not isinstance(req["script"], list):
                raise ValueError("script must be a list")
            script = []
            for item in req["script"]:
                check_item(item)
                script.extend([item] * int(item.get("repeat", 1)))
        if "default" in req:
            check_item(req["default"])
        if "slots" in req and (not isinstance(req["slots"], int) or req["slots"] < 1):
            raise ValueError("slots must be an integer >= 1")
        if "latency_ms" in req and (not isinstance(req["latency_ms"], (int, float)) or req["latency_ms"] < 0):
            raise ValueError("latency_ms must be a number >= 0")
        ep = self.endpoint(name)
        with ep.cond:
            if "latency_ms" in req:
                ep.latency_ms = req["latency_ms"]
            if "slots" in req:
                ep.slots = req["slots"]
                ep.cond.notify_all()
            if "variant" in req:
                ep.variant = str(req["variant"])
            if "default" in req:
                ep.default = req["default"]
            if script is not None:
                if not req.get("append"):
                    ep.script.clear()
                ep.script.extend(script)
            if req.get("reset_stats"):
                ep.reset_stats_keep_live()
        return ep.stats()

    def stats(self, name=None):
        if name is not None:
            with self.lock:
                ep = self.endpoints.get(name)
            if ep is None:
                return {"endpoint": name, "calls": 0, "ok": 0, "errors_by_type": {}, "bad_signatures": 0,
                        "in_flight": 0, "serving": 0, "max_concurrency": 0, "max_in_flight": 0,
                        "connections_used": 0, "slots": self.args.slots, "latency_ms": self.args.latency_ms, "variant": "AllTraffic",
                        "script_left": 0, "default": {"echo": True}, "last": None}
            return ep.stats()
        with self.lock:
            eps = list(self.endpoints.values())
        per = {ep.name: ep.stats() for ep in eps}
        total = {"calls": 0, "ok": 0, "bad_signatures": 0, "in_flight": 0, "serving": 0}
        errors = collections.Counter()
        for s in per.values():
            for k in ("calls", "ok", "bad_signatures", "in_flight", "serving"):
                total[k] += s[k]
            errors.update(s["errors_by_type"])
        total["errors_by_type"] = dict(errors)
        total["max_concurrency"] = max([s["max_concurrency"] for s in per.values()] or [0])
        total["max_in_flight"] = max([s["max_in_flight"] for s in per.values()] or [0])
        with self.lock:
            connections = dict(self.connections)
        return {"total": total, "endpoints": per, "connections": connections}


def _reset_stats_keep_live(self):
    """Counters back to zero; calls in progress stay counted as in progress."""
    in_flight, serving = self.in_flight, self.serving
    self.reset_stats()
    self.in_flight, self.serving = in_flight, serving
    self.max_in_flight, self.max_concurrency = in_flight, serving


Endpoint.reset_stats_keep_live = _reset_stats_keep_live


def embedding_of(body):
    """8 floats from the body's SHA-256, L2-normalised: deterministic per body."""
    digest = hashlib.sha256(body).digest()
    raw = [struct.unpack(">I", digest[i:i + 4])[0] / 2147483648.0 - 1.0 for i in range(0, 32, 4)]
    norm = sum(x * x for x in raw) ** 0.5 or 1.0
    return [round(x / norm, 6) for x in raw]


# ---------------------------------------------------------------------------
# HTTP.
# ---------------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    server_version = "mmpipe-sagemaker-test"
    sys_version = ""
    timeout = 300  # an idle keep-alive connection is dropped after this

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.state.connection_opened()

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.state.connection_closed()

    def log_message(self, fmt, *args):
        if self.server.state.args.verbose:
            sys.stderr.write("sagemaker_server: %s %s\n" % (self.address_string(), fmt % args))

    # -- plumbing --

    def read_body(self):
        """The request body (Content-Length or chunked); None when the connection must close."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    return None
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        if length > 8 * MAX_BODY:
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def send(self, status, body=b"", headers=None, content_type="application/json"):
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        # Headers and body in one write: a second small write would wait for
        # the client's delayed ACK (Nagle), adding up to 40 ms per answer.
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(body)
        self.flush_headers()

    def send_json(self, status, obj, headers=None):
        self.send(status, (json.dumps(obj, sort_keys=True) + "\n").encode(), headers)

    def send_error_shape(self, status, type_, message, extra=None, headers=None):
        """An AWS rest-json error: x-amzn-ErrorType header and a JSON body."""
        body = {"__type": type_, "message": message}
        body.update(extra or {})
        h = {"x-amzn-ErrorType": type_ + ERROR_NAMESPACE}
        h.update(headers or {})
        self.send(status, json.dumps(body).encode(), h)

    def rst(self):
        """Abort the connection: SO_LINGER 0 makes close() send a TCP RST."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.connection.close()

    def fin(self):
        """Close the connection without an answer (an orderly FIN)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def wait_for_hangup(self, limit_s):
        """Holds the connection until the client closes it (or limit_s passes)."""
        self.close_connection = True
        end = time.monotonic() + limit_s
        while time.monotonic() < end:
            try:
                r, _, _ = select.select([self.connection], [], [], 0.25)
                if r and not self.connection.recv(1, socket.MSG_PEEK):
                    return True
            except OSError:
                return True
        return False

    # -- routes --

    def do_GET(self):
        parts = urllib.parse.urlsplit(self.path)
        if parts.path == "/ping":
            return self.send(200, b"", content_type=None)
        if parts.path == "/stats":
            q = urllib.parse.parse_qs(parts.query)
            return self.send_json(200, self.server.state.stats(q["endpoint"][0] if "endpoint" in q else None))
        return self.send_error_shape(404, "UnknownOperationException", "Unknown operation GET %s" % parts.path)

    def do_POST(self):
        body = self.read_body()
        if body is None:
            return self.rst()
        parts = urllib.parse.urlsplit(self.path)
        if parts.path == "/control":
            try:
                return self.send_json(200, self.server.state.control(json.loads(body or b"{}")))
            except ValueError as e:
                return self.send_json(400, {"error": str(e)})
        segs = parts.path.split("/")
        if len(segs) == 4 and segs[0] == "" and segs[1] == "endpoints" and segs[3] == "invocations" and segs[2]:
            return self.invoke(urllib.parse.unquote(segs[2]), body)
        return self.send_error_shape(404, "UnknownOperationException", "Unknown operation POST %s" % parts.path)

    def do_PUT(self):
        self.read_body()
        self.send_error_shape(404, "UnknownOperationException", "Unknown operation PUT %s" % self.path)

    # -- InvokeEndpoint --

    def invoke(self, name, body):
        state = self.server.state
        args = state.args
        ep = state.endpoint(name)
        with ep.cond:
            ep.calls += 1
            ep.in_flight += 1
            ep.max_in_flight = max(ep.max_in_flight, ep.in_flight)
            if len(ep.peers) < 100000:
                ep.peers.add(self.client_address)
        outcome, answer = "client_gone", None  # counted so if the handler fails
        try:
            outcome, answer = self.decide(ep, name, body, state, args)
        finally:
            # Counted before the answer is written: a client that reads /stats
            # right after its call sees the call counted.
            with ep.cond:
                ep.in_flight -= 1
                if outcome == "ok":
                    ep.ok += 1
                else:
                    ep.errors[outcome] += 1
                    if outcome in SIGNATURE_ERRORS:
                        ep.bad_signatures += 1
        if answer is not None:
            answer()

    def decide(self, ep, name, body, state, args):
        """What to answer: (outcome for the counters, a function that writes it)."""
        headers = self.headers.items()
        try:
            info = verify_sigv4(self.command, self.path, headers, body, state.keys, args.region, "sagemaker",
                                max_skew=args.max_skew_s, allow_unsigned_payload=args.allow_unsigned_payload)
        except SigV4Error as e:
            if args.verbose:
                sys.stderr.write("sagemaker_server: %s %s: %s\n" % (name, e.type, e.message))
            return e.type, lambda err=e: self.send_error_shape(err.status, err.type, err.message)
        region = info["region"]
        req = {
            "content_type": self.headers.get("Content-Type"),
            "accept": self.headers.get("Accept"),
            "custom_attributes": self.headers.get("X-Amzn-SageMaker-Custom-Attributes"),
            "target_model": self.headers.get("X-Amzn-SageMaker-Target-Model"),
            "target_variant": self.headers.get("X-Amzn-SageMaker-Target-Variant"),
            "target_container": self.headers.get("X-Amzn-SageMaker-Target-Container-Hostname"),
            "inference_id": self.headers.get("X-Amzn-SageMaker-Inference-Id"),
        }
        with ep.cond:
            ep.last = dict(req, body_bytes=len(body), signed_headers=info["signed_headers"],
                           access_key=info["access_key"], region=region,
                           user_agent=self.headers.get("User-Agent"))
        if len(body) > args.max_body:
            return "ValidationError", lambda: self.send_error_shape(
                413, "ValidationError", "Request payload size %d bytes exceeds the limit of %d bytes."
                % (len(body), args.max_body))
        item = ep.next_item()
        extra_headers = dict(item.get("headers") or {})
        if "retry_after" in item:
            extra_headers["Retry-After"] = item["retry_after"]

        # Answered by the front end at once: no model slot, no model latency.
        if "throttle" in item or "not_ready" in item or "validation" in item or (
                "status" in item and item["status"] >= 300 and not item.get("slot")):
            if "latency_ms" in item:
                time.sleep(item["latency_ms"] / 1000.0)
            return self.front_end_error(item, req, name, extra_headers)

        # Served by the model: takes one of the endpoint's slots for its latency.
        ep.acquire()
        try:
            latency = item.get("latency_ms", ep.latency_ms)
            if latency:
                time.sleep(latency / 1000.0)
            if "hang" in item:
                self.wait_for_hangup(args.max_hang_s)  # holds the slot, as a stuck worker would
                return "hang", self.rst
            if "reset" in item:
                return "reset", self.rst
            if "close" in item:
                return "close", self.fin
            return self.model_answer(item, req, name, body, region, ep, extra_headers)
        finally:
            ep.release()

    def front_end_error(self, item, req, name, extra_headers):
        if "throttle" in item:
            return "ThrottlingException", lambda: self.send_error_shape(
                429, "ThrottlingException", item.get("message", "Rate exceeded"), headers=extra_headers)
        if "not_ready" in item:
            msg = item.get("message", "Model %s is not ready yet: it is still being loaded. Try again later."
                           % (req["target_model"] or name))
            return "ModelNotReadyException", lambda: self.send_error_shape(
                429, "ModelNotReadyException", msg, headers=extra_headers)
        if "validation" in item:
            msg = item["validation"] if isinstance(item["validation"], str) else "Inspect your request and try again."
            return "ValidationError", lambda: self.send_error_shape(400, "ValidationError", msg, headers=extra_headers)
        status = item["status"]
        type_, msg = STATUS_TYPES.get(status, (item.get("type"), "failing on purpose"))
        type_ = item.get("type", type_)
        msg = item.get("message", msg)
        if type_ is None:  # e.g. a proxy's 502: no AWS error shape at all
            return "HTTP%d" % status, lambda: self.send(status, (msg + "\n").encode(), extra_headers,
                                                        content_type="text/plain")
        return type_, lambda: self.send_error_shape(status, type_, msg, headers=extra_headers)

    def model_answer(self, item, req, name, body, region, ep, extra_headers):
        variant = req["target_variant"] or ep.variant
        answer_headers = {"X-Amzn-Invoked-Production-Variant": variant}
        if req["custom_attributes"] is not None:
            answer_headers["X-Amzn-SageMaker-Custom-Attributes"] = req["custom_attributes"]
        if "model_error" in item:
            code = item["model_error"]
            orig = item.get("message", "model failed on purpose (scripted)")
            kind = "client" if code < 500 else "server"
            msg = ('Received %s error (%d) from primary with message "%s". See '
                   "https://%s.console.aws.amazon.com/cloudwatch/home?region=%s#logEventViewer:group="
                   "/aws/sagemaker/Endpoints/%s in account %s for more information."
                   % (kind, code, orig, region, region, name, ACCOUNT))
            extra_headers.update(answer_headers)
            extra = {"OriginalStatusCode": code, "OriginalMessage": orig,
                     "LogStreamArn": "arn:aws:logs:%s:%s:log-group:/aws/sagemaker/Endpoints/%s" % (region, ACCOUNT, name)}
            return "ModelError", lambda: self.send_error_shape(424, "ModelError", msg, extra=extra,
                                                               headers=extra_headers)
        if "custom_attributes" in item:
            answer_headers["X-Amzn-SageMaker-Custom-Attributes"] = item["custom_attributes"]
        answer_headers.update(extra_headers)
        if "echo" in item or "truncate" in item:
            payload, ctype = self.echo_body(name, body, req), "application/json"
        elif "body_base64" in item:
            payload = base64.b64decode(item["body_base64"])
            ctype = item.get("content_type", "application/octet-stream")
        elif isinstance(item.get("body"), str):
            payload, ctype = item["body"].encode(), item.get("content_type", "text/plain")
        elif "body" in item:
            payload, ctype = json.dumps(item["body"]).encode(), item.get("content_type", "application/json")
        else:
            payload, ctype = b"", item.get("content_type", "application/json")
        if "truncate" in item:
            def truncated():
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                for k, v in answer_headers.items():
                    self.send_header(k, str(v))
                self._headers_buffer.append(b"\r\n")
                self._headers_buffer.append(payload[:len(payload) // 2])
                self.flush_headers()
                self.rst()
            return "truncate", truncated
        return "ok", lambda: self.send(item.get("status", 200), payload, answer_headers, content_type=ctype)

    @staticmethod
    def echo_body(name, body, req):
        try:
            echo, encoding = json.loads(body.decode("utf-8")), "json"
        except ValueError:
            echo, encoding = base64.b64encode(body).decode(), "base64"
        return json.dumps({
            "endpoint": name,
            "echo": echo,
            "echo_encoding": encoding,
            "content_type": req["content_type"],
            "accept": req["accept"],
            "headers": {k: req[k] for k in ("custom_attributes", "target_model", "target_variant",
                                            "target_container", "inference_id")},
            "body_bytes": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "embedding": embedding_of(body),
        }, sort_keys=True).encode()

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, BrokenPipeError, socket.timeout, OSError):
            self.close_connection = True


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024  # many clients connect at once
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if self.state.args.verbose:
            super().handle_error(request, client_address)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    p.add_argument("--ready-file", help="written with url=... once listening")
    p.add_argument("--latency-ms", type=float, default=0, help="default model latency per call")
    p.add_argument("--slots", type=int, default=64, help="default calls served at once per endpoint")
    p.add_argument("--access-key", default="test")
    p.add_argument("--secret-key", default="test")
    p.add_argument("--keys", help="more KEY:SECRET pairs, comma-separated")
    p.add_argument("--region", default="us-east-1", help="the signing region required ('*': any)")
    p.add_argument("--max-skew-s", type=int, default=300, help="X-Amz-Date tolerance, seconds")
    p.add_argument("--allow-unsigned-payload", action="store_true",
                   help="accept x-amz-content-sha256: UNSIGNED-PAYLOAD")
    p.add_argument("--max-body", type=int, default=MAX_BODY, help="largest request body accepted")
    p.add_argument("--max-hang-s", type=float, default=600, help="a hang gives up after this")
    p.add_argument("--verbose", action="store_true", help="log every request on stderr")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    server = Server(("127.0.0.1", args.port), Handler)
    server.state = State(args)
    url = "url=http://127.0.0.1:%d" % server.server_address[1]
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(url + "\n")
        os.replace(tmp, args.ready_file)
    print(url, flush=True)

    def stop(*_):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
