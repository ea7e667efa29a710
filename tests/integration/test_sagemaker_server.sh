#!/usr/bin/env bash
# The SageMaker-runtime test server itself (tests/tools/sagemaker_server.py), checked
# with boto3 and curl before the engine is tested against it:
# - the launcher tests/tools/sagemaker_server.sh: free port, readiness, pid file,
#   a second start refused, stop by PID;
# - its SigV4 verifier against botocore's signer, byte for byte, under every
#   python3 here that has botocore (the PATH one and Debian's /usr/bin/python3);
# - live, with boto3 (tests/tools/test_sagemaker_server_selfcheck.py --url):
#   echo, wrong secret / unknown key / expired date / wrong region / tampered
#   body -> 403, each scripted fault -> the right boto3 exception, Retry-After,
#   hang -> read timeout, reset -> connection error, the 6 MB limit, 64 slots
#   under 100 concurrent calls -> max_concurrency 64;
# - libcurl's own SigV4 signer (curl --aws-sigv4, what the engine uses) accepted;
# - tests/tools/moto_invoke_check.py: the scripted-answer cases agree with
#   moto_server's InvokeEndpoint (skipped where moto is not installed);
# - the server also runs under Debian's /usr/bin/python3.
. "$(dirname "$0")/lib.sh"

TOOLS="$MMP_SOURCE_DIR/tests/tools"
SM="$TOOLS/sagemaker_server.sh"
SELFCHECK="$TOOLS/test_sagemaker_server_selfcheck.py"

# Interpreters with boto3: the PATH python3 and Debian's, when they differ.
PYS=()
for py in python3 /usr/bin/python3; do
        p=$(command -v "$py" 2>/dev/null) || continue
        "$p" -c 'import boto3' 2>/dev/null || continue
        dup=0
        for q in "${PYS[@]}"; do [ "$(readlink -f "$q")" = "$(readlink -f "$p")" ] && dup=1; done
        [ $dup = 0 ] && PYS+=("$p")
