#!/usr/bin/env bash
# Offset commits the group coordinator refuses: the engine warns, naming the
# broker's error (librdkafka leaves that to the engine's commit callback),
# keeps going, and the next commit carries the offsets, so every message ends
# up committed and nothing is lost. Its debug log counts what each
# acknowledged commit moved, and its progress line how many messages are
# committed in all; both agree with the group's committed offsets read from
# outside. A commit acknowledged only after its partitions' ledgers are
# gone (the one made when the engine leaves the group) is counted too, and
# refused commits are warned about once each.
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
assert_contains "$warning" "a later commit carries them, or the group consumes them again: nothing is lost" "the warning says what becomes of the offsets"

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

say "a commit acknowledged after the partitions are gone is counted too"
# Group closing reads the topic from the start, with a 60 s auto-commit
# interval: only the source's own commits (once everything taken is done)
# run while it works. M more messages come; their commit is refused; the
# final commit at SIGTERM is refused too, so what is done is committed when
# the partitions are revoked on leaving the group, and the coordinator's
# reply comes after their ledgers are freed. The count still reaches N + M.
M=5
write_config "$T/c2.json" closing "" '"auto.commit.interval.ms": "60000"'
start_engine closing "$T/c2.json" -v
wait_until 60 "group closing's first $N committed" grep -q "offsets committed: .* $N since the start" "$T/closing.err"
bash "$TOOLS/kafka_cluster.sh" ctl "$T/kafka" request-errors 8 12 >/dev/null ||
        fail "the mock cluster did not take the OffsetCommit error"
head -$M "$T/events.jsonl" >"$T/more.jsonl"
produce "$T/more.jsonl"
wait_until 60 "the commit of the $M more refused" grep -q "committing offsets" "$T/closing.err"
bash "$TOOLS/kafka_cluster.sh" ctl "$T/kafka" request-errors 8 12 >/dev/null ||
        fail "the mock cluster did not take the OffsetCommit error"
stop_engine "$ENGINE_PID"
LAST_ERR=$T/closing.err
assert_rc 0 "the engine's exit status after SIGTERM"
assert_contains "$(grep '^progress:' "$T/closing.err" | tail -1)" "$((N + M)) messages, $((N + M)) committed" \
        "the progress line counts the commit made on leaving the group"
assert_eq 0 "$(lag closing)" "messages group closing did not commit, read from the group coordinator"
# Two commits were refused in this run, each warned about once (the final one
# used to be reported by its caller and by the callback).
warned=$(grep -c "committing offsets" "$T/closing.err")
[ "$warned" -ge 1 ] && [ "$warned" -le 2 ] || fail "$warned warnings for two refused commits"
ok "$warned warning(s) for the refused commits, none twice"

finish
