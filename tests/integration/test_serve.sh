#!/usr/bin/env bash
# `mmpipe serve`: the embed plugin's text operation behind SageMaker's
# container contract. /ping, /invocations with a string, a list, parameters
# and text/plain; the answer equals the plugin's direct output (through
# `mmpipe process`); errors 400/404/405/413 with JSON bodies; custom
# attributes echoed; concurrent clients; the same pipeline through
# mmpipe.embed with a local model and with this server as its SageMaker
# endpoint (/endpoints/NAME/invocations) gives the same vectors; SIGTERM
# exits 0 within 5 s.
. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || fail "curl is needed"

# A build without libmicrohttpd refuses the command before loading anything.
run_mmp out.txt err.txt serve --plugin embed --op text --plugins "$T/no-such-folder"
if grep -q "not supported in this build" err.txt; then
        assert_rc 1 "serve in a build without libmicrohttpd"
        finish
fi

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"

say "usage errors"
run_mmp out.txt err.txt serve --op text
assert_rc 2 "serve without --plugin"
assert_contains "$(cat err.txt)" "--plugin is required" "the message"
run_mmp out.txt err.txt serve --plugin nosuch --op text --plugins "$TEXT_PLUGINS" --port "$PORT"
assert_rc 2 "serve --plugin nosuch"
assert_contains "$(cat err.txt)" 'no plugin named "nosuch"' "the message"
assert_contains "$(cat err.txt)" "embed" "the message lists the loaded plugins"
run_mmp out.txt err.txt serve --plugin embed --op nosuch --plugins "$TEXT_PLUGINS" --port "$PORT"
assert_rc 2 "serve --op nosuch"
assert_contains "$(cat err.txt)" "has no operation \"nosuch\" (operations: text describe)" "the message"

say "start mmpipe serve --plugin embed --op text on port $PORT"
"$MMP" serve --plugin embed --op text --port "$PORT" --host 127.0.0.1 --plugins "$TEXT_PLUGINS" \
        --workers 4 -v 2>serve.log &
SERVER=$!
BG_PIDS="$BG_PIDS $SERVER"
wait_for 20 "GET /ping to answer 200" curl -sf "$URL/ping"

digest() { sha256sum "$1" | cut -c1-16; }

# http METHOD PATH [curl args...]: sets CODE, writes the body to body.out and the headers to headers.out.
http() {
        local method="$1" path="$2"
        shift 2
        CODE="$(curl -s -X "$method" -o body.out -D headers.out -w '%{http_code}' "$@" "$URL$path")" ||
                fail "curl $method $path failed"
}

http GET /ping
assert_eq 200 "$CODE" "GET /ping"
assert_eq 0 "$(stat -c %s body.out)" "GET /ping body size"

say "POST /invocations"
http POST /invocations -H 'Content-Type: application/json' -d '{"inputs": "hello world"}'
assert_eq 200 "$CODE" "POST {\"inputs\": \"hello world\"}"
assert_match "$(cat headers.out)" "^Content-Type: application/json" "response Content-Type"
cp body.out single.json
res="$(json single.json "
d = docs[0]; e = d['embedding']
n = sum(x * x for x in e) ** 0.5
print(d['dim'], len(e), d['model'], 'norm1' if abs(n - 1) < 1e-9 else 'norm=%r' % n)")"
assert_eq "256 256 hashed-ngrams-v1 norm1" "$res" "dim, length, model, L2 norm"
http POST /invocations -H 'Content-Type: application/json' -d '{"inputs": "hello world"}'
assert_eq "$(digest single.json)" "$(digest body.out)" "a second call's answer (deterministic)"

http POST /invocations -H 'Content-Type: application/json' \
        -d '{"inputs": ["hello world", "The quick brown fox jumps over the lazy dog."]}'
assert_eq 200 "$CODE" "POST a list of inputs"
cp body.out list.json
res="$(python3 -c "
import json
single = json.load(open('single.json')); lst = json.load(open('list.json'))
print(type(lst).__name__, len(lst), lst[0] == single, lst[1]['embedding'] != single['embedding'])")"
assert_eq "list 2 True True" "$res" "a list answers a list; its first item equals the single answer"

http POST /invocations -H 'Content-Type: application/json' -d '{"inputs": "hello world", "parameters": {"dim": 64}}'
assert_eq 200 "$CODE" "POST with parameters"
assert_eq "64 64" "$(json body.out "print(docs[0]['dim'], len(docs[0]['embedding']))")" "parameters.dim"