done
[ ${#PYS[@]} -gt 0 ] || fail "no python3 with boto3 here (Debian: apt-get install python3-boto3)"
say "boto3 clients: ${PYS[*]}"

start_sm() { # dir [args]: starts the server, sets URL and PID
        local d=$1
        shift
        bash "$SM" start "$d" "$@" >"$d.out" 2>"$d.err" || fail "sagemaker_server.sh start failed: $(cat "$d.err")"
        URL=$(sed -n 's/^url=//p' "$d.out")
        PID=$(cat "$d/sagemaker_server.pid")
        BG_PIDS="$BG_PIDS $PID" # killed on exit should the test fail midway
}

# ---- offline: the verifier against botocore's signer ----
for py in "${PYS[@]}"; do
        timeout -k 5 60 "$py" "$SELFCHECK" --offline >"$T/offline.out" 2>&1 ||
                fail "offline SigV4 checks with $py:
$(tail -20 "$T/offline.out")"
        ok "SigV4 verifier agrees with botocore ($(grep -o 'botocore [0-9.]*' "$T/offline.out" | head -1), $py): $(tail -1 "$T/offline.out" | sed 's/.*: //')"
done

# ---- the launcher ----
start_sm "$T/sm" --latency-ms 0 --slots 64
assert_match "$URL" '^http://127\.0\.0\.1:[0-9]+$' "url printed by sagemaker_server.sh"
assert_eq "test" "$(sed -n 's/^access_key=//p' "$T/sm.out")" "access_key printed"
assert_eq "us-east-1" "$(sed -n 's/^region=//p' "$T/sm.out")" "region printed"
kill -0 "$PID" 2>/dev/null || fail "the pid file names no running process"
ok "pid file names the running server ($PID)"
assert_eq "200" "$(curl -s -o /dev/null -w '%{http_code}' "$URL/ping")" "GET /ping"
if bash "$SM" start "$T/sm" >/dev/null 2>"$T/sm.err2"; then
        fail "a second start on the same folder should be refused"
fi
assert_contains "$(cat "$T/sm.err2")" "already running" "second start"

# ---- unsigned requests ----
out=$(curl -s -i -X POST --data-binary '{}' "$URL/endpoints/x/invocations")
assert_contains "$out" "HTTP/1.1 403" "unsigned InvokeEndpoint"
assert_contains "$out" "x-amzn-ErrorType: MissingAuthenticationTokenException" "unsigned InvokeEndpoint"

# ---- live checks with boto3, one run per interpreter (own endpoint names each) ----
for py in "${PYS[@]}"; do
        timeout -k 5 120 "$py" "$SELFCHECK" --url "$URL" >"$T/live.out" 2>&1 ||
                fail "live checks with $py against $URL:
$(tail -30 "$T/live.out")"
        ok "boto3 live checks ($(grep -o 'botocore [0-9.]*' "$T/live.out" | head -1)): $(tail -1 "$T/live.out" | sed 's/.*: //')"
        grep -E 'boto3 raises|hang ->|reset ->|max_concurrency' "$T/live.out" | sed 's/^  ok: /      /'
done

# ---- libcurl's SigV4 signer (the engine signs with CURLOPT_AWS_SIGV4) ----
curl_invoke() { # secret endpoint data-file -> status line and body in $T/curl.out
        curl -s -o "$T/curl.out" -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:sagemaker" --user "test:$1" \
                -H 'Content-Type: application/json' -H 'Accept: application/json' \
                -H 'X-Amzn-SageMaker-Custom-Attributes: run=curl' --data-binary "@$3" "$URL/endpoints/$2/invocations"
}
printf '{"inputs": "from curl"}' >"$T/small.json"
assert_eq "200" "$(curl_invoke test curl-ep "$T/small.json")" "curl --aws-sigv4 InvokeEndpoint"
assert_eq '{"inputs": "from curl"}' "$(json "$T/curl.out" 'print(json.dumps(docs[0]["echo"]))')" "echo of curl's body"
assert_eq "403" "$(curl_invoke wrong curl-ep "$T/small.json")" "curl --aws-sigv4 with the wrong secret"
assert_contains "$(cat "$T/curl.out")" "InvalidSignatureException" "wrong secret's body"
python3 -c 'import json; print(json.dumps({"inputs": "x" * (3 << 20)}))' >"$T/big.json"
assert_eq "200" "$(curl_invoke test curl-ep "$T/big.json")" "curl --aws-sigv4 with a 3 MB body (Expect: 100-continue)"
assert_eq "$(stat -c %s "$T/big.json")" "$(json "$T/curl.out" 'print(docs[0]["body_bytes"])')" "the 3 MB body arrived whole"

# ---- stats and control ----
curl -s "$URL/stats" >"$T/stats.json"
assert_eq "0" "$(json "$T/stats.json" 'print(docs[0]["total"]["in_flight"])')" "nothing in flight at the end"
assert_match "$(json "$T/stats.json" 'print(docs[0]["total"]["calls"])')" '^[0-9]{3,}$' "total calls counted"
curl -s -X POST -d '{"reset_stats": true}' "$URL/control" >/dev/null
curl -s "$URL/stats" >"$T/stats.json"
assert_eq "0 0" "$(json "$T/stats.json" 'print(docs[0]["total"]["calls"], docs[0]["total"]["bad_signatures"])')" \
        "calls and bad signatures after reset_stats"

# ---- contract check against moto_server's InvokeEndpoint (where moto is installed) ----
if python3 -c 'import moto.server, boto3' 2>/dev/null; then
        timeout -k 5 120 python3 "$TOOLS/moto_invoke_check.py" --sagemaker-url "$URL" >"$T/moto.out" 2>&1 ||
                fail "moto_invoke_check.py: the contract cases differ:
$(tail -40 "$T/moto.out")"
        ok "moto_invoke_check: $(grep '^summary' "$T/moto.out" | cut -c1-80)..."
else
        say "moto is not installed for python3: the moto contract check is skipped"
fi

# ---- stop ----
bash "$SM" stop "$T/sm"
kill -0 "$PID" 2>/dev/null && fail "the server still runs after stop"
ok "stop ended the server"
[ -e "$T/sm/sagemaker_server.pid" ] && fail "stop left the pid file"
ok "stop removed the pid file"

# ---- the server under Debian's python3, driven by the other interpreter ----
if [ -x /usr/bin/python3 ]; then
        MMP_SAGEMAKER_PYTHON=/usr/bin/python3 start_sm "$T/sm-deb" --latency-ms 0
        py=${PYS[0]}
        timeout -k 5 120 "$py" "$SELFCHECK" --url "$URL" >"$T/live-deb.out" 2>&1 ||
                fail "live checks with $py against the server under /usr/bin/python3:
$(tail -30 "$T/live-deb.out")"
        ok "server under /usr/bin/python3 ($(/usr/bin/python3 --version)), client $py: $(tail -1 "$T/live-deb.out" | sed 's/.*: //')"
        bash "$SM" stop "$T/sm-deb"
        kill -0 "$PID" 2>/dev/null && fail "the /usr/bin/python3 server still runs after stop"
        ok "stopped"
fi

finish
