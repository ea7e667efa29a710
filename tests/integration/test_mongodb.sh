#!/usr/bin/env bash
# The MongoDB destination through the real binary (`mmpipe run --source DIR --once` with a
# mongodb connection as default_connection), against the CongoDB stand-in
# (tests/tools/mongo_server.sh; docs/testing-mongodb.md). Issue 4's must-shows:
#   1. 1,000 events: exactly the expected documents (count and _ids computed here from the
#      files, as core/util/docid.h defines them), with lineage and metadata;
#   2. the same events again: the same set, nothing added;
#   3. a new version of 100 objects: their old documents gone, the new ones present;
#   4. the database stopped for 10 s mid-run and started again: nothing lost, nothing
#      duplicated, the engine never exited;
#   5. kill -9 of the engine mid-run and a restart: nothing lost, nothing duplicated.
# Steps 1-3 also run against SQLite: both destinations must hold the same documents.
# Needs node + npm (the stand-in) and Debian's python3-pymongo for /usr/bin/python3.
. "$(dirname "$0")/lib.sh"

MPY=/usr/bin/python3
MONGO_TOOL="$MMP_SOURCE_DIR/tests/tools/mongo_server.sh"
N=1000

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        say "SKIPPED: node and npm are needed for the MongoDB stand-in (apt-get install nodejs npm)"
        exit 0
fi
"$MPY" -c 'import pymongo' 2>/dev/null ||
        fail "pymongo is needed for $MPY to read the database back (apt-get install python3-pymongo)"

on_exit() {
        local rc=$?
        bash "$MONGO_TOOL" stop "$T/mongo" >/dev/null 2>&1
        (exit $rc)
        cleanup
}
trap on_exit EXIT

say "start the MongoDB stand-in"
bash "$MONGO_TOOL" start "$T/mongo" >mongo.out 2>mongo.err || fail "mongo_server.sh start failed: $(tail -5 mongo.err)"
URI="$(sed -n 's/^uri=//p' mongo.out)"
[ -n "$URI" ] || fail "mongo_server.sh printed no uri: $(cat mongo.out)"
ok "stand-in at $URI"

# ---- the pipeline, the input, the config ----

# Two documents per event, fixed shapes; the second sets its own metadata.suite, which must win
# over the destination's. The slow variant (steps 4, 5) takes 40 ms per event on the worker
# pool (about 20 s for the run), so that there is a "mid-run" to interrupt: stopping the
# stand-in can itself take a few seconds while it works through a bulk.
pipeline() { # dir sleep-ms
        mkdir -p "$1"
        cat >"$1/mongo_test.lua" <<EOF
local mmpipe = require "mmpipe"
return mmpipe.pipeline {
  name = "mongo-test",
  match = { content_type = "text/plain" },
  destination = { collection = "results", metadata = { type = "mongo_test", suite = "issue-4" } },
  handler = function(event)
    if $2 > 0 then mmpipe.tools.slow.sleep("x", { ms = $2 }) end
    return {
      { part = "head", name = event.key, size = event.size },
      { part = "tail", etag = event.etag, tags = { "a", "b" }, metadata = { suite = "own" } },
    }
  end,
}
EOF
}
pipeline "$T/pipelines" 0
pipeline "$T/pipelines-slow" 40
PLUGINS="$(plugin_dir plugins slow)"

python3 - "$T/src" "$N" <<'EOF'
import os, random, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d)
r = random.Random(4)
for i in range(n):
    with open(os.path.join(d, "ev%04d.txt" % i), "w") as f:
        f.write("event %d: %s\n" % (i, " ".join(r.choice("alpha beta gamma delta".split()) for _ in range(20))))
EOF

