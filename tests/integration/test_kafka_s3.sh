#!/usr/bin/env bash
# Kafka in, S3 fetch, SQLite out (issue 3, must-show 1 and 4): 1,000 S3
# event notifications for 1,000 uploaded objects are all processed and their
# offsets committed; a second group over the same topic gives identical
# documents; malformed messages, missing and corrupt objects go to the
# dead-letter topic with their reasons while the rest flows, and `mmpipe
# replay` after the cause is fixed stores their documents.
TEST_NAME=test_kafka_s3
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/kafka_lib.sh"

N=1000
start_peers 8

say "1,000 objects, 1,000 notifications (several records per message, keys URL-encoded)"
make_objects $N "$T/objects"
upload "$T/objects"
notifications "$T/events.jsonl" --per-message 4
produce "$T/events.jsonl"
expected_ids >"$T/expected.txt"
assert_eq $N "$(wc -l <"$T/expected.txt")" "expected documents"

write_config "$T/c1.json" group-one
start_engine run1 "$T/c1.json"
wait_until 180 "$N documents in SQLite" all_stored $N
wait_until 60 "every offset committed" lag_zero group-one
stop_engine "$ENGINE_PID"
stored_ids >"$T/run1.txt"
assert_eq "$(cat "$T/expected.txt")" "$(cat "$T/run1.txt")" "the stored _ids (exactly the expected set)"
assert_contains "$(cat "$T/run1.err")" "summary: 250 messages, $N events, 0 failed" "run 1 summary"
key=$(sqlite3 "$T/docs.db" "select json_extract(doc,'\$._lineage.object.key') from text_chunks order by 1 limit 1")
assert_eq "batch 00/note-0000.txt" "$key" "a decoded key in the lineage"
src=$(sqlite3 "$T/docs.db" "select json_extract(doc,'\$._lineage.source.type') from text_chunks limit 1")
assert_eq kafka "$src" "lineage source type"
sqlite3 "$T/docs.db" "select _id, doc from text_chunks order by _id" >"$T/docs1.txt"

say "a second run over the same topic (a new group) gives identical documents"
# Automatic commits every 10 minutes: the offsets can only be committed while
# the engine runs by its own commit once everything taken is done.
write_config "$T/c2.json" group-two "" '"auto.commit.interval.ms": "600000"'
start_engine run2 "$T/c2.json"
wait_until 180 "every offset committed for group-two (while the engine runs, caught up)" lag_zero group-two
stop_engine "$ENGINE_PID"
sqlite3 "$T/docs.db" "select _id, doc from text_chunks order by _id" >"$T/docs2.txt"
assert_eq "$(md5sum <"$T/docs1.txt")" "$(md5sum <"$T/docs2.txt")" "documents after the second run (byte for byte)"