http POST /invocations -H 'Content-Type: application/json' -d '"hello world"'
assert_eq "$(digest single.json)" "$(digest body.out)" "a bare JSON string is the input"
http POST /invocations -H 'Content-Type: text/plain' --data-binary 'hello world'
assert_eq "$(digest single.json)" "$(digest body.out)" "a text/plain body is the input"
http POST /invocations -H 'Content-Type: application/json' -d '{"text": "hello world"}'
assert_eq "$(digest single.json)" "$(digest body.out)" "an object without inputs is the input"

say "the same vector as the plugin called from a pipeline (mmpipe process)"
mkdir -p direct/pipelines
cat >direct/pipelines/embed_direct.lua <<'EOF'
local mmpipe = require "mmpipe"
return mmpipe.pipeline {
  name = "embed-direct",
  match = { content_type = "text/*" },
  destination = { collection = "embeddings" },
  handler = function(event)
    local e = mmpipe.tools.embed.text(event:bytes())
    return { { embedding = e.embedding, dim = e.dim, model = e.model } }
  end,
}
EOF
printf 'hello world' >hello.txt
run_mmp direct.jsonl direct.err process --plugins "$TEXT_PLUGINS" --pipelines "$T/direct/pipelines" hello.txt
assert_rc 0 "mmpipe process hello.txt"
res="$(python3 -c "
import json
served = json.load(open('single.json')); direct = json.loads(open('direct.jsonl').readline())
diff = max(abs(a - b) for a, b in zip(served['embedding'], direct['embedding']))
print(direct['dim'], direct['model'], len(direct['embedding']) == len(served['embedding']), 'same' if diff < 1e-12 else 'diff=%g' % diff)")"
assert_eq "256 hashed-ngrams-v1 True same" "$res" "served vs direct embedding"

say "the same pipeline with a local model, then with this server as its SageMaker endpoint (config only)"
mkdir -p models/pipelines
cat >models/pipelines/embed_model.lua <<'EOF'
local mmpipe = require "mmpipe"
return mmpipe.pipeline {
  name = "embed-model",
  match = { content_type = "text/*" },
  destination = { collection = "embeddings" },
  handler = function(event)
    return { { embedding = mmpipe.embed("text-embedding", event:bytes()) } }
  end,
}
EOF
cat >local.json <<'EOF'
{ "models": { "text-embedding": { "provider": "local", "plugin": "embed", "op": "text" } } }
EOF
cat >remote.json <<EOF
{ "sagemaker": { "endpoint_url": "$URL", "region": "us-east-1" },
  "models": { "text-embedding": { "provider": "sagemaker", "endpoint": "mmpipe-embed" } } }
EOF
printf 'Lighthouses guided ships into the harbor.' >ships.txt
run_mmp local.jsonl local.err process --config local.json --plugins "$TEXT_PLUGINS" --pipelines "$T/models/pipelines" ships.txt
assert_rc 0 "process with the local model"
AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
        run_mmp remote.jsonl remote.err process --config remote.json --plugins "$TEXT_PLUGINS" \
        --pipelines "$T/models/pipelines" ships.txt
assert_rc 0 "process with the model behind mmpipe serve"
res="$(python3 -c "
import json
a = json.loads(open('local.jsonl').readline())['embedding']; b = json.loads(open('remote.jsonl').readline())['embedding']
print(len(a), len(b), 'same' if max(abs(x - y) for x, y in zip(a, b)) < 1e-12 else 'differ')")"
assert_eq "256 256 same" "$res" "local and served embeddings"
assert_contains "$(cat serve.log)" "POST /endpoints/mmpipe-embed/invocations -> 200" "the runtime API path reached the server"

say "SageMaker custom attributes are echoed"
http POST /invocations -H 'Content-Type: application/json' \
        -H 'X-Amzn-SageMaker-Custom-Attributes: trace_id=abc-123,variant=blue' -d '{"inputs": "hi"}'
assert_eq 200 "$CODE" "POST with custom attributes"
assert_match "$(cat headers.out)" "^X-Amzn-SageMaker-Custom-Attributes: trace_id=abc-123,variant=blue" "echoed header"

