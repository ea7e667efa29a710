#!/usr/bin/env bash
# A rebalance while the source is paused by backpressure: a second member
# joins while the first has its partitions paused; every partition must flow
# again afterwards and every event be stored. (Written after a stall seen
# once in a loaded CI-style run; this scenario did not reproduce it, so it
# guards the pause/rebalance interplay in general, not that stall.)
TEST_NAME=test_kafka_pause_rebalance
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/kafka_lib.sh"

N=240
start_peers 6
make_objects $N "$T/objects"
upload "$T/objects"
notifications "$T/events.jsonl"
produce "$T/events.jsonl"
write_config "$T/c.json" pausers '"max_in_flight_events": 8, "pause_after_ms": 0'
# pause_after_ms 0: pause as soon as the limit is reached (not after lasting
# pressure), so member a is paused again and again while b joins; the debug
# log says each time.
sed -i "s|\"connections\"|\"engine\": { \"workers\": 2 }, \"log\": { \"level\": \"debug\" }, \"connections\"|" "$T/c.json"
PIPES="$MMP_SOURCE_DIR/tests/integration/pipelines/slow_kafka"

start_member() { # NAME
        "$MMP" run --config "$T/c.json" --plugins "$MMP_TEST_PLUGIN_DIR" --pipelines "$PIPES" \
                >"$T/$1.out" 2>"$T/$1.err" &
        BG_PIDS="$BG_PIDS $!"
        eval "PID_$1=$!"
}
slow_rows() { sqlite3 "$T/docs.db" "select count(*) from slow_events" 2>/dev/null || echo 0; }
all_slow() { [ "$(slow_rows)" -ge $N ]; }

start_member a
wait_until 60 "member a paused by backpressure" grep -q "\[kafka\] pausing:" "$T/a.err"
ok "member a is paused"
start_member b
wait_until 60 "member b assigned" grep -q "assigned" "$T/b.err"
wait_until 120 "all $N events stored after the rebalance" all_slow
wait_until 60 "every offset committed" lag_zero pausers
stop_engine "$PID_a"
stop_engine "$PID_b"
assert_eq $N "$(slow_rows)" "documents"
[ "$(grep -c assigned "$T/a.err")" -ge 2 ] || fail "member a was not re-assigned (no rebalance happened)"
ok "member a was re-assigned during the run"

finish
