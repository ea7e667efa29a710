#!/usr/bin/python3
"""The seed's whole flow, for bench/end_to_end.sh, in the seed's style with
Debian's packages on /usr/bin/python3 (kafka-python, boto3, pymongo):

  KafkaConsumer (enable_auto_commit=False) -> for each message: json.loads,
  for each record: boto3 head_object + get_object, invoke_endpoint x3 in
  sequence (extract on the bytes, generate, embed), pymongo insert_one of one
  document -> consumer.commit() after each file.

  end_to_end_seed.py BOOTSTRAP TOPIC GROUP N S3_ENDPOINT SAGEMAKER_URL MONGO_URI DATABASE COLLECTION
                     [--watch name=PID,...]

Stops after N files. Timed from the first message to the last commit
(perf_counter); the group join before the first message is not timed. With
--watch, the CPU time (/proc/PID/stat utime+stime) of those processes over the
same window is reported too (read once at the first message and once after
the last commit, outside the loop). Prints one line of JSON.
"""
import json
import os
import resource
import sys
import time
import urllib.parse

import boto3
import pymongo
from kafka import KafkaConsumer


def cpu_self():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def proc_cpu(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def main(argv):
    watch = {}
    if "--watch" in argv:
        i = argv.index("--watch")
        for item in argv[i + 1].split(","):
            if item:
                name, pid = item.split("=")
                watch[name] = int(pid)
        argv = argv[:i] + argv[i + 2:]
    if len(argv) != 10:
        print(__doc__, file=sys.stderr)
        return 2
    bootstrap, topic, group, n, s3_url, sm_url, mongo_uri, dbname, coll_name = argv[1:]
    n = int(n)
    region = os.environ.get("AWS_REGION", "us-east-1")

    s3 = boto3.client("s3", endpoint_url=s3_url, region_name=region)
    runtime = boto3.client("sagemaker-runtime", endpoint_url=sm_url, region_name=region)
    collection = pymongo.MongoClient(mongo_uri)[dbname][coll_name]
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap.split(","), api_version=(2, 3, 0),
                             group_id=group, auto_offset_reset="earliest", enable_auto_commit=False,
                             session_timeout_ms=3000, heartbeat_interval_ms=500, request_timeout_ms=30000)

    def invoke(endpoint, body, content_type):
        r = runtime.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType=content_type,
                                    Accept="application/json")
        return json.loads(r["Body"].read())

    done = errors = 0
    t0 = c0 = None
    w0 = {}
    for message in consumer:
        if t0 is None:
            t0, c0 = time.perf_counter(), cpu_self()
            w0 = {k: proc_cpu(p) for k, p in watch.items()}
        event = json.loads(message.value)
        for rec in event.get("Records", []):
            bucket = rec["s3"]["bucket"]["name"]
            key = urllib.parse.unquote_plus(rec["s3"]["object"]["key"])
            try:
                head = s3.head_object(Bucket=bucket, Key=key)
                ctype = head.get("ContentType") or "application/octet-stream"
                data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                x = invoke("extract", data, ctype)
                prompt = "Describe %s (%s, %d bytes, sha256 %s)" % (key, ctype, x["body_bytes"], x["body_sha256"])
                g = invoke("generate", json.dumps({"inputs": prompt}).encode(), "application/json")
                text = g["echo"]["inputs"]
                e = invoke("embed", json.dumps({"inputs": text}).encode(), "application/json")
                collection.insert_one({
                    "key": key, "content_type": ctype, "size": head["ContentLength"],
                    "extraction": {"bytes": x["body_bytes"], "sha256": x["body_sha256"]},
                    "generation": {"sha256": g["body_sha256"], "text": text},
                    "embedding": e["embedding"],
                })
            except Exception as ex:  # noqa: BLE001 - the seed logged and went on
                errors += 1
                print("seed: %s failed: %s" % (key, ex), file=sys.stderr)
        consumer.commit()
        done += 1
        if done >= n:
            break
    t1, c1 = time.perf_counter(), cpu_self()
    w1 = {k: proc_cpu(p) for k, p in watch.items()}
    consumer.close(autocommit=False)
    print(json.dumps({"n": done, "errors": errors, "secs": t1 - t0, "files_per_s": done / (t1 - t0),
                      "cpu": c1 - c0,
                      "peers_cpu": {k: (w1[k] - w0[k]) if w0.get(k) is not None and w1.get(k) is not None else None
                                    for k in watch}}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
