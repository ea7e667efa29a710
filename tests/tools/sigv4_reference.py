#!/usr/bin/env python3
"""botocore's SigV4 signature of one S3 GET/HEAD, for tests/unit/test_sigv4.c.

Reads one JSON request description on stdin, for example
  {"method": "GET", "bucket": "b", "key": "a b.txt", "version_id": null,
   "region": "eu-west-1", "endpoint": "http://127.0.0.1:9000" or null,
   "addressing": "path" or "virtual",
   "access_key": "AKID", "secret_key": "SECRET", "session_token": null,
   "time": "20240102T030405Z"}
and prints, as JSON, what a real boto3 S3 client (get_object / head_object)
would send at that time: {"url": ..., "headers": {lower-case name: value},
"canonical_request": ...}. Nothing leaves the machine: the request is caught
in botocore's before-send hook, after signing, and never sent.

Exit status 3 (with a message) when botocore cannot be imported, so the
caller can tell "no reference signer here" from a real failure.
"""
import datetime
import json
import logging
import sys

try:
    import botocore
    import botocore.auth
    import botocore.session
    from botocore.config import Config
except ImportError as e:  # the test skips with this message
    print("botocore is not importable by %s: %s" % (sys.executable, e), file=sys.stderr)
    sys.exit(3)


class Caught(Exception):
    """Raised from before-send to stop botocore after it signed the request."""


class CanonicalRequestLog(logging.Handler):
    """Keeps the canonical request botocore's signer logs at debug level."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.canonical = None

    def emit(self, record):
        if record.msg == "CanonicalRequest:\n%s":
            self.canonical = record.args[0] if isinstance(record.args, tuple) else record.args


def freeze_clock(when):
    """Makes botocore's signer see `when` as the current time."""
    if hasattr(botocore.auth, "get_current_datetime"):
        # botocore >= 1.32 reads the clock through this module-level name.
        botocore.auth.get_current_datetime = lambda *a, **k: when
        return
    # Older botocore (Debian 12 has 1.29) calls datetime.datetime.utcnow().
    naive = when.replace(tzinfo=None)

    class FrozenDatetime(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return naive

    class FrozenModule:
        datetime = FrozenDatetime

    botocore.auth.datetime = FrozenModule


def make_config(spec):
    s3 = {"addressing_style": spec["addressing"], "us_east_1_regional_endpoint": "regional"}
    try:
        # Newer botocore asks for response checksums on GetObject by default
        # (an x-amz-checksum-mode header); the engine does not.
        return Config(s3=s3, retries={"max_attempts": 1},
                      response_checksum_validation="when_required",
                      request_checksum_calculation="when_required")
    except TypeError:  # botocore < 1.36 has neither option nor that default
        return Config(s3=s3, retries={"max_attempts": 1})


def main():
    spec = json.load(sys.stdin)
    when = datetime.datetime.strptime(spec["time"], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc)
    freeze_clock(when)

    log = CanonicalRequestLog()
    auth_logger = logging.getLogger("botocore.auth")
    auth_logger.setLevel(logging.DEBUG)
    auth_logger.addHandler(log)

    session = botocore.session.get_session()
    # No credentials, region or endpoint from the environment or ~/.aws.
    for var in ("config_file", "credentials_file"):
        session.set_config_variable(var, "/dev/null")
    config = make_config(spec)
    client = session.create_client(
        "s3",
        region_name=spec["region"],
        endpoint_url=spec.get("endpoint"),
        aws_access_key_id=spec["access_key"],
        aws_secret_access_key=spec["secret_key"],
        aws_session_token=spec.get("session_token"),
        config=config,
    )
    caught = {}

    def before_send(request, **kwargs):
        caught["url"] = request.url
        caught["method"] = request.method
        caught["headers"] = {k.lower(): (v.decode() if isinstance(v, bytes) else v)
                             for k, v in request.headers.items()}
        raise Caught()

    client.meta.events.register("before-send.s3", before_send)
    args = {"Bucket": spec["bucket"], "Key": spec["key"]}
    if spec.get("version_id"):
        args["VersionId"] = spec["version_id"]
    try:
        if spec["method"] == "HEAD":
            client.head_object(**args)
        else:
            client.get_object(**args)
    except Caught:
        pass
    if "url" not in caught:
        sys.exit("botocore did not build a request")
    caught["canonical_request"] = log.canonical
    caught["botocore_version"] = botocore.__version__
    json.dump(caught, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
