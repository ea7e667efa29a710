#!/usr/bin/env bash
# A group join held up by a member that stopped without leaving: the engine
# says in its log that it is still joining (naming the group and what
# usually holds a join) instead of sitting silent, repeats it while the wait
# lasts, and a SIGTERM during the wait ends it cleanly with nothing stored
# and nothing committed, so the events stay for the group's next member.
# The same is said of a rejoin, after a rebalance revoked the engine's
# partitions, that takes as long.
TEST_NAME=test_kafka_join_wait
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/kafka_lib.sh"

N=40
GROUP=held
start_peers 4
make_objects $N "$T/objects"
upload "$T/objects"
notifications "$T/events.jsonl"

# The other member: kcat in the group while the topic is still empty (so it
# consumes nothing), then stopped without leaving. The coordinator keeps it in
# the group, waiting for it in the rebalance the engine's join starts, until
# its 60 s session runs out: longer than the two warnings take. (The mock
# coordinator of librdkafka 2.0.2 was seen to stay stuck even after such a
# member left or its session ran out, so this test does not wait for the
# assignment; test_kafka_group shows members joining a live group.)
kcat -b "$BOOTSTRAP" -G "$GROUP" -X session.timeout.ms=60000 -X heartbeat.interval.ms=1000 "$TOPIC" \
        >"$T/kcat.out" 2>"$T/kcat.err" &
kcat_pid=$!
BG_PIDS="$BG_PIDS $kcat_pid"
wait_until 30 "kcat assigned in group $GROUP" grep -q "assigned" "$T/kcat.err"
kill -STOP "$kcat_pid"
produce "$T/events.jsonl"

write_config "$T/c.json" "$GROUP"
start_engine run "$T/c.json"
wait_until 40 "the engine's still-joining warning" grep -q "still joining" "$T/run.err"
line=$(grep -m1 "still joining" "$T/run.err")
assert_contains "$line" "WARN" "the warning's level"
assert_contains "$line" "group $GROUP: still joining 15 s after subscribing" "the warning names the group and the wait"
assert_contains "$line" "session.timeout.ms" "the warning says what usually holds a join"
wait_until 40 "the warning repeated" grep -q "still joining 45 s" "$T/run.err"

stop_engine "$ENGINE_PID"
LAST_ERR=$T/run.err
assert_rc 0 "the engine's exit status after SIGTERM while joining"
assert_eq 0 "$(rows)" "documents stored without an assignment"
assert_eq $N "$(lag "$GROUP")" "messages not committed (all of them, left for the next member)"

say "a rejoin after a revoke that takes over 15 s is reported too"
# The engine alone in group rejoin, then kcat joins: the rebalance revokes the
# engine's partitions, and the mock coordinator waits for its members about
# as long as the group's session (60 s here, less a second) before it assigns
# again: the rejoin takes longer than 15 s. (With the 3 s sessions of the
# other tests a join completes within about 2 s.)
write_config "$T/c2.json" rejoin
sed -i 's/"session.timeout.ms": "3000"/"session.timeout.ms": "60000"/' "$T/c2.json"
start_engine rejoin "$T/c2.json"
wait_until 40 "the engine assigned in group rejoin" grep -q "assigned" "$T/rejoin.err"
kcat -b "$BOOTSTRAP" -G rejoin -X session.timeout.ms=60000 "$TOPIC" >"$T/kcat2.out" 2>"$T/kcat2.err" &
BG_PIDS="$BG_PIDS $!"
wait_until 40 "the engine's still-joining warning after the revoke" grep -q "still joining" "$T/rejoin.err"
assert_contains "$(grep "revoked" "$T/rejoin.err")" "revoked" "the engine's partitions revoked"
line=$(grep -m1 "still joining" "$T/rejoin.err")
assert_contains "$line" "group rejoin: still joining 15 s after its partitions were revoked" \
        "the warning names the group and the revoke"
stop_engine "$ENGINE_PID"
LAST_ERR=$T/rejoin.err
assert_rc 0 "the engine's exit status after SIGTERM while rejoining"

finish
