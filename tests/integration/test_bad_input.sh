#!/usr/bin/env bash
# Bad input in one `process` run: invalid UTF-8 is processed with
# replacement characters; an empty file, a binary file named .txt and a
# missing path fail with a reason naming the file, and the rest is
# processed. Then a file deleted between listing and reading in `run`.
. "$(dirname "$0")/lib.sh"

mkdir in
cp "$DATA_DIR/guide.md" in/good.md
echo "A good plain text file. It has two sentences." >in/good.txt
# Invalid sequences (Unicode table 3-7 cases): 12 invalid bytes, 11 U+FFFD.
python3 - <<'EOF'
import random
b = (b'Line one is fine. ' * 6 + b'Bad: \xc3\x28 and \xe2\x82x and \xc0\xaf and \xed\xa0\x80 and '
     b'\xf4\x90\x80\x80 end. ' + b'More clean text follows here. ' * 5 + b'\n')
open('in/bad_utf8.txt', 'wb').write(b)
r = random.Random(42)
data = bytes(r.randrange(256) for _ in range(4096))
open('in/binary.txt', 'wb').write(data)
open('nul_offset', 'w').write(str(data.index(0)))
EOF
: >in/empty.txt
NUL_AT="$(cat nul_offset)"

say "one process run, good and bad files"
run_mmp out.jsonl err.txt process --dead-letters "$T/dl.jsonl" \
        in/good.txt in/bad_utf8.txt in/empty.txt in/binary.txt in/vanished.txt in/good.md
assert_rc 1 "process with bad files"
assert_eq "bad_utf8.txt good.md good.txt" \
        "$(json out.jsonl "print(' '.join(sorted(set(d['_lineage']['object']['key'].rsplit('/', 1)[1] for d in docs))))")" \
        "files with documents on stdout"
assert_contains "$(cat err.txt)" "mmpipe process: 6 files, 3 documents, 3 failed, 0 matched no pipeline" "summary"

# Invalid UTF-8: replacement per maximal subpart (as Python's errors="replace").
res="$(json out.jsonl "
d = [d for d in docs if d['_lineage']['object']['key'].endswith('/bad_utf8.txt')][0]
want = open('$T/in/bad_utf8.txt', 'rb').read().decode('utf-8', 'replace').strip()
print(d['text'] == want, d['text'].count('\ufffd'), d['metadata']['invalid_bytes'])
")"
assert_eq "True 11 12" "$res" "invalid UTF-8: text equals Python's replace decoding, U+FFFD count, metadata.invalid_bytes"

# Each bad file is named on a log line with its reason.
line="$(lines_naming err.txt "$T/in/empty.txt")"
assert_contains "$line" "empty input (0 bytes)" "stderr line naming empty.txt"
line="$(lines_naming err.txt "$T/in/binary.txt")"
assert_contains "$line" "binary content: NUL byte at offset $NUL_AT" "stderr line naming binary.txt"
line="$(lines_naming err.txt "$T/in/vanished.txt")"
assert_contains "$line" "file vanished before it was read (No such file or directory)" \
        "stderr line naming vanished.txt"
assert_eq "" "$(lines_naming err.txt good.txt)$(lines_naming err.txt bad_utf8.txt)" "stderr lines naming the good files"

# The same failures as dead letters.
res="$(json dl.jsonl "
for d in sorted(docs, key=lambda d: d['event']['path']):
    print(d['event']['path'].rsplit('/', 1)[1], d['stage'], d['error_class'], d['pipeline'], d['retriable'])
")"
assert_eq "binary.txt handle BAD_INPUT text-chunks False
empty.txt handle BAD_INPUT text-chunks False
vanished.txt fetch NOT_FOUND None False" "$res" "dead letters: file, stage, error class, pipeline, retriable"

say "a file deleted between listing and reading (run --once)"
# max_in_flight=1: the next file is read only when the slow one is done,
# so the test deletes it after the listing and before the read.
P="$(pipeline_dir del text slow_file.lua)"
PL="$(plugin_dir del_plugins slow)"
mkdir src
echo "This file is slow to handle." >src/a.slow
echo "This file is deleted before it is read." >src/b_gone.txt
echo "This file stays and is processed." >src/c.txt
timeout -k 5 60 "$MMP" run --source "$T/src" --once --pipelines "$P" --plugins "$PL" \
        --set engine.max_in_flight=1 --set connections.local.path="$T/del.db" \
        --set dead_letters.path="$T/del-dl.jsonl" >run.out 2>run.err &
pid=$!
BG_PIDS="$pid"
wait_for 30 "the source listing on stderr" grep -q "src: 3 files" run.err
rm src/b_gone.txt
RC=0
wait "$pid" || RC=$?
BG_PIDS=""
LAST_ERR=run.err
assert_rc 1 "run with a file deleted after listing"
line="$(lines_naming run.err "$T/src/b_gone.txt")"
assert_contains "$line" "file vanished before it was read" "stderr line naming b_gone.txt"
assert_contains "$(cat run.err)" "summary: 3 events," "run summary"
assert_contains "$(cat run.err)" ", 1 failed" "run summary"
assert_eq "a.slow" "$(sql del.db "select key from slow_files" | sed 's|.*/||')" "slow pipeline's document"
assert_eq "a.slow c.txt" "$(sql del.db "select distinct key from text_chunks order by key" | sed 's|.*/||' | tr '\n' ' ' | sed 's/ $//')" \
        "text documents of the files that were there"
assert_eq "fetch NOT_FOUND b_gone.txt" \
        "$(json del-dl.jsonl "print(*[(d['stage'] + ' ' + d['error_class'] + ' ' + d['event']['path'].rsplit('/', 1)[1]) for d in docs], sep='\n')")" \
        "dead letter of the deleted file"

finish
