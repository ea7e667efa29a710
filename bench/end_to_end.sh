#!/usr/bin/env bash
# The headline benchmark (issue 5): the seed's whole flow on the same peers.
# FILES mixed files (text, PNG images, WAV audio, PDFs, made here with the
# Python stdlib) are uploaded to the S3 stand-in; one AWS-form S3 event
# notification per file goes to Kafka (the mock cluster); per file three
# endpoint calls (extract, generate, embed) go to the SageMaker test server
# (50 ms latency, 64 slots per endpoint); one result document per file goes to
# MongoDB (the CongoDB stand-in, bench fast paths on).
#
# Contenders, one after the other against the same peers, each on its own
# topic, consumer group and collection:
#   mmpipe  build/mmpipe run --pipelines bench/pipelines/end_to_end (Kafka
#           source, S3 fetch, mmpipe.invoke x3, MongoDB destination); timed
#           from its "assigned N partition(s)" log line (the group join is
#           not timed) to the moment the group's committed offsets cover
#           every message (polled every 20 ms).
#   seed    bench/end_to_end_seed.py (Debian's /usr/bin/python3: kafka-python,
#           boto3, pymongo), one file at a time, commit after each; timed by
#           itself from the first message to the last commit.
# The seed runs at ~6 files/s; when FILES would take it more than ~3 minutes
# it gets the first SEED_FILES (default 60) files on its own topic instead.
#
#   bench/end_to_end.sh [FILES]        (default 300; SEED_FILES=... to force the seed's count)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${1:-300}
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/end_to_end.sh [FILES]" >&2; exit 2; }
if [ -n "${SEED_FILES:-}" ]; then SEED_N=$SEED_FILES
elif [ $((N / 6)) -gt 180 ]; then SEED_N=60
else SEED_N=$N; fi
[ "$SEED_N" -le "$N" ] || SEED_N=$N
BUILD=${BUILD:-build}
PY=/usr/bin/python3 # Debian's python3: kafka-python, boto3, pymongo
TOOLS=$ROOT/tests/tools
PARTITIONS=8
# The engine's knobs: librdkafka commits stored offsets every auto.commit.interval.ms (default
# 1000), which rounds the engine's window up to whole seconds, so 100 here. WORKERS=N sets
# engine.workers (S3 fetches block a worker; 2, 8 and 16 measured the same here), default unset.
WORKERS=${WORKERS:-}
COMMIT_MS=${COMMIT_MS:-100}
WORKERS_JSON=${WORKERS:+, \"workers\": $WORKERS}
BUCKET=e2e-bucket
if [ ! -x "$BUILD/mmpipe" ] || [ ! -x "$BUILD/tests/tools/kafka_mock" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" >/dev/null
fi
BUILD=$(cd "$BUILD" && pwd)
export KAFKA_MOCK=$BUILD/tests/tools/kafka_mock
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 || true

work=$(mktemp -d "${TMPDIR:-/tmp}/mmpipe-e2e-XXXXXX")
ENGINE_PID=
SEED_PID=
cleanup() {
  if [ -n "$ENGINE_PID" ] && kill -0 "$ENGINE_PID" 2>/dev/null; then
    kill -TERM "$ENGINE_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$ENGINE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$ENGINE_PID" 2>/dev/null || true
  fi
  if [ -n "$SEED_PID" ] && kill -0 "$SEED_PID" 2>/dev/null; then kill -TERM "$SEED_PID" 2>/dev/null || true; fi
  bash "$TOOLS/sagemaker_server.sh" stop "$work/sm" >/dev/null 2>&1 || true
  bash "$TOOLS/mongo_server.sh" stop "$work/mongo" >/dev/null 2>&1 || true
  bash "$TOOLS/s3_server.sh" stop "$work/s3" >/dev/null 2>&1 || true
  bash "$TOOLS/kafka_cluster.sh" stop "$work/kafka" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$work/helper.py" <<'PY'
"""Helpers of bench/end_to_end.sh: make (files, upload, notifications), watch (time the engine), count, report."""
import calendar, json, mimetypes, os, random, re, struct, sys, time, wave, zlib

def proc_cpu(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None

WORDS = ("harbour tide ledger cargo lantern north quay ferry storm chart gull rope anchor "
         "pilot beacon dock salt keel mast sail current reef shoal buoy").split()

def png(w, h, rnd):
    rows = b"".join(b"\x00" + bytes(rnd.randrange(256) if (x * y) % 7 else (x * 4 + y) % 256
                                    for x in range(w) for _ in range(3)) for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))

def wav(path, i, rnd):
    import math
    rate, secs, f0 = 8000, 0.25 + (i % 4) * 0.1, 220 + (i % 12) * 40
    with wave.open(path, "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * f0 * t / rate))
                                           + rnd.randrange(-300, 300)) for t in range(int(rate * secs))))

def pdf(i, text):
    stream = ("BT /F1 12 Tf 72 720 Td (%s) Tj ET" % text.replace("(", "").replace(")", "")).encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offs = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", []
    for n, o in enumerate(objs, 1):
        offs.append(len(out)); out += b"%d 0 obj\n" % n + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offs)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return out

