#!/usr/bin/env bash
# mmpipe search (issue 5): after the default pipelines embedded a folder's
# chunks with the local text model, the nearest documents to a query are the
# lexically similar ones, best first; --file works as a query; errors are clear.
TEST_NAME=test_search
. "$(dirname "$0")/lib.sh"

mkdir -p in
cat >in/tides.txt <<'TXT'
Tide pools at low water hold anemones, crabs and small fish trapped by the falling sea.
TXT
cat >in/bread.txt <<'TXT'
A sourdough starter needs flour, water and patience; feed it daily and keep it warm.
TXT
cat >in/rain.txt <<'TXT'
A rain gauge measures rainfall in millimetres; empty it every morning at nine.
TXT
run_mmp r.out r.err run --source in --once --set connections.local.path="$T/s.db" --set dead_letters.path="$T/dl.jsonl"
assert_rc 0 "run on three files"

run_mmp q.out q.err search --set connections.local.path="$T/s.db" --text "crabs in the tide pools" --top 3
assert_rc 0 "search --text"
assert_eq 3 "$(wc -l <q.out)" "results"
assert_eq "$T/in/tides.txt" "$(json q.out "print(docs[0]['key'])")" "the best match"
json q.out "import sys; s = [d['score'] for d in docs]; sys.exit(0 if s == sorted(s, reverse=True) and s[0] > s[1] else 1)" ||
        fail "scores are not best first: $(cat q.out)"
ok "scores best first"

echo "How much flour and water should a starter get?" >query.txt
run_mmp f.out f.err search --set connections.local.path="$T/s.db" --file query.txt --top 1
assert_rc 0 "search --file"
assert_eq "$T/in/bread.txt" "$(json f.out "print(docs[0]['key'])")" "the best match for the file"

run_mmp e.out e.err search --set connections.local.path="$T/s.db"
assert_rc 2 "search without a query"
assert_contains "$(cat e.err)" "give exactly one of --text or --file" "usage error"
run_mmp t.out t.err search --set connections.local.path="$T/s.db" --text x --top many
assert_rc 2 "search --top many"
assert_contains "$(cat t.err)" "--top expects a number from 1 to 10000, got \"many\"" "bad --top"
run_mmp m.out m.err search --set connections.local.path="$T/s.db" --text x --model nope
assert_rc 1 "search with an unknown model"
assert_contains "$(cat m.err)" "mmpipe.embed('nope'): no such model" "unknown model error"

finish
