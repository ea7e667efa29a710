#!/usr/bin/python3
"""The seed's way of calling a model, for bench/invoke.sh: one boto3
sagemaker-runtime client, and a sequential loop of invoke_endpoint calls, each
waiting for its answer before the next one starts (Debian's python3-boto3 on
/usr/bin/python3, as the seed ran).

  invoke_seed_loop.py ENDPOINT_URL N [--endpoint NAME] [--body-bytes B]

ENDPOINT_URL is the runtime's base URL (the test server's url=..., e.g.
http://127.0.0.1:PORT). Credentials and region come from AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY and AWS_REGION, else test/test and us-east-1, the test
server's defaults. The client is boto3's default configuration apart from
endpoint_url, as in the seed.

Each call sends a JSON body {"inputs": "..."} of about B bytes (default 256)
that differs per call, reads the whole answer and json-decodes it, as the
seed's handlers did. One warm-up call (client set-up, first connection) is made
before the clock starts. Prints one line of JSON:

  {"n": N, "secs": ..., "calls_per_s": ..., "cpu_s": ..., "cpu_ms_per_1000": ...,
   "errors": E, "endpoint": NAME, "botocore": VERSION, "python": ...}

cpu_s is this process's user+system CPU time over the timed loop
(resource.getrusage(RUSAGE_SELF)); cpu_ms_per_1000 is that per 1,000 calls.
A failed call is counted in "errors" and the loop goes on.
"""
import argparse
import json
import os
import resource
import sys
import time

import boto3
import botocore


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    p = argparse.ArgumentParser(description="sequential boto3 invoke_endpoint loop")
    p.add_argument("endpoint_url")
    p.add_argument("n", type=int)
    p.add_argument("--endpoint", default="bench", help="EndpointName (default bench)")
    p.add_argument("--body-bytes", type=int, default=256, help="approximate request body size")
    a = p.parse_args()
    if a.n < 1:
        p.error("N must be at least 1")

    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=a.endpoint_url,
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    )
    filler = "lorem ipsum dolor sit amet " * (a.body_bytes // 27 + 1)

    def call(i):
        body = json.dumps({"inputs": ("%d " % i + filler)[:max(1, a.body_bytes - 14)]})
        r = client.invoke_endpoint(EndpointName=a.endpoint, Body=body.encode(),
                                   ContentType="application/json", Accept="application/json")
        return json.loads(r["Body"].read())

    call(-1)  # warm-up: not timed
    errors = 0
    t0, c0 = time.perf_counter(), cpu()
    for i in range(a.n):
        try:
            call(i)
        except Exception as e:  # noqa: BLE001 - the loop goes on, as the seed's retry-less loop would log and continue
            errors += 1
            if errors <= 3:
                print("invoke_seed_loop: call %d failed: %s" % (i, e), file=sys.stderr)
    secs, cpu_s = time.perf_counter() - t0, cpu() - c0
    print(json.dumps({
        "n": a.n, "secs": round(secs, 4), "calls_per_s": round(a.n / secs, 2),
        "cpu_s": round(cpu_s, 4), "cpu_ms_per_1000": round(cpu_s * 1000.0 * 1000 / a.n, 1),
        "errors": errors, "endpoint": a.endpoint, "botocore": botocore.__version__,
        "python": sys.executable,
    }), flush=True)
    return 1 if errors == a.n else 0


if __name__ == "__main__":
    sys.exit(main())
