# Shared helpers for the integration tests (sourced, not run).
#
# Every test script starts with:
#   . "$(dirname "$0")/lib.sh"
# and gets: a private temp dir $T (removed on exit, kept with MMP_KEEP_TMP=1),
# the binary $MMP (from $MMP_BUILD_DIR, so the ASan build runs the same
# scripts), the text plugin dir $TEXT_PLUGINS, and assertion helpers that
# print what they checked and exit 1 with a clear message on the first
# failure.

set -u
set -o pipefail

: "${MMP_BUILD_DIR:?MMP_BUILD_DIR must be set (the build directory; ctest sets it)}"
: "${MMP_SOURCE_DIR:?MMP_SOURCE_DIR must be set (the repository root; ctest sets it)}"
: "${MMP_TEST_PLUGIN_DIR:=$MMP_BUILD_DIR/tests/plugins}"

MMP="$MMP_BUILD_DIR/mmpipe"
TEXT_PLUGINS="$MMP_BUILD_DIR/plugins"
TEST_NAME="$(basename "$0" .sh)"
PIPELINES_DIR="$MMP_SOURCE_DIR/tests/integration/pipelines"
DATA_DIR="$MMP_SOURCE_DIR/tests/data/integration"
CHECKS=0
BG_PIDS=""

[ -x "$MMP" ] || { echo "$TEST_NAME: FAIL: $MMP is not built" >&2; exit 1; }
command -v python3 >/dev/null || { echo "$TEST_NAME: FAIL: python3 is needed" >&2; exit 1; }
command -v sqlite3 >/dev/null || { echo "$TEST_NAME: FAIL: the sqlite3 CLI is needed" >&2; exit 1; }

T="$(mktemp -d "${TMPDIR:-/tmp}/mmp-$TEST_NAME.XXXXXX")"

cleanup() {
        local rc=$?
        for p in $BG_PIDS; do
                # (CONT: a stopped process gets the TERM only once it runs.)
                kill "$p" 2>/dev/null && kill -CONT "$p" 2>/dev/null && wait "$p" 2>/dev/null
        done
        if [ "${MMP_KEEP_TMP:-0}" = 1 ] || [ $rc -ne 0 ]; then
                [ $rc -ne 0 ] && echo "$TEST_NAME: files kept in $T" >&2
        else
                rm -rf "$T"
        fi
        exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# In the sanitizer build a report exits 86, told apart from mmpipe's own 1.
export ASAN_OPTIONS="${ASAN_OPTIONS:-exitcode=86}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-exitcode=86:print_stacktrace=1}"
# The tests must not depend on where they are run from or on the environment.
unset MMPIPE_PLUGIN_DIR
cd "$T" || exit 1

say() { echo "$TEST_NAME: $*"; }

fail() {
        echo "$TEST_NAME: FAIL: $*" >&2
        exit 1
}

ok() {
        CHECKS=$((CHECKS + 1))
        echo "  ok: $*"
}

# kill9 PID: SIGKILL the process and reap it. libmongoc (loaded by every mmpipe)
# keeps its counters in /dev/shm/mongoc-PID and removes the file only at a
# clean exit; a later process given the same PID would find it there and warn
# "Falling back to malloc for counters" on stderr, which breaks the tests that
# compare stderr. The file is removed here, as a supervisor would.
kill9() {
        kill -KILL "$1" 2>/dev/null
        { wait "$1"; } 2>/dev/null
        rm -f "/dev/shm/mongoc-$1"
        return 0
}

finish() {
        say "all $CHECKS checks passed"
        exit 0
}

assert_eq() { # expected actual what
        [ "$1" = "$2" ] || fail "$3: expected [$1], got [$2]"
        ok "$3 = $1"
}

assert_ne() { # unexpected actual what
        [ "$1" != "$2" ] || fail "$3: expected something other than [$1]"
        ok "$3 != $1"
}

assert_contains() { # haystack needle what
        case "$1" in
        *"$2"*) ok "$3 contains \"$2\"" ;;
        *) fail "$3: expected to contain [$2], got:
$1" ;;
        esac
}

assert_not_contains() { # haystack needle what
        case "$1" in
        *"$2"*) fail "$3: expected not to contain [$2], got:
$1" ;;
        *) ok "$3 does not contain \"$2\"" ;;
        esac
}

assert_file_contains() { # file needle what
        [ -f "$1" ] || fail "$3: file $1 does not exist"
        assert_contains "$(cat "$1")" "$2" "$3"
}

