#!/usr/bin/env bash
# Scale-out (issue 3, must-show 3): two and then three engine processes in
# one consumer group share the partitions; one of them is killed mid-run;
# nothing is lost.
TEST_NAME=test_kafka_group
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/kafka_lib.sh"

N=900
start_peers 9
make_objects $N "$T/objects"
upload "$T/objects"
notifications "$T/events.jsonl"
expected_ids >"$T/expected.txt"
# Small in-flight windows so the work is spread over time and members.
write_config "$T/c.json" shared '"max_in_flight_events": 16'

say "two members, then a third joins; the first is killed mid-run"
start_engine a "$T/c.json"
pid_a=$ENGINE_PID
start_engine b "$T/c.json"
pid_b=$ENGINE_PID
wait_until 30 "both members assigned" grep -q "assigned" "$T/a.err"
wait_until 30 "both members assigned" grep -q "assigned" "$T/b.err"
produce "$T/events.jsonl"
wait_until 120 "a first third stored" all_stored $((N / 3))
start_engine c "$T/c.json"
pid_c=$ENGINE_PID
wait_until 60 "the third member assigned" grep -q "assigned" "$T/c.err"
wait_until 120 "two thirds stored" all_stored $((2 * N / 3))
kill9 "$pid_a"
ok "member a killed with $(rows) of $N documents stored"
wait_until 180 "all $N documents" all_stored $N
wait_until 90 "every offset committed" lag_zero shared
stop_engine "$pid_b"
stop_engine "$pid_c"

stored_ids >"$T/stored.txt"
assert_eq "$(cat "$T/expected.txt")" "$(cat "$T/stored.txt")" "the stored _ids (exactly the expected set)"
for m in b c; do
        done_m=$(sed -n 's/^summary: [0-9]* messages, \([0-9]*\) events.*/\1/p' "$T/$m.err")
        [ "${done_m:-0}" -gt 0 ] || fail "member $m processed no events (partitions were not shared)"
        ok "member $m processed $done_m events"
done

finish
