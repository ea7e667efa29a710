-- Test pipeline: files whose key ends in .slow take a while (a plugin call
-- that sleeps on the worker pool), so a test can change the folder while
-- the engine is busy. Needs slow.so (tests/plugins/slow.c).
local mmpipe = require "mmpipe"

return mmpipe.pipeline {
  name = "slow-files",
  match = { key_suffix = ".slow" },
  destination = { collection = "slow_files" },
  handler = function(event)
    local slept = mmpipe.tools.slow.sleep("slept", { ms = 3000 })
    return { key = event.key, result = slept }
  end,
}
