#!/usr/bin/env bash
# `mmpipe check` and configuration errors: every error names where it comes
# from (key path, file:line, pipeline and connection) and exits 2;
# ${ENV} interpolation; `mmpipe version` lists the features.
. "$(dirname "$0")/lib.sh"

TEXT_LUA="$MMP_SOURCE_DIR/scripts/pipelines/text.lua"

say "defaults"
run_mmp ok.txt ok.err check
assert_rc 0 "check with the defaults"
out="$(cat ok.txt)"
assert_contains "$out" "config: <embedded defaults>: ok" "check output"
assert_contains "$out" "pipeline text-chunks (version $(sha256sum "$TEXT_LUA" | cut -c1-12)) from $TEXT_LUA" "check output"
assert_contains "$out" "destination: local/text_chunks" "check output"
assert_contains "$out" "mmpipe.tools.text.chunk" "check output"
assert_eq "check: ok" "$(tail -1 ok.txt)" "last line of check"

say "a config value of the wrong type"
echo '{"engine": {"lanes": "two"}}' >lanes.json
run_mmp l.txt l.err check --config lanes.json
assert_rc 2 "check with engine.lanes = \"two\""
assert_eq 'mmpipe: lanes.json: engine.lanes: expected a non-negative integer, got "two"' "$(cat l.err)" "error message"
run_mmp s.txt s.err check --set engine.workers=two
assert_rc 2 "check --set engine.workers=two"
assert_eq 'mmpipe: --set: engine.workers: expected a non-negative integer, got "two"' "$(cat s.err)" "error message"
echo '{"engine": {"lanes": 2, "lnaes": 3}}' >typo.json
run_mmp ty.txt ty.err check --config typo.json
assert_rc 2 "check with a misspelt key"
assert_contains "$(cat ty.err)" 'unknown key "engine.lnaes"' "error message"
printf '{\n  "engine": {\n    "lanes": 2,\n  }\n}\n' >syntax.json
run_mmp sy.txt sy.err check --config syntax.json
assert_rc 2 "check with a JSON syntax error"
assert_contains "$(cat sy.err)" "syntax.json:4:" "error message (FILE:LINE)"
run_mmp mi.txt mi.err check --config "$T/missing.json"
assert_rc 2 "check with a missing config file"
assert_contains "$(cat mi.err)" "$T/missing.json" "error message"

say "a pipeline with a syntax error"
mkdir -p syn/pipelines
cp "$TEXT_LUA" syn/pipelines/
printf 'local mmpipe = require "mmpipe"\n\nreturn mmpipe.pipeline {\n  name = "broken",\n  match = { content_type = "text/*", },\n  handler = function(event) return { a = 1 end,\n}\n' >syn/pipelines/broken.lua
run_mmp syn.txt syn.err check --pipelines "$T/syn/pipelines"
assert_rc 2 "check with a Lua syntax error"
assert_match "$(cat syn.err)" "^mmpipe check: $T/syn/pipelines/broken.lua:6: .*'}' expected" "error names file.lua:LINE"

say "a pipeline that fails its checks"
mkdir -p rule/pipelines
cat >rule/pipelines/rule.lua <<'EOF'
local mmpipe = require "mmpipe"

return mmpipe.pipeline {
  name = "bad-rule",
  match = { content_typ = "text/*" },
  destination = { collection = "x" },
  handler = function(event) return nil end,
}
EOF
run_mmp rule.txt rule.err check --pipelines "$T/rule/pipelines"
assert_rc 2 "check with an unknown match rule"
assert_contains "$(cat rule.err)" "rule.lua:3: " "error names the file and the line of mmpipe.pipeline"
assert_contains "$(cat rule.err)" 'unknown rule "content_typ"' "error names the rule"

say "a pipeline naming an undefined connection"
mkdir -p conn/pipelines
sed 's/collection = "text_chunks"/connection = "nope", collection = "text_chunks"/' "$TEXT_LUA" >conn/pipelines/text.lua
grep -q 'connection = "nope"' conn/pipelines/text.lua || fail "sed did not set the connection"
run_mmp conn.txt conn.err check --pipelines "$T/conn/pipelines"
assert_rc 2 "check with destination.connection = \"nope\""
assert_eq "mmpipe check: $T/conn/pipelines/text.lua: pipeline \"text-chunks\": destination.connection \"nope\" is not defined under \"connections\" in the config" \
        "$(cat conn.err)" "error names the pipeline and the connection"
run_mmp crun.txt crun.err run --source "$T/conn" --once --pipelines "$T/conn/pipelines"
assert_rc 2 "run with destination.connection = \"nope\""
assert_contains "$(cat crun.err)" 'destination.connection "nope" is not defined' "run error"

say "\${ENV} interpolation"
cat >env.json <<'EOF'
{ "connections": { "local": { "type": "sqlite", "path": "${MMP_TEST_DB}" } } }
EOF
MMP_TEST_DB="$T/from-env.db" run_mmp env.txt env.err check --config env.json
assert_rc 0 "check with \${MMP_TEST_DB} set"
assert_contains "$(cat env.txt)" "config: env.json: ok" "check output"
mkdir envsrc
echo "Stored where the environment says." >envsrc/a.txt
MMP_TEST_DB="$T/from-env.db" run_mmp envrun.txt envrun.err run --config env.json --source "$T/envsrc" --once \
        --set dead_letters.path="$T/dl.jsonl"
