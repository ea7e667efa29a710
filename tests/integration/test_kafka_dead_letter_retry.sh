#!/usr/bin/env bash
# Dead letters are sent without holding up the engine, and one that cannot
# be written is not lost and does not stop its partition for good:
# 1. the dead-letter topic refuses a letter for a while: the offset stays
#    below its message while the source sends it again (1 s, doubling), and
#    once the topic takes it the partition moves on, every offset committed,
#    without a restart;
# 2. 200 failing handlers with the dead-letter producer lingering 2 s before
#    each send: the lane does not wait for the broker (it would take 400 s
#    one letter at a time), all 200 are written and committed.
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
start_engine run "$T/c.json" --plugins "$MMP_TEST_PLUGIN_DIR" --pipelines "$MMP_SOURCE_DIR/tests/integration/pipelines/stuck_head"

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

say "200 failing handlers on one lane, the dead-letter producer lingering 2 s"
for i in $(seq 1 200); do
        echo "{\"bucket\": \"$BUCKET\", \"key\": \"bad/b-$i.boom\", \"file_type\": \"text/plain\"}"
done >"$T/boom.jsonl"
produce "$T/boom.jsonl"
write_config "$T/c2.json" dlstorm
sed -i 's|"consumer_properties"|"producer_properties": { "linger.ms": "2000" }, "consumer_properties"|' "$T/c2.json"
sed -i "s|\"connections\"|\"engine\": { \"lanes\": 1 }, \"connections\"|" "$T/c2.json"
start_engine run2 "$T/c2.json" --plugins "$MMP_TEST_PLUGIN_DIR" --pipelines "$MMP_SOURCE_DIR/tests/integration/pipelines/stuck_head"
wait_until 60 "every offset committed, the 200 failed messages' too" lag_zero dlstorm
stop_engine "$ENGINE_PID"
kcat -C -b "$BOOTSTRAP" -t "$DLQ" -e -q -f '%h\n' >"$T/dlq2.txt" 2>/dev/null
assert_eq 200 "$(grep -c 'mmpipe.error_class=LUA' "$T/dlq2.txt")" "dead letters of the failing handlers"
assert_contains "$(grep '^progress' "$T/run2.err" | tail -1)" "200 failed, 1 malformed, 201 dead letters" "the engine's counts (the new group took the first messages too)"

finish