def make(n, d, s3_url, bucket, tools, engine_out, seed_out, seed_n):
    import boto3
    sys.path.insert(0, tools)
    import s3_fixture
    rnd = random.Random(5)
    os.makedirs(d)
    kinds = {}
    paths = []
    for i in range(n):
        kind = ("text", "text", "image", "audio", "pdf")[i % 5]
        sentence = " ".join(rnd.choice(WORDS) for _ in range(12))
        if kind == "text":
            p = os.path.join(d, "text-%04d.txt" % i)
            with open(p, "w") as f:
                f.write("Note %d. " % i + "\n".join(" ".join(rnd.choice(WORDS) for _ in range(14)).capitalize() + "."
                                                   for _ in range(rnd.randrange(10, 40))) + "\n")
        elif kind == "image":
            p = os.path.join(d, "image-%04d.png" % i)
            with open(p, "wb") as f:
                f.write(png(rnd.randrange(24, 64), rnd.randrange(24, 64), rnd))
        elif kind == "audio":
            p = os.path.join(d, "audio-%04d.wav" % i)
            wav(p, i, rnd)
        else:
            p = os.path.join(d, "paper-%04d.pdf" % i)
            with open(p, "wb") as f:
                f.write(pdf(i, "Paper %d: %s" % (i, sentence)))
        kinds[kind] = kinds.get(kind, 0) + 1
        paths.append(p)
    c = s3_fixture.s3(s3_url)
    c.create_bucket(Bucket=bucket)
    total = 0
    with open(engine_out, "w") as fe, open(seed_out, "w") as fs:
        for i, p in enumerate(paths):
            key = os.path.basename(p)
            body = open(p, "rb").read()
            total += len(body)
            c.put_object(Bucket=bucket, Key=key, Body=body, ContentType=mimetypes.guess_type(key)[0])
            o = c.head_object(Bucket=bucket, Key=key)
            rec = s3_fixture.record(bucket, {"Key": key, "Size": o["ContentLength"], "ETag": o["ETag"],
                                             "LastModified": o["LastModified"]}, False)
            line = json.dumps({"Records": [rec]}) + "\n"
            fe.write(line)
            if i < seed_n:
                fs.write(line)
    print(json.dumps({"kinds": kinds, "bytes": total}))

LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z .*\[kafka\] assigned (\d+) partition")

def watch(bootstrap, topic, group, n, pid, log, peers, timeout_s=600):
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=group, api_version=(2, 3, 0),
                      enable_auto_commit=False, request_timeout_ms=30000)
    parts = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
    peers = dict((k, int(v)) for k, v in (x.split("=") for x in peers.split(",") if x))
    deadline = time.time() + timeout_s
    t_start = None
    while t_start is None:  # the group join happens here, outside the window
        with open(log, errors="replace") as f:
            for line in f:
                m = LOG_TIME.match(line)
                if m:
                    t_start = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) + int(m.group(2)) / 1000
                    c0, p0 = proc_cpu(pid), {k: proc_cpu(v) for k, v in peers.items()}
                    break
        if t_start is None:
            if proc_cpu(pid) is None:
                sys.exit("helper: mmpipe exited before it was assigned partitions (see %s)" % log)
            if time.time() > deadline:
                sys.exit("helper: mmpipe was not assigned partitions in time")
            time.sleep(0.005)
    polls = 0
    while True:
        done = sum(c.committed(tp) or 0 for tp in parts)
        now = time.time()
        polls += 1
        if done >= n:
            break
        if proc_cpu(pid) is None:
            sys.exit("helper: mmpipe exited with %d of %d committed (see %s)" % (done, n, log))
        if now > deadline:
            sys.exit("helper: timed out with %d of %d committed" % (done, n))
        time.sleep(0.02)
    c1, p1 = proc_cpu(pid), {k: proc_cpu(v) for k, v in peers.items()}
    c.close()
    print(json.dumps({"n": n, "secs": now - t_start, "files_per_s": n / (now - t_start), "cpu": c1 - c0,
                      "peers_cpu": {k: p1[k] - p0[k] for k in peers}, "polls": polls}))

