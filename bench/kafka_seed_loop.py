#!/usr/bin/python3
"""The seed's consumption loop, for bench/kafka_consume.sh: Debian's
kafka-python (python3-kafka 2.0.2) KafkaConsumer in a consumer group,
json.loads of every message, nothing else (the no-op handler).

  kafka_seed_loop.py BOOTSTRAP TOPIC GROUP N FETCH_WAIT_MS

Counts until N messages were seen. The clock starts at the first message, so
the group join (~3 s against the mock) is not measured; the clock stops when
the N-th message is decoded. Prints one line of JSON:

  {"n": N, "secs": first->last, "cpu": process CPU first->last,
   "join_secs": consumer created->first message, "records": records seen,
   "others_cores": cores busy with other processes over the window}

Settings are the ones docs/testing-kafka.md found to work against the mock,
plus fetch_max_wait_ms (the same value every contender gets). Offsets are
not committed (enable_auto_commit=False, no commit call): the loop does less
than the engine, which commits what it has done.
"""
import json
import os
import sys
import time

from kafka import KafkaConsumer


def cpu():
    t = os.times()
    return t.user + t.system


def machine_busy():
    """CPU-seconds the whole machine has been busy, from /proc/stat (to see other load)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def main(argv):
    if len(argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    bootstrap, topic, group, n, fetch_wait = argv[1], argv[2], argv[3], int(argv[4]), int(argv[5])
    created = time.perf_counter()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap.split(","), api_version=(2, 3, 0),
                             group_id=group, auto_offset_reset="earliest", enable_auto_commit=False,
                             session_timeout_ms=3000, heartbeat_interval_ms=500, request_timeout_ms=30000,
                             fetch_max_wait_ms=fetch_wait)
    seen = records = 0
    t0 = c0 = None
    for message in consumer:
        if t0 is None:
            t0, c0, b0 = time.perf_counter(), cpu(), machine_busy()
        event = json.loads(message.value)
        records += len(event.get("Records", ()))
        seen += 1
        if seen >= n:
            break
    t1, c1, b1 = time.perf_counter(), cpu(), machine_busy()
    consumer.close(autocommit=False)
    # others_cores: cores busy with anything but this loop during the window (the mock included)
    print(json.dumps({"n": seen, "secs": t1 - t0, "cpu": c1 - c0, "join_secs": t0 - created,
                      "records": records, "others_cores": max(b1 - b0 - (c1 - c0), 0.0) / (t1 - t0)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
