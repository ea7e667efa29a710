#!/usr/bin/env python3
"""Fixtures for the Kafka + S3 tests: upload objects to the S3 stand-in,
write S3 event notifications for them, read a group's committed offsets, and
compute the document ids the engine must produce.

  s3_fixture.py upload ENDPOINT BUCKET DIR            objects = files under DIR (key = relative path)
  s3_fixture.py notify ENDPOINT BUCKET [--form aws|minio|simple] [--per-message N] [--removed]
                                                       one JSON line per message, for every object in BUCKET
  s3_fixture.py committed BOOTSTRAP GROUP TOPIC       prints "committed=C end=E lag=L"
  s3_fixture.py ids ENDPOINT BUCKET PIPELINE           the expected _id of document 0 of every object
"""
import hashlib
import json
import struct
import sys
import urllib.parse

import boto3


def s3(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def objects(client, bucket):
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            yield o


def upload(endpoint, bucket, root):
    import os
    c = s3(endpoint)
    try:
        c.create_bucket(Bucket=bucket)
    except c.exceptions.BucketAlreadyOwnedByYou:
        pass
    n = 0
    for d, _, files in os.walk(root):
        for f in sorted(files):
            path = os.path.join(d, f)
            key = os.path.relpath(path, root)
            with open(path, "rb") as fh:
                c.put_object(Bucket=bucket, Key=key, Body=fh.read())
            n += 1
    print("uploaded %d objects to %s" % (n, bucket), file=sys.stderr)


def record(bucket, o, removed):
    return {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": o["LastModified"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "eventName": "ObjectRemoved:Delete" if removed else "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": "arn:aws:s3:::" + bucket},
               "object": {"key": urllib.parse.quote_plus(o["Key"], safe="/"), "size": o["Size"],
                          "eTag": o["ETag"].strip('"'), "sequencer": "0"}},
    }


def notify(endpoint, bucket, form, per_message, removed):
    batch = []
    for o in objects(s3(endpoint), bucket):
        if form == "simple":
            print(json.dumps({"bucket": bucket, "key": o["Key"], "file_type": "text/plain"}))
            continue
        batch.append(record(bucket, o, removed))
        if len(batch) == per_message:
            emit(bucket, batch, form)
            batch = []
    if batch:
        emit(bucket, batch, form)


def emit(bucket, records, form):
    if form == "minio":
        print(json.dumps({"EventName": "s3:" + records[0]["eventName"],
                          "Key": bucket + "/" + urllib.parse.unquote_plus(records[0]["s3"]["object"]["key"]),
                          "Records": records}))
    else:
        print(json.dumps({"Records": records}))


def committed(bootstrap, group, topic):
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=group, api_version=(2, 3, 0),
                      enable_auto_commit=False, request_timeout_ms=30000)
    parts = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
    end = c.end_offsets(parts)
    done = sum((c.committed(tp) or 0) for tp in parts)
    total = sum(end.values())
    c.close()
    print("committed=%d end=%d lag=%d" % (done, total, total - done))


def docid(pipeline, bucket, key, version, index):
    h = hashlib.sha256()
    for field in (pipeline, bucket, key, version):
        b = field.encode()
        h.update(struct.pack(">Q", len(b)) + b)
    h.update(struct.pack(">Q", index))
    return h.hexdigest()[:24]


def ids(endpoint, bucket, pipeline):
    for o in objects(s3(endpoint), bucket):
        print(docid(pipeline, bucket, o["Key"], o["ETag"].strip('"'), 0))


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "upload":
        upload(argv[2], argv[3], argv[4])
    elif cmd == "notify":
        form = argv[argv.index("--form") + 1] if "--form" in argv else "aws"
        per = int(argv[argv.index("--per-message") + 1]) if "--per-message" in argv else 1
        notify(argv[2], argv[3], form, per, "--removed" in argv)
    elif cmd == "committed":
        committed(argv[2], argv[3], argv[4])
    elif cmd == "ids":
        ids(argv[2], argv[3], argv[4])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
