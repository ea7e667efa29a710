#!/usr/bin/env bash
# The project's test command (README; CI runs it as .ci/run): installs what is
# missing, builds twice (normal with -Werror, then ASan+UBSan), runs every
# ctest test (unit and integration) in both, and ends with "N passed, N failed".
#
#   bash tests/run.sh            # everything
#   MMP_SKIP_ASAN=1 bash tests/run.sh   # the normal build only (a quick local loop)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=tests/deps.sh
source tests/deps.sh

JOBS=$(nproc 2>/dev/null || echo 2)
PASSED=0
FAILED=0
TIMINGS=()

# ---------------------------------------------------------------------------
# Peers for the integration tests (TESTING.md). This stage needs none.
# Later work starts them here: the librdkafka mock cluster (Kafka), moto_server
# or s3rver (S3), the CongoDB launcher (MongoDB) and the SageMaker test server.
# Rules: bind 127.0.0.1, pick free ports, poll for readiness (never sleep a
# fixed time), record each PID in SERVER_PIDS, and export the addresses for
# the tests (e.g. MMP_TEST_KAFKA_BOOTSTRAP). stop_servers runs on every exit.
# ---------------------------------------------------------------------------
SERVER_PIDS=()

start_servers() {
        : # nothing to start yet
}

stop_servers() {
        local pid
        for pid in "${SERVER_PIDS[@]}"; do
                # Only what we started, by PID; give it a moment to exit cleanly.
                if kill -0 "$pid" 2>/dev/null; then
                        kill -TERM "$pid" 2>/dev/null || true
                        for _ in 1 2 3 4 5 6 7 8 9 10; do
                                kill -0 "$pid" 2>/dev/null || break
                                sleep 0.5
                        done
                        kill -KILL "$pid" 2>/dev/null || true
                fi
        done
        SERVER_PIDS=()
}
trap stop_servers EXIT
trap 'exit 130' INT TERM

# Runs "$@", prints how long it took and remembers it for the closing table.
timed() {
        local label=$1 start=$SECONDS rc=0
        shift
        "$@" || rc=$?
        TIMINGS+=("$(printf '%-28s %4ds%s' "$label" $((SECONDS - start)) "$([[ $rc -eq 0 ]] || echo "  (failed, exit $rc)")")")
        return "$rc"
}

# build DIR CMAKE_ARGS...: configure and compile one build tree.
build() {
        local dir=$1
        shift
        # MMP_TESTS=ON explicitly: a tree configured earlier with it OFF (e.g. by
        # hand) would otherwise keep it OFF from its cache and run no test.
        cmake -S "$ROOT" -B "$dir" -DMMP_WERROR=ON -DMMP_TESTS=ON "$@" &&
                cmake --build "$dir" -j"$JOBS"
}

# Every mmpipe keeps libmongoc's counters in /dev/shm/mongoc-PID until it exits
# cleanly; a process killed earlier (by a test, a timeout, a sanitizer report)
# leaves its file, and a later process with the same PID warns on stderr about
# it (docs/destinations.md). The kill -9 tests remove their engine's file
# (lib.sh kill9); what other deaths left (a timeout, a sanitizer abort, an
# earlier run) is removed here before each pass, for processes no longer running.
sweep_mongoc_shm() {
        local f
        for f in /dev/shm/mongoc-*; do
                [[ -e $f ]] || continue
                kill -0 "${f##*-}" 2>/dev/null || rm -f "$f"
        done
}

# run_ctest DIR: runs the tests of one build tree and adds its counts to
# PASSED/FAILED, read from ctest's closing line
# "NN% tests passed, F tests failed out of T".
run_ctest() {
        local dir=$1 log rc=0 line total failed
        log=$(mktemp)
        sweep_mongoc_shm
        ctest --test-dir "$dir" --output-on-failure -j2 2>&1 | tee "$log" || rc=$?
        line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n1 || true)
        rm -f "$log"
        if [[ -z $line ]]; then
                # No closing line: ctest found no tests or died. Either is a failure.
                echo "run.sh: ctest in $dir printed no result line (exit $rc); counting it as one failure" >&2
                FAILED=$((FAILED + 1))
                return 1
        fi
        failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
        total=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
        PASSED=$((PASSED + total - failed))
        FAILED=$((FAILED + failed))
        [[ $total -gt 0 ]] || { echo "run.sh: ctest in $dir ran no test" >&2; FAILED=$((FAILED + 1)); return 1; }
        return "$rc"
}

# A build that fails runs no tests: count it as one failure so the closing
# line can never read "0 failed" when something did not even compile.
build_failed() {
        echo "run.sh: the $1 build failed (see the compiler messages above); its tests did not run" >&2
        FAILED=$((FAILED + 1))
}

main() {
        local total_start=$SECONDS status=0

        echo "== dependencies"
        timed "dependencies" mmp_deps_ensure

        start_servers

        echo "== normal build (build/, RelWithDebInfo, -Werror)"
        if timed "build: normal" build build -DMMP_SANITIZE=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo; then
                echo "== tests: normal build"
                timed "tests: normal" run_ctest build || status=1
        else
                build_failed normal
                status=1
        fi

        if [[ ${MMP_SKIP_ASAN:-0} == 1 ]]; then
                echo "== sanitizer build skipped (MMP_SKIP_ASAN=1)"
        else
                echo "== sanitizer build (build-asan/, Debug, ASan+UBSan, -Werror)"
                if timed "build: asan+ubsan" build build-asan -DMMP_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug; then
                        echo "== tests: sanitizer build"
                        # Leak checking stays on. tests/lsan.supp names the few leaks
                        # inside system libraries we cannot fix, each with its reason.
                        # Exported so integration scripts running build-asan/mmpipe
                        # get the same settings.
                        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
                        export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp:print_suppressions=0"
                        export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
                        timed "tests: asan+ubsan" run_ctest build-asan || status=1
                        unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS
                else
                        build_failed asan+ubsan
                        status=1
                fi
        fi

        stop_servers

        echo "== timings"
        printf '  %s\n' "${TIMINGS[@]}"
        printf '  %-28s %4ds\n' "total" $((SECONDS - total_start))
        [[ $FAILED -eq 0 ]] || status=1
        echo "$PASSED passed, $FAILED failed"
        return "$status"
}

main "$@"