assert_rc 0 "run with \${MMP_TEST_DB} set"
assert_eq "Stored where the environment says." \
        "$(sql "$T/from-env.db" "select json_extract(doc, '$.text') from text_chunks")" "document in \$MMP_TEST_DB"
(unset MMP_TEST_DB; run_mmp unset.txt unset.err check --config env.json; echo "$RC" >unset.rc)
RC="$(cat unset.rc)"
LAST_ERR=unset.err
assert_rc 2 "check with \${MMP_TEST_DB} unset"
assert_eq "mmpipe: env.json: connections.local.path: environment variable MMP_TEST_DB is not set" "$(cat unset.err)" \
        "error names the variable"

say "a refused plugin makes check exit 1"
PL="$(plugin_dir chk_plugins wrong_abi)"
run_mmp pl.txt pl.err check --plugins "$PL"
assert_rc 1 "check with a refused plugin"
assert_contains "$(cat pl.txt)" "refused: $PL/wrong_abi.so: plugin ABI 2.0" "check output"
assert_eq "check: plugins were refused (see above)" "$(tail -1 pl.txt)" "last line of check"

say "mmpipe version names the allocator, with jemalloc's options as it took them"
alloc="$("$MMP" version | grep -E '^  allocator ')"
if [[ $alloc == *"the C library's malloc"* ]]; then
        assert_contains "$alloc" "the C library's malloc (jemalloc not linked)" "allocator line"
else
        # core/main.c's malloc_conf: a mistyped option shows here as jemalloc's default.
        assert_contains "$alloc" "allocator        jemalloc " "allocator line"
        assert_contains "$alloc" "(transparent huge pages: always, arenas: 1)" "allocator line"
fi

say "the kafka section is checked too (without connecting)"
if "$MMP" version | grep -Eq "kafka source +yes"; then
        echo '{"source": {"type": "kafka"}, "kafka": {"brokers": "127.0.0.1:1", "topics": ["t"], "pause_after": 5}}' >k1.json
        run_mmp k1.txt k1.err check --config k1.json
        assert_rc 2 "check with a misspelt kafka key"
        assert_contains "$(cat k1.err)" 'unknown key "kafka.pause_after"' "error message"
        echo '{"source": {"type": "kafka"}, "kafka": {"brokers": "127.0.0.1:1", "topics": ["t"], "pause_after_ms": -1}}' >k2.json
        run_mmp k2.txt k2.err check --config k2.json
        assert_rc 2 "check with kafka.pause_after_ms = -1"
        assert_eq "mmpipe check: kafka.pause_after_ms: expected an integer >= 0" "$(cat k2.err)" "error message"
        echo '{"source": {"type": "kafka"}, "kafka": {"brokers": "127.0.0.1:1", "topics": ["t"],
               "consumer_properties": {"fetch.wait.max.msx": "5"}}}' >k3.json
        run_mmp k3.txt k3.err check --config k3.json
        assert_rc 2 "check with a librdkafka property that does not exist"
        assert_contains "$(cat k3.err)" 'kafka.consumer_properties.fetch.wait.max.msx: No such configuration property' \
                "error message"
        echo '{"source": {"type": "kafka"}, "kafka": {"brokers": "127.0.0.1:1", "topics": ["t"], "pause_after_ms": 0}}' >k4.json
        run_mmp k4.txt k4.err check --config k4.json
        assert_rc 0 "check with a good kafka section (no broker needed)"
        assert_eq "check: ok" "$(tail -1 k4.txt)" "last line of check"
else
        ok "kafka source not in this build: its section is not checked"
fi

say "version and help"
run_mmp v.txt v.err version
assert_rc 0 "version"
v="$(cat v.txt)"
assert_match "$(head -1 v.txt)" '^mmpipe [0-9]+\.[0-9]+\.[0-9]+ \(plugin ABI 1\.[0-9]+\)$' "first line of version"
assert_contains "$v" "features:" "version output"
assert_match "$v" "lua handlers +yes" "version output"
assert_match "$v" "sqlite sink +yes" "version output"
assert_match "$v" "jsonl sink +yes" "version output"
assert_match "$v" "kafka source +(yes|no \(not supported in this build\))" "version output"
assert_match "$v" "mongodb sink +(yes|no \(not supported in this build\))" "version output"
run_mmp u.txt u.err frobnicate
assert_rc 2 "an unknown command"
assert_contains "$(cat u.err)" 'unknown command "frobnicate"' "error message"
run_mmp n.txt n.err
assert_rc 2 "no command"
assert_contains "$(cat n.txt)$(cat n.err)" "usage: mmpipe <command>" "usage"
for cmd in check run version; do
        run_mmp h.txt h.err "$cmd" --help
        assert_rc 0 "$cmd --help"
        assert_contains "$(cat h.txt)" "usage: mmpipe $cmd" "$cmd --help"
done

finish