config() { # file db pipelines-dir
        cat >"$1" <<EOF
{
  "engine": { "max_in_flight": 64, "workers": 2 },
  "pipelines": { "dir": "$3" },
  "plugins": { "dir": "$PLUGINS" },
  "source": { "type": "dir", "path": "$T/src" },
  "default_connection": "mongo",
  "connections": {
    "mongo": { "type": "mongodb", "uri": "$URI", "database": "$2", "timeout_ms": 2000 },
    "local": { "type": "sqlite", "path": "$T/out.db" }
  },
  "dead_letters": { "path": "$T/dl.jsonl" },
  "log": { "level": "info" }
}
EOF
}
config main.json mmp_it "$T/pipelines"
config outage.json mmp_it_outage "$T/pipelines-slow"
config kill9.json mmp_it_kill "$T/pipelines-slow"

# ---- checks (pymongo and sqlite3 from /usr/bin/python3) ----

cat >check.py <<'EOF'
"""check.py MODE ...: reads the results back.
  expect SRC                      the expected _ids, from the files (core/util/docid.h)
  verify URI DB SRC               the collection holds exactly the expected documents
  count URI DB                    number of documents
  dump-mongo URI DB / dump-sqlite FILE   every document, normalised, one per line, by _id
"""
import hashlib, json, os, sqlite3, sys

PIPELINE = "mongo-test"

def field(s):
    b = s.encode()
    return len(b).to_bytes(8, "big") + b

def docid(pipeline, bucket, key, version, i):
    h = hashlib.sha256(field(pipeline) + field(bucket) + field(key) + field(version) + i.to_bytes(8, "big"))
    return h.hexdigest()[:24]

def expected(src):
    out = {}
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        with open(path, "rb") as f:
            version = hashlib.sha256(f.read()).hexdigest()
        for i in range(2):
            out[docid(PIPELINE, "", path, version, i)] = (path, version, i)
    return out

def coll(uri, db):
    import pymongo
    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)[db]["results"]

def normalise(d):
    d = dict(d)
    d["_id"] = str(d["_id"])
    # The stand-in hands integers back as doubles after a restart (it persists JSON).
    return json.dumps(d, sort_keys=True, default=str).replace(".0,", ",").replace(".0}", "}")

def verify(uri, db, src):
    want = expected(src)
    docs = list(coll(uri, db).find())
    errs = []
    ids = [str(d["_id"]) for d in docs]
    if len(ids) != len(set(ids)):
        errs.append("duplicate _ids: %d documents, %d distinct" % (len(ids), len(set(ids))))
    missing = set(want) - set(ids)
    extra = set(ids) - set(want)
    if missing:
        errs.append("%d expected documents missing, e.g. %s" % (len(missing), sorted(missing)[:3]))
    if extra:
        errs.append("%d unexpected documents, e.g. %s" % (len(extra), sorted(extra)[:3]))
    for d in docs:
        if str(d["_id"]) not in want:
            continue
        path, version, i = want[str(d["_id"])]
        lin = d.get("_lineage", {})
        obj = lin.get("object", {})
        checks = {
            "_lineage.pipeline": (lin.get("pipeline"), PIPELINE),
            "_lineage.object.key": (obj.get("key"), path),
            "_lineage.object.bucket": (obj.get("bucket"), ""),
            "_lineage.object.version": (obj.get("version"), version),
            "_lineage.index": (lin.get("index"), i),
            "_lineage.count": (lin.get("count"), 2),
            "_lineage.source.path": (lin.get("source", {}).get("path"), path),
            "part": (d.get("part"), ["head", "tail"][i]),
            "metadata.type": (d.get("metadata", {}).get("type"), "mongo_test"),
            "metadata.suite": (d.get("metadata", {}).get("suite"), ["issue-4", "own"][i]),
        }
        for k, (got, exp) in checks.items():
            if got != exp:
                errs.append("%s: %s = %r, expected %r" % (d["_id"], k, got, exp))
                break
        if len(errs) > 10:
            break
    if errs:
        sys.exit("\n".join(errs[:10]))
    print("ok %d documents" % len(docs))

mode = sys.argv[1]
if mode == "expect":
    print("\n".join(sorted(expected(sys.argv[2]))))
