#!/usr/bin/env bash
# The offset ledger's memory is bounded (issue 3: memory stays bounded): one
# slow event at the head of a partition keeps every later message of it in
# the ledger (done or not, their offsets cannot be stored past it). Those
# copies count against kafka.max_in_flight_mb until they are passed, so the
# source stops taking messages at the bound instead of holding a partition's
# whole backlog; once the slow event is done, the rest flows and every
# offset is committed.
TEST_NAME=test_kafka_ledger_bound
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/kafka_lib.sh"

N=8000
start_peers 1 # one partition: every message is behind the slow first one
# Simple-form notifications of ~470 bytes (a long key), so 1 MB holds ~2,200.
$PY - "$N" "$T/events.jsonl" <<'PY'
import json, sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    for i in range(n):
        key = "padding/%s/k-%05d.txt" % ("x" * 380, i)
        f.write(json.dumps({"bucket": "uploads-bucket", "key": key, "file_type": "text/plain"}) + "\n")
PY
produce "$T/events.jsonl"
# What the ledger holds per message: its payload (the line without its
# newline; the messages have no key).
msg_bytes=$(head -1 "$T/events.jsonl" | tr -d '\n' | wc -c)
# The bound on the events done behind the slow one: the source takes a batch
# (at most 512) only while the ledger holds less than 1 MB, so at most
# (1 MB - 1) / msg_bytes messages before the last batch, plus that batch,
# plus the one message a poll may return without room just after the
# assignment; less the slow one itself, which is not done.
bound=$(((1048576 - 1) / msg_bytes + 512 + 1 - 1))
write_config "$T/c.json" ledger '"max_in_flight_mb": 1'
sed -i "s|\"connections\"|\"engine\": { \"workers\": 2 }, \"connections\"|" "$T/c.json"

start_engine run "$T/c.json" --plugins "$MMP_TEST_PLUGIN_DIR" --pipelines "$MMP_SOURCE_DIR/tests/integration/pipelines/stuck_head"

# While the first event waits, the ones behind it are done and stored, up to
# the bound and no further. (Without the bound they are all done within a
# second or two of the 12 s wait.)
counts() { sqlite3 "$T/docs.db" "select count(*), count(*) filter (where key like '%-00000.txt') from stuck_events" 2>/dev/null | tr '|' ' '; }
most=0
slow_done() {
        local n slow
        read -r n slow <<<"$(counts)"
        [ -n "$n" ] || return 1
        if [ "$slow" = 0 ] && [ "$n" -gt "$most" ]; then
                most=$n
                [ "$n" -le "$bound" ] || fail "$n events done behind the slow one: the ledger held more than ~1 MB (bound $bound messages)"
        fi
        [ "$slow" = 1 ]
}
wait_until 60 "the slow first event to finish" slow_done
[ "$most" -ge 1000 ] || fail "only $most events were done behind the slow one (expected the ledger to fill to ~$bound)"
ok "$most events done behind the slow one, at most $bound held (1 MB)"

all_done() { [ "$(counts | cut -d' ' -f1)" -ge $N ]; }
wait_until 120 "all $N events stored once the slow one was done" all_done
wait_until 60 "every offset committed" lag_zero ledger
stop_engine "$ENGINE_PID"
assert_eq $N "$(counts | cut -d' ' -f1)" "documents"

finish
