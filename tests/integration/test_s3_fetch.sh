#!/usr/bin/env bash
# Object fetch, from the outside: the "s3" config section as the real binary
# reports it (`mmpipe check`), the S3 stand-in launcher tests/tools/s3_server.sh
# (free port, readiness, stop by PID), and the fetch tests run against a
# stand-in started here, the way tests/run.sh hands one over
# (MMP_TEST_S3_ENDPOINT). The fetch itself is covered in detail by
# tests/unit/test_fetch_s3.c and test_sigv4.c.
. "$(dirname "$0")/lib.sh"

S3_TOOL="$MMP_SOURCE_DIR/tests/tools/s3_server.sh"

# ---- config errors name the key path ----
check_config() { # json: runs `mmpipe check` on it; sets RC
        printf '%s\n' "$1" >"$T/c.json"
        run_mmp "$T/out" "$T/err" check --config "$T/c.json" --plugins "$TEXT_PLUGINS"
}

check_config '{"s3": {"region": 5}}'
assert_rc 2 "check with s3.region = 5"
assert_contains "$(cat "$T/err")" "c.json: s3.region: expected a non-empty string, got 5" "check's error"

check_config '{"s3": {"retries": {"attempts": 0}}}'
assert_rc 2 "check with s3.retries.attempts = 0"
assert_contains "$(cat "$T/err")" "s3.retries.attempts: expected an integer from 1 to 100, got 0" "check's error"

check_config '{"s3": {"endpoint": "minio:9000"}}'
assert_rc 2 "check with a bare host as endpoint"
assert_contains "$(cat "$T/err")" "s3.endpoint: expected an http:// or https:// URL with no path" "check's error"

check_config '{"s3": {"bucket": "x"}}'
assert_rc 2 "check with an unknown s3 key"
assert_contains "$(cat "$T/err")" 'unknown key "s3.bucket" (known: region, endpoint, path_style' "check's error"

check_config '{"s3": {"region": "eu-west-1", "endpoint": "http://127.0.0.1:9000", "path_style": true,
  "profile": "ci", "max_object_mb": 64, "timeout_ms": 5000, "retries": {"attempts": 3, "base_ms": 50, "cap_ms": 2000}}}'
assert_rc 0 "check with a complete s3 section"

# ---- the stand-in launcher ----
bash "$S3_TOOL" start "$T/s3" >"$T/s3.out" 2>"$T/s3.err" || fail "s3_server.sh start failed: $(cat "$T/s3.err")"
endpoint=$(sed -n 's/^endpoint=//p' "$T/s3.out")
pid=$(cat "$T/s3/s3_server.pid")
BG_PIDS="$BG_PIDS $pid" # killed on exit should the test fail midway
assert_match "$endpoint" '^http://127\.0\.0\.1:[0-9]+$' "endpoint printed by s3_server.sh"
kill -0 "$pid" 2>/dev/null || fail "the pid file names no running process"
ok "pid file names the running server ($pid)"
code=$(curl -s -o /dev/null -w '%{http_code}' "$endpoint/")
assert_ne "000" "$code" "an HTTP answer from the stand-in"

if bash "$S3_TOOL" start "$T/s3" >/dev/null 2>"$T/s3.err2"; then
        fail "a second start on the same folder should be refused"
fi
assert_contains "$(cat "$T/s3.err2")" "already running" "second start"

# ---- the fetch tests against this stand-in ----
MMP_TEST_S3_ENDPOINT="$endpoint" \
        MMP_TEST_S3_ACCESS_KEY=$(sed -n 's/^access_key=//p' "$T/s3.out") \
        MMP_TEST_S3_SECRET_KEY=$(sed -n 's/^secret_key=//p' "$T/s3.out") \
        timeout -k 5 120 "$MMP_BUILD_DIR/tests/test_fetch_s3" >"$T/unit.out" 2>&1 ||
        fail "test_fetch_s3 against $endpoint failed:
$(tail -40 "$T/unit.out")"
assert_contains "$(cat "$T/unit.out")" "PASSED" "test_fetch_s3 with MMP_TEST_S3_ENDPOINT"

bash "$S3_TOOL" stop "$T/s3"
for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
done
kill -0 "$pid" 2>/dev/null && fail "the stand-in (pid $pid) still runs after stop"
ok "stop ended the stand-in"
[ -e "$T/s3/s3_server.pid" ] && fail "the pid file is still there after stop"
ok "stop removed the pid file"
bash "$S3_TOOL" stop "$T/s3" || fail "a second stop should be harmless"
ok "a second stop is harmless"

finish