assert_match() { # string extended-regex what
        # A here-string, not a pipe: with pipefail, grep -q exiting at the
        # first match would fail the writer with SIGPIPE now and then.
        grep -Eq -- "$2" <<<"$1" || fail "$3: expected to match /$2/, got:
$1"
        ok "$3 matches /$2/"
}

# run_mmp OUT ERR cmd...: runs mmpipe with a 60 s limit; sets RC.
run_mmp() {
        local out="$1" err="$2"
        shift 2
        LAST_ERR="$err"
        RC=0
        timeout -k 5 60 "$MMP" "$@" >"$out" 2>"$err" || RC=$?
        [ "$RC" -eq 124 ] && fail "mmpipe $* did not finish within 60 s"
        [ "$RC" -ge 128 ] && fail "mmpipe $* died of signal $((RC - 128)); stderr:
$(tail -30 "$err")"
        [ "$RC" -eq 86 ] && fail "mmpipe $* failed a sanitizer check; stderr:
$(tail -60 "$err")"
        return 0
}

LAST_ERR=""
assert_rc() { # expected what (uses $RC and the stderr of the last run_mmp)
        [ "$RC" = "$1" ] || fail "$2: exit status: expected $1, got $RC${LAST_ERR:+; stderr:
$(tail -20 "$LAST_ERR")}"
        ok "$2: exit status $1"
}

# json: runs a Python snippet with `docs` = the list of JSON objects read
# from FILE (one per line, blank lines skipped) and `json`, `sys`, `re`
# imported; the snippet prints its answer.
json() { # file python-code
        python3 - "$1" "$2" <<'EOF'
import json, sys, re
path, code = sys.argv[1], sys.argv[2]
docs = []
with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
        if line.strip():
            try:
                docs.append(json.loads(line))
            except ValueError as e:
                sys.exit("%s:%d: not JSON (%s): %s" % (path, n, e, line[:200]))
exec(code)
EOF
}

sql() { # db query
        sqlite3 -batch -noheader "$1" "$2"
}

# wait_for SECONDS description command...: polls every 0.1 s.
wait_for() {
        local secs="$1" what="$2" i=0
        shift 2
        while ! "$@" >/dev/null 2>&1; do
                i=$((i + 1))
                [ $i -ge $((secs * 10)) ] && fail "timed out after ${secs}s waiting for $what"
                sleep 0.1
        done
}

# A plugin dir holding the text plugin and the given test plugins (symlinks).
plugin_dir() { # name-of-dir test-plugin...
        local d="$T/$1"
        shift
        mkdir -p "$d"
        ln -sf "$TEXT_PLUGINS/text.so" "$d/text.so"
        ln -sf "$TEXT_PLUGINS/embed.so" "$d/embed.so" # the default text pipeline embeds its chunks
        for p in "$@"; do
                ln -sf "$MMP_TEST_PLUGIN_DIR/$p.so" "$d/$p.so"
        done
        echo "$d"
}

# Deterministic English-like text: paragraphs of sentences, seeded.
make_text() { # file bytes seed
        python3 - "$1" "$2" "$3" <<'EOF'
import random, sys
path, size, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3]
r = random.Random(seed)
words = ("engine event pipeline handler lane worker plugin chunk text document river stone "
         "garden window morning signal harbor lantern meadow copper orbit violet summit "
         "quiet rapid amber cedar delta ember fable glacier hollow island jasper").split()
out = []
n = 0
while n < size:
    para = []
    for _ in range(r.randint(3, 7)):
        s = " ".join(r.choice(words) for _ in range(r.randint(6, 16)))
        para.append(s[0].upper() + s[1:] + r.choice(".!?") )
    p = " ".join(para)
    out.append(p)
    n += len(p) + 2
with open(path, "w", encoding="utf-8") as f:
    f.write("\n\n".join(out) + "\n")
EOF
}

# A pipeline folder $T/NAME/pipelines with the given files: "text" is the
# shipped scripts/pipelines/text.lua, anything else a file of
# tests/integration/pipelines/. Prints the folder.
pipeline_dir() { # name file...
        local d="$T/$1/pipelines"
        shift
        mkdir -p "$d"
        for f in "$@"; do
                case "$f" in
                text) cp "$MMP_SOURCE_DIR/scripts/pipelines/text.lua" "$d/" ;;
                *) cp "$PIPELINES_DIR/$f" "$d/" ;;
                esac
        done
        echo "$d"
}

# The stderr lines (log lines) that mention a path.
lines_naming() { # file needle
        grep -F -- "$2" "$1" || true
}
