#!/usr/bin/env bash
# Offset commits the group coordinator refuses: the engine warns, naming the
# broker's error (librdkafka leaves that to the engine's commit callback),
# keeps going, and the next commit carries the offsets, so every message ends
# up committed and nothing is lost. Its debug log counts what each
# acknowledged commit moved, and its progress line how many messages are
# committed in all; both agree with the group's committed offsets read from
# outside.
TEST_NAME=test_kafka_commit
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/kafka_lib.sh"

N=30
GROUP=commits
start_peers 3
make_objects $N "$T/objects"
upload "$T/objects"
notifications "$T/events.jsonl"
produce "$T/events.jsonl"

# The next two OffsetCommit requests (API key 8) fail with
# OFFSET_METADATA_TOO_LARGE (12), which librdkafka does not retry itself.
bash "$TOOLS/kafka_cluster.sh" ctl "$T/kafka" request-errors 8 12 12 >/dev/null ||
        fail "the mock cluster did not take the OffsetCommit errors"

write_config "$T/c.json" "$GROUP" "" '"auto.commit.interval.ms": "300"'
start_engine run "$T/c.json" -v
wait_until 60 "all $N objects stored" all_stored $N
wait_until 60 "every offset committed" lag_zero "$GROUP"

warning=$(grep -m1 "committing offsets" "$T/run.err" || true)
assert_contains "$warning" "WARN" "a refused commit is a warning"
assert_contains "$warning" "Broker: Offset metadata string too large" "the warning names the broker's error"
assert_contains "$warning" "not committed; the next commit carries them" "the warning says what becomes of the offsets"

# Each acknowledged commit's debug line; the last one counts all N.
last=$(grep "offsets committed:" "$T/run.err" | tail -1)
assert_contains "$last" "$N since the start" "the debug lines count every message committed"
stop_engine "$ENGINE_PID"
LAST_ERR=$T/run.err
assert_rc 0 "the engine's exit status after SIGTERM"
assert_contains "$(grep '^progress:' "$T/run.err" | tail -1)" "$N messages, $N committed" \
        "the progress line counts the committed messages"
assert_eq 0 "$(lag "$GROUP")" "messages not committed, read from the group coordinator"
expected_ids >"$T/expected.txt"
stored_ids >"$T/stored.txt"
cmp -s "$T/expected.txt" "$T/stored.txt" ||
        fail "the stored _ids are not the expected ones: $(diff "$T/expected.txt" "$T/stored.txt" | head -5)"
ok "every object's documents stored, none twice ($(wc -l <"$T/stored.txt") _ids)"

finish
