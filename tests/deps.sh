# shellcheck shell=bash
# The system packages mmpipe needs to build, test and run its demo on Debian 12,
# and a function that installs the missing ones. Sourced by tests/run.sh and
# examples/demo.sh, so CI (a clean Debian 12 machine, root, no stdin, CI=true)
# and a person on a fresh machine get the same set from one place.
#
#   source tests/deps.sh
#   mmp_deps_ensure               # the packages below
#   mmp_deps_ensure kcat nodejs   # ... plus extra ones a caller needs

# Build tools, the libraries CMakeLists.txt looks for (required and optional:
# CI must build every optional feature, or its tests would silently not run),
# and the tools the tests and the demo call (sqlite3 to read results, python3
# to make test data, file for libmagic's database, valgrind for the memcheck
# tests of the parsers).
MMP_DEPS=(
        build-essential gcc cmake pkg-config
        libluajit-5.1-dev libjansson-dev libcurl4-openssl-dev libsqlite3-dev libmagic-dev
        libcmocka-dev libxml2-dev libcmark-dev librdkafka-dev libmongoc-dev
        sqlite3 python3 file curl kcat python3-kafka python3-boto3 libjemalloc-dev libmicrohttpd-dev python3-pymongo
        valgrind
)

# Set once apt-get update has run in this shell, so several calls cost one update.
MMP_APT_UPDATED=${MMP_APT_UPDATED:-0}

# Prints the packages among "$@" that are not installed, space separated.
# dpkg-query fails for a package it has never heard of; that counts as missing.
mmp_deps_missing() {
        local pkg status missing=()
        for pkg in "$@"; do
                status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
                [[ $status == "install ok installed" ]] || missing+=("$pkg")
        done
        echo "${missing[*]}"
}

# Installs whatever is missing of MMP_DEPS plus "$@". Quiet when nothing is.
# As root it runs apt-get itself; otherwise it prints the command to run and
# exits 1, because a build with half the libraries would fail later with a far
# less helpful message (or, worse, build with optional features switched off).
mmp_deps_ensure() {
        local missing cmd
        if ! command -v dpkg-query >/dev/null 2>&1; then
                echo "deps: dpkg-query not found; this installer knows Debian 12 only." >&2
                echo "deps: install by hand: ${MMP_DEPS[*]} $*" >&2
                return 0
        fi
        # Node.js for the MongoDB stand-in: these machines may already carry a
        # Node.js with its own npm (which Debian's npm package conflicts with);
        # Debian's packages only when there is none.
        local node_pkgs=()
        command -v npm >/dev/null 2>&1 || node_pkgs=(nodejs npm)
        missing=$(mmp_deps_missing "${MMP_DEPS[@]}" "${node_pkgs[@]}" "$@")
        [[ -z $missing ]] && return 0

        cmd="apt-get install -y -q --no-install-recommends $missing"
        if [[ $(id -u) -ne 0 ]]; then
                echo "deps: missing packages: $missing" >&2
                echo "deps: install them as root, then run this again:" >&2
                echo "    sudo apt-get update && sudo $cmd" >&2
                exit 1
        fi

        echo "deps: installing missing packages: $missing"
        # No stdin in CI and nobody to answer debconf questions; wait for a
        # dpkg lock held by another apt run instead of failing at once.
        export DEBIAN_FRONTEND=noninteractive
        local apt_opts=(-q -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)
        if [[ $MMP_APT_UPDATED != 1 ]]; then
                apt-get "${apt_opts[@]}" update -qq </dev/null ||
                        { echo "deps: apt-get update failed (see above); check the network or apt sources" >&2; exit 1; }
                MMP_APT_UPDATED=1
        fi
        # $missing is a space-separated list of package names: split on purpose.
        # shellcheck disable=SC2086
        apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends $missing </dev/null >/dev/null ||
                { echo "deps: installing failed: $cmd (see the apt-get messages above)" >&2; exit 1; }

        missing=$(mmp_deps_missing "${MMP_DEPS[@]}" "$@")
        if [[ -n $missing ]]; then
                echo "deps: still missing after apt-get install: $missing" >&2
                exit 1
        fi
        echo "deps: installed"
}
