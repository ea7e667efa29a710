#!/usr/bin/env bash
# Starts and stops the SageMaker-runtime test server (tests/tools/sagemaker_server.py,
# docs/testing-sagemaker.md) for tests and benchmarks. Bound to 127.0.0.1 on a
# free port that the server picks itself (no probe-then-bind race); readiness
# is polled, never slept for.
#
#   sagemaker_server.sh start DIR [server args]   # e.g. --latency-ms 50 --slots 64
#       prints url=http://127.0.0.1:PORT, access_key=..., secret_key=...,
#       region=..., pid=...; writes DIR/sagemaker_server.pid and the log
#       DIR/sagemaker_server.log
#   sagemaker_server.sh stop DIR                  # stops the server `start DIR` started (by PID)
#
# The interpreter is MMP_SAGEMAKER_PYTHON, else python3 (the server needs only
# the standard library, so Debian's /usr/bin/python3 works too).
set -euo pipefail

usage() {
        echo "usage: $0 start DIR [server args] | stop DIR" >&2
        exit 2
}

[[ $# -ge 2 ]] || usage
cmd=$1
dir=$2
shift 2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pidfile=$dir/sagemaker_server.pid
readyfile=$dir/sagemaker_server.ready
log=$dir/sagemaker_server.log
python=${MMP_SAGEMAKER_PYTHON:-python3}

# The value of --NAME in the server arguments, else the default.
arg_value() { # name default args...
        local name=$1 value=$2
        shift 2
        while [[ $# -gt 0 ]]; do
                case $1 in
                "--$name") value=${2:-}; shift ;;
                "--$name="*) value=${1#*=} ;;
                esac
                shift
        done
        echo "$value"
}

ready() {
        local code
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1/ping" 2>/dev/null || true)
        [[ $code == 200 ]]
}

start() {
        local pid i url
        mkdir -p "$dir"
        if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
                echo "sagemaker_server: already running (pid $(cat "$pidfile")); stop it first" >&2
                exit 1
        fi
        rm -f "$readyfile"
        "$python" "$here/sagemaker_server.py" --port 0 --ready-file "$readyfile" "$@" </dev/null >"$log" 2>&1 &
        pid=$!
        echo "$pid" >"$pidfile"
        for ((i = 0; i < 300; i++)); do
                if [[ -s $readyfile ]]; then
                        url=$(sed -n 's/^url=//p' "$readyfile")
                        if [[ -n $url ]] && ready "$url"; then
                                echo "url=$url"
                                echo "access_key=$(arg_value access-key test "$@")"
                                echo "secret_key=$(arg_value secret-key test "$@")"
                                echo "region=$(arg_value region us-east-1 "$@")"
                                echo "pid=$pid"
                                return 0
                        fi
                fi
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        rm -f "$pidfile"
        echo "sagemaker_server: did not come up; log:" >&2
        tail -20 "$log" >&2 || true
        exit 1
}

stop() {
        local pid i
        [[ -f $pidfile ]] || return 0
        pid=$(cat "$pidfile")
        rm -f "$pidfile" "$readyfile"
        kill -0 "$pid" 2>/dev/null || return 0
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
                kill -0 "$pid" 2>/dev/null || return 0
                sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
}

case $cmd in
start) start "$@" ;;
stop)
        [[ $# -eq 0 ]] || usage
        stop
        ;;
*) usage ;;
esac
