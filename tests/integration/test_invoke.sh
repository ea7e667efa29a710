#!/usr/bin/env bash
# Inference calls from Lua against the fault-injecting SageMaker-runtime
# server (issue 5, must-show 1-3): retries with backoff, Retry-After, no
# retry on 400, ModelError judged by the model's status, the circuit breaker
# opening and closing, timeouts, resets; the server never sees more calls at
# once than the endpoint's limit and the engine reaches it; every signature
# verified by the server, a wrong secret refused.
TEST_NAME=test_invoke
. "$(dirname "$0")/lib.sh"

TOOLS="$MMP_SOURCE_DIR/tests/tools"
mkdir -p "$T/sm"
trap 'st=$?; bash "$TOOLS/sagemaker_server.sh" stop "$T/sm" >/dev/null 2>&1; (exit $st); cleanup' EXIT
bash "$TOOLS/sagemaker_server.sh" start "$T/sm" --access-key test --secret-key test >"$T/sm/info" ||
        fail "the SageMaker test server did not start"
URL=$(sed -n 's/^url=//p' "$T/sm/info")
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
PIPES="$MMP_SOURCE_DIR/tests/integration/pipelines/invoke"

control() { curl -sf -X POST -H 'Content-Type: application/json' -d "$1" "$URL/control" >/dev/null || fail "control $1"; }
stat() { curl -sf "$URL/stats?endpoint=$1" | python3 -c "import json,sys; print(json.load(sys.stdin)$2)"; }

cat >"$T/c.json" <<JSON
{ "engine": { "lanes": 2 },
  "sagemaker": { "endpoint_url": "$URL", "region": "us-east-1",
    "defaults": { "retries": { "attempts": 4, "base_ms": 20, "cap_ms": 200 } },
    "endpoints": {
      "lim": { "max_in_flight": 8 },
      "brk": { "retries": { "attempts": 1 }, "breaker": { "failures": 3, "open_ms": 1500 } },
      "slow": { "timeout_ms": 500, "retries": { "attempts": 2, "base_ms": 10, "cap_ms": 20 } } } } }
JSON

# run NAME STEP-LINES...: one .steps file through `mmpipe process`; the
# documents (one per step) in $T/NAME.jsonl.
run_steps() {
        local name=$1
        shift
        printf '%s\n' "$@" >"$T/$name.steps"
        run_mmp "$T/$name.jsonl" "$T/$name.err" process --config "$T/c.json" --pipelines "$PIPES" "$T/$name.steps"
        assert_rc 0 "process $name.steps"
}
field() { json "$T/$1.jsonl" "print(docs[$2]$3)"; }

say "retried: 503, 503 then 200 (three attempts); a connection reset then 200"
control '{"endpoint": "retry", "script": [{"status": 503}, {"status": 503}, {"echo": true}]}'
control '{"endpoint": "reset", "script": [{"reset": true}, {"echo": true}]}'
run_steps retry '{"endpoint": "retry"}' '{"endpoint": "reset"}'
assert_eq "[200] [3]" "$(field retry 0 "['statuses'], docs[0]['attempts']")" "503, 503, 200"
# (on a reused connection libcurl itself retries a request the server reset
# before answering, so the engine may count one attempt: the server saw two)
assert_eq "[200]" "$(field retry 1 "['statuses']")" "reset, then 200"
assert_eq 2 "$(stat reset "['calls']")" "calls the server saw for 'reset'"
assert_eq 3 "$(stat retry "['calls']")" "calls the server saw for 'retry'"

say "Retry-After is honoured: 429 with Retry-After: 1, then 200, takes at least a second"
control '{"endpoint": "thr", "script": [{"throttle": true, "retry_after": 1}, {"echo": true}]}'
t0=$(date +%s.%N)
run_steps thr '{"endpoint": "thr"}'
took=$(python3 -c "print($(date +%s.%N) - $t0)")
assert_eq "[200] [2]" "$(field thr 0 "['statuses'], docs[0]['attempts']")" "429 then 200"
python3 -c "import sys; sys.exit(0 if $took >= 1.0 else 1)" || fail "the retry came after ${took}s, before Retry-After's 1 s"
ok "the retry waited for Retry-After (${took}s in all)"

