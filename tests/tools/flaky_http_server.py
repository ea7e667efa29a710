#!/usr/bin/env python3
"""An HTTP server that fails on purpose, for the fetch tests (tests/unit/test_fetch_s3.c).

Binds 127.0.0.1 on a free port, prints "port=N" on stdout once it listens,
serves until SIGTERM. The first path segment picks the behaviour, so that an
S3 path-style URL (ENDPOINT/bucket/key) chooses it through its bucket name:

  /ok/NAME                  200, body "hello from NAME\\n", ETag, type by extension
  /noetag/NAME              200 without ETag
  /flaky/STATUSxN[-CODE]/NAME  the first N requests (GET or HEAD) of this path answer
                            STATUS (with S3's XML error CODE when given), then as /ok
  /retryafter/SECS/NAME     the first request answers 503 with Retry-After: SECS, then as /ok
  /status/STATUS-CODE/NAME  always STATUS with S3's XML error CODE
  /hang/MS/NAME             headers (Content-Length: 6) at once, then nothing for MS ms
  /big/BYTES/NAME           BYTES bytes of body with no Content-Length (until close)
  /redirect/NAME            302 to /ok/NAME
  /_count/PATH              "GET=n HEAD=m": requests seen for /PATH
  /_auth/PATH               the Authorization header of the last request for /PATH
"""
import http.server
import re
import signal
import sys
import threading
import time
import urllib.parse

TYPES = {".txt": "text/plain", ".png": "image/png", ".json": "application/json"}

lock = threading.Lock()
counts = {}  # path -> {"GET": n, "HEAD": n}
auth = {}  # path -> last Authorization header


def xml_error(code, message):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
            '<RequestId>TEST</RequestId></Error>' % (code, message)).encode()


MESSAGES = {
    "SlowDown": "Please reduce your request rate.",
    "InternalError": "We encountered an internal error. Please try again.",
    "RequestTimeout": "Your socket connection to the server was not read from or written to within the timeout period.",
    "AccessDenied": "Access Denied",
    "NoSuchKey": "The specified key does not exist.",
}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: bodies end at close

    def log_message(self, fmt, *args):  # quiet
        pass

    def send(self, status, body=b"", headers=None, length=True):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def ok(self, name, etag=True):
        body = ("hello from %s\n" % name).encode()
        ext = name[name.rfind("."):] if "." in name else ""
        headers = {"Content-Type": TYPES.get(ext, "application/octet-stream"),
                   "Last-Modified": "Tue, 02 Jan 2024 03:04:05 GMT"}
        if etag:
            headers["ETag"] = '"etag-%s"' % name
        self.send(200, body, headers)

    def handle_any(self):
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        parts = path.lstrip("/").split("/")
        mode = parts[0]
        if mode in ("_count", "_auth"):
            target = "/" + "/".join(parts[1:])
            with lock:
                if mode == "_count":
                    c = counts.get(target, {})
                    body = "GET=%d HEAD=%d" % (c.get("GET", 0), c.get("HEAD", 0))
                else:
                    body = auth.get(target, "")
            return self.send(200, body.encode(), {"Content-Type": "text/plain"})
        with lock:
            c = counts.setdefault(path, {})
            c[self.command] = c.get(self.command, 0) + 1
            seen = sum(c.values())
            auth[path] = self.headers.get("Authorization", "")
        name = parts[-1]
        if mode == "ok":
            return self.ok(name)
        if mode == "noetag":
            return self.ok(name, etag=False)
        if mode == "redirect":
            return self.send(302, b"", {"Location": "/ok/" + name})
        if mode == "flaky":
            m = re.fullmatch(r"(\d+)x(\d+)(?:-(\w+))?", parts[1])
            status, n, code = int(m.group(1)), int(m.group(2)), m.group(3)
            if seen <= n:
                if code:
                    return self.send(status, xml_error(code, MESSAGES.get(code, code)),
                                     {"Content-Type": "application/xml"})
                return self.send(status, b"failing on purpose\n", {"Content-Type": "text/plain"})
            return self.ok(name)
        if mode == "retryafter":
            if seen <= 1:
                return self.send(503, b"", {"Retry-After": parts[1]})
            return self.ok(name)
        if mode == "status":
            status, code = parts[1].split("-", 1)
            return self.send(int(status), xml_error(code, MESSAGES.get(code, code)),
                             {"Content-Type": "application/xml"})
        if mode == "hang":
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.flush()
            time.sleep(int(parts[1]) / 1000.0)
            if self.command != "HEAD":
                self.wfile.write(b"late!\n")
            return None
        if mode == "big":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if self.command == "HEAD":
                return None
            left = int(parts[1])
            chunk = b"x" * 65536
            try:
                while left > 0:
                    self.wfile.write(chunk[:min(left, len(chunk))])
                    left -= min(left, len(chunk))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up: that is the point
            return None
        return self.send(404, xml_error("NoSuchKey", MESSAGES["NoSuchKey"]), {"Content-Type": "application/xml"})

    do_GET = handle_any
    do_HEAD = handle_any


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    print("port=%d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