elif mode == "verify":
    verify(*sys.argv[2:5])
elif mode == "count":
    print(coll(sys.argv[2], sys.argv[3]).count_documents({}))
elif mode == "dump-mongo":
    for d in sorted(coll(sys.argv[2], sys.argv[3]).find(), key=lambda d: str(d["_id"])):
        print(normalise(d))
elif mode == "dump-sqlite":
    db = sqlite3.connect(sys.argv[2])
    for (doc,) in db.execute("select doc from results order by _id"):
        print(normalise(json.loads(doc)))
EOF
check() { "$MPY" "$T/check.py" "$@"; }
mcount() { check count "$URI" "$1" 2>/dev/null; }
summary_of() { grep '^summary:' "$1" || true; }
no_dead_letters() {
        [ -s "$T/dl.jsonl" ] && fail "dead letters written: $(head -3 "$T/dl.jsonl")"
        ok "no dead letters"
}

run_main() { # out err [--set ...]
        local out=$1 err=$2
        shift 2
        run_mmp "$out" "$err" run --config "$T/main.json" --once "$@"
}

# ---- 1. 1,000 events ----

say "1. $N events into MongoDB"
run_main r1.out r1.err
assert_rc 0 "first run"
assert_contains "$(summary_of r1.err)" "summary: $N events, $((2 * N)) documents, 0 failed" "summary"
res="$(check verify "$URI" mmp_it "$T/src")" || fail "first run: $res"
ok "exactly the $((2 * N)) expected documents (_ids from pipeline, key, version, index), lineage and metadata"
no_dead_letters
check dump-mongo "$URI" mmp_it >m1.txt

say "   the same scenario into SQLite"
run_main s1.out s1.err --set default_connection=local
assert_rc 0 "first SQLite run"
check dump-sqlite "$T/out.db" >s1.txt
cmp -s m1.txt s1.txt || fail "MongoDB and SQLite hold different documents: $(diff m1.txt s1.txt | head -5)"
ok "MongoDB and SQLite hold the same $((2 * N)) documents, field for field"

# ---- 2. the same events again ----

say "2. the same $N events again"
run_main r2.out r2.err
assert_rc 0 "second run"
assert_contains "$(summary_of r2.err)" "summary: $N events, $((2 * N)) documents, 0 failed" "summary"
assert_eq "$((2 * N))" "$(mcount mmp_it)" "documents after the second run"
check dump-mongo "$URI" mmp_it >m2.txt
cmp -s m1.txt m2.txt || fail "the documents changed on the second run: $(diff m1.txt m2.txt | head -5)"
ok "the same $((2 * N)) documents, byte for byte"

# ---- 3. a new version of 100 objects ----

say "3. a new version of 100 objects"
check expect "$T/src" >ids-before.txt
for i in $(seq 0 10 999); do
        printf 'event %d, version 2\n' "$i" >"$T/src/ev$(printf %04d "$i").txt"
done
check expect "$T/src" >ids-after.txt
gone="$(comm -23 ids-before.txt ids-after.txt | wc -l)"
assert_eq 200 "$gone" "_ids of the old versions (expected to go)"
run_main r3.out r3.err
assert_rc 0 "third run"
res="$(check verify "$URI" mmp_it "$T/src")" || fail "third run: $res"
ok "exactly the expected documents: the 100 objects' new versions, the 900 others unchanged"
left="$("$MPY" - "$URI" <<EOF
import pymongo, bson
old = [bson.ObjectId(l.strip()) for l in open("$T/ids-before.txt") if l.strip() not in set(open("$T/ids-after.txt").read().split())]
print(pymongo.MongoClient("$URI")["mmp_it"]["results"].count_documents({"_id": {"\$in": old}}))
EOF
)"
assert_eq 0 "$left" "documents of the old versions left"
check dump-mongo "$URI" mmp_it >m3.txt
assert_eq 1800 "$(comm -12 m1.txt m3.txt | wc -l | tr -d ' ')" "documents of the 900 unchanged objects identical to run 1's"
run_main s3.out s3.err --set default_connection=local
assert_rc 0 "third SQLite run"
check dump-sqlite "$T/out.db" >s3.txt
cmp -s m3.txt s3.txt || fail "MongoDB and SQLite differ after the new versions: $(diff m3.txt s3.txt | head -5)"
ok "MongoDB and SQLite agree after the new versions"
no_dead_letters

