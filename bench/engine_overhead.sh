#!/usr/bin/env bash
# What the engine itself costs per event: N small files through a handler
# that returns one tiny document, documents as JSON lines to /dev/null.
# Prints events/s and microseconds per event beside the target (50,000
# events/s on a 2-core machine) as a ratio.
#
#   bench/engine_overhead.sh [N]      (default N = 100000)
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-100000}
TARGET=50000
BUILD=${BUILD:-build}

if [ ! -x "$BUILD/mmpipe" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" >/dev/null
fi

# Files live in memory (tmpfs) so the disk is not what is measured.
base=/dev/shm
[ -d "$base" ] || base=${TMPDIR:-/tmp}
work=$(mktemp -d "$base/mmpipe-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "making $N files of 64 bytes in $work ..."
python3 - "$work/in" "$N" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(0, n, 1000):
    sub = os.path.join(d, "%04d" % (i // 1000))
    os.makedirs(sub, exist_ok=True)
    for j in range(i, min(i + 1000, n)):
        with open(os.path.join(sub, "f%07d.txt" % j), "w") as f:
            f.write(("event %d " % j).ljust(63, "x") + "\n")
PY

run() {
  local start end
  start=$(date +%s.%N)
  "$BUILD/mmpipe" process -q --pipelines bench/pipelines/noop --output /dev/null "$work/in"
  end=$(date +%s.%N)
  python3 -c "print($end - $start)"
}

echo "warm-up run ..."
run >/dev/null
secs=$(run)
python3 - "$N" "$secs" "$TARGET" "$(nproc)" <<'PY'
import sys
n, secs, target, cores = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rate = n / secs
print("engine overhead (%s cores, %d events, no-op handler, JSON lines to /dev/null)" % (cores, n))
print("  %-28s %12s %14s %10s" % ("", "events/s", "us/event", "vs target"))
print("  %-28s %12.0f %14.2f %9.2fx" % ("mmpipe process", rate, 1e6 / rate, rate / target))
print("  %-28s %12d %14.2f %9.2fx" % ("target", target, 1e6 / target, 1.0))
PY
