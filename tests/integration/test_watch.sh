#!/usr/bin/env bash
# `mmpipe run --watch`: files moved in or written in place are processed
# while the engine runs; SIGTERM drains and exits 0 with a summary.
. "$(dirname "$0")/lib.sh"

DB="$T/watch.db"
mkdir inbox staging
"$MMP" run --source "$T/inbox" --watch --set connections.local.path="$DB" \
        --set dead_letters.path="$T/dl.jsonl" >run.out 2>run.err &
PID=$!
BG_PIDS="$PID"
wait_for 30 "the watcher to start (\"watching for new ones\" on stderr)" grep -q "watching for new ones" run.err
ok "the watcher started"

say "drop three files in"
# 1: written elsewhere, then moved in (rename: IN_MOVED_TO).
make_text staging/moved.txt 1500 watch-1
mv staging/moved.txt inbox/moved.txt
# 2: written under a hidden temporary name inside the folder, then renamed.
make_text inbox/.partial.tmp 900 watch-2
mv inbox/.partial.tmp inbox/renamed.md
# 3: written in place (IN_CLOSE_WRITE).
echo "Written in place. The watcher sees it when the file is closed." >inbox/inplace.txt

keys() { sql "$DB" "select distinct key from text_chunks order by key" 2>/dev/null | sed 's|.*/||' | tr '\n' ' '; }
all_three() { [ "$(keys)" = "inplace.txt moved.txt renamed.md " ]; }
t0=$(date +%s)
i=0
until all_three; do
        kill -0 "$PID" 2>/dev/null || fail "mmpipe exited while watching; stderr:
$(tail -20 run.err)"
        i=$((i + 1))
        [ $i -ge 300 ] && fail "after 30 s SQLite has documents for [$(keys)], expected inplace.txt moved.txt renamed.md; stderr:
$(tail -20 run.err)"
        sleep 0.1
done
ok "documents for all three files after $(($(date +%s) - t0)) s"
assert_eq "$(sha256sum inbox/moved.txt | cut -d' ' -f1)" \
        "$(sql "$DB" "select distinct version from text_chunks where key = '$T/inbox/moved.txt'")" \
        "version of moved.txt's documents (the whole file)"
assert_eq "Written in place. The watcher sees it when the file is closed." \
        "$(sql "$DB" "select json_extract(doc, '$.text') from text_chunks where key = '$T/inbox/inplace.txt'")" \
        "text of inplace.txt"

say "SIGTERM"
kill -TERM "$PID"
t0=$(date +%s%3N)
i=0
while kill -0 "$PID" 2>/dev/null; do
        i=$((i + 1))
        [ $i -ge 100 ] && fail "mmpipe did not exit within 10 s of SIGTERM"
        sleep 0.1
done
RC=0
wait "$PID" || RC=$?
BG_PIDS=""
LAST_ERR=run.err
assert_rc 0 "run --watch after SIGTERM"
ok "exited $(($(date +%s%3N) - t0)) ms after SIGTERM"
rows="$(sql "$DB" "select count(*) from text_chunks")"
assert_contains "$(cat run.err)" "summary: 3 events, $rows documents, 0 failed" "summary after SIGTERM"
[ -s dl.jsonl ] && fail "dead letters written: $(cat dl.jsonl)"
ok "no dead letters (the hidden temporary file was not picked up)"

finish
