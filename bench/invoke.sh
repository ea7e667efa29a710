#!/usr/bin/env bash
# Inference brokering (issue 5): an endpoint with 50 ms latency serving 64
# calls at a time (capacity 1,280 calls/s), driven by the engine
# (mmpipe.invoke_all from Lua, calls on the lanes' curl multi handles) and
# by the seed's sequential boto3 invoke_endpoint loop, in one run. Prints
# calls/s, the ratio, the share of capacity and client CPU per 1,000 calls.
#
#   bench/invoke.sh [ENGINE_CALLS] [SEED_CALLS]     (defaults 8000 and 200)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-8000}
SEED_N=${2:-200}
BUILD=${BUILD:-build}
[ -x "$BUILD/mmpipe" ] || { cmake -S . -B "$BUILD" >/dev/null && cmake --build "$BUILD" -j"$(nproc)" >/dev/null; }

work=$(mktemp -d)
trap 'bash tests/tools/sagemaker_server.sh stop "$work/sm" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
mkdir -p "$work/sm" "$work/in"
bash tests/tools/sagemaker_server.sh start "$work/sm" --latency-ms 50 --slots 64 >"$work/sm/info"
URL=$(sed -n 's/^url=//p' "$work/sm/info")
SERVER_PID=$(cat "$work/sm/sagemaker_server.pid")
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1

server_cpu() { awk '{print ($14 + $15) / 100}' "/proc/$SERVER_PID/stat"; }

# The engine: 8 events of N/8 calls each, every call at once.
per=$((N / 8))
for i in 1 2 3 4 5 6 7 8; do echo "$per" >"$work/in/event$i.txt"; done
cat >"$work/c.json" <<JSON
{ "sagemaker": { "endpoint_url": "$URL", "region": "us-east-1",
                 "endpoints": { "bench": { "max_in_flight": 64 } } } }
JSON
echo "warming up ..."
echo 64 >"$work/warm.txt"
"$BUILD/mmpipe" process -q --config "$work/c.json" --pipelines bench/pipelines/invoke --output /dev/null "$work/warm.txt"
s0=$(server_cpu)
start=$(date +%s.%N)
/usr/bin/time -f "%U %S" -o "$work/engine.time" "$BUILD/mmpipe" process -q --config "$work/c.json" \
        --pipelines bench/pipelines/invoke --output "$work/engine.jsonl" "$work/in"
end=$(date +%s.%N)
s1=$(server_cpu)
ok=$(python3 -c "import json; print(sum(json.loads(l)['ok'] for l in open('$work/engine.jsonl')))")
max_conc=$(curl -sf "$URL/stats?endpoint=bench" | python3 -c "import json,sys; print(json.load(sys.stdin)['max_concurrency'])")

echo "seed loop ($SEED_N sequential boto3 calls) ..."
seed=$(/usr/bin/python3 bench/invoke_seed_loop.py "$URL" "$SEED_N" --endpoint seed)

python3 - "$N" "$ok" "$start" "$end" "$(cat "$work/engine.time")" "$seed" "$max_conc" "$s0" "$s1" <<'PY'
import json, sys
n, ok = int(sys.argv[1]), int(sys.argv[2])
secs = float(sys.argv[4]) - float(sys.argv[3])
user, sys_ = map(float, sys.argv[5].split())
seed = json.loads(sys.argv[6])
max_conc = int(sys.argv[7])
server_cpu = float(sys.argv[9]) - float(sys.argv[8])
rate = n / secs
capacity = 64 / 0.050
print()
print("InvokeEndpoint against a 50 ms, 64-slot endpoint (capacity %d calls/s), %d engine calls" % (capacity, n))
print("  %-32s %10s %10s %12s %16s" % ("", "calls/s", "vs seed", "of capacity", "CPU ms/1000 calls"))
print("  %-32s %10.0f %9.1fx %11.0f%% %16.0f" % ("mmpipe (invoke_all, 8 events)", rate, rate / seed["calls_per_s"],
                                                 100 * rate / capacity, (user + sys_) * 1e6 / n))
print("  %-32s %10.1f %9.1fx %11.1f%% %16.0f" % ("seed: sequential boto3 loop", seed["calls_per_s"], 1.0,
                                                 100 * seed["calls_per_s"] / capacity, seed["cpu_ms_per_1000"]))
print("  engine: %d of %d calls answered 200, at most %d at once at the server; test server CPU %.1f s for the engine's run"
      % (ok, n, max_conc, server_cpu))
print("  targets: >= 40x the loop: %s; >= 90%% of capacity: %s"
      % ("met" if rate / seed["calls_per_s"] >= 40 else "NOT met", "met" if rate / capacity >= 0.9 else "NOT met"))
PY
