#!/usr/bin/env bash
# Starts, drives and stops a Kafka stand-in (tests/tools/kafka_mock: librdkafka's mock cluster on
# 127.0.0.1) for the tests and benchmarks. Everything about one cluster lives in one folder DIR.
#
#   kafka_cluster.sh start DIR [--brokers N] [--topic NAME:PARTITIONS]...
#       starts kafka_mock in the background, waits until it serves (polls its ready file), prints
#       "bootstrap=HOST:PORT,...". Writes DIR/bootstrap (the bare list), DIR/kafka.pid,
#       DIR/kafka.log (the daemon's output) and DIR/control (its command FIFO).
#   kafka_cluster.sh ctl DIR COMMAND...
#       sends one control command (broker-down ID, broker-up ID, rtt ID MS, topic-create NAME
#       PARTS, request-errors API_KEY ERR..., ping) and waits for its acknowledgement; prints it;
#       exit 0 if the command was applied, 1 if not. One ctl at a time per cluster.
#   kafka_cluster.sh stop DIR
#       stops it by its PID: SIGTERM, then SIGKILL after 5 s. Quiet if it is not running.
#
# The binary is $KAFKA_MOCK, or $MMP_BUILD_DIR/tests/tools/kafka_mock (ctest sets MMP_BUILD_DIR),
# or build/tests/tools/kafka_mock under the repository root.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KAFKA_MOCK=${KAFKA_MOCK:-${MMP_BUILD_DIR:-$ROOT/build}/tests/tools/kafka_mock}
START_TIMEOUT_S=${KAFKA_START_TIMEOUT_S:-20}

die() {
        echo "kafka_cluster: $*" >&2
        exit 1
}

# Succeeds while PID is a live kafka_mock process (not a zombie, not a recycled PID).
is_running() {
        local pid=$1 state
        [[ -r /proc/$pid/stat ]] || return 1
        state=$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
        [[ $state != Z && $state != X ]] || return 1
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q kafka_mock
}

# Prints the PID recorded in DIR/kafka.pid, or nothing.
recorded_pid() {
        if [[ -f $1/kafka.pid ]]; then
                cat "$1/kafka.pid"
        fi
}

cmd_start() {
        local dir=$1 pid deadline
        shift
        [[ -x $KAFKA_MOCK ]] || die "kafka_mock binary not found at $KAFKA_MOCK (build it, or set KAFKA_MOCK)"
        mkdir -p "$dir"
        dir=$(cd "$dir" && pwd)
        pid=$(recorded_pid "$dir")
        if [[ -n $pid ]] && is_running "$pid"; then
                die "a cluster already runs for $dir (pid $pid); stop it first"
        fi
        rm -f "$dir/ready" "$dir/bootstrap" "$dir/kafka.pid" "$dir/control"

        # stdin and stdout detached, so a caller's $(...) or pipe does not wait for the daemon.
        "$KAFKA_MOCK" --ready-file "$dir/ready" --control "$dir/control" "$@" \
                </dev/null >"$dir/kafka.log" 2>&1 &
        pid=$!
        echo "$pid" >"$dir/kafka.pid"

        deadline=$((SECONDS + START_TIMEOUT_S))
        until [[ -s $dir/ready ]]; do
                if ! kill -0 "$pid" 2>/dev/null; then
                        wait "$pid" 2>/dev/null || true
                        rm -f "$dir/kafka.pid"
                        die "kafka_mock exited during startup; its output ($dir/kafka.log):
$(cat "$dir/kafka.log")"
                fi
                if ((SECONDS >= deadline)); then
                        kill -KILL "$pid" 2>/dev/null || true
                        rm -f "$dir/kafka.pid"
                        die "kafka_mock not ready after ${START_TIMEOUT_S}s; its output: $(cat "$dir/kafka.log")"
                fi
                sleep 0.02
        done
        sed 's/^bootstrap=//' "$dir/ready" >"$dir/bootstrap"
        cat "$dir/ready"
}

cmd_stop() {
        local dir=$1 pid
        pid=$(recorded_pid "$dir")
        [[ -n $pid ]] || return 0
        if is_running "$pid"; then
                kill -TERM "$pid" 2>/dev/null || true
                for _ in $(seq 100); do
                        is_running "$pid" || break
                        sleep 0.05
                done
                if is_running "$pid"; then
                        echo "kafka_cluster: kafka_mock (pid $pid) ignored SIGTERM for 5 s; killing it" >&2
                        kill -KILL "$pid" 2>/dev/null || true
                fi
        fi
        # After a SIGKILL the daemon could not remove these itself.
        rm -f "$dir/kafka.pid" "$dir/ready" "$dir/bootstrap" "$dir/control"
}

cmd_ctl() {
        local dir=$1 pid before line deadline
        shift
        (($# > 0)) || die "ctl needs a command, e.g.: ctl $dir broker-down 1"
        pid=$(recorded_pid "$dir")
        if [[ -z $pid ]] || ! is_running "$pid"; then
                die "no cluster runs for $dir"
        fi
        [[ -p $dir/control ]] || die "$dir/control is not a FIFO"
        before=$(grep -c '^control ' "$dir/kafka.log" || true)
        # The daemon holds the FIFO open, so this open does not block while it lives.
        # shellcheck disable=SC2016 # $1 and $2 are the inner shell's arguments
        timeout 5 bash -c 'printf "%s\n" "$1" >"$2"' _ "$*" "$dir/control" ||
                die "cannot write to $dir/control"
        deadline=$((SECONDS + 15))
        while :; do
                line=$(grep '^control ' "$dir/kafka.log" | sed -n "$((before + 1))p")
                [[ -n $line ]] && break
                ((SECONDS < deadline)) || die "no acknowledgement of \"$*\" within 15 s"
                is_running "$pid" || die "kafka_mock (pid $pid) died; see $dir/kafka.log"
                sleep 0.02
        done
        echo "$line"
        [[ $line == "control "*" ok: "* ]]
}

usage() {
        sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
        exit 2
}

(($# >= 2)) || usage
cmd=$1
dir=$2
shift 2
case $cmd in
start) cmd_start "$dir" "$@" ;;
stop) cmd_stop "$dir" ;;
ctl) cmd_ctl "$dir" "$@" ;;
*) usage ;;
esac
