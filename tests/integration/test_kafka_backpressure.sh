#!/usr/bin/env bash
# Backpressure (issue 3, must-show 5): with a handler slower than the
# arrival rate, the source pauses its partitions instead of reading ahead,
# no rebalance happens (max.poll.interval.ms is set below the run's length),
# resident memory stays under a bound, and the backlog drains.
TEST_NAME=test_kafka_backpressure
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/kafka_lib.sh"

N=400
RSS_BOUND_MB=150
# AddressSanitizer's shadow memory and quarantine multiply resident memory.
case "$MMP_BUILD_DIR" in *asan*) RSS_BOUND_MB=600 ;; esac
start_peers 4
make_objects $N "$T/objects"
upload "$T/objects"
notifications "$T/events.jsonl"
produce "$T/events.jsonl"
write_config "$T/c.json" slowpoke '"max_in_flight_events": 20, "max_in_flight_mb": 1'
# max.poll.interval.ms far below the ~12 s the backlog takes: a source that
# stopped polling while it waited would be thrown out of the group.
sed -i 's/"heartbeat.interval.ms": "500"/"heartbeat.interval.ms": "500", "max.poll.interval.ms": "6000"/' "$T/c.json"
sed -i "s|\"connections\"|\"engine\": { \"workers\": 2 }, \"connections\"|" "$T/c.json"

start_engine run "$T/c.json" --plugins "$MMP_TEST_PLUGIN_DIR" --pipelines "$MMP_SOURCE_DIR/tests/integration/pipelines/slow_kafka"

slow_rows() { sqlite3 "$T/docs.db" "select count(*) from slow_events" 2>/dev/null || echo 0; }
max_rss=0
drained() {
        local rss
        rss=$(awk '/VmRSS/ {print $2}' "/proc/$ENGINE_PID/status" 2>/dev/null || echo 0)
        [ "${rss:-0}" -gt "$max_rss" ] && max_rss=$rss
        [ "$(slow_rows)" -ge $N ]
}
wait_until 120 "the backlog of $N slow events to drain" drained
wait_until 60 "every offset committed" lag_zero slowpoke
stop_engine "$ENGINE_PID"

assert_eq $N "$(slow_rows)" "documents of the slow pipeline"
paused=$(grep -c " paused," "$T/run.err" || true)
[ "$paused" -gt 0 ] || fail "no progress line showed the partitions paused"
ok "$paused progress lines showed the partitions paused"
assert_eq 1 "$(grep -c 'assigned' "$T/run.err")" "partition assignments (one: no rebalance while paused)"
assert_contains "$(grep '^progress' "$T/run.err" | tail -1)" ", 2 rebalances" "rebalance callbacks (the first assignment and the final revoke only)"
[ $((max_rss / 1024)) -lt $RSS_BOUND_MB ] || fail "resident memory reached $((max_rss / 1024)) MB (bound $RSS_BOUND_MB MB)"
ok "resident memory peaked at $((max_rss / 1024)) MB (bound $RSS_BOUND_MB MB)"

finish