# ---- 4. the database stopped for 10 s mid-run ----

say "4. the database stopped for 10 s mid-run"
timeout -k 5 180 "$MMP" run --config "$T/outage.json" --once >r4.out 2>r4.err &
pid=$!
BG_PIDS="$BG_PIDS $pid"
wait_for 60 "the first documents of the outage run" sh -c "[ \"\$($MPY $T/check.py count $URI mmp_it_outage 2>/dev/null || echo 0)\" -ge 100 ]"
bash "$MONGO_TOOL" stop "$T/mongo" || fail "cannot stop the stand-in"
kill -0 "$pid" 2>/dev/null || fail "the engine had already finished when the database stopped: $(tail -3 r4.err)"
at_stop="$(sed -n 's/^progress: \([0-9]*\)\/.*/\1/p' r4.err | tail -1)"
ok "database stopped mid-run (engine progress: ${at_stop:-0}/$N files)"
sleep 10
kill -0 "$pid" 2>/dev/null || fail "the engine exited during the outage: $(tail -5 r4.err)"
ok "the engine is still running after 10 s without its database"
bash "$MONGO_TOOL" resume "$T/mongo" >resume.out 2>resume.err || fail "cannot restart the stand-in: $(cat resume.err)"
assert_eq "$URI" "$(sed -n 's/^uri=//p' resume.out)" "the restarted stand-in's address"
rc=0
wait "$pid" || rc=$?
BG_PIDS="${BG_PIDS% $pid}"
assert_eq 0 "$rc" "exit status of the run across the outage"
assert_contains "$(summary_of r4.err)" "summary: $N events, $((2 * N)) documents, 0 failed" "summary"
assert_contains "$(cat r4.err)" "mongo: writes failing, held and retried with backoff" "outage logged once it began"
assert_contains "$(cat r4.err)" "mongo: destination available again after" "recovery logged"
assert_eq 1 "$(grep -c 'writes failing, held and retried' r4.err)" "outage-start log lines"
res="$(check verify "$URI" mmp_it_outage "$T/src")" || fail "after the outage: $res"
ok "nothing lost, nothing duplicated: exactly the $((2 * N)) expected documents"
no_dead_letters

# ---- 5. kill -9 of the engine mid-run ----

say "5. kill -9 of the engine mid-run, then a restart"
"$MMP" run --config "$T/kill9.json" --once >r5.out 2>r5.err &
pid=$!
BG_PIDS="$BG_PIDS $pid"
wait_for 60 "the first documents of the run to kill" sh -c "[ \"\$($MPY $T/check.py count $URI mmp_it_kill 2>/dev/null || echo 0)\" -ge 200 ]"
kill9 "$pid"
BG_PIDS="${BG_PIDS% $pid}"
at_kill="$(mcount mmp_it_kill)"
[ "$at_kill" -lt $((2 * N)) ] || fail "the run had finished before kill -9 ($at_kill documents)"
ok "killed with $at_kill of $((2 * N)) documents stored"
# The restart need not be slow: the fast variant is the same pipeline (same name, same _ids).
run_mmp r5b.out r5b.err run --config "$T/kill9.json" --once --set pipelines.dir="$T/pipelines"
assert_rc 0 "the run after kill -9"
res="$(check verify "$URI" mmp_it_kill "$T/src")" || fail "after kill -9 and a restart: $res"
ok "nothing lost, nothing duplicated: exactly the $((2 * N)) expected documents"
no_dead_letters

finish
