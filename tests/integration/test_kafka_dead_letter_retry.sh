#!/usr/bin/env bash
# A dead letter that cannot be written (the dead-letter topic refuses it for
# a while) is not lost and does not stop its partition for good: the offset
# stays below the message while the source writes the dead letter again
# (1 s, doubling), and once the topic takes it the partition moves on and
# every offset is committed without a restart.
TEST_NAME=test_kafka_dead_letter_retry
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/kafka_lib.sh"

start_peers 1 # one partition: the good messages are behind the bad one
{
        echo "this is not json"
        for i in $(seq 1 20); do
                echo "{\"bucket\": \"$BUCKET\", \"key\": \"good/k-$i.txt\", \"file_type\": \"text/plain\"}"
        done
} >"$T/events.jsonl"
produce "$T/events.jsonl"
# The next three Produce requests (ApiKey 0) fail with
# TOPIC_AUTHORIZATION_FAILED (29): the dead letter's first write and two retries.
bash "$TOOLS/kafka_cluster.sh" ctl "$T/kafka" request-errors 0 29 29 29 >/dev/null ||
        fail "the mock did not take the injected Produce errors"
write_config "$T/c.json" dlretry
"$MMP" run --config "$T/c.json" --plugins "$MMP_TEST_PLUGIN_DIR" \
        --pipelines "$MMP_SOURCE_DIR/tests/integration/pipelines/stuck_head" >"$T/run.out" 2>"$T/run.err" &
ENGINE_PID=$!
BG_PIDS="$BG_PIDS $ENGINE_PID"

stored() { [ "$(sqlite3 "$T/docs.db" "select count(*) from stuck_events" 2>/dev/null || echo 0)" -ge 20 ]; }
wait_until 60 "the 20 good events behind the bad message" stored
refused() { grep -q "dead letter for $TOPIC \[0\] @0 could not be written" "$T/run.err"; }
wait_until 30 "the dead letter's write to be refused" refused
wait_until 60 "the dead letter written again" grep -q "@0: dead letter written at retry" "$T/run.err"
wait_until 60 "every offset committed, the bad message's too" lag_zero dlretry
stop_engine "$ENGINE_PID"

kcat -C -b "$BOOTSTRAP" -t "$DLQ" -e -q -f '%h %s\n' >"$T/dlq.txt" 2>/dev/null
assert_eq 1 "$(wc -l <"$T/dlq.txt")" "dead letters (one: written once, not once per try)"
assert_contains "$(cat "$T/dlq.txt")" "mmpipe.error_class=BAD_INPUT,mmpipe.message=not JSON" "the dead letter's reason"
assert_contains "$(cat "$T/dlq.txt")" "this is not json" "the original message"
assert_contains "$(grep '^progress' "$T/run.err" | tail -1)" "1 malformed, 1 dead letters" "the engine's counts"

finish
