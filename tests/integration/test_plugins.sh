#!/usr/bin/env bash
# `mmpipe plugins`: good plugins with their operations, each broken file
# refused with its reason (exit 1); the default folder (text, exit 0); and
# processing still works with broken plugins beside the text plugin.
. "$(dirname "$0")/lib.sh"

TP="$MMP_TEST_PLUGIN_DIR"

say "the test plugin folder: slow and five broken files"
run_mmp out.txt err.txt plugins --plugins "$TP"
assert_rc 1 "plugins --plugins (with refused files)"
out="$(cat out.txt)"
assert_contains "$out" "plugin folder: $TP" "plugins output"
assert_contains "$out" "slow 0.0.1  test operations: sleep, echo, fail" "plugins output"
assert_eq "mmpipe.tools.slow.echo
mmpipe.tools.slow.fail
mmpipe.tools.slow.sleep" "$(grep -o 'mmpipe\.tools\.slow\.[a-z]*' out.txt | sort)" "operations of slow"
assert_eq 5 "$(grep -c '^refused: ' out.txt)" "refused lines"
assert_contains "$out" "refused: $TP/wrong_abi.so: plugin ABI 2.0, this engine speaks ABI 1.x" "refusal of wrong_abi"
assert_contains "$out" "refused: $TP/no_entry.so: no entry symbol mmp_plugin_entry()" "refusal of no_entry"
assert_contains "$out" "refused: $TP/init_fails.so: init failed: model file /nonexistent/model.bin is missing" \
        "refusal of init_fails"
assert_contains "$out" "refused: $TP/bad_name.so: invalid plugin name \"Bad Name\" (expected [a-z][a-z0-9_]*)" \
        "refusal of bad_name"
assert_contains "$out" "refused: $TP/not_elf.so: not a loadable shared object" "refusal of not_elf"
# The warnings on stderr name the files too.
assert_eq 5 "$(grep -c 'refused' err.txt)" "refusal warnings on stderr"

say "the default plugin folder"
run_mmp def.txt def.err plugins
assert_rc 0 "plugins (default folder)"
assert_contains "$(cat def.txt)" "text 1.0.0" "default plugins"
assert_eq "mmpipe.tools.text.chunk
mmpipe.tools.text.extract
mmpipe.tools.text.metadata" "$(grep -o 'mmpipe\.tools\.text\.[a-z]*' def.txt | sort)" "operations of text"
assert_eq 0 "$(grep -c '^refused' def.txt)" "refused lines in the default folder"
assert_contains "$(cat def.txt)" "content types: text/*" "text plugin content types"

say "plugins --help, and a folder that does not exist"
run_mmp h.txt h.err plugins --help
assert_rc 0 "plugins --help"
assert_contains "$(cat h.txt)" "usage: mmpipe plugins" "plugins --help"
run_mmp nd.txt nd.err plugins --plugins "$T/no-such-dir"
assert_rc 2 "plugins with a missing folder"
assert_contains "$(cat nd.err)" "$T/no-such-dir" "error for a missing plugin folder"

say "text and broken plugins in one folder: the rest still works"
PL="$(plugin_dir mixed wrong_abi no_entry init_fails bad_name slow)"
cp "$TP/not_elf.so" "$PL/"
echo "Plugins that fail to load must not stop the text plugin. Second sentence." >doc.txt
run_mmp p.jsonl p.err process --plugins "$PL" doc.txt
assert_rc 0 "process with broken plugins beside text"
assert_eq "Plugins that fail to load must not stop the text plugin. Second sentence." \
        "$(json p.jsonl "print(*[d['text'] for d in docs], sep='\n')")" "document text"
assert_eq '{"text": "1.0.0", "embed": "1.0.0"}' "$(json p.jsonl "print(json.dumps(docs[0]['_lineage']['plugins']))")" \
        "lineage plugins (only the ones the handler called)"
assert_eq 5 "$(grep -c 'refused' p.err)" "refusal warnings during process"
run_mmp m.txt m.err plugins --plugins "$PL"
assert_rc 1 "plugins on the mixed folder"
assert_eq "embed slow text" "$(grep -E '^[a-z_]+ [0-9]' m.txt | cut -d' ' -f1 | sort | tr '\n' ' ' | sed 's/ $//')" \
        "plugins loaded from the mixed folder"

finish
