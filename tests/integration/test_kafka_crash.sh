#!/usr/bin/env bash
# At-least-once under crashes (issue 3, must-show 2): the engine is killed
# with SIGKILL at three random moments mid-stream and restarted each time;
# afterwards every object's documents are present, none twice, no event
# skipped, and every offset is committed.
TEST_NAME=test_kafka_crash
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/kafka_lib.sh"

N=600
start_peers 6
make_objects $N "$T/objects"
upload "$T/objects"
notifications "$T/events.jsonl" --per-message 3
produce "$T/events.jsonl"
expected_ids >"$T/expected.txt"
write_config "$T/c.json" crashy '"max_in_flight_events": 64'

# Three kills, each once a random share of what is left has been stored.
for round in 1 2 3; do
        have=$(rows)
        target=$((have + 20 + RANDOM % ((N - have) / 3 + 1)))
        start_engine "run$round" "$T/c.json"
        wait_until 120 "$target documents before kill $round" all_stored $target
        kill -KILL "$ENGINE_PID"
        wait "$ENGINE_PID" 2>/dev/null
        ok "kill -9 number $round with $(rows) of $N documents stored"
done
assert_ne $N "$(rows)" "documents stored before the last restart (the kills came mid-stream)"

say "restarted: the rest is processed, nothing lost, nothing twice"
start_engine final "$T/c.json"
wait_until 180 "all $N documents" all_stored $N
wait_until 60 "every offset committed" lag_zero crashy
stop_engine "$ENGINE_PID"
stored_ids >"$T/stored.txt"
assert_eq "$(cat "$T/expected.txt")" "$(cat "$T/stored.txt")" "the stored _ids (exactly the expected set)"
dups=$(sqlite3 "$T/docs.db" "select count(*) from (select json_extract(doc,'\$._lineage.object.key') k, count(*) c from text_chunks group by k having c > 1)")
assert_eq 0 "$dups" "objects with more than one document"
assert_contains "$(cat "$T/final.err")" "assigned" "the restarted engine rejoined the group"

finish
