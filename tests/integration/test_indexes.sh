#!/usr/bin/env bash
# Indexes declared in a pipeline's destination are created at start-up
# (issue 4), in SQLite as in MongoDB; a malformed declaration is an error
# naming the pipeline.
TEST_NAME=test_indexes
. "$(dirname "$0")/lib.sh"

mkdir -p good bad
cat >good/ix.lua <<'LUA'
local mmpipe = require "mmpipe"
return mmpipe.pipeline { name = "ix", match = {}, destination = { collection = "ixc",
  indexes = { { keys = { ["metadata.kind"] = 1 }, name = "by_kind" } } },
  handler = function(event) return { metadata = { kind = "k" } } end }
LUA
cat >bad/ix.lua <<'LUA'
local mmpipe = require "mmpipe"
return mmpipe.pipeline { name = "ixbad", match = {}, destination = { collection = "ixc",
  indexes = { { name = "no_keys" } } },
  handler = function(event) return nil end }
LUA
run_mmp c.out c.err check --pipelines good --set connections.local.path="$T/db.sqlite"
assert_rc 0 "check with a declared index"
assert_contains "$(sqlite3 "$T/db.sqlite" ".indexes ixc")" "ixc:by_kind" "the index in SQLite"
run_mmp b.out b.err check --pipelines bad --set connections.local.path="$T/db2.sqlite"
assert_rc 2 "check with an index without keys"
assert_contains "$(cat b.err)" "pipeline \"ixbad\": destination.indexes:" "the error names the pipeline"

finish
