#!/usr/bin/env bash
# `mmpipe process`: documents on stdout with deterministic _ids and full
# lineage, chunks that cover the file, markup stripped, --output, and the
# usage errors.
. "$(dirname "$0")/lib.sh"

SRC="$DATA_DIR/lighthouses.txt"
TEXT_LUA="$MMP_SOURCE_DIR/scripts/pipelines/text.lua"
cp "$SRC" "$T/doc.txt"

say "process a 5 KB text file"
run_mmp out1.jsonl err1.txt process doc.txt
assert_rc 0 "process doc.txt"
assert_contains "$(cat err1.txt)" "mmpipe process: 1 files," "summary on stderr"

# Every document: _id, lineage, text plugin version; the _id is exactly
# the documented derivation (pipeline, bucket, key, version, index).
PIPE_VERSION="$(sha256sum "$TEXT_LUA" | cut -c1-12)"
FILE_SHA="$(sha256sum doc.txt | cut -d' ' -f1)"
res="$(json out1.jsonl "
import hashlib
path, size, sha, pv = '$T/doc.txt', $(stat -c %s doc.txt), '$FILE_SHA', '$PIPE_VERSION'
def field(s):
    b = s.encode(); return len(b).to_bytes(8, 'big') + b
def docid(pipeline, bucket, key, version, i):
    return hashlib.sha256(field(pipeline) + field(bucket) + field(key) + field(version) + i.to_bytes(8, 'big')).hexdigest()[:24]
errs = []
docs.sort(key=lambda d: d['metadata']['chunk_index'])
n = len(docs)
for i, d in enumerate(docs):
    L = d.get('_lineage', {}); o = L.get('object', {})
    want = {
      '_id': docid('text-chunks', '', path, sha, i),
      'pipeline': 'text-chunks', 'pipeline_version': pv,
      'source.path': path, 'source.type': 'file',
      'object.key': path, 'object.version': sha, 'object.etag': sha, 'object.size': size,
      'object.content_type': 'text/plain', 'plugins': {'text': '1.0.0', 'embed': '1.0.0'},
      'index': i, 'count': n, 'chunk_index': i, 'metadata.type': 'text_processing',
      'file_url': 'file://' + path,
    }
    got = {
      '_id': d.get('_id'), 'pipeline': L.get('pipeline'), 'pipeline_version': L.get('pipeline_version'),
      'source.path': (L.get('source') or {}).get('path'), 'source.type': (L.get('source') or {}).get('type'),
      'object.key': o.get('key'), 'object.version': o.get('version'), 'object.etag': o.get('etag'),
      'object.size': o.get('size'), 'object.content_type': o.get('content_type'),
      'plugins': L.get('plugins'), 'index': L.get('index'), 'count': L.get('count'),
      'chunk_index': d['metadata'].get('chunk_index'), 'metadata.type': d['metadata'].get('type'),
      'file_url': d.get('file_url'),
    }
    for k in want:
        if want[k] != got[k]:
            errs.append('doc %d: %s: expected %r, got %r' % (i, k, want[k], got[k]))
    if not re.fullmatch('[0-9a-f]{24}', d.get('_id', '')):
        errs.append('doc %d: _id %r is not 24 hex' % (i, d.get('_id')))
print('; '.join(errs) if errs else 'ok %d' % n)
")"
case "$res" in ok*) ok "each of ${res#ok } documents has the derived _id, lineage (pipeline, version, source.path, object key/version/etag/size/content_type) and plugins.text=1.0.0" ;; *) fail "$res" ;; esac
n_docs="${res#ok }"
[ "$n_docs" -ge 5 ] || fail "expected at least 5 chunks of a 4.9 KB text at size 1000, got $n_docs"
ok "$n_docs chunks"

# The chunks cover the file: each is the text between its offsets, at most
# 1000 characters, and every non-space character is in some chunk.
res="$(json out1.jsonl "
full = open('$T/doc.txt', encoding='utf-8').read()
docs.sort(key=lambda d: d['metadata']['chunk_index'])
covered = [False] * len(full)
errs = []
prev = -1
for d in docs:
    m = d['metadata']; s, e = m['char_start'], m['char_stop']
    if d['text'] != full[s:e]: errs.append('chunk %d is not the text at [%d,%d)' % (m['chunk_index'], s, e))
    if e - s > 1000: errs.append('chunk %d has %d characters' % (m['chunk_index'], e - s))
    if s <= prev: errs.append('chunk %d does not start after the previous one' % m['chunk_index'])
    prev = s
    for i in range(s, e): covered[i] = True
    if m['file_characters'] != len(full): errs.append('file_characters %d != %d' % (m['file_characters'], len(full)))
missing = [i for i, c in enumerate(full) if not c.isspace() and not covered[i]]
if missing: errs.append('%d non-space characters in no chunk, first at %d' % (len(missing), missing[0]))
print('; '.join(errs) or 'ok')
")"
assert_eq ok "$res" "chunks are the file's text at their offsets and cover every non-space character"

