#!/usr/bin/env bash
# `mmpipe run --source DIR --once` into SQLite: counts agree, a second run
# is idempotent, a changed file replaces its old version's documents and
# leaves the others alone, progress goes to stderr.
. "$(dirname "$0")/lib.sh"

DB="$T/out.db"
mkdir src
for i in $(seq -w 1 20); do
        make_text "src/doc$i.txt" $((400 + 150 * 10#$i)) "seed-$i"
done
run_once() { # out err
        run_mmp "$1" "$2" run --source "$T/src" --once --set connections.local.path="$DB" \
                --set dead_letters.path="$T/dl.jsonl"
}
ids() { sql "$DB" "select _id from text_chunks order by _id"; }
summary_docs() { sed -n 's/^summary: [0-9]* events, \([0-9]*\) documents,.*/\1/p' "$1"; }

say "first run"
run_once r1.out r1.err
assert_rc 0 "first run"
assert_contains "$(cat r1.err)" "summary: 20 events, " "summary line"
assert_contains "$(cat r1.err)" ", 0 failed (dead letters: $T/dl.jsonl), 0 matched no pipeline" "summary line"
docs1="$(summary_docs r1.err)"
[ -n "$docs1" ] && [ "$docs1" -gt 20 ] || fail "expected more than 20 documents in the summary, got [$docs1]"
ok "summary reports $docs1 documents"
assert_eq "$docs1" "$(sql "$DB" "select count(*) from text_chunks")" "rows in text_chunks"
assert_eq 20 "$(sql "$DB" "select count(distinct key) from text_chunks")" "distinct keys"
assert_eq 0 "$(sql "$DB" "select count(*) from text_chunks where length(_id) != 24 or _id glob '*[^0-9a-f]*'")" \
        "rows whose _id is not 24 hex"
assert_eq 0 "$(sql "$DB" "select count(*) from text_chunks where json_extract(doc, '$._id') != _id")" \
        "rows whose doc._id differs from the _id column"
assert_eq "text-chunks" "$(sql "$DB" "select distinct pipeline from text_chunks")" "pipeline column"
assert_contains "$(cat r1.err)" "progress: 20/20 files done" "progress on stderr"
assert_eq 0 "$(wc -c <r1.out)" "bytes on stdout"
[ -s dl.jsonl ] && fail "dead letters written on a clean run: $(cat dl.jsonl)"
ok "no dead letters"
ids1="$(ids)"

say "second run: idempotent"
run_once r2.out r2.err
assert_rc 0 "second run"
assert_eq "$docs1" "$(summary_docs r2.err)" "documents in the second summary"
assert_eq "$docs1" "$(sql "$DB" "select count(*) from text_chunks")" "rows after the second run"
[ "$ids1" = "$(ids)" ] || fail "the set of _ids changed on the second run"
ok "same set of $docs1 _ids"

say "third run: one file changed"
KEY="$T/src/doc07.txt"
old_version="$(sql "$DB" "select distinct version from text_chunks where key = '$KEY'")"
old_ids="$(sql "$DB" "select _id from text_chunks where key = '$KEY' order by _id")"
others_before="$(sql "$DB" "select _id || ' ' || version from text_chunks where key != '$KEY' order by _id")"
make_text src/doc07.txt 1800 "changed-seed"
new_version="$(sha256sum src/doc07.txt | cut -d' ' -f1)"
assert_ne "$old_version" "$new_version" "content hash of the changed file"
run_once r3.out r3.err
assert_rc 0 "third run"
assert_eq 0 "$(sql "$DB" "select count(*) from text_chunks where key = '$KEY' and version = '$old_version'")" \
        "rows of the old version of doc07.txt"
assert_eq "$new_version" "$(sql "$DB" "select distinct version from text_chunks where key = '$KEY'")" \
        "version of doc07.txt's rows"
new_count="$(sql "$DB" "select count(*) from text_chunks where key = '$KEY'")"
assert_eq "$new_count" "$(sql "$DB" "select distinct json_extract(doc, '$._lineage.count') from text_chunks where key = '$KEY'")" \
        "rows of doc07.txt = the lineage count of its documents"
res="$(python3 -c "
a = set('''$old_ids'''.split()); b = set('''$(sql "$DB" "select _id from text_chunks where key = '$KEY'")'''.split())
print(len(a & b))")"
assert_eq 0 "$res" "old _ids of doc07.txt still present"
[ "$others_before" = "$(sql "$DB" "select _id || ' ' || version from text_chunks where key != '$KEY' order by _id")" ] ||
        fail "the other files' documents changed"
ok "the other 19 files' documents are untouched (same _ids and versions)"
assert_eq "$(($(summary_docs r3.err)))" "$(sql "$DB" "select count(*) from text_chunks")" \
        "rows after the third run = documents in its summary"
head_words="$(head -c 40 src/doc07.txt)"
assert_contains "$(sql "$DB" "select json_extract(doc, '$.text') from text_chunks where key = '$KEY' and json_extract(doc, '$.metadata.chunk_index') = 0")" \
        "$head_words" "first chunk of the new doc07.txt"

say "a source folder that does not exist"
run_mmp nd.out nd.err run --source "$T/no-such-folder" --once --set connections.local.path="$T/nd.db" \
        --set dead_letters.path="$T/nd-dl.jsonl"
assert_rc 2 "run --source on a missing folder"
assert_contains "$(cat nd.err)" "mmpipe run: cannot read folder $T/no-such-folder: No such file or directory" "error message"
run_mmp ex.out ex.err run --source "$T/src" --once stray-argument
assert_rc 2 "run with a stray argument"
assert_contains "$(cat ex.err)" 'unexpected argument "stray-argument"' "error message"

finish