say "malformed messages, a missing object and a corrupt object go to the dead-letter topic"
printf 'x%.0s' {1..40} >/dev/null
$PY - "$ENDPOINT" "$BUCKET" <<'PY'
import boto3, sys
c = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test")
c.put_object(Bucket=sys.argv[2], Key="bad/corrupt.txt", Body=b"\x00\x01\x02binary\xff\xfe" * 50)
PY
cat >"$T/bad.jsonl" <<JSON
this is not json
{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "$BUCKET"}}}]}
{"bucket": "$BUCKET", "key": "bad/missing.txt"}
{"bucket": "$BUCKET", "key": "bad/corrupt.txt", "file_type": "text/plain"}
{"Event": "s3:TestEvent"}
JSON
produce "$T/bad.jsonl"
# A good object behind them: the partition keeps moving.
printf 'Behind the bad ones, a good note.\n' >"$T/late.txt"
$PY - "$ENDPOINT" "$BUCKET" "$T/late.txt" <<'PY'
import boto3, sys
c = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test")
c.put_object(Bucket=sys.argv[2], Key="late.txt", Body=open(sys.argv[3], "rb").read())
PY
echo "{\"bucket\": \"$BUCKET\", \"key\": \"late.txt\"}" >"$T/late.jsonl"
produce "$T/late.jsonl"
start_engine run3 "$T/c1.json"
wait_until 120 "the good message behind the bad ones" all_stored $((N + 1))
wait_until 60 "every offset committed" lag_zero group-one
stop_engine "$ENGINE_PID"
kcat -C -b "$BOOTSTRAP" -t "$DLQ" -e -q -f '%h\n' >"$T/dlq.txt" 2>/dev/null
assert_eq 4 "$(wc -l <"$T/dlq.txt")" "dead letters"
assert_contains "$(cat "$T/dlq.txt")" "mmpipe.stage=receive,mmpipe.error_class=BAD_INPUT,mmpipe.message=not JSON" "the not-JSON message's reason"
assert_contains "$(cat "$T/dlq.txt")" "Records[0].s3.object" "the record without a key's reason"
assert_contains "$(cat "$T/dlq.txt")" "mmpipe.stage=fetch,mmpipe.error_class=NOT_FOUND" "the missing object's class"
assert_contains "$(cat "$T/dlq.txt")" "404 NoSuchKey" "the missing object's S3 error code"
assert_contains "$(cat "$T/dlq.txt")" "mmpipe.error_class=BAD_INPUT,mmpipe.message=" "the corrupt object's class"
assert_contains "$(cat "$T/dlq.txt")" "binary content" "the corrupt object's reason"
assert_contains "$(cat "$T/dlq.txt")" "mmpipe.source.topic=$TOPIC" "the source topic header"

say "the causes fixed, mmpipe replay stores their documents"
$PY - "$ENDPOINT" "$BUCKET" <<'PY'
import boto3, sys
c = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test")
c.put_object(Bucket=sys.argv[2], Key="bad/missing.txt", Body=b"It exists now.\n")
c.put_object(Bucket=sys.argv[2], Key="bad/corrupt.txt", Body=b"Repaired text.\n")
PY
run_mmp dry.txt dry.err replay --config "$T/c1.json" --error-class NOT_FOUND --dry-run
assert_rc 0 "replay --dry-run"
assert_contains "$(cat dry.txt)" "1 dead letters would be replayed" "dry run"
run_mmp rep.txt rep.err replay --config "$T/c1.json" --error-class NOT_FOUND
assert_rc 0 "replay NOT_FOUND"
assert_contains "$(cat rep.txt)" "1 dead letters replayed" "replay of the missing object"
run_mmp rep2.txt rep2.err replay --config "$T/c1.json" --error-class BAD_INPUT
assert_contains "$(cat rep2.txt)" "3 dead letters replayed" "replay of the bad input (2 malformed, 1 corrupt)"
start_engine run4 "$T/c1.json"
wait_until 120 "the replayed objects' documents" all_stored $((N + 3))
wait_until 60 "every offset committed" lag_zero group-one
stop_engine "$ENGINE_PID"
n_fixed=$(sqlite3 "$T/docs.db" "select count(*) from text_chunks where json_extract(doc,'\$._lineage.object.key') like 'bad/%'")
assert_eq 2 "$n_fixed" "documents of the two repaired objects"
# The two malformed messages failed again: a later replay with the same
# filter takes only those, not the ones it replayed before.
run_mmp rep3.txt rep3.err replay --config "$T/c1.json" --error-class BAD_INPUT
assert_contains "$(cat rep3.txt)" "2 dead letters replayed" "a later replay takes only the new dead letters"
run_mmp rep4.txt rep4.err replay --config "$T/c1.json" --error-class BAD_INPUT
assert_contains "$(cat rep4.txt)" "0 dead letters replayed" "nothing new: nothing replayed"

say "ObjectRemoved notifications delete every document derived from the objects"
notifications "$T/removed.jsonl" --removed --per-message 5
produce "$T/removed.jsonl"
no_rows() { [ "$(rows)" = 0 ]; }
start_engine run5 "$T/c1.json"
wait_until 120 "every document deleted" no_rows
wait_until 60 "every offset committed" lag_zero group-one
stop_engine "$ENGINE_PID"
assert_eq 0 "$(rows)" "documents left after the removals"

finish
