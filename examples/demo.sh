#!/usr/bin/env bash
# The demo (README): on a fresh Debian 12 machine, installs what is missing,
# builds mmpipe, runs it once over the sample files in examples/media with the
# embedded defaults (folder in, SQLite out, no servers), then shows what was
# stored, what failed and why, and how to look further.
#
#   bash examples/demo.sh
#   DEMO_OUT=/tmp/mmpipe-demo bash examples/demo.sh   # write the results elsewhere
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=tests/deps.sh
source tests/deps.sh

MEDIA=examples/media
OUT=${DEMO_OUT:-./demo-output}
DB=$OUT/mmpipe.db
DEAD=$OUT/dead-letters.jsonl
MMPIPE=build/mmpipe
# examples/media/broken/ holds the one file that is meant to fail.
EXPECTED_FAILURES=1

step() { printf '\n== %s\n' "$*"; }
die() {
        echo "demo: FAILED: $*" >&2
        exit 1
}

# A shell string as a JSON string, so --set takes any path literally (a path
# like "2024" would otherwise be read as a JSON number).
json_str() {
        local s=$1
        s=${s//\\/\\\\}
        s=${s//\"/\\\"}
        printf '"%s"' "$s"
}

sql() { sqlite3 -batch "$DB" "$@"; }

build_engine() {
        local log=$OUT/build.log
        step "building mmpipe in build/ (compiler output: $log)"
        if ! { cmake -S "$ROOT" -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
                cmake --build build -j"$(nproc 2>/dev/null || echo 2)"; } >"$log" 2>&1; then
                tail -n 40 "$log" >&2
                die "the build failed; the last lines of $log are above"
        fi
        "$MMPIPE" version | head -n 1
}

# Fresh output each time, so the counts below describe this run only.
reset_output() {
        mkdir -p "$OUT"
        rm -f "$DB" "$DB-wal" "$DB-shm" "$DEAD" "$OUT/run.log"
}

# Runs the engine once over the sample folder. Its progress and summary lines
# (stderr) are shown as they come and kept in run.log to check them afterwards.
# Exit status 1 means "some events failed", which is what the broken sample is
# for; anything else is a real failure.
run_engine() {
        local rc=0 cmd
        cmd=("$MMPIPE" run --source "$MEDIA" --once
                --set "connections.local.path=$(json_str "$DB")"
                --set "dead_letters.path=$(json_str "$DEAD")")
        step "running the engine on the embedded defaults (folder in, SQLite out, no servers):"
        echo "   $(printf '%q ' "${cmd[@]}")"
        echo "   (examples/media/broken/binary-named.txt is binary named .txt: it is meant to fail)"
        "${cmd[@]}" 2>&1 | tee "$OUT/run.log" || rc=$?
        case $rc in
        0 | 1) ;;
        *) die "mmpipe run exited with status $rc (2 = bad configuration or arguments; see above)" ;;
        esac
}

# Sets EVENTS DOCUMENTS FAILED UNMATCHED from the engine's summary line:
# "summary: E events, D documents, F failed (dead letters: P), U matched no pipeline, ..."
read_summary() {
        local line
        line=$(grep -E '^summary: ' "$OUT/run.log" | tail -n 1 || true)
        [[ -n $line ]] || die "mmpipe printed no summary line (see $OUT/run.log)"
        read -r EVENTS DOCUMENTS FAILED UNMATCHED < <(sed -E \
                's/^summary: ([0-9]+) events, ([0-9]+) documents, ([0-9]+) failed .*, ([0-9]+) matched no pipeline.*/\1 \2 \3 \4/' <<<"$line")
        [[ $EVENTS =~ ^[0-9]+$ && $UNMATCHED =~ ^[0-9]+$ ]] || die "cannot read the summary line: $line"
}

# Every table with a doc column is a collection (docs/destinations.md).
collections() {
        sql "select m.name from sqlite_master m where m.type = 'table'
             and exists (select 1 from pragma_table_info(m.name) where name = 'doc') order by m.name"
}

