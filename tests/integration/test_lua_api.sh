#!/usr/bin/env bash
# The handler API seen from Lua (pipelines/lua_api): mmpipe.json, sha256,
# base64, log, the event table and event:bytes(), require of lib/ modules,
# plugin calls and blobs, the sandbox, and what a handler may return.
. "$(dirname "$0")/lib.sh"

API="$PIPELINES_DIR/lua_api/pipelines"
API_LUA="$API/api.lua"
PL="$(plugin_dir plugins slow)"
line_of() { grep -n -F -- "$1" "$API_LUA" | head -1 | cut -d: -f1; }

mkdir in
printf 'Bytes of the event, read by event:bytes().\n' >in/x.api
for s in list none empty func funclist; do echo "content for $s" >"in/x.$s"; done

say "one process run over every kind of return value"
run_mmp out.jsonl err.txt process --plugins "$PL" --pipelines "$API" \
        in/x.api in/x.list in/x.none in/x.empty in/x.func in/x.funclist
assert_rc 1 "process (two files return a function inside a document)"
assert_contains "$(cat err.txt)" "mmpipe process: 6 files, 4 documents, 2 failed, 0 matched no pipeline" "summary"
assert_eq "x.api 1
x.list 3" "$(json out.jsonl "
from collections import Counter
c = Counter(d['_lineage']['object']['key'].rsplit('/', 1)[1] for d in docs)
print(*['%s %d' % kv for kv in sorted(c.items())], sep='\n')")" "documents per file (a table: 1, a list: 3, nil and {}: none)"
assert_eq "[1, 2, 3] [0, 1, 2] 3" "$(json out.jsonl "
l = sorted((d for d in docs if d['_lineage']['object']['key'].endswith('.list')), key=lambda d: d['n'])
print([d['n'] for d in l], [d['_lineage']['index'] for d in l], l[0]['_lineage']['count'])")" \
        "a list's documents keep their order (n, lineage index, count)"

say "a function inside a document fails the event, naming the field"
line="$(lines_naming err.txt "$T/in/x.func: ")"
assert_contains "$line" "api.lua: a function cannot be stored at document.nested.callback" "stderr for x.func"
line="$(lines_naming err.txt "$T/in/x.funclist: ")"
assert_contains "$line" "api.lua: a function cannot be stored at documents[2].meta.fn" "stderr for x.funclist"

say "mmpipe.json, sha256, base64"
A="d = [d for d in docs if d['_lineage']['object']['key'].endswith('/x.api')][0]"
get() { # dotted path in the x.api document -> its JSON
        json out.jsonl "$A; v = d
for k in '$1'.split('.'): v = v[k]
print(json.dumps(v, ensure_ascii=False, sort_keys=True))"
}
assert_eq '"{\"list\":[1,2,3],\"n\":3,\"name\":\"lamp\",\"nested\":{\"none\":null,\"ok\":true},\"pi\":3.5,\"text\":\"café €\"}"' \
        "$(get json.encoded)" "mmpipe.json.encode (compact, keys sorted, UTF-8 kept)"
assert_eq '{"list": [1, 2, 3], "n": 3, "name": "lamp", "nested": {"none": null, "ok": true}, "pi": 3.5, "text": "café €"}' \
        "$(get json.decoded)" "mmpipe.json.decode of it"
assert_eq true "$(get json.roundtrip_equal)" "encode(decode(encode(t))) == encode(t)"
assert_eq '"mmpipe.json.decode: line 1 column 6: unexpected token near end of file"' "$(get json.error)" \
        "mmpipe.json.decode error"
assert_eq '"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"' "$(get sha256_abc)" 'mmpipe.sha256("abc")'
assert_eq '"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"' "$(get sha256_empty)" 'mmpipe.sha256("")'
assert_eq '"aGVsbG8gd29ybGQ="' "$(get b64)" 'mmpipe.base64.encode("hello world")'
assert_eq '"hello world"' "$(get b64_back)" "mmpipe.base64.decode"
assert_eq true "$(get b64_binary_roundtrip)" "base64 round trip of bytes with NUL and 0xFF"
assert_eq '"mmpipe.base64.decode: invalid base64 input"' "$(get b64_error)" "mmpipe.base64.decode error"

say "the event table"
SHA="$(sha256sum in/x.api | cut -d' ' -f1)"
SIZE="$(stat -c %s in/x.api)"
assert_eq "{\"bucket\": \"\", \"bytes_len\": $SIZE, \"bytes_sha256\": \"$SHA\", \"content_type\": \"text/plain\", \"etag\": \"$SHA\", \"key\": \"$T/in/x.api\", \"path\": \"$T/in/x.api\", \"size\": $SIZE, \"url\": \"file://$T/in/x.api\"}" \
        "$(get event)" "event fields and event:bytes()"

say "require from lib/ beside the pipelines folder"
assert_eq '{"greet": "Hello, world", "sees_io": "nil"}' "$(get lib)" \
        'require "apilib" (which requires "apilib.strings"), sandboxed'

say "plugin calls and blobs"
assert_eq '{"blob_bytes": "abc", "blob_content_type": "text/plain", "blob_len": 3, "blob_size": 3, "input": "hi", "kind": "string", "kind_of_blob_input": "blob"}' \
        "$(get echo)" "mmpipe.tools.slow.echo result and its blob's size/content_type/bytes"
assert_eq '["embed", "slow", "text"]' "$(get mmpipe_plugins)" "mmpipe.plugins()"
assert_eq '"slow.fail: failed on purpose"' "$(get errors.fail)" "a failing operation raises"
assert_eq '"slow.sleep: opts must be a table, got a number"' "$(get errors.opts)" "opts of the wrong type"
assert_contains "$(get errors.no_plugin)" "api.lua:$(line_of 'mmpipe.tools.nope end'): mmpipe.tools.nope: no plugin of that name is loaded" \
        "an unknown plugin"
assert_contains "$(get errors.no_op)" "api.lua:$(line_of 'mmpipe.tools.slow.nope end'): mmpipe.tools.slow.nope: the plugin has no such operation" \
        "an unknown operation"

say "the sandbox"
assert_eq '{"debug": "nil", "dofile": "nil", "io": "nil", "load": "nil", "loadfile": "nil", "loadstring": "nil", "os_execute": "nil", "os_time": "function", "require_ffi": false, "string_dump": "nil"}' \
        "$(get sandbox)" "globals a handler sees"

say "mmpipe.log and print"
L="$(line_of 'mmpipe.log.info("api-log-marker"')"
assert_match "$(grep -F api-log-marker err.txt)" " INFO +\[lua:[^]]*api\.lua:$L\] api-log-marker $SIZE\$" \
        "mmpipe.log.info on stderr with script:line"
L="$(line_of 'mmpipe.log.warn(')"
assert_match "$(grep -F api-warn-marker err.txt)" " WARN +\[lua:[^]]*api\.lua:$L\] api-warn-marker\$" \
        "mmpipe.log.warn on stderr with script:line"
L="$(line_of 'print("api-print-marker"')"
assert_match "$(grep -F api-print-marker err.txt)" " INFO +\[lua:[^]]*api\.lua:$L\] api-print-marker 42\$" \
        "print on stderr with script:line"
# mmpipe.log(...) itself is documented as callable (DESIGN.md: mmpipe.log).
if [ "$(get log_call.ok)" = true ]; then
        L="$(line_of 'mmpipe.log("api-log-call-marker"')"
        assert_match "$(grep -F api-log-call-marker err.txt)" " INFO +\[lua:[^]]*api\.lua:$L\] api-log-call-marker $SIZE\$" \
                "mmpipe.log(...) on stderr with script:line"
else
        fail "mmpipe.log(\"...\") is not callable: $(get log_call.error)"
fi

finish
