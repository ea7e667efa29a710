# Shared by the Kafka + S3 integration tests (sourced after lib.sh): starts
# the Kafka mock cluster and the S3 stand-in in $T, makes objects and their
# event notifications, writes the engine's config, and waits on progress by
# polling (SQLite rows, committed offsets), never by sleeping blindly.

TOOLS="$MMP_SOURCE_DIR/tests/tools"
PY=/usr/bin/python3 # Debian's python3 has boto3 and kafka-python (tests/deps.sh)
export KAFKA_MOCK="$MMP_BUILD_DIR/tests/tools/kafka_mock"
BUCKET=uploads-bucket
TOPIC=uploads
DLQ=mmpipe-dead-letters

stop_peers() {
        bash "$TOOLS/kafka_cluster.sh" stop "$T/kafka" >/dev/null 2>&1 || true
        bash "$TOOLS/s3_server.sh" stop "$T/s3" >/dev/null 2>&1 || true
}

# start_peers PARTITIONS: Kafka (topic $TOPIC with PARTITIONS, the DLQ topic) and S3.
start_peers() {
        mkdir -p "$T/kafka" "$T/s3"
        trap 'st=$?; stop_peers; (exit $st); cleanup' EXIT
        bash "$TOOLS/kafka_cluster.sh" start "$T/kafka" --topic "$TOPIC:$1" --topic "$DLQ:2" >/dev/null ||
                fail "the Kafka mock cluster did not start"
        BOOTSTRAP=$(cat "$T/kafka/bootstrap")
        bash "$TOOLS/s3_server.sh" start "$T/s3" >"$T/s3/info" || fail "the S3 stand-in did not start"
        ENDPOINT=$(sed -n 's/^endpoint=//p' "$T/s3/info")
        export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
        ok "Kafka at $BOOTSTRAP, S3 at $ENDPOINT"
}

# make_objects N DIR: N small text files (one chunk each) under DIR.
make_objects() {
        mkdir -p "$2"
        $PY - "$1" "$2" <<'PY'
import os, sys
n, d = int(sys.argv[1]), sys.argv[2]
for i in range(n):
    sub = os.path.join(d, "batch %02d" % (i % 7))  # spaces: keys must be URL-decoded
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "note-%04d.txt" % i), "w") as f:
        f.write("Note %d. The harbour master logged %d boats before noon.\n" % (i, i * 7 % 97))
PY
}

upload() { # DIR
        $PY "$TOOLS/s3_fixture.py" upload "$ENDPOINT" "$BUCKET" "$1" 2>/dev/null || fail "upload to S3 failed"
}

notifications() { # FILE [notify options...]
        local out=$1
        shift
        $PY "$TOOLS/s3_fixture.py" notify "$ENDPOINT" "$BUCKET" "$@" >"$out" || fail "making notifications failed"
}

produce() { # FILE
        bash "$TOOLS/kafka_produce.sh" "$T/kafka" "$TOPIC" "$1" >/dev/null || fail "producing $1 failed"
}

# write_config FILE GROUP [extra kafka JSON members] [extra consumer properties, JSON members]
write_config() {
        cat >"$1" <<JSON
{
  "source": { "type": "kafka" },
  "kafka": { "brokers": "$BOOTSTRAP", "topics": ["$TOPIC"], "group": "$2",
             "dead_letter_topic": "$DLQ", "drain_timeout_ms": 10000
             ${3:+, $3},
             "consumer_properties": { "session.timeout.ms": "3000", "heartbeat.interval.ms": "500"${4:+, $4} } },
  "s3": { "endpoint": "$ENDPOINT", "region": "us-east-1", "retries": { "attempts": 3, "base_ms": 20, "cap_ms": 200 } },
  "connections": { "local": { "type": "sqlite", "path": "$T/docs.db" } },
  "dead_letters": { "path": "$T/unused-dead-letters.jsonl" }
}
JSON
}

rows() { # SQLite rows in text_chunks (0 before the table exists)
        sqlite3 "$T/docs.db" "select count(*) from text_chunks" 2>/dev/null || echo 0
}

lag() { # GROUP: messages of $TOPIC not committed by GROUP
        $PY "$TOOLS/s3_fixture.py" committed "$BOOTSTRAP" "$1" "$TOPIC" 2>/dev/null | sed -n 's/.*lag=//p'
}

# start_engine NAME CONFIG [more `mmpipe run` options]: in the background, logs in
# $T/NAME.out and .err, its pid in $ENGINE_PID.
start_engine() {
        local name=$1 config=$2
        shift 2
        "$MMP" run --config "$config" "$@" >"$T/$name.out" 2>"$T/$name.err" &
        ENGINE_PID=$!
        ENGINE_LOG="$T/$name.err"
        BG_PIDS="$BG_PIDS $ENGINE_PID"
}

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s.
wait_until() {
        local limit=$1 what=$2
        shift 2
        local end=$((SECONDS + limit))
        until "$@"; do
                if [ "$SECONDS" -ge "$end" ]; then
                        # The last engine's own account goes in the failure (CI keeps only this output).
                        if [ -n "${ENGINE_LOG:-}" ] && [ -f "$ENGINE_LOG" ]; then
                                echo "$TEST_NAME: the last 30 lines of $(basename "$ENGINE_LOG"):" >&2
                                tail -n 30 "$ENGINE_LOG" | sed 's/^/    /' >&2
                        fi
                        fail "timed out after ${limit}s waiting for: $what"
                fi
                sleep 0.2
        done
}

all_stored() { [ "$(rows)" -ge "$1" ]; }
lag_zero() { [ "$(lag "$1")" = "0" ]; }

# stop_engine PID: SIGTERM, expect an exit within 30 s; its status goes to
# $RC (for assert_rc).
stop_engine() {
        kill -TERM "$1" 2>/dev/null
        local end=$((SECONDS + 30))
        while kill -0 "$1" 2>/dev/null; do
                [ "$SECONDS" -lt "$end" ] || fail "the engine did not exit within 30 s of SIGTERM"
                sleep 0.1
        done
        RC=0
        wait "$1" 2>/dev/null || RC=$?
        return 0
}

# Every stored _id, sorted, and the expected ones.
stored_ids() { sqlite3 "$T/docs.db" "select _id from text_chunks order by _id"; }
expected_ids() { $PY "$TOOLS/s3_fixture.py" ids "$ENDPOINT" "$BUCKET" text-chunks | sort; }
