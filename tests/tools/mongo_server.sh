#!/usr/bin/env bash
# Starts and stops the MongoDB stand-in for the tests and benchmarks (TESTING.md,
# docs/testing-mongodb.md): CongoDB from the npm package @push.rocks/smartmongo 2.2.0, run by
# tests/tools/congo/congo.mjs with its hello handler patched to behave like mongod's. Bound to
# 127.0.0.1 on a free port; readiness is a real `ping` command, polled, never slept for.
#
#   mongo_server.sh install             installs the stand-in if missing (npm; see below)
#   mongo_server.sh start DIR [PORT]    starts it (on PORT, else a free port), waits until it
#                                       answers ping; prints uri=mongodb://127.0.0.1:PORT,
#                                       port=PORT, pid=PID. Writes DIR/mongo.pid, DIR/mongo.port
#   mongo_server.sh stop DIR            SIGTERM (the data is written to DIR/congo-data.json);
#                                       SIGKILL after 20 s, and then exit 1 (the data is lost).
#                                       Quiet when it is not running
#   mongo_server.sh resume DIR          starts it again on the port in DIR/mongo.port, with
#                                       the data the last stop wrote: a database outage
#   mongo_server.sh crash DIR           SIGKILL: the data since the last start is lost
#
# MONGO_FAST_PATHS=on (benchmarks only) starts it with congo.mjs --fast-paths on: writes by _id
# and equality deletes through indexes, not CongoDB's scan of the whole collection.
#
# CongoDB keeps its data in memory. It writes it to DIR/congo-data.json when stopped (SIGTERM)
# and reads it back at start, so stop + resume keeps the data, as a restarted mongod would.
#
# The npm install goes to $MMP_CONGO_DIR/node_modules (default: tests/tools/congo/node_modules,
# git-ignored), once, under a lock so parallel tests share it: `npm ci` of
# tests/tools/congo/package-lock.json, then `npm pack @push.rocks/smartmongo@2.2.0` unpacked
# into node_modules (its own dependency list does not resolve). Needs node and npm (Debian:
# nodejs npm) and python3 for the ping.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CONGO_SRC=$ROOT/tests/tools/congo
CONGO_DIR=${MMP_CONGO_DIR:-$CONGO_SRC}
MODULES=$CONGO_DIR/node_modules
SMARTMONGO=@push.rocks/smartmongo@2.2.0
START_TIMEOUT_S=${MONGO_START_TIMEOUT_S:-30}

die() {
        echo "mongo_server: $*" >&2
        exit 1
}

usage() {
        echo "usage: $0 install | start DIR [PORT] | stop DIR | resume DIR | crash DIR" >&2
        exit 2
}

installed() {
        [[ -f $MODULES/@push.rocks/smartmongo/dist_ts/congodb/index.js && -f $MODULES/bson/package.json &&
                -f $MODULES/mingo/package.json && -f $MODULES/.mmp-congo-installed ]]
}

cmd_install() {
        installed && return 0
        command -v node >/dev/null 2>&1 || die "node is not installed (Debian: apt-get install nodejs npm)"
        command -v npm >/dev/null 2>&1 || die "npm is not installed (Debian: apt-get install npm)"
        mkdir -p "$CONGO_DIR"
        # One installer at a time; the others wait and then find it done. The lock lives
        # outside the tree (npm ci replaces node_modules; the source tree stays clean).
        local lock
        lock=${TMPDIR:-/tmp}/mmp-congo-install-$(printf '%s' "$CONGO_DIR" | cksum | cut -d' ' -f1).lock
        exec 9>"$lock"
        flock -w 600 9 || die "timed out waiting for another install ($lock)"
        if ! installed; then
                echo "mongo_server: installing the CongoDB stand-in with npm into $MODULES" >&2
                if [[ $CONGO_DIR != "$CONGO_SRC" ]]; then
                        cp "$CONGO_SRC/package.json" "$CONGO_SRC/package-lock.json" "$CONGO_DIR/"
                fi
                local tmp
                tmp=$(mktemp -d)
                (cd "$CONGO_DIR" && npm ci --silent --no-audit --no-fund) >&2 ||
                        die "npm ci in $CONGO_DIR failed (see above)"
                (cd "$tmp" && npm pack --silent "$SMARTMONGO") >/dev/null ||
                        die "npm pack $SMARTMONGO failed"
                mkdir -p "$MODULES/@push.rocks/smartmongo"
                tar xzf "$tmp"/push.rocks-smartmongo-2.2.0.tgz --strip-components=1 \
                        -C "$MODULES/@push.rocks/smartmongo"
                rm -rf "$tmp"
                touch "$MODULES/.mmp-congo-installed"
        fi
        exec 9>&-
}

