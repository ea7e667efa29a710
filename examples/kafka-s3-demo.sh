#!/usr/bin/env bash
# The whole chain on this machine: S3 stand-in -> S3 event notifications in a
# Kafka topic (the Kafka mock cluster) -> mmpipe (default pipelines) -> SQLite.
# Starts the stand-ins, uploads examples/media, produces one notification per
# object, runs the engine until every offset is committed, shows the results
# and stops everything. Debian 12, root: installs what is missing.
#
#   examples/kafka-s3-demo.sh          (output in ./kafka-demo-output, or $DEMO_OUT)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${DEMO_OUT:-$ROOT/kafka-demo-output}

. tests/deps.sh
mmp_deps_ensure
echo "== building"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

rm -rf "$OUT"
mkdir -p "$OUT/kafka" "$OUT/s3"
stop() {
        [ -n "${ENGINE:-}" ] && kill -TERM "$ENGINE" 2>/dev/null && wait "$ENGINE" 2>/dev/null
        bash tests/tools/kafka_cluster.sh stop "$OUT/kafka" >/dev/null 2>&1 || true
        bash tests/tools/s3_server.sh stop "$OUT/s3" >/dev/null 2>&1 || true
}
trap stop EXIT

echo "== starting the stand-ins (Kafka mock cluster, S3)"
export KAFKA_MOCK=$ROOT/build/tests/tools/kafka_mock
bash tests/tools/kafka_cluster.sh start "$OUT/kafka" --topic uploads:4 --topic mmpipe-dead-letters:1 >/dev/null
bash tests/tools/s3_server.sh start "$OUT/s3" >"$OUT/s3/info"
export KAFKA_BROKERS=$(cat "$OUT/kafka/bootstrap")
export S3_ENDPOINT=$(sed -n 's/^endpoint=//p' "$OUT/s3/info")
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1
export AWS_ENDPOINT_URL_S3=$S3_ENDPOINT # the S3 stand-in, as the AWS SDKs take it
export MMPIPE_DB=$OUT/mmpipe.db
echo "   Kafka $KAFKA_BROKERS, S3 $S3_ENDPOINT"

echo "== uploading examples/media and producing one S3 event notification per object"
/usr/bin/python3 tests/tools/s3_fixture.py upload "$S3_ENDPOINT" media examples/media
/usr/bin/python3 tests/tools/s3_fixture.py notify "$S3_ENDPOINT" media >"$OUT/events.jsonl"
bash tests/tools/kafka_produce.sh "$OUT/kafka" uploads "$OUT/events.jsonl"

echo "== running mmpipe (examples/configs/kafka-s3.json) until every offset is committed"
build/mmpipe run --config examples/configs/kafka-s3.json 2>"$OUT/engine.log" &
ENGINE=$!
for _ in $(seq 300); do
        lag=$(/usr/bin/python3 tests/tools/s3_fixture.py committed "$KAFKA_BROKERS" mmpipe uploads 2>/dev/null | sed -n 's/.*lag=//p')
        [ "$lag" = 0 ] && break
        sleep 0.2
done
kill -TERM "$ENGINE"
wait "$ENGINE" || true
ENGINE=
grep -E '^(progress|summary)' "$OUT/engine.log" | tail -2
echo "== results"
sqlite3 "$MMPIPE_DB" "select json_extract(doc,'\$._lineage.object.key') as key, count(*) from text_chunks group by key"
echo "dead letters (the deliberately broken file):"
kcat -C -b "$KAFKA_BROKERS" -t mmpipe-dead-letters -e -q -f '  %k %h\n' 2>/dev/null | cut -c1-240
echo
echo "look further: sqlite3 $MMPIPE_DB \"select doc from text_chunks limit 1\""
echo "replay dead letters after a fix: build/mmpipe replay --config examples/configs/kafka-s3.json"
