#!/usr/bin/env bash
# Starts and stops an S3 stand-in for the tests (TESTING.md): moto_server when
# it is installed (the machine image's Python has it; else `pip install
# 'moto[server]'`), otherwise s3rver from npm (MMP_S3_SERVER=s3rver forces it).
# Bound to 127.0.0.1 on a free port; readiness is polled, never slept for.
#
#   s3_server.sh start DIR   # prints endpoint=http://127.0.0.1:PORT, kind=...,
#                            # access_key=..., secret_key=...; DIR/s3_server.pid
#   s3_server.sh stop DIR    # stops the server that `start DIR` started (by PID)
#
# Neither stand-in checks SigV4 signatures (test_sigv4 compares the engine's
# signatures with botocore's instead). DIR holds the pid file, the log and,
# for s3rver, its data and its npm install.
set -euo pipefail

usage() {
        echo "usage: $0 start|stop DIR" >&2
        exit 2
}

[[ $# -eq 2 ]] || usage
cmd=$1
dir=$2
pidfile=$dir/s3_server.pid
log=$dir/s3_server.log

free_port() {
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The command line of the stand-in for port $1, and its credentials.
choose_server() {
        local port=$1 want=${MMP_S3_SERVER:-auto}
        if [[ $want == s3rver ]]; then
                choose_s3rver "$port"
        elif command -v moto_server >/dev/null 2>&1; then
                KIND=moto
                SERVER=(moto_server -H 127.0.0.1 -p "$port")
                KEY=test SECRET=test
        elif python3 -c 'import moto.server' >/dev/null 2>&1; then
                KIND=moto
                SERVER=(python3 -m moto.server -H 127.0.0.1 -p "$port")
                KEY=test SECRET=test
        else
                choose_s3rver "$port"
        fi
}

choose_s3rver() {
        local port=$1
        KIND=s3rver
        if [[ ! -x $dir/npm/node_modules/.bin/s3rver ]]; then
                command -v npm >/dev/null 2>&1 || {
                        echo "s3_server: neither moto_server nor npm is installed" >&2
                        exit 1
                }
                echo "s3_server: installing s3rver@3.7.1 from npm into $dir/npm" >&2
                npm install --silent --no-audit --no-fund --prefix "$dir/npm" s3rver@3.7.1 >&2
        fi
        mkdir -p "$dir/s3rver-data"
        SERVER=("$dir/npm/node_modules/.bin/s3rver" -a 127.0.0.1 -p "$port" -d "$dir/s3rver-data" --silent)
        KEY=S3RVER SECRET=S3RVER
}

# Any HTTP answer at all means the server is up.
ready() {
        local code
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1/" 2>/dev/null || true)
        [[ -n $code && $code != 000 ]]
}

start() {
        local port pid i try
        mkdir -p "$dir"
        if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
                echo "s3_server: already running (pid $(cat "$pidfile")); stop it first" >&2
                exit 1
        fi
        # The free port may be taken between the probe and the bind: try thrice.
        for try in 1 2 3; do
                port=$(free_port)
                choose_server "$port"
                "${SERVER[@]}" </dev/null >"$log" 2>&1 &
                pid=$!
                echo "$pid" >"$pidfile"
                for ((i = 0; i < 300; i++)); do
                        if ready "$port"; then
                                echo "endpoint=http://127.0.0.1:$port"
                                echo "kind=$KIND"
                                echo "access_key=$KEY"
                                echo "secret_key=$SECRET"
                                echo "pid=$pid"
                                return 0
                        fi
                        kill -0 "$pid" 2>/dev/null || break
                        sleep 0.1
                done
                kill "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
                rm -f "$pidfile"
                echo "s3_server: $KIND on port $port did not come up (try $try); log:" >&2
                tail -5 "$log" >&2 || true
        done
        exit 1
}

stop() {
        local pid i
        [[ -f $pidfile ]] || return 0
        pid=$(cat "$pidfile")
        rm -f "$pidfile"
        kill -0 "$pid" 2>/dev/null || return 0
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
                kill -0 "$pid" 2>/dev/null || return 0
                sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
}

case $cmd in
start) start ;;
stop) stop ;;
*) usage ;;
esac