say "errors"
http POST /invocations -H 'Content-Type: application/json' -d '{"inputs": "hello'
assert_eq 400 "$CODE" "invalid JSON"
assert_contains "$(json body.out "print(docs[0]['error'])")" "invalid JSON:" "error body names the problem"
assert_contains "$(cat body.out)" "line 1, column" "and where"
http POST /invocations -H 'Content-Type: application/json' -d '{"inputs": "  ... "}'
assert_eq 400 "$CODE" "input with no text"
assert_contains "$(json body.out "print(docs[0]['error'])")" "embed.text: no text to embed" "error body"
http POST /invocations -H 'Content-Type: application/json' -d '{"inputs": ["fine", ""]}'
assert_eq 400 "$CODE" "a list with one bad item"
assert_contains "$(cat body.out)" "inputs[1]: embed.text: no text to embed" "the bad item is named"
http POST /invocations -H 'Content-Type: text/plain' --data-binary $'caf\xe9'
assert_eq 400 "$CODE" "text/plain that is not UTF-8"
assert_contains "$(cat body.out)" "not valid UTF-8" "error body"
http POST /invocations -H 'Content-Type: application/json' -d '{"inputs": "x", "parameters": {"dim": 3}}'
assert_eq 400 "$CODE" "parameters.dim out of range"
http GET /nope
assert_eq 404 "$CODE" "GET /nope"
assert_contains "$(json body.out "print(docs[0]['error'])")" "no such path: /nope" "error body"
http GET /invocations
assert_eq 405 "$CODE" "GET /invocations"
http POST /endpoints//invocations -H 'Content-Type: application/json' -d '"x"'
assert_eq 404 "$CODE" "POST /endpoints//invocations (no endpoint name)"
head -c $((7 * 1024 * 1024)) /dev/zero | tr '\0' 'a' >big.txt
http POST /invocations -H 'Content-Type: text/plain' --data-binary @big.txt
assert_eq 413 "$CODE" "7 MB body (Expect: 100-continue)"
assert_contains "$(cat body.out)" "over the limit of 6291456 bytes" "error body"
http POST /invocations -H 'Content-Type: text/plain' -H 'Expect:' --data-binary @big.txt
assert_eq 413 "$CODE" "7 MB body sent whole (no Expect)"
head -c $((6 * 1024 * 1024 - 64)) /dev/zero | tr '\0' 'a' >sixmb.txt
http POST /invocations -H 'Content-Type: text/plain' --data-binary @sixmb.txt
assert_eq 200 "$CODE" "a body just under 6 MB"

say "concurrent clients"
res="$(python3 - "$PORT" <<'EOF'
import json, sys, threading, urllib.request
port = int(sys.argv[1])
texts = ["text number %d about lighthouses and harbors" % i for i in range(8)]
def call(t):
    req = urllib.request.Request("http://127.0.0.1:%d/invocations" % port, data=json.dumps({"inputs": t}).encode(),
                                 headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(req, timeout=30).read()
want = {t: call(t) for t in texts}
bad = []
def worker(k):
    for i in range(25):
        t = texts[(k + i) % len(texts)]
        if call(t) != want[t]:
            bad.append(t)
ths = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
[th.start() for th in ths]
[th.join() for th in ths]
print("ok" if not bad else "%d mismatches" % len(bad))
EOF
)"
assert_eq ok "$res" "16 clients x 25 calls, each answer equal to the sequential one"

say "SIGTERM while an invocation is half received: it is still answered, then the server exits"
res="$(python3 - "$PORT" "$SERVER" <<'EOF'
import os, signal, socket, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
body = b'{"inputs": "' + b"lighthouse " * 20000 + b'"}'
s = socket.create_connection(("127.0.0.1", port), timeout=30)
s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Content-Length: %d\r\n\r\n" % len(body))
s.sendall(body[:1000])
time.sleep(0.3)  # the server has the headers: the request is in flight
os.kill(pid, signal.SIGTERM)
time.sleep(0.5)
s.sendall(body[1000:])
resp = b""
while b"\r\n\r\n" not in resp:
    chunk = s.recv(65536)
    if not chunk:
        break
    resp += chunk
print(resp.split(b"\r\n", 1)[0].decode())
EOF
)"
assert_eq "HTTP/1.1 200 OK" "$res" "the answer to the invocation in flight"
for _ in $(seq 50); do
        kill -0 "$SERVER" 2>/dev/null || break
        sleep 0.1
done
kill -0 "$SERVER" 2>/dev/null && fail "mmpipe serve still runs 5 s after SIGTERM"
RC=0
wait "$SERVER" || RC=$?
BG_PIDS=""
[ "$RC" -eq 86 ] && fail "mmpipe serve failed a sanitizer check; log:
$(tail -40 serve.log)"
assert_eq 0 "$RC" "exit status after SIGTERM"
assert_contains "$(cat serve.log)" "SIGTERM: stopping" "log"
assert_contains "$(cat serve.log)" "DEBUG [serve] POST /invocations -> 200" "one debug line per request"
assert_contains "$(cat serve.log)" "WARN  [serve] GET /nope -> 404" "errors at warn"

finish
