#!/usr/bin/env bash
# Documents per second into MongoDB: the engine's sink (unordered bulk upserts by _id, one write
# per object of 10 documents, as the engine batches them) against the seed's way, one pymongo
# call per document (Debian's python3-pymongo on /usr/bin/python3): insert_one, and
# update_one(..., upsert=True), the engine's idempotent semantics. Same documents (about 2 KB
# each), same server, one run; prints docs/s, the ratios, and each side's CPU beside the
# server's: the server is the CongoDB stand-in (tests/tools/mongo_server.sh), a single-threaded
# JavaScript server whose own speed bounds every figure here (docs/testing-mongodb.md). It runs
# with its fast paths (congo.mjs --fast-paths on: lookups by _id and equality deletes through
# indexes, as mongod does; MONGO_FAST_PATHS=off for CongoDB's scan of the whole collection per
# write, which makes every method O(documents stored) and measures nothing but that scan).
#
#   bench/mongo_write.sh [N]     (default N = 20000; MONGO_URI=... to use another server)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

N=${1:-20000}
SIZE=2048
PER_OBJECT=10
BUILD=${BUILD:-build}
MPY=/usr/bin/python3
TARGET=5

"$MPY" -c 'import pymongo' 2>/dev/null || { echo "mongo_write: $MPY needs pymongo (apt-get install python3-pymongo)" >&2; exit 1; }
if [ ! -x "$BUILD/mmpipe" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" >/dev/null
fi
grep -q libmongoc "$BUILD/CMakeFiles/mmpipe.dir/link.txt" ||
  { echo "mongo_write: $BUILD was built without libmongoc (apt-get install libmongoc-dev)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/mmpipe-mongo-bench-XXXXXX")
cleanup() {
  [ -n "${MONGO_URI_OWN:-}" ] && bash "$ROOT/tests/tools/mongo_server.sh" stop "$work/mongo" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# The bench program links exactly what mmpipe links (the build's own link line), with its
# main swapped for ours: no list of libraries to keep in step here.
echo "building the engine side (bench/mongo_write_bench.c against $BUILD/libmmpipe_core.a) ..."
# shellcheck disable=SC2046
cc -O2 -I"$ROOT/core" -I"$ROOT/include" $(pkg-config --cflags libmongoc-1.0 jansson) \
  -c bench/mongo_write_bench.c -o "$work/bench.o"
link=$(sed -e "s#CMakeFiles/mmpipe.dir/core/main.c.o#$work/bench.o#" -e "s#-o mmpipe #-o $work/mongo_write_bench #" \
  "$BUILD/CMakeFiles/mmpipe.dir/link.txt")
(cd "$BUILD" && eval "$link")

if [ -n "${MONGO_URI:-}" ]; then
  URI=$MONGO_URI
  SERVER_PID=
  echo "server: $URI (given)"
else
  MONGO_FAST_PATHS=${MONGO_FAST_PATHS:-on} bash tests/tools/mongo_server.sh start "$work/mongo" >"$work/mongo.out"
  MONGO_URI_OWN=1
  URI=$(sed -n 's/^uri=//p' "$work/mongo.out")
  SERVER_PID=$(sed -n 's/^pid=//p' "$work/mongo.out")
  echo "server: the CongoDB stand-in at $URI (pid $SERVER_PID)"
fi

echo "making $N documents of about $SIZE bytes, $PER_OBJECT per object ..."
"$MPY" bench/mongo_write_seed.py make "$work/docs.jsonl" "$N" "$SIZE" "$PER_OBJECT"
echo "  $(wc -c <"$work/docs.jsonl") bytes of JSON, $((N / PER_OBJECT)) objects"

server_cpu() { # CPU seconds the server has used so far (0 when it is not ours)
  if [ -n "$SERVER_PID" ]; then
    awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / t}' "/proc/$SERVER_PID/stat"
  else
    echo 0
  fi
}

declare -A RATE SECS CPU SRV
run() { # method command...
  local m=$1 before after line
  shift
  before=$(server_cpu)
  line=$("$@")
  after=$(server_cpu)
  RATE[$m]=$("$MPY" -c 'import json,sys; print(json.loads(sys.argv[1])["docs_per_s"])' "$line")
  SECS[$m]=$("$MPY" -c 'import json,sys; print(json.loads(sys.argv[1])["seconds"])' "$line")
  CPU[$m]=$("$MPY" -c 'import json,sys; print(json.loads(sys.argv[1])["cpu_s"])' "$line")
  SRV[$m]=$(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.2f", a - b}')
  printf '  %-12s %9s docs/s  %8ss  client CPU %7ss  server CPU %7ss\n' "$m" "${RATE[$m]}" "${SECS[$m]}" \
    "${CPU[$m]}" "${SRV[$m]}"
}

echo "writing (each into a fresh collection) ..."
run engine_bulk "$work/mongo_write_bench" "$URI" bench engine "$work/docs.jsonl"
run insert_one "$MPY" bench/mongo_write_seed.py insert_one "$URI" bench insert_one "$work/docs.jsonl"
run update_one "$MPY" bench/mongo_write_seed.py update_one "$URI" bench update_one "$work/docs.jsonl"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a / b}'; }
echo
echo "engine bulk upserts vs update_one(upsert=True) per document (same semantics): $(ratio "${RATE[engine_bulk]}" "${RATE[update_one]}")x (target ${TARGET}x)"
echo "engine bulk upserts vs insert_one per document (the seed's loop):             $(ratio "${RATE[engine_bulk]}" "${RATE[insert_one]}")x"
echo "client CPU per document, update_one loop vs engine:                            $(ratio "${CPU[update_one]}" "${CPU[engine_bulk]}")x"
if [ -n "$SERVER_PID" ]; then
  echo "server: the CongoDB stand-in (Node.js, one thread, fast paths ${MONGO_FAST_PATHS:-on}); it was busy"
  echo "        $(ratio "${SRV[engine_bulk]}" "${SECS[engine_bulk]}") of the engine's run: its speed, not the engine's, bounds that figure."
fi