show_results() {
        local files c n stored=0
        files=$(find "$MEDIA" -type f | wc -l)

        step "documents per collection in $DB"
        [[ -f $DB ]] || die "no database was written at $DB"
        for c in $(collections); do
                n=$(sql "select count(*) from \"$c\"")
                printf '  %-20s %s\n' "$c" "$n"
                stored=$((stored + n))
        done
        [[ $stored -gt 0 ]] || die "no documents were stored"

        step "documents per file (from each document's lineage)"
        sql "select '  ' || replace(json_extract(doc, '$._lineage.object.key'), '$ROOT/', '') || ': ' || count(*)
             from text_chunks group by json_extract(doc, '$._lineage.object.key') order by 1"

        step "two example rows (the first chunk of two files): _id, first 80 characters of the text"
        sql -separator '  ' "select '  ' || _id, replace(substr(json_extract(doc, '$.text'), 1, 80), char(10), ' ')
                             from text_chunks where json_extract(doc, '$.metadata.chunk_index') = 0
                             order by key limit 2"

        step "dead letters ($DEAD)"
        # examples/media/broken/binary-named.txt is random bytes with a .txt
        # name: the text pipeline takes it by its name and refuses it as binary.
        python3 - "$DEAD" "$ROOT/" <<'EOF'
import json, sys
path, root = sys.argv[1], sys.argv[2]
try:
    lines = [json.loads(l) for l in open(path) if l.strip()]
except FileNotFoundError:
    lines = []
for d in lines:
    src = (d.get("source") or {}).get("path") or json.dumps(d.get("event"))
    print(f"  {src.replace(root, '')}: stage {d['stage']}, {d['error_class']}: {d['message'].replace(root, '')}")
if not lines:
    print("  (none)")
EOF

        step "checks"
        [[ $EVENTS -eq $files ]] || die "the engine saw $EVENTS events but $MEDIA holds $files files"
        echo "  ok: $files sample files -> $EVENTS events"
        [[ $DOCUMENTS -eq $stored ]] ||
                die "the summary reports $DOCUMENTS documents but SQLite holds $stored rows"
        echo "  ok: the summary's $DOCUMENTS documents = the $stored rows in SQLite"
        n=$(grep -c . "$DEAD" 2>/dev/null || true)
        [[ $FAILED -eq ${n:-0} ]] || die "the summary reports $FAILED failed events but $DEAD holds ${n:-0} dead letters"
        [[ $FAILED -eq $EXPECTED_FAILURES ]] ||
                die "expected $EXPECTED_FAILURES failed event (broken/binary-named.txt), got $FAILED (see the dead letters above)"
        grep -q 'broken/binary-named.txt' "$DEAD" || die "the dead letter is not for broken/binary-named.txt"
        echo "  ok: $FAILED failed event, the deliberately broken file, is in the dead letters with its reason"
        # chime.wav is audio, which no pipeline handles yet: counted, not an error.
        echo "  ok: $UNMATCHED file(s) matched no pipeline (chime.wav: there is no audio pipeline yet); counted, not failed"
}

# Every chunk was embedded by the local text model: find the nearest ones
# to a question, without any cloud service (lexical similarity, docs/models.md).
show_search() {
        local query="how do tide pools change at low water"
        step "search: the chunks nearest to \"$query\""
        "$MMPIPE" search --set connections.local.path="$DB" --text "$query" --top 3 |
                python3 -c 'import json, sys
for line in sys.stdin:
    d = json.loads(line)
    print("  %.3f  %s: %s" % (d["score"], d["key"].rsplit("/", 1)[-1], " ".join(d.get("text", "").split())[:90]))' ||
                die "mmpipe search failed"
}

show_next_steps() {
        # Quoted for the shell, so the commands paste as they are whatever DEMO_OUT is.
        local db dead
        db=$(printf '%q' "$DB")
        dead=$(printf '%q' "$DEAD")
        step "look further"
        cat <<EOF
  # every document of one file, in order
  sqlite3 $db "select json_extract(doc,'\$.metadata.chunk_index'), json_extract(doc,'\$.text') from text_chunks where json_extract(doc,'\$._lineage.object.key') like '%ferry%' order by 1"
  # a document's lineage: source file, version (content SHA-256), pipeline version, plugins, times
  sqlite3 $db "select json_extract(doc,'\$._lineage') from text_chunks limit 1" | python3 -m json.tool
  # documents per file
  sqlite3 $db "select json_extract(doc,'\$._lineage.object.key'), count(*) from text_chunks group by 1"
  # the dead letters, one JSON object per failed event (stage, error, traceback, original event)
  python3 -m json.tool --json-lines $dead
  # the documents nearest to a question (embeddings made by the local text model)
  $MMPIPE search --set connections.local.path=$db --text "sourdough starter feeding"
  # one file's documents as JSON lines on stdout, without storing them
  $MMPIPE process $MEDIA/rain-gauge-guide.md
  # keep watching a folder, as a daemon would (Ctrl-C drains and stops)
  $MMPIPE run --source ./inbox --watch
EOF
}

main() {
        local start=$SECONDS
        mkdir -p "$OUT"
        step "checking system packages"
        # shellcheck disable=SC2119 # no extra packages: the demo needs the standard set
        mmp_deps_ensure
        build_engine
        reset_output
        run_engine
        read_summary
        show_results
        show_search
        show_next_steps
        printf '\ndemo: done in %ds; documents in %s, dead letters in %s\n' $((SECONDS - start)) "$DB" "$DEAD"
}

main "$@"
