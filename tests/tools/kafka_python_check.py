#!/usr/bin/python3
"""Checks that Debian's kafka-python (python3-kafka 2.0.2, system /usr/bin/python3) works against
the Kafka stand-in (tests/tools/kafka_mock): produces COUNT messages, consumes them back in a
consumer group with commits, and checks a restarted member of the group sees nothing twice.

    kafka_python_check.py BOOTSTRAP|CLUSTER_DIR [--topic T] [--count N] [--api-version X.Y.Z|auto]

Without --topic it uses a new topic (auto-created by the mock with 4 partitions); a given topic
must hold nothing else. Exits 0 and prints "kafka-python ok: ..." on success.
The settings below are the ones that work against the mock (docs/testing-kafka.md).
"""
import argparse
import json
import os
import sys
import time
import uuid

try:
    from kafka import KafkaConsumer, KafkaProducer
except ImportError:
    sys.exit("kafka_python_check: kafka-python missing: apt-get install python3-kafka (for /usr/bin/python3)")

# Without api_version, kafka-python probes the broker and finds (2, 3, 0) against the mock (measured:
# 0.1-0.3 s per client). Pinning that value gives the same request versions without the probe.
# Anything from 0.11.0 to 2.5.0 works; 0.10.x and older fail: the mock refuses their Produce
# (old message format) with UnsupportedVersionError. "auto" on the command line = probe.
DEFAULT_API_VERSION = "2.3.0"


def client_settings(bootstrap, api_version):
    """Settings shared by producer and consumer."""
    return dict(bootstrap_servers=bootstrap.split(","), api_version=api_version,
                request_timeout_ms=30000)


def consumer_settings(group):
    """Group settings the tests need: short session so a restarted member rejoins fast."""
    return dict(group_id=group, auto_offset_reset="earliest", enable_auto_commit=False,
                session_timeout_ms=3000, heartbeat_interval_ms=500, consumer_timeout_ms=10000)


def produce(bootstrap, api_version, topic, count):
    producer = KafkaProducer(acks="all", linger_ms=5, **client_settings(bootstrap, api_version))
    futures = [producer.send(topic, json.dumps({"bucket": "b", "key": "k%d" % i}).encode())
               for i in range(count)]
    producer.flush(30)
    for f in futures:
        f.get(timeout=30)  # raises if a delivery failed
    producer.close(10)


def consume(bootstrap, api_version, topic, group, limit, linger_s=0.0, deadline_s=60):
    """Consumes `limit` messages in `group` (then keeps polling `linger_s` more seconds to catch
    any extra), commits after each batch, closes; returns their (partition, offset) pairs."""
    consumer = KafkaConsumer(topic, **client_settings(bootstrap, api_version), **consumer_settings(group))
    seen = []
    end = time.monotonic() + deadline_s
    lingering = False
    try:
        while time.monotonic() < end:
            if len(seen) >= limit and not lingering:
                lingering = True
                end = min(end, time.monotonic() + linger_s)
                continue
            # Below the limit, ask for no more than the limit, so a first run stops exactly there.
            batch = consumer.poll(timeout_ms=200, max_records=500 if lingering else limit - len(seen))
            for records in batch.values():
                for r in records:
                    json.loads(r.value)
                    seen.append((r.partition, r.offset))
            if batch:
                consumer.commit()
    finally:
        consumer.close()
    return seen


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bootstrap")
    ap.add_argument("--topic", help="default: a new topic, auto-created with 4 partitions")
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--api-version", default=DEFAULT_API_VERSION)
    a = ap.parse_args()
    bootstrap = a.bootstrap
    if os.path.isdir(bootstrap):
        with open(os.path.join(bootstrap, "bootstrap")) as f:
            bootstrap = f.read().strip()
    api_version = None if a.api_version == "auto" else tuple(int(x) for x in a.api_version.split("."))
    run_id = uuid.uuid4().hex[:8]
    group = "pycheck-" + run_id
    topic = a.topic or "pycheck-" + run_id

    t0 = time.monotonic()
    produce(bootstrap, api_version, topic, a.count)
    t1 = time.monotonic()
    half = a.count // 2
    first = consume(bootstrap, api_version, topic, group, half)
    t2 = time.monotonic()
    rest = consume(bootstrap, api_version, topic, group, a.count - len(first), linger_s=2.0)
    t3 = time.monotonic()
    both = first + rest
    dupes = len(both) - len(set(both))
    if len(first) != half or len(set(both)) != a.count or dupes:
        sys.exit("kafka_python_check: FAILED: first run %d of %d, second run %d, %d distinct "
                 "of %d, %d seen twice" % (len(first), half, len(rest), len(set(both)), a.count, dupes))
    print("kafka-python ok: api_version=%s, produced %d, consumed %d + %d after a restart of group %s, "
          "none twice, in %.1f s (produce %.1f, first run %.1f, second run %.1f)"
          % (a.api_version, a.count, len(first), len(rest), group, t3 - t0, t1 - t0, t2 - t1, t3 - t2))


if __name__ == "__main__":
    main()