free_port() {
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Succeeds while PID is a live node process (not a zombie, not a recycled PID).
is_running() {
        local pid=$1 state
        [[ -r /proc/$pid/stat ]] || return 1
        state=$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
        [[ $state != Z && $state != X ]] || return 1
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q congo.mjs
}

recorded_pid() {
        if [[ -f $1/mongo.pid ]]; then
                cat "$1/mongo.pid"
        fi
}

# launch DIR PORT: starts the server and waits for a ping; 0 when it answers.
launch() {
        local dir=$1 port=$2 pid i
        # Detached from the caller's stdout, so $(mongo_server.sh start ...) does not wait for it.
        node "$CONGO_SRC/congo.mjs" --modules "$MODULES" --port "$port" \
                --persist "$dir/congo-data.json" --fast-paths "${MONGO_FAST_PATHS:-off}" \
                </dev/null >>"$dir/mongo.log" 2>&1 &
        pid=$!
        echo "$pid" >"$dir/mongo.pid"
        for ((i = 0; i < START_TIMEOUT_S * 10; i++)); do
                if python3 "$CONGO_SRC/ping.py" 127.0.0.1 "$port" 1 2>/dev/null; then
                        echo "$port" >"$dir/mongo.port"
                        echo "uri=mongodb://127.0.0.1:$port"
                        echo "port=$port"
                        echo "pid=$pid"
                        return 0
                fi
                is_running "$pid" || break
                sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        rm -f "$dir/mongo.pid"
        echo "mongo_server: CongoDB on port $port did not answer ping; log:" >&2
        tail -5 "$dir/mongo.log" >&2 || true
        return 1
}

prepare_dir() {
        local dir=$1 pid
        mkdir -p "$dir"
        pid=$(recorded_pid "$dir")
        if [[ -n $pid ]] && is_running "$pid"; then
                die "a server already runs for $dir (pid $pid); stop it first"
        fi
}

cmd_start() {
        local dir=$1 port=${2:-} try
        cmd_install
        prepare_dir "$dir"
        dir=$(cd "$dir" && pwd)
        rm -f "$dir/congo-data.json" # a new database
        if [[ -n $port ]]; then
                launch "$dir" "$port" || exit 1
                return 0
        fi
        # The free port may be taken between the probe and the bind: try thrice.
        for try in 1 2 3; do
                launch "$dir" "$(free_port)" && return 0
        done
        exit 1
}

cmd_resume() {
        local dir=$1 port try
        prepare_dir "$dir"
        dir=$(cd "$dir" && pwd)
        [[ -f $dir/mongo.port ]] || die "$dir/mongo.port is missing: nothing was started here"
        port=$(cat "$dir/mongo.port")
        # The port was ours a moment ago; if a straggler still holds it, wait a little.
        for try in 1 2 3 4 5; do
                launch "$dir" "$port" && return 0
                sleep 1
        done
        exit 1
}

cmd_stop() {
        local dir=$1 sig=${2:-TERM} pid i
        pid=$(recorded_pid "$dir")
        [[ -n $pid ]] || return 0
        rm -f "$dir/mongo.pid"
        is_running "$pid" || return 0
        kill -"$sig" "$pid" 2>/dev/null || true
        # A busy CongoDB sees the signal only after the command it is working on.
        for ((i = 0; i < 200; i++)); do
                is_running "$pid" || return 0
                sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        [[ $sig == KILL ]] && return 0
        echo "mongo_server: pid $pid did not stop within 20 s of SIGTERM; killed it: its data is lost" >&2
        return 1
}

[[ $# -ge 1 ]] || usage
case $1 in
install) cmd_install ;;
start) [[ $# -ge 2 && $# -le 3 ]] || usage; cmd_start "$2" "${3:-}" ;;
stop) [[ $# -eq 2 ]] || usage; cmd_stop "$2" TERM ;;
crash) [[ $# -eq 2 ]] || usage; cmd_stop "$2" KILL ;;
resume) [[ $# -eq 2 ]] || usage; cmd_resume "$2" ;;
*) usage ;;
esac