say "not retried: 400 ValidationError, ModelError with the model's 400; retried: ModelError with the model's 500"
control '{"endpoint": "val", "script": [{"validation": "inputs must be a string"}, {"echo": true}]}'
control '{"endpoint": "me4", "script": [{"model_error": 400, "message": "bad input"}, {"echo": true}]}'
control '{"endpoint": "me5", "script": [{"model_error": 500, "message": "oom"}, {"echo": true}]}'
run_steps nr '{"endpoint": "val"}' '{"endpoint": "me4"}' '{"endpoint": "me5"}'
assert_eq "[400] [1]" "$(field nr 0 "['statuses'], docs[0]['attempts']")" "ValidationError: one attempt"
assert_contains "$(field nr 0 "['errors'][0]")" "endpoint val: 400 ValidationError: inputs must be a string (after 1 attempt)" "ValidationError message"
assert_eq "[424] [1]" "$(field nr 1 "['statuses'], docs[1]['attempts']")" "ModelError (model said 400): one attempt"
assert_contains "$(field nr 1 "['errors'][0]")" "the model answered 400" "ModelError message"
assert_eq "[200] [2]" "$(field nr 2 "['statuses'], docs[2]['attempts']")" "ModelError (model said 500): retried"
assert_eq 1 "$(stat val "['calls']")" "calls the server saw for 'val'"

say "timeouts: an endpoint that never answers fails after its attempts, each cut at timeout_ms"
control '{"endpoint": "slow", "script": [{"hang": true}, {"hang": true}]}'
run_steps slow '{"endpoint": "slow"}'
assert_eq "[2]" "$(field slow 0 "['attempts']")" "attempts against a hanging endpoint"
assert_contains "$(field slow 0 "['errors'][0]")" "endpoint slow: timeout" "timeout message"

say "the circuit breaker opens after 3 failures, holds calls, probes, closes"
control '{"endpoint": "brk", "script": [{"status": 500, "repeat": 3}, {"echo": true}, {"echo": true}]}'
t0=$(date +%s.%N)
run_steps brk '{"endpoint": "brk"}' '{"endpoint": "brk"}' '{"endpoint": "brk"}' '{"endpoint": "brk"}' '{"endpoint": "brk"}'
took=$(python3 -c "print($(date +%s.%N) - $t0)")
assert_eq "[500] [500] [500] [200] [200]" "$(json "$T/brk.jsonl" "print(' '.join(str(d['statuses']) for d in docs))")" "statuses: 3 failures, then the probe and a call after it"
assert_eq 5 "$(stat brk "['calls']")" "calls the server saw for 'brk' (none while the circuit was open)"
python3 -c "import sys; sys.exit(0 if $took >= 1.4 else 1)" || fail "the open circuit did not hold the 4th call (${took}s in all)"
assert_contains "$(cat "$T/brk.err")" "endpoint brk: circuit open for 1500 ms after 3 consecutive failures" "breaker opened"
assert_contains "$(cat "$T/brk.err")" "endpoint brk: circuit closed again" "breaker closed"

say "the limit: 2 events x 60 concurrent calls on max_in_flight 8: the server sees exactly 8 at once"
control '{"endpoint": "lim", "latency_ms": 100, "slots": 64}'
printf '%s\n' '{"endpoint": "lim", "count": 60}' >"$T/lim1.steps"
cp "$T/lim1.steps" "$T/lim2.steps"
run_mmp "$T/lim.jsonl" "$T/lim.err" process --config "$T/c.json" --pipelines "$PIPES" "$T/lim1.steps" "$T/lim2.steps"
assert_rc 0 "process lim1.steps lim2.steps"
assert_eq 120 "$(stat lim "['ok']")" "calls answered for 'lim'"
assert_eq 8 "$(stat lim "['max_concurrency']")" "the most calls the server saw at once"
assert_contains "$(cat "$T/lim.err")" "at most 8 in flight" "the engine's own count"

say "signatures: every call verified by the server; a wrong secret is refused, not retried"
assert_eq 0 "$(curl -sf "$URL/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['total']['bad_signatures'])")" "bad signatures so far"
control '{"endpoint": "sig", "script": []}'
AWS_SECRET_ACCESS_KEY=wrong run_steps sig '{"endpoint": "sig"}'
assert_eq "[403] [1]" "$(field sig 0 "['statuses'], docs[0]['attempts']")" "a wrong secret: 403, one attempt"
assert_contains "$(field sig 0 "['errors'][0]")" "InvalidSignatureException" "the server's reason"

finish