def count(uri, db, coll):
    import pymongo
    c = pymongo.MongoClient(uri)[db][coll]
    docs = list(c.find({}, {"key": 1, "embedding": 1, "extraction": 1}))
    ok = sum(1 for d in docs if isinstance(d.get("embedding"), list) and len(d["embedding"]) == 8 and d.get("extraction", {}).get("sha256"))
    print("%d %d %d" % (len(docs), len({d.get("key") for d in docs}), ok))

def report(n, seed_n, made, eng, seed, eng_docs, seed_docs, sm_stats):
    made, eng, seed = json.loads(made), json.loads(eng), json.loads(seed)
    ratio = eng["files_per_s"] / seed["files_per_s"]
    print()
    print("End to end: %d mixed files (%s; %.0f KB), Kafka (mock, %s partitions) -> S3 stand-in -> 3 endpoint calls"
          % (n, ", ".join("%d %s" % (v, k) for k, v in sorted(made["kinds"].items())), made["bytes"] / 1024, os.environ["PARTS"]))
    print("(extract, generate, embed; 50 ms latency, 64 slots each) -> one document per file in MongoDB (CongoDB stand-in)")
    print("Window: first event -> last commit (group join excluded for both).")
    print()
    print("  %-38s %6s %9s %10s %8s %11s" % ("", "files", "seconds", "files/s", "vs seed", "client CPU"))
    print("  %-38s %6d %9.2f %10.1f %7.1fx %10.2fs" % ("mmpipe run (Kafka source, mmpipe.invoke)", eng["n"], eng["secs"], eng["files_per_s"], ratio, eng["cpu"]))
    print("  %-38s %6d %9.2f %10.1f %7.1fx %10.2fs" % ("seed: kafka-python/boto3/pymongo loop", seed["n"], seed["secs"], seed["files_per_s"], 1.0, seed["cpu"]))
    if seed_n < n:
        print("  (the seed ran on the first %d of the %d files, on its own topic: all %d would take it ~%.0f s)"
              % (seed_n, n, n, n / seed["files_per_s"]))
    print()
    print("  CPU seconds over each window       %10s %10s" % ("mmpipe", "seed"))
    print("  %-34s %10.2f %10.2f" % ("client (engine / python loop)", eng["cpu"], seed["cpu"]))
    for k in ("s3", "sagemaker", "mongodb", "kafka"):
        e, s = eng["peers_cpu"].get(k), seed["peers_cpu"].get(k)
        print("  %-34s %10.2f %10.2f   (%.0f%% of one core during mmpipe's run)" % (
            {"s3": "S3 stand-in (moto_server)", "sagemaker": "SageMaker test server", "mongodb": "MongoDB stand-in (CongoDB)",
             "kafka": "Kafka mock"}[k], e, s, 100 * e / eng["secs"]))
    print()
    print("  documents: e2e_engine %s (distinct keys %s, complete %s), e2e_seed %s (distinct keys %s, complete %s); seed errors %d"
          % tuple(eng_docs.split() + seed_docs.split() + [seed["errors"]]))
    print("  endpoint calls seen by the server (both contenders): %s" % sm_stats)
    print("  target (>= 20x the seed's files/s): %s (%.1fx)" % ("met" if ratio >= 20 else "NOT met", ratio))

if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7], sys.argv[8], int(sys.argv[9]))
    elif cmd == "watch":
        watch(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), sys.argv[7], sys.argv[8])
    elif cmd == "count":
        count(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "report":
        report(int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:])
PY

echo "starting the peers (Kafka mock, S3 stand-in, SageMaker test server, MongoDB stand-in) ..."
mkdir -p "$work/kafka" "$work/s3" "$work/sm" "$work/mongo"
bash "$TOOLS/kafka_cluster.sh" start "$work/kafka" --topic "e2e-engine:$PARTITIONS" --topic "e2e-seed:$PARTITIONS" >/dev/null
BOOTSTRAP=$(cat "$work/kafka/bootstrap")
bash "$TOOLS/s3_server.sh" start "$work/s3" >"$work/s3/info"
S3_URL=$(sed -n 's/^endpoint=//p' "$work/s3/info")
bash "$TOOLS/sagemaker_server.sh" start "$work/sm" --latency-ms 50 --slots 64 >"$work/sm/info"
SM_URL=$(sed -n 's/^url=//p' "$work/sm/info")
MONGO_FAST_PATHS=on bash "$TOOLS/mongo_server.sh" start "$work/mongo" >"$work/mongo/info"
MONGO_URI=$(sed -n 's/^uri=//p' "$work/mongo/info")
PEERS="s3=$(cat "$work/s3/s3_server.pid"),sagemaker=$(cat "$work/sm/sagemaker_server.pid"),mongodb=$(sed -n 's/^pid=//p' "$work/mongo/info"),kafka=$(cat "$work/kafka/kafka.pid")"