say "determinism"
run_mmp out2.jsonl err2.txt process doc.txt
assert_rc 0 "second run"
ids1="$(json out1.jsonl "print(' '.join(sorted(d['_id'] for d in docs)))")"
ids2="$(json out2.jsonl "print(' '.join(sorted(d['_id'] for d in docs)))")"
assert_eq "$ids1" "$ids2" "sorted _ids of two runs"

say "one word changed"
sed -i 's/Pharos/Faros/' doc.txt
cmp -s doc.txt "$SRC" && fail "sed did not change the copy"
run_mmp out3.jsonl err3.txt process doc.txt
assert_rc 0 "run on the changed file"
res="$(python3 -c "
a = set('''$ids1'''.split()); b = set('''$(json out3.jsonl "print(' '.join(sorted(d['_id'] for d in docs)))")'''.split())
print(len(a & b), len(b))")"
assert_eq "0 $n_docs" "$res" "ids shared with the first run, and documents of the changed file"
assert_eq "$(sha256sum doc.txt | cut -d' ' -f1)" \
        "$(json out3.jsonl "print(docs[0]['_lineage']['object']['version'])")" "new object.version"

say "Markdown and HTML lose their markup"
cp "$DATA_DIR/guide.md" "$DATA_DIR/station.html" "$T/"
run_mmp md.jsonl md.err process guide.md
assert_rc 0 "process guide.md"
got="$(json md.jsonl "print(json.dumps([d['text'] for d in docs]))")"
assert_eq '["Keeping a Light\n\nThe keeper trims the wick every evening and records the weather in the log book.\n\nDaily duties\n\nClean the lens with a soft cloth\nWind the clockwork weights\nCheck the oil supply\n\nA clean lens is a bright light.\n\nlamp: on"]' \
        "$got" "Markdown text"
assert_eq "markdown text/markdown" \
        "$(json md.jsonl "print(docs[0]['metadata']['format'], docs[0]['_lineage']['object']['content_type'])")" \
        "Markdown format and content type"
run_mmp html.jsonl html.err process station.html
assert_rc 0 "process station.html"
got="$(json html.jsonl "print(json.dumps([d['text'] for d in docs]))")"
assert_eq '["Harbor Light Station\n\nThe station was built in 1857 & automated in 1962.\n\nFirst order lens\nFog signal\n\nOpen to visitors in summer."]' \
        "$got" "HTML text (no title, script, style or comment)"
assert_eq "html text/html" \
        "$(json html.jsonl "print(docs[0]['metadata']['format'], docs[0]['_lineage']['object']['content_type'])")" \
        "HTML format and content type"

say "--output FILE"
run_mmp stdout.txt out.err process --output "$T/sub/out.jsonl" doc.txt guide.md
assert_rc 0 "process --output"
assert_eq 0 "$(wc -c <stdout.txt)" "bytes on stdout with --output"
assert_eq "$((n_docs + 1))" "$(json sub/out.jsonl "print(len(docs))")" "documents in the --output file"

say "a folder is walked recursively; a file no pipeline matches is counted, not failed"
mkdir -p tree/sub/deeper
echo "Deep file here." >tree/sub/deeper/a.txt
echo "Top file." >tree/b.txt
echo '{"not": "text"}' >tree/c.json
echo "Hidden files are skipped." >tree/.hidden.txt
run_mmp tree.jsonl tree.err process tree
assert_rc 0 "process FOLDER"
assert_eq "b.txt deeper/a.txt" \
        "$(json tree.jsonl "print(*sorted(d['_lineage']['object']['key'].split('/tree/', 1)[1].replace('sub/', '') for d in docs))")" \
        "files with documents"
assert_contains "$(cat tree.err)" "mmpipe process: 3 files, 2 documents, 0 failed, 1 matched no pipeline" "summary"
assert_contains "$(lines_naming tree.err c.json)" "no pipeline matches (content type application/json)" \
        "log line for the unmatched file"

say "usage"
run_mmp help.txt help.err process --help
assert_rc 0 "process --help"
assert_contains "$(cat help.txt)" "--pipelines" "help text"
assert_contains "$(cat help.txt)" "usage: mmpipe process" "help text"
run_mmp none.txt none.err process
assert_rc 2 "process with no files"
assert_contains "$(cat none.err)" "no files given" "stderr of process with no files"
assert_eq 0 "$(wc -c <none.txt)" "stdout bytes of process with no files"
run_mmp unk.txt unk.err process --frobnicate doc.txt
assert_rc 2 "process --frobnicate"
assert_contains "$(cat unk.err)" "unknown option --frobnicate" "stderr of an unknown option"
assert_eq 0 "$(wc -c <unk.txt)" "stdout bytes of an unknown option"
run_mmp nov.txt nov.err process doc.txt --output
assert_rc 2 "process --output without a value"
assert_contains "$(cat nov.err)" "--output needs a value" "stderr of --output without a value"

say "keys are normalised paths (./ and ../ removed, symlinks kept)"
mkdir -p sub
cp doc.txt sub/plain.txt
cd sub && run_mmp ../norm.txt ../norm.err process ../sub/./plain.txt; cd "$T"
assert_rc 0 "process ../sub/./plain.txt"
assert_eq "$T/sub/plain.txt" "$(json norm.txt "print(sorted(set(d['_lineage']['object']['key'] for d in docs))[0])")" "normalised key"

finish
