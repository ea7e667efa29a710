#!/usr/bin/env bash
# Contract check (issue 5, must-show 3): the engine's InvokeEndpoint call
# against moto_server's implementation of the SageMaker runtime: a scripted
# answer comes back with its body, content type, production variant and
# custom attributes, as boto3 sees them (tests/tools/moto_invoke_check.py
# compares boto3 against moto and the test server the same way).
TEST_NAME=test_invoke_moto
. "$(dirname "$0")/lib.sh"

command -v moto_server >/dev/null || fail "moto_server is not installed (TESTING.md: it is in the machine image's Python)"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$PORT" >"$T/moto.log" 2>&1 &
BG_PIDS="$BG_PIDS $!"
MOTO="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -sf "$MOTO/moto-api/" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "$MOTO/moto-api/" >/dev/null || fail "moto_server did not start"
ok "moto_server at $MOTO"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test

say "a scripted JSON answer, through mmpipe.invoke"
curl -sf -X POST -H 'Content-Type: application/json' "$MOTO/moto-api/static/sagemaker/endpoint-results" -d '{
  "account_id": "123456789012", "region": "us-east-1",
  "results": [{"Body": "{\"vector\": [0.25, -0.5], \"label\": \"cat\"}", "ContentType": "application/json",
               "InvokedProductionVariant": "variant-1", "CustomAttributes": "trace=7"}]}' >/dev/null ||
        fail "scripting moto's answer failed"
cat >"$T/c.json" <<JSON
{ "sagemaker": { "endpoint_url": "$MOTO", "region": "us-east-1" } }
JSON
echo '{"endpoint": "contract-check", "body": {"inputs": "a cat"}, "content_type": "application/json", "custom_attributes": "req=1"}' >"$T/one.call"
run_mmp "$T/out.jsonl" "$T/err.txt" process --config "$T/c.json" \
        --pipelines "$MMP_SOURCE_DIR/tests/integration/pipelines/invoke_one" "$T/one.call"
assert_rc 0 "process one.call against moto"
assert_eq 200 "$(json "$T/out.jsonl" "print(docs[0]['status'])")" "status"
assert_eq '{"vector": [0.25, -0.5], "label": "cat"}' "$(json "$T/out.jsonl" "print(docs[0]['body'])")" "body passed through"
assert_eq "application/json" "$(json "$T/out.jsonl" "print(docs[0]['content_type'])")" "content type"
assert_eq "variant-1" "$(json "$T/out.jsonl" "print(docs[0]['variant'])")" "invoked production variant"
assert_eq "trace=7" "$(json "$T/out.jsonl" "print(docs[0]['custom_attributes'])")" "custom attributes"

finish