echo "making $N files, uploading them, producing $N notifications (and $SEED_N for the seed's topic) ..."
made=$($PY "$work/helper.py" make "$N" "$work/files" "$S3_URL" "$BUCKET" "$TOOLS" "$work/engine.jsonl" "$work/seed.jsonl" "$SEED_N")
bash "$TOOLS/kafka_produce.sh" "$work/kafka" e2e-engine "$work/engine.jsonl" >/dev/null
bash "$TOOLS/kafka_produce.sh" "$work/kafka" e2e-seed "$work/seed.jsonl" >/dev/null

cat >"$work/engine.json" <<JSON
{
  "engine": { "max_in_flight": 1024 $WORKERS_JSON },
  "source": { "type": "kafka" },
  "kafka": { "brokers": "$BOOTSTRAP", "topics": ["e2e-engine"], "group": "e2e-engine", "drain_timeout_ms": 10000,
             "consumer_properties": { "session.timeout.ms": "3000", "heartbeat.interval.ms": "500",
                                     "auto.commit.interval.ms": "$COMMIT_MS" } },
  "s3": { "endpoint": "$S3_URL", "region": "us-east-1" },
  "sagemaker": { "endpoint_url": "$SM_URL", "region": "us-east-1",
                 "endpoints": { "extract": { "max_in_flight": 64 }, "generate": { "max_in_flight": 64 },
                                "embed": { "max_in_flight": 64 } } },
  "default_connection": "mongo",
  "connections": { "mongo": { "type": "mongodb", "uri": "$MONGO_URI", "database": "e2e" } },
  "dead_letters": { "path": "$work/dead-letters.jsonl" },
  "log": { "level": "info" }
}
JSON

echo "mmpipe: $N files (engine.workers=${WORKERS:-default}, auto.commit.interval.ms=$COMMIT_MS; joins a group first, not timed) ..."
"$BUILD/mmpipe" run --config "$work/engine.json" --pipelines bench/pipelines/end_to_end >/dev/null 2>"$work/engine.log" &
ENGINE_PID=$!
eng=$($PY "$work/helper.py" watch "$BOOTSTRAP" e2e-engine e2e-engine "$N" "$ENGINE_PID" "$work/engine.log" "$PEERS") ||
  { echo "--- engine log (tail) ---" >&2; tail -20 "$work/engine.log" >&2; exit 1; }
kill -TERM "$ENGINE_PID"
wait "$ENGINE_PID" || true
ENGINE_PID=
grep '^summary' "$work/engine.log" | sed 's/^/  engine /' || true
[ ! -s "$work/dead-letters.jsonl" ] || echo "  engine dead letters: $(wc -l <"$work/dead-letters.jsonl")"

echo "seed: $SEED_N files (joins a group first, not timed) ..."
$PY bench/end_to_end_seed.py "$BOOTSTRAP" e2e-seed e2e-seed "$SEED_N" "$S3_URL" "$SM_URL" "$MONGO_URI" e2e e2e_seed \
  --watch "$PEERS" >"$work/seed.out" 2>"$work/seed.err" &
SEED_PID=$!
wait "$SEED_PID" || { echo "the seed failed:" >&2; tail -20 "$work/seed.err" >&2; exit 1; }
SEED_PID=
head -3 "$work/seed.err" | sed 's/^/  seed: /'
seed=$(tail -1 "$work/seed.out")

eng_docs=$($PY "$work/helper.py" count "$MONGO_URI" e2e e2e_engine)
seed_docs=$($PY "$work/helper.py" count "$MONGO_URI" e2e e2e_seed)
sm_stats=$(for ep in extract generate embed; do
  curl -sf "$SM_URL/stats?endpoint=$ep" | $PY -c "import json,sys; s=json.load(sys.stdin); print('$ep %s calls, max %s at once;' % (s.get('calls', s.get('requests', '?')), s.get('max_concurrency')))"
done | tr '\n' ' ')
PARTS=$PARTITIONS $PY "$work/helper.py" report "$N" "$SEED_N" "$made" "$eng" "$seed" "$eng_docs" "$seed_docs" "$sm_stats"
